/* jsonx — JSON that carries every string DynamoDB accepts.
 *
 * DynamoDB strings, map keys and attribute names may hold U+0000 and any
 * other code point, and DynamoDB (Local at least) also stores and returns
 * lone UTF-16 surrogates: PutItem {"S":"\ud800"} comes back from Scan and
 * GetRecords as "\uD800".  jansson 2.14 refuses \u0000 in object keys (even
 * with JSON_ALLOW_NUL), refuses lone surrogate escapes, cannot dump a string
 * that is not valid UTF-8, and its json_equal / json_deep_copy / json_object_get
 * see a key only up to its first NUL.  This module reads such text into
 * ordinary jansson trees and writes them back out byte-exact.
 *
 * Lone surrogates: a \uD800..\uDFFF escape that is not part of a valid
 * high-low pair is held as the 3-byte generalised UTF-8 form of its code
 * unit (WTF-8: ED A0 80 .. ED BF BF), the same shape UTF-8 gives every other
 * BMP code point.  This is the project's one representation of a lone
 * surrogate: jsonx_loadb makes it, jsonx_put_string writes it back as its
 * \udXXX escape, and jsonx_utf8_valid says false for it (strict UTF-8 has no
 * surrogates).  A valid pair \uD8xx\uDCxx is the one code point it stands
 * for (4 bytes of UTF-8), never two 3-byte forms; a string holding a high
 * form directly followed by a low form (which jsonx_loadb never makes) is
 * written as a pair escape and so reads back as the one code point.
 *
 * Strings and keys in these trees may hold NUL: read them with
 * json_string_length, json_object_getn, json_object_keylen_foreach (not
 * strlen, json_object_get, json_object_foreach).
 *
 * Pure: jansson and aws/buf only (jsonx_load_file also reads a file).
 */
#ifndef DDB2ES_JSONX_H
#define DDB2ES_JSONX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

/* Flags for jsonx_loadb. */
#define JSONX_DECODE_ANY        JSON_DECODE_ANY        /* a top-level scalar is allowed */
#define JSONX_REJECT_DUPLICATES JSON_REJECT_DUPLICATES /* else the last duplicate key wins */
#define JSONX_DECODE_INT_AS_REAL JSON_DECODE_INT_AS_REAL /* every number a json_real: an
                                                            integer past json_int_t is read */
/* Skip jansson: parse with our own parser only.  For the tests and the
 * fuzz target, which compare the two parsers; never needed otherwise. */
#define JSONX_OWN_PARSER        0x10000

/* Parses text[0..len): exactly RFC 8259 JSON, plus \u0000 anywhere (values
 * and keys) and lone surrogate escapes (WTF-8 forms, above).  Raw bytes must
 * be strict UTF-8; raw control characters in strings, trailing text and
 * nesting deeper than jansson's JSON_PARSER_MAX_DEPTH are refused.  Numbers
 * become what jansson makes of them (integer token: json_integer, refused
 * past json_int_t, or with JSONX_DECODE_INT_AS_REAL a json_real; else
 * json_real, refused when it overflows).
 *
 * jansson's json_loadb (with JSON_ALLOW_NUL) runs first; only text it
 * refuses goes through our own parser, which gives the same tree for any
 * text jansson accepts, with one exception: a raw NUL byte is refused
 * wherever it is (jansson skips one that directly follows a number or a
 * literal).  On failure err (may be NULL) says what and where (line, column,
 * byte position), as jansson does.  Returns a new reference, or NULL. */
json_t *jsonx_loadb(const char *text, size_t len, size_t flags, json_error_t *err);

/* jsonx_loadb on a whole file.  NULL when it cannot be read (err says so,
 * as json_load_file does) or parsed; err->source is the path. */
json_t *jsonx_load_file(const char *path, size_t flags, json_error_t *err);

/* Appends s[0..len) as a JSON string with its quotes: '"', '\\' and the
 * control characters escaped (\n, \t... or \u00XX, lower-case hex), each
 * 3-byte WTF-8 lone surrogate written as its \udXXX escape, every other byte
 * copied (valid UTF-8 stays as it is).  On failure out is left as it was.
 * Returns 0, -E2BIG or -ENOMEM. */
int jsonx_put_string(struct buf *out, const char *s, size_t len);

/* Appends v as compact JSON: what json_dumps(v, JSON_COMPACT |
 * JSON_ENCODE_ANY) writes for trees it can dump (members in the object's
 * order, reals as "%.17g" with ".0" when needed), except that a control
 * character's \u00XX escape has lower-case hex; keys are written with their
 * length and every string through jsonx_put_string, so NUL keys and lone
 * surrogates come out as jsonx_loadb read them.  On failure out is left as
 * it was.  Returns 0, -EINVAL (v NULL or holding a NULL), -ELOOP (nested
 * deeper than jsonx_loadb reads, or a cycle), -E2BIG or -ENOMEM. */
int jsonx_dump(struct buf *out, const json_t *v);

/* jsonx_dump into a new NUL-terminated string (caller frees; the text holds
 * no NUL byte).  *len (may be NULL) gets its length.  NULL on failure. */
char *jsonx_dumps(const json_t *v, size_t *len);

/* Deep equality, as json_equal but seeing keys with their length: objects
 * equal when they have the same keys (NUL included) with equal values. */
bool jsonx_equal(const json_t *a, const json_t *b);

/* The JSON string whose opening quote is at p, read up to its closing
 * quote (before end), appended to out decoded: escapes as jsonx_loadb reads
 * them (\u0000 as NUL, a lone surrogate in its WTF-8 form); raw bytes are
 * copied, not checked.  -EINVAL when p holds no string, an escape is
 * invalid or the quote never comes; else 0 or what the buffer returned. */
int jsonx_string_decode(const char *p, const char *end, struct buf *out);

/* True when s[0..len) is strict UTF-8: no overlong form, no surrogate
 * (WTF-8 included), nothing above U+10FFFF.  NUL is valid. */
bool jsonx_utf8_valid(const char *s, size_t len);

#endif
