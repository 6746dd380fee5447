#include "tests/support/ddbproxy.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/buf.h"
#include "tests/support/fakehttp.h"

struct ddbproxy {
    struct fakehttp *http;
    char *upstream;
    pthread_mutex_t mu;
    char *from, *to;
    unsigned rewritten;
    char *body;            /* the last reply's body (fakehttp copies it) */
    char headers[256];
    int refuse_status;     /* not 0: answer this instead of forwarding */
    char *refuse_body;
    unsigned refused;
    unsigned forwarded; /* requests sent to the upstream */
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* The request's header value (case-insensitive), or NULL; copied into out. */
static const char *header_of(const struct fake_req *req, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);

    for (const char *p = req->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;

            while (*v == ' ')
                v++;
            snprintf(out, len, "%.*s", (int)strcspn(v, "\r\n"), v);
            return out;
        }
    }
    return NULL;
}

static char *replace_all(const char *text, size_t len, const char *from, const char *to,
                         bool *changed)
{
    struct buf b;
    const char *p = text, *end = text + len, *q;
    size_t fl = strlen(from);

    buf_init(&b, BUF_NOMAX);
    while ((q = memmem(p, (size_t)(end - p), from, fl))) {
        buf_append(&b, p, (size_t)(q - p));
        buf_puts(&b, to);
        p = q + fl;
        *changed = true;
    }
    buf_append(&b, p, (size_t)(end - p));
    return buf_take(&b);
}

static void handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    static const char *const pass[] = { "X-Amz-Target", "Content-Type", "Authorization",
                                        "X-Amz-Date", "X-Amz-Security-Token" };
    struct ddbproxy *p = arg;
    struct curl_slist *hs = NULL;
    struct buf resp;
    char v[2048], line[2100], url[512], target[128] = "";
    long status = 0;
    bool changed = false;
    CURL *c;

    pthread_mutex_lock(&p->mu);
    if (p->refuse_status) {
        free(p->body);
        p->body = strdup(p->refuse_body);
        snprintf(p->headers, sizeof(p->headers),
                 "Content-Type: application/x-amz-json-1.0\r\nx-amz-crc32: %lu\r\n",
                 crc32(0L, (const Bytef *)p->body, (uInt)strlen(p->body)));
        out->status = p->refuse_status;
        out->headers = p->headers;
        out->body = p->body;
        p->refused++;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    c = curl_easy_init();
    for (size_t i = 0; i < sizeof(pass) / sizeof(*pass); i++) {
        if (!header_of(req, pass[i], v, sizeof(v)))
            continue;
        snprintf(line, sizeof(line), "%.30s: %.2047s", pass[i], v);
        hs = curl_slist_append(hs, line);
        if (i == 0)
            snprintf(target, sizeof(target), "%.100s", v);
    }
    hs = curl_slist_append(hs, "Expect:");
    snprintf(url, sizeof(url), "%s%s", p->upstream, req->path);
    buf_init(&resp, 512u << 20);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    pthread_mutex_lock(&p->mu);
    free(p->body);
    if (p->from && strstr(target, ".GetRecords") && status == 200)
        p->body = replace_all(resp.ptr ? resp.ptr : "", resp.len, p->from, p->to, &changed);
    else
        p->body = strndup(resp.ptr ? resp.ptr : "", resp.len);
    p->rewritten += changed;
    p->forwarded++;
    snprintf(p->headers, sizeof(p->headers),
             "Content-Type: application/x-amz-json-1.0\r\nx-amz-crc32: %lu\r\n",
             crc32(0L, (const Bytef *)p->body, (uInt)strlen(p->body)));
    out->status = status ? (int)status : 502;
    out->headers = p->headers;
    out->body = p->body;
    pthread_mutex_unlock(&p->mu);
    buf_close(&resp);
}

struct ddbproxy *ddbproxy_start(const char *upstream)
{
    struct ddbproxy *p = calloc(1, sizeof(*p));

    if (!p) /* also built into bench/leaseproxy, which has no criterion */
        abort();
    pthread_mutex_init(&p->mu, NULL);
    p->upstream = strdup(upstream);
    while (p->upstream[0] && p->upstream[strlen(p->upstream) - 1] == '/')
        p->upstream[strlen(p->upstream) - 1] = '\0';
    p->http = fake_start();
    fake_forget_requests(p->http);
    fake_set_handler(p->http, handler, p);
    return p;
}

void ddbproxy_stop(struct ddbproxy *p)
{
    if (!p)
        return;
    fake_stop(p->http);
    free(p->upstream);
    free(p->from);
    free(p->to);
    free(p->body);
    free(p->refuse_body);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

const char *ddbproxy_url(const struct ddbproxy *p)
{
    return fake_url(p->http);
}

void ddbproxy_rewrite(struct ddbproxy *p, const char *from, const char *to)
{
    pthread_mutex_lock(&p->mu);
    free(p->from);
    free(p->to);
    p->from = from ? strdup(from) : NULL;
    p->to = to ? strdup(to) : NULL;
    pthread_mutex_unlock(&p->mu);
}

unsigned ddbproxy_rewritten(struct ddbproxy *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->rewritten;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void ddbproxy_refuse(struct ddbproxy *p, int status, const char *body)
{
    pthread_mutex_lock(&p->mu);
    free(p->refuse_body);
    p->refuse_body = strdup(body ? body : "");
    p->refuse_status = status;
    pthread_mutex_unlock(&p->mu);
}

unsigned ddbproxy_forwarded(struct ddbproxy *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->forwarded;
    pthread_mutex_unlock(&p->mu);
    return n;
}

unsigned ddbproxy_refused(struct ddbproxy *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->refused;
    pthread_mutex_unlock(&p->mu);
    return n;
}
