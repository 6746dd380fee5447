/* aws/streams: the request bodies the daemon sends to DynamoDB Streams and
 * DynamoDB, and the replies read into structs.  Reply shapes follow the API
 * references (REFERENCE.md "DynamoDB Streams API": facts 2, 5, 8, 13, 14,
 * 15) and what DynamoDB Local sends (DDBLOCAL.md "Pagination works",
 * "StreamStatus", the last page of a closed shard). */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "aws/streams.h"
#include "base/jsonx.h"

TestSuite(streamsproto, .timeout = 10);

#define ARN "arn:aws:dynamodb:us-east-1:000000000000:table/posts/stream/2026-01-01T00:00:00.000"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = jsonx_loadb(text, strlen(text), 0, &err);

    cr_assert(j, "bad test JSON: %s: %s", err.text, text);
    return j;
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* ---- GetShardIterator ---- */

Test(streamsproto, get_iterator_request_for_each_position)
{
    static const struct {
        enum streams_position pos;
        const char *type;
    } cases[] = { { STREAMS_TRIM_HORIZON, "TRIM_HORIZON" },
                  { STREAMS_LATEST, "LATEST" },
                  { STREAMS_AFTER_SEQUENCE_NUMBER, "AFTER_SEQUENCE_NUMBER" } };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *b = streams_get_iterator_req(ARN, "shardId-1", cases[i].pos,
                                             "000000000000000000042");

        cr_assert(b);
        cr_assert_str_eq(str(b, "StreamArn"), ARN);
        cr_assert_str_eq(str(b, "ShardId"), "shardId-1");
        cr_assert_str_eq(str(b, "ShardIteratorType"), cases[i].type);
        if (cases[i].pos == STREAMS_AFTER_SEQUENCE_NUMBER)
            cr_assert_str_eq(str(b, "SequenceNumber"), "000000000000000000042");
        else
            cr_assert_null(json_object_get(b, "SequenceNumber"), "%s names a sequence number",
                           cases[i].type);
        cr_assert_eq(json_object_size(b), cases[i].pos == STREAMS_AFTER_SEQUENCE_NUMBER ? 4 : 3);
        json_decref(b);
    }
}

Test(streamsproto, iterator_reply)
{
    json_t *ok = parse("{\"ShardIterator\":\"it|1\"}");
    json_t *closed = parse("{}"); /* a closed shard with nothing left */
    json_t *null = parse("{\"ShardIterator\":null}");
    json_t *number = parse("{\"ShardIterator\":7}");

    cr_assert_str_eq(streams_iterator_parse(ok), "it|1");
    cr_assert_null(streams_iterator_parse(closed));
    cr_assert_null(streams_iterator_parse(null));
    cr_assert_null(streams_iterator_parse(number));
    cr_assert_null(streams_iterator_parse(NULL));
    json_decref(ok);
    json_decref(closed);
    json_decref(null);
    json_decref(number);
}

/* ---- GetRecords ---- */

Test(streamsproto, get_records_request)
{
    json_t *b = streams_get_records_req("it|1", 1000);

    cr_assert_str_eq(str(b, "ShardIterator"), "it|1");
    cr_assert_eq(json_integer_value(json_object_get(b, "Limit")), 1000);
    cr_assert_eq(json_object_size(b), 2);
    json_decref(b);
}

Test(streamsproto, page_empty_open_and_last_of_closed)
{
    /* An open shard answers an empty page with a next iterator; the last
     * page of a closed shard has none (REFERENCE.md Streams fact 2). */
    static const char open_page[] = "{\"Records\":[],\"NextShardIterator\":\"n\"}";
    static const char last_page[] = "{\"Records\":[{\"eventName\":\"INSERT\"}]}";
    struct streams_page p = { 0 };

    cr_assert_eq(streams_page_scan(open_page, strlen(open_page), &p), 0);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.next_iter, "n");
    cr_assert_eq(streams_page_scan(last_page, strlen(last_page), &p), 0);
    cr_assert_eq(p.n, 1);
    cr_assert_null(p.next_iter);
    cr_assert_eq(p.span[0].len, strlen("{\"eventName\":\"INSERT\"}"));
    streams_page_free(&p);
    cr_assert_null(p.span);
}

Test(streamsproto, page_wrong_types)
{
    static const char *const bad[] = {
        "{\"Records\":{},\"NextShardIterator\":\"n\"}",  /* not a list */
        "{\"Records\":[1],\"NextShardIterator\":\"n\"}", /* a record that is no object */
        "{\"Records\":[],\"NextShardIterator\":5}",      /* an iterator that is no string */
        "[]",
    };
    struct streams_page p = { 0 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(streams_page_scan(bad[i], strlen(bad[i]), &p), -EPROTO, "took %s", bad[i]);
        cr_assert_null(p.next_iter);
    }
    streams_page_free(&p);
}

Test(streamsproto, record_sequence_number_and_keys)
{
    json_t *rec = parse("{\"eventName\":\"MODIFY\",\"dynamodb\":{\"Keys\":{\"p\\u0000k\":{\"S\":"
                        "\"a\"}},\"SequenceNumber\":\"000000000000000000042\","
                        "\"ApproximateCreationDateTime\":1767225600}}");
    json_t *no_dyn = parse("{\"eventName\":\"MODIFY\"}");
    json_t *seq_num = parse("{\"dynamodb\":{\"SequenceNumber\":42}}");
    struct streams_record r;

    streams_record_parse(rec, &r);
    cr_assert_str_eq(r.seq, "000000000000000000042");
    cr_assert(json_is_object(r.keys));
    cr_assert_eq(json_object_size(r.keys), 1);
    cr_assert(json_object_getn(r.keys, "p\0k", 3), "the key with a NUL in its name is kept");
    streams_record_parse(no_dyn, &r);
    cr_assert_null(r.seq);
    cr_assert_null(r.keys);
    streams_record_parse(seq_num, &r);
    cr_assert_null(r.seq, "a sequence number is a string (REFERENCE.md Streams fact 9)");
    streams_record_parse(NULL, &r); /* a record that did not parse */
    cr_assert_null(r.seq);
    json_decref(rec);
    json_decref(no_dyn);
    json_decref(seq_num);
}

/* ---- DescribeStream ---- */

Test(streamsproto, describe_stream_requests)
{
    json_t *full = streams_describe_stream_req(ARN, 100, NULL, NULL);
    json_t *next = streams_describe_stream_req(ARN, 100, "shardId-9", NULL);
    json_t *kids = streams_describe_stream_req(ARN, 100, NULL, "shardId-1");
    json_t *filter = json_object_get(kids, "ShardFilter");

    cr_assert_str_eq(str(full, "StreamArn"), ARN);
    cr_assert_eq(json_integer_value(json_object_get(full, "Limit")), 100);
    cr_assert_eq(json_object_size(full), 2);
    cr_assert_str_eq(str(next, "ExclusiveStartShardId"), "shardId-9");
    cr_assert_null(json_object_get(next, "ShardFilter"));
    cr_assert_str_eq(str(filter, "Type"), "CHILD_SHARDS");
    cr_assert_str_eq(str(filter, "ShardId"), "shardId-1");
    cr_assert_null(json_object_get(kids, "ExclusiveStartShardId"));
    json_decref(full);
    json_decref(next);
    json_decref(kids);
}

Test(streamsproto, description_shards_lineage_and_pages)
{
    json_t *rep = parse(
        "{\"StreamDescription\":{\"StreamArn\":\"" ARN "\",\"StreamStatus\":\"ENABLED\","
        "\"Shards\":[{\"ShardId\":\"shardId-1\",\"SequenceNumberRange\":{"
        "\"StartingSequenceNumber\":\"000000000000000000001\","
        "\"EndingSequenceNumber\":\"000000000000000000009\"}},"
        "{\"ShardId\":\"shardId-2\",\"ParentShardId\":\"shardId-1\",\"SequenceNumberRange\":{"
        "\"StartingSequenceNumber\":\"000000000000000000010\"}},"
        "{\"ParentShardId\":\"shardId-1\"},"
        "{\"ShardId\":3}],"
        "\"LastEvaluatedShardId\":\"shardId-2\"}}");
    struct streams_description d;
    struct streams_shard sh;

    streams_description_parse(rep, &d);
    cr_assert_str_eq(d.status, "ENABLED");
    cr_assert_not(d.disabled);
    cr_assert_eq(d.nshards, 4);
    cr_assert_str_eq(d.last_shard_id, "shardId-2");
    cr_assert(streams_description_shard(&d, 0, &sh));
    cr_assert_str_eq(sh.id, "shardId-1");
    cr_assert_null(sh.parent);
    cr_assert_str_eq(sh.start_seq, "000000000000000000001");
    cr_assert_str_eq(sh.end_seq, "000000000000000000009", "closed");
    cr_assert(streams_description_shard(&d, 1, &sh));
    cr_assert_str_eq(sh.parent, "shardId-1");
    cr_assert_null(sh.end_seq, "open");
    cr_assert_not(streams_description_shard(&d, 2, &sh), "no ShardId: nothing to read");
    cr_assert_not(streams_description_shard(&d, 3, &sh), "a ShardId that is no string");
    cr_assert_not(streams_description_shard(&d, 4, &sh), "past the end");
    json_decref(rep);
}

Test(streamsproto, description_disabled_last_page_and_wrong_types)
{
    /* DDBLOCAL.md: DISABLED after the stream is disabled; the last page has
     * no LastEvaluatedShardId (or null). */
    json_t *last = parse("{\"StreamDescription\":{\"StreamStatus\":\"DISABLED\",\"Shards\":[],"
                         "\"LastEvaluatedShardId\":null}}");
    json_t *odd = parse("{\"StreamDescription\":{\"StreamStatus\":1,\"Shards\":{\"ShardId\":"
                        "\"shardId-1\"},\"LastEvaluatedShardId\":[]}}");
    json_t *none = parse("{}");
    struct streams_description d;

    streams_description_parse(last, &d);
    cr_assert(d.disabled);
    cr_assert_eq(d.nshards, 0);
    cr_assert_null(d.last_shard_id);
    streams_description_parse(odd, &d);
    cr_assert_null(d.status);
    cr_assert_not(d.disabled);
    cr_assert_eq(d.nshards, 0, "Shards that is no list holds no shard");
    cr_assert_null(d.shards);
    cr_assert_null(d.last_shard_id);
    streams_description_parse(none, &d);
    cr_assert_eq(d.nshards, 0);
    cr_assert_null(d.status);
    json_decref(last);
    json_decref(odd);
    json_decref(none);
}

/* ---- ListStreams ---- */

Test(streamsproto, list_streams_request_and_reply)
{
    json_t *first = streams_list_streams_req("posts", NULL);
    json_t *next = streams_list_streams_req("posts", ARN);
    json_t *rep = parse("{\"Streams\":[{\"StreamArn\":\"" ARN "\",\"TableName\":\"posts\","
                        "\"StreamLabel\":\"2026-01-01T00:00:00.000\"},{\"StreamArn\":null},"
                        "{\"TableName\":\"posts\"}],\"LastEvaluatedStreamArn\":\"" ARN "\"}");
    json_t *end = parse("{\"Streams\":[]}");
    struct streams_list l;

    cr_assert_str_eq(str(first, "TableName"), "posts");
    cr_assert_eq(json_object_size(first), 1);
    cr_assert_str_eq(str(next, "ExclusiveStartStreamArn"), ARN);
    streams_list_parse(rep, &l);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(streams_list_arn(&l, 0), ARN);
    cr_assert_null(streams_list_arn(&l, 1));
    cr_assert_null(streams_list_arn(&l, 2));
    cr_assert_null(streams_list_arn(&l, 3));
    cr_assert_str_eq(l.last_arn, ARN);
    streams_list_parse(end, &l);
    cr_assert_eq(l.n, 0);
    cr_assert_null(l.last_arn);
    json_decref(first);
    json_decref(next);
    json_decref(rep);
    json_decref(end);
}

/* ---- DescribeTable ---- */

Test(streamsproto, describe_table_request_and_reply)
{
    json_t *b = streams_describe_table_req("posts");
    json_t *rep = parse(
        "{\"Table\":{\"TableName\":\"posts\",\"KeySchema\":[{\"AttributeName\":\"p\\u0000k\","
        "\"KeyType\":\"HASH\"},{\"AttributeName\":\"sk\",\"KeyType\":\"RANGE\"}],"
        "\"StreamSpecification\":{\"StreamEnabled\":true,\"StreamViewType\":\"KEYS_ONLY\"},"
        "\"LatestStreamArn\":\"" ARN "\"}}");
    struct streams_table t;

    cr_assert_str_eq(str(b, "TableName"), "posts");
    cr_assert_eq(json_object_size(b), 1);
    streams_table_parse(rep, &t);
    cr_assert_str_eq(t.latest_arn, ARN);
    cr_assert(t.stream_enabled);
    cr_assert_str_eq(t.view_type, "KEYS_ONLY");
    /* Attribute names may hold NUL (REFERENCE.md Streams fact 15: any UTF-8). */
    cr_assert_eq(t.hash_key_len, 3);
    cr_assert_eq(memcmp(t.hash_key, "p\0k", 3), 0);
    cr_assert_eq(t.range_key_len, 2);
    cr_assert_str_eq(t.range_key, "sk");
    json_decref(b);
    json_decref(rep);
}

Test(streamsproto, describe_table_without_stream_or_schema)
{
    /* A table without a stream has no LatestStreamArn and no
     * StreamSpecification; wrong types read as absent. */
    json_t *bare = parse("{\"Table\":{\"TableName\":\"posts\",\"KeySchema\":[{\"AttributeName\":"
                         "\"pk\",\"KeyType\":\"HASH\"}]}}");
    json_t *odd = parse("{\"Table\":{\"KeySchema\":[{\"AttributeName\":1,\"KeyType\":\"HASH\"},"
                        "{\"AttributeName\":\"x\",\"KeyType\":\"OTHER\"},{\"AttributeName\":"
                        "\"y\"}],\"StreamSpecification\":{\"StreamEnabled\":\"true\","
                        "\"StreamViewType\":5},\"LatestStreamArn\":{}}}");
    struct streams_table t;

    streams_table_parse(bare, &t);
    cr_assert_null(t.latest_arn);
    cr_assert_not(t.stream_enabled);
    cr_assert_null(t.view_type);
    cr_assert_str_eq(t.hash_key, "pk");
    cr_assert_null(t.range_key, "a hash key only");
    cr_assert_eq(t.range_key_len, 0);
    streams_table_parse(odd, &t);
    cr_assert_null(t.hash_key);
    cr_assert_null(t.range_key);
    cr_assert_not(t.stream_enabled, "a string \"true\" is not true");
    cr_assert_null(t.view_type);
    cr_assert_null(t.latest_arn);
    json_decref(bare);
    json_decref(odd);
}

/* ---- BatchGetItem ---- */

Test(streamsproto, batch_get_request)
{
    json_t *keys = parse("[{\"pk\":{\"S\":\"a\"}},{\"pk\":{\"S\":\"b\"}}]");
    json_t *b = streams_batch_get_req("posts", keys); /* takes keys */
    json_t *ri = json_object_get(json_object_get(b, "RequestItems"), "posts");

    cr_assert(ri);
    cr_assert_eq(json_array_size(json_object_get(ri, "Keys")), 2);
    cr_assert(json_is_true(json_object_get(ri, "ConsistentRead")));
    json_decref(b);
}

Test(streamsproto, batch_get_reply_items_and_unprocessed)
{
    json_t *rep = parse("{\"Responses\":{\"posts\":[{\"pk\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}],"
                        "\"other\":[{}, {}]},\"UnprocessedKeys\":{\"posts\":{\"Keys\":[{\"pk\":"
                        "{\"S\":\"b\"}}],\"ConsistentRead\":true}}}");
    json_t *done = parse("{\"Responses\":{\"posts\":[]},\"UnprocessedKeys\":{}}");
    json_t *odd = parse("{\"Responses\":{\"posts\":{}},\"UnprocessedKeys\":{\"posts\":{\"Keys\":"
                        "\"b\"}}}");
    struct streams_batch_get g;

    streams_batch_get_parse(rep, "posts", &g);
    cr_assert_eq(json_array_size(g.items), 1);
    cr_assert_eq(json_array_size(g.unprocessed), 1);
    streams_batch_get_parse(rep, "missing", &g);
    cr_assert_null(g.items);
    cr_assert_null(g.unprocessed);
    streams_batch_get_parse(done, "posts", &g);
    cr_assert(json_is_array(g.items));
    cr_assert_eq(json_array_size(g.items), 0);
    cr_assert_null(g.unprocessed);
    streams_batch_get_parse(odd, "posts", &g);
    cr_assert_null(g.items, "Responses.<table> that is no list");
    cr_assert_null(g.unprocessed, "Keys that is no list");
    json_decref(rep);
    json_decref(done);
    json_decref(odd);
}
