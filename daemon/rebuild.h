/* rebuild — `ddb2es rebuild`: a new index beside the live one, filled and
 * checked while the daemon keeps writing, then the table's index name (an
 * alias from then on) moved to it in one call; no moment without an index
 * to read (README "Rebuild").
 *
 * Phases, saved in STATE_DIR/rebuild-<table>.progress.json after each, so
 * that a rerun continues from the one reached:
 *   create    PUT /<index>-<UTC time> from --template, else [table]
 *             index_template, else with no body
 *   mirror    the request file STATE_DIR/rebuild-<table>.json (daemon/mirror.h)
 *             asks a running daemon on the same state directory to write
 *             every action to the new index too; the rebuild waits for its
 *             acknowledgement (ack_timeout_ms).  No daemon: no wait (one
 *             that starts later reads the request first)
 *   backfill  a Scan of the table into the new index (daemon/replay.h; its
 *             progress in STATE_DIR/rebuild-<table>.scan.json)
 *   verify    the new index held against the table, with repair
 *             (daemon/verify.h); differences left: exit 1, all kept
 *   switch    one POST /_aliases: the alias leaves its old indices and
 *             writes to the new one; a concrete index of the name is
 *             removed in the same call (remove_index) with drop_old only
 *   finish    the request file removed (the daemon stops mirroring and
 *             removes its acknowledgement); with drop_old the alias's old
 *             indices deleted; the progress file removed
 */
#ifndef DDB2ES_REBUILD_H
#define DDB2ES_REBUILD_H

#include <stdbool.h>
#include <stdint.h>

struct config;

struct rebuild_opts {
    const char *table;          /* required: a configured [table] */
    const char *template_path;  /* --template: the new index's body, or NULL */
    bool drop_old;              /* delete the old index(es) once the alias moved */
    int segments;               /* the backfill's Scan segments (0: 4) */
    double rate;                /* items read per second by the backfill and verify, 0 = no cap */
    int64_t margin_s;           /* the backfill's version margin (replay --margin; 0: 5) */
    int64_t ack_timeout_ms;     /* how long to wait for the daemon (0: 30000) */
};

/* Runs (or continues) the rebuild and returns the exit code: 0 the alias
 * points at the new index; 1 the new index still differs from the table
 * after repair (everything kept: run again); 64 usage; 69 the engine,
 * DynamoDB or the daemon did not answer; 70 internal; 73 another rebuild
 * of the table runs; 74 I/O on the state directory; 75 interrupted (run
 * again to continue); 77 permission; 78 configuration (one line says what). */
int rebuild_run(const struct config *cfg, const struct rebuild_opts *o);

#endif
