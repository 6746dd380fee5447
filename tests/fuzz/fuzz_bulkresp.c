/* Fuzz target: a _bulk reply (bulkresp_parse).
 *
 * The first two bytes are the HTTP status (0..599: 0 is "no reply"), the
 * third the number of actions sent; the rest is the body.  Checks what the
 * sink relies on: items[] exists exactly when the request class is ITEMS and
 * then holds one entry per action, the per-class counts add up, and every
 * reason (with its causes) stays within BULKRESP_REASON_MAX. */
#include <stdlib.h>
#include <string.h>

#include "indexer/bulkresp.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bulkresp r = { 0 };
    size_t n_actions;
    long status;

    if (size < 3)
        return 0;
    status = (long)(data[0] << 8 | data[1]) % 600;
    n_actions = data[2];
    if (bulkresp_parse(status, (const char *)data + 3, size - 3, n_actions, &r) == 0) {
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
    bulkresp_clear(&r);
    return 0;
}
