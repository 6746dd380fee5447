#include "indexer/bulkresp.h"

#include "base/jsonskip.h"
#include "base/jsonx.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum br_request classify_status(long status)
{
    if (status >= 200 && status < 300)
        return BR_REQ_ITEMS;
    if (status == 413)
        return BR_REQ_SPLIT;
    if (status == 0 || status == 408 || status == 429 || (status >= 500 && status < 600))
        return BR_REQ_RETRY;
    if (status == 401 || status == 403)
        return BR_REQ_AUTH;
    return BR_REQ_FATAL;
}

static char *dup_bounded(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* The item's reason followed by its causes, which say what "failed to
 * parse" was about: "failed to parse; caused by parse_exception: The depth
 * of the field has exceeded ...".  At most BULKRESP_REASON_MAX bytes. */
static char *reason_with_causes(json_t *err, const char *reason)
{
    char *out = malloc(BULKRESP_REASON_MAX + 1);
    size_t n;

    if (!out)
        return NULL;
    n = strnlen(reason, BULKRESP_REASON_MAX);
    memcpy(out, reason, n);
    out[n] = '\0';
    err = json_object_get(err, "caused_by");
    for (int depth = 0; json_is_object(err) && depth < 4 && n < BULKRESP_REASON_MAX; depth++) {
        const char *t = json_string_value(json_object_get(err, "type"));
        const char *r = json_string_value(json_object_get(err, "reason"));
        int w = snprintf(out + n, BULKRESP_REASON_MAX + 1 - n, "; caused by %s: %s",
                         t ? t : "?", r ? r : "");

        if (w < 0)
            break;
        n += (size_t)w;
        if (n > BULKRESP_REASON_MAX) /* cut by snprintf */
            n = BULKRESP_REASON_MAX;
        err = json_object_get(err, "caused_by");
    }
    return out;
}

/* A write block refuses writes until an operator (or the engine, for the
 * flood-stage watermark) lifts it: a ClusterBlockException, whose status is
 * that of its blocks — FORBIDDEN for index.blocks.write ("FORBIDDEN/8/index
 * write (api)") and read_only (5), TOO_MANY_REQUESTS for the flood-stage
 * read_only_allow_delete block (12) since Elasticsearch 7.x and in
 * OpenSearch (FORBIDDEN and "index read-only / allow delete (api)" before)
 * (cluster.metadata.IndexMetadata and ClusterBlockException in both
 * engines).  A SERVICE_UNAVAILABLE one ("no master") is the cluster being
 * down, not a block: a plain 5xx. */
static bool is_block(const char *type, long status)
{
    return type && strcmp(type, "cluster_block_exception") == 0 && status < 500;
}

/* An item: {"index":{"status":201,...}} or {"delete":{"status":404,...}}. */
static int classify_item(json_t *item, struct bulkresp_item *it, struct bulkresp *out)
{
    void *iter = json_object_iter(item);
    const char *op = json_object_iter_key(iter);
    json_t *body = json_object_iter_value(iter);
    json_t *status = json_object_get(body, "status");
    json_t *err = json_object_get(body, "error");
    const char *type = json_string_value(json_object_get(err, "type"));
    const char *reason = json_string_value(json_object_get(err, "reason"));
    json_int_t st;

    if (!op || json_object_size(item) != 1 || !json_is_integer(status))
        return -EPROTO;
    st = json_integer_value(status);
    it->status = st > 0 && st < 1000 ? (int)st : 0;
    if (json_is_string(err)) /* very old engines: "error":"text" */
        reason = json_string_value(err);
    if (st >= 200 && st < 300)
        it->cls = BR_OK;
    else if (st == 404 && strcmp(op, "delete") == 0)
        it->cls = BR_OK_GONE;
    else if (st == 409)
        it->cls = BR_OK_STALE;
    else if (st == 401 || st == 403 || is_block(type, st))
        it->cls = BR_BLOCKED;
    else if (st == 429 || (st >= 500 && st < 600))
        it->cls = BR_RETRY;
    else
        it->cls = BR_DLQ;
    switch (it->cls) {
    case BR_OK:       out->n_ok++; break;
    case BR_OK_GONE:  out->n_gone++; break;
    case BR_OK_STALE: out->n_stale++; break;
    case BR_RETRY:    out->n_retry++; break;
    case BR_BLOCKED:  out->n_blocked++; break;
    case BR_DLQ:      out->n_dlq++; break;
    }
    if (it->cls == BR_RETRY || it->cls == BR_BLOCKED || it->cls == BR_DLQ) {
        it->type = dup_bounded(type ? type : "", 128);
        it->reason = json_is_object(err) ? reason_with_causes(err, reason ? reason : "")
                                         : dup_bounded(reason ? reason : "", BULKRESP_REASON_MAX);
        if (!it->type || !it->reason)
            return -ENOMEM;
    }
    return 0;
}

/* Request-level error text: ES/OpenSearch {"error":{"type","reason"}},
 * {"error":"text"}, or AWS {"message":"..."} / {"Message":"..."}. */
static void request_error(json_t *root, const char *body, size_t len, struct bulkresp *out)
{
    json_t *err = json_object_get(root, "error");
    const char *type = json_string_value(json_object_get(err, "type"));
    const char *reason = json_string_value(json_object_get(err, "reason"));
    size_t n = 0;

    if (json_is_string(err))
        reason = json_string_value(err);
    out->blocked = is_block(type, out->status);
    if (!reason)
        reason = json_string_value(json_object_get(root, "message"));
    if (!reason)
        reason = json_string_value(json_object_get(root, "Message"));
    if (type || reason) {
        snprintf(out->error, sizeof(out->error), "%s%s%s", type ? type : "",
                 type && reason ? ": " : "", reason ? reason : "");
        return;
    }
    /* not JSON (a proxy's HTML page): keep the start of the text, printable only */
    for (size_t i = 0; i < len && n < 120; i++)
        out->error[n++] = (unsigned char)body[i] < 0x20 ? ' ' : body[i];
    out->error[n] = '\0';
}

/* ---- the common reply, read without a tree ---- */

/* A reply where every action succeeded, as the engines write it with
 * bulk_filter_path(): {"errors":false,"items":[{"index":{"status":201}},
 * {"delete":{"status":404}},...]} ("took" too without the filter).  The
 * reader below takes exactly that shape, items with a status and nothing
 * else that are 2xx or a delete's 404; anything else (an error object, any
 * other member or status, an escape, a number that is not plain digits, a
 * name twice) is given back to the tree, which decides it. */
struct scan {
    const char *p, *end;
};

static void sws(struct scan *s)
{
    s->p = jsonskip_ws(s->p, s->end);
}

static bool seat(struct scan *s, char c)
{
    const char *q = jsonskip_take(s->p, s->end, c);

    if (q)
        s->p = q;
    return q != NULL;
}

/* A string of printable ASCII without escapes, compared to want (or, with
 * want NULL, returned in *a and *n). */
static bool sname(struct scan *s, const char *want, const char **a, size_t *n)
{
    const char *q;

    if (!seat(s, '"'))
        return false;
    for (q = s->p; q < s->end && *q != '"'; q++)
        if (*q == '\\' || (unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e)
            return false;
    if (q >= s->end || (want && ((size_t)(q - s->p) != strlen(want) ||
                                 memcmp(s->p, want, (size_t)(q - s->p)) != 0)))
        return false;
    if (a) {
        *a = s->p;
        *n = (size_t)(q - s->p);
    }
    s->p = q + 1;
    return true;
}

/* 1 to 9 digits, no sign, fraction, exponent or leading zero. */
static bool sint(struct scan *s, long *v)
{
    const char *q;

    sws(s);
    q = s->p;
    *v = 0;
    while (q < s->end && *q >= '0' && *q <= '9' && q - s->p < 10)
        *v = *v * 10 + (*q++ - '0');
    if (q == s->p || q - s->p > 9 || (*s->p == '0' && q - s->p > 1) ||
        (q < s->end && (*q == '.' || *q == 'e' || *q == 'E' || (*q >= '0' && *q <= '9'))))
        return false;
    s->p = q;
    return true;
}

static bool sliteral(struct scan *s, const char *lit)
{
    size_t n = strlen(lit);

    sws(s);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* One item, {"OP":{"status":N}}, that succeeded. */
static bool fast_item(struct scan *s, struct bulkresp_item *it, struct bulkresp *out)
{
    const char *op;
    size_t oplen;
    long st;

    if (!seat(s, '{') || !sname(s, NULL, &op, &oplen) || !seat(s, ':') || !seat(s, '{') ||
        !sname(s, "status", NULL, NULL) || !seat(s, ':') || !sint(s, &st) || !seat(s, '}') ||
        !seat(s, '}'))
        return false;
    it->status = st > 0 && st < 1000 ? (int)st : 0;
    if (st >= 200 && st < 300) {
        it->cls = BR_OK;
        out->n_ok++;
    } else if (st == 404 && oplen == 6 && memcmp(op, "delete", 6) == 0) {
        it->cls = BR_OK_GONE;
        out->n_gone++;
    } else {
        return false;
    }
    return true;
}

static bool fast_items(struct scan *s, size_t n_actions, struct bulkresp *out)
{
    size_t i = 0;

    if (!seat(s, '['))
        return false;
    if (seat(s, ']'))
        return n_actions == 0;
    if (!n_actions || !(out->items = calloc(n_actions, sizeof(*out->items))))
        return false;
    do {
        if (i == n_actions || !fast_item(s, &out->items[i++], out))
            return false;
    } while (seat(s, ','));
    out->n = i;
    return seat(s, ']') && i == n_actions;
}

/* The whole reply in one pass; false (the items freed, the counts left for
 * bulkresp_parse_tree to clear)
 * when it is not the common one. */
static bool fast_reply(const char *body, size_t len, size_t n_actions, struct bulkresp *out)
{
    struct scan s = { body, body + len };
    bool items = false, errors = false, took = false, ok = true;
    const char *name;
    size_t nlen;
    long v;

    if (!body || !seat(&s, '{') || seat(&s, '}'))
        ok = false;
    while (ok) {
        ok = sname(&s, NULL, &name, &nlen) && seat(&s, ':');
        if (ok && nlen == 5 && memcmp(name, "items", 5) == 0 && !items)
            ok = items = fast_items(&s, n_actions, out);
        else if (ok && nlen == 6 && memcmp(name, "errors", 6) == 0 && !errors)
            ok = errors = sliteral(&s, "false");
        else if (ok && nlen == 4 && memcmp(name, "took", 4) == 0 && !took)
            ok = took = sint(&s, &v);
        else
            ok = false;
        if (ok && !seat(&s, ','))
            break;
    }
    if (ok && seat(&s, '}') && items) {
        sws(&s);
        if (s.p == s.end)
            return true;
    }
    free(out->items); /* the rest of out is cleared by bulkresp_parse_tree */
    out->items = NULL;
    return false;
}

int bulkresp_parse(long status, const char *body, size_t len, size_t n_actions,
                   struct bulkresp *out)
{
    memset(out, 0, sizeof(*out));
    out->status = status;
    out->req = classify_status(status);
    if (out->req == BR_REQ_ITEMS && fast_reply(body, len, n_actions, out))
        return 0;
    return bulkresp_parse_tree(status, body, len, n_actions, out);
}

int bulkresp_parse_tree(long status, const char *body, size_t len, size_t n_actions,
                        struct bulkresp *out)
{
    json_error_t jerr;
    json_t *root = NULL, *items;
    size_t bad = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->status = status;
    out->req = classify_status(status);
    if (len && body)
        root = jsonx_loadb(body, len, 0, &jerr); /* error texts may quote names holding NUL */
    if (out->req != BR_REQ_ITEMS) {
        request_error(root, body, body ? len : 0, out);
        json_decref(root);
        return 0;
    }
    items = json_object_get(root, "items");
    if (!root) {
        out->req = BR_REQ_PROTO;
        snprintf(out->error, sizeof(out->error), "reply unparsable at byte %d: %s",
                 len ? jerr.position : 0, len ? jerr.text : "empty body");
    } else if (!json_is_array(items)) {
        out->req = BR_REQ_PROTO;
        snprintf(out->error, sizeof(out->error), "reply has no items array");
    } else if (json_array_size(items) != n_actions) {
        out->req = BR_REQ_PROTO;
        snprintf(out->error, sizeof(out->error), "reply has %zu items for %zu actions",
                 json_array_size(items), n_actions);
    } else if (n_actions) {
        out->items = calloc(n_actions, sizeof(*out->items));
        rc = out->items ? 0 : -ENOMEM;
        out->n = n_actions;
        for (size_t i = 0; rc == 0 && i < n_actions; i++) {
            rc = classify_item(json_array_get(items, i), &out->items[i], out);
            bad = i;
        }
    }
    json_decref(root);
    if (rc == -EPROTO) {
        bulkresp_clear(out);
        out->status = status;
        out->req = BR_REQ_PROTO;
        snprintf(out->error, sizeof(out->error), "item %zu has no operation and status", bad);
        return 0;
    }
    if (rc < 0) {
        bulkresp_clear(out);
        out->status = status;
        out->req = BR_REQ_RETRY;
        snprintf(out->error, sizeof(out->error), "out of memory");
    }
    return rc;
}

void bulkresp_clear(struct bulkresp *out)
{
    for (size_t i = 0; out->items && i < out->n; i++) {
        free(out->items[i].type);
        free(out->items[i].reason);
    }
    free(out->items);
    memset(out, 0, sizeof(*out));
}

const char *bulkresp_item_name(enum br_item c)
{
    switch (c) {
    case BR_OK:       return "ok";
    case BR_OK_GONE:  return "gone";
    case BR_OK_STALE: return "stale";
    case BR_RETRY:    return "retry";
    case BR_BLOCKED:  return "blocked";
    case BR_DLQ:      return "dlq";
    }
    return "?";
}

const char *bulkresp_request_name(enum br_request r)
{
    switch (r) {
    case BR_REQ_ITEMS: return "items";
    case BR_REQ_SPLIT: return "split";
    case BR_REQ_RETRY: return "retry";
    case BR_REQ_AUTH:  return "auth";
    case BR_REQ_FATAL: return "fatal";
    case BR_REQ_PROTO: return "protocol";
    }
    return "?";
}

void bulkresp_error_text(const char *body, size_t len, char *out, size_t cap)
{
    struct bulkresp r = { .status = 400 };
    json_t *root = len && body ? jsonx_loadb(body, len, 0, NULL) : NULL;

    request_error(root, body, body ? len : 0, &r);
    json_decref(root);
    snprintf(out, cap, "%s", r.error);
}
