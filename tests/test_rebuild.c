/* ddb2es rebuild: the sink's mirror (both copies in one bulk request, the
 * owner told once, a copy the engine refuses dead-lettered under the new
 * index), the daemon's part (a request file in the state directory turns
 * the mirror on and is acknowledged), and the command end to end against
 * DynamoDB Local, the search double and a live `ddb2es run`: the alias
 * moved in one call under a live workload, an interrupted rebuild
 * continued, a concrete index replaced only with --drop-old. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/http.h"
#include "base/jsonx.h"
#include "indexer/sink.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

/* ---- the sink's mirror, against fakehttp ---------------------------------- */

#define MAXT 64

static uv_loop_t loop;
static struct http *client;
static struct fakehttp *fk;
static struct sink *snk;
static char dlq_path[256];

static struct {
    int outcome[MAXT];
    int times[MAXT];
    size_t n;
} got;

/* The engine: per action, 400 for the id "bad" in index "posts-new", 429
 * the first time for "slow" there, else 201 (200 for a delete). */
static struct {
    pthread_mutex_t mu;
    char *bodies[32];
    size_t nbodies;
    int slow_seen;
} eng = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void engine(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    json_t *items = json_array(), *root;
    static char *text;

    (void)arg;
    if (strcmp(req->method, "POST") != 0) {
        out->status = 200;
        out->body = "{}";
        return;
    }
    pthread_mutex_lock(&eng.mu);
    if (eng.nbodies < 32)
        eng.bodies[eng.nbodies++] = strdup(req->body);
    for (const char *line = req->body; line && *line;) {
        const char *nl = strchr(line, '\n');
        json_t *act = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
        const char *op = json_object_iter_key(json_object_iter(act));
        json_t *meta = json_object_iter_value(json_object_iter(act));
        const char *ix = json_string_value(json_object_get(meta, "_index"));
        const char *id = json_string_value(json_object_get(meta, "_id"));
        bool mirror = ix && strcmp(ix, "posts-new") == 0;
        int st = op && strcmp(op, "delete") == 0 ? 200 : 201;

        cr_assert_not_null(op, "an action line: %.80s", line);
        if (mirror && id && strcmp(id, "bad") == 0)
            st = 400;
        if (mirror && id && strcmp(id, "slow") == 0 && eng.slow_seen++ == 0)
            st = 429;
        json_array_append_new(items, st < 300 ? json_pack("{s:{s:i}}", op, "status", st)
                                              : json_pack("{s:{s:i,s:{s:s,s:s}}}", op, "status",
                                                          st, "error", "type",
                                                          st == 400 ? "mapper_parsing_exception"
                                                                    : "es_rejected_execution_exception",
                                                          "reason", "scripted"));
        line = nl ? nl + 1 : NULL;
        if (line && strcmp(op, "delete") != 0)
            line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
        json_decref(act);
    }
    root = json_pack("{s:b,s:o}", "errors", 1, "items", items);
    free(text);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    pthread_mutex_unlock(&eng.mu);
    out->status = 200;
    out->body = text;
}

static void on_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                    void *arg)
{
    (void)owner;
    (void)op;
    (void)arg;
    cr_assert_lt(ticket, MAXT);
    got.outcome[ticket] = (int)outcome;
    got.times[ticket]++;
    got.n++;
}

static void sink_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    memset(&got, 0, sizeof(got));
    pthread_mutex_lock(&eng.mu);
    for (size_t i = 0; i < eng.nbodies; i++)
        free(eng.bodies[i]);
    eng.nbodies = 0;
    eng.slow_seen = 0;
    pthread_mutex_unlock(&eng.mu);
    snprintf(dlq_path, sizeof(dlq_path), "%s/rebuild-dlq-%d.ndjson", tmp ? tmp : "/tmp",
             getpid());
    unlink(dlq_path);
    cr_assert_eq(uv_loop_init(&loop), 0);
    fk = fake_start();
    fake_set_handler(fk, engine, NULL);
    client = http_new(&loop, NULL);
    snk = sink_new(&loop, client, NULL,
                   &(struct sink_opts){ .url = fake_url(fk), .auth = SINK_AUTH_NONE,
                                        .bulk_max_actions = 100, .bulk_max_bytes = 1 << 20,
                                        .flush_interval_ms = 5000, .concurrency = 1,
                                        .dlq_path = dlq_path, .request_timeout_ms = 5000,
                                        .max_backoff_ms = 50, .backoff_base_ms = 10,
                                        .version_type = "external" },
                   on_done, NULL, NULL);
    cr_assert_not_null(snk);
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static void sink_teardown(void)
{
    int closed = 0, hclosed = 0;

    sink_close(snk, 1000, on_closed, &closed);
    while (!closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    sink_free(snk);
    http_close(client, on_closed, &hclosed);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_expect_eq(uv_loop_close(&loop), 0);
    fake_stop(fk);
    unlink(dlq_path);
}

TestSuite(rebuild_sink, .init = sink_setup, .fini = sink_teardown, .timeout = 20);

static void submit(enum doc_op op, const char *id, uint64_t version, uint64_t ticket)
{
    struct doc d;

    memset(&d, 0, sizeof(d));
    d.op = op;
    d.index = "posts";
    d.id_len = strlen(id);
    memcpy(d.id, id, d.id_len);
    d.version = version;
    buf_init(&d.source, 0);
    if (op == DOC_INDEX)
        buf_printf(&d.source, "{\"title\":\"doc %s\"}", id);
    d.table = "Posts";
    cr_assert_eq(sink_submit(snk, &d, NULL, ticket), 0);
}

static bool done_n(void *arg)
{
    return got.n >= *(size_t *)arg;
}

static bool run_until_done(size_t n)
{
    return loop_run_until(&loop, done_n, &n, 5000);
}

/* The action lines of a body, as JSON (the sources left out). */
static json_t *actions_of(const char *body)
{
    json_t *out = json_array();

    for (const char *line = body; line && *line;) {
        const char *nl = strchr(line, '\n');
        json_t *act = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
        bool del = json_object_get(act, "delete") != NULL;

        json_array_append_new(out, act);
        line = nl ? nl + 1 : NULL;
        if (line && !del)
            line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
    }
    return out;
}

static const char *meta_str(json_t *act, const char *key)
{
    return json_string_value(json_object_get(json_object_iter_value(json_object_iter(act)), key));
}

static json_int_t meta_int(json_t *act, const char *key)
{
    return json_integer_value(json_object_get(json_object_iter_value(json_object_iter(act)), key));
}

Test(rebuild_sink, both_copies_go_in_one_bulk_request_and_the_owner_hears_once)
{
    json_t *acts;

    cr_assert_eq(sink_mirror_set(snk, "posts", "posts-new"), 0);
    cr_assert_str_eq(sink_mirror_of(snk, "posts"), "posts-new");
    cr_assert_null(sink_mirror_of(snk, "other"));
    submit(DOC_INDEX, "a", 1001, 0);
    submit(DOC_DELETE, "b", 1002, 1);
    submit(DOC_INDEX, "c", 1003, 2);
    sink_flush(snk);
    cr_assert(run_until_done(3));
    cr_assert_eq(fake_nreq(fk), 1, "one bulk request carries both copies");
    acts = actions_of(eng.bodies[0]);
    cr_assert_eq(json_array_size(acts), 6, "%s", eng.bodies[0]);
    for (size_t i = 0; i < 3; i++) {
        json_t *live = json_array_get(acts, 2 * i), *copy = json_array_get(acts, 2 * i + 1);

        cr_assert_str_eq(meta_str(live, "_index"), "posts");
        cr_assert_str_eq(meta_str(copy, "_index"), "posts-new");
        cr_assert_str_eq(json_object_iter_key(json_object_iter(live)),
                         json_object_iter_key(json_object_iter(copy)), "the same action");
        cr_assert_str_eq(meta_str(live, "_id"), meta_str(copy, "_id"));
        cr_assert_eq(meta_int(live, "version"), meta_int(copy, "version"));
        cr_assert_eq(meta_int(copy, "version"), (json_int_t)(1001 + i));
        cr_assert_str_eq(meta_str(copy, "version_type"), "external");
    }
    json_decref(acts);
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(got.times[i], 1, "ticket %zu reported %d times", i, got.times[i]);
        cr_assert_eq(got.outcome[i], SINK_INDEXED);
    }
    cr_assert_eq(sink_mirror_actions(snk, "Posts"), 3);

    /* Off: the live index alone again. */
    cr_assert_eq(sink_mirror_set(snk, "posts", NULL), 0);
    cr_assert_null(sink_mirror_of(snk, "posts"));
    submit(DOC_INDEX, "d", 1004, 3);
    sink_flush(snk);
    cr_assert(run_until_done(4));
    acts = actions_of(eng.bodies[1]);
    cr_assert_eq(json_array_size(acts), 1);
    json_decref(acts);
    cr_assert_eq(sink_mirror_actions(snk, "Posts"), 3);
}

Test(rebuild_sink, a_refused_copy_is_dead_lettered_for_the_new_index_and_the_live_one_goes_on)
{
    char line[8192];
    json_t *j;
    FILE *f;

    cr_assert_eq(sink_mirror_set(snk, "posts", "posts-new"), 0);
    submit(DOC_INDEX, "bad", 2001, 0);
    submit(DOC_INDEX, "slow", 2002, 1);
    submit(DOC_INDEX, "fine", 2003, 2);
    sink_flush(snk);
    cr_assert(run_until_done(3));
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(got.times[i], 1, "ticket %zu reported %d times", i, got.times[i]);
    cr_assert_eq(got.outcome[0], SINK_INDEXED, "the live copy's outcome: indexed");
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(fake_nreq(fk), 2, "the mirror's 429 was retried alone");
    {
        json_t *acts = actions_of(eng.bodies[1]);

        cr_assert_eq(json_array_size(acts), 1);
        cr_assert_str_eq(meta_str(json_array_get(acts, 0), "_index"), "posts-new");
        cr_assert_str_eq(meta_str(json_array_get(acts, 0), "_id"), "slow");
        json_decref(acts);
    }
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f, "a dead-letter file");
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_null(fgets(line + strlen(line), (int)(sizeof(line) - strlen(line)), f),
                   "one entry only: the live copy was not refused");
    fclose(f);
    j = json_loads(line, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "index")), "posts-new");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "bad");
    cr_assert_eq(json_integer_value(json_object_get(j, "status")), 400);
    json_decref(j);
}

/* ---- the command, end to end ---------------------------------------------- */

static const char *const rb_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                      NULL };

TestSuite(rebuild, .timeout = 240);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void new_table(char *name, size_t len, const char *prefix, struct e2e_table *t)
{
    ddbc_table_name(name, len, prefix);
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    memset(t, 0, sizeof(*t));
    t->name = t->index = name;
    t->hash = "pk";
    t->range = "sk";
    ddbc_create_table(name, "pk", "S", "sk", "N", "NEW_AND_OLD_IMAGES");
}

static void rebuild_start(struct proc *p, const char *conf, const char *const *args)
{
    static char bin[512];
    const char *argv[32] = { proc_path("ddb2es", bin, sizeof(bin)), "rebuild", "-c", conf };
    size_t n = 4;

    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    proc_start(p, argv, rb_env);
}

static int proc_end(struct proc *p, long ms)
{
    int rc = proc_wait(p, ms);

    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    return rc;
}

static void dump_log(const char *what, const char *path)
{
    char *log = proc_slurp(path);
    size_t n = strlen(log);

    cr_log_warn("%s log%s:\n%s", what, n > 20000 ? " (its end)" : "",
                n > 20000 ? log + n - 20000 : log);
    free(log);
}

static bool file_has(const char *path, const char *text)
{
    char *s = proc_slurp(path);
    bool yes = strstr(s, text) != NULL;

    free(s);
    return yes;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fputs(text, f) >= 0, true);
    cr_assert_eq(fclose(f), 0);
}

static bool exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* The indices of alias name (as GET /_alias/<name> lists them), with the
 * write index in *write; the count. */
static size_t alias_indices(struct searchd *sd, const char *name, char out[][256], size_t max,
                            char *write, size_t wlen)
{
    char path[300];
    long status = 0;
    json_t *j, *v;
    const char *k;
    size_t n = 0;

    snprintf(path, sizeof(path), "/_alias/%s", name);
    j = searchd_json(sd, "GET", path, NULL, &status);
    write[0] = '\0';
    if (status != 200) {
        json_decref(j);
        return 0;
    }
    json_object_foreach(j, k, v) {
        json_t *def = json_object_get(json_object_get(v, "aliases"), name);

        if (n < max)
            snprintf(out[n], 256, "%s", k);
        n++;
        if (json_is_true(json_object_get(def, "is_write_index")))
            snprintf(write, wlen, "%s", k);
    }
    json_decref(j);
    return n;
}

static long status_of(struct searchd *sd, const char *method, const char *path, const char *body)
{
    long status = 0;

    json_decref(searchd_json(sd, method, path, body, &status));
    return status;
}

/* The new index the command's last line names: "... points at <name>". */
static void new_index_of(const struct proc *p, char *out, size_t len)
{
    char *s = proc_slurp(p->out_path), *at = strstr(s, " points at ");

    cr_assert_not_null(at, "the command names the new index: %s", s);
    snprintf(out, len, "%.*s", (int)strcspn(at + 11, "\n"), at + 11);
    free(s);
}

/* ---- readers and writers beside the rebuild ---- */

#define NSTABLE 20

/* The live workload: random writes of every kind on its keys, and every
 * fifth step a new item that is never written again, with the time the
 * table held it from (PutItem answered). */
#define NFRESH 400
struct writer {
    struct wl w;
    atomic_bool stop;
    unsigned writes;
    pthread_mutex_t mu;
    char fresh[NFRESH][64];
    double fresh_at[NFRESH];
    unsigned nfresh;
};

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *write_loop(void *arg)
{
    struct writer *x = arg;

    for (unsigned step = 0; !atomic_load(&x->stop); step++) {
        x->writes += wl_step(&x->w);
        if (step % 5 == 0 && x->nfresh < NFRESH) {
            char item[200], id[64];
            json_t *it;

            snprintf(item, sizeof(item), "{\"pk\":{\"S\":\"fresh-%u\"},\"sk\":{\"N\":\"2\"},"
                     "\"note\":{\"S\":\"written once during the rebuild\"}}", x->nfresh);
            ddbc_put(x->w.table, item);
            it = json_loads(item, 0, NULL);
            e2e_doc_id(it, "pk", "sk", '|', id, sizeof(id));
            json_decref(it);
            pthread_mutex_lock(&x->mu);
            memcpy(x->fresh[x->nfresh], id, sizeof(id));
            x->fresh_at[x->nfresh] = mono_s();
            x->nfresh++;
            pthread_mutex_unlock(&x->mu);
        }
        usleep(20 * 1000);
    }
    return NULL;
}

/* Reads through the alias every 100 ms: the stable items (written before
 * the rebuild, never touched again, so held by the table for far more than
 * 5 s) and every fresh item the table has held for over 5 s must be in
 * every answer. */
struct reader {
    char url[400];
    char ids[NSTABLE][64];
    struct writer *x;
    unsigned fresh_checked;
    atomic_bool stop;
    unsigned reads, misses, errors;
    char first_miss[300];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* One search through the alias on this thread's own connection: its hits,
 * numbers quoted (e2e.h) as the documents hold 38-digit ones. */
static json_t *search(CURL *c, const char *url, long *status)
{
    struct buf b;
    char *quoted;
    json_t *j = NULL;

    buf_init(&b, BUF_NOMAX);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    *status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    quoted = *status == 200 ? e2e_quote_numbers(b.ptr, b.len) : NULL;
    if (quoted)
        j = jsonx_loadb(quoted, strlen(quoted), 0, NULL); /* strings of any bytes */
    free(quoted);
    buf_close(&b);
    return j;
}

static bool has_hit(json_t *hits, const char *id)
{
    size_t i;
    json_t *h;

    json_array_foreach(hits, i, h)
        if (strcmp(json_string_value(json_object_get(h, "_id")), id) == 0)
            return true;
    return false;
}

static void *read_loop(void *arg)
{
    struct reader *r = arg;
    CURL *c = curl_easy_init();

    while (!atomic_load(&r->stop)) {
        long status = 0;
        double asked = mono_s();
        json_t *j = search(c, r->url, &status);
        json_t *hits = json_object_get(json_object_get(j, "hits"), "hits");

        if (!json_is_array(hits)) {
            r->errors++;
            if (!r->first_miss[0])
                snprintf(r->first_miss, sizeof(r->first_miss), "HTTP %ld, no hits", status);
        } else {
            for (size_t k = 0; k < NSTABLE; k++) {
                bool found = false;
                size_t i;
                json_t *h;

                json_array_foreach(hits, i, h)
                    if (strcmp(json_string_value(json_object_get(h, "_id")), r->ids[k]) == 0)
                        found = true;
                if (!found) {
                    r->misses++;
                    if (!r->first_miss[0])
                        snprintf(r->first_miss, sizeof(r->first_miss), "%s missing after %u "
                                 "reads", r->ids[k], r->reads);
                }
            }
            pthread_mutex_lock(&r->x->mu);
            for (unsigned k = 0; k < r->x->nfresh; k++) {
                if (r->x->fresh_at[k] > asked - 5.0)
                    continue;
                r->fresh_checked++;
                if (!has_hit(hits, r->x->fresh[k])) {
                    r->misses++;
                    if (!r->first_miss[0])
                        snprintf(r->first_miss, sizeof(r->first_miss), "%s (held by the table "
                                 "for %.1f s) missing after %u reads", r->x->fresh[k],
                                 asked - r->x->fresh_at[k], r->reads);
                }
            }
            pthread_mutex_unlock(&r->x->mu);
            r->reads++;
        }
        json_decref(j);
        usleep(100 * 1000);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* The acceptance: `rebuild` beside `ddb2es run` and a live workload; a
 * reader searching through the alias all along never misses an item; at
 * the end the alias points at the new index only, which equals the table,
 * and the daemon no longer mirrors. */
Test(rebuild, the_alias_moves_under_a_live_workload_and_no_read_misses_an_item)
{
    char name[128], dir[256], why[1024], path[512], v1[160], tmpl[512], newix[256];
    char got_ix[4][256], write[256];
    struct e2e_table t, t_old, t_new;
    struct writer x;
    struct reader rd;
    struct searchd *sd;
    struct proc daemon, p;
    pthread_t wt, rt;
    const char *conf;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "rbalias", &t);
    memset(&x, 0, sizeof(x));
    memset(&rd, 0, sizeof(rd));
    pthread_mutex_init(&x.mu, NULL);
    rd.x = &x;
    wl_init(&x.w, 41, name, "pk", "S", "sk", "N", 150);
    wl_fill(&x.w, 0, 150);
    for (int i = 0; i < NSTABLE; i++) {
        char item[200];
        json_t *it;

        snprintf(item, sizeof(item), "{\"pk\":{\"S\":\"stable-%d\"},\"sk\":{\"N\":\"1\"},"
                 "\"note\":{\"S\":\"never written again\"}}", i);
        ddbc_put(name, item);
        it = json_loads(item, 0, NULL);
        e2e_doc_id(it, "pk", "sk", '|', rd.ids[i], sizeof(rd.ids[i]));
        json_decref(it);
    }
    sd = searchd_start(NULL);
    snprintf(v1, sizeof(v1), "%s-v1", name);
    e2e_create_index(sd, v1);
    snprintf(path, sizeof(path), "{\"actions\":[{\"add\":{\"index\":\"%s\",\"alias\":\"%s\","
             "\"is_write_index\":true}}]}", v1, name);
    cr_assert_eq(status_of(sd, "POST", "/_aliases", path), 200);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&daemon, conf);
    t_old = t;
    t_old.index = v1;
    cr_assert(e2e_wait_equal(sd, &t_old, 60000, why, sizeof(why)), "before: %s", why);

    snprintf(rd.url, sizeof(rd.url), "%s/%s/_search?size=10000", searchd_url(sd), name);
    pthread_create(&rt, NULL, read_loop, &rd);
    pthread_create(&wt, NULL, write_loop, &x);
    snprintf(tmpl, sizeof(tmpl), "%s/template.json", dir);
    write_text(tmpl, e2e_numbers_as_double);
    /* DynamoDB Local rounds ApproximateCreationDateTime down to the minute
     * (DDBLOCAL.md): the backfill's margin must cover it.  A slow Scan, so
     * that writes land before, during and after its pages. */
    rebuild_start(&p, conf, (const char *[]){ "--table", name, "--template", tmpl, "--drop-old",
                                              "--segments", "2", "--margin", "61s",
                                              "--rate", "60", NULL });
    rc = proc_end(&p, 150000);
    usleep(1000 * 1000); /* writes after the switch too */
    atomic_store(&x.stop, true);
    pthread_join(wt, NULL);
    usleep(6000 * 1000); /* reads until every new item was held for over 5 s */
    atomic_store(&rd.stop, true);
    pthread_join(rt, NULL);
    if (rc != 0) {
        dump_log("rebuild", p.err_path);
        dump_log("daemon", daemon.err_path);
    }
    cr_assert_eq(rc, 0, "rebuild exits 0");
    cr_log_info("rebuild beside the workload: %u items written (%u new ones), %u reads through "
                "the alias, %u checks of a new item held for over 5 s", x.writes, x.nfresh,
                rd.reads, rd.fresh_checked);
    cr_assert_gt(rd.fresh_checked, 10, "new items were checked through the alias (%u)",
                 rd.fresh_checked);
    cr_assert_gt(x.writes, 20, "the workload wrote during the rebuild (%u)", x.writes);
    cr_assert_gt(rd.reads, 10, "the reader read through the alias (%u times; %u failed: %s)",
                 rd.reads, rd.errors, rd.first_miss);
    cr_assert_eq(rd.misses + rd.errors, 0, "no read missed a stable item: %s", rd.first_miss);

    new_index_of(&p, newix, sizeof(newix));
    cr_assert_eq(alias_indices(sd, name, got_ix, 4, write, sizeof(write)), 1,
                 "the alias has one index");
    cr_assert_str_eq(got_ix[0], newix);
    cr_assert_str_eq(write, newix, "and writes to it");
    cr_assert(strncmp(newix, name, strlen(name)) == 0 && newix[strlen(name)] == '-',
              "<index>-<time>: %s", newix);
    snprintf(path, sizeof(path), "/_resolve/index/%s", v1);
    cr_assert_eq(status_of(sd, "GET", path, NULL), 404, "--drop-old deleted the old index");
    t_new = t;
    t_new.index = newix;
    cr_assert(e2e_wait_equal(sd, &t_new, 60000, why, sizeof(why)), "the new index: %s", why);

    snprintf(path, sizeof(path), "%s/state/rebuild-%s.json", dir, name);
    cr_assert(!exists(path), "the request file is gone");
    snprintf(path, sizeof(path), "%s/state/rebuild-%s.ack.json", dir, name);
    cr_assert(!exists(path), "the daemon removed its acknowledgement");
    snprintf(path, sizeof(path), "%s/state/rebuild-%s.progress.json", dir, name);
    cr_assert(!exists(path), "the progress file is gone");
    cr_assert(file_has(daemon.err_path, "rebuild: mirroring index"), "the daemon mirrored");
    cr_assert(file_has(daemon.err_path, "no longer mirrored"), "and stopped");
    cr_assert_eq(e2e_stop(&daemon, 15000), 0);
    searchd_stop(sd);
}

/* SIGTERM during the backfill: exit 75, the phase kept; the same command
 * again continues the Scan where it stopped and finishes.  The name did
 * not exist: the alias is made on the new index. */
Test(rebuild, an_interrupted_rebuild_continues_and_finishes)
{
    char name[128], dir[256], why[1024], path[512], tmpl[512], newix[256];
    char got_ix[2][256], write[256];
    struct e2e_table t, t_new;
    struct wl w;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *prog;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "rbresume", &t);
    wl_init(&w, 43, name, "pk", "S", "sk", "N", 1200);
    wl_fill(&w, 0, 1200);
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(tmpl, sizeof(tmpl), "%s/template.json", dir);
    write_text(tmpl, e2e_numbers_as_double);

    /* About 4 s at 300 items/s: stopped once the Scan has begun. */
    rebuild_start(&p, conf, (const char *[]){ "--table", name, "--template", tmpl, "--rate",
                                              "300", "--segments", "2", NULL });
    cr_assert(proc_wait_for_text(p.err_path, "Scan of", 60000), "the backfill began");
    usleep(1500 * 1000);
    proc_kill(&p, SIGTERM);
    rc = proc_end(&p, 30000);
    if (rc != 75)
        dump_log("first rebuild", p.err_path);
    cr_assert_eq(rc, 75, "an interrupted rebuild exits 75");
    snprintf(path, sizeof(path), "%s/state/rebuild-%s.progress.json", dir, name);
    prog = proc_slurp(path);
    cr_assert_not_null(strstr(prog, "\"phase\":\"backfill\""), "the phase is kept: %s", prog);
    free(prog);
    snprintf(path, sizeof(path), "/_alias/%s", name);
    cr_assert_eq(status_of(sd, "GET", path, NULL), 404, "nothing moved yet");

    rebuild_start(&p, conf, (const char *[]){ "--table", name, "--template", tmpl, NULL });
    rc = proc_end(&p, 120000);
    if (rc != 0)
        dump_log("second rebuild", p.err_path);
    cr_assert_eq(rc, 0);
    cr_assert(file_has(p.err_path, "continuing at phase backfill"));
    cr_assert(file_has(p.err_path, "(continuing)"), "the Scan went on where it stopped");
    new_index_of(&p, newix, sizeof(newix));
    cr_assert_eq(alias_indices(sd, name, got_ix, 2, write, sizeof(write)), 1);
    cr_assert_str_eq(got_ix[0], newix);
    cr_assert_str_eq(write, newix);
    t_new = t;
    t_new.index = newix;
    cr_assert(e2e_index_equals_table(sd, &t_new, why, sizeof(why)), "%s", why);
    searchd_stop(sd);
}

/* A concrete index of the table's name: refused (78) without --drop-old,
 * before anything is made; with it, one POST /_aliases adds the alias and
 * removes the index (remove_index). */
Test(rebuild, a_concrete_index_is_replaced_only_with_drop_old_in_one_call)
{
    char name[128], dir[256], why[1024], path[512], tmpl[512], newix[256];
    char got_ix[2][256], write[256];
    struct e2e_table t, t_new;
    struct wl w;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *reqs, *r;
    size_t i, aliases_calls = 0;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "rbconcrete", &t);
    wl_init(&w, 47, name, "pk", "S", "sk", "N", 100);
    wl_fill(&w, 0, 100);
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(tmpl, sizeof(tmpl), "%s/template.json", dir);
    write_text(tmpl, e2e_numbers_as_double);

    rebuild_start(&p, conf, (const char *[]){ "--table", name, "--template", tmpl, NULL });
    rc = proc_end(&p, 15000);
    if (rc != 78)
        dump_log("rebuild", p.err_path);
    cr_assert_eq(rc, 78, "a concrete index without --drop-old");
    cr_assert(file_has(p.err_path, "--drop-old"), "the line says what to do");
    snprintf(path, sizeof(path), "/_resolve/index/%s-*", name);
    {
        long status = 0;
        json_t *j = searchd_json(sd, "GET", path, NULL, &status);

        cr_assert_eq(json_array_size(json_object_get(j, "indices")), 0, "no index was made");
        json_decref(j);
    }

    rebuild_start(&p, conf, (const char *[]){ "--table", name, "--template", tmpl, "--drop-old",
                                              NULL });
    rc = proc_end(&p, 120000);
    if (rc != 0)
        dump_log("rebuild --drop-old", p.err_path);
    cr_assert_eq(rc, 0);
    new_index_of(&p, newix, sizeof(newix));
    cr_assert_eq(alias_indices(sd, name, got_ix, 2, write, sizeof(write)), 1,
                 "the name is an alias now");
    cr_assert_str_eq(got_ix[0], newix);
    cr_assert_str_eq(write, newix);
    reqs = searchd_requests(sd);
    json_array_foreach(reqs, i, r)
        aliases_calls += strcmp(json_string_value(json_object_get(r, "path")), "/_aliases") == 0;
    json_decref(reqs);
    cr_assert_eq(aliases_calls, 1, "one POST /_aliases");
    t_new = t;
    t_new.index = newix;
    cr_assert(e2e_index_equals_table(sd, &t_new, why, sizeof(why)), "%s", why);
    searchd_stop(sd);
}
