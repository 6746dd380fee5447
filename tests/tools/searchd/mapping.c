#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Explicit mappings: the body of PUT /<index>
 *
 * {"settings": ..., "mappings": {...}} as the engines' mapping parsers read
 * it (DocumentMapperParser, RootObjectMapper.TypeParser, ObjectMapper
 * .TypeParser#parseProperties, ParametrizedFieldMapper.Builder#parse,
 * TypeParsers#parseMultiField, DynamicTemplate#parse), with their error
 * texts.  Field types the double models: object, text, keyword, long,
 * integer, short, byte, double, float, boolean, date.  A valid mapping the
 * double cannot model (other types, copy_to, coerce false, date formats,
 * runtime fields, ...) is refused with the type below, never silently taken.
 * Of the settings only the mapping limits are read (index settings, below). */

#define UNMODELLED "search_double_unsupported_exception"

/* The field types each engine registers (core and the plugins of a default
 * distribution / Amazon OpenSearch Service) beyond those modelled. */
static const char *const other_types_both[] = {
    "nested", "half_float", "scaled_float", "unsigned_long", "date_nanos", "binary", "ip",
    "geo_point", "geo_shape", "completion", "search_as_you_type", "token_count", "rank_feature",
    "rank_features", "alias", "join", "percolator", "integer_range", "long_range", "float_range",
    "double_range", "date_range", "ip_range", "constant_keyword", "wildcard", "match_only_text",
    "murmur3", "icu_collation_keyword", "annotated_text", NULL
};
static const char *const other_types_os2[] = { "flat_object", "knn_vector", "xy_point",
                                               "xy_shape", "derived", "star_tree", NULL };
static const char *const other_types_es8[] = {
    "flattened", "dense_vector", "sparse_vector", "semantic_text", "aggregate_metric_double",
    "histogram", "version", "point", "shape", "counted_keyword", "passthrough", NULL
};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

static enum ftype modelled_type(const char *type)
{
    for (int t = FT_OBJECT; t < FT_N; t++)
        if (strcmp(ftype_name[t], type) == 0)
            return (enum ftype)t;
    return FT_NONE;
}

bool known_type(enum flavor fl, const char *type)
{
    return modelled_type(type) != FT_NONE || in_list(other_types_both, type) ||
           in_list(fl == FL_ES8 ? other_types_es8 : other_types_os2, type);
}
json_t *unmodelled(const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "the search double does not model ");
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(UNMODELLED, &b, NULL);
    buf_close(&b);
    return e;
}

/* A mapping value as Java prints it (Object#toString of what the parser made
 * of it: strings as they are, maps {k=v}, lists [a, b]). */
void java_str(const json_t *v, struct buf *out)
{
    char *t;

    if (json_is_string(v)) {
        buf_append(out, json_string_value(v), json_string_length(v));
        return;
    }
    if (!(t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)))
        return;
    render(t, t + strlen(t), out);
    free(t);
}

/* XContentMapValues#nodeBooleanValue(node, name): a JSON boolean or the
 * strings true and false (Booleans#parseBoolean). */
static json_t *node_bool(const json_t *v, const char *name, bool *out)
{
    struct buf s, r;
    json_t *e;

    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return NULL;
    }
    buf_init(&s, BUF_NOMAX);
    java_str(v, &s);
    if (s.len == 4 && memcmp(s.ptr, "true", 4) == 0)
        *out = true;
    else if (s.len == 5 && memcmp(s.ptr, "false", 5) == 0)
        *out = false;
    else
        goto bad;
    buf_close(&s);
    return NULL;
bad:
    buf_init(&r, BUF_NOMAX);
    buf_puts(&r, "Failed to parse value [");
    buf_append(&r, s.ptr, s.len);
    buf_puts(&r, "] as only [true] or [false] are allowed.");
    e = err_text("illegal_argument_exception", &r, NULL);
    if (name) {
        json_t *w = errf("illegal_argument_exception", "Could not convert [%s] to boolean", name);
        json_object_set_new(w, "caused_by", e);
        e = w;
    }
    buf_close(&r);
    buf_close(&s);
    return e;
}

/* DocumentMapperParser#checkNoRemainingFields: "<what> has unsupported
 * parameters:  [k : v] [k : v]" for the keys of obj not in taken. */
static json_t *remaining(const char *what, const json_t *obj, const char *const *taken)
{
    struct buf r;
    const char *k;
    json_t *v, *e = NULL;
    bool left = false;

    buf_init(&r, BUF_NOMAX);
    buf_puts(&r, what);
    buf_puts(&r, " has unsupported parameters: ");
    json_object_foreach((json_t *)obj, k, v) {
        if (in_list(taken, k))
            continue;
        buf_printf(&r, " [%s : ", k);
        java_str(v, &r);
        buf_putc(&r, ']');
        left = true;
    }
    if (left)
        e = err_text("mapper_parsing_exception", &r, NULL);
    buf_close(&r);
    return e;
}

/* "dynamic" (ObjectMapper.TypeParser#parseObjectOrDocumentTypeProperties):
 * strict in any case, else a boolean. */
static json_t *parse_dyn(enum flavor fl, const json_t *v, enum dyn *out)
{
    struct buf s;
    bool b;
    json_t *e = NULL;

    buf_init(&s, BUF_NOMAX);
    java_str(v, &s);
    if (s.ptr && strcasecmp(s.ptr, "strict") == 0)
        *out = DYN_STRICT;
    else if (s.ptr && (fl == FL_ES8 ? strcasecmp(s.ptr, "runtime") == 0
                                    : (strcasecmp(s.ptr, "strict_allow_templates") == 0 ||
                                       strcasecmp(s.ptr, "false_allow_templates") == 0)))
        e = unmodelled("\"dynamic\": \"%s\"", s.ptr);
    else if (!(e = node_bool(v, "dynamic.dynamic", &b)))
        *out = b ? DYN_TRUE : DYN_FALSE;
    buf_close(&s);
    return e;
}

/* The parameters each modelled field type declares (ParametrizedFieldMapper
 * Builder#getParameters of NumberFieldMapper, KeywordFieldMapper,
 * TextFieldMapper, BooleanFieldMapper, DateFieldMapper), os2 and es8
 * together; os2 also takes boost and the parameters every field once
 * parsed (Builder#isDeprecatedParameter). */
static const char *const params_number[] = { "index", "doc_values", "store", "ignore_malformed",
                                             "coerce", "null_value", "meta", NULL };
static const char *const params_keyword[] = {
    "index", "doc_values", "store", "null_value", "ignore_above", "index_options",
    "eager_global_ordinals", "norms", "similarity", "normalizer", "split_queries_on_whitespace",
    "meta", NULL
};
static const char *const params_text[] = {
    "index", "store", "index_options", "norms", "term_vector", "analyzer", "search_analyzer",
    "search_quote_analyzer", "position_increment_gap", "similarity", "fielddata",
    "fielddata_frequency_filter", "eager_global_ordinals", "index_phrases", "index_prefixes",
    "meta", NULL
};
static const char *const params_boolean[] = { "index", "doc_values", "store", "null_value",
                                              "meta", NULL };
static const char *const params_date[] = { "index", "doc_values", "store", "format", "locale",
                                           "null_value", "ignore_malformed", "meta", NULL };
static const char *const params_os2_any[] = { "store", "meta", "boost", "index", "doc_values",
                                              "index_options", "similarity", NULL };
static const char *const params_es8_scripts[] = { "script", "on_script_error", NULL };
static const char *const params_es8_ts[] = { "time_series_dimension", "time_series_metric",
                                             NULL };

static const char *const *params_of(enum ftype t)
{
    switch (t) {
    case FT_KEYWORD: return params_keyword;
    case FT_TEXT: return params_text;
    case FT_BOOLEAN: return params_boolean;
    case FT_DATE: return params_date;
    default: return params_number;
    }
}

static json_t *define_props(enum flavor fl, struct map *into, const char *path, size_t plen,
                            const json_t *props);

/* An object's definition (ObjectMapper.TypeParser#parse).  lenient: keys it
 * does not know are ignored, as when a dynamic template's mapping makes it
 * (RootObjectMapper#findTemplateBuilder checks nothing left). */
static json_t *define_object(enum flavor fl, struct map *into, const char *path, size_t plen,
                             const char *key, size_t klen, json_t *def, bool lenient,
                             struct field *f)
{
    /* os2 still takes include_in_all (deprecated) */
    static const char *const taken[] = { "include_in_all", "type", "properties", "dynamic",
                                         "enabled", NULL };
    json_t *v, *e;
    char what[300];

    if ((v = json_object_get(def, "dynamic")) && (e = parse_dyn(fl, v, &f->dynamic)))
        return e;
    if ((v = json_object_get(def, "enabled"))) {
        bool on;
        if ((e = node_bool(v, "enabled.enabled", &on)))
            return e;
        f->disabled = !on;
    }
    if (fl == FL_ES8 && json_object_get(def, "subobjects"))
        return unmodelled("\"subobjects\" (field [%.*s])", (int)klen, key);
    if ((v = json_object_get(def, "properties")) && (e = define_props(fl, into, path, plen, v)))
        return e;
    if (lenient)
        return NULL;
    snprintf(what, sizeof(what), "Mapping definition for [%.*s]", (int)klen, key);
    return remaining(what, def, fl == FL_ES8 ? taken + 1 : taken);
}

/* A field's definition (ParametrizedFieldMapper.Builder#parse; multi: one
 * of another field's "fields", TypeParsers#parseMultiField). */
static json_t *define_leaf(enum flavor fl, const char *path, size_t plen, const char *key,
                           size_t klen, const char *type, json_t *def, bool multi,
                           struct field *f)
{
    const char *const *params = params_of(f->type);
    const char *k;
    json_t *v, *e;

    json_object_foreach(def, k, v) {
        if (strcmp(k, "type") == 0)
            continue;
        if (strcmp(k, "fields") == 0) {
            size_t n = 0;
            const char *mk;
            json_t *mv;
            if (json_is_array(v) && json_array_size(v) == 0)
                continue;
            if (!json_is_object(v)) {
                struct buf b;
                buf_init(&b, BUF_NOMAX);
                java_str(v, &b);
                e = errf("mapper_parsing_exception", "expected map for property [fields] on "
                         "field [%s] or [fields] but got a class java.lang.%s",
                         b.ptr ? b.ptr : "", json_is_string(v) ? "String" : json_is_integer(v)
                         ? "Integer" : json_is_boolean(v) ? "Boolean" : "Object");
                buf_close(&b);
                return e;
            }
            if (multi)
                return unmodelled("multi-fields inside multi-fields (field [%.*s])", (int)klen,
                                  key);
            if (!(f->sub = calloc(json_object_size(v), sizeof(*f->sub))))
                return err_obj("exception", "out of memory");
            json_object_foreach(v, mk, mv) {
                struct buf full;
                json_t *t;
                const char *ts;
                if (strchr(mk, '.'))
                    return errf("mapper_parsing_exception", "Field name [%s] which is a multi "
                                "field of [%.*s] cannot contain '.'", mk, (int)klen, key);
                if (!json_is_object(mv))
                    return errf("mapper_parsing_exception", "illegal field [%s], only fields "
                                "can be specified inside fields", mk);
                if (!(t = json_object_get(mv, "type")))
                    return errf("mapper_parsing_exception", "no type specified for property "
                                "[%s]", mk);
                ts = json_string_value(t);
                if (ts && (strcmp(ts, "object") == 0 || strcmp(ts, "nested") == 0))
                    return errf("mapper_parsing_exception", "Type [%s] cannot be used in multi "
                                "field", ts);
                if (!ts || !known_type(fl, ts)) {
                    struct buf b;
                    buf_init(&b, BUF_NOMAX);
                    java_str(t, &b);
                    e = errf("mapper_parsing_exception", "no handler for type [%s] declared on "
                             "field [%s]", b.ptr ? b.ptr : "", mk);
                    buf_close(&b);
                    return e;
                }
                if (modelled_type(ts) == FT_NONE)
                    return unmodelled("type [%s] (field [%.*s.%s])", ts, (int)klen, key, mk);
                if (!(f->sub[n] = calloc(1, sizeof(**f->sub))))
                    return err_obj("exception", "out of memory");
                f->nsub = ++n;
                f->sub[n - 1]->type = modelled_type(ts);
                f->sub[n - 1]->ignore_above = -1;
                buf_init(&full, BUF_NOMAX);
                buf_append(&full, path, plen);
                buf_putc(&full, '.');
                buf_puts(&full, mk);
                f->sub[n - 1]->name = buf_take(&full);
                if ((e = define_leaf(fl, f->sub[n - 1]->name, strlen(f->sub[n - 1]->name), mk,
                                     strlen(mk), ts, mv, true, f->sub[n - 1])))
                    return e;
            }
            continue;
        }
        if (strcmp(k, "copy_to") == 0)
            return unmodelled("copy_to (field [%.*s])", (int)klen, key);
        if (fl == FL_ES8 && strcmp(k, "boost") == 0)
            return errf("mapper_parsing_exception", "Unknown parameter [boost] on mapper [%.*s]",
                        (int)klen, key);
        if (!in_list(params, k) && !(fl == FL_OS2 && in_list(params_os2_any, k)) &&
            !(fl == FL_ES8 && f->type != FT_TEXT && in_list(params_es8_scripts, k)) &&
            !(fl == FL_ES8 && in_list(params_es8_ts, k)) &&
            !(fl == FL_OS2 && f->type == FT_DATE && strcmp(k, "print_format") == 0))
            return errf("mapper_parsing_exception", "unknown parameter [%s] on mapper [%.*s] of "
                        "type [%s]", k, (int)klen, key, type);
        if (json_is_null(v) && strcmp(k, "null_value") != 0)
            return errf("mapper_parsing_exception", "[%s] on mapper [%.*s] of type [%s] must not "
                        "have a [null] value", k, (int)klen, key, type);
        if (in_list(params_es8_scripts, k))
            return unmodelled("runtime scripts (field [%.*s])", (int)klen, key);
        if (strcmp(k, "ignore_malformed") == 0 && (e = node_bool(v, NULL, &f->ignore_malformed)))
            return e;
        /* TextFieldMapper: each makes a hidden field (counted by os2) */
        if (f->type == FT_TEXT && ((strcmp(k, "index_prefixes") == 0 && json_is_object(v)) ||
                                   (strcmp(k, "index_phrases") == 0 &&
                                    (json_is_true(v) || (json_is_string(v) &&
                                                         strcmp(json_string_value(v),
                                                                "true") == 0)))))
            f->hidden++;
        if (strcmp(k, "coerce") == 0) {
            bool on;
            if ((e = node_bool(v, NULL, &on)))
                return e;
            if (!on)
                return unmodelled("\"coerce\": false (field [%.*s])", (int)klen, key);
        }
        if (strcmp(k, "ignore_above") == 0) {
            struct buf b;
            char *end;
            if (json_is_integer(v)) {
                f->ignore_above = (long)json_integer_value(v);
                continue;
            }
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            errno = 0;
            f->ignore_above = b.ptr ? strtol(b.ptr, &end, 10) : 0;
            if (!b.ptr || !*b.ptr || *end || errno || f->ignore_above > INT_MAX ||
                f->ignore_above < INT_MIN) {
                e = for_input_string("number_format_exception", &b);
                buf_close(&b);
                return e;
            }
            buf_close(&b);
        }
        if (strcmp(k, "format") == 0 &&
            !(json_is_string(v) && strcmp(json_string_value(v),
                                          "strict_date_optional_time||epoch_millis") == 0))
            return unmodelled("date formats other than strict_date_optional_time||epoch_millis "
                              "(field [%.*s])", (int)klen, key);
    }
    return NULL;
}

/* A key with a value (Map#get of a JSON null is null too). */
static bool present(const json_t *v)
{
    return v && !json_is_null(v);
}

/* Parses the definition of the field at the path [0..plen), whose name as
 * written in its parent's properties is key[0..klen), into *out (owned by
 * the caller even on failure).  An object's properties join into (a scratch
 * map when into is NULL: checked, then dropped); lenient: see
 * define_object.  NULL, or the exception the engine throws. */
json_t *define(enum flavor fl, struct map *into, const char *path, size_t plen,
               const char *key, size_t klen, json_t *def, bool lenient,
               struct field **out)
{
    json_t *tn = json_object_get(def, "type"), *e;
    struct field *f = calloc(1, sizeof(*f));
    const char *type;
    struct buf tb;

    *out = f;
    if (!f)
        return err_obj("exception", "out of memory");
    f->ignore_above = -1;
    buf_init(&tb, BUF_NOMAX);
    if (tn) {
        java_str(tn, &tb);
        type = tb.ptr ? tb.ptr : "";
    } else if (present(json_object_get(def, "properties")) ||
               (json_object_size(def) == 1 && present(json_object_get(def, "enabled")))) {
        type = "object";
    } else {
        buf_close(&tb);
        return errf("mapper_parsing_exception", "No type specified for field [%.*s]", (int)klen,
                    key);
    }
    f->type = modelled_type(type);
    if (f->type == FT_OBJECT) {
        struct map scratch = { 0 };
        e = define_object(fl, into ? into : &scratch, path, plen, key, klen, def, lenient, f);
        map_clear(&scratch, field_free);
    } else if (f->type != FT_NONE) {
        e = define_leaf(fl, path, plen, key, klen, type, def, false, f);
        if (!e)
            f->def = json_deep_copy(def);
    } else if (known_type(fl, type)) {
        e = unmodelled("type [%s] (field [%.*s])", type, (int)klen, key);
    } else {
        e = errf("mapper_parsing_exception", "No handler for type [%s] declared on field [%.*s]",
                 type, (int)klen, key);
    }
    buf_close(&tb);
    return e;
}

/* Puts f at the path into the map, merging with what is there
 * (ObjectMapper.Builder#build: a name twice merges; two objects merge,
 * an object and a field or two field types cannot).  Takes f. */
static json_t *put_field(struct map *into, const char *path, size_t plen, struct field *f)
{
    struct field *old = map_get(into, path, plen);
    json_t *e = NULL;

    if (!old) {
        if (!map_put(into, path, plen, f)) {
            field_free(f);
            return err_obj("exception", "out of memory");
        }
        return NULL;
    }
    if ((old->type == FT_OBJECT) != (f->type == FT_OBJECT))
        e = errf("illegal_argument_exception", "can't merge a non object mapping [%.*s] with an "
                 "object mapping", (int)plen, path);
    else if (old->type != f->type)
        e = errf("illegal_argument_exception", "mapper [%.*s] cannot be changed from type [%s] to "
                 "[%s]", (int)plen, path, ftype_name[old->type], ftype_name[f->type]);
    else if (f->type == FT_OBJECT) {
        if (f->dynamic != DYN_UNSET)
            old->dynamic = f->dynamic;
        old->disabled = f->disabled;
    }
    field_free(f);
    return e;
}

/* ObjectMapper.TypeParser#parseProperties: each property of the object at
 * the path [0..plen); a dotted name is the path of objects it names. */
static json_t *define_props(enum flavor fl, struct map *into, const char *path, size_t plen,
                            const json_t *props)
{
    const char *key;
    size_t klen;
    json_t *def, *e = NULL;
    struct buf full;

    if (json_is_array(props) && json_array_size(props) == 0)
        return NULL;
    if (!json_is_object(props))
        return errf("parse_exception", "properties must be a map type");
    buf_init(&full, BUF_NOMAX);
    json_object_keylen_foreach((json_t *)props, key, klen, def) {
        size_t end = klen, s = 0, leaf;
        struct field *f;
        if (json_is_array(def) && json_array_size(def) == 0)
            continue;
        if (!json_is_object(def)) {
            e = errf("mapper_parsing_exception", "Expected map for property [fields] on field "
                     "[%.*s] but got a class java.lang.String", (int)klen, key);
            break;
        }
        /* String#split("\\.") drops trailing empty parts */
        while (end > 0 && key[end - 1] == '.')
            end--;
        if (end == 0 && klen > 0) {
            e = errf("mapper_parsing_exception", "Invalid field name %.*s", (int)klen, key);
            break;
        }
        buf_reset(&full);
        buf_append(&full, path, plen);
        for (;;) {
            const char *q = memchr(key + s, '.', end - s);
            size_t e2 = q ? (size_t)(q - key) : end;
            if (e2 == s) {
                e = errf("illegal_argument_exception", "name cannot be empty string");
                break;
            }
            if (full.len)
                buf_putc(&full, '.');
            buf_append(&full, key + s, e2 - s);
            if (!q)
                break;
            /* an intermediate object (ObjectMapper.Builder) */
            struct field *o = calloc(1, sizeof(*o));
            if (!o) {
                e = err_obj("exception", "out of memory");
                break;
            }
            o->type = FT_OBJECT;
            o->ignore_above = -1;
            if ((e = put_field(into, full.ptr, full.len, o)))
                break;
            s = e2 + 1;
        }
        if (e)
            break;
        leaf = s;
        e = define(fl, into, full.ptr, full.len, key + leaf, end - leaf, def, false, &f);
        if (e) {
            field_free(f);
            break;
        }
        if ((e = put_field(into, full.ptr, full.len, f)))
            break;
    }
    buf_close(&full);
    return e;
}

/* The patterns of a template's match, unmatch, path_match or path_unmatch:
 * os2 takes the value's text (DynamicTemplate#parse: toString), es8 a string
 * or a list of strings. */
static json_t *tmpl_patterns(enum flavor fl, const char *prop, const json_t *v, json_t **out)
{
    struct buf b;

    *out = json_array();
    if (fl == FL_ES8 && json_is_array(v)) {
        size_t i;
        json_t *p;
        json_array_foreach(v, i, p) {
            if (!json_is_string(p)) {
                json_t *e;
                buf_init(&b, BUF_NOMAX);
                java_str(v, &b);
                e = errf("mapper_parsing_exception", "[%s] values must either be a string or "
                         "list of strings, but was [%s]", prop, b.ptr ? b.ptr : "");
                buf_close(&b);
                return e;
            }
            json_array_append(*out, p);
        }
        return NULL;
    }
    buf_init(&b, BUF_NOMAX);
    java_str(v, &b);
    json_array_append_new(*out, json_stringn(b.ptr ? b.ptr : "", b.len));
    buf_close(&b);
    return NULL;
}

static json_t *xft_of(const char *s, enum xft *out)
{
    for (int k = 0; k < XFT_N; k++)
        if (strcmp(xft_name[k], s) == 0) {
            *out = (enum xft)k;
            return NULL;
        }
    return errf("illegal_argument_exception", "No field type matched on [%s], possible values "
                "are [object, string, long, double, boolean, date, binary]", s);
}

static bool mentions(const json_t *v, const char *what)
{
    const char *k;
    size_t i;
    json_t *e;

    if (json_is_string(v))
        return strstr(json_string_value(v), what) != NULL;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
            if (mentions(e, what))
                return true;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, e)
            if (strstr(k, what) || mentions(e, what))
                return true;
    }
    return false;
}

/* A JSON object with the keys of o in String order (TreeMap). */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *sorted(const json_t *o)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = calloc(n + 1, sizeof(*keys));
    const char *k;
    json_t *v, *out = json_object();

    json_object_foreach((json_t *)o, k, v)
        if (keys)
            keys[i++] = k;
    if (keys)
        qsort(keys, i, sizeof(*keys), cmp_cstr);
    for (size_t j = 0; keys && j < i; j++)
        json_object_set(out, keys[j], json_object_get(o, keys[j]));
    free(keys);
    return out;
}

/* One dynamic template, {"name": {...}} (DynamicTemplate#parse, and es8's
 * RootObjectMapper#validateDynamicTemplate: its mapping must build for one
 * of the kinds it matches; os2 only warns, and a field it cannot build
 * refuses the document). */
static json_t *parse_tmpl(enum flavor fl, const char *name, const json_t *conf, struct tmpl *t)
{
    const char *k;
    json_t *v, *e = NULL, *mmt = NULL, *ummt = NULL;
    bool have_match = false;

    t->name = strdup(name);
    json_object_foreach((json_t *)conf, k, v) {
        json_t **dst = strcmp(k, "match") == 0 ? &t->match
                     : strcmp(k, "unmatch") == 0 ? &t->unmatch
                     : strcmp(k, "path_match") == 0 ? &t->path_match
                     : strcmp(k, "path_unmatch") == 0 ? &t->path_unmatch : NULL;
        if (dst) {
            json_decref(*dst);
            if ((e = tmpl_patterns(fl, k, v, dst)))
                return e;
            have_match |= dst == &t->match || dst == &t->path_match;
        } else if (strcmp(k, "match_mapping_type") == 0) {
            mmt = v;
        } else if (strcmp(k, "unmatch_mapping_type") == 0 && fl == FL_ES8) {
            ummt = v;
        } else if (strcmp(k, "match_pattern") == 0) {
            struct buf b;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            if (b.ptr && strcmp(b.ptr, "regex") == 0)
                e = unmodelled("regex match_pattern (dynamic template [%s])", name);
            else if (!b.ptr || (strcmp(b.ptr, "simple") != 0 &&
                                !(fl == FL_ES8 && strcmp(b.ptr, "default") == 0)))
                e = errf("illegal_argument_exception", "No matching pattern matched on [%s]",
                         b.ptr ? b.ptr : "");
            buf_close(&b);
            if (e)
                return e;
        } else if (strcmp(k, "mapping") == 0) {
            if (!json_is_object(v))
                return errf("mapper_parsing_exception", "template must have mapping set");
            json_decref(t->mapping);
            t->mapping = json_deep_copy(v);
        } else if (strcmp(k, "runtime") == 0 && fl == FL_ES8) {
            return unmodelled("runtime fields (dynamic template [%s])", name);
        } else {
            return errf("illegal_argument_exception", "Illegal dynamic template parameter: [%s]",
                        k);
        }
    }
    if (fl == FL_OS2 && !have_match && !mmt) {
        struct buf b;
        char *txt = json_dumps(conf, JSON_COMPACT);
        buf_init(&b, BUF_NOMAX);
        if (txt)
            render(txt, txt + strlen(txt), &b);
        free(txt);
        e = errf("mapper_parsing_exception", "template must have match, path_match or "
                 "match_mapping_type set %s", b.ptr ? b.ptr : "");
        buf_close(&b);
        return e;
    }
    if (!t->mapping)
        return fl == FL_ES8 ? errf("mapper_parsing_exception", "template [%s] must have either "
                                   "mapping or runtime set", name)
                            : errf("mapper_parsing_exception", "template must have mapping set");
    /* the kinds it matches */
    if (fl == FL_ES8) {
        json_t *list = json_is_array(mmt) ? json_incref(mmt) : mmt ? json_pack("[O]", mmt) : NULL;
        bool wild = (!list && (have_match || ummt)) ||
                    (json_array_size(list) == 1 &&
                     json_is_string(json_array_get(list, 0)) &&
                     strcmp(json_string_value(json_array_get(list, 0)), "*") == 0);
        size_t i;
        enum xft x = XFT_OBJECT;
        if (wild)
            t->types = (1u << XFT_N) - 1;
        json_array_foreach(list, i, v) {
            struct buf b;
            if (wild)
                break;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            e = xft_of(b.ptr ? b.ptr : "", &x);
            buf_close(&b);
            if (e) {
                json_decref(list);
                return e;
            }
            t->types |= 1u << x;
        }
        json_decref(list);
        list = json_is_array(ummt) ? json_incref(ummt) : ummt ? json_pack("[O]", ummt) : NULL;
        json_array_foreach(list, i, v) {
            struct buf b;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            e = xft_of(b.ptr ? b.ptr : "", &x);
            buf_close(&b);
            if (e) {
                json_decref(list);
                return e;
            }
            t->types &= ~(1u << x);
        }
        json_decref(list);
    } else if (mmt) {
        struct buf b;
        enum xft x = XFT_OBJECT;
        buf_init(&b, BUF_NOMAX);
        java_str(mmt, &b);
        if (b.ptr && strcmp(b.ptr, "*") == 0)
            t->types = (1u << XFT_N) - 1;
        else if (!(e = xft_of(b.ptr ? b.ptr : "", &x)))
            t->types = 1u << x;
        buf_close(&b);
        if (e)
            return e;
    } else {
        t->types = (1u << XFT_N) - 1;
    }
    /* as DynamicTemplate#toXContent prints it */
    t->shown = json_object();
    if (t->match)
        json_object_set(t->shown, "match", fl == FL_ES8 ? json_object_get(conf, "match")
                                                        : json_array_get(t->match, 0));
    if (t->path_match)
        json_object_set(t->shown, "path_match", fl == FL_ES8 ? json_object_get(conf, "path_match")
                                                             : json_array_get(t->path_match, 0));
    if (t->unmatch)
        json_object_set(t->shown, "unmatch", fl == FL_ES8 ? json_object_get(conf, "unmatch")
                                                          : json_array_get(t->unmatch, 0));
    if (t->path_unmatch)
        json_object_set(t->shown, "path_unmatch",
                        fl == FL_ES8 ? json_object_get(conf, "path_unmatch")
                                     : json_array_get(t->path_unmatch, 0));
    if (fl == FL_ES8 && mmt)
        json_object_set(t->shown, "match_mapping_type", mmt);
    else if (fl == FL_OS2 && t->types != (1u << XFT_N) - 1)
        json_object_set(t->shown, "match_mapping_type", mmt);
    else if (fl == FL_OS2 && !t->match && !t->path_match)
        json_object_set_new(t->shown, "match_mapping_type", json_string("*"));
    if (ummt)
        json_object_set(t->shown, "unmatch_mapping_type", ummt);
    json_object_set_new(t->shown, "mapping", sorted(t->mapping));
    /* es8: the mapping must build for one of its kinds (unless it names the
     * field: {name} cannot be known before) */
    if (fl == FL_ES8 && !mentions(t->mapping, "{name}")) {
        struct buf kinds;
        json_t *last = NULL;
        bool ok = false;
        char tname[300];
        snprintf(tname, sizeof(tname), "__dynamic__%s", name);
        buf_init(&kinds, BUF_NOMAX);
        for (int x = 0; x < XFT_N; x++) {
            if (!((t->types >> x) & 1u))
                continue;
            buf_printf(&kinds, "%s%s", kinds.len ? ", " : "", xft_name[x]);
            if (ok)
                continue;
            json_t *m = subst(t->mapping, tname, strlen(tname), xft_mapping[x]);
            json_t *tn = json_object_get(m, "type");
            struct field *f = NULL;
            json_decref(last);
            last = NULL;
            json_object_set_new(m, "type", json_string(json_is_string(tn) ? json_string_value(tn)
                                                       : tn ? "" : xft_mapping[x]));
            const char *ts = json_string_value(json_object_get(m, "type"));
            if (!known_type(fl, ts))
                last = errf("illegal_argument_exception", "No mapper found for type [%s]", ts);
            else
                last = define(fl, NULL, tname, strlen(tname), tname, strlen(tname), m, false,
                              &f);
            field_free(f);
            json_decref(m);
            ok = last == NULL;
            if (last && strcmp(json_string_value(json_object_get(last, "type")), UNMODELLED) == 0) {
                buf_close(&kinds);
                return last;
            }
        }
        if (!ok) {
            char *txt = json_dumps(t->shown, JSON_COMPACT);
            e = errf("illegal_argument_exception", "dynamic template [%s] has invalid content "
                     "[%s], attempted to validate it with the following match_mapping_type: "
                     "[%s]", name, txt ? txt : "", kinds.ptr ? kinds.ptr : "");
            free(txt);
            if (last)
                json_object_set_new(e, "caused_by", last);
            buf_close(&kinds);
            return e;
        }
        buf_close(&kinds);
    }
    return NULL;
}

/* The "mappings" of a create-index body (DocumentMapperParser#parse and
 * RootObjectMapper.TypeParser#parse): into m and the fields map. */
json_t *parse_mappings(enum flavor fl, json_t *mappings, struct mapping *m,
                       struct map *fields)
{
    /* os2 still takes include_in_all (deprecated) */
    static const char *const taken[] = {
        "include_in_all", "properties", "dynamic", "dynamic_templates", "date_detection",
        "numeric_detection", "_meta", "enabled", NULL
    };
    static const char *const meta_fields[] = {
        "_source", "_routing", "_field_names", "_size", "_data_stream_timestamp", "_doc_count",
        "_id", "_index", "_ignored", "_seq_no", "_version", "_nested_path", "runtime",
        "subobjects", "dynamic_date_formats", "date_formats", "derived", "composite",
        "dynamic_properties", "disable_objects", NULL
    };
    json_t *v, *e;
    const char *k;

    if (json_object_size(mappings) == 1 && json_is_object(json_object_get(mappings, "_doc")))
        mappings = json_object_get(mappings, "_doc"); /* a typed mapping: the type is _doc */
    json_object_foreach(mappings, k, v)
        if (in_list(meta_fields, k))
            return unmodelled("[%s] in a mapping", k);
    if ((v = json_object_get(mappings, "dynamic")) && (e = parse_dyn(fl, v, &m->dynamic)))
        return e;
    if ((v = json_object_get(mappings, "_meta"))) {
        if (!json_is_object(v))
            return unmodelled("a [_meta] that is not an object");
        m->meta = json_incref(v);
    }
    if ((v = json_object_get(mappings, "enabled"))) {
        bool on;
        if ((e = node_bool(v, "enabled.enabled", &on)))
            return e;
        if (!on)
            return unmodelled("a disabled root object");
    }
    if ((v = json_object_get(mappings, "date_detection"))) {
        if ((e = node_bool(v, "date_detection", &m->date_detection)))
            return e;
        m->date_detection_set = true;
    }
    if ((v = json_object_get(mappings, "numeric_detection"))) {
        if ((e = node_bool(v, "numeric_detection", &m->numeric_detection)))
            return e;
        m->numeric_detection_set = true;
    }
    if ((v = json_object_get(mappings, "dynamic_templates"))) {
        size_t i;
        json_t *one;
        if (!json_is_array(v))
            return errf("mapper_parsing_exception", "Dynamic template syntax error. An array of "
                        "named objects is expected.");
        if (!(m->tmpl = calloc(json_array_size(v) + 1, sizeof(*m->tmpl))))
            return err_obj("exception", "out of memory");
        json_array_foreach(v, i, one) {
            void *it = json_object_iter(one);
            if (!json_is_object(one) || json_object_size(one) != 1)
                return errf("mapper_parsing_exception", "A dynamic template must be defined with "
                            "a name");
            if (!json_is_object(json_object_iter_value(it)))
                return errf("mapper_parsing_exception", "template must have mapping set");
            m->ntmpl++;
            if ((e = parse_tmpl(fl, json_object_iter_key(it), json_object_iter_value(it),
                                &m->tmpl[i])))
                return e;
        }
    }
    if ((v = json_object_get(mappings, "properties")) && (e = define_props(fl, fields, "", 0, v)))
        return e;
    return remaining("Root mapping definition", mappings, fl == FL_ES8 ? taken + 1 : taken);
}

/* Answers a mapping the engine refuses as MapperService#merge does
 * ("Failed to parse mapping [_doc]: ..." / es8 "Failed to parse mapping: ..."),
 * the root cause being the deepest engine exception of the chain
 * (ElasticsearchException#guessRootCauses).  Takes e. */
void reply_mapping_error(struct conn *c, json_t *e)
{
    static const char *const not_engine[] = { "illegal_argument_exception",
                                              "illegal_state_exception",
                                              "number_format_exception", NULL };
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *reason = json_string_value(json_object_get(e, "reason"));
    json_t *outer, *rc, *body;

    if (type && strcmp(type, UNMODELLED) == 0) {
        reply_json(c, 400, es_error_body(400, e), NULL);
        return;
    }
    outer = srv.set.flavor == FL_ES8
          ? errf("mapper_parsing_exception", "Failed to parse mapping: %s", reason ? reason : "")
          : errf("mapper_parsing_exception", "Failed to parse mapping [_doc]: %s",
                 reason ? reason : "");
    json_object_set_new(outer, "caused_by", e);
    rc = outer;
    for (json_t *n = json_object_get(rc, "caused_by"); n; n = json_object_get(rc, "caused_by")) {
        const char *nt = json_string_value(json_object_get(n, "type"));
        if (!nt || in_list(not_engine, nt))
            break;
        rc = n;
    }
    rc = json_copy(rc);
    json_object_del(rc, "caused_by");
    body = json_object();
    json_object_set_new(body, "root_cause", json_pack("[o]", rc));
    json_object_update(body, outer);
    json_decref(outer);
    reply_json(c, 400, json_pack("{s:o, s:i}", "error", body, "status", 400), NULL);
}
