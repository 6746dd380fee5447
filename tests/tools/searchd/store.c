#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* A string-keyed hash map (open addressing, linear probing).               */

uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static struct slot *map_slot(const struct map *m, const char *key, size_t klen, uint64_t h)
{
    size_t i = h & (m->cap - 1);

    for (;;) {
        struct slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0))
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

void *map_get(const struct map *m, const char *key, size_t klen)
{
    struct slot *s;

    if (!m->cap)
        return NULL;
    s = map_slot(m, key, klen, hash_bytes(key, klen));
    return s->key ? s->val : NULL;
}

static int map_grow(struct map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct slot *old = m->slots, *ns = calloc(ncap, sizeof(*ns));
    size_t ocap = m->cap;

    if (!ns)
        return -ENOMEM;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key)
            *map_slot(m, old[i].key, old[i].klen, old[i].hash) = old[i];
    free(old);
    return 0;
}

/* Inserts key (copied) with val; the key must be absent.  Returns the stored
 * key copy (NUL-terminated, stable until map_clear) or NULL. */
char *map_put(struct map *m, const char *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(key, klen);
    struct slot *s;

    if ((m->len + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return NULL;
    s = map_slot(m, key, klen, h);
    s->key = malloc(klen + 1);
    if (!s->key)
        return NULL;
    memcpy(s->key, key, klen);
    s->key[klen] = '\0';
    s->klen = klen;
    s->hash = h;
    s->val = val;
    m->len++;
    return s->key;
}

void map_clear(struct map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) {
            if (free_val)
                free_val(m->slots[i].val);
            free(m->slots[i].key);
        }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}
const char *const ftype_name[FT_N] = {
    [FT_NONE] = "", [FT_OBJECT] = "object", [FT_LONG] = "long", [FT_INTEGER] = "integer",
    [FT_SHORT] = "short", [FT_BYTE] = "byte", [FT_DOUBLE] = "double", [FT_FLOAT] = "float",
    [FT_TEXT] = "text", [FT_KEYWORD] = "keyword", [FT_BOOLEAN] = "boolean", [FT_DATE] = "date",
};
const char *const dyn_name[] = { "", "true", "false", "strict" };
const char *const route_name[RT_N] = {
    [RT_ROOT] = "/", [RT_BULK] = "/_bulk", [RT_INDEX_BULK] = "/{index}/_bulk",
    [RT_DOC] = "/{index}/_doc/{id}", [RT_SEARCH] = "/{index}/_search",
    [RT_COUNT] = "/{index}/_count", [RT_INDEX] = "/{index}", [RT_REFRESH] = "/{index}/_refresh",
    [RT_MAPPING] = "/{index}/_mapping", [RT_SETTINGS] = "/{index}/_settings",
    [RT_RESOLVE] = "/_resolve/index/{name}", [RT_ALIAS] = "/_alias/{name}",
    [RT_ALIASES] = "/_aliases", [RT_DATA_STREAM] = "/_data_stream/{name}",
    [RT_CLUSTER] = "/_cluster", [RT_OTHER] = "other", [RT_MGET] = "/{index}/_mget",
    [RT_SCROLL] = "/_search/scroll",
};
const char *const op_name[OP_N] = { "index", "create", "delete", "update" };

/* ------------------------------------------------------------------------ */
/* The server                                                               */

struct server srv;

uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* n bytes (they may hold NUL) and a NUL. */
char *strndup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

void set_str(char **dst, const char *s)
{
    char *n = (s && *s) ? strdup(s) : NULL;

    if (*dst)
        OPENSSL_cleanse(*dst, strlen(*dst));
    free(*dst);
    *dst = n;
}

static void make_uuid(char out[23])
{
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = uv_hrtime() ^ (srv.id_counter++ * 0x9e3779b97f4a7c15ULL);

    for (int i = 0; i < 22; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = al[x & 63];
    }
    out[22] = '\0';
}

static void doc_free(void *p)
{
    struct doc *d = p;

    if (d)
        free(d->source);
    free(d);
}

void field_free(void *p)
{
    struct field *f = p;

    if (!f)
        return;
    for (size_t i = 0; i < f->nsub; i++)
        field_free(f->sub[i]);
    free(f->sub);
    free(f->name);
    json_decref(f->def);
    free(f);
}

void mapping_clear(struct mapping *m)
{
    for (size_t i = 0; i < m->ntmpl; i++) {
        struct tmpl *t = &m->tmpl[i];
        free(t->name);
        json_decref(t->match);
        json_decref(t->unmatch);
        json_decref(t->path_match);
        json_decref(t->path_unmatch);
        json_decref(t->mapping);
        json_decref(t->shown);
    }
    free(m->tmpl);
    json_decref(m->meta);
    memset(m, 0, sizeof(*m));
    m->date_detection = true;
}

static void limits_reset(struct index *ix)
{
    ix->lim = (struct limits){ .depth = -1, .fields = TOTAL_FIELDS_DEFAULT };
    json_decref(ix->settings);
    ix->settings = NULL;
}

void index_free(void *p)
{
    struct index *ix = p;

    if (ix) {
        map_clear(&ix->docs, doc_free);
        map_clear(&ix->fields, field_free);
        mapping_clear(&ix->mapping);
        json_decref(ix->settings);
    }
    free(ix);
}

struct index *index_get(const char *name)
{
    struct index *ix = map_get(&srv.indices, name, strlen(name));

    return ix && ix->exists ? ix : NULL;
}

struct index *index_create(const char *name)
{
    struct index *ix = map_get(&srv.indices, name, strlen(name));

    if (!ix) {
        ix = calloc(1, sizeof(*ix));
        if (!ix || !(ix->name = map_put(&srv.indices, name, strlen(name), ix))) {
            free(ix);
            return NULL;
        }
    }
    if (!ix->exists) {
        ix->exists = true;
        ix->seq_no = 0;
        make_uuid(ix->uuid);
        mapping_clear(&ix->mapping);
        limits_reset(ix);
    }
    return ix;
}

void index_drop(struct index *ix)
{
    aliases_drop_index(ix->name);
    map_clear(&ix->docs, doc_free);
    map_clear(&ix->fields, field_free);
    mapping_clear(&ix->mapping);
    limits_reset(ix);
    ix->exists = false;
}

/* The mapping depth limit: the index's own setting, else --depth-limit
 * (0: none). */
long depth_limit(const struct limits *lim)
{
    return lim->depth >= 0 ? lim->depth : srv.set.depth_limit;
}

enum doc_state doc_state(const struct doc *d, uint64_t now)
{
    if (!d)
        return DS_ABSENT;
    if (!d->deleted)
        return DS_PRESENT;
    return now - d->deleted_ms <= srv.set.gc_deletes_ms ? DS_DELETED : DS_ABSENT;
}

/* ------------------------------------------------------------------------ */
/* Document operations                                                      */

const char *const vtype_upper[] = { "INTERNAL", "EXTERNAL", "EXTERNAL_GTE" };

void op_clear(struct op *o)
{
    free(o->index);
    free(o->id);
    memset(o, 0, sizeof(*o));
}

void next_auto_id(char out[21])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t a = (uint64_t)time(NULL), b = srv.id_counter++;

    for (int i = 0; i < 8; i++, a >>= 6)
        out[7 - i] = al[a & 63];
    for (int i = 0; i < 12; i++, b >>= 6)
        out[19 - i] = al[b & 63];
    out[20] = '\0';
}

static json_t *conflict_error(const struct index *ix, const char *id, const char *reason_tail)
{
    char reason[512];

    snprintf(reason, sizeof(reason), "[%s]: version conflict, %s", id, reason_tail);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "version_conflict_engine_exception",
                     "reason", reason, "index_uuid", ix->uuid, "shard", "0", "index", ix->name);
}

bool valid_index_name(const char *n, char *why, size_t wlen)
{
    if (!*n || *n == '_' || *n == '-' || *n == '+') {
        snprintf(why, wlen, "Invalid index name [%s], must not start with '_', '-', or '+'", n);
        return false;
    }
    for (const char *p = n; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            snprintf(why, wlen, "Invalid index name [%s], must be lowercase", n);
            return false;
        }
        if (strchr("\\/*?\"<>| ,#:", *p)) {
            snprintf(why, wlen,
                     "Invalid index name [%s], must not contain the following characters "
                     "[ , \", *, \\, <, |, ,, >, /, ?]", n);
            return false;
        }
    }
    return true;
}

static int item_ok(struct item_res *res, int64_t version, const char *result, int64_t seq_no,
                   int status)
{
    res->version = version;
    res->result = result;
    res->seq_no = seq_no;
    res->status = status;
    return 0;
}

int item_fail(struct item_res *res, int status, json_t *err)
{
    res->status = status;
    res->error = err;
    return 0;
}

/* The item as ES prints it (the object under the op name). */
json_t *item_to_json(const struct item_res *res, bool with_status)
{
    json_t *o;

    if (res->error) {
        o = json_pack("{s:s, s:s, s:i, s:O}", "_index", res->index, "_id", res->id, "status",
                      res->status, "error", res->error);
        return o;
    }
    o = json_pack("{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i}, s:I, s:i}", "_index", res->index,
                  "_id", res->id, "_version", (json_int_t)res->version, "result", res->result,
                  "_shards", "total", 2, "successful", 1, "failed", 0, "_seq_no",
                  (json_int_t)res->seq_no, "_primary_term", 1);
    if (with_status)
        json_object_set_new(o, "status", json_integer(res->status));
    return o;
}

/* The SHA-256 of a source's bytes.  0 or -ENOMEM. */
int source_sha256(const char *src, size_t len, unsigned char md[32])
{
    if (!srv.sha256 && !(srv.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        return -ENOMEM;
    return EVP_Digest(src, len, md, NULL, srv.sha256, NULL) ? 0 : -ENOMEM;
}

/* Keeps src (len bytes) as the document's source; in discard mode only its
 * SHA-256, which GET /_double/digests shows (control.c). */
static int store_doc(struct index *ix, struct doc **dp, const char *id, size_t id_len,
                     const char *src, size_t len)
{
    struct doc *d = *dp;
    char *copy = NULL;
    unsigned char md[32] = { 0 };

    if (!srv.set.discard && src) {
        copy = malloc(len + 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, src, len);
        copy[len] = '\0';
    } else if (src && source_sha256(src, len, md) < 0) {
        return -ENOMEM;
    }
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (!d || !(d->id = map_put(&ix->docs, id, id_len, d))) {
            free(d);
            free(copy);
            return -ENOMEM;
        }
        d->id_len = id_len;
        *dp = d;
    }
    free(d->source);
    d->source = copy;
    d->source_len = copy ? len : 0;
    memcpy(d->sha256, md, sizeof(md));
    return 0;
}

/* Versioning check for index/create/delete.  Returns NULL when the write may
 * proceed, with *newv set; else the conflict error. */
static json_t *version_check(const struct op *o, struct index *ix, const struct doc *d,
                             enum doc_state ds, int64_t *newv)
{
    char tail[256];
    int64_t cur = ds == DS_ABSENT ? 0 : d->version;

    if (o->if_seq_no != -2) {
        int64_t cs = ds == DS_PRESENT ? d->seq_no : -2;
        if (cs != o->if_seq_no || o->if_primary_term != 1) {
            if (ds == DS_PRESENT)
                snprintf(tail, sizeof(tail),
                         "required seqNo [%" PRId64 "], primary term [%" PRId64
                         "]. current document has seqNo [%" PRId64 "] and primary term [1]",
                         o->if_seq_no, o->if_primary_term, cs);
            else
                snprintf(tail, sizeof(tail),
                         "required seqNo [%" PRId64 "], primary term [%" PRId64
                         "]. but no document was found", o->if_seq_no, o->if_primary_term);
            return conflict_error(ix, o->id, tail);
        }
    }
    if (o->type == OP_CREATE && ds == DS_PRESENT) {
        snprintf(tail, sizeof(tail), "document already exists (current version [%" PRId64 "])",
                 cur);
        return conflict_error(ix, o->id, tail);
    }
    switch (o->vt) {
    case VT_INTERNAL:
        *newv = cur + 1;
        return NULL;
    case VT_EXTERNAL:
        if (ds != DS_ABSENT && o->version <= cur) {
            snprintf(tail, sizeof(tail),
                     "current version [%" PRId64 "] is higher or equal to the one provided [%" PRId64
                     "]", cur, o->version);
            return conflict_error(ix, o->id, tail);
        }
        break;
    case VT_EXTERNAL_GTE:
        if (ds != DS_ABSENT && o->version < cur) {
            snprintf(tail, sizeof(tail),
                     "current version [%" PRId64 "] is higher than the one provided [%" PRId64 "]",
                     cur, o->version);
            return conflict_error(ix, o->id, tail);
        }
        break;
    }
    *newv = o->version;
    return NULL;
}

/* Merges the "doc" of an update into the stored source (top-level keys,
 * recursively for objects, as ES does). */
static void merge_into(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;

    json_object_foreach(src, k, v) {
        json_t *cur = json_object_get(dst, k);
        if (json_is_object(cur) && json_is_object(v))
            merge_into(cur, v);
        else
            json_object_set(dst, k, v);
    }
}

/* Executes one action, filling res (whose op, index and id the caller set).
 * Returns 0. */
int op_execute(struct op *o, struct item_res *res)
{
    char why[600];
    struct index *ix;
    struct doc *d;
    enum doc_state ds;
    uint64_t now = now_ms();
    json_t *err = NULL;
    int64_t newv = 0;

    if ((err = write_target(o, res)) || (err = id_refused(o)))
        return item_fail(res, 400, err);
    /* --no-external-versions: the version and its type never reach the
     * engine, as behind a client or proxy that drops them (the failure the
     * ddb2es probe's canary is there to catch) */
    if (srv.set.no_external_versions && o->type != OP_UPDATE) {
        o->vt = VT_INTERNAL;
        o->version = VERSION_UNSET;
    }
    if (!valid_index_name(o->index, why, sizeof(why))) {
        err = json_pack("{s:s, s:s, s:s, s:s}", "type", "invalid_index_name_exception", "reason",
                        why, "index_uuid", "_na_", "index", o->index);
        return item_fail(res, 400, err);
    }
    ix = index_get(o->index);
    if (!ix && !(ix = index_create(o->index))) {
        return item_fail(res, 500, err_obj("exception", "out of memory"));
    }
    d = map_get(&ix->docs, o->id, o->id_len);
    ds = doc_state(d, now);

    if (o->type == OP_UPDATE) {
        json_error_t jerr;
        json_t *body = json_loadb(o->src, o->src_len, 0, &jerr);
        json_t *doc = json_object_get(body, "doc"), *upsert = json_object_get(body, "upsert");
        json_t *result_doc = NULL;
        const char *result;
        bool as_upsert = json_is_true(json_object_get(body, "doc_as_upsert"));

        if (!json_is_object(body) || json_object_get(body, "script")) {
            err = err_obj(body ? "illegal_argument_exception" : "x_content_parse_exception",
                          body ? "scripted updates are not supported by the search double"
                               : jerr.text);
            json_decref(body);
            return item_fail(res, 400, err);
        }
        if (ds == DS_PRESENT) {
            json_t *cur = d->source ? json_loadb(d->source, d->source_len, 0, &jerr)
                                    : json_object();
            if (!cur)
                cur = json_object();
            json_t *before = json_deep_copy(cur);
            if (json_is_object(doc))
                merge_into(cur, doc);
            if (json_equal(before, cur)) {
                json_decref(before);
                json_decref(cur);
                json_decref(body);
                return item_ok(res, d->version, "noop", d->seq_no, 200);
            }
            json_decref(before);
            result_doc = cur;
            result = "updated";
        } else if (as_upsert && json_is_object(doc)) {
            result_doc = json_incref(doc);
            result = "created";
        } else if (json_is_object(upsert)) {
            result_doc = json_incref(upsert);
            result = "created";
        } else {
            json_decref(body);
            snprintf(why, sizeof(why), "[%s]: document missing", o->id);
            err = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "document_missing_exception",
                            "reason", why, "index_uuid", ix->uuid, "shard", "0", "index",
                            ix->name);
            return item_fail(res, 404, err);
        }
        json_decref(body);
        char *text = json_dumps(result_doc, JSON_COMPACT);
        json_t *ierr = NULL;
        json_decref(result_doc);
        if (!text || (err = check_source(ix, text, strlen(text), o->id, &ierr)) != NULL ||
            ierr) {
            free(text);
            return item_fail(res, 400, err ? err : ierr ? ierr : err_obj("exception", "oom"));
        }
        newv = ds == DS_PRESENT ? d->version + 1 : (ds == DS_DELETED ? d->version + 1 : 1);
        if (store_doc(ix, &d, o->id, o->id_len, text, strlen(text)) < 0) {
            free(text);
            return item_fail(res, 500, err_obj("exception", "out of memory"));
        }
        free(text);
        d->version = newv;
        d->deleted = false;
        d->seq_no = ix->seq_no++;
        return item_ok(res, newv, result, d->seq_no, ds == DS_PRESENT ? 200 : 201);
    }

    /* The shard parses the source (and updates the mapping) before the
     * engine checks versions (IndexShard#applyIndexOperation: prepareIndex,
     * then Engine#index), so a bad document is a 400 even when its version
     * would conflict, and a conflicting one still maps its new fields. */
    json_t *ierr = NULL;
    if (o->type != OP_DELETE && (err = check_source(ix, o->src, o->src_len, o->id, &ierr)))
        return item_fail(res, 400, err);
    if ((err = version_check(o, ix, d, ds, &newv)) != NULL) {
        json_decref(ierr);
        return item_fail(res, 409, err);
    }
    /* Lucene refuses a term when the engine indexes the parsed document
     * (InternalEngine#index: after the version check; the mapping keeps
     * the document's new fields) */
    if (ierr)
        return item_fail(res, 400, ierr);
    if (o->type == OP_DELETE) {
        bool found = ds == DS_PRESENT;
        if (!d && store_doc(ix, &d, o->id, o->id_len, NULL, 0) < 0) {
            return item_fail(res, 500, err_obj("exception", "out of memory"));
        }
        free(d->source);
        d->source = NULL;
        d->source_len = 0;
        d->version = newv;
        d->deleted = true;
        d->deleted_ms = now;
        d->seq_no = ix->seq_no++;
        return item_ok(res, newv, found ? "deleted" : "not_found", d->seq_no, found ? 200 : 404);
    }
    if (store_doc(ix, &d, o->id, o->id_len, o->src, o->src_len) < 0) {
        return item_fail(res, 500, err_obj("exception", "out of memory"));
    }
    d->version = newv;
    d->deleted = false;
    d->seq_no = ix->seq_no++;
    return item_ok(res, newv, ds == DS_PRESENT ? "updated" : "created", d->seq_no,
                   ds == DS_PRESENT ? 200 : 201);
}
