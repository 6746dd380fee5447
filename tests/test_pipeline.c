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
#include "tests/support/workload.h"

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

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

/* Three tables in one process: hash+range on NEW_AND_OLD_IMAGES with items
 * near 400 KB, hash-only numeric keys on NEW_IMAGE, binary keys on KEYS_ONLY. */
struct trio {
    char names[3][128];
    struct e2e_table t[3];
    struct wl wl[3];
};

static void trio_setup(struct trio *x, uint64_t seed)
{
    static const char *const prefix[3] = { "mix", "num", "bin" };
    static const char *const view[3] = { "NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY" };

    memset(x, 0, sizeof(*x));
    for (int i = 0; i < 3; i++) {
        ddbc_table_name(x->names[i], sizeof(x->names[i]), prefix[i]);
        lower(x->names[i]);
        x->t[i].name = x->t[i].index = x->names[i];
    }
    x->t[0].hash = "pk";
    x->t[0].range = "sk";
    x->t[1].hash = "id";
    x->t[2].hash = "bk";
    ddbc_create_table(x->names[0], "pk", "S", "sk", "N", view[0]);
    ddbc_create_table(x->names[1], "id", "N", NULL, NULL, view[1]);
    ddbc_create_table(x->names[2], "bk", "B", NULL, NULL, view[2]);
    wl_init(&x->wl[0], seed, x->names[0], "pk", "S", "sk", "N", 60);
    x->wl[0].big_every = 60;
    wl_init(&x->wl[1], seed + 1, x->names[1], "id", "N", NULL, NULL, 60);
    wl_init(&x->wl[2], seed + 2, x->names[2], "bk", "B", NULL, NULL, 60);
}

static unsigned trio_write(struct trio *x, unsigned steps)
{
    unsigned n = 0;

    for (unsigned i = 0; i < steps; i++)
        n += wl_step(&x->wl[i % 3]);
    return n;
}

static void trio_assert_equal(struct trio *x, struct searchd *sd, struct proc *p, long ms)
{
    char why[1024];

    for (int i = 0; i < 3; i++) {
        bool ok = e2e_wait_equal(sd, &x->t[i], ms, why, sizeof(why));

        if (!ok && p)
            dump_log(p);
        cr_assert(ok, "table %s: %s", x->names[i], why);
    }
}

Test(pipeline, random_workload_every_type_three_view_types)
{
    struct trio x;
    struct searchd *sd;
    struct proc p;
    char dir[256];
    const char *conf;

    need_ddb();
    trio_setup(&x, 20261122);
    sd = searchd_start("--depth-limit", "0", NULL);
    conf = e2e_config(searchd_url(sd), x.t, 3, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    cr_log_info("random workload: %u items written", trio_write(&x, 450));
    trio_assert_equal(&x, sd, &p, 60000);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}
