/* swar — bytes tested 8 at a time in a 64-bit word (SIMD within a
 * register), for the scanners that skip over JSON strings.  The tests are
 * the zero-byte ones of "Bit Twiddling Hacks": exact for "some byte of the
 * word is ..." and for the first such byte (a borrow only runs towards later
 * bytes), not for the ones after it. */
#ifndef DDB2ES_SWAR_H
#define DDB2ES_SWAR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SWAR_ONES 0x0101010101010101ull
#define SWAR_HIGH 0x8080808080808080ull

/* The 8 bytes at p (any alignment). */
static inline uint64_t swar_load(const char *p)
{
    uint64_t w;

    memcpy(&w, p, 8);
    return w;
}

/* High bit set in each byte of the result where w's byte may be c (and
 * only where it is, below the first match). */
static inline uint64_t swar_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (SWAR_ONES * c);

    return (x - SWAR_ONES) & ~x & SWAR_HIGH;
}

/* The same for a byte below n (n <= 128). */
static inline uint64_t swar_below(uint64_t w, unsigned char n)
{
    return (w - SWAR_ONES * n) & ~w & SWAR_HIGH;
}

/* High bit set where w's byte may be a quote or a backslash (exact up to
 * the first one that is). */
static inline uint64_t swar_quote_or_backslash(uint64_t w)
{
    return swar_eq(w, '"') | swar_eq(w, '\\');
}

/* Where in the 8 loaded bytes the first flagged one of mask m (not 0) is,
 * counted from p: on a little-endian machine the lowest flagged byte, which
 * the tests above flag exactly.  Elsewhere 0: the caller then looks at the
 * bytes one by one, which is slower but the same. */
static inline unsigned swar_first(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (unsigned)__builtin_ctzll(m) >> 3;
#else
    (void)m;
    return 0;
#endif
}

/* p moved over the words in which mask flags no byte, to the first flagged
 * byte of the word that has one; it stops with fewer than 8 bytes left
 * before end.  The string scanners' fast path (the caller looks at *p). */
static inline const char *swar_skip(const char *p, const char *end, uint64_t (*mask)(uint64_t))
{
    while (end - p >= 8) {
        uint64_t m = mask(swar_load(p));

        if (m)
            return p + swar_first(m);
        p += 8;
    }
    return p;
}

#endif
