/* seqnum — DynamoDB Streams sequence numbers.
 *
 * A sequence number is a decimal string of 21 to 40 digits (REFERENCE.md,
 * Streams fact 9).  It never fits an int64 or a double, so it is compared as
 * a big integer held in text: leading zeros do not count, then the longer
 * number is the larger, then the bytes decide.  Pure: no I/O, no allocation.
 */
#ifndef DDB2ES_SEQNUM_H
#define DDB2ES_SEQNUM_H

#include <stdbool.h>

#define SEQNUM_MIN 21 /* digits */
#define SEQNUM_MAX 40 /* digits; a char[SEQNUM_MAX + 1] holds any valid one */

/* True when s is 21..40 ASCII digits and nothing else.  s may be NULL. */
bool seqnum_valid(const char *s);

/* Compares two strings of decimal digits as unsigned integers: <0, 0 or >0
 * as a is below, equal to or above b ("007" equals "7").  Both must be digit
 * strings (checked by seqnum_valid for anything read from outside); their
 * length is not limited here. */
int seqnum_cmp(const char *a, const char *b);

#endif
