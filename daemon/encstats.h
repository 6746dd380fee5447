/* encstats — per table, what the transform left out of items written by
 * client-side encryption (README "Client-side encrypted tables"): the
 * counters the metrics endpoint shows, and a log line for a header that
 * cannot be used, at most one a minute per table so that a bad stream
 * cannot flood the log.  One entry per table name for the whole process
 * (until encstats_free_all); the daemon's loop thread only. */
#ifndef DDB2ES_ENCSTATS_H
#define DDB2ES_ENCSTATS_H

#include <stdbool.h>
#include <stdint.h>

#include "indexer/transform.h"

#define ENCSTATS_SAY_EVERY_MS 60000

struct encstats_counts {
    uint64_t items;               /* items recognised as written by client-side encryption */
    uint64_t attributes_left_out; /* their own attributes left out: ciphertext, or may be */
    uint64_t headers_failed;      /* items whose header could not be used */
};

/* Points tf's on_encrypted hook at table's entry (made on first use).
 * 0, or -ENOMEM (tf unchanged). */
int encstats_attach(struct transform_cfg *tf, const char *table);
/* The counts of table so far; zeros for a table never attached. */
struct encstats_counts encstats_get(const char *table);
/* Forgets every table (after the last transform). */
void encstats_free_all(void);

/* The rate limit, apart for tests: whether a line may be said at now_ms
 * (monotonic); when it may, *held gets the lines held back since the last
 * one said. */
struct encstats_limit {
    bool said;
    int64_t last_ms;
    uint64_t held;
};
bool encstats_limit_take(struct encstats_limit *l, int64_t now_ms, uint64_t *held);

#endif
