/* Resilience end to end: the real daemon between the Streams stand-in and
 * the search double, with faults on the sink side (whole-request 429 and
 * 503, per-item 429, connections reset mid-response, answers slower than
 * request_timeout, 413, the engine down for a minute), SIGKILL at random
 * moments with the checkpoint checked after every kill, and a full disk
 * under the state directory.
 *
 * Every test ends with the index equal to the stream's last images (nothing
 * lost, nothing stale), checks that re-sent actions stay within what was in
 * flight, and that retries back off (the double counts the requests).  A
 * stall fails by its wait timing out.  Seeds are printed in the log. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/ckpt.h"
#include "daemon/seqnum.h"
#include "tests/support/fakestreams.h"
#include "tests/support/fsworld.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(faults, .timeout = 240);

#define BATCH 200 /* bulk_max_actions: the most one request can put in flight */

/* ASan and valgrind runs set BUILD to their build directory. */
static bool sanitized(void)
{
    const char *b = getenv("BUILD");

    return b && strstr(b, "asan");
}

/* A small random workload: ids from a pool, INSERT first, then MODIFY or
 * (one in ten) REMOVE, then INSERT again; every image gets a v of its own,
 * so a document's v names the record it came from. */
struct load {
    unsigned seed, next_v;
    bool live[500];
};

/* DDB2ES_TEST_SEED replays a run whose seed a failure printed. */
static unsigned test_seed(void)
{
    const char *e = getenv("DDB2ES_TEST_SEED");

    return e && *e ? (unsigned)strtoul(e, NULL, 10) : (unsigned)time(NULL);
}

static unsigned lrand(struct load *l)
{
    l->seed = l->seed * 1103515245u + 12345u;
    return (l->seed >> 16) & 0x7fff;
}

static void put_some(struct fakestreams *fs, int shard, struct load *l, int n, int64_t created)
{
    for (int i = 0; i < n; i++) {
        unsigned k = lrand(l) % 500;
        char id[16], v[16];
        const char *ev = !l->live[k] ? "INSERT" : lrand(l) % 10 == 0 ? "REMOVE" : "MODIFY";

        snprintf(id, sizeof(id), "k%03u", k);
        snprintf(v, sizeof(v), "%u", ++l->next_v);
        fs_put(fs, shard, ev, id, v, created);
        l->live[k] = strcmp(ev, "REMOVE") != 0;
    }
}

static void clear_faults(struct fsworld *w)
{
    struct searchd_resp r;

    cr_assert_eq(searchd_request(w->sd, "DELETE", "/_double/faults", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    searchd_resp_close(&r);
}

static long faults_applied(struct fsworld *w)
{
    json_t *st = searchd_stats(w->sd);
    long n = (long)json_integer_value(json_object_get(st, "faults_applied"));

    json_decref(st);
    return n;
}

static bool wait_faults_applied(struct fsworld *w, long n, long ms)
{
    for (long t = 0; t <= ms; t += 50) {
        if (faults_applied(w) >= n)
            return true;
        usleep(50000);
    }
    return false;
}

struct sink_case {
    const char *rules;       /* installed before the start, lifted after window_ms */
    const char *sink_extra;  /* more [sink] lines */
    const char *searchd_opt; /* one option with its value ("--max-body 20000"), or NULL */
    long window_ms;
    long max_requests; /* bulk requests the double may see during the window */
};

/* 3000 records on one shard, the fault from the first bulk request on for
 * window_ms, then none: the index must end equal to the stream. */
static void sink_case_run(const struct sink_case *c, struct fsworld *w)
{
    char opt[64], *val, why[512];
    const char *opts[3] = { NULL };
    const unsigned seed = test_seed();
    struct load l = { .seed = seed };
    long during, records, actions, applied;
    int shard;

    cr_log_info("seed %u", seed);
    if (c->searchd_opt) {
        snprintf(opt, sizeof(opt), "%s", c->searchd_opt);
        val = strchr(opt, ' ');
        *val++ = '\0';
        opts[0] = opt;
        opts[1] = val;
    }
    fsw_setup(w, opts);
    shard = fs_add_shard(w->fs, -1, false);
    for (int s = 0; s < 30; s++)
        put_some(w->fs, shard, &l, 100, 1000 + s);
    records = (long)fs_records(w->fs, shard, NULL, 0);
    if (c->rules)
        cr_assert_eq(searchd_faults(w->sd, c->rules), 200);
    {
        char sink[512];

        /* No canary: the faults are for the documents' bulks, and its
         * actions would blur the count. */
        snprintf(sink, sizeof(sink), "bulk_max_actions = %d\nmax_retry_backoff = 2s\n"
                 "probe = false\n%s", BATCH, c->sink_extra ? c->sink_extra : "");
        fsw_start(w, NULL, sink);
    }
    if (c->rules) {
        cr_assert(wait_faults_applied(w, 1, 20000), "the fault was met (seed %u)", seed);
        usleep((useconds_t)c->window_ms * 1000);
        during = fsw_bulk_requests(w, 0);
        clear_faults(w);
        cr_log_info("%ld bulk requests during %ld ms of fault", during, c->window_ms);
        cr_expect_leq(during, c->max_requests, "%ld bulk requests in %ld ms: no backoff", during,
                      c->window_ms);
    }
    cr_assert(fsw_wait_matches(w, &shard, 1, 60000, why, sizeof(why)),
              "index = stream once the fault ended (seed %u): %s", seed, why);
    actions = fsw_actions(w);
    applied = faults_applied(w);
    cr_log_info("%ld records, %ld actions received, %ld faulted requests", records, actions,
                applied);
    cr_expect_leq(actions, records + applied * BATCH,
                  "re-sent actions within what was in flight: %ld actions for %ld records and "
                  "%ld faulted requests (seed %u)",
                  actions, records, applied, seed);
}

/* Elasticsearch bulk API: "429 Too Many Requests" when the node rejects a
 * request (es_rejected_execution_exception); retried with backoff. */
Test(faults, sink_request_429_backs_off_and_loses_nothing)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"status\":429,\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"429\""), 2);
    fsw_teardown(&w);
}

/* 503 (cluster_block_exception, no master): retried with backoff. */
Test(faults, sink_request_503_backs_off_and_loses_nothing)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"status\":503,\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"5xx\""), 2);
    fsw_teardown(&w);
}

/* A 200 whose odd items are 429: only those are sent again.  The bound is
 * looser than for whole-request faults: fresh batches keep going out (15 of
 * them) while each rejected item waits its own backoff (0.1 s doubling to
 * 2 s, about 8 tries in 4 s); a tight loop would send thousands. */
Test(faults, sink_item_429_retries_only_the_rejected_items)
{
    struct fsworld w;
    struct sink_case c = {
        .rules = "{\"match\":\"bulk\",\"item_status\":429,\"items\":\"odd\",\"count\":-1}",
        .window_ms = 4000, .max_requests = 200
    };

    sink_case_run(&c, &w);
    cr_expect_gt(fsw_metric(&w, "ddb2es_docs_retried_total", ""), 0);
    fsw_teardown(&w);
}

/* The double applies the bulk, sends the head and half the body, then
 * resets the connection: the batch is sent again and what was applied
 * answers 409 (finished). */
Test(faults, sink_connection_reset_mid_response_is_retried)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"action\":\"reset\",\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\""), 1);
    fsw_teardown(&w);
}

/* Answers 2.5 s late with request_timeout = 1s: each request times out and
 * is retried; the late answers change nothing. */
Test(faults, sink_slower_than_request_timeout_is_retried)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"delay_ms\":2500,\"count\":-1}",
                           .sink_extra = "request_timeout = 1s\n",
                           .window_ms = 5000, .max_requests = 40 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\""), 1);
    fsw_teardown(&w);
}

/* http.max_content_length: the engine refuses bodies over 20 kB with 413,
 * so 256 kB batches are split until they fit; nothing is dead-lettered. */
Test(faults, sink_413_splits_until_the_batches_fit)
{
    struct fsworld w;
    struct sink_case c = { .searchd_opt = "--max-body 20000",
                           .sink_extra = "bulk_max_bytes = 256k\n" };
    char path[512];
    struct stat st;

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"413\""), 1);
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.dir);
    cr_expect(stat(path, &st) != 0 || st.st_size == 0, "nothing was dead-lettered");
    fsw_teardown(&w);
}

/* The engine goes away for a minute (every connection refused), with far
 * more in the stream than max_queue_bytes: the readers pause, memory stays
 * under the cap, retries back off, and everything arrives once it is back.
 * Under the sanitizers the outage is 15 s and memory is not measured. */
Test(faults, sink_down_for_a_minute_then_back)
{
    const long outage_ms = sanitized() ? 15000 : 60000;
    const long cap_kb = 64 * 1024;
    struct fsworld w;
    const unsigned seed = test_seed();
    struct load l = { .seed = seed };
    char rule[64], why[512];
    long records, peak_kb, refused;
    int shard;

    cr_log_info("seed %u", seed);
    fsw_setup(&w, NULL);
    shard = fs_add_shard(w.fs, -1, false);
    fs_pad(w.fs, 2000); /* 2 kB documents: 40,000 of them make 80 MB */
    for (int s = 0; s < 40; s++)
        put_some(w.fs, shard, &l, 1000, 1000 + s);
    records = (long)fs_records(w.fs, shard, NULL, 0);
    snprintf(rule, sizeof(rule), "{\"down_ms\":%ld}", outage_ms);
    cr_assert_eq(searchd_faults(w.sd, rule), 200);
    fsw_start(&w, "max_queue_bytes = 8m\n", "max_retry_backoff = 5s\n");
    cr_assert(fsw_log_has(&w, "-> paused", 30000), "the readers paused on the full queue");
    /* Wait out the outage while it lasts, checking the daemon is alive. */
    for (long t = 0; t < outage_ms - 2000; t += 1000) {
        cr_assert_eq(proc_wait(&w.p, 0), -1, "the daemon is running");
        usleep(1000000);
    }
    peak_kb = fsw_peak_rss_kb(&w);
    /* Down from the start: no bulk goes out before the engine was probed,
     * and the probe is tried again with backoff (1 s doubling to 30 s,
     * full jitter); a tight loop on a refused connection makes tens of
     * thousands. */
    {
        char *log = proc_slurp(w.p.err_path);

        refused = 0;
        for (const char *q = log; (q = strstr(q, "could not be probed")); q++)
            refused++;
        free(log);
    }
    cr_log_info("outage %ld ms: %ld probes refused, peak RSS %ld kB with "
                "max_queue_bytes = 8m and an 80 MB backlog",
                outage_ms, refused, peak_kb);
    cr_expect_geq(refused, 2, "it kept trying");
    cr_expect_leq(refused, outage_ms / 250, "backoff: %ld attempts in %ld ms", refused,
                  outage_ms);
    cr_expect_eq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\""), 0,
                 "no bulk went to an engine not probed");
    if (!sanitized())
        cr_expect_leq(peak_kb, cap_kb, "peak RSS %ld kB over the %ld kB cap", peak_kb, cap_kb);
    cr_assert(fsw_wait_matches(&w, &shard, 1, 120000, why, sizeof(why)),
              "index = stream after the outage (seed %u): %s", seed, why);
    cr_expect_leq(fsw_actions(&w), records + 3,
                  "a refused connection applies nothing: each record sent once (and the "
                  "probe's canary: three actions)");
    fsw_teardown(&w);
}

/* ---- crash safety --------------------------------------------------------- */

/* The checkpoint file as it is on disk: shard id -> last finished sequence
 * number ("" for none), or "done" for a shard read to its end. */
static json_t *checkpoint_on_disk(struct fsworld *w)
{
    char path[512];
    json_error_t jerr;
    json_t *root, *streams, *st, *shards, *sh, *out = json_object();
    const char *arn, *id;

    snprintf(path, sizeof(path), "%s/state/checkpoints.json", w->dir);
    root = json_load_file(path, 0, &jerr);
    if (!root) {
        cr_assert(access(path, F_OK) != 0, "%s does not load: %s", path, jerr.text);
        return out; /* not written yet */
    }
    streams = json_object_get(root, "streams");
    json_object_foreach(streams, arn, st)
    {
        shards = json_object_get(st, "shards");
        json_object_foreach(shards, id, sh)
        {
            const char *seq = json_string_value(json_object_get(sh, "seq"));

            json_object_set_new(out, id, json_string(json_is_true(json_object_get(sh, "done"))
                                                         ? "done"
                                                         : seq ? seq : ""));
        }
    }
    json_decref(root);
    return out;
}

/* DESIGN invariant 1, checked right after a kill: for every record at or
 * below its shard's checkpoint, the index holds that record's image or a
 * later one of the same item (a REMOVE: the document is gone, or a later
 * INSERT is there).  Returns how many records lie past the checkpoints (the
 * most a restart can send again); fails the test otherwise. */
static long check_checkpoint(struct fsworld *w, const int *shards, size_t nshards, int round,
                             unsigned seed)
{
    json_t *ck = checkpoint_on_disk(w), *dump = searchd_dump(w->sd), *docs;
    json_t *index_of_v = json_object(); /* v -> position in the lineage */
    struct fs_rec *all = NULL;
    size_t n = 0, *shard_end = calloc(nshards, sizeof(size_t));
    long past = 0;

    cr_assert_not_null(dump);
    docs = json_object_get(dump, w->table);
    for (size_t k = 0; k < nshards; k++) {
        size_t m = fs_records(w->fs, shards[k], NULL, 0);

        all = realloc(all, (n + m + 1) * sizeof(*all));
        cr_assert_not_null(all);
        fs_records(w->fs, shards[k], all + n, m);
        n += m;
        shard_end[k] = n;
    }
    for (size_t i = 0; i < n; i++)
        json_object_set_new(index_of_v, all[i].v, json_integer((json_int_t)i));
    for (size_t k = 0, i = 0; k < nshards; k++) {
        const char *cks = json_string_value(json_object_get(ck, fs_shard_id(w->fs, shards[k])));

        for (; i < shard_end[k]; i++) {
            const struct fs_rec *r = &all[i];
            bool covered = cks && (strcmp(cks, "done") == 0 ||
                                   (cks[0] && seqnum_cmp(r->seq, cks) <= 0));
            json_t *doc = json_object_get(docs, r->id);
            bool gone = !doc || json_is_true(json_object_get(doc, "deleted"));
            bool ok = false;

            if (!covered) {
                past++;
                continue;
            }
            if (!gone) {
                char v[32];
                json_t *at;

                snprintf(v, sizeof(v), "%lld",
                         (long long)json_integer_value(
                             json_object_get(json_object_get(doc, "source"), "v")));
                at = json_object_get(index_of_v, v);
                ok = at && (size_t)json_integer_value(at) >= i;
            } else {
                /* Gone: this record or a later one of the item is a REMOVE. */
                for (size_t j = i; j < n && !ok; j++)
                    ok = strcmp(all[j].id, r->id) == 0 && strcmp(all[j].event, "REMOVE") == 0;
            }
            cr_assert(ok,
                      "after kill %d (seed %u): record %s (%s %s v %s) is at or below the "
                      "checkpoint %s of %s but the index %s",
                      round, seed, r->seq, r->event, r->id, r->v, cks,
                      fs_shard_id(w->fs, shards[k]),
                      gone ? "does not have the document" : "holds an older image");
        }
    }
    free(all);
    free(shard_end);
    json_decref(index_of_v);
    json_decref(dump);
    json_decref(ck);
    return past;
}

/* SIGKILL at random moments while records flow and some items are being
 * retried, twelve times, with a shard rollover half-way; after each kill, before the restart, the checkpoint on
 * disk is checked against the index record by record. */
Test(faults, sigkill_never_leaves_a_checkpoint_past_an_unfinished_record)
{
    struct fsworld w;
    const unsigned seed = test_seed();
    struct load l = { .seed = seed };
    int lineage[2], nshards = 1, kills = 0;
    long resendable = 0, records, actions, rejected;
    int64_t second = 1000;
    char why[512];

    cr_log_info("seed %u", seed);
    fsw_setup(&w, NULL);
    lineage[0] = fs_add_shard(w.fs, -1, false);
    put_some(w.fs, lineage[0], &l, 1500, second++);
    /* probe = false: no canary actions at each start to blur the count */
    fsw_config(&w, NULL, "bulk_max_actions = 100\nmax_retry_backoff = 1s\nprobe = false\n");
    for (int round = 0; round < 12; round++) {
        int bursts = 2 + (int)(lrand(&l) % 8);

        if (round == 6) { /* rollover: the parent closes, a child takes over */
            fs_close_shard(w.fs, lineage[0]);
            lineage[1] = fs_add_shard(w.fs, lineage[0], false);
            nshards = 2;
        }
        /* Some items rejected (429) and retried later: records finish out
         * of order, which is what a checkpoint must not skip over. */
        cr_assert_eq(searchd_faults(w.sd, "{\"match\":\"bulk\",\"item_status\":429,"
                                          "\"items\":\"odd\",\"count\":3}"),
                     200);
        fsw_restart(&w);
        for (int b = 0; b < bursts; b++) {
            put_some(w.fs, lineage[nshards - 1], &l, 20 + (int)(lrand(&l) % 100), second++);
            usleep(20000 + (useconds_t)(lrand(&l) % 100) * 1000);
        }
        usleep((useconds_t)(lrand(&l) % 400) * 1000);
        proc_kill(&w.p, SIGKILL);
        cr_assert_eq(proc_wait(&w.p, 10000), 128 + SIGKILL);
        kills++;
        resendable += check_checkpoint(&w, lineage, (size_t)nshards, round, seed);
    }
    fsw_restart(&w);
    /* A last record: once it is indexed, this run has read everything. */
    put_some(w.fs, lineage[nshards - 1], &l, 1, second++);
    cr_assert(fsw_wait_matches(&w, lineage, (size_t)nshards, 60000, why, sizeof(why)),
              "after %d kills (seed %u): %s", kills, seed, why);
    cr_assert(fsw_log_has(&w, "get-records", 10000), "the last run is reading");
    records = (long)(fs_records(w.fs, lineage[0], NULL, 0) + fs_records(w.fs, lineage[1], NULL, 0));
    actions = fsw_actions(&w);
    rejected = faults_applied(&w) * 100; /* bulk_max_actions: each 429'd request */
    cr_log_info("%ld records, %d kills, %ld actions received, at most %ld could be re-sent "
                "after a kill and %ld after a 429",
                records, kills, actions, resendable, rejected);
    cr_expect_leq(actions, records + resendable + rejected,
                  "re-sent actions are only records past a checkpoint at a kill or rejected "
                  "items (seed %u)",
                  seed);
    fsw_teardown(&w);
}

/* ---- a full disk under the state directory ---------------------------------- */

/* The state directory is a 256 kB tmpfs in a private mount namespace (this
 * test process and the daemon only): it is filled while the daemon runs.
 * The write fails with ENOSPC, is logged naming the file, the previous
 * checkpoint stays whole, indexing goes on, and once space is freed the
 * checkpoint catches up. */
Test(faults, a_full_disk_keeps_the_previous_checkpoint_and_the_daemon_retries)
{
    struct fsworld w;
    char state[300], path[1024], filler[1024], err[1024], *before, *after;
    int shard, fd;
    long failures;
    FILE *f;

    /* Before any thread exists: unshare needs a single-threaded process. */
    if (geteuid() != 0 || unshare(CLONE_NEWNS) != 0)
        cr_skip_test("needs root for a private mount namespace");
    cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
    fsw_setup(&w, NULL);
    shard = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, shard, "INSERT", "a", "1", 1000);
    fsw_config(&w, NULL, NULL);
    snprintf(state, sizeof(state), "%s/state", w.dir);
    cr_assert_eq(mkdir(state, 0700), 0);
    cr_assert_eq(mount("tmpfs", state, "tmpfs", 0, "size=256k,mode=0700"), 0, "%s",
                 strerror(errno));
    snprintf(path, sizeof(path), "%s/checkpoints.json", state);
    snprintf(filler, sizeof(filler), "%s/filler", state);
    fsw_restart(&w);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    cr_assert(proc_wait_for_text(path, "\"seq\": \"", 10000) ||
                  proc_wait_for_text(path, "\"seq\":\"", 100),
              "the first checkpoint was written");
    before = proc_slurp(path);

    /* Fill the disk. */
    fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    {
        char block[4096];

        memset(block, 'f', sizeof(block));
        while (write(fd, block, sizeof(block)) > 0)
            ;
        cr_assert_eq(errno, ENOSPC);
    }
    close(fd);
    fs_put(w.fs, shard, "INSERT", "b", "2", 1001);
    cr_assert(fsw_wait_v(&w, "b", "2", 20000), "indexing goes on with a full disk");
    cr_assert(fsw_log_has(&w, "cannot write the checkpoint file", 20000),
              "the failed write is logged");
    cr_expect(fsw_log_has(&w, path, 100), "naming the file");
    failures = (long)fsw_metric(&w, "ddb2es_checkpoint_write_failures_total", "");
    cr_expect_geq(failures, 1, "counted in ddb2es_checkpoint_write_failures_total");
    after = proc_slurp(path);
    cr_expect_str_eq(after, before, "the previous checkpoint is intact");
    free(after);
    {
        struct ckpt *ck = ckpt_new(state);

        cr_expect_eq(ckpt_load(ck, err, sizeof(err)), 0, "and loads: %s", err);
        ckpt_free(ck);
    }
    cr_expect_eq(proc_wait(&w.p, 0), -1, "the daemon keeps running");

    /* Space again: the next periodic write succeeds. */
    cr_assert_eq(unlink(filler), 0);
    cr_assert(fsw_wait_v(&w, "b", "2", 100));
    for (int i = 0; i < 100; i++) {
        after = proc_slurp(path);
        if (strcmp(after, before) != 0)
            break;
        free(after);
        after = NULL;
        usleep(100000);
    }
    cr_assert_not_null(after, "the checkpoint was written once space was freed");
    f = fopen(path, "r");
    cr_assert_not_null(f);
    fclose(f);
    free(after);
    free(before);
    fsw_teardown(&w);
    umount2(state, MNT_DETACH);
}
