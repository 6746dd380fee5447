#include "indexer/encitem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "indexer/dbehead.h"

#define HEAD "aws_dbe_head"
#define RESERVED "aws_dbe_"  /* the SDK's prefix: never signed, never configured */
#define BEACON "aws_dbe_b_"  /* searchable-encryption beacons */
#define REPLICA "aws:rep:"   /* written by DynamoDB (legacy global tables) */
#define LEGACY_DESC "*amzn-ddb-map-desc*"
#define LEGACY_SIG "*amzn-ddb-map-sig*"
#define CIPHER_MIN 18        /* type id (2) + AES-GCM tag (16): an empty plaintext */

/* One member of the item. */
struct mem {
    const char *key;
    size_t klen;
    json_t *av;
    char type;       /* 'B', 'b' for BS, 'o' any other */
    bool key_attr;   /* a key attribute of the table */
    bool cipher;     /* may be the SDK's ciphertext (see looks_encrypted) */
    size_t u16;      /* the name's length in UTF-16 code units */
    size_t pos;      /* its position in the iteration */
};

static bool named(const struct mem *m, const char *name)
{
    return m->klen == strlen(name) && memcmp(m->key, name, m->klen) == 0;
}

static bool prefixed(const struct mem *m, const char *prefix)
{
    size_t n = strlen(prefix);

    return m->klen >= n && memcmp(m->key, prefix, n) == 0;
}

static void fail(struct encitem *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct encitem *e, const char *fmt, ...)
{
    va_list ap;

    e->failed = true;
    va_start(ap, fmt);
    vsnprintf(e->why, sizeof(e->why), fmt, ap);
    va_end(ap);
}

static void leave_out(struct encitem *e, const struct mem *m, bool sdk)
{
    if (e->out[m->pos])
        return;
    e->out[m->pos] = 1;
    if (sdk)
        e->sdk_left_out++;
    else
        e->left_out++;
}

/* The one "T": value of an attribute value: 'B' (*val its text), 'b' for
 * BS, 'o' for any other (or a malformed value, which transform refuses). */
static char type_of(json_t *av, json_t **val)
{
    void *it = json_object_size(av) == 1 ? json_object_iter(av) : NULL;
    size_t tlen = it ? json_object_iter_key_len(it) : 0;
    const char *t = it ? json_object_iter_key(it) : "";

    *val = it ? json_object_iter_value(it) : NULL;
    if (tlen == 1 && t[0] == 'B' && json_is_string(*val))
        return 'B';
    if (tlen == 2 && t[0] == 'B' && t[1] == 'S')
        return 'b';
    return 'o';
}

/* The length in UTF-16 code units of a UTF-8 (or WTF-8) name: one per
 * sequence, two for a 4-byte one; a stray byte counts one. */
static size_t utf16_len(const char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if ((c & 0xc0) != 0x80)
            n += c >= 0xf0 ? 2 : 1;
    }
    return n;
}

/* Whether the B text s could hold the SDK's encrypted terminal: at least
 * CIPHER_MIN bytes, starting with the type id of a DynamoDB type
 * (specification dynamodb-encryption-client/ddb-attribute-serialization.md). */
static bool looks_encrypted(const char *s, size_t len)
{
    static const uint16_t ids[] = { 0x0000, 0x0001, 0x0002, 0xffff, 0x0004,
                                    0x0101, 0x0102, 0x01ff, 0x0200, 0x0300 };
    unsigned char head[3];
    size_t pad;
    uint16_t id;

    if (len % 4 || len < 4)
        return false;
    pad = s[len - 1] != '=' ? 0 : s[len - 2] == '=' ? 2 : 1;
    if (len / 4 * 3 - pad < CIPHER_MIN || b64_decode(s, 4, head) != 3)
        return false;
    id = (uint16_t)(head[0] << 8 | head[1]);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (id == ids[i])
            return true;
    return false;
}

/* A B value's bytes (malloc'd, *p NULL when empty): 0, -EINVAL (not a B
 * value, or not base64) or -ENOMEM. */
static int value_bytes(json_t *av, unsigned char **p, size_t *len)
{
    json_t *v;
    const char *s;
    size_t slen;
    ssize_t n;

    *p = NULL;
    *len = 0;
    if (type_of(av, &v) != 'B')
        return -EINVAL;
    s = json_string_value(v);
    slen = json_string_length(v);
    if (slen == 0)
        return 0;
    if (!(*p = malloc(B64_DECODED_MAX(slen))))
        return -ENOMEM;
    if ((n = b64_decode(s, slen, *p)) < 0) {
        free(*p);
        *p = NULL;
        return -EINVAL;
    }
    *len = (size_t)n;
    return 0;
}

/* Canonical path order of top-level attributes (see encitem.h). */
static int canon_cmp(const void *a, const void *b)
{
    const struct mem *x = *(const struct mem *const *)a, *y = *(const struct mem *const *)b;
    int r;

    if (x->u16 != y->u16)
        return x->u16 < y->u16 ? -1 : 1;
    r = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    return r ? r : (x->klen > y->klen) - (x->klen < y->klen);
}

static bool fits(const struct mem *c, unsigned char legend_byte)
{
    return legend_byte != 'e' || c->cipher;
}

/* Matches the legend (m bytes) to the candidates c[0..n) in canonical
 * order: a candidate is either paired with the next legend byte (signed)
 * or skipped (unsigned; never a key attribute), and an 'e' pairs only with
 * a candidate that may be ciphertext.  Sets may[i] when some full match
 * pairs c[i] with an 'e'.  Returns 0, 1 when no full match exists, or
 * -ENOMEM.
 *
 * fwd[i][j]: c[0..i) can take legend[0..j); bwd[i][j]: c[i..n) can take
 * legend[j..m).  Only j in [i - (n - m), i] can be reached, so each row
 * keeps w = n - m + 1 cells, indexed by d = i - j. */
static int match(struct mem *const *c, size_t n, const unsigned char *legend, size_t m,
                 unsigned char *may)
{
    size_t w, cells;
    unsigned char *fwd, *bwd;
    bool any_e = memchr(legend, 'e', m) != NULL;

    if (n < m)
        return 1;
    w = n - m + 1;
    cells = (n + 1) * w;
    if (w > ENCITEM_MATCH_MAX / (n + 1)) {
        for (size_t i = 0; i < n; i++)
            may[i] = any_e && c[i]->cipher;
        return 0;
    }
    fwd = calloc(cells, 1);
    bwd = calloc(cells, 1);
    if (!fwd || !bwd) {
        free(fwd);
        free(bwd);
        return -ENOMEM;
    }
#define F(i, d) fwd[(i) * w + (d)]
#define B(i, d) bwd[(i) * w + (d)]
    F(0, 0) = 1;
    for (size_t i = 0; i < n; i++) {
        for (size_t d = 0; d < w && d <= i; d++) {
            size_t j = i - d;

            if (j > m || !F(i, d))
                continue;
            if (!c[i]->key_attr && d + 1 < w)
                F(i + 1, d + 1) = 1; /* c[i] unsigned */
            if (j < m && fits(c[i], legend[j]))
                F(i + 1, d) = 1; /* c[i] takes legend[j] */
        }
    }
    B(n, w - 1) = 1;
    for (size_t i = n; i-- > 0;) {
        for (size_t d = 0; d < w && d <= i; d++) {
            size_t j = i - d;

            if (j > m)
                continue;
            if ((!c[i]->key_attr && d + 1 < w && B(i + 1, d + 1)) ||
                (j < m && fits(c[i], legend[j]) && B(i + 1, d)))
                B(i, d) = 1;
        }
    }
    if (!F(n, w - 1)) {
        free(fwd);
        free(bwd);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < w && d <= i && !may[i]; d++) {
            size_t j = i - d;

            may[i] = j < m && legend[j] == 'e' && F(i, d) && fits(c[i], 'e') && B(i + 1, d);
        }
#undef F
#undef B
    free(fwd);
    free(bwd);
    return 0;
}

static int dbesdk(struct encitem *e, struct mem *m, size_t n, json_t *head)
{
    struct mem **c = NULL;
    unsigned char *bytes = NULL, *may = NULL;
    struct dbehead h;
    size_t len, nc = 0;
    int rc;

    for (size_t i = 0; i < n; i++)
        if (prefixed(&m[i], RESERVED) && !prefixed(&m[i], BEACON))
            leave_out(e, &m[i], true);
    rc = value_bytes(head, &bytes, &len);
    if (rc == -EINVAL) {
        fail(e, HEAD " is not a base64 B value");
        return 0;
    }
    if (rc < 0)
        return rc;
    rc = dbehead_parse(bytes, len, &h);
    if (rc < 0) {
        fail(e, HEAD ": %s", dbehead_strerror(rc));
        free(bytes);
        return 0;
    }
    c = calloc(n ? n : 1, sizeof(*c));
    may = calloc(n ? n : 1, 1);
    if (!c || !may) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!prefixed(&m[i], RESERVED) && !prefixed(&m[i], REPLICA))
            c[nc++] = &m[i];
    qsort(c, nc, sizeof(*c), canon_cmp);
    rc = match(c, nc, h.legend, h.legend_len, may);
    if (rc == 1) {
        fail(e, "the encrypt legend (%zu signed attributes) does not fit the item's %zu attributes",
             h.legend_len, nc);
        rc = 0;
    } else if (rc == 0) {
        for (size_t i = 0; i < nc; i++)
            if (may[i])
                leave_out(e, c[i], false);
    }
out:
    free(bytes);
    free(c);
    free(may);
    return rc;
}

static int legacy(struct encitem *e, struct mem *m, size_t n, json_t *desc)
{
    unsigned char *bytes = NULL;
    bool encrypted = false;
    size_t len;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (named(&m[i], LEGACY_DESC) || named(&m[i], LEGACY_SIG))
            leave_out(e, &m[i], true);
    if (desc) {
        rc = value_bytes(desc, &bytes, &len);
        if (rc == -EINVAL) {
            fail(e, LEGACY_DESC " is not a base64 B value");
            return 0;
        }
        if (rc < 0)
            return rc;
        rc = dbehead_legacy_parse(bytes, len, &encrypted);
        free(bytes);
        if (rc < 0) {
            fail(e, LEGACY_DESC ": %s", dbehead_strerror(rc));
            return 0;
        }
    }
    for (size_t i = 0; encrypted && i < n; i++)
        if (m[i].type == 'B' && !m[i].key_attr)
            leave_out(e, &m[i], false);
    return 0;
}

static bool is_key(const struct encitem_keys *k, const char *name, size_t len)
{
    return (k->hash && len == k->hash_len && memcmp(name, k->hash, len) == 0) ||
           (k->range && len == k->range_len && memcmp(name, k->range, len) == 0);
}

int encitem_classify(json_t *item, const struct encitem_keys *keys, struct encitem *e)
{
    json_t *head = json_object_getn(item, HEAD, strlen(HEAD));
    json_t *desc = json_object_getn(item, LEGACY_DESC, strlen(LEGACY_DESC));
    json_t *sig = json_object_getn(item, LEGACY_SIG, strlen(LEGACY_SIG));
    struct mem *m;
    const char *k;
    size_t klen, i = 0;
    json_t *av;
    int rc;

    memset(e, 0, sizeof(*e));
    if (!json_is_object(item) || (!head && !desc && !sig))
        return 0;
    e->kind = head ? ENCITEM_DBESDK : ENCITEM_LEGACY;
    e->n = json_object_size(item);
    m = calloc(e->n, sizeof(*m));
    e->out = calloc(e->n, 1);
    if (!m || !e->out) {
        free(m);
        return -ENOMEM;
    }
    json_object_keylen_foreach(item, k, klen, av) {
        json_t *v;

        m[i] = (struct mem){ .key = k, .klen = klen, .av = av, .type = type_of(av, &v),
                             .key_attr = is_key(keys, k, klen), .u16 = utf16_len(k, klen),
                             .pos = i };
        m[i].cipher = m[i].type == 'B' && !m[i].key_attr &&
                      looks_encrypted(json_string_value(v), json_string_length(v));
        i++;
    }
    rc = head ? dbesdk(e, m, e->n, head) : legacy(e, m, e->n, desc);
    for (i = 0; rc == 0 && e->failed && i < e->n; i++)
        if ((m[i].type == 'B' || m[i].type == 'b') && !m[i].key_attr)
            leave_out(e, &m[i], false);
    free(m);
    return rc;
}

void encitem_close(struct encitem *e)
{
    free(e->out);
    e->out = NULL;
}
