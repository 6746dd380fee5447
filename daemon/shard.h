/* shard — the state machine that reads one stream shard (internal to the
 * reader).  At most one request in flight per shard.  States:
 *
 *   wait-parent  listed, but the parent shard has not finished yet
 *   get-iterator GetShardIterator (from the checkpoint, the start setting,
 *                or TRIM_HORIZON for shards that are new to us)
 *   get-records  GetRecords; records go to the sink in stream order
 *   fetch-items  KEYS_ONLY / OLD_IMAGE streams: BatchGetItem of the current
 *                items before their documents can be made
 *   paused       the sink is full (bounded memory), or waiting for a read slot
 *   held         [daemon] shard_read_ahead records are read ahead of the
 *                checkpoint (one of them is not finished): no more reading
 *                until half of them are
 *   backoff      idle (empty read), throttled or failing: a timer, then the
 *                state it was entered for (resume)
 *   drain        the shard ended: wait until every record read has finished
 *   done         read to the end and finished; children may start
 */
#ifndef DDB2ES_SHARD_H
#define DDB2ES_SHARD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/log.h"
#include "daemon/ckpt.h"
#include "daemon/slots.h"
#include "indexer/sink.h"

struct reader;
struct ack;
struct ddb_call;
struct ckpt_shard;
struct fetch;

enum shard_state {
    SH_WAIT_PARENT,
    SH_GET_ITER,
    SH_GET_RECORDS,
    SH_FETCH_ITEMS,
    SH_PAUSED,
    SH_HELD,
    SH_BACKOFF,
    SH_DRAIN,
    SH_DONE,
    SH_STOPPED,
    SH_NSTATES
};

enum shard_start { START_TRIM_HORIZON, START_LATEST, START_AFTER_SEQ };

struct rstream;

struct shard {
    struct reader *reader;
    struct rstream *stream;      /* the reader's record of its stream */
    struct shard *next, *prev;   /* the reader's list */
    struct shard *hnext;         /* the reader's hash chain */
    unsigned listed_gen;         /* the stream's full listing that last held it */
    struct slots_waiter read_wait; /* in the app's queue of shards waiting to read */
    char *id;
    char *parent_id;
    char *arn;                   /* the stream it belongs to */
    bool closed;                 /* listed with an EndingSequenceNumber */
    enum shard_state state;
    enum shard_state resume;     /* in backoff: the state its timer goes on in; else
                                    SH_NSTATES (written with state, by its setter only) */
    enum shard_start start;      /* where the next GetShardIterator starts */
    int64_t skip_before;         /* started at LATEST at this second (minus a margin) */
    bool skipping;               /* reading from TRIM_HORIZON instead: until a record is
                                    taken, records older than skip_before are history */
    char start_seq[41];          /* for START_AFTER_SEQ */
    char last_read[41];          /* newest sequence number handed to the sink */
    char *iterator;
    bool at_end;                 /* GetRecords returned no NextShardIterator */
    bool unlisted;               /* a full listing of its stream no longer holds it */
    bool held_logged;            /* the read-ahead cap was reported this episode */
    uint64_t nf_since;           /* loop ms of the first ResourceNotFound in a row, 0 = none */
    int64_t created_ms;          /* creation time in the shard id (epoch ms), 0 = unknown */
    bool from_horizon_fresh;     /* started at TRIM_HORIZON with nothing read: trims are not loss */
    bool loss_open;              /* records were trimmed; the range ends at the next record read */
    char loss_after[41];         /* the last record read before the loss */
    char first_taken[41];        /* first record of the last page */
    int64_t page_newest;         /* newest ApproximateCreationDateTime of the last page */
    bool behind;                 /* the last page was well behind the present */
    size_t rec_bytes;            /* mean record size of the last page with records */
    unsigned limit;              /* the Limit of the last GetRecords asked */
    int empty_streak;            /* empty pages read in a row while behind */
    int bad_pages;               /* GetRecords replies in a row that could not be read */
    struct ddb_call *call;       /* the request in flight, if any */
    struct ack *ack;
    struct ckpt_shard *ck;       /* its checkpoint entry */
    struct docver ver;           /* version state after the last record read */
    uv_timer_t timer;
    bool timer_open;
    long backoff_ms;             /* current backoff (idle or error) */
    int failures;                /* consecutive failed calls */
    uint64_t pending_docs;       /* handed to the sink, not finished */
    struct fetch *fetch;         /* KEYS_ONLY pages waiting for their items */
    /* Coordinated mode ([leases], daemon/lease.h). */
    bool yielding;               /* another worker asked for its lease: no more reading; once
                                    what is in flight finished, the reader saves and gives
                                    the lease back */
    bool lost;                   /* its lease is gone: nothing of it is acknowledged or
                                    checkpointed again (ck is NULL) */
    bool detached;               /* out of the reader's list, kept until its documents in
                                    the sink have reported (they carry it as their owner) */
};

/* The shard's waits (app->shard_timing; NULL: shard_timing_default, the
 * daemon's own).  Tests shorten them. */
struct shard_timing {
    long error_base_ms;  /* throttling and failures: base ... max, full jitter */
    long error_max_ms;
    long fatal_retry_ms; /* an error we do not understand: try again, slowly */
    long small_pages_ms; /* pages stay small this long after the sink was busy */
};
extern const struct shard_timing shard_timing_default;

struct shard *shard_new(struct reader *r, const char *arn, const char *id, const char *parent,
                        bool closed);
/* Leaves wait-parent as done: the checkpoint says it was finished before
 * (or it is history); nothing is read. */
void shard_finished_before(struct shard *s);
/* Leaves wait-parent: chooses the start position and begins reading. */
void shard_begin(struct shard *s);
/* Wakes a paused shard (sink drained) or a shard in backoff early. */
void shard_wake(struct shard *s);
/* Another worker asked for the shard's lease: reads nothing more, lets
 * what is in flight finish (documents in the sink, items being fetched),
 * then calls reader_shard_yielded. */
void shard_yield(struct shard *s);
/* True when a yielding shard has nothing in flight any more. */
bool shard_quiet(const struct shard *s);
/* Stops: cancels the call in flight, closes the timer; close_cb-safe. */
void shard_stop(struct shard *s);
/* True once nothing of the shard is left on the loop after shard_stop. */
bool shard_stopped(const struct shard *s);
void shard_free(struct shard *s);
/* The sink's done callback (sink_done_cb; owner is the shard): counts the
 * outcome, acknowledges the record and lets the shard read on
 * (shard_ack.c). */
void shard_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome o, void *arg);
/* Moves the finished prefix into the checkpoint store (shard_ack.c). */
void shard_checkpoint(struct shard *s);
/* A document of the shard was acknowledged: a held shard reads again once
 * half its read-ahead is behind the checkpoint, a draining one goes on. */
void shard_acked(struct shard *s);
/* The log context of the shard's lines (its table and id). */
struct log_ctx shard_log_ctx(const struct shard *s);
const char *shard_state_name(enum shard_state st);
/* The creation time a shard id carries ("shardId-<20-digit epoch ms>-<hex>",
 * as AWS and DynamoDB Local write them; undocumented), or 0. */
int64_t shard_id_time_ms(const char *id);

#endif
