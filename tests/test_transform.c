/* transform: stream records and items -> bulk actions (id, document, op). */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "indexer/transform.h"
#include "tests/support/e2e.h"

TestSuite(transform, .timeout = 10);

#define DATA "tests/data/records/"

static struct transform_cfg cfg;
static struct doc d;
static struct buf err;

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.index = "posts";
    cfg.id_sep = '|';
    cfg.on_ttl_delete = TRANSFORM_TTL_DELETE;
    cfg.hash_key = "pk";
    cfg.range_key = "sk";
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 1 << 20);
    buf_init(&d.keys, 0);
    buf_init(&err, 4096);
}

static void teardown(void)
{
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
}

static json_t *load(const char *name)
{
    json_error_t je;
    json_t *j = json_load_file(name, 0, &je);

    cr_assert_not_null(j, "%s: %s", name, je.text);
    return j;
}

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &je);

    cr_assert_not_null(j, "bad test JSON: %s", je.text);
    return j;
}

static enum transform_result record_file(const char *name)
{
    json_t *r = load(name);
    enum transform_result tr = transform_record(&cfg, r, &d, &err);

    json_decref(r);
    return tr;
}

static enum transform_result item_text(const char *text)
{
    json_t *it = parse(text);
    enum transform_result tr = transform_item(&cfg, it, &d, &err);

    json_decref(it);
    return tr;
}

static const char *id_str(void)
{
    return d.id;
}

static const char *errs(void)
{
    return err.ptr ? err.ptr : "";
}

/* The source must be one JSON object (numbers read as reals: jansson
 * cannot hold 38 digits as integers). */
static json_t *source_json(void)
{
    json_error_t je;
    json_t *j = json_loadb(d.source.ptr, d.source.len, JSON_DECODE_INT_AS_REAL, &je);

    cr_assert_not_null(j, "source is not JSON (%s): %s", je.text, d.source.ptr);
    cr_assert(json_is_object(j));
    return j;
}

static char *zeros(const char *prefix, size_t n, const char *suffix)
{
    static char pool[4][600];
    static unsigned slot;
    char *s = pool[slot++ % 4];
    size_t pl = strlen(prefix);

    memcpy(s, prefix, pl);
    memset(s + pl, '0', n);
    strcpy(s + pl + n, suffix);
    return s;
}

Test(transform, every_type_becomes_plain_json_with_numbers_kept_as_text, .init = setup,
     .fini = teardown)
{
    char want[4096];
    json_t *src;

    cr_assert_eq(record_file(DATA "insert_all_types.json"), TR_DOC, "%s", errs());
    snprintf(want, sizeof(want),
             "{\"pk\":\"user#1\",\"sk\":42,"
             "\"s\":\"h\xc3\xa9llo \\\"q\\\" \\\\ \\n\\t\\u0001 \xe2\x98\x83 \xf0\x9f\x98\x80\","
             "\"n38\":12345678901234567890123456789012345678,"
             "\"nbig\":1E+125,\"nbig_plain\":%s,\"ntiny\":1E-130,\"nneg\":-0.5,\"nweird\":7.50,"
             "\"b\":\"AAEC/w==\",\"t\":true,\"f\":false,\"z\":null,"
             "\"m\":{\"a\":\"x\",\"n\":1.0},\"l\":[1,\"two\",[],{}],"
             "\"ss\":[\"a\",\"b\"],\"ns\":[1,0.5,-3e2],\"bs\":[\"AA==\",\"AQI=\"],"
             "\"k\xc3\xa9y \\\"q\\\"\\n\":\"unicode name\"}",
             zeros("1", 125, ""));
    cr_expect_str_eq(d.source.ptr, want);
    src = source_json();
    cr_expect_null(json_object_get(src, "aws:rep:updateregion"), "aws:rep:* must be stripped");
    cr_expect_not_null(json_object_get(src, "k\xc3\xa9y \"q\"\n"));
    cr_expect_str_eq(json_string_value(json_object_get(src, "s")),
                     "h\xc3\xa9llo \"q\" \\ \n\t\x01 \xe2\x98\x83 \xf0\x9f\x98\x80");
    json_decref(src);
}

Test(transform, record_metadata_is_filled, .init = setup, .fini = teardown)
{
    d.version = 77;
    cr_assert_eq(record_file(DATA "insert_all_types.json"), TR_DOC, "%s", errs());
    cr_expect_eq(d.op, DOC_INDEX);
    cr_expect_str_eq(d.index, "posts");
    cr_expect_str_eq(id_str(), "user#1|42");
    cr_expect_eq(d.id_len, 9);
    cr_expect_str_eq(d.seq, "000000000000000000001");
    cr_expect_eq(d.created, 1795329420);
    cr_expect_eq(d.version, 77, "the version belongs to the caller");
}

Test(transform, one_key_spelled_two_ways_gives_one_id, .init = setup, .fini = teardown)
{
    char first[DOC_ID_MAX + 1];

    cr_assert_eq(record_file(DATA "insert_keys_plain.json"), TR_DOC, "%s", errs());
    strcpy(first, d.id);
    cr_assert_eq(record_file(DATA "modify_keys_exponent.json"), TR_DOC, "%s", errs());
    cr_expect_str_eq(d.id, first);
    cr_expect_str_eq(d.id, zeros("big|1", 125, ""));
    /* the document keeps the value as the image spells it */
    cr_expect_not_null(strstr(d.source.ptr, "\"v\":2.50"), "%s", d.source.ptr);
}

Test(transform, numeric_keys_use_the_canonical_spelling, .init = setup, .fini = teardown)
{
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"2.50\"}}"), TR_DOC);
    cr_expect_str_eq(id_str(), "a|2.5");
    cr_assert_eq(item_text("{\"pk\":{\"N\":\"1E-130\"},\"sk\":{\"N\":\"-0\"}}"), TR_DOC);
    cr_expect_str_eq(id_str(), zeros("0.", 129, "1|0"));
}

Test(transform, separator_and_backslash_are_escaped_so_ids_never_collide, .init = setup,
     .fini = teardown)
{
    static const char *const keys[][2] = {
        { "a|b", "c" }, { "a", "b|c" }, { "a\\", "b" }, { "a", "\\b" }, { "a\\|", "b" },
        { "a", "\\|b" }, { "a\\\\", "|b" }, { "a|", "b" }, { "a", "|b" },
    };
    enum { N = sizeof(keys) / sizeof(keys[0]) };
    char ids[N][DOC_ID_MAX + 1];

    cfg.range_key = "sk";
    for (size_t i = 0; i < N; i++) {
        json_t *it = json_pack("{s{ss}s{ss}}", "pk", "S", keys[i][0], "sk", "S", keys[i][1]);

        cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
        json_decref(it);
        strcpy(ids[i], d.id);
        for (size_t j = 0; j < i; j++)
            cr_expect_str_neq(ids[i], ids[j], "keys %zu and %zu share id %s", i, j, ids[i]);
    }
    cr_expect_str_eq(ids[0], "a\\|b|c");
    cr_expect_str_eq(ids[1], "a|b\\|c");
    cr_expect_str_eq(ids[2], "a\\\\|b");
}

Test(transform, another_separator_is_escaped_too, .init = setup, .fini = teardown)
{
    cfg.id_sep = ':';
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a:b|c\"},\"sk\":{\"N\":\"1\"}}"), TR_DOC);
    cr_expect_str_eq(id_str(), "a\\:b|c:1");
}

Test(transform, ids_over_512_bytes_are_hashed, .init = setup, .fini = teardown)
{
    char key[700];
    json_t *it;

    cfg.range_key = NULL;
    memset(key, 'a', 600);
    key[600] = '\0';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
    json_decref(it);
    /* "\\h" + python3: hashlib.sha256(b"a"*600).hexdigest() */
    cr_expect_str_eq(id_str(), "\\hba35c170729417f1499e0886e7e12fcdb4ab00ad411110ae1e888c766d4ed70d");
    cr_expect_eq(d.id_len, 66);

    /* the digest covers the escaped id: sha256(b"a"*300 + b"\\|" + b"b"*300 + b"|7") */
    cfg.range_key = "sk";
    memset(key, 'a', 300);
    key[300] = '|';
    memset(key + 301, 'b', 300);
    key[601] = '\0';
    it = json_pack("{s{ss}s{ss}}", "pk", "S", key, "sk", "N", "7.0");
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
    json_decref(it);
    cr_expect_str_eq(id_str(), "\\h9dc50487bc5fcbb092e52c8623f204a9c8e968a4fca596014fed4fcf1aa33085");
}

Test(transform, an_id_of_exactly_512_bytes_is_kept, .init = setup, .fini = teardown)
{
    char key[600];
    json_t *it;

    cfg.range_key = NULL;
    memset(key, 'x', 512);
    key[512] = '\0';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC);
    cr_expect_eq(d.id_len, 512);
    cr_expect_str_eq(d.id, key);
    json_decref(it);
    key[512] = 'x';
    key[513] = '\0';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC);
    cr_expect_eq(d.id_len, 66);
    json_decref(it);
}

Test(transform, binary_keys_use_their_base64_text, .init = setup, .fini = teardown)
{
    cr_assert_eq(item_text("{\"pk\":{\"B\":\"AAEC/w==\"},\"sk\":{\"B\":\"\"}}"), TR_DOC, "%s",
                 errs());
    cr_expect_str_eq(id_str(), "AAEC/w==|");
    cr_expect_str_eq(d.source.ptr, "{\"pk\":\"AAEC/w==\",\"sk\":\"\"}");
    cr_expect_eq(item_text("{\"pk\":{\"B\":\"AAE\"},\"sk\":{\"B\":\"AA==\"}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "pk"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "base64"), "%s", errs());
}

Test(transform, key_attributes_must_be_present_and_scalar, .init = setup, .fini = teardown)
{
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"a\"}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "\"sk\" missing"), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"SS\":[\"a\"]},\"sk\":{\"N\":\"1\"}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "S, N or B"), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1e999\"}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "invalid number"), "%s", errs());
}

Test(transform, hash_only_tables_use_the_hash_key_alone, .init = setup, .fini = teardown)
{
    cfg.range_key = NULL;
    cr_assert_eq(item_text("{\"pk\":{\"N\":\"1e2\"},\"sk\":{\"N\":\"5\"}}"), TR_DOC);
    cr_expect_str_eq(id_str(), "100");
}

Test(transform, remove_becomes_a_delete_without_source, .init = setup, .fini = teardown)
{
    cr_assert_eq(record_file(DATA "remove.json"), TR_DOC, "%s", errs());
    cr_expect_eq(d.op, DOC_DELETE);
    cr_expect_str_eq(id_str(), "user#1|42");
    cr_expect_eq(d.source.len, 0);
    cr_expect_str_eq(d.seq, "000000000000000000004");
}

Test(transform, ttl_deletes_follow_on_ttl_delete, .init = setup, .fini = teardown)
{
    /* DynamoDB Local spells Type/PrincipalId, AWS type/principalId */
    cr_expect_eq(record_file(DATA "remove_ttl_local.json"), TR_DOC);
    cr_expect_eq(d.op, DOC_DELETE);
    cr_expect_eq(record_file(DATA "remove_ttl_aws.json"), TR_DOC);
    cr_expect_eq(d.op, DOC_DELETE);

    cfg.on_ttl_delete = TRANSFORM_TTL_KEEP;
    cr_expect_eq(record_file(DATA "remove_ttl_local.json"), TR_SKIP);
    cr_expect_eq(record_file(DATA "remove_ttl_aws.json"), TR_SKIP);
    cr_expect_str_eq(d.seq, "4000000000001234567890", "the position is still reported");
    cr_expect_str_eq(id_str(), "user#1|42");
    /* the deleting principal alone does not make a TTL delete: the type must be Service */
    cr_expect_eq(record_file(DATA "remove_user_same_principal.json"), TR_DOC);
    cr_expect_eq(d.op, DOC_DELETE);
    cr_expect_eq(record_file(DATA "remove.json"), TR_DOC);
    cr_expect_eq(d.op, DOC_DELETE);
}

Test(transform, a_service_delete_by_another_principal_is_not_ttl, .init = setup, .fini = teardown)
{
    json_t *r = load(DATA "remove_ttl_aws.json");

    cfg.on_ttl_delete = TRANSFORM_TTL_KEEP;
    json_object_set_new(r, "userIdentity",
                        json_pack("{ssss}", "type", "Service", "principalId", "other.amazonaws.com"));
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_DOC);
    cr_expect_eq(d.op, DOC_DELETE);
    json_decref(r);
}

Test(transform, without_a_new_image_the_item_must_be_read, .init = setup, .fini = teardown)
{
    cr_expect_eq(record_file(DATA "insert_keys_only.json"), TR_NEED_ITEM);
    cr_expect_str_eq(id_str(), "user#2|0.5");
    cr_expect_str_eq(d.seq, "000000000000000000007");
    cr_expect_eq(d.created, 1795329420);
    cr_expect_eq(d.source.len, 0);
    cr_expect_eq(record_file(DATA "modify_old_image.json"), TR_NEED_ITEM);
    cr_expect_str_eq(id_str(), "user#2|1");

    /* then the item read by key completes the action; seq and created stay */
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"user#2\"},\"sk\":{\"N\":\"1\"},\"v\":{\"S\":\"now\"}}"),
                 TR_DOC);
    cr_expect_str_eq(d.seq, "000000000000000000008");
    cr_expect_str_eq(d.source.ptr, "{\"pk\":\"user#2\",\"sk\":1,\"v\":\"now\"}");
}

Test(transform, a_new_image_stream_without_new_image_is_an_error, .init = setup, .fini = teardown)
{
    json_t *r = load(DATA "insert_all_types.json");

    json_object_del(json_object_get(r, "dynamodb"), "NewImage");
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "NewImage"), "%s", errs());
    json_decref(r);
}

Test(transform, keys_give_a_delete, .init = setup, .fini = teardown)
{
    json_t *k = parse("{\"sk\":{\"N\":\"+042.0\"},\"pk\":{\"S\":\"user#1\"}}");

    buf_puts(&d.source, "{}");
    cr_assert_eq(transform_keys(&cfg, k, &d, &err), TR_DOC, "%s", errs());
    cr_expect_eq(d.op, DOC_DELETE);
    cr_expect_str_eq(id_str(), "user#1|42");
    cr_expect_eq(d.source.len, 0);
    json_decref(k);
}

Test(transform, include_keeps_only_listed_attributes, .init = setup, .fini = teardown)
{
    static const char *const inc[] = { "sk", "title" };

    cfg.include = inc;
    cfg.n_include = 2;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"},\"title\":{\"S\":\"t\"},"
                           "\"body\":{\"S\":\"b\"}}"),
                 TR_DOC);
    cr_expect_str_eq(d.source.ptr, "{\"sk\":1,\"title\":\"t\"}");
    cr_expect_str_eq(id_str(), "a|1", "the key still makes the id");
}

Test(transform, exclude_drops_listed_attributes, .init = setup, .fini = teardown)
{
    static const char *const exc[] = { "secret", "body" };

    cfg.exclude = exc;
    cfg.n_exclude = 2;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"1\"},\"secret\":{\"S\":\"s\"},"
                           "\"body\":{\"M\":{\"secret\":{\"S\":\"nested stays\"}}},"
                           "\"x\":{\"S\":\"y\"}}"),
                 TR_DOC);
    cr_expect_str_eq(d.source.ptr, "{\"pk\":\"a\",\"sk\":1,\"x\":\"y\"}");
}

Test(transform, include_then_exclude, .init = setup, .fini = teardown)
{
    static const char *const inc[] = { "a", "b" }, *const exc[] = { "b" };

    cfg.include = inc;
    cfg.n_include = 2;
    cfg.exclude = exc;
    cfg.n_exclude = 1;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"a\":{\"N\":\"1\"},"
                           "\"b\":{\"N\":\"2\"},\"c\":{\"N\":\"3\"}}"),
                 TR_DOC);
    cr_expect_str_eq(d.source.ptr, "{\"a\":1}");
}

/* Expected values: python3 hmac.new(b"test-key-\x00\x01", text, hashlib.sha256).hexdigest(),
 * and for S also `openssl dgst -sha256 -mac HMAC -macopt hexkey:746573742d6b65792d0001`. */
static const unsigned char hkey[] = "test-key-\x00\x01";

Test(transform, hmac_replaces_values_with_known_digests, .init = setup, .fini = teardown)
{
    static const char *const h[] = { "email", "price", "blob", "meta", "tags", "nums", "list" };
    json_t *src;

    cfg.hmac = h;
    cfg.n_hmac = 7;
    cfg.hmac_key = hkey;
    cfg.hmac_key_len = sizeof(hkey) - 1;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},"
                           "\"email\":{\"S\":\"alice@example.com\"},"
                           "\"price\":{\"N\":\"2.50\"},"
                           "\"blob\":{\"B\":\"AAEC/w==\"},"
                           "\"meta\":{\"M\":{\"b\":{\"N\":\"1.0\"},\"a\":{\"S\":\"x\"}}},"
                           "\"tags\":{\"SS\":[\"b\",\"a\"]},"
                           "\"nums\":{\"NS\":[\"1\",\".5\",\"-3e2\"]},"
                           "\"list\":{\"L\":[{\"N\":\"1.00\"},{\"S\":\"two\"},{\"M\":{\"a\":{\"NULL\":true}}}]},"
                           "\"plain\":{\"S\":\"kept\"}}"),
                 TR_DOC, "%s", errs());
    src = source_json();
#define HM(attr) json_string_value(json_object_get(src, attr))
    cr_expect_str_eq(HM("email"), "7cde404ad0d7d852c86fb752ff4ef0e48a35272fd99ca9ec39a5b7985291dff5");
    cr_expect_str_eq(HM("price"), "082e1d9c4cf18138e2d7e0d5ad8e91f2e52654fcdb769ed5a6b9a11ddc56779f");
    cr_expect_str_eq(HM("blob"), "13b4d43aced0f8d31d113d618d5a046b767d63a594ca290640807914773758b1");
    /* canonical JSON {"a":"x","b":1} */
    cr_expect_str_eq(HM("meta"), "a7135527e257ded8e8200d546e9169ec3e3f6774cde9622e171949758e66a317");
    /* ["a","b"] */
    cr_expect_str_eq(HM("tags"), "dad8cd3eb4597aadaaf19eb99bc1f1228afa7768760b92e49bccb691b152183a");
    /* [-300,0.5,1] */
    cr_expect_str_eq(HM("nums"), "65614fc47bbe4507e901fc32f84709e01feb77eef6544c2723235903291eab7b");
    /* [1,"two",{"a":null}] */
    cr_expect_str_eq(HM("list"), "7666f80df2772f188bf2a1319a1d01381b51f20c336227ad0203a635121bf238");
    cr_expect_str_eq(HM("plain"), "kept");
#undef HM
    cr_expect_null(strstr(d.source.ptr, "alice"));
    json_decref(src);
}

Test(transform, an_hmac_key_attribute_is_hashed_in_the_id_too, .init = setup, .fini = teardown)
{
    static const char *const h[] = { "pk" };

    cfg.hmac = h;
    cfg.n_hmac = 1;
    cfg.hmac_key = hkey;
    cfg.hmac_key_len = sizeof(hkey) - 1;
    cr_assert_eq(record_file(DATA "remove.json"), TR_DOC, "%s", errs());
    cr_expect_str_eq(id_str(), "020dbedc2e30e9dbe37cc2511c5c9a742da6289af76c163312b7adb1b85c97e3|42");
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"user#1\"},\"sk\":{\"N\":\"42\"}}"), TR_DOC);
    cr_expect_str_eq(d.source.ptr,
                     "{\"pk\":\"020dbedc2e30e9dbe37cc2511c5c9a742da6289af76c163312b7adb1b85c97e3\","
                     "\"sk\":42}");
    cr_expect_null(strstr(d.id, "user"));
}

Test(transform, a_bad_value_under_hmac_is_not_quoted_in_the_error, .init = setup, .fini = teardown)
{
    static const char *const h[] = { "card" };

    cfg.hmac = h;
    cfg.n_hmac = 1;
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},"
                           "\"card\":{\"M\":{\"n\":{\"N\":\"4111-1111\"}}}}"),
                 TR_ERROR);
    cr_expect_not_null(strstr(errs(), "card.n"), "%s", errs());
    cr_expect_null(strstr(errs(), "4111"), "%s", errs());
}

Test(transform, nesting_to_the_dynamodb_limit_works, .init = setup, .fini = teardown)
{
    size_t opens = 0;

    cr_assert_eq(record_file(DATA "nested_32.json"), TR_DOC, "%s", errs());
    for (size_t i = 0; i < d.source.len; i++)
        opens += d.source.ptr[i] == '{';
    cr_expect_eq(opens, 32, "the document plus 31 nested maps");
    cr_expect_not_null(strstr(d.source.ptr, "{\"d\":\"bottom\"}}}"));
    json_decref(source_json());
}

Test(transform, adversarial_nesting_is_an_error_not_a_crash, .init = setup, .fini = teardown)
{
    json_t *v = json_pack("{ss}", "S", "bottom"), *it;

    for (int i = 0; i < 1000; i++)
        v = json_pack("{s[o]}", "L", v);
    cr_assert_not_null(v);
    it = json_pack("{s{ss}s{ss}so}", "pk", "S", "a", "sk", "N", "1", "deep", v);
    cr_expect_eq(transform_item(&cfg, it, &d, &err), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "deeper than"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "deep[0][0]"), "%s", errs());
    json_decref(it);
}

Test(transform, unknown_type_descriptor_names_the_path_and_record, .init = setup,
     .fini = teardown)
{
    cr_expect_eq(record_file(DATA "bad_type.json"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "record 000000000000000000009"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "m.inner[1]"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "unknown type descriptor: \"X\""), "%s", errs());
}

Test(transform, invalid_number_text_is_an_error, .init = setup, .fini = teardown)
{
    cr_expect_eq(record_file(DATA "bad_number.json"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "price"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "invalid number: \"12,50\""), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"ns\":{\"NS\":[\"1\",\"x\"]}}"),
                 TR_ERROR);
    cr_expect_not_null(strstr(errs(), "ns[1]"), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"n\":{\"N\":7}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "not a string"), "%s", errs());
}

Test(transform, bad_base64_is_an_error, .init = setup, .fini = teardown)
{
    cr_expect_eq(record_file(DATA "bad_base64.json"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "blob"), "%s", errs());
    cr_expect_not_null(strstr(errs(), "base64"), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"bs\":{\"BS\":[\"A=A=\"]}}"),
                 TR_ERROR);
}

Test(transform, malformed_records_are_errors_with_reasons, .init = setup, .fini = teardown)
{
    json_t *r;

    cr_expect_eq(record_file(DATA "no_dynamodb.json"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "dynamodb"), "%s", errs());

    r = load(DATA "remove.json");
    json_object_set_new(r, "eventName", json_string("UPSERT"));
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "eventName"), "%s", errs());
    json_decref(r);

    r = load(DATA "remove.json");
    json_object_set_new(json_object_get(r, "dynamodb"), "SequenceNumber", json_string("12ab"));
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "SequenceNumber"), "%s", errs());
    json_decref(r);

    r = json_array();
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_ERROR);
    json_decref(r);

    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"two\":{\"S\":\"a\",\"N\":\"1\"}}"),
                 TR_ERROR);
    cr_expect_not_null(strstr(errs(), "two"), "%s", errs());
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"b\":{\"BOOL\":\"yes\"}}"),
                 TR_ERROR);
    cr_expect_eq(item_text("[1]"), TR_ERROR);
}

Test(transform, nul_and_control_characters_are_escaped, .init = setup, .fini = teardown)
{
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},"
                           "\"a\\u0001b\":{\"S\":\"x\\u0000y\\u001f\\u007f\\r\\b\\f/\"}}"),
                 TR_DOC, "%s", errs());
    cr_expect_str_eq(d.source.ptr,
                     "{\"pk\":\"k\",\"sk\":1,\"a\\u0001b\":\"x\\u0000y\\u001f\x7f\\r\\b\\f/\"}");
}

Test(transform, a_document_over_the_buffer_limit_is_an_error, .init = setup, .fini = teardown)
{
    buf_close(&d.source);
    buf_init(&d.source, 16);
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"body\":{\"S\":\"a long enough text\"}}"),
                 TR_ERROR);
    cr_expect_not_null(strstr(errs(), "larger than 16 bytes"), "%s", errs());
}

Test(transform, an_export_item_and_a_new_image_give_the_same_document, .init = setup,
     .fini = teardown)
{
    json_t *r = load(DATA "insert_all_types.json");
    char *first;

    cr_assert_eq(transform_record(&cfg, r, &d, &err), TR_DOC);
    first = strdup(d.source.ptr);
    cr_assert_eq(transform_item(&cfg, json_object_get(json_object_get(r, "dynamodb"), "NewImage"),
                                &d, &err),
                 TR_DOC);
    cr_expect_str_eq(d.source.ptr, first);
    cr_expect_str_eq(d.id, "user#1|42");
    free(first);
    json_decref(r);
}

Test(transform, a_bad_configuration_is_refused, .init = setup, .fini = teardown)
{
    cfg.id_sep = '\\';
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"}}"), TR_ERROR);
    cfg.id_sep = '|';
    cfg.hash_key = NULL;
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"}}"), TR_ERROR);
}

/* ---- every item DynamoDB accepts ----
 * DynamoDB takes U+0000 and every other code point in values, map keys,
 * attribute names and key values, and a lone UTF-16 surrogate escape
 * ("\ud800", accepted and returned by DynamoDB Local), which a loader holds
 * as its 3-byte WTF-8 form.  jansson's parser refuses both in names, so these
 * trees are built the way such a loader builds them: json_object_setn_new_nocheck
 * and json_stringn_nocheck. */

#define LIT(s) s, sizeof(s) - 1 /* a literal that may hold NUL */

static json_t *av_of(const char *type, const char *s, size_t len)
{
    json_t *av = json_object();

    json_object_set_new(av, type, json_stringn_nocheck(s, len));
    return av;
}

static json_t *av_wrap(const char *type, json_t *v)
{
    json_t *av = json_object();

    json_object_set_new(av, type, v);
    return av;
}

static void put(json_t *obj, const char *name, size_t len, json_t *v)
{
    cr_assert_eq(json_object_setn_new_nocheck(obj, name, len, v), 0);
}

/* {"pk":{"S":"k"},"sk":{"N":"1"}}, for more attributes to be added. */
static json_t *keyed_item(void)
{
    return json_pack("{s{ss}s{ss}}", "pk", "S", "k", "sk", "N", "1");
}

static enum transform_result item_tree(json_t *it)
{
    enum transform_result tr = transform_item(&cfg, it, &d, &err);

    json_decref(it);
    return tr;
}

static void expect_source(const char *want, size_t len)
{
    cr_expect_eq(d.source.len, len, "source %s", d.source.ptr);
    cr_expect(d.source.len == len && memcmp(d.source.ptr, want, len) == 0, "source %s", d.source.ptr);
}

Test(transform, nul_is_kept_in_values_set_members_and_names_at_every_depth, .init = setup,
     .fini = teardown)
{
    json_t *it = keyed_item(), *inner = json_object(), *m = json_object();
    static const char want[] = "{\"pk\":\"k\",\"sk\":1,\"a\\u0000b\":\"x\\u0000y\","
                               "\"ss\":[\"p\\u0000q\",\"p\"],"
                               "\"m\":{\"k\\u0000\":[{\"\\u0000\":\"deep\\u0000\"}]}}";

    put(it, LIT("a\0b"), av_of("S", LIT("x\0y")));
    put(it, LIT("ss"), av_wrap("SS", json_pack("[o,o]", json_stringn("p\0q", 3), json_string("p"))));
    put(inner, LIT("\0"), av_of("S", LIT("deep\0")));
    put(m, LIT("k\0"), av_wrap("L", json_pack("[o]", av_wrap("M", inner))));
    put(it, LIT("m"), av_wrap("M", m));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    expect_source(want, sizeof(want) - 1);
}

Test(transform, a_type_descriptor_is_compared_whole, .init = setup, .fini = teardown)
{
    json_t *it = keyed_item(), *av = json_object();

    put(av, LIT("S\0x"), json_string("v"));
    put(it, LIT("a"), av);
    cr_expect_eq(item_tree(it), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "unknown type descriptor: \"S?x\""), "%s", errs());

    /* a key attribute too: "N\u0000" is not N */
    it = json_pack("{s{ss}}", "pk", "S", "k");
    av = json_object();
    put(av, LIT("N\0"), json_string("1"));
    put(it, LIT("sk"), av);
    cr_expect_eq(item_tree(it), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "sk: a key attribute must be S, N or B"), "%s", errs());
}

Test(transform, nul_in_key_values_is_kept_in_the_id, .init = setup, .fini = teardown)
{
    json_t *it = json_object();
    char first[DOC_ID_MAX + 1];
    size_t first_len;

    put(it, LIT("pk"), av_of("S", LIT("a\0b")));
    put(it, LIT("sk"), av_of("S", LIT("\0")));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect_eq(d.id_len, 5);
    cr_expect(memcmp(d.id, "a\0b|\0", 5) == 0);
    memcpy(first, d.id, d.id_len);
    first_len = d.id_len;

    it = json_object();
    put(it, LIT("pk"), av_of("S", LIT("a")));
    put(it, LIT("sk"), av_of("S", LIT("")));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect(d.id_len != first_len || memcmp(d.id, first, first_len) != 0);
}

Test(transform, a_key_attribute_name_may_hold_nul, .init = setup, .fini = teardown)
{
    static const char *const types[][2] = { { "S", "x" }, { "N", "1E+2" }, { "B", "AAE=" } };
    static const char *const want[] = { "x|5", "100|5", "AAE=|5" };

    cfg.hash_key = "p\0k"; /* DescribeTable can name a key so: DynamoDB Local takes it */
    cfg.hash_key_len = 3;
    cfg.range_key = "s\0k";
    cfg.range_key_len = 3;
    for (size_t i = 0; i < 3; i++) {
        json_t *it = json_object();

        /* "p" and "s" are other attributes: a name cut at its NUL finds them */
        put(it, LIT("p"), av_of("S", LIT("other")));
        put(it, LIT("s"), av_of("N", LIT("9")));
        put(it, LIT("p\0k"), av_of(types[i][0], types[i][1], strlen(types[i][1])));
        put(it, LIT("s\0k"), av_of("N", LIT("5")));
        cr_assert_eq(item_tree(it), TR_DOC, "%s: %s", types[i][0], errs());
        cr_expect_str_eq(id_str(), want[i]);
    }
    /* missing: the error shows the name (its NUL as '?') */
    cr_expect_eq(item_text("{\"p\":{\"S\":\"x\"},\"s\":{\"N\":\"1\"}}"), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "key attribute \"p?k\" missing"), "%s", errs());
}

/* ---- names the engines refuse ---- */

/* The item's document, parsed (the names in these tests hold no NUL). */
static json_t *renamed_source(json_t *it)
{
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    return source_json();
}

Test(transform, refused_names_are_renamed_at_every_depth, .init = setup, .fini = teardown)
{
    static const char *const cases[][2] = {
        { "", "%" },
        { ".", "%%2E" },
        { ".a", "%%2Ea" },
        { "a.", "%a%2E" },
        { "a..b", "%a%2E%2Eb" },
        { " ", "%%20" }, /* "%" and the encoded " " */
        { "\t", "%%09" },
        { "\x1c", "%%1C" }, /* U+001C is whitespace to Java */
        { "a. .b", "%a%2E%20%2Eb" },
        { "\xe3\x80\x80", "%%E3%80%80" },             /* U+3000 */
        { "\xe2\x80\xa8\xe1\x9a\x80", "%%E2%80%A8%E1%9A%80" }, /* U+2028 U+1680 */
        { "100%. ", "%100%25%2E%20" },
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    json_t *it = keyed_item(), *m = json_object(), *lm = json_object(), *src, *got;

    for (size_t i = 0; i < N; i++) {
        json_t *v = json_pack("{si}", "N", 0);

        json_object_set_new(v, "N", json_sprintf("%zu", i));
        put(it, cases[i][0], strlen(cases[i][0]), json_deep_copy(v));
        put(m, cases[i][0], strlen(cases[i][0]), json_deep_copy(v));
        put(lm, cases[i][0], strlen(cases[i][0]), v);
    }
    put(it, LIT("m"), av_wrap("M", m));
    put(it, LIT("l"), av_wrap("L", json_pack("[o]", av_wrap("M", lm))));
    src = renamed_source(it);
    cr_expect_eq(json_object_size(src), N + 4, "%s", d.source.ptr);
    for (size_t i = 0; i < N; i++) {
        const char *want = cases[i][1];
        json_t *objs[] = { src, json_object_get(src, "m"),
                           json_array_get(json_object_get(src, "l"), 0) };

        for (size_t k = 0; k < 3; k++) {
            got = json_object_get(objs[k], want);
            cr_expect(json_is_number(got) && json_number_value(got) == (double)i,
                      "\"%s\" at level %zu: %s", cases[i][0], k, d.source.ptr);
            cr_expect_eq(json_object_size(objs[k]), k ? N : N + 4);
        }
    }
    json_decref(src);
}

Test(transform, metadata_fields_are_renamed_at_the_top_level_only, .init = setup,
     .fini = teardown)
{
    static const char *const meta[] = {
        "_id", "_index", "_routing", "_source", "_ignored", "_version", "_seq_no",
        "_nested_path", "_field_names", "_data_stream_timestamp", "_doc_count", "_feature",
        "_tsid", "_ts_routing_hash", "_index_mode", "_ignored_source", "_tier",
        "_inference_fields", "_size",
    };
    enum { N = sizeof(meta) / sizeof(meta[0]) };
    json_t *it = keyed_item(), *m = json_object(), *src, *sm;
    char want[64];

    for (size_t i = 0; i < N; i++) {
        put(it, meta[i], strlen(meta[i]), json_pack("{ss}", "S", meta[i]));
        put(m, meta[i], strlen(meta[i]), json_pack("{ss}", "S", meta[i]));
    }
    put(it, LIT("_id.x"), json_pack("{ss}", "S", "first segment"));
    put(it, LIT("x._id"), json_pack("{ss}", "S", "second segment"));
    put(it, LIT("_idx"), json_pack("{ss}", "S", "not a metadata name"));
    put(it, LIT("_ID"), json_pack("{ss}", "S", "case matters"));
    put(it, LIT("m"), av_wrap("M", m));
    src = renamed_source(it);
    for (size_t i = 0; i < N; i++) {
        snprintf(want, sizeof(want), "%%%s", meta[i]);
        cr_expect_str_eq(json_string_value(json_object_get(src, want)), meta[i], "%s", d.source.ptr);
        cr_expect_null(json_object_get(src, meta[i]));
    }
    cr_expect_str_eq(json_string_value(json_object_get(src, "%_id%2Ex")), "first segment");
    cr_expect_str_eq(json_string_value(json_object_get(src, "x._id")), "second segment");
    cr_expect_str_eq(json_string_value(json_object_get(src, "_idx")), "not a metadata name");
    cr_expect_str_eq(json_string_value(json_object_get(src, "_ID")), "case matters");
    sm = json_object_get(src, "m");
    cr_expect_eq(json_object_size(sm), N);
    for (size_t i = 0; i < N; i++)
        cr_expect_str_eq(json_string_value(json_object_get(sm, meta[i])), meta[i],
                         "a map key %s stays", meta[i]);
    json_decref(src);
}

Test(transform, names_the_engines_accept_stay_as_they_are, .init = setup, .fini = teardown)
{
    static const char *const kept[] = {
        "a.b", "a b", " a", "%", "%20", "%_id", "a.b.c", "\xc2\xa0" /* U+00A0 */,
        "\xe2\x80\x87" /* U+2007 */, "\xe2\x80\x8b" /* U+200B */, "\xe3\x80\x80x" /* U+3000 x */,
    };
    enum { N = sizeof(kept) / sizeof(kept[0]) };
    json_t *it = keyed_item(), *src;
    int renames = 0;

    for (size_t i = 0; i < N; i++)
        put(it, kept[i], strlen(kept[i]), json_pack("{ss}", "S", kept[i]));
    src = renamed_source(it);
    cr_expect_eq(json_object_size(src), N + 2, "%s", d.source.ptr);
    for (size_t i = 0; i < N; i++)
        renames += !json_object_get(src, kept[i]);
    cr_expect_eq(renames, 0, "%s", d.source.ptr);
    json_decref(src);
}

Test(transform, a_new_name_never_takes_a_name_already_there, .init = setup, .fini = teardown)
{
    json_t *src;

    /* "_id" -> "%_id" is taken by an attribute of that name: one more "%" */
    src = renamed_source(parse("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"_id\":{\"S\":\"refused\"},"
                               "\"%_id\":{\"S\":\"kept\"},\"%%_id\":{\"S\":\"kept too\"}}"));
    cr_expect_str_eq(json_string_value(json_object_get(src, "%_id")), "kept");
    cr_expect_str_eq(json_string_value(json_object_get(src, "%%_id")), "kept too");
    cr_expect_str_eq(json_string_value(json_object_get(src, "%%%_id")), "refused", "%s",
                     d.source.ptr);
    cr_expect_eq(json_object_size(src), 5);
    json_decref(src);

    /* " x." -> "%%20x%2E" (its first choice "%" + "%20x%2E" is free), then
     * "20x." -> "%20x%2E", taken by a kept name, "%%20x%2E", taken by the
     * first new name, so "%%%20x%2E": two refused names near each other */
    src = renamed_source(parse("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"20x.\":{\"N\":\"2\"},"
                               "\" x.\":{\"N\":\"1\"},\"%20x%2E\":{\"N\":\"0\"}}"));
    cr_expect_eq(json_number_value(json_object_get(src, "%20x%2E")), 0, "%s", d.source.ptr);
    cr_expect_eq(json_number_value(json_object_get(src, "%%20x%2E")), 1, "%s", d.source.ptr);
    cr_expect_eq(json_number_value(json_object_get(src, "%%%20x%2E")), 2, "%s", d.source.ptr);
    cr_expect_eq(json_object_size(src), 5);
    json_decref(src);
}

Test(transform, new_names_do_not_depend_on_the_member_order, .init = setup, .fini = teardown)
{
    static const char *const names[] = { "%20x%2E", "20x.", " x.", "_id", "%_id", "", "%" };
    enum { N = sizeof(names) / sizeof(names[0]) };
    json_t *fwd = keyed_item(), *rev = json_object(), *mf = json_object(), *mr = json_object();
    json_t *a, *b;

    for (size_t i = 0; i < N; i++) {
        put(fwd, names[i], strlen(names[i]), json_pack("{ss}", "S", names[i]));
        put(mf, names[i], strlen(names[i]), json_pack("{ss}", "S", names[i]));
        put(rev, names[N - 1 - i], strlen(names[N - 1 - i]), json_pack("{ss}", "S", names[N - 1 - i]));
        put(mr, names[N - 1 - i], strlen(names[N - 1 - i]), json_pack("{ss}", "S", names[N - 1 - i]));
    }
    put(fwd, LIT("m"), av_wrap("M", mf));
    put(rev, LIT("m"), av_wrap("M", mr));
    put(rev, LIT("sk"), json_pack("{ss}", "N", "1"));
    put(rev, LIT("pk"), json_pack("{ss}", "S", "k"));
    a = renamed_source(fwd);
    b = renamed_source(rev);
    cr_expect(json_equal(a, b), "member order changed the names:\n%s", d.source.ptr);
    cr_expect_str_eq(json_string_value(json_object_get(a, "%%20x%2E")), " x.");
    cr_expect_str_eq(json_string_value(json_object_get(a, "%%%20x%2E")), "20x.");
    cr_expect_str_eq(json_string_value(json_object_get(a, "%%_id")), "_id");
    cr_expect_str_eq(json_string_value(json_object_get(a, "%%")), "");
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(a, "m"), "%%")), "");
    json_decref(a);
    json_decref(b);
}

struct seen_rename {
    char name[16];
    size_t len;
    int depth;
};
static struct seen_rename seen[16];
static size_t nseen;

static void note_rename(void *arg, const char *name, size_t len, int depth)
{
    cr_assert_eq(arg, &nseen);
    cr_assert_lt(nseen, 16);
    cr_assert_lt(len, sizeof(seen[0].name));
    memcpy(seen[nseen].name, name, len);
    seen[nseen].len = len;
    seen[nseen++].depth = depth;
}

Test(transform, each_rename_is_reported_with_its_depth, .init = setup, .fini = teardown)
{
    json_t *it = keyed_item(), *m = json_object();

    nseen = 0;
    cfg.on_rename = note_rename;
    cfg.rename_arg = &nseen;
    put(m, LIT("_id"), json_pack("{ss}", "S", "a map key: kept"));
    put(m, LIT("\0."), json_pack("{s[{s{s{ss}}}]}", "L", "M", "", "S", "x"));
    put(it, LIT("m"), av_wrap("M", m));
    put(it, LIT("_id"), json_pack("{ss}", "S", "y"));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_assert_eq(nseen, 3, "%zu renames", nseen);
    /* one object at a time, top level first */
    cr_expect(seen[0].len == 3 && memcmp(seen[0].name, "_id", 3) == 0 && seen[0].depth == 0);
    cr_expect(seen[1].len == 2 && memcmp(seen[1].name, "\0.", 2) == 0 && seen[1].depth == 1);
    cr_expect(seen[2].len == 0 && seen[2].depth == 3, "m / \\0. / [0] / \"\": depth %d", seen[2].depth);
    expect_source("{\"pk\":\"k\",\"sk\":1,\"m\":{\"_id\":\"a map key: kept\","
                  "\"%\\u0000%2E\":[{\"%\":\"x\"}]},\"%_id\":\"y\"}",
                  strlen("{\"pk\":\"k\",\"sk\":1,\"m\":{\"_id\":\"a map key: kept\","
                         "\"%\\u0000%2E\":[{\"%\":\"x\"}]},\"%_id\":\"y\"}"));
}

Test(transform, filters_and_hmac_use_the_original_names, .init = setup, .fini = teardown)
{
    static const char *const inc[] = { "_id", "meta", "_source" }, *const exc[] = { "_source" };
    static const char *const h[] = { "meta" };
    json_t *src;

    cfg.include = inc;
    cfg.n_include = 3;
    cfg.exclude = exc;
    cfg.n_exclude = 1;
    cfg.hmac = h;
    cfg.n_hmac = 1;
    cfg.hmac_key = hkey;
    cfg.hmac_key_len = sizeof(hkey) - 1;
    src = renamed_source(parse("{\"pk\":{\"S\":\"k\"},\"sk\":{\"N\":\"1\"},\"_id\":{\"S\":\"i\"},"
                               "\"_source\":{\"S\":\"dropped\"},\"other\":{\"S\":\"not included\"},"
                               "\"meta\":{\"M\":{\"a.\":{\"S\":\"y\"},\"\":{\"S\":\"x\"}}}}"));
    cr_expect_eq(json_object_size(src), 2, "%s", d.source.ptr);
    cr_expect_str_eq(json_string_value(json_object_get(src, "%_id")), "i");
    /* the digest of canonical JSON {"":"x","a.":"y"}: the names inside are not renamed
     * (python3 hmac.new(b"test-key-\x00\x01", b'{"":"x","a.":"y"}', hashlib.sha256)) */
    cr_expect_str_eq(json_string_value(json_object_get(src, "meta")),
                     "61b0520ed8b93b53a861ca8687ac7dbdf3921e198c7f2635bdb4826aba6c4c62");
    json_decref(src);
}

static char said[300][200];
static size_t nsaid;

static void say(void *arg, const char *line)
{
    cr_assert_eq(arg, said);
    if (nsaid < 300)
        snprintf(said[nsaid], sizeof(said[0]), "%s", line);
    nsaid++;
}

Test(transform, the_renames_helper_lists_each_name_once_and_counts_all)
{
    struct transform_renames r;
    char name[32];

    nsaid = 0;
    transform_renames_init(&r, say, said);
    transform_renames_note(&r, "_id", 3, 0);
    transform_renames_note(&r, "_id", 3, 2);
    transform_renames_note(&r, "a\0\t\"", 4, 1);
    cr_expect_eq(r.count, 3);
    cr_expect_eq(nsaid, 2);
    cr_expect_not_null(strstr(said[0], "\"_id\" (depth 0)"), "%s", said[0]);
    cr_expect_not_null(strstr(said[1], "\"a\\x00\\x09\\x22\" (depth 1)"), "%s", said[1]);
    /* names longer than the remembered prefix are told apart by the rest */
    for (int i = 0; i < 2; i++) {
        char long_name[100];

        memset(long_name, 'x', sizeof(long_name));
        long_name[99] = (char)('0' + i);
        transform_renames_note(&r, long_name, sizeof(long_name), 0);
    }
    cr_expect_eq(nsaid, 4);
    for (int i = 0; i < 400; i++) {
        snprintf(name, sizeof(name), " %d", i % 300);
        transform_renames_note(&r, name, strlen(name), 0);
    }
    cr_expect_eq(r.count, 405);
    cr_expect_eq(r.listed, TRANSFORM_RENAMES_LISTED);
    /* 4, then 252 more distinct names, then one line saying the rest is not listed */
    cr_expect_eq(nsaid, TRANSFORM_RENAMES_LISTED + 1);
    cr_expect_not_null(strstr(said[TRANSFORM_RENAMES_LISTED], "not listed"), "%s",
                       said[TRANSFORM_RENAMES_LISTED]);
    transform_renames_close(&r);
}

/* ---- ids ---- */

Test(transform, a_hashed_id_never_equals_a_literal_id, .init = setup, .fini = teardown)
{
    static const char hex[] = "ba35c170729417f1499e0886e7e12fcdb4ab00ad411110ae1e888c766d4ed70d";
    char key[601], hashed[DOC_ID_MAX + 1];
    json_t *it;

    cfg.range_key = NULL;
    memset(key, 'a', 600);
    key[600] = '\0';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    snprintf(hashed, sizeof(hashed), "%s", d.id);
    /* a key whose value is the SHA-256 hex of "a" * 600 keeps that text */
    it = json_pack("{s{ss}}", "pk", "S", hex);
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect_str_eq(id_str(), hex);
    cr_expect_str_neq(hashed, id_str(), "a long key and a key equal to its hash share %s", hashed);

    /* with id_sep 'h', "\h" is the escaped key "h": hashed ids use "\H" */
    cfg.id_sep = 'h';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect_str_eq(id_str(), "\\Hba35c170729417f1499e0886e7e12fcdb4ab00ad411110ae1e888c766d4ed70d");
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"h\"}}"), TR_DOC);
    cr_expect_str_eq(id_str(), "\\h");
}

Test(transform, an_id_holding_a_lone_surrogate_is_hashed, .init = setup, .fini = teardown)
{
    json_t *it = json_object();

    /* "a\ud800": the engines would store U+FFFD for it, as for "a\ud801" */
    put(it, LIT("pk"), av_of("S", LIT("a\xed\xa0\x80")));
    put(it, LIT("sk"), av_of("N", LIT("1")));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    /* python3: hashlib.sha256(b"a\xed\xa0\x80|1").hexdigest() */
    cr_expect_str_eq(id_str(), "\\h2f73d1d178e684a7f54bb6e49b0a652c9634218cd89e43014973bea482b42783");

    cfg.range_key = NULL;
    it = json_object();
    put(it, LIT("pk"), av_of("S", LIT("a\xed\xa0\x80")));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect_str_eq(id_str(), "\\h25819b9b43d499092eb2be7b6f27ae28439eee434cea4490191ab4ccb8f3409c");

    /* U+FFFD itself is valid UTF-8: kept */
    it = json_object();
    put(it, LIT("pk"), av_of("S", LIT("a\xef\xbf\xbd")));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    cr_expect_str_eq(id_str(), "a\xef\xbf\xbd");
}

Test(transform, lone_surrogates_are_written_as_escapes, .init = setup, .fini = teardown)
{
    json_t *it = keyed_item(), *m = json_object();
    static const char want[] = "{\"pk\":\"k\",\"sk\":1,\"s\":\"x\\ud800\\\"\\udfff\\u0000\","
                               "\"m\":{\"\\udbff\":\"\xef\xbf\xbd\"}}";

    put(it, LIT("s"), av_of("S", LIT("x\xed\xa0\x80\"\xed\xbf\xbf\0")));
    put(m, LIT("\xed\xaf\xbf"), av_of("S", LIT("\xef\xbf\xbd")));
    put(it, LIT("m"), av_wrap("M", m));
    cr_assert_eq(item_tree(it), TR_DOC, "%s", errs());
    expect_source(want, sizeof(want) - 1);
}

/* The end-to-end tests find each item's document through e2e_doc_id, a
 * second implementation of the id function: the two must agree, on keys
 * with separators, backslashes, NUL, lone surrogates, and near 512 bytes. */
static unsigned next_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 16;
}

Test(transform, the_id_function_agrees_with_the_tests_own, .init = setup, .fini = teardown)
{
    /* "" stands for one NUL byte */
    static const char *const bits[] = { "a", "|", "\\", "h", "", "\xed\xa0\x80", "\xc3\xa9", " ",
                                        "\xef\xbf\xbd", "0123456789abcdef" };
    static const char *const nums[] = { "1E+2", "-0.50", "1e-130", "12345678901234567890" };
    unsigned seed = 7;

    for (int round = 0; round < 400; round++) {
        json_t *it = json_object();
        char key[2][700], want[DOC_ID_MAX + 1];
        size_t len[2] = { 0, 0 }, wlen;

        cfg.id_sep = round % 3 == 0 ? 'h' : '|';
        for (int part = 0; part < 2; part++) {
            size_t target = next_rand(&seed) % 2 ? 40 : 300;

            while (len[part] < target) {
                const char *b = bits[next_rand(&seed) % 10];
                size_t n = b[0] ? strlen(b) : 1;

                memcpy(key[part] + len[part], b, n);
                len[part] += n;
            }
        }
        put(it, LIT("pk"), av_of("S", key[0], len[0]));
        if (round % 4 == 1)
            put(it, LIT("sk"), av_of("N", nums[round % 4], strlen(nums[round % 4])));
        else if (round % 4 == 3)
            put(it, LIT("sk"), av_of("B", LIT("AAEC/w==")));
        else
            put(it, LIT("sk"), av_of("S", key[1], len[1]));
        wlen = e2e_doc_id(it, "pk", "sk", cfg.id_sep, want, sizeof(want));
        cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
        cr_assert(d.id_len == wlen && memcmp(d.id, want, wlen) == 0, "round %d: %zu and %zu bytes",
                  round, d.id_len, wlen);
        json_decref(it);
    }
}

/* ---- key text ---- */

static const char *key_text_of(const char *keys_json, struct buf *out)
{
    json_t *k = parse(keys_json);
    int rc;

    buf_reset(out);
    rc = transform_key_text(&cfg, k, out, &err);
    json_decref(k);
    cr_assert_eq(rc, 0, "%s", errs());
    return out->ptr;
}

Test(transform, two_spellings_of_a_key_give_one_key_text, .init = setup, .fini = teardown)
{
    struct buf a, b;
    json_t *k;

    buf_init(&a, 0);
    buf_init(&b, 0);
    cr_expect_str_eq(key_text_of("{\"pk\":{\"S\":\"a|b\"},\"sk\":{\"N\":\"1E+2\"}}", &a), "a\\|b|100");
    cr_expect_str_eq(key_text_of("{\"sk\":{\"N\":\"100.0\"},\"pk\":{\"S\":\"a|b\"},\"x\":{\"S\":\"y\"}}",
                                 &b),
                     a.ptr);
    cr_expect_str_neq(key_text_of("{\"pk\":{\"S\":\"a|b\"},\"sk\":{\"N\":\"101\"}}", &b), a.ptr);
    /* the text before hashing: a long key is not hashed here */
    cfg.range_key = NULL;
    k = json_pack("{s{ss}}", "pk", "S", zeros("", 599, "1"));
    buf_reset(&b);
    cr_expect_eq(transform_key_text(&cfg, k, &b, &err), 0);
    cr_expect_eq(b.len, 600);
    json_decref(k);
    /* appended; out unchanged on failure */
    buf_reset(&b);
    buf_puts(&b, "x");
    k = parse("{\"sk\":{\"N\":\"1\"}}");
    cr_expect_eq(transform_key_text(&cfg, k, &b, &err), -EINVAL);
    cr_expect_str_eq(b.ptr, "x");
    cr_expect_not_null(strstr(errs(), "\"pk\" missing"), "%s", errs());
    json_decref(k);
    buf_close(&a);
    buf_close(&b);
}

/* ---- keys for the dead-letter file ---- */

Test(transform, keys_hold_the_key_attributes_as_dynamodb_json, .init = setup, .fini = teardown)
{
    json_t *it = json_object();
    static const char want[] = "{\"p\\u0000k\":{\"S\":\"a\\u0000\\\"\\ud800\"},"
                               "\"sk\":{\"N\":\"100\"}}";

    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a|\\\"b\"},\"sk\":{\"N\":\"1E+2\"},\"v\":{\"S\":\"x\"}}"),
                 TR_DOC, "%s", errs());
    cr_expect_str_eq(d.keys.ptr, "{\"pk\":{\"S\":\"a|\\\"b\"},\"sk\":{\"N\":\"100\"}}");
    cr_assert_eq(record_file(DATA "remove.json"), TR_DOC, "%s", errs());
    cr_expect_str_eq(d.keys.ptr, "{\"pk\":{\"S\":\"user#1\"},\"sk\":{\"N\":\"42\"}}");
    cr_assert_eq(item_text("{\"pk\":{\"B\":\"AAEC/w==\"},\"sk\":{\"N\":\"-0.50\"}}"), TR_DOC);
    cr_expect_str_eq(d.keys.ptr, "{\"pk\":{\"B\":\"AAEC/w==\"},\"sk\":{\"N\":\"-0.5\"}}");

    /* names and values byte for byte */
    cfg.hash_key = "p\0k";
    cfg.hash_key_len = 3;
    put(it, LIT("p\0k"), av_of("S", LIT("a\0\"\xed\xa0\x80")));
    put(it, LIT("sk"), av_of("N", LIT("1e2")));
    cr_assert_eq(transform_keys(&cfg, it, &d, &err), TR_DOC, "%s", errs());
    json_decref(it);
    cr_expect_eq(d.keys.len, sizeof(want) - 1, "%s", d.keys.ptr);
    cr_expect(memcmp(d.keys.ptr, want, sizeof(want) - 1) == 0, "%s", d.keys.ptr);
}

Test(transform, keys_are_there_when_the_image_is_refused, .init = setup, .fini = teardown)
{
    cr_expect_eq(record_file(DATA "bad_number.json"), TR_ERROR);
    cr_assert_gt(d.keys.len, 0, "the dead-letter entry needs the key");
    cr_expect_eq(d.keys.ptr[0], '{', "%s", d.keys.ptr);
    /* and never those of an earlier document */
    cr_expect_eq(item_text("{\"pk\":{\"S\":\"a\"}}"), TR_ERROR);
    cr_expect_eq(d.keys.len, 0);
}

Test(transform, keys_stay_empty_when_a_key_attribute_is_hmacd, .init = setup, .fini = teardown)
{
    static const char *const h[] = { "sk" }, *const other[] = { "v" };

    cfg.hmac = other;
    cfg.n_hmac = 1;
    cfg.hmac_key = hkey;
    cfg.hmac_key_len = sizeof(hkey) - 1;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"4111\"},\"v\":{\"S\":\"x\"}}"),
                 TR_DOC, "%s", errs());
    cr_expect_str_eq(d.keys.ptr, "{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"4111\"}}",
                     "another attribute's hmac does not matter");
    cfg.hmac = h;
    cr_assert_eq(item_text("{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"4111\"}}"), TR_DOC, "%s", errs());
    cr_expect_eq(d.keys.len, 0, "%s", d.keys.ptr);
    cr_assert_eq(record_file(DATA "remove.json"), TR_DOC, "%s", errs());
    cr_expect_eq(d.keys.len, 0, "%s", d.keys.ptr);
}

Test(transform, keys_in_a_doc_never_buf_inited_stay_empty, .init = setup, .fini = teardown)
{
    json_t *it = keyed_item();
    struct doc z;

    memset(&z, 0, sizeof(z));
    buf_init(&z.source, 0);
    cr_assert_eq(transform_item(&cfg, it, &z, &err), TR_DOC, "%s", errs());
    json_decref(it);
    cr_expect_eq(z.keys.len, 0);
    cr_expect_null(z.keys.ptr);
    buf_close(&z.source);
}

/* ---- records ---- */

Test(transform, event_names_and_ttl_fields_are_compared_whole, .init = setup, .fini = teardown)
{
    json_t *r = load(DATA "remove.json");

    json_object_set_new(r, "eventName", json_stringn("REMOVE\0x", 8));
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_ERROR);
    cr_expect_not_null(strstr(errs(), "eventName"), "%s", errs());
    json_decref(r);

    r = load(DATA "remove_ttl_aws.json");
    cfg.on_ttl_delete = TRANSFORM_TTL_KEEP;
    json_object_set_new(r, "userIdentity",
                        json_pack("{soss}", "type", json_stringn("Service\0x", 9), "principalId",
                                  "dynamodb.amazonaws.com"));
    cr_expect_eq(transform_record(&cfg, r, &d, &err), TR_DOC, "not a TTL delete: %s", errs());
    cr_expect_eq(d.op, DOC_DELETE);
    json_decref(r);
}
