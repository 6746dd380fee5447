#include "daemon/slots.h"

#include <stdlib.h>

struct slots {
    unsigned max;   /* GetRecords in flight at most */
    unsigned reads; /* in flight now */
    struct list queue; /* slots_waiter, oldest first */
};

struct slots *slots_new(unsigned max)
{
    struct slots *sl = calloc(1, sizeof(*sl));

    if (sl) {
        sl->max = max;
        list_init(&sl->queue);
    }
    return sl;
}

void slots_free(struct slots *sl)
{
    free(sl);
}

bool slots_may_take(const struct slots *sl, const struct slots_waiter *w)
{
    /* First come first served: one that just read, and got records again,
     * queues behind those waiting instead of keeping its slot (a busy
     * shard would starve the others). */
    return sl->reads < sl->max && (list_empty(&sl->queue) || w->queued);
}

void slots_take(struct slots *sl)
{
    sl->reads++;
}

void slots_release(struct slots *sl)
{
    sl->reads--;
}

void slots_wait(struct slots *sl, struct slots_waiter *w)
{
    if (w->queued)
        return;
    w->queued = true;
    list_push_tail(&sl->queue, &w->link);
}

void slots_unwait(struct slots *sl, struct slots_waiter *w)
{
    if (!w->queued)
        return;
    list_remove(&w->link);
    w->queued = false;
}

struct slots_waiter *slots_next(const struct slots *sl)
{
    return sl->reads < sl->max ? list_first_entry(&sl->queue, struct slots_waiter, link) : NULL;
}
