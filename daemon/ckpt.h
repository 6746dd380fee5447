/* ckpt — the checkpoint store: where each shard's reading stands.
 *
 * Model: per stream ARN (with its table name), per shard id:
 *   seq     the last *finished* sequence number (DESIGN invariant 1), or none;
 *           the reader resumes AFTER_SEQUENCE_NUMBER seq, or at its start
 *           position when there is none
 *   ver     the external-version state {second, ordinal} *at* that record
 *           (invariant 2), so a restart recomputes the same versions
 *   parent  the parent shard id, or none
 *   done    the shard was read to its end and every record finished
 *   updated wall-clock time of the last change (status output, pruning)
 *   skip_before
 *           for a shard that started at LATEST and has no checkpoint yet:
 *           records created before that second are history it skips when
 *           it must read from TRIM_HORIZON (its first iterator expired, or
 *           the daemon restarted, before the first record came); 0 = none
 *
 * The store is an interface (ckpt_store.h): these functions keep the rules
 * every backend shares (a checkpoint never goes back, a child inherits its
 * parent's version state, what is pruned) and hand the rest to the backend:
 * where the entries live, how they are found and iterated, how they are
 * loaded and saved.  ckpt_new makes the file backend (ckpt_file.c), which
 * keeps the store in STATE_DIR/checkpoints.json; shard leases kept in a
 * DynamoDB table can be another backend behind the same calls.
 *
 * Lifetime of shard pointers: a struct ckpt_shard returned here stays valid
 * until ckpt_prune removes it or ckpt_free; callers may keep it.  Its fields
 * are read-only for callers: change them with the ckpt_shard_* setters so the
 * store knows it is dirty.
 *
 * Everything here runs on one thread (the loop's); a backend may do its
 * I/O elsewhere (the file backend writes on the thread pool, from a private
 * copy of the serialised bytes).
 */
#ifndef DDB2ES_CKPT_H
#define DDB2ES_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon/docver.h"
#include "daemon/seqnum.h"

struct uv_loop_s; /* uv_loop_t; this header does not need uv.h */

#define CKPT_FILE "checkpoints.json"
#define CKPT_PRUNE_AGE (24 * 60 * 60) /* seconds a done shard is kept */

/* ---- the store --------------------------------------------------------- */

struct ckpt_shard {
    const char *id;              /* owned by the store */
    const char *parent;          /* owned by the store; NULL = no parent */
    const char *arn;             /* the stream's ARN (owned by the store) */
    const char *table;           /* the stream's table (owned by the store) */
    char seq[SEQNUM_MAX + 1];    /* last finished sequence number; "" = none */
    struct docver ver;           /* version state at seq (or inherited) */
    bool done;
    time_t updated;
    int64_t skip_before;         /* see the model above; 0 = none */
    time_t seen;                 /* in memory only: when a listing last held it (pruning) */
};

struct ckpt;

/* A new, empty store of the file backend, for STATE_DIR/checkpoints.json
 * (nothing is read yet; the format is in ckpt_file_int.h).  NULL when out
 * of memory. */
struct ckpt *ckpt_new(const char *state_dir);
/* Frees the store and every shard.  Must not be called while an asynchronous
 * save is in flight (ckpt_busy); NULL is a no-op. */
void ckpt_free(struct ckpt *ck);
/* Where the store lives, for messages: the file's path. */
const char *ckpt_path(const struct ckpt *ck);

/* Reads the saved store into an empty store (checkpoints.json).
 * 0: loaded, or the file does not exist (empty store).
 * -EBADMSG: the content is wrong (exit 65); -EBUSY: the store is not empty;
 * -errno: the file could not be read.
 * On error err holds one line "PATH: what is wrong" and the store is empty. */
int ckpt_load(struct ckpt *ck, char *err, size_t errlen);

/* The shard's entry, or NULL when unknown. */
struct ckpt_shard *ckpt_shard_get(struct ckpt *ck, const char *arn, const char *shard_id);
/* The shard's entry, created when unknown (with no seq, not done, version
 * state {0, 0}, updated = now) under a stream created for table if needed.
 * parent may be NULL; it is recorded only when the entry is created.  NULL
 * when out of memory or an argument is empty. */
struct ckpt_shard *ckpt_shard_add(struct ckpt *ck, const char *table, const char *arn,
                                  const char *shard_id, const char *parent, time_t now);
/* Records that every record up to seq has finished, with the version state
 * right after it.  0, or -EINVAL when seq is not a sequence number or is
 * below the shard's current one (a checkpoint never goes back).  An equal
 * seq only updates the version state. */
int ckpt_shard_advance(struct ckpt *ck, struct ckpt_shard *sh, const char *seq,
                       const struct docver *ver, time_t now);
/* Marks the shard read to its end with every record finished. */
void ckpt_shard_finish(struct ckpt *ck, struct ckpt_shard *sh, time_t now);
/* The version state a reader starts this shard with.  A shard with a
 * checkpoint continues its own state.  One without takes its parent's (the
 * parent is finished first, invariant 3), which carries the in-second
 * ordinal across the lineage; the inherited state is stored in the shard so
 * it survives a restart even after the parent is pruned.  No parent known:
 * the shard's own state ({0, 0} for a new one). */
struct docver ckpt_shard_resume_version(struct ckpt *ck, struct ckpt_shard *sh);

/* A listing held the shard now (kept from pruning a while: see ckpt_prune). */
void ckpt_shard_seen(struct ckpt_shard *sh, time_t now);
/* Sets or clears (0) the shard's skip_before (see the model above). */
void ckpt_shard_skip_before(struct ckpt *ck, struct ckpt_shard *sh, int64_t second);
/* True when the store holds any shard of this table, in any stream. */
bool ckpt_table_known(const struct ckpt *ck, const char *table);
/* The highest version state of any shard of the table ({0, 0} if none):
 * a stream that replaces another starts above it, so a newer record never
 * loses to an older one across the switch. */
struct docver ckpt_table_max_version(const struct ckpt *ck, const char *table);
/* Raises the shard's version state to at least ver (a root shard starting
 * above the table's history); it is saved with the shard. */
void ckpt_shard_raise_version(struct ckpt *ck, struct ckpt_shard *sh,
                              const struct docver *ver);

/* Calls fn for every shard, streams and shards in insertion (file) order,
 * until fn returns non-zero; returns that value, or 0.  fn must not add or
 * remove shards. */
int ckpt_foreach(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                 void *arg);
size_t ckpt_count(const struct ckpt *ck); /* number of shards */

/* Drops shards that are done and were last updated more than CKPT_PRUNE_AGE
 * before now, unless a listing still held them in the last hour (seen: a
 * shard still listed would be taken for a new one), and streams left with
 * no shard.  Pointers to dropped shards become invalid.  Returns how many
 * shards were dropped. */
size_t ckpt_prune(struct ckpt *ck, time_t now);

/* True when the store changed since the content of the last successful save
 * (or load) was taken. */
bool ckpt_dirty(const struct ckpt *ck);
/* True while an asynchronous save is in flight or queued. */
bool ckpt_busy(const struct ckpt *ck);

/* ---- saving ------------------------------------------------------------ */

/* status: 0 when the saved state is durable (the file backend: the file is
 * on disk), else -errno (e.g. -ENOSPC, -EFBIG); on failure the previously
 * saved state is intact (no .tmp file is left), and the store is dirty
 * again so the caller's next periodic save retries. */
typedef void ckpt_saved_cb(struct ckpt *ck, int status, void *arg);

/* Takes the store's state now (on the calling loop thread) and saves it off
 * the loop (the file backend: serialised now, written on the loop's thread
 * pool).  At most one write is in flight: a request made during
 * a write is coalesced with any other such request into one more write,
 * started when the current one ends and carrying the state of that moment.
 * cb (may be NULL) runs on the loop thread once the write covering this
 * request ends.  Returns 0, or -errno (cb will then not run). */
int ckpt_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg);
/* Serialises and writes on the calling thread (start-up, shutdown).
 * 0 or -errno; -EBUSY while an asynchronous save is in flight (run the loop
 * until it ends first). */
int ckpt_save_sync(struct ckpt *ck);

#endif
