/* lease_plan — what one worker does with the leases after one read of the
 * lease table: renew, take, claim (the first half of a steal), force (the
 * second half, when the owner did not give it back), release, yield, and
 * which leases it has lost.  The rules and why they converge: lease.h.
 *
 * Pure: no I/O, no clock (the caller says how long things have been seen
 * unchanged), no state between calls.  Every worker computes the same
 * quotas from the same read.
 */
#ifndef DDB2ES_LEASE_PLAN_H
#define DDB2ES_LEASE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One shard lease as this worker sees it.  Strings are borrowed. */
struct lease_view {
    const char *key;      /* the table key: the order leases are dealt in */
    const char *parent;   /* NULL = no parent */
    const char *owner;    /* NULL = free */
    const char *claim;    /* NULL = none */
    bool done;            /* the item says done */
    bool held;            /* this process holds it (it took it) */
    bool orphan;          /* owned by this worker id, by a process of it that is gone (or by
                             this process, which lost it by its deadline): to be taken back */
    bool tenure_ok;       /* held, and the item still has this process's owner and epoch */
    bool parent_item;     /* the parent has an item in this read */
    bool parent_done;     /* ... which says done */
    unsigned reads;       /* reads in a row that listed it, this one included */
    int64_t unchanged_ms; /* how long its counter has been seen unchanged */
    int64_t unowned_ms;   /* how long it has been seen without an owner (0 when owned) */
    int64_t claim_ms;     /* a claim of this worker's: how long since it landed */
    bool yield_asked;     /* the daemon was asked to give it back already */
};

/* Another worker's heartbeat. */
struct lease_worker_view {
    const char *id;
    int64_t unchanged_ms; /* how long its beat has been seen unchanged */
};

struct lease_plan_in {
    const char *me;
    int64_t duration_ms;
    const struct lease_view *leases;
    size_t nleases;
    const struct lease_worker_view *workers; /* this worker's own may be among them */
    size_t nworkers;
};

enum lease_do {
    LEASE_RENEW,       /* held: renew it */
    LEASE_TAKE,        /* free, expired, or an orphan of this id: take it */
    LEASE_CLAIM,       /* ask its owner for it (at most one per plan) */
    LEASE_FORCE,       /* the owner did not give it back within lease_duration: take it */
    LEASE_RELEASE,     /* held and done: release it */
    LEASE_YIELD,       /* held and claimed by an alive worker: ask the daemon to give it back */
    LEASE_CLEAR_CLAIM, /* held and claimed by a dead worker: clear the claim when renewing */
    LEASE_LOST,        /* held, but the item has another owner or epoch */
};

struct lease_step {
    enum lease_do what;
    size_t lease; /* index into in->leases */
};

struct lease_plan {
    struct lease_step *steps;
    size_t n, cap;
    size_t workers; /* alive, this one included */
    size_t leases;  /* counted in the quotas: live, or available and leasable */
    size_t quota;   /* this worker's */
    size_t count;   /* this worker's leases (its pending claims included) before the steps */
};

/* Fills out (zeroed, or reused after lease_plan_free).  0 or -ENOMEM. */
int lease_plan_make(const struct lease_plan_in *in, struct lease_plan *out);
void lease_plan_free(struct lease_plan *p);
const char *lease_do_name(enum lease_do what);

#endif
