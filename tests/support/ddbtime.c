#include "tests/support/ddbtime.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/e2e.h"

/* Debian's libfaketime, as tests/ddblocal.sh uses it. */
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

static const char *control_file(void)
{
    const char *f = getenv("DDB2ES_TEST_FAKETIME");

    return f && *f ? f : NULL;
}

void ddbtime_need(void)
{
    const char *endpoint = getenv("DDB2ES_TEST_FAKETIME_ENDPOINT");

    if (!control_file() || !endpoint || !*endpoint)
        cr_skip_test("no DynamoDB Local under libfaketime: run `make check-timetravel` "
                     "(DDB2ES_TIMETRAVEL=1 tests/run.sh)");
    /* ddbclient and e2e_config talk to $DDB2ES_TEST_DDB_ENDPOINT. */
    setenv("DDB2ES_TEST_DDB_ENDPOINT", endpoint, 1);
}

/* An open descriptor of control_file() + suffix, locked with op. */
static int lock_file(const char *suffix, int op)
{
    char path[600];
    int fd;

    snprintf(path, sizeof(path), "%s%s", control_file(), suffix);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
    while (flock(fd, op) != 0)
        cr_assert_eq(errno, EINTR, "flock %s: %s", path, strerror(errno));
    return fd;
}

void ddbtime_hold(bool alone)
{
    int fd;

    /* Tests started side by side: one that needs the clock alone takes it
     * first (it is short), rather than waiting for all the others. */
    if (!alone)
        sleep(2);
    fd = lock_file(".hold", alone ? LOCK_EX : LOCK_SH); /* never closed: goes with the test */

    cr_log_info("clock held %s", alone ? "alone" : "shared");
    (void)fd;
}

long ddbtime_offset(void)
{
    FILE *f = fopen(control_file(), "r");
    long off = 0;
    int n;

    cr_assert_not_null(f, "%s: %s", control_file(), strerror(errno));
    n = fscanf(f, "%ld", &off); /* "+14460": strtol reads the sign */
    fclose(f);
    cr_assert_eq(n, 1, "%s does not hold an offset", control_file());
    return off;
}

double ddbtime_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (double)ddbtime_offset();
}

void ddbtime_advance(long seconds)
{
    int fd = lock_file(".lock", LOCK_EX);
    char tmp[600];
    long off;
    FILE *f;

    cr_assert_gt(seconds, 0, "the clock only moves forward");
    off = ddbtime_offset() + seconds;
    /* libfaketime reads the file at every clock call: a rename never lets
     * it see a half-written offset. */
    snprintf(tmp, sizeof(tmp), "%s.%d", control_file(), (int)getpid());
    f = fopen(tmp, "w");
    cr_assert_not_null(f, "%s: %s", tmp, strerror(errno));
    fprintf(f, "%+ld\n", off);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rename(tmp, control_file()), 0, "rename %s: %s", tmp, strerror(errno));
    close(fd);
    cr_log_info("clock moved on %ld s: offset now %+ld s", seconds, off);
}

double ddbtime_next_rollover(double t)
{
    const char *s = getenv("DDB2ES_TEST_FAKETIME_T0");
    double t0 = s && *s ? atof(s) : 0;

    if (t0 <= 0)
        return 0;
    if (t <= t0)
        return t0;
    return t0 + ceil((t - t0) / DDBTIME_ROLLOVER_EVERY_S) * DDBTIME_ROLLOVER_EVERY_S;
}

double ddbtime_advance_past_rollover(void)
{
    struct timespec ts;
    double real, next;
    long jump = DDBTIME_ROLLOVER_AGE_S + 60;

    clock_gettime(CLOCK_REALTIME, &ts);
    real = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    /* The run the jump must come before: not one so close that the
     * estimate (a second or two: see run.sh) could put it behind us. */
    next = ddbtime_next_rollover(real + 15);
    if (next > 0) {
        /* Half-way through a minute of the instance's clock at that run. */
        double fake = next + (double)(ddbtime_offset() + jump);
        long sec = (long)fmod(fake, 60.0);

        jump += (30 - sec + 60) % 60;
        cr_log_info("next rollover run in %.0f s", next - real);
    }
    ddbtime_advance(jump);
    return next;
}

void ddbtime_start(struct proc *p, const char *conf)
{
    static char file[640], asan[600];
    const char *old = getenv("ASAN_OPTIONS");
    /* The daemon reads the same control file as the instance.  Under
     * build-asan libasan is loaded after the preloaded library, which ASan
     * refuses unless told it may. */
    const char *env[] = { "AWS_ACCESS_KEY_ID=test",
                          "AWS_SECRET_ACCESS_KEY=test",
                          "LD_PRELOAD=" FAKETIME_LIB,
                          file,
                          "FAKETIME_NO_CACHE=1",
                          "FAKETIME_DONT_FAKE_MONOTONIC=1",
                          "FAKETIME_FORCE_MONOTONIC_FIX=0",
                          asan,
                          NULL };

    snprintf(file, sizeof(file), "FAKETIME_TIMESTAMP_FILE=%s", control_file());
    snprintf(asan, sizeof(asan), "ASAN_OPTIONS=%s%sverify_asan_link_order=0", old ? old : "",
             old && *old ? ":" : "");
    e2e_start_env(p, conf, env);
}
