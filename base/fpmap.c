/* fpmap — keys kept as their keyed 128-bit SipHash, values in one array
 * (see fpmap.h). */
#include "base/fpmap.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/siphash.h"

#define FPMAP_MIN 64       /* slots and buckets at first */

/* The 32-byte head of every slot; the value follows. */
struct entry {
    uint64_t fp[2];
    uint32_t hash;
    uint32_t hnext;        /* the next in its bucket */
    uint32_t prev, next;   /* oldest first; next also links the free slots */
};

_Static_assert(sizeof(struct entry) == 32, "fpmap_value() takes the value at 32 bytes");

static struct entry *at(const struct fpmap *m, uint32_t i)
{
    return (struct entry *)(void *)(m->v + (size_t)i * m->slot_size);
}

static void fingerprint(const struct fpmap *m, const struct fpkey *k, uint64_t fp[2])
{
    struct siphash h;
    uint8_t out[16];

    siphash_init(&h, m->key);
    siphash_update(&h, k->a, k->alen);
    if (k->b)
        siphash_update(&h, k->b, k->blen);
    siphash_final128(&h, out);
    memcpy(fp, out, sizeof(out));
}

void fpmap_init(struct fpmap *m, size_t value_size)
{
    memset(m, 0, sizeof(*m));
    m->value_size = value_size;
    m->slot_size = (sizeof(struct entry) + value_size + 7) & ~(size_t)7;
}

void fpmap_free(struct fpmap *m)
{
    free(m->v);
    free(m->buckets);
    m->v = NULL;
    m->buckets = NULL;
    m->cap = m->n = m->top = m->nbuckets = 0;
    m->head = m->tail = m->free = 0;
}

uint32_t fpmap_find(const struct fpmap *m, const struct fpkey *k)
{
    uint64_t fp[2];
    bool have = false;

    if (!m->n)
        return 0;
    for (uint32_t i = m->buckets[k->hash & (m->nbuckets - 1)]; i; i = at(m, i)->hnext) {
        const struct entry *e = at(m, i);

        if (e->hash != k->hash)
            continue;
        if (!have) { /* only once a slot has the hash */
            fingerprint(m, k, fp);
            have = true;
        }
        if (e->fp[0] == fp[0] && e->fp[1] == fp[1])
            return i;
    }
    return 0;
}

static void unlink_age(struct fpmap *m, uint32_t i)
{
    struct entry *e = at(m, i);

    if (e->prev)
        at(m, e->prev)->next = e->next;
    else
        m->head = e->next;
    if (e->next)
        at(m, e->next)->prev = e->prev;
    else
        m->tail = e->prev;
    e->prev = e->next = 0;
}

static void push_newest(struct fpmap *m, uint32_t i)
{
    struct entry *e = at(m, i);

    e->prev = m->tail;
    e->next = 0;
    if (m->tail)
        at(m, m->tail)->next = i;
    else
        m->head = i;
    m->tail = i;
}

void fpmap_touch(struct fpmap *m, uint32_t i)
{
    if (m->tail != i) {
        unlink_age(m, i);
        push_newest(m, i);
    }
}

void fpmap_remove(struct fpmap *m, uint32_t i)
{
    uint32_t *link = &m->buckets[at(m, i)->hash & (m->nbuckets - 1)];

    while (*link != i)
        link = &at(m, *link)->hnext;
    *link = at(m, i)->hnext;
    unlink_age(m, i);
    at(m, i)->next = m->free;
    m->free = i;
    if (--m->n == 0) /* empty: give the memory back */
        fpmap_free(m);
}

/* Twice the buckets, every entry linked again. */
static int buckets_grow(struct fpmap *m)
{
    uint32_t n = m->nbuckets ? m->nbuckets * 2 : FPMAP_MIN;
    uint32_t *b = n > m->nbuckets ? calloc(n, sizeof(*b)) : NULL;

    if (!b)
        return -ENOMEM;
    for (uint32_t i = m->head; i; i = at(m, i)->next) {
        at(m, i)->hnext = b[at(m, i)->hash & (n - 1)];
        b[at(m, i)->hash & (n - 1)] = i;
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* A free slot, or 0 out of memory. */
static uint32_t slot_new(struct fpmap *m)
{
    uint32_t i = m->free;

    if (i) {
        m->free = at(m, i)->next;
        return i;
    }
    if (m->top == m->cap) {
        uint32_t cap = m->cap ? m->cap * 2 : FPMAP_MIN;
        unsigned char *v = cap > m->cap ? realloc(m->v, ((size_t)cap + 1) * m->slot_size) : NULL;

        if (!v)
            return 0;
        m->v = v;
        m->cap = cap;
    }
    return ++m->top;
}

static bool keyed(struct fpmap *m)
{
    if (!m->keyed && getrandom(m->key, sizeof(m->key), 0) != (ssize_t)sizeof(m->key) &&
        RAND_bytes(m->key, sizeof(m->key)) != 1)
        return false;
    m->keyed = true;
    return true;
}

uint32_t fpmap_add(struct fpmap *m, const struct fpkey *k)
{
    struct entry *e;
    uint32_t i;

    if (!keyed(m) || (m->n >= m->nbuckets && buckets_grow(m) < 0) || !(i = slot_new(m)))
        return 0;
    m->n++;
    e = at(m, i);
    memset(e, 0, m->slot_size);
    fingerprint(m, k, e->fp);
    e->hash = k->hash;
    e->hnext = m->buckets[k->hash & (m->nbuckets - 1)];
    m->buckets[k->hash & (m->nbuckets - 1)] = i;
    push_newest(m, i);
    return i;
}
