/* verify_scan — the Scan of `ddb2es verify` on the shared segment machine
 * (aws/scan.h): each page's documents are fetched from the index with one
 * _mget and compared while the segment holds the page.  A segment waits
 * while too many candidates wait (verify_scan_resume).
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"

#define PAGE_MAX 500 /* items per Scan page: the ids of one _mget */

bool verify_scan_done(const struct verify *v)
{
    if (!v->segs || !v->keys.hash_key)
        return false;
    for (int i = 0; i < v->nsegs; i++)
        if (v->segs[i].ss.state != SCAN_DONE)
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
    scan_seg_release(&sg->ss);
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

/* A page read: its documents made, then fetched from the index (the page
 * held until the _mget's reply). */
static int on_page(struct scan_seg *ss, json_t *items, json_t *lek)
{
    struct vseg *sg = container_of(ss, struct vseg, ss);
    struct verify *v = sg->v;
    json_t *item;
    size_t i;

    (void)lek;
    page_clear(&sg->pg);
    if (json_array_size(items) &&
        !(sg->pg.it = calloc(json_array_size(items), sizeof(*sg->pg.it)))) {
        verify_stop(v, 70, "out of memory");
        return -ENOMEM;
    }
    json_array_foreach(items, i, item) {
        v->items++;
        if (add_item(sg, item) < 0) {
            verify_stop(v, 70, "out of memory");
            return -ENOMEM;
        }
    }
    if (!sg->pg.n)
        return 0;
    if (send_mget(sg) < 0) {
        verify_stop(v, 70, "out of memory");
        return -ENOMEM;
    }
    return SCAN_HOLD;
}

static bool is_busy(struct scan *s)
{
    return verify_busy(s->owner);
}

static void after_page(struct scan *s)
{
    verify_maybe_complete(s->owner);
}

static void scan_fail(struct scan *s, int code, const char *why)
{
    verify_stop(s->owner, code, "%s", why);
}

static const struct scan_ops scan_ops = {
    .busy = is_busy, .page = on_page, .after = after_page, .fail = scan_fail
};

/* Sets up the Scan of v->nsegs segments (segs allocated). */
void verify_scan_init(struct verify *v)
{
    struct scan *s = &v->scan;

    s->ops = &scan_ops;
    s->owner = v;
    s->table = v->o->table;
    s->total = s->nshares = v->nsegs;
    s->page_limit = s->page_max = PAGE_MAX; /* one _mget per page */
    s->retry_base_ms = VERIFY_RETRY_BASE_MS;
    s->retry_max_ms = VERIFY_RETRY_MAX_MS;
    s->give_up_ms = VERIFY_GIVE_UP_MS;
    bucket_init(&s->bucket, v->o->rate, 0);
    for (int i = 0; i < v->nsegs; i++) {
        v->segs[i].v = v;
        buf_init(&v->segs[i].pg.canon, BUF_NOMAX);
        buf_init(&v->segs[i].pg.raw, BUF_NOMAX);
        scan_seg_init(&v->segs[i].ss, s, v->app.loop, i);
    }
}

void verify_scan_begin(struct verify *v)
{
    log_info("verify %s: Scan in %d segment(s); about %" PRId64 " items", v->o->table, v->nsegs,
             v->item_count);
    v->scan.aws = v->app.aws; /* open by now */
    v->scan.bucket.at = v->scan.start_ms = uv_now(v->app.loop);
    for (int i = 0; i < v->nsegs; i++)
        scan_seg_drive(&v->segs[i].ss);
}

void verify_scan_resume(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++)
        scan_seg_resume(&v->segs[i].ss);
}

void verify_scan_stop(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++)
        scan_seg_stop(&v->segs[i].ss);
}

void verify_scan_free(struct verify *v)
{
    for (int i = 0; v->segs && i < v->nsegs; i++) {
        page_clear(&v->segs[i].pg);
        buf_close(&v->segs[i].pg.canon);
        buf_close(&v->segs[i].pg.raw);
        scan_seg_close(&v->segs[i].ss);
    }
    free(v->segs);
    v->segs = NULL;
}
