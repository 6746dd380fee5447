/* Fuzz target: a _bulk reply (bulkresp_parse).
 *
 * The first two bytes are the HTTP status (0..599: 0 is "no reply"), the
 * third the number of actions sent; the rest is the body.  Checks what the
 * sink relies on: items[] exists exactly when the request class is ITEMS and
 * then holds one entry per action, the per-class counts add up, and every
 * reason (with its causes) stays within BULKRESP_REASON_MAX.  And that the
 * one-pass reading of the common reply agrees with the tree
 * (bulkresp_parse_tree) on every field. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/bulkresp.h"
#include "tests/fuzz/fuzz.h"

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void same_reading(const struct bulkresp *a, const struct bulkresp *b)
{
    if (a->req != b->req || a->status != b->status || a->n != b->n || a->n_ok != b->n_ok ||
        a->n_gone != b->n_gone || a->n_stale != b->n_stale || a->n_retry != b->n_retry ||
        a->n_blocked != b->n_blocked || a->n_dlq != b->n_dlq || strcmp(a->error, b->error) ||
        a->blocked != b->blocked)
        abort();
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].cls != b->items[i].cls || a->items[i].status != b->items[i].status ||
            !same_str(a->items[i].type, b->items[i].type) ||
            !same_str(a->items[i].reason, b->items[i].reason))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bulkresp r = { 0 }, t = { 0 };
    size_t n_actions;
    long status;
    int rc;

    if (size < 3)
        return 0;
    status = (long)(data[0] << 8 | data[1]) % 600;
    n_actions = data[2];
    rc = bulkresp_parse(status, (const char *)data + 3, size - 3, n_actions, &r);
    if (rc == 0) {
        if (r.req == BR_REQ_ITEMS) {
            if (r.n != n_actions || (n_actions && !r.items))
                abort();
            if (r.n_ok + r.n_gone + r.n_stale + r.n_retry + r.n_blocked + r.n_dlq != r.n)
                abort();
            for (size_t i = 0; i < r.n; i++)
                if (r.items[i].reason && strlen(r.items[i].reason) > BULKRESP_REASON_MAX)
                    abort();
        } else if (r.n != 0) {
            abort();
        }
    }
    if (bulkresp_parse_tree(status, (const char *)data + 3, size - 3, n_actions, &t) == 0 &&
        rc == 0)
        same_reading(&r, &t);
    bulkresp_clear(&r);
    bulkresp_clear(&t);
    return 0;
}
