/* lease_event — what the coordinator tells the daemon, queued and
 * delivered from the loop (never inside the call that caused it): gained,
 * lost, yield, state, and the answers of lease_start and release_all. */
#include "daemon/lease_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static void on_notify(uv_timer_t *t);

void lease_emit(struct lease *l, enum lease_event_kind kind, const struct lease_rec *rec,
                const char *why)
{
    struct lease_event *e;

    if (l->closing)
        return;
    if (l->nevents == l->capevents) {
        size_t cap = l->capevents ? l->capevents * 2 : 16;
        struct lease_event *a = realloc(l->events, cap * sizeof(*a));

        if (!a) {
            log_error("lease table %s: out of memory: an event is lost", l->table);
            return;
        }
        l->events = a;
        l->capevents = cap;
    }
    e = &l->events[l->nevents];
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->state = l->state;
    if ((rec && (!(e->table = strdup(rec->sh.table)) || !(e->arn = strdup(rec->sh.arn)) ||
                 !(e->shard = strdup(rec->sh.id)))) ||
        (why && !(e->why = strdup(why)))) {
        free(e->table);
        free(e->arn);
        free(e->shard);
        free(e->why);
        log_error("lease table %s: out of memory: an event is lost", l->table);
        return;
    }
    l->nevents++;
    if (!uv_is_active((uv_handle_t *)&l->notify_timer))
        uv_timer_start(&l->notify_timer, on_notify, 0, 0);
}

void lease_emit_ready(struct lease *l, int status, const char *why)
{
    size_t n = l->nevents;

    lease_emit(l, EV_READY, NULL, why);
    if (l->nevents > n)
        l->events[n].status = status;
}

int lease_later(struct lease *l, void (*fn)(void *arg), void *arg)
{
    size_t n = l->nevents;

    lease_emit(l, EV_CALL, NULL, NULL);
    if (l->nevents == n)
        return -ENOMEM;
    l->events[n].fn = fn;
    l->events[n].fnarg = arg;
    return 0;
}

static void deliver(struct lease *l, struct lease_event *e)
{
    const struct lease_cbs *cb = &l->cbs;
    lease_ready_cb *ready = l->ready;
    lease_done_cb *released = l->released;
    struct lease_rec *rec;

    switch (e->kind) {
    case EV_GAINED:
        if (cb->gained)
            cb->gained(e->table, e->arn, e->shard, cb->arg);
        break;
    case EV_LOST:
        if (cb->lost)
            cb->lost(e->table, e->arn, e->shard, e->why ? e->why : "", cb->arg);
        break;
    case EV_YIELD:
        if (cb->yield)
            cb->yield(e->table, e->arn, e->shard, cb->arg);
        else if ((rec = lease_rec_get(l, e->arn, e->shard)) && rec->held)
            lease_release(l, rec);
        break;
    case EV_STATE:
        if (cb->state)
            cb->state(e->state, e->why ? e->why : "", cb->arg);
        break;
    case EV_READY:
        l->ready = NULL;
        if (ready)
            ready(e->status, e->why ? e->why : "", l->ready_arg);
        break;
    case EV_RELEASED:
        l->released = NULL;
        if (released)
            released(l->released_arg);
        break;
    case EV_CALL:
        e->fn(e->fnarg);
        break;
    }
}

static void on_notify(uv_timer_t *t)
{
    struct lease *l = container_of(t, struct lease, notify_timer);
    struct lease_event *ev = l->events;
    size_t n = l->nevents;

    /* A callback may cause more events: they go to a fresh queue. */
    l->events = NULL;
    l->nevents = l->capevents = 0;
    for (size_t i = 0; i < n; i++) {
        if (!l->closing)
            deliver(l, &ev[i]);
        free(ev[i].table);
        free(ev[i].arn);
        free(ev[i].shard);
        free(ev[i].why);
    }
    free(ev);
}
