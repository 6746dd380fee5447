/* fsworld — the daemon between the Streams stand-in (fakestreams) and the
 * search double (searchd), for end-to-end tests of stream and sink faults:
 * one table "fs<pid>_<n>" with hash key "id", indexed under its own name. */
#ifndef DDB2ES_TEST_FSWORLD_H
#define DDB2ES_TEST_FSWORLD_H

#include <stdbool.h>
#include <stddef.h>

#include "tests/support/proc.h"

struct fakestreams;
struct searchd;

struct fsworld {
    struct fakestreams *fs;
    struct searchd *sd;
    struct proc p;
    char dir[256];   /* the config is dir/ddb2es.conf, the state dir/state */
    char table[64];
    int metrics_port; /* the daemon's /metrics */
};

/* [daemon] lines that make discovery fast enough for tests. */
#define FSW_FAST "idle_poll_interval = 200ms\nshard_list_interval = 1s\nstream_check_interval = 2s\n"
/* For a test that switches streams and lists no child late: the old stream
 * settles for 1 s instead of 10 before the new one is read.  A late child
 * is found within the settle time only by the daemon's asking again for a
 * finished parent's children (every 5 s), so a test of one keeps 10 s. */
#define FSW_SETTLE_FAST "stream_settle = 1s\n"

/* A new table in the stand-in and a search double started with these
 * options (NULL-terminated, or NULL). */
void fsw_setup(struct fsworld *w, const char *const *searchd_opts);
/* Writes the config as fsw_start does, without starting the daemon
 * (fsw_restart starts it). */
void fsw_config(struct fsworld *w, const char *daemon_extra, const char *sink_extra);
/* Writes the config (FSW_FAST, metrics on a free port, plus daemon_extra
 * [daemon] lines and sink_extra [sink] lines, each may be NULL) and starts
 * `ddb2es run`. */
void fsw_start(struct fsworld *w, const char *daemon_extra, const char *sink_extra);
/* Starts the daemon again with the config written by fsw_start. */
void fsw_restart(struct fsworld *w);
/* Stops the daemon (expecting a clean stop: its log is printed if not),
 * the double and the stand-in. */
void fsw_teardown(struct fsworld *w);

/* The document's "v" as JSON text, or NULL when missing or deleted (caller
 * frees). */
char *fsw_doc_v(struct fsworld *w, const char *id);
/* Waits up to ms until the document's v is want (NULL: missing or deleted). */
bool fsw_wait_v(struct fsworld *w, const char *id, const char *want, long ms);
/* Waits up to ms for text in the daemon's log. */
bool fsw_log_has(struct fsworld *w, const char *text, long ms);
/* One sample of the daemon's /metrics, or -1. */
double fsw_metric(struct fsworld *w, const char *name, const char *labels);

/* The index against the stream: for every id in the given shards (read in
 * the order given, parents first), the last record's image is indexed, or
 * the document is gone after a REMOVE; no other document exists.  false
 * with the first difference in why. */
bool fsw_index_matches(struct fsworld *w, const int *shards, size_t n, char *why, size_t len);
/* Polls fsw_index_matches for up to ms. */
bool fsw_wait_matches(struct fsworld *w, const int *shards, size_t n, long ms, char *why,
                      size_t len);
/* Actions the double received in bulk requests (index + delete), from its
 * stats. */
long fsw_actions(struct fsworld *w);
/* Bulk requests the double answered with this status (0: all). */
long fsw_bulk_requests(struct fsworld *w, int status);
/* The daemon's peak resident memory (VmHWM) in KiB, or -1. */
long fsw_peak_rss_kb(struct fsworld *w);

#endif
