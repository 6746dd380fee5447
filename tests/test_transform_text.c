/* transform_record_text against transform_record: whatever record text the
 * one-pass reader takes, the tree path (jsonx_loadb, then transform_record)
 * must make the same document of, byte for byte; what it gives back, the
 * tree decides.  Records are drawn from the whole space DynamoDB allows
 * (tests/support/workload: every type, 38-digit numbers, binary keys, deep
 * nesting, names and strings from every plane, escapes), in every member
 * order and spelling jansson writes, then broken at random. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "indexer/transform.h"
#include "tests/support/workload.h"

TestSuite(transform_text, .timeout = 60);

struct pair {
    struct doc fast, tree;
    struct buf err;
};

static void pair_init(struct pair *p, size_t source_max, size_t keys_max)
{
    memset(p, 0, sizeof(*p));
    buf_init(&p->fast.source, source_max);
    buf_init(&p->fast.keys, keys_max);
    buf_init(&p->tree.source, source_max);
    buf_init(&p->tree.keys, keys_max);
    buf_init(&p->err, 1024);
}

static void pair_close(struct pair *p)
{
    buf_close(&p->fast.source);
    buf_close(&p->fast.keys);
    buf_close(&p->tree.source);
    buf_close(&p->tree.keys);
    buf_close(&p->err);
}

static bool same_buf(const struct buf *a, const struct buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/* The member's string as source_stream_value takes a shard ("" for none). */
static const char *shard_of(json_t *rec, const char *name)
{
    const char *v = json_string_value(json_object_get(rec, name));

    return v ? v : "";
}

/* Both readings of text; true when the one-pass reader took it, and then
 * asserts the tree made the same action of it. */
static bool both(const struct transform_cfg *cfg, const char *text, size_t len, struct pair *p)
{
    struct transform_text_extra x;
    enum transform_result tr;
    json_t *rec;

    if (!transform_record_text(cfg, text, len, &p->fast, &x))
        return false;
    rec = jsonx_loadb(text, len, 0, NULL);
    cr_assert(rec, "taken, but not JSON to jsonx_loadb: %.*s", (int)len, text);
    tr = transform_record(cfg, rec, &p->tree, &p->err);
    cr_assert_eq(tr, TR_DOC, "taken, but the tree says %s (%s): %.*s", transform_result_name(tr),
                 p->err.ptr ? p->err.ptr : "", (int)len, text);
    cr_assert_eq(p->fast.op, p->tree.op, "op: %.*s", (int)len, text);
    cr_assert_eq(p->fast.index, p->tree.index);
    cr_assert(p->fast.id_len == p->tree.id_len &&
                  memcmp(p->fast.id, p->tree.id, p->tree.id_len + 1) == 0,
              "id %.*s, tree %.*s: %.*s", (int)p->fast.id_len, p->fast.id, (int)p->tree.id_len,
              p->tree.id, (int)len, text);
    cr_assert(same_buf(&p->fast.keys, &p->tree.keys), "keys %.*s, tree %.*s",
              (int)p->fast.keys.len, p->fast.keys.ptr ? p->fast.keys.ptr : "",
              (int)p->tree.keys.len, p->tree.keys.ptr ? p->tree.keys.ptr : "");
    cr_assert_str_eq(p->fast.seq, p->tree.seq);
    cr_assert_eq(p->fast.created, p->tree.created, "created: %.*s", (int)len, text);
    cr_assert(same_buf(&p->fast.source, &p->tree.source), "source\n%.*s\ntree\n%.*s\nof %.*s",
              (int)p->fast.source.len, p->fast.source.ptr ? p->fast.source.ptr : "",
              (int)p->tree.source.len, p->tree.source.ptr ? p->tree.source.ptr : "", (int)len,
              text);
    cr_assert_str_eq(x.shard, shard_of(rec, "shardId"));
    cr_assert_str_eq(x.parent, shard_of(rec, "parentShardId"));
    json_decref(rec);
    return true;
}

/* ---- random records ---- */

struct table {
    const char *hash, *hash_type, *range, *range_type;
};

static const struct table tables[] = {
    { "pk", "S", "sk", "N" },
    { "id", "B", NULL, NULL },
    { "n", "N", "s", "S" },
};

static const char *const some_names[] = { "s", "n38", "deep", "tags" };

static void digits(struct wl *w, char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('0' + wl_rand(w) % 10);
    if (n > 1 && s[0] == '0')
        s[0] = '1';
    s[n] = '\0';
}

/* Sets name in obj, members in a random order (obj is rebuilt). */
static json_t *shuffled(struct wl *w, json_t *obj)
{
    const char *k[32];
    json_t *v[32], *out = json_object(), *e;
    size_t n = 0;
    const char *key;

    json_object_foreach(obj, key, e) {
        if (n < 32) {
            k[n] = key;
            v[n++] = e;
        }
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = wl_rand(w) % i;
        const char *tk = k[i - 1];
        json_t *tv = v[i - 1];

        k[i - 1] = k[j], v[i - 1] = v[j];
        k[j] = tk, v[j] = tv;
    }
    for (size_t i = 0; i < n; i++)
        json_object_set(out, k[i], v[i]);
    json_decref(obj);
    return out;
}

/* A stream record as GetRecords or a Lambda event gives it. */
static json_t *random_record(struct wl *w, unsigned k)
{
    static const char *const events[] = { "INSERT", "MODIFY", "REMOVE" };
    const char *ev = events[wl_rand(w) % 3];
    json_t *dyn = json_object(), *rec = json_object();
    char seq[41];
    unsigned r = (unsigned)(wl_rand(w) % 100);

    if (r < 85)
        json_object_set_new(dyn, "Keys", wl_key(w, k));
    if (ev[0] != 'R' || r % 7 == 0)
        json_object_set_new(dyn, "NewImage", wl_item(w, k));
    if (ev[0] != 'I' && r % 3 == 0)
        json_object_set_new(dyn, "OldImage", wl_item(w, k));
    if (r % 11) {
        digits(w, seq, 21 + wl_rand(w) % 20);
        json_object_set_new(dyn, "SequenceNumber", json_string(seq));
    }
    if (r % 5 == 0)
        json_object_set_new(dyn, "ApproximateCreationDateTime",
                            json_real(1.7e9 + (double)(wl_rand(w) % 100000000) / 1000.0));
    else if (r % 5 != 1)
        json_object_set_new(dyn, "ApproximateCreationDateTime",
                            json_integer(1700000000 + (json_int_t)(wl_rand(w) % 100000)));
    json_object_set_new(dyn, "SizeBytes", json_integer((json_int_t)(wl_rand(w) % 400000)));
    json_object_set_new(dyn, "StreamViewType", json_string("NEW_AND_OLD_IMAGES"));
    json_object_set_new(rec, "eventID", json_string("c81e728d9d4c2f636f067f89cc14862c"));
    json_object_set_new(rec, "eventName", json_string(ev));
    json_object_set_new(rec, "eventVersion", json_string("1.1"));
    json_object_set_new(rec, "eventSource", json_string("aws:dynamodb"));
    json_object_set_new(rec, "awsRegion", json_string("eu-west-1"));
    if (ev[0] == 'R' && r % 4 == 0)
        json_object_set_new(rec, "userIdentity",
                            json_pack("{s:s,s:s}", "type", "Service", "principalId",
                                      "dynamodb.amazonaws.com"));
    if (r % 6 == 0)
        json_object_set_new(rec, "shardId", json_string("shardId-00000001700000000000-0a1b2c3d"));
    if (r % 12 == 0)
        json_object_set_new(rec, "parentShardId",
                            json_string("shardId-00000001600000000000-9f8e7d6c"));
    json_object_set_new(rec, "dynamodb", shuffled(w, dyn));
    return shuffled(w, rec);
}

/* The time as the Streams API writes it, Java's Double.toString
 * (1.46480431E9), or as printf's %E (1.464804310E+09): text with the token
 * after "ApproximateCreationDateTime" rewritten (a new string; text freed). */
static char *time_as_exponent(struct wl *w, char *text)
{
    char *at = strstr(text, "\"ApproximateCreationDateTime\":"), *num, *end, e[64], *out;
    double t;
    int n;

    if (!at)
        return text;
    num = at + strlen("\"ApproximateCreationDateTime\":");
    while (*num == ' ')
        num++;
    t = strtod(num, &end);
    if (wl_rand(w) % 2) {
        char m[32], *z;

        snprintf(m, sizeof(m), "%.9f", t / 1e9); /* 1.464804310 */
        for (z = m + strlen(m) - 1; *z == '0' && z[-1] != '.'; z--)
            *z = '\0';
        n = snprintf(e, sizeof(e), "%sE9", m);
    } else {
        n = snprintf(e, sizeof(e), "%.9E", t);
    }
    out = malloc(strlen(text) + (size_t)n + 1);
    memcpy(out, text, (size_t)(num - text));
    memcpy(out + (num - text), e, (size_t)n);
    strcpy(out + (num - text) + n, end);
    free(text);
    return out;
}

static char *dump(struct wl *w, json_t *rec)
{
    static const size_t flags[] = { JSON_COMPACT, 0, JSON_INDENT(2),
                                    JSON_COMPACT | JSON_ENSURE_ASCII, JSON_ESCAPE_SLASH };
    char *text = json_dumps(rec, flags[wl_rand(w) % 5]);

    return text && wl_rand(w) % 3 == 0 ? time_as_exponent(w, text) : text;
}

static void count_rename(void *arg, const char *name, size_t len, int depth)
{
    (*(unsigned *)arg)++;
}

/* A record given back must have a reason: the tree refused, skipped or
 * renamed, or the text holds an escape for NUL (what the generator makes;
 * it makes no duplicate, lone surrogate or long number). */
static void plain_given_back(const struct transform_cfg *cfg, const char *text, struct pair *p)
{
    struct transform_cfg c = *cfg;
    unsigned renames = 0;
    json_t *rec = jsonx_loadb(text, strlen(text), 0, NULL);

    c.on_rename = count_rename;
    c.rename_arg = &renames;
    if (rec && transform_record(&c, rec, &p->tree, &p->err) == TR_DOC && renames == 0 &&
        !strstr(text, "\\u0000") && (cfg->encrypted == TRANSFORM_ENCRYPTED_AS_IS ||
                                      !strstr(text, "aws_dbe_head")))
        cr_assert_fail("a plain record given back: %s", text);
    json_decref(rec);
}

static void table_cfg(struct transform_cfg *cfg, const struct table *t, unsigned variant)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->index = "posts";
    cfg->id_sep = variant % 4 == 3 ? 'h' : '|';
    cfg->hash_key = t->hash;
    cfg->range_key = t->range;
    if (variant % 5 == 1)
        cfg->on_ttl_delete = TRANSFORM_TTL_KEEP;
    if (variant % 7 == 2) {
        cfg->include = some_names;
        cfg->n_include = 3;
    }
    if (variant % 6 == 4) {
        cfg->exclude = some_names + 1;
        cfg->n_exclude = 2;
    }
    if (variant % 9 == 5)
        cfg->encrypted = TRANSFORM_ENCRYPTED_AS_IS;
}

Test(transform_text, random_records_read_as_the_tree_reads_them)
{
    unsigned total = 0, taken = 0;
    struct pair p;

    for (unsigned ti = 0; ti < sizeof(tables) / sizeof(*tables); ti++) {
        const struct table *t = &tables[ti];
        struct wl w;

        wl_init(&w, 1000 + ti, "posts", t->hash, t->hash_type, t->range, t->range_type, 500);
        w.big_every = 100; /* items near DynamoDB's 400 KB too */
        for (unsigned i = 0; i < 5000; i++) {
            struct transform_cfg cfg;
            json_t *rec = random_record(&w, (unsigned)(wl_rand(&w) % 500));
            char *text = dump(&w, rec);

            table_cfg(&cfg, t, i);
            pair_init(&p, i % 50 == 7 ? 300 : 400 * 1024, i % 40 == 9 ? 12 : 0);
            total++;
            if (both(&cfg, text, strlen(text), &p))
                taken++;
            else
                plain_given_back(&cfg, text, &p);
            pair_close(&p);
            free(text);
            json_decref(rec);
        }
    }
    /* The workload is dense with the hard cases (names the engines refuse,
     * NUL), so about a third of its records are plain. */
    cr_log_info("random records: %u of %u taken in one pass", taken, total);
    cr_assert_gt(taken, total / 5, "only %u of %u taken", taken, total);
}

/* A byte of text replaced, removed or doubled: a record still taken must
 * still be read as the tree reads it. */
Test(transform_text, broken_records_never_read_otherwise)
{
    static const char bytes[] = "\"\\{}[],: \t09e-.uSNBLMtfn/\x00\x01\x7f\x80\xc0\xc3\xed\xef\xf4\xff";
    unsigned total = 0, taken = 0;
    struct pair p;
    struct wl w;

    wl_init(&w, 77, "posts", "pk", "S", "sk", "N", 50);
    for (unsigned i = 0; i < 30000; i++) {
        struct transform_cfg cfg;
        json_t *rec = random_record(&w, (unsigned)(wl_rand(&w) % 50));
        char *text = dump(&w, rec);
        size_t len = strlen(text), at;
        char *m = malloc(len + 2);
        unsigned how = (unsigned)(wl_rand(&w) % 3);

        memcpy(m, text, len + 1);
        for (unsigned n = 1 + (unsigned)(wl_rand(&w) % 3); n && len > 1; n--) {
            at = wl_rand(&w) % len;
            if (how == 0) {
                m[at] = bytes[wl_rand(&w) % (sizeof(bytes) - 1)];
            } else if (how == 1) {
                memmove(m + at, m + at + 1, len - at);
                len--;
            } else {
                memmove(m + at + 1, m + at, len - at + 1);
                len++;
                break; /* one doubling: m has room for one more byte */
            }
        }
        table_cfg(&cfg, &tables[0], i);
        pair_init(&p, 400 * 1024, 0);
        total++;
        taken += both(&cfg, m, len, &p);
        pair_close(&p);
        free(m);
        free(text);
        json_decref(rec);
    }
    cr_log_info("broken records: %u of %u taken in one pass", taken, total);
    cr_assert_gt(taken, 0u, "no broken record was taken: the check proved nothing");
}

/* ---- the cases, one by one ---- */

static const struct transform_cfg plain = {
    .index = "posts", .id_sep = '|', .hash_key = "pk", .range_key = "sk",
};

#define REC(dyn) "{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"111\"," dyn "}}"
#define KEYS "\"Keys\":{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"}}"

static bool taken_by(const struct transform_cfg *cfg, const char *text)
{
    struct pair p;
    bool t;

    pair_init(&p, 400 * 1024, 0);
    t = both(cfg, text, strlen(text), &p);
    pair_close(&p);
    return t;
}

Test(transform_text, plain_records_are_taken)
{
    struct pair p;

    cr_assert(taken_by(&plain, REC(KEYS ",\"NewImage\":{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"},"
                                        "\"t\":{\"S\":\"h\\u00e9llo \\ud83d\\ude00 \\\"q\\\"\\n\"},"
                                        "\"n\":{\"N\":\"-0012.50E+3\"},\"b\":{\"B\":\"AAE=\"},"
                                        "\"x\":{\"NULL\":true},\"y\":{\"BOOL\":false},"
                                        "\"ss\":{\"SS\":[\"b\",\"a\"]},\"ns\":{\"NS\":[\"1E2\"]},"
                                        "\"m\":{\"M\":{\"k\":{\"L\":[{\"S\":\"v\"},{\"M\":{}}]}}},"
                                        "\"e\":{\"L\":[]}}")));
    /* The time as the Streams API writes it (its GetRecords example). */
    {
        const char *text = REC(KEYS ",\"ApproximateCreationDateTime\":1.46480431E9,\"NewImage\":{}");

        pair_init(&p, 400 * 1024, 0);
        cr_assert(both(&plain, text, strlen(text), &p));
        cr_assert_eq(p.fast.created, 1464804310);
        pair_close(&p);
        cr_assert(taken_by(&plain, REC(KEYS ",\"NewImage\":{},\"SizeBytes\":1e-400")));
    }
    /* No Keys: the key from NewImage; the time as a real; a REMOVE. */
    cr_assert(taken_by(&plain, REC("\"ApproximateCreationDateTime\":1700000000.75,"
                                   "\"NewImage\":{\"sk\":{\"N\":\"1e2\"},\"pk\":{\"S\":\"a|b\\\\\"}}")));
    cr_assert(taken_by(&plain, "{\"eventName\":\"REMOVE\",\"dynamodb\":{\"OldImage\":{\"pk\":"
                               "{\"S\":\"a\"},\"sk\":{\"N\":\"2\"}}},\"shardId\":\"s-1\"}"));
    /* The id hashed: longer than 512 bytes. */
    {
        char text[2048], big[700];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        snprintf(text, sizeof(text),
                 REC("\"Keys\":{\"pk\":{\"S\":\"%s\"},\"sk\":{\"N\":\"1\"}},\"NewImage\":{}"), big);
        pair_init(&p, 400 * 1024, 0);
        cr_assert(both(&plain, text, strlen(text), &p));
        cr_assert_eq(p.fast.id[0], '\\');
        pair_close(&p);
    }
}

Test(transform_text, what_the_tree_decides_is_given_back)
{
    static const char *const excl[] = { "x" };
    static const char *const hm[] = { "t" };
    struct transform_cfg c = plain;
    const char *const back[] = {
        /* errors of every kind */
        REC(KEYS ",\"NewImage\":{\"t\":{\"N\":\"abc\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"B\":\"###\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"X\":\"1\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"BOOL\":1}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"SS\":[1]}}"),
        REC("\"Keys\":{\"pk\":{\"S\":\"a\"}},\"NewImage\":{}"),
        REC("\"Keys\":{\"pk\":{\"M\":{}},\"sk\":{\"N\":\"1\"}},\"NewImage\":{}"),
        REC("\"Keys\":{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"x\"}},\"NewImage\":{}"),
        "{\"eventName\":\"UPDATE\",\"dynamodb\":{" KEYS ",\"NewImage\":{}}}",
        "{\"eventName\":\"INSERT\",\"dynamodb\":{\"SequenceNumber\":\"12a\"," KEYS ",\"NewImage\":{}}}",
        "{\"eventName\":\"INSERT\",\"dynamodb\":{\"ApproximateCreationDateTime\":-1," KEYS
        ",\"NewImage\":{}}}",
        "{\"eventName\":\"INSERT\",\"dynamodb\":[]}",
        "[]",
        /* a duplicate name: jansson keeps the first place and the last value */
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"1\"},\"t\":{\"S\":\"2\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"1\",\"S\":\"2\"}}"),
        REC(KEYS ",\"NewImage\":{\"m\":{\"M\":{\"a\":{\"S\":\"1\"},\"\\u0061\":{\"S\":\"2\"}}}}"),
        REC(KEYS ",\"Keys\":{},\"NewImage\":{}"),
        /* what jansson refuses or reads its own way */
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"\\u0000\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"\\ud800\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"\\udc00\\ud800\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"\xed\xa0\x80\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"\xc0\xaf\"}}"),
        REC(KEYS ",\"NewImage\":{\"t\":{\"S\":\"tab\tin\"}}"),
        REC(KEYS ",\"NewImage\":{},\"SizeBytes\":12345678901234567890"),
        REC(KEYS ",\"NewImage\":{},\"SizeBytes\":1e400"),
        REC(KEYS ",\"NewImage\":{},\"SizeBytes\":1.5e"),
        REC(KEYS ",\"NewImage\":{},\"SizeBytes\":01"),
        REC(KEYS ",\"NewImage\":{}") " x",
        /* renames, TTL, no image, a Lambda event, encrypted items */
        REC(KEYS ",\"NewImage\":{\"_id\":{\"S\":\"1\"}}"),
        REC(KEYS ",\"NewImage\":{\"a. .b\":{\"S\":\"1\"}}"),
        REC(KEYS ",\"NewImage\":{\"m\":{\"M\":{\" \":{\"S\":\"1\"}}}}"),
        "{\"eventName\":\"INSERT\",\"dynamodb\":{" KEYS "}}",
        "{\"Records\":[" REC(KEYS ",\"NewImage\":{}") "]}",
        REC(KEYS ",\"NewImage\":{\"aws_dbe_head\":{\"B\":\"AA==\"}}"),
        REC(KEYS ",\"NewImage\":{\"*amzn-ddb-map-sig*\":{\"B\":\"AA==\"}}"),
    };

    for (size_t i = 0; i < sizeof(back) / sizeof(*back); i++)
        cr_assert_not(taken_by(&plain, back[i]), "taken: %s", back[i]);
    /* A TTL delete with on_ttl_delete = keep is TR_SKIP; delete, a delete. */
    c.on_ttl_delete = TRANSFORM_TTL_KEEP;
    cr_assert_not(taken_by(&c, "{\"eventName\":\"REMOVE\",\"userIdentity\":{},\"dynamodb\":{" KEYS
                               "}}"));
    c.on_ttl_delete = TRANSFORM_TTL_DELETE;
    cr_assert(taken_by(&c, "{\"eventName\":\"REMOVE\",\"userIdentity\":{},\"dynamodb\":{" KEYS
                           "}}"));
    /* hmac'd attributes: the tree's; excluded names are read past. */
    c = plain;
    c.hmac = hm;
    c.n_hmac = 1;
    cr_assert_not(taken_by(&c, REC(KEYS ",\"NewImage\":{}")));
    c = plain;
    c.exclude = excl;
    c.n_exclude = 1;
    cr_assert(taken_by(&c, REC(KEYS ",\"NewImage\":{\"x\":{\"N\":\"bad\"},\"y\":{\"S\":\"1\"}}")));
    /* Encrypted items kept as they are: the names are plain names then. */
    c = plain;
    c.encrypted = TRANSFORM_ENCRYPTED_AS_IS;
    cr_assert(taken_by(&c, REC(KEYS ",\"NewImage\":{\"aws_dbe_head\":{\"B\":\"AA==\"}}")));
}

Test(transform_text, nesting_up_to_the_limit)
{
    char *text = malloc(64 * 1024), *p = text;
    int levels = TRANSFORM_MAX_DEPTH;

    for (int pass = 0; pass < 2; pass++, levels = TRANSFORM_MAX_DEPTH + 1) {
        p = text + sprintf(text, "{\"eventName\":\"INSERT\",\"dynamodb\":{" KEYS
                                 ",\"NewImage\":{\"d\":");
        for (int i = 0; i < levels; i++)
            p += sprintf(p, "{\"L\":[");
        p += sprintf(p, "{\"S\":\"x\"}");
        for (int i = 0; i < levels; i++)
            p += sprintf(p, "]}");
        sprintf(p, "}}}");
        /* L at depth 1..levels; the tree refuses one past its limit. */
        if (pass == 0)
            cr_assert(taken_by(&plain, text));
        else
            cr_assert_not(taken_by(&plain, text));
    }
    free(text);
}
