/* lease — the coordinator (lease.h): start, the three timers (reads of the
 * table, renewals, the deadline), one plan per read (lease_plan.h) carried
 * out, and the stop. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"
#include "daemon/lease_plan.h"

#define ENSURE_POLL_MS 1000
#define ENSURE_WAIT_MS (5 * 60 * 1000) /* a new table is ACTIVE within seconds */
#define DEAD_FORGET 10                 /* a heartbeat still for this many durations is deleted */

static time_t wall_now(void)
{
    return time(NULL);
}

uint64_t lease_now(struct lease *l)
{
    uv_update_time(l->loop);
    return uv_now(l->loop);
}

/* ---- state, losses, the deadline ---------------------------------------------- */

static void stop_timers(struct lease *l)
{
    uv_timer_stop(&l->read_timer);
    uv_timer_stop(&l->renew_timer);
    uv_timer_stop(&l->deadline_timer);
}

void lease_set_state(struct lease *l, enum lease_state st, const char *why)
{
    static const char *const names[] = { [LEASE_STARTING] = "starting", [LEASE_OK] = "ok",
                                         [LEASE_STALE] = "stale", [LEASE_FATAL] = "fatal",
                                         [LEASE_STOPPED] = "stopped" };

    if (l->state == st || l->state == LEASE_FATAL)
        return;
    l->state = st;
    snprintf(l->why, sizeof(l->why), "%s", why ? why : "");
    if (st == LEASE_OK || st == LEASE_STOPPED)
        log_info("lease table %s: worker %s: %s%s%s", l->table, l->me, names[st], why ? ": " : "",
                 why ? why : "");
    else
        log_error("lease table %s: worker %s: %s: %s", l->table, l->me, names[st], l->why);
    lease_emit(l, EV_STATE, NULL, l->why);
    if (st == LEASE_FATAL) {
        stop_timers(l);
        for (size_t s = 0; s < l->streams.n; s++)
            for (size_t k = 0; k < l->streams.v[s]->n; k++)
                lease_lose(l, l->streams.v[s]->recs[k], why);
    }
}

void lease_lose(struct lease *l, struct lease_rec *rec, const char *why)
{
    if (!rec->held)
        return;
    rec->held = false;
    rec->yield_asked = rec->release_wanted = rec->clear_claim = false;
    rec->dirty = false; /* nothing of this tenure is written again */
    l->m.lost++;
    l->m.held = lease_rec_held(l, NULL);
    log_warn("lease %s: lost: %s", rec->key, why);
    lease_emit(l, EV_LOST, rec, why);
    lease_check_released(l);
}

void lease_check_released(struct lease *l)
{
    if (!l->stopping || l->release_reported || l->hb_busy || l->hb_deleting ||
        lease_rec_held(l, NULL) || l->closing)
        return;
    l->release_reported = true;
    lease_set_state(l, LEASE_STOPPED, "every lease released");
    lease_emit(l, EV_RELEASED, NULL, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    struct lease *l = container_of(t, struct lease, deadline_timer);
    uint64_t now = lease_now(l), limit = (uint64_t)l->d - l->guard_ms;
    char why[256];

    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k];

            if (r->held && now >= r->last_ok + limit) {
                snprintf(why, sizeof(why),
                         "not renewed for %llu ms (the lease table did not answer): another "
                         "worker may take it",
                         (unsigned long long)(now - r->last_ok));
                lease_lose(l, r, why);
            }
        }
    if (l->state == LEASE_OK && !l->stopping && now >= l->hb_ok + limit) {
        snprintf(why, sizeof(why),
                 "no write to the lease table succeeded for %llu ms: the leases are given up "
                 "and reading stops until it answers",
                 (unsigned long long)(now - l->hb_ok));
        lease_set_state(l, LEASE_STALE, why);
    }
    lease_arm_deadline(l);
}

void lease_arm_deadline(struct lease *l)
{
    uint64_t next = UINT64_MAX, limit = (uint64_t)l->d - l->guard_ms, now;

    if (l->closing || l->state == LEASE_FATAL)
        return;
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            const struct lease_rec *r = l->streams.v[s]->recs[k];

            if (r->held && r->last_ok + limit < next)
                next = r->last_ok + limit;
        }
    if (l->state == LEASE_OK && !l->stopping && l->hb_ok + limit < next)
        next = l->hb_ok + limit;
    if (next == UINT64_MAX) {
        uv_timer_stop(&l->deadline_timer);
        return;
    }
    now = uv_now(l->loop);
    uv_timer_start(&l->deadline_timer, on_deadline, next > now ? next - now : 0, 0);
}

/* ---- one read, one plan -------------------------------------------------------- */

static void act(struct lease *l, const struct lease_plan *p, struct lease_rec **recs)
{
    for (size_t i = 0; i < p->n; i++) {
        struct lease_rec *r = recs[p->steps[i].lease];

        switch (p->steps[i].what) {
        case LEASE_RENEW: /* the renewal timer does it, every lease_duration/3 */
            break;
        case LEASE_TAKE:
            lease_take(l, r, false);
            break;
        case LEASE_FORCE:
            log_info("lease %s: %s did not give it back within lease_duration: taking it",
                     r->key, r->owner ? r->owner : "?");
            lease_take(l, r, true);
            break;
        case LEASE_CLAIM:
            lease_claim(l, r);
            break;
        case LEASE_RELEASE:
            lease_release(l, r);
            break;
        case LEASE_YIELD:
            r->yield_asked = true;
            l->m.yielded++;
            log_info("lease %s: %s asks for it: giving it back", r->key, r->claim);
            lease_emit(l, EV_YIELD, r, NULL);
            break;
        case LEASE_CLEAR_CLAIM:
            r->clear_claim = true;
            break;
        case LEASE_LOST: {
            char why[300];

            snprintf(why, sizeof(why), "the lease table says its owner is %s now",
                     r->owner ? r->owner : "nobody");
            lease_lose(l, r, why);
            break;
        }
        }
    }
}

static void plan_and_act(struct lease *l, uint64_t now)
{
    struct lease_view *v = calloc(l->count + 1, sizeof(*v));
    struct lease_rec **recs = calloc(l->count + 1, sizeof(*recs));
    struct lease_worker_view *wv = calloc(l->nworkers + 1, sizeof(*wv));
    struct lease_plan p = { 0 };
    const char *my_run = NULL; /* the process this id's heartbeat names now */
    size_t n = 0;

    if (!v || !recs || !wv)
        goto out;
    for (size_t i = 0; i < l->nworkers; i++)
        if (strcmp(l->workers[i].id, l->me) == 0)
            my_run = l->workers[i].run;
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k], *par;

            if (!r->listed) {
                if (r->held && !r->writing)
                    lease_lose(l, r, "its item is gone from the lease table");
                continue;
            }
            par = r->sh.parent ? lease_rec_get(l, r->sh.arn, r->sh.parent) : NULL;
            recs[n] = r;
            v[n++] = (struct lease_view){
                .key = r->key, .parent = r->sh.parent, .owner = r->owner, .claim = r->claim,
                .done = r->table_done, .held = r->held,
                .orphan = !r->held && r->owner && strcmp(r->owner, l->me) == 0 &&
                          (!r->owner_run || strcmp(r->owner_run, l->run) == 0 || !my_run ||
                           strcmp(r->owner_run, my_run) != 0),
                .tenure_ok = r->held && r->owner && strcmp(r->owner, l->me) == 0 &&
                             r->epoch == r->my_epoch,
                .parent_item = par && par->listed, .parent_done = par && par->listed && par->table_done,
                .reads = r->reads, .unchanged_ms = (int64_t)(now - r->changed_at),
                .unowned_ms = r->unowned_since ? (int64_t)(now - r->unowned_since) : 0,
                .claim_ms = r->claim_at && r->claim && strcmp(r->claim, l->me) == 0
                                ? (int64_t)(now - r->claim_at)
                                : 0,
                .yield_asked = r->yield_asked };
        }
    for (size_t i = 0; i < l->nworkers; i++) {
        struct lease_workerrec *w = &l->workers[i];

        wv[i] = (struct lease_worker_view){ w->id, (int64_t)(now - w->beat_at) };
        if (strcmp(w->id, l->me) != 0 && now - w->beat_at >= (uint64_t)(DEAD_FORGET * l->d) &&
            !w->deleting) {
            w->deleting = true;
            lease_delete_dead_worker(l, w);
        }
    }
    if (lease_plan_make(&(struct lease_plan_in){ .me = l->me, .duration_ms = l->d, .leases = v,
                                                 .nleases = n, .workers = wv,
                                                 .nworkers = l->nworkers },
                        &p) < 0)
        goto out;
    l->m.workers = p.workers;
    log_debug("lease table %s: %zu leases read, %zu counted, %zu workers alive, this one holds "
              "%zu of its quota %zu, %zu steps",
              l->table, n, p.leases, p.workers, p.count, p.quota, p.n);
    act(l, &p, recs);
out:
    lease_plan_free(&p);
    free(v);
    free(recs);
    free(wv);
}

static void start_read(struct lease *l);

static void on_read_timer(uv_timer_t *t)
{
    start_read(container_of(t, struct lease, read_timer));
}

static void on_renew_timer(uv_timer_t *t)
{
    struct lease *l = container_of(t, struct lease, renew_timer);

    lease_renew_all(l);
    if (!l->stopping)
        lease_heartbeat(l);
}

static void on_read(int status, const json_t *items, const char *why, void *arg)
{
    struct lease *l = arg;
    uint64_t now;
    char err[512];

    l->scan = NULL;
    if (status == -ECANCELED || l->closing)
        return;
    now = lease_now(l);
    l->m.reads++;
    if (status == 0 && lease_rec_read(l, items, now, false, err, sizeof(err)) < 0) {
        status = -ENOMEM;
        why = "out of memory";
    }
    if (status < 0) {
        l->m.read_failures++;
        if (!l->started) {
            lease_emit_ready(l, 69, why);
            return;
        }
        if (l->m.read_failures < 10 || l->m.read_failures % 100 == 0)
            log_warn("lease table %s: read failed: %s; trying again in %llu ms", l->table, why,
                     (unsigned long long)l->read_ms);
        return;
    }
    if (l->read_after_hb)
        for (size_t i = 0; i < l->nworkers; i++)
            if (strcmp(l->workers[i].id, l->me) == 0 && l->workers[i].run &&
                strcmp(l->workers[i].run, l->run) != 0) {
                snprintf(err, sizeof(err),
                         "another process runs with worker_id %s (its heartbeat replaced this "
                         "one's): worker ids must be unique",
                         l->me);
                lease_set_state(l, LEASE_FATAL, err);
            }
    if (l->state != LEASE_FATAL && !l->stopping)
        plan_and_act(l, now);
    if (!l->started && l->state != LEASE_FATAL) {
        l->started = true;
        uv_timer_start(&l->read_timer, on_read_timer, l->read_ms, l->read_ms);
        uv_timer_start(&l->renew_timer, on_renew_timer, l->renew_ms, l->renew_ms);
        if (l->state == LEASE_STARTING)
            lease_set_state(l, LEASE_OK, NULL);
        lease_arm_deadline(l);
        lease_emit_ready(l, 0, NULL);
    }
}

static void start_read(struct lease *l)
{
    if (l->scan || l->closing || l->stopping)
        return;
    l->read_after_hb = !l->hb_first; /* then the table names this process for this id */
    if (!(l->scan = leasetab_scan(l->aws, l->table, on_read, l)))
        log_error("lease table %s: out of memory: no read this time", l->table);
}

/* ---- life ---------------------------------------------------------------- */

struct lease *lease_new(uv_loop_t *loop, struct aws *aws, const struct lease_opts *o,
                        const struct lease_cbs *cbs)
{
    struct lease *l;
    unsigned char rnd[16];

    if (!loop || !aws || !o || !o->table || !*o->table || !o->worker_id || !*o->worker_id ||
        o->duration_ms < 300)
        return NULL;
    if (!(l = calloc(1, sizeof(*l))))
        return NULL;
    l->loop = loop;
    l->aws = aws;
    l->table = strdup(o->table);
    l->me = strdup(o->worker_id);
    if (!l->table || !l->me) {
        free(l->table);
        free(l->me);
        free(l);
        return NULL;
    }
    l->d = o->duration_ms;
    l->renew_ms = (uint64_t)l->d / 3;
    l->guard_ms = (uint64_t)l->d / 10;
    l->read_ms = (uint64_t)l->d / 10;
    if (l->read_ms < 1000)
        l->read_ms = l->renew_ms < 1000 ? l->renew_ms : 1000;
    l->create = o->create_table;
    l->conn = o->conn;
    if (cbs)
        l->cbs = *cbs;
    l->wall = wall_now;
    l->hb_first = true;
    l->state = LEASE_STARTING;
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t x = uv_hrtime() ^ (uint64_t)getpid() << 32;

        memcpy(rnd, &x, sizeof(x));
        memcpy(rnd + 8, &x, sizeof(x));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(l->run + 2 * i, 3, "%02x", rnd[i]);
    uv_timer_init(loop, &l->read_timer);
    uv_timer_init(loop, &l->renew_timer);
    uv_timer_init(loop, &l->deadline_timer);
    uv_timer_init(loop, &l->notify_timer);
    l->handles = 4;
    return l;
}

static void on_ensured(int status, const char *why, void *arg)
{
    struct lease *l = arg;

    l->ensure = NULL;
    if (status == -ECANCELED || l->closing)
        return;
    if (status < 0) {
        lease_emit_ready(l, status == -ENOENT || status == -EINVAL ? 78 : status == -EACCES ? 77 : 69,
                   why);
        return;
    }
    l->hb_ok = lease_now(l); /* the deadline of the first heartbeat counts from here */
    lease_heartbeat(l);
    start_read(l);
}

int lease_start(struct lease *l, lease_ready_cb *ready, void *arg)
{
    if (l->ensure || l->started || l->closing)
        return -EBUSY;
    l->ready = ready;
    l->ready_arg = arg;
    l->ensure = leasetab_ensure(l->loop, l->aws, l->table, l->create, ENSURE_POLL_MS,
                                ENSURE_WAIT_MS, on_ensured, l);
    return l->ensure ? 0 : -ENOMEM;
}

bool lease_holds(const struct lease *l, const char *arn, const char *shard)
{
    const struct lease_rec *r = lease_rec_get((struct lease *)l, arn, shard);

    return r && r->held;
}

int lease_give_back(struct lease *l, const char *arn, const char *shard)
{
    struct lease_rec *r = lease_rec_get(l, arn, shard);

    if (!r || !r->held)
        return -ENOENT;
    lease_release(l, r);
    return 0;
}

void lease_release_all(struct lease *l, lease_done_cb *done, void *arg)
{
    l->released = done;
    l->released_arg = arg;
    l->stopping = true;
    uv_timer_stop(&l->read_timer);
    if (l->scan)
        leasetab_scan_cancel(l->scan);
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++)
            lease_release(l, l->streams.v[s]->recs[k]);
    if (l->started)
        lease_delete_heartbeat(l);
    lease_arm_deadline(l);
    lease_check_released(l);
}

static void on_closed(uv_handle_t *h)
{
    struct lease *l = h->data;

    if (--l->handles == 0 && l->closed)
        l->closed(l->closed_arg);
}

void lease_close(struct lease *l, lease_done_cb *closed, void *arg)
{
    uv_timer_t *timers[] = { &l->read_timer, &l->renew_timer, &l->deadline_timer,
                             &l->notify_timer };

    if (l->closing)
        return;
    l->closing = true;
    l->closed = closed;
    l->closed_arg = arg;
    leasetab_ensure_cancel(l->ensure);
    leasetab_scan_cancel(l->scan);
    lease_cancel_calls(l);
    if (l->state != LEASE_FATAL)
        l->state = LEASE_STOPPED;
    for (size_t i = 0; i < sizeof(timers) / sizeof(*timers); i++) {
        timers[i]->data = l;
        uv_close((uv_handle_t *)timers[i], on_closed);
    }
}

void lease_free(struct lease *l)
{
    if (!l)
        return;
    if (l->store)
        ckpt_lease_detach(l->store);
    lease_rec_free_all(l);
    for (size_t i = 0; i < l->nevents; i++) {
        free(l->events[i].table);
        free(l->events[i].arn);
        free(l->events[i].shard);
        free(l->events[i].why);
    }
    free(l->events);
    free(l->table);
    free(l->me);
    free(l);
}

enum lease_state lease_state(const struct lease *l, const char **why)
{
    if (why)
        *why = l->why;
    return l->state;
}

const struct lease_metrics *lease_metrics(const struct lease *l)
{
    return &l->m;
}

size_t lease_held_for_table(const struct lease *l, const char *table)
{
    return lease_rec_held(l, table);
}

const char *lease_worker_id(const struct lease *l)
{
    return l->me;
}

const char *lease_table(const struct lease *l)
{
    return l->table;
}
