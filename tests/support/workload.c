#include "tests/support/workload.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/ddbclient.h"

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

static const char *const strings[] = {
    "plain", "with \"quotes\" and \\backslash\\", "pipe|separated|value", "tab\tnewline\nnul-ish \x01",
    "naïve café", "日本語のテキスト", "emoji 😀🎉 astral 𝄞", "</script><b>&amp;</b>", "   spaces   ",
    "a", "\xE2\x80\xA8 line separator", "{\"json\":[1,2]}",
};

static const char *const numbers[] = {
    "0", "1", "-1", "42", "3.14159", "-0.5", "12345678901234567890123456789012345678",
    "-12345678901234567890123456789012345678", "0.12345678901234567890123456789012345678",
    "1E+125", "-1E+125", "9.9999999999999999999999999999999999999E+125",
    "-9.9999999999999999999999999999999999999E+125", "1E-130", "-1E-130", "1.5e10", "2.50",
    "100", "1e2", "0.000001",
};

static json_t *rand_s(struct wl *w)
{
    char buf[128];

    if (pick(w, 3) == 0) {
        snprintf(buf, sizeof(buf), "s%llu", (unsigned long long)(wl_rand(w) % 100000));
        return json_string(buf);
    }
    return json_string(strings[pick(w, sizeof(strings) / sizeof(*strings))]);
}

static json_t *rand_n(struct wl *w)
{
    char buf[64];

    if (pick(w, 2) == 0) {
        snprintf(buf, sizeof(buf), "%lld", (long long)(wl_rand(w) % 2000001) - 1000000);
        return json_string(buf);
    }
    return json_string(numbers[pick(w, sizeof(numbers) / sizeof(*numbers))]);
}

static json_t *rand_b(struct wl *w)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char buf[64];
    unsigned n = 1 + pick(w, 10), i;

    for (i = 0; i < n * 4; i++)
        buf[i] = b64[pick(w, 64)];
    buf[i] = '\0';
    return json_string(buf);
}

static json_t *typed(const char *t, json_t *v)
{
    json_t *o = json_object();

    json_object_set_new(o, t, v);
    return o;
}

static json_t *rand_set(struct wl *w, const char *t)
{
    json_t *a = json_array();
    unsigned n = 1 + pick(w, 4);

    for (unsigned i = 0; i < n; i++) {
        char buf[64];

        if (t[0] == 'S')
            snprintf(buf, sizeof(buf), "%s-%u", pick(w, 2) ? "tag" : "ünï", i);
        else if (t[0] == 'N')
            snprintf(buf, sizeof(buf), "%u.%u", i, pick(w, 1000));
        else {
            json_t *b = rand_b(w);

            snprintf(buf, sizeof(buf), "%c%s", "ABCDEFGH"[i], json_string_value(b) + 1);
            json_decref(b);
        }
        json_array_append_new(a, json_string(buf));
    }
    return typed(t, a);
}

static json_t *rand_value(struct wl *w, int depth)
{
    switch (pick(w, depth > 0 ? 11 : 9)) {
    case 0: return typed("S", rand_s(w));
    case 1: return typed("N", rand_n(w));
    case 2: return typed("B", rand_b(w));
    case 3: return typed("BOOL", json_boolean(pick(w, 2)));
    case 4: return typed("NULL", json_true());
    case 5: return rand_set(w, "SS");
    case 6: return rand_set(w, "NS");
    case 7: return rand_set(w, "BS");
    case 8: return typed("N", rand_n(w));
    case 9: {
        json_t *m = json_object();
        unsigned n = pick(w, 4);

        for (unsigned i = 0; i < n; i++) {
            char k[32];

            snprintf(k, sizeof(k), "k%u", i);
            json_object_set_new(m, k, rand_value(w, depth - 1));
        }
        return typed("M", m);
    }
    default: {
        json_t *l = json_array();
        unsigned n = pick(w, 4);

        for (unsigned i = 0; i < n; i++)
            json_array_append_new(l, rand_value(w, depth - 1));
        return typed("L", l);
    }
    }
}

/* Nested n levels deep, alternating maps and lists. */
static json_t *deep(unsigned n)
{
    json_t *v = typed("S", json_string("bottom"));

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

static json_t *key_value(const char *type, unsigned k, bool alt)
{
    char buf[128];

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
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        snprintf(buf, sizeof(buf), "%c%c%c%c", b64[k % 64], b64[(k / 64) % 64], b64[(k / 4096) % 64], 'A');
        return typed("B", json_string(buf));
    }
    snprintf(buf, sizeof(buf), k % 5 == 1 ? "key|%u\\x" : k % 5 == 2 ? "ключ %u" : "k%u", k);
    return typed("S", json_string(buf));
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
    unsigned n = 1 + pick(w, 6);

    for (unsigned i = 0; i < n; i++) {
        char name[32];

        snprintf(name, sizeof(name), "a%u", pick(w, 8));
        json_object_set_new(item, name, rand_value(w, 3));
    }
    if (pick(w, 10) == 0)
        json_object_set_new(item, "deep", deep(20 + pick(w, 8)));
    if (w->big_every && pick(w, w->big_every) == 0) {
        size_t len = 390 * 1024;
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
        json_t *body = json_pack("{s:s, s:o, s:s, s:{s:o}}", "TableName", w->table, "Key",
                                 wl_key(w, k), "UpdateExpression",
                                 pick(w, 4) ? "SET u = :v" : "SET u = :v REMOVE a1",
                                 "ExpressionAttributeValues", ":v", rand_value(w, 2));

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
