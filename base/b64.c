#include "base/b64.h"

#include <errno.h>

static int val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* in_alphabet[c]: c is one of the 64 characters of the base64 alphabet
 * (RFC 4648 section 4), as val() reads them; a row per 16 byte values. */
static const char in_alphabet[257] =
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\1\0\0\0\1"
    "\1\1\1\1\1\1\1\1\1\1\0\0\0\0\0\0"
    "\0\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1"
    "\1\1\1\1\1\1\1\1\1\1\1\0\0\0\0\0"
    "\0\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1"
    "\1\1\1\1\1\1\1\1\1\1\1\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
    "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

bool b64_valid(const char *s, size_t len)
{
    size_t pad = 0;

    if (len % 4)
        return false;
    if (len && s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (!in_alphabet[(unsigned char)s[i]])
            return false;
    return true;
}

ssize_t b64_decode(const char *s, size_t len, unsigned char *out)
{
    size_t pad = 0, n = 0;

    if (len % 4)
        return -EINVAL;
    if (len && s[len - 1] == '=')
        pad = s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len; i += 4) {
        unsigned long v = 0;
        size_t real = i + 4 < len ? 4 : 4 - pad;

        for (size_t k = 0; k < 4; k++) {
            int d = k < real ? val((unsigned char)s[i + k]) : 0;

            if (d < 0)
                return -EINVAL;
            v = v << 6 | (unsigned long)d;
        }
        out[n++] = (unsigned char)(v >> 16);
        if (real > 2)
            out[n++] = (unsigned char)(v >> 8);
        if (real > 3)
            out[n++] = (unsigned char)v;
    }
    return (ssize_t)n;
}
