/* metrics: the exposition text (checked with the strict parser), the
 * parser's own refusals, and the HTTP endpoint on a real loop. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <arpa/inet.h>

#include "daemon/app.h"
#include "daemon/metrics.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/promparse.h"
#include "tests/support/searchd_ctl.h"

TestSuite(metrics, .timeout = 20);
TestSuite(metrics_e2e, .timeout = 90);
TestSuite(promparse, .timeout = 5);

static const char *const spec_families[][2] = {
    { "ddb2es_records_read_total", "counter" },
    { "ddb2es_docs_indexed_total", "counter" },
    { "ddb2es_docs_deleted_total", "counter" },
    { "ddb2es_bulk_requests_total", "counter" },
    { "ddb2es_bulk_item_failures_total", "counter" },
    { "ddb2es_dlq_total", "counter" },
    { "ddb2es_iterator_age_seconds", "gauge" },
    { "ddb2es_shards", "gauge" },
    { "ddb2es_checkpoint_writes_total", "counter" },
    { "ddb2es_bulk_seconds", "histogram" },
    { "ddb2es_records_lost_events_total", "counter" },
};

static char *render(const struct metrics_view *v)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    cr_assert_eq(metrics_render(v, &b), 0);
    return buf_take(&b);
}

static void parse_ok(const char *text, struct prom *p)
{
    char err[256];

    cr_assert_eq(prom_parse(text, p, err, sizeof(err)), 0, "%s\n---\n%s", err, text);
}

static double value(const struct prom *p, const char *name, const char *labels)
{
    const struct prom_sample *s = prom_find(p, name, labels);

    cr_assert_not_null(s, "no sample %s{%s}", name, labels);
    return s->value;
}

Test(metrics, text_has_every_spec_metric_with_values)
{
    struct metrics_table t[2] = { { .name = "posts" }, { .name = "we\"ird\\na\nme" } };
    struct sink_item_failure f[2] = { { .table = "posts", .type = "mapper_parsing_exception",
                                        .count = 3 },
                                      { .table = "posts", .type = "es_rejected_execution_exception",
                                        .count = 5 } };
    struct sink_item_failure dl[2] = { { .table = "posts", .type = "mapper_parsing_exception",
                                         .count = 1 },
                                       { .table = "posts", .type = "record_not_json",
                                         .count = 2 } };
    struct sink_stats ss = { .n_item_failures = 2, .item_failures = f, .n_dlq_reasons = 2,
                             .dlq_reasons = dl };
    struct metrics_view v = { .now = 1000, .start_time = 900, .tables = t, .ntables = 2,
                              .sink = &ss, .checkpoint_writes = 12, .cred_renewals_ok = 4,
                              .cred_renewals_failed = 1, .ready = true };
    struct prom p;
    char *text;

    t[0].st.records_read = 42;
    t[0].st.docs_indexed = 40;
    t[0].st.docs_deleted = 2;
    t[0].st.docs_dlq = 1;
    t[0].st.records_lost_events = 1;
    t[0].st.newest_created = 990;
    t[0].st.shards_open = 3;
    t[0].st.shards_done = 7;
    ss.bulk_requests[SINK_REQ_2XX] = 9;
    ss.bulk_requests[SINK_REQ_429] = 2;
    ss.bulk_seconds_bucket[0] = 4;      /* <= 5 ms */
    ss.bulk_seconds_bucket[5] = 3;      /* <= 250 ms */
    ss.bulk_seconds_bucket[SINK_BULK_NBUCKETS] = 1; /* > 30 s */
    ss.bulk_seconds_count = 8;
    ss.bulk_seconds_sum = 31.5;
    text = render(&v);
    parse_ok(text, &p);
    for (size_t i = 0; i < sizeof(spec_families) / sizeof(spec_families[0]); i++) {
        const struct prom_family *fam = prom_family(&p, spec_families[i][0]);

        cr_assert_not_null(fam, "family %s missing", spec_families[i][0]);
        cr_expect_str_eq(fam->type, spec_families[i][1], "%s", fam->name);
        cr_expect(fam->help && *fam->help, "%s has a HELP text", fam->name);
    }
    cr_expect_eq(value(&p, "ddb2es_records_read_total", "table=\"posts\""), 42);
    cr_expect_eq(value(&p, "ddb2es_docs_indexed_total", "table=\"posts\""), 40);
    cr_expect_eq(value(&p, "ddb2es_docs_deleted_total", "table=\"posts\""), 2);
    cr_expect_eq(value(&p, "ddb2es_dlq_total", "reason=\"mapper_parsing_exception\",table=\"posts\""),
                 1);
    cr_expect_eq(value(&p, "ddb2es_dlq_total", "reason=\"record_not_json\",table=\"posts\""), 2,
                 "each reason its own series");
    cr_expect_eq(value(&p, "ddb2es_records_lost_events_total", "table=\"posts\""), 1);
    cr_expect_eq(value(&p, "ddb2es_iterator_age_seconds", "table=\"posts\""), 10);
    cr_expect_null(prom_find(&p, "ddb2es_iterator_age_seconds", "table=\"we\\\"ird\\\\na\\nme\""),
                   "no age before a record was read");
    cr_expect_eq(value(&p, "ddb2es_records_read_total", "table=\"we\\\"ird\\\\na\\nme\""), 0,
                 "label values are escaped");
    cr_expect_eq(value(&p, "ddb2es_shards", "state=\"open\",table=\"posts\""), 3);
    cr_expect_eq(value(&p, "ddb2es_shards", "state=\"done\",table=\"posts\""), 7);
    cr_expect_eq(value(&p, "ddb2es_shards", "state=\"closed\",table=\"posts\""), 0);
    cr_expect_eq(value(&p, "ddb2es_bulk_requests_total", "status=\"2xx\""), 9);
    cr_expect_eq(value(&p, "ddb2es_bulk_requests_total", "status=\"429\""), 2);
    cr_expect_eq(value(&p, "ddb2es_bulk_requests_total", "status=\"network\""), 0);
    cr_expect_eq(value(&p, "ddb2es_bulk_item_failures_total",
                       "table=\"posts\",type=\"mapper_parsing_exception\""),
                 3);
    cr_expect_eq(value(&p, "ddb2es_bulk_item_failures_total",
                       "table=\"posts\",type=\"es_rejected_execution_exception\""),
                 5);
    cr_expect_eq(value(&p, "ddb2es_checkpoint_writes_total", ""), 12);
    cr_expect_eq(value(&p, "ddb2es_credential_renewals_total", "result=\"ok\""), 4);
    cr_expect_eq(value(&p, "ddb2es_credential_renewals_total", "result=\"failed\""), 1);
    cr_expect_eq(value(&p, "ddb2es_ready", ""), 1);
    cr_expect_eq(prom_count(&p, "ddb2es_bulk_seconds_bucket"), SINK_BULK_NBUCKETS + 1);
    cr_expect(strstr(text, "ddb2es_bulk_seconds_bucket{le=\"0.005\"} 4\n") != NULL, "%s", text);
    cr_expect(strstr(text, "ddb2es_bulk_seconds_bucket{le=\"0.25\"} 7\n") != NULL, "cumulative");
    cr_expect(strstr(text, "ddb2es_bulk_seconds_bucket{le=\"30\"} 7\n") != NULL, "cumulative");
    cr_expect(strstr(text, "ddb2es_bulk_seconds_bucket{le=\"+Inf\"} 8\n") != NULL);
    cr_expect_eq(value(&p, "ddb2es_bulk_seconds_count", ""), 8);
    cr_expect_float_eq(value(&p, "ddb2es_bulk_seconds_sum", ""), 31.5, 1e-9);
    prom_free(&p);
    free(text);
}

Test(metrics, text_without_sink_or_tables_is_valid)
{
    struct metrics_view v = { .now = 5 };
    struct prom p;
    char *text = render(&v);

    parse_ok(text, &p);
    cr_expect_eq(value(&p, "ddb2es_bulk_seconds_count", ""), 0);
    cr_expect_eq(value(&p, "ddb2es_ready", ""), 0);
    cr_expect_eq(prom_count(&p, "ddb2es_records_read_total"), 0);
    cr_expect_not_null(prom_family(&p, "ddb2es_records_read_total"));
    prom_free(&p);
    free(text);
}

Test(metrics, render_reports_a_full_buffer)
{
    struct metrics_view v = { .now = 5 };
    struct buf b;

    buf_init(&b, 512);
    cr_assert_eq(metrics_render(&v, &b), -E2BIG);
    buf_close(&b);
}

Test(metrics, split_addr)
{
    char host[64], port[8];

    cr_assert_eq(metrics_split_addr("127.0.0.1:9108", host, sizeof(host), port, sizeof(port)), 0);
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect_str_eq(port, "9108");
    cr_assert_eq(metrics_split_addr("[::1]:9108", host, sizeof(host), port, sizeof(port)), 0);
    cr_expect_str_eq(host, "::1");
    cr_assert_eq(metrics_split_addr("localhost:1", host, sizeof(host), port, sizeof(port)), 0);
    cr_expect_str_eq(host, "localhost");
    cr_expect_eq(metrics_split_addr("9108", host, sizeof(host), port, sizeof(port)), -EINVAL);
    cr_expect_eq(metrics_split_addr(":9108", host, sizeof(host), port, sizeof(port)), -EINVAL);
    cr_expect_eq(metrics_split_addr("[::1:9108", host, sizeof(host), port, sizeof(port)), -EINVAL);
    cr_expect_eq(metrics_split_addr("h:", host, sizeof(host), port, sizeof(port)), -EINVAL);
}

/* ---- the parser refuses what is wrong ---------------------------------- */

static void parse_bad(const char *text, const char *why)
{
    struct prom p;
    char err[256];

    cr_expect_eq(prom_parse(text, &p, err, sizeof(err)), -1, "accepted: %s", text);
    cr_expect(strstr(err, why) != NULL, "error \"%s\" lacks \"%s\"", err, why);
    prom_free(&p);
}

#define T "# TYPE x counter\n"
#define H "# TYPE h histogram\n"
Test(promparse, refuses_malformed_text)
{
    parse_bad("x 1\n", "without a TYPE");
    parse_bad(T "x 1", "without a newline");
    parse_bad(T "x 1\n\n", "blank line");
    parse_bad(T "x 1\n" T, "second TYPE");
    parse_bad(T "x 1\n# HELP x late\n", "after its samples");
    parse_bad(T "x{a=\"1\"} 1\nx{a=\"1\"} 2\n", "duplicate series");
    parse_bad(T "x{a=\"1\",a=\"2\"} 1\n", "twice");
    parse_bad(T "x{a=\"\\t\"} 1\n", "bad escape");
    parse_bad(T "x{a=1} 1\n", "expected =\"");
    parse_bad(T "x{__a=\"1\"} 1\n", "reserved");
    parse_bad(T "x one\n", "bad value");
    parse_bad(T "x -1\n", "counter value");
    parse_bad("# TYPE x counter\n# TYPE y gauge\nx 1\ny 1\nx{a=\"2\"} 1\n", "resumed");
    parse_bad("# TYPE x countr\n", "unknown type");
    parse_bad(H "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
                "h_sum 1\nh_count 2\n",
              "not cumulative");
    parse_bad(H "h_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", "+Inf");
    parse_bad(H "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
              "+Inf bucket is 2");
    parse_bad(H "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
                "h_count 2\n",
              "not increasing");
    parse_bad(H "h_bucket{le=\"+Inf\"} 2\nh_count 2\n", "no _sum");
    parse_bad(H "h_bucket 1\n", "without le");
}

Test(promparse, accepts_valid_text)
{
    struct prom p;

    parse_ok("# HELP x a \\\\ help\\n\n" T "x{a=\"q\\\"\\\\\\n\"} 1\nx 2 1700000000\n"
             "# TYPE g gauge\ng NaN\ng{b=\"\"} -Inf\n" H "h_bucket{le=\"0.5\"} 1\n"
             "h_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\n",
             &p);
    cr_expect_eq(p.nsamples, 8);
    cr_expect_not_null(prom_find(&p, "x", "a=\"q\\\"\\\\\\n\""));
    prom_free(&p);
}

/* ---- the endpoint ------------------------------------------------------ */

struct server {
    uv_loop_t loop;
    uv_async_t stop;
    struct app app;
    struct metrics *m;
    pthread_t thread;
    int port;
};

static void on_stop(uv_async_t *a)
{
    struct server *s = a->data;

    metrics_close(s->m);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
    struct server *s = arg;

    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static time_t fixed_now(void)
{
    return 1000;
}

static int server_start_t(struct server *s, const char *addr, uint64_t timeout_ms)
{
    char err[256];
    int rc;

    memset(s, 0, sizeof(*s));
    cr_assert_eq(uv_loop_init(&s->loop), 0);
    s->app.loop = &s->loop;
    s->app.now = fixed_now;
    s->app.checkpoint_writes = 3;
    s->m = metrics_new(&s->app, NULL);
    cr_assert_not_null(s->m);
    metrics_set_timeout(s->m, timeout_ms);
    rc = metrics_listen(s->m, addr, err, sizeof(err));
    if (rc < 0) {
        metrics_close(s->m);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        metrics_free(s->m);
        uv_loop_close(&s->loop);
        return rc;
    }
    s->port = metrics_port(s->m);
    cr_assert_gt(s->port, 0);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    pthread_create(&s->thread, NULL, loop_thread, s);
    return 0;
}

static int server_start(struct server *s, const char *addr)
{
    return server_start_t(s, addr, 300);
}

static void server_stop(struct server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    metrics_free(s->m);
    cr_assert_eq(uv_loop_close(&s->loop), 0, "nothing left open on the loop");
}

static int connect_port(int family, int port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = 3 };
    int rc;

    cr_assert(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (family == AF_INET6) {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    } else {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    }
    cr_assert_eq(rc, 0, "connect: %s", strerror(errno));
    return fd;
}

/* Reads until the server closes; the reply (caller frees). */
static char *read_all(int fd)
{
    struct buf b;
    char chunk[4096];
    ssize_t n;

    buf_init(&b, BUF_NOMAX);
    while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
        buf_append(&b, chunk, (size_t)n);
    cr_assert(n == 0, "the server closes the connection (%s)", strerror(errno));
    return buf_take(&b);
}

static char *request(int family, int port, const char *raw)
{
    int fd = connect_port(family, port);
    char *reply;

    cr_assert_eq(send(fd, raw, strlen(raw), MSG_NOSIGNAL), (ssize_t)strlen(raw));
    reply = read_all(fd);
    close(fd);
    return reply;
}

static const char *body_of(const char *reply)
{
    const char *b = strstr(reply, "\r\n\r\n");

    cr_assert_not_null(b, "no head end: %s", reply);
    return b + 4;
}

Test(metrics, endpoint_routes_and_methods)
{
    struct server s;
    struct prom p;
    char *r;

    cr_assert_eq(server_start(&s, "127.0.0.1:0"), 0);
    r = request(AF_INET, s.port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    cr_expect(strstr(r, "Content-Type: text/plain; version=0.0.4") != NULL, "%s", r);
    parse_ok(body_of(r), &p);
    cr_expect_eq(value(&p, "ddb2es_checkpoint_writes_total", ""), 3);
    prom_free(&p);
    free(r);

    r = request(AF_INET, s.port, "HEAD /metrics HTTP/1.0\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    cr_expect(strstr(r, "Content-Length: ") != NULL);
    cr_expect_str_eq(body_of(r), "", "HEAD has no body");
    free(r);

    r = request(AF_INET, s.port, "GET /healthz?verbose=1 HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    free(r);
    r = request(AF_INET, s.port, "GET /readyz HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 503 ", 13) == 0, "not ready without a health: %s", r);
    free(r);
    r = request(AF_INET, s.port, "GET /metricsx HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "%s", r);
    free(r);
    r = request(AF_INET, s.port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "%s", r);
    cr_expect(strstr(r, "Allow: GET, HEAD") != NULL);
    free(r);
    r = request(AF_INET, s.port, "hello\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 400 ", 13) == 0, "%s", r);
    free(r);
    server_stop(&s);
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(metrics, slow_and_oversized_clients_do_not_block_others)
{
    struct server s;
    int idle, partial, big;
    char junk[METRICS_REQ_MAX + 100];
    char *r;
    long t0;

    cr_assert_eq(server_start(&s, "127.0.0.1:0"), 0);
    t0 = now_ms();
    idle = connect_port(AF_INET, s.port);    /* sends nothing */
    partial = connect_port(AF_INET, s.port); /* half a request, never finished */
    cr_assert_eq(send(partial, "GET /metr", 9, MSG_NOSIGNAL), 9);

    r = request(AF_INET, s.port, "GET /healthz HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "served while others hang: %s", r);
    free(r);

    memset(junk, 'a', sizeof(junk));
    memcpy(junk, "GET /metrics HTTP/1.1\r\nX-Pad: ", 30);
    big = connect_port(AF_INET, s.port);
    send(big, junk, sizeof(junk), MSG_NOSIGNAL);
    r = read_all(big);
    cr_expect(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "oversized head: %.40s", r);
    free(r);
    close(big);

    /* The slow ones are dropped after the timeout (300 ms here). */
    r = read_all(idle);
    cr_expect_str_eq(r, "");
    free(r);
    r = read_all(partial);
    cr_expect_str_eq(r, "");
    free(r);
    cr_expect_lt(now_ms() - t0, 2500, "dropped after the timeout");
    close(idle);
    close(partial);
    server_stop(&s);
}

Test(metrics, connections_past_the_limit_are_closed_at_once)
{
    struct server s;
    int fds[METRICS_MAX_CONNS], extra;
    char *r = NULL;
    long t0;

    cr_assert_eq(server_start_t(&s, "127.0.0.1:0", 10000), 0);
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
        fds[i] = connect_port(AF_INET, s.port);
    /* One more: closed long before the 10 s timeout. */
    t0 = now_ms();
    extra = connect_port(AF_INET, s.port);
    {
        char c;
        ssize_t n = recv(extra, &c, 1, 0);

        cr_expect(n == 0 || (n < 0 && errno == ECONNRESET), "closed (%zd, %s)", n,
                  strerror(errno));
    }
    cr_expect_lt(now_ms() - t0, 2000);
    close(extra);
    for (size_t i = 0; i < METRICS_MAX_CONNS; i++)
        close(fds[i]);
    /* Once the server saw those go, it serves again. */
    for (int tries = 0; tries < 100; tries++) {
        int fd = connect_port(AF_INET, s.port);
        const char *req = "GET /healthz HTTP/1.1\r\n\r\n";
        char buf[512];
        ssize_t n;

        send(fd, req, strlen(req), MSG_NOSIGNAL);
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            r = strdup(buf);
            break;
        }
        usleep(20000);
    }
    cr_assert_not_null(r, "served again after the others left");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    free(r);
    server_stop(&s);
}

Test(metrics, listens_on_ipv6_loopback)
{
    struct server s;
    char *r;
    int rc = server_start(&s, "[::1]:0");

    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)
        cr_skip_test("no IPv6 loopback here");
    cr_assert_eq(rc, 0, "%s", strerror(-rc));
    r = request(AF_INET6, s.port, "GET /healthz HTTP/1.1\r\n\r\n");
    cr_expect(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%s", r);
    free(r);
    server_stop(&s);
}

Test(metrics, bad_or_busy_addresses_are_reported)
{
    struct server a;
    char err[256], addr[64];
    uv_loop_t loop;
    struct app app = { .loop = &loop, .now = fixed_now };
    struct metrics *m;

    cr_assert_eq(server_start(&a, "127.0.0.1:0"), 0);
    uv_loop_init(&loop);
    m = metrics_new(&app, NULL);
    cr_expect_eq(metrics_listen(m, "nonsense", err, sizeof(err)), -EINVAL);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", a.port);
    cr_expect_eq(metrics_listen(m, addr, err, sizeof(err)), UV_EADDRINUSE);
    cr_expect(strstr(err, addr) != NULL, "%s", err);
    metrics_close(m);
    uv_run(&loop, UV_RUN_DEFAULT);
    metrics_free(m);
    cr_expect_eq(uv_loop_close(&loop), 0);
    server_stop(&a);
}

/* ---- /readyz and the metrics while the engine refuses writes ----------- */

static long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls /readyz until its status is want and its body holds text. */
static bool readyz_until(int port, long want, const char *text, long ms, char **last)
{
    long deadline = mono_ms() + ms, st = 0;

    for (;;) {
        char *body = httpget(port, "GET", "/readyz", &st);

        if (st == want && strstr(body, text)) {
            free(*last);
            *last = body;
            return true;
        }
        free(*last);
        *last = body;
        if (mono_ms() > deadline)
            return false;
        usleep(100 * 1000);
    }
}

/* An index.blocks.write on the daemon's index (the double answers every
 * item with 403 cluster_block_exception, as Elasticsearch and OpenSearch
 * do): /readyz says the engine refuses writes, the metrics show it, nothing
 * is dead-lettered, and once the block is lifted the items land. */
Test(metrics_e2e, readyz_and_metrics_show_a_write_block_until_it_is_lifted)
{
    char name[128], dir[256], listen[64], dlq[300], why[512], item[128];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *body = NULL;
    long st = 0;
    int port = httpget_free_port();

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
    ddbc_table_name(name, sizeof(name), "blocked");
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    memset(&t, 0, sizeof(t));
    t.name = t.index = name;
    t.hash = "id";
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_IMAGE");
    sd = searchd_start(NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    e2e_metrics_listen = listen;
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, "idle_poll_interval = 200ms\n",
                         NULL, dir, sizeof(dir));
    snprintf(dlq, sizeof(dlq), "%s/dlq.ndjson", dir);
    e2e_start(&p, conf);
    cr_assert(readyz_until(port, 200, "following 1 table", 30000, &body), "%s", body);

    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"item_status\":403,\"items\":\"all\","
                                    "\"count\":-1}"),
                 200);
    for (int i = 0; i < 3; i++) {
        snprintf(item, sizeof(item), "{\"id\":{\"S\":\"k%d\"},\"n\":{\"N\":\"%d\"}}", i, i);
        ddbc_put(name, item);
    }
    cr_assert(readyz_until(port, 503, "refuses writes to index", 30000, &body), "%s", body);
    cr_assert_not_null(strstr(body, "[FORBIDDEN/8/index write (api)]"), "%s", body);
    cr_assert_not_null(strstr(body, name), "names the index: %s", body);
    cr_assert_eq(httpget_metric(port, "ddb2es_sink_write_blocked", ""), 1);
    cr_assert_eq(httpget_metric(port, "ddb2es_sink_write_blocks_total", ""), 1);
    cr_assert_gt(httpget_metric(port, "ddb2es_docs_blocked_total", ""), 0);
    cr_assert_eq(httpget_metric(port, "ddb2es_ready", ""), 0);
    {
        char l[300];

        snprintf(l, sizeof(l), "table=\"%s\",type=\"cluster_block_exception\"", name);
        cr_assert_gt(httpget_metric(port, "ddb2es_bulk_item_failures_total", l), 0);
        snprintf(l, sizeof(l), "reason=\"cluster_block_exception\",table=\"%s\"", name);
        cr_assert_eq(httpget_metric(port, "ddb2es_dlq_total", l), -1, "no dead letter");
    }
    cr_assert_neq(access(dlq, F_OK), 0, "nothing dead-lettered");

    json_decref(searchd_json(sd, "DELETE", "/_double/faults", NULL, &st));
    cr_assert_eq(st, 200);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert(readyz_until(port, 200, "following 1 table", 10000, &body), "%s", body);
    cr_assert_null(strstr(body, "refuses"), "%s", body);
    cr_assert_eq(httpget_metric(port, "ddb2es_sink_write_blocked", ""), 0);
    cr_assert_eq(httpget_metric(port, "ddb2es_sink_write_blocks_total", ""), 1);
    cr_assert_neq(access(dlq, F_OK), 0, "nothing dead-lettered");
    free(body);
    {
        char *log = proc_slurp(p.err_path), *at = log;
        int n = 0;

        while ((at = strstr(at, "refuses writes to index"))) {
            n++;
            at++;
        }
        cr_assert_eq(n, 1, "one log line per block episode, not per item or retry:\n%s", log);
        free(log);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}
