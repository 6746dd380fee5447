/* ckpt_store — what a checkpoint-store backend implements (ckpt.h is what
 * the shard code calls).
 *
 * A backend embeds struct ckpt first in its own struct, points ck->ops at
 * its table and finds itself again with container_of.  The ckpt_* functions
 * of ckpt.h keep the rules every backend shares and call the table for the
 * rest:
 *   - arguments are checked, and an entry already known is returned, before
 *     add is called;
 *   - ckpt_shard_advance refuses a sequence number that is not one or is
 *     below the entry's (a checkpoint never goes back) before it changes the
 *     entry;
 *   - the version arithmetic (a child inheriting its parent's state, a root
 *     raised to the table's highest, docver.h) is done here, on the entries;
 *   - the setters write the entry's fields themselves, then call changed;
 *   - ckpt_table_known and ckpt_table_max_version walk foreach;
 *   - which entries may be pruned is ckpt_shard_prunable.
 *
 * What a backend must guarantee:
 *
 * Entries.  get returns the entry added for (arn, id), the same pointer
 * every time, until prune drops it or the store is freed; its strings (id,
 * parent, arn, table) stay valid as long.  add makes the entry of an unknown
 * (arn, id) with non-empty arguments: seq "", ver {0, 0}, not done,
 * updated = now, skip_before 0, seen 0, parent copied (NULL = none); a new
 * entry is a change (the store is dirty).  An entry's fields change only
 * through the ckpt_* setters, on the loop thread, each followed by changed;
 * seen is memory only and never saved.
 *
 * Order.  foreach visits every entry exactly once, in a stable order: the
 * streams in the order their first entry was added, and within a stream the
 * entries in the order they were added (a loaded store keeps the saved
 * order).  `ddb2es status` lists shards in this order.  fn must not add or
 * remove entries.
 *
 * What save means.  A save takes the state of every entry at the moment it
 * is asked for (save_sync: the call; save_async: the call, or for a request
 * coalesced behind a write in flight, the moment that write ends) and makes
 * it durable: once it reports 0, a crash at any later point loses nothing
 * of that state, and a load (by this process or a later one, on this host
 * or, for a shared backend, another) returns it.  A save is all or nothing:
 * a failed or interrupted save leaves the previously saved state whole,
 * never part of the new one.  Saves become durable in the order they were
 * asked for, so an older state never replaces a newer one: at most one
 * write is in flight, and requests made during it coalesce into one more
 * write started when it ends.  A save that fails reports -errno and leaves
 * the store dirty, so the next periodic save carries the state again.
 * save_async returns 0 and later runs cb exactly once on the loop thread
 * (never before save_async returned), or returns -errno and never runs cb.
 * save_sync returns -EBUSY while an asynchronous save is in flight.
 *
 * Dirty and busy.  dirty is true when an entry was added, changed or pruned
 * since the state of the last successful save (or load) was taken; busy is
 * true while an asynchronous save is in flight or queued.  free is never
 * called while busy.
 *
 * Load.  Only into an empty store (-EBUSY otherwise).  Nothing saved yet is
 * a first start: 0 and an empty store.  Content that is not what the
 * backend saved: -EBADMSG with err set to one line "WHERE: what is wrong"
 * (the daemon exits 65 rather than start again from scratch); anything
 * else, -errno with err set.  On error the store is left empty; after a
 * load the store is not dirty.
 *
 * Threads.  Every operation is called on the loop thread.  A backend may do
 * its I/O elsewhere (the thread pool), from a private copy of the state.
 */
#ifndef DDB2ES_CKPT_STORE_H
#define DDB2ES_CKPT_STORE_H

#include "daemon/ckpt.h"

struct ckpt_store_ops {
    void (*free)(struct ckpt *ck);
    const char *(*path)(const struct ckpt *ck);
    int (*load)(struct ckpt *ck, char *err, size_t errlen);

    struct ckpt_shard *(*get)(struct ckpt *ck, const char *arn, const char *shard_id);
    struct ckpt_shard *(*add)(struct ckpt *ck, const char *table, const char *arn,
                              const char *shard_id, const char *parent, time_t now);
    /* sh's saved fields (seq, ver, done, updated, skip_before) were just
     * changed: the next save carries them. */
    void (*changed)(struct ckpt *ck, struct ckpt_shard *sh);
    int (*foreach)(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                   void *arg);
    size_t (*count)(const struct ckpt *ck);
    /* Drops the entries ckpt_shard_prunable names, and streams left empty. */
    size_t (*prune)(struct ckpt *ck, time_t now);

    bool (*dirty)(const struct ckpt *ck);
    bool (*busy)(const struct ckpt *ck);
    int (*save_async)(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg);
    int (*save_sync)(struct ckpt *ck);
};

/* The part of every store the ckpt_* functions see. */
struct ckpt {
    const struct ckpt_store_ops *ops;
};

/* True when ckpt_prune drops sh now: done, last updated more than
 * CKPT_PRUNE_AGE before now, and not held by a listing in the last hour. */
bool ckpt_shard_prunable(const struct ckpt_shard *sh, time_t now);

#endif
