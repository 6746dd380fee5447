/* shardmod: a reader and its shards (daemon/reader.c, daemon/shard.c) inside
 * the test process, on a libuv loop, with the AWS calls answered by the
 * Streams stand-in (tests/support/fakestreams.c, served by fakehttp) and the
 * documents sent to the search double.  The paths of a KEYS_ONLY stream's
 * item fetch (BatchGetItem) that an end-to-end run does not meet: a call
 * that fails, keys left unprocessed, throttling; and what waits on the
 * daemon's long timers: whole pages once the engine kept up, a stream
 * enabled again.  The waits are shortened (struct shard_timing, struct
 * reader_timing) and the SDK-style retries inside one call wait nothing
 * (aws_set_rng), so a test takes a second or less and the spacing of the
 * calls is the shard's own backoff. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "aws/ddb.h"
#include "base/backoff.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/ckpt.h"
#include "daemon/clients.h"
#include "daemon/reader.h"
#include "daemon/shard.h"
#include "daemon/slots.h"
#include "indexer/sink.h"
#include "base/log.h"
#include "tests/support/e2e.h"
#include "tests/support/fakestreams.h"
#include "tests/support/fsworld.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(shardmod, .timeout = 60);

/* The shard's error backoff in these tests: 100 ms (the daemon's) ... 400
 * ms, full jitter, so each wait is more than ERR_BASE / 2 (shard.c
 * backoff_error) by the loop's clock.  That clock is coarse and read once
 * an iteration, so under load (a sanitizer build, a busy machine) a timer
 * can fire early by the stand-in's clock: MIN_GAP is what a wait shows at
 * least.  Calls made at once arrive 0 to 2 ms apart. */
#define ERR_BASE 100
#define ERR_MAX 400
#define MIN_GAP (ERR_BASE / 4)

struct world {
    struct fsworld fw; /* the stand-in, the double, the table and the directory */
    uv_loop_t loop;
    struct config cfg;
    struct app app;
    struct clients cl;
    struct reader *rd;
    struct shard_timing st;
    struct reader_timing rt;
    int closing;       /* callbacks still awaited at teardown */
};

static time_t wall(void)
{
    return time(NULL);
}

static double no_wait(void)
{
    return 0.0;
}

static void on_resume(void *arg)
{
    struct world *w = arg;

    reader_resume(w->rd);
}

/* A table with one shard (returned in *shard) and a stream of this view
 * type, the daemon's parts set up as `ddb2es run` sets them up
 * (daemon/run.c start) with these [sink] lines (or NULL), not started yet. */
static void setup_ex(struct world *w, int *shard, const char *view, const char *sink_extra)
{
    static const char daemon[] = "idle_poll_interval = 100ms\nshard_list_interval = 1s\n"
                                 "stream_check_interval = 2s\n";
    struct e2e_table t;
    const char *conf;
    char err[1024];

    memset(w, 0, sizeof(*w));
    fsw_setup(&w->fw, NULL);
    fs_view(w->fw.fs, view);
    *shard = fs_add_shard(w->fw.fs, -1, false);
    t = (struct e2e_table){ .name = w->fw.table, .index = w->fw.table, .hash = "id" };
    conf = e2e_config_ex(fs_url(w->fw.fs), searchd_url(w->fw.sd), &t, 1, daemon, sink_extra,
                         w->fw.dir, sizeof(w->fw.dir));
    setenv("AWS_ACCESS_KEY_ID", "test", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
    unsetenv("AWS_SESSION_TOKEN");
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    cr_assert_eq(config_load(conf, &w->cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clients_preflight(&w->cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(uv_loop_init(&w->loop), 0);
    w->app.loop = &w->loop;
    w->app.cfg = &w->cfg;
    w->app.now = wall;
    w->st = shard_timing_default;
    w->st.error_base_ms = ERR_BASE;
    w->st.error_max_ms = ERR_MAX;
    w->app.shard_timing = &w->st;
    w->rt = reader_timing_default;
    w->app.reader_timing = &w->rt;
    w->app.slots = slots_new((unsigned)w->cfg.daemon.read_concurrency);
    cr_assert_not_null(w->app.slots);
    w->app.ckpt = ckpt_new(w->cfg.daemon.state_dir);
    cr_assert_not_null(w->app.ckpt);
    cr_assert_eq(ckpt_load(w->app.ckpt, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(clients_open(&w->cl, &w->app, NULL, shard_doc_done, on_resume, w), 0);
    backoff_set_rng(no_wait); /* no wait between the attempts of one AWS call */
    w->rd = reader_new(&w->app, &w->cfg.tables[0]);
    cr_assert_not_null(w->rd);
    w->app.readers = &w->rd;
    w->app.nreaders = 1;
}

/* A KEYS_ONLY table: its documents need BatchGetItem. */
static void setup(struct world *w, int *shard)
{
    setup_ex(w, shard, "KEYS_ONLY", NULL);
}

static void start(struct world *w)
{
    cr_assert_eq(reader_start(w->rd), 0);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(w, arg) holds (asked every 20 ms) or ms passed. */
static bool run_until(struct world *w, bool (*pred)(struct world *w, const void *arg),
                      const void *arg, long ms)
{
    uv_timer_t tick;
    uint64_t end, asked = 0;
    bool ok = false;

    uv_update_time(&w->loop);
    end = uv_now(&w->loop) + (uint64_t)ms;
    uv_timer_init(&w->loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    for (;;) {
        uint64_t now = uv_now(&w->loop);

        if (now - asked >= 20 || now >= end) {
            asked = now;
            if ((ok = pred(w, arg)) || now >= end)
                break;
        }
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool nothing_left(struct world *w, const void *arg)
{
    (void)arg;
    return w->closing == 0;
}

static void on_closed(void *arg)
{
    struct world *w = arg;

    w->closing--;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Stops as `ddb2es run` stops (daemon/run.c begin_stop, finish). */
static void teardown(struct world *w)
{
    w->app.stopping = true;
    w->closing = 2;
    reader_stop(w->rd, on_closed, w);
    sink_close(w->app.sink, 1000, on_closed, w);
    cr_expect(run_until(w, nothing_left, NULL, 5000), "the reader and the sink stopped");
    w->closing = 1;
    clients_take_down(&w->cl, &w->app, on_closed, w);
    cr_expect(run_until(w, nothing_left, NULL, 5000), "the clients closed");
    reader_free(w->rd);
    sink_free(w->app.sink);
    ckpt_free(w->app.ckpt);
    slots_free(w->app.slots);
    clients_close(&w->cl);
    config_free(&w->cfg);
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&w->loop), 0);
    searchd_stop(w->fw.sd);
    fs_stop(w->fw.fs);
    backoff_set_rng(NULL);
}

/* ---- what a user sees ------------------------------------------------- */

static bool index_matches(struct world *w, const void *arg)
{
    char why[256];

    return fsw_index_matches(&w->fw, arg, 1, why, sizeof(why));
}

static bool calls_reached(struct world *w, const void *arg)
{
    return fs_calls(w->fw.fs, FS_BATCH_GET_ITEM) >= *(const unsigned *)arg;
}

static bool dead_letters_reached(struct world *w, const void *arg)
{
    return reader_stats(w->rd)->docs_dlq >= *(const uint64_t *)arg;
}

static bool has_doc(struct world *w, const char *id)
{
    char *v = fsw_doc_v(&w->fw, id);

    free(v);
    return v != NULL;
}

static bool doc_arrived(struct world *w, const void *id)
{
    return has_doc(w, id);
}

static bool stream_matches(struct world *w, int shard, char *why, size_t len)
{
    return fsw_index_matches(&w->fw, &shard, 1, why, len);
}

/* The sequence number the checkpoint holds for the shard ("" if none). */
static const char *checkpoint_of(struct world *w, int shard)
{
    struct ckpt_shard *sh;

    reader_checkpoint(w->rd);
    sh = ckpt_shard_get(w->app.ckpt, fs_arn(w->fw.fs), fs_shard_id(w->fw.fs, shard));
    return sh ? sh->seq : "";
}

/* The smallest gap (ms) between BatchGetItem calls i-1 and i, over the i
 * in first..last (calls counted from 0). */
static long min_gap(struct world *w, size_t first, size_t last)
{
    int64_t at[64];
    size_t n = fs_call_times(w->fw.fs, FS_BATCH_GET_ITEM, at, 64);
    long min = -1;

    cr_assert_lt(last, 64);
    cr_assert_geq(n, last + 1, "%zu BatchGetItem calls, expected %zu", n, last + 1);
    for (size_t i = first; i <= last; i++)
        if (min < 0 || at[i] - at[i - 1] < min)
            min = (long)(at[i] - at[i - 1]);
    return min;
}

static void put_abc(struct world *w, int shard)
{
    fs_put(w->fw.fs, shard, "INSERT", "a", "1", 1000);
    fs_put(w->fw.fs, shard, "INSERT", "b", "2", 1000);
    fs_put(w->fw.fs, shard, "INSERT", "c", "3", 1001);
}

/* ---- BatchGetItem fails ----------------------------------------------- */

/* BatchGetItem answers the first `failing` attempts (a multiple of 4: each
 * SDK-style call makes 4, aws/retry.h retry_dynamodb) with this status and
 * error type, then works.  The records wait for their items: nothing of
 * them is indexed or checkpointed meanwhile; each new call comes after the
 * shard's backoff; once the service answers, each document is indexed once
 * and nothing is dead-lettered. */
static void batchget_fails_then_works(unsigned failing, int status, const char *type)
{
    struct world w;
    char why[256];
    int shard;

    setup(&w, &shard);
    put_abc(&w, shard);
    fs_fail(w.fw.fs, FS_BATCH_GET_ITEM, (int)failing, status, type);
    start(&w);
    cr_assert(run_until(&w, calls_reached, &failing, 10000), "BatchGetItem was asked %u times",
              fs_calls(w.fw.fs, FS_BATCH_GET_ITEM));
    cr_expect(!has_doc(&w, "a"), "no document before its item arrived");
    cr_expect_str_eq(checkpoint_of(&w, shard), "", "the checkpoint waits for the records");
    cr_assert(run_until(&w, index_matches, &shard, 10000), "indexed once the service answered");
    cr_expect(stream_matches(&w, shard, why, sizeof(why)), "%s", why);
    cr_expect_eq(fs_calls(w.fw.fs, FS_BATCH_GET_ITEM), failing + 1,
                 "%u failed calls of 4 attempts, then one that worked (%u attempts)",
                 failing / 4, fs_calls(w.fw.fs, FS_BATCH_GET_ITEM));
    /* Attempts 4, 8, ... begin a new call after a failed one. */
    for (size_t i = 4; i <= failing; i += 4)
        cr_expect_geq(min_gap(&w, i, i), MIN_GAP, "backoff before attempt %zu (%ld ms)", i,
                      min_gap(&w, i, i));
    cr_expect_eq(fsw_actions(&w.fw), 3, "each document sent once (%ld actions)",
                 fsw_actions(&w.fw));
    cr_expect_eq(reader_stats(w.rd)->docs_dlq, 0, "nothing dead-lettered");
    teardown(&w);
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
 * ("HTTP 5xx status code ... InternalServerError ... You can retry the
 * request"; "retry ... using exponential backoff"): three calls fail. */
Test(shardmod, batchgetitem_server_errors_are_retried_with_backoff_and_nothing_is_lost)
{
    batchget_fails_then_works(12, 500, "com.amazonaws.dynamodb.v20120810#InternalServerError");
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.LowLevelAPI.html
 * (DynamoDB returns a CRC32 checksum of the payload in x-amz-crc32): a 200
 * whose body is no JSON though its checksum matches was sent so, and the
 * same call gets it again (aws/ddb.c DDB_BAD_REPLY, never retried).  One
 * such reply to a batch of three keys: the keys are asked for one by one
 * and every item arrives; nothing is dead-lettered. */
Test(shardmod, an_unreadable_batchgetitem_reply_is_asked_again_key_by_key)
{
    struct world w;
    char why[256];
    int shard;

    setup(&w, &shard);
    put_abc(&w, shard);
    fs_bad_reply(w.fw.fs, FS_BATCH_GET_ITEM, 1);
    start(&w);
    cr_assert(run_until(&w, index_matches, &shard, 10000), "indexed");
    cr_expect(stream_matches(&w, shard, why, sizeof(why)), "%s", why);
    cr_expect_eq(fs_calls(w.fw.fs, FS_BATCH_GET_ITEM), 4, "one batch, then one call a key (%u)",
                 fs_calls(w.fw.fs, FS_BATCH_GET_ITEM));
    cr_expect_eq(reader_stats(w.rd)->docs_dlq, 0, "nothing dead-lettered");
    teardown(&w);
}

/* The same reply for every key (DESIGN invariant 5: "A poison record never
 * stalls the pipeline"): each record whose item cannot be read goes to the
 * dead-letter file with its keys and the reason, counts as finished (the
 * checkpoint passes it), and the records after it are indexed. */
Test(shardmod, items_that_stay_unreadable_are_dead_lettered_and_the_shard_goes_on)
{
    struct world w;
    uint64_t three = 3;
    char path[512], *dlq;
    int shard;
    uint64_t last;

    setup(&w, &shard);
    put_abc(&w, shard);
    fs_bad_reply(w.fw.fs, FS_BATCH_GET_ITEM, 4); /* the batch, then each key */
    start(&w);
    cr_assert(run_until(&w, dead_letters_reached, &three, 10000), "%llu dead letters",
              (unsigned long long)reader_stats(w.rd)->docs_dlq);
    last = fs_put(w.fw.fs, shard, "INSERT", "d", "4", 1002);
    cr_assert(run_until(&w, doc_arrived, "d", 10000), "the record after them was indexed");
    cr_expect(!has_doc(&w, "a"), "no document made up for an unreadable item");
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.fw.dir);
    dlq = proc_slurp(path);
    cr_assert_not_null(dlq);
    cr_expect(strstr(dlq, "item_unreadable") != NULL, "the reason is named: %s", dlq);
    cr_expect(strstr(dlq, "\"a\"") && strstr(dlq, "\"b\"") && strstr(dlq, "\"c\""),
              "each record's keys are in the dead-letter file: %s", dlq);
    free(dlq);
    {
        char want[64];

        snprintf(want, sizeof(want), "%llu0000", (unsigned long long)last);
        cr_expect_str_eq(checkpoint_of(&w, shard), want,
                         "the dead-lettered records count as finished: the checkpoint passed "
                         "them");
    }
    teardown(&w);
}

/* ---- UnprocessedKeys --------------------------------------------------- */

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html
 * ("If DynamoDB returns any unprocessed items, you should retry the batch
 * operation on those items.  However, we strongly recommend that you use an
 * exponential backoff algorithm.  If you retry the batch operation
 * immediately, the underlying read or write requests can still fail due to
 * throttling on the individual tables.").  Three replies answer one key and
 * leave the others in UnprocessedKeys: those are asked again, after a
 * backoff, until every item arrived; each document is indexed once. */
Test(shardmod, unprocessed_keys_are_asked_again_after_a_backoff)
{
    struct world w;
    char why[256];
    int shard;

    setup(&w, &shard);
    put_abc(&w, shard);
    fs_put(w.fw.fs, shard, "INSERT", "d", "4", 1002);
    fs_unprocessed(w.fw.fs, 3, 1);
    start(&w);
    cr_assert(run_until(&w, index_matches, &shard, 10000), "indexed");
    cr_expect(stream_matches(&w, shard, why, sizeof(why)), "%s", why);
    cr_expect_eq(fs_calls(w.fw.fs, FS_BATCH_GET_ITEM), 4,
                 "three replies with one key each, then one with the last (%u calls)",
                 fs_calls(w.fw.fs, FS_BATCH_GET_ITEM));
    cr_expect_eq(fsw_actions(&w.fw), 4, "each document sent once (%ld actions)",
                 fsw_actions(&w.fw));
    cr_expect_geq(min_gap(&w, 1, 3), MIN_GAP,
                  "unprocessed keys are asked again after a backoff, not at once (%ld ms)",
                  min_gap(&w, 1, 3));
    teardown(&w);
}

/* The same, with no key processed for ten replies (a table throttled for
 * a while): the records wait, nothing of them is indexed or checkpointed,
 * and the calls are spaced by the backoff. */
Test(shardmod, records_wait_while_every_key_comes_back_unprocessed)
{
    struct world w;
    unsigned ten = 10;
    char why[256];
    int shard;

    setup(&w, &shard);
    put_abc(&w, shard);
    fs_unprocessed(w.fw.fs, 10, 0);
    start(&w);
    cr_assert(run_until(&w, calls_reached, &ten, 10000));
    cr_expect(!has_doc(&w, "a"), "no document before its item arrived");
    cr_expect_str_eq(checkpoint_of(&w, shard), "", "the checkpoint waits for the records");
    cr_assert(run_until(&w, index_matches, &shard, 10000), "indexed");
    cr_expect(stream_matches(&w, shard, why, sizeof(why)), "%s", why);
    cr_expect_eq(fs_calls(w.fw.fs, FS_BATCH_GET_ITEM), 11, "%u calls",
                 fs_calls(w.fw.fs, FS_BATCH_GET_ITEM));
    cr_expect_geq(min_gap(&w, 1, 10), MIN_GAP,
                  "unprocessed keys are asked again after a backoff, not at once (%ld ms)",
                  min_gap(&w, 1, 10));
    cr_expect_eq(fsw_actions(&w.fw), 3, "each document sent once (%ld actions)",
                 fsw_actions(&w.fw));
    teardown(&w);
}

/* ---- throttling --------------------------------------------------------- */

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
 * (ProvisionedThroughputExceededException, HTTP 400: "The AWS SDKs for
 * DynamoDB automatically retry requests that receive this exception ...
 * reduce the frequency of requests using exponential backoff"): four calls
 * are throttled, then the table has capacity. */
Test(shardmod, a_throttled_batchgetitem_is_retried_with_backoff)
{
    batchget_fails_then_works(
        16, 400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException");
}

/* ---- the page size follows the engine ----------------------------------- */

static bool never(struct world *w, const void *arg)
{
    (void)w;
    (void)arg;
    return false;
}

static bool pages_whole(struct world *w, const void *arg)
{
    long min, max;

    (void)arg;
    fs_limits(w->fw.fs, &min, &max);
    return min == 1000 && max == 1000;
}

/* daemon/shard.c SMALL_PAGE_BYTES (the end-to-end part is
 * streams/pages_are_small_while_the_engine_holds_the_reader_back): while
 * the engine holds the readers back each GetRecords asks for about 256 kB;
 * once the engine has kept up for small_pages_ms (10 s in the daemon, 600
 * ms here) pages are whole again (Limit 1000, the service's maximum:
 * API_streams_GetRecords.html). */
Test(shardmod, pages_are_whole_again_once_the_engine_has_kept_up)
{
    struct world w;
    char id[32], why[256];
    long min, max;
    int64_t quiet_ms;
    int shard;

    setup_ex(&w, &shard, "NEW_IMAGE", "bulk_max_actions = 50\nconcurrency = 2\n");
    w.st.small_pages_ms = 600;
    fs_pad(w.fw.fs, 2000);
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof(id), "r%05d", i);
        fs_put(w.fw.fs, shard, "INSERT", id, "1", (int64_t)time(NULL));
    }
    cr_assert_eq(searchd_faults(w.fw.sd, "{\"match\":\"bulk\",\"count\":6,\"delay_ms\":300}"),
                 200);
    start(&w);
    cr_assert(run_until(&w, index_matches, &shard, 20000), "indexed");
    cr_expect(stream_matches(&w, shard, why, sizeof(why)), "%s", why);
    fs_limits(w.fw.fs, &min, &max);
    cr_expect(min >= 10 && max <= 200,
              "while the engine was busy pages were ~256 kB (about 115 records), asked Limit "
              "%ld..%ld", min, max);
    /* Idle reads come every 100 ms: until the engine has kept up for
     * small_pages_ms they stay small. */
    uv_update_time(&w.loop);
    quiet_ms = (int64_t)sink_busy_at(w.app.sink) + w.st.small_pages_ms -
               (int64_t)uv_now(&w.loop) - 100;
    if (quiet_ms > 250) {
        run_until(&w, never, NULL, (long)quiet_ms);
        fs_limits(w.fw.fs, &min, &max);
        cr_expect(max < 1000, "pages stay small until the engine kept up for a while: Limit %ld",
                  max);
    } else {
        cr_log_warn("the loop was too slow to see the small pages of an idle shard");
    }
    cr_expect(run_until(&w, pages_whole, NULL, 5000),
              "once the engine kept up for small_pages_ms, pages are whole");
    teardown(&w);
}

/* ---- a stream enabled again ----------------------------------------------- */

static bool has_v(struct world *w, const void *want)
{
    char *v = fsw_doc_v(&w->fw, ((const char *const *)want)[0]);
    bool ok = v && strcmp(v, ((const char *const *)want)[1]) == 0;

    free(v);
    return ok;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html#Streams.Enabling
 * ("if you disable a stream and then enable it again, a new stream is
 * created with a different stream ARN"; the old one stays readable for
 * 24 h); REFERENCE.md Streams fact 14.  The new stream's first shards are
 * read only once the old stream is finished: listed in full while disabled
 * for the settle time (daemon/reader.c STREAM_SETTLE_MS: 10 s in the
 * daemon, 1.5 s here), and read to its end.  The new stream's record
 * arrives, no sooner than the settle time after the first listing that
 * could show the old stream disabled, and each record is sent once. */
Test(shardmod, a_stream_enabled_again_is_followed_after_the_old_one_settled)
{
    struct world w;
    const char *old_v[] = { "x", "1" }, *new_v[] = { "x", "2" };
    int64_t at[64], disabled, read;
    unsigned listed;
    int shard, s2;

    setup_ex(&w, &shard, "NEW_AND_OLD_IMAGES", NULL);
    w.rt.stream_settle_ms = 1500;
    /* Listed, and the table described, every 200 ms (1 s at least in a
     * configuration file): the settle time is what the new stream waits. */
    w.cfg.daemon.shard_list_interval_ms = 200;
    w.cfg.daemon.stream_check_interval_ms = 200;
    fs_put(w.fw.fs, shard, "INSERT", "x", "1", 1000);
    start(&w);
    cr_assert(run_until(&w, has_v, old_v, 10000), "the first stream was read");
    listed = fs_calls(w.fw.fs, FS_DESCRIBE_STREAM);
    cr_assert_lt(listed, 64);
    s2 = fs_new_stream(w.fw.fs);
    fs_put(w.fw.fs, s2, "MODIFY", "x", "2", 2000);
    cr_assert(run_until(&w, has_v, new_v, 10000), "the new stream was found and read");
    read = mono_ms();
    cr_assert_gt(fs_call_times(w.fw.fs, FS_DESCRIBE_STREAM, at, 64), listed);
    disabled = at[listed];
    cr_expect_geq(read - disabled, w.rt.stream_settle_ms,
                  "the new stream waited for the old one to settle (%lld ms)",
                  (long long)(read - disabled));
    cr_expect_lt(read - disabled, w.rt.stream_settle_ms + 1000,
                 "and not much longer (%lld ms)", (long long)(read - disabled));
    cr_expect_eq(fsw_actions(&w.fw), 2, "each record sent once (%ld actions)",
                 fsw_actions(&w.fw));
    teardown(&w);
}
