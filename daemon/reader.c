#include "daemon/reader.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "aws/ddb.h"
#include "aws/retry.h"
#include "config/config.h"
#include "daemon/ckpt.h"
#include "daemon/clients.h"
#include "daemon/reader_int.h"

#define RELIST_MS ((uint64_t)r->app->cfg->daemon.shard_list_interval_ms)
#define REDESCRIBE_MS ((uint64_t)r->app->cfg->daemon.stream_check_interval_ms)
#define CHILDREN_RETRY_MS 5000    /* a closed parent listed without its children yet */
#define RETRY_BASE_MS 500
#define RETRY_MAX_MS 30000

static void describe_table(struct reader *r);
static void list_stream(struct reader *r, const char *children_of);
static void reconcile(struct reader *r);

uint64_t reader_now_ms(const struct reader *r)
{
    return uv_now(r->app->loop);
}

static char *xstrdup(const char *p)
{
    return p ? strdup(p) : NULL;
}

static void replace(char **dst, const char *src)
{
    free(*dst);
    *dst = xstrdup(src);
}

struct reader *reader_new(struct app *app, const struct config_table *t)
{
    struct reader *r = calloc(1, sizeof(*r));
    char err[512];

    if (!r)
        return NULL;
    r->app = app;
    r->t = t;
    r->log.table = t->name;
    if (clients_transform_cfg(t, &r->tf, &r->hmac_key, err, sizeof(err)) != 0) {
        logc_error(&r->log, "hmac_key_file: %s", err);
        free(r);
        return NULL;
    }
    r->hmac_key_len = r->tf.hmac_key_len;
    if (uv_timer_init(app->loop, &r->timer) != 0) {
        reader_free(r);
        return NULL;
    }
    r->timer_open = true;
    return r;
}

void reader_free(struct reader *r)
{
    struct shard *s, *next;

    if (!r)
        return;
    for (s = r->shards; s; s = next) {
        next = s->next;
        shard_free(s);
    }
    free(r->hash_key);
    free(r->range_key);
    free(r->arn);
    free(r->view_type);
    free(r->list_from);
    free(r->children_of);
    records_page_free(&r->page);
    clients_tf_key_free(r->hmac_key, r->hmac_key_len);
    free(r);
}

const char *reader_table(const struct reader *r)
{
    return r->t->name;
}

bool reader_listed(const struct reader *r)
{
    return r->listed;
}

const struct reader_stats *reader_stats(const struct reader *r)
{
    struct reader_stats *st = (struct reader_stats *)&r->stats;

    st->shards_open = st->shards_closed = st->shards_done = st->shards_waiting = 0;
    for (const struct shard *s = r->shards; s; s = s->next) {
        if (s->state == SH_DONE)
            st->shards_done++;
        else if (s->state == SH_WAIT_PARENT)
            st->shards_waiting++;
        else if (s->closed)
            st->shards_closed++;
        else
            st->shards_open++;
    }
    return st;
}

static struct shard *find_shard(const struct reader *r, const char *id)
{
    for (struct shard *s = r->shards; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    return NULL;
}

static void on_timer(uv_timer_t *t);

static void schedule(struct reader *r, uint64_t ms)
{
    if (r->state < RD_STOPPING)
        uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void retry_later(struct reader *r)
{
    long cap = backoff_cap_ms(RETRY_BASE_MS, RETRY_MAX_MS, (unsigned)r->failures++);

    schedule(r, (uint64_t)cap);
}

static void on_timer(uv_timer_t *t)
{
    struct reader *r = container_of(t, struct reader, timer);

    if (r->state >= RD_STOPPING || r->call)
        return;
    if (!r->arn || reader_now_ms(r) - (uint64_t)r->last_describe_table >= REDESCRIBE_MS)
        describe_table(r);
    else
        list_stream(r, NULL);
}

/* ---- DescribeTable ---------------------------------------------------- */

static void take_key_schema(struct reader *r, json_t *table)
{
    size_t i;
    json_t *k;

    json_array_foreach(json_object_get(table, "KeySchema"), i, k)
    {
        const char *name = json_string_value(json_object_get(k, "AttributeName"));
        const char *type = json_string_value(json_object_get(k, "KeyType"));

        if (name && type && strcmp(type, "HASH") == 0)
            replace(&r->hash_key, name);
        else if (name && type && strcmp(type, "RANGE") == 0)
            replace(&r->range_key, name);
    }
    r->tf.hash_key = r->hash_key;
    r->tf.range_key = r->range_key;
}

/* Was this stream in the checkpoint before we started?  Then every shard we
 * have no entry for is new since, and is read from its beginning. */
static int has_arn(const struct ckpt_shard *sh, void *arg)
{
    return strcmp(sh->arn, arg) == 0;
}

/* [aws] allowed_regions: a stream whose ARN names another region
 * (arn:aws:dynamodb:REGION:ACCOUNT:table/...) is not read; checked again
 * at each listing. */
static bool arn_region_allowed(struct reader *r, const char *arn)
{
    const char *p = arn;
    char region[64];
    size_t n;

    for (int i = 0; i < 3 && p; i++)
        p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL;
    n = p ? strcspn(p, ":") : 0;
    if (!p || n == 0 || n >= sizeof(region))
        return true; /* not an ARN we can read: nothing to compare */
    memcpy(region, p, n);
    region[n] = '\0';
    if (config_list_has(&r->app->cfg->aws.allowed_regions, region))
        return true;
    logc_error(&r->log, "the stream %s is in region %s, which is not in [aws] allowed_regions: "
                        "not reading it",
               arn, region);
    return false;
}

static void on_describe_table(const struct ddb_reply *rep, void *arg)
{
    struct reader *r = arg;
    json_t *table;
    const char *arn, *view;
    bool enabled;

    r->call = NULL;
    if (rep->err == -ECANCELED || r->state >= RD_STOPPING)
        return;
    if (rep->cls != DDB_OK) {
        if (rep->cls == DDB_NOT_FOUND)
            logc_error(&r->log, "table not found (%s); the shards already known are still read; "
                                "checking again",
                       rep->message);
        else
            logc_warn(&r->log, "DescribeTable failed: %s %s; retrying",
                      rep->type[0] ? rep->type : rep->err ? strerror(-rep->err) : "error",
                      rep->message);
        retry_later(r);
        return;
    }
    r->failures = 0;
    r->last_describe_table = (int64_t)reader_now_ms(r);
    table = json_object_get(rep->json, "Table");
    take_key_schema(r, table);
    arn = json_string_value(json_object_get(table, "LatestStreamArn"));
    enabled = json_is_true(
        json_object_get(json_object_get(table, "StreamSpecification"), "StreamEnabled"));
    view = json_string_value(
        json_object_get(json_object_get(table, "StreamSpecification"), "StreamViewType"));
    if (!r->hash_key) {
        logc_error(&r->log, "DescribeTable gave no hash key; retrying");
        retry_later(r);
        return;
    }
    if (!arn) {
        logc_error(&r->log, "the table has no stream: enable DynamoDB Streams on it "
                            "(NEW_AND_OLD_IMAGES or NEW_IMAGE); checking again in a minute");
        schedule(r, RELIST_MS);
        return;
    }
    if (r->app->cfg->aws.allowed_regions.count && !arn_region_allowed(r, arn)) {
        schedule(r, RELIST_MS);
        return;
    }
    if (!enabled && r->arn && strcmp(r->arn, arn) == 0)
        logc_warn(&r->log, "the table's stream is disabled; finishing what it holds");
    if (view) {
        replace(&r->view_type, view);
        r->needs_items = strcmp(view, "KEYS_ONLY") == 0 || strcmp(view, "OLD_IMAGE") == 0;
    }
    if (!r->arn || strcmp(r->arn, arn) != 0) {
        bool first = !r->arn;

        if (!first)
            logc_warn(&r->log, "the table has a new stream %s (the stream was disabled and "
                               "enabled again); following it",
                      arn);
        else
            logc_info(&r->log, "stream %s (%s)", arn, view ? view : "view type unknown");
        replace(&r->arn, arn);
        r->stream_known = first ? ckpt_foreach(r->app->ckpt, has_arn, r->arn) != 0 : true;
    }
    r->state = RD_LIST;
    list_stream(r, NULL);
}

static void describe_table(struct reader *r)
{
    json_t *body = json_pack("{s:s}", "TableName", r->t->name);

    r->call = body ? ddb_call(r->app->aws, AWS_DYNAMODB, "DescribeTable", body, on_describe_table,
                              r, NULL)
                   : NULL;
    if (!r->call)
        retry_later(r);
}

/* ---- DescribeStream --------------------------------------------------- */

static void add_listed(struct reader *r, json_t *sh)
{
    const char *id = json_string_value(json_object_get(sh, "ShardId"));
    const char *parent = json_string_value(json_object_get(sh, "ParentShardId"));
    bool closed = json_string_value(json_object_get(json_object_get(sh, "SequenceNumberRange"),
                                                    "EndingSequenceNumber")) != NULL;
    struct shard *s, **tail;

    if (!id)
        return;
    s = find_shard(r, id);
    if (s) {
        s->closed |= closed;
        return;
    }
    s = shard_new(r, r->arn, id, parent, closed);
    if (!s) {
        logc_error(&r->log, "out of memory adding shard %s; retrying at the next listing", id);
        return;
    }
    for (tail = &r->shards; *tail; tail = &(*tail)->next)
        ;
    *tail = s;
}

static void on_describe_stream(const struct ddb_reply *rep, void *arg)
{
    struct reader *r = arg;
    json_t *desc, *sh;
    const char *last;
    size_t i;

    r->call = NULL;
    if (rep->err == -ECANCELED || r->state >= RD_STOPPING)
        return;
    if (rep->cls != DDB_OK) {
        if (r->children_of && (rep->cls == DDB_FATAL)) {
            /* No ShardFilter support at this endpoint: list everything. */
            replace(&r->children_of, NULL);
            list_stream(r, NULL);
            return;
        }
        if (rep->cls == DDB_NOT_FOUND) {
            logc_error(&r->log, "stream %s not found; checking the table for a new stream",
                       r->arn);
            r->last_describe_table = 0;
        } else {
            logc_warn(&r->log, "DescribeStream failed: %s %s; retrying",
                      rep->type[0] ? rep->type : rep->err ? strerror(-rep->err) : "error",
                      rep->message);
        }
        replace(&r->list_from, NULL);
        retry_later(r);
        return;
    }
    r->failures = 0;
    desc = json_object_get(rep->json, "StreamDescription");
    json_array_foreach(json_object_get(desc, "Shards"), i, sh) add_listed(r, sh);
    last = json_string_value(json_object_get(desc, "LastEvaluatedShardId"));
    if (last) {
        replace(&r->list_from, last);
        list_stream(r, r->children_of);
        return;
    }
    replace(&r->list_from, NULL);
    replace(&r->children_of, NULL);
    r->state = RD_RUNNING;
    reconcile(r);
    r->listed = true;
    schedule(r, RELIST_MS);
}

static void list_stream(struct reader *r, const char *children_of)
{
    json_t *body = json_pack("{s:s, s:i}", "StreamArn", r->arn, "Limit", 100);

    if (children_of && children_of != r->children_of)
        replace(&r->children_of, children_of);
    if (body && r->list_from)
        json_object_set_new(body, "ExclusiveStartShardId", json_string(r->list_from));
    if (body && r->children_of)
        json_object_set_new(body, "ShardFilter",
                            json_pack("{s:s, s:s}", "Type", "CHILD_SHARDS", "ShardId",
                                      r->children_of));
    r->call = body ? ddb_call(r->app->aws, AWS_STREAMS, "DescribeStream", body,
                              on_describe_stream, r, NULL)
                   : NULL;
    if (!r->call)
        retry_later(r);
}

/* ---- lineage ---------------------------------------------------------- */

/* Chooses where a shard starts and registers it in the checkpoint store. */
static void begin(struct reader *r, struct shard *s, bool first_listing)
{
    struct app *app = r->app;
    struct ckpt_shard *ck = ckpt_shard_get(app->ckpt, s->arn, s->id);

    if (ck && ck->done) {
        s->state = SH_DONE;
        return;
    }
    if (ck && ck->seq[0]) {
        s->start = START_AFTER_SEQ;
        memcpy(s->start_seq, ck->seq, sizeof(s->start_seq));
        /* The version state keeps the last finished record's creation
         * second: the iterator age is known from the start. */
        if (ck->ver.second > r->stats.newest_created)
            r->stats.newest_created = ck->ver.second;
    } else if (ck || r->stream_known || !first_listing ||
               r->t->start == CONFIG_START_TRIM_HORIZON) {
        /* Shards new to a stream we already follow are read from their
         * start; so is everything when the user asked for the history. */
        s->start = START_TRIM_HORIZON;
    } else if (s->closed) {
        /* start = latest on a first run: what is already closed is history,
         * and open shards start at LATEST. */
        ck = ckpt_shard_add(app->ckpt, r->t->name, s->arn, s->id, s->parent_id, app->now());
        if (ck)
            ckpt_shard_finish(app->ckpt, ck, app->now());
        s->state = SH_DONE;
        return;
    } else {
        s->start = START_LATEST;
    }
    if (!ck)
        ck = ckpt_shard_add(app->ckpt, r->t->name, s->arn, s->id, s->parent_id, app->now());
    if (!ck) {
        logc_error(&r->log, "out of memory registering shard %s", s->id);
        return;
    }
    s->ck = ck;
    s->ver = ckpt_shard_resume_version(app->ckpt, ck);
    logc_debug(&r->log, "shard %s starts at %s%s", s->id,
               s->start == START_AFTER_SEQ ? "after " : s->start == START_LATEST ? "LATEST"
                                                                                 : "TRIM_HORIZON",
               s->start == START_AFTER_SEQ ? s->start_seq : "");
    shard_begin(s);
}

static bool parent_finished(struct reader *r, const struct shard *s)
{
    struct shard *p;
    struct ckpt_shard *pc;

    if (!s->parent_id)
        return true;
    p = find_shard(r, s->parent_id);
    if (p)
        return p->state == SH_DONE;
    /* Not listed: it left the stream (older than 24 h), or the checkpoint
     * says it finished. */
    pc = ckpt_shard_get(r->app->ckpt, s->arn, s->parent_id);
    if (pc && !pc->done)
        logc_warn(&r->log, "parent shard %s of %s left the stream before it finished",
                  s->parent_id, s->id);
    return true;
}

static void reconcile(struct reader *r)
{
    bool first = !r->listed;
    bool progress = true;

    /* Parents come before children in the listing, but a parent marked done
     * here can release a child listed earlier: repeat until nothing moves. */
    while (progress) {
        progress = false;
        for (struct shard *s = r->shards; s; s = s->next) {
            if (s->state != SH_WAIT_PARENT || !parent_finished(r, s))
                continue;
            begin(r, s, first);
            progress = true;
        }
    }
}

void reader_shard_done(struct reader *r, struct shard *s)
{
    bool has_child = false;

    logc_info(&r->log, "shard %s finished", s->id);
    if (r->state >= RD_STOPPING)
        return;
    for (struct shard *c = r->shards; c; c = c->next)
        has_child |= c->parent_id && strcmp(c->parent_id, s->id) == 0;
    if (has_child) {
        reconcile(r);
        return;
    }
    /* Ask for its children now; a stream that shows a closed parent without
     * children yet is asked again soon. */
    if (!r->call && s->arn && r->arn && strcmp(s->arn, r->arn) == 0) {
        uv_timer_stop(&r->timer);
        list_stream(r, s->id);
    } else {
        schedule(r, CHILDREN_RETRY_MS);
    }
}

void reader_shard_gone(struct reader *r, struct shard *s)
{
    /* The shard expired or the stream went away: look at the table again
     * (a new stream ARN, or the table deleted) soon. */
    r->last_describe_table = 0;
    if (!r->call)
        schedule(r, CHILDREN_RETRY_MS);
}

/* ---- start, stop, acks ------------------------------------------------ */

int reader_start(struct reader *r)
{
    r->state = RD_DESCRIBE_TABLE;
    describe_table(r);
    return 0;
}

void reader_resume(struct reader *r)
{
    for (struct shard *s = r->shards; s; s = s->next)
        shard_wake(s);
}

void reader_checkpoint(struct reader *r)
{
    for (struct shard *s = r->shards; s; s = s->next)
        if (s->ck && s->state != SH_DONE)
            shard_checkpoint(s);
}

void reader_doc_done(void *owner, uint64_t ticket, enum sink_outcome o, void *arg)
{
    struct shard *s = owner;
    struct reader_stats *st = &s->reader->stats;
    bool del = ticket & 1;

    switch (o) {
    case SINK_INDEXED:
        if (del)
            st->docs_deleted++;
        else
            st->docs_indexed++;
        break;
    case SINK_STALE:
        st->docs_stale++;
        break;
    case SINK_GONE:
        st->docs_gone++;
        break;
    case SINK_DLQ:
        st->docs_dlq++;
        break;
    case SINK_SUPERSEDED:
    case SINK_CANCELED:
    case SINK_EXPIRED: /* the daemon sets no send_by: never happens */
        break;
    }
    shard_doc_done(s, ticket, o != SINK_CANCELED && o != SINK_EXPIRED);
}

static void maybe_stopped(struct reader *r)
{
    if (r->state != RD_STOPPING || r->timer_open || r->call)
        return;
    for (struct shard *s = r->shards; s; s = s->next)
        if (!shard_stopped(s))
            return;
    r->state = RD_STOPPED;
    if (r->stopped_cb)
        r->stopped_cb(r->stopped_arg);
}

void reader_shard_stopped(struct reader *r, struct shard *s)
{
    maybe_stopped(r);
}

static void on_reader_timer_closed(uv_handle_t *h)
{
    struct reader *r = container_of((uv_timer_t *)h, struct reader, timer);

    r->timer_open = false;
    maybe_stopped(r);
}

void reader_stop(struct reader *r, void (*done)(void *arg), void *arg)
{
    r->stopped_cb = done;
    r->stopped_arg = arg;
    r->state = RD_STOPPING;
    if (r->call)
        ddb_cancel(r->call);
    r->call = NULL;
    for (struct shard *s = r->shards; s; s = s->next)
        shard_stop(s);
    if (r->timer_open && !uv_is_closing((uv_handle_t *)&r->timer)) {
        uv_timer_stop(&r->timer);
        uv_close((uv_handle_t *)&r->timer, on_reader_timer_closed);
    }
    maybe_stopped(r);
}
