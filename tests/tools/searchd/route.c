#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */

void free_segs(struct request *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i]);
    r->nseg = 0;
}

int split_path(struct request *r)
{
    const char *p = r->path;

    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        if (r->nseg == 8)
            return -E2BIG;
        if (!(r->segs[r->nseg] = pct_decode(s, (size_t)(p - s), false)))
            return -ENOMEM;
        r->nseg++;
    }
    return 0;
}

bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

enum route classify(const struct request *r)
{
    char *const *s = r->segs;

    switch (r->nseg) {
    case 0: return RT_ROOT;
    case 1:
        if (is(s[0], "_aliases")) return RT_ALIASES;
        if (is(s[0], "_cluster") || is(s[0], "_nodes")) return RT_CLUSTER;
        if (is(s[0], "_bulk")) return RT_BULK;
        if (is(s[0], "_search")) return RT_SEARCH;
        if (is(s[0], "_mget")) return RT_MGET;
        if (is(s[0], "_count")) return RT_COUNT;
        if (is(s[0], "_refresh")) return RT_REFRESH;
        if (is(s[0], "_mapping")) return RT_MAPPING;
        if (is(s[0], "_settings")) return RT_SETTINGS;
        return s[0][0] == '_' ? RT_OTHER : RT_INDEX;
    case 2:
        if (is(s[0], "_alias")) return RT_ALIAS;
        if (is(s[0], "_data_stream")) return RT_DATA_STREAM;
        if (is(s[0], "_search") && is(s[1], "scroll")) return RT_SCROLL;
        if (is(s[1], "_mget")) return RT_MGET;
        if (is(s[0], "_cluster") || is(s[0], "_nodes")) return RT_CLUSTER;
        if (is(s[1], "_bulk")) return RT_INDEX_BULK;
        if (is(s[1], "_search")) return RT_SEARCH;
        if (is(s[1], "_count")) return RT_COUNT;
        if (is(s[1], "_refresh")) return RT_REFRESH;
        if (is(s[1], "_mapping")) return RT_MAPPING;
        if (is(s[1], "_settings")) return RT_SETTINGS;
        if (is(s[1], "_doc")) return RT_DOC; /* POST /{index}/_doc: auto id */
        return RT_OTHER;
    case 3:
        if (is(s[0], "_resolve") && is(s[1], "index")) return RT_RESOLVE;
        if (is(s[0], "_cluster") || is(s[0], "_nodes")) return RT_CLUSTER;
        if (is(s[1], "_doc") || is(s[1], "_create")) return RT_DOC;
        return RT_OTHER;
    default: return is(s[0], "_cluster") || is(s[0], "_nodes") ? RT_CLUSTER : RT_OTHER;
    }
}

void reply_no_handler(struct conn *c, const struct request *r)
{
    char msg[600];

    snprintf(msg, sizeof(msg), "no handler found for uri [%s] and method [%s]", r->path,
             r->method);
    reply_json(c, 400, json_pack("{s:s}", "error", msg), NULL);
}

void route_request(struct conn *c, struct request *r, const struct fault *ifault)
{
    const char *m = r->method;
    char *const *s = r->segs;
    bool get = is(m, "GET") || is(m, "HEAD"), post = is(m, "POST") || is(m, "PUT");

    switch (r->route) {
    case RT_ROOT:
        if (get) {
            handle_root(c);
            return;
        }
        break;
    case RT_BULK:
        if (post) {
            handle_bulk(c, r, NULL, ifault);
            return;
        }
        break;
    case RT_INDEX_BULK:
        if (post) {
            handle_bulk(c, r, s[0], ifault);
            return;
        }
        break;
    case RT_SEARCH:
        if (get || is(m, "POST")) {
            handle_search(c, r, r->nseg == 2 ? s[0] : NULL, false);
            return;
        }
        break;
    case RT_MGET:
        if (get || is(m, "POST")) {
            handle_mget(c, r, r->nseg == 2 ? s[0] : NULL);
            return;
        }
        break;
    case RT_SCROLL:
        if (get || is(m, "POST")) {
            handle_scroll_next(c, r);
            return;
        }
        if (is(m, "DELETE")) {
            handle_scroll_clear(c, r);
            return;
        }
        break;
    case RT_COUNT:
        if (get || is(m, "POST")) {
            handle_search(c, r, r->nseg == 2 ? s[0] : NULL, true);
            return;
        }
        break;
    case RT_MAPPING:
        if (get) {
            handle_mapping(c, r->nseg == 2 ? s[0] : NULL);
            return;
        }
        break;
    case RT_SETTINGS:
        if (get) {
            handle_get_settings(c, r, r->nseg == 2 ? s[0] : NULL);
            return;
        }
        if (is(m, "PUT") && r->nseg == 2) {
            handle_put_settings(c, r, s[0]);
            return;
        }
        break;
    case RT_REFRESH:
        if (get || is(m, "POST")) {
            reply_json(c, 200, json_pack("{s:{s:i, s:i, s:i}}", "_shards", "total", 1,
                                                "successful", 1, "failed", 0), NULL);
            return;
        }
        break;
    case RT_RESOLVE:
        if (get) {
            handle_resolve(c, s[2]);
            return;
        }
        break;
    case RT_ALIAS:
        if (get) {
            handle_get_alias(c, s[1]);
            return;
        }
        break;
    case RT_ALIASES:
        if (is(m, "POST")) {
            handle_aliases(c, r);
            return;
        }
        break;
    case RT_DATA_STREAM:
        if (get || is(m, "PUT") || is(m, "DELETE")) {
            handle_data_stream(c, r, s[1]);
            return;
        }
        break;
    case RT_CLUSTER:
        handle_cluster(c, r);
        return;
    case RT_INDEX:
        if (get || is(m, "PUT") || is(m, "DELETE")) {
            handle_index(c, r, s[0]);
            return;
        }
        break;
    case RT_DOC:
        if (r->nseg == 2 && is(m, "POST")) {
            handle_write_doc(c, r, OP_INDEX, s[0], NULL);
            return;
        }
        if (r->nseg != 3) break;
        if (is(s[1], "_create") && post) {
            handle_write_doc(c, r, OP_CREATE, s[0], s[2]);
            return;
        }
        if (!is(s[1], "_doc")) break;
        if (get) {
            handle_get_doc(c, s[0], s[2]);
            return;
        }
        if (post) {
            handle_write_doc(c, r, OP_INDEX, s[0], s[2]);
            return;
        }
        if (is(m, "DELETE")) {
            handle_write_doc(c, r, OP_DELETE, s[0], s[2]);
            return;
        }
        break;
    default:
        break;
    }
    reply_no_handler(c, r);
}
