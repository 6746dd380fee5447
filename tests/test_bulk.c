/* bulk: NDJSON action lines, and what each bulk reply means. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include "indexer/bulk.h"
#include "indexer/bulkresp.h"
#include "indexer/transform.h"
#include "tests/support/rounds.h"

TestSuite(bulk, .timeout = 10);

static struct doc make_doc(enum doc_op op, const char *id, const char *source, uint64_t version)
{
    struct doc d;

    memset(&d, 0, sizeof(d));
    d.op = op;
    d.index = "posts";
    d.id_len = strlen(id);
    memcpy(d.id, id, d.id_len);
    d.version = version;
    buf_init(&d.source, 0);
    if (source)
        buf_puts(&d.source, source);
    return d;
}

/* Every line of an NDJSON body is one JSON object and the body ends with "\n". */
static size_t check_ndjson(const struct buf *b)
{
    size_t lines = 0;
    const char *p = b->ptr, *end = b->ptr + b->len;

    cr_assert_gt(b->len, 0);
    cr_assert_eq(b->ptr[b->len - 1], '\n', "the last line must end with a newline");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        json_error_t je;
        json_t *j;

        cr_assert_not_null(nl);
        j = json_loadb(p, (size_t)(nl - p), JSON_DECODE_INT_AS_REAL, &je);
        cr_assert_not_null(j, "line %zu is not JSON (%s): %.*s", lines, je.text, (int)(nl - p), p);
        cr_assert(json_is_object(j));
        json_decref(j);
        lines++;
        p = nl + 1;
    }
    return lines;
}

Test(bulk, index_and_delete_lines)
{
    struct doc a = make_doc(DOC_INDEX, "user#1|42", "{\"n\":12345678901234567890123456789012345678}", 42);
    struct doc b = make_doc(DOC_DELETE, "user#1|43", NULL, (uint64_t)1795329420 << 20 | 3);
    struct buf out;

    buf_init(&out, 0);
    cr_assert_eq(bulk_append(&out, &a, NULL), 0);
    cr_assert_eq(bulk_append(&out, &b, "external"), 0);
    cr_expect_str_eq(out.ptr,
                     "{\"index\":{\"_index\":\"posts\",\"_id\":\"user#1|42\",\"version\":42,"
                     "\"version_type\":\"external_gte\"}}\n"
                     "{\"n\":12345678901234567890123456789012345678}\n"
                     "{\"delete\":{\"_index\":\"posts\",\"_id\":\"user#1|43\","
                     "\"version\":1882539341905923,\"version_type\":\"external\"}}\n");
    cr_expect_eq(check_ndjson(&out), 3);
    buf_close(&out);
    buf_close(&a.source);
    buf_close(&b.source);
}

/* verify --repair overwrites at an equal version whatever the sink's
 * version type; every other document keeps the sink's. */
Test(bulk, version_gte_asks_for_external_gte)
{
    struct doc a = make_doc(DOC_INDEX, "k", "{\"a\":1}", 9), b = make_doc(DOC_DELETE, "k", NULL, 9);
    struct buf out;

    buf_init(&out, 0);
    a.version_gte = b.version_gte = true;
    cr_assert_eq(bulk_append(&out, &a, "external"), 0);
    cr_assert_eq(bulk_append(&out, &b, "external"), 0);
    cr_assert_str_eq(out.ptr, "{\"index\":{\"_index\":\"posts\",\"_id\":\"k\",\"version\":9,"
                              "\"version_type\":\"external_gte\"}}\n{\"a\":1}\n"
                              "{\"delete\":{\"_index\":\"posts\",\"_id\":\"k\",\"version\":9,"
                              "\"version_type\":\"external_gte\"}}\n");
    buf_reset(&out);
    a.version_gte = false;
    cr_assert_eq(bulk_append(&out, &a, "external"), 0);
    cr_assert_str_eq(out.ptr, "{\"index\":{\"_index\":\"posts\",\"_id\":\"k\",\"version\":9,"
                              "\"version_type\":\"external\"}}\n{\"a\":1}\n",
                     "without it, byte for byte as before");
    buf_close(&out);
    buf_close(&a.source);
    buf_close(&b.source);
}

Test(bulk, version_zero_sends_no_version)
{
    struct doc a = make_doc(DOC_DELETE, "k", NULL, 0);
    struct buf out;

    buf_init(&out, 0);
    cr_assert_eq(bulk_append(&out, &a, NULL), 0);
    cr_expect_str_eq(out.ptr, "{\"delete\":{\"_index\":\"posts\",\"_id\":\"k\"}}\n");
    buf_close(&out);
}

Test(bulk, ids_and_index_names_are_json_escaped)
{
    struct doc a = make_doc(DOC_INDEX, "a\\|b\"c\n\x01\xc3\xa9", "{}", 1);
    struct buf out;
    json_t *j;

    a.index = "we\"ird";
    buf_init(&out, 0);
    cr_assert_eq(bulk_append(&out, &a, NULL), 0);
    cr_expect_eq(check_ndjson(&out), 2);
    j = json_loadb(out.ptr, (size_t)(strchr(out.ptr, '\n') - out.ptr), 0, NULL);
    cr_assert_not_null(j);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "index"), "_id")),
                     "a\\|b\"c\n\x01\xc3\xa9");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "index"), "_index")),
                     "we\"ird");
    json_decref(j);
    buf_close(&out);
    buf_close(&a.source);
}

Test(bulk, bad_actions_are_refused_and_leave_the_body_unchanged)
{
    struct doc nosrc = make_doc(DOC_INDEX, "k", NULL, 1);
    struct doc nl = make_doc(DOC_INDEX, "k", "{\"a\":\n1}", 1);
    struct doc big = make_doc(DOC_DELETE, "k", NULL, (uint64_t)INT64_MAX + 1);
    struct doc noid = make_doc(DOC_DELETE, "", NULL, 1);
    struct doc ok = make_doc(DOC_INDEX, "k", "{\"a\":1}", 1);
    struct buf out;

    buf_init(&out, 100);
    buf_puts(&out, "{}\n");
    cr_expect_eq(bulk_append(&out, &nosrc, NULL), -EINVAL);
    cr_expect_eq(bulk_append(&out, &nl, NULL), -EINVAL);
    cr_expect_eq(bulk_append(&out, &big, NULL), -ERANGE);
    cr_expect_eq(bulk_append(&out, &noid, NULL), -EINVAL);
    cr_expect_eq(bulk_append(&out, &ok, NULL), 0);
    cr_expect_eq(bulk_append(&out, &ok, NULL), -E2BIG, "the body is full");
    cr_expect_eq(check_ndjson(&out), 3);
    cr_expect_eq(out.len, 3 + strlen("{\"index\":{\"_index\":\"posts\",\"_id\":\"k\",\"version\":1,"
                                     "\"version_type\":\"external_gte\"}}\n{\"a\":1}\n"));
    buf_close(&out);
    buf_close(&nosrc.source);
    buf_close(&nl.source);
    buf_close(&ok.source);
}

Test(bulk, a_transformed_record_makes_valid_ndjson)
{
    struct transform_cfg cfg = { .index = "posts", .id_sep = '|', .hash_key = "pk",
                                 .range_key = "sk" };
    json_t *r = json_load_file("tests/data/records/insert_all_types.json", 0, NULL);
    struct doc d;
    struct buf out;

    cr_assert_not_null(r);
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 0);
    buf_init(&out, 0);
    cr_assert_eq(transform_record(&cfg, r, &d, NULL), TR_DOC);
    d.version = 7;
    cr_assert_eq(bulk_append(&out, &d, NULL), 0);
    cr_expect_eq(check_ndjson(&out), 2);
    cr_expect_not_null(strstr(out.ptr, "\"n38\":12345678901234567890123456789012345678,"));
    json_decref(r);
    buf_close(&d.source);
    buf_close(&out);
}

Test(bulk, filter_path_keeps_status_on_every_item)
{
    const char *fp = bulk_filter_path();

    cr_expect_not_null(strstr(fp, "items.*.status"));
    cr_expect_not_null(strstr(fp, "items.*.error"));
    cr_expect_null(strchr(fp, ' '));
}

/* ---- replies ---- */

static void parse_reply(long status, const char *body, size_t n, struct bulkresp *r)
{
    cr_assert_eq(bulkresp_parse(status, body, body ? strlen(body) : 0, n, r), 0);
}

/* The shape of the Elasticsearch bulk API reference example, unfiltered. */
static const char full_reply[] =
    "{\"took\":30,\"errors\":true,\"items\":["
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"1\",\"_version\":1,\"result\":\"created\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},\"status\":201,\"_seq_no\":0,"
    "\"_primary_term\":1}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"2\",\"_version\":2,\"result\":\"updated\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},\"status\":200,\"_seq_no\":1,"
    "\"_primary_term\":1}},"
    "{\"delete\":{\"_index\":\"posts\",\"_id\":\"3\",\"_version\":1,\"result\":\"not_found\","
    "\"_shards\":{\"total\":2,\"successful\":1,\"failed\":0},\"status\":404,\"_seq_no\":2,"
    "\"_primary_term\":1}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"4\",\"status\":409,\"error\":{"
    "\"type\":\"version_conflict_engine_exception\",\"reason\":\"[4]: version conflict, current "
    "version [9] is higher or equal to the one provided [5]\",\"index_uuid\":\"aAsFqTI0Tc2W0LCWgPNrOA\","
    "\"shard\":\"0\",\"index\":\"posts\"}}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"5\",\"status\":400,\"error\":{"
    "\"type\":\"mapper_parsing_exception\",\"reason\":\"failed to parse field [n] of type [long] in "
    "document with id '5'. Preview of field's value: 'abc'\",\"caused_by\":{\"type\":"
    "\"illegal_argument_exception\",\"reason\":\"For input string: \\\"abc\\\"\"}}}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"6\",\"status\":429,\"error\":{"
    "\"type\":\"es_rejected_execution_exception\",\"reason\":\"rejected execution of coordinating "
    "operation\"}}},"
    "{\"delete\":{\"_index\":\"posts\",\"_id\":\"7\",\"status\":503,\"error\":{"
    "\"type\":\"unavailable_shards_exception\",\"reason\":\"[posts][0] primary shard is not active\"}}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"8\",\"status\":400,\"error\":{"
    "\"type\":\"illegal_argument_exception\",\"reason\":\"Limit of total fields [1000] has been "
    "exceeded\"}}},"
    "{\"index\":{\"_index\":\"posts\",\"_id\":\"9\",\"status\":404,\"error\":{"
    "\"type\":\"index_not_found_exception\",\"reason\":\"no such index [posts]\"}}}"
    "]}";

Test(bulk, each_item_status_is_classified)
{
    static const enum br_item want[] = { BR_OK, BR_OK, BR_OK_GONE, BR_OK_STALE, BR_DLQ,
                                         BR_RETRY, BR_RETRY, BR_DLQ, BR_DLQ };
    struct bulkresp r;

    parse_reply(200, full_reply, 9, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS, "%s", r.error);
    cr_assert_eq(r.n, 9);
    for (size_t i = 0; i < 9; i++)
        cr_expect_eq(r.items[i].cls, want[i], "item %zu: %s, want %s", i,
                     bulkresp_item_name(r.items[i].cls), bulkresp_item_name(want[i]));
    cr_expect_eq(r.items[0].status, 201);
    cr_expect_eq(r.items[2].status, 404);
    cr_expect_str_eq(r.items[4].type, "mapper_parsing_exception");
    cr_expect_str_eq(r.items[4].reason, "failed to parse field [n] of type [long] in document "
                                        "with id '5'. Preview of field's value: 'abc'; caused by "
                                        "illegal_argument_exception: For input string: \"abc\"",
                     "the cause says what failed");
    cr_expect_str_eq(r.items[5].type, "es_rejected_execution_exception");
    cr_expect_str_eq(r.items[7].type, "illegal_argument_exception");
    cr_expect_null(r.items[0].type, "no error text kept for successes");
    cr_expect_eq(r.n_ok, 2);
    cr_expect_eq(r.n_gone, 1);
    cr_expect_eq(r.n_stale, 1);
    cr_expect_eq(r.n_retry, 2);
    cr_expect_eq(r.n_dlq, 3);
    bulkresp_clear(&r);
    cr_expect_null(r.items);
}

/* The engines quote the field in their reasons, and a field name may hold
 * NUL (ENGINE-RULES.md: both accept it), so a reply can hold "\u0000": it
 * is read, not taken for an unusable reply (the whole bulk sent again, for
 * ever). */
Test(bulk, a_reason_quoting_a_name_with_nul_is_read)
{
    static const char reply[] =
        "{\"errors\":true,\"items\":[{\"index\":{\"status\":400,\"error\":{\"type\":"
        "\"mapper_parsing_exception\",\"reason\":\"failed to parse field [a\\u0000b] of type "
        "[long]\"}}},{\"index\":{\"status\":201}}]}";
    struct bulkresp r;

    parse_reply(200, reply, 2, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS, "%s", r.error);
    cr_expect_eq(r.items[0].cls, BR_DLQ);
    cr_expect_eq(r.items[1].cls, BR_OK);
    bulkresp_clear(&r);
}

Test(bulk, filtered_replies_map_by_position)
{
    struct bulkresp r;

    parse_reply(200,
                "{\"errors\":true,\"items\":[{\"index\":{\"status\":201}},{\"delete\":{\"status\":404}},"
                "{\"index\":{\"status\":409,\"error\":{\"type\":\"version_conflict_engine_exception\","
                "\"reason\":\"[k]: version conflict\"}}},{\"create\":{\"status\":400,\"error\":{"
                "\"type\":\"mapper_parsing_exception\",\"reason\":\"object mapping for [a] tried to "
                "parse field [a] as object, but found a concrete value\"}}}]}",
                4, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS);
    cr_expect_eq(r.items[0].cls, BR_OK);
    cr_expect_eq(r.items[1].cls, BR_OK_GONE);
    cr_expect_eq(r.items[2].cls, BR_OK_STALE);
    cr_expect_eq(r.items[3].cls, BR_DLQ);
    cr_expect_not_null(strstr(r.items[3].reason, "object mapping"));
    bulkresp_clear(&r);

    parse_reply(200, "{\"errors\":false,\"items\":[{\"index\":{\"status\":200}}]}", 1, &r);
    cr_expect_eq(r.req, BR_REQ_ITEMS);
    cr_expect_eq(r.n_ok, 1);
    bulkresp_clear(&r);
}

Test(bulk, an_item_count_mismatch_is_a_protocol_error)
{
    struct bulkresp r;

    /* what filter_path=items.*.error does: successful items vanish */
    parse_reply(200, "{\"items\":[{\"index\":{\"error\":{\"type\":\"x\"}}}]}", 3, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    cr_expect_not_null(strstr(r.error, "1 items for 3 actions"), "%s", r.error);
    cr_expect_eq(r.n, 0);
    bulkresp_clear(&r);

    parse_reply(200, "{\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}", 2, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    bulkresp_clear(&r);
}

Test(bulk, malformed_success_replies_are_protocol_errors)
{
    struct bulkresp r;

    parse_reply(200, "{\"errors\":false", 1, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    cr_expect_not_null(strstr(r.error, "unparsable"), "%s", r.error);
    bulkresp_clear(&r);
    parse_reply(200, "{\"took\":1}", 1, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    bulkresp_clear(&r);
    parse_reply(200, NULL, 1, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    bulkresp_clear(&r);
    parse_reply(200, "{\"items\":[{\"index\":{\"status\":201}},{\"index\":{}}]}", 2, &r);
    cr_expect_eq(r.req, BR_REQ_PROTO);
    cr_expect_not_null(strstr(r.error, "item 1"), "%s", r.error);
    cr_expect_null(r.items);
    bulkresp_clear(&r);
}

Test(bulk, request_level_statuses_are_classified)
{
    static const struct {
        long status;
        const char *body;
        enum br_request want;
        const char *error;
    } cases[] = {
        { 413, "{\"Message\":\"Request size exceeded 10485760 bytes\"}", BR_REQ_SPLIT,
          "Request size exceeded" },
        { 413, "<html><body><h1>413 Request Entity Too Large</h1></body></html>", BR_REQ_SPLIT,
          "<html>" },
        { 429,
          "{\"error\":{\"root_cause\":[{\"type\":\"circuit_breaking_exception\",\"reason\":\"[parent] "
          "Data too large\"}],\"type\":\"circuit_breaking_exception\",\"reason\":\"[parent] Data too "
          "large\",\"bytes_wanted\":123,\"bytes_limit\":100,\"durability\":\"TRANSIENT\"},\"status\":429}",
          BR_REQ_RETRY, "circuit_breaking_exception: [parent] Data too large" },
        { 502, "", BR_REQ_RETRY, "" },
        { 503, "{\"message\":\"No server available to handle the request\"}", BR_REQ_RETRY,
          "No server available" },
        { 0, NULL, BR_REQ_RETRY, "" },
        { 401,
          "{\"error\":{\"root_cause\":[{\"type\":\"security_exception\",\"reason\":\"missing "
          "authentication credentials for REST request [/_bulk]\"}],\"type\":\"security_exception\","
          "\"reason\":\"missing authentication credentials for REST request [/_bulk]\"},\"status\":401}",
          BR_REQ_AUTH, "security_exception: missing authentication credentials" },
        { 403, "{\"message\":\"The security token included in the request is invalid.\"}",
          BR_REQ_AUTH, "The security token included in the request is invalid." },
        { 400,
          "{\"error\":{\"root_cause\":[{\"type\":\"illegal_argument_exception\",\"reason\":\"The bulk "
          "request must be terminated by a newline [\\\\n]\"}],\"type\":\"illegal_argument_exception\","
          "\"reason\":\"The bulk request must be terminated by a newline [\\\\n]\"},\"status\":400}",
          BR_REQ_FATAL, "illegal_argument_exception: The bulk request must be terminated" },
        { 404, "{\"error\":\"Incorrect HTTP method for uri [/_bulk]\",\"status\":405}", BR_REQ_FATAL,
          "Incorrect HTTP method" },
        { 301, "", BR_REQ_FATAL, "" },
    };
    struct bulkresp r;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        parse_reply(cases[i].status, cases[i].body, 5, &r);
        cr_expect_eq(r.req, cases[i].want, "status %ld: %s, want %s", cases[i].status,
                     bulkresp_request_name(r.req), bulkresp_request_name(cases[i].want));
        cr_expect_eq(r.status, cases[i].status);
        cr_expect_eq(r.n, 0);
        cr_expect_not_null(strstr(r.error, cases[i].error), "status %ld: error \"%s\"",
                           cases[i].status, r.error);
        bulkresp_clear(&r);
    }
}

Test(bulk, long_reasons_are_bounded)
{
    char body[4096];
    struct bulkresp r;
    int n = snprintf(body, sizeof(body),
                     "{\"items\":[{\"index\":{\"status\":400,\"error\":{\"type\":\"x\",\"reason\":\"");

    memset(body + n, 'r', 3000);
    strcpy(body + n + 3000, "\"}}}]}");
    parse_reply(200, body, 1, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS, "%s", r.error);
    cr_expect_eq(strlen(r.items[0].reason), BULKRESP_REASON_MAX);
    bulkresp_clear(&r);
    /* A short reason with long causes: bounded the same. */
    n = snprintf(body, sizeof(body), "{\"items\":[{\"index\":{\"status\":400,\"error\":{"
                                     "\"type\":\"x\",\"reason\":\"failed to parse\"");
    for (int i = 0; i < 6; i++) {
        n += snprintf(body + n, sizeof(body) - (size_t)n,
                      ",\"caused_by\":{\"type\":\"c%d\",\"reason\":\"", i);
        memset(body + n, 'a' + i, 300);
        n += 300;
        n += snprintf(body + n, sizeof(body) - (size_t)n, "\"");
    }
    for (int i = 0; i < 6; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "}");
    snprintf(body + n, sizeof(body) - (size_t)n, "}}}]}");
    parse_reply(200, body, 1, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS, "%s", r.error);
    cr_expect_eq(strlen(r.items[0].reason), BULKRESP_REASON_MAX);
    cr_expect_eq(strncmp(r.items[0].reason, "failed to parse; caused by c0: aaa", 34), 0, "%s",
                 r.items[0].reason);
    cr_expect_not_null(strstr(r.items[0].reason, "; caused by c2: ccc"));
    bulkresp_clear(&r);
}

/* What the engines answer per item while an index refuses writes.  The
 * statuses are those of the blocks in cluster.metadata.IndexMetadata:
 * index.blocks.write is FORBIDDEN/8 in Elasticsearch and OpenSearch; the
 * flood-stage read_only_allow_delete block (12) is TOO_MANY_REQUESTS with
 * the "disk usage exceeded" text in Elasticsearch 7+ and OpenSearch, and was
 * FORBIDDEN "index read-only / allow delete (api)" before (the text Amazon
 * OpenSearch Service domains low on storage show).  "no master" is
 * SERVICE_UNAVAILABLE/2: the cluster down, retried as any 5xx.  A user
 * without the index privilege gets a 403 security_exception per item
 * (Elasticsearch 8 text). */
static const char block_reply[] =
    "{\"errors\":true,\"items\":["
    "{\"index\":{\"status\":403,\"error\":{\"type\":\"cluster_block_exception\","
    "\"reason\":\"index [posts] blocked by: [FORBIDDEN/8/index write (api)];\"}}},"
    "{\"index\":{\"status\":429,\"error\":{\"type\":\"cluster_block_exception\","
    "\"reason\":\"index [posts] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded "
    "flood-stage watermark, index has read-only-allow-delete block];\"}}},"
    "{\"delete\":{\"status\":403,\"error\":{\"type\":\"cluster_block_exception\","
    "\"reason\":\"index [posts] blocked by: [FORBIDDEN/12/index read-only / allow delete "
    "(api)];\"}}},"
    "{\"index\":{\"status\":503,\"error\":{\"type\":\"cluster_block_exception\","
    "\"reason\":\"blocked by: [SERVICE_UNAVAILABLE/2/no master];\"}}},"
    "{\"index\":{\"status\":403,\"error\":{\"type\":\"security_exception\",\"reason\":\"action "
    "[indices:data/write/bulk[s]] is unauthorized for user [ddb2es] with roles [reader] on "
    "indices [posts]\"}}},"
    "{\"index\":{\"status\":401,\"error\":\"unauthorized\"}},"
    "{\"index\":{\"status\":429,\"error\":{\"type\":\"es_rejected_execution_exception\","
    "\"reason\":\"rejected execution\"}}},"
    "{\"index\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\","
    "\"reason\":\"failed to parse\"}}}"
    "]}";

Test(bulk, write_blocks_and_refusals_are_blocked_not_dead_lettered)
{
    static const enum br_item want[] = { BR_BLOCKED, BR_BLOCKED, BR_BLOCKED, BR_RETRY,
                                         BR_BLOCKED, BR_BLOCKED, BR_RETRY,   BR_DLQ };
    struct bulkresp r;

    parse_reply(200, block_reply, 8, &r);
    cr_assert_eq(r.req, BR_REQ_ITEMS, "%s", r.error);
    for (size_t i = 0; i < 8; i++)
        cr_expect_eq(r.items[i].cls, want[i], "item %zu: %s, want %s", i,
                     bulkresp_item_name(r.items[i].cls), bulkresp_item_name(want[i]));
    cr_expect_eq(r.n_blocked, 5);
    cr_expect_eq(r.n_retry, 2);
    cr_expect_eq(r.n_dlq, 1);
    cr_expect_str_eq(r.items[0].type, "cluster_block_exception");
    cr_expect_str_eq(r.items[0].reason, "index [posts] blocked by: [FORBIDDEN/8/index write (api)];");
    cr_expect_str_eq(r.items[5].reason, "unauthorized");
    bulkresp_clear(&r);

    /* A cluster-wide block refuses the whole request (the bulk action checks
     * global blocks first); a credentials 403 is not a block. */
    parse_reply(403,
                "{\"error\":{\"root_cause\":[{\"type\":\"cluster_block_exception\",\"reason\":"
                "\"blocked by: [FORBIDDEN/6/cluster read-only (api)];\"}],\"type\":"
                "\"cluster_block_exception\",\"reason\":\"blocked by: [FORBIDDEN/6/cluster "
                "read-only (api)];\"},\"status\":403}",
                3, &r);
    cr_expect_eq(r.req, BR_REQ_AUTH);
    cr_expect(r.blocked);
    cr_expect_str_eq(r.error, "cluster_block_exception: blocked by: [FORBIDDEN/6/cluster "
                              "read-only (api)];");
    bulkresp_clear(&r);
    parse_reply(403, "{\"message\":\"The security token included in the request is invalid.\"}",
                3, &r);
    cr_expect_not(r.blocked);
    bulkresp_clear(&r);
}

/* ---- the common reply read in one pass, against the tree ---- */

static void same_reading(long status, const char *body, size_t len, size_t n)
{
    struct bulkresp a, b;

    cr_assert_eq(bulkresp_parse(status, body, len, n, &a), 0);
    cr_assert_eq(bulkresp_parse_tree(status, body, len, n, &b), 0);
    cr_assert_eq(a.req, b.req, "%.*s", (int)len, body);
    cr_assert_eq(a.status, b.status);
    cr_assert_eq(a.n, b.n, "%.*s", (int)len, body);
    cr_assert(a.n_ok == b.n_ok && a.n_gone == b.n_gone && a.n_stale == b.n_stale &&
                  a.n_retry == b.n_retry && a.n_blocked == b.n_blocked && a.n_dlq == b.n_dlq,
              "%.*s", (int)len, body);
    cr_assert_str_eq(a.error, b.error);
    cr_assert_eq(a.blocked, b.blocked);
    for (size_t i = 0; i < a.n; i++) {
        cr_assert_eq(a.items[i].cls, b.items[i].cls, "item %zu of %.*s", i, (int)len, body);
        cr_assert_eq(a.items[i].status, b.items[i].status);
        cr_assert_str_eq(a.items[i].type ? a.items[i].type : "-",
                         b.items[i].type ? b.items[i].type : "-");
        cr_assert_str_eq(a.items[i].reason ? a.items[i].reason : "-",
                         b.items[i].reason ? b.items[i].reason : "-");
    }
    bulkresp_clear(&a);
    bulkresp_clear(&b);
}

/* Replies of every shape the engines write (filtered or not, successes,
 * deletes of absent documents, conflicts, rejections, errors), then with a
 * byte replaced, removed or doubled: the one-pass reading and the tree
 * agree on every one. */
Test(bulk, the_common_reply_read_in_one_pass_as_the_tree_reads_it)
{
    static const char *const items[] = {
        "{\"index\":{\"status\":201}}", "{\"index\":{\"status\":200}}",
        "{\"delete\":{\"status\":200}}", "{\"delete\":{\"status\":404}}",
        "{\"create\":{\"status\":201}}", "{ \"update\" : { \"status\" : 200 } }",
        "{\"index\":{\"status\":404}}",
        "{\"index\":{\"status\":409,\"error\":{\"type\":\"version_conflict_engine_exception\","
        "\"reason\":\"[1]: version conflict\"}}}",
        "{\"index\":{\"status\":429,\"error\":{\"type\":\"es_rejected_execution_exception\","
        "\"reason\":\"rejected\"}}}",
        "{\"index\":{\"status\":400,\"error\":{\"type\":\"mapper_parsing_exception\","
        "\"reason\":\"failed\",\"caused_by\":{\"type\":\"x\",\"reason\":\"y\"}}}}",
        "{\"index\":{\"_index\":\"posts\",\"_id\":\"1\",\"_version\":1,\"result\":\"created\","
        "\"status\":201}}",
        "{\"index\":{\"status\":201.0}}", "{\"index\":{\"status\":\"201\"}}",
        "{\"de\\u006cete\":{\"status\":404}}", "{\"index\":{\"status\":201,\"status\":500}}",
    };
    static const char bytes[] = "\"\\{}[],: 0149-.eE\x00\x80";
    uint64_t x = 12345;
    char body[8192];

    for (int round = 0; round < test_rounds(20000); round++) {
        size_t n, len = 0, k;
        int common = round % 3 != 0; /* mostly the common shape */

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = x % 6;
        len += (size_t)snprintf(body + len, sizeof(body) - len, "{%s\"errors\":%s,\"items\":[",
                                x % 4 == 0 ? "\"took\":3," : "", x % 5 == 0 ? "true" : "false");
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            k = common ? x % 6 : x % (sizeof(items) / sizeof(*items));
            len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%s", i ? "," : "",
                                    items[k]);
        }
        len += (size_t)snprintf(body + len, sizeof(body) - len, "]}");
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if (round % 2) { /* broken */
            size_t at = x % len;

            if (x % 3 == 0)
                body[at] = bytes[(x >> 8) % (sizeof(bytes) - 1)];
            else if (x % 3 == 1)
                memmove(body + at, body + at + 1, len-- - at);
            else
                memmove(body + at + 1, body + at, len++ - at);
        }
        same_reading(200, body, len, x % 7 == 0 ? n + 1 : n);
    }
    same_reading(200, "", 0, 0);
    same_reading(200, NULL, 0, 0);
    same_reading(200, "{\"items\":[]}", 11, 0);
    same_reading(200, "{\"items\":[]} x", 13, 0);
    same_reading(500, "{\"items\":[{\"index\":{\"status\":201}}]}", 35, 1);
}
