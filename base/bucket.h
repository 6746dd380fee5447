/* bucket — the token bucket of a rate-capped parallel Scan (replay --scan,
 * verify, schema): at most `rate` items a second over all segments, the
 * budget of a second shared between them, the rate halved while DynamoDB
 * throttles and won back by 5 % a page up to what was asked.  Pure: the
 * caller passes the time (ms, any monotonic origin) and runs the timers. */
#ifndef DDB2ES_BUCKET_H
#define DDB2ES_BUCKET_H

#include <stdint.h>

struct bucket {
    double cap;     /* the rate asked for, items/s; <= 0: none */
    double rate;    /* the rate in use: cap, or lower after throttling; <= 0: none */
    double tokens;
    uint64_t at;    /* when tokens were last added */
};

void bucket_init(struct bucket *b, double cap, uint64_t now_ms);

/* Tokens for one request of one of nshares takers: their count, 1..max
 * (at most a second's budget shared between the takers); 0 when the bucket
 * is empty, *wait_ms then saying when the next token comes (>= 1); -1
 * without a rate (no Limit needed). */
int bucket_take(struct bucket *b, uint64_t now_ms, int nshares, int max, uint64_t *wait_ms);

/* n tokens taken but not used (a request that failed, a short page). */
void bucket_give(struct bucket *b, int n);

/* DynamoDB throttled: the rate in use halved (from seen, the items a second
 * read so far, when there was none), at least 1.  Returns it. */
double bucket_throttled(struct bucket *b, double seen);

/* A page came: a rate that throttling lowered grows by 5 %, up to the cap
 * (without a cap, on and on). */
void bucket_page(struct bucket *b);

#endif
