#include "daemon/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "aws/creds.h"
#include "base/util.h"
#include "daemon/app.h"
#include "daemon/health.h"
#include "daemon/lease.h"
#include "base/log.h"
#include "base/version.h"

#define OUT_MAX ((size_t)16 << 20)

/* ---- the text ---------------------------------------------------------- */

/* The text's writer: appends, remembering the first failure, so the
 * renderer checks once at the end. */
struct w {
    struct buf *b;
    int err;
};

static void wout(struct w *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wout(struct w *w, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(w->b, fmt, ap);
    va_end(ap);
    if (rc < 0 && !w->err)
        w->err = rc;
}

static void wputc(struct w *w, char c)
{
    int rc = buf_putc(w->b, c);

    if (rc < 0 && !w->err)
        w->err = rc;
}

static void family(struct w *b, const char *name, const char *type, const char *help)
{
    wout(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format wants: \\, \" and \n. */
static void label_value(struct w *b, const char *v)
{
    wputc(b, '"');
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            wputc(b, '\\'), wputc(b, *p);
        else if (*p == '\n')
            wout(b, "\\n");
        else
            wputc(b, *p);
    }
    wputc(b, '"');
}

static void sample_u(struct w *b, const char *name, const char *l1, const char *v1,
                     const char *l2, const char *v2, uint64_t value)
{
    wout(b, "%s", name);
    if (l1) {
        wout(b, "{%s=", l1);
        label_value(b, v1);
        if (l2) {
            wout(b, ",%s=", l2);
            label_value(b, v2);
        }
        wputc(b, '}');
    }
    wout(b, " %" PRIu64 "\n", value);
}

/* A counter or gauge with one sample per table. */
struct per_table {
    const char *name, *type, *help;
    size_t off; /* of a uint64_t in struct reader_stats (or encstats_counts) */
};

static const struct per_table per_table[] = {
    { "ddb2es_records_read_total", "counter",
      "Stream records read (GetRecords), per table.", offsetof(struct reader_stats, records_read) },
    { "ddb2es_docs_indexed_total", "counter",
      "Documents the engine indexed (2xx), per table.",
      offsetof(struct reader_stats, docs_indexed) },
    { "ddb2es_docs_deleted_total", "counter",
      "Documents the engine deleted (REMOVE records, 2xx), per table.",
      offsetof(struct reader_stats, docs_deleted) },
    { "ddb2es_docs_stale_total", "counter",
      "Actions refused because the index holds a newer version (409), per table: not an "
      "error.",
      offsetof(struct reader_stats, docs_stale) },
    { "ddb2es_docs_gone_total", "counter",
      "Deletes of documents already absent (404), per table: not an error.",
      offsetof(struct reader_stats, docs_gone) },
    { "ddb2es_docs_skipped_total", "counter",
      "Records that make no action (e.g. TTL deletes kept by on_ttl_delete = keep), per table.",
      offsetof(struct reader_stats, docs_skipped) },
    { "ddb2es_records_lost_events_total", "counter",
      "Times records were trimmed from the stream (TrimmedDataAccessException) or a shard "
      "expired before they were read: each event is a gap of lost records (count unknown), "
      "per table.",
      offsetof(struct reader_stats, records_lost_events) },
    { "ddb2es_shard_parents_missing_total", "counter",
      "Shards unfinished in the checkpoint that their stream no longer lists (a parent left "
      "the listing before it was read to its end); what is left of each is read, or counted "
      "in ddb2es_records_lost_events_total if it expired, per table.",
      offsetof(struct reader_stats, parents_missing) },
    { "ddb2es_fields_renamed_total", "counter",
      "Attribute and map key names the engines refuse (metadata names such as _id at the top "
      "level; empty, blank or dotted-empty names) renamed by the documented rule, per table; "
      "each distinct name is logged once.",
      offsetof(struct reader_stats, fields_renamed) },
    { "ddb2es_getrecords_calls_total", "counter", "GetRecords calls answered, per table.",
      offsetof(struct reader_stats, getrecords_calls) },
    { "ddb2es_getrecords_empty_total", "counter",
      "GetRecords calls that returned no record, per table.",
      offsetof(struct reader_stats, getrecords_empty) },
    { "ddb2es_streams_throttled_total", "counter",
      "DynamoDB Streams calls throttled (and retried with backoff), per table.",
      offsetof(struct reader_stats, throttled) },
};

/* The same, from struct encstats_counts (README "Client-side encrypted
 * tables"). */
static const struct per_table per_table_enc[] = {
    { "ddb2es_encrypted_items_total", "counter",
      "Items written by client-side encryption (the AWS Database Encryption SDK's aws_dbe_head, "
      "the legacy client's *amzn-ddb-map-desc* or *amzn-ddb-map-sig*), per table; counted "
      "with encrypted_items = plaintext only.",
      offsetof(struct encstats_counts, items) },
    { "ddb2es_encrypted_attributes_left_out_total", "counter",
      "Attributes of those items left out of their documents because they are or may be "
      "ciphertext (or are binary, when the header could not be used), per table; the "
      "encryption's own header attributes are not counted.",
      offsetof(struct encstats_counts, attributes_left_out) },
    { "ddb2es_encrypted_headers_failed_total", "counter",
      "Items written by client-side encryption whose header could not be used (unreadable, or "
      "not matching the item): only their attributes that are not binary were indexed, per "
      "table.",
      offsetof(struct encstats_counts, headers_failed) },
};

static const char *const req_class_label[SINK_REQ_NCLASSES] = {
    [SINK_REQ_2XX] = "2xx", [SINK_REQ_413] = "413", [SINK_REQ_429] = "429",
    [SINK_REQ_5XX] = "5xx", [SINK_REQ_4XX] = "4xx", [SINK_REQ_NET] = "network",
};

static void render_tables(const struct metrics_view *v, struct w *b)
{
    for (size_t f = 0; f < ARRAY_SIZE(per_table); f++) {
        family(b, per_table[f].name, per_table[f].type, per_table[f].help);
        for (size_t i = 0; i < v->ntables; i++) {
            const char *st = (const char *)&v->tables[i].st;
            uint64_t val;

            memcpy(&val, st + per_table[f].off, sizeof(val));
            sample_u(b, per_table[f].name, "table", v->tables[i].name, NULL, NULL, val);
        }
    }
    for (size_t f = 0; f < ARRAY_SIZE(per_table_enc); f++) {
        family(b, per_table_enc[f].name, per_table_enc[f].type, per_table_enc[f].help);
        for (size_t i = 0; i < v->ntables; i++) {
            const char *c = (const char *)&v->tables[i].enc;
            uint64_t val;

            memcpy(&val, c + per_table_enc[f].off, sizeof(val));
            sample_u(b, per_table_enc[f].name, "table", v->tables[i].name, NULL, NULL, val);
        }
    }
    family(b, "ddb2es_iterator_age_seconds", "gauge",
           "Seconds between now and the newest ApproximateCreationDateTime read from the "
           "table's stream; absent until a record was read.");
    for (size_t i = 0; i < v->ntables; i++) {
        int64_t age = v->now - v->tables[i].st.newest_created;

        if (v->tables[i].st.newest_created > 0)
            sample_u(b, "ddb2es_iterator_age_seconds", "table", v->tables[i].name, NULL, NULL,
                     (uint64_t)(age > 0 ? age : 0));
    }
    family(b, "ddb2es_shards", "gauge",
           "Shards known, per table and state: open (being read), closed (ended, being read "
           "to its end), waiting (for its parent, or an older stream of the table, to finish), "
           "held (shard_read_ahead records wait for an older one to finish), done (read and "
           "finished since the start).");
    for (size_t i = 0; i < v->ntables; i++) {
        const struct reader_stats *st = &v->tables[i].st;
        const char *n = v->tables[i].name;

        sample_u(b, "ddb2es_shards", "table", n, "state", "open", st->shards_open);
        sample_u(b, "ddb2es_shards", "table", n, "state", "closed", st->shards_closed);
        sample_u(b, "ddb2es_shards", "table", n, "state", "waiting", st->shards_waiting);
        sample_u(b, "ddb2es_shards", "table", n, "state", "held", st->shards_held);
        sample_u(b, "ddb2es_shards", "table", n, "state", "done", st->shards_done);
    }
    family(b, "ddb2es_mirror_actions_total", "counter",
           "Actions also written to the new index of a `ddb2es rebuild` (the sink's mirror), "
           "per table.");
    for (size_t i = 0; i < v->ntables; i++)
        sample_u(b, "ddb2es_mirror_actions_total", "table", v->tables[i].name, NULL, NULL,
                 v->tables[i].mirror_actions);
}

static void render_leases(const struct metrics_view *v, struct w *b)
{
    const struct metrics_leases *l = v->leases;

    family(b, "ddb2es_leases_held", "gauge",
           "Shard leases this worker holds, per table (coordinated mode, [leases]).");
    for (size_t i = 0; i < v->ntables; i++)
        sample_u(b, "ddb2es_leases_held", "table", v->tables[i].name, NULL, NULL,
                 v->tables[i].leases_held);
    family(b, "ddb2es_lease_events_total", "counter",
           "Lease events: taken (free, expired, released or forced), renewed-failed (a renewal "
           "that failed: an error or a lost condition), stolen (claims made on another "
           "worker's lease), lost (a condition failed or the deadline passed), released.");
    sample_u(b, "ddb2es_lease_events_total", "event", "taken", NULL, NULL, l->taken);
    sample_u(b, "ddb2es_lease_events_total", "event", "renewed-failed", NULL, NULL,
             l->renew_failed);
    sample_u(b, "ddb2es_lease_events_total", "event", "stolen", NULL, NULL, l->stolen);
    sample_u(b, "ddb2es_lease_events_total", "event", "lost", NULL, NULL, l->lost);
    sample_u(b, "ddb2es_lease_events_total", "event", "released", NULL, NULL, l->released);
    family(b, "ddb2es_workers", "gauge", "Workers seen alive at the last read of the lease table.");
    sample_u(b, "ddb2es_workers", NULL, NULL, NULL, NULL, l->workers);
    family(b, "ddb2es_lease_renewing", "gauge",
           "1 while the lease table answers this worker's renewals; 0 when none succeeded for "
           "lease_duration (the leases are given up and reading stops) or the worker id is "
           "taken by another process.");
    sample_u(b, "ddb2es_lease_renewing", NULL, NULL, NULL, NULL, l->ok);
}

static void render_sink(const struct metrics_view *v, struct w *b)
{
    static const struct sink_stats zero;
    const struct sink_stats *s = v->sink ? v->sink : &zero;
    uint64_t cum = 0;

    family(b, "ddb2es_bulk_requests_total", "counter",
           "Bulk requests by outcome: 2xx, 413 (split), 429, 5xx, 4xx (other client errors), "
           "network (no reply).");
    for (int c = 0; c < SINK_REQ_NCLASSES; c++)
        sample_u(b, "ddb2es_bulk_requests_total", "status", req_class_label[c], NULL, NULL,
                 s->bulk_requests[c]);
    family(b, "ddb2es_bulk_item_failures_total", "counter",
           "Bulk items the engine failed, per table and error type (retried when 429/5xx, "
           "else dead-lettered).");
    for (size_t i = 0; i < s->n_item_failures; i++)
        sample_u(b, "ddb2es_bulk_item_failures_total", "table", s->item_failures[i].table,
                 "type", s->item_failures[i].type, s->item_failures[i].count);
    if (s->item_failures_other)
        sample_u(b, "ddb2es_bulk_item_failures_total", "table", "_other", "type", "_other",
                 s->item_failures_other);
    family(b, "ddb2es_dlq_total", "counter",
           "Records written to the dead-letter file, per table and reason: the engine's error "
           "type when it refused the document (mapper_parsing_exception...), else why ddb2es "
           "could not make one (record_not_json, record_conversion_error, item_unreadable...). "
           "A table appears once it has one.");
    for (size_t i = 0; i < s->n_dlq_reasons; i++)
        sample_u(b, "ddb2es_dlq_total", "table", s->dlq_reasons[i].table, "reason",
                 s->dlq_reasons[i].type, s->dlq_reasons[i].count);
    if (s->dlq_other)
        sample_u(b, "ddb2es_dlq_total", "table", "_other", "reason", "_other", s->dlq_other);
    family(b, "ddb2es_type_conflicts_total", "counter",
           "Documents sent with values moved to the side object because the index's mapping "
           "has another type for their field ([table] type_conflicts = side). A table appears "
           "once it has one.");
    for (size_t i = 0; i < s->n_type_conflicts; i++)
        sample_u(b, "ddb2es_type_conflicts_total", "table", s->type_conflicts[i].table, NULL,
                 NULL, s->type_conflicts[i].count);
    if (s->type_conflicts_other)
        sample_u(b, "ddb2es_type_conflicts_total", "table", "_other", NULL, NULL,
                 s->type_conflicts_other);
    family(b, "ddb2es_bulk_retries_total", "counter",
           "Bulk requests sent again after a request-level failure.");
    sample_u(b, "ddb2es_bulk_retries_total", NULL, NULL, NULL, NULL, s->retries);
    family(b, "ddb2es_docs_retried_total", "counter",
           "Bulk items sent again after a per-item 429/5xx.");
    sample_u(b, "ddb2es_docs_retried_total", NULL, NULL, NULL, NULL, s->docs_retried);
    family(b, "ddb2es_sink_queued_bytes", "gauge",
           "Bytes of documents waiting to be sent (bounded by max_queue_bytes with in-flight).");
    sample_u(b, "ddb2es_sink_queued_bytes", NULL, NULL, NULL, NULL, s->queued_bytes);
    family(b, "ddb2es_sink_inflight_bytes", "gauge", "Bytes of documents in bulk requests in "
                                                     "flight.");
    sample_u(b, "ddb2es_sink_inflight_bytes", NULL, NULL, NULL, NULL, s->inflight_bytes);
    family(b, "ddb2es_sink_queued_docs", "gauge", "Documents in the sink, not finished yet.");
    sample_u(b, "ddb2es_sink_queued_docs", NULL, NULL, NULL, NULL, s->queued_docs);
    family(b, "ddb2es_sink_inflight_requests", "gauge", "Bulk requests in flight.");
    sample_u(b, "ddb2es_sink_inflight_requests", NULL, NULL, NULL, NULL, s->inflight_requests);
    family(b, "ddb2es_sink_failing", "gauge",
           "1 while the last bulk request failed with a retryable error.");
    sample_u(b, "ddb2es_sink_failing", NULL, NULL, NULL, NULL, s->failing);
    family(b, "ddb2es_sink_write_blocked", "gauge",
           "Indexes the search engine refuses writes to now (a cluster_block_exception such as "
           "index.blocks.write or the flood-stage read-only block, or a 401/403 on items; a "
           "cluster-wide block counts once); their documents wait and are retried.");
    sample_u(b, "ddb2es_sink_write_blocked", NULL, NULL, NULL, NULL, s->blocked_indexes);
    family(b, "ddb2es_sink_write_blocked_seconds", "gauge",
           "How long the oldest current write block has lasted; 0 when there is none.");
    sample_u(b, "ddb2es_sink_write_blocked_seconds", NULL, NULL, NULL, NULL,
             s->block_age_ms / 1000);
    family(b, "ddb2es_sink_write_blocks_total", "counter",
           "Write block episodes begun (per index: from the first refusal to the first write "
           "taken).");
    sample_u(b, "ddb2es_sink_write_blocks_total", NULL, NULL, NULL, NULL, s->write_blocks);
    family(b, "ddb2es_docs_blocked_total", "counter",
           "Bulk items refused by a write block or a 401/403, retried (never dead-lettered).");
    sample_u(b, "ddb2es_docs_blocked_total", NULL, NULL, NULL, NULL, s->docs_blocked);
    family(b, "ddb2es_sink_tombstones", "gauge",
           "Deletes remembered so that no older action on the same _id is sent after the "
           "engine forgot them (index.gc_deletes).");
    sample_u(b, "ddb2es_sink_tombstones", NULL, NULL, NULL, NULL, s->tombstones);
    family(b, "ddb2es_docs_dropped_by_tombstone_total", "counter",
           "Actions not sent because a newer delete of the same _id had finished (reported "
           "stale).");
    sample_u(b, "ddb2es_docs_dropped_by_tombstone_total", NULL, NULL, NULL, NULL,
             s->docs_tombstoned);
    family(b, "ddb2es_sink_tombstone_evictions_total", "counter",
           "Remembered deletes dropped before their time because tombstone_max was reached; "
           "raise it if this grows.");
    sample_u(b, "ddb2es_sink_tombstone_evictions_total", NULL, NULL, NULL, NULL,
             s->tombstone_evictions);

    family(b, "ddb2es_bulk_seconds", "histogram",
           "Bulk request latency in seconds, from sending to the end of the reply.");
    for (int i = 0; i <= SINK_BULK_NBUCKETS; i++) {
        cum += s->bulk_seconds_bucket[i];
        if (i < SINK_BULK_NBUCKETS)
            wout(b, "ddb2es_bulk_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                       sink_bulk_bounds[i], cum);
        else
            wout(b, "ddb2es_bulk_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    wout(b, "ddb2es_bulk_seconds_sum %.6f\n", s->bulk_seconds_sum);
    wout(b, "ddb2es_bulk_seconds_count %" PRIu64 "\n", s->bulk_seconds_count);
}

int metrics_render(const struct metrics_view *v, struct buf *out)
{
    struct w w = { .b = out }, *b = &w;

    family(b, "ddb2es_build_info", "gauge", "Always 1; the version is a label.");
    sample_u(b, "ddb2es_build_info", "version", v->version ? v->version : DDB2ES_VERSION, NULL,
             NULL, 1);
    family(b, "ddb2es_start_time_seconds", "gauge", "When the process started (Unix time).");
    sample_u(b, "ddb2es_start_time_seconds", NULL, NULL, NULL, NULL,
             (uint64_t)(v->start_time > 0 ? v->start_time : 0));
    family(b, "ddb2es_ready", "gauge",
           "1 once every stream was listed and the search engine answered, while it is not "
           "failing (as /readyz).");
    sample_u(b, "ddb2es_ready", NULL, NULL, NULL, NULL, v->ready);
    render_tables(v, b);
    if (v->leases)
        render_leases(v, b);
    render_sink(v, b);
    family(b, "ddb2es_checkpoint_writes_total", "counter",
           "Checkpoint file writes that reached the disk.");
    sample_u(b, "ddb2es_checkpoint_writes_total", NULL, NULL, NULL, NULL, v->checkpoint_writes);
    family(b, "ddb2es_checkpoint_write_failures_total", "counter",
           "Checkpoint file writes that failed (the previous file stays; retried).");
    sample_u(b, "ddb2es_checkpoint_write_failures_total", NULL, NULL, NULL, NULL,
             v->checkpoint_failures);
    family(b, "ddb2es_credential_renewals_total", "counter",
           "AWS credentials fetched again after the first key (temporary keys renewed before "
           "they expire, or a key the engine refused), by result: ok, or failed (the current "
           "key is kept while it lasts and the fetch is retried).");
    sample_u(b, "ddb2es_credential_renewals_total", "result", "ok", NULL, NULL,
             v->cred_renewals_ok);
    sample_u(b, "ddb2es_credential_renewals_total", "result", "failed", NULL, NULL,
             v->cred_renewals_failed);
    return w.err;
}

/* ---- the server -------------------------------------------------------- */

struct conn {
    struct metrics *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sh;
    int handles;           /* open handles; freed when the last closes */
    bool closing, answered;
    char req[METRICS_REQ_MAX];
    size_t len;
    struct buf out;
    struct conn *prev, *next;
};

struct metrics {
    struct app *app;
    struct health *health;
    uv_tcp_t listener;
    bool listening, closed;
    int port;
    uint64_t timeout_ms;
    int64_t start_time;
    struct conn *conns;
    size_t nconns;
};

struct metrics *metrics_new(struct app *app, struct health *h)
{
    struct metrics *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->app = app;
    m->health = h;
    m->timeout_ms = METRICS_TIMEOUT_MS;
    m->start_time = app->now ? (int64_t)app->now() : (int64_t)time(NULL);
    return m;
}

void metrics_set_timeout(struct metrics *m, uint64_t ms)
{
    m->timeout_ms = ms;
}

int metrics_port(const struct metrics *m)
{
    return m->listening ? m->port : 0;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->m->nconns--;
    buf_close(&c->out);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_close(req->data);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0 || c->closing || uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

static void view_of(struct metrics *m, struct metrics_view *v, struct metrics_table *tables,
                    struct metrics_leases *leases)
{
    struct app *app = m->app;
    struct creds_renewals renewals = creds_renewals(app->creds);

    memset(v, 0, sizeof(*v));
    v->now = app->now ? (int64_t)app->now() : (int64_t)time(NULL);
    v->start_time = m->start_time;
    for (size_t i = 0; i < app->nreaders; i++) {
        tables[i].name = reader_table(app->readers[i]);
        tables[i].st = *reader_stats(app->readers[i]);
        tables[i].enc = encstats_get(tables[i].name);
        tables[i].mirror_actions = app->sink ? sink_mirror_actions(app->sink, tables[i].name)
                                             : 0;
    }
    v->tables = tables;
    v->ntables = app->nreaders;
    v->sink = app->sink ? sink_stats(app->sink) : NULL;
    v->checkpoint_writes = app->checkpoint_writes;
    v->checkpoint_failures = app->checkpoint_failures;
    v->cred_renewals_ok = renewals.ok;
    v->cred_renewals_failed = renewals.failed;
    v->ready = health_ready(m->health);
    v->version = DDB2ES_VERSION;
    if (app->lease) {
        const struct lease_metrics *lm = lease_metrics(app->lease);

        for (size_t i = 0; i < app->nreaders; i++)
            tables[i].leases_held = lease_held_for_table(app->lease, tables[i].name);
        *leases = (struct metrics_leases){
            .workers = lm->workers, .taken = lm->taken, .renew_failed = lm->renew_failed,
            .stolen = lm->stolen, .lost = lm->lost, .released = lm->released,
            .ok = lease_state(app->lease, NULL) == LEASE_OK,
        };
        v->leases = leases;
    }
}

/* Fills c->out with the whole reply. */
static void answer(struct conn *c, const char *method, const char *path)
{
    struct metrics *m = c->m;
    struct buf body;
    const char *ctype = "text/plain; charset=utf-8";
    int status = 200;
    bool head = strcmp(method, "HEAD") == 0;

    buf_init(&body, OUT_MAX);
    if (!head && strcmp(method, "GET") != 0) {
        status = 405;
        buf_puts(&body, "method not allowed\n");
    } else if (strcmp(path, "/metrics") == 0) {
        struct metrics_table *tables = calloc(m->app->nreaders + 1, sizeof(*tables));
        struct metrics_view v;
        struct metrics_leases leases;

        if (tables) {
            view_of(m, &v, tables, &leases);
            if (metrics_render(&v, &body) < 0)
                tables = (free(tables), NULL);
        }
        if (!tables) {
            status = 500;
            buf_reset(&body);
            buf_puts(&body, "out of memory\n");
        } else {
            ctype = "text/plain; version=0.0.4; charset=utf-8";
        }
        free(tables);
    } else if (strcmp(path, "/healthz") == 0) {
        bool alive = !m->health || health_alive(m->health);

        status = alive ? 200 : 503;
        buf_puts(&body, alive ? "ok\n" : "the event loop is stuck\n");
    } else if (strcmp(path, "/readyz") == 0) {
        bool ready = health_ready(m->health);

        status = ready ? 200 : 503;
        buf_printf(&body, "%s: %s\n", ready ? "ready" : "not ready",
                   health_status_now(m->health));
    } else {
        status = 404;
        buf_puts(&body, "not found: try /metrics, /healthz or /readyz\n");
    }
    buf_printf(&c->out,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
               status,
               status == 200   ? "OK"
               : status == 404 ? "Not Found"
               : status == 405 ? "Method Not Allowed"
               : status == 503 ? "Service Unavailable"
                               : "Internal Server Error",
               ctype, body.len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head)
        buf_append(&c->out, body.ptr, body.len);
    buf_close(&body);
}

static void reply_raw(struct conn *c, const char *text)
{
    buf_reset(&c->out);
    buf_puts(&c->out, text);
}

static void respond(struct conn *c)
{
    uv_buf_t b;

    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    b = uv_buf_init(c->out.ptr, (unsigned)c->out.len);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0)
        conn_close(c);
}

/* A complete head arrived: "METHOD SP TARGET SP HTTP/1.x". */
static void handle(struct conn *c)
{
    char method[16], target[1024], version[16];
    char *q;

    c->req[c->len] = '\0';
    if (sscanf(c->req, "%15s %1023s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        reply_raw(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        respond(c);
        return;
    }
    if ((q = strchr(target, '?')))
        *q = '\0';
    answer(c, method, target);
    respond(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = h->data;

    /* One byte stays for the terminator; reading stops once the buffer is
     * full (on_read answers 431 then). */
    *b = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - 1 - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;

    if (n < 0) { /* EOF before a whole request, or an error */
        conn_close(c);
        return;
    }
    if (c->answered || n == 0)
        return;
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
        handle(c);
        return;
    }
    if (c->len >= sizeof(c->req) - 1) {
        reply_raw(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n");
        respond(c);
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    struct metrics *m = container_of((uv_tcp_t *)l, struct metrics, listener);
    struct conn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return; /* out of memory: the client waits in the backlog */
    c->m = m;
    buf_init(&c->out, OUT_MAX + 1024);
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->timer);
    c->tcp.data = c->timer.data = c->wr.data = c->sh.data = c;
    c->handles = 2;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0 || m->nconns > METRICS_MAX_CONNS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, m->timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

int metrics_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr, *hend = colon;

    if (!colon || !colon[1] || strlen(colon + 1) >= portlen)
        return -EINVAL;
    if (addr[0] == '[') {
        if (colon == addr || colon[-1] != ']')
            return -EINVAL;
        h = addr + 1;
        hend = colon - 1;
    }
    if (hend <= h || (size_t)(hend - h) >= hostlen)
        return -EINVAL;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

int metrics_listen(struct metrics *m, const char *addr, char *err, size_t errlen)
{
    char host[256], port[8];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc;

    if (m->listening || m->closed)
        return -EALREADY;
    if (metrics_split_addr(addr, host, sizeof(host), port, sizeof(port)) < 0) {
        snprintf(err, errlen, "\"%s\" is not HOST:PORT or [IPv6]:PORT", addr);
        return -EINVAL;
    }
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve \"%s\": %s", addr, gai_strerror(rc));
        return -EINVAL;
    }
    rc = uv_tcp_init(m->app->loop, &m->listener);
    if (rc == 0) {
        m->listening = true; /* the handle must be closed from now on */
        rc = uv_tcp_bind(&m->listener, ai->ai_addr, ai->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&m->listener, (struct sockaddr *)&ss, &len);
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(rc));
        return rc;
    }
    m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void metrics_close(struct metrics *m)
{
    if (!m || m->closed)
        return;
    m->closed = true;
    if (m->listening) {
        uv_close((uv_handle_t *)&m->listener, NULL);
        m->listening = false;
    }
    for (struct conn *c = m->conns; c; c = c->next)
        conn_close(c);
}
