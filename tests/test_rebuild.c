/* ddb2es rebuild: the sink's mirror (both copies in one bulk request, the
 * owner told once, a copy the engine refuses dead-lettered under the new
 * index), the daemon's part (a request file in the state directory turns
 * the mirror on and is acknowledged), and the command end to end against
 * DynamoDB Local, the search double and a live `ddb2es run`: the alias
 * moved in one call under a live workload, an interrupted rebuild
 * continued, a concrete index replaced only with --drop-old. */
#include <criterion/criterion.h>
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
#include "indexer/sink.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"

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
