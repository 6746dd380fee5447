/* leasetab_job — the lease table's multi-call jobs: making sure it exists
 * (creating it and waiting until it is ACTIVE), and reading it whole. */
#include "daemon/leasetab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

/* One line about a reply that was not OK. */
static void describe_reply(const char *op, const struct ddb_reply *rep, char *why, size_t len)
{
    if (rep->status)
        snprintf(why, len, "%s: %s%s%s (HTTP %ld)", op, rep->type[0] ? rep->type : "error",
                 rep->message[0] ? ": " : "", rep->message, rep->status);
    else
        snprintf(why, len, "%s: %s", op, rep->message[0] ? rep->message : strerror(-rep->err));
}

/* What a failed call means for the caller: permissions, or anything else. */
static int error_of(const struct ddb_reply *rep)
{
    if (rep->cls == DDB_AUTH || strcmp(rep->type, "AccessDeniedException") == 0)
        return -EACCES;
    return -EIO;
}

/* ---- ensure ---------------------------------------------------------------- */

struct leasetab_ensure {
    uv_timer_t timer;
    struct aws *aws;
    char *table;
    bool create, created;
    long poll_ms;
    uint64_t deadline;
    leasetab_ensure_cb *cb;
    void *arg;
    struct ddb_call *call;
    bool finished;
};

static void ensure_closed(uv_handle_t *h)
{
    struct leasetab_ensure *e = container_of((uv_timer_t *)h, struct leasetab_ensure, timer);

    free(e->table);
    free(e);
}

static void ensure_finish(struct leasetab_ensure *e, int status, const char *why)
{
    if (e->finished)
        return;
    e->finished = true;
    uv_timer_stop(&e->timer);
    e->cb(status, why ? why : "", e->arg);
    uv_close((uv_handle_t *)&e->timer, ensure_closed);
}

static void describe(struct leasetab_ensure *e);

static void on_poll(uv_timer_t *t)
{
    describe(container_of(t, struct leasetab_ensure, timer));
}

static void on_created(const struct ddb_reply *rep, void *arg)
{
    struct leasetab_ensure *e = arg;
    char why[512];

    e->call = NULL;
    if (rep->err == -ECANCELED) {
        ensure_finish(e, -ECANCELED, "cancelled");
        return;
    }
    /* ResourceInUseException: another worker is creating it right now. */
    if (rep->cls != DDB_OK && strcmp(rep->type, "ResourceInUseException") != 0) {
        describe_reply("CreateTable", rep, why, sizeof(why));
        ensure_finish(e, error_of(rep), why);
        return;
    }
    log_info("lease table %s: created (on-demand billing), waiting until it is active", e->table);
    e->created = true;
    uv_timer_start(&e->timer, on_poll, (uint64_t)e->poll_ms, 0);
}

static void on_described(const struct ddb_reply *rep, void *arg)
{
    struct leasetab_ensure *e = arg;
    uv_loop_t *loop = e->timer.loop;
    char why[512];
    int rc;

    e->call = NULL;
    if (rep->err == -ECANCELED) {
        ensure_finish(e, -ECANCELED, "cancelled");
        return;
    }
    if (rep->cls == DDB_NOT_FOUND && !e->created) {
        if (!e->create) {
            snprintf(why, sizeof(why),
                     "the lease table %s does not exist and [leases] create_table is false",
                     e->table);
            ensure_finish(e, -ENOENT, why);
            return;
        }
        e->call = ddb_call(e->aws, AWS_DYNAMODB, "CreateTable",
                           leasetab_req_create_table(e->table), on_created, e,
                           &(struct ddb_call_opts){ .what = e->table });
        if (!e->call)
            ensure_finish(e, -ENOMEM, "out of memory");
        return;
    }
    if (rep->cls != DDB_OK && rep->cls != DDB_NOT_FOUND) {
        describe_reply("DescribeTable", rep, why, sizeof(why));
        ensure_finish(e, error_of(rep), why);
        return;
    }
    rc = rep->cls == DDB_OK ? leasetab_check_describe(rep->json, why, sizeof(why)) : 0;
    if (rc < 0) {
        char line[640];

        snprintf(line, sizeof(line), "lease table %s: %s", e->table, why);
        ensure_finish(e, rc, line);
    } else if (rc == 1) {
        ensure_finish(e, 0, NULL);
    } else if (uv_now(loop) >= e->deadline) {
        snprintf(why, sizeof(why), "lease table %s: not active after waiting for it", e->table);
        ensure_finish(e, -EIO, why);
    } else {
        uv_timer_start(&e->timer, on_poll, (uint64_t)e->poll_ms, 0);
    }
}

static void describe(struct leasetab_ensure *e)
{
    e->call = ddb_call(e->aws, AWS_DYNAMODB, "DescribeTable", leasetab_req_describe(e->table),
                       on_described, e, &(struct ddb_call_opts){ .what = e->table });
    if (!e->call)
        ensure_finish(e, -ENOMEM, "out of memory");
}

struct leasetab_ensure *leasetab_ensure(uv_loop_t *loop, struct aws *aws, const char *table,
                                        bool create, long poll_ms, long wait_ms,
                                        leasetab_ensure_cb *cb, void *arg)
{
    struct leasetab_ensure *e = calloc(1, sizeof(*e));

    if (!e || !(e->table = strdup(table))) {
        free(e);
        return NULL;
    }
    e->aws = aws;
    e->create = create;
    e->poll_ms = poll_ms > 0 ? poll_ms : 1000;
    e->deadline = uv_now(loop) + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
    e->cb = cb;
    e->arg = arg;
    uv_timer_init(loop, &e->timer);
    /* The first call goes out from the loop, like every later one. */
    uv_timer_start(&e->timer, on_poll, 0, 0);
    return e;
}

void leasetab_ensure_cancel(struct leasetab_ensure *e)
{
    if (!e || e->finished)
        return;
    if (e->call)
        ddb_cancel(e->call); /* on_*: ensure_finish(-ECANCELED) */
    else
        ensure_finish(e, -ECANCELED, "cancelled");
}

/* ---- scan ------------------------------------------------------------------ */

struct leasetab_scan {
    struct aws *aws;
    char *table;
    json_t *items;
    struct ddb_call *call;
    leasetab_scan_cb *cb;
    void *arg;
};

static void scan_finish(struct leasetab_scan *s, int status, const char *why)
{
    s->cb(status, status == 0 ? s->items : NULL, why ? why : "", s->arg);
    json_decref(s->items);
    free(s->table);
    free(s);
}

static void on_page(const struct ddb_reply *rep, void *arg)
{
    struct leasetab_scan *s = arg;
    const json_t *next;
    char why[512];

    s->call = NULL;
    if (rep->err == -ECANCELED) {
        scan_finish(s, -ECANCELED, "cancelled");
        return;
    }
    if (rep->cls == DDB_NOT_FOUND) {
        snprintf(why, sizeof(why), "the lease table %s does not exist", s->table);
        scan_finish(s, -ENOENT, why);
        return;
    }
    if (rep->cls != DDB_OK) {
        describe_reply("Scan", rep, why, sizeof(why));
        scan_finish(s, error_of(rep), why);
        return;
    }
    if (json_array_extend(s->items, json_object_get(rep->json, "Items")) < 0) {
        scan_finish(s, -ENOMEM, "out of memory");
        return;
    }
    next = json_object_get(rep->json, "LastEvaluatedKey");
    if (!next) {
        scan_finish(s, 0, NULL);
        return;
    }
    s->call = ddb_call(s->aws, AWS_DYNAMODB, "Scan", leasetab_req_scan(s->table, next), on_page, s,
                       &(struct ddb_call_opts){ .what = s->table });
    if (!s->call)
        scan_finish(s, -ENOMEM, "out of memory");
}

struct leasetab_scan *leasetab_scan(struct aws *aws, const char *table, leasetab_scan_cb *cb,
                                    void *arg)
{
    struct leasetab_scan *s = calloc(1, sizeof(*s));

    if (!s || !(s->table = strdup(table)) || !(s->items = json_array()))
        goto fail;
    s->aws = aws;
    s->cb = cb;
    s->arg = arg;
    s->call = ddb_call(aws, AWS_DYNAMODB, "Scan", leasetab_req_scan(table, NULL), on_page, s,
                       &(struct ddb_call_opts){ .what = table });
    if (s->call)
        return s;
fail:
    if (s) {
        json_decref(s->items);
        free(s->table);
    }
    free(s);
    return NULL;
}

void leasetab_scan_cancel(struct leasetab_scan *s)
{
    if (s && s->call)
        ddb_cancel(s->call);
}
