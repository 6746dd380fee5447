/* ddb2es schema: the path and type accounting (indexer/schema_paths.h) on
 * items through transform, then the command on DynamoDB Local and on an
 * export file, its suggested template applied to the search double and a
 * replay into that index. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/schema_paths.h"
#include "indexer/transform.h"

TestSuite(schema, .timeout = 60);

/* ---- the accounting ------------------------------------------------------ */

static struct transform_cfg tcfg;
static struct doc tdoc;
static struct buf terr;

static void unit_setup(void)
{
    memset(&tcfg, 0, sizeof(tcfg));
    tcfg.index = "t";
    tcfg.id_sep = '|';
    tcfg.hash_key = "pk";
    tcfg.on_member = schema_paths_member;
    memset(&tdoc, 0, sizeof(tdoc));
    buf_init(&tdoc.source, 1 << 20);
    buf_init(&tdoc.keys, 0);
    buf_init(&terr, 4096);
}

static void unit_teardown(void)
{
    buf_close(&tdoc.source);
    buf_close(&tdoc.keys);
    buf_close(&terr);
}

/* Counts one item (DynamoDB JSON text) as `schema` does. */
static enum transform_result add(struct schema_paths *sp, const char *item)
{
    json_error_t je;
    json_t *j = json_loads(item, 0, &je);
    enum transform_result tr;

    cr_assert_not_null(j, "bad test JSON: %s", je.text);
    tcfg.member_arg = sp;
    schema_paths_begin(sp);
    tr = transform_item(&tcfg, j, &tdoc, &terr);
    cr_assert_eq(schema_paths_end(sp, tr == TR_DOC), 0);
    json_decref(j);
    return tr;
}

/* The "types" of path in the report, as compact JSON ("" when absent). */
static char *types_of(json_t *rep, const char *path)
{
    size_t i;
    json_t *p;

    json_array_foreach(json_object_get(rep, "paths"), i, p) {
        if (strcmp(json_string_value(json_object_get(p, "path")), path) == 0)
            return json_dumps(json_object_get(p, "types"), JSON_COMPACT | JSON_SORT_KEYS);
    }
    return strdup("");
}

static void assert_types(json_t *rep, const char *path, const char *want)
{
    char *got = types_of(rep, path);

    cr_assert_str_eq(got, want, "%s: %s, expected %s", path, got, want);
    free(got);
}

static char *compact(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}

Test(schema, paths_types_and_counts, .init = unit_setup, .fini = unit_teardown)
{
    struct schema_paths *sp = schema_paths_new(0);
    json_t *rep;
    char *s;

    add(sp, "{\"pk\":{\"S\":\"1\"},\"n\":{\"N\":\"1\"},\"m\":{\"M\":{\"a\":{\"S\":\"x\"},"
            "\"l\":{\"L\":[{\"N\":\"2\"},{\"M\":{\"z\":{\"BOOL\":true}}},{\"L\":[{\"S\":\"y\"}]}]}}},"
            "\"ss\":{\"SS\":[\"a\",\"b\"]},\"b\":{\"B\":\"AQ==\"},\"nul\":{\"NULL\":true}}");
    add(sp, "{\"pk\":{\"S\":\"2\"},\"n\":{\"S\":\"one\"},\"nul\":{\"N\":\"3\"},"
            "\"m\":{\"M\":{\"a\":{\"S\":\"x\"}}}}");
    /* Refused by the document rules: not counted at all. */
    cr_assert_eq(add(sp, "{\"pk\":{\"S\":\"3\"},\"n\":{\"BOOL\":true},\"bad\":{\"X\":\"1\"}}"),
                 TR_ERROR);
    rep = schema_paths_report(sp);
    cr_assert_not_null(rep);
    cr_assert_eq(json_integer_value(json_object_get(rep, "items")), 2);
    assert_types(rep, "pk", "{\"S\":2}");
    assert_types(rep, "n", "{\"N\":1,\"S\":1}");
    assert_types(rep, "m", "{\"M\":2}");
    assert_types(rep, "m.a", "{\"S\":2}");
    assert_types(rep, "m.l", "{\"L\":1}");
    /* Counted per item: the list's element types once each. */
    assert_types(rep, "m.l[]", "{\"L\":1,\"M\":1,\"N\":1}");
    assert_types(rep, "m.l[].z", "{\"BOOL\":1}");
    assert_types(rep, "m.l[][]", "{\"S\":1}");
    assert_types(rep, "ss", "{\"SS\":1}");
    assert_types(rep, "b", "{\"B\":1}");
    assert_types(rep, "nul", "{\"N\":1,\"NULL\":1}");
    assert_types(rep, "bad", "");
    /* NULL against N does not vary; N against S does, and so do the list's
     * elements. */
    s = compact(json_object_get(rep, "varying"));
    cr_assert_str_eq(s, "[\"m.l[]\",\"n\"]");
    free(s);
    /* Item 1: pk n m m.a m.l m.l.z ss b = 8 fields (nul maps nothing);
     * depth: m.l.z is a field of object m.l, at depth 3. */
    cr_assert_eq(json_integer_value(json_object_get(rep, "max_fields")), 8);
    cr_assert_eq(json_integer_value(json_object_get(rep, "max_depth")), 3);
    cr_assert(json_is_false(json_object_get(rep, "paths_capped")));
    json_decref(rep);
    schema_paths_free(sp);
}

Test(schema, names_as_written_and_hmac, .init = unit_setup, .fini = unit_teardown)
{
    static const char *const hm[] = { "secret" };
    struct schema_paths *sp = schema_paths_new(0);
    json_t *rep;

    tcfg.hmac = hm;
    tcfg.n_hmac = 1;
    tcfg.hmac_key = (const unsigned char *)"k";
    tcfg.hmac_key_len = 1;
    add(sp, "{\"pk\":{\"S\":\"1\"},\"_id\":{\"S\":\"x\"},\"m\":{\"M\":{\"a..b\":{\"N\":\"1\"}}},"
            "\"secret\":{\"M\":{\"inner\":{\"S\":\"x\"}}},\"aws:rep:updatetime\":{\"N\":\"1\"}}");
    rep = schema_paths_report(sp);
    /* Renamed as transform writes them (transform.h). */
    assert_types(rep, "%_id", "{\"S\":1}");
    assert_types(rep, "m.%a%2E%2Eb", "{\"N\":1}");
    /* An hmac attribute is its hex digest: a string, nothing inside. */
    assert_types(rep, "secret", "{\"S\":1}");
    assert_types(rep, "secret.inner", "");
    assert_types(rep, "aws:rep:updatetime", "");
    json_decref(rep);
    schema_paths_free(sp);
}

Test(schema, dotted_names_and_template, .init = unit_setup, .fini = unit_teardown)
{
    struct schema_paths *sp = schema_paths_new(0);
    json_t *rep, *props;
    char *s;

    /* "o.x" names field x of object o, as the nested map does: one field. */
    add(sp, "{\"pk\":{\"S\":\"1\"},\"o.x\":{\"N\":\"1\"},\"v\":{\"N\":\"1\"},\"w\":{\"S\":\"a\"},"
            "\"bin\":{\"BS\":[\"AQ==\"]},\"deep\":{\"M\":{\"k\":{\"BOOL\":true}}}}");
    add(sp, "{\"pk\":{\"S\":\"2\"},\"o\":{\"M\":{\"x\":{\"S\":\"s\"}}},\"v\":{\"BOOL\":false},"
            "\"w\":{\"M\":{\"q\":{\"N\":\"1\"}}},\"bin\":{\"B\":\"Ag==\"},"
            "\"deep\":{\"M\":{\"k\":{\"BOOL\":false}}}}");
    rep = schema_paths_report(sp);
    props = json_object_get(json_object_get(json_object_get(rep, "template"), "mappings"),
                            "properties");
    s = compact(props);
    /* Scalars of several kinds: a keyword; an object against a string:
     * disabled (nothing below it is mapped); binary alone: binary; steady
     * fields are left to the dynamic templates. */
    cr_assert_str_eq(s, "{\"bin\":{\"type\":\"binary\"},"
                        "\"o\":{\"properties\":{\"x\":{\"ignore_above\":8191,\"type\":\"keyword\"}}},"
                        "\"v\":{\"ignore_above\":8191,\"type\":\"keyword\"},"
                        "\"w\":{\"enabled\":false,\"type\":\"object\"}}");
    free(s);
    s = compact(json_object_get(json_object_get(rep, "template"), "settings"));
    cr_assert_str_eq(s, "{\"index.mapping.depth.limit\":20,"
                        "\"index.mapping.total_fields.limit\":1000}");
    free(s);
    /* pk (2) o (1) o.x (1) v (1) w (1) bin (1) deep (1) deep.k (1) */
    cr_assert_eq(json_integer_value(json_object_get(rep, "fields")), 9);
    json_decref(rep);
    schema_paths_free(sp);
}

Test(schema, cap_on_paths, .init = unit_setup, .fini = unit_teardown)
{
    struct schema_paths *sp = schema_paths_new(5);
    json_t *rep;

    add(sp, "{\"pk\":{\"S\":\"1\"},\"a\":{\"N\":\"1\"},\"b\":{\"N\":\"1\"},\"c\":{\"N\":\"1\"}}");
    cr_assert(!schema_paths_capped(sp));
    add(sp, "{\"pk\":{\"S\":\"2\"},\"d\":{\"N\":\"1\"},\"e\":{\"N\":\"1\"},\"f\":{\"N\":\"1\"}}");
    cr_assert(schema_paths_capped(sp));
    rep = schema_paths_report(sp);
    cr_assert_eq(json_array_size(json_object_get(rep, "paths")), 5);
    cr_assert(json_is_true(json_object_get(rep, "paths_capped")));
    cr_assert_eq(json_integer_value(json_object_get(rep, "untracked")), 2);
    json_decref(rep);
    schema_paths_free(sp);
}
