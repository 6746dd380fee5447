/* ddb2es schema: the path and type accounting (indexer/schema_paths.h) on
 * items through transform, then the command on DynamoDB Local and on an
 * export file, its suggested template applied to the search double and a
 * replay into that index. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "indexer/schema_paths.h"
#include "indexer/transform.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

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
            "\"l\":{\"L\":[{\"N\":\"2\"},{\"N\":\"3\"},{\"M\":{\"z\":{\"BOOL\":true}}},{\"L\":[{\"S\":\"y\"}]}]}}},"
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

/* MappingLookup#checkObjectDepthLimit: an object's depth is its dots plus
 * 2, the root 1; OpenSearch's ParseContext#checkFieldArrayDepthLimit counts
 * nested arrays against the same limit (tests/tools/ENGINE-RULES.md). */
Test(schema, depth_and_fields_as_the_engines_count, .init = unit_setup,
     .fini = unit_teardown)
{
    struct schema_paths *sp = schema_paths_new(0);
    json_t *rep;

    /* An empty map is an object field at depth 2. */
    add(sp, "{\"pk\":{\"N\":\"1\"},\"e\":{\"M\":{}},\"z\":{\"NULL\":true},\"l\":{\"L\":[]}}");
    rep = schema_paths_report(sp);
    cr_assert_eq(json_integer_value(json_object_get(rep, "max_depth")), 2);
    cr_assert_eq(json_integer_value(json_object_get(rep, "max_fields")), 2, "pk and e");
    json_decref(rep);
    /* Lists in lists: three arrays deep, one field. */
    add(sp, "{\"pk\":{\"N\":\"2\"},\"a\":{\"L\":[{\"L\":[{\"L\":[{\"N\":\"1\"}]}]}]}}");
    rep = schema_paths_report(sp);
    cr_assert_eq(json_integer_value(json_object_get(rep, "max_depth")), 3);
    assert_types(rep, "a[][][]", "{\"N\":1}");
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

/* ---- the command ----------------------------------------------------------- */

static const char *const test_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                        NULL };

#define NITEMS 40

/* The paths whose type changes across the items below. */
static const char want_varying[] = "[\"flag\",\"info.level\",\"meta\",\"num\",\"tags\"]";

/* Item k: five attributes change type with k's parity (N/S, S/M, L/S,
 * BOOL/N, and info.level inside a steady map: N/S), so that whichever
 * comes first, the engines' dynamic mapping refuses the other; the rest
 * keep theirs (opt is NULL or S: a null maps nothing, so no conflict). */
static json_t *item(int k)
{
    bool even = k % 2 == 0;
    char pk[16], n[16];

    snprintf(pk, sizeof(pk), "p%03d", k);
    snprintf(n, sizeof(n), "%d", k);
    return json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:b}, s:{s:[{s:s},{s:s}]},"
                     " s:o, s:o, s:o, s:o, s:{s:{s:{s:s}, s:o}}, s:o}",
                     "pk", "S", pk, "name", "S", "steady", "count", "N", n, "active", "BOOL", 1,
                     "list", "L", "N", "1", "N", "2.5",
                     "num", even ? json_pack("{s:s}", "N", n) : json_pack("{s:s}", "S", "many"),
                     "meta", even ? json_pack("{s:s}", "S", "plain")
                                  : json_pack("{s:{s:{s:s}}}", "M", "x", "S", "inside"),
                     "tags", even ? json_pack("{s:[{s:s},{s:s}]}", "L", "S", "a", "S", "b")
                                  : json_pack("{s:s}", "S", "a"),
                     "flag", even ? json_pack("{s:b}", "BOOL", 1) : json_pack("{s:s}", "N", "7"),
                     "info", "M", "city", "S", "Lyon",
                     "level", even ? json_pack("{s:s}", "N", "3") : json_pack("{s:s}", "S", "high"),
                     "opt", k % 3 ? json_pack("{s:b}", "NULL", 1) : json_pack("{s:s}", "S", "o"));
}

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

/* Runs `ddb2es CMD -c conf ARGS...` to its end; its exit code (its log on
 * stderr when that is not want). */
static int ddb2es_want(struct proc *p, int want, const char *cmd, const char *conf,
                       const char *const *args)
{
    static char bin[512];
    const char *argv[32] = { proc_path("ddb2es", bin, sizeof(bin)), cmd, "-c", conf };
    size_t n = 4;
    int rc;

    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    proc_start(p, argv, test_env);
    rc = proc_wait(p, 60000);
    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    if (rc != want) {
        char *log = proc_slurp(p->err_path);

        fprintf(stderr, "ddb2es %s exited %d:\n%s", cmd, rc, log);
        free(log);
    }
    return rc;
}

static int ddb2es(struct proc *p, const char *cmd, const char *conf, const char *const *args)
{
    return ddb2es_want(p, 0, cmd, conf, args);
}

/* The --json report on p's stdout. */
static json_t *report_of(const struct proc *p)
{
    char *out = proc_slurp(p->out_path);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);

    cr_assert_not_null(j, "the report is not JSON (%s): %s", je.text, out);
    free(out);
    return j;
}

/* The report's checks shared by the Scan and the file. */
static void check_report(json_t *rep)
{
    char *s = compact(json_object_get(rep, "varying"));

    cr_assert_str_eq(s, want_varying, "varying: %s", s);
    free(s);
    cr_assert_eq(json_integer_value(json_object_get(rep, "items")), NITEMS);
    assert_types(rep, "num", "{\"N\":20,\"S\":20}");
    assert_types(rep, "opt", "{\"NULL\":26,\"S\":14}");
    assert_types(rep, "tags[]", "{\"S\":20}");
    assert_types(rep, "info.level", "{\"N\":20,\"S\":20}");
    cr_assert(json_is_false(json_object_get(rep, "paths_capped")));
}

/* Creates index in the double from the report's template, as `run` does
 * from [table] index_template (PUT /INDEX with the file's body).  The double
 * maps new fields and refuses conflicting values as the engines do, and
 * takes anything in an object with "enabled": false
 * (tests/tools/ENGINE-RULES.md, sections 3 and 5). */
static void create_from_template(struct searchd *sd, const char *index, json_t *rep)
{
    char *body = json_dumps(json_object_get(rep, "template"), JSON_COMPACT);
    char path[300];
    long status = 0;

    snprintf(path, sizeof(path), "/%s", index);
    json_decref(searchd_json(sd, "PUT", path, body, &status));
    cr_assert_eq(status, 200, "PUT %s refused: %s", path, body);
    free(body);
}

/* Nothing was dead-lettered: the DLQ file is absent or empty. */
static void assert_no_dead_letters(const char *dir)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
    if (stat(path, &st) == 0 && st.st_size > 0) {
        char *dl = proc_slurp(path);

        cr_assert_fail("documents were dead-lettered:\n%.4000s", dl);
    }
}

Test(schema, scan_reports_the_varying_paths_and_its_template_takes_every_item, .timeout = 120)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *rep;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "schema");
    lower(name);
    memset(&t, 0, sizeof(t));
    t.name = t.index = name;
    t.hash = "pk";
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    for (int k = 0; k < NITEMS; k++)
        json_decref(ddbc_callj("PutItem", json_pack("{s:s,s:o}", "TableName", name, "Item",
                                                    item(k))));
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));

    cr_assert_eq(ddb2es(&p, "schema", conf,
                        (const char *[]){ "--table", name, "--scan", "--segments", "3",
                                          "--rate", "1000", "--json", NULL }),
                 0);
    rep = report_of(&p);
    check_report(rep);

    /* Interrupted: 75, and no report. */
    {
        static char bin[512];
        const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "schema", "-c", conf,
                               "--table", name, "--scan", "--segments", "1", "--rate", "1",
                               NULL };

        proc_start(&p, argv, test_env);
        cr_assert(proc_wait_for_text(p.err_path, "Scan in 1 segment", 10000));
        proc_kill(&p, SIGINT);
        cr_assert_eq(proc_wait(&p, 10000), 75);
        cr_assert(proc_wait_for_text(p.err_path, "interrupted by SIGINT", 1000));
        {
            char *out = proc_slurp(p.out_path);

            cr_assert_str_eq(out, "");
            free(out);
        }
    }

    /* Under the suggested template every item is indexed. */
    create_from_template(sd, name, rep);
    cr_assert_eq(ddb2es(&p, "replay", conf, (const char *[]){ "--table", name, "--scan", NULL }),
                 0);
    assert_no_dead_letters(dir);
    cr_assert(e2e_index_equals_table(sd, &t, why, sizeof(why)), "%s", why);
    json_decref(rep);
    searchd_stop(sd);
}

/* An export data file of the items: DYNAMODB_JSON lines. */
static void write_export(const char *path, int nitems, json_t *(*make)(int))
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s", path);
    for (int k = 0; k < nitems; k++) {
        json_t *line = json_pack("{s:o}", "Item", make(k));

        cr_assert_eq(json_dumpf(line, f, JSON_COMPACT), 0);
        fputc('\n', f);
        json_decref(line);
    }
    cr_assert_eq(fclose(f), 0);
}

Test(schema, export_file_without_dynamodb, .timeout = 60)
{
    char dir[256], file[512];
    struct e2e_table t = { .name = "exported", .index = "exported", .hash = "pk" };
    struct searchd *sd = searchd_start(NULL);
    struct proc p;
    const char *conf;
    json_t *rep, *dump;

    /* No DynamoDB: its endpoint is a closed port. */
    conf = e2e_config_ex("http://127.0.0.1:9", searchd_url(sd), &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    snprintf(file, sizeof(file), "%s/export.json", dir);
    write_export(file, NITEMS, item);
    cr_assert_eq(ddb2es(&p, "schema", conf,
                        (const char *[]){ "--table", "exported", "--file", file, "--format",
                                          "export", "--key", "pk", "--json", NULL }),
                 0);
    rep = report_of(&p);
    check_report(rep);

    create_from_template(sd, "exported", rep);
    cr_assert_eq(ddb2es(&p, "replay", conf,
                        (const char *[]){ "--table", "exported", "--file", file, "--key", "pk",
                                          "--read-time", "2024-05-01T00:00:00Z", NULL }),
                 0);
    assert_no_dead_letters(dir);
    dump = e2e_dump(sd);
    cr_assert_eq(json_object_size(json_object_get(dump, "exported")), NITEMS,
                 "a document per item");
    json_decref(dump);
    searchd_stop(sd);

    /* Elasticsearch 8's rules take the same template and every item. */
    sd = searchd_start("--flavor", "es8", NULL);
    conf = e2e_config_ex("http://127.0.0.1:9", searchd_url(sd), &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    create_from_template(sd, "exported", rep);
    cr_assert_eq(ddb2es(&p, "replay", conf,
                        (const char *[]){ "--table", "exported", "--file", file, "--key", "pk",
                                          "--read-time", "2024-05-01T00:00:00Z", NULL }),
                 0);
    assert_no_dead_letters(dir);
    dump = e2e_dump(sd);
    cr_assert_eq(json_object_size(json_object_get(dump, "exported")), NITEMS, "es8");
    json_decref(dump);
    json_decref(rep);
    searchd_stop(sd);
}

Test(schema, stream_records_count_new_images, .timeout = 60)
{
    char dir[256];
    struct e2e_table t = { .name = "fixture", .index = "fixture", .hash = "pk" };
    struct proc p;
    const char *conf;
    json_t *rep;

    conf = e2e_config_ex("http://127.0.0.1:9", "http://127.0.0.1:9", &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    cr_assert_eq(ddb2es(&p, "schema", conf,
                        (const char *[]){ "--table", "fixture", "--file",
                                          "tests/data/replay/stream-records.ndjson", "--format",
                                          "stream", "--key", "pk,sk", "--json", NULL }),
                 0);
    rep = report_of(&p);
    /* Three INSERT or MODIFY records, each with its new image. */
    cr_assert_eq(json_integer_value(json_object_get(rep, "items")), 3);
    assert_types(rep, "pk", "{\"S\":3}");
    assert_types(rep, "sk", "{\"N\":3}");
    json_decref(rep);
}

/* Item k of the wide file: 1000 attributes of its own. */
static json_t *wide_item(int k)
{
    json_t *it = json_pack("{s:{s:s}}", "pk", "S", "w");
    char name[32];

    json_object_set_new(json_object_get(it, "pk"), "S", json_sprintf("w%d", k));
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "a%d_%d", k, i);
        json_object_set_new(it, name, json_pack("{s:s}", "N", "1"));
    }
    return it;
}

Test(schema, more_paths_than_the_cap_are_said_capped, .timeout = 60)
{
    char dir[256], file[512];
    struct e2e_table t = { .name = "wide", .index = "wide", .hash = "pk" };
    struct proc p;
    const char *conf;
    json_t *rep;
    char *err;

    conf = e2e_config_ex("http://127.0.0.1:9", "http://127.0.0.1:9", &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    snprintf(file, sizeof(file), "%s/wide.json", dir);
    write_export(file, 11, wide_item); /* 11001 paths */
    cr_assert_eq(ddb2es(&p, "schema", conf,
                        (const char *[]){ "--table", "wide", "--file", file, "--key", "pk",
                                          "--json", NULL }),
                 0);
    rep = report_of(&p);
    cr_assert(json_is_true(json_object_get(rep, "paths_capped")));
    cr_assert_eq(json_array_size(json_object_get(rep, "paths")), SCHEMA_PATHS_MAX);
    cr_assert_eq(json_integer_value(json_object_get(rep, "untracked")), 11001 - SCHEMA_PATHS_MAX);
    cr_assert_eq(json_integer_value(json_object_get(rep, "items")), 11);
    err = proc_slurp(p.err_path);
    cr_assert_not_null(strstr(err, "paths_capped"), "stderr says so: %s", err);
    free(err);
    json_decref(rep);

    /* Below the cap, nothing is said. */
    write_export(file, 9, wide_item);
    cr_assert_eq(ddb2es(&p, "schema", conf,
                        (const char *[]){ "--table", "wide", "--file", file, "--key", "pk",
                                          "--json", NULL }),
                 0);
    rep = report_of(&p);
    cr_assert(json_is_false(json_object_get(rep, "paths_capped")));
    cr_assert_eq(json_array_size(json_object_get(rep, "paths")), 9001);
    json_decref(rep);
}

Test(schema, malformed_file_and_usage_mistakes, .timeout = 60)
{
    char dir[256], file[512];
    struct e2e_table t = { .name = "bad", .index = "bad", .hash = "pk" };
    struct proc p;
    const char *conf;
    FILE *f;
    char *err;

    conf = e2e_config_ex("http://127.0.0.1:9", "http://127.0.0.1:9", &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    snprintf(file, sizeof(file), "%s/bad.json", dir);
    f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("{\"Item\":{\"pk\":{\"S\":\"1\"}}}\nnot json\n", f);
    fclose(f);
    cr_assert_eq(ddb2es_want(&p, 65, "schema", conf,
                        (const char *[]){ "--table", "bad", "--file", file, "--key", "pk", NULL }),
                 65);
    err = proc_slurp(p.err_path);
    cr_assert_not_null(strstr(err, "bad.json:2: not JSON"), "%s", err);
    free(err);
    cr_assert_eq(ddb2es_want(&p, 66, "schema", conf,
                        (const char *[]){ "--table", "bad", "--file", "/nonexistent/x", "--key",
                                          "pk", NULL }),
                 66);
    cr_assert_eq(ddb2es_want(&p, 64, "schema", conf, (const char *[]){ "--table", "bad", NULL }),
                 64);
    cr_assert_eq(ddb2es_want(&p, 64, "schema", conf,
                        (const char *[]){ "--table", "bad", "--scan", "--restart", NULL }),
                 64);
    cr_assert_eq(ddb2es_want(&p, 78, "schema", conf,
                        (const char *[]){ "--table", "nope", "--file", file, NULL }),
                 78);
}
