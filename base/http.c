/* http — curl multi driven by libuv; see http.h.
 *
 * curl tells us which sockets to watch (on_socket) and when to call it back
 * (on_curl_timer); libuv tells curl what happened (on_poll, on_timeout); after
 * every curl_multi_socket_action the finished transfers are collected
 * (collect) and their callbacks run.  Each watched socket has one heap
 * `struct sock` holding its uv_poll_t, freed in the poll's close callback.
 */
#include "base/http.h"
#include "base/list.h"
#include "base/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/version.h"

#ifdef DDB2ES_OWN_CURL
#include <ddb2es-curl.h> /* written by scripts/curl.sh */
#define CURL_ORIGIN "built for ddb2es from Debian's curl " DDB2ES_CURL_SOURCE
#else
#define CURL_ORIGIN "shared library"
#endif

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_CONNECT_MS 5000L
#define DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define MAX_RESPONSE_HEADERS ((size_t)256 << 10)


struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http *h;
    struct list link; /* in h->socks, while the poll is open */
};

struct http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list socks;
    struct list reqs; /* in flight */
    size_t nopen;          /* uv handles not yet closed (timer + polls) */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
    bool tls_verify;
    char *ca_file, *user_agent;
    long connect_timeout_ms;
};

struct header {
    char *name, *value;
};

struct http_req {
    char *method, *url;
    struct header *hdrs;
    size_t nhdrs, hdrs_cap;
    const char *body;
    size_t body_len;
    bool body_owned;
    long timeout_ms;
    size_t max_response;
    bool no_proxy;
    unsigned marks; /* kept for the layer above (http_req_marks) */
    void *userdata;

    /* In flight. */
    struct http *h;
    CURL *easy;
    struct curl_slist *slist;
    http_done_cb *cb;
    void *cb_arg;
    struct list link; /* in h->reqs */
    bool completing;

    /* Outcome. */
    long status;
    double seconds;
    bool too_big;
    struct buf resp;
    struct buf resp_hdrs; /* "name\0value\0" pairs of the final response */
    char errbuf[CURL_ERROR_SIZE];
};

/* --- curl global init ---------------------------------------------------- */

static bool curl_ready;

static int ensure_curl(void)
{
    /* Not thread-safe before 7.84 for every backend; http_new runs on the
     * main thread before any other thread uses curl. */
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return -EIO;
        curl_ready = true;
    }
    return 0;
}

void http_libcurl_line(char *buf, size_t size)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    size_t n;

    n = (size_t)snprintf(buf, size, "libcurl %s (%s), %s; protocols:", v->version,
                         v->ssl_version ? v->ssl_version : "no TLS", CURL_ORIGIN);
    for (const char *const *p = v->protocols; p && *p && n < size; p++)
        n += (size_t)snprintf(buf + n, size - n, " %s", *p);
}

/* --- sockets and timer --------------------------------------------------- */

static void on_sock_closed(uv_handle_t *hd);
static void on_timer_closed(uv_handle_t *hd);

static void maybe_finish(struct http *h)
{
    void (*done)(void *);
    void *arg;

    if (!h->closing || h->nopen > 0 || h->multi)
        return;
    done = h->done;
    arg = h->done_arg;
    free(h->ca_file);
    free(h->user_agent);
    free(h);
    if (done)
        done(arg);
}

/* Stops watching s and closes its poll; s is freed in the close callback. */
static void sock_close(struct sock *s)
{
    list_remove(&s->link);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_sock_closed(uv_handle_t *hd)
{
    struct sock *s = container_of(hd, struct sock, poll);
    struct http *h = s->h;

    free(s);
    h->nopen--;
    maybe_finish(h);
}

static void on_timer_closed(uv_handle_t *hd)
{
    struct http *h = container_of(hd, struct http, timer);

    h->nopen--;
    maybe_finish(h);
}

static void complete(struct http_req *r, int err);
static int map_error(struct http_req *r, CURLcode rc);

/* Runs the callbacks of every finished transfer. */
static void collect(struct http *h)
{
    CURLMsg *msg;
    int left;

    while (h->multi && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct http_req *r = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        complete(r, map_error(r, msg->data.result));
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = container_of(p, struct sock, poll);
    struct http *h = s->h;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* s may be closed during the call: nothing below touches it. */
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    collect(h);
}

static void on_timeout(uv_timer_t *t)
{
    struct http *h = container_of(t, struct http, timer);
    int running;

    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(h);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http *h = userp;

    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else /* also 0: curl must not be re-entered from here */
        uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http *h = userp;
    struct sock *s = socketp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_close(s);
            if (!h->closing) /* inside curl_multi_cleanup, leave its table alone */
                curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (h->closing)
        return 0;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        list_push_head(&h->socks, &s->link);
        h->nopen++;
        curl_multi_assign(h->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

/* curl normally reports CURL_POLL_REMOVE before closing a socket; this makes
 * sure that no poll outlives its descriptor on any other path (e.g. while the
 * multi handle is cleaned up). */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
    struct http *h = clientp;
    struct list *l;

    list_foreach(l, &h->socks) {
        struct sock *s = list_entry(l, struct sock, link);

        if (s->fd == fd) {
            sock_close(s);
            if (!h->closing)
                curl_multi_assign(h->multi, fd, NULL);
            break;
        }
    }
    return close(fd);
}

/* --- client -------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct http *http_new(uv_loop_t *loop, const struct http_opts *opts)
{
    struct http_opts def = { .tls_verify = true };
    struct http *h;

    if (!opts)
        opts = &def;
    if (ensure_curl() < 0)
        return NULL;
    h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->loop = loop;
    list_init(&h->socks);
    list_init(&h->reqs);
    h->tls_verify = opts->tls_verify;
    h->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms
                                                         : DEFAULT_CONNECT_MS;
    h->ca_file = dup_or_null(opts->ca_file);
    h->user_agent = strdup(opts->user_agent ? opts->user_agent : "ddb2es/" DDB2ES_VERSION);
    h->multi = curl_multi_init();
    if (!h->user_agent || (opts->ca_file && !h->ca_file) || !h->multi
        || uv_timer_init(loop, &h->timer) < 0) {
        if (h->multi)
            curl_multi_cleanup(h->multi);
        free(h->ca_file);
        free(h->user_agent);
        free(h);
        return NULL;
    }
    h->nopen = 1; /* the timer */
    if (!h->tls_verify)
        log_warn("http: TLS certificate verification is disabled");
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    if (opts->max_host_conns > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, opts->max_host_conns);
    return h;
}

void http_close(struct http *h, void (*done)(void *arg), void *arg)
{
    struct http_req *r;
    struct sock *s;
    struct list *l;

    if (!h || h->closing)
        return;
    h->closing = true;
    h->done = done;
    h->done_arg = arg;
    while ((r = list_first_entry(&h->reqs, struct http_req, link))) {
        snprintf(r->errbuf, sizeof(r->errbuf), "client closed");
        complete(r, -ECANCELED);
    }
    /* Polls stop first: curl closes the pooled connections now. */
    list_foreach(l, &h->socks)
        uv_poll_stop(&list_entry(l, struct sock, link)->poll);
    uv_timer_stop(&h->timer);
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while ((s = list_first_entry(&h->socks, struct sock, link)))
        sock_close(s);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

/* --- requests ------------------------------------------------------------ */

struct http_req *http_req_new(const char *method, const char *url)
{
    struct http_req *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->method = strdup(method);
    r->url = strdup(url);
    if (!r->method || !r->url) {
        http_req_free(r);
        return NULL;
    }
    r->timeout_ms = DEFAULT_TIMEOUT_MS;
    r->max_response = DEFAULT_MAX_RESPONSE;
    buf_init(&r->resp, r->max_response);
    buf_init(&r->resp_hdrs, MAX_RESPONSE_HEADERS);
    return r;
}

void http_req_free(struct http_req *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->slist);
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    if (r->body_owned)
        free((char *)r->body);
    buf_close(&r->resp);
    buf_close(&r->resp_hdrs);
    free(r->method);
    free(r->url);
    free(r);
}

static struct header *header_find(struct http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return &r->hdrs[i];
    return NULL;
}

void http_req_header_remove(struct http_req *r, const char *name)
{
    struct header *hd = header_find(r, name);

    if (!hd)
        return;
    free(hd->name);
    free(hd->value);
    *hd = r->hdrs[--r->nhdrs];
}

int http_req_header(struct http_req *r, const char *name, const char *value)
{
    struct header *hd;
    char *v;

    /* A CR or LF would let a value smuggle in headers of its own. */
    if (!*name || strpbrk(name, ":\r\n ") || strpbrk(value, "\r\n"))
        return -EINVAL;
    v = strdup(value);
    if (!v)
        return -ENOMEM;
    if ((hd = header_find(r, name)) != NULL) {
        free(hd->value);
        hd->value = v;
        return 0;
    }
    if (r->nhdrs == r->hdrs_cap) {
        size_t ncap = r->hdrs_cap ? r->hdrs_cap * 2 : 8;
        struct header *n = realloc(r->hdrs, ncap * sizeof(*n));

        if (!n) {
            free(v);
            return -ENOMEM;
        }
        r->hdrs = n;
        r->hdrs_cap = ncap;
    }
    r->hdrs[r->nhdrs].name = strdup(name);
    if (!r->hdrs[r->nhdrs].name) {
        free(v);
        return -ENOMEM;
    }
    r->hdrs[r->nhdrs++].value = v;
    return 0;
}

static void body_drop(struct http_req *r)
{
    if (r->body_owned)
        free((char *)r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_owned = false;
}

void http_req_body_take(struct http_req *r, char *ptr, size_t len)
{
    body_drop(r);
    r->body = ptr;
    r->body_len = len;
    r->body_owned = true;
}

void http_req_body_ref(struct http_req *r, const char *ptr, size_t len)
{
    body_drop(r);
    r->body = ptr;
    r->body_len = len;
}

const char *http_req_payload(const struct http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body;
}

size_t http_req_nheaders(const struct http_req *r)
{
    return r->nhdrs;
}

void http_req_header_at(const struct http_req *r, size_t i, const char **name, const char **value)
{
    *name = r->hdrs[i].name;
    *value = r->hdrs[i].value;
}

bool http_req_has_header(const struct http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return true;
    return false;
}

unsigned http_req_marks(const struct http_req *r)
{
    return r->marks;
}

void http_req_set_marks(struct http_req *r, unsigned marks)
{
    r->marks = marks;
}

void http_req_timeout(struct http_req *r, long total_ms)
{
    r->timeout_ms = total_ms;
}

void http_req_max_response(struct http_req *r, size_t bytes)
{
    r->max_response = bytes;
    r->resp.max = bytes ? bytes : BUF_NOMAX;
}

void http_req_no_proxy(struct http_req *r)
{
    r->no_proxy = true;
}

void *http_req_userdata(const struct http_req *r)
{
    return r->userdata;
}

void http_req_set_userdata(struct http_req *r, void *p)
{
    r->userdata = p;
}

/* --- transfer -------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_req *r = userp;
    size_t n = size * nmemb;
    curl_off_t clen = -1;

    /* One allocation of the announced length rather than a chain of
     * doublings (a GetRecords reply is up to 1 MB, DynamoDB Local's more). */
    if (r->resp.cap == 0 &&
        curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen) == CURLE_OK &&
        clen > 0 && (uint64_t)clen <= r->resp.max)
        buf_reserve(&r->resp, (size_t)clen); /* on failure, appends grow it as usual */
    if (buf_append(&r->resp, data, n) < 0) {
        r->too_big = r->resp.len + n > r->resp.max;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Records "Name: value" lines; a status line starts a new response (after
 * 1xx or a redirect), so only the final response's headers remain. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_req *r = userp;
    size_t n = size * nmemb, len = n, nlen;
    const char *colon, *v;

    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        buf_reset(&r->resp_hdrs);
        return n;
    }
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    colon = memchr(data, ':', len);
    if (!colon)
        return n;
    nlen = (size_t)(colon - data);
    v = colon + 1;
    while (v < data + len && (*v == ' ' || *v == '\t'))
        v++;
    while (len > (size_t)(v - data) && (data[len - 1] == ' ' || data[len - 1] == '\t'))
        len--;
    if (buf_append(&r->resp_hdrs, data, nlen) < 0 || buf_putc(&r->resp_hdrs, '\0') < 0
        || buf_append(&r->resp_hdrs, v, (size_t)(data + len - v)) < 0
        || buf_putc(&r->resp_hdrs, '\0') < 0)
        return 0; /* absurdly many headers: abort */
    return n;
}

static int map_error(struct http_req *r, CURLcode rc)
{
    long oserr = 0;

    switch (rc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
        return oserr == ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return -ECONNRESET;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (rc == CURLE_FILESIZE_EXCEEDED || r->too_big) {
            snprintf(r->errbuf, sizeof(r->errbuf), "response larger than %zu bytes",
                     r->max_response);
            return -E2BIG;
        }
        return -EIO;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_TOO_MANY_REDIRECTS:
        return -EPROTO;
    case CURLE_ABORTED_BY_CALLBACK:
        return -ECANCELED;
    default:
        return -EIO;
    }
}

/* The URL without its query (which may hold a presigned signature). */
static int url_loggable_len(const char *url)
{
    size_t n = strcspn(url, "?#");

    return n > 200 ? 200 : (int)n;
}

/* Leaves the multi, runs the callback once, frees the request. */
static void complete(struct http_req *r, int err)
{
    struct http *h = r->h;

    if (r->completing)
        return;
    r->completing = true;
    list_remove(&r->link);
    if (h->multi)
        curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &r->seconds);
    buf_append(&r->resp, "", 0); /* an empty body still reads as "" */
    if (err < 0 && err != -ECANCELED && !r->errbuf[0])
        snprintf(r->errbuf, sizeof(r->errbuf), "%s", strerror(-err));
    if (err < 0)
        log_debug("http %s %.*s: %s (%s)", r->method, url_loggable_len(r->url), r->url,
                  strerror(-err), r->errbuf);
    else
        log_debug("http %s %.*s: %ld in %.3fs", r->method, url_loggable_len(r->url), r->url,
                  r->status, r->seconds);
    r->cb(r, err, r->cb_arg);
    http_req_free(r);
}

/* Puts r's headers into a curl list. */
static int build_headers(struct http_req *r)
{
    struct curl_slist *l;
    char *line;

    for (size_t i = 0; i < r->nhdrs; i++) {
        /* "Name;" is curl's way to send a header with an empty value. */
        if (asprintf(&line, r->hdrs[i].value[0] ? "%s: %s" : "%s;", r->hdrs[i].name,
                     r->hdrs[i].value) < 0)
            return -ENOMEM;
        l = curl_slist_append(r->slist, line);
        free(line);
        if (!l)
            return -ENOMEM;
        r->slist = l;
    }
    /* Never wait for 100-continue (IMDS answers 417); no made-up form type. */
    if (!(l = curl_slist_append(r->slist, "Expect:")))
        return -ENOMEM;
    r->slist = l;
    if (!header_find(r, "Content-Type")) {
        if (!(l = curl_slist_append(r->slist, "Content-Type:")))
            return -ENOMEM;
        r->slist = l;
    }
    return 0;
}

static int setup_easy(struct http *h, struct http_req *r)
{
    CURL *e = r->easy;
    bool is_post = strcmp(r->method, "POST") == 0;
    bool with_body = r->body || is_post || strcmp(r->method, "PUT") == 0;
    CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_PRIVATE, r);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, h);
    SET(CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 0L);
    SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
    SET(CURLOPT_USERAGENT, h->user_agent);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    SET(CURLOPT_SSL_VERIFYPEER, h->tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, h->tls_verify ? 2L : 0L);
    if (h->ca_file)
        SET(CURLOPT_CAINFO, h->ca_file);
    if (r->no_proxy)
        SET(CURLOPT_NOPROXY, "*");
    if (r->max_response)
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_response);
    SET(CURLOPT_HTTPHEADER, r->slist);
    if (strcmp(r->method, "HEAD") == 0)
        SET(CURLOPT_NOBODY, 1L);
    else if (with_body) {
        /* By reference: curl reads the caller's bytes, never copies them. */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (!is_post)
            SET(CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "GET") == 0)
        SET(CURLOPT_HTTPGET, 1L);
    else
        SET(CURLOPT_CUSTOMREQUEST, r->method);
#undef SET
    return rc == CURLE_OK ? 0 : rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

int http_send(struct http *h, struct http_req *r, http_done_cb *cb, void *arg)
{
    int rc;

    if (h->closing) {
        http_req_free(r);
        return -ECANCELED;
    }
    r->easy = curl_easy_init();
    if (!r->easy) {
        http_req_free(r);
        return -ENOMEM;
    }
    if ((rc = build_headers(r)) < 0 || (rc = setup_easy(h, r)) < 0) {
        http_req_free(r);
        return rc;
    }
    r->h = h;
    r->cb = cb;
    r->cb_arg = arg;
    if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
        http_req_free(r);
        return -ENOMEM;
    }
    list_push_head(&h->reqs, &r->link);
    return 0;
}

void http_cancel(struct http_req *r)
{
    if (!r || !r->h || r->completing)
        return;
    snprintf(r->errbuf, sizeof(r->errbuf), "canceled");
    complete(r, -ECANCELED);
}

/* --- outcome --------------------------------------------------------------- */

long http_req_status(const struct http_req *r)
{
    return r->status;
}

const struct buf *http_req_body(const struct http_req *r)
{
    return &r->resp;
}

const char *http_req_header_get(const struct http_req *r, const char *name)
{
    const char *p = r->resp_hdrs.ptr, *end = p + r->resp_hdrs.len, *found = NULL;

    while (p && p < end) {
        const char *v = p + strlen(p) + 1;

        if (strcasecmp(p, name) == 0)
            found = v; /* the last one wins */
        p = v + strlen(v) + 1;
    }
    return found;
}

const char *http_req_error(const struct http_req *r)
{
    return r->errbuf;
}

const char *http_req_url(const struct http_req *r)
{
    return r->url;
}

const char *http_req_method(const struct http_req *r)
{
    return r->method;
}

double http_req_seconds(const struct http_req *r)
{
    return r->seconds;
}
