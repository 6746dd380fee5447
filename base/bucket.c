#include "base/bucket.h"

#include <math.h>

void bucket_init(struct bucket *b, double cap, uint64_t now_ms)
{
    b->cap = cap;
    b->rate = cap;
    b->tokens = 0;
    b->at = now_ms;
}

int bucket_take(struct bucket *b, uint64_t now_ms, int nshares, int max, uint64_t *wait_ms)
{
    double second, share;
    int n;

    if (b->rate <= 0)
        return -1;
    second = b->rate < 1 ? 1 : b->rate; /* a second's worth */
    if (now_ms > b->at)
        b->tokens += (double)(now_ms - b->at) / 1000.0 * b->rate;
    b->at = now_ms;
    if (b->tokens > second)
        b->tokens = second;
    if (b->tokens < 1) {
        uint64_t w = (uint64_t)ceil((1 - b->tokens) / b->rate * 1000.0);

        *wait_ms = w ? w : 1;
        return 0;
    }
    share = second / (nshares > 0 ? nshares : 1);
    n = (int)(b->tokens < share ? b->tokens : share);
    if (n < 1)
        n = 1;
    if (n > max)
        n = max;
    b->tokens -= n;
    return n;
}

void bucket_give(struct bucket *b, int n)
{
    if (b->rate > 0 && n > 0)
        b->tokens += n;
}

double bucket_throttled(struct bucket *b, double seen)
{
    b->rate = (b->rate > 0 ? b->rate : seen) / 2;
    if (b->rate < 1)
        b->rate = 1;
    return b->rate;
}

void bucket_page(struct bucket *b)
{
    if (b->rate <= 0 || (b->cap > 0 && b->rate >= b->cap))
        return;
    b->rate *= 1.05;
    if (b->cap > 0 && b->rate > b->cap)
        b->rate = b->cap;
}
