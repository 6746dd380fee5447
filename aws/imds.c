#include "aws/imds.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "base/backoff.h"
#include "base/http.h"
#include "aws/retry.h"
#include "base/log.h"
#include "base/url.h"

#define TOKEN_TTL_S 21600
#define TOKEN_PATH "/latest/api/token"
#define LEGACY_PATH "/latest/meta-data/iam/security-credentials/"
#define EXTENDED_PATH "/latest/meta-data/iam/security-credentials-extended/"
#define REFRESH_WINDOW_S (15 * 60)

enum step { S_TOKEN, S_ROLE, S_CREDS, S_TEXT };
enum op { OP_NONE, OP_CREDS, OP_TEXT };

struct imds {
    uv_loop_t *loop;
    struct http *http;
    struct imds_cfg cfg;
    struct retry_policy policy;
    time_t (*now)(void);
    char *token;                /* secret */
    uint64_t token_expires_ms;  /* uv_now */
    bool legacy;                /* the extended path answered 404 */
    bool hint_logged;

    enum op op;
    enum step step;
    bool v1;                    /* this operation runs without a token */
    bool token_renewed, relisted;
    char path[256];
    char role[256];
    struct retry_call *rc;
    imds_cred_cb *cred_cb;
    imds_text_cb *text_cb;
    void *arg;
};

/* ---- settings ------------------------------------------------------------ */

static const char *env_get(profile_getenv_fn *env, const char *name)
{
    const char *v = env ? env(name) : NULL;

    return v && *v ? v : NULL;
}

static bool is_true(const char *v)
{
    return v && strcasecmp(v, "true") == 0;
}

static bool url_ok(const char *u)
{
    char host[256];
    bool https;

    if (url_host(u, host, sizeof host, &https) < 0)
        return false;
    for (; *u; u++)
        if ((unsigned char)*u <= ' ' || *u == 0x7f)
            return false;
    return true;
}

int imds_resolve(profile_getenv_fn *env, const struct profile *p, struct imds_cfg *out, char *why,
                 size_t whylen)
{
    const char *ep, *mode, *src, *v;
    size_t n;

    memset(out, 0, sizeof *out);
    out->disabled = is_true(env_get(env, "AWS_EC2_METADATA_DISABLED"));
    v = env_get(env, "AWS_EC2_METADATA_V1_DISABLED");
    out->v1_disabled = is_true(v ? v : profile_get(p, "ec2_metadata_v1_disabled"));
    out->timeout_ms = 1000;
    out->attempts = 1;
    if ((v = env_get(env, "AWS_METADATA_SERVICE_TIMEOUT")) ||
        (v = profile_get(p, "metadata_service_timeout"))) {
        char *end;
        double s = strtod(v, &end);

        if (end == v || *end || s <= 0 || s > 3600) {
            snprintf(why, whylen, "IMDS: metadata_service_timeout must be seconds > 0, got \"%s\"",
                     v);
            return -EINVAL;
        }
        out->timeout_ms = (long)(s * 1000);
    }
    if ((v = env_get(env, "AWS_METADATA_SERVICE_NUM_ATTEMPTS")) ||
        (v = profile_get(p, "metadata_service_num_attempts"))) {
        char *end;
        long a = strtol(v, &end, 10);

        if (end == v || *end || a < 1 || a > 10) {
            snprintf(why, whylen, "IMDS: metadata_service_num_attempts must be 1..10, got \"%s\"",
                     v);
            return -EINVAL;
        }
        out->attempts = (int)a;
    }
    v = env ? env("AWS_EC2_INSTANCE_PROFILE_NAME") : NULL;
    src = "AWS_EC2_INSTANCE_PROFILE_NAME";
    if (!v) {
        v = profile_get(p, "ec2_instance_profile_name");
        src = "ec2_instance_profile_name";
    }
    if (v) {
        if (!*v || strchr(v, '/') || strlen(v) >= sizeof out->instance_profile) {
            snprintf(why, whylen, "IMDS: %s must be a role name, got \"%s\"", src, v);
            return -EINVAL;
        }
        snprintf(out->instance_profile, sizeof out->instance_profile, "%s", v);
    }
    if ((ep = env_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT")))
        src = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
    else if ((ep = profile_get(p, "ec2_metadata_service_endpoint")) && *ep)
        src = "ec2_metadata_service_endpoint";
    else
        ep = NULL;
    if (ep) {
        if (!url_ok(ep)) {
            snprintf(why, whylen, "IMDS: %s is not an http(s) URL (invalid uri)", src);
            return -EINVAL;
        }
        n = strlen(ep);
        while (n && ep[n - 1] == '/')
            n--;
        if (n >= sizeof out->endpoint) {
            snprintf(why, whylen, "IMDS: %s is too long", src);
            return -EINVAL;
        }
        memcpy(out->endpoint, ep, n);
        out->endpoint[n] = '\0';
        out->endpoint_source = src;
        return 0;
    }
    mode = env_get(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    src = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE";
    if (!mode) {
        mode = profile_get(p, "ec2_metadata_service_endpoint_mode");
        src = "ec2_metadata_service_endpoint_mode";
    }
    if (!mode || !*mode || strcasecmp(mode, "IPv4") == 0) {
        snprintf(out->endpoint, sizeof out->endpoint, "http://169.254.169.254");
    } else if (strcasecmp(mode, "IPv6") == 0) {
        snprintf(out->endpoint, sizeof out->endpoint, "http://[fd00:ec2::254]");
    } else {
        snprintf(why, whylen, "IMDS: %s: `%s` is not a valid endpoint mode (IPv4 or IPv6)", src,
                 mode);
        return -EINVAL;
    }
    out->endpoint_source = mode && *mode ? src : "default";
    return 0;
}

/* ---- client ----------------------------------------------------------------- */

struct imds *imds_new(uv_loop_t *loop, struct http *h, const struct imds_cfg *cfg,
                      time_t (*now)(void))
{
    struct imds *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->loop = loop;
    m->http = h;
    m->cfg = *cfg;
    m->now = now;
    m->policy = retry_standard;
    m->policy.max_attempts = cfg->attempts > 0 ? cfg->attempts : 1;
    return m;
}

static void drop_token(struct imds *m)
{
    if (m->token) {
        OPENSSL_cleanse(m->token, strlen(m->token));
        free(m->token);
        m->token = NULL;
    }
}

void imds_free(struct imds *m)
{
    if (!m)
        return;
    imds_cancel(m);
    drop_token(m);
    free(m);
}

static void finish_text(struct imds *m, int err, const char *text, const char *why)
{
    imds_text_cb *cb = m->text_cb;

    m->op = OP_NONE;
    m->rc = NULL;
    cb(err, text, why, m->arg);
}

static void finish_cred(struct imds *m, int err, struct aws_cred *cred, const char *why)
{
    imds_cred_cb *cb = m->cred_cb;

    m->op = OP_NONE;
    m->rc = NULL;
    cb(err, cred, why, m->arg);
}

static void fail(struct imds *m, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct imds *m, int err, const char *fmt, ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (m->op == OP_TEXT)
        finish_text(m, err, NULL, why);
    else
        finish_cred(m, err, NULL, why);
}

static void run_step(struct imds *m, enum step s);

static const char *creds_path(const struct imds *m)
{
    return m->legacy ? LEGACY_PATH : EXTENDED_PATH;
}

static struct http_req *build(int attempt, void *arg)
{
    struct imds *m = arg;
    char url[sizeof m->cfg.endpoint + 600];
    struct http_req *r;
    int rc = 0;

    switch (m->step) {
    case S_TOKEN: snprintf(url, sizeof url, "%s%s", m->cfg.endpoint, TOKEN_PATH); break;
    case S_ROLE: snprintf(url, sizeof url, "%s%s", m->cfg.endpoint, creds_path(m)); break;
    case S_CREDS: snprintf(url, sizeof url, "%s%s%s", m->cfg.endpoint, creds_path(m), m->role); break;
    default: snprintf(url, sizeof url, "%s%s", m->cfg.endpoint, m->path); break;
    }
    r = http_req_new(m->step == S_TOKEN ? "PUT" : "GET", url);
    if (!r)
        return NULL;
    if (m->step == S_TOKEN) /* an empty body: no Expect, no chunking (http.c) */
        rc = http_req_header(r, "x-aws-ec2-metadata-token-ttl-seconds", "21600");
    else if (!m->v1 && m->token)
        rc = http_req_header(r, "x-aws-ec2-metadata-token", m->token);
    if (rc < 0) {
        http_req_free(r);
        return NULL;
    }
    http_req_no_proxy(r);
    http_req_timeout(r, m->cfg.timeout_ms);
    http_req_max_response(r, 64 * 1024);
    return r;
}

static enum retry_verdict judge(struct http_req *req, int err, void *arg)
{
    struct imds *m = arg;
    long st = err ? 0 : http_req_status(req);

    if (err)
        /* A token PUT that times out is the hop-limit case: no retry. */
        return err == -ETIMEDOUT && m->step != S_TOKEN ? RETRY_TRANSIENT : RETRY_FATAL;
    if (st == 200)
        return http_req_body(req)->len ? RETRY_OK : RETRY_TRANSIENT;
    if (st == 429)
        return RETRY_THROTTLED;
    return st >= 500 ? RETRY_TRANSIENT : RETRY_FATAL;
}

static void copy_trimmed(char *dst, size_t cap, const char *src, size_t n, bool first_line)
{
    while (n && isspace((unsigned char)*src))
        src++, n--;
    if (first_line) {
        const char *nl = memchr(src, '\n', n);

        if (nl)
            n = (size_t)(nl - src);
    }
    while (n && isspace((unsigned char)src[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void after_token(struct imds *m)
{
    if (m->op == OP_TEXT)
        run_step(m, S_TEXT);
    else if (m->role[0])
        run_step(m, S_CREDS);
    else
        run_step(m, S_ROLE);
}

static void go_v1(struct imds *m, const char *why)
{
    if (m->cfg.v1_disabled) {
        fail(m, -EACCES, "IMDS %s: %s, and IMDSv1 is disabled (AWS_EC2_METADATA_V1_DISABLED / "
                         "ec2_metadata_v1_disabled)",
             m->cfg.endpoint, why);
        return;
    }
    log_debug("IMDS: %s; falling back to IMDSv1", why);
    m->v1 = true;
    after_token(m);
}

static void on_token(struct http_req *req, int err, long st)
{
    struct imds *m = http_req_userdata(req);
    const struct buf *b;

    if (err == -ETIMEDOUT) {
        if (m->cfg.v1_disabled) {
            fail(m, -ETIMEDOUT, "IMDS %s: " IMDS_HOP_HINT " (IMDSv1 is disabled)", m->cfg.endpoint);
            return;
        }
        if (!m->hint_logged) {
            m->hint_logged = true;
            log_warn("IMDS %s: " IMDS_HOP_HINT "; trying IMDSv1", m->cfg.endpoint);
        }
        go_v1(m, "the token request timed out");
        return;
    }
    if (err) {
        fail(m, err, "IMDS %s unreachable: %s", m->cfg.endpoint,
             http_req_error(req)[0] ? http_req_error(req) : strerror(-err));
        return;
    }
    if (st == 200) {
        char tok[1024];

        b = http_req_body(req);
        copy_trimmed(tok, sizeof tok, b->ptr, b->len, false);
        drop_token(m);
        m->token = strdup(tok);
        OPENSSL_cleanse(tok, sizeof tok);
        if (!m->token) {
            fail(m, -ENOMEM, "IMDS: out of memory");
            return;
        }
        m->token_expires_ms = uv_now(m->loop) + (uint64_t)(TOKEN_TTL_S - 60) * 1000;
        m->v1 = false;
        after_token(m);
        return;
    }
    if (st == 403 || st == 404 || st == 405 || st >= 500) {
        char why[64];

        snprintf(why, sizeof why, "the token request got HTTP %ld", st);
        go_v1(m, why);
        return;
    }
    fail(m, -EPROTO, "IMDS %s: the token request got HTTP %ld", m->cfg.endpoint, st);
}

/* A 401 on a GET: the token expired or was refused; fetch a new one, once. */
static bool renew_token(struct imds *m)
{
    if (m->token_renewed)
        return false;
    m->token_renewed = true;
    drop_token(m);
    m->v1 = false;
    run_step(m, S_TOKEN);
    return true;
}

static void on_role(struct http_req *req, int err, long st)
{
    struct imds *m = http_req_userdata(req);
    const struct buf *b = http_req_body(req);

    if (!err && st == 404 && !m->legacy) {
        m->legacy = true; /* no extended API here: the legacy path from now on */
        run_step(m, S_ROLE);
        return;
    }
    if (!err && st == 401 && renew_token(m))
        return;
    if (err || st != 200) {
        if (!err && st == 404)
            fail(m, -ENOKEY, "IMDS %s: no IAM role is attached to this instance (HTTP 404)",
                 m->cfg.endpoint);
        else if (!err && st == 401)
            fail(m, -EACCES, "IMDS %s: HTTP 401 listing the role%s", m->cfg.endpoint,
                 m->v1 ? " (the instance requires IMDSv2: " IMDS_HOP_HINT ")" : "");
        else
            fail(m, err ? err : -EPROTO, "IMDS %s: listing the role: %s", m->cfg.endpoint,
                 err ? (http_req_error(req)[0] ? http_req_error(req) : strerror(-err))
                     : "unexpected HTTP status");
        return;
    }
    copy_trimmed(m->role, sizeof m->role, b->ptr, b->len, true);
    if (!m->role[0] || strchr(m->role, '/')) {
        m->role[0] = '\0';
        fail(m, -EPROTO, "IMDS %s: the role listing is empty or malformed", m->cfg.endpoint);
        return;
    }
    run_step(m, S_CREDS);
}

static void on_creds(struct http_req *req, int err, long st)
{
    struct imds *m = http_req_userdata(req);
    const struct buf *b = http_req_body(req);
    struct aws_cred cred = { 0 };
    char why[256];
    time_t now;

    if (!err && st == 404 && !m->legacy && !m->cfg.instance_profile[0]) {
        m->legacy = true;
        m->role[0] = '\0';
        run_step(m, S_ROLE);
        return;
    }
    if (!err && st == 404 && !m->relisted && !m->cfg.instance_profile[0]) {
        m->relisted = true; /* the instance profile changed: list again */
        m->role[0] = '\0';
        run_step(m, S_ROLE);
        return;
    }
    if (!err && st == 401 && renew_token(m))
        return;
    if (err || st != 200) {
        fail(m, err ? err : st == 404 ? -ENOKEY : -EPROTO, "IMDS %s: credentials of role %s: %s",
             m->cfg.endpoint, m->role,
             err ? (http_req_error(req)[0] ? http_req_error(req) : strerror(-err))
             : st == 401 ? "HTTP 401 (the instance requires IMDSv2)"
                         : "unexpected HTTP status");
        return;
    }
    if (aws_cred_from_json(b->ptr, b->len, "Token", true, true, &cred, why, sizeof why) < 0) {
        fail(m, -ENOKEY, "IMDS %s: no credentials for role %s: %s", m->cfg.endpoint, m->role,
             why);
        return;
    }
    now = m->now ? m->now() : time(NULL);
    if (cred.expires - now < REFRESH_WINDOW_S) {
        /* Static stability: IMDS serves stale credentials while degraded;
         * use them a while instead of asking again at every request. */
        time_t ext = now + REFRESH_WINDOW_S + 120 + (time_t)(backoff_rng() * 480);

        log_warn("IMDS: the credentials of role %s expire in %lld s; using them until %lld "
                 "before asking again",
                 m->role, (long long)(cred.expires - now), (long long)ext);
        cred.expires = ext;
    }
    finish_cred(m, 0, &cred, "");
    aws_cred_clear(&cred);
}

static void on_text(struct http_req *req, int err, long st)
{
    struct imds *m = http_req_userdata(req);
    const struct buf *b = http_req_body(req);
    char text[256];

    if (!err && st == 401 && renew_token(m))
        return;
    if (err || st != 200) {
        fail(m, err ? err : st == 404 ? -ENOENT : -EPROTO, "IMDS %s%s: %s", m->cfg.endpoint,
             m->path,
             err ? (http_req_error(req)[0] ? http_req_error(req) : strerror(-err))
                 : "unexpected HTTP status");
        return;
    }
    copy_trimmed(text, sizeof text, b->ptr, b->len, true);
    finish_text(m, 0, text, "");
}

static void on_done(struct http_req *req, int err, enum retry_verdict v, int attempts, void *arg)
{
    struct imds *m = arg;
    long st;

    m->rc = NULL;
    if (err == -ECANCELED || !req) {
        fail(m, err ? err : -ENOMEM, "IMDS: %s", err == -ECANCELED ? "cancelled" : strerror(-err));
        return;
    }
    st = err ? 0 : http_req_status(req);
    http_req_set_userdata(req, m);
    switch (m->step) {
    case S_TOKEN: on_token(req, err, st); break;
    case S_ROLE: on_role(req, err, st); break;
    case S_CREDS: on_creds(req, err, st); break;
    default: on_text(req, err, st); break;
    }
}

static void run_step(struct imds *m, enum step s)
{
    m->step = s;
    m->rc = retry_call_start(m->loop, m->http, &m->policy, NULL, build, judge, on_done, m);
    if (!m->rc)
        fail(m, -ENOMEM, "IMDS: out of memory");
}

static int start(struct imds *m)
{
    m->v1 = false;
    m->token_renewed = m->relisted = false;
    if (m->token && uv_now(m->loop) < m->token_expires_ms) {
        after_token(m);
        return 0;
    }
    drop_token(m);
    m->step = S_TOKEN;
    m->rc = retry_call_start(m->loop, m->http, &m->policy, NULL, build, judge, on_done, m);
    if (!m->rc) {
        m->op = OP_NONE;
        return -ENOMEM;
    }
    return 0;
}

int imds_get_credentials(struct imds *m, imds_cred_cb *cb, void *arg)
{
    if (!m || !cb)
        return -EINVAL;
    if (m->op != OP_NONE)
        return -EBUSY;
    m->op = OP_CREDS;
    m->cred_cb = cb;
    m->arg = arg;
    snprintf(m->role, sizeof m->role, "%s", m->cfg.instance_profile);
    return start(m);
}

int imds_get(struct imds *m, const char *path, imds_text_cb *cb, void *arg)
{
    if (!m || !cb || !path || strlen(path) >= sizeof m->path)
        return -EINVAL;
    if (m->op != OP_NONE)
        return -EBUSY;
    m->op = OP_TEXT;
    m->text_cb = cb;
    m->arg = arg;
    snprintf(m->path, sizeof m->path, "%s", path);
    return start(m);
}

void imds_cancel(struct imds *m)
{
    if (m && m->op != OP_NONE && m->rc)
        retry_call_cancel(m->rc); /* on_done delivers -ECANCELED */
}
