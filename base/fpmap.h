/* fpmap — a map from keys that are not kept to fixed-size values, oldest
 * first: each key is held as its SipHash-2-4-128 under a key drawn at
 * random per map (base/siphash.h), so an entry costs 32 bytes plus its
 * value whatever the key's length, and two keys share an entry only by
 * chance (2^-128 a pair).  Entries live in one array (slots reused; the
 * array and its buckets given back when the map empties) and are linked
 * oldest first, so a map can expire from the head (the sink's tombstones)
 * or drop the least recently used (replay's item versions, with
 * fpmap_touch).  Entries are named by 1-based indexes, 0 for none; an index
 * stays valid until its entry is removed, a value pointer until the next
 * fpmap_add. */
#ifndef DDB2ES_FPMAP_H
#define DDB2ES_FPMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fpmap {
    unsigned char *v;      /* cap + 1 slots of slot_size bytes; slot 0 unused */
    size_t slot_size, value_size;
    uint32_t cap, n, top;  /* slots; in use; handed out so far */
    uint32_t head, tail;   /* oldest first */
    uint32_t free;         /* slots up to top not in use */
    uint32_t *buckets;     /* nbuckets heads, a power of two */
    uint32_t nbuckets;
    uint8_t key[16];
    bool keyed;
};

/* A key: a's bytes then b's (b may be NULL); hash picks the bucket and is
 * the caller's (any 32-bit hash of the same bytes). */
struct fpkey {
    const void *a, *b;
    size_t alen, blen;
    uint32_t hash;
};

void fpmap_init(struct fpmap *m, size_t value_size);
void fpmap_free(struct fpmap *m); /* empty again, as after fpmap_init */

/* The entry of k, or 0. */
uint32_t fpmap_find(const struct fpmap *m, const struct fpkey *k);
/* A new entry for k (not in m: fpmap_find first), the newest, its value
 * zeroed; 0 when out of memory or no random key could be drawn. */
uint32_t fpmap_add(struct fpmap *m, const struct fpkey *k);
void fpmap_remove(struct fpmap *m, uint32_t i);
/* i becomes the newest. */
void fpmap_touch(struct fpmap *m, uint32_t i);

static inline void *fpmap_value(const struct fpmap *m, uint32_t i)
{
    return m->v + (size_t)i * m->slot_size + 32;
}

static inline uint32_t fpmap_oldest(const struct fpmap *m)
{
    return m->head;
}

static inline uint32_t fpmap_count(const struct fpmap *m)
{
    return m->n;
}

#endif
