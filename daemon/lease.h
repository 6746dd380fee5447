/* lease — several ddb2es processes ("workers") share the shards of the
 * configured tables through leases kept in one DynamoDB table ([leases]).
 * DynamoDB is the distributed engine: every change of ownership and every
 * checkpoint is one conditional write; nothing else is shared.
 *
 * ---- What was learnt from others ------------------------------------------
 *
 * The Kinesis Client Library (KCL: LeaseCoordinator, LeaseTaker,
 * LeaseRenewer) keeps one item per shard with an owner, a lease counter
 * bumped by every renewal, and the checkpoint.  A worker never trusts
 * another host's clock: a lease is expired when this worker has seen its
 * counter unchanged for the lease duration, on its own monotonic clock.  It
 * steals one lease at a time from the most loaded worker.  Its users were
 * hurt by:
 *   - steal thrash: targets of ceil(leases / workers) computed by each
 *     worker alone, several thieves picking the same victim in one round,
 *     leases moving back and forth; here every worker computes the same
 *     quota for everyone from the same items, and a thief may only take a
 *     lease its victim holds beyond its quota (the plan, below);
 *   - double processing after a steal: the victim kept working until its
 *     next renewal, the thief restarted from the last checkpoint; here a
 *     steal is first a request (claim) that the owner honours by stopping,
 *     finishing what is in flight, checkpointing and releasing;
 *   - "spurious renewal failure": a renewal answered 500 was applied, its
 *     retry then failed its condition on the counter and the lease was
 *     dropped; here renewals and checkpoints are conditional on the owner
 *     and the *epoch* (which only a change of owner moves), so a retried
 *     write that already landed still succeeds;
 *   - a renew loop dying on lease-table errors (DependencyException,
 *     throttling): here an error is never proof of loss; the loop goes on,
 *     and only a failed condition or the deadline below gives a lease up;
 *   - lease tables throttled (provisioned capacity): the table is created
 *     with on-demand billing.
 * Data Prepper's DynamoDB source (its coordination store: partition items
 * with an owner, an ownership timeout and a version for conditional writes)
 * lost positions when its checkpoints did not follow the acknowledgements
 * (a restart re-read whole shards) and when the store was unreachable (its
 * leader item expired).  Here the checkpoint lives on the lease item, a
 * standby reads it when it takes the lease, and an unreachable table stops
 * the reading (the deadline) without ending the process.
 *
 * ---- The table -------------------------------------------------------------
 *
 * Key schema: one string hash key, "key".  Billing: PAY_PER_REQUEST.  Two
 * kinds of item (the codec and every request: leasetab.h):
 *
 *   shard lease   key "<stream ARN>|<shard id>"
 *     stream, shard, table   S   what the lease is for (table: the DynamoDB table)
 *     parent                 S   the parent shard id; absent = none
 *     owner                  S   the worker holding it; absent = free
 *     owner_run              S   the owner's process (the run of its heartbeat)
 *     claim                  S   a worker asking the owner for it; absent = none
 *     counter                N   bumped by every write but a claim: liveness
 *     epoch                  N   bumped by every take: one owner's tenure
 *     seq                    S   last finished sequence number; absent = none
 *     ver_s, ver_n           N   the version state at seq (daemon/docver.h)
 *     skip_before            N   see daemon/ckpt.h; absent = 0
 *     done                   BOOL  read to its end, every record finished
 *     updated                S   RFC 3339, the writer's wall clock (status, pruning only)
 *   worker        key "worker|<worker id>"
 *     worker, run            S   the id, and a random name of this process
 *     beat                   N   bumped every renewal period: liveness
 *     lease_duration_ms      N   this worker's lease_duration (a mismatch is logged)
 *     leases                 N   how many it holds (status)
 *     started, updated       S   RFC 3339
 *
 * The writes and their conditions (me = this worker, E = the epoch of my
 * tenure, C and E' = counter and epoch as this worker last read them):
 *   create      Put        attribute_not_exists(key)         (a new shard; parents first)
 *   renew       counter+1  owner = me AND epoch = E          (returns the item: a claim?)
 *   checkpoint  seq, ver_s, ver_n, skip_before, done, updated, counter+1
 *                          owner = me AND epoch = E
 *   take        owner = me, owner_run = mine, epoch+1, counter+1, claim removed
 *                          counter = C AND epoch = E'        (returns the item: the checkpoint)
 *   claim       claim = me owner = V AND epoch = E' AND attribute_not_exists(claim)
 *   force       as take    owner = V AND epoch = E' AND claim = me
 *   release     owner, owner_run and claim removed, counter+1
 *                          owner = me AND epoch = E
 *   prune       Delete     done = true AND counter = C
 *   heartbeat   beat+1 ... run = mine (the first one of a process: unconditional)
 * A failed condition on renew, checkpoint or release means the lease is
 * lost: this worker stops reading the shard at once and never writes its
 * checkpoint again (its epoch is gone for good).  A failed take, claim or
 * force means someone was faster: nothing happens until the next read of
 * the table.  A heartbeat whose condition fails, or a read (started after
 * this process's heartbeat landed) whose heartbeat item names another run,
 * means another process runs with this worker_id: the coordinator gives its
 * leases up, stops taking any and says so (LEASE_FATAL); worker ids must be
 * unique among running workers.
 *
 * ---- The rules (a pure function of what one read of the table shows:
 *      lease_plan.h) -------------------------------------------------------
 *
 * Leasable: not done, and no parent, or the parent's item says done, or the
 * parent has no item and this worker saw the child in two reads in a row
 * (creates go parents first, so a read started after one that listed the
 * child lists its parent unless the parent was done and pruned).
 * A lease is live when its owner is this worker, or its counter changed less
 * than lease_duration ago by this worker's clock; a worker is alive when it
 * is this one, owns a live lease, or its beat changed less than
 * lease_duration ago.  A live lease counts for its owner, or for its
 * claimer when the claimer is alive.
 * Quotas: N live-or-leasable leases, W alive workers; ranked by their
 * counts (highest first, then by id), the first N mod W get N/W + 1, the
 * others N/W.  Every worker computes the same quotas from the same read.
 *   renew     every lease this worker holds, every lease_duration/3;
 *   take      free, expired, or orphaned leases (owned by this worker id
 *             but by a process of it that is gone: its owner_run is not the
 *             run this id's heartbeat names now; or by this process, which
 *             gave it up at its deadline) - an orphan at once; the
 *             available ones, sorted, are dealt to the workers below quota
 *             in id order, and each takes its share; one free for longer
 *             than lease_duration is taken by anyone (a worker that is
 *             alive but does not take).  A lease of this id held by another
 *             running process (a duplicate id) is left alone;
 *   steal     when nothing is available and this worker is below quota:
 *             the workers below quota (by id) are matched with the units
 *             above quota of the others (most loaded first), and this
 *             worker claims the one lease its match names, at most one per
 *             read and none while a claim of its own is pending; the owner
 *             gives it back (yield below); if it has not after
 *             lease_duration, the claimer forces it;
 *   give up   a lease whose item says another owner or epoch (lost); a
 *             held lease that is done (released, nothing to read); a held
 *             lease claimed by an alive worker (yield: the daemon stops
 *             reading it, finishes, checkpoints and gives it back); a claim
 *             by a dead worker is cleared at the next renewal.
 * A lease only moves from a worker above its quota to one below it, and a
 * thief is always at least two below its victim (ranked quotas differ by at
 * most one): each steal lowers the sum of the squared counts, so the counts
 * converge, and once every count equals its quota (counts differ by at most
 * one) nothing moves again.  No ping-pong.
 *
 * ---- Timing (d = lease_duration; all local monotonic clocks) ------------
 *
 *   renewals and heartbeats   every d/3
 *   reads of the table        every s = max(1 s, d/10), at most d/3 (a
 *                             consistent Scan, all pages)
 *   holder's deadline         the start of its last successful renewal (or
 *                             take, or checkpoint) + d - d/10: past it the
 *                             lease is lost here, the daemon stops reading
 * Safety: another worker takes an expired lease only after seeing its
 * counter unchanged for d, counted from the end of the read that first
 * showed that counter, which is after the renewal was applied, which is
 * after the holder sent it: the holder has stopped d/10 before anyone may
 * take.  Take-over after SIGKILL: the last renewal is seen at most s after
 * it was applied and found expired at most s after d more: within d + 2s
 * (12 s by default, d + 2 s while d <= 10 s).  After SIGTERM the leases
 * are released (owner cleared) and taken at the next read: within s plus
 * one write.  A steal asked with a claim lands within s (the owner's next
 * read) plus the owner's drain; forced after d at the latest.
 * "Cannot renew for lease_duration": when no heartbeat succeeded for
 * d - d/10 the state is LEASE_STALE (the daemon says why in /readyz and a
 * metric), and every held lease passes its deadline at about the same time.
 *
 * ---- How the daemon calls it -----------------------------------------------
 *
 *   l = lease_new(loop, aws, &opts, &callbacks)       with the process's AWS client
 *   ck = ckpt_lease_new(l)                            the checkpoint store (below)
 *   lease_start(l, ready, arg)                        ensure the table, first heartbeat,
 *                                                     first read: ready(0) or an exit code
 *   (optional, once) lease_seed(l, file_store, cb)    checkpoints.json into the table
 *   ckpt_load(ck) ... start the readers               entries: every shard in the table
 *   gained(arn, shard)  -> start reading it (resume from its entry)
 *   lost(arn, shard)    -> stop reading it at once, drop what is not acknowledged,
 *                          never advance its entry again
 *   yield(arn, shard)   -> stop reading it, finish what is in flight, advance its
 *                          entry, ckpt_save_async, then lease_give_back
 *   state(st, why)      -> LEASE_STALE / LEASE_FATAL: not ready (/readyz), log it
 *   the reader lists shards: ckpt_shard_add for each (creates its item); reads
 *   only shards lease_holds() says this worker holds
 *   the periodic checkpoint: ckpt_save_async(ck) as today (held shards only are
 *   written; a lost one is skipped, and lost() has told the daemon)
 *   SIGTERM: stop reading, finish in flight, ckpt_save_async, then
 *   lease_release_all(l, done, arg); then lease_close(l, closed, arg); after
 *   closed: ckpt_free(ck), lease_free(l).
 * Every callback runs on the loop, never inside the call that caused it.
 */
#ifndef DDB2ES_LEASE_H
#define DDB2ES_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aws/creds.h"
#include "aws/ddb.h"

struct lease;
struct ckpt;

/* How a process reaches DynamoDB on a private loop, for the store's
 * synchronous calls (ckpt_load, ckpt_save_sync): the settings the daemon
 * builds its own clients with (strings borrowed: they must outlive the
 * coordinator). */
struct lease_conn {
    struct aws_opts aws;
    struct creds_opts creds;
};

struct lease_opts {
    const char *table;      /* the lease table */
    const char *worker_id;  /* unique among running workers */
    int64_t duration_ms;    /* lease_duration */
    bool create_table;      /* create it when missing */
    struct lease_conn conn;
};

enum lease_state {
    LEASE_STARTING, /* before the first read of the table */
    LEASE_OK,
    LEASE_STALE,    /* no write to the lease table succeeded for lease_duration: reading stops */
    LEASE_FATAL,    /* another process runs with this worker_id, or the table is gone */
    LEASE_STOPPED,  /* released or closed */
};

struct lease_cbs {
    /* This worker holds the shard's lease now: its entry in the store holds
     * the checkpoint read with the take. */
    void (*gained)(const char *table, const char *arn, const char *shard, void *arg);
    /* The lease is gone (another worker took it, or it passed its deadline):
     * stop reading the shard at once. */
    void (*lost)(const char *table, const char *arn, const char *shard, const char *why,
                 void *arg);
    /* Another worker asked for the lease: stop reading, finish, checkpoint,
     * then lease_give_back (NULL: the lease is released at once, like a
     * lost one). */
    void (*yield)(const char *table, const char *arn, const char *shard, void *arg);
    void (*state)(enum lease_state st, const char *why, void *arg);
    void *arg;
};

/* Counters for daemon/metrics.c. */
struct lease_metrics {
    uint64_t held;         /* gauge: leases held now */
    uint64_t workers;      /* gauge: workers seen alive at the last read */
    uint64_t taken;        /* leases taken (free, expired, released or forced) */
    uint64_t renew_failed; /* renewals that failed (errors and lost conditions) */
    uint64_t stolen;       /* claims this worker made on another's lease */
    uint64_t lost;         /* leases lost (condition or deadline) */
    uint64_t released;     /* leases released (done, given back, or at stop) */
    uint64_t yielded;      /* leases given back on a claim */
    uint64_t reads;        /* reads of the table (Scan, all pages) */
    uint64_t read_failures;
    uint64_t write_errors; /* lease-table writes that failed without an answer on the condition */
};

typedef void lease_ready_cb(int status, const char *why, void *arg);
typedef void lease_done_cb(void *arg);

/* A coordinator for opts (copied; conn's strings borrowed).  NULL when out
 * of memory or an option is missing.  aws is the daemon's client on loop;
 * it must outlive the coordinator. */
struct lease *lease_new(uv_loop_t *loop, struct aws *aws, const struct lease_opts *opts,
                        const struct lease_cbs *cbs);
/* Makes sure the table exists with the right key schema (creates it when
 * missing and allowed, waiting until it is ACTIVE), writes the first
 * heartbeat, reads the table, takes what the plan says and starts the
 * timers.  ready runs once: status 0; 78 (the table is missing and
 * create_table is false, or its key schema is not this one; why says
 * which); 69 (the table could not be reached: why says what answered).
 * Returns 0, or -errno (ready will not run). */
int lease_start(struct lease *l, lease_ready_cb *ready, void *arg);
/* True while this worker holds the shard's lease. */
bool lease_holds(const struct lease *l, const char *arn, const char *shard);
/* After yield: releases the lease (owner cleared) once no checkpoint write
 * of it is in flight.  -ENOENT when it is not held. */
int lease_give_back(struct lease *l, const char *arn, const char *shard);
/* SIGTERM: stops taking, releases every held lease (after its checkpoint
 * write in flight, if any) and deletes this worker's heartbeat; done runs
 * once every release has answered (those that failed expire after
 * lease_duration).  Save the checkpoints first. */
void lease_release_all(struct lease *l, lease_done_cb *done, void *arg);
/* Stops the timers and cancels every call; closed runs once every handle is
 * closed.  Leases still held expire after lease_duration. */
void lease_close(struct lease *l, lease_done_cb *closed, void *arg);
/* After lease_close's callback (lease_new opened timers: close it even when
 * it never started).  NULL is a no-op. */
void lease_free(struct lease *l);

enum lease_state lease_state(const struct lease *l, const char **why);
const struct lease_metrics *lease_metrics(const struct lease *l);
/* Leases held now for the DynamoDB table (ddb2es_leases_held{table}). */
size_t lease_held_for_table(const struct lease *l, const char *table);
const char *lease_worker_id(const struct lease *l);
const char *lease_table(const struct lease *l);

/* Seeds the lease table from another store (checkpoints.json): one item per
 * entry, created only when no item of that shard exists (so it runs once in
 * effect, and never goes back on a position the table holds).  done runs
 * once with 0 or -errno (the first failure), and how many items were created
 * and how many already existed.  The coordinator need not be started. */
typedef void lease_seed_cb(int status, size_t created, size_t existed, void *arg);
int lease_seed(struct lease *l, const struct ckpt *from, lease_seed_cb *done, void *arg);

/* The lease table read once on a private loop with clients made from conn
 * (`ddb2es status`, which runs no coordinator): every item, as a JSON array
 * of DynamoDB items (caller decrefs).  0, or -ENOENT (no table),
 * -ETIMEDOUT, -EIO, with why. */
int lease_table_scan(const struct lease_conn *conn, const char *table, json_t **items, char *why,
                     size_t len);

/* The checkpoint store on the coordinator's records (daemon/ckpt_store.h):
 *   entries   every shard lease of the table (as last read) and those the
 *             daemon adds (ckpt_shard_add: the item is created by the next
 *             save, parents before children); entries of shards another
 *             worker holds follow the table at each read.
 *   save      one write per changed entry this worker holds, conditional on
 *             its tenure (all or nothing per entry; an entry whose lease was
 *             lost is not written and does not fail the save: lost() told
 *             the daemon); new entries are created, pruned ones deleted.
 *             At most one save in flight; requests during it coalesce into
 *             one more.  save_sync runs the same on a private loop with its
 *             own clients (opts.conn).
 *   load      into a store nothing was added to: the records as the
 *             coordinator's last read left them, or, before any read, a
 *             read on a private loop.  An item that is not a lease of this
 *             format: -EBADMSG naming the table and the item.
 *   order     of a load: the streams by ARN (they end in their creation
 *             time), their shards by id (they begin with theirs), which is
 *             the order a listing adds them in; entries added later (by the
 *             daemon or by a later read) come after, in the order added.
 * Free the store before the coordinator.  NULL when out of memory. */
struct ckpt *ckpt_lease_new(struct lease *l);

#endif
