/* fakehttp — see fakehttp.h.  One thread runs poll() over the listener, a
 * wake-up pipe and every connection.  Each connection is a small state
 * machine: read one request, record it, pick its reply, wait out the reply's
 * delay, write it without blocking, then read the next request. */
#include "tests/support/fakehttp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum conn_state {
    C_READ,    /* waiting for (the rest of) a request */
    C_DELAY,   /* reply chosen, waiting until due */
    C_WRITE,   /* writing out[] */
    C_HANG,    /* never answers; input ignored */
};

struct reply {
    int status;
    char *headers;
    char *body;
    size_t body_len;
    long delay_ms;
    enum fake_action action;
};

struct conn {
    int fd;
    enum conn_state state;
    char *in;               /* received bytes not yet consumed */
    size_t in_len, in_cap;
    char *out;              /* reply bytes */
    size_t out_len, out_off;
    struct reply reply;     /* while C_DELAY */
    bool head;              /* the request was HEAD: no body in the reply */
    bool close_after;       /* close once out[] is written */
    bool reset_after;       /* RST once out[] is written */
    bool sent_continue;
    int64_t due_ms;
};

struct fakehttp {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int lfd;
    int wake[2];
    int port;
    char url[64];
    bool stop;              /* under mu */

    /* Under mu. */
    struct reply *script;
    size_t nscript, script_head, script_cap;
    fake_handler *handler;
    void *handler_arg;
    struct fake_req **reqs;
    size_t nreqs, reqs_cap;
    size_t nconn;
    bool forget;            /* requests are not kept (fake_forget_requests) */
    char **strs;            /* fake_req_header results, freed by fake_stop */
    size_t nstrs, strs_cap;

    /* Server thread only. */
    struct conn **conns;
    size_t nconns, conns_cap;
};

static void die(const char *what)
{
    fprintf(stderr, "fakehttp: %s: %s\n", what, strerror(errno));
    abort();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        die("malloc");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("realloc");
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);

    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Grows an array of elem-sized items so that one more fits. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    *cap = *cap ? *cap * 2 : 8;
    return xrealloc(arr, *cap * elem);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reply_clear(struct reply *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static void reply_copy(struct reply *dst, const struct fake_reply *src)
{
    size_t len = src->body ? (src->body_len ? src->body_len : strlen(src->body)) : 0;

    dst->status = src->status;
    dst->headers = src->headers ? xstrndup(src->headers, strlen(src->headers)) : NULL;
    dst->body = xstrndup(src->body ? src->body : "", len);
    dst->body_len = len;
    dst->delay_ms = src->delay_ms;
    dst->action = src->action;
}

/* --- request parsing ---------------------------------------------------- */

/* Finds header name in a raw "Name: value\r\n" block; returns the value's
 * start and sets *len to its length (trimmed), or NULL. */
static const char *header_find(const char *block, size_t block_len, const char *name,
                               size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = block, *end = block + block_len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *v;

        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        if ((size_t)(line_end - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            v = p + nlen + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            while (line_end > v && (line_end[-1] == ' ' || line_end[-1] == '\t'))
                line_end--;
            *len = (size_t)(line_end - v);
            return v;
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}

static bool header_is(const char *block, size_t block_len, const char *name, const char *value)
{
    size_t len;
    const char *v = header_find(block, block_len, name, &len);

    return v && len == strlen(value) && strncasecmp(v, value, len) == 0;
}

static const char *memfind(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle));
}

/* Decodes a chunked body starting at p (n bytes available).  Returns the
 * number of bytes consumed when complete (body appended to *out), 0 when more
 * is needed, -1 when malformed. */
static long dechunk(const char *p, size_t n, char **out, size_t *out_len)
{
    size_t off = 0, total = 0;
    char *body = NULL;

    for (;;) {
        const char *eol = memfind(p + off, n - off, "\r\n");
        char *endp;
        unsigned long long sz;

        if (!eol)
            goto more;
        sz = strtoull(p + off, &endp, 16);
        if (endp == p + off)
            goto bad;
        off = (size_t)(eol - p) + 2;
        if (sz == 0) {
            /* Trailers, then an empty line. */
            for (;;) {
                const char *e = memfind(p + off, n - off, "\r\n");

                if (!e)
                    goto more;
                if (e == p + off) {
                    off += 2;
                    *out = body ? body : xstrndup("", 0);
                    *out_len = total;
                    return (long)off;
                }
                off = (size_t)(e - p) + 2;
            }
        }
        if (sz > n - off || n - off - sz < 2)
            goto more;
        body = xrealloc(body, total + sz + 1);
        memcpy(body + total, p + off, sz);
        total += sz;
        body[total] = '\0';
        off += sz + 2;
    }
more:
    free(body);
    return 0;
bad:
    free(body);
    return -1;
}

/* If in[] holds a complete request, records it into *req and returns the
 * bytes it used; 0 if incomplete; -1 if malformed.  *hdr_done is set once the
 * header block is complete (for 100-continue). */
static long parse_request(struct conn *c, struct fake_req *req, bool *hdr_done)
{
    const char *in = c->in, *hend = memfind(in, c->in_len, "\r\n\r\n");
    const char *rl_end, *sp1, *sp2, *hdrs, *v;
    size_t hdrs_len, vlen, mlen;

    *hdr_done = false;
    if (c->in_len > 0 && (in[0] < 'A' || in[0] > 'Z'))
        return -1; /* not HTTP (e.g. a TLS ClientHello): hang up at once */
    if (!hend)
        return c->in_len > (1u << 20) ? -1 : 0;
    *hdr_done = true;
    rl_end = memfind(in, c->in_len, "\r\n");
    sp1 = memchr(in, ' ', (size_t)(rl_end - in));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(rl_end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2)
        return -1;
    mlen = (size_t)(sp1 - in);
    if (mlen >= sizeof(req->method))
        return -1;
    hdrs = rl_end + 2;
    hdrs_len = (size_t)(hend + 2 - hdrs); /* keep the last header's CRLF */
    size_t body_off = (size_t)(hend + 4 - in);

    if (header_is(hdrs, hdrs_len, "Transfer-Encoding", "chunked")) {
        char *body;
        size_t blen;
        long used = dechunk(in + body_off, c->in_len - body_off, &body, &blen);

        if (used <= 0)
            return used;
        memcpy(req->method, in, mlen);
        req->method[mlen] = '\0';
        req->path = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
        req->headers = xstrndup(hdrs, hdrs_len);
        req->body = body;
        req->body_len = blen;
        return (long)(body_off + (size_t)used);
    }
    size_t clen = 0;
    if ((v = header_find(hdrs, hdrs_len, "Content-Length", &vlen)) != NULL) {
        char tmp[32], *endp;

        if (vlen == 0 || vlen >= sizeof(tmp))
            return -1;
        memcpy(tmp, v, vlen);
        tmp[vlen] = '\0';
        clen = strtoull(tmp, &endp, 10);
        if (*endp)
            return -1;
    }
    if (c->in_len - body_off < clen)
        return 0;
    memcpy(req->method, in, mlen);
    req->method[mlen] = '\0';
    req->path = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    req->headers = xstrndup(hdrs, hdrs_len);
    req->body = xstrndup(in + body_off, clen);
    req->body_len = clen;
    return (long)(body_off + clen);
}

/* --- replies ------------------------------------------------------------ */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
    }
}

static void out_append(struct conn *c, const void *p, size_t n, size_t *cap)
{
    if (c->out_len + n + 1 > *cap) {
        while (c->out_len + n + 1 > *cap)
            *cap = *cap ? *cap * 2 : 1024;
        c->out = xrealloc(c->out, *cap);
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Builds out[] from the chosen reply and switches to C_WRITE (or closes). */
static void reply_render(struct conn *c)
{
    struct reply *r = &c->reply;
    size_t cap = 0, hlen = r->headers ? strlen(r->headers) : 0;
    size_t body_n = c->head ? 0 : r->body_len;
    char line[128];
    int n;

    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", r->status, reason(r->status));
    out_append(c, line, (size_t)n, &cap);
    if (!header_find(r->headers ? r->headers : "", hlen, "Content-Length", &(size_t){ 0 })
        && !header_find(r->headers ? r->headers : "", hlen, "Transfer-Encoding", &(size_t){ 0 })) {
        n = snprintf(line, sizeof(line), "Content-Length: %zu\r\n", r->body_len);
        out_append(c, line, (size_t)n, &cap);
    }
    if (c->close_after)
        out_append(c, "Connection: close\r\n", 19, &cap);
    if (hlen)
        out_append(c, r->headers, hlen, &cap);
    out_append(c, "\r\n", 2, &cap);
    if (r->action == FAKE_RESET_MID) {
        body_n /= 2;
        c->reset_after = true;
    }
    if (body_n)
        out_append(c, r->body, body_n, &cap);
    reply_clear(r);
    c->state = C_WRITE;
}

/* Picks the reply for req: the script's head, else the handler, else 500. */
static void choose_reply(struct fakehttp *f, const struct fake_req *req, struct reply *out)
{
    fake_handler *h;
    void *harg;

    pthread_mutex_lock(&f->mu);
    if (f->script_head < f->nscript) {
        *out = f->script[f->script_head++];
        pthread_mutex_unlock(&f->mu);
        return;
    }
    h = f->handler;
    harg = f->handler_arg;
    pthread_mutex_unlock(&f->mu);
    if (h) {
        struct fake_reply fr = { .status = 200 };

        h(req, &fr, harg); /* without the lock: it may call fake_* accessors */
        reply_copy(out, &fr);
        return;
    }
    struct fake_reply def = { .status = 500, .body = "no scripted reply" };
    reply_copy(out, &def);
}

/* --- connections -------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    reply_clear(&c->reply);
    free(c);
}

static void conn_reset(struct conn *c)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };

    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c->fd);
    c->fd = -1;
}

static const struct fake_req *record(struct fakehttp *f, const struct fake_req *req)
{
    struct fake_req *copy = xmalloc(sizeof(*copy));

    *copy = *req;
    pthread_mutex_lock(&f->mu);
    f->reqs = grow(f->reqs, f->nreqs, &f->reqs_cap, sizeof(*f->reqs));
    f->reqs[f->nreqs++] = copy;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return copy;
}

/* Consumes complete requests from in[] while the connection is idle.
 * Returns false when the connection must be closed. */
static bool conn_process(struct fakehttp *f, struct conn *c)
{
    while (c->state == C_READ) {
        struct fake_req req;
        bool hdr_done, forget;
        long used;

        memset(&req, 0, sizeof(req));
        used = parse_request(c, &req, &hdr_done);
        if (used < 0)
            return false;
        if (used == 0) {
            /* A client waiting for 100 Continue gets it, so it never stalls. */
            if (hdr_done && !c->sent_continue) {
                const char *hend = memfind(c->in, c->in_len, "\r\n\r\n");

                if (header_is(c->in, (size_t)(hend + 2 - c->in), "Expect", "100-continue")) {
                    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

                    c->sent_continue = true;
                    if (send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL) < 0)
                        return false;
                }
            }
            return true;
        }
        memmove(c->in, c->in + used, c->in_len - (size_t)used);
        c->in_len -= (size_t)used;
        c->sent_continue = false;
        c->head = strcmp(req.method, "HEAD") == 0;
        c->close_after = header_is(req.headers, strlen(req.headers), "Connection", "close");
        pthread_mutex_lock(&f->mu);
        forget = f->forget;
        pthread_mutex_unlock(&f->mu);
        if (forget) {
            choose_reply(f, &req, &c->reply);
            free(req.path);
            free(req.headers);
            free(req.body);
        } else {
            choose_reply(f, record(f, &req), &c->reply);
        }
        if (c->reply.action == FAKE_HANG) {
            reply_clear(&c->reply);
            c->state = C_HANG;
            return true;
        }
        c->due_ms = now_ms() + (c->reply.delay_ms > 0 ? c->reply.delay_ms : 0);
        c->state = C_DELAY;
    }
    return true;
}

/* Writes what it can of out[].  Returns false when the connection is done. */
static bool conn_write(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            if (errno == EINTR)
                continue;
            return false;
        }
        c->out_off += (size_t)n;
    }
    if (c->reset_after) {
        conn_reset(c);
        return false;
    }
    if (c->close_after)
        return false;
    c->state = C_READ;
    return true;
}

/* Runs the delayed step if due.  Returns false when the connection is done. */
static bool conn_tick(struct fakehttp *f, struct conn *c, int64_t now)
{
    if (c->state != C_DELAY || c->due_ms > now)
        return true;
    if (c->reply.action == FAKE_DROP) {
        reply_clear(&c->reply);
        return false;
    }
    reply_render(c);
    if (!conn_write(c))
        return false;
    return conn_process(f, c); /* a pipelined request may be waiting */
}

static bool conn_read(struct fakehttp *f, struct conn *c)
{
    for (;;) {
        ssize_t n;

        if (c->in_cap - c->in_len < 65536) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 65536 * 2;
            c->in = xrealloc(c->in, c->in_cap);
        }
        n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0)
            return false;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            return false;
        }
        if (c->state == C_HANG)
            continue; /* discard */
        c->in_len += (size_t)n;
    }
    return conn_process(f, c);
}

static void accept_all(struct fakehttp *f)
{
    for (;;) {
        int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        int one = 1;

        if (fd < 0)
            return;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = xmalloc(sizeof(*c));
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->state = C_READ;
        f->conns = grow(f->conns, f->nconns, &f->conns_cap, sizeof(*f->conns));
        f->conns[f->nconns++] = c;
        pthread_mutex_lock(&f->mu);
        f->nconn++;
        pthread_mutex_unlock(&f->mu);
    }
}

static void *server_main(void *arg)
{
    struct fakehttp *f = arg;
    struct pollfd *pfds = NULL;
    size_t pcap = 0;

    for (;;) {
        int64_t now = now_ms(), next = -1;
        size_t n = 0;
        bool stop;

        pthread_mutex_lock(&f->mu);
        stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;

        /* Due replies first; drop finished connections. */
        for (size_t i = 0; i < f->nconns;) {
            struct conn *c = f->conns[i];

            if (!conn_tick(f, c, now)) {
                conn_free(c);
                f->conns[i] = f->conns[--f->nconns];
                continue;
            }
            if (c->state == C_DELAY && (next < 0 || c->due_ms < next))
                next = c->due_ms;
            i++;
        }

        if (pcap < f->nconns + 2) {
            pcap = f->nconns + 2;
            pfds = xrealloc(pfds, pcap * sizeof(*pfds));
        }
        pfds[n++] = (struct pollfd){ .fd = f->wake[0], .events = POLLIN };
        pfds[n++] = (struct pollfd){ .fd = f->lfd, .events = POLLIN };
        for (size_t i = 0; i < f->nconns; i++) {
            struct conn *c = f->conns[i];

            /* Reading also while a reply waits, to notice the peer closing. */
            pfds[n++] = (struct pollfd){ .fd = c->fd,
                                         .events = c->state == C_WRITE ? POLLOUT : POLLIN };
        }

        int timeout = next < 0 ? -1 : (int)(next > now ? next - now : 0);
        if (poll(pfds, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (pfds[0].revents) {
            char drain[64];

            while (read(f->wake[0], drain, sizeof(drain)) > 0)
                ;
        }
        /* Connections first (indices match pfds until the array changes). */
        size_t nc = f->nconns;
        for (size_t i = nc; i-- > 0;) {
            struct conn *c = f->conns[i];
            short rev = pfds[i + 2].revents;
            bool keep = true;

            if (!rev)
                continue;
            if (c->state == C_WRITE)
                keep = conn_write(c) && conn_process(f, c);
            else
                keep = conn_read(f, c);
            if (!keep) {
                conn_free(c);
                f->conns[i] = f->conns[--f->nconns];
            }
        }
        if (pfds[1].revents)
            accept_all(f);
    }
    free(pfds);
    return NULL;
}

/* --- public API ---------------------------------------------------------- */

struct fakehttp *fake_start(void)
{
    struct fakehttp *f = xmalloc(sizeof(*f));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof(sa);
    pthread_condattr_t ca;

    memset(f, 0, sizeof(*f));
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (f->lfd < 0)
        die("socket");
    if (bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(f->lfd, 128) < 0
        || getsockname(f->lfd, (struct sockaddr *)&sa, &salen) < 0)
        die("bind/listen");
    f->port = ntohs(sa.sin_port);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);
    if (pipe2(f->wake, O_NONBLOCK | O_CLOEXEC) < 0)
        die("pipe");
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    errno = pthread_create(&f->thread, NULL, server_main, f);
    if (errno)
        die("pthread_create");
    return f;
}

void fake_stop(struct fakehttp *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    if (write(f->wake[1], "x", 1) < 0 && errno != EAGAIN)
        die("write");
    pthread_join(f->thread, NULL);

    for (size_t i = 0; i < f->nconns; i++)
        conn_free(f->conns[i]);
    free(f->conns);
    close(f->lfd);
    close(f->wake[0]);
    close(f->wake[1]);
    for (size_t i = f->script_head; i < f->nscript; i++)
        reply_clear(&f->script[i]);
    free(f->script);
    for (size_t i = 0; i < f->nreqs; i++) {
        free(f->reqs[i]->path);
        free(f->reqs[i]->headers);
        free(f->reqs[i]->body);
        free(f->reqs[i]);
    }
    free(f->reqs);
    for (size_t i = 0; i < f->nstrs; i++)
        free(f->strs[i]);
    free(f->strs);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int fake_port(const struct fakehttp *f)
{
    return f->port;
}

const char *fake_url(const struct fakehttp *f)
{
    return f->url;
}

void fake_reply_ex(struct fakehttp *f, const struct fake_reply *r)
{
    struct reply copy;

    reply_copy(&copy, r);
    pthread_mutex_lock(&f->mu);
    f->script = grow(f->script, f->nscript, &f->script_cap, sizeof(*f->script));
    f->script[f->nscript++] = copy;
    pthread_mutex_unlock(&f->mu);
}

void fake_reply(struct fakehttp *f, int status, const char *body)
{
    struct fake_reply r = { .status = status, .body = body };

    fake_reply_ex(f, &r);
}

/* Tries path as given, under tests/, then under the shared test data. */
static FILE *open_data(const char *path)
{
    const char *shared = getenv("DDB2ES_SHARED");
    char alt[4096];
    FILE *fp = fopen(path, "rb");

    if (fp || path[0] == '/')
        return fp;
    snprintf(alt, sizeof(alt), "tests/%s", path);
    if ((fp = fopen(alt, "rb")) != NULL)
        return fp;
    snprintf(alt, sizeof(alt), "%s/%s", shared && *shared ? shared : "../shared/testdata", path);
    return fopen(alt, "rb");
}

void fake_reply_file(struct fakehttp *f, int status, const char *path)
{
    FILE *fp = open_data(path);
    char *data = NULL;
    size_t len = 0, cap = 0, n;

    if (!fp) {
        fprintf(stderr, "fakehttp: cannot open %s\n", path);
        abort();
    }
    do {
        if (cap - len < 65536)
            data = xrealloc(data, cap = cap ? cap * 2 : 65536);
        n = fread(data + len, 1, cap - len, fp);
        len += n;
    } while (n > 0);
    if (ferror(fp))
        die(path);
    fclose(fp);
    struct fake_reply r = { .status = status, .body = data, .body_len = len };
    if (len == 0)
        r.body = "";
    fake_reply_ex(f, &r);
    free(data);
}

void fake_forget_requests(struct fakehttp *f)
{
    pthread_mutex_lock(&f->mu);
    f->forget = true;
    pthread_mutex_unlock(&f->mu);
}

void fake_set_handler(struct fakehttp *f, fake_handler *h, void *arg)
{
    pthread_mutex_lock(&f->mu);
    f->handler = h;
    f->handler_arg = arg;
    pthread_mutex_unlock(&f->mu);
}

size_t fake_nreq(struct fakehttp *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->nreqs;
    pthread_mutex_unlock(&f->mu);
    return n;
}

const struct fake_req *fake_req(struct fakehttp *f, size_t i)
{
    const struct fake_req *r;

    pthread_mutex_lock(&f->mu);
    r = i < f->nreqs ? f->reqs[i] : NULL;
    pthread_mutex_unlock(&f->mu);
    return r;
}

const char *fake_req_header(struct fakehttp *f, const struct fake_req *r, const char *name)
{
    size_t len;
    const char *v;
    char *copy;

    if (!r)
        return NULL;
    v = header_find(r->headers, strlen(r->headers), name, &len);
    if (!v)
        return NULL;
    copy = xstrndup(v, len);
    pthread_mutex_lock(&f->mu);
    f->strs = grow(f->strs, f->nstrs, &f->strs_cap, sizeof(*f->strs));
    f->strs[f->nstrs++] = copy;
    pthread_mutex_unlock(&f->mu);
    return copy;
}

size_t fake_wait_nreq(struct fakehttp *f, size_t n, long ms)
{
    struct timespec dl;
    size_t got;

    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    while (f->nreqs < n)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT)
            break;
    got = f->nreqs;
    pthread_mutex_unlock(&f->mu);
    return got;
}

size_t fake_nconn(struct fakehttp *f)
{
    size_t n;

    pthread_mutex_lock(&f->mu);
    n = f->nconn;
    pthread_mutex_unlock(&f->mu);
    return n;
}
