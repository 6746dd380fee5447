/* retry — the AWS SDKs' standard retry mode (AWS-AUTH §12), shared by the
 * DynamoDB/Streams calls and the credential providers' STS, container and
 * IMDS calls.
 *
 * The pure part: the policy (attempts, backoff bases, costs), the retry
 * quota (a token bucket of 500), capped exponential backoff with full jitter
 * honouring x-amz-retry-after, and the throttling / transient error codes.
 * retry_call runs one HTTP call under a policy on the loop: every retried
 * AWS call goes through it.
 */
#ifndef DDB2ES_RETRY_H
#define DDB2ES_RETRY_H

#include <stdbool.h>
#include <uv.h>

struct http;
struct http_req;

struct retry_policy {
    int max_attempts;        /* attempts, not retries */
    double base_ms;          /* backoff base for transient errors */
    double throttle_base_ms; /* backoff base for throttling errors */
    double max_backoff_ms;   /* cap of one delay */
    int cost_other;          /* quota tokens one retry takes */
    int cost_throttle;
};

/* 3 attempts, base 1 s for everything, cost 5: STS, container, IMDS. */
extern const struct retry_policy retry_standard;
/* The 2026 revision for DynamoDB and Streams: 4 attempts, 25 ms / 1 s,
 * costs 14 / 5. */
extern const struct retry_policy retry_dynamodb;

#define RETRY_QUOTA_MAX 500
#define RETRY_COST_NO_RETRY 1 /* what a first-attempt success refunds */

struct retry_quota {
    int tokens;
};

void retry_quota_init(struct retry_quota *q);
/* Takes one retry's cost: 0 with *cost set, or -EAGAIN when the bucket
 * holds too little (then nothing is taken). */
int retry_quota_take(struct retry_quota *q, const struct retry_policy *p, bool throttled, int *cost);
/* After a success: refunds last_cost (what the last retry took), or
 * RETRY_COST_NO_RETRY when there was none; never above the maximum. */
void retry_quota_success(struct retry_quota *q, int last_cost);

/* The delay before retry n (1 = the first retry): rnd * min(base * 2^(n-1),
 * cap), rnd in [0, 1).  retry_after is an x-amz-retry-after value in ms (or
 * NULL): the delay becomes max(t, min(retry_after, t + 5 s)). */
long retry_backoff_ms(const struct retry_policy *p, int n, bool throttled, double rnd,
                      const char *retry_after);
bool retry_code_throttling(const char *code);
bool retry_code_transient(const char *code);

/* ---- one HTTP call, retried ---------------------------------------------- */

/* What one attempt's outcome calls for.  RETRY_AT_ONCE: the judge renewed
 * what the attempt lacked (credentials); the next attempt starts at once, is
 * free (no backoff, no quota) and does not count against max_attempts.  The
 * judge returns it once per call at most. */
enum retry_verdict { RETRY_OK, RETRY_TRANSIENT, RETRY_THROTTLED, RETRY_FATAL, RETRY_AT_ONCE };

struct retry_call;
/* Builds (and signs) the request of one attempt; NULL ends the call with
 * -ENOMEM.  attempt counts from 1. */
typedef struct http_req *retry_build_cb(int attempt, void *arg);
/* Starts building one attempt's request, for a caller that must wait (for
 * credentials) first: it hands the request over with retry_call_send, or
 * ends the call with retry_call_fail, then or later (not after done). */
typedef void retry_prepare_cb(struct retry_call *rc, int attempt, void *arg);
/* Classifies one attempt's outcome (err as http's callback got it).  An
 * attempt whose request could not be sent is not judged: it is transient
 * (fatal when http_send said -ECANCELED). */
typedef enum retry_verdict retry_judge_cb(struct http_req *req, int err, void *arg);
/* Before a retry: the attempt that failed (req NULL when it could not be
 * sent), its verdict, how many attempts count so far, and the backoff. */
typedef void retry_wait_cb(struct http_req *req, int err, enum retry_verdict v, int counted,
                           long delay_ms, void *arg);
/* The quota refused a retry of this attempt: done follows at once. */
typedef void retry_refused_cb(struct http_req *req, int err, enum retry_verdict v, void *arg);
/* Runs once: with the last attempt's request (valid during the callback),
 * its err and verdict; req is NULL when no request could be made or sent
 * (err says why) or after retry_call_cancel (err -ECANCELED).  attempts
 * counts every attempt made, RETRY_AT_ONCE ones included. */
typedef void retry_done_cb(struct http_req *req, int err, enum retry_verdict v, int attempts,
                           void *arg);

struct retry_call_opts {
    const struct retry_policy *policy;
    struct retry_quota *quota;  /* NULL = no bucket; may be shared by many calls */
    int max_attempts;           /* 0 = policy->max_attempts; 1 = no retry */
    retry_build_cb *build;      /* one of build and prepare */
    retry_prepare_cb *prepare;
    retry_judge_cb *judge;
    retry_wait_cb *wait;        /* optional */
    retry_refused_cb *refused;  /* optional */
    retry_done_cb *done;
    void *arg;
};

/* Starts from the loop (the callbacks never run inside this call).  NULL
 * when out of memory (done not run). */
struct retry_call *retry_call_run(uv_loop_t *loop, struct http *h, const struct retry_call_opts *o);
/* retry_call_run with a synchronous build and no hooks. */
struct retry_call *retry_call_start(uv_loop_t *loop, struct http *h, const struct retry_policy *p,
                                    struct retry_quota *quota, retry_build_cb *build,
                                    retry_judge_cb *judge, retry_done_cb *done, void *arg);
/* After prepare (in it or later): sends req (taken, not NULL) as the
 * attempt's request. */
void retry_call_send(struct retry_call *rc, struct http_req *req);
/* After prepare (in it or later): no request could be made; done runs with
 * err and RETRY_FATAL before this returns. */
void retry_call_fail(struct retry_call *rc, int err);
/* done runs with -ECANCELED before this returns; the handle is invalid
 * after done has run.  NULL is a no-op. */
void retry_call_cancel(struct retry_call *rc);

#endif
