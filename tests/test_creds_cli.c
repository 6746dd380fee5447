/* Transport security and secrets, through the ddb2es binary: what a user
 * sees when a configuration would leak credentials, and that no secret ever
 * reaches the log. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/fakehttp.h"
#include "tests/support/proc.h"

TestSuite(transport, .timeout = 60);

static char dir[256];

static const char *put(const char *name, const char *text)
{
    static char paths[4][512];
    static int next;
    char *path = paths[next++ % 4];
    FILE *f;

    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/tls-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, 512, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* `ddb2es run -c FILE` with env added; returns the exit code, stderr in *err. */
static int run_conf(const char *conf, const char *const *env, char **err)
{
    char bin[512];
    const char *path = put("ddb2es.conf", conf);
    const char *argv[] = { proc_path("ddb2es", bin, sizeof bin), "run", "-c", path, NULL };
    struct proc p;
    int rc = proc_run(argv, env, 20000, &p);

    *err = proc_slurp(p.err_path);
    return rc;
}

static void expect_refused(const char *conf, const char *const *env, const char *want)
{
    char *err, full[2048];
    int rc;

    put("dummy", "");
    snprintf(full, sizeof full, "[daemon]\nstate_dir = %s/state\n%s", dir, conf);
    rc = run_conf(full, env, &err);
    cr_expect_eq(rc, 78, "exit %d, stderr: %s", rc, err);
    cr_expect(strstr(err, want) != NULL, "stderr lacks \"%s\": %s", want, err);
    free(err);
}

static const char *const aws_env[] = { "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x",
                                       "AWS_REGION=us-east-1", "DDB2ES_TABLES=", NULL };

Test(transport, sigv4_or_basic_over_plain_http_to_another_host_is_refused)
{
    expect_refused("[sink]\nurl = http://10.9.8.7:9200\n[table posts]\n", aws_env,
                   "[sink] url: auth = sigv4 would send credentials unencrypted to 10.9.8.7");
    expect_refused("[sink]\nurl = http://search.example.com\nauth = basic\nusername = u\n"
                   "password_file = /nonexistent/pw\n[table posts]\n",
                   aws_env, "[sink] url: auth = basic");
}

Test(transport, aws_endpoint_over_plain_http_to_another_host_is_refused)
{
    expect_refused("[aws]\nendpoint = http://10.9.8.7:8000\n[sink]\nurl = http://127.0.0.1:9\n"
                   "auth = none\n[table posts]\n",
                   aws_env, "[aws] endpoint: signed AWS requests would go unencrypted to 10.9.8.7");
}

Test(transport, unreadable_ca_file_is_refused)
{
    expect_refused("[sink]\nurl = https://127.0.0.1:9\nca_file = /nonexistent/ca.pem\n"
                   "[table posts]\n",
                   aws_env, "[sink] ca_file: cannot read \"/nonexistent/ca.pem\"");
}

Test(transport, regions_outside_allowed_regions_are_refused)
{
    static const char *const eu_env[] = { "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x",
                                          "AWS_REGION=eu-west-1", "DDB2ES_TABLES=", NULL };

    expect_refused("[aws]\nregion = us-east-1\nallowed_regions = us-east-1\n[sink]\n"
                   "url = https://search-logs-abc123.eu-west-1.es.amazonaws.com\n[table posts]\n",
                   aws_env, "[sink] url: the domain's region \"eu-west-1\" is not in [aws] "
                            "allowed_regions");
    expect_refused("[aws]\nallowed_regions = us-east-1\n[sink]\n"
                   "url = https://abc.eu-west-1.aoss.amazonaws.com\n[table posts]\n",
                   aws_env, "\"eu-west-1\" is not in [aws] allowed_regions");
    expect_refused("[aws]\nallowed_regions = us-east-1, us-west-2\n[sink]\n"
                   "url = http://127.0.0.1:9\nauth = none\n[table posts]\n",
                   eu_env, "the region \"eu-west-1\" (from AWS_REGION) is not in the list");
}

Test(transport, no_region_is_a_clear_error)
{
    static const char *const env[] = { "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x",
                                       "DDB2ES_TABLES=", NULL };

    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    expect_refused("[sink]\nurl = http://127.0.0.1:9\nauth = none\n[table posts]\n", env,
                   "no AWS region: set [aws] region, AWS_REGION, AWS_DEFAULT_REGION or the "
                   "profile's region");
}

/* Every request answered: DescribeTable with AccessDenied, the sink with 200. */
static void answer(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    (void)arg;
    if (strstr(q->headers, "X-Amz-Target") || strstr(q->headers, "x-amz-target")) {
        out->status = 400;
        out->body = "{\"__type\":\"com.amazon.coral.service#AccessDeniedException\","
                    "\"message\":\"not allowed\"}";
    } else {
        out->status = 200;
        out->body = "{\"version\":{\"number\":\"2.11.0\"},\"errors\":false,\"items\":[]}";
    }
}

static void run_and_check_log(const char *auth_lines, const char *const *secrets)
{
    struct fakehttp *aws = fake_start(), *sink = fake_start();
    char conf[2048], bin[512], *err;
    const char *path;
    const char *env[] = { "AWS_ACCESS_KEY_ID=AKIDLOGTEST",
                          "AWS_SECRET_ACCESS_KEY=aws-secret-SHOULD-NOT-APPEAR",
                          "AWS_SESSION_TOKEN=aws-session-token-SHOULD-NOT-APPEAR",
                          "DDB2ES_TABLES=", NULL };
    struct proc p;
    int rc;

    fake_set_handler(aws, answer, NULL);
    fake_set_handler(sink, answer, NULL);
    put("dummy", "");
    snprintf(conf, sizeof conf,
             "[daemon]\nstate_dir = %s/state-log\nlog_level = debug\n"
             "[aws]\nregion = us-east-1\nendpoint = %s\n"
             "[sink]\nurl = %s\n%s\nflush_interval = 100ms\n"
             /* the fake answers nothing the canary could read */
             "probe = false\n[table posts]\n",
             dir, fake_url(aws), fake_url(sink), auth_lines);
    path = put("log.conf", conf);
    const char *argv[] = { proc_path("ddb2es", bin, sizeof bin), "run", "-c", path, NULL };
    proc_start(&p, argv, env);
    cr_assert(fake_wait_nreq(aws, 2, 10000) >= 2, "the daemon made no AWS request");
    proc_kill(&p, SIGTERM);
    rc = proc_wait(&p, 15000);
    err = proc_slurp(p.err_path);
    cr_expect_eq(rc, 0, "exit %d: %s", rc, err);
    cr_assert(strstr(err, "debug") != NULL, "the log has no debug lines: %s", err);
    for (size_t i = 0; secrets[i]; i++)
        cr_expect(strstr(err, secrets[i]) == NULL, "the log shows \"%s\":\n%s", secrets[i], err);
    cr_expect(strstr(err, "AWS4-HMAC-SHA256 Credential") == NULL, "an Authorization header: %s",
              err);
    cr_expect(strstr(err, "aws-secret-SHOULD-NOT-APPEAR") == NULL, "%s", err);
    cr_expect(strstr(err, "aws-session-token-SHOULD-NOT-APPEAR") == NULL, "%s", err);
    free(err);
    fake_stop(aws);
    fake_stop(sink);
}

Test(transport, no_secret_in_the_log_at_debug_level)
{
    static const char *const basic[] = { "pw-SHOULD-NOT-APPEAR",
                                         "dTpwdy1TSE9VTEQtTk9ULUFQUEVBUg", /* base64 "u:pw-..." */
                                         "Basic ", NULL };
    static const char *const apikey[] = { "apikey-SHOULD-NOT-APPEAR", "ApiKey ", NULL };
    static const char *const sigv4[] = { "aws-secret", NULL };
    char lines[512];

    snprintf(lines, sizeof lines, "auth = basic\nusername = u\npassword_file = %s",
             put("pw", "pw-SHOULD-NOT-APPEAR\n"));
    run_and_check_log(lines, basic);
    snprintf(lines, sizeof lines, "auth = apikey\napi_key_file = %s",
             put("key", "apikey-SHOULD-NOT-APPEAR\n"));
    run_and_check_log(lines, apikey);
    run_and_check_log("auth = sigv4", sigv4);
}
