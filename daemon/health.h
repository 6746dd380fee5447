/* health — whether the daemon is alive and ready, told to the service
 * manager (sd_notify: READY=1, STATUS=, WATCHDOG=1, STOPPING=1) and to the
 * metrics endpoint (/healthz, /readyz).
 *
 *   alive   the loop turns: a timer on it ticked within the last few seconds
 *   ready   every table's stream was listed (reader_listed) and the search
 *           engine answered a ping (sink_ping: any HTTP reply other than
 *           401, 403, 408, 429 or 5xx) and was probed (the sink is not held:
 *           probe.h), and the sink is not failing now, the engine does not
 *           refuse writes (a write block: sink.h) and the daemon is not
 *           stopping.  READY=1 is sent once, the first time the first two
 *           hold.
 *
 * WATCHDOG=1 goes out at half of $WATCHDOG_USEC from a timer on the loop,
 * and only while the daemon is alive, so a stuck loop gets the process
 * restarted.  STATUS= lines say what it is doing: "starting: 1 of 3 streams
 * listed, search engine not answering (connection refused)", "following 3
 * tables, 12 shards, lag 2s", "following 1 table, 4 shards, lag 3s, search
 * engine refuses writes to index posts for 40 s (cluster_block_exception:
 * index [posts] blocked by: [FORBIDDEN/8/index write (api)];)", "stopping: ...".  Nothing here stops the
 * daemon: a service manager that is gone only costs the notifications. */
#ifndef DDB2ES_HEALTH_H
#define DDB2ES_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct health;

/* NULL when out of memory.  Its timers live on app->loop; app must outlive
 * it. */
struct health *health_new(struct app *app);
/* Starts the timers and the first ping of the sink. 0 or -errno. */
int health_start(struct health *h);
/* SIGTERM: sends STOPPING=1 (and a last STATUS=); not ready from now on. */
void health_stopping(struct health *h);
/* Closes the timers (the loop must run once more before health_free).
 * A ping still in flight ends harmlessly. */
void health_close(struct health *h);
/* After the loop ran down; NULL is a no-op. */
void health_free(struct health *h);

bool health_alive(const struct health *h);
bool health_ready(const struct health *h);
/* True once READY=1 was sent (stays true while stopping). */
bool health_started(const struct health *h);
/* The current status line (what STATUS= last said). */
const char *health_status(const struct health *h);
/* The status line as of now (sent as STATUS= first if it changed). */
const char *health_status_now(struct health *h);
/* The largest iterator age over the tables in seconds, or -1 when no table
 * has read a record yet. */
int64_t health_lag(const struct app *app);

#endif
