#include "daemon/run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/http.h"
#include "aws/region.h"
#include "config/config.h"
#include "aws/util.h"
#include "daemon/app.h"
#include "daemon/ckpt.h"
#include "daemon/health.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/probe.h"
#include "daemon/reader.h"
#include "daemon/version.h"
#include "indexer/sink.h"

#define PRUNE_EVERY_MS (60 * 60 * 1000)
#define AWS_MAX_CONNS 8           /* AWS requests at once, per endpoint */

struct run {
    struct app app;
    uv_signal_t sigterm, sigint;
    uv_timer_t ckpt_timer;
    uv_timer_t stop_timer;
    struct health *health;   /* sd_notify, /healthz, /readyz */
    struct metrics *metrics; /* NULL when metrics_listen is empty */
    int lock_fd;
    int http_closed;
    bool checking;       /* `ddb2es check`: probe, then stop */
    int exit_code;
    unsigned readers_running;
    bool sink_closed;
    bool finishing;
    uint64_t last_prune;
    char *password, *api_key;
    char region[64];
    struct aws_settings aws_settings;
};

static time_t wall_now(void)
{
    return time(NULL);
}

static void on_saved(struct ckpt *ck, int status, void *arg)
{
    struct run *run = arg;

    if (status == 0) {
        run->app.checkpoint_writes++;
        return;
    }
    run->app.checkpoint_failures++;
    log_error("cannot write the checkpoint file %s: %s; the previous one is intact, retrying",
              ckpt_path(ck), strerror(-status));
}

static void checkpoint_now(struct run *run)
{
    struct app *app = &run->app;

    for (size_t i = 0; i < app->nreaders; i++)
        reader_checkpoint(app->readers[i]);
    if (uv_now(app->loop) - run->last_prune >= PRUNE_EVERY_MS) {
        run->last_prune = uv_now(app->loop);
        ckpt_prune(app->ckpt, app->now());
    }
    if (ckpt_dirty(app->ckpt) && !ckpt_busy(app->ckpt))
        ckpt_save_async(app->ckpt, app->loop, on_saved, run);
}

static void on_ckpt_timer(uv_timer_t *t)
{
    checkpoint_now(container_of(t, struct run, ckpt_timer));
}

static void on_sink_resume(void *arg)
{
    struct run *run = arg;

    for (size_t i = 0; i < run->app.nreaders; i++)
        reader_resume(run->app.readers[i]);
}

/* ---- stopping --------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_http_closed(void *arg)
{
    struct run *run = arg;

    if (++run->http_closed < 2)
        return;
    close_handle((uv_handle_t *)&run->sigterm);
    close_handle((uv_handle_t *)&run->sigint);
    close_handle((uv_handle_t *)&run->ckpt_timer);
    close_handle((uv_handle_t *)&run->stop_timer);
    health_close(run->health);
    metrics_close(run->metrics);
}

static void wait_for_save(uv_timer_t *t);

/* Everything read has finished or was cancelled: write the checkpoint, then
 * take the clients down. */
static void finish(struct run *run)
{
    struct app *app = &run->app;
    int rc;

    if (run->finishing || !run->sink_closed || run->readers_running)
        return;
    if (ckpt_busy(app->ckpt)) { /* let the write in flight end first */
        uv_timer_start(&run->stop_timer, wait_for_save, 10, 0);
        return;
    }
    run->finishing = true;
    for (size_t i = 0; i < app->nreaders; i++)
        reader_checkpoint(app->readers[i]);
    rc = ckpt_save_sync(app->ckpt);
    if (rc < 0) {
        log_error("cannot write the checkpoint file %s at stop: %s", ckpt_path(app->ckpt),
                  strerror(-rc));
        run->exit_code = 74;
    } else {
        app->checkpoint_writes++;
    }
    aws_free(app->aws);
    app->aws = NULL;
    creds_free(app->creds);
    app->creds = NULL;
    http_close(app->http, on_http_closed, run);
    http_close(app->sink_http, on_http_closed, run);
}

static void wait_for_save(uv_timer_t *t)
{
    finish(container_of(t, struct run, stop_timer));
}

static void on_sink_closed(void *arg)
{
    struct run *run = arg;

    run->sink_closed = true;
    finish(run);
}

static void on_reader_stopped(void *arg)
{
    struct run *run = arg;

    run->readers_running--;
    finish(run);
}

static void begin_stop(struct run *run, const char *why)
{
    struct app *app = &run->app;
    long deadline = (long)app->cfg->daemon.shutdown_timeout_ms;

    if (app->stopping)
        return;
    log_info("%s: stopping (finishing requests in flight, at most %ld ms)", why, deadline);
    app->stopping = true;
    health_stopping(run->health);
    uv_timer_stop(&run->ckpt_timer);
    run->readers_running = (unsigned)app->nreaders;
    for (size_t i = 0; i < app->nreaders; i++)
        reader_stop(app->readers[i], on_reader_stopped, run);
    /* Leave a second for the final checkpoint write. */
    sink_close(app->sink, deadline > 2000 ? deadline - 1000 : deadline / 2, on_sink_closed, run);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct run *run = h->data;

    begin_stop(run, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- start ------------------------------------------------------------ */

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

/* [aws] region, AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then
 * IMDS placement/region: the loop runs until IMDS has answered. */
static int resolve_region(struct run *run, const struct config *cfg)
{
    struct aws_settings *st = &run->aws_settings;
    struct region_wait w = { 0 };
    char why[512];
    int rc;

    if (aws_settings_load(st, cfg->aws.region, cfg->aws.profile, cfg->aws.use_fips_endpoint,
                          cfg->aws.use_dualstack_endpoint, why, sizeof(why)) < 0) {
        fprintf(stderr, "ddb2es: shared AWS config files: %s\n", why);
        return 78;
    }
    if (st->region[0]) {
        snprintf(run->region, sizeof(run->region), "%s", st->region);
        log_debug("region %s (from %s)", run->region, st->region_source);
        return 0;
    }
    rc = aws_region_from_imds(run->app.loop, run->app.http, cfg->aws.profile, on_imds_region, &w);
    while (rc == 0 && !w.done && uv_run(run->app.loop, UV_RUN_ONCE))
        ;
    if (rc < 0 || !w.done || w.err || !w.region[0]) {
        fprintf(stderr, "ddb2es: no AWS region: set [aws] region, AWS_REGION, AWS_DEFAULT_REGION "
                        "or the profile's region%s%s\n",
                w.why[0] ? "; IMDS: " : "", w.why);
        return 78;
    }
    snprintf(run->region, sizeof(run->region), "%s", w.region);
    log_info("region %s (from IMDS)", run->region);
    return 0;
}

static int read_secrets(struct run *run, const struct config *cfg)
{
    char err[512];

    if (cfg->sink.auth == CONFIG_AUTH_BASIC &&
        config_read_secret(cfg->sink.password_file, &run->password, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddb2es: [sink] password_file: %s\n", err);
        return 78;
    }
    if (cfg->sink.auth == CONFIG_AUTH_APIKEY &&
        config_read_secret(cfg->sink.api_key_file, &run->api_key, err, sizeof(err)) != 0) {
        fprintf(stderr, "ddb2es: [sink] api_key_file: %s\n", err);
        return 78;
    }
    return 0;
}

static int start(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;
    char err[1024];
    int rc;
    static const enum sink_auth auth_map[] = { [CONFIG_AUTH_SIGV4] = SINK_AUTH_SIGV4,
                                               [CONFIG_AUTH_BASIC] = SINK_AUTH_BASIC,
                                               [CONFIG_AUTH_APIKEY] = SINK_AUTH_APIKEY,
                                               [CONFIG_AUTH_NONE] = SINK_AUTH_NONE };

    if ((rc = config_check_transport(cfg, err, sizeof(err))) != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return rc;
    }
    /* `check` reads the checkpoint file to validate it, without the lock:
     * it must work beside a running daemon. */
    rc = run->checking ? 0 : ckpt_lock(cfg->daemon.state_dir, &run->lock_fd);
    if (rc == -EWOULDBLOCK) {
        fprintf(stderr, "ddb2es: %s is in use by another ddb2es process (lock %s/%s)\n",
                cfg->daemon.state_dir, cfg->daemon.state_dir, CKPT_LOCK_FILE);
        return 73;
    }
    if (rc < 0) {
        fprintf(stderr, "ddb2es: cannot create the state directory %s: %s\n",
                cfg->daemon.state_dir, strerror(-rc));
        return 73;
    }
    app->ckpt = ckpt_new(cfg->daemon.state_dir);
    if (!app->ckpt)
        return 70;
    rc = ckpt_load(app->ckpt, err, sizeof(err));
    if (rc == -EBADMSG) {
        fprintf(stderr, "ddb2es: %s (refusing to start from scratch; move the file away to "
                        "start over)\n",
                err);
        return 65;
    }
    if (rc < 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return 74;
    }
    if ((rc = read_secrets(run, cfg)) != 0)
        return rc;
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
    if ((rc = resolve_region(run, cfg)) != 0)
        return rc;
    if (cfg->aws.allowed_regions.count && !config_list_has(&cfg->aws.allowed_regions, run->region)) {
        fprintf(stderr, "ddb2es: [aws] allowed_regions: the region \"%s\" (from %s) is not in "
                        "the list\n",
                run->region, run->aws_settings.region_source ? run->aws_settings.region_source
                                                             : "IMDS");
        return 78;
    }
    app->creds = creds_new(app->loop, app->http,
                           &(struct creds_opts){ .profile = cfg->aws.profile,
                                                 .region = run->region,
                                                 .use_fips = run->aws_settings.use_fips,
                                                 .use_dualstack = run->aws_settings.use_dualstack });
    app->aws = app->creds
                   ? aws_new(app->loop, app->http, app->creds,
                             &(struct aws_opts){
                                 .region = run->region,
                                 .endpoint_dynamodb = cfg->aws.endpoint,
                                 .endpoint_streams = cfg->aws.endpoint,
                                 .profile_endpoint_dynamodb = run->aws_settings.endpoint_dynamodb,
                                 .profile_endpoint_streams = run->aws_settings.endpoint_streams,
                                 .use_fips = run->aws_settings.use_fips,
                                 .use_dualstack = run->aws_settings.use_dualstack })
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
            .password = run->password,
            .api_key = run->api_key,
            .sigv4_service = cfg->sink.sigv4_service ? cfg->sink.sigv4_service : "es",
            .sigv4_region = config_sink_region(cfg->sink.url, sink_region, sizeof(sink_region))
                                ? sink_region
                                : run->region,
            .bulk_max_actions = (size_t)cfg->sink.bulk_max_actions,
            .bulk_max_bytes = cfg->sink.bulk_max_bytes,
            .flush_interval_ms = (long)cfg->sink.flush_interval_ms,
            .concurrency = cfg->sink.concurrency,
            .gzip = cfg->sink.compression == CONFIG_COMP_GZIP,
            .dlq_path = cfg->sink.dlq_path,
            .request_timeout_ms = (long)cfg->sink.request_timeout_ms,
            .max_backoff_ms = (long)cfg->sink.max_retry_backoff_ms,
            .max_queue_bytes = cfg->daemon.max_queue_bytes,
            .version_type = "external",
            .dry_run = app->dry_run,
        };

        app->sink = sink_new(app->loop, app->sink_http, app->creds, &so, reader_doc_done,
                             on_sink_resume, run);
    }
    if (!app->sink) {
        fprintf(stderr, "ddb2es: cannot set up the sink for %s\n", cfg->sink.url);
        return 70;
    }
    if (run->checking)
        return 0;
    app->readers = calloc(cfg->ntables, sizeof(*app->readers));
    if (!app->readers)
        return 70;
    for (size_t i = 0; i < cfg->ntables; i++) {
        app->readers[i] = reader_new(app, &cfg->tables[i]);
        if (!app->readers[i]) {
            fprintf(stderr, "ddb2es: [table %s]: cannot set up its reader (see above)\n",
                    cfg->tables[i].name);
            return 78;
        }
        app->nreaders++;
    }
    return 0;
}

/* The service manager's notifications and the metrics endpoint. */
static int start_ops(struct run *run, const struct config *cfg)
{
    char err[256];
    int rc;

    run->health = health_new(&run->app);
    rc = run->health ? health_start(run->health) : -ENOMEM;
    if (rc == 0 && cfg->daemon.metrics_listen && *cfg->daemon.metrics_listen) {
        run->metrics = metrics_new(&run->app, run->health);
        rc = run->metrics ? metrics_listen(run->metrics, cfg->daemon.metrics_listen, err,
                                           sizeof(err))
                          : -ENOMEM;
        if (rc < 0 && rc != -ENOMEM) {
            fprintf(stderr, "ddb2es: [daemon] metrics_listen: %s\n", err);
            rc = 78;
        } else if (rc == 0) {
            log_info("metrics on http://%s/metrics", cfg->daemon.metrics_listen);
        }
    }
    if (rc == 0)
        return 0;
    /* Their timers would keep the loop of the failed start running. */
    health_close(run->health);
    metrics_close(run->metrics);
    return rc == 78 ? 78 : 70;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_probe_done(void *arg, int exit_code)
{
    struct run *run = arg;

    run->exit_code = exit_code;
    uv_stop(run->app.loop);
}

static int run_main(const struct config *cfg, bool dry_run, bool checking)
{
    struct run *run = calloc(1, sizeof(*run));
    uv_loop_t loop;
    int rc;

    if (!run || uv_loop_init(&loop) != 0) {
        free(run);
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    run->lock_fd = -1;
    run->app.loop = &loop;
    run->app.cfg = cfg;
    run->app.dry_run = dry_run;
    run->app.now = wall_now;
    uv_signal_init(&loop, &run->sigterm);
    uv_signal_init(&loop, &run->sigint);
    uv_timer_init(&loop, &run->ckpt_timer);
    uv_timer_init(&loop, &run->stop_timer);
    run->sigterm.data = run->sigint.data = run;
    run->checking = checking;

    rc = start(run, cfg);
    if (rc == 0 && checking) {
        /* `check`: reach everything once, then take it all down below. */
        rc = probe_run(&run->app, on_probe_done, run) == 0 ? -1 : 70;
        if (rc == -1) {
            uv_run(&loop, UV_RUN_DEFAULT);
            rc = run->exit_code;
        }
        if (rc == 0)
            printf("everything answered\n");
    } else if (rc == 0) {
        rc = start_ops(run, cfg);
    }
    if (rc == 0 && !checking) {
        log_info("ddb2es %s: %zu table(s), sink %s, state in %s", DDB2ES_VERSION, cfg->ntables,
                 cfg->sink.url, cfg->daemon.state_dir);
        uv_signal_start(&run->sigterm, on_signal, SIGTERM);
        uv_signal_start(&run->sigint, on_signal, SIGINT);
        /* 0 means "at every advance": look every 20 ms. */
        uint64_t every = cfg->daemon.checkpoint_interval_ms > 20
                             ? (uint64_t)cfg->daemon.checkpoint_interval_ms
                             : 20;

        uv_timer_start(&run->ckpt_timer, on_ckpt_timer, every, every);
        run->last_prune = uv_now(&loop);
        for (size_t i = 0; i < run->app.nreaders; i++)
            reader_start(run->app.readers[i]);
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = run->exit_code;
        if (rc == 0)
            log_info("stopped cleanly");
    } else {
        /* Start-up failed, or `check` is done: take down what was set up. */
        struct app *app = &run->app;

        if (app->sink) {
            sink_close(app->sink, 0, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        aws_free(app->aws);
        creds_free(app->creds);
        if (app->http)
            http_close(app->http, NULL, NULL);
        if (app->sink_http)
            http_close(app->sink_http, NULL, NULL);
        uv_walk(&loop, walk_close, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    for (size_t i = 0; i < run->app.nreaders; i++)
        reader_free(run->app.readers[i]);
    free(run->app.readers);
    sink_free(run->app.sink);
    metrics_free(run->metrics);
    health_free(run->health);
    ckpt_free(run->app.ckpt);
    ckpt_unlock(run->lock_fd);
    if (uv_loop_close(&loop) != 0)
        log_warn("event loop closed with handles still open");
    if (run->password) {
        explicit_bzero(run->password, strlen(run->password));
        free(run->password);
    }
    if (run->api_key) {
        explicit_bzero(run->api_key, strlen(run->api_key));
        free(run->api_key);
    }
    aws_settings_close(&run->aws_settings);
    free(run);
    log_flush();
    return rc;
}

int run_daemon(const struct config *cfg, bool dry_run)
{
    return run_main(cfg, dry_run, false);
}

int run_check(const struct config *cfg)
{
    return run_main(cfg, false, true);
}
