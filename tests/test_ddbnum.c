/* ddbnum: DynamoDB number text checked, made JSON and canonical, exactly. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "indexer/ddbnum.h"

TestSuite(ddbnum, .timeout = 10);

/* prefix + n times c + suffix, in one of a few static slots (n < 1000) */
static char *repeat(char c, size_t n, const char *prefix, const char *suffix)
{
    static char pool[4][1100];
    static unsigned slot;
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = pool[slot++ % 4];

    cr_assert_lt(pl + n + sl, sizeof(pool[0]));

    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

static void expect_json(const char *in, const char *want)
{
    struct buf b;

    buf_init(&b, 0);
    cr_assert_eq(ddbnum_json(in, strlen(in), &b), 0, "ddbnum_json(%s) failed", in);
    cr_expect_str_eq(b.ptr, want, "ddbnum_json(%s)", in);
    buf_close(&b);
}

static void expect_canonical(const char *in, const char *want)
{
    struct buf b;

    buf_init(&b, 0);
    cr_assert_eq(ddbnum_canonical(in, strlen(in), &b), 0, "ddbnum_canonical(%s) failed", in);
    cr_expect_str_eq(b.ptr, want, "ddbnum_canonical(%s)", in);
    buf_close(&b);
}

Test(ddbnum, accepts_what_dynamodb_accepts)
{
    static const char *const ok[] = {
        "0", "-0", "+5", "5.", ".5", "-.5", "007", "1.50", "1e2", "1E+125", "1E-130", "-1e-130",
        "9.9999999999999999999999999999999999999E+125", "0.1E-129", "0e999999999999999999999",
        "12345678901234567890123456789012345678", "-12345678901234567890123456789012345678",
        "1000000000000000000000000000000000000000000", "0.000000000000000000000000000000000000000001",
        "1.2345678901234567890123456789012345678e-3",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        cr_expect(ddbnum_valid(ok[i], strlen(ok[i])), "should accept %s", ok[i]);
    cr_expect_not(ddbnum_valid(repeat('0', 500, "1", ""), 501), "1 and 500 zeros is 1E+500");
    cr_expect(ddbnum_valid(repeat('0', 500, "1.", ""), 502), "trailing fractional zeros are not significant");
}

Test(ddbnum, rejects_what_is_not_a_number_in_range)
{
    static const char *const bad[] = {
        "", "-", "+", ".", "-.", "e5", "1e", "1e+", "1E-", "1.2.3", " 1", "1 ", "0x10", "Infinity",
        "NaN", "1,5", "--1", "+-1", "1e5.5", "1f",
        "123456789012345678901234567890123456789",      /* 39 significant digits */
        "1.23456789012345678901234567890123456789",     /* 39 */
        "1E+126", "10E+125", "-1E+126", "1E-131", "0.01E-129", "0.99E-130",
        "1e999999999999999999999999", "1e-999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not(ddbnum_valid(bad[i], strlen(bad[i])), "should reject \"%s\"", bad[i]);
    cr_expect_not(ddbnum_valid("1\0", 2), "embedded NUL");
    cr_expect_not(ddbnum_valid(NULL, 0));
}

Test(ddbnum, the_range_edges_are_exact)
{
    /* 1 followed by 126 digits is 1E+126: one too many */
    cr_expect(ddbnum_valid(repeat('0', 125, "1", ""), 126));
    cr_expect_not(ddbnum_valid(repeat('0', 126, "1", ""), 127));
    cr_expect(ddbnum_valid(repeat('0', 129, "0.", "1"), 132));
    cr_expect_not(ddbnum_valid(repeat('0', 130, "0.", "1"), 133));
}

Test(ddbnum, json_keeps_valid_json_spellings_unchanged)
{
    static const char *const same[] = {
        "0", "-0", "42", "-7.50", "1.50", "1E+125", "1e-130", "2.50", "3.000", "0.5", "1e007",
        "12345678901234567890123456789012345678", "-1.2345678901234567890123456789012345678E-3",
        "9.9999999999999999999999999999999999999E+125",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        expect_json(same[i], same[i]);
    expect_json(repeat('0', 125, "1", ""), repeat('0', 125, "1", ""));
    expect_json(repeat('0', 129, "0.", "1"), repeat('0', 129, "0.", "1"));
}

Test(ddbnum, json_fixes_only_what_json_forbids)
{
    expect_json("+5", "5");
    expect_json("007", "7");
    expect_json("-007", "-7");
    expect_json("000", "0");
    expect_json("00.5", "0.5");
    expect_json(".5", "0.5");
    expect_json("-.5", "-0.5");
    expect_json("5.", "5");
    expect_json("5.e3", "5e3");
    expect_json("+.5E-3", "0.5E-3");
    expect_json("+007.50", "7.50");
}

Test(ddbnum, canonical_matches_dynamodb_local_normalisation)
{
    /* The DDBLOCAL.md table: what PutItem stores for each spelling. */
    expect_canonical("1E+125", repeat('0', 125, "1", ""));
    expect_canonical("1E-130", repeat('0', 129, "0.", "1"));
    expect_canonical("1.50", "1.5");
    expect_canonical("-0", "0");
    expect_canonical("1e2", "100");
    expect_canonical("2.50", "2.5");
    expect_canonical("3.000", "3");
}

Test(ddbnum, canonical_plain_notation_cases)
{
    expect_canonical("0", "0");
    expect_canonical("0.000", "0");
    expect_canonical("-0.0e5", "0");
    expect_canonical("0e999999999999999999999", "0");
    expect_canonical("007", "7");
    expect_canonical("+5", "5");
    expect_canonical("5.", "5");
    expect_canonical(".5", "0.5");
    expect_canonical("-.5", "-0.5");
    expect_canonical("100", "100");
    expect_canonical("1000e-3", "1");
    expect_canonical("12.345e1", "123.45");
    expect_canonical("12345e-2", "123.45");
    expect_canonical("0.00123e3", "1.23");
    expect_canonical("-1.5e-3", "-0.0015");
    expect_canonical("1.5E+1", "15");
    expect_canonical("10.10", "10.1");
    expect_canonical("12345678901234567890123456789012345678", "12345678901234567890123456789012345678");
    expect_canonical("1.2345678901234567890123456789012345678e37",
                     "12345678901234567890123456789012345678");
    expect_canonical("-1.2345678901234567890123456789012345678e-3",
                     "-0.0012345678901234567890123456789012345678");
    expect_canonical("9.9999999999999999999999999999999999999E+125",
                     repeat('0', 88, "99999999999999999999999999999999999999", ""));
    expect_canonical("-1e-130", repeat('0', 129, "-0.", "1"));
}

Test(ddbnum, two_spellings_of_one_value_are_equal)
{
    static const char *const pairs[][2] = {
        { "1E+125", NULL }, /* filled below with the 126-digit form */
        { "2.5", "2.50" },  { "2.5", "25e-1" }, { "-0", "0.0" },  { "100", "1e2" },
        { "0.001", "1E-3" }, { "7", "+007.000" },
    };
    struct buf a, b;

    buf_init(&a, 0);
    buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *x = pairs[i][0], *y = pairs[i][1] ? pairs[i][1] : repeat('0', 125, "1", "");

        buf_reset(&a);
        buf_reset(&b);
        cr_assert_eq(ddbnum_canonical(x, strlen(x), &a), 0);
        cr_assert_eq(ddbnum_canonical(y, strlen(y), &b), 0);
        cr_expect_str_eq(a.ptr, b.ptr, "%s vs %s", x, y);
    }
    buf_close(&a);
    buf_close(&b);
}

Test(ddbnum, invalid_input_leaves_the_buffer_unchanged)
{
    struct buf b;

    buf_init(&b, 0);
    buf_puts(&b, "[");
    cr_expect_eq(ddbnum_json("1e", 2, &b), -EINVAL);
    cr_expect_eq(ddbnum_canonical("abc", 3, &b), -EINVAL);
    cr_expect_eq(ddbnum_canonical("1E+126", 6, &b), -EINVAL);
    cr_expect_str_eq(b.ptr, "[");
    buf_close(&b);
}

Test(ddbnum, a_full_buffer_is_reported_and_left_as_it_was)
{
    struct buf b;

    buf_init(&b, 8);
    buf_puts(&b, "ab");
    cr_expect_eq(ddbnum_canonical("1E+125", 6, &b), -E2BIG);
    cr_expect_eq(ddbnum_json("12345678901", 11, &b), -E2BIG);
    cr_expect_str_eq(b.ptr, "ab");
    cr_expect_eq(ddbnum_json("12345", 5, &b), 0);
    cr_expect_str_eq(b.ptr, "ab12345");
    buf_close(&b);
}
