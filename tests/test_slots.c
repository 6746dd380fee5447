/* The GetRecords read slots (daemon/slots.h): at most read_concurrency
 * reads in flight over all shards, and the shards waiting for one served
 * first come first served.  Pure: no loop, no servers. */
#include <criterion/criterion.h>
#include <stddef.h>

#include "daemon/slots.h"

static struct slots *sl;

static void setup(void)
{
    sl = slots_new(2);
    cr_assert_not_null(sl);
}

static void teardown(void)
{
    slots_free(sl);
}

TestSuite(slots, .init = setup, .fini = teardown, .timeout = 10);

/* What a shard does once slots_next named it: it leaves the queue and
 * reads. */
static void grant(struct slots_waiter *w)
{
    cr_assert_eq(slots_next(sl), w);
    cr_assert(slots_may_take(sl, w));
    slots_unwait(sl, w);
    slots_take(sl);
}

/* Both slots read; w[0..n) wait, in that order. */
static void full_with(struct slots_waiter *w, size_t n)
{
    slots_take(sl);
    slots_take(sl);
    for (size_t i = 0; i < n; i++)
        slots_wait(sl, &w[i]);
}

Test(slots, reads_begin_at_once_up_to_the_limit_and_a_release_frees_one)
{
    struct slots_waiter a = { 0 }, b = { 0 }, c = { 0 };

    cr_assert(slots_may_take(sl, &a));
    slots_take(sl);
    cr_assert(slots_may_take(sl, &b));
    slots_take(sl);
    cr_assert_not(slots_may_take(sl, &c), "two reads in flight of two");
    cr_assert_null(slots_next(sl), "no one waits");
    slots_release(sl);
    cr_assert(slots_may_take(sl, &c), "a read ended: its slot is free");
    slots_take(sl);
    cr_assert_not(slots_may_take(sl, &a));
    slots_release(sl);
    slots_release(sl);
    cr_assert(slots_may_take(sl, &a));
}

Test(slots, waiters_are_named_oldest_first_and_only_while_a_slot_is_free)
{
    struct slots_waiter w[4] = { 0 };

    full_with(w, 4);
    cr_assert_null(slots_next(sl), "every slot is taken");
    slots_release(sl);
    grant(&w[0]);
    cr_assert_null(slots_next(sl));
    slots_release(sl);
    slots_release(sl);
    grant(&w[1]);
    grant(&w[2]);
    cr_assert_null(slots_next(sl), "w[3] waits on");
    slots_release(sl);
    grant(&w[3]);
}

/* A shard that just read and got records again goes behind those waiting
 * instead of keeping its slot (a busy shard would starve the others). */
Test(slots, a_newcomer_queues_behind_a_waiter_even_when_a_slot_is_free)
{
    struct slots_waiter old = { 0 }, busy = { 0 };

    full_with(&old, 1);
    slots_release(sl);
    cr_assert_not(slots_may_take(sl, &busy), "old waits before it");
    cr_assert(slots_may_take(sl, &old), "a waiter itself may take the free slot");
    slots_wait(sl, &busy);
    grant(&old);
    slots_release(sl);
    grant(&busy);
}

Test(slots, waiting_again_keeps_the_first_place)
{
    struct slots_waiter w[2] = { 0 };

    full_with(w, 2);
    slots_wait(sl, &w[0]);
    cr_assert(w[0].queued);
    slots_release(sl);
    slots_release(sl);
    grant(&w[0]);
    grant(&w[1]);
    cr_assert_null(slots_next(sl), "w[0] was queued once");
}

/* A shard that stops (its stream replaced, the daemon stopping) leaves the
 * queue from any place in it; it is never named afterwards. */
Test(slots, a_waiter_that_left_is_never_named)
{
    struct slots_waiter w[5] = { 0 };

    full_with(w, 4);
    slots_unwait(sl, &w[1]); /* the middle */
    slots_unwait(sl, &w[0]); /* the oldest */
    slots_unwait(sl, &w[3]); /* the newest */
    cr_assert_not(w[0].queued || w[1].queued || w[3].queued);
    slots_unwait(sl, &w[4]); /* never queued: nothing happens */
    slots_unwait(sl, &w[1]); /* left already: nothing happens */
    slots_wait(sl, &w[4]);
    slots_release(sl);
    grant(&w[2]);
    slots_release(sl);
    grant(&w[4]);
    cr_assert_null(slots_next(sl));
    cr_assert(slots_may_take(sl, &w[0]) == false, "both slots read again");
    slots_release(sl);
    cr_assert(slots_may_take(sl, &w[0]), "the queue is empty");
}

/* Naming a waiter does not take it out: it stays first until it leaves. */
Test(slots, the_named_waiter_stays_queued_until_it_leaves)
{
    struct slots_waiter w[2] = { 0 };

    full_with(w, 2);
    slots_release(sl);
    cr_assert_eq(slots_next(sl), &w[0]);
    cr_assert_eq(slots_next(sl), &w[0]);
    cr_assert(w[0].queued);
    cr_assert_not(slots_may_take(sl, &(struct slots_waiter){ 0 }));
    slots_unwait(sl, &w[0]);
    cr_assert_not(w[0].queued);
    cr_assert_eq(slots_next(sl), &w[1]);
}
