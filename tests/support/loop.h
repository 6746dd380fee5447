/* loop — running a test's libuv loop until something holds. */
#ifndef DDB2ES_TEST_LOOP_H
#define DDB2ES_TEST_LOOP_H

#include <stdbool.h>

#include <uv.h>

/* Runs loop until pred(arg) holds or ms pass; returns whether it held.  A
 * 5 ms repeating timer keeps the loop waking, so conditions that change on
 * other threads (the fake servers') are seen; it is closed before return. */
bool loop_run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, long ms);

#endif
