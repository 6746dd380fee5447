/* Client-side encrypted items: the header parsers (dbehead), which
 * attributes reach a document (encitem through transform), the per-table
 * counters and log line (encstats) and their metrics, on items the AWS
 * Database Encryption SDK and the legacy DynamoDB Encryption Client wrote
 * themselves (tests/data/dbesdk/README.md says where each comes from).  Which stored attributes are ciphertext is read from each item's
 * own header; the expectations below spell out the legend behind them. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/b64.h"
#include "base/log.h"
#include "daemon/encstats.h"
#include "daemon/metrics.h"
#include "indexer/dbehead.h"
#include "indexer/encitem.h"
#include "indexer/transform.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/promparse.h"
#include "tests/support/searchd_ctl.h"

#define VECTORS "tests/data/dbesdk/decrypt_dotnet_33.json"
#define LEGACY "tests/data/dbesdk/legacy/"

TestSuite(dbehead, .timeout = 10);
TestSuite(encrypted, .timeout = 10);

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
    {
        /* A key of the same length, one byte off, is not sym-mode. */
        static const unsigned char near[] = "\0\0\0\0\0\0\0\x15"
                                            "amzn-ddb-map-sym-mod_\0\0\0\x01x";

        enc = true;
        cr_expect_eq(dbehead_legacy_parse(near, sizeof(near) - 1, &enc), 0);
        cr_expect_not(enc, "keys are compared whole");
    }
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

/* ---- which attributes reach the document -------------------------------- */

static struct transform_cfg cfg;
static struct doc d;
static struct buf err;
static struct encitem seen;
static int calls;

static void note(void *arg, const struct encitem *e, const char *what)
{
    calls++;
    seen = *e;
    seen.out = NULL; /* not kept past the call */
}

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.index = "vectors";
    cfg.id_sep = '|';
    cfg.hash_key = "RecNum";
    cfg.on_encrypted = note;
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 1 << 20);
    buf_init(&d.keys, 0);
    buf_init(&err, 4096);
    memset(&seen, 0, sizeof(seen));
    calls = 0;
}

static void teardown(void)
{
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
}

/* item's document (a new reference). */
static json_t *doc_of(json_t *item)
{
    json_error_t je;
    json_t *src;

    cr_assert_eq(transform_item(&cfg, item, &d, &err), TR_DOC, "%s", err.ptr ? err.ptr : "");
    src = json_loadb(d.source.ptr, d.source.len, 0, &je);
    cr_assert_not_null(src, "%s", je.text);
    return src;
}

/* The document holds exactly the names listed (comma separated), each with
 * the value that encryption = as_is gives it: indexed as usual. */
static void expect_doc(json_t *item, const char *names, const char *label)
{
    enum transform_encrypted mode = cfg.encrypted;
    json_t *plain, *asis, *v;
    char *list = strdup(names), *save = NULL;
    size_t want = 0;
    const char *k;

    cfg.encrypted = TRANSFORM_ENCRYPTED_AS_IS;
    asis = doc_of(item);
    cfg.encrypted = mode;
    plain = doc_of(item);
    for (char *n = strtok_r(list, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        want++;
        cr_expect(json_equal(json_object_get(plain, n), json_object_get(asis, n)),
                  "%s: %s is indexed as usual", label, n);
    }
    json_object_foreach(plain, k, v) {
        bool listed = false;
        char *l2 = strdup(names), *s2 = NULL;

        for (char *n = strtok_r(l2, ",", &s2); n; n = strtok_r(NULL, ",", &s2))
            listed |= strcmp(n, k) == 0;
        free(l2);
        cr_expect(listed, "%s: %s must not reach the document (%s)", label, k, d.source.ptr);
    }
    cr_expect_eq(json_object_size(plain), want, "%s: %s", label, d.source.ptr);
    free(list);
    json_decref(plain);
    json_decref(asis);
}

/* One vector: the document holds names; the report counts encrypted
 * attributes left out and the SDK's two. */
static void check_vector(const char *id, const char *names, size_t encrypted)
{
    json_t *item = vector(id);
    char label[32];

    snprintf(label, sizeof(label), "test %s", id);
    expect_doc(item, names, label);
    cr_expect_eq(seen.kind, ENCITEM_DBESDK, "%s", label);
    cr_expect_not(seen.failed, "%s: %s", label, seen.why);
    cr_expect_eq(seen.left_out, encrypted, "%s", label);
    cr_expect_eq(seen.sdk_left_out, 2, "%s: aws_dbe_head and aws_dbe_foot", label);
    json_decref(item);
}

/* "Basic encrypt": legend ees, Junk and Stuff are ciphertext (B). */
Test(encrypted, vector_1_basic_encrypt, .init = setup, .fini = teardown)
{
    check_vector("1", "RecNum", 2);
}

/* Decrypted as SIGN_ONLY, but stored encrypted: the header (ees) rules. */
Test(encrypted, vector_2_stored_encrypted_read_as_sign_only, .init = setup, .fini = teardown)
{
    check_vector("2", "RecNum", 2);
}

/* Stored signed only (legend sss, Stuff and Junk plain strings), read as
 * encrypted: they are plaintext and reach the document. */
Test(encrypted, vector_3_stored_signed_only, .init = setup, .fini = teardown)
{
    check_vector("3", "RecNum,Stuff,Junk", 0);
}

Test(encrypted, vector_4_refused_by_the_sdk_still_ees, .init = setup, .fini = teardown)
{
    check_vector("4", "RecNum", 2);
}

Test(encrypted, vector_6_with_signature, .init = setup, .fini = teardown)
{
    check_vector("6", "RecNum", 2);
}

/* Flavor 0: no signature, no public key in the context. */
Test(encrypted, vector_7_without_signature, .init = setup, .fini = teardown)
{
    check_vector("7", "RecNum", 2);
}

Test(encrypted, vector_8_signed_read_as_unsigned, .init = setup, .fini = teardown)
{
    check_vector("8", "RecNum", 2);
}

Test(encrypted, vector_9_unsigned_read_as_signed, .init = setup, .fini = teardown)
{
    check_vector("9", "RecNum", 2);
}

/* "Complex encrypt", legend ess: Junk (a list) is ciphertext, Stuff (the
 * same list, signed only) stays a list. */
Test(encrypted, vector_10_complex, .init = setup, .fini = teardown)
{
    check_vector("10", "RecNum,Stuff", 1);
}

/* Version 2, legend eec: RecNum is in the encryption context ('c'). */
Test(encrypted, vector_11_version_2, .init = setup, .fini = teardown)
{
    check_vector("11", "RecNum", 2);
}

/* Version 2, legend cec: Junk (a string) in the context, Stuff encrypted.
 * Sorted by name bytes alone, Junk would take the 'e': the canonical order
 * (length first) is what gives the right answer here. */
Test(encrypted, vector_12_version_2_context_string, .init = setup, .fini = teardown)
{
    check_vector("12", "RecNum,Junk", 1);
}

/* Version 2, legend ecc: Junk encrypted, Stuff (a string) in the context. */
Test(encrypted, vector_13_version_2_other_way, .init = setup, .fini = teardown)
{
    check_vector("13", "RecNum,Stuff", 1);
}

Test(encrypted, as_is_writes_the_item_as_before, .init = setup, .fini = teardown)
{
    json_t *item = vector("1"), *doc;

    cfg.encrypted = TRANSFORM_ENCRYPTED_AS_IS;
    doc = doc_of(item);
    cr_expect_eq(json_object_size(doc), 5, "%s", d.source.ptr);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "Junk")),
                     json_string_value(json_object_get(json_object_get(item, "Junk"), "B")));
    cr_expect_not_null(json_object_get(doc, "aws_dbe_head"));
    cr_expect_eq(calls, 0, "nothing reported");
    json_decref(doc);
    json_decref(item);
}

/* Beacons stay; the version tag and the header and footer go.  The SDK adds
 * both after it encrypts, unsigned (specification ddb-support.md,
 * "GetEncryptedBeacons", "AddSignedBeacons"), so the header is still the
 * one it wrote. */
Test(encrypted, beacons_stay_for_exact_match_search, .init = setup, .fini = teardown)
{
    json_t *item = vector("1");

    json_object_set_new(item, "aws_dbe_b_Stuff", json_pack("{s:s}", "S", "6a1f"));
    json_object_set_new(item, "aws_dbe_b_Junk", json_pack("{s:s}", "S", "03"));
    json_object_set_new(item, "aws_dbe_v_1", json_pack("{s:s}", "S", " "));
    expect_doc(item, "RecNum,aws_dbe_b_Stuff,aws_dbe_b_Junk", "beacons");
    cr_expect_eq(seen.sdk_left_out, 3);
    cr_expect_eq(seen.left_out, 2);
    json_decref(item);
}

/* Unsigned (DO_NOTHING) attributes are outside the legend.  A string can
 * never be ciphertext, nor a B too short to hold the SDK's; a B that could
 * be is left out whenever some way of reading the legend makes it one. */
Test(encrypted, unsigned_attributes_stay_unless_they_may_be_ciphertext, .init = setup,
     .fini = teardown)
{
    json_t *item = vector("1"), *junk = json_object_get(item, "Junk");

    json_object_set_new(item, "Note", json_pack("{s:s}", "S", "hello"));
    json_object_set_new(item, "Blob", json_pack("{s:s}", "B", "AAECAw=="));
    json_object_set_new(item, "Tags", json_pack("{s:[s]}", "BS", "AAECAw=="));
    expect_doc(item, "RecNum,Note,Blob,Tags", "plain unsigned");
    cr_expect_eq(seen.left_out, 2);
    /* A copy of Junk's ciphertext under another name of Junk's length:
     * either of them, or Stuff, may be the second 'e'. */
    json_object_set(item, "Jink", junk);
    expect_doc(item, "RecNum,Note,Blob,Tags", "ciphertext-like unsigned");
    cr_expect_eq(seen.left_out, 3);
    json_decref(item);

    /* Nothing encrypted (sss): whatever is unsigned stays. */
    item = vector("3");
    junk = vector("1");
    json_object_set(item, "Jink", json_object_get(junk, "Junk"));
    expect_doc(item, "RecNum,Stuff,Junk,Jink", "no e in the legend");
    json_decref(junk);
    json_decref(item);
}

/* A header built by build_header, as the base64 text of a B value. */
static const char *header_b64(const char *legend)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static char b64[512];
    unsigned char h[256];
    size_t n = build_header(h, 1, 1, legend, 1, 1), o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)h[i] << 16 | (unsigned)(i + 1 < n ? h[i + 1] : 0) << 8 |
                     (unsigned)(i + 2 < n ? h[i + 2] : 0);

        b64[o++] = tbl[v >> 18 & 63];
        b64[o++] = tbl[v >> 12 & 63];
        b64[o++] = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        b64[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    b64[o] = '\0';
    return b64;
}

/* Past ENCITEM_MATCH_MAX cells the legend is not matched: every B that may
 * be ciphertext goes (while the legend has an 'e'), the rest stays. */
Test(encrypted, many_unsigned_attributes_leave_out_every_binary_that_may_be_ciphertext,
     .init = setup, .fini = teardown)
{
    json_t *item = vector("1");
    size_t extra = 1100;
    char name[32];

    cr_assert_gt((extra + 4) * (extra + 1), ENCITEM_MATCH_MAX, "past the cap");
    for (size_t i = 0; i < extra; i++) {
        snprintf(name, sizeof(name), "note%04zu", i);
        json_object_set_new(item, name, json_pack("{s:s}", "S", "plain"));
    }
    json_object_set(item, "zcopy", json_object_get(item, "Junk"));
    json_object_set_new(item, "zshort", json_pack("{s:s}", "B", "AQID"));
    cr_assert_eq(transform_item(&cfg, item, &d, &err), TR_DOC, "%s", err.ptr);
    cr_expect_not(seen.failed, "%s", seen.why);
    cr_expect_eq(seen.left_out, 3, "Junk, Stuff and zcopy");
    cr_expect_null(strstr(d.source.ptr, "\"Junk\""));
    cr_expect_null(strstr(d.source.ptr, "\"zcopy\""));
    cr_expect_not_null(strstr(d.source.ptr, "\"zshort\""));
    cr_expect_not_null(strstr(d.source.ptr, "\"note1099\""));
    json_decref(item);
}

/* The legend counts a name's length in UTF-16 code units, then its bytes:
 * é is one unit (two bytes), 😀 two units (four bytes).  Sorted by byte
 * length instead, the 'e' would fall on a string and nothing would fit. */
Test(encrypted, canonical_order_counts_utf16_units, .init = setup, .fini = teardown)
{
    static const char cipher[] = "AAEAAAAAAAAAAAAAAAAAAAAAAAAA"; /* type 0x0001, 21 bytes */
    json_t *item;

    cfg.hash_key = "pk";
    /* é (1 unit), ab, pk (2 units): "ess". */
    item = json_pack("{s:{s:s},s:{s:s},s:{s:s},s:{s:s}}", "aws_dbe_head", "B", header_b64("ess"),
                     "pk", "S", "k1", "ab", "S", "plain", "\xc3\xa9", "B", cipher);
    expect_doc(item, "pk,ab", "utf-16 order");
    cr_expect_not(seen.failed, "%s", seen.why);
    cr_expect_eq(seen.left_out, 1);
    json_decref(item);

    /* pk, 😀 (2 units, bytes after "pk"), abc (3 units): "ses". */
    item = json_pack("{s:{s:s},s:{s:s},s:{s:s},s:{s:s}}", "aws_dbe_head", "B", header_b64("ses"),
                     "pk", "S", "k1", "abc", "S", "plain", "\xf0\x9f\x98\x80", "B", cipher);
    expect_doc(item, "pk,abc", "non-BMP");
    cr_expect_not(seen.failed, "%s", seen.why);
    cr_expect_eq(seen.left_out, 1);
    json_decref(item);
}

/* A header that cannot be used: only attributes that are not binary stay
 * (keys always), the failure is reported with a reason. */
Test(encrypted, a_header_that_cannot_be_read_keeps_only_what_is_not_binary, .init = setup,
     .fini = teardown)
{
    json_t *item = vector("3"), *head = json_object_get(item, "aws_dbe_head");
    char cut[64];

    snprintf(cut, sizeof(cut), "%.40s", json_string_value(json_object_get(head, "B")));
    json_object_set_new(head, "B", json_string(cut));
    json_object_set_new(item, "Blob", json_pack("{s:s}", "B", "AAECAw=="));
    json_object_set_new(item, "Tags", json_pack("{s:[s]}", "BS", "AAECAw=="));
    json_object_set_new(item, "Map", json_pack("{s:{s:{s:s}}}", "M", "b", "B", "AAECAw=="));
    json_object_set_new(item, "aws_dbe_b_Stuff", json_pack("{s:s}", "S", "6a1f"));
    expect_doc(item, "RecNum,Stuff,Junk,Map,aws_dbe_b_Stuff", "truncated header");
    cr_expect(seen.failed);
    cr_expect_str_eq(seen.why, "aws_dbe_head: truncated");
    cr_expect_eq(seen.left_out, 2, "Blob and Tags");
    json_decref(item);

    item = vector("1");
    json_object_set_new(item, "aws_dbe_head", json_pack("{s:s}", "S", "not binary"));
    expect_doc(item, "RecNum", "header not B");
    cr_expect_str_eq(seen.why, "aws_dbe_head is not a base64 B value");
    json_decref(item);

    /* Not base64: as_is would refuse the item; here the header goes. */
    item = vector("1");
    json_object_set_new(item, "aws_dbe_head", json_pack("{s:s}", "B", "AQ-_"));
    {
        json_t *doc = doc_of(item);

        cr_expect_eq(json_object_size(doc), 1, "%s", d.source.ptr);
        cr_expect_not_null(json_object_get(doc, "RecNum"));
        cr_expect_str_eq(seen.why, "aws_dbe_head is not a base64 B value");
        json_decref(doc);
    }
    json_decref(item);
}

/* A legend that no reading fits the item: a signed attribute is missing,
 * or an 'e' can only fall on a string. */
Test(encrypted, a_legend_that_does_not_fit_the_item_fails, .init = setup, .fini = teardown)
{
    json_t *item = vector("1");

    json_object_del(item, "Junk");
    expect_doc(item, "RecNum", "a signed attribute removed");
    cr_expect(seen.failed);
    cr_expect_str_eq(seen.why, "the encrypt legend (3 signed attributes) does not fit the "
                               "item's 2 attributes");
    json_decref(item);

    item = vector("1");
    json_object_set_new(item, "Stuff", json_pack("{s:s}", "S", "StuffData"));
    expect_doc(item, "RecNum,Stuff", "an e on a string");
    cr_expect(seen.failed);
    json_decref(item);

    /* The key must be signed and never encrypted: a key with a
     * ciphertext-like B value cannot take an 'e'. */
    item = vector("1");
    cfg.hash_key = "Junk";
    expect_doc(item, "RecNum,Junk", "the key cannot be the e");
    cr_expect(seen.failed);
    json_decref(item);
}

/* Items that are not encrypted are not reported, whatever their shape. */
Test(encrypted, plain_items_are_not_reported, .init = setup, .fini = teardown)
{
    json_t *item = json_pack("{s:{s:s},s:{s:s}}", "RecNum", "N", "1", "aws_dbe_foot", "B", "AA==");

    expect_doc(item, "RecNum,aws_dbe_foot", "no header");
    cr_expect_eq(calls, 0);
    json_decref(item);
}

/* ---- the legacy client ---------------------------------------------------- */

/* Whether a legacy item's description says it may hold ciphertext, checked
 * apart from dbehead: the text "amzn-ddb-map-sym-mode" in its bytes. */
static bool legacy_encrypting(json_t *item)
{
    json_t *desc = json_object_get(item, "*amzn-ddb-map-desc*");
    unsigned char *p;
    size_t len;
    bool found = false;

    if (!desc)
        return false;
    p = b_bytes(desc, &len);
    for (size_t i = 0; i + 21 <= len && !found; i++)
        found = memcmp(p + i, "amzn-ddb-map-sym-mode", 21) == 0;
    free(p);
    return found;
}

/* Every legacy item: the two *amzn-ddb-map-* attributes go; when the
 * description says it may hold ciphertext, every B attribute but a key
 * goes too, the rest stays. */
static void check_legacy_file(const char *file, const char *hash, const char *range,
                              size_t *items_out)
{
    char path[256];
    json_t *all, *items, *item;
    const char *table;
    size_t i;

    snprintf(path, sizeof(path), LEGACY "%s", file);
    all = load(path);
    json_object_foreach(all, table, items) json_array_foreach(items, i, item)
    {
        bool enc = legacy_encrypting(item);
        char names[512] = "", label[256];
        const char *k;
        json_t *av;
        size_t pos = 0, dropped = 0;

        cfg.hash_key = strcmp(table, "HashKeyOnly") == 0 ? "hashKey" : hash;
        cfg.range_key = strcmp(table, "HashKeyOnly") == 0 ? NULL : range;
        json_object_foreach(item, k, av) {
            bool key = strcmp(k, cfg.hash_key) == 0 || (cfg.range_key && strcmp(k, cfg.range_key) == 0);

            if (strncmp(k, "*amzn-ddb-map-", 14) == 0)
                continue;
            if (enc && json_object_get(av, "B") && !key) {
                dropped++;
                continue;
            }
            pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? "," : "", k);
        }
        snprintf(label, sizeof(label), "%s %s[%zu]", file, table, i);
        calls = 0;
        expect_doc(item, names, label);
        if (!json_object_get(item, "*amzn-ddb-map-desc*") &&
            !json_object_get(item, "*amzn-ddb-map-sig*")) {
            cr_expect_eq(calls, 0, "%s: an item the client did not sign", label);
            continue;
        }
        cr_expect_eq(calls, 1, "%s: reported once (as_is reports nothing)", label);
        cr_expect_eq(seen.kind, ENCITEM_LEGACY, "%s", label);
        cr_expect_not(seen.failed, "%s: %s", label, seen.why);
        cr_expect_eq(seen.left_out, dropped, "%s", label);
        (*items_out)++;
    }
    json_decref(all);
}

Test(encrypted, legacy_items_keep_what_is_not_binary, .init = setup, .fini = teardown)
{
    size_t n = 0;

    check_legacy_file("java-static-aes-hmac-1.json", "hashKey", "rangeKey", &n);
    check_legacy_file("java-kms-nonbmp-hashkey-1.json", "hashKey", NULL, &n);
    check_legacy_file("java-metastore-aes-hmac-2.json", "N", "V", &n);
    check_legacy_file("python-wrapped-rsa-rsa-1.json", "hashKey", "rangeKey", &n);
    cr_expect_eq(n, 15 + 1 + 1 + 15, "items the client signed");
}

/* The same rule, spelled out on items of java/static-aes-hmac-1.json. */
Test(encrypted, legacy_items_spelled_out, .init = setup, .fini = teardown)
{
    json_t *all = load(LEGACY "java-static-aes-hmac-1.json");
    json_t *items = json_object_get(all, "TableName");

    cfg.hash_key = "hashKey";
    cfg.range_key = "rangeKey";
    /* hashKey 5: every other attribute encrypted (B). */
    expect_doc(json_array_get(items, 9), "hashKey,rangeKey,version", "5/7");
    cr_expect_eq(seen.left_out, 5);
    /* hashKey 6: stringValue and intValue were signed only. */
    expect_doc(json_array_get(items, 10), "hashKey,stringValue,rangeKey,intValue,version", "6/8");
    cr_expect_eq(seen.left_out, 3);
    /* hashKey 8: nothing encrypted but byteArrayValue, a 6-byte plain B:
     * nothing says it is not ciphertext, so it goes too. */
    expect_doc(json_array_get(items, 11),
               "hashKey,intSet,stringValue,rangeKey,stringSet,intValue,version", "8/10");
    cr_expect_eq(seen.left_out, 1);
    /* hashKey 7: written without the client's attributes: everything stays,
     * nothing is reported. */
    calls = 0;
    expect_doc(json_array_get(items, 12),
               "hashKey,intSet,stringValue,rangeKey,stringSet,byteArrayValue,intValue,version",
               "7/9");
    cr_expect_eq(calls, 0);
    json_decref(all);

    /* A description that is not one: only what is not binary stays. */
    {
        json_t *item = json_pack("{s:{s:s},s:{s:s},s:{s:s},s:{s:s}}", "hashKey", "N", "1",
                                 "rangeKey", "N", "2", "*amzn-ddb-map-desc*", "B", "AAAAAQ==",
                                 "plain", "B", "AAEC");

        expect_doc(item, "hashKey,rangeKey", "bad description");
        cr_expect(seen.failed);
        cr_expect_str_eq(seen.why, "*amzn-ddb-map-desc*: unknown format version");
        json_decref(item);
    }
}

/* ---- per table: counters, the log line, the metrics ----------------------- */

TestSuite(encstats, .timeout = 10);

Test(encstats, one_line_a_minute_then_the_lines_held_back)
{
    struct encstats_limit l = { 0 };
    uint64_t held = 99;

    cr_expect(encstats_limit_take(&l, 5000, &held));
    cr_expect_eq(held, 0);
    cr_expect_not(encstats_limit_take(&l, 5001, &held));
    cr_expect_not(encstats_limit_take(&l, 5000 + ENCSTATS_SAY_EVERY_MS - 1, &held));
    cr_expect(encstats_limit_take(&l, 5000 + ENCSTATS_SAY_EVERY_MS, &held));
    cr_expect_eq(held, 2, "the two held back are told");
    cr_expect_not(encstats_limit_take(&l, 5000 + ENCSTATS_SAY_EVERY_MS + 1, &held));
}

/* What the log wrote to stderr while fn ran. */
static char *stderr_of(void (*fn)(void))
{
    char path[] = "/tmp/ddb2es-encstats-XXXXXX";
    int fd = mkstemp(path), saved;
    char *text;

    cr_assert(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    fn();
    log_flush();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    text = proc_slurp(path);
    unlink(path);
    return text;
}

static struct transform_cfg other;
static json_t *good, *bad1, *bad2;

static void run_items(void)
{
    cr_assert_eq(transform_item(&cfg, good, &d, &err), TR_DOC);
    cr_assert_eq(transform_item(&cfg, bad1, &d, &err), TR_DOC);
    cr_assert_eq(transform_item(&cfg, bad2, &d, &err), TR_DOC);
    cr_assert_eq(transform_item(&other, good, &d, &err), TR_DOC);
    cr_assert_eq(transform_item(&other, bad2, &d, &err), TR_DOC);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The hook counts per table what transform reports, and says one line for
 * a table's first header that fails, not for the next one (another reason,
 * so the log's own folding of repeats plays no part). */
Test(encstats, each_table_counts_its_items_and_says_one_line, .init = setup, .fini = teardown)
{
    struct encstats_counts c;
    char *log;

    good = vector("1");
    bad1 = vector("3");
    bad2 = vector("3");
    json_object_set_new(bad1, "aws_dbe_head", json_pack("{s:s}", "B", "AQID"));
    json_object_set_new(bad1, "Blob", json_pack("{s:s}", "B", "AQID"));
    json_object_set_new(bad2, "aws_dbe_head", json_pack("{s:s}", "B", "AwAA"));
    json_object_set_new(bad2, "Blob", json_pack("{s:s}", "B", "AQID"));
    cr_assert_eq(encstats_attach(&cfg, "posts"), 0);
    other = cfg;
    cr_assert_eq(encstats_attach(&other, "users"), 0);
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    log = stderr_of(run_items);
    cr_expect_eq(count(log, "[posts] item: written by client-side encryption, but its header "
                            "cannot be used (aws_dbe_head: unknown format flavor)"),
                 1, "%s", log);
    cr_expect_eq(count(log, "[posts]"), 1, "one line a minute for posts: %s", log);
    cr_expect_eq(count(log, "[users]"), 1, "the limit is per table: %s", log);
    cr_expect_eq(count(log, "AQID"), 0, "no value of the item is logged");
    free(log);
    c = encstats_get("posts");
    cr_expect_eq(c.items, 3);
    cr_expect_eq(c.attributes_left_out, 2 + 1 + 1, "Junk and Stuff, then Blob twice");
    cr_expect_eq(c.headers_failed, 2);
    c = encstats_get("users");
    cr_expect_eq(c.items, 2);
    cr_expect_eq(c.headers_failed, 1);
    c = encstats_get("orders");
    cr_expect_eq(c.items, 0, "never attached");
    encstats_free_all();
    cr_expect_eq(encstats_get("posts").items, 0);
    json_decref(good);
    json_decref(bad1);
    json_decref(bad2);
}

static double sample(const struct prom *p, const char *name, const char *labels)
{
    const struct prom_sample *x = prom_find(p, name, labels);

    cr_assert_not_null(x, "no sample %s{%s}", name, labels);
    return x->value;
}

Test(encstats, metrics_show_the_counters_per_table)
{
    struct metrics_table t[2] = { { .name = "posts" }, { .name = "users" } };
    struct metrics_view v = { .now = 5, .tables = t, .ntables = 2 };
    struct buf b;
    struct prom p;
    char perr[256];

    t[0].enc = (struct encstats_counts){ .items = 7, .attributes_left_out = 12,
                                         .headers_failed = 1 };
    buf_init(&b, BUF_NOMAX);
    cr_assert_eq(metrics_render(&v, &b), 0);
    cr_assert_eq(prom_parse(b.ptr, &p, perr, sizeof(perr)), 0, "%s", perr);
    cr_expect_eq(sample(&p, "ddb2es_encrypted_items_total", "table=\"posts\""), 7);
    cr_expect_eq(sample(&p, "ddb2es_encrypted_attributes_left_out_total", "table=\"posts\""), 12);
    cr_expect_eq(sample(&p, "ddb2es_encrypted_headers_failed_total", "table=\"posts\""), 1);
    cr_expect_eq(sample(&p, "ddb2es_encrypted_items_total", "table=\"users\""), 0);
    cr_expect_str_eq(prom_family(&p, "ddb2es_encrypted_items_total")->type, "counter");
    prom_free(&p);
    buf_close(&b);
}

/* ---- end to end: ddb2es run, DynamoDB Local, the search double ---------- */

TestSuite(encrypted_e2e, .timeout = 240);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

static void put_json(const char *table, json_t *item)
{
    char *text = json_dumps(item, JSON_COMPACT);

    ddbc_put(table, text);
    free(text);
}

/* The version the dump gives ("#N:<digits>" once numbers are quoted). */
static long long dump_version(json_t *doc)
{
    const char *v = json_string_value(json_object_get(doc, "version"));

    return v && strncmp(v, "#N:", 3) == 0 ? strtoll(v + 3, NULL, 10) : -1;
}

/* Waits until document id of index is newer than *version and returns its
 * source (a new reference), or fails the test. */
static json_t *wait_doc(struct searchd *sd, const char *index, const char *id,
                        long long *version, struct proc *p)
{
    for (int i = 0; i < 300; i++) {
        json_t *dump = e2e_dump(sd);
        json_t *doc = json_object_get(json_object_get(dump, index), id);
        long long v = dump_version(doc);

        if (doc && v > *version && !json_is_true(json_object_get(doc, "deleted"))) {
            json_t *src = json_incref(json_object_get(doc, "source"));

            *version = v;
            json_decref(dump);
            return src;
        }
        json_decref(dump);
        usleep(200000);
    }
    {
        char *log = proc_slurp(p->err_path);

        cr_log_info("ddb2es log:\n%s", log);
        free(log);
    }
    cr_assert_fail("no new document %s in %s", id, index);
    return NULL;
}

/* The document's names are exactly those listed; its S values are the
 * item's. */
static void expect_names(json_t *src, json_t *item, const char *names, const char *label)
{
    char *list = strdup(names), *save = NULL;
    size_t want = 0;

    for (char *n = strtok_r(list, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        json_t *s = json_object_get(json_object_get(item, n), "S");

        want++;
        cr_expect_not_null(json_object_get(src, n), "%s: %s missing", label, n);
        if (s)
            cr_expect(json_equal(s, json_object_get(src, n)), "%s: %s", label, n);
    }
    if (json_object_size(src) != want) {
        char *text = json_dumps(src, JSON_COMPACT | JSON_SORT_KEYS);

        cr_expect_fail("%s: the document has other names: %s", label, text);
        free(text);
    }
    free(list);
}

struct e2e_vector {
    const char *id, *names;
    unsigned left_out;
};

/* What each vector gives, as the unit tests above check it.  Not test 10:
 * its plaintext Stuff is a list of a map, a number set and a string set,
 * which no engine maps (an array's elements share one type), so its
 * document is refused whatever ddb2es leaves out. */
static const struct e2e_vector e2e_vectors[] = {
    { "1", "RecNum,aws_dbe_b_Stuff", 2 }, /* with a beacon and the version tag added */
    { "2", "RecNum", 2 },     { "3", "RecNum,Stuff,Junk", 0 }, { "4", "RecNum", 2 },
    { "6", "RecNum", 2 },     { "7", "RecNum", 2 },            { "8", "RecNum", 2 },
    { "9", "RecNum", 2 },     { "11", "RecNum", 2 },           { "12", "RecNum,Junk", 1 },
    { "13", "RecNum,Stuff", 1 },
};

/* The SDK's items, one after the other under one key (they all have
 * RecNum 1), into a table left at plaintext; the first of them into a table
 * set to as_is; the legacy client's items; items whose header is broken. */
Test(encrypted_e2e, run_indexes_plaintext_and_beacons_and_as_is_indexes_everything)
{
    char sdk[128], asis[128], legacy[128], broken[128], dir[256], listen[64], labels[200];
    struct e2e_table t[4];
    struct searchd *sd;
    struct proc p;
    const char *conf;
    long long version = -1;
    unsigned left_out = 0, legacy_left_out = 0, legacy_items = 0;
    json_t *all, *items, *item;
    size_t i;
    int port;
    char *log;

    need_ddb();
    ddbc_table_name(sdk, sizeof(sdk), "dbesdk");
    ddbc_table_name(asis, sizeof(asis), "dbeasis");
    ddbc_table_name(legacy, sizeof(legacy), "dbelegacy");
    ddbc_table_name(broken, sizeof(broken), "dbebroken");
    lower(sdk), lower(asis), lower(legacy), lower(broken);
    t[0] = (struct e2e_table){ .name = sdk, .index = sdk, .hash = "RecNum" };
    t[1] = (struct e2e_table){ .name = asis, .index = asis, .hash = "RecNum",
                               .extra = "encrypted_items = as_is" };
    t[2] = (struct e2e_table){ .name = legacy, .index = legacy, .hash = "hashKey",
                               .range = "rangeKey" };
    t[3] = (struct e2e_table){ .name = broken, .index = broken, .hash = "RecNum" };
    ddbc_create_table(sdk, "RecNum", "N", NULL, NULL, "NEW_AND_OLD_IMAGES");
    ddbc_create_table(asis, "RecNum", "N", NULL, NULL, "NEW_IMAGE");
    ddbc_create_table(legacy, "hashKey", "N", "rangeKey", "N", "KEYS_ONLY");
    ddbc_create_table(broken, "RecNum", "N", NULL, NULL, "OLD_IMAGE");
    sd = searchd_start(NULL);
    for (i = 0; i < 4; i++)
        e2e_create_index(sd, t[i].index);
    port = httpget_free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    e2e_metrics_listen = listen;
    conf = e2e_config(searchd_url(sd), t, 4, NULL, dir, sizeof(dir));
    e2e_metrics_listen = NULL;
    e2e_start(&p, conf);

    /* as_is: today's document, every attribute as stored. */
    item = vector("1");
    json_object_set_new(item, "aws_dbe_b_Stuff", json_pack("{s:s}", "S", "6a1f"));
    json_object_set_new(item, "aws_dbe_v_1", json_pack("{s:s}", "S", " "));
    put_json(asis, item);
    {
        char why[1024];

        cr_expect(e2e_wait_equal(sd, &t[1], 60000, why, sizeof(why)), "as_is: %s", why);
    }
    /* plaintext: each vector in turn. */
    for (i = 0; i < sizeof(e2e_vectors) / sizeof(e2e_vectors[0]); i++) {
        json_t *src;
        char label[64];

        if (i > 0)
            item = vector(e2e_vectors[i].id);
        put_json(sdk, item);
        src = wait_doc(sd, sdk, "1", &version, &p);
        snprintf(label, sizeof(label), "test %s", e2e_vectors[i].id);
        expect_names(src, item, e2e_vectors[i].names, label);
        left_out += e2e_vectors[i].left_out;
        json_decref(src);
        json_decref(item);
    }
    /* The legacy client's items (a KEYS_ONLY stream: read back with
     * BatchGetItem). */
    all = load(LEGACY "java-static-aes-hmac-1.json");
    items = json_object_get(all, "TableName");
    json_array_foreach(items, i, item) put_json(legacy, item);
    json_array_foreach(items, i, item)
    {
        bool enc = legacy_encrypting(item), signed_ = json_object_get(item, "*amzn-ddb-map-sig*");
        char names[512] = "", id[64];
        const char *k;
        json_t *av, *src;
        long long v = -1;
        size_t pos = 0;

        json_object_foreach(item, k, av) {
            if (strncmp(k, "*amzn-ddb-map-", 14) == 0)
                continue;
            if (enc && json_object_get(av, "B") && strcmp(k, "hashKey") && strcmp(k, "rangeKey")) {
                legacy_left_out++;
                continue;
            }
            pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", pos ? "," : "", k);
        }
        legacy_items += signed_;
        e2e_doc_id(item, "hashKey", "rangeKey", '|', id, sizeof(id));
        src = wait_doc(sd, legacy, id, &v, &p);
        expect_names(src, item, names, id);
        json_decref(src);
    }
    json_decref(all);
    /* Broken headers: three items, three reasons, one log line (an
     * OLD_IMAGE stream: read back with BatchGetItem). */
    {
        static const char *const heads[] = { "AQID", "AwAA", "" };

        for (i = 0; i < 3; i++) {
            json_t *src;
            char id[8];
            long long v = -1;

            item = vector("3");
            snprintf(id, sizeof(id), "%zu", i + 1);
            json_object_set_new(item, "RecNum", json_pack("{s:s}", "N", id));
            json_object_set_new(item, "aws_dbe_head", json_pack("{s:s}", "B", heads[i]));
            json_object_set_new(item, "Blob", json_pack("{s:s}", "B", "AQID"));
            put_json(broken, item);
            src = wait_doc(sd, broken, id, &v, &p);
            expect_names(src, item, "RecNum,Stuff,Junk", "broken header");
            json_decref(src);
            json_decref(item);
        }
    }
    snprintf(labels, sizeof(labels), "table=\"%s\"", sdk);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_items_total", labels), 11);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_attributes_left_out_total", labels),
                 left_out);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_headers_failed_total", labels), 0);
    snprintf(labels, sizeof(labels), "table=\"%s\"", asis);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_items_total", labels), 0,
                 "as_is does not look");
    snprintf(labels, sizeof(labels), "table=\"%s\"", legacy);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_items_total", labels), legacy_items);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_attributes_left_out_total", labels),
                 legacy_left_out);
    snprintf(labels, sizeof(labels), "table=\"%s\"", broken);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_headers_failed_total", labels), 3);
    cr_expect_eq(httpget_metric(port, "ddb2es_encrypted_attributes_left_out_total", labels), 3);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    log = proc_slurp(p.err_path);
    cr_expect_eq(count(log, "header cannot be used"), 1, "one line a minute: %s", log);
    cr_expect_eq(count(log, "AQID"), 0, "no value logged");
    free(log);
    {
        char path[512];

        snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
        cr_expect_eq(access(path, F_OK), -1, "nothing was dead-lettered");
    }
    searchd_stop(sd);
}
