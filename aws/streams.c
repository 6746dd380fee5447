/* streams: request bodies and reply readers (see aws/streams.h).  Member
 * names follow the API references: DynamoDB Streams (botocore
 * dynamodbstreams/2012-08-10/service-2.json, REFERENCE.md "DynamoDB Streams
 * API") and DynamoDB (DescribeTable, BatchGetItem). */
#include "aws/streams.h"

#include <string.h>

static json_t *member(const json_t *o, const char *key)
{
    return json_object_get(o, key); /* NULL for a NULL or non-object o */
}

static const char *string_member(const json_t *o, const char *key)
{
    return json_string_value(member(o, key)); /* NULL unless a string */
}

static json_t *array_member(const json_t *o, const char *key)
{
    json_t *a = member(o, key);

    return json_is_array(a) ? a : NULL;
}

/* ---- GetShardIterator --------------------------------------------------- */

json_t *streams_get_iterator_req(const char *stream_arn, const char *shard_id,
                                 enum streams_position pos, const char *seq)
{
    static const char *const type[] = { [STREAMS_TRIM_HORIZON] = "TRIM_HORIZON",
                                        [STREAMS_LATEST] = "LATEST",
                                        [STREAMS_AFTER_SEQUENCE_NUMBER] =
                                            "AFTER_SEQUENCE_NUMBER" };
    json_t *body = json_pack("{s:s, s:s, s:s}", "StreamArn", stream_arn, "ShardId", shard_id,
                             "ShardIteratorType", type[pos]);

    if (body && pos == STREAMS_AFTER_SEQUENCE_NUMBER &&
        json_object_set_new(body, "SequenceNumber", json_string(seq)) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

const char *streams_iterator_parse(const json_t *reply)
{
    return string_member(reply, "ShardIterator");
}

/* ---- GetRecords ----------------------------------------------------------- */

json_t *streams_get_records_req(const char *iterator, unsigned limit)
{
    return json_pack("{s:s, s:i}", "ShardIterator", iterator, "Limit", (int)limit);
}

void streams_record_parse(const json_t *rec, struct streams_record *out)
{
    json_t *dyn = member(rec, "dynamodb");

    out->seq = string_member(dyn, "SequenceNumber");
    out->keys = member(dyn, "Keys");
}

/* ---- DescribeStream ------------------------------------------------------- */

json_t *streams_describe_stream_req(const char *stream_arn, unsigned limit,
                                    const char *exclusive_start, const char *children_of)
{
    json_t *body = json_pack("{s:s, s:i}", "StreamArn", stream_arn, "Limit", (int)limit);
    int rc = 0;

    if (body && exclusive_start)
        rc |= json_object_set_new(body, "ExclusiveStartShardId", json_string(exclusive_start));
    if (body && children_of)
        rc |= json_object_set_new(body, "ShardFilter",
                                  json_pack("{s:s, s:s}", "Type", "CHILD_SHARDS", "ShardId",
                                            children_of));
    if (rc != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

void streams_description_parse(const json_t *reply, struct streams_description *out)
{
    json_t *desc = member(reply, "StreamDescription");

    out->status = string_member(desc, "StreamStatus");
    out->disabled = out->status && strcmp(out->status, "DISABLED") == 0;
    out->shards = array_member(desc, "Shards");
    out->nshards = json_array_size(out->shards);
    out->last_shard_id = string_member(desc, "LastEvaluatedShardId");
}

bool streams_description_shard(const struct streams_description *d, size_t i,
                               struct streams_shard *out)
{
    json_t *sh = json_array_get(d->shards, i);
    json_t *range = member(sh, "SequenceNumberRange");

    out->id = string_member(sh, "ShardId");
    out->parent = string_member(sh, "ParentShardId");
    out->start_seq = string_member(range, "StartingSequenceNumber");
    out->end_seq = string_member(range, "EndingSequenceNumber");
    return out->id != NULL;
}

/* ---- ListStreams ---------------------------------------------------------- */

json_t *streams_list_streams_req(const char *table, const char *exclusive_start_arn)
{
    json_t *body = json_pack("{s:s}", "TableName", table);

    if (body && exclusive_start_arn &&
        json_object_set_new(body, "ExclusiveStartStreamArn", json_string(exclusive_start_arn)) !=
            0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

void streams_list_parse(const json_t *reply, struct streams_list *out)
{
    out->streams = array_member(reply, "Streams");
    out->n = json_array_size(out->streams);
    out->last_arn = string_member(reply, "LastEvaluatedStreamArn");
}

const char *streams_list_arn(const struct streams_list *l, size_t i)
{
    return string_member(json_array_get(l->streams, i), "StreamArn");
}

/* ---- DescribeTable -------------------------------------------------------- */

json_t *streams_describe_table_req(const char *table)
{
    return json_pack("{s:s}", "TableName", table);
}

void streams_table_parse(const json_t *reply, struct streams_table *out)
{
    json_t *table = member(reply, "Table");
    json_t *spec = member(table, "StreamSpecification");
    json_t *k;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->latest_arn = string_member(table, "LatestStreamArn");
    out->stream_enabled = json_is_true(member(spec, "StreamEnabled"));
    out->view_type = string_member(spec, "StreamViewType");
    json_array_foreach(array_member(table, "KeySchema"), i, k)
    {
        json_t *name = member(k, "AttributeName");
        const char *type = string_member(k, "KeyType");

        if (!json_is_string(name) || !type)
            continue;
        if (strcmp(type, "HASH") == 0) {
            out->hash_key = json_string_value(name);
            out->hash_key_len = json_string_length(name);
        } else if (strcmp(type, "RANGE") == 0) {
            out->range_key = json_string_value(name);
            out->range_key_len = json_string_length(name);
        }
    }
}

/* ---- BatchGetItem --------------------------------------------------------- */

json_t *streams_batch_get_req(const char *table, json_t *keys)
{
    return json_pack("{s:{s:{s:o, s:b}}}", "RequestItems", table, "Keys", keys,
                     "ConsistentRead", 1);
}

void streams_batch_get_parse(const json_t *reply, const char *table,
                             struct streams_batch_get *out)
{
    out->items = array_member(member(reply, "Responses"), table);
    out->unprocessed = array_member(member(member(reply, "UnprocessedKeys"), table), "Keys");
}
