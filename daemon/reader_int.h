/* The reader's insides, shared by reader.c and shard.c only. */
#ifndef DDB2ES_READER_INT_H
#define DDB2ES_READER_INT_H

#include <stdbool.h>
#include <uv.h>

#include "aws/records.h"
#include "aws/util.h"
#include "daemon/app.h"
#include "daemon/log.h"
#include "daemon/reader.h"
#include "daemon/shard.h"
#include "indexer/transform.h"

enum reader_state { RD_DESCRIBE_TABLE, RD_LIST, RD_RUNNING, RD_STOPPING, RD_STOPPED };

struct reader {
    struct app *app;
    const struct config_table *t;
    struct transform_cfg tf;
    struct log_ctx log;
    char *hash_key, *range_key;
    char *arn;                   /* the table's latest stream */
    char *view_type;             /* NEW_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY, OLD_IMAGE */
    bool needs_items;            /* KEYS_ONLY / OLD_IMAGE: fetch current items */
    bool listed;                 /* the stream was listed at least once */
    bool stream_known;           /* the checkpoint had this stream before we started */
    enum reader_state state;
    struct shard *shards;
    struct ddb_call *call;       /* DescribeTable / DescribeStream in flight */
    char *list_from;             /* pagination: ExclusiveStartShardId */
    char *children_of;           /* a CHILD_SHARDS listing for this parent */
    uv_timer_t timer;            /* relist, describe-table refresh, retries */
    bool timer_open;
    int64_t last_describe_table; /* monotonic ms */
    int failures;
    unsigned char *hmac_key;
    size_t hmac_key_len;
    void (*stopped_cb)(void *);
    void *stopped_arg;
    struct reader_stats stats;
    struct records_page page;    /* the GetRecords reply being taken (one at a time) */
};

/* shard.c → reader.c */
void reader_shard_done(struct reader *r, struct shard *s);
void reader_shard_stopped(struct reader *r, struct shard *s);
void reader_shard_gone(struct reader *r, struct shard *s); /* expired: relist */
uint64_t reader_now_ms(const struct reader *r);

#endif
