#include "tests/support/loop.h"

#include <stdint.h>

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

bool loop_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, long ms)
{
    uv_timer_t tick;
    uint64_t end;
    bool ok;

    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_update_time(loop);
    end = uv_now(loop) + (uint64_t)ms;
    while (!(ok = pred(arg)) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}
