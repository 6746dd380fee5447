/* sink — batching, bulk requests, per-item outcomes, retries and the
 * dead-letter file.  See sink.h for the contract.
 *
 * An item is one submitted document, already rendered as NDJSON (its source
 * is freed once rendered).  Items gather in the open batch; a batch closes on
 * actions, bytes or the flush timer and waits in `ready` for one of the
 * `concurrency` request slots.  A batch that must be sent again waits in
 * `delayed` until its due time.  After a request-level failure the whole sink
 * holds back until `gate_until` (capped exponential backoff, full jitter), so
 * an engine that is down sees no tight loop; per-item retries do not close
 * the gate, they only delay their own items.
 *
 * Write blocks: per index, the first refusal (a cluster_block_exception,
 * or any per-item 401/403) opens an episode, logged once; the first other
 * answer for that index ends it.  The refused items wait like 429s.
 *
 * Tombstones: a hash of (index, _id) -> the version of the newest delete
 * that finished there, with a FIFO in the order they were (re)written, so
 * the oldest is at the head: it is the first to expire (one timer, armed at
 * the head's expiry) and the one evicted when the table is full.  A batch
 * is checked against them whenever it joins the ready or delayed list
 * (closing, a retry, a split), and the ready and delayed batches again
 * after a reply that added one; in-flight actions are checked when they
 * come back for a retry.
 */
#include "indexer/sink.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "aws/creds.h"
#include "base/backoff.h"
#include "aws/retry.h"
#include "base/http.h"
#include "aws/httpsign.h"
#include "base/jsonx.h"
#include "base/util.h"
#include "base/log.h"
#include "indexer/bulk.h"
#include "indexer/bulkresp.h"
#include "indexer/dlq.h"


#define DEFAULT_BACKOFF_BASE_MS 100
#define DEFAULT_MAX_BACKOFF_MS 30000
#define MAX_BLOCKS 64               /* indexes whose block is tracked at once */
#define REASON_TOO_LARGE "document larger than the engine's body limit"
#define PROTO_SPLIT_AFTER 3 /* replies in a row a batch's reply could not be read: halve it */

/* One action.  Its text (the action line, then the source line for an
 * index) is written once, straight into the body of the batch that holds it
 * (off, len): the body is sent as it is, without assembling a copy.  The
 * item keeps what the dead-letter file and the logs need, and the _id in
 * id[] (so a queued action costs its text plus ~200 bytes). */
struct item {
    struct sink *s;
    void *owner;
    uint64_t ticket;
    size_t off, len;       /* the action's text in its batch's body */
    size_t src_off;        /* where the source line starts, from off */
    size_t bytes;          /* len plus the bytes of the items in sup */
    struct item *sup;      /* earlier actions on the same _id this one replaced */
    struct item *next;     /* link in a sup chain */
    struct item *hnext;    /* link in the open batch's hash bucket */
    size_t slot;           /* position in the open batch */
    unsigned attempts;     /* per-item retries so far */
    uint32_t hash;         /* of _index and _id */
    struct sink_item_failure *dlq_series; /* while its dead-letter entry is written: where it
                                             counts once durable (table and reason) */
    enum doc_op op;
    const char *index, *table, *shard; /* borrowed, as in struct doc */
    uint64_t version, send_by;
    int64_t created;
    char seq[sizeof(((struct doc *)0)->seq)];
    size_t id_len, keys_len;
    char *keys;            /* in id[]'s allocation, after the id: keys_len bytes and a NUL */
    char id[];             /* id_len bytes and a NUL */
};

enum bstate { B_OPEN, B_READY, B_DELAYED, B_SIGNING, B_INFLIGHT };

struct batch {
    struct sink *s;
    enum bstate state;
    struct item **items;   /* in stream order; NULL holes while open (superseded) */
    size_t n, cap, nlive;
    size_t bytes;          /* body bytes: sum of the live items' len */
    size_t bytes_all;      /* with the superseded items, for the memory cap */
    struct buf body;       /* the NDJSON: the items' text, in place; holes (superseded,
                              expired) are squeezed out before it is sent */
    uint64_t due;          /* B_DELAYED: uv_now() when it may go */
    unsigned attempt;      /* request-level failures of this batch */
    struct http_req *req;  /* B_INFLIGHT */
    uint64_t sent_ns;      /* uv_hrtime() when the request went out */
    bool canceled;         /* B_SIGNING when the deadline passed */
    uv_work_t work;        /* B_SIGNING with gzip: compressing in the thread pool */
    struct buf gz;         /* the body compressed, while it is sent */
    int work_rc;
    struct batch *prev, *next;
};

struct blist {
    struct batch *head, *tail;
    size_t n;
};

/* The engine refuses writes to an index (or, index NULL, to the cluster). */
struct block {
    const char *index;     /* borrowed, as the items' */
    char reason[200];      /* the first refusal: "type: reason" */
    uint64_t since;        /* uv_now() */
    uint64_t since_ns;     /* uv_hrtime(): replies to requests sent before do not end it */
    uint64_t refused;      /* items refused during the episode */
};

/* A delete that finished: no action at or below version goes out for this
 * (index, _id) until expires. */
struct tomb {
    struct tomb *hnext;    /* hash bucket */
    struct tomb *prev, *next; /* FIFO, oldest first */
    uint64_t version, expires;
    uint32_t hash;
    size_t index_len, id_len;
    char key[];            /* index, NUL, id, NUL */
};

struct ping {
    struct sink *s;
    void (*cb)(void *arg, int rc);
    void *arg;
    struct http_req *req;
    bool signing, canceled;
    struct ping *prev, *next;
};

struct sink {
    uv_loop_t *loop;
    struct http *http;
    struct creds *creds;
    struct sink_opts o;
    char *url;             /* base, without a trailing '/' */
    char *bulk_url, *ping_url;
    char *authz;           /* "Basic ..." or "ApiKey ...": a secret, never logged */
    char *service, *region, *version_type; /* copies behind o's pointers */
    sink_done_cb *done;
    sink_resume_cb *resume;
    void *arg;
    struct dlq *dlq;
    uv_timer_t flush_timer, retry_timer, deadline_timer, tomb_timer;
    int nhandles;          /* timers not yet closed */
    struct batch *open;
    struct item **buckets;
    size_t nbuckets;       /* a power of two */
    struct blist ready, delayed, inflight; /* inflight holds B_SIGNING and B_INFLIGHT */
    struct ping *pings;
    uint64_t gate_until;
    unsigned fail_streak;
    size_t ndlq;           /* items waiting for the dead-letter file */
    size_t bytes_total, bytes_inflight;
    size_t ndocs;
    bool full;
    uint64_t busy_at;      /* uv_now() when it last stopped being busy (or was made) */
    int depth;             /* > 0 while processing a reply: no finishing under our feet */
    bool closing, deadline_passed, finishing;
    void (*closed)(void *arg);
    void *closed_arg;
    struct block blocks[MAX_BLOCKS]; /* oldest first */
    size_t nblocks;
    struct tomb **tbuckets;
    size_t ntbuckets;      /* a power of two */
    struct tomb *thead, *ttail;
    struct sink_stats st;
    struct sink_item_failure *failures; /* st.item_failures */
    struct sink_item_failure *dlq_reasons; /* st.dlq_reasons: SINK_MAX_FAILURE_SERIES, fixed */
};

const double sink_bulk_bounds[SINK_BULK_NBUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5,   1,    2.5,   5,    10,  30 };

static void dispatch(struct sink *s);
static void maybe_finish(struct sink *s);
static bool drop_tombstoned(struct sink *s, struct batch *b);
static void to_dlq(struct sink *s, struct item *it, const char *doc, size_t doc_len, int status,
                   const char *type, const char *reason);

/* ---- lists ---- */

static void bl_push(struct blist *l, struct batch *b, bool front)
{
    l->n++;
    b->prev = b->next = NULL;
    if (!l->head) {
        l->head = l->tail = b;
    } else if (front) {
        b->next = l->head;
        l->head->prev = b;
        l->head = b;
    } else {
        b->prev = l->tail;
        l->tail->next = b;
        l->tail = b;
    }
}

static void bl_remove(struct blist *l, struct batch *b)
{
    l->n--;
    if (b->prev)
        b->prev->next = b->next;
    else
        l->head = b->next;
    if (b->next)
        b->next->prev = b->prev;
    else
        l->tail = b->prev;
    b->prev = b->next = NULL;
}

/* ---- items and batches ---- */

static uint32_t hash_of(const char *index, const char *id, size_t id_len)
{
    uint32_t h = 2166136261u; /* FNV-1a over index, NUL, id */

    for (const char *p = index ? index : ""; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0u) * 16777619u;
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ (uint8_t)id[i]) * 16777619u;
    return h;
}

static uint32_t key_hash(const struct item *it)
{
    return hash_of(it->index, it->id, it->id_len);
}

static bool same_key(const struct item *a, const struct item *b)
{
    return a->hash == b->hash && a->id_len == b->id_len &&
           memcmp(a->id, b->id, a->id_len) == 0 && strcmp(a->index, b->index) == 0;
}

/* An item for d, without text yet (len 0). */
static struct item *item_new(struct sink *s, const struct doc *d, void *owner, uint64_t ticket)
{
    size_t id_len = d->id_len < sizeof(d->id) ? d->id_len : sizeof(d->id) - 1;
    size_t keys_len = d->keys.ptr ? d->keys.len : 0;
    struct item *it = calloc(1, sizeof(*it) + id_len + 1 + keys_len + 1);

    if (!it)
        return NULL;
    it->keys = it->id + id_len + 1;
    it->keys_len = keys_len;
    if (keys_len)
        memcpy(it->keys, d->keys.ptr, keys_len);
    it->s = s;
    it->owner = owner;
    it->ticket = ticket;
    it->op = d->op;
    it->index = d->index;
    it->table = d->table;
    it->shard = d->shard;
    it->version = d->version;
    it->send_by = d->send_by;
    it->created = d->created;
    memcpy(it->seq, d->seq, sizeof(it->seq));
    it->seq[sizeof(it->seq) - 1] = '\0';
    it->id_len = id_len;
    memcpy(it->id, d->id, id_len);
    it->hash = key_hash(it);
    return it;
}

static void item_free(struct item *it)
{
    free(it);
}

/* The item's document as the dead-letter file describes it (no source). */
static void item_doc(const struct item *it, struct doc *d)
{
    memset(d, 0, sizeof(*d));
    d->op = it->op;
    d->index = it->index;
    memcpy(d->id, it->id, it->id_len);
    d->id_len = it->id_len;
    d->version = it->version;
    memcpy(d->seq, it->seq, sizeof(d->seq));
    d->created = it->created;
    d->table = it->table;
    d->shard = it->shard;
    d->send_by = it->send_by;
    buf_init(&d->source, 0);
    /* A view of the item's copy, read by dlq_format only: never closed. */
    d->keys.ptr = it->keys_len ? it->keys : NULL;
    d->keys.len = it->keys_len;
}

static struct batch *batch_new(struct sink *s)
{
    struct batch *b = calloc(1, sizeof(*b));

    if (b) {
        b->s = s;
        buf_init(&b->body, BUF_NOMAX);
        buf_init(&b->gz, BUF_NOMAX);
    }
    return b;
}

static void batch_free(struct batch *b)
{
    if (!b)
        return;
    buf_close(&b->body);
    buf_close(&b->gz);
    free(b->items);
    free(b);
}

/* Takes the item into the batch; its text is already in b->body at it->off. */
static int batch_add(struct batch *b, struct item *it)
{
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        struct item **p = realloc(b->items, ncap * sizeof(*p));

        if (!p)
            return -ENOMEM;
        b->items = p;
        b->cap = ncap;
    }
    it->slot = b->n;
    b->items[b->n++] = it;
    b->nlive++;
    b->bytes += it->len;
    b->bytes_all += it->bytes;
    return 0;
}

/* Copies the item's text from the body of from (a batch being retired: a
 * retry of some of its items, a 413 split) to the end of b's, and takes it. */
static int batch_take(struct batch *b, struct item *it, const struct batch *from)
{
    size_t off = b->body.len;

    if (buf_append(&b->body, from->body.ptr + it->off, it->len) < 0)
        return -ENOMEM;
    if (batch_add(b, it) < 0) {
        buf_truncate(&b->body, off);
        return -ENOMEM;
    }
    it->off = off;
    return 0;
}

/* Drops the NULL holes of items[] and moves the items' text down over the
 * text of those that left (superseded, expired): the body is then exactly
 * the live actions, in order, ready to send as it is. */
static void batch_squeeze(struct batch *b)
{
    size_t j = 0, w = 0;

    for (size_t i = 0; i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it)
            continue;
        if (it->off != w)
            memmove(b->body.ptr + w, b->body.ptr + it->off, it->len);
        it->off = w;
        it->slot = j;
        w += it->len;
        b->items[j++] = it;
    }
    b->n = j;
    buf_truncate(&b->body, w);
}

/* The open batch leaves the hash and its holes; it joins the ready queue. */
static void close_open(struct sink *s)
{
    struct batch *b = s->open;

    if (!b)
        return;
    uv_timer_stop(&s->flush_timer);
    s->open = NULL;
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it)
            continue;
        s->buckets[it->hash & (s->nbuckets - 1)] = NULL;
        it->hnext = NULL;
    }
    batch_squeeze(b);
    if (!drop_tombstoned(s, b))
        return;
    b->state = B_READY;
    bl_push(&s->ready, b, false);
}

/* ---- outcomes ---- */

/* More closed batches wait than there are free connections (or they wait
 * for the backoff after a failure): more read now would only wait in memory,
 * not go out sooner. */
static bool backlogged(const struct sink *s)
{
    size_t waiting = s->ready.n + s->delayed.n;
    size_t conc = (size_t)s->o.concurrency;
    size_t free_conns = s->inflight.n < conc ? conc - s->inflight.n : 0;

    return waiting > 0 && (waiting > free_conns || uv_now(s->loop) < s->gate_until);
}

/* Busy: the queue is full, or every connection carries a request. */
static bool busy(const struct sink *s)
{
    return s->full || s->inflight.n >= (size_t)s->o.concurrency;
}

/* Before busy may end. */
static void note_busy(struct sink *s)
{
    if (busy(s))
        s->busy_at = uv_now(s->loop);
}

/* The batch leaves the inflight list (sent and answered, or not sent). */
static void inflight_out(struct sink *s, struct batch *b)
{
    note_busy(s);
    bl_remove(&s->inflight, b);
}

static void maybe_full(struct sink *s)
{
    if (s->bytes_total >= s->o.max_queue_bytes || backlogged(s))
        s->full = true;
}

static void maybe_resume(struct sink *s)
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
    s->done(it->owner, it->ticket, outcome, s->arg);
    item_free(it);
}

/* The item and the actions it replaced have finished. */
static void finish(struct sink *s, struct item *it, enum sink_outcome outcome)
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
    maybe_resume(s);
}

static void cancel_batch(struct sink *s, struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->items[i])
            finish(s, b->items[i], SINK_CANCELED);
    batch_free(b);
}

/* ---- tombstones ---- */

static long tomb_ttl_ms(const struct sink *s)
{
    return s->o.tombstone_ttl_ms > 0 ? s->o.tombstone_ttl_ms : SINK_TOMBSTONE_TTL_MS;
}

static size_t tomb_max(const struct sink *s)
{
    return s->o.tombstone_max > 0 ? s->o.tombstone_max : SINK_TOMBSTONE_MAX;
}

static struct tomb *tomb_find(const struct sink *s, const char *index, const char *id,
                              size_t id_len, uint32_t hash)
{
    size_t index_len = strlen(index ? index : "");

    if (!s->ntbuckets)
        return NULL;
    for (struct tomb *t = s->tbuckets[hash & (s->ntbuckets - 1)]; t; t = t->hnext)
        if (t->hash == hash && t->id_len == id_len && t->index_len == index_len &&
            memcmp(t->key, index ? index : "", index_len) == 0 &&
            memcmp(t->key + index_len + 1, id, id_len) == 0)
            return t;
    return NULL;
}

static void tomb_fifo_unlink(struct sink *s, struct tomb *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        s->thead = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        s->ttail = t->prev;
    t->prev = t->next = NULL;
}

static void tomb_fifo_append(struct sink *s, struct tomb *t)
{
    t->prev = s->ttail;
    t->next = NULL;
    if (s->ttail)
        s->ttail->next = t;
    else
        s->thead = t;
    s->ttail = t;
}

static void tomb_remove(struct sink *s, struct tomb *t)
{
    struct tomb **link = &s->tbuckets[t->hash & (s->ntbuckets - 1)];

    while (*link != t)
        link = &(*link)->hnext;
    *link = t->hnext;
    tomb_fifo_unlink(s, t);
    s->st.tombstones--;
    free(t);
}

static void on_tomb_timer(uv_timer_t *timer);

/* Drops the expired tombstones and arms the timer for the next expiry. */
static void tomb_prune(struct sink *s)
{
    uint64_t now = uv_now(s->loop);

    while (s->thead && s->thead->expires <= now)
        tomb_remove(s, s->thead);
    if (s->thead && !s->finishing)
        uv_timer_start(&s->tomb_timer, on_tomb_timer, s->thead->expires - now, 0);
    else
        uv_timer_stop(&s->tomb_timer);
}

static void on_tomb_timer(uv_timer_t *timer)
{
    tomb_prune(container_of(timer, struct sink, tomb_timer));
}

static int tomb_grow(struct sink *s)
{
    size_t n = s->ntbuckets ? s->ntbuckets * 2 : 64;
    struct tomb **v = calloc(n, sizeof(*v));

    if (!v)
        return -ENOMEM;
    for (struct tomb *t = s->thead; t; t = t->next) {
        t->hnext = v[t->hash & (n - 1)];
        v[t->hash & (n - 1)] = t;
    }
    free(s->tbuckets);
    s->tbuckets = v;
    s->ntbuckets = n;
    return 0;
}

/* A delete of it finished (2xx or 404): remember its version.  Out of
 * memory only loses the protection, which is logged. */
static void tomb_add(struct sink *s, const struct item *it)
{
    size_t index_len = strlen(it->index ? it->index : "");
    struct tomb *t;

    if (!it->version || s->o.dry_run)
        return;
    tomb_prune(s);
    t = tomb_find(s, it->index, it->id, it->id_len, it->hash);
    if (t) {
        if (it->version > t->version)
            t->version = it->version;
        tomb_fifo_unlink(s, t);
    } else {
        if (s->st.tombstones >= tomb_max(s)) {
            tomb_remove(s, s->thead); /* the oldest */
            s->st.tombstone_evictions++;
        }
        if ((s->st.tombstones >= s->ntbuckets && tomb_grow(s) < 0) ||
            !(t = calloc(1, sizeof(*t) + index_len + 1 + it->id_len + 1))) {
            log_error("out of memory: the delete of %.*s in %s is not remembered",
                      (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index);
            return;
        }
        t->hash = it->hash;
        t->index_len = index_len;
        t->id_len = it->id_len;
        memcpy(t->key, it->index ? it->index : "", index_len);
        memcpy(t->key + index_len + 1, it->id, it->id_len);
        t->version = it->version;
        t->hnext = s->tbuckets[t->hash & (s->ntbuckets - 1)];
        s->tbuckets[t->hash & (s->ntbuckets - 1)] = t;
        s->st.tombstones++;
    }
    t->expires = uv_now(s->loop) + (uint64_t)tomb_ttl_ms(s);
    tomb_fifo_append(s, t);
    tomb_prune(s); /* arms the timer */
}

/* The action is at or below the version of a delete that finished. */
static bool tomb_covers(struct sink *s, const struct item *it)
{
    const struct tomb *t;

    if (!it->version || !s->st.tombstones)
        return false;
    t = tomb_find(s, it->index, it->id, it->id_len, it->hash);
    return t && t->expires > uv_now(s->loop) && it->version <= t->version;
}

/* Takes out of b (not open, not in flight) the actions a tombstone covers:
 * they are reported SINK_STALE, never sent.  False when nothing is left
 * (b is freed; the caller has taken it out of its list). */
static bool drop_tombstoned(struct sink *s, struct batch *b)
{
    bool dropped = false;

    for (size_t i = 0; s->st.tombstones && i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it || !tomb_covers(s, it))
            continue;
        b->items[i] = NULL;
        dropped = true;
        b->nlive--;
        b->bytes -= it->len;
        b->bytes_all -= it->bytes;
        s->st.docs_tombstoned++;
        logc_debug((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
                   "%s %.*s in %s at version %" PRIu64 " not sent: a newer delete finished",
                   it->op == DOC_DELETE ? "delete" : "index",
                   (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index, it->version);
        finish(s, it, SINK_STALE);
    }
    if (dropped)
        batch_squeeze(b);
    if (b->n == 0) {
        batch_free(b);
        return false;
    }
    return true;
}

/* After deletes finished: the waiting batches lose what they now cover.
 * Each list is taken whole first: a done callback may submit, which can
 * add batches to them meanwhile. */
static void drop_tombstoned_waiting(struct sink *s)
{
    struct blist *lists[] = { &s->ready, &s->delayed };

    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        struct blist todo = *lists[l];
        struct batch *b;

        memset(lists[l], 0, sizeof(*lists[l]));
        while ((b = todo.head)) {
            bl_remove(&todo, b);
            if (drop_tombstoned(s, b))
                bl_push(lists[l], b, false);
        }
    }
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

/* ---- backoff ---- */

static uint64_t retry_delay_ms(const struct sink *s, unsigned n)
{
    return (uint64_t)backoff_ms(s->o.backoff_base_ms, s->o.max_backoff_ms, n);
}

static void delay_batch(struct sink *s, struct batch *b, uint64_t ms)
{
    buf_close(&b->gz);
    if (!drop_tombstoned(s, b))
        return;
    b->state = B_DELAYED;
    b->due = uv_now(s->loop) + ms;
    bl_push(&s->delayed, b, false);
}

/* A request-level failure: the batch goes again after a backoff, and the
 * sink sends nothing before then. */
static void retry_whole(struct sink *s, struct batch *b)
{
    uint64_t ms;

    if (s->deadline_passed) {
        cancel_batch(s, b);
        return;
    }
    ms = retry_delay_ms(s, s->fail_streak);
    s->fail_streak++;
    s->st.failing = true;
    s->st.retries++;
    b->attempt++;
    if (uv_now(s->loop) + ms > s->gate_until)
        s->gate_until = uv_now(s->loop) + ms;
    log_debug("bulk of %zu actions: retry in %" PRIu64 " ms (failure %u in a row)", b->n, ms,
              s->fail_streak);
    delay_batch(s, b, ms);
}

/* ---- sending ---- */

static int gzip_body(const struct buf *in, struct buf *out)
{
    z_stream z;
    int rc;

    /* In the thread pool (a 5 MB body takes tens of ms), at the fastest level. */
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    rc = buf_reserve(out, deflateBound(&z, in->len));
    if (rc == 0) {
        z.next_in = (Bytef *)in->ptr;
        z.avail_in = (uInt)in->len;
        z.next_out = (Bytef *)out->ptr;
        z.avail_out = (uInt)(out->cap - 1);
        rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -EIO;
        if (rc == 0) {
            out->len = z.total_out;
            out->ptr[out->len] = '\0';
        }
    }
    deflateEnd(&z);
    return rc;
}

static void on_bulk_done(struct http_req *req, int err, void *arg);

/* A batch in the inflight list that was not sent: canceled by the deadline
 * (its items were reported then) it is dropped, else it goes again later. */
static void drop_canceled(struct sink *s, struct batch *b)
{
    http_req_free(b->req);
    inflight_out(s, b);
    batch_free(b);
    maybe_finish(s);
}

static void retry_unsent(struct sink *s, struct batch *b)
{
    http_req_free(b->req);
    b->req = NULL;
    inflight_out(s, b);
    s->bytes_inflight -= b->bytes_all;
    retry_whole(s, b);
}

static void send_req(struct sink *s, struct batch *b)
{
    int rc;

    b->state = B_INFLIGHT;
    b->sent_ns = uv_hrtime();
    rc = http_send(s->http, b->req, on_bulk_done, b);
    if (rc < 0) {
        log_warn("bulk request not sent: %s", strerror(-rc));
        b->req = NULL; /* http_send freed it */
        s->st.bulk_requests[SINK_REQ_NET]++;
        retry_unsent(s, b);
    }
}

static void on_creds_bulk(const struct sigv4_key *key, int err, void *arg)
{
    struct batch *b = arg;
    struct sink *s = b->s;
    bool aoss = strcmp(s->o.sigv4_service, "aoss") == 0;

    if (b->canceled) { /* the deadline passed meanwhile */
        drop_canceled(s, b);
        return;
    }
    if (err == 0)
        err = httpsign_sigv4(b->req, key, s->o.sigv4_region, s->o.sigv4_service, time(NULL), aoss);
    if (err < 0) {
        log_error("bulk request not signed: no usable AWS credentials (%s)", strerror(-err));
        retry_unsent(s, b);
        dispatch(s);
        return;
    }
    send_req(s, b);
}

static void dry_run(struct sink *s, struct batch *b)
{
    if (fwrite(b->body.ptr, 1, b->body.len, stdout) != b->body.len || fflush(stdout) != 0)
        log_error("dry run: writing the bulk body to stdout failed");
    s->st.bulk_requests[SINK_REQ_2XX]++;
    for (size_t i = 0; i < b->n; i++)
        finish(s, b->items[i], SINK_INDEXED);
    batch_free(b);
}

static int add_auth(struct sink *s, struct http_req *req)
{
    if (s->authz)
        return http_req_header(req, "Authorization", s->authz);
    return 0;
}

/* Takes out the items whose send_by has passed (and what they replaced):
 * they are reported SINK_EXPIRED instead of being sent.  False when nothing
 * is left to send (b is freed). */
static bool drop_expired(struct sink *s, struct batch *b)
{
    uint64_t now = uv_now(s->loop);
    bool expired = false;

    for (size_t i = 0; i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it->send_by || it->send_by > now)
            continue;
        b->items[i] = NULL;
        expired = true;
        b->nlive--;
        b->bytes -= it->len;
        b->bytes_all -= it->bytes;
        finish(s, it, SINK_EXPIRED);
    }
    if (expired)
        batch_squeeze(b);
    if (b->n == 0) {
        batch_free(b);
        return false;
    }
    return true;
}

/* b is in the inflight list (B_SIGNING) and its body is ready: build the
 * request, sign it when needed, send it. */
static void request_batch(struct sink *s, struct batch *b)
{
    struct http_req *req = NULL;
    int rc = 0;

    if (!(req = http_req_new("POST", s->bulk_url)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = http_req_header(req, "Content-Type", "application/x-ndjson");
    if (rc == 0 && s->o.gzip)
        rc = http_req_header(req, "Content-Encoding", "gzip");
    if (rc == 0)
        rc = add_auth(s, req);
    if (rc < 0) {
        log_error("bulk request not built: %s", strerror(-rc));
        http_req_free(req);
        retry_unsent(s, b);
        return;
    }
    /* The body as it was built, or its compressed copy: no other copy. */
    if (s->o.gzip)
        http_req_body_ref(req, b->gz.ptr, b->gz.len);
    else
        http_req_body_ref(req, b->body.ptr, b->body.len);
    http_req_timeout(req, s->o.request_timeout_ms);
    /* filter_path may be ignored (SigV4 POSTs on Amazon OpenSearch Service):
     * leave room for full items with long reasons. */
    http_req_max_response(req, b->n > 1024 ? b->n * 4096 : (size_t)4 << 20);
    b->req = req;
    if (s->o.auth == SINK_AUTH_SIGV4) {
        rc = creds_get(s->creds, on_creds_bulk, b);
        if (rc < 0)
            on_creds_bulk(NULL, rc, b);
        return;
    }
    send_req(s, b);
}

static void gzip_work(uv_work_t *w)
{
    struct batch *b = container_of(w, struct batch, work);

    b->work_rc = gzip_body(&b->body, &b->gz);
}

static void gzip_after(uv_work_t *w, int status)
{
    struct batch *b = container_of(w, struct batch, work);
    struct sink *s = b->s;

    if (b->canceled) { /* the deadline passed meanwhile */
        drop_canceled(s, b);
        return;
    }
    if (status < 0 || b->work_rc < 0) {
        log_error("bulk body not compressed: %s", strerror(-(status < 0 ? status : b->work_rc)));
        retry_unsent(s, b);
        dispatch(s);
        return;
    }
    request_batch(s, b);
}

static void send_batch(struct sink *s, struct batch *b)
{
    if (!drop_expired(s, b))
        return;
    if (s->o.dry_run) {
        dry_run(s, b);
        return;
    }
    bl_push(&s->inflight, b, false);
    s->bytes_inflight += b->bytes_all;
    b->state = B_SIGNING; /* compressing, then signing: cancelable until sent */
    if (s->o.gzip) {
        b->work_rc = 0;
        if (uv_queue_work(s->loop, &b->work, gzip_work, gzip_after) < 0) {
            gzip_work(&b->work); /* cannot happen with a live loop; do it here */
            gzip_after(&b->work, 0);
        }
        return;
    }
    request_batch(s, b);
}

static void on_retry_timer(uv_timer_t *t)
{
    dispatch(container_of(t, struct sink, retry_timer));
}

/* Sends what may go now and arms the retry timer for what must wait. */
static void dispatch(struct sink *s)
{
    uint64_t now = uv_now(s->loop), wake = UINT64_MAX;
    struct blist due = { 0 };
    struct batch *b, *next;

    if (s->deadline_passed || s->finishing)
        return;
    s->depth++;
    for (b = s->delayed.head; b; b = next) {
        next = b->next;
        if (b->due <= now) {
            bl_remove(&s->delayed, b);
            bl_push(&due, b, false);
        } else if (b->due < wake) {
            wake = b->due;
        }
    }
    /* Batches sent again go before new ones, in their own order. */
    while ((b = due.tail)) {
        bl_remove(&due, b);
        b->state = B_READY;
        bl_push(&s->ready, b, true);
    }
    while (now >= s->gate_until && s->inflight.n < (size_t)s->o.concurrency && s->ready.head &&
           !s->deadline_passed) {
        b = s->ready.head;
        bl_remove(&s->ready, b);
        send_batch(s, b);
    }
    if (s->ready.head && now < s->gate_until && s->gate_until < wake)
        wake = s->gate_until;
    if (wake != UINT64_MAX)
        uv_timer_start(&s->retry_timer, on_retry_timer, wake > now ? wake - now : 0, 0);
    else
        uv_timer_stop(&s->retry_timer);
    s->depth--;
    maybe_resume(s);
    maybe_finish(s);
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
    finish(s, it, err == 0 ? SINK_DLQ : SINK_CANCELED);
    maybe_finish(s);
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
static void to_dlq(struct sink *s, struct item *it, const char *doc, size_t doc_len, int status,
                   const char *type, const char *reason)
{
    struct buf line;
    struct doc d;
    int rc;

    item_doc(it, &d);
    buf_init(&line, BUF_NOMAX);
    rc = dlq_format(&line, &d, status, type, reason, doc_len ? doc : NULL, doc_len, wall_ms());
    logc_warn((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
              "document %.*s in %s (seq %s) to the dead-letter file: %d %s: %.200s",
              (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index,
              it->seq[0] ? it->seq : "-", status, type ? type : "", reason ? reason : "");
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
        to_dlq(s, b->items[0], src, len, status, type, reason);
        batch_free(b);
        return;
    }
    a = batch_new(s);
    c = batch_new(s);
    for (size_t i = 0; a && c && i < b->n; i++)
        if (batch_take(i < half ? a : c, b->items[i], b) < 0)
            break;
    if (!a || !c || a->n + c->n != b->n) {
        batch_free(a);
        batch_free(c);
        retry_whole(s, b);
        return;
    }
    log_info("bulk of %zu actions (%zu bytes): %s: split in two", b->n, b->bytes, reason);
    batch_free(b);
    /* In flight, they were not checked against deletes that finished meanwhile. */
    if (drop_tombstoned(s, c)) {
        c->state = B_READY;
        bl_push(&s->ready, c, true);
    }
    if (drop_tombstoned(s, a)) {
        a->state = B_READY;
        bl_push(&s->ready, a, true);
    }
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
    struct batch *again = batch_new(s);
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
            tomb_add(s, it);
            deletes = true;
        }
        switch (ri->cls) {
        case BR_OK:       finish(s, it, SINK_INDEXED); break;
        case BR_OK_GONE:  finish(s, it, SINK_GONE); break;
        case BR_OK_STALE: finish(s, it, SINK_STALE); break;
        case BR_DLQ: {
            const char *src;
            size_t len;

            count_failure(s, it, ri);
            src = item_source(b, it, &len);
            to_dlq(s, it, src, len, ri->status, ri->type, ri->reason);
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
            if (s->deadline_passed || !again || batch_take(again, it, b) < 0) {
                finish(s, it, SINK_CANCELED); /* not finished: never checkpointed */
                break;
            }
            s->st.docs_retried++;
            if (++it->attempts > attempts)
                attempts = it->attempts;
            break;
        }
    }
    if (again && again->n) {
        uint64_t ms = retry_delay_ms(s, attempts - 1);

        log_debug("%zu of %zu actions to retry in %" PRIu64 " ms", again->n, b->n, ms);
        again->attempt = attempts;
        delay_batch(s, again, ms);
    } else {
        batch_free(again);
    }
    batch_free(b);
    /* Older actions for the ids just deleted, waiting here, never go out. */
    if (deletes && s->st.tombstones)
        drop_tombstoned_waiting(s);
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

static void on_bulk_done(struct http_req *req, int err, void *arg)
{
    struct batch *b = arg;
    struct sink *s = b->s;
    long status = err < 0 ? 0 : http_req_status(req);
    const struct buf *body = http_req_body(req);
    struct bulkresp r;
    enum sink_req_class cls = req_class(err, status);

    b->req = NULL;
    inflight_out(s, b);
    s->bytes_inflight -= b->bytes_all;
    buf_close(&b->gz);
    s->st.bulk_requests[cls]++;
    s->depth++;
    if (err == -ECANCELED && s->deadline_passed) {
        cancel_batch(s, b);
        goto out;
    }
    observe_latency(s, b);
    memset(&r, 0, sizeof(r));
    if (err < 0) {
        log_warn("bulk request of %zu actions failed: %s (%s)", b->n, strerror(-err),
                 http_req_error(req));
        retry_whole(s, b);
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
            retry_whole(s, b);
            break;
        }
        log_error("bulk request refused with HTTP %ld: check the credentials and the engine's "
                  "access policy; retrying", status);
        if (s->creds)
            creds_invalidate(s->creds);
        retry_whole(s, b);
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
        retry_whole(s, b);
        break;
    case BR_REQ_FATAL:
        log_error("bulk request refused with HTTP %ld (%s): the configuration or the engine "
                  "needs a fix; retrying", status, r.error);
        retry_whole(s, b);
        break;
    case BR_REQ_RETRY:
    default:
        if (r.blocked)
            block_request(s, &r);
        else
            log_warn("bulk request of %zu actions: HTTP %ld%s%s; retrying", b->n, status,
                     r.error[0] ? " " : "", r.error);
        retry_whole(s, b);
        break;
    }
    bulkresp_clear(&r);
out:
    s->depth--;
    dispatch(s);
}

/* ---- submit ---- */

static void on_flush_timer(uv_timer_t *t)
{
    struct sink *s = container_of(t, struct sink, flush_timer);

    close_open(s);
    dispatch(s);
}

/* b becomes the open batch; it goes at the latest flush_interval from now. */
static void start_open(struct sink *s, struct batch *b)
{
    s->open = b;
    /* The loop's clock was read before this turn's callbacks ran; a batch
     * opened late in a long turn still waits the full interval. */
    uv_update_time(s->loop);
    uv_timer_start(&s->flush_timer, on_flush_timer, (uint64_t)s->o.flush_interval_ms, 0);
}

/* The item's text is len bytes: it counts in the queue until reported. */
static void count_in(struct sink *s, struct item *it, size_t len)
{
    it->len = len;
    it->bytes = len;
    s->bytes_total += len;
    s->ndocs++;
}

/* The open batch, opened when there is none. */
static struct batch *open_batch(struct sink *s)
{
    struct batch *b;

    if (!s->open) {
        if (!(b = batch_new(s)))
            return NULL;
        start_open(s, b);
    }
    return s->open;
}

/* Of two actions on one _id, the one that is sent: the higher external
 * version, the later one on a tie or when either has none (0). */
static bool wins_over(const struct item *later, const struct item *earlier)
{
    return !later->version || !earlier->version || later->version >= earlier->version;
}

/* Adds it, whose text was just written at the end of the open batch's
 * body.  Of it and an earlier action on the same _id, the loser (see
 * wins_over) moves under the winner, which reports it when it finishes. */
static int add_open(struct sink *s, struct item *it)
{
    struct item **link, *old;
    struct batch *b = s->open;

    if (b->nlive > 0 && b->bytes + it->len > s->o.bulk_max_bytes) {
        /* It does not fit: it starts the next batch (one action moved). */
        struct batch *nb = batch_new(s);

        if (!nb || buf_append(&nb->body, b->body.ptr + it->off, it->len) < 0) {
            batch_free(nb);
            buf_truncate(&b->body, it->off);
            return -ENOMEM;
        }
        buf_truncate(&b->body, it->off);
        it->off = 0;
        close_open(s);
        start_open(s, b = nb);
    }
    if (batch_add(b, it) < 0) {
        buf_truncate(&b->body, it->off);
        return -ENOMEM;
    }
    link = &s->buckets[it->hash & (s->nbuckets - 1)];
    while (*link && !same_key(*link, it))
        link = &(*link)->hnext;
    old = *link;
    if (old && !wins_over(it, old)) {
        /* An older image submitted later (another stream, a replay): old stays. */
        b->items[it->slot] = NULL;
        b->nlive--;
        b->bytes -= it->len;
        it->next = old->sup;
        old->sup = it;
        old->bytes += it->len;
        if (b->body.len - b->bytes > s->o.bulk_max_bytes)
            batch_squeeze(b);
        return 0;
    }
    if (old) {
        /* old and everything it replaced now wait for it (it is fresh: no sup yet). */
        old->next = old->sup;
        old->sup = NULL;
        it->sup = old;
        it->bytes += old->bytes;
        b->items[old->slot] = NULL;
        b->nlive--;
        b->bytes -= old->len;
        it->hnext = old->hnext;
        old->hnext = NULL;
        /* A hot _id rewritten over and over: keep the dead text from piling up. */
        if (b->body.len - b->bytes > s->o.bulk_max_bytes)
            batch_squeeze(b);
    }
    *link = it;
    if (b->nlive >= s->o.bulk_max_actions || b->bytes >= s->o.bulk_max_bytes)
        close_open(s);
    return 0;
}

int sink_submit(struct sink *s, struct doc *d, void *owner, uint64_t ticket)
{
    struct item *it;
    struct batch *b;
    const char *nl;
    size_t mark;
    int rc;

    if (s->closing)
        return -ESHUTDOWN;
    if (!(it = item_new(s, d, owner, ticket)) || !(b = open_batch(s))) {
        item_free(it);
        return -ENOMEM;
    }
    /* Written once, where it will be sent from. */
    mark = b->body.len;
    rc = bulk_append(&b->body, d, s->o.version_type);
    if (rc == -ENOMEM) {
        item_free(it);
        return rc;
    }
    if (rc < 0) {
        /* A document the engine could never take: a poison record. */
        count_in(s, it, d->source.len);
        to_dlq(s, it, d->source.ptr, d->source.len, 0, "invalid_document", strerror(-rc));
        buf_close(&d->source);
        maybe_full(s);
        return 0;
    }
    buf_close(&d->source);
    it->off = mark;
    count_in(s, it, b->body.len - mark);
    nl = memchr(b->body.ptr + mark, '\n', it->len);
    it->src_off = nl ? (size_t)(nl - (b->body.ptr + mark)) + 1 : it->len;
    rc = add_open(s, it);
    if (rc < 0) {
        s->bytes_total -= it->len;
        s->ndocs--;
        item_free(it);
        return rc;
    }
    dispatch(s);
    maybe_full(s);
    return 0;
}

int sink_dead_letter(struct sink *s, const struct doc *d, json_t *raw, const char *type,
                     const char *reason, void *owner, uint64_t ticket)
{
    struct item *it;
    size_t len = 0;
    char *text;

    if (s->closing)
        return -ESHUTDOWN;
    it = item_new(s, d, owner, ticket);
    /* jsonx: the input as it came, NUL keys and lone surrogates included. */
    text = raw ? jsonx_dumps(raw, &len) : NULL;
    if (!it || (raw && !text)) {
        item_free(it);
        free(text);
        return -ENOMEM;
    }
    /* The whole input is the "document" of the entry; d keeps its own source. */
    count_in(s, it, len);
    to_dlq(s, it, text, it->len, 0, type, reason);
    free(text);
    return 0;
}

/* Valid UTF-8, as JSON strings must hold (surrogates and overlong forms
 * refused). */
static bool utf8_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                             : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp;

        if (!k || i + k > n || (k == 2 && c < 0xC2) || (k == 4 && c > 0xF4))
            return false;
        cp = k == 1 ? c : c & (0x7F >> k);
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += k;
    }
    return true;
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
    if (utf8_ok((const unsigned char *)text, len)) {
        rc = bulk_json_string(&doc, text, len);
    } else {
        struct buf b64;

        buf_init(&b64, BUF_NOMAX);
        rc = buf_puts(&b64, "base64:");
        if (rc == 0)
            rc = buf_reserve(&b64, 4 * (len / 3 + 1));
        if (rc == 0)
            b64.len += (size_t)EVP_EncodeBlock((unsigned char *)b64.ptr + b64.len,
                                               (const unsigned char *)text, (int)len);
        if (rc == 0)
            rc = bulk_json_string(&doc, b64.ptr, b64.len);
        buf_close(&b64);
    }
    it = rc == 0 ? item_new(s, d, owner, ticket) : NULL;
    if (!it) {
        buf_close(&doc);
        return -ENOMEM;
    }
    count_in(s, it, doc.len);
    to_dlq(s, it, doc.ptr, doc.len, 0, type, reason);
    buf_close(&doc);
    return 0;
}

bool sink_full(const struct sink *s)
{
    return s->full;
}

uint64_t sink_busy_at(const struct sink *s)
{
    return busy(s) ? uv_now(s->loop) : s->busy_at;
}

void sink_flush(struct sink *s)
{
    close_open(s);
    dispatch(s);
}

const struct sink_stats *sink_stats(const struct sink *s)
{
    struct sink_stats *st = (struct sink_stats *)&s->st;

    st->queued_bytes = s->bytes_total - s->bytes_inflight;
    st->inflight_bytes = s->bytes_inflight;
    st->queued_docs = s->ndocs;
    st->inflight_requests = s->inflight.n;
    st->blocked_indexes = s->nblocks;
    st->block_index = s->nblocks ? s->blocks[0].index ? s->blocks[0].index : "" : NULL;
    st->block_reason = s->nblocks ? s->blocks[0].reason : NULL;
    st->block_age_ms = s->nblocks ? uv_now(s->loop) - s->blocks[0].since : 0;
    return st;
}

/* ---- ping ---- */

static void on_ping_done(struct http_req *req, int err, void *arg)
{
    struct ping *p = arg;
    struct sink *s = p->s;
    long status = err < 0 ? 0 : http_req_status(req);
    int rc = err < 0 ? err : status >= 200 && status < 300 ? 0 : (int)status;

    if (p->prev)
        p->prev->next = p->next;
    else
        s->pings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->cb(p->arg, rc);
    free(p);
    maybe_finish(s);
}

static void ping_send(struct ping *p)
{
    int rc = http_send(p->s->http, p->req, on_ping_done, p);

    if (rc < 0) {
        p->req = NULL;
        on_ping_done(NULL, rc, p);
    }
}

static void on_creds_ping(const struct sigv4_key *key, int err, void *arg)
{
    struct ping *p = arg;
    struct sink *s = p->s;

    p->signing = false;
    if (p->canceled)
        err = -ECANCELED;
    else if (err == 0)
        err = httpsign_sigv4(p->req, key, s->o.sigv4_region, s->o.sigv4_service, time(NULL),
                            strcmp(s->o.sigv4_service, "aoss") == 0);
    if (err < 0) {
        http_req_free(p->req);
        p->req = NULL;
        on_ping_done(NULL, err, p);
        return;
    }
    ping_send(p);
}

int sink_ping(struct sink *s, void (*cb)(void *arg, int rc), void *arg)
{
    struct ping *p;
    int rc;

    if (s->closing)
        return -ESHUTDOWN;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->s = s;
    p->cb = cb;
    p->arg = arg;
    p->req = http_req_new("GET", s->ping_url);
    rc = p->req ? add_auth(s, p->req) : -ENOMEM;
    if (rc < 0) {
        http_req_free(p->req);
        free(p);
        return rc;
    }
    http_req_timeout(p->req, s->o.request_timeout_ms);
    p->next = s->pings;
    if (s->pings)
        s->pings->prev = p;
    s->pings = p;
    if (s->o.auth == SINK_AUTH_SIGV4) {
        p->signing = true;
        rc = creds_get(s->creds, on_creds_ping, p);
        if (rc < 0)
            on_creds_ping(NULL, rc, p);
        return 0;
    }
    ping_send(p);
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

static void maybe_finish(struct sink *s)
{
    if (!s->closing || s->finishing || s->depth > 0)
        return;
    if (s->inflight.n || s->pings || s->open || s->ready.head || s->delayed.head)
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
    struct ping *p;
    bool again;

    log_warn("sink: stop deadline reached; %zu documents not finished", s->ndocs);
    s->deadline_passed = true;
    s->depth++;
    uv_timer_stop(&s->retry_timer);
    close_open(s);
    while ((b = s->ready.head)) {
        bl_remove(&s->ready, b);
        cancel_batch(s, b);
    }
    while ((b = s->delayed.head)) {
        bl_remove(&s->delayed, b);
        cancel_batch(s, b);
    }
    /* http_cancel runs the callback before it returns, which unlinks b. */
    do {
        again = false;
        for (b = s->inflight.head; b; b = b->next) {
            if (b->state == B_INFLIGHT && b->req) {
                http_cancel(b->req);
                again = true;
                break;
            }
            if (b->state == B_SIGNING && !b->canceled) {
                b->canceled = true;
                s->bytes_inflight -= b->bytes_all;
                for (size_t i = 0; i < b->n; i++)
                    finish(s, b->items[i], SINK_CANCELED);
                b->n = 0;
            }
        }
    } while (again);
    do {
        again = false;
        for (p = s->pings; p; p = p->next) {
            if (p->req && !p->signing) {
                http_cancel(p->req);
                again = true;
                break;
            }
            p->canceled = true;
        }
    } while (again);
    s->depth--;
    maybe_finish(s);
}

void sink_close(struct sink *s, long deadline_ms, void (*closed)(void *arg), void *arg)
{
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    close_open(s);
    uv_timer_start(&s->deadline_timer, on_deadline, deadline_ms > 0 ? (uint64_t)deadline_ms : 0,
                   0);
    dispatch(s);
}

/* ---- setup ---- */

static char *url_join(const char *base, const char *path, const char *query)
{
    struct buf b;
    static const char hex[] = "0123456789ABCDEF";

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, base);
    buf_puts(&b, path);
    if (query) {
        buf_putc(&b, '?');
        for (const char *q = query; *q; q++) {
            unsigned char c = (unsigned char)*q;

            /* filter_path=a,b.*.c: escape all but the unreserved and '=' so
             * the URL and its SigV4 canonical form agree. */
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == '~' || c == '=') {
                buf_putc(&b, (char)c);
            } else {
                buf_putc(&b, '%');
                buf_putc(&b, hex[c >> 4]);
                buf_putc(&b, hex[c & 15]);
            }
        }
    }
    return buf_take(&b);
}

static char *make_authz(const struct sink_opts *o)
{
    struct buf plain, out;
    char *res = NULL;

    buf_init(&plain, BUF_NOMAX);
    buf_init(&out, BUF_NOMAX);
    if (o->auth == SINK_AUTH_APIKEY) {
        if (buf_printf(&out, "ApiKey %s", o->api_key ? o->api_key : "") == 0)
            res = buf_take(&out);
    } else if (o->auth == SINK_AUTH_BASIC) {
        if (buf_printf(&plain, "%s:%s", o->username ? o->username : "",
                       o->password ? o->password : "") == 0 &&
            buf_puts(&out, "Basic ") == 0 && buf_reserve(&out, 4 * (plain.len / 3 + 1)) == 0) {
            int n = EVP_EncodeBlock((unsigned char *)out.ptr + out.len,
                                    (const unsigned char *)plain.ptr, (int)plain.len);

            out.len += (size_t)n;
            out.ptr[out.len] = '\0';
            res = buf_take(&out);
        }
    }
    if (plain.ptr)
        OPENSSL_cleanse(plain.ptr, plain.len);
    if (out.ptr)
        OPENSSL_cleanse(out.ptr, out.len);
    buf_close(&plain);
    buf_close(&out);
    return res;
}

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
    if (!s->o.max_queue_bytes)
        s->o.max_queue_bytes = (size_t)s->o.concurrency * 2 * s->o.bulk_max_bytes;
    /* Secrets live only in authz; the strings read later are copied. */
    s->o.password = s->o.api_key = s->o.username = s->o.dlq_path = s->o.url = NULL;
    s->o.sigv4_service = s->service = o->sigv4_service ? strdup(o->sigv4_service) : NULL;
    s->o.sigv4_region = s->region = o->sigv4_region ? strdup(o->sigv4_region) : NULL;
    s->o.version_type = s->version_type = o->version_type ? strdup(o->version_type) : NULL;
    len = strlen(o->url);
    while (len > 0 && o->url[len - 1] == '/')
        len--;
    buf_init(&q, BUF_NOMAX);
    if (buf_printf(&q, "filter_path=%s", bulk_filter_path()) == 0 &&
        (s->url = strndup(o->url, len))) {
        s->bulk_url = url_join(s->url, "/_bulk", q.ptr);
        s->ping_url = url_join(s->url, "/", NULL);
    }
    buf_close(&q);
    if (!s->bulk_url || !s->ping_url || (o->sigv4_service && !s->service) ||
        (o->sigv4_region && !s->region) || (o->version_type && !s->version_type))
        goto fail;
    if ((o->auth == SINK_AUTH_BASIC || o->auth == SINK_AUTH_APIKEY) && !(s->authz = make_authz(o)))
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
    while (s->thead) {
        struct tomb *t = s->thead;

        s->thead = t->next;
        free(t);
    }
    free(s->tbuckets);
    free(s->buckets);
    free(s->failures);
    free(s->dlq_reasons);
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
