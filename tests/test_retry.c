/* Tests of aws/retry.c: the backoff cap, and retry_call (the one engine that
 * retries every AWS call) against the scripted fake server. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/backoff.h"
#include "base/http.h"
#include "aws/retry.h"
#include "tests/support/fakehttp.h"

TestSuite(retry, .timeout = 20);

Test(retry, backoff_cap_doubles_up_to_the_maximum)
{
    cr_assert_eq(backoff_cap_ms(100, 10000, 0), 100);
    cr_assert_eq(backoff_cap_ms(100, 10000, 1), 200);
    cr_assert_eq(backoff_cap_ms(100, 10000, 6), 6400);
    cr_assert_eq(backoff_cap_ms(100, 10000, 7), 10000, "capped");
    cr_assert_eq(backoff_cap_ms(100, 10000, UINT_MAX), 10000, "no overflow after many failures");
    cr_assert_eq(backoff_cap_ms(500, 300, 0), 300, "a base above the cap is capped");
}

/* ---- retry_call ------------------------------------------------------------ */

static uv_loop_t loop;
static struct fakehttp *fake;
static struct http *http;

/* Short delays, so the tests do not wait: 10 ms bases, costs as
 * retry_dynamodb's (AWS-AUTH §12.3: 14 for a transient error, 5 for
 * throttling). */
static const struct retry_policy quick = {
    .max_attempts = 2, .base_ms = 10.0, .throttle_base_ms = 10.0,
    .max_backoff_ms = 100.0, .cost_other = 14, .cost_throttle = 5,
};

static double half(void)
{
    return 0.5;
}

static void setup(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    fake = fake_start();
    http = http_new(&loop, NULL);
    cr_assert_not_null(http);
    backoff_set_rng(half);
}

static void teardown(void)
{
    backoff_set_rng(NULL);
    if (fake)
        fake_stop(fake);
    fake = NULL;
}

/* Closes the client; the loop must then hold nothing (no timer left). */
static void close_all(void)
{
    http_close(http, NULL, NULL);
    http = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
}

/* One call's caller: what it saw. */
struct caller {
    struct retry_call *rc;
    bool defer;          /* prepare hands the request over from the loop */
    bool hold;           /* prepare never hands it over */
    int fail_with;       /* prepare ends the call with this error */
    bool renewed;        /* judge returned RETRY_AT_ONCE already */
    int prepared[8];     /* attempt numbers prepare saw */
    int nprepared;
    int waits, refused, done;
    int wait_counted[8];
    long wait_ms[8];
    int err, attempts;
    long status;
    enum retry_verdict v;
    uv_timer_t later;    /* for defer */
};

static struct http_req *request(int attempt)
{
    struct http_req *req = http_req_new("GET", fake_url(fake));
    char n[16];

    cr_assert_not_null(req);
    snprintf(n, sizeof n, "%d", attempt);
    cr_assert_eq(http_req_header(req, "X-Attempt", n), 0);
    return req;
}

static void on_later(uv_timer_t *t)
{
    struct caller *c = t->data;

    retry_call_send(c->rc, request(c->prepared[c->nprepared - 1]));
}

static void prepare(struct retry_call *rc, int attempt, void *arg)
{
    struct caller *c = arg;

    c->prepared[c->nprepared++] = attempt;
    if (c->fail_with)
        retry_call_fail(rc, c->fail_with);
    else if (c->defer)
        uv_timer_start(&c->later, on_later, 1, 0);
    else if (!c->hold)
        retry_call_send(rc, request(attempt));
}

/* 401: renew and retry at once (once); 429: throttled; 5xx: transient. */
static enum retry_verdict judge(struct http_req *req, int err, void *arg)
{
    struct caller *c = arg;
    long st = err ? 0 : http_req_status(req);

    if (err)
        return err == -ECANCELED ? RETRY_FATAL : RETRY_TRANSIENT;
    if (st == 401 && !c->renewed) {
        c->renewed = true;
        return RETRY_AT_ONCE;
    }
    if (st == 429)
        return RETRY_THROTTLED;
    if (st >= 500)
        return RETRY_TRANSIENT;
    return st == 200 ? RETRY_OK : RETRY_FATAL;
}

static void on_wait(struct http_req *req, int err, enum retry_verdict v, int counted,
                    long delay_ms, void *arg)
{
    struct caller *c = arg;

    c->wait_counted[c->waits] = counted;
    c->wait_ms[c->waits++] = delay_ms;
}

static void on_refused(struct http_req *req, int err, enum retry_verdict v, void *arg)
{
    ((struct caller *)arg)->refused++;
}

static void on_done(struct http_req *req, int err, enum retry_verdict v, int attempts, void *arg)
{
    struct caller *c = arg;

    c->done++;
    c->err = err;
    c->v = v;
    c->attempts = attempts;
    c->status = req && !err ? http_req_status(req) : 0;
    c->rc = NULL;
}

static void start(struct caller *c, struct retry_quota *quota, int max_attempts)
{
    struct retry_call_opts o = { .policy = &quick, .quota = quota, .max_attempts = max_attempts,
                                 .prepare = prepare, .judge = judge, .wait = on_wait,
                                 .refused = on_refused, .done = on_done, .arg = c };

    cr_assert_eq(uv_timer_init(&loop, &c->later), 0);
    c->later.data = c;
    c->rc = retry_call_run(&loop, http, &o);
    cr_assert_not_null(c->rc);
    cr_assert_eq(c->done, 0, "done never runs inside retry_call_run");
}

static void finish(struct caller *c)
{
    while (!c->done && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(c->done, 1);
    uv_close((uv_handle_t *)&c->later, NULL);
}

/* Each attempt is built anew, also when the request is handed over later
 * (ddb signs each one with the credentials of the moment).  The attempt
 * after RETRY_AT_ONCE (ddb: credentials renewed after ExpiredToken) starts
 * at once, takes no quota and does not count: with 2 attempts allowed, the
 * 500 after it is still retried. */
Test(retry, each_attempt_is_prepared_anew_and_a_renewal_is_free,
     .init = setup, .fini = teardown)
{
    struct caller c = { .defer = true };
    struct retry_quota q;

    retry_quota_init(&q);
    fake_reply(fake, 401, "renew");
    fake_reply(fake, 500, "down");
    fake_reply(fake, 200, "ok");
    start(&c, &q, 0);
    finish(&c);
    cr_assert_eq(c.v, RETRY_OK);
    cr_assert_eq(c.status, 200);
    cr_assert_eq(c.attempts, 3, "every attempt made is reported");
    cr_assert_eq(c.nprepared, 3);
    for (int i = 0; i < 3; i++) {
        char want[16];

        cr_assert_eq(c.prepared[i], i + 1);
        snprintf(want, sizeof want, "%d", i + 1);
        cr_assert_str_eq(fake_req_header(fake, fake_req(fake, (size_t)i), "X-Attempt"), want);
    }
    cr_assert_eq(c.waits, 1, "no wait before the renewed attempt");
    cr_assert_eq(c.wait_counted[0], 1, "the renewed attempt does not count");
    cr_assert_eq(c.wait_ms[0], 5, "0.5 x 10 ms (backoff_rng)");
    cr_assert_eq(q.tokens, 500 - 14 + 14, "the one paid retry is refunded");
    close_all();
}

/* A per-call limit replaces the policy's, both ways. */
Test(retry, the_attempt_limit_is_per_call,
     .init = setup, .fini = teardown)
{
    struct caller one = { 0 }, five = { 0 };

    fake_reply(fake, 503, NULL);
    start(&one, NULL, 1);
    finish(&one);
    cr_assert_eq(one.v, RETRY_TRANSIENT);
    cr_assert_eq(one.attempts, 1, "1 = no retry");
    cr_assert_eq(one.waits, 0);

    for (int i = 0; i < 4; i++)
        fake_reply(fake, 503, NULL);
    fake_reply(fake, 200, NULL);
    start(&five, NULL, 5);
    finish(&five);
    cr_assert_eq(five.v, RETRY_OK);
    cr_assert_eq(five.attempts, 5, "more than the policy's 2");
    cr_assert_eq(five.wait_ms[3], 40, "0.5 x min(10 ms x 2^3, 100 ms)");
    close_all();
}

/* One quota shared by two calls (ddb: every DynamoDB call of the process):
 * what the first spends, the second lacks; the refusal is told to the caller
 * before done, with the last answer. */
Test(retry, a_shared_quota_runs_dry_for_every_call,
     .init = setup, .fini = teardown)
{
    struct caller a = { 0 }, b = { 0 };
    struct retry_quota q = { .tokens = 20 };

    for (int i = 0; i < 3; i++)
        fake_reply(fake, 500, NULL);
    start(&a, &q, 10);
    finish(&a);
    cr_assert_eq(a.attempts, 2, "20 tokens pay for one 14-token retry");
    cr_assert_eq(a.refused, 1);
    cr_assert_eq(a.v, RETRY_TRANSIENT);
    cr_assert_eq(a.status, 500, "done gets the last answer");
    cr_assert_eq(q.tokens, 6);

    start(&b, &q, 10);
    finish(&b);
    cr_assert_eq(b.attempts, 1, "the 6 tokens left do not pay for another");
    cr_assert_eq(b.refused, 1);
    cr_assert_eq(q.tokens, 6);
    close_all();
}

/* A cancel while the request is being prepared (ddb: waiting for
 * credentials) runs done at once; nothing is left on the loop. */
Test(retry, cancel_while_preparing,
     .init = setup, .fini = teardown)
{
    struct caller c = { .hold = true };

    start(&c, NULL, 0);
    while (c.nprepared == 0 && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert_eq(c.nprepared, 1);
    retry_call_cancel(c.rc);
    cr_assert_eq(c.done, 1, "before retry_call_cancel returns");
    cr_assert_eq(c.err, -ECANCELED);
    cr_assert_eq(c.v, RETRY_FATAL);
    cr_assert_eq(c.attempts, 1);
    uv_close((uv_handle_t *)&c.later, NULL);
    cr_assert_eq(fake_nreq(fake), 0);
    close_all();
}

/* No request could be made (ddb: no credentials): done runs with the error,
 * nothing is sent, nothing retried. */
Test(retry, a_failed_preparation_ends_the_call,
     .init = setup, .fini = teardown)
{
    struct caller c = { .fail_with = -ENOKEY };
    struct retry_quota q;

    retry_quota_init(&q);
    start(&c, &q, 0);
    finish(&c);
    cr_assert_eq(c.err, -ENOKEY);
    cr_assert_eq(c.v, RETRY_FATAL);
    cr_assert_eq(c.attempts, 1);
    cr_assert_eq(c.nprepared, 1);
    cr_assert_eq(fake_nreq(fake), 0);
    cr_assert_eq(q.tokens, 500);
    close_all();
}
