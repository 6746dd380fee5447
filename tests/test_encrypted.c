/* Client-side encrypted items: the header parsers (dbehead), on items the
 * AWS Database Encryption SDK and the legacy DynamoDB Encryption Client
 * wrote themselves (tests/data/dbesdk/README.md says where each comes
 * from). */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "indexer/dbehead.h"

#define VECTORS "tests/data/dbesdk/decrypt_dotnet_33.json"
#define LEGACY "tests/data/dbesdk/legacy/"

TestSuite(dbehead, .timeout = 10);

static json_t *load(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);

    cr_assert_not_null(j, "%s: %s", path, je.text);
    return j;
}

/* The stored item of test id of the SDK's vectors (a new reference). */
static json_t *vector(const char *id)
{
    json_t *all = load(VECTORS);
    json_t *item = json_object_get(json_object_get(json_object_get(all, "tests"), id), "encrypted");

    cr_assert_not_null(item, "no test %s in %s", id, VECTORS);
    item = json_deep_copy(item);
    json_decref(all);
    return item;
}

/* The bytes of a B attribute value (malloc'd). */
static unsigned char *b_bytes(json_t *av, size_t *len)
{
    const char *s = json_string_value(json_object_get(av, "B"));
    unsigned char *p;
    ssize_t n;

    cr_assert_not_null(s, "not a B value");
    p = malloc(B64_DECODED_MAX(strlen(s)) + 1);
    n = b64_decode(s, strlen(s), p);
    cr_assert_geq(n, 0, "not base64: %s", s);
    *len = (size_t)n;
    return p;
}

/* ---- the SDK's header ---------------------------------------------------- */

struct header_want {
    const char *id;
    unsigned version, flavor;
    const char *legend;
};

/* What each vector's aws_dbe_head holds, read by hand from the bytes (the
 * legend is the item's own statement of what it encrypted; RecNum, Stuff
 * and Junk sort Junk, Stuff, RecNum by canonical path). */
static const struct header_want headers[] = {
    { "1", 1, 1, "ees" },  { "2", 1, 1, "ees" },  { "3", 1, 1, "sss" },  { "4", 1, 1, "ees" },
    { "6", 1, 1, "ees" },  { "7", 1, 0, "ees" },  { "8", 1, 1, "ees" },  { "9", 1, 0, "ees" },
    { "10", 1, 1, "ess" }, { "11", 2, 1, "eec" }, { "12", 2, 1, "cec" }, { "13", 2, 1, "ecc" },
};

Test(dbehead, every_vector_header_gives_its_version_flavor_and_legend)
{
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        json_t *item = vector(headers[i].id);
        size_t len, ne = 0;
        unsigned char *p = b_bytes(json_object_get(item, "aws_dbe_head"), &len);
        struct dbehead h;
        int rc = dbehead_parse(p, len, &h);

        cr_assert_eq(rc, 0, "test %s: %s", headers[i].id, dbehead_strerror(rc));
        cr_expect_eq(h.version, headers[i].version, "test %s", headers[i].id);
        cr_expect_eq(h.flavor, headers[i].flavor, "test %s", headers[i].id);
        cr_assert_eq(h.legend_len, strlen(headers[i].legend), "test %s", headers[i].id);
        cr_expect_eq(memcmp(h.legend, headers[i].legend, h.legend_len), 0, "test %s: %.*s",
                     headers[i].id, (int)h.legend_len, (const char *)h.legend);
        for (const char *c = headers[i].legend; *c; c++)
            ne += *c == 'e';
        cr_expect_eq(h.encrypted, ne, "test %s", headers[i].id);
        cr_expect(h.legend > p && h.legend + h.legend_len <= p + len, "the legend points inside");
        free(p);
        json_decref(item);
    }
}

/* Each prefix of a real header is given alone in a buffer of exactly its
 * size (the sanitizer build catches a read past it): every one is refused. */
Test(dbehead, a_header_cut_anywhere_is_refused_without_reading_past_it)
{
    json_t *item = vector("1");
    size_t len;
    unsigned char *p = b_bytes(json_object_get(item, "aws_dbe_head"), &len);
    struct dbehead h;

    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *q = malloc(cut ? cut : 1);

        memcpy(q, p, cut);
        cr_expect_eq(dbehead_parse(q, cut, &h), DBEHEAD_ETRUNCATED, "cut at %zu of %zu", cut,
                     len);
        free(q);
    }
    cr_expect_eq(dbehead_parse(p, len, &h), 0);
    free(p);
    json_decref(item);
}

/* A header built field by field: version, flavor, 32-byte id, legend,
 * npairs empty context pairs, nkeys data keys of empty fields, commitment. */
static size_t build_header(unsigned char *out, unsigned version, unsigned flavor,
                           const char *legend, unsigned npairs, unsigned nkeys)
{
    size_t n = 0, ll = strlen(legend);

    out[n++] = (unsigned char)version;
    out[n++] = (unsigned char)flavor;
    memset(out + n, 0xab, 32);
    n += 32;
    out[n++] = (unsigned char)(ll >> 8);
    out[n++] = (unsigned char)ll;
    memcpy(out + n, legend, ll);
    n += ll;
    out[n++] = (unsigned char)(npairs >> 8);
    out[n++] = (unsigned char)npairs;
    for (unsigned i = 0; i < npairs; i++) {
        memcpy(out + n, "\0\1k\0\1v", 6);
        n += 6;
    }
    out[n++] = (unsigned char)nkeys;
    for (unsigned i = 0; i < nkeys; i++) {
        memset(out + n, 0, 6);
        n += 6;
    }
    memset(out + n, 0xcd, 32);
    return n + 32;
}

Test(dbehead, each_field_is_checked)
{
    unsigned char h[512];
    struct dbehead out;
    size_t n;

    n = build_header(h, 1, 0, "se", 2, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), 0);
    cr_expect_eq(out.encrypted, 1);
    n = build_header(h, 2, 1, "csec", 0, 3);
    cr_expect_eq(dbehead_parse(h, n, &out), 0, "no context pairs, three keys");
    n = build_header(h, 1, 0, "", 0, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), 0, "nothing signed");
    cr_expect_eq(out.legend_len, 0);

    n = build_header(h, 3, 0, "se", 1, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_EVERSION);
    n = build_header(h, 0, 0, "se", 1, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_EVERSION);
    n = build_header(h, 1, 2, "se", 1, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_EFLAVOR);
    n = build_header(h, 1, 0, "sc", 1, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ELEGEND, "'c' needs version 2");
    n = build_header(h, 2, 0, "sx", 1, 1);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ELEGEND);
    n = build_header(h, 1, 0, "se", 1, 0);
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ENOKEYS);
    n = build_header(h, 1, 0, "se", 1, 1);
    h[n] = 0;
    cr_expect_eq(dbehead_parse(h, n + 1, &out), DBEHEAD_ETRAILING);

    /* Lengths that point past the end. */
    n = build_header(h, 1, 0, "se", 1, 1);
    h[34] = 0xff, h[35] = 0xff; /* legend length */
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ETRUNCATED);
    n = build_header(h, 1, 0, "se", 1, 1);
    h[38] = 0xff; /* context pair count 0xff01 */
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ETRUNCATED);
    n = build_header(h, 1, 0, "se", 1, 1);
    h[40] = 0xff; /* the first context key's length */
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ETRUNCATED);
    n = build_header(h, 1, 0, "se", 1, 2);
    h[46] = 9; /* nine data keys said, two there */
    cr_expect_eq(dbehead_parse(h, n, &out), DBEHEAD_ETRUNCATED);
    n = build_header(h, 1, 0, "se", 1, 1);
    cr_expect_eq(dbehead_parse(h, n - 1, &out), DBEHEAD_ETRUNCATED, "commitment short");
    cr_expect_str_eq(dbehead_strerror(DBEHEAD_ETRUNCATED), "truncated");
}

/* ---- the legacy material description ------------------------------------- */

Test(dbehead, a_legacy_description_says_whether_the_item_may_hold_ciphertext)
{
    static const char *const files[] = { "java-static-aes-hmac-1.json",
                                         "java-kms-nonbmp-hashkey-1.json",
                                         "java-metastore-aes-hmac-2.json",
                                         "python-wrapped-rsa-rsa-1.json" };
    /* 0, then "amzn-ddb-sig-alg" = "HmacSHA256/256" only. */
    static const unsigned char sign_only[] = "\0\0\0\0\0\0\0\x10"
                                             "amzn-ddb-sig-alg\0\0\0\x0e"
                                             "HmacSHA256/256";
    size_t seen = 0;
    bool enc;

    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char path[256];
        json_t *all, *items, *item;
        const char *table;
        size_t i;

        snprintf(path, sizeof(path), LEGACY "%s", files[f]);
        all = load(path);
        json_object_foreach(all, table, items) json_array_foreach(items, i, item)
        {
            json_t *desc = json_object_get(item, "*amzn-ddb-map-desc*");
            unsigned char *p;
            size_t len;

            if (!desc)
                continue;
            p = b_bytes(desc, &len);
            enc = false;
            cr_expect_eq(dbehead_legacy_parse(p, len, &enc), 0, "%s %s[%zu]", files[f], table, i);
            cr_expect(enc, "%s %s[%zu]: every description here has a sym-mode", files[f], table,
                      i);
            for (size_t cut = 0; cut < len; cut++) {
                unsigned char *q = malloc(cut ? cut : 1);

                memcpy(q, p, cut);
                /* A cut on a pair boundary is a shorter, valid description. */
                if (dbehead_legacy_parse(q, cut, &enc) == 0)
                    cr_expect(cut >= 4, "%s: cut at %zu", files[f], cut);
                free(q);
            }
            seen++;
            free(p);
        }
        json_decref(all);
    }
    cr_expect_gt(seen, 20);
    enc = true;
    cr_expect_eq(dbehead_legacy_parse(sign_only, sizeof(sign_only) - 1, &enc), 0);
    cr_expect_not(enc, "a description without sym-mode: nothing encrypted");
    cr_expect_eq(dbehead_legacy_parse((const unsigned char *)"\0\0\0\1", 4, &enc),
                 DBEHEAD_EVERSION);
    cr_expect_eq(dbehead_legacy_parse((const unsigned char *)"\0\0\0\0\xff\xff\xff\xff", 8, &enc),
                 DBEHEAD_ETRUNCATED);
    cr_expect_eq(dbehead_legacy_parse((const unsigned char *)"\0\0\0", 3, &enc),
                 DBEHEAD_ETRUNCATED);
}

Test(dbehead, base64_is_decoded_strictly)
{
    unsigned char out[16];

    cr_expect_eq(b64_decode("", 0, out), 0);
    cr_expect_eq(b64_decode("AAEC/w==", 8, out), 4);
    cr_expect_eq(memcmp(out, "\0\1\2\xff", 4), 0);
    cr_expect_eq(b64_decode("AQI=", 4, out), 2);
    cr_expect_eq(b64_decode("AQID", 4, out), 3);
    cr_expect_eq(b64_decode("AQI", 3, out), -EINVAL);
    cr_expect_eq(b64_decode("A=I=", 4, out), -EINVAL);
    cr_expect_eq(b64_decode("====", 4, out), -EINVAL);
    cr_expect_eq(b64_decode("AQ-_", 4, out), -EINVAL, "the URL alphabet is not DynamoDB's");
    cr_expect_eq(b64_decode("AQ==AQ==", 8, out), -EINVAL);
}

