/* ddb — calls to the DynamoDB and DynamoDB Streams JSON APIs (awsJson 1.0).
 *
 * ddb_call() signs (SigV4, signing name "dynamodb" for both services), posts,
 * retries what is retryable in the SDKs' standard mode (aws/retry.h's
 * retry_call: capped exponential backoff with full jitter), parses the reply and classifies it once.  The
 * callback runs exactly once, from the loop, unless ddb_call fails.
 */
#ifndef DDB2ES_DDB_H
#define DDB2ES_DDB_H

#include <jansson.h>
#include <stdbool.h>
#include <time.h>
#include <uv.h>

#include "base/buf.h"
#include "aws/endpoint.h" /* enum aws_service */

struct http;
struct creds;
struct aws;
struct ddb_call;

enum ddb_class {
    DDB_OK,           /* 2xx with a JSON body */
    DDB_RETRY,        /* transient: network, 5xx, RequestTimeout... */
    DDB_THROTTLED,    /* LimitExceeded, Throttling, ProvisionedThroughputExceeded... */
    DDB_EXPIRED_ITER, /* ExpiredIteratorException */
    DDB_TRIMMED,      /* TrimmedDataAccessException */
    DDB_NOT_FOUND,    /* ResourceNotFoundException */
    DDB_AUTH,         /* expired/invalid token or signature: renew credentials, retry once */
    DDB_FATAL,        /* anything else (ValidationException, AccessDenied...) */
    DDB_BAD_REPLY,    /* a 2xx whose body matches its x-amz-crc32 but is not a JSON object:
                         the service sent exactly this, so the same call gets it again; a
                         data problem of this call, never retried (see ddb.c) */
};

struct ddb_reply {
    enum ddb_class cls;
    int err;             /* transport error (negative errno) or 0 */
    long status;         /* HTTP status, 0 without a response */
    const char *type;    /* error code: the __type text after the last '#', or "" */
    const char *message; /* error message, or "" */
    json_t *json;        /* parsed body on DDB_OK (borrowed: valid during the callback);
                            NULL for a call made with ddb_call_opts.raw */
    const char *body;    /* the reply's text (borrowed: valid during the callback), or NULL */
    size_t body_len;
    int attempts;        /* how many attempts were made */
    int throttled;       /* how many of them were answered DDB_THROTTLED */
    long waited_ms;      /* total backoff between the attempts */
};

/* The exit code a command gives for a failed call: 77 when the credentials
 * were refused (AccessDenied..., UnrecognizedClient), else 69. */
int ddb_reply_exit_code(const struct ddb_reply *rep);

typedef void ddb_done_cb(const struct ddb_reply *rep, void *arg);

struct aws_opts {
    const char *region;             /* required */
    const char *endpoint_dynamodb;  /* full URL, or NULL for the regional host */
    const char *endpoint_streams;   /* full URL, or NULL for the regional host */
    /* From the shared config profile (services section / endpoint_url):
     * used after the AWS_ENDPOINT_URL_* variables, or NULL. */
    const char *profile_endpoint_dynamodb, *profile_endpoint_streams;
    bool use_fips, use_dualstack;
};

/* NULL on allocation failure, a missing region or an endpoint error (logged). */
struct aws *aws_new(uv_loop_t *loop, struct http *h, struct creds *c, const struct aws_opts *o);
/* Cancels every call in flight (callbacks run with DDB_FATAL, err -ECANCELED)
 * and frees the context once its timers are closed. */
void aws_free(struct aws *a);
const char *aws_region(const struct aws *a);
const char *aws_endpoint(const struct aws *a, enum aws_service svc);
/* Tests: the signing clock (NULL = time()) and the retry quota (tokens
 * left).  The backoff's random source is base/backoff.h's backoff_set_rng. */
void aws_set_clock(struct aws *a, time_t (*now)(void));
void aws_set_retry_quota(struct aws *a, int tokens);
int aws_retry_quota(const struct aws *a);

struct ddb_call_opts {
    int max_attempts;    /* 0 = service default (4 for DynamoDB and Streams); 1 = no retry;
                          * the one retry after DDB_AUTH with renewed credentials is extra */
    long timeout_ms;     /* per attempt; 0 = 30000 */
    size_t max_response; /* 0 = 64 MiB (DynamoDB Local sends multi-MB GetRecords pages) */
    bool raw;            /* a 2xx reply is not parsed: the callback reads rep->body */
    const char *what;    /* for log lines: the table (and shard) the call is for, or NULL */
};

/* op: "GetRecords", "DescribeTable", ... (the X-Amz-Target prefix is added).
 * body: the request JSON (stolen: decref'd by ddb).  opts may be NULL.
 * Returns the call (for ddb_cancel) or NULL (cb not run). */
struct ddb_call *ddb_call(struct aws *a, enum aws_service svc, const char *op, json_t *body,
                          ddb_done_cb *cb, void *arg, const struct ddb_call_opts *opts);
/* Cancels a call in flight: the callback runs with err -ECANCELED before return.
 * The call handle is invalid once its callback has run. */
void ddb_cancel(struct ddb_call *c);

/* Pure: classify an answer (transport error err, HTTP status, body).  The
 * error code (the __type text after the last '#', without any ':' suffix) is
 * copied to type[tlen] when type is not NULL ("" when there is none).  A
 * LimitExceededException is DDB_THROTTLED: the type alone cannot tell a rate
 * limit from Streams' "Limit above 1000", and the daemon never sends the latter.
 * A 429 without a known code (a proxy) is DDB_THROTTLED too; a 2xx whose body
 * is not a JSON object is DDB_RETRY here (nothing says the service sent it):
 * a call whose reply carries a matching x-amz-crc32 reports DDB_BAD_REPLY
 * instead. */
enum ddb_class ddb_classify(long status, int err, const char *body, size_t len, char *type,
                            size_t tlen);
const char *ddb_class_name(enum ddb_class c);

#endif
