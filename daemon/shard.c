#include "daemon/shard.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "aws/ddb.h"
#include "aws/retry.h"
#include "config/config.h"
#include "daemon/ack.h"
#include "daemon/ckpt.h"
#include "daemon/reader_int.h"
#include "daemon/seqnum.h"
#include "indexer/sink.h"
#include "indexer/transform.h"

#define IDLE_FIRST_MS 100     /* first wait after an empty read: doubles up to the idle interval */
#define IDLE_MAX_MS ((long)s->reader->app->cfg->daemon.idle_poll_interval_ms)
#define ERROR_BASE_MS 100     /* throttling and failures: 100 ms ... 10 s, full jitter */
#define ERROR_MAX_MS 10000
#define FATAL_RETRY_MS 30000  /* an error we do not understand: try again, slowly */
#define GETRECORDS_LIMIT 1000
/* While the engine holds the readers back (the sink was busy in the last
 * SMALL_PAGES_MS: see sink_busy_at), a shard asks for pages of about
 * SMALL_PAGE_BYTES.  Reading faster gains nothing then, and a reply is held
 * whole while its records become actions: 1 MB pages were the largest part
 * of a one-shard daemon's memory.  Otherwise pages are as large as the
 * service gives. */
#define SMALL_PAGE_BYTES (256u << 10)
#define SMALL_PAGE_MIN 10
#define SMALL_PAGE_REC 4096   /* the record size assumed before a page has shown it */
#define SMALL_PAGES_MS 10000
#define BEHIND_S 90           /* a page older than this: an empty page may hide more records */
#define BEHIND_EMPTY_MAX 5    /* empty pages read straight on while behind */
#define BATCHGET_MAX 100      /* keys per BatchGetItem */
#define DOC_MAX (16u << 20)   /* a document; items are at most 400 KB, JSON grows some */
/* GetRecords in flight over all shards ([daemon] read_concurrency).  A reply
 * (up to 1 MB) lands in the sink's queue whatever its fill, so an unbounded
 * number would let a thousand shards pass max_queue_bytes by a page each. */
#define SHARD_READS_MAX(app) ((unsigned)(app)->cfg->daemon.read_concurrency)

static const char *const state_name[SH_NSTATES] = {
    [SH_WAIT_PARENT] = "wait-parent", [SH_GET_ITER] = "get-iterator",
    [SH_GET_RECORDS] = "get-records", [SH_FETCH_ITEMS] = "fetch-items",
    [SH_PAUSED] = "paused",           [SH_BACKOFF] = "backoff",
    [SH_DRAIN] = "drain",             [SH_DONE] = "done",
    [SH_STOPPED] = "stopped",
};

/* A page of records of a KEYS_ONLY / OLD_IMAGE stream whose documents need
 * the current items: each entry is a record already registered with the ack
 * tracker, waiting for its item. */
struct fetch_entry {
    int64_t ticket;
    uint64_t version;
    int64_t created;
    char seq[41];
    json_t *keys; /* owned */
    bool sent;    /* its key is in the BatchGetItem in flight */
};

struct fetch {
    struct fetch_entry *v;
    size_t n, cap;
};

static void drive(struct shard *s);
static void read_slots_free(struct app *app);
static void read_unwait(struct shard *s);

const char *shard_state_name(enum shard_state st)
{
    return st < SH_NSTATES ? state_name[st] : "?";
}

static struct log_ctx ctx_of(const struct shard *s)
{
    return (struct log_ctx){ .table = s->reader->t ? s->reader->log.table : NULL, .shard = s->id };
}

static void set_state(struct shard *s, enum shard_state to)
{
    assert(to < SH_NSTATES);
    if (s->state != to) {
        struct log_ctx c = ctx_of(s);

        logc_debug(&c, "%s -> %s", state_name[s->state], state_name[to]);
    }
    s->state = to;
}

static char *xstrdup(const char *p)
{
    return p ? strdup(p) : NULL;
}

struct shard *shard_new(struct reader *r, const char *arn, const char *id, const char *parent,
                        bool closed)
{
    struct shard *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->reader = r;
    s->id = xstrdup(id);
    s->parent_id = xstrdup(parent);
    s->arn = xstrdup(arn);
    s->closed = closed;
    s->ack = ack_new();
    if (!s->id || !s->arn || (parent && !s->parent_id) || !s->ack ||
        uv_timer_init(r->app->loop, &s->timer) != 0) {
        shard_free(s);
        return NULL;
    }
    s->timer_open = true;
    s->state = SH_WAIT_PARENT;
    return s;
}

static void fetch_free(struct fetch *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        json_decref(f->v[i].keys);
    free(f->v);
    free(f);
}

void shard_free(struct shard *s)
{
    if (!s)
        return;
    read_unwait(s);
    free(s->id);
    free(s->parent_id);
    free(s->arn);
    free(s->iterator);
    ack_free(s->ack);
    fetch_free(s->fetch);
    free(s);
}

static long jitter(long ms)
{
    return ms <= 0 ? 0 : (long)((double)rand() / ((double)RAND_MAX + 1.0) * (double)ms);
}

static void on_timer(uv_timer_t *t)
{
    struct shard *s = container_of(t, struct shard, timer);

    if (s->state != SH_BACKOFF)
        return;
    set_state(s, s->iterator ? SH_GET_RECORDS : SH_GET_ITER);
    drive(s);
}

/* Error backoff: capped exponential with full jitter. */
static void backoff_error(struct shard *s)
{
    long cap = backoff_cap_ms(ERROR_BASE_MS, ERROR_MAX_MS, (unsigned)s->failures++);

    s->backoff_ms = ERROR_BASE_MS / 2 + jitter(cap);
    set_state(s, SH_BACKOFF);
}

/* Idle backoff: empty reads wait longer and longer, up to IDLE_MAX_MS. */
static void backoff_idle(struct shard *s)
{
    s->backoff_ms = s->backoff_ms < IDLE_FIRST_MS ? IDLE_FIRST_MS : s->backoff_ms * 2;
    if (s->backoff_ms > IDLE_MAX_MS)
        s->backoff_ms = IDLE_MAX_MS;
    set_state(s, SH_BACKOFF);
}

static void set_iterator(struct shard *s, const char *it)
{
    free(s->iterator);
    s->iterator = xstrdup(it);
}

/* Where a renewed iterator starts: after the newest record already handed
 * on, else where the shard was going to start. */
static void restart_from_last_read(struct shard *s)
{
    set_iterator(s, NULL);
    if (s->last_read[0]) {
        s->start = START_AFTER_SEQ;
        memcpy(s->start_seq, s->last_read, sizeof(s->start_seq));
    }
}

/* Records were trimmed before they could be read (DESIGN invariant 6): count
 * and log it now; the range's end is logged with the next record read. */
static void note_loss(struct shard *s, const char *after)
{
    struct log_ctx c = ctx_of(s);

    s->reader->stats.records_lost_events++;
    s->loss_open = true;
    snprintf(s->loss_after, sizeof(s->loss_after), "%s", after);
    logc_error(&c,
               "records after sequence number %s were trimmed from the stream before they could "
               "be read (TrimmedDataAccessException): data lost; resuming at the oldest record "
               "still available",
               after[0] ? after : "(the shard's start)");
}

/* ---- GetShardIterator ------------------------------------------------ */

static void on_get_iterator(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct log_ctx c = ctx_of(s);
    const char *it;

    s->call = NULL;
    if (rep->err == -ECANCELED || s->state == SH_STOPPED)
        return;
    s->reader->stats.throttled += (uint64_t)rep->throttled;
    switch (rep->cls) {
    case DDB_OK:
        s->failures = 0;
        it = json_string_value(json_object_get(rep->json, "ShardIterator"));
        if (!it) { /* nothing more to read in a closed shard */
            s->at_end = true;
            set_state(s, SH_DRAIN);
            break;
        }
        set_iterator(s, it);
        set_state(s, SH_GET_RECORDS);
        break;
    case DDB_TRIMMED:
        /* Our position is older than the 24 h retention: those records are gone. */
        note_loss(s, s->start == START_AFTER_SEQ ? s->start_seq : "");
        s->start = START_TRIM_HORIZON;
        s->from_horizon_fresh = false;
        set_state(s, SH_GET_ITER);
        break;
    case DDB_NOT_FOUND:
        logc_error(&c, "shard no longer exists (%s: %s); %s", rep->type, rep->message,
                   s->closed ? "it expired" : "re-checking the stream");
        s->at_end = true;
        set_state(s, SH_DRAIN);
        reader_shard_gone(s->reader, s);
        break;
    case DDB_THROTTLED:
        backoff_error(s);
        break;
    case DDB_RETRY:
    case DDB_AUTH:
        logc_warn(&c, "GetShardIterator failed (%s%s%s), retrying", rep->type[0] ? rep->type : "",
                  rep->type[0] ? ": " : "", rep->err ? strerror(-rep->err) : rep->message);
        backoff_error(s);
        break;
    default:
        logc_error(&c, "GetShardIterator failed: HTTP %ld %s: %s; retrying in %d s", rep->status,
                   rep->type, rep->message, FATAL_RETRY_MS / 1000);
        s->backoff_ms = FATAL_RETRY_MS;
        set_state(s, SH_BACKOFF);
        break;
    }
    drive(s);
}

static int start_get_iterator(struct shard *s)
{
    static const char *const type[] = { [START_TRIM_HORIZON] = "TRIM_HORIZON",
                                        [START_LATEST] = "LATEST",
                                        [START_AFTER_SEQ] = "AFTER_SEQUENCE_NUMBER" };
    json_t *body = json_pack("{s:s, s:s, s:s}", "StreamArn", s->arn, "ShardId", s->id,
                             "ShardIteratorType", type[s->start]);

    if (body && s->start == START_AFTER_SEQ)
        json_object_set_new(body, "SequenceNumber", json_string(s->start_seq));
    if (body && s->start == START_TRIM_HORIZON && !s->last_read[0])
        s->from_horizon_fresh = true;
    s->call = body ? ddb_call(s->reader->app->aws, AWS_STREAMS, "GetShardIterator", body,
                              on_get_iterator, s, NULL)
                   : NULL;
    if (!s->call) {
        backoff_error(s);
        return -ENOMEM;
    }
    return 0;
}

/* ---- records → documents --------------------------------------------- */

static uint64_t ticket_of(int64_t ack_ticket, enum doc_op op)
{
    return ((uint64_t)ack_ticket << 1) | (op == DOC_DELETE);
}

static void submit(struct shard *s, struct doc *d, int64_t ticket)
{
    struct reader *r = s->reader;
    struct log_ctx c = ctx_of(s);

    d->table = r->t ? r->log.table : NULL;
    d->shard = s->id;
    s->pending_docs++;
    if (sink_submit(r->app->sink, d, s, ticket_of(ticket, d->op)) < 0) {
        /* Only while closing: the record stays unfinished, so the checkpoint
         * stays before it and the next start reads it again. */
        s->pending_docs--;
        logc_debug(&c, "sink closing, %s not submitted", d->seq);
    }
}

/* Input that cannot become a document goes to the dead-letter file; it
 * counts as finished once the entry is on disk (invariant 5). */
static void dead_letter(struct shard *s, struct doc *d, json_t *raw, const char *type,
                        const char *reason, int64_t ticket)
{
    struct reader *r = s->reader;

    d->table = r->log.table;
    d->shard = s->id;
    s->pending_docs++; /* before: the sink may report at once */
    if (sink_dead_letter(r->app->sink, d, raw, type, reason, s, ticket_of(ticket, DOC_INDEX)) < 0)
        s->pending_docs--; /* closing: stays unfinished, read again after restart */
}

static void fetch_add(struct shard *s, int64_t ticket, const struct doc *d, json_t *keys)
{
    struct fetch *f = s->fetch;
    struct fetch_entry *e;

    if (!f)
        f = s->fetch = calloc(1, sizeof(*f));
    if (f && f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 64;
        struct fetch_entry *v = realloc(f->v, ncap * sizeof(*v));

        if (v) {
            f->v = v;
            f->cap = ncap;
        }
    }
    if (!f || f->n == f->cap) {
        struct log_ctx c = ctx_of(s);

        logc_error(&c, "out of memory queueing item %s; it will be read again after restart",
                   d->seq);
        return;
    }
    e = &f->v[f->n++];
    memset(e, 0, sizeof(*e));
    e->ticket = ticket;
    e->version = d->version;
    e->created = d->created;
    memcpy(e->seq, d->seq, sizeof(e->seq));
    e->keys = json_incref(keys);
}

/* Turns one GetRecords page (r->page, in body) into documents, in stream
 * order, parsing one record at a time.  Returns the number of records taken,
 * or -EPROTO when a record is not JSON: the records before it are taken, and
 * reading the page again skips them. */
static long take_records(struct shard *s, const char *body)
{
    struct reader *r = s->reader;
    struct log_ctx c = ctx_of(s);
    struct doc d;
    struct buf err;
    size_t i;
    long taken = 0;

    memset(&d, 0, sizeof(d));
    buf_init(&d.source, DOC_MAX);
    buf_init(&err, 1024);
    for (i = 0; i < r->page.n; i++) {
        json_error_t jerr;
        json_t *rec = json_loadb(body + r->page.span[i].off, r->page.span[i].len, 0, &jerr);
        json_t *dyn = json_object_get(rec, "dynamodb");
        const char *seq = json_string_value(json_object_get(dyn, "SequenceNumber"));
        int64_t created;
        enum transform_result tr;
        uint64_t version;
        int64_t ticket;

        if (!rec) {
            logc_warn(&c, "record %zu of a GetRecords page is not JSON (%s at byte %d); "
                          "reading the page again", i, jerr.text, jerr.position);
            taken = -EPROTO;
            break;
        }
        if (!seq || !seqnum_valid(seq)) {
            logc_error(&c, "record %zu of a GetRecords page has no valid SequenceNumber; skipped",
                       i);
            json_decref(rec);
            continue;
        }
        if (s->last_read[0] && seqnum_cmp(seq, s->last_read) <= 0) {
            json_decref(rec);
            continue; /* seen already (a renewed iterator overlaps) */
        }
        buf_reset(&err);
        tr = transform_record(&r->tf, rec, &d, &err);
        /* The time as transform_record checked it (0 when it is not a
         * time in seconds): a raw cast of any JSON number is undefined. */
        created = d.created;
        if (created > r->stats.newest_created)
            r->stats.newest_created = created;
        version = ckpt_next_version(&s->ver, created);
        ticket = ack_push(s->ack, seq, &s->ver);
        if (ticket < 0) {
            logc_error(&c, "record %s: cannot track it (%s); skipped", seq, strerror((int)-ticket));
            json_decref(rec);
            continue;
        }
        memcpy(s->last_read, seq, strlen(seq) + 1);
        if (!taken)
            memcpy(s->first_taken, seq, strlen(seq) + 1);
        if (created > s->page_newest)
            s->page_newest = created;
        r->stats.records_read++;
        taken++;
        d.version = version;
        d.created = created;
        snprintf(d.seq, sizeof(d.seq), "%s", seq);
        switch (tr) {
        case TR_DOC:
            submit(s, &d, ticket);
            break;
        case TR_SKIP:
            r->stats.docs_skipped++;
            ack_done(s->ack, ticket);
            break;
        case TR_NEED_ITEM:
            fetch_add(s, ticket, &d, json_object_get(dyn, "Keys"));
            break;
        case TR_ERROR:
        default:
            logc_error(&c, "record %s cannot be made into a document: %s", seq,
                       err.ptr ? err.ptr : "?");
            dead_letter(s, &d, rec, "record_conversion_error",
                        err.ptr ? err.ptr : "malformed record", ticket);
            break;
        }
        json_decref(rec);
    }
    buf_close(&d.source);
    buf_close(&err);
    return taken;
}

/* ---- BatchGetItem for KEYS_ONLY / OLD_IMAGE streams -------------------- */

static void on_batch_get(const struct ddb_reply *rep, void *arg);

static int start_fetch(struct shard *s)
{
    struct fetch *f = s->fetch;
    struct reader *r = s->reader;
    json_t *keys = json_array(), *body;
    size_t n = 0;

    for (size_t i = 0; i < f->n && n < BATCHGET_MAX; i++) {
        bool dup = false;

        if (f->v[i].sent || !f->v[i].keys)
            continue;
        /* BatchGetItem refuses the same key twice in one request. */
        for (size_t j = 0; j < json_array_size(keys) && !dup; j++)
            dup = json_equal(json_array_get(keys, j), f->v[i].keys);
        f->v[i].sent = true;
        if (!dup) {
            json_array_append(keys, f->v[i].keys);
            n++;
        }
    }
    body = json_pack("{s:{s:{s:o, s:b}}}", "RequestItems", r->t ? r->log.table : "", "Keys", keys,
                     "ConsistentRead", 1);
    s->call = body ? ddb_call(r->app->aws, AWS_DYNAMODB, "BatchGetItem", body, on_batch_get, s,
                              NULL)
                   : NULL;
    if (!s->call) {
        for (size_t i = 0; i < f->n; i++)
            f->v[i].sent = false;
        backoff_error(s);
        return -ENOMEM;
    }
    return 0;
}

static bool same_key(const struct reader *r, json_t *item, json_t *keys)
{
    json_t *h = json_object_get(keys, r->hash_key);

    if (!json_equal(json_object_get(item, r->hash_key), h))
        return false;
    return !r->range_key ||
           json_equal(json_object_get(item, r->range_key), json_object_get(keys, r->range_key));
}

static void on_batch_get(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct reader *r = s->reader;
    struct fetch *f = s->fetch;
    struct log_ctx c = ctx_of(s);
    json_t *items, *unproc;
    struct doc d;
    struct buf err;
    size_t keep = 0;

    s->call = NULL;
    if (rep->err == -ECANCELED || s->state == SH_STOPPED)
        return;
    if (rep->cls != DDB_OK) {
        for (size_t i = 0; i < f->n; i++)
            f->v[i].sent = false;
        if (rep->cls == DDB_FATAL || rep->cls == DDB_NOT_FOUND)
            logc_error(&c, "BatchGetItem failed: HTTP %ld %s: %s; retrying", rep->status,
                       rep->type, rep->message);
        backoff_error(s);
        s->state = SH_FETCH_ITEMS; /* the timer brings us back here */
        set_state(s, SH_BACKOFF);
        drive(s);
        return;
    }
    s->failures = 0;
    items = json_object_get(json_object_get(rep->json, "Responses"), r->log.table);
    unproc = json_object_get(json_object_get(json_object_get(rep->json, "UnprocessedKeys"),
                                             r->log.table),
                             "Keys");
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, DOC_MAX);
    buf_init(&err, 1024);
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_entry *e = &f->v[i];
        json_t *item = NULL, *x;
        size_t j;
        bool unprocessed = false;
        enum transform_result tr;

        if (!e->sent) {
            f->v[keep++] = *e;
            continue;
        }
        json_array_foreach(unproc, j, x) unprocessed |= same_key(r, x, e->keys);
        if (unprocessed) {
            e->sent = false;
            f->v[keep++] = *e;
            continue;
        }
        json_array_foreach(items, j, x) if (same_key(r, x, e->keys)) item = x;
        buf_reset(&err);
        /* No item any more: it was deleted since; its REMOVE record follows. */
        tr = item ? transform_item(&r->tf, item, &d, &err) : transform_keys(&r->tf, e->keys, &d, &err);
        d.version = e->version;
        d.created = e->created;
        memcpy(d.seq, e->seq, sizeof(d.seq));
        if (tr == TR_DOC) {
            submit(s, &d, e->ticket);
        } else {
            logc_error(&c, "item of record %s cannot be made into a document: %s", e->seq,
                       err.ptr ? err.ptr : "?");
            dead_letter(s, &d, item ? item : e->keys, "item_conversion_error",
                        err.ptr ? err.ptr : "malformed item", e->ticket);
        }
        json_decref(e->keys);
    }
    f->n = keep;
    buf_close(&d.source);
    buf_close(&err);
    if (f->n == 0)
        set_state(s, s->at_end ? SH_DRAIN : SH_GET_RECORDS);
    else
        set_state(s, SH_FETCH_ITEMS);
    drive(s);
}

/* ---- GetRecords ------------------------------------------------------- */

static void on_get_records(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct reader *r = s->reader;
    struct app *app = r->app;
    struct log_ctx c = ctx_of(s);
    const char *next;
    size_t nrecords;
    long taken;
    int rc;

    s->call = NULL;
    app->reads--;
    if (rep->err == -ECANCELED || s->state == SH_STOPPED) {
        /* A shard stopped (its stream replaced, its table gone): the slot
         * goes to a waiting shard of another stream. */
        if (!app->stopping)
            read_slots_free(app);
        return;
    }
    r->stats.getrecords_calls++;
    /* Every throttled answer counts, also those retried within the call. */
    r->stats.throttled += (uint64_t)rep->throttled;
    switch (rep->cls) {
    case DDB_OK:
        rc = records_scan(rep->body, rep->body_len, &r->page);
        taken = rc < 0 ? rc : take_records(s, rep->body);
        if (taken < 0) {
            if (rc < 0)
                logc_warn(&c, "GetRecords reply unusable (%s), retrying", strerror(-rc));
            backoff_error(s);
            break;
        }
        s->failures = 0;
        next = r->page.next_iter;
        nrecords = r->page.n;
        if (nrecords > 0)
            s->rec_bytes = rep->body_len / nrecords;
        if (taken) {
            s->from_horizon_fresh = false;
            if (s->loss_open)
                logc_error(&c, "data lost: the records after %s and before %s",
                           s->loss_after[0] ? s->loss_after : "the shard's start",
                           s->first_taken);
            s->loss_open = false;
        }
        set_iterator(s, next);
        if (!next)
            s->at_end = true;
        if (nrecords > 0) {
            s->behind = r->app->now() - s->page_newest > BEHIND_S;
            s->empty_streak = 0;
            /* A short page means this shard has caught up: send what it
             * read now instead of waiting for flush_interval.  Full pages
             * (a backlog) keep filling batches. */
            if (nrecords < s->limit && !s->behind)
                sink_flush(r->app->sink);
        }
        if (s->fetch && s->fetch->n) {
            set_state(s, SH_FETCH_ITEMS);
        } else if (!next) {
            set_state(s, SH_DRAIN);
        } else if (nrecords > 0 || (s->behind && ++s->empty_streak <= BEHIND_EMPTY_MAX)) {
            /* Records flow, or we are far behind and an empty page may just
             * be a gap in the shard (REFERENCE.md Streams fact 2): go on. */
            s->backoff_ms = 0;
            set_state(s, SH_GET_RECORDS);
        } else {
            r->stats.getrecords_empty++;
            s->behind = false;
            backoff_idle(s);
        }
        break;
    case DDB_EXPIRED_ITER:
        logc_info(&c, "shard iterator expired; renewing it");
        restart_from_last_read(s);
        set_state(s, SH_GET_ITER);
        break;
    case DDB_TRIMMED:
        set_iterator(s, NULL);
        if (s->from_horizon_fresh && !s->last_read[0] && !(s->ck && s->ck->seq[0])) {
            /* A TRIM_HORIZON iterator on a shard that had no record yet:
             * nothing existed before it, so nothing was lost. */
            logc_debug(&c, "trimmed-data answer on a fresh shard start; starting over");
        } else {
            note_loss(s, s->last_read[0] ? s->last_read : s->start_seq);
        }
        s->start = START_TRIM_HORIZON;
        set_state(s, SH_GET_ITER);
        break;
    case DDB_NOT_FOUND:
        if (!s->at_end)
            r->stats.records_lost_events++;
        logc_error(&c, "shard can no longer be read (%s: %s): it expired%s", rep->type,
                   rep->message, s->last_read[0] ? "; records after the last one read are lost" : "");
        s->at_end = true;
        set_iterator(s, NULL);
        set_state(s, SH_DRAIN);
        reader_shard_gone(r, s);
        break;
    case DDB_THROTTLED:
        backoff_error(s);
        break;
    case DDB_RETRY:
    case DDB_AUTH:
        logc_warn(&c, "GetRecords failed (%s), retrying",
                  rep->err ? strerror(-rep->err) : rep->type[0] ? rep->type : "server error");
        backoff_error(s);
        break;
    default:
        logc_error(&c, "GetRecords failed: HTTP %ld %s: %s; renewing the iterator in %d s",
                   rep->status, rep->type, rep->message, FATAL_RETRY_MS / 1000);
        restart_from_last_read(s);
        s->backoff_ms = FATAL_RETRY_MS;
        set_state(s, SH_BACKOFF);
        break;
    }
    drive(s);
    read_slots_free(app);
}

/* The Limit of the next GetRecords (see SMALL_PAGE_BYTES). */
static unsigned page_limit(const struct shard *s)
{
    struct app *app = s->reader->app;
    uint64_t at = sink_busy_at(app->sink);
    size_t n;

    if (uv_now(app->loop) - at > SMALL_PAGES_MS)
        return GETRECORDS_LIMIT;
    n = SMALL_PAGE_BYTES / (s->rec_bytes ? s->rec_bytes : SMALL_PAGE_REC);
    if (n < SMALL_PAGE_MIN)
        return SMALL_PAGE_MIN;
    return n > GETRECORDS_LIMIT ? GETRECORDS_LIMIT : (unsigned)n;
}

static int start_get_records(struct shard *s)
{
    /* Not parsed as a whole: take_records parses one record at a time. */
    static const struct ddb_call_opts raw = { .raw = true };
    json_t *body;

    s->limit = page_limit(s);
    body = json_pack("{s:s, s:i}", "ShardIterator", s->iterator, "Limit", (int)s->limit);

    s->call = body ? ddb_call(s->reader->app->aws, AWS_STREAMS, "GetRecords", body,
                              on_get_records, s, &raw)
                   : NULL;
    if (!s->call) {
        backoff_error(s);
        return -ENOMEM;
    }
    s->reader->app->reads++;
    return 0;
}

/* ---- the read slots --------------------------------------------------- */

static void read_wait(struct shard *s)
{
    struct app *app = s->reader->app;

    if (s->read_waiting)
        return;
    s->read_waiting = true;
    s->read_wait_next = NULL;
    if (app->read_wait_tail)
        app->read_wait_tail->read_wait_next = s;
    else
        app->read_wait_head = s;
    app->read_wait_tail = s;
}

static void read_unwait(struct shard *s)
{
    struct app *app;
    struct shard **link, *prev = NULL;

    if (!s->read_waiting)
        return;
    app = s->reader->app;
    link = &app->read_wait_head;
    while (*link && *link != s) {
        prev = *link;
        link = &(*link)->read_wait_next;
    }
    if (*link)
        *link = s->read_wait_next;
    if (app->read_wait_tail == s)
        app->read_wait_tail = prev;
    s->read_waiting = false;
    s->read_wait_next = NULL;
}

/* A slot came free: the longest-waiting shards read, while the sink has room.
 * Each is driven while still queued, so drive() lets it read. */
static void read_slots_free(struct app *app)
{
    struct shard *s;

    while (app->reads < SHARD_READS_MAX(app) && (s = app->read_wait_head) && !sink_full(app->sink)) {
        if (s->state == SH_PAUSED) {
            set_state(s, SH_GET_RECORDS);
            drive(s);
        }
        read_unwait(s);
    }
}

/* ---- the drive loop --------------------------------------------------- */

static void finish(struct shard *s)
{
    struct app *app = s->reader->app;

    shard_checkpoint(s);
    if (s->ck)
        ckpt_shard_finish(app->ckpt, s->ck, app->now());
}

static void drive(struct shard *s)
{
    for (;;) {
        switch (s->state) {
        case SH_WAIT_PARENT:
        case SH_PAUSED:
        case SH_STOPPED:
            return;
        case SH_GET_ITER:
            if (s->reader->app->stopping)
                return;
            if (start_get_iterator(s) == 0)
                return;
            break;
        case SH_GET_RECORDS:
            if (s->reader->app->stopping)
                return;
            if (!s->iterator) {
                set_state(s, SH_GET_ITER);
                break;
            }
            if (sink_full(s->reader->app->sink)) {
                set_state(s, SH_PAUSED);
                return;
            }
            /* First come first served: a shard that just read, and got
             * records again, queues behind those waiting instead of keeping
             * its slot (a busy shard would starve the others). */
            if (s->reader->app->reads >= SHARD_READS_MAX(s->reader->app) ||
                (s->reader->app->read_wait_head && !s->read_waiting)) {
                read_wait(s);
                set_state(s, SH_PAUSED);
                read_slots_free(s->reader->app);
                return;
            }
            read_unwait(s);
            if (start_get_records(s) == 0)
                return;
            break;
        case SH_FETCH_ITEMS:
            if (s->call)
                return;
            if (start_fetch(s) == 0)
                return;
            break;
        case SH_BACKOFF:
            uv_timer_start(&s->timer, on_timer, (uint64_t)s->backoff_ms, 0);
            return;
        case SH_DRAIN:
            if (s->pending_docs || ack_pending(s->ack))
                return;
            finish(s);
            set_state(s, SH_DONE);
            break;
        case SH_DONE:
            reader_shard_done(s->reader, s);
            return;
        default:
            assert(0);
            return;
        }
    }
}

void shard_begin(struct shard *s)
{
    set_state(s, SH_GET_ITER);
    drive(s);
}

void shard_wake(struct shard *s)
{
    if (s->state == SH_PAUSED) {
        set_state(s, SH_GET_RECORDS);
        drive(s);
    }
}

void shard_doc_done(struct shard *s, uint64_t ticket, bool finished)
{
    struct log_ctx c = ctx_of(s);
    int rc;

    if (s->pending_docs)
        s->pending_docs--;
    if (!finished)
        return;
    rc = ack_done(s->ack, (int64_t)(ticket >> 1));
    if (rc < 0)
        logc_error(&c, "finished document %llu was not in flight (%s)",
                   (unsigned long long)(ticket >> 1), strerror(-rc));
    if (s->state == SH_DRAIN)
        drive(s);
}

void shard_checkpoint(struct shard *s)
{
    struct app *app = s->reader->app;
    struct ckpt_version ver;
    const char *seq = ack_checkpoint(s->ack, &ver);

    if (seq && s->ck) {
        int rc = ckpt_shard_advance(app->ckpt, s->ck, seq, &ver, app->now());

        if (rc < 0) {
            struct log_ctx c = ctx_of(s);

            logc_error(&c, "checkpoint %s refused (%s)", seq, strerror(-rc));
        }
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct shard *s = container_of((uv_timer_t *)h, struct shard, timer);

    s->timer_open = false;
    reader_shard_stopped(s->reader, s);
}

void shard_stop(struct shard *s)
{
    read_unwait(s);
    set_state(s, SH_STOPPED);
    if (s->call)
        ddb_cancel(s->call);
    s->call = NULL;
    if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer)) {
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
}

bool shard_stopped(const struct shard *s)
{
    return !s->timer_open && !s->call;
}
