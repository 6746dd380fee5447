#include "daemon/slots.h"

#include <stdlib.h>

struct slots {
    unsigned max;   /* GetRecords in flight at most */
    unsigned reads; /* in flight now */
    struct slots_waiter *head, *tail;
};

struct slots *slots_new(unsigned max)
{
    struct slots *sl = calloc(1, sizeof(*sl));

    if (sl)
        sl->max = max;
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
    return sl->reads < sl->max && (!sl->head || w->queued);
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
    w->next = NULL;
    if (sl->tail)
        sl->tail->next = w;
    else
        sl->head = w;
    sl->tail = w;
}

void slots_unwait(struct slots *sl, struct slots_waiter *w)
{
    struct slots_waiter **link, *prev = NULL;

    if (!w->queued)
        return;
    link = &sl->head;
    while (*link && *link != w) {
        prev = *link;
        link = &(*link)->next;
    }
    if (*link)
        *link = w->next;
    if (sl->tail == w)
        sl->tail = prev;
    w->queued = false;
    w->next = NULL;
}

struct slots_waiter *slots_next(const struct slots *sl)
{
    return sl->reads < sl->max ? sl->head : NULL;
}
