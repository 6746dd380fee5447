/* transform: stream records and items -> bulk actions (id, document, op). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "indexer/transform.h"

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
    buf_init(&err, 4096);
}

static void teardown(void)
{
    buf_close(&d.source);
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

Test(transform, ids_over_512_bytes_become_sha256_hex, .init = setup, .fini = teardown)
{
    char key[700];
    json_t *it;

    cfg.range_key = NULL;
    memset(key, 'a', 600);
    key[600] = '\0';
    it = json_pack("{s{ss}}", "pk", "S", key);
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
    json_decref(it);
    /* python3: hashlib.sha256(b"a"*600).hexdigest() */
    cr_expect_str_eq(id_str(), "ba35c170729417f1499e0886e7e12fcdb4ab00ad411110ae1e888c766d4ed70d");
    cr_expect_eq(d.id_len, 64);

    /* the digest covers the escaped id: sha256(b"a"*300 + b"\\|" + b"b"*300 + b"|7") */
    cfg.range_key = "sk";
    memset(key, 'a', 300);
    key[300] = '|';
    memset(key + 301, 'b', 300);
    key[601] = '\0';
    it = json_pack("{s{ss}s{ss}}", "pk", "S", key, "sk", "N", "7.0");
    cr_assert_eq(transform_item(&cfg, it, &d, &err), TR_DOC, "%s", errs());
    json_decref(it);
    cr_expect_str_eq(id_str(), "9dc50487bc5fcbb092e52c8623f204a9c8e968a4fca596014fed4fcf1aa33085");
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
    cr_expect_eq(d.id_len, 64);
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
