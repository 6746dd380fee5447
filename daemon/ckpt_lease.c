/* ckpt_lease — the checkpoint store on the lease table (daemon/ckpt_store.h;
 * what it keeps and how it saves: ckpt_lease_new in lease.h): its entries,
 * which are the coordinator's records, and loading them.  Saving:
 * ckpt_lease_save.c. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

static const struct ckpt_store_ops lease_ops;

static struct ckpt_lease *of(const struct ckpt *ck)
{
    return container_of(ck, struct ckpt_lease, base);
}

static struct lease_rec *rec_of(struct ckpt_shard *sh)
{
    return container_of(sh, struct lease_rec, sh);
}

/* ---- entries ------------------------------------------------------------- */

const char *ckpt_lease_path(const struct ckpt *ck)
{
    static char where[300];
    const struct lease *l = of(ck)->l;

    snprintf(where, sizeof(where), "lease table %s", l ? l->table : "(closed)");
    return where;
}

static struct ckpt_shard *lease_get(struct ckpt *ck, const char *arn, const char *id)
{
    struct lease_rec *r = of(ck)->l ? lease_rec_get(of(ck)->l, arn, id) : NULL;

    return r ? &r->sh : NULL;
}

static struct ckpt_shard *lease_add(struct ckpt *ck, const char *table, const char *arn,
                                    const char *id, const char *parent, time_t now)
{
    struct ckpt_lease *st = of(ck);
    struct lease_rec *r;

    if (!st->l || !(r = lease_rec_add(st->l, table, arn, id, parent)))
        return NULL;
    r->sh.updated = now;
    r->dirty = true;
    st->dirty = true;
    st->l->local_adds = true;
    return &r->sh;
}

static void lease_changed(struct ckpt *ck, struct ckpt_shard *sh)
{
    rec_of(sh)->dirty = true;
    of(ck)->dirty = true;
}

static int lease_foreach(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                         void *arg)
{
    const struct lease *l = of(ck)->l;
    int rc;

    for (size_t s = 0; l && s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            const struct lease_rec *r = l->streams.v[s]->recs[k];

            if ((rc = fn(&r->sh, arg)) != 0)
                return rc;
        }
    return 0;
}

static size_t lease_count(const struct ckpt *ck)
{
    return of(ck)->l ? of(ck)->l->count : 0;
}

static size_t lease_prune(struct ckpt *ck, time_t now)
{
    struct ckpt_lease *st = of(ck);
    struct lease *l = st->l;
    size_t dropped = 0;

    for (size_t s = 0; l && s < l->streams.n; s++)
        for (size_t k = l->streams.v[s]->n; k-- > 0;) {
            struct streamtab_stream *stream = l->streams.v[s];
            struct lease_rec *r = stream->recs[k];

            if (!ckpt_shard_prunable(&r->sh, now) || r->held || r->writing || r->op ||
                r->renewing)
                continue;
            lease_rec_drop(l, r);
            dropped++;
            if (s >= l->streams.n || l->streams.v[s] != stream) { /* the stream went with it */
                s--;
                break;
            }
        }
    st->dirty |= dropped > 0;
    return dropped;
}

static bool lease_dirty(const struct ckpt *ck)
{
    return of(ck)->dirty;
}

static bool lease_busy(const struct ckpt *ck)
{
    return of(ck)->job || of(ck)->pending;
}

/* ---- loading ------------------------------------------------------------- */

struct sync_read {
    struct lease *l;
    bool done;
    int status;
    char *err;
    size_t errlen;
};

static void on_sync_read(int status, const json_t *items, const char *why, void *arg)
{
    struct sync_read *sr = arg;

    sr->done = true;
    if (status == -ENOENT) { /* no table yet: nothing was ever saved */
        sr->status = 0;
        return;
    }
    if (status < 0) {
        snprintf(sr->err, sr->errlen, "lease table %s: %s", sr->l->table, why);
        sr->status = status == -ECANCELED ? -ETIMEDOUT : -EIO;
        return;
    }
    sr->status = lease_rec_read(sr->l, items, lease_now(sr->l), true, sr->err, sr->errlen);
}

static int sync_start_read(uv_loop_t *loop, struct aws *aws, void *arg)
{
    struct sync_read *sr = arg;

    return leasetab_scan(aws, sr->l->table, on_sync_read, sr) ? 0 : -ENOMEM;
}

static bool sync_read_done(void *arg)
{
    return ((struct sync_read *)arg)->done;
}

static int lease_load(struct ckpt *ck, char *err, size_t errlen)
{
    struct ckpt_lease *st = of(ck);
    struct sync_read sr = { .l = st->l, .err = err, .errlen = errlen };
    int rc;

    if (errlen)
        err[0] = '\0';
    if (!st->l)
        return -EBADF;
    if (st->loaded || st->l->local_adds || st->dirty)
        return -EBUSY;
    st->loaded = true;
    if (st->l->read_once)
        return 0; /* the coordinator's last read is the state */
    rc = lease_sync_run(&st->l->conn, SYNC_TIMEOUT_MS, sync_start_read, sync_read_done, &sr);
    if (rc == 0)
        rc = sr.status;
    if (rc == -ETIMEDOUT && errlen && !err[0])
        snprintf(err, errlen, "lease table %s: no answer in %ld s", st->l->table,
                 SYNC_TIMEOUT_MS / 1000);
    if (rc < 0) {
        lease_rec_free_all(st->l);
        st->l->read_once = false;
        st->loaded = false;
    }
    st->dirty = false;
    return rc;
}

/* ---- life ---------------------------------------------------------------- */

static void lease_free_store(struct ckpt *ck)
{
    struct ckpt_lease *st = of(ck);

    if (st->l)
        st->l->store = NULL;
    free(st->pend);
    free(st);
}

void ckpt_lease_detach(struct ckpt_lease *st)
{
    st->l = NULL;
}

struct ckpt *ckpt_lease_new(struct lease *l)
{
    struct ckpt_lease *st;

    if (!l || l->store || !(st = calloc(1, sizeof(*st))))
        return NULL;
    st->base.ops = &lease_ops;
    st->l = l;
    l->store = st;
    return &st->base;
}

static const struct ckpt_store_ops lease_ops = {
    .free = lease_free_store,
    .path = ckpt_lease_path,
    .load = lease_load,
    .get = lease_get,
    .add = lease_add,
    .changed = lease_changed,
    .foreach = lease_foreach,
    .count = lease_count,
    .prune = lease_prune,
    .dirty = lease_dirty,
    .busy = lease_busy,
    .save_async = ckpt_lease_save_async,
    .save_sync = ckpt_lease_save_sync,
};
