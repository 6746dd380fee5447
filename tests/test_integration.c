/* The project's own HTTP + SigV4 + Streams code against DynamoDB Local, and
 * a bulk body through the same HTTP layer to the search double. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "base/http.h"
#include "indexer/bulk.h"
#include "indexer/transform.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/searchd_ctl.h"

TestSuite(integration, .timeout = 60);

struct chain {
    uv_loop_t loop;
    struct http *http;
    struct creds *creds;
    struct aws *aws;
    const char *table;
    char *arn, *shard, *iter;
    json_t *records;
    const char *sink_url;
    long bulk_status;
    char *bulk_reply;
    int step;
    const char *failed;
};

static void next(struct chain *c);

static void on_reply(const struct ddb_reply *rep, void *arg)
{
    struct chain *c = arg;
    json_t *j = rep->json;

    if (rep->cls != DDB_OK) {
        c->failed = rep->message && *rep->message ? rep->message : ddb_class_name(rep->cls);
        return;
    }
    switch (c->step++) {
    case 0: /* DescribeTable */
        c->arn = strdup(json_string_value(json_object_get(json_object_get(j, "Table"),
                                                          "LatestStreamArn")));
        break;
    case 1: /* DescribeStream */
        c->shard = strdup(json_string_value(json_object_get(
            json_array_get(json_object_get(json_object_get(j, "StreamDescription"), "Shards"), 0),
            "ShardId")));
        break;
    case 2: /* GetShardIterator */
        c->iter = strdup(json_string_value(json_object_get(j, "ShardIterator")));
        break;
    case 3: /* GetRecords */
        c->records = json_incref(json_object_get(j, "Records"));
        break;
    }
    next(c);
}

static void on_bulk(struct http_req *req, int err, void *arg)
{
    struct chain *c = arg;

    c->bulk_status = err ? err : http_req_status(req);
    c->bulk_reply = strdup(http_req_body(req)->ptr ? http_req_body(req)->ptr : "");
    aws_free(c->aws);
    c->aws = NULL;
    creds_free(c->creds);
    c->creds = NULL;
    http_close(c->http, NULL, NULL);
}

static void post_bulk(struct chain *c)
{
    struct transform_cfg tf = { .index = "posts", .id_sep = '|', .hash_key = "author",
                                .range_key = "ts" };
    struct buf body, err;
    struct doc d;
    size_t i;
    json_t *rec;
    char url[256];
    struct http_req *req;

    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 1 << 20);
    buf_init(&body, 1 << 20);
    buf_init(&err, 1024);
    json_array_foreach(c->records, i, rec)
    {
        cr_assert_eq(transform_record(&tf, rec, &d, &err), TR_DOC, "%s", err.ptr);
        d.version = 100 + i;
        cr_assert_eq(bulk_append(&body, &d, "external"), 0);
    }
    snprintf(url, sizeof(url), "%s/_bulk?filter_path=%s", c->sink_url, bulk_filter_path());
    req = http_req_new("POST", url);
    http_req_header(req, "Content-Type", "application/x-ndjson");
    http_req_body_take(req, buf_take(&body), strlen(body.ptr ? body.ptr : "") );
    buf_close(&d.source);
    buf_close(&err);
    cr_assert_eq(http_send(c->http, req, on_bulk, c), 0);
}

static void next(struct chain *c)
{
    json_t *body;
    const char *op;
    enum aws_service svc = AWS_STREAMS;

    switch (c->step) {
    case 0:
        body = json_pack("{s:s}", "TableName", c->table);
        op = "DescribeTable";
        svc = AWS_DYNAMODB;
        break;
    case 1:
        body = json_pack("{s:s}", "StreamArn", c->arn);
        op = "DescribeStream";
        break;
    case 2:
        body = json_pack("{s:s, s:s, s:s}", "StreamArn", c->arn, "ShardId", c->shard,
                         "ShardIteratorType", "TRIM_HORIZON");
        op = "GetShardIterator";
        break;
    case 3:
        body = json_pack("{s:s}", "ShardIterator", c->iter);
        op = "GetRecords";
        break;
    default:
        post_bulk(c);
        return;
    }
    cr_assert_not_null(ddb_call(c->aws, svc, op, body, on_reply, c, NULL));
}

Test(integration, streams_to_bulk_through_own_http_and_sigv4)
{
    struct chain c = { 0 };
    char name[128], why[512];
    struct searchd *sd;
    struct e2e_table t = { .hash = "author", .range = "ts", .index = "posts" };

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
    ddbc_table_name(name, sizeof(name), "chain");
    t.name = name;
    ddbc_create_table(name, "author", "S", "ts", "N", "NEW_AND_OLD_IMAGES");
    ddbc_put(name, "{\"author\":{\"S\":\"ana\"},\"ts\":{\"N\":\"1\"},\"n\":{\"N\":\"0.12345678901234567890123456789012345678\"}}");
    ddbc_put(name, "{\"author\":{\"S\":\"bo\"},\"ts\":{\"N\":\"2\"},\"l\":{\"L\":[{\"S\":\"x\"}]}}");
    sd = searchd_start(NULL);
    setenv("AWS_ACCESS_KEY_ID", "integration", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);

    cr_assert_eq(uv_loop_init(&c.loop), 0);
    c.table = name;
    c.sink_url = searchd_url(sd);
    c.http = http_new(&c.loop, NULL);
    c.creds = creds_new(&c.loop, c.http, NULL);
    c.aws = aws_new(&c.loop, c.http, c.creds,
                    &(struct aws_opts){ .region = "us-east-1",
                                        .endpoint_dynamodb = ddbc_endpoint(),
                                        .endpoint_streams = ddbc_endpoint() });
    cr_assert_not_null(c.aws);
    next(&c);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    cr_assert_null(c.failed, "a call failed: %s", c.failed);
    cr_assert_eq(json_array_size(c.records), 2, "GetRecords returned both records");
    cr_assert_eq(c.bulk_status, 200, "bulk answered %ld: %s", c.bulk_status, c.bulk_reply);
    cr_assert(strstr(c.bulk_reply, "\"errors\":false") != NULL, "%s", c.bulk_reply);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    cr_assert_eq(uv_loop_close(&c.loop), 0, "nothing left open on the loop");
    json_decref(c.records);
    free(c.arn);
    free(c.shard);
    free(c.iter);
    free(c.bulk_reply);
    searchd_stop(sd);
}
