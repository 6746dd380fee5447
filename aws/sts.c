#include "aws/sts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/buf.h"
#include "base/http.h"
#include "aws/httpsign.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "base/secret.h"

#define STS_TIMEOUT_MS 10000L
#define STS_MAX_REPLY (64 * 1024)

struct sts_call {
    uv_loop_t *loop;
    struct http *http;
    struct retry_call *rc;
    char *url, *region, *body;
    char *key_id, *key_secret, *key_token; /* AssumeRole's source key; NULL = unsigned */
    time_t (*now)(void);
    const char *action;
    sts_done_cb *done;
    void *arg;
};

static void put_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

char *sts_form(const struct sts_params *p)
{
    struct buf b;
    char *out;

    buf_init(&b, BUF_NOMAX);
    buf_printf(&b, "Action=%s&Version=2011-06-15&RoleArn=",
               p->web_identity_token ? "AssumeRoleWithWebIdentity" : "AssumeRole");
    put_encoded(&b, p->role_arn);
    buf_puts(&b, "&RoleSessionName=");
    put_encoded(&b, p->session_name);
    if (p->external_id && *p->external_id) {
        buf_puts(&b, "&ExternalId=");
        put_encoded(&b, p->external_id);
    }
    if (p->duration_seconds > 0)
        buf_printf(&b, "&DurationSeconds=%ld", p->duration_seconds);
    if (p->web_identity_token) {
        buf_puts(&b, "&WebIdentityToken=");
        put_encoded(&b, p->web_identity_token);
    }
    /* buf appends nothing once out of memory: a short body means failure. */
    out = b.ptr && strstr(b.ptr, "&RoleSessionName=") ? buf_take(&b) : NULL;
    buf_close(&b);
    return out;
}

static void decode_entities(char *s)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
                 { "&apos;", '\'' } };
    char *w = s;

    for (const char *r = s; *r;) {
        bool done = false;

        if (*r == '&')
            for (size_t i = 0; i < sizeof ents / sizeof ents[0]; i++) {
                size_t n = strlen(ents[i].ent);

                if (strncmp(r, ents[i].ent, n) == 0) {
                    *w++ = ents[i].c;
                    r += n;
                    done = true;
                    break;
                }
            }
        if (!done)
            *w++ = *r++;
    }
    *w = '\0';
}

int sts_xml_text(const char *xml, size_t xlen, const char *name, char *out, size_t len)
{
    char open[80], close[80];
    const char *a, *b;
    size_t n;

    snprintf(open, sizeof open, "<%s>", name);
    snprintf(close, sizeof close, "</%s>", name);
    if (!xml || !(a = memmem(xml, xlen, open, strlen(open))))
        return -ENOENT;
    a += strlen(open);
    if (!(b = memmem(a, xlen - (size_t)(a - xml), close, strlen(close))))
        return -ENOENT;
    n = (size_t)(b - a);
    if (n >= len)
        n = len - 1;
    memcpy(out, a, n);
    out[n] = '\0';
    decode_entities(out);
    return 0;
}

int sts_parse(long status, const char *body, size_t len, struct aws_cred *out, char *code,
              size_t codelen, char *why, size_t whylen)
{
    char id[256], secret[512], token[4096], exp[64], msg[256] = "";
    const char *creds;
    size_t clen;
    int rc = -EPROTO;

    code[0] = '\0';
    aws_cred_clear(out);
    if (status != 200) {
        if (sts_xml_text(body, len, "Code", code, codelen) == 0)
            sts_xml_text(body, len, "Message", msg, sizeof msg);
        snprintf(why, whylen, "HTTP %ld%s%s%s%s", status, code[0] ? " " : "", code,
                 msg[0] ? ": " : "", msg);
        return status == 403 || status == 400 ? -EACCES : -EPROTO;
    }
    creds = body ? memmem(body, len, "<Credentials>", 13) : NULL;
    clen = creds ? len - (size_t)(creds - body) : 0;
    if (!creds || sts_xml_text(creds, clen, "AccessKeyId", id, sizeof id) < 0 ||
        sts_xml_text(creds, clen, "SecretAccessKey", secret, sizeof secret) < 0 ||
        sts_xml_text(creds, clen, "SessionToken", token, sizeof token) < 0 ||
        sts_xml_text(creds, clen, "Expiration", exp, sizeof exp) < 0) {
        snprintf(why, whylen, "the reply has no complete <Credentials>");
        goto out;
    }
    if (rfc3339_parse(exp, &out->expires) < 0) {
        snprintf(why, whylen, "the reply's Expiration is not an RFC 3339 time");
        goto out;
    }
    {
        time_t expires = out->expires;

        rc = aws_cred_set(out, id, secret, token);
        out->expires = expires;
    }
    if (rc < 0)
        snprintf(why, whylen, "out of memory");
out:
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(token, sizeof token);
    return rc;
}

enum retry_verdict sts_classify(long status, int err, const char *code)
{
    if (err)
        return err == -ECANCELED || err == -E2BIG ? RETRY_FATAL : RETRY_TRANSIENT;
    if (status == 200)
        return RETRY_OK;
    if (code && retry_code_throttling(code))
        return RETRY_THROTTLED;
    if ((code && retry_code_transient(code)) || status >= 500)
        return RETRY_TRANSIENT;
    if (status == 429)
        return RETRY_THROTTLED;
    return RETRY_FATAL;
}

static void call_free(struct sts_call *c)
{
    free(c->url);
    free(c->region);
    secret_free(&c->body);
    secret_free(&c->key_id);
    secret_free(&c->key_secret);
    secret_free(&c->key_token);
    free(c);
}

static struct http_req *build(int attempt, void *arg)
{
    struct sts_call *c = arg;
    struct http_req *r = http_req_new("POST", c->url);
    int rc = r ? 0 : -ENOMEM;

    if (rc == 0)
        rc = http_req_header(r, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8");
    if (rc == 0) {
        http_req_body_ref(r, c->body, strlen(c->body));
        http_req_timeout(r, STS_TIMEOUT_MS);
        http_req_max_response(r, STS_MAX_REPLY);
        if (c->key_id) {
            struct sigv4_key k = { c->key_id, c->key_secret, c->key_token };

            rc = httpsign_sigv4(r, &k, c->region, "sts", c->now ? c->now() : time(NULL), false);
        }
    }
    if (rc < 0) {
        http_req_free(r);
        return NULL;
    }
    return r;
}

static enum retry_verdict judge(struct http_req *req, int err, void *arg)
{
    struct sts_call *c = arg;
    const struct buf *b = http_req_body(req);
    long status = err ? 0 : http_req_status(req);
    char code[64] = "";

    if (!err && status != 200)
        sts_xml_text(b->ptr, b->len, "Code", code, sizeof code);
    if (!err && status != 200)
        log_debug("sts %s: HTTP %ld %s", c->action, status, code);
    return sts_classify(status, err, code);
}

static void on_done(struct http_req *req, int err, enum retry_verdict v, int attempts, void *arg)
{
    struct sts_call *c = arg;
    struct aws_cred cred = { 0 };
    char why[512], code[64], msg[400];

    if (err || !req) {
        snprintf(why, sizeof why, "%s to %s: %s", c->action, c->url,
                 err == -ECANCELED ? "cancelled"
                 : req && http_req_error(req)[0] ? http_req_error(req) : strerror(-err));
        c->done(err ? err : -EIO, NULL, why, c->arg);
    } else {
        const struct buf *b = http_req_body(req);
        int rc = sts_parse(http_req_status(req), b->ptr, b->len, &cred, code, sizeof code, msg,
                           sizeof msg);

        if (rc == 0) {
            c->done(0, &cred, "", c->arg);
        } else {
            snprintf(why, sizeof why, "%s to %s: %s%s", c->action, c->url, msg,
                     attempts > 1 ? " (after retries)" : "");
            c->done(rc, NULL, why, c->arg);
        }
        aws_cred_clear(&cred);
    }
    call_free(c);
}

struct sts_call *sts_call_start(uv_loop_t *loop, struct http *h, const struct sts_params *p,
                                sts_done_cb *done, void *arg)
{
    struct sts_call *c;
    size_t n;

    if (!loop || !h || !p || !p->url || !p->region || !p->role_arn || !p->session_name ||
        (!p->web_identity_token && !p->key))
        return NULL;
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    c->loop = loop;
    c->http = h;
    c->now = p->now;
    c->done = done;
    c->arg = arg;
    c->action = p->web_identity_token ? "AssumeRoleWithWebIdentity" : "AssumeRole";
    n = strlen(p->url);
    /* The request target is "/": make sure the URL has a path. */
    c->url = strchr(strstr(p->url, "://") ? strstr(p->url, "://") + 3 : p->url, '/')
                 ? strdup(p->url)
                 : (asprintf(&c->url, "%.*s/", (int)n, p->url) < 0 ? NULL : c->url);
    c->region = strdup(p->region);
    c->body = sts_form(p);
    if (p->key) {
        c->key_id = strdup(p->key->access_key_id);
        c->key_secret = strdup(p->key->secret_access_key);
        if (p->key->session_token && *p->key->session_token)
            c->key_token = strdup(p->key->session_token);
    }
    if (!c->url || !c->region || !c->body ||
        (p->key && (!c->key_id || !c->key_secret ||
                    (p->key->session_token && *p->key->session_token && !c->key_token))))
        goto fail;
    c->rc = retry_call_start(loop, h, &retry_standard, NULL, build, judge, on_done, c);
    if (!c->rc)
        goto fail;
    return c;
fail:
    call_free(c);
    return NULL;
}

void sts_call_cancel(struct sts_call *c)
{
    if (c)
        retry_call_cancel(c->rc); /* on_done frees c */
}
