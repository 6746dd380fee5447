#include "tests/support/searchd_ctl.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <curl/curl.h>

#include "base/buf.h"
#include "base/jsonx.h"

#define START_TIMEOUT_MS 10000
#define MAX_OPTS 64

struct searchd {
    pid_t pid;
    int port;
    char url[64];
    char dir[256];
    char port_file[300];
    CURL *curl;
};

static void pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static const char *program(char *path, size_t n)
{
    const char *env = getenv("DDB2ES_SEARCHD"), *build = getenv("BUILD");

    if (env && *env)
        return env;
    snprintf(path, n, "%s/tools/searchd", build && *build ? build : "build");
    return path;
}

struct searchd *searchd_startv(const char *const *opts)
{
    struct searchd *sd = calloc(1, sizeof(*sd));
    const char *tmp = getenv("TMPDIR");
    const char *argv[MAX_OPTS + 8];
    char prog[512];
    size_t n = 0;
    long waited = 0;

    cr_assert_not_null(sd);
    snprintf(sd->dir, sizeof(sd->dir), "%s/searchd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(sd->dir), "mkdtemp: %s", strerror(errno));
    snprintf(sd->port_file, sizeof(sd->port_file), "%s/port", sd->dir);
    argv[n++] = program(prog, sizeof(prog));
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = sd->port_file;
    for (size_t i = 0; opts && opts[i]; i++) {
        cr_assert_lt(i, MAX_OPTS, "too many searchd options");
        argv[n++] = opts[i];
    }
    argv[n] = NULL;
    fflush(NULL);
    sd->pid = fork();
    cr_assert_geq(sd->pid, 0, "fork: %s", strerror(errno));
    if (sd->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "searchd_ctl: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        FILE *f = fopen(sd->port_file, "r");
        int status;
        if (f) {
            int ok = fscanf(f, "%d", &sd->port) == 1;
            fclose(f);
            if (ok)
                break;
        }
        if (waitpid(sd->pid, &status, WNOHANG) == sd->pid) {
            sd->pid = 0;
            cr_assert_fail("searchd (%s) exited before listening (status %d)", argv[0], status);
        }
        cr_assert_lt(waited, START_TIMEOUT_MS, "searchd did not start within %d ms",
                     START_TIMEOUT_MS);
        pause_ms(5);
        waited += 5;
    }
    snprintf(sd->url, sizeof(sd->url), "http://127.0.0.1:%d", sd->port);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sd->curl = curl_easy_init();
    cr_assert_not_null(sd->curl);
    return sd;
}

struct searchd *searchd_start(const char *opt, ...)
{
    const char *opts[MAX_OPTS + 1];
    size_t n = 0;
    va_list ap;

    va_start(ap, opt);
    for (const char *o = opt; o; o = va_arg(ap, const char *)) {
        cr_assert_lt(n, MAX_OPTS, "too many searchd options");
        opts[n++] = o;
    }
    va_end(ap);
    opts[n] = NULL;
    return searchd_startv(opts);
}

int searchd_stop(struct searchd *sd)
{
    int status = 0, rc = 0;

    if (!sd)
        return 0;
    if (sd->curl)
        curl_easy_cleanup(sd->curl);
    if (sd->pid > 0) {
        kill(sd->pid, SIGTERM);
        while (waitpid(sd->pid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    unlink(sd->port_file);
    rmdir(sd->dir);
    free(sd);
    return rc;
}

int searchd_port(const struct searchd *sd)
{
    return sd->port;
}

pid_t searchd_pid(const struct searchd *sd)
{
    return sd->pid;
}

const char *searchd_url(const struct searchd *sd)
{
    return sd->url;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;

    if (n * size > 5 && strncmp(p, "HTTP/", 5) == 0)
        buf_reset(b); /* keep only the final reply's block (after 100 Continue) */
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

int searchd_request(struct searchd *sd, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t len,
                    struct searchd_resp *out)
{
    struct curl_slist *hl = NULL;
    struct buf b, h;
    char url[2048];
    CURL *c = sd->curl;
    CURLcode cc;

    memset(out, 0, sizeof(*out));
    buf_init(&b, BUF_NOMAX);
    buf_init(&h, BUF_NOMAX);
    snprintf(url, sizeof(url), "%s%s", sd->url, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (body)
        hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(c);
    curl_slist_free_all(hl);
    out->curl_code = (int)cc;
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    out->len = b.len;
    out->body = buf_take(&b);
    out->headers = buf_take(&h);
    return cc == CURLE_OK ? 0 : -EIO;
}

void searchd_resp_close(struct searchd_resp *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

char *searchd_resp_header(const struct searchd_resp *r, const char *name)
{
    size_t nl = strlen(name);

    for (const char *p = r->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(p + ll - v));
        }
        p += ll + (eol ? 2 : 0);
    }
    return NULL;
}

static json_t *request_json(struct searchd *sd, const char *method, const char *path,
                            const char *const *headers, const char *body, long *status)
{
    struct searchd_resp r;
    json_t *j = NULL;

    if (searchd_request(sd, method, path, headers, body, body ? strlen(body) : 0, &r) == 0)
        j = jsonx_loadb(r.body, r.len, 0, NULL);
    if (status)
        *status = r.status;
    searchd_resp_close(&r);
    return j;
}

json_t *searchd_json(struct searchd *sd, const char *method, const char *path, const char *body,
                     long *status)
{
    static const char *const hdrs[] = { "Content-Type: application/json", NULL };

    return request_json(sd, method, path, body ? hdrs : NULL, body, status);
}

json_t *searchd_bulk(struct searchd *sd, const char *path, const char *ndjson, long *status)
{
    static const char *const hdrs[] = { "Content-Type: application/x-ndjson", NULL };

    return request_json(sd, "POST", path, hdrs, ndjson, status);
}

json_t *searchd_dump(struct searchd *sd)
{
    return searchd_json(sd, "GET", "/_double/dump", NULL, NULL);
}

json_t *searchd_requests(struct searchd *sd)
{
    return request_json(sd, "GET", "/_double/requests", NULL, NULL, NULL);
}

json_t *searchd_stats(struct searchd *sd)
{
    return searchd_json(sd, "GET", "/_double/stats", NULL, NULL);
}

static long post_status(struct searchd *sd, const char *path, const char *body)
{
    long status = 0;

    json_decref(searchd_json(sd, "POST", path, body ? body : "{}", &status));
    return status;
}

long searchd_faults(struct searchd *sd, const char *rules_json)
{
    return post_status(sd, "/_double/faults", rules_json);
}

long searchd_config(struct searchd *sd, const char *settings_json)
{
    return post_status(sd, "/_double/config", settings_json);
}

long searchd_reset(struct searchd *sd)
{
    return post_status(sd, "/_double/reset", NULL);
}
