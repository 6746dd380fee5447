/* streamsd — a DynamoDB Streams stand-in for the benchmarks: serves
 * DescribeTable, DescribeStream, GetShardIterator and GetRecords from a
 * corpus held in memory (corpus.c's lines), spread over N open shards, on
 * the test HTTP server (tests/support/fakehttp).  Unlike the test stand-in
 * (tests/support/fakestreams), it models no faults and checks no
 * signatures: it is there to be fast and to count.
 *
 *   streamsd --corpus FILE [--shards N] [--limit RECORDS] --port-file PATH
 *
 * Table "posts" (author HASH, ts RANGE), NEW_AND_OLD_IMAGES.  A record goes
 * to the shard its key hashes to, so one key's records stay in order.
 * A page holds at most 1000 records and 1 MB, as with the real service.
 * Iterators are "<shard>/<position>": the same GetRecords body always gets
 * the same page, which lets a load generator measure this server's ceiling.
 *
 * Control (plain HTTP, no X-Amz-Target):
 *   POST /_streamsd/release {"count":K}  appends K new INSERT records
 *        (keys "probe-N", created now), one per shard in turn;
 *   GET  /_streamsd/stats  {"connections":..,"getrecords":..,"served":..,"records":..,
 *        "probes":..,"probes_served":..,"last_probe_served_ms":..}
 *        served counts records handed out in a GetRecords reply (each once);
 *        last_probe_served_ms is the wall clock (ms) when the last probe was
 *        first handed out.
 *   POST /_streamsd/dump {"file":PATH}  writes every record held (probes
 *        too), shard after shard, each in its shard's order, as one line
 *        {"shardId":"<shard>","Records":[<record>]}: what the daemon was
 *        given, in the form `ddb2es replay --format stream` and
 *        bench/lastimages read, with its shard.  Answers {"records":N}.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "base/buf.h"
#include "tests/support/fakehttp.h"

#define TABLE "posts"
#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/posts/stream/2024-11-22T10:00:00.000"
#define PAGE_MAX 1000        /* GetRecords: at most 1000 records... */
#define PAGE_BYTES (1 << 20) /* ...or 1 MB, as in DynamoDB Streams (not DynamoDB Local) */
#define LIST_PAGE 100        /* shards per DescribeStream page, as in DynamoDB Streams */
#define TARGET_PREFIX "DynamoDBStreams_20120810."

struct rec {
    const char *text;   /* one record's JSON, no newline */
    size_t len;
    char seq[24];
    bool served;
    bool probe;
};

struct shard {
    char id[64];
    struct rec **recs;  /* in sequence order */
    size_t n, cap;
};

static struct {
    struct shard *shards;
    size_t nshards;
    size_t nrecs, served, getrecords;
    size_t probes, probes_served, next_probe_shard;
    int64_t last_probe_served_ms;
    uint64_t next_probe_seq;
    struct buf out;     /* the reply being built */
    struct fakehttp *http;
} sd;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t fnv(const char *s, uint64_t h)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int shard_add(struct shard *s, struct rec *r)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 64;
        struct rec **v = realloc(s->recs, ncap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        s->recs = v;
        s->cap = ncap;
    }
    s->recs[s->n++] = r;
    sd.nrecs++;
    return 0;
}

/* Reads up to limit lines of the corpus; each goes to its key's shard. */
static int load(const char *path, size_t limit)
{
    FILE *fp = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;

    if (!fp) {
        fprintf(stderr, "streamsd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (n < limit && (len = getline(&line, &cap, fp)) > 0) {
        json_t *rec, *keys;
        const char *seq;
        struct rec *r = calloc(1, sizeof(*r));

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        rec = json_loadb(line, (size_t)len, 0, NULL);
        keys = json_object_get(json_object_get(rec, "dynamodb"), "Keys");
        seq = json_string_value(json_object_get(json_object_get(rec, "dynamodb"), "SequenceNumber"));
        if (!r || !rec || !seq || strlen(seq) >= sizeof(r->seq)) {
            fprintf(stderr, "streamsd: %s:%zu: not a stream record\n", path, n + 1);
            return -1;
        }
        snprintf(r->seq, sizeof(r->seq), "%s", seq);
        r->text = strdup(line);
        r->len = (size_t)len;
        if (!r->text ||
            shard_add(&sd.shards[fnv(json_string_value(json_object_get(
                                         json_object_get(keys, "ts"), "N")),
                                     fnv(json_string_value(json_object_get(
                                             json_object_get(keys, "author"), "S")),
                                         14695981039346656037ULL)) %
                                 sd.nshards],
                      r) < 0)
            return -1;
        json_decref(rec);
        n++;
    }
    free(line);
    fclose(fp);
    return 0;
}

static void reply_buf(struct fake_reply *out, int status)
{
    out->status = status;
    out->headers = "Content-Type: application/x-amz-json-1.0\r\n";
    out->body = sd.out.ptr ? sd.out.ptr : "";
    out->body_len = sd.out.len;
}

static void reply_json(struct fake_reply *out, int status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);

    buf_reset(&sd.out);
    buf_puts(&sd.out, text ? text : "{}");
    free(text);
    json_decref(j);
    reply_buf(out, status);
}

static void reply_error(struct fake_reply *out, int status, const char *type, const char *msg)
{
    reply_json(out, status, json_pack("{s:s, s:s}", "__type", type, "message", msg));
}

static void describe_table(json_t *req, struct fake_reply *out)
{
    const char *name = json_string_value(json_object_get(req, "TableName"));

    if (!name || strcmp(name, TABLE) != 0) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Requested resource not found");
        return;
    }
    reply_json(out, 200,
               json_pack("{s:{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:s, s:{s:b, s:s}, s:s}}",
                         "Table", "TableName", TABLE, "KeySchema", "AttributeName", "author",
                         "KeyType", "HASH", "AttributeName", "ts", "KeyType", "RANGE",
                         "LatestStreamArn", ARN, "StreamSpecification", "StreamEnabled", 1,
                         "StreamViewType", "NEW_AND_OLD_IMAGES", "TableStatus", "ACTIVE"));
}

static long shard_index(const char *id)
{
    for (size_t i = 0; id && i < sd.nshards; i++)
        if (strcmp(sd.shards[i].id, id) == 0)
            return (long)i;
    return -1;
}

static void describe_stream(json_t *req, struct fake_reply *out)
{
    const char *after = json_string_value(json_object_get(req, "ExclusiveStartShardId"));
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    json_t *shards = json_array(), *desc;
    size_t i = after ? (size_t)(shard_index(after) + 1) : 0;

    if (limit <= 0 || limit > LIST_PAGE)
        limit = LIST_PAGE;
    if (json_object_get(req, "ShardFilter")) /* no shard ever closes: no children */
        i = sd.nshards;
    for (; i < sd.nshards && (json_int_t)json_array_size(shards) < limit; i++)
        json_array_append_new(shards,
                              json_pack("{s:s, s:{s:s}}", "ShardId", sd.shards[i].id,
                                        "SequenceNumberRange", "StartingSequenceNumber",
                                        "100000000000000000000"));
    desc = json_pack("{s:s, s:s, s:s, s:o}", "StreamArn", ARN, "StreamStatus", "ENABLED",
                     "StreamViewType", "NEW_AND_OLD_IMAGES", "Shards", shards);
    if (i < sd.nshards)
        json_object_set_new(desc, "LastEvaluatedShardId", json_string(sd.shards[i - 1].id));
    reply_json(out, 200, json_pack("{s:o}", "StreamDescription", desc));
}

static void get_shard_iterator(json_t *req, struct fake_reply *out)
{
    long sh = shard_index(json_string_value(json_object_get(req, "ShardId")));
    const char *type = json_string_value(json_object_get(req, "ShardIteratorType"));
    const char *seq = json_string_value(json_object_get(req, "SequenceNumber"));
    struct shard *s;
    size_t pos = 0;
    char it[64];

    if (sh < 0) {
        reply_error(out, 400, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "Shard does not exist");
        return;
    }
    s = &sd.shards[sh];
    if (!type)
        type = "";
    if (strcmp(type, "LATEST") == 0) {
        pos = s->n;
    } else if (strcmp(type, "AFTER_SEQUENCE_NUMBER") == 0 && seq) {
        /* Sequence numbers are digit strings: longer is larger, else bytes. */
        while (pos < s->n && (strlen(s->recs[pos]->seq) < strlen(seq) ||
                              (strlen(s->recs[pos]->seq) == strlen(seq) &&
                               strcmp(s->recs[pos]->seq, seq) <= 0)))
            pos++;
    } else if (strcmp(type, "TRIM_HORIZON") != 0) {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    "Invalid ShardIteratorType.");
        return;
    }
    snprintf(it, sizeof(it), "%ld/%zu", sh, pos);
    reply_json(out, 200, json_pack("{s:s}", "ShardIterator", it));
}

static void get_records(json_t *req, struct fake_reply *out)
{
    const char *it = json_string_value(json_object_get(req, "ShardIterator"));
    json_int_t limit = json_integer_value(json_object_get(req, "Limit"));
    struct shard *s;
    long sh = -1;
    size_t pos = 0, i;

    if (!it || sscanf(it, "%ld/%zu", &sh, &pos) != 2 || sh < 0 || (size_t)sh >= sd.nshards) {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    "Invalid ShardIterator");
        return;
    }
    s = &sd.shards[sh];
    if (limit <= 0 || limit > PAGE_MAX)
        limit = PAGE_MAX;
    sd.getrecords++;
    buf_reset(&sd.out);
    buf_puts(&sd.out, "{\"Records\":[");
    for (i = pos; i < s->n && (json_int_t)(i - pos) < limit; i++) {
        struct rec *r = s->recs[i];

        if (i > pos && sd.out.len + r->len > PAGE_BYTES)
            break;
        if (i > pos)
            buf_putc(&sd.out, ',');
        buf_append(&sd.out, r->text, r->len);
        if (!r->served) {
            r->served = true;
            sd.served++;
            if (r->probe) {
                sd.probes_served++;
                sd.last_probe_served_ms = wall_ms();
            }
        }
    }
    buf_printf(&sd.out, "],\"NextShardIterator\":\"%ld/%zu\"}", sh, i);
    reply_buf(out, 200);
}

/* K new INSERT records, created now, one per shard in turn; the time as
 * the Streams API writes it (1.79532942E9, as bench/corpus does). */
static void release(json_t *req, struct fake_reply *out)
{
    json_int_t k = json_integer_value(json_object_get(req, "count"));
    char d[24], when[32];
    int nd = snprintf(d, sizeof(d), "%" PRId64, wall_ms() / 1000), kd = nd;

    while (kd > 2 && d[kd - 1] == '0')
        kd--;
    snprintf(when, sizeof(when), "%c.%.*sE%d", d[0], kd - 1, d + 1, nd - 1);

    for (json_int_t j = 0; j < k; j++) {
        struct rec *r = calloc(1, sizeof(*r));
        struct buf t;
        uint64_t n = ++sd.next_probe_seq;

        buf_init(&t, BUF_NOMAX);
        buf_printf(&t,
                   "{\"eventID\":\"probe-%" PRIu64 "\",\"eventName\":\"INSERT\","
                   "\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\","
                   "\"awsRegion\":\"us-east-1\",\"dynamodb\":{\"ApproximateCreationDateTime\":%s"
                   ",\"Keys\":{\"author\":{\"S\":\"probe-%" PRIu64 "\"},\"ts\":{\"N\":\"%" PRIu64
                   "\"}},\"NewImage\":{\"author\":{\"S\":\"probe-%" PRIu64 "\"},\"ts\":{\"N\":\"%" PRIu64
                   "\"},\"body\":{\"S\":\"written after an idle time\"}},"
                   "\"SequenceNumber\":\"2%020" PRIu64 "\",\"SizeBytes\":80,"
                   "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}",
                   n, when, n, n, n, n, n);
        if (!r || !t.ptr)
            break;
        r->len = t.len;
        r->text = buf_take(&t);
        r->probe = true;
        snprintf(r->seq, sizeof(r->seq), "2%020" PRIu64, n);
        if (shard_add(&sd.shards[sd.next_probe_shard++ % sd.nshards], r) < 0)
            break;
        sd.probes++;
    }
    reply_json(out, 200, json_pack("{s:I}", "released", k));
}

static void dump(json_t *req, struct fake_reply *out)
{
    const char *path = json_string_value(json_object_get(req, "file"));
    FILE *f = path ? fopen(path, "w") : NULL;
    size_t n = 0;
    int bad;

    if (!f) {
        reply_error(out, 400, "com.amazon.coral.validate#ValidationException",
                    path ? strerror(errno) : "expected {\"file\":PATH}");
        return;
    }
    for (size_t i = 0; i < sd.nshards; i++)
        for (size_t j = 0; j < sd.shards[i].n; j++, n++) {
            fprintf(f, "{\"shardId\":\"%s\",\"Records\":[", sd.shards[i].id);
            fwrite(sd.shards[i].recs[j]->text, 1, sd.shards[i].recs[j]->len, f);
            fputs("]}\n", f);
        }
    bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        reply_error(out, 500, "com.amazonaws.dynamodb.v20120810#InternalServerError",
                    "cannot write the dump");
        return;
    }
    reply_json(out, 200, json_pack("{s:I}", "records", (json_int_t)n));
}

static void stats(struct fake_reply *out)
{
    reply_json(out, 200,
               json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "connections",
                         (json_int_t)fake_nconn(sd.http), "getrecords",
                         (json_int_t)sd.getrecords, "served", (json_int_t)sd.served, "records",
                         (json_int_t)sd.nrecs, "shards", (json_int_t)sd.nshards, "probes",
                         (json_int_t)sd.probes, "probes_served", (json_int_t)sd.probes_served,
                         "last_probe_served_ms", (json_int_t)sd.last_probe_served_ms));
}

static void handler(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    const char *t = strcasestr(req->headers, "\nx-amz-target:");
    json_t *body = json_loadb(req->body, req->body_len, 0, NULL);
    char op[64] = "";

    (void)arg;
    if (t) {
        t += strlen("\nx-amz-target:");
        t += strspn(t, " ");
        if (strncmp(t, TARGET_PREFIX, strlen(TARGET_PREFIX)) == 0)
            t += strlen(TARGET_PREFIX);
        snprintf(op, sizeof(op), "%.*s", (int)strcspn(t, "\r\n"), t);
    }
    if (strcmp(req->path, "/_streamsd/release") == 0)
        release(body, out);
    else if (strcmp(req->path, "/_streamsd/stats") == 0)
        stats(out);
    else if (strcmp(req->path, "/_streamsd/dump") == 0)
        dump(body, out);
    else if (strcmp(op, "GetRecords") == 0)
        get_records(body, out);
    else if (strcmp(op, "GetShardIterator") == 0)
        get_shard_iterator(body, out);
    else if (strcmp(op, "DescribeStream") == 0)
        describe_stream(body, out);
    else if (strcmp(op, "DescribeTable") == 0 || strcmp(op, "DynamoDB_20120810.DescribeTable") == 0)
        describe_table(body, out);
    else
        reply_error(out, 400, "com.amazon.coral.service#UnknownOperationException", op);
    json_decref(body);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = { { "corpus", required_argument, NULL, 'c' },
                                          { "shards", required_argument, NULL, 's' },
                                          { "limit", required_argument, NULL, 'l' },
                                          { "port-file", required_argument, NULL, 'p' },
                                          { NULL, 0, NULL, 0 } };
    const char *corpus = NULL, *port_file = NULL;
    size_t limit = SIZE_MAX;
    struct fakehttp *f;
    FILE *pf;
    int o;

    sd.nshards = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c': corpus = optarg; break;
        case 's': sd.nshards = strtoul(optarg, NULL, 10); break;
        case 'l': limit = strtoul(optarg, NULL, 10); break;
        case 'p': port_file = optarg; break;
        default:  return 64;
        }
    }
    if (!corpus || !port_file || sd.nshards == 0 || sd.nshards > 100000) {
        fprintf(stderr, "usage: streamsd --corpus FILE [--shards N] [--limit RECORDS] "
                        "--port-file PATH\n");
        return 64;
    }
    sd.shards = calloc(sd.nshards, sizeof(*sd.shards));
    if (!sd.shards)
        return 70;
    for (size_t i = 0; i < sd.nshards; i++)
        snprintf(sd.shards[i].id, sizeof(sd.shards[i].id), "shardId-00000001732270000000-%08zx",
                 i);
    buf_init(&sd.out, BUF_NOMAX);
    if (load(corpus, limit) < 0)
        return 66;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    f = sd.http = fake_start();
    fake_forget_requests(f);
    fake_set_handler(f, handler, NULL);
    pf = fopen(port_file, "w");
    if (!pf || fprintf(pf, "%d\n", fake_port(f)) < 0 || fclose(pf) != 0) {
        perror("streamsd: port file");
        return 73;
    }
    fprintf(stderr, "streamsd: %zu records in %zu shards on %s\n", sd.nrecs, sd.nshards,
            fake_url(f));
    while (!stop)
        pause();
    fake_stop(f);
    return 0;
}
