/* leasetab — the lease table's items and requests (format: lease.h). */
#include "daemon/leasetab.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rfc3339.h"

#define ID_MAX 1024 /* ARNs are <= 1024 bytes, shard ids <= 65 */

/* ---- keys ----------------------------------------------------------------- */

char *leasetab_lease_key(const char *arn, const char *shard)
{
    char *k;

    return asprintf(&k, "%s|%s", arn, shard) < 0 ? NULL : k;
}

char *leasetab_worker_key(const char *worker_id)
{
    char *k;

    return asprintf(&k, LEASETAB_WORKER_PREFIX "%s", worker_id) < 0 ? NULL : k;
}

/* ---- attribute values ------------------------------------------------------ */

static json_t *av_s(const char *s)
{
    return json_pack("{s:s}", "S", s);
}

static json_t *av_n(int64_t v)
{
    char text[32];

    snprintf(text, sizeof(text), "%" PRId64, v);
    return json_pack("{s:s}", "N", text);
}

static json_t *av_u(uint64_t v)
{
    char text[32];

    snprintf(text, sizeof(text), "%" PRIu64, v);
    return json_pack("{s:s}", "N", text);
}

static json_t *av_time(time_t t)
{
    char when[RFC3339_LEN + 1];

    rfc3339_format(t, when);
    return av_s(when);
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

static const char *get_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

/* The N attribute name as an unsigned integer below max: 0, or -1 when absent
 * or not one. */
static int get_u(const json_t *item, const char *name, uint64_t max, uint64_t *out)
{
    const char *s = json_string_value(json_object_get(json_object_get(item, name), "N"));
    uint64_t v = 0;

    if (!s || !*s || strlen(s) > 20)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- reading items ------------------------------------------------------- */

enum leasetab_kind leasetab_kind(const json_t *item)
{
    const char *key = get_s(item, LEASETAB_KEY);

    if (key && strncmp(key, LEASETAB_WORKER_PREFIX, strlen(LEASETAB_WORKER_PREFIX)) == 0)
        return LEASETAB_WORKER;
    if (key && json_object_get(item, "shard"))
        return LEASETAB_LEASE;
    return LEASETAB_OTHER;
}

static int bad(char *err, size_t len, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(char *err, size_t len, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (len) {
        n = snprintf(err, len, "item \"%.200s\": ", key ? key : "?");
        if (n >= 0 && (size_t)n < len) {
            va_start(ap, fmt);
            vsnprintf(err + n, len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EBADMSG;
}

/* An optional S attribute: 0 (absent: *out NULL), -EBADMSG (not a non-empty
 * string), -ENOMEM. */
static int opt_s(const json_t *item, const char *name, char **out)
{
    const json_t *av = json_object_get(item, name);
    const char *s = json_string_value(json_object_get(av, "S"));

    *out = NULL;
    if (!av)
        return 0;
    if (!s || !*s || strlen(s) > ID_MAX)
        return -EBADMSG;
    return (*out = strdup(s)) ? 0 : -ENOMEM;
}

static int req_s(const json_t *item, const char *name, char **out)
{
    return json_object_get(item, name) ? opt_s(item, name, out) : -EBADMSG;
}

static int get_time(const json_t *item, const char *name, time_t *out)
{
    const char *s = get_s(item, name);

    return s && rfc3339_parse(s, out) == 0 ? 0 : -1;
}

void leasetab_lease_clear(struct leasetab_lease *l)
{
    free(l->key);
    free(l->stream);
    free(l->shard);
    free(l->table);
    free(l->parent);
    free(l->owner);
    free(l->claim);
    free(l->owner_run);
    memset(l, 0, sizeof(*l));
}

int leasetab_lease_parse(const json_t *item, struct leasetab_lease *out, char *err, size_t len)
{
    static const char *const strs[] = { "stream", "shard", "table",
                                        "parent", "owner", "claim", "owner_run" };
    const char *key = get_s(item, LEASETAB_KEY), *seq;
    char **fields[] = { &out->stream, &out->shard, &out->table,     &out->parent,
                        &out->owner,  &out->claim, &out->owner_run };
    const json_t *done = json_object_get(json_object_get(item, "done"), "BOOL");
    uint64_t vs, vn, sb = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!key || !*key)
        return bad(err, len, key, "no key");
    if (!(out->key = strdup(key)))
        return -ENOMEM;
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++) {
        rc = i < 3 ? req_s(item, strs[i], fields[i]) : opt_s(item, strs[i], fields[i]);
        if (rc == -ENOMEM)
            goto fail;
        if (rc < 0) {
            rc = bad(err, len, key, "%s: missing or not a non-empty string", strs[i]);
            goto fail;
        }
    }
    rc = -EBADMSG;
    if (get_u(item, "counter", UINT64_MAX, &out->counter) < 0 ||
        get_u(item, "epoch", UINT64_MAX, &out->epoch) < 0) {
        bad(err, len, key, "counter and epoch: missing or not unsigned integers");
        goto fail;
    }
    seq = get_s(item, "seq");
    if (json_object_get(item, "seq") && !seqnum_valid(seq)) {
        bad(err, len, key, "seq: not a sequence number (21-40 digits)");
        goto fail;
    }
    if (seq)
        strcpy(out->seq, seq);
    if (get_u(item, "ver_s", DOCVER_SECOND_MAX, &vs) < 0 ||
        get_u(item, "ver_n", DOCVER_ORDINAL_MAX, &vn) < 0) {
        bad(err, len, key, "ver_s, ver_n: missing or out of range");
        goto fail;
    }
    out->ver = (struct docver){ (int64_t)vs, (uint32_t)vn };
    if (json_object_get(item, "skip_before") &&
        get_u(item, "skip_before", DOCVER_SECOND_MAX, &sb) < 0) {
        bad(err, len, key, "skip_before: not an integer in 0..%lld", (long long)DOCVER_SECOND_MAX);
        goto fail;
    }
    out->skip_before = (int64_t)sb;
    if (!json_is_boolean(done)) {
        bad(err, len, key, "done: missing or not a boolean");
        goto fail;
    }
    out->done = json_is_true(done);
    if (get_time(item, "updated", &out->updated) < 0) {
        bad(err, len, key, "updated: missing or not a time like 2024-05-01T12:00:00Z");
        goto fail;
    }
    return 0;
fail:
    leasetab_lease_clear(out);
    return rc;
}

void leasetab_worker_clear(struct leasetab_worker *w)
{
    free(w->key);
    free(w->worker);
    free(w->run);
    memset(w, 0, sizeof(*w));
}

int leasetab_worker_parse(const json_t *item, struct leasetab_worker *out, char *err, size_t len)
{
    const char *key = get_s(item, LEASETAB_KEY);
    uint64_t d = 0, n = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!key || !(out->key = strdup(key)))
        return key ? -ENOMEM : bad(err, len, key, "no key");
    if ((rc = req_s(item, "worker", &out->worker)) < 0 ||
        (rc = req_s(item, "run", &out->run)) < 0) {
        if (rc != -ENOMEM)
            rc = bad(err, len, key, "worker, run: missing or not non-empty strings");
        goto fail;
    }
    rc = -EBADMSG;
    if (get_u(item, "beat", UINT64_MAX, &out->beat) < 0 ||
        get_u(item, "lease_duration_ms", INT64_MAX, &d) < 0 ||
        get_u(item, "leases", INT64_MAX, &n) < 0) {
        bad(err, len, key, "beat, lease_duration_ms, leases: missing or not unsigned integers");
        goto fail;
    }
    out->duration_ms = (int64_t)d;
    out->leases = (int64_t)n;
    if (get_time(item, "started", &out->started) < 0 || get_time(item, "updated", &out->updated) < 0) {
        bad(err, len, key, "started, updated: missing or not times");
        goto fail;
    }
    return 0;
fail:
    leasetab_worker_clear(out);
    return rc;
}

/* ---- requests -------------------------------------------------------------- */

/* Every attribute is named through #placeholders: several are reserved
 * words in DynamoDB's expression language. */
static json_t *names(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "#k", LEASETAB_KEY,
                     "#o", "owner", "#cl", "claim", "#c", "counter", "#e", "epoch", "#u",
                     "updated", "#seq", "seq", "#vs", "ver_s", "#vn", "ver_n", "#sb",
                     "skip_before", "#done", "done", "#or", "owner_run");
}

/* Keeps only the #names the expressions use (DynamoDB refuses unused ones). */
static json_t *used_names(const char *const *exprs, size_t n)
{
    json_t *all = names(), *out = json_object();
    const char *name;
    json_t *v;

    if (!all || !out) {
        json_decref(all);
        json_decref(out);
        return NULL;
    }
    json_object_foreach(all, name, v)
    {
        bool used = false;
        size_t nl = strlen(name);

        for (size_t i = 0; i < n && !used; i++)
            for (const char *p = exprs[i]; p && (p = strstr(p, name)); p += nl)
                if (p[nl] == '\0' || !(p[nl] == '_' || (p[nl] >= 'a' && p[nl] <= 'z')))
                    used = true;
        if (used)
            json_object_set(out, name, v);
    }
    json_decref(all);
    return out;
}

static json_t *key_of(const char *key)
{
    return json_pack("{s:o}", LEASETAB_KEY, av_s(key));
}

/* An UpdateItem (or DeleteItem when update is NULL) with its condition;
 * values is stolen. */
static json_t *write_req(const char *table, const char *key, const char *update,
                         const char *cond, json_t *values, bool return_new)
{
    const char *exprs[] = { update, cond };
    json_t *body = json_pack("{s:s,s:o,s:o}", "TableName", table, "Key", key_of(key),
                             "ExpressionAttributeNames", used_names(exprs, 2));

    if (!body) {
        json_decref(values);
        return NULL;
    }
    if (update)
        json_object_set_new(body, "UpdateExpression", json_string(update));
    if (cond)
        json_object_set_new(body, "ConditionExpression", json_string(cond));
    if (values && json_object_size(values))
        json_object_set_new(body, "ExpressionAttributeValues", values);
    else
        json_decref(values);
    if (return_new)
        json_object_set_new(body, "ReturnValues", json_string("ALL_NEW"));
    return body;
}

json_t *leasetab_req_describe(const char *table)
{
    return json_pack("{s:s}", "TableName", table);
}

json_t *leasetab_req_create_table(const char *table)
{
    return json_pack("{s:s,s:[{s:s,s:s}],s:[{s:s,s:s}],s:s}", "TableName", table,
                     "AttributeDefinitions", "AttributeName", LEASETAB_KEY, "AttributeType", "S",
                     "KeySchema", "AttributeName", LEASETAB_KEY, "KeyType", "HASH", "BillingMode",
                     "PAY_PER_REQUEST");
}

json_t *leasetab_req_scan(const char *table, const json_t *start)
{
    json_t *body = json_pack("{s:s,s:b}", "TableName", table, "ConsistentRead", 1);

    if (body && start)
        json_object_set_new(body, "ExclusiveStartKey", json_deep_copy(start));
    return body;
}

json_t *leasetab_req_create(const char *table, const struct ckpt_shard *sh, time_t now)
{
    char *key = leasetab_lease_key(sh->arn, sh->id);
    json_t *item, *body = NULL;
    const char *cond = "attribute_not_exists(#k)";

    if (!key)
        return NULL;
    item = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", LEASETAB_KEY, av_s(key),
                     "stream", av_s(sh->arn), "shard", av_s(sh->id), "table", av_s(sh->table),
                     "counter", av_u(0), "epoch", av_u(0), "ver_s", av_n(sh->ver.second),
                     "ver_n", av_u(sh->ver.ordinal), "done",
                     json_pack("{s:b}", "BOOL", (int)sh->done), "updated",
                     av_time(sh->updated ? sh->updated : now));
    if (item && sh->parent)
        json_object_set_new(item, "parent", av_s(sh->parent));
    if (item && sh->seq[0])
        json_object_set_new(item, "seq", av_s(sh->seq));
    if (item && sh->skip_before)
        json_object_set_new(item, "skip_before", av_n(sh->skip_before));
    if (item)
        body = json_pack("{s:s,s:o,s:s,s:o}", "TableName", table, "Item", item,
                         "ConditionExpression", cond, "ExpressionAttributeNames",
                         used_names(&cond, 1));
    free(key);
    return body;
}

json_t *leasetab_req_renew(const char *table, const char *key, const char *me, uint64_t epoch,
                           bool clear_claim, time_t now)
{
    return write_req(table, key,
                     clear_claim ? "SET #c = #c + :one, #u = :now REMOVE #cl"
                                 : "SET #c = #c + :one, #u = :now",
                     "#o = :me AND #e = :e",
                     json_pack("{s:o,s:o,s:o,s:o}", ":one", av_u(1), ":now", av_time(now), ":me",
                               av_s(me), ":e", av_u(epoch)),
                     true);
}

json_t *leasetab_req_checkpoint(const char *table, const char *key, const char *me,
                                uint64_t epoch, const struct ckpt_shard *sh, time_t now)
{
    char update[256];
    json_t *values = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", ":one", av_u(1), ":now",
                               av_time(sh->updated ? sh->updated : now), ":me", av_s(me), ":e",
                               av_u(epoch), ":vs", av_n(sh->ver.second), ":vn",
                               av_u(sh->ver.ordinal), ":done",
                               json_pack("{s:b}", "BOOL", (int)sh->done));
    bool has_seq = sh->seq[0], has_sb = sh->skip_before != 0;

    if (!values)
        return NULL;
    snprintf(update, sizeof(update),
             "SET #c = #c + :one, #u = :now, #vs = :vs, #vn = :vn, #done = :done%s%s%s%s%s",
             has_seq ? ", #seq = :seq" : "", has_sb ? ", #sb = :sb" : "",
             !has_seq || !has_sb ? " REMOVE " : "", !has_seq ? "#seq" : "",
             !has_seq && !has_sb ? ", #sb" : !has_sb ? "#sb" : "");
    if (has_seq)
        json_object_set_new(values, ":seq", av_s(sh->seq));
    if (has_sb)
        json_object_set_new(values, ":sb", av_n(sh->skip_before));
    return write_req(table, key, update, "#o = :me AND #e = :e", values, false);
}

static const char take_update[] = "SET #o = :me, #or = :run, #e = #e + :one, #c = #c + :one, "
                                  "#u = :now REMOVE #cl";

json_t *leasetab_req_take(const char *table, const char *key, const char *me, const char *run,
                          uint64_t counter, uint64_t epoch, time_t now)
{
    return write_req(table, key, take_update, "#c = :c AND #e = :e",
                     json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", ":one", av_u(1), ":now", av_time(now),
                               ":me", av_s(me), ":run", av_s(run), ":c", av_u(counter), ":e",
                               av_u(epoch)),
                     true);
}

json_t *leasetab_req_claim(const char *table, const char *key, const char *me,
                           const char *victim, uint64_t epoch)
{
    return write_req(table, key, "SET #cl = :me",
                     "#o = :v AND #e = :e AND attribute_not_exists(#cl)",
                     json_pack("{s:o,s:o,s:o}", ":me", av_s(me), ":v", av_s(victim), ":e",
                               av_u(epoch)),
                     false);
}

json_t *leasetab_req_force(const char *table, const char *key, const char *me, const char *run,
                           const char *victim, uint64_t epoch, time_t now)
{
    return write_req(table, key, take_update, "#o = :v AND #e = :e AND #cl = :me",
                     json_pack("{s:o,s:o,s:o,s:o,s:o,s:o}", ":one", av_u(1), ":now", av_time(now),
                               ":me", av_s(me), ":run", av_s(run), ":v", av_s(victim), ":e",
                               av_u(epoch)),
                     true);
}

json_t *leasetab_req_release(const char *table, const char *key, const char *me,
                             uint64_t epoch, time_t now)
{
    return write_req(table, key, "SET #c = #c + :one, #u = :now REMOVE #o, #or, #cl",
                     "#o = :me AND #e = :e",
                     json_pack("{s:o,s:o,s:o,s:o}", ":one", av_u(1), ":now", av_time(now), ":me",
                               av_s(me), ":e", av_u(epoch)),
                     false);
}

json_t *leasetab_req_prune(const char *table, const char *key, uint64_t counter)
{
    return write_req(table, key, NULL, "#done = :t AND #c = :c",
                     json_pack("{s:{s:b},s:o}", ":t", "BOOL", 1, ":c", av_u(counter)), false);
}

json_t *leasetab_req_heartbeat(const char *table, const char *me, const char *run,
                               int64_t duration_ms, size_t leases, bool first, time_t now)
{
    char *key = leasetab_worker_key(me);
    json_t *body = NULL, *values;

    if (!key)
        return NULL;
    values = json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o}", ":id", av_s(me), ":run", av_s(run),
                       ":zero", av_u(0), ":one", av_u(1), ":ld", av_n(duration_ms), ":n",
                       av_u(leases), ":now", av_time(now));
    if (values) {
        json_t *nm = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "#w", "worker", "#run", "run",
                               "#beat", "beat", "#ld", "lease_duration_ms", "#n", "leases", "#u",
                               "updated", "#st", "started");

        body = json_pack("{s:s,s:o,s:s,s:o,s:o}", "TableName", table, "Key", key_of(key),
                         "UpdateExpression",
                         first ? "SET #w = :id, #run = :run, #beat = if_not_exists(#beat, :zero) "
                                 "+ :one, #ld = :ld, #n = :n, #u = :now, #st = :now"
                               : "SET #w = :id, #run = :run, #beat = if_not_exists(#beat, :zero) "
                                 "+ :one, #ld = :ld, #n = :n, #u = :now, "
                                 "#st = if_not_exists(#st, :now)",
                         "ExpressionAttributeNames", nm, "ExpressionAttributeValues", values);
        /* Gone (deleted by others after a long silence): written again. */
        if (!first)
            json_object_set_new(body, "ConditionExpression",
                                json_string("attribute_not_exists(#run) OR #run = :run"));
    }
    free(key);
    return body;
}

json_t *leasetab_req_worker_delete(const char *table, const char *worker_id, const char *run,
                                   uint64_t beat)
{
    char *key = leasetab_worker_key(worker_id);
    json_t *body = NULL;

    if (!key)
        return NULL;
    if (run)
        body = json_pack("{s:s,s:o,s:s,s:{s:s},s:{s:o}}", "TableName", table, "Key", key_of(key),
                         "ConditionExpression", "#run = :run", "ExpressionAttributeNames",
                         "#run", "run", "ExpressionAttributeValues", ":run", av_s(run));
    else
        body = json_pack("{s:s,s:o,s:s,s:{s:s},s:{s:o}}", "TableName", table, "Key", key_of(key),
                         "ConditionExpression", "#beat = :b", "ExpressionAttributeNames",
                         "#beat", "beat", "ExpressionAttributeValues", ":b", av_u(beat));
    free(key);
    return body;
}

bool leasetab_condition_failed(const struct ddb_reply *rep)
{
    return rep->cls == DDB_FATAL && rep->type &&
           strcmp(rep->type, "ConditionalCheckFailedException") == 0;
}

const json_t *leasetab_reply_item(const struct ddb_reply *rep)
{
    return json_object_get(rep->json, "Attributes");
}

int leasetab_check_describe(const json_t *reply, char *why, size_t len)
{
    const json_t *t = json_object_get(reply, "Table"), *ks = json_object_get(t, "KeySchema");
    const json_t *defs = json_object_get(t, "AttributeDefinitions"), *d;
    const char *status = json_string_value(json_object_get(t, "TableStatus"));
    const char *type = NULL;
    size_t i;

    if (!status) {
        snprintf(why, len, "DescribeTable answered without a TableStatus");
        return -EINVAL;
    }
    if (strcmp(status, "DELETING") == 0) {
        snprintf(why, len, "the table is being deleted");
        return -EINVAL;
    }
    if (strcmp(status, "ACTIVE") != 0 && strcmp(status, "UPDATING") != 0)
        return 0;
    json_array_foreach(defs, i, d)
    {
        if (strcmp(or_empty(json_string_value(json_object_get(d, "AttributeName"))), LEASETAB_KEY) == 0)
            type = json_string_value(json_object_get(d, "AttributeType"));
    }
    if (json_array_size(ks) != 1 ||
        strcmp(or_empty(json_string_value(json_object_get(json_array_get(ks, 0), "AttributeName"))),
               LEASETAB_KEY) != 0 ||
        strcmp(or_empty(json_string_value(json_object_get(json_array_get(ks, 0), "KeyType"))),
               "HASH") != 0 ||
        !type || strcmp(type, "S") != 0) {
        snprintf(why, len,
                 "its key schema is not this one (a string hash key named \"" LEASETAB_KEY
                 "\" and nothing else): is it another application's table?");
        return -EINVAL;
    }
    return 1;
}
