#include "tests/support/ddbclient.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "tests/support/ddbsign.h"

const char *ddbc_endpoint(void)
{
    const char *e = getenv("DDB2ES_TEST_DDB_ENDPOINT");

    return e && *e ? e : NULL;
}

json_t *ddbc_call(const char *op, const char *body, long *status)
{
    const char *endpoint = ddbc_endpoint();
    struct buf resp;
    json_t *j = NULL;
    long st;
    CURL *c;

    if (!endpoint)
        return NULL;
    buf_init(&resp, 512u << 20);
    c = curl_easy_init();
    st = ddbsign_post(c, endpoint, op, body, "test", "test", NULL, "us-east-1", 120, &resp);
    if (st)
        j = jsonx_loadb(resp.ptr ? resp.ptr : "", resp.len, 0, NULL);
    if (status)
        *status = st;
    curl_easy_cleanup(c);
    buf_close(&resp);
    return j;
}

json_t *ddbc_callj(const char *op, json_t *body)
{
    char *text = jsonx_dumps(body, NULL);
    long status = 0;
    json_t *r = ddbc_call(op, text, &status);

    if (status < 200 || status > 299) {
        char *rt = r ? jsonx_dumps(r, NULL) : NULL;

        fprintf(stderr, "DynamoDB %s failed: HTTP %ld %s (request %.300s)\n", op, status,
                rt ? rt : "", text);
        free(rt);
        cr_assert_fail("DynamoDB Local call %s failed", op);
    }
    free(text);
    json_decref(body);
    return r;
}

void ddbc_table_name(char *out, size_t outlen, const char *prefix)
{
    static unsigned counter;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, outlen, "%s_%d_%ld_%u", prefix, (int)getpid(), (long)(ts.tv_nsec / 1000),
             counter++);
}

void ddbc_create_table(const char *name, const char *hash_key, const char *hash_type,
                       const char *range_key, const char *range_type, const char *view)
{
    json_t *defs = json_pack("[{s:s, s:s}]", "AttributeName", hash_key, "AttributeType", hash_type);
    json_t *schema = json_pack("[{s:s, s:s}]", "AttributeName", hash_key, "KeyType", "HASH");

    if (range_key) {
        json_array_append_new(defs, json_pack("{s:s, s:s}", "AttributeName", range_key,
                                              "AttributeType", range_type));
        json_array_append_new(schema,
                              json_pack("{s:s, s:s}", "AttributeName", range_key, "KeyType", "RANGE"));
    }
    json_decref(ddbc_callj("CreateTable",
                           json_pack("{s:s, s:o, s:o, s:s, s:{s:b, s:s}}", "TableName", name,
                                     "AttributeDefinitions", defs, "KeySchema", schema,
                                     "BillingMode", "PAY_PER_REQUEST", "StreamSpecification",
                                     "StreamEnabled", 1, "StreamViewType", view)));
}

void ddbc_put(const char *table, const char *item_json)
{
    json_error_t e;
    json_t *item = jsonx_loadb(item_json, strlen(item_json), 0, &e);

    cr_assert_not_null(item, "bad item JSON in the test: %s", e.text);
    json_decref(ddbc_callj("PutItem", json_pack("{s:s, s:o}", "TableName", table, "Item", item)));
}

void ddbc_delete(const char *table, const char *key_json)
{
    json_t *key = jsonx_loadb(key_json, strlen(key_json), 0, NULL);

    cr_assert_not_null(key);
    json_decref(ddbc_callj("DeleteItem", json_pack("{s:s, s:o}", "TableName", table, "Key", key)));
}

json_t *ddbc_scan_all(const char *table)
{
    json_t *all = json_array(), *start = NULL;

    do {
        json_t *body = json_pack("{s:s, s:b}", "TableName", table, "ConsistentRead", 1);
        json_t *r;

        if (start)
            json_object_set_new(body, "ExclusiveStartKey", start);
        r = ddbc_callj("Scan", body);
        json_array_extend(all, json_object_get(r, "Items"));
        start = json_incref(json_object_get(r, "LastEvaluatedKey"));
        json_decref(r);
    } while (start);
    return all;
}
