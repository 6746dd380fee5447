/* sink_batch — submitting, items, batches and the queues they wait in.
 *
 * An item is one submitted document, already rendered as NDJSON (its source
 * is freed once rendered).  Items gather in the open batch; a batch closes on
 * actions, bytes or the flush timer and waits in `ready` for one of the
 * `concurrency` request slots.  A batch that must be sent again waits in
 * `delayed` until its due time.  After a request-level failure the whole sink
 * holds back until `gate_until` (capped exponential backoff, full jitter), so
 * an engine that is down sees no tight loop; per-item retries do not close
 * the gate, they only delay their own items.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "base/log.h"
#include "base/util.h"
#include "indexer/bulk.h"
#include "indexer/sink_int.h"

/* ---- lists ---- */

static void bl_push(struct blist *l, struct batch *b, bool front)
{
    l->n++;
    if (front)
        list_push_head(&l->l, &b->link);
    else
        list_push_tail(&l->l, &b->link);
}

static void bl_remove(struct blist *l, struct batch *b)
{
    l->n--;
    list_remove(&b->link);
}

/* ---- batch states ---- */

static const char *const bstate_names[] = {
    [B_OPEN] = "open",         [B_READY] = "ready",       [B_DELAYED] = "delayed",
    [B_SIGNING] = "signing",   [B_INFLIGHT] = "inflight", [B_CANCELED] = "canceled",
    [B_HELD] = "held",
};
_Static_assert(ARRAY_SIZE(bstate_names) == B_NSTATES, "a name per batch state");

/* The sink's list that holds a batch in state st; NULL for none. */
static struct blist *list_of(struct sink *s, enum bstate st)
{
    switch (st) {
    case B_READY:    return &s->ready;
    case B_DELAYED:  return &s->delayed;
    case B_SIGNING:
    case B_INFLIGHT:
    case B_CANCELED: return &s->inflight;
    default:         return NULL;
    }
}

void sink_batch_set_state(struct batch *b, enum bstate to, bool front)
{
    struct sink *s = b->s;
    struct blist *from = list_of(s, b->state), *l = list_of(s, to);

    assert(to < B_NSTATES);
    if (b->state != to)
        log_debug("batch %" PRIu64 ": %s -> %s", b->id, bstate_names[b->state], bstate_names[to]);
    if (from != l) {
        if (from)
            bl_remove(from, b);
        if (l)
            bl_push(l, b, front);
    }
    b->state = to;
}

/* A caller's own list of B_HELD batches (the sink's lists are written by
 * sink_batch_set_state only). */
void sink_held_push(struct blist *l, struct batch *b)
{
    assert(b->state == B_HELD);
    bl_push(l, b, false);
}

void sink_held_remove(struct blist *l, struct batch *b)
{
    assert(b->state == B_HELD);
    bl_remove(l, b);
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
struct item *sink_item_new(struct sink *s, const struct doc *d, void *owner, uint64_t ticket)
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

void sink_item_free(struct item *it)
{
    free(it);
}

/* The item's document as the dead-letter file describes it (no source). */
void sink_item_doc(const struct item *it, struct doc *d)
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

struct batch *sink_batch_new(struct sink *s)
{
    struct batch *b = calloc(1, sizeof(*b));

    if (b) {
        b->s = s;
        b->id = s->nbatches++;
        buf_init(&b->body, BUF_NOMAX);
        buf_init(&b->gz, BUF_NOMAX);
    }
    return b;
}

void sink_batch_free(struct batch *b)
{
    if (!b)
        return;
    assert(!list_of(b->s, b->state));
    buf_close(&b->body);
    buf_close(&b->gz);
    free(b->items);
    free(b);
}

/* Room in b->items for n more. */
static int batch_reserve(struct batch *b, size_t n)
{
    size_t ncap = b->cap ? b->cap : 16;
    struct item **p;

    while (ncap < b->n + n)
        ncap *= 2;
    if (ncap == b->cap)
        return 0;
    p = realloc(b->items, ncap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    b->items = p;
    b->cap = ncap;
    return 0;
}

/* Takes the item into the batch; its text is already in b->body at it->off. */
static int batch_add(struct batch *b, struct item *it)
{
    if (batch_reserve(b, 1) < 0)
        return -ENOMEM;
    it->slot = b->n;
    b->items[b->n++] = it;
    b->nlive++;
    b->bytes += it->len;
    b->bytes_all += it->bytes;
    return 0;
}

/* Copies the item's text from the body of from (a batch being retired: a
 * retry of some of its items, a 413 split) to the end of b's, and takes it. */
int sink_batch_take(struct batch *b, struct item *it, const struct batch *from)
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
void sink_batch_squeeze(struct batch *b)
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

struct item *sink_batch_drop_item(struct batch *b, size_t i)
{
    struct item *it = b->items[i];

    b->items[i] = NULL;
    b->nlive--;
    b->bytes -= it->len;
    b->bytes_all -= it->bytes;
    return it;
}

bool sink_batch_squeeze_or_free(struct batch *b, bool dropped)
{
    if (dropped)
        sink_batch_squeeze(b);
    if (b->n == 0) {
        sink_batch_free(b);
        return false;
    }
    return true;
}

/* The open batch leaves the hash and its holes; it joins the ready queue. */
void sink_close_open(struct sink *s)
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
    sink_batch_squeeze(b);
    if (!sink_drop_tombstoned(s, b))
        return;
    sink_batch_set_state(b, B_READY, false);
}

/* ---- backoff ---- */

uint64_t sink_retry_delay_ms(const struct sink *s, unsigned n)
{
    return (uint64_t)backoff_ms(s->o.backoff_base_ms, s->o.max_backoff_ms, n);
}

void sink_delay_batch(struct sink *s, struct batch *b, uint64_t ms)
{
    buf_close(&b->gz);
    if (!sink_drop_tombstoned(s, b))
        return;
    b->due = uv_now(s->loop) + ms;
    sink_batch_set_state(b, B_DELAYED, false);
}

/* A request-level failure: the batch goes again after a backoff, and the
 * sink sends nothing before then. */
void sink_retry_whole(struct sink *s, struct batch *b)
{
    uint64_t ms;

    if (s->deadline_passed) {
        sink_cancel_batch(s, b);
        return;
    }
    ms = sink_retry_delay_ms(s, s->fail_streak);
    s->fail_streak++;
    s->st.failing = true;
    s->st.retries++;
    b->attempt++;
    if (uv_now(s->loop) + ms > s->gate_until)
        s->gate_until = uv_now(s->loop) + ms;
    log_debug("bulk of %zu actions: retry in %" PRIu64 " ms (failure %u in a row)", b->n, ms,
              s->fail_streak);
    sink_delay_batch(s, b, ms);
}

static void on_retry_timer(uv_timer_t *t)
{
    sink_dispatch(container_of(t, struct sink, retry_timer));
}

/* Sends what may go now and arms the retry timer for what must wait. */
void sink_dispatch(struct sink *s)
{
    uint64_t now = uv_now(s->loop), wake = UINT64_MAX;
    struct batch *b, *prev;

    if (s->deadline_passed || s->finishing)
        return;
    s->depth++;
    /* Batches sent again go before new ones, in their own order: from the
     * last, each due one goes to the head of ready. */
    for (b = blist_last(&s->delayed); b; b = prev) {
        prev = blist_prev(&s->delayed, b);
        if (b->due <= now)
            sink_batch_set_state(b, B_READY, true);
        else if (b->due < wake)
            wake = b->due;
    }
    /* Held while closing: nothing waiting will go out; it is reported now
     * rather than at the deadline. */
    while (s->held && s->closing && (b = blist_first(&s->ready) ? blist_first(&s->ready) : blist_first(&s->delayed))) {
        sink_batch_set_state(b, B_HELD, false);
        sink_cancel_batch(s, b);
    }
    while (!s->held && now >= s->gate_until && s->inflight.n < (size_t)s->o.concurrency &&
           (b = blist_first(&s->ready)) && !s->deadline_passed) {
        sink_batch_set_state(b, B_HELD, false);
        sink_send_batch(s, b);
    }
    if (!s->held && blist_first(&s->ready) && now < s->gate_until && s->gate_until < wake)
        wake = s->gate_until;
    if (wake != UINT64_MAX)
        uv_timer_start(&s->retry_timer, on_retry_timer, wake > now ? wake - now : 0, 0);
    else
        uv_timer_stop(&s->retry_timer);
    if (s->held)
        sink_maybe_full(s);
    s->depth--;
    sink_maybe_resume(s);
    sink_maybe_finish(s);
}

/* ---- the open batch ---- */

static void on_flush_timer(uv_timer_t *t)
{
    struct sink *s = container_of(t, struct sink, flush_timer);

    sink_close_open(s);
    sink_dispatch(s);
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
void sink_count_in(struct sink *s, struct item *it, size_t len)
{
    it->len = len;
    it->bytes = len;
    s->bytes_total += len;
    s->ndocs++;
}

/* The open batch, opened when there is none. */
struct batch *sink_open_batch(struct sink *s)
{
    struct batch *b;

    if (!s->open) {
        if (!(b = sink_batch_new(s)))
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

/* it, already in the open batch b, against an earlier action on the same
 * _id: the loser (see wins_over) moves under the winner, which reports it
 * when it finishes. */
static void add_key(struct sink *s, struct batch *b, struct item *it)
{
    struct item **link, *old;

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
            sink_batch_squeeze(b);
        return;
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
            sink_batch_squeeze(b);
    }
    *link = it;
}

int sink_add_open(struct sink *s, struct item **its, size_t n)
{
    struct batch *b = s->open;
    size_t len = 0, off0 = its[0]->off;

    for (size_t i = 0; i < n; i++)
        len += its[i]->len;
    if (b->nlive > 0 &&
        (b->bytes + len > s->o.bulk_max_bytes || b->nlive + n > s->o.bulk_max_actions)) {
        /* They do not fit: they start the next batch (their text moved). */
        struct batch *nb = sink_batch_new(s);

        if (!nb || buf_append(&nb->body, b->body.ptr + off0, len) < 0) {
            sink_batch_free(nb);
            buf_truncate(&b->body, off0);
            return -ENOMEM;
        }
        buf_truncate(&b->body, off0);
        for (size_t i = 0; i < n; i++)
            its[i]->off -= off0;
        sink_close_open(s);
        start_open(s, b = nb);
    }
    if (batch_reserve(b, n) < 0) {
        buf_truncate(&b->body, its[0]->off);
        return -ENOMEM;
    }
    /* All in the batch before any may squeeze it: a squeeze keeps only the
     * text of the batch's items. */
    for (size_t i = 0; i < n; i++)
        batch_add(b, its[i]);
    for (size_t i = 0; i < n; i++)
        add_key(s, b, its[i]);
    if (b->nlive >= s->o.bulk_max_actions || b->bytes >= s->o.bulk_max_bytes)
        sink_close_open(s);
    return 0;
}

/* ---- submit: the action written into the open batch ---- */

/* The text just written at mark..b->body.len is the item's. */
static void place(struct sink *s, struct item *it, const struct batch *b, size_t mark, size_t end)
{
    const char *nl;

    it->off = mark;
    sink_count_in(s, it, end - mark);
    nl = memchr(b->body.ptr + mark, '\n', it->len);
    it->src_off = nl ? (size_t)(nl - (b->body.ptr + mark)) + 1 : it->len;
}

/* The mirror's copy of d, written after the live one (its text at the end
 * of b's body); NULL when out of memory (the body left as it was). */
static struct item *mirror_copy(struct sink *s, struct doc *d, const char *to, struct batch *b,
                                void *owner, uint64_t ticket)
{
    const char *live = d->index;
    size_t mark = b->body.len;
    struct item *mt;
    int rc;

    d->index = to;
    rc = bulk_append(&b->body, d, s->o.version_type);
    mt = rc == 0 ? sink_item_new(s, d, owner, ticket) : NULL;
    d->index = live;
    if (!mt) {
        buf_truncate(&b->body, mark);
        return NULL;
    }
    mt->is_mirror = true;
    mt->off = mark;
    return mt;
}

int sink_submit(struct sink *s, struct doc *d, void *owner, uint64_t ticket)
{
    const char *to = sink_mirror_of(s, d->index);
    struct item *its[2] = { NULL, NULL };
    struct pair *p = NULL;
    struct batch *b;
    size_t mark, n = 1;
    int rc;

    if (s->closing)
        return -ESHUTDOWN;
    if (!(its[0] = sink_item_new(s, d, owner, ticket)) || !(b = sink_open_batch(s))) {
        sink_item_free(its[0]);
        return -ENOMEM;
    }
    if (sink_conflicts_shape(s, d) < 0) {
        sink_item_free(its[0]);
        return -ENOMEM;
    }
    /* Written once, where it will be sent from. */
    mark = b->body.len;
    rc = bulk_append(&b->body, d, s->o.version_type);
    if (rc == -ENOMEM) {
        sink_item_free(its[0]);
        return rc;
    }
    if (rc < 0) {
        /* A document the engine could never take: a poison record. */
        sink_count_in(s, its[0], d->source.len);
        sink_to_dlq(s, its[0], d->source.ptr, d->source.len, 0, "invalid_document",
                    strerror(-rc));
        buf_close(&d->source);
        sink_maybe_full(s);
        return 0;
    }
    if (to) {
        size_t end = b->body.len;

        if (!(p = calloc(1, sizeof(*p))) ||
            !(its[1] = mirror_copy(s, d, to, b, owner, ticket))) {
            free(p);
            buf_truncate(&b->body, mark);
            sink_item_free(its[0]);
            return -ENOMEM;
        }
        *p = (struct pair){ .owner = owner, .ticket = ticket, .pending = 2 };
        its[0]->pair = its[1]->pair = p;
        place(s, its[0], b, mark, end);
        place(s, its[1], b, end, b->body.len);
        n = 2;
    } else {
        place(s, its[0], b, mark, b->body.len);
    }
    buf_close(&d->source);
    rc = sink_add_open(s, its, n);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            s->bytes_total -= its[i]->len;
            s->ndocs--;
            sink_item_free(its[i]);
        }
        free(p);
        return rc;
    }
    if (to)
        sink_mirror_note(s, d->table);
    sink_dispatch(s);
    sink_maybe_full(s);
    return 0;
}
