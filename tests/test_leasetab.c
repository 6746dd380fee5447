/* The lease table (daemon/leasetab.c): its items read back, and every
 * conditional write sent to DynamoDB Local, which decides the conditions as
 * DynamoDB does (ConditionExpression: "Comparison operator and function
 * reference", the DynamoDB Developer Guide); the jobs that make sure the
 * table exists and read it whole. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "daemon/leasetab.h"
#include "tests/support/awsloop.h"
#include "tests/support/ddbclient.h"
#include "tests/support/loop.h"

#define ARN "arn:aws:dynamodb:ddblocal:000000000000:table/posts/stream/2024-05-01T00:00:00.000"
#define SH_A "shardId-00000001714521600000-aaaaaaaa"
#define SH_B "shardId-00000001714536000000-bbbbbbbb"
#define T0 ((time_t)1714521600)

TestSuite(leasetab, .timeout = 60);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

/* Sends one request built by leasetab (stolen); returns the reply (caller
 * decrefs) and the HTTP status. */
static json_t *send_req(const char *op, json_t *body, long *status)
{
    char *text;
    json_t *r;

    cr_assert_not_null(body, "the request was built");
    text = jsonx_dumps(body, NULL);
    r = ddbc_call(op, text, status);
    free(text);
    json_decref(body);
    return r;
}

static void ok(const char *op, json_t *body)
{
    long st = 0;
    json_t *r = send_req(op, body, &st);

    cr_assert_eq(st, 200, "%s answered %ld: %s", op, st,
                 r ? jsonx_dumps(r, NULL) : "(no reply)");
    json_decref(r);
}

/* The request must fail its condition. */
static void refused(const char *op, json_t *body, const char *what)
{
    long st = 0;
    json_t *r = send_req(op, body, &st);
    const char *type = json_string_value(json_object_get(r, "__type"));

    cr_assert_eq(st, 400, "%s: %s answered %ld", what, op, st);
    cr_assert(type && strstr(type, "ConditionalCheckFailedException"), "%s: %s", what,
              type ? type : "(no type)");
    json_decref(r);
}

/* The new item a write returned. */
static json_t *returned(const char *op, json_t *body)
{
    long st = 0;
    json_t *r = send_req(op, body, &st), *item;

    cr_assert_eq(st, 200, "%s answered %ld", op, st);
    item = json_incref(json_object_get(r, "Attributes"));
    cr_assert_not_null(item, "%s returned the new item", op);
    json_decref(r);
    return item;
}

static json_t *get_item(const char *table, const char *key)
{
    json_t *r = ddbc_callj("GetItem", json_pack("{s:s,s:{s:{s:s}},s:b}", "TableName", table, "Key",
                                                LEASETAB_KEY, "S", key, "ConsistentRead", 1));
    json_t *item = json_incref(json_object_get(r, "Item"));

    json_decref(r);
    return item;
}

static void parse(const json_t *item, struct leasetab_lease *l)
{
    char err[256];

    cr_assert_eq(leasetab_kind(item), LEASETAB_LEASE);
    cr_assert_eq(leasetab_lease_parse(item, l, err, sizeof(err)), 0, "%s", err);
}

static void make_table(char *name, size_t len)
{
    ddbc_table_name(name, len, "leases");
    json_decref(ddbc_callj("CreateTable", leasetab_req_create_table(name)));
}

static struct ckpt_shard shard(const char *id, const char *parent)
{
    return (struct ckpt_shard){ .id = id, .parent = parent, .arn = ARN, .table = "posts",
                                .updated = T0 };
}

Test(leasetab, every_write_holds_only_under_its_condition)
{
    char table[128];
    char *key = leasetab_lease_key(ARN, SH_A);
    struct ckpt_shard sh = shard(SH_A, NULL);
    struct leasetab_lease l;
    json_t *item;

    need_ddb();
    make_table(table, sizeof(table));

    /* create: once */
    ok("PutItem", leasetab_req_create(table, &sh, T0));
    refused("PutItem", leasetab_req_create(table, &sh, T0), "a second create");
    item = get_item(table, key);
    parse(item, &l);
    cr_assert(!l.owner && !l.claim && !l.parent && l.counter == 0 && l.epoch == 0 && !l.seq[0] &&
              !l.done && l.updated == T0 && strcmp(l.table, "posts") == 0 &&
              strcmp(l.stream, ARN) == 0 && strcmp(l.shard, SH_A) == 0);
    leasetab_lease_clear(&l);
    json_decref(item);

    /* take: on the counter and epoch read */
    item = returned("UpdateItem", leasetab_req_take(table, key, "a", "run-a", 0, 0, T0 + 1));
    parse(item, &l);
    cr_assert(strcmp(l.owner, "a") == 0 && strcmp(l.owner_run, "run-a") == 0 && l.epoch == 1 &&
              l.counter == 1);
    leasetab_lease_clear(&l);
    json_decref(item);
    refused("UpdateItem", leasetab_req_take(table, key, "b", "run-b", 0, 0, T0 + 1), "a stale take");

    /* renew: the owner's epoch only; a renewal that landed and is sent again
     * (a 500 that was applied, then retried) still holds */
    item = returned("UpdateItem", leasetab_req_renew(table, key, "a", 1, false, T0 + 2));
    parse(item, &l);
    cr_assert_eq(l.counter, 2);
    leasetab_lease_clear(&l);
    json_decref(item);
    ok("UpdateItem", leasetab_req_renew(table, key, "a", 1, false, T0 + 2));
    refused("UpdateItem", leasetab_req_renew(table, key, "a", 0, false, T0 + 2), "an old epoch");
    refused("UpdateItem", leasetab_req_renew(table, key, "b", 1, false, T0 + 2), "not the owner");

    /* checkpoint: the owner's epoch only; absent fields are removed */
    strcpy(sh.seq, "000000000000000000041");
    sh.ver = (struct docver){ 1714521601, 3 };
    sh.skip_before = 1714521000;
    sh.updated = T0 + 3;
    ok("UpdateItem", leasetab_req_checkpoint(table, key, "a", 1, &sh, T0 + 3));
    refused("UpdateItem", leasetab_req_checkpoint(table, key, "b", 1, &sh, T0 + 3), "not the owner");
    item = get_item(table, key);
    parse(item, &l);
    cr_assert(strcmp(l.seq, "000000000000000000041") == 0 && l.ver.second == 1714521601 &&
              l.ver.ordinal == 3 && l.skip_before == 1714521000 && l.counter == 4 &&
              l.updated == T0 + 3 && !l.done);
    leasetab_lease_clear(&l);
    json_decref(item);
    sh.skip_before = 0;
    ok("UpdateItem", leasetab_req_checkpoint(table, key, "a", 1, &sh, T0 + 4));
    item = get_item(table, key);
    cr_assert_null(json_object_get(item, "skip_before"), "a cleared skip_before is removed");
    json_decref(item);

    /* claim: one at a time, on the owner and epoch read */
    ok("UpdateItem", leasetab_req_claim(table, key, "b", "a", 1));
    refused("UpdateItem", leasetab_req_claim(table, key, "c", "a", 1), "a second claim");
    item = returned("UpdateItem", leasetab_req_renew(table, key, "a", 1, false, T0 + 5));
    parse(item, &l);
    cr_assert_str_eq(l.claim, "b", "the owner's renewal shows the claim");
    leasetab_lease_clear(&l);
    json_decref(item);

    /* force: only by the claimer */
    refused("UpdateItem", leasetab_req_force(table, key, "c", "run-c", "a", 1, T0 + 6), "not the claimer");
    item = returned("UpdateItem", leasetab_req_force(table, key, "b", "run-b", "a", 1, T0 + 6));
    parse(item, &l);
    cr_assert(strcmp(l.owner, "b") == 0 && l.epoch == 2 && !l.claim &&
              strcmp(l.seq, "000000000000000000041") == 0, "the checkpoint comes with the take");
    leasetab_lease_clear(&l);
    json_decref(item);
    refused("UpdateItem", leasetab_req_checkpoint(table, key, "a", 1, &sh, T0 + 7),
            "the old owner's checkpoint");
    refused("UpdateItem", leasetab_req_renew(table, key, "a", 1, false, T0 + 7),
            "the old owner's renewal");

    /* release: owner cleared, by the owner only */
    refused("UpdateItem", leasetab_req_release(table, key, "a", 1, T0 + 8), "not the owner");
    ok("UpdateItem", leasetab_req_release(table, key, "b", 2, T0 + 8));
    refused("UpdateItem", leasetab_req_release(table, key, "b", 2, T0 + 8), "released twice");
    item = get_item(table, key);
    parse(item, &l);
    cr_assert_null(l.owner);
    cr_assert_null(l.owner_run, "the owner's process goes with it");
    cr_assert_eq(l.epoch, 2);
    json_decref(item);
    item = returned("UpdateItem",
                    leasetab_req_take(table, key, "a", "run-a2", l.counter, l.epoch, T0 + 9));
    leasetab_lease_clear(&l);
    parse(item, &l);
    cr_assert(strcmp(l.owner, "a") == 0 && l.epoch == 3);
    json_decref(item);

    /* prune: done items only, unchanged since read */
    refused("DeleteItem", leasetab_req_prune(table, key, l.counter), "not done");
    sh.done = true;
    ok("UpdateItem", leasetab_req_checkpoint(table, key, "a", 3, &sh, T0 + 10));
    refused("DeleteItem", leasetab_req_prune(table, key, l.counter), "changed since read");
    ok("DeleteItem", leasetab_req_prune(table, key, l.counter + 1));
    cr_assert_null(get_item(table, key));
    leasetab_lease_clear(&l);
    free(key);
}

Test(leasetab, heartbeats_belong_to_one_process)
{
    char table[128], err[256];
    char *key = leasetab_worker_key("w1");
    struct leasetab_worker w;
    json_t *item;

    need_ddb();
    make_table(table, sizeof(table));
    ok("UpdateItem", leasetab_req_heartbeat(table, "w1", "run1", 10000, 0, true, T0));
    ok("UpdateItem", leasetab_req_heartbeat(table, "w1", "run1", 10000, 3, false, T0 + 3));
    item = get_item(table, key);
    cr_assert_eq(leasetab_kind(item), LEASETAB_WORKER);
    cr_assert_eq(leasetab_worker_parse(item, &w, err, sizeof(err)), 0, "%s", err);
    cr_assert(w.beat == 2 && w.leases == 3 && w.duration_ms == 10000 && w.started == T0 &&
              w.updated == T0 + 3 && strcmp(w.worker, "w1") == 0 && strcmp(w.run, "run1") == 0);
    leasetab_worker_clear(&w);
    json_decref(item);
    /* A second process with the same id takes it over; the first one's next
     * heartbeat fails its condition. */
    refused("UpdateItem", leasetab_req_heartbeat(table, "w1", "run2", 10000, 0, false, T0 + 4),
            "another run's heartbeat");
    ok("UpdateItem", leasetab_req_heartbeat(table, "w1", "run2", 10000, 0, true, T0 + 4));
    refused("UpdateItem", leasetab_req_heartbeat(table, "w1", "run1", 10000, 3, false, T0 + 6),
            "the first process after the take-over");
    refused("DeleteItem", leasetab_req_worker_delete(table, "w1", "run1", 0), "not its run");
    refused("DeleteItem", leasetab_req_worker_delete(table, "w1", NULL, 2), "a beat seen before");
    ok("DeleteItem", leasetab_req_worker_delete(table, "w1", NULL, 3));
    cr_assert_null(get_item(table, key));
    /* Deleted by others after a long silence: the process writes it again. */
    ok("UpdateItem", leasetab_req_heartbeat(table, "w1", "run2", 10000, 0, false, T0 + 9));
    item = get_item(table, key);
    cr_assert_eq(leasetab_worker_parse(item, &w, err, sizeof(err)), 0, "%s", err);
    cr_assert(w.beat == 1 && w.started == T0 + 9 && strcmp(w.run, "run2") == 0);
    leasetab_worker_clear(&w);
    json_decref(item);
    free(key);
}

Test(leasetab, items_that_are_not_ours_are_refused_by_name)
{
    static const struct {
        const char *item, *why;
    } cases[] = {
        { "{\"key\":{\"S\":\"k\"},\"shard\":{\"S\":\"s\"}}", "stream: missing" },
        { "{\"key\":{\"S\":\"k\"},\"stream\":{\"S\":\"a\"},\"shard\":{\"S\":\"s\"},"
          "\"table\":{\"S\":\"t\"},\"counter\":{\"N\":\"-1\"},\"epoch\":{\"N\":\"0\"}}",
          "counter and epoch" },
        { "{\"key\":{\"S\":\"k\"},\"stream\":{\"S\":\"a\"},\"shard\":{\"S\":\"s\"},"
          "\"table\":{\"S\":\"t\"},\"counter\":{\"N\":\"0\"},\"epoch\":{\"N\":\"0\"},"
          "\"seq\":{\"S\":\"12\"}}",
          "seq: not a sequence number" },
        { "{\"key\":{\"S\":\"k\"},\"stream\":{\"S\":\"a\"},\"shard\":{\"S\":\"s\"},"
          "\"table\":{\"S\":\"t\"},\"counter\":{\"N\":\"0\"},\"epoch\":{\"N\":\"0\"},"
          "\"ver_s\":{\"N\":\"0\"},\"ver_n\":{\"N\":\"1048576\"}}",
          "ver_s, ver_n" },
        { "{\"key\":{\"S\":\"k\"},\"stream\":{\"S\":\"a\"},\"shard\":{\"S\":\"s\"},"
          "\"table\":{\"S\":\"t\"},\"counter\":{\"N\":\"0\"},\"epoch\":{\"N\":\"0\"},"
          "\"ver_s\":{\"N\":\"0\"},\"ver_n\":{\"N\":\"0\"},\"done\":{\"S\":\"no\"}}",
          "done: missing" },
        { "{\"key\":{\"S\":\"k\"},\"stream\":{\"S\":\"a\"},\"shard\":{\"S\":\"s\"},"
          "\"table\":{\"S\":\"t\"},\"counter\":{\"N\":\"0\"},\"epoch\":{\"N\":\"0\"},"
          "\"ver_s\":{\"N\":\"0\"},\"ver_n\":{\"N\":\"0\"},\"done\":{\"BOOL\":false},"
          "\"updated\":{\"S\":\"yesterday\"}}",
          "updated: missing" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        json_t *item = json_loads(cases[i].item, 0, NULL);
        struct leasetab_lease l;
        char err[256];

        cr_assert_not_null(item);
        cr_assert_eq(leasetab_lease_parse(item, &l, err, sizeof(err)), -EBADMSG, "case %zu", i);
        cr_assert(strncmp(err, "item \"k\": ", 10) == 0 && strstr(err, cases[i].why), "case %zu: %s",
                  i, err);
        json_decref(item);
    }
}

/* ---- jobs, on the project's own client ---------------------------------- */

struct ensured {
    bool done;
    int status;
    char why[512];
};

static void on_ensured(int status, const char *why, void *arg)
{
    struct ensured *e = arg;

    e->done = true;
    e->status = status;
    snprintf(e->why, sizeof(e->why), "%s", why);
}

static bool ensured(void *arg)
{
    return ((struct ensured *)arg)->done;
}

static int ensure(struct awsloop *a, const char *table, bool create, char *why, size_t len)
{
    struct ensured e = { 0 };

    cr_assert_not_null(leasetab_ensure(&a->loop, a->aws, table, create, 50, 10000, on_ensured, &e));
    cr_assert(loop_run_until(&a->loop, ensured, &e, 20000));
    snprintf(why, len, "%s", e.why);
    return e.status;
}

Test(leasetab, ensure_creates_a_missing_table_on_demand_and_checks_the_schema)
{
    struct awsloop a;
    char table[128], other[128], why[512];
    json_t *d;

    need_ddb();
    awsloop_open(&a, ddbc_endpoint());
    ddbc_table_name(table, sizeof(table), "lt");
    cr_assert_eq(ensure(&a, table, false, why, sizeof(why)), -ENOENT);
    cr_assert(strstr(why, "does not exist and [leases] create_table is false"), "%s", why);
    cr_assert_eq(ensure(&a, table, true, why, sizeof(why)), 0, "%s", why);
    d = ddbc_callj("DescribeTable", json_pack("{s:s}", "TableName", table));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(d, "Table"), "BillingModeSummary"),
                         "BillingMode")),
                     "PAY_PER_REQUEST");
    json_decref(d);
    cr_assert_eq(ensure(&a, table, false, why, sizeof(why)), 0, "an existing table is taken");

    ddbc_table_name(other, sizeof(other), "lt");
    ddbc_create_table(other, "pk", "S", NULL, NULL, "KEYS_ONLY");
    cr_assert_eq(ensure(&a, other, true, why, sizeof(why)), -EINVAL);
    cr_assert(strstr(why, "key schema is not this one"), "%s", why);
    awsloop_close(&a);
}

struct scanned {
    bool done;
    int status;
    size_t n;
};

static void on_scanned(int status, const json_t *items, const char *why, void *arg)
{
    struct scanned *s = arg;

    s->done = true;
    s->status = status;
    s->n = json_array_size(items);
}

static bool scanned(void *arg)
{
    return ((struct scanned *)arg)->done;
}

Test(leasetab, a_read_follows_every_page)
{
    struct awsloop a;
    struct scanned s = { 0 };
    char table[128], id[64], pad[8001];

    need_ddb();
    make_table(table, sizeof(table));
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    /* 150 items of 8 kB: more than the 1 MB a Scan page holds. */
    for (int i = 0; i < 150; i++) {
        struct ckpt_shard sh = shard(id, NULL);
        json_t *body;

        snprintf(id, sizeof(id), "shardId-00000001714521600000-%08d", i);
        body = leasetab_req_create(table, &sh, T0);
        json_object_set_new(json_object_get(body, "Item"), "pad", json_pack("{s:s}", "S", pad));
        ok("PutItem", body);
    }
    awsloop_open(&a, ddbc_endpoint());
    cr_assert_not_null(leasetab_scan(a.aws, table, on_scanned, &s));
    cr_assert(loop_run_until(&a.loop, scanned, &s, 30000));
    cr_assert_eq(s.status, 0);
    cr_assert_eq(s.n, 150);
    memset(&s, 0, sizeof(s));
    cr_assert_not_null(leasetab_scan(a.aws, "no-such-lease-table", on_scanned, &s));
    cr_assert(loop_run_until(&a.loop, scanned, &s, 30000));
    cr_assert_eq(s.status, -ENOENT);
    awsloop_close(&a);
}
