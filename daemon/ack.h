/* ack — one shard's "contiguous finished prefix" (DESIGN invariant 1).
 *
 * The reader registers records in stream order (ack_push) and gets a ticket
 * for each; the sink finishes them in any order (ack_done: indexed, stale 409,
 * delete 404, or dead-lettered).  The checkpoint is the last record S such
 * that S and every record pushed before it have finished; it never passes an
 * unfinished record.
 *
 * Each record carries the external-version state right after it (the state
 * docver_next left when the record's version was issued), and the
 * checkpoint hands that state back with S.  Saved with S in the checkpoint
 * file, it lets a restart that resumes AFTER S issue the very same versions
 * to the records after S.  Typical use by a shard reader:
 *
 *     st = ckpt_shard_resume_version(ck, sh);            // at shard start
 *     for each record r, in stream order:
 *         r->version = docver_next(&st, r->created);
 *         r->ticket = ack_push(t, r->seq, &st);
 *     ... when the sink reports r finished:
 *     ack_done(t, r->ticket);
 *     if ((s = ack_checkpoint(t, &ver)))
 *         ckpt_shard_advance(ck, sh, s, &ver, now);
 *
 * A ring of entries indexed by ticket: O(1) amortised per record, memory
 * proportional to the records in flight (the ring is released when it
 * empties).  Pure: no I/O.
 */
#ifndef DDB2ES_ACK_H
#define DDB2ES_ACK_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/ckpt.h"

struct ack;

struct ack *ack_new(void); /* NULL when out of memory */
void ack_free(struct ack *t); /* NULL is a no-op */

/* Registers the next record of the shard.  seq must be above every sequence
 * number pushed before.  ver (may be NULL: {0, 0}) is copied.  Returns the
 * record's ticket (>= 0), or -EINVAL (seq is not a sequence number),
 * -EALREADY (seq is not above the last one pushed: a duplicate from a
 * re-read, to be skipped), -ENOMEM.
 * seq NULL registers a record whose sequence number cannot be read (text
 * that is not a record): it holds the checkpoint back like any other until
 * it finishes, and then moves it no further than the record before it. */
int64_t ack_push(struct ack *t, const char *seq, const struct docver *ver);

/* Takes back the record registered by the last ack_push, which must not be
 * finished (it could not be handed on: out of memory).  Only the last push
 * can be taken back, once.  0, or -ENOENT. */
int ack_unpush(struct ack *t);

/* Marks the record finished.  Returns 1 when the finished prefix grew (the
 * checkpoint moves unless the prefix grew only by records without a
 * sequence number), 0 when it did not (an older record is still in flight), -EALREADY when the
 * record was already finished, -ENOENT for a ticket never issued or already
 * behind the checkpoint. */
int ack_done(struct ack *t, int64_t ticket);

/* The new checkpoint: the last sequence number of the finished prefix, if it
 * moved since the previous call (else NULL), with its version state in
 * *ver_out (may be NULL).  The string belongs to the tracker and stays valid
 * until the next ack_done or ack_free. */
const char *ack_checkpoint(struct ack *t, struct docver *ver_out);

/* Records pushed and not yet behind the checkpoint. */
size_t ack_pending(const struct ack *t);

#endif
