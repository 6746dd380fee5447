/* ckpt_lease_save — saving the lease-table store: a round of conditional
 * writes, one per changed entry (created parents first, checkpoints under
 * this worker's tenure, deletes of pruned items), at most one round in
 * flight and the requests made meanwhile coalesced into one more; the same
 * round on a private loop for ckpt_save_sync. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define ROUND_INFLIGHT 16 /* writes of one save in flight at once */

enum wr_kind { W_CREATE, W_CKPT, W_PRUNE };

struct wr { /* one write of a round */
    struct round *rd;
    enum wr_kind kind;
    char *key, *parent_key; /* parent_key: a create of the parent in the same round */
    json_t *body;           /* built when the save was asked; stolen when sent */
    uint64_t counter;       /* W_PRUNE: the counter it was read with */
    uint64_t started;
    bool sent, done;
};

struct round {
    struct ckpt_lease *st;
    struct aws *aws;
    struct wr *w;
    size_t n, done, inflight;
    int status;
    bool cancelled; /* the client went away: nothing more is sent */
    bool over;      /* its end is reported from the loop (lease_later) */
    struct waiter *wt;
    size_t nwt;
};

static struct ckpt_lease *of(const struct ckpt *ck)
{
    return container_of(ck, struct ckpt_lease, base);
}

/* ---- saving: rounds of conditional writes ------------------------------------ */

static void round_free(struct round *rd)
{
    for (size_t i = 0; i < rd->n; i++) {
        free(rd->w[i].key);
        free(rd->w[i].parent_key);
        json_decref(rd->w[i].body);
    }
    free(rd->w);
    free(rd->wt);
    free(rd);
}

static int add_write(struct round *rd, size_t *cap, enum wr_kind kind, const char *key,
                     json_t *body)
{
    struct wr *w;

    if (!body)
        return -ENOMEM;
    if (rd->n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct wr *a = realloc(rd->w, c * sizeof(*a));

        if (!a) {
            json_decref(body);
            return -ENOMEM;
        }
        rd->w = a;
        *cap = c;
    }
    w = &rd->w[rd->n];
    memset(w, 0, sizeof(*w));
    w->rd = rd;
    w->kind = kind;
    w->body = body;
    if (!(w->key = strdup(key))) {
        json_decref(body);
        return -ENOMEM;
    }
    rd->n++;
    return 0;
}

/* A create waits for the create of its parent in the same round. */
static bool parent_pending(const struct round *rd, const struct wr *w)
{
    for (size_t i = 0; w->parent_key && i < rd->n; i++)
        if (rd->w[i].kind == W_CREATE && !rd->w[i].done && strcmp(rd->w[i].key, w->parent_key) == 0)
            return true;
    return false;
}

/* The state of every entry now, as one write each.  The entries are clean
 * afterwards; a write that fails makes its entry dirty again. */
static struct round *take_state(struct ckpt_lease *st)
{
    struct lease *l = st->l;
    struct round *rd = calloc(1, sizeof(*rd));
    size_t cap = 0;
    int rc = rd ? 0 : -ENOMEM;

    for (size_t s = 0; rc == 0 && s < l->streams.n; s++)
        for (size_t k = 0; rc == 0 && k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k];
            struct lease_rec *par;

            if (!r->dirty)
                continue;
            if (r->held) {
                rc = add_write(rd, &cap, W_CKPT, r->key,
                               leasetab_req_checkpoint(l->table, r->key, l->me, r->my_epoch,
                                                       &r->sh, l->wall()));
            } else if (!r->in_table) {
                rc = add_write(rd, &cap, W_CREATE, r->key,
                               leasetab_req_create(l->table, &r->sh, l->wall()));
                par = r->sh.parent ? lease_rec_get(l, r->sh.arn, r->sh.parent) : NULL;
                if (rc == 0 && par && par->dirty && !par->in_table && !par->held &&
                    !(rd->w[rd->n - 1].parent_key = strdup(par->key)))
                    rc = -ENOMEM;
            } else {
                /* Another worker's shard: its owner writes it. */
                log_debug("lease %s: not held here, its change is not saved", r->key);
            }
        }
    for (size_t i = 0; rc == 0 && i < l->npruned; i++)
        if ((rc = add_write(rd, &cap, W_PRUNE, l->pruned[i].key,
                            leasetab_req_prune(l->table, l->pruned[i].key,
                                               l->pruned[i].counter))) == 0)
            rd->w[rd->n - 1].counter = l->pruned[i].counter;
    if (rc < 0) {
        if (rd)
            round_free(rd);
        return NULL;
    }
    /* Taken: clean now (parents were looked at above, before this). */
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++)
            ((struct lease_rec *)l->streams.v[s]->recs[k])->dirty = false;
    for (size_t i = 0; i < l->npruned; i++)
        free(l->pruned[i].key);
    l->npruned = 0;
    st->dirty = false;
    rd->st = st;
    return rd;
}

static void pump(struct round *rd);
static void round_end(struct round *rd);



static void requeue_prune(struct lease *l, const struct wr *w)
{
    if (l->npruned == l->cappruned) {
        size_t cap = l->cappruned ? l->cappruned * 2 : 8;
        void *a = realloc(l->pruned, cap * sizeof(*l->pruned));

        if (!a)
            return;
        l->pruned = a;
        l->cappruned = cap;
    }
    if ((l->pruned[l->npruned].key = strdup(w->key)))
        l->pruned[l->npruned++].counter = w->counter;
}

static void on_write(const struct ddb_reply *rep, void *arg)
{
    struct wr *w = arg;
    struct round *rd = w->rd;
    struct ckpt_lease *st = rd->st;
    struct lease *l = st->l;
    struct lease_rec *r = l && w->kind != W_PRUNE ? lease_rec_by_key(l, w->key) : NULL;
    bool ok = rep->cls == DDB_OK, cond = leasetab_condition_failed(rep);

    w->done = true;
    rd->done++;
    rd->inflight--;
    if (r)
        r->writing--;
    if (!l) {
        /* detached: nothing to update */
    } else if (w->kind == W_CKPT && r && ok) {
        r->last_ok = w->started > r->last_ok ? w->started : r->last_ok;
        lease_arm_deadline(l);
    } else if (w->kind == W_CKPT && r && cond) {
        lease_lose(l, r, "its checkpoint write found another owner");
    } else if (w->kind == W_CREATE && r && (ok || cond)) {
        r->in_table = true; /* cond: another worker created it first */
    } else if (w->kind == W_PRUNE && (ok || cond)) {
        /* gone, or changed since (then it is not done any more, or newer) */
    } else if (!ok) {
        if (rd->status == 0)
            rd->status = rep->err == -ECANCELED ? -ECANCELED : -EIO;
        if (rep->err != -ECANCELED)
            log_warn("%s: saving %s: %s%s%s (HTTP %ld); the next save carries it again",
                     ckpt_lease_path(&st->base), w->key, rep->type[0] ? rep->type : ddb_class_name(rep->cls),
                     rep->message[0] ? ": " : "", rep->message, rep->status);
        if (r && (r->held || w->kind == W_CREATE))
            r->dirty = true;
        if (w->kind == W_PRUNE)
            requeue_prune(l, w);
        st->dirty = true;
    }
    if (r && l)
        lease_write_ended(l, r);
    if (rep->err == -ECANCELED && !rd->cancelled) {
        /* The client is going away: what was not sent is not sent. */
        rd->cancelled = true;
        for (size_t i = 0; i < rd->n; i++)
            if (!rd->w[i].sent) {
                struct lease_rec *u = l && rd->w[i].kind != W_PRUNE
                                          ? lease_rec_by_key(l, rd->w[i].key)
                                          : NULL;

                rd->w[i].sent = rd->w[i].done = true;
                rd->done++;
                if (u)
                    u->dirty = true;
                else if (l)
                    requeue_prune(l, &rd->w[i]);
            }
    }
    if (rd->done == rd->n && !rd->over) {
        rd->over = true;
        round_end(rd);
    } else if (rd->done < rd->n) {
        pump(rd);
    }
}

static void send_write(struct round *rd, struct wr *w)
{
    static const char *const op[] = { [W_CREATE] = "PutItem", [W_CKPT] = "UpdateItem",
                                      [W_PRUNE] = "DeleteItem" };
    struct lease *l = rd->st->l;
    struct lease_rec *r;
    json_t *body = w->body;
    char what[300];

    w->sent = true;
    w->body = NULL;
    w->started = uv_now(l->loop);
    rd->inflight++;
    if ((r = w->kind == W_PRUNE ? NULL : lease_rec_by_key(l, w->key)))
        r->writing++;
    snprintf(what, sizeof(what), "lease table %s", l->table);
    if (!ddb_call(rd->aws, AWS_DYNAMODB, op[w->kind], body, on_write, w,
                  &(struct ddb_call_opts){ .what = what })) {
        /* Out of memory: a failed write, carried by the next save. */
        w->done = true;
        rd->done++;
        rd->inflight--;
        if (r) {
            r->writing--;
            r->dirty = true;
        } else {
            requeue_prune(l, w);
        }
        rd->st->dirty = true;
        rd->status = rd->status ? rd->status : -ENOMEM;
    }
}

static void on_round_over(void *arg);

static void pump(struct round *rd)
{
    bool sent = true;

    while (sent && !rd->cancelled && rd->st->l) {
        sent = false;
        for (size_t i = 0; i < rd->n && rd->inflight < ROUND_INFLIGHT; i++)
            if (!rd->w[i].sent && !parent_pending(rd, &rd->w[i])) {
                send_write(rd, &rd->w[i]);
                sent = true;
            }
        /* Every write left waits for another (a parent cycle, which no
         * stream has): the first goes anyway. */
        for (size_t i = 0; !sent && i < rd->n && !rd->inflight && rd->done < rd->n; i++)
            if (!rd->w[i].sent) {
                send_write(rd, &rd->w[i]);
                sent = true;
            }
    }
    /* Writes that failed at once (out of memory) may have ended it. */
    if (rd->done == rd->n && !rd->over) {
        rd->over = true;
        if (lease_later(rd->st->l, on_round_over, rd) < 0)
            log_error("%s: out of memory: a save is never reported", ckpt_lease_path(&rd->st->base));
    }
}

static int start_round(struct ckpt_lease *st, struct aws *aws, struct waiter *wt, size_t nwt);

static void round_end(struct round *rd)
{
    struct ckpt_lease *st = rd->st;
    int status = rd->status;

    if (st->job == rd) {
        st->job = NULL;
        if (st->pending) {
            struct waiter *w = st->pend;
            size_t nw = st->npend;
            int src;

            st->pending = false;
            st->pend = NULL;
            st->npend = st->cappend = 0;
            if ((src = start_round(st, rd->aws, w, nw)) < 0) {
                for (size_t i = 0; i < nw; i++)
                    if (w[i].cb)
                        w[i].cb(&st->base, src, w[i].arg);
                free(w);
            }
        }
        /* Last: a callback may ask for another save. */
        for (size_t i = 0; i < rd->nwt; i++)
            if (rd->wt[i].cb)
                rd->wt[i].cb(&st->base, status, rd->wt[i].arg);
        round_free(rd);
    }
    /* A synchronous round is ended and freed by save_sync. */
}

static void on_round_over(void *arg)
{
    round_end(arg);
}

/* Takes the state now and starts writing it; the waiters (taken over on
 * success) hear of it once every write has answered. */
static int start_round(struct ckpt_lease *st, struct aws *aws, struct waiter *wt, size_t nwt)
{
    struct round *rd = take_state(st);

    if (!rd)
        return -ENOMEM;
    rd->aws = aws;
    rd->wt = wt;
    rd->nwt = nwt;
    st->job = rd;
    if (rd->n == 0) { /* nothing to write: still reported from the loop */
        rd->over = true;
        if (lease_later(st->l, on_round_over, rd) < 0) {
            st->job = NULL;
            round_free(rd);
            return -ENOMEM;
        }
        return 0;
    }
    pump(rd);
    return 0;
}

int ckpt_lease_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg)
{
    struct ckpt_lease *st = of(ck);
    struct waiter *w;
    int rc;

    if (!st->l)
        return -EBADF;
    if (st->job) {
        if (st->npend == st->cappend) {
            size_t cap = st->cappend ? st->cappend * 2 : 2;

            if (!(w = realloc(st->pend, cap * sizeof(*w))))
                return -ENOMEM;
            st->pend = w;
            st->cappend = cap;
        }
        st->pend[st->npend++] = (struct waiter){ cb, arg };
        st->pending = true;
        return 0;
    }
    if (!(w = malloc(sizeof(*w))))
        return -ENOMEM;
    *w = (struct waiter){ cb, arg };
    if ((rc = start_round(st, st->l->aws, w, 1)) < 0)
        free(w);
    return rc;
}

/* ---- the synchronous calls, on a private loop ------------------------------------ */

static int sync_start_round(uv_loop_t *loop, struct aws *aws, void *arg)
{
    struct round *rd = arg;

    rd->aws = aws;
    pump(rd);
    return 0;
}

static bool sync_round_done(void *arg)
{
    struct round *rd = arg;

    return rd->done == rd->n;
}

int ckpt_lease_save_sync(struct ckpt *ck)
{
    struct ckpt_lease *st = of(ck);
    struct round *rd;
    int rc;

    if (!st->l)
        return -EBADF;
    if (st->job || st->pending)
        return -EBUSY;
    if (!(rd = take_state(st)))
        return -ENOMEM;
    rc = rd->n ? lease_sync_run(&st->l->conn, SYNC_TIMEOUT_MS, sync_start_round, sync_round_done,
                                rd)
               : 0;
    if (rc == 0)
        rc = rd->status;
    /* What was never sent is carried by the next save. */
    for (size_t i = 0; i < rd->n; i++) {
        struct lease_rec *r;

        if (rd->w[i].sent)
            continue;
        if (rd->w[i].kind == W_PRUNE)
            requeue_prune(st->l, &rd->w[i]);
        else if ((r = lease_rec_by_key(st->l, rd->w[i].key)))
            r->dirty = true;
        st->dirty = true;
        if (rc == 0)
            rc = -EIO;
    }
    round_free(rd);
    return rc;
}

