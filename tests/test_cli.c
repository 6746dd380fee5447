/* The ddb2es binary's command line: exit codes and messages a user sees. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    snprintf(cmd, sizeof(cmd), "make -s install BUILD=%s DESTDIR=%s PREFIX=/usr >/dev/null 2>&1",
             build && *build ? build : "build", root);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof(path), "%s/usr/bin/ddb2es", root);
    cr_assert_eq(stat(path, &st), 0, "the binary is in PREFIX/bin");
    cr_expect(st.st_mode & S_IXUSR);
    snprintf(path, sizeof(path), "%s/etc/ddb2es/ddb2es.conf.example", root);
    cr_assert_eq(stat(path, &st), 0, "the example config is in /etc/ddb2es");
    cr_expect_eq(st.st_mode & 0777, 0640);
    snprintf(path, sizeof(path), "%s/usr/lib/systemd/system/ddb2es.service", root);
    unit = proc_slurp(path);
    cr_assert(strstr(unit, "[Service]") != NULL, "the unit is installed");
    {
        const char *exec = strstr(unit, "\nExecStart=");

        cr_assert_not_null(exec, "the unit has an ExecStart line");
        cr_expect(strncmp(exec, "\nExecStart=/usr/bin/ddb2es ", 27) == 0,
                  "ExecStart follows PREFIX: %.80s", exec + 1);
    }
    free(unit);
}
