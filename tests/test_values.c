/* Every item DynamoDB accepts reaches the index: ddb2es run against DynamoDB
 * Local and the search double, with values, names and keys from the whole
 * space DynamoDB takes (checked on DynamoDB Local 1.25.1: NUL in strings,
 * map keys, attribute names and key values; every control character; names
 * the engines refuse), on the four stream view types. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "base/jsonx.h"
#include "tests/support/ddbclient.h"
#include "tests/support/ddbproxy.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

TestSuite(values, .timeout = 150);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("ddb2es log:\n%s", log);
    free(log);
}

static void wait_equal(struct searchd *sd, const struct e2e_table *t, struct proc *p)
{
    char why[1024];

    if (!e2e_wait_equal(sd, t, 60000, why, sizeof(why))) {
        dump_log(p);
        cr_assert(0, "table %s: %s", t->name, why);
    }
}

/* Items holding NUL and every other C0 control character, DEL, U+2028 and
 * U+2029, the BOM, U+FFFF, U+10FFFF, a combining sequence, empty strings
 * and binaries, binaries with NUL bytes; in values, set members, map keys
 * (at depth), attribute names and key values (hash and range).  `s` is
 * the S key value of the item. */
static void put_items(const char *table, bool range)
{
    static const char *const keys[] = {
        "nul\\u0000key", "\\u0000", "ctl\\u0001\\u001f\\u007f", "sep|and\\\\back",
        "ls\\u2028ps\\u2029", "\\ufeffbom", "ffff\\uffff", "max\\udbff\\udfff", "e\\u0301",
    };
    char item[4096];

    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
        char rk[64] = "";

        if (range)
            snprintf(rk, sizeof(rk), ",\"sk\":{\"N\":\"%s\"}", i % 2 ? "1E+2" : "-0.5");
        snprintf(item, sizeof(item),
                 "{\"pk\":{\"S\":\"%s\"}%s,"
                 "\"text\":{\"S\":\"a\\u0000b\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                 "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
                 "\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\u007f"
                 "\\u2028\\u2029\\ufeff\\uffff\\udbff\\udfff e\\u0301 \\\"q\\\" \\\\\"},"
                 "\"empty\":{\"S\":\"\"},\"nothing\":{\"B\":\"\"},\"bin\":{\"B\":\"AAEAAg==\"},"
                 "\"tags\":{\"SS\":[\"\\u0000\",\"t\\u0000\",\"\"]},"
                 "\"n\\u0000ame\":{\"S\":\"a name holding NUL\"},"
                 "\"\\u0000\":{\"S\":\"NUL alone as a name\"},"
                 "\"m\":{\"M\":{\"k\\u0000\":{\"M\":{\"\\u0001deep\\u0000\":{\"S\":\"v\\u0000\"}}}}},"
                 "\"l\":{\"L\":[{\"S\":\"\\u0000\"},{\"S\":\"\"},{\"NULL\":true}]},"
                 "\"big\":{\"N\":\"12345678901234567890123456789012345678\"}}",
                 keys[i], rk);
        ddbc_put(table, item);
    }
}

/* The four view types: NEW_AND_OLD_IMAGES and NEW_IMAGE carry the image,
 * KEYS_ONLY and OLD_IMAGE make ddb2es read the item (BatchGetItem). */
Test(values, nul_and_every_code_point_reach_the_index_on_four_view_types)
{
    static const char *const views[4] = { "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY",
                                          "OLD_IMAGE" };
    char names[4][128], dir[256];
    struct e2e_table t[4];
    struct searchd *sd;
    struct proc p;
    const char *conf;

    need_ddb();
    sd = searchd_start(NULL);
    for (int i = 0; i < 4; i++) {
        ddbc_table_name(names[i], sizeof(names[i]), "nul");
        lower(names[i]);
        t[i] = (struct e2e_table){ .name = names[i], .index = names[i], .hash = "pk",
                                   .range = i == 0 ? "sk" : NULL };
        ddbc_create_table(names[i], "pk", "S", i == 0 ? "sk" : NULL, i == 0 ? "N" : NULL,
                          views[i]);
        e2e_create_index(sd, names[i]);
    }
    conf = e2e_config(searchd_url(sd), t, 4, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    for (int i = 0; i < 4; i++)
        put_items(names[i], i == 0);
    for (int i = 0; i < 4; i++)
        wait_equal(sd, &t[i], &p);
    /* A modify and a delete of keys holding NUL. */
    for (int i = 0; i < 4; i++) {
        char key[256], body[1024];

        snprintf(key, sizeof(key), "{\"pk\":{\"S\":\"nul\\u0000key\"}%s}",
                 i == 0 ? ",\"sk\":{\"N\":\"-0.5\"}" : "");
        ddbc_delete(names[i], key);
        snprintf(body, sizeof(body),
                 "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"\\u0000\"}%s},"
                 "\"UpdateExpression\":\"SET #n = :v\","
                 "\"ExpressionAttributeNames\":{\"#n\":\"n\\u0000ame\"},"
                 "\"ExpressionAttributeValues\":{\":v\":{\"S\":\"x\\u0000y\"}}}",
                 names[i], i == 0 ? ",\"sk\":{\"N\":\"1E+2\"}" : "");
        json_decref(ddbc_callj("UpdateItem", jsonx_loadb(body, strlen(body), 0, NULL)));
    }
    for (int i = 0; i < 4; i++)
        wait_equal(sd, &t[i], &p);
    {
        char path[512];

        snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
        cr_expect_eq(access(path, F_OK), -1, "nothing was dead-lettered");
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* README "Documents": names the engines refuse (metadata names at the top
 * level; at any depth empty, blank, leading, trailing or doubled dots) are
 * renamed by one rule, never dead-lettered; "dotted.name" is accepted and
 * stays; a renamed name never takes a name already in the item.  Each
 * distinct name is logged once and every rename counted. */
Test(values, every_refused_name_is_renamed_by_the_rule_and_counted)
{
    char name[128], dir[256], labels[200];
    struct e2e_table t = { .hash = "pk" };
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *log;
    int port;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "names");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    port = httpget_free_port();
    {
        char listen[64];

        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        e2e_metrics_listen = listen;
        conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
        e2e_metrics_listen = NULL;
    }
    e2e_start(&p, conf);
    ddbc_put(name, "{\"pk\":{\"S\":\"mongo\"},\"_id\":{\"S\":\"5f1d7e\"},\"%_id\":{\"S\":\"taken\"},"
                   "\"_source\":{\"N\":\"1\"},\"_index\":{\"BOOL\":true},\" \":{\"S\":\"blank\"},"
                   "\"\\t\":{\"S\":\"tab\"},\".\":{\"S\":\"dot\"},\".lead\":{\"S\":\"l\"},"
                   "\"trail.\":{\"S\":\"t\"},\"a..b\":{\"S\":\"dd\"},\"x. .y\":{\"S\":\"sp\"},"
                   "\"dotted.name\":{\"S\":\"kept\"},"
                   "\"m\":{\"M\":{\"_id\":{\"S\":\"kept at depth\"},\" \":{\"S\":\"renamed\"},"
                   "\"q..r\":{\"M\":{\".\":{\"S\":\"deeper\"}}}}}}");
    ddbc_put(name, "{\"pk\":{\"S\":\"again\"},\"_id\":{\"S\":\"2\"}}");
    wait_equal(sd, &t, &p);
    snprintf(labels, sizeof(labels), "table=\"%s\"", name);
    cr_expect_eq(httpget_metric(port, "ddb2es_fields_renamed_total", labels), 14,
                 "every rename counted (%g)",
                 httpget_metric(port, "ddb2es_fields_renamed_total", labels));
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    log = proc_slurp(p.err_path);
    {
        const char *first = strstr(log, "\"_id\""), *again = first ? strstr(first + 1, "\"_id\"") : NULL;

        cr_expect_not_null(first, "the renamed name is logged: %s", log);
        cr_expect_null(again, "once: %s", log);
    }
    free(log);
    searchd_stop(sd);
}

/* README "Documents", id function version 2: an id over 512 bytes becomes
 * "\h" and its SHA-256 hex, a form no escaped key can take.  Under version 1
 * it was the bare hex, so an item whose key is that hex shared the long
 * key's document. */
Test(values, a_long_key_and_a_key_equal_to_its_digest_are_two_documents)
{
    char name[128], dir[256], item[2048], hex[65];
    struct e2e_table t = { .hash = "pk" };
    unsigned char md[32];
    char key[601];
    struct searchd *sd;
    struct proc p;
    const char *conf;

    need_ddb();
    memset(key, 'x', 600);
    key[600] = '\0';
    SHA256((const unsigned char *)key, 600, md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    ddbc_table_name(name, sizeof(name), "longkey");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_IMAGE");
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    snprintf(item, sizeof(item), "{\"pk\":{\"S\":\"%s\"},\"v\":{\"S\":\"long\"}}", key);
    ddbc_put(name, item);
    snprintf(item, sizeof(item), "{\"pk\":{\"S\":\"%s\"},\"v\":{\"S\":\"hex\"}}", hex);
    ddbc_put(name, item);
    wait_equal(sd, &t, &p);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* DDBLOCAL.md "Spelling of numbers is not canonical": a record made by
 * UpdateItem echoes the client's spelling of the key (1E+2) while
 * BatchGetItem returns the stored one (100).  On a KEYS_ONLY stream the
 * reply must still be matched to the record (else the item is taken for
 * deleted), and two spellings of one key in one page must be asked for
 * once (BatchGetItem refuses duplicates with a ValidationException). */
Test(values, keys_only_matches_a_key_spelled_two_ways)
{
    char name[128], dir[256];
    struct e2e_table t = { .hash = "pk", .range = "sk" };
    struct searchd *sd;
    struct proc p;
    const char *conf;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "spell");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", "sk", "N", "KEYS_ONLY");
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    ddbc_put(name, "{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"100\"},\"v\":{\"N\":\"1\"}}");
    for (int i = 2; i < 7; i++) { /* the last one spelled 1E+2 */
        char body[512];

        snprintf(body, sizeof(body),
                 "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"a\"},\"sk\":{\"N\":\"%s\"}},"
                 "\"UpdateExpression\":\"SET v = :v\",\"ExpressionAttributeValues\":"
                 "{\":v\":{\"N\":\"%d\"}}}",
                 name, i % 2 ? "100" : "1E+2", i);
        json_decref(ddbc_callj("UpdateItem", jsonx_loadb(body, strlen(body), 0, NULL)));
    }
    /* Started after the writes: the records come in one page. */
    e2e_start(&p, conf);
    wait_equal(sd, &t, &p);
    {
        char *log = proc_slurp(p.err_path);

        cr_expect_null(strstr(log, "ValidationException"), "no key asked for twice: %s", log);
        free(log);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* "A record that cannot be handled goes to the dead-letter file and the
 * shard goes on."  DynamoDB Local only sends well-formed records; a proxy
 * in front of it turns one record's value into a type DynamoDB does not
 * have (as a newer service type, or a damaged record, would look), with a
 * correct x-amz-crc32.  That record is dead-lettered with its raw text,
 * table, shard, sequence number and reason; every later record is indexed
 * and the checkpoint passes it. */
Test(values, an_untransformable_record_is_dead_lettered_and_every_later_record_indexed)
{
    char name[128], dir[256], path[512];
    struct e2e_table t = { .hash = "pk" };
    struct ddbproxy *px;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *dump, *docs;
    char *dlq;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "untrans");
    lower(name);
    t.name = t.index = name;
    ddbc_create_table(name, "pk", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    px = ddbproxy_start(ddbc_endpoint());
    ddbproxy_rewrite(px, "{\"S\":\"poison-me\"}", "{\"Z\":\"poison-me\"}");
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);
    conf = e2e_config_ex(ddbproxy_url(px), searchd_url(sd), &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    e2e_start(&p, conf);
    ddbc_put(name, "{\"pk\":{\"S\":\"a\"},\"v\":{\"S\":\"1\"}}");
    ddbc_put(name, "{\"pk\":{\"S\":\"b\"},\"v\":{\"S\":\"poison-me\"}}");
    ddbc_put(name, "{\"pk\":{\"S\":\"c\"},\"v\":{\"S\":\"3\"}}");
    snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
    cr_assert(proc_wait_for_text(path, "record_conversion_error", 30000),
              "the record is dead-lettered");
    ddbc_put(name, "{\"pk\":{\"S\":\"d\"},\"v\":{\"S\":\"4\"}}");
    for (int i = 0; i < 300; i++) {
        dump = e2e_dump(sd);
        docs = json_object_get(dump, name);
        if (json_object_get(docs, "d") && json_object_get(docs, "c") && json_object_get(docs, "a"))
            break;
        json_decref(dump);
        dump = NULL;
        usleep(100000);
    }
    cr_assert_not_null(dump, "every later record is indexed");
    cr_expect_null(json_object_get(docs, "b"));
    json_decref(dump);
    cr_expect_gt(ddbproxy_rewritten(px), 0);
    dlq = proc_slurp(path);
    cr_expect(strstr(dlq, "\\\"Z\\\":\\\"poison-me\\\"") || strstr(dlq, "\"Z\":\"poison-me\""),
              "the record as received: %s", dlq);
    cr_expect(strstr(dlq, "unknown type descriptor") != NULL, "the reason: %s", dlq);
    cr_expect(strstr(dlq, "\"seq\":\"") != NULL && strstr(dlq, "\"shard\":\"shardId-") != NULL,
              "its position: %s", dlq);
    free(dlq);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
    ddbproxy_stop(px);
}

/* README "Documents": the index mappings shipped in deploy/ take every
 * number DynamoDB holds (a first small integer does not make the field a
 * long that refuses 38 digits or 1E+125) and every string (a first
 * date-looking string does not make the field a date that refuses the next
 * one) and items nested as deep as DynamoDB allows (the DynamoDB Developer
 * Guide's quotas: 32 levels, the attribute and 31 maps in it; an object 32
 * deep for the engines, whose default limit is 20: ENGINE-RULES.md section 6).  The same items into an index the engine maps by itself lose those
 * documents to the dead-letter file: the file is what makes the difference. */
Test(values, the_shipped_index_mappings_take_every_number_and_string)
{
    static const char *const items[] = {
        "{\"pk\":{\"S\":\"a\"},\"n\":{\"N\":\"3\"},\"s\":{\"S\":\"2024-01-01\"}}",
        "{\"pk\":{\"S\":\"b\"},\"n\":{\"N\":\"12345678901234567890123456789012345678\"},"
        "\"s\":{\"S\":\"hello\"}}",
        "{\"pk\":{\"S\":\"c\"},\"n\":{\"N\":\"1E+125\"},\"s\":{\"S\":\"2024/01/02\"}}",
        "{\"pk\":{\"S\":\"d\"},\"n\":{\"N\":\"-1E-130\"},\"s\":{\"S\":\"1700000000\"}}",
        "{\"pk\":{\"S\":\"e\"},\"n\":{\"N\":\"2.5\"},\"s\":{\"S\":\"\"}}",
        NULL, /* f: 31 maps in one another, as deep as DynamoDB allows */
    };
    static const char *const hdr[] = { "Content-Type: application/json", NULL };
    char names[2][128], dir[256], path[512], why[1024];
    struct e2e_table t[2];
    struct searchd_resp r;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    char *mappings, *dlq;

    need_ddb();
    mappings = proc_slurp("deploy/index-mappings.json");
    cr_assert(mappings && *mappings, "deploy/index-mappings.json is readable");
    sd = searchd_start(NULL);
    for (int i = 0; i < 2; i++) {
        ddbc_table_name(names[i], sizeof(names[i]), i == 0 ? "mapped" : "guessed");
        lower(names[i]);
        t[i] = (struct e2e_table){ .name = names[i], .index = names[i], .hash = "pk" };
        ddbc_create_table(names[i], "pk", "S", NULL, NULL, "NEW_IMAGE");
    }
    snprintf(path, sizeof(path), "/%s", names[0]);
    cr_assert_eq(searchd_request(sd, "PUT", path, hdr, mappings, strlen(mappings), &r), 0);
    cr_assert_eq(r.status, 200, "%.*s", (int)r.len, r.body);
    searchd_resp_close(&r);
    free(mappings);
    conf = e2e_config(searchd_url(sd), t, 2, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    for (size_t k = 0; k < sizeof(items) / sizeof(*items); k++) {
        char item[1200] = "{\"pk\":{\"S\":\"f\"},\"deep\":";

        for (int m = 0; m < 31; m++)
            strcat(item, "{\"M\":{\"n\":");
        strcat(item, "{\"S\":\"bottom\"}");
        for (int m = 0; m < 31; m++)
            strcat(item, "}}");
        strcat(item, "}");
        for (int i = 0; i < 2; i++)
            ddbc_put(names[i], items[k] ? items[k] : item);
    }
    wait_equal(sd, &t[0], &p);
    snprintf(path, sizeof(path), "%s/dlq.ndjson", dir);
    /* Dead letters are written after their bulk's reply: wait for each kind. */
    cr_assert(proc_wait_for_text(path, names[1], 30000), "the guessed index refuses some");
    cr_expect(proc_wait_for_text(path, "mapper_parsing_exception", 30000));
    cr_expect(proc_wait_for_text(path, "depth", 30000), "the deep item is refused too");
    cr_expect(!e2e_index_equals_table(sd, &t[1], why, sizeof(why)));
    dlq = proc_slurp(path);
    cr_expect(strstr(dlq, names[0]) == NULL, "nothing of the mapped index: %s", dlq);
    cr_expect(strstr(dlq, "mapper_parsing_exception") != NULL, "%s", dlq);
    cr_expect(strstr(dlq, "depth") != NULL, "the deep item too: %s", dlq);
    free(dlq);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}
