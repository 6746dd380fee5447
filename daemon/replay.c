/* replay — see replay.h.
 *
 * One process, one loop, the daemon's sink.  Two kinds of source feed it:
 *   scan   DescribeTable, then one state machine per Scan segment (one
 *          request in flight each), a token bucket shared by the segments
 *          for --rate, pages kept in order per segment so the saved
 *          position (the LastEvaluatedKey of the last page whose items all
 *          finished) never passes an unfinished item; images the sink
 *          returns as expired are read again with a consistent BatchGetItem.
 *   files  read line by line through zlib (plain or gzip), a bounded amount
 *          per loop turn, while the sink is not full.
 */
#include "base/backoff.h"
#include "base/rfc3339.h"
#include "daemon/replay.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "base/http.h"
#include "base/jsonx.h"
#include "aws/retry.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/ckpt.h"
#include "daemon/clients.h"
#include "base/log.h"
#include "daemon/seqnum.h"
#include "indexer/ddbnum.h"
#include "indexer/dlq.h"
#include "indexer/sink.h"
#include "indexer/transform.h"

#define DOC_MAX (16u << 20)         /* one document */
#define LINE_MAX_BYTES (64u << 20)  /* one input line (or one Lambda event file) */
#define READ_CHUNK (1u << 20)       /* bytes read from a file at a time */
#define TURN_BUDGET (4u << 20)      /* input bytes handled per loop turn */
#define PAGE_MAX_LIMIT 1000         /* Scan Limit when --rate caps it */
#define BATCHGET_MAX 100            /* keys per BatchGetItem */
#define RR_QUEUE_MAX 1000           /* dead-letter entries waiting for their item: reading pauses */
#define RETRY_BASE_MS 200
#define RETRY_MAX_MS 20000
#define TICK_MS 1000
#define PROGRESS_FORMAT 1

struct replay;

/* ---- stream records: versions ------------------------------------------ */

/* One shard of a stream-record file: the daemon's version state along its
 * lineage, and the last sequence number taken from it. */
struct lineage {
    struct lineage *next;
    struct ckpt_version ver;
    char last_seq[SEQNUM_MAX + 1];
    char id[];
};

/* One item of the records whose shard the file does not say. */
struct item_ver {
    struct item_ver *hnext, *older, *newer;
    struct ckpt_version ver;
    uint32_t hash;
    size_t len;
    char id[];
};

#define LINEAGE_BUCKETS 1024
#define IV_BUCKETS 65536
#define IV_MAX 200000 /* items remembered; the least recently seen go first */

/* ---- scan ------------------------------------------------------------- */

/* One Scan page whose items are in the sink. */
struct page {
    struct segment *seg;
    json_t *lek;        /* LastEvaluatedKey after it; NULL: the segment's end */
    json_t **keys;      /* per item: its key attributes (for a read again) */
    size_t n, pending;  /* items, items not finished */
    struct page *next;
};

enum seg_state { SG_SCAN, SG_WAIT, SG_INFLIGHT, SG_BACKOFF, SG_READ, SG_NSTATES };
static const char *const seg_state_name[SG_NSTATES] = {
    [SG_SCAN] = "scan", [SG_WAIT] = "wait", [SG_INFLIGHT] = "in-flight",
    [SG_BACKOFF] = "backoff", [SG_READ] = "read"
};

struct segment {
    struct replay *rp;
    int no;
    enum seg_state state;
    json_t *start;       /* ExclusiveStartKey of the next request, NULL = from the beginning */
    json_t *saved;       /* what the progress file holds: the finished prefix */
    bool done;           /* every page read and finished */
    uint64_t items;      /* items whose page finished (all runs) */
    struct ddb_call *call;
    int limit;           /* tokens taken for the request in flight */
    uv_timer_t timer;
    unsigned failures;
    uint64_t failing_since;
    struct page *head, *tail;
};

/* A dead-letter entry whose item is read again (then sent, or deleted). */
struct dl_entry {
    json_t *key;        /* the key attributes, DynamoDB JSON (owned) */
    const char *index;  /* the entry's index (interned) or --index */
    bool digest_like;   /* the key was read back from an _id that may be a
                           SHA-256 digest: a missing item is left alone */
    struct dl_entry *prev, *next; /* every entry not finished, for the end */
};

/* An item to read again: a Scan page's item idx of pg, or (pg NULL) the
 * item of a dead-letter entry. */
struct reread {
    struct page *pg;
    size_t idx;
    struct dl_entry *de;
    bool sent;
};

/* ---- the replay ------------------------------------------------------- */

struct replay {
    struct app app;
    struct clients clients;
    const struct replay_opts *o;
    const struct config_table *t;
    struct transform_cfg tf;
    unsigned char *hmac_key;
    char *hash_key, *range_key; /* may hold NUL: their lengths say where they end */
    size_t hash_key_len, range_key_len;
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    uint64_t start_ms, last_log_ms, sink_failing_since;
    bool tty, stopping, closing_done;
    int exit_code;
    char why[1024];         /* the one line printed for a non-zero exit */
    /* counters */
    uint64_t read, indexed, skipped, dlq, dropped, errors, done_before;
    /* scan */
    struct segment *segs;
    int nsegs;
    int64_t item_count;     /* DescribeTable ItemCount, -1 unknown */
    double eff_rate;        /* the cap in use (--rate, lowered on throttling); 0 = none */
    double tokens;
    uint64_t tokens_at;
    struct reread *rr;
    size_t nrr, caprr;
    struct ddb_call *rr_call;
    uv_timer_t rr_timer;
    unsigned rr_failures;
    int lock_fd;
    char *progress_path, *progress_tmp;
    bool progress_dirty, saving, save_again;
    /* files */
    char **paths;
    size_t npaths, cur;
    gzFile gz;
    int64_t total_bytes, bytes_before; /* all files; the files already read */
    struct buf in;
    size_t off;
    unsigned long lineno;
    bool file_eof, all_read;
    uv_idle_t idle;
    bool idle_on;
    size_t pending;         /* file documents in the sink */
    /* stream records: the daemon's version state, per shard lineage (when
     * the file names the shard) or per item (when it does not) */
    struct lineage **lineages;  /* LINEAGE_BUCKETS */
    struct item_ver **ivs;      /* IV_BUCKETS */
    struct item_ver *iv_old, *iv_new; /* least and most recently used */
    size_t niv;
    uint64_t dups;              /* records a shard had already given */
    int64_t export_time;
    char **indexes;         /* dead-letter entries' index names (the sink borrows them) */
    size_t nindexes;
    uint64_t other_tables;
    char dl_owner;          /* its address: the sink owner of dead-letter entries' items */
    struct dl_entry *dl_live;
    uint64_t dl_unresolved; /* entries whose item cannot be found: not replayed */
    char hash_type, range_type; /* 'S', 'N' or 'B' from DescribeTable; 0 unknown */
    struct doc scratch;     /* a key turned into an _id, to check an _id read back */
    struct doc d;
    struct buf err;
    struct transform_renames renames; /* names the engines refuse, renamed as `run` does */
};

static void drive(struct segment *sg);
static void maybe_complete(struct replay *rp);
static void pump_start(struct replay *rp);
static void save_progress(struct replay *rp);

static void set_state(struct segment *sg, enum seg_state to)
{
    if (sg->state != to)
        log_debug("segment %d: %s -> %s", sg->no, seg_state_name[sg->state], seg_state_name[to]);
    sg->state = to;
}

static double mono_s(const struct replay *rp)
{
    return (double)(uv_now(rp->app.loop) - rp->start_ms) / 1000.0;
}

/* ---- stopping --------------------------------------------------------- */

static void close_cb_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_clients_closed(void *arg)
{
    struct replay *rp = arg;

    uv_walk(rp->app.loop, close_cb_walk, NULL);
}

static void take_down(struct replay *rp)
{
    struct app *app = &rp->app;

    if (rp->closing_done || rp->saving)
        return;
    rp->closing_done = true;
    if (rp->progress_path && !rp->o->dry_run)
        save_progress(rp); /* synchronously: the loop is quiet now */
    clients_take_down(&rp->clients, app, on_clients_closed, rp);
}

static void on_sink_closed(void *arg)
{
    take_down(arg);
}

/* Stops reading; what is in the sink finishes (or, past the deadline, is
 * left unfinished: the saved position stays before it). */
static void stop(struct replay *rp, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stop(struct replay *rp, int code, const char *fmt, ...)
{
    long deadline = code == 0 || code == 65 || code == 75
                        ? (long)rp->app.cfg->daemon.shutdown_timeout_ms
                        : 0;

    if (rp->stopping)
        return;
    rp->stopping = true;
    rp->exit_code = code;
    if (fmt) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(rp->why, sizeof(rp->why), fmt, ap);
        va_end(ap);
    }
    for (int i = 0; i < rp->nsegs; i++) {
        uv_timer_stop(&rp->segs[i].timer);
        if (rp->segs[i].call)
            ddb_cancel(rp->segs[i].call);
    }
    if (rp->rr_call)
        ddb_cancel(rp->rr_call);
    if (rp->idle_on) {
        uv_idle_stop(&rp->idle);
        rp->idle_on = false;
    }
    uv_timer_stop(&rp->tick);
    uv_signal_stop(&rp->sigint);
    uv_signal_stop(&rp->sigterm);
    if (rp->tty)
        fputc('\n', stderr);
    if (rp->app.sink)
        sink_close(rp->app.sink, deadline, on_sink_closed, rp);
    else
        take_down(rp);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct replay *rp = h->data;

    log_info("%s: stopping; what was read finishes first", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop(rp, 75, "interrupted by %s; run the same command again to continue",
         signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- progress and the end ---------------------------------------------- */

static void fmt_duration(double s, char *out, size_t len)
{
    long v = (long)(s + 0.5);

    if (v >= 3600)
        snprintf(out, len, "%ldh%02ldm", v / 3600, v / 60 % 60);
    else if (v >= 60)
        snprintf(out, len, "%ldm%02lds", v / 60, v % 60);
    else
        snprintf(out, len, "%lds", v);
}

static int64_t file_done_bytes(const struct replay *rp)
{
    return rp->bytes_before + (rp->gz ? (int64_t)gzoffset(rp->gz) : 0);
}

static void progress(struct replay *rp, bool final)
{
    double el = mono_s(rp), rate = el > 0 ? (double)rp->read / el : 0, frac = -1;
    char eta[64] = "", line[512];

    if (rp->segs && rp->item_count > 0)
        frac = (double)(rp->read + rp->done_before) / (double)rp->item_count;
    else if (rp->paths && rp->total_bytes > 0)
        frac = (double)file_done_bytes(rp) / (double)rp->total_bytes;
    if (frac > 1)
        frac = 1;
    if (frac >= 0 && frac < 1 && rate > 0 && el > 0) {
        char d[32];

        /* From the fraction done in the time so far. */
        fmt_duration(el / (frac > 0.0001 ? frac : 0.0001) * (1 - frac), d, sizeof(d));
        snprintf(eta, sizeof(eta), ", ETA %s", d);
    }
    snprintf(line, sizeof(line), "replay %s: %" PRIu64 " items read%s%.0f%s, %" PRIu64
             " indexed, %.0f items/s, %" PRIu64 " errors%s",
             rp->o->table, rp->read, frac >= 0 ? " (" : "", frac >= 0 ? frac * 100 : 0,
             frac >= 0 ? "%)" : "", rp->indexed, rate, rp->errors + rp->dlq, eta);
    if (rp->tty && !final) {
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
    } else if (!final) {
        log_info("%s", line);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct replay *rp = container_of(t, struct replay, tick);
    const struct sink_stats *st = sink_stats(rp->app.sink);
    uint64_t now = uv_now(rp->app.loop);

    if (rp->tty || now - rp->last_log_ms >= (uint64_t)rp->o->progress_ms) {
        rp->last_log_ms = now;
        progress(rp, false);
    }
    if ((st->failing || st->blocked_indexes) && !rp->sink_failing_since)
        rp->sink_failing_since = now;
    else if (!st->failing && !st->blocked_indexes)
        rp->sink_failing_since = 0;
    if (rp->sink_failing_since && now - rp->sink_failing_since >= (uint64_t)rp->o->give_up_ms) {
        if (st->blocked_indexes)
            stop(rp, 69, "the search engine at %s refused writes to %s%s for %" PRId64 " s (%s); "
                 "run the same command again once the block is lifted", rp->app.cfg->sink.url,
                 *st->block_index ? "index " : "every index", st->block_index,
                 rp->o->give_up_ms / 1000, st->block_reason);
        else
            stop(rp, 69, "the search engine at %s failed every request for %" PRId64
                 " s; run the same command again once it is back", rp->app.cfg->sink.url,
                 rp->o->give_up_ms / 1000);
        return;
    }
    if (rp->progress_dirty && !rp->o->dry_run)
        save_progress(rp);
    log_flush_expired();
}

/* ---- the sink's callbacks ---------------------------------------------- */

static void reread_add(struct replay *rp, struct page *pg, size_t idx, struct dl_entry *de);
static void page_item_done(struct page *pg);
static void dl_done(struct replay *rp, struct dl_entry *de);

static void on_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome o,
                        void *arg)
{
    struct replay *rp = arg;
    struct dl_entry *de = owner == &rp->dl_owner ? (struct dl_entry *)(uintptr_t)ticket : NULL;

    switch (o) {
    case SINK_INDEXED:    rp->indexed++; break;
    case SINK_STALE:
    case SINK_GONE:
    case SINK_SUPERSEDED: rp->skipped++; break;
    case SINK_DLQ:        rp->dlq++; break;
    case SINK_EXPIRED:
        if (!rp->stopping && owner != rp)
            reread_add(rp, de ? NULL : owner, (size_t)ticket, de);
        return;
    case SINK_CANCELED:
    default:
        return; /* not finished: the saved position stays before it */
    }
    if (de)
        dl_done(rp, de);
    else if (owner == rp)
        rp->pending--;
    else
        page_item_done(owner);
    maybe_complete(rp);
}

static void on_sink_resume(void *arg)
{
    struct replay *rp = arg;

    if (rp->stopping)
        return;
    if (rp->paths)
        pump_start(rp);
    for (int i = 0; i < rp->nsegs; i++)
        if (rp->segs[i].state == SG_WAIT && !uv_is_active((uv_handle_t *)&rp->segs[i].timer)) {
            set_state(&rp->segs[i], SG_SCAN);
            drive(&rp->segs[i]);
        }
}

static bool scan_complete(const struct replay *rp)
{
    for (int i = 0; i < rp->nsegs; i++)
        if (!rp->segs[i].done)
            return false;
    return rp->nrr == 0;
}

static void maybe_complete(struct replay *rp)
{
    if (rp->stopping)
        return;
    if (rp->segs ? scan_complete(rp) : rp->all_read && rp->pending == 0) {
        if (rp->why[0])  /* a malformed line stopped the reading */
            stop(rp, 65, NULL);
        else
            stop(rp, 0, NULL);
    }
}

/* ---- versions ---------------------------------------------------------- */

/* Loses to every stream event of second (at - margin) or later. */
static uint64_t backfill_version(const struct replay *rp, int64_t at)
{
    int64_t s = at - rp->o->margin_s;

    if (s < 1)
        s = 1;
    if (s > CKPT_SECOND_MAX)
        s = CKPT_SECOND_MAX;
    return ((uint64_t)s << CKPT_ORDINAL_BITS) - 1;
}

static void doc_reset(struct replay *rp)
{
    struct buf src = rp->d.source, keys = rp->d.keys;

    memset(&rp->d, 0, sizeof(rp->d));
    rp->d.source = src;
    rp->d.keys = keys;
    if (!rp->d.keys.max)
        buf_init(&rp->d.keys, DOC_MAX);
    buf_reset(&rp->d.keys);
    if (!rp->d.source.max)
        buf_init(&rp->d.source, DOC_MAX);
    buf_reset(&rp->d.source);
    rp->d.table = rp->o->table;
    buf_reset(&rp->err);
}

/* ---- scan: progress file ------------------------------------------------ */

static json_t *progress_json(const struct replay *rp)
{
    json_t *segs = json_array();

    for (int i = 0; i < rp->nsegs; i++) {
        const struct segment *sg = &rp->segs[i];

        json_array_append_new(segs, json_pack("{s:b, s:O?, s:I}", "done", sg->done, "key",
                                              sg->saved, "items", (json_int_t)sg->items));
    }
    return json_pack("{s:i, s:s, s:i, s:o}", "version", PROGRESS_FORMAT, "table", rp->o->table,
                     "segments", rp->nsegs, "progress", segs);
}

struct save_job {
    uv_work_t work;
    struct replay *rp;
    char *data, *dir;
    size_t len;
    int status;
};

static void save_work(uv_work_t *w)
{
    struct save_job *j = container_of(w, struct save_job, work);

    j->status = ckpt_write_atomic(j->rp->progress_path, j->rp->progress_tmp, j->dir, j->data,
                                  j->len);
}

static void save_done(uv_work_t *w, int status)
{
    struct save_job *j = container_of(w, struct save_job, work);
    struct replay *rp = j->rp;

    rp->saving = false;
    if ((status ? status : j->status) < 0) {
        rp->progress_dirty = true;
        log_error("cannot write %s: %s; retrying", rp->progress_path,
                  strerror(-(status ? status : j->status)));
    }
    free(j->data);
    free(j);
    if (rp->stopping) /* take_down waited for this write */
        take_down(rp);
}

/* Writes the progress file: on the thread pool while running, on the loop
 * thread at the end. */
static void save_progress(struct replay *rp)
{
    json_t *j;
    struct save_job *job;

    if (rp->saving)
        return;
    j = progress_json(rp);
    job = calloc(1, sizeof(*job));
    if (!j || !job)
        goto fail;
    job->rp = rp;
    job->data = jsonx_dumps(j, &job->len); /* saved keys hold any string */
    job->dir = rp->app.cfg->daemon.state_dir;
    json_decref(j);
    j = NULL;
    if (!job->data)
        goto fail;
    rp->progress_dirty = false;
    if (!rp->closing_done) {
        if (uv_queue_work(rp->app.loop, &job->work, save_work, save_done) == 0) {
            rp->saving = true;
            return;
        }
    }
    save_work(&job->work);
    if (job->status < 0) {
        log_error("cannot write %s: %s", rp->progress_path, strerror(-job->status));
        if (rp->exit_code == 0)
            rp->exit_code = 74;
    }
    free(job->data);
    free(job);
    return;
fail:
    json_decref(j);
    free(job);
    rp->progress_dirty = true;
}

static int load_progress(struct replay *rp, int *nsegs)
{
    json_error_t jerr;
    json_t *root, *arr, *e;
    size_t i;
    int want = rp->o->segments;

    *nsegs = want ? want : 4;
    if (rp->o->restart) {
        if (unlink(rp->progress_path) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    root = jsonx_load_file(rp->progress_path, 0, &jerr);
    if (!root) {
        if (access(rp->progress_path, F_OK) != 0)
            return 0;
        snprintf(rp->why, sizeof(rp->why), "%s:%d: %s (use --restart to start over)",
                 rp->progress_path, jerr.line, jerr.text);
        return -EBADMSG;
    }
    arr = json_object_get(root, "progress");
    if (json_integer_value(json_object_get(root, "version")) != PROGRESS_FORMAT ||
        !json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > 1024 ||
        json_integer_value(json_object_get(root, "segments")) != (json_int_t)json_array_size(arr)) {
        snprintf(rp->why, sizeof(rp->why), "%s: not a replay progress file (use --restart to "
                 "start over)", rp->progress_path);
        json_decref(root);
        return -EBADMSG;
    }
    if (want && want != (int)json_array_size(arr))
        log_warn("%s was saved with %zu segments: continuing with %zu (--restart to change)",
                 rp->progress_path, json_array_size(arr), json_array_size(arr));
    *nsegs = (int)json_array_size(arr);
    rp->segs = calloc((size_t)*nsegs, sizeof(*rp->segs));
    if (!rp->segs) {
        json_decref(root);
        return -ENOMEM;
    }
    json_array_foreach(arr, i, e) {
        struct segment *sg = &rp->segs[i];
        json_t *key = json_object_get(e, "key");

        sg->done = json_is_true(json_object_get(e, "done"));
        sg->items = (uint64_t)json_integer_value(json_object_get(e, "items"));
        if (json_is_object(key)) {
            sg->saved = json_incref(key);
            sg->start = json_incref(key);
        }
        rp->done_before += sg->items;
    }
    json_decref(root);
    return 1;
}

/* ---- scan: segments ------------------------------------------------------ */

static void page_free(struct page *pg)
{
    for (size_t i = 0; i < pg->n; i++)
        json_decref(pg->keys[i]);
    free(pg->keys);
    json_decref(pg->lek);
    free(pg);
}

/* The finished prefix of the segment's pages moves the saved position. */
static void page_item_done(struct page *pg)
{
    struct segment *sg = pg->seg;
    struct replay *rp = sg->rp;

    pg->pending--;
    while (sg->head && sg->head->pending == 0) {
        struct page *h = sg->head;

        sg->head = h->next;
        if (!sg->head)
            sg->tail = NULL;
        json_decref(sg->saved);
        sg->saved = json_incref(h->lek);
        sg->items += h->n;
        if (!h->lek)
            sg->done = true;
        rp->progress_dirty = true;
        page_free(h);
    }
}

static void seg_backoff(struct segment *sg);

static void on_seg_timer(uv_timer_t *t)
{
    struct segment *sg = container_of(t, struct segment, timer);

    set_state(sg, SG_SCAN);
    drive(sg);
}

static void seg_backoff(struct segment *sg)
{
    long ms = backoff_ms(RETRY_BASE_MS, RETRY_MAX_MS, sg->failures++);
    set_state(sg, SG_BACKOFF);
    uv_timer_start(&sg->timer, on_seg_timer, (uint64_t)ms, 0);
}

/* Takes tokens for one request: the Limit to ask for, 0 = no Limit, or -1
 * when the bucket is empty (the segment waits on its timer). */
static int take_tokens(struct segment *sg)
{
    struct replay *rp = sg->rp;
    uint64_t now = uv_now(rp->app.loop);
    double cap;

    if (rp->eff_rate <= 0)
        return 0;
    cap = rp->eff_rate < 1 ? 1 : rp->eff_rate; /* a second's worth */
    rp->tokens += (double)(now - rp->tokens_at) / 1000.0 * rp->eff_rate;
    rp->tokens_at = now;
    if (rp->tokens > cap)
        rp->tokens = cap;
    if (rp->tokens < 1) {
        uint64_t wait = (uint64_t)ceil((1 - rp->tokens) / rp->eff_rate * 1000.0);

        set_state(sg, SG_WAIT);
        uv_timer_start(&sg->timer, on_seg_timer, wait ? wait : 1, 0);
        return -1;
    }
    /* Share the second's budget between the segments. */
    double share = cap / rp->nsegs;
    int limit = (int)(rp->tokens < share ? rp->tokens : share);

    if (limit < 1)
        limit = 1;
    if (limit > PAGE_MAX_LIMIT)
        limit = PAGE_MAX_LIMIT;
    rp->tokens -= limit;
    return limit;
}

static json_t *key_of(const struct replay *rp, json_t *item)
{
    json_t *k = json_object();

    json_object_setn_nocheck(k, rp->hash_key, rp->hash_key_len,
                             json_object_getn(item, rp->hash_key, rp->hash_key_len));
    if (rp->range_key)
        json_object_setn_nocheck(k, rp->range_key, rp->range_key_len,
                                 json_object_getn(item, rp->range_key, rp->range_key_len));
    return k;
}

/* One scanned (or read again) item into the sink, as item idx of pg. */
static void submit_item(struct replay *rp, struct page *pg, size_t idx, json_t *item, time_t at)
{
    enum transform_result tr;

    doc_reset(rp);
    tr = transform_item(&rp->tf, item, &rp->d, &rp->err);
    rp->d.version = backfill_version(rp, at);
    /* Never sent once the engine may have forgotten a newer delete. */
    rp->d.send_by = uv_now(rp->app.loop) + (uint64_t)rp->o->max_age_ms;
    if (tr == TR_DOC) {
        if (sink_submit(rp->app.sink, &rp->d, pg, idx) == 0)
            return;
    } else {
        rp->errors++;
        log_warn("item cannot be made into a document: %s", rp->err.ptr ? rp->err.ptr : "?");
        if (sink_dead_letter(rp->app.sink, &rp->d, item, "item_conversion_error",
                             rp->err.ptr ? rp->err.ptr : "malformed item", pg, idx) == 0)
            return;
    }
    /* Closing: the item stays unfinished, so its page is never saved as done. */
}

static void on_scan(const struct ddb_reply *rep, void *arg)
{
    struct segment *sg = arg;
    struct replay *rp = sg->rp;
    json_t *items, *lek, *item;
    struct page *pg;
    size_t i;
    time_t at = time(NULL);
    bool more;

    sg->call = NULL;
    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls != DDB_OK) {
        uint64_t now = uv_now(rp->app.loop);

        if (rp->eff_rate > 0)
            rp->tokens += sg->limit; /* nothing was read */
        if (rep->cls == DDB_THROTTLED) {
            double seen = mono_s(rp) > 1 ? (double)rp->read / mono_s(rp) : 100;

            rp->eff_rate = (rp->eff_rate > 0 ? rp->eff_rate : seen) / 2;
            if (rp->eff_rate < 1)
                rp->eff_rate = 1;
            log_warn("Scan throttled (%s): lowering the rate to %.0f items/s", rep->type,
                     rp->eff_rate);
        } else if (rep->cls == DDB_NOT_FOUND) {
            stop(rp, 69, "table %s: %s", rp->o->table, rep->message);
            return;
        } else if (rep->cls == DDB_FATAL && (strcmp(rep->type, "AccessDeniedException") == 0 ||
                                             strcmp(rep->type, "UnrecognizedClientException") == 0)) {
            stop(rp, 77, "Scan of %s refused: %s: %s", rp->o->table, rep->type, rep->message);
            return;
        } else {
            log_warn("Scan of %s segment %d failed: HTTP %ld %s %s; retrying", rp->o->table, sg->no,
                     rep->status, rep->type, rep->message);
        }
        if (!sg->failing_since)
            sg->failing_since = now;
        if (now - sg->failing_since >= (uint64_t)rp->o->give_up_ms) {
            stop(rp, 69, "Scan of %s failing for %" PRId64 " s: HTTP %ld %s %s", rp->o->table,
                 rp->o->give_up_ms / 1000, rep->status, rep->type, rep->message);
            return;
        }
        rp->errors++;
        seg_backoff(sg);
        return;
    }
    sg->failures = 0;
    sg->failing_since = 0;
    items = json_object_get(rep->json, "Items");
    lek = json_object_get(rep->json, "LastEvaluatedKey");
    if (rp->eff_rate > 0) {
        if (sg->limit > (int)json_array_size(items))
            rp->tokens += sg->limit - (int)json_array_size(items);
        /* Throttling lowered the cap: win it back slowly. */
        if (rp->o->rate <= 0 || rp->eff_rate < rp->o->rate) {
            rp->eff_rate *= 1.05;
            if (rp->o->rate > 0 && rp->eff_rate > rp->o->rate)
                rp->eff_rate = rp->o->rate;
        }
    }
    pg = calloc(1, sizeof(*pg));
    if (pg)
        pg->keys = calloc(json_array_size(items) + 1, sizeof(*pg->keys));
    if (!pg || !pg->keys) {
        free(pg);
        rp->errors++;
        seg_backoff(sg);
        return;
    }
    pg->seg = sg;
    pg->lek = json_is_object(lek) ? json_incref(lek) : NULL;
    pg->n = json_array_size(items);
    pg->pending = pg->n + 1; /* held while its items are submitted */
    more = pg->lek != NULL;
    if (sg->tail)
        sg->tail->next = pg;
    else
        sg->head = pg;
    sg->tail = pg;
    json_decref(sg->start);
    sg->start = json_incref(pg->lek);
    rp->read += pg->n;
    json_array_foreach(items, i, item) {
        pg->keys[i] = key_of(rp, item);
        submit_item(rp, pg, i, item, at);
    }
    /* Let go: an empty page, or one whose items all finished already, is
     * done (and freed) here — pg must not be used after this. */
    page_item_done(pg);
    set_state(sg, more ? SG_SCAN : SG_READ);
    drive(sg);
    maybe_complete(rp);
}

static int start_scan(struct segment *sg)
{
    struct replay *rp = sg->rp;
    json_t *body;
    int limit;

    if (sink_full(rp->app.sink)) {
        set_state(sg, SG_WAIT); /* on_sink_resume */
        return 0;
    }
    if ((limit = take_tokens(sg)) < 0)
        return 0;
    sg->limit = limit;
    body = json_pack("{s:s}", "TableName", rp->o->table);
    if (body && rp->nsegs > 1) {
        json_object_set_new(body, "Segment", json_integer(sg->no));
        json_object_set_new(body, "TotalSegments", json_integer(rp->nsegs));
    }
    if (body && limit)
        json_object_set_new(body, "Limit", json_integer(limit));
    if (body && sg->start)
        json_object_set(body, "ExclusiveStartKey", sg->start);
    if (body && rp->o->consistent)
        json_object_set_new(body, "ConsistentRead", json_true());
    sg->call = body ? ddb_call(rp->app.aws, AWS_DYNAMODB, "Scan", body, on_scan, sg, NULL) : NULL;
    if (!sg->call) {
        if (limit)
            rp->tokens += limit;
        seg_backoff(sg);
        return 0;
    }
    set_state(sg, SG_INFLIGHT);
    return 0;
}

static void drive(struct segment *sg)
{
    if (sg->rp->stopping)
        return;
    switch (sg->state) {
    case SG_SCAN:
        start_scan(sg);
        return;
    case SG_WAIT:
    case SG_INFLIGHT:
    case SG_BACKOFF:
    case SG_READ:
    default:
        return;
    }
}

/* ---- scan: reading expired images again --------------------------------- */

static void rr_start(struct replay *rp);

static void on_rr_timer(uv_timer_t *t)
{
    rr_start(container_of(t, struct replay, rr_timer));
}

static void reread_add(struct replay *rp, struct page *pg, size_t idx, struct dl_entry *de)
{
    if (rp->nrr == rp->caprr) {
        size_t ncap = rp->caprr ? rp->caprr * 2 : 64;
        struct reread *v = realloc(rp->rr, ncap * sizeof(*v));

        if (!v) {
            stop(rp, 70, "out of memory");
            return;
        }
        rp->rr = v;
        rp->caprr = ncap;
    }
    rp->rr[rp->nrr++] = (struct reread){ pg, idx, de, false };
    if (!rp->rr_call && !uv_is_active((uv_handle_t *)&rp->rr_timer))
        uv_timer_start(&rp->rr_timer, on_rr_timer, 0, 0); /* gather this turn's expiries */
}

static json_t *rr_key(const struct reread *e)
{
    return e->pg ? e->pg->keys[e->idx] : e->de->key;
}

/* Two key attribute values ({"S":"a"}, {"N":"1E+2"}...) name the same key:
 * numbers by value (a record's Keys may spell a number otherwise than the
 * table returns it), the rest byte for byte. */
static bool key_value_equal(json_t *a, json_t *b)
{
    json_t *na = json_object_get(a, "N"), *nb = json_object_get(b, "N");
    struct buf ca, cb;
    bool eq;

    if (!json_is_string(na) || !json_is_string(nb) || json_object_size(a) != 1 ||
        json_object_size(b) != 1)
        return jsonx_equal(a, b);
    buf_init(&ca, 512);
    buf_init(&cb, 512);
    eq = ddbnum_canonical(json_string_value(na), json_string_length(na), &ca) == 0 &&
         ddbnum_canonical(json_string_value(nb), json_string_length(nb), &cb) == 0 &&
         ca.len == cb.len && memcmp(ca.ptr, cb.ptr, ca.len) == 0;
    buf_close(&ca);
    buf_close(&cb);
    return eq;
}

static bool same_key(const struct replay *rp, json_t *item, json_t *key)
{
    if (!key_value_equal(json_object_getn(item, rp->hash_key, rp->hash_key_len),
                         json_object_getn(key, rp->hash_key, rp->hash_key_len)))
        return false;
    return !rp->range_key ||
           key_value_equal(json_object_getn(item, rp->range_key, rp->range_key_len),
                           json_object_getn(key, rp->range_key, rp->range_key_len));
}

static void dl_item(struct replay *rp, struct dl_entry *de, json_t *item, time_t at);

static void on_rr(const struct ddb_reply *rep, void *arg)
{
    struct replay *rp = arg;
    json_t *items, *unproc, *x;
    size_t keep = 0, j, gone = 0, again_sent = 0;
    time_t at = time(NULL);

    rp->rr_call = NULL;
    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls == DDB_FATAL || rep->cls == DDB_NOT_FOUND) {
        /* A refusal (ValidationException, AccessDenied...) is the same at
         * every retry. */
        stop(rp, strstr(rep->type, "AccessDenied") ? 77 : 69,
             "BatchGetItem on %s refused: HTTP %ld %s %s", rp->o->table, rep->status, rep->type,
             rep->message);
        return;
    }
    if (rep->cls != DDB_OK) {
        long ms = backoff_ms(RETRY_BASE_MS, RETRY_MAX_MS, rp->rr_failures++);

        log_warn("BatchGetItem on %s failed: HTTP %ld %s %s; retrying", rp->o->table, rep->status,
                 rep->type, rep->message);
        for (size_t i = 0; i < rp->nrr; i++)
            rp->rr[i].sent = false;
        uv_timer_start(&rp->rr_timer, on_rr_timer, (uint64_t)ms, 0);
        return;
    }
    items = json_object_get(json_object_get(rep->json, "Responses"), rp->o->table);
    unproc = json_object_get(json_object_get(json_object_get(rep->json, "UnprocessedKeys"),
                                             rp->o->table), "Keys");
    if (!json_array_size(unproc) || json_array_size(items))
        rp->rr_failures = 0; /* the backoff grows only while nothing comes back */
    for (size_t i = 0; i < rp->nrr; i++) {
        struct reread e = rp->rr[i];
        json_t *key = rr_key(&e), *item = NULL;
        bool again = false;

        if (!e.sent) {
            rp->rr[keep++] = e;
            continue;
        }
        json_array_foreach(unproc, j, x) again |= same_key(rp, x, key);
        if (again) {
            e.sent = false;
            rp->rr[keep++] = e;
            continue;
        }
        json_array_foreach(items, j, x) if (same_key(rp, x, key)) item = x;
        if (!e.pg) {
            again_sent += item != NULL;
            gone += item == NULL;
            dl_item(rp, e.de, item, at);
        } else if (item) {
            submit_item(rp, e.pg, e.idx, item, at);
            again_sent++;
        } else {
            rp->dropped++; /* deleted since it was scanned: nothing to index */
            rp->skipped++;
            gone++;
            page_item_done(e.pg);
        }
    }
    rp->nrr = keep;
    if (rp->o->format == REPLAY_DLQ)
        log_debug("read again: %zu item(s) found, %zu gone", again_sent, gone);
    else
        log_info("read again: %zu image(s) older than --max-age; %zu item(s) deleted since they "
                 "were scanned", again_sent, gone);
    if (json_array_size(unproc) && rp->nrr) {
        /* DynamoDB handed some keys back (throughput, or the 16 MB reply
         * limit): "use exponential backoff" (BatchGetItem API reference). */
        long ms = backoff_ms(RETRY_BASE_MS, RETRY_MAX_MS, rp->rr_failures++);

        uv_timer_start(&rp->rr_timer, on_rr_timer, (uint64_t)ms, 0);
    } else if (rp->nrr) {
        rr_start(rp);
    }
    if (rp->paths)
        pump_start(rp); /* room for more entries */
    maybe_complete(rp);
}

static void rr_start(struct replay *rp)
{
    json_t *keys = json_array(), *body;
    size_t n = 0;

    if (rp->rr_call || rp->stopping || !rp->nrr) {
        json_decref(keys);
        return;
    }
    for (size_t i = 0; i < rp->nrr && n < BATCHGET_MAX; i++) {
        json_t *k = rr_key(&rp->rr[i]);
        bool dup = false;

        /* BatchGetItem refuses a request naming one key twice. */
        for (size_t j = 0; j < json_array_size(keys) && !dup; j++)
            dup = same_key(rp, json_array_get(keys, j), k);
        if (dup)
            continue; /* the next request takes it */
        rp->rr[i].sent = true;
        json_array_append(keys, k);
        n++;
    }
    body = json_pack("{s:{s:{s:o, s:b}}}", "RequestItems", rp->o->table, "Keys", keys,
                     "ConsistentRead", 1);
    rp->rr_call = body ? ddb_call(rp->app.aws, AWS_DYNAMODB, "BatchGetItem", body, on_rr, rp, NULL)
                       : NULL;
    if (!rp->rr_call) {
        for (size_t i = 0; i < rp->nrr; i++)
            rp->rr[i].sent = false;
        uv_timer_start(&rp->rr_timer, on_rr_timer, 1000, 0);
    }
}

/* ---- DescribeTable ------------------------------------------------------ */

static void scan_begin(struct replay *rp);
static void files_begin(struct replay *rp);

/* A key attribute's name, which may hold NUL: a terminated copy and its length. */
static char *key_name(json_t *name, size_t *len)
{
    char *s = malloc(json_string_length(name) + 1);

    if (s) {
        *len = json_string_length(name);
        memcpy(s, json_string_value(name), *len + 1);
    }
    return s;
}

static void on_describe(const struct ddb_reply *rep, void *arg)
{
    struct replay *rp = arg;
    json_t *table = json_object_get(rep->json, "Table"), *k, *ic;
    size_t i;

    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls != DDB_OK) {
        int code = rep->cls == DDB_FATAL && (strstr(rep->type, "AccessDenied") ||
                                             strstr(rep->type, "UnrecognizedClient"))
                       ? 77
                       : 69;

        stop(rp, code, "DescribeTable %s: HTTP %ld %s %s", rp->o->table, rep->status, rep->type,
             rep->message);
        return;
    }
    json_array_foreach(json_object_get(table, "KeySchema"), i, k) {
        json_t *name = json_object_get(k, "AttributeName");
        const char *type = json_string_value(json_object_get(k, "KeyType"));

        if (json_is_string(name) && type && strcmp(type, "HASH") == 0 && !rp->hash_key)
            rp->hash_key = key_name(name, &rp->hash_key_len);
        else if (json_is_string(name) && type && strcmp(type, "RANGE") == 0 && !rp->range_key)
            rp->range_key = key_name(name, &rp->range_key_len);
    }
    json_array_foreach(json_object_get(table, "AttributeDefinitions"), i, k) {
        const char *name = json_string_value(json_object_get(k, "AttributeName"));
        const char *type = json_string_value(json_object_get(k, "AttributeType"));

        if (!name || !type || !strchr("SNB", type[0]) || !type[0] || type[1])
            continue;
        if (rp->hash_key && strcmp(name, rp->hash_key) == 0)
            rp->hash_type = type[0];
        else if (rp->range_key && strcmp(name, rp->range_key) == 0)
            rp->range_type = type[0];
    }
    ic = json_object_get(table, "ItemCount");
    rp->item_count = json_is_integer(ic) ? (int64_t)json_integer_value(ic) : -1;
    if (!rp->hash_key) {
        stop(rp, 69, "DescribeTable %s gave no hash key", rp->o->table);
        return;
    }
    rp->tf.hash_key = rp->hash_key;
    rp->tf.range_key = rp->range_key;
    rp->tf.hash_key_len = rp->hash_key_len;
    rp->tf.range_key_len = rp->range_key_len;
    if (rp->o->format == REPLAY_SCAN)
        scan_begin(rp);
    else
        files_begin(rp);
}

static void scan_begin(struct replay *rp)
{
    int n = 0;

    if (rp->nsegs == 0)
        n = 0;
    for (int i = 0; i < rp->nsegs; i++)
        n += !rp->segs[i].done;
    log_info("replay %s: Scan in %d segment(s)%s, %s%s; about %" PRId64 " items", rp->o->table,
             rp->nsegs, rp->done_before ? " (continuing)" : "",
             rp->o->rate > 0 ? "rate capped" : "no rate cap",
             rp->o->consistent ? ", consistent reads" : "", rp->item_count);
    if (n == 0) {
        log_info("replay %s: the saved Scan had already finished (--restart to run it again)",
                 rp->o->table);
        maybe_complete(rp);
        return;
    }
    rp->tokens_at = uv_now(rp->app.loop);
    for (int i = 0; i < rp->nsegs; i++) {
        struct segment *sg = &rp->segs[i];

        if (sg->done)
            continue;
        set_state(sg, SG_SCAN);
        drive(sg);
    }
}

/* ---- files ---------------------------------------------------------------- */

static void file_fail(struct replay *rp, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A malformed line: stop reading; exit 65 once what came before finished. */
static void file_fail(struct replay *rp, unsigned long line, const char *fmt, ...)
{
    char what[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(rp->why, sizeof(rp->why), "%s:%lu: %s", rp->paths[rp->cur], line, what);
    log_error("%s; finishing what was read before it", rp->why);
    rp->all_read = true;
    if (rp->idle_on) {
        uv_idle_stop(&rp->idle);
        rp->idle_on = false;
    }
    maybe_complete(rp);
}

static void submit_file_doc(struct replay *rp)
{
    rp->pending++;
    if (sink_submit(rp->app.sink, &rp->d, rp, 0) < 0)
        rp->pending--;
}

static void dead_letter_file(struct replay *rp, json_t *raw, const char *type)
{
    rp->errors++;
    rp->pending++;
    if (sink_dead_letter(rp->app.sink, &rp->d, raw, type,
                         rp->err.ptr ? rp->err.ptr : "malformed", rp, 0) < 0)
        rp->pending--;
}

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

/* The lineage of a shard the file names, made when first seen: a child
 * starts where its parent stands when the file names the parent and the
 * parent's records came first, as the daemon carries the ordinal from a
 * finished parent (ckpt_shard_resume_version).  NULL when out of memory. */
static struct lineage *lineage_of(struct replay *rp, const char *shard, const char *parent)
{
    uint32_t h = hash_bytes(shard, strlen(shard)) & (LINEAGE_BUCKETS - 1);
    struct lineage *l;

    if (!rp->lineages && !(rp->lineages = calloc(LINEAGE_BUCKETS, sizeof(*rp->lineages))))
        return NULL;
    for (l = rp->lineages[h]; l; l = l->next)
        if (strcmp(l->id, shard) == 0)
            return l;
    if (!(l = calloc(1, sizeof(*l) + strlen(shard) + 1)))
        return NULL;
    strcpy(l->id, shard);
    if (parent && *parent && strcmp(parent, shard) != 0) {
        uint32_t ph = hash_bytes(parent, strlen(parent)) & (LINEAGE_BUCKETS - 1);

        for (struct lineage *p = rp->lineages[ph]; p; p = p->next)
            if (strcmp(p->id, parent) == 0)
                l->ver = p->ver;
    }
    l->next = rp->lineages[h];
    rp->lineages[h] = l;
    return l;
}

static void iv_unlink(struct replay *rp, struct item_ver *v)
{
    if (v->older)
        v->older->newer = v->newer;
    else
        rp->iv_old = v->newer;
    if (v->newer)
        v->newer->older = v->older;
    else
        rp->iv_new = v->older;
    v->older = v->newer = NULL;
}

static void iv_push(struct replay *rp, struct item_ver *v)
{
    v->older = rp->iv_new;
    if (rp->iv_new)
        rp->iv_new->newer = v;
    else
        rp->iv_old = v;
    rp->iv_new = v;
}

/* The version state of one item (its _id), for records whose shard is not
 * known; the least recently seen item is forgotten past IV_MAX.  NULL when
 * out of memory. */
static struct item_ver *item_ver_of(struct replay *rp, const char *id, size_t len)
{
    uint32_t hash = hash_bytes(id, len);
    struct item_ver **link, *v;

    if (!rp->ivs && !(rp->ivs = calloc(IV_BUCKETS, sizeof(*rp->ivs))))
        return NULL;
    for (v = rp->ivs[hash & (IV_BUCKETS - 1)]; v; v = v->hnext)
        if (v->hash == hash && v->len == len && memcmp(v->id, id, len) == 0) {
            iv_unlink(rp, v);
            iv_push(rp, v);
            return v;
        }
    if (rp->niv >= IV_MAX) {
        struct item_ver *old = rp->iv_old;

        iv_unlink(rp, old);
        for (link = &rp->ivs[old->hash & (IV_BUCKETS - 1)]; *link != old; link = &(*link)->hnext)
            ;
        *link = old->hnext;
        free(old);
        rp->niv--;
    }
    if (!(v = calloc(1, sizeof(*v) + len + 1)))
        return NULL;
    v->hash = hash;
    v->len = len;
    memcpy(v->id, id, len);
    v->hnext = rp->ivs[hash & (IV_BUCKETS - 1)];
    rp->ivs[hash & (IV_BUCKETS - 1)] = v;
    iv_push(rp, v);
    rp->niv++;
    return v;
}

/* The version the daemon gave (or gives) the record just transformed into
 * rp->d: (second << 20) | ordinal, the ordinal counting the records of its
 * second along its shard's lineage (daemon/ack.h, ckpt_next_version).
 *   shard known: counted along it (and from its parent, see lineage_of),
 *     as the daemon does: equal to the daemon's when the file holds the
 *     lineage's records from where the daemon began reading it.  A record
 *     at or below the last sequence number of its shard was given already:
 *     *dup is set.
 *   shard unknown: counted along the item's own records in the file, a
 *     subset of its lineage's, so never above the daemon's ordinal: an
 *     older record never wins over the daemon's newer image, and the
 *     file's records of one item keep their order.
 * 0 when out of memory (sent without a version: the later write wins). */
static uint64_t record_version(struct replay *rp, const char *shard, const char *parent,
                               bool *dup)
{
    struct ckpt_version fresh = { 0, 0 };
    struct lineage *l;
    struct item_ver *v;

    *dup = false;
    if (shard) {
        if (!(l = lineage_of(rp, shard, parent)))
            return 0;
        if (seqnum_valid(rp->d.seq)) {
            if (l->last_seq[0] && seqnum_cmp(rp->d.seq, l->last_seq) <= 0) {
                *dup = true;
                return 0;
            }
            memcpy(l->last_seq, rp->d.seq, strlen(rp->d.seq) + 1);
        }
        return ckpt_next_version(&l->ver, rp->d.created);
    }
    if (!rp->d.id_len)
        return ckpt_next_version(&fresh, rp->d.created);
    if (!(v = item_ver_of(rp, rp->d.id, rp->d.id_len)))
        return 0;
    return ckpt_next_version(&v->ver, rp->d.created);
}

/* One stream record; shard and parent (may be NULL) as the file gives them. */
static void take_record(struct replay *rp, json_t *rec, unsigned long line, const char *shard,
                        const char *parent)
{
    enum transform_result tr;
    bool dup;

    rp->read++;
    doc_reset(rp);
    tr = transform_record(&rp->tf, rec, &rp->d, &rp->err);
    /* Every record counts in its second, as in the daemon, sent or not. */
    rp->d.version = record_version(rp, shard, parent, &dup);
    if (dup) {
        rp->skipped++;
        rp->dups++;
        logc_debug((&(struct log_ctx){ .table = rp->o->table, .shard = shard }),
                   "%s:%lu: record %s was read already from this shard: skipped",
                   rp->paths[rp->cur], line, rp->d.seq);
        return;
    }
    switch (tr) {
    case TR_DOC:
        submit_file_doc(rp);
        break;
    case TR_SKIP:
        rp->skipped++;
        break;
    case TR_NEED_ITEM:
        /* KEYS_ONLY / OLD_IMAGE: the file has no new image; a Scan has. */
        rp->skipped++;
        logc_warn((&(struct log_ctx){ .table = rp->o->table }),
                  "%s:%lu: record without a new image skipped (use --scan for such streams)",
                  rp->paths[rp->cur], line);
        break;
    case TR_ERROR:
    default:
        logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s:%lu: %s", rp->paths[rp->cur],
                  line, rp->err.ptr ? rp->err.ptr : "?");
        dead_letter_file(rp, rec, "record_conversion_error");
        break;
    }
}

static bool is_record(json_t *v)
{
    return json_is_object(json_object_get(v, "dynamodb"));
}

/* A member naming a shard: a non-empty string, else NULL. */
static const char *shard_member(json_t *obj, const char *name, const char *dflt)
{
    const char *v = json_string_value(json_object_get(obj, name));

    return v && *v ? v : dflt;
}

/* A stream-record value: a record; a Lambda event or a GetRecords reply
 * ({"Records":[...]}); or a Lambda on-failure invocation record kept with
 * its event, as an S3 destination keeps it (DDBStreamBatchInfo.shardId, the
 * event in "payload", as an object or as its JSON text).  The shard comes
 * from a record's "shardId" (and "parentShardId"), else from the same
 * members of the event around it, else from DDBStreamBatchInfo.shardId:
 * the Streams API and Lambda put no shard in records or events. */
static void stream_value(struct replay *rp, json_t *v, unsigned long line)
{
    json_t *recs = json_object_get(v, "Records"), *r, *info = json_object_get(v,
                                                                             "DDBStreamBatchInfo");
    json_t *payload = NULL;
    const char *shard = NULL, *parent = NULL;
    size_t i;

    if (json_is_object(info)) {
        json_t *p = json_object_get(v, "payload");

        shard = shard_member(info, "shardId", NULL);
        if (json_is_string(p))
            payload = jsonx_loadb(json_string_value(p), json_string_length(p), 0, NULL);
        else if (json_is_object(p))
            payload = json_incref(p);
        recs = json_object_get(payload, "Records");
        if (!json_is_array(recs)) {
            json_decref(payload);
            file_fail(rp, line, "a Lambda on-failure record without its event (\"payload\" with "
                      "\"Records\"): SQS and SNS destinations keep only the records' position "
                      "(DDBStreamBatchInfo); read them from the stream or a file that holds them");
            return;
        }
        v = payload;
    }
    shard = shard_member(v, "shardId", shard);
    parent = shard_member(v, "parentShardId", NULL);
    if (json_is_array(recs)) { /* a Lambda event, a GetRecords reply */
        json_array_foreach(recs, i, r) {
            if (!is_record(r)) {
                file_fail(rp, line, "Records[%zu] is not a stream record (no \"dynamodb\" object)",
                          i);
                json_decref(payload);
                return;
            }
        }
        json_array_foreach(recs, i, r) take_record(rp, r, line, shard_member(r, "shardId", shard),
                                                   shard_member(r, "parentShardId", parent));
        json_decref(payload);
        return;
    }
    if (!is_record(v)) {
        file_fail(rp, line, "not a stream record (no \"dynamodb\" object) nor a Lambda event "
                  "(no \"Records\" array)");
        return;
    }
    take_record(rp, v, line, shard, parent);
}

static void export_value(struct replay *rp, json_t *v, unsigned long line)
{
    json_t *item = json_object_get(v, "Item");

    if (!json_is_object(item)) {
        file_fail(rp, line, "not an export line (no \"Item\" object)");
        return;
    }
    rp->read++;
    doc_reset(rp);
    if (transform_item(&rp->tf, item, &rp->d, &rp->err) == TR_DOC) {
        rp->d.version = backfill_version(rp, rp->export_time);
        submit_file_doc(rp);
        return;
    }
    logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s:%lu: %s", rp->paths[rp->cur], line,
              rp->err.ptr ? rp->err.ptr : "?");
    dead_letter_file(rp, item, "item_conversion_error");
}

/* The dead-letter entries keep their index name; the sink borrows it. */
static const char *intern_index(struct replay *rp, const char *name)
{
    char **v;

    for (size_t i = 0; i < rp->nindexes; i++)
        if (strcmp(rp->indexes[i], name) == 0)
            return rp->indexes[i];
    v = realloc(rp->indexes, (rp->nindexes + 1) * sizeof(*v));
    if (!v)
        return NULL;
    rp->indexes = v;
    if (!(v[rp->nindexes] = strdup(name)))
        return NULL;
    return v[rp->nindexes++];
}

/* ---- dead-letter entries: the item read again ------------------------------ */

static void dl_done(struct replay *rp, struct dl_entry *de)
{
    if (de->prev)
        de->prev->next = de->next;
    else
        rp->dl_live = de->next;
    if (de->next)
        de->next->prev = de->prev;
    json_decref(de->key);
    free(de);
    rp->pending--;
}

/* The entry's item as the table holds it now (item NULL: gone), sent with
 * the Scan's version and send_by: it loses to every stream event of its
 * second or later, and is never sent after the engine may have forgotten a
 * newer delete (an expired one is read again). */
static void dl_item(struct replay *rp, struct dl_entry *de, json_t *item, time_t at)
{
    enum transform_result tr;

    doc_reset(rp);
    if (!item && de->digest_like) {
        /* Its _id may be the digest of a long key: the item with this
         * literal key is missing, the one behind the digest may not be. */
        char *k = json_dumps(de->key, JSON_COMPACT);

        rp->skipped++;
        rp->dl_unresolved++;
        logc_warn((&(struct log_ctx){ .table = rp->o->table }),
                  "dead-letter entry without \"keys\": no item has the key %s read back from its "
                  "_id, which may be the digest of a longer key; not replayed", k ? k : "?");
        free(k);
        dl_done(rp, de);
        return;
    }
    tr = item ? transform_item(&rp->tf, item, &rp->d, &rp->err)
              : transform_keys(&rp->tf, de->key, &rp->d, &rp->err);
    rp->d.index = de->index;
    rp->d.version = backfill_version(rp, at);
    if (item)
        rp->d.send_by = uv_now(rp->app.loop) + (uint64_t)rp->o->max_age_ms;
    else
        rp->dropped++; /* deleted since: the index loses it too */
    if (tr == TR_DOC) {
        if (sink_submit(rp->app.sink, &rp->d, &rp->dl_owner, (uint64_t)(uintptr_t)de) == 0)
            return;
    } else {
        rp->errors++;
        log_warn("item cannot be made into a document: %s", rp->err.ptr ? rp->err.ptr : "?");
        if (sink_dead_letter(rp->app.sink, &rp->d, item ? item : de->key, "item_conversion_error",
                             rp->err.ptr ? rp->err.ptr : "malformed item", &rp->dl_owner,
                             (uint64_t)(uintptr_t)de) == 0)
            return;
    }
    /* Closing: left unfinished. */
}

/* A key attribute value ({"S":..}, {"N":..} or {"B":..}) of the table's type. */
static bool key_value_ok(json_t *v, char type)
{
    const char *t = json_object_iter_key(json_object_iter(v));

    return json_object_size(v) == 1 && t && (!type || (t[0] == type && !t[1])) &&
           strchr("SNB", t[0]) && !t[1] && json_is_string(json_object_iter_value(json_object_iter(v)));
}

/* The entry's "keys" (or a raw input's) checked against the key schema. */
static json_t *key_checked(const struct replay *rp, json_t *keys)
{
    json_t *k;

    if (!json_is_object(keys) || json_object_size(keys) != (rp->range_key ? 2u : 1u) ||
        !key_value_ok(json_object_get(keys, rp->hash_key), rp->hash_type) ||
        (rp->range_key && !key_value_ok(json_object_get(keys, rp->range_key), rp->range_type)))
        return NULL;
    k = json_object();
    json_object_set(k, rp->hash_key, json_object_get(keys, rp->hash_key));
    if (rp->range_key)
        json_object_set(k, rp->range_key, json_object_get(keys, rp->range_key));
    return k;
}

static bool hmac_named(const struct replay *rp, const char *name)
{
    for (size_t i = 0; name && i < rp->tf.n_hmac; i++)
        if (strcmp(rp->tf.hmac[i], name) == 0)
            return true;
    return false;
}

/* Entries written before they carried "keys": the key read back from the
 * _id (transform.h: key values joined by id_sep, id_sep and '\' escaped
 * with '\'), with the attribute types DescribeTable gave.  NULL when it
 * cannot be (a hmac'd key attribute, types unknown, not such an _id), or
 * when the key found does not make the same _id again. */
static json_t *key_from_id(struct replay *rp, const char *id, size_t len, bool *digest_like)
{
    struct buf part[2];
    json_t *key = NULL;
    size_t n = 0;
    bool ok = true;

    *digest_like = false;
    if (!rp->hash_type || (rp->range_key && !rp->range_type) || hmac_named(rp, rp->hash_key) ||
        hmac_named(rp, rp->range_key))
        return NULL;
    buf_init(&part[0], DOC_ID_MAX + 1);
    buf_init(&part[1], DOC_ID_MAX + 1);
    for (size_t i = 0; ok && i < len; i++) {
        if (id[i] == '\\' && i + 1 < len)
            ok = buf_putc(&part[n], id[++i]) == 0;
        else if (id[i] == rp->tf.id_sep && rp->range_key && n == 0)
            n = 1;
        else
            ok = buf_putc(&part[n], id[i]) == 0;
    }
    if (ok && n == (rp->range_key ? 1u : 0u)) {
        char t[2][2] = { { rp->hash_type, 0 }, { rp->range_type, 0 } };

        key = json_object();
        json_object_set_new(key, rp->hash_key,
                            json_pack("{s:s%}", t[0], part[0].ptr ? part[0].ptr : "", part[0].len));
        if (rp->range_key)
            json_object_set_new(key, rp->range_key,
                                json_pack("{s:s%}", t[1], part[1].ptr ? part[1].ptr : "",
                                          part[1].len));
    }
    buf_close(&part[0]);
    buf_close(&part[1]);
    /* The key must give this very _id (a changed id_separator, a
     * malformed number or base64 fail here). */
    buf_reset(&rp->scratch.source);
    if (key && (transform_keys(&rp->tf, key, &rp->scratch, NULL) != TR_DOC ||
                rp->scratch.id_len != len || memcmp(rp->scratch.id, id, len) != 0)) {
        json_decref(key);
        key = NULL;
    }
    if (key && len == 64) {
        *digest_like = true;
        for (size_t i = 0; i < len; i++)
            if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                *digest_like = false;
    }
    return key;
}

/* The item a dead-letter entry is about: its "keys"; else, for input that
 * never became a document, the raw input's (a record's dynamodb.Keys, an
 * item's key attributes); else the key read back from its _id. */
static json_t *entry_key(struct replay *rp, json_t *meta, const char *doc, size_t doc_len,
                         bool *digest_like)
{
    json_t *keys = json_object_get(meta, "keys"), *id = json_object_get(meta, "id"), *k = NULL;

    *digest_like = false;
    if (!json_is_null(keys) && keys)
        return key_checked(rp, keys);
    if (doc && json_is_null(json_object_get(meta, "status"))) {
        json_t *raw = jsonx_loadb(doc, doc_len, 0, NULL), *tmp;

        if (is_record(raw)) {
            k = key_checked(rp, json_object_get(json_object_get(raw, "dynamodb"), "Keys"));
        } else if (json_is_object(raw)) {
            tmp = key_of(rp, raw);
            k = key_checked(rp, tmp);
            json_decref(tmp);
        }
        json_decref(raw);
        if (k)
            return k;
    }
    if (json_string_length(id) == 0)
        return NULL;
    return key_from_id(rp, json_string_value(id), json_string_length(id), digest_like);
}

/* A dead-letter entry: its item is read again and sent as the table holds
 * it now, whatever the entry's document and version say (hours old, they
 * could overwrite a newer image the engine took since, or resurrect a
 * deleted item once the engine forgot the delete). */
static void dlq_line(struct replay *rp, const char *p, size_t len, unsigned long line)
{
    json_t *meta = NULL;
    const char *doc, *table, *index;
    size_t doc_len;
    char why[256];
    struct dl_entry *de;
    bool digest_like;
    json_t *key;

    if (dlq_parse(p, len, &meta, &doc, &doc_len, why, sizeof(why)) < 0) {
        file_fail(rp, line, "%s", why);
        return;
    }
    table = json_string_value(json_object_get(meta, "table"));
    index = json_string_value(json_object_get(meta, "index"));
    if (table && strcmp(table, rp->o->table) != 0) {
        rp->other_tables++;
        json_decref(meta);
        return;
    }
    rp->read++;
    key = entry_key(rp, meta, doc, doc_len, &digest_like);
    if (!key) {
        json_t *keys = json_object_get(meta, "keys");
        const char *what = keys && !json_is_null(keys)
                               ? "its \"keys\" do not match the table's key schema"
                           : hmac_named(rp, rp->hash_key) || hmac_named(rp, rp->range_key)
                               ? "no \"keys\", and its _id holds a hmac'd key attribute"
                           : !rp->hash_type
                               ? "no \"keys\", and its _id cannot be read back without the key "
                                 "types from DescribeTable (leave --key out)"
                               : "no \"keys\", and its _id does not read back into a key of "
                                 "this table";

        rp->dl_unresolved++;
        rp->skipped++;
        logc_warn((&(struct log_ctx){ .table = rp->o->table }),
                  "%s:%lu: the entry's item cannot be found (%s): not replayed",
                  rp->paths[rp->cur], line, what);
        json_decref(meta);
        return;
    }
    de = calloc(1, sizeof(*de));
    if (de)
        de->index = rp->o->index ? rp->o->index : intern_index(rp, index);
    json_decref(meta);
    if (!de || !de->index) {
        free(de);
        json_decref(key);
        stop(rp, 70, "out of memory");
        return;
    }
    de->key = key;
    de->digest_like = digest_like;
    de->next = rp->dl_live;
    if (rp->dl_live)
        rp->dl_live->prev = de;
    rp->dl_live = de;
    rp->pending++;
    reread_add(rp, NULL, 0, de);
}

static void handle_value(struct replay *rp, json_t *v, unsigned long line)
{
    if (rp->o->format == REPLAY_STREAM)
        stream_value(rp, v, line);
    else
        export_value(rp, v, line);
}

static int open_next(struct replay *rp)
{
    if (rp->gz) {
        struct stat st;

        rp->bytes_before += stat(rp->paths[rp->cur], &st) == 0 ? st.st_size : 0;
        gzclose(rp->gz);
        rp->gz = NULL;
        rp->cur++;
    }
    if (rp->cur >= rp->npaths)
        return 0;
    rp->gz = gzopen(rp->paths[rp->cur], "rb");
    if (!rp->gz) {
        stop(rp, 74, "cannot open %s: %s", rp->paths[rp->cur], strerror(errno ? errno : EIO));
        return -EIO;
    }
    gzbuffer(rp->gz, 256 * 1024);
    buf_reset(&rp->in);
    rp->off = 0;
    rp->lineno = 0;
    rp->file_eof = false;
    log_debug("reading %s", rp->paths[rp->cur]);
    return 1;
}

/* Reads more of the current file into rp->in.  0, or -1 after stop(). */
static int fill(struct replay *rp)
{
    int n;

    if (rp->off) {
        memmove(rp->in.ptr, rp->in.ptr + rp->off, rp->in.len - rp->off);
        rp->in.len -= rp->off;
        rp->off = 0;
    }
    if (rp->in.len >= LINE_MAX_BYTES) {
        file_fail(rp, rp->lineno + 1, "line longer than %u bytes", LINE_MAX_BYTES);
        return -1;
    }
    if (buf_reserve(&rp->in, READ_CHUNK) < 0) {
        stop(rp, 70, "out of memory");
        return -1;
    }
    n = gzread(rp->gz, rp->in.ptr + rp->in.len, READ_CHUNK);
    if (n < 0) {
        int zerr;
        const char *msg = gzerror(rp->gz, &zerr);

        if (zerr == Z_DATA_ERROR || zerr == Z_BUF_ERROR)
            file_fail(rp, rp->lineno + 1, "corrupt gzip data: %s", msg);
        else
            stop(rp, 74, "%s: read failed: %s", rp->paths[rp->cur], msg);
        return -1;
    }
    if (n == 0)
        rp->file_eof = true;
    rp->in.len += (size_t)n;
    rp->in.ptr[rp->in.len] = '\0';
    return 0;
}

/* A Lambda event file: one JSON document over many lines.  The whole file
 * (bounded) is parsed once. */
static void whole_file(struct replay *rp, size_t start)
{
    json_error_t jerr;
    json_t *v;

    rp->off = start;
    while (!rp->file_eof)
        if (fill(rp) < 0)
            return;
    v = jsonx_loadb(rp->in.ptr + rp->off, rp->in.len - rp->off, 0, &jerr);
    rp->off = rp->in.len;
    if (!v) {
        file_fail(rp, (unsigned long)jerr.line, "%s", jerr.text);
        return;
    }
    stream_value(rp, v, 1);
    json_decref(v);
}

static void one_line(struct replay *rp, char *p, size_t len)
{
    json_error_t jerr;
    json_t *v;
    size_t start = (size_t)(p - rp->in.ptr);

    while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    while (len && (*p == ' ' || *p == '\t'))
        p++, len--;
    if (!len)
        return;
    if (rp->o->format == REPLAY_DLQ) {
        dlq_line(rp, p, len, rp->lineno);
        return;
    }
    v = jsonx_loadb(p, len, 0, &jerr);
    if (!v && rp->lineno == 1 && rp->o->format == REPLAY_STREAM && *p == '{') {
        whole_file(rp, start);
        return;
    }
    if (!v) {
        file_fail(rp, rp->lineno, "not JSON: %s", jerr.text);
        return;
    }
    handle_value(rp, v, rp->lineno);
    json_decref(v);
}

/* Reads and submits until the sink is full or the turn's budget is spent. */
static void on_idle(uv_idle_t *h)
{
    struct replay *rp = container_of(h, struct replay, idle);
    size_t budget = TURN_BUDGET;

    while (!rp->stopping && !rp->all_read && !sink_full(rp->app.sink) && budget &&
           rp->nrr < RR_QUEUE_MAX) {
        char *p, *nl;
        size_t len;

        if (!rp->gz || (rp->file_eof && rp->off >= rp->in.len)) {
            int rc = open_next(rp);

            if (rc < 0)
                return;
            if (rc == 0) {
                rp->all_read = true;
                break;
            }
        }
        p = rp->in.ptr ? rp->in.ptr + rp->off : NULL;
        nl = p ? memchr(p, '\n', rp->in.len - rp->off) : NULL;
        if (!nl && !rp->file_eof) {
            if (fill(rp) < 0)
                return;
            continue;
        }
        len = nl ? (size_t)(nl - p) : rp->in.len - rp->off;
        rp->off += len + (nl ? 1 : 0);
        rp->lineno++;
        budget = budget > len ? budget - len - 1 : 0;
        one_line(rp, p, len);
    }
    if (rp->all_read || sink_full(rp->app.sink) || rp->stopping || rp->nrr >= RR_QUEUE_MAX) {
        if (rp->idle_on)
            uv_idle_stop(&rp->idle);
        rp->idle_on = false;
        if (rp->all_read)
            sink_flush(rp->app.sink);
        maybe_complete(rp);
    }
}

static void pump_start(struct replay *rp)
{
    if (rp->idle_on || rp->all_read || rp->stopping)
        return;
    rp->idle_on = true;
    uv_idle_start(&rp->idle, on_idle);
}

static void files_begin(struct replay *rp)
{
    log_info("replay %s: %zu file(s), %" PRId64 " bytes, format %s", rp->o->table, rp->npaths,
             rp->total_bytes, rp->o->format == REPLAY_EXPORT ? "export"
                              : rp->o->format == REPLAY_STREAM ? "stream" : "dlq");
    pump_start(rp);
}

/* ---- the file list and the export's time -------------------------------- */

static int add_path(struct replay *rp, const char *dir, const char *name)
{
    char **v = realloc(rp->paths, (rp->npaths + 1) * sizeof(*v));
    struct stat st;

    if (!v)
        return -ENOMEM;
    rp->paths = v;
    if (asprintf(&v[rp->npaths], "%s%s%s", dir ? dir : "", dir ? "/" : "", name) < 0)
        return -ENOMEM;
    if (stat(v[rp->npaths], &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(rp->why, sizeof(rp->why), "%s: %s", v[rp->npaths],
                 errno ? strerror(errno) : "not a regular file");
        free(v[rp->npaths]);
        return -ENOENT;
    }
    rp->total_bytes += st.st_size;
    rp->npaths++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool data_name(const char *n)
{
    size_t l = strlen(n);

    if (n[0] == '.' || strncmp(n, "manifest-", 9) == 0 || strcmp(n, "_started") == 0)
        return false;
    return (l > 5 && strcmp(n + l - 5, ".json") == 0) ||
           (l > 8 && strcmp(n + l - 8, ".json.gz") == 0) ||
           (l > 7 && strcmp(n + l - 7, ".ndjson") == 0) || (l > 3 && strcmp(n + l - 3, ".gz") == 0);
}

/* Every data file of a directory, sorted. */
static int add_dir(struct replay *rp, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    if (!d) {
        snprintf(rp->why, sizeof(rp->why), "%s: %s", dir, strerror(errno));
        return -errno;
    }
    while (rc == 0 && (e = readdir(d))) {
        char **v;

        if (!data_name(e->d_name))
            continue;
        v = realloc(names, (n + 1) * sizeof(*v));
        if (!v || !(v[n] = strdup(e->d_name))) {
            rc = -ENOMEM;
            names = v ? v : names;
            break;
        }
        names = v;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = add_path(rp, dir, names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* manifest-files.json: one JSON object a line naming a data file
 * (dataFileS3Key, whose last two parts are data/<name>). */
static int add_manifest_files(struct replay *rp, const char *dir, const char *manifest)
{
    FILE *f = fopen(manifest, "r");
    char *line = NULL, *sub;
    size_t cap = 0;
    ssize_t n;
    unsigned long no = 0;
    int rc = 0;

    if (!f)
        return -errno;
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        json_t *j = jsonx_loadb(line, (size_t)n, 0, NULL);
        const char *key = json_string_value(json_object_get(j, "dataFileS3Key"));
        const char *base = key ? strrchr(key, '/') : NULL;

        no++;
        if (!key) {
            if (line[strspn(line, " \t\r\n")])
                snprintf(rp->why, sizeof(rp->why), "%s:%lu: no dataFileS3Key", manifest, no),
                    rc = -EBADMSG;
            json_decref(j);
            continue;
        }
        base = base ? base + 1 : key;
        if (asprintf(&sub, "%s/data", dir) < 0) {
            rc = -ENOMEM;
        } else {
            rc = add_path(rp, sub, base);
            free(sub);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return rc;
}

static int export_time_from(struct replay *rp, const char *summary)
{
    json_error_t jerr;
    json_t *j = jsonx_load_file(summary, 0, &jerr);
    const char *t = json_string_value(json_object_get(j, "exportTime"));
    const char *fmt = json_string_value(json_object_get(j, "outputFormat"));
    int rc = 0;

    if (!j) {
        snprintf(rp->why, sizeof(rp->why), "%s:%d: %s", summary, jerr.line, jerr.text);
        return -EBADMSG;
    }
    if (fmt && strcmp(fmt, "DYNAMODB_JSON") != 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: outputFormat %s: only DYNAMODB_JSON exports can "
                 "be read", summary, fmt);
        rc = -EBADMSG;
    } else if (!t || replay_parse_time(t, &rp->export_time) < 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: no valid exportTime", summary);
        rc = -EBADMSG;
    } else {
        log_info("export of %s, as of %s", summary, t);
    }
    json_decref(j);
    return rc;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* --file PATH: a file, or a directory (an export's: manifest-files.json and
 * data/, or any directory of data files). */
static int resolve_files(struct replay *rp)
{
    const char *path = rp->o->file;
    struct stat st;
    char *m = NULL, *summary = NULL;
    int rc;

    if (stat(path, &st) < 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    if (S_ISDIR(st.st_mode)) {
        if (asprintf(&m, "%s/manifest-files.json", path) < 0 ||
            asprintf(&summary, "%s/manifest-summary.json", path) < 0)
            return -ENOMEM;
        if (exists(m)) {
            rc = add_manifest_files(rp, path, m);
        } else {
            free(m);
            m = NULL;
            if (asprintf(&m, "%s/data", path) < 0)
                return -ENOMEM;
            rc = add_dir(rp, exists(m) ? m : path);
        }
    } else {
        /* A single data file of an export: its manifest is one level up. */
        char *dup = strdup(path), *dir = dup ? dirname(dup) : NULL;

        rc = add_path(rp, NULL, path);
        if (rc == 0 && dir && (asprintf(&summary, "%s/manifest-summary.json", dir) < 0 ||
                               (!exists(summary) && (free(summary), summary = NULL,
                                                     asprintf(&summary, "%s/../manifest-summary.json",
                                                              dir) < 0))))
            rc = -ENOMEM;
        free(dup);
    }
    if (rc == 0 && rp->npaths == 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: no data files", path);
        rc = -ENOENT;
    }
    if (rc == 0 && rp->o->format == REPLAY_EXPORT) {
        if (summary && exists(summary))
            rc = export_time_from(rp, summary);
        else if (rp->o->read_time > 0)
            rp->export_time = rp->o->read_time;
        else {
            snprintf(rp->why, sizeof(rp->why), "%s: no manifest-summary.json with the export's "
                     "time: give it with --read-time (the export's exportTime)", path);
            rc = -EINVAL;
        }
    }
    free(m);
    free(summary);
    return rc;
}

/* ---- start ---------------------------------------------------------------- */

int replay_parse_time(const char *s, int64_t *out)
{
    char *end;
    long long v;
    time_t t;

    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0 && v > 0) {
        *out = v;
        return 0;
    }
    if (rfc3339_parse(s, &t) < 0)
        return -EINVAL;
    *out = (int64_t)t;
    return 0;
}

static void rp_free(struct replay *rp)
{
    for (int i = 0; i < rp->nsegs; i++) {
        struct segment *sg = &rp->segs[i];

        while (sg->head) {
            struct page *n = sg->head->next;

            page_free(sg->head);
            sg->head = n;
        }
        json_decref(sg->start);
        json_decref(sg->saved);
    }
    free(rp->segs);
    free(rp->rr);
    for (size_t i = 0; i < rp->npaths; i++)
        free(rp->paths[i]);
    free(rp->paths);
    if (rp->gz)
        gzclose(rp->gz);
    for (size_t i = 0; i < rp->nindexes; i++)
        free(rp->indexes[i]);
    free(rp->indexes);
    for (size_t i = 0; rp->lineages && i < LINEAGE_BUCKETS; i++)
        while (rp->lineages[i]) {
            struct lineage *l = rp->lineages[i];

            rp->lineages[i] = l->next;
            free(l);
        }
    free(rp->lineages);
    while (rp->iv_old) {
        struct item_ver *v = rp->iv_old;

        rp->iv_old = v->newer;
        free(v);
    }
    free(rp->ivs);
    while (rp->dl_live) {
        struct dl_entry *de = rp->dl_live;

        rp->dl_live = de->next;
        json_decref(de->key);
        free(de);
    }
    buf_close(&rp->in);
    buf_close(&rp->d.source);
    buf_close(&rp->d.keys);
    buf_close(&rp->scratch.source);
    buf_close(&rp->scratch.keys);
    buf_close(&rp->err);
    free(rp->hash_key);
    free(rp->range_key);
    free(rp->progress_path);
    free(rp->progress_tmp);
    clients_tf_key_free(rp->hmac_key, rp->tf.hmac_key_len);
    transform_renames_close(&rp->renames);
    clients_close(&rp->clients);
    sink_free(rp->app.sink);
    ckpt_unlock(rp->lock_fd);
}

/* The key schema given as "hash[,range]". */
static int parse_keys(struct replay *rp, const char *s)
{
    const char *comma = strchr(s, ',');

    rp->hash_key = comma ? strndup(s, (size_t)(comma - s)) : strdup(s);
    rp->range_key = comma && comma[1] ? strdup(comma + 1) : NULL;
    if (!rp->hash_key || !*rp->hash_key)
        return -EINVAL;
    rp->hash_key_len = strlen(rp->hash_key);
    rp->range_key_len = rp->range_key ? strlen(rp->range_key) : 0;
    rp->tf.hash_key = rp->hash_key;
    rp->tf.range_key = rp->range_key;
    rp->tf.hash_key_len = rp->hash_key_len;
    rp->tf.range_key_len = rp->range_key_len;
    return 0;
}

/* Each distinct name renamed is said once (transform_renames). */
static void say_renamed(void *arg, const char *line)
{
    struct replay *rp = arg;

    logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s", line);
}

/* Prepares what needs no network: table, files, lock, progress.  0 or an
 * exit code with rp->why set. */
static int prepare(struct replay *rp, const struct config *cfg, const struct replay_opts *o)
{
    char err[512];
    int rc, n;

    rp->t = config_table_find(cfg, o->table);
    if (!rp->t) {
        snprintf(rp->why, sizeof(rp->why), "no [table %s] in the configuration", o->table);
        return 78;
    }
    if (clients_transform_cfg(rp->t, &rp->tf, &rp->hmac_key, err, sizeof(err)) != 0) {
        snprintf(rp->why, sizeof(rp->why), "[table %s] hmac_key_file: %s", o->table, err);
        return 78;
    }
    if (o->index)
        rp->tf.index = o->index;
    transform_renames_init(&rp->renames, say_renamed, rp);
    rp->tf.on_rename = transform_renames_note;
    rp->tf.rename_arg = &rp->renames;
    if (o->keys && parse_keys(rp, o->keys) < 0) {
        snprintf(rp->why, sizeof(rp->why), "--key: expected HASH[,RANGE]");
        return 64;
    }
    if (o->format != REPLAY_SCAN) {
        rc = resolve_files(rp);
        if (rc == -EINVAL)
            return 64;
        if (rc == -EBADMSG)
            return 65;
        if (rc < 0) {
            if (!rp->why[0])
                snprintf(rp->why, sizeof(rp->why), "%s: %s", o->file, strerror(-rc));
            return rc == -ENOENT ? 66 : 74;
        }
        return 0;
    }
    if (asprintf(&rp->progress_path, "%s/replay-%s.json", cfg->daemon.state_dir, o->table) < 0 ||
        asprintf(&rp->progress_tmp, "%s.tmp", rp->progress_path) < 0)
        return 70;
    {
        char lock[PATH_MAX];

        snprintf(lock, sizeof(lock), "replay-%s.lock", o->table);
        rc = ckpt_lock_named(cfg->daemon.state_dir, lock, &rp->lock_fd);
    }
    if (rc == -EWOULDBLOCK) {
        snprintf(rp->why, sizeof(rp->why), "another replay of %s is running (lock %s/replay-%s.lock)",
                 o->table, cfg->daemon.state_dir, o->table);
        return 73;
    }
    if (rc < 0) {
        snprintf(rp->why, sizeof(rp->why), "cannot create the state directory %s: %s",
                 cfg->daemon.state_dir, strerror(-rc));
        return 73;
    }
    rc = load_progress(rp, &n);
    if (rc == -EBADMSG)
        return 65;
    if (rc < 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: %s", rp->progress_path, strerror(-rc));
        return 74;
    }
    if (!rp->segs && !(rp->segs = calloc((size_t)n, sizeof(*rp->segs))))
        return 70;
    rp->nsegs = n;
    for (int i = 0; i < n; i++) {
        rp->segs[i].rp = rp;
        rp->segs[i].no = i;
        uv_timer_init(rp->app.loop, &rp->segs[i].timer);
    }
    rp->eff_rate = o->rate;
    return 0;
}

static char *default_dlq_out(const struct config *cfg)
{
    char stamp[32], *p = NULL;
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    if (asprintf(&p, "%s/dlq-replay-%s.ndjson", cfg->daemon.state_dir, stamp) < 0)
        return NULL;
    return p;
}

int replay_run(const struct config *cfg, const struct replay_opts *o)
{
    struct replay *rp = calloc(1, sizeof(*rp));
    uv_loop_t loop;
    char *dlq_out = NULL;
    int rc;

    if (!rp || uv_loop_init(&loop) != 0) {
        free(rp);
        fprintf(stderr, "ddb2es replay: out of memory\n");
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    rp->o = o;
    rp->lock_fd = -1;
    rp->item_count = -1;
    rp->app.loop = &loop;
    rp->app.cfg = cfg;
    rp->app.dry_run = o->dry_run;
    rp->tty = isatty(STDERR_FILENO) == 1;
    buf_init(&rp->in, BUF_NOMAX);
    buf_init(&rp->err, 1024);
    buf_init(&rp->d.source, DOC_MAX);
    buf_init(&rp->scratch.source, DOC_MAX);
    uv_signal_init(&loop, &rp->sigint);
    uv_signal_init(&loop, &rp->sigterm);
    uv_timer_init(&loop, &rp->tick);
    uv_timer_init(&loop, &rp->rr_timer);
    uv_idle_init(&loop, &rp->idle);
    rp->sigint.data = rp->sigterm.data = rp;

    rc = prepare(rp, cfg, o); /* main ran clients_preflight (transport, secret files) */
    if (rc == 0 && o->format == REPLAY_DLQ) {
        struct stat a, b;

        dlq_out = o->dlq_out ? strdup(o->dlq_out) : default_dlq_out(cfg);
        if (!dlq_out) {
            rc = 70;
        } else if (stat(dlq_out, &a) == 0 && stat(o->file, &b) == 0 && a.st_ino == b.st_ino &&
                   a.st_dev == b.st_dev) {
            snprintf(rp->why, sizeof(rp->why), "--dlq-out %s is the file being replayed", dlq_out);
            rc = 64;
        }
    }
    if (rc == 0) {
        /* clients_open prints its own line on failure. */
        rc = clients_open(&rp->clients, &rp->app, dlq_out, on_doc_done, on_sink_resume, rp);
        if (rc == 0 && o->format == REPLAY_DLQ)
            log_info("entries that fail again go to %s", dlq_out);
    }
    if (rc == 0) {
        rp->start_ms = rp->last_log_ms = uv_now(&loop);
        uv_signal_start(&rp->sigint, on_signal, SIGINT);
        uv_signal_start(&rp->sigterm, on_signal, SIGTERM);
        uv_timer_start(&rp->tick, on_tick, TICK_MS, TICK_MS);
        if (rp->hash_key) {
            if (o->format == REPLAY_SCAN) {
                stop(rp, 64, "--scan needs DescribeTable: leave --key out");
            } else {
                files_begin(rp);
            }
        } else {
            json_t *body = json_pack("{s:s}", "TableName", o->table);

            if (!ddb_call(rp->app.aws, AWS_DYNAMODB, "DescribeTable", body, on_describe, rp, NULL))
                stop(rp, 70, "cannot start DescribeTable");
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = rp->exit_code;
    } else {
        if (rp->app.sink) {
            sink_close(rp->app.sink, 0, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        aws_free(rp->app.aws);
        creds_free(rp->app.creds);
        if (rp->app.http)
            http_close(rp->app.http, NULL, NULL);
        if (rp->app.sink_http)
            http_close(rp->app.sink_http, NULL, NULL);
        uv_walk(&loop, close_cb_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (rp->start_ms) {
        double el = mono_s(rp);

        fprintf(stderr, "replay %s: read %" PRIu64 ", indexed %" PRIu64 ", skipped %" PRIu64
                        " (of which %" PRIu64 " gone when read again), dead-lettered %" PRIu64
                        ", in %.1f s (%.0f items/s)%s\n",
                o->table, rp->read, rp->indexed, rp->skipped, rp->dropped, rp->dlq, el,
                el > 0 ? (double)rp->read / el : 0, rc == 0 ? "" : "; not finished");
        if (rp->other_tables)
            log_info("%" PRIu64 " dead-letter entries of other tables were left out",
                     rp->other_tables);
        if (rp->dups)
            log_info("%" PRIu64 " stream records a shard had already given were skipped",
                     rp->dups);
        if (rp->dl_unresolved)
            log_warn("%" PRIu64 " dead-letter entries were not replayed: their item could not be "
                     "found (see the warnings above)", rp->dl_unresolved);
        if (rp->renames.count)
            log_info("%" PRIu64 " attribute names the engines refuse were renamed (README "
                     "\"Documents\")", rp->renames.count);
    }
    if (rc != 0 && rp->why[0])
        fprintf(stderr, "ddb2es replay: %s\n", rp->why);
    rp_free(rp);
    if (uv_loop_close(&loop) != 0)
        log_warn("event loop closed with handles still open");
    free(dlq_out);
    free(rp);
    log_flush();
    return rc;
}
