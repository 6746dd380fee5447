/* The ground floor's one-of-each helpers (base/): backoff, RFC 3339,
 * JSON extents, secrets, the intrusive list, hex digits.  The copies they replaced behaved a little
 * differently each; these pin the one behaviour all callers now share. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/fpmap.h"
#include "base/backoff.h"
#include "base/bucket.h"
#include "base/hex.h"
#include "base/jcache.h"
#include "base/jsonskip.h"
#include "base/list.h"
#include "base/rfc3339.h"
#include "base/secret.h"
#include "base/siphash.h"
#include "base/swar.h"
#include "base/url.h"
#include "tests/support/rounds.h"

static double rng_value;

static double fixed_rng(void)
{
    return rng_value;
}

/* Full jitter: never 0 (a failure must not turn into a busy loop), never
 * above the cap, and the cap doubles up to its maximum. */
/* RFC 4648 section 4: the 64 characters, "=" only as padding at the end. */
Test(base, b64_valid_takes_the_alphabet_and_nothing_else)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (int c = 0; c < 256; c++) {
        char four[4] = { 'A', (char)c, 'B', 'C' };
        bool in = c && strchr(alpha, c);

        cr_assert_eq(b64_valid(four, 4), in, "byte 0x%02x", c);
    }
    cr_assert(b64_valid("", 0));
    cr_assert(b64_valid("AA==", 4));
    cr_assert(b64_valid("AAA=", 4));
    cr_assert_not(b64_valid("A===", 4));
    cr_assert_not(b64_valid("A=AA", 4));
    cr_assert_not(b64_valid("AAA", 3));
}

Test(base, backoff_draws_in_one_to_the_cap)
{
    backoff_set_rng(fixed_rng);
    rng_value = 0;
    cr_assert_eq(backoff_ms(100, 10000, 0), 1);
    cr_assert_eq(backoff_ms(100, 10000, 30), 1);
    rng_value = 0.9999999;
    cr_assert_eq(backoff_ms(100, 10000, 0), 100);
    cr_assert_eq(backoff_ms(100, 10000, 3), 800);
    cr_assert_eq(backoff_ms(100, 10000, 30), 10000);
    cr_assert_eq(backoff_jitter_ms(0), 0);
    backoff_set_rng(NULL);
    for (int i = 0; i < 1000; i++) {
        long ms = backoff_ms(50, 400, (unsigned)(i % 8));

        cr_assert(ms >= 1 && ms <= 400, "draw %d: %ld ms", i, ms);
    }
}

/* One parser for every RFC 3339 time the daemon reads (credentials'
 * Expiration, replay --since, the checkpoint's "updated"): offsets are
 * digits, and the writer's text reads back to the same second. */
Test(base, rfc3339_reads_offsets_as_digits_only_and_round_trips)
{
    char text[RFC3339_LEN + 1];
    time_t t;

    cr_assert_eq(rfc3339_parse("2023-11-14T23:13:20+01:00", &t), 0);
    cr_assert_eq(t, 1700000000);
    cr_assert_eq(rfc3339_parse("2023-11-14T22:13:20.5z", &t), 0);
    cr_assert_eq(t, 1700000000);
    cr_assert_eq(rfc3339_parse("2023-11-14T23:13:20+0a:00", &t), -EINVAL);
    cr_assert_eq(rfc3339_parse("2023-11-14T23:13:20+01:0x", &t), -EINVAL);
    cr_assert_eq(rfc3339_parse("2023-11-14T23:13:20", &t), -EINVAL, "a zone is required");
    cr_assert_eq(rfc3339_parse("2023-13-14T23:13:20Z", &t), -EINVAL);
    cr_assert_eq(rfc3339_parse("2023-11-14T23:13:20Z ", &t), -EINVAL, "nothing after");
    rfc3339_format(1700000000, text);
    cr_assert_str_eq(text, "2023-11-14T22:13:20Z");
    cr_assert_eq(rfc3339_parse(text, &t), 0);
    cr_assert_eq(t, 1700000000);
    rfc3339_format(-5, text);
    cr_assert_str_eq(text, "1970-01-01T00:00:00Z");
}

static long extent(const char *text)
{
    const char *end = jsonskip_value(text, text + strlen(text));

    return end ? (long)(end - text) : -1;
}

/* The extent of one value, whatever its strings hold (escaped quotes,
 * brackets, backslashes), and NULL when the text ends inside it. */
Test(base, jsonskip_finds_where_a_value_ends)
{
    cr_assert_eq(extent("{\"a\":\"}\\\"]\",\"b\":[1,{}]} tail"), 23);
    cr_assert_eq(extent("[\"\\\\\"],"), 6);
    cr_assert_eq(extent("\"x\\\"y\" ,"), 6);
    cr_assert_eq(extent("12.5e3, 7"), 6);
    cr_assert_eq(extent("true}"), 4);
    cr_assert_eq(extent("{\"a\":[1,2}"), -1);
    cr_assert_eq(extent("\"open"), -1);
    cr_assert_eq(extent("\"ends in a backslash\\"), -1);
}

/* The string's end found 8 bytes at a time, against a byte-by-byte reading:
 * strings of every byte value, quotes and backslashes at every offset of a
 * word. */
/* swar_first names the first byte a mask flags, not a later one the
 * borrow of an earlier match may flag too: the string scanners jump there. */
Test(base, swar_first_is_the_first_flagged_byte)
{
    static const unsigned char pick[] = { '"', '\\', 0x00, 0x1f, 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff };
    uint64_t x = 2463534242ull;

    for (int round = 0; round < test_rounds(200000); round++) {
        char b[8];
        int want = -1, want_below = -1, want_any = -1;

        for (int i = 0; i < 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[i] = (char)(x % 3 ? pick[(x >> 8) % sizeof(pick)] : (x >> 16) & 0xff);
            if (want < 0 && (b[i] == '"' || b[i] == '\\'))
                want = i;
            if (want_below < 0 && (unsigned char)b[i] < 0x20)
                want_below = i;
            if (want_any < 0 && (b[i] == '"' || b[i] == '\\' || (unsigned char)b[i] < 0x20 ||
                                 (unsigned char)b[i] >= 0x80))
                want_any = i;
        }
        uint64_t w = swar_load(b);
        uint64_t m = swar_quote_or_backslash(w);

        cr_assert_eq(m != 0, want >= 0, "round %d", round);
        if (m)
            cr_assert_eq(swar_first(m), (unsigned)want, "round %d", round);
        m = swar_below(w, 0x20);
        cr_assert_eq(m != 0, want_below >= 0, "round %d", round);
        if (m)
            cr_assert_eq(swar_first(m), (unsigned)want_below, "round %d", round);
        /* the one-pass reader's mask: any byte a string scan must look at */
        m = swar_quote_or_backslash(w) | swar_below(w, 0x20) | (w & SWAR_HIGH);
        cr_assert_eq(m != 0, want_any >= 0, "round %d", round);
        if (m)
            cr_assert_eq(swar_first(m), (unsigned)want_any, "round %d", round);
        /* swar_skip stops at that byte, or with fewer than 8 bytes left */
        cr_assert_eq(swar_skip(b, b + 8, swar_quote_or_backslash), want >= 0 ? b + want : b + 8,
                     "round %d", round);
        cr_assert_eq(swar_skip(b, b + 7, swar_quote_or_backslash), b, "round %d", round);
    }
}

Test(base, jsonskip_string_ends_where_a_byte_loop_ends)
{
    uint64_t x = 88172645463325252ull;
    char s[64];

    for (int round = 0; round < test_rounds(200000); round++) {
        size_t len = 1 + round % 40;
        const char *want = NULL;

        s[0] = '"';
        for (size_t i = 1; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* every byte value; quotes and backslashes one time in four */
            s[i] = (char)(x % 4 ? (x >> 8) & 0xff : (x >> 8) % 2 ? '"' : '\\');
        }
        for (size_t i = 1; i < len; i++) {
            if (s[i] == '\\') {
                i++;
            } else if (s[i] == '"') {
                want = s + i + 1;
                break;
            }
        }
        cr_assert_eq(jsonskip_string(s, s + len), want, "round %d", round);
    }
}

/* SipHash-2-4 with its 128-bit output, against OpenSSL's SIPHASH MAC (size
 * 16) on random keys and messages fed in random parts; and the reference
 * code's first vector (key 00..0f, the empty message). */
static void openssl_siphash128(const uint8_t key[16], const uint8_t *m, size_t n, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    unsigned int size = 16;
    OSSL_PARAM params[] = { OSSL_PARAM_construct_uint(OSSL_MAC_PARAM_SIZE, &size),
                            OSSL_PARAM_construct_end() };
    size_t outl = 0;

    cr_assert_not_null(ctx);
    cr_assert_eq(EVP_MAC_init(ctx, key, 16, params), 1);
    cr_assert_eq(EVP_MAC_update(ctx, m, n), 1);
    cr_assert_eq(EVP_MAC_final(ctx, out, &outl, 16), 1);
    cr_assert_eq(outl, 16);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

Test(base, siphash128_is_openssls_siphash_in_any_parts)
{
    static const uint8_t first[16] = { 0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,
                                       0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93 };
    uint8_t key[16], m[200], want[16], got[16];
    struct siphash h;

    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    siphash_init(&h, key);
    siphash_final128(&h, got);
    cr_assert_arr_eq(got, first, 16);

    srand(7);
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)rand() % sizeof(m), at = 0;

        for (int i = 0; i < 16; i++)
            key[i] = (uint8_t)rand();
        for (size_t i = 0; i < n; i++)
            m[i] = (uint8_t)rand();
        openssl_siphash128(key, m, n, want);
        siphash_init(&h, key);
        while (at < n) {
            size_t part = (size_t)rand() % 12;

            part = part > n - at ? n - at : part;
            siphash_update(&h, m + at, part);
            at += part;
        }
        siphash_final128(&h, got);
        cr_assert_arr_eq(got, want, 16, "round %d, %zu bytes", round, n);
    }
}

/* fpmap: each key finds its own entry and no other (keys of any bytes,
 * NUL and 0xff included, up to DynamoDB's 2 kB of key; keys sharing a bucket
 * hash; the same bytes split between the two parts, or not), oldest first
 * with touch, removal and reuse of slots, through several growths; empty,
 * it gives its memory back and works again. */
#define FPKEYS 3000
#define FPKEY_MAX 2052

static struct fpkey fk(const void *a, size_t alen, const void *b, size_t blen, uint32_t hash)
{
    return (struct fpkey){ .a = a, .alen = alen, .b = b, .blen = blen, .hash = hash };
}

Test(base, fpmap_keeps_each_key_apart_oldest_first)
{
    static unsigned char keys[FPKEYS][FPKEY_MAX];
    static size_t lens[FPKEYS];
    struct fpmap m;
    uint32_t idx[FPKEYS], i;
    struct fpkey k;

    srand(11);
    for (int n = 0; n < FPKEYS; n++) { /* n's 4 bytes make each key distinct */
        memcpy(keys[n], &n, 4);
        lens[n] = 4 + (n % 100 == 0 ? 2048 : (size_t)rand() % 60);
        for (size_t j = 4; j < lens[n]; j++)
            keys[n][j] = (unsigned char)rand();
    }
    fpmap_init(&m, sizeof(uint64_t));
    for (int n = 0; n < FPKEYS; n++) {
        k = fk(keys[n], lens[n], NULL, 0, (uint32_t)n % 7); /* few hashes: long buckets */
        cr_assert_eq(fpmap_find(&m, &k), 0);
        idx[n] = fpmap_add(&m, &k);
        cr_assert_neq(idx[n], 0);
        *(uint64_t *)fpmap_value(&m, idx[n]) = (uint64_t)n;
    }
    cr_assert_eq(fpmap_count(&m), FPKEYS);
    for (int n = 0; n < FPKEYS; n++) {
        k = fk(keys[n], lens[n], NULL, 0, (uint32_t)n % 7);
        cr_assert_eq(fpmap_find(&m, &k), idx[n], "key %d", n);
        cr_assert_eq(*(uint64_t *)fpmap_value(&m, idx[n]), (uint64_t)n);
        /* The same bytes split elsewhere are the same key. */
        k = fk(keys[n], 3, keys[n] + 3, lens[n] - 3, (uint32_t)n % 7);
        cr_assert_eq(fpmap_find(&m, &k), idx[n], "key %d split", n);
        /* One byte less, or a NUL more, is another key. */
        k = fk(keys[n], lens[n] - 1, NULL, 0, (uint32_t)n % 7);
        cr_assert_eq(fpmap_find(&m, &k), 0);
        k = fk(keys[n], lens[n], "", 1, (uint32_t)n % 7);
        cr_assert_eq(fpmap_find(&m, &k), 0);
        k = fk(keys[n], lens[n], NULL, 0, (uint32_t)(n + 1) % 7); /* another hash */
        cr_assert_eq(fpmap_find(&m, &k), 0);
    }

    /* Oldest first; a touched entry becomes the newest. */
    cr_assert_eq(fpmap_oldest(&m), idx[0]);
    fpmap_touch(&m, idx[0]);
    cr_assert_eq(fpmap_oldest(&m), idx[1]);
    for (int n = 1; n < FPKEYS - 1; n++) {
        i = fpmap_oldest(&m);
        cr_assert_eq(i, idx[n]);
        fpmap_remove(&m, i);
    }
    cr_assert_eq(fpmap_count(&m), 2);
    cr_assert_eq(fpmap_oldest(&m), idx[FPKEYS - 1]);
    /* A freed slot is reused; the survivors still answer. */
    k = fk("new", 3, NULL, 0, 1);
    i = fpmap_add(&m, &k);
    cr_assert(i != 0 && i != idx[0] && i != idx[FPKEYS - 1]);
    k = fk(keys[0], lens[0], NULL, 0, 0);
    cr_assert_eq(fpmap_find(&m, &k), idx[0]);
    fpmap_remove(&m, idx[0]);
    fpmap_remove(&m, idx[FPKEYS - 1]);
    fpmap_remove(&m, i);
    cr_assert_eq(fpmap_count(&m), 0);
    cr_assert_null(m.v, "an empty map gives its memory back");
    k = fk("again", 5, NULL, 0, 3);
    i = fpmap_add(&m, &k);
    cr_assert_eq(fpmap_find(&m, &k), i);
    cr_assert_eq(*(uint64_t *)fpmap_value(&m, i), 0, "a new value is zeroed");
    fpmap_free(&m);
}


Test(base, a_freed_secret_is_null_and_null_is_fine)
{
    char *s = strdup("AKIDEXAMPLE/wJalrXUtnFEMI");
    char *none = NULL;

    secret_free(&s);
    cr_assert_null(s);
    secret_free(&none);
    cr_assert_null(none);
}

struct elem {
    int v;
    struct list link;
};

/* The values of head's elements, first to last, as digits. */
static const char *list_text(struct list *head)
{
    static char text[16];
    size_t n = 0;
    struct list *l;

    list_foreach(l, head)
        if (n < sizeof(text) - 1)
            text[n++] = (char)('0' + list_entry(l, struct elem, link)->v);
    text[n] = '\0';
    return text;
}

/* The one list every module links its queues with: order kept at both
 * ends, an element unlinked from anywhere, a whole list moved in order. */
Test(base, list_keeps_order_at_both_ends_and_moves_whole)
{
    struct elem e[6] = { { .v = 0 }, { .v = 1 }, { .v = 2 }, { .v = 3 }, { .v = 4 }, { .v = 5 } };
    struct list a, b;

    list_init(&a);
    list_init(&b);
    cr_assert(list_empty(&a));
    cr_assert_null(list_first_entry(&a, struct elem, link));
    list_push_tail(&a, &e[1].link);
    list_push_tail(&a, &e[2].link);
    list_push_head(&a, &e[0].link);
    list_insert(&e[2].link, &e[3].link);
    cr_assert_str_eq(list_text(&a), "0132");
    list_remove(&e[3].link);
    cr_assert_str_eq(list_text(&a), "012");
    list_remove(&e[0].link);
    list_remove(&e[2].link);
    cr_assert_str_eq(list_text(&a), "1");
    cr_assert_eq(list_first_entry(&a, struct elem, link), &e[1]);
    list_push_tail(&b, &e[4].link);
    list_push_tail(&a, &e[5].link);
    list_move(&b, &a);
    cr_assert(list_empty(&a));
    cr_assert_str_eq(list_text(&b), "415");
    list_move(&b, &a);
    cr_assert_str_eq(list_text(&b), "415", "moving an empty list changes nothing");
    list_push_tail(&a, &e[0].link);
    cr_assert_str_eq(list_text(&a), "0", "a moved-from head is usable again");
}

/* Percent escapes, \u escapes and chunk sizes all read hex digits in
 * either case; nothing else is one. */
Test(base, hex_digits_of_either_case_and_nothing_else)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 0; i < 16; i++) {
        cr_assert_eq(hex_value(digits[i]), i);
        cr_assert_eq(hex_value((char)toupper((unsigned char)digits[i])), i);
    }
    for (const char *p = "gG/:@`xX \0"; *p; p++)
        cr_assert_eq(hex_value(*p), -1, "'%c'", *p);
    cr_assert_eq(hex_value('\0'), -1);
    cr_assert_eq(hex_value((char)0xc1), -1);
}

/* An index or alias name in a URL path: every byte but the unreserved ones
 * percent-encoded, so "a/b", "?" or a space cannot change the request. */
Test(base, url_path_encodes_a_name_as_one_segment)
{
    char *p = url_path("/_alias/", "posts-v2_x.~");

    cr_assert_str_eq(p, "/_alias/posts-v2_x.~");
    free(p);
    p = url_path("/", "a b/c?d%\xc3\xa9");
    cr_assert_str_eq(p, "/a%20b%2Fc%3Fd%25%C3%A9");
    free(p);
}

/* The Scan's token bucket: a second's budget shared between the segments,
 * a wait when it is empty, halved on throttling and won back by 5 % a page
 * up to the rate asked for. */
Test(base, bucket_shares_a_second_halves_and_wins_back)
{
    struct bucket b;
    uint64_t wait = 0;

    int n;

    bucket_init(&b, 0, 0);
    n = bucket_take(&b, 5000, 4, 1000, &wait);
    cr_assert_eq(n, -1, "no rate: no Limit");
    bucket_init(&b, 10, 0);
    n = bucket_take(&b, 0, 2, 1000, &wait);
    cr_assert_eq(n, 0, "empty at the start");
    cr_assert_eq(wait, 100, "one token comes in 100 ms at 10/s");
    n = bucket_take(&b, 5000, 2, 1000, &wait);
    cr_assert_eq(n, 5, "a second's worth at most, halved");
    n = bucket_take(&b, 5000, 2, 3, &wait);
    cr_assert_eq(n, 3, "never above max");
    bucket_give(&b, 3);
    n = bucket_take(&b, 5000, 1, 1000, &wait);
    cr_assert_eq(n, 5, "what was given back");
    /* criterion's macros may read their arguments more than once */
    double r1 = bucket_throttled(&b, 0), r2 = bucket_throttled(&b, 0), r3, r4;

    cr_assert_float_eq(r1, 5.0, 1e-9);
    cr_assert_float_eq(r2, 2.5, 1e-9);
    for (int i = 0; i < 100; i++)
        bucket_page(&b);
    cr_assert_float_eq(b.rate, 10.0, 1e-9, "back to the rate asked for, not above");
    bucket_init(&b, 0, 0);
    r3 = bucket_throttled(&b, 300);
    r4 = bucket_throttled(&b, 300);
    cr_assert_float_eq(r3, 150.0, 1e-9, "uncapped: half of what was seen");
    cr_assert_float_eq(r4, 75.0, 1e-9);
}

/* jcache: a freed small block is handed out again for its size, big ones and
 * what passes the byte cap go back to malloc, and under a random mix of
 * sizes every block holds what was written to it. */
Test(base, jcache_reuses_small_blocks_within_its_cap)
{
    size_t blocks, bytes;
    void *a, *b, *big;
    unsigned seed = 7;
    struct { unsigned char *p; size_t n; unsigned char fill; } live[512] = { 0 };

    jcache_drain();
    a = jcache_malloc(40);
    cr_assert_not_null(a);
    jcache_free(a);
    jcache_held(&blocks, &bytes);
    cr_assert_eq(blocks, 1);
    cr_assert_eq(bytes, malloc_usable_size(a));
    b = jcache_malloc(33); /* a block of 40 serves it */
    cr_assert_eq(b, a, "the freed block is taken back for its size");
    jcache_held(&blocks, &bytes);
    cr_assert_eq(blocks, 0);
    big = jcache_malloc(JCACHE_MAX_BLOCK + 1);
    jcache_free(big);
    jcache_held(&blocks, &bytes);
    cr_assert_eq(blocks, 0, "a large block goes back to malloc");
    free(b); /* a cached block is a malloc block */

    /* Past the byte cap, freed blocks go back to malloc. */
    for (size_t i = 0; i < JCACHE_MAX_BYTES / 24 + 100; i++) {
        void *p = malloc(24);

        jcache_free(p);
    }
    jcache_held(&blocks, &bytes);
    cr_assert_leq(bytes, JCACHE_MAX_BYTES);
    cr_assert_gt(bytes, JCACHE_MAX_BYTES - 64);
    jcache_drain();
    jcache_held(&blocks, &bytes);
    cr_assert_eq(blocks + bytes, 0);

    for (int round = 0; round < test_rounds(200000); round++) {
        int k = (int)(rand_r(&seed) % 512);

        if (live[k].p) {
            for (size_t i = 0; i < live[k].n; i++)
                cr_assert_eq(live[k].p[i], live[k].fill, "block %d byte %zu", k, i);
            jcache_free(live[k].p);
            live[k].p = NULL;
        } else {
            live[k].n = 1 + rand_r(&seed) % (rand_r(&seed) % 8 ? 120 : 700);
            live[k].p = jcache_malloc(live[k].n);
            cr_assert_not_null(live[k].p);
            cr_assert_geq(malloc_usable_size(live[k].p), live[k].n);
            live[k].fill = (unsigned char)rand_r(&seed);
            memset(live[k].p, live[k].fill, live[k].n);
        }
    }
    for (int k = 0; k < 512; k++)
        jcache_free(live[k].p);
    jcache_drain();
}

/* jansson on the cache: trees built and freed, json_dumps' text freed with
 * free(), as the daemon does. */
Test(base, jansson_runs_on_jcache)
{
    json_set_alloc_funcs(jcache_malloc, jcache_free);
    for (int i = 0; i < 1000; i++) {
        json_t *v = json_pack("{s:s, s:[i, f, s], s:{s:b}}", "id", "a-b-c", "l", i, 1.5,
                              "x", "m", "k", 1);
        char *text = json_dumps(v, JSON_COMPACT);

        cr_assert_not_null(text);
        cr_assert(strstr(text, "\"id\":\"a-b-c\""));
        free(text);
        json_decref(v);
    }
    json_set_alloc_funcs(malloc, free);
    jcache_drain();
}
