/* End to end: the sink signs bulk requests (SigV4, es and aoss, plain and
 * gzip) with credentials from a container endpoint fake that hands out
 * 30-second session keys, against the search double in SigV4 mode whose
 * accepted key is rotated through /_double/config. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/backoff.h"
#include "aws/creds.h"
#include "base/http.h"
#include "aws/retry.h"
#include "indexer/doc.h"
#include "indexer/sink.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"
#include "tests/support/searchd_ctl.h"

TestSuite(credsink, .timeout = 60);

static uv_loop_t loop;
static atomic_llong clock_v = 1700000000LL;

static time_t fake_clock(void)
{
    return (time_t)atomic_load(&clock_v);
}

/* The container fake: key n is ASIAE2E<n>; the double is told about the
 * new key as it is handed out (as AWS would know it). */
static struct {
    pthread_mutex_t mu;
    int issued;
    struct searchd *sd;
} ct = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void key_json(int n, char *out, size_t len)
{
    snprintf(out, len,
             "{\"access_key\":\"ASIAE2E%d\",\"secret_key\":\"e2e-secret-%d\","
             "\"session_token\":\"e2e-token-%d\"}",
             n, n, n);
}

static void container(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    static char body[512];
    char exp[32], cfg[256];
    struct tm tm;
    time_t t = fake_clock() + 30;
    int n;

    (void)q;
    (void)arg;
    pthread_mutex_lock(&ct.mu);
    n = ct.issued++;
    key_json(n, cfg, sizeof cfg);
    cr_assert_eq(searchd_config(ct.sd, cfg), 200);
    pthread_mutex_unlock(&ct.mu);
    gmtime_r(&t, &tm);
    strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(body, sizeof body,
             "{\"AccessKeyId\":\"ASIAE2E%d\",\"SecretAccessKey\":\"e2e-secret-%d\","
             "\"Token\":\"e2e-token-%d\",\"Expiration\":\"%s\"}",
             n, n, n, exp);
    out->status = 200;
    out->body = body;
}

static int outcomes[64];

static void on_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome o, void *arg)
{
    (void)owner;
    (void)arg;
    outcomes[ticket] = (int)o;
}

static void on_resume(void *arg)
{
    (void)arg;
}

static bool has_outcome(void *arg)
{
    return outcomes[*(const uint64_t *)arg] >= 0;
}

static bool wait_outcome(uint64_t ticket, long ms)
{
    return loop_run_until(&loop, has_outcome, &ticket, ms);
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void rotation_run(const char *service, bool gzip)
{
    struct fakehttp *f = fake_start();
    struct http *h;
    struct creds *c;
    struct sink *s;
    char dlq[256], cfg[256];
    bool closed = false;
    json_t *dump;
    struct searchd_resp resp;
    const char *const wrong[] = {
        "Authorization: AWS4-HMAC-SHA256 Credential=ASIAE2E0/20240101/eu-west-1/es/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000"
        "000000000000000000",
        "X-Amz-Date: 20240101T000000Z", "Content-Type: application/x-ndjson", NULL };

    for (size_t i = 0; i < 64; i++)
        outcomes[i] = -1;
    ct.issued = 0;
    ct.sd = searchd_start("--auth", "sigv4", "--access-key", "NOBODY", "--secret-key", "x",
                          "--session-token", "y", "--region", "eu-west-1", "--service", service,
                          NULL);
    fake_set_handler(f, container, NULL);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(f), 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    backoff_set_rng(NULL);
    cr_assert_eq(uv_loop_init(&loop), 0);
    h = http_new(&loop, NULL);
    c = creds_new(&loop, h, &(struct creds_opts){ .now = fake_clock, .region = "eu-west-1" });
    snprintf(dlq, sizeof dlq, "%s/credsink-dlq-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             getpid());
    s = sink_new(&loop, h, c,
                 &(struct sink_opts){ .url = searchd_url(ct.sd), .auth = SINK_AUTH_SIGV4,
                                      .sigv4_service = service, .sigv4_region = "eu-west-1",
                                      .bulk_max_actions = 100, .bulk_max_bytes = 1 << 20,
                                      .flush_interval_ms = 5, .concurrency = 1, .gzip = gzip,
                                      .dlq_path = dlq, .request_timeout_ms = 5000,
                                      .max_backoff_ms = 200, .max_queue_bytes = 8 << 20,
                                      .backoff_base_ms = 10 },
                 on_done, on_resume, NULL);
    cr_assert_not_null(s);

    for (uint64_t i = 0; i < 24; i++) {
        struct doc d = { .op = DOC_INDEX, .index = "posts", .version = i + 1, .table = "posts" };

        d.id_len = (size_t)snprintf(d.id, sizeof d.id, "doc-%lu", (unsigned long)i);
        buf_init(&d.source, 1 << 16);
        buf_printf(&d.source, "{\"n\":%lu}", (unsigned long)i);
        if (i % 4 == 3)
            atomic_fetch_add(&clock_v, 25); /* the key has 5 s of 30 left: renewed first */
        if (i == 10 || i == 17) {
            /* AWS rotated first: the key in hand is refused (403), the sink
             * invalidates it, and the next key is the one AWS now knows. */
            pthread_mutex_lock(&ct.mu);
            key_json(ct.issued, cfg, sizeof cfg);
            pthread_mutex_unlock(&ct.mu);
            cr_assert_eq(searchd_config(ct.sd, cfg), 200);
        }
        cr_assert_eq(sink_submit(s, &d, NULL, i), 0);
        buf_close(&d.source);
        cr_assert(wait_outcome(i, 10000), "doc %lu: no outcome", (unsigned long)i);
        cr_assert_eq(outcomes[i], SINK_INDEXED, "doc %lu: outcome %d", (unsigned long)i,
                     outcomes[i]);
    }
    cr_assert_geq(ct.issued, 6 + 2, "renewed on expiry and after each rotation (%d keys)",
                  ct.issued);
    dump = searchd_dump(ct.sd);
    cr_assert_not_null(dump);
    cr_assert_eq(json_object_size(json_object_get(dump, "posts")), 24, "every document is in");
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(dump, "posts"), "doc-23"), "version")),
                 24);
    json_decref(dump);

    /* The double refuses a wrong signature. */
    cr_assert_eq(searchd_request(ct.sd, "POST", "/_bulk", wrong, "{}\n", 3, &resp), 0);
    cr_assert_eq(resp.status, 403, "a wrong signature is refused (HTTP %ld)", resp.status);
    searchd_resp_close(&resp);

    sink_close(s, 1000, on_closed, &closed);
    while (!closed && uv_run(&loop, UV_RUN_ONCE))
        ;
    sink_free(s);
    creds_free(c);
    http_close(h, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert_eq(searchd_stop(ct.sd), 0);
    fake_stop(f);
    unlink(dlq);
}

Test(credsink, es_plain_rotated_keys)
{
    rotation_run("es", false);
}

Test(credsink, es_gzip_rotated_keys)
{
    rotation_run("es", true);
}

Test(credsink, aoss_plain_rotated_keys)
{
    rotation_run("aoss", false);
}

Test(credsink, aoss_gzip_rotated_keys)
{
    rotation_run("aoss", true);
}
