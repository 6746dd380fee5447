/* rebuild — `ddb2es rebuild`: the phases of rebuild.h, one after the other,
 * each saved before the next begins.  The engine is asked through the
 * sink's auth (sink_call) on this command's own loop; the backfill and the
 * verification run their own (replay_run, verify_run). */
#include "daemon/rebuild.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "base/atomicfile.h"
#include "base/backoff.h"
#include "base/buf.h"
#include "base/http.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/url.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/clients.h"
#include "daemon/mirror.h"
#include "daemon/replay.h"
#include "daemon/statedir.h"
#include "daemon/verify.h"
#include "indexer/bulkresp.h"
#include "indexer/sink.h"
#include "indexer/target.h"

#define PROGRESS_FORMAT 1
#define TEMPLATE_MAX ((size_t)1 << 20)
#define REPLY_MAX ((size_t)4 << 20)
#define CALL_GIVE_UP_MS 120000 /* the engine failing every call this long: 69 */
#define WAIT_STEP_MS 100

enum phase { PH_CREATE, PH_MIRROR, PH_BACKFILL, PH_VERIFY, PH_SWITCH, PH_FINISH, PH_N };
static const char *const phase_name[PH_N] = {
    [PH_CREATE] = "create", [PH_MIRROR] = "mirror", [PH_BACKFILL] = "backfill",
    [PH_VERIFY] = "verify", [PH_SWITCH] = "switch", [PH_FINISH] = "finish",
};

struct rebuild {
    const struct config *cfg;
    const struct rebuild_opts *o;
    const struct config_table *t;
    uv_loop_t loop;
    struct app app;
    struct clients clients;
    bool clients_up;
    uv_signal_t sigint, sigterm;
    uv_timer_t timer;
    int signum;               /* the signal that interrupted, 0 none */
    int lock_fd;
    char *template_body;      /* --template's content (owned), or NULL */
    const char *template_src; /* where the body came from, for the messages */
    char *prog_path, *prog_tmp, *req_path, *req_tmp, *ack_path, *scan_path;
    char scan_name[300];
    enum phase phase;
    char new_index[300];
    json_t *old;              /* the alias's indices before the switch (owned) */
    char why[1500];           /* the one line of a non-zero exit */
    /* the request in flight (call) */
    bool replied;
    int err;
    long status;
    struct buf body;
};

static const char *index_name(const struct rebuild *rb)
{
    return rb->t->index;
}

static int fail(struct rebuild *rb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct rebuild *rb, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(rb->why, sizeof(rb->why), fmt, ap);
    va_end(ap);
    return code;
}

/* ---- the loop: waiting, signals ----------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct rebuild *rb = h->data;

    rb->signum = signum;
    uv_stop(&rb->loop);
}

static void on_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static int interrupted(struct rebuild *rb)
{
    return fail(rb, 75, "interrupted by %s in phase %s; run the same command again to continue",
                rb->signum == SIGINT ? "SIGINT" : "SIGTERM", phase_name[rb->phase]);
}

/* Runs the loop for ms (0: until something stops it); false once a signal came. */
static bool wait_ms(struct rebuild *rb, uint64_t ms)
{
    if (ms)
        uv_timer_start(&rb->timer, on_timer, ms, 0);
    if (!rb->signum)
        uv_run(&rb->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&rb->timer);
    return !rb->signum;
}

/* ---- the engine --------------------------------------------------------- */

static void on_reply(void *arg, int err, long status, const char *body, size_t len)
{
    struct rebuild *rb = arg;

    rb->err = err;
    rb->status = err < 0 ? 0 : status;
    buf_truncate(&rb->body, 0);
    if (len && buf_append(&rb->body, body, len) < 0)
        rb->err = -ENOMEM;
    if (buf_putc(&rb->body, '\0') == 0)
        rb->body.len--;
    rb->replied = true;
    uv_stop(&rb->loop);
}

static const char *reply_text(const struct rebuild *rb)
{
    return rb->body.ptr ? rb->body.ptr : "";
}

/* The engine's error of the last reply, "type: reason". */
static const char *reply_error(const struct rebuild *rb, char *out, size_t cap)
{
    bulkresp_error_text(rb->body.ptr, rb->body.len, out, cap);
    return out;
}

static bool transient(const struct rebuild *rb)
{
    return rb->err < 0 || rb->status == 408 || rb->status == 429 || rb->status >= 500;
}

/* One request, again after a backoff while the engine does not answer (no
 * reply, 408, 429, 5xx) for up to CALL_GIVE_UP_MS.  0 with the reply in
 * rb->status and rb->body; else the exit code with rb->why set. */
static int call(struct rebuild *rb, const char *method, const char *path, const json_t *body)
{
    uint64_t start = uv_now(&rb->loop);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    char e[400];
    unsigned attempt = 0;
    int rc;

    if (body && !text)
        return fail(rb, 70, "out of memory");
    for (;;) {
        rb->replied = false;
        rc = sink_call(rb->app.sink, method, path, text ? "application/json" : NULL, text,
                       text ? strlen(text) : 0, REPLY_MAX, on_reply, rb);
        if (rc < 0) {
            free(text);
            return fail(rb, 70, "%s %s: not sent: %s", method, path, strerror(-rc));
        }
        while (!rb->replied)
            uv_run(&rb->loop, UV_RUN_ONCE);
        if (rb->signum) {
            free(text);
            return interrupted(rb);
        }
        if (!transient(rb))
            break;
        if (uv_now(&rb->loop) - start >= CALL_GIVE_UP_MS) {
            free(text);
            if (rb->err < 0)
                return fail(rb, 69, "%s %s: no answer from the search engine for %d s (%s)",
                            method, path, CALL_GIVE_UP_MS / 1000, strerror(-rb->err));
            return fail(rb, 69, "%s %s: HTTP %ld for %d s: %s", method, path, rb->status,
                        CALL_GIVE_UP_MS / 1000, reply_error(rb, e, sizeof(e)));
        }
        log_warn("%s %s: %s; asking again", method, path,
                 rb->err < 0 ? strerror(-rb->err) : reply_error(rb, e, sizeof(e)));
        if (!wait_ms(rb, (uint64_t)backoff_ms(500, 10000, attempt++))) {
            free(text);
            return interrupted(rb);
        }
    }
    free(text);
    if (rb->status == 401 || rb->status == 403)
        return fail(rb, 77, "%s %s: HTTP %ld %s: the credentials may not do this (see README "
                    "\"Rebuild\" for the privileges)", method, path, rb->status,
                    reply_error(rb, e, sizeof(e)));
    return 0;
}

/* What the table's index name is on the engine; for an alias its indices
 * (*indices, owned) and its write index (write, "" when none). */
static int resolve(struct rebuild *rb, enum target_kind *kind, json_t **indices, char *write,
                   size_t cap)
{
    char *path = url_path("/_resolve/index/", index_name(rb)), e[400];
    json_t *root, *v;
    const char *k;
    size_t n;
    int rc;

    *indices = json_array();
    write[0] = '\0';
    if (!path || !*indices)
        return fail(rb, 70, "out of memory");
    rc = call(rb, "GET", path, NULL);
    free(path);
    if (rc)
        return rc;
    *kind = target_parse_resolve(index_name(rb), rb->status, reply_text(rb), rb->body.len);
    if (*kind == TK_UNKNOWN)
        return fail(rb, 69, "GET /_resolve/index/%s: HTTP %ld %s", index_name(rb), rb->status,
                    reply_error(rb, e, sizeof(e)));
    if (*kind != TK_ALIAS)
        return 0;
    path = url_path("/_alias/", index_name(rb));
    if (!path)
        return fail(rb, 70, "out of memory");
    rc = call(rb, "GET", path, NULL);
    free(path);
    if (rc)
        return rc;
    root = rb->status == 200 ? json_loadb(reply_text(rb), rb->body.len, 0, NULL) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(rb, 69, "GET /_alias/%s: HTTP %ld %s", index_name(rb), rb->status,
                    reply_error(rb, e, sizeof(e)));
    }
    json_object_foreach(root, k, v)
        if (json_object_get(json_object_get(v, "aliases"), index_name(rb)))
            json_array_append_new(*indices, json_string(k));
    json_decref(root);
    if (target_parse_alias(index_name(rb), reply_text(rb), rb->body.len, write, cap, &n) < 0)
        write[0] = '\0';
    return 0;
}

/* ---- the progress file -------------------------------------------------- */

static int save(struct rebuild *rb)
{
    json_t *j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:O?}", "version", PROGRESS_FORMAT, "table",
                          rb->t->name, "index", index_name(rb), "new_index", rb->new_index,
                          "phase", phase_name[rb->phase], "old", rb->old);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc;

    json_decref(j);
    if (!text)
        return fail(rb, 70, "out of memory");
    rc = atomicfile_write(rb->prog_path, rb->prog_tmp, rb->cfg->daemon.state_dir, text,
                          strlen(text));
    free(text);
    if (rc < 0)
        return fail(rb, 74, "cannot write %s: %s", rb->prog_path, strerror(-rc));
    log_debug("rebuild %s: phase %s saved", rb->t->name, phase_name[rb->phase]);
    return 0;
}

/* 0 and the phase reached, or a new rebuild (no file); else the exit code. */
static int load(struct rebuild *rb)
{
    json_error_t jerr;
    json_t *j = jsonx_load_file(rb->prog_path, 0, &jerr);
    const char *ph, *ix, *nx;

    if (!j) {
        if (access(rb->prog_path, F_OK) != 0)
            return 1;
        return fail(rb, 65, "%s:%d: %s (remove it to start the rebuild over)", rb->prog_path,
                    jerr.line, jerr.text);
    }
    ph = json_string_value(json_object_get(j, "phase"));
    ix = json_string_value(json_object_get(j, "index"));
    nx = json_string_value(json_object_get(j, "new_index"));
    rb->phase = PH_N;
    for (int i = 0; ph && i < PH_N; i++)
        if (strcmp(ph, phase_name[i]) == 0)
            rb->phase = (enum phase)i;
    if (json_integer_value(json_object_get(j, "version")) != PROGRESS_FORMAT || !ix || !nx ||
        rb->phase == PH_N || strlen(nx) >= sizeof(rb->new_index)) {
        json_decref(j);
        return fail(rb, 65, "%s: not a rebuild progress file (remove it to start over)",
                    rb->prog_path);
    }
    if (strcmp(ix, index_name(rb)) != 0) {
        json_decref(j);
        return fail(rb, 78, "%s is a rebuild of index %s, but [table %s] index is now %s: set "
                    "it back to finish that rebuild, or remove the file (and the index %s) to "
                    "start over", rb->prog_path, ix, rb->t->name, index_name(rb), nx);
    }
    snprintf(rb->new_index, sizeof(rb->new_index), "%s", nx);
    if (json_is_array(json_object_get(j, "old")))
        rb->old = json_incref(json_object_get(j, "old"));
    json_decref(j);
    return 0;
}

/* ---- the phases --------------------------------------------------------- */

/* Before anything is made: what the name is now must be one a rebuild can
 * move (a data stream cannot be; a concrete index only with drop_old). */
static int check_target(struct rebuild *rb)
{
    enum target_kind kind;
    json_t *indices;
    char write[256];
    int rc = resolve(rb, &kind, &indices, write, sizeof(write));

    json_decref(indices);
    if (rc)
        return rc;
    if (kind == TK_DATA_STREAM)
        return fail(rb, 78, "%s is a data stream: ddb2es cannot write to it (see README "
                    "\"The target probe\")", index_name(rb));
    if (kind == TK_INDEX && !rb->o->drop_old)
        return fail(rb, 78, "%s is a concrete index, not an alias: an alias of that name can "
                    "replace it only when the index goes in the same call. Run again with "
                    "--drop-old (index %s is deleted once the new one is filled and checked; "
                    "README \"Rebuild\")", index_name(rb), index_name(rb));
    return 0;
}

static int phase_create(struct rebuild *rb)
{
    char *path = url_path("/", rb->new_index), e[400];
    json_t *body = NULL;
    int rc;

    if (!path)
        return fail(rb, 70, "out of memory");
    if (rb->template_src) {
        body = json_loads(rb->o->template_path ? rb->template_body : rb->t->index_template_body,
                          0, NULL);
        if (!body) {
            free(path);
            return fail(rb, 78, "%s: not JSON", rb->template_src);
        }
    }
    rc = call(rb, "PUT", path, body);
    free(path);
    json_decref(body);
    if (rc)
        return rc;
    if (rb->status == 400 && strstr(reply_text(rb), "resource_already_exists_exception")) {
        log_info("index %s exists (made by this rebuild before it stopped)", rb->new_index);
        return 0;
    }
    if (rb->status < 200 || rb->status >= 300)
        return fail(rb, 78, "the engine refused to create index %s%s%s: HTTP %ld %s",
                    rb->new_index, rb->template_src ? " from " : "",
                    rb->template_src ? rb->template_src : "", rb->status,
                    reply_error(rb, e, sizeof(e)));
    log_info("index %s created%s%s", rb->new_index, rb->template_src ? " from " : "",
             rb->template_src ? rb->template_src : " (no template: the engine's defaults)");
    return 0;
}

static bool daemon_runs(const struct rebuild *rb)
{
    return statedir_lock_held(rb->cfg->daemon.state_dir, STATEDIR_LOCK_FILE);
}

/* Whether the acknowledgement says mirror (with id; id NULL: any). */
static bool acked(const struct rebuild *rb, const char *id)
{
    struct mirror_request a;
    char text[4096], why[200];
    int fd = open(rb->ack_path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, text, sizeof(text)) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0 || mirror_parse(text, (size_t)n, true, &a, why, sizeof(why)) < 0)
        return false;
    return strcmp(a.mirror, rb->new_index) == 0 && (!id || strcmp(a.id, id) == 0);
}

/* The request file; then, while a daemon runs on the state directory, its
 * acknowledgement of this very request. */
static int mirror_on(struct rebuild *rb)
{
    char id[64];
    struct timespec ts;
    json_t *j;
    char *text;
    uint64_t waited = 0, limit = rb->o->ack_timeout_ms > 0 ? (uint64_t)rb->o->ack_timeout_ms
                                                            : 30000;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(id, sizeof(id), "%d-%lld%09ld", (int)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
    j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", MIRROR_FORMAT, "table", rb->t->name,
                  "index", index_name(rb), "mirror", rb->new_index, "id", id);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return fail(rb, 70, "out of memory");
    rc = atomicfile_write(rb->req_path, rb->req_tmp, rb->cfg->daemon.state_dir, text,
                          strlen(text));
    free(text);
    if (rc < 0)
        return fail(rb, 74, "cannot write %s: %s", rb->req_path, strerror(-rc));
    for (;;) {
        if (!daemon_runs(rb)) {
            log_info("no ddb2es runs on %s now: the daemon mirrors %s to %s from its next start "
                     "(it reads %s first)", rb->cfg->daemon.state_dir, index_name(rb),
                     rb->new_index, rb->req_path);
            return 0;
        }
        if (acked(rb, id)) {
            log_info("the daemon mirrors %s to %s", index_name(rb), rb->new_index);
            return 0;
        }
        if (waited >= limit)
            return fail(rb, 69, "the ddb2es running on %s (lock %s/%s) did not acknowledge %s "
                        "within %llu s: is it a version without rebuild, or does it follow "
                        "another configuration? Nothing was changed; run again once it does",
                        rb->cfg->daemon.state_dir, rb->cfg->daemon.state_dir, STATEDIR_LOCK_FILE,
                        rb->req_path, (unsigned long long)(limit / 1000));
        if (!wait_ms(rb, WAIT_STEP_MS))
            return interrupted(rb);
        waited += WAIT_STEP_MS;
    }
}

static int phase_backfill(struct rebuild *rb)
{
    struct replay_opts ro = {
        .table = rb->t->name,
        .format = REPLAY_SCAN,
        .index = rb->new_index,
        .segments = rb->o->segments,
        .rate = rb->o->rate,
        .margin_s = rb->o->margin_s > 0 ? rb->o->margin_s : 5,
        .max_age_ms = 30000,
        .give_up_ms = 300000,
        .progress_ms = 10000,
        .progress_name = rb->scan_name,
    };
    int rc;

    log_info("backfill: a Scan of %s into %s (progress in %s)", rb->t->name, rb->new_index,
             rb->scan_path);
    rc = replay_run(rb->cfg, &ro);
    if (rc == 75)
        return fail(rb, 75, "interrupted in phase backfill; run the same command again to "
                    "continue");
    if (rc != 0)
        return fail(rb, rc, "the backfill of %s stopped with exit %d (see above); run again to "
                    "continue", rb->new_index, rc);
    return 0;
}

static int phase_verify(struct rebuild *rb)
{
    struct verify_opts vo = {
        .table = rb->t->name,
        .index = rb->new_index,
        .segments = rb->o->segments,
        .rate = rb->o->rate,
        .repair = true,
        .settle_ms = 5000,
        .progress_ms = 10000,
    };
    int rc;

    log_info("verify: %s against %s, repairing", rb->new_index, rb->t->name);
    rc = verify_run(rb->cfg, &vo);
    if (rc == 1)
        return fail(rb, 1, "index %s still differs from table %s after repair (see above); "
                    "nothing was moved: run again to verify again", rb->new_index, rb->t->name);
    if (rc == 75)
        return fail(rb, 75, "interrupted in phase verify; run the same command again to "
                    "continue");
    if (rc != 0)
        return fail(rb, rc, "verify of %s stopped with exit %d (see above); run again to "
                    "continue", rb->new_index, rc);
    return 0;
}

static json_t *add_action(const char *index, const char *alias)
{
    return json_pack("{s:{s:s, s:s, s:b}}", "add", "index", index, "alias", alias,
                     "is_write_index", 1);
}

/* One POST /_aliases: the engines apply its actions atomically, so no read
 * through the name ever finds nothing. */
static int phase_switch(struct rebuild *rb)
{
    enum target_kind kind;
    json_t *indices, *acts = json_array(), *v, *body;
    char write[256], e[400];
    size_t i;
    int rc = resolve(rb, &kind, &indices, write, sizeof(write));

    if (rc) {
        json_decref(acts);
        json_decref(indices);
        return rc;
    }
    switch (kind) {
    case TK_ALIAS:
        if (json_array_size(indices) == 1 &&
            strcmp(json_string_value(json_array_get(indices, 0)), rb->new_index) == 0 &&
            strcmp(write, rb->new_index) == 0) {
            log_info("alias %s already points at %s", index_name(rb), rb->new_index);
            json_decref(acts);
            json_decref(indices);
            return 0;
        }
        json_decref(rb->old);
        rb->old = json_array();
        json_array_foreach(indices, i, v) {
            if (strcmp(json_string_value(v), rb->new_index) == 0)
                continue;
            json_array_append_new(acts, json_pack("{s:{s:O, s:s}}", "remove", "index", v, "alias",
                                                  index_name(rb)));
            json_array_append(rb->old, v);
        }
        json_array_append_new(acts, add_action(rb->new_index, index_name(rb)));
        break;
    case TK_INDEX:
        if (!rb->o->drop_old) {
            json_decref(acts);
            json_decref(indices);
            return check_target(rb);
        }
        /* remove_index runs first, then the alias takes the name. */
        json_array_append_new(acts, add_action(rb->new_index, index_name(rb)));
        json_array_append_new(acts, json_pack("{s:{s:s}}", "remove_index", "index",
                                              index_name(rb)));
        break;
    case TK_ABSENT:
        json_array_append_new(acts, add_action(rb->new_index, index_name(rb)));
        break;
    default:
        json_decref(acts);
        json_decref(indices);
        return check_target(rb);
    }
    json_decref(indices);
    if ((rc = save(rb))) { /* the old indices, for drop_old after a stop */
        json_decref(acts);
        return rc;
    }
    body = json_pack("{s:o}", "actions", acts);
    rc = call(rb, "POST", "/_aliases", body);
    json_decref(body);
    if (rc)
        return rc;
    if (rb->status != 200)
        return fail(rb, 69, "POST /_aliases: HTTP %ld %s; nothing was moved: run again",
                    rb->status, reply_error(rb, e, sizeof(e)));
    log_info("alias %s now points at %s%s", index_name(rb), rb->new_index,
             kind == TK_INDEX ? " (the index of that name was deleted in the same call)" : "");
    return 0;
}

static int phase_finish(struct rebuild *rb)
{
    uint64_t waited = 0, limit = rb->o->ack_timeout_ms > 0 ? (uint64_t)rb->o->ack_timeout_ms
                                                            : 30000;
    size_t i;
    json_t *v;
    char e[400];
    int rc;

    if (unlink(rb->req_path) != 0 && errno != ENOENT)
        return fail(rb, 74, "cannot remove %s: %s", rb->req_path, strerror(errno));
    while (daemon_runs(rb) && acked(rb, NULL) && waited < limit) {
        if (!wait_ms(rb, WAIT_STEP_MS))
            return interrupted(rb);
        waited += WAIT_STEP_MS;
    }
    if (waited >= limit)
        log_warn("the daemon did not say it stopped mirroring to %s within %llu s (%s is still "
                 "there); the alias points at that index, so its writes land there anyway",
                 rb->new_index, (unsigned long long)(limit / 1000), rb->ack_path);
    json_array_foreach(rb->o->drop_old ? rb->old : NULL, i, v) {
        char *path = url_path("/", json_string_value(v));

        if (!path)
            return fail(rb, 70, "out of memory");
        rc = call(rb, "DELETE", path, NULL);
        free(path);
        if (rc)
            return rc;
        if (rb->status == 404) {
            log_info("old index %s: already gone", json_string_value(v));
        } else if (rb->status < 200 || rb->status >= 300) {
            return fail(rb, 69, "DELETE /%s: HTTP %ld %s; the alias already points at %s: "
                        "delete it yourself", json_string_value(v), rb->status,
                        reply_error(rb, e, sizeof(e)), rb->new_index);
        } else {
            log_info("old index %s deleted", json_string_value(v));
        }
    }
    return 0;
}

/* ---- setting up, the driver --------------------------------------------- */

static char *state_file(const struct config *cfg, const char *table, const char *suffix)
{
    char *p = NULL;

    if (asprintf(&p, "%s/rebuild-%s%s", cfg->daemon.state_dir, table, suffix) < 0)
        return NULL;
    return p;
}

static void on_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                        void *arg)
{
    /* Nothing is submitted to this sink: it only carries sink_call. */
}

/* --template: read and checked as [table] index_template is. */
static int read_template(struct rebuild *rb)
{
    char why[300];
    struct buf b;
    FILE *f = fopen(rb->o->template_path, "r");
    char chunk[8192];
    size_t n;

    if (!f)
        return fail(rb, 78, "--template %s: %s", rb->o->template_path, strerror(errno));
    buf_init(&b, TEMPLATE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) < 0) {
            fclose(f);
            buf_close(&b);
            return fail(rb, 78, "--template %s: larger than 1 MiB", rb->o->template_path);
        }
    fclose(f);
    if (buf_putc(&b, '\0') < 0 || target_template_check(b.ptr, b.len - 1, why, sizeof(why)) < 0) {
        buf_close(&b);
        return fail(rb, 78, "--template %s: %s", rb->o->template_path, why);
    }
    rb->template_body = buf_take(&b);
    return 0;
}

static int prepare(struct rebuild *rb)
{
    const struct config *cfg = rb->cfg;
    int rc;

    rb->t = config_table_find(cfg, rb->o->table);
    if (!rb->t)
        return fail(rb, 78, "no [table %s] in the configuration", rb->o->table);
    if (cfg->leases.enabled)
        return fail(rb, 78, "rebuild does not work with [leases]: every worker has its own "
                    "state directory, and each would have to mirror; stop the workers but one "
                    "(README \"Rebuild\")");
    if (rb->o->template_path && (rc = read_template(rb)))
        return rc;
    rb->template_src = rb->o->template_path ? rb->o->template_path : rb->t->index_template;
    rb->prog_path = state_file(cfg, rb->t->name, ".progress.json");
    rb->prog_tmp = state_file(cfg, rb->t->name, ".progress.json.tmp");
    rb->req_path = mirror_request_path(cfg->daemon.state_dir, rb->t->name);
    rb->req_tmp = state_file(cfg, rb->t->name, ".json.tmp");
    rb->ack_path = mirror_ack_path(cfg->daemon.state_dir, rb->t->name);
    rb->scan_path = state_file(cfg, rb->t->name, ".scan.json");
    snprintf(rb->scan_name, sizeof(rb->scan_name), "rebuild-%s.scan", rb->t->name);
    if (!rb->prog_path || !rb->prog_tmp || !rb->req_path || !rb->req_tmp || !rb->ack_path ||
        !rb->scan_path)
        return fail(rb, 70, "out of memory");
    {
        char lock[300];

        snprintf(lock, sizeof(lock), "rebuild-%s.lock", rb->t->name);
        rc = statedir_lock_named(cfg->daemon.state_dir, lock, &rb->lock_fd);
        if (rc == -EWOULDBLOCK)
            return fail(rb, 73, "another rebuild of %s is running (lock %s/%s)", rb->t->name,
                        cfg->daemon.state_dir, lock);
        if (rc < 0)
            return fail(rb, 73, "cannot create the state directory %s: %s",
                        cfg->daemon.state_dir, strerror(-rc));
    }
    rc = load(rb);
    if (rc == 1) {
        time_t now = time(NULL);
        struct tm tm;
        char stamp[32];

        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dt%H%M%Sz", &tm);
        if ((size_t)snprintf(rb->new_index, sizeof(rb->new_index), "%s-%s", index_name(rb),
                             stamp) >= sizeof(rb->new_index))
            return fail(rb, 78, "[table %s] index %s: too long a name", rb->t->name,
                        index_name(rb));
        rb->phase = PH_CREATE;
        return 0;
    }
    if (rc == 0)
        log_info("rebuild of %s into %s: continuing at phase %s", rb->t->name, rb->new_index,
                 phase_name[rb->phase]);
    return rc;
}

static int drive(struct rebuild *rb)
{
    enum phase start = rb->phase;
    int rc = 0;

    if (rb->phase <= PH_CREATE && (rc = check_target(rb)))
        return rc;
    /* Continuing past the mirror: the daemon may have started since. */
    if (start > PH_MIRROR && start < PH_FINISH && (rc = mirror_on(rb)))
        return rc;
    while (rc == 0 && rb->phase < PH_N) {
        switch (rb->phase) {
        case PH_CREATE: rc = phase_create(rb); break;
        case PH_MIRROR: rc = mirror_on(rb); break;
        case PH_BACKFILL: rc = phase_backfill(rb); break;
        case PH_VERIFY: rc = phase_verify(rb); break;
        case PH_SWITCH: rc = phase_switch(rb); break;
        case PH_FINISH: rc = phase_finish(rb); break;
        default: return fail(rb, 70, "no such phase");
        }
        if (rc == 0 && rb->signum)
            rc = interrupted(rb);
        if (rc)
            return rc;
        if (rb->phase == PH_FINISH) {
            if (unlink(rb->prog_path) != 0 && errno != ENOENT)
                log_warn("cannot remove %s: %s", rb->prog_path, strerror(errno));
            return 0;
        }
        rb->phase++;
        rc = save(rb);
        if (rc == 0 && rb->phase == PH_VERIFY)
            unlink(rb->scan_path); /* the Scan is done: a later rebuild scans anew */
    }
    return rc;
}

static void take_down(struct rebuild *rb)
{
    struct app *app = &rb->app;

    /* Active, they would keep the loop from ever draining. */
    uv_close((uv_handle_t *)&rb->sigint, NULL);
    uv_close((uv_handle_t *)&rb->sigterm, NULL);
    uv_close((uv_handle_t *)&rb->timer, NULL);
    clients_take_down_now(app);
    sink_free(app->sink);
    clients_close(&rb->clients);
}

int rebuild_run(const struct config *cfg, const struct rebuild_opts *o)
{
    struct rebuild *rb = calloc(1, sizeof(*rb));
    int rc;

    if (!rb || uv_loop_init(&rb->loop) != 0) {
        free(rb);
        fprintf(stderr, "ddb2es rebuild: out of memory\n");
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    rb->cfg = cfg;
    rb->o = o;
    rb->lock_fd = -1;
    rb->app.loop = &rb->loop;
    rb->app.cfg = cfg;
    buf_init(&rb->body, REPLY_MAX + 1);
    uv_signal_init(&rb->loop, &rb->sigint);
    uv_signal_init(&rb->loop, &rb->sigterm);
    uv_timer_init(&rb->loop, &rb->timer);
    rb->sigint.data = rb->sigterm.data = rb;
    uv_signal_start(&rb->sigint, on_signal, SIGINT);
    uv_signal_start(&rb->sigterm, on_signal, SIGTERM);

    rc = prepare(rb); /* main ran clients_preflight for the table */
    if (rc == 0)
        rc = clients_open(&rb->clients, &rb->app, NULL, on_doc_done, NULL, rb);
    if (rc == 0) {
        log_info("rebuild of table %s: index %s -> %s", rb->t->name, index_name(rb),
                 rb->new_index);
        rc = drive(rb);
    }
    take_down(rb);
    if (rc == 0)
        printf("rebuild %s: alias %s points at %s\n", rb->t->name, index_name(rb),
               rb->new_index);
    else if (rb->why[0])
        fprintf(stderr, "ddb2es rebuild: %s\n", rb->why);
    if (uv_loop_close(&rb->loop) != 0)
        log_warn("event loop closed with handles still open");
    statedir_unlock(rb->lock_fd);
    buf_close(&rb->body);
    json_decref(rb->old);
    free(rb->template_body);
    free(rb->prog_path);
    free(rb->prog_tmp);
    free(rb->req_path);
    free(rb->req_tmp);
    free(rb->ack_path);
    free(rb->scan_path);
    free(rb);
    log_flush();
    return rc;
}
