/* jsonx: JSON text holding every string DynamoDB accepts (NUL in keys and
 * values, lone surrogates), read into jansson trees and written back; and the
 * places that read what DynamoDB sends (suite jsonx_e2e: DynamoDB Local and
 * `ddb2es replay`). */
#include <criterion/criterion.h>
#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aws/ddb.h"
#include "base/jsonx.h"
#include "indexer/bulk.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/rounds.h"

TestSuite(jsonx, .timeout = 30);

#define S(lit) lit, sizeof(lit) - 1

/* Our own parser's tree (never jansson's), after checking that jansson,
 * when it accepts the text, builds an equal tree that dumps the same. */
static json_t *load_own(const char *text, size_t len, size_t flags)
{
    json_error_t e;
    json_t *own = jsonx_loadb(text, len, flags | JSONX_OWN_PARSER, &e);
    json_t *jan = json_loadb(text, len, JSON_ALLOW_NUL | (flags & ~(size_t)JSONX_OWN_PARSER), NULL);

    if (jan) {
        char *a, *b;

        cr_assert_not_null(own, "jansson reads %.*s, ours refuses: %s", (int)len, text, e.text);
        cr_assert(jsonx_equal(own, jan) && json_equal(own, jan), "trees differ for %.*s", (int)len,
                  text);
        a = jsonx_dumps(own, NULL);
        b = jsonx_dumps(jan, NULL);
        cr_assert_str_eq(a, b);
        free(a);
        free(b);
        json_decref(jan);
    }
    return own;
}

/* The refusal's text, from our parser (jansson must refuse too unless the
 * text uses one of the two extensions, which these cases do not). */
static void refused(const char *text, size_t len, size_t flags, const char *why)
{
    json_error_t e;
    json_t *v = jsonx_loadb(text, len, flags, &e);

    cr_assert_null(v, "accepted: %.*s", (int)len, text);
    cr_assert_not_null(strstr(e.text, why), "%.*s: error \"%s\" does not say \"%s\"", (int)len,
                       text, e.text, why);
    cr_assert_gt(e.line, 0, "%s", e.text);
    cr_assert(len == 0 || e.position > 0, "%s", e.text);
    cr_assert_null(json_loadb(text, len, JSON_ALLOW_NUL | flags, NULL),
                   "jansson accepts what jsonx refuses: %.*s", (int)len, text);
}

static void assert_bytes(const char *got, size_t got_len, const char *want, size_t want_len)
{
    cr_assert_eq(got_len, want_len, "length %zu, want %zu", got_len, want_len);
    cr_assert(memcmp(got, want, want_len) == 0, "bytes differ");
}

static void assert_string(json_t *s, const char *want, size_t want_len)
{
    cr_assert(json_is_string(s));
    assert_bytes(json_string_value(s), json_string_length(s), want, want_len);
}

/* The one string of ["..."], via jsonx_loadb (fast path or not). */
static json_t *one_string(const char *text, size_t len)
{
    json_error_t e;
    json_t *v = jsonx_loadb(text, len, 0, &e);

    cr_assert_not_null(v, "%.*s: %s", (int)len, text, e.text);
    cr_assert(json_is_array(v) && json_array_size(v) == 1);
    return v;
}

/* load → dump → load gives the same tree and the same text again. */
static void round_trip(const char *text, size_t len)
{
    json_error_t e;
    json_t *a = jsonx_loadb(text, len, JSONX_DECODE_ANY, &e), *b;
    char *t1, *t2;
    size_t l1, l2;

    cr_assert_not_null(a, "%.*s: %s", (int)len, text, e.text);
    t1 = jsonx_dumps(a, &l1);
    cr_assert_not_null(t1);
    cr_assert_eq(strlen(t1), l1, "a dump holds no NUL byte");
    b = jsonx_loadb(t1, l1, JSONX_DECODE_ANY, &e);
    cr_assert_not_null(b, "dump %s does not load: %s", t1, e.text);
    cr_assert(jsonx_equal(a, b), "%s reads back as another tree", t1);
    t2 = jsonx_dumps(b, &l2);
    assert_bytes(t2, l2, t1, l1);
    free(t1);
    free(t2);
    json_decref(a);
    json_decref(b);
}

Test(jsonx, nul_in_values_and_keys_at_any_depth)
{
    static const char text[] =
        "{\"\\u0000\":\"\\u0000\",\"a\\u0000b\":{\"x\":[{\"\\u0000k\\u0000\":\"v\\u0000w\"}]},"
        "\"a\\u0000c\":[[[\"\\u0000\\u0000\"]]],\"a\":1}";
    json_error_t e;
    json_t *v = jsonx_loadb(S(text), 0, &e), *inner;

    cr_assert_null(json_loadb(S(text), JSON_ALLOW_NUL, NULL), "jansson reads NUL keys now");
    cr_assert_not_null(v, "%s", e.text);
    cr_assert_eq(json_object_size(v), 4, "a\\0b, a\\0c and a are three keys");
    assert_string(json_object_getn(v, "\0", 1), "\0", 1);
    inner = json_array_get(json_object_get(json_object_getn(v, "a\0b", 3), "x"), 0);
    assert_string(json_object_getn(inner, "\0k\0", 3), "v\0w", 3);
    assert_string(json_array_get(json_array_get(json_array_get(json_object_getn(v, "a\0c", 3), 0),
                                                0), 0), "\0\0", 2);
    cr_assert_eq(json_integer_value(json_object_getn(v, "a", 1)), 1);
    json_decref(v);
    round_trip(S(text));
}

/* DynamoDB numbers have up to 38 digits: with JSONX_DECODE_INT_AS_REAL an
 * integer past json_int_t reads (as a real) in both parsers, jansson's and
 * ours (a lone surrogate sends the text to ours); without it, it is
 * refused. */
Test(jsonx, int_as_real_reads_integers_of_any_length)
{
    const char *texts[] = { "{\"n\":12345678901234567890123456789012345678}",
                            "{\"s\":\"\\ud800\",\"n\":-12345678901234567890123456789012345678}" };

    for (size_t i = 0; i < 2; i++) {
        for (size_t own = 0; own < 2; own++) {
            size_t f = own ? JSONX_OWN_PARSER : 0;
            json_t *v = jsonx_loadb(texts[i], strlen(texts[i]), f | JSONX_DECODE_INT_AS_REAL, NULL);
            json_t *n = json_object_get(v, "n");

            cr_assert(json_is_real(n), "text %zu, own %zu", i, own);
            cr_assert_float_eq(fabs(json_real_value(n)), 1.2345678901234568e37, 1e22);
            json_decref(v);
            cr_assert_null(jsonx_loadb(texts[i], strlen(texts[i]), f, NULL));
        }
    }
}

Test(jsonx, nul_keys_are_written_whole)
{
    json_t *o = json_object();
    char *t;
    size_t n;

    json_object_setn_new_nocheck(o, "p\0k", 3, json_stringn_nocheck("a\0b", 3));
    t = jsonx_dumps(o, &n);
    cr_assert_str_eq(t, "{\"p\\u0000k\":\"a\\u0000b\"}");
    cr_assert_eq(n, strlen(t));
    free(t);
    json_decref(o);
}

Test(jsonx, every_escape)
{
    static const char text[] =
        "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u00E9\\u20ac\\u0000\\u007f\\uFFFF\"]";
    static const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xc3\xa9\xe2\x82\xac\0\x7f\xef\xbf\xbf";
    json_t *v = load_own(S(text), 0);
    char *t;

    cr_assert_not_null(v);
    assert_string(json_array_get(v, 0), S(want));
    t = jsonx_dumps(v, NULL);
    /* '/' needs no escape; DEL and U+FFFF are copied. */
    cr_assert_str_eq(t, "[\"\\\"\\\\/\\b\\f\\n\\r\\tA\xc3\xa9\xc3\xa9\xe2\x82\xac\\u0000\x7f"
                        "\xef\xbf\xbf\"]");
    free(t);
    json_decref(v);
    refused(S("[\"\\x\"]"), 0, "invalid escape");
    refused(S("[\"\\u12\"]"), 0, "invalid escape");
    refused(S("[\"\\u12G4\"]"), 0, "invalid escape");
    refused(S("[\"\\U0041\"]"), 0, "invalid escape");
    refused(S("[\"\\"), 0, "premature end of input");
}

Test(jsonx, each_control_character)
{
    for (int c = 0; c < 0x20; c++) {
        char raw[8], esc[16], want[16];
        json_t *v;
        char *t;

        snprintf(raw, sizeof(raw), "[\"%c\"]", c == 0 ? 'x' : c);
        raw[2] = (char)c; /* a raw NUL too */
        refused(raw, 5, 0, c == '\n' ? "unexpected newline" : "control character");
        snprintf(esc, sizeof(esc), "[\"\\u%04x\"]", c);
        v = load_own(esc, strlen(esc), 0);
        cr_assert_not_null(v);
        assert_string(json_array_get(v, 0), &(char){ (char)c }, 1);
        t = jsonx_dumps(v, NULL);
        switch (c) {
        case '\b': snprintf(want, sizeof(want), "[\"\\b\"]"); break;
        case '\f': snprintf(want, sizeof(want), "[\"\\f\"]"); break;
        case '\n': snprintf(want, sizeof(want), "[\"\\n\"]"); break;
        case '\r': snprintf(want, sizeof(want), "[\"\\r\"]"); break;
        case '\t': snprintf(want, sizeof(want), "[\"\\t\"]"); break;
        default: snprintf(want, sizeof(want), "[\"\\u%04x\"]", c); break;
        }
        cr_assert_str_eq(t, want);
        free(t);
        json_decref(v);
    }
}

Test(jsonx, line_separators_bom_and_the_last_code_points)
{
    /* Raw, then escaped: the same bytes, written back raw (only control
     * characters are escaped on the way out). */
    static const struct {
        const char *raw, *esc, *bytes;
    } cases[] = {
        { "[\"\xe2\x80\xa8\"]", "[\"\\u2028\"]", "\xe2\x80\xa8" },
        { "[\"\xe2\x80\xa9\"]", "[\"\\u2029\"]", "\xe2\x80\xa9" },
        { "[\"\xef\xbb\xbf\"]", "[\"\\ufeff\"]", "\xef\xbb\xbf" },
        { "[\"\xef\xbf\xbf\"]", "[\"\\uffff\"]", "\xef\xbf\xbf" },
        { "[\"\xf4\x8f\xbf\xbf\"]", "[\"\\udbff\\udfff\"]", "\xf4\x8f\xbf\xbf" },
        { "[\"\xf0\x90\x80\x80\"]", "[\"\\uD800\\uDC00\"]", "\xf0\x90\x80\x80" },
        { "[\"\xf0\x9f\x98\x80\"]", "[\"\\ud83d\\ude00\"]", "\xf0\x9f\x98\x80" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        json_t *a = load_own(cases[i].raw, strlen(cases[i].raw), 0);
        json_t *b = load_own(cases[i].esc, strlen(cases[i].esc), 0);
        char *t;

        cr_assert(a && b, "case %zu", i);
        assert_string(json_array_get(a, 0), cases[i].bytes, strlen(cases[i].bytes));
        cr_assert(jsonx_equal(a, b), "case %zu: raw and escaped differ", i);
        t = jsonx_dumps(b, NULL);
        cr_assert_str_eq(t, cases[i].raw);
        free(t);
        json_decref(a);
        json_decref(b);
    }
    /* A byte order mark is not white space: refused before a document, as
     * jansson does (RFC 8259 section 8.1 lets a parser ignore it). */
    refused(S("\xef\xbb\xbf[]"), 0, "'[' or '{' expected");
    refused(S("\xef\xbb\xbf[]"), JSONX_DECODE_ANY, "invalid token");
}

Test(jsonx, lone_surrogates_are_kept_as_wtf8)
{
    static const struct {
        const char *text, *bytes;
        size_t nbytes;
        const char *dump;
    } cases[] = {
        { "[\"\\ud800\"]", "\xed\xa0\x80", 3, "[\"\\ud800\"]" },
        { "[\"\\uDBFF\"]", "\xed\xaf\xbf", 3, "[\"\\udbff\"]" },
        { "[\"\\udc00\"]", "\xed\xb0\x80", 3, "[\"\\udc00\"]" },
        { "[\"\\uDFFF\"]", "\xed\xbf\xbf", 3, "[\"\\udfff\"]" },
        /* a reversed pair is two lone surrogates */
        { "[\"\\udc00\\ud800\"]", "\xed\xb0\x80\xed\xa0\x80", 6, "[\"\\udc00\\ud800\"]" },
        /* at the end of a string, after text */
        { "[\"ab\\ud800\"]", "ab\xed\xa0\x80", 5, "[\"ab\\ud800\"]" },
        /* a high one followed by something else than a low one */
        { "[\"\\ud800\\u0041x\"]", "\xed\xa0\x80" "Ax", 5, "[\"\\ud800Ax\"]" },
        { "[\"\\ud800\\\\udc00\"]", "\xed\xa0\x80\\udc00", 9, "[\"\\ud800\\\\udc00\"]" },
        /* two high ones then a low one: a lone one, then a pair */
        { "[\"\\ud800\\ud800\\udc00\"]", "\xed\xa0\x80\xf0\x90\x80\x80", 7,
          "[\"\\ud800\xf0\x90\x80\x80\"]" },
        /* next to NUL and a control character */
        { "[\"\\u0000\\udfff\\u0001\"]", "\0\xed\xbf\xbf\x01", 5, "[\"\\u0000\\udfff\\u0001\"]" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        json_t *v = one_string(cases[i].text, strlen(cases[i].text));
        char *t;

        cr_assert_null(json_loadb(cases[i].text, strlen(cases[i].text), JSON_ALLOW_NUL, NULL),
                       "case %zu: jansson reads it", i);
        assert_string(json_array_get(v, 0), cases[i].bytes, cases[i].nbytes);
        cr_assert_not(jsonx_utf8_valid(cases[i].bytes, cases[i].nbytes), "case %zu", i);
        t = jsonx_dumps(v, NULL);
        cr_assert_str_eq(t, cases[i].dump, "case %zu", i);
        free(t);
        json_decref(v);
        round_trip(cases[i].text, strlen(cases[i].text));
    }
}

Test(jsonx, lone_surrogates_in_keys)
{
    static const char text[] = "{\"k\\ud800\":{\"\\udc00\\u0000\":true}}";
    json_t *v = jsonx_loadb(S(text), 0, NULL), *in;
    char *t;

    cr_assert_not_null(v);
    in = json_object_getn(v, "k\xed\xa0\x80", 4);
    cr_assert(json_is_true(json_object_getn(in, "\xed\xb0\x80\0", 4)));
    t = jsonx_dumps(v, NULL);
    cr_assert_str_eq(t, "{\"k\\ud800\":{\"\\udc00\\u0000\":true}}");
    free(t);
    json_decref(v);
}

Test(jsonx, invalid_utf8_is_refused_by_class)
{
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } cases[] = {
        { S("[\"\x80\"]"), "a continuation byte where a character starts" },
        { S("[\"a\xbf\"]"), "a continuation byte where a character starts" },
        { S("[\"\xff\"]"), "a byte that never appears in UTF-8" },
        { S("[\"\xf8\x88\x80\x80\x80\"]"), "a byte that never appears in UTF-8" },
        { S("[\"\xc3\"]"), "an incomplete sequence" },
        { S("[\"\xe2\x82\"]"), "an incomplete sequence" },
        { S("[\"\xf0\x9f\x98\"]"), "an incomplete sequence" },
        { S("[\"\xc3"), "an incomplete sequence" },
        { S("[\"\xc0\x80\"]"), "an overlong form" },
        { S("[\"\xc1\xbf\"]"), "an overlong form" },
        { S("[\"\xe0\x80\x80\"]"), "an overlong form" },
        { S("[\"\xe0\x9f\xbf\"]"), "an overlong form" },
        { S("[\"\xf0\x80\x80\x80\"]"), "an overlong form" },
        { S("[\"\xf0\x8f\xbf\xbf\"]"), "an overlong form" },
        { S("[\"\xed\xa0\x80\"]"), "a surrogate (U+D800..U+DFFF) encoded as UTF-8" },
        { S("[\"\xed\xbf\xbf\"]"), "a surrogate (U+D800..U+DFFF) encoded as UTF-8" },
        { S("[\"\xf4\x90\x80\x80\"]"), "a code point above U+10FFFF" },
        { S("[\"\xf5\x80\x80\x80\"]"), "a code point above U+10FFFF" },
        { S("{\"\xed\xa0\x80\":1}"), "a surrogate (U+D800..U+DFFF) encoded as UTF-8" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const char *t = cases[i].text;
        size_t n = cases[i].len;
        const char *body = (const char *)memchr(t, '"', n) + 1;
        const char *end = memchr(body, '"', (size_t)(t + n - body));

        refused(t, n, 0, "invalid UTF-8");
        refused(t, n, 0, cases[i].why);
        cr_assert_not(jsonx_utf8_valid(body, (size_t)((end ? end : t + n) - body)), "case %zu", i);
    }
    /* Outside strings a non-ASCII byte is no token at all. */
    refused(S("[1,\xc3\xa9]"), 0, "invalid token");
}

Test(jsonx, utf8_valid_is_strict)
{
    cr_assert(jsonx_utf8_valid(S("")));
    cr_assert(jsonx_utf8_valid(S("a\0b")));
    cr_assert(jsonx_utf8_valid(S("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80")));
    cr_assert(jsonx_utf8_valid(S("\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")));
    cr_assert_not(jsonx_utf8_valid(S("\xed\xa0\x80")));
    cr_assert_not(jsonx_utf8_valid(S("\xed\xa0")));
    cr_assert_not(jsonx_utf8_valid(S("ok\xc0\xaf")));
    cr_assert_not(jsonx_utf8_valid(S("\xf4\x90\x80\x80")));
}

Test(jsonx, errors_say_where)
{
    json_error_t e;

    cr_assert_null(jsonx_loadb(S("{\"a\\u0000\": 1,\n  \"b\": \x01}"), 0, &e));
    cr_assert_eq(e.line, 2, "line %d", e.line);
    cr_assert_eq(e.column, 8, "column %d", e.column);
    cr_assert_eq(e.position, 23, "position %d", e.position);
    cr_assert_str_eq(e.source, "<buffer>");
    cr_assert_str_eq(e.text, "invalid token");
    cr_assert_eq(json_error_code(&e), json_error_invalid_syntax);

    /* A column counts characters, not bytes. */
    cr_assert_null(jsonx_loadb(S("[\"\\u0000\xc3\xa9\xc3\xa9\", x]"), 0, &e));
    cr_assert_eq(e.line, 1);
    cr_assert_eq(e.column, 14, "column %d", e.column);
    cr_assert_str_eq(e.text, "invalid token near 'x'");

    cr_assert_null(jsonx_loadb(S("{\"\\u0000\":"), 0, &e));
    cr_assert_str_eq(e.text, "premature end of input near end of file");
    cr_assert_eq(json_error_code(&e), json_error_premature_end_of_input);
}

Test(jsonx, syntax_is_rfc8259)
{
    refused(S(""), 0, "'[' or '{' expected");
    refused(S("  "), JSONX_DECODE_ANY, "premature end of input");
    refused(S("\"a\""), 0, "'[' or '{' expected");
    refused(S("[] x"), 0, "end of file expected near 'x'");
    refused(S("{}{}"), 0, "end of file expected");
    refused(S("[1,]"), 0, "invalid token near ']'");
    refused(S("[,1]"), 0, "invalid token");
    refused(S("[1 2]"), 0, "',' or ']' expected");
    refused(S("{\"a\":1,}"), 0, "string or '}' expected");
    refused(S("{\"a\" 1}"), 0, "':' expected");
    refused(S("{\"a\":1 \"b\":2}"), 0, "',' or '}' expected");
    refused(S("{a:1}"), 0, "string or '}' expected");
    refused(S("['a']"), 0, "invalid token");
    refused(S("[tru]"), 0, "invalid token");
    refused(S("[nul]"), 0, "invalid token");
    refused(S("[truex]"), 0, "',' or ']' expected");
    refused(S("[True]"), 0, "invalid token");
    refused(S("[NaN]"), 0, "invalid token");
    refused(S("[Infinity]"), 0, "invalid token");
    refused(S("[\"a\"\"b\"]"), 0, "',' or ']' expected");
    refused(S("[\"a"), 0, "premature end of input");
    refused(S("[1"), 0, "',' or ']' expected near end of file");
    refused(S("[1]\0"), 0, "end of file expected");
    {
        /* jansson skips a raw NUL after a number or a literal; jsonx does not. */
        static const char *const nul[] = { "[79\0,1]", "[true\0]", "{\"a\":null\0}" };
        static const size_t nlen[] = { 7, 7, 11 };
        json_error_t e;

        for (int i = 0; i < 3; i++) {
            json_t *j = json_loadb(nul[i], nlen[i], JSON_ALLOW_NUL, NULL);

            cr_assert_not_null(j, "jansson 2.14 reads case %d", i);
            json_decref(j);
            cr_assert_null(jsonx_loadb(nul[i], nlen[i], 0, &e), "case %d", i);
            cr_assert_null(jsonx_loadb(nul[i], nlen[i], JSONX_OWN_PARSER, &e), "case %d", i);
            cr_assert_eq(e.position, (int)(strchr(nul[i], '\0') - nul[i]) + 1, "case %d", i);
        }
    }
    refused(S("[\v1]"), 0, "invalid token");
    refused(S("[\f1]"), 0, "invalid token");

    for (int i = 0; i < 4; i++) {
        static const char *const any[] = { "\"s\\u0000\"", " 12 ", "null", "-0.5e3" };
        json_t *v = load_own(any[i], strlen(any[i]), JSONX_DECODE_ANY);

        cr_assert_not_null(v, "%s", any[i]);
        json_decref(v);
    }
    {
        json_t *v = load_own(S(" \t\r\n[ \t\r\n{ \"a\" : [ ] , \"b\" :{}}\n]\r\n"), 0);

        cr_assert_not_null(v);
        json_decref(v);
    }
}

static char *nested(int depth, const char *inner)
{
    size_t n = strlen(inner);
    char *t = malloc(2 * (size_t)depth + n + 1);

    memset(t, '[', (size_t)depth);
    memcpy(t + depth, inner, n);
    memset(t + depth + n, ']', (size_t)depth);
    t[2 * depth + n] = '\0';
    return t;
}

/* jansson counts every value, scalars too, against JSON_PARSER_MAX_DEPTH. */
Test(jsonx, depth_limit_is_janssons)
{
    static const struct {
        int depth;
        const char *inner;
        bool ok;
    } cases[] = {
        { JSON_PARSER_MAX_DEPTH, "", true },
        { JSON_PARSER_MAX_DEPTH + 1, "", false },
        { JSON_PARSER_MAX_DEPTH - 1, "\"\\ud800\"", true },
        { JSON_PARSER_MAX_DEPTH, "\"\\ud800\"", false },
        { JSON_PARSER_MAX_DEPTH - 1, "{}", true },
        { JSON_PARSER_MAX_DEPTH, "{}", false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char *t = nested(cases[i].depth, cases[i].inner);
        json_error_t e;
        json_t *own = jsonx_loadb(t, strlen(t), JSONX_OWN_PARSER, &e);
        json_t *any = jsonx_loadb(t, strlen(t), 0, NULL);
        char *d;

        cr_assert_eq(own != NULL, cases[i].ok, "case %zu: %s", i, own ? "accepted" : e.text);
        cr_assert_eq(any != NULL, cases[i].ok, "case %zu", i);
        if (!cases[i].ok) {
            cr_assert_str_eq(e.text, "maximum parsing depth reached");
            cr_assert_eq(json_error_code(&e), json_error_stack_overflow);
        } else {
            d = jsonx_dumps(own, NULL);
            cr_assert_str_eq(d, t, "case %zu", i);
            free(d);
        }
        if (*cases[i].inner != '"') {
            json_t *jan = json_loadb(t, strlen(t), 0, NULL);

            cr_assert_eq(jan != NULL, cases[i].ok, "jansson, case %zu", i);
            json_decref(jan);
        }
        json_decref(own);
        json_decref(any);
        free(t);
    }
}

Test(jsonx, dump_refuses_what_load_would)
{
    json_t *v = json_string("x");
    struct buf b;

    for (int i = 0; i < JSON_PARSER_MAX_DEPTH; i++) {
        json_t *a = json_array();

        json_array_append_new(a, v);
        v = a;
    }
    buf_init(&b, 0);
    buf_puts(&b, "kept");
    cr_assert_eq(jsonx_dump(&b, v), -ELOOP);
    cr_assert_str_eq(b.ptr, "kept", "out is left as it was");
    cr_assert_eq(jsonx_dump(&b, json_array_get(v, 0)), 0);
    cr_assert_eq(jsonx_dump(&b, NULL), -EINVAL);
    buf_close(&b);
    json_decref(v);
}

Test(jsonx, duplicates)
{
    json_error_t e;
    json_t *v = load_own(S("{\"a\":1,\"b\":2,\"a\":3}"), 0);
    char *t = jsonx_dumps(v, NULL);

    cr_assert_str_eq(t, "{\"a\":3,\"b\":2}", "the last wins, in the first one's place (jansson)");
    free(t);
    json_decref(v);
    refused(S("{\"a\":1,\"b\":2,\"a\":3}"), JSONX_REJECT_DUPLICATES, "duplicate object key");

    /* Keys that differ only after a NUL are two keys. */
    v = jsonx_loadb(S("{\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3}"), JSONX_REJECT_DUPLICATES, &e);
    cr_assert_not_null(v, "%s", e.text);
    cr_assert_eq(json_object_size(v), 3);
    json_decref(v);
    v = jsonx_loadb(S("{\"a\\u0000b\":1,\"a\\u0000b\":2}"), 0, NULL);
    cr_assert_eq(json_object_size(v), 1);
    cr_assert_eq(json_integer_value(json_object_getn(v, "a\0b", 3)), 2);
    json_decref(v);
    cr_assert_null(jsonx_loadb(S("{\"a\\u0000b\":1,\"a\\u0000b\":2}"), JSONX_REJECT_DUPLICATES, &e));
    cr_assert_str_eq(e.text, "duplicate object key");
    /* An escaped key is the same key as its raw spelling. */
    cr_assert_null(jsonx_loadb(S("{\"\\ud800\":1,\"\\uD800\":2}"), JSONX_REJECT_DUPLICATES, &e));
    cr_assert_null(jsonx_loadb(S("{\"A\":1,\"\\u0041\":2}"), JSONX_REJECT_DUPLICATES |
                               JSONX_OWN_PARSER, &e));
}

Test(jsonx, numbers_as_jansson_builds_them)
{
    static const char *const ok[] = {
        "[0]", "[-0]", "[1]", "[-1]", "[9223372036854775807]", "[-9223372036854775808]",
        "[0.0]", "[-0.0]", "[1.5]", "[1e2]", "[1E+2]", "[1e-2]", "[1.25E-7]", "[-1.5e300]",
        "[1e-400]", "[4.9406564584124654e-324]", "[1.7976931348623157e308]",
        "[0.1]", "[100000000000000000000.0]",
        "[12345678901234567890123456789012345678e-10]", "[0e0]", "[-0E-0]",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        json_t *v = load_own(ok[i], strlen(ok[i]), 0);
        cr_assert_not_null(v, "%s", ok[i]);
        json_decref(v);
        round_trip(ok[i], strlen(ok[i]));
    }
    {
        json_t *v = load_own(S("[-0,-0.0,1e2,9223372036854775807]"), 0);
        char *t;

        cr_assert(json_is_integer(json_array_get(v, 0)) &&
                  json_integer_value(json_array_get(v, 0)) == 0, "-0 is the integer 0");
        cr_assert(json_is_real(json_array_get(v, 1)) && signbit(json_real_value(json_array_get(v, 1))),
                  "-0.0 is a negative zero");
        cr_assert(json_is_real(json_array_get(v, 2)) && json_real_value(json_array_get(v, 2)) == 100);
        t = jsonx_dumps(v, NULL);
        cr_assert_str_eq(t, "[0,-0.0,100.0,9223372036854775807]");
        free(t);
        json_decref(v);
    }
    refused(S("[9223372036854775808]"), 0, "too big integer");
    refused(S("[123456789012345678901234567890]"), 0, "too big integer");
    refused(S("[-9223372036854775809]"), 0, "too big negative integer");
    refused(S("[1e400]"), 0, "real number overflow");
    refused(S("[-1e400]"), 0, "real number overflow");
    refused(S("[01]"), 0, "',' or ']' expected");
    refused(S("[-01]"), 0, "',' or ']' expected");
    refused(S("[1.]"), 0, "invalid token");
    refused(S("[.5]"), 0, "invalid token");
    refused(S("[+1]"), 0, "invalid token");
    refused(S("[-]"), 0, "invalid token");
    refused(S("[1e]"), 0, "invalid token");
    refused(S("[1e+]"), 0, "invalid token");
    refused(S("[0x10]"), 0, "',' or ']' expected");
    refused(S("[1.5.2]"), 0, "',' or ']' expected");
}

/* What json_dumps writes, with the hex digits of its \u escapes in lower
 * case (the one way jsonx_dump's text differs). */
static char *jansson_dump_lower(const json_t *v)
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

Test(jsonx, dumps_as_jansson_does)
{
    static const char *const texts[] = {
        "{}", "[]", "[[],{},[{}]]", "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "{\"z\":1,\"a\":2,\"m\":3}", "[0.1,-0.0,1e100,1.5e-7,5e-324,1.7976931348623157e308,"
        "123456789012345678.0,3.0,-2.5,1e21,1e-5,100000000000000000000.0]",
        "[-9223372036854775808,0,42]", "[\"\\u0000\\u0001\\u001f\\u007f\\\"\\\\/\\b\\f\\n\\r\\t\"]",
        "[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\u2028\"]", "{\"k\\u0000\":\"\\u0000v\"}",
        "{\"\\u001F\":\"\\u001a\"}",
    };
    static const double reals[] = { 0.1, -0.0, 1e100, 1.5e-7, 5e-324, DBL_MAX, -DBL_MIN, 3.0, 1e16,
                                    1e17, 123456789.125, 2.5e-308, 1e-7 };

    for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++) {
        json_t *v = load_own(texts[i], strlen(texts[i]), 0);
        char *a, *b;

        cr_assert_not_null(v, "%s", texts[i]);
        a = jsonx_dumps(v, NULL);
        b = jansson_dump_lower(v);
        cr_assert_str_eq(a, b, "%s", texts[i]);
        free(a);
        free(b);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof(reals) / sizeof(*reals); i++) {
        json_t *r = json_real(reals[i]);
        char *a = jsonx_dumps(r, NULL), *b = json_dumps(r, JSON_ENCODE_ANY);

        cr_assert_str_eq(a, b, "%.17g", reals[i]);
        free(a);
        free(b);
        json_decref(r);
    }
}

Test(jsonx, equal_sees_nul_keys)
{
    json_t *a = json_object(), *b = json_object();

    /* json_equal looks each key of a up in b with strlen. */
    json_object_setn_new_nocheck(a, "k\0x", 3, json_integer(1));
    json_object_setn_new_nocheck(b, "k\0x", 3, json_integer(1));
    cr_assert_not(json_equal(a, b), "jansson looks for \"k\" in b");
    cr_assert(jsonx_equal(a, b));
    json_object_set_new(a, "k", json_integer(1));
    json_object_set_new(b, "k", json_integer(1));
    json_object_setn_new_nocheck(b, "k\0x", 3, json_integer(2));
    cr_assert(json_equal(a, b), "jansson compares \"k\" twice");
    cr_assert_not(jsonx_equal(a, b));
    json_object_setn_new_nocheck(b, "k\0x", 3, json_integer(1));
    cr_assert(jsonx_equal(a, b));
    json_object_setn_new_nocheck(b, "k\0y", 3, json_integer(1));
    cr_assert_not(jsonx_equal(a, b), "b has one key more");
    json_decref(a);
    json_decref(b);

    a = json_stringn("a\0b", 3);
    b = json_stringn("a\0c", 3);
    cr_assert_not(jsonx_equal(a, b));
    json_decref(b);
    cr_assert_not(jsonx_equal(a, NULL));
    json_decref(a);
    a = json_integer(1);
    b = json_real(1.0);
    cr_assert_not(jsonx_equal(a, b), "1 and 1.0 differ, as in jansson");
    json_decref(a);
    json_decref(b);
}

Test(jsonx, round_trips)
{
    static const char *const texts[] = {
        "{\"Records\":[{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"dynamodb\":{"
        "\"ApproximateCreationDateTime\":1714560000,\"Keys\":{\"p\\u0000k\":{\"S\":\"\\ud800\"}},"
        "\"NewImage\":{\"p\\u0000k\":{\"S\":\"\\ud800\"},\"m\":{\"M\":{\"\\u0000\":{\"N\":"
        "\"1E+125\"},\"\\udfff\":{\"L\":[{\"S\":\"\\u0000\\u2028\"}]}}}},"
        "\"SequenceNumber\":\"100000000000000000001\",\"SizeBytes\":12,"
        "\"StreamViewType\":\"NEW_IMAGE\"}}],\"NextShardIterator\":\"x\"}",
        "[\"\\ud83d\\ude00\\ud83d\",\"\\ude00\"]",
        "\"\\udbff\\udfff\\udbff\"",
        "[1.5,-0.0,1e-300,7]",
        "{\"\":\"\",\"\\u0000\":[]}",
    };

    for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++)
        round_trip(texts[i], strlen(texts[i]));
}

Test(jsonx, own_parser_matches_jansson_on_records)
{
    static const char *const files[] = {
        "tests/data/records/insert_all_types.json", "tests/data/records/modify_old_image.json",
        "tests/data/records/nested_32.json",        "tests/data/records/remove_ttl_aws.json",
        "tests/data/replay/lambda-event.json",
    };

    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        json_error_t e;
        json_t *f = jsonx_load_file(files[i], 0, &e), *own;
        char *t;
        size_t n;

        cr_assert_not_null(f, "%s: %s", files[i], e.text);
        t = json_dumps(f, JSON_INDENT(2));
        n = strlen(t);
        own = load_own(t, n, 0);
        cr_assert(jsonx_equal(own, f), "%s", files[i]);
        free(t);
        json_decref(own);
        json_decref(f);
    }
}

Test(jsonx, load_file)
{
    static const char text[] = "{\"a\\u0000\":\"\\udc00\"}\n";
    const char *tmp = getenv("TMPDIR");
    char path[256];
    json_error_t e;
    json_t *v;
    int fd;

    snprintf(path, sizeof(path), "%s/jsonx-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemp(path);

    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    v = jsonx_load_file(path, 0, &e);
    cr_assert_not_null(v, "%s", e.text);
    assert_string(json_object_getn(v, "a\0", 2), "\xed\xb0\x80", 3);
    cr_assert_str_eq(e.source, path);
    json_decref(v);
    unlink(path);
    cr_assert_null(jsonx_load_file(path, 0, &e));
    cr_assert_not_null(strstr(e.text, "unable to open"), "%s", e.text);
    cr_assert_eq(json_error_code(&e), json_error_cannot_open_file);
}

Test(jsonx, put_string_escapes_only_whole_wtf8_surrogates)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        { S("\xed\xa0\x80"), "\"\\ud800\"" },
        { S("x\xed\xbf\xbfy"), "\"x\\udfffy\"" },
        { S("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"" },  /* U+D7FF: a real character */
        { S("\xed\xa0"), "\"\xed\xa0\"" },          /* cut short: copied */
        { S("\xed\xa0\x41"), "\"\xed\xa0\x41\"" },  /* not a continuation: copied */
        { S("\xed\xa0\x80\xed\xb0\x80"), "\"\\ud800\\udc00\"" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct buf b;

        buf_init(&b, 0);
        cr_assert_eq(jsonx_put_string(&b, cases[i].in, cases[i].len), 0);
        cr_assert_str_eq(b.ptr, cases[i].out, "case %zu", i);
        buf_close(&b);
    }
}

/* bulk_json_string is jsonx_put_string now: for valid UTF-8 it writes what
 * it always wrote (these are the texts of the writer before jsonx). */
Test(jsonx, bulk_json_string_unchanged_for_utf8)
{
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        { S(""), "\"\"" },
        { S("plain"), "\"plain\"" },
        { S("q\"b\\s/"), "\"q\\\"b\\\\s/\"" },
        { S("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"" },
        { S("\0\x01\x0b\x1a\x1f\x7f"), "\"\\u0000\\u0001\\u000b\\u001a\\u001f\x7f\"" },
        { S("\xc3\xa9\xe2\x80\xa8\xef\xbb\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf"),
          "\"\xc3\xa9\xe2\x80\xa8\xef\xbb\xbf\xef\xbf\xbf\xf4\x8f\xbf\xbf\"" },
        { S("\xed\x9f\xbf\xee\x80\x80"), "\"\xed\x9f\xbf\xee\x80\x80\"" },
    };
    struct buf b;

    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        buf_reset(&b);
        cr_assert_eq(bulk_json_string(&b, cases[i].in, cases[i].len), 0);
        cr_assert_str_eq(b.ptr, cases[i].out, "case %zu", i);
    }
    /* Every byte pair and ASCII control character, against the rule itself. */
    for (int c = 0; c < 0x80; c++) {
        char in[2] = { (char)c, 'x' }, want[16];

        buf_reset(&b);
        cr_assert_eq(bulk_json_string(&b, in, 2), 0);
        if (c == '"' || c == '\\')
            snprintf(want, sizeof(want), "\"\\%cx\"", c);
        else if (c >= 0x20)
            snprintf(want, sizeof(want), "\"%cx\"", c);
        else if (strchr("\b\f\n\r\t", c) && c)
            snprintf(want, sizeof(want), "\"\\%cx\"", "bfnrt"[strchr("\b\f\n\r\t", c) - "\b\f\n\r\t"]);
        else
            snprintf(want, sizeof(want), "\"\\u%04xx\"", c);
        cr_assert_str_eq(b.ptr, want, "byte 0x%02x", c);
    }
    buf_close(&b);

    /* A ceiling leaves the buffer as it was. */
    buf_init(&b, 8);
    buf_puts(&b, "ab");
    cr_assert_eq(bulk_json_string(&b, S("\xed\xa0\x80xyz")), -E2BIG);
    cr_assert_str_eq(b.ptr, "ab");
    buf_close(&b);
}

Test(jsonx, loader_arguments)
{
    json_error_t e;
    json_t *v = jsonx_loadb("[\"\\ud800\"]", 10, JSONX_OWN_PARSER, NULL);

    cr_assert_null(jsonx_loadb(NULL, 0, 0, &e));
    cr_assert_eq(json_error_code(&e), json_error_invalid_argument);
    cr_assert_not_null(v, "a NULL err is allowed");
    json_decref(v);
    cr_assert_null(jsonx_loadb("[\"\\ud800", 8, JSONX_OWN_PARSER, NULL));
}

/* ---- where the daemon reads what DynamoDB sends ---------------------------- */

Test(jsonx, a_reply_with_nul_keys_and_lone_surrogates_is_ok)
{
    static const char body[] = "{\"Item\":{\"p\\u0000k\":{\"S\":\"\\ud800\"}}}";
    char type[64];

    /* jansson refused it: a 200 that did not parse was retried for ever. */
    cr_assert_eq(ddb_classify(200, 0, S(body), type, sizeof(type)), DDB_OK);
    cr_assert_eq(ddb_classify(400, 0, S("{\"__type\":\"x#ValidationException\",\"message\":"
                                        "\"bad \\ud800 \\u0000\"}"), type, sizeof(type)),
                 DDB_FATAL);
    cr_assert_str_eq(type, "ValidationException");
}

TestSuite(jsonx_e2e, .timeout = 120);

static const char *const test_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                        NULL };

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

/* `ddb2es replay -c conf ARGS...` to completion: its exit code, the log
 * printed when it is not 0. */
static int replay(struct proc *p, const char *conf, const char *const *args)
{
    static char bin[512];
    const char *argv[32] = { proc_path("ddb2es", bin, sizeof(bin)), "replay", "-c", conf };
    size_t n = 4;
    int rc;

    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    rc = proc_run(argv, test_env, 60000, p);
    if (rc != 0) {
        char *log = proc_slurp(p->err_path);

        cr_log_warn("replay exited %d:\n%.4000s", rc, log);
        free(log);
    }
    return rc;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

/* DynamoDB Local stores a lone surrogate and a NUL in a map key as they were
 * sent, and its Scan returns them as escapes: read here through
 * tests/support/ddbclient.c, which parses with jsonx. */
Test(jsonx_e2e, dynamodb_local_returns_nul_keys_and_lone_surrogates)
{
    char name[128], body[512];
    json_t *r, *item, *m;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "jsonx");
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_IMAGE");
    snprintf(body, sizeof(body),
             "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"k\\ud800\"},"
             "\"m\":{\"M\":{\"a\\u0000b\":{\"S\":\"v\\u0000\\udc00\"}}}}}", name);
    json_decref(ddbc_call("PutItem", body, NULL));
    r = ddbc_callj("Scan", json_pack("{s:s}", "TableName", name));
    cr_assert_eq(json_array_size(json_object_get(r, "Items")), 1);
    item = json_array_get(json_object_get(r, "Items"), 0);
    assert_string(json_object_get(json_object_get(item, "pk"), "S"), S("k\xed\xa0\x80"));
    m = json_object_get(json_object_get(item, "m"), "M");
    cr_assert_eq(json_object_size(m), 1);
    assert_string(json_object_get(json_object_getn(m, "a\0b", 3), "S"), S("v\0\xed\xb0\x80"));
    json_decref(r);
}

/* Three items, one a page (--rate 1): the second and third Scan carry a
 * LastEvaluatedKey that may hold a lone surrogate back to DynamoDB. */
Test(jsonx_e2e, replay_scans_them_and_writes_them_back)
{
    char name[128], dir[256], body[512];
    struct e2e_table t = { 0 };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *out;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "jsonx");
    lower(name);
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_IMAGE");
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body),
                 "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"k%d\\ud800\"},"
                 "\"m\":{\"M\":{\"a\\u0000b\":{\"S\":\"v\\u0000\\udc00\"}}}}}", name, i);
        json_decref(ddbc_call("PutItem", body, NULL));
    }
    t.name = t.index = name;
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    cr_assert_eq(replay(&p, conf, (const char *[]){ "--table", name, "--scan", "--segments", "1",
                                                    "--rate", "1", "--dry-run", NULL }), 0);
    out = proc_slurp(p.out_path);
    for (int i = 0; i < 3; i++) {
        char want[64];

        snprintf(want, sizeof(want), "\"pk\":\"k%d\\ud800\"", i);
        cr_assert_not_null(strstr(out, want), "%s missing:\n%.3000s", want, out);
    }
    cr_assert_not_null(strstr(out, "\"m\":{\"a\\u0000b\":\"v\\u0000\\udc00\"}"), "%.3000s", out);
    free(out);
    searchd_stop(sd);
}

/* A replay resumes from a progress file whose saved key holds a lone
 * surrogate: the Scan starts after that item. */
Test(jsonx_e2e, replay_resumes_from_a_saved_key_with_a_lone_surrogate)
{
    char name[128], dir[256], path[512], body[512];
    struct e2e_table t = { 0 };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *out;
    FILE *f;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "jsonx");
    lower(name);
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_IMAGE");
    snprintf(body, sizeof(body), "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"k\\ud800\"}}}",
             name);
    json_decref(ddbc_call("PutItem", body, NULL));
    t.name = t.index = name;
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/state", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/state/replay-%s.json", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "{\"version\":1,\"table\":\"%s\",\"segments\":1,\"progress\":[{\"done\":false,"
            "\"key\":{\"pk\":{\"S\":\"k\\ud800\"}},\"items\":1}]}\n", name);
    fclose(f);
    cr_assert_eq(replay(&p, conf, (const char *[]){ "--table", name, "--scan", "--dry-run",
                                                    NULL }), 0);
    out = proc_slurp(p.out_path);
    cr_assert_null(strstr(out, "k\\ud800"), "the saved key's item is read again:\n%.2000s", out);
    free(out);
    searchd_stop(sd);
}

/* A stream-records file: one record becomes a document, the other (a type
 * DynamoDB does not have) a dead letter holding the record as it came, NUL
 * and lone surrogates included.  (Replaying a dead-letter file reads the
 * items again from the table: see the replay suite.) */
Test(jsonx_e2e, replay_files_and_dead_letters_keep_them)
{
    static const char ok[] =
        "{\"eventID\":\"1\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\","
        "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"dynamodb\":{"
        "\"ApproximateCreationDateTime\":1714560000,\"Keys\":{\"pk\":{\"S\":\"k\\ud800\"}},"
        "\"NewImage\":{\"pk\":{\"S\":\"k\\ud800\"},\"m\":{\"M\":{\"a\\u0000b\":"
        "{\"S\":\"v\\u0000\\udc00\"}}}},\"SequenceNumber\":\"100\",\"SizeBytes\":10,"
        "\"StreamViewType\":\"NEW_IMAGE\"}}";
    static const char bad[] =
        "{\"eventID\":\"2\",\"eventName\":\"INSERT\",\"eventVersion\":\"1.1\","
        "\"eventSource\":\"aws:dynamodb\",\"awsRegion\":\"us-east-1\",\"dynamodb\":{"
        "\"ApproximateCreationDateTime\":1714560001,\"Keys\":{\"pk\":{\"S\":\"j\\udfff\"}},"
        "\"NewImage\":{\"pk\":{\"S\":\"j\\udfff\"},\"m\":{\"M\":{\"\\u0000\":{\"S\":\"x\"}}},"
        "\"bad\":{\"X\":\"\\ud800\"}},\"SequenceNumber\":\"101\",\"SizeBytes\":10,"
        "\"StreamViewType\":\"NEW_IMAGE\"}}";
    char dir[256], in[512], dlq[512];
    struct e2e_table t = { .name = "jsonx", .index = "jsonx" };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *text;
    FILE *f;

    sd = searchd_start(NULL);
    conf = e2e_config_ex("http://127.0.0.1:9", searchd_url(sd), &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    snprintf(in, sizeof(in), "%s/records.ndjson", dir);
    snprintf(dlq, sizeof(dlq), "%s/dlq.ndjson", dir);
    f = fopen(in, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n%s\n", ok, bad);
    fclose(f);
    cr_assert_eq(replay(&p, conf, (const char *[]){ "--table", "jsonx", "--file", in, "--format",
                                                    "stream", "--key", "pk", NULL }),
                 0);
    {
        json_t *dump = searchd_dump(sd);
        char *d = jsonx_dumps(dump, NULL);

        cr_assert_not_null(strstr(d, "{\"pk\":\"k\\ud800\",\"m\":{\"a\\u0000b\":\"v\\u0000\\udc00\"}}"),
                           "%.2000s", d);
        free(d);
        json_decref(dump);
    }
    text = proc_slurp(dlq);
    cr_assert_not_null(strstr(text, "\"m\":{\"M\":{\"\\u0000\":{\"S\":\"x\"}}},\"bad\":{\"X\":"
                                    "\"\\ud800\"}"), "the record as it came: %.2000s", text);
    free(text);

    searchd_stop(sd);
}

/* jsonx_string_decode against jsonx_loadb: strings of every escape (\u0000,
 * lone and paired surrogates, every short escape, invalid ones) and raw
 * bytes of every value.  What the parser reads, the decoder reads to the
 * same bytes; an escape the decoder refuses, the parser refuses too. */
Test(jsonx, string_decode_reads_what_the_parser_reads)
{
    static const char *const pieces[] = {
        "a", " ", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0000",
        "\\u00e9", "\\uD83D\\uDE00", "\\ud800", "\\udc00", "\\uDBFF", "\\u12", "\\x", "\\",
        "\xc3\xa9", "\xf0\x9f\x98\x80", "\xed\xa0\x80", "\xff", "\x01", "\\u0041x",
    };
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char text[256];
    struct buf got;

    buf_init(&got, 0);
    for (int round = 0; round < test_rounds(50000); round++) {
        size_t len = 0;
        json_t *v;
        int rc;

        text[len++] = '[';
        text[len++] = '"';
        for (int k = (int)(x % 6); k >= 0; k--) {
            const char *pc;

            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (x % 5 == 0) {
                text[len++] = (char)(x >> 16); /* any byte */
                continue;
            }
            pc = pieces[(x >> 8) % (sizeof(pieces) / sizeof(*pieces))];
            memcpy(text + len, pc, strlen(pc));
            len += strlen(pc);
        }
        text[len++] = '"';
        text[len++] = ']';
        buf_reset(&got);
        rc = jsonx_string_decode(text + 1, text + len, &got);
        v = jsonx_loadb(text, len, 0, NULL);
        if (v) {
            json_t *sv = json_array_get(v, 0);

            cr_assert_eq(rc, 0, "%.*s", (int)len, text);
            cr_assert(got.len == json_string_length(sv) &&
                          memcmp(got.ptr ? got.ptr : "", json_string_value(sv), got.len) == 0,
                      "%.*s", (int)len, text);
        } else if (rc == 0) {
            /* Taken by the decoder, refused by the parser: only for raw
             * bytes, which the decoder copies without checking. */
            bool raw_bad = false;

            for (size_t i = 2; i + 2 < len; i++)
                raw_bad |= (unsigned char)text[i] < 0x20 || (unsigned char)text[i] >= 0x80 ||
                           text[i] == '"';
            cr_assert(raw_bad, "decoded, but the parser refuses: %.*s", (int)len, text);
        }
        json_decref(v);
    }
    buf_close(&got);
}
