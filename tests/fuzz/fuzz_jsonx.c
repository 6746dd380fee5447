/* Fuzz target: jsonx against jansson, and against itself.
 *
 * The first byte picks the flags (bit 0: JSONX_DECODE_ANY, bit 1:
 * JSONX_REJECT_DUPLICATES, bit 2: JSONX_DECODE_INT_AS_REAL); the rest is the
 * text.  Checks:
 * - when jansson (JSON_ALLOW_NUL) reads the text (and it holds no raw NUL
 *   byte, which jansson sometimes skips and jsonx refuses), our own parser reads it
 *   too, to an equal tree that dumps to the same bytes (so reals agree to
 *   the bit, -0.0 included);
 * - jsonx_loadb (jansson first) and our parser alone accept the same texts;
 * - whenever ours reads it, its dump loads back to an equal tree that dumps
 *   to the same bytes, and holds no NUL byte;
 * - the dump is json_dumps's text (hex digits of \u escapes aside) whenever
 *   every key and string is strict UTF-8, and json_dumps fails exactly when
 *   a string value is not;
 * - a refusal has a text and a position inside the input. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "tests/fuzz/fuzz.h"

/* Whether every string value (keys: every key) in v is strict UTF-8. */
static bool all_utf8(json_t *v, bool keys)
{
    const char *k;
    size_t klen, i;
    json_t *m;

    switch (json_typeof(v)) {
    case JSON_STRING:
        return keys || jsonx_utf8_valid(json_string_value(v), json_string_length(v));
    case JSON_ARRAY:
        json_array_foreach(v, i, m) if (!all_utf8(m, keys)) return false;
        return true;
    case JSON_OBJECT:
        json_object_keylen_foreach(v, k, klen, m) {
            if ((keys && !jsonx_utf8_valid(k, klen)) || !all_utf8(m, keys))
                return false;
        }
        return true;
    default:
        return true;
    }
}

/* json_dumps with the hex digits of its \u escapes in lower case. */
static char *jansson_dump(json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    for (char *p = t; p && *p; p++) {
        if (p[0] == '\\' && p[1] == 'u') {
            for (int i = 2; i < 6; i++)
                if (p[i] >= 'A' && p[i] <= 'F')
                    p[i] = (char)(p[i] - 'A' + 'a');
            p += 5;
        } else if (p[0] == '\\') {
            p++;
        }
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data + 1;
    size_t len = size ? size - 1 : 0, flags, l1, l2, lj;
    json_t *jan, *own, *any, *back;
    char *d1, *d2, *dj;
    json_error_t e;

    if (size < 1)
        return 0;
    flags = (data[0] & 1 ? JSONX_DECODE_ANY : 0) | (data[0] & 2 ? JSONX_REJECT_DUPLICATES : 0) |
            (data[0] & 4 ? JSONX_DECODE_INT_AS_REAL : 0);
    jan = json_loadb(text, len, JSON_ALLOW_NUL | flags, NULL);
    if (jan && memchr(text, '\0', len)) { /* jansson skips a raw NUL after a token */
        json_decref(jan);
        jan = NULL;
    }
    own = jsonx_loadb(text, len, flags | JSONX_OWN_PARSER, &e);
    any = jsonx_loadb(text, len, flags, NULL);
    if ((own != NULL) != (any != NULL) || (jan && !own))
        abort();
    if (!own) {
        if (!e.text[0] || e.position < 0 || (size_t)e.position > len || e.line < 1)
            abort();
        return 0;
    }
    if (!jsonx_equal(own, any) || (jan && !jsonx_equal(own, jan)))
        abort();
    if (!(d1 = jsonx_dumps(own, &l1)) || strlen(d1) != l1)
        abort();
    if (jan) {
        if (!(dj = jsonx_dumps(jan, &lj)) || lj != l1 || memcmp(d1, dj, l1) != 0)
            abort();
        free(dj);
    }
    back = jsonx_loadb(d1, l1, JSONX_DECODE_ANY | JSONX_OWN_PARSER, NULL);
    if (!back || !jsonx_equal(own, back))
        abort();
    if (!(d2 = jsonx_dumps(back, &l2)) || l2 != l1 || memcmp(d1, d2, l1) != 0)
        abort();
    /* json_dumps fails on a string value that is not UTF-8, but writes a
     * broken key and goes on (dump.c ignores dump_string's result there). */
    dj = jansson_dump(own);
    if ((dj != NULL) != all_utf8(own, false) ||
        (dj && all_utf8(own, true) && strcmp(dj, d1) != 0))
        abort();
    free(dj);
    free(d1);
    free(d2);
    json_decref(back);
    json_decref(jan);
    json_decref(own);
    json_decref(any);
    return 0;
}
