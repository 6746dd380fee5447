/* probe: `ddb2es check` and `ddb2es run` against the search double playing
 * each flavour (DynamoDB Local for the tables): a target that cannot
 * mirror is refused with exit 78 and a line saying why and what to do; the
 * others are accepted, and the requests the double saw show what ddb2es
 * made of them. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(probe, .timeout = 120);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

/* The AWS side: the test keys; with aoss, SigV4 for the aoss service. */
static const char *const plain_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                         NULL };
static const char *const aoss_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                        "DDB2ES_SINK_AUTH=sigv4",
                                        "DDB2ES_SINK_SIGV4_SERVICE=aoss", NULL };
#define AOSS_AUTH "--auth", "sigv4", "--access-key", "test", "--secret-key", "test", \
                  "--region", "us-east-1", "--service", "aoss"

struct world {
    char name[128], dir[256];
    struct e2e_table t;
    struct searchd *sd;
    const char *conf;
    const char *const *env;
};

/* A table (its index named after it) and the double started with opts. */
static void world(struct world *w, const char *const *opts, bool aoss, const char *extra)
{
    need_ddb();
    memset(w, 0, sizeof(*w));
    ddbc_table_name(w->name, sizeof(w->name), "prb");
    for (char *c = w->name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    ddbc_create_table(w->name, "id", "S", NULL, NULL, "NEW_IMAGE");
    w->t = (struct e2e_table){ .name = w->name, .index = w->name, .hash = "id", .extra = extra };
    w->sd = searchd_startv(opts);
    w->conf = e2e_config(searchd_url(w->sd), &w->t, 1, NULL, w->dir, sizeof(w->dir));
    w->env = aoss ? aoss_env : plain_env;
}

static void put_index(struct world *w, const char *body)
{
    char path[200];
    long status = 0;

    snprintf(path, sizeof(path), "/%s", w->name);
    if (w->env == aoss_env) /* the test does not sign: auth off for a moment */
        cr_assert_eq(searchd_config(w->sd, "{\"auth\":\"none\"}"), 200);
    json_decref(searchd_json(w->sd, "PUT", path, body, &status));
    cr_assert_eq(status, 200, "PUT %s: %ld", path, status);
    if (w->env == aoss_env)
        cr_assert_eq(searchd_config(w->sd, "{\"auth\":\"sigv4\"}"), 200);
}

static int check(struct world *w, char **out)
{
    char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "check", "-c", w->conf, NULL };
    struct proc p;
    int rc = proc_run(argv, w->env, 60000, &p);

    *out = proc_slurp(p.out_path);
    return rc;
}

/* The requests the double saw, one "METHOD path?query" a line. */
static char *requests(struct searchd *sd)
{
    json_t *log = searchd_requests(sd), *e;
    size_t i, len = 0;
    char *out = NULL;
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

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void done(struct world *w)
{
    searchd_stop(w->sd);
}

/* ---- check ---------------------------------------------------------------- */

Test(probe, check_accepts_each_flavour_that_can_mirror_and_says_what_it_found)
{
    static const struct {
        const char *const opts[16];
        bool aoss;
        const char *says;
    } cases[] = {
        { { NULL }, false, "answered: OpenSearch 2.11.0\n" },
        { { "--flavor", "es8", "--engine-version", "8.18.0", NULL }, false,
          "answered: Elasticsearch 8.18.0; bulk requests say include_source_on_error=false" },
        { { "--flavor", "elastic-serverless", NULL }, false,
          "answered: Elastic Cloud Serverless; bulk requests say include_source_on_error=false" },
        { { "--flavor", "aoss-search", AOSS_AUTH, NULL }, true,
          "answered: OpenSearch Serverless (SigV4 service aoss; bulk bodies at most 10 MiB)" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct world w;
        char *out, *log, want[600];
        int rc;

        world(&w, cases[i].opts, cases[i].aoss, NULL);
        put_index(&w, "{}");
        rc = check(&w, &out);
        cr_expect_eq(rc, 0, "case %zu: %s", i, out);
        cr_expect(strstr(out, cases[i].says) != NULL, "case %zu: %s", i, out);
        snprintf(want, sizeof(want), "[table %s] index \"%s\": an index; external versions hold",
                 w.name, w.name);
        cr_expect(strstr(out, want) != NULL, "case %zu: %s", i, out);
        log = requests(w.sd);
        cr_expect_eq(count(log, "GET /\n"), cases[i].aoss ? 0 : 1, "case %zu: %s", i, log);
        cr_expect_null(strstr(log, "_cluster"), "case %zu: %s", i, log);
        snprintf(want, sizeof(want), "GET /_resolve/index/%s\nPOST /_bulk\n", w.name);
        cr_expect(strstr(log, want) != NULL, "case %zu: %s", i, log);
        free(log);
        free(out);
        done(&w);
    }
}

/* The three targets that cannot mirror: 0 a time series collection, 1 a
 * data stream, 2 an engine that drops external versions. */
static void refused_world(struct world *w, int which)
{
    static const char *const ts[] = { "--flavor", "aoss-timeseries", AOSS_AUTH, NULL };
    static const char *const es8[] = { "--flavor", "es8", NULL };
    static const char *const drops[] = { "--no-external-versions", NULL };
    char path[200];

    world(w, which == 0 ? ts : which == 1 ? es8 : drops, which == 0, NULL);
    if (which == 1) {
        snprintf(path, sizeof(path), "/_data_stream/%s", w->name);
        json_decref(searchd_json(w->sd, "PUT", path, NULL, NULL));
    } else {
        put_index(w, "{}");
    }
}

static const char *const refusal[] = {
    "the engine refuses client document ids",
    "is a data stream, which takes only op_type create",
    "the engine ignores external versions",
};
static const char *const remedy[] = {
    "Use a search collection",
    "index at a regular index, or at an alias of one",
    "Point [sink] url at the engine itself",
};

Test(probe, check_refuses_each_target_that_cannot_mirror)
{
    for (int i = 0; i < 3; i++) {
        struct world w;
        char *out, want[600];
        int rc;

        refused_world(&w, i);
        rc = check(&w, &out);
        cr_expect_eq(rc, 78, "case %d: %s", i, out);
        snprintf(want, sizeof(want), "[table %s] index \"%s\": CANNOT MIRROR the table: ", w.name,
                 w.name);
        cr_expect(strstr(out, want) != NULL, "case %d: %s", i, out);
        cr_expect(strstr(out, refusal[i]) != NULL, "case %d: %s", i, out);
        cr_expect(strstr(out, remedy[i]) != NULL, "case %d: %s", i, out);
        cr_expect_null(strstr(out, "everything answered"), "case %d", i);
        free(out);
        done(&w);
    }
}

/* ---- run ---------------------------------------------------------------- */

Test(probe, run_refuses_each_target_that_cannot_mirror)
{
    for (int i = 0; i < 3; i++) {
        struct world w;
        struct proc p;
        char *err, *log, item[200];
        int rc;

        refused_world(&w, i);
        snprintf(item, sizeof(item), "{\"id\":{\"S\":\"a\"},\"n\":{\"N\":\"%d\"}}", i);
        ddbc_put(w.name, item);
        e2e_start_env(&p, w.conf, w.env);
        rc = proc_wait(&p, 30000);
        if (rc == -1)
            e2e_stop(&p, 15000);
        err = proc_slurp(p.err_path);
        cr_expect_eq(rc, 78, "case %d: exit %d\n%s", i, rc, err);
        cr_expect(strstr(err, "cannot mirror the table: ") != NULL, "case %d: %s", i, err);
        cr_expect(strstr(err, refusal[i]) != NULL, "case %d: %s", i, err);
        cr_expect(strstr(err, remedy[i]) != NULL, "case %d: %s", i, err);
        log = requests(w.sd);
        cr_expect_leq(count(log, "POST /_bulk"), 1, "case %d: only the canary went: %s", i, log);
        free(log);
        free(err);
        done(&w);
    }
}

static bool indexed(struct searchd *sd, const char *index, const char *id)
{
    for (int i = 0; i < 300; i++) {
        json_t *d = searchd_dump(sd), *doc = json_object_get(json_object_get(d, index), id);
        bool there = doc && !json_is_true(json_object_get(doc, "deleted"));

        json_decref(d);
        if (there)
            return true;
        usleep(100000);
    }
    return false;
}

Test(probe, run_adapts_to_what_it_found)
{
    static const struct {
        const char *const opts[16];
        bool aoss, source_param;
    } cases[] = {
        { { "--flavor", "es8", "--engine-version", "8.18.0", NULL }, false, true },
        { { NULL }, false, false },
        { { "--flavor", "aoss-search", AOSS_AUTH, NULL }, true, false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct world w;
        struct proc p;
        char *log, *err;
        json_t *reqs, *e;
        size_t k, bulks = 0;
        bool ok;

        world(&w, cases[i].opts, cases[i].aoss, NULL);
        ddbc_put(w.name, "{\"id\":{\"S\":\"a\"}}");
        e2e_start_env(&p, w.conf, w.env);
        ok = indexed(w.sd, w.name, "a");
        err = proc_slurp(p.err_path);
        cr_expect(ok, "case %zu: not indexed\n%s", i, err);
        cr_expect_eq(e2e_stop(&p, 15000), 0, "case %zu", i);
        reqs = searchd_requests(w.sd);
        json_array_foreach(reqs, k, e) {
            const char *path = json_string_value(json_object_get(e, "path"));
            const char *q = json_string_value(json_object_get(e, "query"));

            if (strcmp(path, "/_bulk") != 0 || !*q)
                continue; /* the canary's bulk has no parameters */
            bulks++;
            cr_expect_eq(strstr(q, "include_source_on_error=false") != NULL,
                         cases[i].source_param, "case %zu: %s", i, q);
            cr_expect_eq(json_integer_value(json_object_get(e, "status")), 200, "case %zu", i);
        }
        cr_expect_geq(bulks, 1, "case %zu", i);
        json_decref(reqs);
        log = requests(w.sd);
        if (cases[i].aoss)
            cr_expect_eq(count(log, "GET /\n"), 0, "case %zu: no GET / on Serverless: %s", i, log);
        cr_expect(strstr(log, "POST /_bulk\n") < strstr(log, "POST /_bulk?"),
                  "case %zu: the canary before the first bulk: %s", i, log);
        free(log);
        free(err);
        done(&w);
    }
}

/* ---- index templates ------------------------------------------------------ */

static const char template_text[] =
    "{\n  \"settings\": {\"index.mapping.depth.limit\": 32},\n"
    "  \"mappings\": {\"date_detection\": false}\n}\n";

/* A world whose table names an index_template holding text; returns its path. */
static const char *template_world(struct world *w, const char *text)
{
    static char path[400], extra[500];
    static int n;
    const char *tmp = getenv("TMPDIR");
    FILE *f;

    snprintf(path, sizeof(path), "%s/index-%d-%d.json", tmp ? tmp : "/tmp", getpid(), n++);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    snprintf(extra, sizeof(extra), "index_template = %s", path);
    world(w, (const char *[]){ NULL }, false, extra);
    return path;
}

Test(probe, a_missing_index_is_made_from_its_template_before_the_first_bulk)
{
    struct world w;
    struct proc p;
    const char *path;
    char *out, *log, want[600], put[300];
    json_t *st;

    path = template_world(&w, template_text);
    cr_assert_eq(check(&w, &out), 0, "%s", out);
    snprintf(want, sizeof(want), "[table %s] index \"%s\": does not exist yet: `ddb2es run` "
             "creates it from %s", w.name, w.name, path);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    free(out);
    log = requests(w.sd);
    cr_expect_null(strstr(log, "PUT"), "check makes nothing: %s", log);
    free(log);

    ddbc_put(w.name, "{\"id\":{\"S\":\"a\"}}");
    e2e_start_env(&p, w.conf, w.env);
    cr_expect(indexed(w.sd, w.name, "a"));
    cr_expect_eq(e2e_stop(&p, 15000), 0);
    log = requests(w.sd);
    snprintf(put, sizeof(put), "PUT /%s\n", w.name);
    cr_assert_not_null(strstr(log, put), "%s", log);
    cr_expect(strstr(log, put) < strstr(log, "POST /_bulk"), "made before any bulk: %s", log);
    free(log);
    snprintf(put, sizeof(put), "/%s/_settings?flat_settings=true", w.name);
    st = searchd_json(w.sd, "GET", put, NULL, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
                         st, w.name), "settings"), "index.mapping.depth.limit")), "32");
    json_decref(st);
    done(&w);
}

Test(probe, a_template_that_is_not_an_index_body_is_refused_by_check_and_run)
{
    struct world w;
    struct proc p;
    const char *path;
    char *out, want[600];
    int rc;

    path = template_world(&w, "{\"mapping\": {}}\n");
    rc = check(&w, &out);
    free(out);
    cr_expect_eq(rc, 78);
    e2e_start_env(&p, w.conf, w.env);
    rc = proc_wait(&p, 20000);
    out = proc_slurp(p.err_path);
    cr_expect_eq(rc, 78, "%s", out);
    snprintf(want, sizeof(want), "[table %s] index_template: \"%s\": \"mapping\" is not "
             "settings, mappings or aliases", w.name, path);
    cr_expect(strstr(out, want) != NULL, "%s", out);
    cr_expect(strstr(out, "ddb2es.conf:") != NULL, "names the file and line: %s", out);
    free(out);
    done(&w);
}

/* ---- after the engine was unreachable ----------------------------------------- */

/* A double on the port of the one that stopped. */
static struct searchd *restart_on(int port, const char *opt)
{
    char listen[64];

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    return searchd_start("--listen", listen, opt, NULL);
}

static void unreachable_then(struct world *w, struct proc *p, const char *opt)
{
    int port;

    world(w, (const char *[]){ NULL }, false, NULL);
    put_index(w, "{}");
    ddbc_put(w->name, "{\"id\":{\"S\":\"a\"}}");
    e2e_start_env(p, w->conf, w->env);
    cr_assert(indexed(w->sd, w->name, "a"));
    port = searchd_port(w->sd);
    cr_assert_eq(searchd_stop(w->sd), 0);
    ddbc_put(w->name, "{\"id\":{\"S\":\"b\"}}");
    cr_assert(proc_wait_for_text(p->err_path, "the search engine did not answer", 30000),
              "the bulk of b never failed");
    w->sd = restart_on(port, opt);
    put_index(w, "{}");
}

Test(probe, an_engine_back_after_an_outage_is_probed_before_any_bulk)
{
    struct world w;
    struct proc p;
    char *log, resolve[300];

    unreachable_then(&w, &p, NULL);
    cr_expect(indexed(w.sd, w.name, "b"));
    cr_expect_eq(e2e_stop(&p, 15000), 0);
    log = requests(w.sd);
    snprintf(resolve, sizeof(resolve), "GET /_resolve/index/%s\n", w.name);
    cr_assert_not_null(strstr(log, resolve), "%s", log);
    cr_expect(strstr(log, resolve) < strstr(log, "POST /_bulk?"), "probed first: %s", log);
    free(log);
    done(&w);
}

Test(probe, an_engine_that_cannot_mirror_found_after_an_outage_stops_the_daemon)
{
    struct world w;
    struct proc p;
    char *err, *log;
    int rc;

    unreachable_then(&w, &p, "--no-external-versions");
    rc = proc_wait(&p, 30000);
    if (rc == -1)
        e2e_stop(&p, 15000);
    err = proc_slurp(p.err_path);
    cr_expect_eq(rc, 78, "%s", err);
    cr_expect(strstr(err, "the engine ignores external versions") != NULL, "%s", err);
    log = requests(w.sd);
    cr_expect_null(strstr(log, "POST /_bulk?"), "b never went there: %s", log);
    free(log);
    free(err);
    done(&w);
}
