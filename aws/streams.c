/* streams: request bodies and reply readers (see aws/streams.h).  Member
 * names follow the API references: DynamoDB Streams (botocore
 * dynamodbstreams/2012-08-10/service-2.json, REFERENCE.md "DynamoDB Streams
 * API") and DynamoDB (DescribeTable, BatchGetItem). */
#include "aws/streams.h"

#include "base/jsonskip.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
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

/* ---- a GetRecords page: each record's extent ----------------------------- */

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    s->p = jsonskip_ws(s->p, s->end);
}

/* At the opening quote: moves past the closing one. */
static bool skip_string(struct scan *s)
{
    const char *q = jsonskip_string(s->p, s->end);

    if (!q)
        return false;
    s->p = q;
    return true;
}

/* One value of any kind; its text is [start, s->p) afterwards. */
static bool skip_value(struct scan *s, const char **start)
{
    const char *q;

    skip_ws(s);
    *start = s->p;
    q = jsonskip_value(s->p, s->end);
    if (!q || q == s->p)
        return false;
    s->p = q;
    return true;
}

static bool take(struct scan *s, char c)
{
    const char *q = jsonskip_take(s->p, s->end, c);

    if (q)
        s->p = q;
    return q != NULL;
}

static int add_span(struct streams_page *pg, size_t off, size_t len)
{
    if (pg->n == pg->cap) {
        size_t ncap = pg->cap ? 2 * pg->cap : 256;
        struct streams_span *v = realloc(pg->span, ncap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        pg->span = v;
        pg->cap = ncap;
    }
    pg->span[pg->n++] = (struct streams_span){ off, len };
    return 0;
}

static int scan_records(struct scan *s, const char *base, struct streams_page *pg)
{
    const char *v;
    int rc;

    pg->bad_off = (size_t)(s->p - base);
    if (!take(s, '['))
        return -EPROTO;
    pg->bad_off = (size_t)(s->p - base);
    if (take(s, ']'))
        return 0;
    do {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '{' || !skip_value(s, &v))
            return -EPROTO;
        rc = add_span(pg, (size_t)(v - base), (size_t)(s->p - v));
        if (rc < 0)
            return rc;
        pg->bad_off = (size_t)(s->p - base);
    } while (take(s, ','));
    return take(s, ']') ? 0 : -EPROTO;
}

static int scan_iterator(struct scan *s, struct streams_page *pg)
{
    const char *v;
    json_t *j;

    if (!skip_value(s, &v))
        return -EPROTO;
    j = json_loadb(v, (size_t)(s->p - v), JSON_DECODE_ANY, NULL);
    free(pg->next_iter);
    pg->next_iter = NULL;
    if (json_is_string(j) && !(pg->next_iter = strdup(json_string_value(j)))) {
        json_decref(j);
        return -ENOMEM;
    }
    if (!json_is_string(j) && !json_is_null(j)) {
        json_decref(j);
        return -EPROTO;
    }
    json_decref(j);
    return 0;
}

int streams_page_scan(const char *body, size_t len, struct streams_page *pg)
{
    struct scan s = { body, body + len };
    bool records = false;
    int rc = 0;

    pg->n = 0;
    pg->bad_off = 0;
    free(pg->next_iter);
    pg->next_iter = NULL;
    if (!body || !take(&s, '{'))
        return -EPROTO;
    if (!take(&s, '}')) {
        do {
            const char *k;
            size_t klen = 0;

            skip_ws(&s);
            k = s.p;
            if (s.p >= s.end || *s.p != '"' || !skip_string(&s))
                rc = -EPROTO;
            else
                klen = (size_t)(s.p - k);
            if (rc == 0 && !take(&s, ':'))
                rc = -EPROTO;
            if (rc == 0 && klen == 9 && memcmp(k, "\"Records\"", 9) == 0 && !records) {
                records = true;
                rc = scan_records(&s, body, pg);
                if (rc == -EPROTO)
                    return rc; /* the records before the break are kept */
            } else if (rc == 0 && klen == 19 && memcmp(k, "\"NextShardIterator\"", 19) == 0) {
                rc = scan_iterator(&s, pg);
            } else if (rc == 0) {
                const char *v;

                rc = skip_value(&s, &v) ? 0 : -EPROTO;
            }
        } while (rc == 0 && take(&s, ','));
        if (rc == 0 && !take(&s, '}'))
            rc = -EPROTO;
    }
    skip_ws(&s);
    if (rc == 0 && s.p != s.end)
        rc = -EPROTO;
    if (rc < 0) {
        /* Broken outside the records: nothing can be trusted. */
        pg->n = 0;
        pg->bad_off = 0;
        free(pg->next_iter);
        pg->next_iter = NULL;
    }
    return rc;
}

void streams_page_free(struct streams_page *pg)
{
    free(pg->span);
    free(pg->next_iter);
    memset(pg, 0, sizeof(*pg));
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
