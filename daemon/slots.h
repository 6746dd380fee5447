/* slots — the GetRecords read slots of the process: how many GetRecords
 * are in flight over all shards ([daemon] read_concurrency), and the
 * shards waiting for one, first come first served.  A reply (up to 1 MB)
 * lands in the sink's queue whatever its fill, so an unbounded number would
 * let a thousand shards pass max_queue_bytes by a page each.  One per
 * process (struct app); a waiter is a member of what waits (the shard). */
#ifndef DDB2ES_SLOTS_H
#define DDB2ES_SLOTS_H

#include <stdbool.h>

#include "base/list.h"

struct slots;

struct slots_waiter {
    struct list link; /* in the queue, oldest first, while queued */
    bool queued;
};

struct slots *slots_new(unsigned max); /* NULL when memory ran out */
void slots_free(struct slots *sl);     /* every waiter has left */
/* w may read now: a slot is free, and no one waits, or w waits itself (at
 * any place: the order is slots_next's, which names whom to let in). */
bool slots_may_take(const struct slots *sl, const struct slots_waiter *w);
void slots_take(struct slots *sl);    /* a read began */
void slots_release(struct slots *sl); /* a read ended */
/* Queues w at the tail (nothing when queued already); leaves the queue. */
void slots_wait(struct slots *sl, struct slots_waiter *w);
void slots_unwait(struct slots *sl, struct slots_waiter *w);
/* The longest-waiting waiter while a slot is free, else NULL.  It stays
 * queued until slots_unwait. */
struct slots_waiter *slots_next(const struct slots *sl);

#endif
