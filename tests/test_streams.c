/* Stream behaviour DynamoDB Local cannot produce, against the in-memory
 * Streams stand-in (tests/support/fakestreams.c): shard rollover and lineage,
 * listings that miss children, expired iterators, trimmed data, throttling,
 * a re-enabled stream, a deleted table.  Each test names the documented
 * behaviour it imitates. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/e2e.h"
#include "tests/support/fakestreams.h"
#include "tests/support/fsworld.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(streams, .timeout = 90);

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html#Streams.Processing
 * ("Reading and processing a stream": process a parent shard before its
 * children); REFERENCE.md "Versions that survive shard rollover".  One key is written in the parent's last second and again in the
 * child's first second: the newer image must win. */
Test(streams, rollover_keeps_the_newer_image_across_parent_and_child)
{
    struct fsworld w;
    int parent, child;

    fsw_setup(&w, NULL);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "a", "1", 1000);
    fs_put(w.fs, parent, "INSERT", "x", "1", 2000);
    fs_put(w.fs, parent, "MODIFY", "x", "2", 2000);
    fs_close_shard(w.fs, parent);
    child = fs_add_shard(w.fs, parent, false);
    fs_put(w.fs, child, "MODIFY", "x", "3", 2000); /* same second, later record */
    fs_put(w.fs, child, "INSERT", "b", "1", 2001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "b", "1", 20000), "the child was read");
    cr_assert(fsw_wait_v(&w, "x", "3", 2000), "the child's image of x won over the parent's");
    cr_assert(fsw_wait_v(&w, "a", "1", 100));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, child),
              "the child was read only after the parent's last record");
    {
        int lineage[] = { parent, child };
        char why[512];

        cr_expect(fsw_index_matches(&w, lineage, 2, why, sizeof(why)), "%s", why);
        cr_expect_leq(fsw_actions(&w), 5 + 3, "each record sent once, and the probe's "
                      "canary (three actions): %ld actions", fsw_actions(&w));
    }
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html#Streams.Processing
 * (shards are ephemeral; "it is also possible for a parent shard to have
 * just one child shard", so one or more); Streams fact 8. */
Test(streams, a_parent_with_two_children)
{
    struct fsworld w;
    int parent, c1, c2;

    fsw_setup(&w, NULL);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "p", "1", 1000);
    fs_close_shard(w.fs, parent);
    c1 = fs_add_shard(w.fs, parent, false);
    c2 = fs_add_shard(w.fs, parent, false);
    fs_put(w.fs, c1, "INSERT", "c1", "1", 1001);
    fs_put(w.fs, c2, "INSERT", "c2", "1", 1001);
    fs_put(w.fs, c2, "MODIFY", "p", "2", 1002);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "c1", "1", 20000));
    cr_assert(fsw_wait_v(&w, "c2", "1", 20000));
    cr_assert(fsw_wait_v(&w, "p", "2", 20000));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, c1));
    cr_expect(fs_child_read_after_parent_end(w.fs, parent, c2));
    {
        int lineage[] = { parent, c1, c2 };
        char why[512];

        cr_expect(fsw_index_matches(&w, lineage, 3, why, sizeof(why)), "%s", why);
        cr_expect_leq(fsw_actions(&w), 4 + 3, "each record sent once, and the probe's "
                      "canary (three actions): %ld actions", fsw_actions(&w));
    }
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html
 * (a shard with an EndingSequenceNumber is closed; its children are listed
 * with ParentShardId) and Streams fact 8 ("Incomplete shard list",
 * amazon-kinesis-client #164): DescribeStream can briefly show a closed
 * parent without its children.  Nothing is read from the child until it is
 * listed, and then everything is. */
Test(streams, a_closed_parent_listed_without_its_children_yet)
{
    struct fsworld w;
    int parent, child;

    fsw_setup(&w, NULL);
    parent = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, parent, "INSERT", "p", "1", 1000);
    fs_close_shard(w.fs, parent);
    child = fs_add_shard(w.fs, parent, true);
    fs_put(w.fs, child, "INSERT", "c", "1", 1001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "p", "1", 20000));
    {
        char finished[128];
        unsigned listings;

        snprintf(finished, sizeof(finished), "shard %s finished", fs_shard_id(w.fs, parent));
        cr_assert(fsw_log_has(&w, finished, 20000));
        /* The stream listed again after the parent finished (for its
         * children, or the next listing) still misses the child. */
        listings = fs_calls(w.fs, FS_DESCRIBE_STREAM);
        for (int i = 0; i < 250 && fs_calls(w.fs, FS_DESCRIBE_STREAM) <= listings; i++)
            usleep(20000);
        cr_assert_gt(fs_calls(w.fs, FS_DESCRIBE_STREAM), listings);
    }
    cr_assert_eq(fs_shard_reads(w.fs, child), 0);
    fs_show(w.fs, child);
    cr_assert(fsw_wait_v(&w, "c", "1", 20000), "the child was found once it was listed");
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html
 * (Limit, ExclusiveStartShardId, LastEvaluatedShardId); Streams fact 8. */
Test(streams, describe_stream_pagination)
{
    struct fsworld w;
    char id[16];

    fsw_setup(&w, NULL);
    fs_page_size(w.fs, 2);
    for (int i = 0; i < 7; i++) {
        int s = fs_add_shard(w.fs, -1, false);

        snprintf(id, sizeof(id), "s%d", i);
        fs_put(w.fs, s, "INSERT", id, "1", 1000 + i);
    }
    fsw_start(&w, NULL, NULL);
    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        cr_assert(fsw_wait_v(&w, id, "1", 20000), "shard %d (page %d) was read", i, i / 2);
    }
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
 * (ExpiredIteratorException: "a shard iterator expires 15 minutes after it
 * is retrieved"); Streams fact 5: get a new iterator and go on after the
 * last record read. */
Test(streams, an_expired_iterator_is_renewed_after_the_last_record_read)
{
    struct fsworld w;
    int s;
    char after[64], want[64];
    uint64_t last;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    last = fs_put(w.fs, s, "INSERT", "b", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "b", "1", 20000));
    fs_fail(w.fs, FS_GET_RECORDS, 1, 400,
            "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException");
    cr_assert(fsw_log_has(&w, "iterator expired", 10000));
    fs_put(w.fs, s, "INSERT", "c", "1", 1001);
    cr_assert(fsw_wait_v(&w, "c", "1", 20000));
    fs_last_after_seq(w.fs, s, after, sizeof(after));
    snprintf(want, sizeof(want), "%llu0000", (unsigned long long)last);
    cr_expect_str_eq(after, want, "renewed AFTER_SEQUENCE_NUMBER the last record read");
    fsw_teardown(&w);
}

/* Throttles every GetRecords call with this error type for 4 s while a
 * record waits, then lifts the fault.  The record must arrive (no stall),
 * the calls during the fault must show backoff (a tight loop makes
 * thousands in 4 s; capped exponential backoff from 100 ms makes a few
 * dozen at most, the SDK-style retries inside each call included), and the
 * throttles must be counted in ddb2es_streams_throttled_total. */
static void throttled_for_a_while(const char *type)
{
    struct fsworld w;
    char labels[128];
    unsigned before, during;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    before = fs_calls(w.fs, FS_GET_RECORDS);
    fs_fail(w.fs, FS_GET_RECORDS, 1000000, 400, type);
    fs_put(w.fs, s, "INSERT", "t", "1", 1001);
    usleep(4000000);
    during = fs_calls(w.fs, FS_GET_RECORDS) - before;
    fs_fail(w.fs, FS_GET_RECORDS, 0, 0, "");
    cr_assert(fsw_wait_v(&w, "t", "1", 30000), "%s: the record arrived once it passed", type);
    cr_log_info("%s: %u GetRecords calls in 4 s of throttling", type, during);
    cr_expect_geq(during, 2, "%s: it kept trying (%u calls)", type, during);
    cr_expect_leq(during, 80, "%s: %u calls in 4 s: no backoff", type, during);
    snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
    cr_expect_geq(fsw_metric(&w, "ddb2es_streams_throttled_total", labels), 1,
                  "%s: counted as throttled", type);
    cr_expect(fsw_wait_v(&w, "a", "1", 0), "nothing else changed");
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
 * (Errors: LimitExceededException, "your request rate is too high ... use
 * exponential backoff"); REFERENCE.md Streams fact 7. */
Test(streams, getrecords_limit_exceeded_is_retried_with_backoff)
{
    throttled_for_a_while("com.amazonaws.dynamodb.v20120810#LimitExceededException");
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html
 * (ThrottlingException, HTTP 400: "the request was denied due to request
 * throttling"); AWS-AUTH §12. */
Test(streams, getrecords_throttling_exception_is_retried_with_backoff)
{
    throttled_for_a_while("com.amazon.coral.availability#ThrottlingException");
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
 * (ProvisionedThroughputExceededException: "the AWS SDKs ... automatically
 * retry requests that receive this exception ... use exponential
 * backoff"). */
Test(streams, getrecords_provisioned_throughput_exceeded_is_retried_with_backoff)
{
    throttled_for_a_while(
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException");
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html
 * (TrimmedDataAccessException: "you request a shard iterator with a
 * sequence number older than the trim point (24 hours)"); Streams fact 6.
 * Records were lost: counted in a metric and logged at error level with the
 * shard and the range, then reading resumes at TRIM_HORIZON. */
Test(streams, trimmed_data_is_logged_as_loss_and_reading_resumes)
{
    struct fsworld w;
    char labels[128];
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    /* While it was stopped, records were written and trimmed away. */
    fs_put(w.fs, s, "INSERT", "lost1", "1", 1001);
    fs_put(w.fs, s, "INSERT", "lost2", "1", 1002);
    fs_put(w.fs, s, "INSERT", "kept", "1", 1003);
    fs_trim(w.fs, s, 3);
    fsw_restart(&w);
    cr_assert(fsw_wait_v(&w, "kept", "1", 20000), "reading resumed at the trim horizon");
    cr_expect(fsw_log_has(&w, "data lost", 100), "the loss is logged");
    cr_expect(fsw_log_has(&w, "and before", 100), "with the range that was lost");
    cr_expect(fsw_log_has(&w, "error", 100), "at error level");
    cr_expect(fsw_wait_v(&w, "lost1", NULL, 100), "lost records cannot be indexed");
    snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
    cr_expect_eq(fsw_metric(&w, "ddb2es_records_lost_events_total", labels), 1,
                 "the loss is counted once in ddb2es_records_lost_events_total");
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html#Streams.Enabling
 * ("if you disable a stream and then enable it again, a new stream is
 * created with a different stream ARN"; the old one stays readable for
 * 24 h) and API_DescribeTable.html (LatestStreamArn); Streams fact 14.
 * The new stream waits for the old one to settle ([daemon] stream_settle,
 * 1 s here): well within 8 s, which the 10 s default would pass. */
Test(streams, a_stream_enabled_again_under_a_new_arn_is_followed)
{
    struct fsworld w;
    int s, s2;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "old", "1", 1000);
    fsw_start(&w, FSW_SETTLE_FAST, NULL);
    cr_assert(fsw_wait_v(&w, "old", "1", 20000));
    s2 = fs_new_stream(w.fs);
    fs_put(w.fs, s2, "INSERT", "new", "1", 2000);
    cr_assert(fsw_wait_v(&w, "new", "1", 8000),
              "the new stream was found and read once the old one settled");
    cr_expect(fsw_log_has(&w, "new stream", 100));
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DeleteTable.html
 * ("if you have DynamoDB Streams enabled on the table, then the
 * corresponding stream ... goes into the DISABLED state"; DescribeTable then
 * answers ResourceNotFoundException); DDBLOCAL.md "Disabling the stream,
 * deleting the table".  The daemon says so and keeps running. */
Test(streams, a_deleted_table_is_reported_and_the_daemon_keeps_running)
{
    struct fsworld w;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    fs_delete_table(w.fs);
    cr_assert(fsw_log_has(&w, "table not found", 20000), "the deletion is reported");
    cr_expect_eq(proc_wait(&w.p, 500), -1, "still running");
    fsw_teardown(&w);
}

/* DESIGN invariant 4: bytes queued between the readers and the sink have a
 * cap; at the cap readers stop calling GetRecords until the sink drains. */
Test(streams, readers_pause_while_the_sink_is_full)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    unsigned calls_paused;
    char id[64], big[48];
    int s;
    json_t *c;

    fsw_setup(&w, NULL);
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
                         FSW_FAST "max_queue_bytes = 1m\n", "bulk_max_bytes = 256k", w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(fsw_log_has(&w, "get-records -> paused", 10000), "a reader paused on the full sink");
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
    fsw_teardown(&w);
}

/* SPEC [daemon] read_concurrency: at most that many GetRecords are in flight
 * over all shards.  The stand-in holds every GetRecords reply 100 ms, so
 * shards waiting for a read overlap there; more shards than the cap, each
 * with records, then idle, then each written once more: every shard's
 * records arrive (none starves in the queue for a read), and the most
 * GetRecords the stand-in saw in flight at once is the cap, not more and
 * not less. */
static void read_cap(unsigned cap, int nshards)
{
    struct fsworld w;
    char extra[64], id[32], why[256];
    int shards[64];

    cr_assert_leq(nshards, 64);
    fsw_setup(&w, NULL);
    for (int i = 0; i < nshards; i++) {
        shards[i] = fs_add_shard(w.fs, -1, false);
        for (int r = 0; r < 5; r++) {
            snprintf(id, sizeof(id), "s%02d-r%d", i, r);
            fs_put(w.fs, shards[i], "INSERT", id, "1", (int64_t)time(NULL));
        }
    }
    fs_delay(w.fs, FS_GET_RECORDS, 100);
    snprintf(extra, sizeof(extra), "read_concurrency = %u\n", cap);
    fsw_start(&w, extra, NULL);
    cr_assert(fsw_wait_matches(&w, shards, (size_t)nshards, 30000, why, sizeof(why)),
              "every shard's records were indexed: %s", why);
    /* Now every shard is idle, polled in turn through the same slots. */
    for (int i = 0; i < nshards; i++) {
        snprintf(id, sizeof(id), "s%02d-r0", i);
        fs_put(w.fs, shards[i], "MODIFY", id, "2", (int64_t)time(NULL));
    }
    cr_assert(fsw_wait_matches(&w, shards, (size_t)nshards, 30000, why, sizeof(why)),
              "records written to idle shards were indexed: %s", why);
    cr_expect_leq(fs_max_inflight(w.fs, FS_GET_RECORDS), cap,
                  "at most read_concurrency = %u GetRecords in flight, saw %u", cap,
                  fs_max_inflight(w.fs, FS_GET_RECORDS));
    cr_expect_geq(fs_max_inflight(w.fs, FS_GET_RECORDS), cap,
                  "with %d shards waiting, %u GetRecords were in flight at once, saw %u",
                  nshards, cap, fs_max_inflight(w.fs, FS_GET_RECORDS));
    fsw_teardown(&w);
}

Test(streams, read_concurrency_caps_getrecords_in_flight_over_all_shards)
{
    read_cap(3, 24);
}

Test(streams, read_concurrency_1_still_reads_every_shard)
{
    read_cap(1, 8);
}

/* Writes a record to one shard every 20 ms until told to stop: a shard that
 * has new records at every read. */
struct busy_writer {
    struct fakestreams *fs;
    int shard;
    atomic_bool stop;
    pthread_t thread;
};

static void *busy_write(void *arg)
{
    struct busy_writer *b = arg;
    char id[32];

    for (int i = 0; !atomic_load(&b->stop); i++) {
        snprintf(id, sizeof(id), "busy-%d", i);
        fs_put(b->fs, b->shard, "INSERT", id, "1", (int64_t)time(NULL));
        usleep(20000);
    }
    return NULL;
}

/* The read slots are first come first served (daemon/app.h): a shard whose
 * every read brings records takes its turn behind the shards waiting for a
 * slot instead of keeping it.  With read_concurrency = 1, one busy shard and
 * one quiet shard, a record written to the quiet shard while the busy one
 * reads on still arrives. */
Test(streams, a_busy_shard_does_not_keep_the_read_slot_from_the_others)
{
    struct busy_writer b = { 0 };
    struct fsworld w;
    char why[256];
    int shards[2], quiet;
    unsigned reads;

    fsw_setup(&w, NULL);
    b.fs = w.fs;
    b.shard = shards[0] = fs_add_shard(w.fs, -1, false);
    quiet = shards[1] = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, quiet, "INSERT", "quiet-0", "1", (int64_t)time(NULL));
    fs_delay(w.fs, FS_GET_RECORDS, 100);
    fsw_start(&w, "read_concurrency = 1\n", NULL);
    cr_assert(fsw_wait_v(&w, "quiet-0", "1", 20000));
    cr_assert_eq(pthread_create(&b.thread, NULL, busy_write, &b), 0);
    /* Once the busy shard has read records several times over, it is
     * reading on; only then does the quiet shard get a record. */
    reads = fs_shard_reads(w.fs, b.shard);
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, b.shard) < reads + 4; i++)
        usleep(50000);
    fs_put(w.fs, quiet, "INSERT", "quiet-1", "1", (int64_t)time(NULL));
    cr_expect(fsw_wait_v(&w, "quiet-1", "1", 10000),
              "the quiet shard was read while the busy one had records (%u reads, %u busy)",
              fs_shard_reads(w.fs, quiet), fs_shard_reads(w.fs, b.shard));
    atomic_store(&b.stop, true);
    pthread_join(b.thread, NULL);
    cr_expect(fsw_wait_matches(&w, shards, 2, 20000, why, sizeof(why)), "%s", why);
    fsw_teardown(&w);
}

/* Pages follow the engine (daemon/shard.c SMALL_PAGE_BYTES).  A backlog of
 * ~2.2 kB records and an engine that holds each of the first 30 bulk
 * requests for a second: with 100-action bulks that is 15 s of every
 * connection busy.  All that time each GetRecords asks for about 256 kB
 * (~115 records), not the service's 1,000 records or 1 MB, which would only
 * wait in memory.  That pages are whole again once the engine has kept up
 * for a while (10 s), so a backlog behind a fast engine is read at full
 * speed, is shardmod/pages_are_whole_again_once_the_engine_has_kept_up,
 * with that time shortened. */
Test(streams, pages_are_small_while_the_engine_holds_the_reader_back)
{
    struct fsworld w;
    char id[32], why[256];
    long min, max;
    int shard;

    fsw_setup(&w, NULL);
    shard = fs_add_shard(w.fs, -1, false);
    fs_pad(w.fs, 2000);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "r%05d", i);
        fs_put(w.fs, shard, "INSERT", id, "1", (int64_t)time(NULL));
    }
    cr_assert_eq(searchd_faults(w.sd, "{\"match\":\"bulk\",\"count\":30,\"delay_ms\":1000}"),
                 200);
    fsw_start(&w, NULL, "bulk_max_actions = 100\n");
    cr_assert(fsw_wait_matches(&w, &shard, 1, 60000, why, sizeof(why)), "%s", why);
    fs_limits(w.fs, &min, &max);
    cr_log_info("held back: GetRecords Limit %ld..%ld", min, max);
    cr_expect(min >= 10 && max <= 200,
              "while the engine was busy pages were ~256 kB (about 115 records), "
              "asked Limit %ld..%ld", min, max);
    fsw_teardown(&w);
}

/* "Bad input gets a clear error that names what and where, and loses
 * nothing": a record that cannot become a document (here a number that is
 * not one) goes to the dead-letter file; the records after it flow. */
Test(streams, a_malformed_record_is_dead_lettered_and_the_rest_flows)
{
    struct fsworld w;
    char path[512], *dlq;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put(w.fs, s, "INSERT", "bad", "12abc", 1000);
    fs_put(w.fs, s, "INSERT", "c", "3", 1001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "c", "3", 20000));
    cr_assert(fsw_wait_v(&w, "bad", NULL, 100));
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.dir);
    cr_assert(proc_wait_for_text(path, "record_conversion_error", 5000));
    dlq = proc_slurp(path);
    cr_expect(strstr(dlq, "12abc") != NULL, "the record is kept as received: %s", dlq);
    cr_expect(strstr(dlq, "\"seq\":\"") != NULL, "with its stream position: %s", dlq);
    free(dlq);
    cr_expect(fsw_log_has(&w, "cannot be made into a document", 100));
    fsw_teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html
 * (ApproximateCreationDateTime: a timestamp in epoch seconds).  One that no
 * int64 can hold (found by fuzz_streams: the reader cast it, undefined
 * behaviour that the UBSan run turns into a crash) dead-letters its record;
 * the records after it flow. */
Test(streams, a_creation_time_out_of_range_is_dead_lettered)
{
    struct fsworld w;
    char path[512];
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put(w.fs, s, "INSERT", "late", "2", INT64_MAX);
    fs_put(w.fs, s, "INSERT", "c", "3", 1001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "c", "3", 20000), "the records after it flow");
    cr_assert(fsw_wait_v(&w, "late", NULL, 100));
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.dir);
    cr_assert(proc_wait_for_text(path, "ApproximateCreationDateTime", 5000));
    fsw_teardown(&w);
}

/* SPEC [table] start: used only when no checkpoint exists.  latest skips the
 * history: closed shards and the records already in open ones. */
Test(streams, start_latest_skips_history_only_on_the_first_run)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    int old, open;

    fsw_setup(&w, NULL);
    old = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, old, "INSERT", "history1", "1", 1000);
    fs_close_shard(w.fs, old);
    open = fs_add_shard(w.fs, old, false);
    fs_put(w.fs, open, "INSERT", "history2", "1", 1001);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id",
                            .extra = "start = latest" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FSW_FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(fsw_log_has(&w, "starts at LATEST", 10000));
    /* A LATEST iterator points after whatever exists when it is made: write
     * only once the shard is being read. */
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, open) == 0; i++)
        usleep(50000);
    cr_assert_gt(fs_shard_reads(w.fs, open), 0);
    fs_put(w.fs, open, "INSERT", "new1", "1", 1002);
    cr_assert(fsw_wait_v(&w, "new1", "1", 20000));
    cr_expect(fsw_wait_v(&w, "history1", NULL, 100), "a closed shard's history is skipped");
    cr_expect(fsw_wait_v(&w, "history2", NULL, 100), "records before the start are skipped");
    /* Restarted, it continues from its checkpoint, not from LATEST. */
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, open, "INSERT", "while_stopped", "1", 1003);
    fsw_restart(&w);
    cr_assert(fsw_wait_v(&w, "while_stopped", "1", 20000), "nothing written while stopped is skipped");
    fsw_teardown(&w);
}

/* AWS-AUTH §11.1: Streams and DynamoDB calls are signed with SigV4, signing
 * name "dynamodb", session token included.  The stand-in verifies every
 * request the way the service does. */
Test(streams, every_call_is_signed_and_a_wrong_secret_is_refused)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    const char *good[] = { "AWS_ACCESS_KEY_ID=AKIDSTREAMS", "AWS_SECRET_ACCESS_KEY=s3cr3t",
                           "AWS_SESSION_TOKEN=session-token-1", NULL };
    const char *bad[] = { "AWS_ACCESS_KEY_ID=AKIDSTREAMS", "AWS_SECRET_ACCESS_KEY=wrong",
                          "AWS_SESSION_TOKEN=session-token-1", NULL };
    int s;

    fsw_setup(&w, NULL);
    fs_verify(w.fs, "AKIDSTREAMS", "s3cr3t", "session-token-1");
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FSW_FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start_env(&w.p, conf, good);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    cr_expect_eq(fs_rejected(w.fs), 0, "every request carried a valid signature");
    cr_expect_gt(fs_calls(w.fs, FS_DESCRIBE_TABLE) + fs_calls(w.fs, FS_GET_RECORDS), 1);
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);

    e2e_start_env(&w.p, conf, bad);
    fs_put(w.fs, s, "INSERT", "b", "1", 1001);
    cr_assert(fsw_log_has(&w, "signature", 20000), "the refusal is reported: %s", "");
    cr_expect_gt(fs_rejected(w.fs), 0);
    cr_expect(fsw_wait_v(&w, "b", NULL, 100), "nothing read with a wrong key");
    fsw_teardown(&w);
}
