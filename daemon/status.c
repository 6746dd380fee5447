#include "daemon/status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "config/config.h"
#include "daemon/ckpt.h"
#include "daemon/metrics.h"

#define LIVE_MAX ((size_t)8 << 20)

static void iso_time(time_t t, char *out, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *time_or_null(time_t t)
{
    char when[32];

    if (t <= 0)
        return json_null();
    iso_time(t, when, sizeof(when));
    return json_string(when);
}

/* ---- the checkpoint ---------------------------------------------------- */

struct walk {
    const struct ckpt *ck;
    json_t *shards;
    time_t now;
};

static int has_child(const struct ckpt_shard *sh, void *arg)
{
    const struct ckpt_shard *parent = arg;

    return sh->parent && strcmp(sh->parent, parent->id) == 0 && strcmp(sh->arn, parent->arn) == 0;
}

static const char *state_of(const struct ckpt *ck, const struct ckpt_shard *sh)
{
    if (sh->done)
        return "finished";
    if (ckpt_foreach(ck, has_child, (void *)sh))
        return "closed";
    return "open";
}

static int add_shard(const struct ckpt_shard *sh, void *arg)
{
    struct walk *w = arg;
    bool has_record = sh->seq[0] && sh->ver.second > 0;
    json_t *o = json_object();

    if (!o)
        return -ENOMEM;
    json_object_set_new(o, "table", json_string(sh->table));
    json_object_set_new(o, "stream", json_string(sh->arn));
    json_object_set_new(o, "shard", json_string(sh->id));
    json_object_set_new(o, "parent", sh->parent ? json_string(sh->parent) : json_null());
    json_object_set_new(o, "state", json_string(state_of(w->ck, sh)));
    json_object_set_new(o, "checkpoint", sh->seq[0] ? json_string(sh->seq) : json_null());
    json_object_set_new(o, "last_record", has_record ? time_or_null((time_t)sh->ver.second)
                                                     : json_null());
    json_object_set_new(o, "last_record_age_s",
                        has_record ? json_integer((json_int_t)(w->now - sh->ver.second))
                                   : json_null());
    json_object_set_new(o, "updated", time_or_null(sh->updated));
    json_object_set_new(o, "updated_age_s", json_integer((json_int_t)(w->now - sh->updated)));
    return json_array_append_new(w->shards, o) == 0 ? 0 : -ENOMEM;
}

json_t *status_collect(const char *state_dir, time_t now, char *err, size_t errlen,
                       int *exit_code)
{
    struct ckpt *ck = ckpt_new(state_dir);
    json_t *model = json_object(), *shards = json_array();
    struct walk w = { .ck = ck, .shards = shards, .now = now };
    struct stat st;
    char when[32];
    int rc;

    *exit_code = 70;
    if (!ck || !model || !shards) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    rc = ckpt_load(ck, err, errlen);
    if (rc < 0) {
        *exit_code = rc == -EBADMSG ? 65 : 74;
        goto fail;
    }
    iso_time(now, when, sizeof(when));
    json_object_set_new(model, "state_dir", json_string(state_dir));
    json_object_set_new(model, "file", json_string(ckpt_path(ck)));
    json_object_set_new(model, "exists", json_boolean(stat(ckpt_path(ck), &st) == 0));
    json_object_set_new(model, "now", json_string(when));
    if (ckpt_foreach(ck, add_shard, &w) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    json_object_set_new(model, "shards", shards);
    json_object_set_new(model, "live", json_null());
    ckpt_free(ck);
    *exit_code = 0;
    return model;
fail:
    ckpt_free(ck);
    json_decref(shards);
    json_decref(model);
    return NULL;
}

/* ---- live facts from /metrics ----------------------------------------- */

/* Reads label="value" pairs; returns the value of want (unescaped) in out. */
static bool label(const char *labels, const char *want, char *out, size_t outlen)
{
    const char *p = labels;
    size_t wl = strlen(want);

    while (p && *p && *p != '}') {
        const char *eq = strchr(p, '=');
        bool match;
        size_t n = 0;

        if (!eq || eq[1] != '"')
            return false;
        match = (size_t)(eq - p) == wl && strncmp(p, want, wl) == 0;
        for (p = eq + 2; *p && *p != '"'; p++) {
            char c = *p;

            if (c == '\\' && p[1])
                c = *++p == 'n' ? '\n' : *p;
            if (match && n + 1 < outlen)
                out[n++] = c;
        }
        if (match) {
            out[n] = '\0';
            return true;
        }
        if (*p != '"')
            return false;
        p++;
        if (*p == ',')
            p++;
    }
    return false;
}

static const struct {
    const char *metric, *key;
} live_keys[] = {
    { "ddb2es_records_read_total", "records_read" },
    { "ddb2es_docs_indexed_total", "docs_indexed" },
    { "ddb2es_docs_deleted_total", "docs_deleted" },
    { "ddb2es_dlq_total", "dlq" },
    { "ddb2es_records_lost_events_total", "records_lost_events" },
    { "ddb2es_iterator_age_seconds", "iterator_age_s" },
};

static json_t *table_obj(json_t *tables, const char *name)
{
    json_t *t = json_object_get(tables, name);

    if (!t) {
        t = json_object();
        json_object_set_new(tables, name, t);
    }
    return t;
}

static void live_line(json_t *live, json_t *tables, const char *line, size_t len)
{
    char name[128], table[256], state[32], text[1024];
    const char *labels = NULL, *value;
    size_t nlen = strcspn(line, "{ ");
    double v;
    char *end;

    if (len >= sizeof(text) || nlen >= sizeof(name) || nlen >= len)
        return;
    memcpy(text, line, len);
    text[len] = '\0';
    memcpy(name, text, nlen);
    name[nlen] = '\0';
    if (text[nlen] == '{') {
        labels = text + nlen + 1;
        value = strrchr(text, '}');
        if (!value)
            return;
        value++;
    } else {
        value = text + nlen;
    }
    v = strtod(value, &end);
    if (end == value)
        return;
    if (strcmp(name, "ddb2es_ready") == 0) {
        json_object_set_new(live, "ready", json_boolean(v != 0));
        return;
    }
    if (!labels || !label(labels, "table", table, sizeof(table)))
        return;
    if (strcmp(name, "ddb2es_shards") == 0 && label(labels, "state", state, sizeof(state))) {
        json_t *t = table_obj(tables, table), *sh = json_object_get(t, "shards");

        if (!sh) {
            sh = json_object();
            json_object_set_new(t, "shards", sh);
        }
        json_object_set_new(sh, state, json_integer((json_int_t)v));
        return;
    }
    for (size_t i = 0; i < sizeof(live_keys) / sizeof(live_keys[0]); i++)
        if (strcmp(name, live_keys[i].metric) == 0)
            json_object_set_new(table_obj(tables, table), live_keys[i].key,
                                json_integer((json_int_t)v));
}

void status_add_live(json_t *model, const char *endpoint, const char *metrics_text,
                     long readyz_status, const char *readyz_body)
{
    json_t *live = json_object(), *tables = json_object();

    json_object_set_new(live, "endpoint", json_string(endpoint));
    json_object_set_new(live, "answering", json_true());
    for (const char *p = metrics_text; p && *p;) {
        size_t n = strcspn(p, "\n");

        if (*p != '#')
            live_line(live, tables, p, n);
        p += n + (p[n] == '\n');
    }
    if (readyz_body) {
        const char *colon = strstr(readyz_body, ": ");
        size_t n;

        if (colon) {
            colon += 2;
            n = strcspn(colon, "\n");
            json_object_set_new(live, "status", json_stringn(colon, n));
        }
        json_object_set_new(live, "ready", json_boolean(readyz_status == 200));
    }
    json_object_set_new(live, "tables", tables);
    json_object_set_new(model, "live", live);
}

void status_add_live_error(json_t *model, const char *endpoint, const char *error)
{
    json_object_set_new(model, "live", json_pack("{s:s, s:b, s:s}", "endpoint", endpoint,
                                                 "answering", 0, "error", error));
}

/* ---- a small blocking HTTP GET (this is a one-shot command) ------------ */

static long ms_left(const struct timespec *until)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (until->tv_sec - now.tv_sec) * 1000 + (until->tv_nsec - now.tv_nsec) / 1000000;
}

static int wait_fd(int fd, short events, const struct timespec *until)
{
    struct pollfd p = { .fd = fd, .events = events };
    long left = ms_left(until);
    int rc;

    if (left <= 0)
        return -ETIMEDOUT;
    do
        rc = poll(&p, 1, (int)left);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : rc == 0 ? -ETIMEDOUT : 0;
}

static int connect_to(const char *listen, const struct timespec *until)
{
    char host[256], port[8];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL, *a;
    int rc = -EINVAL, fd = -1;

    if (metrics_split_addr(listen, host, sizeof(host), port, sizeof(port)) < 0)
        return -EINVAL;
    /* A wildcard listener is reached on the loopback. */
    if (strcmp(host, "0.0.0.0") == 0)
        strcpy(host, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        strcpy(host, "::1");
    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -EHOSTUNREACH;
    for (a = ai; a; a = a->ai_next) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : -errno;
        if (rc == -EINPROGRESS && (rc = wait_fd(fd, POLLOUT, until)) == 0)
            rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ? -errno : -soerr;
        if (rc == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd >= 0 ? fd : rc;
}

/* GET path; *status and body (the part after the head). 0 or -errno. */
static int http_get(const char *listen, const char *path, long timeout_ms, long *status,
                    struct buf *body)
{
    struct timespec until;
    struct buf req, resp;
    char chunk[16384];
    const char *sep;
    size_t off = 0;
    int fd, rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    fd = connect_to(listen, &until);
    if (fd < 0)
        return fd;
    buf_init(&req, 4096);
    buf_init(&resp, LIVE_MAX);
    buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, listen);
    while (rc == 0 && off < req.len) {
        ssize_t n = send(fd, req.ptr + off, req.len - off, MSG_NOSIGNAL);

        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR))
            rc = wait_fd(fd, POLLOUT, &until);
        else
            rc = -errno;
    }
    while (rc == 0) {
        ssize_t n = recv(fd, chunk, sizeof(chunk), 0);

        if (n > 0)
            rc = buf_append(&resp, chunk, (size_t)n);
        else if (n == 0)
            break;
        else if (errno == EAGAIN || errno == EINTR)
            rc = wait_fd(fd, POLLIN, &until);
        else
            rc = -errno;
    }
    close(fd);
    buf_close(&req);
    if (rc == 0 && (resp.len < 12 || strncmp(resp.ptr, "HTTP/1.", 7) != 0 ||
                    !(sep = strstr(resp.ptr, "\r\n\r\n"))))
        rc = -EPROTO;
    if (rc == 0) {
        *status = strtol(resp.ptr + 9, NULL, 10);
        rc = buf_append(body, sep + 4, resp.len - (size_t)(sep + 4 - resp.ptr));
    }
    buf_close(&resp);
    return rc;
}

/* ---- printing ---------------------------------------------------------- */

static void age(json_t *v, char *out, size_t len)
{
    json_int_t s;

    if (!json_is_integer(v)) {
        snprintf(out, len, "-");
        return;
    }
    s = json_integer_value(v);
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(out, len, "%llds ago", (long long)s);
    else if (s < 2 * 3600)
        snprintf(out, len, "%lldm%02llds ago", (long long)s / 60, (long long)s % 60);
    else if (s < 2 * 86400)
        snprintf(out, len, "%lldh%02lldm ago", (long long)s / 3600, (long long)s / 60 % 60);
    else
        snprintf(out, len, "%lldd%02lldh ago", (long long)s / 86400, (long long)s / 3600 % 24);
}

static json_int_t num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void print_live(const json_t *live, FILE *f)
{
    const char *name;
    json_t *t;

    if (!json_is_object(live)) {
        fprintf(f, "\nlive: no metrics endpoint configured ([daemon] metrics_listen)\n");
        return;
    }
    if (!json_is_true(json_object_get(live, "answering"))) {
        fprintf(f, "\nlive: %s not answering (%s): is `ddb2es run` running?\n",
                json_string_value(json_object_get(live, "endpoint")),
                json_string_value(json_object_get(live, "error")));
        return;
    }
    fprintf(f, "\nlive (%s): %s%s%s\n", json_string_value(json_object_get(live, "endpoint")),
            json_is_true(json_object_get(live, "ready")) ? "ready" : "not ready",
            json_object_get(live, "status") ? ": " : "",
            json_object_get(live, "status") ? json_string_value(json_object_get(live, "status"))
                                            : "");
    json_object_foreach(json_object_get(live, "tables"), name, t)
    {
        json_t *sh = json_object_get(t, "shards");
        char ia[32];

        if (json_is_integer(json_object_get(t, "iterator_age_s")))
            snprintf(ia, sizeof(ia), "%llds", (long long)num(t, "iterator_age_s"));
        else
            snprintf(ia, sizeof(ia), "- (nothing read yet)");
        fprintf(f,
                "  %s: records read %lld, indexed %lld, deleted %lld, dead-lettered %lld, "
                "loss events %lld, iterator age %s; shards open %lld, closed %lld, waiting "
                "%lld, done %lld\n",
                name, (long long)num(t, "records_read"), (long long)num(t, "docs_indexed"),
                (long long)num(t, "docs_deleted"), (long long)num(t, "dlq"),
                (long long)num(t, "records_lost_events"), ia, (long long)num(sh, "open"),
                (long long)num(sh, "closed"), (long long)num(sh, "waiting"),
                (long long)num(sh, "done"));
    }
}

void status_print_text(const json_t *model, FILE *f)
{
    json_t *shards = json_object_get(model, "shards"), *s;
    size_t i, wt = 5, ws = 5;

    if (json_object_get(model, "lease_table")) {
        status_print_leases(model, f);
        print_live(json_object_get(model, "live"), f);
        return;
    }
    fprintf(f, "checkpoints: %s", json_string_value(json_object_get(model, "file")));
    if (!json_is_true(json_object_get(model, "exists")))
        fprintf(f, " (not written yet: nothing has been read)\n");
    else
        fprintf(f, " (%zu shard%s)\n", json_array_size(shards),
                json_array_size(shards) == 1 ? "" : "s");
    json_array_foreach(shards, i, s)
    {
        size_t lt = strlen(json_string_value(json_object_get(s, "table")));
        size_t ls = strlen(json_string_value(json_object_get(s, "shard")));

        wt = lt > wt ? lt : wt;
        ws = ls > ws ? ls : ws;
    }
    if (json_array_size(shards))
        fprintf(f, "%-*s  %-*s  %-8s  %-11s  %-12s  %s\n", (int)wt, "TABLE", (int)ws, "SHARD",
                "STATE", "LAST RECORD", "UPDATED", "CHECKPOINT");
    json_array_foreach(shards, i, s)
    {
        char rec[32], upd[32];
        const char *seq = json_string_value(json_object_get(s, "checkpoint"));

        age(json_object_get(s, "last_record_age_s"), rec, sizeof(rec));
        age(json_object_get(s, "updated_age_s"), upd, sizeof(upd));
        fprintf(f, "%-*s  %-*s  %-8s  %-11s  %-12s  %s\n", (int)wt,
                json_string_value(json_object_get(s, "table")), (int)ws,
                json_string_value(json_object_get(s, "shard")),
                json_string_value(json_object_get(s, "state")), rec, upd,
                seq ? seq : "(none: starts at its start position)");
    }
    print_live(json_object_get(model, "live"), f);
}

/* ---- the command ------------------------------------------------------- */

int status_run(const struct config *cfg, bool json, long timeout_ms, FILE *f)
{
    char err[1024];
    int code;
    json_t *model = cfg->leases.enabled
                        ? status_collect_leases(cfg, time(NULL), err, sizeof(err), &code)
                        : status_collect(cfg->daemon.state_dir, time(NULL), err, sizeof(err),
                                         &code);
    const char *listen = cfg->daemon.metrics_listen;

    if (!model) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return code;
    }
    if (listen && *listen) {
        struct buf metrics, ready;
        long st = 0, rst = 0;
        int rc;

        buf_init(&metrics, LIVE_MAX);
        buf_init(&ready, 64 * 1024);
        rc = http_get(listen, "/metrics", timeout_ms, &st, &metrics);
        if (rc == 0 && st != 200)
            rc = -EPROTO;
        if (rc == 0 && http_get(listen, "/readyz", timeout_ms, &rst, &ready) < 0)
            rst = 0;
        if (rc == 0)
            status_add_live(model, listen, metrics.ptr, rst, rst ? ready.ptr : NULL);
        else
            status_add_live_error(model, listen,
                                  rc == -EPROTO ? "not a ddb2es metrics endpoint" : strerror(-rc));
        buf_close(&metrics);
        buf_close(&ready);
    }
    if (json) {
        json_dumpf(model, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fputc('\n', f);
    } else {
        status_print_text(model, f);
    }
    json_decref(model);
    return 0;
}
