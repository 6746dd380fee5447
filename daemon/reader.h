/* reader — follows one table's stream: finds the stream (DescribeTable →
 * LatestStreamArn, checked again every few minutes and on not-found), lists
 * its shards (DescribeStream, paginated), keeps the lineage (a child is read
 * only after its parent finished, DESIGN invariant 3) and runs one shard
 * state machine (shard.c) per shard being read.  Records become documents
 * that go to the app's sink; finished documents move each shard's
 * checkpoint (invariant 1). */
#ifndef DDB2ES_READER_H
#define DDB2ES_READER_H

#include <stdbool.h>
#include <stdint.h>

struct app;
struct config_table;
struct reader;

struct reader_stats {
    uint64_t records_read;
    uint64_t docs_indexed, docs_deleted, docs_stale, docs_gone, docs_dlq, docs_skipped;
    uint64_t records_lost_events;    /* TrimmedDataAccess / expired shards: data lost */
    uint64_t parents_missing;        /* an unfinished parent no longer listed: read what is left */
    uint64_t fields_renamed;         /* attribute names the engines refuse, renamed */
    uint64_t getrecords_calls, getrecords_empty, throttled;
    int64_t newest_created;          /* newest ApproximateCreationDateTime read (s) */
    unsigned shards_open, shards_closed, shards_waiting, shards_held;
    uint64_t shards_done;            /* finished since the start */
};

/* The reader's waits (app->reader_timing; NULL: reader_timing_default).
 * The daemon takes stream_settle_ms from [daemon] stream_settle; module
 * tests shorten them all. */
struct reader_timing {
    long children_retry_ms; /* a closed parent listed without its children yet */
    long retry_base_ms;     /* DescribeTable / ListStreams / DescribeStream failing */
    long retry_max_ms;
    long stream_settle_ms;  /* a disabled stream counts as complete after this long */
};
extern const struct reader_timing reader_timing_default;

struct reader *reader_new(struct app *app, const struct config_table *t);
void reader_free(struct reader *r);   /* after reader_stop's callback */
int reader_start(struct reader *r);
/* Stops reading: cancels calls in flight and closes timers; done(arg) runs
 * when nothing of the reader is left on the loop.  Documents already given
 * to the sink still finish (their acks are applied until reader_free). */
void reader_stop(struct reader *r, void (*done)(void *arg), void *arg);
/* The sink drained: readers paused on a full sink read again. */
void reader_resume(struct reader *r);
/* Moves every shard's finished prefix into the checkpoint store. */
void reader_checkpoint(struct reader *r);
/* Coordinated mode ([leases]): what the lease coordinator told the daemon
 * about a shard of this reader's table (daemon/lease.h).  gained: it may
 * be read (from its entry in the store); lost: reading stops at once and
 * nothing of it is acknowledged or checkpointed again; yield: reading
 * stops, what is in flight finishes, the checkpoint is saved, then the
 * lease is given back. */
void reader_lease_gained(struct reader *r, const char *arn, const char *shard);
void reader_lease_lost(struct reader *r, const char *arn, const char *shard, const char *why);
void reader_lease_yield(struct reader *r, const char *arn, const char *shard);
/* True once the stream was found and its shards listed. */
bool reader_listed(const struct reader *r);
const char *reader_table(const struct reader *r);
const struct reader_stats *reader_stats(const struct reader *r);

#endif
