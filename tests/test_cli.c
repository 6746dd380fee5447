/* The ddb2es binary's command line: exit codes and messages a user sees. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/proc.h"

TestSuite(cli, .timeout = 30);

static char dir[256];

static void write_file(const char *name, const char *text, char *path, size_t len)
{
    FILE *f;

    if (!dir[0]) {
        snprintf(dir, sizeof(dir), "%s/cli-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        cr_assert_not_null(mkdtemp(dir));
    }
    snprintf(path, len, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs ddb2es with args; returns the exit code and its stderr in *err. */
static int ddb2es(char **err, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), a1, a2, a3, a4, NULL };
    const char *env[] = { "DDB2ES_TABLES=", NULL };
    struct proc p;
    int rc = proc_run(argv, env, 20000, &p);

    *err = proc_slurp(p.err_path);
    return rc;
}

#define GOOD_SINK "[sink]\nurl = http://127.0.0.1:9\nauth = none\n"

static void expect_config_error(const char *conf, const char *want)
{
    char path[512], *err;
    int rc;

    write_file("bad.conf", conf, path, sizeof(path));
    rc = ddb2es(&err, "check", "-c", path, NULL);
    cr_expect_eq(rc, 78, "exit %d, stderr: %s", rc, err);
    cr_expect(strstr(err, want) != NULL, "stderr lacks \"%s\": %s", want, err);
    free(err);
}

Test(cli, version_and_help)
{
    char *err, bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "--version", NULL };
    struct proc p;

    cr_assert_eq(proc_run(argv, NULL, 5000, &p), 0);
    err = proc_slurp(p.out_path);
    cr_expect(strncmp(err, "ddb2es ", 7) == 0, "%s", err);
    /* The second line names the libcurl carried, for matching curl advisories. */
    cr_expect(strstr(err, "\nlibcurl 7.") || strstr(err, "\nlibcurl 8."), "%s", err);
    cr_expect(strstr(err, " (OpenSSL/3."), "%s", err);
#ifdef DDB2ES_OWN_CURL
    cr_expect(strstr(err, "built for ddb2es from Debian's curl 7.") &&
                  strstr(err, "; protocols: http https\n"), "%s", err);
#else
    cr_expect(strstr(err, "shared library; protocols: ") && strstr(err, " https "), "%s", err);
#endif
    free(err);
    cr_expect_eq(ddb2es(&err, "--help", NULL, NULL, NULL), 0);
    free(err);
    cr_expect_eq(ddb2es(&err, "frobnicate", NULL, NULL, NULL), 64);
    cr_expect(strstr(err, "unknown command") != NULL, "%s", err);
    free(err);
    cr_expect_eq(ddb2es(&err, NULL, NULL, NULL, NULL), 64);
    free(err);
}

Test(cli, unknown_key_names_file_line_and_suggestion)
{
    expect_config_error(GOOD_SINK "bulk_max_byte = 5m\n[table posts]\n",
                        "bad.conf:4: [sink] bulk_max_byte: unknown key (did you mean bulk_max_bytes?)");
}

Test(cli, bad_value)
{
    expect_config_error(GOOD_SINK "concurrency = many\n[table posts]\n", "bad.conf:4: [sink] concurrency");
}

Test(cli, value_out_of_bounds)
{
    expect_config_error(GOOD_SINK "bulk_max_bytes = 10\n[table posts]\n",
                        "bad.conf:4: [sink] bulk_max_bytes: must be");
}

Test(cli, duplicate_section)
{
    expect_config_error(GOOD_SINK "[table posts]\n[table posts]\n", "bad.conf:5:");
}

Test(cli, unknown_section)
{
    expect_config_error(GOOD_SINK "[tabel posts]\n", "bad.conf:4:");
}

Test(cli, missing_file)
{
    char *err;
    int rc = ddb2es(&err, "check", "-c", "/nonexistent/ddb2es.conf", NULL);

    cr_expect_eq(rc, 78, "exit %d: %s", rc, err);
    cr_expect(strstr(err, "/nonexistent/ddb2es.conf") != NULL, "%s", err);
    free(err);
}

Test(cli, unreadable_file)
{
    char *err;
    int rc;

    /* A directory cannot be read as a file, even by root. */
    rc = ddb2es(&err, "check", "-c", "/", NULL);
    cr_expect_eq(rc, 78, "exit %d: %s", rc, err);
    cr_expect(strstr(err, "/") != NULL, "%s", err);
    free(err);
}

Test(cli, check_accepts_the_example_config)
{
    char *err, bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "check", "--offline", "-c",
                           "config/ddb2es.conf.example", NULL };
    struct proc p;
    int rc = proc_run(argv, NULL, 5000, &p);

    err = proc_slurp(p.err_path);
    cr_expect_eq(rc, 0, "exit %d: %s", rc, err);
    free(err);
    err = proc_slurp(p.out_path);
    cr_expect(strstr(err, "[table ") != NULL, "check prints the effective configuration: %s", err);
    free(err);
}

Test(cli, install_honours_prefix_and_destdir)
{
    char root[300], cmd[1024], path[600], *unit;
    struct stat st;
    const char *build = getenv("BUILD");

    snprintf(root, sizeof(root), "%s/install-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(root));
#ifdef DDB2ES_OWN_CURL
    const char *curl = "own";
#else
    const char *curl = "system"; /* a build folder holds one libcurl's objects */
#endif

    snprintf(cmd, sizeof(cmd), "make -s install BUILD=%s CURL=%s DESTDIR=%s PREFIX=/usr >/dev/null 2>&1",
             build && *build ? build : "build", curl, root);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof(path), "%s/usr/bin/ddb2es", root);
    cr_assert_eq(stat(path, &st), 0, "the binary is in PREFIX/bin");
    cr_expect(st.st_mode & S_IXUSR);
    snprintf(path, sizeof(path), "%s/etc/ddb2es/ddb2es.conf.example", root);
    cr_assert_eq(stat(path, &st), 0, "the example config is in /etc/ddb2es");
    cr_expect_eq(st.st_mode & 0777, 0640);
    snprintf(path, sizeof(path), "%s/usr/share/man/man8/ddb2es.8", root);
    cr_expect_eq(stat(path, &st), 0, "ddb2es(8) is in PREFIX/share/man/man8");
    snprintf(path, sizeof(path), "%s/usr/share/man/man5/ddb2es.conf.5", root);
    cr_expect_eq(stat(path, &st), 0, "ddb2es.conf(5) is in PREFIX/share/man/man5");
    cr_expect_eq(st.st_mode & 0777, 0644);
    snprintf(path, sizeof(path), "%s/usr/lib/systemd/system/ddb2es.service", root);
    unit = proc_slurp(path);
    cr_assert(strstr(unit, "[Service]") != NULL, "the unit is installed");
    {
        const char *exec = strstr(unit, "\nExecStart=");

        cr_assert_not_null(exec, "the unit has an ExecStart line");
        cr_expect(strncmp(exec, "\nExecStart=/usr/bin/ddb2es ", 27) == 0,
                  "ExecStart follows PREFIX: %.80s", exec + 1);
    }
    cr_expect(strstr(unit, "\nDocumentation=man:ddb2es(8) man:ddb2es.conf(5)\n") != NULL,
              "the unit names the man pages");
    free(unit);
}

/* ---- refusals of what the configuration names: check catches what run refuses ---- */

#define MAX_ARGS 12
#define MAX_ENV 16

/* The scratch directory, created on first use. */
static const char *tmp(void)
{
    char path[512];

    if (!dir[0])
        write_file(".keep", "", path, sizeof(path));
    return dir;
}

/* The environment of these runs: AWS settings that need no network and no
 * file of the caller, then extra (later entries win: proc_start putenv()s
 * them in order). */
static void refusal_env(const char *const *extra, const char **env)
{
    static const char *const base[] = { "DDB2ES_TABLES=", "AWS_REGION=us-east-1",
                                        "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=x",
                                        "AWS_EC2_METADATA_DISABLED=true",
                                        "AWS_CONFIG_FILE=/nonexistent/aws-config",
                                        "AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-creds",
                                        NULL };
    size_t n = 0;

    for (size_t i = 0; base[i]; i++)
        env[n++] = base[i];
    for (size_t i = 0; extra && extra[i]; i++) {
        cr_assert(n < MAX_ENV);
        env[n++] = extra[i];
    }
    env[n] = NULL;
}

/* Runs `ddb2es ARGS -c conf` (through setpriv dropping the capabilities
 * that let root read any file, when drop_dac is set and we are root);
 * returns the exit code, stderr in *err. */
static int run_args(const char *const *args, const char *conf, const char *const *extra_env,
                    bool drop_dac, char **err)
{
    const char *argv[MAX_ARGS + 4], *env[MAX_ENV + 1];
    char bin[512];
    size_t n = 0;
    struct proc p;
    int rc;

    if (drop_dac && geteuid() == 0) {
        /* setpriv(1): with these out of the bounding set, the root process
         * exec'd is held to the file modes like any other user. */
        argv[n++] = "/usr/bin/setpriv";
        argv[n++] = "--bounding-set=-dac_override,-dac_read_search";
        argv[n++] = "--";
    }
    argv[n++] = proc_path("ddb2es", bin, sizeof(bin));
    for (size_t i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = "-c";
    argv[n++] = conf;
    argv[n] = NULL;
    refusal_env(extra_env, env);
    rc = proc_run(argv, env, 30000, &p);
    *err = proc_slurp(p.err_path);
    return rc;
}

struct refusal {
    const char *conf;       /* after a [daemon] section of 3 lines keeping the runs in DIR */
    const char *const *env; /* added to refusal_env's */
    int line;               /* the refused key's line in the file, */
    const char *var;        /* or the variable that set it */
    const char *want;       /* what follows "FILE:LINE: " or "VAR: " */
    bool replay;            /* replay --table posts refuses it too */
    bool drop_dac;          /* run without root's file-reading capabilities */
};

/* `check --offline`, `check` and `run` (and `replay`) on r->conf, written to
 * DIR/name: each exits 78 with exactly one line on stderr, the same. */
static void expect_refused_everywhere(const char *name, const struct refusal *r)
{
    static const char *const check_offline[] = { "check", "--offline", NULL };
    static const char *const check[] = { "check", NULL };
    static const char *const run[] = { "run", NULL };
    static const char *const replay[] = { "replay", "--table", "posts", "--file",
                                          "/nonexistent/export.json", NULL };
    const char *const *cmds[] = { check_offline, check, run, r->replay ? replay : NULL };
    char path[512], text[4096], line[2048], *err;

    snprintf(text, sizeof(text), "[daemon]\nstate_dir = %s/state\nmetrics_listen =\n%s", tmp(),
             r->conf);
    write_file(name, text, path, sizeof(path));
    if (r->var)
        snprintf(line, sizeof(line), "ddb2es: %s: %s\n", r->var, r->want);
    else
        snprintf(line, sizeof(line), "ddb2es: %s:%d: %s\n", path, r->line, r->want);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]) && cmds[i]; i++) {
        const char *what = i == 0 ? "check --offline" : cmds[i][0];
        int rc = run_args(cmds[i], path, r->env, r->drop_dac, &err);

        cr_expect_eq(rc, 78, "%s: exit %d, stderr: %s", what, rc, err);
        cr_expect_str_eq(err, line, "%s: stderr\n%s\nwanted\n%s", what, err, line);
        free(err);
    }
}

/* A sink on loopback, with no authentication (SINK_NONE) or with auth to follow. */
#define SINK_LOOP "[sink]\nurl = http://127.0.0.1:9\n"
#define SINK_NONE SINK_LOOP "auth = none\n"

Test(cli, unreadable_secret_files_are_refused_alike_by_check_and_run)
{
    char conf[1024], want[1024], key[512];

    snprintf(conf, sizeof(conf), "[sink]\nurl = http://127.0.0.1:9\nauth = basic\nusername = u\n"
                                 "password_file = %s/no-such-pw\n[table posts]\n", tmp());
    snprintf(want, sizeof(want), "[sink] password_file: cannot read \"%s/no-such-pw\": %s", dir,
             strerror(ENOENT));
    expect_refused_everywhere("pw.conf", &(struct refusal){ .conf = conf, .line = 8,
                                                            .want = want, .replay = true });

    write_file("empty.key", "\n", key, sizeof(key));
    snprintf(conf, sizeof(conf), SINK_LOOP "auth = apikey\napi_key_file = %s\n[table posts]\n",
             key);
    snprintf(want, sizeof(want), "[sink] api_key_file: \"%s/empty.key\" is empty", dir);
    expect_refused_everywhere("key.conf", &(struct refusal){ .conf = conf, .line = 7,
                                                             .want = want, .replay = true });

    snprintf(conf, sizeof(conf), SINK_NONE "[table posts]\nhmac = email\nhmac_key_file = %s\n",
             dir);
    snprintf(want, sizeof(want), "[table posts] hmac_key_file: cannot read \"%s\": %s", dir,
             strerror(EISDIR));
    expect_refused_everywhere("hmac.conf", &(struct refusal){ .conf = conf, .line = 9,
                                                              .want = want, .replay = true });
}

Test(cli, a_secret_file_without_read_permission_is_refused_alike)
{
    char conf[1024], want[1024], key[512];

    if (geteuid() == 0 && access("/usr/bin/setpriv", X_OK) != 0)
        cr_skip_test("root without setpriv(1): mode 000 does not stop root from reading");
    write_file("locked.key", "k3y\n", key, sizeof(key));
    cr_assert_eq(chmod(key, 0), 0);
    snprintf(conf, sizeof(conf), SINK_LOOP "auth = apikey\napi_key_file = %s\n[table posts]\n",
             key);
    snprintf(want, sizeof(want), "[sink] api_key_file: cannot read \"%s\": %s", key,
             strerror(EACCES));
    expect_refused_everywhere("perm.conf",
                              &(struct refusal){ .conf = conf, .line = 7, .want = want,
                                                 .drop_dac = true });
}

Test(cli, a_bare_secret_name_says_it_was_looked_up_in_credentials_directory)
{
    char conf[512], want[1024], env_dir[600];
    const char *env[] = { env_dir, NULL };

    snprintf(env_dir, sizeof(env_dir), "CREDENTIALS_DIRECTORY=%s", tmp());
    snprintf(conf, sizeof(conf),
             SINK_NONE "[table posts]\nhmac = email\nhmac_key_file = hmac.key\n");
    snprintf(want, sizeof(want), "[table posts] hmac_key_file: cannot read \"%s/hmac.key\" "
                                 "($CREDENTIALS_DIRECTORY/hmac.key): %s", dir, strerror(ENOENT));
    expect_refused_everywhere("creds.conf", &(struct refusal){ .conf = conf, .env = env,
                                                               .line = 9, .want = want });
}

Test(cli, a_secret_file_from_the_environment_names_the_variable)
{
    static const char *const env[] = { "DDB2ES_TABLE_POSTS_HMAC_KEY_FILE=/nonexistent/hmac.key",
                                       NULL };
    char want[512];

    snprintf(want, sizeof(want), "cannot read \"/nonexistent/hmac.key\": %s", strerror(ENOENT));
    expect_refused_everywhere("env.conf",
                              &(struct refusal){ .conf = SINK_NONE "[table posts]\nhmac = email\n",
                                                 .env = env,
                                                 .var = "DDB2ES_TABLE_POSTS_HMAC_KEY_FILE",
                                                 .want = want, .replay = true });
}

Test(cli, credentials_over_plain_http_are_refused_with_the_url_line)
{
    static const char *const env[] = { "DDB2ES_SINK_URL=http://search.example.com:9200", NULL };

    expect_refused_everywhere(
        "http.conf",
        &(struct refusal){ .conf = "[sink]\nurl = http://10.1.2.3:9200\nauth = basic\n"
                                   "username = u\npassword_file = /nonexistent/pw\n"
                                   "[table posts]\n",
                           .line = 5,
                           .want = "[sink] url: auth = basic would send credentials unencrypted "
                                   "to 10.1.2.3 over http://; use https:// (plain http is "
                                   "allowed to loopback hosts only)",
                           .replay = true });
    expect_refused_everywhere(
        "http-env.conf",
        &(struct refusal){ .conf = SINK_LOOP "[table posts]\n", .env = env,
                           .var = "DDB2ES_SINK_URL",
                           .want = "auth = sigv4 would send credentials unencrypted to "
                                   "search.example.com over http://; use https:// (plain http "
                                   "is allowed to loopback hosts only)" });
    expect_refused_everywhere(
        "endpoint.conf",
        &(struct refusal){ .conf = "[aws]\nendpoint = http://10.1.2.3:8000\n" SINK_NONE
                                   "[table posts]\n",
                           .line = 5,
                           .want = "[aws] endpoint: signed AWS requests would go unencrypted to "
                                   "10.1.2.3 over http://; use https:// (plain http is allowed "
                                   "to loopback hosts only)" });
}

Test(cli, a_ca_file_that_is_not_pem_certificates_is_refused_alike)
{
    char conf[1024], want[1024], ca[512];

    snprintf(conf, sizeof(conf), "[sink]\nurl = https://127.0.0.1:9\nauth = none\n"
                                 "ca_file = %s/no-ca.pem\n[table posts]\n", tmp());
    snprintf(want, sizeof(want), "[sink] ca_file: cannot read \"%s/no-ca.pem\": %s", dir,
             strerror(ENOENT));
    expect_refused_everywhere("ca.conf", &(struct refusal){ .conf = conf, .line = 7,
                                                            .want = want, .replay = true });

    write_file("ca.der", "\x30\x82\x03\x10 DER bytes, not PEM\n", ca, sizeof(ca));
    snprintf(conf, sizeof(conf), "[sink]\nurl = https://127.0.0.1:9\nauth = none\n"
                                 "ca_file = %s\n[table posts]\n", ca);
    snprintf(want, sizeof(want), "[sink] ca_file: \"%s\" holds no PEM certificate "
                                 "(-----BEGIN CERTIFICATE-----)", ca);
    expect_refused_everywhere("der.conf", &(struct refusal){ .conf = conf, .line = 7,
                                                             .want = want });
}

Test(cli, regions_outside_allowed_regions_are_refused_alike)
{
    static const char *const eu[] = { "AWS_REGION=eu-west-1", NULL };

    expect_refused_everywhere(
        "region.conf",
        &(struct refusal){ .conf = "[aws]\nallowed_regions = us-east-1, us-west-2\n" SINK_NONE
                                   "[table posts]\n",
                           .env = eu, .line = 5,
                           .want = "[aws] allowed_regions: the region \"eu-west-1\" (from "
                                   "AWS_REGION) is not in the list",
                           .replay = true });
    expect_refused_everywhere(
        "domain.conf",
        &(struct refusal){ .conf = "[aws]\nallowed_regions = us-east-1\n[sink]\n"
                                   "url = https://search-x.eu-west-1.es.amazonaws.com\n"
                                   "[table posts]\n",
                           .line = 7,
                           .want = "[sink] url: the domain's region \"eu-west-1\" is not in "
                                   "[aws] allowed_regions" });
}

/* The one refusal `check` cannot foresee: the metrics port taken (by the
 * daemon itself, when `check` runs beside it).  `run` names the line. */
Test(cli, a_metrics_port_in_use_is_refused_by_run_with_its_line)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    static const char *const run[] = { "run", NULL };
    char conf[1024], path[512], want[1024], *err;
    int rc;

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(conf, sizeof(conf), "[daemon]\nstate_dir = %s/state-metrics\n"
                                 "metrics_listen = 127.0.0.1:%d\n" SINK_NONE "[table posts]\n",
             tmp(), ntohs(a.sin_port));
    write_file("metrics.conf", conf, path, sizeof(path));
    rc = run_args(run, path, NULL, false, &err);
    snprintf(want, sizeof(want), "ddb2es: %s:3: [daemon] metrics_listen: cannot listen on "
                                 "127.0.0.1:%d: ", path, ntohs(a.sin_port));
    cr_expect_eq(rc, 78, "exit %d: %s", rc, err);
    cr_expect(strstr(err, want) != NULL, "stderr lacks \"%s\": %s", want, err);
    free(err);
    close(fd);
}
