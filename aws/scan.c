#include "aws/scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/backoff.h"
#include "base/log.h"
#include "base/util.h"

static const char *const state_names[] = {
    [SCAN_SEND] = "send", [SCAN_WAIT] = "wait", [SCAN_INFLIGHT] = "in-flight",
    [SCAN_HELD] = "held", [SCAN_BACKOFF] = "backoff", [SCAN_DONE] = "done"
};
_Static_assert(ARRAY_SIZE(state_names) == SCAN_NSTATES, "a name for each segment state");

json_t *scan_request(const char *table, int segment, int total, int limit, json_t *start,
                     bool consistent)
{
    json_t *body = json_pack("{s:s}", "TableName", table);

    if (body && total > 1) {
        json_object_set_new(body, "Segment", json_integer(segment));
        json_object_set_new(body, "TotalSegments", json_integer(total));
    }
    if (body && limit > 0)
        json_object_set_new(body, "Limit", json_integer(limit));
    if (body && start)
        json_object_set(body, "ExclusiveStartKey", start);
    if (body && consistent)
        json_object_set_new(body, "ConsistentRead", json_true());
    return body;
}

int scan_failed(const struct ddb_reply *rep, struct bucket *b, double seen, uint64_t now_ms,
                uint64_t *failing_since, int64_t give_up_ms, const char *table, int segment,
                char *why, size_t whylen)
{
    if (rep->cls == DDB_THROTTLED) {
        log_warn("Scan throttled (%s): lowering the rate to %.0f items/s", rep->type,
                 bucket_throttled(b, seen));
    } else if (rep->cls == DDB_NOT_FOUND) {
        snprintf(why, whylen, "table %s: %s", table, rep->message);
        return 69;
    } else if (rep->cls == DDB_FATAL && (strcmp(rep->type, "AccessDeniedException") == 0 ||
                                         strcmp(rep->type, "UnrecognizedClientException") == 0)) {
        snprintf(why, whylen, "Scan of %s refused: %s: %s", table, rep->type, rep->message);
        return 77;
    } else {
        log_warn("Scan of %s segment %d failed: HTTP %ld %s %s; retrying", table, segment,
                 rep->status, rep->type, rep->message);
    }
    if (!*failing_since)
        *failing_since = now_ms;
    if (now_ms - *failing_since >= (uint64_t)give_up_ms) {
        snprintf(why, whylen, "Scan of %s failing for %" PRId64 " s: HTTP %ld %s %s", table,
                 give_up_ms / 1000, rep->status, rep->type, rep->message);
        return 69;
    }
    return 0;
}

const char *scan_state_name(enum scan_state st)
{
    return (unsigned)st < SCAN_NSTATES ? state_names[st] : "?";
}

void scan_seg_init(struct scan_seg *sg, struct scan *s, uv_loop_t *loop, int no)
{
    sg->scan = s;
    sg->no = no;
    sg->state = SCAN_SEND;
    uv_timer_init(loop, &sg->timer);
}

void scan_seg_set(struct scan_seg *sg, enum scan_state to)
{
    if (sg->state != to)
        log_debug("Scan of %s segment %d: %s -> %s", sg->scan->table, sg->no,
                  state_names[sg->state], state_names[to]);
    sg->state = to;
}

static void on_timer(uv_timer_t *t)
{
    struct scan_seg *sg = container_of(t, struct scan_seg, timer);

    scan_seg_set(sg, SCAN_SEND);
    scan_seg_drive(sg);
}

static void backoff(struct scan_seg *sg)
{
    struct scan *s = sg->scan;

    scan_seg_set(sg, SCAN_BACKOFF);
    s->retried++;
    uv_timer_start(&sg->timer, on_timer,
                   (uint64_t)backoff_ms(s->retry_base_ms, s->retry_max_ms, sg->failures++), 0);
}

static void page_failed(struct scan_seg *sg, const struct ddb_reply *rep)
{
    struct scan *s = sg->scan;
    uint64_t now = uv_now(sg->timer.loop);
    double el = (double)(now - s->start_ms) / 1000.0;
    char why[768];
    int code;

    bucket_give(&s->bucket, sg->limit); /* nothing was read */
    code = scan_failed(rep, &s->bucket, el > 1 ? (double)s->read / el : 100, now,
                       &sg->failing_since, s->give_up_ms, s->table, sg->no, why, sizeof(why));
    if (code)
        s->ops->fail(s, code, why);
    else
        backoff(sg);
}

/* The state after a page taken: on, or done. */
static void page_taken(struct scan_seg *sg)
{
    struct scan *s = sg->scan;

    scan_seg_set(sg, sg->more ? SCAN_SEND : SCAN_DONE);
    scan_seg_drive(sg);
    if (s->ops->after && !s->stopping)
        s->ops->after(s);
}

static void on_scan(const struct ddb_reply *rep, void *arg)
{
    struct scan_seg *sg = arg;
    struct scan *s = sg->scan;
    json_t *items, *lek;
    int rc;

    sg->call = NULL;
    if (rep->err == -ECANCELED || s->stopping)
        return;
    if (rep->cls != DDB_OK) {
        page_failed(sg, rep);
        return;
    }
    items = json_object_get(rep->json, "Items");
    lek = json_object_get(rep->json, "LastEvaluatedKey");
    if (!json_is_object(lek))
        lek = NULL;
    bucket_give(&s->bucket, sg->limit - (int)json_array_size(items));
    bucket_page(&s->bucket);
    rc = s->ops->page(sg, items, lek);
    if (rc < 0 || s->stopping)
        return;
    if (rc == SCAN_AGAIN) {
        backoff(sg);
        return;
    }
    sg->failures = 0;
    sg->failing_since = 0;
    s->read += json_array_size(items);
    json_decref(sg->start);
    sg->start = json_incref(lek);
    sg->more = lek != NULL;
    if (rc == SCAN_HOLD)
        scan_seg_set(sg, SCAN_HELD);
    else
        page_taken(sg);
}

static void send_page(struct scan_seg *sg)
{
    struct scan *s = sg->scan;
    json_t *body;
    uint64_t wait;
    int limit;

    if (s->ops->busy && s->ops->busy(s)) {
        scan_seg_set(sg, SCAN_WAIT); /* scan_seg_resume */
        return;
    }
    limit = bucket_take(&s->bucket, uv_now(sg->timer.loop), s->nshares, s->page_max, &wait);
    if (limit == 0) {
        scan_seg_set(sg, SCAN_WAIT); /* its timer */
        uv_timer_start(&sg->timer, on_timer, wait, 0);
        return;
    }
    if (limit < 0)
        limit = s->page_limit; /* no rate */
    sg->limit = limit;
    body = scan_request(s->table, sg->no, s->total, limit, sg->start, s->consistent);
    sg->call = body ? ddb_call(s->aws, AWS_DYNAMODB, "Scan", body, on_scan, sg, NULL) : NULL;
    if (!sg->call) {
        bucket_give(&s->bucket, limit);
        backoff(sg);
        return;
    }
    scan_seg_set(sg, SCAN_INFLIGHT);
}

void scan_seg_drive(struct scan_seg *sg)
{
    if (!sg->scan->stopping && sg->state == SCAN_SEND)
        send_page(sg);
}

void scan_seg_resume(struct scan_seg *sg)
{
    if (sg->state == SCAN_WAIT && !uv_is_active((uv_handle_t *)&sg->timer)) {
        scan_seg_set(sg, SCAN_SEND);
        scan_seg_drive(sg);
    }
}

void scan_seg_release(struct scan_seg *sg)
{
    if (sg->state == SCAN_HELD)
        page_taken(sg);
}

void scan_seg_stop(struct scan_seg *sg)
{
    sg->scan->stopping = true;
    uv_timer_stop(&sg->timer);
    if (sg->call)
        ddb_cancel(sg->call);
}

void scan_seg_close(struct scan_seg *sg)
{
    json_decref(sg->start);
    sg->start = NULL;
}
