/* End to end: ddb2es run against DynamoDB Local and the search double. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonx.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

TestSuite(pipeline, .timeout = 120);

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("ddb2es log:\n%s", log);
    free(log);
}

Test(pipeline, follows_inserts_updates_and_deletes)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t = { .hash = "author", .range = "ts" };
    struct searchd *sd;
    struct proc p;
    struct stat st;
    const char *conf;
    bool ok;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "posts");
    t.name = t.index = name;
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    ddbc_create_table(name, "author", "S", "ts", "N", "NEW_AND_OLD_IMAGES");
    sd = searchd_start(NULL);
    /* DynamoDB numbers (38 digits, ±1E+125) need an index whose numbers are
     * doubles: README "Documents". */
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);

    ddbc_put(name, "{\"author\":{\"S\":\"ana\"},\"ts\":{\"N\":\"1700000000\"},\"text\":{\"S\":\"hi \\\"there\\\"\\n\"},"
                   "\"likes\":{\"N\":\"12345678901234567890123456789012345678\"},\"tags\":{\"SS\":[\"a\",\"b\"]}}");
    ddbc_put(name, "{\"author\":{\"S\":\"bo|b\"},\"ts\":{\"N\":\"-1.5E-100\"},\"m\":{\"M\":{\"x\":{\"L\":[{\"N\":\"1\"},{\"NULL\":true},{\"N\":\"-2.5\"}]},\"f\":{\"BOOL\":false}}},"
                   "\"bin\":{\"B\":\"AAEC\"},\"ns\":{\"NS\":[\"1E+125\",\"-0.000001\"]},\"bs\":{\"BS\":[\"AQ==\"]}}");
    ddbc_put(name, "{\"author\":{\"S\":\"cy\"},\"ts\":{\"N\":\"3\"},\"text\":{\"S\":\"naïve ☕ \\u0001\"}}");
    ok = e2e_wait_equal(sd, &t, 30000, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the inserts: %s", why);

    json_decref(ddbc_callj("UpdateItem", json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:s, s:{s:{s:s}}}",
        "TableName", name, "Key", "author", "S", "ana", "ts", "N", "1700000000",
        "UpdateExpression", "SET likes = :v", "ExpressionAttributeValues", ":v", "N", "-9.9999999999999999999999999999999999999E+125")));
    ddbc_delete(name, "{\"author\":{\"S\":\"cy\"},\"ts\":{\"N\":\"3\"}}");
    ok = e2e_wait_equal(sd, &t, 30000, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the update and the delete: %s", why);

    cr_assert_eq(e2e_stop(&p, 15000), 0, "a clean stop exits 0");
    {
        char path[512];

        snprintf(path, sizeof(path), "%s/state/checkpoints.json", dir);
        cr_assert_eq(stat(path, &st), 0, "the checkpoint file exists");
        cr_expect_eq(st.st_mode & 0777, 0600, "checkpoint mode %o", st.st_mode & 0777);
    }
    searchd_stop(sd);
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

/* Four tables in one process: hash+range on NEW_AND_OLD_IMAGES with items
 * near 400 KB, hash-only numeric keys on NEW_IMAGE, binary keys on
 * KEYS_ONLY, string keys on OLD_IMAGE (the last two read the current item
 * with BatchGetItem). */
#define NTAB 4
struct trio {
    char names[NTAB][128];
    struct e2e_table t[NTAB];
    struct wl wl[NTAB];
};

static void trio_setup(struct trio *x, uint64_t seed)
{
    static const char *const prefix[NTAB] = { "mix", "num", "bin", "old" };
    static const char *const view[NTAB] = { "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY",
                                            "OLD_IMAGE" };

    memset(x, 0, sizeof(*x));
    for (int i = 0; i < NTAB; i++) {
        ddbc_table_name(x->names[i], sizeof(x->names[i]), prefix[i]);
        lower(x->names[i]);
        x->t[i].name = x->t[i].index = x->names[i];
    }
    x->t[0].hash = "pk";
    x->t[0].range = "sk";
    x->t[1].hash = "id";
    x->t[2].hash = "bk";
    x->t[3].hash = "ok";
    ddbc_create_table(x->names[0], "pk", "S", "sk", "N", view[0]);
    ddbc_create_table(x->names[1], "id", "N", NULL, NULL, view[1]);
    ddbc_create_table(x->names[2], "bk", "B", NULL, NULL, view[2]);
    ddbc_create_table(x->names[3], "ok", "S", NULL, NULL, view[3]);
    wl_init(&x->wl[0], seed, x->names[0], "pk", "S", "sk", "N", 60);
    x->wl[0].big_every = 60;
    wl_init(&x->wl[1], seed + 1, x->names[1], "id", "N", NULL, NULL, 60);
    wl_init(&x->wl[2], seed + 2, x->names[2], "bk", "B", NULL, NULL, 60);
    wl_init(&x->wl[3], seed + 3, x->names[3], "ok", "S", NULL, NULL, 60);
}

static unsigned trio_write(struct trio *x, unsigned steps)
{
    unsigned n = 0;

    for (unsigned i = 0; i < steps; i++)
        n += wl_step(&x->wl[i % NTAB]);
    return n;
}

static void trio_assert_equal(struct trio *x, struct searchd *sd, struct proc *p, long ms)
{
    char why[1024];

    for (int i = 0; i < NTAB; i++) {
        bool ok = e2e_wait_equal(sd, &x->t[i], ms, why, sizeof(why));

        if (!ok && p)
            dump_log(p);
        cr_assert(ok, "table %s: %s", x->names[i], why);
    }
}

Test(pipeline, random_workload_every_type_four_view_types)
{
    struct trio x;
    struct searchd *sd;
    struct proc p;
    char dir[256];
    const char *conf;

    need_ddb();
    trio_setup(&x, 20261122);
    sd = searchd_start(NULL);
    for (int i = 0; i < NTAB; i++)
        e2e_create_index(sd, x.names[i]);
    conf = e2e_config(searchd_url(sd), x.t, NTAB, "compression = gzip", dir, sizeof(dir));
    e2e_start(&p, conf);
    cr_log_info("random workload: %u items written", trio_write(&x, 600));
    trio_assert_equal(&x, sd, &p, 60000);
    {
        char path[512];
        char *dlq;

        snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
        dlq = proc_slurp(path);
        cr_expect(!dlq || !*dlq, "nothing is dead-lettered: %s", dlq ? dlq : "");
        free(dlq);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* ---- crash safety, restarts, poison, clean stop ------------------------- */

static long stat_sum(json_t *stats, const char *group)
{
    const char *k;
    json_t *v;
    long n = 0;

    json_object_foreach(json_object_get(stats, group), k, v) n += (long)json_integer_value(v);
    return n;
}

/* Number of records in a table's stream (all shards, from the start). */
static long stream_records(const char *table)
{
    json_t *t = ddbc_callj("DescribeTable", json_pack("{s:s}", "TableName", table));
    const char *arn = json_string_value(
        json_object_get(json_object_get(t, "Table"), "LatestStreamArn"));
    json_t *d = ddbc_callj("DescribeStream", json_pack("{s:s}", "StreamArn", arn));
    json_t *shards = json_object_get(json_object_get(d, "StreamDescription"), "Shards"), *sh;
    size_t i;
    long n = 0;

    json_array_foreach(shards, i, sh)
    {
        json_t *it = ddbc_callj("GetShardIterator",
                                json_pack("{s:s, s:O, s:s}", "StreamArn", arn, "ShardId",
                                          json_object_get(sh, "ShardId"), "ShardIteratorType",
                                          "TRIM_HORIZON"));
        json_t *iter = json_incref(json_object_get(it, "ShardIterator"));

        json_decref(it);
        while (json_is_string(iter)) {
            json_t *r = ddbc_callj("GetRecords", json_pack("{s:o, s:i}", "ShardIterator", iter,
                                                           "Limit", 1000));
            size_t got = json_array_size(json_object_get(r, "Records"));

            n += (long)got;
            iter = got ? json_incref(json_object_get(r, "NextShardIterator")) : NULL;
            json_decref(r);
        }
        json_decref(iter);
    }
    json_decref(d);
    json_decref(t);
    return n;
}

Test(pipeline, sigkill_at_random_moments_loses_nothing)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t = { .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    struct wl w;
    const char *conf;
    unsigned written = 0, kills = 0;
    long records, actions;
    json_t *stats;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "crash");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", "sk", "N", "NEW_AND_OLD_IMAGES");
    /* Mostly new keys: a record skipped by a bad checkpoint would leave a
     * missing document that no later write can hide. */
    wl_init(&w, 7, name, "pk", "S", "sk", "N", 100000);
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    for (int round = 0; round < 10; round++) {
        e2e_start(&p, conf);
        for (int i = 0; i < 25 + (int)(wl_rand(&w) % 50); i++)
            written += wl_step(&w);
        usleep((useconds_t)(wl_rand(&w) % 400000));
        proc_kill(&p, SIGKILL);
        cr_assert_eq(proc_wait(&p, 10000), 128 + SIGKILL);
        kills++;
    }
    e2e_start(&p, conf);
    cr_assert(e2e_wait_equal(sd, &t, 60000, why, sizeof(why)), "after %u kills: %s", kills, why);
    /* A last write: once it is indexed, every record before it was read; the
     * clean stop then lets the bulks in flight finish. */
    ddbc_put(name, "{\"pk\":{\"S\":\"marker\"},\"sk\":{\"N\":\"0\"}}");
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    records = stream_records(name);
    stats = searchd_stats(sd);
    actions = stat_sum(stats, "actions");
    json_decref(stats);
    cr_log_info("%u items written, %u kills, %ld stream records, %ld actions received, %ld "
                "re-sent after restarts",
                written, kills, records, actions, actions - records);
    cr_expect_geq(actions, records, "every record reached the sink at least once");
    cr_expect_leq(actions - records, (long)kills * 500,
                  "re-sent actions are bounded by what was in flight at each kill");
    searchd_stop(sd);
}

Test(pipeline, an_older_checkpoint_never_regresses_the_index)
{
    char name[128], dir[256], why[1024], ck[512], old[512], cmd[1200];
    struct e2e_table t = { .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    struct wl w;
    const char *conf;
    json_t *before, *after, *stats;
    long conflicts;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "older");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", "sk", "N", "NEW_AND_OLD_IMAGES");
    wl_init(&w, 11, name, "pk", "S", "sk", "N", 30);
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(ck, sizeof(ck), "%s/state/checkpoints.json", dir);
    snprintf(old, sizeof(old), "%s/old-checkpoints.json", dir);

    e2e_start(&p, conf);
    for (int i = 0; i < 60; i++)
        wl_step(&w);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    snprintf(cmd, sizeof(cmd), "cp -p '%s' '%s'", ck, old);
    cr_assert_eq(system(cmd), 0);

    e2e_start(&p, conf); /* the same keys again: newer images */
    for (int i = 0; i < 60; i++)
        wl_step(&w);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    before = e2e_dump(sd);

    /* Back to the older checkpoint: the second round's older records are
     * read and sent again, and lose to what is in the index. */
    snprintf(cmd, sizeof(cmd), "cp -p '%s' '%s'", old, ck);
    cr_assert_eq(system(cmd), 0);
    e2e_start(&p, conf);
    cr_assert(proc_wait_for_text(p.err_path, "stream arn", 10000));
    sleep(3);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    after = e2e_dump(sd);
    /* the probe's canary, deleted again at each start, has a new version */
    json_object_del(json_object_get(before, name), "\\ddb2es-probe");
    json_object_del(json_object_get(after, name), "\\ddb2es-probe");
    cr_assert(jsonx_equal(before, after),
              "no document changed version or content after re-reading older records");
    stats = searchd_stats(sd);
    conflicts = (long)json_integer_value(json_object_get(json_object_get(stats, "items"), "409"));
    cr_log_info("re-read after restoring the older checkpoint: %ld version conflicts", conflicts);
    cr_expect_gt(conflicts, 0, "the re-sent older images were refused by version");
    json_decref(stats);
    json_decref(before);
    json_decref(after);
    searchd_stop(sd);
}

Test(pipeline, a_poison_document_goes_to_the_dead_letter_file_and_the_rest_flows)
{
    char name[128], dir[256], why[1024], path[512];
    struct e2e_table t = { .hash = "id" };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *dlq, *ckpt;
    json_t *line, *seqs;
    long status;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "poison");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    sd = searchd_start("--poison-field", "poison", NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    ddbc_put(name, "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"b\"},\"poison\":{\"S\":\"not a number\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"c\"},\"v\":{\"N\":\"3\"}}");
    snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
    cr_assert(proc_wait_for_text(path, "\n", 30000), "a dead-letter line was written");
    /* Everything but the poison document is indexed. */
    for (int i = 0; i < 100; i++) {
        json_t *c = searchd_json(sd, "GET", "/_double/dump", NULL, &status);
        json_t *docs = json_object_get(c, name);
        bool done = json_object_get(docs, "a") && json_object_get(docs, "c");

        cr_assert_null(json_object_get(docs, "b"), "the poison document is not in the index");
        json_decref(c);
        if (done)
            break;
        usleep(100000);
    }
    ddbc_put(name, "{\"id\":{\"S\":\"d\"}}");
    ddbc_delete(name, "{\"id\":{\"S\":\"b\"}}");
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);

    dlq = proc_slurp(path);
    line = json_loads(dlq, JSON_DISABLE_EOF_CHECK, NULL);
    cr_assert_not_null(line, "the dead-letter line is JSON: %s", dlq);
    cr_expect_str_eq(json_string_value(json_object_get(line, "id")), "b");
    cr_expect_str_eq(json_string_value(json_object_get(line, "table")), name);
    cr_expect_eq(json_integer_value(json_object_get(line, "status")), 400);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(line, "error"), "type")),
                     "illegal_argument_exception");
    cr_expect(strstr(json_string_value(json_object_get(json_object_get(line, "error"), "reason")),
                     "poison") != NULL);
    cr_expect_str_eq(json_string_value(json_object_get(
                         json_object_get(line, "document"), "poison")), "not a number");
    cr_expect_not_null(json_string_value(json_object_get(line, "seq")), "the stream position");
    cr_expect_not_null(json_object_get(line, "time"));
    {
        struct stat st;

        cr_assert_eq(stat(path, &st), 0);
        cr_expect_eq(st.st_mode & 0777, 0600, "dead-letter file mode %o", st.st_mode & 0777);
    }
    /* The checkpoint moved past the poison record. */
    snprintf(path, sizeof(path), "%s/state/checkpoints.json", dir);
    ckpt = proc_slurp(path);
    seqs = json_loads(ckpt, 0, NULL);
    cr_assert_not_null(seqs);
    {
        const char *arn, *sid, *ck_seq = NULL;
        json_t *s, *sh;

        json_object_foreach(json_object_get(seqs, "streams"), arn, s)
            json_object_foreach(json_object_get(s, "shards"), sid, sh)
                ck_seq = json_string_value(json_object_get(sh, "seq"));
        cr_assert_not_null(ck_seq);
        cr_expect_gt(strcmp(ck_seq, json_string_value(json_object_get(line, "seq"))), 0,
                     "checkpoint %s is past the poison record %s", ck_seq,
                     json_string_value(json_object_get(line, "seq")));
    }
    json_decref(seqs);
    json_decref(line);
    free(dlq);
    free(ckpt);
    searchd_stop(sd);
}

struct writer {
    pthread_t th;
    struct wl w;
    volatile bool stop;
    unsigned written;
};

static void *write_loop(void *arg)
{
    struct writer *wr = arg;

    while (!wr->stop)
        wr->written += wl_step(&wr->w);
    return NULL;
}

Test(pipeline, sigterm_under_load_stops_cleanly_and_loses_nothing)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t = { .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    struct writer wr = { 0 };
    const char *conf;
    int rc;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "term");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", "sk", "N", "NEW_AND_OLD_IMAGES");
    wl_init(&wr.w, 5, name, "pk", "S", "sk", "N", 100000);
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    /* A slow engine keeps bulks in flight when the signal comes. */
    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"count\":1000,\"delay_ms\":150}]"), 200);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    pthread_create(&wr.th, NULL, write_loop, &wr);
    sleep(3);
    rc = e2e_stop(&p, 12000);
    if (rc != 0)
        dump_log(&p);
    cr_assert_eq(rc, 0, "SIGTERM under load exits 0 within shutdown_timeout");
    cr_assert(proc_wait_for_text(p.err_path, "stopped cleanly", 100));
    wr.stop = true;
    pthread_join(wr.th, NULL);
    cr_log_info("%u items written during the run", wr.written);
    /* Restarted from its checkpoint, it finds every record it had not finished. */
    searchd_faults(sd, "[]");
    e2e_start(&p, conf);
    cr_assert(e2e_wait_equal(sd, &t, 60000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

Test(pipeline, state_dir_lock_and_corrupt_checkpoint)
{
    char name[128], dir[256], path[512];
    struct e2e_table t = { .hash = "id" };
    struct searchd *sd;
    struct proc p, q;
    const char *conf;
    char *err;
    FILE *f;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "lock");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_IMAGE");
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    cr_assert(proc_wait_for_text(p.err_path, "stream arn", 10000));
    e2e_start(&q, conf);
    cr_assert_eq(proc_wait(&q, 10000), 73, "a second run on the same state dir exits 73");
    err = proc_slurp(q.err_path);
    cr_expect(strstr(err, "in use by another ddb2es") != NULL, "%s", err);
    free(err);
    cr_assert_eq(e2e_stop(&p, 15000), 0);

    snprintf(path, sizeof(path), "%s/state/checkpoints.json", dir);
    f = fopen(path, "w");
    fputs("{\"version\":1,\"streams\":{\"arn", f); /* torn */
    fclose(f);
    e2e_start(&q, conf);
    cr_assert_eq(proc_wait(&q, 10000), 65, "a corrupt checkpoint exits 65");
    err = proc_slurp(q.err_path);
    cr_expect(strstr(err, path) != NULL, "the message names the file: %s", err);
    free(err);
    searchd_stop(sd);
}

Test(pipeline, dry_run_prints_the_bulk_bodies)
{
    char name[128], dir[256], bin[512];
    struct e2e_table t = { .hash = "id" };
    struct proc p;
    const char *conf;
    char *out;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "dry");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_IMAGE");
    ddbc_put(name, "{\"id\":{\"S\":\"one\"},\"n\":{\"N\":\"12345678901234567890123456789012345678\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"two\"}}");
    ddbc_delete(name, "{\"id\":{\"S\":\"two\"}}");
    /* No engine at all: nothing is posted. */
    conf = e2e_config("http://127.0.0.1:9", &t, 1, NULL, dir, sizeof(dir));
    {
        const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "run", "-c", conf,
                               "--dry-run", NULL };
        const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", NULL };

        proc_start(&p, argv, env);
    }
    cr_assert(proc_wait_for_text(p.out_path, "\"delete\"", 20000), "the bodies reach stdout");
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    out = proc_slurp(p.out_path);
    cr_expect(strstr(out, "{\"index\":{\"_index\":\"") != NULL, "%s", out);
    cr_expect(strstr(out, "\"n\":12345678901234567890123456789012345678") != NULL, "%s", out);
    cr_expect(strstr(out, "{\"delete\":{") != NULL, "%s", out);
    free(out);
}

/* DDBLOCAL.md "TTL": expired items are deleted within seconds, as REMOVE
 * records with userIdentity {Type: Service, PrincipalId:
 * dynamodb.amazonaws.com}; on_ttl_delete decides what the index does. */
Test(pipeline, ttl_deletes_follow_on_ttl_delete)
{
    char keep[128], del[128], dir[256], why[512];
    struct e2e_table t[2] = { { .hash = "id", .extra = "on_ttl_delete = keep" }, { .hash = "id" } };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char item[256];
    long past = (long)time(NULL) - 3600;

    need_ddb();
    ddbc_table_name(keep, sizeof(keep), "ttlkeep");
    ddbc_table_name(del, sizeof(del), "ttldel");
    lower(keep);
    lower(del);
    t[0].name = t[0].index = keep;
    t[1].name = t[1].index = del;
    for (int i = 0; i < 2; i++) {
        ddbc_create_table(t[i].name, "id", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
        json_decref(ddbc_callj("UpdateTimeToLive",
                               json_pack("{s:s, s:{s:b, s:s}}", "TableName", t[i].name,
                                         "TimeToLiveSpecification", "Enabled", 1,
                                         "AttributeName", "exp")));
    }
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), t, 2, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    snprintf(item, sizeof(item), "{\"id\":{\"S\":\"old\"},\"exp\":{\"N\":\"%ld\"}}", past);
    ddbc_put(keep, item);
    ddbc_put(del, item);
    ddbc_put(keep, "{\"id\":{\"S\":\"live\"}}");
    /* The table that deletes on TTL ends equal to the table. */
    cr_assert(e2e_wait_equal(sd, &t[1], 30000, why, sizeof(why)), "%s", why);
    /* The other keeps the expired item's document once its REMOVE was read:
     * wait until the item is gone from the table, then for a later write. */
    for (int i = 0; i < 100; i++) {
        json_t *all = ddbc_scan_all(keep);
        size_t n = json_array_size(all);

        json_decref(all);
        if (n == 1)
            break;
        usleep(200000);
    }
    ddbc_put(keep, "{\"id\":{\"S\":\"marker\"}}");
    for (int i = 0; i < 100; i++) {
        json_t *dump = searchd_dump(sd);
        bool marker = json_object_get(json_object_get(dump, keep), "marker") != NULL;

        json_decref(dump);
        if (marker)
            break;
        usleep(100000);
    }
    {
        json_t *dump = searchd_dump(sd);
        json_t *old = json_object_get(json_object_get(dump, keep), "old");

        cr_assert_not_null(old);
        cr_expect(!json_is_true(json_object_get(old, "deleted")),
                  "on_ttl_delete = keep: the expired item stays searchable");
        json_decref(dump);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

static int run_check_cmd(const char *conf, char **out)
{
    char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "check", "-c", conf, NULL };
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", NULL };
    struct proc p;
    int rc = proc_run(argv, env, 30000, &p);

    *out = proc_slurp(p.out_path);
    return rc;
}

/* SPEC: `ddb2es check` validates the config, resolves credentials, reaches
 * each stream and the sink, and prints what was found. */
Test(pipeline, check_reaches_the_streams_and_the_sink)
{
    char name[128], dir[256];
    struct e2e_table t[2] = { { .hash = "id" }, { .name = "no_such_table", .index = "x", .hash = "id" } };
    struct searchd *sd;
    const char *conf;
    char *out;
    int rc;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "chk");
    lower(name);
    t[0].name = t[0].index = name;
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_IMAGE");
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), t, 1, NULL, dir, sizeof(dir));
    rc = run_check_cmd(conf, &out);
    cr_expect_eq(rc, 0, "everything reachable: %s", out);
    cr_expect(strstr(out, "AWS credentials: found (environment)") != NULL, "%s", out);
    cr_expect(strstr(out, "stream view NEW_IMAGE") != NULL, "%s", out);
    cr_expect(strstr(out, "1 shard") != NULL, "%s", out);
    cr_expect(strstr(out, "answered") != NULL, "%s", out);
    free(out);

    conf = e2e_config(searchd_url(sd), t, 2, NULL, dir, sizeof(dir));
    rc = run_check_cmd(conf, &out);
    cr_expect_eq(rc, 69, "a missing table: %s", out);
    cr_expect(strstr(out, "[table no_such_table] DescribeTable: FAILED: ResourceNotFoundException") != NULL,
              "%s", out);
    free(out);
    searchd_stop(sd);

    conf = e2e_config("http://127.0.0.1:9", t, 1, NULL, dir, sizeof(dir));
    rc = run_check_cmd(conf, &out);
    cr_expect_eq(rc, 69, "an unreachable sink: %s", out);
    cr_expect(strstr(out, "sink http://127.0.0.1:9: FAILED") != NULL, "%s", out);
    free(out);
}
