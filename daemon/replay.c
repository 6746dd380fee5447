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
 * The parts are listed in replay_int.h.
 */
#include "daemon/replay_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "aws/streams.h"
#include "base/backoff.h"
#include "base/http.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/statedir.h"
#include "indexer/ddbnum.h"
#include "indexer/sink.h"

#define DOC_MAX (16u << 20)         /* one document */
#define BATCHGET_MAX 100            /* keys per BatchGetItem */
#define TICK_MS 1000

double replay_mono_s(const struct replay *rp)
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

void replay_take_down(struct replay *rp)
{
    struct app *app = &rp->app;

    /* Waits for both the sink to finish what it holds and a progress write
     * on the thread pool: whichever ends last comes here again. */
    if (rp->closing_done || rp->prog.saving || rp->sink_draining)
        return;
    rp->closing_done = true;
    if (rp->prog.path && !rp->o->dry_run)
        replay_progress_save(rp); /* synchronously: the loop is quiet now */
    clients_take_down(&rp->clients, app, on_clients_closed, rp);
}

static void on_sink_closed(void *arg)
{
    struct replay *rp = arg;

    rp->sink_draining = false;
    replay_take_down(rp);
}

/* Stops reading; what is in the sink finishes (or, past the deadline, is
 * left unfinished: the saved position stays before it). */
void replay_stop(struct replay *rp, int code, const char *fmt, ...)
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
    replay_scan_stop(rp);
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
    if (rp->app.sink) {
        rp->sink_draining = true;
        sink_close(rp->app.sink, deadline, on_sink_closed, rp);
    } else
        replay_take_down(rp);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct replay *rp = h->data;

    log_info("%s: stopping; what was read finishes first", signum == SIGINT ? "SIGINT" : "SIGTERM");
    replay_stop(rp, 75, "interrupted by %s; run the same command again to continue",
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

static void progress(struct replay *rp, bool final)
{
    double el = replay_mono_s(rp), rate = el > 0 ? (double)rp->read / el : 0, frac = -1;
    char eta[64] = "", line[512];

    if (rp->scan.segs && rp->scan.item_count > 0)
        frac = (double)(rp->read + rp->done_before) / (double)rp->scan.item_count;
    else if (rp->files.paths && rp->files.total_bytes > 0)
        frac = (double)source_done_bytes(&rp->files) / (double)rp->files.total_bytes;
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
             frac >= 0 ? "%)" : "", rp->indexed, rate, rp->errors + rp->scan.s.retried + rp->dlq, eta);
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
            replay_stop(rp, 69, "the search engine at %s refused writes to %s%s for %" PRId64
                        " s (%s); run the same command again once the block is lifted",
                        rp->app.cfg->sink.url, *st->block_index ? "index " : "every index",
                        st->block_index, rp->o->give_up_ms / 1000, st->block_reason);
        else
            replay_stop(rp, 69, "the search engine at %s failed every request for %" PRId64
                        " s; run the same command again once it is back", rp->app.cfg->sink.url,
                        rp->o->give_up_ms / 1000);
        return;
    }
    if (rp->prog.dirty && !rp->o->dry_run)
        replay_progress_save(rp);
    log_flush_expired();
}

/* ---- the sink's callbacks ---------------------------------------------- */

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
            replay_reread_add(rp, de ? NULL : owner, (size_t)ticket, de);
        return;
    case SINK_CANCELED:
    default:
        return; /* not finished: the saved position stays before it */
    }
    if (de)
        replay_dl_done(rp, de);
    else if (owner == rp)
        rp->pending--;
    else
        replay_page_item_done(owner);
    replay_maybe_complete(rp);
}

static void on_sink_resume(void *arg)
{
    struct replay *rp = arg;

    if (rp->stopping)
        return;
    if (rp->files.paths)
        replay_pump_start(rp);
    replay_scan_resume(rp);
}

void replay_maybe_complete(struct replay *rp)
{
    if (rp->stopping)
        return;
    if (rp->scan.segs ? replay_scan_complete(rp) : rp->all_read && rp->pending == 0) {
        if (rp->why[0])  /* a malformed line stopped the reading */
            replay_stop(rp, 65, NULL);
        else
            replay_stop(rp, 0, NULL);
    }
}

/* rp->d emptied for the next document, its buffers kept. */
void replay_doc_reset(struct replay *rp)
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

/* ---- scan: reading expired images again --------------------------------- */

static void rr_start(struct replay *rp);

static void on_rr_timer(uv_timer_t *t)
{
    rr_start(container_of(t, struct replay, rr_timer));
}

void replay_reread_add(struct replay *rp, struct page *pg, size_t idx, struct dl_entry *de)
{
    if (rp->nrr == rp->caprr) {
        size_t ncap = rp->caprr ? rp->caprr * 2 : 64;
        struct reread *v = realloc(rp->rr, ncap * sizeof(*v));

        if (!v) {
            replay_stop(rp, 70, "out of memory");
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
    if (!key_value_equal(json_object_getn(item, rp->keys.hash_key, rp->keys.hash_key_len),
                         json_object_getn(key, rp->keys.hash_key, rp->keys.hash_key_len)))
        return false;
    return !rp->keys.range_key ||
           key_value_equal(json_object_getn(item, rp->keys.range_key, rp->keys.range_key_len),
                           json_object_getn(key, rp->keys.range_key, rp->keys.range_key_len));
}

static void on_rr(const struct ddb_reply *rep, void *arg)
{
    struct replay *rp = arg;
    struct streams_batch_get got;
    json_t *items, *unproc, *x;
    size_t keep = 0, j, gone = 0, again_sent = 0;
    time_t at = time(NULL);

    rp->rr_call = NULL;
    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls == DDB_FATAL || rep->cls == DDB_NOT_FOUND) {
        /* A refusal (ValidationException, AccessDenied...) is the same at
         * every retry. */
        replay_stop(rp, strstr(rep->type, "AccessDenied") ? 77 : 69,
                    "BatchGetItem on %s refused: HTTP %ld %s %s", rp->o->table, rep->status,
                    rep->type, rep->message);
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
    streams_batch_get_parse(rep->json, rp->o->table, &got);
    items = got.items;
    unproc = got.unprocessed;
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
            replay_dl_item(rp, e.de, item, at);
        } else if (item) {
            replay_scan_submit_item(rp, e.pg, e.idx, item, at);
            again_sent++;
        } else {
            rp->dropped++; /* deleted since it was scanned: nothing to index */
            rp->skipped++;
            gone++;
            replay_page_item_done(e.pg);
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
    if (rp->files.paths)
        replay_pump_start(rp); /* room for more entries */
    replay_maybe_complete(rp);
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
    body = streams_batch_get_req(rp->o->table, keys);
    rp->rr_call = body ? ddb_call(rp->app.aws, AWS_DYNAMODB, "BatchGetItem", body, on_rr, rp, NULL)
                       : NULL;
    if (!rp->rr_call) {
        for (size_t i = 0; i < rp->nrr; i++)
            rp->rr[i].sent = false;
        uv_timer_start(&rp->rr_timer, on_rr_timer, 1000, 0);
    }
}

/* ---- DescribeTable ------------------------------------------------------ */

static void on_describe(const struct ddb_reply *rep, void *arg)
{
    struct replay *rp = arg;
    json_t *table = json_object_get(rep->json, "Table"), *ic;
    int rc;

    if (rep->err == -ECANCELED || rp->stopping)
        return;
    if (rep->cls != DDB_OK) {
        replay_stop(rp, ddb_reply_exit_code(rep), "DescribeTable %s: HTTP %ld %s %s", rp->o->table,
                    rep->status, rep->type, rep->message);
        return;
    }
    rc = source_keys_describe(&rp->keys, rep->json);
    if (rc == -ENOMEM) {
        replay_stop(rp, 70, "out of memory");
        return;
    }
    ic = json_object_get(table, "ItemCount");
    rp->scan.item_count = json_is_integer(ic) ? (int64_t)json_integer_value(ic) : -1;
    if (!rp->keys.hash_key) {
        replay_stop(rp, 69, "DescribeTable %s gave no hash key", rp->o->table);
        return;
    }
    rp->tf.hash_key = rp->keys.hash_key;
    rp->tf.range_key = rp->keys.range_key;
    rp->tf.hash_key_len = rp->keys.hash_key_len;
    rp->tf.range_key_len = rp->keys.range_key_len;
    if (rp->o->format == REPLAY_SCAN)
        replay_scan_begin(rp);
    else
        replay_files_begin(rp);
}

/* ---- start ---------------------------------------------------------------- */

int replay_parse_time(const char *s, int64_t *out)
{
    return source_parse_time(s, out);
}

static void rp_free(struct replay *rp)
{
    struct dl_entry *de;

    replay_scan_free(rp);
    free(rp->rr);
    source_files_close(&rp->files);
    for (size_t i = 0; i < rp->nindexes; i++)
        free(rp->indexes[i]);
    free(rp->indexes);
    replay_versions_free(&rp->vers);
    while ((de = list_first_entry(&rp->dl_live, struct dl_entry, link))) {
        list_remove(&de->link);
        json_decref(de->key);
        free(de);
    }
    buf_close(&rp->d.source);
    buf_close(&rp->d.keys);
    buf_close(&rp->keys.scratch.source);
    buf_close(&rp->keys.scratch.keys);
    buf_close(&rp->err);
    free(rp->keys.hash_key);
    free(rp->keys.range_key);
    free(rp->prog.path);
    free(rp->prog.tmp);
    clients_tf_key_free(rp->hmac_key, rp->tf.hmac_key_len);
    transform_renames_close(&rp->renames);
    clients_close(&rp->clients);
    sink_free(rp->app.sink);
    statedir_unlock(rp->prog.lock_fd);
}

/* The key schema given as "hash[,range]". */
static int parse_keys(struct replay *rp, const char *s)
{
    const char *comma = strchr(s, ',');

    rp->keys.hash_key = comma ? strndup(s, (size_t)(comma - s)) : strdup(s);
    rp->keys.range_key = comma && comma[1] ? strdup(comma + 1) : NULL;
    if (!rp->keys.hash_key || !*rp->keys.hash_key)
        return -EINVAL;
    rp->keys.hash_key_len = strlen(rp->keys.hash_key);
    rp->keys.range_key_len = rp->keys.range_key ? strlen(rp->keys.range_key) : 0;
    rp->tf.hash_key = rp->keys.hash_key;
    rp->tf.range_key = rp->keys.range_key;
    rp->tf.hash_key_len = rp->keys.hash_key_len;
    rp->tf.range_key_len = rp->keys.range_key_len;
    return 0;
}

/* Each distinct name renamed is said once (transform_renames). */
static void say_renamed(void *arg, const char *line)
{
    struct replay *rp = arg;

    logc_warn((&(struct log_ctx){ .table = rp->o->table }), "%s", line);
}

/* Whether another process holds a replay lock of o->table whose segments
 * overlap o's (a whole-table lock overlaps every range); its name in which. */
static bool replay_overlap_held(const char *state_dir, const struct replay_opts *o,
                                const char *mine, char *which, size_t len)
{
    char prefix[PATH_MAX];
    size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "replay-%s.", o->table);
    DIR *d = opendir(state_dir);
    struct dirent *e;
    bool held = false;

    if (!d)
        return false;
    while (!held && (e = readdir(d))) {
        int a, b, end = 0;
        bool overlaps;

        if (strncmp(e->d_name, prefix, plen) != 0 || strcmp(e->d_name, mine) == 0)
            continue;
        if (strcmp(e->d_name + plen, "lock") == 0)
            overlaps = true;
        else if (sscanf(e->d_name + plen, "segments-%d-%d.lock%n", &a, &b, &end) == 2 &&
                 end > 0 && e->d_name[plen + (size_t)end] == '\0')
            overlaps = !o->only || (a <= o->only_last && o->only_first <= b);
        else
            continue;
        if (overlaps && statedir_lock_held(state_dir, e->d_name)) {
            snprintf(which, len, "%s", e->d_name);
            held = true;
        }
    }
    closedir(d);
    return held;
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
        rc = source_files_resolve(&rp->files, o->file, o->format == REPLAY_EXPORT, o->read_time);
        if (rc < 0 && rp->files.why[0])
            snprintf(rp->why, sizeof(rp->why), "%s", rp->files.why);
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
    {
        char name[512], lock[520], other[256];

        /* A range of the segments has its own progress file and lock, so
         * that several processes on one state directory share the Scan. */
        if (o->progress_name)
            snprintf(name, sizeof(name), "%s", o->progress_name);
        else if (o->only)
            snprintf(name, sizeof(name), "replay-%s.segments-%d-%d", o->table, o->only_first,
                     o->only_last);
        else
            snprintf(name, sizeof(name), "replay-%s", o->table);
        if (asprintf(&rp->prog.path, "%s/%s.json", cfg->daemon.state_dir, name) < 0 ||
            asprintf(&rp->prog.tmp, "%s.tmp", rp->prog.path) < 0)
            return 70;
        snprintf(lock, sizeof(lock), "%s.lock", name);
        rc = statedir_lock_named(cfg->daemon.state_dir, lock, &rp->prog.lock_fd);
        if (rc == -EWOULDBLOCK) {
            snprintf(rp->why, sizeof(rp->why), "another replay of %s is running (lock %s/%s)",
                     o->table, cfg->daemon.state_dir, lock);
            return 73;
        }
        if (rc < 0) {
            snprintf(rp->why, sizeof(rp->why), "cannot create the state directory %s: %s",
                     cfg->daemon.state_dir, strerror(-rc));
            return 73;
        }
        /* Own lock first, then the others: of two replays starting together
         * with overlapping segments, at least one sees the other. */
        if (!o->progress_name &&
            replay_overlap_held(cfg->daemon.state_dir, o, lock, other, sizeof(other))) {
            snprintf(rp->why, sizeof(rp->why), "another replay of %s is scanning some of the same "
                     "segments (lock %s/%s)", o->table, cfg->daemon.state_dir, other);
            return 73;
        }
    }
    rc = replay_progress_load(rp, &n);
    if (rc == -EINVAL)
        return 64;
    if (rc == -EBADMSG)
        return 65;
    if (rc < 0) {
        snprintf(rp->why, sizeof(rp->why), "%s: %s", rp->prog.path, strerror(-rc));
        return 74;
    }
    if (!rp->scan.segs && !(rp->scan.segs = calloc((size_t)n, sizeof(*rp->scan.segs))))
        return 70;
    rp->scan.nsegs = n;
    replay_scan_init(rp);
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
    replay_versions_init(&rp->vers);
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    rp->o = o;
    list_init(&rp->dl_live);
    rp->keys.tf = &rp->tf;
    rp->prog.lock_fd = -1;
    rp->scan.item_count = -1;
    rp->app.loop = &loop;
    rp->app.cfg = cfg;
    rp->app.dry_run = o->dry_run;
    rp->tty = isatty(STDERR_FILENO) == 1;
    source_files_init(&rp->files);
    buf_init(&rp->err, 1024);
    buf_init(&rp->d.source, DOC_MAX);
    buf_init(&rp->keys.scratch.source, DOC_MAX);
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
        /* --index: its documents are shaped like the table's (README "Types and mappings") */
        if (rc == 0 && o->index && rp->t->type_conflicts == CONFIG_CONFLICTS_SIDE &&
            sink_set_conflicts(rp->app.sink, o->index, rp->t->conflicts_field) < 0)
            rc = 70;
        if (rc == 0 && o->format == REPLAY_DLQ)
            log_info("entries that fail again go to %s", dlq_out);
    }
    if (rc == 0) {
        rp->start_ms = rp->last_log_ms = uv_now(&loop);
        uv_signal_start(&rp->sigint, on_signal, SIGINT);
        uv_signal_start(&rp->sigterm, on_signal, SIGTERM);
        uv_timer_start(&rp->tick, on_tick, TICK_MS, TICK_MS);
        if (rp->keys.hash_key) {
            if (o->format == REPLAY_SCAN) {
                replay_stop(rp, 64, "--scan needs DescribeTable: leave --key out");
            } else {
                replay_files_begin(rp);
            }
        } else {
            json_t *body = json_pack("{s:s}", "TableName", o->table);

            if (!ddb_call(rp->app.aws, AWS_DYNAMODB, "DescribeTable", body, on_describe, rp, NULL))
                replay_stop(rp, 70, "cannot start DescribeTable");
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
        double el = replay_mono_s(rp);

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
