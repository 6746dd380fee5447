/* replay_scan — the Scan of `ddb2es replay --scan`: one state machine per
 * segment (one request in flight each), a token bucket shared by the
 * segments for --rate, pages kept in order per segment so the saved
 * position (the LastEvaluatedKey of the last page whose items all finished)
 * never passes an unfinished item.
 *
 * A segment is in one state:
 *   scan       a request is to be sent (drive sends it)
 *   wait       the sink is full (on_sink_resume) or the bucket is empty
 *   in-flight  its Scan request is out
 *   backoff    a request failed: the timer sends the next
 *   read       its last page is read (done once its items all finished)
 */
#include "daemon/replay_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "aws/scan.h"
#include "base/backoff.h"
#include "base/log.h"
#include "base/util.h"
#include "indexer/sink.h"

#define PAGE_MAX_LIMIT 1000         /* Scan Limit when --rate caps it */

static const char *const seg_state_names[] = {
    [SG_SCAN] = "scan", [SG_WAIT] = "wait", [SG_INFLIGHT] = "in-flight",
    [SG_BACKOFF] = "backoff", [SG_READ] = "read"
};
_Static_assert(ARRAY_SIZE(seg_state_names) == SG_NSTATES, "a name for each segment state");

static void drive(struct segment *sg);

/* The only write of a segment's state. */
static void set_state(struct segment *sg, enum seg_state to)
{
    if (sg->state != to)
        log_debug("segment %d: %s -> %s", sg->no, seg_state_names[sg->state], seg_state_names[to]);
    sg->state = to;
}

bool replay_scan_complete(const struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++)
        if (!rp->scan.segs[i].done)
            return false;
    return rp->nrr == 0;
}

static void page_free(struct page *pg)
{
    for (size_t i = 0; i < pg->n; i++)
        json_decref(pg->keys[i]);
    free(pg->keys);
    json_decref(pg->lek);
    free(pg);
}

/* The finished prefix of the segment's pages moves the saved position. */
void replay_page_item_done(struct page *pg)
{
    struct segment *sg = pg->seg;
    struct replay *rp = sg->rp;

    pg->pending--;
    while (sg->head && sg->head->pending == 0) {
        struct page *h = sg->head;

        sg->head = h->next;
        if (!sg->head)
            sg->tail = NULL;
        json_decref(sg->saved);
        sg->saved = json_incref(h->lek);
        sg->items += h->n;
        if (!h->lek)
            sg->done = true;
        rp->prog.dirty = true;
        page_free(h);
    }
}

static void seg_backoff(struct segment *sg);

static void on_seg_timer(uv_timer_t *t)
{
    struct segment *sg = container_of(t, struct segment, timer);

    set_state(sg, SG_SCAN);
    drive(sg);
}

static void seg_backoff(struct segment *sg)
{
    set_state(sg, SG_BACKOFF);
    scan_backoff(&sg->timer, on_seg_timer, &sg->failures, RETRY_BASE_MS, RETRY_MAX_MS);
}

/* One scanned (or read again) item into the sink, as item idx of pg. */
void replay_scan_submit_item(struct replay *rp, struct page *pg, size_t idx, json_t *item,
                             time_t at)
{
    enum transform_result tr;

    replay_doc_reset(rp);
    tr = transform_item(&rp->tf, item, &rp->d, &rp->err);
    rp->d.version = replay_backfill_version(rp, at);
    /* Never sent once the engine may have forgotten a newer delete. */
    rp->d.send_by = uv_now(rp->app.loop) + (uint64_t)rp->o->max_age_ms;
    if (tr == TR_DOC) {
        if (sink_submit(rp->app.sink, &rp->d, pg, idx) == 0)
            return;
    } else {
        rp->errors++;
        log_warn("item cannot be made into a document: %s", rp->err.ptr ? rp->err.ptr : "?");
        if (sink_dead_letter(rp->app.sink, &rp->d, item, "item_conversion_error",
                             rp->err.ptr ? rp->err.ptr : "malformed item", pg, idx) == 0)
            return;
    }
    /* Closing: the item stays unfinished, so its page is never saved as done. */
}

static void on_scan(const struct ddb_reply *rep, void *arg)
{
    struct segment *sg = arg;
    struct replay *rp = sg->rp;
    json_t *items, *lek, *item;
    struct page *pg;
    size_t i;
    time_t at = time(NULL);
    bool more;

    sg->call = NULL;
    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls != DDB_OK) {
        double seen = replay_mono_s(rp) > 1 ? (double)rp->read / replay_mono_s(rp) : 100;
        char why[768];
        int code;

        bucket_give(&rp->scan.bucket, sg->limit); /* nothing was read */
        code = scan_failed(rep, &rp->scan.bucket, seen, uv_now(rp->app.loop), &sg->failing_since,
                           rp->o->give_up_ms, rp->o->table, sg->no, why, sizeof(why));
        if (code) {
            replay_stop(rp, code, "%s", why);
            return;
        }
        rp->errors++;
        seg_backoff(sg);
        return;
    }
    sg->failures = 0;
    sg->failing_since = 0;
    items = json_object_get(rep->json, "Items");
    lek = json_object_get(rep->json, "LastEvaluatedKey");
    bucket_give(&rp->scan.bucket, sg->limit - (int)json_array_size(items));
    bucket_page(&rp->scan.bucket);
    pg = calloc(1, sizeof(*pg));
    if (pg)
        pg->keys = calloc(json_array_size(items) + 1, sizeof(*pg->keys));
    if (!pg || !pg->keys) {
        free(pg);
        rp->errors++;
        seg_backoff(sg);
        return;
    }
    pg->seg = sg;
    pg->lek = json_is_object(lek) ? json_incref(lek) : NULL;
    pg->n = json_array_size(items);
    pg->pending = pg->n + 1; /* held while its items are submitted */
    more = pg->lek != NULL;
    if (sg->tail)
        sg->tail->next = pg;
    else
        sg->head = pg;
    sg->tail = pg;
    json_decref(sg->start);
    sg->start = json_incref(pg->lek);
    rp->read += pg->n;
    json_array_foreach(items, i, item) {
        pg->keys[i] = source_key_of(&rp->keys, item);
        replay_scan_submit_item(rp, pg, i, item, at);
    }
    /* Let go: an empty page, or one whose items all finished already, is
     * done (and freed) here — pg must not be used after this. */
    replay_page_item_done(pg);
    set_state(sg, more ? SG_SCAN : SG_READ);
    drive(sg);
    replay_maybe_complete(rp);
}

static int start_scan(struct segment *sg)
{
    struct replay *rp = sg->rp;
    json_t *body;
    int limit;

    if (sink_full(rp->app.sink)) {
        set_state(sg, SG_WAIT); /* on_sink_resume */
        return 0;
    }
    if ((limit = scan_take(&rp->scan.bucket, &sg->timer, on_seg_timer, rp->scan.nsegs,
                           PAGE_MAX_LIMIT)) < 0) {
        set_state(sg, SG_WAIT); /* on its timer */
        return 0;
    }
    sg->limit = limit;
    body = scan_request(rp->o->table, sg->no, rp->scan.total, limit, sg->start, rp->o->consistent);
    sg->call = body ? ddb_call(rp->app.aws, AWS_DYNAMODB, "Scan", body, on_scan, sg, NULL) : NULL;
    if (!sg->call) {
        bucket_give(&rp->scan.bucket, limit);
        seg_backoff(sg);
        return 0;
    }
    set_state(sg, SG_INFLIGHT);
    return 0;
}

static void drive(struct segment *sg)
{
    if (sg->rp->stopping)
        return;
    switch (sg->state) {
    case SG_SCAN:
        start_scan(sg);
        return;
    case SG_WAIT:
    case SG_INFLIGHT:
    case SG_BACKOFF:
    case SG_READ:
    default:
        return;
    }
}

void replay_scan_begin(struct replay *rp)
{
    int n = 0;

    if (rp->scan.nsegs == 0)
        n = 0;
    for (int i = 0; i < rp->scan.nsegs; i++)
        n += !rp->scan.segs[i].done;
    if (rp->scan.nsegs < rp->scan.total)
        log_info("replay %s: Scan of segments %d-%d of %d%s, %s%s; about %" PRId64 " items in "
                 "the table", rp->o->table, rp->scan.first, rp->scan.first + rp->scan.nsegs - 1,
                 rp->scan.total, rp->done_before ? " (continuing)" : "",
                 rp->o->rate > 0 ? "rate capped" : "no rate cap",
                 rp->o->consistent ? ", consistent reads" : "", rp->scan.item_count);
    else
        log_info("replay %s: Scan in %d segment(s)%s, %s%s; about %" PRId64 " items",
                 rp->o->table, rp->scan.nsegs, rp->done_before ? " (continuing)" : "",
                 rp->o->rate > 0 ? "rate capped" : "no rate cap",
                 rp->o->consistent ? ", consistent reads" : "", rp->scan.item_count);
    if (n == 0) {
        log_info("replay %s: the saved Scan had already finished (--restart to run it again)",
                 rp->o->table);
        replay_maybe_complete(rp);
        return;
    }
    rp->scan.bucket.at = uv_now(rp->app.loop);
    for (int i = 0; i < rp->scan.nsegs; i++) {
        struct segment *sg = &rp->scan.segs[i];

        if (sg->done)
            continue;
        set_state(sg, SG_SCAN);
        drive(sg);
    }
}

/* The sink has room again: the segments waiting for it go on. */
void replay_scan_resume(struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++)
        if (rp->scan.segs[i].state == SG_WAIT &&
            !uv_is_active((uv_handle_t *)&rp->scan.segs[i].timer)) {
            set_state(&rp->scan.segs[i], SG_SCAN);
            drive(&rp->scan.segs[i]);
        }
}

/* Stopping: no more requests, and the ones in flight are canceled. */
void replay_scan_stop(struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++) {
        uv_timer_stop(&rp->scan.segs[i].timer);
        if (rp->scan.segs[i].call)
            ddb_cancel(rp->scan.segs[i].call);
    }
}

void replay_scan_free(struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++) {
        struct segment *sg = &rp->scan.segs[i];

        while (sg->head) {
            struct page *n = sg->head->next;

            page_free(sg->head);
            sg->head = n;
        }
        json_decref(sg->start);
        json_decref(sg->saved);
    }
    free(rp->scan.segs);
}
