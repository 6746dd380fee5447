#include "daemon/shard.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "aws/ddb.h"
#include "base/jsonx.h"
#include "aws/retry.h"
#include "aws/streams.h"
#include "config/config.h"
#include "daemon/ack.h"
#include "daemon/ckpt.h"
#include "daemon/reader_int.h"
#include "daemon/seqnum.h"
#include "daemon/slots.h"
#include "indexer/sink.h"
#include "indexer/transform.h"

#define IDLE_FIRST_MS 100     /* first wait after an empty read: doubles up to the idle interval */
#define IDLE_MAX_MS ((long)app_of(s)->cfg->daemon.idle_poll_interval_ms)
#define TIMING(s) (app_of(s)->shard_timing ? app_of(s)->shard_timing : &shard_timing_default)
#define ERROR_BASE_MS (TIMING(s)->error_base_ms)  /* 100 ms ... 10 s, full jitter */
#define ERROR_MAX_MS (TIMING(s)->error_max_ms)
#define FATAL_RETRY_MS ((int)TIMING(s)->fatal_retry_ms) /* 30 s: an error we do not understand */
/* ResourceNotFoundException for a shard still listed: right after a stream
 * is enabled the service may not know a shard it lists yet (eventual
 * consistency).  Retried until the listing drops it, until it is known to be
 * older than the retention, or for this long. */
#define NOT_FOUND_GIVE_UP_MS (10 * 60 * 1000)
#define RETENTION_MS (24LL * 60 * 60 * 1000) /* records and closed shards live 24 h */
/* start = latest: records created this long before the shard started are
 * history.  Creation times are whole seconds (whole minutes on DynamoDB
 * Local) and the service's clock is not ours: a record written after the
 * start must never count as history, so a few older ones may be indexed. */
#define LATEST_MARGIN_S 60
#define READ_AHEAD_MAX(app) ((size_t)(app)->cfg->daemon.shard_read_ahead)
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
#define SMALL_PAGES_MS ((uint64_t)TIMING(s)->small_pages_ms) /* 10 s */
#define BEHIND_S 90           /* a page older than this: an empty page may hide more records */
#define BEHIND_EMPTY_MAX 5    /* empty pages read straight on while behind */
#define BATCHGET_MAX 100      /* keys per BatchGetItem */
/* A GetRecords reply whose CRC matched but whose text breaks off: read
 * again this many times (the page may be served whole next time), then its
 * whole records are taken and the rest is dead-lettered as it is. */
#define BAD_PAGE_MAX 5
#define DOC_MAX (16u << 20)   /* a document; items are at most 400 KB, JSON grows some */

const struct shard_timing shard_timing_default = {
    .error_base_ms = 100,
    .error_max_ms = 10000,
    .fatal_retry_ms = 30000,
    .small_pages_ms = 10000,
};

static const char *const shard_state_names[] = {
    [SH_WAIT_PARENT] = "wait-parent", [SH_GET_ITER] = "get-iterator",
    [SH_GET_RECORDS] = "get-records", [SH_FETCH_ITEMS] = "fetch-items",
    [SH_PAUSED] = "paused",           [SH_HELD] = "held",
    [SH_BACKOFF] = "backoff",
    [SH_DRAIN] = "drain",             [SH_DONE] = "done",
    [SH_STOPPED] = "stopped",
};
_Static_assert(ARRAY_SIZE(shard_state_names) == SH_NSTATES, "a name for each shard state");

/* A page of records of a KEYS_ONLY / OLD_IMAGE stream whose documents need
 * the current items: each entry is a record already registered with the ack
 * tracker, waiting for its item. */
struct fetch_entry {
    int64_t ticket;
    uint64_t version;
    int64_t created;
    char seq[41];
    json_t *keys; /* owned */
    char *ktext;  /* the canonical key text (transform_key_text): two spellings of
                     one key, {"N":"1E+2"} and {"N":"100"}, are one key */
    size_t klen;
    bool sent;    /* its key is in the BatchGetItem in flight */
};

struct fetch {
    struct fetch_entry *v;
    size_t n, cap;
    bool one_by_one; /* a reply could not be read: one key a call until the list empties */
};

static void drive(struct shard *s);
static void hold(struct shard *s);
static void read_slots_free(struct app *app);
static void read_unwait(struct shard *s);

const char *shard_state_name(enum shard_state st)
{
    return st < SH_NSTATES ? shard_state_names[st] : "?";
}

static struct app *app_of(const struct shard *s)
{
    return reader_app(s->reader);
}

struct log_ctx shard_log_ctx(const struct shard *s)
{
    return (struct log_ctx){ .table = reader_table_name(s->reader), .shard = s->id };
}

/* The only writer of s->state and s->resume.  Backoff is entered with the
 * state its timer goes on in (resume: the step that must be done again);
 * every other state with none (SH_NSTATES). */
static void enter_state(struct shard *s, enum shard_state to, enum shard_state resume)
{
    assert(to < SH_NSTATES);
    assert((to == SH_BACKOFF) == (resume < SH_NSTATES) && resume != SH_BACKOFF);
    if (s->state != to) {
        struct log_ctx c = shard_log_ctx(s);

        logc_debug(&c, "%s -> %s", shard_state_names[s->state], shard_state_names[to]);
    }
    s->state = to;
    s->resume = resume;
}

static void set_state(struct shard *s, enum shard_state to)
{
    enter_state(s, to, SH_NSTATES);
}

static char *xstrdup(const char *p)
{
    return p ? strdup(p) : NULL;
}

int64_t shard_id_time_ms(const char *id)
{
    /* shardId-<20 digits: creation epoch ms>-<8 hex>, on AWS and DynamoDB
     * Local alike (DDBLOCAL.md "Identifier formats"); undocumented, so only
     * a hint: anything else is "unknown". */
    static const char prefix[] = "shardId-";
    int64_t ms = 0;
    size_t i, n = sizeof(prefix) - 1;

    if (!id || strncmp(id, prefix, n) != 0)
        return 0;
    for (i = n; i < n + 20; i++) {
        if (id[i] < '0' || id[i] > '9')
            return 0;
        if (ms > (INT64_MAX - 9) / 10)
            return 0;
        ms = ms * 10 + (id[i] - '0');
    }
    return id[i] == '-' ? ms : 0;
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
        uv_timer_init(reader_app(r)->loop, &s->timer) != 0) {
        shard_free(s);
        return NULL;
    }
    s->timer_open = true;
    set_state(s, SH_WAIT_PARENT);
    s->created_ms = shard_id_time_ms(id);
    return s;
}

static void fetch_free(struct fetch *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        json_decref(f->v[i].keys);
        free(f->v[i].ktext);
    }
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

static void on_timer(uv_timer_t *t)
{
    struct shard *s = container_of(t, struct shard, timer);

    if (s->state != SH_BACKOFF)
        return;
    set_state(s, s->resume);
    drive(s);
}

/* Waits ms, then goes on in state resume (on_timer). */
static void backoff(struct shard *s, long ms, enum shard_state resume)
{
    s->backoff_ms = ms;
    enter_state(s, SH_BACKOFF, resume);
}

/* Error backoff: capped exponential with full jitter. */
static void backoff_error(struct shard *s, enum shard_state resume)
{
    long cap = backoff_cap_ms(ERROR_BASE_MS, ERROR_MAX_MS, (unsigned)s->failures++);

    backoff(s, ERROR_BASE_MS / 2 + backoff_jitter_ms(cap), resume);
}

/* Idle backoff: empty reads wait longer and longer, up to IDLE_MAX_MS,
 * then go on with resume. */
static void backoff_idle_to(struct shard *s, enum shard_state resume)
{
    long ms = s->backoff_ms < IDLE_FIRST_MS ? IDLE_FIRST_MS : s->backoff_ms * 2;

    backoff(s, ms > IDLE_MAX_MS ? IDLE_MAX_MS : ms, resume);
}

static void backoff_idle(struct shard *s)
{
    backoff_idle_to(s, SH_GET_RECORDS);
}

static void set_iterator(struct shard *s, const char *it)
{
    free(s->iterator);
    s->iterator = xstrdup(it);
}

/* Where a renewed iterator starts: after the newest record already handed
 * on, else where the shard was going to start.  A shard that started at
 * LATEST and has taken nothing yet must not take LATEST again (the writes
 * made meanwhile would be skipped): it goes back to TRIM_HORIZON and skips
 * the records created before it started (skip_before). */
static void restart_from_last_read(struct shard *s)
{
    set_iterator(s, NULL);
    if (s->last_read[0]) {
        s->start = START_AFTER_SEQ;
        memcpy(s->start_seq, s->last_read, sizeof(s->start_seq));
    } else if (s->start == START_LATEST) {
        s->start = START_TRIM_HORIZON;
        s->skipping = true;
    }
}

/* Records were trimmed before they could be read (DESIGN invariant 6): count
 * and log it now; the range's end is logged with the next record read.  One
 * gap is one loss event: until a record is read again, a further trimmed
 * answer is the same gap. */
static void note_loss(struct shard *s, const char *after)
{
    struct log_ctx c = shard_log_ctx(s);

    if (s->loss_open)
        return;
    reader_counters(s->reader)->records_lost_events++;
    s->loss_open = true;
    snprintf(s->loss_after, sizeof(s->loss_after), "%s", after);
    logc_error(&c,
               "records after sequence number %s were trimmed from the stream before they could "
               "be read (TrimmedDataAccessException): data lost; resuming at the oldest record "
               "still available",
               after[0] ? after : "(the shard's start)");
}

/* Known to have left the stream: a full listing of its stream no longer
 * holds it, it is closed and its id says it was made more than the
 * retention ago, or the service has said it does not exist for
 * NOT_FOUND_GIVE_UP_MS while it was still listed (DynamoDB Local keeps
 * listing expired shards: DDBLOCAL.md "Expired shard"). */
static bool known_expired(const struct shard *s)
{
    struct app *app = app_of(s);
    int64_t wall_ms = (int64_t)app->now() * 1000;

    if (s->unlisted)
        return true;
    if (s->closed && s->created_ms && wall_ms - s->created_ms > RETENTION_MS)
        return true;
    return s->nf_since && uv_now(app->loop) - s->nf_since >= NOT_FOUND_GIVE_UP_MS;
}

/* ResourceNotFoundException for this shard.  Right after a stream is
 * enabled the service can deny a shard it lists (REFERENCE.md Streams fact
 * 7): that is retried, and the stream listed again.  Only a shard known to
 * have expired ends here, and the records it still held are counted as lost
 * (DESIGN invariant 6). */
static void not_found(struct shard *s, const struct ddb_reply *rep, const char *call)
{
    struct log_ctx c = shard_log_ctx(s);
    uint64_t now = uv_now(app_of(s)->loop);
    bool first = !s->nf_since;

    if (first)
        s->nf_since = now ? now : 1;
    reader_shard_gone(s->reader, s);
    if (!known_expired(s)) {
        if (first)
            logc_warn(&c, "%s: %s (%s), though the stream still lists the shard: retrying and "
                          "listing the stream again",
                      call, rep->type, rep->message);
        restart_from_last_read(s);
        backoff_error(s, SH_GET_ITER);
        return;
    }
    if (!s->at_end) {
        reader_counters(s->reader)->records_lost_events++;
        logc_error(&c, "the shard expired before it was read to its end (%s: %s: %s): data lost; "
                       "the records after %s were not read",
                   call, rep->type, rep->message,
                   s->last_read[0] ? s->last_read
                   : s->ck && s->ck->seq[0] ? s->ck->seq
                                            : "its start");
    } else {
        logc_info(&c, "the shard expired after it was read to its end");
    }
    s->at_end = true;
    set_iterator(s, NULL);
    set_state(s, SH_DRAIN);
}

/* The reply of the call in flight arrived: false when it no longer matters
 * (canceled, or the shard stopped meanwhile). */
static bool reply_arrived(struct shard *s, const struct ddb_reply *rep)
{
    s->call = NULL;
    if (rep->err == -ECANCELED || s->state == SH_STOPPED)
        return false;
    if (rep->cls != DDB_NOT_FOUND)
        s->nf_since = 0;
    return true;
}

/* A call failed for a reason that passes (throttling, a 5xx, the network,
 * credentials being renewed, a shard not found for a while): once more after
 * a backoff, from resume.  False for any other failure. */
static bool failed_for_now(struct shard *s, const char *call, const struct ddb_reply *rep,
                           enum shard_state resume)
{
    struct log_ctx c = shard_log_ctx(s);

    switch (rep->cls) {
    case DDB_NOT_FOUND:
        not_found(s, rep, call);
        return true;
    case DDB_THROTTLED:
        backoff_error(s, resume);
        return true;
    case DDB_RETRY:
    case DDB_AUTH:
        if (rep->err)
            logc_warn(&c, "%s failed (%s), retrying", call, strerror(-rep->err));
        else
            logc_warn(&c, "%s failed (%s%s%s), retrying", call,
                      rep->type[0] ? rep->type : "server error", rep->message[0] ? ": " : "",
                      rep->message);
        backoff_error(s, resume);
        return true;
    default:
        return false;
    }
}

/* ---- GetShardIterator ------------------------------------------------ */

static void on_get_iterator(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct log_ctx c = shard_log_ctx(s);
    const char *it;

    if (!reply_arrived(s, rep))
        return;
    reader_counters(s->reader)->throttled += (uint64_t)rep->throttled;
    switch (rep->cls) {
    case DDB_OK:
        s->failures = 0;
        it = streams_iterator_parse(rep->json);
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
    default:
        if (failed_for_now(s, "GetShardIterator", rep, SH_GET_ITER))
            break;
        logc_error(&c, "GetShardIterator failed: HTTP %ld %s: %s; retrying in %d s", rep->status,
                   rep->type, rep->message, FATAL_RETRY_MS / 1000);
        backoff(s, FATAL_RETRY_MS, SH_GET_ITER);
        break;
    }
    drive(s);
}

static int start_get_iterator(struct shard *s)
{
    static const enum streams_position pos[] = {
        [START_TRIM_HORIZON] = STREAMS_TRIM_HORIZON,
        [START_LATEST] = STREAMS_LATEST,
        [START_AFTER_SEQ] = STREAMS_AFTER_SEQUENCE_NUMBER,
    };
    json_t *body = streams_get_iterator_req(s->arn, s->id, pos[s->start], s->start_seq);

    if (body && s->start == START_TRIM_HORIZON && !s->last_read[0])
        s->from_horizon_fresh = true;
    s->call = body ? ddb_call(app_of(s)->aws, AWS_STREAMS, "GetShardIterator", body,
                              on_get_iterator, s, NULL)
                   : NULL;
    if (!s->call) {
        backoff_error(s, SH_GET_ITER);
        return -ENOMEM;
    }
    return 0;
}

/* ---- records → documents --------------------------------------------- */

/* Hands a document to the sink.  0; -ENOMEM (nothing was taken: the caller
 * reads the record again); -ESHUTDOWN (closing: the record stays unfinished,
 * so the checkpoint stays before it and the next start reads it again). */
static int submit(struct shard *s, struct doc *d, int64_t ticket)
{
    struct reader *r = s->reader;
    struct log_ctx c = shard_log_ctx(s);
    int rc;

    d->table = reader_table_name(r);
    d->shard = s->id;
    s->pending_docs++;
    rc = sink_submit(r->app->sink, d, s, (uint64_t)ticket);
    if (rc < 0) {
        s->pending_docs--;
        logc_debug(&c, "%s not submitted: %s", d->seq, strerror(-rc));
    }
    return rc;
}

/* Input that cannot become a document goes to the dead-letter file; it
 * counts as finished once the entry is on disk (invariant 5).  raw is the
 * parsed input, or NULL with text: input that is not JSON.  As submit(). */
static int dead_letter(struct shard *s, struct doc *d, json_t *raw, const char *text, size_t len,
                       const char *type, const char *reason, int64_t ticket)
{
    struct reader *r = s->reader;
    uint64_t t = (uint64_t)ticket;
    int rc;

    d->table = r->log.table;
    d->shard = s->id;
    s->pending_docs++; /* before: the sink may report at once */
    rc = raw ? sink_dead_letter(r->app->sink, d, raw, type, reason, s, t)
             : sink_dead_letter_raw(r->app->sink, d, text, len, type, reason, s, t);
    if (rc < 0)
        s->pending_docs--;
    return rc;
}

static int fetch_add(struct shard *s, int64_t ticket, const struct doc *d, json_t *keys)
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
    if (!f || f->n == f->cap)
        return -ENOMEM;
    e = &f->v[f->n];
    memset(e, 0, sizeof(*e));
    {
        struct buf kt;
        int rc;

        buf_init(&kt, BUF_NOMAX);
        rc = transform_key_text(reader_transform(s->reader), keys, &kt, NULL);
        if (rc == -ENOMEM) {
            buf_close(&kt);
            return -ENOMEM;
        }
        e->klen = kt.len;
        e->ktext = rc == 0 ? buf_take(&kt) : NULL; /* no key text: the id failed before */
        buf_close(&kt);
        if (rc == 0 && !e->ktext)
            return -ENOMEM;
    }
    f->n++;
    e->ticket = ticket;
    e->version = d->version;
    e->created = d->created;
    memcpy(e->seq, d->seq, sizeof(e->seq));
    e->keys = json_incref(keys);
    return 0;
}

/* The first "SequenceNumber":"<digits>" in text that is not JSON, so a
 * broken record can still be dead-lettered at its place in the stream. */
static bool find_seq(const char *text, size_t len, char out[SEQNUM_MAX + 1])
{
    static const char key[] = "\"SequenceNumber\"";
    const char *p = text, *end = text + len;

    while ((p = memmem(p, (size_t)(end - p), key, sizeof(key) - 1))) {
        const char *q = p + sizeof(key) - 1;
        size_t n = 0;

        while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r' || *q == ':'))
            q++;
        if (q < end && *q == '"') {
            for (q++; q + n < end && n <= SEQNUM_MAX && q[n] >= '0' && q[n] <= '9'; n++)
                ;
            if (q + n < end && q[n] == '"' && n >= SEQNUM_MIN && n <= SEQNUM_MAX) {
                memcpy(out, q, n);
                out[n] = '\0';
                return true;
            }
        }
        p += sizeof(key) - 1;
    }
    return false;
}

/* A record that cannot be parsed or has no sequence number: written to the
 * dead-letter file as received, then finished like any other (invariant 5),
 * so the shard goes on.  seq may be NULL (none could be read): the record
 * holds the checkpoint until its entry is written, then moves it no
 * further.  0, or -ENOMEM (nothing done: read it again). */
static int take_poison(struct shard *s, size_t idx, const char *seq, const char *text,
                       size_t len, const char *type, const char *why)
{
    struct reader *r = s->reader;
    struct log_ctx c = shard_log_ctx(s);
    struct doc d;
    int64_t ticket = ack_push(s->ack, seq, &s->ver);
    int rc;

    if (ticket < 0)
        return ticket == -ENOMEM ? -ENOMEM : 0;
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 0);
    buf_init(&d.keys, 0);
    if (seq)
        snprintf(d.seq, sizeof(d.seq), "%s", seq);
    logc_error(&c, "record %zu of a GetRecords page (sequence number %s) %s: %s; it goes to the "
                   "dead-letter file as received and the shard goes on",
               idx, seq ? seq : "unreadable", type, why);
    rc = dead_letter(s, &d, NULL, text, len, type, why, ticket);
    buf_close(&d.source);
    buf_close(&d.keys);
    if (rc == -ENOMEM) {
        ack_unpush(s->ack);
        return -ENOMEM;
    }
    if (seq)
        memcpy(s->last_read, seq, strlen(seq) + 1);
    reader_counters(r)->records_read++;
    return 0;
}

/* Turns one GetRecords page (r->page, in body) into documents, in stream
 * order, parsing one record at a time.  A record that cannot be parsed or
 * made into a document is dead-lettered and counts as taken.  Returns the
 * number of records taken, or -ENOMEM when memory ran out in the middle:
 * the records before are taken (last_read), the caller reads on after them
 * later. */
static long take_records(struct shard *s, const char *body)
{
    struct reader *r = s->reader;
    const struct streams_page *page = reader_page(r);
    struct reader_stats *st = reader_counters(r);
    struct log_ctx c = shard_log_ctx(s);
    struct doc d;
    struct buf err;
    size_t i;
    long taken = 0;

    memset(&d, 0, sizeof(d));
    buf_init(&d.source, DOC_MAX);
    buf_init(&d.keys, DOC_MAX);
    buf_init(&err, 1024);
    for (i = 0; i < page->n && taken >= 0; i++) {
        const char *text = body + page->span[i].off;
        size_t len = page->span[i].len;
        struct transform_text_extra x;
        json_error_t jerr;
        json_t *rec = NULL;
        struct streams_record sr = { 0 };
        const char *seq;
        struct docver before = s->ver;
        char seqbuf[SEQNUM_MAX + 1], why[256];
        int64_t created;
        enum transform_result tr;
        uint64_t version;
        int64_t ticket;
        int rc = 0;

        /* Most records are made into a document in one pass over their
         * text; the rest, and every record in error, go through a tree. */
        if (transform_record_text(reader_transform(r), text, len, &d, &x) && seqnum_valid(d.seq)) {
            if (s->last_read[0] && seqnum_cmp(d.seq, s->last_read) <= 0)
                continue; /* seen already (a renewed iterator overlaps) */
            seq = memcpy(seqbuf, d.seq, strlen(d.seq) + 1);
            tr = TR_DOC;
        } else {
            rec = jsonx_loadb(text, len, 0, &jerr);
            streams_record_parse(rec, &sr);
            seq = sr.seq;
            if (!rec || !seq || !seqnum_valid(seq)) {
                if (!rec)
                    snprintf(why, sizeof(why), "%s at byte %d", jerr.text, jerr.position);
                else
                    snprintf(why, sizeof(why), "no SequenceNumber of 21 to 40 digits");
                seq = rec ? NULL : find_seq(text, len, seqbuf) ? seqbuf : NULL;
                if (seq && s->last_read[0] && seqnum_cmp(seq, s->last_read) <= 0)
                    rc = 0; /* seen already (a renewed iterator overlaps) */
                else if ((rc = take_poison(s, i, seq, text, len,
                                           rec ? "record_without_sequence_number" : "record_not_json",
                                           why)) == 0)
                    taken++;
                json_decref(rec);
                if (rc == -ENOMEM)
                    taken = -ENOMEM;
                continue;
            }
            if (s->last_read[0] && seqnum_cmp(seq, s->last_read) <= 0) {
                json_decref(rec);
                continue; /* seen already (a renewed iterator overlaps) */
            }
            seq = memcpy(seqbuf, seq, strlen(seq) + 1); /* outlives rec */
            buf_reset(&err);
            tr = transform_record(reader_transform(r), rec, &d, &err);
        }
        /* The time as transform_record checked it (0 when it is not a
         * time in seconds): a raw cast of any JSON number is undefined. */
        created = d.created;
        if (s->skipping && tr != TR_ERROR && created < s->skip_before)
            tr = TR_SKIP; /* start = latest: history from before the shard started */
        else if (tr != TR_ERROR)
            s->skipping = false;
        version = docver_next(&s->ver, created);
        ticket = ack_push(s->ack, seq, &s->ver);
        if (ticket < 0) {
            json_decref(rec);
            s->ver = before;
            if (ticket == -ENOMEM) {
                taken = -ENOMEM;
                break;
            }
            logc_error(&c, "record %s: cannot track it (%s); skipped", seq, strerror((int)-ticket));
            continue;
        }
        d.version = version;
        d.created = created;
        snprintf(d.seq, sizeof(d.seq), "%s", seq);
        switch (tr) {
        case TR_DOC:
            rc = submit(s, &d, ticket);
            break;
        case TR_SKIP:
            st->docs_skipped++;
            ack_done(s->ack, ticket);
            break;
        case TR_NEED_ITEM:
            rc = fetch_add(s, ticket, &d, sr.keys);
            break;
        case TR_ERROR:
        default:
            logc_error(&c, "record %s cannot be made into a document: %s", seq,
                       err.ptr ? err.ptr : "?");
            rc = dead_letter(s, &d, rec, NULL, 0, "record_conversion_error",
                             err.ptr ? err.ptr : "malformed record", ticket);
            break;
        }
        json_decref(rec);
        if (rc == -ENOMEM) {
            /* Not handed on: taken back, and read again after a pause. */
            ack_unpush(s->ack);
            s->ver = before;
            logc_warn(&c, "out of memory taking record %s; it is read again shortly", seq);
            taken = -ENOMEM;
            break;
        }
        if (created > st->newest_created)
            st->newest_created = created;
        memcpy(s->last_read, seq, strlen(seq) + 1);
        if (!taken)
            memcpy(s->first_taken, seq, strlen(seq) + 1);
        if (created > s->page_newest)
            s->page_newest = created;
        st->records_read++;
        taken++;
    }
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
    return taken;
}

/* ---- BatchGetItem for KEYS_ONLY / OLD_IMAGE streams -------------------- */

static void on_batch_get(const struct ddb_reply *rep, void *arg);

static bool same_text(const struct fetch_entry *e, const char *t, size_t n)
{
    return e->ktext && t && e->klen == n && memcmp(e->ktext, t, n) == 0;
}

/* The canonical key text of an item or key set of a reply (into kt), or
 * NULL when it has none. */
static const char *key_text_of(struct shard *s, json_t *x, struct buf *kt)
{
    buf_reset(kt);
    return transform_key_text(reader_transform(s->reader), x, kt, NULL) == 0 ? kt->ptr : NULL;
}

/* An entry of the list in flight was handled with result rc: kept (moved
 * down to f->v[*keep]) to be asked again when rc is -ENOMEM, else released.
 * True when kept. */
static bool fetch_settle(struct fetch *f, size_t *keep, struct fetch_entry *e, int rc)
{
    if (rc == -ENOMEM) {
        e->sent = false;
        f->v[(*keep)++] = *e;
        return true;
    }
    json_decref(e->keys);
    free(e->ktext);
    return false;
}

static int start_fetch(struct shard *s)
{
    struct fetch *f = s->fetch;
    struct reader *r = s->reader;
    size_t max = f->one_by_one ? 1 : BATCHGET_MAX;
    json_t *keys = json_array(), *body;
    size_t n = 0;

    for (size_t i = 0; i < f->n; i++) {
        bool dup = false;

        if (f->v[i].sent || !f->v[i].keys)
            continue;
        /* BatchGetItem refuses the same key twice in one request, also in
         * two spellings (ValidationException "Provided list of item keys
         * contains duplicates"). */
        for (size_t j = 0; j < i && !dup; j++)
            dup = f->v[j].sent && same_text(&f->v[j], f->v[i].ktext, f->v[i].klen);
        if (!dup && n == max)
            break;
        f->v[i].sent = true;
        if (!dup) {
            json_array_append(keys, f->v[i].keys);
            n++;
        }
    }
    body = streams_batch_get_req(r->t ? r->log.table : "", keys);
    s->call = body ? ddb_call(app_of(s)->aws, AWS_DYNAMODB, "BatchGetItem", body, on_batch_get,
                              s, &(struct ddb_call_opts){ .what = r->log.table })
                   : NULL;
    if (!s->call) {
        for (size_t i = 0; i < f->n; i++)
            f->v[i].sent = false;
        backoff_error(s, SH_FETCH_ITEMS);
        return -ENOMEM;
    }
    return 0;
}


/* The reply to a BatchGetItem could not be read (DDB_BAD_REPLY: the service
 * sends the same bytes again).  The keys are asked for one by one, so the
 * one whose item cannot be read is found; that record goes to the
 * dead-letter file with its keys and the reason, and the shard goes on. */
static void batch_get_unreadable(struct shard *s, const struct ddb_reply *rep)
{
    struct fetch *f = s->fetch;
    struct log_ctx c = shard_log_ctx(s);
    size_t sent = 0, keep = 0;

    for (size_t i = 0; i < f->n; i++)
        sent += f->v[i].sent;
    if (!f->one_by_one && sent > 1) {
        logc_warn(&c, "BatchGetItem of %zu keys: %s; asking for them one by one", sent,
                  rep->message);
        f->one_by_one = true;
        for (size_t i = 0; i < f->n; i++)
            f->v[i].sent = false;
        set_state(s, SH_FETCH_ITEMS);
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_entry *e = &f->v[i];
        struct doc d;
        int rc;

        if (!e->sent) {
            f->v[keep++] = *e;
            continue;
        }
        memset(&d, 0, sizeof(d));
        buf_init(&d.source, 0);
        buf_init(&d.keys, 0);
        d.version = e->version;
        d.created = e->created;
        memcpy(d.seq, e->seq, sizeof(d.seq));
        logc_error(&c, "the item of record %s cannot be read (%s); the record goes to the "
                       "dead-letter file with its keys",
                   e->seq, rep->message);
        rc = dead_letter(s, &d, e->keys, NULL, 0, "item_unreadable", rep->message, e->ticket);
        buf_close(&d.source);
        buf_close(&d.keys);
        fetch_settle(f, &keep, e, rc);
    }
    f->n = keep;
    if (keep == sent && keep)
        backoff_error(s, SH_FETCH_ITEMS); /* out of memory for all of them: pause */
    else
        set_state(s, f->n ? SH_FETCH_ITEMS : s->at_end ? SH_DRAIN : SH_GET_RECORDS);
}

static void on_batch_get(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct reader *r = s->reader;
    struct fetch *f = s->fetch;
    struct log_ctx c = shard_log_ctx(s);
    struct streams_batch_get got;
    struct doc d;
    struct buf err;
    size_t keep = 0;
    bool nomem = false, wait = false;
    struct buf kt;

    s->call = NULL;
    if (rep->err == -ECANCELED || s->state == SH_STOPPED)
        return;
    if (rep->cls == DDB_BAD_REPLY) {
        batch_get_unreadable(s, rep);
        drive(s);
        return;
    }
    if (rep->cls != DDB_OK) {
        for (size_t i = 0; i < f->n; i++)
            f->v[i].sent = false;
        if (rep->cls == DDB_FATAL || rep->cls == DDB_NOT_FOUND)
            logc_error(&c, "BatchGetItem failed: HTTP %ld %s: %s; retrying", rep->status,
                       rep->type, rep->message);
        /* Back to the items, not to the records after them: their
         * documents go to the sink first, in stream order. */
        backoff_error(s, SH_FETCH_ITEMS);
        drive(s);
        return;
    }
    streams_batch_get_parse(rep->json, r->log.table, &got);
    /* Unprocessed keys are the table's throughput running short: asked
     * again after a backoff that grows while they keep coming back
     * (API_BatchGetItem: "we strongly recommend that you use an exponential
     * backoff algorithm"). */
    if (!json_array_size(got.unprocessed))
        s->failures = 0;
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, DOC_MAX);
    buf_init(&d.keys, DOC_MAX);
    buf_init(&err, 1024);
    buf_init(&kt, BUF_NOMAX);
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_entry *e = &f->v[i];
        json_t *item = NULL, *x;
        size_t j;
        bool unprocessed = false;
        enum transform_result tr;
        int rc;

        /* In stream order: once one is not answered (not asked for yet,
         * unprocessed, or not handed on), the later ones wait with it. */
        if (e->sent && !wait) {
            json_array_foreach(got.unprocessed, j, x) {
            const char *t = key_text_of(s, x, &kt);

            unprocessed |= same_text(e, t, kt.len);
        }
            wait = unprocessed;
        }
        if (!e->sent || wait || nomem) {
            wait = true;
            e->sent = false;
            f->v[keep++] = *e;
            continue;
        }
        json_array_foreach(got.items, j, x) {
            const char *t = key_text_of(s, x, &kt);

            if (same_text(e, t, kt.len))
                item = x;
        }
        buf_reset(&err);
        /* No item any more: it was deleted since; its REMOVE record follows. */
        tr = item ? transform_item(reader_transform(r), item, &d, &err)
                  : transform_keys(reader_transform(r), e->keys, &d, &err);
        d.version = e->version;
        d.created = e->created;
        memcpy(d.seq, e->seq, sizeof(d.seq));
        if (tr == TR_DOC) {
            rc = submit(s, &d, e->ticket);
        } else {
            logc_error(&c, "item of record %s cannot be made into a document: %s", e->seq,
                       err.ptr ? err.ptr : "?");
            rc = dead_letter(s, &d, item ? item : e->keys, NULL, 0, "item_conversion_error",
                             err.ptr ? err.ptr : "malformed item", e->ticket);
        }
        if (fetch_settle(f, &keep, e, rc))
            nomem = true;
    }
    f->n = keep;
    if (!keep)
        f->one_by_one = false;
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
    buf_close(&kt);
    if (nomem || (f->n && json_array_size(got.unprocessed)))
        backoff_error(s, SH_FETCH_ITEMS);
    else if (f->n == 0)
        set_state(s, s->at_end ? SH_DRAIN : SH_GET_RECORDS);
    else
        set_state(s, SH_FETCH_ITEMS);
    drive(s);
}

/* ---- GetRecords ------------------------------------------------------- */

/* The part of a GetRecords reply after the last whole record, once it has
 * stayed unreadable for BAD_PAGE_MAX reads: dead-lettered as it is, at the
 * highest sequence number it shows, so reading goes on after it.  False
 * when it shows none (nothing to place an iterator after) or memory ran
 * out: then nothing was done. */
static bool take_broken_tail(struct shard *s, const char *text, size_t len)
{
    char seq[SEQNUM_MAX + 1] = "", cand[SEQNUM_MAX + 1];
    const char *p = text;

    while (p < text + len && find_seq(p, (size_t)(text + len - p), cand)) {
        if (!seq[0] || seqnum_cmp(cand, seq) > 0)
            memcpy(seq, cand, sizeof(seq));
        p = (const char *)memmem(p, (size_t)(text + len - p), cand, strlen(cand)) + strlen(cand);
    }
    if (!seq[0] || (s->last_read[0] && seqnum_cmp(seq, s->last_read) <= 0)) {
        struct log_ctx c = shard_log_ctx(s);

        logc_error(&c, "a GetRecords reply stays unreadable and shows no sequence number to read "
                       "on after; reading it again every %d s",
                   FATAL_RETRY_MS / 1000);
        return false;
    }
    return take_poison(s, reader_page(s->reader)->n, seq, text, len, "records_not_json",
                       "the reply breaks off here: the text that follows is not JSON") == 0;
}

/* The statistics every GetRecords answer counts. */
static void count_get_records(struct shard *s, const struct ddb_reply *rep)
{
    struct reader_stats *st = reader_counters(s->reader);

    st->getrecords_calls++;
    /* Every throttled answer counts, also those retried within the call. */
    st->throttled += (uint64_t)rep->throttled;
}

/* Page sizing: the mean record size of a page with records sizes the next
 * small pages (page_limit). */
static void note_page_size(struct shard *s, size_t body_len, size_t nrecords)
{
    if (nrecords > 0)
        s->rec_bytes = body_len / nrecords;
}

/* Records were taken after a loss: the lost range ends before the first of
 * them, and is logged whole. */
static void close_loss(struct shard *s)
{
    struct log_ctx c = shard_log_ctx(s);

    s->from_horizon_fresh = false;
    if (s->loss_open)
        logc_error(&c, "data lost: the records after %s and before %s",
                   s->loss_after[0] ? s->loss_after : "the shard's start", s->first_taken);
    s->loss_open = false;
}

/* Flush policy: a short page means this shard has caught up: send what it
 * read now instead of waiting for flush_interval.  Full pages (a backlog)
 * keep filling batches. */
static void flush_if_caught_up(struct shard *s, size_t nrecords)
{
    struct app *app = app_of(s);

    if (nrecords == 0)
        return;
    s->behind = app->now() - s->page_newest > BEHIND_S;
    s->empty_streak = 0;
    if (nrecords < s->limit && !s->behind)
        sink_flush(app->sink);
}

/* What follows a page that was taken whole. */
static void after_page(struct shard *s, size_t nrecords, bool has_next)
{
    if (s->fetch && s->fetch->n) {
        set_state(s, SH_FETCH_ITEMS);
    } else if (!has_next) {
        set_state(s, SH_DRAIN);
    } else if (nrecords > 0 || (s->behind && ++s->empty_streak <= BEHIND_EMPTY_MAX)) {
        /* Records flow, or we are far behind and an empty page may just
         * be a gap in the shard (REFERENCE.md Streams fact 2): go on. */
        s->backoff_ms = 0;
        set_state(s, SH_GET_RECORDS);
    } else {
        reader_counters(s->reader)->getrecords_empty++;
        s->behind = false;
        backoff_idle(s);
    }
}

/* A GetRecords page (DDB_OK): its records become documents, then the next
 * step is chosen. */
static void take_page(struct shard *s, const struct ddb_reply *rep)
{
    struct streams_page *page = reader_page(s->reader);
    struct log_ctx c = shard_log_ctx(s);
    const char *next;
    long taken;
    int rc = streams_page_scan(rep->body, rep->body_len, page);

    if (rc == -EPROTO && ++s->bad_pages < BAD_PAGE_MAX) {
        logc_warn(&c, "GetRecords reply of %zu bytes cannot be read after byte %zu; reading "
                      "the page again (%d of %d)",
                  rep->body_len, page->bad_off, s->bad_pages, BAD_PAGE_MAX);
        backoff_error(s, SH_GET_RECORDS);
        return;
    }
    taken = rc == -ENOMEM ? rc : take_records(s, rep->body);
    if (taken >= 0 && rc == -EPROTO) {
        if (take_broken_tail(s, rep->body + page->bad_off, rep->body_len - page->bad_off)) {
            /* Read on after the dead-lettered text. */
            s->bad_pages = 0;
            restart_from_last_read(s);
            set_state(s, SH_GET_ITER);
        } else {
            /* Nothing to place an iterator after: the same page, slowly. */
            backoff(s, FATAL_RETRY_MS, SH_GET_RECORDS);
        }
        return;
    }
    if (taken < 0) {
        /* Out of memory part way: read on after the last record taken. */
        restart_from_last_read(s);
        backoff_error(s, SH_GET_ITER);
        return;
    }
    s->bad_pages = 0;
    s->failures = 0;
    next = page->next_iter;
    note_page_size(s, rep->body_len, page->n);
    if (taken)
        close_loss(s);
    set_iterator(s, next);
    if (!next)
        s->at_end = true;
    flush_if_caught_up(s, page->n);
    after_page(s, page->n, next != NULL);
}

static void on_get_records(const struct ddb_reply *rep, void *arg)
{
    struct shard *s = arg;
    struct app *app = app_of(s);
    struct log_ctx c = shard_log_ctx(s);

    bool live = reply_arrived(s, rep);

    slots_release(app->slots);
    if (!live) {
        /* A shard stopped (its stream replaced, its table gone): the slot
         * goes to a waiting shard of another stream. */
        if (!app->stopping)
            read_slots_free(app);
        return;
    }
    count_get_records(s, rep);
    switch (rep->cls) {
    case DDB_OK:
        take_page(s, rep);
        break;
    case DDB_EXPIRED_ITER:
        logc_info(&c, "shard iterator expired; renewing it");
        restart_from_last_read(s);
        set_state(s, SH_GET_ITER);
        break;
    case DDB_TRIMMED:
        set_iterator(s, NULL);
        s->start = START_TRIM_HORIZON;
        if (!s->from_horizon_fresh || s->last_read[0]) {
            note_loss(s, s->last_read[0] ? s->last_read : s->start_seq);
            set_state(s, SH_GET_ITER);
            break;
        }
        /* A TRIM_HORIZON iterator that met no record: DynamoDB Local
         * answers so while a shard has no record yet, or none left after
         * the retention (DDBLOCAL.md "A TRIM_HORIZON quirk"; the service
         * answers an empty page).  Nothing is readable now, and nothing
         * more was lost than a gap already counted; a shard resumed from a
         * checkpoint without one counts it.  Polled like an idle shard. */
        if (s->ck && s->ck->seq[0])
            note_loss(s, s->start_seq);
        logc_debug(&c, "trimmed-data answer at the oldest position; polling it as an idle shard");
        backoff_idle_to(s, SH_GET_ITER);
        break;
    default:
        if (failed_for_now(s, "GetRecords", rep, SH_GET_RECORDS))
            break;
        logc_error(&c, "GetRecords failed: HTTP %ld %s: %s; renewing the iterator in %d s",
                   rep->status, rep->type, rep->message, FATAL_RETRY_MS / 1000);
        restart_from_last_read(s);
        backoff(s, FATAL_RETRY_MS, SH_GET_ITER);
        break;
    }
    drive(s);
    read_slots_free(app);
}

/* The Limit of the next GetRecords (see SMALL_PAGE_BYTES). */
static unsigned page_limit(const struct shard *s)
{
    struct app *app = app_of(s);
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
    body = streams_get_records_req(s->iterator, s->limit);

    s->call = body ? ddb_call(app_of(s)->aws, AWS_STREAMS, "GetRecords", body,
                              on_get_records, s, &raw)
                   : NULL;
    if (!s->call) {
        backoff_error(s, SH_GET_RECORDS);
        return -ENOMEM;
    }
    slots_take(app_of(s)->slots);
    return 0;
}

/* ---- the read slots --------------------------------------------------- */

static void read_wait(struct shard *s)
{
    slots_wait(app_of(s)->slots, &s->read_wait);
}

static void read_unwait(struct shard *s)
{
    if (s->read_wait.queued)
        slots_unwait(app_of(s)->slots, &s->read_wait);
}

/* A slot came free: the longest-waiting shards read, while the sink has room.
 * Each is driven while still queued, so drive() lets it read. */
static void read_slots_free(struct app *app)
{
    struct slots_waiter *w;

    while ((w = slots_next(app->slots)) && !sink_full(app->sink)) {
        struct shard *s = container_of(w, struct shard, read_wait);

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
    struct app *app = app_of(s);

    shard_checkpoint(s);
    if (s->ck)
        ckpt_shard_finish(app->ckpt, s->ck, app->now());
}

bool shard_quiet(const struct shard *s)
{
    return !s->call && !s->pending_docs && !ack_pending(s->ack) && !(s->fetch && s->fetch->n);
}

/* A yielding shard whose reading has stopped and whose records have all
 * finished hands over (a shard that reached its end drains and finishes
 * first: reader_shard_done). */
static void yield_check(struct shard *s)
{
    if (!s->yielding || s->detached || s->state == SH_DRAIN || s->state == SH_DONE ||
        s->state == SH_STOPPED || !shard_quiet(s))
        return;
    reader_shard_yielded(s->reader, s);
}

static void drive(struct shard *s)
{
    for (;;) {
        switch (s->state) {
        case SH_WAIT_PARENT:
        case SH_PAUSED:
        case SH_HELD:
        case SH_STOPPED:
            return;
        case SH_GET_ITER:
            if (app_of(s)->stopping)
                return;
            if (s->yielding) {
                yield_check(s);
                return;
            }
            if (start_get_iterator(s) == 0)
                return;
            break;
        case SH_GET_RECORDS:
            if (app_of(s)->stopping)
                return;
            if (s->yielding) {
                yield_check(s);
                return;
            }
            if (!s->iterator) {
                set_state(s, SH_GET_ITER);
                break;
            }
            if (sink_full(app_of(s)->sink)) {
                set_state(s, SH_PAUSED);
                return;
            }
            if (ack_pending(s->ack) >= READ_AHEAD_MAX(app_of(s))) {
                hold(s);
                return;
            }
            /* First come first served (slots_may_take). */
            if (!slots_may_take(app_of(s)->slots, &s->read_wait)) {
                read_wait(s);
                set_state(s, SH_PAUSED);
                read_slots_free(app_of(s));
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

/* Too many records read past the checkpoint: memory would grow without
 * bound behind one record that does not finish (an item the engine keeps
 * refusing with a retryable error).  The shard stops reading until half of
 * them are behind the checkpoint. */
static void hold(struct shard *s)
{
    struct log_ctx c = shard_log_ctx(s);

    read_unwait(s);
    set_state(s, SH_HELD);
    if (!s->held_logged)
        logc_warn(&c, "%zu records read past the checkpoint (%s) are waiting for an older one to "
                      "finish: this shard stops reading until they are ([daemon] "
                      "shard_read_ahead)",
                  ack_pending(s->ack), s->ck && s->ck->seq[0] ? s->ck->seq : "none yet");
    s->held_logged = true;
}

void shard_finished_before(struct shard *s)
{
    set_state(s, SH_DONE);
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

void shard_acked(struct shard *s)
{
    if (s->state == SH_HELD && ack_pending(s->ack) <= READ_AHEAD_MAX(app_of(s)) / 2) {
        struct log_ctx c = shard_log_ctx(s);

        logc_info(&c, "the checkpoint moved on: reading again");
        s->held_logged = false;
        set_state(s, SH_GET_RECORDS);
        drive(s);
    } else if (s->state == SH_DRAIN) {
        drive(s);
    } else {
        yield_check(s);
    }
}

void shard_yield(struct shard *s)
{
    if (s->yielding || s->state == SH_STOPPED || s->state == SH_DONE)
        return;
    s->yielding = true;
    /* A read in flight is dropped (its records were not taken); items
     * being fetched for records already taken are waited for. */
    if ((s->state == SH_GET_ITER || s->state == SH_GET_RECORDS) && s->call) {
        ddb_cancel(s->call); /* its callback runs now and sees ECANCELED */
        s->call = NULL;
    }
    read_unwait(s);
    if (s->state == SH_PAUSED)
        set_state(s, SH_GET_RECORDS);
    yield_check(s);
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
