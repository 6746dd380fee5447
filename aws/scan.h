/* scan — a parallel Scan as replay --scan, verify and schema read a table:
 * one state machine per segment (one request in flight each), a token
 * bucket the segments share for --rate (lowered while DynamoDB throttles),
 * and what a failed page means.  The owner of a Scan says what it does
 * with each page (struct scan_ops); the machine sends, retries and waits.
 *
 * A segment is in one state:
 *   send       a request is to be sent (scan_seg_drive sends it)
 *   wait       the owner is busy (until scan_seg_resume) or the bucket is
 *              empty (until its timer)
 *   in-flight  its Scan request is out
 *   held       the owner holds its last page (until scan_seg_release)
 *   backoff    a request failed: the timer sends the next
 *   done       its last page is taken
 */
#ifndef DDB2ES_SCAN_H
#define DDB2ES_SCAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "aws/ddb.h"
#include "base/bucket.h"

enum scan_state {
    SCAN_SEND, SCAN_WAIT, SCAN_INFLIGHT, SCAN_HELD, SCAN_BACKOFF, SCAN_DONE, SCAN_NSTATES
};

struct scan;
struct scan_seg;

#define SCAN_HOLD 1  /* from scan_ops.page: the owner holds the page */
#define SCAN_AGAIN 2 /* from scan_ops.page: not taken, read it again after a backoff */

/* What the owner of a Scan does.  Each runs from the loop. */
struct scan_ops {
    /* NULL, or true while the owner cannot take a page: a segment about
     * to send waits for scan_seg_resume. */
    bool (*busy)(struct scan *s);
    /* A page read by sg: items (borrowed, an array) and its
     * LastEvaluatedKey (borrowed; NULL: the segment's last page).  0 when
     * taken (the segment goes on, or is done), SCAN_HOLD when the owner
     * keeps it until scan_seg_release, SCAN_AGAIN when it could not take
     * it, < 0 when the owner stopped. */
    int (*page)(struct scan_seg *sg, json_t *items, json_t *lek);
    /* NULL, or called after a page was taken or released and the
     * segment's state set: the owner may now be complete. */
    void (*after)(struct scan *s);
    /* The Scan cannot go on: 69 (the table is gone, or a segment failed
     * for give_up_ms) or 77 (refused), why one line.  The owner stops. */
    void (*fail)(struct scan *s, int code, const char *why);
};

/* A Scan, as its owner sets it up (fields above bucket), and what the
 * segments share. */
struct scan {
    const struct scan_ops *ops;
    void *owner;
    struct aws *aws;
    const char *table;
    int total;             /* TotalSegments (segments numbered 0..total-1) */
    int nshares;           /* segments of this process sharing the bucket */
    bool consistent;       /* ConsistentRead */
    int page_limit;        /* Limit without a rate, 0: none */
    int page_max;          /* the largest Limit with a rate */
    long retry_base_ms, retry_max_ms;
    int64_t give_up_ms;    /* a segment failing this long ends the Scan */
    struct bucket bucket;  /* bucket_init by the owner */
    uint64_t read;         /* items read */
    uint64_t retried;      /* pages failed and tried again */
    uint64_t start_ms;
    bool stopping;         /* set by scan_seg_stop: nothing more is sent */
};

struct scan_seg {
    struct scan *scan;
    int no;                /* Segment */
    enum scan_state state; /* written by scan_seg_set only */
    json_t *start;         /* ExclusiveStartKey of the next request, NULL: the beginning */
    struct ddb_call *call;
    int limit;             /* tokens taken for the request in flight */
    uv_timer_t timer;      /* backoff, or waiting for tokens */
    unsigned failures;
    uint64_t failing_since;
    bool more;             /* the last page read has a next one */
};

const char *scan_state_name(enum scan_state st);

/* Sets sg up as segment no of s, in state send (not sent yet). */
void scan_seg_init(struct scan_seg *sg, struct scan *s, uv_loop_t *loop, int no);
/* The only write of a segment's state (logged at debug level). */
void scan_seg_set(struct scan_seg *sg, enum scan_state to);
/* Sends the segment's next request when it is in state send. */
void scan_seg_drive(struct scan_seg *sg);
/* A segment waiting for its owner (not for tokens) sends again. */
void scan_seg_resume(struct scan_seg *sg);
/* The owner is through with a held page: the segment goes on, or is done. */
void scan_seg_release(struct scan_seg *sg);
/* No more requests: the timer stopped, the request in flight canceled. */
void scan_seg_stop(struct scan_seg *sg);
void scan_seg_close(struct scan_seg *sg);

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

#endif
