/* sink_tomb — deletes that finished, and the older actions they stop.
 *
 * Tombstones: (index, _id) -> the version of the newest delete that
 * finished there, oldest (re)written first, so the oldest is the first to
 * expire (one timer, armed at the oldest's expiry) and the one evicted when
 * the table is full.  A batch is checked against them whenever it joins
 * the ready or delayed list (closing, a retry, a split), and the ready and
 * delayed batches again after a reply that added one; in-flight actions
 * are checked when they come back for a retry.
 *
 * Memory: a delete-heavy stream keeps tombstone_max of them (32,768 by
 * default) for ten minutes, so they live in a base/fpmap: 48 bytes each
 * plus 4 to 8 in the buckets, the (index, _id) kept as its keyed SipHash
 * rather than as text (an _id may be 2 kB), the memory given back once
 * none is left.
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

/* The item's key in s->tombs: index, NUL, id. */
static struct fpkey tomb_key(const struct item *it)
{
    const char *index = it->index ? it->index : "";

    return (struct fpkey){ .a = index, .alen = strlen(index) + 1, .b = it->id,
                           .blen = it->id_len, .hash = it->hash };
}

static struct tomb *tomb_at(const struct sink *s, uint32_t i)
{
    return fpmap_value(&s->tombs, i);
}

static void on_tomb_timer(uv_timer_t *timer);

/* Drops the expired tombstones and arms the timer for the next expiry. */
static void tomb_prune(struct sink *s)
{
    uint64_t now = uv_now(s->loop);
    uint32_t i;

    while ((i = fpmap_oldest(&s->tombs)) && tomb_at(s, i)->expires <= now)
        fpmap_remove(&s->tombs, i);
    if ((i = fpmap_oldest(&s->tombs)) && !s->finishing)
        uv_timer_start(&s->tomb_timer, on_tomb_timer, tomb_at(s, i)->expires - now, 0);
    else
        uv_timer_stop(&s->tomb_timer);
}

static void on_tomb_timer(uv_timer_t *timer)
{
    tomb_prune(container_of(timer, struct sink, tomb_timer));
}

/* A delete of it finished (2xx or 404): remember its version.  Out of
 * memory only loses the protection, which is logged. */
void sink_tomb_add(struct sink *s, const struct item *it)
{
    struct fpkey k = tomb_key(it);
    struct tomb *t;
    uint32_t i;

    if (!it->version || s->o.dry_run)
        return;
    tomb_prune(s);
    if ((i = fpmap_find(&s->tombs, &k))) {
        t = tomb_at(s, i);
        if (it->version > t->version)
            t->version = it->version;
        fpmap_touch(&s->tombs, i);
    } else {
        if (fpmap_count(&s->tombs) >= tomb_max(s)) {
            fpmap_remove(&s->tombs, fpmap_oldest(&s->tombs));
            s->st.tombstone_evictions++;
        }
        if (!(i = fpmap_add(&s->tombs, &k))) {
            log_error("out of memory: the delete of %.*s in %s is not remembered",
                      (int)(it->id_len > 128 ? 128 : it->id_len), it->id, it->index);
            return;
        }
        t = tomb_at(s, i);
        t->version = it->version;
    }
    t->expires = uv_now(s->loop) + (uint64_t)tomb_ttl_ms(s);
    tomb_prune(s); /* arms the timer */
}

/* The action is at or below the version of a delete that finished. */
static bool tomb_covers(struct sink *s, const struct item *it)
{
    struct fpkey k = tomb_key(it);
    uint32_t i;

    if (!it->version || !fpmap_count(&s->tombs) || !(i = fpmap_find(&s->tombs, &k)))
        return false;
    return tomb_at(s, i)->expires > uv_now(s->loop) && it->version <= tomb_at(s, i)->version;
}

/* Takes out of b (not open, not in flight) the actions a tombstone covers:
 * they are reported SINK_STALE, never sent.  False when nothing is left
 * (b is freed; the caller has taken it out of its list). */
bool sink_drop_tombstoned(struct sink *s, struct batch *b)
{
    bool dropped = false;

    for (size_t i = 0; fpmap_count(&s->tombs) && i < b->n; i++) {
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
