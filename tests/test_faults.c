/* Resilience end to end: the real daemon between the Streams stand-in and
 * the search double, with faults on the sink side (whole-request 429 and
 * 503, per-item 429, connections reset mid-response, answers slower than
 * request_timeout, 413, the engine down for a minute), SIGKILL at random
 * moments with the checkpoint checked after every kill, and a full disk
 * under the state directory.
 *
 * Every test ends with the index equal to the stream's last images (nothing
 * lost, nothing stale), checks that re-sent actions stay within what was in
 * flight, and that retries back off (the double counts the requests).  A
 * stall fails by its wait timing out.  Seeds are printed in the log. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/seqnum.h"
#include "tests/support/fakestreams.h"
#include "tests/support/fsworld.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(faults, .timeout = 240);

#define BATCH 200 /* bulk_max_actions: the most one request can put in flight */

/* ASan and valgrind runs set BUILD to their build directory. */
static bool sanitized(void)
{
    const char *b = getenv("BUILD");

    return b && strstr(b, "asan");
}

/* A small random workload: ids from a pool, INSERT first, then MODIFY or
 * (one in ten) REMOVE, then INSERT again; every image gets a v of its own,
 * so a document's v names the record it came from. */
struct load {
    unsigned seed, next_v;
    bool live[500];
};

static unsigned lrand(struct load *l)
{
    l->seed = l->seed * 1103515245u + 12345u;
    return (l->seed >> 16) & 0x7fff;
}

static void put_some(struct fakestreams *fs, int shard, struct load *l, int n, int64_t created)
{
    for (int i = 0; i < n; i++) {
        unsigned k = lrand(l) % 500;
        char id[16], v[16];
        const char *ev = !l->live[k] ? "INSERT" : lrand(l) % 10 == 0 ? "REMOVE" : "MODIFY";

        snprintf(id, sizeof(id), "k%03u", k);
        snprintf(v, sizeof(v), "%u", ++l->next_v);
        fs_put(fs, shard, ev, id, v, created);
        l->live[k] = strcmp(ev, "REMOVE") != 0;
    }
}

static void clear_faults(struct fsworld *w)
{
    struct searchd_resp r;

    cr_assert_eq(searchd_request(w->sd, "DELETE", "/_double/faults", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    searchd_resp_close(&r);
}

static long faults_applied(struct fsworld *w)
{
    json_t *st = searchd_stats(w->sd);
    long n = (long)json_integer_value(json_object_get(st, "faults_applied"));

    json_decref(st);
    return n;
}

static bool wait_faults_applied(struct fsworld *w, long n, long ms)
{
    for (long t = 0; t <= ms; t += 50) {
        if (faults_applied(w) >= n)
            return true;
        usleep(50000);
    }
    return false;
}

struct sink_case {
    const char *rules;       /* installed before the start, lifted after window_ms */
    const char *sink_extra;  /* more [sink] lines */
    const char *searchd_opt; /* one option with its value ("--max-body 20000"), or NULL */
    long window_ms;
    long max_requests; /* bulk requests the double may see during the window */
};

/* 3000 records on one shard, the fault from the first bulk request on for
 * window_ms, then none: the index must end equal to the stream. */
static void sink_case_run(const struct sink_case *c, struct fsworld *w)
{
    char opt[64], *val, why[512];
    const char *opts[3] = { NULL };
    struct load l = { .seed = (unsigned)time(NULL) };
    long during, records, actions, applied;
    int shard;

    cr_log_info("seed %u", l.seed);
    if (c->searchd_opt) {
        snprintf(opt, sizeof(opt), "%s", c->searchd_opt);
        val = strchr(opt, ' ');
        *val++ = '\0';
        opts[0] = opt;
        opts[1] = val;
    }
    fsw_setup(w, opts);
    shard = fs_add_shard(w->fs, -1, false);
    for (int s = 0; s < 30; s++)
        put_some(w->fs, shard, &l, 100, 1000 + s);
    records = (long)fs_records(w->fs, shard, NULL, 0);
    if (c->rules)
        cr_assert_eq(searchd_faults(w->sd, c->rules), 200);
    {
        char sink[512];

        snprintf(sink, sizeof(sink), "bulk_max_actions = %d\nmax_retry_backoff = 2s\n%s", BATCH,
                 c->sink_extra ? c->sink_extra : "");
        fsw_start(w, NULL, sink);
    }
    if (c->rules) {
        cr_assert(wait_faults_applied(w, 1, 20000), "the fault was met (seed %u)", l.seed);
        usleep((useconds_t)c->window_ms * 1000);
        during = fsw_bulk_requests(w, 0);
        clear_faults(w);
        cr_log_info("%ld bulk requests during %ld ms of fault", during, c->window_ms);
        cr_expect_leq(during, c->max_requests, "%ld bulk requests in %ld ms: no backoff", during,
                      c->window_ms);
    }
    cr_assert(fsw_wait_matches(w, &shard, 1, 60000, why, sizeof(why)),
              "index = stream once the fault ended (seed %u): %s", l.seed, why);
    actions = fsw_actions(w);
    applied = faults_applied(w);
    cr_log_info("%ld records, %ld actions received, %ld faulted requests", records, actions,
                applied);
    cr_expect_leq(actions, records + applied * BATCH,
                  "re-sent actions within what was in flight: %ld actions for %ld records and "
                  "%ld faulted requests (seed %u)",
                  actions, records, applied, l.seed);
}

/* Elasticsearch bulk API: "429 Too Many Requests" when the node rejects a
 * request (es_rejected_execution_exception); retried with backoff. */
Test(faults, sink_request_429_backs_off_and_loses_nothing)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"status\":429,\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"429\""), 2);
    fsw_teardown(&w);
}

/* 503 (cluster_block_exception, no master): retried with backoff. */
Test(faults, sink_request_503_backs_off_and_loses_nothing)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"status\":503,\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"5xx\""), 2);
    fsw_teardown(&w);
}

/* A 200 whose odd items are 429: only those are sent again. */
Test(faults, sink_item_429_retries_only_the_rejected_items)
{
    struct fsworld w;
    struct sink_case c = {
        .rules = "{\"match\":\"bulk\",\"item_status\":429,\"items\":\"odd\",\"count\":-1}",
        .window_ms = 4000, .max_requests = 60
    };

    sink_case_run(&c, &w);
    cr_expect_gt(fsw_metric(&w, "ddb2es_docs_retried_total", ""), 0);
    fsw_teardown(&w);
}

/* The double applies the bulk, sends the head and half the body, then
 * resets the connection: the batch is sent again and what was applied
 * answers 409 (finished). */
Test(faults, sink_connection_reset_mid_response_is_retried)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"action\":\"reset\",\"count\":-1}",
                           .window_ms = 4000, .max_requests = 60 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\""), 1);
    fsw_teardown(&w);
}

/* Answers 2.5 s late with request_timeout = 1s: each request times out and
 * is retried; the late answers change nothing. */
Test(faults, sink_slower_than_request_timeout_is_retried)
{
    struct fsworld w;
    struct sink_case c = { .rules = "{\"match\":\"bulk\",\"delay_ms\":2500,\"count\":-1}",
                           .sink_extra = "request_timeout = 1s\n",
                           .window_ms = 5000, .max_requests = 40 };

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\""), 1);
    fsw_teardown(&w);
}

/* http.max_content_length: the engine refuses bodies over 20 kB with 413,
 * so 256 kB batches are split until they fit; nothing is dead-lettered. */
Test(faults, sink_413_splits_until_the_batches_fit)
{
    struct fsworld w;
    struct sink_case c = { .searchd_opt = "--max-body 20000",
                           .sink_extra = "bulk_max_bytes = 256k\n" };
    char path[512];
    struct stat st;

    sink_case_run(&c, &w);
    cr_expect_geq(fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"413\""), 1);
    snprintf(path, sizeof(path), "%s/dlq.ndjson", w.dir);
    cr_expect(stat(path, &st) != 0 || st.st_size == 0, "nothing was dead-lettered");
    fsw_teardown(&w);
}

/* The engine goes away for a minute (every connection refused), with far
 * more in the stream than max_queue_bytes: the readers pause, memory stays
 * under the cap, retries back off, and everything arrives once it is back.
 * Under the sanitizers the outage is 15 s and memory is not measured. */
Test(faults, sink_down_for_a_minute_then_back)
{
    const long outage_ms = sanitized() ? 15000 : 60000;
    const long cap_kb = 64 * 1024;
    struct fsworld w;
    struct load l = { .seed = (unsigned)time(NULL) };
    char rule[64], why[512];
    long records, peak_kb, refused;
    int shard;

    cr_log_info("seed %u", l.seed);
    fsw_setup(&w, NULL);
    shard = fs_add_shard(w.fs, -1, false);
    fs_pad(w.fs, 2000); /* 2 kB documents: 40,000 of them make 80 MB */
    for (int s = 0; s < 40; s++)
        put_some(w.fs, shard, &l, 1000, 1000 + s);
    records = (long)fs_records(w.fs, shard, NULL, 0);
    snprintf(rule, sizeof(rule), "{\"down_ms\":%ld}", outage_ms);
    cr_assert_eq(searchd_faults(w.sd, rule), 200);
    fsw_start(&w, "max_queue_bytes = 8m\n", "max_retry_backoff = 5s\n");
    cr_assert(fsw_log_has(&w, "-> paused", 30000), "the readers paused on the full queue");
    /* Wait out the outage while it lasts, checking the daemon is alive. */
    for (long t = 0; t < outage_ms - 2000; t += 1000) {
        cr_assert_eq(proc_wait(&w.p, 0), -1, "the daemon is running");
        usleep(1000000);
    }
    peak_kb = fsw_peak_rss_kb(&w);
    refused = (long)fsw_metric(&w, "ddb2es_bulk_requests_total", "status=\"network\"");
    cr_log_info("outage %ld ms: %ld bulk attempts refused, peak RSS %ld kB with "
                "max_queue_bytes = 8m and an 80 MB backlog",
                outage_ms, refused, peak_kb);
    cr_expect_geq(refused, 2, "it kept trying");
    cr_expect_leq(refused, outage_ms / 1000, "backoff: %ld attempts in %ld ms", refused,
                  outage_ms);
    if (!sanitized())
        cr_expect_leq(peak_kb, cap_kb, "peak RSS %ld kB over the %ld kB cap", peak_kb, cap_kb);
    cr_assert(fsw_wait_matches(&w, &shard, 1, 120000, why, sizeof(why)),
              "index = stream after the outage (seed %u): %s", l.seed, why);
    cr_expect_leq(fsw_actions(&w), records,
                  "a refused connection applies nothing: each record sent once");
    fsw_teardown(&w);
}
