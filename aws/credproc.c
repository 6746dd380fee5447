#include "aws/credproc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "base/buf.h"
#include "base/log.h"

#define MAX_STDOUT (64 * 1024)
#define MAX_STDERR (4 * 1024)
#define DEFAULT_TIMEOUT_MS 60000L

struct credproc {
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    struct buf obuf, ebuf;
    credproc_cb *cb;
    void *arg;
    int64_t exit_status;
    int term_signal;
    int pending;  /* exit, stdout EOF, stderr EOF */
    int open;     /* handles not yet closed */
    bool exited, delivered, timed_out, too_big;
};

static void on_closed(uv_handle_t *h)
{
    struct credproc *p = h->data;

    if (--p->open > 0)
        return;
    if (p->obuf.ptr)
        OPENSSL_cleanse(p->obuf.ptr, p->obuf.cap);
    buf_close(&p->obuf);
    buf_close(&p->ebuf);
    free(p);
}

static void close_one(struct credproc *p, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* Closes every handle; the process handle only after the child was reaped,
 * so no zombie is left behind. */
static void close_all(struct credproc *p)
{
    close_one(p, (uv_handle_t *)&p->out);
    close_one(p, (uv_handle_t *)&p->err);
    close_one(p, (uv_handle_t *)&p->timer);
    if (p->exited)
        close_one(p, (uv_handle_t *)&p->proc);
}

/* The first line of stderr, printable characters only. */
static void stderr_text(const struct credproc *p, char *out, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < p->ebuf.len && n + 1 < len; i++) {
        char c = p->ebuf.ptr[i];

        if (c == '\n' && n)
            break;
        if (c >= ' ' && c != 0x7f)
            out[n++] = c;
    }
    out[n] = '\0';
}

static void deliver(struct credproc *p)
{
    struct aws_cred cred = { 0 };
    char why[512], err[256], detail[200];
    int rc = -EPROTO;

    if (p->delivered)
        return;
    p->delivered = true;
    stderr_text(p, err, sizeof err);
    if (p->timed_out) {
        snprintf(why, sizeof why, "credential_process did not finish in time (killed)%s%s",
                 err[0] ? ": " : "", err);
        rc = -ETIMEDOUT;
    } else if (p->term_signal) {
        snprintf(why, sizeof why, "credential_process killed by signal %d%s%s", p->term_signal,
                 err[0] ? ": " : "", err);
    } else if (p->exit_status != 0) {
        snprintf(why, sizeof why, "credential_process exited with status %lld%s%s",
                 (long long)p->exit_status, err[0] ? ": " : "", err);
    } else if (p->too_big) {
        snprintf(why, sizeof why, "credential_process wrote more than %d bytes", MAX_STDOUT);
    } else {
        json_t *root = json_loadb(p->obuf.ptr ? p->obuf.ptr : "", p->obuf.len, 0, NULL);
        json_t *v = json_object_get(root, "Version");

        if (!json_is_object(root))
            snprintf(why, sizeof why, "credential_process output is not a JSON object");
        else if (!json_is_integer(v) || json_integer_value(v) != 1)
            snprintf(why, sizeof why, "credential_process output: Version must be 1");
        else if ((rc = aws_cred_from_json(p->obuf.ptr, p->obuf.len, "SessionToken", false, false,
                                          &cred, detail, sizeof detail)) < 0)
            snprintf(why, sizeof why, "credential_process output: %s", detail);
        json_decref(root);
    }
    if (rc == 0)
        p->cb(0, &cred, "", p->arg);
    else
        p->cb(rc, NULL, why, p->arg);
    aws_cred_clear(&cred);
}

static void step(struct credproc *p)
{
    if (--p->pending > 0)
        return;
    deliver(p);
    close_all(p);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    struct credproc *p = h->data;

    p->exited = true;
    p->exit_status = status;
    p->term_signal = sig;
    uv_timer_stop(&p->timer);
    if (p->delivered) { /* cancelled: everything else is closing already */
        close_one(p, (uv_handle_t *)&p->proc);
        return;
    }
    step(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    static char scratch[4096];

    (void)h;
    (void)suggested;
    b->base = scratch;
    b->len = sizeof scratch;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct credproc *p = s->data;
    bool is_out = s == (uv_stream_t *)&p->out;

    if (n > 0) {
        if (buf_append(is_out ? &p->obuf : &p->ebuf, b->base, (size_t)n) < 0 && is_out)
            p->too_big = true;
        OPENSSL_cleanse(b->base, (size_t)n);
        return;
    }
    if (n == 0)
        return;
    uv_read_stop(s);
    step(p);
}

static void on_timeout(uv_timer_t *t)
{
    struct credproc *p = t->data;

    p->timed_out = true;
    uv_process_kill(&p->proc, SIGKILL);
}

struct credproc *credproc_run(uv_loop_t *loop, const char *command, long timeout_ms,
                              credproc_cb *cb, void *arg, char *why, size_t whylen)
{
    struct credproc *p = calloc(1, sizeof *p);
    char *args[] = { (char *)"/bin/sh", (char *)"-c", (char *)command, NULL };
    uv_stdio_container_t stdio[3];
    uv_process_options_t o = { 0 };
    int rc;

    if (!p) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    buf_init(&p->obuf, MAX_STDOUT);
    buf_init(&p->ebuf, MAX_STDERR);
    p->cb = cb;
    p->arg = arg;
    p->proc.data = p->out.data = p->err.data = p->timer.data = p;
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    p->open = 3;
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    o.file = "/bin/sh";
    o.args = args;
    o.exit_cb = on_exit_cb;
    o.stdio = stdio;
    o.stdio_count = 3;
    rc = uv_spawn(loop, &p->proc, &o);
    if (rc < 0) {
        snprintf(why, whylen, "credential_process: cannot start /bin/sh: %s", uv_strerror(rc));
        p->delivered = true;
        p->exited = true;
        close_one(p, (uv_handle_t *)&p->out);
        close_one(p, (uv_handle_t *)&p->err);
        close_one(p, (uv_handle_t *)&p->timer);
        /* uv_spawn initialises the handle even when it fails: close it too. */
        p->open++;
        close_one(p, (uv_handle_t *)&p->proc);
        return NULL;
    }
    p->open++;
    p->pending = 3;
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
    uv_timer_start(&p->timer, on_timeout, (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS),
                   0);
    return p;
}

void credproc_cancel(struct credproc *p)
{
    if (!p || p->delivered)
        return;
    p->delivered = true;
    p->cb(-ECANCELED, NULL, "cancelled", p->arg);
    if (!p->exited)
        uv_process_kill(&p->proc, SIGKILL);
    close_all(p);
}
