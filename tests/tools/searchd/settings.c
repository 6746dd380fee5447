#include "searchd_int.h"

/* ---- index settings ---------------------------------------------------------
 * The "settings" of PUT /<index> and the body of PUT /<index>/_settings as
 * Settings.Builder#loadFromMap reads them: objects flatten to dotted keys,
 * values become text (numbers as Java prints what Jackson read), a null
 * value unsets the key, and a key without the "index." prefix gets it
 * (Settings.Builder#normalizePrefix, MetadataCreateIndexService,
 * MetadataUpdateSettingsService).  The double reads the mapping limits and
 * keeps the other settings unread (GET shows them).                         */

/* Adds v under the key in *key to flat (key -> string, list or null). */
static json_t *flatten_settings(const json_t *v, struct buf *key, json_t *flat)
{
    size_t mark = key->len;
    const char *k;
    json_t *e = NULL, *out;

    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, out) {
            buf_truncate(key, mark);
            if (mark)
                buf_putc(key, '.');
            buf_puts(key, k);
            if ((e = flatten_settings(out, key, flat)))
                break;
        }
        buf_truncate(key, mark);
        return e;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *el;
        out = json_array();
        json_array_foreach(v, i, el) {
            struct buf t;
            if (json_is_object(el) || json_is_array(el)) {
                json_decref(out);
                return unmodelled("objects or lists inside a list setting ([%s])", key->ptr);
            }
            buf_init(&t, BUF_NOMAX);
            java_str(el, &t);
            json_array_append_new(out, json_stringn(t.ptr ? t.ptr : "", t.len));
            buf_close(&t);
        }
    } else if (json_is_null(v)) {
        out = json_null();
    } else {
        struct buf t;
        buf_init(&t, BUF_NOMAX);
        if (json_is_real(v))
            java_double(json_real_value(v), &t);
        else
            java_str(v, &t);
        out = json_stringn(t.ptr ? t.ptr : "", t.len);
        buf_close(&t);
    }
    {
        struct buf full;
        buf_init(&full, BUF_NOMAX);
        if (strncmp(key->ptr ? key->ptr : "", "index.", 6) != 0)
            buf_puts(&full, "index.");
        buf_append(&full, key->ptr, key->len);
        if (json_object_get(flat, full.ptr ? full.ptr : ""))
            e = unmodelled("a setting given twice ([%s])", full.ptr ? full.ptr : "");
        else
            json_object_set(flat, full.ptr ? full.ptr : "", out);
        buf_close(&full);
    }
    json_decref(out);
    return e;
}

/* Long#parseLong (ASCII digits): 0, or -1 when it throws. */
static int parse_java_long(const char *s, long *out)
{
    bool neg = *s == '-';
    unsigned long long v = 0, max = neg ? (unsigned long long)LONG_MAX + 1 : LONG_MAX;
    const char *p = s + (*s == '-' || *s == '+');

    if (!*p)
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (max - (unsigned)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *out = neg ? (v == (unsigned long long)LONG_MAX + 1 ? LONG_MIN : -(long)v) : (long)v;
    return 0;
}

/* Setting#longSetting with a minimum: Setting#get turns the parser's
 * NumberFormatException into "Failed to parse value [..] for setting [..]"
 * and #parseLong refuses a value below the minimum. */
static json_t *long_setting(const char *key, const json_t *v, long min, long *out)
{
    const char *s = json_string_value(v);
    json_t *e;

    if (!s)
        return unmodelled("a list for setting [%s]", key);
    if (parse_java_long(s, out) < 0) {
        e = errf("illegal_argument_exception", "Failed to parse value [%s] for setting [%s]", s,
                 key);
        json_object_set_new(e, "caused_by", errf("number_format_exception",
                                                 "For input string: \"%s\"", s));
        return e;
    }
    if (*out < min)
        return errf("illegal_argument_exception", "Failed to parse value [%s] for setting [%s] "
                    "must be >= %ld", s, key, min);
    return NULL;
}

/* Applies the settings in flat (normalised, null: back to the default) to
 * lim, as IndexScopedSettings#validate checks them (keys in sorted order):
 * index.mapping.depth.limit (>= 1), index.mapping.total_fields.limit (>= 0)
 * and, in Elasticsearch 8.13+, index.mapping.total_fields
 * .ignore_dynamic_beyond_limit (Booleans#parseBoolean), a setting
 * OpenSearch 2 does not have (AbstractScopedSettings#validate: "unknown
 * setting"; the "did you mean [..]?" it gives instead when a known key is
 * at least 70% alike is assumed not to apply: index.mapping.total_fields
 * .limit is 59% alike).  Other keys are not checked.  NULL, or the
 * IllegalArgumentException. */
static json_t *apply_settings(const json_t *flat, enum flavor fl, struct limits *lim)
{
    static const char depth[] = "index.mapping.depth.limit";
    static const char total[] = "index.mapping.total_fields.limit";
    static const char ignore[] = "index.mapping.total_fields.ignore_dynamic_beyond_limit";
    json_t *v, *e = NULL;

    if ((v = json_object_get(flat, depth))) {
        if (json_is_null(v))
            lim->depth = -1;
        else if ((e = long_setting(depth, v, 1, &lim->depth)))
            return e;
    }
    if ((v = json_object_get(flat, ignore))) {
        const char *s = json_string_value(v);
        if (fl == FL_OS2 && !json_is_null(v))
            return errf("illegal_argument_exception", "unknown setting [%s] please check that "
                        "any required plugins are installed, or check the breaking changes "
                        "documentation for removed settings", ignore);
        if (json_is_null(v))
            lim->ignore_beyond = false;
        else if (!s)
            return unmodelled("a list for setting [%s]", ignore);
        else if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
            lim->ignore_beyond = s[0] == 't';
        else
            return errf("illegal_argument_exception", "Failed to parse value [%s] as only [true] "
                        "or [false] are allowed.", s);
    }
    if ((v = json_object_get(flat, total))) {
        if (json_is_null(v))
            lim->fields = TOTAL_FIELDS_DEFAULT;
        else if ((e = long_setting(total, v, 0, &lim->fields)))
            return e;
    }
    return NULL;
}

/* flat_settings=true: settings keys as they are, not nested. */
static bool flat_settings(const struct request *r)
{
    char *v = query_param(r->query, "flat_settings");
    bool on = v && (!*v || strcmp(v, "true") == 0);

    free(v);
    return on;
}

/* Merges flat into the index's settings (a null removes the key). */
static void keep_settings(struct index *ix, const json_t *flat)
{
    const char *k;
    json_t *v;

    if (!ix->settings)
        ix->settings = json_object();
    json_object_foreach((json_t *)flat, k, v) {
        if (json_is_null(v))
            json_object_del(ix->settings, k);
        else
            json_object_set(ix->settings, k, v);
    }
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The index's settings as GET /<index>/_settings prints them
 * (Settings#toXContent): the keys the double always shows, then what was
 * given, nested at the dots unless flat (flat_settings=true), all values
 * text. */
static json_t *settings_json(const struct index *ix, bool flat)
{
    json_t *all = json_pack("{s:s, s:s}", "index.number_of_replicas", "1",
                            "index.number_of_shards", "1");
    json_t *out = json_object(), *v;
    const char **keys;
    const char *k;
    size_t n = 0;

    json_object_update(all, ix->settings);
    json_object_set_new(all, "index.provided_name", json_string(ix->name));
    json_object_set_new(all, "index.uuid", json_string(ix->uuid));
    if (!(keys = malloc(json_object_size(all) * sizeof(*keys)))) {
        json_decref(all);
        return out;
    }
    json_object_foreach(all, k, v)
        keys[n++] = k;
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < n; i++) {
        json_t *node = out;
        char *path = strdup(keys[i]), *save = NULL, *seg, *next;
        v = json_object_get(all, keys[i]);
        if (flat || !path) {
            json_object_set(out, keys[i], v);
            free(path);
            continue;
        }
        for (seg = strtok_r(path, ".", &save); seg; seg = next) {
            json_t *child;
            if (!(next = strtok_r(NULL, ".", &save))) {
                if (!json_object_get(node, seg))
                    json_object_set(node, seg, v);
                break;
            }
            child = json_object_get(node, seg);
            if (!child) {
                child = json_object();
                json_object_set_new(node, seg, child);
            }
            if (!json_is_object(child))
                break; /* "a" and "a.b" both set: the shorter one shows */
            node = child;
        }
        free(path);
    }
    free(keys);
    json_decref(all);
    return out;
}

/* The body of PUT /<index> (CreateIndexRequest#source): "settings" (an
 * object; flat gets them, lim the limits read from them), "mappings",
 * "aliases" (none modelled); any other key is refused.  Settings are checked
 * before the mapping is parsed (MetadataCreateIndexService validates the
 * index settings, then merges the mapping).  NULL, or the error
 * (*mapping_err: a mapping's, to be wrapped as MapperService does). */
static json_t *create_body(const struct request *r, const char *name, struct mapping *m,
                           struct map *fields, json_t *flat, struct limits *lim,
                           json_t **aliases, bool *mapping_err)
{
    json_error_t jerr;
    json_t *j, *v, *e = NULL;
    const char *k;

    *mapping_err = false;
    if (r->data_len == 0)
        return NULL;
    /* XContentHelper#convertToMap; Jackson refuses a name twice */
    j = json_loadb(r->data, r->data_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        e = errf("parse_exception", "Failed to parse content to map");
        json_object_set_new(e, "caused_by", errf("json_parse_exception", "%s",
                                                 j ? "expected an object" : jerr.text));
        json_decref(j);
        return e;
    }
    json_object_foreach(j, k, v) {
        if (strcmp(k, "settings") == 0) {
            if (!json_is_object(v))
                e = errf("parse_exception", "key [settings] must be an object");
        } else if (strcmp(k, "aliases") == 0) {
            if ((e = aliases_add(name, v, true)) == NULL)
                *aliases = json_incref(v);
        } else if (strcmp(k, "mappings") == 0) {
            if (!json_is_object(v))
                e = unmodelled("\"mappings\" that are not an object");
        } else {
            e = errf("parse_exception", "unknown key [%s] for create index", k);
        }
        if (e)
            break;
    }
    if (!e && (v = json_object_get(j, "settings"))) {
        struct buf key;
        buf_init(&key, BUF_NOMAX);
        e = buf_reserve(&key, 64) < 0 ? err_obj("exception", "out of memory")
                                      : flatten_settings(v, &key, flat);
        buf_close(&key);
        if (!e)
            e = apply_settings(flat, srv.set.flavor, lim);
        if (!e)
            e = settings_refused(flat);
    }
    if (!e && (v = json_object_get(j, "mappings")))
        *mapping_err = (e = parse_mappings(srv.set.flavor, v, m, fields)) != NULL;
    json_decref(j);
    return e;
}

void handle_index(struct conn *c, struct request *r, const char *name)
{
    struct index *ix = index_get(name);
    char why[400];

    if (strcmp(r->method, "HEAD") == 0) {
        reply(c, ix ? 200 : 404, "application/json; charset=UTF-8", NULL, NULL, 0);
        return;
    }
    if (strcmp(r->method, "PUT") == 0) {
        if (ix) {
            snprintf(why, sizeof(why), "index [%s/%s] already exists", ix->name, ix->uuid);
            json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "type",
                                  "resource_already_exists_exception", "reason", why,
                                  "index_uuid", ix->uuid, "index", ix->name);
            reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        if (alias_get(name) || stream_get(name))
            snprintf(why, sizeof(why), "Invalid index name [%s], already exists as %s", name,
                     alias_get(name) ? "alias" : "data stream");
        if (alias_get(name) || stream_get(name) || !valid_index_name(name, why, sizeof(why))) {
            json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "type", "invalid_index_name_exception",
                                  "reason", why, "index_uuid", "_na_", "index", name);
            reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        struct mapping m = { .date_detection = true };
        struct map fields = { 0 };
        struct limits lim = { .depth = -1, .fields = TOTAL_FIELDS_DEFAULT };
        json_t *flat = json_object(), *aliases = NULL;
        bool mapping_err;
        json_t *e = create_body(r, name, &m, &fields, flat, &lim, &aliases, &mapping_err);
        /* DocumentMapper#validate: the explicit mapping within the limits */
        if (!e && !(e = limits_exceeded(&lim, &fields, NULL, false, srv.set.flavor)))
            ix = index_create(name);
        if (e || !ix) {
            mapping_clear(&m);
            map_clear(&fields, field_free);
            json_decref(flat);
            json_decref(aliases);
            if (!e)
                reply_error(c, 500, "exception", "out of memory");
            else if (mapping_err)
                reply_mapping_error(c, e);
            else
                reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        mapping_clear(&ix->mapping);
        map_clear(&ix->fields, field_free);
        ix->mapping = m;
        ix->fields = fields;
        ix->lim = lim;
        keep_settings(ix, flat);
        json_decref(flat);
        if (aliases)
            json_decref(aliases_add(name, aliases, false)); /* checked above */
        json_decref(aliases);
        reply_json(c, 200, json_pack("{s:b, s:b, s:s}", "acknowledged", true,
                                            "shards_acknowledged", true, "index", name), NULL);
        return;
    }
    if (!ix) {
        reply_index_missing(c, name);
        return;
    }
    if (strcmp(r->method, "DELETE") == 0) {
        index_drop(ix);
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    /* GET */
    struct buf b;
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    put_json_str(&b, ix->name, strlen(ix->name));
    buf_puts(&b, ":{\"aliases\":");
    json_t *al = aliases_of(ix->name);
    put_json(&b, al);
    json_decref(al);
    buf_puts(&b, ",\"mappings\":");
    mapping_json(ix, &b);
    buf_puts(&b, ",\"settings\":");
    json_t *st = settings_json(ix, flat_settings(r));
    put_json(&b, st);
    json_decref(st);
    buf_puts(&b, "}}");
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* GET /<index>/_settings, GET /_settings: {"<index>":{"settings":{...}}}. */
void handle_get_settings(struct conn *c, const struct request *r, const char *expr)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    json_t *out;

    if (n < 0) {
        reply_index_missing(c, missing);
        return;
    }
    out = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(out, ixs[i]->name, json_pack("{s:o}", "settings",
                                                         settings_json(ixs[i],
                                                                       flat_settings(r))));
    reply_json(c, 200, out, NULL);
}

/* PUT /<index>/_settings (UpdateSettingsRequest#fromXContent: the body, or
 * its "settings" object when it has one; MetadataUpdateSettingsService
 * normalises the keys and validates them; every setting the double reads is
 * dynamic).  A null value puts a setting back to its default. */
void handle_put_settings(struct conn *c, const struct request *r, const char *name)
{
    struct index *ix = index_get(name);
    json_error_t jerr;
    json_t *j, *body, *flat = NULL, *e = NULL;
    struct limits lim;
    struct buf key;

    if (!ix) {
        reply_index_missing(c, name);
        return;
    }
    if (r->data_len == 0) { /* RestRequest#requiredContent */
        reply_error(c, 400, "parse_exception", "request body is required");
        return;
    }
    /* a body that is not a JSON object: the double's own text */
    j = json_loadb(r->data, r->data_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(c, 400, "parse_exception", j ? "request body must be an object" : jerr.text);
        return;
    }
    body = json_is_object(json_object_get(j, "settings")) ? json_object_get(j, "settings") : j;
    flat = json_object();
    buf_init(&key, BUF_NOMAX);
    e = buf_reserve(&key, 64) < 0 ? err_obj("exception", "out of memory")
                                  : flatten_settings(body, &key, flat);
    buf_close(&key);
    if (!e && json_object_size(flat) == 0)
        e = err_obj("action_request_validation_exception",
                    "Validation Failed: 1: no settings to update;");
    lim = ix->lim;
    if (!e)
        e = settings_refused(flat);
    if (!e && !(e = apply_settings(flat, srv.set.flavor, &lim))) {
        ix->lim = lim;
        keep_settings(ix, flat);
    }
    json_decref(flat);
    json_decref(j);
    if (e)
        reply_json(c, 400, es_error_body(400, e), NULL);
    else
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
}
