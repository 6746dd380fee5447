/* workload — seeded random DynamoDB items and writes for end-to-end tests:
 * every attribute type, 38-digit numbers and extreme exponents, binary keys,
 * nesting 20+ deep, sets, unicode and escapes, items near 400 KB. */
#ifndef DDB2ES_TEST_WORKLOAD_H
#define DDB2ES_TEST_WORKLOAD_H

#include <jansson.h>
#include <stdint.h>

struct wl {
    uint64_t state;
    const char *table;
    const char *hash, *hash_type; /* "S", "N" or "B" */
    const char *range, *range_type;
    unsigned nkeys;               /* keys are drawn from this many */
    unsigned big_every;           /* one item in this many is ~390 KB (0 = never) */
};

void wl_init(struct wl *w, uint64_t seed, const char *table, const char *hash,
             const char *hash_type, const char *range, const char *range_type, unsigned nkeys);
uint64_t wl_rand(struct wl *w);
/* A key (the key attributes only) for key number k: the same k always gives
 * the same key, sometimes in another spelling of the same number. */
json_t *wl_key(struct wl *w, unsigned k);
/* A random item with key number k. */
json_t *wl_item(struct wl *w, unsigned k);
/* One random write: PutItem, UpdateItem (SET/REMOVE), DeleteItem or a
 * BatchWriteItem of up to 25 puts/deletes.  Returns the number of items it
 * touched. */
unsigned wl_step(struct wl *w);
/* Writes items k = from..to-1 (wl_item) with BatchWriteItem, 25 at a time. */
void wl_fill(struct wl *w, unsigned from, unsigned to);

#endif
