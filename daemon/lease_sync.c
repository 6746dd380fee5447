/* lease_sync — one job run to its end on a private loop, with its own HTTP
 * client, credentials and DynamoDB client made from the daemon's settings:
 * the checkpoint store's synchronous calls (ckpt_load, ckpt_save_sync) are
 * called where the daemon's loop cannot run (start-up, shutdown, `ddb2es
 * status`). */
#include "daemon/lease_int.h"

#include <errno.h>
#include <stdlib.h>

#include "aws/creds.h"
#include "base/http.h"
#include "base/log.h"

struct sync_run {
    bool (*done)(void *arg);
    void *arg;
    bool timed_out;
};

static void on_timeout(uv_timer_t *t)
{
    struct sync_run *r = t->data;

    r->timed_out = true;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int lease_sync_run(const struct lease_conn *conn, long timeout_ms,
                   int (*start)(uv_loop_t *loop, struct aws *aws, void *arg),
                   bool (*done)(void *arg), void *arg)
{
    struct sync_run r = { done, arg, false };
    struct http *h = NULL;
    struct creds *c = NULL;
    struct aws *a = NULL;
    uv_timer_t timer;
    uv_loop_t loop;
    int rc;

    if (uv_loop_init(&loop) != 0)
        return -ENOMEM;
    uv_timer_init(&loop, &timer);
    timer.data = &r;
    rc = -ENOMEM;
    if (!(h = http_new(&loop, NULL)) || !(c = creds_new(&loop, h, &conn->creds)) ||
        !(a = aws_new(&loop, h, c, &conn->aws)))
        goto out;
    if ((rc = start(&loop, a, arg)) < 0)
        goto out;
    uv_timer_start(&timer, on_timeout, (uint64_t)timeout_ms, 0);
    while (!done(arg) && !r.timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    rc = done(arg) ? 0 : -ETIMEDOUT;
out:
    aws_free(a); /* calls still in flight end with -ECANCELED */
    creds_free(c);
    if (h)
        http_close(h, NULL, NULL);
    uv_walk(&loop, walk_close, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        log_warn("lease table: a private loop closed with handles still open");
    return rc;
}
