/* ckpt — see ckpt.h; the rules every backend shares, and the calls into the
 * backend (ckpt_store.h). */
#include "daemon/ckpt.h"
#include "daemon/ckpt_store.h"

#include <errno.h>
#include <string.h>

#define SEEN_KEEP (60 * 60) /* a done shard listed this recently is not pruned */

void ckpt_free(struct ckpt *ck)
{
    if (ck)
        ck->ops->free(ck);
}

const char *ckpt_path(const struct ckpt *ck)
{
    return ck->ops->path(ck);
}

int ckpt_load(struct ckpt *ck, char *err, size_t errlen)
{
    return ck->ops->load(ck, err, errlen);
}

bool ckpt_dirty(const struct ckpt *ck)
{
    return ck->ops->dirty(ck);
}

bool ckpt_busy(const struct ckpt *ck)
{
    return ck->ops->busy(ck);
}

size_t ckpt_count(const struct ckpt *ck)
{
    return ck->ops->count(ck);
}

/* ---- entries ------------------------------------------------------------ */

struct ckpt_shard *ckpt_shard_get(struct ckpt *ck, const char *arn, const char *shard_id)
{
    return ck->ops->get(ck, arn, shard_id);
}

struct ckpt_shard *ckpt_shard_add(struct ckpt *ck, const char *table, const char *arn,
                                  const char *shard_id, const char *parent, time_t now)
{
    struct ckpt_shard *sh;

    if (!*table || !*arn || !*shard_id || (parent && !*parent))
        return NULL;
    if ((sh = ckpt_shard_get(ck, arn, shard_id)))
        return sh;
    return ck->ops->add(ck, table, arn, shard_id, parent, now);
}

int ckpt_shard_advance(struct ckpt *ck, struct ckpt_shard *sh, const char *seq,
                       const struct docver *ver, time_t now)
{
    if (!seqnum_valid(seq) || (sh->seq[0] && seqnum_cmp(seq, sh->seq) < 0))
        return -EINVAL;
    strcpy(sh->seq, seq); /* fits: seqnum_valid bounds it */
    sh->ver = *ver;
    sh->updated = now;
    ck->ops->changed(ck, sh);
    return 0;
}

void ckpt_shard_finish(struct ckpt *ck, struct ckpt_shard *sh, time_t now)
{
    sh->done = true;
    sh->updated = now;
    ck->ops->changed(ck, sh);
}

void ckpt_shard_seen(struct ckpt_shard *sh, time_t now)
{
    sh->seen = now;
}

void ckpt_shard_skip_before(struct ckpt *ck, struct ckpt_shard *sh, int64_t second)
{
    if (sh->skip_before != second) {
        sh->skip_before = second;
        ck->ops->changed(ck, sh);
    }
}

int ckpt_foreach(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                 void *arg)
{
    return ck->ops->foreach(ck, fn, arg);
}

static int is_of_table(const struct ckpt_shard *sh, void *arg)
{
    return strcmp(sh->table, arg) == 0;
}

bool ckpt_table_known(const struct ckpt *ck, const char *table)
{
    return ckpt_foreach(ck, is_of_table, (void *)table) != 0;
}

/* ---- versions ----------------------------------------------------------- */

void ckpt_shard_raise_version(struct ckpt *ck, struct ckpt_shard *sh, const struct docver *ver)
{
    if (docver_cmp(ver, &sh->ver) > 0) {
        sh->ver = *ver;
        ck->ops->changed(ck, sh);
    }
}

struct docver ckpt_shard_resume_version(struct ckpt *ck, struct ckpt_shard *sh)
{
    struct ckpt_shard *par;

    if (sh->seq[0] || !sh->parent || !(par = ckpt_shard_get(ck, sh->arn, sh->parent)))
        return sh->ver;
    ckpt_shard_raise_version(ck, sh, &par->ver);
    return sh->ver;
}

struct table_max {
    const char *table;
    struct docver max;
};

static int raise_max(const struct ckpt_shard *sh, void *arg)
{
    struct table_max *tm = arg;

    if (strcmp(sh->table, tm->table) == 0 && docver_cmp(&sh->ver, &tm->max) > 0)
        tm->max = sh->ver;
    return 0;
}

struct docver ckpt_table_max_version(const struct ckpt *ck, const char *table)
{
    struct table_max tm = { table, { 0, 0 } };

    ckpt_foreach(ck, raise_max, &tm);
    return tm.max;
}

/* ---- pruning ------------------------------------------------------------ */

bool ckpt_shard_prunable(const struct ckpt_shard *sh, time_t now)
{
    return sh->done && now - sh->updated > CKPT_PRUNE_AGE &&
           !(sh->seen && now - sh->seen < SEEN_KEEP);
}

size_t ckpt_prune(struct ckpt *ck, time_t now)
{
    return ck->ops->prune(ck, now);
}

/* ---- saving ------------------------------------------------------------- */

int ckpt_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg)
{
    return ck->ops->save_async(ck, loop, cb, arg);
}

int ckpt_save_sync(struct ckpt *ck)
{
    return ck->ops->save_sync(ck);
}
