#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* The control API: /_double/...                                            */

static void handle_dump(struct conn *c)
{
    const char *names[1024];
    size_t n = 0;
    struct buf b;

    for (size_t i = 0; i < srv.indices.cap && n < 1024; i++) {
        struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;
        if (ix && ix->exists)
            names[n++] = ix->name;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++) {
        struct index *ix = index_get(names[i]);
        size_t k;
        struct doc **v = sorted_docs(ix, true, &k);
        if (i)
            buf_putc(&b, ',');
        put_json_str(&b, ix->name, strlen(ix->name));
        buf_puts(&b, ":{");
        for (size_t j = 0; v && j < k; j++) {
            if (j)
                buf_putc(&b, ',');
            put_json_str(&b, v[j]->id, v[j]->id_len);
            buf_printf(&b, ":{\"version\":%" PRId64 ",\"deleted\":%s,\"source\":", v[j]->version,
                       v[j]->deleted ? "true" : "false");
            if (v[j]->source)
                buf_append(&b, v[j]->source, v[j]->source_len);
            else
                buf_puts(&b, "null");
            buf_putc(&b, '}');
        }
        buf_putc(&b, '}');
        free(v);
    }
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* GET /_double/digests[?index=NAME]: the final state of every document,
 * one JSON object a line, indices by name and ids by their bytes:
 *   {"index":"i","id":"d","version":7,"sha256":"<hex>"}   a live document:
 *       the SHA-256 of its source as received (kept alone in discard mode)
 *   {"index":"i","id":"d","version":9,"deleted":true}     a tombstone
 * Every tombstone is listed, past gc_deletes too (the double keeps its
 * version; the engine would have forgotten it and answer 404 alike).  What
 * bench/lastimages compares with the input's last images. */
static void handle_digests(struct conn *c, const struct request *r)
{
    static const char hexd[] = "0123456789abcdef";
    char *only = query_param(r->query, "index");
    const char *names[1024];
    size_t n = 0;
    struct buf b;

    for (size_t i = 0; i < srv.indices.cap && n < 1024; i++) {
        struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;
        if (ix && ix->exists && (!only || strcmp(ix->name, only) == 0))
            names[n++] = ix->name;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n; i++) {
        struct index *ix = index_get(names[i]);
        struct doc **v = malloc((ix->docs.len + 1) * sizeof(*v));
        size_t k = 0;

        if (!v) {
            buf_close(&b);
            free(only);
            reply_error(c, 500, "exception", "out of memory");
            return;
        }
        for (size_t j = 0; j < ix->docs.cap; j++)
            if (ix->docs.slots[j].key)
                v[k++] = ix->docs.slots[j].val;
        qsort(v, k, sizeof(*v), cmp_docp);
        for (size_t j = 0; j < k; j++) {
            const struct doc *d = v[j];
            unsigned char md[32];
            const unsigned char *sum = d->sha256;

            buf_puts(&b, "{\"index\":");
            put_json_str(&b, ix->name, strlen(ix->name));
            buf_puts(&b, ",\"id\":");
            put_json_str(&b, d->id, d->id_len);
            buf_printf(&b, ",\"version\":%" PRId64, d->version);
            if (d->deleted) {
                buf_puts(&b, ",\"deleted\":true}\n");
                continue;
            }
            if (d->source && source_sha256(d->source, d->source_len, md) == 0)
                sum = md;
            buf_puts(&b, ",\"sha256\":\"");
            for (size_t x = 0; x < 32; x++) {
                buf_putc(&b, hexd[sum[x] >> 4]);
                buf_putc(&b, hexd[sum[x] & 15]);
            }
            buf_puts(&b, "\"}\n");
        }
        free(v);
    }
    free(only);
    size_t len = b.len;
    reply(c, 200, "application/x-ndjson", NULL, buf_take(&b), len);
}

static void handle_stats(struct conn *c)
{
    json_t *req = json_object(), *items = json_object(), *acts = json_object();
    char k[16];

    for (int r = 0; r < RT_N; r++) {
        json_t *by = NULL;
        for (int s = 0; s < 600; s++) {
            if (!srv.st.requests[r][s])
                continue;
            if (!by)
                by = json_object();
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(by, k, json_integer((json_int_t)srv.st.requests[r][s]));
        }
        if (by)
            json_object_set_new(req, route_name[r], by);
    }
    for (int s = 0; s < 600; s++)
        if (srv.st.items[s]) {
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(items, k, json_integer((json_int_t)srv.st.items[s]));
        }
    for (int o = 0; o < OP_N; o++)
        json_object_set_new(acts, op_name[o], json_integer((json_int_t)srv.st.actions[o]));
    json_t *b = json_pack("{s:o, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", req,
                          "bulk_requests", (json_int_t)srv.st.bulk_requests, "actions", acts,
                          "items", items, "bytes_received", (json_int_t)srv.st.bytes_received,
                          "body_bytes", (json_int_t)srv.st.body_bytes, "auth_failures",
                          (json_int_t)srv.st.auth_failures, "connections",
                          (json_int_t)srv.st.connections, "faults_applied",
                          (json_int_t)srv.st.faults_applied, "faults_pending",
                          (json_int_t)srv.nfaults);
    reply_json(c, 200, b, NULL);
}

static void handle_faults(struct conn *c, struct request *r)
{
    json_error_t jerr;
    json_t *j;
    char why[200];
    size_t added = 0;

    if (strcmp(r->method, "DELETE") == 0) {
        faults_clear();
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    if (strcmp(r->method, "GET") == 0) {
        json_t *list = json_array();
        for (size_t i = 0; i < srv.nfaults; i++) {
            json_t *one = json_pack("{s:i, s:I, s:i, s:i}", "kind", (int)srv.faults[i].kind,
                                    "count", (json_int_t)srv.faults[i].count, "status",
                                    srv.faults[i].status, "item_status",
                                    srv.faults[i].item_status);
            if (srv.faults[i].ids)
                json_object_set(one, "ids", srv.faults[i].ids);
            json_array_append_new(list, one);
        }
        reply_json(c, 200, list, NULL);
        return;
    }
    j = json_loadb(r->data, r->data_len, 0, &jerr);
    if (!j) {
        reply_error(c, 400, "parse_exception", jerr.text);
        return;
    }
    if (json_is_object(j))
        j = json_pack("[o]", j);
    if (!json_is_array(j)) {
        json_decref(j);
        reply_error(c, 400, "illegal_argument_exception", "expected a list of rules");
        return;
    }
    size_t i;
    json_t *rule;
    uint64_t down = 0;
    json_array_foreach(j, i, rule) {
        json_t *dm = json_object_get(rule, "down_ms");
        struct fault f;
        if (json_is_integer(dm)) {
            down = (uint64_t)json_integer_value(dm);
            continue;
        }
        if (fault_parse(rule, &f, why, sizeof(why)) < 0) {
            free(f.body);
            json_decref(f.ids);
            json_decref(j);
            reply_error(c, 400, "illegal_argument_exception", why);
            return;
        }
        struct fault *n = realloc(srv.faults, (srv.nfaults + 1) * sizeof(*n));
        if (!n) {
            free(f.body);
            json_decref(f.ids);
            json_decref(j);
            reply_error(c, 500, "exception", "out of memory");
            return;
        }
        srv.faults = n;
        srv.faults[srv.nfaults++] = f;
        added++;
    }
    json_decref(j);
    if (down) {
        srv.down_until_ms = now_ms() + down;
        c->close_after = true;
        conns_close_all(c);
    }
    reply_json(c, 200, json_pack("{s:b, s:I}", "acknowledged", true, "rules", (json_int_t)added),
               NULL);
}

/* ---- the requests seen ---- */

#define REQLOG_MAX 100000

void reqlog_add(const struct request *r, int status)
{
    struct reqlog *n;

    if (srv.nlog == REQLOG_MAX) /* the oldest half goes */
        reqlog_trim(REQLOG_MAX / 2);
    if (srv.nlog == srv.caplog) {
        size_t cap = srv.caplog ? srv.caplog * 2 : 64;

        if (!(n = realloc(srv.log, cap * sizeof(*n))))
            return;
        srv.log = n;
        srv.caplog = cap;
    }
    n = &srv.log[srv.nlog];
    n->method = strdup(r->method);
    n->path = strdup(r->path);
    n->query = strdup(r->query);
    n->status = status;
    if (!n->method || !n->path || !n->query) {
        free(n->method);
        free(n->path);
        free(n->query);
        return;
    }
    srv.nlog++;
}

/* Drops the first n entries. */
void reqlog_trim(size_t n)
{
    for (size_t i = 0; i < n && i < srv.nlog; i++) {
        free(srv.log[i].method);
        free(srv.log[i].path);
        free(srv.log[i].query);
    }
    n = n < srv.nlog ? n : srv.nlog;
    if (n)
        memmove(srv.log, srv.log + n, (srv.nlog - n) * sizeof(*srv.log));
    srv.nlog -= n;
}

void reqlog_clear(void)
{
    reqlog_trim(srv.nlog);
    free(srv.log);
    srv.log = NULL;
    srv.caplog = 0;
}

/* GET /_double/requests: [{"method","path","query","status"}], oldest
 * first (the last 100000 at most); DELETE forgets them. */
static void handle_requests(struct conn *c, const struct request *r)
{
    json_t *out;

    if (strcmp(r->method, "DELETE") == 0) {
        reqlog_clear();
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    out = json_array();
    for (size_t i = 0; i < srv.nlog; i++)
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:i}", "method", srv.log[i].method,
                                             "path", srv.log[i].path, "query",
                                             srv.log[i].query, "status", srv.log[i].status));
    reply_json(c, 200, out, NULL);
}

static void handle_config(struct conn *c, struct request *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->data, r->data_len, 0, &jerr), *v;
    struct settings *s = &srv.set;
    const char *k;

    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(c, 400, "parse_exception", j ? "expected an object" : jerr.text);
        return;
    }
    json_object_foreach(j, k, v) {
        const char *sv = json_string_value(v);
        char **dst = NULL;
        if (strcmp(k, "auth") == 0) {
            if (!sv || parse_auth(sv, &s->auth) < 0)
                goto bad;
        } else if (strcmp(k, "user") == 0) dst = &s->user;
        else if (strcmp(k, "password") == 0) dst = &s->password;
        else if (strcmp(k, "api_key") == 0) dst = &s->api_key;
        else if (strcmp(k, "access_key") == 0) dst = &s->access_key;
        else if (strcmp(k, "secret_key") == 0) dst = &s->secret_key;
        else if (strcmp(k, "session_token") == 0) dst = &s->session_token;
        else if (strcmp(k, "region") == 0) dst = &s->region;
        else if (strcmp(k, "service") == 0) dst = &s->service;
        else if (strcmp(k, "poison_field") == 0) dst = &s->poison_field;
        else if (strcmp(k, "max_body") == 0) {
            if (json_is_integer(v) && json_integer_value(v) > 0)
                s->max_body = (size_t)json_integer_value(v);
            else if (!sv || parse_size(sv, &s->max_body) < 0)
                goto bad;
            s->max_body_set = true;
        } else if (strcmp(k, "gc_deletes") == 0) {
            if (json_is_number(v) && json_number_value(v) >= 0)
                s->gc_deletes_ms = (uint64_t)(json_number_value(v) * 1000);
            else if (!sv || parse_duration_ms(sv, &s->gc_deletes_ms) < 0)
                goto bad;
        } else if (strcmp(k, "depth_limit") == 0) {
            if (!json_is_integer(v))
                goto bad;
            s->depth_limit = (int)json_integer_value(v);
        } else if (strcmp(k, "discard") == 0) {
            s->discard = json_is_true(v);
        } else if (strcmp(k, "flavor") == 0 || strcmp(k, "flavour") == 0) {
            if (!sv || parse_flavor(sv, &s->flavor, &s->offering) < 0)
                goto bad;
            if (!s->max_body_set)
                s->max_body = flavour_max_body();
        } else if (strcmp(k, "engine_version") == 0) {
            dst = &s->engine_version;
        } else if (strcmp(k, "external_versions") == 0) {
            if (!json_is_boolean(v))
                goto bad;
            s->no_external_versions = !json_is_true(v);
        } else {
            goto bad;
        }
        if (dst) {
            if (!json_is_null(v) && !sv)
                goto bad;
            set_str(dst, sv);
        }
        continue;
bad:
        {
            char why[200];
            snprintf(why, sizeof(why), "bad or unknown setting [%s]", k);
            json_decref(j);
            reply_error(c, 400, "illegal_argument_exception", why);
            return;
        }
    }
    json_decref(j);
    reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
}

void handle_control(struct conn *c, struct request *r)
{
    const char *p = r->path + strlen("/_double/");

    if (strcmp(p, "faults") == 0) {
        handle_faults(c, r);
        return;
    }
    if (strcmp(p, "config") == 0 && strcmp(r->method, "POST") == 0) {
        handle_config(c, r);
        return;
    }
    if (strcmp(p, "requests") == 0) {
        handle_requests(c, r);
        return;
    }
    if (strcmp(p, "reset") == 0 && strcmp(r->method, "POST") == 0) {
        map_clear(&srv.indices, index_free);
        map_clear(&srv.aliases, alias_free);
        map_clear(&srv.streams, stream_free);
        reqlog_clear();
        faults_clear();
        memset(&srv.st, 0, sizeof(srv.st));
        srv.down_until_ms = 0;
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    if (strcmp(p, "dump") == 0) {
        handle_dump(c);
        return;
    }
    if (strcmp(p, "digests") == 0) {
        handle_digests(c, r);
        return;
    }
    if (strcmp(p, "stats") == 0) {
        handle_stats(c);
        return;
    }
    reply_error(c, 404, "resource_not_found_exception", "unknown control endpoint");
}
