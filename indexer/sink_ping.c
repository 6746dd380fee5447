/* sink_ping — one request to the engine outside the batches, with the
 * sink's auth (sink_call), and the ping (GET /, or HEAD /<index> on
 * OpenSearch Serverless, which has no GET /). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds.h"
#include "aws/httpsign.h"
#include "indexer/sink_int.h"

static void on_call_done(struct http_req *req, int err, void *arg)
{
    struct call *p = arg;
    struct sink *s = p->s;
    long status = err < 0 ? 0 : http_req_status(req);
    const struct buf *body = req ? http_req_body(req) : NULL;

    list_remove(&p->link);
    if (p->ping)
        p->ping(p->arg, err < 0 ? err : status >= 200 && status < 300 ? 0 : (int)status);
    else
        p->cb(p->arg, err < 0 ? err : 0, status, body && body->ptr ? body->ptr : "",
              body ? body->len : 0);
    free(p);
    sink_maybe_finish(s);
}

static void call_send(struct call *p)
{
    int rc = http_send(p->s->http, p->req, on_call_done, p);

    if (rc < 0) {
        p->req = NULL;
        on_call_done(NULL, rc, p);
    }
}

static void on_creds_call(const struct sigv4_key *key, int err, void *arg)
{
    struct call *p = arg;
    struct sink *s = p->s;

    p->signing = false;
    if (p->canceled)
        err = -ECANCELED;
    else if (err == 0)
        err = httpsign_sigv4(p->req, key, s->o.sigv4_region, s->o.sigv4_service, time(NULL),
                            strcmp(s->o.sigv4_service, "aoss") == 0);
    if (err < 0) {
        http_req_free(p->req);
        p->req = NULL;
        on_call_done(NULL, err, p);
        return;
    }
    call_send(p);
}

/* Builds p's request and sends it (signed first with SigV4).  p is linked
 * in s->calls from here on; a failure to send is reported through it. */
static int call_start(struct sink *s, struct call *p, const char *method, const char *url,
                      const char *ctype, const char *body, size_t len, size_t max_reply)
{
    int rc;
    char *copy = NULL;

    p->s = s;
    p->req = http_req_new(method, url);
    rc = p->req ? sink_add_auth(s, p->req) : -ENOMEM;
    if (rc == 0 && ctype)
        rc = http_req_header(p->req, "Content-Type", ctype);
    if (rc == 0 && body && !(copy = malloc(len + 1)))
        rc = -ENOMEM;
    if (rc < 0) {
        http_req_free(p->req);
        free(p);
        return rc;
    }
    if (copy) {
        memcpy(copy, body, len);
        copy[len] = '\0';
        http_req_body_take(p->req, copy, len);
    }
    http_req_timeout(p->req, s->o.request_timeout_ms);
    if (max_reply)
        http_req_max_response(p->req, max_reply);
    list_push_head(&s->calls, &p->link);
    if (s->o.auth == SINK_AUTH_SIGV4) {
        p->signing = true;
        rc = creds_get(s->creds, on_creds_call, p);
        if (rc < 0)
            on_creds_call(NULL, rc, p);
        return 0;
    }
    call_send(p);
    return 0;
}

int sink_call(struct sink *s, const char *method, const char *path_query, const char *ctype,
              const char *body, size_t len, size_t max_reply, sink_reply_cb *cb, void *arg)
{
    struct call *p;
    char *url;
    int rc;

    if (s->closing)
        return -ESHUTDOWN;
    p = calloc(1, sizeof(*p));
    url = p ? sink_url_join(s->url, path_query, NULL) : NULL;
    if (!url) {
        free(p);
        return -ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    rc = call_start(s, p, method, url, ctype, body, len, max_reply);
    free(url);
    return rc;
}

int sink_ping(struct sink *s, void (*cb)(void *arg, int rc), void *arg)
{
    struct call *p;

    if (s->closing)
        return -ESHUTDOWN;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->ping = cb;
    p->arg = arg;
    return call_start(s, p, s->ping_method, s->ping_url, NULL, NULL, 0, 0);
}
