#include "daemon/clients.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "base/http.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/encstats.h"
#include "base/log.h"
#include "indexer/target.h"

#define AWS_MAX_CONNS 8 /* AWS requests at once, per endpoint */
#define TEMPLATE_MAX ((size_t)1 << 20) /* an index template's file, at most */

struct region_wait {
    bool done;
    int err;
    char region[64], why[512];
};

static void on_imds_region(int err, const char *region, const char *why, void *arg)
{
    struct region_wait *w = arg;

    w->done = true;
    w->err = err;
    snprintf(w->region, sizeof(w->region), "%s", region ? region : "");
    snprintf(w->why, sizeof(w->why), "%s", why ? why : "");
}

/* The region and endpoint settings but IMDS; 78 with the line in err when a
 * shared AWS config file cannot be read. */
static int load_settings(struct aws_settings *st, const struct config *cfg, char *err,
                         size_t errlen)
{
    char why[512];

    if (aws_settings_load(st, cfg->aws.region, cfg->aws.profile, cfg->aws.use_fips_endpoint,
                          cfg->aws.use_dualstack_endpoint, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "shared AWS config files: %s", why);
        return 78;
    }
    return 0;
}

/* [aws] allowed_regions against the region found (source: "AWS_REGION", ...). */
static int region_allowed(const struct config *cfg, const char *region, const char *source,
                          char *err, size_t errlen)
{
    if (!cfg->aws.allowed_regions.count || config_list_has(&cfg->aws.allowed_regions, region))
        return 0;
    return config_refuse(cfg, NULL, "aws", "allowed_regions", err, errlen,
                         "the region \"%s\" (from %s) is not in the list", region, source);
}

/* [aws] region, AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then
 * IMDS placement/region: the loop runs until IMDS has answered. */
static int resolve_region(struct clients *c, struct app *app, const struct config *cfg)
{
    struct aws_settings *st = &c->aws_settings;
    struct region_wait w = { 0 };
    char err[1024];
    int rc;

    if ((rc = load_settings(st, cfg, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return rc;
    }
    if (st->region[0]) {
        snprintf(c->region, sizeof(c->region), "%s", st->region);
        log_debug("region %s (from %s)", c->region, st->region_source);
        return 0;
    }
    rc = aws_region_from_imds(app->loop, app->http, cfg->aws.profile, on_imds_region, &w);
    while (rc == 0 && !w.done && uv_run(app->loop, UV_RUN_ONCE))
        ;
    if (rc < 0 || !w.done || w.err || !w.region[0]) {
        config_refuse(cfg, NULL, "aws", "region", err, sizeof(err),
                      "no AWS region: set [aws] region, AWS_REGION, AWS_DEFAULT_REGION or the "
                      "profile's region%s%s",
                      w.why[0] ? "; IMDS: " : "", w.why);
        fprintf(stderr, "ddb2es: %s\n", err);
        return 78;
    }
    snprintf(c->region, sizeof(c->region), "%s", w.region);
    log_info("region %s (from IMDS)", c->region);
    return 0;
}

/* Reads a table's index_template into t->index_template_body and checks it
 * is an index body (target_template_check).  0, 71, or 78 with the line. */
static int read_template(struct config *cfg, struct config_table *t, char *err, size_t errlen)
{
    FILE *f = fopen(t->index_template, "re");
    char *text = malloc(TEMPLATE_MAX + 1), why[512];
    size_t n = 0;
    int rc = 0;

    if (!text) {
        if (f)
            fclose(f);
        snprintf(err, errlen, "out of memory");
        return CONFIG_EX_OSERR;
    }
    if (!f) {
        rc = config_refuse(cfg, t, NULL, "index_template", err, errlen, "cannot read \"%s\": %s",
                           t->index_template, strerror(errno));
        goto out;
    }
    n = fread(text, 1, TEMPLATE_MAX + 1, f);
    text[n <= TEMPLATE_MAX ? n : TEMPLATE_MAX] = '\0';
    if (ferror(f))
        rc = config_refuse(cfg, t, NULL, "index_template", err, errlen, "cannot read \"%s\": %s",
                           t->index_template, strerror(errno));
    else if (n > TEMPLATE_MAX)
        rc = config_refuse(cfg, t, NULL, "index_template", err, errlen,
                           "\"%s\" is over 1 MiB", t->index_template);
    else if (target_template_check(text, n, why, sizeof(why)) < 0)
        rc = config_refuse(cfg, t, NULL, "index_template", err, errlen, "\"%s\": %s",
                           t->index_template, why);
    fclose(f);
    if (rc == 0) {
        free(t->index_template_body);
        t->index_template_body = text;
        text = NULL;
    }
out:
    free(text);
    return rc;
}

int clients_preflight(struct config *cfg, const char *only_table, char *err, size_t errlen)
{
    struct aws_settings st;
    int rc;

    if ((rc = config_check_transport(cfg, err, errlen)) != 0 ||
        (rc = config_read_secrets(cfg, only_table, err, errlen)) != 0)
        return rc;
    for (size_t i = 0; i < cfg->ntables; i++)
        if (cfg->tables[i].index_template && (!only_table || strcmp(only_table,
                                                                     cfg->tables[i].name) == 0) &&
            (rc = read_template(cfg, &cfg->tables[i], err, errlen)) != 0)
            return rc;
    if ((rc = load_settings(&st, cfg, err, errlen)) != 0)
        return rc;
    if (st.region[0])
        rc = region_allowed(cfg, st.region, st.region_source, err, errlen);
    aws_settings_close(&st);
    return rc;
}

int clients_open(struct clients *c, struct app *app, const char *dlq_path, sink_done_cb *done,
                 sink_resume_cb *resume, void *arg)
{
    const struct config *cfg = app->cfg;
    char err[1024];
    int rc;
    static const enum sink_auth auth_map[] = { [CONFIG_AUTH_SIGV4] = SINK_AUTH_SIGV4,
                                               [CONFIG_AUTH_BASIC] = SINK_AUTH_BASIC,
                                               [CONFIG_AUTH_APIKEY] = SINK_AUTH_APIKEY,
                                               [CONFIG_AUTH_NONE] = SINK_AUTH_NONE };

    if ((cfg->sink.auth == CONFIG_AUTH_BASIC && !cfg->sink.password) ||
        (cfg->sink.auth == CONFIG_AUTH_APIKEY && !cfg->sink.api_key)) {
        fprintf(stderr, "ddb2es: the sink's secret was not read (clients_preflight)\n");
        return 70;
    }
    if (!cfg->sink.tls_verify)
        log_warn("[sink] tls_verify = false: the search engine's TLS certificate is NOT checked");

    /* Two clients: the sink's TLS settings never weaken the AWS calls.  At
     * most AWS_MAX_CONNS AWS requests run at once; with a thousand shards
     * the others wait in curl's queue, so neither the connections nor the
     * GetRecords replies held at once (up to 1 MB each) grow with the shards. */
    app->http = http_new(app->loop, &(struct http_opts){ .tls_verify = true,
                                                         .max_host_conns = AWS_MAX_CONNS });
    app->sink_http = http_new(app->loop, &(struct http_opts){ .tls_verify = cfg->sink.tls_verify,
                                                              .ca_file = cfg->sink.ca_file });
    if (!app->http || !app->sink_http) {
        fprintf(stderr, "ddb2es: cannot set up the HTTP client\n");
        return 70;
    }
    if ((rc = resolve_region(c, app, cfg)) != 0)
        return rc;
    if ((rc = region_allowed(cfg, c->region,
                             c->aws_settings.region_source ? c->aws_settings.region_source
                                                           : "IMDS",
                             err, sizeof(err))) != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return rc;
    }
    app->creds = creds_new(app->loop, app->http,
                           &(struct creds_opts){ .profile = cfg->aws.profile,
                                                 .region = c->region,
                                                 .use_fips = c->aws_settings.use_fips,
                                                 .use_dualstack = c->aws_settings.use_dualstack });
    app->aws = app->creds
                   ? aws_new(app->loop, app->http, app->creds,
                             &(struct aws_opts){
                                 .region = c->region,
                                 .endpoint_dynamodb = cfg->aws.endpoint,
                                 .endpoint_streams = cfg->aws.endpoint,
                                 .profile_endpoint_dynamodb = c->aws_settings.endpoint_dynamodb,
                                 .profile_endpoint_streams = c->aws_settings.endpoint_streams,
                                 .use_fips = c->aws_settings.use_fips,
                                 .use_dualstack = c->aws_settings.use_dualstack })
                   : NULL;
    if (!app->aws) {
        fprintf(stderr, "ddb2es: cannot set up the AWS clients (see the log above)\n");
        return 70;
    }
    {
        char sink_region[64];
        struct sink_opts so = {
            .url = cfg->sink.url,
            .auth = auth_map[cfg->sink.auth],
            .username = cfg->sink.username,
            .password = cfg->sink.password,
            .api_key = cfg->sink.api_key,
            .sigv4_service = cfg->sink.sigv4_service ? cfg->sink.sigv4_service : "es",
            .sigv4_region = config_sink_region(cfg->sink.url, sink_region, sizeof(sink_region))
                                ? sink_region
                                : c->region,
            .bulk_max_actions = (size_t)cfg->sink.bulk_max_actions,
            .bulk_max_bytes = cfg->sink.bulk_max_bytes,
            .flush_interval_ms = (long)cfg->sink.flush_interval_ms,
            .concurrency = cfg->sink.concurrency,
            .gzip = cfg->sink.compression == CONFIG_COMP_GZIP,
            /* A dry run writes nothing: dead letters are only logged. */
            .dlq_path = app->dry_run ? NULL : dlq_path ? dlq_path : cfg->sink.dlq_path,
            .request_timeout_ms = (long)cfg->sink.request_timeout_ms,
            .max_backoff_ms = (long)cfg->sink.max_retry_backoff_ms,
            .tombstone_ttl_ms = (long)cfg->sink.tombstone_ttl_ms,
            .tombstone_max = (size_t)cfg->sink.tombstone_max,
            .max_queue_bytes = cfg->daemon.max_queue_bytes,
            .version_type = "external",
            .dry_run = app->dry_run,
            .ping_index = cfg->ntables ? cfg->tables[0].index : NULL,
        };

        app->sink = sink_new(app->loop, app->sink_http, app->creds, &so, done, resume, arg);
        for (size_t i = 0; app->sink && i < cfg->ntables; i++)
            if (cfg->tables[i].type_conflicts == CONFIG_CONFLICTS_SIDE &&
                sink_set_conflicts(app->sink, cfg->tables[i].index,
                                   cfg->tables[i].conflicts_field) < 0) {
                sink_free(app->sink);
                app->sink = NULL;
            }
    }
    if (!app->sink) {
        fprintf(stderr, "ddb2es: cannot set up the sink for %s\n", cfg->sink.url);
        return 70;
    }
    return 0;
}

static void on_http_closed(void *arg)
{
    struct clients *c = arg;

    if (--c->open_http == 0 && c->closed)
        c->closed(c->closed_arg);
}

void clients_take_down(struct clients *c, struct app *app, void (*closed)(void *arg), void *arg)
{
    aws_free(app->aws);
    app->aws = NULL;
    creds_free(app->creds);
    app->creds = NULL;
    c->closed = closed;
    c->closed_arg = arg;
    c->open_http = 2;
    http_close(app->http, on_http_closed, c);
    http_close(app->sink_http, on_http_closed, c);
}

void clients_close(struct clients *c)
{
    aws_settings_close(&c->aws_settings);
    encstats_free_all();
}

int clients_transform_cfg(const struct config_table *t, struct transform_cfg *tf,
                          unsigned char **key, char *err, size_t errlen)
{
    char *k = NULL;

    memset(tf, 0, sizeof(*tf));
    *key = NULL;
    tf->index = t->index;
    tf->id_sep = t->id_separator;
    tf->on_ttl_delete = t->on_ttl_delete == CONFIG_TTL_KEEP ? TRANSFORM_TTL_KEEP
                                                            : TRANSFORM_TTL_DELETE;
    tf->include = (const char *const *)t->include.items;
    tf->n_include = t->include.count;
    tf->exclude = (const char *const *)t->exclude.items;
    tf->n_exclude = t->exclude.count;
    tf->hmac = (const char *const *)t->hmac.items;
    tf->n_hmac = t->hmac.count;
    tf->encrypted = t->encrypted_items == CONFIG_ENCRYPTED_AS_IS ? TRANSFORM_ENCRYPTED_AS_IS
                                                                 : TRANSFORM_ENCRYPTED_PLAINTEXT;
    if (tf->encrypted == TRANSFORM_ENCRYPTED_PLAINTEXT && encstats_attach(tf, t->name) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (!t->hmac.count)
        return 0;
    if (!t->hmac_key) {
        snprintf(err, errlen, "the key was not read (clients_preflight)");
        return -EINVAL;
    }
    if (!(k = strdup(t->hmac_key))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *key = (unsigned char *)k;
    tf->hmac_key = *key;
    tf->hmac_key_len = strlen(k);
    return 0;
}

void clients_tf_key_free(unsigned char *key, size_t len)
{
    if (key) {
        OPENSSL_cleanse(key, len);
        free(key);
    }
}

static void close_left(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void clients_take_down_now(struct app *app)
{
    if (app->sink) {
        sink_close(app->sink, 0, NULL, NULL);
        uv_run(app->loop, UV_RUN_DEFAULT);
    }
    aws_free(app->aws);
    app->aws = NULL;
    creds_free(app->creds);
    app->creds = NULL;
    if (app->http)
        http_close(app->http, NULL, NULL);
    if (app->sink_http)
        http_close(app->sink_http, NULL, NULL);
    uv_walk(app->loop, close_left, NULL);
    uv_run(app->loop, UV_RUN_DEFAULT);
}
