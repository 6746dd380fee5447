/* searchd: the search double's own tests, run against the real program.
 * Each test starts its own instance (about a millisecond) with the options
 * it needs and checks what a bulk client would see. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "base/buf.h"
#include "aws/sigv4.h"
#include "tests/support/searchd_ctl.h"

TestSuite(searchd, .timeout = 30);

#define NDJSON_HDR "Content-Type: application/x-ndjson"

static struct searchd *sd;

static void stop(void)
{
    cr_assert_eq(searchd_stop(sd), 0, "searchd did not stop cleanly");
    sd = NULL;
}

/* items[i].<op> of a bulk reply */
static json_t *item(json_t *resp, size_t i)
{
    json_t *it = json_array_get(json_object_get(resp, "items"), i);

    cr_assert(json_is_object(it) && json_object_size(it) == 1, "no item %zu", i);
    return json_object_iter_value(json_object_iter(it));
}

static long item_status(json_t *resp, size_t i)
{
    return (long)json_integer_value(json_object_get(item(resp, i), "status"));
}

static const char *item_str(json_t *resp, size_t i, const char *key)
{
    return json_string_value(json_object_get(item(resp, i), key));
}

static const char *item_err(json_t *resp, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_object_get(item(resp, i), "error"), key));
}

static size_t nitems(json_t *resp)
{
    return json_array_size(json_object_get(resp, "items"));
}

static json_t *bulk(const char *ndjson, long want_status)
{
    long status = 0;
    json_t *r = searchd_bulk(sd, "/_bulk", ndjson, &status);

    cr_assert_eq(status, want_status, "bulk answered %ld", status);
    cr_assert_not_null(r, "bulk reply is not JSON");
    return r;
}

/* The whole-request error type of a reply body. */
static const char *error_type(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "type"));
}

static const char *error_reason(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "reason"));
}

static json_t *dump_doc(json_t *dump, const char *index, const char *id)
{
    return json_object_get(json_object_get(dump, index), id);
}

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- versions ---------------------------------------------------------- */

Test(searchd, external_versions_apply_only_when_newer)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external\"}}\n"
                     "{\"n\":1}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external\"}}\n"
                     "{\"n\":2}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":4,\"version_type\":\"external\"}}\n"
                     "{\"n\":3}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":7,\"version_type\":\"external_gt\"}}\n"
                     "{\"n\":4}\n",
                     200);

    cr_assert_eq(nitems(r), 4);
    cr_assert(json_is_true(json_object_get(r, "errors")));
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_str_eq(item_str(r, 0, "result"), "created");
    cr_assert_eq(json_integer_value(json_object_get(item(r, 0), "_version")), 5);
    cr_assert_eq(item_status(r, 1), 409, "an equal version is a conflict with external");
    cr_assert_str_eq(item_err(r, 1, "type"), "version_conflict_engine_exception");
    cr_assert_str_eq(item_err(r, 1, "reason"),
                     "[a]: version conflict, current version [5] is higher or equal to the one "
                     "provided [5]");
    cr_assert_eq(item_status(r, 2), 409);
    cr_assert_eq(item_status(r, 3), 200);
    cr_assert_str_eq(item_str(r, 3, "result"), "updated");
    json_decref(r);

    json_t *d = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(dump_doc(d, "t", "a"), "version")), 7);
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(dump_doc(d, "t", "a"), "source"), "n")), 4);
    json_decref(d);
    stop();
}

Test(searchd, external_gte_accepts_equal_version)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external_gte\"}}\n{}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external_gte\"}}\n{}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":4,\"version_type\":\"external_gte\"}}\n{}\n",
                     200);

    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 200);
    cr_assert_eq(item_status(r, 2), 409);
    cr_assert_str_eq(item_err(r, 2, "reason"),
                     "[a]: version conflict, current version [5] is higher than the one provided "
                     "[4]");
    json_decref(r);
    stop();
}

Test(searchd, internal_versions_count_up)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\"}}\n{}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\"}}\n{}\n"
                     "{\"index\":{\"_index\":\"t\"}}\n{}\n",
                     200);

    cr_assert(json_is_false(json_object_get(r, "errors")));
    cr_assert_eq(json_integer_value(json_object_get(item(r, 1), "_version")), 2);
    cr_assert_eq(strlen(item_str(r, 2, "_id")), 20, "an id is generated when none is given");
    json_decref(r);
    stop();
}

Test(searchd, delete_of_missing_doc_is_404_and_keeps_a_tombstone)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"delete\":{\"_index\":\"t\",\"_id\":\"gone\",\"version\":300,\"version_type\":\"external\"}}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"gone\",\"version\":200,\"version_type\":\"external\"}}\n{}\n",
                     200);

    cr_assert_eq(item_status(r, 0), 404);
    cr_assert_str_eq(item_str(r, 0, "result"), "not_found");
    cr_assert_eq(json_integer_value(json_object_get(item(r, 0), "_version")), 300);
    cr_assert_null(json_object_get(item(r, 0), "error"), "a missing delete is not an error");
    cr_assert_eq(item_status(r, 1), 409, "the tombstone's version still counts");
    json_decref(r);

    json_t *d = searchd_dump(sd);
    cr_assert(json_is_true(json_object_get(dump_doc(d, "t", "gone"), "deleted")));
    cr_assert_eq(json_integer_value(json_object_get(dump_doc(d, "t", "gone"), "version")), 300);
    json_decref(d);
    stop();
}

Test(searchd, index_then_delete_in_one_bulk_ends_deleted)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"x\",\"version\":1,\"version_type\":\"external\"}}\n{}\n"
                     "{\"delete\":{\"_index\":\"t\",\"_id\":\"x\",\"version\":2,\"version_type\":\"external\"}}\n",
                     200);

    cr_assert_eq(item_status(r, 1), 200);
    cr_assert_str_eq(item_str(r, 1, "result"), "deleted");
    json_decref(r);

    long st;
    json_t *g = searchd_json(sd, "GET", "/t/_doc/x", NULL, &st);
    cr_assert_eq(st, 404);
    cr_assert(json_is_false(json_object_get(g, "found")));
    json_decref(g);
    stop();
}

Test(searchd, tombstone_expires_after_gc_deletes)
{
    sd = searchd_start("--gc-deletes", "0.3", NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"z\",\"version\":100,\"version_type\":\"external\"}}\n{\"v\":100}\n"
                     "{\"delete\":{\"_index\":\"t\",\"_id\":\"z\",\"version\":300,\"version_type\":\"external\"}}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"z\",\"version\":200,\"version_type\":\"external\"}}\n{\"v\":200}\n",
                     200);
    cr_assert_eq(item_status(r, 2), 409, "within gc_deletes the delete wins");
    json_decref(r);

    pause_ms(400); /* the window itself is what is tested */
    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"z\",\"version\":200,\"version_type\":\"external\"}}\n{\"v\":200}\n",
             200);
    cr_assert_eq(item_status(r, 0), 201, "after gc_deletes the old version resurrects the doc");
    json_decref(r);
    json_t *d = searchd_dump(sd);
    cr_assert(json_is_false(json_object_get(dump_doc(d, "t", "z"), "deleted")));
    json_decref(d);
    stop();
}

Test(searchd, create_on_existing_id_conflicts)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"create\":{\"_index\":\"t\",\"_id\":\"c\"}}\n{}\n"
                     "{\"create\":{\"_index\":\"t\",\"_id\":\"c\"}}\n{}\n",
                     200);

    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 409);
    cr_assert_str_eq(item_err(r, 1, "reason"),
                     "[c]: version conflict, document already exists (current version [1])");
    json_decref(r);
    stop();
}

Test(searchd, update_with_external_version_is_rejected)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"update\":{\"_index\":\"t\",\"_id\":\"u\",\"version\":3,\"version_type\":\"external\"}}\n"
                     "{\"doc\":{\"a\":1}}\n",
                     400);

    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    cr_assert_not_null(strstr(error_reason(r),
                              "version type [EXTERNAL] is not supported by the update API"));
    json_decref(r);

    /* internal updates merge */
    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"u\"}}\n{\"a\":1,\"b\":1}\n"
             "{\"update\":{\"_index\":\"t\",\"_id\":\"u\"}}\n{\"doc\":{\"b\":2}}\n"
             "{\"update\":{\"_index\":\"t\",\"_id\":\"nope\"}}\n{\"doc\":{\"b\":2}}\n",
             200);
    cr_assert_eq(item_status(r, 1), 200);
    cr_assert_str_eq(item_str(r, 1, "result"), "updated");
    cr_assert_eq(item_status(r, 2), 404);
    cr_assert_str_eq(item_err(r, 2, "type"), "document_missing_exception");
    json_decref(r);
    json_t *d = searchd_dump(sd);
    json_t *src = json_object_get(dump_doc(d, "t", "u"), "source");
    cr_assert_eq(json_integer_value(json_object_get(src, "a")), 1);
    cr_assert_eq(json_integer_value(json_object_get(src, "b")), 2);
    json_decref(d);
    stop();
}

Test(searchd, versions_outside_long_range_are_400)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":9223372036854775808,\"version_type\":\"external\"}}\n{}\n",
                     400);
    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    json_decref(r);

    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":-1,\"version_type\":\"external\"}}\n{}\n",
             400);
    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    cr_assert_not_null(strstr(error_reason(r), "illegal version value [-1]"));
    json_decref(r);

    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":9223372036854775807,\"version_type\":\"external\"}}\n{}\n",
             200);
    cr_assert_eq(item_status(r, 0), 201, "2^63-1 is the largest valid version");
    json_decref(r);
    stop();
}

/* ---- documents that fail ------------------------------------------------ */

Test(searchd, poison_field_fails_only_its_item)
{
    sd = searchd_start("--poison-field", "bad", NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"ok\":1}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"2\"}}\n{\"x\":{\"bad\":1},\"bad\":\"zzz\"}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"3\"}}\n{\"x\":{\"bad\":1}}\n",
                     200);

    cr_assert(json_is_true(json_object_get(r, "errors")));
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 400);
    cr_assert_str_eq(item_err(r, 1, "type"), "illegal_argument_exception",
                     "a permanent refusal, not a mapping conflict");
    cr_assert_str_eq(item_err(r, 1, "reason"),
                     "Document contains at least one immense term in field=\"bad\" (whose UTF8 "
                     "encoding is longer than the max length 32766), all of which were skipped.  "
                     "Please correct the analyzer to not produce such terms.  The prefix of the "
                     "first immense term is: '[122, 122, 122]...', original message: bytes can "
                     "be at most 32766 in length; got 32767");
    cr_assert_eq(item_status(r, 2), 201, "only a top-level field poisons");
    json_decref(r);

    /* the field can be changed at runtime */
    cr_assert_eq(searchd_config(sd, "{\"poison_field\":\"ok\"}"), 200);
    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"ok\":1}\n", 200);
    cr_assert_eq(item_status(r, 0), 400);
    json_decref(r);
    stop();
}

Test(searchd, malformed_source_fails_its_item)
{
    sd = searchd_start(NULL);
    /* "big" is a float field first: a long one would refuse 30 digits */
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"0\"}}\n{\"big\":0.5}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"a\":[1,]}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"2\"}}\n{\"big\":123456789012345678901234567890}\n",
                     200);

    cr_assert_eq(item_status(r, 1), 400);
    cr_assert_str_eq(item_err(r, 1, "type"), "mapper_parsing_exception");
    cr_assert_eq(item_status(r, 2), 201, "numbers of any size are kept");
    json_decref(r);
    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"3\"}}\n{\"a\":01}\n"
             "{\"index\":{\"_index\":\"t\",\"_id\":\"4\"}}\n[1]\n"
             "{\"index\":{\"_index\":\"t\",\"_id\":\"5\"}}\n{\"a\":1} x\n", 200);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(item_status(r, i), 400, "item %zu", i);
    json_decref(r);

    struct searchd_resp g;
    cr_assert_eq(searchd_request(sd, "GET", "/t/_doc/2", NULL, NULL, 0, &g), 0);
    cr_assert_not_null(strstr(g.body, "\"_source\":{\"big\":123456789012345678901234567890}"),
                       "source is returned byte for byte: %s", g.body);
    searchd_resp_close(&g);
    stop();
}

/* ---- documents the engines refuse ---------------------------------------
 * The rules and where each comes from: tests/tools/ENGINE-RULES.md.  The
 * engines' sources cited are opensearch-project/OpenSearch (2.x) and
 * elastic/elasticsearch (8.x), server/src/main/java/org/.../index/mapper/
 * unless another path is given. */

/* Indexes one document (one line) into index t under id; the bulk reply. */
static json_t *index_doc(const char *id, const char *doc)
{
    char *body = NULL;
    json_t *r;

    cr_assert_geq(asprintf(&body, "{\"index\":{\"_index\":\"t\",\"_id\":\"%s\"}}\n%s\n", id, doc),
                  0);
    r = bulk(body, 200);
    free(body);
    return r;
}

/* The item status of doc indexed alone. */
static long doc_status(const char *doc)
{
    json_t *r = index_doc("x", doc);
    long st = item_status(r, 0);

    json_decref(r);
    return st;
}

static const char *item_cause(json_t *resp, size_t i, const char *key)
{
    json_t *e = json_object_get(item(resp, i), "error");

    return json_string_value(json_object_get(json_object_get(e, "caused_by"), key));
}

/* Asserts that doc is refused with this error type and reason (and, when
 * not NULL, this cause). */
static void refused(const char *doc, const char *type, const char *reason, const char *ctype,
                    const char *creason)
{
    json_t *r = index_doc("1", doc);

    cr_assert_eq(item_status(r, 0), 400, "%s was taken", doc);
    cr_assert_str_eq(item_err(r, 0, "type"), type, "%s", doc);
    if (reason)
        cr_assert_str_eq(item_err(r, 0, "reason"), reason, "%s", doc);
    if (ctype)
        cr_assert_str_eq(item_cause(r, 0, "type"), ctype, "%s", doc);
    if (creason)
        cr_assert_str_eq(item_cause(r, 0, "reason"), creason, "%s", doc);
    json_decref(r);
}

/* The type of a field in GET /t/_mapping ("object" for one with
 * properties), or NULL when it is not mapped; caller frees. */
static char *mapped(const char *path)
{
    long st;
    json_t *m = searchd_json(sd, "GET", "/t/_mapping", NULL, &st), *node;
    char *copy = strdup(path), *save = NULL, *out = NULL;

    cr_assert_eq(st, 200);
    node = json_object_get(json_object_get(m, "t"), "mappings");
    for (char *seg = strtok_r(copy, ".", &save); seg && node; seg = strtok_r(NULL, ".", &save))
        node = json_object_get(json_object_get(node, "properties"), seg);
    if (json_object_get(node, "type"))
        out = strdup(json_string_value(json_object_get(node, "type")));
    else if (node)
        out = strdup("object");
    free(copy);
    json_decref(m);
    return out;
}

static void assert_mapped(const char *path, const char *type)
{
    char *t = mapped(path);

    if (type)
        cr_assert(t && strcmp(t, type) == 0, "%s is mapped as %s, not %s", path,
                  t ? t : "nothing", type);
    else
        cr_assert_null(t, "%s is mapped (%s)", path, t);
    free(t);
}

/* DocumentParser#getMapper looks metadata mappers up by the field's full
 * path, so only top-level names are metadata fields; MetadataFieldMapper
 * #parseCreateField refuses every value and FieldMapper#parse wraps it;
 * DocCountFieldMapper takes a positive integer.  The names: IndicesModule
 * #initBuiltInMetadataMappers (OpenSearch 2.x) plus mapper-extras (_feature)
 * and mapper-size (_size, on Amazon OpenSearch Service). */
Test(searchd, metadata_fields_are_refused_at_the_top_level)
{
    static const char *const names[] = { "_id", "_index", "_routing", "_source", "_ignored",
                                         "_version", "_seq_no", "_nested_path", "_field_names",
                                         "_data_stream_timestamp", "_feature", "_size" };
    char doc[128], reason[256];

    sd = searchd_start(NULL);
    refused("{\"a\":1,\"_id\":\"x\"}", "mapper_parsing_exception",
            "failed to parse field [_id] of type [_id] in document with id '1'. Preview of "
            "field's value: 'x'", "mapper_parsing_exception",
            "Field [_id] is a metadata field and cannot be added inside a document. Use the "
            "index API request parameters.");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"%s\":{\"k\":1}}", names[i]);
        snprintf(reason, sizeof(reason), "Field [%s] is a metadata field and cannot be added "
                 "inside a document. Use the index API request parameters.", names[i]);
        refused(doc, "mapper_parsing_exception", NULL, "mapper_parsing_exception", reason);
    }
    refused("{\"_size\":1}", "mapper_parsing_exception",
            "failed to parse field [_size] of type [integer] in document with id '1'. Preview "
            "of field's value: '1'", NULL, NULL);
    refused("{\"_routing\":null}", "mapper_parsing_exception",
            "failed to parse field [_routing] of type [_routing] in document with id '1'. "
            "Preview of field's value: 'null'", NULL, NULL);
    refused("{\"_id.x\":1}", "mapper_parsing_exception",
            "Could not dynamically add mapping for field [_id.x]. Existing mapping for [_id] "
            "must be of type object but found [_id].", NULL, NULL);
    refused("{\"_doc_count\":0}", "mapper_parsing_exception",
            "failed to parse field [_doc_count] of type [_doc_count] in document with id '1'. "
            "Preview of field's value: '0'", "illegal_argument_exception",
            "Field [_doc_count] must be a positive integer.");
    refused("{\"_doc_count\":\"3\"}", "mapper_parsing_exception", NULL, "parsing_exception",
            NULL);
    cr_assert_eq(doc_status("{\"_doc_count\":3}"), 201, "_doc_count takes a positive integer");
    cr_assert_eq(doc_status("{\"_source\":[]}"), 200, "an empty array gives the mapper nothing");
    cr_assert_eq(doc_status("{\"a\":{\"_id\":1,\"_source\":\"s\"}}"), 200,
                 "below the top level these are plain names");
    cr_assert_eq(doc_status("{\"_tsid\":\"x\",\"_tier\":\"y\"}"), 200,
                 "Elasticsearch's metadata fields are plain names in OpenSearch");
    stop();
}

/* The same in Elasticsearch 8: DocumentParsingException carries "[line:col] "
 * (DocumentParsingException#message); the root context finds metadata
 * mappers (DocumentParser.RootDocumentParserContext#getMapper), the dotted
 * name becoming an object for it (DotExpandingXContentParser); the names are
 * IndicesModule#initBuiltInMetadataMappers 8.x plus _feature, _tier and
 * _inference_fields; DocCountFieldMapper prints the value. */
Test(searchd, metadata_fields_es8)
{
    sd = searchd_start("--flavor", "es8", NULL);
    refused("{\"_id\":\"x\"}", "document_parsing_exception",
            "[1:8] failed to parse field [_id] of type [_id] in document with id '1'. Preview of "
            "field's value: 'x'", "document_parsing_exception",
            "[1:8] Field [_id] is a metadata field and cannot be added inside a document. Use "
            "the index API request parameters.");
    refused("{\"_tsid\":1}", "document_parsing_exception", NULL, NULL, NULL);
    refused("{\"_tier\":1}", "document_parsing_exception", NULL, NULL, NULL);
    refused("{\"_id.x\":1}", "document_parsing_exception",
            "[1:10] failed to parse field [_id] of type [_id] in document with id '1'. Preview "
            "of field's value: '{x=1}'", NULL, NULL);
    refused("{\"_doc_count\":-2}", "document_parsing_exception", NULL,
            "illegal_argument_exception",
            "Field [_doc_count] must be a positive integer. Value [-2] is not allowed.");
    refused("{\"_doc_count\":[1,2]}", "document_parsing_exception", NULL,
            "illegal_argument_exception", "Arrays are not allowed for field [_doc_count].");
    cr_assert_eq(doc_status("{\"_size\":1}"), 201, "no mapper-size plugin by default");
    stop();
}

/* OpenSearch DocumentParser#splitAndValidatePath, and Elasticsearch
 * DotExpandingXContentParser.WrappingParser#expandDots: an empty name is
 * refused in every object, arrays of objects too. */
Test(searchd, empty_field_names_are_refused_at_any_depth)
{
    sd = searchd_start(NULL);
    refused("{\"\":1}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception", "field name cannot be an empty string");
    refused("{\"a\":{\"b\":{\"\":1}}}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception", "field name cannot be an empty string");
    refused("{\"a\":[{\"x\":1},{\"\":{}}]}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception", "field name cannot be an empty string");
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    refused("{\"a\":{\"\":1}}", "document_parsing_exception",
            "[1:7] failed to parse: field name cannot be an empty string",
            "illegal_argument_exception", "field name cannot be an empty string");
    stop();
}

/* Parts of a dotted name: Java's String#split drops trailing empty strings
 * ("a." is a), an empty part elsewhere or a blank one is refused, a name of
 * dots only too.  OpenSearch DocumentParser#splitAndValidatePath; Elasticsearch
 * DotExpandingXContentParser (whose two texts are the other way round). */
Test(searchd, dotted_names_with_empty_or_blank_parts)
{
    sd = searchd_start(NULL);
    refused("{\".a\":1}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception",
            "object field starting or ending with a [.] makes object resolution ambiguous: [.a]");
    refused("{\"x\":{\"a..b\":1}}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception",
            "object field starting or ending with a [.] makes object resolution ambiguous: "
            "[a..b]");
    refused("{\"a. .b\":1}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception", "object field cannot contain only whitespace: "
            "['a. .b']");
    refused("{\"...\":1}", "mapper_parsing_exception", "failed to parse",
            "illegal_argument_exception", "field name cannot contain only the character [.]");
    cr_assert_eq(doc_status("{\"k.\":1,\"m.n..\":\"s\"}"), 201, "trailing dots are dropped");
    assert_mapped("k", "long");
    assert_mapped("m.n", "text");
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    refused("{\"a..b\":1}", "document_parsing_exception",
            "[1:2] failed to parse: field name cannot contain only whitespace: ['a..b']", NULL,
            NULL);
    refused("{\"a.\\t.b\":1}", "document_parsing_exception", NULL, NULL,
            "field name starting or ending with a [.] makes object resolution ambiguous: "
            "[a.\t.b]");
    refused("{\".\":1}", "document_parsing_exception", NULL, NULL,
            "field name cannot contain only dots");
    cr_assert_eq(doc_status("{\"k.\":1}"), 201, "\"k.\" is k");
    stop();
}

/* A name of whitespace only: Elasticsearch 8 refuses it
 * (DocumentParser#innerParseObject, String#isBlank: Character#isWhitespace,
 * which leaves out the no-break spaces U+00A0, U+2007, U+202F); OpenSearch 2
 * checks only dotted names (DocumentParser#splitAndValidatePath). */
Test(searchd, whitespace_only_names)
{
    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\" \":1}"), 201, "OpenSearch takes a blank name without dots");
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    refused("{\"a\":{\" \":1}}", "document_parsing_exception",
            "[1:7] Field name cannot contain only whitespace: [a. ]", NULL, NULL);
    refused("{\"\\t\\u2003\":1}", "document_parsing_exception", NULL, NULL, NULL);
    refused("{\"\\u3000\":1}", "document_parsing_exception", NULL, NULL, NULL);
    cr_assert_eq(doc_status("{\"\\u00a0\":1}"), 201, "U+00A0 is not whitespace for Java");
    cr_assert_eq(doc_status("{\"\\u0000\":1}"), 200, "nor is U+0000");
    stop();
}

/* DocWriteRequest#validateDocIdLength (IndexRequest#validate): more than 512
 * bytes of UTF-8, the whole id named; BulkRequest#validate makes it a failure
 * of the whole request. */
Test(searchd, ids_over_512_bytes_fail_the_whole_request)
{
    char id[1100], *body, want[1300];
    json_t *r;
    long st;

    sd = searchd_start(NULL);
    memset(id, 'i', 512);
    id[512] = '\0';
    r = index_doc(id, "{}");
    cr_assert_eq(item_status(r, 0), 201, "512 bytes are allowed");
    json_decref(r);
    strcat(id, "j");
    cr_assert_geq(asprintf(&body, "{\"index\":{\"_index\":\"t\",\"_id\":\"%s\"}}\n{}\n"
                                  "{\"index\":{\"_index\":\"t\",\"_id\":\"ok\"}}\n{}\n", id), 0);
    r = bulk(body, 400);
    free(body);
    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    snprintf(want, sizeof(want), "Validation Failed: 1: id [%s] is too long, must be no longer "
             "than 512 bytes but was: 513;", id);
    cr_assert_str_eq(error_reason(r), want);
    json_decref(r);

    id[0] = '\0';
    for (int i = 0; i < 257; i++)
        strcat(id, "\xC3\xA9"); /* 257 characters, 514 bytes */
    cr_assert_geq(asprintf(&body, "{\"index\":{\"_index\":\"t\",\"_id\":\"%s\"}}\n{}\n", id), 0);
    r = bulk(body, 400);
    free(body);
    cr_assert_not_null(strstr(error_reason(r), "but was: 514;"), "%s", error_reason(r));
    json_decref(r);

    char path[700] = "/t/_doc/";
    memset(path + 8, 'i', 600);
    path[608] = '\0';
    r = searchd_json(sd, "PUT", path, "{}", &st);
    cr_assert_eq(st, 400, "the single-document API validates the same way");
    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    json_decref(r);
    json_t *d = searchd_dump(sd);
    cr_assert_null(dump_doc(d, "t", "ok"), "nothing of the failed bulk was indexed");
    json_decref(d);
    stop();
}

/* A long field (dynamic for an integer: DocumentParser#createBuilderFromDynamicValue)
 * takes what NumberFieldMapper LONG#parse and AbstractXContentParser#longValue
 * coerce: numbers (a fraction is cut; Jackson's getLongValue refuses values
 * beyond the long range), numeric strings (Long.parseLong, else a BigDecimal),
 * "" and null (no value); booleans and objects are refused. */
Test(searchd, long_fields_coerce_numbers_and_numeric_strings)
{
    static const char *const ok[] = { "2", "-7", "1.5", "1e2", "\"12\"", "\"1.7\"", "\"-3e2\"",
                                      "\"\"", "null", "[1,\"2\",[3]]", "[]", "9.2e18" };
    char doc[64];

    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"n\":1}"), 201);
    assert_mapped("n", "long");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"n\":%s}", ok[i]);
        cr_assert_eq(doc_status(doc), 200, "%s is coerced into a long", doc);
    }
    refused("{\"n\":\"abc\"}", "mapper_parsing_exception",
            "failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: 'abc'", "illegal_argument_exception", "For input string: \"abc\"");
    refused("{\"n\":\"9223372036854775808\"}", "mapper_parsing_exception", NULL,
            "illegal_argument_exception",
            "Value [9223372036854775808] is out of range for a long");
    refused("{\"n\":true}", "mapper_parsing_exception", NULL, NULL,
            "Current token (VALUE_TRUE) not numeric, can not use numeric value accessors");
    refused("{\"n\":1e19}", "mapper_parsing_exception", NULL, NULL,
            "Numeric value (1e19) out of range of long (-9223372036854775808 - "
            "9223372036854775807)");
    refused("{\"n\":123456789012345678901234567890}", "mapper_parsing_exception", NULL, NULL,
            NULL);
    refused("{\"n\":[1,{\"a\":1}]}", "mapper_parsing_exception",
            "failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: '{a=1}'", NULL, NULL);
    /* java.util.HashMap order in the preview: "aa" hashes to bucket 0 */
    refused("{\"n\":{\"b\":1,\"a\":[2,\"x\"],\"aa\":{\"z\":null}}}", "mapper_parsing_exception",
            "failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: '{aa={z=null}, a=[2, x], b=1}'", NULL, NULL);
    stop();
}

/* A float field (dynamic for a number with a fraction or exponent): Jackson's
 * getFloatValue or Float#parseFloat, then NumberFieldMapper FLOAT
 * #validateParsed refuses what is not finite. */
Test(searchd, float_fields_take_finite_numbers)
{
    static const char *const ok[] = { "2", "\"2.5\"", "\"1e3\"", "\" 4 \"", "\"\"",
                                      "123456789012345678901234567890", "3.4e38", "1e-60" };
    char doc[80];

    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"f\":1.5}"), 201);
    assert_mapped("f", "float");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"f\":%s}", ok[i]);
        cr_assert_eq(doc_status(doc), 200, "%s goes into a float", doc);
    }
    refused("{\"f\":1e39}", "mapper_parsing_exception",
            "failed to parse field [f] of type [float] in document with id '1'. Preview of "
            "field's value: '1.0E39'", "illegal_argument_exception",
            "[float] supports only finite values, but got [Infinity]");
    refused("{\"f\":\"-1e39\"}", "mapper_parsing_exception", NULL, NULL,
            "[float] supports only finite values, but got [-Infinity]");
    refused("{\"f\":\"abc\"}", "mapper_parsing_exception", NULL, "number_format_exception",
            "For input string: \"abc\"");
    refused("{\"f\":false}", "mapper_parsing_exception", NULL, NULL, NULL);
    refused("{\"f\":{\"x\":1}}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* A text field (dynamic for a string, with a keyword sub-field) reads any
 * scalar as text (TextFieldMapper: XContentParser#textOrNull); an object has
 * no text (JsonXContentParser#text). */
Test(searchd, text_fields_take_scalars_not_objects)
{
    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"s\":\"a\"}"), 201);
    assert_mapped("s", "text");
    cr_assert_eq(doc_status("{\"s\":5}"), 200);
    cr_assert_eq(doc_status("{\"s\":[true,1.5,\"x\",null]}"), 200);
    refused("{\"s\":{\"x\":1}}", "mapper_parsing_exception",
            "failed to parse field [s] of type [text] in document with id '1'. Preview of "
            "field's value: '{x=1}'", "illegal_state_exception",
            "Can't get text on a START_OBJECT at 1:6");
    refused("{\"s\":[{\"x\":1}]}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* A boolean field: BooleanFieldMapper reads XContentParser#booleanValue,
 * which takes the strings "true", "false" and "" (Booleans#parseBoolean's
 * default, false) and nothing else; a number is not a boolean token. */
Test(searchd, boolean_fields_take_true_false_and_their_strings)
{
    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"b\":true}"), 201);
    assert_mapped("b", "boolean");
    cr_assert_eq(doc_status("{\"b\":[\"false\",\"true\",\"\",false]}"), 200);
    refused("{\"b\":\"yes\"}", "mapper_parsing_exception",
            "failed to parse field [b] of type [boolean] in document with id '1'. Preview of "
            "field's value: 'yes'", "illegal_argument_exception",
            "Failed to parse value [yes] as only [true] or [false] are allowed.");
    refused("{\"b\":1}", "mapper_parsing_exception", NULL, NULL,
            "Current token (VALUE_NUMBER_INT) not of boolean type");
    refused("{\"b\":{\"x\":1}}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* An object field takes objects, null and empty arrays; a concrete value is
 * refused (DocumentParser#parseObjectOrNested), and a dotted name cannot go
 * below a field that holds a value (DocumentParser#getDynamicParentMapper). */
Test(searchd, object_fields_refuse_concrete_values)
{
    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"o\":{\"x\":1},\"c\":1}"), 201);
    assert_mapped("o", "object");
    cr_assert_eq(doc_status("{\"o\":null}"), 200);
    cr_assert_eq(doc_status("{\"o\":[{\"x\":2},{\"y\":\"z\"}]}"), 200);
    cr_assert_eq(doc_status("{\"o.x\":3}"), 200);
    assert_mapped("o.y", "text");
    refused("{\"o\":5}", "mapper_parsing_exception",
            "object mapping for [o] tried to parse field [o] as object, but found a concrete "
            "value", NULL, NULL);
    refused("{\"o\":[{\"x\":1},\"s\"]}", "mapper_parsing_exception", NULL, NULL, NULL);
    refused("{\"c.d\":2}", "mapper_parsing_exception",
            "Could not dynamically add mapping for field [c.d]. Existing mapping for [c] must "
            "be of type object but found [long].", NULL, NULL);
    refused("{\"c\":{\"d\":2}}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* A field new in a document gets one dynamic mapper per value; values of
 * two types make two mappers that cannot be merged when the mapping update
 * is built (DocumentParser#createDynamicUpdate, ParametrizedFieldMapper#merge):
 * the first value does not coerce the others. */
Test(searchd, a_new_field_takes_one_type_per_document)
{
    sd = searchd_start(NULL);
    refused("{\"m\":[1,\"a\"]}", "illegal_argument_exception",
            "mapper [m] cannot be changed from type [text] to [long]", NULL, NULL);
    refused("{\"p\":[{\"x\":1.5},{\"x\":2}]}", "illegal_argument_exception", NULL, NULL, NULL);
    refused("{\"q\":[{\"x\":1},7]}", "illegal_argument_exception", NULL, NULL, NULL);
    assert_mapped("m", NULL);
    cr_assert_eq(doc_status("{\"m\":[1,2,3],\"p\":[{\"x\":1.5},{\"x\":2.5}]}"), 201);
    cr_assert_eq(doc_status("{\"m\":[1,\"2\"]}"), 200, "a mapped field coerces");
    stop();
}

/* First values a dynamic mapping cannot hold: an integer beyond the long
 * range maps a long (BIG_INTEGER is an integer type) that then refuses it,
 * 1E+125 maps a float that is not finite; nothing is mapped then. */
Test(searchd, first_values_the_dynamic_mapping_cannot_hold)
{
    sd = searchd_start(NULL);
    refused("{\"n\":12345678901234567890123456789012345678}", "mapper_parsing_exception",
            "failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: '12345678901234567890123456789012345678'", NULL,
            "Numeric value (12345678901234567890123456789012345678) out of range of long "
            "(-9223372036854775808 - 9223372036854775807)");
    refused("{\"f\":1E+125}", "mapper_parsing_exception", NULL, NULL,
            "[float] supports only finite values, but got [Infinity]");
    assert_mapped("n", NULL);
    assert_mapped("f", NULL);
    cr_assert_eq(doc_status("{\"n\":\"12345678901234567890123456789012345678\",\"f\":1E-130}"),
                 201, "as a string it is text; 1E-130 is a float 0");
    stop();
}

/* date_detection is on by default: a string that reads as a date
 * (dynamic_date_formats strict_date_optional_time, yyyy/MM/dd ...) maps a
 * date field, which then refuses strings that are not dates. */
Test(searchd, date_detection_maps_date_fields)
{
    sd = searchd_start(NULL);
    cr_assert_eq(doc_status("{\"d\":\"2024-01-02\",\"y\":\"2024\"}"), 201);
    assert_mapped("d", "date");
    assert_mapped("y", "text"); /* a long as a string is no date */
    cr_assert_eq(doc_status("{\"d\":\"2024-02-29T04:05:06.789Z\",\"y\":\"hello\"}"), 200);
    refused("{\"d\":\"hello\"}", "mapper_parsing_exception",
            "failed to parse field [d] of type [date] in document with id '1'. Preview of "
            "field's value: 'hello'", "illegal_argument_exception", NULL);
    refused("{\"d\":\"2023-02-29\"}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* The mapping grows only with documents the engine takes, is shown by
 * GET /<index>/_mapping (and GET /<index>) and goes with the index. */
Test(searchd, the_mapping_grows_with_accepted_documents_and_goes_with_the_index)
{
    long st;

    sd = searchd_start(NULL);
    refused("{\"new\":1,\"\":2}", "mapper_parsing_exception", NULL, NULL, NULL);
    assert_mapped("new", NULL);
    cr_assert_eq(doc_status("{\"new\":\"x\",\"o\":{\"p\":{\"q\":true}}}"), 201);
    assert_mapped("new", "text");
    assert_mapped("o.p.q", "boolean");
    json_t *g = searchd_json(sd, "GET", "/t", NULL, &st);
    cr_assert_not_null(json_object_get(json_object_get(json_object_get(json_object_get(
                           g, "t"), "mappings"), "properties"), "new"));
    json_decref(g);
    json_decref(searchd_json(sd, "DELETE", "/t", NULL, &st));
    cr_assert_eq(st, 200);
    json_decref(searchd_json(sd, "GET", "/t/_mapping", NULL, &st));
    cr_assert_eq(st, 404);
    cr_assert_eq(doc_status("{\"new\":1}"), 201, "a new index has a new mapping");
    assert_mapped("new", "long");
    cr_assert_eq(searchd_reset(sd), 200);
    cr_assert_eq(doc_status("{\"new\":true}"), 201, "so has one after a reset");
    stop();
}

/* The shard parses the document (and maps its new fields) before the engine
 * checks versions (IndexShard#applyIndexOperationOnPrimary, then
 * Engine#index): a bad document is a 400 even with a stale version, and a
 * stale one still maps its fields. */
Test(searchd, documents_are_parsed_before_versions_are_checked)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external\"}}\n{\"n\":1}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":3,\"version_type\":\"external\"}}\n{\"n\":\"bad\"}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":4,\"version_type\":\"external\"}}\n{\"k\":true}\n",
                     200);
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 400, "the document fails before its version");
    cr_assert_eq(item_status(r, 2), 409);
    json_decref(r);
    assert_mapped("k", "boolean");
    stop();
}

/* The JSON of a source as Jackson reads it (UTF8StreamJsonParser, with
 * JsonParser.Feature.STRICT_DUPLICATE_DETECTION set by both engines'
 * JsonXContent): raw control characters, bad escapes, bytes that are not
 * UTF-8 by Jackson's table and repeated names are errors; any \u escape
 * (U+0000, a lone surrogate) and overlong forms are not. */
Test(searchd, sources_are_read_as_jackson_reads_them)
{
    sd = searchd_start(NULL);
    refused("{\"s\":\"\xff\"}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Invalid UTF-8 start byte 0xff");
    refused("{\"s\":\"\xc3(\"}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Invalid UTF-8 middle byte 0x28");
    refused("{\"s\":\"a\tb\"}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Illegal unquoted character ((CTRL-CHAR, code 9)): has to "
            "be escaped using backslash to be included in string value");
    refused("{\"s\x01\":1}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Illegal unquoted character ((CTRL-CHAR, code 1)): has to "
            "be escaped using backslash to be included in name");
    refused("{\"s\":\"\\x\"}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Unrecognized character escape 'x' (code 120)");
    refused("{\"s\":\"\\u12g4\"}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", NULL);
    refused("{\"a\":1,\"b\":{\"c\":1,\"c\":2}}", "mapper_parsing_exception", "failed to parse",
            "json_parse_exception", "Duplicate field 'c'");
    cr_assert_eq(doc_status("{\"a\":1,\"b\":[{\"c\":1},{\"c\":2}]}"), 201,
                 "a name may repeat in other objects");
    cr_assert_eq(doc_status("{\"v\\u0000\":\"\\u0000 \\ud800 \\udc00\\ud83d\\ude00 \xc0\x80 "
                            "\xf0\x9f\x98\x80\"}"), 200, "escapes and Jackson's UTF-8 pass");
    assert_mapped("v", NULL);
    struct searchd_resp m;
    cr_assert_eq(searchd_request(sd, "GET", "/t/_mapping", NULL, NULL, 0, &m), 0);
    cr_assert_not_null(strstr(m.body, "\"v\\u0000\":{\"type\":\"text\""),
                       "the field is v + U+0000: %s", m.body);
    searchd_resp_close(&m);
    stop();
}

/* The single-document API parses the same way. */
Test(searchd, the_document_api_follows_the_same_rules)
{
    long st;
    json_t *r;

    sd = searchd_start(NULL);
    json_decref(searchd_json(sd, "PUT", "/t/_doc/1", "{\"n\":1}", &st));
    cr_assert_eq(st, 201);
    r = searchd_json(sd, "PUT", "/t/_doc/2", "{\"n\":\"x\"}", &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_type(r), "mapper_parsing_exception");
    cr_assert_str_eq(error_reason(r), "failed to parse field [n] of type [long] in document "
                     "with id '2'. Preview of field's value: 'x'");
    json_decref(r);
    r = searchd_json(sd, "POST", "/t/_doc", "{\"_index\":\"x\"}", &st);
    cr_assert_eq(st, 400);
    json_decref(r);
    r = bulk("{\"update\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"doc\":{\"n\":\"y\"}}\n", 200);
    cr_assert_eq(item_status(r, 0), 400, "an update's result is parsed too");
    json_decref(r);
    stop();
}

/* Elasticsearch 8 errors carry the token's location, line and column (in
 * bytes), as DocumentParsingException#message prints it; the preview of an
 * object is located at its end, where FieldMapper#parse has read it. */
Test(searchd, es8_errors_carry_the_location)
{
    long st;
    json_t *r;

    sd = searchd_start("--flavor", "es8", NULL);
    json_decref(searchd_json(sd, "PUT", "/t/_doc/1", "{\"n\":1,\"o\":{}}", &st));
    cr_assert_eq(st, 201);
    r = searchd_json(sd, "PUT", "/t/_doc/2", "{\n  \"a\": \"\xc3\xa9\",\n  \"n\": \"x\"\n}",
                     &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_type(r), "document_parsing_exception");
    cr_assert_str_eq(error_reason(r), "[3:8] failed to parse field [n] of type [long] in "
                     "document with id '2'. Preview of field's value: 'x'");
    json_decref(r);
    refused("{\"n\":{\"a\":1}}", "document_parsing_exception",
            "[1:12] failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: '{a=1}'", "illegal_argument_exception",
            "Cannot parse object as number");
    refused("{\"o\":7}", "document_parsing_exception",
            "[1:6] object mapping for [o] tried to parse field [o] as object, but found a "
            "concrete value", NULL, NULL);
    refused("{\"n\":\"x\"}", "document_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* --discard keeps no sources but checks them all the same. */
Test(searchd, discard_keeps_the_checks)
{
    sd = searchd_start("--discard", NULL);
    cr_assert_eq(doc_status("{\"n\":1}"), 201);
    refused("{\"n\":\"x\"}", "mapper_parsing_exception", NULL, NULL, NULL);
    refused("{\"_id\":1}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* ---- explicit mappings and dynamic templates (PUT /<index>) --------------
 * The mapping parsers: DocumentMapperParser, RootObjectMapper.TypeParser,
 * ObjectMapper.TypeParser#parseProperties, ParametrizedFieldMapper.Builder
 * #parse (es8 FieldMapper.Builder#parse), TypeParsers#parseMultiField,
 * DynamicTemplate#parse; errors wrapped by MapperService ("Failed to parse
 * mapping [_doc]: ..." in OpenSearch 2, "Failed to parse mapping: ..." in
 * Elasticsearch 8). */

/* PUT /t with body; the reply (the status must be want). */
static json_t *put_index(const char *body, long want)
{
    long st = 0;
    json_t *r = searchd_json(sd, "PUT", "/t", body, &st);

    cr_assert_eq(st, want, "PUT /t answered %ld to %s", st, body);
    cr_assert_not_null(r);
    return r;
}

static void create_t(const char *body)
{
    json_decref(put_index(body, 200));
}

/* Asserts that PUT /t refuses body as the engine does: the reason of the
 * error and of its root cause; no index is left. */
static void mapping_refused(const char *body, const char *reason, const char *root_reason)
{
    long st;
    json_t *r = put_index(body, 400);
    json_t *rc = json_array_get(json_object_get(json_object_get(r, "error"), "root_cause"), 0);

    cr_assert_str_eq(error_type(r), "mapper_parsing_exception", "%s", body);
    cr_assert_str_eq(error_reason(r), reason, "%s", body);
    cr_assert_str_eq(json_string_value(json_object_get(rc, "reason")), root_reason, "%s", body);
    json_decref(r);
    json_decref(searchd_json(sd, "GET", "/t", NULL, &st));
    cr_assert_eq(st, 404, "a refused mapping creates no index");
}

/* The whole of GET /t/_mapping's "mappings", as text. */
static char *mapping_text(void)
{
    long st;
    json_t *m = searchd_json(sd, "GET", "/t/_mapping", NULL, &st);
    char *s = json_dumps(json_object_get(json_object_get(m, "t"), "mappings"),
                         JSON_COMPACT | JSON_PRESERVE_ORDER);

    cr_assert_eq(st, 200);
    json_decref(m);
    return s;
}

/* An explicit mapping is taken and shown by GET /<index>/_mapping (fields
 * sorted by name, ObjectMapper#serializeMappers; a definition as given, an
 * object with properties without "type", a dotted property name making its
 * objects, ObjectMapper.TypeParser#parseProperties). */
Test(searchd, put_index_sets_an_explicit_mapping)
{
    sd = searchd_start(NULL);
    create_t("{\"settings\":{\"number_of_shards\":1},\"mappings\":{\"dynamic\":\"strict\","
             "\"properties\":{\"name\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":"
             "\"keyword\",\"ignore_above\":256}}},\"n\":{\"type\":\"long\"},\"o.p\":{\"type\":"
             "\"integer\"},\"o\":{\"properties\":{\"q\":{\"type\":\"boolean\"}}},"
             "\"when\":{\"type\":\"date\"}}}}");
    char *m = mapping_text();
    cr_assert_str_eq(m, "{\"dynamic\":\"strict\",\"properties\":{\"n\":{\"type\":\"long\"},"
                        "\"name\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":"
                        "\"keyword\",\"ignore_above\":256}}},\"o\":{\"properties\":{\"p\":{"
                        "\"type\":\"integer\"},\"q\":{\"type\":\"boolean\"}}},\"when\":{"
                        "\"type\":\"date\"}}}");
    free(m);
    assert_mapped("o.p", "integer");
    cr_assert_eq(doc_status("{\"name\":7,\"n\":\"12\",\"o\":{\"p\":5,\"q\":\"true\"},"
                            "\"when\":\"2024-05-06T07:08:09Z\"}"), 201);
    refused("{\"n\":\"x\"}", "mapper_parsing_exception",
            "failed to parse field [n] of type [long] in document with id '1'. Preview of "
            "field's value: 'x'", "illegal_argument_exception", "For input string: \"x\"");
    stop();
}

/* double (NumberFieldMapper DOUBLE: Jackson's value or Double#parseDouble,
 * then #validateParsed): every finite number, numeric strings; beyond the
 * double range (1E+400) it is Infinity and refused; NaN too. */
Test(searchd, double_fields_take_every_finite_number)
{
    static const char *const ok[] = { "12345678901234567890123456789012345678",
                                      "-9.9999999999999999999999999999999999999E+125", "1E+125",
                                      "1E-130", "7", "\"1.5\"", "\" 2e300 \"", "\"\"",
                                      "-1.7976931348623157E308" };
    char doc[96];

    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"d\":{\"type\":\"double\"}}}}");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(doc, sizeof(doc), "{\"d\":%s}", ok[i]);
        cr_assert_lt(doc_status(doc), 300, "%s goes into a double", doc);
    }
    refused("{\"d\":1E+400}", "mapper_parsing_exception",
            "failed to parse field [d] of type [double] in document with id '1'. Preview of "
            "field's value: 'Infinity'", "illegal_argument_exception",
            "[double] supports only finite values, but got [Infinity]");
    refused("{\"d\":\"-1e400\"}", "mapper_parsing_exception", NULL, "illegal_argument_exception",
            "[double] supports only finite values, but got [-Infinity]");
    refused("{\"d\":\"NaN\"}", "mapper_parsing_exception", NULL, "illegal_argument_exception",
            "[double] supports only finite values, but got [NaN]");
    refused("{\"d\":\"abc\"}", "mapper_parsing_exception", NULL, "number_format_exception",
            "For input string: \"abc\"");
    refused("{\"d\":true}", "mapper_parsing_exception", NULL, NULL,
            "Current token (VALUE_TRUE) not numeric, can not use numeric value accessors");
    refused("{\"d\":{\"x\":1}}", "mapper_parsing_exception", NULL, NULL, NULL);
    stop();
}

/* integer, short, byte (NumberFieldMapper INTEGER/SHORT/BYTE#parse:
 * XContentParser#intValue, #shortValue; numbers through Jackson's
 * getIntValue, strings through Double#parseDouble, truncated). */
Test(searchd, integer_fields_take_the_int_range)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"i\":{\"type\":\"integer\"},\"s\":{\"type\":"
             "\"short\"},\"b\":{\"type\":\"byte\"}}}}");
    cr_assert_eq(doc_status("{\"i\":2147483647,\"s\":-32768,\"b\":127}"), 201);
    cr_assert_eq(doc_status("{\"i\":[-2147483648,12.7,\"99.9\",\"1e3\",\"\"],\"b\":\"-128\"}"),
                 200);
    refused("{\"i\":2147483648}", "mapper_parsing_exception",
            "failed to parse field [i] of type [integer] in document with id '1'. Preview of "
            "field's value: '2147483648'", "input_coercion_exception",
            "Numeric value (2147483648) out of range of int (-2147483648 - 2147483647)");
    refused("{\"i\":\"3e9\"}", "mapper_parsing_exception", NULL, "illegal_argument_exception",
            "Value [3e9] is out of range for an integer");
    refused("{\"i\":12345678901234567890123456789012345678}", "mapper_parsing_exception", NULL,
            NULL, "Numeric value (12345678901234567890123456789012345678) out of range of int "
            "(-2147483648 - 2147483647)");
    refused("{\"i\":\"x\"}", "mapper_parsing_exception", NULL, "number_format_exception",
            "For input string: \"x\"");
    refused("{\"s\":32768}", "mapper_parsing_exception", NULL, "input_coercion_exception",
            "Numeric value (32768) out of range of Java short");
    refused("{\"s\":\"40000\"}", "mapper_parsing_exception", NULL, NULL,
            "Value [40000] is out of range for a short");
    refused("{\"b\":128}", "mapper_parsing_exception", NULL, "illegal_argument_exception",
            "Value [128] is out of range for a byte");
    stop();
}

/* keyword (KeywordFieldMapper: XContentParser#textOrNull): any scalar as its
 * text, no object; a value over Lucene's 32766-byte term limit fails when
 * the document is indexed (IndexingChain "immense term", after the version
 * check; the new fields stay mapped) unless ignore_above (UTF-16 units)
 * leaves it out. */
Test(searchd, keyword_fields_take_scalars_up_to_the_term_limit)
{
    size_t n = 40000;
    char *doc = malloc(n + 64);
    int len;

    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"k\":{\"type\":\"keyword\"},\"short\":{\"type\":"
             "\"keyword\",\"ignore_above\":10}}}}");
    cr_assert_eq(doc_status("{\"k\":[1,true,2.5,\"x\",null]}"), 201);
    refused("{\"k\":{\"a\":1}}", "mapper_parsing_exception",
            "failed to parse field [k] of type [keyword] in document with id '1'. Preview of "
            "field's value: '{a=1}'", "illegal_state_exception",
            "Can't get text on a START_OBJECT at 1:6");
    len = snprintf(doc, 64, "{\"new\":1,\"k\":\"");
    memset(doc + len, 'h', n);
    strcpy(doc + len + n, "\"}");
    json_t *r = index_doc("big", doc);
    cr_assert_eq(item_status(r, 0), 400);
    cr_assert_str_eq(item_err(r, 0, "type"), "illegal_argument_exception");
    cr_assert_str_eq(item_err(r, 0, "reason"),
                     "Document contains at least one immense term in field=\"k\" (whose UTF8 "
                     "encoding is longer than the max length 32766), all of which were skipped.  "
                     "Please correct the analyzer to not produce such terms.  The prefix of the "
                     "first immense term is: '[104, 104, 104, 104, 104, 104, 104, 104, 104, 104, "
                     "104, 104, 104, 104, 104, 104, 104, 104, 104, 104, 104, 104, 104, 104, 104, "
                     "104, 104, 104, 104, 104]...', original message: bytes can be at most 32766 "
                     "in length; got 40000");
    cr_assert_str_eq(item_cause(r, 0, "type"), "max_bytes_length_exceeded_exception");
    json_decref(r);
    assert_mapped("new", "long");
    len = snprintf(doc, 64, "{\"short\":\"");
    memset(doc + len, 'h', n);
    strcpy(doc + len + n, "\"}");
    cr_assert_eq(doc_status(doc), 200, "ignore_above leaves the long value out");
    free(doc);
    stop();
}

/* Multi-fields parse the value too (FieldMapper#parse, then each of
 * "fields"); ignore_malformed leaves a bad value out and takes the document
 * (NumberFieldMapper#parseCreateField, values only); "enabled": false takes
 * anything unread (DocumentParser#parseObjectOrNested). */
Test(searchd, multi_fields_ignore_malformed_and_disabled_objects)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"t\":{\"type\":\"text\",\"fields\":{\"num\":{"
             "\"type\":\"long\"}}},\"lenient\":{\"type\":\"integer\",\"ignore_malformed\":true},"
             "\"off\":{\"type\":\"object\",\"enabled\":false}}}}");
    cr_assert_eq(doc_status("{\"t\":\"12\",\"lenient\":\"zz\",\"off\":{\"a\":{\"b\":[1,\"x\"]}}}"),
                 201);
    cr_assert_eq(doc_status("{\"off\":5,\"off.x\":true}"), 200);
    refused("{\"t\":\"abc\"}", "mapper_parsing_exception",
            "failed to parse field [t.num] of type [long] in document with id '1'. Preview of "
            "field's value: 'abc'", NULL, NULL);
    refused("{\"lenient\":{\"a\":1}}", "mapper_parsing_exception", NULL, NULL, NULL);
    assert_mapped("off.a", NULL);
    stop();
}

/* An explicit date field's format is strict_date_optional_time||epoch_millis
 * (DateFieldMapper.DEFAULT_DATE_TIME_FORMATTER): epoch milliseconds are
 * dates; JavaDateFormatter#parse refuses "" and names the format. */
Test(searchd, date_fields_take_iso_dates_and_epoch_millis)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"d\":{\"type\":\"date\"}}}}");
    cr_assert_eq(doc_status("{\"d\":[1700000000000,\"1700000000000\",\"-5.25\","
                            "\"2024-02-29T01:02:03.456+01:00\"]}"), 201);
    refused("{\"d\":\"soon\"}", "mapper_parsing_exception",
            "failed to parse field [d] of type [date] in document with id '1'. Preview of "
            "field's value: 'soon'", "illegal_argument_exception",
            "failed to parse date field [soon] with format "
            "[strict_date_optional_time||epoch_millis]");
    refused("{\"d\":\"\"}", "mapper_parsing_exception", NULL, "illegal_argument_exception",
            "cannot parse empty date");
    refused("{\"d\":1.5e12}", "mapper_parsing_exception", NULL, NULL,
            "failed to parse date field [1.5e12] with format "
            "[strict_date_optional_time||epoch_millis]");
    stop();
}

/* Mappings the engines refuse, with their texts: an unknown type
 * (ObjectMapper.TypeParser#parseProperties "No handler for type"), an
 * unknown parameter (ParametrizedFieldMapper.Builder#parse), no type, keys
 * left over (DocumentMapperParser#checkNoRemainingFields), a dynamic that
 * is not a boolean (XContentMapValues#nodeBooleanValue), dynamic_templates
 * not a list, a template without match (DynamicTemplate#parse), an unknown
 * match_mapping_type, a key create index does not know
 * (CreateIndexRequest#source).  The root cause is the deepest engine
 * exception (ElasticsearchException#guessRootCauses). */
Test(searchd, bad_mappings_are_refused_with_the_engine_texts)
{
    sd = searchd_start(NULL);
    mapping_refused("{\"mappings\":{\"properties\":{\"y\":{\"type\":\"strng\"}}}}",
                    "Failed to parse mapping [_doc]: No handler for type [strng] declared on "
                    "field [y]", "No handler for type [strng] declared on field [y]");
    mapping_refused("{\"mappings\":{\"properties\":{\"o\":{\"properties\":{\"y\":{\"type\":"
                    "\"long\",\"analyzer\":\"x\"}}}}}}",
                    "Failed to parse mapping [_doc]: unknown parameter [analyzer] on mapper [y] "
                    "of type [long]", "unknown parameter [analyzer] on mapper [y] of type [long]");
    mapping_refused("{\"mappings\":{\"properties\":{\"y\":{\"index\":false}}}}",
                    "Failed to parse mapping [_doc]: No type specified for field [y]",
                    "No type specified for field [y]");
    mapping_refused("{\"mappings\":{\"dynamic\":\"yes\"}}",
                    "Failed to parse mapping [_doc]: Could not convert [dynamic.dynamic] to "
                    "boolean",
                    "Failed to parse mapping [_doc]: Could not convert [dynamic.dynamic] to "
                    "boolean");
    mapping_refused("{\"mappings\":{\"propertes\":{}}}",
                    "Failed to parse mapping [_doc]: Root mapping definition has unsupported "
                    "parameters:  [propertes : {}]",
                    "Root mapping definition has unsupported parameters:  [propertes : {}]");
    mapping_refused("{\"mappings\":{\"properties\":{\"o\":{\"type\":\"object\",\"x\":1}}}}",
                    "Failed to parse mapping [_doc]: Mapping definition for [o] has unsupported "
                    "parameters:  [x : 1]",
                    "Mapping definition for [o] has unsupported parameters:  [x : 1]");
    mapping_refused("{\"mappings\":{\"dynamic_templates\":{\"n\":{}}}}",
                    "Failed to parse mapping [_doc]: Dynamic template syntax error. An array of "
                    "named objects is expected.",
                    "Dynamic template syntax error. An array of named objects is expected.");
    mapping_refused("{\"mappings\":{\"dynamic_templates\":[{\"n\":{\"mapping\":{\"type\":"
                    "\"double\"}}}]}}",
                    "Failed to parse mapping [_doc]: template must have match, path_match or "
                    "match_mapping_type set {mapping={type=double}}",
                    "template must have match, path_match or match_mapping_type set "
                    "{mapping={type=double}}");
    mapping_refused("{\"mappings\":{\"dynamic_templates\":[{\"n\":{\"match_mapping_type\":"
                    "\"integer\",\"mapping\":{}}}]}}",
                    "Failed to parse mapping [_doc]: No field type matched on [integer], "
                    "possible values are [object, string, long, double, boolean, date, binary]",
                    "Failed to parse mapping [_doc]: No field type matched on [integer], "
                    "possible values are [object, string, long, double, boolean, date, binary]");
    json_t *r = put_index("{\"mapping\":{}}", 400);
    cr_assert_str_eq(error_type(r), "parse_exception");
    cr_assert_str_eq(error_reason(r), "unknown key [mapping] for create index");
    json_decref(r);
    /* a valid mapping the double cannot model is refused, never ignored */
    r = put_index("{\"mappings\":{\"properties\":{\"g\":{\"type\":\"geo_point\"}}}}", 400);
    cr_assert_str_eq(error_type(r), "search_double_unsupported_exception");
    json_decref(r);
    stop();
}

/* Elasticsearch 8: "Failed to parse mapping: ..." (MapperService), boost is
 * no parameter of an 8.x index (FieldMapper.Builder#parse), and a dynamic
 * template whose mapping cannot be built is refused when the index is
 * created (RootObjectMapper#validateDynamicTemplate), OpenSearch 2 only
 * warns then (and refuses the document a field of it would map). */
Test(searchd, es8_mapping_errors)
{
    sd = searchd_start("--flavor", "es8", NULL);
    mapping_refused("{\"mappings\":{\"properties\":{\"y\":{\"type\":\"strng\"}}}}",
                    "Failed to parse mapping: No handler for type [strng] declared on field [y]",
                    "No handler for type [strng] declared on field [y]");
    mapping_refused("{\"mappings\":{\"properties\":{\"y\":{\"type\":\"long\",\"boost\":2}}}}",
                    "Failed to parse mapping: Unknown parameter [boost] on mapper [y]",
                    "Unknown parameter [boost] on mapper [y]");
    mapping_refused("{\"mappings\":{\"dynamic_templates\":[{\"s\":{\"match_mapping_type\":"
                    "\"string\",\"mapping\":{\"type\":\"string\"}}}]}}",
                    "Failed to parse mapping: dynamic template [s] has invalid content "
                    "[{\"match_mapping_type\":\"string\",\"mapping\":{\"type\":\"string\"}}], "
                    "attempted to validate it with the following match_mapping_type: [string]",
                    "Failed to parse mapping: dynamic template [s] has invalid content "
                    "[{\"match_mapping_type\":\"string\",\"mapping\":{\"type\":\"string\"}}], "
                    "attempted to validate it with the following match_mapping_type: [string]");
    stop();

    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"dynamic_templates\":[{\"s\":{\"match_mapping_type\":\"string\","
             "\"mapping\":{\"type\":\"string\"}}}],\"properties\":{\"y\":{\"type\":\"long\","
             "\"boost\":2}}}}");
    refused("{\"y\":1,\"x\":\"a\"}", "mapper_parsing_exception",
            "failed to find type parsed [string] for [x]", NULL, NULL);
    cr_assert_eq(doc_status("{\"y\":1,\"n\":5}"), 201);
    stop();
}

/* dynamic false: a new field stays in the source, neither mapped nor checked
 * (DocumentParser#parseObject skipChildren, #parseDynamicValue); mapped
 * fields are still checked; an object's setting is inherited by its
 * objects (#dynamicOrDefault) and overrides its parent's. */
Test(searchd, dynamic_false_keeps_new_fields_unmapped)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"dynamic\":false,\"properties\":{\"n\":{\"type\":\"long\"},"
             "\"o\":{\"properties\":{\"x\":{\"type\":\"long\"}}},\"open\":{\"dynamic\":true,"
             "\"properties\":{}}}}}");
    cr_assert_eq(doc_status("{\"new\":{\"\":1,\"b\":[1,\"a\"]},\"n\":1,\"big\":1E+400,"
                            "\"o\":{\"y\":true},\"new2.x\":1,\"open\":{\"z\":\"s\"}}"), 201);
    assert_mapped("new", NULL);
    assert_mapped("big", NULL);
    assert_mapped("o.y", NULL);
    assert_mapped("new2", NULL);
    assert_mapped("open.z", "text");
    refused("{\"n\":\"x\"}", "mapper_parsing_exception", NULL, NULL, NULL);
    refused("{\"o\":{\"x\":true}}", "mapper_parsing_exception", NULL, NULL, NULL);
    struct searchd_resp g;
    cr_assert_eq(searchd_request(sd, "GET", "/t/_doc/x", NULL, NULL, 0, &g), 0);
    cr_assert_not_null(strstr(g.body, "\"new\":{\"\":1,\"b\":[1,\"a\"]},\"n\":1,"
                                      "\"big\":1E+400"),
                       "the source keeps the unmapped fields: %s", g.body);
    searchd_resp_close(&g);
    stop();
}

/* dynamic strict: a new field is refused (StrictDynamicMappingException,
 * "within" the parent, the root being [_doc]); arrays and objects too, and
 * dotted names at their first new part (#getDynamicParentMapper).  null for
 * a new field: os2 #parseNullValue asks only the object it is in (its own
 * setting), es8 #ensureNotStrict the inherited one. */
Test(searchd, dynamic_strict_refuses_new_fields)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"dynamic\":\"strict\",\"properties\":{\"n\":{\"type\":\"long\"},"
             "\"o\":{\"properties\":{\"x\":{\"type\":\"long\"}}},\"loose\":{\"type\":\"object\","
             "\"dynamic\":true}}}}");
    cr_assert_eq(doc_status("{\"n\":1,\"o\":{\"x\":2},\"loose\":{\"any\":[1,2]}}"), 201);
    refused("{\"n\":1,\"b\":2}", "strict_dynamic_mapping_exception",
            "mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed",
            NULL, NULL);
    refused("{\"o\":{\"y\":[]}}", "strict_dynamic_mapping_exception",
            "mapping set to strict, dynamic introduction of [y] within [o] is not allowed",
            NULL, NULL);
    refused("{\"a.b\":{}}", "strict_dynamic_mapping_exception",
            "mapping set to strict, dynamic introduction of [a] within [_doc] is not allowed",
            NULL, NULL);
    refused("{\"c\":null}", "strict_dynamic_mapping_exception",
            "mapping set to strict, dynamic introduction of [c] within [_doc] is not allowed",
            NULL, NULL);
    cr_assert_eq(doc_status("{\"o\":{\"z\":null}}"), 200,
                 "os2: o does not set dynamic itself, so its null is taken");
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    create_t("{\"mappings\":{\"dynamic\":\"strict\",\"properties\":{\"o\":{\"properties\":{}}}}}");
    refused("{\"b\":2}", "strict_dynamic_mapping_exception",
            "[1:6] mapping set to strict, dynamic introduction of [b] within [_doc] is not "
            "allowed", NULL, NULL);
    refused("{\"o\":{\"z\":null}}", "strict_dynamic_mapping_exception",
            "[1:11] mapping set to strict, dynamic introduction of [z] within [o] is not "
            "allowed", NULL, NULL);
    stop();
}

/* Dynamic templates decide the type of a new field (RootObjectMapper
 * #findTemplateBuilder, the first that matches; DynamicTemplate#match:
 * match/unmatch on the name, path_match/path_unmatch on the full path with
 * '*' wildcards, match_mapping_type on the kind the value has: a JSON
 * integer of any size is long, a fraction or exponent double, a string
 * that reads as a date date, else string); {dynamic_type} is the kind's
 * default type (DynamicTemplate#mappingType: double -> float). */
Test(searchd, dynamic_templates_decide_new_fields)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"dynamic_templates\":["
             "{\"ids\":{\"match\":\"*_id\",\"unmatch\":\"skip_*\",\"mapping\":{\"type\":"
             "\"keyword\"}}},"
             "{\"meta\":{\"path_match\":\"meta.*\",\"path_unmatch\":\"meta.keep.*\","
             "\"mapping\":{\"type\":\"{dynamic_type}\",\"ignore_malformed\":true}}},"
             "{\"strs\":{\"match_mapping_type\":\"string\",\"mapping\":{\"type\":\"keyword\"}}},"
             "{\"dates\":{\"match_mapping_type\":\"date\",\"mapping\":{\"type\":\"text\"}}},"
             "{\"nums\":{\"match_mapping_type\":\"long\",\"mapping\":{\"type\":\"double\"}}}]}}");
    cr_assert_eq(doc_status("{\"user_id\":5,\"skip_id\":5,\"s\":\"x\",\"when\":\"2024-01-02\","
                            "\"big\":12345678901234567890123456789012345678,\"f\":1.5,"
                            "\"meta\":{\"n\":1,\"r\":2.5,\"keep\":{\"k\":\"z\"}}}"), 201);
    assert_mapped("user_id", "keyword");
    assert_mapped("skip_id", "double");
    assert_mapped("s", "keyword");
    assert_mapped("when", "text");
    assert_mapped("big", "double");
    assert_mapped("f", "float");
    assert_mapped("meta", "object");
    assert_mapped("meta.n", "long");
    assert_mapped("meta.r", "float");
    assert_mapped("meta.keep.k", "keyword");
    cr_assert_eq(doc_status("{\"meta\":{\"n\":\"not a number\"}}"), 200,
                 "the template's ignore_malformed came with the field");
    char *m = mapping_text();
    cr_assert_not_null(strstr(m, "{\"meta\":{\"path_match\":\"meta.*\",\"path_unmatch\":"
                                 "\"meta.keep.*\",\"mapping\":{\"ignore_malformed\":true,"
                                 "\"type\":\"{dynamic_type}\"}}}"),
                       "templates are shown as DynamicTemplate#toXContent prints them: %s", m);
    cr_assert_not_null(strstr(m, "\"n\":{\"type\":\"long\",\"ignore_malformed\":true}"), "%s", m);
    free(m);
    /* two values of one new field: each makes its own mapper; the template
     * makes both double, without it they clash (long and float) */
    cr_assert_eq(doc_status("{\"arr\":[1,2]}"), 200);
    refused("{\"mix\":[1,2.5]}", "illegal_argument_exception",
            "mapper [mix] cannot be changed from type [float] to [double]", NULL, NULL);
    stop();
}

/* numeric_detection maps numeric strings as long or float (Long#parseLong,
 * Double#parseDouble); date_detection false keeps date strings text
 * (DocumentParser#createBuilderFromDynamicValue). */
Test(searchd, numeric_and_date_detection)
{
    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"numeric_detection\":true,\"date_detection\":false}}");
    cr_assert_eq(doc_status("{\"l\":\"42\",\"f\":\"4.5\",\"d\":\"2024-01-02\",\"s\":\"x\"}"), 201);
    assert_mapped("l", "long");
    assert_mapped("f", "float");
    assert_mapped("d", "text");
    assert_mapped("s", "text");
    char *m = mapping_text();
    cr_assert_not_null(strstr(m, "\"date_detection\":false,\"numeric_detection\":true"), "%s", m);
    free(m);
    stop();
}

/* DynamoDB numbers (up to 38 digits, magnitudes 1E-130 to 9.99E+125) in an
 * index whose dynamic templates map JSON integers (long) and fractions
 * (double) to double: every one fits (finite doubles), in any order across
 * documents; the engines' default dynamic mapping refuses a 38-digit
 * integer (a long) and 9.99E+125 (a float). */
Test(searchd, dynamodb_numbers_fit_an_index_that_maps_numbers_as_double)
{
    static const char *const nums[] = { "12345678901234567890123456789012345678",
                                        "-9.9999999999999999999999999999999999999E+125",
                                        "1E-130", "7", "-3", "0" };
    static const char dd[] = "{\"mappings\":{\"dynamic_templates\":["
                             "{\"n\":{\"match_mapping_type\":\"long\",\"mapping\":{\"type\":"
                             "\"double\"}}},"
                             "{\"r\":{\"match_mapping_type\":\"double\",\"mapping\":{\"type\":"
                             "\"double\"}}}]}}";
    struct buf b;
    json_t *r;

    sd = searchd_start(NULL);
    create_t(dd);
    for (int rot = 0; rot < 6; rot++) { /* each field meets each value first */
        buf_init(&b, BUF_NOMAX);
        buf_printf(&b, "{\"index\":{\"_index\":\"t\",\"_id\":\"k%d\"}}\n{", rot);
        for (int f = 0; f < 6; f++)
            buf_printf(&b, "\"a%d\":%s,", f, nums[(f + rot) % 6]);
        buf_puts(&b, "\"m\":{");
        for (int f = 0; f < 6; f++)
            buf_printf(&b, "%s\"v%d\":[%s]", f ? "," : "", f, nums[(f + rot + 1) % 6]);
        buf_puts(&b, "}}\n");
        r = bulk(b.ptr, 200);
        buf_close(&b);
        cr_assert(json_is_false(json_object_get(r, "errors")), "rotation %d refused: %s", rot,
                  item_err(r, 0, "reason"));
        json_decref(r);
    }
    assert_mapped("a0", "double");
    assert_mapped("m.v3", "double");
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"index\":{\"_index\":\"plain\",\"_id\":\"1\"}}\n{\"n\":");
    buf_puts(&b, nums[0]);
    buf_puts(&b, "}\n{\"index\":{\"_index\":\"plain\",\"_id\":\"2\"}}\n{\"r\":");
    buf_puts(&b, nums[1]);
    buf_puts(&b, "}\n{\"index\":{\"_index\":\"plain\",\"_id\":\"3\"}}\n{\"t\":");
    buf_puts(&b, nums[2]);
    buf_puts(&b, "}\n");
    r = bulk(b.ptr, 200);
    cr_assert_eq(item_status(r, 0), 400, "a default index refuses a 38-digit integer");
    cr_assert_eq(item_status(r, 1), 400, "and -9.99E+125 (not a finite float)");
    cr_assert_eq(item_status(r, 2), 201, "1E-130 is a float 0");
    json_decref(r);
    buf_close(&b);
    stop();
}

/* ---- mapping limits ----------------------------------------------------------
 * index.mapping.depth.limit (default 20, at least 1) and
 * index.mapping.total_fields.limit (default 1000, at least 0) are settings of
 * each index (MapperService INDEX_MAPPING_DEPTH_LIMIT_SETTING,
 * INDEX_MAPPING_TOTAL_FIELDS_LIMIT_SETTING), both dynamic.  Both engines
 * check the mapping a document's new fields would make (TransportShardBulk
 * Action: the preflight MapperService#merge, DocumentMapper#validate,
 * MappingLookup#checkLimits: an IllegalArgumentException for the item);
 * OpenSearch 2 also counts the document's objects and arrays as
 * DocumentParser parses them (ParseContext.InternalParseContext
 * #checkFieldDepthLimit, #checkFieldArrayDepthLimit); Elasticsearch 8
 * checks each new field as it meets it (DocumentParserContext
 * #addDynamicMapper). */

static const char os2_depth[] = "The depth of the field has exceeded the allowed limit of [%d]. "
                                "This limit can be set by changing the "
                                "[index.mapping.depth.limit] index level setting.";
static const char os2_array_depth[] = "The depth of the nested array field has exceeded the "
                                      "allowed limit of [%d]. This limit can be set by "
                                      "changing the [index.mapping.depth.limit] index level "
                                      "setting.";

/* The item status of doc indexed alone under an id not used before (201
 * when it is taken). */
static long fresh_status(const char *doc)
{
    static unsigned seq;
    char id[32];
    json_t *r;
    long st;

    snprintf(id, sizeof(id), "n%u", seq++);
    r = index_doc(id, doc);
    st = item_status(r, 0);
    json_decref(r);
    return st;
}

/* The member of j at a dotted path of keys ("a.b.c"). */
static json_t *member(json_t *j, const char *path)
{
    char *copy = strdup(path), *save = NULL;

    for (char *k = strtok_r(copy, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
        j = json_object_get(j, k);
    free(copy);
    return j;
}

/* A document of `levels` objects one in another, the root the first
 * ({"a":{"a":{"leaf":1}}} has 3), or, with arrays, of `levels` arrays one in
 * another under key ({"k":[[1]]} has 2). */
static char *deep_doc(int levels, const char *key)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    if (key) {
        buf_printf(&b, "\"%s\":", key);
        for (int i = 0; i < levels; i++)
            buf_putc(&b, '[');
        buf_putc(&b, '1');
        for (int i = 0; i < levels; i++)
            buf_putc(&b, ']');
        buf_putc(&b, '}');
    } else {
        for (int i = 1; i < levels; i++)
            buf_puts(&b, "\"a\":{");
        buf_puts(&b, "\"leaf\":1");
        for (int i = 0; i < levels; i++)
            buf_putc(&b, '}');
    }
    return buf_take(&b);
}

static long deep_status(int levels, const char *key)
{
    char *doc = deep_doc(levels, key);
    long st = fresh_status(doc);

    free(doc);
    return st;
}

/* Asserts that the document of these levels is refused as os2's parser
 * refuses one too deep (#wrapInMapperParsingException: "failed to parse",
 * caused by the OpenSearchParseException). */
static void os2_too_deep(int levels, const char *key, int limit)
{
    char *doc = deep_doc(levels, key), want[300];

    snprintf(want, sizeof(want), key ? os2_array_depth : os2_depth, limit);
    refused(doc, "mapper_parsing_exception", "failed to parse", "parse_exception", want);
    free(doc);
}

/* OpenSearch 2: DocumentParser#innerParseObject counts every object it
 * parses, the root being 1, and #parseArray every array, the objects around
 * it left out (ParseContext counts them apart); past the limit the document
 * is refused as it is parsed.  Objects left unread (disabled, dynamic false)
 * are not counted, but an array given to a disabled object still counts its
 * arrays (#parseNonDynamicArray hands them back to #parseArray).  Objects
 * and arrays in turn count as in DocumentParserTests
 * #testDocumentDeepNestedObjectAndArrayCombination.  --depth-limit sets the
 * limit of indexes created without the setting; 0 turns the checks off. */
Test(searchd, os2_counts_the_objects_and_arrays_of_a_document)
{
    struct buf b;

    sd = searchd_start(NULL);
    cr_assert_eq(deep_status(20, NULL), 201, "20 objects, the root one of them");
    os2_too_deep(21, NULL, 20);
    cr_assert_eq(deep_status(20, "x"), 201, "20 arrays");
    os2_too_deep(21, "x", 20);
    for (int n = 20; n >= 19; n--) { /* object -> array -> object ... */
        buf_init(&b, BUF_NOMAX);
        buf_putc(&b, '{');
        for (int i = 1; i < n; i++)
            buf_puts(&b, "\"foo1\":[{");
        buf_puts(&b, "\"bar\":[[0,0]]");
        for (int i = 1; i < n; i++)
            buf_puts(&b, "}]");
        buf_putc(&b, '}');
        if (n == 20)
            refused(b.ptr, "mapper_parsing_exception", "failed to parse", "parse_exception",
                    "The depth of the nested array field has exceeded the allowed limit of [20]. "
                    "This limit can be set by changing the [index.mapping.depth.limit] index "
                    "level setting.");
        else
            cr_assert_eq(fresh_status(b.ptr), 201, "18 arrays of objects and two arrays");
        buf_close(&b);
    }
    stop();

    sd = searchd_start(NULL);
    create_t("{\"mappings\":{\"properties\":{\"d\":{\"type\":\"object\",\"enabled\":false},"
             "\"q\":{\"type\":\"object\",\"dynamic\":false}}}}");
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"d\":");
    char *inner = deep_doc(25, NULL);
    buf_puts(&b, inner);
    buf_puts(&b, ",\"q\":{\"new\":");
    buf_puts(&b, inner);
    buf_puts(&b, "}}");
    cr_assert_eq(fresh_status(b.ptr), 201, "objects left unread are not counted");
    free(inner);
    buf_close(&b);
    os2_too_deep(21, "d", 20);
    stop();

    sd = searchd_start("--depth-limit", "0", NULL);
    cr_assert_eq(deep_status(25, NULL), 201, "--depth-limit 0 turns the check off");
    cr_assert_eq(deep_status(25, "x"), 201);
    stop();
    sd = searchd_start("--depth-limit", "5", NULL);
    cr_assert_eq(deep_status(5, NULL), 201);
    os2_too_deep(6, NULL, 5);
    stop();
}

/* Elasticsearch 8 counts object fields, not the document: a new object
 * whose path has more dots than the limit less 2 is refused as it is met
 * (DocumentParserContext#addDynamicMapper → MappingLookup
 * #checkObjectDepthLimit, wrapped by DocumentParser
 * #wrapInDocumentParsingException with the object's location); arrays make
 * no object. */
Test(searchd, es8_refuses_a_new_object_deeper_than_the_limit)
{
    struct buf want;

    sd = searchd_start("--flavor", "es8", NULL);
    cr_assert_eq(deep_status(20, NULL), 201, "the deepest object a.a...a has 18 dots");
    buf_init(&want, BUF_NOMAX);
    buf_puts(&want, "Limit of mapping depth [20] has been exceeded due to object field [a");
    for (int i = 1; i < 20; i++)
        buf_puts(&want, ".a");
    buf_putc(&want, ']');
    char *doc = deep_doc(21, NULL), *outer = NULL;
    /* the 20th "a" opens its object at column 1 + 5 * 20 */
    cr_assert_geq(asprintf(&outer, "[1:101] failed to parse: %s", want.ptr), 0);
    refused(doc, "document_parsing_exception", outer, "illegal_argument_exception", want.ptr);
    free(outer);
    free(doc);
    buf_close(&want);
    cr_assert_eq(deep_status(30, "x"), 201, "arrays add no depth");
    stop();
}

/* A dotted name is the path of objects it names (DocumentParser
 * #getDynamicParentMapper, es8 DotExpandingXContentParser), so its dots
 * count as nested objects do: MappingLookup#checkObjectDepthLimit counts
 * the dots of each object's full path, plus 2.  os2 finds it when the
 * mapping update is checked (its document count sees one level): an
 * illegal_argument_exception, not wrapped; es8 as the object is added. */
Test(searchd, dots_in_names_count_as_depth)
{
    static const char reason[] = "Limit of mapping depth [3] has been exceeded due to object "
                                 "field [x.y.z]";

    sd = searchd_start(NULL);
    create_t("{\"settings\":{\"index.mapping.depth.limit\":3}}");
    cr_assert_eq(fresh_status("{\"a.b\":{\"c\":1}}"), 201, "a.b is at depth 3");
    refused("{\"x.y.z.w\":1}", "illegal_argument_exception", reason, NULL, NULL);
    assert_mapped("x", NULL);
    refused("{\"x\":{\"y.z\":{\"w\":1}}}", "illegal_argument_exception", reason, NULL, NULL);
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    create_t("{\"settings\":{\"index.mapping.depth.limit\":3}}");
    cr_assert_eq(fresh_status("{\"a.b\":{\"c\":1}}"), 201);
    refused("{\"x.y.z.w\":1}", "document_parsing_exception",
            "[1:12] failed to parse: Limit of mapping depth [3] has been exceeded due to object "
            "field [x.y.z]", "illegal_argument_exception", reason);
    stop();
}

/* A document of n fields "<prefix>0".."<prefix>n-1", each with value. */
static char *many_fields(const char *prefix, int n, const char *value)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    for (int i = 0; i < n; i++)
        buf_printf(&b, "%s\"%s%d\":%s", i ? "," : "", prefix, i, value);
    buf_putc(&b, '}');
    return buf_take(&b);
}

/* OpenSearch 2: the mapping a document's new fields make may hold as many
 * fields as the limit (MappingLookup#checkFieldLimit): field mappers and
 * their multi-fields (a dynamic string is text plus keyword: 2), object
 * mappers, not the metadata fields.  A document with no new field maps
 * nothing and is not checked. */
Test(searchd, os2_total_fields_limit_counts_the_merged_mapping)
{
    static const char reason[] = "Limit of total fields [5] has been exceeded";
    char *doc;

    sd = searchd_start(NULL);
    doc = many_fields("f", 1000, "1");
    cr_assert_eq(fresh_status(doc), 201, "1000 fields by default");
    free(doc);
    refused("{\"one_more\":1}", "illegal_argument_exception",
            "Limit of total fields [1000] has been exceeded", NULL, NULL);
    stop();

    sd = searchd_start(NULL);
    create_t("{\"settings\":{\"index.mapping.total_fields.limit\":5}}");
    cr_assert_eq(fresh_status("{\"s\":\"x\"}"), 201, "text and its keyword: 2");
    cr_assert_eq(fresh_status("{\"o\":{\"n\":1}}"), 201, "an object and a long: 4");
    refused("{\"p\":1,\"q\":1}", "illegal_argument_exception", reason, NULL, NULL);
    assert_mapped("p", NULL);
    refused("{\"t\":\"x\"}", "illegal_argument_exception", reason, NULL, NULL);
    cr_assert_eq(fresh_status("{\"p\":1}"), 201, "5 fit");
    cr_assert_eq(fresh_status("{\"s\":\"y\",\"o\":{\"n\":2},\"p\":[3]}"), 201,
                 "no new field, no mapping update");
    stop();
}

/* Elasticsearch 8 counts the fields a document brings as they come
 * (DocumentParserContext#addDynamicMapper: Mapper#getTotalFieldsCount of
 * each new one added to those of the document so far, MappingLookup
 * #checkFieldLimit "while adding new fields [n]"), wrapped with the value's
 * location. */
Test(searchd, es8_total_fields_limit_counts_as_fields_come)
{
    sd = searchd_start("--flavor", "es8", NULL);
    create_t("{\"settings\":{\"index.mapping.total_fields.limit\":5}}");
    cr_assert_eq(fresh_status("{\"a\":1,\"s\":\"x\"}"), 201);
    refused("{\"b\":1,\"t\":\"x\"}", "document_parsing_exception",
            "[1:12] failed to parse: Limit of total fields [5] has been exceeded while adding "
            "new fields [3]", "illegal_argument_exception",
            "Limit of total fields [5] has been exceeded while adding new fields [3]");
    assert_mapped("b", NULL);
    refused("{\"c\":1,\"d\":{\"e\":1}}", "document_parsing_exception",
            "[1:17] failed to parse: Limit of total fields [5] has been exceeded while adding "
            "new fields [3]", "illegal_argument_exception",
            "Limit of total fields [5] has been exceeded while adding new fields [3]");
    cr_assert_eq(fresh_status("{\"c\":[1,2],\"d\":null}"), 201, "one new field, counted once");
    stop();
}

/* Elasticsearch 8.13+ index.mapping.total_fields.ignore_dynamic_beyond_limit
 * (MapperService INDEX_MAPPING_IGNORE_DYNAMIC_BEYOND_LIMIT_SETTING): a new
 * field that does not fit is left unmapped and its value unread
 * (DocumentParserContext#addDynamicMapper returns false, DynamicFieldsBuilder
 * #createDynamicField and DocumentParser#parseObjectDynamic skip it); the
 * document is taken, its source whole.  OpenSearch 2 has no such setting:
 * unknown (AbstractScopedSettings#validate). */
Test(searchd, ignore_dynamic_beyond_limit)
{
    long st;
    json_t *r;

    sd = searchd_start("--flavor", "es8", NULL);
    create_t("{\"settings\":{\"index.mapping.total_fields.limit\":3,"
             "\"index.mapping.total_fields.ignore_dynamic_beyond_limit\":true}}");
    r = index_doc("k", "{\"a\":1,\"s\":\"x\",\"o\":{\"n\":1},\"t\":\"y\"}");
    cr_assert_eq(item_status(r, 0), 201);
    json_decref(r);
    assert_mapped("a", "long");
    assert_mapped("s", "text");
    assert_mapped("o", NULL);
    assert_mapped("t", NULL);
    r = searchd_json(sd, "GET", "/t/_doc/k", NULL, &st);
    json_t *src = json_object_get(r, "_source");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(src, "o"), "n")), 1,
                 "the source keeps what is left unmapped");
    json_decref(r);
    json_decref(searchd_json(sd, "PUT", "/t/_settings",
                             "{\"index.mapping.total_fields.limit\":4}", &st));
    cr_assert_eq(st, 200);
    cr_assert_eq(fresh_status("{\"u\":\"z\",\"n\":true}"), 201,
                 "a string (2) does not fit, a boolean (1) after it does");
    assert_mapped("u", NULL);
    assert_mapped("n", "boolean");
    stop();

    sd = searchd_start(NULL);
    r = put_index("{\"settings\":{\"index.mapping.total_fields.ignore_dynamic_beyond_limit\":"
                  "true}}", 400);
    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    cr_assert_str_eq(error_reason(r), "unknown setting "
                     "[index.mapping.total_fields.ignore_dynamic_beyond_limit] please check that "
                     "any required plugins are installed, or check the breaking changes "
                     "documentation for removed settings");
    json_decref(r);
    stop();
}

/* The settings of PUT /<index> (CreateIndexRequest#source: "settings" must
 * be an object) as Settings.Builder#loadFromMap reads them: nested objects
 * or dotted keys, numbers or strings, the "index." prefix optional
 * (#normalizePrefix); GET /<index>/_settings shows what was given, nested
 * (Settings#toXContent) or flat (flat_settings=true), values as strings. */
Test(searchd, settings_are_taken_in_every_form_and_shown)
{
    static const char *const bodies[] = {
        "{\"settings\":{\"index\":{\"mapping\":{\"depth\":{\"limit\":2}}}}}",
        "{\"settings\":{\"index.mapping.depth.limit\":\"2\"}}",
        "{\"settings\":{\"mapping.depth.limit\":2}}",
        "{\"settings\":{\"mapping\":{\"depth.limit\":\"2\"}}}",
    };
    long st;
    json_t *r;

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        sd = searchd_start(NULL);
        create_t(bodies[i]);
        cr_assert_eq(fresh_status("{\"a\":{\"b\":1}}"), 201, "%s", bodies[i]);
        os2_too_deep(3, NULL, 2);
        r = searchd_json(sd, "GET", "/t/_settings", NULL, &st);
        cr_assert_eq(st, 200);
        cr_assert_str_eq(json_string_value(member(r, "t.settings.index.mapping.depth.limit")),
                         "2", "%s", bodies[i]);
        json_decref(r);
        stop();
    }

    sd = searchd_start(NULL);
    create_t("{\"settings\":{\"number_of_shards\":1,\"index.mapping.total_fields.limit\":10}}");
    r = searchd_json(sd, "GET", "/t/_settings?flat_settings=true", NULL, &st);
    json_t *set = json_object_get(json_object_get(r, "t"), "settings");
    cr_assert_str_eq(json_string_value(json_object_get(set, "index.mapping.total_fields.limit")),
                     "10");
    cr_assert_str_eq(json_string_value(json_object_get(set, "index.number_of_shards")), "1");
    cr_assert_str_eq(json_string_value(json_object_get(set, "index.provided_name")), "t");
    json_decref(r);
    r = searchd_json(sd, "GET", "/t", NULL, &st);
    cr_assert_str_eq(json_string_value(member(r, "t.settings.index.mapping.total_fields.limit")),
                     "10");
    json_decref(r);
    r = searchd_json(sd, "PUT", "/u", "{\"settings\":[]}", &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_type(r), "parse_exception");
    cr_assert_str_eq(error_reason(r), "key [settings] must be an object");
    json_decref(r);
    stop();
}

/* Bad values, as Setting#get reports them (IndexScopedSettings#validate at
 * creation and at PUT /<index>/_settings): a value Long#parseLong refuses
 * "Failed to parse value [..] for setting [..]" caused by its
 * NumberFormatException; below the minimum (#parseLong) "... must be >= 1";
 * a boolean other than true/false (Booleans#parseBoolean).  PUT _settings
 * with nothing to set (UpdateSettingsRequest#validate) or no body at all
 * (RestRequest#requiredContent). */
Test(searchd, bad_setting_values_are_refused)
{
    long st;
    json_t *r, *rc;

    sd = searchd_start(NULL);
    r = put_index("{\"settings\":{\"index.mapping.depth.limit\":\"deep\"}}", 400);
    rc = json_array_get(json_object_get(json_object_get(r, "error"), "root_cause"), 0);
    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    cr_assert_str_eq(error_reason(r),
                     "Failed to parse value [deep] for setting [index.mapping.depth.limit]");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         r, "error"), "caused_by"), "reason")), "For input string: \"deep\"");
    cr_assert_str_eq(json_string_value(json_object_get(rc, "type")),
                     "illegal_argument_exception");
    json_decref(r);
    r = put_index("{\"settings\":{\"index.mapping.depth.limit\":0}}", 400);
    cr_assert_str_eq(error_reason(r), "Failed to parse value [0] for setting "
                     "[index.mapping.depth.limit] must be >= 1");
    json_decref(r);
    r = put_index("{\"settings\":{\"mapping.total_fields.limit\":-1}}", 400);
    cr_assert_str_eq(error_reason(r), "Failed to parse value [-1] for setting "
                     "[index.mapping.total_fields.limit] must be >= 0");
    json_decref(r);
    r = put_index("{\"settings\":{\"index.mapping.depth.limit\":2.5}}", 400);
    cr_assert_str_eq(error_reason(r),
                     "Failed to parse value [2.5] for setting [index.mapping.depth.limit]");
    json_decref(r);
    json_decref(searchd_json(sd, "GET", "/t", NULL, &st));
    cr_assert_eq(st, 404, "no index is left");
    create_t("{}");
    r = searchd_json(sd, "PUT", "/t/_settings", "{\"index\":{\"mapping.depth.limit\":0}}", &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_reason(r), "Failed to parse value [0] for setting "
                     "[index.mapping.depth.limit] must be >= 1");
    json_decref(r);
    r = searchd_json(sd, "PUT", "/t/_settings", "{}", &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    cr_assert_str_eq(error_reason(r), "Validation Failed: 1: no settings to update;");
    json_decref(r);
    r = searchd_json(sd, "PUT", "/t/_settings", NULL, &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_reason(r), "request body is required");
    json_decref(r);
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    r = put_index("{\"settings\":{\"index.mapping.total_fields.ignore_dynamic_beyond_limit\":"
                  "\"yes\"}}", 400);
    cr_assert_str_eq(error_reason(r), "Failed to parse value [yes] as only [true] or [false] "
                     "are allowed.");
    json_decref(r);
    stop();
}

/* PUT /<index>/_settings changes both limits (dynamic settings; the body or
 * its "settings" object, UpdateSettingsRequest#fromXContent); a null puts
 * the default back.  Lowering a limit below the mapping refuses no document
 * until one brings a new field: MappingLookup#checkLimits then checks the
 * whole merged mapping. */
Test(searchd, put_settings_changes_the_limits)
{
    long st;

    sd = searchd_start(NULL);
    create_t("{}");
    cr_assert_eq(fresh_status("{\"a\":{\"b\":{\"c\":1}},\"x\":1}"), 201);
    json_decref(searchd_json(sd, "PUT", "/t/_settings",
                             "{\"index\":{\"mapping\":{\"depth\":{\"limit\":2}}}}", &st));
    cr_assert_eq(st, 200);
    cr_assert_eq(fresh_status("{\"x\":2}"), 201, "no new field: no check");
    refused("{\"y\":1}", "illegal_argument_exception",
            "Limit of mapping depth [2] has been exceeded due to object field [a.b]", NULL, NULL);
    os2_too_deep(3, NULL, 2);
    json_decref(searchd_json(sd, "PUT", "/t/_settings",
                             "{\"settings\":{\"index.mapping.depth.limit\":null,"
                             "\"mapping.total_fields.limit\":\"4\"}}", &st));
    cr_assert_eq(st, 200);
    refused("{\"y\":1}", "illegal_argument_exception",
            "Limit of total fields [4] has been exceeded", NULL, NULL);
    json_decref(searchd_json(sd, "PUT", "/t/_settings",
                             "{\"index.mapping.total_fields.limit\":null}", &st));
    cr_assert_eq(fresh_status("{\"y\":1}"), 201, "the defaults are back");
    long ist;
    json_t *r = searchd_json(sd, "GET", "/t/_settings?flat_settings", NULL, &ist);
    cr_assert_null(json_object_get(json_object_get(json_object_get(r, "t"), "settings"),
                                   "index.mapping.depth.limit"), "a null removes the setting");
    json_decref(r);
    json_decref(searchd_json(sd, "PUT", "/nope/_settings", "{\"index.mapping.depth.limit\":5}",
                             &st));
    cr_assert_eq(st, 404);
    stop();
}

/* An explicit mapping beyond the limits is refused when the index is
 * created (MapperService#merge → DocumentMapper#validate, not wrapped).
 * OpenSearch 2 counts what FieldMapper#iterator gives, which for text
 * includes the hidden _index_prefix and _index_phrase fields
 * (TextFieldMapper#iterator); Elasticsearch 8 counts a field and its
 * multi-fields (FieldMapper#getTotalFieldsCount). */
Test(searchd, an_explicit_mapping_beyond_the_limits_is_refused)
{
    static const char prefixed[] =
        "{\"settings\":{\"index.mapping.total_fields.limit\":2},\"mappings\":{\"properties\":"
        "{\"a\":{\"type\":\"text\",\"index_prefixes\":{},\"index_phrases\":true}}}}";
    long st;
    json_t *r;

    sd = searchd_start(NULL);
    r = put_index("{\"settings\":{\"index.mapping.total_fields.limit\":2},\"mappings\":"
                  "{\"properties\":{\"a\":{\"type\":\"text\",\"fields\":{\"raw\":{\"type\":"
                  "\"keyword\"}}},\"b\":{\"type\":\"long\"}}}}", 400);
    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    cr_assert_str_eq(error_reason(r), "Limit of total fields [2] has been exceeded");
    json_decref(r);
    r = put_index("{\"settings\":{\"index.mapping.depth.limit\":2},\"mappings\":{\"properties\":"
                  "{\"a\":{\"properties\":{\"b\":{\"properties\":{\"c\":{\"type\":\"long\"}}}}}}}}",
                  400);
    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    cr_assert_str_eq(error_reason(r),
                     "Limit of mapping depth [2] has been exceeded due to object field [a.b]");
    json_decref(r);
    r = put_index(prefixed, 400);
    cr_assert_str_eq(error_reason(r), "Limit of total fields [2] has been exceeded",
                     "text, _index_prefix and _index_phrase");
    json_decref(r);
    json_decref(searchd_json(sd, "GET", "/t", NULL, &st));
    cr_assert_eq(st, 404);
    stop();

    sd = searchd_start("--flavor", "es8", NULL);
    create_t(prefixed);
    stop();
}

/* ---- request framing ---------------------------------------------------- */

Test(searchd, missing_final_newline_is_400)
{
    sd = searchd_start(NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{}", 400);

    cr_assert_str_eq(error_type(r), "illegal_argument_exception");
    cr_assert_str_eq(error_reason(r), "The bulk request must be terminated by a newline [\\n]");
    json_decref(r);
    r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\r\n{}\r\n", 200);
    cr_assert_eq(item_status(r, 0), 201, "CRLF line ends are accepted");
    json_decref(r);
    r = bulk("{\"frob\":{\"_index\":\"t\"}}\n", 400);
    cr_assert_not_null(strstr(error_reason(r), "expected field [create], [delete], [index] or [update]"));
    json_decref(r);
    r = bulk("{\"index\":{\"_id\":\"1\"}}\n{}\n", 400);
    cr_assert_not_null(strstr(error_reason(r), "index is missing"));
    json_decref(r);

    const char *form[] = { "Content-Type: application/x-www-form-urlencoded", NULL };
    struct searchd_resp f;
    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", form, "{}\n", 3, &f), 0);
    cr_assert_eq(f.status, 406, "a body must be JSON or NDJSON");
    searchd_resp_close(&f);
    stop();
}

Test(searchd, index_in_path_is_the_default)
{
    sd = searchd_start(NULL);
    long st;
    json_t *r = searchd_bulk(sd, "/dflt/_bulk", "{\"index\":{\"_id\":\"1\"}}\n{}\n"
                                                "{\"index\":{\"_index\":\"other\",\"_id\":\"1\"}}\n{}\n", &st);

    cr_assert_eq(st, 200);
    cr_assert_str_eq(item_str(r, 0, "_index"), "dflt");
    cr_assert_str_eq(item_str(r, 1, "_index"), "other");
    json_decref(r);
    r = bulk("{\"index\":{\"_index\":\"Upper\",\"_id\":\"1\"}}\n{}\n", 200);
    cr_assert_eq(item_status(r, 0), 400);
    cr_assert_str_eq(item_err(r, 0, "type"), "invalid_index_name_exception");
    json_decref(r);
    stop();
}

static const char three_actions[] =
    "{\"index\":{\"_index\":\"t\",\"_id\":\"1\",\"version\":2,\"version_type\":\"external\"}}\n{}\n"
    "{\"index\":{\"_index\":\"t\",\"_id\":\"1\",\"version\":1,\"version_type\":\"external\"}}\n{}\n"
    "{\"delete\":{\"_index\":\"t\",\"_id\":\"2\"}}\n";

Test(searchd, filter_path_keeps_positions_when_every_item_has_a_field)
{
    sd = searchd_start(NULL);
    long st;
    json_t *r = searchd_bulk(sd, "/_bulk?filter_path=errors,items.*.status,items.*.error",
                             three_actions, &st);

    cr_assert_eq(st, 200);
    cr_assert_eq(json_object_size(r), 2, "only errors and items are left");
    cr_assert_eq(nitems(r), 3, "one entry per action");
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_null(json_object_get(item(r, 0), "_id"));
    cr_assert_eq(item_status(r, 1), 409);
    cr_assert_str_eq(item_err(r, 1, "type"), "version_conflict_engine_exception");
    cr_assert_eq(item_status(r, 2), 404);
    json_decref(r);

    searchd_reset(sd);
    r = searchd_bulk(sd, "/_bulk?filter_path=took,errors,items.*.status,items.*.error.type,"
                         "items.*.error.reason", three_actions, &st);
    cr_assert_eq(nitems(r), 3);
    cr_assert_not_null(json_object_get(r, "took"));
    cr_assert_null(json_object_get(json_object_get(item(r, 1), "error"), "index_uuid"));
    json_decref(r);
    stop();
}

Test(searchd, filter_path_on_errors_alone_drops_successful_items)
{
    sd = searchd_start(NULL);
    long st;
    json_t *r = searchd_bulk(sd, "/_bulk?filter_path=items.*.error", three_actions, &st);

    cr_assert_eq(st, 200);
    cr_assert_eq(nitems(r), 1, "as in ES, items without the field disappear");
    cr_assert_str_eq(item_err(r, 0, "type"), "version_conflict_engine_exception");
    cr_assert_null(json_object_get(r, "errors"));
    json_decref(r);

    searchd_reset(sd);
    r = searchd_bulk(sd, "/_bulk?filter_path=items.*.error",
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{}\n", &st);
    cr_assert_eq(json_object_size(r), 0, "nothing left: {}");
    json_decref(r);
    stop();
}

static char *gzip_text(const char *s, size_t *len)
{
    z_stream z;
    uLong cap = compressBound((uLong)strlen(s)) + 64;
    char *out = malloc(cap);

    memset(&z, 0, sizeof(z));
    cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)s;
    z.avail_in = (uInt)strlen(s);
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *len = z.total_out;
    deflateEnd(&z);
    return out;
}

Test(searchd, gzip_request_and_response)
{
    sd = searchd_start(NULL);
    size_t zl;
    char *z = gzip_text("{\"index\":{\"_index\":\"t\",\"_id\":\"g\"}}\n{\"zip\":true}\n", &zl);
    const char *hdrs[] = { NDJSON_HDR, "Content-Encoding: gzip", "Accept-Encoding: gzip", NULL };
    struct searchd_resp r;

    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", hdrs, z, zl, &r), 0);
    cr_assert_eq(r.status, 200);
    char *ce = searchd_resp_header(&r, "content-encoding");
    cr_assert_str_eq(ce, "gzip");
    free(ce);
    cr_assert_eq(r.len > 2 && (unsigned char)r.body[0] == 0x1f && (unsigned char)r.body[1] == 0x8b,
                 1, "the reply is gzipped");
    searchd_resp_close(&r);
    free(z);

    json_t *d = searchd_dump(sd);
    cr_assert(json_is_true(json_object_get(json_object_get(dump_doc(d, "t", "g"), "source"), "zip")));
    json_decref(d);
    stop();
}

static char *bulk_of_size(size_t min_bytes)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    for (int i = 0; b.len < min_bytes; i++)
        buf_printf(&b, "{\"index\":{\"_index\":\"t\",\"_id\":\"%d\"}}\n{\"pad\":\"%0100d\"}\n", i, i);
    return buf_take(&b);
}

Test(searchd, body_cap_is_413_on_wire_and_decompressed_size)
{
    sd = searchd_start("--max-body", "4k", NULL);
    char *big = bulk_of_size(8192), *small = bulk_of_size(1000);
    long st;
    json_t *r = searchd_bulk(sd, "/_bulk", big, &st);

    cr_assert_eq(st, 413);
    cr_assert_str_eq(error_type(r), "content_too_long_exception");
    cr_assert_eq(json_integer_value(json_object_get(r, "status")), 413);
    json_decref(r);
    r = searchd_bulk(sd, "/_bulk", small, &st);
    cr_assert_eq(st, 200, "the connection survives a 413");
    json_decref(r);

    size_t zl;
    char *z = gzip_text(big, &zl);
    const char *hdrs[] = { NDJSON_HDR, "Content-Encoding: gzip", NULL };
    struct searchd_resp resp;
    cr_assert_lt(zl, 4096);
    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", hdrs, z, zl, &resp), 0);
    cr_assert_eq(resp.status, 413, "the decompressed size counts too");
    searchd_resp_close(&resp);

    cr_assert_eq(searchd_config(sd, "{\"max_body\":100000}"), 200);
    r = searchd_bulk(sd, "/_bulk", big, &st);
    cr_assert_eq(st, 200, "the cap changes at runtime");
    json_decref(r);
    free(z);
    free(big);
    free(small);
    stop();
}

struct upload {
    const char *p;
    size_t left;
};

static size_t read_cb(char *out, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t k = size * n < u->left ? size * n : u->left;

    k = k > 1000 ? 1000 : k; /* many small chunks */
    memcpy(out, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

static size_t sink(char *p, size_t s, size_t n, void *arg)
{
    return buf_append(arg, p, s * n) == 0 ? s * n : 0;
}

Test(searchd, chunked_body_with_expect_continue)
{
    sd = searchd_start(NULL);
    char *body = bulk_of_size(200000), url[128];
    struct upload u = { body, strlen(body) };
    struct buf out;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, NDJSON_HDR);
    long st = 0;

    h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect: 100-continue");
    buf_init(&out, BUF_NOMAX);
    snprintf(url, sizeof(url), "%s/_bulk?filter_path=errors", searchd_url(sd));
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 5000L);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    cr_assert_eq(st, 200);
    cr_assert_str_eq(out.ptr, "{\"errors\":false}");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_close(&out);
    free(body);

    json_t *s = searchd_json(sd, "GET", "/t/_count", NULL, &st);
    cr_assert_gt(json_integer_value(json_object_get(s, "count")), 1000);
    json_decref(s);
    stop();
}

/* ---- read endpoints ------------------------------------------------------ */

Test(searchd, get_count_search_and_index_endpoints)
{
    sd = searchd_start(NULL);
    long st;
    json_t *r = bulk("{\"index\":{\"_index\":\"s\",\"_id\":\"b\"}}\n{\"n\":2}\n"
                     "{\"index\":{\"_index\":\"s\",\"_id\":\"a\"}}\n{\"n\":1}\n"
                     "{\"index\":{\"_index\":\"s\",\"_id\":\"c\"}}\n{\"n\":3}\n"
                     "{\"delete\":{\"_index\":\"s\",\"_id\":\"c\"}}\n",
                     200);
    json_decref(r);

    r = searchd_json(sd, "GET", "/s/_doc/a", NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert(json_is_true(json_object_get(r, "found")));
    cr_assert_eq(json_integer_value(json_object_get(r, "_version")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "_source"), "n")), 1);
    json_decref(r);

    r = searchd_json(sd, "GET", "/s/_count", NULL, &st);
    cr_assert_eq(json_integer_value(json_object_get(r, "count")), 2);
    json_decref(r);

    r = searchd_json(sd, "POST", "/s/_search", "{\"query\":{\"match_all\":{}},\"size\":1}", &st);
    cr_assert_eq(st, 200);
    json_t *hits = json_object_get(r, "hits");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(hits, "total"), "value")), 2);
    cr_assert_eq(json_array_size(json_object_get(hits, "hits")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(hits, "hits"), 0), "_id")), "a");
    json_decref(r);

    r = searchd_json(sd, "GET", "/nope/_search", NULL, &st);
    cr_assert_eq(st, 404);
    cr_assert_str_eq(error_type(r), "index_not_found_exception");
    json_decref(r);

    struct searchd_resp h;
    cr_assert_eq(searchd_request(sd, "HEAD", "/s", NULL, NULL, 0, &h), 0);
    cr_assert_eq(h.status, 200);
    searchd_resp_close(&h);
    cr_assert_eq(searchd_request(sd, "HEAD", "/fresh", NULL, NULL, 0, &h), 0);
    cr_assert_eq(h.status, 404);
    searchd_resp_close(&h);
    r = searchd_json(sd, "PUT", "/fresh", "{}", &st);
    cr_assert_eq(st, 200);
    cr_assert(json_is_true(json_object_get(r, "acknowledged")));
    json_decref(r);
    r = searchd_json(sd, "PUT", "/fresh", "{}", &st);
    cr_assert_eq(st, 400);
    cr_assert_str_eq(error_type(r), "resource_already_exists_exception");
    json_decref(r);

    r = searchd_json(sd, "GET", "/", NULL, &st);
    cr_assert_eq(st, 200);
    cr_assert_not_null(json_object_get(json_object_get(r, "version"), "number"));
    json_decref(r);
    stop();
}

/* ---- authentication ------------------------------------------------------ */

Test(searchd, basic_auth)
{
    sd = searchd_start("--auth", "basic", "--user", "elastic", "--password", "s3cret", NULL);
    const char *good[] = { "Authorization: Basic ZWxhc3RpYzpzM2NyZXQ=", NULL };
    const char *bad[] = { "Authorization: Basic ZWxhc3RpYzp3cm9uZw==", NULL }; /* elastic:wrong */
    struct searchd_resp r;

    cr_assert_eq(searchd_request(sd, "GET", "/", good, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    searchd_resp_close(&r);
    cr_assert_eq(searchd_request(sd, "GET", "/", bad, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    char *www = searchd_resp_header(&r, "www-authenticate");
    cr_assert_not_null(www);
    cr_assert_not_null(strstr(www, "Basic realm=\"security\""));
    cr_assert_not_null(strstr(r.body, "unable to authenticate user [elastic]"));
    cr_assert_null(strstr(r.body, "wrong"), "never echo the password");
    free(www);
    searchd_resp_close(&r);
    cr_assert_eq(searchd_request(sd, "GET", "/", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    cr_assert_not_null(strstr(r.body, "missing authentication credentials"));
    searchd_resp_close(&r);

    json_t *s = searchd_stats(sd); /* the control API needs no auth */
    cr_assert_eq(json_integer_value(json_object_get(s, "auth_failures")), 2);
    json_decref(s);
    stop();
}

Test(searchd, api_key_auth)
{
    /* "id1:key1" raw on the command line; clients send base64 of it */
    sd = searchd_start("--auth", "apikey", "--api-key", "id1:key1", NULL);
    const char *good[] = { "Authorization: ApiKey aWQxOmtleTE=", NULL };
    const char *bad[] = { "Authorization: ApiKey aWQxOmtleTI=", NULL };
    struct searchd_resp r;

    cr_assert_eq(searchd_request(sd, "GET", "/", good, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    searchd_resp_close(&r);
    cr_assert_eq(searchd_request(sd, "GET", "/", bad, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 401);
    searchd_resp_close(&r);

    cr_assert_eq(searchd_config(sd, "{\"api_key\":\"aWQxOmtleTI=\"}"), 200);
    cr_assert_eq(searchd_request(sd, "GET", "/", bad, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "the encoded form is accepted as configuration too");
    searchd_resp_close(&r);
    stop();
}

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static time_t clock_skew; /* added to the signing time */

/* Signs and sends a POST of body to path; sent_body lets a test tamper. */
static long signed_post(const char *service, const char *secret, const char *token,
                        const char *content_sha, const char *path, const char *body,
                        const char *sent_body, char **reply)
{
    char host[64], amz_date[17], sha_hdr[128], date_hdr[64], authz[1024], token_hdr[1024];
    struct tm tm;
    time_t now = time(NULL) + clock_skew;
    struct sigv4_header hs[5];
    size_t nh = 0;
    const char *send[8];
    size_t ns = 0;
    const char *q = strchr(path, '?');
    char p[512];

    snprintf(host, sizeof(host), "127.0.0.1:%d", searchd_port(sd));
    gmtime_r(&now, &tm);
    strftime(amz_date, sizeof(amz_date), "%Y%m%dT%H%M%SZ", &tm);
    snprintf(p, sizeof(p), "%.*s", q ? (int)(q - path) : (int)strlen(path), path);
    hs[nh++] = (struct sigv4_header){ "host", host };
    hs[nh++] = (struct sigv4_header){ "x-amz-date", amz_date };
    hs[nh++] = (struct sigv4_header){ "content-type", "application/x-ndjson" };
    if (content_sha)
        hs[nh++] = (struct sigv4_header){ "x-amz-content-sha256", content_sha };
    if (token)
        hs[nh++] = (struct sigv4_header){ "x-amz-security-token", token };
    struct sigv4_input in = { .method = "POST", .path = p, .query = q ? q + 1 : NULL,
                              .headers = hs, .nheaders = nh, .body = body,
                              .body_len = strlen(body), .region = "eu-west-1",
                              .service = service, .now = now, .normalize_path = true };
    struct sigv4_key key = { AKID, secret, NULL };
    struct sigv4_output out;
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    snprintf(authz, sizeof(authz), "Authorization: %s", out.authorization);
    snprintf(date_hdr, sizeof(date_hdr), "X-Amz-Date: %s", amz_date);
    send[ns++] = authz;
    send[ns++] = date_hdr;
    send[ns++] = NDJSON_HDR;
    if (content_sha) {
        snprintf(sha_hdr, sizeof(sha_hdr), "x-amz-content-sha256: %s", content_sha);
        send[ns++] = sha_hdr;
    }
    if (token) {
        snprintf(token_hdr, sizeof(token_hdr), "X-Amz-Security-Token: %s", token);
        send[ns++] = token_hdr;
    }
    send[ns] = NULL;
    sigv4_output_close(&out);

    struct searchd_resp r;
    cr_assert_eq(searchd_request(sd, "POST", path, send, sent_body, strlen(sent_body), &r), 0);
    long st = r.status;
    if (reply)
        *reply = strdup(r.body);
    searchd_resp_close(&r);
    return st;
}

static const char one_doc[] = "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"a\":1}\n";
static const char one_doc_tampered[] = "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{\"a\":2}\n";

Test(searchd, sigv4_accepts_good_and_rejects_tampered_or_wrong_secret)
{
    sd = searchd_start("--auth", "sigv4", "--access-key", AKID, "--secret-key", SECRET,
                       "--region", "eu-west-1", "--service", "es", NULL);
    char *reply = NULL;

    cr_assert_eq(signed_post("es", SECRET, NULL, NULL, "/_bulk?filter_path=errors", one_doc,
                             one_doc, &reply), 200, "%s", reply);
    free(reply);
    cr_assert_eq(signed_post("es", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc_tampered,
                             &reply), 403);
    cr_assert_not_null(strstr(reply, "The request signature we calculated does not match"));
    free(reply);
    cr_assert_eq(signed_post("es", "not-the-secret", NULL, NULL, "/_bulk", one_doc, one_doc,
                             NULL), 403);
    cr_assert_eq(signed_post("aoss", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc, &reply),
                 403, "wrong service scope");
    cr_assert_not_null(strstr(reply, "Credential should be scoped to correct service"));
    free(reply);

    /* credentials rotate at runtime, with a session token */
    cr_assert_eq(searchd_config(sd, "{\"secret_key\":\"new-secret\",\"session_token\":\"tok\"}"),
                 200);
    cr_assert_eq(signed_post("es", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc, NULL), 403);
    cr_assert_eq(signed_post("es", "new-secret", NULL, NULL, "/_bulk", one_doc, one_doc, NULL),
                 403, "the token is required once configured");
    cr_assert_eq(signed_post("es", "new-secret", "tok", NULL, "/_bulk", one_doc, one_doc, NULL),
                 200);

    json_t *d = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(dump_doc(d, "t", "1"), "version")), 2);
    json_decref(d);
    stop();
}

Test(searchd, sigv4_rejects_a_date_off_by_more_than_15_minutes)
{
    sd = searchd_start("--auth", "sigv4", "--access-key", AKID, "--secret-key", SECRET,
                       "--region", "eu-west-1", NULL);
    char *reply = NULL;

    clock_skew = -16 * 60;
    cr_assert_eq(signed_post("es", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc, &reply), 403);
    cr_assert_not_null(strstr(reply, "Signature expired"), "%s", reply);
    free(reply);
    clock_skew = -14 * 60;
    cr_assert_eq(signed_post("es", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc, NULL), 200);
    clock_skew = 0;
    stop();
}

Test(searchd, aoss_requires_the_content_hash)
{
    sd = searchd_start("--auth", "sigv4", "--access-key", AKID, "--secret-key", SECRET,
                       "--region", "eu-west-1", "--service", "aoss", NULL);
    char hash[65], bad[65];

    sigv4_sha256_hex(one_doc, strlen(one_doc), hash);
    sigv4_sha256_hex(one_doc_tampered, strlen(one_doc_tampered), bad);
    cr_assert_eq(signed_post("aoss", SECRET, NULL, NULL, "/_bulk", one_doc, one_doc, NULL), 403,
                 "no x-amz-content-sha256");
    cr_assert_eq(signed_post("aoss", SECRET, NULL, hash, "/_bulk", one_doc, one_doc, NULL), 200);
    cr_assert_eq(signed_post("aoss", SECRET, NULL, "UNSIGNED-PAYLOAD", "/_bulk", one_doc,
                             one_doc, NULL), 200);
    cr_assert_eq(signed_post("aoss", SECRET, NULL, bad, "/_bulk", one_doc, one_doc, NULL), 403,
                 "the hash must match the body received");
    cr_assert_eq(signed_post("aoss", SECRET, NULL, hash, "/_bulk", one_doc, one_doc_tampered,
                             NULL), 403);
    stop();
}

/* ---- faults ---------------------------------------------------------------- */

Test(searchd, request_faults_are_consumed_by_count)
{
    sd = searchd_start(NULL);
    long st;

    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"count\":2,\"status\":429},"
                                    "{\"match\":\"bulk\",\"count\":1,\"status\":503}]"), 200);
    json_t *r = searchd_json(sd, "GET", "/", NULL, &st);
    cr_assert_eq(st, 200, "a non-bulk request consumes no bulk rule");
    json_decref(r);
    r = searchd_bulk(sd, "/_bulk", one_doc, &st);
    cr_assert_eq(st, 429);
    cr_assert_str_eq(error_type(r), "es_rejected_execution_exception");
    json_decref(r);
    r = searchd_bulk(sd, "/_bulk", one_doc, &st);
    cr_assert_eq(st, 429);
    json_decref(r);
    r = searchd_bulk(sd, "/_bulk", one_doc, &st);
    cr_assert_eq(st, 503);
    json_decref(r);
    r = searchd_bulk(sd, "/_bulk", one_doc, &st);
    cr_assert_eq(st, 200);
    json_decref(r);

    json_t *d = searchd_dump(sd);
    cr_assert_eq(json_integer_value(json_object_get(dump_doc(d, "t", "1"), "version")), 1,
                 "rejected requests stored nothing");
    json_decref(d);
    stop();
}

Test(searchd, item_faults_fail_chosen_items_only)
{
    sd = searchd_start(NULL);
    const char *four = "{\"index\":{\"_index\":\"t\",\"_id\":\"0\"}}\n{}\n"
                       "{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{}\n"
                       "{\"index\":{\"_index\":\"t\",\"_id\":\"2\"}}\n{}\n"
                       "{\"delete\":{\"_index\":\"t\",\"_id\":\"3\"}}\n";

    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"item_status\":429,\"items\":\"odd\"},"
                                    "{\"match\":\"bulk\",\"item_status\":503,\"items\":1}]"), 200);
    json_t *r = bulk(four, 200);
    cr_assert(json_is_true(json_object_get(r, "errors")));
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 429);
    cr_assert_str_eq(item_err(r, 1, "type"), "es_rejected_execution_exception");
    cr_assert_eq(item_status(r, 2), 201);
    cr_assert_eq(item_status(r, 3), 429);
    json_decref(r);
    r = bulk(four, 200);
    cr_assert_eq(item_status(r, 0), 503);
    cr_assert_eq(item_status(r, 1), 201, "item 1 was rejected before, so it is new now");
    cr_assert_eq(item_status(r, 2), 200);
    json_decref(r);
    r = bulk(four, 200);
    cr_assert(json_is_false(json_object_get(r, "errors")), "no rule left");
    json_decref(r);
    stop();
}

/* A rule with "ids" fails only the items with one of those _id; the others
 * are executed (and stored); with "items" both must hold. */
Test(searchd, item_faults_can_choose_items_by_id)
{
    sd = searchd_start(NULL);
    const char *four = "{\"index\":{\"_index\":\"t\",\"_id\":\"k0000\"}}\n{}\n"
                       "{\"index\":{\"_index\":\"t\",\"_id\":\"k0001\"}}\n{}\n"
                       "{\"delete\":{\"_index\":\"t\",\"_id\":\"k0002\"}}\n"
                       "{\"create\":{\"_index\":\"t\",\"_id\":\"k0003\"}}\n{}\n";

    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"item_status\":429,"
                                    "\"ids\":[\"k0001\",\"k0002\",\"nope\"]},"
                                    "{\"match\":\"bulk\",\"item_status\":503,"
                                    "\"ids\":[\"k0000\",\"k0003\"],\"items\":\"odd\"}]"), 200);
    json_t *r = bulk(four, 200);
    cr_assert_eq(item_status(r, 0), 201);
    cr_assert_eq(item_status(r, 1), 429);
    cr_assert_str_eq(item_err(r, 1, "type"), "es_rejected_execution_exception");
    cr_assert_eq(item_status(r, 2), 429);
    cr_assert_str_eq(item_str(r, 2, "_id"), "k0002");
    cr_assert_eq(item_status(r, 3), 201);
    json_decref(r);
    r = bulk(four, 200);
    cr_assert_eq(item_status(r, 0), 200, "k0000 is listed but at an even position");
    cr_assert_eq(item_status(r, 1), 201, "not rejected this time, so new now");
    cr_assert_eq(item_status(r, 3), 503);
    json_decref(r);
    json_t *d = searchd_dump(sd);
    cr_assert_not_null(dump_doc(d, "t", "k0000"));
    cr_assert_eq(json_integer_value(json_object_get(dump_doc(d, "t", "k0000"), "version")), 2);
    json_decref(d);
    cr_assert_eq(searchd_faults(sd, "{\"ids\":[\"k0000\"]}"), 400, "ids need item_status");
    cr_assert_eq(searchd_faults(sd, "{\"item_status\":429,\"ids\":\"k0000\"}"), 400);
    stop();
}

Test(searchd, reset_drop_and_delay_actions)
{
    sd = searchd_start(NULL);
    struct searchd_resp r;
    const char *h[] = { NDJSON_HDR, NULL };

    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"action\":\"reset\"},"
                                    "{\"match\":\"bulk\",\"action\":\"drop\"},"
                                    "{\"match\":\"bulk\",\"delay_ms\":300}]"), 200);
    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", h, one_doc, strlen(one_doc), &r), -EIO);
    cr_assert(r.curl_code == CURLE_PARTIAL_FILE || r.curl_code == CURLE_RECV_ERROR,
              "reset mid-reply, got curl code %d", r.curl_code);
    searchd_resp_close(&r);
    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", h, one_doc, strlen(one_doc), &r), -EIO);
    cr_assert_eq(r.curl_code, CURLE_GOT_NOTHING, "dropped without a reply");
    searchd_resp_close(&r);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(searchd_request(sd, "POST", "/_bulk", h, one_doc, strlen(one_doc), &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(r.status, 200);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    cr_assert_geq(ms, 290, "the reply was delayed (%ld ms)", ms);
    searchd_resp_close(&r);
    stop();
}

Test(searchd, down_refuses_connections_for_a_while)
{
    sd = searchd_start(NULL);
    struct searchd_resp r;

    cr_assert_eq(searchd_faults(sd, "[{\"down_ms\":400}]"), 200);
    cr_assert_eq(searchd_request(sd, "GET", "/", NULL, NULL, 0, &r), -EIO);
    searchd_resp_close(&r);
    pause_ms(450); /* the outage's length is what is tested */
    cr_assert_eq(searchd_request(sd, "GET", "/", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    searchd_resp_close(&r);
    stop();
}

Test(searchd, reset_clears_data_faults_and_stats)
{
    sd = searchd_start(NULL);
    json_t *r = bulk(one_doc, 200), *s, *d;

    json_decref(r);
    cr_assert_eq(searchd_faults(sd, "{\"status\":500,\"count\":-1}"), 200);
    cr_assert_eq(searchd_reset(sd), 200);
    r = bulk(one_doc, 200);
    cr_assert_eq(item_status(r, 0), 201, "the doc was forgotten and the fault removed");
    json_decref(r);
    d = searchd_dump(sd);
    cr_assert_eq(json_object_size(d), 1);
    json_decref(d);
    s = searchd_stats(sd);
    cr_assert_eq(json_integer_value(json_object_get(s, "bulk_requests")), 1);
    stop();
    json_decref(s);
}

Test(searchd, stats_count_requests_actions_and_items)
{
    sd = searchd_start("--discard", NULL);
    json_t *r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"1\"}}\n{}\n"
                     "{\"index\":{\"_index\":\"t\",\"_id\":\"1\",\"version\":1,\"version_type\":\"external\"}}\n{}\n"
                     "{\"delete\":{\"_index\":\"t\",\"_id\":\"2\"}}\n",
                     200);
    json_decref(r);
    long st;
    json_decref(searchd_bulk(sd, "/_bulk", "x", &st));

    json_t *s = searchd_stats(sd);
    json_t *req = json_object_get(json_object_get(s, "requests"), "/_bulk");
    cr_assert_eq(json_integer_value(json_object_get(req, "200")), 1);
    cr_assert_eq(json_integer_value(json_object_get(req, "400")), 1);
    cr_assert_eq(json_integer_value(json_object_get(s, "bulk_requests")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(s, "actions"), "index")), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(s, "actions"), "delete")), 1);
    json_t *items = json_object_get(s, "items");
    cr_assert_eq(json_integer_value(json_object_get(items, "201")), 1);
    cr_assert_eq(json_integer_value(json_object_get(items, "409")), 1,
                 "--discard still keeps versions");
    cr_assert_eq(json_integer_value(json_object_get(items, "404")), 1);
    cr_assert_gt(json_integer_value(json_object_get(s, "bytes_received")), 100);
    json_decref(s);

    json_t *d = searchd_dump(sd);
    cr_assert(json_is_null(json_object_get(dump_doc(d, "t", "1"), "source")),
              "--discard keeps no sources");
    json_decref(d);
    stop();
}

/* The writes of discard_keeps_versions_tombstones_and_digests: external
 * versions as ddb2es sends them (version_type external: a version not above
 * the stored one is a 409, ES's VersionType.EXTERNAL#isVersionConflictForWrites;
 * a delete leaves a tombstone holding its version, even for a missing
 * document, InternalEngine#planDeletionAsPrimary, so an older index after it
 * is a 409 within index.gc_deletes). */
#define VERSIONED_WRITES                                                                    \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external\"}}\n" \
    "{\"n\":1}\n"                                                                           \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":4,\"version_type\":\"external\"}}\n" \
    "{\"n\":2}\n"                                                                           \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"a\",\"version\":5,\"version_type\":\"external\"}}\n" \
    "{\"n\":3}\n"                                                                           \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"b\",\"version\":3,\"version_type\":\"external\"}}\n" \
    "{\"s\":\"b\"}\n"                                                                       \
    "{\"delete\":{\"_index\":\"t\",\"_id\":\"b\",\"version\":7,\"version_type\":\"external\"}}\n" \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"b\",\"version\":6,\"version_type\":\"external\"}}\n" \
    "{\"s\":\"b6\"}\n"                                                                      \
    "{\"delete\":{\"_index\":\"t\",\"_id\":\"c\",\"version\":2,\"version_type\":\"external\"}}\n" \
    "{\"index\":{\"_index\":\"t\",\"_id\":\"c\",\"version\":1,\"version_type\":\"external\"}}\n" \
    "{\"s\":\"c1\"}\n"

/* GET /_double/digests, as text. */
static char *digests(void)
{
    struct searchd_resp g;
    char *text;

    cr_assert_eq(searchd_request(sd, "GET", "/_double/digests", NULL, NULL, 0, &g), 0);
    cr_assert_eq(g.status, 200);
    text = strdup(g.body);
    searchd_resp_close(&g);
    return text;
}

/* --discard is the benchmarks' sink: it answers the versioned writes as the
 * engines do and keeps what their final state needs (version, tombstone,
 * the SHA-256 of each source), which is what the sink keeping sources
 * shows too. */
Test(searchd, discard_keeps_versions_tombstones_and_digests)
{
    static const long want[] = { 201, 409, 409, 201, 200, 409, 404, 409 };
    unsigned char md[SHA256_DIGEST_LENGTH];
    char expect[512], hex[2 * SHA256_DIGEST_LENGTH + 1], *kept, *discarded;

    SHA256((const unsigned char *)"{\"n\":1}", 7, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(expect, sizeof(expect),
             "{\"index\":\"t\",\"id\":\"a\",\"version\":5,\"sha256\":\"%s\"}\n"
             "{\"index\":\"t\",\"id\":\"b\",\"version\":7,\"deleted\":true}\n"
             "{\"index\":\"t\",\"id\":\"c\",\"version\":2,\"deleted\":true}\n",
             hex);

    sd = searchd_start("--discard", NULL);
    json_t *r = bulk(VERSIONED_WRITES, 200);
    cr_assert_eq(nitems(r), 8);
    for (size_t i = 0; i < 8; i++)
        cr_assert_eq(item_status(r, i), want[i], "item %zu: %ld, not %ld", i, item_status(r, i),
                     want[i]);
    cr_assert_str_eq(item_err(r, 5, "type"), "version_conflict_engine_exception",
                     "the tombstone's version refuses the older index");
    json_decref(r);
    discarded = digests();
    cr_assert_str_eq(discarded, expect);
    stop();

    /* Any id and source DynamoDB allows: NUL, an accent, a character beyond
     * the BMP, in the id and in the source; the digest is of the bytes as
     * sent, the id given back byte for byte. */
    {
        static const char id[] = "x\0\xc3\xa9\xf0\x9f\x98\x80";
        static const char src[] = "{\"s\":\"\\u0000\xc3\xa9\xf0\x9f\x98\x80\"}";
        char *text, *line;
        json_t *d;

        SHA256((const unsigned char *)src, sizeof(src) - 1, md);
        for (size_t i = 0; i < sizeof(md); i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        sd = searchd_start("--discard", NULL);
        r = bulk("{\"index\":{\"_index\":\"t\",\"_id\":\"x\\u0000\xc3\xa9\xf0\x9f\x98\x80\","
                 "\"version\":9,\"version_type\":\"external\"}}\n"
                 "{\"s\":\"\\u0000\xc3\xa9\xf0\x9f\x98\x80\"}\n", 200);
        cr_assert_eq(item_status(r, 0), 201);
        json_decref(r);
        text = digests();
        line = strtok(text, "\n");
        d = json_loads(line, JSON_ALLOW_NUL, NULL);
        cr_assert_not_null(d, "a digest line that is not JSON: %s", line);
        cr_assert_eq(json_string_length(json_object_get(d, "id")), sizeof(id) - 1);
        cr_assert(memcmp(json_string_value(json_object_get(d, "id")), id, sizeof(id) - 1) == 0,
                  "the id comes back byte for byte");
        cr_assert_str_eq(json_string_value(json_object_get(d, "sha256")), hex,
                         "the digest is of the source's bytes as sent");
        cr_assert_null(strtok(NULL, "\n"), "one document");
        json_decref(d);
        free(text);
        stop();
    }

    sd = searchd_start(NULL);
    json_decref(bulk(VERSIONED_WRITES, 200));
    kept = digests();
    cr_assert_str_eq(kept, discarded, "the digests of kept sources are the same");
    stop();
    free(kept);
    free(discarded);
}

Test(searchd, keep_alive_reuses_one_connection)
{
    sd = searchd_start(NULL);
    for (int i = 0; i < 5; i++)
        json_decref(bulk(one_doc, 200));
    json_t *s = searchd_stats(sd);
    cr_assert_eq(json_integer_value(json_object_get(s, "connections")), 1);
    json_decref(s);
    stop();
}

/* ---- _mget and scroll (scroll.c) ------------------------------------------ */

Test(searchd, mget_gives_each_document_in_the_order_asked)
{
    json_t *r, *docs;
    long status = 0;

    sd = searchd_start(NULL);
    json_decref(bulk("{\"index\":{\"_index\":\"m\",\"_id\":\"a\",\"version\":7,"
                     "\"version_type\":\"external\"}}\n{\"n\":1.50}\n"
                     "{\"index\":{\"_index\":\"m\",\"_id\":\"b\\u0000c\"}}\n{\"s\":\"x\"}\n",
                     200));
    r = searchd_json(sd, "POST", "/m/_mget", "{\"ids\":[\"b\\u0000c\",\"zz\",\"a\"]}", &status);
    cr_assert_eq(status, 200);
    docs = json_object_get(r, "docs");
    cr_assert_eq(json_array_size(docs), 3u);
    cr_assert_eq(json_string_length(json_object_get(json_array_get(docs, 0), "_id")), 3u,
                 "an id holding NUL is found whole");
    cr_assert(json_is_true(json_object_get(json_array_get(docs, 0), "found")));
    cr_assert(json_is_false(json_object_get(json_array_get(docs, 1), "found")));
    cr_assert_null(json_object_get(json_array_get(docs, 1), "_version"), "found:false alone");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(docs, 2), "_version")), 7);
    cr_assert_not_null(json_object_get(json_array_get(docs, 2), "_seq_no"));
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(docs, 2), "_primary_term")), 1);
    json_decref(r);
    /* _source is the text as sent: 1.50 stays 1.50. */
    {
        struct searchd_resp resp;
        static const char *const hdr[] = { "Content-Type: application/json", NULL };
        static const char body[] = "{\"docs\":[{\"_index\":\"m\",\"_id\":\"a\"}]}";

        cr_assert_eq(searchd_request(sd, "POST", "/_mget", hdr, body, sizeof(body) - 1, &resp),
                     0);
        cr_assert_eq(resp.status, 200);
        cr_assert_not_null(strstr(resp.body, "\"_source\":{\"n\":1.50}"), "%s", resp.body);
        searchd_resp_close(&resp);
    }
    r = searchd_json(sd, "POST", "/m/_mget", "{\"ids\":[\"a\"],\"_source\":false}", &status);
    cr_assert_null(json_object_get(json_array_get(json_object_get(r, "docs"), 0), "_source"));
    json_decref(r);
    /* A missing index fails its documents only. */
    r = searchd_json(sd, "POST", "/nope/_mget", "{\"ids\":[\"a\"]}", &status);
    cr_assert_eq(status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
                         json_array_get(json_object_get(r, "docs"), 0), "error"), "type")),
                     "index_not_found_exception");
    json_decref(r);
    r = searchd_json(sd, "POST", "/m/_mget", "{\"ids\":[]}", &status);
    cr_assert_eq(status, 400);
    cr_assert_str_eq(error_type(r), "action_request_validation_exception");
    cr_assert_str_eq(error_reason(r), "Validation Failed: 1: no documents to get;");
    json_decref(r);
    r = searchd_json(sd, "POST", "/_mget", "{\"ids\":[\"a\"]}", &status);
    cr_assert_eq(status, 400, "ids need an index");
    json_decref(r);
    stop();
}

Test(searchd, mget_through_an_alias)
{
    json_t *r;
    long status = 0;

    sd = searchd_start(NULL);
    json_decref(bulk("{\"index\":{\"_index\":\"real\",\"_id\":\"a\"}}\n{\"n\":1}\n", 200));
    json_decref(searchd_json(sd, "POST", "/_aliases",
                             "{\"actions\":[{\"add\":{\"index\":\"real\",\"alias\":\"al\"}}]}",
                             &status));
    cr_assert_eq(status, 200);
    r = searchd_json(sd, "POST", "/al/_mget", "{\"ids\":[\"a\"]}", &status);
    cr_assert_eq(status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(r, "docs"), 0), "_index")),
                     "real", "the alias's index answers");
    cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(r, "docs"), 0), "found")));
    json_decref(r);
    stop();
}

Test(searchd, scroll_sees_the_documents_of_its_start_only)
{
    json_t *r, *hits;
    long status = 0;
    char body[512];
    char *sid;

    sd = searchd_start(NULL);
    json_decref(bulk("{\"index\":{\"_index\":\"s\",\"_id\":\"a\"}}\n{\"n\":1}\n"
                     "{\"index\":{\"_index\":\"s\",\"_id\":\"b\"}}\n{\"n\":2}\n"
                     "{\"index\":{\"_index\":\"s\",\"_id\":\"c\"}}\n{\"n\":3}\n", 200));
    r = searchd_json(sd, "POST", "/s/_search?scroll=1m",
                     "{\"size\":2,\"sort\":[\"_doc\"],\"version\":true,\"_source\":false}",
                     &status);
    cr_assert_eq(status, 200);
    hits = json_object_get(json_object_get(r, "hits"), "hits");
    cr_assert_eq(json_array_size(hits), 2u);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(hits, 0), "_version")), 1);
    cr_assert_null(json_object_get(json_array_get(hits, 0), "_source"));
    cr_assert(json_is_array(json_object_get(json_array_get(hits, 0), "sort")));
    cr_assert(json_is_null(json_object_get(json_array_get(hits, 0), "_score")));
    sid = strdup(json_string_value(json_object_get(r, "_scroll_id")));
    json_decref(r);
    /* Written and deleted after the start: not seen by the scroll. */
    json_decref(bulk("{\"index\":{\"_index\":\"s\",\"_id\":\"d\"}}\n{\"n\":4}\n"
                     "{\"delete\":{\"_index\":\"s\",\"_id\":\"c\"}}\n", 200));
    snprintf(body, sizeof(body), "{\"scroll\":\"1m\",\"scroll_id\":\"%s\"}", sid);
    r = searchd_json(sd, "POST", "/_search/scroll", body, &status);
    cr_assert_eq(status, 200);
    hits = json_object_get(json_object_get(r, "hits"), "hits");
    cr_assert_eq(json_array_size(hits), 1u);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hits, 0), "_id")), "c",
                     "the deleted document is still in the view");
    json_decref(r);
    r = searchd_json(sd, "POST", "/_search/scroll", body, &status);
    cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "hits"), "hits")), 0u,
                 "then an empty page");
    json_decref(r);
    snprintf(body, sizeof(body), "{\"scroll_id\":[\"%s\"]}", sid);
    r = searchd_json(sd, "DELETE", "/_search/scroll", body, &status);
    cr_assert_eq(status, 200);
    cr_assert_eq(json_integer_value(json_object_get(r, "num_freed")), 1);
    json_decref(r);
    r = searchd_json(sd, "DELETE", "/_search/scroll", body, &status);
    cr_assert_eq(status, 404, "nothing left to free");
    cr_assert_eq(json_integer_value(json_object_get(r, "num_freed")), 0);
    json_decref(r);
    snprintf(body, sizeof(body), "{\"scroll\":\"1m\",\"scroll_id\":\"%s\"}", sid);
    r = searchd_json(sd, "POST", "/_search/scroll", body, &status);
    cr_assert_eq(status, 404, "a freed scroll is gone");
    cr_assert_str_eq(error_type(r), "search_phase_execution_exception");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
                         json_object_get(r, "error"), "root_cause"), 0), "type")),
                     "search_context_missing_exception");
    json_decref(r);
    free(sid);
    stop();
}

Test(searchd, scroll_expires_and_refuses_what_the_engines_refuse)
{
    json_t *r;
    long status = 0;
    char body[512];

    sd = searchd_start(NULL);
    json_decref(bulk("{\"index\":{\"_index\":\"s\",\"_id\":\"a\"}}\n{\"n\":1}\n", 200));
    r = searchd_json(sd, "POST", "/s/_search?scroll=300ms", "{\"size\":1}", &status);
    cr_assert_eq(status, 200);
    snprintf(body, sizeof(body), "{\"scroll_id\":\"%s\"}",
             json_string_value(json_object_get(r, "_scroll_id")));
    json_decref(r);
    pause_ms(400);
    r = searchd_json(sd, "POST", "/_search/scroll", body, &status);
    cr_assert_eq(status, 404, "expired");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
                         json_object_get(r, "error"), "caused_by"), "type")),
                     "search_context_missing_exception");
    json_decref(r);
    r = searchd_json(sd, "POST", "/_search/scroll", "{\"scroll_id\":\"bogus\"}", &status);
    cr_assert_eq(status, 400);
    cr_assert_str_eq(error_reason(r), "Cannot parse scroll id");
    json_decref(r);
    r = searchd_json(sd, "POST", "/s/_search?scroll=60", "{}", &status);
    cr_assert_eq(status, 400, "a keep-alive needs its unit");
    json_decref(r);
    r = searchd_json(sd, "POST", "/s/_search?scroll=1m&from=1", NULL, &status);
    cr_assert_eq(status, 400, "no from in a scroll");
    json_decref(r);
    r = searchd_json(sd, "POST", "/nope/_search?scroll=1m", "{}", &status);
    cr_assert_eq(status, 404);
    cr_assert_str_eq(error_type(r), "index_not_found_exception");
    json_decref(r);
    stop();
}
