/* ddb2es replay: Scan backfills (every type, hash-only and hash+range,
 * interrupted and continued, beside a live daemon and workload, images that
 * waited too long read again), files (a real export layout with gzip, a
 * Lambda event file, stream records, malformed lines), a dead-letter file
 * the daemon wrote, the engine staying down, and the command line.  Against
 * DynamoDB Local and the search double. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/util.h"
#include "daemon/replay.h"
#include "indexer/dlq.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/fakehttp.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

#define DATA "tests/data/replay/"
#define EXPORT_DIR DATA "export/AWSDynamoDB/01700000000000-5a1b2c3d"

static const char *const test_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                        NULL };

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

TestSuite(replay, .timeout = 180);

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

static void new_table(char *name, size_t len, const char *prefix, struct e2e_table *t,
                      const char *hash, const char *ht, const char *range, const char *rt)
{
    ddbc_table_name(name, len, prefix);
    lower(name);
    memset(t, 0, sizeof(*t));
    t->name = t->index = name;
    t->hash = hash;
    t->range = range;
    ddbc_create_table(name, hash, ht, range, rt, "NEW_AND_OLD_IMAGES");
}

/* Starts `ddb2es replay -c conf ARGS...`. */
static void replay_start(struct proc *p, const char *conf, const char *const *args)
{
    static char bin[512];
    const char *argv[32] = { proc_path("ddb2es", bin, sizeof(bin)), "replay", "-c", conf };
    size_t n = 4;

    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    proc_start(p, argv, test_env);
}

static int replay_wait(struct proc *p, long ms)
{
    int rc = proc_wait(p, ms);

    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    return rc;
}

static void dump_log(const char *what, const struct proc *p)
{
    char *log = proc_slurp(p->err_path);
    size_t n = strlen(log);

    /* The end says why it stopped. */
    cr_log_warn("%s log%s:\n%s", what, n > 20000 ? " (its end)" : "",
                n > 20000 ? log + n - 20000 : log);
    free(log);
}

/* The summary's "read N". */
static long summary_read(const struct proc *p)
{
    char *log = proc_slurp(p->err_path), *s = strstr(log, ": read ");
    long n = s ? strtol(s + 7, NULL, 10) : -1;

    free(log);
    return n;
}

static bool log_has(const struct proc *p, const char *text)
{
    char *log = proc_slurp(p->err_path);
    bool yes = strstr(log, text) != NULL;

    free(log);
    return yes;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

static void clear_faults(struct searchd *sd)
{
    long status = 0;

    json_decref(searchd_json(sd, "DELETE", "/_double/faults", NULL, &status));
    cr_assert_eq(status, 200);
}

/* ---- Scan ---------------------------------------------------------------- */

Test(replay, scan_of_every_type_hash_only_and_hash_range_equals_the_table)
{
    char n1[128], n2[128], dir[256], why[1024];
    struct e2e_table t[2];
    struct wl w1, w2;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    int rc;

    need_ddb();
    new_table(n1, sizeof(n1), "scanhr", &t[0], "pk", "S", "sk", "N");
    new_table(n2, sizeof(n2), "scanh", &t[1], "bk", "B", NULL, NULL);
    wl_init(&w1, 11, n1, "pk", "S", "sk", "N", 400);
    w1.big_every = 100; /* a few items near 400 KB */
    wl_init(&w2, 12, n2, "bk", "B", NULL, NULL, 300);
    wl_fill(&w1, 0, 400);
    wl_fill(&w2, 0, 300);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t[0].index); /* DynamoDB numbers: doubles */
    e2e_create_index(sd, t[1].index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), t, 2, NULL, dir, sizeof(dir));

    replay_start(&p, conf, (const char *[]){ "--table", n1, "--scan", "--segments", "3", NULL });
    rc = replay_wait(&p, 120000);
    if (rc != 0 || !e2e_index_equals_table(sd, &t[0], why, sizeof(why)))
        dump_log("replay", &p);
    cr_assert_eq(rc, 0, "replay exits 0 when done");
    cr_assert(e2e_index_equals_table(sd, &t[0], why, sizeof(why)), "hash+range: %s", why);
    cr_assert_eq(summary_read(&p), 400, "the summary counts the items read");

    replay_start(&p, conf, (const char *[]){ "--table", n2, "--scan", NULL });
    rc = replay_wait(&p, 120000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(e2e_index_equals_table(sd, &t[1], why, sizeof(why)), "hash-only, binary: %s", why);
    {
        char path[512];
        struct stat st;

        snprintf(path, sizeof(path), "%s/state/replay-%s.json", dir, n1);
        cr_assert_eq(stat(path, &st), 0, "the progress file is kept");
        cr_expect_eq(st.st_mode & 0777, 0600);
    }
    /* Done once: a second run has nothing left to read. */
    replay_start(&p, conf, (const char *[]){ "--table", n1, "--scan", NULL });
    cr_assert_eq(replay_wait(&p, 60000), 0);
    cr_assert_eq(summary_read(&p), 0, "a finished Scan is not read again");
    searchd_stop(sd);
}

Test(replay, interrupted_scan_continues_where_it_stopped)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct wl w;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    long first, second;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "resume", &t, "id", "N", NULL, NULL);
    wl_init(&w, 21, name, "id", "N", NULL, NULL, 1500);
    wl_fill(&w, 0, 1500);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));

    /* About 5 s at 300 items/s: stop it once some pages are in. */
    replay_start(&p, conf, (const char *[]){ "--table", name, "--scan", "--segments", "2",
                                             "--rate", "300", "--progress-every", "100ms",
                                             NULL });
    /* An ETA is shown once items are being read (and not all of them). */
    cr_assert(proc_wait_for_text(p.err_path, ", ETA ", 30000), "progress is reported");
    proc_kill(&p, SIGINT);
    rc = replay_wait(&p, 30000);
    if (rc != 75)
        dump_log("first replay", &p);
    cr_assert_eq(rc, 75, "an interrupted replay exits 75");
    first = summary_read(&p);
    cr_assert(first > 0 && first < 1500, "read %ld of 1500 before the stop", first);

    replay_start(&p, conf, (const char *[]){ "--table", name, "--scan", NULL });
    rc = replay_wait(&p, 120000);
    if (rc != 0)
        dump_log("second replay", &p);
    cr_assert_eq(rc, 0);
    second = summary_read(&p);
    /* What the first run finished is not read again; at most the pages it
     * had in flight are. */
    cr_assert_lt(second, 1500, "the second run read %ld items", second);
    cr_assert_geq(first + second, 1500);
    cr_assert(log_has(&p, "(continuing)"));
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    searchd_stop(sd);
}

/* Scan segments split over processes (--only-segments): each process a
 * range of one parallel Scan (DynamoDB Scan, Segment/TotalSegments), with
 * its own progress file and lock, on one state directory or many. */
Test(replay, a_scan_split_over_two_processes_equals_the_table)
{
    static const char *const env_2_3[] = { "AWS_ACCESS_KEY_ID=test",
                                           "AWS_SECRET_ACCESS_KEY=test",
                                           "DDB2ES_REPLAY_ONLY_SEGMENTS=2-3", NULL };
    char name[128], dir[256], why[1024], path[512], bin[512];
    struct e2e_table t;
    struct wl w;
    struct searchd *sd;
    struct proc a, b, c;
    const char *conf;
    struct stat st;
    int rc_a, rc_b, fd;

    need_ddb();
    new_table(name, sizeof(name), "split", &t, "id", "N", NULL, NULL);
    wl_init(&w, 31, name, "id", "N", NULL, NULL, 1200);
    wl_fill(&w, 0, 1200);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));

    /* Two processes at once: one by its flag, one by its environment. */
    replay_start(&a, conf, (const char *[]){ "--table", name, "--scan", "--segments", "4",
                                             "--only-segments", "0-1", NULL });
    proc_start(&b, (const char *[]){ proc_path("ddb2es", bin, sizeof(bin)), "replay", "-c", conf,
                                     "--table", name, "--scan", "--segments", "4", NULL },
               env_2_3);
    rc_a = replay_wait(&a, 120000);
    rc_b = replay_wait(&b, 120000);
    if (rc_a != 0)
        dump_log("segments 0-1", &a);
    if (rc_b != 0)
        dump_log("segments 2-3", &b);
    cr_assert_eq(rc_a, 0);
    cr_assert_eq(rc_b, 0);
    cr_assert(log_has(&a, "Scan of segments 0-1 of 4"));
    cr_assert(log_has(&b, "Scan of segments 2-3 of 4"));
    cr_expect_eq(summary_read(&a) + summary_read(&b), 1200, "each item read by one of them "
                 "(%ld + %ld)", summary_read(&a), summary_read(&b));
    cr_assert(summary_read(&a) > 0 && summary_read(&b) > 0, "both ranges hold items");
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    snprintf(path, sizeof(path), "%s/state/replay-%s.segments-2-3.json", dir, name);
    cr_assert_eq(stat(path, &st), 0, "each range has its own progress file");

    /* A range overlapping one that another process holds is refused (73);
     * one beside it is not. */
    snprintf(path, sizeof(path), "%s/state/replay-%s.segments-0-1.lock", dir, name);
    fd = open(path, O_RDWR);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0, "the test holds %s", path);
    replay_start(&c, conf, (const char *[]){ "--table", name, "--scan", "--segments", "4",
                                             "--only-segments", "1-2", NULL });
    cr_assert_eq(replay_wait(&c, 30000), 73, "an overlapping range waits for no one: 73");
    cr_assert(log_has(&c, "segments-0-1.lock"), "the refusal names the lock held");
    replay_start(&c, conf, (const char *[]){ "--table", name, "--scan", NULL });
    cr_assert_eq(replay_wait(&c, 30000), 73, "the whole table overlaps every range");
    replay_start(&c, conf, (const char *[]){ "--table", name, "--scan", "--segments", "4",
                                             "--only-segments", "2-3", NULL });
    cr_assert_eq(replay_wait(&c, 30000), 0, "a range beside the held one runs");
    cr_assert_eq(summary_read(&c), 0, "and finds its saved Scan finished");
    close(fd);
    /* The saved range is another partition than the one asked: refused. */
    replay_start(&c, conf, (const char *[]){ "--table", name, "--scan", "--segments", "8",
                                             "--only-segments", "2-3", NULL });
    cr_assert_eq(replay_wait(&c, 30000), 64);
    cr_assert(log_has(&c, "was saved for segments 2-3 of 4"));
    searchd_stop(sd);
}

/* ---- beside the live daemon ------------------------------------------------ */

struct writer {
    struct wl w;
    atomic_bool stop;
    unsigned writes;
};

static void *write_loop(void *arg)
{
    struct writer *x = arg;

    while (!atomic_load(&x->stop))
        x->writes += wl_step(&x->w);
    return NULL;
}

Test(replay, scan_beside_a_live_workload_and_the_daemon_ends_equal)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct writer x;
    struct searchd *sd;
    struct proc daemon, p;
    pthread_t th;
    const char *conf;
    int rc;
    bool ok;

    need_ddb();
    new_table(name, sizeof(name), "live", &t, "pk", "S", "sk", "N");
    t.extra = "start = latest"; /* the stream has only what happens from now on */
    memset(&x, 0, sizeof(x));
    wl_init(&x.w, 31, name, "pk", "S", "sk", "N", 240);
    wl_fill(&x.w, 0, 240);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&daemon, conf);
    cr_assert(proc_wait_for_text(daemon.err_path, "iterator", 30000), "the daemon reads");

    pthread_create(&th, NULL, write_loop, &x);
    /* Slow enough that updates and deletes land before, during and after
     * each page.  DynamoDB Local rounds ApproximateCreationDateTime down to
     * the minute (DDBLOCAL.md), so the margin must cover a minute here; on
     * AWS (whole seconds) the default 5 s covers clock skew. */
    replay_start(&p, conf, (const char *[]){ "--table", name, "--scan", "--segments", "2",
                                             "--rate", "60", "--margin", "61s", NULL });
    rc = replay_wait(&p, 120000);
    atomic_store(&x.stop, true);
    pthread_join(th, NULL);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert_gt(x.writes, 20, "the workload wrote while the replay ran (%u)", x.writes);
    ok = e2e_wait_equal(sd, &t, 60000, why, sizeof(why));
    if (!ok)
        dump_log("daemon", &daemon);
    cr_assert(ok, "after the backfill and the live stream: %s", why);
    cr_assert_eq(e2e_stop(&daemon, 15000), 0);
    searchd_stop(sd);
}

/* A scanned image that waited longer than --max-age (the engine was down) is
 * read again before it is sent: an item deleted meanwhile is not brought
 * back, an item updated meanwhile is sent as it is now. */
Test(replay, images_that_waited_too_long_are_read_again)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "stale", &t, "id", "S", NULL, NULL);
    for (int i = 0; i < 30; i++) {
        char item[128];

        snprintf(item, sizeof(item), "{\"id\":{\"S\":\"k%d\"},\"v\":{\"N\":\"1\"}}", i);
        ddbc_put(name, item);
    }
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"status\":503,\"count\":-1}"), 200);
    conf = e2e_config(searchd_url(sd), &t, 1, "max_retry_backoff = 200ms", dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", name, "--scan", "--segments", "1",
                                             "--max-age", "1s", "--progress-every", "100ms",
                                             NULL });
    cr_assert(proc_wait_for_text(p.err_path, "30 items read", 30000), "the Scan is read");
    /* The engine is down: nothing is indexed yet.  Change the table now (the
     * update first: a read again that sees the deletes sees it too). */
    ddbc_put(name, "{\"id\":{\"S\":\"k2\"},\"v\":{\"N\":\"2\"}}");
    ddbc_delete(name, "{\"id\":{\"S\":\"k0\"}}");
    ddbc_delete(name, "{\"id\":{\"S\":\"k1\"}}");
    /* Wait until the images are read again after the change. */
    cr_assert(proc_wait_for_text(p.err_path, "deleted since they were scanned", 30000),
              "the expired images are read again");
    /* The images are read again in batches: one read just before the
     * update (k2 still 1) is sent as read if the engine comes back within
     * --max-age.  Past it, every image still waiting was read again after
     * the change. */
    usleep(2500 * 1000);
    clear_faults(sd);
    rc = replay_wait(&p, 60000);
    if (rc != 0 || !e2e_index_equals_table(sd, &t, why, sizeof(why)))
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    searchd_stop(sd);
}

/* ---- files ---------------------------------------------------------------- */

/* Puts every item of a DYNAMODB_JSON file (plain or gzip; {"Item":...} lines
 * or bare items) into the table. */
static void load_items(const char *table, const char *path)
{
    gzFile f = gzopen(path, "rb");
    char line[65536];

    cr_assert_not_null(f, "%s", path);
    while (gzgets(f, line, sizeof(line))) {
        json_t *j = json_loads(line, 0, NULL), *item;

        if (!j)
            continue;
        item = json_object_get(j, "Item") ? json_object_get(j, "Item") : j;
        json_decref(ddbc_callj("PutItem", json_pack("{s:s, s:O}", "TableName", table, "Item",
                                                    item)));
        json_decref(j);
    }
    gzclose(f);
}

Test(replay, export_directory_with_gzip_equals_the_table)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    int rc;
    json_t *dump, *docs, *d;
    const char *id;

    need_ddb();
    new_table(name, sizeof(name), "export", &t, "pk", "S", "sk", "N");
    load_items(name, EXPORT_DIR "/data/0a1b2c3d4e5f60718293a4b5c6.json.gz");
    load_items(name, EXPORT_DIR "/data/f6e5d4c3b2a190817263544536.json.gz");
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", EXPORT_DIR, NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    cr_assert_eq(summary_read(&p), 40);
    /* Versioned at the manifest's exportTime (2023-11-14T22:13:20Z =
     * 1700000000) minus the 5 s margin: ((1700000000 - 5) << 20) - 1. */
    dump = e2e_dump(sd);
    docs = json_object_get(dump, name);
    json_object_foreach(docs, id, d) {
        cr_assert_str_eq(json_string_value(json_object_get(d, "version")),
                         "#N:1782579194757119", "document %s", id);
    }
    json_decref(dump);
    searchd_stop(sd);
}

Test(replay, lambda_event_file_and_stream_records)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "lambda", &t, "pk", "S", "sk", "N");
    load_items(name, DATA "stream-final-items.ndjson"); /* what the records leave */
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", DATA "lambda-event.json",
                                             "--format", "stream", NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file",
                                             DATA "stream-records.ndjson", "--format", "stream",
                                             NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    searchd_stop(sd);
}

/* One stream record of second 1700000000 on item pk = key with v = v. */
static int record(char *out, size_t len, const char *shard, const char *seq, const char *key,
                  int v)
{
    return snprintf(out, len,
                    "{%s%s%s\"eventID\":\"%s\",\"eventName\":\"MODIFY\",\"eventVersion\":\"1.1\","
                    "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"dynamodb\":{"
                    "\"ApproximateCreationDateTime\":1700000000,\"Keys\":{\"pk\":{\"S\":\"%s\"}},"
                    "\"NewImage\":{\"pk\":{\"S\":\"%s\"},\"v\":{\"N\":\"%d\"}},\"SequenceNumber\":"
                    "\"%s\",\"SizeBytes\":20,\"StreamViewType\":\"NEW_IMAGE\"}}",
                    shard ? "\"shardId\":\"" : "", shard ? shard : "", shard ? "\"," : "", seq, key,
                    key, v, seq);
}

static json_t *doc_in(json_t *dump, const char *index, const char *id)
{
    return json_object_get(json_object_get(dump, index), id);
}

/* The daemon numbers the records of a second along each shard's lineage
 * (daemon/ack.h, docver_next).  Here shard A holds x@1 then x@2
 * (versions S|0 and S|1) and the index has x@2 at S|1; shard B holds y, z
 * and w in the same second.  A file with B's records before A's older x@1
 * must give x@1 the version S|0, as the daemon did, so it loses (409);
 * counted over the whole file it got S|2 and overwrote the newer image. */
Test(replay, stream_file_versions_are_the_daemons_per_shard)
{
    char name[128], dir[256], path[512], file[8192], rec[1024], rec2[1024], esc[2048];
    const char *A = "shardId-00000001700000000000-aaaaaaaa";
    const char *B = "shardId-00000001700000000000-bbbbbbbb";
    const uint64_t S = (uint64_t)1700000000 << 20;
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *r, *dump;
    long status;
    size_t n = 0, e = 0;
    char seed[512];
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "shards", &t, "pk", "S", NULL, NULL);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(seed, sizeof(seed), "{\"index\":{\"_index\":\"%s\",\"_id\":\"x\",\"version\":%llu,"
             "\"version_type\":\"external\"}}\n{\"pk\":\"x\",\"v\":2}\n", name,
             (unsigned long long)(S | 1));
    r = searchd_bulk(sd, "/_bulk", seed, &status);
    cr_assert_eq(status, 200);
    json_decref(r);

    /* Line 1: an on-failure record an S3 destination kept, the event as
     * JSON text in "payload"; line 2: one record naming its shard; line 3:
     * an event naming its shard. */
    record(rec, sizeof(rec), NULL, "200000000000000000001", "y", 1);
    record(rec2, sizeof(rec2), NULL, "200000000000000000002", "z", 1);
    {
        char ev[2100];

        snprintf(ev, sizeof(ev), "{\"Records\":[%s,%s]}", rec, rec2);
        for (const char *c = ev; *c; c++) {
            if (*c == '"' || *c == '\\')
                esc[e++] = '\\';
            esc[e++] = *c;
        }
        esc[e] = '\0';
    }
    n += (size_t)snprintf(file + n, sizeof(file) - n,
                          "{\"requestContext\":{\"condition\":\"RetryAttemptsExhausted\"},"
                          "\"version\":\"1.0\",\"DDBStreamBatchInfo\":{\"shardId\":\"%s\","
                          "\"batchSize\":2},\"payload\":\"%s\"}\n", B, esc);
    n += (size_t)record(file + n, sizeof(file) - n, A, "100000000000000000001", "x", 1);
    record(rec, sizeof(rec), NULL, "200000000000000000003", "w", 1);
    n += (size_t)snprintf(file + n, sizeof(file) - n, "\n{\"shardId\":\"%s\",\"Records\":[%s]}\n",
                          B, rec);
    snprintf(path, sizeof(path), "%s/shards.ndjson", dir);
    write_text(path, file);

    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", path, "--format",
                                             "stream", NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    dump = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc_in(dump, name, "x"),
                                                                    "source"), "v")),
                 2, "the older image of x lost");
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "x"), "version")),
                 (json_int_t)(S | 1));
    /* B's records got the daemon's numbers too. */
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "y"), "version")),
                 (json_int_t)(S | 0));
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "z"), "version")),
                 (json_int_t)(S | 1));
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "w"), "version")),
                 (json_int_t)(S | 2));
    json_decref(dump);

    /* Records that name no shard: numbered along their item.  v keeps the
     * order of its two records; the older x (after four records of the
     * second) still loses. */
    n = 0;
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "300000000000000000001", "v", 1);
    file[n++] = '\n';
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "300000000000000000002", "v", 2);
    file[n++] = '\n';
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "300000000000000000003", "u", 1);
    file[n++] = '\n';
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "300000000000000000004", "t", 1);
    file[n++] = '\n';
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "100000000000000000001", "x", 1);
    file[n++] = '\n';
    file[n] = '\0';
    write_text(path, file);
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", path, "--format",
                                             "stream", NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    dump = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc_in(dump, name, "x"),
                                                                    "source"), "v")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(doc_in(dump, name, "v"),
                                                                    "source"), "v")), 2);
    json_decref(dump);

    /* A child named with its parent goes on from the parent's ordinal (the
     * daemon reads the parent to its end first, then the child); a record
     * given twice by one shard (a retried batch) counts once. */
    n = 0;
    n += (size_t)snprintf(file + n, sizeof(file) - n, "{\"shardId\":\"P\",\"Records\":[");
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "400000000000000000001", "p1", 1);
    file[n++] = ',';
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "400000000000000000002", "p2", 1);
    n += (size_t)snprintf(file + n, sizeof(file) - n, "]}\n{\"shardId\":\"P\",\"Records\":[");
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "400000000000000000002", "p2", 1);
    n += (size_t)snprintf(file + n, sizeof(file) - n, "]}\n{\"shardId\":\"C\",\"parentShardId\":"
                                                      "\"P\",\"Records\":[");
    n += (size_t)record(file + n, sizeof(file) - n, NULL, "400000000000000000005", "c1", 1);
    n += (size_t)snprintf(file + n, sizeof(file) - n, "]}\n");
    write_text(path, file);
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", path, "--format",
                                             "stream", NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(log_has(&p, "1 stream records a shard had already given were skipped"));
    dump = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "p2"), "version")),
                 (json_int_t)(S | 1));
    cr_assert_eq(json_integer_value(json_object_get(doc_in(dump, name, "c1"), "version")),
                 (json_int_t)(S | 2), "carried from the parent");
    json_decref(dump);
    searchd_stop(sd);
}

Test(replay, malformed_line_exits_65_naming_file_and_line_after_the_lines_before)
{
    char name[128], dir[256];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *dump, *docs;
    size_t live = 0;
    const char *id;
    json_t *d;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "malformed", &t, "pk", "S", "sk", "N");
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", DATA "malformed-export.json",
                                             "--read-time", "2023-11-14T22:13:20Z", NULL });
    rc = replay_wait(&p, 60000);
    cr_assert_eq(rc, 65);
    cr_assert(log_has(&p, "ddb2es replay: " DATA "malformed-export.json:4: not JSON"),
              "names the file and the line");
    dump = e2e_dump(sd);
    docs = json_object_get(dump, name);
    json_object_foreach(docs, id, d) live++;
    cr_assert_eq(live, 3, "the 3 lines before it are indexed, none after (%zu)", live);
    json_decref(dump);

    /* An export file without its manifest needs the export's time. */
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", DATA "malformed-export.json",
                                             NULL });
    cr_assert_eq(replay_wait(&p, 30000), 64);
    cr_assert(log_has(&p, "--read-time"));
    searchd_stop(sd);
}

/* ---- the dead-letter file -------------------------------------------------- */

Test(replay, dead_letters_of_the_daemon_are_sent_again_once_fixed)
{
    char name[128], dir[256], why[1024], dlq[512];
    struct e2e_table t;
    struct searchd *sd;
    struct proc daemon, p;
    const char *conf;
    char *text;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "dlq", &t, "id", "S", NULL, NULL);
    sd = searchd_start("--poison-field", "poison", NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(dlq, sizeof(dlq), "%s/dlq.ndjson", dir);
    e2e_start(&daemon, conf);
    ddbc_put(name, "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"b\"},\"poison\":{\"S\":\"x\"},\"n\":{\"N\":\"12345678901234567890123456789012345678\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"c|d\"},\"poison\":{\"L\":[{\"N\":\"-1E-130\"}]}}");
    cr_assert(proc_wait_for_text(dlq, "\"id\":\"c|d\"", 30000), "the daemon dead-letters");
    cr_assert(proc_wait_for_text(dlq, "\"id\":\"b\"", 30000));
    cr_assert_eq(e2e_stop(&daemon, 15000), 0);
    cr_assert_not(e2e_index_equals_table(sd, &t, why, sizeof(why)), "two documents are missing");

    /* The mapping is fixed: the poison field is accepted now. */
    cr_assert_eq(searchd_config(sd, "{\"poison_field\":\"\"}"), 200);
    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", dlq, "--format", "dlq",
                                             NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert_eq(summary_read(&p), 2);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);

    /* Entries that fail again go to a new file, never lost. */
    cr_assert_eq(searchd_config(sd, "{\"poison_field\":\"poison\"}"), 200);
    {
        char out[512];

        snprintf(out, sizeof(out), "%s/again.ndjson", dir);
        replay_start(&p, conf, (const char *[]){ "--table", name, "--file", dlq, "--format",
                                                 "dlq", "--index", "again", "--dlq-out", out,
                                                 NULL });
        cr_assert_eq(replay_wait(&p, 60000), 0);
        text = proc_slurp(out);
        cr_assert_not_null(strstr(text, "\"id\":\"b\""), "b failed again: %s", text);
        cr_assert_not_null(strstr(text, "\"id\":\"c|d\""));
        cr_assert_not_null(strstr(text, "12345678901234567890123456789012345678"),
                           "the document's numbers are kept to the digit");
        free(text);
    }
    searchd_stop(sd);
}

/* A dead letter is hours old when it is replayed: the item may have been
 * updated or deleted since, and the engine may hold a newer image or have
 * forgotten a newer delete.  So the replay reads each entry's item again
 * (consistent BatchGetItem) and sends what the table holds now, or a delete
 * when it is gone: the index ends equal to the table.  Entries carry the
 * item's key ("keys"); older ones without it get it back from the _id. */
Test(replay, dead_letters_are_sent_as_the_table_holds_the_item_now)
{
    char name[128], dir[256], why[1024], dlq[512], *text, seed[2048], lines[8192];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    uint64_t old = (uint64_t)(time(NULL) - 3600) << 20;
    json_t *r, *dump;
    long status;
    int rc, n = 0;

    need_ddb();
    new_table(name, sizeof(name), "dlqnow", &t, "pk", "S", "sk", "N");
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    /* What the index held when the entries were written: old images. */
    for (const char *const *id = (const char *const[]){ "a|1", "b|2", "c|3", "d|4", "e|5", NULL };
         *id; id++)
        n += snprintf(seed + n, sizeof(seed) - (size_t)n,
                      "{\"index\":{\"_index\":\"%s\",\"_id\":\"%s\",\"version\":%llu,"
                      "\"version_type\":\"external\"}}\n{\"v\":\"old\"}\n",
                      name, *id, (unsigned long long)old);
    r = searchd_bulk(sd, "/_bulk", seed, &status);
    cr_assert_eq(status, 200);
    json_decref(r);
    /* The table now: a, c and e updated, b and d deleted. */
    ddbc_put(name, "{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"},\"v\":{\"S\":\"new\"}}");
    ddbc_put(name, "{\"pk\":{\"S\":\"c\"},\"sk\":{\"N\":\"3\"},\"v\":{\"S\":\"new\"}}");
    ddbc_put(name, "{\"pk\":{\"S\":\"e\"},\"sk\":{\"N\":\"5\"},\"v\":{\"N\":\"12345678901234567890123456789012345678\"}}");

    n = 0;
#define ENTRY(id, keys, action, doc)                                                              \
    n += snprintf(lines + n, sizeof(lines) - (size_t)n,                                           \
                  "{\"time\":\"2024-05-01T12:00:00.000Z\",\"table\":\"%s\",\"shard\":\"s\","        \
                  "\"seq\":\"100000000000000000001\",\"index\":\"%s\",\"id\":\"%s\"%s,"             \
                  "\"action\":\"%s\",\"version\":%llu,\"status\":400,\"error\":{\"type\":"          \
                  "\"mapper_parsing_exception\",\"reason\":\"x\"},\"document\":%s}\n",              \
                  name, name, id, keys, action, (unsigned long long)old, doc)
    ENTRY("a|1", ",\"keys\":{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"}}", "index", "{\"v\":\"old\"}");
    ENTRY("b|2", ",\"keys\":{\"pk\":{\"S\":\"b\"},\"sk\":{\"N\":\"2\"}}", "index", "{\"v\":\"old\"}");
    ENTRY("c|3", "", "index", "{\"v\":\"old\"}");      /* written before "keys" existed */
    ENTRY("d|4", ",\"keys\":null", "delete", "null");   /* keys unknown (a hmac'd key) */
    /* A record's Keys may spell a number otherwise than the table. */
    ENTRY("e|5", ",\"keys\":{\"pk\":{\"S\":\"e\"},\"sk\":{\"N\":\"5.0E0\"}}", "index",
          "{\"v\":\"old\"}");
#undef ENTRY
    n += snprintf(lines + n, sizeof(lines) - (size_t)n,
                  "{\"table\":\"another\",\"index\":\"x\",\"id\":\"z\",\"action\":\"delete\","
                  "\"document\":null}\n");
    snprintf(dlq, sizeof(dlq), "%s/old-dlq.ndjson", dir);
    write_text(dlq, lines);
    cr_assert_not(e2e_index_equals_table(sd, &t, why, sizeof(why)));

    replay_start(&p, conf, (const char *[]){ "--table", name, "--file", dlq, "--format", "dlq",
                                             NULL });
    rc = replay_wait(&p, 60000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert_eq(summary_read(&p), 5);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    dump = e2e_dump(sd); /* numbers quoted: "#N:<digits>" */
    {
        const char *v = json_string_value(json_object_get(
            json_object_get(json_object_get(dump, name), "a|1"), "version"));

        cr_assert_not_null(v);
        cr_assert_gt(strtoull(v + 3, NULL, 10), old, "sent at the Scan's version, above the "
                                                      "entry's (%s)", v);
    }
    json_decref(dump);
    text = proc_slurp(p.err_path);
    cr_assert_not_null(strstr(text, "of which 2 gone when read again"), "%s", text);
    free(text);
    searchd_stop(sd);
}

/* ---- the engine down, the command line ---------------------------------- */

/* A scripted DynamoDB endpoint for a table "thr" of 60 items: Scan answers
 * ProvisionedThroughputExceededException for its first `throttles` calls, then
 * an empty page with a LastEvaluatedKey, then pages of at most 10 items
 * (fewer when the Scan's Limit asks for fewer).  It imitates what DynamoDB does when a Scan
 * exceeds the table's read capacity: an HTTP 400 with that __type, to be
 * retried with exponential backoff — "Error retries and exponential backoff",
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
 * (DynamoDB Local never throttles). */
#define THR_ITEMS 60

struct thr {
    atomic_int scans, throttled, throttles;
    atomic_bool empty_sent;
};

static void thr_handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    struct thr *t = arg;
    static char body[8192];
    const char *target = strstr(req->headers, "DynamoDB_20120810.");
    json_t *in = json_loads(req->body, 0, NULL), *start, *items;
    long from = 0, limit = 10;

    out->status = 200;
    out->body = body;
    if (target && strncmp(target + 18, "DescribeTable", 13) == 0) {
        snprintf(body, sizeof(body),
                 "{\"Table\":{\"TableName\":\"thr\",\"TableStatus\":\"ACTIVE\",\"ItemCount\":%d,"
                 "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}],"
                 "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"N\"}]}}",
                 THR_ITEMS);
    } else if (target && strncmp(target + 18, "Scan", 4) == 0) {
        atomic_fetch_add(&t->scans, 1);
        if (atomic_fetch_add(&t->throttled, 1) < atomic_load(&t->throttles)) {
            out->status = 400;
            snprintf(body, sizeof(body),
                     "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                     "ProvisionedThroughputExceededException\",\"message\":\"The level of "
                     "configured provisioned throughput for the table was exceeded.\"}");
        } else {
            atomic_fetch_sub(&t->throttled, 1);
            if (!atomic_exchange(&t->empty_sent, true)) {
                /* A page with no items but a LastEvaluatedKey: "a Scan can
                 * result in no table data meeting the filter criteria" /
                 * segments may be empty — the Scan API reference says to
                 * go on while LastEvaluatedKey is present. */
                snprintf(body, sizeof(body), "{\"Items\":[],\"Count\":0,\"ScannedCount\":0,"
                                             "\"LastEvaluatedKey\":{\"pk\":{\"N\":\"-1\"}}}");
                json_decref(in);
                return;
            }
            start = json_object_get(in, "ExclusiveStartKey");
            if (start)
                from = atol(json_string_value(json_object_get(json_object_get(start, "pk"),
                                                              "N"))) + 1;
            if (json_integer_value(json_object_get(in, "Limit")) > 0 &&
                json_integer_value(json_object_get(in, "Limit")) < limit)
                limit = (long)json_integer_value(json_object_get(in, "Limit"));
            items = json_array();
            for (long k = from; k < THR_ITEMS && k < from + limit; k++) {
                char num[24];

                snprintf(num, sizeof(num), "%ld", k);
                json_array_append_new(items, json_pack("{s:{s:s},s:{s:s}}", "pk", "N", num, "v",
                                                       "S", "x"));
            }
            json_t *page = json_pack("{s:o,s:I}", "Items", items, "Count",
                                     (json_int_t)json_array_size(items));
            if (from + limit < THR_ITEMS) {
                char num[24];

                snprintf(num, sizeof(num), "%ld", from + limit - 1);
                json_object_set_new(page, "LastEvaluatedKey",
                                    json_pack("{s:{s:s}}", "pk", "N", num));
            }
            char *text = json_dumps(page, JSON_COMPACT);

            snprintf(body, sizeof(body), "%s", text);
            free(text);
            json_decref(page);
        }
    } else {
        out->status = 400;
        snprintf(body, sizeof(body), "{\"__type\":\"com.amazon.coral.validate#"
                                     "ValidationException\",\"message\":\"unexpected call\"}");
    }
    json_decref(in);
}

Test(replay, a_throttled_scan_backs_off_lowers_its_rate_and_finishes)
{
    char dir[256];
    struct e2e_table t = { .name = "thr", .index = "thr", .hash = "pk" };
    struct thr th = { .throttles = 8 };
    struct fakehttp *ddb = fake_start();
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *dump, *docs;
    int rc;

    fake_set_handler(ddb, thr_handler, &th);
    sd = searchd_start(NULL);
    conf = e2e_config_ex(fake_url(ddb), searchd_url(sd), &t, 1, NULL, NULL, dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", "thr", "--scan", "--segments", "1",
                                             "--rate", "200", NULL });
    rc = replay_wait(&p, 90000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(log_has(&p, "Scan throttled (ProvisionedThroughputExceededException): lowering the "
                          "rate"),
              "the throttling is not reported");
    /* The throttled calls were each answered once and the rest are pages of
     * at least one item: no tight retry loop, nothing read twice. */
    cr_log_info("Scan calls: %d", atomic_load(&th.scans));
    cr_assert(atomic_load(&th.scans) >= 8 + 7 && atomic_load(&th.scans) <= 8 + THR_ITEMS + 2,
              "Scan calls: %d", atomic_load(&th.scans));
    dump = searchd_dump(sd);
    docs = json_object_get(dump, "thr");
    cr_assert_eq(json_object_size(docs), THR_ITEMS, "%zu documents", json_object_size(docs));
    cr_assert_not_null(json_object_get(docs, "59"));
    json_decref(dump);
    searchd_stop(sd);
    fake_stop(ddb);
}

/* A scripted DynamoDB for a table "bgt" (hash key pk, N): items 0..149
 * except every tenth, deleted.  BatchGetItem answers its first call with
 * ProvisionedThroughputExceededException, then returns half of the keys it
 * is asked for and hands the rest back in UnprocessedKeys: "If DynamoDB
 * returns any unprocessed items, you should retry the batch operation on
 * those items ... we strongly recommend that you use an exponential backoff
 * algorithm" (BatchGetItem, DynamoDB API reference). */
#define BG_ITEMS 150

struct bg {
    atomic_int calls, max_keys, inconsistent;
};

static void bg_handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    struct bg *b = arg;
    static char body[65536];
    const char *target = strstr(req->headers, "DynamoDB_20120810.");
    json_t *in = json_loads(req->body, 0, NULL), *keys, *resp, *unproc, *k, *rq;
    size_t i, n;
    char *text;

    out->status = 200;
    out->body = body;
    if (target && strncmp(target + 18, "DescribeTable", 13) == 0) {
        snprintf(body, sizeof(body),
                 "{\"Table\":{\"TableName\":\"bgt\",\"TableStatus\":\"ACTIVE\",\"ItemCount\":%d,"
                 "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}],"
                 "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"N\"}]}}",
                 BG_ITEMS);
        json_decref(in);
        return;
    }
    if (!target || strncmp(target + 18, "BatchGetItem", 12) != 0) {
        out->status = 400;
        snprintf(body, sizeof(body), "{\"__type\":\"com.amazon.coral.validate#"
                                     "ValidationException\",\"message\":\"unexpected call\"}");
        json_decref(in);
        return;
    }
    rq = json_object_get(json_object_get(in, "RequestItems"), "bgt");
    keys = json_object_get(rq, "Keys");
    n = json_array_size(keys);
    if ((int)n > atomic_load(&b->max_keys))
        atomic_store(&b->max_keys, (int)n);
    if (!json_is_true(json_object_get(rq, "ConsistentRead")))
        atomic_fetch_add(&b->inconsistent, 1);
    if (atomic_fetch_add(&b->calls, 1) == 0) {
        out->status = 400;
        snprintf(body, sizeof(body), "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                                     "ProvisionedThroughputExceededException\",\"message\":\"The "
                                     "level of configured provisioned throughput for the table "
                                     "was exceeded.\"}");
        json_decref(in);
        return;
    }
    resp = json_array();
    unproc = json_array();
    json_array_foreach(keys, i, k) {
        long pk = atol(json_string_value(json_object_get(json_object_get(k, "pk"), "N")));

        if (n > 1 && i >= n / 2)
            json_array_append(unproc, k);
        else if (pk % 10 != 0)
            json_array_append_new(resp, json_pack("{s:{s:s},s:{s:s}}", "pk", "N",
                                                  json_string_value(json_object_get(
                                                      json_object_get(k, "pk"), "N")),
                                                  "v", "S", "now"));
    }
    {
        json_t *reply = json_pack("{s:{s:o},s:o}", "Responses", "bgt", resp, "UnprocessedKeys",
                                  json_array_size(unproc)
                                      ? json_pack("{s:{s:o,s:b}}", "bgt", "Keys", unproc,
                                                  "ConsistentRead", 1)
                                      : (json_decref(unproc), json_object()));

        text = json_dumps(reply, JSON_COMPACT);
        snprintf(body, sizeof(body), "%s", text);
        free(text);
        json_decref(reply);
    }
    json_decref(in);
}

Test(replay, dead_letter_reads_retry_throttling_and_unprocessed_keys)
{
    char dir[256], dlq[512];
    struct e2e_table t = { .name = "bgt", .index = "bgt", .hash = "pk" };
    struct bg b = { 0 };
    struct fakehttp *ddb = fake_start();
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *dump, *docs;
    FILE *f;
    int rc;

    fake_set_handler(ddb, bg_handler, &b);
    sd = searchd_start(NULL);
    conf = e2e_config_ex(fake_url(ddb), searchd_url(sd), &t, 1, NULL, NULL, dir, sizeof(dir));
    snprintf(dlq, sizeof(dlq), "%s/bg-dlq.ndjson", dir);
    f = fopen(dlq, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < BG_ITEMS; i++)
        fprintf(f, "{\"table\":\"bgt\",\"index\":\"bgt\",\"id\":\"%d\",\"keys\":{\"pk\":{\"N\":\"%d\"}},"
                   "\"action\":\"index\",\"version\":5,\"status\":400,\"document\":{\"v\":\"old\"}}\n",
                i, i);
    cr_assert_eq(fclose(f), 0);
    replay_start(&p, conf, (const char *[]){ "--table", "bgt", "--file", dlq, "--format", "dlq",
                                             NULL });
    rc = replay_wait(&p, 90000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    cr_assert(log_has(&p, "ProvisionedThroughputExceededException"), "the throttling is logged");
    cr_assert_leq(atomic_load(&b.max_keys), 100, "at most 100 keys a call");
    cr_assert_eq(atomic_load(&b.inconsistent), 0, "every read is consistent");
    /* 150 keys, at most 100 a call, half of each handed back: more calls
     * than keys/100, far fewer than one per key. */
    cr_assert_geq(atomic_load(&b.calls), 4, "%d calls", atomic_load(&b.calls));
    cr_assert_lt(atomic_load(&b.calls), 40, "%d calls", atomic_load(&b.calls));
    dump = searchd_dump(sd);
    docs = json_object_get(dump, "bgt");
    cr_assert_eq(json_object_size(docs), BG_ITEMS, "%zu documents", json_object_size(docs));
    for (int i = 0; i < BG_ITEMS; i++) {
        char id[16];
        json_t *d;

        snprintf(id, sizeof(id), "%d", i);
        d = json_object_get(docs, id);
        cr_assert_not_null(d, "%s", id);
        if (i % 10 == 0)
            cr_assert(json_is_true(json_object_get(d, "deleted")), "%s was deleted", id);
        else
            cr_assert_str_eq(json_string_value(json_object_get(json_object_get(d, "source"), "v")),
                             "now", "%s", id);
    }
    json_decref(dump);
    searchd_stop(sd);
    fake_stop(ddb);
}

Test(replay, dry_run_prints_the_bulk_bodies_and_sends_nothing)
{
    char dir[256];
    struct e2e_table t = { .name = "dry", .index = "dry", .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *out;
    json_t *stats;
    int rc;

    sd = searchd_start(NULL);
    conf = e2e_config_ex("http://127.0.0.1:9", searchd_url(sd), &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", "dry", "--file", DATA "lambda-event.json",
                                             "--format", "stream", "--key", "pk,sk", "--dry-run",
                                             NULL });
    rc = replay_wait(&p, 30000);
    if (rc != 0)
        dump_log("replay", &p);
    cr_assert_eq(rc, 0);
    out = proc_slurp(p.out_path);
    cr_assert(strstr(out, "{\"index\":{\"_index\":\"dry\"") ||
                  strstr(out, "{\"delete\":{\"_index\":\"dry\""),
              "no bulk action on stdout:\n%.2000s", out);
    cr_assert(strstr(out, "\"version_type\":\"external"), "no external version:\n%.2000s", out);
    free(out);
    stats = searchd_stats(sd);
    cr_assert_eq(json_integer_value(json_object_get(stats, "bulk_requests")), 0,
                 "the engine was called: %s", json_dumps(stats, JSON_COMPACT));
    json_decref(stats);
    searchd_stop(sd);
}

Test(replay, engine_down_for_give_up_after_exits_69)
{
    char dir[256];
    struct e2e_table t = { .name = "offline", .index = "offline", .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    const char *conf;

    sd = searchd_start(NULL);
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"status\":503,\"count\":-1}"), 200);
    conf = e2e_config_ex("http://127.0.0.1:9", searchd_url(sd), &t, 1, NULL,
                         "max_retry_backoff = 200ms", dir, sizeof(dir));
    replay_start(&p, conf, (const char *[]){ "--table", "offline", "--file", DATA "lambda-event.json",
                                             "--format", "stream", "--key", "pk,sk",
                                             "--give-up-after", "2s", NULL });
    cr_assert_eq(replay_wait(&p, 30000), 69);
    cr_assert(log_has(&p, "failed every request"));
    searchd_stop(sd);
}

Test(replay, command_line_mistakes_exit_64)
{
    static char bin[512];
    const char *b = proc_path("ddb2es", bin, sizeof(bin));
    struct proc p;

    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--scan", NULL }, NULL, 10000, &p), 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", NULL }, NULL, 10000, &p),
                 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--scan", "--file", "x",
                                            NULL }, NULL, 10000, &p), 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--file", "x", "--format",
                                            "csv", NULL }, NULL, 10000, &p), 64);
    cr_assert_eq(proc_run((const char *[]){ b, "run", "--scan", NULL }, NULL, 10000, &p), 64);
    /* --only-segments: needs --segments, a range inside it, and --scan. */
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--scan",
                                            "--only-segments", "0-1", NULL }, NULL, 10000, &p),
                 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--scan", "--segments",
                                            "4", "--only-segments", "3-1", NULL }, NULL, 10000,
                          &p), 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--scan", "--segments",
                                            "4", "--only-segments", "4", NULL }, NULL, 10000,
                          &p), 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--table", "t", "--file", "x",
                                            "--only-segments", "0", NULL }, NULL, 10000, &p),
                 64);
    cr_assert_eq(proc_run((const char *[]){ b, "replay", "--help", NULL }, NULL, 10000, &p), 0);
    cr_assert(proc_wait_for_text(p.out_path, "--max-age", 1000));
}

/* ---- pure parts ------------------------------------------------------------ */

Test(replay_pure, dead_letter_lines_read_back_with_exact_numbers)
{
    const char *line = "{\"time\":\"2024-05-01T12:00:00.123Z\",\"table\":\"t\",\"shard\":null,"
                       "\"seq\":null,\"index\":\"i\",\"id\":\"k\",\"action\":\"index\","
                       "\"version\":42,\"status\":400,\"error\":{\"type\":\"x\",\"reason\":\"y\"},"
                       "\"document\":{\"n\":12345678901234567890123456789012345678,"
                       "\"s\":\"a}\\\"b\",\"l\":[1E+125,{\"m\":null}]}}";
    const char *doc;
    size_t len;
    json_t *meta;
    char err[128];

    cr_assert_eq(dlq_parse(line, strlen(line), &meta, &doc, &len, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(json_integer_value(json_object_get(meta, "version")), 42);
    cr_assert_str_eq(json_string_value(json_object_get(meta, "id")), "k");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(meta, "error"), "type")),
                     "x");
    cr_assert_eq(len, strlen(line) - (size_t)(doc - line) - 1);
    cr_assert_eq(strncmp(doc, "{\"n\":12345678901234567890123456789012345678,", 44), 0);
    json_decref(meta);

    line = "{\"index\":\"i\",\"id\":\"k\",\"action\":\"delete\",\"document\":null,\"version\":7}";
    cr_assert_eq(dlq_parse(line, strlen(line), &meta, &doc, &len, err, sizeof(err)), 0);
    cr_assert_null(doc);
    cr_assert_eq(json_integer_value(json_object_get(meta, "version")), 7);
    json_decref(meta);

    cr_assert_eq(dlq_parse("{\"id\":\"k\"", 9, &meta, &doc, &len, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(dlq_parse("[1]", 3, &meta, &doc, &len, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(dlq_parse("{\"a\":1}", 7, &meta, &doc, &len, err, sizeof(err)), -EBADMSG);
}

/* A document the engine could not parse (a transform bug, or memory gone
 * bad: NUL bytes, a splice) is kept as a JSON string of its bytes (base64
 * when they are not UTF-8), so the
 * dead-letter line stays JSON and reads back; a valid one, with a 38-digit
 * number and a lone surrogate's escape, stays embedded to the digit. */
Test(replay_pure, a_document_that_is_not_json_is_dead_lettered_as_a_string)
{
    static const char bad_nul[] = "\0\0\0b1131\",\"title\":\"x\"}";
    static const char *bad[] = { "      e8643be\",\"title\":\"x\",\"n\":1}",  /* blanks, a splice */
                                 "{\"a\":1", "{\"a\":1}}", "{\"a\":1} {", "e8643be", "[1]x",
                                 "{\"a\":xyz}", "{\"a\":[1,]}", "{\"a\":01}", "{\"a\":\"\\x\"}",
                                 "{\"a\":\"\\u12\"}" };
    static const char not_utf8[] = "{\"a\":\"\xff\xfe\"";
    const char *good = "{\"n\":12345678901234567890123456789012345678,\"s\":\"\\ud800\",\"l\":[1E+125]}";
    struct doc d;
    struct buf out;
    json_t *meta;
    const char *doc;
    size_t len;
    char err[128];

    memset(&d, 0, sizeof(d));
    d.op = DOC_INDEX;
    d.index = "posts";
    d.table = "posts";
    memcpy(d.id, "k", 1);
    d.id_len = 1;
    buf_init(&d.keys, 0);
    buf_init(&out, BUF_NOMAX);
    for (size_t i = 0; i <= ARRAY_SIZE(bad); i++) {
        const char *b = i < ARRAY_SIZE(bad) ? bad[i] : bad_nul;
        size_t blen = i < ARRAY_SIZE(bad) ? strlen(bad[i]) : sizeof(bad_nul) - 1;
        json_error_t jerr;
        json_t *line, *v;

        buf_reset(&out);
        cr_assert_eq(dlq_format(&out, &d, 400, "mapper_parsing_exception", "Malformed content",
                                b, blen, 0), 0);
        line = json_loadb(out.ptr, out.len, JSON_ALLOW_NUL, &jerr);
        cr_assert_not_null(line, "case %zu: %s in %.*s", i, jerr.text, (int)out.len, out.ptr);
        v = json_object_get(line, "document");
        cr_assert(json_is_string(v), "case %zu", i);
        cr_assert_eq(json_string_length(v), blen, "case %zu", i);
        cr_assert_eq(memcmp(json_string_value(v), b, blen), 0, "case %zu", i);
        json_decref(line);
        cr_assert_eq(dlq_parse(out.ptr, out.len, &meta, &doc, &len, err, sizeof(err)), 0, "%s", err);
        json_decref(meta);
    }
    /* Not UTF-8 either: base64, as for a record that is not. */
    buf_reset(&out);
    cr_assert_eq(dlq_format(&out, &d, 400, "x", "y", not_utf8, strlen(not_utf8), 0), 0);
    cr_assert_not_null(strstr(out.ptr, ",\"document\":\"base64:eyJhIjoi//4i\"}"), "%s", out.ptr);
    buf_reset(&out);
    cr_assert_eq(dlq_format(&out, &d, 400, "x", "y", good, strlen(good), 0), 0);
    cr_assert_not_null(strstr(out.ptr, ",\"document\":{\"n\":12345678901234567890123456789012345678,"));
    cr_assert_eq(dlq_parse(out.ptr, out.len, &meta, &doc, &len, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(len, strlen(good));
    cr_assert_eq(memcmp(doc, good, len), 0);
    json_decref(meta);
    buf_close(&out);
}

Test(replay_pure, times_parse_as_iso_8601_or_epoch_seconds)
{
    int64_t t;

    cr_assert_eq(replay_parse_time("2023-11-14T22:13:20.000Z", &t), 0);
    cr_assert_eq(t, 1700000000);
    cr_assert_eq(replay_parse_time("2023-11-14T23:13:20+01:00", &t), 0);
    cr_assert_eq(t, 1700000000);
    cr_assert_eq(replay_parse_time("1700000000", &t), 0);
    cr_assert_eq(t, 1700000000);
    cr_assert_eq(replay_parse_time("2023-11-14 22:13:20", &t), -EINVAL);
    cr_assert_eq(replay_parse_time("", &t), -EINVAL);
}
