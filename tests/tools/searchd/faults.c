#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */

void faults_clear(void)
{
    for (size_t i = 0; i < srv.nfaults; i++) {
        free(srv.faults[i].body);
        json_decref(srv.faults[i].ids);
    }
    free(srv.faults);
    srv.faults = NULL;
    srv.nfaults = 0;
}

/* Parses one rule; a "down_ms" rule takes effect at once and is not queued. */
int fault_parse(json_t *j, struct fault *f, char *why, size_t wlen)
{
    const char *m = json_string_value(json_object_get(j, "match"));
    const char *act = json_string_value(json_object_get(j, "action"));
    json_t *items = json_object_get(j, "items"), *cnt = json_object_get(j, "count"), *ids;

    memset(f, 0, sizeof(*f));
    if (!json_is_object(j)) {
        snprintf(why, wlen, "a rule must be an object");
        return -EINVAL;
    }
    if (!m || strcmp(m, "any") == 0 || strcmp(m, "*") == 0)
        f->match = FM_ANY;
    else if (strcmp(m, "bulk") == 0)
        f->match = FM_BULK;
    else if (strcmp(m, "search") == 0)
        f->match = FM_SEARCH;
    else if (strcmp(m, "doc") == 0)
        f->match = FM_DOC;
    else if (strcmp(m, "count") == 0)
        f->match = FM_COUNT;
    else {
        snprintf(why, wlen, "unknown match [%s]: any, bulk, search, doc, count", m);
        return -EINVAL;
    }
    f->count = json_is_integer(cnt) ? (long)json_integer_value(cnt) : 1;
    f->delay_ms = (long)json_integer_value(json_object_get(j, "delay_ms"));
    if (act && strcmp(act, "reset") == 0) {
        f->kind = FK_RESET;
    } else if (act && strcmp(act, "drop") == 0) {
        f->kind = FK_DROP;
    } else if (act) {
        snprintf(why, wlen, "unknown action [%s]: reset, drop", act);
        return -EINVAL;
    } else if (json_is_integer(json_object_get(j, "item_status"))) {
        f->kind = FK_ITEMS;
        f->item_status = (int)json_integer_value(json_object_get(j, "item_status"));
        if (!items || (json_is_string(items) && strcmp(json_string_value(items), "all") == 0))
            f->items = IS_ALL;
        else if (json_is_string(items) && strcmp(json_string_value(items), "odd") == 0)
            f->items = IS_ODD;
        else if (json_is_string(items) && strcmp(json_string_value(items), "even") == 0)
            f->items = IS_EVEN;
        else if (json_is_integer(items)) {
            f->items = IS_FIRST;
            f->nitems = (long)json_integer_value(items);
        } else {
            snprintf(why, wlen, "items must be \"all\", \"odd\", \"even\" or a number");
            return -EINVAL;
        }
        if (f->item_status < 100 || f->item_status > 599) {
            snprintf(why, wlen, "bad item_status");
            return -EINVAL;
        }
        if ((ids = json_object_get(j, "ids"))) {
            size_t i;
            json_t *v;
            bool strings = json_is_array(ids);
            json_array_foreach(ids, i, v)
                strings = strings && json_is_string(v);
            if (!strings) {
                snprintf(why, wlen, "ids must be a list of document ids");
                return -EINVAL;
            }
            f->ids = json_incref(ids);
        }
    } else if (json_object_get(j, "ids")) {
        snprintf(why, wlen, "ids needs item_status");
        return -EINVAL;
    } else if (json_is_integer(json_object_get(j, "status"))) {
        f->kind = FK_STATUS;
        f->status = (int)json_integer_value(json_object_get(j, "status"));
        if (f->status < 100 || f->status > 599) {
            snprintf(why, wlen, "bad status");
            return -EINVAL;
        }
        f->body = xstrdup(json_string_value(json_object_get(j, "body")));
    } else if (f->delay_ms > 0) {
        f->kind = FK_DELAY;
    } else {
        snprintf(why, wlen, "a rule needs status, item_status, delay_ms, action or down_ms");
        return -EINVAL;
    }
    return 0;
}

static bool fault_applies(const struct fault *f, enum route rt)
{
    switch (f->match) {
    case FM_ANY: return true;
    case FM_BULK: return rt == RT_BULK || rt == RT_INDEX_BULK;
    case FM_SEARCH: return rt == RT_SEARCH;
    case FM_DOC: return rt == RT_DOC;
    case FM_COUNT: return rt == RT_COUNT;
    }
    return false;
}

/* Takes one use of the first rule matching the route; the copy is the
 * caller's (body pointer borrowed until the next faults change). */
bool fault_take(enum route rt, struct fault *out)
{
    for (size_t i = 0; i < srv.nfaults; i++) {
        struct fault *f = &srv.faults[i];
        if (f->count == 0 || !fault_applies(f, rt))
            continue;
        *out = *f;
        if (f->count > 0)
            f->count--;
        srv.st.faults_applied++;
        return true;
    }
    return false;
}

void reply_injected(struct conn *c, const struct fault *f)
{
    json_t *e;

    if (f->body) {
        reply(c, f->status, "application/json; charset=UTF-8", NULL, strdup(f->body),
                     strlen(f->body));
        return;
    }
    switch (f->status) {
    case 429:
        e = err_obj("es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes="
                    "0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_"
                    "coordinating_and_primary_bytes=0]");
        break;
    case 503:
        e = err_obj("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];");
        break;
    case 413:
        e = err_obj("content_too_long_exception", "request body is too large (injected)");
        break;
    case 401:
        e = err_obj("security_exception", "missing authentication credentials (injected)");
        break;
    case 403:
        reply_json(c, 403, json_pack("{s:s}", "message", sig_mismatch), NULL);
        return;
    default:
        e = err_obj("exception", "injected failure");
        break;
    }
    reply_json(c, f->status, es_error_body(f->status, e), NULL);
}
