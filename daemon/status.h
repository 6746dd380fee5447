/* status — `ddb2es status [--json]`: where every shard stands, from
 * STATE_DIR/checkpoints.json, plus live facts from the metrics endpoint of a
 * running `ddb2es run` when one answers.
 *
 * The checkpoint file is read without taking the state directory's lock, so
 * this works while `run` holds it; the file is replaced atomically, so what
 * is read is one whole version of it.
 *
 * A shard's state, from the checkpoint alone:
 *   finished  read to its end and every record finished (done)
 *   closed    not finished, but a child shard is in the checkpoint: it has
 *             ended and is being read to its end (or it expired unfinished)
 *   open      neither: the newest shard of its lineage, still written to
 * Its last record: the checkpoint's version state keeps the creation second
 * (ApproximateCreationDateTime) of the last finished record, so "last
 * record" is that time and its age; "updated" is when the checkpoint entry
 * last changed.
 *
 * The model is JSON (what --json prints):
 *   {"state_dir": "...", "file": ".../checkpoints.json", "exists": true,
 *    "now": "2024-05-01T12:00:00Z",
 *    "shards": [{"table", "stream", "shard", "parent" (or null), "state",
 *                "checkpoint" (sequence number or null),
 *                "last_record" (time or null), "last_record_age_s" (or null),
 *                "updated", "updated_age_s"}],
 *    "live": null, or {"endpoint", "answering": bool, "error"?, "ready"?,
 *                      "status"?, "tables"?: {"<table>": {"records_read",
 *                      "docs_indexed", "docs_deleted", "dlq", "records_lost_events",
 *                      "iterator_age_s", "shards": {"open", "closed",
 *                      "waiting", "done"}}}}}
 */
#ifndef DDB2ES_STATUS_H
#define DDB2ES_STATUS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

struct config;

/* Reads STATE_DIR/checkpoints.json into a new model (caller decrefs).
 * NULL with err set ("PATH: what is wrong") and *exit_code 65 (corrupt) or
 * 74 (unreadable) on failure; a missing file is an empty model with
 * "exists": false. */
json_t *status_collect(const char *state_dir, time_t now, char *err, size_t errlen,
                       int *exit_code);
/* Adds "live" from the Prometheus text of /metrics (and the /readyz body,
 * may be NULL) to the model; pure. */
void status_add_live(json_t *model, const char *endpoint, const char *metrics_text,
                     long readyz_status, const char *readyz_body);
/* Adds "live" with "answering": false and the reason. */
void status_add_live_error(json_t *model, const char *endpoint, const char *error);
/* Prints the model for people. */
void status_print_text(const json_t *model, FILE *f);

/* Coordinated mode ([leases], status_lease.c): the model from the lease
 * table instead of the file:
 *   {"lease_table", "now",
 *    "workers": [{"worker", "leases", "started", "heartbeat", "heartbeat_age_s"}],
 *    "shards": [{"table", "stream", "shard", "parent", "state", "done",
 *                "owner" (null: free), "claim" (a worker asking for it, or null),
 *                "lease_age_s" (seconds since the owner's last heartbeat, which
 *                renews its leases; null when free), "checkpoint", "last_record",
 *                "last_record_age_s", "updated", "updated_age_s"}],
 *    "live": as above}
 * NULL with err and *exit_code (66 no table, 69 unreachable, 78 no region,
 * 65 an item not of this format). */
json_t *status_collect_leases(const struct config *cfg, time_t now, char *err, size_t errlen,
                              int *exit_code);
void status_print_leases(const json_t *model, FILE *f);
/* `ddb2es status --write-checkpoints`: the way back to one process.  Reads
 * the lease table twice, lease_duration apart, refuses (75) when a worker
 * renewed meanwhile (one still runs), and writes every shard's position
 * into STATE_DIR/checkpoints.json (refused, 73, when it exists or the state
 * directory is locked).  Returns the exit code. */
int status_write_checkpoints(const struct config *cfg, FILE *f);

/* The command: collect, ask the metrics endpoint ([daemon] metrics_listen,
 * when set; timeout_ms per request), print text or JSON to f.  Returns the
 * exit code: 0, or 65 / 74 when the checkpoint file is corrupt or
 * unreadable (the reason goes to stderr). */
int status_run(const struct config *cfg, bool json, long timeout_ms, FILE *f);

#endif
