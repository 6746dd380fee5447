/* replay_files — `ddb2es replay --file`: export lines and stream records
 * into the sink.  The files (indexer/source.h) are read line by line, a
 * bounded amount per loop turn, while the sink is not full; dead-letter
 * lines go to replay_dlq.c. */
#include "daemon/replay_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "indexer/sink.h"

#define TURN_BUDGET (4u << 20)      /* input bytes handled per loop turn */
#define RR_QUEUE_MAX 1000           /* dead-letter entries waiting for their item: reading pauses */

/* A malformed line: stop reading; exit 65 once what came before finished. */
void replay_file_fail(struct replay *rp, unsigned long line, const char *fmt, ...)
{
    char what[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(rp->why, sizeof(rp->why), "%s:%lu: %s", rp->files.paths[rp->files.cur], line, what);
    log_error("%s; finishing what was read before it", rp->why);
    rp->all_read = true;
    if (rp->idle_on) {
        uv_idle_stop(&rp->idle);
        rp->idle_on = false;
    }
    replay_maybe_complete(rp);
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

/* One stream record made into rp->d (tr), from the tree rec or (rec NULL,
 * then tr is TR_DOC) from its text; shard and parent (may be NULL) as the
 * file gives them. */
static void take_made(struct replay *rp, enum transform_result tr, json_t *rec,
                      unsigned long line, const char *shard, const char *parent)
{
    bool dup;

    /* Every record counts in its second, as in the daemon, sent or not. */
    rp->d.version = replay_record_version(rp, shard, parent, &dup);
    if (dup) {
        rp->skipped++;
        rp->dups++;
        logc_debug((&(struct log_ctx){ .table = rp->o->table, .shard = shard }),
                   "%s:%lu: record %s was read already from this shard: skipped",
                   rp->files.paths[rp->files.cur], line, rp->d.seq);
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
                  rp->files.paths[rp->files.cur], line);
        break;
    case TR_ERROR:
    default:
        logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s:%lu: %s",
                  rp->files.paths[rp->files.cur], line, rp->err.ptr ? rp->err.ptr : "?");
        dead_letter_file(rp, rec, "record_conversion_error");
        break;
    }
}

static void take_record(void *arg, json_t *rec, unsigned long line, const char *shard,
                        const char *parent)
{
    struct replay *rp = arg;

    rp->read++;
    replay_doc_reset(rp);
    take_made(rp, transform_record(&rp->tf, rec, &rp->d, &rp->err), rec, line, shard, parent);
}

/* A line holding one plain record, made into a document in one pass over
 * its text (transform_record_text); false leaves the line to be read as a
 * tree, errors and all. */
static bool record_text(struct replay *rp, const char *p, size_t len)
{
    struct transform_text_extra x;

    replay_doc_reset(rp);
    if (!transform_record_text(&rp->tf, p, len, &rp->d, &x))
        return false;
    rp->read++;
    take_made(rp, TR_DOC, NULL, rp->files.lineno, x.shard[0] ? x.shard : NULL,
              x.parent[0] ? x.parent : NULL);
    return true;
}

/* A stream-record value (source_stream_value): each record taken. */
static void stream_value(struct replay *rp, json_t *v, unsigned long line)
{
    char why[768];

    if (source_stream_value(v, line, take_record, rp, why, sizeof(why)) < 0)
        replay_file_fail(rp, line, "%s", why);
}

static void export_value(struct replay *rp, json_t *v, unsigned long line)
{
    json_t *item = json_object_get(v, "Item");

    if (!json_is_object(item)) {
        replay_file_fail(rp, line, "not an export line (no \"Item\" object)");
        return;
    }
    rp->read++;
    replay_doc_reset(rp);
    if (transform_item(&rp->tf, item, &rp->d, &rp->err) == TR_DOC) {
        rp->d.version = replay_backfill_version(rp, rp->files.export_time);
        submit_file_doc(rp);
        return;
    }
    logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s:%lu: %s",
              rp->files.paths[rp->files.cur], line, rp->err.ptr ? rp->err.ptr : "?");
    dead_letter_file(rp, item, "item_conversion_error");
}

static void handle_value(struct replay *rp, json_t *v, unsigned long line)
{
    if (rp->o->format == REPLAY_STREAM)
        stream_value(rp, v, line);
    else
        export_value(rp, v, line);
}

/* A reading error of the files: 65 at line, 70, or 74. */
static void read_failed(struct replay *rp, int rc, unsigned long line)
{
    int code = source_exit_code(&rp->files, rc);

    if (code == 65)
        replay_file_fail(rp, line, "%s", rp->files.why); /* finishing what was read */
    else
        replay_stop(rp, code, "%s", rp->files.why);
}

static void one_line(struct replay *rp, char *p, size_t len)
{
    unsigned long at;
    json_t *v;
    int err;

    if (!len)
        return;
    if (rp->o->format == REPLAY_DLQ) {
        replay_dlq_line(rp, p, len, rp->files.lineno);
        return;
    }
    if (rp->o->format == REPLAY_STREAM && record_text(rp, p, len))
        return;
    v = source_line_value(&rp->files, p, len, rp->o->format == REPLAY_STREAM, &at, &err);
    if (v)
        handle_value(rp, v, at);
    else
        read_failed(rp, err, at);
    json_decref(v);
}

/* Reads and submits until the sink is full or the turn's budget is spent. */
static void on_idle(uv_idle_t *h)
{
    struct replay *rp = container_of(h, struct replay, idle);
    size_t budget = TURN_BUDGET;

    while (!rp->stopping && !rp->all_read && !sink_full(rp->app.sink) && budget &&
           rp->nrr < RR_QUEUE_MAX) {
        char *p;
        size_t len;
        int rc = source_next_line(&rp->files, &p, &len);

        if (rc < 0) {
            read_failed(rp, rc, rp->files.lineno + 1);
            return;
        }
        if (rc == 0) {
            rp->all_read = true;
            break;
        }
        budget = budget > len ? budget - len - 1 : 0;
        one_line(rp, p, len);
    }
    if (rp->all_read || sink_full(rp->app.sink) || rp->stopping || rp->nrr >= RR_QUEUE_MAX) {
        if (rp->idle_on)
            uv_idle_stop(&rp->idle);
        rp->idle_on = false;
        if (rp->all_read)
            sink_flush(rp->app.sink);
        replay_maybe_complete(rp);
    }
}

void replay_pump_start(struct replay *rp)
{
    if (rp->idle_on || rp->all_read || rp->stopping)
        return;
    rp->idle_on = true;
    uv_idle_start(&rp->idle, on_idle);
}

void replay_files_begin(struct replay *rp)
{
    log_info("replay %s: %zu file(s), %" PRId64 " bytes, format %s", rp->o->table,
             rp->files.npaths, rp->files.total_bytes, rp->o->format == REPLAY_EXPORT ? "export"
                              : rp->o->format == REPLAY_STREAM ? "stream" : "dlq");
    replay_pump_start(rp);
}
