/* sink_tomb — deletes that finished, and the older actions they stop.
 *
 * Tombstones: (index, _id) -> the version of the newest delete that
 * finished there, with a FIFO in the order they were (re)written, so the
 * oldest is at the head: it is the first to expire (one timer, armed at the
 * head's expiry) and the one evicted when the table is full.  A batch is
 * checked against them whenever it joins the ready or delayed list
 * (closing, a retry, a split), and the ready and delayed batches again
 * after a reply that added one; in-flight actions are checked when they
 * come back for a retry.
 *
 * Memory: a delete-heavy stream keeps tombstone_max of them (32,768 by
 * default) for ten minutes, so each is 48 bytes in one array (slots reused,
 * the array given back once it empties) plus 4 to 8 in the buckets, rather
 * than an allocation holding the _id (which may be 2 kB).  The (index, _id)
 * is kept as its SipHash-2-4-128 under a key drawn at random per process:
 * two keys match by chance with probability 2^-128, far below a memory
 * error's, and no input can be made to collide without the key.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/log.h"
#include "base/siphash.h"
#include "base/util.h"
#include "indexer/sink_int.h"

#define TOMBS_MIN 64       /* slots and buckets at first */

/* ---- tombstones ---- */

static long tomb_ttl_ms(const struct sink *s)
{
    return s->o.tombstone_ttl_ms > 0 ? s->o.tombstone_ttl_ms : SINK_TOMBSTONE_TTL_MS;
}

static size_t tomb_max(const struct sink *s)
{
    return s->o.tombstone_max > 0 ? s->o.tombstone_max : SINK_TOMBSTONE_MAX;
}

static void fingerprint(const struct tombs *ts, const struct item *it, uint64_t fp[2])
{
    const char *index = it->index ? it->index : "";
    struct siphash h;
    uint8_t out[16];

    siphash_init(&h, ts->key);
    siphash_update(&h, index, strlen(index) + 1); /* with its NUL: the two stay apart */
    siphash_update(&h, it->id, it->id_len);
    siphash_final128(&h, out);
    memcpy(fp, out, sizeof(out));
}

/* The slot remembering the item's (index, _id), or 0.  The fingerprint is taken
 * only when a slot in its bucket has its hash. */
static uint32_t tomb_find(const struct tombs *ts, const struct item *it)
{
    uint64_t fp[2];
    bool have = false;

    if (!ts->n)
        return 0;
    for (uint32_t i = ts->buckets[it->hash & (ts->nbuckets - 1)]; i; i = ts->v[i].hnext) {
        if (ts->v[i].hash != it->hash)
            continue;
        if (!have) {
            fingerprint(ts, it, fp);
            have = true;
        }
        if (ts->v[i].fp[0] == fp[0] && ts->v[i].fp[1] == fp[1])
            return i;
    }
    return 0;
}

static void fifo_unlink(struct tombs *ts, uint32_t i)
{
    struct tomb *t = &ts->v[i];

    if (t->prev)
        ts->v[t->prev].next = t->next;
    else
        ts->head = t->next;
    if (t->next)
        ts->v[t->next].prev = t->prev;
    else
        ts->tail = t->prev;
    t->prev = t->next = 0;
}

static void fifo_push_tail(struct tombs *ts, uint32_t i)
{
    ts->v[i].prev = ts->tail;
    ts->v[i].next = 0;
    if (ts->tail)
        ts->v[ts->tail].next = i;
    else
        ts->head = i;
    ts->tail = i;
}

void sink_tombs_free(struct sink *s)
{
    free(s->tombs.v);
    free(s->tombs.buckets);
    s->tombs.v = NULL;
    s->tombs.buckets = NULL;
    s->tombs.cap = s->tombs.n = s->tombs.top = s->tombs.nbuckets = 0;
    s->tombs.head = s->tombs.tail = s->tombs.free = 0;
}

static void tomb_remove(struct sink *s, uint32_t i)
{
    struct tombs *ts = &s->tombs;
    uint32_t *link = &ts->buckets[ts->v[i].hash & (ts->nbuckets - 1)];

    while (*link != i)
        link = &ts->v[*link].hnext;
    *link = ts->v[i].hnext;
    fifo_unlink(ts, i);
    ts->v[i].next = ts->free;
    ts->free = i;
    ts->n--;
    s->st.tombstones--;
    if (!ts->n) /* a burst of deletes is over: give its memory back */
        sink_tombs_free(s);
}

static void on_tomb_timer(uv_timer_t *timer);

/* Drops the expired tombstones and arms the timer for the next expiry. */
static void tomb_prune(struct sink *s)
{
    struct tombs *ts = &s->tombs;
    uint64_t now = uv_now(s->loop);

    while (ts->head && ts->v[ts->head].expires <= now)
        tomb_remove(s, ts->head);
    if (ts->head && !s->finishing)
        uv_timer_start(&s->tomb_timer, on_tomb_timer, ts->v[ts->head].expires - now, 0);
    else
        uv_timer_stop(&s->tomb_timer);
}

static void on_tomb_timer(uv_timer_t *timer)
{
    tomb_prune(container_of(timer, struct sink, tomb_timer));
}

/* Twice the buckets, every slot in use linked again. */
static int buckets_grow(struct tombs *ts)
{
    uint32_t n = ts->nbuckets ? ts->nbuckets * 2 : TOMBS_MIN;
    uint32_t *b = calloc(n, sizeof(*b));

    if (!b)
        return -ENOMEM;
    for (uint32_t i = ts->head; i; i = ts->v[i].next) {
        ts->v[i].hnext = b[ts->v[i].hash & (n - 1)];
        b[ts->v[i].hash & (n - 1)] = i;
    }
    free(ts->buckets);
    ts->buckets = b;
    ts->nbuckets = n;
    return 0;
}

/* A free slot (1-based), or 0 out of memory. */
static uint32_t slot_new(struct tombs *ts)
{
    uint32_t i = ts->free;

    if (i) {
        ts->free = ts->v[i].next;
        return i;
    }
    if (ts->top == ts->cap) {
        uint32_t cap = ts->cap ? ts->cap * 2 : TOMBS_MIN;
        struct tomb *v = cap > ts->cap ? realloc(ts->v, ((size_t)cap + 1) * sizeof(*v)) : NULL;

        if (!v)
            return 0;
        ts->v = v;
        ts->cap = cap;
    }
    return ++ts->top;
}

static bool keyed(struct tombs *ts)
{
    if (!ts->keyed && getrandom(ts->key, sizeof(ts->key), 0) != (ssize_t)sizeof(ts->key) &&
        RAND_bytes(ts->key, sizeof(ts->key)) != 1)
        return false;
    ts->keyed = true;
    return true;
}

/* A delete of it finished (2xx or 404): remember its version.  Out of
 * memory only loses the protection, which is logged. */
void sink_tomb_add(struct sink *s, const struct item *it)
{
    struct tombs *ts = &s->tombs;
    struct tomb *t;
    uint32_t i;

    if (!it->version || s->o.dry_run)
        return;
    tomb_prune(s);
    i = tomb_find(ts, it);
    if (i) {
        t = &ts->v[i];
        if (it->version > t->version)
            t->version = it->version;
        fifo_unlink(ts, i);
    } else {
        if (s->st.tombstones >= tomb_max(s)) {
            tomb_remove(s, ts->head);
            s->st.tombstone_evictions++;
        }
        if (!keyed(ts) || (ts->n >= ts->nbuckets && buckets_grow(ts) < 0) ||
            !(i = slot_new(ts))) {
            log_error("out of memory: the delete of %.*s in %s is not remembered",
                      (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index);
            return;
        }
        ts->n++;
        t = &ts->v[i];
        fingerprint(ts, it, t->fp);
        t->hash = it->hash;
        t->version = it->version;
        t->hnext = ts->buckets[t->hash & (ts->nbuckets - 1)];
        ts->buckets[t->hash & (ts->nbuckets - 1)] = i;
        s->st.tombstones++;
    }
    t->expires = uv_now(s->loop) + (uint64_t)tomb_ttl_ms(s);
    fifo_push_tail(ts, i);
    tomb_prune(s); /* arms the timer */
}

/* The action is at or below the version of a delete that finished. */
static bool tomb_covers(struct sink *s, const struct item *it)
{
    uint32_t i;

    if (!it->version || !s->st.tombstones)
        return false;
    i = tomb_find(&s->tombs, it);
    return i && s->tombs.v[i].expires > uv_now(s->loop) && it->version <= s->tombs.v[i].version;
}

/* Takes out of b (not open, not in flight) the actions a tombstone covers:
 * they are reported SINK_STALE, never sent.  False when nothing is left
 * (b is freed; the caller has taken it out of its list). */
bool sink_drop_tombstoned(struct sink *s, struct batch *b)
{
    bool dropped = false;

    for (size_t i = 0; s->st.tombstones && i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it || !tomb_covers(s, it))
            continue;
        sink_batch_drop_item(b, i);
        dropped = true;
        s->st.docs_tombstoned++;
        logc_debug((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
                   "%s %.*s in %s at version %" PRIu64 " not sent: a newer delete finished",
                   it->op == DOC_DELETE ? "delete" : "index",
                   (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index, it->version);
        sink_finish(s, it, SINK_STALE);
    }
    return sink_batch_squeeze_or_free(b, dropped);
}

/* After deletes finished: the waiting batches lose what they now cover.
 * Each list is taken whole first: a done callback may submit, which can
 * add batches to them meanwhile. */
void sink_drop_tombstoned_waiting(struct sink *s)
{
    struct blist *lists[] = { &s->ready, &s->delayed };
    static const enum bstate states[] = { B_READY, B_DELAYED };

    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        struct blist todo;
        struct batch *b;

        blist_init(&todo);
        while ((b = blist_first(lists[l]))) {
            sink_batch_set_state(b, B_HELD, false);
            sink_held_push(&todo, b);
        }
        while ((b = blist_first(&todo))) {
            sink_held_remove(&todo, b);
            if (sink_drop_tombstoned(s, b))
                sink_batch_set_state(b, states[l], false);
        }
    }
}
