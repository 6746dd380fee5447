/* http — HTTP/1.1 client on curl multi, driven by a libuv loop.
 *
 * One struct http per loop: a curl multi handle, one uv_poll_t per socket,
 * one uv_timer_t for curl's timeouts.  Connections are kept alive and reused.
 * Nothing here blocks the loop.
 *
 * A request is built with http_req_new(), given headers and a body, then
 * handed to http_send(), which owns it from then on, also when it fails.
 * When the transfer ends, the callback runs once with the request; after the
 * callback returns, the request is freed.  The callback reads the outcome with
 * http_req_status(), http_req_body(), http_req_header().
 *
 * err passed to the callback: 0 when an HTTP response arrived (whatever its
 * status), else a negative errno-style code: -ETIMEDOUT, -ECONNREFUSED,
 * -ECONNRESET, -E2BIG (response over the request's ceiling), -ECANCELED
 * (http_close or http_cancel), -EPROTO (TLS or protocol failure), -EIO (other);
 * http_req_error() then has curl's text.
 */
#ifndef DDB2ES_HTTP_H
#define DDB2ES_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "base/buf.h"

struct http;
struct http_req;

typedef void http_done_cb(struct http_req *req, int err, void *arg);

struct http_opts {
    bool tls_verify;        /* default true; false only by explicit config */
    const char *ca_file;    /* extra CA bundle, or NULL */
    long connect_timeout_ms;/* default 5000 */
    long max_host_conns;    /* 0 = curl's default */
    const char *user_agent; /* default "ddb2es/<version>" */
};

/* One line on the libcurl linked in, for `ddb2es --version`: its version, its
 * TLS library, where it comes from (the project's own build of Debian's curl
 * source, scripts/curl.sh, or a shared library) and the protocols it has. */
void http_libcurl_line(char *buf, size_t size);

/* A new client on loop.  Returns NULL on failure. */
struct http *http_new(uv_loop_t *loop, const struct http_opts *opts);
/* Cancels every request in flight (their callbacks run with -ECANCELED),
 * cleans up curl, and closes every uv handle it opened; done(arg) runs when the
 * last handle is closed, after which the loop holds nothing of http's. */
void http_close(struct http *h, void (*done)(void *arg), void *arg);

/* method: "GET", "POST", "PUT", "HEAD", "DELETE".  NULL if out of memory. */
struct http_req *http_req_new(const char *method, const char *url);
void http_req_free(struct http_req *r); /* only for a request never sent */
/* Adds "Name: value"; replaces a header of the same name (case-insensitive). */
int http_req_header(struct http_req *r, const char *name, const char *value);
/* The body: _take owns ptr (free()d with the request); _ref borrows it, and
 * the caller keeps it alive and unchanged until the callback has run. */
void http_req_body_take(struct http_req *r, char *ptr, size_t len);
void http_req_body_ref(struct http_req *r, const char *ptr, size_t len);
void http_req_timeout(struct http_req *r, long total_ms);      /* default 30000 */
void http_req_max_response(struct http_req *r, size_t bytes);  /* default 1 MiB */
void http_req_no_proxy(struct http_req *r);  /* never through a proxy (metadata endpoints) */
/* What the signer (aws/httpsign.h) reads and changes: the request's body
 * and headers, and a few bits it keeps with the request. */
const char *http_req_payload(const struct http_req *r, size_t *len);
size_t http_req_nheaders(const struct http_req *r);
void http_req_header_at(const struct http_req *r, size_t i, const char **name, const char **value);
bool http_req_has_header(const struct http_req *r, const char *name);
void http_req_header_remove(struct http_req *r, const char *name);
unsigned http_req_marks(const struct http_req *r);
void http_req_set_marks(struct http_req *r, unsigned marks);
void *http_req_userdata(const struct http_req *r);
void http_req_set_userdata(struct http_req *r, void *p);

/* Starts the transfer; from here the request belongs to http.  Returns 0, or
 * a negative errno (the request is freed and cb is not called). */
int http_send(struct http *h, struct http_req *r, http_done_cb *cb, void *arg);
/* Aborts one request in flight; its callback runs with -ECANCELED before
 * http_cancel returns. */
void http_cancel(struct http_req *r);

/* After completion (inside the callback). */
long http_req_status(const struct http_req *r);               /* 0 if no response */
const struct buf *http_req_body(const struct http_req *r);    /* response body */
const char *http_req_header_get(const struct http_req *r, const char *name); /* response header */
const char *http_req_error(const struct http_req *r);         /* curl's message, or "" */
const char *http_req_url(const struct http_req *r);
const char *http_req_method(const struct http_req *r);
double http_req_seconds(const struct http_req *r);             /* total transfer time */

#endif
