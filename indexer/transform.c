#include "indexer/transform.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/b64.h"
#include "indexer/bulk.h"
#include "indexer/ddbnum.h"
#include "indexer/transform_int.h"

#define SHOW_MAX 40        /* bytes of a bad value quoted in an error */
#define LOCAL_MEMBERS 8    /* members of an object named without an allocation */

/* Metadata fields: a top-level name that is one of these, or whose first
 * dot-separated segment is one, is refused by Elasticsearch 8 or OpenSearch 2
 * ("Field [_id] is a metadata field and cannot be added inside a document").
 * Both engines' lists together, as their IndicesModule and default plugins
 * register them (tests/tools/ENGINE-RULES.md, section 1): _tsid through
 * _inference_fields are Elasticsearch's, _size OpenSearch's (mapper-size,
 * prepackaged on Amazon OpenSearch Service).  Names the engines no longer
 * reserve (_type, _uid, _parent, _all, _timestamp, _ttl, _primary_term,
 * _meta) are accepted, so kept. */
static const char *const meta_fields[] = {
    "_id", "_index", "_routing", "_source", "_ignored", "_version", "_seq_no", "_nested_path",
    "_field_names", "_data_stream_timestamp", "_doc_count", "_feature", "_tsid",
    "_ts_routing_hash", "_index_mode", "_ignored_source", "_tier", "_inference_fields", "_size",
};

struct seg {
    const char *key; /* NULL: an array element */
    size_t klen;
    size_t idx;
};

struct ctx {
    const struct transform_cfg *cfg;
    struct buf *err;
    const char *what; /* "record <seq>" or "item" */
    struct seg path[TRANSFORM_MAX_DEPTH + 2];
    int depth;          /* entries used in path */
    bool canon;         /* canonical JSON (for HMAC): numbers canonical, members sorted */
    bool secret;        /* inside an hmac attribute: never quote a value */
    bool failed;
};

static const char hexd[] = "0123456789abcdef";

static void put_sanitized(struct buf *b, const char *s, size_t len, size_t max)
{
    for (size_t i = 0; i < len && i < max; i++)
        buf_putc(b, (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i]);
    if (len > max)
        buf_puts(b, "...");
}

/* Records the first failure: "<what>: attribute a.b[2]: <message>". */
__attribute__((format(printf, 2, 3))) static void fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return;
    c->failed = true;
    if (!c->err)
        return;
    buf_reset(c->err);
    buf_printf(c->err, "%s: ", c->what);
    if (c->depth > 0) {
        buf_puts(c->err, "attribute ");
        for (int i = 0; i < c->depth; i++) {
            const struct seg *s = &c->path[i];

            if (s->key) {
                if (i > 0)
                    buf_putc(c->err, '.');
                put_sanitized(c->err, s->key, s->klen, 64);
            } else {
                buf_printf(c->err, "[%zu]", s->idx);
            }
        }
        buf_puts(c->err, ": ");
    }
    va_start(ap, fmt);
    buf_vprintf(c->err, fmt, ap);
    va_end(ap);
}

/* Quotes a bad value into the error, unless it belongs to an hmac attribute. */
static void fail_value(struct ctx *c, const char *msg, const char *s, size_t len)
{
    struct buf show;

    if (c->secret || !s) {
        fail(c, "%s", msg);
        return;
    }
    buf_init(&show, 0);
    put_sanitized(&show, s, len, SHOW_MAX);
    fail(c, "%s: \"%s\"", msg, show.ptr ? show.ptr : "");
    buf_close(&show);
}

static void fail_buf(struct ctx *c, int rc, const struct buf *b)
{
    if (rc == -E2BIG)
        fail(c, "document larger than %zu bytes", b->max);
    else
        fail(c, "out of memory");
}

bool tf_in_list(const char *const *list, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strlen(list[i]) == len && memcmp(list[i], name, len) == 0)
            return true;
    return false;
}

/* A name given with its length, 0 meaning strlen (struct transform_cfg). */
size_t tf_name_len(const char *name, size_t len)
{
    return len ? len : name ? strlen(name) : 0;
}

static bool type_is(const char *t, size_t tlen, const char *want)
{
    return tlen == strlen(want) && memcmp(t, want, tlen) == 0;
}

/* A JSON string value equal to want, compared whole. */
static bool str_is(json_t *v, const char *want)
{
    size_t len = json_string_length(v);

    return json_is_string(v) && len == strlen(want) && memcmp(json_string_value(v), want, len) == 0;
}

/* ---- text ---- */

/* The length of the UTF-8 sequence at s (len > 0), its code point in *cp; 0
 * when s does not start with one (a stray byte, a truncated or overlong form,
 * a surrogate, above U+10FFFF). */
size_t tf_utf8_char(const char *str, size_t len, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t c = s[0], min;
    size_t n;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, c &= 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, c &= 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

bool tf_utf8_valid(const char *s, size_t len)
{
    uint32_t cp;

    for (size_t i = 0, n; i < len; i += n)
        if ((n = tf_utf8_char(s + i, len - i, &cp)) == 0)
            return false;
    return true;
}

/* Java's Character.isWhitespace (U+0009..U+000D, U+001C..U+0020, and the
 * Unicode space, line and paragraph separators except the no-break ones):
 * the engines, in Java, refuse a name segment made only of these.  The one
 * place to change if their test turns out to differ. */
static bool java_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x2006) || (cp >= 0x2008 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x205f || cp == 0x3000;
}

/* ---- names the engines refuse (see transform.h) ---- */

static bool blank(const char *s, size_t len)
{
    uint32_t cp;

    for (size_t i = 0, n; i < len; i += n)
        if ((n = tf_utf8_char(s + i, len - i, &cp)) == 0 || !java_space(cp))
            return false;
    return true;
}

static bool is_meta_field(const char *s, size_t len)
{
    if (len < 2 || s[0] != '_') /* every one starts with '_' */
        return false;
    for (size_t i = 0; i < sizeof(meta_fields) / sizeof(meta_fields[0]); i++)
        if (type_is(s, len, meta_fields[i]))
            return true;
    return false;
}

bool tf_name_refused(const char *name, size_t len, bool top)
{
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        if (blank(name + start, i - start) || (top && start == 0 && is_meta_field(name, i)))
            return true;
        start = i + 1;
    }
    return false;
}

/* "%" and the name with every '%', '.' and whitespace character written as
 * the %XX of its UTF-8 bytes. */
static int put_renamed(struct buf *out, const char *name, size_t len)
{
    static const char hexu[] = "0123456789ABCDEF";
    int rc = buf_putc(out, '%');
    uint32_t cp;

    for (size_t i = 0, n; rc == 0 && i < len; i += n) {
        n = tf_utf8_char(name + i, len - i, &cp);
        if (n == 0) {
            n = 1;
            rc = buf_putc(out, name[i]);
        } else if (cp == '%' || cp == '.' || java_space(cp)) {
            for (size_t k = 0; rc == 0 && k < n; k++) {
                unsigned char b = (unsigned char)name[i + k];
                char pct[3] = { '%', hexu[b >> 4], hexu[b & 15] };

                rc = buf_append(out, pct, sizeof(pct));
            }
        } else {
            rc = buf_append(out, name + i, n);
        }
    }
    return rc;
}

/* ---- base64 ---- */

/* Appends the bytes of s, which must be b64_valid. */
static int decode_b64(const char *s, size_t len, struct buf *out)
{
    int rc = buf_reserve(out, B64_DECODED_MAX(len));
    ssize_t n;

    if (rc < 0)
        return rc;
    n = b64_decode(s, len, (unsigned char *)out->ptr + out->len);
    if (n < 0)
        return (int)n;
    out->len += (size_t)n;
    out->ptr[out->len] = '\0'; /* buf's content stays a C string */
    return 0;
}

/* ---- values ---- */

static const char *string_of(json_t *v, size_t *len)
{
    *len = json_string_length(v);
    return json_string_value(v);
}

/* The single "T": value member of an attribute value; T may hold NUL. */
static int descriptor(struct ctx *c, json_t *av, const char **type, size_t *tlen, json_t **val)
{
    void *it;

    if (!json_is_object(av) || json_object_size(av) != 1) {
        fail(c, "not a DynamoDB attribute value (an object with one type descriptor)");
        return -EINVAL;
    }
    it = json_object_iter(av);
    *type = json_object_iter_key(it);
    *tlen = json_object_iter_key_len(it);
    *val = json_object_iter_value(it);
    return 0;
}

/* S, N or B: the scalar types, which keys use too. */
static char scalar_type(const char *t, size_t tlen)
{
    return type_is(t, tlen, "S") || type_is(t, tlen, "N") || type_is(t, tlen, "B") ? t[0] : 0;
}

static int emit_value(struct ctx *c, json_t *av, struct buf *out);
static int put_hmac(struct ctx *c, json_t *av, struct buf *out, bool quote);

static int emit_scalar(struct ctx *c, char t, json_t *v, struct buf *out)
{
    const char *s;
    size_t len;
    int rc;

    if (!json_is_string(v)) {
        fail(c, "%s value is not a string", t == 'S' ? "S" : t == 'N' ? "N" : "B");
        return -EINVAL;
    }
    s = string_of(v, &len);
    switch (t) {
    case 'S':
        rc = bulk_json_string(out, s, len);
        break;
    case 'N':
        rc = c->canon ? ddbnum_canonical(s, len, out) : ddbnum_json(s, len, out);
        if (rc == -EINVAL) {
            fail_value(c, "invalid number", s, len);
            return rc;
        }
        break;
    default:
        if (!b64_valid(s, len)) {
            fail_value(c, "invalid base64 in B value", s, len);
            return -EINVAL;
        }
        rc = bulk_json_string(out, s, len);
        break;
    }
    if (rc < 0)
        fail_buf(c, rc, out);
    return rc;
}

/* Element i of the array v, with its index on the path while it is
 * written: an attribute value (t 0: an L) or a set's S, N or B text. */
static int emit_element(struct ctx *c, char t, json_t *v, size_t i, struct buf *out)
{
    json_t *e = json_array_get(v, i);
    int rc;

    c->path[c->depth] = (struct seg){ .idx = i };
    c->depth++;
    rc = t ? emit_scalar(c, t, e, out) : emit_value(c, e, out);
    if (rc == 0)
        c->depth--;
    return rc;
}

/* The elements of the array v in the order received (t as for
 * emit_element). */
static int emit_array(struct ctx *c, char t, json_t *v, struct buf *out)
{
    size_t n = json_array_size(v);
    int rc = buf_putc(out, '[');

    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = buf_putc(out, ',');
        if (rc == 0)
            rc = emit_element(c, t, v, i, out);
    }
    if (rc == 0)
        rc = buf_putc(out, ']');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    return rc;
}

struct slice {
    size_t off, len;
    const char *base;
};

static int slice_cmp(const void *a, const void *b)
{
    const struct slice *x = a, *y = b;
    int r = memcmp(x->base + x->off, y->base + y->off, x->len < y->len ? x->len : y->len);

    return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* SS, NS, BS: arrays of S, N or B texts.  In canonical mode the elements
 * are sorted by their text, because a set has no order. */
static int emit_set(struct ctx *c, char t, json_t *v, struct buf *out)
{
    struct buf tmp;
    struct slice *sl = NULL;
    size_t n = json_array_size(v);
    int rc = 0;

    if (!json_is_array(v)) {
        fail(c, "%cS value is not an array", t);
        return -EINVAL;
    }
    if (!c->canon || n < 2)
        return emit_array(c, t, v, out);
    buf_init(&tmp, out->max);
    sl = calloc(n, sizeof(*sl));
    if (!sl)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sl[i].off = tmp.len;
        rc = emit_element(c, t, v, i, &tmp);
        sl[i].len = tmp.len - sl[i].off;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        sl[i].base = tmp.ptr;
    if (rc == 0)
        qsort(sl, n, sizeof(*sl), slice_cmp);
    if (rc == 0)
        rc = buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = buf_putc(out, ',');
        if (rc == 0)
            rc = buf_append(out, tmp.ptr + sl[i].off, sl[i].len);
    }
    if (rc == 0)
        rc = buf_putc(out, ']');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    free(sl);
    buf_close(&tmp);
    return rc;
}

struct member {
    const char *key; /* the name received */
    size_t klen;
    json_t *val;
    const char *name; /* the name written: key, or its new name */
    size_t nlen;
    size_t noff; /* a new name's offset in the names buffer */
    bool refused;
};

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int r = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

    return r ? r : (x->klen > y->klen) - (x->klen < y->klen);
}

static int member_ptr_cmp(const void *a, const void *b)
{
    return member_cmp(*(const struct member *const *)a, *(const struct member *const *)b);
}

/* Gives each member of one object the name it is written under: its own,
 * or, when the engines refuse it, its new name (the rule in transform.h).
 * New names live in names; c->depth is the object's depth. */
static int name_members(struct ctx *c, struct member *m, size_t n, bool top, struct buf *names)
{
    struct member **order = NULL;
    json_t *taken = NULL;
    struct buf cand;
    size_t nref = 0, k = 0;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        m[i].name = m[i].key;
        m[i].nlen = m[i].klen;
        m[i].refused = tf_name_refused(m[i].key, m[i].klen, top);
        nref += m[i].refused;
    }
    if (nref == 0)
        return 0;
    buf_init(&cand, 0);
    order = calloc(nref, sizeof(*order));
    taken = json_object(); /* a set of names: jansson keys keep their length */
    if (!order || !taken)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (m[i].refused)
            order[k++] = &m[i];
        else if (json_object_setn_new_nocheck(taken, m[i].key, m[i].klen, json_null()) < 0)
            rc = -ENOMEM;
    }
    if (rc == 0)
        qsort(order, nref, sizeof(*order), member_ptr_cmp);
    for (k = 0; rc == 0 && k < nref; k++) {
        struct member *x = order[k];

        buf_reset(&cand);
        rc = put_renamed(&cand, x->key, x->klen);
        while (rc == 0 && json_object_getn(taken, cand.ptr, cand.len)) {
            rc = buf_putc(&cand, '%');
            if (rc == 0) {
                memmove(cand.ptr + 1, cand.ptr, cand.len - 1);
                cand.ptr[0] = '%';
            }
        }
        if (rc == 0 && json_object_setn_new_nocheck(taken, cand.ptr, cand.len, json_null()) < 0)
            rc = -ENOMEM;
        if (rc == 0) {
            x->noff = names->len;
            x->nlen = cand.len;
            rc = buf_append(names, cand.ptr, cand.len);
        }
        if (rc == 0 && c->cfg->on_rename)
            c->cfg->on_rename(c->cfg->rename_arg, x->key, x->klen, c->depth);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (m[i].refused)
            m[i].name = names->ptr + m[i].noff;
    if (rc < 0)
        fail(c, "out of memory");
    json_decref(taken);
    free(order);
    buf_close(&cand);
    return rc;
}

/* Members of an object, or NULL (out of memory); local when they fit. */
static struct member *members_of(size_t n, struct member *local)
{
    return n <= LOCAL_MEMBERS ? local : calloc(n, sizeof(struct member));
}

static int emit_member(struct ctx *c, const struct member *x, bool first, bool hmac,
                       struct buf *out)
{
    int rc = first ? 0 : buf_putc(out, ',');

    if (rc == 0)
        rc = bulk_json_string(out, x->name, x->nlen);
    if (rc == 0)
        rc = buf_putc(out, ':');
    if (rc < 0)
        return rc;
    if (c->cfg->on_member && !c->canon && !c->secret)
        c->cfg->on_member(c->cfg->member_arg, x->name, x->nlen, c->depth, x->val, hmac);
    c->path[c->depth] = (struct seg){ .key = x->key, .klen = x->klen };
    c->depth++;
    rc = hmac ? put_hmac(c, x->val, out, true) : emit_value(c, x->val, out);
    if (rc == 0)
        c->depth--;
    return rc;
}

/* One object's n members, m from members_of(n, local) (freed here): in
 * the order received, refused names renamed; a map's in canonical mode
 * sorted by name, and names as they are (the text is only hashed).  top:
 * the item's own attributes, the hmac'd ones written hashed. */
static int emit_members(struct ctx *c, struct member *m, size_t n, bool top,
                        struct member *local, struct buf *out)
{
    const struct transform_cfg *cfg = c->cfg;
    struct buf names;
    int rc = 0;

    buf_init(&names, 0);
    if (c->canon && !top)
        qsort(m, n, sizeof(*m), member_cmp);
    else
        rc = name_members(c, m, n, top, &names);
    if (rc == 0)
        rc = buf_putc(out, '{');
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = emit_member(c, &m[i], i == 0,
                         top && tf_in_list(cfg->hmac, cfg->n_hmac, m[i].key, m[i].klen), out);
    if (rc == 0)
        rc = buf_putc(out, '}');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    buf_close(&names);
    if (m != local)
        free(m);
    return rc;
}

static int emit_map(struct ctx *c, json_t *v, struct buf *out)
{
    struct member local[LOCAL_MEMBERS], *m;
    size_t n = json_object_size(v), i = 0, klen;
    const char *k;
    json_t *mv;

    if (!json_is_object(v)) {
        fail(c, "M value is not an object");
        return -EINVAL;
    }
    if (!(m = members_of(n, local))) {
        fail(c, "out of memory");
        return -ENOMEM;
    }
    json_object_keylen_foreach(v, k, klen, mv) {
        m[i++] = (struct member){ .key = k, .klen = klen, .val = mv, .name = k, .nlen = klen };
    }
    return emit_members(c, m, n, false, local, out);
}

static int emit_list(struct ctx *c, json_t *v, struct buf *out)
{
    if (!json_is_array(v)) {
        fail(c, "L value is not an array");
        return -EINVAL;
    }
    return emit_array(c, 0, v, out);
}

/* One attribute value.  The recursion is bounded by TRANSFORM_MAX_DEPTH;
 * path[] has room for one more segment than that, plus a set element. */
static int emit_value(struct ctx *c, json_t *av, struct buf *out)
{
    const char *t;
    size_t tlen;
    json_t *v;
    int rc = descriptor(c, av, &t, &tlen, &v);
    char st;

    if (rc < 0)
        return rc;
    if ((st = scalar_type(t, tlen)))
        return emit_scalar(c, st, v, out);
    if (type_is(t, tlen, "BOOL") || type_is(t, tlen, "NULL")) {
        if (!json_is_boolean(v)) {
            fail(c, "%s value is not a boolean", t);
            return -EINVAL;
        }
        rc = buf_puts(out, t[0] == 'N' ? "null" : json_is_true(v) ? "true" : "false");
        if (rc < 0)
            fail_buf(c, rc, out);
        return rc;
    }
    if (type_is(t, tlen, "SS") || type_is(t, tlen, "NS") || type_is(t, tlen, "BS"))
        return emit_set(c, t[0], v, out);
    if (type_is(t, tlen, "M") || type_is(t, tlen, "L")) {
        if (c->depth > TRANSFORM_MAX_DEPTH) {
            fail(c, "nested deeper than %d levels", TRANSFORM_MAX_DEPTH);
            return -EINVAL;
        }
        return t[0] == 'M' ? emit_map(c, v, out) : emit_list(c, v, out);
    }
    {
        bool secret = c->secret;

        c->secret = false; /* the descriptor is not the value */
        fail_value(c, "unknown type descriptor", t, tlen);
        c->secret = secret;
    }
    return -EINVAL;
}

/* ---- HMAC ---- */

static int put_hex(struct buf *out, const unsigned char *md, size_t n)
{
    char hx[2 * EVP_MAX_MD_SIZE];

    for (size_t i = 0; i < n; i++) {
        hx[2 * i] = hexd[md[i] >> 4];
        hx[2 * i + 1] = hexd[md[i] & 15];
    }
    return buf_append(out, hx, 2 * n);
}

/* The text an attribute's HMAC is computed over (see transform.h). */
static int hmac_text(struct ctx *c, json_t *av, struct buf *text)
{
    const char *t, *s;
    size_t tlen, len;
    json_t *v;
    int rc = descriptor(c, av, &t, &tlen, &v);
    char st;

    if (rc < 0)
        return rc;
    if ((st = scalar_type(t, tlen)) && json_is_string(v)) {
        s = string_of(v, &len);
        if (st == 'S') {
            rc = buf_append(text, s, len);
        } else if (st == 'N') {
            rc = ddbnum_canonical(s, len, text);
            if (rc == -EINVAL) {
                fail(c, "invalid number");
                return rc;
            }
        } else {
            if (!b64_valid(s, len)) {
                fail(c, "invalid base64 in B value");
                return -EINVAL;
            }
            rc = decode_b64(s, len, text);
        }
        if (rc < 0)
            fail_buf(c, rc, text);
        return rc;
    }
    c->canon = true;
    rc = emit_value(c, av, text);
    c->canon = false;
    return rc;
}

/* Appends the hex HMAC of av's text to out (quoted when quote is set). */
static int put_hmac(struct ctx *c, json_t *av, struct buf *out, bool quote)
{
    static const unsigned char nokey[1];
    const struct transform_cfg *cfg = c->cfg;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    struct buf text;
    int rc;

    buf_init(&text, 0);
    c->secret = true;
    rc = hmac_text(c, av, &text);
    c->secret = false;
    if (rc == 0 && !HMAC(EVP_sha256(), cfg->hmac_key_len ? cfg->hmac_key : nokey,
                         (int)cfg->hmac_key_len, text.ptr ? (const unsigned char *)text.ptr : nokey,
                         text.len, md, &mdlen)) {
        fail(c, "HMAC-SHA256 failed");
        rc = -EIO;
    }
    if (text.ptr)
        OPENSSL_cleanse(text.ptr, text.len);
    buf_close(&text);
    if (rc == 0 && quote)
        rc = buf_putc(out, '"');
    if (rc == 0)
        rc = put_hex(out, md, mdlen);
    if (rc == 0 && quote)
        rc = buf_putc(out, '"');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    OPENSSL_cleanse(md, sizeof(md));
    return rc;
}

/* ---- client-side encrypted items ---- */

/* Which members of item client-side encryption keeps out of the document
 * (encitem.h), reported through cfg->on_encrypted; e->out stays NULL with
 * encrypted = as_is.  Release e with encitem_close. */
static int encrypted_members(struct ctx *c, json_t *item, struct encitem *e)
{
    const struct transform_cfg *cfg = c->cfg;
    struct encitem_keys keys = {
        .hash = cfg->hash_key,
        .hash_len = tf_name_len(cfg->hash_key, cfg->hash_key_len),
        .range = cfg->range_key,
        .range_len = tf_name_len(cfg->range_key, cfg->range_key_len),
    };

    memset(e, 0, sizeof(*e));
    if (cfg->encrypted == TRANSFORM_ENCRYPTED_AS_IS)
        return 0;
    if (encitem_classify(item, &keys, e) < 0) {
        fail(c, "out of memory");
        return -ENOMEM;
    }
    if (e->kind != ENCITEM_NONE && cfg->on_encrypted)
        cfg->on_encrypted(cfg->encrypted_arg, e, c->what);
    return 0;
}

/* ---- the document ---- */

static int emit_item(struct ctx *c, json_t *item, struct buf *out)
{
    const struct transform_cfg *cfg = c->cfg;
    struct member local[LOCAL_MEMBERS], *m;
    size_t n = 0, klen, pos = 0;
    struct encitem enc;
    int rc;
    const char *k;
    json_t *av;

    if (!json_is_object(item)) {
        fail(c, "the image is not an object");
        return -EINVAL;
    }
    if (encrypted_members(c, item, &enc) < 0) {
        encitem_close(&enc);
        return -ENOMEM;
    }
    if (!(m = members_of(json_object_size(item), local))) {
        encitem_close(&enc);
        fail(c, "out of memory");
        return -ENOMEM;
    }
    json_object_keylen_foreach(item, k, klen, av) {
        if (encitem_left_out(&enc, pos++))
            continue;
        if (klen >= 8 && memcmp(k, "aws:rep:", 8) == 0)
            continue;
        if (cfg->n_include && !tf_in_list(cfg->include, cfg->n_include, k, klen))
            continue;
        if (tf_in_list(cfg->exclude, cfg->n_exclude, k, klen))
            continue;
        m[n++] = (struct member){ .key = k, .klen = klen, .val = av };
    }
    c->depth = 0;
    rc = emit_members(c, m, n, true, local, out);
    encitem_close(&enc);
    return rc;
}

/* ---- the id ---- */

static int put_escaped(struct buf *b, const char *s, size_t len, char sep)
{
    size_t run = 0;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < len; i++) {
        if (s[i] != sep && s[i] != '\\')
            continue;
        rc = buf_append(b, s + run, i - run);
        if (rc == 0)
            rc = buf_putc(b, '\\');
        run = i; /* the character itself goes out with the next run */
    }
    if (rc == 0)
        rc = buf_append(b, s + run, len - run);
    return rc;
}

/* A key attribute (its attribute value, its S, N or B value in *val and
 * the type in *type), or NULL after fail(). */
static json_t *key_value(struct ctx *c, json_t *keys, const char *name, size_t nlen, char *type,
                         json_t **val)
{
    json_t *av = json_object_getn(keys, name, nlen);
    const char *t;
    size_t tlen;

    if (!av) {
        struct buf show;

        c->depth = 0;
        buf_init(&show, 0);
        put_sanitized(&show, name, nlen, 64);
        fail(c, "key attribute \"%s\" missing", show.ptr ? show.ptr : "");
        buf_close(&show);
        return NULL;
    }
    if (descriptor(c, av, &t, &tlen, val) < 0)
        return NULL;
    if (!(*type = scalar_type(t, tlen)) || !json_is_string(*val)) {
        fail(c, "a key attribute must be S, N or B");
        return NULL;
    }
    return av;
}

int tf_key_part(const struct tf_scalar *k, char sep, struct buf *idb)
{
    struct buf tmp;
    int rc;

    if (k->t == 'B' && !b64_valid(k->s, k->len))
        return -EINVAL;
    if (k->t != 'N')
        return put_escaped(idb, k->s, k->len, sep);
    buf_init(&tmp, TF_ID_BUILD_MAX);
    rc = ddbnum_canonical(k->s, k->len, &tmp);
    if (rc == 0)
        rc = put_escaped(idb, tmp.ptr ? tmp.ptr : "", tmp.len, sep);
    buf_close(&tmp);
    return rc;
}

/* One key value's text (steps 1 and 2 of the id function), appended to idb. */
static int id_part(struct ctx *c, json_t *keys, const char *name, size_t nlen, struct buf *idb)
{
    const struct transform_cfg *cfg = c->cfg;
    struct tf_scalar k;
    json_t *av, *v;
    int rc;

    c->path[0] = (struct seg){ .key = name, .klen = nlen };
    c->depth = 1;
    if (!(av = key_value(c, keys, name, nlen, &k.t, &v)))
        return -EINVAL;
    k.s = string_of(v, &k.len);
    if (tf_in_list(cfg->hmac, cfg->n_hmac, name, nlen)) {
        struct buf tmp;

        buf_init(&tmp, TF_ID_BUILD_MAX);
        rc = put_hmac(c, av, &tmp, false);
        if (rc == 0)
            rc = put_escaped(idb, tmp.ptr ? tmp.ptr : "", tmp.len, cfg->id_sep);
        buf_close(&tmp);
    } else {
        rc = tf_key_part(&k, cfg->id_sep, idb);
        if (rc == -EINVAL)
            fail_value(c, k.t == 'N' ? "invalid number" : "invalid base64 in B value", k.s, k.len);
    }
    if (rc == -E2BIG && !c->failed)
        fail(c, "key too long");
    else if (rc < 0 && !c->failed)
        fail(c, "out of memory");
    c->depth = 0;
    return rc;
}

/* The key text (step 3), appended to out; out unchanged on failure. */
static int key_text(struct ctx *c, json_t *keys, struct buf *out)
{
    const struct transform_cfg *cfg = c->cfg;
    size_t mark = out->len;
    int rc;

    if (!json_is_object(keys)) {
        fail(c, "no key attributes");
        return -EINVAL;
    }
    rc = id_part(c, keys, cfg->hash_key, tf_name_len(cfg->hash_key, cfg->hash_key_len), out);
    if (rc == 0 && cfg->range_key) {
        rc = buf_putc(out, cfg->id_sep);
        if (rc == 0)
            rc = id_part(c, keys, cfg->range_key, tf_name_len(cfg->range_key, cfg->range_key_len),
                         out);
    }
    if (rc < 0 && !c->failed)
        fail(c, "key too long");
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

/* One key attribute as DynamoDB JSON: "name":{"T":"text"}. */
static int put_key_json(struct buf *out, const char *name, size_t nlen, const struct tf_scalar *k)
{
    char t[1] = { k->t };
    int rc = bulk_json_string(out, name, nlen);

    if (rc == 0)
        rc = buf_puts(out, ":{");
    if (rc == 0)
        rc = bulk_json_string(out, t, 1);
    if (rc == 0)
        rc = buf_putc(out, ':');
    if (rc == 0 && k->t == 'N') {
        rc = buf_putc(out, '"');
        if (rc == 0)
            rc = ddbnum_canonical(k->s, k->len, out);
        if (rc == 0)
            rc = buf_putc(out, '"');
    } else if (rc == 0) {
        rc = bulk_json_string(out, k->s, k->len);
    }
    if (rc == 0)
        rc = buf_putc(out, '}');
    return rc;
}

int tf_put_keys(struct buf *out, const struct transform_cfg *cfg, const struct tf_scalar *hash,
                const struct tf_scalar *range)
{
    int rc;

    buf_reset(out);
    rc = buf_putc(out, '{');
    if (rc == 0)
        rc = put_key_json(out, cfg->hash_key, tf_name_len(cfg->hash_key, cfg->hash_key_len), hash);
    if (rc == 0 && range->t) {
        rc = buf_putc(out, ',');
        if (rc == 0)
            rc = put_key_json(out, cfg->range_key,
                              tf_name_len(cfg->range_key, cfg->range_key_len), range);
    }
    if (rc == 0)
        rc = buf_putc(out, '}');
    if (rc < 0)
        buf_reset(out);
    if (rc == -E2BIG) /* the caller's ceiling (0 for a buffer never buf_init'ed) */
        return 0;
    return rc < 0 ? -ENOMEM : 0;
}

/* A key attribute's scalar, known to be one (id_part checked it). */
static void key_scalar(json_t *keys, const char *name, size_t nlen, struct tf_scalar *k)
{
    void *it = json_object_iter(json_object_getn(keys, name, nlen));

    k->t = json_object_iter_key(it)[0];
    k->s = string_of(json_object_iter_value(it), &k->len);
}

/* doc->keys (doc.h), once the id is built from the same keys. */
static int put_keys(struct ctx *c, json_t *keys, struct buf *out)
{
    const struct transform_cfg *cfg = c->cfg;
    size_t hlen = tf_name_len(cfg->hash_key, cfg->hash_key_len);
    size_t rlen = tf_name_len(cfg->range_key, cfg->range_key_len);
    struct tf_scalar hash = { 0 }, range = { 0 };

    buf_reset(out);
    if (tf_in_list(cfg->hmac, cfg->n_hmac, cfg->hash_key, hlen) ||
        (cfg->range_key && tf_in_list(cfg->hmac, cfg->n_hmac, cfg->range_key, rlen)))
        return 0;
    key_scalar(keys, cfg->hash_key, hlen, &hash);
    if (cfg->range_key)
        key_scalar(keys, cfg->range_key, rlen, &range);
    if (tf_put_keys(out, cfg, &hash, &range) == 0)
        return 0;
    fail(c, "out of memory");
    return -ENOMEM;
}

void tf_id_set(struct doc *out, const struct buf *idb, char sep)
{
    if (idb->len > DOC_ID_MAX || !tf_utf8_valid(idb->ptr, idb->len)) {
        unsigned char md[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)(idb->ptr ? idb->ptr : ""), idb->len, md);
        out->id[0] = '\\';
        out->id[1] = sep == 'h' ? 'H' : 'h';
        for (size_t i = 0; i < sizeof(md); i++) {
            out->id[2 + 2 * i] = hexd[md[i] >> 4];
            out->id[2 + 2 * i + 1] = hexd[md[i] & 15];
        }
        out->id_len = 2 + 2 * sizeof(md);
    } else {
        memcpy(out->id, idb->ptr ? idb->ptr : "", idb->len);
        out->id_len = idb->len;
    }
    out->id[out->id_len] = '\0';
}

static int build_id(struct ctx *c, json_t *keys, struct doc *out)
{
    struct buf idb;
    int rc;

    buf_init(&idb, TF_ID_BUILD_MAX);
    rc = key_text(c, keys, &idb);
    if (rc == 0)
        tf_id_set(out, &idb, c->cfg->id_sep);
    buf_close(&idb);
    if (rc == 0)
        rc = put_keys(c, keys, &out->keys);
    return rc;
}

/* ---- entry points ---- */

bool tf_cfg_usable(const struct transform_cfg *cfg)
{
    return cfg->index && cfg->hash_key && cfg->id_sep != '\\' && cfg->id_sep != '\0';
}

static bool ctx_start(struct ctx *c, const struct transform_cfg *cfg, struct buf *err,
                      const char *what)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->err = err;
    c->what = what;
    if (err)
        buf_reset(err);
    if (!tf_cfg_usable(cfg)) {
        fail(c, "bad configuration: index, hash key and an id separator other than '\\' needed");
        return false;
    }
    return true;
}

void tf_doc_begin(struct doc *out, const struct transform_cfg *cfg, enum doc_op op)
{
    buf_reset(&out->source);
    buf_reset(&out->keys);
    out->op = op;
    out->index = cfg->index;
    out->id_len = 0;
    out->id[0] = '\0';
}

enum transform_result transform_item(const struct transform_cfg *cfg, json_t *item,
                                     struct doc *out, struct buf *err)
{
    struct ctx c;

    if (!ctx_start(&c, cfg, err, "item"))
        return TR_ERROR;
    tf_doc_begin(out, cfg, DOC_INDEX);
    if (!json_is_object(item)) {
        fail(&c, "not an object");
        return TR_ERROR;
    }
    if (build_id(&c, item, out) < 0 || emit_item(&c, item, &out->source) < 0)
        return TR_ERROR;
    return TR_DOC;
}

enum transform_result transform_keys(const struct transform_cfg *cfg, json_t *keys,
                                     struct doc *out, struct buf *err)
{
    struct ctx c;

    if (!ctx_start(&c, cfg, err, "keys"))
        return TR_ERROR;
    tf_doc_begin(out, cfg, DOC_DELETE);
    return build_id(&c, keys, out) < 0 ? TR_ERROR : TR_DOC;
}

int transform_key_text(const struct transform_cfg *cfg, json_t *keys, struct buf *out,
                       struct buf *err)
{
    struct ctx c;

    if (!ctx_start(&c, cfg, err, "keys"))
        return -EINVAL;
    return key_text(&c, keys, out);
}

/* userIdentity {type: "Service", principalId: "dynamodb.amazonaws.com"};
 * AWS spells the members type/principalId, DynamoDB Local Type/PrincipalId. */
static bool is_ttl_delete(json_t *record)
{
    json_t *ui = json_object_get(record, "userIdentity"), *v, *type = NULL, *principal = NULL;
    const char *k;
    size_t klen;

    json_object_keylen_foreach(ui, k, klen, v) {
        if (klen == 4 && strncasecmp(k, "type", 4) == 0)
            type = v;
        else if (klen == 11 && strncasecmp(k, "principalId", 11) == 0)
            principal = v;
    }
    return str_is(type, "Service") && str_is(principal, "dynamodb.amazonaws.com");
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

enum transform_result transform_record(const struct transform_cfg *cfg, json_t *record,
                                       struct doc *out, struct buf *err)
{
    char what[sizeof(out->seq) + 16] = "record";
    json_t *dyn = json_object_get(record, "dynamodb");
    json_t *jseq = json_object_get(dyn, "SequenceNumber");
    json_t *jtime = json_object_get(dyn, "ApproximateCreationDateTime");
    json_t *keys = json_object_get(dyn, "Keys");
    json_t *img = json_object_get(dyn, "NewImage");
    json_t *jev = json_object_get(record, "eventName");
    json_t *jview = json_object_get(dyn, "StreamViewType");
    size_t slen = json_string_length(jseq);
    struct ctx c;

    out->seq[0] = '\0';
    out->created = 0;
    tf_doc_begin(out, cfg, DOC_INDEX);
    if (json_is_string(jseq) && slen < sizeof(out->seq) && all_digits(json_string_value(jseq), slen)) {
        memcpy(out->seq, json_string_value(jseq), slen + 1);
        snprintf(what, sizeof(what), "record %s", out->seq);
    }
    if (!ctx_start(&c, cfg, err, what))
        return TR_ERROR;
    if (!json_is_object(record)) {
        fail(&c, "not an object");
        return TR_ERROR;
    }
    if (!json_is_object(dyn)) {
        fail(&c, "no \"dynamodb\" object");
        return TR_ERROR;
    }
    if (jseq && !out->seq[0]) {
        fail(&c, "SequenceNumber is not a string of 1 to %zu digits", sizeof(out->seq) - 1);
        return TR_ERROR;
    }
    if (jtime) {
        double t = json_number_value(jtime);

        if (!json_is_number(jtime) || !(t >= 0 && t < 9.2e18)) {
            fail(&c, "ApproximateCreationDateTime is not a time in seconds");
            return TR_ERROR;
        }
        out->created = (int64_t)floor(t);
    }
    if (!str_is(jev, "INSERT") && !str_is(jev, "MODIFY") && !str_is(jev, "REMOVE")) {
        fail(&c, "eventName is not INSERT, MODIFY or REMOVE");
        return TR_ERROR;
    }
    if (!keys)
        keys = img ? img : json_object_get(dyn, "OldImage");
    if (build_id(&c, keys, out) < 0)
        return TR_ERROR;
    if (str_is(jev, "REMOVE")) {
        out->op = DOC_DELETE;
        if (cfg->on_ttl_delete == TRANSFORM_TTL_KEEP && is_ttl_delete(record))
            return TR_SKIP;
        return TR_DOC;
    }
    if (!img) {
        if (str_is(jview, "NEW_IMAGE") || str_is(jview, "NEW_AND_OLD_IMAGES")) {
            fail(&c, "%s without NewImage on a %s stream", json_string_value(jev),
                 json_string_value(jview));
            return TR_ERROR;
        }
        return TR_NEED_ITEM;
    }
    return emit_item(&c, img, &out->source) < 0 ? TR_ERROR : TR_DOC;
}

const char *transform_result_name(enum transform_result r)
{
    switch (r) {
    case TR_DOC:       return "doc";
    case TR_SKIP:      return "skip";
    case TR_NEED_ITEM: return "need-item";
    case TR_ERROR:     return "error";
    }
    return "?";
}

/* ---- renamed names, for the logs ---- */

struct transform_renames_seen {
    size_t len;
    uint64_t hash;
    char head[TRANSFORM_RENAMES_PREFIX];
};

/* FNV-1a: two names with the same length, hash and first bytes are taken
 * for one; at worst a name is then not logged (it is still counted). */
static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h;
}

/* The name quoted for a log line: printable ASCII and UTF-8 text as they
 * are, '"', '\\', control, whitespace other than ' ' and invalid bytes as \xHH. */
static void put_quoted_name(struct buf *b, const char *name, size_t len)
{
    size_t max = 120;
    uint32_t cp;

    buf_putc(b, '"');
    for (size_t i = 0, n; i < len && i < max; i += n) {
        n = tf_utf8_char(name + i, len - i, &cp);
        if (n && cp != '"' && cp != '\\' && (cp == ' ' || !java_space(cp)) && cp >= 0x20 &&
            cp != 0x7f) {
            buf_append(b, name + i, n);
            continue;
        }
        n = n ? n : 1;
        for (size_t k = 0; k < n; k++)
            buf_printf(b, "\\x%02X", (unsigned char)name[i + k]);
    }
    buf_puts(b, len > max ? "\"..." : "\"");
}

void transform_renames_init(struct transform_renames *r, void (*say)(void *arg, const char *line),
                            void *say_arg)
{
    memset(r, 0, sizeof(*r));
    r->say = say;
    r->say_arg = say_arg;
}

void transform_renames_close(struct transform_renames *r)
{
    free(r->seen);
    r->seen = NULL;
}

void transform_renames_note(void *arg, const char *name, size_t len, int depth)
{
    struct transform_renames *r = arg;
    struct transform_renames_seen key = { .len = len, .hash = fnv1a(name, len) };
    struct buf line;

    r->count++;
    memcpy(key.head, name, len < sizeof(key.head) ? len : sizeof(key.head));
    for (size_t i = 0; i < r->listed; i++)
        if (r->seen[i].len == len && r->seen[i].hash == key.hash &&
            memcmp(r->seen[i].head, key.head, sizeof(key.head)) == 0)
            return;
    if (r->listed == TRANSFORM_RENAMES_LISTED) {
        if (!r->full && r->say)
            r->say(r->say_arg, "more attribute names the search engines refuse were renamed; "
                               "further names are counted, not listed");
        r->full = true;
        return;
    }
    if (!r->seen && !(r->seen = calloc(TRANSFORM_RENAMES_LISTED, sizeof(*r->seen))))
        return;
    r->seen[r->listed++] = key;
    if (!r->say)
        return;
    buf_init(&line, 0);
    buf_puts(&line, "attribute name ");
    put_quoted_name(&line, name, len);
    buf_printf(&line, " (depth %d) is refused by the search engines: renamed by the rule of "
                      "README \"Documents\"; it is logged once, counted every time", depth);
    if (line.ptr)
        r->say(r->say_arg, line.ptr);
    buf_close(&line);
}
