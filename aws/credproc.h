/* credproc — runs a profile's credential_process (AWS-AUTH §4.5) without
 * blocking the loop: `/bin/sh -c COMMAND` through uv_spawn, stdout and
 * stderr on pipes.  stdout must be the JSON document with "Version": 1; a
 * non-zero exit is an error whose message carries the start of stderr.
 */
#ifndef DDB2ES_CREDPROC_H
#define DDB2ES_CREDPROC_H

#include <uv.h>

#include "aws/credsrc.h"

struct credproc;

/* err 0: *cred is the key (take it with aws_cred_move); else why[] says
 * what went wrong (the command's stderr included, never its stdout). */
typedef void credproc_cb(int err, struct aws_cred *cred, const char *why, void *arg);

/* Starts command; cb runs once from the loop.  timeout_ms (0 = 60 s) ends a
 * command that hangs (SIGKILL).  NULL when it could not start: why[] says why
 * and cb is not run. */
struct credproc *credproc_run(uv_loop_t *loop, const char *command, long timeout_ms,
                              credproc_cb *cb, void *arg, char *why, size_t whylen);
/* cb runs with -ECANCELED before return; the child is killed and its handles
 * close from the loop.  NULL is a no-op. */
void credproc_cancel(struct credproc *p);

#endif
