/* verify_cmp — the pure parts of `ddb2es verify` (verify_int.h): documents
 * compared as JSON, the engine's _mget reply read without a double, and the
 * set of scanned ids.
 *
 * Why not jansson: json_loadb turns a number token into a json_int_t or a
 * double, so 38-digit numbers lose digits (or are refused) and two documents
 * differing in the 38th digit would compare equal.  The canonical text below
 * is made from the text itself: object members sorted, strings decoded and
 * written again by one escaper, numbers reduced to digits and an exponent.
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonskip.h"
#include "base/jsonx.h"

#define CANON_MAX_DEPTH 256

struct canon {
    const char *p, *end;
    struct buf *out;
    int depth;
};

static void skip_ws(struct canon *c)
{
    c->p = jsonskip_ws(c->p, c->end);
}

/* A number token as digits and a power of ten: "-" when negative, the
 * significant digits without leading or trailing zeros, "e" and the
 * exponent of the last digit ("1.50" -> "15e-1", "150" -> "15e1"); zero is
 * "0" whatever its sign or exponent.  An exponent past 18 digits is
 * refused: no engine keeps such a number, and the caller then compares the
 * texts as they are. */
static int number(struct canon *c)
{
    const char *p = c->p, *end = c->end, *ip, *ie, *fp = NULL, *fe = NULL;
    bool neg = false;
    int64_t exp = 0;
    char tmp[32];
    size_t lead, nd;
    struct buf *o = c->out;
    int rc;

    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    ip = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    ie = p;
    if (ie == ip)
        return -EINVAL;
    if (p < end && *p == '.') {
        fp = ++p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        fe = p;
        if (fe == fp)
            return -EINVAL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false;
        const char *ep;

        p++;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        ep = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (p - ep >= 18)
                return -ERANGE;
            exp = exp * 10 + (*p++ - '0');
        }
        if (p == ep)
            return -EINVAL;
        if (eneg)
            exp = -exp;
    }
    c->p = p;
    /* The digits of int and frac as one run, the point after the int part. */
    {
        size_t ni = (size_t)(ie - ip), nf = fp ? (size_t)(fe - fp) : 0, first = 0, last;
        char *d = malloc(ni + nf + 1);

        if (!d)
            return -ENOMEM;
        memcpy(d, ip, ni);
        if (nf)
            memcpy(d + ni, fp, nf);
        nd = ni + nf;
        while (first < nd && d[first] == '0')
            first++;
        if (first == nd) {
            free(d);
            return buf_putc(o, '0');
        }
        last = nd;
        while (d[last - 1] == '0')
            last--;
        /* value = d[first..last) x 10^(exp - nf + (nd - last)) */
        exp = exp - (int64_t)nf + (int64_t)(nd - last);
        lead = first;
        rc = neg ? buf_putc(o, '-') : 0;
        if (rc == 0)
            rc = buf_append(o, d + lead, last - lead);
        free(d);
    }
    snprintf(tmp, sizeof(tmp), "e%" PRId64, exp);
    return rc ? rc : buf_puts(o, tmp);
}

static int value(struct canon *c);

struct member {
    size_t off, klen, len; /* in the scratch copy: the member's text, its key's */
};

static int cmp_member(const void *a, const void *b, void *arg)
{
    const struct member *x = a, *y = b;
    const char *text = arg;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(text + x->off, text + y->off, n);

    if (r)
        return r;
    if (x->klen != y->klen)
        return x->klen < y->klen ? -1 : 1;
    /* Same key (twice in one object): by the value, so the order does not matter. */
    n = x->len < y->len ? x->len : y->len;
    r = memcmp(text + x->off + x->klen, text + y->off + y->klen, n - x->klen);
    return r ? r : (x->len > y->len) - (x->len < y->len);
}

static int object(struct canon *c)
{
    struct buf *o = c->out, key;
    size_t mark = o->len, n = 0, cap = 0;
    struct member *m = NULL;
    char *copy = NULL;
    int rc = 0;

    c->p++; /* '{' */
    buf_init(&key, BUF_NOMAX);
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        buf_close(&key);
        return buf_puts(o, "{}");
    }
    for (;;) {
        const char *ke;
        size_t off = o->len;

        skip_ws(c);
        if (c->p >= c->end || *c->p != '"' || !(ke = jsonskip_string(c->p, c->end))) {
            rc = -EINVAL;
            break;
        }
        buf_reset(&key);
        if ((rc = jsonx_string_decode(c->p, ke, &key)) < 0 ||
            (rc = jsonx_put_string(o, key.ptr ? key.ptr : "", key.len)) < 0)
            break;
        c->p = ke;
        if (n == cap) {
            struct member *v = realloc(m, (cap = cap ? cap * 2 : 8) * sizeof(*m));

            if (!v) {
                rc = -ENOMEM;
                break;
            }
            m = v;
        }
        m[n].off = off - mark;
        m[n].klen = o->len - off;
        skip_ws(c);
        if (c->p >= c->end || *c->p != ':') {
            rc = -EINVAL;
            break;
        }
        c->p++;
        if ((rc = buf_putc(o, ':')) < 0 || (rc = value(c)) < 0)
            break;
        m[n].len = o->len - off;
        n++;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            break;
        }
        rc = -EINVAL;
        break;
    }
    buf_close(&key);
    if (rc == 0 && !(copy = malloc(o->len - mark + 1)))
        rc = -ENOMEM;
    if (rc == 0) {
        memcpy(copy, o->ptr + mark, o->len - mark);
        qsort_r(m, n, sizeof(*m), cmp_member, copy);
        buf_truncate(o, mark);
        rc = buf_putc(o, '{');
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = buf_putc(o, ',');
            if (rc == 0)
                rc = buf_append(o, copy + m[i].off, m[i].len);
        }
        if (rc == 0)
            rc = buf_putc(o, '}');
    }
    free(copy);
    free(m);
    return rc;
}

static int array(struct canon *c)
{
    struct buf *o = c->out;
    int rc = buf_putc(o, '[');

    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return rc ? rc : buf_putc(o, ']');
    }
    for (bool first = true; rc == 0; first = false) {
        if (!first)
            rc = buf_putc(o, ',');
        if (rc == 0)
            rc = value(c);
        if (rc < 0)
            break;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return buf_putc(o, ']');
        }
        rc = -EINVAL;
    }
    return rc;
}

static int literal(struct canon *c, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return -EINVAL;
    c->p += n;
    return buf_puts(c->out, word);
}

static int value(struct canon *c)
{
    int rc;

    skip_ws(c);
    if (c->p >= c->end)
        return -EINVAL;
    if (++c->depth > CANON_MAX_DEPTH)
        return -ELOOP;
    switch (*c->p) {
    case '{': rc = object(c); break;
    case '[': rc = array(c); break;
    case '"': {
        const char *e = jsonskip_string(c->p, c->end);
        struct buf s;

        if (!e)
            return -EINVAL;
        buf_init(&s, BUF_NOMAX);
        rc = jsonx_string_decode(c->p, e, &s);
        if (rc == 0)
            rc = jsonx_put_string(c->out, s.ptr ? s.ptr : "", s.len);
        buf_close(&s);
        c->p = e;
        break;
    }
    case 't': rc = literal(c, "true"); break;
    case 'f': rc = literal(c, "false"); break;
    case 'n': rc = literal(c, "null"); break;
    default: rc = number(c); break;
    }
    c->depth--;
    return rc;
}

int verify_canon(const char *p, size_t len, struct buf *out)
{
    struct canon c = { p, p + len, out, 0 };
    size_t mark = out->len;
    int rc = value(&c);

    if (rc == 0) {
        skip_ws(&c);
        if (c.p != c.end)
            rc = -EINVAL;
    }
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

bool verify_json_same(const char *a, size_t alen, const char *b, size_t blen)
{
    struct buf ca, cb;
    bool same;

    buf_init(&ca, BUF_NOMAX);
    buf_init(&cb, BUF_NOMAX);
    if (verify_canon(a, alen, &ca) == 0 && verify_canon(b, blen, &cb) == 0)
        same = ca.len == cb.len && memcmp(ca.ptr, cb.ptr, ca.len) == 0;
    else /* not JSON we can read (or an absurd exponent): only the same text is the same */
        same = alen == blen && memcmp(a, b, alen) == 0;
    buf_close(&ca);
    buf_close(&cb);
    return same;
}

uint64_t verify_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64, then a murmur3 finaliser */

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1; /* 0 marks an empty slot (idset) or "no item" (candidates) */
}

/* ---- the _mget reply -------------------------------------------------------- */

/* The member name at p (a string) equals name, as the engines write names (no escapes). */
static bool name_is(const char *p, const char *e, const char *name)
{
    size_t n = strlen(name);

    return (size_t)(e - p) == n + 2 && memcmp(p + 1, name, n) == 0;
}

/* Each member of the object at p: cb(name start, name end, value start, value end). */
typedef int member_cb(void *arg, const char *k, const char *ke, const char *v, const char *ve);

static int each_member(const char *p, const char *end, member_cb *cb, void *arg)
{
    p = jsonskip_ws(p, end);
    if (p >= end || *p != '{')
        return -EPROTO;
    p = jsonskip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    for (;;) {
        const char *k = p, *ke = jsonskip_string(p, end), *v, *ve;
        int rc;

        if (p >= end || *p != '"' || !ke)
            return -EPROTO;
        p = jsonskip_ws(ke, end);
        if (p >= end || *p != ':')
            return -EPROTO;
        v = jsonskip_ws(p + 1, end);
        if (!(ve = jsonskip_value(v, end)) || ve == v)
            return -EPROTO;
        if ((rc = cb(arg, k, ke, v, ve)) != 0)
            return rc;
        p = jsonskip_ws(ve, end);
        if (p < end && *p == ',') {
            p = jsonskip_ws(p + 1, end);
            continue;
        }
        return p < end && *p == '}' ? 0 : -EPROTO;
    }
}

struct got_walk {
    struct verify_got g;
    bool has_id;
};

static int got_member(void *arg, const char *k, const char *ke, const char *v, const char *ve)
{
    struct got_walk *w = arg;

    if (name_is(k, ke, "_id")) {
        struct buf id;
        int rc;

        buf_init(&id, DOC_ID_MAX * 6 + 1);
        rc = jsonx_string_decode(v, ve, &id);
        if (rc == 0 && id.len <= DOC_ID_MAX) {
            memcpy(w->g.id, id.ptr ? id.ptr : "", id.len);
            w->g.id[id.len] = '\0';
            w->g.id_len = id.len;
            w->has_id = true;
        }
        buf_close(&id);
    } else if (name_is(k, ke, "found")) {
        w->g.found = ve - v == 4 && memcmp(v, "true", 4) == 0;
    } else if (name_is(k, ke, "_version")) {
        char num[24];
        size_t n = (size_t)(ve - v);

        if (n < sizeof(num)) {
            memcpy(num, v, n);
            num[n] = '\0';
            w->g.version = strtoll(num, NULL, 10);
        }
    } else if (name_is(k, ke, "_source")) {
        w->g.src = v;
        w->g.src_len = (size_t)(ve - v);
    } else if (name_is(k, ke, "error")) {
        w->g.error = v;
        w->g.error_len = (size_t)(ve - v);
    }
    return 0;
}

struct docs_walk {
    verify_got_cb *cb;
    void *arg;
    bool seen;
};

static int docs_member(void *arg, const char *k, const char *ke, const char *v, const char *ve)
{
    struct docs_walk *dw = arg;

    if (!name_is(k, ke, "docs"))
        return 0;
    if (*v != '[')
        return -EPROTO;
    dw->seen = true;
    v = jsonskip_ws(v + 1, ve);
    if (v < ve && *v == ']')
        return 0;
    for (;;) {
        const char *e = jsonskip_value(v, ve);
        struct got_walk w = { 0 };
        int rc;

        if (!e || e == v)
            return -EPROTO;
        if ((rc = each_member(v, e, got_member, &w)) < 0)
            return rc;
        if (!w.has_id)
            return -EPROTO;
        if ((rc = dw->cb(dw->arg, &w.g)) != 0)
            return rc;
        v = jsonskip_ws(e, ve);
        if (v < ve && *v == ',') {
            v = jsonskip_ws(v + 1, ve);
            continue;
        }
        return v < ve && *v == ']' ? 0 : -EPROTO;
    }
}

int verify_parse_mget(const char *body, size_t len, verify_got_cb *cb, void *arg)
{
    struct docs_walk dw = { cb, arg, false };
    int rc = each_member(body, body + len, docs_member, &dw);

    return rc == 0 && !dw.seen ? -EPROTO : rc;
}

struct member_find {
    const char *name;
    size_t nlen;
    const char *v;
    size_t vlen;
    struct buf key;
};

static int find_member(void *arg, const char *k, const char *ke, const char *v, const char *ve)
{
    struct member_find *f = arg;

    buf_reset(&f->key);
    if (jsonx_string_decode(k, ke, &f->key) == 0 && f->key.len == f->nlen &&
        memcmp(f->key.ptr ? f->key.ptr : "", f->name, f->nlen) == 0) {
        f->v = v;
        f->vlen = (size_t)(ve - v);
        return 1;
    }
    return 0;
}

const char *verify_member(const char *p, size_t len, const char *name, size_t nlen,
                          size_t *vlen)
{
    struct member_find f = { name, nlen, NULL, 0, { 0 } };
    int rc;

    buf_init(&f.key, BUF_NOMAX);
    rc = each_member(p, p + len, find_member, &f);
    buf_close(&f.key);
    if (rc != 1)
        return NULL;
    *vlen = f.vlen;
    return f.v;
}

/* ---- the scanned ids ---------------------------------------------------------- */

/* Open addressing on the hashes themselves; at most 3/4 full. */
int verify_idset_add(struct verify_idset *s, uint64_t h)
{
    if ((s->len + 1) * 4 > s->cap * 3) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        uint64_t *v = calloc(ncap, sizeof(*v));

        if (!v)
            return -ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            size_t j = (size_t)(s->slot[i] & (ncap - 1));

            if (!s->slot[i])
                continue;
            while (v[j])
                j = (j + 1) & (ncap - 1);
            v[j] = s->slot[i];
        }
        free(s->slot);
        s->slot = v;
        s->cap = ncap;
    }
    for (size_t j = (size_t)(h & (s->cap - 1));; j = (j + 1) & (s->cap - 1)) {
        if (s->slot[j] == h)
            return 0;
        if (!s->slot[j]) {
            s->slot[j] = h;
            s->len++;
            return 0;
        }
    }
}

bool verify_idset_has(const struct verify_idset *s, uint64_t h)
{
    if (!s->cap)
        return false;
    for (size_t j = (size_t)(h & (s->cap - 1));; j = (j + 1) & (s->cap - 1)) {
        if (s->slot[j] == h)
            return true;
        if (!s->slot[j])
            return false;
    }
}

void verify_idset_free(struct verify_idset *s)
{
    free(s->slot);
    memset(s, 0, sizeof(*s));
}
