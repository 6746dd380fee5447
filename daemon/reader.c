#include "daemon/reader.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/backoff.h"
#include "aws/ddb.h"
#include "aws/retry.h"
#include "config/config.h"
#include "daemon/ack.h"
#include "daemon/ckpt.h"
#include "daemon/clients.h"
#include "daemon/lease.h"
#include "daemon/reader_int.h"

#define RELIST_MS ((uint64_t)r->app->cfg->daemon.shard_list_interval_ms)
#define REDESCRIBE_MS ((uint64_t)r->app->cfg->daemon.stream_check_interval_ms)
#define TIMING(r) ((r)->app->reader_timing ? (r)->app->reader_timing : &reader_timing_default)
#define CHILDREN_RETRY_MS ((uint64_t)TIMING(r)->children_retry_ms) /* 5 s */
#define RETRY_BASE_MS (TIMING(r)->retry_base_ms)                   /* 500 ms */
#define RETRY_MAX_MS (TIMING(r)->retry_max_ms)                     /* 30 s */
#define LATEST_MARGIN_S 60        /* see shard.c: records near the start are not history */
/* A disabled stream's listing can miss a child for a moment, as any listing
 * can (REFERENCE.md Streams fact 8): it counts as complete only once full
 * listings have shown it so for this long. */
#define STREAM_SETTLE_MS ((uint64_t)TIMING(r)->stream_settle_ms) /* 10 s */

const struct reader_timing reader_timing_default = {
    .children_retry_ms = 5000,
    .retry_base_ms = 500,
    .retry_max_ms = 30000,
    .stream_settle_ms = 10000,
};
#define DESCRIBE_STREAM_LIMIT 100 /* shards a DescribeStream page (the most it gives) */

static const char *const reader_state_names[] = {
    [RD_DESCRIBE_TABLE] = "describe-table", [RD_LIST_STREAMS] = "list-streams",
    [RD_LIST] = "list",                     [RD_RUNNING] = "running",
    [RD_STOPPING] = "stopping",             [RD_STOPPED] = "stopped",
};
_Static_assert(ARRAY_SIZE(reader_state_names) == RD_NSTATES, "a name for each reader state");

static void describe_table(struct reader *r);
static void list_streams(struct reader *r);
static void list_next(struct reader *r);
static void list_stream(struct reader *r, struct rstream *st, const char *children_of);
static void reconcile(struct reader *r);
static void retire(struct reader *r, struct shard *s);

uint64_t reader_now_ms(const struct reader *r)
{
    return uv_now(r->app->loop);
}

/* The only writer of r->state. */
static void set_state(struct reader *r, enum reader_state to)
{
    if (r->state != to)
        logc_debug(&r->log, "reader: %s -> %s", reader_state_names[r->state],
                   reader_state_names[to]);
    r->state = to;
}

/* Not stopping nor stopped: it lists, reads and sets its timer. */
static bool reader_active(const struct reader *r)
{
    switch (r->state) {
    case RD_DESCRIBE_TABLE:
    case RD_LIST_STREAMS:
    case RD_LIST:
    case RD_RUNNING:
        return true;
    case RD_STOPPING:
    case RD_STOPPED:
    case RD_NSTATES:
        break;
    }
    return false;
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

/* ---- streams ------------------------------------------------------------ */

/* "arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL": the label is the
 * stream's creation time, so labels order a table's streams. */
static const char *label_of(const char *arn)
{
    const char *p = strstr(arn, "/stream/");

    return p ? p + 8 : "";
}

static struct rstream *stream_find(struct reader *r, const char *arn)
{
    for (struct rstream *st = r->streams; st; st = st->next)
        if (strcmp(st->arn, arn) == 0)
            return st;
    return NULL;
}

/* The stream's record, made when new (kept in label order). */
static struct rstream *stream_add(struct reader *r, const char *arn)
{
    struct rstream *st = stream_find(r, arn), **link;

    if (st)
        return st;
    st = calloc(1, sizeof(*st));
    if (!st || !(st->arn = strdup(arn))) {
        free(st);
        return NULL;
    }
    st->label = label_of(st->arn);
    for (link = &r->streams; *link && strcmp((*link)->label, st->label) <= 0; link = &(*link)->next)
        ;
    st->next = *link;
    *link = st;
    return st;
}

static void streams_free(struct reader *r)
{
    while (r->streams) {
        struct rstream *st = r->streams;

        r->streams = st->next;
        free(st->arn);
        free(st);
    }
}

/* ---- shards: a hash on (stream ARN, shard id) ---------------------------- */

static size_t hash_of(const char *arn, const char *id)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */

    for (; *arn; arn++)
        h = (h ^ (unsigned char)*arn) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return (size_t)h;
}

static struct shard *find_shard(const struct reader *r, const char *arn, const char *id)
{
    if (!r->tabcap)
        return NULL;
    for (struct shard *s = r->tab[hash_of(arn, id) & (r->tabcap - 1)]; s; s = s->hnext)
        if (strcmp(s->id, id) == 0 && strcmp(s->arn, arn) == 0)
            return s;
    return NULL;
}

static int tab_grow(struct reader *r)
{
    size_t cap = r->tabcap ? r->tabcap * 2 : 64;
    struct shard **tab = calloc(cap, sizeof(*tab));

    if (!tab)
        return -ENOMEM;
    for (struct shard *s = r->shards; s; s = s->next) {
        size_t i = hash_of(s->arn, s->id) & (cap - 1);

        s->hnext = tab[i];
        tab[i] = s;
    }
    free(r->tab);
    r->tab = tab;
    r->tabcap = cap;
    return 0;
}

/* Appends s to the list and the hash. */
static int shard_link(struct reader *r, struct shard *s)
{
    size_t i;

    if ((r->nshards + 1) > r->tabcap && tab_grow(r) < 0)
        return -ENOMEM;
    i = hash_of(s->arn, s->id) & (r->tabcap - 1);
    s->hnext = r->tab[i];
    r->tab[i] = s;
    /* The list keeps the order shards were found: parents before children. */
    s->next = NULL;
    if (!r->shards) {
        r->shards = s;
        s->prev = s;              /* the head's prev is the tail */
    } else {
        struct shard *last = r->shards->prev;

        last->next = s;
        s->prev = last;
        r->shards->prev = s;
    }
    r->nshards++;
    return 0;
}

static void shard_unlink(struct reader *r, struct shard *s)
{
    struct shard **hl = &r->tab[hash_of(s->arn, s->id) & (r->tabcap - 1)];

    while (*hl && *hl != s)
        hl = &(*hl)->hnext;
    if (*hl)
        *hl = s->hnext;
    if (s == r->shards) {
        r->shards = s->next;
        if (r->shards)
            r->shards->prev = s->prev;
    } else {
        s->prev->next = s->next;
        if (s->next)
            s->next->prev = s->prev;
        else
            r->shards->prev = s->prev;
    }
    s->next = s->prev = s->hnext = NULL;
    r->nshards--;
}

/* ---- life of the reader ------------------------------------------------- */

/* Each distinct name renamed is said once (transform_renames). */
static void say_renamed(void *arg, const char *line)
{
    struct reader *r = arg;

    logc_warn(&r->log, "%s", line);
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
    transform_renames_init(&r->renames, say_renamed, r);
    r->tf.on_rename = transform_renames_note;
    r->tf.rename_arg = &r->renames;
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
    for (s = r->detached; s; s = next) {
        next = s->next;
        shard_free(s);
    }
    free(r->tab);
    streams_free(r);
    free(r->hash_key);
    free(r->range_key);
    free(r->arn);
    free(r->view_type);
    free(r->list_from);
    free(r->children_of);
    free(r->oldest_known);
    transform_renames_close(&r->renames);
    streams_page_free(&r->page);
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
    uint64_t done = r->shards_retired;

    st->shards_open = st->shards_closed = st->shards_waiting = st->shards_held = 0;
    for (const struct shard *s = r->shards; s; s = s->next) {
        if (s->state == SH_DONE)
            done++;
        else if (s->state == SH_WAIT_PARENT)
            st->shards_waiting++;
        else if (s->state == SH_HELD)
            st->shards_held++;
        else if (s->closed)
            st->shards_closed++;
        else
            st->shards_open++;
    }
    st->shards_done = done;
    st->fields_renamed = r->renames.count;
    return st;
}

static void on_timer(uv_timer_t *t);

static void schedule(struct reader *r, uint64_t ms)
{
    if (reader_active(r))
        uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void retry_later(struct reader *r)
{
    schedule(r, (uint64_t)backoff_ms(RETRY_BASE_MS, RETRY_MAX_MS, (unsigned)r->failures++));
}

static void on_timer(uv_timer_t *t)
{
    struct reader *r = container_of(t, struct reader, timer);

    if (!reader_active(r) || r->call)
        return;
    if (!r->arn || reader_now_ms(r) - (uint64_t)r->last_describe_table >= REDESCRIBE_MS) {
        describe_table(r);
    } else {
        r->cur = NULL; /* every stream not finished, from the oldest */
        list_next(r);
    }
}

/* ---- what the checkpoint knew ------------------------------------------- */

struct seed {
    struct reader *r;
    const char *oldest;
};

static struct shard *adopt(struct reader *r, const struct ckpt_shard *ck);

/* Every stream of this table in the checkpoint is followed, and every
 * shard not finished there is read, listed or not: a stream replaced while
 * the daemon was stopped is finished, and an unfinished shard that left
 * the listing is read for what is left (or found expired, and its loss
 * counted), never dropped in silence. */
static int seed_one(const struct ckpt_shard *ck, void *arg)
{
    struct seed *sd = arg;
    struct reader *r = sd->r;

    if (strcmp(ck->table, r->t->name) != 0)
        return 0;
    if (!sd->oldest || strcmp(label_of(ck->arn), sd->oldest) < 0)
        sd->oldest = label_of(ck->arn);
    if (!stream_add(r, ck->arn))
        return -ENOMEM;
    if (!ck->done && !find_shard(r, ck->arn, ck->id) && !adopt(r, ck))
        return -ENOMEM;
    return 0;
}

static void seed(struct reader *r)
{
    struct seed sd = { r, NULL };

    if (r->seeded)
        return;
    r->table_known = ckpt_table_known(r->app->ckpt, r->t->name);
    if (ckpt_foreach(r->app->ckpt, seed_one, &sd) < 0) {
        logc_error(&r->log, "out of memory taking the checkpoint's shards; trying again");
        return;
    }
    replace(&r->oldest_known, sd.oldest);
    r->seeded = true;
}

/* ---- DescribeTable ---------------------------------------------------- */

/* A copy of a name that may hold NUL (n bytes). */
static void replace_n(char **dst, size_t *len, const char *p, size_t n)
{
    char *c = malloc(n + 1);

    if (c) {
        memcpy(c, p, n);
        c[n] = '\0';
    }
    free(*dst);
    *dst = c;
    *len = c ? n : 0;
}

static void take_key_schema(struct reader *r, const struct streams_table *t)
{
    if (t->hash_key)
        replace_n(&r->hash_key, &r->tf.hash_key_len, t->hash_key, t->hash_key_len);
    if (t->range_key)
        replace_n(&r->range_key, &r->tf.range_key_len, t->range_key, t->range_key_len);
    r->tf.hash_key = r->hash_key;
    r->tf.range_key = r->range_key;
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

/* Other streams than the latest are looked for (ListStreams) when the table
 * was followed before, or when start = trim_horizon asks for everything the
 * streams still hold; start = latest on a first run skips them. */
static bool wants_other_streams(const struct reader *r)
{
    return r->table_known || r->t->start == CONFIG_START_TRIM_HORIZON;
}

static void on_describe_table(const struct ddb_reply *rep, void *arg)
{
    struct reader *r = arg;
    struct streams_table table;
    const char *arn, *view;
    bool enabled;

    r->call = NULL;
    if (rep->err == -ECANCELED || !reader_active(r))
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
    streams_table_parse(rep->json, &table);
    take_key_schema(r, &table);
    arn = table.latest_arn;
    enabled = table.stream_enabled;
    view = table.view_type;
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
    seed(r);
    if (!r->seeded) {
        retry_later(r);
        return;
    }
    if (!enabled && r->arn && strcmp(r->arn, arn) == 0)
        logc_warn(&r->log, "the table's stream is disabled; finishing what it holds");
    if (view) {
        replace(&r->view_type, view);
        r->needs_items = strcmp(view, "KEYS_ONLY") == 0 || strcmp(view, "OLD_IMAGE") == 0;
    }
    if (!r->arn || strcmp(r->arn, arn) != 0) {
        if (r->arn)
            logc_warn(&r->log, "the table has a new stream %s (the stream was disabled and "
                               "enabled again): the older one is read to its end first",
                      arn);
        else
            logc_info(&r->log, "stream %s (%s)", arn, view ? view : "view type unknown");
        replace(&r->arn, arn);
        r->streams_listed = false;
    }
    if (!stream_add(r, arn)) {
        retry_later(r);
        return;
    }
    if (!r->streams_listed && wants_other_streams(r)) {
        replace(&r->list_from, NULL);
        list_streams(r);
        return;
    }
    r->cur = NULL;
    list_next(r);
}

static void describe_table(struct reader *r)
{
    json_t *body = streams_describe_table_req(r->t->name);

    set_state(r, RD_DESCRIBE_TABLE);
    r->call = body ? ddb_call(r->app->aws, AWS_DYNAMODB, "DescribeTable", body, on_describe_table,
                              r, NULL)
                   : NULL;
    if (!r->call)
        retry_later(r);
}

/* ---- ListStreams ------------------------------------------------------- */

/* A stream older than every stream the checkpoint knew was finished and
 * pruned, or was there before this table was first followed: not read. */
static bool stream_wanted(const struct reader *r, const char *arn)
{
    if (!r->table_known)
        return true; /* start = trim_horizon: everything still held */
    return r->oldest_known && strcmp(label_of(arn), r->oldest_known) >= 0;
}

static void on_list_streams(const struct ddb_reply *rep, void *arg)
{
    struct reader *r = arg;
    struct streams_list list;

    r->call = NULL;
    if (rep->err == -ECANCELED || !reader_active(r))
        return;
    if (rep->cls != DDB_OK) {
        if (rep->cls == DDB_FATAL) {
            /* Without the permission (or the operation), only the streams
             * the checkpoint and DescribeTable name are known. */
            if (!r->list_streams_refused)
                logc_warn(&r->log, "ListStreams refused (%s: %s): a stream replaced more than "
                                   "once while ddb2es was stopped cannot be found; grant "
                                   "dynamodb:ListStreams (see iam/)",
                          rep->type, rep->message);
            r->list_streams_refused = true;
            r->streams_listed = true;
            r->cur = NULL;
            list_next(r);
            return;
        }
        logc_warn(&r->log, "ListStreams failed: %s %s; retrying",
                  rep->type[0] ? rep->type : rep->err ? strerror(-rep->err) : "error", rep->message);
        retry_later(r);
        return;
    }
    r->failures = 0;
    streams_list_parse(rep->json, &list);
    for (size_t i = 0; i < list.n; i++) {
        const char *arn = streams_list_arn(&list, i);

        if (arn && stream_wanted(r, arn) && !stream_find(r, arn)) {
            logc_info(&r->log, "an earlier stream of the table may hold unread records: %s", arn);
            stream_add(r, arn);
        }
    }
    if (list.last_arn) {
        replace(&r->list_from, list.last_arn);
        list_streams(r);
        return;
    }
    replace(&r->list_from, NULL);
    r->streams_listed = true;
    r->cur = NULL;
    list_next(r);
}

static void list_streams(struct reader *r)
{
    json_t *body = streams_list_streams_req(r->t->name, r->list_from);

    set_state(r, RD_LIST_STREAMS);
    r->call = body ? ddb_call(r->app->aws, AWS_STREAMS, "ListStreams", body, on_list_streams, r,
                              NULL)
                   : NULL;
    if (!r->call)
        retry_later(r);
}

/* ---- DescribeStream --------------------------------------------------- */

static struct shard *new_shard(struct reader *r, struct rstream *st, const char *id,
                               const char *parent, bool closed)
{
    struct shard *s = shard_new(r, st->arn, id, parent, closed);

    if (s && shard_link(r, s) < 0) {
        shard_free(s);
        s = NULL;
    }
    if (s)
        s->stream = st;
    return s;
}

static struct shard *adopt(struct reader *r, const struct ckpt_shard *ck)
{
    struct rstream *st = stream_add(r, ck->arn);

    return st ? new_shard(r, st, ck->id, ck->parent, false) : NULL;
}

/* Coordinated mode: a shard listed with no entry gets one (its lease item,
 * created by the next save), saying where a first reader starts it, so
 * that whichever worker takes the lease starts it as one process would
 * (begin): start = latest on a table never followed makes what is closed
 * history and the open shards skip what is older than now. */
static void register_listed(struct reader *r, struct shard *s)
{
    struct app *app = r->app;
    bool latest = r->arn && strcmp(s->arn, r->arn) == 0;
    struct ckpt_shard *ck = ckpt_shard_add(app->ckpt, r->t->name, s->arn, s->id, s->parent_id,
                                           app->now());

    if (!ck) {
        logc_error(&r->log, "out of memory registering shard %s; trying again later", s->id);
        return;
    }
    if (r->table_known || r->listed || !latest || r->t->start == CONFIG_START_TRIM_HORIZON)
        return;
    if (s->closed)
        ckpt_shard_finish(app->ckpt, ck, app->now());
    else
        ckpt_shard_skip_before(app->ckpt, ck, (int64_t)app->now() - LATEST_MARGIN_S);
}

static void add_listed(struct reader *r, struct rstream *st, const struct streams_shard *sh,
                       bool full)
{
    const char *id = sh->id, *parent = sh->parent;
    bool closed = sh->end_seq != NULL;
    struct ckpt_shard *ck;
    struct shard *s;

    ck = ckpt_shard_get(r->app->ckpt, st->arn, id);
    if (ck)
        ckpt_shard_seen(ck, r->app->now());
    s = find_shard(r, st->arn, id);
    if (s) {
        s->closed |= closed;
        if (full)
            s->listed_gen = st->gen;
        return;
    }
    if (ck && ck->done)
        return; /* finished: nothing of it is kept but the checkpoint */
    s = new_shard(r, st, id, parent, closed);
    if (!s) {
        logc_error(&r->log, "out of memory adding shard %s; retrying at the next listing", id);
        return;
    }
    s->listed_gen = st->gen;
    if (r->app->lease && !ck)
        register_listed(r, s);
}

/* A full listing of st ended: shards of it that it no longer holds left
 * the stream (their reading ends as soon as the service says so). */
static void listed_in_full(struct reader *r, struct rstream *st)
{
    for (struct shard *s = r->shards; s; s = s->next) {
        if (s->stream != st || s->listed_gen == st->gen || s->unlisted)
            continue;
        s->unlisted = true;
        if (s->state == SH_DONE)
            continue;
        r->stats.parents_missing++;
        logc_error(&r->log, "shard %s is not finished in the checkpoint but its stream no longer "
                            "lists it: reading what is left of it (if it expired, its records "
                            "are lost and counted)",
                   s->id);
    }
}

static void on_describe_stream(const struct ddb_reply *rep, void *arg)
{
    struct reader *r = arg;
    struct rstream *st = r->cur;
    struct streams_description desc;
    struct streams_shard sh;
    bool full = !r->children_of;

    r->call = NULL;
    if (rep->err == -ECANCELED || !reader_active(r))
        return;
    if (rep->cls != DDB_OK) {
        if (r->children_of && rep->cls == DDB_FATAL) {
            /* No ShardFilter support at this endpoint: list everything. */
            replace(&r->children_of, NULL);
            replace(&r->list_from, NULL);
            list_stream(r, st, NULL);
            return;
        }
        if (rep->cls == DDB_NOT_FOUND && r->arn && strcmp(st->arn, r->arn) != 0) {
            /* An older stream past its 24 h: what it still held is lost. */
            logc_error(&r->log, "stream %s no longer exists (%s): its unread records are lost",
                       st->arn, rep->message);
            st->gone = true;
            for (struct shard *s = r->shards; s; s = s->next)
                if (s->stream == st)
                    s->unlisted = true;
            replace(&r->list_from, NULL);
            replace(&r->children_of, NULL);
            list_next(r);
            return;
        }
        if (rep->cls == DDB_NOT_FOUND) {
            logc_error(&r->log, "stream %s not found; checking the table for a new stream",
                       st->arn);
            r->last_describe_table = 0;
        } else {
            logc_warn(&r->log, "DescribeStream failed: %s %s; retrying",
                      rep->type[0] ? rep->type : rep->err ? strerror(-rep->err) : "error",
                      rep->message);
        }
        replace(&r->list_from, NULL);
        replace(&r->children_of, NULL);
        retry_later(r);
        return;
    }
    r->failures = 0;
    streams_description_parse(rep->json, &desc);
    if (full && !r->list_from) {
        /* The first page of a full listing: whether the stream can still get
         * shards is known now, before the shards are. */
        st->disabled = desc.disabled;
        st->complete = false;
    }
    for (size_t i = 0; i < desc.nshards; i++)
        if (streams_description_shard(&desc, i, &sh))
            add_listed(r, st, &sh, full);
    if (desc.last_shard_id) {
        replace(&r->list_from, desc.last_shard_id);
        list_stream(r, st, r->children_of);
        return;
    }
    replace(&r->list_from, NULL);
    if (full) {
        listed_in_full(r, st);
        st->complete = st->disabled;
        if (!st->complete)
            st->complete_at = 0;
        else if (!st->complete_at)
            st->complete_at = reader_now_ms(r);
        list_next(r);
        return;
    }
    replace(&r->children_of, NULL);
    set_state(r, RD_RUNNING);
    reconcile(r);
    schedule(r, RELIST_MS);
}

/* DescribeStream of st: in full (a new generation), or only the children of
 * one shard. */
static void list_stream(struct reader *r, struct rstream *st, const char *children_of)
{
    json_t *body;

    set_state(r, RD_LIST);
    r->cur = st;
    if (children_of != r->children_of)
        replace(&r->children_of, children_of);
    if (!r->children_of && !r->list_from)
        st->gen++;
    body = streams_describe_stream_req(st->arn, DESCRIBE_STREAM_LIMIT, r->list_from,
                                       r->children_of);
    r->call = body ? ddb_call(r->app->aws, AWS_STREAMS, "DescribeStream", body,
                              on_describe_stream, r, NULL)
                   : NULL;
    if (!r->call)
        retry_later(r);
}

/* A stream is finished once every shard it can have is known (it was
 * listed in full while disabled, or it no longer exists) and done. */
static bool stream_finished(struct reader *r, struct rstream *st)
{
    if (st->finished)
        return true;
    if (!st->gone && (!st->complete || reader_now_ms(r) - st->complete_at < STREAM_SETTLE_MS))
        return false;
    for (struct shard *s = r->shards; s; s = s->next)
        if (s->stream == st && s->state != SH_DONE)
            return false;
    st->finished = true;
    logc_info(&r->log, "stream %s is read to its end", st->arn);
    return true;
}

/* Lists the next stream after r->cur that is not finished; after the last
 * one, the shards are started where they may. */
static void list_next(struct reader *r)
{
    struct rstream *st = r->cur ? r->cur->next : r->streams;

    while (st && (stream_finished(r, st) || st->gone))
        st = st->next;
    if (st) {
        replace(&r->list_from, NULL);
        replace(&r->children_of, NULL);
        list_stream(r, st, NULL);
        return;
    }
    r->cur = NULL;
    set_state(r, RD_RUNNING);
    reconcile(r);
    r->listed = true;
    {
        uint64_t ms = RELIST_MS;

        /* A stream waiting to settle is listed again when it has. */
        for (st = r->streams; st; st = st->next)
            if (!st->finished && st->complete && STREAM_SETTLE_MS + 100 < ms)
                ms = STREAM_SETTLE_MS + 100;
        schedule(r, ms);
    }
}

/* ---- lineage ---------------------------------------------------------- */

/* Every stream older than st is finished: st's first shards may start. */
static bool older_finished(struct reader *r, const struct rstream *st)
{
    for (struct rstream *o = r->streams; o && o != st; o = o->next)
        if (strcmp(o->label, st->label) < 0 && !stream_finished(r, o))
            return false;
    return true;
}

/* Chooses where a shard starts and registers it in the checkpoint store.
 * False when it could not (out of memory): it is tried again later. */
static bool begin(struct reader *r, struct shard *s, bool first_listing, bool root)
{
    struct app *app = r->app;
    struct ckpt_shard *ck = ckpt_shard_get(app->ckpt, s->arn, s->id);
    bool latest = r->arn && strcmp(s->arn, r->arn) == 0;

    if (ck && ck->done) {
        shard_finished_before(s);
        return true;
    }
    if (ck && ck->seq[0]) {
        s->start = START_AFTER_SEQ;
        memcpy(s->start_seq, ck->seq, sizeof(s->start_seq));
        /* The version state keeps the last finished record's creation
         * second: the iterator age is known from the start. */
        if (ck->ver.second > r->stats.newest_created)
            r->stats.newest_created = ck->ver.second;
    } else if (ck && ck->skip_before) {
        /* Started at LATEST before, with nothing taken yet. */
        s->start = START_TRIM_HORIZON;
        s->skip_before = ck->skip_before;
        s->skipping = true;
    } else if (ck || r->table_known || !first_listing || !latest ||
               r->t->start == CONFIG_START_TRIM_HORIZON) {
        /* `start` applies only to a table never followed before: shards
         * new to a followed table are read from their start, and so is
         * everything when the user asked for the history. */
        s->start = START_TRIM_HORIZON;
    } else if (s->closed) {
        /* start = latest on a first run: what is already closed is history,
         * and open shards start at LATEST. */
        ck = ckpt_shard_add(app->ckpt, r->t->name, s->arn, s->id, s->parent_id, app->now());
        if (!ck)
            return false;
        ckpt_shard_finish(app->ckpt, ck, app->now());
        shard_finished_before(s);
        return true;
    } else {
        s->start = START_LATEST;
        s->skip_before = (int64_t)app->now() - LATEST_MARGIN_S;
    }
    if (!ck)
        ck = ckpt_shard_add(app->ckpt, r->t->name, s->arn, s->id, s->parent_id, app->now());
    if (!ck) {
        logc_error(&r->log, "out of memory registering shard %s; trying again later", s->id);
        return false;
    }
    if (s->start == START_LATEST)
        ckpt_shard_skip_before(app->ckpt, ck, s->skip_before);
    if (root && !ck->seq[0]) {
        /* A first shard of its stream: its versions start above every
         * version the table has used, so after a stream was replaced a
         * newer record never loses to an older one of the same second. */
        struct docver floor = ckpt_table_max_version(app->ckpt, r->t->name);

        ckpt_shard_raise_version(app->ckpt, ck, &floor);
    }
    s->ck = ck;
    s->ver = ckpt_shard_resume_version(app->ckpt, ck);
    logc_debug(&r->log, "shard %s starts at %s%s", s->id,
               s->start == START_AFTER_SEQ ? "after " : s->start == START_LATEST ? "LATEST"
                                                                                 : "TRIM_HORIZON",
               s->start == START_AFTER_SEQ ? s->start_seq : "");
    shard_begin(s);
    return true;
}

/* May s start now?  *root is set when it has no parent to follow (none, or
 * one that left the stream before it was ever known). */
static bool may_start(struct reader *r, struct shard *s, bool *root)
{
    struct shard *p;
    struct ckpt_shard *pc;

    *root = false;
    if (r->app->lease) {
        /* Coordinated: only a shard whose lease this worker holds, and
         * only once its parent's item says done (whoever read it). */
        if (!lease_holds(r->app->lease, s->arn, s->id))
            return false;
        pc = s->parent_id ? ckpt_shard_get(r->app->ckpt, s->arn, s->parent_id) : NULL;
        if (pc)
            return pc->done;
        *root = true;
        return older_finished(r, s->stream);
    }
    if (s->parent_id) {
        p = find_shard(r, s->arn, s->parent_id);
        if (p)
            return p->state == SH_DONE;
        pc = ckpt_shard_get(r->app->ckpt, s->arn, s->parent_id);
        if (pc && pc->done)
            return true;
        if (pc) {
            /* Unfinished, and not among the shards read: read what is left
             * of it first (it ends by being read, or found expired). */
            if (!adopt(r, pc))
                logc_error(&r->log, "out of memory taking parent shard %s", s->parent_id);
            return false;
        }
        /* Never known: it left the stream before this table was followed
         * (older than the 24 h retention). */
    }
    *root = true;
    return older_finished(r, s->stream);
}

/* Coordinated mode: a shard not read here whose item says done (another
 * worker read it to its end). */
static bool done_elsewhere(struct reader *r, const struct shard *s)
{
    const struct ckpt_shard *ck = ckpt_shard_get(r->app->ckpt, s->arn, s->id);

    return ck && ck->done;
}

static void reconcile(struct reader *r)
{
    bool first = !r->listed;
    bool progress = true;

    /* Parents come before children in the listing, but a parent marked done
     * here can release a child listed earlier: repeat until nothing moves.
     * A shard that cannot begin (out of memory) waits for the next listing. */
    while (progress) {
        struct shard *next;

        progress = false;
        for (struct shard *s = r->shards; s; s = next) {
            bool root;

            next = s->next;
            if (s->state == SH_WAIT_PARENT && r->app->lease && done_elsewhere(r, s)) {
                shard_finished_before(s);
                retire(r, s);
                progress = true;
                continue;
            }
            if (s->state != SH_WAIT_PARENT || !may_start(r, s, &root))
                continue;
            if (!begin(r, s, first, root))
                continue;
            progress = true;
            if (s->state == SH_DONE)
                retire(r, s); /* finished before (or history): nothing to read */
        }
    }
}

/* ---- shards that finish ------------------------------------------------- */

static void maybe_stopped(struct reader *r);

static void on_retired(uv_handle_t *h)
{
    struct shard *s = container_of((uv_timer_t *)h, struct shard, timer);
    struct reader *r = s->reader;

    s->timer_open = false;
    shard_free(s);
    r->retiring--;
    maybe_stopped(r);
}

/* A finished shard is freed (its checkpoint entry says it is done): at
 * 10,000 shards rolling over every 4 h, keeping them would grow by 60,000
 * a day. */
static void retire(struct reader *r, struct shard *s)
{
    shard_unlink(r, s);
    r->shards_retired++;
    if (s->timer_open && !uv_is_closing((uv_handle_t *)&s->timer)) {
        r->retiring++;
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, on_retired);
    } else {
        shard_free(s);
    }
}

static void hand_over(struct reader *r, const char *arn, const char *id);

void reader_shard_done(struct reader *r, struct shard *s)
{
    bool has_child = false;

    logc_info(&r->log, "shard %s finished", s->id);
    if (s->yielding)
        hand_over(r, s->arn, s->id);
    if (!reader_active(r))
        return;
    for (struct shard *c = r->shards; c; c = c->next)
        has_child |= c->parent_id && strcmp(c->parent_id, s->id) == 0 && c->stream == s->stream;
    if (has_child) {
        retire(r, s);
        reconcile(r);
        return;
    }
    /* Ask for its children now; a stream that shows a closed parent without
     * children yet is asked again soon. */
    if (!r->call && r->state == RD_RUNNING && !s->stream->gone) {
        uv_timer_stop(&r->timer);
        list_stream(r, s->stream, s->id); /* copies the id */
    } else {
        schedule(r, CHILDREN_RETRY_MS);
    }
    retire(r, s);
}

void reader_shard_gone(struct reader *r, struct shard *s)
{
    /* The service says the shard does not exist: list its stream again
     * soon (it expired, or the stream is new and not known everywhere yet),
     * and look at the table again (a new stream ARN, or the table deleted). */
    r->last_describe_table = 0;
    if (!r->call)
        schedule(r, CHILDREN_RETRY_MS);
}

/* ---- start, stop, acks ------------------------------------------------ */

int reader_start(struct reader *r)
{
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

static void maybe_stopped(struct reader *r)
{
    if (r->state != RD_STOPPING || r->timer_open || r->call || r->retiring)
        return;
    for (struct shard *s = r->shards; s; s = s->next)
        if (!shard_stopped(s))
            return;
    for (struct shard *s = r->detached; s; s = s->next)
        if (!shard_stopped(s))
            return;
    set_state(r, RD_STOPPED);
    if (r->stopped_cb)
        r->stopped_cb(r->stopped_arg);
}

void reader_shard_stopped(struct reader *r, struct shard *s)
{
    if (s->detached && !s->pending_docs && shard_stopped(s)) {
        for (struct shard **pp = &r->detached; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        shard_free(s);
    }
    maybe_stopped(r);
}

/* ---- leases (coordinated mode) ------------------------------------------ */

/* The shard's lease went (lost, or handed over): it leaves the list for the
 * detached ones, where it stays until its documents in the sink have
 * reported, and a fresh shard in wait-parent takes its place, to be read
 * again from its entry if the lease comes back. */
static void detach(struct reader *r, struct shard *s)
{
    struct shard *fresh = NULL;

    s->ck = NULL;
    shard_unlink(r, s);
    if (reader_active(r)) {
        fresh = shard_new(r, s->arn, s->id, s->parent_id, s->closed);
        if (fresh && shard_link(r, fresh) < 0) {
            shard_free(fresh);
            fresh = NULL;
        }
    }
    if (fresh) {
        fresh->stream = s->stream;
        fresh->listed_gen = s->listed_gen;
        fresh->unlisted = s->unlisted;
    }
    s->detached = true;
    s->next = r->detached;
    r->detached = s;
    shard_stop(s); /* its timer's close lets it go (reader_shard_stopped) */
}

struct handover {
    struct app *app;
    char *arn, *id;
};

static void handover_free(struct handover *h)
{
    free(h->arn);
    free(h->id);
    free(h);
}

static void on_handover_saved(struct ckpt *ck, int status, void *arg)
{
    struct handover *h = arg;

    if (status < 0)
        log_warn("shard %s: its checkpoint could not be saved before its lease was given back "
                 "(%s): its next owner reads again from the last one saved",
                 h->id, strerror(-status));
    if (h->app->lease && lease_give_back(h->app->lease, h->arn, h->id) == 0)
        log_info("shard %s: lease given back", h->id);
    handover_free(h);
}

/* Saves the checkpoint, then gives the lease back. */
static void hand_over(struct reader *r, const char *arn, const char *id)
{
    struct app *app = r->app;
    struct handover *h = calloc(1, sizeof(*h));

    if (h) {
        h->app = app;
        h->arn = strdup(arn);
        h->id = strdup(id);
    }
    if (!h || !h->arn || !h->id || app->dry_run ||
        ckpt_save_async(app->ckpt, app->loop, on_handover_saved, h) < 0) {
        if (app->lease)
            lease_give_back(app->lease, arn, id);
        if (h)
            handover_free(h);
    }
}

void reader_shard_yielded(struct reader *r, struct shard *s)
{
    logc_info(&r->log, "shard %s: what was in flight finished: saving its checkpoint and "
                       "giving its lease back",
              s->id);
    shard_checkpoint(s);
    hand_over(r, s->arn, s->id);
    detach(r, s);
}

void reader_lease_gained(struct reader *r, const char *arn, const char *id)
{
    struct shard *s = find_shard(r, arn, id);
    const struct ckpt_shard *ck;

    if (!reader_active(r))
        return;
    if (!s) {
        /* Not listed here yet: its item names it. */
        ck = ckpt_shard_get(r->app->ckpt, arn, id);
        if (!ck || ck->done)
            return;
        s = adopt(r, ck);
        if (!s) {
            logc_error(&r->log, "out of memory taking shard %s; trying again at the next listing",
                       id);
            return;
        }
    }
    logc_debug(&r->log, "shard %s: lease taken", id);
    /* Before the first listing the key schema is not known: the listing
     * starts it. */
    if (r->listed && s->state == SH_WAIT_PARENT)
        reconcile(r);
}

void reader_lease_lost(struct reader *r, const char *arn, const char *id, const char *why)
{
    struct shard *s = find_shard(r, arn, id);

    if (!s || s->state == SH_WAIT_PARENT)
        return; /* not read here */
    logc_warn(&r->log, "shard %s: lease lost (%s): reading stops; %zu records read and not "
                       "acknowledged are left to its next owner",
              id, why, ack_pending(s->ack));
    s->lost = true;
    s->ck = NULL;
    if (reader_active(r))
        detach(r, s);
}

void reader_lease_yield(struct reader *r, const char *arn, const char *id)
{
    struct shard *s = find_shard(r, arn, id);

    if (!reader_active(r))
        return; /* stopping: every lease is released at the end */
    if (!s || s->state == SH_WAIT_PARENT) {
        lease_give_back(r->app->lease, arn, id); /* nothing read here */
        return;
    }
    logc_info(&r->log, "shard %s: another worker asked for its lease: finishing what is in "
                       "flight, then handing it over",
              id);
    shard_yield(s);
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
    set_state(r, RD_STOPPING);
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
