#include "daemon/probe.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "base/backoff.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/leasetab.h"
#include "indexer/sink.h"
#include "indexer/target.h"

#define WATCH_BASE_MS 1000   /* the first probe again after a failed one */
#define WATCH_MAX_MS 30000

struct probe {
    struct app *app;
    void (*done)(void *arg, int exit_code);
    void *arg;
    unsigned pending;
    int exit_code;
    struct target target;
};

struct table_probe {
    struct probe *p;
    const struct config_table *t;
    char *arn;
};

static int rank(int code)
{
    switch (code) {
    case 0: return 0;
    case 70: return 1;
    case 69: return 2;
    case 78: return 3;
    default: return 4; /* 77 */
    }
}

static void fail(struct probe *p, int code)
{
    /* Credentials and permissions (77) say more than a target that cannot
     * mirror (78), which says more than "unavailable" (69). */
    if (rank(code) > rank(p->exit_code))
        p->exit_code = code;
}

static void finish_one(struct probe *p)
{
    if (--p->pending == 0) {
        void (*done)(void *, int) = p->done;
        void *arg = p->arg;
        int code = p->exit_code;

        target_free(&p->target);
        free(p);
        done(arg, code);
    }
}

static void report_error(struct probe *p, const char *what, const struct ddb_reply *rep)
{
    printf("  %s: FAILED: %s%s%s (HTTP %ld)\n", what, rep->type[0] ? rep->type : "",
           rep->type[0] ? ": " : "",
           rep->message && *rep->message ? rep->message
           : rep->err                    ? strerror(-rep->err)
                                         : ddb_class_name(rep->cls),
           rep->status);
    fail(p, rep->cls == DDB_AUTH || strstr(rep->type, "AccessDenied") ? 77 : 69);
}

static void on_stream(const struct ddb_reply *rep, void *arg)
{
    struct table_probe *tp = arg;
    json_t *desc = json_object_get(rep->json, "StreamDescription"), *sh;
    size_t i, open = 0, n;
    char what[300];

    snprintf(what, sizeof(what), "[table %s] DescribeStream", tp->t->name);
    if (rep->cls != DDB_OK) {
        report_error(tp->p, what, rep);
    } else {
        n = json_array_size(json_object_get(desc, "Shards"));
        json_array_foreach(json_object_get(desc, "Shards"), i, sh) open +=
            !json_object_get(json_object_get(sh, "SequenceNumberRange"), "EndingSequenceNumber");
        printf("  [table %s] stream %s: %s, %zu shard%s%s (%zu open)\n", tp->t->name, tp->arn,
               json_string_value(json_object_get(desc, "StreamStatus")), n, n == 1 ? "" : "s",
               json_object_get(desc, "LastEvaluatedShardId") ? " or more" : "", open);
    }
    free(tp->arn);
    finish_one(tp->p);
    free(tp);
}

static void on_table(const struct ddb_reply *rep, void *arg)
{
    struct table_probe *tp = arg;
    json_t *table = json_object_get(rep->json, "Table");
    const char *arn = json_string_value(json_object_get(table, "LatestStreamArn"));
    json_t *spec = json_object_get(table, "StreamSpecification");
    char what[300];

    snprintf(what, sizeof(what), "[table %s] DescribeTable", tp->t->name);
    if (rep->cls != DDB_OK) {
        report_error(tp->p, what, rep);
    } else if (!arn || !json_is_true(json_object_get(spec, "StreamEnabled"))) {
        printf("  [table %s] FAILED: the table has no enabled stream (enable NEW_AND_OLD_IMAGES "
               "or NEW_IMAGE)\n",
               tp->t->name);
        fail(tp->p, 69);
    } else {
        json_t *body = json_pack("{s:s, s:i}", "StreamArn", arn, "Limit", 100);

        printf("  [table %s] found, stream view %s, index \"%s\"\n", tp->t->name,
               json_string_value(json_object_get(spec, "StreamViewType")), tp->t->index);
        tp->arn = strdup(arn);
        if (ddb_call(tp->p->app->aws, AWS_STREAMS, "DescribeStream", body, on_stream, tp,
                     &(struct ddb_call_opts){ .max_attempts = 2 }))
            return;
        fail(tp->p, 70);
        free(tp->arn);
    }
    finish_one(tp->p);
    free(tp);
}

/* The index names of the tables, with their templates (read by
 * clients_preflight). */
static int target_of(const struct config *cfg, struct target *t)
{
    for (size_t i = 0; i < cfg->ntables; i++) {
        const struct config_table *c = &cfg->tables[i];

        if (target_add_index(t, c->index, c->name, c->index_template, c->index_template_body) < 0)
            return -ENOMEM;
    }
    return 0;
}

static bool aoss(const struct config *cfg)
{
    return cfg->sink.sigv4_service && strcmp(cfg->sink.sigv4_service, "aoss") == 0;
}

static const char *kind_text(const struct target_index *ix, char *buf, size_t cap)
{
    switch (ix->kind) {
    case TK_INDEX:
        if (ix->created)
            snprintf(buf, cap, "an index, created from %s", ix->template_path);
        else
            snprintf(buf, cap, "an index");
        break;
    case TK_ALIAS: snprintf(buf, cap, "an alias, writing to \"%s\"", ix->write_index); break;
    case TK_DATA_STREAM: snprintf(buf, cap, "a data stream"); break;
    case TK_ABSENT:
        if (ix->template_path)
            snprintf(buf, cap, "does not exist yet: `ddb2es run` creates it from %s",
                     ix->template_path);
        else
            snprintf(buf, cap, "does not exist yet: the engine creates it at the first write, "
                               "with its default mappings (see [table] index_template)");
        break;
    default: snprintf(buf, cap, "the engine does not say what it is"); break;
    }
    return buf;
}

static const char *versions_text(const struct target_index *ix, const struct config *cfg)
{
    if (ix->versions == TV_OK)
        return "; external versions hold (canary " TARGET_CANARY_ID " written, refused at an "
               "older version, deleted)";
    if (!cfg->sink.probe)
        return "; external versions not checked ([sink] probe = false)";
    if (ix->kind == TK_ABSENT)
        return "; external versions not checked (the canary would create the index)";
    return "";
}

static void on_target(struct target *t, void *arg)
{
    struct probe *p = arg;
    const struct config *cfg = p->app->cfg;
    char name[160], kind[600];

    if (t->why[0]) {
        printf("  sink %s: FAILED: %s\n", cfg->sink.url, t->why);
        fail(p, t->verdict == TARGET_DENIED ? 77 : 69);
        finish_one(p);
        return;
    }
    printf("  sink %s: answered: %s%s%s\n", cfg->sink.url,
           target_flavour_name(&t->root, name, sizeof(name)),
           t->root.source_param ? "; bulk requests say include_source_on_error=false" : "",
           t->root.flavour == TF_AOSS ? " (SigV4 service aoss; bulk bodies at most 10 MiB)" : "");
    for (size_t i = 0; i < t->nix; i++) {
        const struct target_index *ix = &t->ix[i];

        switch (ix->verdict) {
        case TARGET_OK:
            printf("  [table %s] index \"%s\": %s%s\n", ix->table, ix->name,
                   kind_text(ix, kind, sizeof(kind)), versions_text(ix, cfg));
            break;
        case TARGET_CANNOT_MIRROR:
            printf("  [table %s] index \"%s\": CANNOT MIRROR the table: %s\n", ix->table,
                   ix->name, ix->why);
            fail(p, 78);
            break;
        default:
            printf("  [table %s] index \"%s\": FAILED: %s\n", ix->table, ix->name, ix->why);
            fail(p, ix->verdict == TARGET_DENIED ? 77 : 69);
            break;
        }
    }
    finish_one(p);
}

static void on_creds(const struct sigv4_key *key, int err, void *arg)
{
    struct probe *p = arg;

    if (err)
        printf("  AWS credentials: FAILED: %s\n", creds_error(p->app->creds));
    else
        printf("  AWS credentials: found (%s)\n", creds_source(p->app->creds));
    if (err)
        fail(p, 77);
    finish_one(p);
}

/* [leases]: the lease table exists with its key schema, or run may create
 * it (its rights to do so are not tried: CreateTable would make it). */
static void on_lease_table(const struct ddb_reply *rep, void *arg)
{
    struct probe *p = arg;
    const struct config *cfg = p->app->cfg;
    char what[300], why[512];

    snprintf(what, sizeof(what), "[leases] table %s", cfg->leases.table);
    if (rep->cls == DDB_NOT_FOUND && cfg->leases.create_table) {
        printf("  %s: missing; `ddb2es run` creates it (key \"%s\", on-demand billing)\n", what,
               LEASETAB_KEY);
    } else if (rep->cls == DDB_NOT_FOUND) {
        printf("  %s: FAILED: missing, and create_table = false (run refuses to start, 78)\n",
               what);
        fail(p, 69);
    } else if (rep->cls != DDB_OK) {
        report_error(p, what, rep);
    } else if (leasetab_check_describe(rep->json, why, sizeof(why)) < 0) {
        printf("  %s: FAILED: %s\n", what, why);
        fail(p, 78);
    } else {
        printf("  %s: found, key schema right (a string hash key \"%s\")\n", what, LEASETAB_KEY);
    }
    finish_one(p);
}

int probe_run(struct app *app, void (*done)(void *arg, int exit_code), void *arg)
{
    const struct config *cfg = app->cfg;
    struct probe *p = calloc(1, sizeof(*p));

    if (!p)
        return -ENOMEM;
    p->app = app;
    p->done = done;
    p->arg = arg;
    p->pending = 1; /* held until everything is started */
    printf("reaching AWS and the search engine:\n");
    fflush(stdout);
    p->pending++;
    if (creds_get(app->creds, on_creds, p) < 0) {
        printf("  AWS credentials: FAILED: %s\n", creds_error(app->creds));
        fail(p, 77);
        p->pending--;
    }
    for (size_t i = 0; i < cfg->ntables; i++) {
        struct table_probe *tp = calloc(1, sizeof(*tp));
        json_t *body = json_pack("{s:s}", "TableName", cfg->tables[i].name);

        if (!tp || !body) {
            free(tp);
            json_decref(body);
            fail(p, 70);
            continue;
        }
        tp->p = p;
        tp->t = &cfg->tables[i];
        p->pending++;
        if (!ddb_call(app->aws, AWS_DYNAMODB, "DescribeTable", body, on_table, tp,
                      &(struct ddb_call_opts){ .max_attempts = 2 })) {
            p->pending--;
            free(tp);
            fail(p, 70);
        }
    }
    if (cfg->leases.enabled) {
        json_t *body = leasetab_req_describe(cfg->leases.table);

        p->pending++;
        if (!body || !ddb_call(app->aws, AWS_DYNAMODB, "DescribeTable", body, on_lease_table, p,
                               &(struct ddb_call_opts){ .max_attempts = 2 })) {
            p->pending--;
            fail(p, 70);
        }
    }
    /* check makes nothing: a missing index is only reported */
    p->pending++;
    if (target_of(cfg, &p->target) < 0 ||
        target_probe(app->sink, &p->target,
                     &(struct target_probe_opts){ .aoss = aoss(cfg), .canary = cfg->sink.probe },
                     on_target, p) < 0) {
        p->pending--;
        fail(p, 70);
    }
    finish_one(p);
    return 0;
}

/* ---- run: the probe at start and after the engine was unreachable ---- */

struct probe_watch {
    struct app *app;
    struct target target;
    uv_timer_t timer;
    bool probing, stopped;
    unsigned failures;          /* probes in a row that could not finish */
    void (*refused)(void *arg);
    void *arg;
};

static void watch_probe(struct probe_watch *w);

static void on_watch_timer(uv_timer_t *t)
{
    watch_probe(container_of(t, struct probe_watch, timer));
}

static void log_found(const struct probe_watch *w)
{
    const struct target *t = &w->target;
    char name[160], kind[600];

    log_info("the search engine is %s%s", target_flavour_name(&t->root, name, sizeof(name)),
             t->root.source_param ? ": bulk requests say include_source_on_error=false" : "");
    for (size_t i = 0; i < t->nix; i++)
        log_info("[table %s] index %s: %s%s", t->ix[i].table, t->ix[i].name,
                 kind_text(&t->ix[i], kind, sizeof(kind)), versions_text(&t->ix[i], w->app->cfg));
}

static void on_watch_probed(struct target *t, void *arg)
{
    struct probe_watch *w = arg;
    struct sink *s = w->app->sink;
    long ms;

    w->probing = false;
    if (w->stopped)
        return;
    switch (t->verdict) {
    case TARGET_OK:
        w->failures = 0;
        log_found(w);
        if (sink_set_source_on_error(s, !t->root.source_param) < 0) {
            log_error("out of memory: the search engine is probed again in %d s",
                      WATCH_BASE_MS / 1000);
            uv_timer_start(&w->timer, on_watch_timer, WATCH_BASE_MS, 0);
            return;
        }
        sink_release(s);
        return;
    case TARGET_CANNOT_MIRROR:
        for (size_t i = 0; i < t->nix; i++)
            if (t->ix[i].verdict == TARGET_CANNOT_MIRROR)
                log_error("[table %s] index %s cannot mirror the table: %s", t->ix[i].table,
                          t->ix[i].name, t->ix[i].why);
        w->refused(w->arg);
        return;
    default:
        ms = backoff_ms(WATCH_BASE_MS, WATCH_MAX_MS, w->failures++);
        if (t->why[0]) {
            log_warn("the search engine could not be probed: %s; again in %ld ms", t->why, ms);
        } else {
            for (size_t i = 0; i < t->nix; i++)
                if (t->ix[i].verdict != TARGET_OK)
                    log_warn("[table %s] index %s could not be probed: %s; again in %ld ms",
                             t->ix[i].table, t->ix[i].name, t->ix[i].why, ms);
        }
        uv_timer_start(&w->timer, on_watch_timer, (uint64_t)ms, 0);
        return;
    }
}

static void watch_probe(struct probe_watch *w)
{
    const struct config *cfg = w->app->cfg;

    if (w->probing || w->stopped)
        return;
    w->probing = true;
    if (target_probe(w->app->sink, &w->target,
                     &(struct target_probe_opts){ .aoss = aoss(cfg), .canary = cfg->sink.probe,
                                                  .create = true },
                     on_watch_probed, w) < 0) {
        w->probing = false;
        uv_timer_start(&w->timer, on_watch_timer, WATCH_BASE_MS, 0);
    }
}

static void on_unreachable(void *arg)
{
    struct probe_watch *w = arg;

    log_warn("the search engine did not answer: no bulk request goes out until it has been "
             "probed again");
    watch_probe(w);
}

struct probe_watch *probe_watch_start(struct app *app, void (*refused)(void *arg), void *arg)
{
    struct probe_watch *w = calloc(1, sizeof(*w));

    if (!w || target_of(app->cfg, &w->target) < 0) {
        if (w)
            target_free(&w->target);
        free(w);
        return NULL;
    }
    w->app = app;
    w->refused = refused;
    w->arg = arg;
    uv_timer_init(app->loop, &w->timer);
    sink_hold(app->sink);
    sink_on_unreachable(app->sink, on_unreachable, w);
    watch_probe(w);
    return w;
}

void probe_watch_stop(struct probe_watch *w)
{
    if (!w || w->stopped)
        return;
    w->stopped = true;
    sink_on_unreachable(w->app->sink, NULL, NULL);
    uv_close((uv_handle_t *)&w->timer, NULL);
}

void probe_watch_free(struct probe_watch *w)
{
    if (!w)
        return;
    target_free(&w->target);
    free(w);
}
