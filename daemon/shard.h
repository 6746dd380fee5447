/* shard — the state machine that reads one stream shard (internal to the
 * reader).  At most one request in flight per shard.  States:
 *
 *   wait-parent  listed, but the parent shard has not finished yet
 *   get-iterator GetShardIterator (from the checkpoint, the start setting,
 *                or TRIM_HORIZON for shards that are new to us)
 *   get-records  GetRecords; records go to the sink in stream order
 *   fetch-items  KEYS_ONLY / OLD_IMAGE streams: BatchGetItem of the current
 *                items before their documents can be made
 *   paused       the sink is full (bounded memory): wait for it to drain
 *   backoff      idle (empty read), throttled or failing: a timer
 *   drain        the shard ended: wait until every record read has finished
 *   done         read to the end and finished; children may start
 */
#ifndef DDB2ES_SHARD_H
#define DDB2ES_SHARD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/ckpt.h"

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
    SH_BACKOFF,
    SH_DRAIN,
    SH_DONE,
    SH_STOPPED,
    SH_NSTATES
};

enum shard_start { START_TRIM_HORIZON, START_LATEST, START_AFTER_SEQ };

struct shard {
    struct reader *reader;
    struct shard *next;          /* the reader's list */
    struct shard *read_wait_next; /* the app's queue of shards waiting to read */
    bool read_waiting;
    char *id;
    char *parent_id;
    char *arn;                   /* the stream it belongs to */
    bool closed;                 /* listed with an EndingSequenceNumber */
    enum shard_state state;
    enum shard_start start;      /* where the next GetShardIterator starts */
    char start_seq[41];          /* for START_AFTER_SEQ */
    char last_read[41];          /* newest sequence number handed to the sink */
    char *iterator;
    bool at_end;                 /* GetRecords returned no NextShardIterator */
    bool from_horizon_fresh;     /* started at TRIM_HORIZON with nothing read: trims are not loss */
    bool loss_open;              /* records were trimmed; the range ends at the next record read */
    char loss_after[41];         /* the last record read before the loss */
    char first_taken[41];        /* first record of the last page */
    int64_t page_newest;         /* newest ApproximateCreationDateTime of the last page */
    bool behind;                 /* the last page was well behind the present */
    size_t rec_bytes;            /* mean record size of the last page with records */
    unsigned limit;              /* the Limit of the last GetRecords asked */
    int empty_streak;            /* empty pages read in a row while behind */
    struct ddb_call *call;       /* the request in flight, if any */
    struct ack *ack;
    struct ckpt_shard *ck;       /* its checkpoint entry */
    struct ckpt_version ver;     /* version state after the last record read */
    uv_timer_t timer;
    bool timer_open;
    long backoff_ms;             /* current backoff (idle or error) */
    int failures;                /* consecutive failed calls */
    uint64_t pending_docs;       /* handed to the sink, not finished */
    struct fetch *fetch;         /* KEYS_ONLY pages waiting for their items */
};

struct shard *shard_new(struct reader *r, const char *arn, const char *id, const char *parent,
                        bool closed);
/* Leaves wait-parent: chooses the start position and begins reading. */
void shard_begin(struct shard *s);
/* Wakes a paused shard (sink drained) or a shard in backoff early. */
void shard_wake(struct shard *s);
/* Stops: cancels the call in flight, closes the timer; close_cb-safe. */
void shard_stop(struct shard *s);
/* True once nothing of the shard is left on the loop after shard_stop. */
bool shard_stopped(const struct shard *s);
void shard_free(struct shard *s);
/* A document of this shard finished in the sink. */
void shard_doc_done(struct shard *s, uint64_t ticket, bool finished);
/* Moves the finished prefix into the checkpoint store. */
void shard_checkpoint(struct shard *s);
const char *shard_state_name(enum shard_state st);

#endif
