/* mirror — request files of `ddb2es rebuild` turn the sink's mirror on and
 * off; the daemon acknowledges (mirror.h). */
#include "daemon/mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/atomicfile.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/app.h"
#include "indexer/sink.h"

#define REQUEST_MAX 4096

struct mtable {
    const struct config_table *t;
    char *req_path, *ack_path, *ack_tmp;
    bool have_seen;           /* the request file as last read: */
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    off_t size;
    char want[256], want_id[64];   /* the mirror asked for ("" none) */
    char acked[256], acked_id[64]; /* what the acknowledgement file says ("" none) */
};

struct ack_job {
    uv_work_t work;
    struct mirror_watch *w;
    struct mtable *mt;
    char *data;               /* NULL: remove the acknowledgement */
    size_t len;
    char mirror[256], id[64];
    int status;
};

struct mirror_watch {
    struct app *app;
    uv_timer_t timer;
    struct mtable *tables;
    size_t n;
    bool job;                 /* an acknowledgement being written or removed */
    bool stopping;
};

static char *path_of(const char *state_dir, const char *table, const char *suffix)
{
    char *p = NULL;

    if (asprintf(&p, "%s/rebuild-%s%s", state_dir, table, suffix) < 0)
        return NULL;
    return p;
}

char *mirror_request_path(const char *state_dir, const char *table)
{
    return path_of(state_dir, table, ".json");
}

char *mirror_ack_path(const char *state_dir, const char *table)
{
    return path_of(state_dir, table, ".ack.json");
}

static int copy_str(json_t *root, const char *key, char *out, size_t cap, bool required)
{
    const char *v = json_string_value(json_object_get(root, key));

    if (!v)
        return required ? -EINVAL : 0;
    if (strlen(v) >= cap || !*v)
        return -EINVAL;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

int mirror_parse(const char *text, size_t len, bool ack, struct mirror_request *out, char *why,
                 size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!root) {
        snprintf(why, cap, "not JSON: %s", jerr.text);
        return -EINVAL;
    }
    if (json_integer_value(json_object_get(root, "version")) != MIRROR_FORMAT ||
        copy_str(root, "table", out->table, sizeof(out->table), true) < 0 ||
        copy_str(root, "mirror", out->mirror, sizeof(out->mirror), true) < 0 ||
        copy_str(root, "id", out->id, sizeof(out->id), true) < 0 ||
        copy_str(root, "index", out->index, sizeof(out->index), !ack) < 0) {
        snprintf(why, cap, "not a rebuild %s of version %d (version, table, %smirror, id)",
                 ack ? "acknowledgement" : "request", MIRROR_FORMAT, ack ? "" : "index, ");
        rc = -EINVAL;
    }
    json_decref(root);
    return rc;
}

/* ---- acknowledgements, on the thread pool ---- */

static void sync_ack(struct mirror_watch *w, struct mtable *mt);

static void ack_work(uv_work_t *req)
{
    struct ack_job *j = container_of(req, struct ack_job, work);
    char *dir = strdup(j->mt->ack_path), *slash = dir ? strrchr(dir, '/') : NULL;

    if (!dir) {
        j->status = -ENOMEM;
        return;
    }
    if (slash)
        *slash = '\0';
    if (j->data)
        j->status = atomicfile_write(j->mt->ack_path, j->mt->ack_tmp, slash ? dir : ".",
                                     j->data, j->len);
    else
        j->status = unlink(j->mt->ack_path) == 0 || errno == ENOENT ? 0 : -errno;
    free(dir);
}

static void ack_done(uv_work_t *req, int status)
{
    struct ack_job *j = container_of(req, struct ack_job, work);
    struct mirror_watch *w = j->w;
    struct mtable *mt = j->mt;

    w->job = false;
    if (status == 0 && j->status == 0) {
        snprintf(mt->acked, sizeof(mt->acked), "%s", j->mirror);
        snprintf(mt->acked_id, sizeof(mt->acked_id), "%s", j->id);
        if (j->data)
            logc_info((&(struct log_ctx){ .table = mt->t->name }),
                      "rebuild: mirroring index %s to %s (acknowledged in %s)", mt->t->index,
                      j->mirror, mt->ack_path);
    } else {
        logc_error((&(struct log_ctx){ .table = mt->t->name }), "rebuild: cannot %s %s: %s",
                   j->data ? "write" : "remove", mt->ack_path,
                   strerror(-(status ? status : j->status)));
    }
    free(j->data);
    free(j);
    if (w->stopping) {
        unlink(mt->ack_path); /* a stopped daemon mirrors nothing */
        return;
    }
    for (size_t i = 0; i < w->n && !w->job; i++)
        sync_ack(w, &w->tables[i]);
}

/* Writes (or removes) the acknowledgement when it does not say what the
 * sink does now.  One job at a time. */
static void sync_ack(struct mirror_watch *w, struct mtable *mt)
{
    struct ack_job *j;
    json_t *body = NULL;

    if (w->job || w->stopping ||
        (strcmp(mt->want, mt->acked) == 0 && strcmp(mt->want_id, mt->acked_id) == 0))
        return;
    j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->w = w;
    j->mt = mt;
    snprintf(j->mirror, sizeof(j->mirror), "%s", mt->want);
    snprintf(j->id, sizeof(j->id), "%s", mt->want_id);
    if (mt->want[0]) {
        body = json_pack("{s:i, s:s, s:s, s:s, s:I}", "version", MIRROR_FORMAT, "table",
                         mt->t->name, "mirror", mt->want, "id", mt->want_id, "pid",
                         (json_int_t)getpid());
        j->data = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (!j->data) {
            free(j);
            return;
        }
        j->len = strlen(j->data);
    }
    if (uv_queue_work(w->app->loop, &j->work, ack_work, ack_done) != 0) {
        free(j->data);
        free(j);
        return;
    }
    w->job = true;
}

/* ---- requests ---- */

static void set_want(struct mirror_watch *w, struct mtable *mt, const char *mirror,
                     const char *id)
{
    /* The new index's copies are shaped like the live ones (type conflicts). */
    if (strcmp(mt->want, mirror) != 0 &&
        ((*mirror && mt->t->type_conflicts == CONFIG_CONFLICTS_SIDE &&
          sink_set_conflicts(w->app->sink, mirror, mt->t->conflicts_field) < 0) ||
         sink_mirror_set(w->app->sink, mt->t->index, *mirror ? mirror : NULL) < 0)) {
        logc_error((&(struct log_ctx){ .table = mt->t->name }),
                   "rebuild: cannot mirror index %s to %s: out of memory", mt->t->index, mirror);
        return;
    }
    snprintf(mt->want, sizeof(mt->want), "%s", mirror);
    snprintf(mt->want_id, sizeof(mt->want_id), "%s", id);
}

/* The request as the file says it now: "" when there is none, or when it
 * cannot be followed (said at error level, once per version of the file). */
static void read_request(struct mirror_watch *w, struct mtable *mt, const struct stat *st)
{
    struct mirror_request r;
    char text[REQUEST_MAX], why[1200];
    ssize_t n = -1;
    int fd = open(mt->req_path, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        n = read(fd, text, sizeof(text));
        close(fd);
    }
    if (n < 0) {
        if (errno == ENOENT)
            return; /* gone since the stat: the next look sees it */
        snprintf(why, sizeof(why), "%s", strerror(errno));
    } else if (mirror_parse(text, (size_t)n, false, &r, why, sizeof(why)) == 0) {
        if (strcmp(r.table, mt->t->name) != 0 || strcmp(r.index, mt->t->index) != 0) {
            snprintf(why, sizeof(why), "it is for [table %s] index %s, this daemon writes [table "
                     "%s] to index %s", r.table, r.index, mt->t->name, mt->t->index);
        } else if (strcmp(r.mirror, mt->t->index) == 0) {
            snprintf(why, sizeof(why), "it names the live index as the new one");
        } else {
            set_want(w, mt, r.mirror, r.id);
            return;
        }
    }
    logc_error((&(struct log_ctx){ .table = mt->t->name }),
               "rebuild: request %s not followed (no mirror): %s", mt->req_path, why);
    set_want(w, mt, "", "");
}

static void look(struct mirror_watch *w, struct mtable *mt)
{
    struct stat st;

    if (stat(mt->req_path, &st) != 0) {
        mt->have_seen = false;
        if (mt->want[0])
            set_want(w, mt, "", "");
    } else if (!mt->have_seen || st.st_ino != mt->ino || st.st_dev != mt->dev ||
               st.st_size != mt->size || st.st_mtim.tv_sec != mt->mtime.tv_sec ||
               st.st_mtim.tv_nsec != mt->mtime.tv_nsec) {
        mt->have_seen = true;
        mt->dev = st.st_dev;
        mt->ino = st.st_ino;
        mt->size = st.st_size;
        mt->mtime = st.st_mtim;
        read_request(w, mt, &st);
    }
    sync_ack(w, mt);
}

static void on_tick(uv_timer_t *t)
{
    struct mirror_watch *w = container_of(t, struct mirror_watch, timer);

    for (size_t i = 0; i < w->n; i++)
        look(w, &w->tables[i]);
}

struct mirror_watch *mirror_watch_start(struct app *app)
{
    const struct config *cfg = app->cfg;
    struct mirror_watch *w = calloc(1, sizeof(*w));

    if (!w || !(w->tables = calloc(cfg->ntables + 1, sizeof(*w->tables)))) {
        free(w);
        return NULL;
    }
    w->app = app;
    for (size_t i = 0; i < cfg->ntables; i++) {
        struct mtable *mt = &w->tables[i];

        mt->t = &cfg->tables[i];
        mt->req_path = mirror_request_path(cfg->daemon.state_dir, mt->t->name);
        mt->ack_path = mirror_ack_path(cfg->daemon.state_dir, mt->t->name);
        mt->ack_tmp = path_of(cfg->daemon.state_dir, mt->t->name, ".ack.json.tmp");
        w->n++;
        if (!mt->req_path || !mt->ack_path || !mt->ack_tmp) {
            mirror_watch_free(w);
            return NULL;
        }
        /* An acknowledgement left by a daemon that died says nothing now. */
        unlink(mt->ack_path);
    }
    uv_timer_init(app->loop, &w->timer);
    w->timer.data = w;
    on_tick(&w->timer);
    uv_timer_start(&w->timer, on_tick, MIRROR_POLL_MS, MIRROR_POLL_MS);
    return w;
}

void mirror_watch_stop(struct mirror_watch *w)
{
    if (!w || w->stopping)
        return;
    w->stopping = true;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, NULL);
    for (size_t i = 0; i < w->n; i++)
        unlink(w->tables[i].ack_path);
}

void mirror_watch_free(struct mirror_watch *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->tables[i].req_path);
        free(w->tables[i].ack_path);
        free(w->tables[i].ack_tmp);
    }
    free(w->tables);
    free(w);
}
