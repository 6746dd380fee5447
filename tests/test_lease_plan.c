/* The lease plan (daemon/lease_plan.c): single decisions on hand-made
 * views, and whole fleets simulated round after round on a table model
 * that applies each write only under its condition, as DynamoDB does
 * (lease.h lists the conditions; tests/test_leasetab.c checks them on
 * DynamoDB Local). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "daemon/lease_plan.h"

#define D 10000 /* lease_duration, ms */

TestSuite(lease_plan, .timeout = 20);

/* ---- single decisions ------------------------------------------------------ */

static struct lease_plan plan_of(const char *me, const struct lease_view *l, size_t nl,
                                 const struct lease_worker_view *w, size_t nw)
{
    struct lease_plan_in in = { .me = me, .duration_ms = D, .leases = l, .nleases = nl,
                                .workers = w, .nworkers = nw };
    struct lease_plan p = { 0 };

    cr_assert_eq(lease_plan_make(&in, &p), 0);
    return p;
}

static bool has(const struct lease_plan *p, enum lease_do what, size_t lease)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->steps[i].what == what && p->steps[i].lease == lease)
            return true;
    return false;
}

static size_t count(const struct lease_plan *p, enum lease_do what)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n; i++)
        n += p->steps[i].what == what;
    return n;
}

#define HELD(k) { .key = k, .owner = "me", .held = true, .tenure_ok = true, .reads = 5 }
#define OWNED(k, o, ms) { .key = k, .owner = o, .unchanged_ms = ms, .reads = 5 }
#define FREE(k, ms) { .key = k, .unowned_ms = ms, .reads = 5 }

Test(lease_plan, held_leases_are_renewed_and_lost_ones_given_up)
{
    struct lease_view l[] = { HELD("a"), HELD("b"), HELD("c") };
    struct lease_plan p;

    l[1].owner = "other";
    l[1].tenure_ok = false;
    l[2].tenure_ok = false; /* this id, another epoch: another process of the same id took it */
    p = plan_of("me", l, 3, NULL, 0);
    cr_assert(has(&p, LEASE_RENEW, 0));
    cr_assert(has(&p, LEASE_LOST, 1) && !has(&p, LEASE_RENEW, 1));
    cr_assert(has(&p, LEASE_LOST, 2) && !has(&p, LEASE_TAKE, 2), "no tug of war over an id");
    cr_assert_eq(p.workers, 2, "the new owner of b is alive");
    lease_plan_free(&p);
}

Test(lease_plan, a_lease_is_taken_only_once_its_counter_stood_still_for_the_duration)
{
    struct lease_view l[] = { OWNED("a", "dead", D - 1), OWNED("b", "dead", D) };
    struct lease_plan p = plan_of("me", l, 2, NULL, 0);

    cr_assert_not(has(&p, LEASE_TAKE, 0), "renewed within the duration: still its owner's");
    cr_assert(has(&p, LEASE_TAKE, 1));
    lease_plan_free(&p);
}

Test(lease_plan, a_child_waits_for_its_parent_to_be_done)
{
    struct lease_view l[] = { { .key = "k1", .parent = "p", .parent_item = true, .reads = 5 },
                              { .key = "k2", .parent = "p", .parent_item = true,
                                .parent_done = true, .reads = 5 },
                              { .key = "k3", .parent = "gone", .reads = 1 },
                              { .key = "k4", .parent = "gone", .reads = 2 } };
    struct lease_plan p = plan_of("me", l, 4, NULL, 0);

    cr_assert_not(has(&p, LEASE_TAKE, 0), "the parent is not done");
    cr_assert(has(&p, LEASE_TAKE, 1));
    cr_assert_not(has(&p, LEASE_TAKE, 2), "a missing parent may only not be listed yet");
    cr_assert(has(&p, LEASE_TAKE, 3), "listed twice without its parent: the parent is gone");
    cr_assert_eq(p.leases, 2, "waiting children are not counted in the quotas");
    lease_plan_free(&p);
}

Test(lease_plan, done_leases_are_released_and_not_counted)
{
    struct lease_view l[] = { HELD("a"), HELD("b"), { .key = "c", .done = true, .reads = 5 } };
    struct lease_plan p;

    l[0].done = true;
    p = plan_of("me", l, 3, NULL, 0);
    cr_assert(has(&p, LEASE_RELEASE, 0) && !has(&p, LEASE_RENEW, 0));
    cr_assert(has(&p, LEASE_RENEW, 1));
    cr_assert_not(has(&p, LEASE_TAKE, 2));
    cr_assert_eq(p.leases, 1);
    lease_plan_free(&p);
}

Test(lease_plan, a_lease_of_this_id_not_held_by_this_process_is_taken_at_once)
{
    struct lease_view l[] = { OWNED("a", "me", 0), OWNED("b", "x", 0), OWNED("c", "x", 0),
                              OWNED("d", "me", 0) };
    struct lease_worker_view w[] = { { "x", 0 } };
    struct lease_plan p;

    l[0].orphan = true;
    p = plan_of("me", l, 4, w, 1);
    cr_assert(has(&p, LEASE_TAKE, 0), "a previous process of this id held it: it is dead");
    cr_assert_not(has(&p, LEASE_TAKE, 3), "another process runs with this id: no tug of war");
    cr_assert_eq(p.count, 2);
    lease_plan_free(&p);
}

Test(lease_plan, free_leases_are_dealt_by_id_so_workers_do_not_race_for_them)
{
    struct lease_view l[] = { FREE("a", 0), FREE("b", 0), FREE("c", 0), FREE("d", 0) };
    struct lease_worker_view w[] = { { "w1", 0 }, { "w2", 0 } };
    struct lease_plan p1 = plan_of("w1", l, 4, w, 2), p2 = plan_of("w2", l, 4, w, 2);

    cr_assert(has(&p1, LEASE_TAKE, 0) && has(&p1, LEASE_TAKE, 1) && count(&p1, LEASE_TAKE) == 2);
    cr_assert(has(&p2, LEASE_TAKE, 2) && has(&p2, LEASE_TAKE, 3) && count(&p2, LEASE_TAKE) == 2);
    lease_plan_free(&p1);
    lease_plan_free(&p2);
}

Test(lease_plan, a_free_lease_nobody_took_for_the_duration_is_taken_by_anyone)
{
    struct lease_view l[] = { HELD("a"), HELD("a2"), FREE("b", D - 1), FREE("c", D) };
    struct lease_worker_view w[] = { { "w0", 0 } }; /* alive: b and c are dealt to it */
    struct lease_plan p = plan_of("me", l, 4, w, 1);

    cr_assert_eq(p.quota, 2);
    cr_assert_not(has(&p, LEASE_TAKE, 2));
    cr_assert(has(&p, LEASE_TAKE, 3), "w0 is alive but does not take");
    lease_plan_free(&p);
}

Test(lease_plan, a_claim_is_yielded_to_an_alive_worker_and_cleared_for_a_dead_one)
{
    struct lease_view l[] = { HELD("a"), HELD("b"), HELD("c") };
    struct lease_worker_view w[] = { { "alive", 0 }, { "dead", D } };
    struct lease_plan p;

    l[0].claim = "alive";
    l[1].claim = "dead";
    l[2].claim = "alive";
    l[2].yield_asked = true;
    p = plan_of("me", l, 3, w, 2);
    cr_assert(has(&p, LEASE_YIELD, 0) && has(&p, LEASE_RENEW, 0), "renewed while it drains");
    cr_assert(has(&p, LEASE_CLEAR_CLAIM, 1) && !has(&p, LEASE_YIELD, 1));
    cr_assert_not(has(&p, LEASE_YIELD, 2), "asked once");
    lease_plan_free(&p);
}

Test(lease_plan, an_unanswered_claim_is_forced_after_the_duration)
{
    struct lease_view l[] = { OWNED("a", "v", 0), OWNED("b", "v", 0) };
    struct lease_worker_view w[] = { { "v", 0 } };
    struct lease_plan p;

    l[0].claim = "me";
    l[0].claim_ms = D - 1;
    p = plan_of("me", l, 2, w, 1);
    cr_assert_eq(p.n, 0, "pending: no force yet, and no second claim");
    lease_plan_free(&p);
    l[0].claim_ms = D;
    p = plan_of("me", l, 2, w, 1);
    cr_assert(has(&p, LEASE_FORCE, 0) && p.n == 1);
    lease_plan_free(&p);
}

Test(lease_plan, nobody_steals_when_counts_differ_by_one)
{
    /* 3, 3 and 2 leases; every worker's view. */
    const char *owners[] = { "a", "a", "a", "b", "b", "b", "c", "c" };
    struct lease_view l[8];
    struct lease_worker_view w[] = { { "a", 0 }, { "b", 0 }, { "c", 0 } };

    for (size_t i = 0; i < 8; i++) {
        static char keys[8][4];

        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        l[i] = (struct lease_view){ .key = keys[i], .owner = owners[i], .reads = 5 };
    }
    for (size_t k = 0; k < 3; k++) {
        struct lease_plan p;

        for (size_t i = 0; i < 8; i++) {
            l[i].held = l[i].tenure_ok = strcmp(owners[i], w[k].id) == 0;
        }
        p = plan_of(w[k].id, l, 8, w, 3);
        cr_assert_eq(count(&p, LEASE_CLAIM) + count(&p, LEASE_TAKE), 0, "worker %s", w[k].id);
        lease_plan_free(&p);
    }
}

/* ---- fleets ------------------------------------------------------------------ */

#define MAXL 32
#define MAXW 6
#define TICK 1000 /* ms between two rounds: one read of the table per worker */

struct tl { /* an item of the table */
    char key[16], parent[16], owner[16], claim[16], last_owner[16];
    uint64_t counter, epoch;
    bool done, exists;
};

struct tw { /* a worker */
    char id[16];
    bool running;
    bool held[MAXL], yield_asked[MAXL];
    uint64_t my_epoch[MAXL];
    /* what it saw */
    uint64_t seen_counter[MAXL];
    int64_t changed_at[MAXL], unowned_since[MAXL], claim_at[MAXL];
    unsigned reads[MAXL];
    uint64_t seen_beat[MAXW];
    int64_t beat_at[MAXW];
};

struct sim {
    struct tl l[MAXL];
    size_t nl;
    struct tw w[MAXW];
    uint64_t beat[MAXW];
    size_t nw;
    int64_t now;
    unsigned moves, takes_before_expiry;
    bool snapshot; /* every worker plans on the table as it was at the round's start */
    struct tl snap[MAXL];
};

static void set(char dst[16], const char *src)
{
    size_t n = strlen(src);

    n = n > 15 ? 15 : n;
    memmove(dst, src, n);
    dst[n] = '\0';
}

static void sim_lease(struct sim *s, const char *key, const char *parent)
{
    struct tl *t = &s->l[s->nl++];

    set(t->key, key);
    set(t->parent, parent ? parent : "");
    t->exists = true;
}

static size_t sim_worker(struct sim *s, const char *id)
{
    struct tw *w = &s->w[s->nw];

    memset(w, 0, sizeof(*w));
    set(w->id, id);
    w->running = true;
    return s->nw++;
}

static void took(struct sim *s, struct tw *w, size_t i)
{
    struct tl *t = &s->l[i];

    if (t->last_owner[0] && strcmp(t->last_owner, w->id) != 0)
        s->moves++;
    set(t->owner, w->id);
    set(t->last_owner, w->id);
    t->claim[0] = '\0';
    t->epoch++;
    t->counter++;
    w->held[i] = true;
    w->my_epoch[i] = t->epoch;
    w->yield_asked[i] = false;
}

static void release(struct tl *t, struct tw *w, size_t i)
{
    if (strcmp(t->owner, w->id) == 0 && t->epoch == w->my_epoch[i]) {
        t->owner[0] = t->claim[0] = '\0';
        t->counter++;
    }
    w->held[i] = false;
}

/* One round of worker k: heartbeat, read, plan, write. */
static void sim_turn(struct sim *s, size_t k)
{
    struct tw *w = &s->w[k];
    const struct tl *seen = s->snapshot ? s->snap : s->l;
    struct lease_view v[MAXL];
    struct lease_worker_view wv[MAXW];
    struct lease_plan p = { 0 };
    struct lease_plan_in in = { .me = w->id, .duration_ms = D, .leases = v, .nleases = s->nl,
                                .workers = wv, .nworkers = s->nw };

    if (!w->running)
        return;
    s->beat[k]++;
    for (size_t j = 0; j < s->nw; j++) {
        if (s->beat[j] != w->seen_beat[j] || !w->beat_at[j]) {
            w->seen_beat[j] = s->beat[j];
            w->beat_at[j] = s->now;
        }
        wv[j] = (struct lease_worker_view){ s->w[j].id, s->now - w->beat_at[j] };
    }
    for (size_t i = 0; i < s->nl; i++) {
        const struct tl *t = &seen[i];
        bool parent_item = false, parent_done = false;

        if (!t->exists)
            continue;
        if (t->counter != w->seen_counter[i] || !w->reads[i]) {
            w->seen_counter[i] = t->counter;
            w->changed_at[i] = s->now;
        }
        if (t->owner[0])
            w->unowned_since[i] = 0;
        else if (!w->unowned_since[i])
            w->unowned_since[i] = s->now;
        w->reads[i]++;
        for (size_t j = 0; j < s->nl; j++)
            if (t->parent[0] && seen[j].exists && strcmp(seen[j].key, t->parent) == 0) {
                parent_item = true;
                parent_done = seen[j].done;
            }
        v[i] = (struct lease_view){
            .key = t->key, .parent = t->parent[0] ? t->parent : NULL,
            .owner = t->owner[0] ? t->owner : NULL, .claim = t->claim[0] ? t->claim : NULL,
            .done = t->done, .held = w->held[i],
            .orphan = !w->held[i] && strcmp(t->owner, w->id) == 0,
            .tenure_ok = w->held[i] && strcmp(t->owner, w->id) == 0 && t->epoch == w->my_epoch[i],
            .parent_item = parent_item, .parent_done = parent_done, .reads = w->reads[i],
            .unchanged_ms = s->now - w->changed_at[i],
            .unowned_ms = w->unowned_since[i] ? s->now - w->unowned_since[i] : 0,
            .claim_ms = w->claim_at[i] ? s->now - w->claim_at[i] : 0,
            .yield_asked = w->yield_asked[i] };
    }
    cr_assert_eq(lease_plan_make(&in, &p), 0);
    for (size_t n = 0; n < p.n; n++) {
        size_t i = p.steps[n].lease;
        struct tl *t = &s->l[i];
        const struct tl *was = &seen[i];

        switch (p.steps[n].what) {
        case LEASE_RENEW:
        case LEASE_CLEAR_CLAIM:
            if (strcmp(t->owner, w->id) == 0 && t->epoch == w->my_epoch[i]) {
                t->counter++;
                if (p.steps[n].what == LEASE_CLEAR_CLAIM)
                    t->claim[0] = '\0';
            } else {
                w->held[i] = false;
            }
            break;
        case LEASE_TAKE:
            if (t->counter == was->counter && t->epoch == was->epoch) {
                if (t->owner[0] && strcmp(t->owner, w->id) != 0 &&
                    s->now - w->changed_at[i] < D)
                    s->takes_before_expiry++;
                took(s, w, i);
            }
            break;
        case LEASE_CLAIM:
            if (strcmp(t->owner, was->owner) == 0 && t->epoch == was->epoch && !t->claim[0]) {
                set(t->claim, w->id);
                w->claim_at[i] = s->now;
            }
            break;
        case LEASE_FORCE:
            if (strcmp(t->owner, was->owner) == 0 && t->epoch == was->epoch &&
                strcmp(t->claim, w->id) == 0)
                took(s, w, i);
            break;
        case LEASE_RELEASE:
            release(t, w, i);
            break;
        case LEASE_YIELD: /* the daemon drains the shard and gives it back at once */
            w->yield_asked[i] = true;
            release(t, w, i);
            break;
        case LEASE_LOST:
            w->held[i] = false;
            break;
        }
    }
    lease_plan_free(&p);
}

static void sim_round(struct sim *s)
{
    if (s->snapshot)
        memcpy(s->snap, s->l, sizeof(s->l));
    for (size_t k = 0; k < s->nw; k++)
        sim_turn(s, k);
    s->now += TICK;
}

static size_t owned_by(const struct sim *s, const char *id)
{
    size_t n = 0;

    for (size_t i = 0; i < s->nl; i++)
        n += s->l[i].exists && strcmp(s->l[i].owner, id) == 0;
    return n;
}

/* Counts differ by at most one over the running workers, and every lease
 * that is not done has an owner. */
static bool balanced(const struct sim *s)
{
    size_t lo = SIZE_MAX, hi = 0, owned = 0, open = 0;

    for (size_t k = 0; k < s->nw; k++) {
        size_t n = owned_by(s, s->w[k].id);

        if (!s->w[k].running)
            continue;
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
        owned += n;
    }
    for (size_t i = 0; i < s->nl; i++)
        open += s->l[i].exists && !s->l[i].done;
    return hi - lo <= 1 && owned == open;
}

static void owners(const struct sim *s, char out[MAXL][16])
{
    for (size_t i = 0; i < s->nl; i++)
        memcpy(out[i], s->l[i].owner, 16);
}

/* Runs until balanced (at most max rounds); returns the rounds it took. */
static int converge(struct sim *s, int max)
{
    for (int r = 1; r <= max; r++) {
        sim_round(s);
        if (balanced(s))
            return r;
    }
    return -1;
}

/* Nothing moves any more: owners unchanged over many more rounds. */
static void stays_put(struct sim *s, int rounds)
{
    char before[MAXL][16], after[MAXL][16];
    unsigned moves = s->moves;

    owners(s, before);
    for (int r = 0; r < rounds; r++)
        sim_round(s);
    owners(s, after);
    cr_assert_eq(s->moves, moves, "%u leases moved after the balance", s->moves - moves);
    cr_assert_eq(memcmp(before, after, sizeof(char) * 16 * s->nl), 0);
}

static void three_workers_join_one(bool snapshot)
{
    struct sim s = { .now = 1000000, .snapshot = snapshot };
    char key[16];
    int r;

    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        sim_lease(&s, key, NULL);
    }
    sim_worker(&s, "a");
    sim_round(&s);
    cr_assert_eq(owned_by(&s, "a"), 10, "alone, a takes every lease");
    sim_worker(&s, "b");
    sim_worker(&s, "c");
    r = converge(&s, 30);
    cr_assert_gt(r, 0, "not balanced after 30 rounds: a %zu b %zu c %zu", owned_by(&s, "a"),
                 owned_by(&s, "b"), owned_by(&s, "c"));
    cr_assert_eq(owned_by(&s, "a"), 4);
    cr_assert_eq(owned_by(&s, "b") + owned_by(&s, "c"), 6);
    cr_assert_eq(s.moves, 6, "each of the 6 leases b and c need moved once, and no other: %u",
                 s.moves);
    cr_assert_eq(s.takes_before_expiry, 0);
    stays_put(&s, 60);
}

Test(lease_plan, three_workers_converge_and_stay_put)
{
    three_workers_join_one(false);
}

Test(lease_plan, three_workers_planning_on_the_same_read_converge_and_stay_put)
{
    three_workers_join_one(true);
}

Test(lease_plan, one_thief_for_one_excess_where_counting_alone_sends_three)
{
    /* 5, 3, 3, 3: a thief that steals whenever it has two fewer than the
     * most loaded sends b, c and d at a together, which leaves a with 2 and
     * the others with 4: more steals follow.  One lease must move. */
    struct sim s = { .now = 1000000, .snapshot = true };
    const char *own[14] = { "a", "a", "a", "a", "a", "b", "b", "b", "c", "c", "c", "d", "d", "d" };
    char key[16];

    for (size_t k = 0; k < 4; k++)
        sim_worker(&s, (const char *[]){ "a", "b", "c", "d" }[k]);
    for (int i = 0; i < 14; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        sim_lease(&s, key, NULL);
        for (size_t k = 0; k < 4; k++)
            if (strcmp(s.w[k].id, own[i]) == 0)
                took(&s, &s.w[k], (size_t)i);
    }
    s.moves = 0;
    cr_assert_gt(converge(&s, 10), 0);
    cr_assert_eq(s.moves, 1, "%u leases moved", s.moves);
    stays_put(&s, 40);
}

Test(lease_plan, a_dead_workers_leases_are_taken_after_the_duration_and_no_sooner)
{
    struct sim s = { .now = 1000000 };
    char key[16];
    int64_t died;

    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        sim_lease(&s, key, NULL);
    }
    sim_worker(&s, "a");
    sim_worker(&s, "b");
    sim_worker(&s, "c");
    cr_assert_gt(converge(&s, 30), 0);
    stays_put(&s, 5);
    s.w[2].running = false; /* c is killed: no renewal, no heartbeat */
    died = s.now;
    while (owned_by(&s, "c") == 3 && s.now < died + 3 * D)
        sim_round(&s);
    /* the round that took it ran at s.now - TICK */
    s.now -= TICK;
    cr_assert_geq(s.now - died, D, "taken %lld ms after the last renewal", (long long)(s.now - died));
    s.now += TICK;
    cr_assert_eq(s.takes_before_expiry, 0);
    for (int r = 0; r < 20; r++)
        sim_round(&s);
    cr_assert_eq(owned_by(&s, "c"), 0);
    cr_assert_eq(owned_by(&s, "a"), 5);
    cr_assert_eq(owned_by(&s, "b"), 5);
}

Test(lease_plan, a_late_worker_gets_its_share_one_steal_per_read)
{
    struct sim s = { .now = 1000000 };
    char key[16];
    size_t got = 0;

    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof(key), "k%02d", i);
        sim_lease(&s, key, NULL);
    }
    sim_worker(&s, "a");
    sim_worker(&s, "b");
    sim_worker(&s, "c");
    cr_assert_gt(converge(&s, 30), 0);
    sim_worker(&s, "d");
    for (int r = 0; r < 30 && !balanced(&s); r++) {
        sim_round(&s);
        cr_assert_leq(owned_by(&s, "d"), got + 1, "at most one lease gained per read");
        got = owned_by(&s, "d");
    }
    cr_assert(balanced(&s));
    cr_assert_eq(owned_by(&s, "d"), 3);
    stays_put(&s, 40);
}

Test(lease_plan, children_are_read_after_their_parents_are_done)
{
    struct sim s = { .now = 1000000 };
    size_t a;

    sim_lease(&s, "p", NULL);
    sim_lease(&s, "q", "p");
    a = sim_worker(&s, "a");
    sim_worker(&s, "b");
    for (int r = 0; r < 5; r++)
        sim_round(&s);
    cr_assert(s.l[0].owner[0] && !s.l[1].owner[0], "the child waits");
    s.l[0].done = true; /* its owner finished it */
    s.l[0].counter++;
    sim_round(&s);
    sim_round(&s);
    cr_assert(!s.l[0].owner[0], "a done parent is released");
    cr_assert(s.l[1].owner[0], "the child is taken");
    (void)a;
}
