#include "aws/scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/backoff.h"
#include "base/log.h"

json_t *scan_request(const char *table, int segment, int total, int limit, json_t *start,
                     bool consistent)
{
    json_t *body = json_pack("{s:s}", "TableName", table);

    if (body && total > 1) {
        json_object_set_new(body, "Segment", json_integer(segment));
        json_object_set_new(body, "TotalSegments", json_integer(total));
    }
    if (body && limit > 0)
        json_object_set_new(body, "Limit", json_integer(limit));
    if (body && start)
        json_object_set(body, "ExclusiveStartKey", start);
    if (body && consistent)
        json_object_set_new(body, "ConsistentRead", json_true());
    return body;
}

int scan_failed(const struct ddb_reply *rep, struct bucket *b, double seen, uint64_t now_ms,
                uint64_t *failing_since, int64_t give_up_ms, const char *table, int segment,
                char *why, size_t whylen)
{
    if (rep->cls == DDB_THROTTLED) {
        log_warn("Scan throttled (%s): lowering the rate to %.0f items/s", rep->type,
                 bucket_throttled(b, seen));
    } else if (rep->cls == DDB_NOT_FOUND) {
        snprintf(why, whylen, "table %s: %s", table, rep->message);
        return 69;
    } else if (rep->cls == DDB_FATAL && (strcmp(rep->type, "AccessDeniedException") == 0 ||
                                         strcmp(rep->type, "UnrecognizedClientException") == 0)) {
        snprintf(why, whylen, "Scan of %s refused: %s: %s", table, rep->type, rep->message);
        return 77;
    } else {
        log_warn("Scan of %s segment %d failed: HTTP %ld %s %s; retrying", table, segment,
                 rep->status, rep->type, rep->message);
    }
    if (!*failing_since)
        *failing_since = now_ms;
    if (now_ms - *failing_since >= (uint64_t)give_up_ms) {
        snprintf(why, whylen, "Scan of %s failing for %" PRId64 " s: HTTP %ld %s %s", table,
                 give_up_ms / 1000, rep->status, rep->type, rep->message);
        return 69;
    }
    return 0;
}

int scan_take(struct bucket *b, uv_timer_t *timer, uv_timer_cb cb, int nshares, int max)
{
    uint64_t wait;
    int n = bucket_take(b, uv_now(timer->loop), nshares, max, &wait);

    if (n == 0) {
        uv_timer_start(timer, cb, wait, 0);
        return -1;
    }
    return n < 0 ? 0 : n;
}

void scan_backoff(uv_timer_t *timer, uv_timer_cb cb, unsigned *failures, long base_ms,
                  long max_ms)
{
    uv_timer_start(timer, cb, (uint64_t)backoff_ms(base_ms, max_ms, (*failures)++), 0);
}
