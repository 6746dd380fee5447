#include "aws/ddb.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "aws/creds.h"
#include "base/http.h"
#include "aws/httpsign.h"
#include "base/jsonx.h"
#include "aws/retry.h"
#include "base/log.h"

/* Standard retry mode, 2026 revision, as AWS-AUTH §12.3 recommends for
 * DynamoDB and Streams: retry_dynamodb, run by retry_call (aws/retry.c);
 * judge() below says what each answer calls for.
 *
 * What a retry costs, by class of the answer (the quota is shared by every
 * call of the process, so only answers that another attempt may change
 * spend it):
 *   DDB_RETRY      transient (network, 5xx, CRC mismatch, a 2xx without a
 *                  CRC that is not JSON: a proxy) - retried, costs
 *                  retry_dynamodb.cost_other
 *   DDB_THROTTLED  retried, costs cost_throttle
 *   DDB_AUTH       retried once at once with renewed credentials, free
 *   DDB_BAD_REPLY  a 2xx the service sent as it is (its CRC matches) that
 *                  cannot be read: the same call gets it again, so it is
 *                  never retried and spends nothing; the caller decides
 *   others         never retried here (the caller handles expiry, trims,
 *                  not-found and refusals) */
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE ((size_t)64 << 20)

struct aws {
    uv_loop_t *loop;
    struct http *http;
    struct creds *creds;
    char *region;
    char endpoint[2][sizeof ((struct endpoint_out *)0)->url + 1]; /* with the trailing '/' */
    struct retry_quota quota; /* shared by every call */
    time_t (*now)(void);
    struct ddb_call *calls; /* in flight */
    bool closing;
    bool quota_dry;         /* the retry quota ran out; logged once until a call succeeds */
};

struct ddb_call {
    struct aws *a;
    struct ddb_call *next, *prev;
    struct retry_call *rc; /* until the callback has run */
    enum aws_service svc;
    char target[96];
    char *body;
    size_t body_len;
    ddb_done_cb *cb;
    void *arg;
    int max_attempts;
    long timeout_ms;
    size_t max_response;
    bool raw;
    char what[160];     /* opts->what, for log lines */

    struct ddb_reply rep; /* the last attempt's answer, or why it had no request */
    char type[128], msg[512];
    int throttled;      /* attempts answered DDB_THROTTLED */
    bool auth_retried;
    long waited_ms;
    int refs;           /* the retry call until the callback, plus a creds_get in progress */
    bool no_request;    /* the attempt ended before its request was made (rep says why) */
    bool done, cancelled;
};

/* --- classification (pure) --------------------------------------------- */

static const char *const auth_codes[] = {
    "ExpiredTokenException", "ExpiredToken", "UnrecognizedClientException", "InvalidClientTokenId",
};

static bool in_list(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return true;
    return false;
}

#define IN(code, list) in_list((code), (list), sizeof(list) / sizeof((list)[0]))

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (!dst || cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* "com.amazonaws.dynamodb.v20120810#LimitExceededException" -> "LimitExceededException";
 * botocore first drops a ':' suffix, then keeps what follows the last '#'. */
static void error_code(const char *raw, char *out, size_t cap)
{
    const char *colon = strchr(raw, ':');
    size_t n = colon ? (size_t)(colon - raw) : strlen(raw);
    const char *start = raw;

    for (size_t i = 0; i < n; i++)
        if (raw[i] == '#')
            start = raw + i + 1;
    copy_str(out, cap, start, n - (size_t)(start - raw));
}

static bool contains_nocase(const char *hay, const char *needle)
{
    return hay && strcasestr(hay, needle) != NULL;
}

static enum ddb_class classify(long status, int err, const char *body, size_t len, char *type,
                               size_t tlen, char *msg, size_t mlen, json_t **json_out, bool unparsed)
{
    char code[128] = "";
    const char *message = "";
    json_t *root = NULL;
    json_error_t jerr;
    char why[256];
    enum ddb_class cls;

    if (err) {
        cls = err == -ECANCELED || err == -E2BIG ? DDB_FATAL : DDB_RETRY;
        goto out;
    }
    if (unparsed && status >= 200 && status < 300) { /* the caller parses what it needs */
        cls = body && len ? DDB_OK : DDB_RETRY;
        goto out;
    }
    if (body && len)
        root = jsonx_loadb(body, len, 0, &jerr);
    if (status >= 200 && status < 300) {
        cls = json_is_object(root) ? DDB_OK : DDB_RETRY;
        if (cls != DDB_OK) {
            if (!body || !len)
                snprintf(why, sizeof why, "the reply is empty");
            else if (root)
                snprintf(why, sizeof why, "the reply is a JSON value but not an object");
            else
                snprintf(why, sizeof why, "the reply is not JSON: %s at byte %d of %zu",
                         jerr.text, jerr.position, len);
            message = why;
        }
        goto out;
    }
    if (json_is_object(root)) {
        const char *raw = json_string_value(json_object_get(root, "__type"));

        if (!raw)
            raw = json_string_value(json_object_get(root, "code"));
        if (raw)
            error_code(raw, code, sizeof code);
        message = json_string_value(json_object_get(root, "message"));
        if (!message)
            message = json_string_value(json_object_get(root, "Message"));
        if (!message)
            message = "";
    }
    if (strcmp(code, "ExpiredIteratorException") == 0)
        cls = DDB_EXPIRED_ITER;
    else if (strcmp(code, "TrimmedDataAccessException") == 0)
        cls = DDB_TRIMMED;
    else if (strcmp(code, "ResourceNotFoundException") == 0)
        cls = DDB_NOT_FOUND;
    else if (IN(code, auth_codes) ||
             (strcmp(code, "InvalidSignatureException") == 0 &&
              contains_nocase(message, "expired")))
        cls = DDB_AUTH;
    else if (retry_code_throttling(code))
        cls = DDB_THROTTLED;
    else if (retry_code_transient(code) || status >= 500)
        cls = DDB_RETRY;
    else if (status == 429) /* a 429 without a known code: a proxy or gateway throttling */
        cls = DDB_THROTTLED;
    else
        cls = DDB_FATAL;
out:
    copy_str(type, tlen, code, strlen(code));
    copy_str(msg, mlen, message, strlen(message));
    if (json_out && cls == DDB_OK)
        *json_out = root;
    else
        json_decref(root);
    return cls;
}

enum ddb_class ddb_classify(long status, int err, const char *body, size_t len, char *type,
                            size_t tlen)
{
    return classify(status, err, body, len, type, tlen, NULL, 0, NULL, false);
}

const char *ddb_class_name(enum ddb_class c)
{
    static const char *const names[] = {
        [DDB_OK] = "ok",           [DDB_RETRY] = "retry",         [DDB_THROTTLED] = "throttled",
        [DDB_EXPIRED_ITER] = "expired-iterator", [DDB_TRIMMED] = "trimmed",
        [DDB_NOT_FOUND] = "not-found", [DDB_AUTH] = "auth",       [DDB_FATAL] = "fatal",
        [DDB_BAD_REPLY] = "bad-reply",
    };

    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

/* --- the context --------------------------------------------------------- */

struct aws *aws_new(uv_loop_t *loop, struct http *h, struct creds *c, const struct aws_opts *o)
{
    struct aws *a;

    if (!loop || !h || !c || !o)
        return NULL;
    if (!o->region || !*o->region) {
        log_error("aws: no region configured ([aws] region, AWS_REGION or AWS_DEFAULT_REGION)");
        return NULL;
    }
    if (!(a = calloc(1, sizeof *a)))
        return NULL;
    a->loop = loop;
    a->http = h;
    a->creds = c;
    retry_quota_init(&a->quota);
    if (!(a->region = strdup(o->region)))
        goto fail;
    for (int svc = AWS_DYNAMODB; svc <= AWS_STREAMS; svc++) {
        struct endpoint_in in = {
            .svc = (enum aws_service)svc,
            .region = o->region,
            .override = svc == AWS_STREAMS ? o->endpoint_streams : o->endpoint_dynamodb,
            .profile_override = svc == AWS_STREAMS ? o->profile_endpoint_streams
                                                   : o->profile_endpoint_dynamodb,
            .use_fips = o->use_fips,
            .use_dualstack = o->use_dualstack,
            .getenv = getenv,
        };
        struct endpoint_out out;

        if (endpoint_resolve(&in, &out) < 0) {
            log_error("aws: %s endpoint: %s", svc == AWS_STREAMS ? "DynamoDB Streams" : "DynamoDB",
                      out.error);
            goto fail;
        }
        snprintf(a->endpoint[svc], sizeof a->endpoint[svc], "%s/", out.url);
        log_debug("aws: %s endpoint %s (%s)", svc == AWS_STREAMS ? "DynamoDB Streams" : "DynamoDB",
                  out.url, out.source);
    }
    return a;
fail:
    free(a->region);
    free(a);
    return NULL;
}

void aws_free(struct aws *a)
{
    if (!a)
        return;
    a->closing = true;
    while (a->calls)
        ddb_cancel(a->calls); /* unlinks it */
    free(a->region);
    free(a);
}

const char *aws_region(const struct aws *a)
{
    return a->region;
}

const char *aws_endpoint(const struct aws *a, enum aws_service svc)
{
    return svc == AWS_STREAMS || svc == AWS_DYNAMODB ? a->endpoint[svc] : NULL;
}

void aws_set_clock(struct aws *a, time_t (*now)(void))
{
    a->now = now;
}

void aws_set_retry_quota(struct aws *a, int tokens)
{
    a->quota.tokens = tokens < 0 ? 0 : tokens > RETRY_QUOTA_MAX ? RETRY_QUOTA_MAX : tokens;
}

int aws_retry_quota(const struct aws *a)
{
    return a->quota.tokens;
}

/* --- one call ------------------------------------------------------------ */

static void unref(struct ddb_call *c)
{
    if (--c->refs > 0)
        return;
    free(c->body);
    free(c);
}

static void unlink_call(struct ddb_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (c->a && c->a->calls == c)
        c->a->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* The answer of the attempt the retry call ends or retries: the one judge()
 * classified (req), why no request was made, a cancel, or a request that
 * could not be sent. */
static void reply_of(const struct ddb_call *c, const struct http_req *req, int err,
                     struct ddb_reply *rep)
{
    if (c->cancelled)
        *rep = (struct ddb_reply){ .cls = DDB_FATAL, .err = -ECANCELED, .message = "cancelled" };
    else if (req || c->no_request)
        *rep = c->rep;
    else
        *rep = (struct ddb_reply){ .cls = ddb_classify(0, err, NULL, 0, NULL, 0), .err = err,
                                   .message = "could not start the request" };
    if (!rep->type)
        rep->type = "";
    if (!rep->message)
        rep->message = "";
}

/* Ends the attempt before its request exists: the callback runs with cls. */
static void fail_attempt(struct ddb_call *c, enum ddb_class cls, int err, const char *message)
{
    c->rep = (struct ddb_reply){ .cls = cls, .err = err, .message = message };
    c->no_request = true;
    retry_call_fail(c->rc, err);
}

/* Runs the callback once and lets go of the call; touches no aws afterwards
 * (the callback may free it). */
static void on_done(struct http_req *req, int err, enum retry_verdict v, int attempts, void *arg)
{
    struct ddb_call *c = arg;
    struct ddb_reply rep;

    reply_of(c, req, err, &rep);
    if (v == RETRY_OK)
        c->a->quota_dry = false;
    unlink_call(c);
    c->a = NULL;
    c->rc = NULL;
    c->done = true;
    rep.attempts = attempts;
    rep.throttled = c->throttled;
    rep.waited_ms = c->waited_ms;
    c->cb(&rep, c->arg);
    json_decref(c->rep.json);
    unref(c);
}

static void on_wait(struct http_req *req, int err, enum retry_verdict v, int counted,
                    long delay_ms, void *arg)
{
    struct ddb_call *c = arg;
    struct ddb_reply rep;

    reply_of(c, req, err, &rep);
    c->waited_ms += delay_ms;
    log_debug("%s: %s %s (HTTP %ld, err %d), attempt %d of %d, retrying in %ld ms", c->target,
              ddb_class_name(rep.cls), rep.type, rep.status, rep.err, counted, c->max_attempts,
              delay_ms);
}

static void on_refused(struct http_req *req, int err, enum retry_verdict v, void *arg)
{
    struct ddb_call *c = arg;
    struct aws *a = c->a;
    struct ddb_reply rep;

    reply_of(c, req, err, &rep);
    /* Once per episode: every call fails fast until one succeeds. */
    if (!a->quota_dry)
        log_warn("%s%s%s: retry quota exhausted (%d tokens left): DynamoDB calls are not "
                 "retried within the call until one succeeds (last answer: %s, HTTP %ld)",
                 c->target, c->what[0] ? " for " : "", c->what, a->quota.tokens,
                 rep.type[0] ? rep.type : ddb_class_name(rep.cls), rep.status);
    a->quota_dry = true;
}

enum crc_state { CRC_NONE, CRC_MATCH, CRC_MISMATCH };

/* DynamoDB sends the CRC32 of the body; botocore retries a mismatch.  A
 * match says the body is what the service sent. */
static enum crc_state crc_check(struct http_req *req, const struct buf *body)
{
    const char *want = http_req_header_get(req, "x-amz-crc32");
    char *end;
    unsigned long v;

    if (!want || !*want || !body)
        return CRC_NONE;
    errno = 0;
    v = strtoul(want, &end, 10);
    if (errno || *end)
        return CRC_NONE; /* unreadable: nothing to compare against */
    return v == crc32_z(0L, (const Bytef *)(body->ptr ? body->ptr : ""), body->len) ? CRC_MATCH
                                                                                  : CRC_MISMATCH;
}

/* Classifies one answer into c->rep; what the class calls for (see the top
 * of this file). */
static enum retry_verdict judge(struct http_req *req, int err, void *arg)
{
    struct ddb_call *c = arg;
    struct ddb_reply *rep = &c->rep;
    const struct buf *body = http_req_body(req);
    enum crc_state crc;

    *rep = (struct ddb_reply){ .err = err, .type = c->type, .message = c->msg };
    rep->status = err ? 0 : http_req_status(req);
    crc = err ? CRC_NONE : crc_check(req, body);
    rep->cls = classify(rep->status, err, body ? body->ptr : NULL, body ? body->len : 0, c->type,
                        sizeof c->type, c->msg, sizeof c->msg, &rep->json, c->raw);
    if (body) {
        rep->body = body->ptr;
        rep->body_len = body->len;
    }
    if (rep->status >= 200 && rep->status < 300 && crc == CRC_MISMATCH) {
        json_decref(rep->json);
        rep->json = NULL;
        rep->cls = DDB_RETRY; /* damaged on the way: another attempt gets it whole */
        snprintf(c->msg, sizeof c->msg, "response CRC32 does not match x-amz-crc32");
    } else if (rep->status >= 200 && rep->status < 300 && rep->cls == DDB_RETRY &&
               crc == CRC_MATCH) {
        rep->cls = DDB_BAD_REPLY; /* exactly what the service sent: not transient */
    }
    if (err && !c->msg[0])
        snprintf(c->msg, sizeof c->msg, "%s", http_req_error(req));
    switch (rep->cls) {
    case DDB_OK:
        return RETRY_OK;
    case DDB_RETRY:
        return RETRY_TRANSIENT;
    case DDB_THROTTLED:
        c->throttled++;
        return RETRY_THROTTLED;
    case DDB_AUTH:
        if (c->auth_retried)
            return RETRY_FATAL;
        /* Renew the key and retry at once; this attempt does not count. */
        log_info("%s: credentials rejected (%s), renewing them and retrying once", c->target,
                 rep->type);
        c->auth_retried = true;
        creds_invalidate(c->a->creds);
        return RETRY_AT_ONCE;
    default:
        return RETRY_FATAL;
    }
}

static void send_signed(struct ddb_call *c, const struct sigv4_key *key)
{
    struct aws *a = c->a;
    struct http_req *req = http_req_new("POST", a->endpoint[c->svc]);
    time_t now = a->now ? a->now() : time(NULL);
    int rc = req ? 0 : -ENOMEM;

    if (rc == 0)
        rc = http_req_header(req, "Content-Type", "application/x-amz-json-1.0");
    if (rc == 0)
        rc = http_req_header(req, "X-Amz-Target", c->target);
    if (rc == 0) {
        http_req_body_ref(req, c->body, c->body_len);
        http_req_timeout(req, c->timeout_ms);
        http_req_max_response(req, c->max_response);
        rc = httpsign_sigv4(req, key, a->region, "dynamodb", now, false);
    }
    if (rc < 0) {
        http_req_free(req);
        fail_attempt(c, DDB_FATAL, rc, "could not build the request");
        return;
    }
    retry_call_send(c->rc, req);
}

static void on_creds(const struct sigv4_key *key, int err, void *arg)
{
    struct ddb_call *c = arg;

    if (c->done) { /* cancelled meanwhile */
        unref(c);
        return;
    }
    unref(c); /* the retry call's reference keeps it */
    if (err < 0 || !key) {
        fail_attempt(c, DDB_AUTH, err < 0 ? err : -ENOKEY, creds_error(c->a->creds));
        return;
    }
    send_signed(c, key);
}

/* Each attempt is signed anew, with the credentials of the moment. */
static void prepare(struct retry_call *rc, int attempt, void *arg)
{
    struct ddb_call *c = arg;
    int err;

    c->refs++;
    err = creds_get(c->a->creds, on_creds, c);
    if (err < 0) {
        c->refs--;
        fail_attempt(c, DDB_AUTH, err, creds_error(c->a->creds));
    }
}

struct ddb_call *ddb_call(struct aws *a, enum aws_service svc, const char *op, json_t *body,
                          ddb_done_cb *cb, void *arg, const struct ddb_call_opts *opts)
{
    struct ddb_call *c = NULL;
    struct retry_call_opts ro = { .policy = &retry_dynamodb, .prepare = prepare, .judge = judge,
                                  .wait = on_wait, .refused = on_refused, .done = on_done };
    int n;

    if (!a || a->closing || !op || !*op || !cb || (svc != AWS_DYNAMODB && svc != AWS_STREAMS))
        goto fail;
    if (!(c = calloc(1, sizeof *c)))
        goto fail;
    n = snprintf(c->target, sizeof c->target, "%s.%s",
                 svc == AWS_STREAMS ? "DynamoDBStreams_20120810" : "DynamoDB_20120810", op);
    if (n < 0 || (size_t)n >= sizeof c->target)
        goto fail;
    c->body = body ? jsonx_dumps(body, NULL) : strdup("{}");
    if (!c->body)
        goto fail;
    json_decref(body);
    body = NULL;
    c->body_len = strlen(c->body);
    c->a = a;
    c->svc = svc;
    c->cb = cb;
    c->arg = arg;
    c->max_attempts = opts && opts->max_attempts > 0 ? opts->max_attempts : retry_dynamodb.max_attempts;
    c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_response = opts && opts->max_response ? opts->max_response : DEFAULT_MAX_RESPONSE;
    c->raw = opts && opts->raw;
    if (opts && opts->what)
        snprintf(c->what, sizeof c->what, "%s", opts->what);
    ro.quota = &a->quota;
    ro.max_attempts = c->max_attempts;
    ro.arg = c;
    /* The first attempt starts from the loop, so the callback never runs
     * inside ddb_call. */
    if (!(c->rc = retry_call_run(a->loop, a->http, &ro)))
        goto fail;
    c->refs = 1;
    c->next = a->calls;
    if (a->calls)
        a->calls->prev = c;
    a->calls = c;
    return c;
fail:
    json_decref(body);
    if (c)
        free(c->body);
    free(c);
    return NULL;
}

void ddb_cancel(struct ddb_call *c)
{
    if (!c || c->done)
        return;
    c->cancelled = true;
    retry_call_cancel(c->rc); /* on_done delivers */
}

int ddb_reply_exit_code(const struct ddb_reply *rep)
{
    return rep->cls == DDB_FATAL && (strstr(rep->type, "AccessDenied") ||
                                     strstr(rep->type, "UnrecognizedClient"))
               ? 77
               : 69;
}
