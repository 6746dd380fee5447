/* End to end with the clock moved: ddb2es run against DynamoDB Local under
 * libfaketime (tests/support/ddbtime.h), so that what takes 15 minutes, 4
 * hours or a day on AWS is seen in a test run: iterators expiring, a shard
 * rolling over to a child, records trimmed after 24 h.  The daemons run on
 * the same clock as the instance.  `make check-timetravel` runs the suite
 * (README "Tests": what it costs and why it is not in `make check`).
 *
 * Every test writes values of one type per attribute name: the engines
 * map a new field by its first value and refuse a value of another type
 * later, and so does the search double (tests/tools/searchd/). */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/ddbclient.h"
#include "tests/support/ddbtime.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

/* A test may wait for the clock while another holds it alone, then for
 * the rollover job (7.5 minutes). */
TestSuite(timetravel, .timeout = 900);

/* The daemon's longest single wait on a failing call: a reply it does not
 * understand is retried after 30 s (daemon/shard.c FATAL_RETRY_MS), errors
 * back off up to 10 s (ERROR_MAX_MS).  A test waiting longer than this for
 * the daemon to move on has found it stuck. */
#define DAEMON_RETRY_BOUND_MS (30000 + 10000)

static double real_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

/* The end of a daemon's log (a log can grow to megabytes here: more does
 * not pass through criterion's log). */
static void dump_log_text(const char *log)
{
    size_t len = strlen(log);

    cr_log_info("ddb2es log%s:\n%s", len > 30000 ? " (its last 30000 bytes)" : "",
                log + (len > 30000 ? len - 30000 : 0));
}

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    dump_log_text(log);
    free(log);
}

/* A new table with a stream, named after prefix, its index of the same name. */
static void new_table(char *name, size_t len, struct e2e_table *t, const char *prefix,
                      const char *hash, const char *range)
{
    ddbc_table_name(name, len, prefix);
    lower(name);
    *t = (struct e2e_table){ .name = name, .index = name, .hash = hash, .range = range };
    ddbc_create_table(name, hash, "S", range, range ? "N" : NULL, "NEW_AND_OLD_IMAGES");
}

static void put_text(const char *table, const char *id, long n)
{
    char item[256];

    snprintf(item, sizeof(item), "{\"id\":{\"S\":\"%s\"},\"n\":{\"N\":\"%ld\"}}", id, n);
    ddbc_put(table, item);
}

static void put_series(const char *table, const char *prefix, int count)
{
    char id[64];

    for (int i = 0; i < count; i++) {
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        put_text(table, id, i);
    }
}

static json_t *latest_arn(const char *table)
{
    json_t *d = ddbc_callj("DescribeTable", json_pack("{s:s}", "TableName", table));
    json_t *arn = json_incref(json_object_get(json_object_get(d, "Table"), "LatestStreamArn"));

    json_decref(d);
    cr_assert(json_is_string(arn), "table %s has a stream", table);
    return arn;
}

/* The shards of a stream, in DescribeStream's order (creation order on
 * DynamoDB Local: a parent before its child). */
static json_t *shards_of(const char *arn)
{
    json_t *d = ddbc_callj("DescribeStream",
                           json_pack("{s:s, s:i}", "StreamArn", arn, "Limit", 100));
    json_t *sh = json_incref(json_object_get(json_object_get(d, "StreamDescription"), "Shards"));

    json_decref(d);
    return sh;
}

static const char *shard_id(json_t *sh)
{
    return json_string_value(json_object_get(sh, "ShardId"));
}

/* The id of a shard of arn whose parent is parent, or NULL (caller frees). */
static char *child_of(const char *arn, const char *parent)
{
    json_t *shards = shards_of(arn), *sh;
    char *id = NULL;
    size_t i;

    json_array_foreach(shards, i, sh)
    {
        const char *p = json_string_value(json_object_get(sh, "ParentShardId"));

        if (!id && p && strcmp(p, parent) == 0)
            id = strdup(shard_id(sh));
    }
    json_decref(shards);
    return id;
}

/* Every record of one shard, from its start to its end (a closed shard) or
 * to the newest record (an open one: DynamoDB Local's sequence numbers are
 * contiguous, so an empty page means there is nothing more yet). */
static json_t *shard_records(const char *arn, const char *id)
{
    json_t *all = json_array();
    json_t *it = ddbc_callj("GetShardIterator",
                            json_pack("{s:s, s:s, s:s}", "StreamArn", arn, "ShardId", id,
                                      "ShardIteratorType", "TRIM_HORIZON"));
    json_t *iter = json_incref(json_object_get(it, "ShardIterator"));

    json_decref(it);
    while (json_is_string(iter)) {
        json_t *r = ddbc_callj("GetRecords",
                               json_pack("{s:o, s:i}", "ShardIterator", iter, "Limit", 1000));
        json_t *recs = json_object_get(r, "Records");

        json_array_extend(all, recs);
        iter = json_array_size(recs) ? json_incref(json_object_get(r, "NextShardIterator")) : NULL;
        json_decref(r);
    }
    json_decref(iter);
    return all;
}

static const char *record_key(json_t *rec, const char *attr)
{
    return json_string_value(json_object_get(
        json_object_get(json_object_get(json_object_get(rec, "dynamodb"), "Keys"), attr), "S"));
}

static double record_time(json_t *rec)
{
    return json_number_value(
        json_object_get(json_object_get(rec, "dynamodb"), "ApproximateCreationDateTime"));
}

/* Records in every stream the table has had, every shard; *hot (when not
 * NULL) counts those whose key attribute attr is_hot says yes to. */
static long table_records(const char *table, size_t *nstreams, const char *attr,
                          bool (*is_hot)(const char *), long *hot)
{
    json_t *l = ddbc_callj("ListStreams", json_pack("{s:s}", "TableName", table)), *st;
    size_t i, j, k;
    long n = 0;

    *nstreams = json_array_size(json_object_get(l, "Streams"));
    if (hot)
        *hot = 0;
    json_array_foreach(json_object_get(l, "Streams"), i, st)
    {
        const char *arn = json_string_value(json_object_get(st, "StreamArn"));
        json_t *shards = shards_of(arn), *sh;

        json_array_foreach(shards, j, sh)
        {
            json_t *recs = shard_records(arn, shard_id(sh)), *rec;

            n += (long)json_array_size(recs);
            json_array_foreach(recs, k, rec)
            {
                if (hot && is_hot(record_key(rec, attr)))
                    (*hot)++;
            }
            json_decref(recs);
        }
        json_decref(shards);
    }
    json_decref(l);
    return n;
}

static long actions_received(struct searchd *sd)
{
    json_t *stats = searchd_stats(sd), *v;
    const char *k;
    long n = 0;

    json_object_foreach(json_object_get(stats, "actions"), k, v) n += (long)json_integer_value(v);
    json_decref(stats);
    return n;
}

/* Where text first appears in the log, or -1. */
static long log_at(const char *log, const char *text)
{
    const char *p = strstr(log, text);

    return p ? (long)(p - log) : -1;
}

/* True when a line of the log starts with start and holds a and b. */
static bool log_has_line(const char *log, const char *start, const char *a, const char *b)
{
    for (const char *line = log; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (strncmp(line, start, strlen(start)) == 0 && memmem(line, len, a, strlen(a)) &&
            memmem(line, len, b, strlen(b)))
            return true;
        line += len + (end != NULL);
    }
    return false;
}

/* Runs step until a child of parent shows in arn, or until real time
 * deadline; returns the child's id (caller frees), or NULL. */
static char *wait_child(const char *arn, const char *parent, double deadline,
                        void (*step)(void *), void *arg)
{
    char *child = NULL;

    while (!(child = child_of(arn, parent)) && real_now() < deadline)
        step(arg);
    return child;
}

/* How long to wait for the rollover job after ddbtime_advance_past_rollover
 * said when it runs (0: not known, so a whole period). */
static double rollover_deadline(double run_at)
{
    return (run_at > 0 ? run_at : real_now() + DDBTIME_ROLLOVER_EVERY_S) + 60;
}

/* ---- the 24 h trim ------------------------------------------------------ */

/* GET /metrics: one sample of the table's counter (-1 when missing). */
static double table_metric(int port, const char *metric, const char *table)
{
    char labels[256];

    snprintf(labels, sizeof(labels), "table=\"%s\"", table);
    return httpget_metric(port, metric, labels);
}

/* GetRecords calls an idle shard may make in IDLE_WINDOW_S: the daemon
 * polls an idle shard at most every 2 s (README "What it is"), after
 * waits of 100 ms doubling up to that (daemon/shard.c IDLE_FIRST_MS), so
 * about 8; three times that. */
#define IDLE_WINDOW_S 5
#define IDLE_CALLS_MAX 25

/* REFERENCE.md Streams fact 6: records are trimmed after 24 h; reading
 * past the trim point is data loss, to be reported and counted (DESIGN
 * invariant 6).  DynamoDB Local (DDBLOCAL.md "GetShardIterator and
 * sequence-number errors") answers a GetRecords at a trimmed position
 * with TrimmedDataAccessException; DDBLOCAL.md "A TRIM_HORIZON quirk": a
 * TRIM_HORIZON iterator on a shard with no record yet answers the same
 * while other writes land, and that is no loss.  One gap is one loss
 * event, and a shard with nothing to read is polled like any idle one.
 * Named to sort first: it holds the clock alone (its jump would trim
 * every other test's records), so the others wait for it rather than it
 * for them. */
Test(timetravel, a_clock_moved_past_the_retention_counts_the_trimmed_records_as_lost)
{
    char name[128], dir[256], why[1024], extra[128], shard[64], id[64];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    json_t *arn, *shards, *dump, *docs;
    double lost = -1, calls0, calls1, tick;
    char *log;
    int port;
    bool later = false;

    ddbtime_need();
    ddbtime_hold(true);
    /* The shard stays open until the end: the rollover job, were it to
     * close it meanwhile, would make it an expired shard (another path). */
    tick = ddbtime_next_rollover(real_now());
    if (tick > 0 && tick - real_now() < 120) {
        cr_log_info("waiting %.0f s for the rollover job to pass", tick - real_now() + 2);
        usleep((useconds_t)((tick - real_now() + 2) * 1e6));
    }
    new_table(name, sizeof(name), &t, "trim", "id", NULL);
    sd = searchd_start(NULL);
    port = httpget_free_port();
    snprintf(extra, sizeof(extra), "metrics_listen = 127.0.0.1:%d\n", port);
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, extra, NULL, dir, sizeof(dir));

    ddbtime_start(&p, conf);
    put_series(name, "kept", 3);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&p, 15000), 0, "a clean stop: the checkpoint is after kept-2");
    arn = latest_arn(name);
    shards = shards_of(json_string_value(arn));
    cr_assert_eq(json_array_size(shards), 1);
    snprintf(shard, sizeof(shard), "%s", shard_id(json_array_get(shards, 0)));
    json_decref(shards);

    put_series(name, "lost", 3); /* while the daemon is stopped */
    ddbtime_advance(25 * 3600);

    ddbtime_start(&p, conf);
    for (long waited = 0; waited < DAEMON_RETRY_BOUND_MS; waited += 200) {
        lost = table_metric(port, "ddb2es_records_lost_events_total", name);
        if (lost >= 1)
            break;
        usleep(200000);
    }
    if (lost < 1)
        dump_log(&p);
    cr_assert_geq(lost, 1, "ddb2es_records_lost_events_total{table=\"%s\"} is %g", name, lost);

    /* Logged at error level ("<3>", journald's err), with the shard. */
    log = proc_slurp(p.err_path);
    if (!log_has_line(log, "<3>", shard, "data lost"))
        dump_log_text(log);
    cr_assert(log_has_line(log, "<3>", shard, "data lost"),
              "an error line names shard %s and says data was lost", shard);
    free(log);

    /* Nothing is written for a while: the one gap stays one loss event,
     * and the shard, with nothing to read, is not read in a loop. */
    calls0 = table_metric(port, "ddb2es_getrecords_calls_total", name);
    sleep(IDLE_WINDOW_S);
    calls1 = table_metric(port, "ddb2es_getrecords_calls_total", name);
    lost = table_metric(port, "ddb2es_records_lost_events_total", name);
    cr_log_info("%g loss events; %g GetRecords calls in %d s with nothing to read", lost,
                calls1 - calls0, IDLE_WINDOW_S);
    cr_expect_eq(lost, 1, "one gap, one loss event (counted %g)", lost);
    cr_expect_leq(calls1 - calls0, IDLE_CALLS_MAX,
                  "%g GetRecords calls in %d s on a shard with nothing to read", calls1 - calls0,
                  IDLE_WINDOW_S);

    /* Reading goes on: writes made now are indexed. */
    put_series(name, "later", 3);
    for (long waited = 0; !later && waited < DAEMON_RETRY_BOUND_MS; waited += 200) {
        dump = searchd_dump(sd);
        docs = json_object_get(dump, name);
        later = true;
        for (int i = 0; i < 3; i++) {
            snprintf(id, sizeof(id), "later-%d", i);
            later &= json_object_get(docs, id) != NULL;
        }
        json_decref(dump);
        if (!later)
            usleep(200000);
    }
    if (!later || lost != 1)
        dump_log(&p);
    cr_assert(later, "the writes made after the restart are indexed");
    dump = searchd_dump(sd);
    cr_expect_null(json_object_get(json_object_get(dump, name), "lost-0"),
                   "lost-0 was trimmed before it was read");
    json_decref(dump);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    json_decref(arn);
    searchd_stop(sd);
}

/* ---- iterator expiry ---------------------------------------------------- */

/* REFERENCE.md Streams fact 5: an iterator (NextShardIterator too) expires
 * 15 min after it was made; ExpiredIteratorException means "get a new
 * iterator from the checkpoint".  DDBLOCAL.md "Iterators and expiry":
 * Local fails it at +15 min 01 s.  The daemon polls an idle shard every
 * 2 s, so only a jump of the clock lets its iterator grow old. */
Test(timetravel, an_expired_iterator_is_renewed_after_the_last_record_read)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    long records, actions;
    size_t nstreams;
    bool ok;

    ddbtime_need();
    ddbtime_hold(false);
    new_table(name, sizeof(name), &t, "expiry", "id", NULL);
    sd = searchd_start(NULL);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    ddbtime_start(&p, conf);
    put_series(name, "first", 5);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);

    put_series(name, "before", 5); /* just before: read before or after the jump */
    ddbtime_advance(16 * 60);
    put_series(name, "after", 5);
    ok = e2e_wait_equal(sd, &t, DAEMON_RETRY_BOUND_MS, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the jump: %s", why);
    cr_assert(proc_wait_for_text(p.err_path, "shard iterator expired; renewing it", 1000),
              "the log says the iterator was renewed");
    cr_assert_eq(e2e_stop(&p, 15000), 0);

    /* Every key was written once: each record is one action, and an
     * iterator renewed after the last record read reads none twice. */
    records = table_records(name, &nstreams, NULL, NULL, NULL);
    actions = actions_received(sd);
    cr_log_info("%ld stream records, %ld actions received", records, actions);
    cr_assert_eq(records, 15);
    /* The probe's canary at the start is three actions more (README "The
     * target probe"). */
    cr_assert_eq(actions, records + 3, "nothing was read twice (and the canary: three actions)");
    searchd_stop(sd);
}

/* ---- a shard rollover ---------------------------------------------------- */

struct hot {
    const char *table;
    long n;
};

/* One write of the key "hot", then a pause: the only writes while the
 * rollover is awaited, so the parent's last record is one of them. */
static void write_hot(void *arg)
{
    struct hot *h = arg;

    put_text(h->table, "hot", h->n++);
    usleep(200000);
}

/* DDBLOCAL.md "Shards": the rollover job closes a shard older than 4 h
 * and opens a child (ParentShardId).  REFERENCE.md Streams fact 8: the
 * parent is read to its end before the child (DESIGN invariant 3: its
 * last record finished); DESIGN invariant 2 and REFERENCE.md "Versions
 * that survive shard rollover": a key written in the parent's last second
 * and the child's first (its last and first minute here: Local rounds
 * ApproximateCreationDateTime down to the minute) keeps its newer image.
 * The stream is listed every second and every bulk takes 1.5 s, so the
 * child is listed while the parent's last records are still in flight. */
Test(timetravel, a_rollover_reads_the_child_after_the_parent_and_keeps_the_newer_image)
{
    char name[128], dir[256], why[1024], text[160];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    struct hot h = { 0 };
    const char *conf, *arn;
    json_t *arnj, *shards, *precs, *crecs, *plast, *cfirst;
    char parent[64], *child, *log;
    double run_at;
    long fin, beg;
    bool ok;

    ddbtime_need();
    ddbtime_hold(false);
    new_table(name, sizeof(name), &t, "roll", "id", NULL);
    arnj = latest_arn(name);
    arn = json_string_value(arnj);
    shards = shards_of(arn);
    cr_assert_eq(json_array_size(shards), 1, "a new stream has one shard");
    snprintf(parent, sizeof(parent), "%s", shard_id(json_array_get(shards, 0)));
    json_decref(shards);
    sd = searchd_start(NULL);
    cr_assert_eq(searchd_faults(sd, "[{\"match\":\"bulk\",\"count\":-1,\"delay_ms\":1500}]"), 200);
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, "shard_list_interval = 1s\n",
                         NULL, dir, sizeof(dir));
    ddbtime_start(&p, conf);
    put_series(name, "early", 5);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);

    run_at = ddbtime_advance_past_rollover();
    h.table = name;
    child = wait_child(arn, parent, rollover_deadline(run_at), write_hot, &h);
    cr_assert_not_null(child, "the rollover job closed shard %s", parent);
    put_text(name, "hot", h.n++); /* in the child, if the last one was not */
    put_series(name, "late", 5);
    ok = e2e_wait_equal(sd, &t, DAEMON_RETRY_BOUND_MS, why, sizeof(why));
    if (!ok)
        dump_log(&p);
    cr_assert(ok, "after the rollover (%ld writes of hot): %s", h.n, why);

    /* The key was written at the parent's end and the child's start, in
     * one minute of the records' clock: the newer image won on its
     * version, not on its minute. */
    precs = shard_records(arn, parent);
    crecs = shard_records(arn, child);
    plast = json_array_get(precs, json_array_size(precs) - 1);
    cfirst = json_array_get(crecs, 0);
    cr_assert_str_eq(record_key(plast, "id"), "hot", "the parent ends with a write of hot");
    cr_assert_str_eq(record_key(cfirst, "id"), "hot", "the child starts with a write of hot");
    cr_log_info("parent %s: %zu records, the last at %.0f; child %s: first at %.0f", parent,
                json_array_size(precs), record_time(plast), child, record_time(cfirst));
    if (run_at > 0)
        cr_assert_eq(record_time(plast), record_time(cfirst),
                     "the parent's last and the child's first record share their minute");

    /* The child began only once the parent was finished. */
    log = proc_slurp(p.err_path);
    snprintf(text, sizeof(text), "shard %s finished", parent);
    fin = log_at(log, text);
    snprintf(text, sizeof(text), "shard %s starts at", child);
    beg = log_at(log, text);
    if (fin < 0 || beg < fin)
        dump_log_text(log);
    cr_assert(fin >= 0 && beg > fin, "the child (%s) started after the parent (%s) finished",
              child, parent);
    free(log);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    json_decref(precs);
    json_decref(crecs);
    json_decref(arnj);
    free(child);
    searchd_stop(sd);
}

/* Logs the ids of the table's items the index lacks and of the index's
 * live documents the table lacks (the first ten of each). */
static void log_differences(struct searchd *sd, const struct e2e_table *t)
{
    json_t *items = ddbc_scan_all(t->name), *dump = e2e_dump(sd), *item, *d;
    json_t *docs = json_object_get(dump, t->index), *ids = json_object();
    const char *id;
    char docid[4096];
    size_t i, len;
    int missing = 0, extra = 0;

    json_array_foreach(items, i, item)
    {
        len = e2e_doc_id(item, t->hash, t->range, '|', docid, sizeof(docid));
        json_object_setn_nocheck(ids, docid, len, json_true());
        d = json_object_getn(docs, docid, len);
        if ((!d || json_is_true(json_object_get(d, "deleted"))) && missing++ < 10)
            cr_log_info("no document for item %.300s", docid);
    }
    json_object_foreach(docs, id, d)
    {
        if (!json_is_true(json_object_get(d, "deleted")) && !json_object_get(ids, id) &&
            extra++ < 10)
            cr_log_info("document %.300s has no item", id);
    }
    cr_log_info("%d items without a document, %d documents without an item", missing, extra);
    json_decref(ids);
    json_decref(items);
    json_decref(dump);
}

/* ---- SIGKILL across a stream switch and a rollover --------------------- */

/* A random workload like tests/support/workload.c's, but every attribute
 * keeps one type (the double's dynamic mapping refuses a change), on a
 * hash + range table.  Mostly new keys, so that a record skipped by a bad
 * checkpoint leaves a document missing that no later write hides; one
 * write in ten goes to one of HOT_KEYS keys, so that keys written on both
 * sides of the stream switch and of the rollover, within one minute, show
 * a version that goes back. */
#define HOT_KEYS 20
struct crash {
    struct wl w; /* only its random numbers */
    const char *table;
    struct proc p;
    const char *conf;
    unsigned written, kills;
    unsigned edge; /* > 0: the rollover is awaited, the next value of its edge keys */
    double run_at; /* when the rollover job runs (real time), 0 when not known */
};

static unsigned pick(struct crash *c, unsigned n)
{
    return (unsigned)(wl_rand(&c->w) % n);
}

static json_t *crash_key(unsigned k)
{
    char pk[32], sk[16];

    snprintf(pk, sizeof(pk), k % 5 == 1 ? "k|%u" : "k%u", k);
    snprintf(sk, sizeof(sk), "%u", k % 7);
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", pk, "sk", "N", sk);
}

static json_t *crash_item(struct crash *c, unsigned k)
{
    static const char *const words[] = { "plain", "naïve café", "pipe|value", "日本語",
                                         "quote \" and \\", "emoji 😀" };
    json_t *item = crash_key(k);
    char num[32];

    snprintf(num, sizeof(num), "%ld", (long)pick(c, 2000001) - 1000000);
    json_object_set_new(item, "n", json_pack("{s:s}", "N", num));
    if (pick(c, 2)) {
        snprintf(num, sizeof(num), "%u.%u", pick(c, 1000), 1 + pick(c, 9));
        json_object_set_new(item, "f", json_pack("{s:s}", "N", num));
    }
    if (pick(c, 2))
        json_object_set_new(item, "s", json_pack("{s:s}", "S", words[pick(c, 6)]));
    if (pick(c, 2))
        json_object_set_new(item, "m", json_pack("{s:{s:{s:s}, s:{s:s}}}", "M", "a", "N", "7", "b",
                                                 "S", words[pick(c, 6)]));
    if (pick(c, 2))
        json_object_set_new(item, "l", json_pack("{s:[{s:s}, {s:s}]}", "L", "S", "x", "S",
                                                 words[pick(c, 6)]));
    if (pick(c, 3) == 0)
        json_object_set_new(item, "tags",
                            json_pack("{s:[s, s]}", "SS", "a", pick(c, 2) ? "b" : "c"));
    if (pick(c, 3) == 0)
        json_object_set_new(item, "flag", json_pack("{s:b}", "BOOL", pick(c, 2)));
    if (pick(c, 3) == 0)
        json_object_set_new(item, "bin", json_pack("{s:s}", "B", pick(c, 2) ? "AAEC" : "3q2+7w=="));
    return item;
}

/* A key written again and again: an edge key, or a hot one ("k" or "k|",
 * then a number below HOT_KEYS). */
static bool hot_key(const char *pk)
{
    char *end;
    long n;

    if (pk && (strncmp(pk, "roll-", 5) == 0 || strncmp(pk, "switch-", 7) == 0))
        return true;
    if (!pk || pk[0] != 'k')
        return false;
    pk += pk[1] == '|' ? 2 : 1;
    n = strtol(pk, &end, 10);
    return end != pk && !*end && n < HOT_KEYS;
}

/* One random write; returns the number of items it touched. */
static unsigned crash_step(struct crash *c)
{
    unsigned k = pick(c, 10) ? HOT_KEYS + pick(c, 100000) : pick(c, HOT_KEYS), r = pick(c, 100);

    if (r < 45) {
        json_decref(ddbc_callj("PutItem", json_pack("{s:s, s:o}", "TableName", c->table, "Item",
                                                     crash_item(c, k))));
        return 1;
    }
    if (r < 70) {
        char num[32];

        snprintf(num, sizeof(num), "%u", pick(c, 1000));
        json_decref(ddbc_callj(
            "UpdateItem",
            json_pack("{s:s, s:o, s:s, s:{s:{s:s}}}", "TableName", c->table, "Key", crash_key(k),
                      "UpdateExpression", pick(c, 3) ? "SET n = :n" : "SET n = :n REMOVE l",
                      "ExpressionAttributeValues", ":n", "N", num)));
        return 1;
    }
    if (r < 85) {
        json_decref(ddbc_callj("DeleteItem", json_pack("{s:s, s:o}", "TableName", c->table,
                                                        "Key", crash_key(k))));
        return 1;
    }
    {
        json_t *reqs = json_array();
        unsigned n = 2 + pick(c, 24);

        /* BatchWriteItem refuses two writes to one key: consecutive keys. */
        for (unsigned i = 0; i < n; i++)
            json_array_append_new(reqs, pick(c, 5) ? json_pack("{s:{s:o}}", "PutRequest", "Item",
                                                               crash_item(c, k + i))
                                                   : json_pack("{s:{s:o}}", "DeleteRequest", "Key",
                                                               crash_key(k + i)));
        json_decref(ddbc_callj("BatchWriteItem",
                               json_pack("{s:{s:o}}", "RequestItems", c->table, reqs)));
        return n;
    }
}

/* Edge keys "<prefix>-0" ... "<prefix>-<EDGE_KEYS - 1>": written on both
 * sides of an edge (the stream switch, the rollover) within a minute and
 * never again, their last image is the one after it. */
#define EDGE_KEYS 10

static void put_edge_key(struct crash *c, const char *prefix, unsigned i, unsigned n)
{
    char item[160];

    snprintf(item, sizeof(item),
             "{\"pk\":{\"S\":\"%s-%u\"},\"sk\":{\"N\":\"0\"},\"n\":{\"N\":\"%u\"}}",
             prefix, i, n);
    ddbc_put(c->table, item);
    c->written++;
}

static void put_edge_keys(struct crash *c, const char *prefix, unsigned n)
{
    for (unsigned i = 0; i < EDGE_KEYS; i++)
        put_edge_key(c, prefix, i, n);
}

/* The daemon runs while writes go on, a pause of up to pause_ms after
 * each, and is killed at a random moment within max_ms.  While the
 * rollover is awaited, each step writes one of its edge keys too, and no
 * round outlasts the job's run by more than 2 s: the edge keys' first
 * writes in the child follow their last in the parent by a few seconds. */
static void kill_round(struct crash *c, unsigned max_ms, unsigned pause_ms)
{
    double until;

    ddbtime_start(&c->p, c->conf);
    until = real_now() + (double)(100 + pick(c, max_ms)) / 1000;
    if (c->edge && c->run_at > 0 && real_now() < c->run_at + 2 && until > c->run_at + 2)
        until = c->run_at + 2;
    do {
        c->written += crash_step(c);
        if (c->edge) {
            put_edge_key(c, "roll", c->edge % EDGE_KEYS, c->edge);
            c->edge++;
        }
        usleep(1000 * pick(c, pause_ms));
    } while (real_now() < until);
    proc_kill(&c->p, SIGKILL);
    cr_assert_eq(proc_wait(&c->p, 10000), 128 + SIGKILL);
    c->kills++;
}

/* While the rollover is awaited: fewer writes, and rounds long enough
 * (a restarted daemon lets a disabled stream settle for 10 s before it
 * reads the next one: daemon/reader.c STREAM_SETTLE_MS) that some reach
 * the new stream's shard before the kill. */
static void kill_round_step(void *arg)
{
    kill_round(arg, 20000, 600);
}

/* The minute of the last record of key pk in recs (0 when none). */
static double last_write(json_t *recs, const char *pk)
{
    double t = 0;
    size_t i;
    json_t *rec;

    json_array_foreach(recs, i, rec)
    {
        const char *k = record_key(rec, "pk");

        if (k && strcmp(k, pk) == 0)
            t = record_time(rec);
    }
    return t;
}

/* The minute of the first record of key pk in recs (0 when none). */
static double first_write(json_t *recs, const char *pk)
{
    size_t i;
    json_t *rec;

    json_array_foreach(recs, i, rec)
    {
        const char *k = record_key(rec, "pk");

        if (k && strcmp(k, pk) == 0)
            return record_time(rec);
    }
    return 0;
}

/* The edge keys were written on both sides of each edge within one
 * minute: the test covers what it means to. */
static void edge_minutes(const char *old_arn, const char *new_arn, const char *parent,
                         const char *child, bool rollover_known)
{
    json_t *old_shards = shards_of(old_arn);
    json_t *old_recs = shard_records(old_arn, shard_id(json_array_get(old_shards, 0)));
    json_t *precs = shard_records(new_arn, parent), *crecs = shard_records(new_arn, child);
    double before = last_write(old_recs, "switch-0"), after = first_write(precs, "switch-0");

    cr_log_info("switch-0: old stream at %.0f, new stream at %.0f; roll-0: parent at %.0f, "
                "child at %.0f",
                before, after, last_write(precs, "roll-0"), first_write(crecs, "roll-0"));
    cr_assert(before > 0 && before == after, "switch-0 written in one minute on both sides");
    if (rollover_known)
        cr_assert(last_write(precs, "roll-0") > 0 &&
                      last_write(precs, "roll-0") == first_write(crecs, "roll-0"),
                  "roll-0 written in one minute on both sides");
    json_decref(old_shards);
    json_decref(old_recs);
    json_decref(precs);
    json_decref(crecs);
}

/* Waits until the instance's clock is at most at second 50 of its
 * minute: what is written in the next few seconds shares a minute. */
static void wait_early_in_minute(void)
{
    while (fmod(ddbtime_now(), 60.0) > 50)
        usleep(200000);
}

/* tests/test_pipeline.c sigkill_at_random_moments_loses_nothing, across
 * the two events that change what is read next: the table's stream
 * disabled and enabled again (REFERENCE.md Streams fact 14, DDBLOCAL.md
 * "Disabling the stream": a new ARN, the old stream closed and readable),
 * and a rollover in the new stream (DDBLOCAL.md "Shards").  Keys written
 * on both sides of each, within one minute of the records' clock, and
 * never again, must keep their newer image (DESIGN invariant 2: versions
 * start above the table's highest in a new stream, and go on from the
 * parent's in a child).  No write is made while the stream is disabled:
 * DynamoDB records none, so no reader could index it (DDBLOCAL.md
 * "Writes made while disabled produce nothing"). */
Test(timetravel, sigkill_across_a_stream_switch_and_a_rollover_loses_nothing)
{
    char name[128], dir[256], why[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct crash c;
    json_t *old_arn, *new_arn, *shards;
    char parent[64], *child;
    const char *conf;
    long records, actions, hot;
    size_t nstreams;
    double run_at;
    bool ok;

    ddbtime_need();
    ddbtime_hold(false);
    memset(&c, 0, sizeof(c));
    new_table(name, sizeof(name), &t, "crash", "pk", "sk");
    wl_init(&c.w, 20261207, name, "pk", "S", "sk", "N", 100000);
    c.table = name;
    sd = searchd_start(NULL);
    /* The switch is seen within 2 s, not the default 5 minutes. */
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1,
                         "stream_check_interval = 2s\nshard_list_interval = 2s\n", NULL, dir,
                         sizeof(dir));
    c.conf = conf;
    old_arn = latest_arn(name);
    for (int i = 0; i < 4; i++)
        kill_round(&c, 3000, 150);

    wait_early_in_minute();
    put_edge_keys(&c, "switch", 1);
    json_decref(ddbc_callj("UpdateTable",
                           json_pack("{s:s, s:{s:b}}", "TableName", name, "StreamSpecification",
                                     "StreamEnabled", 0)));
    json_decref(ddbc_callj("UpdateTable",
                           json_pack("{s:s, s:{s:b, s:s}}", "TableName", name,
                                     "StreamSpecification", "StreamEnabled", 1, "StreamViewType",
                                     "NEW_IMAGE")));
    put_edge_keys(&c, "switch", 2);
    new_arn = latest_arn(name);
    cr_assert(!json_equal(old_arn, new_arn), "enabled again under a new ARN");
    shards = shards_of(json_string_value(new_arn));
    cr_assert_eq(json_array_size(shards), 1, "the new stream has one shard");
    snprintf(parent, sizeof(parent), "%s", shard_id(json_array_get(shards, 0)));
    json_decref(shards);
    for (int i = 0; i < 4; i++)
        kill_round(&c, 25000, 300); /* some long enough to finish the old stream */

    run_at = c.run_at = ddbtime_advance_past_rollover();
    c.edge = 1;
    child = wait_child(json_string_value(new_arn), parent, rollover_deadline(run_at),
                       kill_round_step, &c);
    cr_assert_not_null(child, "the rollover job closed shard %s", parent);
    put_edge_keys(&c, "roll", c.edge); /* in the child, and the last of them */
    c.edge = 0;
    edge_minutes(json_string_value(old_arn), json_string_value(new_arn), parent, child,
                 run_at > 0);
    for (int i = 0; i < 4; i++)
        kill_round(&c, 25000, 300);

    ddbtime_start(&c.p, conf);
    ok = e2e_wait_equal(sd, &t, 120000, why, sizeof(why));
    if (!ok) {
        dump_log(&c.p);
        log_differences(sd, &t);
    }
    cr_assert(ok, "after %u kills: %s", c.kills, why);
    /* A last write: once it is indexed, every record before it was read;
     * the clean stop then lets the bulks in flight finish. */
    ddbc_put(name, "{\"pk\":{\"S\":\"marker\"},\"sk\":{\"N\":\"0\"}}");
    cr_assert(e2e_wait_equal(sd, &t, 60000, why, sizeof(why)), "%s", why);
    cr_assert_eq(e2e_stop(&c.p, 15000), 0);

    records = table_records(name, &nstreams, "pk", hot_key, &hot);
    actions = actions_received(sd);
    cr_log_info("%u items written, %u kills, %zu streams, %ld stream records (%ld of hot and "
                "edge keys), %ld actions received, %ld re-sent after restarts",
                c.written, c.kills, nstreams, records, hot, actions, actions - records);
    cr_assert_eq(nstreams, 2);
    /* Several actions on one key in one batch go as the last one: only
     * the records of keys written again and again can be fewer actions. */
    cr_expect_geq(actions, records - hot, "every record reached the sink at least once");
    cr_expect_leq(actions - records, (long)c.kills * 500,
                  "re-sent actions are bounded by what was in flight at each kill");
    json_decref(old_arn);
    json_decref(new_arn);
    free(child);
    searchd_stop(sd);
}
