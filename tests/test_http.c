/* http: the curl-multi client on a libuv loop, against fakehttp. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "base/http.h"
#include "aws/httpsign.h"
#include "aws/sigv4.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"
#include "tests/support/sigv4check.h"

static uv_loop_t loop;
static struct http *client;
static struct fakehttp *fk;

/* What a callback saw, copied out before the request is freed. */
struct result {
    int calls;
    int err;
    long status;
    char *body;
    size_t body_len;
    char *hdr;            /* the response header named by want_hdr */
    const char *want_hdr;
    char error[256];
};

static void setup(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    fk = fake_start();
    client = http_new(&loop, NULL);
    cr_assert_not_null(client);
}

static void teardown(void)
{
    fake_stop(fk);
}

TestSuite(http, .init = setup, .fini = teardown, .timeout = 20);

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

/* Closes the client, runs the loop dry; returns uv_loop_close()'s result. */
static int close_loop(void)
{
    int closed = 0;

    http_close(client, on_closed, &closed);
    client = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(closed, 1, "http_close's done ran %d times", closed);
    return uv_loop_close(&loop);
}

static void on_done(struct http_req *req, int err, void *arg)
{
    struct result *res = arg;
    const struct buf *b = http_req_body(req);

    res->calls++;
    res->err = err;
    res->status = http_req_status(req);
    free(res->body);
    res->body = malloc(b->len + 1);
    memcpy(res->body, b->ptr, b->len + 1);
    res->body_len = b->len;
    snprintf(res->error, sizeof(res->error), "%s", http_req_error(req));
    if (res->want_hdr) {
        const char *v = http_req_header_get(req, res->want_hdr);

        free(res->hdr);
        res->hdr = v ? strdup(v) : NULL;
    }
}

static void result_free(struct result *res)
{
    free(res->body);
    free(res->hdr);
}

static bool called(void *arg)
{
    return ((struct result *)arg)->calls > 0;
}

struct count {
    int *n;
    int want;
};

static bool reached(void *arg)
{
    struct count *c = arg;

    return *c->n >= c->want;
}

static size_t want_nreq;
static bool fake_has_nreq(void *arg)
{
    return fake_nreq(arg) >= want_nreq;
}

static struct http_req *req_new(const char *method, const char *path)
{
    char url[256];
    struct http_req *r;

    snprintf(url, sizeof(url), "%s%s", fake_url(fk), path);
    r = http_req_new(method, url);
    cr_assert_not_null(r);
    return r;
}

/* Sends r and runs the loop until its callback ran. */
static void roundtrip(struct http_req *r, struct result *res)
{
    cr_assert_eq(http_send(client, r, on_done, res), 0);
    cr_assert(loop_run_until(&loop, called, res, 10000), "no callback");
    cr_assert_eq(res->calls, 1);
}

static int closed_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd); /* bound, never listened: connections are refused */
    return ntohs(sa.sin_port);
}

Test(http, get_round_trip)
{
    struct result res = { .want_hdr = "x-reply" };
    struct fake_reply rep = { .status = 200, .headers = "X-Reply: one\r\n", .body = "{\"ok\":1}" };
    struct http_req *r = req_new("GET", "/items/a%20b?x=1&y=2");
    const struct fake_req *seen;

    fake_reply_ex(fk, &rep);
    cr_assert_eq(http_req_header(r, "X-Test", "abc"), 0);
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0, "%s", res.error);
    cr_assert_eq(res.status, 200);
    cr_assert_str_eq(res.body, "{\"ok\":1}");
    cr_assert_str_eq(res.hdr, "one");

    seen = fake_req(fk, 0);
    cr_assert_str_eq(seen->method, "GET");
    cr_assert_str_eq(seen->path, "/items/a%20b?x=1&y=2");
    cr_assert_str_eq(fake_req_header(fk, seen, "x-test"), "abc");
    cr_assert_eq(strncmp(fake_req_header(fk, seen, "User-Agent"), "ddb2es/", 7), 0);
    cr_assert_null(fake_req_header(fk, seen, "Expect"));
    cr_assert_eq(seen->body_len, 0);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, post_round_trip_with_headers)
{
    static const char body[] = "{\"TableName\":\"t\"}";
    struct result res = { .want_hdr = "Content-Type" };
    struct fake_reply rep = { .status = 400,
                              .headers = "Content-Type: application/x-amz-json-1.0\r\n",
                              .body = "{\"__type\":\"x#ValidationException\"}" };
    struct http_req *r = req_new("POST", "/");
    const struct fake_req *seen;

    fake_reply_ex(fk, &rep);
    cr_assert_eq(http_req_header(r, "Content-Type", "application/x-amz-json-1.0"), 0);
    cr_assert_eq(http_req_header(r, "X-Amz-Target", "DynamoDB_20120810.Wrong"), 0);
    cr_assert_eq(http_req_header(r, "x-amz-target", "DynamoDB_20120810.DescribeTable"), 0);
    http_req_body_take(r, strdup(body), strlen(body));
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0, "an HTTP error status is still a response");
    cr_assert_eq(res.status, 400);
    cr_assert_str_eq(res.body, "{\"__type\":\"x#ValidationException\"}");
    cr_assert_str_eq(res.hdr, "application/x-amz-json-1.0");

    seen = fake_req(fk, 0);
    cr_assert_str_eq(seen->method, "POST");
    cr_assert_str_eq(seen->path, "/");
    cr_assert_str_eq(seen->body, body);
    cr_assert_str_eq(fake_req_header(fk, seen, "content-length"), "17");
    cr_assert_str_eq(fake_req_header(fk, seen, "Content-Type"), "application/x-amz-json-1.0");
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Target"),
                     "DynamoDB_20120810.DescribeTable", "a header set twice is replaced");
    cr_assert_null(strstr(seen->headers, "DynamoDB_20120810.Wrong"));
    cr_assert_null(fake_req_header(fk, seen, "Expect"));
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, body_without_content_type_gets_none)
{
    struct result res = { 0 };
    struct http_req *r = req_new("POST", "/x");

    fake_reply(fk, 200, "");
    http_req_body_ref(r, "a=b", 3);
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0);
    cr_assert_str_eq(res.body, "");
    cr_assert_null(fake_req_header(fk, fake_req(fk, 0), "Content-Type"),
                   "curl's form type must not be made up");
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, put_delete_head)
{
    struct result put = { 0 }, del = { 0 }, head = { .want_hdr = "content-length" };
    struct fake_reply hr = { .status = 200, .body = "0123456789" };
    const struct fake_req *seen;

    fake_reply(fk, 200, "TOKEN");
    fake_reply(fk, 204, NULL);
    fake_reply_ex(fk, &hr);
    struct http_req *r = req_new("PUT", "/latest/api/token");
    cr_assert_eq(http_req_header(r, "X-aws-ec2-metadata-token-ttl-seconds", "21600"), 0);
    roundtrip(r, &put);
    roundtrip(req_new("DELETE", "/idx"), &del);
    roundtrip(req_new("HEAD", "/idx"), &head);

    cr_assert_eq(put.err, 0);
    cr_assert_str_eq(put.body, "TOKEN");
    seen = fake_req(fk, 0);
    cr_assert_str_eq(seen->method, "PUT");
    cr_assert_str_eq(fake_req_header(fk, seen, "Content-Length"), "0");
    cr_assert_null(fake_req_header(fk, seen, "Expect"));
    cr_assert_null(fake_req_header(fk, seen, "Transfer-Encoding"));
    cr_assert_eq(del.status, 204);
    cr_assert_str_eq(fake_req(fk, 1)->method, "DELETE");
    cr_assert_eq(head.err, 0, "%s", head.error);
    cr_assert_eq(head.status, 200);
    cr_assert_eq(head.body_len, 0);
    cr_assert_str_eq(head.hdr, "10");
    cr_assert_str_eq(fake_req(fk, 2)->method, "HEAD");
    result_free(&put);
    result_free(&del);
    result_free(&head);
    cr_assert_eq(close_loop(), 0);
}

Test(http, response_headers_last_value_wins)
{
    struct result res = { .want_hdr = "x-dup" }, res2 = { .want_hdr = "X-Absent" };
    struct fake_reply rep = { .status = 200, .headers = "X-Dup: a\r\nx-DUP:   b  \r\n" };

    fake_reply_ex(fk, &rep);
    fake_reply(fk, 200, "x");
    roundtrip(req_new("GET", "/"), &res);
    roundtrip(req_new("GET", "/"), &res2);
    cr_assert_str_eq(res.hdr, "b");
    cr_assert_null(res2.hdr);
    result_free(&res);
    result_free(&res2);
    cr_assert_eq(close_loop(), 0);
}

Test(http, bad_header_rejected)
{
    struct http_req *r = req_new("GET", "/");

    cr_assert_eq(http_req_header(r, "X-A", "v\r\nX-Injected: 1"), -EINVAL);
    cr_assert_eq(http_req_header(r, "X A", "v"), -EINVAL);
    http_req_free(r);
    http_req_free(NULL);
    cr_assert_eq(close_loop(), 0);
}

/* Sequential requests: each one sent from the previous one's callback. */
struct chain {
    int left, done;
    int errs;
};

static void on_chain(struct http_req *req, int err, void *arg)
{
    struct chain *c = arg;

    c->done++;
    if (err || http_req_status(req) != 200)
        c->errs++;
    if (--c->left > 0)
        cr_assert_eq(http_send(client, req_new("GET", "/next"), on_chain, c), 0);
}

Test(http, keep_alive_reuses_one_connection)
{
    struct chain c = { .left = 5 };
    struct count cnt = { &c.done, 5 };

    for (int i = 0; i < 5; i++)
        fake_reply(fk, 200, "ok");
    cr_assert_eq(http_send(client, req_new("GET", "/first"), on_chain, &c), 0);
    cr_assert(loop_run_until(&loop, reached, &cnt, 10000));
    cr_assert_eq(c.errs, 0);
    cr_assert_eq(fake_nreq(fk), 5);
    cr_assert_eq(fake_nconn(fk), 1, "%zu connections for 5 sequential requests", fake_nconn(fk));
    cr_assert_eq(close_loop(), 0);
}

static void echo_path(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    (void)arg;
    out->status = 200;
    out->body = req->path;
    out->delay_ms = 20; /* so that the requests overlap */
}

Test(http, concurrent_requests)
{
    enum { N = 8 };
    struct result res[N] = { 0 };
    int done = 0;

    fake_set_handler(fk, echo_path, NULL);
    for (int i = 0; i < N; i++) {
        char path[32];

        snprintf(path, sizeof(path), "/req/%d", i);
        cr_assert_eq(http_send(client, req_new("GET", path), on_done, &res[i]), 0);
    }
    while (done < N) {
        cr_assert(loop_run_until(&loop, called, &res[done], 10000));
        while (done < N && res[done].calls)
            done++;
    }
    for (int i = 0; i < N; i++) {
        char path[32];

        snprintf(path, sizeof(path), "/req/%d", i);
        cr_assert_eq(res[i].calls, 1);
        cr_assert_eq(res[i].err, 0, "%d: %s", i, res[i].error);
        cr_assert_str_eq(res[i].body, path);
        result_free(&res[i]);
    }
    cr_assert_eq(fake_nreq(fk), N);
    cr_assert_gt(fake_nconn(fk), 1, "the requests ran in parallel");
    cr_assert_eq(close_loop(), 0);
}

Test(http, multi_megabyte_bodies)
{
    size_t up_len = 6u << 20, down_len = 3u << 20;
    char *up = malloc(up_len), *down = malloc(down_len);
    struct result res = { 0 };
    struct http_req *r = req_new("POST", "/_bulk");
    const struct fake_req *seen;

    for (size_t i = 0; i < up_len; i++)
        up[i] = (char)('a' + i % 23);
    for (size_t i = 0; i < down_len; i++)
        down[i] = (char)('A' + i % 19);
    struct fake_reply rep = { .status = 200, .body = down, .body_len = down_len };
    fake_reply_ex(fk, &rep);
    http_req_body_ref(r, up, up_len);
    http_req_max_response(r, 4u << 20);
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0, "%s", res.error);
    cr_assert_eq(res.body_len, down_len);
    cr_assert_eq(memcmp(res.body, down, down_len), 0);
    seen = fake_req(fk, 0);
    cr_assert_eq(seen->body_len, up_len);
    cr_assert_eq(memcmp(seen->body, up, up_len), 0);
    cr_assert_null(fake_req_header(fk, seen, "Expect"), "no 100-continue for a large body");
    result_free(&res);
    free(up);
    free(down);
    cr_assert_eq(close_loop(), 0);
}

Test(http, timeout)
{
    struct result res = { 0 };
    struct fake_reply rep = { .action = FAKE_HANG };
    struct http_req *r = req_new("GET", "/slow");

    fake_reply_ex(fk, &rep);
    http_req_timeout(r, 200);
    roundtrip(r, &res);
    cr_assert_eq(res.err, -ETIMEDOUT, "got %d (%s)", res.err, res.error);
    cr_assert_eq(res.status, 0);
    cr_assert_neq(res.error[0], '\0');
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, delayed_reply_within_timeout)
{
    struct result res = { 0 };
    struct fake_reply rep = { .status = 200, .body = "late", .delay_ms = 100 };
    struct http_req *r = req_new("GET", "/");

    fake_reply_ex(fk, &rep);
    http_req_timeout(r, 5000);
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0);
    cr_assert_str_eq(res.body, "late");
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, connection_refused)
{
    char url[64];
    struct result res = { 0 };

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", closed_port());
    roundtrip(http_req_new("GET", url), &res);
    cr_assert_eq(res.err, -ECONNREFUSED, "got %d (%s)", res.err, res.error);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, dropped_connection)
{
    struct result res = { 0 };
    struct fake_reply rep = { .action = FAKE_DROP };

    fake_reply_ex(fk, &rep);
    roundtrip(req_new("GET", "/"), &res);
    cr_assert_eq(res.err, -ECONNRESET, "got %d (%s)", res.err, res.error);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, reset_mid_body)
{
    static char body[4000];
    struct result res = { 0 };

    memset(body, 'z', sizeof(body));
    struct fake_reply rep = { .status = 200, .body = body, .body_len = sizeof(body),
                              .action = FAKE_RESET_MID };
    fake_reply_ex(fk, &rep);
    roundtrip(req_new("GET", "/"), &res);
    cr_assert_eq(res.err, -ECONNRESET, "got %d (%s)", res.err, res.error);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, response_over_ceiling)
{
    static char big[5001];
    struct result res = { 0 }, chunked = { 0 };
    struct http_req *r = req_new("GET", "/");

    /* Once with Content-Length (refused up front), once chunked (while
     * receiving). */
    memset(big, 'q', sizeof(big) - 1);
    struct fake_reply rep = { .status = 200, .body = big };
    fake_reply_ex(fk, &rep);
    http_req_max_response(r, 1000);
    roundtrip(r, &res);
    cr_assert_eq(res.err, -E2BIG, "got %d (%s)", res.err, res.error);

    char *enc;
    cr_assert(asprintf(&enc, "%zx\r\n%s\r\n0\r\n\r\n", strlen(big), big) > 0);
    struct fake_reply rep2 = { .status = 200, .headers = "Transfer-Encoding: chunked\r\n",
                               .body = enc };
    fake_reply_ex(fk, &rep2);
    free(enc);
    r = req_new("GET", "/");
    http_req_max_response(r, 1000);
    roundtrip(r, &chunked);
    cr_assert_eq(chunked.err, -E2BIG, "got %d (%s)", chunked.err, chunked.error);
    result_free(&res);
    result_free(&chunked);
    cr_assert_eq(close_loop(), 0);
}

Test(http, cancel_one_request)
{
    struct result hung = { 0 }, other = { 0 };
    struct fake_reply rep = { .action = FAKE_HANG };
    struct http_req *r = req_new("GET", "/hang");

    fake_reply_ex(fk, &rep);
    fake_reply(fk, 200, "fine");
    cr_assert_eq(http_send(client, r, on_done, &hung), 0);
    want_nreq = 1;
    cr_assert(loop_run_until(&loop, fake_has_nreq, fk, 5000));
    http_cancel(r);
    cr_assert_eq(hung.calls, 1, "the callback runs before http_cancel returns");
    cr_assert_eq(hung.err, -ECANCELED);

    roundtrip(req_new("GET", "/after"), &other); /* the client still works */
    cr_assert_eq(other.err, 0);
    cr_assert_str_eq(other.body, "fine");
    cr_assert_eq(hung.calls, 1);
    result_free(&hung);
    result_free(&other);
    cr_assert_eq(close_loop(), 0);
}

static void send_after_close(struct http_req *req, int err, void *arg)
{
    int *rc = arg;

    (void)req;
    (void)err;
    /* The client is closing: new work is refused and its callback never runs. */
    *rc = http_send(client, req_new("GET", "/late"), on_done, NULL);
}

Test(http, close_with_requests_in_flight)
{
    enum { N = 3 };
    struct result res[N] = { 0 };
    struct fake_reply rep = { .action = FAKE_HANG };
    struct http *h = client;
    int closed = 0, late_rc = 0;

    fake_reply(fk, 200, "done");
    for (int i = 0; i < N + 1; i++)
        fake_reply_ex(fk, &rep);
    roundtrip(req_new("GET", "/pooled"), &res[0]); /* leaves an idle connection */
    cr_assert_eq(res[0].err, 0);
    result_free(&res[0]);
    memset(&res[0], 0, sizeof(res[0]));
    for (int i = 0; i < N; i++)
        cr_assert_eq(http_send(client, req_new("GET", "/hang"), on_done, &res[i]), 0);
    cr_assert_eq(http_send(client, req_new("GET", "/hang"), send_after_close, &late_rc), 0);
    want_nreq = N + 2;
    cr_assert(loop_run_until(&loop, fake_has_nreq, fk, 5000), "%zu requests", fake_nreq(fk));

    http_close(h, on_closed, &closed);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].calls, 1);
        cr_assert_eq(res[i].err, -ECANCELED);
        result_free(&res[i]);
    }
    cr_assert_eq(late_rc, -ECANCELED);
    cr_assert_eq(closed, 0, "done runs after the handles are closed");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(closed, 1);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http, no_proxy_bypasses_environment_proxy)
{
    char proxy[64];
    struct result direct = { 0 }, proxied = { 0 };
    struct http_req *r = req_new("GET", "/meta");

    snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", closed_port());
    setenv("http_proxy", proxy, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    fake_reply(fk, 200, "direct");
    http_req_no_proxy(r);
    roundtrip(r, &direct);
    cr_assert_eq(direct.err, 0, "%s", direct.error);
    cr_assert_str_eq(direct.body, "direct");
    /* Without it, the (dead) proxy is used: the environment is in effect. */
    roundtrip(req_new("GET", "/meta"), &proxied);
    cr_assert_eq(proxied.err, -ECONNREFUSED, "got %d (%s)", proxied.err, proxied.error);
    cr_assert_eq(fake_nreq(fk), 1);
    unsetenv("http_proxy");
    result_free(&direct);
    result_free(&proxied);
    cr_assert_eq(close_loop(), 0);
}

/* The proxy the environment names carries the request (curl's proxy
 * support is part of the libcurl ddb2es builds, scripts/curl.sh): here the
 * fake server is the proxy, and sees the absolute-form request line of RFC
 * 9112 section 3.2.2 for a host that does not exist. */
Test(http, a_proxy_from_the_environment_carries_the_request)
{
    char proxy[64];
    struct result res = { 0 };
    struct http_req *r = http_req_new("GET", "http://ddb2es-proxied.invalid/meta?x=1");

    snprintf(proxy, sizeof(proxy), "%s", fake_url(fk));
    setenv("http_proxy", proxy, 1);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    fake_reply(fk, 200, "via proxy");
    roundtrip(r, &res);
    unsetenv("http_proxy");
    cr_assert_eq(res.err, 0, "%s", res.error);
    cr_assert_str_eq(res.body, "via proxy");
    cr_assert_eq(fake_nreq(fk), 1);
    cr_assert_str_eq(fake_req(fk, 0)->path, "http://ddb2es-proxied.invalid/meta?x=1");
    cr_assert_str_eq(fake_req_header(fk, fake_req(fk, 0), "Host"), "ddb2es-proxied.invalid");
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

/* Recomputes the signature of a received request from the headers its
 * Authorization names, as a server would; returns the recomputed value. */
static char *resign_received(const struct fake_req *seen, const struct sigv4_key *key,
                             const char *region, const char *service)
{
    struct sigv4_authz az;
    struct sigv4_header hs[32];
    struct sigv4_output out;
    size_t n = 0;
    char path[512], *query, names[1024], *save = NULL;
    char *res;

    cr_assert_eq(sigv4_parse_authorization(fake_req_header(fk, seen, "Authorization"), &az), 0);
    snprintf(names, sizeof(names), "%s", az.signed_headers);
    for (char *name = strtok_r(names, ";", &save); name; name = strtok_r(NULL, ";", &save)) {
        const char *v = fake_req_header(fk, seen, name);

        cr_assert_not_null(v, "signed header %s was not sent", name);
        cr_assert_lt(n, 32);
        hs[n++] = (struct sigv4_header){ name, v };
    }
    snprintf(path, sizeof(path), "%s", seen->path);
    query = strchr(path, '?');
    if (query)
        *query++ = '\0';
    struct sigv4_input in = {
        .method = seen->method, .path = path, .query = query, .headers = hs, .nheaders = n,
        .body = seen->body, .body_len = seen->body_len, .region = region, .service = service,
        .normalize_path = true,
    };
    cr_assert_eq(sigv4_sign(&in, key, &out), 0);
    res = strdup(out.authorization);
    sigv4_output_close(&out);
    return res;
}

static int count_lines(const char *headers, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);

    for (const char *p = headers; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncasecmp(p, prefix, len) == 0;
    return n;
}

Test(http, sign_adds_verifiable_sigv4_headers)
{
    static const char body[] = "{\"StreamArn\":\"arn:x\"}";
    const struct sigv4_key old = { "AKIDOLD", "oldsecret", "oldtoken" };
    const struct sigv4_key key = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                   "session/token+value==" };
    struct result res = { 0 };
    struct http_req *r = req_new("POST", "/a/b?z=1&a=2");
    const struct fake_req *seen;
    char sha[65], *expect;

    fake_reply(fk, 200, "{}");
    cr_assert_eq(http_req_header(r, "Content-Type", "application/x-amz-json-1.0"), 0);
    cr_assert_eq(http_req_header(r, "X-Amz-Target", "DynamoDBStreams_20120810.DescribeStream"), 0);
    http_req_body_ref(r, body, strlen(body));
    /* Signed once with other credentials, then re-signed (as on a retry). */
    cr_assert_eq(httpsign_sigv4(r, &old, "eu-west-1", "dynamodb", 1400000000, true), 0);
    cr_assert_eq(httpsign_sigv4(r, &key, "us-east-1", "dynamodb", 1440938160, true), 0);
    roundtrip(r, &res);
    cr_assert_eq(res.err, 0, "%s", res.error);

    seen = fake_req(fk, 0);
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Date"), "20150830T123600Z");
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Security-Token"), key.session_token);
    sigv4_sha256_hex(body, strlen(body), sha);
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Content-Sha256"), sha);
    cr_assert_eq(count_lines(seen->headers, "authorization:"), 1);
    cr_assert_eq(count_lines(seen->headers, "x-amz-date:"), 1);
    cr_assert_eq(count_lines(seen->headers, "x-amz-security-token:"), 1);
    cr_assert_eq(count_lines(seen->headers, "x-amz-content-sha256:"), 1);
    const char *authz = fake_req_header(fk, seen, "Authorization");
    cr_assert_not_null(strstr(authz, "Credential=AKIDEXAMPLE/20150830/us-east-1/dynamodb/"));
    cr_assert_not_null(strstr(authz, "host;"), "%s", authz);
    cr_assert_not_null(strstr(authz, "x-amz-security-token"), "%s", authz);
    cr_assert_not_null(strstr(authz, "x-amz-target"), "%s", authz);

    expect = resign_received(seen, &key, "us-east-1", "dynamodb");
    cr_assert_str_eq(authz, expect, "the server's recomputation differs");
    free(expect);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

Test(http, sign_keeps_callers_payload_hash)
{
    const struct sigv4_key key = { "AKID", "secret", NULL };
    struct result res = { 0 };
    struct http_req *r = req_new("GET", "/_cluster/health");
    const struct fake_req *seen;
    char *expect;

    fake_reply(fk, 200, "{}");
    cr_assert_eq(http_req_header(r, "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"), 0);
    cr_assert_eq(httpsign_sigv4(r, &key, "us-east-1", "aoss", 1440938160, false), 0);
    cr_assert_eq(httpsign_sigv4(r, &key, "us-east-1", "aoss", 1440938170, false), 0);
    roundtrip(r, &res);
    seen = fake_req(fk, 0);
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Content-Sha256"), "UNSIGNED-PAYLOAD");
    cr_assert_null(fake_req_header(fk, seen, "X-Amz-Security-Token"), "no token, none sent");
    cr_assert_str_eq(fake_req_header(fk, seen, "X-Amz-Date"), "20150830T123610Z");
    expect = resign_received(seen, &key, "us-east-1", "aoss");
    cr_assert_str_eq(fake_req_header(fk, seen, "Authorization"), expect);
    free(expect);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

/* --- fakehttp itself, over a plain socket ---------------------------------- */

TestSuite(fakehttp, .timeout = 10);

static int dial(struct fakehttp *f)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                              .sin_port = htons((uint16_t)fake_port(f)) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Reads until the peer closes or `want` bytes of text arrived. */
static char *read_some(int fd, size_t want)
{
    static char got[8192];
    size_t len = 0;
    ssize_t n;

    while (len < want && len < sizeof(got) - 1 && (n = read(fd, got + len, sizeof(got) - 1 - len)) > 0)
        len += (size_t)n;
    got[len] = '\0';
    return got;
}

/* Reads exactly one reply (headers and Content-Length body). */
static char *read_reply(int fd)
{
    static char got[8192];
    size_t len = 0, clen = 0;
    const char *hend = NULL, *cl;

    got[0] = '\0';
    while (len < sizeof(got) - 1) {
        if (!hend && (hend = strstr(got, "\r\n\r\n")) != NULL) {
            cl = strcasestr(got, "Content-Length:");
            clen = cl && cl < hend ? strtoul(cl + 15, NULL, 10) : 0;
        }
        if (hend && len >= (size_t)(hend + 4 - got) + clen)
            break;
        ssize_t n = read(fd, got + len, 1); /* byte by byte: never read past the reply */
        if (n <= 0)
            break;
        len += (size_t)n;
        got[len] = '\0';
    }
    return got;
}

Test(fakehttp, chunked_body_and_pipelined_requests)
{
    struct fakehttp *f = fake_start();
    static const char reqs[] =
        "POST /one HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
        "GET /two?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    static const char want[] = "HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\na"
                               "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nbc";
    int fd = dial(f);

    fake_reply(f, 201, "a");
    fake_reply(f, 404, "bc");
    cr_assert_eq(write(fd, reqs, sizeof(reqs) - 1), (ssize_t)sizeof(reqs) - 1);
    cr_assert_str_eq(read_some(fd, sizeof(want) + 100), want, "and then closed");
    close(fd);
    cr_assert_eq(fake_wait_nreq(f, 2, 1000), 2);
    cr_assert_str_eq(fake_req(f, 0)->body, "hello world");
    cr_assert_eq(fake_req(f, 0)->body_len, 11);
    cr_assert_str_eq(fake_req(f, 1)->path, "/two?q");
    cr_assert_str_eq(fake_req_header(f, fake_req(f, 1), "connection"), "close");
    cr_assert_null(fake_req(f, 2));
    cr_assert_eq(fake_nconn(f), 1);
    fake_stop(f);
}

static void count_handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    int *n = arg;
    static char body[32];

    snprintf(body, sizeof(body), "%s #%d", req->method, ++*n);
    out->status = 202;
    out->headers = "X-Handled: yes\r\n";
    out->body = body;
}

Test(fakehttp, script_before_handler_then_default)
{
    struct fakehttp *f = fake_start();
    int n = 0, fd = dial(f);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char *got;

    fake_reply(f, 200, "scripted");
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    cr_assert_not_null(strstr(read_reply(fd), "\r\n\r\nscripted"));
    fake_set_handler(f, count_handler, &n);
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    got = read_reply(fd);
    cr_assert_not_null(strstr(got, "HTTP/1.1 202 "), "%s", got);
    cr_assert_not_null(strstr(got, "X-Handled: yes\r\n"), "%s", got);
    cr_assert_not_null(strstr(got, "\r\n\r\nGET #1"), "%s", got);
    fake_set_handler(f, NULL, NULL);
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    got = read_reply(fd);
    cr_assert_not_null(strstr(got, "HTTP/1.1 500 "), "%s", got);
    cr_assert_not_null(strstr(got, "no scripted reply"), "%s", got);
    close(fd);
    cr_assert_eq(fake_wait_nreq(f, 4, 50), 3, "waiting gives up after its time");
    fake_stop(f);
}

Test(fakehttp, stop_with_hanging_connection)
{
    struct fakehttp *f = fake_start();
    struct fake_reply hang = { .action = FAKE_HANG };
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = dial(f);

    fake_reply_ex(f, &hang);
    cr_assert_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    cr_assert_eq(fake_wait_nreq(f, 1, 2000), 1);
    fake_stop(f); /* joins although a client still waits */
    cr_assert_str_eq(read_some(fd, 1), "", "the connection is closed");
    close(fd);
}

Test(http, tls_to_a_plain_server_is_a_protocol_error)
{
    char url[64];
    struct result res = { 0 };

    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", fake_port(fk));
    roundtrip(http_req_new("GET", url), &res);
    cr_assert_eq(res.err, -EPROTO, "got %d (%s)", res.err, res.error);
    cr_assert_eq(fake_nreq(fk), 0);
    result_free(&res);
    cr_assert_eq(close_loop(), 0);
}

/* The last reply closes the client from inside its own callback. */
static int closed_in_cb;
static void close_from_callback(struct http_req *req, int err, void *arg)
{
    on_done(req, err, arg);
    http_close(client, on_closed, &closed_in_cb);
}

static void bye_or_hang(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    (void)arg;
    out->status = 200;
    out->body = "bye";
    out->delay_ms = 50; /* the other request is surely out by then */
    if (strcmp(req->path, "/hang") == 0)
        out->action = FAKE_HANG;
}

Test(http, close_from_inside_a_callback)
{
    struct result first = { 0 }, other = { 0 };

    fake_set_handler(fk, bye_or_hang, NULL);
    cr_assert_eq(http_send(client, req_new("GET", "/bye"), close_from_callback, &first), 0);
    cr_assert_eq(http_send(client, req_new("GET", "/hang"), on_done, &other), 0);
    cr_assert(loop_run_until(&loop, called, &first, 5000));
    cr_assert_eq(first.err, 0);
    cr_assert_str_eq(first.body, "bye");
    cr_assert_eq(other.calls, 1);
    cr_assert_eq(other.err, -ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(closed_in_cb, 1);
    cr_assert_eq(uv_loop_close(&loop), 0);
    result_free(&first);
    result_free(&other);
}
