/* The container image (Dockerfile) run as a sidecar, configured by the
 * environment alone.  `make check-image` (tests/image/check-image.sh) builds
 * the image and runs this suite with DDB2ES_IMAGE_CONTAINER naming a buildah
 * working container of it and DDB2ES_IMAGE_BUILDAH the buildah binary;
 * without them the suite skips itself (`make check` builds no image).
 *
 * `buildah run --isolation chroot` (buildah-run(1): "reusing the host's
 * control group, network, IPC, and PID namespaces") keeps tests/run.sh's
 * network namespace, so the daemon in the container reaches DynamoDB Local
 * and the search double on that loopback, and the image's metrics port is
 * there too.  The process runs as the image's USER with the image's ENV plus
 * the --env given here, nothing from this process's environment.  buildah run
 * does not apply ENTRYPOINT and CMD: check-image.sh checks that they are
 * /usr/local/bin/ddb2es and run, the command run here.
 *
 * buildah run does not pass a SIGTERM on: it kills its command (a shell's
 * TERM trap never runs).  `docker stop` and the kubelet, through the
 * container runtime, signal the container's main process itself; so does
 * this test, found in the PID namespace chroot isolation shares; its
 * /proc/PID/status also tells the uid and gid it runs as. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

/* The container's ddb2es while it runs.  buildah run killed by the test's
 * end (proc_start's PR_SET_PDEATHSIG) leaves its command running, so a test
 * that stops early ends it here. */
static pid_t container_daemon;

static void stop_leftover(void)
{
    char path[64], comm[64] = "";
    FILE *f;

    if (container_daemon <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)container_daemon);
    if ((f = fopen(path, "r"))) {
        if (fgets(comm, sizeof(comm), f) && strcmp(comm, "ddb2es\n") == 0)
            kill(container_daemon, SIGKILL);
        fclose(f);
    }
    container_daemon = 0;
}

TestSuite(image, .fini = stop_leftover, .timeout = 300);

#define IMAGE_UID 10001   /* the Dockerfile's USER */
#define METRICS_PORT 9108 /* its DDB2ES_DAEMON_METRICS_LISTEN */
#define NKEYS 200

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void dump_log(const struct proc *p)
{
    char *log = proc_slurp(p->err_path);

    cr_log_info("container's stderr:\n%s", log);
    free(log);
}

/* The process named comm below pid (buildah run, its buildah-chroot-runtime,
 * its buildah-chroot-exec, then the command), or 0 when there is none. */
static pid_t descendant(pid_t pid, const char *comm)
{
    struct dirent *de;
    DIR *d = opendir("/proc");
    pid_t found = 0;

    cr_assert_not_null(d);
    while (!found && (de = readdir(d))) {
        pid_t p = (pid_t)atoi(de->d_name), up = p;
        char path[64], name[64] = "";
        int depth = 0;

        if (p <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)p);
        {
            FILE *f = fopen(path, "r");

            if (!f)
                continue;
            if (!fgets(name, sizeof(name), f))
                name[0] = '\0';
            fclose(f);
        }
        name[strcspn(name, "\n")] = '\0';
        if (strcmp(name, comm) != 0)
            continue;
        while (up > 1 && up != pid && depth++ < 8) {
            FILE *f;
            int ppid = 0;

            snprintf(path, sizeof(path), "/proc/%d/stat", (int)up);
            if (!(f = fopen(path, "r")))
                break;
            /* pid (comm) state ppid: comm may hold spaces, it ends at the last ')' */
            {
                char line[512], *close;

                if (fgets(line, sizeof(line), f) && (close = strrchr(line, ')')))
                    sscanf(close + 1, " %*c %d", &ppid);
            }
            fclose(f);
            up = (pid_t)ppid;
        }
        if (up == pid)
            found = p;
    }
    closedir(d);
    return found;
}

/* Lines of the log that are one JSON object with time, level and message. */
static size_t json_log_lines(const struct proc *p)
{
    char *log = proc_slurp(p->err_path), *line, *save;
    size_t n = 0;

    for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);

        n += json_is_string(json_object_get(j, "time")) &&
             json_is_string(json_object_get(j, "level")) &&
             json_is_string(json_object_get(j, "message"));
        json_decref(j);
    }
    free(log);
    return n;
}

/* The process's real, effective, saved and file-system ids on its "Uid:" or
 * "Gid:" line of /proc/PID/status (proc(5)), each equal to want: the image
 * has no `id` to ask from inside. */
static void expect_ids(pid_t pid, const char *field, unsigned want)
{
    char path[64], line[256];
    unsigned id[4] = { 0 };
    bool found = false;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    while (!found && fgets(line, sizeof(line), f))
        found = strncmp(line, field, strlen(field)) == 0 &&
                sscanf(line + strlen(field), "%u %u %u %u", &id[0], &id[1], &id[2], &id[3]) == 4;
    fclose(f);
    cr_assert(found, "%s: no %s line", path, field);
    line[strcspn(line, "\n")] = '\0';
    cr_expect(id[0] == want && id[1] == want && id[2] == want && id[3] == want,
              "%s: \"%s\", expected %u", path, line, want);
}

/* Every file the daemon left in the state volume: owned by the image's
 * user, readable by it alone. */
static void expect_private_files(const char *dir)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    size_t files = 0;

    cr_assert_not_null(d, "%s", dir);
    while ((de = readdir(d))) {
        char path[600];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (de->d_name[0] == '.' && (!de->d_name[1] || strcmp(de->d_name, "..") == 0))
            continue;
        cr_assert_eq(lstat(path, &st), 0, "%s", path);
        if (!S_ISREG(st.st_mode))
            continue;
        files++;
        cr_expect_eq(st.st_mode & 07777, 0600, "%s: mode %04o", path, st.st_mode & 07777);
        cr_expect_eq(st.st_uid, IMAGE_UID, "%s: owner %u", path, (unsigned)st.st_uid);
    }
    closedir(d);
    cr_expect_gt(files, 0, "files in the state volume");
}

Test(image, sidecar_from_the_environment_mirrors_a_table_and_stops_on_sigterm)
{
    const char *ctr = getenv("DDB2ES_IMAGE_CONTAINER");
    const char *buildah = getenv("DDB2ES_IMAGE_BUILDAH");
    const char *tmp = getenv("TMPDIR");
    char name[128], state[256], volume[300], ckpt[300], why[512], labels[200];
    char e_tables[200], e_endpoint[200], e_url[200];
    struct e2e_table t = { 0 };
    struct searchd *sd;
    struct stat st;
    struct wl w;
    struct proc p;
    long status, t0;
    char *body;
    bool equal;
    int rc;

    if (!ctr || !*ctr || !buildah || !*buildah)
        cr_skip_test("no image to run: `make check-image` builds one and runs this suite");
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");

    ddbc_table_name(name, sizeof(name), "image");
    for (char *c = name; *c; c++) /* it is the index's name too */
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    t.name = t.index = name;
    t.hash = "pk";
    t.range = "sk";
    ddbc_create_table(name, "pk", "S", "sk", "N", "NEW_AND_OLD_IMAGES");
    wl_init(&w, 10001, name, "pk", "S", "sk", "N", NKEYS);
    wl_fill(&w, 0, NKEYS / 2); /* in the stream before the daemon starts */
    sd = searchd_start(NULL);
    e2e_create_index(sd, name);

    /* The state volume: a directory of this machine owned by the image's
     * user, mounted where the image's DDB2ES_DAEMON_STATE_DIR points. */
    snprintf(state, sizeof(state), "%s/image-state-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(state));
    cr_assert_eq(chown(state, IMAGE_UID, IMAGE_UID), 0);
    cr_assert_eq(chmod(state, 0700), 0);
    snprintf(volume, sizeof(volume), "%s:/var/lib/ddb2es", state);
    snprintf(e_tables, sizeof(e_tables), "DDB2ES_TABLES=%s", name);
    snprintf(e_endpoint, sizeof(e_endpoint), "DDB2ES_AWS_ENDPOINT=%s", ddbc_endpoint());
    snprintf(e_url, sizeof(e_url), "DDB2ES_SINK_URL=%s", searchd_url(sd));
    {
        const char *argv[] = { buildah, "run", "--isolation", "chroot", "--volume", volume,
                               "--env", "AWS_ACCESS_KEY_ID=test",
                               "--env", "AWS_SECRET_ACCESS_KEY=test",
                               "--env", "DDB2ES_AWS_REGION=us-east-1",
                               "--env", e_endpoint, "--env", e_tables, "--env", e_url,
                               "--env", "DDB2ES_SINK_AUTH=none",
                               ctr, "--", "/usr/local/bin/ddb2es", "run", NULL };

        proc_start(&p, argv, NULL);
    }
    for (t0 = now_ms(); !container_daemon && now_ms() - t0 < 20000; usleep(50000))
        container_daemon = descendant(p.pid, "ddb2es");
    if (!container_daemon)
        dump_log(&p);
    cr_assert_gt(container_daemon, 0, "the container's ddb2es process started");
    expect_ids(container_daemon, "Uid:", IMAGE_UID);
    expect_ids(container_daemon, "Gid:", IMAGE_UID);

    /* The rest of the workload while it runs: puts, updates (SET, REMOVE),
     * deletes and batches over the same keys. */
    for (int i = 0; i < 300; i++)
        wl_step(&w);
    equal = e2e_wait_equal(sd, &t, 120000, why, sizeof(why));
    if (!equal)
        dump_log(&p);
    cr_assert(equal, "the index equals the table: %s", why);

    /* The image's defaults: health and metrics on 0.0.0.0:9108, JSON logs. */
    body = httpget(METRICS_PORT, "GET", "/readyz", &status);
    cr_expect_eq(status, 200, "/readyz on port %d: %ld %s", METRICS_PORT, status, body);
    free(body);
    snprintf(labels, sizeof(labels), "table=\"%s\"", name);
    cr_expect_gt(httpget_metric(METRICS_PORT, "ddb2es_docs_indexed_total", labels), 0);
    cr_expect_gt(json_log_lines(&p), 5, "the log is JSON lines");

    t0 = now_ms();
    cr_assert_eq(kill(container_daemon, SIGTERM), 0);
    rc = proc_wait(&p, 30000); /* buildah run exits with its command's status */
    if (rc >= 0)
        container_daemon = 0;
    if (rc != 0)
        dump_log(&p);
    cr_assert_eq(rc, 0, "SIGTERM: the container's process exits 0 (got %d)", rc);
    cr_expect_lt(now_ms() - t0, 20000, "within the default shutdown_timeout");

    snprintf(ckpt, sizeof(ckpt), "%s/checkpoints.json", state);
    cr_assert_eq(stat(ckpt, &st), 0, "the checkpoint is on the state volume");
    body = proc_slurp(ckpt);
    cr_expect(strstr(body, name) != NULL, "the checkpoint names the table: %s", body);
    free(body);
    expect_private_files(state);
    cr_expect(e2e_wait_equal(sd, &t, 1000, why, sizeof(why)), "still equal after the stop: %s",
              why);
    searchd_stop(sd);
}
