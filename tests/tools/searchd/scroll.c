#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Multi get and scroll                                                     */
/*
 * _mget (Elasticsearch reference "Multi get (mget) API"; OpenSearch "Multi-
 * get documents"; RestMultiGetAction, MultiGetRequest, TransportMultiGetAction):
 *   POST|GET /<index>/_mget {"ids":[...]} or {"docs":[{"_id":..,"_index":..}]},
 *   POST|GET /_mget {"docs":[...]} (each doc names its _index).  The reply's
 *   "docs" are in the order asked, each shaped as GET /<index>/_doc/<id>
 *   answers (_index, _id, _version, _seq_no, _primary_term, found, _source;
 *   found:false alone when absent).  "_source": false leaves _source out,
 *   an array or {"includes":[...]} keeps those top-level fields.  An index
 *   that does not exist fails that document only: an "error" object
 *   (index_not_found_exception) in its place, HTTP 200.  Nothing to get, or
 *   "ids" without an index, is 400 action_request_validation_exception.
 *
 * Scroll (Elasticsearch reference "Paginate search results", scroll;
 * OpenSearch "Scroll"; SearchService, RestSearchScrollAction,
 * RestClearScrollAction):
 *   POST /<index>/_search?scroll=<keep-alive> starts a scroll: the reply
 *   has "_scroll_id" and the first page, and the documents are those there
 *   when it started (later writes and deletes do not show: a point-in-time
 *   view);
 *   POST /_search/scroll {"scroll":"1m","scroll_id":"..."} gives the next
 *   page (empty hits at the end) and extends the keep-alive;
 *   DELETE /_search/scroll {"scroll_id":[...]} or "_all" frees them: 200
 *   {"succeeded":true,"num_freed":N}, 404 with num_freed 0 when none was
 *   found.  A scroll id unknown or expired: 404 search_phase_execution_exception
 *   "all shards failed" caused by search_context_missing_exception "No
 *   search context found for id [N]"; an id that cannot be parsed: 400
 *   illegal_argument_exception "Cannot parse scroll id".  A keep-alive
 *   without a unit is refused as TimeValue refuses it.
 */

#define SCROLL_PREFIX "c2NyfGRkYjJlc3xkb3VibGU" /* any opaque text; the number follows */

struct shit {
    char *index, *id, *source;
    size_t id_len, source_len;
    int64_t version, seq_no;
};

struct scroll {
    uint64_t no, expires_ms;
    struct shit *hits;
    size_t n, pos;
    long size;
    struct hitopts ho;
    struct scroll *next;
};

static struct scroll *scrolls;
static uint64_t scroll_counter;

/* A TimeValue ("1m", "30s", "500ms", "2h", "1d"): milliseconds, or -EINVAL. */
static int keep_alive_ms(const char *s, uint64_t *out)
{
    static const struct { const char *unit; double ms; } units[] = {
        { "nanos", 1e-6 }, { "micros", 1e-3 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 },
    };
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].unit) == 0) {
            *out = (uint64_t)(v * units[i].ms);
            return 0;
        }
    return -EINVAL;
}

static void reply_time_value(struct conn *c, const char *v)
{
    char reason[300];

    snprintf(reason, sizeof(reason), "failed to parse setting [scroll] with value [%s] as a "
             "time value: unit is missing or unrecognized", v);
    reply_error(c, 400, "illegal_argument_exception", reason);
}

int hitopts_parse(json_t *body, struct hitopts *ho, char *why, size_t wlen)
{
    json_t *src = json_object_get(body, "_source"), *sort = json_object_get(body, "sort");

    memset(ho, 0, sizeof(*ho));
    ho->source = true;
    ho->version = json_is_true(json_object_get(body, "version"));
    if (json_is_boolean(src)) {
        ho->source = json_is_true(src);
    } else if (src) {
        snprintf(why, wlen, "_source filtering is not modelled by the search double");
        return -EINVAL;
    }
    if (sort) {
        json_t *one = json_is_array(sort) && json_array_size(sort) == 1
                          ? json_array_get(sort, 0)
                          : sort;

        if (!json_is_string(one) || strcmp(json_string_value(one), "_doc") != 0) {
            snprintf(why, wlen, "only sort [\"_doc\"] is modelled by the search double");
            return -EINVAL;
        }
        ho->sort_doc = true;
    }
    return 0;
}

void put_hit(struct buf *b, const char *index, const char *id, size_t id_len, int64_t version,
             const char *source, size_t source_len, const struct hitopts *ho, size_t docno)
{
    buf_puts(b, "{\"_index\":");
    put_json_str(b, index, strlen(index));
    buf_puts(b, ",\"_id\":");
    put_json_str(b, id, id_len);
    if (ho->version)
        buf_printf(b, ",\"_version\":%" PRId64, version);
    /* Sorted by _doc: no score (SearchHit: _score null, then "sort"). */
    buf_puts(b, ho->sort_doc ? ",\"_score\":null" : ",\"_score\":1.0");
    if (ho->source) {
        buf_puts(b, ",\"_source\":");
        if (source)
            buf_append(b, source, source_len);
        else
            buf_puts(b, "{}");
    }
    if (ho->sort_doc)
        buf_printf(b, ",\"sort\":[%zu]", docno);
    buf_putc(b, '}');
}

static struct scroll *scroll_find(uint64_t no)
{
    uint64_t now = now_ms();

    for (struct scroll **p = &scrolls; *p;) {
        struct scroll *s = *p;

        if (s->expires_ms <= now) { /* the reaper frees it once its keep-alive passed */
            *p = s->next;
            for (size_t i = 0; i < s->n; i++) {
                free(s->hits[i].index);
                free(s->hits[i].id);
                free(s->hits[i].source);
            }
            free(s->hits);
            free(s);
            continue;
        }
        if (s->no == no)
            return s;
        p = &s->next;
    }
    return NULL;
}

static void scroll_free(struct scroll *s)
{
    for (struct scroll **p = &scrolls; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    for (size_t i = 0; i < s->n; i++) {
        free(s->hits[i].index);
        free(s->hits[i].id);
        free(s->hits[i].source);
    }
    free(s->hits);
    free(s);
}

size_t scrolls_open(void)
{
    size_t n = 0;

    scroll_find(0); /* drops the expired */
    for (struct scroll *s = scrolls; s; s = s->next)
        n++;
    return n;
}

static void page_reply(struct conn *c, struct scroll *s, int nidx)
{
    struct buf b, hits;
    long emitted = 0;

    buf_init(&hits, BUF_NOMAX);
    for (; s->pos < s->n && emitted < s->size; s->pos++, emitted++) {
        struct shit *h = &s->hits[s->pos];

        if (emitted)
            buf_putc(&hits, ',');
        put_hit(&hits, h->index, h->id, h->id_len, h->version, h->source, h->source_len,
                &s->ho, s->pos);
    }
    buf_init(&b, BUF_NOMAX);
    buf_printf(&b, "{\"_scroll_id\":\"" SCROLL_PREFIX "%" PRIu64 "\",\"took\":1,\"timed_out\":"
                   "false,\"_shards\":{\"total\":%d,\"successful\":%d,\"skipped\":0,\"failed\":0},"
                   "\"hits\":{\"total\":{\"value\":%zu,\"relation\":\"eq\"},\"max_score\":%s,"
                   "\"hits\":[",
               s->no, nidx, nidx, s->n, s->ho.sort_doc || !s->n ? "null" : "1.0");
    if (hits.len)
        buf_append(&b, hits.ptr, hits.len);
    buf_puts(&b, "]}}");
    buf_close(&hits);
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* POST /<index>/_search?scroll=...: the documents now, kept for the scroll. */
void scroll_start(struct conn *c, struct index **ixs, int n, long size, const char *keep,
                  const struct hitopts *ho)
{
    struct scroll *s = calloc(1, sizeof(*s));
    uint64_t ka;
    size_t cap = 0;

    if (keep_alive_ms(keep, &ka) < 0) {
        free(s);
        reply_time_value(c, keep);
        return;
    }
    if (!s) {
        reply_error(c, 500, "out_of_memory", "no memory for the scroll");
        return;
    }
    for (int i = 0; i < n; i++)
        cap += ixs[i]->docs.len;
    s->hits = calloc(cap + 1, sizeof(*s->hits));
    for (int i = 0; i < n && s->hits; i++) {
        size_t k;
        struct doc **v = sorted_docs(ixs[i], false, &k);

        for (size_t j = 0; v && j < k; j++) {
            struct shit *h = &s->hits[s->n++];

            h->index = xstrdup(ixs[i]->name);
            h->id = strndup_n(v[j]->id, v[j]->id_len);
            h->id_len = v[j]->id_len;
            h->version = v[j]->version;
            h->seq_no = v[j]->seq_no;
            if (ho->source && v[j]->source) {
                h->source = strndup_n(v[j]->source, v[j]->source_len);
                h->source_len = v[j]->source_len;
            }
        }
        free(v);
    }
    s->no = ++scroll_counter;
    s->expires_ms = now_ms() + ka;
    s->size = size;
    s->ho = *ho;
    s->next = scrolls;
    scrolls = s;
    page_reply(c, s, n);
}

/* The number in a scroll id this double gave, or 0. */
static uint64_t scroll_no(const char *id)
{
    size_t pl = strlen(SCROLL_PREFIX);
    char *end;
    unsigned long long no;

    if (!id || strncmp(id, SCROLL_PREFIX, pl) != 0 || !isdigit((unsigned char)id[pl]))
        return 0;
    errno = 0;
    no = strtoull(id + pl, &end, 10);
    return errno || *end || !no ? 0 : (uint64_t)no;
}

static void reply_context_missing(struct conn *c, uint64_t no)
{
    char reason[128];
    json_t *cause, *e;

    /* The root cause is the shards' failure (ElasticsearchException
     * #guessRootCauses), not the phase failure around it. */
    snprintf(reason, sizeof(reason), "No search context found for id [%" PRIu64 "]", no);
    cause = err_obj("search_context_missing_exception", reason);
    e = json_pack("{s:[O], s:s, s:s, s:s, s:b, s:[{s:i, s:n, s:O}], s:O}", "root_cause", cause,
                  "type", "search_phase_execution_exception", "reason", "all shards failed",
                  "phase", "query", "grouped", 1, "failed_shards", "shard", -1, "index",
                  "reason", cause, "caused_by", cause);
    json_decref(cause);
    reply_json(c, 404, json_pack("{s:o, s:i}", "error", e, "status", 404), NULL);
}

/* The scroll id and keep-alive of a scroll request: the body's, else the query's. */
static json_t *scroll_body(struct conn *c, struct request *r)
{
    json_error_t jerr;
    json_t *body = r->data_len ? jsonx_loadb(r->data, r->data_len, 0, &jerr) : json_object();

    if (!body) {
        reply_error(c, 400, "parse_exception", jerr.text);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        reply_error(c, 400, "parse_exception", "request body must be an object");
        return NULL;
    }
    return body;
}

/* POST|GET /_search/scroll */
void handle_scroll_next(struct conn *c, struct request *r)
{
    json_t *body = scroll_body(c, r);
    char *qid = query_param(r->query, "scroll_id"), *qka = query_param(r->query, "scroll");
    const char *id, *ka;
    uint64_t no, ms = 0;
    struct scroll *s;

    if (!body)
        goto out;
    id = json_string_value(json_object_get(body, "scroll_id"));
    ka = json_string_value(json_object_get(body, "scroll"));
    id = id ? id : qid;
    ka = ka ? ka : qka;
    if (!id) {
        reply_error(c, 400, "action_request_validation_exception",
                    "Validation Failed: 1: scrollId is missing;");
        goto out;
    }
    if (ka && keep_alive_ms(ka, &ms) < 0) {
        reply_time_value(c, ka);
        goto out;
    }
    if (!(no = scroll_no(id))) {
        reply_error(c, 400, "illegal_argument_exception", "Cannot parse scroll id");
        goto out;
    }
    if (!(s = scroll_find(no))) {
        reply_context_missing(c, no);
        goto out;
    }
    if (ka)
        s->expires_ms = now_ms() + ms;
    page_reply(c, s, 1);
out:
    json_decref(body);
    free(qid);
    free(qka);
}

/* DELETE /_search/scroll */
void handle_scroll_clear(struct conn *c, struct request *r)
{
    json_t *body = scroll_body(c, r), *ids, *x;
    size_t i, freed = 0;

    if (!body)
        return;
    ids = json_object_get(body, "scroll_id");
    if (json_is_string(ids))
        ids = json_pack("[O]", ids);
    else
        json_incref(ids);
    if (json_is_string(json_array_get(ids, 0)) &&
        strcmp(json_string_value(json_array_get(ids, 0)), "_all") == 0) {
        freed = scrolls_open();
        while (scrolls)
            scroll_free(scrolls);
    } else if (!json_array_size(ids)) {
        reply_error(c, 400, "action_request_validation_exception",
                    "Validation Failed: 1: no scroll ids specified;");
        json_decref(ids);
        json_decref(body);
        return;
    } else {
        json_array_foreach(ids, i, x) {
            uint64_t no = scroll_no(json_string_value(x));
            struct scroll *s;

            if (!no) {
                reply_error(c, 400, "illegal_argument_exception", "Cannot parse scroll id");
                json_decref(ids);
                json_decref(body);
                return;
            }
            if ((s = scroll_find(no))) {
                scroll_free(s);
                freed++;
            }
        }
    }
    json_decref(ids);
    json_decref(body);
    reply_json(c, freed ? 200 : 404,
               json_pack("{s:b, s:i}", "succeeded", 1, "num_freed", (int)freed), NULL);
}

/* ---- _mget ---------------------------------------------------------------- */

static void mget_error(struct buf *b, const char *index, const char *id, size_t id_len,
                       json_t *e)
{
    json_t *body = es_error_body(404, e), *err = json_object_get(body, "error");

    buf_puts(b, "{\"_index\":");
    put_json_str(b, index, strlen(index));
    buf_puts(b, ",\"_id\":");
    put_json_str(b, id, id_len);
    buf_puts(b, ",\"error\":");
    put_json(b, err);
    buf_putc(b, '}');
    json_decref(body);
}

static void mget_one(struct buf *b, const char *expr, const char *id, size_t id_len, bool source)
{
    struct index *ixs[2];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 2, &missing);
    struct index *ix;
    struct doc *d;

    if (n <= 0) {
        char reason[300];

        snprintf(reason, sizeof(reason), "no such index [%s]", expr);
        mget_error(b, expr, id, id_len,
                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type",
                             "index_not_found_exception", "reason", reason, "resource.type",
                             "index_or_alias", "resource.id", expr, "index_uuid", "_na_",
                             "index", expr));
        return;
    }
    if (n > 1 || strchr(expr, '*') || strchr(expr, ',')) {
        char reason[400];

        snprintf(reason, sizeof(reason), "alias [%s] has more than one index associated with "
                 "it, can't execute a single index op", expr);
        mget_error(b, expr, id, id_len, err_obj("illegal_argument_exception", reason));
        return;
    }
    ix = ixs[0];
    d = map_get(&ix->docs, id, id_len);
    buf_puts(b, "{\"_index\":");
    put_json_str(b, ix->name, strlen(ix->name));
    buf_puts(b, ",\"_id\":");
    put_json_str(b, id, id_len);
    if (doc_state(d, now_ms()) != DS_PRESENT) {
        buf_puts(b, ",\"found\":false}");
        return;
    }
    buf_printf(b, ",\"_version\":%" PRId64 ",\"_seq_no\":%" PRId64
                  ",\"_primary_term\":1,\"found\":true",
               d->version, d->seq_no);
    if (source) {
        buf_puts(b, ",\"_source\":");
        if (d->source)
            buf_append(b, d->source, d->source_len);
        else
            buf_puts(b, "{}");
    }
    buf_putc(b, '}');
}

/* POST|GET /<index>/_mget, /_mget */
void handle_mget(struct conn *c, struct request *r, const char *def_index)
{
    json_error_t jerr;
    json_t *body = r->data_len ? jsonx_loadb(r->data, r->data_len, 0, &jerr) : NULL;
    json_t *ids, *docs, *src, *x;
    bool source = true;
    struct buf b;
    size_t i, n = 0;

    if (!r->data_len) {
        reply_error(c, 400, "parse_exception", "request body or source parameter is required");
        return;
    }
    if (!body || !json_is_object(body)) {
        json_decref(body);
        reply_error(c, 400, "parse_exception", body ? "request body must be an object" : jerr.text);
        return;
    }
    ids = json_object_get(body, "ids");
    docs = json_object_get(body, "docs");
    src = json_object_get(body, "_source");
    if (json_is_boolean(src)) {
        source = json_is_true(src);
    } else if (src) {
        json_decref(body);
        reply_error(c, 400, "parsing_exception",
                    "_source filtering is not modelled by the search double");
        return;
    }
    n = json_array_size(ids) + json_array_size(docs);
    if ((ids && !json_is_array(ids)) || (docs && !json_is_array(docs))) {
        json_decref(body);
        reply_error(c, 400, "parsing_exception", "ids and docs must be arrays");
        return;
    }
    if (n == 0) {
        json_decref(body);
        reply_error(c, 400, "action_request_validation_exception",
                    "Validation Failed: 1: no documents to get;");
        return;
    }
    json_array_foreach(docs, i, x) {
        if (!def_index && !json_is_string(json_object_get(x, "_index"))) {
            char msg[80];

            json_decref(body);
            snprintf(msg, sizeof(msg), "Validation Failed: 1: index is missing for doc %zu;", i);
            reply_error(c, 400, "action_request_validation_exception", msg);
            return;
        }
        if (!json_is_string(json_object_get(x, "_id"))) {
            char msg[80];

            json_decref(body);
            snprintf(msg, sizeof(msg), "Validation Failed: 1: id is missing for doc %zu;", i);
            reply_error(c, 400, "action_request_validation_exception", msg);
            return;
        }
    }
    if (json_array_size(ids) && !def_index) {
        json_decref(body);
        reply_error(c, 400, "action_request_validation_exception",
                    "Validation Failed: 1: index is missing for doc 0;");
        return;
    }
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"docs\":[");
    n = 0;
    json_array_foreach(docs, i, x) {
        json_t *id = json_object_get(x, "_id"), *ds = json_object_get(x, "_source");
        const char *ix = json_string_value(json_object_get(x, "_index"));

        if (n++)
            buf_putc(&b, ',');
        mget_one(&b, ix ? ix : def_index, json_string_value(id), json_string_length(id),
                 json_is_boolean(ds) ? json_is_true(ds) : source);
    }
    json_array_foreach(ids, i, x) {
        if (n++)
            buf_putc(&b, ',');
        if (!json_is_string(x)) {
            char reason[200];

            snprintf(reason, sizeof(reason), "ids must be strings: item %zu is not", i);
            buf_close(&b);
            json_decref(body);
            reply_error(c, 400, "parsing_exception", reason);
            return;
        }
        mget_one(&b, def_index, json_string_value(x), json_string_length(x), source);
    }
    buf_puts(&b, "]}");
    json_decref(body);
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}
