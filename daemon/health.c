#include "daemon/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/util.h"
#include "daemon/app.h"
#include "daemon/lease.h"
#include "base/log.h"
#include "daemon/notify.h"
#include "daemon/reader.h"
#include "indexer/sink.h"

#define TICK_STARTING_MS 200 /* checks for readiness often while starting */
#define TICK_MS 1000
#define PING_RETRY_MS 1000
#define ALIVE_SLACK_MS 4000 /* a tick later than this: the loop is stuck */

struct health {
    struct app *app;
    uv_timer_t tick, watchdog;
    bool started, stopping, closed;
    bool sink_ok, pinging;
    uint64_t next_ping;   /* uv_now() when a failed ping may be repeated */
    uint64_t last_tick;
    uint64_t watchdog_ms;
    char sink_err[96];    /* why the last ping failed */
    char status[256];
};

struct health *health_new(struct app *app)
{
    struct health *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->app = app;
    uv_timer_init(app->loop, &h->tick);
    uv_timer_init(app->loop, &h->watchdog);
    snprintf(h->sink_err, sizeof(h->sink_err), "being checked");
    snprintf(h->status, sizeof(h->status), "starting");
    return h;
}

void health_free(struct health *h)
{
    free(h);
}

int64_t health_lag(const struct app *app)
{
    int64_t lag = -1, now = (int64_t)app->now();

    for (size_t i = 0; i < app->nreaders; i++) {
        const struct reader_stats *st = reader_stats(app->readers[i]);

        if (st->newest_created > 0) {
            int64_t age = now - st->newest_created;

            if (age < 0)
                age = 0; /* a clock behind the stream's */
            if (age > lag)
                lag = age;
        }
    }
    return lag;
}

static size_t listed_count(const struct app *app)
{
    size_t n = 0;

    for (size_t i = 0; i < app->nreaders; i++)
        n += reader_listed(app->readers[i]);
    return n;
}

static void format_status(struct health *h, char *out, size_t len)
{
    const struct app *app = h->app;
    const struct sink_stats *ss = app->sink ? sink_stats(app->sink) : NULL;

    if (h->stopping) {
        snprintf(out, len, "stopping: finishing %zu bulk request(s) in flight",
                 ss ? ss->inflight_requests : 0);
    } else if (!h->started) {
        snprintf(out, len, "starting: %zu of %zu stream(s) listed, search engine %s",
                 listed_count(app), app->nreaders,
                 !h->sink_ok ? h->sink_err : sink_held(app->sink) ? "being probed" : "answering");
    } else {
        unsigned shards = 0;
        int64_t lag = health_lag(app);
        int n;

        for (size_t i = 0; i < app->nreaders; i++) {
            const struct reader_stats *st = reader_stats(app->readers[i]);

            shards += st->shards_open + st->shards_closed;
        }
        n = snprintf(out, len, "following %zu table%s, %u shard%s, ", app->nreaders,
                     app->nreaders == 1 ? "" : "s", shards, shards == 1 ? "" : "s");
        if (n < 0 || (size_t)n >= len)
            return;
        if (lag >= 0)
            n += snprintf(out + n, len - (size_t)n, "lag %llds", (long long)lag);
        else
            n += snprintf(out + n, len - (size_t)n, "no record read yet");
        if (ss && ss->blocked_indexes && n > 0 && (size_t)n < len)
            n += snprintf(out + n, len - (size_t)n,
                          ", search engine refuses writes to %s%s for %llu s (%s)%s",
                          *ss->block_index ? "index " : "every index", ss->block_index,
                          (unsigned long long)(ss->block_age_ms / 1000), ss->block_reason,
                          ss->blocked_indexes > 1 ? " and others" : "");
        if (ss && ss->failing && n > 0 && (size_t)n < len)
            n += snprintf(out + n, len - (size_t)n, ", search engine failing (retrying)");
        if (app->sink && sink_held(app->sink) && n > 0 && (size_t)n < len)
            n += snprintf(out + n, len - (size_t)n, ", search engine being probed again");
        if (app->lease && n > 0 && (size_t)n < len) {
            const char *why;
            enum lease_state st = lease_state(app->lease, &why);

            if (st == LEASE_OK)
                snprintf(out + n, len - (size_t)n, ", %zu lease(s) held",
                         (size_t)lease_metrics(app->lease)->held);
            else
                snprintf(out + n, len - (size_t)n, ", lease table %s: %s",
                         st == LEASE_STALE ? "not renewing, reading stopped" : "refused",
                         why);
        }
    }
}

/* Sends STATUS= when the line changed, prefixed by extra lines if any. */
static void update_status(struct health *h, const char *extra)
{
    char line[sizeof(h->status)], msg[sizeof(h->status) + 64];

    format_status(h, line, sizeof(line));
    if (!extra && strcmp(line, h->status) == 0)
        return;
    snprintf(h->status, sizeof(h->status), "%s", line);
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", extra ? extra : "", line);
    notify_send(msg);
}

static void on_ping(void *arg, int rc)
{
    struct health *h = arg;

    h->pinging = false;
    if (h->closed)
        return;
    if (rc == 0 || (rc > 0 && rc < 500 && rc != 401 && rc != 403 && rc != 408 && rc != 429)) {
        if (!h->sink_ok)
            log_info("the search engine answers%s", rc ? " (with an HTTP error on GET /, which "
                                                         "is enough to know it is up)"
                                                       : "");
        h->sink_ok = true;
        return;
    }
    if (rc > 0)
        snprintf(h->sink_err, sizeof(h->sink_err), "answering HTTP %d", rc);
    else
        snprintf(h->sink_err, sizeof(h->sink_err), "not answering (%s)", strerror(-rc));
    log_warn("waiting for the search engine: %s", h->sink_err);
    h->next_ping = uv_now(h->app->loop) + PING_RETRY_MS;
}

static void ping(struct health *h)
{
    int rc;

    if (h->pinging || h->sink_ok || h->stopping || !h->app->sink ||
        uv_now(h->app->loop) < h->next_ping)
        return;
    h->pinging = true;
    rc = sink_ping(h->app->sink, on_ping, h);
    if (rc < 0) {
        h->pinging = false;
        h->next_ping = uv_now(h->app->loop) + PING_RETRY_MS;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct health *h = container_of(t, struct health, tick);
    struct app *app = h->app;

    h->last_tick = uv_now(app->loop);
    log_flush_expired();
    if (h->stopping)
        return;
    if (!h->started) {
        ping(h);
        if (h->sink_ok && !sink_held(app->sink) && listed_count(app) == app->nreaders) {
            h->started = true;
            uv_timer_set_repeat(&h->tick, TICK_MS);
            update_status(h, "READY=1\n");
            log_info("ready: %s", h->status);
            return;
        }
    }
    update_status(h, NULL);
}

static void on_watchdog(uv_timer_t *t)
{
    struct health *h = container_of(t, struct health, watchdog);

    if (health_alive(h))
        notify_send("WATCHDOG=1");
}

int health_start(struct health *h)
{
    uint64_t usec;
    int rc = notify_watchdog_usec(&usec);

    if (rc < 0)
        log_warn("ignoring a malformed WATCHDOG_USEC or WATCHDOG_PID");
    h->last_tick = uv_now(h->app->loop);
    rc = uv_timer_start(&h->tick, on_tick, 0, TICK_STARTING_MS);
    if (rc < 0)
        return rc;
    if (usec > 0) {
        h->watchdog_ms = usec / 2000 ? usec / 2000 : 1;
        log_debug("watchdog: WATCHDOG=1 every %llu ms", (unsigned long long)h->watchdog_ms);
        notify_send("WATCHDOG=1");
        rc = uv_timer_start(&h->watchdog, on_watchdog, h->watchdog_ms, h->watchdog_ms);
    }
    return rc;
}

void health_stopping(struct health *h)
{
    if (!h || h->stopping)
        return;
    h->stopping = true;
    update_status(h, "STOPPING=1\n");
}

void health_close(struct health *h)
{
    if (!h || h->closed)
        return;
    h->closed = true;
    uv_close((uv_handle_t *)&h->tick, NULL);
    uv_close((uv_handle_t *)&h->watchdog, NULL);
}

bool health_alive(const struct health *h)
{
    return h && !h->closed && uv_now(h->app->loop) - h->last_tick <= ALIVE_SLACK_MS;
}

bool health_ready(const struct health *h)
{
    const struct sink_stats *ss;

    if (!h || !h->started || h->stopping || h->closed)
        return false;
    ss = h->app->sink ? sink_stats(h->app->sink) : NULL;
    /* Coordinated: a worker that cannot renew its leases reads nothing. */
    if (h->app->lease && lease_state(h->app->lease, NULL) != LEASE_OK)
        return false;
    return !(ss && (ss->failing || ss->blocked_indexes || sink_held(h->app->sink)));
}

const char *health_status_now(struct health *h)
{
    if (h && h->started && !h->closed)
        update_status(h, NULL);
    return health_status(h);
}

bool health_started(const struct health *h)
{
    return h && h->started;
}

const char *health_status(const struct health *h)
{
    return h ? h->status : "starting";
}
