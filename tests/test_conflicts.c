/* Type conflicts: values the index's mapping cannot take move to the side
 * object ([table] type_conflicts = side; indexer/conflicts.h), or the
 * document is dead-lettered (dlq).  The pure parts (the engines' error
 * texts, the shaping rule) and the daemon end to end, on DynamoDB Local and
 * both flavours of the search double. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "indexer/conflicts.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(conflicts, .timeout = 10);
TestSuite(conflicts_e2e, .timeout = 60);

/* ---- the engines' errors ---------------------------------------------------- */

struct parsed {
    bool ok;
    char path[128], type[64];
};

static struct parsed parse(const char *etype, const char *reason)
{
    struct parsed p;

    memset(&p, 0, sizeof(p));
    p.ok = conflicts_parse_error(etype, reason, p.path, sizeof(p.path), p.type, sizeof(p.type));
    return p;
}

/* OpenSearch 2 (and Elasticsearch 7): mapper_parsing_exception, no location.
 * Texts: FieldMapper#parse ("failed to parse field [..] of type [..] in
 * document with id '..'. Preview of field's value: '..'"),
 * DocumentParser#parseObjectOrNested (object mapping for ...),
 * DocumentParser#getDynamicParentMapper ("Could not dynamically add mapping
 * for field [..]. Existing mapping for [..] must be of type object but found
 * [..]."), ParametrizedFieldMapper#merge ("mapper [..] cannot be changed
 * from type [..] to [..]", an illegal_argument_exception), all in
 * opensearch-project/OpenSearch server/src/main/java/org/opensearch/index/
 * mapper/; the same texts as the double prints them (ENGINE-RULES.md 3). */
Test(conflicts, opensearch_error_texts_give_the_path_and_its_type)
{
    struct parsed p;

    p = parse("mapper_parsing_exception", "failed to parse field [num] of type [long] in document "
              "with id 'b'. Preview of field's value: 'five'; caused by "
              "illegal_argument_exception: For input string: \"five\"");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "num");
    cr_expect_str_eq(p.type, "long");
    p = parse("mapper_parsing_exception", "failed to parse field [m.inner] of type [long] in "
              "document with id 'f'. Preview of field's value: 'seven'");
    cr_expect_str_eq(p.path, "m.inner");
    p = parse("mapper_parsing_exception", "failed to parse field [st] of type [text] in document "
              "with id 'c'. Preview of field's value: '{a=1}'");
    cr_expect_str_eq(p.type, "text");
    p = parse("mapper_parsing_exception", "object mapping for [obj] tried to parse field [obj] as "
              "object, but found a concrete value");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "obj");
    cr_expect_str_eq(p.type, "object");
    p = parse("mapper_parsing_exception", "Could not dynamically add mapping for field [num.x]. "
              "Existing mapping for [num] must be of type object but found [long].");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "num");
    cr_expect_str_eq(p.type, "long");
    p = parse("illegal_argument_exception", "mapper [new] cannot be changed from type [text] to "
              "[long]");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "new");
    cr_expect_str_eq(p.type, "text");
    p = parse("illegal_argument_exception", "can't merge a non object mapping [a] with an object "
              "mapping");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "a");
    cr_expect_str_eq(p.type, "", "no type: the path alone moves");
}

/* Elasticsearch 8: document_parsing_exception, whose message begins with the
 * parser's location "[line:col] " (DocumentParsingException, built with
 * the XContentLocation in elastic/elasticsearch server/src/main/java/org/
 * elasticsearch/index/mapper/DocumentParsingException.java, thrown by
 * DocumentParser#wrapInDocumentParsingException); a dotted name under a
 * value gives the value's mapper the object (ENGINE-RULES.md 3). */
Test(conflicts, elasticsearch8_error_texts_with_their_location)
{
    struct parsed p;

    p = parse("document_parsing_exception", "[1:8] failed to parse field [num] of type [long] in "
              "document with id 'b'. Preview of field's value: 'five'");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "num");
    cr_expect_str_eq(p.type, "long");
    p = parse("document_parsing_exception", "[1:15] failed to parse field [m.inner] of type [long] "
              "in document with id 'f'. Preview of field's value: 'seven'");
    cr_expect_str_eq(p.path, "m.inner");
    p = parse("document_parsing_exception", "[12:130] object mapping for [obj] tried to parse field "
              "[obj] as object, but found a concrete value");
    cr_assert(p.ok);
    cr_expect_str_eq(p.path, "obj");
    p = parse("document_parsing_exception", "[1:10] failed to parse field [num] of type [long] in "
              "document with id 'i'. Preview of field's value: '{x=1}'");
    cr_expect_str_eq(p.path, "num");
}

/* What no reshaping fixes is not a conflict: Lucene's immense term
 * (IndexingChain), the mapping limits (MappingLookup#checkFieldLimit,
 * #checkDepthLimit), strict mappings, a document that is not JSON. */
Test(conflicts, other_refusals_are_not_conflicts)
{
    cr_expect_not(parse("illegal_argument_exception", "Document contains at least one immense "
                        "term in field=\"k\" (whose UTF8 encoding is longer than the max length "
                        "32766), all of which were skipped.").ok);
    cr_expect_not(parse("illegal_argument_exception", "Limit of total fields [1000] has been "
                        "exceeded while adding new fields [1]").ok);
    cr_expect_not(parse("mapper_parsing_exception", "The depth of the field [a.b.c] exceeds the "
                        "allowed limit of [20]").ok);
    cr_expect_not(parse("strict_dynamic_mapping_exception", "mapping set to strict, dynamic "
                        "introduction of [x] within [_doc] is not allowed").ok);
    cr_expect_not(parse("mapper_parsing_exception", "failed to parse").ok);
    cr_expect_not(parse("version_conflict_engine_exception", "failed to parse field [a] of type "
                        "[long]").ok, "only the mapping errors' types");
    cr_expect_not(parse(NULL, NULL).ok);
}

/* ---- which values a type takes ---------------------------------------------- */

/* The coercions of the field mappers (ENGINE-RULES.md section 3's table). */
Test(conflicts, which_values_each_type_takes)
{
#define TAKES(t, v) conflicts_takes(t, v, strlen(v))
    cr_expect(TAKES("long", "5"));
    cr_expect(TAKES("long", "1.5"), "cut");
    cr_expect(TAKES("long", "\"12\""), "a numeric string");
    cr_expect(TAKES("long", "\"\""), "no value");
    cr_expect(TAKES("long", "null"));
    cr_expect_not(TAKES("long", "\"five\""));
    cr_expect_not(TAKES("long", "true"));
    cr_expect_not(TAKES("long", "{\"a\":1}"));
    cr_expect_not(TAKES("long", "12345678901234567890123456789012345678"), "beyond long");
    cr_expect(TAKES("float", "12345678901234567890123456789012345678"));
    cr_expect_not(TAKES("float", "1E+125"), "not a finite float");
    cr_expect(TAKES("float", "1E-130"));
    cr_expect(TAKES("double", "1E+125"));
    cr_expect_not(TAKES("integer", "3000000000"));
    cr_expect_not(TAKES("long", "\"0x10\""));
    cr_expect_not(TAKES("float", "\"NaN\""));
    cr_expect(TAKES("boolean", "false"));
    cr_expect(TAKES("boolean", "\"true\""));
    cr_expect_not(TAKES("boolean", "1"));
    cr_expect_not(TAKES("boolean", "\"yes\""));
    cr_expect(TAKES("text", "42"));
    cr_expect(TAKES("keyword", "true"));
    cr_expect_not(TAKES("text", "{}"));
    cr_expect(TAKES("object", "{\"x\":1}"));
    cr_expect_not(TAKES("object", "\"s\""));
    cr_expect(TAKES("object", "[{\"x\":1},{}]"));
    cr_expect_not(TAKES("object", "[{\"x\":1},2]"));
    cr_expect(TAKES("long", "[1,2,\"3\"]"));
    cr_expect_not(TAKES("long", "[1,\"a\"]"));
    cr_expect(TAKES("date", "\"whatever\""), "date strings: the engine decides");
    cr_expect_not(TAKES("date", "true"));
    cr_expect(TAKES("ip", "{\"x\":1}"), "types not modelled take everything");
#undef TAKES
}

/* ---- shaping ----------------------------------------------------------------- */

static const char mapping[] =
    "{\"t\":{\"mappings\":{\"properties\":{\"flag\":{\"type\":\"boolean\"},\"lst\":{\"type\":"
    "\"long\"},\"m\":{\"properties\":{\"inner\":{\"type\":\"long\"}}},\"num\":{\"type\":\"long\"},"
    "\"items\":{\"properties\":{\"v\":{\"type\":\"long\"}}},"
    "\"st\":{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\",\"ignore_above\":256}}}"
    "}}}}";

static struct conflicts *known_from_mapping(void)
{
    struct conflicts *c = conflicts_new();

    cr_assert_not_null(c);
    cr_assert_eq(conflicts_learn_mapping(c, mapping, strlen(mapping)), 0);
    return c;
}

/* out as a string ("" when nothing moved). */
static char *shape(const struct conflicts *c, const char *force, const char *field,
                   const char *doc, size_t *moved)
{
    struct buf out;
    int rc;

    buf_init(&out, BUF_NOMAX);
    rc = conflicts_shape(c, force, field, doc, strlen(doc), &out, moved);
    cr_assert_eq(rc, 0, "shape: %d", rc);
    buf_putc(&out, '\0');
    return buf_take(&out);
}

Test(conflicts, a_mapping_reply_gives_every_field_its_type)
{
    struct conflicts *c = known_from_mapping();

    cr_expect_eq(conflicts_count(c), 8);
    cr_expect_str_eq(conflicts_type(c, "m.inner", 7), "long");
    cr_expect_str_eq(conflicts_type(c, "m", 1), "object");
    cr_expect_str_eq(conflicts_type(c, "st", 2), "text");
    cr_expect_null(conflicts_type(c, "st.keyword", 10), "a multi-field is not a document path");
    /* what an error taught stays; what the mapping says wins */
    cr_assert_eq(conflicts_learn(c, "zz", 2, "boolean"), 0);
    cr_assert_eq(conflicts_learn(c, "num", 3, "text"), 0);
    cr_assert_eq(conflicts_learn_mapping(c, mapping, strlen(mapping)), 0);
    cr_expect_str_eq(conflicts_type(c, "zz", 2), "boolean");
    cr_expect_str_eq(conflicts_type(c, "num", 3), "long");
    cr_expect_eq(conflicts_learn_mapping(c, "[1]", 3), -EINVAL);
    cr_expect_eq(conflicts_count(c), 9, "unchanged by a bad reply");
    conflicts_free(c);
}

Test(conflicts, each_conflicting_value_moves_with_its_path_type_and_text)
{
    struct conflicts *c = known_from_mapping();
    size_t moved;
    char *out = shape(c, NULL, NULL,
                      "{\"id\":\"b\",\"num\":\"five\",\"st\":{\"a\":\"deep\"},\"lst\":\"xyz\","
                      "\"flag\":1,\"m\":{\"inner\":\"seven\"},\"ok\":\"fine\"}", &moved);

    cr_expect_eq(moved, 5);
    cr_expect_str_eq(out, "{\"id\":\"b\",\"m\":{},\"ok\":\"fine\",\"_ddb_conflicts\":["
                          "{\"path\":\"num\",\"type\":\"S\",\"value\":\"five\"},"
                          "{\"path\":\"st\",\"type\":\"M\",\"value\":\"{\\\"a\\\":\\\"deep\\\"}\"},"
                          "{\"path\":\"lst\",\"type\":\"S\",\"value\":\"xyz\"},"
                          "{\"path\":\"flag\",\"type\":\"N\",\"value\":\"1\"},"
                          "{\"path\":\"m.inner\",\"type\":\"S\",\"value\":\"seven\"}]}");
    free(out);
    conflicts_free(c);
}

Test(conflicts, a_document_that_fits_is_left_as_it_is)
{
    struct conflicts *c = known_from_mapping();
    struct buf out;
    size_t moved = 99;
    const char *doc = "{\"num\":\"12\",\"st\":7,\"flag\":\"false\",\"m\":{\"inner\":1.5},"
                      "\"new\":{\"x\":[1,\"a\"]}}";

    buf_init(&out, BUF_NOMAX);
    cr_assert_eq(conflicts_shape(c, NULL, NULL, doc, strlen(doc), &out, &moved), 0);
    cr_expect_eq(moved, 0);
    cr_expect_eq(out.len, 0, "out untouched");
    cr_expect_eq(conflicts_shape(NULL, NULL, NULL, doc, strlen(doc), &out, &moved), 0,
                 "nothing known");
    cr_expect_eq(conflicts_shape(c, NULL, NULL, "[1]", 3, &out, &moved), -EINVAL);
    cr_expect_eq(conflicts_shape(c, NULL, NULL, "{\"a\":", 5, &out, &moved), -EINVAL);
    buf_close(&out);
    conflicts_free(c);
}

Test(conflicts, numbers_keep_every_digit_and_arrays_move_whole)
{
    struct conflicts *c = known_from_mapping();
    size_t moved;
    char *out;

    out = shape(c, NULL, NULL, "{\"num\":12345678901234567890123456789012345678,\"lst\":[1,\"a\"]}",
                &moved);
    cr_expect_eq(moved, 2);
    cr_expect_str_eq(out, "{\"_ddb_conflicts\":["
                          "{\"path\":\"num\",\"type\":\"N\",\"value\":"
                          "\"12345678901234567890123456789012345678\"},"
                          "{\"path\":\"lst\",\"type\":\"L\",\"value\":\"[1,\\\"a\\\"]\"}]}");
    free(out);
    /* objects in an array share its path: only the element's own field moves */
    out = shape(c, NULL, NULL, "{\"items\":[{\"v\":1},{\"v\":\"x\",\"w\":2}]}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(out, "{\"items\":[{\"v\":1},{\"w\":2}],\"_ddb_conflicts\":["
                          "{\"path\":\"items.v\",\"type\":\"S\",\"value\":\"x\"}]}");
    free(out);
    conflicts_free(c);
}

Test(conflicts, the_path_the_engine_named_moves_even_when_not_modelled)
{
    struct conflicts *c = known_from_mapping();
    size_t moved;
    char *out;

    /* a date the engine could not read: the rule lets strings through */
    out = shape(c, "when", NULL, "{\"when\":\"soon\",\"x\":1}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(out, "{\"x\":1,\"_ddb_conflicts\":[{\"path\":\"when\",\"type\":\"S\","
                          "\"value\":\"soon\"}]}");
    free(out);
    /* a dotted name under the forced path, or under a known value field */
    out = shape(c, NULL, NULL, "{\"num.x\":1,\"m.inner\":2}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(out, "{\"m.inner\":2,\"_ddb_conflicts\":[{\"path\":\"num.x\",\"type\":\"N\","
                          "\"value\":\"1\"}]}");
    free(out);
    out = shape(NULL, "a", NULL, "{\"a.b\":true}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(out, "{\"_ddb_conflicts\":[{\"path\":\"a.b\",\"type\":\"BOOL\","
                          "\"value\":\"true\"}]}");
    free(out);
    conflicts_free(c);
}

Test(conflicts, shaping_a_shaped_document_moves_nothing_twice)
{
    struct conflicts *c = known_from_mapping();
    size_t moved;
    char *once = shape(c, NULL, "side", "{\"num\":\"five\",\"a\":1}", &moved), *twice;

    cr_expect_eq(moved, 1);
    cr_expect_str_eq(once, "{\"a\":1,\"side\":[{\"path\":\"num\",\"type\":\"S\",\"value\":\"five\"}]}");
    twice = shape(c, NULL, "side", once, &moved);
    cr_expect_eq(moved, 0, "%s", twice);
    free(twice);
    /* a new conflict joins the entries already there, after them */
    twice = shape(c, NULL, "side", "{\"side\":[{\"path\":\"num\",\"type\":\"S\",\"value\":\"five\"}],"
                                   "\"flag\":\"maybe\"}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(twice, "{\"side\":[{\"path\":\"num\",\"type\":\"S\",\"value\":\"five\"},"
                            "{\"path\":\"flag\",\"type\":\"S\",\"value\":\"maybe\"}]}");
    free(twice);
    /* a document's own attribute of that name that is no array moves like a conflict */
    twice = shape(NULL, NULL, "side", "{\"side\":\"mine\"}", &moved);
    cr_expect_eq(moved, 1);
    cr_expect_str_eq(twice, "{\"side\":[{\"path\":\"side\",\"type\":\"S\",\"value\":\"mine\"}]}");
    free(twice);
    free(once);
    conflicts_free(c);
}

/* ---- the daemon ---------------------------------------------------------------- */

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("ddb2es log:\n%s", log);
    free(log);
}

static bool file_empty(const char *path)
{
    char *text = proc_slurp(path);
    bool empty = !text || !*text;

    free(text);
    return empty;
}

/* The source of document id in the double's index, NULL until it is there. */
static json_t *doc_source(struct searchd *sd, const char *index, const char *id)
{
    json_t *d = searchd_dump(sd), *src;

    src = json_object_get(json_object_get(json_object_get(d, index), id), "source");
    json_incref(src);
    json_decref(d);
    return src;
}

static json_t *wait_doc(struct searchd *sd, const char *index, const char *id, long ms)
{
    json_t *src;

    for (long t = 0; t < ms; t += 100) {
        if ((src = doc_source(sd, index, id)))
            return src;
        usleep(100000);
    }
    return NULL;
}

static long items_refused(struct searchd *sd)
{
    json_t *st = searchd_stats(sd);
    long n = (long)json_integer_value(json_object_get(json_object_get(st, "items"), "400"));

    json_decref(st);
    return n;
}

/* The ids of the hits of a query on index. */
static char *search_ids(struct searchd *sd, const char *index, const char *query)
{
    char path[256], body[1024], *ids = calloc(1, 1024);
    json_t *r, *hit;
    long status;
    size_t i;

    snprintf(path, sizeof(path), "/%s/_search", index);
    snprintf(body, sizeof(body), "{\"query\":%s}", query);
    r = searchd_json(sd, "POST", path, body, &status);
    cr_assert_eq(status, 200, "search %s", query);
    json_array_foreach(json_object_get(json_object_get(r, "hits"), "hits"), i, hit) {
        strcat(ids, json_string_value(json_object_get(hit, "_id")));
        strcat(ids, " ");
    }
    json_decref(r);
    return ids;
}

static void expect_found(struct searchd *sd, const char *index, const char *query,
                         const char *ids)
{
    char *got = search_ids(sd, index, query);

    cr_expect_str_eq(got, ids, "%s", query);
    free(got);
}

/* The entry of path in the side object of src, NULL when none. */
static json_t *side_entry(json_t *src, const char *path)
{
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(src, "_ddb_conflicts"), i, e)
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0)
            return e;
    return NULL;
}

static void expect_entry(json_t *src, const char *path, const char *type, const char *value)
{
    json_t *e = side_entry(src, path);

    cr_assert_not_null(e, "no side entry for %s", path);
    cr_expect_str_eq(json_string_value(json_object_get(e, "type")), type, "%s", path);
    cr_expect_str_eq(json_string_value(json_object_get(e, "value")), value, "%s", path);
}

/* Five attributes change type from item a to item b: N->S (num), S->M
 * (st), L->S (lst, a list of numbers then a string), BOOL->N (flag) and a
 * nested path (m.inner, N->S).  c comes after the mapping is known. */
static void five_conflicts(const char *flavor, bool side)
{
    char name[128], dir[256], dlq[512], listen[64], l[300];
    struct e2e_table t = { .hash = "id" };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    int port = httpget_free_port();
    json_t *src;

    need_ddb();
    ddbc_table_name(name, sizeof(name), side ? "cside" : "cdlq");
    for (char *ch = name; *ch; ch++)
        *ch = (char)(*ch >= 'A' && *ch <= 'Z' ? *ch + 32 : *ch);
    t.name = t.index = name;
    t.extra = side ? NULL : "type_conflicts = dlq\n";
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    sd = searchd_start("--flavor", flavor, NULL); /* dynamic mapping: the first value wins */
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    e2e_metrics_listen = listen;
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, "idle_poll_interval = 200ms\n",
                         NULL, dir, sizeof(dir));
    e2e_metrics_listen = NULL;
    snprintf(dlq, sizeof(dlq), "%s/dlq.ndjson", dir);
    e2e_start(&p, conf);

    ddbc_put(name, "{\"id\":{\"S\":\"a\"},\"num\":{\"N\":\"5\"},\"st\":{\"S\":\"x\"},"
                   "\"lst\":{\"L\":[{\"N\":\"1\"},{\"N\":\"2\"}]},\"flag\":{\"BOOL\":true},"
                   "\"m\":{\"M\":{\"inner\":{\"N\":\"7\"}}}}");
    src = wait_doc(sd, name, "a", 30000);
    if (!src)
        dump_log(&p);
    cr_assert_not_null(src, "a is indexed");
    json_decref(src);
    ddbc_put(name, "{\"id\":{\"S\":\"b\"},\"num\":{\"S\":\"five\"},\"st\":{\"M\":{\"a\":{\"S\":"
                   "\"deep\"}}},\"lst\":{\"S\":\"xyz\"},\"flag\":{\"N\":\"1\"},"
                   "\"m\":{\"M\":{\"inner\":{\"S\":\"seven\"},\"keep\":{\"N\":\"8\"}}}}");

    if (!side) {
        json_t *line;
        char *text;
        const char *want = strcmp(flavor, "es8") == 0 ? "document_parsing_exception"
                                                      : "mapper_parsing_exception";

        cr_assert(proc_wait_for_text(dlq, "\"id\":\"b\"", 30000), "b is dead-lettered");
        text = proc_slurp(dlq);
        line = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL);
        cr_assert_not_null(line, "%s", text);
        cr_expect_str_eq(json_string_value(json_object_get(json_object_get(line, "error"),
                                                           "type")), want);
        cr_expect_str_eq(json_string_value(json_object_get(json_object_get(line, "document"),
                                                           "num")), "five",
                         "the document as it was");
        json_decref(line);
        free(text);
        cr_expect_null(doc_source(sd, name, "b"), "b is not in the index");
        snprintf(l, sizeof(l), "table=\"%s\"", name);
        cr_expect_eq(httpget_metric(port, "ddb2es_type_conflicts_total", l), -1);
        cr_assert_eq(e2e_stop(&p, 15000), 0);
        searchd_stop(sd);
        return;
    }

    src = wait_doc(sd, name, "b", 30000);
    if (!src)
        dump_log(&p);
    cr_assert_not_null(src, "b is indexed, its conflicts moved");
    cr_expect_eq(json_array_size(json_object_get(src, "_ddb_conflicts")), 5, "five entries");
    expect_entry(src, "num", "S", "five");
    expect_entry(src, "st", "M", "{\"a\":\"deep\"}");
    expect_entry(src, "lst", "S", "xyz");
    expect_entry(src, "flag", "N", "1");
    expect_entry(src, "m.inner", "S", "seven");
    cr_expect_null(json_object_get(src, "num"), "moved, not copied");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(src, "m"), "keep")), 8,
                 "the rest of the map stays");
    json_decref(src);
    cr_expect_eq(items_refused(sd), 1, "one refusal: the mapping told the other four");

    /* Later documents of a known conflicting type are shaped before they go. */
    ddbc_put(name, "{\"id\":{\"S\":\"c\"},\"num\":{\"S\":\"six\"},\"flag\":{\"BOOL\":false}}");
    src = wait_doc(sd, name, "c", 30000);
    cr_assert_not_null(src);
    expect_entry(src, "num", "S", "six");
    cr_expect_eq(json_is_false(json_object_get(src, "flag")), 1, "a boolean fits");
    json_decref(src);
    cr_expect_eq(items_refused(sd), 1, "no 400 round trip for c");

    /* Each moved value finds its document. */
    expect_found(sd, name, "{\"match\":{\"_ddb_conflicts.value\":\"five\"}}", "b ");
    expect_found(sd, name, "{\"match\":{\"_ddb_conflicts.value\":\"deep\"}}", "b ");
    expect_found(sd, name, "{\"term\":{\"_ddb_conflicts.value.keyword\":\"xyz\"}}", "b ");
    expect_found(sd, name, "{\"bool\":{\"must\":[{\"term\":{\"_ddb_conflicts.path.keyword\":"
                           "\"flag\"}},{\"term\":{\"_ddb_conflicts.value.keyword\":\"1\"}}]}}",
                 "b ");
    expect_found(sd, name, "{\"match\":{\"_ddb_conflicts.value\":\"seven\"}}", "b ");
    expect_found(sd, name, "{\"match\":{\"_ddb_conflicts.value\":\"six\"}}", "c ");
    expect_found(sd, name, "{\"term\":{\"_ddb_conflicts.path.keyword\":\"num\"}}", "b c ");

    cr_expect(file_empty(dlq), "nothing is dead-lettered");
    snprintf(l, sizeof(l), "table=\"%s\"", name);
    cr_expect_eq(httpget_metric(port, "ddb2es_type_conflicts_total", l), 2, "b and c");

    /* verify makes each document as the sink shaped it: a reshaped one is
     * not stale. */
    {
        char bin[512], *out;
        struct proc v;
        int rc = proc_run((const char *[]){ proc_path("ddb2es", bin, sizeof(bin)), "verify", "-c",
                                            conf, "--table", name, "--settle", "200ms", "--json",
                                            NULL },
                          (const char *[]){ "AWS_ACCESS_KEY_ID=test",
                                            "AWS_SECRET_ACCESS_KEY=test", NULL },
                          60000, &v);

        out = proc_slurp(v.out_path);
        if (rc != 0)
            dump_log(&v);
        cr_expect_eq(rc, 0, "verify: the index equals the table: %s", out);
        cr_expect(strstr(out, "\"stale\":[]") != NULL, "nothing stale: %s", out);
        free(out);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

Test(conflicts_e2e, side_object_on_opensearch)
{
    five_conflicts("os2", true);
}

Test(conflicts_e2e, side_object_on_elasticsearch8)
{
    five_conflicts("es8", true);
}

Test(conflicts_e2e, dlq_keeps_the_dead_letters_on_opensearch)
{
    five_conflicts("os2", false);
}

Test(conflicts_e2e, dlq_keeps_the_dead_letters_on_elasticsearch8)
{
    five_conflicts("es8", false);
}
