/* Fuzz target: the headers client-side encryption stores in an item
 * (dbehead_parse, dbehead_legacy_parse) and what encitem_classify leaves
 * out of an item holding such a header.
 *
 * The first byte picks the mode (its low two bits):
 *   0  the rest is an aws_dbe_head value (the decoded bytes);
 *   1  the rest is a *amzn-ddb-map-desc* value;
 *   2  an item: the second byte is a number of attributes (low 4 bits),
 *      then one byte each (a name from a small pool that sorts in every
 *      interesting way: keys, UTF-16 lengths that differ from byte lengths,
 *      the SDK's prefixes; and a type: S, a short B, a B shaped like the
 *      SDK's ciphertext, BS, N); the rest is its aws_dbe_head, base64'd;
 *   3  the same item with the rest as its *amzn-ddb-map-desc*.
 * Besides "no crash, no leak, no undefined behaviour", it checks what the
 * callers rely on: a parsed legend lies inside the input and counts its
 * 'e' bytes; a key attribute is never left out, nor a beacon unless it is
 * binary and the header failed; an attribute
 * left out that is not the encryption's own is binary (B, or BS once the
 * header failed); every 'e' of a usable legend leaves an attribute out;
 * the counts add up. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/dbehead.h"
#include "indexer/encitem.h"
#include "tests/fuzz/fuzz.h"

static const char *const pool[] = {
    "pk", "sk", "a", "ab", "abc", "Junk", "Stuff", "RecNum", "\xc3\xa9", "\xf0\x9f\x98\x80",
    "aws_dbe_b_x", "aws_dbe_v_1", "aws:rep:r", "aws_dbe_foot", "*amzn-ddb-map-sig*", "z",
};

static json_t *value_of(unsigned kind)
{
    switch (kind % 5) {
    case 0:  return json_pack("{s:s}", "S", "text");
    case 1:  return json_pack("{s:s}", "B", "AAECAw==");
    case 2:  return json_pack("{s:s}", "B", "AAEAAAAAAAAAAAAAAAAAAAAAAAAA"); /* 0x0001, 21 bytes */
    case 3:  return json_pack("{s:[s]}", "BS", "AAECAw==");
    default: return json_pack("{s:s}", "N", "1");
    }
}

static char *base64(const uint8_t *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;

    if (!out)
        abort();
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)(i + 1 < n ? p[i + 1] : 0) << 8 |
                     (unsigned)(i + 2 < n ? p[i + 2] : 0);

        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static bool prefixed(const char *k, const char *prefix)
{
    return strncmp(k, prefix, strlen(prefix)) == 0;
}

static void check_header(const uint8_t *p, size_t n)
{
    struct dbehead h;
    size_t ne = 0;

    if (dbehead_parse(p, n, &h) != 0)
        return;
    if (h.version < 1 || h.version > 2 || h.flavor > 1)
        abort();
    if (h.legend < p + 36 || h.legend + h.legend_len > p + n)
        abort();
    for (size_t i = 0; i < h.legend_len; i++)
        ne += h.legend[i] == 'e';
    if (ne != h.encrypted)
        abort();
}

static void check_item(const uint8_t *data, size_t size, bool legacy)
{
    static const struct encitem_keys keys = { "pk", 2, "sk", 2 };
    json_t *item = json_object();
    unsigned nattr = size ? data[0] & 15 : 0;
    size_t at = size ? 1 : 0, outs = 0, pos = 0;
    struct encitem e;
    struct dbehead h;
    bool usable;
    const char *k;
    json_t *av;
    char *b64;

    for (unsigned i = 0; i < nattr && at < size; i++, at++)
        json_object_set_new(item, pool[data[at] & 15], value_of(data[at] >> 4));
    b64 = base64(data + at, size - at);
    json_object_set_new(item, legacy ? "*amzn-ddb-map-desc*" : "aws_dbe_head",
                        json_pack("{s:s}", "B", b64));
    if (encitem_classify(item, &keys, &e) < 0)
        abort();
    if (e.kind != (legacy ? ENCITEM_LEGACY : ENCITEM_DBESDK) || e.n != json_object_size(item))
        abort();
    usable = !legacy && dbehead_parse(data + at, size - at, &h) == 0;
    if (!legacy && !usable && !e.failed)
        abort();
    json_object_foreach(item, k, av) {
        bool out = encitem_left_out(&e, pos++), own;
        bool bin = json_object_get(av, "B") || (e.failed && json_object_get(av, "BS"));

        outs += out;
        own = legacy ? prefixed(k, "*amzn-ddb-map-")
                     : prefixed(k, "aws_dbe_") && !prefixed(k, "aws_dbe_b_");
        if (out && (!strcmp(k, "pk") || !strcmp(k, "sk")))
            abort();
        if (out && !legacy && prefixed(k, "aws_dbe_b_") && !(e.failed && bin))
            abort();
        if (own && !out)
            abort();
        if (out && !own && !bin)
            abort();
    }
    if (outs != e.left_out + e.sdk_left_out)
        abort();
    if (usable && !e.failed && e.left_out < h.encrypted)
        abort();
    encitem_close(&e);
    free(b64);
    json_decref(item);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool enc;

    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0:
        check_header(data + 1, size - 1);
        break;
    case 1:
        dbehead_legacy_parse(data + 1, size - 1, &enc);
        break;
    default:
        check_item(data + 1, size - 1, (data[0] & 3) == 3);
        break;
    }
    return 0;
}
