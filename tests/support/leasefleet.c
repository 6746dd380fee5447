#include "tests/support/leasefleet.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonx.h"
#include "daemon/leasetab.h"
#include "tests/support/ddbclient.h"
#include "tests/support/loop.h"

struct fleet_log *fleet_log_of(struct fleet *f, struct lease *l)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->l[i] == l)
            return &f->log[i];
    cr_assert_fail("no such worker");
    return NULL;
}

static void on_gained(const char *table, const char *arn, const char *shard, void *arg)
{
    struct fleet_log *g = arg;

    g->gained++;
    g->last_gained_ms = uv_now(&g->f->a.loop);
    if (!g->first_gained_ms)
        g->first_gained_ms = g->last_gained_ms;
}

static void on_lost(const char *table, const char *arn, const char *shard, const char *why,
                    void *arg)
{
    struct fleet_log *g = arg;

    g->lost++;
    snprintf(g->last_lost_why, sizeof(g->last_lost_why), "%s", why);
}

static void on_yield(const char *table, const char *arn, const char *shard, void *arg)
{
    struct fleet_log *g = arg;

    g->yields++;
    if (g->give_back)
        cr_assert_eq(lease_give_back(g->l, arn, shard), 0);
}

static void on_state(enum lease_state st, const char *why, void *arg)
{
    struct fleet_log *g = arg;

    g->state = st;
    g->states++;
    snprintf(g->state_why, sizeof(g->state_why), "%s", why);
}

void fleet_open(struct fleet *f, const char *endpoint)
{
    memset(f, 0, sizeof(*f));
    if (!endpoint && !ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
    awsloop_open(&f->a, endpoint ? endpoint : ddbc_endpoint());
    ddbc_table_name(f->table, sizeof(f->table), "leases");
}

struct lease *fleet_worker(struct fleet *f, const char *id, int64_t d, bool create_table)
{
    struct fleet_log *g = &f->log[f->n];
    struct lease_opts o = { .table = f->table, .worker_id = id, .duration_ms = d,
                            .create_table = create_table };
    struct lease *l;

    cr_assert_lt(f->n, FLEET_MAX);
    memset(g, 0, sizeof(*g));
    g->ready = -1;
    g->give_back = true;
    g->f = f;
    o.conn.aws = awsloop_opts(&f->a);
    l = lease_new(&f->a.loop, f->a.aws, &o,
                  &(struct lease_cbs){ .gained = on_gained, .lost = on_lost, .yield = on_yield,
                                       .state = on_state, .arg = g });
    cr_assert_not_null(l);
    g->l = l;
    f->l[f->n++] = l;
    return l;
}

static void on_ready(int status, const char *why, void *arg)
{
    struct fleet_log *g = arg;

    g->ready = status;
    snprintf(g->ready_why, sizeof(g->ready_why), "%s", why);
}

static bool is_ready(void *arg)
{
    return ((struct fleet_log *)arg)->ready >= 0;
}

int fleet_start(struct fleet *f, struct lease *l)
{
    struct fleet_log *g = fleet_log_of(f, l);

    cr_assert_eq(lease_start(l, on_ready, g), 0);
    cr_assert(loop_run_until(&f->a.loop, is_ready, g, 30000), "lease_start never answered");
    return g->ready;
}

static bool never(void *arg)
{
    return false;
}

void fleet_run(struct fleet *f, long ms)
{
    loop_run_until(&f->a.loop, never, NULL, ms);
}

struct until {
    struct fleet *f;
    bool (*pred)(struct fleet *f, void *arg);
    void *arg;
};

static bool until_pred(void *arg)
{
    struct until *u = arg;

    return u->pred(u->f, u->arg);
}

bool fleet_until(struct fleet *f, bool (*pred)(struct fleet *f, void *arg), void *arg, long ms)
{
    struct until u = { f, pred, arg };

    return loop_run_until(&f->a.loop, until_pred, &u, ms);
}

static void on_closed(void *arg)
{
    (*(int *)arg)++;
}

static bool closed_one(void *arg)
{
    return *(int *)arg > 0;
}

void fleet_kill(struct fleet *f, struct lease *l)
{
    int closed = 0;

    for (size_t i = 0; i < f->n; i++)
        if (f->l[i] == l) {
            lease_close(l, on_closed, &closed);
            cr_assert(loop_run_until(&f->a.loop, closed_one, &closed, 10000));
            lease_free(l);
            f->l[i] = NULL;
            return;
        }
    cr_assert_fail("no such worker");
}

void fleet_close(struct fleet *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->l[i])
            fleet_kill(f, f->l[i]);
    awsloop_close(&f->a);
}

void fleet_put_lease(struct fleet *f, const char *arn, const char *id, const char *parent)
{
    struct ckpt_shard sh = { .id = id, .parent = parent, .arn = arn, .table = "posts",
                             .updated = 1714521600 };
    json_t *body = leasetab_req_create(f->table, &sh, 1714521600);
    char *text = jsonx_dumps(body, NULL);
    long st = 0;

    json_decref(ddbc_call("PutItem", text, &st));
    cr_assert_eq(st, 200, "PutItem of a lease answered %ld", st);
    free(text);
    json_decref(body);
}

void fleet_create_table(struct fleet *f)
{
    json_decref(ddbc_callj("CreateTable", leasetab_req_create_table(f->table)));
}
