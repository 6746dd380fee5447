#include "indexer/transform.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "indexer/bulk.h"
#include "indexer/ddbnum.h"

#define ID_BUILD_MAX 16384 /* escaped key text; DynamoDB keys are <= 2048 + 1024 bytes */
#define SHOW_MAX 40        /* bytes of a bad value quoted in an error */

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

static bool in_list(const char *const *list, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strlen(list[i]) == len && memcmp(list[i], name, len) == 0)
            return true;
    return false;
}

/* ---- base64 ---- */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard alphabet, padded to a multiple of 4, '=' only at the end. */
static bool b64_valid(const char *s, size_t len)
{
    size_t pad = 0;

    if (len % 4)
        return false;
    if (len && s[len - 1] == '=')
        pad = len >= 2 && s[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (b64_val((unsigned char)s[i]) < 0)
            return false;
    return true;
}

/* s must be b64_valid. */
static int b64_decode(const char *s, size_t len, struct buf *out)
{
    int rc = buf_reserve(out, len / 4 * 3);

    for (size_t i = 0; rc == 0 && i < len; i += 4) {
        unsigned char q[4];
        int n = 0;
        unsigned long v = 0;

        for (int k = 0; k < 4; k++) {
            int d = s[i + k] == '=' ? 0 : b64_val((unsigned char)s[i + k]);

            if (s[i + k] != '=')
                n++;
            v = v << 6 | (unsigned long)d;
        }
        q[0] = (unsigned char)(v >> 16);
        q[1] = (unsigned char)(v >> 8);
        q[2] = (unsigned char)v;
        rc = buf_append(out, q, (size_t)(n - 1));
    }
    return rc;
}

/* ---- values ---- */

static const char *string_of(json_t *v, size_t *len)
{
    *len = json_string_length(v);
    return json_string_value(v);
}

/* The single "T": value member of an attribute value. */
static int descriptor(struct ctx *c, json_t *av, const char **type, json_t **val)
{
    void *it;

    if (!json_is_object(av) || json_object_size(av) != 1) {
        fail(c, "not a DynamoDB attribute value (an object with one type descriptor)");
        return -EINVAL;
    }
    it = json_object_iter(av);
    *type = json_object_iter_key(it);
    *val = json_object_iter_value(it);
    return 0;
}

static int emit_value(struct ctx *c, json_t *av, struct buf *out);

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
    if (!c->canon || n < 2) {
        rc = buf_putc(out, '[');
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (i)
                rc = buf_putc(out, ',');
            if (rc == 0) {
                c->path[c->depth] = (struct seg){ .idx = i };
                c->depth++;
                rc = emit_scalar(c, t, json_array_get(v, i), out);
                if (rc == 0)
                    c->depth--;
            }
        }
        if (rc == 0)
            rc = buf_putc(out, ']');
        if (rc < 0 && !c->failed)
            fail_buf(c, rc, out);
        return rc;
    }
    buf_init(&tmp, out->max);
    sl = calloc(n, sizeof(*sl));
    if (!sl)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sl[i].off = tmp.len;
        c->path[c->depth] = (struct seg){ .idx = i };
        c->depth++;
        rc = emit_scalar(c, t, json_array_get(v, i), &tmp);
        if (rc == 0)
            c->depth--;
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
    const char *key;
    size_t klen;
    json_t *val;
};

static int member_cmp(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int r = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);

    return r ? r : (x->klen > y->klen) - (x->klen < y->klen);
}

static int emit_member(struct ctx *c, const char *key, size_t klen, json_t *val, bool first,
                       struct buf *out)
{
    int rc = first ? 0 : buf_putc(out, ',');

    if (rc == 0)
        rc = bulk_json_string(out, key, klen);
    if (rc == 0)
        rc = buf_putc(out, ':');
    if (rc < 0)
        return rc;
    c->path[c->depth] = (struct seg){ .key = key, .klen = klen };
    c->depth++;
    rc = emit_value(c, val, out);
    if (rc == 0)
        c->depth--;
    return rc;
}

/* Members in the order received; sorted by name in canonical mode. */
static int emit_map(struct ctx *c, json_t *v, struct buf *out)
{
    struct member *m = NULL;
    size_t n = json_object_size(v), i = 0, klen;
    const char *k;
    json_t *mv;
    int rc;

    if (!json_is_object(v)) {
        fail(c, "M value is not an object");
        return -EINVAL;
    }
    rc = buf_putc(out, '{');
    if (!c->canon) {
        json_object_keylen_foreach(v, k, klen, mv) {
            if (rc == 0)
                rc = emit_member(c, k, klen, mv, i++ == 0, out);
        }
    } else if (rc == 0 && n) {
        m = calloc(n, sizeof(*m));
        rc = m ? 0 : -ENOMEM;
        json_object_keylen_foreach(v, k, klen, mv) {
            if (m)
                m[i++] = (struct member){ .key = k, .klen = klen, .val = mv };
        }
        if (m)
            qsort(m, n, sizeof(*m), member_cmp);
        for (i = 0; rc == 0 && i < n; i++)
            rc = emit_member(c, m[i].key, m[i].klen, m[i].val, i == 0, out);
    }
    if (rc == 0)
        rc = buf_putc(out, '}');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    free(m);
    return rc;
}

static int emit_list(struct ctx *c, json_t *v, struct buf *out)
{
    size_t n = json_array_size(v);
    int rc;

    if (!json_is_array(v)) {
        fail(c, "L value is not an array");
        return -EINVAL;
    }
    rc = buf_putc(out, '[');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = buf_putc(out, ',');
        if (rc < 0)
            break;
        c->path[c->depth] = (struct seg){ .idx = i };
        c->depth++;
        rc = emit_value(c, json_array_get(v, i), out);
        if (rc == 0)
            c->depth--;
    }
    if (rc == 0)
        rc = buf_putc(out, ']');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
    return rc;
}

/* One attribute value.  The recursion is bounded by TRANSFORM_MAX_DEPTH;
 * path[] has room for one more segment than that, plus a set element. */
static int emit_value(struct ctx *c, json_t *av, struct buf *out)
{
    const char *t;
    json_t *v;
    int rc = descriptor(c, av, &t, &v);

    if (rc < 0)
        return rc;
    if (strcmp(t, "S") == 0 || strcmp(t, "N") == 0 || strcmp(t, "B") == 0)
        return emit_scalar(c, t[0], v, out);
    if (strcmp(t, "BOOL") == 0 || strcmp(t, "NULL") == 0) {
        if (!json_is_boolean(v)) {
            fail(c, "%s value is not a boolean", t);
            return -EINVAL;
        }
        rc = buf_puts(out, t[0] == 'N' ? "null" : json_is_true(v) ? "true" : "false");
        if (rc < 0)
            fail_buf(c, rc, out);
        return rc;
    }
    if (strcmp(t, "SS") == 0 || strcmp(t, "NS") == 0 || strcmp(t, "BS") == 0)
        return emit_set(c, t[0], v, out);
    if (strcmp(t, "M") == 0 || strcmp(t, "L") == 0) {
        if (c->depth > TRANSFORM_MAX_DEPTH) {
            fail(c, "nested deeper than %d levels", TRANSFORM_MAX_DEPTH);
            return -EINVAL;
        }
        return t[0] == 'M' ? emit_map(c, v, out) : emit_list(c, v, out);
    }
    {
        size_t tlen = json_object_iter_key_len(json_object_key_to_iter(t));
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
    json_t *v;
    size_t len;
    int rc = descriptor(c, av, &t, &v);

    if (rc < 0)
        return rc;
    if ((strcmp(t, "S") == 0 || strcmp(t, "N") == 0 || strcmp(t, "B") == 0) &&
        json_is_string(v)) {
        s = string_of(v, &len);
        if (t[0] == 'S') {
            rc = buf_append(text, s, len);
        } else if (t[0] == 'N') {
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
            rc = b64_decode(s, len, text);
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

/* ---- the document ---- */

static int emit_item(struct ctx *c, json_t *item, struct buf *out)
{
    const struct transform_cfg *cfg = c->cfg;
    const char *k;
    json_t *av;
    bool first = true;
    int rc;

    if (!json_is_object(item)) {
        fail(c, "the image is not an object");
        return -EINVAL;
    }
    rc = buf_putc(out, '{');
    json_object_foreach(item, k, av) {
        size_t klen = json_object_iter_key_len(json_object_key_to_iter(k));

        if (rc < 0)
            break;
        if (klen >= 8 && memcmp(k, "aws:rep:", 8) == 0)
            continue;
        if (cfg->n_include && !in_list(cfg->include, cfg->n_include, k, klen))
            continue;
        if (in_list(cfg->exclude, cfg->n_exclude, k, klen))
            continue;
        if (!first)
            rc = buf_putc(out, ',');
        first = false;
        if (rc == 0)
            rc = bulk_json_string(out, k, klen);
        if (rc == 0)
            rc = buf_putc(out, ':');
        if (rc < 0)
            break;
        c->path[0] = (struct seg){ .key = k, .klen = klen };
        c->depth = 1;
        if (in_list(cfg->hmac, cfg->n_hmac, k, klen))
            rc = put_hmac(c, av, out, true);
        else
            rc = emit_value(c, av, out);
        c->depth = 0;
    }
    if (rc == 0)
        rc = buf_putc(out, '}');
    if (rc < 0 && !c->failed)
        fail_buf(c, rc, out);
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

static int id_part(struct ctx *c, json_t *keys, const char *name, struct buf *idb)
{
    const struct transform_cfg *cfg = c->cfg;
    size_t nlen = strlen(name), len;
    json_t *av = json_object_get(keys, name), *v;
    struct buf tmp;
    const char *t, *s;
    int rc;

    c->path[0] = (struct seg){ .key = name, .klen = nlen };
    c->depth = 1;
    if (!av) {
        c->depth = 0;
        fail(c, "key attribute \"%s\" missing", name);
        return -EINVAL;
    }
    rc = descriptor(c, av, &t, &v);
    if (rc < 0)
        return rc;
    if ((strcmp(t, "S") && strcmp(t, "N") && strcmp(t, "B")) || !json_is_string(v)) {
        fail(c, "a key attribute must be S, N or B");
        return -EINVAL;
    }
    buf_init(&tmp, ID_BUILD_MAX);
    if (in_list(cfg->hmac, cfg->n_hmac, name, nlen)) {
        rc = put_hmac(c, av, &tmp, false);
    } else if (t[0] == 'N') {
        s = string_of(v, &len);
        rc = ddbnum_canonical(s, len, &tmp);
        if (rc == -EINVAL)
            fail_value(c, "invalid number", s, len);
    } else {
        s = string_of(v, &len);
        if (t[0] == 'B' && !b64_valid(s, len)) {
            fail_value(c, "invalid base64 in B value", s, len);
            rc = -EINVAL;
        } else {
            rc = buf_append(&tmp, s, len);
        }
    }
    if (rc == 0)
        rc = put_escaped(idb, tmp.ptr ? tmp.ptr : "", tmp.len, cfg->id_sep);
    if (rc == -E2BIG && !c->failed)
        fail(c, "key text longer than %d bytes", ID_BUILD_MAX);
    else if (rc < 0 && !c->failed)
        fail(c, "out of memory");
    buf_close(&tmp);
    c->depth = 0;
    return rc;
}

static int build_id(struct ctx *c, json_t *keys, struct doc *out)
{
    const struct transform_cfg *cfg = c->cfg;
    struct buf idb;
    int rc;

    if (!json_is_object(keys)) {
        fail(c, "no key attributes");
        return -EINVAL;
    }
    buf_init(&idb, ID_BUILD_MAX);
    rc = id_part(c, keys, cfg->hash_key, &idb);
    if (rc == 0 && cfg->range_key) {
        rc = buf_putc(&idb, cfg->id_sep);
        if (rc == 0)
            rc = id_part(c, keys, cfg->range_key, &idb);
    }
    if (rc < 0 && !c->failed)
        fail(c, "key too long");
    if (rc == 0 && idb.len > DOC_ID_MAX) {
        unsigned char md[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)idb.ptr, idb.len, md);
        for (size_t i = 0; i < sizeof(md); i++) {
            out->id[2 * i] = hexd[md[i] >> 4];
            out->id[2 * i + 1] = hexd[md[i] & 15];
        }
        out->id_len = 2 * sizeof(md);
    } else if (rc == 0) {
        memcpy(out->id, idb.ptr ? idb.ptr : "", idb.len);
        out->id_len = idb.len;
    }
    if (rc == 0)
        out->id[out->id_len] = '\0';
    buf_close(&idb);
    return rc;
}

/* ---- entry points ---- */

static bool ctx_start(struct ctx *c, const struct transform_cfg *cfg, struct buf *err,
                      const char *what)
{
    memset(c, 0, sizeof(*c));
    c->cfg = cfg;
    c->err = err;
    c->what = what;
    if (err)
        buf_reset(err);
    if (!cfg->index || !cfg->hash_key || cfg->id_sep == '\\' || cfg->id_sep == '\0') {
        fail(c, "bad configuration: index, hash key and an id separator other than '\\' needed");
        return false;
    }
    return true;
}

/* An empty action of this kind (seq, created and version are the caller's). */
static void doc_begin(struct doc *out, const struct transform_cfg *cfg, enum doc_op op)
{
    buf_reset(&out->source);
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
    doc_begin(out, cfg, DOC_INDEX);
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
    doc_begin(out, cfg, DOC_DELETE);
    return build_id(&c, keys, out) < 0 ? TR_ERROR : TR_DOC;
}

/* userIdentity {type: "Service", principalId: "dynamodb.amazonaws.com"};
 * AWS spells the members type/principalId, DynamoDB Local Type/PrincipalId. */
static bool is_ttl_delete(json_t *record)
{
    json_t *ui = json_object_get(record, "userIdentity"), *v;
    const char *k, *type = NULL, *principal = NULL;

    json_object_foreach(ui, k, v) {
        if (strcasecmp(k, "type") == 0)
            type = json_string_value(v);
        else if (strcasecmp(k, "principalId") == 0)
            principal = json_string_value(v);
    }
    return type && principal && strcmp(type, "Service") == 0 &&
           strcmp(principal, "dynamodb.amazonaws.com") == 0;
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
    const char *ev = json_string_value(json_object_get(record, "eventName"));
    const char *view = json_string_value(json_object_get(dyn, "StreamViewType"));
    size_t slen = json_string_length(jseq);
    struct ctx c;

    out->seq[0] = '\0';
    out->created = 0;
    doc_begin(out, cfg, DOC_INDEX);
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
    if (!ev || (strcmp(ev, "INSERT") && strcmp(ev, "MODIFY") && strcmp(ev, "REMOVE"))) {
        fail(&c, "eventName is not INSERT, MODIFY or REMOVE");
        return TR_ERROR;
    }
    if (!keys)
        keys = img ? img : json_object_get(dyn, "OldImage");
    if (build_id(&c, keys, out) < 0)
        return TR_ERROR;
    if (strcmp(ev, "REMOVE") == 0) {
        out->op = DOC_DELETE;
        if (cfg->on_ttl_delete == TRANSFORM_TTL_KEEP && is_ttl_delete(record))
            return TR_SKIP;
        return TR_DOC;
    }
    if (!img) {
        if (view && (strcmp(view, "NEW_IMAGE") == 0 || strcmp(view, "NEW_AND_OLD_IMAGES") == 0)) {
            fail(&c, "%s without NewImage on a %s stream", ev, view);
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
