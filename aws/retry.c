#include "aws/retry.h"

#include "base/backoff.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/http.h"

#define RETRY_AFTER_SLACK_MS 5000.0

const struct retry_policy retry_standard = {
    .max_attempts = 3, .base_ms = 1000.0, .throttle_base_ms = 1000.0,
    .max_backoff_ms = 20000.0, .cost_other = 5, .cost_throttle = 5,
};

const struct retry_policy retry_dynamodb = {
    .max_attempts = 4, .base_ms = 25.0, .throttle_base_ms = 1000.0,
    .max_backoff_ms = 20000.0, .cost_other = 14, .cost_throttle = 5,
};

void retry_quota_init(struct retry_quota *q)
{
    q->tokens = RETRY_QUOTA_MAX;
}

int retry_quota_take(struct retry_quota *q, const struct retry_policy *p, bool throttled, int *cost)
{
    int c = throttled ? p->cost_throttle : p->cost_other;

    if (q->tokens < c)
        return -EAGAIN;
    q->tokens -= c;
    *cost = c;
    return 0;
}

void retry_quota_success(struct retry_quota *q, int last_cost)
{
    q->tokens += last_cost ? last_cost : RETRY_COST_NO_RETRY;
    if (q->tokens > RETRY_QUOTA_MAX)
        q->tokens = RETRY_QUOTA_MAX;
}

long retry_backoff_ms(const struct retry_policy *p, int n, bool throttled, double rnd,
                      const char *retry_after)
{
    double cap = (double)backoff_cap_ms(throttled ? p->throttle_base_ms : p->base_ms,
                                        p->max_backoff_ms, n > 1 ? (unsigned)(n - 1) : 0),
           t;

    t = rnd * cap;
    if (retry_after && *retry_after) {
        char *end;
        double ra = strtod(retry_after, &end);

        /* x-amz-retry-after is in ms: wait at least our backoff, at most 5 s more. */
        if (end != retry_after && *end == '\0' && ra >= 0) {
            if (ra > t + RETRY_AFTER_SLACK_MS)
                ra = t + RETRY_AFTER_SLACK_MS;
            if (ra > t)
                t = ra;
        }
    }
    return (long)(t + 0.5);
}

static const char *const throttling_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
};

static const char *const transient_codes[] = {
    "RequestTimeout", "RequestTimeoutException", "InternalServerError", "InternalFailure",
    "ServiceUnavailable", "ReplicatedWriteConflictException", "IDPCommunicationError",
};

static bool in_list(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; code && i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

bool retry_code_throttling(const char *code)
{
    return in_list(code, throttling_codes, sizeof throttling_codes / sizeof throttling_codes[0]);
}

bool retry_code_transient(const char *code)
{
    return in_list(code, transient_codes, sizeof transient_codes / sizeof transient_codes[0]);
}

/* ---- retry_call ------------------------------------------------------------ */

struct retry_call {
    struct http *http;
    struct retry_call_opts o;
    uv_timer_t timer;     /* backoff; also starts the first attempt from the loop */
    struct http_req *req; /* in flight */
    int attempts;         /* made so far, RETRY_AT_ONCE ones included */
    int counted;          /* attempts that count against max_attempts */
    int last_cost;        /* tokens the last retry took from the quota */
    bool finished;
};

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void finish(struct retry_call *rc, struct http_req *req, int err, enum retry_verdict v)
{
    rc->finished = true;
    uv_timer_stop(&rc->timer);
    rc->o.done(req, err, v, rc->attempts, rc->o.arg);
    uv_close((uv_handle_t *)&rc->timer, on_closed);
}

static void attempt(struct retry_call *rc);

static void on_timer(uv_timer_t *t)
{
    attempt(t->data);
}

/* Decides after one attempt: deliver, or wait and try again. */
static void after(struct retry_call *rc, struct http_req *req, int err, enum retry_verdict v)
{
    bool throttled = v == RETRY_THROTTLED;
    int cost = 0;
    long delay;

    if (v == RETRY_OK && rc->o.quota)
        retry_quota_success(rc->o.quota, rc->last_cost);
    if (v == RETRY_AT_ONCE) {
        rc->counted--;
        uv_timer_start(&rc->timer, on_timer, 0, 0);
        return;
    }
    if (v == RETRY_OK || v == RETRY_FATAL || rc->counted >= rc->o.max_attempts) {
        finish(rc, req, err, v);
        return;
    }
    if (rc->o.quota && retry_quota_take(rc->o.quota, rc->o.policy, throttled, &cost) < 0) {
        if (rc->o.refused)
            rc->o.refused(req, err, v, rc->o.arg);
        finish(rc, req, err, v);
        return;
    }
    rc->last_cost = cost;
    delay = retry_backoff_ms(rc->o.policy, rc->counted, throttled, backoff_rng(),
                             req ? http_req_header_get(req, "x-amz-retry-after") : NULL);
    if (rc->o.wait)
        rc->o.wait(req, err, v, rc->counted, delay, rc->o.arg);
    uv_timer_start(&rc->timer, on_timer, (uint64_t)delay, 0);
}

static void on_http(struct http_req *req, int err, void *arg)
{
    struct retry_call *rc = arg;

    rc->req = NULL;
    if (rc->finished) /* cancelled */
        return;
    after(rc, req, err, rc->o.judge(req, err, rc->o.arg));
}

static void attempt(struct retry_call *rc)
{
    struct http_req *req;

    rc->attempts++;
    rc->counted++;
    if (rc->o.prepare) {
        rc->o.prepare(rc, rc->attempts, rc->o.arg);
        return;
    }
    req = rc->o.build(rc->attempts, rc->o.arg);
    if (req)
        retry_call_send(rc, req);
    else
        retry_call_fail(rc, -ENOMEM);
}

void retry_call_send(struct retry_call *rc, struct http_req *req)
{
    int err;

    rc->req = req;
    err = http_send(rc->http, req, on_http, rc);
    if (err < 0) {
        rc->req = NULL;
        after(rc, NULL, err, err == -ECANCELED ? RETRY_FATAL : RETRY_TRANSIENT);
    }
}

void retry_call_fail(struct retry_call *rc, int err)
{
    finish(rc, NULL, err, RETRY_FATAL);
}

struct retry_call *retry_call_run(uv_loop_t *loop, struct http *h, const struct retry_call_opts *o)
{
    struct retry_call *rc = calloc(1, sizeof *rc);

    if (!rc)
        return NULL;
    if (uv_timer_init(loop, &rc->timer) < 0) {
        free(rc);
        return NULL;
    }
    rc->timer.data = rc;
    rc->http = h;
    rc->o = *o;
    if (rc->o.max_attempts <= 0)
        rc->o.max_attempts = o->policy->max_attempts;
    uv_timer_start(&rc->timer, on_timer, 0, 0);
    return rc;
}

struct retry_call *retry_call_start(uv_loop_t *loop, struct http *h, const struct retry_policy *p,
                                    struct retry_quota *quota, retry_build_cb *build,
                                    retry_judge_cb *judge, retry_done_cb *done, void *arg)
{
    struct retry_call_opts o = { .policy = p, .quota = quota, .build = build, .judge = judge,
                                 .done = done, .arg = arg };

    return retry_call_run(loop, h, &o);
}

void retry_call_cancel(struct retry_call *rc)
{
    if (!rc || rc->finished)
        return;
    rc->finished = true;
    if (rc->req) {
        struct http_req *req = rc->req;

        rc->req = NULL;
        http_cancel(req); /* on_http sees finished and returns */
    }
    rc->finished = false;
    finish(rc, NULL, -ECANCELED, RETRY_FATAL);
}
