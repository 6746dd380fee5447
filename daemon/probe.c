#include "daemon/probe.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/leasetab.h"
#include "indexer/sink.h"

struct probe {
    struct app *app;
    void (*done)(void *arg, int exit_code);
    void *arg;
    unsigned pending;
    int exit_code;
};

struct table_probe {
    struct probe *p;
    const struct config_table *t;
    char *arn;
};

static void fail(struct probe *p, int code)
{
    /* Credentials and permissions (77) say more than "unavailable" (69). */
    if (p->exit_code != 77)
        p->exit_code = code;
}

static void finish_one(struct probe *p)
{
    if (--p->pending == 0) {
        void (*done)(void *, int) = p->done;
        void *arg = p->arg;
        int code = p->exit_code;

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

static void on_ping(void *arg, int rc)
{
    struct probe *p = arg;

    if (rc == 0) {
        printf("  sink %s: answered\n", p->app->cfg->sink.url);
    } else {
        printf("  sink %s: FAILED: %s\n", p->app->cfg->sink.url,
               rc < 0 ? strerror(-rc) : rc == 401 || rc == 403 ? "access refused" : "error");
        if (rc > 0)
            printf("    (HTTP %d)\n", rc);
        fail(p, rc == 401 || rc == 403 ? 77 : 69);
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
    p->pending++;
    if (sink_ping(app->sink, on_ping, p) < 0) {
        p->pending--;
        fail(p, 70);
    }
    finish_one(p);
    return 0;
}
