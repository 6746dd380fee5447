/* Fuzz target: a stream record (any JSON) -> a bulk action
 * (transform_record), and its NewImage as an item (transform_item).
 *
 * The first byte picks the table's shape and the filters; the rest is the
 * record.  The tree is then built the way a loader that keeps everything
 * DynamoDB accepts builds it (names with NUL, strings holding a lone
 * surrogate in its 3-byte WTF-8 form).  jansson's parser takes neither in a
 * name, so an input spells them with stand-ins, in names and strings alike:
 *   U+2400 SYMBOL FOR NULL (E2 90 80)    -> NUL;
 *   U+E800..U+EFFF (EE A0 80..EE BF BF)  -> the lone surrogate U+D800..U+DFFF
 *                                           (ED A0 80..ED BF BF).
 * Beyond "no crash, no leak, no undefined behaviour" it checks what the
 * emitter promises: an index action's source is one JSON object, keys are
 * empty or one JSON object, and an id is 1..DOC_ID_MAX bytes of UTF-8.
 * And differentially: the input's text, as it is, through the one-pass
 * reader (transform_record_text); what that takes, jsonx_loadb and
 * transform_record must make the same action of, byte for byte. */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "indexer/transform.h"
#include "tests/fuzz/fuzz.h"

static const char *const names[] = { "pk", "s", "n38" };

/* Replaces the stand-ins in s[0..len) in place; returns the new length. */
static size_t unstand(char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;

        if (len - i >= 3 && u[0] == 0xe2 && u[1] == 0x90 && u[2] == 0x80) {
            s[o++] = '\0';
            i += 3;
        } else if (len - i >= 3 && u[0] == 0xee && u[1] >= 0xa0) {
            s[o++] = (char)0xed;
            s[o++] = s[i + 1];
            s[o++] = s[i + 2];
            i += 3;
        } else {
            s[o++] = s[i++];
        }
    }
    return o;
}

/* A copy of v with the stand-ins replaced (new reference, NULL when out of
 * memory). */
static json_t *rebuild(json_t *v)
{
    json_t *out = NULL, *e;
    const char *k;
    size_t klen, i;
    char *tmp;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        out = json_object();
        json_object_keylen_foreach(v, k, klen, e) {
            if (!out || !(tmp = malloc(klen + 1)))
                break;
            memcpy(tmp, k, klen);
            if (json_object_setn_new_nocheck(out, tmp, unstand(tmp, klen), rebuild(e)) < 0) {
                free(tmp);
                json_decref(out);
                return NULL;
            }
            free(tmp);
        }
        return out;
    case JSON_ARRAY:
        out = json_array();
        json_array_foreach(v, i, e) {
            if (out && json_array_append_new(out, rebuild(e)) < 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    case JSON_STRING:
        klen = json_string_length(v);
        if (!(tmp = malloc(klen + 1)))
            return NULL;
        memcpy(tmp, json_string_value(v), klen);
        out = json_stringn_nocheck(tmp, unstand(tmp, klen));
        free(tmp);
        return out;
    default:
        return json_incref(v);
    }
}

/* The emitter's text made readable by jansson: each \u0000 becomes \u2400
 * and each \udXXX \ueXXX (same length), as a loader keeping them would. */
static bool is_object_text(const char *text, size_t len)
{
    char *t = malloc(len + 1);
    bool in_string = false, ok;
    json_t *j;

    if (!t)
        return true; /* out of memory is not the target's fault */
    memcpy(t, text, len);
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '"') {
            in_string = !in_string;
        } else if (in_string && t[i] == '\\' && i + 1 < len) {
            if (t[i + 1] == 'u' && i + 5 < len) {
                if (memcmp(t + i + 2, "0000", 4) == 0)
                    memcpy(t + i + 2, "2400", 4);
                else if (t[i + 2] == 'd' || t[i + 2] == 'D')
                    t[i + 2] = 'e';
            }
            i++; /* the escaped character */
        }
    }
    /* 38-digit numbers: read them as reals, only the shape matters here. */
    j = json_loadb(t, len, JSON_DECODE_INT_AS_REAL, NULL);
    ok = json_is_object(j);
    json_decref(j);
    free(t);
    return ok;
}

static bool utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        unsigned long cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);

        if (n == 0 || len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += n;
    }
    return true;
}

static void check_doc(const struct doc *d, enum transform_result tr)
{
    if (d->keys.len && !is_object_text(d->keys.ptr, d->keys.len))
        abort();
    if (tr != TR_DOC)
        return;
    if (d->id_len == 0 || d->id_len > DOC_ID_MAX ||
        !utf8_valid((const unsigned char *)d->id, d->id_len))
        abort();
    if (d->op == DOC_INDEX && !is_object_text(d->source.ptr, d->source.len))
        abort();
}

static bool same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* The text read in one pass and as a tree: the same action, or given back. */
static void one_pass(const struct transform_cfg *cfg, const char *text, size_t len,
                     size_t source_max, size_t keys_max)
{
    struct transform_text_extra x;
    struct doc a, b;
    struct buf err;
    json_t *rec;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    buf_init(&a.source, source_max);
    buf_init(&a.keys, keys_max);
    buf_init(&b.source, source_max);
    buf_init(&b.keys, keys_max);
    buf_init(&err, 1024);
    if (transform_record_text(cfg, text, len, &a, &x)) {
        const char *sh, *pa;

        if (!(rec = jsonx_loadb(text, len, 0, NULL)) ||
            transform_record(cfg, rec, &b, &err) != TR_DOC || a.op != b.op ||
            a.index != b.index || a.id_len != b.id_len || memcmp(a.id, b.id, a.id_len + 1) ||
            !same_buf(&a.keys, &b.keys) || strcmp(a.seq, b.seq) || a.created != b.created ||
            !same_buf(&a.source, &b.source))
            abort();
        sh = json_string_value(json_object_get(rec, "shardId"));
        pa = json_string_value(json_object_get(rec, "parentShardId"));
        if (strcmp(x.shard, sh ? sh : "") || strcmp(x.parent, pa ? pa : ""))
            abort();
        json_decref(rec);
    }
    buf_close(&a.source);
    buf_close(&a.keys);
    buf_close(&b.source);
    buf_close(&b.keys);
    buf_close(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[] = "fuzz-hmac-key";
    struct transform_cfg cfg = { .index = "posts", .id_sep = '|', .hash_key = "id" };
    struct doc d;
    struct buf err;
    json_t *parsed, *rec, *image, *keys;
    unsigned flags;

    if (size < 1)
        return 0;
    flags = data[0];
    parsed = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (!parsed)
        return 0;
    rec = rebuild(parsed);
    json_decref(parsed);
    if (!rec)
        return 0;
    if (flags & 1) { /* the tables of tests/data/records */
        cfg.hash_key = "pk";
        cfg.range_key = "sk";
    }
    if (flags & 2)
        cfg.on_ttl_delete = TRANSFORM_TTL_KEEP;
    if (flags & 4) {
        cfg.include = names;
        cfg.n_include = 2;
    }
    if (flags & 8) {
        cfg.exclude = names + 1;
        cfg.n_exclude = 1;
    }
    if (flags & 16) {
        cfg.hmac = names + ((flags & 32) ? 0 : 2);
        cfg.n_hmac = 1;
        cfg.hmac_key = key;
        cfg.hmac_key_len = sizeof(key) - 1;
    }
    if (flags & 64)
        cfg.id_sep = (flags & 2) ? 'h' : '#';
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, (flags & 128) ? 256 : 400 * 1024);
    buf_init(&d.keys, (flags & 128) ? 16 : 0);
    buf_init(&err, 1024);
    check_doc(&d, transform_record(&cfg, rec, &d, &err));
    one_pass(&cfg, (const char *)data + 1, size - 1, d.source.max, d.keys.max);
    /* The daemon passes these only when present. */
    image = json_object_get(json_object_get(rec, "dynamodb"), "NewImage");
    keys = json_object_get(json_object_get(rec, "dynamodb"), "Keys");
    buf_reset(&err);
    if (image)
        check_doc(&d, transform_item(&cfg, image, &d, &err));
    buf_reset(&err);
    if (keys)
        check_doc(&d, transform_keys(&cfg, keys, &d, &err));
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
    json_decref(rec);
    return 0;
}
