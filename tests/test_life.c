/* The stream's whole life, against the Streams stand-in
 * (tests/support/fakestreams.c) and the search double: dry runs, streams
 * replaced under a new ARN, iterators renewed, shards that cannot be found,
 * a shard stuck behind one item.  Each test names the real behaviour it
 * imitates and where it is documented. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/e2e.h"
#include "tests/support/fakestreams.h"
#include "tests/support/fsworld.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(life, .timeout = 120);

static size_t count_text(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[600];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* SPEC: `--dry-run` writes the bulk bodies to stdout instead of posting.
 * Nothing was indexed, so the position it reached must not be kept: a real
 * run afterwards reads everything the dry run saw. */
Test(life, a_dry_run_keeps_no_position)
{
    struct fsworld w;
    struct proc dry;
    char conf[512], bin[512], id[16];
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", NULL };
    char *out = NULL;
    size_t seen = 0;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "k%03d", i);
        fs_put(w.fs, s, "INSERT", id, "1", 1000 + i / 50);
    }
    fsw_config(&w, NULL, NULL);
    snprintf(conf, sizeof(conf), "%s/ddb2es.conf", w.dir);
    {
        const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "run", "--dry-run", "-c",
                               conf, NULL };

        proc_start(&dry, argv, env);
    }
    for (int i = 0; i < 300 && seen < 200; i++) {
        free(out);
        out = proc_slurp(dry.out_path);
        seen = count_text(out, "{\"index\":");
        usleep(50000);
    }
    free(out);
    cr_assert_eq(seen, 200, "the dry run wrote every action to stdout (%zu)", seen);
    proc_kill(&dry, SIGTERM);
    cr_assert_eq(proc_wait(&dry, 15000), 0, "the dry run stops cleanly");
    cr_expect(!file_exists(w.dir, "state/checkpoints.json"),
              "a dry run writes no checkpoint file");
    cr_expect(!file_exists(w.dir, "dlq.ndjson"), "nor a dead-letter file");
    cr_expect_eq(fsw_actions(&w), 0, "nothing was posted");

    fsw_restart(&w);
    {
        int lineage[] = { s };
        char why[512];

        cr_assert(fsw_wait_matches(&w, lineage, 1, 20000, why, sizeof(why)),
                  "the real run indexed everything the dry run saw: %s", why);
    }
    fsw_teardown(&w);
}
