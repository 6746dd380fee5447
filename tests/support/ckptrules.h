/* ckptrules — the rules every checkpoint-store backend gets from the
 * ckpt_* calls (daemon/ckpt.h, daemon/ckpt_store.h), checked through the
 * public calls only, on any backend: the file-less one of
 * tests/test_ckpt.c and the lease table's (tests/test_ckpt_lease.c). */
#ifndef DDB2ES_TEST_CKPTRULES_H
#define DDB2ES_TEST_CKPTRULES_H

#include <uv.h>

#include "daemon/ckpt.h"

struct ckpt_backend {
    /* A new, empty store over the same durable state (the next process). */
    struct ckpt *(*make)(void *ctx);
    /* How many times the backend was told of a change, or NULL when it
     * does not count them (then those checks are left out). */
    int (*changes)(struct ckpt *ck, void *ctx);
    const char *path;   /* what ckpt_path says */
    uv_loop_t *loop;    /* asynchronous saves run on it (initialised, not closed here) */
    void *ctx;
};

/* Adds entries with two tables and a parent, advances, refuses going back,
 * inherits, raises, saves, loads into another store, prunes, saves again
 * asynchronously and loads a third store.  Frees every store it made. */
void ckpt_rules_check(const struct ckpt_backend *b);

#endif
