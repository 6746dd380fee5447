/* docver — the external version a document is indexed with (DESIGN
 * invariant 2: the index never regresses).
 *
 *     version = (second << 20) | ordinal
 *
 * second is the record's ApproximateCreationDateTime in seconds; ordinal
 * counts the records of that second along the shard *lineage* (carried from
 * a parent to its child).  The state after the last version issued is kept
 * with the shard's checkpoint (ckpt.h), so a restart recomputes the same
 * versions.  Backfill rows (`ddb2es replay`) take a version just below every
 * stream event of their second.  Pure: no I/O, no state of its own.
 */
#ifndef DDB2ES_DOCVER_H
#define DDB2ES_DOCVER_H

#include <stdint.h>

#define DOCVER_ORDINAL_BITS 20
#define DOCVER_ORDINAL_MAX ((UINT32_C(1) << DOCVER_ORDINAL_BITS) - 1)
/* Seconds are clamped to this (about the year 141,000), which keeps every
 * version far below the engine's bound of 2^63 - 1. */
#define DOCVER_SECOND_MAX ((INT64_C(1) << 42) - 1)

/* The state after the last version issued along a shard lineage: the second
 * it belongs to and the ordinal used within it.  {0, 0} is a new lineage. */
struct docver {
    int64_t second;
    uint32_t ordinal;
};

/* Issues the version of the next record of a lineage, in stream order:
 *   created > st->second:  second = created, ordinal = 0
 *   otherwise:             ordinal + 1 (also when created < second, which
 *                          happens across a parent/child handover or with
 *                          clock-skewed records: versions never go back)
 *   ordinal past DOCVER_ORDINAL_MAX (over a million records in one second):
 *                          the next second is borrowed (second + 1,
 *                          ordinal 0); later records of the real second
 *                          then count on from there, so the sequence stays
 *                          strictly increasing.
 * Returns (second << 20) | ordinal and updates *st.  A pure function of
 * (*st, created): the same inputs always give the same version, which is why
 * the state saved with a checkpoint is the state right after the
 * checkpointed record (see ack.h).  created is clamped to
 * 0..DOCVER_SECOND_MAX. */
uint64_t docver_next(struct docver *st, int64_t created_seconds);

/* -1, 0 or 1 as state a is before, equal to or after b. */
int docver_cmp(const struct docver *a, const struct docver *b);

/* The version of a backfill row read at second (the read time less the
 * margin): (second << 20) - 1, below every version issued for a record of
 * that second or later.  second is clamped to 1..DOCVER_SECOND_MAX. */
uint64_t docver_below(int64_t second);

#endif
