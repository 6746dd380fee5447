#include "searchd_int.h"

/* ---- metadata fields ------------------------------------------------------ */

/* The metadata fields each engine registers, by name and field type name.
 * es8: IndicesModule#initBuiltInMetadataMappers (8.x) plus the default
 * distribution's plugins: mapper-extras (_feature), x-pack core (_tier),
 * inference (_inference_fields).  os2: IndicesModule (2.x) plus mapper-extras
 * (_feature) and mapper-size (_size, prepackaged on Amazon OpenSearch
 * Service).  Only a top-level name is one (os2 looks up the field's full
 * path, es8 asks the root context only). */

static const struct meta metas[] = {
    { "_id", "_id", true, true },
    { "_index", "_index", true, true },
    { "_routing", "_routing", true, true },
    { "_source", "_source", true, true },
    { "_ignored", "_ignored", true, true },
    { "_version", "_version", true, true },
    { "_seq_no", "_seq_no", true, true },
    { "_nested_path", "_nested_path", true, true },
    { "_field_names", "_field_names", true, true },
    { "_data_stream_timestamp", "_data_stream_timestamp", true, true },
    { "_doc_count", "_doc_count", true, true },
    { "_feature", "_feature", true, true },
    { "_tsid", "_tsid", true, false },
    { "_ts_routing_hash", "_ts_routing_hash", true, false },
    { "_index_mode", "_index_mode", true, false },
    { "_ignored_source", "_ignored_source", true, false },
    { "_tier", "_tier", true, false },
    { "_inference_fields", "_inference_fields", true, false },
    { "_size", "integer", false, true },
};

const struct meta *meta_field(enum flavor fl, const char *k, size_t n)
{
    if (n < 2 || *k != '_')
        return NULL;
    for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++)
        if ((fl == FL_ES8 ? metas[i].es8 : metas[i].os2) && strlen(metas[i].name) == n &&
            memcmp(metas[i].name, k, n) == 0)
            return &metas[i];
    return NULL;
}

/* MetadataFieldMapper#parseCreateField refuses every value, wrapped by
 * FieldMapper#parse; DocCountFieldMapper takes one positive integer (es8
 * intValue(false), os2 longValue(false); other numbers refused, stricter). */
int meta_value(struct chk *c, struct fld *f, const struct val *v, const char *open,
               const char *pre, const char *post)
{
    const struct meta *m = f->meta;
    struct loc at = open ? loc_at(c, open) : v->at, end = at;
    struct buf pv, r;
    json_t *cause = NULL;

    buf_init(&pv, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    if (open) {
        if (skip_value(c) < 0)
            goto out;
        end = loc_at(c, c->p - 1);
        buf_puts(&pv, pre);
        render(open, c->p, &pv);
        buf_puts(&pv, post);
    } else {
        scalar_text(v, &pv);
    }
    if (strcmp(m->name, "_doc_count") == 0) {
        if (++f->nvals > 1) {
            cause = errf("illegal_argument_exception", "Arrays are not allowed for field "
                         "[_doc_count].");
        } else if (open || v->kind != VK_INT) {
            cause = errf("parsing_exception", "Failed to parse object: expecting token of type "
                         "[VALUE_NUMBER] but found [%s]",
                         open ? "START_OBJECT" : token_name(v->kind));
        } else {
            long long n = strtoll(pv.ptr, NULL, 10);
            if (c->fl == FL_ES8 && n > INT_MAX)
                cause = jackson_cause(c, "input_coercion_exception", v->at, "Numeric value (%s) "
                                      "out of range of int (-2147483648 - 2147483647)", pv.ptr);
            else if (n <= 0 && c->fl == FL_ES8)
                cause = errf("illegal_argument_exception", "Field [_doc_count] must be a "
                             "positive integer. Value [%lld] is not allowed.", n);
            else if (n <= 0)
                cause = errf("illegal_argument_exception", "Field [_doc_count] must be a "
                             "positive integer.");
        }
    } else {
        if (c->fl == FL_ES8)
            buf_printf(&r, "[%d:%d] ", at.line, at.col);
        buf_printf(&r, "Field [%s] is a metadata field and cannot be added inside a document. "
                       "Use the index API request parameters.", m->name);
        cause = err_text(doc_error(c), &r, NULL);
    }
    if (cause)
        bad_field(c, f->plen, m->type, end, pv.ptr, pv.len, cause);
out:
    buf_close(&pv);
    buf_close(&r);
    return c->err ? -1 : 0;
}

/* ---- new fields: dynamic, strict, dynamic templates ----------------------- */

/* The length of the parent's path (the root's is 0). */
static size_t parent_len(const char *path, size_t n)
{
    const char *dot = memrchr(path, '.', n);

    return dot ? (size_t)(dot - path) : 0;
}

/* Regex#simpleMatch: '*' matches any run of characters (compared byte by
 * byte, which for UTF-8 texts is the same as by char). */
static bool simple_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;

    while (j < sn) {
        if (i < pn && p[i] == '*') {
            star = i++;
            mark = j;
        } else if (i < pn && p[i] == s[j]) {
            i++;
            j++;
        } else if (star != (size_t)-1) {
            i = star + 1;
            j = ++mark;
        } else {
            return false;
        }
    }
    while (i < pn && p[i] == '*')
        i++;
    return i == pn;
}

static bool any_match(const json_t *pats, const char *s, size_t n)
{
    size_t i;
    json_t *p;

    json_array_foreach(pats, i, p)
        if (simple_match(json_string_value(p), json_string_length(p), s, n))
            return true;
    return false;
}

/* DynamicTemplate#match: path_match and path_unmatch against the full path,
 * match and unmatch against the field's own name, then the value's kind. */
static bool tmpl_match(const struct tmpl *t, const char *path, size_t plen, const char *leaf,
                       size_t llen, enum xft k)
{
    if (t->path_match && !any_match(t->path_match, path, plen))
        return false;
    if (t->match && !any_match(t->match, leaf, llen))
        return false;
    if (t->path_unmatch && any_match(t->path_unmatch, path, plen))
        return false;
    if (t->unmatch && any_match(t->unmatch, leaf, llen))
        return false;
    return (t->types >> k) & 1u;
}

/* s with {name}, {dynamic_type} and {dynamicType} replaced (DynamicTemplate
 * #mappingForName). */
static json_t *subst_str(const char *s, size_t n, const char *name, size_t nl, const char *dt)
{
    struct buf b;
    json_t *j;

    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n;) {
        if (n - i >= 6 && memcmp(s + i, "{name}", 6) == 0) {
            buf_append(&b, name, nl);
            i += 6;
        } else if (n - i >= 14 && memcmp(s + i, "{dynamic_type}", 14) == 0) {
            buf_puts(&b, dt);
            i += 14;
        } else if (n - i >= 13 && memcmp(s + i, "{dynamicType}", 13) == 0) {
            buf_puts(&b, dt);
            i += 13;
        } else {
            buf_putc(&b, s[i++]);
        }
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_close(&b);
    return j;
}

json_t *subst(const json_t *v, const char *name, size_t nl, const char *dt)
{
    json_t *out;

    if (json_is_string(v))
        return subst_str(json_string_value(v), json_string_length(v), name, nl, dt);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        out = json_array();
        json_array_foreach(v, i, e)
            json_array_append_new(out, subst(e, name, nl, dt));
        return out;
    }
    if (json_is_object(v)) {
        const char *k;
        size_t kl;
        json_t *e;
        out = json_object();
        json_object_keylen_foreach((json_t *)v, k, kl, e) {
            json_t *nk = subst_str(k, kl, name, nl, dt);
            json_object_setn_new(out, json_string_value(nk), json_string_length(nk),
                                 subst(e, name, nl, dt));
            json_decref(nk);
        }
        return out;
    }
    return json_deep_copy(v);
}

/* An error while a document is parsed that is not the parser's own: os2
 * DocumentParser#wrapInMapperParsingException keeps a MapperParsingException
 * and wraps others in "failed to parse"; es8 #wrapInDocumentParsingException
 * wraps everything, with the location.  Takes e. */
int doc_exception(struct chk *c, struct loc at, json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *reason = json_string_value(json_object_get(e, "reason"));

    if (c->fl == FL_ES8) {
        json_t *w = errf(doc_error(c), "[%d:%d] failed to parse: %s", at.line, at.col,
                         reason ? reason : "");
        json_object_set_new(w, "caused_by", e);
        refuse(c, w);
    } else if (type && strcmp(type, "mapper_parsing_exception") == 0) {
        refuse(c, e);
    } else {
        json_t *w = errf(doc_error(c), "failed to parse");
        json_object_set_new(w, "caused_by", e);
        refuse(c, w);
    }
    return -1;
}

/* The field a dynamic template makes for a value of kind k at the path
 * [0..plen) whose last name is leaf (RootObjectMapper#findTemplateBuilder):
 * the template's mapping for that name, its type with {dynamic_type}
 * replaced, or the kind's default type when it has none.  Its properties,
 * for an object, join into (unless NULL).  NULL when the mapping cannot be
 * built: the document is refused. */
static struct field *from_template(struct chk *c, const struct tmpl *t, size_t plen,
                                   const char *leaf, size_t llen, enum xft k, struct loc at,
                                   struct map *into)
{
    const char *dt = xft_mapping[k];
    json_t *m = subst(t->mapping, leaf, llen, dt), *tn = json_object_get(t->mapping, "type");
    json_t *type, *err = NULL;
    struct field *f = NULL;

    /* DynamicTemplate#mappingType: the type as given (any JSON as Java prints
     * it), its placeholders replaced; a derived "text" with index
     * not_analyzed or no is a keyword */
    if (tn) {
        struct buf b;
        char *txt = json_dumps(tn, JSON_ENCODE_ANY | JSON_COMPACT);
        buf_init(&b, BUF_NOMAX);
        if (txt)
            render(txt, txt + strlen(txt), &b);
        free(txt);
        type = subst_str(b.ptr ? b.ptr : "", b.len, leaf, llen, dt);
        buf_close(&b);
    } else {
        type = json_string(dt);
    }
    if (strcmp(json_string_value(type), "text") == 0 &&
        !(json_is_string(tn) && strcmp(json_string_value(tn), "text") == 0)) {
        const char *ix = json_string_value(json_object_get(t->mapping, "index"));
        if (ix && (strcmp(ix, "not_analyzed") == 0 || strcmp(ix, "no") == 0)) {
            json_decref(type);
            type = json_string("keyword");
        }
    }
    json_object_set(m, "type", type);
    if (!known_type(c->fl, json_string_value(type)))
        err = errf("mapper_parsing_exception", "failed to find type parsed [%s] for [%.*s]",
                   json_string_value(type), (int)llen, leaf);
    else
        err = define(c->fl, into, scr.path.ptr, plen, leaf, llen, m, true, &f);
    json_decref(type);
    json_decref(m);
    if (err) {
        field_free(f);
        doc_exception(c, at, err);
        return NULL;
    }
    return f;
}

/* The field a new value of kind k makes at the path [0..plen): the first
 * dynamic template that matches it, else the engine's default for the kind
 * (DocumentParser#createBuilderFromDynamicValue: long, float, boolean, date,
 * text with a keyword sub-field, object).  probe: only to see whether it can
 * be built (nothing joins the mapping).  NULL when refused. */
struct field *make_field(struct chk *c, size_t plen, enum xft k, struct loc at, bool probe)
{
    static const enum ftype defaults[XFT_N] = {
        [XFT_OBJECT] = FT_OBJECT, [XFT_STRING] = FT_TEXT, [XFT_LONG] = FT_LONG,
        [XFT_DOUBLE] = FT_FLOAT, [XFT_BOOLEAN] = FT_BOOLEAN, [XFT_DATE] = FT_DATE,
        [XFT_BINARY] = FT_TEXT,
    };
    const struct mapping *m = &c->ix->mapping;
    size_t p = parent_len(scr.path.ptr, plen), l0 = p ? p + 1 : 0;
    const char *leaf = scr.path.ptr + l0;
    struct field *f;

    for (size_t i = 0; i < m->ntmpl; i++)
        if (tmpl_match(&m->tmpl[i], scr.path.ptr, plen, leaf, plen - l0, k))
            return from_template(c, &m->tmpl[i], plen, leaf, plen - l0, k, at,
                                 probe ? NULL : &scr.pending);
    if (!(f = calloc(1, sizeof(*f)))) {
        refuse(c, err_obj("exception", "out of memory"));
        return NULL;
    }
    f->type = defaults[k];
    f->ignore_above = -1;
    return f;
}

/* The "dynamic" that decides for a new field under the object at the path
 * [0..plen) (os2 DocumentParser#dynamicOrDefault, es8 DocumentParserContext
 * #dynamic): the object's own, else the nearest parent's that is set, else
 * the root's (true by default).  os2 looks parents up in the mapping as it
 * was before the document: a parent new in it counts as true. */
enum dyn dynamic_for(const struct chk *c, size_t plen)
{
    const struct mapping *m = &c->ix->mapping;
    bool pending, first = true;

    for (size_t n = plen; n > 0; n = parent_len(scr.path.ptr, n), first = false) {
        const struct field *fd = lookup(c, scr.path.ptr, n, &pending);
        if (!fd || (pending && !first && c->fl == FL_OS2))
            return DYN_TRUE;
        if (fd->dynamic != DYN_UNSET)
            return fd->dynamic;
    }
    return m->dynamic != DYN_UNSET ? m->dynamic : DYN_TRUE;
}

/* StrictDynamicMappingException: "within" the object at [0..within), the
 * root being [_doc] (RootObjectMapper's name). */
int strict(struct chk *c, struct loc at, size_t within, const char *name, size_t nlen)
{
    struct buf r;

    buf_init(&r, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] ", at.line, at.col);
    buf_puts(&r, "mapping set to strict, dynamic introduction of [");
    buf_append(&r, name, nlen);
    buf_puts(&r, "] within [");
    if (within)
        buf_append(&r, scr.path.ptr, within);
    else
        buf_puts(&r, "_doc");
    buf_puts(&r, "] is not allowed");
    refuse(c, err_text("strict_dynamic_mapping_exception", &r, NULL));
    buf_close(&r);
    return -1;
}

/* Whether the field f, new in this document, may be mapped
 * (DocumentParser#parseObject, #parseArray, #parseDynamicValue; es8
 * #ensureNotStrict): 0 yes, 1 no (dynamic false: the value is kept in the
 * source, neither mapped nor checked), -1 refused (strict).  os2 names the
 * object being parsed for an object under a dotted key. */
int may_map(struct chk *c, const struct fld *f, struct loc at, bool object)
{
    size_t p = parent_len(scr.path.ptr, f->plen), l0 = p ? p + 1 : 0;
    enum dyn d = dynamic_for(c, p);

    if (d == DYN_STRICT)
        return strict(c, at, c->fl == FL_OS2 && object ? f->base : p, scr.path.ptr + l0,
                      f->plen - l0);
    return d == DYN_FALSE;
}

/* null for a field not mapped maps nothing, but strict refuses it: os2
 * DocumentParser#parseNullValue asks only the object being parsed (its own
 * setting, not inherited) and names the key as written; es8 asks as for
 * any value. */
int null_for_new_field(struct chk *c, const struct fld *f, struct loc at)
{
    bool pending;
    enum dyn d;

    if (c->fl == FL_ES8)
        return may_map(c, f, at, false) < 0 ? -1 : 0;
    if (f->base == 0) {
        d = c->ix->mapping.dynamic;
    } else {
        const struct field *o = lookup(c, scr.path.ptr, f->base, &pending);
        d = o ? o->dynamic : DYN_UNSET;
    }
    return d == DYN_STRICT ? strict(c, at, f->base, scr.keys.ptr + f->noff, f->nlen) : 0;
}
