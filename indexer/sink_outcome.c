/* sink_outcome — what becomes of each item: the engine's replies, per-item
 * outcomes, retries, 413 splits and the dead-letter file; flow control.
 *
 * Write blocks: per index, the first refusal (a cluster_block_exception,
 * or any per-item 401/403) opens an episode, logged once; the first other
 * answer for that index ends it.  The refused items wait like 429s.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds.h"
#include "base/log.h"
#include "indexer/bulkresp.h"
#include "indexer/dlq.h"
#include "indexer/sink_int.h"

#define REASON_TOO_LARGE "document larger than the engine's body limit"
#define PROTO_SPLIT_AFTER 3 /* replies in a row a batch's reply could not be read: halve it */

/* ---- outcomes ---- */

/* More closed batches wait than there are free connections (or they wait
 * for the backoff after a failure): more read now would only wait in memory,
 * not go out sooner. */
static bool backlogged(const struct sink *s)
{
    size_t waiting = s->ready.n + s->delayed.n;
    size_t conc = (size_t)s->o.concurrency;
    size_t free_conns = s->inflight.n < conc ? conc - s->inflight.n : 0;

    return waiting > 0 &&
           (s->held || waiting > free_conns || uv_now(s->loop) < s->gate_until);
}

/* Busy: the queue is full, or every connection carries a request. */
bool sink_busy(const struct sink *s)
{
    return s->full || s->inflight.n >= (size_t)s->o.concurrency;
}

/* Before busy may end. */
static void note_busy(struct sink *s)
{
    if (sink_busy(s))
        s->busy_at = uv_now(s->loop);
}

/* The batch leaves the inflight list (sent and answered, or not sent). */
void sink_inflight_out(struct sink *s, struct batch *b)
{
    note_busy(s);
    sink_batch_set_state(b, B_HELD, false);
}

void sink_maybe_full(struct sink *s)
{
    if (s->bytes_total >= s->o.max_queue_bytes || backlogged(s))
        s->full = true;
}

void sink_maybe_resume(struct sink *s)
{
    if (s->full && s->bytes_total < s->o.max_queue_bytes / 2 && !backlogged(s)) {
        note_busy(s);
        s->full = false;
        if (s->resume && !s->closing)
            s->resume(s->arg);
    }
}

static void report(struct sink *s, struct item *it, enum sink_outcome outcome)
{
    s->bytes_total -= it->len;
    s->ndocs--;
    if (outcome == SINK_SUPERSEDED)
        s->st.docs_superseded++;
    else if (outcome == SINK_CANCELED)
        s->st.docs_canceled++;
    else if (outcome == SINK_EXPIRED)
        s->st.docs_expired++;
    if (it->pair && !sink_pair_report(it, &outcome)) {
        sink_item_free(it); /* the other copy reports the action */
        return;
    }
    s->done(it->owner, it->ticket, it->op, outcome, s->arg);
    sink_item_free(it);
}

/* The item and the actions it replaced have finished. */
void sink_finish(struct sink *s, struct item *it, enum sink_outcome outcome)
{
    struct item *sup = it->sup;

    s->depth++;
    switch (outcome) {
    case SINK_INDEXED:
        if (it->op == DOC_DELETE)
            s->st.docs_deleted++;
        else
            s->st.docs_indexed++;
        break;
    case SINK_STALE: s->st.docs_stale++; break;
    case SINK_GONE:  s->st.docs_gone++; break;
    case SINK_DLQ:   s->st.docs_dlq++; break;
    default:         break;
    }
    while (sup) {
        struct item *next = sup->next;

        report(s, sup, outcome == SINK_CANCELED || outcome == SINK_EXPIRED ? outcome
                                                                           : SINK_SUPERSEDED);
        sup = next;
    }
    report(s, it, outcome);
    s->depth--;
    sink_maybe_resume(s);
}

void sink_cancel_batch(struct sink *s, struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i])
            sink_finish(s, b->items[i], SINK_CANCELED);
    sink_batch_free(b);
}

/* ---- write blocks ---- */

static struct block *block_find(struct sink *s, const char *index)
{
    for (size_t i = 0; i < s->nblocks; i++) {
        const char *bi = s->blocks[i].index;

        if (bi == index || (bi && index && strcmp(bi, index) == 0))
            return &s->blocks[i];
    }
    return NULL;
}

/* The engine refused a write to index (NULL: any index) with a block. */
static void block_note(struct sink *s, const char *index, const char *type, const char *reason)
{
    struct block *b = block_find(s, index);

    if (!b && s->nblocks == MAX_BLOCKS)
        return; /* still retried; only not tracked */
    if (!b) {
        s->st.write_blocks++;
        log_error("the search engine refuses writes to %s%s: %s%s%s; its documents wait and are "
                  "retried until the block is lifted (nothing is dead-lettered for it)",
                  index ? "index " : "", index ? index : "every index", type ? type : "",
                  type && reason && *reason ? ": " : "", reason ? reason : "");
        b = &s->blocks[s->nblocks++];
        memset(b, 0, sizeof(*b));
        b->index = index;
        snprintf(b->reason, sizeof(b->reason), "%s%s%s", type ? type : "",
                 type && reason && *reason ? ": " : "", reason ? reason : "");
        b->since = uv_now(s->loop);
        b->since_ns = uv_hrtime();
    }
    b->refused++;
}

/* The engine took (or answered otherwise than with a block) a write to
 * index, in a request sent at sent_ns: one sent before the block began
 * (concurrency) says nothing about it. */
static void block_lift(struct sink *s, const char *index, uint64_t sent_ns)
{
    struct block *b = s->nblocks ? block_find(s, index) : NULL;
    size_t i;

    if (!b || sent_ns < b->since_ns)
        return;
    log_warn("the search engine accepts writes to %s%s again, after %.1f s (%" PRIu64
             " refusals)", index ? "index " : "", index ? index : "every index",
             (double)(uv_now(s->loop) - b->since) / 1000.0, b->refused);
    i = (size_t)(b - s->blocks);
    memmove(&s->blocks[i], &s->blocks[i + 1], (s->nblocks - i - 1) * sizeof(*b));
    s->nblocks--;
}

/* ---- replies ---- */

static enum sink_req_class req_class(int err, long status)
{
    if (err < 0 || status == 0)
        return SINK_REQ_NET;
    if (status >= 200 && status < 300)
        return SINK_REQ_2XX;
    if (status == 413)
        return SINK_REQ_413;
    if (status == 429)
        return SINK_REQ_429;
    if (status >= 500)
        return SINK_REQ_5XX;
    return SINK_REQ_4XX;
}

static void on_dlq_done(int err, void *arg)
{
    struct item *it = arg;
    struct sink *s = it->s;

    if (err == 0 && it->dlq_series)
        it->dlq_series->count++;
    else if (err == 0)
        s->st.dlq_other++;
    s->ndlq--;
    s->bytes_inflight -= it->bytes;
    sink_finish(s, it, err == 0 ? SINK_DLQ : SINK_CANCELED);
    sink_maybe_finish(s);
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The source line of an item in b's body, without its newline. */
static const char *item_source(const struct batch *b, const struct item *it, size_t *len)
{
    *len = it->len - it->src_off;
    if (*len > 0 && b->body.ptr[it->off + it->len - 1] == '\n')
        (*len)--;
    return b->body.ptr + it->off + it->src_off;
}

/* The (table, reason) series of ddb2es_dlq_total a dead letter counts in,
 * made with count 0 when new; NULL past SINK_MAX_FAILURE_SERIES (counted
 * in dlq_other).  Series stay where they are: the array grows by chunks
 * that are never moved (an item points at its series while written). */
static struct sink_item_failure *dlq_series(struct sink *s, const char *table, const char *type)
{
    struct sink_item_failure *f;
    size_t n = s->st.n_dlq_reasons;

    if (!table)
        table = "";
    if (!type || !*type)
        type = "unknown";
    for (size_t i = 0; i < n; i++) {
        f = &s->dlq_reasons[i];
        if (strncmp(f->type, type, sizeof(f->type) - 1) == 0 && strcmp(f->table, table) == 0)
            return f;
    }
    if (n == SINK_MAX_FAILURE_SERIES)
        return NULL;
    if (!s->dlq_reasons) {
        s->dlq_reasons = calloc(SINK_MAX_FAILURE_SERIES, sizeof(*s->dlq_reasons));
        if (!s->dlq_reasons)
            return NULL;
        s->st.dlq_reasons = s->dlq_reasons;
    }
    f = &s->dlq_reasons[n];
    f->table = table;
    snprintf(f->type, sizeof(f->type), "%s", type);
    f->count = 0;
    s->st.n_dlq_reasons = n + 1;
    return f;
}

/* The entry is formatted now (doc: the document's text, copied); the item
 * finishes once it is durable. */
void sink_to_dlq(struct sink *s, struct item *it, const char *doc, size_t doc_len, int status,
                 const char *type, const char *reason)
{
    struct buf line;
    struct doc d;
    int rc;

    sink_item_doc(it, &d);
    buf_init(&line, BUF_NOMAX);
    rc = dlq_format(&line, &d, status, type, reason, doc_len ? doc : NULL, doc_len, wall_ms());
    if (it->id_len && it->index)
        logc_warn((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
                  "document %.*s in %s (seq %s) to the dead-letter file: %d %s: %.200s",
                  (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index,
                  it->seq[0] ? it->seq : "-", status, type ? type : "", reason ? reason : "");
    else /* a record that never became a document */
        logc_warn((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
                  "record (seq %s) to the dead-letter file: %s: %.200s",
                  it->seq[0] ? it->seq : "-", type ? type : "", reason ? reason : "");
    it->dlq_series = dlq_series(s, it->table, type);
    s->ndlq++;
    s->bytes_inflight += it->bytes;
    if (!s->dlq) { /* dry run: nothing is written */
        buf_close(&line);
        on_dlq_done(0, it);
        return;
    }
    if (rc == 0)
        rc = dlq_append(s->dlq, &line, on_dlq_done, it);
    else
        buf_close(&line);
    if (rc < 0) {
        log_error("dead-letter entry not queued: %s", strerror(-rc));
        on_dlq_done(-ECANCELED, it); /* reported as not finished: never lost silently */
    }
}

/* 413: each half goes again, first half first; one action alone is too big. */
static void split(struct sink *s, struct batch *b, int status, const char *type,
                  const char *reason)
{
    struct batch *a, *c;
    size_t half = b->n / 2;

    if (b->n == 1) {
        const char *src;
        size_t len;

        src = item_source(b, b->items[0], &len);
        sink_to_dlq(s, b->items[0], src, len, status, type, reason);
        sink_batch_free(b);
        return;
    }
    a = sink_batch_new(s);
    c = sink_batch_new(s);
    for (size_t i = 0; a && c && i < b->n; i++)
        if (sink_batch_take(i < half ? a : c, b->items[i], b) < 0)
            break;
    if (!a || !c || a->n + c->n != b->n) {
        sink_batch_free(a);
        sink_batch_free(c);
        sink_retry_whole(s, b);
        return;
    }
    log_info("bulk of %zu actions (%zu bytes): %s: split in two", b->n, b->bytes, reason);
    sink_batch_free(b);
    /* In flight, they were not checked against deletes that finished meanwhile. */
    if (sink_drop_tombstoned(s, c))
        sink_batch_set_state(c, B_READY, true);
    if (sink_drop_tombstoned(s, a))
        sink_batch_set_state(a, B_READY, true);
}

/* Per table and error type, for the metrics endpoint. */
static void count_failure(struct sink *s, const struct item *it, const struct bulkresp_item *ri)
{
    const char *table = it->table ? it->table : "";
    char type[sizeof(s->failures[0].type)];
    struct sink_item_failure *f;
    size_t n = s->st.n_item_failures;

    if (ri->type && *ri->type)
        snprintf(type, sizeof(type), "%s", ri->type);
    else
        snprintf(type, sizeof(type), "http_%d", ri->status);
    for (size_t i = 0; i < n; i++) {
        f = &s->failures[i];
        if (strcmp(f->type, type) == 0 && strcmp(f->table, table) == 0) {
            f->count++;
            return;
        }
    }
    if (n == SINK_MAX_FAILURE_SERIES || !(n & (n - 1))) { /* grow at powers of two */
        f = n == SINK_MAX_FAILURE_SERIES ? NULL
                                         : realloc(s->failures, (n ? 2 * n : 1) * sizeof(*f));
        if (!f) {
            s->st.item_failures_other++;
            return;
        }
        s->failures = f;
        s->st.item_failures = f;
    }
    f = &s->failures[n];
    f->table = table;
    memcpy(f->type, type, sizeof(type));
    f->count = 1;
    s->st.n_item_failures = n + 1;
}

const double sink_bulk_bounds[SINK_BULK_NBUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30 };

static void observe_latency(struct sink *s, const struct batch *b)
{
    double sec = (double)(uv_hrtime() - b->sent_ns) / 1e9;
    size_t i = 0;

    while (i < SINK_BULK_NBUCKETS && sec > sink_bulk_bounds[i])
        i++;
    s->st.bulk_seconds_bucket[i]++;
    s->st.bulk_seconds_sum += sec;
    s->st.bulk_seconds_count++;
}

static void per_item(struct sink *s, struct batch *b, const struct bulkresp *r)
{
    struct batch *again = sink_batch_new(s);
    unsigned attempts = 0;
    bool deletes = false;

    s->fail_streak = 0;
    s->st.failing = false;
    block_lift(s, NULL, b->sent_ns); /* the request got past any cluster-wide block */
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = b->items[i];
        const struct bulkresp_item *ri = &r->items[i];

        if (ri->cls != BR_BLOCKED)
            block_lift(s, it->index, b->sent_ns);
        if ((ri->cls == BR_OK || ri->cls == BR_OK_GONE) && it->op == DOC_DELETE) {
            sink_tomb_add(s, it);
            deletes = true;
        }
        switch (ri->cls) {
        case BR_OK:       sink_finish(s, it, SINK_INDEXED); break;
        case BR_OK_GONE:  sink_finish(s, it, SINK_GONE); break;
        case BR_OK_STALE: sink_finish(s, it, SINK_STALE); break;
        case BR_DLQ: {
            const char *src;
            size_t len;

            count_failure(s, it, ri);
            if (sink_conflicts_refused(s, b, it, ri))
                break; /* a type conflict: it goes again, reshaped */
            src = item_source(b, it, &len);
            sink_to_dlq(s, it, src, len, ri->status, ri->type, ri->reason);
            break;
        }
        case BR_BLOCKED:
        case BR_RETRY:
        default:
            count_failure(s, it, ri);
            if (ri->cls == BR_BLOCKED) {
                s->st.docs_blocked++;
                block_note(s, it->index, ri->type, ri->reason);
            }
            if (s->deadline_passed || !again || sink_batch_take(again, it, b) < 0) {
                sink_finish(s, it, SINK_CANCELED); /* not finished: never checkpointed */
                break;
            }
            s->st.docs_retried++;
            if (++it->attempts > attempts)
                attempts = it->attempts;
            break;
        }
    }
    if (again && again->n) {
        uint64_t ms = sink_retry_delay_ms(s, attempts - 1);

        log_debug("%zu of %zu actions to retry in %" PRIu64 " ms", again->n, b->n, ms);
        again->attempt = attempts;
        sink_delay_batch(s, again, ms);
    } else {
        sink_batch_free(again);
    }
    sink_batch_free(b);
    /* Older actions for the ids just deleted, waiting here, never go out. */
    if (deletes && fpmap_count(&s->tombs))
        sink_drop_tombstoned_waiting(s);
}

/* A whole request refused with a cluster-wide block: one episode, logged
 * once (r->error is "cluster_block_exception: <reason>"). */
static void block_request(struct sink *s, const struct bulkresp *r)
{
    const char *sep = strstr(r->error, ": ");
    char type[64];

    snprintf(type, sizeof(type), "%.*s", sep ? (int)(sep - r->error) : (int)strlen(r->error),
             r->error);
    block_note(s, NULL, type, sep ? sep + 2 : "");
}

void sink_on_bulk_done(struct http_req *req, int err, void *arg)
{
    struct batch *b = arg;
    struct sink *s = b->s;
    long status = err < 0 ? 0 : http_req_status(req);
    const struct buf *body = http_req_body(req);
    struct bulkresp r;
    enum sink_req_class cls = req_class(err, status);

    b->req = NULL;
    sink_inflight_out(s, b);
    s->bytes_inflight -= b->bytes_all;
    buf_close(&b->gz);
    s->st.bulk_requests[cls]++;
    s->depth++;
    if (err == -ECANCELED && s->deadline_passed) {
        sink_cancel_batch(s, b);
        goto out;
    }
    observe_latency(s, b);
    memset(&r, 0, sizeof(r));
    if (err < 0) {
        log_warn("bulk request of %zu actions failed: %s (%s)", b->n, strerror(-err),
                 http_req_error(req));
        /* No answer at all: whatever answers next may be another engine. */
        if (s->unreachable && !s->held && !s->closing && err != -ECANCELED) {
            s->held = true;
            s->unreachable(s->unreachable_arg);
        }
        sink_retry_whole(s, b);
        goto out;
    }
    bulkresp_parse(status, body ? body->ptr : NULL, body ? body->len : 0, b->n, &r);
    switch (r.req) {
    case BR_REQ_ITEMS:
        per_item(s, b, &r);
        break;
    case BR_REQ_SPLIT:
        split(s, b, 413, "request_entity_too_large", REASON_TOO_LARGE);
        break;
    case BR_REQ_AUTH:
        if (r.blocked) {
            block_request(s, &r);
            sink_retry_whole(s, b);
            break;
        }
        log_error("bulk request refused with HTTP %ld: check the credentials and the engine's "
                  "access policy; retrying", status);
        if (s->creds)
            creds_invalidate(s->creds);
        sink_retry_whole(s, b);
        break;
    case BR_REQ_PROTO:
        /* A 2xx the sink cannot read, again and again (an error text it
         * cannot parse, say): the batch is halved until the action it is
         * about stands alone, and that one is dead-lettered.  Never an
         * endless loop. */
        if (b->attempt + 1 >= PROTO_SPLIT_AFTER && !s->deadline_passed) {
            log_warn("bulk reply for %zu actions unusable %u times in a row (%s): %s", b->n,
                     b->attempt + 1, r.error,
                     b->n > 1 ? "sending them in halves" : "the action goes to the dead-letter "
                                                           "file");
            split(s, b, (int)status, "bulk_reply_unreadable", r.error);
            break;
        }
        log_warn("bulk reply unusable (%s); sending the %zu actions again", r.error, b->n);
        sink_retry_whole(s, b);
        break;
    case BR_REQ_FATAL:
        log_error("bulk request refused with HTTP %ld (%s): the configuration or the engine "
                  "needs a fix; retrying", status, r.error);
        sink_retry_whole(s, b);
        break;
    case BR_REQ_RETRY:
    default:
        if (r.blocked)
            block_request(s, &r);
        else
            log_warn("bulk request of %zu actions: HTTP %ld%s%s; retrying", b->n, status,
                     r.error[0] ? " " : "", r.error);
        sink_retry_whole(s, b);
        break;
    }
    bulkresp_clear(&r);
out:
    s->depth--;
    sink_dispatch(s);
}
