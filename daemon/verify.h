/* verify — `ddb2es verify`: hold one table against its index and report the
 * documents that are missing, stale (not the item's current image) or extra;
 * with repair, send what the table holds now and delete the extras.
 * `ddb2es rebuild` runs it on the new index before it moves the alias.
 */
#ifndef DDB2ES_VERIFY_H
#define DDB2ES_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

struct config;

/* 0 in a number below means its default (in parentheses). */
struct verify_opts {
    const char *table;      /* required: a configured [table] */
    const char *index;      /* instead of the table's index (an index or an alias), or NULL */
    int segments;           /* Scan segments, 1..1024 (0: 4) */
    double rate;            /* items read per second over all segments, 0 = no cap */
    bool repair;            /* send the table's current images, delete the extras */
    bool json;              /* the report as one JSON document on stdout */
    int64_t settle_ms;      /* how long a difference waits before it is read again (5000;
                               1 for at once) */
    int64_t progress_ms;    /* progress log period when stderr is not a terminal (10000) */
    int64_t margin_s;       /* clock-skew margin of the repairs' backfill versions (5) */
};

/* Runs the verification to its end (or SIGINT/SIGTERM) and returns the exit
 * code: 0 the index equals the table (or every difference was repaired);
 * 1 differences remain; 69 the engine or DynamoDB unavailable; 75
 * interrupted; 77 permission; 78 configuration. */
int verify_run(const struct config *cfg, const struct verify_opts *o);

#endif
