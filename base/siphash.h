/* siphash — SipHash-2-4 with its 128-bit output (Aumasson and Bernstein,
 * "SipHash: a fast short-input PRF", 2012): a keyed hash whose outputs,
 * for a random secret key, collide only by chance (2^-128 a pair), so it
 * can stand for a key that is not kept.  The sink's remembered deletes hold
 * it instead of (index, _id).  Pure; the tests check it against OpenSSL's
 * SIPHASH MAC. */
#ifndef DDB2ES_SIPHASH_H
#define DDB2ES_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* A message fed in parts: the hash is that of their concatenation. */
struct siphash {
    uint64_t v[4];
    uint64_t tail;      /* the bytes not yet a whole word, little-endian */
    size_t len;         /* bytes fed so far */
};

/* key: 16 bytes, read as two little-endian words as the paper does. */
void siphash_init(struct siphash *h, const uint8_t key[16]);
void siphash_update(struct siphash *h, const void *p, size_t n);
/* The 16 output bytes as the paper's reference code writes them. */
void siphash_final128(struct siphash *h, uint8_t out[16]);

#endif
