/* target: the target probe — its parsers, then the probe itself against the
 * search double playing each flavour, asserting what it found and the
 * requests the double saw. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aws/creds.h"
#include "base/http.h"
#include "indexer/sink.h"
#include "indexer/target.h"
#include "tests/support/loop.h"
#include "tests/support/searchd_ctl.h"

/* ---- GET / ---------------------------------------------------------------- */

Test(target, get_root_names_the_flavour_and_the_source_parameter)
{
    struct target_root r;
    char name[128];

    target_parse_root(200, "{\"version\":{\"distribution\":\"opensearch\",\"number\":\"2.11.0\"},"
                           "\"tagline\":\"The OpenSearch Project: https://opensearch.org/\"}",
                      119, &r);
    cr_expect_eq(r.flavour, TF_OPENSEARCH);
    cr_expect_str_eq(target_flavour_name(&r, name, sizeof(name)), "OpenSearch 2.11.0");
    cr_expect_not(r.source_param);

#define ES(v) "{\"version\":{\"number\":\"" v "\",\"build_flavor\":\"default\"}," \
              "\"tagline\":\"You Know, for Search\"}"
    target_parse_root(200, ES("8.17.4"), strlen(ES("8.17.4")), &r);
    cr_expect_eq(r.flavour, TF_ELASTICSEARCH);
    cr_expect_not(r.source_param, "8.17 does not know include_source_on_error");
    target_parse_root(200, ES("8.18.0"), strlen(ES("8.18.0")), &r);
    cr_expect(r.source_param);
    target_parse_root(200, ES("9.1.0"), strlen(ES("9.1.0")), &r);
    cr_expect(r.source_param);
    cr_expect_str_eq(target_flavour_name(&r, name, sizeof(name)), "Elasticsearch 9.1.0");
    target_parse_root(200, ES("7.17.0"), strlen(ES("7.17.0")), &r);
    cr_expect_not(r.source_param);

    target_parse_root(200, "{\"version\":{\"number\":\"8.11.0\",\"build_flavor\":\"serverless\"}}",
                      59, &r);
    cr_expect_eq(r.flavour, TF_ELASTIC_SERVERLESS);
    cr_expect(r.source_param, "a serverless project runs the newest code");

    target_parse_root(404, "", 0, &r);
    cr_expect_eq(r.flavour, TF_UNKNOWN);
    cr_expect_str_eq(target_flavour_name(&r, name, sizeof(name)),
                     "an engine that does not say what it is (GET / answered HTTP 404)");
    cr_expect_not(r.source_param);
}

/* ---- resolve, alias ----------------------------------------------------------- */

Test(target, resolve_tells_an_index_an_alias_and_a_data_stream_apart)
{
    const char *both = "{\"indices\":[{\"name\":\"posts-1\",\"aliases\":[\"posts\"],"
                       "\"attributes\":[\"open\"]}],\"aliases\":[{\"name\":\"posts\","
                       "\"indices\":[\"posts-1\"]}],\"data_streams\":[{\"name\":\"logs\","
                       "\"backing_indices\":[\".ds-logs-000001\"],\"timestamp_field\":"
                       "\"@timestamp\"}]}";

    cr_expect_eq(target_parse_resolve("posts", 200, both, strlen(both)), TK_ALIAS);
    cr_expect_eq(target_parse_resolve("posts-1", 200, both, strlen(both)), TK_INDEX);
    cr_expect_eq(target_parse_resolve("logs", 200, both, strlen(both)), TK_DATA_STREAM);
    cr_expect_eq(target_parse_resolve("other", 200, both, strlen(both)), TK_ABSENT);
    cr_expect_eq(target_parse_resolve("posts", 404, "{}", 2), TK_ABSENT);
    cr_expect_eq(target_parse_resolve("posts", 200, "[1]", 3), TK_UNKNOWN);
    cr_expect_eq(target_parse_resolve("posts", 400, "{}", 2), TK_UNKNOWN);
}

Test(target, an_alias_writes_to_its_marked_or_only_index)
{
    char w[64];
    size_t n;
    const char *one = "{\"posts-1\":{\"aliases\":{\"posts\":{}}}}";
    const char *two = "{\"posts-1\":{\"aliases\":{\"posts\":{}}},"
                      "\"posts-2\":{\"aliases\":{\"posts\":{\"is_write_index\":true}}}}";
    const char *none = "{\"posts-1\":{\"aliases\":{\"posts\":{}}},"
                       "\"posts-2\":{\"aliases\":{\"posts\":{}}}}";
    const char *off = "{\"posts-1\":{\"aliases\":{\"posts\":{\"is_write_index\":false}}}}";

    cr_expect_eq(target_parse_alias("posts", one, strlen(one), w, sizeof(w), &n), 0);
    cr_expect_str_eq(w, "posts-1");
    cr_expect_eq(target_parse_alias("posts", two, strlen(two), w, sizeof(w), &n), 0);
    cr_expect_str_eq(w, "posts-2");
    cr_expect_eq(target_parse_alias("posts", none, strlen(none), w, sizeof(w), &n), -ENOENT);
    cr_expect_eq(n, 2);
    cr_expect_eq(target_parse_alias("posts", off, strlen(off), w, sizeof(w), &n), -ENOENT);
    cr_expect_eq(target_parse_alias("posts", "oops", 4, w, sizeof(w), &n), -EPROTO);
}

/* ---- the canary ---------------------------------------------------------------- */

Test(target, the_canary_writes_twice_then_deletes_with_external_versions)
{
    size_t len;
    char *b = target_canary_body("posts", 1000, &len);

    cr_assert_str_eq(b,
        "{\"index\":{\"_index\":\"posts\",\"_id\":\"\\\\ddb2es-probe\",\"version\":1002,"
        "\"version_type\":\"external\"}}\n{}\n"
        "{\"index\":{\"_index\":\"posts\",\"_id\":\"\\\\ddb2es-probe\",\"version\":1001,"
        "\"version_type\":\"external\"}}\n{}\n"
        "{\"delete\":{\"_index\":\"posts\",\"_id\":\"\\\\ddb2es-probe\",\"version\":1003,"
        "\"version_type\":\"external\"}}\n");
    cr_assert_eq(len, strlen(b));
    free(b);
}

static enum target_canary canary(long status, const char *body, bool *left)
{
    char why[600];

    return target_parse_canary(status, body, strlen(body), left, why, sizeof(why));
}

#define ITEM(op, st) "{\"" op "\":{\"status\":" #st "}}"
#define ERR(op, st, type, reason) \
    "{\"" op "\":{\"status\":" #st ",\"error\":{\"type\":\"" type "\",\"reason\":\"" reason "\"}}}"

Test(target, the_canary_reply_says_whether_versions_hold)
{
    bool left;

    cr_expect_eq(canary(200, "{\"errors\":true,\"items\":[" ITEM("index", 201) ","
                             ERR("index", 409, "version_conflict_engine_exception", "x") ","
                             ITEM("delete", 200) "]}", &left), CANARY_OK);
    cr_expect_not(left);
    cr_expect_eq(canary(200, "{\"items\":[" ERR("index", 409, "v", "x") "," ERR("index", 409,
                             "v", "x") "," ERR("delete", 409, "v", "x") "]}", &left),
                 CANARY_OK, "a newer canary is there: versions hold");
    cr_expect_eq(canary(200, "{\"items\":[" ITEM("index", 201) "," ITEM("index", 200) ","
                             ITEM("delete", 200) "]}", &left), CANARY_IGNORED);
    cr_expect_eq(canary(200, "{\"items\":[" ERR("index", 400, "illegal_argument_exception",
                             "Document ID is not supported in create/index operation request")
                             "," ERR("index", 400, "illegal_argument_exception", "x") ","
                             ITEM("delete", 404) "]}", &left), CANARY_NO_ID);
    cr_expect_eq(canary(200, "{\"items\":[" ERR("index", 400, "illegal_argument_exception",
                             "only write ops with an op_type of create are allowed in data "
                             "streams") "," ERR("index", 400, "x", "x") "," ERR("delete", 400,
                             "x", "x") "]}", &left), CANARY_DATA_STREAM);
    cr_expect_eq(canary(200, "{\"items\":[" ITEM("index", 201) "," ERR("index", 400,
                             "action_request_validation_exception", "no") ","
                             ITEM("delete", 200) "]}", &left), CANARY_REFUSED);
    cr_expect_eq(canary(200, "{\"items\":[" ITEM("index", 201) "," ERR("index", 409, "v", "x")
                             "," ERR("delete", 500, "exception", "x") "]}", &left), CANARY_OK);
    cr_expect(left, "the delete failed: the canary may be left");
    cr_expect_eq(canary(200, "{\"items\":[" ERR("index", 429, "es_rejected_execution_exception",
                             "x") "," ITEM("index", 201) "," ITEM("delete", 200) "]}", &left),
                 CANARY_RETRY);
    cr_expect_eq(canary(503, "{}", &left), CANARY_RETRY);
    cr_expect_eq(canary(0, "", &left), CANARY_RETRY);
    cr_expect_eq(canary(403, "{}", &left), CANARY_DENIED);
    cr_expect_eq(canary(400, "{\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":"
                             "\"bad\"},\"status\":400}", &left), CANARY_REFUSED);
    cr_expect_eq(canary(200, "{\"items\":[]}", &left), CANARY_REFUSED);
}

/* ---- templates ------------------------------------------------------------------ */

Test(target, a_template_is_an_object_of_settings_mappings_and_aliases)
{
    char why[256];
    const char *good = "{\"settings\":{\"index.mapping.depth.limit\":32},\"mappings\":{},"
                       "\"aliases\":{\"posts\":{}}}";

    cr_expect_eq(target_template_check(good, strlen(good), why, sizeof(why)), 0);
    cr_expect_eq(target_template_check("{}", 2, why, sizeof(why)), 0);
    cr_expect_eq(target_template_check("{\"mapping\":{}}", 14, why, sizeof(why)), -EINVAL);
    cr_expect_str_eq(why, "\"mapping\" is not settings, mappings or aliases");
    cr_expect_eq(target_template_check("{\"settings\":3}", 14, why, sizeof(why)), -EINVAL);
    cr_expect_str_eq(why, "\"settings\" is not an object");
    cr_expect_eq(target_template_check("[]", 2, why, sizeof(why)), -EINVAL);
    cr_expect_eq(target_template_check("{\"settings\":{},\"settings\":{}}", 29, why, sizeof(why)),
                 -EINVAL, "a key twice");
    cr_expect_eq(target_template_check("{\n\"settings\": {", 15, why, sizeof(why)), -EINVAL);
    cr_expect(strncmp(why, "not JSON: line 2", 16) == 0, "%s", why);
}

/* ---- the probe against the double ------------------------------------------------ */

static uv_loop_t loop;
static struct http *client;
static struct creds *creds;
static struct sink *snk;
static struct searchd *sd;
static struct target tgt;
static bool probed;
static char dlq[256];

static void on_doc(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                   void *arg)
{
}

/* A sink on the double (SigV4 aoss when aoss). */
static void connect_to(struct searchd *d, bool aoss)
{
    struct sink_opts o = {
        .url = searchd_url(d),
        .auth = aoss ? SINK_AUTH_SIGV4 : SINK_AUTH_NONE,
        .sigv4_service = aoss ? "aoss" : "es",
        .sigv4_region = "eu-west-1",
        .dlq_path = dlq,
        .request_timeout_ms = 5000,
    };

    snprintf(dlq, sizeof(dlq), "%s/target-dlq-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             getpid());
    cr_assert_eq(uv_loop_init(&loop), 0);
    client = http_new(&loop, NULL);
    if (aoss) {
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        unsetenv("AWS_SESSION_TOKEN");
        creds = creds_new(&loop, client, NULL);
    }
    snk = sink_new(&loop, client, creds, &o, on_doc, NULL, NULL);
    cr_assert_not_null(snk);
}

static void on_probed(struct target *t, void *arg)
{
    cr_assert_eq(t, &tgt);
    probed = true;
}

static bool is_probed(void *arg)
{
    return probed;
}

static void probe(bool canary, bool create)
{
    struct target_probe_opts o = { .aoss = creds != NULL, .canary = canary, .create = create };

    probed = false;
    cr_assert_eq(target_probe(snk, &tgt, &o, on_probed, NULL), 0);
    cr_assert(loop_run_until(&loop, is_probed, NULL, 10000), "the probe did not end");
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static void teardown(void)
{
    int n = 0;

    if (snk) {
        sink_close(snk, 1000, on_closed, &n);
        while (!n && uv_run(&loop, UV_RUN_ONCE))
            ;
        sink_free(snk);
        snk = NULL;
        creds_free(creds);
        creds = NULL;
        http_close(client, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        cr_expect_eq(uv_loop_close(&loop), 0);
    }
    target_free(&tgt);
    searchd_stop(sd);
    sd = NULL;
    unlink(dlq);
}

TestSuite(targetprobe, .fini = teardown, .timeout = 30);

/* The requests the double saw, as "METHOD path?query" lines. */
static char *requests(void)
{
    json_t *log = searchd_requests(sd), *e;
    size_t i;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    json_array_foreach(log, i, e) {
        const char *q = json_string_value(json_object_get(e, "query"));

        fprintf(f, "%s %s%s%s\n", json_string_value(json_object_get(e, "method")),
                json_string_value(json_object_get(e, "path")), q && *q ? "?" : "", q ? q : "");
    }
    fclose(f);
    json_decref(log);
    return out;
}

/* A request to the double that must answer 200. */
static void ask(const char *method, const char *path, const char *body)
{
    long status = 0;

    json_decref(searchd_json(sd, method, path, body, &status));
    cr_assert_eq(status, 200, "%s %s: %ld", method, path, status);
}

static void start(const char *const *opts, bool aoss)
{
    sd = searchd_startv(opts);
    connect_to(sd, aoss);
    memset(&tgt, 0, sizeof(tgt));
    cr_assert_eq(target_add_index(&tgt, "posts", "Posts", NULL, NULL), 0);
}

Test(targetprobe, opensearch_accepted_and_the_canary_leaves_nothing)
{
    char *log;
    json_t *d;

    start((const char *[]){ NULL }, false);
    ask("PUT", "/posts", "{}");
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s %s", tgt.why, tgt.ix[0].why);
    cr_expect_eq(tgt.root.flavour, TF_OPENSEARCH);
    cr_expect_not(tgt.root.source_param);
    cr_expect_eq(tgt.ix[0].kind, TK_INDEX);
    cr_expect_eq(tgt.ix[0].versions, TV_OK);
    log = requests();
    cr_expect_str_eq(log, "PUT /posts\nGET /\nGET /_resolve/index/posts\nPOST /_bulk\n");
    free(log);
    d = searchd_dump(sd);
    cr_expect(json_is_true(json_object_get(json_object_get(json_object_get(d, "posts"),
                                                           "\\ddb2es-probe"), "deleted")),
              "the canary is deleted");
    json_decref(d);
}

Test(targetprobe, elasticsearch_8_18_takes_include_source_on_error)
{
    start((const char *[]){ "--flavor", "es8", "--engine-version", "8.18.0", NULL }, false);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s %s", tgt.why, tgt.ix[0].why);
    cr_expect_eq(tgt.root.flavour, TF_ELASTICSEARCH);
    cr_expect(tgt.root.source_param);
    cr_expect_eq(tgt.ix[0].kind, TK_INDEX, "the canary made the missing index");
}

Test(targetprobe, elastic_serverless_is_accepted_without_cluster_calls)
{
    char *log;

    start((const char *[]){ "--flavor", "elastic-serverless", NULL }, false);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s %s", tgt.why, tgt.ix[0].why);
    cr_expect_eq(tgt.root.flavour, TF_ELASTIC_SERVERLESS);
    cr_expect(tgt.root.source_param);
    log = requests();
    cr_expect_null(strstr(log, "_cluster"), "%s", log);
    free(log);
}

Test(targetprobe, an_opensearch_serverless_search_collection_is_accepted_without_get_root)
{
    char *log;

    start((const char *[]){ "--flavor", "aoss-search", "--auth", "sigv4", "--access-key",
                            "AKIDEXAMPLE", "--secret-key",
                            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "--region", "eu-west-1",
                            "--service", "aoss", NULL }, true);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s %s", tgt.why, tgt.ix[0].why);
    cr_expect_eq(tgt.root.flavour, TF_AOSS);
    log = requests();
    cr_expect_str_eq(log, "GET /_resolve/index/posts\nPOST /_bulk\n", "no GET /");
    free(log);
}

Test(targetprobe, a_time_series_collection_cannot_mirror)
{
    start((const char *[]){ "--flavor", "aoss-timeseries", "--auth", "sigv4", "--access-key",
                            "AKIDEXAMPLE", "--secret-key",
                            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "--region", "eu-west-1",
                            "--service", "aoss", NULL }, true);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_CANNOT_MIRROR);
    cr_expect_eq(tgt.ix[0].versions, TV_NO_ID);
    cr_expect(strstr(tgt.ix[0].why, "Use a search collection") != NULL, "%s", tgt.ix[0].why);
}

Test(targetprobe, a_data_stream_cannot_mirror_and_gets_no_canary)
{
    char *log;

    start((const char *[]){ "--flavor", "es8", NULL }, false);
    ask("PUT", "/_data_stream/posts", NULL);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_CANNOT_MIRROR);
    cr_expect_eq(tgt.ix[0].kind, TK_DATA_STREAM);
    cr_expect(strstr(tgt.ix[0].why, "\"posts\" is a data stream") != NULL, "%s", tgt.ix[0].why);
    cr_expect(strstr(tgt.ix[0].why, "[table Posts] index") != NULL, "%s", tgt.ix[0].why);
    log = requests();
    cr_expect_null(strstr(log, "_bulk"), "%s", log);
    free(log);
}

Test(targetprobe, an_engine_that_drops_external_versions_cannot_mirror)
{
    start((const char *[]){ "--no-external-versions", NULL }, false);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_CANNOT_MIRROR);
    cr_expect_eq(tgt.ix[0].versions, TV_IGNORED);
    cr_expect(strstr(tgt.ix[0].why, "ignores external versions") != NULL, "%s", tgt.ix[0].why);
}

Test(targetprobe, an_alias_is_followed_to_its_write_index)
{
    char *log;

    start((const char *[]){ NULL }, false);
    ask("PUT", "/posts-1", "{\"aliases\":{\"posts\":{}}}");
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s", tgt.ix[0].why);
    cr_expect_eq(tgt.ix[0].kind, TK_ALIAS);
    cr_expect_str_eq(tgt.ix[0].write_index, "posts-1");
    log = requests();
    cr_expect(strstr(log, "GET /_alias/posts\n") != NULL, "%s", log);
    free(log);

    ask("PUT", "/posts-2", "{\"aliases\":{\"posts\":{}}}");
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_CANNOT_MIRROR);
    cr_expect(strstr(tgt.ix[0].why, "none is its write index") != NULL, "%s", tgt.ix[0].why);
}

static const char tmpl[] = "{\"settings\":{\"index.mapping.depth.limit\":32},"
                           "\"mappings\":{\"date_detection\":false},"
                           "\"aliases\":{\"posts-read\":{}}}";

Test(targetprobe, a_missing_index_is_made_from_its_template_before_the_canary)
{
    char *log;
    json_t *st;

    start((const char *[]){ NULL }, false);
    tgt.ix[0].template_path = strdup("/etc/ddb2es/posts.json");
    tgt.ix[0].template_body = strdup(tmpl);
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_OK, "%s", tgt.ix[0].why);
    cr_expect(tgt.ix[0].created);
    log = requests();
    cr_expect_str_eq(log, "GET /\nGET /_resolve/index/posts\nPUT /posts\nPOST /_bulk\n");
    free(log);
    st = searchd_json(sd, "GET", "/posts/_settings?flat_settings=true", NULL, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         st, "posts"), "settings"), "index.mapping.depth.limit")), "32");
    json_decref(st);
    st = searchd_json(sd, "GET", "/_alias/posts-read", NULL, NULL);
    cr_expect_not_null(json_object_get(st, "posts"), "the template's alias");
    json_decref(st);

    /* it exists now: probed again, nothing is made */
    probe(true, true);
    cr_expect_not(tgt.ix[0].created);
}

Test(targetprobe, a_template_the_engine_refuses_cannot_mirror)
{
    start((const char *[]){ "--flavor", "elastic-serverless", NULL }, false);
    tgt.ix[0].template_path = strdup("/etc/ddb2es/posts.json");
    tgt.ix[0].template_body = strdup("{\"settings\":{\"index.gc_deletes\":\"10m\"}}");
    probe(true, true);
    cr_assert_eq(tgt.verdict, TARGET_CANNOT_MIRROR);
    cr_expect(strstr(tgt.ix[0].why, "Settings [index.gc_deletes] not available in serverless "
                                    "mode") != NULL, "%s", tgt.ix[0].why);
}

Test(targetprobe, check_makes_nothing_and_probe_false_writes_nothing)
{
    char *log;

    start((const char *[]){ NULL }, false);
    tgt.ix[0].template_path = strdup("/etc/ddb2es/posts.json");
    tgt.ix[0].template_body = strdup(tmpl);
    probe(true, false); /* check: nothing is made */
    cr_assert_eq(tgt.verdict, TARGET_OK);
    cr_expect_eq(tgt.ix[0].kind, TK_ABSENT);
    cr_expect_eq(tgt.ix[0].versions, TV_UNTESTED);
    log = requests();
    cr_expect_str_eq(log, "GET /\nGET /_resolve/index/posts\n");
    free(log);

    ask("PUT", "/posts", "{}");
    ask("DELETE", "/_double/requests", NULL);
    probe(false, true); /* [sink] probe = false */
    cr_assert_eq(tgt.verdict, TARGET_OK);
    cr_expect_eq(tgt.ix[0].versions, TV_UNTESTED);
    log = requests();
    cr_expect_str_eq(log, "GET /\nGET /_resolve/index/posts\n");
    free(log);
}

Test(targetprobe, no_engine_is_unreachable_and_a_refusal_is_denied)
{
    start((const char *[]){ "--auth", "basic", "--user", "u", "--password", "p", NULL }, false);
    probe(true, true);
    cr_expect_eq(tgt.verdict, TARGET_DENIED, "%s", tgt.why);
    cr_expect(strstr(tgt.why, "GET /: HTTP 401") != NULL, "%s", tgt.why);
    cr_assert_eq(searchd_stop(sd), 0);
    sd = NULL;
    probe(true, true);
    cr_expect_eq(tgt.verdict, TARGET_UNREACHABLE, "%s", tgt.why);
}

/* README "Creating the index": the template it recommends, as shipped. */
Test(targetprobe, the_recommended_template_is_an_index_body_the_engine_takes)
{
    char *text = NULL, why[256];
    size_t cap = 0;
    ssize_t n;
    FILE *f = fopen("deploy/index-template.json", "r");
    long status = 0;
    json_t *r;

    cr_assert_not_null(f, "deploy/index-template.json");
    n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    cr_assert_gt(n, 0);
    cr_assert_eq(target_template_check(text, (size_t)n, why, sizeof(why)), 0, "%s", why);
    sd = searchd_start(NULL);
    json_decref(searchd_json(sd, "PUT", "/posts", text, &status));
    cr_assert_eq(status, 200);
    /* a 38-digit count and a fraction in one field: both doubles, nothing refused */
    r = searchd_bulk(sd, "/_bulk",
                     "{\"index\":{\"_index\":\"posts\",\"_id\":\"a\"}}\n"
                     "{\"n\":12345678901234567890123456789012345678,\"m\":{\"x\":3}}\n"
                     "{\"index\":{\"_index\":\"posts\",\"_id\":\"b\"}}\n{\"n\":1.5,\"m\":{\"x\":-2.25}}\n",
                     &status);
    cr_assert_eq(status, 200);
    cr_expect(json_is_false(json_object_get(r, "errors")), "a document was refused");
    json_decref(r);
    r = searchd_json(sd, "GET", "/posts/_mapping", NULL, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         json_object_get(json_object_get(json_object_get(json_object_get(
                             r, "posts"), "mappings"), "properties"), "n"), "fields"), "exact"),
                         "type")), "keyword", "the exact text of each number is searchable");
    json_decref(r);
    free(text);
}
