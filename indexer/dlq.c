#include "indexer/dlq.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <unistd.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "base/jsonskip.h"
#include "base/jsonx.h"
#include "base/list.h"
#include "base/util.h"
#include "aws/retry.h"
#include "base/log.h"
#include "indexer/bulk.h"


#define RETRY_BASE_MS 100
#define RETRY_MAX_MS 30000

struct dlq_entry {
    struct buf line;
    dlq_done_cb *cb;
    void *arg;
    struct list link; /* in the queue, or in the write set */
};

/* Where the writer is; set_state() is the only writer of q->state.
 * Independent of it: busy (the one request slot, req or work, is in the
 * thread pool: in RUNNING, but also while WAITING, when the failed file is
 * being closed, and while CLOSING, when a write is let finish) and
 * dir_synced (a property of the open file, reset when one is opened). */
enum dlq_state {
    DQ_RUNNING,       /* writes what is queued */
    DQ_WAITING,       /* the timer is armed after a failure: nothing new starts */
    DQ_CLOSING,       /* dlq_close ran: only a write set already on its way goes on */
    DQ_TIMER_CLOSING, /* the file is closed; the timer handle is closing */
    DQ_CLOSED,        /* the timer is closed: closed(arg) runs */
    DQ_NSTATES
};

static const char *const dlq_state_names[] = {
    [DQ_RUNNING] = "running", [DQ_WAITING] = "waiting", [DQ_CLOSING] = "closing",
    [DQ_TIMER_CLOSING] = "timer-closing", [DQ_CLOSED] = "closed",
};
_Static_assert(ARRAY_SIZE(dlq_state_names) == DQ_NSTATES, "a name per dead-letter state");

/* One file operation at a time, driven by step(): open, fsync of the
 * directory (the file may have just been made: without it a crash could
 * lose the file and every entry in it, wherever dlq_path points), then
 * write and fdatasync per group of lines.  A failure closes the file (so a
 * moved or replaced file is reopened) and waits on the timer before trying
 * again. */
struct dlq {
    uv_loop_t *loop;
    char *path;
    enum dlq_state state;
    uv_file fd;                   /* -1 when not open */
    uv_file fd_to_close;          /* after a failure, -1 when none */
    uv_fs_t req;
    bool busy;                    /* req (or work) is in the thread pool */
    bool dir_synced;              /* the directory was fsynced since the file was opened */
    uv_work_t work;               /* the directory's fsync */
    int work_err;
    uv_timer_t timer;
    unsigned fails;
    struct list queue;            /* dlq_entry queued, not yet in a write */
    struct list wset;             /* the entries of the write in progress */
    struct buf wbuf;              /* their lines, concatenated */
    size_t woff;                  /* bytes of wbuf already written */
    size_t npending;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void step(struct dlq *q);

static void set_state(struct dlq *q, enum dlq_state to)
{
    assert(to < DQ_NSTATES);
    if (q->state != to)
        log_debug("dead-letter file %s: %s -> %s", q->path, dlq_state_names[q->state],
                  dlq_state_names[to]);
    q->state = to;
}

/* dlq_close ran. */
static bool closing(const struct dlq *q)
{
    return q->state >= DQ_CLOSING;
}

/* Runs the callbacks of every entry of from, emptied first: a callback may
 * append, and step() may gather a new write set meanwhile. */
static void finish_list(struct dlq *q, struct list *from, int err)
{
    struct list done;
    struct dlq_entry *e;

    list_init(&done);
    list_move(&done, from);
    while ((e = list_first_entry(&done, struct dlq_entry, link))) {
        list_remove(&e->link);
        buf_close(&e->line);
        q->npending--;
        e->cb(err, e->arg);
        free(e);
    }
}

/* The write set is done with (err 0: it is on disk). */
static void finish_wset(struct dlq *q, int err)
{
    buf_reset(&q->wbuf);
    q->woff = 0;
    finish_list(q, &q->wset, err);
}

static void on_timer(uv_timer_t *t)
{
    struct dlq *q = container_of(t, struct dlq, timer);

    if (q->state == DQ_WAITING)
        set_state(q, DQ_RUNNING);
    step(q);
}

static void fail(struct dlq *q, const char *what, int err)
{
    uint64_t delay = (uint64_t)backoff_ms(RETRY_BASE_MS, RETRY_MAX_MS, q->fails++);

    if (q->fd >= 0) {
        q->fd_to_close = q->fd;
        q->fd = -1;
    }
    if (closing(q)) {
        log_error("dead-letter file %s: %s failed: %s; %zu entries not written", q->path, what,
                  uv_strerror(err), q->npending);
        finish_wset(q, -ECANCELED);
        return;
    }
    log_error("dead-letter file %s: %s failed: %s; retrying in %" PRIu64 " ms", q->path, what,
              uv_strerror(err), delay);
    set_state(q, DQ_WAITING);
    uv_timer_start(&q->timer, on_timer, delay, 0);
}

static void on_fs(uv_fs_t *req)
{
    struct dlq *q = container_of(req, struct dlq, req);
    uv_fs_type type = req->fs_type;
    ssize_t res = req->result;

    uv_fs_req_cleanup(req);
    q->busy = false;
    switch (type) {
    case UV_FS_OPEN:
        if (res < 0) {
            fail(q, "open", (int)res);
        } else {
            q->fd = (uv_file)res;
            q->dir_synced = false;
        }
        break;
    case UV_FS_WRITE:
        if (res < 0)
            fail(q, "write", (int)res);
        else
            q->woff += (size_t)res;
        break;
    case UV_FS_FDATASYNC:
        if (res < 0) {
            q->woff = 0; /* the data may not be on disk: write it again */
            fail(q, "fdatasync", (int)res);
        } else {
            q->fails = 0;
            finish_wset(q, 0);
        }
        break;
    default: /* UV_FS_CLOSE: nothing to learn from its result */
        break;
    }
    step(q);
}

/* In the thread pool: fsync of the directory holding the file. */
static void dirsync_work(uv_work_t *w)
{
    struct dlq *q = container_of(w, struct dlq, work);
    char *copy = strdup(q->path);
    int fd;

    q->work_err = 0;
    if (!copy) {
        q->work_err = UV_ENOMEM;
        return;
    }
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        q->work_err = uv_translate_sys_error(errno);
    if (fd >= 0)
        close(fd);
    free(copy);
}

static void dirsync_done(uv_work_t *w, int status)
{
    struct dlq *q = container_of(w, struct dlq, work);

    q->busy = false;
    if (status < 0 || q->work_err < 0)
        fail(q, "fsync of its directory", status < 0 ? status : q->work_err);
    else
        q->dir_synced = true;
    step(q);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct dlq *q = container_of((uv_timer_t *)h, struct dlq, timer);

    set_state(q, DQ_CLOSED);
    step(q);
}

/* Moves every queued line into one write and one sync.  0 or -ENOMEM. */
static int gather(struct dlq *q)
{
    struct dlq_entry *e;

    while ((e = list_first_entry(&q->queue, struct dlq_entry, link))) {
        if (buf_append(&q->wbuf, e->line.ptr, e->line.len) < 0) {
            if (!list_empty(&q->wset))
                break;
            return -ENOMEM;
        }
        list_remove(&e->link);
        list_push_tail(&q->wset, &e->link);
    }
    q->woff = 0;
    return 0;
}

/* Starts the next file operation, if one is due; the only place that does. */
static void step(struct dlq *q)
{
    int rc = 0;
    const char *what = NULL;

    if (q->busy)
        return;
    if (q->fd_to_close >= 0) {
        uv_file fd = q->fd_to_close;

        q->fd_to_close = -1;
        if (uv_fs_close(q->loop, &q->req, fd, on_fs) == 0)
            q->busy = true;
        else
            step(q);
        return;
    }
    if (closing(q) && (list_empty(&q->wset) || q->fd < 0)) {
        /* Closing: only a write set already on its way to the file goes on
         * (none is while it was WAITING: a failure leaves the file closed,
         * and one of gathering leaves no write set). */
        if (!list_empty(&q->wset))
            finish_wset(q, -ECANCELED);
        if (q->fd >= 0) {
            q->fd_to_close = q->fd;
            q->fd = -1;
            step(q);
        } else if (q->state == DQ_CLOSING) {
            set_state(q, DQ_TIMER_CLOSING);
            uv_timer_stop(&q->timer);
            uv_close((uv_handle_t *)&q->timer, on_timer_closed);
        } else if (q->state == DQ_CLOSED && q->closed) {
            void (*cb)(void *) = q->closed;

            q->closed = NULL;
            cb(q->closed_arg);
        }
        return;
    }
    if (q->state == DQ_WAITING)
        return;
    if (list_empty(&q->wset) && !list_empty(&q->queue) && gather(q) < 0) {
        log_error("dead-letter file %s: out of memory; retrying", q->path);
        set_state(q, DQ_WAITING);
        uv_timer_start(&q->timer, on_timer, RETRY_BASE_MS, 0);
        return;
    }
    if (list_empty(&q->wset))
        return;
    if (q->fd < 0) {
        what = "open";
        rc = uv_fs_open(q->loop, &q->req, q->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600,
                        on_fs);
    } else if (!q->dir_synced) {
        rc = uv_queue_work(q->loop, &q->work, dirsync_work, dirsync_done);
        if (rc < 0) {
            fail(q, "fsync of its directory", rc);
            step(q);
            return;
        }
        q->busy = true;
        return;
    } else if (q->woff < q->wbuf.len) {
        uv_buf_t b = uv_buf_init(q->wbuf.ptr + q->woff, (unsigned)(q->wbuf.len - q->woff));

        what = "write";
        rc = uv_fs_write(q->loop, &q->req, q->fd, &b, 1, -1, on_fs);
    } else {
        what = "fdatasync";
        rc = uv_fs_fdatasync(q->loop, &q->req, q->fd, on_fs);
    }
    if (rc < 0) {
        uv_fs_req_cleanup(&q->req);
        fail(q, what, rc);
        step(q);
        return;
    }
    q->busy = true;
}

struct dlq *dlq_new(uv_loop_t *loop, const char *path)
{
    struct dlq *q = calloc(1, sizeof(*q));

    if (!q)
        return NULL;
    q->loop = loop;
    q->fd = q->fd_to_close = -1;
    list_init(&q->queue);
    list_init(&q->wset);
    buf_init(&q->wbuf, BUF_NOMAX);
    q->path = strdup(path);
    if (!q->path || uv_timer_init(loop, &q->timer) < 0) {
        free(q->path);
        free(q);
        return NULL;
    }
    return q;
}

int dlq_append(struct dlq *q, struct buf *line, dlq_done_cb *cb, void *arg)
{
    struct dlq_entry *e;

    if (closing(q)) {
        buf_close(line);
        return -ESHUTDOWN;
    }
    e = calloc(1, sizeof(*e));
    if (!e || buf_putc(line, '\n') < 0) {
        free(e);
        buf_close(line);
        return -ENOMEM;
    }
    e->line = *line;
    buf_init(line, line->max);
    e->cb = cb;
    e->arg = arg;
    list_push_tail(&q->queue, &e->link);
    q->npending++;
    step(q);
    return 0;
}

size_t dlq_pending(const struct dlq *q)
{
    return q->npending;
}

void dlq_close(struct dlq *q, void (*closed)(void *arg), void *arg)
{
    set_state(q, DQ_CLOSING);
    q->closed = closed;
    q->closed_arg = arg;
    finish_list(q, &q->queue, -ECANCELED);
    step(q);
}

void dlq_free(struct dlq *q)
{
    if (!q)
        return;
    buf_close(&q->wbuf);
    free(q->path);
    free(q);
}

static int put_str_or_null(struct buf *out, const char *s)
{
    if (!s || !*s)
        return buf_puts(out, "null");
    return bulk_json_string(out, s, strlen(s));
}

/* ,"name": and s as a JSON string (null when empty), once rc is 0. */
static int put_str_member(struct buf *out, int rc, const char *name, const char *s)
{
    if (rc == 0)
        rc = buf_printf(out, ",\"%s\":", name);
    return rc == 0 ? put_str_or_null(out, s) : rc;
}

/* ,"name": and the JSON text json[0..len) (null when empty), once rc is 0. */
static int put_json_member(struct buf *out, int rc, const char *name, const char *json,
                           size_t len)
{
    if (rc == 0)
        rc = buf_printf(out, ",\"%s\":", name);
    if (rc == 0)
        rc = json && len ? buf_append(out, json, len) : buf_puts(out, "null");
    return rc;
}

int dlq_put_text(struct buf *out, const char *text, size_t len)
{
    struct buf b64;
    int rc;

    if (jsonx_utf8_valid(text, len))
        return bulk_json_string(out, text, len);
    buf_init(&b64, BUF_NOMAX);
    rc = buf_puts(&b64, "base64:");
    if (rc == 0)
        rc = buf_reserve(&b64, 4 * (len / 3 + 1));
    if (rc == 0)
        b64.len += (size_t)EVP_EncodeBlock((unsigned char *)b64.ptr + b64.len,
                                           (const unsigned char *)text, (int)len);
    if (rc == 0)
        rc = bulk_json_string(out, b64.ptr, b64.len);
    buf_close(&b64);
    return rc;
}

bool dlq_one_value(const char *text, size_t len)
{
    json_t *v = jsonx_loadb(text, len, JSONX_DECODE_ANY | JSONX_DECODE_INT_AS_REAL, NULL);

    json_decref(v);
    return v != NULL;
}

/* The document as it was sent, when it is one JSON value; otherwise (the
 * engine could not parse it either: a transform bug, or memory gone bad) as
 * a JSON string of its bytes (dlq_put_text), so that the line stays one JSON object that
 * jq and `ddb2es replay --dlq` read, and nothing of it is lost. */
static int put_document(struct buf *out, int rc, const char *doc, size_t len)
{
    if (rc < 0 || !doc || !len || dlq_one_value(doc, len))
        return put_json_member(out, rc, "document", doc, len);
    rc = buf_puts(out, ",\"document\":");
    return rc == 0 ? dlq_put_text(out, doc, len) : rc;
}

int dlq_format(struct buf *out, const struct doc *d, int status, const char *type,
               const char *reason, const char *document, size_t document_len, int64_t now_ms)
{
    size_t len0 = out->len;
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    char when[40];
    int rc;

    gmtime_r(&secs, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    rc = buf_printf(out, "{\"time\":\"%s.%03dZ\"", when, (int)(now_ms % 1000));
    rc = put_str_member(out, rc, "table", d->table);
    rc = put_str_member(out, rc, "shard", d->shard);
    rc = put_str_member(out, rc, "seq", d->seq);
    rc = put_str_member(out, rc, "index", d->index);
    if (rc == 0)
        rc = buf_puts(out, ",\"id\":");
    if (rc == 0)
        rc = bulk_json_string(out, d->id, d->id_len);
    rc = put_json_member(out, rc, "keys", d->keys.ptr, d->keys.len);
    if (rc == 0)
        rc = buf_printf(out, ",\"action\":\"%s\",\"version\":%" PRIu64 ",\"status\":",
                        d->op == DOC_DELETE ? "delete" : "index", d->version);
    if (rc == 0)
        rc = status > 0 ? buf_printf(out, "%d", status) : buf_puts(out, "null");
    if (rc == 0)
        rc = buf_puts(out, ",\"error\":{\"type\":");
    if (rc == 0)
        rc = put_str_or_null(out, type);
    rc = put_str_member(out, rc, "reason", reason);
    if (rc == 0)
        rc = buf_putc(out, '}');
    rc = put_document(out, rc, document, document_len);
    if (rc == 0)
        rc = buf_putc(out, '}');
    if (rc < 0)
        buf_truncate(out, len0);
    return rc;
}

/* ---- reading entries back ---- */

int dlq_parse(const char *line, size_t len, json_t **meta, const char **doc, size_t *doc_len,
              char *err, size_t errlen)
{
    const char *p = line, *end = line + len, *vs = NULL, *ve = NULL;
    json_error_t jerr;
    struct buf copy;
    json_t *root;

    *meta = NULL;
    *doc = NULL;
    *doc_len = 0;
    p = jsonskip_ws(p, end);
    if (p == end || *p != '{')
        goto bad;
    p = jsonskip_ws(p + 1, end);
    while (p < end && *p != '}') {
        const char *ks = p, *ke = *p == '"' ? jsonskip_string(p, end) : NULL, *v;

        if (!ke)
            goto bad;
        p = jsonskip_ws(ke, end);
        if (p == end || *p != ':')
            goto bad;
        v = jsonskip_ws(p + 1, end);
        if (!(p = jsonskip_value(v, end)))
            goto bad;
        if (ke - ks == 10 && memcmp(ks, "\"document\"", 10) == 0) {
            vs = v;
            ve = p;
        }
        p = jsonskip_ws(p, end);
        if (p < end && *p == ',')
            p = jsonskip_ws(p + 1, end);
    }
    /* The rest, without the document (whose numbers jansson could not hold). */
    buf_init(&copy, BUF_NOMAX);
    if (vs) {
        if (buf_append(&copy, line, (size_t)(vs - line)) < 0 || buf_puts(&copy, "null") < 0 ||
            buf_append(&copy, ve, (size_t)(end - ve)) < 0) {
            buf_close(&copy);
            return -ENOMEM;
        }
        root = jsonx_loadb(copy.ptr, copy.len, 0, &jerr);
    } else {
        root = jsonx_loadb(line, len, 0, &jerr);
    }
    buf_close(&copy);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s", root ? "not a JSON object" : jerr.text);
        json_decref(root);
        return -EBADMSG;
    }
    if (!json_is_string(json_object_get(root, "action")) ||
        !json_is_string(json_object_get(root, "index")) ||
        !json_is_string(json_object_get(root, "id"))) {
        snprintf(err, errlen, "not a dead-letter entry (no action, index or id)");
        json_decref(root);
        return -EBADMSG;
    }
    if (vs && !(ve - vs == 4 && memcmp(vs, "null", 4) == 0)) {
        *doc = vs;
        *doc_len = (size_t)(ve - vs);
    }
    *meta = root;
    return 0;
bad:
    snprintf(err, errlen, "not a JSON object at byte %zu", (size_t)(p - line));
    return -EBADMSG;
}
