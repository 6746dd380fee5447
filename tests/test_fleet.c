/* Several real `ddb2es run` processes sharing one configuration through
 * leases in DynamoDB (README "Several processes: leases in DynamoDB";
 * daemon/lease.h), against DynamoDB Local and the search double.
 *
 * DynamoDB Local gives a table's stream one open shard, so the
 * configuration follows several tables: each table's shard is one lease,
 * and the leases are what the workers share.  Who reads a shard is seen
 * from each worker's /metrics: ddb2es_shards{state="open"} per table (a
 * shard being read) and ddb2es_leases_held per table, polled every 100 ms.
 * Take-over times are measured and reported, not asserted with a timer
 * (the machine is shared); the bounds asserted are those the design
 * promises with room for the polling.
 *
 * `make check-fleet` runs the long version (tests/test_fleet.c with
 * DDB2ES_FLEET_LONG=1): SIGKILLs at random moments, a worker stopped and
 * started again, a fourth started late. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/ddbclient.h"
#include "tests/support/ddbproxy.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/promparse.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

TestSuite(fleet, .timeout = 600);

#define D_MS 2000      /* lease_duration of every worker */
#define NT 6           /* tables, so leases */
#define NW 4           /* workers at most */
#define POLL_MS 100

struct worker {
    struct proc p;
    char dir[512], conf[600], id[16];
    int port;
    bool up;
    int held[NT], open[NT]; /* the last poll; -1: not answering */
};

struct fleet {
    struct searchd *sd;
    char names[NT][64], idx[NT][64];
    struct e2e_table t[NT];
    struct wl wl[NT];
    char lease_table[64];
    struct worker w[NW];
    unsigned nw;
    /* what the polls saw */
    double overlap_since[NT];  /* when a second reader of the table was first seen; 0 = none */
    double overlap_max_s;      /* the longest time two workers read one table */
    double held_since[NT];
    double held_overlap_max_s; /* the same for the leases held */
    unsigned polls;
    uint64_t rng;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned pick(struct fleet *f, unsigned n)
{
    f->rng = f->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((f->rng >> 33) % n);
}

static void fleet_setup(struct fleet *f, const char *aws_endpoint, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    f->rng = seed;
    f->sd = searchd_start(NULL);
    ddbc_table_name(f->lease_table, sizeof(f->lease_table), "leases");
    for (int i = 0; i < NT; i++) {
        ddbc_table_name(f->names[i], sizeof(f->names[i]), "fleet");
        snprintf(f->idx[i], sizeof(f->idx[i]), "fleet-%d", i);
        ddbc_create_table(f->names[i], "pk", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
        f->t[i] = (struct e2e_table){ .name = f->names[i], .index = f->idx[i], .hash = "pk" };
        e2e_create_index(f->sd, f->idx[i]);
        wl_init(&f->wl[i], seed + (uint64_t)i, f->names[i], "pk", "S", NULL, NULL, 40);
    }
    for (unsigned k = 0; k < NW; k++) {
        struct worker *w = &f->w[k];
        char daemon[128], leases[256];
        const char *conf;

        w->port = httpget_free_port();
        snprintf(w->id, sizeof(w->id), "w%u", k);
        snprintf(daemon, sizeof(daemon), "metrics_listen = 127.0.0.1:%d\n", w->port);
        snprintf(leases, sizeof(leases),
                 "[leases]\ntable = %s\nworker_id = %s\nlease_duration = %ds\n", f->lease_table,
                 w->id, D_MS / 1000);
        conf = e2e_config_ex(aws_endpoint, searchd_url(f->sd), f->t, NT, daemon, leases, w->dir,
                             sizeof(w->dir));
        snprintf(w->conf, sizeof(w->conf), "%s", conf);
        for (int i = 0; i < NT; i++)
            w->held[i] = w->open[i] = -1;
    }
}

static void dump_log(const struct worker *w)
{
    char *log = proc_slurp(w->p.err_path);
    size_t len = strlen(log);

    cr_log_info("worker %s log%s:\n%s", w->id, len > 20000 ? " (its last 20000 bytes)" : "",
                log + (len > 20000 ? len - 20000 : 0));
    free(log);
}

static void start_worker(struct fleet *f, unsigned k)
{
    e2e_start(&f->w[k].p, f->w[k].conf);
    f->w[k].up = true;
    if (k + 1 > f->nw)
        f->nw = k + 1;
}

/* One poll of every worker's /metrics; the overlaps are measured here. */
static void poll_all(struct fleet *f)
{
    double t = now_s();

    for (unsigned k = 0; k < f->nw; k++) {
        struct worker *w = &f->w[k];
        struct prom p;
        char err[256], labels[160];
        long st = 0;
        char *body = w->up ? httpget(w->port, "GET", "/metrics", &st) : NULL;
        bool ok = st == 200 && prom_parse(body, &p, err, sizeof(err)) == 0;

        for (int i = 0; i < NT; i++) {
            const struct prom_sample *s;

            w->held[i] = w->open[i] = -1;
            if (!ok)
                continue;
            snprintf(labels, sizeof(labels), "table=\"%s\"", f->names[i]);
            s = prom_find(&p, "ddb2es_leases_held", labels);
            w->held[i] = s ? (int)s->value : -1;
            snprintf(labels, sizeof(labels), "state=\"open\",table=\"%s\"", f->names[i]);
            s = prom_find(&p, "ddb2es_shards", labels);
            w->open[i] = s ? (int)s->value : -1;
        }
        if (ok)
            prom_free(&p);
        free(body);
    }
    for (int i = 0; i < NT; i++) {
        int readers = 0, holders = 0;

        for (unsigned k = 0; k < f->nw; k++) {
            readers += f->w[k].open[i] > 0;
            holders += f->w[k].held[i] > 0;
        }
        if (readers > 1 && !f->overlap_since[i])
            f->overlap_since[i] = t;
        if (f->overlap_since[i] && t - f->overlap_since[i] > f->overlap_max_s)
            f->overlap_max_s = t - f->overlap_since[i];
        if (readers <= 1)
            f->overlap_since[i] = 0;
        if (holders > 1 && !f->held_since[i])
            f->held_since[i] = t;
        if (f->held_since[i] && t - f->held_since[i] > f->held_overlap_max_s)
            f->held_overlap_max_s = t - f->held_since[i];
        if (holders <= 1)
            f->held_since[i] = 0;
    }
    f->polls++;
}

/* Leases held by worker k at the last poll (-1: not answering). */
static int held_by(const struct fleet *f, unsigned k)
{
    int n = 0;

    for (int i = 0; i < NT; i++) {
        if (f->w[k].held[i] < 0)
            return -1;
        n += f->w[k].held[i];
    }
    return n;
}

/* Every lease held by the workers that are up, counts within one. */
static bool balanced(const struct fleet *f)
{
    int sum = 0, lo = NT + 1, hi = -1;

    for (unsigned k = 0; k < f->nw; k++) {
        int n;

        if (!f->w[k].up)
            continue;
        if ((n = held_by(f, k)) < 0)
            return false;
        sum += n;
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    return sum == NT && hi - lo <= 1;
}

/* Every lease held by the workers that are up (each shard read again). */
static bool all_held(const struct fleet *f)
{
    int sum = 0;

    for (unsigned k = 0; k < f->nw; k++) {
        int n = f->w[k].up ? held_by(f, k) : 0;

        if (n < 0)
            return false;
        sum += n;
    }
    return sum == NT;
}

/* Writes and polls for ms (a write about every 20 ms when writing). */
static void run_for(struct fleet *f, long ms, bool writing)
{
    double end = now_s() + (double)ms / 1000, next_poll = 0;

    while (now_s() < end) {
        if (now_s() >= next_poll) {
            poll_all(f);
            next_poll = now_s() + POLL_MS / 1000.0;
        }
        if (writing)
            wl_step(&f->wl[pick(f, NT)]);
        usleep(writing ? 20000 : 20000);
    }
}

/* Polls (writing or not) until pred holds; the seconds it took, or -1. */
static double until(struct fleet *f, bool (*pred)(const struct fleet *f), long ms, bool writing)
{
    double start = now_s();

    while (now_s() - start < (double)ms / 1000) {
        poll_all(f);
        if (pred(f))
            return now_s() - start;
        if (writing)
            wl_step(&f->wl[pick(f, NT)]);
        usleep(POLL_MS * 1000 / 2);
    }
    return -1;
}

static void dump_all(struct fleet *f)
{
    for (unsigned k = 0; k < f->nw; k++)
        dump_log(&f->w[k]);
}

static void need_equal(struct fleet *f, long ms)
{
    char why[512];

    for (int i = 0; i < NT; i++)
        if (!e2e_wait_equal(f->sd, &f->t[i], ms, why, sizeof(why))) {
            dump_all(f);
            cr_assert(0, "index %s = table %s: %s", f->idx[i], f->names[i], why);
        }
}

static int stop_worker(struct fleet *f, unsigned k)
{
    int rc = e2e_stop(&f->w[k].p, 20000);

    f->w[k].up = false;
    return rc;
}

static void fleet_teardown(struct fleet *f)
{
    for (unsigned k = 0; k < f->nw; k++)
        if (f->w[k].up) {
            int rc = stop_worker(f, k);

            if (rc != 0)
                dump_log(&f->w[k]);
            cr_expect_eq(rc, 0, "worker %s stops cleanly (%d)", f->w[k].id, rc);
        }
    searchd_stop(f->sd);
}

/* Three workers share six leases two each within 2 x lease_duration of the
 * last start; each shard is read by one worker at a time; a SIGTERM hands
 * the leaving worker's leases over (the others take them at their next
 * read, about a second) and its return takes its share back; the index
 * ends equal to every table. */
Test(fleet, three_workers_share_the_shards_and_hand_over_on_sigterm)
{
    struct fleet f;
    double t_bal, t_term, t_exit, t_back;
    int rc;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    fleet_setup(&f, ddbc_endpoint(), 17);
    for (unsigned k = 0; k < 3; k++)
        start_worker(&f, k);
    t_bal = until(&f, balanced, 2 * D_MS + 15000, true);
    if (t_bal < 0)
        dump_all(&f);
    cr_assert(t_bal >= 0, "three workers share the six leases two each");
    run_for(&f, 2 * D_MS, true);
    cr_assert(balanced(&f), "and keep them so (no ping-pong)");
    for (unsigned k = 0; k < 3; k++)
        cr_assert_eq(held_by(&f, k), 2, "worker %s holds 2", f.w[k].id);

    /* SIGTERM: worker 1 hands its two over. */
    {
        double t0 = now_s();

        proc_kill(&f.w[1].p, SIGTERM);
        rc = proc_wait(&f.w[1].p, 20000);
        t_exit = now_s() - t0;
        f.w[1].up = false;
        if (rc != 0)
            dump_log(&f.w[1]);
        cr_assert_eq(rc, 0, "the worker stops cleanly after releasing its leases");
        t_term = until(&f, all_held, 4 * D_MS, true);
        cr_assert(t_term >= 0, "the others took the released leases");
        t_term += t_exit;
    }
    start_worker(&f, 1);
    t_back = until(&f, balanced, 2 * D_MS + 15000, true);
    cr_assert(t_back >= 0, "the worker back takes its share again");
    run_for(&f, 1000, true);
    need_equal(&f, 30000);
    cr_log_info("fleet: balanced %.2f s after three starts; after a SIGTERM the worker exited "
                "in %.2f s and its leases were held again %.2f s after the signal; balanced "
                "again %.2f s after its restart; longest time two workers read one table: "
                "%.2f s (leases held by two: %.2f s), %u polls",
                t_bal, t_exit, t_term, t_back, f.overlap_max_s, f.held_overlap_max_s, f.polls);
    printf("fleet figures: balance %.2f s, sigterm exit %.2f s, take-over after sigterm %.2f s, "
           "rebalance %.2f s, max double-read %.2f s, max double-held %.2f s\n",
           t_bal, t_exit, t_term, t_back, f.overlap_max_s, f.held_overlap_max_s);
    /* Two polls apart at most: what one poll of three processes can skew. */
    cr_expect_leq(f.overlap_max_s, 2 * POLL_MS / 1000.0 + 0.5,
                  "a shard is read by one worker at a time (%.2f s)", f.overlap_max_s);
    fleet_teardown(&f);
}

static double metric_of(const struct worker *w, const char *name, const char *labels)
{
    return httpget_metric(w->port, name, labels);
}

static bool log_has(const struct worker *w, const char *text)
{
    char *log = proc_slurp(w->p.err_path);
    bool has = strstr(log, text) != NULL;

    free(log);
    return has;
}

/* A worker that stops answering (SIGSTOP: a host frozen, a long GC-like
 * pause) past lease_duration has its leases taken by the others after
 * lease_duration; when it runs again its renewals fail their condition, so
 * it stops reading those shards at once, drops what it had not
 * acknowledged (its documents still in the sink report to a shard kept
 * aside) and never writes their checkpoints again; it then takes its share
 * back by asking for it.  The index ends equal to every table. */
Test(fleet, a_worker_paused_past_its_lease_loses_its_shards_and_comes_back)
{
    struct fleet f;
    double t_take, t_back;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    fleet_setup(&f, ddbc_endpoint(), 23);
    start_worker(&f, 0);
    start_worker(&f, 1);
    cr_assert(until(&f, balanced, 2 * D_MS + 15000, true) >= 0, "two workers, three leases each");
    /* Bulk requests answered 3 s late (the double's delay fault): the
     * paused worker has documents in the sink when its leases go. */
    cr_assert_eq(searchd_faults(f.sd, "{\"match\":\"bulk\",\"delay_ms\":3000,\"count\":8}"),
                 200);
    run_for(&f, 500, true);
    proc_kill(&f.w[0].p, SIGSTOP);
    f.w[0].up = false; /* its metrics do not answer: the others must hold everything */
    t_take = until(&f, all_held, 4 * D_MS + 5000, true);
    if (t_take < 0)
        dump_all(&f);
    cr_assert(t_take >= 0, "the paused worker's leases were taken");
    run_for(&f, 500, true);
    proc_kill(&f.w[0].p, SIGCONT);
    f.w[0].up = true;
    t_back = until(&f, balanced, 4 * D_MS + 15000, true);
    if (t_back < 0)
        dump_all(&f);
    cr_assert(t_back >= 0, "the worker back takes its share again");
    run_for(&f, 1000, true);
    cr_assert_leq(f.overlap_max_s, 2 * POLL_MS / 1000.0 + 0.5,
                  "a shard is read by one worker at a time (%.2f s)", f.overlap_max_s);
    cr_assert(log_has(&f.w[0], "lease lost"), "it said its leases were lost");
    {
        char *log = proc_slurp(f.w[0].p.err_path), *at = strstr(log, "lease lost");

        if (at)
            printf("fleet: the paused worker said: %.*s\n", (int)strcspn(at, "\n"), at);
        free(log);
    }
    cr_assert_gt(metric_of(&f.w[0], "ddb2es_lease_events_total", "event=\"lost\""), 0);
    run_for(&f, 1000, true);
    need_equal(&f, 30000);
    printf("fleet figures: leases of a paused worker taken %.2f s after the pause "
           "(lease_duration %d ms); balanced %.2f s after it ran again; max double-read %.2f s\n",
           t_take, D_MS, t_back, f.overlap_max_s);
    cr_expect_leq(f.overlap_max_s, 2 * POLL_MS / 1000.0 + 0.5,
                  "a shard is read by one worker at a time (%.2f s)", f.overlap_max_s);
    fleet_teardown(&f);
}

static bool both_renewing(const struct fleet *f)
{
    return metric_of(&f->w[0], "ddb2es_lease_renewing", "") == 1 &&
           metric_of(&f->w[1], "ddb2es_lease_renewing", "") == 1;
}

#define THROTTLED                                                                                  \
    "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException\","   \
    "\"message\":\"The level of configured provisioned throughput for the table was exceeded\"}"

/* https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/CommonErrors.html
 * (ThrottlingException, HTTP 400) and the table's own
 * ProvisionedThroughputExceededException: a proxy in front of DynamoDB
 * Local answers every call so for 1.5 s (tests/support/ddbproxy.c), the
 * lease table's and Streams' alike (the daemon has one endpoint).  With
 * lease_duration 6 s (renewals every 2 s, the deadline 5.4 s after the last
 * one) no lease is lost, none moves, and no record is lost.  Then 8 s of
 * it: past the deadline each worker gives its leases up and stops reading,
 * says why, and takes its share back when the table answers again. */
Test(fleet, throttling_shorter_than_the_lease_loses_nothing_and_longer_stops_reading)
{
    struct fleet f;
    struct ddbproxy *p;
    int before[2];
    double t_back, t_ready;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    p = ddbproxy_start(ddbc_endpoint());
    fleet_setup(&f, ddbproxy_url(p), 31);
    for (unsigned k = 0; k < 2; k++) {
        /* lease_duration 6 s for this test */
        char cmd[1400];

        snprintf(cmd, sizeof(cmd), "sed -i 's/^lease_duration = .*/lease_duration = 6s/' %s",
                 f.w[k].conf);
        cr_assert_eq(system(cmd), 0);
        start_worker(&f, k);
    }
    cr_assert(until(&f, balanced, 20000, true) >= 0, "two workers, three leases each");
    run_for(&f, 2100, true);
    for (unsigned k = 0; k < 2; k++)
        before[k] = held_by(&f, k);
    ddbproxy_refuse(p, 400, THROTTLED);
    run_for(&f, 1500, true);
    ddbproxy_refuse(p, 0, NULL);
    cr_assert_gt(ddbproxy_refused(p), 0);
    run_for(&f, 4500, true);
    /* A renewal in its backoff when the table answered again lands at its
     * next try: on a loaded machine (a sanitizer build) after the 4.5 s. */
    cr_assert(until(&f, both_renewing, 15000, true) >= 0, "both renew again");
    for (unsigned k = 0; k < 2; k++) {
        cr_assert_eq(metric_of(&f.w[k], "ddb2es_lease_events_total", "event=\"lost\""), 0,
                     "worker %s lost no lease", f.w[k].id);
        cr_assert_eq(held_by(&f, k), before[k], "and holds what it held");
    }
    need_equal(&f, 30000);
    printf("fleet figures: %u calls refused during 1.5 s of throttling, no lease lost\n",
           ddbproxy_refused(p));

    /* Longer than the lease: each worker gives its leases up at its
     * deadline, stops reading and says why (log, /readyz, a metric), then
     * takes its share back once the table answers; no record is lost. */
    ddbproxy_refuse(p, 400, THROTTLED);
    run_for(&f, 8000, true);
    for (unsigned k = 0; k < 2; k++) {
        long st;
        char *body = httpget(f.w[k].port, "GET", "/readyz", &st);

        cr_assert_eq(st, 503, "worker %s is not ready: %s", f.w[k].id, body);
        cr_assert(strstr(body, "lease table"), "and says why: %s", body);
        free(body);
        cr_assert_eq(metric_of(&f.w[k], "ddb2es_lease_renewing", ""), 0);
        cr_assert_eq(held_by(&f, k), 0, "it gave its leases up");
        cr_assert(log_has(&f.w[k], "lease table: "), "its log says why");
    }
    cr_assert_leq(f.overlap_max_s, 2 * POLL_MS / 1000.0 + 0.5, "nobody read meanwhile");
    ddbproxy_refuse(p, 0, NULL);
    t_back = until(&f, balanced, 30000, true);
    cr_assert(t_back >= 0, "the leases are taken again");
    /* Ready again once a heartbeat lands (one in retry may take a while). */
    t_ready = until(&f, both_renewing, 30000, true);
    cr_assert(t_ready >= 0, "both renew again");
    need_equal(&f, 30000);
    printf("fleet figures: after 8 s of refusals (lease_duration 6 s) the leases were held "
           "again %.2f s and both workers ready %.2f s after the table answered\n",
           t_back, t_ready);
    fleet_teardown(&f);
    ddbproxy_stop(p);
}

/* `ddb2es <cmd> -c conf [extra]`: its exit code; its stdout in *out
 * (caller frees). */
static int ddb2es_cmd(const char *conf, const char *cmd, const char *extra, char **out)
{
    static char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), cmd, "-c", conf, extra, NULL };
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", NULL };
    struct proc p;
    int rc = proc_run(argv, env, 30000, &p);

    *out = proc_slurp(p.out_path);
    if (rc != 0) {
        char *err = proc_slurp(p.err_path);

        cr_log_info("ddb2es %s %s: exit %d: %s%s", cmd, extra ? extra : "", rc, *out, err);
        free(err);
    }
    return rc;
}

/* README "Several processes", "From one process and back": `status` shows
 * every shard's owner, checkpoint, lease age and done; `check` verifies the
 * lease table; `status --write-checkpoints` refuses while a worker runs,
 * then writes checkpoints.json from the table, and one process started on
 * it without [leases] goes on from those positions (it reads every shard
 * after its checkpoint, not from the start) to index = table. */
Test(fleet, status_shows_the_owners_and_write_checkpoints_goes_back_to_one_process)
{
    struct fleet f;
    char *out, conf1[700], cmd[1600];
    json_t *model, *sh;
    size_t i, after = 0;
    struct proc one;
    char *log;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    fleet_setup(&f, ddbc_endpoint(), 41);
    start_worker(&f, 0);
    start_worker(&f, 1);
    cr_assert(until(&f, balanced, 2 * D_MS + 15000, true) >= 0, "two workers, three leases each");
    run_for(&f, 1500, true);

    cr_assert_eq(ddb2es_cmd(f.w[0].conf, "status", "--json", &out), 0);
    model = json_loads(out, 0, NULL);
    cr_assert_not_null(model, "status --json prints JSON: %s", out);
    cr_assert_str_eq(json_string_value(json_object_get(model, "lease_table")), f.lease_table);
    cr_assert_eq(json_array_size(json_object_get(model, "shards")), NT);
    json_array_foreach(json_object_get(model, "shards"), i, sh)
    {
        const char *o = json_string_value(json_object_get(sh, "owner"));

        cr_assert(o && (strcmp(o, "w0") == 0 || strcmp(o, "w1") == 0), "an owner: %s", out);
        cr_assert(json_is_integer(json_object_get(sh, "lease_age_s")), "a lease age: %s", out);
        cr_assert(json_is_false(json_object_get(sh, "done")));
        cr_assert(json_is_string(json_object_get(sh, "checkpoint")), "a checkpoint: %s", out);
    }
    cr_assert_eq(json_array_size(json_object_get(model, "workers")), 2);
    json_decref(model);
    free(out);
    cr_assert_eq(ddb2es_cmd(f.w[0].conf, "status", NULL, &out), 0);
    cr_assert(strstr(out, "OWNER") && strstr(out, "LEASE AGE") && strstr(out, " w1 "),
              "the text lists the owners: %s", out);
    free(out);
    cr_assert_eq(ddb2es_cmd(f.w[0].conf, "check", NULL, &out), 0);
    cr_assert(strstr(out, "[leases] table") && strstr(out, "found, key schema right"),
              "check verifies the lease table: %s", out);
    free(out);
    /* (w0's state directory is locked by w0: the same configuration with a
     * state directory of its own.) */
    cr_assert_eq(ddb2es_cmd(f.w[2].conf, "status", "--write-checkpoints", &out), 75,
                 "refused while the workers run");
    free(out);

    /* Every worker stopped; more writes nobody reads yet. */
    for (unsigned k = 0; k < 2; k++)
        cr_assert_eq(stop_worker(&f, k), 0);
    for (int n = 0; n < 60; n++)
        wl_step(&f.wl[pick(&f, NT)]);
    cr_assert_eq(ddb2es_cmd(f.w[0].conf, "status", "--write-checkpoints", &out), 0);
    cr_assert(strstr(out, "wrote 6 shard(s)"), "%s", out);
    free(out);

    /* One process, the same state directory, no [leases]. */
    snprintf(conf1, sizeof(conf1), "%s/one.conf", f.w[0].dir);
    snprintf(cmd, sizeof(cmd), "sed '/^\\[leases\\]/,/^lease_duration/d' %s > %s", f.w[0].conf,
             conf1);
    cr_assert_eq(system(cmd), 0);
    e2e_start(&one, conf1);
    need_equal(&f, 30000);
    cr_assert_eq(e2e_stop(&one, 20000), 0);
    log = proc_slurp(one.err_path);
    for (const char *p = log; (p = strstr(p, " starts at after ")); p++)
        after++;
    free(log);
    cr_assert_geq(after, NT, "every shard resumed after its checkpoint (%zu)", after);
    searchd_stop(f.sd);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Index = table while nothing is written: no document is older than its
 * item (nor missing, nor left after a delete). */
static void quiet_check(struct fleet *f, const char *when)
{
    char why[512];

    for (int i = 0; i < NT; i++)
        if (!e2e_wait_equal(f->sd, &f->t[i], 30000, why, sizeof(why))) {
            dump_all(f);
            cr_assert(0, "%s: index %s = table %s: %s", when, f->idx[i], f->names[i], why);
        }
}

/* The long version (make check-fleet): one worker SIGKILLed at random
 * moments and started again (12 times), another stopped with SIGTERM and
 * started again, a fourth started late, under a random workload; index =
 * table at every quiet check and at the end; the take-over times after
 * SIGKILL (expected about lease_duration plus two reads) and SIGTERM
 * (about one read) are measured and reported. */
Test(fleet, sigkills_a_sigterm_and_a_late_fourth_keep_the_index_equal)
{
    struct fleet f;
    double kill_take[16], term_take = -1, t;
    unsigned kills = 0;
    uint64_t seed = getenv("FLEET_SEED") ? strtoull(getenv("FLEET_SEED"), NULL, 10)
                                         : (uint64_t)time(NULL);

    if (!getenv("DDB2ES_FLEET_LONG"))
        cr_skip_test("the long fleet test runs with make check-fleet");
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    printf("fleet: seed %llu (FLEET_SEED=%llu repeats it)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    fleet_setup(&f, ddbc_endpoint(), seed);
    for (unsigned k = 0; k < 3; k++)
        start_worker(&f, k);
    cr_assert(until(&f, balanced, 2 * D_MS + 15000, true) >= 0);
    while (kills < 12) {
        run_for(&f, 300 + (long)pick(&f, 3700), true);
        proc_kill(&f.w[0].p, SIGKILL);
        proc_wait(&f.w[0].p, 5000);
        f.w[0].up = false;
        t = until(&f, all_held, 6 * D_MS + 10000, true);
        if (t < 0)
            dump_all(&f);
        cr_assert(t >= 0, "kill %u: the others took the killed worker's leases", kills + 1);
        kill_take[kills++] = t;
        run_for(&f, (long)pick(&f, 2000), true);
        start_worker(&f, 0);
        if (kills == 4) {
            double t0 = now_s();

            cr_assert_eq(stop_worker(&f, 1), 0, "SIGTERM: a clean stop");
            t = until(&f, all_held, 4 * D_MS, true);
            cr_assert(t >= 0, "the others took the released leases");
            term_take = t + (now_s() - t0 - t);
            start_worker(&f, 1);
        }
        if (kills == 6)
            start_worker(&f, 3); /* the fourth, late */
        if (kills % 3 == 0)
            quiet_check(&f, "a quiet check");
    }
    t = until(&f, balanced, 4 * D_MS + 20000, true);
    cr_assert(t >= 0, "four workers settle within one of each other");
    quiet_check(&f, "the end");
    qsort(kill_take, kills, sizeof(*kill_take), cmp_double);
    printf("fleet figures (long): %u SIGKILLs: take-over min %.2f s, median %.2f s, max %.2f s "
           "(lease_duration %d ms); after SIGTERM %.2f s; four workers balanced %.2f s after "
           "the last restart; max double-read %.2f s over %u polls\n",
           kills, kill_take[0], kill_take[kills / 2], kill_take[kills - 1], D_MS, term_take, t,
           f.overlap_max_s, f.polls);
    cr_expect_leq(f.overlap_max_s, 2 * POLL_MS / 1000.0 + 0.5,
                  "a shard is read by one worker at a time (%.2f s)", f.overlap_max_s);
    fleet_teardown(&f);
}

/* README "From one process and back": a state directory whose
 * checkpoints.json holds positions seeds the lease table when the process
 * is started with [leases]: the worker goes on from those positions (not
 * from the shards' start), the file is renamed checkpoints.json.seeded, and
 * the index ends equal to the tables. */
Test(fleet, a_checkpoint_file_seeds_the_lease_table_once)
{
    struct fleet f;
    char one_conf[700], cmd[1600], path[700], *log;
    struct proc one;
    size_t after = 0;
    struct stat st;

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running");
    fleet_setup(&f, ddbc_endpoint(), 53);
    /* One process first, on w0's state directory, without [leases]. */
    snprintf(one_conf, sizeof(one_conf), "%s/one.conf", f.w[0].dir);
    snprintf(cmd, sizeof(cmd), "sed '/^\\[leases\\]/,/^lease_duration/d' %s > %s", f.w[0].conf,
             one_conf);
    cr_assert_eq(system(cmd), 0);
    for (int n = 0; n < 60; n++)
        wl_step(&f.wl[pick(&f, NT)]);
    e2e_start(&one, one_conf);
    need_equal(&f, 30000);
    cr_assert_eq(e2e_stop(&one, 20000), 0);
    for (int n = 0; n < 60; n++)
        wl_step(&f.wl[pick(&f, NT)]);
    /* Now with [leases], on the same state directory. */
    start_worker(&f, 0);
    cr_assert(until(&f, all_held, 20000, true) >= 0, "the worker holds every lease");
    need_equal(&f, 30000);
    snprintf(path, sizeof(path), "%s/state/checkpoints.json.seeded", f.w[0].dir);
    cr_assert_eq(stat(path, &st), 0, "the file was renamed once it seeded the table");
    snprintf(path, sizeof(path), "%s/state/checkpoints.json", f.w[0].dir);
    cr_assert_neq(stat(path, &st), 0, "and is not there to seed again");
    log = proc_slurp(f.w[0].p.err_path);
    cr_assert(strstr(log, "seeded from the checkpoint file: 6 items created"), "%s", log);
    for (const char *p = log; (p = strstr(p, " starts at after ")); p++)
        after++;
    free(log);
    cr_assert_geq(after, NT, "every shard went on after its checkpoint (%zu)", after);
    fleet_teardown(&f);
}
