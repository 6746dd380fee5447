/* streamtab — a table's streams by ARN, each with its table name and the
 * caller's records (one per shard) in the order they were added.  The
 * checkpoint file (ckpt_file*.c) keeps its entries in one, the lease
 * coordinator (lease_rec.c) its lease records; each finds a record by its
 * own hash, kept beside it. */
#ifndef DDB2ES_STREAMTAB_H
#define DDB2ES_STREAMTAB_H

#include <stddef.h>

struct streamtab_stream {
    char *arn, *table; /* owned; a record may point to them while it is in the stream */
    void **recs;       /* the caller's records, in the order they were added */
    size_t n, cap;
};

/* Zeroed is empty. */
struct streamtab {
    struct streamtab_stream **v; /* in the order they were added */
    size_t n, cap;
};

typedef void streamtab_free_cb(void *rec);

/* The stream of arn, or NULL. */
struct streamtab_stream *streamtab_find(const struct streamtab *t, const char *arn);

/* The stream of arn: the one there (its table kept as it was), or a new one
 * at the end with copies of arn and table and no records.  NULL when out of
 * memory (t unchanged). */
struct streamtab_stream *streamtab_add(struct streamtab *t, const char *arn, const char *table);

/* Appends rec (still the caller's) to st's records: 0, or -ENOMEM with st
 * unchanged. */
int streamtab_push(struct streamtab_stream *st, void *rec);

/* Takes rec out of st's records, the others keeping their order; a record
 * not there is ignored.  rec is not freed. */
void streamtab_pull(struct streamtab_stream *st, const void *rec);

/* Takes st out of t, the others keeping their order, and frees it; its
 * records left are freed with free_rec (NULL: not freed). */
void streamtab_remove(struct streamtab *t, struct streamtab_stream *st,
                      streamtab_free_cb *free_rec);

/* Frees every stream, and every record with free_rec (NULL: not freed);
 * t is empty afterwards. */
void streamtab_free(struct streamtab *t, streamtab_free_cb *free_rec);

#endif
