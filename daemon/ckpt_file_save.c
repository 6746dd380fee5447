/* ckpt_file_save — writing the file store to checkpoints.json, on the
 * calling thread or on the loop's thread pool (the format: ckpt_file_int.h). */
#include "daemon/ckpt_file_int.h"
#include "base/atomicfile.h"
#include "base/rfc3339.h"
#include "base/util.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The store as JSON text (malloc'ed, newline-terminated), or NULL. */
static char *serialise(const struct ckpt_file *ck, size_t *len)
{
    json_t *root = json_object(), *streams = json_object();
    char *text = NULL, *out = NULL;
    int format = CKPT_FORMAT_VERSION, bad;

    for (size_t i = 0; i < ck->streams.n; i++)
        for (size_t j = 0; j < ck->streams.v[i]->n; j++)
            if (((const struct ckpt_shard *)ck->streams.v[i]->recs[j])->skip_before)
                format = 2;
    bad = !root || !streams || json_object_set_new(root, "version", json_integer(format)) < 0;

    if (root && streams && json_object_set(root, "streams", streams) < 0)
        bad = 1;
    for (size_t i = 0; !bad && i < ck->streams.n; i++) {
        const struct streamtab_stream *st = ck->streams.v[i];
        json_t *so = json_object(), *shards = json_object();

        bad = !so || !shards || json_object_set_new(so, "table", json_string(st->table)) < 0 ||
              json_object_set(so, "shards", shards) < 0 ||
              json_object_set(streams, st->arn, so) < 0;
        for (size_t j = 0; !bad && j < st->n; j++) {
            const struct ckpt_shard *sh = st->recs[j];
            char when[21];

            rfc3339_format(sh->updated, when);
            bad = json_object_set_new(shards, sh->id,
                                      json_pack("{s:o,s:I,s:I,s:o,s:b,s:s}", "seq",
                                                sh->seq[0] ? json_string(sh->seq) : json_null(),
                                                "ver_s", (json_int_t)sh->ver.second, "ver_n",
                                                (json_int_t)sh->ver.ordinal, "parent",
                                                sh->parent ? json_string(sh->parent) : json_null(),
                                                "done", (int)sh->done, "updated", when)) < 0;
            if (!bad && sh->skip_before)
                bad = json_object_set_new(json_object_get(shards, sh->id), "skip_before",
                                          json_integer((json_int_t)sh->skip_before)) < 0;
        }
        json_decref(so);
        json_decref(shards);
    }
    if (!bad)
        text = json_dumps(root, JSON_INDENT(1) | JSON_COMPACT);
    if (text) {
        size_t n = strlen(text);

        out = realloc(text, n + 2);
        if (out) {
            out[n] = '\n';
            out[n + 1] = '\0';
            *len = n + 1;
        } else {
            free(text);
        }
    }
    json_decref(streams);
    json_decref(root);
    return out;
}

/* Runs on a pool thread: touches only the store's path strings, which never
 * change. */
static int write_file(const struct ckpt_file *ck, const char *data, size_t len)
{
    return atomicfile_write(ck->path, ck->tmp, ck->dir, data, len);
}

int ckpt_file_save_sync(struct ckpt *base)
{
    struct ckpt_file *ck = ckpt_file_of(base);
    size_t len = 0;
    char *data;
    int rc;

    if (ck->job)
        return -EBUSY;
    data = serialise(ck, &len);
    if (!data)
        return -ENOMEM;
    ck->dirty = false;
    rc = write_file(ck, data, len);
    free(data);
    if (rc < 0)
        ck->dirty = true;
    return rc;
}

static void work_cb(uv_work_t *req)
{
    struct save_job *job = container_of(req, struct save_job, work);

    job->status = write_file(job->ck, job->data, job->len);
}

static void after_work_cb(uv_work_t *req, int status);

/* Starts a write of the current state for the waiters w[0..nw), which the
 * job takes over on success only. */
static int start_job(struct ckpt_file *ck, struct uv_loop_s *loop, struct waiter *w, size_t nw)
{
    struct save_job *job = calloc(1, sizeof(*job));
    bool was = ck->dirty;
    int rc;

    if (!job)
        return -ENOMEM;
    job->ck = ck;
    job->data = serialise(ck, &job->len);
    if (!job->data) {
        free(job);
        return -ENOMEM;
    }
    ck->dirty = false;
    rc = uv_queue_work(loop, &job->work, work_cb, after_work_cb);
    if (rc < 0) {
        ck->dirty = was;
        free(job->data);
        free(job);
        return rc;
    }
    job->w = w;
    job->nw = nw;
    ck->job = job;
    return 0;
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct save_job *job = container_of(req, struct save_job, work);
    struct ckpt_file *ck = job->ck;
    int rc = status < 0 ? status : job->status;

    ck->job = NULL;
    if (rc < 0)
        ck->dirty = true;
    if (ck->pending) {
        struct waiter *w = ck->pend;
        size_t nw = ck->npend;
        int src;

        ck->pending = false;
        ck->pend = NULL;
        ck->npend = ck->cappend = 0;
        src = start_job(ck, ck->loop, w, nw);
        if (src < 0) {
            for (size_t i = 0; i < nw; i++)
                if (w[i].cb)
                    w[i].cb(&ck->base, src, w[i].arg);
            free(w);
        }
    }
    /* Last: a callback may start another save. */
    for (size_t i = 0; i < job->nw; i++)
        if (job->w[i].cb)
            job->w[i].cb(&ck->base, rc, job->w[i].arg);
    free(job->w);
    free(job->data);
    free(job);
}

int ckpt_file_save_async(struct ckpt *base, struct uv_loop_s *loop, ckpt_saved_cb *cb,
                         void *arg)
{
    struct ckpt_file *ck = ckpt_file_of(base);
    struct waiter *w;
    int rc;

    if (ck->job) {
        if (ck->npend == ck->cappend) {
            size_t cap = ck->cappend ? ck->cappend * 2 : 2;

            w = realloc(ck->pend, cap * sizeof(*w));
            if (!w)
                return -ENOMEM;
            ck->pend = w;
            ck->cappend = cap;
        }
        ck->pend[ck->npend++] = (struct waiter){ cb, arg };
        ck->pending = true;
        ck->loop = loop;
        return 0;
    }
    w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct waiter){ cb, arg };
    rc = start_job(ck, loop, w, 1);
    if (rc < 0)
        free(w);
    return rc;
}
