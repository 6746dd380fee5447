/* b64 — standard base64 (RFC 4648 section 4, with padding) decoded
 * strictly: the text DynamoDB JSON gives a B value.  Pure. */
#ifndef DDB2ES_B64_H
#define DDB2ES_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Room b64_decode needs for a text of len characters. */
#define B64_DECODED_MAX(len) ((len) / 4 * 3)

/* Decodes s[0..len) into out, which has room for B64_DECODED_MAX(len)
 * bytes.  Returns the number of bytes written, or -EINVAL when s is not
 * standard base64: a length that is not a multiple of 4, a character
 * outside A-Z a-z 0-9 + /, or '=' anywhere but as the last one or two
 * characters.  Bits left over after the last byte are ignored. */
ssize_t b64_decode(const char *s, size_t len, unsigned char *out);

/* Whether b64_decode takes s[0..len). */
bool b64_valid(const char *s, size_t len);

#endif
