/* siphash — SipHash-2-4, 128-bit output (see siphash.h). */
#include <string.h>

#include "base/siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void rounds(uint64_t v[4], int n)
{
    while (n-- > 0) {
        v[0] += v[1];
        v[1] = ROTL(v[1], 13);
        v[1] ^= v[0];
        v[0] = ROTL(v[0], 32);
        v[2] += v[3];
        v[3] = ROTL(v[3], 16);
        v[3] ^= v[2];
        v[0] += v[3];
        v[3] = ROTL(v[3], 21);
        v[3] ^= v[0];
        v[2] += v[1];
        v[1] = ROTL(v[1], 17);
        v[1] ^= v[2];
        v[2] = ROTL(v[2], 32);
    }
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t w = 0;

    for (int i = 7; i >= 0; i--)
        w = w << 8 | p[i];
    return w;
}

static void put_le64(uint8_t *p, uint64_t w)
{
    for (int i = 0; i < 8; i++, w >>= 8)
        p[i] = (uint8_t)w;
}

static void compress(struct siphash *h, uint64_t m)
{
    h->v[3] ^= m;
    rounds(h->v, 2);
    h->v[0] ^= m;
}

void siphash_init(struct siphash *h, const uint8_t key[16])
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);

    h->v[0] = k0 ^ 0x736f6d6570736575ull;
    h->v[1] = k1 ^ 0x646f72616e646f6dull ^ 0xee; /* 0xee: the 128-bit output */
    h->v[2] = k0 ^ 0x6c7967656e657261ull;
    h->v[3] = k1 ^ 0x7465646279746573ull;
    h->tail = 0;
    h->len = 0;
}

void siphash_update(struct siphash *h, const void *p, size_t n)
{
    const uint8_t *b = p;

    /* Complete the word a previous part began. */
    while (n > 0 && h->len % 8) {
        h->tail |= (uint64_t)*b++ << (8 * (h->len % 8));
        h->len++;
        n--;
        if (h->len % 8 == 0) {
            compress(h, h->tail);
            h->tail = 0;
        }
    }
    for (; n >= 8; b += 8, n -= 8, h->len += 8)
        compress(h, le64(b));
    for (size_t i = 0; i < n; i++, h->len++)
        h->tail |= (uint64_t)b[i] << (8 * i);
}

void siphash_final128(struct siphash *h, uint8_t out[16])
{
    compress(h, h->tail | (uint64_t)(h->len & 0xff) << 56);
    h->v[2] ^= 0xee;
    rounds(h->v, 4);
    put_le64(out, h->v[0] ^ h->v[1] ^ h->v[2] ^ h->v[3]);
    h->v[1] ^= 0xdd;
    rounds(h->v, 4);
    put_le64(out + 8, h->v[0] ^ h->v[1] ^ h->v[2] ^ h->v[3]);
}
