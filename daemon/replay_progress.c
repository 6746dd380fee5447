/* replay_progress — the progress file of a Scan (state_dir/replay-TABLE.json):
 * per segment the key after the finished prefix of its pages, whether it is
 * done, and the items it finished; written atomically, read at the start. */
#include "daemon/replay_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomicfile.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"

#define PROGRESS_FORMAT 1

static json_t *progress_json(const struct replay *rp)
{
    json_t *segs = json_array();

    for (int i = 0; i < rp->scan.nsegs; i++) {
        const struct segment *sg = &rp->scan.segs[i];

        json_array_append_new(segs, json_pack("{s:b, s:O?, s:I}", "done", sg->done, "key",
                                              sg->saved, "items", (json_int_t)sg->items));
    }
    /* "first": the number of progress[0] when the file holds a range of
     * the segments (--only-segments). */
    return json_pack("{s:i, s:s, s:i, s:i, s:o}", "version", PROGRESS_FORMAT, "table",
                     rp->o->table, "segments", rp->scan.s.total, "first", rp->scan.first,
                     "progress", segs);
}

struct save_job {
    uv_work_t work;
    struct replay *rp;
    char *data, *dir;
    size_t len;
    int status;
};

static void save_work(uv_work_t *w)
{
    struct save_job *j = container_of(w, struct save_job, work);

    j->status = atomicfile_write(j->rp->prog.path, j->rp->prog.tmp, j->dir, j->data,
                                 j->len);
}

static void save_done(uv_work_t *w, int status)
{
    struct save_job *j = container_of(w, struct save_job, work);
    struct replay *rp = j->rp;

    rp->prog.saving = false;
    if ((status ? status : j->status) < 0) {
        rp->prog.dirty = true;
        log_error("cannot write %s: %s; retrying", rp->prog.path,
                  strerror(-(status ? status : j->status)));
    }
    free(j->data);
    free(j);
    if (rp->stopping) /* take_down waited for this write */
        replay_take_down(rp);
}

/* Writes the progress file: on the thread pool while running, on the loop
 * thread at the end. */
void replay_progress_save(struct replay *rp)
{
    json_t *j;
    struct save_job *job;

    if (rp->prog.saving)
        return;
    j = progress_json(rp);
    job = calloc(1, sizeof(*job));
    if (!j || !job)
        goto fail;
    job->rp = rp;
    job->data = jsonx_dumps(j, &job->len); /* saved keys hold any string */
    job->dir = rp->app.cfg->daemon.state_dir;
    json_decref(j);
    j = NULL;
    if (!job->data)
        goto fail;
    rp->prog.dirty = false;
    if (!rp->closing_done) {
        if (uv_queue_work(rp->app.loop, &job->work, save_work, save_done) == 0) {
            rp->prog.saving = true;
            return;
        }
    }
    save_work(&job->work);
    if (job->status < 0) {
        log_error("cannot write %s: %s", rp->prog.path, strerror(-job->status));
        if (rp->exit_code == 0)
            rp->exit_code = 74;
    }
    free(job->data);
    free(job);
    return;
fail:
    json_decref(j);
    free(job);
    rp->prog.dirty = true;
}

int replay_progress_load(struct replay *rp, int *nsegs)
{
    json_error_t jerr;
    json_t *root, *arr, *e;
    size_t i;
    int want = rp->o->segments;
    json_int_t total, first;

    *nsegs = want ? want : 4;
    rp->scan.s.total = *nsegs;
    rp->scan.first = 0;
    if (rp->o->only) {
        *nsegs = rp->o->only_last - rp->o->only_first + 1;
        rp->scan.first = rp->o->only_first;
    }
    if (rp->o->restart) {
        if (unlink(rp->prog.path) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    root = jsonx_load_file(rp->prog.path, 0, &jerr);
    if (!root) {
        if (access(rp->prog.path, F_OK) != 0)
            return 0;
        snprintf(rp->why, sizeof(rp->why), "%s:%d: %s (use --restart to start over)",
                 rp->prog.path, jerr.line, jerr.text);
        return -EBADMSG;
    }
    arr = json_object_get(root, "progress");
    total = json_integer_value(json_object_get(root, "segments"));
    first = json_integer_value(json_object_get(root, "first")); /* absent: 0 */
    if (json_integer_value(json_object_get(root, "version")) != PROGRESS_FORMAT ||
        !json_is_array(arr) || json_array_size(arr) < 1 || total > 1024 || first < 0 ||
        first + (json_int_t)json_array_size(arr) > total ||
        (!rp->o->only && (first != 0 || total != (json_int_t)json_array_size(arr)))) {
        snprintf(rp->why, sizeof(rp->why), "%s: not a replay progress file (use --restart to "
                 "start over)", rp->prog.path);
        json_decref(root);
        return -EBADMSG;
    }
    if (rp->o->only && (total != rp->scan.s.total || first != rp->scan.first ||
                        (json_int_t)json_array_size(arr) != *nsegs)) {
        /* The same file name, another partition of the table: the saved
         * keys would mean other segments. */
        snprintf(rp->why, sizeof(rp->why), "%s was saved for segments %lld-%lld of %lld, not "
                 "%d-%d of %d (use --restart to start over)", rp->prog.path, (long long)first,
                 (long long)(first + (json_int_t)json_array_size(arr) - 1), (long long)total,
                 rp->o->only_first, rp->o->only_last, rp->scan.s.total);
        json_decref(root);
        return -EINVAL;
    }
    if (want && want != (int)json_array_size(arr) && !rp->o->only)
        log_warn("%s was saved with %zu segments: continuing with %zu (--restart to change)",
                 rp->prog.path, json_array_size(arr), json_array_size(arr));
    *nsegs = (int)json_array_size(arr);
    rp->scan.s.total = (int)total;
    rp->scan.segs = calloc((size_t)*nsegs, sizeof(*rp->scan.segs));
    if (!rp->scan.segs) {
        json_decref(root);
        return -ENOMEM;
    }
    json_array_foreach(arr, i, e) {
        struct segment *sg = &rp->scan.segs[i];
        json_t *key = json_object_get(e, "key");

        sg->done = json_is_true(json_object_get(e, "done"));
        sg->items = (uint64_t)json_integer_value(json_object_get(e, "items"));
        if (json_is_object(key)) {
            sg->saved = json_incref(key);
            sg->ss.start = json_incref(key);
        }
        rp->done_before += sg->items;
    }
    json_decref(root);
    return 1;
}
