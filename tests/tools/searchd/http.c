#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* HTTP: request heads, bodies, dispatch                                    */

static int parse_head(char *base, size_t len, struct head *h)
{
    char *p = base, *e = base + len, *eol;

    memset(h, 0, sizeof(*h));
    eol = memchr(p, '\r', (size_t)(e - p));
    if (!eol || eol + 1 >= e || eol[1] != '\n')
        return -EINVAL;
    *eol = '\0';
    char *sp1 = strchr(p, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 - p > 15 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -EINVAL;
    *sp1 = *sp2 = '\0';
    h->method = 0;
    h->target = (uint32_t)(sp1 + 1 - base);
    h->minor = sp2[8] == '0' ? 0 : 1;
    p = eol + 2;
    while (p < e) {
        eol = memchr(p, '\r', (size_t)(e - p));
        if (!eol || eol + 1 >= e || eol[1] != '\n')
            return -EINVAL;
        if (eol == p)
            break; /* the empty line */
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (!colon || colon == p || *p == ' ' || *p == '\t' || h->nhdr == MAX_HDRS)
            return -EINVAL;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        for (char *t = eol - 1; t >= v && (*t == ' ' || *t == '\t'); t--)
            *t = '\0';
        h->hdr[h->nhdr++] = (struct hoff){ (uint32_t)(p - base), (uint32_t)(v - base) };
        if (strcasecmp(p, "content-length") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || end == v || *end || (h->has_cl && h->cl != n))
                return -EINVAL;
            h->cl = (size_t)n;
            h->has_cl = true;
        } else if (strcasecmp(p, "transfer-encoding") == 0) {
            if (strcasecmp(v, "chunked") != 0)
                return -EINVAL;
            h->chunked = true;
        } else if (strcasecmp(p, "expect") == 0) {
            h->expect = strcasecmp(v, "100-continue") == 0;
        } else if (strcasecmp(p, "connection") == 0) {
            h->conn_close = strcasestr(v, "close") != NULL;
            h->conn_keep = strcasestr(v, "keep-alive") != NULL;
        }
        p = eol + 2;
    }
    if (h->chunked && h->has_cl)
        return -EINVAL;
    return 0;
}

/* Gunzips into out (bounded by the body cap). */
static int inflate_body(const char *p, size_t n, struct buf *out)
{
    z_stream z;
    int zr = Z_OK, rc = 0;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    while (zr != Z_STREAM_END) {
        if ((rc = buf_reserve(out, 64 * 1024)) < 0)
            break;
        z.next_out = (Bytef *)out->ptr + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        size_t before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        out->len += before - z.avail_out;
        out->ptr[out->len] = '\0';
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
            rc = -EBADMSG;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

static void reply_too_large(struct conn *c, size_t got)
{
    char reason[200];

    snprintf(reason, sizeof(reason),
             "request body is too large: [%zu] bytes, the limit is [%zu] (http.max_content_length)",
             got, srv.set.max_body);
    reply_error(c, 413, "content_too_long_exception", reason);
}

static bool content_type_ok(const char *ct)
{
    static const char *const ok[] = { "application/json", "application/x-ndjson",
                                      "application/vnd.elasticsearch+json",
                                      "application/vnd.elasticsearch+x-ndjson" };
    size_t n;

    if (!ct)
        return false;
    n = strcspn(ct, "; \t");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strlen(ok[i]) == n && strncasecmp(ct, ok[i], n) == 0)
            return true;
    return false;
}

/* Handles one complete request whose head and body are in c->in. */
static void dispatch(struct conn *c, const char *body, size_t body_len)
{
    struct request r;
    struct buf inflated;
    struct fault f;
    bool has_fault = false;
    char *base = c->in.ptr;
    const char *ce, *ae;

    memset(&r, 0, sizeof(r));
    buf_init(&inflated, srv.set.max_body);
    c->last_status = 0;
    r.method = base + c->h.method;
    r.path = base + c->h.target;
    for (size_t i = 0; i < c->h.nhdr; i++)
        r.hdrs[i] = (struct hdr){ base + c->h.hdr[i].name, base + c->h.hdr[i].value };
    r.nhdr = c->h.nhdr;
    char *q = strchr(r.path, '?');
    if (q)
        *q = '\0';
    r.query = q ? q + 1 : "";
    r.body = r.data = body;
    r.body_len = r.data_len = body_len;
    c->is_head = is(r.method, "HEAD");
    ae = req_header(&r, "accept-encoding");
    c->gzip_ok = ae && strcasestr(ae, "gzip");

    if (strncmp(r.path, "/_double/", 9) == 0) {
        c->gzip_ok = false;
        handle_control(c, &r);
        goto out;
    }
    srv.st.body_bytes += body_len;
    if (split_path(&r) < 0) {
        r.route = RT_OTHER;
        reply_no_handler(c, &r);
        goto count;
    }
    r.route = classify(&r);
    ce = req_header(&r, "content-encoding");
    if (ce && body_len && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "deflate") == 0)) {
        int rc = inflate_body(body, body_len, &inflated);
        if (rc == -E2BIG) {
            reply_too_large(c, srv.set.max_body + 1);
            goto count;
        }
        if (rc < 0) {
            reply_error(c, 400, "illegal_argument_exception", "failed to decompress the body");
            goto count;
        }
        r.data = inflated.ptr;
        r.data_len = inflated.len;
    }
    if (!check_auth(c, &r))
        goto count;
    if (r.data_len && !content_type_ok(req_header(&r, "content-type"))) {
        char msg[300];
        const char *ct = req_header(&r, "content-type");
        if (ct)
            snprintf(msg, sizeof(msg), "Content-Type header [%.200s] is not supported", ct);
        else
            snprintf(msg, sizeof(msg), "Content-Type header is missing");
        reply_json(c, 406, json_pack("{s:s, s:i}", "error", msg, "status", 406), NULL);
        goto count;
    }
    has_fault = fault_take(r.route, &f);
    if (has_fault) {
        c->delay_ms = f.delay_ms;
        switch (f.kind) {
        case FK_DROP:
            c->delay_ms = 0;
            conn_close(c);
            goto count;
        case FK_STATUS:
            reply_injected(c, &f);
            goto count;
        case FK_RESET:
            c->reset_after = true;
            break;
        case FK_DELAY:
        case FK_ITEMS:
            break;
        }
    }
    route_request(c, &r, has_fault && f.kind == FK_ITEMS ? &f : NULL);
count:
    if (c->last_status >= 100 && c->last_status < 600)
        srv.st.requests[r.route][c->last_status]++;
    reqlog_add(&r, c->last_status);
out:
    free_segs(&r);
    buf_close(&inflated);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->handles > 0)
        return;
    free(c->pend.head);
    free(c->pend.body);
    buf_close(&c->in);
    free(c);
}

/* Closes both handles (a reset when reset_after); safe to call twice.  The
 * memory goes in the last close callback, after libuv cancels writes. */
void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else if (srv.conns == c)
        srv.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (!c->reset_after || uv_tcp_close_reset(&c->tcp, on_handle_closed) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

void conns_close_all(struct conn *except)
{
    struct conn *n;

    for (struct conn *c = srv.conns; c; c = n) {
        n = c->next;
        if (c != except)
            conn_close(c);
    }
}

static void consume(struct conn *c, size_t n)
{
    if (n < c->in.len)
        memmove(c->in.ptr, c->in.ptr + n, c->in.len - n);
    buf_truncate(&c->in, c->in.len - n);
    if (c->in.len == 0 && c->in.cap > 4 * READ_CHUNK)
        buf_close(&c->in); /* don't keep a large body's buffer per idle connection */
}

/* De-chunks in place.  1: complete, 0: need more, -EINVAL, -E2BIG. */
static int dechunk(struct conn *c)
{
    for (;;) {
        char *p = c->in.ptr + c->raw_pos;
        size_t avail = c->in.len - c->raw_pos;
        char *eol;

        switch (c->ch) {
        case CH_SIZE: {
            size_t size = 0;
            int digits = 0;
            if (!(eol = memmem(p, avail, "\r\n", 2)))
                return avail > 1024 ? -EINVAL : 0;
            for (char *q = p; q < eol && hex_value(*q) >= 0; q++, digits++) {
                if (size > (SIZE_MAX >> 4))
                    return -E2BIG;
                size = size * 16 + (size_t)hex_value(*q);
            }
            if (!digits)
                return -EINVAL;
            c->raw_pos += (size_t)(eol - p) + 2;
            if (size == 0) {
                c->ch = CH_TRAILER;
                break;
            }
            if (size > srv.set.max_body || c->dec_end - c->head_len > srv.set.max_body - size)
                return -E2BIG;
            c->chunk_left = size;
            c->ch = CH_DATA;
            break;
        }
        case CH_DATA: {
            size_t n = avail < c->chunk_left ? avail : c->chunk_left;
            if (n == 0)
                return 0;
            if (c->dec_end != c->raw_pos)
                memmove(c->in.ptr + c->dec_end, p, n);
            c->dec_end += n;
            c->raw_pos += n;
            c->chunk_left -= n;
            if (c->chunk_left)
                return 0;
            c->ch = CH_DATA_CRLF;
            break;
        }
        case CH_DATA_CRLF:
            if (avail < 2)
                return 0;
            if (p[0] != '\r' || p[1] != '\n')
                return -EINVAL;
            c->raw_pos += 2;
            c->ch = CH_SIZE;
            break;
        case CH_TRAILER:
            if (!(eol = memmem(p, avail, "\r\n", 2)))
                return avail > HEAD_MAX ? -EINVAL : 0;
            c->raw_pos += (size_t)(eol - p) + 2;
            if (eol == p)
                return 1;
            break;
        }
    }
}

static void bad_request(struct conn *c, const char *why)
{
    c->close_after = true;
    reply_error(c, 400, "illegal_argument_exception", why);
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void send_continue(struct conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *h = strdup(cont);

    if (h)
        write_now(c, h, sizeof(cont) - 1, NULL, 0);
}

/* Parses and answers whatever complete requests the buffer holds. */
void conn_drive(struct conn *c)
{
    while (!c->busy && !c->closing) {
        const char *body;
        size_t blen, end;

        if (c->skip_left) {
            size_t n = c->in.len < c->skip_left ? c->in.len : c->skip_left;
            consume(c, n);
            c->skip_left -= n;
            if (c->skip_left)
                return;
            reply_too_large(c, c->h.cl);
            srv.st.requests[RT_OTHER][413]++;
            continue;
        }
        if (!c->head_len) {
            char *hend;
            while (c->in.len >= 2 && c->in.ptr[0] == '\r' && c->in.ptr[1] == '\n')
                consume(c, 2);
            if (!c->in.len || !(hend = memmem(c->in.ptr, c->in.len, "\r\n\r\n", 4))) {
                if (c->in.len > HEAD_MAX)
                    bad_request(c, "the request head is too long");
                return;
            }
            c->last_status = 0;
            c->replied = false;
            if (parse_head(c->in.ptr, (size_t)(hend - c->in.ptr) + 4, &c->h) < 0) {
                bad_request(c, "malformed request head");
                return;
            }
            c->head_len = (size_t)(hend - c->in.ptr) + 4;
            c->close_after = c->h.conn_close || (c->h.minor == 0 && !c->h.conn_keep);
            if (c->h.has_cl && c->h.cl > srv.set.max_body) {
                if (c->h.expect) { /* the body will not come: answer and close */
                    c->close_after = true;
                    reply_too_large(c, c->h.cl);
                    uv_read_stop((uv_stream_t *)&c->tcp);
                    return;
                }
                consume(c, c->head_len);
                c->head_len = 0;
                c->skip_left = c->h.cl;
                continue;
            }
            if (c->h.expect && (c->h.chunked || c->h.cl > 0))
                send_continue(c);
            if (c->h.has_cl)
                buf_reserve(&c->in, c->h.cl); /* one allocation for the body */
            c->ch = CH_SIZE;
            c->raw_pos = c->dec_end = c->head_len;
        }
        if (c->h.chunked) {
            int rc = dechunk(c);
            if (rc == 0)
                return;
            if (rc == -E2BIG) {
                c->close_after = true;
                reply_too_large(c, c->dec_end - c->head_len + c->chunk_left);
                uv_read_stop((uv_stream_t *)&c->tcp);
                return;
            }
            if (rc < 0) {
                bad_request(c, "malformed chunked body");
                return;
            }
            body = c->in.ptr + c->head_len;
            blen = c->dec_end - c->head_len;
            end = c->raw_pos;
        } else {
            blen = c->h.has_cl ? c->h.cl : 0;
            if (c->in.len - c->head_len < blen)
                return;
            body = c->in.ptr + c->head_len;
            end = c->head_len + blen;
        }
        dispatch(c, body, blen);
        if (c->closing)
            return;
        consume(c, end);
        c->head_len = 0;
        if (c->close_after) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            return;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct conn *c = h->data;

    if (buf_reserve(&c->in, READ_CHUNK) < 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(c->in.ptr + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;

    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->in.len += (size_t)nread;
    c->in.ptr[c->in.len] = '\0';
    srv.st.bytes_received += (uint64_t)nread;
    conn_drive(c);
}

void on_connection(uv_stream_t *l, int status)
{
    struct conn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    buf_init(&c->in, BUF_NOMAX);
    uv_tcp_init(srv.loop, &c->tcp);
    uv_timer_init(srv.loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv.conns;
    if (srv.conns)
        srv.conns->prev = c;
    srv.conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    srv.st.connections++;
    if (now_ms() < srv.down_until_ms) { /* "down": reset at once */
        c->reset_after = true;
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}
