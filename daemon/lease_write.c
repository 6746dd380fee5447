/* lease_write — the coordinator's writes of ownership (renew, take, force,
 * claim, release) and of its heartbeat, and what each answer means (the
 * conditions: lease.h).  An error is never taken for a loss: only a failed
 * condition, or the deadline (lease.c), gives a lease up. */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

enum call_kind { C_RENEW, C_TAKE, C_FORCE, C_CLAIM, C_RELEASE, C_HEARTBEAT, C_HB_DELETE, C_DEAD };

struct lease_call {
    struct lease *l;
    struct lease_call *next, *prev;
    struct ddb_call *call;
    enum call_kind kind;
    char *key;        /* the lease's (or the worker's id for C_DEAD) */
    uint64_t started; /* loop ms when it was sent */
};

static const char *const kind_name[] = { [C_RENEW] = "renew",     [C_TAKE] = "take",
                                         [C_FORCE] = "force",     [C_CLAIM] = "claim",
                                         [C_RELEASE] = "release", [C_HEARTBEAT] = "heartbeat",
                                         [C_HB_DELETE] = "delete heartbeat",
                                         [C_DEAD] = "delete a dead worker's heartbeat" };

static void unlink_call(struct lease_call *c)
{
    struct lease *l = c->l;

    if (c->prev)
        c->prev->next = c->next;
    else
        l->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void call_free(struct lease_call *c)
{
    free(c->key);
    free(c);
}

/* An error that says nothing about the condition: counted, logged with
 * moderation (a table that does not answer would fill the log). */
static void write_error(struct lease *l, const struct lease_call *c, const struct ddb_reply *rep)
{
    l->m.write_errors++;
    if (c->kind == C_RENEW)
        l->m.renew_failed++;
    if (l->write_errors_logged++ < 10 || l->write_errors_logged % 100 == 0)
        log_warn("lease table %s: %s of %s: %s%s%s (HTTP %ld, %d attempts); retried at the next "
                 "%s",
                 l->table, kind_name[c->kind], c->key, rep->type[0] ? rep->type : ddb_class_name(rep->cls),
                 rep->message[0] ? ": " : "", rep->message, rep->status, rep->attempts,
                 c->kind == C_RENEW || c->kind == C_HEARTBEAT ? "renewal" : "read");
}

/* The tenure this item shows is this worker's now (take or force). */
static void gained(struct lease *l, struct lease_rec *rec, const struct ddb_reply *rep,
                   uint64_t started)
{
    struct leasetab_lease it;
    char why[256];

    if (leasetab_lease_parse(leasetab_reply_item(rep), &it, why, sizeof(why)) < 0) {
        /* It is ours in the table; the next read shows it owned by this id
         * but not held, and it is taken again. */
        log_warn("lease table %s: %s", l->table, why);
        return;
    }
    if (strcmp(it.owner ? it.owner : "", l->me) == 0) {
        lease_rec_update(l, rec, &it, lease_now(l), false);
        lease_rec_load(rec, &it); /* the checkpoint the previous owner left */
        rec->dirty = false;
        rec->held = true;
        rec->my_epoch = it.epoch;
        rec->last_ok = started;
        rec->yield_asked = rec->clear_claim = rec->release_wanted = false;
        l->m.taken++;
        l->m.held = lease_rec_held(l, NULL);
        log_info("lease %s: taken (epoch %llu, checkpoint %s)", rec->key,
                 (unsigned long long)it.epoch, it.seq[0] ? it.seq : "none");
        if (l->stopping || l->state == LEASE_FATAL) {
            /* Answered after the stop began: given back at once, unread. */
            lease_release(l, rec);
        } else {
            lease_emit(l, EV_GAINED, rec, NULL);
        }
        lease_arm_deadline(l);
    }
    leasetab_lease_clear(&it);
}

static void on_reply(const struct ddb_reply *rep, void *arg)
{
    struct lease_call *c = arg;
    struct lease *l = c->l;
    struct lease_rec *rec = c->kind < C_HEARTBEAT ? lease_rec_by_key(l, c->key) : NULL;
    bool cond = leasetab_condition_failed(rep), ok = rep->cls == DDB_OK;
    char why[256];

    unlink_call(c);
    if (rec && c->kind == C_RENEW)
        rec->renewing = false;
    else if (rec)
        rec->op = false;
    if (rep->err == -ECANCELED) {
        call_free(c);
        return;
    }
    switch (c->kind) {
    case C_RENEW:
        if (!rec || !rec->held)
            break;
        if (ok) {
            struct leasetab_lease it;

            rec->last_ok = c->started > rec->last_ok ? c->started : rec->last_ok;
            if (leasetab_lease_parse(leasetab_reply_item(rep), &it, why, sizeof(why)) == 0) {
                lease_rec_update(l, rec, &it, lease_now(l), false);
                leasetab_lease_clear(&it);
            }
            lease_arm_deadline(l);
        } else if (cond && !(rec->op && rec->release_wanted)) { /* not our own release */
            l->m.renew_failed++;
            lease_lose(l, rec, "its renewal found another owner");
        } else {
            write_error(l, c, rep);
        }
        break;
    case C_TAKE:
    case C_FORCE:
        if (ok && rec)
            gained(l, rec, rep, c->started);
        else if (!ok && !cond)
            write_error(l, c, rep);
        break;
    case C_CLAIM:
        if (ok && rec) {
            lease_rec_set_str(&rec->claim, l->me);
            rec->claim_at = lease_now(l);
            l->m.stolen++;
            log_info("lease %s: asked %s for it", rec->key, rec->owner ? rec->owner : "?");
        } else if (!ok && !cond) {
            write_error(l, c, rep);
        }
        break;
    case C_RELEASE:
        if (rec && rec->held) {
            rec->held = false;
            rec->release_wanted = false;
            if (ok) {
                lease_rec_set_str(&rec->owner, NULL);
                lease_rec_set_str(&rec->owner_run, NULL);
                lease_rec_set_str(&rec->claim, NULL);
                rec->counter++;
                rec->changed_at = lease_now(l);
                l->m.released++;
                log_info("lease %s: released", rec->key);
            } else if (!cond) {
                write_error(l, c, rep); /* it expires after lease_duration */
            }
            l->m.held = lease_rec_held(l, NULL);
            lease_arm_deadline(l);
        }
        lease_check_released(l);
        break;
    case C_HEARTBEAT:
        l->hb_busy = false;
        if (l->stopping) { /* release_all waited for it: the delete goes after it */
            lease_delete_heartbeat(l);
            lease_check_released(l);
            break;
        }
        if (ok) {
            l->hb_first = false;
            l->hb_ok = c->started > l->hb_ok ? c->started : l->hb_ok;
            if (l->state == LEASE_STALE)
                lease_set_state(l, LEASE_OK, "the lease table answers again");
            lease_arm_deadline(l);
        } else if (cond) {
            snprintf(why, sizeof(why),
                     "another process runs with worker_id %s (its heartbeat replaced this one's): "
                     "worker ids must be unique",
                     l->me);
            lease_set_state(l, LEASE_FATAL, why);
        } else {
            write_error(l, c, rep);
        }
        break;
    case C_HB_DELETE:
        l->hb_deleting = false;
        lease_check_released(l);
        break;
    case C_DEAD:
        if (ok)
            log_info("lease table %s: forgot the heartbeat of worker %s, dead for long", l->table,
                     c->key);
        break;
    }
    if (rec && c->kind != C_RENEW && !rec->op && rec->release_wanted && rec->held)
        lease_release(l, rec);
    call_free(c);
}

/* Sends body (stolen) as one of this worker's writes. */
static int send_call(struct lease *l, enum call_kind kind, const char *key, const char *op,
                     json_t *body)
{
    struct lease_call *c = calloc(1, sizeof(*c));
    char what[300];

    if (!c || !body || !(c->key = strdup(key))) {
        json_decref(body);
        free(c);
        return -ENOMEM;
    }
    c->l = l;
    c->kind = kind;
    c->started = uv_now(l->loop); /* cached: at or before the send, as the deadline wants */
    snprintf(what, sizeof(what), "lease table %s", l->table);
    c->call = ddb_call(l->aws, AWS_DYNAMODB, op, body, on_reply, c,
                       &(struct ddb_call_opts){ .timeout_ms = (long)l->renew_ms, .what = what });
    if (!c->call) {
        call_free(c);
        return -ENOMEM;
    }
    c->next = l->calls;
    if (l->calls)
        l->calls->prev = c;
    l->calls = c;
    return 0;
}

void lease_renew_all(struct lease *l)
{
    for (size_t s = 0; s < l->streams.n; s++)
        for (size_t k = 0; k < l->streams.v[s]->n; k++) {
            struct lease_rec *r = l->streams.v[s]->recs[k];

            if (!r->held || r->renewing)
                continue;
            /* The next tick tries again: nothing here ever stops the loop. */
            if (send_call(l, C_RENEW, r->key, "UpdateItem",
                          leasetab_req_renew(l->table, r->key, l->me, r->my_epoch, r->clear_claim,
                                             l->wall())) == 0)
                r->renewing = true;
            r->clear_claim = false;
        }
}

void lease_heartbeat(struct lease *l)
{
    if (l->hb_busy)
        return;
    if (send_call(l, C_HEARTBEAT, l->me, "UpdateItem",
                  leasetab_req_heartbeat(l->table, l->me, l->run, l->d, lease_rec_held(l, NULL),
                                         l->hb_first, l->wall())) == 0)
        l->hb_busy = true;
}

void lease_take(struct lease *l, struct lease_rec *rec, bool force)
{
    json_t *body;

    if (rec->op)
        return;
    body = force ? leasetab_req_force(l->table, rec->key, l->me, l->run, rec->owner, rec->epoch,
                                      l->wall())
                 : leasetab_req_take(l->table, rec->key, l->me, l->run, rec->counter, rec->epoch,
                                     l->wall());
    if (send_call(l, force ? C_FORCE : C_TAKE, rec->key, "UpdateItem", body) == 0)
        rec->op = true;
}

void lease_claim(struct lease *l, struct lease_rec *rec)
{
    if (rec->op || !rec->owner)
        return;
    if (send_call(l, C_CLAIM, rec->key, "UpdateItem",
                  leasetab_req_claim(l->table, rec->key, l->me, rec->owner, rec->epoch)) == 0)
        rec->op = true;
}

void lease_release(struct lease *l, struct lease_rec *rec)
{
    if (!rec->held)
        return;
    rec->release_wanted = true;
    if (rec->op || rec->writing)
        return; /* after that write: lease_write_ended, on_reply */
    if (send_call(l, C_RELEASE, rec->key, "UpdateItem",
                  leasetab_req_release(l->table, rec->key, l->me, rec->my_epoch, l->wall())) ==
        0) {
        rec->op = true;
        return;
    }
    /* Out of memory: give it up here; it expires after lease_duration. */
    rec->held = false;
    l->m.held = lease_rec_held(l, NULL);
    lease_check_released(l);
}

void lease_write_ended(struct lease *l, struct lease_rec *rec)
{
    if (rec->held && rec->release_wanted && !rec->writing && !rec->op)
        lease_release(l, rec);
}

void lease_delete_heartbeat(struct lease *l)
{
    if (l->hb_busy || l->hb_deleting)
        return; /* after the heartbeat in flight: it would write the item again */
    if (send_call(l, C_HB_DELETE, l->me, "DeleteItem",
                  leasetab_req_worker_delete(l->table, l->me, l->run, 0)) == 0)
        l->hb_deleting = true;
}

void lease_delete_dead_worker(struct lease *l, struct lease_workerrec *w)
{
    send_call(l, C_DEAD, w->id, "DeleteItem",
              leasetab_req_worker_delete(l->table, w->id, NULL, w->beat));
}

void lease_cancel_calls(struct lease *l)
{
    while (l->calls)
        ddb_cancel(l->calls->call); /* on_reply unlinks it */
}
