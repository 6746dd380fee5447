#include "daemon/ack.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define RING_MIN 64   /* first allocation */
#define RING_KEEP 256 /* an empty ring larger than this is released */

struct entry {
    char seq[SEQNUM_MAX + 1]; /* "" for a record without one (ack_push NULL) */
    bool done;
    struct docver ver;
};

struct ack {
    struct entry *ring; /* ticket k lives at ring[k & (cap - 1)] */
    size_t cap;
    int64_t head; /* oldest ticket not behind the checkpoint */
    int64_t tail; /* next ticket to issue */
    char last_pushed[SEQNUM_MAX + 1];
    char undo_last[SEQNUM_MAX + 1]; /* last_pushed before the last push (ack_unpush) */
    bool can_undo;
    char ckpt[SEQNUM_MAX + 1]; /* the finished prefix's last seq, "" = none */
    struct docver ckpt_ver;
    bool moved; /* since the last ack_checkpoint */
};

struct ack *ack_new(void)
{
    return calloc(1, sizeof(struct ack));
}

void ack_free(struct ack *t)
{
    if (!t)
        return;
    free(t->ring);
    free(t);
}

size_t ack_pending(const struct ack *t)
{
    return (size_t)(t->tail - t->head);
}

static int grow(struct ack *t)
{
    size_t cap = t->cap ? t->cap * 2 : RING_MIN;
    struct entry *r = malloc(cap * sizeof(*r));

    if (!r)
        return -ENOMEM;
    for (int64_t k = t->head; k < t->tail; k++)
        r[(size_t)k & (cap - 1)] = t->ring[(size_t)k & (t->cap - 1)];
    free(t->ring);
    t->ring = r;
    t->cap = cap;
    return 0;
}

int64_t ack_push(struct ack *t, const char *seq, const struct docver *ver)
{
    struct entry *e;

    if (seq && !seqnum_valid(seq))
        return -EINVAL;
    if (seq && t->last_pushed[0] && seqnum_cmp(seq, t->last_pushed) <= 0)
        return -EALREADY;
    if (ack_pending(t) == t->cap && grow(t) < 0)
        return -ENOMEM;
    e = &t->ring[(size_t)t->tail & (t->cap - 1)];
    strcpy(e->seq, seq ? seq : ""); /* fits: seqnum_valid bounds it */
    e->done = false;
    e->ver = ver ? *ver : (struct docver){ 0, 0 };
    strcpy(t->undo_last, t->last_pushed);
    t->can_undo = true;
    if (seq)
        strcpy(t->last_pushed, seq);
    return t->tail++;
}

int ack_unpush(struct ack *t)
{
    struct entry *e;

    if (!t->can_undo || t->tail == t->head)
        return -ENOENT;
    e = &t->ring[(size_t)(t->tail - 1) & (t->cap - 1)];
    if (e->done)
        return -ENOENT;
    t->tail--;
    strcpy(t->last_pushed, t->undo_last);
    t->can_undo = false;
    return 0;
}

int ack_done(struct ack *t, int64_t ticket)
{
    struct entry *e;
    int64_t k;

    if (ticket < t->head || ticket >= t->tail)
        return -ENOENT;
    e = &t->ring[(size_t)ticket & (t->cap - 1)];
    if (e->done)
        return -EALREADY;
    e->done = true;
    if (ticket == t->tail - 1)
        t->can_undo = false;
    if (ticket != t->head)
        return 0;
    for (k = t->head; k < t->tail && t->ring[(size_t)k & (t->cap - 1)].done; k++)
        ;
    /* The last entry of the finished run that has a sequence number becomes
     * the checkpoint (records without one move it no further). */
    for (int64_t j = k; j > t->head; j--) {
        e = &t->ring[(size_t)(j - 1) & (t->cap - 1)];
        if (e->seq[0]) {
            strcpy(t->ckpt, e->seq);
            t->ckpt_ver = e->ver;
            t->moved = true;
            break;
        }
    }
    t->head = k;
    if (t->head == t->tail && t->cap > RING_KEEP) {
        free(t->ring);
        t->ring = NULL;
        t->cap = 0;
    }
    return 1;
}

const char *ack_checkpoint(struct ack *t, struct docver *ver_out)
{
    if (!t->moved)
        return NULL;
    t->moved = false;
    if (ver_out)
        *ver_out = t->ckpt_ver;
    return t->ckpt;
}
