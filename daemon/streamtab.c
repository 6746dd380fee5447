/* streamtab — a table's streams by ARN with the caller's records. */
#include "daemon/streamtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* arr (n of *cap elements of size elem used) with room for one more: arr
 * itself, or arr reallocated twice as large (4 at first, *cap updated);
 * NULL when out of memory (arr is left as it was). */
static void *room_for_one(void *arr, size_t n, size_t *cap, size_t elem)
{
    size_t more = *cap ? *cap * 2 : 4;
    void *p;

    if (n < *cap)
        return arr;
    if (!(p = realloc(arr, more * elem)))
        return NULL;
    *cap = more;
    return p;
}

struct streamtab_stream *streamtab_find(const struct streamtab *t, const char *arn)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i]->arn, arn) == 0)
            return t->v[i];
    return NULL;
}

struct streamtab_stream *streamtab_add(struct streamtab *t, const char *arn, const char *table)
{
    struct streamtab_stream *st = streamtab_find(t, arn), **v;

    if (st)
        return st;
    if (!(v = room_for_one(t->v, t->n, &t->cap, sizeof(*v))))
        return NULL;
    t->v = v;
    if (!(st = calloc(1, sizeof(*st))))
        return NULL;
    st->arn = strdup(arn);
    st->table = strdup(table);
    if (!st->arn || !st->table) {
        free(st->arn);
        free(st->table);
        free(st);
        return NULL;
    }
    t->v[t->n++] = st;
    return st;
}

int streamtab_push(struct streamtab_stream *st, void *rec)
{
    void **v = room_for_one(st->recs, st->n, &st->cap, sizeof(*v));

    if (!v)
        return -ENOMEM;
    st->recs = v;
    st->recs[st->n++] = rec;
    return 0;
}

void streamtab_pull(struct streamtab_stream *st, const void *rec)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->recs[i] == rec) {
            memmove(&st->recs[i], &st->recs[i + 1], (st->n - i - 1) * sizeof(*st->recs));
            st->n--;
            return;
        }
}

static void stream_free(struct streamtab_stream *st, streamtab_free_cb *free_rec)
{
    for (size_t i = 0; free_rec && i < st->n; i++)
        free_rec(st->recs[i]);
    free(st->recs);
    free(st->arn);
    free(st->table);
    free(st);
}

void streamtab_remove(struct streamtab *t, struct streamtab_stream *st,
                      streamtab_free_cb *free_rec)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i] == st) {
            memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
            t->n--;
            break;
        }
    stream_free(st, free_rec);
}

void streamtab_free(struct streamtab *t, streamtab_free_cb *free_rec)
{
    for (size_t i = 0; i < t->n; i++)
        stream_free(t->v[i], free_rec);
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}
