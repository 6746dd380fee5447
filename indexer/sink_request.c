/* sink_request — a batch's bulk request: the body compressed (gzip, in the
 * thread pool), the auth header (basic, API key) or a SigV4 signature, then
 * sent; and the URLs and the auth header made at setup.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "aws/creds.h"
#include "aws/httpsign.h"
#include "base/log.h"
#include "base/util.h"
#include "indexer/sink_int.h"

/* ---- sending ---- */

static int gzip_body(const struct buf *in, struct buf *out)
{
    z_stream z;
    int rc;

    /* In the thread pool (a 5 MB body takes tens of ms), at the fastest level. */
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    rc = buf_reserve(out, deflateBound(&z, in->len));
    if (rc == 0) {
        z.next_in = (Bytef *)in->ptr;
        z.avail_in = (uInt)in->len;
        z.next_out = (Bytef *)out->ptr;
        z.avail_out = (uInt)(out->cap - 1);
        rc = deflate(&z, Z_FINISH) == Z_STREAM_END ? 0 : -EIO;
        if (rc == 0) {
            out->len = z.total_out;
            out->ptr[out->len] = '\0';
        }
    }
    deflateEnd(&z);
    return rc;
}

/* A batch in the inflight list that was not sent: canceled by the deadline
 * (its items were reported then) it is dropped, else it goes again later. */
static void drop_canceled(struct sink *s, struct batch *b)
{
    http_req_free(b->req);
    sink_inflight_out(s, b);
    sink_batch_free(b);
    sink_maybe_finish(s);
}

static void retry_unsent(struct sink *s, struct batch *b)
{
    http_req_free(b->req);
    b->req = NULL;
    sink_inflight_out(s, b);
    s->bytes_inflight -= b->bytes_all;
    sink_retry_whole(s, b);
}

static void send_req(struct sink *s, struct batch *b)
{
    int rc;

    sink_batch_set_state(b, B_INFLIGHT, false);
    b->sent_ns = uv_hrtime();
    rc = http_send(s->http, b->req, sink_on_bulk_done, b);
    if (rc < 0) {
        log_warn("bulk request not sent: %s", strerror(-rc));
        b->req = NULL; /* http_send freed it */
        s->st.bulk_requests[SINK_REQ_NET]++;
        retry_unsent(s, b);
    }
}

static void on_creds_bulk(const struct sigv4_key *key, int err, void *arg)
{
    struct batch *b = arg;
    struct sink *s = b->s;
    bool aoss = strcmp(s->o.sigv4_service, "aoss") == 0;

    if (b->state == B_CANCELED) { /* the deadline passed meanwhile */
        drop_canceled(s, b);
        return;
    }
    if (err == 0)
        err = httpsign_sigv4(b->req, key, s->o.sigv4_region, s->o.sigv4_service, time(NULL), aoss);
    if (err < 0) {
        log_error("bulk request not signed: no usable AWS credentials (%s)", strerror(-err));
        retry_unsent(s, b);
        sink_dispatch(s);
        return;
    }
    send_req(s, b);
}

static void dry_run(struct sink *s, struct batch *b)
{
    if (fwrite(b->body.ptr, 1, b->body.len, stdout) != b->body.len || fflush(stdout) != 0)
        log_error("dry run: writing the bulk body to stdout failed");
    s->st.bulk_requests[SINK_REQ_2XX]++;
    for (size_t i = 0; i < b->n; i++)
        sink_finish(s, b->items[i], SINK_INDEXED);
    sink_batch_free(b);
}

int sink_add_auth(struct sink *s, struct http_req *req)
{
    if (s->authz)
        return http_req_header(req, "Authorization", s->authz);
    return 0;
}

/* Takes out the items whose send_by has passed (and what they replaced):
 * they are reported SINK_EXPIRED instead of being sent.  False when nothing
 * is left to send (b is freed). */
static bool drop_expired(struct sink *s, struct batch *b)
{
    uint64_t now = uv_now(s->loop);
    bool expired = false;

    for (size_t i = 0; i < b->n; i++) {
        struct item *it = b->items[i];

        if (!it->send_by || it->send_by > now)
            continue;
        expired = true;
        sink_finish(s, sink_batch_drop_item(b, i), SINK_EXPIRED);
    }
    return sink_batch_squeeze_or_free(b, expired);
}

/* b is in the inflight list (B_SIGNING) and its body is ready: build the
 * request, sign it when needed, send it. */
static void request_batch(struct sink *s, struct batch *b)
{
    struct http_req *req = NULL;
    int rc = 0;

    if (!(req = http_req_new("POST", s->bulk_url)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = http_req_header(req, "Content-Type", "application/x-ndjson");
    if (rc == 0 && s->o.gzip)
        rc = http_req_header(req, "Content-Encoding", "gzip");
    if (rc == 0)
        rc = sink_add_auth(s, req);
    if (rc < 0) {
        log_error("bulk request not built: %s", strerror(-rc));
        http_req_free(req);
        retry_unsent(s, b);
        return;
    }
    /* The body as it was built, or its compressed copy: no other copy. */
    if (s->o.gzip)
        http_req_body_ref(req, b->gz.ptr, b->gz.len);
    else
        http_req_body_ref(req, b->body.ptr, b->body.len);
    http_req_timeout(req, s->o.request_timeout_ms);
    /* filter_path may be ignored (SigV4 POSTs on Amazon OpenSearch Service):
     * leave room for full items with long reasons. */
    http_req_max_response(req, b->n > 1024 ? b->n * 4096 : (size_t)4 << 20);
    b->req = req;
    if (s->o.auth == SINK_AUTH_SIGV4) {
        rc = creds_get(s->creds, on_creds_bulk, b);
        if (rc < 0)
            on_creds_bulk(NULL, rc, b);
        return;
    }
    send_req(s, b);
}

static void gzip_work(uv_work_t *w)
{
    struct batch *b = container_of(w, struct batch, work);

    b->work_rc = gzip_body(&b->body, &b->gz);
}

static void gzip_after(uv_work_t *w, int status)
{
    struct batch *b = container_of(w, struct batch, work);
    struct sink *s = b->s;

    if (b->state == B_CANCELED) { /* the deadline passed meanwhile */
        drop_canceled(s, b);
        return;
    }
    if (status < 0 || b->work_rc < 0) {
        log_error("bulk body not compressed: %s", strerror(-(status < 0 ? status : b->work_rc)));
        retry_unsent(s, b);
        sink_dispatch(s);
        return;
    }
    request_batch(s, b);
}

void sink_send_batch(struct sink *s, struct batch *b)
{
    if (!drop_expired(s, b))
        return;
    if (s->o.dry_run) {
        dry_run(s, b);
        return;
    }
    /* Compressing, then signing: cancelable until sent. */
    sink_batch_set_state(b, B_SIGNING, false);
    s->bytes_inflight += b->bytes_all;
    if (s->o.gzip) {
        b->work_rc = 0;
        if (uv_queue_work(s->loop, &b->work, gzip_work, gzip_after) < 0) {
            gzip_work(&b->work); /* cannot happen with a live loop; do it here */
            gzip_after(&b->work, 0);
        }
        return;
    }
    request_batch(s, b);
}

/* Appends s percent-encoded: all but the unreserved characters (RFC 3986)
 * and those in keep, so that the URL and its SigV4 canonical form agree. */
static void put_escaped(struct buf *b, const char *s, const char *keep)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || (c && strchr(keep, c))) {
            buf_putc(b, (char)c);
        } else {
            buf_putc(b, '%');
            buf_putc(b, hex[c >> 4]);
            buf_putc(b, hex[c & 15]);
        }
    }
}

char *sink_url_join(const char *base, const char *path, const char *query)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, base);
    buf_puts(&b, path);
    if (query) {
        /* filter_path=a,b.*.c&x=y: '=' and '&' stay. */
        buf_putc(&b, '?');
        put_escaped(&b, query, "=&");
    }
    return buf_take(&b);
}

char *sink_url_segment(const char *base, const char *name)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, base);
    buf_putc(&b, '/');
    put_escaped(&b, name, "");
    return buf_take(&b);
}

char *sink_make_authz(const struct sink_opts *o)
{
    struct buf plain, out;
    char *res = NULL;

    buf_init(&plain, BUF_NOMAX);
    buf_init(&out, BUF_NOMAX);
    if (o->auth == SINK_AUTH_APIKEY) {
        if (buf_printf(&out, "ApiKey %s", o->api_key ? o->api_key : "") == 0)
            res = buf_take(&out);
    } else if (o->auth == SINK_AUTH_BASIC) {
        if (buf_printf(&plain, "%s:%s", o->username ? o->username : "",
                       o->password ? o->password : "") == 0 &&
            buf_puts(&out, "Basic ") == 0 && buf_reserve(&out, 4 * (plain.len / 3 + 1)) == 0) {
            int n = EVP_EncodeBlock((unsigned char *)out.ptr + out.len,
                                    (const unsigned char *)plain.ptr, (int)plain.len);

            out.len += (size_t)n;
            out.ptr[out.len] = '\0';
            res = buf_take(&out);
        }
    }
    if (plain.ptr)
        OPENSSL_cleanse(plain.ptr, plain.len);
    if (out.ptr)
        OPENSSL_cleanse(out.ptr, out.len);
    buf_close(&plain);
    buf_close(&out);
    return res;
}
