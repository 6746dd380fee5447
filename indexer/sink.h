/* sink — batches documents into NDJSON bulk requests and posts them to the
 * search engine, keeping DESIGN.md's invariants 1, 4 and 5.
 *
 * Documents are submitted in stream order with an (owner, ticket) pair; the
 * sink calls done(owner, ticket, op, outcome) exactly once per submitted document
 * when it has *finished* (done may run inside sink_submit): indexed (2xx),
 * already newer (409 under external versioning, or a newer delete finished
 * here: see tombstones), already gone (404 on delete), superseded by another
 * action on the same _id in the same batch, or written (durably) to the
 * dead-letter file.  Of two actions on one _id in one batch, the one with
 * the higher external version is sent (on a tie, or when either has version
 * 0, the later one); the other is SINK_SUPERSEDED once the one sent
 * finishes.  Retryable failures (429, 5xx, network, timeouts) are retried
 * with capped exponential backoff and full jitter, forever, without blocking
 * other batches.  A 413 splits the batch in halves.
 *
 * Write blocks: an item the engine refuses with a cluster_block_exception
 * (403 for an index.blocks.write or read_only block, 429 for the flood-stage
 * read_only_allow_delete block of Elasticsearch 7+ and OpenSearch; a 503 "no
 * master" is a plain 5xx) or with any other 401/403 is retried like a 429,
 * never dead-lettered.  Per index, the first refusal begins a block episode
 * (logged once at error level, counted in write_blocks) and the first other
 * answer for that index ends it (logged once); sink_stats() names the oldest
 * current one.  A whole request refused with a cluster_block_exception is a
 * block of every index.
 *
 * Tombstones (DESIGN invariant 9; REFERENCE Bulk fact 8): the engine forgets
 * a delete after index.gc_deletes (60 s by default), after which an older
 * index action resurrects the document.  So when a delete with a version
 * finishes (2xx or 404), the sink remembers (index, _id, version) for
 * tombstone_ttl_ms, at most tombstone_max of them (the oldest are evicted
 * first, and counted): an action on that _id at or below that version is
 * never sent; it is reported SINK_STALE.  Actions still waiting in the sink
 * (queued, or waiting for a retry) are dropped when the delete finishes; the
 * ones in flight then, when they come back for a retry.  Actions without a
 * version (0) are not compared.  Memory: each action is written
 * once, into the body it is sent in; queued plus in-flight bytes are counted.
 * sink_full() tells readers to stop reading while more closed batches wait
 * than there are free connections, and at max_queue_bytes; the resume
 * callback runs when neither holds (below half the cap).
 *
 * A document with a non-zero send_by (struct doc) is never put on the wire
 * after that loop time: each (re)send of a batch first takes its expired
 * documents out and reports them SINK_EXPIRED.  `ddb2es replay` uses it so a
 * scanned image never reaches the engine after the engine may have forgotten
 * a newer delete (REFERENCE.md Bulk fact 8).
 *
 * The mirror (`ddb2es rebuild`): while sink_mirror_set(s, live, to) is on,
 * every action submitted for index `live` is written twice into the same
 * bulk request, the second time for index `to` (same _id, version and
 * version type).  Each copy is then an action of its own (retries, 413
 * splits, tombstones, dead letters: a permanent failure of the copy goes to
 * the dead-letter file naming `to`, and the live copy goes on as if alone),
 * but done runs once, when both finished, with the live copy's outcome;
 * SINK_CANCELED or SINK_EXPIRED when the mirror's copy ended so (not
 * finished: read again).  A document the engine could never take (-EINVAL
 * from bulk_append) is dead-lettered once, not mirrored.
 */
#ifndef DDB2ES_SINK_H
#define DDB2ES_SINK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "indexer/doc.h"

struct http;
struct creds;
struct sink;

enum sink_auth { SINK_AUTH_NONE, SINK_AUTH_BASIC, SINK_AUTH_APIKEY, SINK_AUTH_SIGV4 };

enum sink_outcome {
    SINK_INDEXED,    /* 2xx */
    SINK_STALE,      /* 409: a newer version is already there */
    SINK_GONE,       /* delete 404: nothing to delete */
    SINK_SUPERSEDED, /* another action on the same _id in the same batch was sent instead */
    SINK_DLQ,        /* permanent failure, written to the dead-letter file */
    SINK_CANCELED,   /* sink closed before it finished: NOT finished, do not checkpoint */
    SINK_EXPIRED,    /* its send_by passed before a (re)send: NOT sent, NOT finished; the
                        owner decides (a backfill reads the item again) */
};

/* op is the document's (struct doc): an index or a delete. */
typedef void sink_done_cb(void *owner, uint64_t ticket, enum doc_op op, enum sink_outcome outcome,
                          void *arg);
typedef void sink_resume_cb(void *arg);

struct sink_opts {
    const char *url;            /* base URL of the engine, e.g. "https://search-x.eu-west-1.es.amazonaws.com" */
    enum sink_auth auth;
    const char *username;       /* basic */
    const char *password;       /* basic: the secret itself (read from password_file by the caller) */
    const char *api_key;        /* apikey: the secret itself */
    const char *sigv4_service;  /* "es" or "aoss" */
    const char *sigv4_region;   /* signing region */
    size_t bulk_max_actions;
    size_t bulk_max_bytes;
    long flush_interval_ms;
    int concurrency;            /* bulk requests in flight */
    bool gzip;
    const char *dlq_path;       /* dead-letter file (appended, 0600) */
    long request_timeout_ms;
    long max_backoff_ms;        /* cap of the retry backoff */
    size_t max_queue_bytes;     /* the memory cap between readers and the sink */
    const char *version_type;   /* "external" or "external_gte" (NULL: external_gte);
                                   ddb2es run uses "external": an equal version is a 409 */
    bool dry_run;               /* write the bulk bodies to stdout, treat all as indexed */
    long backoff_base_ms;       /* first retry waits rand() x this; 0 = 100 */
    long tombstone_ttl_ms;      /* how long a finished delete is remembered; 0 = the default */
    size_t tombstone_max;       /* how many at most; 0 = the default */
    const char *ping_index;     /* sigv4_service "aoss": the ping is HEAD /<ping_index>
                                   (OpenSearch Serverless has no GET /); NULL: GET / */
};

/* OpenSearch Serverless takes bulk bodies up to 10 MiB: with sigv4_service
 * "aoss" a larger bulk_max_bytes is lowered to this (and logged). */
#define SINK_AOSS_MAX_BODY ((size_t)10 << 20)

/* Defaults of tombstone_ttl_ms and tombstone_max: ten minutes, far past the
 * engine's 60 s gc_deletes and any retry wait; at most ~4.5 MB (an entry
 * costs ~140 bytes with a 40-byte id and a short index name).  Evicting a
 * tombstone younger than gc_deletes costs nothing (the engine still has
 * it): 32768 covers ten minutes up to ~55 deletes/s, gc_deletes up to ~550. */
#define SINK_TOMBSTONE_TTL_MS (10L * 60 * 1000)
#define SINK_TOMBSTONE_MAX ((size_t)32768)

/* Indexes of sink_stats.bulk_requests. */
enum sink_req_class { SINK_REQ_2XX, SINK_REQ_413, SINK_REQ_429, SINK_REQ_5XX, SINK_REQ_4XX,
                      SINK_REQ_NET, SINK_REQ_NCLASSES };

/* Upper bounds in seconds of the bulk latency histogram's buckets. */
#define SINK_BULK_NBUCKETS 12
extern const double sink_bulk_bounds[SINK_BULK_NBUCKETS];

#define SINK_MAX_FAILURE_SERIES 256
struct sink_item_failure {
    const char *table;  /* borrowed from the document (the configuration); "" when unknown */
    char type[64];      /* the engine's error.type (truncated), else "http_<status>" */
    uint64_t count;
};

struct sink_stats {
    uint64_t bulk_requests[SINK_REQ_NCLASSES]; /* by outcome: 2xx, 413, 429, 5xx, other 4xx, network */
    uint64_t docs_indexed, docs_deleted, docs_stale, docs_gone, docs_dlq, docs_retried;
    uint64_t docs_superseded, docs_canceled, docs_expired;
    uint64_t docs_blocked;      /* items refused by a write block or a 401/403 (retried) */
    uint64_t write_blocks;      /* block episodes begun */
    size_t blocked_indexes;     /* indexes refused now (a cluster-wide block counts once) */
    const char *block_index;    /* the oldest current block's index, "" = every index;
                                   NULL when none (valid until the next call into the sink) */
    const char *block_reason;   /* its first refusal, "type: reason"; NULL when none */
    uint64_t block_age_ms;      /* how long it has lasted */
    uint64_t docs_tombstoned;   /* actions dropped because a newer delete finished */
    uint64_t tombstones;        /* remembered deletes now */
    uint64_t tombstone_evictions; /* remembered deletes dropped early, at tombstone_max */
    uint64_t retries;           /* requests sent again after a request-level failure */
    size_t queued_bytes, inflight_bytes;
    size_t queued_docs, inflight_requests;
    bool failing;               /* the last request failed with a retryable error */
    /* Bulk request latency, from sending to the whole reply (or the network
     * error): per bucket, NOT cumulative; [SINK_BULK_NBUCKETS] counts those
     * above the last bound.  Requests canceled at close are not counted. */
    uint64_t bulk_seconds_bucket[SINK_BULK_NBUCKETS + 1];
    double bulk_seconds_sum;
    uint64_t bulk_seconds_count;
    /* Per-item failures the engine reported (retried or dead-lettered), by
     * table and error type; valid until the next call into the sink.  Past
     * SINK_MAX_FAILURE_SERIES pairs, more go to item_failures_other. */
    const struct sink_item_failure *item_failures;
    size_t n_item_failures;
    uint64_t item_failures_other;
    /* Dead letters written (durable), by table and reason (the engine's
     * error.type, or ddb2es's own: record_not_json, record_conversion_error,
     * item_unreadable, invalid_document, request_entity_too_large...). */
    const struct sink_item_failure *dlq_reasons;
    size_t n_dlq_reasons;
    uint64_t dlq_other;
    /* Documents sent with values moved to the side object (type conflicts,
     * sink_set_conflicts), by table (type is ""); past
     * SINK_MAX_FAILURE_SERIES tables, in type_conflicts_other. */
    const struct sink_item_failure *type_conflicts;
    size_t n_type_conflicts;
    uint64_t type_conflicts_other;
};

/* NULL on failure.  done runs per document; resume when readers may read again. */
struct sink *sink_new(uv_loop_t *loop, struct http *h, struct creds *c, const struct sink_opts *o,
                      sink_done_cb *done, sink_resume_cb *resume, void *arg);
/* Takes the document's content (d->source is moved out; d is left empty;
 * d->keys is copied, for the dead-letter file, and left as it is).
 * Returns 0, or -ESHUTDOWN once closing (done is not called). */
int sink_submit(struct sink *s, struct doc *d, void *owner, uint64_t ticket);
/* A record or item that could not be made into a document: writes it to the
 * dead-letter file with type and reason (d gives whatever is known: table,
 * shard, seq, index, id, version; raw is the input as received, borrowed),
 * then reports done(owner, ticket, d->op, SINK_DLQ) once the entry is durable.
 * Returns 0, or -ESHUTDOWN once closing (done is not called). */
int sink_dead_letter(struct sink *s, const struct doc *d, json_t *raw, const char *type,
                     const char *reason, void *owner, uint64_t ticket);
/* The same for input that is not JSON at all (a record the stream sent
 * that cannot be parsed): the entry's document is text as a JSON string, or
 * "base64:" and its base64 when it is not UTF-8, so it is kept byte-exact. */
int sink_dead_letter_raw(struct sink *s, const struct doc *d, const char *text, size_t len,
                         const char *type, const char *reason, void *owner, uint64_t ticket);
bool sink_full(const struct sink *s);
/* uv_now() when the sink was last busy (sink_full(), or a request on every
 * connection): now while it is, its creation if it never was.  Readers take
 * smaller pages while the engine is what holds them back, and until it has
 * shown it keeps up. */
uint64_t sink_busy_at(const struct sink *s);
/* Sends what is queued now instead of waiting for flush_interval. */
void sink_flush(struct sink *s);
/* Graceful stop: flushes, waits for requests in flight (no new retries after
 * the deadline), then reports SINK_CANCELED for whatever did not finish,
 * closes its handles and calls closed(arg).  Free with sink_free afterwards. */
void sink_close(struct sink *s, long deadline_ms, void (*closed)(void *arg), void *arg);
void sink_free(struct sink *s);
const struct sink_stats *sink_stats(const struct sink *s);
/* Checks the engine answers (GET /; HEAD /<ping_index> on OpenSearch
 * Serverless): cb(arg, 0) or a negative errno / HTTP status. */
int sink_ping(struct sink *s, void (*cb)(void *arg, int rc), void *arg);

/* The reply to a sink_call: err < 0 when none came (status 0); body is the
 * reply, valid during the callback only. */
typedef void sink_reply_cb(void *arg, int err, long status, const char *body, size_t len);
/* One request to the engine with the sink's auth (basic, API key, SigV4),
 * outside the batches: never retried, not in sink_stats.  path_query is
 * "/path?query", already escaped; body (copied; NULL: none) goes with
 * Content-Type ctype; max_reply caps the reply (0: 1 MiB).  cb runs once,
 * possibly inside this call when the request cannot be sent.  A closing
 * sink waits for calls in flight (the stop deadline cancels them).
 * 0, -ESHUTDOWN once closing (cb not called), or -ENOMEM. */
int sink_call(struct sink *s, const char *method, const char *path_query, const char *ctype,
              const char *body, size_t len, size_t max_reply, sink_reply_cb *cb, void *arg);

/* Mirrors index live into index to (copied), or stops mirroring live
 * (to NULL).  Actions already submitted are left as they are.  0, -EINVAL
 * (to equals live) or -ENOMEM. */
int sink_mirror_set(struct sink *s, const char *live, const char *to);
/* The index live is mirrored to now (valid until the sink is freed), or NULL. */
const char *sink_mirror_of(const struct sink *s, const char *live);
/* Actions of table (the documents' table) mirrored so far, on any mirror. */
uint64_t sink_mirror_actions(const struct sink *s, const char *table);

/* Holding: while held no bulk request goes out; documents queue and the
 * readers pause at the cap (sink_full) until sink_release.  A new sink is
 * released.  A sink closed while held reports what waits SINK_CANCELED at
 * once instead of at the deadline. */
void sink_hold(struct sink *s);
void sink_release(struct sink *s);
bool sink_held(const struct sink *s);
/* cb(arg) runs when a bulk request got no answer at all (a network error,
 * a timeout) while the sink was released and not closing: the sink holds
 * first, so that nothing more goes out until the owner has looked at the
 * engine again and called sink_release.  NULL: never (the default). */
void sink_on_unreachable(struct sink *s, void (*cb)(void *arg), void *arg);
/* Bulk requests say include_source_on_error=false (Elasticsearch 8.18 and
 * later echo a document's whole source in its parse error otherwise), or
 * stop saying it.  Only for an engine that knows the parameter: the others
 * refuse the request.  0 or -ENOMEM (nothing changed). */
int sink_set_source_on_error(struct sink *s, bool include);

/* Type conflicts ([table] type_conflicts = side; conflicts.h): documents
 * for index (borrowed, compared by name) are shaped before they are sent
 * with the field types the sink knows for it, and a document the engine
 * refuses for a mapping conflict (conflicts_parse_error) is not
 * dead-lettered: the sink learns the path's type from the error and from
 * GET <index>/_mapping (fetched at the first conflict and again at each
 * later one; the refused documents wait for it), moves the conflicting
 * values under field (NULL: CONFLICTS_FIELD) and sends the document once
 * more.  Refused again, for any reason, it goes to the dead-letter file.
 * Not called for an index: its refused documents are dead-lettered.
 * 0 or -ENOMEM. */
int sink_set_conflicts(struct sink *s, const char *index, const char *field);

#endif
