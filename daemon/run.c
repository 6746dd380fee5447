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
#include "base/log.h"
#include "daemon/metrics.h"
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
    int lock_fd;
    bool checking;       /* `ddb2es check`: probe, then stop */
    int exit_code;
    unsigned readers_running;
    bool sink_closed;
    bool finishing;
    uint64_t last_prune;
    struct clients clients;
    struct reader_timing reader_timing; /* the default's, with [daemon] stream_settle */
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

/* ---- start ------------------------------------------------------------ */

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
        /* No bulk goes out before the engine was probed (a dry run sends
         * nothing); the readers read meanwhile, up to the memory cap. */
        if (!dry_run && !(run->watch = probe_watch_start(&run->app, on_target_refused, run))) {
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
    slots_free(run->app.slots);
    sink_free(run->app.sink);
    probe_watch_free(run->watch);
    metrics_free(run->metrics);
    health_free(run->health);
    ckpt_free(run->app.ckpt);
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
