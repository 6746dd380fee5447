#include "base/backoff.h"

#include <stdint.h>
#include <unistd.h>
#include <uv.h>

long backoff_cap_ms(long base, long max, unsigned n)
{
    long cap = base;

    for (unsigned i = 0; i < n && cap < max; i++)
        cap *= 2;
    return cap > max ? max : cap;
}

static double xorshift(void)
{
    static uint64_t s;

    if (!s)
        s = (uv_hrtime() ^ ((uint64_t)getpid() << 32)) | 1;
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return (double)((s * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0; /* 2^53 */
}

static double (*rng_fn)(void) = xorshift;

double backoff_rng(void)
{
    return rng_fn();
}

void backoff_set_rng(double (*rng)(void))
{
    rng_fn = rng ? rng : xorshift;
}

long backoff_jitter_ms(long ms)
{
    return ms <= 0 ? 0 : (long)(backoff_rng() * (double)ms);
}

long backoff_ms(long base, long max, unsigned n)
{
    return 1 + backoff_jitter_ms(backoff_cap_ms(base, max, n));
}
