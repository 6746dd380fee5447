/* backoff — the one capped exponential backoff with full jitter that every
 * retry loop in ddb2es uses, and its one random source. */
#ifndef DDB2ES_BACKOFF_H
#define DDB2ES_BACKOFF_H

/* The cap of capped exponential backoff: min(base * 2^n, max), without
 * overflow. */
long backoff_cap_ms(long base, long max, unsigned n);

/* Full jitter below the cap for the n-th failure in a row: a wait in
 * [1, cap] ms (at least 1 ms, so a failure never turns into a busy loop). */
long backoff_ms(long base, long max, unsigned n);

/* A uniform draw in [0, ms) (0 when ms <= 0). */
long backoff_jitter_ms(long ms);

/* [0, 1): xorshift64*, seeded from the clock and pid; jitter need not be
 * secret.  Tests make it predictable with backoff_set_rng (NULL restores
 * the default). */
double backoff_rng(void);
void backoff_set_rng(double (*rng)(void));

#endif
