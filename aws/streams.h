/* streams — the requests the daemon sends to DynamoDB Streams and DynamoDB
 * (GetShardIterator, GetRecords, DescribeStream, ListStreams, DescribeTable,
 * BatchGetItem), each built as a JSON body, and their replies read into
 * small structs.  What a reply means (throttled, expired, not found...) is
 * ddb_classify's part (aws/ddb.h); these read the body of a DDB_OK reply.
 *
 * Builders return a new body, or NULL when memory ran out.  Parsers borrow:
 * the strings and arrays they give point into the reply and live as long as
 * it does.  A member that is absent, null or of another type than the API
 * reference gives it reads as absent (NULL, 0 or false).
 *
 * A GetRecords reply is not parsed whole (streams_page_scan, below).
 *
 * Pure: no I/O.
 */
#ifndef DDB2ES_STREAMS_H
#define DDB2ES_STREAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- GetShardIterator --------------------------------------------------- */

enum streams_position {
    STREAMS_TRIM_HORIZON,
    STREAMS_LATEST,
    STREAMS_AFTER_SEQUENCE_NUMBER, /* seq is then required */
};

json_t *streams_get_iterator_req(const char *stream_arn, const char *shard_id,
                                 enum streams_position pos, const char *seq);
/* The ShardIterator of the reply, or NULL: a closed shard with nothing more
 * to read (REFERENCE.md Streams fact 2). */
const char *streams_iterator_parse(const json_t *reply);

/* ---- GetRecords ----------------------------------------------------------- */

json_t *streams_get_records_req(const char *iterator, unsigned limit);

/* A reply {"Records":[{...},...],"NextShardIterator":"..."} of 1 MB becomes a
 * jansson tree of ~13 MB (every attribute value is an object with its own
 * hash table).  streams_page_scan() only finds where each record's text
 * starts and ends (strings, escapes and nesting are followed; nothing is
 * decoded), so the caller parses one record at a time and never holds more
 * than one record's tree.  Each byte is still parsed by jansson exactly
 * once, and a malformed record fails its own parse.  DynamoDB Streams sends
 * no MillisBehindLatest (that is Kinesis): the page says nothing of it. */
struct streams_span {
    size_t off, len; /* one record's JSON text inside the reply */
};

struct streams_page {
    struct streams_span *span; /* n records in order (heap; kept by the scan for reuse) */
    size_t n, cap;
    char *next_iter;           /* NextShardIterator (heap), NULL when absent or null */
    size_t bad_off;            /* after -EPROTO: where the text stops being readable */
};

/* Fills page from the reply body (page starts zeroed or from an earlier
 * scan; its memory is reused).  Members other than Records and
 * NextShardIterator are skipped.  Returns 0, -EPROTO when the text is not
 * such an object, or -ENOMEM.  After -EPROTO, page->n counts the records
 * that were whole before the text broke, and bad_off is the offset where
 * the broken part starts (next_iter is set only if it came before it). */
int streams_page_scan(const char *body, size_t len, struct streams_page *page);
void streams_page_free(struct streams_page *page); /* the memory; page is zeroed */

/* One record of a page, once parsed: its "dynamodb" member's sequence
 * number (a string, not yet checked: seqnum_valid) and Keys. */
struct streams_record {
    const char *seq;
    json_t *keys;
};

void streams_record_parse(const json_t *rec, struct streams_record *out);

/* ---- DescribeStream ------------------------------------------------------- */

/* Limit shards a page, after exclusive_start (NULL: from the first); with
 * children_of, only the children of that shard (ShardFilter CHILD_SHARDS,
 * REFERENCE.md Streams fact 8). */
json_t *streams_describe_stream_req(const char *stream_arn, unsigned limit,
                                    const char *exclusive_start, const char *children_of);

struct streams_description {
    const char *status;        /* StreamStatus: ENABLED, ENABLING, DISABLED, DISABLING */
    bool disabled;             /* status is DISABLED: the stream gets no new shard */
    json_t *shards;            /* the Shards array, or NULL */
    size_t nshards;
    const char *last_shard_id; /* LastEvaluatedShardId: more pages follow, or NULL */
};

struct streams_shard {
    const char *id;
    const char *parent;                  /* ParentShardId, or NULL */
    const char *start_seq, *end_seq;     /* SequenceNumberRange; end_seq set: closed */
};

void streams_description_parse(const json_t *reply, struct streams_description *out);
/* Shard i of the page.  False when it has no ShardId (nothing to read). */
bool streams_description_shard(const struct streams_description *d, size_t i,
                               struct streams_shard *out);

/* ---- ListStreams ---------------------------------------------------------- */

json_t *streams_list_streams_req(const char *table, const char *exclusive_start_arn);

struct streams_list {
    json_t *streams;       /* the Streams array, or NULL */
    size_t n;
    const char *last_arn;  /* LastEvaluatedStreamArn: more pages follow, or NULL */
};

void streams_list_parse(const json_t *reply, struct streams_list *out);
/* The StreamArn of entry i, or NULL. */
const char *streams_list_arn(const struct streams_list *l, size_t i);

/* ---- DescribeTable -------------------------------------------------------- */

json_t *streams_describe_table_req(const char *table);

struct streams_table {
    const char *latest_arn;       /* LatestStreamArn, or NULL: the table has no stream */
    bool stream_enabled;          /* StreamSpecification.StreamEnabled */
    const char *view_type;        /* StreamSpecification.StreamViewType, or NULL */
    /* KeySchema: attribute names may hold NUL (DynamoDB takes any UTF-8),
     * so each comes with its length; NULL when the schema names none. */
    const char *hash_key, *range_key;
    size_t hash_key_len, range_key_len;
};

void streams_table_parse(const json_t *reply, struct streams_table *out);

/* ---- BatchGetItem --------------------------------------------------------- */

/* A strongly consistent read of keys (an array of key objects; the
 * reference is taken, also on failure) from table. */
json_t *streams_batch_get_req(const char *table, json_t *keys);

struct streams_batch_get {
    json_t *items;       /* Responses.<table>: the items found, or NULL */
    json_t *unprocessed; /* UnprocessedKeys.<table>.Keys: to ask for again, or NULL */
};

void streams_batch_get_parse(const json_t *reply, const char *table,
                             struct streams_batch_get *out);

#endif
