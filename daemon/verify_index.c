/* verify_index — the index's ids held against the table: once the Scan has
 * made every id it can, a scroll lists the index's documents (ids and
 * versions, no source) and each id the Scan did not make becomes a
 * candidate read from the table (verify_confirm.c).  Such an id belongs to
 * an item written after the Scan passed it (the daemon indexed it: read
 * again, it is equal and dropped) or to no item at all (extra).
 *
 * The scroll is a point-in-time view (Elasticsearch reference "Paginate
 * search results", scroll: "changes made to documents after the initial
 * search request don't affect the results"); sort ["_doc"] is the cheapest
 * order.  It is cleared at the end (DELETE /_search/scroll).  While too many
 * candidates wait, the next page waits too: a scroll kept alive SCROLL_KEEP
 * between pages.
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "base/log.h"

#define SCROLL_KEEP "5m"
#define SCROLL_SIZE 1000

static void next_page(struct verify *v);

static void on_cleared(struct verify *v, void *arg, long status, const char *body, size_t len)
{
    if (!v->stopping && status != 200 && status != 404)
        log_warn("DELETE /_search/scroll: HTTP %ld %.*s", status, (int)(len < 200 ? len : 200),
                 body ? body : "");
    verify_maybe_complete(v);
}

static void clear_scroll(struct verify *v)
{
    struct buf b;

    if (!v->scroll_id)
        return;
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"scroll_id\":[");
    jsonx_put_string(&b, v->scroll_id, strlen(v->scroll_id));
    buf_puts(&b, "]}");
    if (verify_engine(v, "DELETE", "/_search/scroll", b.ptr, b.len, on_cleared, NULL) < 0)
        log_warn("the scroll was not cleared (out of memory): it ends by itself");
    buf_close(&b);
    free(v->scroll_id);
    v->scroll_id = NULL;
}

/* The key of an id the Scan did not make: read back from the _id as
 * `replay --format dlq` reads it (source_keys.c); NULL when it cannot be
 * (a digest, a hmac'd key): the candidate then takes it from the source. */
static json_t *key_of_id(struct verify *v, const char *id, size_t len)
{
    json_t *meta = json_pack("{s:s%}", "id", id, len), *key;
    bool digest_like;

    key = meta ? source_dlq_key(&v->keys, meta, NULL, 0, &digest_like) : NULL;
    json_decref(meta);
    if (key && digest_like) {
        json_decref(key); /* 64 hex digits: maybe the digest of an id version 1 */
        key = NULL;
    }
    return key;
}

static void on_page(struct verify *v, void *arg, long status, const char *body, size_t len)
{
    json_t *root, *hits, *h, *sid;
    json_error_t jerr;
    size_t i;

    if (v->stopping || !body)
        return;
    if (status != 200) {
        if (status == 404 && memmem(body, len, "search_context_missing_exception", 32))
            verify_stop(v, 69, "the scroll over %s expired (search_context_missing_exception); "
                        "run verify again", v->index);
        else
            verify_engine_refused(v, "scroll", status, body, len);
        return;
    }
    /* No _source asked: nothing here holds a number past a long. */
    root = jsonx_loadb(body, len, 0, &jerr);
    sid = json_object_get(root, "_scroll_id");
    hits = json_object_get(json_object_get(root, "hits"), "hits");
    if (!json_is_string(sid) || !json_is_array(hits)) {
        json_decref(root);
        verify_stop(v, 69, "scroll over %s: not a search reply (%.*s)", v->index,
                    (int)(len < 200 ? len : 200), body);
        return;
    }
    free(v->scroll_id);
    v->scroll_id = strdup(json_string_value(sid));
    json_array_foreach(hits, i, h) {
        json_t *id = json_object_get(h, "_id"), *ver = json_object_get(h, "_version");
        const char *s = json_string_value(id);
        size_t n = json_string_length(id);

        if (!s || n > DOC_ID_MAX)
            continue;
        v->documents++;
        if (verify_idset_has(&v->scanned, verify_hash(s, n)))
            continue;
        if (verify_cand_add(v, s, n, key_of_id(v, s, n), CS_FIRST, VK_EXTRA, 0,
                            json_is_integer(ver) ? (int64_t)json_integer_value(ver) : 0) < 0) {
            json_decref(root);
            verify_stop(v, 70, "out of memory");
            return;
        }
    }
    if (json_array_size(hits) == 0) {
        json_decref(root);
        v->scroll_done = true;
        log_info("verify %s: %" PRIu64 " documents in %s", v->o->table, v->documents, v->index);
        clear_scroll(v);
        verify_maybe_complete(v);
        return;
    }
    json_decref(root);
    next_page(v);
}

static void next_page(struct verify *v)
{
    struct buf b;
    int rc;

    if (v->stopping)
        return;
    if (verify_busy(v)) {
        v->scroll_waiting = true; /* verify_index_resume */
        return;
    }
    v->scroll_waiting = false;
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"scroll\":\"" SCROLL_KEEP "\",\"scroll_id\":");
    jsonx_put_string(&b, v->scroll_id, strlen(v->scroll_id));
    rc = buf_putc(&b, '}');
    if (rc == 0)
        rc = verify_engine(v, "POST", "/_search/scroll", b.ptr, b.len, on_page, NULL);
    buf_close(&b);
    if (rc < 0)
        verify_stop(v, 70, "out of memory");
}

void verify_index_begin(struct verify *v)
{
    static const char body[] = "{\"size\":" "1000" ",\"sort\":[\"_doc\"],\"version\":true,"
                               "\"_source\":false}";
    struct buf path;
    int rc;

    _Static_assert(SCROLL_SIZE == 1000, "the body's size");
    v->scroll_started = true;
    log_info("verify %s: %" PRIu64 " items read; listing the ids of %s", v->o->table, v->items,
             v->index);
    buf_init(&path, BUF_NOMAX);
    rc = buf_printf(&path, "%s/_search?scroll=" SCROLL_KEEP, v->index_path);
    if (rc == 0)
        rc = verify_engine(v, "POST", path.ptr, body, sizeof(body) - 1, on_page, NULL);
    buf_close(&path);
    if (rc < 0)
        verify_stop(v, 70, "out of memory");
}

void verify_index_resume(struct verify *v)
{
    if (v->scroll_waiting)
        next_page(v);
}

void verify_index_stop(struct verify *v)
{
    (void)v; /* the calls in flight end with the sink; the scroll ends with its keep-alive */
}
