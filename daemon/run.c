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
#include "base/http.h"
#include "aws/region.h"
#include "config/config.h"
#include "base/util.h"
#include "daemon/app.h"
#include "daemon/ckpt.h"
#include "daemon/clients.h"
#include "daemon/health.h"
#include "daemon/lease.h"
#include "base/log.h"
#include "daemon/metrics.h"
#include "daemon/mirror.h"
#include "daemon/probe.h"
#include "daemon/reader.h"
#include "daemon/shard.h"
#include "daemon/slots.h"
#include "daemon/statedir.h"
#include "base/version.h"
#include "indexer/sink.h"

#define PRUNE_EVERY_MS (60 * 60 * 1000)

struct run {
    struct app app;
    uv_signal_t sigterm, sigint;
    uv_timer_t ckpt_timer;
    uv_timer_t stop_timer;
    struct health *health;   /* sd_notify, /healthz, /readyz */
    struct probe_watch *watch; /* the target probe: at start, after the engine was unreachable */
    struct metrics *metrics; /* NULL when metrics_listen is empty */
    struct mirror_watch *mirror; /* `ddb2es rebuild`'s requests (mirror.h) */
    int lock_fd;
    bool checking;       /* `ddb2es check`: probe, then stop */
    int exit_code;
    unsigned readers_running;
    bool sink_closed;
    bool finishing;
    uint64_t last_prune;
    struct clients clients;
    struct reader_timing reader_timing; /* the default's, with [daemon] stream_settle */
    /* [leases] (daemon/lease.h): the coordinator is app.lease */
    struct lease_opts lease_opts;       /* its strings point into cfg and clients */
    int lease_ready;                    /* -1 until lease_start's callback ran */
    char lease_why[512];
    bool seeded;
    int seed_status;
    size_t seed_created;
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

    /* A dry run indexes nothing: the position it reached is not one. */
    if (app->dry_run)
        return;
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

static void on_clients_closed(void *arg)
{
    struct run *run = arg;

    close_handle((uv_handle_t *)&run->sigterm);
    close_handle((uv_handle_t *)&run->sigint);
    close_handle((uv_handle_t *)&run->ckpt_timer);
    close_handle((uv_handle_t *)&run->stop_timer);
    probe_watch_stop(run->watch);
    health_close(run->health);
    metrics_close(run->metrics);
}

static void wait_for_save(uv_timer_t *t);

static void on_lease_closed(void *arg)
{
    struct run *run = arg;

    clients_take_down(&run->clients, &run->app, on_clients_closed, run);
}

/* SIGTERM: the checkpoints are in the table; the leases are released (owner
 * cleared) so that the others take them at once. */
static void on_leases_released(void *arg)
{
    struct run *run = arg;

    log_info("lease table %s: leases released", lease_table(run->app.lease));
    lease_close(run->app.lease, on_lease_closed, run);
}

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
    rc = app->dry_run ? 0 : ckpt_save_sync(app->ckpt);
    if (app->dry_run) {
        log_info("dry run: the checkpoint file %s was not written", ckpt_path(app->ckpt));
    } else if (rc < 0) {
        log_error("cannot write the checkpoint file %s at stop: %s", ckpt_path(app->ckpt),
                  strerror(-rc));
        run->exit_code = 74;
    } else {
        app->checkpoint_writes++;
    }
    if (app->lease) {
        lease_release_all(app->lease, on_leases_released, run);
        return;
    }
    clients_take_down(&run->clients, app, on_clients_closed, run);
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
    probe_watch_stop(run->watch);
    mirror_watch_stop(run->mirror);
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

/* The target probe found an index that cannot mirror its table (logged). */
static void on_target_refused(void *arg)
{
    struct run *run = arg;

    run->exit_code = 78;
    begin_stop(run, "the search engine cannot mirror the tables (see above)");
}

/* ---- leases ([leases]: several processes share the shards) -------------- */

static struct reader *reader_of(struct run *run, const char *table)
{
    for (size_t i = 0; i < run->app.nreaders; i++)
        if (strcmp(reader_table(run->app.readers[i]), table) == 0)
            return run->app.readers[i];
    return NULL;
}

static void on_lease_gained(const char *table, const char *arn, const char *shard, void *arg)
{
    struct reader *r = reader_of(arg, table);

    if (r)
        reader_lease_gained(r, arn, shard);
}

static void on_lease_lost(const char *table, const char *arn, const char *shard, const char *why,
                          void *arg)
{
    struct reader *r = reader_of(arg, table);

    if (r)
        reader_lease_lost(r, arn, shard, why);
}

static void on_lease_yield(const char *table, const char *arn, const char *shard, void *arg)
{
    struct run *run = arg;
    struct reader *r = reader_of(run, table);

    if (r)
        reader_lease_yield(r, arn, shard);
    else if (!run->app.stopping)
        lease_give_back(run->app.lease, arn, shard); /* not a table of this configuration */
}

static void on_lease_state(enum lease_state st, const char *why, void *arg)
{
    switch (st) {
    case LEASE_OK:
        log_info("lease table: renewing again%s%s", *why ? ": " : "", why);
        break;
    case LEASE_STALE:
        log_error("lease table: %s; the leases are given up and reading stops until it answers "
                  "(not ready)",
                  *why ? why : "no renewal succeeded for lease_duration");
        break;
    case LEASE_FATAL:
        log_error("lease table: %s; this process takes no more leases (not ready)", why);
        break;
    case LEASE_STARTING:
    case LEASE_STOPPED:
        break;
    }
}

static void on_lease_ready(int status, const char *why, void *arg)
{
    struct run *run = arg;

    run->lease_ready = status;
    snprintf(run->lease_why, sizeof(run->lease_why), "%s", why);
}

static void on_seeded(int status, size_t created, size_t existed, void *arg)
{
    struct run *run = arg;

    run->seeded = true;
    run->seed_status = status;
    run->seed_created = created;
}

/* Runs the loop until *flag is set (the lease table's first calls, before
 * the readers start). */
static void run_until(struct run *run, const bool *flag, const int *status)
{
    while (!(flag ? *flag : *status >= 0))
        uv_run(run->app.loop, UV_RUN_ONCE);
}

/* A state directory's checkpoints.json seeds the lease table (an item only
 * where none exists), then is renamed checkpoints.json.seeded: the table
 * holds the positions from now on, and a stale file can never seed again. */
static int seed_from_file(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;
    struct ckpt *file = ckpt_new(cfg->daemon.state_dir);
    char err[1024], path[4096], to[4200];
    uint64_t reads;
    int rc;

    if (!file)
        return 70;
    rc = ckpt_load(file, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ddb2es: %s (the lease table is seeded from it; refusing to start)\n",
                err);
        ckpt_free(file);
        return rc == -EBADMSG ? 65 : 74;
    }
    if (ckpt_count(file) == 0) {
        ckpt_free(file);
        return 0;
    }
    if (lease_seed(app->lease, file, on_seeded, run) < 0) {
        ckpt_free(file);
        return 70;
    }
    run_until(run, &run->seeded, NULL);
    ckpt_free(file);
    if (run->seed_status < 0) {
        fprintf(stderr, "ddb2es: lease table %s: seeding from %s/%s failed: %s\n",
                cfg->leases.table, cfg->daemon.state_dir, CKPT_FILE,
                strerror(-run->seed_status));
        return 69;
    }
    snprintf(path, sizeof(path), "%s/%s", cfg->daemon.state_dir, CKPT_FILE);
    snprintf(to, sizeof(to), "%s.seeded", path);
    if (rename(path, to) != 0)
        log_warn("cannot rename %s to %s: %s (seeding again later creates nothing the table "
                 "holds)",
                 path, to, strerror(errno));
    else
        log_info("%s seeded the lease table %s and is now %s", path, cfg->leases.table, to);
    /* The next read of the table holds what was created. */
    reads = lease_metrics(app->lease)->reads;
    while (run->seed_created && lease_metrics(app->lease)->reads == reads &&
           lease_state(app->lease, NULL) != LEASE_FATAL)
        uv_run(app->loop, UV_RUN_ONCE);
    return 0;
}

/* Coordinated mode: the coordinator, its checkpoint store, the lease table
 * ensured, the first read done, seeding, then the store loaded. */
static int start_leases(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;
    struct lease_opts *o = &run->lease_opts;
    char err[1024];
    int rc;

    *o = (struct lease_opts){
        .table = cfg->leases.table,
        .worker_id = cfg->leases.worker_id,
        .duration_ms = cfg->leases.lease_duration_ms,
        .create_table = cfg->leases.create_table,
        .conn = {
            .aws = { .region = run->clients.region,
                     .endpoint_dynamodb = cfg->aws.endpoint,
                     .endpoint_streams = cfg->aws.endpoint,
                     .profile_endpoint_dynamodb = run->clients.aws_settings.endpoint_dynamodb,
                     .profile_endpoint_streams = run->clients.aws_settings.endpoint_streams,
                     .use_fips = run->clients.aws_settings.use_fips,
                     .use_dualstack = run->clients.aws_settings.use_dualstack },
            .creds = { .profile = cfg->aws.profile,
                       .region = run->clients.region,
                       .use_fips = run->clients.aws_settings.use_fips,
                       .use_dualstack = run->clients.aws_settings.use_dualstack },
        },
    };
    app->lease = lease_new(app->loop, app->aws, o,
                           &(struct lease_cbs){ .gained = on_lease_gained,
                                                .lost = on_lease_lost,
                                                .yield = on_lease_yield,
                                                .state = on_lease_state,
                                                .arg = run });
    if (!app->lease || !(app->ckpt = ckpt_lease_new(app->lease)))
        return 70;
    run->lease_ready = -1;
    if (lease_start(app->lease, on_lease_ready, run) < 0)
        return 70;
    run_until(run, NULL, &run->lease_ready);
    if (run->lease_ready != 0) {
        fprintf(stderr, "ddb2es: [leases] table: %s\n", run->lease_why);
        return run->lease_ready;
    }
    log_info("lease table %s: worker %s, lease_duration %lld ms", cfg->leases.table,
             cfg->leases.worker_id, (long long)cfg->leases.lease_duration_ms);
    if ((rc = seed_from_file(run, cfg)) != 0)
        return rc;
    rc = ckpt_load(app->ckpt, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return rc == -EBADMSG ? 65 : 74;
    }
    return 0;
}

/* ---- start ------------------------------------------------------------ */

static int start_readers(struct run *run, const struct config *cfg);

/* [leases]: the clients first (the coordinator calls DynamoDB with them),
 * the readers (the coordinator's first read may tell them of leases), then
 * the lease table and the store on it. */
static int start_coordinated(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;
    int rc;

    if ((rc = clients_open(&run->clients, app, NULL, shard_doc_done, on_sink_resume, run)) != 0)
        return rc;
    if ((rc = start_readers(run, cfg)) != 0)
        return rc;
    return start_leases(run, cfg);
}

static int start(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;
    char err[1024];
    int rc;

    /* main ran clients_preflight: transport, secret files, region. */
    /* `check` reads the checkpoint file to validate it, without the lock:
     * it must work beside a running daemon.  So does a dry run, which starts
     * where the checkpoint says and never writes it. */
    rc = run->checking || app->dry_run ? 0 : statedir_lock(cfg->daemon.state_dir, &run->lock_fd);
    if (rc == -EWOULDBLOCK) {
        fprintf(stderr, "ddb2es: %s is in use by another ddb2es process (lock %s/%s)\n",
                cfg->daemon.state_dir, cfg->daemon.state_dir, STATEDIR_LOCK_FILE);
        return 73;
    }
    if (rc < 0) {
        fprintf(stderr, "ddb2es: cannot create the state directory %s: %s\n",
                cfg->daemon.state_dir, strerror(-rc));
        return 73;
    }
    if (cfg->leases.enabled && app->dry_run) {
        /* It would take leases from the running workers and never give
         * their positions back. */
        fprintf(stderr, "ddb2es: --dry-run is not for coordinated mode ([leases]): run it on a "
                        "configuration without [leases] (and a state directory of its own)\n");
        return 64;
    }
    if (cfg->leases.enabled && !run->checking)
        return start_coordinated(run, cfg);
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
    if ((rc = clients_open(&run->clients, app, NULL, shard_doc_done, on_sink_resume, run)) != 0)
        return rc;
    if (run->checking)
        return 0;
    return start_readers(run, cfg);
}

/* The readers, one per table. */
static int start_readers(struct run *run, const struct config *cfg)
{
    struct app *app = &run->app;

    run->reader_timing = reader_timing_default;
    run->reader_timing.stream_settle_ms = (long)cfg->daemon.stream_settle_ms;
    app->reader_timing = &run->reader_timing;
    app->slots = slots_new((unsigned)cfg->daemon.read_concurrency);
    app->readers = calloc(cfg->ntables, sizeof(*app->readers));
    if (!app->slots || !app->readers)
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
            char line[1024];

            config_refuse(cfg, NULL, "daemon", "metrics_listen", line, sizeof(line), "%s", err);
            fprintf(stderr, "ddb2es: %s\n", line);
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
        /* No bulk goes out before the engine was probed (a dry run sends
         * nothing); the readers read meanwhile, up to the memory cap. */
        if (!dry_run && !(run->watch = probe_watch_start(&run->app, on_target_refused, run))) {
            log_error("out of memory");
            run->exit_code = 70;
            begin_stop(run, "start-up");
        }
        /* A rebuild's mirror is on before the first document is submitted. */
        if (!dry_run && !run->app.stopping && !(run->mirror = mirror_watch_start(&run->app))) {
            log_error("out of memory");
            run->exit_code = 70;
            begin_stop(run, "start-up");
        }
        for (size_t i = 0; i < run->app.nreaders && !run->app.stopping; i++)
            reader_start(run->app.readers[i]);
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = run->exit_code;
        if (rc == 0)
            log_info("stopped cleanly");
    } else {
        /* Start-up failed, or `check` is done: take down what was set up. */
        struct app *app = &run->app;

        if (app->lease) {
            lease_close(app->lease, NULL, NULL);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        clients_take_down_now(app);
    }
    for (size_t i = 0; i < run->app.nreaders; i++)
        reader_free(run->app.readers[i]);
    free(run->app.readers);
    slots_free(run->app.slots);
    sink_free(run->app.sink);
    probe_watch_free(run->watch);
    mirror_watch_free(run->mirror);
    metrics_free(run->metrics);
    health_free(run->health);
    ckpt_free(run->app.ckpt); /* the lease store before its coordinator */
    lease_free(run->app.lease);
    statedir_unlock(run->lock_fd);
    if (uv_loop_close(&loop) != 0)
        log_warn("event loop closed with handles still open");
    clients_close(&run->clients);
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
