/* lease_int — what the coordinator's files share, not for use outside
 * them: lease.c (start, timers, reads and plans, stop), lease_event.c (what
 * the daemon is told), lease_write.c (the writes of ownership and
 * heartbeats), lease_rec.c (the records of the leases and workers),
 * ckpt_lease.c and ckpt_lease_save.c (the checkpoint store on the records),
 * lease_sync.c (calls on a private loop), lease_seed.c. */
#ifndef DDB2ES_LEASE_INT_H
#define DDB2ES_LEASE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/ckpt_store.h"
#include "daemon/lease.h"
#include "daemon/leasetab.h"
#include "daemon/streamtab.h"

/* One shard's lease: its checkpoint entry (what ckpt.h hands out), the item
 * as last read or written, what this worker saw of it, and its tenure. */
struct lease_rec {
    struct ckpt_shard sh; /* sh.id, sh.parent point into this allocation */
    char *key;            /* "<arn>|<shard>" */
    struct streamtab_stream *stream;
    struct lease_rec *hnext;

    /* the item */
    bool in_table;   /* it exists (read, created, or found existing) */
    char *owner, *owner_run, *claim;
    uint64_t counter, epoch;
    bool table_done;

    /* what this worker saw (loop ms) */
    bool listed, listed_before; /* in the last read, in the read before */
    unsigned reads;             /* reads in a row that listed it */
    uint64_t changed_at;        /* when its counter was first seen at this value */
    uint64_t unowned_since;     /* 0 = owned */
    uint64_t claim_at;          /* when this worker's claim landed */

    /* this worker's tenure */
    bool held;
    uint64_t my_epoch;
    uint64_t last_ok;  /* start of the last write that proved the tenure */
    bool yield_asked, clear_claim, release_wanted;
    bool op;           /* a take, claim, force or release in flight */
    bool renewing;     /* a renewal in flight */
    int writing;       /* checkpoint, create or prune writes in flight */

    /* the store */
    bool dirty;        /* changed since the last save took it */
};

struct lease_workerrec {
    char *id, *run;
    uint64_t beat, beat_at; /* beat_at: loop ms when this beat was first seen */
    int64_t duration_ms;
    bool listed;
    bool deleting; /* its delete was sent (dead for long) */
};

enum lease_event_kind { EV_GAINED, EV_LOST, EV_YIELD, EV_STATE, EV_READY, EV_RELEASED, EV_CALL };

struct lease_event {
    enum lease_event_kind kind;
    char *table, *arn, *shard, *why;
    int status;
    enum lease_state state;
    void (*fn)(void *arg); /* EV_CALL */
    void *fnarg;
};

struct lease_call; /* a write in flight (lease_write.c) */

struct lease {
    uv_loop_t *loop;
    struct aws *aws;
    char *table, *me;
    char run[33];          /* this process's random name in its heartbeat */
    int64_t d;             /* lease_duration, ms */
    uint64_t renew_ms, read_ms, guard_ms;
    bool create;
    struct lease_conn conn;
    struct lease_cbs cbs;
    time_t (*wall)(void);

    /* records */
    struct streamtab streams; /* records: struct lease_rec *, in the order they were added */
    struct lease_rec **tab; /* chained hash on the key */
    size_t tabcap, count;
    struct lease_workerrec *workers;
    size_t nworkers, capworkers;
    struct { char *key; uint64_t counter; } *pruned; /* deletes for the next save */
    size_t npruned, cappruned;
    bool read_once;        /* a read has filled the records */
    bool local_adds;       /* records were added by the store, not by a read */

    /* handles */
    uv_timer_t read_timer, renew_timer, deadline_timer, notify_timer;
    int handles;           /* initialised and not closed yet */
    bool started, closing, stopping, release_reported;
    struct leasetab_ensure *ensure;
    struct leasetab_scan *scan;
    struct lease_call *calls;  /* writes in flight */
    bool hb_busy, hb_first, hb_deleting;
    bool read_after_hb;    /* the read in flight started after this process's heartbeat landed */
    uint64_t hb_ok;        /* start of the last heartbeat that landed */

    enum lease_state state;
    char why[512];
    struct lease_metrics m;
    unsigned write_errors_logged;

    struct lease_event *events;
    size_t nevents, capevents;

    lease_ready_cb *ready;
    void *ready_arg;
    lease_done_cb *released; /* release_all's callback, until it ran */
    void *released_arg;
    lease_done_cb *closed;
    void *closed_arg;

    struct ckpt_lease *store; /* the checkpoint store on these records, if any */
};

/* lease_event.c */
void lease_emit(struct lease *l, enum lease_event_kind kind, const struct lease_rec *rec,
                const char *why);
void lease_emit_ready(struct lease *l, int status, const char *why);
/* fn(arg) from the loop, soon (never inside this call).  0 or -ENOMEM. */
int lease_later(struct lease *l, void (*fn)(void *arg), void *arg);

/* lease.c */
void lease_set_state(struct lease *l, enum lease_state st, const char *why);
/* The tenure is gone: the daemon is told, nothing of it is written again. */
void lease_lose(struct lease *l, struct lease_rec *rec, const char *why);
void lease_arm_deadline(struct lease *l);
/* release_all: once nothing is held and the heartbeat is deleted, its
 * callback runs. */
void lease_check_released(struct lease *l);
/* Fresh loop time (the cached one may be older than the event it dates). */
uint64_t lease_now(struct lease *l);

/* lease_write.c */
void lease_renew_all(struct lease *l);
void lease_heartbeat(struct lease *l);
void lease_take(struct lease *l, struct lease_rec *rec, bool force);
void lease_claim(struct lease *l, struct lease_rec *rec);
/* Releases rec once no write of it is in flight. */
void lease_release(struct lease *l, struct lease_rec *rec);
/* A checkpoint write of rec ended: a release waiting for it goes now. */
void lease_write_ended(struct lease *l, struct lease_rec *rec);
void lease_delete_heartbeat(struct lease *l);
void lease_delete_dead_worker(struct lease *l, struct lease_workerrec *w);
void lease_cancel_calls(struct lease *l);

/* lease_rec.c */
struct lease_rec *lease_rec_get(struct lease *l, const char *arn, const char *id);
struct lease_rec *lease_rec_by_key(struct lease *l, const char *key);
struct lease_rec *lease_rec_add(struct lease *l, const char *table, const char *arn,
                                const char *id, const char *parent);
/* Takes in one item of a read (or the item a write returned): the
 * ownership always, the checkpoint unless this worker holds it or has
 * changes of its own not saved yet.  now: loop ms of the read. */
void lease_rec_update(struct lease *l, struct lease_rec *rec, const struct leasetab_lease *it,
                      uint64_t now, bool from_read);
/* The checkpoint fields of it into rec->sh. */
void lease_rec_load(struct lease_rec *rec, const struct leasetab_lease *it);
int lease_rec_set_str(char **dst, const char *src);
struct lease_workerrec *lease_worker_update(struct lease *l, const struct leasetab_worker *w,
                                            uint64_t now);
/* A whole read: every item into the records.  strict: an item that cannot
 * be read fails the read (-EBADMSG, err says which), else it is skipped
 * with a warning.  0, -EBADMSG or -ENOMEM. */
int lease_rec_read(struct lease *l, const json_t *items, uint64_t now, bool strict, char *err,
                   size_t errlen);
/* Drops rec (ckpt_prune): a delete of its item goes with the next save. */
void lease_rec_drop(struct lease *l, struct lease_rec *rec);
void lease_rec_free_all(struct lease *l);
size_t lease_rec_held(const struct lease *l, const char *table);

/* lease_sync.c: runs start on a private loop with its own clients made from
 * conn until done(arg) holds or timeout_ms pass; everything is closed
 * before it returns.  0, -ETIMEDOUT, or the -errno of start or setup. */
int lease_sync_run(const struct lease_conn *conn, long timeout_ms,
                   int (*start)(uv_loop_t *loop, struct aws *aws, void *arg),
                   bool (*done)(void *arg), void *arg);

/* ckpt_lease.c, ckpt_lease_save.c: the checkpoint store */
#define SYNC_TIMEOUT_MS 60000L /* ckpt_load, ckpt_save_sync on their private loop */

struct waiter {
    ckpt_saved_cb *cb;
    void *arg;
};

struct ckpt_lease {
    struct ckpt base;
    struct lease *l;
    bool dirty, loaded;
    struct round *job;     /* the save in flight */
    struct waiter *pend;   /* requests coalesced into the next save */
    size_t npend, cappend;
    bool pending;
};

struct round;

void ckpt_lease_detach(struct ckpt_lease *st);
const char *ckpt_lease_path(const struct ckpt *ck);
int ckpt_lease_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg);
int ckpt_lease_save_sync(struct ckpt *ck);

#endif
