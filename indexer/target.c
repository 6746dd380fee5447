/* target — the target probe's pure parts: the index list, the replies of
 * GET /, GET /_resolve/index, GET /_alias and the canary's bulk, the
 * canary's body and the template check (target.h).  The requests are made
 * in target_probe.c. */
#include "indexer/target.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "indexer/bulk.h"

/* ---- the index list ---- */

int target_add_index(struct target *t, const char *name, const char *table,
                     const char *template_path, const char *template_body)
{
    struct target_index *n, *ix;

    for (size_t i = 0; i < t->nix; i++)
        if (strcmp(t->ix[i].name, name) == 0)
            return 0;
    n = realloc(t->ix, (t->nix + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    t->ix = n;
    ix = &n[t->nix];
    memset(ix, 0, sizeof(*ix));
    ix->name = strdup(name);
    ix->table = strdup(table);
    ix->template_path = template_path ? strdup(template_path) : NULL;
    ix->template_body = template_body ? strdup(template_body) : NULL;
    if (!ix->name || !ix->table || (template_path && !ix->template_path) ||
        (template_body && !ix->template_body)) {
        free(ix->name);
        free(ix->table);
        free(ix->template_path);
        free(ix->template_body);
        return -ENOMEM;
    }
    t->nix++;
    return 0;
}

void target_reset(struct target *t)
{
    memset(&t->root, 0, sizeof(t->root));
    t->verdict = TARGET_OK;
    t->why[0] = '\0';
    for (size_t i = 0; i < t->nix; i++) {
        struct target_index *ix = &t->ix[i];

        ix->kind = TK_UNKNOWN;
        ix->write_index[0] = '\0';
        ix->created = ix->canary_left = false;
        ix->versions = TV_UNTESTED;
        ix->canary_version = 0;
        ix->verdict = TARGET_OK;
        ix->why[0] = '\0';
    }
}

void target_free(struct target *t)
{
    for (size_t i = 0; i < t->nix; i++) {
        free(t->ix[i].name);
        free(t->ix[i].table);
        free(t->ix[i].template_path);
        free(t->ix[i].template_body);
    }
    free(t->ix);
    memset(t, 0, sizeof(*t));
}

/* ---- GET / ---- */

static bool version_at_least(const char *v, int major, int minor)
{
    char *end;
    long a = strtol(v, &end, 10), b = *end == '.' ? strtol(end + 1, NULL, 10) : 0;

    return a > major || (a == major && b >= minor);
}

void target_parse_root(long status, const char *body, size_t len, struct target_root *out)
{
    json_t *root = status >= 200 && status < 300 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *ver = json_object_get(root, "version");
    const char *number = json_string_value(json_object_get(ver, "number"));
    const char *dist = json_string_value(json_object_get(ver, "distribution"));
    const char *build = json_string_value(json_object_get(ver, "build_flavor"));
    const char *tagline = json_string_value(json_object_get(root, "tagline"));

    memset(out, 0, sizeof(*out));
    out->status = status;
    snprintf(out->version, sizeof(out->version), "%s", number ? number : "");
    if (build && strcmp(build, "serverless") == 0) {
        /* A project runs the newest code whatever number it reports. */
        out->flavour = TF_ELASTIC_SERVERLESS;
        out->source_param = true;
    } else if (dist && strcmp(dist, "opensearch") == 0) {
        out->flavour = TF_OPENSEARCH;
    } else if (number && ((tagline && strstr(tagline, "You Know, for Search")) || build)) {
        out->flavour = TF_ELASTICSEARCH;
        /* include_source_on_error came with 8.18 (elastic/elasticsearch#120725) */
        out->source_param = version_at_least(number, 8, 18);
    }
    json_decref(root);
}

const char *target_flavour_name(const struct target_root *r, char *buf, size_t cap)
{
    switch (r->flavour) {
    case TF_ELASTICSEARCH: snprintf(buf, cap, "Elasticsearch %s", r->version); break;
    case TF_OPENSEARCH: snprintf(buf, cap, "OpenSearch %s", r->version); break;
    case TF_ELASTIC_SERVERLESS: snprintf(buf, cap, "Elastic Cloud Serverless"); break;
    case TF_AOSS: snprintf(buf, cap, "OpenSearch Serverless"); break;
    default:
        if (r->status)
            snprintf(buf, cap, "an engine that does not say what it is (GET / answered HTTP %ld)",
                     r->status);
        else
            snprintf(buf, cap, "an engine that does not say what it is");
        break;
    }
    return buf;
}

/* ---- GET /_resolve/index/<name>, GET /_alias/<name> ---- */

static bool listed(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v) {
        const char *n = json_string_value(json_object_get(v, "name"));

        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

enum target_kind target_parse_resolve(const char *name, long status, const char *body,
                                      size_t len)
{
    json_t *root;
    enum target_kind k = TK_UNKNOWN;

    if (status == 404)
        return TK_ABSENT;
    if (status < 200 || status >= 300 || !(root = json_loadb(body, len, 0, NULL)))
        return TK_UNKNOWN;
    if (json_is_array(json_object_get(root, "indices"))) {
        if (listed(json_object_get(root, "data_streams"), name))
            k = TK_DATA_STREAM;
        else if (listed(json_object_get(root, "aliases"), name))
            k = TK_ALIAS;
        else if (listed(json_object_get(root, "indices"), name))
            k = TK_INDEX;
        else
            k = TK_ABSENT;
    }
    json_decref(root);
    return k;
}

int target_parse_alias(const char *name, const char *body, size_t len, char *out, size_t cap,
                       size_t *nindexes)
{
    json_t *root = json_loadb(body, len, 0, NULL), *v, *def;
    const char *index, *only = NULL, *write = NULL;
    bool only_ok = false;
    int rc = -ENOENT;

    *nindexes = 0;
    if (!json_is_object(root)) {
        json_decref(root);
        return -EPROTO;
    }
    json_object_foreach(root, index, v) {
        def = json_object_get(json_object_get(v, "aliases"), name);
        if (!def)
            continue;
        ++*nindexes;
        if (json_is_true(json_object_get(def, "is_write_index")))
            write = index;
        only = index;
        only_ok = !json_is_false(json_object_get(def, "is_write_index"));
    }
    /* The aliases guides: without is_write_index, an alias of one index
     * writes to it; of several, it takes no writes. */
    if (!write && *nindexes == 1 && only_ok)
        write = only;
    if (write && strlen(write) < cap) {
        snprintf(out, cap, "%s", write);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* ---- the canary ---- */

static int canary_action(struct buf *b, const char *op, const char *index, uint64_t v)
{
    int rc = buf_printf(b, "{\"%s\":{\"_index\":", op);

    if (rc == 0)
        rc = bulk_json_string(b, index, strlen(index));
    if (rc == 0)
        rc = buf_puts(b, ",\"_id\":");
    if (rc == 0)
        rc = bulk_json_string(b, TARGET_CANARY_ID, strlen(TARGET_CANARY_ID));
    if (rc == 0)
        rc = buf_printf(b, ",\"version\":%" PRIu64 ",\"version_type\":\"external\"}}\n%s", v,
                        strcmp(op, "delete") == 0 ? "" : "{}\n");
    return rc;
}

char *target_canary_body(const char *index, uint64_t v, size_t *len)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    if (canary_action(&b, "index", index, v + 2) < 0 ||
        canary_action(&b, "index", index, v + 1) < 0 ||
        canary_action(&b, "delete", index, v + 3) < 0) {
        buf_close(&b);
        return NULL;
    }
    *len = b.len;
    return buf_take(&b);
}

static json_t *item_at(json_t *items, size_t i)
{
    json_t *it = json_array_get(items, i);

    return json_object_iter_value(json_object_iter(it));
}

/* "type: reason" of an item's or a reply's error. */
static void error_text(json_t *err, char *out, size_t cap)
{
    const char *type = json_string_value(json_object_get(err, "type"));
    const char *reason = json_string_value(json_object_get(err, "reason"));

    if (!type && json_is_string(err))
        reason = json_string_value(err);
    snprintf(out, cap, "%s%s%s", type ? type : "", type && reason ? ": " : "",
             reason ? reason : type ? "" : "no reason given");
}

static bool retryable(long status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

enum target_canary target_parse_canary(long status, const char *body, size_t len, bool *left,
                                       char *why, size_t cap)
{
    json_t *root = NULL, *items, *first, *older, *del;
    long s0, s1, s2;
    char text[600];
    enum target_canary rc;

    *left = false;
    why[0] = '\0';
    if (status == 401 || status == 403)
        return CANARY_DENIED;
    if (retryable(status))
        return CANARY_RETRY;
    root = json_loadb(body, len, 0, NULL);
    if (status < 200 || status >= 300) {
        error_text(json_object_get(root, "error"), text, sizeof(text));
        snprintf(why, cap, "HTTP %ld %s", status, text);
        rc = strstr(text, "op_type of create") ? CANARY_DATA_STREAM : CANARY_REFUSED;
        goto out;
    }
    items = json_object_get(root, "items");
    if (json_array_size(items) != 3) {
        snprintf(why, cap, "the reply has %zu items for 3 actions", json_array_size(items));
        rc = CANARY_REFUSED;
        goto out;
    }
    first = item_at(items, 0);
    older = item_at(items, 1);
    del = item_at(items, 2);
    s0 = (long)json_integer_value(json_object_get(first, "status"));
    s1 = (long)json_integer_value(json_object_get(older, "status"));
    s2 = (long)json_integer_value(json_object_get(del, "status"));
    *left = !(s2 >= 200 && s2 < 300) && s2 != 404 && s2 != 409;
    /* a 409 on the first write: a newer canary is there, so versions hold */
    if (!(s0 >= 200 && s0 < 300) && s0 != 409) {
        error_text(json_object_get(first, "error"), text, sizeof(text));
        snprintf(why, cap, "%s", text);
        rc = strstr(text, "Document ID is not supported") ? CANARY_NO_ID
             : strstr(text, "op_type of create")          ? CANARY_DATA_STREAM
             : retryable(s0)                              ? CANARY_RETRY
             : s0 == 401 || s0 == 403                     ? CANARY_DENIED
                                                          : CANARY_REFUSED;
        goto out;
    }
    if (s1 == 409) {
        rc = CANARY_OK;
    } else if (s1 >= 200 && s1 < 300) {
        rc = CANARY_IGNORED;
    } else {
        error_text(json_object_get(older, "error"), text, sizeof(text));
        snprintf(why, cap, "%s", text);
        rc = retryable(s1) ? CANARY_RETRY : CANARY_REFUSED;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- templates ---- */

int target_template_check(const char *text, size_t len, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *k;
    int rc = 0;

    if (!root) {
        snprintf(why, cap, "not JSON: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(why, cap, "not a JSON object");
        rc = -EINVAL;
    }
    json_object_foreach(root, k, v) {
        if (strcmp(k, "settings") != 0 && strcmp(k, "mappings") != 0 &&
            strcmp(k, "aliases") != 0) {
            snprintf(why, cap, "\"%s\" is not settings, mappings or aliases", k);
            rc = -EINVAL;
            break;
        }
        if (!json_is_object(v)) {
            snprintf(why, cap, "\"%s\" is not an object", k);
            rc = -EINVAL;
            break;
        }
    }
    json_decref(root);
    return rc;
}
