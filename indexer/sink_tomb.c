/* sink_tomb — deletes that finished, and the older actions they stop.
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
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "indexer/sink_int.h"

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

static struct tomb *oldest(const struct sink *s)
{
    return list_first_entry(&s->tombs, struct tomb, fifo);
}

static void tomb_remove(struct sink *s, struct tomb *t)
{
    struct tomb **link = &s->tbuckets[t->hash & (s->ntbuckets - 1)];

    while (*link != t)
        link = &(*link)->hnext;
    *link = t->hnext;
    list_remove(&t->fifo);
    s->st.tombstones--;
    free(t);
}

static void on_tomb_timer(uv_timer_t *timer);

/* Drops the expired tombstones and arms the timer for the next expiry. */
static void tomb_prune(struct sink *s)
{
    uint64_t now = uv_now(s->loop);
    struct tomb *t;

    while ((t = oldest(s)) && t->expires <= now)
        tomb_remove(s, t);
    if ((t = oldest(s)) && !s->finishing)
        uv_timer_start(&s->tomb_timer, on_tomb_timer, t->expires - now, 0);
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
    struct list *pos;

    list_foreach(pos, &s->tombs) {
        struct tomb *t = list_entry(pos, struct tomb, fifo);

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
void sink_tomb_add(struct sink *s, const struct item *it)
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
        list_remove(&t->fifo);
    } else {
        if (s->st.tombstones >= tomb_max(s)) {
            tomb_remove(s, oldest(s));
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
    list_push_tail(&s->tombs, &t->fifo);
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
