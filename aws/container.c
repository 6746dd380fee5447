#include "aws/container.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "base/http.h"
#include "aws/retry.h"
#include "base/url.h"

#define ECS_HOST "http://169.254.170.2"
#define FETCH_TIMEOUT_MS 2000L

struct container_call {
    struct retry_call *rc;
    char url[1024];
    char *authz; /* secret */
    container_cb *cb;
    void *arg;
};

static const char *env_get(profile_getenv_fn *env, const char *name)
{
    const char *v = env ? env(name) : NULL;

    return v && *v ? v : NULL;
}

bool container_host_allowed(const char *host)
{
    return url_host_is_loopback(host) || strcmp(host, "169.254.170.2") == 0 ||
           strcmp(host, "169.254.170.23") == 0 || strcasecmp(host, "fd00:ec2::23") == 0;
}

int container_resolve(profile_getenv_fn *env, struct container_cfg *out, char *why, size_t whylen)
{
    const char *rel = env_get(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = env_get(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    const char *tf = env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = env_get(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char host[256];
    bool https;

    memset(out, 0, sizeof *out);
    if (rel) {
        snprintf(out->url, sizeof out->url, "%s%s%s", ECS_HOST, rel[0] == '/' ? "" : "/", rel);
        out->url_var = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    } else if (full) {
        out->url_var = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
        if (url_host(full, host, sizeof host, &https) < 0) {
            snprintf(why, whylen, "container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI is not "
                                  "an http(s) URL");
            return -EINVAL;
        }
        if (!https && !container_host_allowed(host)) {
            snprintf(why, whylen,
                     "container endpoint: AWS_CONTAINER_CREDENTIALS_FULL_URI host %s is not "
                     "allowed over plain http (only loopback, 169.254.170.2, 169.254.170.23 or "
                     "fd00:ec2::23; use https)",
                     host);
            return -EINVAL;
        }
        snprintf(out->url, sizeof out->url, "%s", full);
    } else {
        return -ENOKEY;
    }
    if (tf)
        snprintf(out->token_file, sizeof out->token_file, "%s", tf);
    else if (tok) {
        out->have_token = true;
        snprintf(out->token, sizeof out->token, "%s", tok);
    }
    return 0;
}

static int read_token(const char *path, char **out, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[4096];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    int e = errno;

    if (fd >= 0)
        close(fd);
    if (n < 0) {
        snprintf(why, whylen,
                 "container endpoint: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
                 path, strerror(e));
        return -e;
    }
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    *out = strdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    return *out ? 0 : -ENOMEM;
}

static struct http_req *build(int attempt, void *arg)
{
    struct container_call *c = arg;
    struct http_req *r = http_req_new("GET", c->url);

    if (!r)
        return NULL;
    if (http_req_header(r, "Accept", "application/json") < 0 ||
        (c->authz && http_req_header(r, "Authorization", c->authz) < 0)) {
        http_req_free(r);
        return NULL;
    }
    http_req_no_proxy(r);
    http_req_timeout(r, FETCH_TIMEOUT_MS);
    http_req_max_response(r, 64 * 1024);
    return r;
}

static enum retry_verdict judge(struct http_req *req, int err, void *arg)
{
    long st = err ? 0 : http_req_status(req);
    const struct buf *b = http_req_body(req);
    struct aws_cred tmp = { 0 };
    char why[64];
    enum retry_verdict v;

    if (err)
        return err == -ECANCELED ? RETRY_FATAL : RETRY_TRANSIENT;
    if (st == 429)
        return RETRY_THROTTLED;
    if (st >= 500)
        return RETRY_TRANSIENT;
    if (st != 200)
        return RETRY_FATAL;
    v = aws_cred_from_json(b->ptr, b->len, "Token", false, false, &tmp, why, sizeof why) == 0
            ? RETRY_OK
            : RETRY_TRANSIENT;
    aws_cred_clear(&tmp);
    return v;
}

static void call_free(struct container_call *c)
{
    if (c->authz) {
        OPENSSL_cleanse(c->authz, strlen(c->authz));
        free(c->authz);
    }
    free(c);
}

static void on_done(struct http_req *req, int err, enum retry_verdict v, int attempts, void *arg)
{
    struct container_call *c = arg;
    struct aws_cred cred = { 0 };
    char why[700], detail[256];
    int rc;

    if (err || !req) {
        snprintf(why, sizeof why, "container endpoint %.300s: %s (%d attempt%s)", c->url,
                 err == -ECANCELED ? "cancelled"
                 : req && http_req_error(req)[0] ? http_req_error(req) : strerror(-err),
                 attempts, attempts == 1 ? "" : "s");
        c->cb(err ? err : -EIO, NULL, why, c->arg);
    } else if (http_req_status(req) != 200) {
        snprintf(why, sizeof why, "container endpoint %.300s: HTTP %ld (%d attempt%s)", c->url,
                 http_req_status(req), attempts, attempts == 1 ? "" : "s");
        c->cb(http_req_status(req) == 401 || http_req_status(req) == 403 ? -EACCES : -EPROTO,
              NULL, why, c->arg);
    } else {
        const struct buf *b = http_req_body(req);

        rc = aws_cred_from_json(b->ptr, b->len, "Token", false, false, &cred, detail,
                                sizeof detail);
        if (rc == 0) {
            c->cb(0, &cred, "", c->arg);
        } else {
            snprintf(why, sizeof why, "container endpoint %.300s: %s", c->url, detail);
            c->cb(rc, NULL, why, c->arg);
        }
        aws_cred_clear(&cred);
    }
    call_free(c);
}

struct container_call *container_fetch(uv_loop_t *loop, struct http *h,
                                       const struct container_cfg *cfg, container_cb *cb,
                                       void *arg, char *why, size_t whylen)
{
    struct container_call *c = calloc(1, sizeof *c);
    int rc = 0;

    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    snprintf(c->url, sizeof c->url, "%s", cfg->url);
    c->cb = cb;
    c->arg = arg;
    if (cfg->token_file[0])
        rc = read_token(cfg->token_file, &c->authz, why, whylen);
    else if (cfg->have_token && !(c->authz = strdup(cfg->token)))
        rc = -ENOMEM;
    if (rc == 0 && c->authz && strpbrk(c->authz, "\r\n")) {
        snprintf(why, whylen, "container endpoint: the authorization token %s holds a line break",
                 cfg->token_file[0] ? "file" : "variable");
        rc = -EINVAL;
    }
    if (rc == 0 &&
        !(c->rc = retry_call_start(loop, h, &retry_standard, NULL, build, judge, on_done, c))) {
        snprintf(why, whylen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc < 0) {
        call_free(c);
        return NULL;
    }
    return c;
}

void container_cancel(struct container_call *c)
{
    if (c)
        retry_call_cancel(c->rc);
}
