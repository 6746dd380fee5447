/* target_probe — the target probe's requests, one at a time, each step
 * started by drive() and finished by its reply (target.h has the order). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/url.h"
#include "indexer/bulkresp.h"
#include "indexer/sink.h"
#include "indexer/target.h"

#define SMALL_REPLY ((size_t)64 << 10)

enum step { ST_ROOT, ST_RESOLVE, ST_ALIAS, ST_CREATE, ST_CANARY, ST_NEXT, ST_DONE };

struct probe {
    struct sink *s;
    struct target *t;
    struct target_probe_opts o;
    void (*done)(struct target *t, void *arg);
    void *arg;
    enum step step;
    size_t i;              /* the index being probed */
    bool calling;          /* inside sink_call: a reply waits for drive() */
    bool replied;
    int err;
    long status;
    struct buf body;       /* the last reply */
};

/* Never the same version twice in a process, and above the last one. */
static uint64_t canary_version(void)
{
    static uint64_t last;
    struct timeval tv;
    uint64_t v;

    gettimeofday(&tv, NULL);
    v = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
    if (v <= last + 3)
        v = last + 4;
    last = v;
    return v;
}

static void on_reply(void *arg, int err, long status, const char *body, size_t len)
{
    struct probe *p = arg;

    p->err = err;
    p->status = err < 0 ? 0 : status;
    buf_truncate(&p->body, 0);
    if (len && buf_append(&p->body, body, len) < 0)
        p->err = -ENOMEM;
    p->replied = true;
}

static void drive(struct probe *p);

static void on_reply_drive(void *arg, int err, long status, const char *body, size_t len)
{
    struct probe *p = arg;

    on_reply(p, err, status, body, len);
    if (!p->calling)
        drive(p);
}

static const char *body_text(const struct probe *p)
{
    return p->body.ptr ? p->body.ptr : "";
}

/* The engine's error as "type: reason" (or the first bytes of the reply). */
static void reply_error(const struct probe *p, char *out, size_t cap)
{
    bulkresp_error_text(p->body.ptr, p->body.len, out, cap);
}

static enum target_verdict failure_of(int err, long status)
{
    if (err == 0 && (status == 401 || status == 403))
        return TARGET_DENIED;
    return TARGET_UNREACHABLE;
}

static void set_verdict(struct target *t, struct target_index *ix, enum target_verdict v,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_verdict(struct target *t, struct target_index *ix, enum target_verdict v,
                        const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (ix) {
        ix->verdict = v;
        vsnprintf(ix->why, sizeof(ix->why), fmt, ap);
    } else {
        vsnprintf(t->why, sizeof(t->why), fmt, ap);
    }
    va_end(ap);
    if (v > t->verdict)
        t->verdict = v;
}

/* A request that failed (no answer, or a status the step cannot use). */
static void request_failed(struct probe *p, struct target_index *ix, const char *what)
{
    char text[400];

    if (p->err < 0) {
        set_verdict(p->t, ix, TARGET_UNREACHABLE, "%s: no answer (%s)", what, strerror(-p->err));
        return;
    }
    reply_error(p, text, sizeof(text));
    set_verdict(p->t, ix, failure_of(0, p->status), "%s: HTTP %ld %s", what, p->status, text);
}

static bool answered(const struct probe *p)
{
    return p->err == 0 && p->status >= 200 && p->status < 300;
}

/* ---- the steps' replies ---- */

static void root_done(struct probe *p)
{
    target_parse_root(p->err < 0 ? 0 : p->status, body_text(p), p->body.len, &p->t->root);
    if (p->err < 0 || p->status == 401 || p->status == 403 || p->status == 408 ||
        p->status == 429 || p->status >= 500) {
        request_failed(p, NULL, "GET /");
        p->step = ST_DONE;
        return;
    }
    p->step = p->t->nix ? ST_RESOLVE : ST_DONE;
}

static void resolve_done(struct probe *p, struct target_index *ix)
{
    char what[400];

    ix->kind = target_parse_resolve(ix->name, p->err < 0 ? 0 : p->status, body_text(p),
                                    p->body.len);
    if (p->err < 0 || p->status == 401 || p->status == 403 || p->status == 408 ||
        p->status == 429 || p->status >= 500) {
        snprintf(what, sizeof(what), "GET /_resolve/index/%s", ix->name);
        request_failed(p, ix, what);
        p->step = ST_NEXT;
        return;
    }
    switch (ix->kind) {
    case TK_DATA_STREAM:
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "\"%s\" is a data stream, which takes only op_type create: a document "
                    "there can never be updated or deleted. Point [table %s] index at a regular "
                    "index, or at an alias of one",
                    ix->name, ix->table);
        p->step = ST_NEXT;
        return;
    case TK_ALIAS: p->step = ST_ALIAS; return;
    case TK_ABSENT:
        p->step = p->o.create && ix->template_body ? ST_CREATE
                  : p->o.create && p->o.canary     ? ST_CANARY
                                                   : ST_NEXT;
        return;
    default: p->step = p->o.canary ? ST_CANARY : ST_NEXT; return;
    }
}

static void alias_done(struct probe *p, struct target_index *ix)
{
    size_t n = 0;
    char what[400];
    int rc;

    if (!answered(p)) {
        snprintf(what, sizeof(what), "GET /_alias/%s", ix->name);
        request_failed(p, ix, what);
        p->step = ST_NEXT;
        return;
    }
    rc = target_parse_alias(ix->name, body_text(p), p->body.len, ix->write_index,
                            sizeof(ix->write_index), &n);
    if (rc == -ENOENT) {
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "\"%s\" is an alias of %zu indices and none is its write index: the engine "
                    "refuses writes to it. Mark one with is_write_index (POST /_aliases), or "
                    "point [table %s] index at an index",
                    ix->name, n, ix->table);
        p->step = ST_NEXT;
        return;
    }
    p->step = p->o.canary ? ST_CANARY : ST_NEXT;
}

static void create_done(struct probe *p, struct target_index *ix)
{
    char text[400];

    if (answered(p)) {
        ix->created = true;
        ix->kind = TK_INDEX;
        log_info("index %s created from %s", ix->name, ix->template_path);
    } else if (p->err == 0 && p->status == 400 &&
               strstr(body_text(p), "resource_already_exists_exception")) {
        ix->kind = TK_INDEX; /* made meanwhile by someone else: it is there */
    } else if (p->err == 0 && p->status >= 400 && p->status < 500 && p->status != 401 &&
               p->status != 403 && p->status != 408 && p->status != 429) {
        reply_error(p, text, sizeof(text));
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "the engine refused to create index \"%s\" from %s: HTTP %ld %s. Fix the "
                    "file, or create the index yourself",
                    ix->name, ix->template_path, p->status, text);
        p->step = ST_NEXT;
        return;
    } else {
        char what[400];

        snprintf(what, sizeof(what), "PUT /%s", ix->name);
        request_failed(p, ix, what);
        p->step = ST_NEXT;
        return;
    }
    p->step = p->o.canary ? ST_CANARY : ST_NEXT;
}

static void canary_done(struct probe *p, struct target_index *ix)
{
    char why[600];
    bool left = false;
    enum target_canary c = target_parse_canary(p->err < 0 ? 0 : p->status, body_text(p),
                                               p->body.len, &left, why, sizeof(why));

    ix->canary_left = left;
    if (left)
        log_warn("the probe's canary document %s may be left in index %s (its delete failed): "
                 "delete it", TARGET_CANARY_ID, ix->name);
    p->step = ST_NEXT;
    switch (c) {
    case CANARY_OK:
        ix->versions = TV_OK;
        if (ix->kind == TK_ABSENT)
            ix->kind = TK_INDEX; /* the canary's write made it */
        break;
    case CANARY_NO_ID:
        ix->versions = TV_NO_ID;
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "the engine refuses client document ids (%s), as OpenSearch Serverless time "
                    "series and vector search collections do: documents could never be "
                    "updated or deleted. Use a search collection",
                    why);
        break;
    case CANARY_DATA_STREAM:
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "writes to \"%s\" land in a data stream (%s), which takes only op_type "
                    "create: a document there can never be updated or deleted. Point [table %s] "
                    "index at a regular index, or at an alias of one",
                    ix->name, why, ix->table);
        break;
    case CANARY_IGNORED:
        ix->versions = TV_IGNORED;
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "the engine ignores external versions: the canary %s at version %llu was "
                    "overwritten by version %llu, so an older image would overwrite a newer "
                    "one. Point [sink] url at the engine itself, not at something that drops "
                    "version and version_type",
                    TARGET_CANARY_ID, (unsigned long long)ix->canary_version,
                    (unsigned long long)(ix->canary_version - 1));
        break;
    case CANARY_REFUSED:
        ix->versions = TV_REFUSED;
        set_verdict(p->t, ix, TARGET_CANNOT_MIRROR,
                    "the engine refused the canary %s written with version_type=external: %s. "
                    "ddb2es needs external versions; with [sink] probe = false the canary is "
                    "not written",
                    TARGET_CANARY_ID, why);
        break;
    case CANARY_DENIED:
    case CANARY_RETRY: {
        char text[700], e[400];

        if (p->err < 0) {
            snprintf(text, sizeof(text), "no answer (%s)", strerror(-p->err));
        } else if (why[0]) {
            snprintf(text, sizeof(text), "%s", why);
        } else {
            reply_error(p, e, sizeof(e));
            snprintf(text, sizeof(text), "HTTP %ld %s", p->status, e);
        }
        set_verdict(p->t, ix, c == CANARY_DENIED ? TARGET_DENIED : TARGET_UNREACHABLE,
                    "POST /_bulk (the canary): %s", text);
        break;
    }
    }
}

/* ---- the steps' requests ---- */

/* Sends the request of p->step; false when it could not be (p->step moved on). */
static bool start_step(struct probe *p)
{
    struct target_index *ix = p->i < p->t->nix ? &p->t->ix[p->i] : NULL;
    char *path = NULL, *body = NULL;
    const char *method = "GET", *ctype = NULL;
    size_t len = 0, max = 0;
    int rc;

    switch (p->step) {
    case ST_ROOT: path = strdup("/"); max = SMALL_REPLY; break;
    case ST_RESOLVE: path = url_path("/_resolve/index/", ix->name); break;
    case ST_ALIAS: path = url_path("/_alias/", ix->name); break;
    case ST_CREATE:
        method = "PUT";
        path = url_path("/", ix->name);
        ctype = "application/json";
        body = strdup(ix->template_body);
        len = body ? strlen(body) : 0;
        max = SMALL_REPLY;
        break;
    case ST_CANARY:
        method = "POST";
        path = strdup("/_bulk");
        ctype = "application/x-ndjson";
        ix->canary_version = canary_version();
        body = target_canary_body(ix->name, ix->canary_version, &len);
        ix->canary_version += 2; /* the first write's */
        max = SMALL_REPLY;
        break;
    default: return false;
    }
    rc = path && (body || !ctype) ? 0 : -ENOMEM;
    if (rc == 0) {
        p->calling = true;
        rc = sink_call(p->s, method, path, ctype, body, len, max, on_reply_drive, p);
        p->calling = false;
    }
    free(path);
    free(body);
    if (rc < 0) {
        set_verdict(p->t, ix, TARGET_UNREACHABLE, "the request was not sent: %s", strerror(-rc));
        p->step = ST_DONE;
        return false;
    }
    return true;
}

static void finish(struct probe *p)
{
    void (*done)(struct target *, void *) = p->done;
    struct target *t = p->t;
    void *arg = p->arg;

    buf_close(&p->body);
    free(p);
    done(t, arg);
}

/* Runs the steps until one waits for its reply. */
static void drive(struct probe *p)
{
    for (;;) {
        struct target_index *ix = p->i < p->t->nix ? &p->t->ix[p->i] : NULL;

        if (p->replied) {
            p->replied = false;
            switch (p->step) {
            case ST_ROOT: root_done(p); break;
            case ST_RESOLVE: resolve_done(p, ix); break;
            case ST_ALIAS: alias_done(p, ix); break;
            case ST_CREATE: create_done(p, ix); break;
            case ST_CANARY: canary_done(p, ix); break;
            default: break;
            }
            continue;
        }
        if (p->step == ST_NEXT) {
            p->i++;
            p->step = p->i < p->t->nix ? ST_RESOLVE : ST_DONE;
            continue;
        }
        if (p->step == ST_DONE) {
            finish(p);
            return;
        }
        if (start_step(p) && !p->replied)
            return;
    }
}

int target_probe(struct sink *s, struct target *t, const struct target_probe_opts *o,
                 void (*done)(struct target *t, void *arg), void *arg)
{
    struct probe *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    target_reset(t);
    p->s = s;
    p->t = t;
    p->o = *o;
    p->done = done;
    p->arg = arg;
    buf_init(&p->body, BUF_NOMAX);
    if (o->aoss) {
        t->root.flavour = TF_AOSS; /* no GET / there */
        p->step = t->nix ? ST_RESOLVE : ST_DONE;
    } else {
        p->step = ST_ROOT;
    }
    drive(p);
    return 0;
}
