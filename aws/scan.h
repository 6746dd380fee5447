/* scan — one page of a parallel Scan, as replay --scan, verify and schema
 * read a table: the request, and what a failed page means.  Each caller
 * keeps its own segments and what it does with the items. */
#ifndef DDB2ES_SCAN_H
#define DDB2ES_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aws/ddb.h"
#include "base/bucket.h"

/* The body of a Scan request: TableName; Segment and TotalSegments when
 * total > 1; Limit when limit > 0; ExclusiveStartKey when start is not
 * NULL; ConsistentRead when consistent.  A new object, NULL when out of
 * memory. */
json_t *scan_request(const char *table, int segment, int total, int limit, json_t *start,
                     bool consistent);

/* A Scan page of segment that failed (its tokens already given back):
 *   throttled   b's rate halved (seen: the items a second read so far),
 *               logged; tried again
 *   not found   69 (the table is gone)
 *   refused     77 (AccessDenied, UnrecognizedClient)
 *   other       logged; tried again
 * and 69 once the segment has failed for give_up_ms (*failing_since, 0
 * while it has not, is set at its first failure).  0 to try again after a
 * backoff, else the exit code with why (one line) set. */
int scan_failed(const struct ddb_reply *rep, struct bucket *b, double seen, uint64_t now_ms,
                uint64_t *failing_since, int64_t give_up_ms, const char *table, int segment,
                char *why, size_t whylen);

/* Tokens from b for a segment's next page: the Limit to ask for (> 0), 0
 * without a rate (no Limit), or -1 when the bucket is empty, timer then
 * armed to call cb once a token is there.  nshares: the segments sharing
 * b; max: the largest Limit. */
int scan_take(struct bucket *b, uv_timer_t *timer, uv_timer_cb cb, int nshares, int max);

/* Arms timer to call cb for the next try of a failed page: full jitter
 * below base_ms doubled per failure in a row (*failures, counted on), at
 * most max_ms. */
void scan_backoff(uv_timer_t *timer, uv_timer_cb cb, unsigned *failures, long base_ms,
                  long max_ms);

#endif
