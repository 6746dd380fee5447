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
#include <time.h>
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

static void need_matches(struct fsworld *w, const int *shards, size_t n, long ms, const char *what)
{
    char why[512];

    if (!fsw_wait_matches(w, shards, n, ms, why, sizeof(why))) {
        char *log = proc_slurp(w->p.err_path);

        cr_log_error("ddb2es log:\n%s", log);
        free(log);
        cr_assert(0, "%s: %s", what, why);
    }
}

static char *dlq_text(struct fsworld *w)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/dlq.ndjson", w->dir);
    return proc_slurp(path);
}

/* ---- a stream replaced under a new ARN ----------------------------------- */

/* https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html#Streams.Enabling
 * ("If you disable a stream, any shards that are still open will be closed.
 * The data in the stream will continue to be readable for 24 hours"; a
 * stream enabled again gets a new ARN); REFERENCE.md Streams fact 14.  The
 * switch happened while the daemon was stopped: the records the old stream
 * got after the stop are still read, not only the new stream's. */
Test(life, a_stream_replaced_while_stopped_is_read_to_its_end)
{
    struct fsworld w;
    int a, b;

    fsw_setup(&w, NULL);
    a = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, a, "INSERT", "before", "1", 1000);
    fsw_start(&w, FSW_SETTLE_FAST, NULL);
    cr_assert(fsw_wait_v(&w, "before", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, a, "INSERT", "old_after_stop", "1", 1001);
    fs_put(w.fs, a, "MODIFY", "before", "2", 1001);
    b = fs_new_stream(w.fs);
    fs_put(w.fs, b, "INSERT", "new", "1", 1002);
    fsw_restart(&w);
    {
        int lineage[] = { a, b };

        need_matches(&w, lineage, 2, 20000, "both streams read");
    }
    fsw_teardown(&w);
}

/* The same switch while running, with one more turn: the old stream's
 * shard had rolled over just before it was disabled, and its child was
 * listed only after the switch (Streams fact 8: a closed parent is listed
 * before its children).  The child is still read: the daemon asks again
 * for a finished parent's children every 5 s, within the default 10 s
 * stream_settle (this test keeps it; FSW_SETTLE_FAST would end the old
 * stream before the child is asked for again). */
Test(life, a_child_of_the_old_stream_listed_after_the_switch_is_read)
{
    struct fsworld w;
    int a, child, b;

    fsw_setup(&w, NULL);
    a = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, a, "INSERT", "p", "1", 1000);
    fs_close_shard(w.fs, a);
    child = fs_add_shard(w.fs, a, true);
    fs_put(w.fs, child, "INSERT", "c", "1", 1001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "p", "1", 20000));
    b = fs_new_stream(w.fs);
    fs_put(w.fs, b, "INSERT", "new", "1", 1002);
    cr_assert(fsw_log_has(&w, "new stream", 20000), "the switch was seen");
    fs_show(w.fs, child);
    {
        int lineage[] = { a, child, b };

        need_matches(&w, lineage, 3, 20000, "the late child of the old stream was read");
    }
    fsw_teardown(&w);
}

/* DESIGN invariant 2 across a switch.  Versions count records within a
 * second along a lineage; a new stream's lineage starts from nothing, so a
 * newer image written in the same second (the same minute on DynamoDB
 * Local: DDBLOCAL.md "ApproximateCreationDateTime") got a lower version
 * than an older one and was dropped as stale.  It must win. */
Test(life, a_newer_image_in_the_same_second_wins_across_a_stream_switch)
{
    struct fsworld w;
    int a, b;

    fsw_setup(&w, NULL);
    a = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, a, "INSERT", "y", "1", 2000);
    fs_put(w.fs, a, "INSERT", "z", "1", 2000);
    fs_put(w.fs, a, "INSERT", "x", "1", 2000); /* ordinal 2 in second 2000 */
    fsw_start(&w, FSW_SETTLE_FAST, NULL);
    cr_assert(fsw_wait_v(&w, "x", "1", 20000));
    b = fs_new_stream(w.fs);
    fs_put(w.fs, b, "MODIFY", "x", "2", 2000); /* same second, newer */
    cr_assert(fsw_wait_v(&w, "x", "2", 20000), "the newer image won (409 would keep 1)");
    fsw_teardown(&w);
}

/* SPEC: start is "used only when no checkpoint exists".  A table followed
 * before has a checkpoint, even if only for its old stream: after a switch
 * while stopped, the new stream is read from its start even with
 * start = latest, or the writes made meanwhile would be skipped. */
Test(life, start_latest_applies_only_to_a_table_never_followed)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    int a, b;

    fsw_setup(&w, NULL);
    a = fs_add_shard(w.fs, -1, false);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id",
                            .extra = "start = latest" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FSW_FAST FSW_SETTLE_FAST, NULL,
                         w.dir, sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(fsw_log_has(&w, "starts at LATEST", 10000));
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, a) == 0; i++)
        usleep(50000);
    fs_put(w.fs, a, "INSERT", "first", "1", (int64_t)time(NULL));
    cr_assert(fsw_wait_v(&w, "first", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    b = fs_new_stream(w.fs);
    fs_put(w.fs, b, "INSERT", "while_stopped", "1", (int64_t)time(NULL));
    fsw_restart(&w);
    fs_put(w.fs, b, "INSERT", "after", "1", (int64_t)time(NULL));
    cr_assert(fsw_wait_v(&w, "after", "1", 20000));
    cr_assert(fsw_wait_v(&w, "while_stopped", "1", 2000),
              "written while stopped on the new stream: read, not skipped as history");
    fsw_teardown(&w);
}

/* ---- LATEST is taken once ------------------------------------------------ */

/* A shard started at LATEST whose iterator expires before its first record
 * (15 minutes: REFERENCE.md Streams fact 5; a long sink outage pauses the
 * readers) must not take LATEST again: the writes made meanwhile would be
 * skipped.  It reads from TRIM_HORIZON, skipping what was created before
 * it started. */
Test(life, a_shard_started_at_latest_keeps_the_writes_made_while_its_iterator_expired)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "history", "1", (int64_t)time(NULL) - 3600);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id",
                            .extra = "start = latest" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FSW_FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(fsw_log_has(&w, "starts at LATEST", 10000));
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, s) == 0; i++)
        usleep(50000);
    /* The iterator expired; a write lands before it is renewed. */
    fs_fail(w.fs, FS_GET_RECORDS, 1, 400,
            "com.amazonaws.dynamodb.v20120810#ExpiredIteratorException");
    fs_put(w.fs, s, "INSERT", "meanwhile", "1", (int64_t)time(NULL));
    cr_assert(fsw_log_has(&w, "iterator expired", 10000));
    cr_assert(fsw_wait_v(&w, "meanwhile", "1", 20000), "the write made meanwhile is indexed");
    cr_expect(fsw_wait_v(&w, "history", NULL, 100), "what came before the start is skipped");
    fsw_teardown(&w);
}

/* The same when the daemon stops before the shard's first record: the
 * start second is kept in the checkpoint (format version 2). */
Test(life, a_restart_before_the_first_record_keeps_the_latest_start)
{
    struct fsworld w;
    struct e2e_table t;
    const char *conf;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "history", "1", (int64_t)time(NULL) - 3600);
    t = (struct e2e_table){ .name = w.table, .index = w.table, .hash = "id",
                            .extra = "start = latest" };
    conf = e2e_config_ex(fs_url(w.fs), searchd_url(w.sd), &t, 1, FSW_FAST, NULL, w.dir,
                         sizeof(w.dir));
    e2e_start(&w.p, conf);
    cr_assert(fsw_log_has(&w, "starts at LATEST", 10000));
    for (int i = 0; i < 200 && fs_shard_reads(w.fs, s) == 0; i++)
        usleep(50000);
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, s, "INSERT", "while_stopped", "1", (int64_t)time(NULL));
    fsw_restart(&w);
    cr_assert(fsw_wait_v(&w, "while_stopped", "1", 20000));
    cr_expect(fsw_wait_v(&w, "history", NULL, 100), "history stays skipped");
    fsw_teardown(&w);
}

/* ---- ResourceNotFound ---------------------------------------------------- */

/* REFERENCE.md Streams fact 7: ResourceNotFoundException is the end of a
 * shard only when it is known to have expired; right after a stream is
 * enabled the service may not know a shard it lists yet. */
Test(life, not_found_for_a_listed_open_shard_is_retried)
{
    struct fsworld w;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_fail(w.fs, FS_GET_SHARD_ITERATOR, 3, 400,
            "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException");
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000), "the shard was read once it was known");
    fs_put(w.fs, s, "INSERT", "b", "1", 1001);
    cr_assert(fsw_wait_v(&w, "b", "1", 20000), "and it is still followed");
    {
        char labels[128];

        snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
        cr_expect_eq(fsw_metric(&w, "ddb2es_records_lost_events_total", labels), 0,
                     "no loss counted");
    }
    fsw_teardown(&w);
}

/* A shard that expired (no longer listed, and not found) while records
 * were left in it: the loss is counted and logged at error level
 * (invariant 6), and its child is read. */
Test(life, an_expired_shard_ends_with_its_loss_counted_and_its_child_read)
{
    struct fsworld w;
    char labels[128];
    int p, c;

    fsw_setup(&w, NULL);
    p = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, p, "INSERT", "a", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, p, "INSERT", "lost", "1", 1001);
    fs_close_shard(w.fs, p);
    c = fs_add_shard(w.fs, p, false);
    fs_put(w.fs, c, "INSERT", "child", "1", 1002);
    fs_expire_shard(w.fs, p);
    fsw_restart(&w);
    cr_assert(fsw_wait_v(&w, "child", "1", 20000), "the child was read");
    cr_expect(fsw_log_has(&w, "expired before it was read to its end", 100));
    snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
    cr_expect_eq(fsw_metric(&w, "ddb2es_records_lost_events_total", labels), 1,
                 "the loss is counted once");
    fsw_teardown(&w);
}

/* ---- lineage and listings ------------------------------------------------ */

/* A parent the checkpoint knows as unfinished, missing from a listing for a
 * while (Streams fact 8: listings can be incomplete), is read for what is
 * left before its child starts; the child never starts early. */
Test(life, an_unfinished_parent_missing_from_the_listing_is_read_before_its_child)
{
    struct fsworld w;
    char labels[128];
    int p, c;

    fsw_setup(&w, NULL);
    p = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, p, "INSERT", "a", "1", 1000);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000));
    cr_assert_eq(e2e_stop(&w.p, 15000), 0);
    fs_put(w.fs, p, "INSERT", "x", "1", 1001);
    fs_close_shard(w.fs, p);
    c = fs_add_shard(w.fs, p, false);
    fs_put(w.fs, c, "MODIFY", "x", "2", 1001);
    fs_hide(w.fs, p);
    fsw_restart(&w);
    {
        int lineage[] = { p, c };

        need_matches(&w, lineage, 2, 20000, "the parent's rest, then the child");
    }
    cr_expect(fs_child_read_after_parent_end(w.fs, p, c), "the child started after the parent");
    snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
    cr_expect_eq(fsw_metric(&w, "ddb2es_shard_parents_missing_total", labels), 1);
    cr_expect(fsw_log_has(&w, "no longer lists it", 100), "said at error level");
    fsw_teardown(&w);
}

/* Shards roll over about every 4 h (Streams fact 8); each finished one is
 * freed.  Sixty in a row are read in order, counted as done, and the daemon
 * stops cleanly with nothing left on its loop. */
Test(life, sixty_rollovers_in_a_row)
{
    struct fsworld w;
    int sh[60];
    char id[16], labels[160];

    fsw_setup(&w, NULL);
    for (int i = 0; i < 60; i++) {
        char v[16];

        sh[i] = fs_add_shard(w.fs, i ? sh[i - 1] : -1, false);
        snprintf(id, sizeof(id), "k%d", i % 7);
        snprintf(v, sizeof(v), "%d", i); /* the last shards' values only at the end */
        fs_put(w.fs, sh[i], i % 3 ? "MODIFY" : "INSERT", id, v, 1000 + i);
        if (i < 59)
            fs_close_shard(w.fs, sh[i]);
    }
    fsw_start(&w, NULL, NULL);
    need_matches(&w, sh, 60, 30000, "every shard read in order");
    snprintf(labels, sizeof(labels), "state=\"done\",table=\"%s\"", w.table);
    cr_expect_eq(fsw_metric(&w, "ddb2es_shards", labels), 59, "done: %g",
                 fsw_metric(&w, "ddb2es_shards", labels));
    snprintf(labels, sizeof(labels), "state=\"open\",table=\"%s\"", w.table);
    cr_expect_eq(fsw_metric(&w, "ddb2es_shards", labels), 1, "open: %g",
                 fsw_metric(&w, "ddb2es_shards", labels));
    fsw_teardown(&w);
}

/* ---- records that cannot be handled -------------------------------------- */

/* A record the stream sent that is not JSON (here a bare word where a value
 * should be; also what a jansson without JSON_ALLOW_NUL made of "\u0000")
 * goes to the dead-letter file as received, with its table, shard and
 * sequence number, and the records after it flow. */
Test(life, a_record_that_is_not_json_is_dead_lettered_and_the_shard_goes_on)
{
    struct fsworld w;
    char *dlq;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put_raw(w.fs, s, "{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"@SEQ@\","
                        "\"Keys\":{\"id\":{\"S\":\"poison\"}},\"NewImage\":{\"v\":nope}}}");
    fs_put(w.fs, s, "INSERT", "c", "3", 1001);
    fsw_start(&w, NULL, NULL);
    {
        int lineage[] = { s };

        need_matches(&w, lineage, 1, 20000, "the records around it");
    }
    cr_assert(fsw_wait_v(&w, "poison", NULL, 100));
    dlq = dlq_text(&w);
    cr_expect(strstr(dlq, "record_not_json") != NULL, "%s", dlq);
    cr_expect(strstr(dlq, "nope") != NULL, "kept as received: %s", dlq);
    cr_expect(strstr(dlq, "\"seq\":\"") != NULL, "with its position: %s", dlq);
    free(dlq);
    {
        char labels[160];

        snprintf(labels, sizeof(labels), "reason=\"record_not_json\",table=\"%s\"", w.table);
        cr_expect_eq(fsw_metric(&w, "ddb2es_dlq_total", labels), 1,
                     "counted with its reason in ddb2es_dlq_total");
    }
    fsw_teardown(&w);
}

/* A record with no sequence number cannot be placed in the stream: it too
 * goes to the dead-letter file, not into a silent skip. */
Test(life, a_record_without_a_sequence_number_is_dead_lettered)
{
    struct fsworld w;
    char *dlq;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put_raw(w.fs, s, "{\"eventName\":\"INSERT\",\"dynamodb\":{\"Keys\":{\"id\":{\"S\":\"q\"}}}}");
    fs_put(w.fs, s, "INSERT", "c", "3", 1001);
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "c", "3", 20000));
    dlq = dlq_text(&w);
    cr_expect(strstr(dlq, "record_without_sequence_number") != NULL, "%s", dlq);
    free(dlq);
    fsw_teardown(&w);
}

/* A page whose text breaks off in a record (an unterminated string) is read
 * again a few times, then the whole records before the break are taken, the
 * rest is dead-lettered as received, and reading goes on after the highest
 * sequence number it showed: never an endless loop. */
Test(life, a_page_that_stays_broken_is_taken_up_to_the_break_and_the_rest_dead_lettered)
{
    struct fsworld w;
    char *dlq;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put_raw(w.fs, s, "{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"@SEQ@\","
                        "\"Keys\":{\"id\":{\"S\":\"broken");
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "a", "1", 20000), "the record before the break is taken");
    cr_assert(fsw_log_has(&w, "reading the page again", 20000));
    dlq = NULL;
    for (int i = 0; i < 100; i++) {
        free(dlq);
        dlq = dlq_text(&w);
        if (strstr(dlq, "records_not_json"))
            break;
        usleep(100000);
    }
    cr_expect(strstr(dlq, "records_not_json") != NULL, "the rest is dead-lettered: %s", dlq);
    free(dlq);
    fs_put(w.fs, s, "INSERT", "after", "1", 1001);
    cr_assert(fsw_wait_v(&w, "after", "1", 20000), "and reading goes on after it");
    fsw_teardown(&w);
}

/* ---- KEYS_ONLY: items read again ------------------------------------------ */

/* After a failed BatchGetItem, the shard goes back to fetching those items,
 * not to reading on (a closed shard would be read again from its start, and
 * newer records could overtake the older ones being fetched). */
Test(life, a_failed_batch_get_goes_back_to_the_items_not_to_the_records)
{
    struct fsworld w;
    int s;

    fsw_setup(&w, NULL);
    fs_view(w.fs, "KEYS_ONLY");
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put(w.fs, s, "INSERT", "b", "2", 1000);
    fs_close_shard(w.fs, s);
    fs_fail(w.fs, FS_BATCH_GET_ITEM, 1, 400, "com.amazon.coral.validate#ValidationException");
    fsw_start(&w, NULL, NULL);
    {
        int lineage[] = { s };

        need_matches(&w, lineage, 1, 20000, "the items were indexed");
    }
    cr_expect_eq(fs_calls(w.fs, FS_GET_SHARD_ITERATOR), 1, "the shard was not read again (%u)",
                 fs_calls(w.fs, FS_GET_SHARD_ITERATOR));
    cr_expect_eq(fs_calls(w.fs, FS_BATCH_GET_ITEM), 2);
    fsw_teardown(&w);
}

/* A BatchGetItem reply that cannot be read although its CRC matches (the
 * service sent it so: sending the call again gets the same) is not retried
 * forever: the keys are asked for one by one, the record whose item cannot
 * be read goes to the dead-letter file with its keys, the others flow. */
Test(life, an_unreadable_batch_get_reply_dead_letters_only_the_record_it_holds)
{
    struct fsworld w;
    char *dlq;
    int s;

    fsw_setup(&w, NULL);
    fs_view(w.fs, "KEYS_ONLY");
    s = fs_add_shard(w.fs, -1, false);
    fs_put(w.fs, s, "INSERT", "a", "1", 1000);
    fs_put(w.fs, s, "INSERT", "b", "2", 1000);
    fs_put(w.fs, s, "INSERT", "c", "3", 1000);
    fs_bad_reply(w.fs, FS_BATCH_GET_ITEM, 2); /* the batch, then the first key alone */
    fsw_start(&w, NULL, NULL);
    cr_assert(fsw_wait_v(&w, "c", "3", 20000));
    cr_assert(fsw_wait_v(&w, "b", "2", 20000));
    cr_assert(fsw_wait_v(&w, "a", NULL, 100), "the unreadable one is not indexed");
    dlq = dlq_text(&w);
    cr_expect(strstr(dlq, "item_unreadable") != NULL, "%s", dlq);
    cr_expect(strstr(dlq, "\"a\"") != NULL, "with its keys: %s", dlq);
    free(dlq);
    fsw_teardown(&w);
}

/* ---- memory behind a stuck item ------------------------------------------ */

/* DESIGN invariant 4.  An item the engine keeps refusing with a retryable
 * error (a red index shard answering 503 for it) holds the checkpoint; the
 * records read after it are remembered until it finishes.  At
 * shard_read_ahead of them the shard stops reading (state "held") and its
 * memory stops growing; once the item goes through, everything flows. */
Test(life, a_shard_stuck_behind_one_item_stops_at_shard_read_ahead)
{
    struct fsworld w;
    char labels[160], id[16];
    unsigned reads;
    int s;

    fsw_setup(&w, NULL);
    s = fs_add_shard(w.fs, -1, false);
    cr_assert_eq(searchd_faults(w.sd, "{\"item_status\":503,\"ids\":[\"k0000\"],\"match\":\"bulk\",\"count\":-1}"), 200);
    for (int i = 0; i < 3000; i++) {
        snprintf(id, sizeof(id), "k%04d", i);
        fs_put(w.fs, s, "INSERT", id, "1", 1000 + i / 100);
    }
    fsw_start(&w, "shard_read_ahead = 1000\n", "bulk_max_actions = 100\n");
    snprintf(labels, sizeof(labels), "state=\"held\",table=\"%s\"", w.table);
    for (int i = 0; i < 200 && fsw_metric(&w, "ddb2es_shards", labels) != 1; i++)
        usleep(100000);
    cr_assert_eq(fsw_metric(&w, "ddb2es_shards", labels), 1, "the shard is held");
    cr_expect(fsw_log_has(&w, "stops reading", 100));
    reads = fs_shard_reads(w.fs, s);
    sleep(2);
    cr_expect_eq(fs_shard_reads(w.fs, s), reads, "no GetRecords while held");
    snprintf(labels, sizeof(labels), "table=\"%s\"", w.table);
    cr_expect_lt(fsw_metric(&w, "ddb2es_records_read_total", labels), 2100,
                 "read ahead of the checkpoint: about shard_read_ahead plus a page");
    {
        struct searchd_resp resp;

        cr_assert_eq(searchd_request(w.sd, "DELETE", "/_double/faults", NULL, NULL, 0, &resp), 0);
        searchd_resp_close(&resp);
    }
    {
        int lineage[] = { s };

        need_matches(&w, lineage, 1, 60000, "everything flows once the item goes through");
    }
    fsw_teardown(&w);
}
