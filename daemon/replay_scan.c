/* replay_scan — the Scan of `ddb2es replay --scan` on the shared segment
 * machine (aws/scan.h), with its pages kept in order per segment so the
 * saved position (the LastEvaluatedKey of the last page whose items all
 * finished) never passes an unfinished item.  A segment waits while the
 * sink is full (replay_scan_resume).
 */
#include "daemon/replay_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/util.h"
#include "indexer/sink.h"

#define PAGE_MAX_LIMIT 1000         /* Scan Limit when --rate caps it */

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

/* A page read: its items into the sink, the page kept until they finish. */
static int on_page(struct scan_seg *ss, json_t *items, json_t *lek)
{
    struct segment *sg = container_of(ss, struct segment, ss);
    struct replay *rp = sg->rp;
    json_t *item;
    struct page *pg;
    size_t i;
    time_t at = time(NULL);

    pg = calloc(1, sizeof(*pg));
    if (pg)
        pg->keys = calloc(json_array_size(items) + 1, sizeof(*pg->keys));
    if (!pg || !pg->keys) {
        free(pg);
        return SCAN_AGAIN;
    }
    pg->seg = sg;
    pg->lek = json_incref(lek);
    pg->n = json_array_size(items);
    pg->pending = pg->n + 1; /* held while its items are submitted */
    if (sg->tail)
        sg->tail->next = pg;
    else
        sg->head = pg;
    sg->tail = pg;
    rp->read += pg->n;
    json_array_foreach(items, i, item) {
        pg->keys[i] = source_key_of(&rp->keys, item);
        replay_scan_submit_item(rp, pg, i, item, at);
    }
    /* Let go: an empty page, or one whose items all finished already, is
     * done (and freed) here — pg must not be used after this. */
    replay_page_item_done(pg);
    return rp->stopping ? -ECANCELED : 0;
}

static bool sink_is_full(struct scan *s)
{
    struct replay *rp = s->owner;

    return sink_full(rp->app.sink);
}

static void after_page(struct scan *s)
{
    replay_maybe_complete(s->owner);
}

static void scan_fail(struct scan *s, int code, const char *why)
{
    replay_stop(s->owner, code, "%s", why);
}

static const struct scan_ops scan_ops = {
    .busy = sink_is_full, .page = on_page, .after = after_page, .fail = scan_fail
};

/* Sets up the Scan of rp->scan.nsegs segments (segs allocated). */
void replay_scan_init(struct replay *rp)
{
    struct scan *s = &rp->scan.s;

    s->ops = &scan_ops;
    s->owner = rp;
    s->table = rp->o->table;
    s->nshares = rp->scan.nsegs;
    s->consistent = rp->o->consistent;
    s->page_limit = 0;
    s->page_max = PAGE_MAX_LIMIT;
    s->retry_base_ms = RETRY_BASE_MS;
    s->retry_max_ms = RETRY_MAX_MS;
    s->give_up_ms = rp->o->give_up_ms;
    bucket_init(&s->bucket, rp->o->rate, 0);
    for (int i = 0; i < rp->scan.nsegs; i++) {
        rp->scan.segs[i].rp = rp;
        scan_seg_init(&rp->scan.segs[i].ss, s, rp->app.loop, rp->scan.first + i);
    }
}

void replay_scan_begin(struct replay *rp)
{
    int n = 0;

    for (int i = 0; i < rp->scan.nsegs; i++)
        n += !rp->scan.segs[i].done;
    if (rp->scan.nsegs < rp->scan.s.total)
        log_info("replay %s: Scan of segments %d-%d of %d%s, %s%s; about %" PRId64 " items in "
                 "the table", rp->o->table, rp->scan.first, rp->scan.first + rp->scan.nsegs - 1,
                 rp->scan.s.total, rp->done_before ? " (continuing)" : "",
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
    rp->scan.s.aws = rp->app.aws; /* open by now */
    rp->scan.s.bucket.at = rp->scan.s.start_ms = uv_now(rp->app.loop);
    for (int i = 0; i < rp->scan.nsegs; i++) {
        struct segment *sg = &rp->scan.segs[i];

        if (sg->done) {
            scan_seg_set(&sg->ss, SCAN_DONE);
            continue;
        }
        scan_seg_drive(&sg->ss);
    }
}

/* The sink has room again: the segments waiting for it go on. */
void replay_scan_resume(struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++)
        scan_seg_resume(&rp->scan.segs[i].ss);
}

/* Stopping: no more requests, and the ones in flight are canceled. */
void replay_scan_stop(struct replay *rp)
{
    for (int i = 0; i < rp->scan.nsegs; i++)
        scan_seg_stop(&rp->scan.segs[i].ss);
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
        scan_seg_close(&sg->ss);
        json_decref(sg->saved);
    }
    free(rp->scan.segs);
}
