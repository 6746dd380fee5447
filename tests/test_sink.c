/* sink: batching, per-item outcomes, retries, the dead-letter file, auth and
 * shutdown, on a real libuv loop against fakehttp playing the search engine. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include "aws/creds.h"
#include "base/http.h"
#include "aws/sigv4.h"
#include "base/util.h"
#include "indexer/bulk.h"
#include "indexer/dlq.h"
#include "indexer/sink.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/sigv4check.h"

#define MAXT 256

static uv_loop_t loop;
static struct http *client;
static struct creds *creds;
static struct fakehttp *fk;
static struct sink *snk;
static char dlq_path[256];

/* What the sink reported, by ticket, and in which order. */
static struct {
    int outcome[MAXT];
    int op[MAXT];
    int order[MAXT];
    size_t n;
} got;
static int resumed;
static size_t bytes_at_resume;

/* ---- the engine, on fakehttp's thread ---- */

struct rule {
    char id[64];
    int status[4];        /* the n-th time the id is seen; 0 = success */
    const char *type;
};

static struct engine {
    pthread_mutex_t mu;
    struct rule rules[16];
    size_t nrules;
    int seen[16];
    size_t split_over;    /* 413 for bodies with more actions than this; 0 = never */
    const char *too_large;/* 413 for any body containing this text */
    long delay_ms;
    int64_t arrival[128];
    size_t narrival;
    char *bodies[128];    /* decompressed */
    size_t nbodies;
    size_t actions[128];  /* per request */
    char *last_reply;
} eng = { .mu = PTHREAD_MUTEX_INITIALIZER };

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *hdr_in(const char *block, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);

    for (const char *p = block; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e;

            while (*v == ' ')
                v++;
            e = v + strcspn(v, "\r\n");
            snprintf(out, outlen, "%.*s", (int)(e - v), v);
            return out;
        }
    }
    return NULL;
}

static char *gunzip(const char *p, size_t n, size_t *outlen)
{
    z_stream z;
    size_t cap = n * 8 + 1024;
    char *out = malloc(cap);

    memset(&z, 0, sizeof(z));
    cr_assert_eq(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)(cap - 1);
    cr_assert_eq(inflate(&z, Z_FINISH), Z_STREAM_END, "body is not one gzip stream");
    *outlen = z.total_out;
    out[*outlen] = '\0';
    inflateEnd(&z);
    return out;
}

static int status_for(const char *id)
{
    for (size_t i = 0; i < eng.nrules; i++)
        if (strcmp(eng.rules[i].id, id) == 0) {
            int k = eng.seen[i] < 4 ? eng.seen[i] : 3;

            eng.seen[i]++;
            return eng.rules[i].status[k];
        }
    return 0;
}

static void engine(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    char enc[64];
    size_t len = req->body_len, nact = 0;
    char *body;
    json_t *items;
    char *text;

    (void)arg;
    if (strcmp(req->method, "GET") == 0) {
        out->status = 200;
        out->body = "{\"version\":{\"number\":\"2.11.0\"}}";
        return;
    }
    if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "HEAD") == 0) {
        out->status = 200;
        out->body = "{\"acknowledged\":true}";
        return;
    }
    if (hdr_in(req->headers, "Content-Encoding", enc, sizeof(enc)) && strcmp(enc, "gzip") == 0) {
        body = gunzip(req->body, req->body_len, &len);
    } else {
        body = malloc(len + 1);
        memcpy(body, req->body, len + 1);
    }
    items = json_array();
    pthread_mutex_lock(&eng.mu);
    for (char *line = body; line && *line;) {
        char *nl = strchr(line, '\n');
        /* \u0000 in an _id is JSON the engines read (Jackson takes it). */
        json_t *act = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), JSON_ALLOW_NUL,
                                 NULL);
        const char *key = json_object_iter_key(json_object_iter(act));
        json_t *meta = json_object_iter_value(json_object_iter(act));
        const char *id = json_string_value(json_object_get(meta, "_id"));
        char op[16];
        int st;

        cr_assert_not_null(key, "action line unparsable: %.80s", line);
        snprintf(op, sizeof(op), "%s", key);
        st = status_for(id ? id : "");
        if (st == 0)
            st = strcmp(op, "delete") == 0 ? 200 : 201;
        if (st < 300)
            json_array_append_new(items, json_pack("{s:{s:i}}", op, "status", st));
        else
            json_array_append_new(items, json_pack("{s:{s:i,s:{s:s,s:s}}}", op, "status", st,
                                                   "error", "type",
                                                   st == 409 ? "version_conflict_engine_exception"
                                                   : st == 429 ? "es_rejected_execution_exception"
                                                   : st == 404 ? "not_found"
                                                               : "mapper_parsing_exception",
                                                   "reason", "scripted failure"));
        json_decref(act);
        nact++;
        line = nl ? nl + 1 : NULL;
        if (line && strcmp(op, "delete") != 0) /* skip the source line */
            line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL;
    }
    if (eng.narrival < 128) {
        eng.arrival[eng.narrival] = mono_ms();
        eng.actions[eng.narrival++] = nact;
    }
    if (eng.nbodies < 128)
        eng.bodies[eng.nbodies++] = strdup(body);
    out->delay_ms = eng.delay_ms;
    if ((eng.split_over && nact > eng.split_over) ||
        (eng.too_large && strstr(body, eng.too_large))) {
        out->status = 413;
        out->body = "";
    } else {
        json_t *root = json_pack("{s:b,s:o}", "errors", 0, "items", items);

        items = NULL; /* root has it */
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        out->status = 200;
        out->body = text; /* fakehttp copies it after we return */
        free(eng.last_reply);
        eng.last_reply = text;
    }
    pthread_mutex_unlock(&eng.mu);
    json_decref(items);
    free(body);
}

static void engine_rule(const char *id, int s0, int s1)
{
    struct rule *r = &eng.rules[eng.nrules++];

    snprintf(r->id, sizeof(r->id), "%s", id);
    r->status[0] = s0;
    r->status[1] = s1;
}

/* ---- the loop ---- */

static void on_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                    void *arg)
{
    (void)owner;
    (void)arg;
    cr_assert_lt(ticket, MAXT);
    cr_assert_eq(got.outcome[ticket], -1, "ticket %lu reported twice", (unsigned long)ticket);
    got.outcome[ticket] = (int)outcome;
    got.op[ticket] = (int)op;
    got.order[ticket] = (int)got.n++;
}

static void on_resume(void *arg)
{
    (void)arg;
    resumed++;
    bytes_at_resume = sink_stats(snk)->queued_bytes + sink_stats(snk)->inflight_bytes;
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    memset(&got, 0, sizeof(got));
    for (size_t i = 0; i < MAXT; i++)
        got.outcome[i] = -1;
    resumed = 0;
    pthread_mutex_lock(&eng.mu);
    eng.nrules = 0;
    memset(eng.seen, 0, sizeof(eng.seen));
    eng.split_over = 0;
    eng.too_large = NULL;
    eng.delay_ms = 0;
    eng.narrival = 0;
    for (size_t i = 0; i < eng.nbodies; i++)
        free(eng.bodies[i]);
    eng.nbodies = 0;
    pthread_mutex_unlock(&eng.mu);
    snprintf(dlq_path, sizeof(dlq_path), "%s/sink-dlq-%d.ndjson", tmp ? tmp : "/tmp", getpid());
    unlink(dlq_path);
    cr_assert_eq(uv_loop_init(&loop), 0);
    fk = fake_start();
    fake_set_handler(fk, engine, NULL);
    client = http_new(&loop, NULL);
    cr_assert_not_null(client);
    creds = NULL;
}

static void teardown(void)
{
    fake_stop(fk);
    free(eng.last_reply);
    eng.last_reply = NULL;
    unlink(dlq_path);
}

TestSuite(sink, .init = setup, .fini = teardown, .timeout = 20);

static struct sink_opts opts(void)
{
    return (struct sink_opts){
        .url = fake_url(fk),
        .auth = SINK_AUTH_NONE,
        .bulk_max_actions = 100,
        .bulk_max_bytes = 1 << 20,
        .flush_interval_ms = 5000,
        .concurrency = 2,
        .dlq_path = dlq_path,
        .request_timeout_ms = 5000,
        .max_backoff_ms = 200,
        .backoff_base_ms = 20,
        .max_queue_bytes = 1 << 24,
    };
}

static void start(const struct sink_opts *o)
{
    snk = sink_new(&loop, client, creds, o, on_done, on_resume, NULL);
    cr_assert_not_null(snk);
}

static void submit(enum doc_op op, const char *id, uint64_t version, const char *source,
                   uint64_t ticket)
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
    snprintf(d.seq, sizeof(d.seq), "1000000000000000000%03lu", (unsigned long)ticket);
    d.table = "Posts";
    d.shard = "shardId-0001";
    cr_assert_eq(sink_submit(snk, &d, NULL, ticket), 0);
    cr_assert_null(d.source.ptr, "sink_submit must take the source");
}

static void index_doc(const char *id, uint64_t ticket)
{
    char src[128];

    snprintf(src, sizeof(src), "{\"title\":\"doc %s\",\"n\":%lu}", id, (unsigned long)ticket);
    submit(DOC_INDEX, id, 1000 + ticket, src, ticket);
}

struct cond_n {
    bool (*cond)(size_t);
    size_t n;
};

static bool cond_n_holds(void *arg)
{
    const struct cond_n *c = arg;

    return c->cond(c->n);
}

/* Runs the loop until cond(n) holds or ms pass; returns whether it held
 * (tests/support/loop.h). */
static bool run_until(bool (*cond)(size_t), size_t n, long ms)
{
    return loop_run_until(&loop, cond_n_holds, &(struct cond_n){ cond, n }, ms);
}

static bool done_at_least(size_t n)
{
    return got.n >= n;
}

static bool nreq_at_least(size_t n)
{
    return fake_nreq(fk) >= n;
}

static bool never(size_t n)
{
    (void)n;
    return false;
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static int sclosed;

/* After sink_close: runs until closed, closes http; returns uv_loop_close(). */
static int finish_close(void)
{
    int hclosed = 0;

    while (!sclosed && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(sclosed, 1, "sink_close's closed ran %d times", sclosed);
    /* Every document was reported: nothing is left counted. */
    cr_assert_eq(sink_stats(snk)->queued_docs, 0);
    cr_assert_eq(sink_stats(snk)->queued_bytes, 0);
    cr_assert_eq(sink_stats(snk)->inflight_bytes, 0);
    cr_assert_eq(sink_stats(snk)->inflight_requests, 0);
    sink_free(snk);
    snk = NULL;
    creds_free(creds);
    creds = NULL;
    http_close(client, on_closed, &hclosed);
    client = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(hclosed, 1);
    return uv_loop_close(&loop);
}

/* Closes the sink (deadline ms), then http; returns uv_loop_close(). */
static int close_all(long deadline)
{
    sclosed = 0;
    sink_close(snk, deadline, on_closed, &sclosed);
    return finish_close();
}

static size_t count_lines(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- batching ---- */

Test(sink, batches_close_at_max_actions)
{
    struct sink_opts o = opts();

    o.bulk_max_actions = 3;
    start(&o);
    for (uint64_t t = 0; t < 7; t++)
        index_doc((char[]){ (char)('a' + t), 0 }, t);
    /* Two full batches go at once; the seventh document waits for the timer. */
    cr_assert(run_until(done_at_least, 6, 3000));
    cr_assert_eq(got.n, 6);
    cr_assert_eq(fake_nreq(fk), 2);
    cr_assert_eq(eng.actions[0], 3);
    cr_assert_eq(eng.actions[1], 3);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 7, 3000));
    cr_assert_eq(eng.actions[2], 1);
    for (size_t t = 0; t < 7; t++)
        cr_assert_eq(got.outcome[t], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->docs_indexed, 7);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_2XX], 3);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, request_is_ndjson_with_filter_path)
{
    struct sink_opts o = opts();
    const struct fake_req *r;
    char ct[64];

    start(&o);
    index_doc("a", 0);
    submit(DOC_DELETE, "b", 77, NULL, 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    r = fake_req(fk, 0);
    cr_assert_str_eq(r->method, "POST");
    cr_assert_str_eq(r->path, "/_bulk?filter_path=errors%2Citems.%2A.status%2Citems.%2A.error");
    cr_assert_str_eq(hdr_in(r->headers, "Content-Type", ct, sizeof(ct)),
                     "application/x-ndjson");
    cr_assert_null(hdr_in(r->headers, "Authorization", ct, sizeof(ct)));
    cr_assert_null(hdr_in(r->headers, "Content-Encoding", ct, sizeof(ct)));
    cr_assert_eq(count_lines(r->body), 3, "index: 2 lines, delete: 1 line");
    cr_assert_eq(r->body[r->body_len - 1], '\n', "the last line ends with a newline");
    cr_assert_not_null(strstr(r->body, "{\"delete\":{\"_index\":\"posts\",\"_id\":\"b\""));
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->docs_deleted, 1);
    cr_assert_eq(close_all(1000), 0);
}

/* The done callback names each document's action, also for one reported
 * with another's outcome (superseded) and for a dead letter: the daemon
 * counts deletes by it. */
Test(sink, done_reports_each_documents_op)
{
    struct sink_opts o = opts();
    struct doc d;

    start(&o);
    submit(DOC_INDEX, "a", 1, "{\"n\":1}", 0);
    submit(DOC_DELETE, "a", 2, NULL, 1); /* same _id: the index above is superseded */
    submit(DOC_DELETE, "b", 3, NULL, 2);
    submit(DOC_INDEX, "c", 4, "{\"n\":4}", 3);
    memset(&d, 0, sizeof(d));
    d.op = DOC_DELETE;
    d.index = "posts";
    memcpy(d.id, "e", 1);
    d.id_len = 1;
    cr_assert_eq(sink_dead_letter_raw(snk, &d, "x", 1, "record_not_json", "test", NULL, 4), 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 5, 3000));
    cr_assert_eq(got.outcome[0], SINK_SUPERSEDED);
    cr_assert_eq(got.op[0], DOC_INDEX);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(got.op[1], DOC_DELETE);
    cr_assert_eq(got.outcome[2], SINK_INDEXED);
    cr_assert_eq(got.op[2], DOC_DELETE);
    cr_assert_eq(got.outcome[3], SINK_INDEXED);
    cr_assert_eq(got.op[3], DOC_INDEX);
    cr_assert_eq(got.outcome[4], SINK_DLQ);
    cr_assert_eq(got.op[4], DOC_DELETE);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, batches_close_at_max_bytes)
{
    struct sink_opts o = opts();
    char big[400];

    memset(big, 0, sizeof(big));
    strcpy(big, "{\"t\":\"");
    memset(big + 6, 'x', 300);
    strcat(big, "\"}");
    o.bulk_max_bytes = 1000; /* each action is about 400 bytes: two fit */
    start(&o);
    for (uint64_t t = 0; t < 5; t++)
        submit(DOC_INDEX, (char[]){ (char)('a' + t), 0 }, 1, big, t);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 5, 3000));
    cr_assert_eq(fake_nreq(fk), 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_leq(fake_req(fk, i)->body_len, 1000, "request %zu has %zu bytes", i,
                      fake_req(fk, i)->body_len);
    cr_assert_eq(eng.actions[0] + eng.actions[1] + eng.actions[2], 5);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, batch_closes_after_flush_interval)
{
    struct sink_opts o = opts();
    int64_t t0;

    o.flush_interval_ms = 150;
    start(&o);
    t0 = mono_ms();
    index_doc("a", 0);
    index_doc("b", 1);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_geq(mono_ms() - t0, 140, "sent after %ld ms", (long)(mono_ms() - t0));
    cr_assert_eq(fake_nreq(fk), 1);
    cr_assert_eq(eng.actions[0], 2);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, same_id_collapses_and_superseded_waits_for_the_batch)
{
    struct sink_opts o = opts();

    eng.delay_ms = 300;
    start(&o);
    submit(DOC_INDEX, "a", 10, "{\"v\":1}", 0);
    submit(DOC_INDEX, "b", 11, "{\"v\":1}", 1);
    submit(DOC_INDEX, "a", 12, "{\"v\":2}", 2);
    submit(DOC_DELETE, "a", 13, NULL, 3);
    sink_flush(snk);
    cr_assert(run_until(nreq_at_least, 1, 3000));
    cr_assert_eq(got.n, 0, "nothing may be reported before the bulk finished");
    cr_assert(run_until(done_at_least, 4, 3000));
    cr_assert_eq(eng.actions[0], 2, "a collapses to its last action");
    cr_assert_not_null(strstr(eng.bodies[0], "\"_id\":\"b\""));
    cr_assert_not_null(strstr(eng.bodies[0], "{\"delete\":{\"_index\":\"posts\",\"_id\":\"a\""));
    cr_assert_lt(strstr(eng.bodies[0], "\"_id\":\"b\""), strstr(eng.bodies[0], "\"_id\":\"a\""),
                 "stream order kept");
    cr_assert_null(strstr(eng.bodies[0], "{\"v\":2}"));
    cr_assert_eq(got.outcome[0], SINK_SUPERSEDED);
    cr_assert_eq(got.outcome[2], SINK_SUPERSEDED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(got.outcome[3], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->docs_superseded, 2);
    cr_assert_eq(close_all(1000), 0);
}

/* Two streams of one table, or a replay beside the daemon, may submit an
 * older image of an _id after a newer one: the newer one is sent. */
Test(sink, same_id_keeps_the_highest_version_not_the_last_submitted)
{
    struct sink_opts o = opts();

    start(&o);
    submit(DOC_INDEX, "a", 20, "{\"v\":\"new\"}", 0);
    submit(DOC_INDEX, "a", 10, "{\"v\":\"old\"}", 1);   /* older, later: loses */
    submit(DOC_INDEX, "b", 30, "{\"v\":\"first\"}", 2);
    submit(DOC_INDEX, "b", 30, "{\"v\":\"tie\"}", 3);   /* a tie: the later one */
    submit(DOC_INDEX, "c", 40, "{\"v\":\"versioned\"}", 4);
    submit(DOC_INDEX, "c", 0, "{\"v\":\"none\"}", 5);   /* no version: the later one */
    submit(DOC_DELETE, "d", 50, NULL, 6);
    submit(DOC_INDEX, "d", 45, "{\"v\":\"resurrect\"}", 7); /* older than the delete */
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 8, 3000));
    cr_assert_eq(fake_nreq(fk), 1);
    cr_assert_eq(eng.actions[0], 4, "one action per _id");
    cr_assert_not_null(strstr(eng.bodies[0], "{\"v\":\"new\"}"), "%s", eng.bodies[0]);
    cr_assert_null(strstr(eng.bodies[0], "{\"v\":\"old\"}"), "%s", eng.bodies[0]);
    cr_assert_not_null(strstr(eng.bodies[0], "{\"v\":\"tie\"}"));
    cr_assert_not_null(strstr(eng.bodies[0], "{\"v\":\"none\"}"));
    cr_assert_not_null(strstr(eng.bodies[0], "{\"delete\":{\"_index\":\"posts\",\"_id\":\"d\""));
    cr_assert_null(strstr(eng.bodies[0], "resurrect"));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_SUPERSEDED);
    cr_assert_eq(got.outcome[2], SINK_SUPERSEDED);
    cr_assert_eq(got.outcome[3], SINK_INDEXED);
    cr_assert_eq(got.outcome[4], SINK_SUPERSEDED);
    cr_assert_eq(got.outcome[5], SINK_INDEXED);
    cr_assert_eq(got.outcome[6], SINK_INDEXED);
    cr_assert_eq(got.outcome[7], SINK_SUPERSEDED);
    cr_assert_eq(sink_stats(snk)->docs_superseded, 4);
    cr_assert_eq(close_all(1000), 0);
}

/* Actions are written once, into the body they are sent in: a hot _id
 * rewritten many times leaves dead text behind, which must be squeezed out
 * (the body is exactly the live actions, never above bulk_max_bytes). */
Test(sink, a_hot_id_rewritten_many_times_is_sent_once_in_an_exact_body)
{
    struct sink_opts o = opts();
    char src[400], want[2048];
    int w;

    o.bulk_max_bytes = 1000; /* each action ~350 bytes: the dead text passes it fast */
    start(&o);
    index_doc("first", 0);
    for (uint64_t t = 1; t <= 40; t++) {
        w = snprintf(src, sizeof(src), "{\"v\":%lu,\"pad\":\"%0300d\"}", (unsigned long)t, 0);
        cr_assert_lt(w, (int)sizeof(src));
        submit(DOC_INDEX, "hot", 100 + t, src, t);
    }
    index_doc("last", 41);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 42, 3000));
    cr_assert_eq(fake_nreq(fk), 1, "one request: superseded actions take no room");
    snprintf(src, sizeof(src), "{\"v\":40,\"pad\":\"%0300d\"}", 0);
    snprintf(want, sizeof(want),
             "{\"index\":{\"_index\":\"posts\",\"_id\":\"first\",\"version\":1000,\"version_type\":\"external_gte\"}}\n"
             "{\"title\":\"doc first\",\"n\":0}\n"
             "{\"index\":{\"_index\":\"posts\",\"_id\":\"hot\",\"version\":140,\"version_type\":\"external_gte\"}}\n"
             "%s\n"
             "{\"index\":{\"_index\":\"posts\",\"_id\":\"last\",\"version\":1041,\"version_type\":\"external_gte\"}}\n"
             "{\"title\":\"doc last\",\"n\":41}\n",
             src);
    cr_assert_str_eq(eng.bodies[0], want);
    cr_assert_eq(sink_stats(snk)->docs_superseded, 39);
    for (size_t i = 1; i < 40; i++)
        cr_assert_eq(got.outcome[i], SINK_SUPERSEDED, "action %zu", i);
    cr_assert_eq(got.outcome[40], SINK_INDEXED);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, concurrency_limit_is_respected)
{
    struct sink_opts o = opts();
    size_t peak = 0;

    o.bulk_max_actions = 1;
    o.concurrency = 2;
    eng.delay_ms = 150;
    start(&o);
    for (uint64_t t = 0; t < 6; t++)
        index_doc((char[]){ (char)('a' + t), 0 }, t);
    cr_assert_leq(sink_stats(snk)->inflight_requests, 2);
    cr_assert(run_until(done_at_least, 6, 5000));
    cr_assert_eq(eng.narrival, 6);
    /* Requests open at the same time: arrivals closer than the reply delay. */
    for (size_t i = 0; i < eng.narrival; i++) {
        size_t open = 0;

        for (size_t j = 0; j < eng.narrival; j++)
            if (eng.arrival[j] <= eng.arrival[i] && eng.arrival[i] < eng.arrival[j] + 120)
                open++;
        if (open > peak)
            peak = open;
    }
    cr_assert_eq(peak, 2, "at most 2 bulk requests at once, and 2 are used (peak %zu)", peak);
    cr_assert_eq(close_all(1000), 0);
}

/* ---- outcomes ---- */

Test(sink, item_429_is_retried_then_indexed)
{
    struct sink_opts o = opts();

    engine_rule("x", 429, 0);
    start(&o);
    index_doc("x", 0);
    index_doc("y", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(got.order[1], 0, "y finished with the first bulk");
    cr_assert_eq(fake_nreq(fk), 2);
    cr_assert_eq(eng.actions[1], 1, "only x is sent again");
    cr_assert_not_null(strstr(eng.bodies[1], "\"_id\":\"x\""));
    cr_assert_eq(sink_stats(snk)->docs_retried, 1);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, conflict_is_stale_and_missing_delete_is_gone)
{
    struct sink_opts o = opts();

    engine_rule("old", 409, 409);
    engine_rule("gone", 404, 404);
    start(&o);
    index_doc("old", 0);
    submit(DOC_DELETE, "gone", 5, NULL, 1);
    index_doc("new", 2);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 3, 3000));
    cr_assert_eq(got.outcome[0], SINK_STALE);
    cr_assert_eq(got.outcome[1], SINK_GONE);
    cr_assert_eq(got.outcome[2], SINK_INDEXED);
    cr_assert_eq(fake_nreq(fk), 1, "neither is retried");
    cr_assert_eq(sink_stats(snk)->docs_stale, 1);
    cr_assert_eq(sink_stats(snk)->docs_gone, 1);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, item_400_goes_to_the_dead_letter_file)
{
    struct sink_opts o = opts();
    struct stat st;
    char line[4096];
    FILE *f;
    json_t *j, *doc;
    json_error_t jerr;

    engine_rule("bad", 400, 400);
    start(&o);
    submit(DOC_INDEX, "bad", 4242, "{\"title\":\"poison\",\"n\":123456789012345678901234567890}", 0);
    index_doc("good", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    index_doc("next", 2);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 3, 3000));
    cr_assert_eq(got.outcome[0], SINK_DLQ);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(got.outcome[2], SINK_INDEXED, "the pipeline goes on after a poison record");
    cr_assert_eq(sink_stats(snk)->docs_dlq, 1);

    cr_assert_eq(stat(dlq_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    cr_assert_null(fgets(line + strlen(line), (int)(sizeof(line) - strlen(line)), f),
                   "one line only");
    fclose(f);
    j = json_loads(line, JSON_DECODE_INT_AS_REAL, &jerr);
    cr_assert_not_null(j, "dlq line is not JSON: %s", jerr.text);
    cr_assert_eq(strlen(json_string_value(json_object_get(j, "time"))), 24);
    cr_assert_str_eq(json_string_value(json_object_get(j, "table")), "Posts");
    cr_assert_str_eq(json_string_value(json_object_get(j, "shard")), "shardId-0001");
    cr_assert_str_eq(json_string_value(json_object_get(j, "seq")), "1000000000000000000000");
    cr_assert_str_eq(json_string_value(json_object_get(j, "index")), "posts");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "bad");
    cr_assert_str_eq(json_string_value(json_object_get(j, "action")), "index");
    cr_assert_eq(json_number_value(json_object_get(j, "version")), 4242.0);
    cr_assert_eq(json_number_value(json_object_get(j, "status")), 400.0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                     "mapper_parsing_exception");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "reason")),
                     "scripted failure");
    doc = json_object_get(j, "document");
    cr_assert(json_is_object(doc), "the document is embedded as JSON");
    cr_assert_str_eq(json_string_value(json_object_get(doc, "title")), "poison");
    cr_assert_not_null(strstr(line, "\"n\":123456789012345678901234567890}"),
                       "the document text is kept as it was (big numbers too)");
    json_decref(j);
    cr_assert_eq(close_all(1000), 0);
}

/* `ddb2es replay --format dlq` reads the item again by its key: every entry
 * carries the key attributes the transform gave (null when it gave none). */
Test(sink, dead_letter_entries_carry_the_item_keys)
{
    struct sink_opts o = opts();
    static const char keys[] = "{\"pk\":{\"S\":\"bad\"},\"sk\":{\"N\":\"12345678901234567890123456789012345678\"}}";
    char line[4096];
    struct doc d;
    json_t *meta, *raw;
    const char *doc;
    size_t len;
    char err[128];
    FILE *f;

    engine_rule("bad", 400, 400);
    start(&o);
    memset(&d, 0, sizeof(d));
    d.op = DOC_INDEX;
    d.index = "posts";
    strcpy(d.id, "bad");
    d.id_len = 3;
    d.version = 9;
    d.table = "Posts";
    buf_init(&d.source, 0);
    buf_puts(&d.source, "{\"t\":1}");
    buf_init(&d.keys, 0);
    buf_puts(&d.keys, keys);
    cr_assert_eq(sink_submit(snk, &d, NULL, 0), 0);
    cr_assert_str_eq(d.keys.ptr, keys, "the keys are copied, not taken");
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    /* An input that never became a document, with its keys known. */
    raw = json_pack("{s:s}", "eventName", "INSERT");
    d.id_len = 0;
    cr_assert_eq(sink_dead_letter(snk, &d, raw, "record_conversion_error", "no NewImage", NULL, 1),
                 0);
    json_decref(raw);
    buf_close(&d.keys);
    cr_assert(run_until(done_at_least, 2, 3000));
    submit(DOC_INDEX, "bad", 10, "{\"t\":2}", 2); /* no keys */
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 3, 3000));
    cr_assert_eq(got.outcome[0], SINK_DLQ);
    cr_assert_eq(got.outcome[1], SINK_DLQ);
    cr_assert_eq(got.outcome[2], SINK_DLQ);
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f);
    for (int i = 0; i < 3; i++) {
        cr_assert_not_null(fgets(line, sizeof(line), f));
        line[strcspn(line, "\n")] = '\0';
        cr_assert_eq(dlq_parse(line, strlen(line), &meta, &doc, &len, err, sizeof(err)), 0, "%s",
                     err);
        if (i < 2) {
            cr_assert_not_null(strstr(line, "\"keys\":{\"pk\":{\"S\":\"bad\"},\"sk\":{\"N\":"
                                            "\"12345678901234567890123456789012345678\"}},"),
                               "%s", line);
            cr_assert_str_eq(json_string_value(json_object_get(json_object_get(
                                 json_object_get(meta, "keys"), "sk"), "N")),
                             "12345678901234567890123456789012345678");
        } else {
            cr_assert_not_null(strstr(line, "\"keys\":null,"), "%s", line);
            cr_assert(json_is_null(json_object_get(meta, "keys")));
        }
        json_decref(meta);
    }
    fclose(f);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, request_413_splits_the_batch)
{
    struct sink_opts o = opts();

    eng.split_over = 1;
    start(&o);
    for (uint64_t t = 0; t < 4; t++)
        index_doc((char[]){ (char)('a' + t), 0 }, t);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 4, 3000));
    for (size_t t = 0; t < 4; t++)
        cr_assert_eq(got.outcome[t], SINK_INDEXED);
    /* 4 → 413; 2 → 413; 2 → 413; then four singles. */
    cr_assert_eq(fake_nreq(fk), 7);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_413], 3);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, single_action_413_goes_to_the_dead_letter_file)
{
    struct sink_opts o = opts();
    char line[2048];
    FILE *f;

    eng.too_large = "HUGE";
    start(&o);
    submit(DOC_INDEX, "big", 1, "{\"t\":\"HUGE\"}", 0);
    index_doc("ok", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_eq(got.outcome[0], SINK_DLQ);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_not_null(strstr(line, "\"status\":413"));
    cr_assert_not_null(strstr(line, "document larger than the engine's body limit"));
    cr_assert_eq(close_all(1000), 0);
}

/* ---- request-level failures ---- */

Test(sink, request_503_is_retried_with_growing_backoff)
{
    struct sink_opts o = opts();
    struct fake_reply r503 = { .status = 503, .body = "{\"error\":\"unavailable\"}" };
    size_t n;

    o.backoff_base_ms = 20;
    o.max_backoff_ms = 200;
    for (int i = 0; i < 200; i++)
        fake_reply_ex(fk, &r503);
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    run_until(never, 0, 1000);
    n = fake_nreq(fk);
    /* Delays: rand x 20, 40, 80, 160, then 200 ms: about 12 tries a second,
     * never the hundreds of a tight loop. */
    cr_assert_geq(n, 3, "%zu requests in 1 s", n);
    cr_assert_leq(n, 40, "%zu requests in 1 s: a tight loop", n);
    cr_assert_eq(got.n, 0);
    cr_assert(sink_stats(snk)->failing);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_5XX], n);
    cr_assert_eq(close_all(0), 0);
    cr_assert_eq(got.outcome[0], SINK_CANCELED);
}

Test(sink, request_503_then_success)
{
    struct sink_opts o = opts();

    fake_reply(fk, 503, "");
    fake_reply(fk, 502, "");
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(fake_nreq(fk), 3);
    cr_assert_not(sink_stats(snk)->failing);
    cr_assert_eq(sink_stats(snk)->retries, 2);
    cr_assert_eq(close_all(1000), 0);
}

/* A document past its send_by is never sent again after a failure: it comes
 * back to its owner as SINK_EXPIRED, the rest of the batch goes on. */
Test(sink, expired_document_is_not_sent_again)
{
    struct sink_opts o = opts();
    struct fake_reply slow503 = { .status = 503, .body = "", .delay_ms = 150 };
    struct doc d;

    fake_reply_ex(fk, &slow503);
    start(&o);
    memset(&d, 0, sizeof(d));
    d.op = DOC_INDEX;
    d.index = "posts";
    d.id_len = 1;
    d.id[0] = 'a';
    buf_init(&d.source, 0);
    buf_puts(&d.source, "{\"t\":1}");
    d.send_by = uv_now(&loop) + 50; /* sent once, inside it; the retry comes after */
    cr_assert_eq(sink_submit(snk, &d, NULL, 0), 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_eq(got.outcome[0], SINK_EXPIRED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(fake_nreq(fk), 2);
    cr_assert_not_null(strstr(eng.bodies[0], "\"_id\":\"b\""), "the second request carries b");
    cr_assert_null(strstr(eng.bodies[0], "\"_id\":\"a\""), "and not a");
    cr_assert_eq(sink_stats(snk)->docs_expired, 1);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, connection_reset_is_retried)
{
    struct sink_opts o = opts();
    struct fake_reply drop = { .action = FAKE_DROP };

    fake_reply_ex(fk, &drop);
    fake_reply_ex(fk, &drop);
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_NET], 2);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, item_count_mismatch_is_retried)
{
    struct sink_opts o = opts();

    fake_reply(fk, 200, "{\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}");
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_eq(fake_nreq(fk), 2, "the whole bulk went again");
    cr_assert_eq(eng.actions[0], 2);
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(close_all(1000), 0);
}

/* "Every loop has an exit": a 2xx reply the sink cannot read, each time
 * (here text that is not JSON; in the wild an error text the parser could
 * not take), is sent again a few times, then in halves until the action it
 * is about stands alone; that action is dead-lettered, the others indexed.
 * Before, the whole bulk was sent again forever. */
Test(sink, a_reply_that_stays_unreadable_ends_in_the_dead_letter_file_not_a_loop)
{
    struct sink_opts o = opts();
    char line[2048];
    FILE *f;

    for (int i = 0; i < 3; i++) /* the pair: three unreadable replies */
        fake_reply(fk, 200, "{\"errors\":false,\"items\":[ <cut>");
    fake_reply(fk, 200, "{\"errors\":false,\"items\":[{\"index\":{\"status\":201}}]}");
    for (int i = 0; i < 3; i++) /* "b" alone, still unreadable */
        fake_reply(fk, 200, "not json");
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 15000), "both finished");
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_DLQ);
    cr_assert_eq(fake_nreq(fk), 7, "3 whole, then a alone, then b alone 3 times (%zu)",
                 fake_nreq(fk));
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_not_null(strstr(line, "bulk_reply_unreadable"), "%s", line);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, request_403_and_400_are_retried_not_dropped)
{
    struct sink_opts o = opts();

    fake_reply(fk, 403, "{\"message\":\"The security token included in the request is expired\"}");
    fake_reply(fk, 400, "{\"error\":{\"type\":\"illegal_argument_exception\",\"reason\":\"x\"}}");
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(fake_nreq(fk), 3);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_4XX], 2);
    cr_assert_eq(close_all(1000), 0);
}

/* ---- body and auth ---- */

Test(sink, gzip_body_is_the_exact_ndjson)
{
    struct sink_opts o = opts();
    struct buf want;
    struct doc d;
    char enc[32];
    const struct fake_req *r;
    size_t len;
    char *plain;

    o.gzip = true;
    start(&o);
    index_doc("a", 0);
    submit(DOC_DELETE, "b", 9, NULL, 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    r = fake_req(fk, 0);
    cr_assert_str_eq(hdr_in(r->headers, "Content-Encoding", enc, sizeof(enc)), "gzip");
    cr_assert_str_eq(hdr_in(r->headers, "Content-Type", enc, sizeof(enc)),
                     "application/x-ndjson");
    plain = gunzip(r->body, r->body_len, &len);
    buf_init(&want, 0);
    memset(&d, 0, sizeof(d));
    d.op = DOC_INDEX;
    d.index = "posts";
    strcpy(d.id, "a");
    d.id_len = 1;
    d.version = 1000;
    buf_init(&d.source, 0);
    buf_puts(&d.source, "{\"title\":\"doc a\",\"n\":0}");
    cr_assert_eq(bulk_append(&want, &d, NULL), 0);
    buf_close(&d.source);
    d.op = DOC_DELETE;
    strcpy(d.id, "b");
    d.version = 9;
    cr_assert_eq(bulk_append(&want, &d, NULL), 0);
    cr_assert_eq(len, want.len);
    cr_assert_str_eq(plain, want.ptr);
    cr_assert_lt(r->body_len, len + 64);
    free(plain);
    buf_close(&want);
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(close_all(1000), 0);
}

/* Bodies are compressed in the thread pool; a stop whose deadline passes
 * meanwhile reports the batch's actions as canceled (not finished), sends
 * nothing afterwards, and the loop still closes cleanly. */
Test(sink, a_stop_while_a_body_is_compressed_cancels_it_cleanly)
{
    struct sink_opts o = opts();
    enum { N = 250, LEN = 24000 }; /* 6 MB: tens of ms to compress */
    char *src = calloc(1, LEN + 1), id[16];
    size_t canceled = 0;

    strcpy(src, "{\"t\":\"");
    for (size_t i = 6; i < LEN - 2; i++)
        src[i] = (char)('a' + (i * 7919) % 26); /* not trivially compressible */
    strcpy(src + LEN - 2, "\"}");
    o.gzip = true;
    o.bulk_max_actions = 1000;
    o.bulk_max_bytes = 16 << 20;
    o.max_queue_bytes = 1 << 26;
    start(&o);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "d%d", i);
        submit(DOC_INDEX, id, 1, src, (uint64_t)i);
    }
    sink_flush(snk); /* the 6 MB body goes to the thread pool */
    sclosed = 0;
    sink_close(snk, 0, on_closed, &sclosed);
    cr_assert_eq(finish_close(), 0);
    cr_assert_eq(got.n, N);
    for (size_t i = 0; i < got.n; i++)
        canceled += got.outcome[i] == SINK_CANCELED;
    cr_assert_eq(canceled, N, "%zu of %d canceled", canceled, N);
    free(src);
}

Test(sink, basic_auth_header)
{
    struct sink_opts o = opts();
    char v[128];

    o.auth = SINK_AUTH_BASIC;
    o.username = "elastic";
    o.password = "s3cret:pw";
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    /* base64("elastic:s3cret:pw") */
    cr_assert_str_eq(hdr_in(fake_req(fk, 0)->headers, "Authorization", v, sizeof(v)),
                     "Basic ZWxhc3RpYzpzM2NyZXQ6cHc=");
    cr_assert_eq(close_all(1000), 0);
}

static void on_ping(void *arg, int rc)
{
    *(int *)arg = rc;
}

Test(sink, apikey_header)
{
    struct sink_opts o = opts();
    char v[128];
    int rc = 1;

    o.auth = SINK_AUTH_APIKEY;
    o.api_key = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
    start(&o);
    cr_assert_eq(sink_ping(snk, on_ping, &rc), 0);
    cr_assert(run_until(nreq_at_least, 1, 3000));
    while (rc == 1 && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(fake_req(fk, 0)->method, "GET");
    cr_assert_str_eq(fake_req(fk, 0)->path, "/");
    cr_assert_str_eq(hdr_in(fake_req(fk, 0)->headers, "Authorization", v, sizeof(v)),
                     "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_str_eq(hdr_in(fake_req(fk, 1)->headers, "Authorization", v, sizeof(v)),
                     "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==");
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, ping_reports_the_status)
{
    struct sink_opts o = opts();
    int rc = 1;

    fake_reply(fk, 401, "{}");
    start(&o);
    cr_assert_eq(sink_ping(snk, on_ping, &rc), 0);
    while (rc == 1 && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(rc, 401);
    cr_assert_eq(close_all(1000), 0);
}

/* Re-signs the recorded request with the test key; the signature must match. */
static void verify_sigv4(const struct fake_req *r, const char *service, const char *region)
{
    static const struct sigv4_key key = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                          NULL };
    struct sigv4_authz az;
    struct sigv4_header hs[16];
    char vals[16][512], names[16][64];
    size_t n = 0;
    char authz[1024];
    char *path, *q;
    struct sigv4_output out;
    struct sigv4_input in;

    cr_assert_not_null(hdr_in(r->headers, "Authorization", authz, sizeof(authz)));
    cr_assert_eq(sigv4_parse_authorization(authz, &az), 0);
    cr_assert_str_eq(az.access_key_id, "AKIDEXAMPLE");
    cr_assert_str_eq(az.service, service);
    cr_assert_str_eq(az.region, region);
    for (char *tok = strtok(az.signed_headers, ";"); tok; tok = strtok(NULL, ";")) {
        snprintf(names[n], sizeof(names[n]), "%s", tok);
        cr_assert_not_null(hdr_in(r->headers, tok, vals[n], sizeof(vals[n])), "%s missing", tok);
        hs[n] = (struct sigv4_header){ names[n], vals[n] };
        n++;
    }
    path = strdup(r->path);
    q = strchr(path, '?');
    if (q)
        *q++ = '\0';
    in = (struct sigv4_input){ .method = r->method, .path = path, .query = q, .headers = hs,
                               .nheaders = n, .body = r->body, .body_len = r->body_len,
                               .region = region, .service = service, .normalize_path = true };
    memset(&out, 0, sizeof(out));
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_assert_str_eq(out.signature, az.signature, "the signature does not verify");
    sigv4_output_close(&out);
    free(path);
}

static void sigv4_run(const char *service, bool gzip)
{
    struct sink_opts o = opts();
    char v[128], hash[65];
    const struct fake_req *r;

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    creds = creds_new(&loop, client, NULL);
    cr_assert_not_null(creds);
    o.auth = SINK_AUTH_SIGV4;
    o.sigv4_service = service;
    o.sigv4_region = "eu-west-1";
    o.gzip = gzip;
    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    r = fake_req(fk, 0);
    cr_assert_not_null(hdr_in(r->headers, "X-Amz-Date", v, sizeof(v)));
    verify_sigv4(r, service, "eu-west-1");
    if (strcmp(service, "aoss") == 0) {
        sigv4_sha256_hex(r->body, r->body_len, hash);
        cr_assert_str_eq(hdr_in(r->headers, "X-Amz-Content-Sha256", v, sizeof(v)), hash,
                         "aoss: the hash of the body as sent");
    } else {
        cr_assert_null(hdr_in(r->headers, "X-Amz-Content-Sha256", v, sizeof(v)));
    }
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, sigv4_es_signature_verifies)
{
    sigv4_run("es", false);
}

Test(sink, sigv4_aoss_signs_the_compressed_body)
{
    sigv4_run("aoss", true);
}

/* ---- memory, dry run, shutdown ---- */

Test(sink, full_then_resume_below_half)
{
    struct sink_opts o = opts();
    uint64_t t = 0;

    o.max_queue_bytes = 2000;
    o.bulk_max_actions = 2;
    o.concurrency = 100; /* every batch goes at once: only the byte cap stops the readers */
    eng.delay_ms = 50;
    start(&o);
    while (!sink_full(snk) && t < 100)
        index_doc((char[]){ (char)('a' + t % 26), (char)('a' + t / 26), 0 }, t), t++;
    cr_assert(sink_full(snk));
    cr_assert_geq(sink_stats(snk)->queued_bytes + sink_stats(snk)->inflight_bytes, 2000);
    cr_assert_eq(resumed, 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, t, 5000));
    cr_assert_eq(resumed, 1, "resume runs once");
    cr_assert_lt(bytes_at_resume, 1000);
    cr_assert_not(sink_full(snk));
    cr_assert_eq(close_all(1000), 0);
}

/* Reading on while a closed batch already waits for a connection would only
 * hold more in memory: readers pause then, far below max_queue_bytes, and
 * resume as soon as the waiting batch goes out. */
Test(sink, readers_pause_while_a_closed_batch_waits_for_a_connection)
{
    struct sink_opts o = opts();

    o.bulk_max_actions = 2;
    o.concurrency = 1;
    eng.delay_ms = 300;
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1); /* closes: goes out at once */
    cr_assert(run_until(nreq_at_least, 1, 3000));
    cr_assert_not(sink_full(snk), "one batch in flight, none waiting");
    index_doc("c", 2);
    cr_assert_not(sink_full(snk));
    index_doc("d", 3); /* closes: waits for the connection */
    cr_assert(sink_full(snk), "a batch waits: readers must pause");
    cr_assert_lt(sink_stats(snk)->queued_bytes + sink_stats(snk)->inflight_bytes, 2000,
                 "far below max_queue_bytes");
    cr_assert_eq(resumed, 0);
    cr_assert(run_until(nreq_at_least, 2, 3000));
    cr_assert_eq(resumed, 1, "resumed when the waiting batch went out");
    cr_assert_not(sink_full(snk));
    cr_assert(run_until(done_at_least, 4, 3000));
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, dry_run_writes_the_bodies_to_stdout)
{
    struct sink_opts o = opts();
    char path[300], out[4096];
    int fd, saved;
    ssize_t n;

    o.dry_run = true;
    o.dlq_path = NULL;
    snprintf(path, sizeof(path), "%s.stdout", dlq_path);
    fflush(stdout);
    saved = dup(1);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    dup2(fd, 1);
    start(&o);
    index_doc("a", 0);
    submit(DOC_DELETE, "b", 3, NULL, 1);
    sink_flush(snk);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    cr_assert_eq(got.n, 2);
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    unlink(path);
    cr_assert_gt(n, 0);
    out[n] = '\0';
    cr_assert_str_eq(out,
                     "{\"index\":{\"_index\":\"posts\",\"_id\":\"a\",\"version\":1000,"
                     "\"version_type\":\"" BULK_VERSION_TYPE "\"}}\n"
                     "{\"title\":\"doc a\",\"n\":0}\n"
                     "{\"delete\":{\"_index\":\"posts\",\"_id\":\"b\",\"version\":3,"
                     "\"version_type\":\"" BULK_VERSION_TYPE "\"}}\n");
    cr_assert_eq(fake_nreq(fk), 0);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, close_cancels_a_hanging_request)
{
    struct sink_opts o = opts();
    struct fake_reply hang = { .action = FAKE_HANG };
    struct doc d;
    int64_t t0;

    fake_reply_ex(fk, &hang);
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(nreq_at_least, 1, 3000));
    index_doc("c", 2); /* still queued */
    t0 = mono_ms();
    sclosed = 0;
    sink_close(snk, 200, on_closed, &sclosed);
    memset(&d, 0, sizeof(d));
    d.index = "posts";
    cr_assert_eq(sink_submit(snk, &d, NULL, 99), -ESHUTDOWN);
    cr_assert_eq(finish_close(), 0);
    cr_assert_lt(mono_ms() - t0, 2000);
    cr_assert_eq(got.n, 3);
    cr_assert_eq(got.outcome[0], SINK_CANCELED);
    cr_assert_eq(got.outcome[1], SINK_CANCELED);
}

Test(sink, close_flushes_and_waits_for_requests)
{
    struct sink_opts o = opts();

    eng.delay_ms = 100;
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1);
    cr_assert_eq(close_all(3000), 0);
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
}

Test(sink, dead_letter_waits_until_the_file_can_be_written)
{
    struct sink_opts o = opts();
    char dir[300], path[320], line[2048];
    FILE *f;

    snprintf(dir, sizeof(dir), "%s.d", dlq_path);
    snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
    rmdir(dir);
    o.dlq_path = path; /* its directory does not exist yet */
    engine_rule("bad", 400, 400);
    start(&o);
    submit(DOC_DELETE, "bad", 8, NULL, 0);
    index_doc("good", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    run_until(never, 0, 300);
    cr_assert_eq(got.outcome[0], -1, "not reported before it is on disk");
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert(run_until(done_at_least, 2, 5000));
    cr_assert_eq(got.outcome[0], SINK_DLQ);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_not_null(strstr(line, "\"action\":\"delete\""));
    cr_assert_not_null(strstr(line, "\"document\":null}"));
    unlink(path);
    rmdir(dir);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, close_cancels_a_dead_letter_that_cannot_be_written)
{
    struct sink_opts o = opts();

    o.dlq_path = "/nonexistent-dir/dlq.ndjson";
    engine_rule("bad", 400, 400);
    start(&o);
    index_doc("bad", 0);
    sink_flush(snk);
    run_until(never, 0, 200);
    cr_assert_eq(got.n, 0);
    cr_assert_eq(close_all(100), 0);
    cr_assert_eq(got.outcome[0], SINK_CANCELED, "not finished: must not be checkpointed");
}

/* ---- against the search double ---- */

static json_t *dumped(json_t *dump, const char *id)
{
    return json_object_get(json_object_get(dump, "posts"), id);
}

Test(sink, searchd_sigv4_aoss_gzip_with_faults)
{
    struct sink_opts o = opts();
    struct searchd *sd;
    json_t *d;

    sd = searchd_start("--auth", "sigv4", "--access-key", "AKIDEXAMPLE", "--secret-key",
                       "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "--region", "eu-west-1",
                       "--service", "aoss", "--poison-field", "poison", NULL);
    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"status\":503,\"count\":1},"
                                    "{\"match\":\"bulk\",\"item_status\":429,\"items\":1,"
                                    "\"count\":1}]"),
                 200);
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    creds = creds_new(&loop, client, NULL);
    o.url = searchd_url(sd);
    o.auth = SINK_AUTH_SIGV4;
    o.sigv4_service = "aoss";
    o.sigv4_region = "eu-west-1";
    o.gzip = true;
    start(&o);
    submit(DOC_INDEX, "a", 10, "{\"n\":1}", 0);
    submit(DOC_INDEX, "b", 10, "{\"poison\":true}", 1);
    submit(DOC_INDEX, "c", 10, "{\"n\":3}", 2);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 3, 5000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED, "503, then 429 on the item, then indexed");
    cr_assert_eq(got.outcome[1], SINK_DLQ);
    cr_assert_eq(got.outcome[2], SINK_INDEXED);
    submit(DOC_INDEX, "a", 5, "{\"n\":0}", 3);  /* older: loses */
    submit(DOC_DELETE, "d", 5, NULL, 4);        /* never existed */
    submit(DOC_DELETE, "c", 20, NULL, 5);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 6, 5000));
    cr_assert_eq(got.outcome[3], SINK_STALE);
    cr_assert_eq(got.outcome[4], SINK_GONE);
    cr_assert_eq(got.outcome[5], SINK_INDEXED);
    d = searchd_dump(sd);
    cr_assert_not_null(d);
    cr_assert_eq(json_integer_value(json_object_get(dumped(d, "a"), "version")), 10);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(dumped(d, "a"), "source"),
                                                    "n")), 1, "the index never regresses");
    cr_assert(json_is_true(json_object_get(dumped(d, "c"), "deleted")));
    json_decref(d);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_5XX], 1);
    cr_assert_eq(sink_stats(snk)->docs_retried, 1);
    cr_assert_eq(close_all(1000), 0);
    cr_assert_eq(searchd_stop(sd), 0);
}

Test(sink, searchd_body_limit_splits_until_it_fits)
{
    struct sink_opts o = opts();
    struct searchd *sd;
    char src[300], huge[1200];
    json_t *d;

    sd = searchd_start("--max-body", "700", NULL);
    o.url = searchd_url(sd);
    start(&o);
    for (uint64_t t = 0; t < 8; t++) {
        snprintf(src, sizeof(src), "{\"t\":\"%0150d\"}", (int)t);
        submit(DOC_INDEX, (char[]){ (char)('a' + t), 0 }, 1, src, t);
    }
    snprintf(huge, sizeof(huge), "{\"t\":\"%01000d\"}", 0);
    submit(DOC_INDEX, "huge", 1, huge, 8);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 9, 5000));
    for (size_t t = 0; t < 8; t++)
        cr_assert_eq(got.outcome[t], SINK_INDEXED, "doc %zu", t);
    cr_assert_eq(got.outcome[8], SINK_DLQ, "alone over the limit: dead letter");
    cr_assert_geq(sink_stats(snk)->bulk_requests[SINK_REQ_413], 3);
    d = searchd_dump(sd);
    cr_assert_eq(json_object_size(json_object_get(d, "posts")), 8);
    json_decref(d);
    cr_assert_eq(close_all(1000), 0);
    cr_assert_eq(searchd_stop(sd), 0);
}

Test(sink, searchd_connection_resets_are_retried)
{
    struct sink_opts o = opts();
    struct searchd *sd;

    sd = searchd_start("--auth", "basic", "--user", "u", "--password", "p", NULL);
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"action\":\"reset\",\"count\":2}"), 200);
    o.url = searchd_url(sd);
    o.auth = SINK_AUTH_BASIC;
    o.username = "u";
    o.password = "p";
    start(&o);
    index_doc("a", 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 5000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_NET], 2);
    cr_assert_eq(close_all(1000), 0);
    cr_assert_eq(searchd_stop(sd), 0);
}

Test(sink, unconvertible_record_goes_to_the_dead_letter_file)
{
    struct sink_opts o = opts();
    struct doc d;
    json_t *raw = json_pack("{s:s,s:{s:{s:s}}}", "eventName", "INSERT", "dynamodb", "Keys", "S",
                            "k1");
    char line[2048];
    FILE *f;

    start(&o);
    memset(&d, 0, sizeof(d));
    d.op = DOC_DELETE;
    d.index = "posts";
    d.table = "Posts";
    strcpy(d.seq, "4200000000000000000001");
    buf_init(&d.source, 0);
    cr_assert_eq(sink_dead_letter(snk, &d, raw, "record_conversion_error", "no NewImage", NULL, 7),
                 0);
    json_decref(raw);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[7], SINK_DLQ);
    f = fopen(dlq_path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_not_null(strstr(line, "\"seq\":\"4200000000000000000001\""));
    cr_assert_not_null(strstr(line, "\"status\":null"));
    cr_assert_not_null(strstr(line, "\"type\":\"record_conversion_error\",\"reason\":\"no NewImage\""));
    cr_assert_not_null(strstr(line, "\"document\":{\"eventName\":\"INSERT\""), "%s", line);
    cr_assert_eq(fake_nreq(fk), 0);
    cr_assert_eq(close_all(1000), 0);
}

/* ---- write blocks and tombstones, against the search double ---- */

static bool blocked(size_t n)
{
    return sink_stats(snk)->blocked_indexes == n;
}

static bool retried_at_least(size_t n)
{
    return sink_stats(snk)->docs_retried >= n;
}

static void lift_faults(struct searchd *sd)
{
    long status = 0;

    json_decref(searchd_json(sd, "DELETE", "/_double/faults", NULL, &status));
    cr_assert_eq(status, 200);
}

/* An index.blocks.write (or the flood-stage block of a full disk) refuses
 * every item: they wait, nothing is dead-lettered, and they land once the
 * block is lifted. */
Test(sink, searchd_write_block_is_waited_out_without_dead_letters)
{
    struct sink_opts o = opts();
    const struct sink_stats *st;
    struct searchd *sd;
    json_t *d;

    sd = searchd_start(NULL);
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"item_status\":403,\"items\":\"all\","
                                    "\"count\":-1}"),
                 200);
    o.url = searchd_url(sd);
    start(&o);
    index_doc("a", 0);
    submit(DOC_DELETE, "b", 5, NULL, 1);
    index_doc("c", 2);
    sink_flush(snk);
    cr_assert(run_until(blocked, 1, 3000));
    /* Refused again and again while it lasts: still one episode. */
    run_until(never, 0, 600);
    st = sink_stats(snk);
    cr_assert_eq(got.n, 0, "nothing finished, nothing dead-lettered");
    cr_assert_gt(st->docs_blocked, 3, "retried (%lu)", (unsigned long)st->docs_blocked);
    cr_assert_eq(st->write_blocks, 1);
    cr_assert_eq(st->docs_dlq, 0);
    cr_assert_str_eq(st->block_index, "posts");
    cr_assert_not_null(strstr(st->block_reason, "cluster_block_exception: index [posts] blocked "
                                                "by: [FORBIDDEN/8/index write (api)];"),
                       "%s", st->block_reason);
    cr_assert_neq(access(dlq_path, F_OK), 0, "no dead-letter file");

    lift_faults(sd);
    cr_assert(run_until(done_at_least, 3, 5000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(got.outcome[1], SINK_GONE);
    cr_assert_eq(got.outcome[2], SINK_INDEXED);
    st = sink_stats(snk);
    cr_assert_eq(st->blocked_indexes, 0, "the block ended with the first write taken");
    cr_assert_null(st->block_reason);
    cr_assert_eq(st->write_blocks, 1);
    d = searchd_dump(sd);
    cr_assert_not_null(dumped(d, "a"));
    cr_assert_not_null(dumped(d, "c"));
    json_decref(d);
    cr_assert_neq(access(dlq_path, F_OK), 0, "no dead-letter file");
    cr_assert_eq(close_all(1000), 0);
    cr_assert_eq(searchd_stop(sd), 0);
}

/* REFERENCE Bulk fact 8: the engine forgets a delete after gc_deletes, and
 * then takes an older index action.  Here index a@1 is held back by
 * per-item 429s while delete a@2 finishes; once the double's gc_deletes (1 s)
 * has passed and the 429s stop, a@1 must never land. */
Test(sink, searchd_an_older_action_never_lands_after_a_newer_delete)
{
    struct sink_opts o = opts();
    struct searchd *sd;
    json_t *d, *reply;
    long status = 0;

    sd = searchd_start("--gc-deletes", "1", NULL);
    /* The first item of every bulk gets a 429 until the rule is removed. */
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"item_status\":429,\"items\":1,"
                                    "\"count\":-1}"),
                 200);
    o.url = searchd_url(sd);
    start(&o);
    submit(DOC_INDEX, "a", 1, "{\"v\":1}", 0);
    sink_flush(snk);
    cr_assert(run_until(retried_at_least, 2, 5000));
    /* b goes first in its bulk and takes the 429; the delete goes through. */
    submit(DOC_INDEX, "b", 1, "{\"v\":1}", 1);
    submit(DOC_DELETE, "a", 2, NULL, 2);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 5000));
    cr_assert_eq(got.outcome[2], SINK_GONE, "a never landed: nothing to delete");
    cr_assert_eq(got.outcome[0], SINK_STALE, "a@1 is dropped once the delete finished");
    cr_assert_eq(sink_stats(snk)->tombstones, 1);

    /* The double forgets the delete; then the 429s stop. */
    run_until(never, 0, 1300);
    lift_faults(sd);
    cr_assert(run_until(done_at_least, 3, 5000));
    cr_assert_eq(got.outcome[1], SINK_INDEXED);
    /* The older action arrives once more (a replay, another stream). */
    submit(DOC_INDEX, "a", 1, "{\"v\":1}", 3);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 4, 5000));
    cr_assert_eq(got.outcome[3], SINK_STALE);
    d = searchd_dump(sd);
    cr_assert(!dumped(d, "a") || json_is_true(json_object_get(dumped(d, "a"), "deleted")),
              "a came back to life");
    json_decref(d);
    cr_assert_eq(sink_stats(snk)->docs_tombstoned, 2);
    cr_assert_eq(sink_stats(snk)->tombstones, 1);

    /* What the sink prevented: the double has forgotten the delete and
     * takes a@1 now. */
    reply = searchd_bulk(sd, "/_bulk", "{\"index\":{\"_index\":\"posts\",\"_id\":\"a\",\"version\":1,"
                                       "\"version_type\":\"external\"}}\n{\"v\":1}\n", &status);
    cr_assert_eq(status, 200);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(
                     json_array_get(json_object_get(reply, "items"), 0), "index"), "status")),
                 201);
    json_decref(reply);
    cr_assert_eq(close_all(1000), 0);
    cr_assert_eq(searchd_stop(sd), 0);
}

/* The tombstones are bounded: tombstone_max entries (the oldest evicted
 * first, and counted) for tombstone_ttl_ms each. */
Test(sink, tombstones_are_bounded_in_number_and_time)
{
    struct sink_opts o = opts();

    o.tombstone_max = 2;
    o.tombstone_ttl_ms = 300;
    start(&o);
    submit(DOC_DELETE, "x", 10, NULL, 0);
    submit(DOC_DELETE, "y", 10, NULL, 1);
    submit(DOC_DELETE, "z", 10, NULL, 2);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 3, 3000));
    cr_assert_eq(sink_stats(snk)->tombstones, 2);
    cr_assert_eq(sink_stats(snk)->tombstone_evictions, 1);
    submit(DOC_INDEX, "x", 5, "{\"v\":\"x\"}", 3); /* evicted: goes out (an engine would 409) */
    submit(DOC_INDEX, "y", 5, "{\"v\":\"y\"}", 4); /* remembered: dropped */
    submit(DOC_INDEX, "z", 11, "{\"v\":\"z\"}", 5); /* newer than the delete: goes out */
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 6, 3000));
    cr_assert_eq(got.outcome[4], SINK_STALE);
    cr_assert_eq(fake_nreq(fk), 2);
    cr_assert_not_null(strstr(eng.bodies[1], "{\"v\":\"x\"}"));
    cr_assert_null(strstr(eng.bodies[1], "{\"v\":\"y\"}"));
    cr_assert_not_null(strstr(eng.bodies[1], "{\"v\":\"z\"}"));
    /* Past the time bound they are gone, without any traffic. */
    run_until(never, 0, 400);
    cr_assert_eq(sink_stats(snk)->tombstones, 0);
    submit(DOC_INDEX, "y", 5, "{\"v\":\"y\"}", 6);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 7, 3000));
    cr_assert_eq(got.outcome[6], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->docs_tombstoned, 1);
    cr_assert_eq(close_all(1000), 0);
}

/* A delete remembered covers its own (index, _id) and nothing else: ids
 * that differ in a byte, share a prefix, or sit in another index go out;
 * the remembered ones are dropped, also after the table emptied (its memory
 * is given back then) and filled again. */
static void submit_idn(const char *index, enum doc_op op, const char *id, size_t id_len,
                       uint64_t version, uint64_t ticket)
{
    struct doc d;

    memset(&d, 0, sizeof(d));
    d.op = op;
    d.index = index;
    d.id_len = id_len;
    memcpy(d.id, id, d.id_len);
    d.version = version;
    buf_init(&d.source, 0);
    if (op == DOC_INDEX)
        buf_printf(&d.source, "{\"t\":%lu}", (unsigned long)ticket);
    snprintf(d.seq, sizeof(d.seq), "1000000000000000000%03lu", (unsigned long)ticket);
    d.table = "Posts";
    d.shard = "shardId-0001";
    cr_assert_eq(sink_submit(snk, &d, NULL, ticket), 0);
}

static void submit_in(const char *index, enum doc_op op, const char *id, uint64_t version,
                      uint64_t ticket)
{
    submit_idn(index, op, id, strlen(id), version, ticket);
}

/* Ids beyond ASCII, as DynamoDB keys may be: a NUL inside, 2- and 4-byte
 * UTF-8; each beside a neighbour that must stay apart from it. */
static const struct { const char *id; size_t len; } odd_ids[] = {
    { "n\0ul", 4 }, { "caf\xc3\xa9", 5 }, { "\xf0\x9f\x98\x80", 4 },
}, odd_neighbours[] = {
    { "n", 1 }, { "cafe", 4 }, { "\xf0\x9f\x98\x81", 4 },
};

Test(sink, a_remembered_delete_covers_its_own_id_and_no_other)
{
    struct sink_opts o = opts();
    char id[32];
    uint64_t t = 0;

    o.tombstone_ttl_ms = 400;
    start(&o);
    for (int i = 0; i < 79; i++) { /* 80: the table and its buckets grow twice */
        snprintf(id, sizeof(id), "k%d", i);
        submit_in("posts", DOC_DELETE, id, 10, t++);
    }
    submit_in("posts", DOC_DELETE, "c905747", 10, t++);
    for (size_t i = 0; i < ARRAY_SIZE(odd_ids); i++)
        submit_idn("posts", DOC_DELETE, odd_ids[i].id, odd_ids[i].len, 10, t++);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, (int)t, 3000));
    cr_assert_eq(sink_stats(snk)->tombstones, 83);
    for (int i = 0; i < 79; i++) { /* older: each dropped */
        snprintf(id, sizeof(id), "k%d", i);
        submit_in("posts", DOC_INDEX, id, 5, t++);
    }
    submit_in("posts", DOC_INDEX, "c905747", 5, t++);
    for (size_t i = 0; i < ARRAY_SIZE(odd_ids); i++)
        submit_idn("posts", DOC_INDEX, odd_ids[i].id, odd_ids[i].len, 5, t++);
    for (size_t i = 0; i < ARRAY_SIZE(odd_neighbours); i++)
        submit_idn("posts", DOC_INDEX, odd_neighbours[i].id, odd_neighbours[i].len, 5, t++);
    for (int i = 80; i < 120; i++) { /* never deleted */
        snprintf(id, sizeof(id), "k%d", i);
        submit_in("posts", DOC_INDEX, id, 5, t++);
    }
    submit_in("posts", DOC_INDEX, "k1x", 5, t++);      /* one byte more */
    submit_in("posts", DOC_INDEX, "K1", 5, t++);       /* one byte other */
    submit_in("posts2", DOC_INDEX, "k1", 5, t++);      /* another index */
    submit_in("post", DOC_INDEX, "sk1", 5, t++);       /* the same bytes, split elsewhere */
    /* The same bucket hash (FNV-1a of "posts", NUL, the id: 0x8dcbb155) as
     * c905747, deleted below: told apart by the fingerprint alone. */
    submit_in("posts", DOC_INDEX, "c1625710", 5, t++);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, (int)t, 3000));
    for (uint64_t i = 83; i < 166; i++)
        cr_assert_eq(got.outcome[i], SINK_STALE, "ticket %lu", (unsigned long)i);
    for (uint64_t i = 166; i < t; i++)
        cr_assert_eq(got.outcome[i], SINK_INDEXED, "ticket %lu", (unsigned long)i);
    cr_assert_eq(sink_stats(snk)->docs_tombstoned, 83);

    /* All expire, the table is given back; it fills again and still holds. */
    run_until(never, 0, 500);
    cr_assert_eq(sink_stats(snk)->tombstones, 0);
    submit_in("posts", DOC_DELETE, "k7", 20, t++);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, (int)t, 3000));
    submit_in("posts", DOC_INDEX, "k7", 19, t++);
    submit_in("posts", DOC_INDEX, "k8", 19, t++);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, (int)t, 3000));
    cr_assert_eq(got.outcome[t - 2], SINK_STALE);
    cr_assert_eq(got.outcome[t - 1], SINK_INDEXED);
    cr_assert_eq(sink_stats(snk)->tombstones, 1);
    cr_assert_eq(close_all(1000), 0);
}

/* ---- holding, calls outside the batches, the engine's parameters ---- */

Test(sink, a_held_sink_sends_nothing_until_released)
{
    struct sink_opts o = opts();

    start(&o);
    sink_hold(snk);
    cr_assert(sink_held(snk));
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert_not(run_until(nreq_at_least, 1, 300), "a held sink sent a bulk request");
    cr_assert(sink_full(snk), "readers pause while a batch waits on a held sink");
    sink_release(snk);
    cr_assert_not(sink_held(snk));
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, closing_a_held_sink_cancels_what_waits_at_once)
{
    struct sink_opts o = opts();
    uint64_t t0;

    start(&o);
    sink_hold(snk);
    index_doc("a", 0);
    t0 = uv_now(&loop);
    sclosed = 0;
    sink_close(snk, 10000, on_closed, &sclosed);
    while (!sclosed && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_lt(uv_now(&loop) - t0, 2000, "waited for the deadline");
    cr_assert_eq(got.outcome[0], SINK_CANCELED);
    cr_assert_eq(fake_nreq(fk), 0);
    cr_assert_eq(finish_close(), 0);
}

static int unreachable_calls;

static void on_unreachable(void *arg)
{
    (void)arg;
    unreachable_calls++;
    cr_assert(sink_held(snk), "the sink holds before it tells");
}

Test(sink, no_answer_holds_the_sink_until_the_owner_releases_it)
{
    struct sink_opts o = opts();
    struct fake_reply drop = { .action = FAKE_DROP };

    unreachable_calls = 0;
    fake_reply_ex(fk, &drop);
    start(&o);
    sink_on_unreachable(snk, on_unreachable, NULL);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(nreq_at_least, 1, 3000));
    cr_assert_not(run_until(nreq_at_least, 2, 500), "sent again before the release");
    cr_assert_eq(unreachable_calls, 1);
    cr_assert_eq(got.n, 0);
    sink_release(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_eq(got.outcome[0], SINK_INDEXED);
    cr_assert_eq(unreachable_calls, 1);
    cr_assert_eq(close_all(1000), 0);
}

struct reply {
    int err;
    long status;
    char body[256];
    bool done;
};

static void on_reply(void *arg, int err, long status, const char *body, size_t len)
{
    struct reply *r = arg;

    r->err = err;
    r->status = status;
    snprintf(r->body, sizeof(r->body), "%.*s", (int)len, body);
    r->done = true;
}

Test(sink, a_call_carries_the_auth_and_returns_the_reply)
{
    struct sink_opts o = opts();
    struct reply r = { 0 };
    char v[128];

    o.auth = SINK_AUTH_BASIC;
    o.username = "elastic";
    o.password = "s3cr3t";
    start(&o);
    cr_assert_eq(sink_call(snk, "PUT", "/posts", "application/json", "{\"a\":1}", 7, 0, on_reply,
                           &r), 0);
    while (!r.done && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"acknowledged\":true}");
    cr_assert_str_eq(fake_req(fk, 0)->method, "PUT");
    cr_assert_str_eq(fake_req(fk, 0)->path, "/posts");
    cr_assert_str_eq(hdr_in(fake_req(fk, 0)->headers, "Authorization", v, sizeof(v)),
                     "Basic ZWxhc3RpYzpzM2NyM3Q=");
    cr_assert_str_eq(hdr_in(fake_req(fk, 0)->headers, "Content-Type", v, sizeof(v)),
                     "application/json");
    cr_assert_str_eq(fake_req(fk, 0)->body, "{\"a\":1}");
    cr_assert_eq(sink_stats(snk)->bulk_requests[SINK_REQ_2XX], 0, "not a bulk request");
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, bulk_requests_say_include_source_on_error_false_when_told)
{
    struct sink_opts o = opts();

    start(&o);
    index_doc("a", 0);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 1, 3000));
    cr_assert_null(strstr(fake_req(fk, 0)->path, "include_source_on_error"));
    cr_assert_eq(sink_set_source_on_error(snk, false), 0);
    index_doc("b", 1);
    sink_flush(snk);
    cr_assert(run_until(done_at_least, 2, 3000));
    cr_assert_not_null(strstr(fake_req(fk, 1)->path, "&include_source_on_error=false"), "%s",
                       fake_req(fk, 1)->path);
    cr_assert_eq(strncmp(fake_req(fk, 1)->path, "/_bulk?filter_path=", 19), 0,
                 "filter_path stays: %s", fake_req(fk, 1)->path);
    cr_assert_eq(close_all(1000), 0);
}

static void aoss_sink(size_t bulk_max_bytes)
{
    struct sink_opts o = opts();

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    creds = creds_new(&loop, client, NULL);
    cr_assert_not_null(creds);
    o.auth = SINK_AUTH_SIGV4;
    o.sigv4_service = "aoss";
    o.sigv4_region = "eu-west-1";
    o.ping_index = "my posts";
    o.bulk_max_bytes = bulk_max_bytes;
    o.bulk_max_actions = 100000;
    o.max_queue_bytes = (size_t)64 << 20;
    start(&o);
}

Test(sink, opensearch_serverless_bodies_stay_under_10_mib)
{
    static char src[64 << 10];
    size_t n = 0;

    aoss_sink((size_t)20 << 20);
    memset(src, 'x', sizeof(src));
    memcpy(src, "{\"t\":\"", 6);
    memcpy(src + sizeof(src) - 3, "\"}", 3);
    for (uint64_t t = 0; t < 200; t++) { /* 12.8 MB */
        char id[16];

        snprintf(id, sizeof(id), "d%lu", (unsigned long)t);
        submit(DOC_INDEX, id, 0, src, t);
        n++;
    }
    sink_flush(snk);
    cr_assert(run_until(done_at_least, n, 10000));
    cr_assert_geq(fake_nreq(fk), 2, "one body would have been 12.8 MB");
    for (size_t i = 0; i < fake_nreq(fk); i++)
        cr_assert_leq(fake_req(fk, i)->body_len, SINK_AOSS_MAX_BODY, "request %zu: %zu bytes", i,
                      fake_req(fk, i)->body_len);
    cr_assert_eq(close_all(1000), 0);
}

Test(sink, opensearch_serverless_is_pinged_without_get_root)
{
    int rc = 1;

    aoss_sink((size_t)5 << 20);
    cr_assert_eq(sink_ping(snk, on_ping, &rc), 0);
    while (rc == 1 && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_str_eq(fake_req(fk, 0)->method, "HEAD");
    cr_assert_str_eq(fake_req(fk, 0)->path, "/my%20posts");
    verify_sigv4(fake_req(fk, 0), "aoss", "eu-west-1");
    cr_assert_eq(close_all(1000), 0);
}
