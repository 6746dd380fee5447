/* verify_confirm — candidates: a difference is read again before it is
 * believed.  The live daemon is usually a moment behind the table, so a
 * document found missing or stale may only be late: after settle_ms the
 * document (_mget) and then the item (consistent BatchGetItem) are read
 * again, up to 100 candidates at a time.
 *   equal now                      dropped (the daemon caught up)
 *   the item changed since         read again after settle_ms, up to
 *                                  VERIFY_ROUNDS times; then reported as
 *                                  it stands, and named as kept changing
 *   the same item, still differing confirmed: reported, and with repair
 *                                  sent through the sink, then read once
 *                                  more (CS_RECHECK)
 * An id of the index alone (CS_FIRST) is read at once first: equal (an
 * item written after the Scan passed it) it is never a candidate.
 *
 * Repairs (SPEC: the index never goes back to an older image):
 *   missing  the item's document at the backfill version replay uses
 *            (docver_below(now - margin)): any stream event since wins;
 *   stale    the same document, overwriting what is there even when it
 *            carries the daemon's last version: external_gte with
 *            max(the document's _version, the backfill version);
 *   extra    a delete, external_gte at the _version read at confirmation:
 *            a daemon write since (a higher version) wins with 409.
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/streams.h"
#include "base/backoff.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "config/config.h"
#include "daemon/docver.h"
#include "indexer/sink.h"

#define BATCH_MAX 100 /* keys per BatchGetItem */

static const char *const kind_word[VK_NKINDS] = { "missing", "stale", "extra" };

static void cand_free(struct verify *v, struct cand *c)
{
    list_remove(&c->link);
    json_decref(c->key);
    free(c);
    v->ncand--;
}

/* The candidate leaves: reading may go on. */
static void cand_done(struct verify *v, struct cand *c)
{
    bool was_busy = verify_busy(v);

    cand_free(v, c);
    if (was_busy && !verify_busy(v))
        verify_resume(v);
}

static void queue(struct verify *v, struct cand *c, bool now)
{
    list_remove(&c->link);
    if (now) {
        c->due = uv_now(v->app.loop);
        list_push_tail(&v->first, &c->link);
    } else {
        c->due = uv_now(v->app.loop) + (uint64_t)v->o->settle_ms;
        list_push_tail(&v->due, &c->link); /* settle_ms is one: the list stays by due time */
    }
}

int verify_cand_add(struct verify *v, const char *id, size_t id_len, json_t *key,
                    enum cstage stage, enum vkind kind, uint64_t item_hash, int64_t doc_version)
{
    struct cand *c = malloc(sizeof(*c) + id_len + 1);

    if (!c) {
        json_decref(key);
        return -ENOMEM;
    }
    memset(c, 0, sizeof(*c));
    list_init(&c->link);
    c->key = key;
    c->item_hash = item_hash;
    c->doc_version = doc_version;
    c->kind = kind;
    c->stage = stage;
    c->id_len = id_len;
    memcpy(c->id, id, id_len);
    c->id[id_len] = '\0';
    v->ncand++;
    queue(v, c, stage == CS_FIRST);
    verify_confirm_kick(v);
    return 0;
}

/* ---- repairs ------------------------------------------------------------------ */

static void not_repaired(struct verify *v, struct cand *c, const char *why)
{
    logc_warn((&(struct log_ctx){ .table = v->o->table }), "%s document %.*s not repaired: %s",
              kind_word[c->kind], (int)c->id_len, c->id, why);
    verify_note(v, &v->unrepaired, c->id, c->id_len);
    cand_done(v, c);
}

/* Sends the repair of a confirmed candidate; item is the table's item now
 * (NULL for an extra document). */
static void repair(struct verify *v, struct cand *c, json_t *item)
{
    uint64_t below = docver_below((int64_t)time(NULL) - v->o->margin_s);

    if (c->kind == VK_EXTRA) {
        struct buf src = v->d.source, keys = v->d.keys;

        memset(&v->d, 0, sizeof(v->d));
        v->d.source = src;
        v->d.keys = keys;
        buf_reset(&v->d.source);
        buf_reset(&v->d.keys);
        v->d.op = DOC_DELETE;
        v->d.index = v->index;
        v->d.table = v->o->table;
        memcpy(v->d.id, c->id, c->id_len);
        v->d.id[c->id_len] = '\0';
        v->d.id_len = c->id_len;
        v->d.version = (uint64_t)c->doc_version;
        v->d.version_gte = true;
    } else {
        if (!item || verify_make_doc(v, item) != TR_DOC) {
            not_repaired(v, c, "its item cannot be made into a document");
            return;
        }
        v->d.index = v->index;
        v->d.version = below;
        if (c->kind == VK_STALE) {
            if ((uint64_t)c->doc_version > below)
                v->d.version = (uint64_t)c->doc_version;
            v->d.version_gte = true;
        }
    }
    if (v->d.version == 0) {
        not_repaired(v, c, "the document has no version");
        return;
    }
    if (sink_submit(v->app.sink, &v->d, v, (uint64_t)(uintptr_t)c) < 0)
        return; /* closing */
    c->stage = CS_REPAIRING;
    list_remove(&c->link);
    list_push_tail(&v->repairing, &c->link);
}

void verify_repair_done(struct verify *v, struct cand *c, enum sink_outcome o)
{
    if (o == SINK_DLQ) {
        not_repaired(v, c, "the engine refused it (see the dead-letter file)");
        return;
    }
    /* Indexed, or already newer (409), or already gone (404): read once more. */
    c->conflicted = o == SINK_STALE;
    c->stage = CS_RECHECK;
    queue(v, c, true);
    verify_confirm_kick(v);
}

/* ---- one candidate against what was read ------------------------------------ */

static void confirm(struct verify *v, struct cand *c, json_t *item, bool kept_changing)
{
    verify_note(v, &v->found[c->kind], c->id, c->id_len);
    if (kept_changing) {
        verify_note(v, &v->kept_changing, c->id, c->id_len);
        v->changing++;
    }
    logc_info((&(struct log_ctx){ .table = v->o->table }), "%s document: %.*s%s",
              kind_word[c->kind], (int)c->id_len, c->id,
              kept_changing ? " (its item kept changing while it was read again)" : "");
    if (v->o->repair)
        repair(v, c, item);
    else
        cand_done(v, c);
}

/* r: the document now; item, item_canon and hash: the item now (NULL, 0: none). */
static void decide(struct verify *v, struct vres *r, json_t *item, const char *canon,
                   size_t clen, uint64_t hash)
{
    struct cand *c = r->c;
    const char *src = v->batch_canon.ptr ? v->batch_canon.ptr + r->off : "";
    bool equal = item ? r->found && r->len == clen && memcmp(src, canon, clen) == 0 : !r->found;

    /* v->d is the item's document, just made (conflicts: as the sink shapes it) */
    if (!equal && item && r->found)
        equal = verify_shaped_same(v, v->d.source.ptr, v->d.source.len,
                                   v->batch_raw.ptr + r->raw_off, r->raw_len);
    enum vkind kind = !item ? VK_EXTRA : r->found ? VK_STALE : VK_MISSING;
    bool changed = hash != c->item_hash;


    switch (c->stage) {
    case CS_FIRST:
        if (equal) {
            cand_done(v, c); /* written after the Scan passed it */
            return;
        }
        break;
    case CS_SETTLE:
        if (equal) {
            v->dropped++;
            cand_done(v, c);
            return;
        }
        if (!changed) {
            c->kind = kind;
            c->doc_version = r->version;
            confirm(v, c, item, false);
            return;
        }
        if (++c->rounds >= VERIFY_ROUNDS) {
            c->kind = kind;
            c->doc_version = r->version;
            confirm(v, c, item, true);
            return;
        }
        break;
    case CS_RECHECK:
        if (equal) {
            v->repaired[c->kind]++;
            cand_done(v, c);
            return;
        }
        if (++c->rounds >= VERIFY_ROUNDS) {
            not_repaired(v, c, changed ? "its item kept changing" : "it still differs");
            return;
        }
        if (!changed && !c->conflicted) {
            not_repaired(v, c, "it still differs after the engine took the repair");
            return;
        }
        /* The item changed since the repair (the daemon brings the new
         * image), or the repair lost to a version the engine holds: a
         * document deleted or written behind the daemon's back within the
         * margin keeps a version at or above the backfill version, which
         * later repairs pass. */
        c->item_hash = hash;
        c->stage = changed ? CS_RECHECK : CS_RETRY;
        queue(v, c, false);
        return;
    case CS_RETRY:
        if (equal) {
            v->repaired[c->kind]++;
            cand_done(v, c);
            return;
        }
        if (changed) {
            c->item_hash = hash;
            c->stage = CS_RECHECK;
            queue(v, c, false);
            return;
        }
        c->doc_version = r->version;
        repair(v, c, item);
        return;
    default:
        return;
    }
    c->kind = kind;
    c->item_hash = hash;
    c->doc_version = r->version;
    c->stage = CS_SETTLE;
    queue(v, c, false);
}

/* ---- the read again -------------------------------------------------------- */

static void on_confirm_timer(uv_timer_t *t)
{
    verify_confirm_kick(container_of(t, struct verify, confirm_timer));
}

/* The batch ends: what was not decided goes back to be read at once. */
static void batch_end(struct verify *v, long backoff)
{
    for (size_t i = 0; i < v->nbatch; i++)
        if (v->batch[i].c) {
            struct cand *c = v->batch[i].c;

            list_remove(&c->link);
            list_push_head(&v->first, &c->link);
        }
    v->nbatch = 0;
    buf_reset(&v->batch_canon);
    buf_reset(&v->batch_raw);
    v->confirming = false;
    if (v->stopping)
        return;
    if (backoff > 0)
        uv_timer_start(&v->confirm_timer, on_confirm_timer, (uint64_t)backoff, 0);
    else
        verify_confirm_kick(v);
    verify_maybe_complete(v);
}

static struct vres *res_of_id(struct verify *v, const char *id, size_t len)
{
    for (size_t i = 0; i < v->nbatch; i++)
        if (v->batch[i].c && v->batch[i].c->id_len == len &&
            memcmp(v->batch[i].c->id, id, len) == 0)
            return &v->batch[i];
    return NULL;
}

static void on_bgi(const struct ddb_reply *rep, void *arg)
{
    struct verify *v = arg;
    struct streams_batch_get got;
    json_t *items, *unproc, *x;
    struct buf canon;
    size_t j;

    v->bg_call = NULL;
    if (rep->err == -ECANCELED || v->stopping) {
        batch_end(v, 0);
        return;
    }
    if (rep->cls == DDB_FATAL || rep->cls == DDB_NOT_FOUND) {
        verify_stop(v, strstr(rep->type, "AccessDenied") ? 77 : 69,
                    "BatchGetItem on %s refused: HTTP %ld %s %s", v->o->table, rep->status,
                    rep->type, rep->message);
        batch_end(v, 0);
        return;
    }
    if (rep->cls != DDB_OK) {
        uint64_t now = uv_now(v->app.loop);

        if (!v->bg_failing_since)
            v->bg_failing_since = now;
        if (now - v->bg_failing_since >= VERIFY_GIVE_UP_MS) {
            verify_stop(v, 69, "BatchGetItem on %s failing for %d s: HTTP %ld %s %s",
                        v->o->table, VERIFY_GIVE_UP_MS / 1000, rep->status, rep->type,
                        rep->message);
            batch_end(v, 0);
            return;
        }
        log_warn("BatchGetItem on %s failed: HTTP %ld %s %s; retrying", v->o->table,
                 rep->status, rep->type, rep->message);
        batch_end(v, backoff_ms(VERIFY_RETRY_BASE_MS, VERIFY_RETRY_MAX_MS, v->bg_failures++));
        return;
    }
    v->bg_failing_since = 0;
    streams_batch_get_parse(rep->json, v->o->table, &got);
    items = got.items;
    unproc = got.unprocessed;
    /* DynamoDB hands keys back for throughput or its 16 MB reply limit:
     * those are read again (with backoff when nothing came). */
    json_array_foreach(unproc, j, x) {
        buf_reset(&v->keys.scratch.source);
        if (transform_keys(&v->tf, x, &v->keys.scratch, NULL) == TR_DOC) {
            struct vres *r = res_of_id(v, v->keys.scratch.id, v->keys.scratch.id_len);

            if (r)
                r->asked = false; /* not decided: back to the list */
        }
    }
    buf_init(&canon, BUF_NOMAX);
    json_array_foreach(items, j, x) {
        struct vres *r;
        uint64_t hash;

        if (verify_make_doc(v, x) != TR_DOC) {
            /* Counted and logged: the daemon dead-letters it, nothing to hold
             * its document against. */
            if (v->d.id_len && (r = res_of_id(v, v->d.id, v->d.id_len)) && r->asked) {
                cand_done(v, r->c);
                r->c = NULL;
            }
            continue;
        }
        if (!(r = res_of_id(v, v->d.id, v->d.id_len)) || !r->asked)
            continue;
        buf_reset(&canon);
        if (verify_doc_canon(v, &canon, &hash) < 0)
            continue;
        decide(v, r, x, canon.ptr, canon.len, hash);
        r->c = NULL;
        r->asked = false;
    }
    buf_close(&canon);
    /* Asked and not in the reply: no such item. */
    for (size_t i = 0; i < v->nbatch && !v->stopping; i++) {
        struct vres *r = &v->batch[i];

        if (r->c && r->asked) {
            decide(v, r, NULL, NULL, 0, 0);
            r->c = NULL;
        }
    }
    {
        bool none = json_array_size(unproc) && !json_array_size(items);

        batch_end(v, none ? backoff_ms(VERIFY_RETRY_BASE_MS, VERIFY_RETRY_MAX_MS,
                                       v->bg_failures++)
                          : 0);
        if (!none)
            v->bg_failures = 0;
    }
}

/* A key the index's document gives when the _id cannot be read back (a
 * digest of a long key): the key attributes in _source, checked by making
 * the same _id again.  NULL when it cannot be had. */
static json_t *key_from_source(struct verify *v, const struct cand *c, const char *src,
                               size_t len)
{
    const char *names[2] = { v->keys.hash_key, v->keys.range_key };
    size_t nlens[2] = { v->keys.hash_key_len, v->keys.range_key_len };
    char types[2] = { v->keys.hash_type, v->keys.range_type };
    json_t *key = json_object();
    struct buf s;
    bool ok = key != NULL;

    buf_init(&s, BUF_NOMAX);
    for (int i = 0; ok && i < 2 && names[i]; i++) {
        size_t vlen;
        const char *val = verify_member(src, len, names[i], nlens[i], &vlen);
        char t[2] = { types[i], 0 };

        buf_reset(&s);
        if (!val || !types[i]) {
            ok = false;
        } else if (*val == '"' && types[i] != 'N') {
            ok = jsonx_string_decode(val, val + vlen, &s) == 0;
        } else if (*val != '"' && types[i] == 'N') {
            ok = buf_append(&s, val, vlen) == 0;
        } else {
            ok = false;
        }
        if (ok)
            json_object_setn_nocheck(key, names[i], nlens[i],
                                     json_pack("{s:s%}", t, s.ptr ? s.ptr : "", s.len));
    }
    buf_close(&s);
    if (ok) {
        buf_reset(&v->keys.scratch.source);
        ok = transform_keys(&v->tf, key, &v->keys.scratch, NULL) == TR_DOC &&
             v->keys.scratch.id_len == c->id_len &&
             memcmp(v->keys.scratch.id, c->id, c->id_len) == 0;
    }
    if (!ok) {
        json_decref(key);
        key = NULL;
    }
    return key;
}

static int on_got(void *arg, const struct verify_got *g)
{
    struct verify *v = arg;
    struct vres *r = res_of_id(v, g->id, g->id_len);

    if (g->error) {
        verify_engine_refused(v, "_mget", 200, g->error, g->error_len);
        return -ECANCELED;
    }
    if (!r || r->found)
        return 0;
    r->found = g->found && g->src;
    r->version = g->found ? g->version : 0;
    if (r->found) {
        r->off = v->batch_canon.len;
        int rc = verify_canon(g->src, g->src_len, &v->batch_canon);

        /* Not JSON we can compare by value: it differs from every document
         * ddb2es makes, which is what the texts compared would say too. */
        if (rc < 0 && rc != -ENOMEM)
            rc = buf_append(&v->batch_canon, g->src, g->src_len);
        if (rc < 0) {
            verify_stop(v, 70, "out of memory");
            return -ENOMEM;
        }
        r->len = v->batch_canon.len - r->off;
        r->raw_off = v->batch_raw.len;
        if (v->t->type_conflicts == CONFIG_CONFLICTS_SIDE &&
            buf_append(&v->batch_raw, g->src, g->src_len) < 0) {
            verify_stop(v, 70, "out of memory");
            return -ENOMEM;
        }
        r->raw_len = v->batch_raw.len - r->raw_off;
        if (!r->c->key)
            r->c->key = key_from_source(v, r->c, g->src, g->src_len);
    }
    return 0;
}

static void on_mget(struct verify *v, void *arg, long status, const char *body, size_t len)
{
    json_t *keys, *req;
    size_t nkeys = 0;

    if (v->stopping || !body) {
        batch_end(v, 0);
        return;
    }
    if (status != 200) {
        verify_engine_refused(v, "_mget", status, body, len);
        batch_end(v, 0);
        return;
    }
    if (verify_parse_mget(body, len, on_got, v) < 0 && !v->stopping)
        verify_stop(v, 69, "_mget on %s: a reply that is not an _mget reply (%.*s)", v->index,
                    (int)(len < 200 ? len : 200), body);
    if (v->stopping) {
        batch_end(v, 0);
        return;
    }
    keys = json_array();
    for (size_t i = 0; i < v->nbatch; i++) {
        struct vres *r = &v->batch[i];

        if (!r->c)
            continue;
        if (!r->c->key) {
            /* Neither the _id nor the source gives the item's key. */
            if (r->found) {
                v->unchecked++;
                logc_warn((&(struct log_ctx){ .table = v->o->table }),
                          "document %.*s: its item's key cannot be read back from its _id or "
                          "source (a hmac'd key attribute, or a name renamed): not checked",
                          (int)r->c->id_len, r->c->id);
            }
            cand_done(v, r->c);
            r->c = NULL;
            continue;
        }
        json_array_append(keys, r->c->key);
        r->asked = true;
        nkeys++;
    }
    if (!nkeys) {
        json_decref(keys);
        batch_end(v, 0);
        return;
    }
    req = streams_batch_get_req(v->o->table, keys);
    v->bg_call = req ? ddb_call(v->app.aws, AWS_DYNAMODB, "BatchGetItem", req, on_bgi, v, NULL)
                     : NULL;
    if (!v->bg_call) {
        for (size_t i = 0; i < v->nbatch; i++)
            v->batch[i].asked = false;
        batch_end(v, 1000);
    }
}

static bool in_batch(const struct verify *v, const struct cand *c)
{
    for (size_t i = 0; i < v->nbatch; i++)
        if (v->batch[i].c->id_len == c->id_len && memcmp(v->batch[i].c->id, c->id, c->id_len) == 0)
            return true;
    return false;
}

/* Takes the candidates of list that are due into the batch. */
static void gather(struct verify *v, struct list *from, uint64_t now)
{
    struct list *pos, *n;

    for (pos = from->next; pos != from && v->nbatch < BATCH_MAX; pos = n) {
        struct cand *c = list_entry(pos, struct cand, link);

        n = pos->next;
        if (c->due > now)
            break;
        if (in_batch(v, c)) /* BatchGetItem refuses a key asked twice */
            continue;
        list_remove(&c->link);
        v->batch[v->nbatch++] = (struct vres){ .c = c };
    }
}

void verify_confirm_kick(struct verify *v)
{
    uint64_t now = uv_now(v->app.loop);
    struct buf body, path;
    int rc;

    if (v->confirming || v->stopping)
        return;
    if (!v->batch && !(v->batch = calloc(BATCH_MAX, sizeof(*v->batch)))) {
        verify_stop(v, 70, "out of memory");
        return;
    }
    v->nbatch = 0;
    gather(v, &v->first, now);
    gather(v, &v->due, now);
    if (!v->nbatch) {
        struct cand *c = list_first_entry(&v->due, struct cand, link);

        if (c && !uv_is_active((uv_handle_t *)&v->confirm_timer))
            uv_timer_start(&v->confirm_timer, on_confirm_timer, c->due - now, 0);
        return;
    }
    uv_timer_stop(&v->confirm_timer);
    v->confirming = true;
    buf_init(&body, BUF_NOMAX);
    buf_init(&path, BUF_NOMAX);
    rc = buf_puts(&body, "{\"ids\":[");
    for (size_t i = 0; rc == 0 && i < v->nbatch; i++) {
        if (i)
            rc = buf_putc(&body, ',');
        if (rc == 0)
            rc = jsonx_put_string(&body, v->batch[i].c->id, v->batch[i].c->id_len);
    }
    if (rc == 0)
        rc = buf_puts(&body, "]}");
    if (rc == 0)
        rc = buf_printf(&path, "%s/_mget", v->index_path);
    if (rc == 0)
        rc = verify_engine(v, "POST", path.ptr, body.ptr, body.len, on_mget, NULL);
    buf_close(&body);
    buf_close(&path);
    if (rc < 0) {
        verify_stop(v, 70, "out of memory");
        batch_end(v, 0);
    }
}

void verify_confirm_stop(struct verify *v)
{
    uv_timer_stop(&v->confirm_timer);
    if (v->bg_call)
        ddb_cancel(v->bg_call);
}

void verify_confirm_free(struct verify *v)
{
    struct list *lists[] = { &v->first, &v->due, &v->repairing };

    for (size_t i = 0; i < 3; i++) {
        struct cand *c;

        while ((c = list_first_entry(lists[i], struct cand, link)))
            cand_free(v, c);
    }
    free(v->batch);
    v->batch = NULL;
    buf_close(&v->batch_canon);
    buf_close(&v->batch_raw);
}
