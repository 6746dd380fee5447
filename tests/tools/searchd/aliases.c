#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Aliases, data streams, GET /_resolve/index                               */
/*
 * Aliases ("Aliases" in the Elasticsearch and OpenSearch guides): a name
 * for one or more indices, set by PUT /<index> {"aliases": ...} or POST
 * /_aliases; a write goes to its write index: the index marked
 * is_write_index, else its only index unless that one is marked false;
 * with none, the write fails ("no write index is defined for alias",
 * IndexAbstraction.Alias / MetadataIndexAliasesService).  Reads (_search,
 * _count, _settings, _mapping) take every index of an alias.  Filters and
 * routing are not modelled.
 *
 * Data streams ("Data streams" in both guides): created with PUT
 * /_data_stream/<name> (the engines want a matching index template with a
 * "data_stream" object first; the double does not), one hidden backing
 * index .ds-<name>-000001 (no rollover).  A write to the stream must be a
 * create: anything else is refused for the item with 400
 * illegal_argument_exception "only write ops with an op_type of create are
 * allowed in data streams" (TransportBulkAction; DataStreamIT asserts it for
 * index and delete requests).  The @timestamp field is not checked.
 *
 * Names: an index, an alias and a data stream never share one.            */

struct alias *alias_get(const char *name)
{
    struct alias *a = map_get(&srv.aliases, name, strlen(name));

    return a && a->n ? a : NULL;
}

struct dstream *stream_get(const char *name)
{
    struct dstream *d = map_get(&srv.streams, name, strlen(name));

    return d && d->backing ? d : NULL;
}

void alias_free(void *p)
{
    struct alias *a = p;

    for (size_t i = 0; a && i < a->n; i++)
        free(a->links[i].index);
    if (a)
        free(a->links);
    free(a);
}

void stream_free(void *p)
{
    struct dstream *d = p;

    if (d)
        free(d->backing);
    free(d);
}

/* The name is taken by an index, an alias or a data stream (which is it, or NULL). */
static const char *taken(const char *name)
{
    if (index_get(name))
        return "index";
    if (alias_get(name))
        return "alias";
    if (stream_get(name))
        return "data stream";
    return NULL;
}

static struct alias *alias_make(const char *name)
{
    struct alias *a = map_get(&srv.aliases, name, strlen(name));

    if (!a) {
        a = calloc(1, sizeof(*a));
        if (!a || !(a->name = map_put(&srv.aliases, name, strlen(name), a))) {
            free(a);
            return NULL;
        }
    }
    return a;
}

static void link_remove(struct alias *a, size_t i)
{
    free(a->links[i].index);
    memmove(&a->links[i], &a->links[i + 1], (a->n - i - 1) * sizeof(a->links[0]));
    a->n--;
}

static ssize_t link_find(const struct alias *a, const char *index)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->links[i].index, index) == 0)
            return (ssize_t)i;
    return -1;
}

/* Adds (or updates) the link index -> alias.  0 or -ENOMEM. */
static int link_set(const char *alias, const char *index, int is_write)
{
    struct alias *a = alias_make(alias);
    ssize_t i = link_find(a, index);
    struct alias_link *n;

    if (!a)
        return -ENOMEM;
    if (i >= 0) {
        a->links[i].is_write = is_write;
    } else {
        if (!(n = realloc(a->links, (a->n + 1) * sizeof(*n))))
            return -ENOMEM;
        a->links = n;
        if (!(n[a->n].index = strdup(index)))
            return -ENOMEM;
        n[a->n].is_write = is_write;
        a->n++;
    }
    /* one write index per alias: marking another one moves it */
    if (is_write == 1)
        for (size_t k = 0; k < a->n; k++)
            if (strcmp(a->links[k].index, index) != 0 && a->links[k].is_write == 1)
                a->links[k].is_write = -1;
    return 0;
}

void aliases_drop_index(const char *index)
{
    for (size_t i = 0; i < srv.aliases.cap; i++) {
        struct alias *a = srv.aliases.slots[i].key ? srv.aliases.slots[i].val : NULL;
        ssize_t k = link_find(a, index);

        if (k >= 0)
            link_remove(a, (size_t)k);
    }
}

/* The write index of a, or NULL. */
static const char *write_index(const struct alias *a)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->links[i].is_write == 1)
            return a->links[i].index;
    return a->n == 1 && a->links[0].is_write != 0 ? a->links[0].index : NULL;
}

/* One alias definition ({} or {"is_write_index": bool}) as AliasMetadata
 * reads it; *is_write gets -1, 0 or 1. */
static json_t *alias_def(const char *alias, const json_t *def, int *is_write)
{
    const char *k;
    json_t *v;

    *is_write = -1;
    if (!json_is_object(def))
        return errf("parse_exception", "key [%s] must be an object", alias);
    json_object_foreach((json_t *)def, k, v) {
        if (strcmp(k, "is_write_index") == 0 && json_is_boolean(v))
            *is_write = json_is_true(v);
        else
            return unmodelled("alias parameter [%s]", k);
    }
    return NULL;
}

/* The aliases of index as GET /<index> shows them: {"<alias>":{...}}. */
json_t *aliases_of(const char *index)
{
    json_t *out = json_object();

    for (size_t i = 0; i < srv.aliases.cap; i++) {
        struct alias *a = srv.aliases.slots[i].key ? srv.aliases.slots[i].val : NULL;
        ssize_t k = link_find(a, index);
        json_t *def;

        if (k < 0)
            continue;
        def = json_object();
        if (a->links[k].is_write >= 0)
            json_object_set_new(def, "is_write_index", json_boolean(a->links[k].is_write));
        json_object_set_new(out, a->name, def);
    }
    return out;
}

/* The "aliases" of PUT /<index> for index (which exists unless check_only):
 * checked, then set unless check_only.  NULL, or the error. */
json_t *aliases_add(const char *index, const json_t *aliases, bool check_only)
{
    const char *name, *what;
    json_t *def, *e;
    int w;

    if (!json_is_object(aliases))
        return errf("parse_exception", "key [aliases] must be an object");
    json_object_foreach((json_t *)aliases, name, def) {
        if ((e = alias_def(name, def, &w)))
            return e;
        if (strcmp(name, index) == 0 || ((what = taken(name)) && strcmp(what, "alias") != 0))
            return errf("invalid_alias_name_exception",
                        "Invalid alias name [%s]: an index or data stream exists with the same "
                        "name as the alias", name);
        if (!check_only && link_set(name, index, w) < 0)
            return err_obj("exception", "out of memory");
    }
    return NULL;
}

/* Where a write to o->index lands: an alias's write index, a data stream's
 * backing index (create only), else the name itself.  o->index (and
 * res->index, which borrows it) become the concrete index.  NULL, or the
 * item's error. */
json_t *write_target(struct op *o, struct item_res *res)
{
    struct alias *a = alias_get(o->index);
    struct dstream *d = a ? NULL : stream_get(o->index);
    const char *to;
    char *n;

    if (!a && !d)
        return NULL;
    if (a && !(to = write_index(a)))
        return errf("illegal_argument_exception",
                    "no write index is defined for alias [%s]. The write index may be explicitly "
                    "disabled using is_write_index=false or the alias points to multiple indices "
                    "without one being designated as a write index", o->index);
    if (d && o->type != OP_CREATE)
        return err_obj("illegal_argument_exception",
                       "only write ops with an op_type of create are allowed in data streams");
    if (d)
        to = d->backing;
    if (!(n = strdup(to)))
        return err_obj("exception", "out of memory");
    free(o->index);
    o->index = n;
    res->index = n;
    return NULL;
}

/* ---- GET /_resolve/index/<expr> ------------------------------------------
 * As ResolveIndexAction answers it ("Resolve index API"): the indices,
 * aliases and data streams the expression names, each list sorted by name;
 * an index with its aliases, its attributes ("open"; "hidden" for a
 * backing index) and its data stream.  A concrete name that matches
 * nothing: 404 index_not_found_exception; a wildcard may match nothing, and
 * matches no hidden index. */

static int cmp_json_name(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

static json_t *sorted_by_name(json_t *arr)
{
    size_t n = json_array_size(arr);
    json_t **v = malloc((n + 1) * sizeof(*v)), *out = json_array();

    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(arr, i);
    if (v)
        qsort(v, n, sizeof(*v), cmp_json_name);
    for (size_t i = 0; v && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(arr);
    return out;
}

static bool listed(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return true;
    return false;
}

static json_t *index_entry(const struct index *ix)
{
    json_t *names = json_array(), *e;
    const char *stream = NULL;

    for (size_t i = 0; i < srv.aliases.cap; i++) {
        struct alias *a = srv.aliases.slots[i].key ? srv.aliases.slots[i].val : NULL;

        if (a && link_find(a, ix->name) >= 0)
            json_array_append_new(names, json_string(a->name));
    }
    for (size_t i = 0; i < srv.streams.cap; i++) {
        struct dstream *d = srv.streams.slots[i].key ? srv.streams.slots[i].val : NULL;

        if (d && d->backing && strcmp(d->backing, ix->name) == 0)
            stream = d->name;
    }
    e = json_pack("{s:s}", "name", ix->name);
    if (json_array_size(names))
        json_object_set_new(e, "aliases", names);
    else
        json_decref(names);
    json_object_set_new(e, "attributes", stream ? json_pack("[s, s]", "hidden", "open")
                                                : json_pack("[s]", "open"));
    if (stream)
        json_object_set_new(e, "data_stream", json_string(stream));
    return e;
}

static json_t *alias_entry(const struct alias *a)
{
    json_t *ixs = json_array();

    for (size_t i = 0; i < a->n; i++)
        json_array_append_new(ixs, json_string(a->links[i].index));
    return json_pack("{s:s, s:o}", "name", a->name, "indices", ixs);
}

static json_t *stream_entry(const struct dstream *d)
{
    return json_pack("{s:s, s:[s], s:s}", "name", d->name, "backing_indices", d->backing,
                     "timestamp_field", "@timestamp");
}

void handle_resolve(struct conn *c, const char *expr)
{
    json_t *ixs = json_array(), *als = json_array(), *dss = json_array();
    char *copy = strdup(expr), *save = NULL;

    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        bool wild = strchr(t, '*') || strcmp(t, "_all") == 0, any = false;
        const char *pat = strcmp(t, "_all") == 0 ? "*" : t;

        for (size_t i = 0; i < srv.indices.cap; i++) {
            struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;

            if (!ix || !ix->exists || (wild ? ix->name[0] == '.' || !glob_match(pat, ix->name)
                                            : strcmp(t, ix->name) != 0))
                continue;
            any = true;
            if (!listed(ixs, ix->name))
                json_array_append_new(ixs, index_entry(ix));
        }
        for (size_t i = 0; i < srv.aliases.cap; i++) {
            struct alias *a = srv.aliases.slots[i].key ? srv.aliases.slots[i].val : NULL;

            if (!a || !a->n || (wild ? !glob_match(pat, a->name) : strcmp(t, a->name) != 0))
                continue;
            any = true;
            if (!listed(als, a->name))
                json_array_append_new(als, alias_entry(a));
        }
        for (size_t i = 0; i < srv.streams.cap; i++) {
            struct dstream *d = srv.streams.slots[i].key ? srv.streams.slots[i].val : NULL;

            if (!d || !d->backing || (wild ? !glob_match(pat, d->name) : strcmp(t, d->name) != 0))
                continue;
            any = true;
            if (!listed(dss, d->name))
                json_array_append_new(dss, stream_entry(d));
        }
        if (!any && !wild) {
            reply_index_missing(c, t);
            free(copy);
            json_decref(ixs);
            json_decref(als);
            json_decref(dss);
            return;
        }
    }
    free(copy);
    reply_json(c, 200, json_pack("{s:o, s:o, s:o}", "indices", sorted_by_name(ixs), "aliases",
                                 sorted_by_name(als), "data_streams", sorted_by_name(dss)), NULL);
}

/* GET /_alias/<name>: {"<index>":{"aliases":{"<name>":{...}}}} per index,
 * is_write_index shown only when set (AliasMetadata#toXContent); an alias
 * that does not exist: 404 {"error":"alias [<name>] missing","status":404}
 * (RestGetAliasesAction). */
void handle_get_alias(struct conn *c, const char *name)
{
    struct alias *a = alias_get(name);
    json_t *out;
    char msg[300];

    if (!a) {
        snprintf(msg, sizeof(msg), "alias [%s] missing", name);
        reply_json(c, 404, json_pack("{s:s, s:i}", "error", msg, "status", 404), NULL);
        return;
    }
    out = json_object();
    for (size_t i = 0; i < a->n; i++) {
        json_t *def = json_object();

        if (a->links[i].is_write >= 0)
            json_object_set_new(def, "is_write_index", json_boolean(a->links[i].is_write));
        json_object_set_new(out, a->links[i].index,
                            json_pack("{s:{s:o}}", "aliases", a->name, def));
    }
    reply_json(c, 200, out, NULL);
}

/* POST /_aliases {"actions":[{"add":{"index","alias","is_write_index"}},
 * {"remove":{"index","alias"}},{"remove_index":{"index"}}]}: all checked,
 * then all applied (the engines apply the actions atomically).
 *
 * remove_index deletes a concrete index in the same request, so that an
 * index can be replaced by an alias of its name ("Update aliases and delete
 * indices atomically", POST /_aliases in the Elasticsearch API reference:
 * "Every remove_index action in the request runs first, before any add or
 * remove actions"; elastic/elasticsearch#20064, since 5.0; the OpenSearch
 * Alias API lists it too).  An alias or a data stream named there is
 * refused (illegal_argument_exception, as MetadataIndexAliasesService's
 * "The provided expression [x] matches an alias, specify the corresponding
 * concrete indices instead."), a missing index is 404.  Other actions are
 * not modelled. */

static bool named_in(json_t *names, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(names, i, v)
        if (strcmp(json_string_value(v), name) == 0)
            return true;
    return false;
}

void handle_aliases(struct conn *c, const struct request *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->data, r->data_len, 0, &jerr), *acts, *act, *e = NULL;
    json_t *removed = json_array();
    size_t i;

    acts = json_object_get(j, "actions");
    if (!json_is_array(acts) || !json_array_size(acts)) {
        json_decref(j);
        json_decref(removed);
        reply_error(c, 400, "action_request_validation_exception",
                    "Validation Failed: 1: no actions;");
        return;
    }
    /* remove_index first: the other actions see the index gone. */
    json_array_foreach(acts, i, act) {
        const char *op = json_object_iter_key(json_object_iter(act));
        json_t *body = json_object_iter_value(json_object_iter(act));
        const char *index = json_string_value(json_object_get(body, "index"));

        if (!op || strcmp(op, "remove_index") != 0)
            continue;
        if (!index) {
            e = errf("action_request_validation_exception",
                     "Validation Failed: 1: [remove_index] requires an [index];");
        } else if (alias_get(index) || stream_get(index)) {
            e = errf("illegal_argument_exception", "The provided expression [%s] matches an "
                     "%s, specify the corresponding concrete indices instead.", index,
                     alias_get(index) ? "alias" : "data stream");
        } else if (!index_get(index)) {
            reply_index_missing(c, index);
            json_decref(j);
            json_decref(removed);
            return;
        } else {
            json_array_append_new(removed, json_string(index));
        }
        if (e)
            break;
    }
    for (int apply = 0; apply < 2 && !e; apply++) {
        if (apply)
            json_array_foreach(removed, i, act)
                index_drop(index_get(json_string_value(act)));
        json_array_foreach(acts, i, act) {
            const char *op = json_object_iter_key(json_object_iter(act));
            json_t *body = json_object_iter_value(json_object_iter(act));
            const char *index = json_string_value(json_object_get(body, "index"));
            const char *alias = json_string_value(json_object_get(body, "alias"));
            const char *what;
            int w = -1;

            if (op && strcmp(op, "remove_index") == 0)
                continue;
            if (!op || (strcmp(op, "add") != 0 && strcmp(op, "remove") != 0)) {
                e = unmodelled("alias action [%s]", op ? op : "");
            } else if (!index || !alias) {
                e = errf("action_request_validation_exception",
                         "Validation Failed: 1: [%s] requires an [index] and an [alias];", op);
            } else if (!index_get(index) || (!apply && named_in(removed, index))) {
                reply_index_missing(c, index);
                json_decref(j);
                json_decref(removed);
                return;
            } else if (strcmp(op, "add") == 0) {
                json_t *def = json_deep_copy(body);

                json_object_del(def, "index");
                json_object_del(def, "alias");
                e = alias_def(alias, def, &w);
                json_decref(def);
                what = taken(alias);
                if (!e && what && strcmp(what, "alias") != 0 &&
                    !(!apply && strcmp(what, "index") == 0 && named_in(removed, alias)))
                    e = errf("invalid_alias_name_exception", "Invalid alias name [%s]: an index "
                             "or data stream exists with the same name as the alias", alias);
                if (!e && apply && link_set(alias, index, w) < 0)
                    e = err_obj("exception", "out of memory");
            } else if (link_find(alias_get(alias), index) < 0) {
                char why[300];

                snprintf(why, sizeof(why), "aliases [%s] missing", alias);
                e = json_pack("{s:s, s:s, s:s}", "type", "aliases_not_found_exception", "reason",
                              why, "resource.id", alias);
            } else if (apply) {
                link_remove(alias_get(alias), (size_t)link_find(alias_get(alias), index));
            }
            if (e)
                break;
        }
    }
    json_decref(j);
    json_decref(removed);
    if (e)
        reply_json(c, 400, es_error_body(400, e), NULL);
    else
        reply_json(c, 200, json_pack("{s:b, s:b}", "acknowledged", true, "errors", false), NULL);
}

/* PUT, GET and DELETE /_data_stream/<name>. */
void handle_data_stream(struct conn *c, const struct request *r, const char *name)
{
    struct dstream *d = stream_get(name);
    char backing[300], why[400];

    if (is(r->method, "PUT")) {
        const char *what = taken(name);

        if (what) {
            snprintf(why, sizeof(why), "%s [%s] already exists",
                     strcmp(what, "data stream") == 0 ? "data_stream" : what, name);
            reply_json(c, 400, es_error_body(400, err_obj("resource_already_exists_exception",
                                                          why)), NULL);
            return;
        }
        if (!valid_index_name(name, why, sizeof(why))) {
            reply_error(c, 400, "invalid_index_name_exception", why);
            return;
        }
        snprintf(backing, sizeof(backing), ".ds-%s-000001", name);
        d = map_get(&srv.streams, name, strlen(name));
        if (!d && (d = calloc(1, sizeof(*d))) &&
            !(d->name = map_put(&srv.streams, name, strlen(name), d))) {
            free(d);
            d = NULL;
        }
        if (!d || !(d->backing = strdup(backing)) || !index_create(backing)) {
            reply_error(c, 500, "exception", "out of memory");
            return;
        }
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    if (!d) {
        snprintf(why, sizeof(why), "no such index [%s]", name);
        reply_json(c, 404, es_error_body(404, json_pack("{s:s, s:s, s:s}", "type",
                                                        "index_not_found_exception", "reason",
                                                        why, "index", name)), NULL);
        return;
    }
    if (is(r->method, "DELETE")) {
        struct index *ix = index_get(d->backing);

        if (ix)
            index_drop(ix);
        free(d->backing);
        d->backing = NULL;
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    reply_json(c, 200, json_pack("{s:[{s:s, s:{s:s}, s:[{s:s}], s:i, s:s}]}", "data_streams",
                                 "name", d->name, "timestamp_field", "name", "@timestamp",
                                 "indices", "index_name", d->backing, "generation", 1, "status",
                                 "GREEN"), NULL);
}
