/* sink_ping — checks the engine answers: GET / with the sink's auth. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds.h"
#include "aws/httpsign.h"
#include "indexer/sink_int.h"

/* ---- ping ---- */

static void on_ping_done(struct http_req *req, int err, void *arg)
{
    struct ping *p = arg;
    struct sink *s = p->s;
    long status = err < 0 ? 0 : http_req_status(req);
    int rc = err < 0 ? err : status >= 200 && status < 300 ? 0 : (int)status;

    if (p->prev)
        p->prev->next = p->next;
    else
        s->pings = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->cb(p->arg, rc);
    free(p);
    sink_maybe_finish(s);
}

static void ping_send(struct ping *p)
{
    int rc = http_send(p->s->http, p->req, on_ping_done, p);

    if (rc < 0) {
        p->req = NULL;
        on_ping_done(NULL, rc, p);
    }
}

static void on_creds_ping(const struct sigv4_key *key, int err, void *arg)
{
    struct ping *p = arg;
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
        on_ping_done(NULL, err, p);
        return;
    }
    ping_send(p);
}

int sink_ping(struct sink *s, void (*cb)(void *arg, int rc), void *arg)
{
    struct ping *p;
    int rc;

    if (s->closing)
        return -ESHUTDOWN;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->s = s;
    p->cb = cb;
    p->arg = arg;
    p->req = http_req_new("GET", s->ping_url);
    rc = p->req ? sink_add_auth(s, p->req) : -ENOMEM;
    if (rc < 0) {
        http_req_free(p->req);
        free(p);
        return rc;
    }
    http_req_timeout(p->req, s->o.request_timeout_ms);
    p->next = s->pings;
    if (s->pings)
        s->pings->prev = p;
    s->pings = p;
    if (s->o.auth == SINK_AUTH_SIGV4) {
        p->signing = true;
        rc = creds_get(s->creds, on_creds_ping, p);
        if (rc < 0)
            on_creds_ping(NULL, rc, p);
        return 0;
    }
    ping_send(p);
    return 0;
}
