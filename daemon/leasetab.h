/* leasetab — the lease table in DynamoDB: its key schema, its two kinds of
 * item read into structs, the request of every read and write (each with
 * its condition), and the two multi-call jobs: making sure the table exists
 * and reading it whole.  The format, the conditions and why: lease.h.
 *
 * The request builders are pure: they return a DynamoDB JSON request body
 * (the caller hands it to ddb_call, which steals it), or NULL when out of
 * memory.  Strings are copied.
 */
#ifndef DDB2ES_LEASETAB_H
#define DDB2ES_LEASETAB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aws/ddb.h"
#include "daemon/ckpt.h"

#define LEASETAB_KEY "key"               /* the hash key attribute */
#define LEASETAB_WORKER_PREFIX "worker|" /* the key of a heartbeat item */

/* A shard lease item as read (strings owned; leasetab_lease_clear frees). */
struct leasetab_lease {
    char *key, *stream, *shard, *table;
    char *parent, *owner, *claim; /* NULL = absent */
    char *owner_run;              /* the owning process's run (its heartbeat's); NULL = absent */
    uint64_t counter, epoch;
    char seq[SEQNUM_MAX + 1];     /* "" = none */
    struct docver ver;
    int64_t skip_before;
    bool done;
    time_t updated;
};

/* A heartbeat item as read (strings owned; leasetab_worker_clear frees). */
struct leasetab_worker {
    char *key, *worker, *run;
    uint64_t beat;
    int64_t duration_ms, leases;
    time_t started, updated;
};

enum leasetab_kind { LEASETAB_LEASE, LEASETAB_WORKER, LEASETAB_OTHER };

/* "<arn>|<shard>" and "worker|<id>" (malloc'ed), or NULL. */
char *leasetab_lease_key(const char *arn, const char *shard);
char *leasetab_worker_key(const char *worker_id);

/* What an item of a Scan is: a lease (it has a "shard"), a heartbeat (its
 * key starts with "worker|"), or something else (ignored). */
enum leasetab_kind leasetab_kind(const json_t *item);
/* Reads a lease item.  0, or -EBADMSG with err = "item KEY: what is wrong",
 * or -ENOMEM; out is cleared on failure.  Attributes it does not know are
 * ignored (a newer ddb2es may add some). */
int leasetab_lease_parse(const json_t *item, struct leasetab_lease *out, char *err, size_t len);
void leasetab_lease_clear(struct leasetab_lease *l);
int leasetab_worker_parse(const json_t *item, struct leasetab_worker *out, char *err, size_t len);
void leasetab_worker_clear(struct leasetab_worker *w);

/* ---- requests (lease.h has the conditions and why) -------------------- */

json_t *leasetab_req_describe(const char *table);
json_t *leasetab_req_create_table(const char *table);
/* A consistent Scan; start (borrowed, may be NULL) is the LastEvaluatedKey
 * of the page before. */
json_t *leasetab_req_scan(const char *table, const json_t *start);

/* Put: the shard's item with sh's checkpoint, free, counter and epoch 0, if
 * no item has its key. */
json_t *leasetab_req_create(const char *table, const struct ckpt_shard *sh, time_t now);
/* counter+1 if owner = me and epoch = epoch; returns the new item.
 * clear_claim also removes the claim (its worker is dead). */
json_t *leasetab_req_renew(const char *table, const char *key, const char *me, uint64_t epoch,
                           bool clear_claim, time_t now);
/* sh's checkpoint, counter+1, if owner = me and epoch = epoch. */
json_t *leasetab_req_checkpoint(const char *table, const char *key, const char *me,
                                uint64_t epoch, const struct ckpt_shard *sh, time_t now);
/* owner = me (owner_run = run, this process), epoch+1, counter+1, claim
 * removed, if counter and epoch are still what was read; returns the new
 * item. */
json_t *leasetab_req_take(const char *table, const char *key, const char *me, const char *run,
                          uint64_t counter, uint64_t epoch, time_t now);
/* claim = me if owner = victim, epoch = epoch and there is no claim. */
json_t *leasetab_req_claim(const char *table, const char *key, const char *me,
                           const char *victim, uint64_t epoch);
/* As take, if owner = victim, epoch = epoch and claim = me. */
json_t *leasetab_req_force(const char *table, const char *key, const char *me, const char *run,
                           const char *victim, uint64_t epoch, time_t now);
/* owner, owner_run and claim removed, counter+1, if owner = me and epoch = epoch. */
json_t *leasetab_req_release(const char *table, const char *key, const char *me,
                             uint64_t epoch, time_t now);
/* Delete if done and counter = counter. */
json_t *leasetab_req_prune(const char *table, const char *key, uint64_t counter);
/* This worker's heartbeat: beat+1 and what it says; first = the first of
 * this process (unconditional: it takes the id over), else only if run is
 * still this process's or the item is gone (other workers delete a
 * heartbeat still for ten durations). */
json_t *leasetab_req_heartbeat(const char *table, const char *me, const char *run,
                               int64_t duration_ms, size_t leases, bool first, time_t now);
/* Deletes a heartbeat: this process's (run != NULL: if run matches) or a
 * dead worker's (if beat is still beat). */
json_t *leasetab_req_worker_delete(const char *table, const char *worker_id, const char *run,
                                   uint64_t beat);

/* True when the reply is a failed condition (ConditionalCheckFailedException). */
bool leasetab_condition_failed(const struct ddb_reply *rep);
/* The item a write returned (ReturnValues ALL_NEW: "Attributes"), borrowed. */
const json_t *leasetab_reply_item(const struct ddb_reply *rep);

/* A DescribeTable reply: 1 when the table is ACTIVE with this key schema,
 * 0 while it is being created or updated, -EINVAL (why says what) when its
 * key schema is not ours or it is being deleted. */
int leasetab_check_describe(const json_t *reply, char *why, size_t len);

/* ---- jobs --------------------------------------------------------------- */

/* status: 0 ready; -ENOENT missing (create = false); -EINVAL wrong key schema
 * or deleting; -EIO the service answered otherwise or not at all; why says
 * what happened in one line. */
typedef void leasetab_ensure_cb(int status, const char *why, void *arg);
struct leasetab_ensure;
/* DescribeTable; when missing and create, CreateTable; then waits (every
 * poll_ms, at most wait_ms) until ACTIVE and checks the key schema.  NULL
 * when out of memory (cb not run).  cb runs on loop, the loop of aws. */
struct leasetab_ensure *leasetab_ensure(uv_loop_t *loop, struct aws *aws, const char *table,
                                        bool create, long poll_ms, long wait_ms,
                                        leasetab_ensure_cb *cb, void *arg);
/* cb runs with -ECANCELED before this returns. */
void leasetab_ensure_cancel(struct leasetab_ensure *e);

/* status 0 with items (every item of every page, owned by the callee: valid
 * during the callback); -ENOENT when the table does not exist; -EIO with
 * why otherwise. */
typedef void leasetab_scan_cb(int status, const json_t *items, const char *why, void *arg);
struct leasetab_scan;
/* Reads the whole table (consistent, page after page).  NULL when out of
 * memory (cb not run). */
struct leasetab_scan *leasetab_scan(struct aws *aws, const char *table, leasetab_scan_cb *cb,
                                    void *arg);
/* cb runs with -ECANCELED before this returns. */
void leasetab_scan_cancel(struct leasetab_scan *s);

#endif
