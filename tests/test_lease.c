/* The lease coordinator (daemon/lease.c and lease_write.c) on DynamoDB
 * Local: start, take, renew, hand over on request, release, take over a
 * dead worker, survive throttling shorter than the lease, give the leases
 * up (and say why) past it, refuse a duplicate worker id; seeding from a
 * checkpoint file.  Several workers share one test loop; each has its own
 * worker id, as separate processes would. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ckpt.h"
#include "daemon/lease.h"
#include "daemon/leasetab.h"
#include "tests/support/ddbclient.h"
#include "tests/support/ddbproxy.h"
#include "tests/support/leasefleet.h"
#include "tests/support/loop.h"

#define ARN "arn:aws:dynamodb:ddblocal:000000000000:table/posts/stream/2024-05-01T00:00:00.000"
#define D 2000 /* lease_duration in these tests: renewals every 667 ms, reads every 667 ms */

TestSuite(lease, .timeout = 90);

static void put_shards(struct fleet *f, int n)
{
    char id[64];

    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "shardId-00000001714521600000-%08d", i);
        fleet_put_lease(f, ARN, id, NULL);
    }
}

static json_t *item(struct fleet *f, int i)
{
    char id[64], *key;
    json_t *r, *it;

    snprintf(id, sizeof(id), "shardId-00000001714521600000-%08d", i);
    key = leasetab_lease_key(ARN, id);
    r = ddbc_callj("GetItem", json_pack("{s:s,s:{s:{s:s}},s:b}", "TableName", f->table, "Key",
                                        LEASETAB_KEY, "S", key, "ConsistentRead", 1));
    it = json_incref(json_object_get(r, "Item"));
    json_decref(r);
    free(key);
    return it;
}

static const char *owner_of(const json_t *it)
{
    return json_string_value(json_object_get(json_object_get(it, "owner"), "S"));
}

static size_t owned_in_table(struct fleet *f, int n, const char *who)
{
    size_t k = 0;

    for (int i = 0; i < n; i++) {
        json_t *it = item(f, i);
        const char *o = owner_of(it);

        k += who ? o && strcmp(o, who) == 0 : o == NULL;
        json_decref(it);
    }
    return k;
}

struct held_want {
    struct lease *l;
    size_t n;
};

static bool holds_n(struct fleet *f, void *arg)
{
    struct held_want *w = arg;

    return lease_metrics(w->l)->held == w->n;
}

static bool holds(struct fleet *f, struct lease *l, size_t n, long ms)
{
    return fleet_until(f, holds_n, &(struct held_want){ l, n }, ms);
}

Test(lease, a_lone_worker_creates_the_table_and_takes_every_lease)
{
    struct fleet f;
    struct lease *a;
    json_t *d;

    fleet_open(&f, NULL);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(fleet_start(&f, a), 0, "%s", f.log[0].ready_why);
    d = ddbc_callj("DescribeTable", json_pack("{s:s}", "TableName", f.table));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(d, "Table"), "BillingModeSummary"),
                         "BillingMode")),
                     "PAY_PER_REQUEST");
    json_decref(d);
    cr_assert_eq(lease_state(a, NULL), LEASE_OK);
    put_shards(&f, 3);
    cr_assert(holds(&f, a, 3, 10000), "held %llu", (unsigned long long)lease_metrics(a)->held);
    cr_assert_eq(f.log[0].gained, 3);
    cr_assert_eq(owned_in_table(&f, 3, "w-a"), 3);
    cr_assert(lease_holds(a, ARN, "shardId-00000001714521600000-00000001"));
    cr_assert_eq(lease_held_for_table(a, "posts"), 3);
    cr_assert_eq(lease_held_for_table(a, "users"), 0);
    cr_assert_eq(lease_metrics(a)->taken, 3);
    cr_assert_eq(lease_metrics(a)->workers, 1);
    /* Renewals go on: the counters move. */
    {
        json_t *before = item(&f, 0), *after;

        fleet_run(&f, D);
        after = item(&f, 0);
        cr_assert_gt(atoll(json_string_value(json_object_get(json_object_get(after, "counter"), "N"))),
                     atoll(json_string_value(json_object_get(json_object_get(before, "counter"), "N"))) + 1);
        json_decref(before);
        json_decref(after);
    }
    cr_assert_eq(f.log[0].lost, 0);
    fleet_close(&f);
}

Test(lease, a_missing_table_is_refused_when_it_may_not_be_created)
{
    struct fleet f;
    struct lease *a;

    fleet_open(&f, NULL);
    a = fleet_worker(&f, "w-a", D, false);
    cr_assert_eq(fleet_start(&f, a), 78);
    cr_assert(strstr(f.log[0].ready_why, "does not exist and [leases] create_table is false"), "%s",
              f.log[0].ready_why);
    fleet_close(&f);
}

static bool two_and_two(struct fleet *f, void *arg)
{
    return lease_metrics(f->l[0])->held == 2 && lease_metrics(f->l[1])->held == 2;
}

static bool b_holds_all(struct fleet *f, void *arg)
{
    return lease_metrics(f->l[1])->held == 4;
}

Test(lease, a_second_worker_is_handed_its_share_then_everything_at_the_first_ones_stop)
{
    struct fleet f;
    struct lease *a, *b;
    uint64_t t0;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    put_shards(&f, 4);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 4, 10000));
    b = fleet_worker(&f, "w-b", D, true);
    cr_assert_eq(fleet_start(&f, b), 0);
    cr_assert(fleet_until(&f, two_and_two, NULL, 20000), "a %llu b %llu",
              (unsigned long long)lease_metrics(a)->held, (unsigned long long)lease_metrics(b)->held);
    cr_assert_eq(f.log[0].yields, 2, "a was asked twice and gave back twice");
    cr_assert_eq(f.log[0].lost, 0, "nothing was taken from a: it gave them back");
    cr_assert_eq(lease_metrics(b)->stolen, 2);
    cr_assert_eq(lease_metrics(a)->yielded, 2);
    cr_assert_eq(owned_in_table(&f, 4, "w-a"), 2);
    cr_assert_eq(lease_metrics(a)->workers, 2);
    fleet_run(&f, 2 * D);
    cr_assert(two_and_two(&f, NULL), "and it stays so");

    /* SIGTERM of a: released, b takes them at its next read. */
    t0 = uv_now(&f.a.loop);
    lease_release_all(a, NULL, NULL);
    cr_assert(fleet_until(&f, b_holds_all, NULL, 10000));
    cr_log_info("take-over after a release: %llu ms (d = %d ms)",
                (unsigned long long)(uv_now(&f.a.loop) - t0), D);
    /* Released, not expired: within a read or two, not after the duration
     * since a's last renewal (the loop may be slow on a loaded machine). */
    cr_assert_lt(uv_now(&f.a.loop) - t0, 3000, "taken over in %llu ms",
                 (unsigned long long)(uv_now(&f.a.loop) - t0));
    cr_assert_eq(owned_in_table(&f, 4, "w-b"), 4);
    cr_assert_eq(lease_metrics(a)->released, 4, "2 given back, 2 at the stop");
    cr_assert_eq(lease_state(a, NULL), LEASE_STOPPED);
    cr_assert_eq(f.log[1].lost, 0);
    fleet_close(&f);
}

Test(lease, a_dead_workers_leases_are_taken_after_the_duration)
{
    struct fleet f;
    struct lease *a, *b;
    uint64_t killed, took;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    put_shards(&f, 2);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 2, 10000));
    b = fleet_worker(&f, "w-b", D, true);
    f.log[0].give_back = false; /* a is stuck: b's claim is forced after the duration */
    cr_assert_eq(fleet_start(&f, b), 0);
    cr_assert(holds(&f, b, 1, 20000));
    cr_assert(holds(&f, a, 1, 2000), "the forced lease is lost to a at its next renewal or read");
    cr_assert_eq(f.log[0].lost, 1);
    cr_assert_eq(f.log[0].yields, 1, "a was asked first");
    cr_assert(strstr(f.log[0].last_lost_why, "another owner") ||
                  strstr(f.log[0].last_lost_why, "owner is w-b"),
              "%s", f.log[0].last_lost_why);

    /* SIGKILL of a: no renewal, no release. */
    fleet_kill(&f, a);
    killed = uv_now(&f.a.loop);
    cr_assert(holds(&f, b, 2, 20000));
    took = f.log[1].last_gained_ms;
    cr_log_info("take-over after a kill: %llu ms (d = %d ms)", (unsigned long long)(took - killed),
                D);
    cr_assert_geq(took - killed, D - D / 3, "not taken before its counter stood still for the "
                                            "duration (%llu ms)", (unsigned long long)(took - killed));
    cr_assert_leq(took - killed, D + 2 * 667 + 1500, "taken within d + 2 reads: %llu ms",
                  (unsigned long long)(took - killed));
    fleet_close(&f);
}

Test(lease, a_lease_taken_by_another_is_lost_at_the_next_renewal)
{
    struct fleet f;
    struct lease *a;
    json_t *it;
    char *key = leasetab_lease_key(ARN, "shardId-00000001714521600000-00000000");
    long st = 0;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    put_shards(&f, 1);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 1, 10000));
    it = item(&f, 0);
    /* Another worker takes it behind a's back (as after a long pause). */
    {
        char body[2048];

        snprintf(body, sizeof(body),
                 "{\"TableName\":\"%s\",\"Key\":{\"key\":{\"S\":\"%s\"}},"
                 "\"UpdateExpression\":\"SET #o = :x, #e = #e + :one\","
                 "\"ExpressionAttributeNames\":{\"#o\":\"owner\",\"#e\":\"epoch\"},"
                 "\"ExpressionAttributeValues\":{\":x\":{\"S\":\"w-x\"},"
                 "\":one\":{\"N\":\"1\"}}}",
                 f.table, key);
        json_decref(ddbc_call("UpdateItem", body, &st));
        cr_assert_eq(st, 200);
    }
    cr_assert(holds(&f, a, 0, 5000));
    cr_assert_eq(f.log[0].lost, 1);
    cr_assert(strstr(f.log[0].last_lost_why, "another owner") ||
                  strstr(f.log[0].last_lost_why, "w-x"),
              "%s", f.log[0].last_lost_why);
    cr_assert_eq(lease_metrics(a)->lost, 1);
    json_decref(it);
    free(key);
    fleet_close(&f);
}

/* DynamoDB's answer to a throttled request: HTTP 400 with this type ("Error
 * handling with DynamoDB", the DynamoDB Developer Guide). */
#define THROTTLED "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" \
                  "ProvisionedThroughputExceededException\",\"message\":\"The level of configured " \
                  "provisioned throughput for the table was exceeded.\"}"

Test(lease, throttling_shorter_than_the_lease_loses_nothing)
{
    struct fleet f;
    struct ddbproxy *p;
    struct lease *a;
    json_t *before, *after;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    p = ddbproxy_start(ddbc_endpoint());
    fleet_open(&f, ddbproxy_url(p));
    fleet_create_table(&f);
    put_shards(&f, 2);
    /* d = 6 s: renewals every 2 s, the deadline 5.4 s after the last one. */
    a = fleet_worker(&f, "w-a", 6000, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 2, 10000));
    fleet_run(&f, 2100);
    ddbproxy_refuse(p, 400, THROTTLED);
    fleet_run(&f, 1500);
    ddbproxy_refuse(p, 0, NULL);
    cr_assert_gt(ddbproxy_refused(p), 0);
    before = item(&f, 0);
    fleet_run(&f, 4500);
    after = item(&f, 0);
    cr_assert_eq(f.log[0].lost, 0, "lost: %s", f.log[0].last_lost_why);
    cr_assert_eq(lease_metrics(a)->held, 2);
    cr_assert_eq(lease_state(a, NULL), LEASE_OK);
    cr_assert_neq(strcmp(json_string_value(json_object_get(json_object_get(after, "counter"), "N")),
                         json_string_value(json_object_get(json_object_get(before, "counter"), "N"))),
                  0, "the renewals went on after the throttling");
    json_decref(before);
    json_decref(after);
    fleet_close(&f);
    ddbproxy_stop(p);
}

static bool a_ok_again(struct fleet *f, void *arg)
{
    return lease_state(f->l[0], NULL) == LEASE_OK && lease_metrics(f->l[0])->held == 2;
}

Test(lease, an_outage_longer_than_the_lease_gives_the_leases_up_and_says_why)
{
    struct fleet f;
    struct ddbproxy *p;
    struct lease *a;
    const char *why;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    p = ddbproxy_start(ddbc_endpoint());
    fleet_open(&f, ddbproxy_url(p));
    fleet_create_table(&f);
    put_shards(&f, 2);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 2, 10000));
    ddbproxy_refuse(p, 500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}");
    cr_assert(holds(&f, a, 0, 3 * D), "given up by the deadline");
    cr_assert_eq(f.log[0].lost, 2);
    cr_assert(strstr(f.log[0].last_lost_why, "not renewed for"), "%s", f.log[0].last_lost_why);
    cr_assert_eq(lease_state(a, &why), LEASE_STALE);
    cr_assert(strstr(why, "no write to the lease table succeeded"), "%s", why);
    cr_assert_gt(lease_metrics(a)->renew_failed, 0);
    /* The table answers again: the same worker takes its leases back. */
    ddbproxy_refuse(p, 0, NULL);
    cr_assert(fleet_until(&f, a_ok_again, NULL, 4 * D), "state %d, held %llu", lease_state(a, NULL),
              (unsigned long long)lease_metrics(a)->held);
    cr_assert_eq(f.log[0].gained, 4);
    fleet_close(&f);
    ddbproxy_stop(p);
}

Test(lease, a_second_process_with_the_same_worker_id_stops_the_first)
{
    struct fleet f;
    struct lease *a, *a2;
    const char *why;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    put_shards(&f, 2);
    a = fleet_worker(&f, "w-same", D, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 2, 10000));
    a2 = fleet_worker(&f, "w-same", D, true);
    cr_assert_eq(fleet_start(&f, a2), 0);
    cr_assert(holds(&f, a2, 2, 10000), "the newer process takes what its id held");
    fleet_run(&f, D);
    cr_assert_eq(lease_state(a, &why), LEASE_FATAL);
    cr_assert(strstr(why, "another process runs with worker_id w-same"), "%s", why);
    cr_assert_eq(lease_metrics(a)->held, 0);
    cr_assert_eq(lease_metrics(a2)->held, 2, "and keeps it: no tug of war");
    fleet_close(&f);
}

static void on_seeded(int status, size_t created, size_t existed, void *arg)
{
    size_t *r = arg;

    r[0] = 1;
    r[1] = (size_t)(status == 0);
    r[2] = created;
    r[3] = existed;
}

static bool seeded(void *arg)
{
    return ((size_t *)arg)[0] != 0;
}

Test(lease, seeding_creates_only_the_items_that_do_not_exist)
{
    struct fleet f;
    struct lease *a;
    struct ckpt *file;
    char dir[] = "/tmp/ddb2es-seed-XXXXXX";
    struct ckpt_shard *s0, *s1, *s2;
    size_t r[4] = { 0 };
    json_t *it;

    cr_assert_not_null(mkdtemp(dir));
    fleet_open(&f, NULL);
    fleet_create_table(&f);
    put_shards(&f, 1); /* shard 0 is in the table already, with no checkpoint */
    file = ckpt_new(dir);
    s0 = ckpt_shard_add(file, "posts", ARN, "shardId-00000001714521600000-00000000", NULL, 100);
    s1 = ckpt_shard_add(file, "posts", ARN, "shardId-00000001714521600000-00000001", NULL, 100);
    s2 = ckpt_shard_add(file, "posts", ARN, "shardId-00000001714521600000-00000002",
                        "shardId-00000001714521600000-00000001", 100);
    ckpt_shard_advance(file, s0, "000000000000000000900", &(struct docver){ 90, 9 }, 101);
    ckpt_shard_advance(file, s1, "000000000000000000500", &(struct docver){ 50, 5 }, 101);
    ckpt_shard_finish(file, s1, 102);
    ckpt_shard_resume_version(file, s2);
    a = fleet_worker(&f, "w-a", D, true);
    cr_assert_eq(lease_seed(a, file, on_seeded, r), 0);
    cr_assert(loop_run_until(&f.a.loop, seeded, r, 10000));
    cr_assert(r[1] && r[2] == 2 && r[3] == 1, "ok %zu created %zu existed %zu", r[1], r[2], r[3]);
    it = item(&f, 0);
    cr_assert_null(json_object_get(it, "seq"), "the table's position stands");
    json_decref(it);
    it = item(&f, 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(it, "seq"), "S")),
                     "000000000000000000500");
    cr_assert(json_is_true(json_object_get(json_object_get(it, "done"), "BOOL")));
    json_decref(it);
    it = item(&f, 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(it, "ver_n"), "N")), "5",
                     "the child's inherited version state is seeded");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(it, "parent"), "S")),
                     "shardId-00000001714521600000-00000001");
    json_decref(it);
    memset(r, 0, sizeof(r));
    cr_assert_eq(lease_seed(a, file, on_seeded, r), 0);
    cr_assert(loop_run_until(&f.a.loop, seeded, r, 10000));
    cr_assert(r[1] && r[2] == 0 && r[3] == 3, "a second seeding changes nothing");
    ckpt_free(file);
    rmdir(dir);
    fleet_close(&f);
}

static void on_saved(struct ckpt *ck, int status, void *arg)
{
    *(int *)arg = status == 0 ? 1 : -1;
}

static bool saved(void *arg)
{
    return *(int *)arg != 0;
}

static bool child_taken(struct fleet *f, void *arg)
{
    return lease_holds(f->l[0], ARN, "shardId-00000001714521600000-00000001") &&
           !lease_holds(f->l[0], ARN, "shardId-00000001714521600000-00000000");
}

Test(lease, a_done_parent_is_released_and_its_child_taken)
{
    struct fleet f;
    struct lease *a;
    struct ckpt *ck;
    struct ckpt_shard *p, *c;
    struct docver v;
    int ok = 0;
    json_t *it;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    fleet_put_lease(&f, ARN, "shardId-00000001714521600000-00000000", NULL);
    fleet_put_lease(&f, ARN, "shardId-00000001714521600000-00000001",
                    "shardId-00000001714521600000-00000000");
    a = fleet_worker(&f, "w-a", D, true);
    ck = ckpt_lease_new(a);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(holds(&f, a, 1, 10000));
    fleet_run(&f, D);
    cr_assert_eq(lease_metrics(a)->held, 1, "the child waits for its parent");
    p = ckpt_shard_get(ck, ARN, "shardId-00000001714521600000-00000000");
    cr_assert(lease_holds(a, p->arn, p->id));
    cr_assert_eq(ckpt_shard_advance(ck, p, "000000000000000000700", &(struct docver){ 70, 7 }, 1000),
                 0);
    ckpt_shard_finish(ck, p, 1001);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &ok), 0);
    cr_assert(loop_run_until(&f.a.loop, saved, &ok, 10000));
    cr_assert_eq(ok, 1);
    cr_assert(fleet_until(&f, child_taken, NULL, 10000));
    it = item(&f, 0);
    cr_assert_null(owner_of(it), "the done parent was released");
    json_decref(it);
    c = ckpt_shard_get(ck, ARN, "shardId-00000001714521600000-00000001");
    v = ckpt_shard_resume_version(ck, c);
    cr_assert(v.second == 70 && v.ordinal == 7, "the child continues its parent's ordinal");
    cr_assert_eq(lease_metrics(a)->released, 1);
    ckpt_free(ck);
    fleet_close(&f);
}

static bool worker_item_gone(struct fleet *f, void *arg)
{
    json_t *r = ddbc_callj("GetItem", json_pack("{s:s,s:{s:{s:s}},s:b}", "TableName", f->table,
                                                "Key", LEASETAB_KEY, "S", "worker|w-gone",
                                                "ConsistentRead", 1));
    bool gone = !json_object_get(r, "Item");

    json_decref(r);
    return gone;
}

Test(lease, a_dead_workers_heartbeat_is_forgotten_after_ten_durations)
{
    struct fleet f;
    struct lease *a, *b;
    uint64_t killed;

    fleet_open(&f, NULL);
    a = fleet_worker(&f, "w-stays", 800, true);
    cr_assert_eq(fleet_start(&f, a), 0);
    b = fleet_worker(&f, "w-gone", 800, true);
    cr_assert_eq(fleet_start(&f, b), 0);
    fleet_run(&f, 800);
    cr_assert_eq(lease_metrics(a)->workers, 2);
    cr_assert_not(worker_item_gone(&f, NULL));
    fleet_kill(&f, b);
    killed = uv_now(&f.a.loop);
    cr_assert(fleet_until(&f, worker_item_gone, NULL, 20000));
    cr_assert_geq(uv_now(&f.a.loop) - killed, 8000 - 800, "%llu ms",
                  (unsigned long long)(uv_now(&f.a.loop) - killed));
    cr_assert_eq(lease_metrics(a)->workers, 1, "no longer counted alive");
    fleet_close(&f);
}
