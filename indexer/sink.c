/* sink — batching, bulk requests, per-item outcomes, retries and the
 * dead-letter file.  See sink.h for the contract; sink_int.h names the parts.
 * This file holds the public API: dead letters, stats, the graceful close
 * and setup (sink_submit is in sink_batch.c, where the action is written).
 */
#include "indexer/sink.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/http.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "indexer/bulk.h"
#include "indexer/dlq.h"
#include "indexer/sink_int.h"

#define DEFAULT_BACKOFF_BASE_MS 100
#define DEFAULT_MAX_BACKOFF_MS 30000

/* ---- dead letters ---- */

int sink_dead_letter(struct sink *s, const struct doc *d, json_t *raw, const char *type,
                     const char *reason, void *owner, uint64_t ticket)
{
    struct item *it;
    size_t len = 0;
    char *text;

    if (s->closing)
        return -ESHUTDOWN;
    it = sink_item_new(s, d, owner, ticket);
    /* jsonx: the input as it came, NUL keys and lone surrogates included. */
    text = raw ? jsonx_dumps(raw, &len) : NULL;
    if (!it || (raw && !text)) {
        sink_item_free(it);
        free(text);
        return -ENOMEM;
    }
    /* The whole input is the "document" of the entry; d keeps its own source. */
    sink_count_in(s, it, len);
    sink_to_dlq(s, it, text, it->len, 0, type, reason);
    free(text);
    return 0;
}

int sink_dead_letter_raw(struct sink *s, const struct doc *d, const char *text, size_t len,
                         const char *type, const char *reason, void *owner, uint64_t ticket)
{
    struct item *it;
    struct buf doc;
    int rc = 0;

    if (s->closing)
        return -ESHUTDOWN;
    buf_init(&doc, BUF_NOMAX);
    rc = dlq_put_text(&doc, text, len);
    it = rc == 0 ? sink_item_new(s, d, owner, ticket) : NULL;
    if (!it) {
        buf_close(&doc);
        return -ENOMEM;
    }
    sink_count_in(s, it, doc.len);
    sink_to_dlq(s, it, doc.ptr, doc.len, 0, type, reason);
    buf_close(&doc);
    return 0;
}

bool sink_full(const struct sink *s)
{
    return s->full;
}

uint64_t sink_busy_at(const struct sink *s)
{
    return sink_busy(s) ? uv_now(s->loop) : s->busy_at;
}

void sink_flush(struct sink *s)
{
    sink_close_open(s);
    sink_dispatch(s);
}

const struct sink_stats *sink_stats(const struct sink *s)
{
    struct sink_stats *st = (struct sink_stats *)&s->st;

    st->queued_bytes = s->bytes_total - s->bytes_inflight;
    st->inflight_bytes = s->bytes_inflight;
    st->queued_docs = s->ndocs;
    st->inflight_requests = s->inflight.n;
    st->blocked_indexes = s->nblocks;
    st->tombstones = fpmap_count(&s->tombs);
    st->block_index = s->nblocks ? s->blocks[0].index ? s->blocks[0].index : "" : NULL;
    st->block_reason = s->nblocks ? s->blocks[0].reason : NULL;
    st->block_age_ms = s->nblocks ? uv_now(s->loop) - s->blocks[0].since : 0;
    return st;
}

/* ---- holding, the engine's parameters ---- */

void sink_hold(struct sink *s)
{
    s->held = true;
}

void sink_release(struct sink *s)
{
    if (!s->held)
        return;
    s->held = false;
    sink_dispatch(s);
}

bool sink_held(const struct sink *s)
{
    return s->held;
}

void sink_on_unreachable(struct sink *s, void (*cb)(void *arg), void *arg)
{
    s->unreachable = cb;
    s->unreachable_arg = arg;
}

int sink_set_source_on_error(struct sink *s, bool include)
{
    struct buf q;
    char *url = NULL;

    buf_init(&q, BUF_NOMAX);
    if (buf_printf(&q, "filter_path=%s%s", bulk_filter_path(),
                   include ? "" : "&include_source_on_error=false") == 0)
        url = sink_url_join(s->url, "/_bulk", q.ptr);
    buf_close(&q);
    if (!url)
        return -ENOMEM;
    free(s->bulk_url); /* requests made from it hold their own copy */
    s->bulk_url = url;
    return 0;
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct sink *s = h->data;

    if (--s->nhandles == 0 && s->closed) {
        void (*cb)(void *) = s->closed;

        s->closed = NULL;
        cb(s->closed_arg);
    }
}

static void on_dlq_closed(void *arg)
{
    struct sink *s = arg;

    uv_close((uv_handle_t *)&s->flush_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->deadline_timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->tomb_timer, on_handle_closed);
}

void sink_maybe_finish(struct sink *s)
{
    if (!s->closing || s->finishing || s->depth > 0)
        return;
    if (s->inflight.n || !list_empty(&s->calls) || s->open || blist_first(&s->ready) || blist_first(&s->delayed))
        return;
    if (s->ndlq && !s->deadline_passed)
        return;
    s->finishing = true;
    uv_timer_stop(&s->flush_timer);
    uv_timer_stop(&s->retry_timer);
    uv_timer_stop(&s->deadline_timer);
    uv_timer_stop(&s->tomb_timer);
    if (s->dlq)
        dlq_close(s->dlq, on_dlq_closed, s); /* cancels DLQ entries not yet written */
    else
        on_dlq_closed(s);
}

static void on_deadline(uv_timer_t *t)
{
    struct sink *s = container_of(t, struct sink, deadline_timer);
    struct batch *b;
    struct call *p;
    struct list *pos;
    bool again;

    log_warn("sink: stop deadline reached; %zu documents not finished", s->ndocs);
    s->deadline_passed = true;
    s->depth++;
    uv_timer_stop(&s->retry_timer);
    sink_close_open(s);
    while ((b = blist_first(&s->ready))) {
        sink_batch_set_state(b, B_HELD, false);
        sink_cancel_batch(s, b);
    }
    while ((b = blist_first(&s->delayed))) {
        sink_batch_set_state(b, B_HELD, false);
        sink_cancel_batch(s, b);
    }
    /* http_cancel runs the callback before it returns, which unlinks b. */
    do {
        again = false;
        for (b = blist_first(&s->inflight); b; b = blist_next(&s->inflight, b)) {
            if (b->state == B_INFLIGHT && b->req) {
                http_cancel(b->req);
                again = true;
                break;
            }
            if (b->state == B_SIGNING) {
                sink_batch_set_state(b, B_CANCELED, false);
                s->bytes_inflight -= b->bytes_all;
                for (size_t i = 0; i < b->n; i++)
                    sink_finish(s, b->items[i], SINK_CANCELED);
                b->n = 0;
            }
        }
    } while (again);
    do {
        again = false;
        list_foreach(pos, &s->calls) {
            p = list_entry(pos, struct call, link);
            if (p->req && !p->signing) {
                http_cancel(p->req);
                again = true;
                break;
            }
            p->canceled = true;
        }
    } while (again);
    s->depth--;
    sink_maybe_finish(s);
}

void sink_close(struct sink *s, long deadline_ms, void (*closed)(void *arg), void *arg)
{
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    sink_close_open(s);
    uv_timer_start(&s->deadline_timer, on_deadline, deadline_ms > 0 ? (uint64_t)deadline_ms : 0,
                   0);
    sink_dispatch(s);
}

/* ---- setup ---- */

struct sink *sink_new(uv_loop_t *loop, struct http *h, struct creds *c, const struct sink_opts *o,
                      sink_done_cb *done, sink_resume_cb *resume, void *arg)
{
    struct sink *s;
    struct buf q;
    size_t len;

    if (!o->url || !done || (o->auth == SINK_AUTH_SIGV4 && (!c || !o->sigv4_service ||
                                                           !o->sigv4_region))) {
        log_error("sink: incomplete options (url, auth)");
        return NULL;
    }
    if (!o->dry_run && !o->dlq_path) {
        log_error("sink: no dead-letter file configured");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    fpmap_init(&s->tombs, sizeof(struct tomb));
    list_init(&s->calls);
    list_init(&s->mirrors);
    blist_init(&s->ready);
    blist_init(&s->delayed);
    blist_init(&s->inflight);
    s->loop = loop;
    /* Until the engine has shown it keeps up, readers read as if it did not. */
    s->busy_at = uv_now(loop);
    s->http = h;
    s->creds = c;
    s->o = *o;
    s->done = done;
    s->resume = resume;
    s->arg = arg;
    if (!s->o.bulk_max_actions)
        s->o.bulk_max_actions = 1000;
    if (!s->o.bulk_max_bytes)
        s->o.bulk_max_bytes = 5u << 20;
    if (s->o.flush_interval_ms <= 0)
        s->o.flush_interval_ms = 1000;
    if (s->o.concurrency <= 0)
        s->o.concurrency = 1;
    if (s->o.request_timeout_ms <= 0)
        s->o.request_timeout_ms = 30000;
    if (s->o.max_backoff_ms <= 0)
        s->o.max_backoff_ms = DEFAULT_MAX_BACKOFF_MS;
    if (s->o.backoff_base_ms <= 0)
        s->o.backoff_base_ms = DEFAULT_BACKOFF_BASE_MS;
    if (o->sigv4_service && strcmp(o->sigv4_service, "aoss") == 0 &&
        s->o.bulk_max_bytes > SINK_AOSS_MAX_BODY) {
        log_warn("sink: bulk bodies capped at 10 MiB instead of %zu bytes: OpenSearch "
                 "Serverless refuses larger ones", s->o.bulk_max_bytes);
        s->o.bulk_max_bytes = SINK_AOSS_MAX_BODY;
    }
    if (!s->o.max_queue_bytes)
        s->o.max_queue_bytes = (size_t)s->o.concurrency * 2 * s->o.bulk_max_bytes;
    /* Secrets live only in authz; the strings read later are copied. */
    s->o.password = s->o.api_key = s->o.username = s->o.dlq_path = s->o.url = NULL;
    s->o.ping_index = NULL;
    s->o.sigv4_service = s->service = o->sigv4_service ? strdup(o->sigv4_service) : NULL;
    s->o.sigv4_region = s->region = o->sigv4_region ? strdup(o->sigv4_region) : NULL;
    s->o.version_type = s->version_type = o->version_type ? strdup(o->version_type) : NULL;
    len = strlen(o->url);
    while (len > 0 && o->url[len - 1] == '/')
        len--;
    buf_init(&q, BUF_NOMAX);
    if (buf_printf(&q, "filter_path=%s", bulk_filter_path()) == 0 &&
        (s->url = strndup(o->url, len))) {
        s->bulk_url = sink_url_join(s->url, "/_bulk", q.ptr);
        s->ping_method = "GET";
        if (o->ping_index && o->sigv4_service && strcmp(o->sigv4_service, "aoss") == 0) {
            s->ping_method = "HEAD";
            s->ping_url = sink_url_segment(s->url, o->ping_index);
        } else {
            s->ping_url = sink_url_join(s->url, "/", NULL);
        }
    }
    buf_close(&q);
    if (!s->bulk_url || !s->ping_url || (o->sigv4_service && !s->service) ||
        (o->sigv4_region && !s->region) || (o->version_type && !s->version_type))
        goto fail;
    if ((o->auth == SINK_AUTH_BASIC || o->auth == SINK_AUTH_APIKEY) &&
        !(s->authz = sink_make_authz(o)))
        goto fail;
    for (s->nbuckets = 16; s->nbuckets < 2 * s->o.bulk_max_actions; s->nbuckets *= 2)
        ;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (!s->buckets)
        goto fail;
    if (o->dlq_path && !(s->dlq = dlq_new(loop, o->dlq_path)))
        goto fail; /* the last step that can fail: nothing is on the loop yet */
    uv_timer_init(loop, &s->flush_timer);
    uv_timer_init(loop, &s->retry_timer);
    uv_timer_init(loop, &s->deadline_timer);
    uv_timer_init(loop, &s->tomb_timer);
    s->flush_timer.data = s->retry_timer.data = s->deadline_timer.data = s;
    s->tomb_timer.data = s;
    s->nhandles = 4;
    return s;
fail:
    log_error("sink: out of memory");
    sink_free(s);
    return NULL;
}

void sink_free(struct sink *s)
{
    if (!s)
        return;
    dlq_free(s->dlq);
    fpmap_free(&s->tombs);
    sink_mirrors_free(s);
    free(s->buckets);
    free(s->failures);
    free(s->dlq_reasons);
    sink_conflicts_free(s);
    free(s->url);
    free(s->bulk_url);
    free(s->ping_url);
    free(s->service);
    free(s->region);
    free(s->version_type);
    if (s->authz) {
        OPENSSL_cleanse(s->authz, strlen(s->authz));
        free(s->authz);
    }
    free(s);
}
