/* probe — what `ddb2es check` does once the configuration is valid: find the
 * AWS credentials, DescribeTable and DescribeStream every configured table,
 * and probe the search engine (indexer/target.h: what it is, what each
 * index name is, whether external versions hold; nothing is created),
 * printing one line for each.  done(arg, code) runs once everything
 * answered: 0 when all is well, 77 for credentials or permissions, 78 when
 * an index cannot mirror its table, 69 when something could not be reached
 * or is missing.
 *
 * And what `run` does with the target probe (probe_watch): the sink holds
 * until the engine has been probed, at start and again whenever a bulk
 * request got no answer (sink_on_unreachable); a missing index is made
 * (from its template, or by the canary's write); a probe that could not
 * finish is tried again with backoff (1 s .. 30 s), logged; a target that
 * cannot mirror is logged at error level and refused(arg) runs (the daemon
 * stops with 78); otherwise the sink is told what the engine takes
 * (include_source_on_error) and released. */
#ifndef DDB2ES_PROBE_H
#define DDB2ES_PROBE_H

struct app;
struct probe_watch;

/* 0, or -ENOMEM (done not called). */
int probe_run(struct app *app, void (*done)(void *arg, int exit_code), void *arg);

/* Holds app->sink and starts the first probe.  NULL when out of memory. */
struct probe_watch *probe_watch_start(struct app *app, void (*refused)(void *arg), void *arg);
/* No probe from now on; one in flight ends without effect.  Its timer
 * closes on the loop: run it once more before probe_watch_free. */
void probe_watch_stop(struct probe_watch *w);
/* NULL is a no-op. */
void probe_watch_free(struct probe_watch *w);

#endif
