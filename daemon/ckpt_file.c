/* ckpt_file — the file backend of the checkpoint store: the entries in
 * memory, found by (arn, id) in a hash table and kept per stream in
 * insertion order; ckpt_file_load.c and ckpt_file_save.c read and write
 * STATE_DIR/checkpoints.json (format: ckpt_file_int.h). */
#include "daemon/ckpt_file_int.h"
#include "base/util.h"
#include "daemon/statedir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct ckpt_store_ops file_ops;

struct ckpt_file *ckpt_file_of(struct ckpt *ck)
{
    return container_of(ck, struct ckpt_file, base);
}

static const struct ckpt_file *of_const(const struct ckpt *ck)
{
    return container_of(ck, const struct ckpt_file, base);
}

struct ckpt *ckpt_new(const char *state_dir)
{
    struct ckpt_file *ck = calloc(1, sizeof(*ck));

    if (!ck)
        return NULL;
    ck->base.ops = &file_ops;
    ck->dir = strdup(state_dir);
    ck->path = statedir_path(state_dir, CKPT_FILE);
    ck->tmp = statedir_path(state_dir, CKPT_FILE ".tmp");
    if (!ck->dir || !ck->path || !ck->tmp) {
        ckpt_free(&ck->base);
        return NULL;
    }
    return &ck->base;
}

void ckpt_file_clear(struct ckpt_file *ck)
{
    streamtab_free(&ck->streams, free);
    free(ck->tab);
    ck->tab = NULL;
    ck->tabcap = ck->count = 0;
}

static void file_free(struct ckpt *base)
{
    struct ckpt_file *ck = ckpt_file_of(base);

    ckpt_file_clear(ck);
    free(ck->pend);
    free(ck->dir);
    free(ck->path);
    free(ck->tmp);
    free(ck);
}

static const char *file_path(const struct ckpt *ck)
{
    return of_const(ck)->path;
}

static bool file_dirty(const struct ckpt *ck)
{
    return of_const(ck)->dirty;
}

static bool file_busy(const struct ckpt *ck)
{
    return of_const(ck)->job != NULL;
}

static size_t file_count(const struct ckpt *ck)
{
    return of_const(ck)->count;
}

static uint64_t key_hash(const char *arn, const char *id)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */

    for (; *arn; arn++)
        h = (h ^ (unsigned char)*arn) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u; /* separator: no ARN or id holds 0xff */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return h;
}

/* The slot holding (arn, id), or the empty slot where it would go. */
static size_t tab_slot(const struct ckpt_file *ck, const char *arn, const char *id)
{
    size_t mask = ck->tabcap - 1, i = key_hash(arn, id) & mask;

    while (ck->tab[i] && (strcmp(ck->tab[i]->id, id) != 0 || strcmp(ck->tab[i]->arn, arn) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Rebuilds the table with room for want entries at load <= 1/2. */
static int tab_rebuild(struct ckpt_file *ck, size_t want)
{
    size_t cap = 16;
    struct ckpt_shard **old = ck->tab;

    while (cap < want * 2)
        cap *= 2;
    ck->tab = calloc(cap, sizeof(*ck->tab));
    if (!ck->tab) {
        ck->tab = old;
        return -ENOMEM;
    }
    ck->tabcap = cap;
    free(old);
    for (size_t i = 0; i < ck->streams.n; i++)
        for (size_t j = 0; j < ck->streams.v[i]->n; j++) {
            struct ckpt_shard *sh = ck->streams.v[i]->recs[j];

            ck->tab[tab_slot(ck, sh->arn, sh->id)] = sh;
        }
    return 0;
}

static struct ckpt_shard *file_get(struct ckpt *base, const char *arn, const char *shard_id)
{
    struct ckpt_file *ck = ckpt_file_of(base);

    if (!ck->tabcap)
        return NULL;
    return ck->tab[tab_slot(ck, arn, shard_id)];
}

static struct ckpt_shard *file_add(struct ckpt *base, const char *table, const char *arn,
                                   const char *shard_id, const char *parent, time_t now)
{
    struct ckpt_file *ck = ckpt_file_of(base);
    struct ckpt_shard *sh;
    struct streamtab_stream *st;
    size_t lid, lpar = parent ? strlen(parent) : 0;
    char *p;

    if ((ck->count + 1) * 2 > ck->tabcap && tab_rebuild(ck, ck->count + 1) < 0)
        return NULL;
    if (!(st = streamtab_add(&ck->streams, arn, table)))
        return NULL;
    /* One allocation: the struct, then the id, then the parent id. */
    lid = strlen(shard_id);
    sh = calloc(1, sizeof(*sh) + lid + 1 + (parent ? lpar + 1 : 0));
    if (!sh)
        return NULL;
    p = (char *)(sh + 1);
    memcpy(p, shard_id, lid + 1);
    sh->id = p;
    if (parent) {
        memcpy(p + lid + 1, parent, lpar + 1);
        sh->parent = p + lid + 1;
    }
    sh->arn = st->arn;
    sh->table = st->table;
    sh->updated = now;
    if (streamtab_push(st, sh) < 0) {
        free(sh);
        return NULL;
    }
    ck->tab[tab_slot(ck, arn, shard_id)] = sh;
    ck->count++;
    ck->dirty = true;
    return sh;
}

static void file_changed(struct ckpt *base, struct ckpt_shard *sh)
{
    ckpt_file_of(base)->dirty = true;
}

static int file_foreach(const struct ckpt *base,
                        int (*fn)(const struct ckpt_shard *sh, void *arg), void *arg)
{
    const struct ckpt_file *ck = of_const(base);
    int rc;

    for (size_t i = 0; i < ck->streams.n; i++)
        for (size_t j = 0; j < ck->streams.v[i]->n; j++)
            if ((rc = fn(ck->streams.v[i]->recs[j], arg)) != 0)
                return rc;
    return 0;
}

static size_t file_prune(struct ckpt *base, time_t now)
{
    struct ckpt_file *ck = ckpt_file_of(base);
    size_t dropped = 0;

    for (size_t i = 0; i < ck->streams.n;) {
        struct streamtab_stream *st = ck->streams.v[i];
        size_t n = 0;

        for (size_t j = 0; j < st->n; j++) {
            struct ckpt_shard *sh = st->recs[j];

            if (ckpt_shard_prunable(sh, now)) {
                free(sh);
                dropped++;
            } else {
                st->recs[n++] = sh;
            }
        }
        st->n = n;
        if (n)
            i++;
        else
            streamtab_remove(&ck->streams, st, NULL);
    }
    ck->count -= dropped;
    if (dropped) {
        ck->dirty = true;
        /* Removal from open addressing: rebuild in place (same size, cannot
         * fail for lack of memory if we reuse the array). */
        memset(ck->tab, 0, ck->tabcap * sizeof(*ck->tab));
        for (size_t i = 0; i < ck->streams.n; i++)
            for (size_t j = 0; j < ck->streams.v[i]->n; j++) {
                struct ckpt_shard *sh = ck->streams.v[i]->recs[j];

                ck->tab[tab_slot(ck, sh->arn, sh->id)] = sh;
            }
    }
    return dropped;
}

static const struct ckpt_store_ops file_ops = {
    .free = file_free,
    .path = file_path,
    .load = ckpt_file_load,
    .get = file_get,
    .add = file_add,
    .changed = file_changed,
    .foreach = file_foreach,
    .count = file_count,
    .prune = file_prune,
    .dirty = file_dirty,
    .busy = file_busy,
    .save_async = ckpt_file_save_async,
    .save_sync = ckpt_file_save_sync,
};
