/* sink_conflicts — type conflicts in the sink (sink_set_conflicts): the
 * known types per index, documents shaped before they go, refused ones
 * held until the index's mapping is read, then sent once more.
 *
 * Every loop has an exit: an item is reshaped once (item.reshaped); a
 * second refusal, or a reshape that moves nothing, dead-letters it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "indexer/bulkresp.h"
#include "indexer/conflicts.h"
#include "indexer/sink_int.h"

#define MAPPING_MAX ((size_t)16 << 20) /* a GET _mapping reply, at most */

/* A refused item waiting for its index's mapping. */
struct waiting {
    struct waiting *next;
    struct item *it;
    char *text;            /* its action as it was sent (action line, source, newline) */
    char *path;            /* the path the engine named */
    int status;
    char *type, *reason;   /* the refusal, for the dead-letter file if it comes to that */
};

struct sink_conflicts {
    struct sink_conflicts *next;
    struct sink *s;
    char *index, *field;
    struct conflicts *known;
    bool fetching;         /* a GET _mapping is out: items wait for it */
    struct waiting *waiting, **tail;
};

static struct sink_conflicts *find(const struct sink *s, const char *index)
{
    for (struct sink_conflicts *sc = s->conflicts; sc && index; sc = sc->next)
        if (strcmp(sc->index, index) == 0)
            return sc;
    return NULL;
}

int sink_set_conflicts(struct sink *s, const char *index, const char *field)
{
    struct sink_conflicts *sc = find(s, index);

    if (sc) {
        char *f = strdup(field ? field : CONFLICTS_FIELD);

        if (!f)
            return -ENOMEM;
        free(sc->field);
        sc->field = f;
        return 0;
    }
    if (!(sc = calloc(1, sizeof(*sc))))
        return -ENOMEM;
    sc->s = s;
    sc->index = strdup(index);
    sc->field = strdup(field ? field : CONFLICTS_FIELD);
    sc->known = conflicts_new();
    sc->tail = &sc->waiting;
    if (!sc->index || !sc->field || !sc->known) {
        free(sc->index);
        free(sc->field);
        conflicts_free(sc->known);
        free(sc);
        return -ENOMEM;
    }
    sc->next = s->conflicts;
    s->conflicts = sc;
    return 0;
}

static void waiting_free(struct waiting *w)
{
    free(w->text);
    free(w->path);
    free(w->type);
    free(w->reason);
    free(w);
}

void sink_conflicts_free(struct sink *s)
{
    while (s->conflicts) {
        struct sink_conflicts *sc = s->conflicts;

        s->conflicts = sc->next;
        while (sc->waiting) { /* only when freed without a close: nothing reports them */
            struct waiting *w = sc->waiting;

            sc->waiting = w->next;
            sink_item_free(w->it);
            waiting_free(w);
        }
        free(sc->index);
        free(sc->field);
        conflicts_free(sc->known);
        free(sc);
    }
    free(s->type_conflicts);
}

/* ddb2es_type_conflicts_total{table}: one more document of table. */
static void count(struct sink *s, const char *table)
{
    struct sink_item_failure *f;
    size_t n = s->st.n_type_conflicts;

    if (!table)
        table = "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->type_conflicts[i].table, table) == 0) {
            s->type_conflicts[i].count++;
            return;
        }
    if (n == SINK_MAX_FAILURE_SERIES || !(n & (n - 1))) { /* grow at powers of two */
        f = n == SINK_MAX_FAILURE_SERIES
                ? NULL
                : realloc(s->type_conflicts, (n ? 2 * n : 1) * sizeof(*f));
        if (!f) {
            s->st.type_conflicts_other++;
            return;
        }
        s->type_conflicts = f;
        s->st.type_conflicts = f;
    }
    f = &s->type_conflicts[n];
    memset(f, 0, sizeof(*f));
    f->table = table;
    f->count = 1;
    s->st.n_type_conflicts = n + 1;
}

int sink_conflicts_shape(struct sink *s, struct doc *d)
{
    struct sink_conflicts *sc = d->op == DOC_INDEX ? find(s, d->index) : NULL;
    struct buf out;
    size_t moved;
    int rc;

    if (!sc || !conflicts_count(sc->known))
        return 0;
    buf_init(&out, d->source.max);
    rc = conflicts_shape(sc->known, NULL, sc->field, d->source.ptr, d->source.len, &out,
                         &moved);
    if (rc == -ENOMEM) {
        buf_close(&out);
        return rc;
    }
    if (rc == 0 && moved) {
        buf_close(&d->source);
        d->source = out;
        count(s, d->table);
        return 0;
    }
    buf_close(&out); /* nothing moved, or too big or unreadable: the engine says */
    return 0;
}

/* The waiting items go: each reshaped with what is known now (its own path
 * forced) into one batch sent first, or dead-lettered. */
static void release(struct sink_conflicts *sc)
{
    struct sink *s = sc->s;
    struct waiting *w = sc->waiting;
    struct batch *nb = NULL;

    sc->waiting = NULL;
    sc->tail = &sc->waiting;
    s->depth++;
    while (w) {
        struct waiting *next = w->next;
        struct item *it = w->it;
        const char *src = w->text + it->src_off;
        size_t slen = it->len - it->src_off, moved = 0;
        struct buf text;
        int rc;

        if (slen && src[slen - 1] == '\n')
            slen--;
        if (s->deadline_passed) {
            sink_finish(s, it, SINK_CANCELED);
            waiting_free(w);
            w = next;
            continue;
        }
        buf_init(&text, BUF_NOMAX);
        rc = buf_append(&text, w->text, it->src_off);
        if (rc == 0)
            rc = conflicts_shape(sc->known, w->path, sc->field, src, slen, &text, &moved);
        if (rc == 0 && moved)
            rc = buf_putc(&text, '\n');
        if (rc == 0 && moved && !nb && !(nb = sink_batch_new(s)))
            rc = -ENOMEM;
        if (rc == 0 && moved) {
            /* sink_batch_take copies it->len bytes at it->off of a body: here, text. */
            struct batch from = { .s = s, .body = text };
            size_t old = it->len;

            it->len = text.len;
            it->bytes = it->bytes - old + text.len;
            it->off = 0;
            s->bytes_total = s->bytes_total - old + text.len;
            if (sink_batch_take(nb, it, &from) == 0) {
                count(s, it->table);
                logc_debug((&(struct log_ctx){ .table = it->table, .shard = it->shard }),
                           "document %.*s in %s: field %s conflicts with the mapping; %zu "
                           "value(s) moved to %s", (int)(it->id_len > 128 ? 128 : it->id_len),
                           it->id, it->index, w->path, moved, sc->field);
            } else {
                rc = -ENOMEM;
            }
        }
        if (rc < 0 || !moved) {
            sink_to_dlq(s, it, src, slen, w->status, w->type, w->reason);
            if (rc == 0 && !moved)
                log_warn("index %s: field %s refused, but no value of document %.*s moves: "
                         "dead-lettered", it->index, w->path,
                         (int)(it->id_len > 128 ? 128 : it->id_len), it->id);
        }
        buf_close(&text);
        waiting_free(w);
        w = next;
    }
    if (nb && sink_drop_tombstoned(s, nb)) /* waited: deletes may have finished meanwhile */
        sink_batch_set_state(nb, B_READY, true);
    s->depth--;
    sink_maybe_full(s);
    sink_dispatch(s);
}

static void on_mapping(void *arg, int err, long status, const char *body, size_t len)
{
    struct sink_conflicts *sc = arg;

    sc->fetching = false;
    if (err == 0 && status == 200) {
        int rc = conflicts_learn_mapping(sc->known, body, len);

        if (rc < 0)
            log_warn("index %s: its mapping could not be read (%s); the refused fields alone "
                     "are moved", sc->index, strerror(-rc));
        else
            log_debug("index %s: %zu field types known", sc->index,
                      conflicts_count(sc->known));
    } else if (err != -ECANCELED) {
        log_warn("index %s: GET _mapping: %s; the refused fields alone are moved", sc->index,
                 err < 0 ? strerror(-err) : status ? "unexpected status" : "no answer");
    }
    release(sc);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

bool sink_conflicts_refused(struct sink *s, const struct batch *b, struct item *it,
                            const struct bulkresp_item *ri)
{
    struct sink_conflicts *sc = find(s, it->index);
    char path[512], type[64], url[600];
    struct waiting *w;
    int rc;

    if (!sc || it->reshaped || it->op != DOC_INDEX || s->deadline_passed ||
        !conflicts_parse_error(ri->type, ri->reason, path, sizeof(path), type, sizeof(type)))
        return false;
    if (type[0] && conflicts_learn(sc->known, path, strlen(path), type) < 0)
        return false;
    if (!(w = calloc(1, sizeof(*w))) || !(w->text = malloc(it->len)) ||
        !(w->path = strdup(path))) {
        if (w)
            waiting_free(w);
        return false;
    }
    memcpy(w->text, b->body.ptr + it->off, it->len);
    w->it = it;
    w->status = ri->status;
    w->type = dup_or_null(ri->type);
    w->reason = dup_or_null(ri->reason);
    it->reshaped = true;
    *sc->tail = w;
    sc->tail = &w->next;
    if (sc->fetching)
        return true; /* it goes with the items that wait already */
    snprintf(url, sizeof(url), "/%s/_mapping", sc->index);
    sc->fetching = true;
    rc = sink_call(s, "GET", url, NULL, NULL, 0, MAPPING_MAX, on_mapping, sc);
    if (rc < 0 && sc->fetching) { /* closing: reshaped with what the error said */
        sc->fetching = false;
        release(sc);
    }
    return true;
}
