/* ckpt — the checkpoint store: where each shard's reading stands, kept in
 * STATE_DIR/checkpoints.json.
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
 *
 * File format (version 1), written by this module only; every key shown is
 * required, no other key is allowed:
 *
 *   {"version": 1,
 *    "streams": {
 *      "<stream arn>": {
 *        "table": "posts",
 *        "shards": {
 *          "<shard id>": {"seq": "<21-40 digits>" | null,
 *                         "ver_s": <seconds, 0..CKPT_SECOND_MAX>,
 *                         "ver_n": <ordinal, 0..CKPT_ORDINAL_MAX>,
 *                         "parent": "<shard id>" | null,
 *                         "done": false,
 *                         "updated": "2024-05-01T12:00:00Z"}}}}}
 *
 * Version 2 (written only when a shard carries it) adds one optional shard
 * key: "skip_before": <epoch seconds>, for a shard that started at LATEST
 * and has no checkpoint yet: records created before that second are
 * history it skips when it must read from TRIM_HORIZON (its first iterator
 * expired, or the daemon restarted, before the first record came).  Files of
 * version 1 are read as they are.
 *
 * Loading is strict: anything unexpected (not JSON, truncated, trailing
 * bytes, duplicate keys, another version, a wrong type, a bad sequence
 * number or time) fails with a message naming the file and the key; the
 * caller exits 65 rather than restart from scratch.  A missing file is a
 * first start: an empty store.
 *
 * Saving writes checkpoints.json.tmp (mode 0600), fsyncs it, renames it over
 * checkpoints.json and fsyncs the directory, so a crash leaves either the old
 * or the new file.  ckpt_save_async does the I/O on the libuv thread pool.
 *
 * Lifetime of shard pointers: a struct ckpt_shard returned here stays valid
 * until ckpt_prune removes it or ckpt_free; callers may keep it.  Its fields
 * are read-only for callers: change them with the ckpt_shard_* setters so the
 * store knows it is dirty.
 *
 * Everything here runs on one thread (the loop's), except the file write
 * itself, which ckpt_save_async hands to the thread pool with a private copy
 * of the serialised bytes.
 *
 * Beyond one machine (DESIGN.md): readers only use get/add/advance/finish/
 * resume_version and ask for saves, so shard leases kept in a DynamoDB table
 * can replace the file as another backend behind the same calls.
 */
#ifndef DDB2ES_CKPT_H
#define DDB2ES_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "daemon/seqnum.h"

struct uv_loop_s; /* uv_loop_t; this header does not need uv.h */

#define CKPT_FILE "checkpoints.json"
#define CKPT_LOCK_FILE "lock"
#define CKPT_FORMAT_VERSION 1   /* written when no shard needs more */
#define CKPT_FORMAT_VERSION_MAX 2
#define CKPT_ORDINAL_BITS 20
#define CKPT_ORDINAL_MAX ((UINT32_C(1) << CKPT_ORDINAL_BITS) - 1)
/* Seconds are clamped to this (about the year 141,000), which keeps every
 * version far below the engine's bound of 2^63 - 1. */
#define CKPT_SECOND_MAX ((INT64_C(1) << 42) - 1)
#define CKPT_PRUNE_AGE (24 * 60 * 60) /* seconds a done shard is kept */

/* ---- external versions (DESIGN invariant 2) --------------------------- */

/* The state after the last version issued along a shard lineage: the second
 * it belongs to and the ordinal used within it.  {0, 0} is a new lineage. */
struct ckpt_version {
    int64_t second;
    uint32_t ordinal;
};

/* Issues the version of the next record of a lineage, in stream order:
 *   created > st->second:  second = created, ordinal = 0
 *   otherwise:             ordinal + 1 (also when created < second, which
 *                          happens across a parent/child handover or with
 *                          clock-skewed records: versions never go back)
 *   ordinal past CKPT_ORDINAL_MAX (over a million records in one second):
 *                          the next second is borrowed (second + 1,
 *                          ordinal 0); later records of the real second
 *                          then count on from there, so the sequence stays
 *                          strictly increasing.
 * Returns (second << 20) | ordinal and updates *st.  A pure function of
 * (*st, created): the same inputs always give the same version, which is why
 * the state saved with a checkpoint is the state right after the
 * checkpointed record (see ack.h).  created is clamped to
 * 0..CKPT_SECOND_MAX. */
uint64_t ckpt_next_version(struct ckpt_version *st, int64_t created_seconds);

/* ---- the store --------------------------------------------------------- */

struct ckpt_shard {
    const char *id;              /* owned by the store */
    const char *parent;          /* owned by the store; NULL = no parent */
    const char *arn;             /* the stream's ARN (owned by the store) */
    const char *table;           /* the stream's table (owned by the store) */
    char seq[SEQNUM_MAX + 1];    /* last finished sequence number; "" = none */
    struct ckpt_version ver;     /* version state at seq (or inherited) */
    bool done;
    time_t updated;
    int64_t skip_before;         /* see "skip_before" above; 0 = none */
    time_t seen;                 /* in memory only: when a listing last held it (pruning) */
};

struct ckpt;

/* A new, empty store for STATE_DIR/checkpoints.json (nothing is read yet).
 * NULL when out of memory. */
struct ckpt *ckpt_new(const char *state_dir);
/* Frees the store and every shard.  Must not be called while an asynchronous
 * save is in flight (ckpt_busy); NULL is a no-op. */
void ckpt_free(struct ckpt *ck);
const char *ckpt_path(const struct ckpt *ck);

/* Reads checkpoints.json into an empty store.
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
                       const struct ckpt_version *ver, time_t now);
/* Marks the shard read to its end with every record finished. */
void ckpt_shard_finish(struct ckpt *ck, struct ckpt_shard *sh, time_t now);
/* The version state a reader starts this shard with.  A shard with a
 * checkpoint continues its own state.  One without takes its parent's (the
 * parent is finished first, invariant 3), which carries the in-second
 * ordinal across the lineage; the inherited state is stored in the shard so
 * it survives a restart even after the parent is pruned.  No parent known:
 * the shard's own state ({0, 0} for a new one). */
struct ckpt_version ckpt_shard_resume_version(struct ckpt *ck, struct ckpt_shard *sh);

/* A listing held the shard now (kept from pruning a while: see ckpt_prune). */
void ckpt_shard_seen(struct ckpt_shard *sh, time_t now);
/* Sets or clears (0) the shard's skip_before (see the file format). */
void ckpt_shard_skip_before(struct ckpt *ck, struct ckpt_shard *sh, int64_t second);
/* True when the store holds any shard of this table, in any stream. */
bool ckpt_table_known(const struct ckpt *ck, const char *table);
/* The highest version state of any shard of the table ({0, 0} if none):
 * a stream that replaces another starts above it, so a newer record never
 * loses to an older one across the switch. */
struct ckpt_version ckpt_table_max_version(const struct ckpt *ck, const char *table);
/* Raises the shard's version state to at least ver (a root shard starting
 * above the table's history); it is saved with the shard. */
void ckpt_shard_raise_version(struct ckpt *ck, struct ckpt_shard *sh,
                              const struct ckpt_version *ver);

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

/* status: 0 when the file is on disk, else -errno (e.g. -ENOSPC, -EFBIG); on
 * failure the previous file is intact, no .tmp is left, and the store is
 * dirty again so the caller's next periodic save retries. */
typedef void ckpt_saved_cb(struct ckpt *ck, int status, void *arg);

/* Serialises the store now (on the calling loop thread) and writes it on the
 * loop's thread pool.  At most one write is in flight: a request made during
 * a write is coalesced with any other such request into one more write,
 * started when the current one ends and carrying the state of that moment.
 * cb (may be NULL) runs on the loop thread once the write covering this
 * request ends.  Returns 0, or -errno (cb will then not run). */
int ckpt_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg);
/* Serialises and writes on the calling thread (start-up, shutdown).
 * 0 or -errno; -EBUSY while an asynchronous save is in flight (run the loop
 * until it ends first). */
int ckpt_save_sync(struct ckpt *ck);

/* Writes data to tmp (mode 0600), fsyncs it, renames it over path and
 * fsyncs dir (the directory of both), so a crash leaves the old or the new
 * file whole; the tmp file is removed on failure.  Blocking: call it on the
 * thread pool from the loop.  0 or -errno. */
int ckpt_write_atomic(const char *path, const char *tmp, const char *dir, const char *data,
                      size_t len);

/* ---- the state directory lock ----------------------------------------- */

/* Creates state_dir (mode 0700, parents too) if missing, then takes an
 * exclusive non-blocking flock on state_dir/lock (created 0600) and writes
 * this process id into it.  0 with *fd_out set (keep it open while running;
 * the lock goes with the process), -EWOULDBLOCK when another process (or
 * another open of the file) holds it: the caller exits 73; else -errno. */
int ckpt_lock(const char *state_dir, int *fd_out);
/* The same lock on state_dir/name: `ddb2es replay` locks its own file, so it
 * runs beside `ddb2es run` on one state directory. */
int ckpt_lock_named(const char *state_dir, const char *name, int *fd_out);
/* Releases the lock taken by ckpt_lock; a negative fd is a no-op. */
void ckpt_unlock(int fd);

#endif
