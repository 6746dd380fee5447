/* lease_rec — the coordinator's records: one per shard lease (found by its
 * key in a chained hash, kept per stream in the order they were added) and
 * one per worker heartbeat; a read of the table taken into them. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

/* FNV-1a over "<arn>|<id>" without building it. */
static uint64_t hash_parts(const char *arn, const char *id)
{
    uint64_t h = 14695981039346656037u;

    for (; *arn; arn++)
        h = (h ^ (unsigned char)*arn) * 1099511628211u;
    h = (h ^ '|') * 1099511628211u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return h;
}

static uint64_t hash_key(const char *key)
{
    uint64_t h = 14695981039346656037u;

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211u;
    return h;
}

static bool key_is(const char *key, const char *arn, const char *id)
{
    size_t n = strlen(arn);

    return strncmp(key, arn, n) == 0 && key[n] == '|' && strcmp(key + n + 1, id) == 0;
}

struct lease_rec *lease_rec_get(struct lease *l, const char *arn, const char *id)
{
    struct lease_rec *r;

    if (!l->tabcap)
        return NULL;
    for (r = l->tab[hash_parts(arn, id) & (l->tabcap - 1)]; r; r = r->hnext)
        if (key_is(r->key, arn, id))
            return r;
    return NULL;
}

struct lease_rec *lease_rec_by_key(struct lease *l, const char *key)
{
    struct lease_rec *r;

    if (!l->tabcap)
        return NULL;
    for (r = l->tab[hash_key(key) & (l->tabcap - 1)]; r; r = r->hnext)
        if (strcmp(r->key, key) == 0)
            return r;
    return NULL;
}

static void tab_put(struct lease *l, struct lease_rec *r)
{
    size_t i = hash_key(r->key) & (l->tabcap - 1);

    r->hnext = l->tab[i];
    l->tab[i] = r;
}

static int tab_grow(struct lease *l)
{
    size_t cap = l->tabcap ? l->tabcap * 2 : 64;
    struct lease_rec **old = l->tab;
    size_t oldcap = l->tabcap;

    if (!(l->tab = calloc(cap, sizeof(*l->tab)))) {
        l->tab = old;
        return -ENOMEM;
    }
    l->tabcap = cap;
    for (size_t i = 0; i < oldcap; i++)
        for (struct lease_rec *r = old[i], *next; r; r = next) {
            next = r->hnext;
            tab_put(l, r);
        }
    free(old);
    return 0;
}

static void rec_free(void *rec)
{
    struct lease_rec *r = rec;

    free(r->key);
    free(r->owner);
    free(r->owner_run);
    free(r->claim);
    free(r);
}

struct lease_rec *lease_rec_add(struct lease *l, const char *table, const char *arn,
                                const char *id, const char *parent)
{
    size_t lid = strlen(id), lpar = parent ? strlen(parent) : 0;
    struct streamtab_stream *st;
    struct lease_rec *r;
    char *p;

    if ((l->count + 1) * 2 > l->tabcap && tab_grow(l) < 0)
        return NULL;
    if (!(st = streamtab_add(&l->streams, arn, table)))
        return NULL;
    /* One allocation: the record, its id, its parent id. */
    if (!(r = calloc(1, sizeof(*r) + lid + 1 + (parent ? lpar + 1 : 0))))
        return NULL;
    if (!(r->key = leasetab_lease_key(arn, id))) {
        free(r);
        return NULL;
    }
    p = (char *)(r + 1);
    memcpy(p, id, lid + 1);
    r->sh.id = p;
    if (parent) {
        memcpy(p + lid + 1, parent, lpar + 1);
        r->sh.parent = p + lid + 1;
    }
    r->sh.arn = st->arn;
    r->sh.table = st->table;
    r->stream = st;
    if (streamtab_push(st, r) < 0) {
        rec_free(r);
        return NULL;
    }
    tab_put(l, r);
    l->count++;
    return r;
}

int lease_rec_set_str(char **dst, const char *src)
{
    char *c = NULL;

    if (*dst && src && strcmp(*dst, src) == 0)
        return 0;
    if (src && !(c = strdup(src)))
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

void lease_rec_load(struct lease_rec *rec, const struct leasetab_lease *it)
{
    strcpy(rec->sh.seq, it->seq);
    rec->sh.ver = it->ver;
    rec->sh.done = it->done;
    rec->sh.skip_before = it->skip_before;
    rec->sh.updated = it->updated;
}

void lease_rec_update(struct lease *l, struct lease_rec *rec, const struct leasetab_lease *it,
                      uint64_t now, bool from_read)
{
    if (from_read) {
        rec->reads = rec->listed_before ? rec->reads + 1 : 1;
        rec->listed = true;
    }
    /* Every write bumps the counter: a read that began before one of this
     * worker's writes landed (a Scan of many pages) can show an older item
     * than that write returned.  It says nothing new (taken for the truth,
     * it would show a lease just taken as free, and lose it). */
    if (from_read && rec->in_table && it->counter < rec->counter)
        return;
    if (!rec->in_table || it->counter != rec->counter)
        rec->changed_at = now;
    rec->in_table = true;
    rec->counter = it->counter;
    rec->epoch = it->epoch;
    rec->table_done = it->done;
    if (lease_rec_set_str(&rec->owner, it->owner) < 0 ||
        lease_rec_set_str(&rec->owner_run, it->owner_run) < 0 ||
        lease_rec_set_str(&rec->claim, it->claim) < 0)
        log_warn("lease %s: out of memory", rec->key);
    if (it->owner)
        rec->unowned_since = 0;
    else if (!rec->unowned_since)
        rec->unowned_since = now;
    /* Another worker's shard follows the table; this worker's own state
     * is ahead of it, or about to be written. */
    if (!rec->held && !rec->dirty && !rec->writing)
        lease_rec_load(rec, it);
}

struct lease_workerrec *lease_worker_update(struct lease *l, const struct leasetab_worker *w,
                                            uint64_t now)
{
    struct lease_workerrec *r = NULL;

    for (size_t i = 0; i < l->nworkers; i++)
        if (strcmp(l->workers[i].id, w->worker) == 0)
            r = &l->workers[i];
    if (!r) {
        if (l->nworkers == l->capworkers) {
            size_t cap = l->capworkers ? l->capworkers * 2 : 8;
            struct lease_workerrec *a = realloc(l->workers, cap * sizeof(*a));

            if (!a)
                return NULL;
            l->workers = a;
            l->capworkers = cap;
        }
        r = &l->workers[l->nworkers];
        memset(r, 0, sizeof(*r));
        if (!(r->id = strdup(w->worker)))
            return NULL;
        l->nworkers++;
        r->beat = w->beat;
        r->beat_at = now;
    }
    if (w->beat != r->beat) {
        r->beat = w->beat;
        r->beat_at = now;
        r->deleting = false;
    }
    if (lease_rec_set_str(&r->run, w->run) < 0)
        return NULL;
    if (w->duration_ms != r->duration_ms && w->duration_ms != l->d)
        log_warn("lease table %s: worker %s runs with lease_duration %lld ms, this one with "
                 "%lld ms: every worker of a table should use the same",
                 l->table, w->worker, (long long)w->duration_ms, (long long)l->d);
    r->duration_ms = w->duration_ms;
    r->listed = true;
    return r;
}

static void forget_worker(struct lease *l, size_t i)
{
    free(l->workers[i].id);
    free(l->workers[i].run);
    l->workers[i] = l->workers[--l->nworkers];
}

static bool pruned(const struct lease *l, const char *key)
{
    for (size_t i = 0; i < l->npruned; i++)
        if (strcmp(l->pruned[i].key, key) == 0)
            return true;
    return false;
}

static int by_arn(const void *a, const void *b)
{
    return strcmp((*(struct streamtab_stream *const *)a)->arn,
                  (*(struct streamtab_stream *const *)b)->arn);
}

static int by_id(const void *a, const void *b)
{
    const struct lease_rec *x = *(void *const *)a, *y = *(void *const *)b;

    return strcmp(x->sh.id, y->sh.id);
}

/* A Scan lists items in hash order.  The first read (a load) puts them in
 * the order they were made instead: stream ARNs end in their creation time,
 * shard ids begin with theirs. */
static void sort_first_read(struct lease *l)
{
    if (!l->streams.n) /* qsort wants a base even for nothing */
        return;
    qsort(l->streams.v, l->streams.n, sizeof(*l->streams.v), by_arn);
    for (size_t s = 0; s < l->streams.n; s++)
        if (l->streams.v[s]->n)
            qsort(l->streams.v[s]->recs, l->streams.v[s]->n, sizeof(*l->streams.v[s]->recs), by_id);
}

int lease_rec_read(struct lease *l, const json_t *items, uint64_t now, bool strict, char *err,
                   size_t errlen)
{
    const json_t *item;
    size_t i;

    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k];

            r->listed_before = r->listed;
            r->listed = false;
        }
    for (i = 0; i < l->nworkers; i++)
        l->workers[i].listed = false;
    json_array_foreach(items, i, item)
    {
        char why[512];
        int rc = 0;

        switch (leasetab_kind(item)) {
        case LEASETAB_LEASE: {
            struct leasetab_lease it;
            struct lease_rec *r;

            if ((rc = leasetab_lease_parse(item, &it, why, sizeof(why))) < 0)
                break;
            if (!pruned(l, it.key)) {
                r = lease_rec_get(l, it.stream, it.shard);
                if (!r)
                    r = lease_rec_add(l, it.table, it.stream, it.shard, it.parent);
                if (r)
                    lease_rec_update(l, r, &it, now, true);
                else
                    rc = -ENOMEM;
            }
            leasetab_lease_clear(&it);
            break;
        }
        case LEASETAB_WORKER: {
            struct leasetab_worker w;

            if ((rc = leasetab_worker_parse(item, &w, why, sizeof(why))) < 0)
                break;
            if (!lease_worker_update(l, &w, now))
                rc = -ENOMEM;
            leasetab_worker_clear(&w);
            break;
        }
        case LEASETAB_OTHER:
            break;
        }
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0 && strict) {
            snprintf(err, errlen, "lease table %s: %s", l->table, why);
            return rc;
        }
        if (rc < 0)
            log_warn("lease table %s: %s (skipped)", l->table, why);
    }
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k];

            if (!r->listed) {
                r->reads = 0;
                if (r->in_table && !r->held && !r->writing && !r->dirty)
                    r->in_table = false; /* deleted (pruned by another worker) */
            }
        }
    /* Workers gone from the table (deleted at their stop) are forgotten. */
    for (i = l->nworkers; i-- > 0;)
        if (!l->workers[i].listed)
            forget_worker(l, i);
    if (!l->read_once && !l->local_adds)
        sort_first_read(l);
    l->read_once = true;
    return 0;
}

void lease_rec_drop(struct lease *l, struct lease_rec *rec)
{
    struct streamtab_stream *st = rec->stream;
    struct lease_rec **pp = &l->tab[hash_key(rec->key) & (l->tabcap - 1)];

    if (rec->in_table) {
        if (l->npruned == l->cappruned) {
            size_t cap = l->cappruned ? l->cappruned * 2 : 8;
            void *a = realloc(l->pruned, cap * sizeof(*l->pruned));

            if (a) {
                l->pruned = a;
                l->cappruned = cap;
            }
        }
        if (l->npruned < l->cappruned && (l->pruned[l->npruned].key = strdup(rec->key)))
            l->pruned[l->npruned++].counter = rec->counter;
    }
    while (*pp != rec)
        pp = &(*pp)->hnext;
    *pp = rec->hnext;
    streamtab_pull(st, rec);
    l->count--;
    rec_free(rec);
    if (!st->n)
        streamtab_remove(&l->streams, st, NULL);
}

void lease_rec_free_all(struct lease *l)
{
    streamtab_free(&l->streams, rec_free);
    free(l->tab);
    l->tab = NULL;
    l->tabcap = l->count = 0;
    for (size_t i = 0; i < l->nworkers; i++) {
        free(l->workers[i].id);
        free(l->workers[i].run);
    }
    free(l->workers);
    l->workers = NULL;
    l->nworkers = l->capworkers = 0;
    for (size_t i = 0; i < l->npruned; i++)
        free(l->pruned[i].key);
    free(l->pruned);
    l->pruned = NULL;
    l->npruned = l->cappruned = 0;
}

size_t lease_rec_held(const struct lease *l, const char *table)
{
    size_t n = 0;

    for (size_t s = 0; s < l->streams.n; s++)
        if (!table || strcmp(l->streams.v[s]->table, table) == 0)
            for (size_t k = 0; k < l->streams.v[s]->n; k++)
                n += ((const struct lease_rec *)l->streams.v[s]->recs[k])->held;
    return n;
}
