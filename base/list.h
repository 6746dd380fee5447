/* list — an intrusive circular doubly linked list [libuv queue.h, Linux
 * list.h].  One struct serves twice: as the head a container owns, and as
 * the link embedded in each element; list_entry finds the element from its
 * link.  An empty head points at itself, so linking and unlinking never
 * test for the ends.
 *
 * A head must be list_init'ed before use (a zeroed one is not empty, it is
 * broken).  A link needs no init before it is pushed; list_remove leaves it
 * pointing at itself.  Nothing here allocates or frees. */
#ifndef DDB2ES_LIST_H
#define DDB2ES_LIST_H

#include <stdbool.h>

#include "base/util.h"

struct list {
    struct list *prev, *next;
};

static inline void list_init(struct list *head)
{
    head->prev = head->next = head;
}

static inline bool list_empty(const struct list *head)
{
    return head->next == head;
}

/* Links n just before pos (pos a head: at the tail). */
static inline void list_insert(struct list *pos, struct list *n)
{
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}

static inline void list_push_tail(struct list *head, struct list *n)
{
    list_insert(head, n);
}

static inline void list_push_head(struct list *head, struct list *n)
{
    list_insert(head->next, n);
}

/* Unlinks n from the list it is in. */
static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* Moves every element of from, in order, to the tail of to; from is left
 * empty. */
static inline void list_move(struct list *to, struct list *from)
{
    if (list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    list_init(from);
}

/* The element of type that embeds link as member. */
#define list_entry(link, type, member) container_of(link, type, member)

/* The first element of head, NULL when it is empty (head is read twice). */
#define list_first_entry(head, type, member) \
    (list_empty(head) ? (type *)NULL : list_entry((head)->next, type, member))

/* Each link of head, first to last.  The body may unlink pos only if it
 * leaves the loop right after. */
#define list_foreach(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)

#endif
