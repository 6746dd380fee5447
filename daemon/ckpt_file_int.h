/* ckpt_file — the file backend of the checkpoint store (ckpt_store.h):
 * what its parts share (ckpt_file.c: the entries in memory; ckpt_file_load.c:
 * reading the file; ckpt_file_save.c: writing it).  Not for use outside
 * them.
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
 *                         "ver_s": <seconds, 0..DOCVER_SECOND_MAX>,
 *                         "ver_n": <ordinal, 0..DOCVER_ORDINAL_MAX>,
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
 * or the new file (base/atomicfile.h).  ckpt_save_async does the I/O on the
 * libuv thread pool.
 */
#ifndef DDB2ES_CKPT_FILE_INT_H
#define DDB2ES_CKPT_FILE_INT_H

#include <uv.h>

#include "daemon/ckpt_store.h"
#include "daemon/streamtab.h"

#define CKPT_FORMAT_VERSION 1   /* written when no shard needs more */
#define CKPT_FORMAT_VERSION_MAX 2

struct waiter {
    ckpt_saved_cb *cb;
    void *arg;
};

struct save_job {
    uv_work_t work;
    struct ckpt_file *ck;
    char *data; /* the serialised store, owned */
    size_t len;
    int status; /* set by the pool thread */
    struct waiter *w;
    size_t nw;
};

struct ckpt_file {
    struct ckpt base;
    char *dir, *path, *tmp;
    struct streamtab streams; /* records: struct ckpt_shard *, insertion order */
    struct ckpt_shard **tab; /* open addressing on (arn, id); power-of-two size */
    size_t tabcap, count;
    bool dirty;
    struct save_job *job; /* the write in flight */
    struct uv_loop_s *loop;
    struct waiter *pend; /* requests coalesced into the next write */
    size_t npend, cappend;
    bool pending;
};

/* ckpt_file.c */
struct ckpt_file *ckpt_file_of(struct ckpt *ck);
void ckpt_file_clear(struct ckpt_file *ck); /* drops every stream and shard */

/* ckpt_file_load.c */
int ckpt_file_load(struct ckpt *ck, char *err, size_t errlen);

/* ckpt_file_save.c */
int ckpt_file_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg);
int ckpt_file_save_sync(struct ckpt *ck);

#endif
