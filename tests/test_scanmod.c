/* scanmod: the Scan segment machine (aws/scan.c) that replay --scan, verify
 * and schema share, inside the test process on a libuv loop, against a
 * small Scan server on fakehttp.  The server follows the Scan API (DynamoDB
 * API Reference, "Scan"): a parallel Scan's Segment/TotalSegments, a page
 * ending with LastEvaluatedKey while more follow, ExclusiveStartKey for the
 * next; and its error bodies (ResourceNotFoundException, AccessDenied,
 * ProvisionedThroughputExceededException, 500) as ddb.c classifies them.
 * The owner here counts items, holds pages, turns pages away and is busy, as
 * the three commands do. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aws/scan.h"
#include "base/backoff.h"
#include "tests/support/awsloop.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"

TestSuite(scanmod, .timeout = 60);

#define NSEG 3
#define PAGES 4
#define PER_PAGE 5
#define DDB_ERR(t) "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" t "\",\"message\":\"m\"}"

/* ---- the server ----------------------------------------------------------- */

struct server {
    pthread_mutex_t mu;
    int asked[NSEG][PAGES];    /* requests for each page */
    int fail[NSEG];            /* the next calls of a segment answered with err */
    int err_status;
    const char *err_body;
    int limits_seen;           /* requests carrying a Limit */
    int invalid;               /* requests DynamoDB would refuse (ValidationException) */
    char body[4096];           /* the reply being built (one request at a time) */
};

static void serve(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    struct server *sv = arg;
    json_t *q = json_loads(req->body, 0, NULL), *items, *rep;
    int seg = (int)json_integer_value(json_object_get(q, "Segment"));
    json_t *start = json_object_get(q, "ExclusiveStartKey");
    int page = start ? atoi(json_string_value(json_object_get(json_object_get(start, "p"),
                                                              "N"))) : 0;
    char *text;

    json_t *limit = json_object_get(q, "Limit"), *segment = json_object_get(q, "Segment");
    json_t *total = json_object_get(q, "TotalSegments");

    pthread_mutex_lock(&sv->mu);
    if (limit)
        sv->limits_seen++;
    /* What DynamoDB refuses with a ValidationException (API Reference,
     * Scan): a Limit below 1, Segment without TotalSegments or the other
     * way round, Segment not below TotalSegments, TotalSegments outside
     * 1..1000000, a table name other than the one scanned. */
    if ((limit && (!json_is_integer(limit) || json_integer_value(limit) < 1)) ||
        !segment != !total || !json_is_integer(segment) || !json_is_integer(total) ||
        json_integer_value(segment) < 0 ||
        json_integer_value(segment) >= json_integer_value(total) ||
        json_integer_value(total) < 1 || json_integer_value(total) > 1000000 ||
        strcmp(json_string_value(json_object_get(q, "TableName")) ?
               json_string_value(json_object_get(q, "TableName")) : "", "posts") != 0 ||
        (start && page < 1) || seg < 0 || seg >= NSEG || page >= PAGES) {
        sv->invalid++;
        out->status = 400;
        out->body = DDB_ERR("ValidationException");
        pthread_mutex_unlock(&sv->mu);
        json_decref(q);
        return;
    }
    if (sv->fail[seg] > 0) {
        sv->fail[seg]--;
        out->status = sv->err_status;
        out->body = sv->err_body;
        pthread_mutex_unlock(&sv->mu);
        json_decref(q);
        return;
    }
    sv->asked[seg][page]++;
    items = json_array();
    for (int i = 0; i < PER_PAGE; i++) {
        char id[32];

        snprintf(id, sizeof(id), "%d-%d-%d", seg, page, i);
        json_array_append_new(items, json_pack("{s:{s:s}}", "id", "S", id));
    }
    rep = json_pack("{s:o, s:i, s:i}", "Items", items, "Count", PER_PAGE, "ScannedCount",
                    PER_PAGE);
    if (page + 1 < PAGES) {
        char n[16];

        snprintf(n, sizeof(n), "%d", page + 1);
        json_object_set_new(rep, "LastEvaluatedKey", json_pack("{s:{s:s}}", "p", "N", n));
    }
    text = json_dumps(rep, JSON_COMPACT);
    snprintf(sv->body, sizeof(sv->body), "%s", text);
    free(text);
    json_decref(rep);
    json_decref(q);
    out->status = 200;
    out->body = sv->body;
    pthread_mutex_unlock(&sv->mu);
}

/* ---- the owner ------------------------------------------------------------ */

struct owner {
    struct scan s;
    struct scan_seg segs[NSEG];
    int taken[NSEG][PAGES][PER_PAGE];
    int next_page[NSEG];       /* pages come in order per segment */
    bool out_of_order;
    int hold_every;            /* hold each page whose number is a multiple (0: none) */
    int again_once;            /* turn the first such many pages away */
    int busy_calls;            /* answer busy this many times */
    int fail_code;
    char why[800];
    int afters;
    uv_timer_t release;        /* gives held pages back a little later */
    struct scan_seg *held[NSEG];
    int nheld;
};

static int page_no(json_t *items)
{
    int s, p, i;

    if (!json_array_size(items) ||
        sscanf(json_string_value(json_object_get(json_object_get(json_array_get(items, 0), "id"),
                                                 "S")), "%d-%d-%d", &s, &p, &i) != 3)
        return -1;
    return p;
}

static void on_release(uv_timer_t *t)
{
    struct owner *o = t->data;

    while (o->nheld > 0)
        scan_seg_release(o->held[--o->nheld]);
}

static int on_page(struct scan_seg *sg, json_t *items, json_t *lek)
{
    struct owner *o = sg->scan->owner;
    int p = page_no(items);
    size_t i;
    json_t *it;

    (void)lek;
    if (o->again_once > 0) {
        o->again_once--;
        return SCAN_AGAIN;
    }
    if (p != o->next_page[sg->no])
        o->out_of_order = true;
    o->next_page[sg->no] = p + 1;
    json_array_foreach(items, i, it) {
        int s, pp, k;

        sscanf(json_string_value(json_object_get(json_object_get(it, "id"), "S")), "%d-%d-%d",
               &s, &pp, &k);
        o->taken[s][pp][k]++;
    }
    if (o->hold_every && p % o->hold_every == 0) {
        o->held[o->nheld++] = sg;
        uv_timer_start(&o->release, on_release, 5, 0);
        return SCAN_HOLD;
    }
    return 0;
}

static bool is_busy(struct scan *s)
{
    struct owner *o = s->owner;

    return o->busy_calls > 0 && o->busy_calls--;
}

static void after(struct scan *s)
{
    ((struct owner *)s->owner)->afters++;
}

static void fail(struct scan *s, int code, const char *why)
{
    struct owner *o = s->owner;

    o->fail_code = code;
    snprintf(o->why, sizeof(o->why), "%s", why);
    for (int i = 0; i < NSEG; i++)
        scan_seg_stop(&o->segs[i]);
}

static const struct scan_ops ops = { .busy = is_busy, .page = on_page, .after = after,
                                     .fail = fail };

static struct awsloop al;
static struct fakehttp *fake;
static struct server sv = { .mu = PTHREAD_MUTEX_INITIALIZER };
static struct owner ow;

static double zero_rng(void)
{
    return 0.0;
}

static void start(double rate)
{
    fake = fake_start();
    fake_set_handler(fake, serve, &sv);
    awsloop_open(&al, fake_url(fake));
    backoff_set_rng(zero_rng); /* the retries inside one call wait nothing */
    ow.s = (struct scan){ .ops = &ops, .owner = &ow, .aws = al.aws, .table = "posts",
                          .total = NSEG, .nshares = NSEG, .page_max = 1000,
                          .retry_base_ms = 5, .retry_max_ms = 20, .give_up_ms = 60000 };
    bucket_init(&ow.s.bucket, rate, 0);
    ow.s.bucket.at = ow.s.start_ms = uv_now(&al.loop);
    uv_timer_init(&al.loop, &ow.release);
    ow.release.data = &ow;
    for (int i = 0; i < NSEG; i++)
        scan_seg_init(&ow.segs[i], &ow.s, &al.loop, i);
}

static bool all_done(void *arg)
{
    struct owner *o = arg;

    for (int i = 0; i < NSEG; i++)
        if (o->segs[i].state != SCAN_DONE)
            return false;
    return true;
}

static bool failed(void *arg)
{
    return ((struct owner *)arg)->fail_code != 0;
}

static void finish(void)
{
    cr_expect_eq(sv.invalid, 0, "%d requests DynamoDB would refuse", sv.invalid);
    for (int i = 0; i < NSEG; i++) {
        scan_seg_stop(&ow.segs[i]);
        scan_seg_close(&ow.segs[i]);
        uv_close((uv_handle_t *)&ow.segs[i].timer, NULL);
    }
    uv_close((uv_handle_t *)&ow.release, NULL);
    backoff_set_rng(NULL);
    awsloop_close(&al);
    fake_stop(fake);
}

static void drive_all(void)
{
    for (int i = 0; i < NSEG; i++)
        scan_seg_drive(&ow.segs[i]);
}

static void assert_each_item_once(void)
{
    for (int s = 0; s < NSEG; s++)
        for (int p = 0; p < PAGES; p++)
            for (int k = 0; k < PER_PAGE; k++)
                cr_assert_eq(ow.taken[s][p][k], 1, "item %d-%d-%d taken %d times", s, p, k,
                             ow.taken[s][p][k]);
    cr_assert_not(ow.out_of_order, "a segment's pages came out of order");
}

Test(scanmod, every_page_is_taken_once_in_order_held_pages_included)
{
    ow.hold_every = 2; /* pages 0 and 2 of each segment held a while */
    start(0);
    drive_all();
    cr_assert(loop_run_until(&al.loop, all_done, &ow, 20000), "the Scan did not finish");
    assert_each_item_once();
    for (int s = 0; s < NSEG; s++)
        for (int p = 0; p < PAGES; p++)
            cr_assert_eq(sv.asked[s][p], 1, "page %d of segment %d asked %d times", p, s,
                         sv.asked[s][p]);
    cr_assert_eq(ow.afters, NSEG * PAGES, "after() once per page, got %d", ow.afters);
    cr_assert_eq(ow.s.read, (uint64_t)(NSEG * PAGES * PER_PAGE));
    cr_assert_eq(sv.limits_seen, 0, "no Limit without a rate");
    finish();
}

Test(scanmod, a_busy_owner_makes_segments_wait_until_resumed)
{
    ow.busy_calls = NSEG;
    start(0);
    drive_all();
    for (int i = 0; i < NSEG; i++)
        cr_assert_eq(ow.segs[i].state, SCAN_WAIT, "segment %d: %s", i,
                     scan_state_name(ow.segs[i].state));
    uv_run(&al.loop, UV_RUN_NOWAIT);
    cr_assert_eq(fake_nreq(fake), 0, "a waiting segment sent a request");
    for (int i = 0; i < NSEG; i++)
        scan_seg_resume(&ow.segs[i]);
    cr_assert(loop_run_until(&al.loop, all_done, &ow, 20000), "the Scan did not finish");
    assert_each_item_once();
    finish();
}

Test(scanmod, failed_and_turned_away_pages_are_read_again_from_the_same_key)
{
    sv.fail[1] = 4 * 2;           /* two whole calls of 4 attempts */
    sv.err_status = 500;
    sv.err_body = DDB_ERR("InternalServerError");
    ow.again_once = 2;
    start(0);
    drive_all();
    cr_assert(loop_run_until(&al.loop, all_done, &ow, 20000), "the Scan did not finish");
    assert_each_item_once();
    cr_assert_eq(ow.s.retried, 4, "2 failed calls + 2 pages turned away, got %llu",
                 (unsigned long long)ow.s.retried);
    finish();
}

Test(scanmod, throttling_halves_the_rate_and_the_scan_goes_on)
{
    sv.fail[0] = 4;
    sv.err_status = 400;
    sv.err_body = DDB_ERR("ProvisionedThroughputExceededException");
    start(1000);
    drive_all();
    cr_assert(loop_run_until(&al.loop, all_done, &ow, 20000), "the Scan did not finish");
    assert_each_item_once();
    cr_assert_lt(ow.s.bucket.rate, 1000, "the rate was not lowered: %f", ow.s.bucket.rate);
    cr_assert_gt(sv.limits_seen, 0, "a rated Scan asks with a Limit");
    finish();
}

Test(scanmod, a_table_gone_ends_the_scan_with_69)
{
    sv.fail[2] = 1;
    sv.err_status = 400;
    sv.err_body = DDB_ERR("ResourceNotFoundException");
    start(0);
    drive_all();
    cr_assert(loop_run_until(&al.loop, failed, &ow, 20000), "the Scan did not fail");
    cr_assert_eq(ow.fail_code, 69);
    cr_assert(strstr(ow.why, "posts"), "why names the table: %s", ow.why);
    finish();
}

Test(scanmod, refused_credentials_end_the_scan_with_77)
{
    sv.fail[0] = 1;
    sv.err_status = 400;
    sv.err_body = DDB_ERR("AccessDeniedException");
    start(0);
    drive_all();
    cr_assert(loop_run_until(&al.loop, failed, &ow, 20000), "the Scan did not fail");
    cr_assert_eq(ow.fail_code, 77, "got %d: %s", ow.fail_code, ow.why);
    finish();
}

Test(scanmod, a_segment_failing_past_give_up_ends_the_scan_with_69)
{
    sv.fail[0] = 1 << 20;
    sv.err_status = 500;
    sv.err_body = DDB_ERR("InternalServerError");
    start(0);
    ow.s.give_up_ms = 200;
    drive_all();
    cr_assert(loop_run_until(&al.loop, failed, &ow, 20000), "the Scan did not give up");
    cr_assert_eq(ow.fail_code, 69);
    cr_assert(strstr(ow.why, "failing for"), "%s", ow.why);
    finish();
}
