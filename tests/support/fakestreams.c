#include "tests/support/fakestreams.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <zlib.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "aws/sigv4.h"
#include "tests/support/fakehttp.h"
#include "tests/support/sigv4check.h"

#define MAX_SHARDS 64
#define MAX_STREAMS 4
#define MAX_HELD 256 /* replies held at once, per op (the daemon opens at most a few connections) */

#define fs_record fs_rec /* the header's type */

struct fs_shard {
    char id[64];
    int parent;
    int stream;
    bool closed, hidden, expired;
    struct fs_record *recs;
    size_t n, cap, trim;
    unsigned reads;
    unsigned long first_read_tick, end_read_tick;
    char after_seq[32];
};

/* Replies of one op held back by fs_delay: when each is due. */
struct fs_held {
    long delay_ms;
    int64_t due[MAX_HELD];
    unsigned n, max;
};

#define MAX_CALL_TIMES 1024

struct fs_fault {
    int count, status;
    char type[128];
};

struct fakestreams {
    struct fakehttp *http;
    pthread_mutex_t mu;
    char table[128];
    char arn[MAX_STREAMS][256];
    int nstreams;
    bool table_gone;
    struct fs_shard shards[MAX_SHARDS];
    int nshards;
    uint64_t next_seq;
    int page_size;
    size_t pad;
    struct fs_fault faults[FS_NOPS];
    unsigned calls[FS_NOPS];
    long limit_min, limit_max; /* of the GetRecords calls since fs_limits */
    struct fs_held held[FS_NOPS];
    unsigned long tick;
    bool verify;
    char akid[64], secret[128], token[1024];
    unsigned rejected;
    char view[32];
    int bad_reply[FS_NOPS];
    struct fs_item { char id[64], v[64]; bool live; } *items; /* the table, for BatchGetItem */
    size_t nitems, capitems;
    size_t *slots, nslots;  /* index of items by id: 1 + position, 0 = free (open addressing) */
    int unprocessed, unprocessed_answered; /* fs_unprocessed */
    int64_t call_at[FS_NOPS][MAX_CALL_TIMES]; /* fs_call_times */
};

/* The received headers, for sigv4_verify: lower-case names, values trimmed. */
struct headers {
    size_t n;
    char *name[64], *value[64];
};

static void headers_parse(struct headers *h, const char *raw)
{
    const char *line = raw;

    h->n = 0;
    while (line && *line && h->n < 64) {
        const char *eol = strstr(line, "\r\n"), *colon;
        size_t len = eol ? (size_t)(eol - line) : strlen(line);

        colon = memchr(line, ':', len);
        if (colon) {
            const char *v = colon + 1;
            size_t vl;

            while (v < line + len && (*v == ' ' || *v == '\t'))
                v++;
            vl = (size_t)(line + len - v);
            h->name[h->n] = strndup(line, (size_t)(colon - line));
            for (char *c = h->name[h->n]; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            h->value[h->n++] = strndup(v, vl);
        }
        line = eol ? eol + 2 : NULL;
    }
}

static void headers_free(struct headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->name[i]);
        free(h->value[i]);
    }
}

static const char *header_get(void *ctx, const char *name)
{
    struct headers *h = ctx;

    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

static const char *const op_target[FS_NOPS] = {
    [FS_DESCRIBE_TABLE] = "DynamoDB_20120810.DescribeTable",
    [FS_DESCRIBE_STREAM] = "DynamoDBStreams_20120810.DescribeStream",
    [FS_GET_SHARD_ITERATOR] = "DynamoDBStreams_20120810.GetShardIterator",
    [FS_GET_RECORDS] = "DynamoDBStreams_20120810.GetRecords",
    [FS_BATCH_GET_ITEM] = "DynamoDB_20120810.BatchGetItem",
    [FS_LIST_STREAMS] = "DynamoDBStreams_20120810.ListStreams",
};

/* fakehttp copies the reply when the handler returns; the text lives in
 * fs->body until the next reply (one server thread). */
static char *reply_body;

/* The body as it is, with the CRC32 DynamoDB sends of every body. */
static void reply_text(struct fake_reply *out, int status, char *text)
{
    static char headers[128];

    free(reply_body);
    reply_body = text;
    snprintf(headers, sizeof(headers),
             "Content-Type: application/x-amz-json-1.0\r\nx-amz-crc32: %lu\r\n",
             crc32(0L, (const Bytef *)text, (uInt)strlen(text)));
    out->status = status;
    out->headers = headers;
    out->body = reply_body;
}

static void reply_json(struct fake_reply *out, int status, json_t *j)
{
    reply_text(out, status, jsonx_dumps(j, NULL));
    json_decref(j);
}

static void reply_error(struct fake_reply *out, int status, const char *type, const char *msg)
{
    reply_json(out, status, json_pack("{s:s, s:s}", "__type", type, "message", msg));
}

static int shard_by_id(struct fakestreams *fs, const char *id)
{
    for (int i = 0; i < fs->nshards; i++)
        if (id && strcmp(fs->shards[i].id, id) == 0)
            return i;
    return -1;
}

static int stream_by_arn(struct fakestreams *fs, const char *arn)
{
    for (int i = 0; i < fs->nstreams; i++)
        if (arn && strcmp(fs->arn[i], arn) == 0)
            return i;
    return -1;
}

static json_t *shard_json(struct fakestreams *fs, struct fs_shard *s)
{
    json_t *range = json_object();
    json_t *j;
    char start[32];

    snprintf(start, sizeof(start), "%021" PRIu64, (uint64_t)(s - fs->shards) * 1000000 + 1);
    json_object_set_new(range, "StartingSequenceNumber",
                        json_string(s->n ? s->recs[0].seq : start));
    if (s->closed)
        json_object_set_new(range, "EndingSequenceNumber",
                            json_string(s->n ? s->recs[s->n - 1].seq : start));
    j = json_pack("{s:s, s:o}", "ShardId", s->id, "SequenceNumberRange", range);
    if (s->parent >= 0)
        json_object_set_new(j, "ParentShardId", json_string(fs->shards[s->parent].id));
    return j;
}

static void describe_table(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    const char *name = json_string_value(json_object_get(req, "TableName"));

    if (fs->table_gone || !name || strcmp(name, fs->table) != 0) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Requested resource not found");
        return;
    }
    reply_json(out, 200,
               json_pack("{s:{s:s, s:[{s:s, s:s}], s:s, s:{s:b, s:s}, s:s}}", "Table",
                         "TableName", fs->table, "KeySchema", "AttributeName", "id", "KeyType",
                         "HASH", "LatestStreamArn", fs->arn[fs->nstreams - 1],
                         "StreamSpecification", "StreamEnabled", 1, "StreamViewType",
                         fs->view, "TableStatus", "ACTIVE"));
}

/* Pages of page_size shards, in creation order; ExclusiveStartShardId and
 * LastEvaluatedShardId as documented (REFERENCE.md Streams fact 8). */
static void describe_stream(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    const char *arn = json_string_value(json_object_get(req, "StreamArn"));
    const char *after = json_string_value(json_object_get(req, "ExclusiveStartShardId"));
    json_t *filter = json_object_get(req, "ShardFilter");
    const char *parent_id = json_string_value(json_object_get(filter, "ShardId"));
    int stream = stream_by_arn(fs, arn), start = 0, limit = fs->page_size, parent = -1;
    json_t *shards = json_array(), *desc;
    int i, last = -1;

    if (stream < 0) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Requested resource not found: Stream not found");
        return;
    }
    if (json_integer_value(json_object_get(req, "Limit")) > 0 &&
        json_integer_value(json_object_get(req, "Limit")) < limit)
        limit = (int)json_integer_value(json_object_get(req, "Limit"));
    if (after)
        start = shard_by_id(fs, after) + 1;
    if (filter)
        parent = shard_by_id(fs, parent_id);
    for (i = start; i < fs->nshards && (int)json_array_size(shards) < limit; i++) {
        struct fs_shard *s = &fs->shards[i];

        if (s->stream != stream || s->hidden || s->expired || (filter && s->parent != parent))
            continue;
        json_array_append_new(shards, shard_json(fs, s));
        last = i;
    }
    desc = json_pack("{s:s, s:s, s:s, s:o}", "StreamArn", arn, "StreamStatus",
                     stream == fs->nstreams - 1 ? "ENABLED" : "DISABLED", "StreamViewType",
                     fs->view, "Shards", shards);
    for (; i < fs->nshards; i++) /* more to come? */
        if (fs->shards[i].stream == stream && !fs->shards[i].hidden && !fs->shards[i].expired &&
            (!filter || fs->shards[i].parent == parent))
            break;
    if (i < fs->nshards && last >= 0)
        json_object_set_new(desc, "LastEvaluatedShardId", json_string(fs->shards[last].id));
    reply_json(out, 200, json_pack("{s:o}", "StreamDescription", desc));
}

static size_t pos_after(struct fs_shard *s, const char *seq)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->recs[i].seq, seq) > 0)
            break;
    return i;
}

/* Iterators are "<shard>/<position>"; the real ones are opaque too. */
static void get_shard_iterator(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    int sh = shard_by_id(fs, json_string_value(json_object_get(req, "ShardId")));
    const char *type = json_string_value(json_object_get(req, "ShardIteratorType"));
    const char *seq = json_string_value(json_object_get(req, "SequenceNumber"));
    struct fs_shard *s;
    size_t pos = 0;
    char it[64];

    if (sh < 0 || fs->shards[sh].expired) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Shard does not exist");
        return;
    }
    s = &fs->shards[sh];
    if (!type)
        type = "";
    if (strcmp(type, "TRIM_HORIZON") == 0)
        pos = s->trim;
    else if (strcmp(type, "LATEST") == 0)
        pos = s->n;
    else if (strcmp(type, "AFTER_SEQUENCE_NUMBER") == 0 && seq) {
        pos = pos_after(s, seq);
        snprintf(s->after_seq, sizeof(s->after_seq), "%s", seq);
    } else if (strcmp(type, "AT_SEQUENCE_NUMBER") == 0 && seq) {
        pos = pos_after(s, seq);
        pos = pos ? pos - 1 : 0;
    } else {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    "Invalid ShardIteratorType.");
        return;
    }
    snprintf(it, sizeof(it), "%d/%zu", sh, pos);
    reply_json(out, 200, json_pack("{s:s}", "ShardIterator", it));
}

static json_t *image(const struct fs_record *r, size_t pad)
{
    json_t *img = json_pack("{s:{s:s}, s:{s:s}}", "id", "S", r->id, "v", "N", r->v);
    char *p;

    if (pad) {
        p = malloc(pad + 1);
        cr_assert_not_null(p);
        memset(p, 'p', pad);
        p[pad] = '\0';
        json_object_set_new(img, "pad", json_pack("{s:s}", "S", p));
        free(p);
    }
    return img;
}

/* One record's text: built from its fields, or its raw text. */
static void record_text(struct fakestreams *fs, const struct fs_record *r, struct buf *out)
{
    json_t *dyn, *rec;
    char *t;

    if (r->raw) {
        const char *p = r->raw, *q;

        while ((q = strstr(p, "@SEQ@"))) {
            buf_append(out, p, (size_t)(q - p));
            buf_puts(out, r->seq);
            p = q + 5;
        }
        buf_puts(out, p);
        return;
    }
    dyn = json_pack("{s:I, s:{s:{s:s}}, s:s, s:i, s:s}", "ApproximateCreationDateTime",
                    (json_int_t)r->created, "Keys", "id", "S", r->id, "SequenceNumber", r->seq,
                    "SizeBytes", 10, "StreamViewType", fs->view);
    if (strcmp(r->event, "REMOVE") != 0 && strcmp(fs->view, "KEYS_ONLY") != 0)
        json_object_set_new(dyn, "NewImage", image(r, fs->pad));
    rec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "eventID", r->seq, "eventName", r->event,
                    "eventVersion", "1.1", "eventSource", "aws:dynamodb", "awsRegion",
                    "us-east-1", "dynamodb", dyn);
    t = json_dumps(rec, JSON_COMPACT);
    buf_puts(out, t);
    free(t);
    json_decref(rec);
}

static void get_records(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    const char *it = json_string_value(json_object_get(req, "ShardIterator"));
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    struct buf text;
    struct fs_shard *s;
    int sh = -1;
    size_t pos = 0, i;

    if (!it || sscanf(it, "%d/%zu", &sh, &pos) != 2 || sh < 0 || sh >= fs->nshards) {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    "Invalid ShardIterator");
        return;
    }
    s = &fs->shards[sh];
    if (s->expired) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Invalid ShardId in ShardIterator");
        return;
    }
    if (pos < s->trim) { /* the iterator points at trimmed records (Streams fact 6) */
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException",
                    "The operation attempted to read past the oldest stream record in a shard.");
        return;
    }
    s->reads++;
    if (!s->first_read_tick)
        s->first_read_tick = ++fs->tick;
    if (limit <= 0 || limit > 1000)
        limit = 1000;
    if (!fs->limit_min || limit < fs->limit_min)
        fs->limit_min = (long)limit;
    if (limit > fs->limit_max)
        fs->limit_max = (long)limit;
    buf_init(&text, BUF_NOMAX);
    buf_puts(&text, "{\"Records\":[");
    for (i = pos; i < s->n && (json_int_t)(i - pos) < limit; i++) {
        if (i > pos)
            buf_putc(&text, ',');
        record_text(fs, &s->recs[i], &text);
    }
    buf_putc(&text, ']');
    /* Only a closed shard read to its end has no NextShardIterator (fact 2). */
    if (s->closed && i == s->n)
        s->end_read_tick = ++fs->tick;
    else
        buf_printf(&text, ",\"NextShardIterator\":\"%d/%zu\"", sh, i);
    buf_putc(&text, '}');
    reply_text(out, 200, buf_take(&text));
}

static size_t item_hash(const char *id)
{
    size_t h = 1469598103934665603u;

    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return h;
}

/* The item of id (added when add is set): a hash index over the array, so
 * that tests putting tens of thousands of records stay linear. */
static struct fs_item *item_get(struct fakestreams *fs, const char *id, bool add)
{
    size_t i;

    if (fs->nslots) {
        for (i = item_hash(id) & (fs->nslots - 1); fs->slots[i]; i = (i + 1) & (fs->nslots - 1))
            if (strcmp(fs->items[fs->slots[i] - 1].id, id) == 0)
                return &fs->items[fs->slots[i] - 1];
    }
    if (!add)
        return NULL;
    if (fs->nitems == fs->capitems) {
        fs->capitems = fs->capitems ? fs->capitems * 2 : 64;
        fs->items = realloc(fs->items, fs->capitems * sizeof(*fs->items));
        cr_assert_not_null(fs->items);
    }
    if ((fs->nitems + 1) * 2 > fs->nslots) {
        free(fs->slots);
        fs->nslots = fs->nslots ? fs->nslots * 2 : 128;
        fs->slots = calloc(fs->nslots, sizeof(*fs->slots));
        cr_assert_not_null(fs->slots);
        for (size_t k = 0; k < fs->nitems; k++) {
            for (i = item_hash(fs->items[k].id) & (fs->nslots - 1); fs->slots[i];
                 i = (i + 1) & (fs->nslots - 1))
                ;
            fs->slots[i] = k + 1;
        }
    }
    memset(&fs->items[fs->nitems], 0, sizeof(*fs->items));
    snprintf(fs->items[fs->nitems].id, sizeof(fs->items->id), "%s", id);
    for (i = item_hash(fs->items[fs->nitems].id) & (fs->nslots - 1); fs->slots[i];
         i = (i + 1) & (fs->nslots - 1))
        ;
    fs->slots[i] = fs->nitems + 1;
    return &fs->items[fs->nitems++];
}

/* The table's current items, as a consistent read returns them; keys
 * without an item are left out (API_BatchGetItem.html). */
static void batch_get_item(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    json_t *keys = json_object_get(json_object_get(json_object_get(req, "RequestItems"), fs->table),
                                   "Keys");
    json_t *items = json_array(), *k, *unproc = NULL;
    size_t i;

    if (!json_is_array(keys) || json_array_size(keys) == 0 || json_array_size(keys) > 100) {
        json_decref(items);
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    "Too many items requested for the BatchGetItem call");
        return;
    }
    if (fs->unprocessed > 0) {
        fs->unprocessed--;
        unproc = json_array();
    }
    json_array_foreach(keys, i, k)
    {
        const char *id = json_string_value(json_object_get(json_object_get(k, "id"), "S"));
        struct fs_item *it = id ? item_get(fs, id, false) : NULL;

        for (size_t j = 0; j < i; j++)
            if (json_equal(json_array_get(keys, j), k)) {
                json_decref(items);
                json_decref(unproc);
                reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                            "Provided list of item keys contains duplicates");
                return;
            }
        if (unproc && (int)i >= fs->unprocessed_answered)
            json_array_append(unproc, k);
        else if (it && it->live)
            json_array_append_new(items, json_pack("{s:{s:s}, s:{s:s}}", "id", "S", it->id, "v",
                                                   "N", it->v));
    }
    /* UnprocessedKeys has the shape of RequestItems: per table, the keys
     * and the read options asked for (API_BatchGetItem.html). */
    if (unproc && !json_array_size(unproc)) {
        json_decref(unproc); /* every key answered */
        unproc = NULL;
    }
    if (unproc) {
        json_t *cr = json_object_get(
            json_object_get(json_object_get(req, "RequestItems"), fs->table), "ConsistentRead");

        reply_json(out, 200,
                   json_pack("{s:{s:o}, s:{s:{s:o, s:O}}}", "Responses", fs->table, items,
                             "UnprocessedKeys", fs->table, "Keys", unproc, "ConsistentRead",
                             cr ? cr : json_false()));
    } else {
        reply_json(out, 200,
                   json_pack("{s:{s:o}, s:{}}", "Responses", fs->table, items, "UnprocessedKeys"));
    }
}

/* Every stream of the table, newest first as the service lists them. */
static void list_streams(struct fakestreams *fs, json_t *req, struct fake_reply *out)
{
    json_t *streams = json_array();

    for (int i = fs->nstreams - 1; i >= 0; i--)
        json_array_append_new(streams,
                              json_pack("{s:s, s:s, s:s}", "StreamArn", fs->arn[i], "TableName",
                                        fs->table, "StreamLabel", strstr(fs->arn[i], "/stream/") + 8));
    reply_json(out, 200, json_pack("{s:o}", "Streams", streams));
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Holds the reply for the op's delay and counts the calls held now.  fakehttp
 * sends a reply once its delay is over, from one thread that keeps reading
 * other connections meanwhile, so a reply due no later than now is out (or
 * about to be): one due later is a call still in flight. */
static void hold(struct fakestreams *fs, int op, struct fake_reply *out)
{
    struct fs_held *h = &fs->held[op];
    int64_t now = now_ms();
    unsigned kept = 0;

    for (unsigned i = 0; i < h->n && i < MAX_HELD; i++)
        if (h->due[i] > now)
            h->due[kept++] = h->due[i];
    h->n = kept;
    if (h->n < MAX_HELD)
        h->due[h->n] = now + h->delay_ms;
    h->n++;
    if (h->n > h->max)
        h->max = h->n;
    out->delay_ms = h->delay_ms;
}

static void handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    struct fakestreams *fs = arg;
    const char *target = NULL;
    json_t *body = jsonx_loadb(req->body, req->body_len, 0, NULL);
    int op;

    {
        const char *p = strcasestr(req->headers, "x-amz-target:");
        static char t[128];

        if (p) {
            p += strlen("x-amz-target:");
            while (*p == ' ')
                p++;
            snprintf(t, sizeof(t), "%.*s", (int)strcspn(p, "\r\n"), p);
            target = t;
        }
    }
    pthread_mutex_lock(&fs->mu);
    for (op = 0; op < FS_NOPS; op++)
        if (target && strcmp(target, op_target[op]) == 0)
            break;
    if (fs->verify) {
        struct headers h;
        struct sigv4_key key = { fs->akid, fs->secret, fs->token[0] ? fs->token : NULL };
        char msg[512], path[256];
        const char *q = strchr(req->path, '?');
        int rc;

        snprintf(path, sizeof(path), "%.*s", (int)(q ? q - req->path : (long)strlen(req->path)),
                 req->path);
        headers_parse(&h, req->headers);
        rc = sigv4_verify(&(struct sigv4_check){ .method = req->method, .path = path,
                                                 .query = q ? q + 1 : NULL, .header = header_get,
                                                 .ctx = &h, .body = req->body,
                                                 .body_len = req->body_len,
                                                 .region = "us-east-1", .service = "dynamodb",
                                                 .key = &key, .now = time(NULL) },
                          msg, sizeof(msg));
        headers_free(&h);
        if (rc != 0) {
            fs->rejected++;
            reply_error(out, 400,
                        strstr(msg, "security token")
                            ? "com.amazon.coral.service#UnrecognizedClientException"
                            : "com.amazon.coral.service#InvalidSignatureException",
                        msg);
            if (op < FS_NOPS)
                hold(fs, op, out);
            pthread_mutex_unlock(&fs->mu);
            json_decref(body);
            return;
        }
    }
    if (op < FS_NOPS && fs->calls[op] < MAX_CALL_TIMES)
        fs->call_at[op][fs->calls[op]] = now_ms();
    if (op == FS_NOPS) {
        reply_error(out, 400, "com.amazon.coral.service#UnknownOperationException", "unknown");
    } else if (fs->calls[op]++, fs->faults[op].count > 0) {
        fs->faults[op].count--;
        reply_error(out, fs->faults[op].status, fs->faults[op].type, "injected");
    } else if (fs->bad_reply[op] > 0) {
        /* A body the service sent so: its CRC matches, its text is no JSON. */
        fs->bad_reply[op]--;
        reply_text(out, 200, strdup("{\"Responses\":{\"t\":[{\"id\":{\"S\":\"a\"}} <truncated"));
    } else if (op == FS_DESCRIBE_TABLE) {
        describe_table(fs, body, out);
    } else if (op == FS_DESCRIBE_STREAM) {
        describe_stream(fs, body, out);
    } else if (op == FS_GET_SHARD_ITERATOR) {
        get_shard_iterator(fs, body, out);
    } else if (op == FS_GET_RECORDS) {
        get_records(fs, body, out);
    } else if (op == FS_BATCH_GET_ITEM) {
        batch_get_item(fs, body, out);
    } else if (op == FS_LIST_STREAMS) {
        list_streams(fs, body, out);
    } else {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException", "not modelled");
    }
    if (op < FS_NOPS)
        hold(fs, op, out);
    pthread_mutex_unlock(&fs->mu);
    json_decref(body);
}

struct fakestreams *fs_start(const char *table)
{
    struct fakestreams *fs = calloc(1, sizeof(*fs));

    cr_assert_not_null(fs);
    pthread_mutex_init(&fs->mu, NULL);
    snprintf(fs->table, sizeof(fs->table), "%s", table);
    snprintf(fs->arn[0], sizeof(fs->arn[0]),
             "arn:aws:dynamodb:us-east-1:123456789012:table/%s/stream/2026-01-01T00:00:00.000",
             table);
    fs->nstreams = 1;
    fs->page_size = 100;
    snprintf(fs->view, sizeof(fs->view), "NEW_AND_OLD_IMAGES");
    fs->next_seq = 100000000000000000ull;
    fs->http = fake_start();
    fake_set_handler(fs->http, handler, fs);
    return fs;
}

void fs_stop(struct fakestreams *fs)
{
    fake_stop(fs->http);
    free(reply_body);
    reply_body = NULL;
    for (int i = 0; i < fs->nshards; i++) {
        for (size_t j = 0; j < fs->shards[i].n; j++)
            free((char *)fs->shards[i].recs[j].raw);
        free(fs->shards[i].recs);
    }
    free(fs->items);
    free(fs->slots);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}

const char *fs_url(const struct fakestreams *fs)
{
    return fake_url(fs->http);
}

const char *fs_arn(const struct fakestreams *fs)
{
    return fs->arn[fs->nstreams - 1];
}

int fs_add_shard(struct fakestreams *fs, int parent, bool hidden)
{
    struct fs_shard *s;
    int i;

    pthread_mutex_lock(&fs->mu);
    cr_assert_lt(fs->nshards, MAX_SHARDS);
    i = fs->nshards++;
    s = &fs->shards[i];
    memset(s, 0, sizeof(*s));
    {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(s->id, sizeof(s->id), "shardId-%020lld-%08x",
                 (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + i, 0xabc00000u + (unsigned)i);
    }
    s->parent = parent;
    s->stream = fs->nstreams - 1;
    s->hidden = hidden;
    pthread_mutex_unlock(&fs->mu);
    return i;
}

void fs_show(struct fakestreams *fs, int shard)
{
    pthread_mutex_lock(&fs->mu);
    fs->shards[shard].hidden = false;
    pthread_mutex_unlock(&fs->mu);
}

void fs_hide(struct fakestreams *fs, int shard)
{
    pthread_mutex_lock(&fs->mu);
    fs->shards[shard].hidden = true;
    pthread_mutex_unlock(&fs->mu);
}

void fs_close_shard(struct fakestreams *fs, int shard)
{
    pthread_mutex_lock(&fs->mu);
    fs->shards[shard].closed = true;
    pthread_mutex_unlock(&fs->mu);
}

uint64_t fs_put(struct fakestreams *fs, int shard, const char *event, const char *id,
                const char *v, int64_t created)
{
    struct fs_shard *s = &fs->shards[shard];
    struct fs_record *r;
    uint64_t seq;

    pthread_mutex_lock(&fs->mu);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
        cr_assert_not_null(s->recs);
    }
    r = &s->recs[s->n++];
    memset(r, 0, sizeof(*r));
    /* Real sequence numbers grow but are neither contiguous nor fixed-length. */
    seq = fs->next_seq += 1 + (fs->next_seq % 3);
    snprintf(r->seq, sizeof(r->seq), "%" PRIu64 "0000", seq);
    snprintf(r->event, sizeof(r->event), "%s", event);
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->v, sizeof(r->v), "%s", v ? v : "0");
    r->created = created;
    {
        struct fs_item *it = item_get(fs, id, true);

        it->live = strcmp(event, "REMOVE") != 0;
        snprintf(it->v, sizeof(it->v), "%s", r->v);
    }
    pthread_mutex_unlock(&fs->mu);
    return seq;
}

uint64_t fs_put_raw(struct fakestreams *fs, int shard, const char *text)
{
    struct fs_shard *s = &fs->shards[shard];
    struct fs_record *r;
    uint64_t seq;

    pthread_mutex_lock(&fs->mu);
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->recs = realloc(s->recs, s->cap * sizeof(*s->recs));
        cr_assert_not_null(s->recs);
    }
    r = &s->recs[s->n++];
    memset(r, 0, sizeof(*r));
    seq = fs->next_seq += 1 + (fs->next_seq % 3);
    snprintf(r->seq, sizeof(r->seq), "%" PRIu64 "0000", seq);
    snprintf(r->event, sizeof(r->event), "RAW");
    r->raw = strdup(text);
    cr_assert_not_null(r->raw);
    pthread_mutex_unlock(&fs->mu);
    return seq;
}

void fs_expire_shard(struct fakestreams *fs, int shard)
{
    pthread_mutex_lock(&fs->mu);
    fs->shards[shard].expired = true;
    pthread_mutex_unlock(&fs->mu);
}

void fs_shard_created(struct fakestreams *fs, int shard, int64_t epoch_ms)
{
    pthread_mutex_lock(&fs->mu);
    snprintf(fs->shards[shard].id, sizeof(fs->shards[shard].id), "shardId-%020lld-%08x",
             (long long)epoch_ms, 0xabc00000u + (unsigned)shard);
    pthread_mutex_unlock(&fs->mu);
}

void fs_view(struct fakestreams *fs, const char *view)
{
    pthread_mutex_lock(&fs->mu);
    snprintf(fs->view, sizeof(fs->view), "%s", view);
    pthread_mutex_unlock(&fs->mu);
}

void fs_bad_reply(struct fakestreams *fs, enum fs_op op, int count)
{
    pthread_mutex_lock(&fs->mu);
    fs->bad_reply[op] = count;
    pthread_mutex_unlock(&fs->mu);
}

void fs_pad(struct fakestreams *fs, size_t n)
{
    pthread_mutex_lock(&fs->mu);
    fs->pad = n;
    pthread_mutex_unlock(&fs->mu);
}

size_t fs_records(struct fakestreams *fs, int shard, struct fs_rec *out, size_t max)
{
    size_t n;

    pthread_mutex_lock(&fs->mu);
    n = fs->shards[shard].n;
    if (out)
        memcpy(out, fs->shards[shard].recs, (n < max ? n : max) * sizeof(*out));
    pthread_mutex_unlock(&fs->mu);
    return n;
}

const char *fs_shard_id(struct fakestreams *fs, int shard)
{
    return fs->shards[shard].id;
}

void fs_trim(struct fakestreams *fs, int shard, size_t n)
{
    pthread_mutex_lock(&fs->mu);
    fs->shards[shard].trim = n;
    pthread_mutex_unlock(&fs->mu);
}

void fs_fail(struct fakestreams *fs, enum fs_op op, int count, int status, const char *type)
{
    pthread_mutex_lock(&fs->mu);
    fs->faults[op].count = count;
    fs->faults[op].status = status;
    snprintf(fs->faults[op].type, sizeof(fs->faults[op].type), "%s", type);
    pthread_mutex_unlock(&fs->mu);
}

void fs_page_size(struct fakestreams *fs, int n)
{
    pthread_mutex_lock(&fs->mu);
    fs->page_size = n;
    pthread_mutex_unlock(&fs->mu);
}

int fs_new_stream(struct fakestreams *fs)
{
    int s;

    pthread_mutex_lock(&fs->mu);
    cr_assert_lt(fs->nstreams, MAX_STREAMS);
    for (int i = 0; i < fs->nshards; i++) /* disabling closes every open shard (fact 14) */
        fs->shards[i].closed = true;
    snprintf(fs->arn[fs->nstreams], sizeof(fs->arn[0]),
             "arn:aws:dynamodb:us-east-1:123456789012:table/%s/stream/2026-01-0%dT00:00:00.000",
             fs->table, fs->nstreams + 1);
    fs->nstreams++;
    pthread_mutex_unlock(&fs->mu);
    s = fs_add_shard(fs, -1, false);
    return s;
}

void fs_delete_table(struct fakestreams *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->table_gone = true;
    for (int i = 0; i < fs->nshards; i++)
        fs->shards[i].closed = true;
    pthread_mutex_unlock(&fs->mu);
}

void fs_verify(struct fakestreams *fs, const char *akid, const char *secret, const char *token)
{
    pthread_mutex_lock(&fs->mu);
    fs->verify = true;
    snprintf(fs->akid, sizeof(fs->akid), "%s", akid);
    snprintf(fs->secret, sizeof(fs->secret), "%s", secret);
    snprintf(fs->token, sizeof(fs->token), "%s", token ? token : "");
    pthread_mutex_unlock(&fs->mu);
}

unsigned fs_rejected(struct fakestreams *fs)
{
    unsigned n;

    pthread_mutex_lock(&fs->mu);
    n = fs->rejected;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

unsigned fs_calls(struct fakestreams *fs, enum fs_op op)
{
    unsigned n;

    pthread_mutex_lock(&fs->mu);
    n = fs->calls[op];
    pthread_mutex_unlock(&fs->mu);
    return n;
}

void fs_delay(struct fakestreams *fs, enum fs_op op, long ms)
{
    pthread_mutex_lock(&fs->mu);
    fs->held[op].delay_ms = ms;
    pthread_mutex_unlock(&fs->mu);
}

void fs_limits(struct fakestreams *fs, long *min, long *max)
{
    pthread_mutex_lock(&fs->mu);
    *min = fs->limit_min;
    *max = fs->limit_max;
    fs->limit_min = fs->limit_max = 0;
    pthread_mutex_unlock(&fs->mu);
}

unsigned fs_max_inflight(struct fakestreams *fs, enum fs_op op)
{
    unsigned n;

    pthread_mutex_lock(&fs->mu);
    n = fs->held[op].max;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

unsigned fs_shard_reads(struct fakestreams *fs, int shard)
{
    unsigned n;

    pthread_mutex_lock(&fs->mu);
    n = fs->shards[shard].reads;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

void fs_last_after_seq(struct fakestreams *fs, int shard, char *out, size_t len)
{
    pthread_mutex_lock(&fs->mu);
    snprintf(out, len, "%s", fs->shards[shard].after_seq);
    pthread_mutex_unlock(&fs->mu);
}

bool fs_child_read_after_parent_end(struct fakestreams *fs, int parent, int child)
{
    bool ok;

    pthread_mutex_lock(&fs->mu);
    ok = fs->shards[parent].end_read_tick &&
         fs->shards[child].first_read_tick > fs->shards[parent].end_read_tick;
    pthread_mutex_unlock(&fs->mu);
    return ok;
}

void fs_unprocessed(struct fakestreams *fs, int count, int answered)
{
    pthread_mutex_lock(&fs->mu);
    fs->unprocessed = count;
    fs->unprocessed_answered = answered;
    pthread_mutex_unlock(&fs->mu);
}

size_t fs_call_times(struct fakestreams *fs, enum fs_op op, int64_t *out, size_t max)
{
    size_t n;

    pthread_mutex_lock(&fs->mu);
    n = fs->calls[op] < MAX_CALL_TIMES ? fs->calls[op] : MAX_CALL_TIMES;
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = fs->call_at[op][i];
    pthread_mutex_unlock(&fs->mu);
    return n;
}
