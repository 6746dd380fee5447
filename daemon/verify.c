/* verify — see verify.h.
 *
 * One process, one loop, the daemon's clients and sink.  In order:
 *   1. DescribeTable: the key schema.
 *   2. A parallel Scan (verify_scan.c): each page's items made into
 *      documents by the daemon's rules, the same ids fetched from the index
 *      with _mget and compared as JSON; each scanned id kept as a hash.
 *   3. A scroll over the index (verify_index.c): an id the Scan did not make
 *      is read from the table (consistent BatchGetItem).
 *   4. Every difference is a candidate (verify_confirm.c): read again, item
 *      and document, after settle_ms; what the live daemon caught up with
 *      is dropped, the rest confirmed, and with repair sent through the sink
 *      and read once more.
 * The report goes to stdout at the end; progress lines to stderr.
 */
#include "daemon/verify_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/creds.h"
#include "base/backoff.h"
#include "base/http.h"
#include "base/jsonx.h"
#include "base/log.h"
#include "base/url.h"
#include "base/util.h"
#include "config/config.h"
#include "indexer/conflicts.h"
#include "indexer/sink.h"

#define DOC_MAX (16u << 20)
#define TICK_MS 1000
#define REPLY_MAX ((size_t)256 << 20) /* an _mget of a page's documents */

/* ---- stopping --------------------------------------------------------- */

static void close_cb_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_clients_closed(void *arg)
{
    struct verify *v = arg;

    uv_walk(v->app.loop, close_cb_walk, NULL);
}

static void take_down(struct verify *v)
{
    if (v->closing_done || v->sink_draining)
        return;
    v->closing_done = true;
    clients_take_down(&v->clients, &v->app, on_clients_closed, v);
}

static void on_sink_closed(void *arg)
{
    struct verify *v = arg;

    v->sink_draining = false;
    take_down(v);
}

void verify_stop(struct verify *v, int code, const char *fmt, ...)
{
    if (v->stopping)
        return;
    v->stopping = true;
    v->exit_code = code;
    if (fmt) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(v->why, sizeof(v->why), fmt, ap);
        va_end(ap);
    }
    verify_scan_stop(v);
    verify_index_stop(v);
    verify_confirm_stop(v);
    uv_timer_stop(&v->tick);
    uv_timer_stop(&v->retry_timer);
    uv_signal_stop(&v->sigint);
    uv_signal_stop(&v->sigterm);
    if (v->tty)
        fputc('\n', stderr);
    if (v->app.sink) {
        v->sink_draining = true;
        sink_close(v->app.sink, code == 75 ? (long)v->app.cfg->daemon.shutdown_timeout_ms : 0,
                   on_sink_closed, v);
    } else {
        take_down(v);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct verify *v = h->data;

    verify_stop(v, 75, "interrupted by %s", signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- engine calls ------------------------------------------------------ */

struct vcall {
    struct verify *v;
    struct list link;       /* in v->retry while it waits */
    char method[8];
    char *path, *body;
    size_t len;
    vcall_cb *cb;
    void *arg;
    unsigned failures;
    uint64_t due, failing_since;
};

static void vcall_send(struct vcall *c);

static void vcall_finish(struct vcall *c, long status, const char *body, size_t len)
{
    struct verify *v = c->v;

    v->calls--;
    c->cb(v, c->arg, status, body, len);
    free(c->path);
    free(c->body);
    free(c);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct verify *v = container_of(t, struct verify, retry_timer);
    uint64_t now = uv_now(v->app.loop), next = UINT64_MAX;
    struct list ready, *pos, *n;

    list_init(&ready);
    for (pos = v->retry.next; pos != &v->retry; pos = n) {
        struct vcall *c = list_entry(pos, struct vcall, link);

        n = pos->next;
        if (c->due <= now) {
            list_remove(&c->link);
            list_push_tail(&ready, &c->link);
        } else if (c->due < next) {
            next = c->due;
        }
    }
    while (!list_empty(&ready)) {
        struct vcall *c = list_first_entry(&ready, struct vcall, link);

        list_remove(&c->link);
        vcall_send(c);
    }
    if (next != UINT64_MAX && !v->stopping)
        uv_timer_start(&v->retry_timer, on_retry_timer, next - now, 0);
}

static void vcall_later(struct vcall *c, const char *what)
{
    struct verify *v = c->v;
    uint64_t now = uv_now(v->app.loop);
    long ms = backoff_ms(VERIFY_RETRY_BASE_MS, VERIFY_RETRY_MAX_MS, c->failures++);

    if (!c->failing_since)
        c->failing_since = now;
    if (now - c->failing_since >= VERIFY_GIVE_UP_MS) {
        verify_stop(v, 69, "the search engine at %s failed %s %s for %d s: %s",
                    v->app.cfg->sink.url, c->method, c->path, VERIFY_GIVE_UP_MS / 1000, what);
        vcall_finish(c, 0, NULL, 0);
        return;
    }
    log_warn("%s %s: %s; retrying in %ld ms", c->method, c->path, what, ms);
    c->due = now + (uint64_t)ms;
    list_push_tail(&v->retry, &c->link);
    if (!uv_is_active((uv_handle_t *)&v->retry_timer) ||
        uv_timer_get_due_in(&v->retry_timer) > (uint64_t)ms)
        uv_timer_start(&v->retry_timer, on_retry_timer, (uint64_t)ms, 0);
}

static void on_vcall_reply(void *arg, int err, long status, const char *body, size_t len)
{
    struct vcall *c = arg;
    struct verify *v = c->v;
    char what[256];

    if (v->stopping) {
        vcall_finish(c, 0, NULL, 0);
        return;
    }
    if (err < 0 || status == 429 || status >= 500) {
        if (err < 0)
            snprintf(what, sizeof(what), "no answer (%s)", strerror(-err));
        else
            snprintf(what, sizeof(what), "HTTP %ld %.*s", status, (int)(len < 200 ? len : 200),
                     body ? body : "");
        vcall_later(c, what);
        return;
    }
    if (status == 401 || status == 403) {
        verify_stop(v, 77, "the search engine at %s refused %s %s: HTTP %ld %.*s",
                    v->app.cfg->sink.url, c->method, c->path, status,
                    (int)(len < 300 ? len : 300), body ? body : "");
        vcall_finish(c, 0, NULL, 0);
        return;
    }
    vcall_finish(c, status, body, len);
}

static void vcall_send(struct vcall *c)
{
    struct verify *v = c->v;
    int rc;

    if (v->stopping) {
        vcall_finish(c, 0, NULL, 0);
        return;
    }
    rc = sink_call(v->app.sink, c->method, c->path, c->body ? "application/json" : NULL, c->body,
                   c->len, REPLY_MAX, on_vcall_reply, c);
    if (rc < 0)
        vcall_finish(c, 0, NULL, 0);
}

int verify_engine(struct verify *v, const char *method, const char *path, const char *body,
                  size_t len, vcall_cb *cb, void *arg)
{
    struct vcall *c = calloc(1, sizeof(*c));

    if (!c || !(c->path = strdup(path)) || (body && !(c->body = malloc(len + 1)))) {
        if (c)
            free(c->path);
        free(c);
        return -ENOMEM;
    }
    snprintf(c->method, sizeof(c->method), "%s", method);
    if (body) {
        memcpy(c->body, body, len);
        c->body[len] = '\0';
    }
    c->len = len;
    c->v = v;
    c->cb = cb;
    c->arg = arg;
    list_init(&c->link);
    v->calls++;
    vcall_send(c);
    return 0;
}

void verify_engine_refused(struct verify *v, const char *what, long status, const char *body,
                           size_t len)
{
    /* A missing index: 404 for a search; an "error" per document (status 200)
     * for _mget. */
    if (body && memmem(body, len, "index_not_found_exception", 25))
        verify_stop(v, 69, "%s: the index %s does not exist", what, v->index);
    else
        verify_stop(v, 69, "%s: HTTP %ld %.*s", what, status, (int)(len < 300 ? len : 300),
                    body ? body : "");
}

/* ---- documents ---------------------------------------------------------- */

enum transform_result verify_make_doc(struct verify *v, json_t *item)
{
    struct buf src = v->d.source, keys = v->d.keys;
    enum transform_result tr;

    memset(&v->d, 0, sizeof(v->d));
    v->d.source = src;
    v->d.keys = keys;
    buf_reset(&v->d.source);
    buf_reset(&v->d.keys);
    buf_reset(&v->err);
    v->d.table = v->o->table;
    tr = transform_item(&v->tf, item, &v->d, &v->err);
    if (tr != TR_DOC) {
        v->unconvertible++;
        logc_warn((&(struct log_ctx){ .table = v->o->table }),
                  "an item cannot be made into a document (the daemon dead-letters it): %s",
                  v->err.ptr ? v->err.ptr : "?");
        return TR_ERROR;
    }
    return tr;
}

int verify_doc_canon(struct verify *v, struct buf *out, uint64_t *hash)
{
    size_t mark = out->len;
    int rc = verify_canon(v->d.source.ptr, v->d.source.len, out);

    if (rc < 0)
        return rc;
    *hash = verify_hash(out->ptr + mark, out->len - mark);
    return 0;
}

void verify_note(struct verify *v, struct vlist *l, const char *id, size_t len)
{
    if (l->ids.len)
        buf_putc(&l->ids, ',');
    jsonx_put_string(&l->ids, id, len);
    if (++l->n == VERIFY_EXAMPLES)
        l->examples_end = l->ids.len;
}

/* Reading pauses while this many candidates wait. */
bool verify_busy(const struct verify *v)
{
    return v->ncand >= VERIFY_CAND_MAX;
}

void verify_resume(struct verify *v)
{
    if (v->stopping || verify_busy(v))
        return;
    verify_scan_resume(v);
    verify_index_resume(v);
}

void verify_maybe_complete(struct verify *v)
{
    if (v->stopping || !verify_scan_done(v))
        return;
    if (!v->scroll_started) {
        verify_index_begin(v);
        return;
    }
    if (!v->scroll_done || v->ncand || v->calls)
        return;
    {
        uint64_t left = 0;

        for (int k = 0; k < VK_NKINDS; k++)
            left += v->found[k].n - v->repaired[k];
        verify_stop(v, left ? 1 : 0, NULL);
    }
}

/* ---- progress and the report -------------------------------------------- */

static void progress(struct verify *v)
{
    double el = (double)(uv_now(v->app.loop) - v->start_ms) / 1000.0;
    char line[512];

    snprintf(line, sizeof(line), "verify %s: %" PRIu64 " items read%s, %" PRIu64
             " documents listed, %" PRIu64 " missing, %" PRIu64 " stale, %" PRIu64
             " extra, %zu being read again, %.0f items/s", v->o->table, v->items,
             v->scroll_started ? " (Scan done)" : "", v->documents, v->found[VK_MISSING].n,
             v->found[VK_STALE].n, v->found[VK_EXTRA].n, v->ncand,
             el > 0 ? (double)v->items / el : 0);
    if (v->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
    } else {
        log_info("%s", line);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct verify *v = container_of(t, struct verify, tick);
    uint64_t now = uv_now(v->app.loop);

    if (v->tty || now - v->last_log_ms >= (uint64_t)v->o->progress_ms) {
        v->last_log_ms = now;
        progress(v);
    }
    log_flush_expired();
}

static const char *const kind_name[VK_NKINDS] = { "missing", "stale", "extra" };

static void print_list(FILE *f, const struct vlist *l)
{
    fputc('[', f);
    if (l->ids.len)
        fwrite(l->ids.ptr, 1, l->ids.len, f);
    fputc(']', f);
}

static void report(struct verify *v, FILE *f)
{
    if (v->o->json) {
        struct buf b;

        buf_init(&b, BUF_NOMAX);
        buf_puts(&b, "{\"table\":");
        jsonx_put_string(&b, v->o->table, strlen(v->o->table));
        buf_puts(&b, ",\"index\":");
        jsonx_put_string(&b, v->index, strlen(v->index));
        buf_printf(&b, ",\"items\":%" PRIu64 ",\"documents\":%" PRIu64, v->items, v->documents);
        fwrite(b.ptr, 1, b.len, f);
        buf_close(&b);
        for (int k = 0; k < VK_NKINDS; k++) {
            fprintf(f, ",\"%s\":", kind_name[k]);
            print_list(f, &v->found[k]);
        }
        fputs(",\"kept_changing\":", f);
        print_list(f, &v->kept_changing);
        fprintf(f, ",\"dropped\":%" PRIu64 ",\"unconvertible\":%" PRIu64
                   ",\"unchecked\":%" PRIu64, v->dropped, v->unconvertible, v->unchecked);
        if (v->o->repair) {
            fprintf(f, ",\"repaired\":{\"missing\":%" PRIu64 ",\"stale\":%" PRIu64
                       ",\"extra\":%" PRIu64 ",\"not_repaired\":", v->repaired[VK_MISSING],
                    v->repaired[VK_STALE], v->repaired[VK_EXTRA]);
            print_list(f, &v->unrepaired);
            fputc('}', f);
        } else {
            fputs(",\"repaired\":{}", f);
        }
        fputs("}\n", f);
        fflush(f);
        return;
    }
    fprintf(f, "table %s, index %s: %" PRIu64 " items, %" PRIu64 " documents\n", v->o->table,
            v->index, v->items, v->documents);
    for (int k = 0; k < VK_NKINDS; k++) {
        const struct vlist *l = &v->found[k];

        fprintf(f, "%-8s %" PRIu64, kind_name[k], l->n);
        if (v->o->repair)
            fprintf(f, " (%" PRIu64 " repaired)", v->repaired[k]);
        if (l->n) {
            size_t end = l->n > VERIFY_EXAMPLES ? l->examples_end : l->ids.len;

            fprintf(f, ": %.*s%s", (int)end, l->ids.ptr, l->n > VERIFY_EXAMPLES ? ", ..." : "");
        }
        fputc('\n', f);
    }
    if (v->kept_changing.n)
        fprintf(f, "%" PRIu64 " of the stale kept changing while they were read again\n",
                v->kept_changing.n);
    if (v->dropped)
        fprintf(f, "%" PRIu64 " differences went away when read again (the daemon caught up)\n",
                v->dropped);
    if (v->unconvertible)
        fprintf(f, "%" PRIu64 " items cannot be made into documents (see the warnings)\n",
                v->unconvertible);
    if (v->unchecked)
        fprintf(f, "%" PRIu64 " documents of the index could not be read back into a key of "
                   "the table: not checked (see the warnings)\n", v->unchecked);
    fflush(f);
}

/* ---- the sink's callbacks ------------------------------------------------- */

static void on_doc_done(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome o,
                        void *arg)
{
    struct verify *v = arg;

    if (o == SINK_CANCELED)
        return;
    verify_repair_done(v, (struct cand *)(uintptr_t)ticket, o);
}

static void on_sink_resume(void *arg)
{
}

/* ---- DescribeTable ------------------------------------------------------- */

static void on_describe(const struct ddb_reply *rep, void *arg)
{
    struct verify *v = arg;
    json_t *table = json_object_get(rep->json, "Table"), *ic;
    int rc;

    if (rep->err == -ECANCELED || v->stopping)
        return;
    if (rep->cls != DDB_OK) {
        verify_stop(v, ddb_reply_exit_code(rep), "DescribeTable %s: HTTP %ld %s %s", v->o->table,
                    rep->status, rep->type, rep->message);
        return;
    }
    rc = source_keys_describe(&v->keys, rep->json);
    if (rc == -ENOMEM) {
        verify_stop(v, 70, "out of memory");
        return;
    }
    ic = json_object_get(table, "ItemCount");
    v->item_count = json_is_integer(ic) ? (int64_t)json_integer_value(ic) : -1;
    if (!v->keys.hash_key) {
        verify_stop(v, 69, "DescribeTable %s gave no hash key", v->o->table);
        return;
    }
    v->tf.hash_key = v->keys.hash_key;
    v->tf.range_key = v->keys.range_key;
    v->tf.hash_key_len = v->keys.hash_key_len;
    v->tf.range_key_len = v->keys.range_key_len;
    verify_scan_begin(v);
}

/* ---- start ---------------------------------------------------------------- */

static void say_renamed(void *arg, const char *line)
{
    struct verify *v = arg;

    logc_debug((&(struct log_ctx){ .table = v->o->table }), "%s", line);
}

static int prepare(struct verify *v, const struct config *cfg, const struct verify_opts *o)
{
    char err[512];

    v->t = config_table_find(cfg, o->table);
    if (!v->t) {
        snprintf(v->why, sizeof(v->why), "no [table %s] in the configuration", o->table);
        return 78;
    }
    if (strcmp(cfg->sink.sigv4_service ? cfg->sink.sigv4_service : "", "aoss") == 0 &&
        cfg->sink.auth == CONFIG_AUTH_SIGV4) {
        /* Its supported operations (Amazon OpenSearch Service developer guide,
         * "Supported operations and plugins in Amazon OpenSearch Serverless")
         * list neither the scroll API nor point in time searches, which
         * verify needs to list the index's ids. */
        snprintf(v->why, sizeof(v->why), "[sink] sigv4_service = aoss: OpenSearch Serverless has "
                 "no scroll or point-in-time search to list an index's ids; verify cannot run "
                 "there");
        return 78;
    }
    if (clients_transform_cfg(v->t, &v->tf, &v->hmac_key, err, sizeof(err)) != 0) {
        snprintf(v->why, sizeof(v->why), "[table %s] hmac_key_file: %s", o->table, err);
        return 78;
    }
    if (o->index)
        v->tf.index = o->index;
    v->index = v->tf.index;
    if (!(v->index_path = url_path("/", v->index)))
        return 70;
    transform_renames_init(&v->renames, say_renamed, v);
    v->tf.on_rename = transform_renames_note;
    v->tf.rename_arg = &v->renames;
    v->nsegs = o->segments;
    if (!(v->segs = calloc((size_t)v->nsegs, sizeof(*v->segs))))
        return 70;
    verify_scan_init(v);
    return 0;
}

static void vlist_free(struct vlist *l)
{
    buf_close(&l->ids);
}

static void v_free(struct verify *v)
{
    struct vcall *c;

    while ((c = list_first_entry(&v->retry, struct vcall, link))) {
        list_remove(&c->link);
        free(c->path);
        free(c->body);
        free(c);
    }
    verify_scan_free(v);
    verify_confirm_free(v);
    verify_idset_free(&v->scanned);
    free(v->scroll_id);
    for (int k = 0; k < VK_NKINDS; k++)
        vlist_free(&v->found[k]);
    vlist_free(&v->unrepaired);
    vlist_free(&v->kept_changing);
    buf_close(&v->d.source);
    buf_close(&v->d.keys);
    buf_close(&v->keys.scratch.source);
    buf_close(&v->keys.scratch.keys);
    buf_close(&v->err);
    free(v->keys.hash_key);
    free(v->keys.range_key);
    free(v->index_path);
    clients_tf_key_free(v->hmac_key, v->tf.hmac_key_len);
    transform_renames_close(&v->renames);
    clients_close(&v->clients);
    sink_free(v->app.sink);
}

int verify_run(const struct config *cfg, const struct verify_opts *given)
{
    struct verify *v = calloc(1, sizeof(*v));
    struct verify_opts eff = *given, *o = &eff;
    uv_loop_t loop;
    int rc;

    if (!v || uv_loop_init(&loop) != 0) {
        free(v);
        fprintf(stderr, "ddb2es verify: out of memory\n");
        return 70;
    }
    signal(SIGPIPE, SIG_IGN);
    log_setup(cfg->daemon.log_level, cfg->daemon.log_format);
    if (o->segments < 1 || o->segments > 1024)
        o->segments = o->segments > 1024 ? 1024 : 4;
    if (o->settle_ms <= 0)
        o->settle_ms = 5000;
    if (o->progress_ms <= 0)
        o->progress_ms = 10000;
    if (o->margin_s <= 0)
        o->margin_s = 5;
    v->o = o;
    v->keys.tf = &v->tf;
    v->item_count = -1;
    v->app.loop = &loop;
    v->app.cfg = cfg;
    v->tty = isatty(STDERR_FILENO) == 1;
    list_init(&v->retry);
    list_init(&v->first);
    list_init(&v->due);
    list_init(&v->repairing);
    buf_init(&v->err, 1024);
    buf_init(&v->batch_canon, BUF_NOMAX);
    buf_init(&v->batch_raw, BUF_NOMAX);
    buf_init(&v->d.source, DOC_MAX);
    buf_init(&v->d.keys, DOC_MAX);
    buf_init(&v->keys.scratch.source, DOC_MAX);
    for (int k = 0; k < VK_NKINDS; k++)
        buf_init(&v->found[k].ids, BUF_NOMAX);
    buf_init(&v->unrepaired.ids, BUF_NOMAX);
    buf_init(&v->kept_changing.ids, BUF_NOMAX);
    uv_signal_init(&loop, &v->sigint);
    uv_signal_init(&loop, &v->sigterm);
    uv_timer_init(&loop, &v->tick);
    uv_timer_init(&loop, &v->retry_timer);
    uv_timer_init(&loop, &v->confirm_timer);
    v->sigint.data = v->sigterm.data = v;

    rc = prepare(v, cfg, o); /* main ran clients_preflight */
    if (rc == 0)
        rc = clients_open(&v->clients, &v->app, NULL, on_doc_done, on_sink_resume, v);
    /* --index: repairs are shaped like the table's documents (README "Types and mappings") */
    if (rc == 0 && o->index && v->t->type_conflicts == CONFIG_CONFLICTS_SIDE &&
        sink_set_conflicts(v->app.sink, o->index, v->t->conflicts_field) < 0)
        rc = 70;
    if (rc == 0) {
        json_t *body = json_pack("{s:s}", "TableName", o->table);

        v->start_ms = v->last_log_ms = uv_now(&loop);
        uv_signal_start(&v->sigint, on_signal, SIGINT);
        uv_signal_start(&v->sigterm, on_signal, SIGTERM);
        uv_timer_start(&v->tick, on_tick, TICK_MS, TICK_MS);
        log_info("verify %s: index %s, %d Scan segment(s), %s, settle %" PRId64 " ms%s",
                 o->table, v->index, v->nsegs, o->rate > 0 ? "rate capped" : "no rate cap",
                 o->settle_ms, o->repair ? ", repairing" : "");
        if (!ddb_call(v->app.aws, AWS_DYNAMODB, "DescribeTable", body, on_describe, v, NULL))
            verify_stop(v, 70, "cannot start DescribeTable");
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = v->exit_code;
    } else {
        if (v->app.sink) {
            sink_close(v->app.sink, 0, NULL, NULL);
            uv_run(&loop, UV_RUN_DEFAULT);
        }
        aws_free(v->app.aws);
        creds_free(v->app.creds);
        if (v->app.http)
            http_close(v->app.http, NULL, NULL);
        if (v->app.sink_http)
            http_close(v->app.sink_http, NULL, NULL);
        uv_walk(&loop, close_cb_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (rc == 0 || rc == 1)
        report(v, stdout);
    if (v->start_ms) {
        double el = (double)(uv_now(&loop) - v->start_ms) / 1000.0;

        fprintf(stderr, "verify %s: %" PRIu64 " items, %" PRIu64 " documents, %" PRIu64
                        " missing, %" PRIu64 " stale, %" PRIu64 " extra%s in %.1f s%s\n",
                o->table, v->items, v->documents, v->found[VK_MISSING].n, v->found[VK_STALE].n,
                v->found[VK_EXTRA].n, o->repair ? " (see the report for the repairs)" : "", el,
                rc == 0 || rc == 1 ? "" : "; not finished");
    }
    if (rc != 0 && rc != 1 && v->why[0])
        fprintf(stderr, "ddb2es verify: %s\n", v->why);
    else if (rc == 1)
        fprintf(stderr, "ddb2es verify: the index %s differs from table %s%s\n", v->index,
                o->table, o->repair ? " after the repair" : "");
    v_free(v);
    if (uv_loop_close(&loop) != 0)
        log_warn("event loop closed with handles still open");
    free(v);
    log_flush();
    return rc;
}

bool verify_shaped_same(const struct verify *v, const char *exp, size_t elen, const char *act,
                        size_t alen)
{
    const char *field = v->t->conflicts_field ? v->t->conflicts_field : CONFLICTS_FIELD;
    json_t *doc, *side, *e;
    struct buf cur, next;
    bool same = false;
    size_t i;

    if (v->t->type_conflicts != CONFIG_CONFLICTS_SIDE || !act || !memmem(act, alen, field,
                                                                         strlen(field)))
        return false;
    doc = jsonx_loadb(act, alen, 0, NULL);
    side = json_object_get(doc, field);
    if (!json_is_array(side) || !json_array_size(side)) {
        json_decref(doc);
        return false;
    }
    buf_init(&cur, BUF_NOMAX);
    buf_init(&next, BUF_NOMAX);
    same = buf_append(&cur, exp, elen) == 0;
    json_array_foreach(side, i, e) {
        const char *path = json_string_value(json_object_get(e, "path"));
        size_t moved = 0;

        buf_reset(&next);
        if (!same || !path ||
            conflicts_shape(NULL, path, field, cur.ptr, cur.len, &next, &moved) < 0 || !moved) {
            same = false;
            break;
        }
        buf_reset(&cur);
        same = buf_append(&cur, next.ptr, next.len) == 0;
    }
    same = same && verify_json_same(cur.ptr, cur.len, act, alen);
    buf_close(&cur);
    buf_close(&next);
    json_decref(doc);
    return same;
}
