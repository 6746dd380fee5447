/* proc — run the project's programs (ddb2es, searchd) from tests. */
#ifndef DDB2ES_TEST_PROC_H
#define DDB2ES_TEST_PROC_H

#include <stdbool.h>
#include <sys/types.h>

struct proc {
    pid_t pid;
    char out_path[256]; /* stdout and stderr go to these files */
    char err_path[256];
};

/* The path of a built program: $DDB2ES_BIN for "ddb2es", else
 * ${BUILD:-build}/tools/<name>. */
const char *proc_path(const char *name, char *buf, size_t len);
/* Starts argv (argv[0] is the program path) with env added to the current
 * environment ("NAME=VALUE" strings, NULL-terminated, may be NULL).  Output
 * goes to files in $TMPDIR.  Aborts the test on failure. */
void proc_start(struct proc *p, const char *const argv[], const char *const env[]);
/* Waits up to ms for the process to exit; returns its exit code, 128+signal
 * when killed by a signal, or -1 on timeout (the process is left running). */
int proc_wait(struct proc *p, long ms);
void proc_kill(struct proc *p, int sig);
/* Runs to completion (timeout ms, then SIGKILL); returns the exit code. */
int proc_run(const char *const argv[], const char *const env[], long ms, struct proc *out);
/* The content of a file (caller frees), "" when unreadable. */
char *proc_slurp(const char *path);
/* Waits up to ms for text to appear in the file; true when it did. */
bool proc_wait_for_text(const char *path, const char *text, long ms);
/* This process's own stderr goes to a file in $TMPDIR until
 * proc_stderr_restore, which returns what was written (caller frees).
 * Flush the log first (log_flush) when its folded repeats count. */
void proc_stderr_capture(void);
char *proc_stderr_restore(void);

#endif
