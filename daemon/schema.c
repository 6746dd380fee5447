/* schema — see schema.h.
 *
 * One loop: DescribeTable (unless --key names the key of a file), then
 * either one Scan request in flight per segment with a token bucket shared
 * by the segments for --rate (lowered while DynamoDB throttles, as
 * replay_scan.c does), or the files read line by line, a bounded amount per
 * loop turn, so that SIGINT is seen.  Each item goes through transform with
 * schema_paths_member as its on_member hook: the paths are the document's.
 */
#include "daemon/schema.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/scan.h"
#include "base/bucket.h"
#include "base/buf.h"
#include "base/http.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/util.h"
#include "config/config.h"
#include "daemon/app.h"
#include "daemon/clients.h"
#include "indexer/doc.h"
#include "indexer/schema_paths.h"
#include "indexer/sink.h"
#include "indexer/source.h"
#include "indexer/transform.h"

#define DOC_MAX (16u << 20)      /* one document */
#define TURN_BUDGET (4u << 20)   /* input bytes read per loop turn */
#define PAGE_MAX_LIMIT 1000      /* Scan Limit when --rate caps it */
#define RETRY_BASE_MS 200
#define RETRY_MAX_MS 20000
#define GIVE_UP_MS 300000        /* a segment failing this long: exit 69 */

struct schema;

struct schema {
    struct app app;
    struct clients clients;
    const struct schema_opts *o;
    struct transform_cfg tf;
    unsigned char *hmac_key;
    struct source_keys keys;
    struct schema_paths *sp;
    struct doc d;
    struct buf err;
    uv_signal_t sigint, sigterm;
    uv_idle_t idle;
    bool stopping, files_done;
    int exit_code;
    char why[1024];
    uint64_t read, skipped, start_ms;
    /* scan */
    struct scan scan;
    struct scan_seg *segs;
    int nsegs;
    /* files */
    struct source_files files;
};

/* ---- stopping ------------------------------------------------------------ */

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_clients_closed(void *arg)
{
    struct schema *sc = arg;

    uv_walk(sc->app.loop, close_walk, NULL);
}

static void on_sink_closed(void *arg)
{
    struct schema *sc = arg;

    clients_take_down(&sc->clients, &sc->app, on_clients_closed, sc);
}

/* Stops reading with exit code code (why from fmt when not NULL). */
static void sc_stop(struct schema *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_stop(struct schema *sc, int code, const char *fmt, ...)
{
    if (sc->stopping)
        return;
    sc->stopping = true;
    sc->exit_code = code;
    if (fmt) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sc->why, sizeof(sc->why), fmt, ap);
        va_end(ap);
    }
    for (int i = 0; i < sc->nsegs; i++)
        scan_seg_stop(&sc->segs[i]);
    uv_idle_stop(&sc->idle);
    uv_signal_stop(&sc->sigint);
    uv_signal_stop(&sc->sigterm);
    /* The sink was never given a document: it closes at once. */
    sink_close(sc->app.sink, 0, on_sink_closed, sc);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct schema *sc = h->data;

    sc_stop(sc, 75, "interrupted by %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- items ------------------------------------------------------------- */

static void doc_reset(struct schema *sc)
{
    buf_reset(&sc->d.source);
    buf_reset(&sc->d.keys);
}

/* Counts what the last transform noted when it made a document to index. */
static void item_end(struct schema *sc, bool keep, const char *where)
{
    if (!keep) {
        sc->skipped++;
        if (where && sc->err.len)
            log_warn("%s: %s: not counted", where, sc->err.ptr);
    }
    if (schema_paths_end(sc->sp, keep) < 0)
        sc_stop(sc, 70, "out of memory");
}

static void take_item(struct schema *sc, json_t *item, const char *where)
{
    enum transform_result tr;

    sc->read++;
    doc_reset(sc);
    schema_paths_begin(sc->sp);
    tr = transform_item(&sc->tf, item, &sc->d, &sc->err);
    item_end(sc, tr == TR_DOC, where);
}

/* ---- scan ------------------------------------------------------------- */

static int on_page(struct scan_seg *g, json_t *items, json_t *lek)
{
    struct schema *sc = g->scan->owner;
    json_t *item;
    size_t i;

    (void)lek;
    json_array_foreach(items, i, item) {
        take_item(sc, item, "item");
        if (sc->stopping)
            return -ECANCELED;
    }
    return 0;
}

static void after_page(struct scan *s)
{
    struct schema *sc = s->owner;

    for (int i = 0; i < sc->nsegs; i++)
        if (sc->segs[i].state != SCAN_DONE)
            return;
    sc_stop(sc, 0, NULL);
}

static void scan_fail(struct scan *s, int code, const char *why)
{
    sc_stop(s->owner, code, "%s", why);
}

static const struct scan_ops scan_ops = { .page = on_page, .after = after_page, .fail = scan_fail };

static void scan_begin(struct schema *sc)
{
    log_info("schema %s: Scan in %d segment(s), %s", sc->o->table, sc->nsegs,
             sc->o->rate > 0 ? "rate capped" : "no rate cap");
    sc->scan.aws = sc->app.aws;
    sc->scan.bucket.at = sc->scan.start_ms = uv_now(sc->app.loop);
    for (int i = 0; i < sc->nsegs && !sc->stopping; i++)
        scan_seg_drive(&sc->segs[i]);
}

/* ---- files ------------------------------------------------------------- */

/* A malformed line: exit 65, no report. */
static void file_fail(struct schema *sc, unsigned long line, const char *what)
{
    sc_stop(sc, 65, "%s:%lu: %s", sc->files.paths[sc->files.cur], line, what);
}

static void take_record(void *arg, json_t *rec, unsigned long line, const char *shard,
                        const char *parent)
{
    struct schema *sc = arg;
    enum transform_result tr;
    char where[600];

    sc->read++;
    doc_reset(sc);
    schema_paths_begin(sc->sp);
    tr = transform_record(&sc->tf, rec, &sc->d, &sc->err);
    snprintf(where, sizeof(where), "%s:%lu", sc->files.paths[sc->files.cur], line);
    /* A REMOVE, or a record without a new image, has no document. */
    item_end(sc, tr == TR_DOC && sc->d.op == DOC_INDEX, tr == TR_ERROR ? where : NULL);
}

static void take_value(struct schema *sc, json_t *v, unsigned long line)
{
    char why[768];

    if (sc->o->stream) {
        if (source_stream_value(v, line, take_record, sc, why, sizeof(why)) < 0)
            file_fail(sc, line, why);
    } else if (!json_is_object(json_object_get(v, "Item"))) {
        file_fail(sc, line, "not an export line (no \"Item\" object)");
    } else {
        snprintf(why, sizeof(why), "%s:%lu", sc->files.paths[sc->files.cur], line);
        take_item(sc, json_object_get(v, "Item"), why);
    }
}

/* A reading error of the files: 65 at line, 70, or 74. */
static void read_failed(struct schema *sc, int rc, unsigned long line)
{
    int code = source_exit_code(&sc->files, rc);

    if (code == 65)
        file_fail(sc, line, sc->files.why);
    else
        sc_stop(sc, code, "%s", sc->files.why);
}

static void one_line(struct schema *sc, char *p, size_t len)
{
    unsigned long at;
    json_t *v;
    int err;

    if (!len)
        return;
    if ((v = source_line_value(&sc->files, p, len, sc->o->stream, &at, &err)))
        take_value(sc, v, at);
    else
        read_failed(sc, err, at);
    json_decref(v);
}

static void on_idle(uv_idle_t *h)
{
    struct schema *sc = container_of(h, struct schema, idle);
    size_t budget = TURN_BUDGET;

    while (!sc->stopping && budget) {
        char *p;
        size_t len;
        int rc = source_next_line(&sc->files, &p, &len);

        if (rc < 0)
            read_failed(sc, rc, sc->files.lineno + 1);
        if (rc == 0)
            sc_stop(sc, 0, NULL);
        if (rc <= 0)
            return;
        budget = budget > len ? budget - len - 1 : 0;
        one_line(sc, p, len);
    }
}

static void files_begin(struct schema *sc)
{
    log_info("schema %s: %zu file(s), %" PRId64 " bytes, format %s", sc->o->table,
             sc->files.npaths, sc->files.total_bytes, sc->o->stream ? "stream" : "export");
    uv_idle_start(&sc->idle, on_idle);
}

/* ---- DescribeTable ------------------------------------------------------ */

static void set_keys(struct schema *sc)
{
    sc->tf.hash_key = sc->keys.hash_key;
    sc->tf.range_key = sc->keys.range_key;
    sc->tf.hash_key_len = sc->keys.hash_key_len;
    sc->tf.range_key_len = sc->keys.range_key_len;
}

static void on_describe(const struct ddb_reply *rep, void *arg)
{
    struct schema *sc = arg;

    if (rep->err == -ECANCELED || sc->stopping)
        return;
    if (rep->cls != DDB_OK) {
        sc_stop(sc, ddb_reply_exit_code(rep), "DescribeTable %s: HTTP %ld %s %s", sc->o->table,
                rep->status, rep->type, rep->message);
        return;
    }
    if (source_keys_describe(&sc->keys, rep->json) == -ENOMEM) {
        sc_stop(sc, 70, "out of memory");
        return;
    }
    if (!sc->keys.hash_key) {
        sc_stop(sc, 69, "DescribeTable %s gave no hash key", sc->o->table);
        return;
    }
    set_keys(sc);
    if (sc->o->file)
        files_begin(sc);
    else
        scan_begin(sc);
}

/* ---- the report ------------------------------------------------------------ */

static void print_text(const struct schema *sc, json_t *rep, FILE *out)
{
    json_t *paths = json_object_get(rep, "paths"), *p, *varying = json_object_get(rep, "varying");
    size_t i, w = 4;
    char *tmpl;

    fprintf(out, "schema of %s: %" PRIu64 " items (%" PRIu64 " not counted: no document), "
                 "%zu paths%s\n", sc->o->table, schema_paths_items(sc->sp), sc->skipped,
            json_array_size(paths), schema_paths_capped(sc->sp) ? " (capped)" : "");
    fprintf(out, "largest document: depth %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT
                 " fields; the template maps %" JSON_INTEGER_FORMAT " fields\n\n",
            json_integer_value(json_object_get(rep, "max_depth")),
            json_integer_value(json_object_get(rep, "max_fields")),
            json_integer_value(json_object_get(rep, "fields")));
    json_array_foreach(paths, i, p) {
        size_t l = json_string_length(json_object_get(p, "path"));

        if (l > w)
            w = l;
    }
    if (w > 60)
        w = 60;
    fprintf(out, "%-*s  TYPES (items)\n", (int)w, "PATH");
    json_array_foreach(paths, i, p) {
        const char *t;
        json_t *n;
        bool first = true;

        fprintf(out, "%-*s ", (int)w, json_string_value(json_object_get(p, "path")));
        json_object_foreach(json_object_get(p, "types"), t, n) {
            fprintf(out, "%s %s:%" JSON_INTEGER_FORMAT, first ? "" : ",", t,
                    json_integer_value(n));
            first = false;
        }
        fputc('\n', out);
    }
    fprintf(out, "\nvarying (more than one type besides NULL): ");
    json_array_foreach(varying, i, p) {
        fprintf(out, "%s%s", i ? ", " : "", json_string_value(p));
    }
    fprintf(out, "%s\n", json_array_size(varying) ? "" : "none");
    if (schema_paths_capped(sc->sp))
        fprintf(out, "paths capped: only the first %zu paths are listed; %" JSON_INTEGER_FORMAT
                     " values were at paths not tracked\n", json_array_size(paths),
                json_integer_value(json_object_get(rep, "untracked")));
    tmpl = json_dumps(json_object_get(rep, "template"), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fprintf(out, "\nsuggested index template (for [table] index_template):\n%s\n",
            tmpl ? tmpl : "{}");
    free(tmpl);
}

static int print_report(struct schema *sc)
{
    json_t *rep = schema_paths_report(sc->sp);
    int rc = 0;

    if (!rep)
        return 70;
    if (sc->o->json) {
        json_object_set_new(rep, "table", json_string(sc->o->table));
        json_object_set_new(rep, "not_counted", json_integer((json_int_t)sc->skipped));
        rc = json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0 ? 74 : 0;
        fputc('\n', stdout);
    } else {
        print_text(sc, rep, stdout);
    }
    if (fflush(stdout) != 0)
        rc = 74;
    if (schema_paths_capped(sc->sp))
        fprintf(stderr, "ddb2es schema: more than %zu paths: the report lists the first ones "
                        "only (paths_capped)\n", json_array_size(json_object_get(rep, "paths")));
    json_decref(rep);
    return rc;
}

/* ---- start ---------------------------------------------------------------- */

/* The sink clients_open sets up is given no document: it never calls this. */
static void on_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                        void *arg)
{
}

/* What needs no network: the table, its rules, the key, the files.  0 or an
 * exit code with why set. */
static int prepare(struct schema *sc, const struct config *cfg)
{
    const struct schema_opts *o = sc->o;
    const struct config_table *t = config_table_find(cfg, o->table);
    char err[512];
    int rc;

    if (!t) {
        snprintf(sc->why, sizeof(sc->why), "no [table %s] in the configuration", o->table);
        return 78;
    }
    if (clients_transform_cfg(t, &sc->tf, &sc->hmac_key, err, sizeof(err)) != 0) {
        snprintf(sc->why, sizeof(sc->why), "[table %s] hmac_key_file: %s", o->table, err);
        return 78;
    }
    sc->tf.on_member = schema_paths_member;
    sc->tf.member_arg = sc->sp;
    if (o->keys) {
        const char *comma = strchr(o->keys, ',');

        sc->keys.hash_key = comma ? strndup(o->keys, (size_t)(comma - o->keys)) : strdup(o->keys);
        sc->keys.range_key = comma && comma[1] ? strdup(comma + 1) : NULL;
        if (!sc->keys.hash_key || !*sc->keys.hash_key) {
            snprintf(sc->why, sizeof(sc->why), "--key: expected HASH[,RANGE]");
            return 64;
        }
        sc->keys.hash_key_len = strlen(sc->keys.hash_key);
        sc->keys.range_key_len = sc->keys.range_key ? strlen(sc->keys.range_key) : 0;
        set_keys(sc);
    }
    if (o->file) {
        /* The export's time does not matter here: no manifest is needed. */
        rc = source_files_resolve(&sc->files, o->file, false, 0);
        if (rc < 0) {
            snprintf(sc->why, sizeof(sc->why), "%s",
                     sc->files.why[0] ? sc->files.why : strerror(-rc));
            return rc == -ENOENT ? 66 : rc == -EBADMSG ? 65 : rc == -ENOMEM ? 70 : 74;
        }
        return 0;
    }
    sc->nsegs = o->segments ? o->segments : 4;
    if (!(sc->segs = calloc((size_t)sc->nsegs, sizeof(*sc->segs))))
        return 70;
    sc->scan = (struct scan){
        .ops = &scan_ops, .owner = sc, .table = o->table, .total = sc->nsegs,
        .nshares = sc->nsegs, .page_max = PAGE_MAX_LIMIT, .retry_base_ms = RETRY_BASE_MS,
        .retry_max_ms = RETRY_MAX_MS, .give_up_ms = GIVE_UP_MS
    };
    bucket_init(&sc->scan.bucket, o->rate, 0);
    for (int i = 0; i < sc->nsegs; i++)
        scan_seg_init(&sc->segs[i], &sc->scan, sc->app.loop, i);
    return 0;
}

static void sc_free(struct schema *sc)
{
    for (int i = 0; i < sc->nsegs; i++)
        scan_seg_close(&sc->segs[i]);
    free(sc->segs);
    source_files_close(&sc->files);
    buf_close(&sc->d.source);
    buf_close(&sc->d.keys);
    buf_close(&sc->err);
    free(sc->keys.hash_key);
    free(sc->keys.range_key);
    clients_tf_key_free(sc->hmac_key, sc->tf.hmac_key_len);
    clients_close(&sc->clients);
    sink_free(sc->app.sink);
    schema_paths_free(sc->sp);
}

int schema_run(const struct config *cfg, const struct schema_opts *o)
{
    struct schema *sc = calloc(1, sizeof(*sc));
    uv_loop_t loop;
    int rc;

    if (!sc || uv_loop_init(&loop) != 0) {
        free(sc);
        fprintf(stderr, "ddb2es schema: out of memory\n");
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    sc->o = o;
    sc->app.loop = &loop;
    sc->app.cfg = cfg;
    sc->app.dry_run = true; /* the sink is never used: nothing may be written */
    source_files_init(&sc->files);
    buf_init(&sc->err, 1024);
    buf_init(&sc->d.source, DOC_MAX);
    buf_init(&sc->d.keys, 0);
    uv_signal_init(&loop, &sc->sigint);
    uv_signal_init(&loop, &sc->sigterm);
    uv_idle_init(&loop, &sc->idle);
    sc->sigint.data = sc->sigterm.data = sc;
    sc->sp = schema_paths_new(o->max_paths);
    rc = sc->sp ? prepare(sc, cfg) : 70;
    if (rc == 0)
        rc = clients_open(&sc->clients, &sc->app, NULL, on_doc_done, NULL, sc); /* says why itself */
    if (rc == 0) {
        sc->start_ms = uv_now(&loop);
        uv_signal_start(&sc->sigint, on_signal, SIGINT);
        uv_signal_start(&sc->sigterm, on_signal, SIGTERM);
        if (sc->keys.hash_key) {
            files_begin(sc); /* --key: files only */
        } else {
            json_t *body = json_pack("{s:s}", "TableName", o->table);

            if (!ddb_call(sc->app.aws, AWS_DYNAMODB, "DescribeTable", body, on_describe, sc,
                          NULL))
                sc_stop(sc, 70, "cannot start DescribeTable");
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = sc->exit_code;
    } else {
        if (sc->app.sink) {
            sink_close(sc->app.sink, 0, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        aws_free(sc->app.aws);
        creds_free(sc->app.creds);
        if (sc->app.http)
            http_close(sc->app.http, NULL, NULL);
        if (sc->app.sink_http)
            http_close(sc->app.sink_http, NULL, NULL);
        uv_walk(&loop, close_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (rc == 0)
        rc = print_report(sc);
    else if (sc->why[0])
        fprintf(stderr, "ddb2es schema: %s\n", sc->why);
    if (sc->start_ms)
        log_info("schema %s: read %" PRIu64 " items, %" PRIu64 " not counted, in %.1f s",
                 o->table, sc->read, sc->skipped,
                 (double)(uv_now(&loop) - sc->start_ms) / 1000.0);
    sc_free(sc);
    if (uv_loop_close(&loop) != 0)
        log_warn("event loop closed with handles still open");
    free(sc);
    log_flush();
    return rc;
}
