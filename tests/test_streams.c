/* Stream behaviour DynamoDB Local cannot produce, against the in-memory
 * Streams stand-in (tests/support/fakestreams.c): shard rollover and lineage,
 * listings that miss children, expired iterators, trimmed data, throttling,
 * a re-enabled stream, a deleted table.  Each test names the documented
 * behaviour it imitates. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/e2e.h"
#include "tests/support/fakestreams.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(streams, .timeout = 90);

#define FAST "idle_poll_interval = 200ms\nshard_list_interval = 1s\nstream_check_interval = 2s\n"

struct world {
    struct fakestreams *fs;
    struct searchd *sd;
    struct proc p;
    char dir[256];
    char table[64];
};

static void start(struct world *w)
{
    struct e2e_table t = { .name = w->table, .index = w->table, .hash = "id" };
    const char *conf;

    conf = e2e_config_ex(fs_url(w->fs), searchd_url(w->sd), &t, 1, FAST, NULL, w->dir,
                         sizeof(w->dir));
    e2e_start(&w->p, conf);
}

static void setup(struct world *w)
{
    static unsigned n;

    memset(w, 0, sizeof(*w));
    snprintf(w->table, sizeof(w->table), "fs%d_%u", (int)getpid(), n++);
    w->fs = fs_start(w->table);
    w->sd = searchd_start(NULL);
}

static void restart(struct world *w)
{
    char conf[512];

    snprintf(conf, sizeof(conf), "%s/ddb2es.conf", w->dir);
    e2e_start(&w->p, conf);
}

static void teardown(struct world *w)
{
    int rc = e2e_stop(&w->p, 15000);

    if (rc != 0) {
        char *log = proc_slurp(w->p.err_path);

        cr_log_error("ddb2es log:\n%s", log);
        free(log);
    }
    cr_expect_eq(rc, 0, "clean stop");
    searchd_stop(w->sd);
    fs_stop(w->fs);
}

/* The document's "v", or NULL when it is missing or deleted (caller frees). */
static char *doc_v(struct world *w, const char *id)
{
    json_t *dump = searchd_dump(w->sd);
    json_t *d = json_object_get(json_object_get(dump, w->table), id);
    char *v = NULL;

    if (d && !json_is_true(json_object_get(d, "deleted")))
        v = json_dumps(json_object_get(json_object_get(d, "source"), "v"), JSON_ENCODE_ANY);
    json_decref(dump);
    return v;
}

static bool wait_v(struct world *w, const char *id, const char *want, long ms)
{
    for (long t = 0; t <= ms; t += 50) {
        char *v = doc_v(w, id);
        bool ok = want ? v && strcmp(v, want) == 0 : v == NULL;

        free(v);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

static bool log_has(struct world *w, const char *text, long ms)
{
    return proc_wait_for_text(w->p.err_path, text, ms);
}

/* REFERENCE.md "Versions that survive shard rollover"; DynamoDB developer
 * guide "Reading and processing a stream": a parent is processed before its
 * children.  One key is written in the parent's last second and again in the
 * child's first second: the newer image must win. */
Test(streams, rollover_keeps_the_newer_image_across_parent_and_child)
{
    struct world w;
    int parent, child;

    setup(&w);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "a", "1", 1000);
    fs_put(w.fs, parent, "INSERT", "x", "1", 2000);
    fs_put(w.fs, parent, "MODIFY", "x", "2", 2000);
    fs_close_shard(w.fs, parent);
    child = fs_add_shard(w.fs, parent, false);
    fs_put(w.fs, child, "MODIFY", "x", "3", 2000); /* same second, later record */
    fs_put(w.fs, child, "INSERT", "b", "1", 2001);
    start(&w);
    cr_assert(wait_v(&w, "b", "1", 20000), "the child was read");
    cr_assert(wait_v(&w, "x", "3", 2000), "the child's image of x won over the parent's");
    cr_assert(wait_v(&w, "a", "1", 100));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, child),
              "the child was read only after the parent's last record");
    teardown(&w);
}

/* Streams fact 8: "a parent can have one or more children". */
Test(streams, a_parent_with_two_children)
{
    struct world w;
    int parent, c1, c2;

    setup(&w);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "p", "1", 1000);
    fs_close_shard(w.fs, parent);
    c1 = fs_add_shard(w.fs, parent, false);
    c2 = fs_add_shard(w.fs, parent, false);
    fs_put(w.fs, c1, "INSERT", "c1", "1", 1001);
    fs_put(w.fs, c2, "INSERT", "c2", "1", 1001);
    fs_put(w.fs, c2, "MODIFY", "p", "2", 1002);
    start(&w);
    cr_assert(wait_v(&w, "c1", "1", 20000));
    cr_assert(wait_v(&w, "c2", "1", 20000));
    cr_assert(wait_v(&w, "p", "2", 20000));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, c1));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, c2));
    teardown(&w);
}

/* Streams fact 8 ("Incomplete shard list", amazon-kinesis-client #164):
 * DescribeStream can briefly show a closed parent without its children. */
Test(streams, a_closed_parent_listed_without_its_children_yet)
{
    struct world w;
    int parent, child;

    setup(&w);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "p", "1", 1000);
    fs_close_shard(w.fs, parent);
    child = fs_add_shard(w.fs, parent, true);
    fs_put(w.fs, child, "INSERT", "c", "1", 1001);
    start(&w);
    cr_assert(wait_v(&w, "p", "1", 20000));
    sleep(2); /* the parent is finished; its child is not listed yet */
    cr_assert_eq(fs_shard_reads(w.fs, child), 0);
    fs_show(w.fs, child);
    cr_assert(wait_v(&w, "c", "1", 20000), "the child was found once it was listed");
    teardown(&w);
}

/* Streams fact 8: DescribeStream pages, ExclusiveStartShardId /
 * LastEvaluatedShardId. */
Test(streams, describe_stream_pagination)
{
    struct world w;
    char id[16];

    setup(&w);
    fs_page_size(w.fs, 2);
    for (int i = 0; i < 7; i++) {
        int s = fs_add_shard(w.fs, -1, false);

        snprintf(id, sizeof(id), "s%d", i);
        fs_put(w.fs, s, "INSERT", id, "1", 1000 + i);
    }
    start(&w);
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        cr_assert(wait_v(&w, id, "1", 20000), "shard %d (page %d) was read", i, i / 2);
    }
    teardown(&w);
}

/* Streams fact 5; API reference GetRecords "ExpiredIteratorException": get a
 * new iterator and go on after the last record read. */
Test(streams, an_expired_iterator_is_renewed_after_the_last_record_read)
{
    struct world w;
    int s;
    char after[64], want[64];
    uint64_t last;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    last = fs_put(w.fs, s, "INSERT", "b", "1", 1000);
    start(&w);
    cr_assert(wait_v(&w, "b", "1", 20000));
    fs_fail(w.fs, FS_GET_RECORDS, 1, 400,
            "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException");
    cr_assert(log_has(&w, "iterator expired", 10000));
    fs_put(w.fs, s, "INSERT", "c", "1", 1001);
    cr_assert(wait_v(&w, "c", "1", 20000));
    fs_last_after_seq(w.fs, s, after, sizeof(after));
    snprintf(want, sizeof(want), "%llu0000", (unsigned long long)last);
    cr_expect_str_eq(after, want, "renewed AFTER_SEQUENCE_NUMBER the last record read");
    teardown(&w);
}

/* Streams fact 7 and AWS-AUTH §12: LimitExceededException,
 * ThrottlingException and ProvisionedThroughputExceededException are retried
 * with backoff, without a tight loop. */
Test(streams, throttling_is_retried_with_backoff)
{
    static const char *const types[] = {
        "com.amazonaws.dynamodb.v20120810#LimitExceededException",
        "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    };
    struct world w;
    int s;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    start(&w);
    cr_assert(wait_v(&w, "a", "1", 20000));
    for (int i = 0; i < 3; i++) {
        unsigned before = fs_calls(w.fs, FS_GET_RECORDS);
        char id[16];

        fs_fail(w.fs, FS_GET_RECORDS, 6, 400, types[i]);
        snprintf(id, sizeof(id), "t%d", i);
        fs_put(w.fs, s, "INSERT", id, "1", 1001);
        cr_assert(wait_v(&w, id, "1", 30000), "%s: retried until it passed", types[i]);
        /* 6 throttled calls (each retried within the call) and the reads
         * after: a tight loop would make hundreds. */
        cr_expect_lt(fs_calls(w.fs, FS_GET_RECORDS) - before, 60, "%s: %u calls", types[i],
                     fs_calls(w.fs, FS_GET_RECORDS) - before);
    }
    teardown(&w);
}

/* Streams fact 6: TrimmedDataAccessException means records were lost; it
 * must be counted and logged at error level with the shard and the range,
 * then reading resumes at TRIM_HORIZON. */
Test(streams, trimmed_data_is_logged_as_loss_and_reading_resumes)
{
    struct world w;
    int s;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    start(&w);
    cr_assert(wait_v(&w, "a", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    /* While it was stopped, records were written and trimmed away. */
    fs_put(w.fs, s, "INSERT", "lost1", "1", 1001);
    fs_put(w.fs, s, "INSERT", "lost2", "1", 1002);
    fs_put(w.fs, s, "INSERT", "kept", "1", 1003);
    fs_trim(w.fs, s, 3);
    restart(&w);
    cr_assert(wait_v(&w, "kept", "1", 20000), "reading resumed at the trim horizon");
    cr_expect(log_has(&w, "data lost", 100), "the loss is logged");
    cr_expect(log_has(&w, "and before", 100), "with the range that was lost");
    cr_expect(log_has(&w, "error", 100), "at error level");
    cr_expect(wait_v(&w, "lost1", NULL, 100), "lost records cannot be indexed");
    teardown(&w);
}

/* Streams fact 14: disabling and re-enabling a stream gives a new ARN; the
 * daemon re-reads DescribeTable.LatestStreamArn and follows it. */
Test(streams, a_stream_enabled_again_under_a_new_arn_is_followed)
{
    struct world w;
    int s, s2;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "old", "1", 1000);
    start(&w);
    cr_assert(wait_v(&w, "old", "1", 20000));
    s2 = fs_new_stream(w.fs);
    fs_put(w.fs, s2, "INSERT", "new", "1", 2000);
    cr_assert(wait_v(&w, "new", "1", 20000), "the new stream was found and read");
    cr_expect(log_has(&w, "new stream", 100));
    teardown(&w);
}

/* DDBLOCAL.md "Disabling the stream, deleting the table": the stream closes;
 * DescribeTable answers ResourceNotFoundException.  The daemon says so and
 * keeps running. */
Test(streams, a_deleted_table_is_reported_and_the_daemon_keeps_running)
{
    struct world w;
    int s;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    start(&w);
    cr_assert(wait_v(&w, "a", "1", 20000));
    fs_delete_table(w.fs);
    cr_assert(log_has(&w, "table not found", 20000), "the deletion is reported");
    cr_expect_eq(proc_wait(&w.p, 500), -1, "still running");
    teardown(&w);
}

/* DESIGN invariant 4: bytes queued between the readers and the sink have a
 * cap; at the cap readers stop calling GetRecords until the sink drains. */
Test(streams, readers_pause_while_the_sink_is_full)
{
    struct world w;
    struct e2e_table t;
    const char *conf;
    unsigned calls_paused;
    char id[64], big[48];
    int s;
    json_t *c;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 30000; i++) {
        snprintf(id, sizeof(id), "doc-%06d-%s", i, big);
        fs_put(w.fs, s, "INSERT", id, "1", 1000 + i / 1000);
    }
    /* The engine answers slowly at first: the queue fills up. */
    cr_assert_eq(searchd_faults(w.sd, "[{\"match\":\"bulk\",\"count\":4,\"delay_ms\":3000}]"), 200);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1,
                         FAST "max_queue_bytes = 1m\n", "bulk_max_bytes = 256k", w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(log_has(&w, "get-records -> paused", 10000), "a reader paused on the full sink");
    calls_paused = fs_calls(w.fs, FS_GET_RECORDS);
    usleep(1000000);
    cr_expect_leq(fs_calls(w.fs, FS_GET_RECORDS), calls_paused + 1,
                  "no GetRecords while paused (%u then %u)", calls_paused,
                  fs_calls(w.fs, FS_GET_RECORDS));
    for (int i = 0; i < 300; i++) {
        char path[128];
        long st;

        snprintf(path, sizeof(path), "/%s/_count", w.table);
        c = searchd_json(w.sd, "GET", path, NULL, &st);
        st = (long)json_integer_value(json_object_get(c, "count"));
        json_decref(c);
        if (st == 30000)
            break;
        usleep(100000);
    }
    {
        char path[128];
        long st;

        snprintf(path, sizeof(path), "/%s/_count", w.table);
        c = searchd_json(w.sd, "GET", path, NULL, &st);
        cr_assert_eq(json_integer_value(json_object_get(c, "count")), 30000,
                     "everything was indexed once the sink drained");
        json_decref(c);
    }
    teardown(&w);
}

/* "Bad input gets a clear error that names what and where, and loses
 * nothing": a record that cannot become a document (here a number that is
 * not one) goes to the dead-letter file; the records after it flow. */
Test(streams, a_malformed_record_is_dead_lettered_and_the_rest_flows)
{
    struct world w;
    char path[512], *dlq;
    int s;

    setup(&w);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put(w.fs, s, "INSERT", "bad", "12abc", 1000);
    fs_put(w.fs, s, "INSERT", "c", "3", 1001);
    start(&w);
    cr_assert(wait_v(&w, "c", "3", 20000));
    cr_assert(wait_v(&w, "bad", NULL, 100));
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.dir);
    cr_assert(proc_wait_for_text(path, "record_conversion_error", 5000));
    dlq = proc_slurp(path);
    cr_expect(strstr(dlq, "12abc") != NULL, "the record is kept as received: %s", dlq);
    cr_expect(strstr(dlq, "\"seq\":\"") != NULL, "with its stream position: %s", dlq);
    free(dlq);
    cr_expect(log_has(&w, "cannot be made into a document", 100));
    teardown(&w);
}

/* SPEC [table] start: used only when no checkpoint exists.  latest skips the
 * history: closed shards and the records already in open ones. */
Test(streams, start_latest_skips_history_only_on_the_first_run)
{
    struct world w;
    struct e2e_table t;
    const char *conf;
    int old, open;

    setup(&w);
    old = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, old, "INSERT", "history1", "1", 1000);
    fs_close_shard(w.fs, old);
    open = fs_add_shard(w.fs, old, false);
    fs_put(w.fs, open, "INSERT", "history2", "1", 1001);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id",
                            .extra = "start = latest" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(log_has(&w, "starts at LATEST", 10000));
    /* A LATEST iterator points after whatever exists when it is made: write
     * only once the shard is being read. */
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, open) == 0; i++)
        usleep(50000);
    cr_assert_gt(fs_shard_reads(w.fs, open), 0);
    fs_put(w.fs, open, "INSERT", "new1", "1", 1002);
    cr_assert(wait_v(&w, "new1", "1", 20000));
    cr_expect(wait_v(&w, "history1", NULL, 100), "a closed shard's history is skipped");
    cr_expect(wait_v(&w, "history2", NULL, 100), "records before the start are skipped");
    /* Restarted, it continues from its checkpoint, not from LATEST. */
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, open, "INSERT", "while_stopped", "1", 1003);
    restart(&w);
    cr_assert(wait_v(&w, "while_stopped", "1", 20000), "nothing written while stopped is skipped");
    teardown(&w);
}

/* AWS-AUTH §11.1: Streams and DynamoDB calls are signed with SigV4, signing
 * name "dynamodb", session token included.  The stand-in verifies every
 * request the way the service does. */
Test(streams, every_call_is_signed_and_a_wrong_secret_is_refused)
{
    struct world w;
    struct e2e_table t;
    const char *conf;
    const char *good[] = { "AWS_ACCESS_KEY_ID=AKIDSTREAMS", "AWS_SECRET_ACCESS_KEY=s3cr3t",
                           "AWS_SESSION_TOKEN=session-token-1", NULL };
    const char *bad[] = { "AWS_ACCESS_KEY_ID=AKIDSTREAMS", "AWS_SECRET_ACCESS_KEY=wrong",
                          "AWS_SESSION_TOKEN=session-token-1", NULL };
    int s;

    setup(&w);
    fs_verify(w.fs, "AKIDSTREAMS", "s3cr3t", "session-token-1");
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start_env(&w.p, conf, good);
    cr_assert(wait_v(&w, "a", "1", 20000));
    cr_expect_eq(fs_rejected(w.fs), 0, "every request carried a valid signature");
    cr_expect_gt(fs_calls(w.fs, FS_DESCRIBE_TABLE) + fs_calls(w.fs, FS_GET_RECORDS), 1);
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);

    e2e_start_env(&w.p, conf, bad);
    fs_put(w.fs, s, "INSERT", "b", "1", 1001);
    cr_assert(log_has(&w, "signature", 20000), "the refusal is reported: %s", "");
    cr_expect_gt(fs_rejected(w.fs), 0);
    cr_expect(wait_v(&w, "b", NULL, 100), "nothing read with a wrong key");
    teardown(&w);
}
