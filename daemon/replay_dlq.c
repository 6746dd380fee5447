/* replay_dlq — `ddb2es replay --format dlq`: each dead-letter entry's item
 * is read again (consistent BatchGetItem, replay.c) and sent as the table
 * holds it now, or deleted at that version when it is gone (replay.h). */
#include "daemon/replay_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "indexer/dlq.h"
#include "indexer/sink.h"

/* The dead-letter entries keep their index name; the sink borrows it. */
static const char *intern_index(struct replay *rp, const char *name)
{
    char **v;

    for (size_t i = 0; i < rp->nindexes; i++)
        if (strcmp(rp->indexes[i], name) == 0)
            return rp->indexes[i];
    v = realloc(rp->indexes, (rp->nindexes + 1) * sizeof(*v));
    if (!v)
        return NULL;
    rp->indexes = v;
    if (!(v[rp->nindexes] = strdup(name)))
        return NULL;
    return v[rp->nindexes++];
}

void replay_dl_done(struct replay *rp, struct dl_entry *de)
{
    list_remove(&de->link);
    json_decref(de->key);
    free(de);
    rp->pending--;
}

/* The entry's item as the table holds it now (item NULL: gone), sent with
 * the Scan's version and send_by: it loses to every stream event of its
 * second or later, and is never sent after the engine may have forgotten a
 * newer delete (an expired one is read again). */
void replay_dl_item(struct replay *rp, struct dl_entry *de, json_t *item, time_t at)
{
    enum transform_result tr;

    replay_doc_reset(rp);
    if (!item && de->digest_like) {
        /* Its _id may be the digest of a long key: the item with this
         * literal key is missing, the one behind the digest may not be. */
        char *k = json_dumps(de->key, JSON_COMPACT);

        rp->skipped++;
        rp->dl_unresolved++;
        logc_warn((&(struct log_ctx){ .table = rp->o->table }),
                  "dead-letter entry without \"keys\": no item has the key %s read back from its "
                  "_id, which may be the digest of a longer key; not replayed", k ? k : "?");
        free(k);
        replay_dl_done(rp, de);
        return;
    }
    tr = item ? transform_item(&rp->tf, item, &rp->d, &rp->err)
              : transform_keys(&rp->tf, de->key, &rp->d, &rp->err);
    rp->d.index = de->index;
    rp->d.version = replay_backfill_version(rp, at);
    if (item)
        rp->d.send_by = uv_now(rp->app.loop) + (uint64_t)rp->o->max_age_ms;
    else
        rp->dropped++; /* deleted since: the index loses it too */
    if (tr == TR_DOC) {
        if (sink_submit(rp->app.sink, &rp->d, &rp->dl_owner, (uint64_t)(uintptr_t)de) == 0)
            return;
    } else {
        rp->errors++;
        log_warn("item cannot be made into a document: %s", rp->err.ptr ? rp->err.ptr : "?");
        if (sink_dead_letter(rp->app.sink, &rp->d, item ? item : de->key, "item_conversion_error",
                             rp->err.ptr ? rp->err.ptr : "malformed item", &rp->dl_owner,
                             (uint64_t)(uintptr_t)de) == 0)
            return;
    }
    /* Closing: left unfinished. */
}

/* A dead-letter entry: its item is read again and sent as the table holds
 * it now, whatever the entry's document and version say (hours old, they
 * could overwrite a newer image the engine took since, or resurrect a
 * deleted item once the engine forgot the delete). */
void replay_dlq_line(struct replay *rp, const char *p, size_t len, unsigned long line)
{
    json_t *meta = NULL;
    const char *doc, *table, *index;
    size_t doc_len;
    char why[256];
    struct dl_entry *de;
    bool digest_like;
    json_t *key;

    if (dlq_parse(p, len, &meta, &doc, &doc_len, why, sizeof(why)) < 0) {
        replay_file_fail(rp, line, "%s", why);
        return;
    }
    table = json_string_value(json_object_get(meta, "table"));
    index = json_string_value(json_object_get(meta, "index"));
    if (table && strcmp(table, rp->o->table) != 0) {
        rp->other_tables++;
        json_decref(meta);
        return;
    }
    rp->read++;
    key = source_dlq_key(&rp->keys, meta, doc, doc_len, &digest_like);
    if (!key) {
        json_t *keys = json_object_get(meta, "keys");
        const char *what = keys && !json_is_null(keys)
                               ? "its \"keys\" do not match the table's key schema"
                           : source_key_hmac_named(&rp->keys, rp->keys.hash_key) ||
                                     source_key_hmac_named(&rp->keys, rp->keys.range_key)
                               ? "no \"keys\", and its _id holds a hmac'd key attribute"
                           : !rp->keys.hash_type
                               ? "no \"keys\", and its _id cannot be read back without the key "
                                 "types from DescribeTable (leave --key out)"
                               : "no \"keys\", and its _id does not read back into a key of "
                                 "this table";

        rp->dl_unresolved++;
        rp->skipped++;
        logc_warn((&(struct log_ctx){ .table = rp->o->table }),
                  "%s:%lu: the entry's item cannot be found (%s): not replayed",
                  rp->files.paths[rp->files.cur], line, what);
        json_decref(meta);
        return;
    }
    de = calloc(1, sizeof(*de));
    if (de)
        de->index = rp->o->index ? rp->o->index : intern_index(rp, index);
    json_decref(meta);
    if (!de || !de->index) {
        free(de);
        json_decref(key);
        replay_stop(rp, 70, "out of memory");
        return;
    }
    de->key = key;
    de->digest_like = digest_like;
    list_push_head(&rp->dl_live, &de->link);
    rp->pending++;
    replay_reread_add(rp, NULL, 0, de);
}
