/* metrics — the operator's HTTP endpoint on [daemon] metrics_listen:
 *
 *   GET /metrics   Prometheus text exposition format 0.0.4 (HELP and TYPE
 *                  for every family; the SPEC's metrics and more)
 *   GET /healthz   200 "ok" while the loop turns (health_alive), else 503
 *   GET /readyz    200 once ready (health_ready: READY=1 was sent and the
 *                  sink is not failing), else 503 with the status line
 *   anything else  404; HEAD works wherever GET does; other methods 405
 *
 * One libuv TCP listener on the daemon's loop; each connection reads one
 * request (at most METRICS_REQ_MAX bytes of head, else 431), answers with
 * Connection: close and is closed.  A client that is slow to send or to
 * read is dropped after the timeout (5 s); at most METRICS_MAX_CONNS
 * connections at a time (more are closed at once).  Nothing blocks the
 * loop.
 */
#ifndef DDB2ES_METRICS_H
#define DDB2ES_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "daemon/encstats.h"
#include "daemon/reader.h"
#include "indexer/sink.h"

#define METRICS_REQ_MAX 8192
#define METRICS_MAX_CONNS 64
#define METRICS_TIMEOUT_MS 5000

struct app;
struct health;
struct metrics;

/* ---- the text (pure) --------------------------------------------------- */

struct metrics_table {
    const char *name;
    struct reader_stats st;
    struct encstats_counts enc; /* client-side encrypted items */
    uint64_t leases_held;       /* coordinated mode: leases this worker holds for the table */
    uint64_t mirror_actions;    /* actions also sent to a rebuild's new index (sink mirror) */
};

/* Coordinated mode ([leases]): the coordinator's counters. */
struct metrics_leases {
    uint64_t workers;    /* workers seen alive at the last read of the lease table */
    uint64_t taken, renew_failed, stolen, lost, released;
    bool ok;             /* renewing (lease_state OK) */
};

/* Everything one scrape shows, taken at one moment. */
struct metrics_view {
    int64_t now;                        /* wall clock, seconds */
    int64_t start_time;                 /* when the process started, seconds */
    const struct metrics_table *tables; /* one per configured table */
    size_t ntables;
    const struct sink_stats *sink;      /* NULL: rendered as zeros */
    uint64_t checkpoint_writes, checkpoint_failures;
    uint64_t cred_renewals_ok, cred_renewals_failed; /* creds_renewals() */
    bool ready;
    const char *version;
    const struct metrics_leases *leases; /* NULL: one process, no lease families */
};

/* Appends the exposition text for v to out.  0, or -E2BIG / -ENOMEM from
 * the buffer (out then holds a prefix). */
int metrics_render(const struct metrics_view *v, struct buf *out);

/* ---- the server -------------------------------------------------------- */

/* Splits "HOST:PORT" or "[IPv6]:PORT" into its parts.  0 or -EINVAL. */
int metrics_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

/* NULL when out of memory.  h may be NULL (then /healthz is 200 whenever the
 * endpoint answers and /readyz is 503). */
struct metrics *metrics_new(struct app *app, struct health *h);
/* Binds and listens on addr: "HOST:PORT" with a numeric IPv4 address or a
 * host name, "[IPv6]:PORT"; port 0 picks a free one (see metrics_port).
 * 0, or -errno (-EINVAL for an unparsable address); err gets one line. */
int metrics_listen(struct metrics *m, const char *addr, char *err, size_t errlen);
int metrics_port(const struct metrics *m); /* the bound port, 0 when not listening */
/* For tests: the per-connection timeout. */
void metrics_set_timeout(struct metrics *m, uint64_t ms);
/* Stops listening and closes every connection; run the loop before
 * metrics_free.  Idempotent. */
void metrics_close(struct metrics *m);
/* NULL is a no-op. */
void metrics_free(struct metrics *m);

#endif
