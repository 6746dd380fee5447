#include "tests/support/proc.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *proc_path(const char *name, char *buf, size_t len)
{
    const char *bin = getenv("DDB2ES_BIN");
    const char *build = getenv("BUILD");

    if (strcmp(name, "ddb2es") == 0 && bin && *bin)
        snprintf(buf, len, "%s", bin);
    else if (strcmp(name, "ddb2es") == 0)
        snprintf(buf, len, "%s/ddb2es", build && *build ? build : "build");
    else
        snprintf(buf, len, "%s/tools/%s", build && *build ? build : "build", name);
    return buf;
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void proc_start(struct proc *p, const char *const argv[], const char *const env[])
{
    const char *tmp = getenv("TMPDIR");
    static unsigned n;
    int fo, fe;

    snprintf(p->out_path, sizeof(p->out_path), "%s/proc-%d-%u.out", tmp ? tmp : "/tmp",
             (int)getpid(), n);
    snprintf(p->err_path, sizeof(p->err_path), "%s/proc-%d-%u.err", tmp ? tmp : "/tmp",
             (int)getpid(), n++);
    fo = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fe = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fo >= 0 && fe >= 0, "cannot create output files in %s", tmp);
    p->pid = fork();
    cr_assert(p->pid >= 0, "fork: %s", strerror(errno));
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fo);
    close(fe);
}

int proc_wait(struct proc *p, long ms)
{
    long until = now_ms() + ms;
    int st;

    if (p->pid <= 0)
        return -1;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid) {
            p->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (now_ms() >= until)
            return -1;
        usleep(10000);
    }
}

void proc_kill(struct proc *p, int sig)
{
    if (p->pid > 0)
        kill(p->pid, sig);
}

int proc_run(const char *const argv[], const char *const env[], long ms, struct proc *out)
{
    struct proc local, *p = out ? out : &local;
    int rc;

    proc_start(p, argv, env);
    rc = proc_wait(p, ms);
    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    return rc;
}

char *proc_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    size_t len = 0;

    if (f) {
        FILE *m = open_memstream(&s, &len);
        char chunk[65536];
        size_t n;

        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, n, m);
        fclose(m);
        fclose(f);
    }
    return s ? s : strdup("");
}

bool proc_wait_for_text(const char *path, const char *text, long ms)
{
    long until = now_ms() + ms;

    do {
        char *s = proc_slurp(path);
        bool found = strstr(s, text) != NULL;

        free(s);
        if (found)
            return true;
        usleep(20000);
    } while (now_ms() < until);
    return false;
}

static char stderr_path[256];
static int stderr_saved = -1;

void proc_stderr_capture(void)
{
    const char *tmp = getenv("TMPDIR");
    int fd;

    snprintf(stderr_path, sizeof(stderr_path), "%s/stderr-%d.txt", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    fd = open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    fflush(stderr);
    stderr_saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

char *proc_stderr_restore(void)
{
    fflush(stderr);
    dup2(stderr_saved, 2);
    close(stderr_saved);
    stderr_saved = -1;
    return proc_slurp(stderr_path);
}
