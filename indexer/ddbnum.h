/* ddbnum — DynamoDB numbers (the text of an N value) checked, rewritten as
 * JSON number tokens and brought to one canonical spelling, all on the
 * decimal text itself: no double, no rounding, 38 digits kept.
 *
 * Accepted input (what DynamoDB takes): an optional sign, digits with an
 * optional fraction ("5", "5.", ".5", "007.50"), an optional exponent
 * (e|E, optional sign, digits); nothing else (no spaces, no "Infinity").
 * A non-zero value must have at most 38 significant digits and a magnitude
 * within 1E-130 .. 9.99...E+125; zero is accepted with any exponent.
 */
#ifndef DDB2ES_DDBNUM_H
#define DDB2ES_DDBNUM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define DDBNUM_MAX_DIGITS 38
#define DDBNUM_MAX_EXP 125  /* largest power of ten of the leading digit */
#define DDBNUM_MIN_EXP -130 /* smallest */

/* True when s[0..len) is a number DynamoDB accepts (see above). */
bool ddbnum_valid(const char *s, size_t len);

/* Appends a JSON number token with exactly the value of s: a valid JSON
 * spelling is copied unchanged; otherwise only what JSON forbids is fixed
 * (a leading '+', leading zeros, ".5" -> "0.5", "5." -> "5").
 * Returns 0, -EINVAL if s is not valid (out unchanged), or -E2BIG/-ENOMEM. */
int ddbnum_json(const char *s, size_t len, struct buf *out);

/* Appends the canonical spelling used in document ids: plain notation (no
 * exponent), no leading zeros, no trailing fractional zeros and no trailing
 * '.', "-0" -> "0".  "1E+125" -> "1" and 125 zeros, "2.50" -> "2.5",
 * "1e2" -> "100".  Two spellings of one value give the same text.
 * Returns 0, -EINVAL if s is not valid (out unchanged), or -E2BIG/-ENOMEM. */
int ddbnum_canonical(const char *s, size_t len, struct buf *out);

#endif
