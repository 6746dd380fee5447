/* The reader's insides, shared by reader.c and shard.c only. */
#ifndef DDB2ES_READER_INT_H
#define DDB2ES_READER_INT_H

#include <stdbool.h>
#include <uv.h>

#include "aws/streams.h"
#include "base/util.h"
#include "daemon/app.h"
#include "base/log.h"
#include "daemon/reader.h"
#include "daemon/shard.h"
#include "indexer/transform.h"

/* Written by set_state (reader.c) only; whether the reader still works is
 * reader_active(), not the order of these. */
enum reader_state {
    RD_DESCRIBE_TABLE, /* DescribeTable: key schema, the latest stream */
    RD_LIST_STREAMS,   /* ListStreams: the table's other streams (24 h after they are disabled) */
    RD_LIST,           /* DescribeStream of each stream not finished, one after the other */
    RD_RUNNING,        /* shards are read; a timer lists again */
    RD_STOPPING,
    RD_STOPPED,
    RD_NSTATES
};

/* One stream of the table.  A table gets a new stream (a new ARN) each time
 * its stream is disabled and enabled again; the old one stays readable for
 * 24 h (REFERENCE.md Streams fact 14).  Every stream that may still hold
 * unread records is read to its end; a stream's first shards start only
 * once every older stream is finished, so versions never go back. */
struct rstream {
    struct rstream *next;  /* oldest first */
    char *arn;
    const char *label;     /* inside arn: the stream label (creation time), "" if none */
    bool disabled;         /* DescribeStream said DISABLED: it gets no new shard */
    bool complete;         /* listed in full while disabled: every shard of it is known */
    bool gone;             /* DescribeStream says it does not exist (expired) */
    bool finished;         /* complete or gone, and every shard done: not listed again */
    uint64_t complete_at;  /* loop ms when a full listing first showed it complete */
    unsigned gen;          /* full listings begun */
};

struct reader {
    struct app *app;
    const struct config_table *t;
    struct transform_cfg tf;
    struct log_ctx log;
    char *hash_key, *range_key;
    char *arn;                   /* the table's latest stream (DescribeTable) */
    char *view_type;             /* NEW_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY, OLD_IMAGE */
    bool needs_items;            /* KEYS_ONLY / OLD_IMAGE: fetch current items */
    bool listed;                 /* every stream was listed at least once */
    bool table_known;            /* the checkpoint held a shard of this table at start */
    bool seeded;                 /* the checkpoint's streams and unfinished shards were taken */
    bool streams_listed;         /* ListStreams answered (or was refused) for this latest ARN */
    bool list_streams_refused;   /* logged once */
    char *oldest_known;          /* label of the oldest stream the checkpoint knew, or NULL */
    enum reader_state state;
    struct rstream *streams;
    struct rstream *cur;         /* the stream being listed */
    struct shard *shards;        /* live shards, in the order they were found */
    struct shard **tab;          /* the same, hashed on (stream ARN, shard id) */
    struct shard *detached;      /* shards whose lease went (lost or given back), kept until
                                    their documents in the sink reported (linked by next) */
    size_t tabcap, nshards;
    unsigned retiring;           /* finished shards whose timer is closing */
    uint64_t shards_retired;     /* finished and freed since the start */
    struct ddb_call *call;       /* DescribeTable / ListStreams / DescribeStream in flight */
    char *list_from;             /* pagination: ExclusiveStartShardId / ExclusiveStartStreamArn */
    char *children_of;           /* a CHILD_SHARDS listing for this parent (of stream cur) */
    uv_timer_t timer;            /* relist, describe-table refresh, retries */
    bool timer_open;
    int64_t last_describe_table; /* monotonic ms */
    int failures;
    unsigned char *hmac_key;
    size_t hmac_key_len;
    void (*stopped_cb)(void *);
    void *stopped_arg;
    struct reader_stats stats;
    struct transform_renames renames; /* names the engines refuse, renamed (transform.h) */
    struct streams_page page;    /* the GetRecords reply being taken (one at a time) */
};

/* What a shard needs of its reader (shard.c): the app, the table's
 * counters it adds to, the transform settings, the table's name (NULL for
 * a reader without a table) and the one GetRecords page being taken. */
static inline struct app *reader_app(const struct reader *r)
{
    return r->app;
}

static inline struct reader_stats *reader_counters(struct reader *r)
{
    return &r->stats;
}

static inline const struct transform_cfg *reader_transform(const struct reader *r)
{
    return &r->tf;
}

static inline const char *reader_table_name(const struct reader *r)
{
    return r->t ? r->log.table : NULL;
}

static inline struct streams_page *reader_page(struct reader *r)
{
    return &r->page;
}

/* shard.c → reader.c */
void reader_shard_done(struct reader *r, struct shard *s);
void reader_shard_stopped(struct reader *r, struct shard *s);
void reader_shard_gone(struct reader *r, struct shard *s); /* not found: list its stream again */
/* A yielding shard has nothing in flight: its checkpoint is saved and its
 * lease given back. */
void reader_shard_yielded(struct reader *r, struct shard *s);
uint64_t reader_now_ms(const struct reader *r);

#endif
