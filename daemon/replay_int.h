/* replay_int — what the parts of `ddb2es replay` share (not included
 * outside daemon/replay*.c):
 *   replay.c           the driver: start, DescribeTable, the sink's
 *                      callbacks, progress lines, reading items again
 *                      (BatchGetItem), stopping
 *   replay_scan.c      the Scan on the shared segment machine (aws/scan.c), pages in order
 *   replay_progress.c  the progress file of a Scan
 *   replay_versions.c  the versions replayed documents get
 *   replay_files.c     export and stream-record files into the sink
 *   replay_dlq.c       dead-letter entries: the item read again
 * The files themselves are read by indexer/source.h.
 */
#ifndef DDB2ES_REPLAY_INT_H
#define DDB2ES_REPLAY_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "base/fpmap.h"
#include "aws/ddb.h"
#include "aws/scan.h"
#include "base/buf.h"
#include "base/list.h"
#include "daemon/app.h"
#include "daemon/clients.h"
#include "daemon/replay.h"
#include "indexer/doc.h"
#include "indexer/source.h"
#include "indexer/transform.h"

#define RETRY_BASE_MS 200
#define RETRY_MAX_MS 20000

struct replay;

/* ---- scan ------------------------------------------------------------- */

/* One Scan page whose items are in the sink. */
struct page {
    struct segment *seg;
    json_t *lek;        /* LastEvaluatedKey after it; NULL: the segment's end */
    json_t **keys;      /* per item: its key attributes (for a read again) */
    size_t n, pending;  /* items, items not finished */
    struct page *next;
};

/* A segment of the Scan: the shared machine's part (aws/scan.h), and what
 * replay keeps of it. */
struct segment {
    struct scan_seg ss;
    struct replay *rp;
    json_t *saved;       /* what the progress file holds: the finished prefix */
    bool done;           /* every page read and finished */
    uint64_t items;      /* items whose page finished (all runs) */
    struct page *head, *tail;
};

/* The Scan: its segments and what they share. */
struct replay_scan {
    struct scan s;            /* s.total: TotalSegments of the parallel Scan (nsegs, or more
                                 with --only-segments: segs[i].ss.no is then first + i) */
    struct segment *segs;     /* the segments this process scans */
    int nsegs;
    int first;
    int64_t item_count;     /* DescribeTable ItemCount, -1 unknown */
};

/* The Scan's progress file, and the lock of the table's replay. */
struct replay_progress {
    int lock_fd;
    char *path, *tmp;
    bool dirty, saving, save_again;
};

/* A dead-letter entry whose item is read again (then sent, or deleted). */
struct dl_entry {
    json_t *key;        /* the key attributes, DynamoDB JSON (owned) */
    const char *index;  /* the entry's index (interned) or --index */
    bool digest_like;   /* the key was read back from an _id that may be a
                           SHA-256 digest: a missing item is left alone */
    struct list link;   /* in the replay's dl_live */
};

/* An item to read again: a Scan page's item idx of pg, or (pg NULL) the
 * item of a dead-letter entry. */
struct reread {
    struct page *pg;
    size_t idx;
    struct dl_entry *de;
    bool sent;
};

/* ---- stream records: versions ------------------------------------------ */

/* The daemon's version state, per shard lineage (when the file names the
 * shard) or per item (when it does not); see replay_versions.c. */
struct replay_versions {
    struct lineage **lineages;  /* LINEAGE_BUCKETS */
    struct fpmap items;         /* _id -> struct docver, least recently used first */
};

/* ---- the replay ------------------------------------------------------- */

struct replay {
    struct app app;
    struct clients clients;
    const struct replay_opts *o;
    const struct config_table *t;
    struct transform_cfg tf;
    unsigned char *hmac_key;
    struct source_keys keys;    /* the key schema (--key, or DescribeTable) */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    uint64_t start_ms, last_log_ms, sink_failing_since;
    bool tty, stopping, closing_done;
    bool sink_draining; /* sink_close called, its callback not run yet */
    int exit_code;
    char why[1024];         /* the one line printed for a non-zero exit */
    /* counters */
    uint64_t read, indexed, skipped, dlq, dropped, errors, done_before;
    struct replay_scan scan;
    /* items read again */
    struct reread *rr;
    size_t nrr, caprr;
    struct ddb_call *rr_call;
    uv_timer_t rr_timer;
    unsigned rr_failures;
    struct replay_progress prog;
    /* files */
    struct source_files files;
    bool all_read;
    uv_idle_t idle;
    bool idle_on;
    size_t pending;         /* file documents in the sink */
    struct replay_versions vers; /* stream records */
    uint64_t dups;              /* records a shard had already given */
    /* dead-letter entries */
    char **indexes;         /* dead-letter entries' index names (the sink borrows them) */
    size_t nindexes;
    uint64_t other_tables;
    char dl_owner;          /* its address: the sink owner of dead-letter entries' items */
    struct list dl_live;    /* every entry not finished, for the end */
    uint64_t dl_unresolved; /* entries whose item cannot be found: not replayed */
    struct doc d;
    struct buf err;
    struct transform_renames renames; /* names the engines refuse, renamed as `run` does */
};

/* replay.c */
void replay_stop(struct replay *rp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void replay_take_down(struct replay *rp);
void replay_maybe_complete(struct replay *rp);
double replay_mono_s(const struct replay *rp);
void replay_doc_reset(struct replay *rp);
void replay_reread_add(struct replay *rp, struct page *pg, size_t idx, struct dl_entry *de);

/* replay_scan.c */
void replay_scan_init(struct replay *rp);
void replay_scan_begin(struct replay *rp);
void replay_scan_resume(struct replay *rp);
void replay_scan_stop(struct replay *rp);
bool replay_scan_complete(const struct replay *rp);
void replay_scan_free(struct replay *rp);
void replay_page_item_done(struct page *pg);
void replay_scan_submit_item(struct replay *rp, struct page *pg, size_t idx, json_t *item,
                             time_t at);

/* replay_progress.c */
void replay_progress_save(struct replay *rp);
int replay_progress_load(struct replay *rp, int *nsegs);

/* replay_versions.c */
uint64_t replay_backfill_version(const struct replay *rp, int64_t at);
uint64_t replay_record_version(struct replay *rp, const char *shard, const char *parent,
                               bool *dup);
void replay_versions_init(struct replay_versions *vs);
void replay_versions_free(struct replay_versions *vs);

/* replay_files.c */
void replay_file_fail(struct replay *rp, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void replay_files_begin(struct replay *rp);
void replay_pump_start(struct replay *rp);

/* replay_dlq.c */
void replay_dl_done(struct replay *rp, struct dl_entry *de);
void replay_dl_item(struct replay *rp, struct dl_entry *de, json_t *item, time_t at);
void replay_dlq_line(struct replay *rp, const char *p, size_t len, unsigned long line);

#endif
