#include "tests/support/workload.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/ddbclient.h"

/* What the workload draws from (the whole space DynamoDB accepts, not what
 * the daemon expects):
 *   - strings of atoms: every C0 control character and NUL, DEL, quotes and
 *     backslashes, the separator, U+2028/U+2029, the BOM, U+FFFF,
 *     U+10FFFF, combining sequences, CJK, emoji; empty strings and empty
 *     binaries where DynamoDB takes them (not in keys);
 *   - every type, sets, nested maps and lists, 20+ levels deep, items near
 *     400 KB;
 *   - numbers of 38 digits and at the ends of the range (±1E-130,
 *     ±9.99…E+125), keys spelled two ways (1E+125 and its 126 digits);
 *   - attribute names and map keys holding NUL and control characters,
 *     and the names the engines refuse (metadata names such as _id,
 *     blank names, leading, trailing and doubled dots), which ddb2es
 *     renames; "dotted.name" (accepted as it is);
 *   - key values (hash and range, S/N/B) holding the same characters.
 * Values are type-consistent per field path, as an engine's mapping needs
 * (a field first seen as a number refuses text afterwards): each name's
 * family (text, number, boolean, map or list) is a function of the name,
 * and a list holds one family.  Mixing types in one field is what the
 * `type_conflicts` rules are for, not this workload. */

void wl_init(struct wl *w, uint64_t seed, const char *table, const char *hash,
             const char *hash_type, const char *range, const char *range_type, unsigned nkeys)
{
    memset(w, 0, sizeof(*w));
    w->state = seed * 2654435761u + 0x9E3779B97F4A7C15ull;
    w->table = table;
    w->hash = hash;
    w->hash_type = hash_type;
    w->range = range;
    w->range_type = range_type;
    w->nkeys = nkeys;
}

uint64_t wl_rand(struct wl *w)
{
    uint64_t x = w->state; /* xorshift64* */

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static unsigned pick(struct wl *w, unsigned n)
{
    return (unsigned)(wl_rand(w) % n);
}

/* ---- strings -------------------------------------------------------------- */

struct atom {
    const char *s;
    size_t n; /* 0: strlen */
};

#define A(lit) { lit, sizeof(lit) - 1 }
static const struct atom atoms[] = {
    A("plain"), A(" "), A("a"), A("Z9"), A("\""), A("\\"), A("|"), A("\\|"), A("/"),
    A("\x00"), A("\x01"), A("\x02"), A("\x03"), A("\x04"), A("\x05"), A("\x06"), A("\x07"),
    A("\x08"), A("\t"), A("\n"), A("\x0b"), A("\x0c"), A("\r"), A("\x0e"), A("\x0f"), A("\x10"),
    A("\x11"), A("\x12"), A("\x13"), A("\x14"), A("\x15"), A("\x16"), A("\x17"), A("\x18"),
    A("\x19"), A("\x1a"), A("\x1b"), A("\x1c"), A("\x1d"), A("\x1e"), A("\x1f"), A("\x7f"),
    A("\xC2\x80"),         /* U+0080 */
    A("\xC2\xA0"),         /* no-break space */
    A("\xE2\x80\xA8"),     /* U+2028 line separator */
    A("\xE2\x80\xA9"),     /* U+2029 paragraph separator */
    A("\xEF\xBB\xBF"),     /* BOM */
    A("\xEF\xBF\xBF"),     /* U+FFFF */
    A("\xF4\x8F\xBF\xBF"), /* U+10FFFF */
    A("e\xCC\x81"),        /* e + combining acute */
    A("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), /* Hangul jamo sequence */
    A("\xE6\x97\xA5\xE6\x9C\xAC"),             /* CJK */
    A("\xF0\x9F\x98\x80"), A("\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB"), /* emoji, ZWJ */
    A("</script>"), A("{\"json\":[1]}"), A("na\xC3\xAFve"),
};
#undef A

static void put_atoms(struct wl *w, char *buf, size_t *len, size_t cap, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        const struct atom *a = &atoms[pick(w, sizeof(atoms) / sizeof(*atoms))];

        if (*len + a->n >= cap)
            break;
        memcpy(buf + *len, a->s, a->n);
        *len += a->n;
    }
}

/* A string of random atoms (1..8 of them); empty when allow_empty says. */
static json_t *rand_text(struct wl *w, bool allow_empty)
{
    char buf[256];
    size_t len = 0;

    if (allow_empty && pick(w, 12) == 0)
        return json_stringn("", 0);
    if (pick(w, 4) == 0)
        len = (size_t)snprintf(buf, sizeof(buf), "s%llu", (unsigned long long)(wl_rand(w) % 100000));
    put_atoms(w, buf, &len, sizeof(buf), 1 + pick(w, 8));
    if (len == 0)
        buf[len++] = 'x';
    return json_stringn_nocheck(buf, len);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The base64 text of n random bytes (NUL bytes included). */
static json_t *b64_of_random(struct wl *w, size_t n)
{
    unsigned char raw[64];
    char out[100];
    size_t o = 0;

    for (size_t i = 0; i < n; i++)
        raw[i] = pick(w, 4) == 0 ? 0 : (unsigned char)pick(w, 256);
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (i + 1 < n ? (unsigned)raw[i + 1] << 8 : 0) |
                     (i + 2 < n ? raw[i + 2] : 0);

        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    return json_stringn(out, o);
}

static json_t *rand_b(struct wl *w, bool allow_empty)
{
    if (allow_empty && pick(w, 10) == 0)
        return json_string("");
    return b64_of_random(w, 1 + pick(w, 40));
}

static const char *const numbers[] = {
    "0", "1", "-1", "42", "3.14159", "-0.5", "12345678901234567890123456789012345678",
    "-12345678901234567890123456789012345678", "0.12345678901234567890123456789012345678",
    "1E+125", "-1E+125", "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125", "1E-130", "-1E-130", "1.5e10", "2.50",
    "100", "1e2", "0.000001", "-0",
};

static json_t *rand_n(struct wl *w)
{
    char buf[64];

    if (pick(w, 2) == 0) {
        snprintf(buf, sizeof(buf), "%lld", (long long)(wl_rand(w) % 2000001) - 1000000);
        return json_string(buf);
    }
    return json_string(numbers[pick(w, sizeof(numbers) / sizeof(*numbers))]);
}

static json_t *typed(const char *t, json_t *v)
{
    json_t *o = json_object();

    json_object_set_new(o, t, v);
    return o;
}

/* ---- names and families ---------------------------------------------------- */

struct name {
    const char *s;
    size_t n;
};

#define N(lit) { lit, sizeof(lit) - 1 }
/* Attribute names and map keys.  DynamoDB refuses empty names; everything
 * else here it takes (checked on DynamoDB Local). */
static const struct name names[] = {
    N("a0"), N("a1"), N("a2"), N("a3"), N("a4"), N("a5"), N("a6"), N("a7"), N("title"),
    N("n\x00ul"), N("\x00"), N("\x00\x00x"), N("ctl\x01\x1f"), N("tab\tname"), N("line\nname"),
    N("ls\xE2\x80\xA8"), N("\xEF\xBB\xBF" "bom"), N("ffff\xEF\xBF\xBF"), N("max\xF4\x8F\xBF\xBF"),
    N("e\xCC\x81"), N("\xE5\x90\x8D\xE5\x89\x8D"), N("\xF0\x9F\x98\x80"),
    /* refused by the engines: renamed by ddb2es (README "Documents") */
    N("_id"), N("_source"), N("_routing"), N("_index"), N("_version"), N("_doc_count"),
    N(" "), N("\t"), N("  \xE2\x80\xA8"), N("."), N(".lead"), N("trail."), N("a..b"), N("x. .y"),
    /* ...and names that the renamed ones could collide with */
    N("%_id"), N("%_source"),
    /* accepted as they are: an object path */
    N("dotted.name"),
};
#undef N

enum fam { F_TEXT, F_NUM, F_BOOL, F_MAP, F_LIST, F_NFAM };

/* A name's family.  "%_id" is where ddb2es puts a top-level "_id" (README
 * "Documents"): the two share one field, so one family (leading '%' are
 * not hashed). */
static enum fam family_of(const char *s, size_t n, unsigned salt)
{
    uint64_t h = 14695981039346656037u ^ salt;

    while (n > 1 && *s == '%') {
        s++;
        n--;
    }

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return (enum fam)(h % F_NFAM);
}

static json_t *value_of(struct wl *w, enum fam f, const struct name *nm, int depth);

/* A map of up to four members named from the list, each of its own family. */
static json_t *rand_map(struct wl *w, int depth)
{
    json_t *m = json_object();
    unsigned n = depth > 0 ? pick(w, 5) : 0;

    for (unsigned i = 0; i < n; i++) {
        const struct name *nm = &names[pick(w, sizeof(names) / sizeof(*names))];

        if (json_object_getn(m, nm->s, nm->n))
            continue;
        json_object_setn_new_nocheck(m, nm->s, nm->n,
                                     value_of(w, family_of(nm->s, nm->n, 0), nm, depth - 1));
    }
    return typed("M", m);
}

static json_t *rand_set(struct wl *w, char t)
{
    json_t *a = json_array(), *seen = json_array();
    unsigned n = 1 + pick(w, 4);

    for (unsigned i = 0; i < n; i++) {
        json_t *v = t == 'S' ? rand_text(w, true) : t == 'N' ? rand_n(w) : rand_b(w, true);
        bool dup = false;

        /* A set holds each value once (numbers by value: "1e2" and "100"
         * are one; keep them textually apart and simple). */
        for (size_t j = 0; j < json_array_size(a) && !dup; j++)
            dup = json_string_length(json_array_get(a, j)) == json_string_length(v) &&
                  memcmp(json_string_value(json_array_get(a, j)), json_string_value(v),
                         json_string_length(v)) == 0;
        if (t == 'N' && !dup) {
            char buf[32];

            json_decref(v);
            snprintf(buf, sizeof(buf), "%u.%u", i, pick(w, 1000) * 10 + 1);
            v = json_string(buf);
        }
        if (dup)
            json_decref(v);
        else
            json_array_append_new(a, v);
    }
    json_decref(seen);
    return typed(t == 'S' ? "SS" : t == 'N' ? "NS" : "BS", a);
}

/* One attribute value of family f (nm names the field: a list's elements
 * take their family from it). */
static json_t *value_of(struct wl *w, enum fam f, const struct name *nm, int depth)
{
    switch (f) {
    case F_TEXT:
        switch (pick(w, 7)) {
        case 0: return typed("B", rand_b(w, true));
        case 1: return rand_set(w, 'S');
        case 2: return rand_set(w, 'B');
        case 3: return typed("NULL", json_true());
        default: return typed("S", rand_text(w, true));
        }
    case F_NUM:
        switch (pick(w, 5)) {
        case 0: return rand_set(w, 'N');
        case 1: return typed("NULL", json_true());
        default: return typed("N", rand_n(w));
        }
    case F_BOOL:
        return pick(w, 6) ? typed("BOOL", json_boolean(pick(w, 2))) : typed("NULL", json_true());
    case F_MAP:
        return rand_map(w, depth);
    case F_LIST:
    default: {
        json_t *l = json_array();
        enum fam ef = family_of(nm->s, nm->n, 1); /* one family for its elements */
        unsigned n = depth > 0 ? pick(w, 4) : 0;

        if (ef == F_LIST && depth < 2)
            ef = F_TEXT;
        for (unsigned i = 0; i < n; i++)
            json_array_append_new(l, value_of(w, ef, nm, depth - 1));
        return typed("L", l);
    }
    }
}

/* Nested n levels deep, alternating maps and lists, keyed "d"; the string
 * at the bottom sits in a map under "v", so every "deep.d…d" path is an
 * object whatever n is. */
static json_t *deep(unsigned n)
{
    json_t *bottom = json_object(), *v;

    json_object_set_new(bottom, "v", typed("S", json_string("bottom")));
    v = typed("M", bottom);

    for (unsigned i = 0; i < n; i++) {
        if (i % 2) {
            json_t *l = json_array();

            json_array_append_new(l, v);
            v = typed("L", l);
        } else {
            json_t *m = json_object();

            json_object_set_new(m, "d", v);
            v = typed("M", m);
        }
    }
    return v;
}

/* "1" and 125 zeros: how DynamoDB spells 1E+125 in images and scans. */
static const char *one_e125(void)
{
    static char s[127];

    if (!s[0]) {
        memset(s, '0', 126);
        s[0] = '1';
    }
    return s;
}

/* Key k's value: the same k always gives the same key (in one of two
 * spellings for numbers), different ks different keys. */
static json_t *key_value(const char *type, unsigned k, bool alt)
{
    char buf[300];
    size_t len;

    if (strcmp(type, "N") == 0) {
        /* Keys that DynamoDB spells two ways; every k gives a different key. */
        if (k == 3)
            return typed("N", json_string(alt ? "1E+125" : one_e125()));
        if (k % 7 == 5) {
            unsigned v = 1000000 + k;

            if (alt)
                snprintf(buf, sizeof(buf), "%u.%uE1", v / 10, v % 10);
            else
                snprintf(buf, sizeof(buf), "%u", v);
        } else {
            snprintf(buf, sizeof(buf), "%u", k);
        }
        return typed("N", json_string(buf));
    }
    if (strcmp(type, "B") == 0) {
        /* k in the first bytes (NUL bytes among them), then a tail of
         * bytes drawn from k. */
        unsigned char raw[12] = { (unsigned char)k, (unsigned char)(k >> 8), 0,
                                  (unsigned char)(k * 7), 0xff, 0 };
        char out[20];
        size_t n = 3 + k % 9, o = 0;

        for (size_t i = 5; i < n; i++)
            raw[i] = (unsigned char)(k * 31 + i);
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)raw[i] << 16 | (i + 1 < n ? (unsigned)raw[i + 1] << 8 : 0) |
                         (i + 2 < n ? raw[i + 2] : 0);

            out[o++] = b64[v >> 18 & 63];
            out[o++] = b64[v >> 12 & 63];
            out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
            out[o++] = i + 2 < n ? b64[v & 63] : '=';
        }
        return typed("B", json_stringn(out, o));
    }
    /* S: k in plain digits, then atoms drawn from k (the same k, the same
     * atoms): NUL, control characters, the separator, astral code points. */
    len = (size_t)snprintf(buf, sizeof(buf), "k%u", k);
    for (unsigned i = 0, x = k; i < 1 + k % 4; i++, x = x * 2654435761u + 1) {
        const struct atom *a = &atoms[x % (sizeof(atoms) / sizeof(*atoms))];

        memcpy(buf + len, a->s, a->n);
        len += a->n;
    }
    return typed("S", json_stringn_nocheck(buf, len));
}

json_t *wl_key(struct wl *w, unsigned k)
{
    json_t *key = json_object();
    bool alt = pick(w, 2);

    json_object_set_new(key, w->hash, key_value(w->hash_type, k, alt));
    if (w->range)
        json_object_set_new(key, w->range, key_value(w->range_type, k % 3 + k / 50, alt));
    return key;
}

json_t *wl_item(struct wl *w, unsigned k)
{
    json_t *item = wl_key(w, k);
    unsigned n = 1 + pick(w, 7);

    for (unsigned i = 0; i < n; i++) {
        const struct name *nm = &names[pick(w, sizeof(names) / sizeof(*names))];

        if ((nm->n == strlen(w->hash) && memcmp(nm->s, w->hash, nm->n) == 0) ||
            (w->range && nm->n == strlen(w->range) && memcmp(nm->s, w->range, nm->n) == 0) ||
            json_object_getn(item, nm->s, nm->n))
            continue;
        json_object_setn_new_nocheck(item, nm->s, nm->n,
                                     value_of(w, family_of(nm->s, nm->n, 0), nm, 3));
    }
    if (pick(w, 10) == 0)
        json_object_set_new(item, "deep", deep(20 + pick(w, 8)));
    if (w->big_every && pick(w, w->big_every) == 0) {
        size_t len = 380 * 1024;
        char *s = malloc(len + 1);

        for (size_t i = 0; i < len; i++)
            s[i] = (char)('a' + (i * 7 + k) % 26);
        s[len] = '\0';
        json_object_set_new(item, "big", typed("S", json_string(s)));
        free(s);
    }
    return item;
}

unsigned wl_step(struct wl *w)
{
    unsigned k = pick(w, w->nkeys), r = pick(w, 100);

    if (r < 45) {
        json_decref(ddbc_callj("PutItem", json_pack("{s:s, s:o}", "TableName", w->table, "Item",
                                                     wl_item(w, k))));
        return 1;
    }
    if (r < 70) {
        /* UpdateItem echoes the key spelling it was given into the record. */
        static const struct name u = { "u", 1 };
        json_t *body = json_pack("{s:s, s:o, s:s, s:{s:o}}", "TableName", w->table, "Key",
                                 wl_key(w, k), "UpdateExpression",
                                 pick(w, 4) ? "SET u = :v" : "SET u = :v REMOVE a1",
                                 "ExpressionAttributeValues", ":v",
                                 value_of(w, family_of("u", 1, 0), &u, 2));

        json_decref(ddbc_callj("UpdateItem", body));
        return 1;
    }
    if (r < 85) {
        json_decref(ddbc_callj("DeleteItem", json_pack("{s:s, s:o}", "TableName", w->table,
                                                        "Key", wl_key(w, k))));
        return 1;
    }
    {
        json_t *reqs = json_array(), *seen = json_array();
        unsigned n = 2 + pick(w, 24);

        for (unsigned i = 0; i < n; i++) {
            unsigned kk = pick(w, w->nkeys);
            bool dup = false;

            /* BatchWriteItem refuses two writes to one key. */
            for (size_t j = 0; j < json_array_size(seen); j++)
                dup |= json_integer_value(json_array_get(seen, j)) == kk;
            if (dup)
                continue;
            json_array_append_new(seen, json_integer(kk));
            if (pick(w, 5))
                json_array_append_new(reqs, json_pack("{s:{s:o}}", "PutRequest", "Item",
                                                      wl_item(w, kk)));
            else
                json_array_append_new(reqs, json_pack("{s:{s:o}}", "DeleteRequest", "Key",
                                                      wl_key(w, kk)));
        }
        json_decref(ddbc_callj("BatchWriteItem",
                               json_pack("{s:{s:o}}", "RequestItems", w->table, reqs)));
        n = (unsigned)json_array_size(seen);
        json_decref(seen);
        return n;
    }
}

void wl_fill(struct wl *w, unsigned from, unsigned to)
{
    for (unsigned k = from; k < to;) {
        json_t *reqs = json_array();

        for (unsigned i = 0; i < 25 && k < to; i++, k++)
            json_array_append_new(reqs, json_pack("{s:{s:o}}", "PutRequest", "Item",
                                                  wl_item(w, k)));
        json_decref(ddbc_callj("BatchWriteItem",
                               json_pack("{s:{s:o}}", "RequestItems", w->table, reqs)));
    }
}
