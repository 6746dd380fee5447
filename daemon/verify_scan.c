/* verify_scan — the Scan of `ddb2es verify`: one state machine per segment
 * (one request in flight each), a token bucket shared by the segments for
 * --rate (lowered while DynamoDB throttles, as `replay --scan` does), and
 * each page's documents fetched from the index with one _mget and compared.
 *
 * A segment is in one state:
 *   scan       a Scan request is to be sent (drive sends it)
 *   wait       the bucket is empty (its timer) or too many candidates wait
 *              (verify_scan_resume)
 *   in-flight  its Scan request is out
 *   mget       its page's _mget is out
 *   backoff    a Scan failed: the timer sends the next
 *   done       its last page is checked
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aws/scan.h"
#include "base/backoff.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"

#define PAGE_MAX 500 /* items per Scan page: the ids of one _mget */

static const char *const state_names[] = {
    [VS_SCAN] = "scan", [VS_WAIT] = "wait", [VS_INFLIGHT] = "in-flight", [VS_MGET] = "mget",
    [VS_BACKOFF] = "backoff", [VS_DONE] = "done"
};
_Static_assert(ARRAY_SIZE(state_names) == VS_NSTATES, "a name for each segment state");

static void drive(struct vseg *sg);

static void set_state(struct vseg *sg, enum vseg_state to)
{
    if (sg->state != to)
        log_debug("segment %d: %s -> %s", sg->no, state_names[sg->state], state_names[to]);
    sg->state = to;
}

bool verify_scan_done(const struct verify *v)
{
    if (!v->segs || !v->keys.hash_key)
        return false;
    for (int i = 0; i < v->nsegs; i++)
        if (v->segs[i].state != VS_DONE)
            return false;
    return true;
}

static void page_clear(struct vpage *pg)
{
    for (size_t i = 0; i < pg->n; i++)
        json_decref(pg->it[i].key);
    free(pg->it);
    pg->it = NULL;
    pg->n = 0;
    buf_reset(&pg->canon);
    buf_reset(&pg->raw);
}

static void on_seg_timer(uv_timer_t *t)
{
    struct vseg *sg = container_of(t, struct vseg, timer);

    set_state(sg, VS_SCAN);
    drive(sg);
}

static void seg_backoff(struct vseg *sg)
{
    set_state(sg, VS_BACKOFF);
    scan_backoff(&sg->timer, on_seg_timer, &sg->failures, VERIFY_RETRY_BASE_MS,
                 VERIFY_RETRY_MAX_MS);
}

/* ---- the page's documents against the index --------------------------------- */

struct page_walk {
    struct vseg *sg;
    size_t next;
    int err;
};

static struct vp_item *find_item(struct page_walk *w, const struct verify_got *g)
{
    struct vpage *pg = &w->sg->pg;

    /* The engines answer in the order asked (MultiGetResponse). */
    if (w->next < pg->n && pg->it[w->next].id_len == g->id_len &&
        memcmp(pg->it[w->next].id, g->id, g->id_len) == 0)
        return &pg->it[w->next++];
    for (size_t i = 0; i < pg->n; i++)
        if (!pg->it[i].done && pg->it[i].id_len == g->id_len &&
            memcmp(pg->it[i].id, g->id, g->id_len) == 0)
            return &pg->it[i];
    return NULL;
}

static int on_got(void *arg, const struct verify_got *g)
{
    struct page_walk *w = arg;
    struct vseg *sg = w->sg;
    struct verify *v = sg->v;
    struct vp_item *it = find_item(w, g);
    enum vkind kind;

    if (g->error) {
        verify_engine_refused(v, "_mget", 200, g->error, g->error_len);
        return -ECANCELED;
    }
    if (!it || it->done)
        return 0;
    it->done = true;
    v->checked++;
    if (g->found && g->src &&
        (verify_json_same(sg->pg.canon.ptr + it->off, it->len, g->src, g->src_len) ||
         verify_shaped_same(v, sg->pg.raw.ptr + it->raw_off, it->raw_len, g->src, g->src_len)))
        return 0;
    kind = g->found ? VK_STALE : VK_MISSING;
    if (verify_cand_add(v, it->id, it->id_len, it->key, CS_SETTLE, kind, it->hash,
                        g->found ? g->version : 0) < 0) {
        verify_stop(v, 70, "out of memory");
        return -ENOMEM;
    }
    it->key = NULL; /* the candidate owns it */
    return 0;
}

static void on_mget(struct verify *v, void *arg, long status, const char *body, size_t len)
{
    struct vseg *sg = arg;
    struct page_walk w = { sg, 0, 0 };
    int rc;

    if (v->stopping || !body)
        return;
    if (status != 200) {
        verify_engine_refused(v, "_mget", status, body, len);
        return;
    }
    rc = verify_parse_mget(body, len, on_got, &w);
    if (v->stopping)
        return;
    if (rc < 0) {
        verify_stop(v, 69, "_mget on %s: a reply that is not an _mget reply (%.*s)", v->index,
                    (int)(len < 200 ? len : 200), body);
        return;
    }
    for (size_t i = 0; i < sg->pg.n; i++)
        if (!sg->pg.it[i].done) {
            verify_stop(v, 69, "_mget on %s: the reply leaves out ids asked for", v->index);
            return;
        }
    page_clear(&sg->pg);
    set_state(sg, sg->more ? VS_SCAN : VS_DONE);
    drive(sg);
    verify_maybe_complete(v);
}

static int send_mget(struct vseg *sg)
{
    struct verify *v = sg->v;
    struct buf body, path;
    int rc = 0;

    buf_init(&body, BUF_NOMAX);
    buf_init(&path, BUF_NOMAX);
    rc = buf_puts(&body, "{\"ids\":[");
    for (size_t i = 0; rc == 0 && i < sg->pg.n; i++) {
        if (i)
            rc = buf_putc(&body, ',');
        if (rc == 0)
            rc = jsonx_put_string(&body, sg->pg.it[i].id, sg->pg.it[i].id_len);
    }
    if (rc == 0)
        rc = buf_puts(&body, "]}");
    if (rc == 0)
        rc = buf_printf(&path, "%s/_mget", v->index_path);
    if (rc == 0)
        rc = verify_engine(v, "POST", path.ptr, body.ptr, body.len, on_mget, sg);
    buf_close(&body);
    buf_close(&path);
    return rc;
}

/* ---- Scan ------------------------------------------------------------------ */

static int add_item(struct vseg *sg, json_t *item)
{
    struct verify *v = sg->v;
    struct vp_item *it = &sg->pg.it[sg->pg.n];
    int rc;

    if (verify_make_doc(v, item) != TR_DOC)
        return 0;
    it->off = sg->pg.canon.len;
    if ((rc = verify_doc_canon(v, &sg->pg.canon, &it->hash)) < 0) {
        /* The transform wrote JSON: only memory fails here. */
        return rc;
    }
    it->len = sg->pg.canon.len - it->off;
    it->raw_off = sg->pg.raw.len;
    if (v->t->type_conflicts == CONFIG_CONFLICTS_SIDE &&
        (rc = buf_append(&sg->pg.raw, v->d.source.ptr, v->d.source.len)) < 0)
        return rc;
    it->raw_len = sg->pg.raw.len - it->raw_off;
    memcpy(it->id, v->d.id, v->d.id_len);
    it->id[v->d.id_len] = '\0';
    it->id_len = v->d.id_len;
    it->key = source_key_of(&v->keys, item);
    it->done = false;
    if ((rc = verify_idset_add(&v->scanned, verify_hash(it->id, it->id_len))) < 0)
        return rc;
    sg->pg.n++;
    return 0;
}

static void on_scan(const struct ddb_reply *rep, void *arg)
{
    struct vseg *sg = arg;
    struct verify *v = sg->v;
    json_t *items, *lek, *item;
    size_t i;

    sg->call = NULL;
    if (rep->err == -ECANCELED || v->stopping)
        return;
    if (rep->cls != DDB_OK) {
        uint64_t now = uv_now(v->app.loop);
        double el = (double)(now - v->start_ms) / 1000.0;
        char why[768];
        int code;

        bucket_give(&v->bucket, sg->limit); /* nothing was read */
        code = scan_failed(rep, &v->bucket, el > 1 ? (double)v->items / el : 100, now,
                           &sg->failing_since, VERIFY_GIVE_UP_MS, v->o->table, sg->no, why,
                           sizeof(why));
        if (code) {
            verify_stop(v, code, "%s", why);
            return;
        }
        seg_backoff(sg);
        return;
    }
    sg->failures = 0;
    sg->failing_since = 0;
    items = json_object_get(rep->json, "Items");
    lek = json_object_get(rep->json, "LastEvaluatedKey");
    bucket_give(&v->bucket, sg->limit - (int)json_array_size(items));
    bucket_page(&v->bucket);
    json_decref(sg->start);
    sg->start = json_is_object(lek) ? json_incref(lek) : NULL;
    sg->more = sg->start != NULL;
    page_clear(&sg->pg);
    if (json_array_size(items) &&
        !(sg->pg.it = calloc(json_array_size(items), sizeof(*sg->pg.it)))) {
        verify_stop(v, 70, "out of memory");
        return;
    }
    json_array_foreach(items, i, item) {
        v->items++;
        if (add_item(sg, item) < 0) {
            verify_stop(v, 70, "out of memory");
            return;
        }
    }
    if (sg->pg.n) {
        if (send_mget(sg) < 0) {
            verify_stop(v, 70, "out of memory");
            return;
        }
        set_state(sg, VS_MGET);
        return;
    }
    set_state(sg, sg->more ? VS_SCAN : VS_DONE);
    drive(sg);
    verify_maybe_complete(v);
}

static void start_scan(struct vseg *sg)
{
    struct verify *v = sg->v;
    json_t *body;
    int limit;

    if (verify_busy(v)) {
        set_state(sg, VS_WAIT); /* verify_scan_resume */
        return;
    }
    if ((limit = scan_take(&v->bucket, &sg->timer, on_seg_timer, v->nsegs, PAGE_MAX)) < 0) {
        set_state(sg, VS_WAIT); /* on its timer */
        return;
    }
    if (limit == 0)
        limit = PAGE_MAX; /* no rate: pages of at most PAGE_MAX, one _mget each */
    sg->limit = limit;
    body = scan_request(v->o->table, sg->no, v->nsegs, limit, sg->start, false);
    sg->call = body ? ddb_call(v->app.aws, AWS_DYNAMODB, "Scan", body, on_scan, sg, NULL) : NULL;
    if (!sg->call) {
        bucket_give(&v->bucket, limit);
        seg_backoff(sg);
        return;
    }
    set_state(sg, VS_INFLIGHT);
}

static void drive(struct vseg *sg)
{
    if (sg->v->stopping)
        return;
    if (sg->state == VS_SCAN)
        start_scan(sg);
}

void verify_scan_begin(struct verify *v)
{
    log_info("verify %s: Scan in %d segment(s); about %" PRId64 " items", v->o->table, v->nsegs,
             v->item_count);
    v->bucket.at = uv_now(v->app.loop);
    for (int i = 0; i < v->nsegs; i++) {
        set_state(&v->segs[i], VS_SCAN);
        drive(&v->segs[i]);
    }
}

void verify_scan_resume(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++)
        if (v->segs[i].state == VS_WAIT && !uv_is_active((uv_handle_t *)&v->segs[i].timer)) {
            set_state(&v->segs[i], VS_SCAN);
            drive(&v->segs[i]);
        }
}

void verify_scan_stop(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++) {
        uv_timer_stop(&v->segs[i].timer);
        if (v->segs[i].call)
            ddb_cancel(v->segs[i].call);
    }
}

void verify_scan_free(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++) {
        page_clear(&v->segs[i].pg);
        buf_close(&v->segs[i].pg.canon);
        buf_close(&v->segs[i].pg.raw);
        json_decref(v->segs[i].start);
    }
    free(v->segs);
    v->segs = NULL;
}
