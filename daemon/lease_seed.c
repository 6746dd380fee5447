/* lease_seed — the lease table seeded from another checkpoint store (a
 * state directory's checkpoints.json): one create per entry, only where no
 * item of that shard exists, parents before their children. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#define SEED_INFLIGHT 16

struct seed_item {
    struct seed *sd;
    char *key, *parent_key; /* parent_key: when the parent is seeded too */
    json_t *body;
    bool sent, done;
};

struct seed {
    struct lease *l;
    struct seed_item *it;
    size_t n, cap, done, inflight, created, existed;
    int status;
    bool cancelled, over;
    lease_seed_cb *cb;
    void *arg;
};

static void seed_free(struct seed *sd)
{
    for (size_t i = 0; i < sd->n; i++) {
        free(sd->it[i].key);
        free(sd->it[i].parent_key);
        json_decref(sd->it[i].body);
    }
    free(sd->it);
    free(sd);
}

static void seed_end(void *arg)
{
    struct seed *sd = arg;

    log_info("lease table %s: seeded from the checkpoint file: %zu items created, %zu already "
             "there%s",
             sd->l->table, sd->created, sd->existed, sd->status ? " (some failed)" : "");
    sd->cb(sd->status, sd->created, sd->existed, sd->arg);
    seed_free(sd);
}

static bool parent_pending(const struct seed *sd, const struct seed_item *x)
{
    for (size_t i = 0; x->parent_key && i < sd->n; i++)
        if (!sd->it[i].done && strcmp(sd->it[i].key, x->parent_key) == 0)
            return true;
    return false;
}

static void pump(struct seed *sd);

static void on_created(const struct ddb_reply *rep, void *arg)
{
    struct seed_item *x = arg;
    struct seed *sd = x->sd;

    x->done = true;
    sd->done++;
    sd->inflight--;
    if (rep->cls == DDB_OK)
        sd->created++;
    else if (leasetab_condition_failed(rep))
        sd->existed++; /* the table's position stands */
    else if (!sd->status)
        sd->status = rep->err == -ECANCELED ? -ECANCELED : -EIO;
    if (rep->err == -ECANCELED && !sd->cancelled) {
        sd->cancelled = true; /* the client is going away: the rest is not sent */
        for (size_t i = 0; i < sd->n; i++)
            if (!sd->it[i].sent) {
                sd->it[i].sent = sd->it[i].done = true;
                sd->done++;
            }
    }
    if (sd->done == sd->n && !sd->over) {
        sd->over = true;
        seed_end(sd);
    } else if (sd->done < sd->n) {
        pump(sd);
    }
}

static void send_item(struct seed *sd, struct seed_item *x)
{
    json_t *body = x->body;

    x->sent = true;
    x->body = NULL;
    sd->inflight++;
    if (!ddb_call(sd->l->aws, AWS_DYNAMODB, "PutItem", body, on_created, x,
                  &(struct ddb_call_opts){ .what = sd->l->table })) {
        x->done = true;
        sd->done++;
        sd->inflight--;
        sd->status = sd->status ? sd->status : -ENOMEM;
    }
}

static void pump(struct seed *sd)
{
    bool sent = true;

    while (sent && !sd->cancelled) {
        sent = false;
        for (size_t i = 0; i < sd->n && sd->inflight < SEED_INFLIGHT; i++)
            if (!sd->it[i].sent && !parent_pending(sd, &sd->it[i])) {
                send_item(sd, &sd->it[i]);
                sent = true;
            }
        /* Every one left waits for another: a parent cycle (a damaged
         * file) is broken rather than waited on forever. */
        for (size_t i = 0; !sent && i < sd->n && !sd->inflight && sd->done < sd->n; i++)
            if (!sd->it[i].sent) {
                send_item(sd, &sd->it[i]);
                sent = true;
            }
    }
    if (sd->done == sd->n && !sd->over) { /* failed at once (out of memory) */
        sd->over = true;
        if (lease_later(sd->l, seed_end, sd) < 0)
            log_error("lease table %s: out of memory: the seeding is never reported", sd->l->table);
    }
}

struct collect {
    struct seed *sd;
    int rc;
};

static int collect_one(const struct ckpt_shard *sh, void *arg)
{
    struct collect *c = arg;
    struct seed *sd = c->sd;
    struct seed_item *x;

    if (sd->n == sd->cap) {
        size_t cap = sd->cap ? sd->cap * 2 : 16;
        struct seed_item *a = realloc(sd->it, cap * sizeof(*a));

        if (!a)
            return c->rc = -ENOMEM;
        sd->it = a;
        sd->cap = cap;
    }
    x = &sd->it[sd->n];
    memset(x, 0, sizeof(*x));
    x->sd = sd;
    x->key = leasetab_lease_key(sh->arn, sh->id);
    x->parent_key = sh->parent ? leasetab_lease_key(sh->arn, sh->parent) : NULL;
    x->body = leasetab_req_create(sd->l->table, sh, sd->l->wall());
    sd->n++;
    if (!x->key || (sh->parent && !x->parent_key) || !x->body)
        return c->rc = -ENOMEM;
    return 0;
}

int lease_seed(struct lease *l, const struct ckpt *from, lease_seed_cb *done, void *arg)
{
    struct seed *sd = calloc(1, sizeof(*sd));
    struct collect c = { sd, 0 };

    if (!sd || !done)
        goto fail;
    sd->l = l;
    sd->cb = done;
    sd->arg = arg;
    ckpt_foreach(from, collect_one, &c);
    if (c.rc < 0)
        goto fail;
    /* A parent that is not in the file is not waited for. */
    for (size_t i = 0; i < sd->n; i++) {
        bool found = false;

        for (size_t k = 0; sd->it[i].parent_key && k < sd->n && !found; k++)
            found = strcmp(sd->it[k].key, sd->it[i].parent_key) == 0;
        if (!found) {
            free(sd->it[i].parent_key);
            sd->it[i].parent_key = NULL;
        }
    }
    if (sd->n == 0)
        return lease_later(l, seed_end, sd) < 0 ? (seed_free(sd), -ENOMEM) : 0;
    pump(sd);
    return 0;
fail:
    if (sd)
        seed_free(sd);
    return -ENOMEM;
}
