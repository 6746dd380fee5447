#include "indexer/ddbnum.h"

#include <errno.h>
#include <string.h>

/* The pieces of a number's text; digits are counted over int||frac. */
struct num {
    bool neg;
    const char *ip, *fp, *ep; /* integer digits, fraction digits, exponent text ("e-5") */
    size_t ilen, flen, elen;
    bool zero;
    size_t first, last; /* first and last non-zero digit in int||frac */
    long long e;        /* exponent value, saturated far outside the range */
};

#define EXP_SAT 1000000000000LL

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static char digit_at(const struct num *n, size_t p)
{
    return p < n->ilen ? n->ip[p] : n->fp[p - n->ilen];
}

/* Power of ten carried by the digit at position p of int||frac. */
static long long power_at(const struct num *n, size_t p)
{
    return (long long)n->ilen - 1 - (long long)p + n->e;
}

static int parse(const char *s, size_t len, struct num *n)
{
    size_t i = 0, total;

    memset(n, 0, sizeof(*n));
    if (!s)
        return -EINVAL;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        n->neg = s[i++] == '-';
    n->ip = s + i;
    while (i < len && is_digit(s[i]))
        i++;
    n->ilen = (size_t)(s + i - n->ip);
    n->fp = s + i;
    if (i < len && s[i] == '.') {
        n->fp = s + ++i;
        while (i < len && is_digit(s[i]))
            i++;
        n->flen = (size_t)(s + i - n->fp);
    }
    if (n->ilen + n->flen == 0)
        return -EINVAL;
    n->ep = s + i;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        size_t d0;

        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        d0 = i;
        for (; i < len && is_digit(s[i]); i++)
            if (n->e < EXP_SAT)
                n->e = n->e * 10 + (s[i] - '0');
        if (i == d0)
            return -EINVAL;
        if (eneg)
            n->e = -n->e;
        n->elen = (size_t)(s + i - n->ep);
    }
    if (i != len)
        return -EINVAL;

    total = n->ilen + n->flen;
    n->zero = true;
    for (size_t p = 0; p < total; p++) {
        if (digit_at(n, p) != '0') {
            if (n->zero)
                n->first = p;
            n->zero = false;
            n->last = p;
        }
    }
    if (n->zero)
        return 0;
    if (n->last - n->first + 1 > DDBNUM_MAX_DIGITS)
        return -EINVAL;
    if (power_at(n, n->first) > DDBNUM_MAX_EXP || power_at(n, n->first) < DDBNUM_MIN_EXP)
        return -EINVAL;
    return 0;
}

bool ddbnum_valid(const char *s, size_t len)
{
    struct num n;

    return parse(s, len, &n) == 0;
}

int ddbnum_json(const char *s, size_t len, struct buf *out)
{
    struct num n;
    size_t mark = out->len, skip = 0;
    int rc = parse(s, len, &n);

    if (rc < 0)
        return rc;
    while (skip + 1 < n.ilen && n.ip[skip] == '0')
        skip++;
    rc = buf_reserve(out, len + 1);
    if (rc == 0 && n.neg)
        rc = buf_putc(out, '-');
    if (rc == 0)
        rc = n.ilen ? buf_append(out, n.ip + skip, n.ilen - skip) : buf_putc(out, '0');
    if (rc == 0 && n.flen) {
        rc = buf_putc(out, '.');
        if (rc == 0)
            rc = buf_append(out, n.fp, n.flen);
    }
    if (rc == 0 && n.elen)
        rc = buf_append(out, n.ep, n.elen);
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

static int put_zeros(struct buf *out, long long k)
{
    int rc = buf_reserve(out, (size_t)k);

    if (rc < 0)
        return rc;
    memset(out->ptr + out->len, '0', (size_t)k);
    out->len += (size_t)k;
    out->ptr[out->len] = '\0';
    return 0;
}

static int put_digits(struct buf *out, const struct num *n, size_t from, size_t to)
{
    int rc = 0;

    for (size_t p = from; rc == 0 && p < to; p++)
        rc = buf_putc(out, digit_at(n, p));
    return rc;
}

int ddbnum_canonical(const char *s, size_t len, struct buf *out)
{
    struct num n;
    size_t mark = out->len, nd;
    long long e10;
    int rc = parse(s, len, &n);

    if (rc < 0)
        return rc;
    if (n.zero)
        return buf_putc(out, '0');
    nd = n.last - n.first + 1;
    e10 = power_at(&n, n.last); /* value = digits[first..last] * 10^e10 */
    /* The range check bounds the text: at most 38 digits, 130 zeros, "-0." */
    rc = buf_reserve(out, DDBNUM_MAX_DIGITS + 140);
    if (rc == 0 && n.neg)
        rc = buf_putc(out, '-');
    if (rc == 0 && e10 >= 0) {
        rc = put_digits(out, &n, n.first, n.last + 1);
        if (rc == 0)
            rc = put_zeros(out, e10);
    } else if (rc == 0 && (long long)nd > -e10) {
        size_t ni = nd - (size_t)-e10; /* digits before the point */

        rc = put_digits(out, &n, n.first, n.first + ni);
        if (rc == 0)
            rc = buf_putc(out, '.');
        if (rc == 0)
            rc = put_digits(out, &n, n.first + ni, n.last + 1);
    } else if (rc == 0) {
        rc = buf_append(out, "0.", 2);
        if (rc == 0)
            rc = put_zeros(out, -e10 - (long long)nd);
        if (rc == 0)
            rc = put_digits(out, &n, n.first, n.last + 1);
    }
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}
