/* End to end: ddb2es run against DynamoDB Local and the search double. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

TestSuite(pipeline, .timeout = 120);

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("ddb2es log:\n%s", log);
    free(log);
}

Test(pipeline, follows_inserts_updates_and_deletes)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t = { .hash = "author", .range = "ts" };
    struct searchd *sd;
    struct proc p;
    struct stat st;
    const char *conf;
    bool ok;

    need_ddb();
    ddbc_table_name(name, sizeof(name), "posts");
    t.name = t.index = name;
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    ddbc_create_table(name, "author", "S", "ts", "N", "NEW_AND_OLD_IMAGES");
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);

    ddbc_put(name, "{\"author\":{\"S\":\"ana\"},\"ts\":{\"N\":\"1700000000\"},\"text\":{\"S\":\"hi \\\"there\\\"\\n\"},"
                   "\"likes\":{\"N\":\"12345678901234567890123456789012345678\"},\"tags\":{\"SS\":[\"a\",\"b\"]}}");
    ddbc_put(name, "{\"author\":{\"S\":\"bo|b\"},\"ts\":{\"N\":\"-1.5E-100\"},\"m\":{\"M\":{\"x\":{\"L\":[{\"N\":\"1\"},{\"NULL\":true},{\"BOOL\":false}]}}},"
                   "\"bin\":{\"B\":\"AAEC\"},\"ns\":{\"NS\":[\"1E+125\",\"-0.000001\"]},\"bs\":{\"BS\":[\"AQ==\"]}}");
    ddbc_put(name, "{\"author\":{\"S\":\"cy\"},\"ts\":{\"N\":\"3\"},\"text\":{\"S\":\"naïve ☕ \\u0001\"}}");
    ok = e2e_wait_equal(sd, &t, 30000, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the inserts: %s", why);

    json_decref(ddbc_callj("UpdateItem", json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:s, s:{s:{s:s}}}",
        "TableName", name, "Key", "author", "S", "ana", "ts", "N", "1700000000",
        "UpdateExpression", "SET likes = :v", "ExpressionAttributeValues", ":v", "N", "-9.9999999999999999999999999999999999999E+125")));
    ddbc_delete(name, "{\"author\":{\"S\":\"cy\"},\"ts\":{\"N\":\"3\"}}");
    ok = e2e_wait_equal(sd, &t, 30000, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the update and the delete: %s", why);

    cr_assert_eq(e2e_stop(&p, 15000), 0, "a clean stop exits 0");
    {
        char path[512];

        snprintf(path, sizeof(path), "%s/state/checkpoints.json", dir);
        cr_assert_eq(stat(path, &st), 0, "the checkpoint file exists");
        cr_expect_eq(st.st_mode & 0777, 0600, "checkpoint mode %o", st.st_mode & 0777);
    }
    searchd_stop(sd);
}
