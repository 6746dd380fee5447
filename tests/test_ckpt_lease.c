/* The checkpoint store on the lease table (daemon/ckpt_lease.c): the rules
 * every backend gets (tests/support/ckptrules.c) on DynamoDB Local; a save
 * writes what this worker holds under its tenure, and a lease lost on the
 * way is not written and does not fail it; saves coalesce; new items go
 * parents first; a load refuses what it did not save. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/jsonx.h"
#include "daemon/ckpt.h"
#include "daemon/lease.h"
#include "daemon/leasetab.h"
#include "tests/support/ckptrules.h"
#include "tests/support/ddbclient.h"
#include "tests/support/fakehttp.h"
#include "tests/support/leasefleet.h"
#include "tests/support/loop.h"

#define ARN "arn:aws:dynamodb:ddblocal:000000000000:table/posts/stream/2024-05-01T00:00:00.000"
#define SH(i) "shardId-00000001714521600000-0000000" #i
#define D 2000

TestSuite(ckpt_lease, .timeout = 60);

/* ---- the shared rules ----------------------------------------------------- */

static struct ckpt *lease_make(void *ctx)
{
    struct fleet *f = ctx;
    char id[32];

    snprintf(id, sizeof(id), "w-rules-%zu", f->n);
    return ckpt_lease_new(fleet_worker(f, id, D, true));
}

Test(ckpt_lease, the_lease_table_gets_the_same_rules_through_the_public_calls)
{
    struct fleet f;
    char path[300];

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    snprintf(path, sizeof(path), "lease table %s", f.table);
    ckpt_rules_check(&(struct ckpt_backend){ .make = lease_make, .path = path, .loop = &f.a.loop,
                                             .ctx = &f });
    fleet_close(&f);
}

/* ---- saves under the tenure ----------------------------------------------------- */

struct saved {
    int calls;
    int status[8];
    bool busy[8];
};

static void on_saved(struct ckpt *ck, int status, void *arg)
{
    struct saved *s = arg;

    cr_assert_lt(s->calls, 8);
    s->status[s->calls] = status;
    s->busy[s->calls] = ckpt_busy(ck);
    s->calls++;
}

struct want_saves {
    struct saved *s;
    int n;
};

static bool saves_done(void *arg)
{
    struct want_saves *w = arg;

    return w->s->calls >= w->n;
}

static json_t *get_item(struct fleet *f, const char *id)
{
    char *key = leasetab_lease_key(ARN, id);
    json_t *r = ddbc_callj("GetItem", json_pack("{s:s,s:{s:{s:s}},s:b}", "TableName", f->table,
                                                "Key", LEASETAB_KEY, "S", key, "ConsistentRead", 1));
    json_t *it = json_incref(json_object_get(r, "Item"));

    json_decref(r);
    free(key);
    return it;
}

static const char *seq_of(const json_t *it)
{
    return json_string_value(json_object_get(json_object_get(it, "seq"), "S"));
}

static bool holds_two(struct fleet *f, void *arg)
{
    return lease_metrics(f->l[0])->held == 2;
}

Test(ckpt_lease, a_save_writes_held_entries_and_skips_one_lost_on_the_way)
{
    struct fleet f;
    struct lease *a;
    struct ckpt *ck;
    struct ckpt_shard *s0, *s1;
    struct saved s = { 0 };
    json_t *it;
    long st = 0;
    char body[1024], *key;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    fleet_put_lease(&f, ARN, SH(0), NULL);
    fleet_put_lease(&f, ARN, SH(1), NULL);
    a = fleet_worker(&f, "w-a", D, true);
    ck = ckpt_lease_new(a);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(fleet_until(&f, holds_two, NULL, 10000));
    s0 = ckpt_shard_get(ck, ARN, SH(0));
    s1 = ckpt_shard_get(ck, ARN, SH(1));
    cr_assert(s0 && s1);
    cr_assert_eq(ckpt_shard_advance(ck, s0, "000000000000000000100", &(struct docver){ 10, 1 }, 1000),
                 0);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    cr_assert(loop_run_until(&f.a.loop, saves_done, &(struct want_saves){ &s, 1 }, 10000));
    cr_assert_eq(s.status[0], 0);
    it = get_item(&f, SH(0));
    cr_assert_str_eq(seq_of(it), "000000000000000000100");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(it, "ver_n"), "N")), "1");
    json_decref(it);

    /* Shard 1 is taken by another worker behind a's back. */
    key = leasetab_lease_key(ARN, SH(1));
    snprintf(body, sizeof(body),
             "{\"TableName\":\"%s\",\"Key\":{\"key\":{\"S\":\"%s\"}},"
             "\"UpdateExpression\":\"SET #o = :x, #e = #e + :one\","
             "\"ExpressionAttributeNames\":{\"#o\":\"owner\",\"#e\":\"epoch\"},"
             "\"ExpressionAttributeValues\":{\":x\":{\"S\":\"w-x\"},\":one\":{\"N\":\"1\"}}}",
             f.table, key);
    free(key);
    json_decref(ddbc_call("UpdateItem", body, &st));
    cr_assert_eq(st, 200);
    cr_assert_eq(ckpt_shard_advance(ck, s0, "000000000000000000200", &(struct docver){ 20, 2 }, 1001),
                 0);
    cr_assert_eq(ckpt_shard_advance(ck, s1, "000000000000000000300", &(struct docver){ 30, 3 }, 1001),
                 0);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    cr_assert(loop_run_until(&f.a.loop, saves_done, &(struct want_saves){ &s, 2 }, 10000));
    /* Either the save found it lost (its write failed its condition), or a
     * read did first (then it was not even tried). */
    cr_assert_eq(s.status[1], 0, "a lost lease does not fail the save");
    fleet_run(&f, 100);
    cr_assert_eq(f.log[0].lost, 1);
    cr_assert_not(lease_holds(a, ARN, SH(1)));
    it = get_item(&f, SH(1));
    cr_assert_null(seq_of(it), "the lost lease's checkpoint was not written");
    json_decref(it);
    it = get_item(&f, SH(0));
    cr_assert_str_eq(seq_of(it), "000000000000000000200");
    json_decref(it);
    cr_assert_not(ckpt_dirty(ck));
    ckpt_free(ck);
    fleet_close(&f);
}

static bool holds_one(struct fleet *f, void *arg)
{
    return lease_metrics(f->l[0])->held == 1;
}

Test(ckpt_lease, requests_during_a_save_coalesce_into_one_more_save)
{
    struct fleet f;
    struct lease *a;
    struct ckpt *ck;
    struct ckpt_shard *s0;
    struct saved s = { 0 };
    json_t *it;

    fleet_open(&f, NULL);
    fleet_create_table(&f);
    fleet_put_lease(&f, ARN, SH(0), NULL);
    a = fleet_worker(&f, "w-a", D, true);
    ck = ckpt_lease_new(a);
    cr_assert_eq(fleet_start(&f, a), 0);
    cr_assert(fleet_until(&f, holds_one, NULL, 10000));
    s0 = ckpt_shard_get(ck, ARN, SH(0));
    ckpt_shard_advance(ck, s0, "000000000000000000100", &(struct docver){ 10, 0 }, 1000);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    ckpt_shard_advance(ck, s0, "000000000000000000500", &(struct docver){ 50, 0 }, 1000);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    ckpt_shard_advance(ck, s0, "000000000000000000600", &(struct docver){ 60, 0 }, 1000);
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    cr_assert(ckpt_dirty(ck), "the last change is not taken yet");
    cr_assert_eq(ckpt_save_sync(ck), -EBUSY);
    cr_assert(loop_run_until(&f.a.loop, saves_done, &(struct want_saves){ &s, 3 }, 10000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(s.status[i], 0);
    cr_assert(s.busy[0], "the second save had started when the first reported");
    cr_assert_not(s.busy[1], "requests 2 and 3 shared one save");
    cr_assert_not(s.busy[2]);
    cr_assert_not(ckpt_dirty(ck));
    it = get_item(&f, SH(0));
    cr_assert_str_eq(seq_of(it), "000000000000000000600", "the coalesced save carries the latest");
    json_decref(it);
    /* save_sync writes on a private loop, with its own clients. */
    ckpt_shard_advance(ck, s0, "000000000000000000700", &(struct docver){ 70, 0 }, 1000);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    it = get_item(&f, SH(0));
    cr_assert_str_eq(seq_of(it), "000000000000000000700");
    json_decref(it);
    ckpt_free(ck);
    fleet_close(&f);
}

/* ---- creates: parents first (a fake DynamoDB that records arrivals) ------- */

struct arrivals {
    pthread_mutex_t mu;
    long parent_at, parent_done_at, child_at, other_at;
};

static long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* PutItem answers {} (DynamoDB's reply to a PutItem without ReturnValues,
 * PutItem in the DynamoDB API Reference); the parent's after 300 ms. */
static void put_handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    struct arrivals *a = arg;
    long now = mono_ms();

    pthread_mutex_lock(&a->mu);
    if (strstr(req->body, "\"shard\":{\"S\":\"" SH(1) "\""))
        a->child_at = now;
    else if (strstr(req->body, "\"shard\":{\"S\":\"" SH(0) "\"")) {
        a->parent_at = now;
        a->parent_done_at = now + 300;
        out->delay_ms = 300;
    } else {
        a->other_at = now;
    }
    pthread_mutex_unlock(&a->mu);
    out->status = 200;
    out->body = "{}";
}

Test(ckpt_lease, new_items_are_created_parents_first)
{
    struct arrivals arr = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct fakehttp *fake = fake_start();
    struct fleet f;
    struct lease *a;
    struct ckpt *ck;
    struct saved s = { 0 };

    fake_set_handler(fake, put_handler, &arr);
    fleet_open(&f, fake_url(fake));
    a = fleet_worker(&f, "w-a", D, true);
    ck = ckpt_lease_new(a);
    cr_assert_not_null(ckpt_shard_add(ck, "posts", ARN, SH(1), SH(0), 1000), "the child first");
    cr_assert_not_null(ckpt_shard_add(ck, "posts", ARN, SH(0), NULL, 1000));
    cr_assert_not_null(ckpt_shard_add(ck, "posts", ARN, SH(2), NULL, 1000));
    cr_assert_eq(ckpt_save_async(ck, &f.a.loop, on_saved, &s), 0);
    cr_assert(loop_run_until(&f.a.loop, saves_done, &(struct want_saves){ &s, 1 }, 10000));
    cr_assert_eq(s.status[0], 0);
    pthread_mutex_lock(&arr.mu);
    cr_assert(arr.parent_at && arr.child_at && arr.other_at);
    cr_assert_geq(arr.child_at, arr.parent_done_at - 5, "the child went %ld ms after the parent "
                                                        "was sent, before its answer",
                  arr.child_at - arr.parent_at);
    cr_assert_lt(arr.other_at, arr.parent_done_at, "unrelated items do not wait");
    pthread_mutex_unlock(&arr.mu);
    ckpt_free(ck);
    fleet_close(&f);
    fake_stop(fake);
}

/* ---- load ------------------------------------------------------------------ */

Test(ckpt_lease, a_load_refuses_an_item_it_did_not_write_and_finds_a_missing_table_empty)
{
    struct fleet f;
    struct ckpt *ck;
    char err[512], body[512];
    long st = 0;

    fleet_open(&f, NULL);
    ck = ckpt_lease_new(fleet_worker(&f, "w-a", D, true));
    cr_assert_eq(ckpt_load(ck, err, sizeof(err)), 0, "no table yet: a first start: %s", err);
    cr_assert_eq(ckpt_count(ck), 0);
    ckpt_free(ck);

    fleet_create_table(&f);
    snprintf(body, sizeof(body),
             "{\"TableName\":\"%s\",\"Item\":{\"key\":{\"S\":\"x|y\"},\"shard\":{\"S\":\"y\"},"
             "\"stream\":{\"S\":\"x\"},\"table\":{\"S\":\"t\"},\"counter\":{\"S\":\"zero\"}}}",
             f.table);
    json_decref(ddbc_call("PutItem", body, &st));
    cr_assert_eq(st, 200);
    ck = ckpt_lease_new(fleet_worker(&f, "w-b", D, true));
    cr_assert_eq(ckpt_load(ck, err, sizeof(err)), -EBADMSG);
    cr_assert(strstr(err, f.table) && strstr(err, "item \"x|y\": counter and epoch"), "%s", err);
    cr_assert_eq(ckpt_count(ck), 0, "left empty");
    ckpt_free(ck);
    fleet_close(&f);
}
