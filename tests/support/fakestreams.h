/* fakestreams — an in-memory stand-in for the DynamoDB and DynamoDB Streams
 * APIs, served by fakehttp on 127.0.0.1, for what DynamoDB Local cannot
 * produce: shard rollover with parents and children, several children,
 * listings that briefly miss children, expired iterators, trimmed data,
 * throttling, a stream replaced by a new ARN, shards that expire, records
 * and replies that cannot be parsed.  It answers DescribeTable, ListStreams,
 * DescribeStream (pagination, ShardFilter CHILD_SHARDS), GetShardIterator,
 * GetRecords and BatchGetItem with the shapes and error types of the real
 * services (REFERENCE.md "DynamoDB Streams API"; DDBLOCAL.md for the exact
 * `__type` strings), and with x-amz-crc32 on every reply, as the services
 * send it.  Thread-safe: the test thread changes the model while the server
 * thread answers. */
#ifndef DDB2ES_TEST_FAKESTREAMS_H
#define DDB2ES_TEST_FAKESTREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fakestreams;

enum fs_op {
    FS_DESCRIBE_TABLE,
    FS_DESCRIBE_STREAM,
    FS_GET_SHARD_ITERATOR,
    FS_GET_RECORDS,
    FS_BATCH_GET_ITEM,
    FS_LIST_STREAMS,
    FS_NOPS
};

/* A table "name" with hash key "id" (S) and a NEW_AND_OLD_IMAGES stream. */
struct fakestreams *fs_start(const char *table);
void fs_stop(struct fakestreams *fs);
const char *fs_url(const struct fakestreams *fs);
const char *fs_arn(const struct fakestreams *fs);

/* Adds a shard (parent NULL for a root); returns its index.  hidden: not
 * listed by DescribeStream until fs_show(). */
int fs_add_shard(struct fakestreams *fs, int parent, bool hidden);
void fs_show(struct fakestreams *fs, int shard);
/* DescribeStream leaves the shard out from now on, though it can be read
 * (a listing that misses a shard for a while). */
void fs_hide(struct fakestreams *fs, int shard);
void fs_close_shard(struct fakestreams *fs, int shard);
/* Appends a record: INSERT/MODIFY (new image {"id":{"S":id},"v":{"N":v}}) or
 * REMOVE, created at epoch second created.  Returns its sequence number's
 * ordinal. */
uint64_t fs_put(struct fakestreams *fs, int shard, const char *event, const char *id,
                const char *v, int64_t created);
/* Every NewImage served from now on also carries "pad", a string of n
 * bytes (made when a page is served, not stored): big documents cheaply. */
void fs_pad(struct fakestreams *fs, size_t n);

/* One record as the stand-in holds it.  event "RAW": a record served as
 * the text given to fs_put_raw (raw), not built from the fields. */
struct fs_rec {
    char seq[32];
    char event[8];
    char id[64];
    char v[64];
    int64_t created;
    const char *raw;
};
/* Appends a record served verbatim as text (the token @SEQ@ in it becomes
 * its sequence number): a record that is not JSON, or that breaks the
 * page.  Returns its sequence number's ordinal. */
uint64_t fs_put_raw(struct fakestreams *fs, int shard, const char *text);
/* The shard expired: DescribeStream no longer lists it, GetShardIterator
 * and GetRecords answer ResourceNotFoundException (Streams fact 7). */
void fs_expire_shard(struct fakestreams *fs, int shard);
/* The creation time the shard's id carries (epoch ms; by default the wall
 * clock when it was added), as AWS and DynamoDB Local write shard ids. */
void fs_shard_created(struct fakestreams *fs, int shard, int64_t epoch_ms);
/* The stream view type from now on ("KEYS_ONLY": records carry only Keys,
 * and BatchGetItem reads the table's current items). */
void fs_view(struct fakestreams *fs, const char *view);
/* The next count replies to op are HTTP 200 with a body that is not JSON
 * (and a matching x-amz-crc32: the service sent it so). */
void fs_bad_reply(struct fakestreams *fs, enum fs_op op, int count);
/* The next count BatchGetItem replies answer only the first `answered` keys
 * of the request (0: none); the others come back in UnprocessedKeys, as the
 * service returns them when a reply would pass 16 MB or the table's
 * provisioned throughput is exceeded (API_BatchGetItem.html). */
void fs_unprocessed(struct fakestreams *fs, int count, int answered);
/* The arrival times (CLOCK_MONOTONIC ms) of the first
 * calls of op, up to max; returns how many are known (at most 1024). */
size_t fs_call_times(struct fakestreams *fs, enum fs_op op, int64_t *out, size_t max);
/* Copies up to max of the shard's records (in stream order, trimmed ones
 * included) to out (may be NULL); returns how many the shard has. */
size_t fs_records(struct fakestreams *fs, int shard, struct fs_rec *out, size_t max);
/* The shard's id ("shardId-..."), as DescribeStream lists it. */
const char *fs_shard_id(struct fakestreams *fs, int shard);

/* Records before index n of the shard are trimmed (older than 24 h). */
void fs_trim(struct fakestreams *fs, int shard, size_t n);
/* The next `count` calls of op fail with HTTP status and error type. */
void fs_fail(struct fakestreams *fs, enum fs_op op, int count, int status, const char *type);
/* DescribeStream pages hold at most n shards (default 100). */
void fs_page_size(struct fakestreams *fs, int n);
/* Disables the stream and gives the table a new stream ARN with one open
 * shard (returned).  The old stream stays readable, DISABLED, its shards closed. */
int fs_new_stream(struct fakestreams *fs);
/* DescribeTable answers ResourceNotFoundException from now on. */
void fs_delete_table(struct fakestreams *fs);
/* From now on every request must carry a valid SigV4 signature (service
 * dynamodb, region us-east-1) by this key; others are refused as DynamoDB
 * does (400 UnrecognizedClientException / InvalidSignatureException). */
void fs_verify(struct fakestreams *fs, const char *akid, const char *secret, const char *token);
unsigned fs_rejected(struct fakestreams *fs);
/* From now on every reply to op (errors too) is held ms before it is sent;
 * other connections are served meanwhile, so calls overlap as they would at
 * the service.  0 (the default) answers at once. */
void fs_delay(struct fakestreams *fs, enum fs_op op, long ms);
/* The most calls of op that were in flight at the stand-in at once: received,
 * their reply still held by fs_delay.  Counted when a call arrives; without
 * a delay it says little (every reply leaves at once). */
unsigned fs_max_inflight(struct fakestreams *fs, enum fs_op op);
unsigned fs_calls(struct fakestreams *fs, enum fs_op op);
/* The smallest and largest Limit the GetRecords calls asked for since the
 * last fs_limits (a missing Limit counts as 1000); 0 and 0 if none came. */
void fs_limits(struct fakestreams *fs, long *min, long *max);
/* GetRecords calls for one shard, and the sequence number a
 * GetShardIterator AFTER_SEQUENCE_NUMBER last asked for ("" if none). */
unsigned fs_shard_reads(struct fakestreams *fs, int shard);
void fs_last_after_seq(struct fakestreams *fs, int shard, char *out, size_t len);
/* Order check: the first GetRecords call on child came after the parent's
 * final read (the one that returned no NextShardIterator). */
bool fs_child_read_after_parent_end(struct fakestreams *fs, int parent, int child);

#endif
