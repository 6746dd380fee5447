/* lease_plan — see lease_plan.h; the rules: lease.h. */
#include "daemon/lease_plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    const char *id;
    size_t count, quota;
};

struct plan {
    const struct lease_plan_in *in;
    struct lease_plan *out;
    struct worker *w;
    size_t nw;
    size_t *avail; /* leases this worker may take, in key order */
    size_t navail;
    int rc;
};

static struct worker *find(struct plan *p, const char *id)
{
    for (size_t i = 0; i < p->nw; i++)
        if (strcmp(p->w[i].id, id) == 0)
            return &p->w[i];
    return NULL;
}

static void alive(struct plan *p, const char *id)
{
    if (!find(p, id))
        p->w[p->nw++] = (struct worker){ .id = id };
}

static void step(struct plan *p, enum lease_do what, size_t lease)
{
    struct lease_plan *o = p->out;

    if (p->rc)
        return;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        struct lease_step *s = realloc(o->steps, cap * sizeof(*s));

        if (!s) {
            p->rc = -ENOMEM;
            return;
        }
        o->steps = s;
        o->cap = cap;
    }
    o->steps[o->n++] = (struct lease_step){ what, lease };
}

static bool is_me(const struct plan *p, const char *id)
{
    return id && strcmp(id, p->in->me) == 0;
}

/* Another worker's lease whose counter moved within lease_duration. */
static bool live(const struct plan *p, const struct lease_view *v)
{
    return v->owner && (is_me(p, v->owner) || v->unchanged_ms < p->in->duration_ms);
}

static bool leasable(const struct lease_view *v)
{
    return !v->parent || v->parent_done || (!v->parent_item && v->reads >= 2);
}

/* Who a live lease counts for: its claimer when that one is alive. */
static const char *counts_for(struct plan *p, const struct lease_view *v)
{
    return v->claim && find(p, v->claim) ? v->claim : v->owner;
}

static int by_rank(const void *a, const void *b)
{
    const struct worker *x = a, *y = b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct worker *)a)->id, ((const struct worker *)b)->id);
}

static int by_key(const void *a, const void *b, void *arg)
{
    const struct lease_plan_in *in = arg;

    return strcmp(in->leases[*(const size_t *)a].key, in->leases[*(const size_t *)b].key);
}

/* Every alive worker: this one, those whose beat moved within
 * lease_duration, and the owners of live leases. */
static void find_alive(struct plan *p)
{
    const struct lease_plan_in *in = p->in;

    alive(p, in->me);
    for (size_t i = 0; i < in->nworkers; i++)
        if (in->workers[i].unchanged_ms < in->duration_ms)
            alive(p, in->workers[i].id);
    for (size_t i = 0; i < in->nleases; i++) {
        const struct lease_view *v = &in->leases[i];

        if (!v->done && live(p, v))
            alive(p, v->owner);
    }
}

/* The held leases, and the counts. */
static void classify(struct plan *p)
{
    const struct lease_plan_in *in = p->in;

    for (size_t i = 0; i < in->nleases; i++) {
        const struct lease_view *v = &in->leases[i];

        if (v->held && !v->tenure_ok) {
            /* It counts for whoever has it now; another process of this id
             * that took it is not retaken (that would be a tug of war). */
            step(p, LEASE_LOST, i);
            if (!v->done && live(p, v) && !is_me(p, v->owner)) {
                find(p, counts_for(p, v))->count++;
                p->out->leases++;
            }
            continue;
        }
        if (v->held) {
            if (v->done) {
                step(p, LEASE_RELEASE, i);
                continue;
            }
            step(p, LEASE_RENEW, i);
            if (v->claim && !is_me(p, v->claim)) {
                if (!find(p, v->claim))
                    step(p, LEASE_CLEAR_CLAIM, i);
                else if (!v->yield_asked)
                    step(p, LEASE_YIELD, i);
            }
            find(p, v->claim && find(p, v->claim) ? v->claim : in->me)->count++;
            p->out->leases++;
            continue;
        }
        if (v->done)
            continue;
        if (is_me(p, v->owner)) {
            /* A previous process of this id held it: take it back.  One that
             * runs now (a duplicate id) keeps it: no tug of war. */
            if (v->orphan)
                step(p, LEASE_TAKE, i);
            find(p, in->me)->count++;
            p->out->leases++;
        } else if (live(p, v)) {
            find(p, counts_for(p, v))->count++;
            p->out->leases++;
        } else if (leasable(v)) {
            p->avail[p->navail++] = i;
            p->out->leases++;
        }
    }
}

/* Ranked by count, the first N mod W get one more. */
static void quotas(struct plan *p)
{
    size_t n = p->out->leases, w = p->nw;

    qsort(p->w, w, sizeof(*p->w), by_rank);
    for (size_t i = 0; i < w; i++)
        p->w[i].quota = n / w + (i < n % w ? 1 : 0);
    qsort(p->w, w, sizeof(*p->w), by_id);
}

static bool taking(const struct plan *p, size_t lease)
{
    for (size_t i = 0; i < p->out->n; i++)
        if (p->out->steps[i].lease == lease && p->out->steps[i].what == LEASE_TAKE)
            return true;
    return false;
}

/* The available leases, in key order, dealt to the workers below quota in
 * id order; then those nobody took for lease_duration. */
static void deal(struct plan *p)
{
    const struct lease_plan_in *in = p->in;
    size_t next = 0;

    qsort_r(p->avail, p->navail, sizeof(*p->avail), by_key, (void *)in);
    for (size_t i = 0; i < p->nw && next < p->navail; i++) {
        struct worker *w = &p->w[i];
        size_t want = w->quota > w->count ? w->quota - w->count : 0;

        for (size_t k = 0; k < want && next < p->navail; k++, next++)
            if (is_me(p, w->id))
                step(p, LEASE_TAKE, p->avail[next]);
    }
    for (size_t i = 0; i < p->navail; i++) {
        const struct lease_view *v = &in->leases[p->avail[i]];
        bool stale = v->owner ? v->unchanged_ms >= 2 * in->duration_ms
                              : v->unowned_ms >= in->duration_ms;

        if (stale && !taking(p, p->avail[i]))
            step(p, LEASE_TAKE, p->avail[i]);
    }
}

/* Nothing available and this worker below quota: the workers below quota
 * (by id) are matched with the units above quota (most loaded first); this
 * worker claims the lease its first match names. */
static void steal(struct plan *p)
{
    const struct lease_plan_in *in = p->in;
    struct worker *me = find(p, in->me), **over;
    size_t nover = 0, unit = 0, ahead = 0;
    bool found = false;

    if (p->navail || me->count >= me->quota)
        return;
    for (size_t i = 0; i < in->nleases; i++) /* one claim at a time */
        if (!in->leases[i].held && is_me(p, in->leases[i].claim) && live(p, &in->leases[i]))
            return;
    if (!(over = malloc(p->nw * sizeof(*over)))) {
        p->rc = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < p->nw; i++)
        if (p->w[i].count > p->w[i].quota)
            over[nover++] = &p->w[i];
    /* most loaded first, then by id (p->w is in id order) */
    for (size_t i = 1; i < nover; i++)
        for (size_t j = i; j > 0 && over[j]->count > over[j - 1]->count; j--) {
            struct worker *t = over[j];

            over[j] = over[j - 1];
            over[j - 1] = t;
        }
    /* Walk the units above quota in that order, handing them to the workers
     * below quota in id order, until this worker's turn. */
    for (size_t i = 0; i < p->nw && !found; i++) {
        struct worker *w = &p->w[i];
        size_t want = w->quota > w->count ? w->quota - w->count : 0;

        for (size_t k = 0; k < want; k++) {
            while (unit < nover && ahead >= over[unit]->count - over[unit]->quota) {
                unit++;
                ahead = 0;
            }
            if (unit == nover)
                break;
            if (w == me) {
                found = true;
                break;
            }
            ahead++;
        }
    }
    if (found) {
        /* The victim's leases that nobody claims, in key order: the one at
         * this worker's place among the victim's thieves. */
        const char *victim = over[unit]->id;
        size_t *mine = malloc(in->nleases * sizeof(*mine)), n = 0;

        for (size_t i = 0; mine && i < in->nleases; i++) {
            const struct lease_view *v = &in->leases[i];

            if (!v->done && !v->claim && v->owner && strcmp(v->owner, victim) == 0 && live(p, v))
                mine[n++] = i;
        }
        if (!mine) {
            p->rc = -ENOMEM;
        } else if (n) {
            qsort_r(mine, n, sizeof(*mine), by_key, (void *)in);
            step(p, LEASE_CLAIM, mine[ahead < n ? ahead : n - 1]);
        }
        free(mine);
    }
    free(over);
}

/* A claim of this worker's that its owner did not honour in time. */
static void force(struct plan *p)
{
    const struct lease_plan_in *in = p->in;

    for (size_t i = 0; i < in->nleases; i++) {
        const struct lease_view *v = &in->leases[i];

        if (!v->held && !v->done && is_me(p, v->claim) && live(p, v) && !is_me(p, v->owner) &&
            v->claim_ms >= in->duration_ms)
            step(p, LEASE_FORCE, i);
    }
}

int lease_plan_make(const struct lease_plan_in *in, struct lease_plan *out)
{
    struct plan p = { .in = in, .out = out };
    struct worker *me;

    out->n = 0;
    out->workers = out->leases = out->quota = out->count = 0;
    p.w = calloc(in->nworkers + in->nleases + 1, sizeof(*p.w));
    p.avail = malloc((in->nleases + 1) * sizeof(*p.avail));
    if (!p.w || !p.avail) {
        free(p.w);
        free(p.avail);
        return -ENOMEM;
    }
    find_alive(&p);
    classify(&p);
    quotas(&p);
    deal(&p);
    steal(&p);
    force(&p);
    me = find(&p, in->me);
    out->workers = p.nw;
    out->quota = me->quota;
    out->count = me->count;
    free(p.w);
    free(p.avail);
    return p.rc;
}

void lease_plan_free(struct lease_plan *p)
{
    free(p->steps);
    memset(p, 0, sizeof(*p));
}

const char *lease_do_name(enum lease_do what)
{
    static const char *const names[] = {
        [LEASE_RENEW] = "renew",     [LEASE_TAKE] = "take",
        [LEASE_CLAIM] = "claim",     [LEASE_FORCE] = "force",
        [LEASE_RELEASE] = "release", [LEASE_YIELD] = "yield",
        [LEASE_CLEAR_CLAIM] = "clear-claim", [LEASE_LOST] = "lost",
    };

    return (unsigned)what < sizeof(names) / sizeof(*names) ? names[what] : "?";
}
