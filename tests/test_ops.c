/* Operating ddb2es, end to end against DynamoDB Local and the search double:
 * the service manager's notifications (READY only once the sink answers,
 * the watchdog rate, STATUS, STOPPING), the metrics endpoint under a strict
 * parser, a sidecar configured by the environment alone, secrets that never
 * reach the log, and `status` beside a running daemon. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "base/buf.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/promparse.h"
#include "tests/support/searchd_ctl.h"

TestSuite(ops, .timeout = 90);

#define FAST "idle_poll_interval = 200ms\n"

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("ddb2es log:\n%s", log);
    free(log);
}

/* A hash-only NEW_IMAGE table with a lowercase name (it is the index). */
static void new_table(char *name, size_t len, const char *prefix, struct e2e_table *t)
{
    ddbc_table_name(name, len, prefix);
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    memset(t, 0, sizeof(*t));
    t->name = t->index = name;
    t->hash = "id";
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_IMAGE");
}

static void put(const char *table, int i, const char *extra)
{
    char item[512];

    snprintf(item, sizeof(item), "{\"id\":{\"S\":\"k%d\"},\"n\":{\"N\":\"%d\"}%s%s}", i, i,
             extra ? "," : "", extra ? extra : "");
    ddbc_put(table, item);
}

/* ---- the service manager's socket -------------------------------------- */

struct notify_sock {
    int fd;
    char path[108];
};

static void notify_open(struct notify_sock *n)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *tmp = getenv("TMPDIR");

    snprintf(n->path, sizeof(n->path), "%s/notify-%d.sock", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    unlink(n->path);
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(n->fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", n->path);
    cr_assert_eq(bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
}

/* The next datagram within ms, or "" on timeout (static buffer). */
static const char *notify_next(struct notify_sock *n, long ms)
{
    static char msg[4096];
    struct pollfd p = { .fd = n->fd, .events = POLLIN };
    ssize_t len;

    msg[0] = '\0';
    if (poll(&p, 1, (int)(ms > 0 ? ms : 0)) != 1)
        return msg;
    len = recv(n->fd, msg, sizeof(msg) - 1, 0);
    msg[len > 0 ? len : 0] = '\0';
    return msg;
}

static void start_env(struct proc *p, const char *conf, const char *const *env)
{
    static char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "run", "-c", conf, NULL };

    proc_start(p, argv, env);
}

Test(ops, notify_ready_after_the_sink_answers_watchdog_status_stopping)
{
    char name[128], dir[256], env_sock[160];
    struct e2e_table t;
    struct notify_sock ns;
    struct searchd *sd;
    struct proc p;
    const char *conf, *m;
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                          "WATCHDOG_USEC=400000", env_sock, NULL };
    long t_down, t_ready = -1, until;
    bool saw_waiting = false, saw_following = false, saw_stopping = false;
    unsigned watchdogs = 0;

    need_ddb();
    new_table(name, sizeof(name), "notify", &t);
    put(name, 1, NULL);
    sd = searchd_start(NULL);
    notify_open(&ns);
    snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", ns.path);
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, FAST, NULL, dir, sizeof(dir));
    /* The search engine refuses every connection for 2.5 s. */
    cr_assert_eq(searchd_faults(sd, "{\"down_ms\":2500}"), 200);
    t_down = now_ms();
    start_env(&p, conf, env);

    until = now_ms() + 20000;
    while (t_ready < 0 && now_ms() < until) {
        m = notify_next(&ns, until - now_ms());
        if (strstr(m, "READY=1"))
            t_ready = now_ms();
        if (strstr(m, "STATUS=starting") && strstr(m, "not answering"))
            saw_waiting = true;
    }
    if (t_ready < 0)
        dump_log(&p);
    cr_assert_geq(t_ready, 0, "READY=1 arrived");
    cr_expect_geq(t_ready - t_down, 2400, "READY=1 only once the engine answers (after %ld ms)",
                  t_ready - t_down);
    cr_expect(saw_waiting, "STATUS said it waits for the search engine");

    /* The watchdog: every 200 ms for WATCHDOG_USEC = 400 ms. */
    until = now_ms() + 2000;
    while (now_ms() < until) {
        m = notify_next(&ns, until - now_ms());
        watchdogs += strstr(m, "WATCHDOG=1") != NULL;
        if (strstr(m, "STATUS=following 1 table, 1 shard"))
            saw_following = true;
    }
    cr_expect(watchdogs >= 7 && watchdogs <= 13, "%u WATCHDOG=1 in 2 s, expected about 10",
              watchdogs);
    {
        char why[512];
        bool ok = e2e_wait_equal(sd, &t, 20000, why, sizeof(why));

        if (!ok)
            dump_log(&p);
        cr_assert(ok, "%s", why);
    }
    until = now_ms() + 3000;
    while (!saw_following && now_ms() < until) /* the lag is in the line once a record was read */
        saw_following = strstr(notify_next(&ns, until - now_ms()), "lag ") != NULL;
    cr_expect(saw_following, "STATUS=following ... lag Ns");

    proc_kill(&p, SIGTERM);
    until = now_ms() + 5000;
    while (!saw_stopping && now_ms() < until)
        saw_stopping = strstr(notify_next(&ns, until - now_ms()), "STOPPING=1") != NULL;
    cr_expect(saw_stopping, "STOPPING=1 after SIGTERM");
    cr_assert_eq(proc_wait(&p, 15000), 0, "a clean stop exits 0");
    close(ns.fd);
    unlink(ns.path);
    searchd_stop(sd);
}

/* ---- metrics ------------------------------------------------------------ */

static const char *const spec_metrics[] = {
    "ddb2es_records_read_total",      "ddb2es_docs_indexed_total",
    "ddb2es_docs_deleted_total",      "ddb2es_bulk_requests_total",
    "ddb2es_bulk_item_failures_total", "ddb2es_dlq_total",
    "ddb2es_iterator_age_seconds",    "ddb2es_shards",
    "ddb2es_checkpoint_writes_total", "ddb2es_bulk_seconds",
};

static void scrape(int port, struct prom *out)
{
    char err[256];
    long st;
    char *body = httpget(port, "GET", "/metrics", &st);

    cr_assert_eq(st, 200, "GET /metrics: %ld", st);
    cr_assert_eq(prom_parse(body, out, err, sizeof(err)), 0, "%s\n%s", err, body);
    free(body);
}

static double val(const struct prom *p, const char *name, const char *labels)
{
    const struct prom_sample *s = prom_find(p, name, labels);

    cr_assert_not_null(s, "no %s{%s}", name, labels);
    return s->value;
}

Test(ops, metrics_scrapes_parse_strictly_and_counters_only_grow)
{
    char name[128], dir[256], listen[64], tl[200], why[512];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    struct prom a, b;
    const char *conf;
    char *body;
    long st;
    int port = httpget_free_port();
    size_t failures = 0;

    need_ddb();
    new_table(name, sizeof(name), "metrics", &t);
    snprintf(tl, sizeof(tl), "table=\"%s\"", name);
    sd = searchd_start(NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    e2e_metrics_listen = listen;
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, FAST, NULL, dir, sizeof(dir));
    e2e_start(&p, conf);
    /* Once the engine was probed (its canary is a bulk too), the first item
     * of the first bulk is refused once with a 429. */
    cr_assert(proc_wait_for_text(p.err_path, "the search engine is", 20000));
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"item_status\":429,\"items\":1}"), 200);
    for (int i = 0; i < 5; i++)
        put(name, i, NULL);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);

    scrape(port, &a);
    for (size_t i = 0; i < sizeof(spec_metrics) / sizeof(spec_metrics[0]); i++)
        cr_expect_not_null(prom_family(&a, spec_metrics[i]), "%s missing", spec_metrics[i]);
    cr_expect_eq(val(&a, "ddb2es_records_read_total", tl), 5);
    cr_expect_eq(val(&a, "ddb2es_docs_indexed_total", tl), 5);
    {
        char sl[256];

        snprintf(sl, sizeof(sl), "state=\"open\",%s", tl); /* labels sorted by name */
        cr_expect_eq(val(&a, "ddb2es_shards", sl), 1);
    }
    for (size_t i = 0; i < a.nsamples; i++)
        if (strcmp(a.samples[i].name, "ddb2es_bulk_item_failures_total") == 0 &&
            strstr(a.samples[i].labels, tl))
            failures += (size_t)a.samples[i].value;
    cr_expect_eq(failures, 1, "the 429 item is counted under its table and type");
    cr_expect_geq(val(&a, "ddb2es_bulk_seconds_count", ""), 1);
    cr_expect_geq(val(&a, "ddb2es_bulk_requests_total", "status=\"2xx\""), 1);
    /* DynamoDB Local rounds ApproximateCreationDateTime down to the minute. */
    cr_expect_lt(val(&a, "ddb2es_iterator_age_seconds", tl), 120);

    for (int i = 5; i < 8; i++)
        put(name, i, NULL);
    ddbc_delete(name, "{\"id\":{\"S\":\"k0\"}}");
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);
    scrape(port, &b);
    for (size_t i = 0; i < a.nsamples; i++) {
        const struct prom_sample *s = &a.samples[i], *s2;
        const struct prom_family *f = prom_family(&a, s->family);

        if (strcmp(f->type, "counter") != 0 && strcmp(f->type, "histogram") != 0)
            continue;
        if (strcmp(s->name, "ddb2es_bulk_seconds_bucket") == 0)
            continue; /* buckets differ by le only; checked through _count */
        s2 = prom_find(&b, s->name, s->labels);
        cr_assert_not_null(s2, "%s{%s} gone in the second scrape", s->name, s->labels);
        cr_expect_geq(s2->value, s->value, "%s{%s} went down", s->name, s->labels);
    }
    cr_expect_eq(val(&b, "ddb2es_records_read_total", tl), 9);
    cr_expect_eq(val(&b, "ddb2es_docs_deleted_total", tl), 1);
    cr_expect_gt(val(&b, "ddb2es_checkpoint_writes_total", ""), 0);
    prom_free(&a);
    prom_free(&b);

    body = httpget(port, "GET", "/healthz", &st);
    cr_expect_eq(st, 200);
    free(body);
    body = httpget(port, "GET", "/readyz", &st);
    cr_expect_eq(st, 200, "%s", body);
    cr_expect(strstr(body, "following 1 table") != NULL, "%s", body);
    free(body);
    body = httpget(port, "HEAD", "/metrics", &st);
    cr_expect_eq(st, 200);
    cr_expect_str_eq(body, "");
    free(body);
    body = httpget(port, "GET", "/", &st);
    cr_expect_eq(st, 404);
    free(body);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* ---- a sidecar: the environment only ------------------------------------ */

Test(ops, sidecar_runs_from_the_environment_alone_with_json_logs)
{
    char name[128], dir[256], why[512], state[300];
    char v_tables[200], v_url[200], v_endpoint[200], v_state[400];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    static char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "run", NULL };
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                          "DDB2ES_AWS_REGION=us-east-1", "DDB2ES_SINK_AUTH=none",
                          "DDB2ES_SINK_FLUSH_INTERVAL=100ms", "DDB2ES_DAEMON_METRICS_LISTEN=",
                          "DDB2ES_DAEMON_LOG_FORMAT=json", "DDB2ES_DAEMON_LOG_LEVEL=debug",
                          "DDB2ES_DAEMON_IDLE_POLL_INTERVAL=200ms",
                          "DDB2ES_DAEMON_SHUTDOWN_TIMEOUT=5s", v_tables, v_url, v_endpoint,
                          v_state, NULL };
    struct stat st;
    char *log, *line, *save;
    size_t lines = 0, with_table = 0, with_shard = 0;
    long t0;

    need_ddb();
    if (access("/etc/ddb2es/ddb2es.conf", F_OK) == 0)
        cr_skip_test("/etc/ddb2es/ddb2es.conf exists on this machine: ddb2es would read it");
    new_table(name, sizeof(name), "sidecar", &t);
    sd = searchd_start(NULL);
    snprintf(dir, sizeof(dir), "%s/sidecar-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(state, sizeof(state), "%s/state", dir);
    snprintf(v_tables, sizeof(v_tables), "DDB2ES_TABLES=%s", name);
    snprintf(v_url, sizeof(v_url), "DDB2ES_SINK_URL=%s", searchd_url(sd));
    snprintf(v_endpoint, sizeof(v_endpoint), "DDB2ES_AWS_ENDPOINT=%s", ddbc_endpoint());
    snprintf(v_state, sizeof(v_state), "DDB2ES_DAEMON_STATE_DIR=%s", state);
    unsetenv("DDB2ES_CONFIG");
    proc_start(&p, argv, env);
    for (int i = 0; i < 4; i++)
        put(name, i, NULL);
    if (!e2e_wait_equal(sd, &t, 30000, why, sizeof(why)))
        dump_log(&p);
    cr_assert(e2e_wait_equal(sd, &t, 1000, why, sizeof(why)), "%s", why);

    t0 = now_ms();
    proc_kill(&p, SIGTERM);
    cr_assert_eq(proc_wait(&p, 15000), 0, "SIGTERM: a clean stop");
    cr_expect_lt(now_ms() - t0, 5000, "within shutdown_timeout");
    {
        char path[400];

        snprintf(path, sizeof(path), "%s/checkpoints.json", state);
        cr_expect_eq(stat(path, &st), 0, "the checkpoint is in the state dir from the environment");
    }
    log = proc_slurp(p.err_path);
    for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);

        cr_assert_not_null(j, "a log line that is not one JSON object: %s", line);
        cr_expect(json_is_string(json_object_get(j, "time")), "%s", line);
        cr_expect(json_is_string(json_object_get(j, "level")), "%s", line);
        cr_expect(json_is_string(json_object_get(j, "message")), "%s", line);
        with_table += json_is_string(json_object_get(j, "table"));
        with_shard += json_is_string(json_object_get(j, "shard"));
        json_decref(j);
        lines++;
    }
    cr_expect_gt(lines, 5);
    cr_expect_gt(with_table, 0, "some lines name the table");
    cr_expect_gt(with_shard, 0, "some lines name the shard");
    free(log);
    searchd_stop(sd);
}

/* ---- secrets ------------------------------------------------------------ */

#define PASSWORD "pw-S3cr3t-basic-9f1c"
#define API_KEY "a2lkOmFrLVMzY3IzdC1hcGlrZXktNzdlMA==" /* base64("kid:ak-S3cr3t-apikey-77e0") */
#define API_KEY_RAW "ak-S3cr3t-apikey-77e0"
#define AWS_SECRET "aws-S3cr3t-0b7d4e1a"
#define AWS_TOKEN "tok-S3cr3t-55aa"
#define HMAC_KEY "hm-S3cr3t-key-5a2c"

static void write_secret(const char *dir, const char *name, const char *content)
{
    char path[400];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", content);
    fclose(f);
}

static void run_with_auth(const char *auth)
{
    char name[128], dir[256], why[512], extra_sink[2048], extra_table[1024];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    const char *conf;
    const char *env[] = { "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=" AWS_SECRET,
                          "AWS_SESSION_TOKEN=" AWS_TOKEN, NULL };
    static const char *const secrets[] = { PASSWORD, API_KEY, API_KEY_RAW, AWS_SECRET,
                                           AWS_TOKEN, HMAC_KEY,
                                           "dTpwdy1TM2NyM3QtYmFzaWMtOWYxYw", /* base64 u:pw */
                                           "Signature=", "Authorization:" };
    char *log;

    need_ddb();
    new_table(name, sizeof(name), "secret", &t);
    if (strcmp(auth, "basic") == 0)
        sd = searchd_start("--auth", "basic", "--user", "u", "--password", PASSWORD, NULL);
    else
        sd = searchd_start("--auth", "apikey", "--api-key", API_KEY, NULL);
    conf = e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 0, FAST, NULL, dir, sizeof(dir));
    write_secret(dir, "password", PASSWORD);
    write_secret(dir, "apikey", API_KEY);
    write_secret(dir, "hmackey", HMAC_KEY);
    /* The sink section is rewritten with the auth settings; the table hashes
     * one attribute. */
    snprintf(extra_sink, sizeof(extra_sink),
             "[sink]\nurl = %s\nauth = %s\nusername = u\npassword_file = %s/password\n"
             "api_key_file = %s/apikey\nflush_interval = 100ms\ndlq_path = %s/dlq.ndjson\n",
             searchd_url(sd), auth, dir, dir, dir);
    snprintf(extra_table, sizeof(extra_table),
             "\n[table %s]\nindex = %s\nhmac = email\nhmac_key_file = %s/hmackey\n", name, name,
             dir);
    {
        /* e2e_config_ex wrote [sink] with auth = none: replace that section. */
        char *text = proc_slurp(conf), *sink = strstr(text, "[sink]");
        FILE *f;

        cr_assert_not_null(sink);
        *sink = '\0';
        f = fopen(conf, "w");
        fprintf(f, "%s%s%s", text, extra_sink, extra_table);
        fclose(f);
        free(text);
    }
    start_env(&p, conf, env);
    for (int i = 0; i < 3; i++)
        put(name, i, "\"email\":{\"S\":\"someone@example.com\"}");
    {
        json_t *dump;
        bool ok = false;
        long until = now_ms() + 30000;

        /* The hashed attribute differs from the table, so wait for the
         * documents rather than equality. */
        while (!ok && now_ms() < until) {
            json_t *doc = json_object_get(json_object_get((dump = e2e_dump(sd)), name), "k2");
            const char *email =
                json_string_value(json_object_get(json_object_get(doc, "source"), "email"));

            size_t live = 0;
            const char *id;
            json_t *d;

            /* the probe's canary leaves a tombstone: count the documents */
            json_object_foreach(json_object_get(dump, name), id, d)
                live += !json_is_true(json_object_get(d, "deleted"));
            ok = live == 3 && email;
            if (ok)
                cr_expect(strlen(email) == 64 && !strchr(email, '@'),
                          "the attribute is replaced by its HMAC: %s", email);
            json_decref(dump);
            if (!ok)
                usleep(100000);
        }
        (void)why;
        if (!ok)
            dump_log(&p);
        cr_assert(ok, "the documents reached the engine with %s auth", auth);
    }
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    log = proc_slurp(p.err_path);
    cr_assert(strstr(log, "debug") != NULL, "the run logged at debug");
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        cr_expect_null(strstr(log, secrets[i]), "the log holds \"%s\"", secrets[i]);
    free(log);
    searchd_stop(sd);
}

Test(ops, secrets_never_reach_the_log_basic_auth)
{
    run_with_auth("basic");
}

Test(ops, secrets_never_reach_the_log_api_key)
{
    run_with_auth("apikey");
}

/* ---- status beside a running daemon ------------------------------------- */

Test(ops, status_reads_the_checkpoint_and_the_live_endpoint_while_running)
{
    char name[128], dir[256], listen[64], why[512], conf_copy[512];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p, s;
    static char bin[512];
    const char *argv_text[] = { proc_path("ddb2es", bin, sizeof(bin)), "status", "-c", conf_copy,
                                NULL };
    const char *argv_json[] = { bin, "status", "-c", conf_copy, "--json", NULL };
    json_t *j, *live, *tab, *sh;
    json_error_t jerr;
    char *out;
    size_t i;
    long until;

    need_ddb();
    new_table(name, sizeof(name), "status", &t);
    sd = searchd_start(NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", httpget_free_port());
    e2e_metrics_listen = listen;
    snprintf(conf_copy, sizeof(conf_copy), "%s",
             e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1, FAST, NULL, dir,
                           sizeof(dir)));
    e2e_start(&p, conf_copy);
    for (int k = 0; k < 3; k++)
        put(name, k, NULL);
    cr_assert(e2e_wait_equal(sd, &t, 30000, why, sizeof(why)), "%s", why);

    /* The checkpoint follows within checkpoint_interval (200 ms). */
    until = now_ms() + 10000;
    do {
        cr_assert_eq(proc_run(argv_json, NULL, 10000, &s), 0, "status exits 0 beside run");
        out = proc_slurp(s.out_path);
        j = json_loads(out, 0, &jerr);
        cr_assert_not_null(j, "%s\n%s", jerr.text, out);
        free(out);
        sh = json_array_get(json_object_get(j, "shards"), 0);
        if (sh && json_is_string(json_object_get(sh, "checkpoint")))
            break;
        json_decref(j);
        j = NULL;
        usleep(100000);
    } while (now_ms() < until);
    cr_assert_not_null(j, "a checkpoint appeared");
    json_array_foreach(json_object_get(j, "shards"), i, sh)
    {
        cr_expect_str_eq(json_string_value(json_object_get(sh, "table")), name);
        cr_expect_str_eq(json_string_value(json_object_get(sh, "state")), "open");
        cr_expect(json_integer_value(json_object_get(sh, "last_record_age_s")) < 120);
    }
    live = json_object_get(j, "live");
    cr_expect(json_is_true(json_object_get(live, "answering")), "%s",
              json_dumps(live, 0));
    cr_expect(json_is_true(json_object_get(live, "ready")));
    tab = json_object_get(json_object_get(live, "tables"), name);
    cr_expect_eq(json_integer_value(json_object_get(tab, "records_read")), 3);
    cr_expect_eq(json_integer_value(json_object_get(tab, "docs_indexed")), 3);
    json_decref(j);

    cr_assert_eq(proc_run(argv_text, NULL, 10000, &s), 0);
    out = proc_slurp(s.out_path);
    cr_expect(strstr(out, name) && strstr(out, " open ") && strstr(out, "live (") &&
                  strstr(out, "ready: following 1 table"),
              "%s", out);
    cr_expect(strstr(out, "records read 3, indexed 3") != NULL, "%s", out);
    free(out);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
}

/* ---- the systemd unit ---------------------------------------------------- */

#define SYSTEMD_ANALYZE "/usr/bin/systemd-analyze"

Test(ops, systemd_unit_rates_1_1_and_verifies)
{
    char unit[512], bin[512], abs_bin[PATH_MAX], mandir[512], manpath[600], src[PATH_MAX],
        link[700];
    const char *security[] = { SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=11",
                               "systemd/ddb2es.service", NULL };
    const char *verify[] = { SYSTEMD_ANALYZE, "verify", unit, NULL, NULL };
    const char *pages[][2] = { { "man8", "ddb2es.8" }, { "man5", "ddb2es.conf.5" } };
    const char *verify_env[] = { manpath, NULL };
    struct proc p;
    char *text, *at, *out;
    FILE *f;
    int rc;

    if (access(SYSTEMD_ANALYZE, X_OK) != 0)
        cr_skip_test("systemd-analyze is not installed (apt-get install systemd)");
    rc = proc_run(security, NULL, 30000, &p);
    out = proc_slurp(p.out_path);
    cr_expect_eq(rc, 0, "exposure above 1.1:\n%s", out);
    cr_expect(strstr(out, "Overall exposure level for ddb2es.service: 1.1") != NULL, "%s", out);
    free(out);

    /* verify wants ExecStart= to exist: point it at the binary just built. */
    proc_path("ddb2es", bin, sizeof(bin));
    cr_assert_not_null(realpath(bin, abs_bin));
    text = proc_slurp("systemd/ddb2es.service");
    at = strstr(text, "/usr/local/bin/ddb2es run");
    cr_assert_not_null(at);
    snprintf(unit, sizeof(unit), "%s/ddb2es.service",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    f = fopen(unit, "w");
    fprintf(f, "%.*s%s%s", (int)(at - text), text, abs_bin, at + strlen("/usr/local/bin/ddb2es"));
    fclose(f);
    free(text);
    /* verify runs `man 8 ddb2es` for each man: of Documentation=: show it
     * the pages of this tree (without man, it can only be told not to). */
    snprintf(mandir, sizeof(mandir), "%s/man", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(manpath, sizeof(manpath), "MANPATH=%s", mandir);
    mkdir(mandir, 0755);
    for (size_t i = 0; i < 2; i++) {
        snprintf(link, sizeof(link), "man/%s", pages[i][1]);
        cr_assert_not_null(realpath(link, src));
        snprintf(link, sizeof(link), "%s/%s", mandir, pages[i][0]);
        mkdir(link, 0755);
        snprintf(link, sizeof(link), "%s/%s/%s", mandir, pages[i][0], pages[i][1]);
        unlink(link);
        cr_assert_eq(symlink(src, link), 0, "%s", link);
    }
    if (access("/usr/bin/man", X_OK) != 0)
        verify[3] = "--man=no";
    rc = proc_run(verify, verify_env, 30000, &p);
    out = proc_slurp(p.err_path);
    cr_expect_eq(rc, 0, "systemd-analyze verify:\n%s", out);
    cr_expect_str_eq(out, "", "verify is silent");
    free(out);
}

Test(ops, a_busy_metrics_port_stops_the_start_with_78)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    char name[128], dir[256], listen_at[64];
    struct e2e_table t;
    struct proc p;
    const char *conf;
    char *err;
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

    need_ddb();
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ntohs(a.sin_port));
    new_table(name, sizeof(name), "busy", &t);
    e2e_metrics_listen = listen_at;
    conf = e2e_config_ex(ddbc_endpoint(), "http://127.0.0.1:1", &t, 1, NULL, NULL, dir,
                         sizeof(dir));
    e2e_start(&p, conf);
    rc = proc_wait(&p, 15000);
    err = proc_slurp(p.err_path);
    cr_expect_eq(rc, 78, "%s", err);
    cr_expect(strstr(err, "metrics_listen") && strstr(err, listen_at), "%s", err);
    free(err);
    close(fd);
}
