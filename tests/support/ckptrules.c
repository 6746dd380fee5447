#include "tests/support/ckptrules.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

#include "tests/support/loop.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/posts/stream/2024-05-01T00:00:00.000"
#define ARN2 "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2024-05-01T00:00:00.000"
#define SH_A "shardId-00000001714521600000-aaaaaaaa"
#define SH_B "shardId-00000001714536000000-bbbbbbbb"
#define SH_C "shardId-00000001714550400000-cccccccc"
#define T0 ((time_t)1714521600) /* 2024-05-01T00:00:00Z */

struct saved {
    int calls, status;
};

static void on_saved(struct ckpt *ck, int status, void *arg)
{
    struct saved *s = arg;

    s->calls++;
    s->status = status;
}

static bool saved_once(void *arg)
{
    return ((struct saved *)arg)->calls > 0;
}

static int count_shards(const struct ckpt_shard *sh, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int list_ids(const struct ckpt_shard *sh, void *arg)
{
    char *out = arg;

    strcat(out, sh->id + strlen(sh->id) - 8);
    strcat(out, " ");
    return 0;
}

static void expect_changes(const struct ckpt_backend *b, struct ckpt *ck, int n, const char *why)
{
    if (b->changes)
        cr_assert_eq(b->changes(ck, b->ctx), n, "%s", why);
}

void ckpt_rules_check(const struct ckpt_backend *b)
{
    struct ckpt *ck = b->make(b->ctx), *again, *third;
    struct ckpt_shard *a, *c, *u;
    struct docver v;
    struct saved s = { 0 };
    char err[256];
    int n = 0;

    cr_assert_not_null(ck);
    cr_assert_str_eq(ckpt_path(ck), b->path);
    cr_assert_null(ckpt_shard_add(ck, "posts", ARN, "", NULL, T0), "an empty id is refused");
    a = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    c = ckpt_shard_add(ck, "posts", ARN, SH_B, SH_A, T0 + 1);
    u = ckpt_shard_add(ck, "users", ARN2, SH_C, NULL, T0 + 2);
    cr_assert(a && c && u);
    cr_assert_eq(ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0 + 9), a, "found, not added");
    cr_assert_eq(ckpt_count(ck), 3);
    cr_assert_eq(ckpt_foreach(ck, count_shards, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(ckpt_shard_get(ck, ARN, SH_B), c);
    cr_assert_str_eq(c->parent, SH_A);
    cr_assert(ckpt_dirty(ck));

    /* The checkpoint moves forward only, whatever the backend. */
    cr_assert_eq(ckpt_shard_advance(ck, a, "000000000000000000200",
                                    &(struct docver){ 1000, 5 }, T0 + 10),
                 0);
    cr_assert_eq(ckpt_shard_advance(ck, a, "000000000000000000199",
                                    &(struct docver){ 1000, 9 }, T0 + 11),
                 -EINVAL);
    cr_assert_eq(ckpt_shard_advance(ck, a, "12x", &(struct docver){ 1000, 9 }, T0 + 11), -EINVAL);
    cr_assert_str_eq(a->seq, "000000000000000000200");
    cr_assert_eq(a->ver.ordinal, 5);
    expect_changes(b, ck, 1, "a refused advance changes nothing");
    ckpt_shard_finish(ck, a, T0 + 12);
    cr_assert(a->done);
    cr_assert_eq(a->updated, T0 + 12);
    ckpt_shard_skip_before(ck, u, 1500);
    ckpt_shard_skip_before(ck, u, 1500);
    expect_changes(b, ck, 3, "an unchanged skip_before is no change");

    /* The child continues its parent's ordinal; a new stream starts above
     * everything its table used. */
    v = ckpt_shard_resume_version(ck, c);
    cr_assert(v.second == 1000 && v.ordinal == 5, "inherited: {%lld, %u}", (long long)v.second,
              v.ordinal);
    cr_assert_eq(docver_next(&v, 1000), (1000ull << 20) | 6);
    cr_assert(ckpt_table_known(ck, "users"));
    cr_assert_not(ckpt_table_known(ck, "orders"));
    v = ckpt_table_max_version(ck, "posts");
    cr_assert(v.second == 1000 && v.ordinal == 5);
    ckpt_shard_raise_version(ck, u, &v);
    cr_assert_eq(u->ver.second, 1000);
    ckpt_shard_raise_version(ck, u, &(struct docver){ 999, 9 });
    cr_assert_eq(u->ver.second, 1000, "raising never lowers");

    /* Saved, then loaded by another store: the inherited state survives. */
    cr_assert_eq(ckpt_save_sync(ck), 0);
    cr_assert_not(ckpt_dirty(ck));
    again = b->make(b->ctx);
    cr_assert_eq(ckpt_load(again, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(ckpt_dirty(again), "a load is clean");
    cr_assert_eq(ckpt_load(again, err, sizeof(err)), -EBUSY, "only into an empty store");
    cr_assert_eq(ckpt_count(again), 3);
    cr_assert_str_eq(ckpt_shard_get(again, ARN, SH_A)->seq, "000000000000000000200");
    cr_assert(ckpt_shard_get(again, ARN, SH_A)->done);
    cr_assert_eq(ckpt_shard_get(again, ARN, SH_B)->ver.ordinal, 5);
    cr_assert_str_eq(ckpt_shard_get(again, ARN, SH_B)->parent, SH_A);
    cr_assert_eq(ckpt_shard_get(again, ARN2, SH_C)->skip_before, 1500);
    cr_assert_str_eq(ckpt_shard_get(again, ARN2, SH_C)->table, "users");
    {
        char order[64] = "";

        ckpt_foreach(again, list_ids, order);
        cr_assert_str_eq(order, "aaaaaaaa bbbbbbbb cccccccc ", "a loaded store keeps the order");
    }

    /* Pruning follows the shared rule: the parent, done for a day, goes. */
    ckpt_shard_seen(ckpt_shard_get(again, ARN, SH_A), T0 + CKPT_PRUNE_AGE);
    cr_assert_eq(ckpt_prune(again, T0 + CKPT_PRUNE_AGE + 13), 0, "still listed");
    cr_assert_eq(ckpt_prune(again, T0 + 2 * CKPT_PRUNE_AGE), 1);
    cr_assert_null(ckpt_shard_get(again, ARN, SH_A));
    cr_assert(ckpt_dirty(again));

    /* An asynchronous save reports once, on the loop. */
    cr_assert_eq(ckpt_save_async(again, b->loop, on_saved, &s), 0);
    cr_assert(ckpt_busy(again));
    cr_assert_eq(ckpt_save_sync(again), -EBUSY);
    cr_assert_eq(s.calls, 0, "the callback never runs inside the call");
    cr_assert(loop_run_until(b->loop, saved_once, &s, 30000));
    uv_run(b->loop, UV_RUN_NOWAIT);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.status, 0);
    cr_assert_not(ckpt_busy(again));
    cr_assert_not(ckpt_dirty(again));

    /* The next process finds the pruned entry gone. */
    third = b->make(b->ctx);
    cr_assert_eq(ckpt_load(third, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_count(third), 2);
    cr_assert_null(ckpt_shard_get(third, ARN, SH_A));
    ckpt_free(third);
    ckpt_free(again);
    ckpt_free(ck);
    ckpt_free(NULL);
}
