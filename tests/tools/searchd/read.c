#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Read endpoints                                                           */

void reply_index_missing(struct conn *c, const char *name)
{
    char reason[300];

    snprintf(reason, sizeof(reason), "no such index [%s]", name);
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "index_not_found_exception",
                          "reason", reason, "resource.type", "index_or_alias", "resource.id",
                          name, "index_uuid", "_na_", "index", name);
    reply_json(c, 404, es_error_body(404, e), NULL);
}

/* struct doc pointers by id, as bytes. */
int cmp_docp(const void *a, const void *b)
{
    const struct doc *x = *(const struct doc *const *)a, *y = *(const struct doc *const *)b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);

    return c ? c : (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The documents of ix sorted by id; live only, or with live tombstones. */
struct doc **sorted_docs(struct index *ix, bool tombstones, size_t *n)
{
    struct doc **v = malloc((ix->docs.len + 1) * sizeof(*v));
    uint64_t now = now_ms();

    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < ix->docs.cap; i++) {
        struct doc *d = ix->docs.slots[i].key ? ix->docs.slots[i].val : NULL;
        enum doc_state ds = doc_state(d, now);
        if (ds == DS_PRESENT || (tombstones && ds == DS_DELETED))
            v[(*n)++] = d;
    }
    qsort(v, *n, sizeof(*v), cmp_docp);
    return v;
}

/* Names of existing indices matching an expression (name, "*", "_all",
 * comma lists, globs), sorted.  Returns the count, -ENOENT naming the first
 * missing concrete index in *missing. */
int resolve_indices(const char *expr, struct index **out, size_t max, const char **missing)
{
    char *copy = strdup(expr ? expr : "_all"), *save = NULL;
    const char *names[256];
    size_t n = 0;
    int rc = 0;

    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        bool wild = strcmp(t, "_all") == 0 || strchr(t, '*');
        bool any = false;
        struct alias *a = wild ? NULL : alias_get(t);
        struct dstream *d = wild || a ? NULL : stream_get(t);

        for (size_t i = 0; i < srv.indices.cap && n < 256; i++) {
            struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;
            bool via = false;
            if (!ix || !ix->exists)
                continue;
            /* an alias reads its indices, a data stream its backing index */
            for (size_t k = 0; a && k < a->n; k++)
                via |= strcmp(a->links[k].index, ix->name) == 0;
            via |= d && strcmp(d->backing, ix->name) == 0;
            if (via || strcmp(t, "_all") == 0 ||
                (wild ? glob_match(t, ix->name) : strcmp(t, ix->name) == 0)) {
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                    dup |= names[j] == ix->name;
                if (!dup)
                    names[n++] = ix->name;
                any = true;
            }
        }
        if (!any && !wild) {
            static char miss[256];
            snprintf(miss, sizeof(miss), "%s", t);
            *missing = miss;
            rc = -ENOENT;
        }
    }
    free(copy);
    if (rc)
        return rc;
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = index_get(names[i]);
    return (int)(n < max ? n : max);
}

void handle_get_doc(struct conn *c, const char *index, const char *id)
{
    struct index *ix = index_get(index);
    struct doc *d;
    struct buf b;

    if (!ix) {
        reply_index_missing(c, index);
        return;
    }
    d = map_get(&ix->docs, id, strlen(id));
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"_index\":");
    put_json_str(&b, ix->name, strlen(ix->name));
    buf_puts(&b, ",\"_id\":");
    put_json_str(&b, id, strlen(id));
    if (doc_state(d, now_ms()) != DS_PRESENT) {
        buf_puts(&b, ",\"found\":false}");
        reply(c, 404, "application/json; charset=UTF-8", NULL, buf_take(&b), strlen(b.ptr ? b.ptr : ""));
        return;
    }
    buf_printf(&b, ",\"_version\":%" PRId64 ",\"_seq_no\":%" PRId64
                   ",\"_primary_term\":1,\"found\":true,\"_source\":",
               d->version, d->seq_no);
    if (d->source)
        buf_append(&b, d->source, d->source_len);
    else
        buf_puts(&b, "{}");
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* Whether d matches the search's query (NULL: every document). */
static bool doc_matches(const json_t *query, const struct doc *d)
{
    json_t *src;
    char why[200];
    bool m;

    if (!query)
        return true;
    if (!d->source)
        return false;
    src = json_loadb(d->source, d->source_len, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, NULL);
    m = src && query_match(query, src, why, sizeof(why)) == 1;
    json_decref(src);
    return m;
}

/* GET|POST /<index>/_search, /_count.  Hits in _id order (the double's
 * _doc order); "version": true adds _version, "_source": false leaves the
 * source out, sort ["_doc"] gives each hit its "sort" value and no score;
 * ?scroll= starts a scroll (scroll.c). */
void handle_search(struct conn *c, struct request *r, const char *expr, bool count)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    long size = 10, from = 0;
    char *qs = query_param(r->query, "size"), *qf = query_param(r->query, "from");
    char *scroll = count ? NULL : query_param(r->query, "scroll");
    json_t *body = NULL, *query = NULL;
    struct hitopts ho = { .source = true };
    struct buf b;
    size_t total = 0;

    if (qs)
        size = strtol(qs, NULL, 10);
    if (qf)
        from = strtol(qf, NULL, 10);
    free(qs);
    free(qf);
    if (n < 0) {
        free(scroll);
        reply_index_missing(c, missing);
        return;
    }
    if (r->data_len) {
        json_error_t jerr;
        char why[200];

        body = json_loadb(r->data, r->data_len, 0, &jerr);
        if (!body) {
            free(scroll);
            reply_error(c, 400, "parse_exception", jerr.text);
            return;
        }
        json_t *q = json_object_get(body, "query");
        json_t *none = json_object();
        if (q && query_match(q, none, why, sizeof(why)) < 0) { /* query.c */
            json_decref(none);
            json_decref(body);
            free(scroll);
            reply_error(c, 400, "parsing_exception", why);
            return;
        }
        json_decref(none);
        query = json_incref(q);
        if (json_is_integer(json_object_get(body, "size")))
            size = (long)json_integer_value(json_object_get(body, "size"));
        if (json_is_integer(json_object_get(body, "from")))
            from = (long)json_integer_value(json_object_get(body, "from"));
        if (!count && hitopts_parse(body, &ho, why, sizeof(why)) < 0) {
            json_decref(body);
            json_decref(query);
            free(scroll);
            reply_error(c, 400, "parsing_exception", why);
            return;
        }
        json_decref(body);
    }
    if (scroll) {
        bool filtered = query && !json_object_get(query, "match_all");

        json_decref(query);
        /* SearchRequest#validate: "using [from] is not allowed in a scroll context" */
        if (filtered)
            reply_error(c, 400, "parsing_exception",
                        "a scroll with a query other than match_all is not modelled by the "
                        "search double");
        else if (from > 0)
            reply_error(c, 400, "action_request_validation_exception",
                        "Validation Failed: 1: using [from] is not allowed in a scroll context;");
        else
            scroll_start(c, ixs, n, size, scroll, &ho);
        free(scroll);
        return;
    }
    buf_init(&b, BUF_NOMAX);
    if (count) {
        for (int i = 0; i < n; i++) {
            size_t k;
            struct doc **v = sorted_docs(ixs[i], false, &k);
            for (size_t j = 0; v && j < k; j++)
                total += doc_matches(query, v[j]);
            free(v);
        }
        json_decref(query);
        buf_printf(&b, "{\"count\":%zu,\"_shards\":{\"total\":%d,\"successful\":%d,\"skipped\":0,"
                       "\"failed\":0}}", total, n, n);
        size_t len = b.len;
        reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
        return;
    }
    struct buf hits;
    long emitted = 0, seen = 0;
    buf_init(&hits, BUF_NOMAX);
    for (int i = 0; i < n; i++) {
        size_t k;
        struct doc **v = sorted_docs(ixs[i], false, &k);
        for (size_t j = 0; v && j < k; j++) {
            if (!doc_matches(query, v[j]))
                continue;
            total++;
            if (seen++ < from || emitted >= size)
                continue;
            if (emitted)
                buf_putc(&hits, ',');
            put_hit(&hits, ixs[i]->name, v[j]->id, v[j]->id_len, v[j]->version, v[j]->source,
                    v[j]->source_len, &ho, (size_t)seen - 1);
            emitted++;
        }
        free(v);
    }
    json_decref(query);
    buf_printf(&b, "{\"took\":1,\"timed_out\":false,\"_shards\":{\"total\":%d,\"successful\":%d,"
                   "\"skipped\":0,\"failed\":0},\"hits\":{\"total\":{\"value\":%zu,\"relation\":"
                   "\"eq\"},\"max_score\":%s,\"hits\":[",
               n, n, total, total && !ho.sort_doc ? "1.0" : "null");
    if (hits.len)
        buf_append(&b, hits.ptr, hits.len);
    buf_puts(&b, "]}}");
    buf_close(&hits);
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* PUT/POST/DELETE of a single document: the bulk executor, outside a bulk. */
void handle_write_doc(struct conn *c, struct request *r, enum op_type type,
                      const char *index, const char *id)
{
    struct op o = { .type = type, .version = VERSION_UNSET, .if_seq_no = -2,
                    .if_primary_term = -2 };
    char *v = query_param(r->query, "version"), *vt = query_param(r->query, "version_type");
    char *ot = query_param(r->query, "op_type");
    struct buf verr;
    int nverr = 0;
    struct item_res res = { 0 };
    char idbuf[21];

    buf_init(&verr, BUF_NOMAX);
    o.index = strdup(index);
    if (id) {
        o.id = strdup(id);
        o.id_len = o.id ? strlen(o.id) : 0;
    } else {
        next_auto_id(idbuf);
        o.id = strdup(idbuf);
        o.id_len = o.id ? strlen(o.id) : 0;
        o.auto_id = true;
    }
    if (query_refused(c, r))
        goto out;
    if (ot && strcmp(ot, "create") == 0 && type == OP_INDEX)
        o.type = OP_CREATE;
    if (v) {
        char *end;
        errno = 0;
        o.version = strtoll(v, &end, 10);
        if (errno || *end) {
            reply_error(c, 400, "illegal_argument_exception", "failed to parse version");
            goto out;
        }
    }
    if (vt && parse_vtype(vt, &o.vt) < 0) {
        reply_error(c, 400, "illegal_argument_exception", "No version type match");
        goto out;
    }
    o.src = r->data;
    o.src_len = r->data_len;
    validate_op(&o, &verr, &nverr);
    if (nverr) {
        char *msg = NULL;
        if (asprintf(&msg, "Validation Failed: %s", verr.ptr) < 0)
            msg = NULL;
        reply_error(c, 400, "action_request_validation_exception", msg ? msg : "Validation Failed");
        free(msg);
        goto out;
    }
    res.op = o.type;
    res.index = o.index;
    res.id = o.id;
    op_execute(&o, &res);
    if (res.error) {
        reply_json(c, res.status, es_error_body(res.status, json_incref(res.error)), NULL);
    } else {
        reply_json_filtered(c, r, res.status, item_to_json(&res, false));
    }
out:
    json_decref(res.error);
    free(v);
    free(vt);
    free(ot);
    op_clear(&o);
    buf_close(&verr);
}

/* Orders paths so that an object's fields follow it: names compare byte by
 * byte with the separating '.' below every other byte. */
static int cmp_path(const void *a, const void *b)
{
    const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;

    for (size_t i = 0; i < n; i++) {
        int cx = x->key[i] == '.' ? -1 : (unsigned char)x->key[i];
        int cy = y->key[i] == '.' ? -1 : (unsigned char)y->key[i];
        if (cx != cy)
            return cx < cy ? -1 : 1;
    }
    return (x->klen > y->klen) - (x->klen < y->klen);
}

void put_json(struct buf *b, const json_t *v)
{
    json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The index's mapping as GET /<index>/_mapping prints it (ObjectMapper and
 * RootObjectMapper#toXContent: dynamic, _meta, dynamic_templates,
 * date_detection, numeric_detection, then "properties", fields sorted by
 * name).  An explicit field prints its definition as given; a dynamic
 * string is text with a keyword sub-field (DocumentParser
 * #createBuilderFromDynamicValue); an object prints "type" only when it
 * has no properties. */
void mapping_json(const struct index *ix, struct buf *b)
{
    const struct mapping *m = &ix->mapping;
    const struct slot **v = malloc((ix->fields.len + 1) * sizeof(*v));
    size_t n = 0, depth = 0;

    for (size_t i = 0; v && i < ix->fields.cap; i++)
        if (ix->fields.slots[i].key)
            v[n++] = &ix->fields.slots[i];
    if (n)
        qsort(v, n, sizeof(*v), cmp_path);
    buf_putc(b, '{');
    if (m->dynamic != DYN_UNSET)
        buf_printf(b, "\"dynamic\":\"%s\",", dyn_name[m->dynamic]);
    if (m->meta) {
        buf_puts(b, "\"_meta\":");
        put_json(b, m->meta);
        buf_putc(b, ',');
    }
    if (m->ntmpl) {
        buf_puts(b, "\"dynamic_templates\":[");
        for (size_t i = 0; i < m->ntmpl; i++) {
            buf_puts(b, i ? ",{" : "{");
            put_json_str(b, m->tmpl[i].name, strlen(m->tmpl[i].name));
            buf_putc(b, ':');
            put_json(b, m->tmpl[i].shown);
            buf_putc(b, '}');
        }
        buf_puts(b, "],");
    }
    if (m->date_detection_set)
        buf_printf(b, "\"date_detection\":%s,", m->date_detection ? "true" : "false");
    if (m->numeric_detection_set)
        buf_printf(b, "\"numeric_detection\":%s,", m->numeric_detection ? "true" : "false");
    if (n)
        buf_puts(b, "\"properties\":{");
    for (size_t i = 0; v && i < n; i++) {
        const char *k = v[i]->key, *name = k;
        const struct field *f = v[i]->val;
        size_t d = 0;
        for (const char *q = k; q < k + v[i]->klen; q++)
            if (*q == '.') {
                d++;
                name = q + 1;
            }
        for (; depth > d; depth--)
            buf_puts(b, "}}");
        if (b->ptr[b->len - 1] != '{')
            buf_putc(b, ',');
        put_json_str(b, name, (size_t)(k + v[i]->klen - name));
        buf_putc(b, ':');
        bool children = f->type == FT_OBJECT && i + 1 < n && v[i + 1]->klen > v[i]->klen &&
                        memcmp(v[i + 1]->key, k, v[i]->klen) == 0 &&
                        v[i + 1]->key[v[i]->klen] == '.';
        if (f->type == FT_OBJECT) {
            buf_puts(b, children ? "{" : "{\"type\":\"object\"");
            if (f->dynamic != DYN_UNSET)
                buf_printf(b, "%s\"dynamic\":\"%s\"", children ? "" : ",",
                           dyn_name[f->dynamic]);
            if (f->disabled)
                buf_printf(b, "%s\"enabled\":false",
                           children && f->dynamic == DYN_UNSET ? "" : ",");
            if (children) {
                buf_puts(b, b->ptr[b->len - 1] == '{' ? "\"properties\":{"
                                                      : ",\"properties\":{");
                depth++;
            } else {
                buf_putc(b, '}');
            }
        } else if (f->def) {
            put_json(b, f->def);
        } else if (f->type == FT_TEXT) {
            buf_puts(b, "{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\","
                        "\"ignore_above\":256}}}");
        } else {
            buf_printf(b, "{\"type\":\"%s\"}", ftype_name[f->type]);
        }
    }
    for (; depth > 0; depth--)
        buf_puts(b, "}}");
    if (n)
        buf_putc(b, '}');
    if (b->ptr[b->len - 1] == ',')
        buf_truncate(b, b->len - 1);
    buf_putc(b, '}');
    free(v);
}

/* GET /<index>/_mapping, GET /_mapping. */
void handle_mapping(struct conn *c, const char *expr)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    struct buf b;

    if (n < 0) {
        reply_index_missing(c, missing);
        return;
    }
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    for (int i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        put_json_str(&b, ixs[i]->name, strlen(ixs[i]->name));
        buf_puts(&b, ":{\"mappings\":");
        mapping_json(ixs[i], &b);
        buf_putc(&b, '}');
    }
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}
