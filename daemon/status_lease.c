/* status_lease — `ddb2es status` in coordinated mode ([leases]): every
 * shard of the lease table with its owner, checkpoint, lease age and
 * whether it is done; and `--write-checkpoints`, the way back to one
 * process: the table's positions written into STATE_DIR/checkpoints.json. */
#include "daemon/status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "daemon/ckpt.h"
#include "daemon/lease.h"
#include "daemon/leasetab.h"
#include "daemon/statedir.h"

/* The region of the lease table's calls: status sets up no clients, so the
 * configuration or the environment names it. */
static const char *region_of(const struct config *cfg)
{
    const char *r = cfg->aws.region;

    if (!r || !*r)
        r = getenv("AWS_REGION");
    if (!r || !*r)
        r = getenv("AWS_DEFAULT_REGION");
    return r && *r ? r : NULL;
}

/* Every item of the lease table, or NULL with the exit code and why. */
static json_t *read_table(const struct config *cfg, int *code, char *why, size_t len)
{
    const char *region = region_of(cfg);
    struct lease_conn conn = {
        .aws = { .region = region,
                 .endpoint_dynamodb = cfg->aws.endpoint,
                 .endpoint_streams = cfg->aws.endpoint },
        .creds = { .profile = cfg->aws.profile, .region = region },
    };
    char err[512];
    json_t *items;
    int rc;

    if (!region) {
        snprintf(why, len, "lease table %s: no region: set [aws] region or AWS_REGION",
                 cfg->leases.table);
        *code = 78;
        return NULL;
    }
    rc = lease_table_scan(&conn, cfg->leases.table, &items, err, sizeof(err));
    if (rc < 0) {
        snprintf(why, len, "lease table %s: %s", cfg->leases.table, err);
        *code = rc == -ENOENT ? 66 : 69;
        return NULL;
    }
    return items;
}

struct parsed {
    struct leasetab_lease *l;
    size_t nl;
    struct leasetab_worker *w;
    size_t nw;
};

static void parsed_free(struct parsed *p)
{
    for (size_t i = 0; i < p->nl; i++)
        leasetab_lease_clear(&p->l[i]);
    for (size_t i = 0; i < p->nw; i++)
        leasetab_worker_clear(&p->w[i]);
    free(p->l);
    free(p->w);
}

/* Streams by ARN (they end in their creation time), shards by id (they
 * begin with theirs): parents before their children. */
static int by_stream_shard(const void *a, const void *b)
{
    const struct leasetab_lease *x = a, *y = b;
    int c = strcmp(x->stream, y->stream);

    return c ? c : strcmp(x->shard, y->shard);
}

static int parse_items(const json_t *items, struct parsed *p, char *why, size_t len)
{
    size_t i, n = json_array_size(items);
    const json_t *it;

    memset(p, 0, sizeof(*p));
    p->l = calloc(n + 1, sizeof(*p->l));
    p->w = calloc(n + 1, sizeof(*p->w));
    if (!p->l || !p->w) {
        snprintf(why, len, "out of memory");
        return -ENOMEM;
    }
    json_array_foreach(items, i, it)
    {
        int rc = 0;

        switch (leasetab_kind(it)) {
        case LEASETAB_LEASE:
            if ((rc = leasetab_lease_parse(it, &p->l[p->nl], why, len)) == 0)
                p->nl++;
            break;
        case LEASETAB_WORKER:
            if ((rc = leasetab_worker_parse(it, &p->w[p->nw], why, len)) == 0)
                p->nw++;
            break;
        case LEASETAB_OTHER:
            break;
        }
        if (rc < 0)
            return rc;
    }
    if (p->nl)
        qsort(p->l, p->nl, sizeof(*p->l), by_stream_shard);
    return 0;
}

static const struct leasetab_worker *worker_of(const struct parsed *p, const char *id)
{
    for (size_t i = 0; id && i < p->nw; i++)
        if (strcmp(p->w[i].worker, id) == 0)
            return &p->w[i];
    return NULL;
}

static bool has_child(const struct parsed *p, const struct leasetab_lease *l)
{
    for (size_t i = 0; i < p->nl; i++)
        if (p->l[i].parent && strcmp(p->l[i].parent, l->shard) == 0 &&
            strcmp(p->l[i].stream, l->stream) == 0)
            return true;
    return false;
}

static json_t *time_or_null(time_t t)
{
    char when[32];
    struct tm tm;

    if (t <= 0)
        return json_null();
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(when);
}

static json_t *age_or_null(time_t t, time_t now)
{
    return t > 0 ? json_integer((json_int_t)(now > t ? now - t : 0)) : json_null();
}

json_t *status_collect_leases(const struct config *cfg, time_t now, char *err, size_t errlen,
                              int *exit_code)
{
    json_t *items = read_table(cfg, exit_code, err, errlen), *model, *shards, *workers;
    struct parsed p;

    if (!items)
        return NULL;
    if (parse_items(items, &p, err, errlen) < 0) {
        json_decref(items);
        parsed_free(&p);
        *exit_code = 65;
        return NULL;
    }
    json_decref(items);
    model = json_object();
    shards = json_array();
    workers = json_array();
    json_object_set_new(model, "lease_table", json_string(cfg->leases.table));
    json_object_set_new(model, "now", time_or_null(now));
    for (size_t i = 0; i < p.nw; i++) {
        const struct leasetab_worker *w = &p.w[i];

        json_array_append_new(workers,
                              json_pack("{s:s, s:I, s:o, s:o, s:o}", "worker", w->worker,
                                        "leases", (json_int_t)w->leases, "started",
                                        time_or_null(w->started), "heartbeat",
                                        time_or_null(w->updated), "heartbeat_age_s",
                                        age_or_null(w->updated, now)));
    }
    for (size_t i = 0; i < p.nl; i++) {
        const struct leasetab_lease *l = &p.l[i];
        const struct leasetab_worker *w = worker_of(&p, l->owner);
        bool has_record = l->seq[0] && l->ver.second > 0;
        json_t *o = json_object();

        json_object_set_new(o, "table", json_string(l->table));
        json_object_set_new(o, "stream", json_string(l->stream));
        json_object_set_new(o, "shard", json_string(l->shard));
        json_object_set_new(o, "parent", l->parent ? json_string(l->parent) : json_null());
        json_object_set_new(o, "state", json_string(l->done           ? "finished"
                                                    : has_child(&p, l) ? "closed"
                                                                       : "open"));
        json_object_set_new(o, "done", json_boolean(l->done));
        json_object_set_new(o, "owner", l->owner ? json_string(l->owner) : json_null());
        json_object_set_new(o, "claim", l->claim ? json_string(l->claim) : json_null());
        /* The owner renews its leases with its heartbeat: the age of its
         * last heartbeat is the age of the lease (null: free, or an owner
         * whose heartbeat is gone). */
        json_object_set_new(o, "lease_age_s", l->owner && w ? age_or_null(w->updated, now)
                                                            : json_null());
        json_object_set_new(o, "checkpoint", l->seq[0] ? json_string(l->seq) : json_null());
        json_object_set_new(o, "last_record",
                            has_record ? time_or_null((time_t)l->ver.second) : json_null());
        json_object_set_new(o, "last_record_age_s",
                            has_record ? age_or_null((time_t)l->ver.second, now) : json_null());
        json_object_set_new(o, "updated", time_or_null(l->updated));
        json_object_set_new(o, "updated_age_s", age_or_null(l->updated, now));
        json_array_append_new(shards, o);
    }
    json_object_set_new(model, "workers", workers);
    json_object_set_new(model, "shards", shards);
    json_object_set_new(model, "live", json_null());
    parsed_free(&p);
    *exit_code = 0;
    return model;
}

/* ---- back to one process ----------------------------------------------- */

/* Something changed between two reads a lease_duration apart: a worker
 * renewed (its lease counter or heartbeat beat moved).  Names it. */
static const char *still_running(const struct parsed *a, const struct parsed *b)
{
    for (size_t i = 0; i < b->nw; i++)
        for (size_t j = 0; j < a->nw; j++)
            if (strcmp(a->w[j].worker, b->w[i].worker) == 0 && a->w[j].beat != b->w[i].beat)
                return b->w[i].worker;
    for (size_t i = 0; i < b->nl; i++)
        for (size_t j = 0; j < a->nl; j++)
            if (strcmp(a->l[j].key, b->l[i].key) == 0 && a->l[j].counter != b->l[i].counter)
                return b->l[i].owner ? b->l[i].owner : "a worker";
    return NULL;
}

int status_write_checkpoints(const struct config *cfg, FILE *f)
{
    char err[1024], path[4096];
    json_t *first = NULL, *second = NULL;
    struct parsed a = { 0 }, b = { 0 };
    struct ckpt *ck = NULL;
    struct stat st;
    const char *who;
    int code = 0, lock = -1, rc;
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/%s", cfg->daemon.state_dir, CKPT_FILE);
    rc = statedir_lock(cfg->daemon.state_dir, &lock);
    if (rc < 0) {
        fprintf(stderr, "ddb2es: %s: %s\n", cfg->daemon.state_dir,
                rc == -EWOULDBLOCK ? "in use by another ddb2es process" : strerror(-rc));
        return 73;
    }
    if (stat(path, &st) == 0) {
        fprintf(stderr, "ddb2es: %s exists: move it away first (it is not replaced)\n", path);
        code = 73;
        goto out;
    }
    /* Two reads a lease_duration apart: a running worker renews between. */
    if (!(first = read_table(cfg, &code, err, sizeof(err))) ||
        parse_items(first, &a, err, sizeof(err)) < 0)
        goto fail;
    fprintf(f, "lease table %s: %zu shard(s); making sure no worker runs (%lld ms)...\n",
            cfg->leases.table, a.nl, (long long)cfg->leases.lease_duration_ms);
    fflush(f);
    usleep((useconds_t)cfg->leases.lease_duration_ms * 1000);
    if (!(second = read_table(cfg, &code, err, sizeof(err))) ||
        parse_items(second, &b, err, sizeof(err)) < 0)
        goto fail;
    if ((who = still_running(&a, &b))) {
        fprintf(stderr, "ddb2es: worker %s is still running (it renewed its leases): stop every "
                        "worker (SIGTERM) first\n",
                who);
        code = 75;
        goto out;
    }
    if (!(ck = ckpt_new(cfg->daemon.state_dir))) {
        code = 70;
        goto out;
    }
    for (size_t i = 0; i < b.nl; i++) {
        const struct leasetab_lease *l = &b.l[i];
        time_t at = l->updated > 0 ? l->updated : time(NULL);
        struct ckpt_shard *sh = ckpt_shard_add(ck, l->table, l->stream, l->shard, l->parent, at);

        if (!sh) {
            code = 70;
            goto out;
        }
        if (l->seq[0] && ckpt_shard_advance(ck, sh, l->seq, &l->ver, at) < 0) {
            fprintf(stderr, "ddb2es: lease table %s: shard %s: checkpoint %s refused\n",
                    cfg->leases.table, l->shard, l->seq);
            code = 65;
            goto out;
        }
        if (!l->seq[0])
            ckpt_shard_raise_version(ck, sh, &l->ver);
        if (l->skip_before)
            ckpt_shard_skip_before(ck, sh, l->skip_before);
        if (l->done)
            ckpt_shard_finish(ck, sh, at);
        n++;
    }
    if ((rc = ckpt_save_sync(ck)) < 0) {
        fprintf(stderr, "ddb2es: cannot write %s: %s\n", path, strerror(-rc));
        code = 74;
        goto out;
    }
    fprintf(f, "wrote %zu shard(s) from lease table %s to %s: remove [leases] and start one "
               "process on this state directory\n",
            n, cfg->leases.table, path);
    goto out;
fail:
    if (!code)
        code = 65;
    fprintf(stderr, "ddb2es: %s\n", err);
out:
    ckpt_free(ck);
    parsed_free(&a);
    parsed_free(&b);
    json_decref(first);
    json_decref(second);
    statedir_unlock(lock);
    return code;
}

static void age_text(const json_t *v, char *out, size_t len)
{
    json_int_t s = json_integer_value(v);

    if (!json_is_integer(v))
        snprintf(out, len, "-");
    else if (s < 120)
        snprintf(out, len, "%llds", (long long)s);
    else if (s < 7200)
        snprintf(out, len, "%lldm", (long long)(s / 60));
    else
        snprintf(out, len, "%lldh", (long long)(s / 3600));
}

void status_print_leases(const json_t *model, FILE *f)
{
    json_t *shards = json_object_get(model, "shards"), *workers = json_object_get(model, "workers");
    json_t *s;
    size_t i, wt = 5, ws = 5, wo = 5;

    fprintf(f, "lease table: %s (%zu shard%s, %zu worker%s with a heartbeat)\n",
            json_string_value(json_object_get(model, "lease_table")), json_array_size(shards),
            json_array_size(shards) == 1 ? "" : "s", json_array_size(workers),
            json_array_size(workers) == 1 ? "" : "s");
    json_array_foreach(workers, i, s)
    {
        char hb[32];

        age_text(json_object_get(s, "heartbeat_age_s"), hb, sizeof(hb));
        fprintf(f, "  worker %s: %lld lease(s), last heartbeat %s ago\n",
                json_string_value(json_object_get(s, "worker")),
                (long long)json_integer_value(json_object_get(s, "leases")), hb);
    }
    json_array_foreach(shards, i, s)
    {
        const char *o = json_string_value(json_object_get(s, "owner"));
        size_t lt = strlen(json_string_value(json_object_get(s, "table")));
        size_t ls = strlen(json_string_value(json_object_get(s, "shard")));
        size_t lo = o ? strlen(o) : 6;

        wt = lt > wt ? lt : wt;
        ws = ls > ws ? ls : ws;
        wo = lo > wo ? lo : wo;
    }
    if (json_array_size(shards))
        fprintf(f, "%-*s  %-*s  %-8s  %-*s  %-9s  %-11s  %-8s  %s\n", (int)wt, "TABLE", (int)ws,
                "SHARD", "STATE", (int)wo, "OWNER", "LEASE AGE", "LAST RECORD", "UPDATED",
                "CHECKPOINT");
    json_array_foreach(shards, i, s)
    {
        char la[32], rec[32], upd[32];
        const char *seq = json_string_value(json_object_get(s, "checkpoint"));
        const char *o = json_string_value(json_object_get(s, "owner"));

        age_text(json_object_get(s, "lease_age_s"), la, sizeof(la));
        age_text(json_object_get(s, "last_record_age_s"), rec, sizeof(rec));
        age_text(json_object_get(s, "updated_age_s"), upd, sizeof(upd));
        fprintf(f, "%-*s  %-*s  %-8s  %-*s  %-9s  %-11s  %-8s  %s\n", (int)wt,
                json_string_value(json_object_get(s, "table")), (int)ws,
                json_string_value(json_object_get(s, "shard")),
                json_string_value(json_object_get(s, "state")), (int)wo, o ? o : "(free)", la,
                rec, upd, seq ? seq : "(none: starts at its start position)");
    }
}
