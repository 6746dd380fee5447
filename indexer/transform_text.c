/* transform_text — a stream record's JSON text made into a document in one
 * pass, without a jansson tree (transform.h, transform_record_text).
 *
 * It takes the records whose every part it is sure of and gives back the
 * rest: whatever is not plain (an error of any kind, a name to rename, an
 * hmac'd or encrypted attribute, a duplicate name, an escape for NUL or a
 * lone surrogate, an integer of more than 18 characters or a real of more
 * than 40, a callback to call) returns false before anything is decided, and the
 * caller reads the record as a tree with transform_record, which decides
 * it, errors included.  So the two cannot differ on what this file
 * accepts: tests/test_transform_text.c holds them equal, byte for byte, on
 * records drawn from the whole space DynamoDB allows. */
#include "indexer/transform.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/jsonskip.h"
#include "base/jsonx.h"
#include "base/swar.h"
#include "indexer/bulk.h"
#include "indexer/ddbnum.h"
#include "indexer/transform_int.h"

#define KEY_MAX 4096    /* bytes of a key value read (DynamoDB: <= 2048) */
#define SKIP_DEPTH 256  /* nesting of a value read past (jansson allows 2048) */
#define LOCAL_NAMES 64  /* names of open objects held without an allocation */
#define INT_MAX_CHARS 18  /* characters of an integer token read (json_int_t holds it) */
#define REAL_MAX_CHARS 40 /* of a real one */

/* A string read: in the text when it holds no escape (raw), else decoded
 * into a buffer (then valid only until that buffer grows). */
struct sv {
    const char *s;
    size_t len;
    bool raw;
};

/* A name of an object being read, for the duplicate check: in the text
 * (s), or at off in the names buffer when it held escapes (s NULL). */
struct nm {
    const char *s;
    size_t off, len;
};

/* A key attribute's value as read from one of Keys, NewImage, OldImage. */
struct keycap {
    bool seen; /* the name was there */
    bool ok;   /* with an S, N or B string value */
    char t;
    size_t len;
    char s[KEY_MAX];
};

struct rd {
    const struct transform_cfg *cfg;
    const char *p, *end;
    struct buf tmp;   /* decoded values */
    struct buf names; /* decoded names */
    struct nm local[LOCAL_NAMES], *nm;
    size_t nnm, capnm;
    size_t hlen, rlen; /* the key names' lengths */
};

static void ws(struct rd *r)
{
    r->p = jsonskip_ws(r->p, r->end);
}

static bool eat(struct rd *r, char c)
{
    const char *q = jsonskip_take(r->p, r->end, c);

    if (q)
        r->p = q;
    return q != NULL;
}

static bool peek(struct rd *r, char c)
{
    ws(r);
    return r->p < r->end && *r->p == c;
}

/* Which of the 8 bytes of w a string scan must look at (swar.h's mask): a
 * quote, a backslash, a control character or a byte above 0x7f. */
static uint64_t word_special(uint64_t w)
{
    return swar_quote_or_backslash(w) | swar_below(w, 0x20) | (w & SWAR_HIGH);
}

/* A JSON string at r->p: into v, from the text (raw) or, when it holds
 * escapes, decoded onto dst (*off: where; SIZE_MAX for the text).  Raw
 * bytes must be UTF-8 without control characters; a decoded string holding
 * NUL or a lone surrogate (\u0000, \ud800) is the tree's. */
static bool str(struct rd *r, struct buf *dst, struct sv *v, size_t *off)
{
    bool escaped = false;
    const char *q;
    uint32_t cp;

    ws(r);
    if (r->p >= r->end || *r->p != '"')
        return false;
    for (q = r->p + 1;;) {
        unsigned char c;
        size_t n;

        q = swar_skip(q, r->end, word_special);
        if (q >= r->end)
            return false;
        c = (unsigned char)*q;
        if (c == '"')
            break;
        if (c == '\\') { /* the escape is the decoder's to check */
            escaped = true;
            q += 2;
        } else if (c < 0x20) {
            return false;
        } else if (c < 0x80) {
            q++;
        } else if ((n = tf_utf8_char(q, (size_t)(r->end - q), &cp))) {
            q += n;
        } else {
            return false;
        }
    }
    if (escaped) {
        *off = dst->len;
        if (jsonx_string_decode(r->p, q + 1, dst) < 0)
            return false;
        v->s = dst->ptr + *off;
        v->len = dst->len - *off;
        if (memchr(v->s, '\0', v->len) || !tf_utf8_valid(v->s, v->len))
            return false;
    } else {
        v->s = r->p + 1;
        v->len = (size_t)(q - v->s);
        *off = SIZE_MAX;
    }
    v->raw = !escaped;
    r->p = q + 1;
    return true;
}

/* The string written as JSON, as bulk_json_string writes it: a raw one is
 * its own text, quotes included, since it holds nothing that function
 * escapes (no quote, backslash or control character, and valid UTF-8, so
 * no lone surrogate). */
static int put_string(struct buf *out, const struct sv *v)
{
    return v->raw ? buf_append(out, v->s - 1, v->len + 2) : bulk_json_string(out, v->s, v->len);
}

/* A value string (decoded onto r->tmp, reset first). */
static bool sval(struct rd *r, struct sv *v)
{
    size_t off;

    buf_reset(&r->tmp);
    return str(r, &r->tmp, v, &off);
}

static bool is(const struct sv *v, const char *want)
{
    size_t n = strlen(want);

    return v->len == n && memcmp(v->s, want, n) == 0;
}

/* A number token, read into *val as jansson reads it: an integer (no
 * fraction, no exponent) of at most INT_MAX_CHARS characters with strtoll,
 * which cannot overflow json_int_t; a real (1.46480431E9, as the Streams
 * API writes ApproximateCreationDateTime) of at most REAL_MAX_CHARS with
 * strtod, refused on overflow as jansson refuses it.  Longer tokens, and
 * what is not JSON, are the tree's. */
static bool number(struct rd *r, double *val)
{
    const char *s, *q;
    char tok[REAL_MAX_CHARS + 1];
    bool real = false;

    ws(r);
    s = q = r->p;
    if (q < r->end && *q == '-')
        q++;
    if (q >= r->end || *q < '0' || *q > '9')
        return false;
    if (*q == '0')
        q++;
    else
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    if (q < r->end && *q == '.') {
        real = true;
        if (++q >= r->end || *q < '0' || *q > '9')
            return false;
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        real = true;
        if (++q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return false;
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if ((q < r->end && *q >= '0' && *q <= '9') ||
        q - s > (real ? REAL_MAX_CHARS : INT_MAX_CHARS))
        return false;
    memcpy(tok, s, (size_t)(q - s));
    tok[q - s] = '\0';
    errno = 0;
    *val = real ? strtod(tok, NULL) : (double)strtoll(tok, NULL, 10);
    if (real && (*val == HUGE_VAL || *val == -HUGE_VAL) && errno == ERANGE)
        return false;
    r->p = q;
    return true;
}

static bool literal(struct rd *r, const char *lit)
{
    size_t n = strlen(lit);

    ws(r);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return false;
    r->p += n;
    return true;
}

/* ---- names of an object: no duplicates ---- */

static bool nm_push(struct rd *r, const struct sv *v, size_t off)
{
    if (r->nnm == r->capnm) {
        size_t cap = r->capnm * 2;
        struct nm *n = r->nm == r->local ? malloc(cap * sizeof(*n))
                                         : realloc(r->nm, cap * sizeof(*n));

        if (!n)
            return false;
        if (r->nm == r->local)
            memcpy(n, r->local, sizeof(r->local));
        r->nm = n;
        r->capnm = cap;
    }
    r->nm[r->nnm++] = (struct nm){ .s = off == SIZE_MAX ? v->s : NULL, .off = off, .len = v->len };
    return true;
}

static const char *nm_text(const struct rd *r, const struct nm *n)
{
    return n->s ? n->s : r->names.ptr + n->off;
}

static int nm_cmp(const void *a, const void *b, void *arg)
{
    const struct rd *r = arg;
    const struct nm *x = a, *y = b;
    int c = memcmp(nm_text(r, x), nm_text(r, y), x->len < y->len ? x->len : y->len);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The names pushed since mark hold no two alike; they are popped. */
static bool nm_unique(struct rd *r, size_t mark)
{
    size_t n = r->nnm - mark;
    struct nm *m = r->nm + mark;
    bool ok = true;

    if (n <= 32) {
        for (size_t i = 0; ok && i < n; i++)
            for (size_t j = i + 1; ok && j < n; j++)
                ok = m[i].len != m[j].len ||
                     memcmp(nm_text(r, &m[i]), nm_text(r, &m[j]), m[i].len) != 0;
    } else {
        qsort_r(m, n, sizeof(*m), nm_cmp, r);
        for (size_t i = 1; ok && i < n; i++)
            ok = nm_cmp(&m[i - 1], &m[i], r) != 0;
    }
    r->nnm = mark;
    return ok;
}

/* A member's name, pushed for the duplicate check, then its colon. */
static bool member_name(struct rd *r, struct sv *v)
{
    size_t off;

    if (!str(r, &r->names, v, &off) || !nm_push(r, v, off))
        return false;
    return eat(r, ':');
}

/* The object at r->p, member by member: each name read (and held for the
 * duplicate check), then one reads its value, r->p at it. */
typedef bool member_fn(struct rd *r, const struct sv *name, void *arg);

static bool members(struct rd *r, member_fn *one, void *arg)
{
    size_t mark = r->nnm;
    struct sv name;

    if (!eat(r, '{'))
        return false;
    if (!eat(r, '}')) {
        do {
            if (!member_name(r, &name) || !one(r, &name, arg))
                return false;
        } while (eat(r, ','));
        if (!eat(r, '}'))
            return false;
    }
    return nm_unique(r, mark);
}

/* ---- values read past ---- */

static bool skip(struct rd *r, int depth)
{
    struct sv v;
    double d;

    ws(r);
    if (r->p >= r->end || depth > SKIP_DEPTH)
        return false;
    switch (*r->p) {
    case '{':
        r->p++;
        if (eat(r, '}'))
            return true;
        do {
            size_t off;

            buf_reset(&r->tmp);
            if (!str(r, &r->tmp, &v, &off) || !eat(r, ':') || !skip(r, depth + 1))
                return false;
        } while (eat(r, ','));
        return eat(r, '}');
    case '[':
        r->p++;
        if (eat(r, ']'))
            return true;
        do {
            if (!skip(r, depth + 1))
                return false;
        } while (eat(r, ','));
        return eat(r, ']');
    case '"':
        return sval(r, &v);
    case 't':
        return literal(r, "true");
    case 'f':
        return literal(r, "false");
    case 'n':
        return literal(r, "null");
    default:
        return number(r, &d);
    }
}

/* ---- attribute values, written ---- */

static bool attr(struct rd *r, int depth, struct buf *out);

/* An S, N or B text (t), written as transform.c's emit_scalar writes it. */
static bool scalar(struct rd *r, char t, struct buf *out)
{
    struct sv v;

    if (!sval(r, &v))
        return false;
    if (t == 'N')
        return ddbnum_json(v.s, v.len, out) == 0;
    if (t == 'B' && !b64_valid(v.s, v.len))
        return false;
    return put_string(out, &v) == 0;
}

/* An array of S, N or B texts (t) or of attribute values (t 0). */
static bool array(struct rd *r, char t, int depth, struct buf *out)
{
    bool first = true;

    if (!eat(r, '[') || buf_putc(out, '[') < 0)
        return false;
    if (!eat(r, ']')) {
        do {
            if (!first && buf_putc(out, ',') < 0)
                return false;
            first = false;
            if (t ? !scalar(r, t, out) : !attr(r, depth + 1, out))
                return false;
        } while (eat(r, ','));
        if (!eat(r, ']'))
            return false;
    }
    return buf_putc(out, ']') == 0;
}

/* What map's and image's members write into: the document, and whether a
 * member was written yet (the comma). */
struct writing {
    struct buf *out; /* NULL: nothing is written (an image read for its keys) */
    bool first;
    int depth;       /* of the object's members (map) */
    struct keycap *key;
};

/* One member, "name":value, the value at depth w->depth. */
static bool put_member(struct rd *r, const struct sv *name, struct writing *w, int depth)
{
    bool ok = (w->first || buf_putc(w->out, ',') == 0) && put_string(w->out, name) == 0 &&
              buf_putc(w->out, ':') == 0 && attr(r, depth, w->out);

    w->first = false;
    return ok;
}

static bool map_member(struct rd *r, const struct sv *name, void *arg)
{
    struct writing *w = arg;

    return !tf_name_refused(name->s, name->len, false) && put_member(r, name, w, w->depth);
}

static bool map(struct rd *r, int depth, struct buf *out)
{
    struct writing w = { .out = out, .first = true, .depth = depth + 1 };

    return buf_putc(out, '{') == 0 && members(r, map_member, &w) && buf_putc(out, '}') == 0;
}

/* One attribute value {"T": value}, depth as transform.c counts it (the
 * segments of its path). */
static bool attr(struct rd *r, int depth, struct buf *out)
{
    struct sv t;
    bool ok;

    if (!eat(r, '{') || !sval(r, &t) || !eat(r, ':'))
        return false;
    if (t.len == 1 && (t.s[0] == 'S' || t.s[0] == 'N' || t.s[0] == 'B')) {
        ok = scalar(r, t.s[0], out);
    } else if (is(&t, "BOOL") || is(&t, "NULL")) {
        bool nul = t.s[0] == 'N', yes = peek(r, 't');

        ok = (yes ? literal(r, "true") : literal(r, "false")) &&
             buf_puts(out, nul ? "null" : yes ? "true" : "false") == 0;
    } else if (t.len == 2 && t.s[1] == 'S' && (t.s[0] == 'S' || t.s[0] == 'N' || t.s[0] == 'B')) {
        ok = array(r, t.s[0], depth, out);
    } else if (is(&t, "M") || is(&t, "L")) {
        ok = depth <= TRANSFORM_MAX_DEPTH && (t.s[0] == 'M' ? map(r, depth, out)
                                                            : array(r, 0, depth, out));
    } else {
        ok = false;
    }
    return ok && eat(r, '}');
}

/* ---- images ---- */

/* A key attribute's value, read ahead of the member (r->p is left where it
 * was): {"S"|"N"|"B": string}, or k->ok stays false. */
static void key_peek(struct rd *r, struct keycap *k)
{
    const char *at = r->p;
    struct sv t, v;
    char type;

    k->seen = true;
    if (eat(r, '{') && sval(r, &t) && t.len == 1 && (t.s[0] == 'S' || t.s[0] == 'N' ||
                                                     t.s[0] == 'B')) {
        type = t.s[0];
        if (eat(r, ':') && sval(r, &v) && v.len <= KEY_MAX && eat(r, '}')) {
            k->t = type;
            k->len = v.len;
            memcpy(k->s, v.s, v.len);
            k->ok = true;
        }
    }
    r->p = at;
}

static bool named(const struct sv *v, const char *name, size_t len)
{
    return name && v->len == len && memcmp(v->s, name, len) == 0;
}

static bool encrypted_name(const struct sv *v)
{
    return is(v, "aws_dbe_head") || is(v, "*amzn-ddb-map-desc*") || is(v, "*amzn-ddb-map-sig*");
}

/* An image (Keys, NewImage or OldImage): its key attributes read into
 * key[0] (hash) and key[1] (range); with out, the document written as
 * transform.c's emit_item writes it. */
static bool image_member(struct rd *r, const struct sv *name, void *arg)
{
    const struct transform_cfg *cfg = r->cfg;
    struct writing *w = arg;

    if (cfg->encrypted != TRANSFORM_ENCRYPTED_AS_IS && encrypted_name(name))
        return false;
    if (named(name, cfg->hash_key, r->hlen))
        key_peek(r, &w->key[0]);
    else if (named(name, cfg->range_key, r->rlen))
        key_peek(r, &w->key[1]);
    if (!w->out || (name->len >= 8 && memcmp(name->s, "aws:rep:", 8) == 0) ||
        (cfg->n_include && !tf_in_list(cfg->include, cfg->n_include, name->s, name->len)) ||
        tf_in_list(cfg->exclude, cfg->n_exclude, name->s, name->len))
        return skip(r, 1);
    return !tf_name_refused(name->s, name->len, true) && put_member(r, name, w, 1);
}

static bool image(struct rd *r, struct keycap key[2], struct buf *out)
{
    struct writing w = { .out = out, .first = true, .key = key };

    return (!out || buf_putc(out, '{') == 0) && members(r, image_member, &w) &&
           (!out || buf_putc(out, '}') == 0);
}

/* ---- the record ---- */

enum member { M_EVENT, M_DYNAMODB, M_IDENTITY, M_SHARD, M_PARENT, M_SEQ, M_TIME, M_KEYS, M_NEW,
              M_OLD, M_COUNT };

struct rec {
    bool seen[M_COUNT];
    bool new_bad; /* NewImage is not a document this file writes */
    struct sv event;
    double time;
    struct keycap key[3][2]; /* Keys, NewImage, OldImage; only seen and ok set at first */
};

/* A member of the record we look at once; a second is the tree's to judge. */
static bool first_time(struct rec *rc, enum member m)
{
    if (rc->seen[m])
        return false;
    rc->seen[m] = true;
    return true;
}

/* shardId, parentShardId: a string, copied; anything else read past. */
static bool shard_member(struct rd *r, char *dst, size_t size)
{
    struct sv v;
    size_t off;

    if (!peek(r, '"'))
        return skip(r, 1);
    buf_reset(&r->tmp);
    if (!str(r, &r->tmp, &v, &off) || v.len >= size || memchr(v.s, '\0', v.len))
        return false;
    memcpy(dst, v.s, v.len);
    dst[v.len] = '\0';
    return true;
}

struct reading {
    struct rec *rc;
    struct doc *out;
    struct transform_text_extra *x;
};

static bool dynamodb_member(struct rd *r, const struct sv *name, void *arg)
{
    struct reading *g = arg;
    struct rec *rc = g->rc;
    struct doc *out = g->out;
    struct sv v;
    bool ok;

    if (is(name, "SequenceNumber")) {
        ok = first_time(rc, M_SEQ) && sval(r, &v) && v.len >= 1 && v.len < sizeof(out->seq);
        for (size_t i = 0; ok && i < v.len; i++)
            ok = v.s[i] >= '0' && v.s[i] <= '9';
        if (ok) {
            memcpy(out->seq, v.s, v.len);
            out->seq[v.len] = '\0';
        }
        return ok;
    }
    if (is(name, "ApproximateCreationDateTime"))
        return first_time(rc, M_TIME) && number(r, &rc->time) && rc->time >= 0 &&
               rc->time < 9.2e18;
    if (is(name, "Keys"))
        return first_time(rc, M_KEYS) && image(r, rc->key[0], NULL);
    if (is(name, "OldImage"))
        return first_time(rc, M_OLD) && image(r, rc->key[2], NULL);
    if (is(name, "NewImage")) {
        const char *at = r->p;
        size_t names_at = r->nnm;

        /* A REMOVE's image is not written: one that cannot be is read again
         * for its keys only, and matters only if the record is not a
         * REMOVE. */
        if (!first_time(rc, M_NEW))
            return false;
        if (image(r, rc->key[1], &out->source))
            return true;
        r->p = at;
        r->nnm = names_at;
        rc->new_bad = true;
        rc->key[1][0].seen = rc->key[1][0].ok = rc->key[1][1].seen = rc->key[1][1].ok = false;
        return image(r, rc->key[1], NULL);
    }
    return skip(r, 2);
}

static bool record_member(struct rd *r, const struct sv *name, void *arg)
{
    struct reading *g = arg;
    struct rec *rc = g->rc;
    bool ok;

    if (is(name, "eventName")) {
        ok = first_time(rc, M_EVENT) && sval(r, &rc->event) &&
             (is(&rc->event, "INSERT") || is(&rc->event, "MODIFY") || is(&rc->event, "REMOVE"));
        if (ok) /* a name that stays valid past r->tmp's next use */
            rc->event.s = rc->event.s[0] == 'R' ? "REMOVE" : "UPSERT";
        return ok;
    }
    if (is(name, "dynamodb"))
        return first_time(rc, M_DYNAMODB) && members(r, dynamodb_member, g);
    if (is(name, "userIdentity"))
        return first_time(rc, M_IDENTITY) && skip(r, 1);
    if (is(name, "shardId"))
        return first_time(rc, M_SHARD) && shard_member(r, g->x->shard, sizeof(g->x->shard));
    if (is(name, "parentShardId"))
        return first_time(rc, M_PARENT) && shard_member(r, g->x->parent, sizeof(g->x->parent));
    if (is(name, "Records") || is(name, "DDBStreamBatchInfo"))
        return false; /* a Lambda event or failure record: source_stream_value's */
    return skip(r, 1);
}

/* The id and keys from the key values of one image (hash, then range). */
static bool make_id(struct rd *r, const struct keycap k[2], struct doc *out)
{
    const struct transform_cfg *cfg = r->cfg;
    struct tf_scalar s[2] = { 0 };
    struct buf idb;
    int rc = 0;

    for (int i = 0; i < (cfg->range_key ? 2 : 1); i++) {
        if (!k[i].ok)
            return false;
        s[i] = (struct tf_scalar){ .t = k[i].t, .s = k[i].s, .len = k[i].len };
    }
    buf_init(&idb, TF_ID_BUILD_MAX);
    rc = tf_key_part(&s[0], cfg->id_sep, &idb);
    if (rc == 0 && cfg->range_key)
        rc = buf_putc(&idb, cfg->id_sep);
    if (rc == 0 && cfg->range_key)
        rc = tf_key_part(&s[1], cfg->id_sep, &idb);
    if (rc == 0)
        tf_id_set(out, &idb, cfg->id_sep);
    buf_close(&idb);
    return rc == 0 && tf_put_keys(&out->keys, cfg, &s[0], &s[1]) == 0;
}

bool transform_record_text(const struct transform_cfg *cfg, const char *text, size_t len,
                           struct doc *out, struct transform_text_extra *x)
{
    struct rd r = { .cfg = cfg, .p = text, .end = text + len, .capnm = LOCAL_NAMES };
    struct rec rec, *rc = &rec;
    const struct keycap *keys;
    bool ok = false;

    x->shard[0] = x->parent[0] = '\0';
    if (!tf_cfg_usable(cfg) || cfg->n_hmac || cfg->on_member || !text)
        return false;
    out->seq[0] = '\0';
    out->created = 0;
    tf_doc_begin(out, cfg, DOC_INDEX);
    r.nm = r.local;
    r.hlen = tf_name_len(cfg->hash_key, cfg->hash_key_len);
    r.rlen = tf_name_len(cfg->range_key, cfg->range_key_len);
    buf_init(&r.tmp, BUF_NOMAX);
    buf_init(&r.names, BUF_NOMAX);
    memset(rc->seen, 0, sizeof(rc->seen));
    rc->new_bad = false;
    rc->time = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++)
            rc->key[i][j].seen = rc->key[i][j].ok = false;
    if (!members(&r, record_member, &(struct reading){ .rc = rc, .out = out, .x = x }))
        goto out;
    ws(&r);
    if (r.p != r.end || !rc->seen[M_DYNAMODB] || !rc->seen[M_EVENT])
        goto out;
    keys = rc->seen[M_KEYS]  ? rc->key[0]
           : rc->seen[M_NEW] ? rc->key[1]
           : rc->seen[M_OLD] ? rc->key[2]
                             : NULL;
    if (!keys || !make_id(&r, keys, out))
        goto out;
    out->created = (int64_t)floor(rc->time);
    if (rc->event.s[0] == 'R') {
        if (rc->seen[M_IDENTITY] && cfg->on_ttl_delete == TRANSFORM_TTL_KEEP)
            goto out;
        out->op = DOC_DELETE;
        buf_reset(&out->source);
    } else if (!rc->seen[M_NEW] || rc->new_bad) {
        goto out;
    }
    ok = true;
out:
    buf_close(&r.tmp);
    buf_close(&r.names);
    if (r.nm != r.local)
        free(r.nm);
    return ok;
}
