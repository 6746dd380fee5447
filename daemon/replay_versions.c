/* replay_versions — the versions replayed documents get (replay.h): a
 * scanned or exported item's, which loses to every stream event of its
 * second or later, and a stream record's, the daemon's, counted along its
 * shard's lineage or along the item's own records in the file. */
#include "daemon/replay_int.h"

#include <stdlib.h>
#include <string.h>

#include "daemon/ckpt.h"
#include "daemon/docver.h"
#include "daemon/seqnum.h"

/* ---- stream records: versions ------------------------------------------ */

/* One shard of a stream-record file: the daemon's version state along its
 * lineage, and the last sequence number taken from it. */
struct lineage {
    struct lineage *next;
    struct docver ver;
    char last_seq[SEQNUM_MAX + 1];
    char id[];
};

#define LINEAGE_BUCKETS 1024
#define IV_MAX 200000 /* items remembered; the least recently seen go first
                         (52 bytes each with the buckets, base/fpmap.h: ~11 MB at most) */

/* Loses to every stream event of second (at - margin) or later. */
uint64_t replay_backfill_version(const struct replay *rp, int64_t at)
{
    return docver_below(at - rp->o->margin_s);
}

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

/* The lineage of a shard the file names, made when first seen: a child
 * starts where its parent stands when the file names the parent and the
 * parent's records came first, as the daemon carries the ordinal from a
 * finished parent (ckpt_shard_resume_version).  NULL when out of memory. */
static struct lineage *lineage_of(struct replay_versions *vs, const char *shard,
                                  const char *parent)
{
    uint32_t h = hash_bytes(shard, strlen(shard)) & (LINEAGE_BUCKETS - 1);
    struct lineage *l;

    if (!vs->lineages && !(vs->lineages = calloc(LINEAGE_BUCKETS, sizeof(*vs->lineages))))
        return NULL;
    for (l = vs->lineages[h]; l; l = l->next)
        if (strcmp(l->id, shard) == 0)
            return l;
    if (!(l = calloc(1, sizeof(*l) + strlen(shard) + 1)))
        return NULL;
    strcpy(l->id, shard);
    if (parent && *parent && strcmp(parent, shard) != 0) {
        uint32_t ph = hash_bytes(parent, strlen(parent)) & (LINEAGE_BUCKETS - 1);

        for (struct lineage *p = vs->lineages[ph]; p; p = p->next)
            if (strcmp(p->id, parent) == 0)
                l->ver = p->ver;
    }
    l->next = vs->lineages[h];
    vs->lineages[h] = l;
    return l;
}

/* The version state of one item (its _id), for records whose shard is not
 * known; the least recently seen item is forgotten past IV_MAX.  NULL when
 * out of memory. */
static struct docver *item_ver_of(struct replay_versions *vs, const char *id, size_t len)
{
    struct fpkey k = { .a = id, .alen = len, .hash = hash_bytes(id, len) };
    uint32_t i;

    if ((i = fpmap_find(&vs->items, &k))) {
        fpmap_touch(&vs->items, i);
        return fpmap_value(&vs->items, i);
    }
    if (fpmap_count(&vs->items) >= IV_MAX)
        fpmap_remove(&vs->items, fpmap_oldest(&vs->items));
    i = fpmap_add(&vs->items, &k);
    return i ? fpmap_value(&vs->items, i) : NULL;
}

/* The version the daemon gave (or gives) the record just transformed into
 * rp->d: (second << 20) | ordinal, the ordinal counting the records of its
 * second along its shard's lineage (daemon/ack.h, docver_next).
 *   shard known: counted along it (and from its parent, see lineage_of),
 *     as the daemon does: equal to the daemon's when the file holds the
 *     lineage's records from where the daemon began reading it.  A record
 *     at or below the last sequence number of its shard was given already:
 *     *dup is set.
 *   shard unknown: counted along the item's own records in the file, a
 *     subset of its lineage's, so never above the daemon's ordinal: an
 *     older record never wins over the daemon's newer image, and the
 *     file's records of one item keep their order.
 * 0 when out of memory (sent without a version: the later write wins). */
uint64_t replay_record_version(struct replay *rp, const char *shard, const char *parent,
                               bool *dup)
{
    struct docver fresh = { 0, 0 };
    struct lineage *l;
    struct docver *v;

    *dup = false;
    if (shard) {
        if (!(l = lineage_of(&rp->vers, shard, parent)))
            return 0;
        if (seqnum_valid(rp->d.seq)) {
            if (l->last_seq[0] && seqnum_cmp(rp->d.seq, l->last_seq) <= 0) {
                *dup = true;
                return 0;
            }
            memcpy(l->last_seq, rp->d.seq, strlen(rp->d.seq) + 1);
        }
        return docver_next(&l->ver, rp->d.created);
    }
    if (!rp->d.id_len)
        return docver_next(&fresh, rp->d.created);
    if (!(v = item_ver_of(&rp->vers, rp->d.id, rp->d.id_len)))
        return 0;
    return docver_next(v, rp->d.created);
}

void replay_versions_init(struct replay_versions *vs)
{
    fpmap_init(&vs->items, sizeof(struct docver));
}

void replay_versions_free(struct replay_versions *vs)
{
    for (size_t i = 0; vs->lineages && i < LINEAGE_BUCKETS; i++)
        while (vs->lineages[i]) {
            struct lineage *l = vs->lineages[i];

            vs->lineages[i] = l->next;
            free(l);
        }
    free(vs->lineages);
    fpmap_free(&vs->items);
}
