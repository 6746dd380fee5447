#include "searchd_int.h"

/* ---- the mapping limits ----------------------------------------------------
 * index.mapping.total_fields.limit and index.mapping.depth.limit, per index
 * (MapperService INDEX_MAPPING_*_LIMIT_SETTING).  Both engines check the
 * mapping a document's new fields would make (TransportShardBulkAction: the
 * preflight MapperService#merge, DocumentMapper#validate, MappingLookup
 * #checkLimits).  es8 also checks each new field as the document is parsed
 * (DocumentParserContext#addDynamicMapper); os2 counts the objects and
 * arrays of the document itself as it parses them (ParseContext
 * #checkFieldDepthLimit, #checkFieldArrayDepthLimit).                      */

/* What a mapper counts towards the total fields limit: itself and its
 * multi-fields (es8 Mapper#getTotalFieldsCount); a dynamic string brings its
 * keyword sub-field.  os2 counts what MappingLookup#fromMapping collects
 * through FieldMapper#iterator, which for text adds the _index_prefix and
 * _index_phrase fields (TextFieldMapper#iterator); es8 does not count them.
 * Metadata fields never count. */
static long field_count(const struct field *f, enum flavor fl)
{
    long n = 1 + (f->type == FT_TEXT && !f->def && !f->name) + (fl == FL_OS2 ? f->hidden : 0);

    for (size_t i = 0; i < f->nsub; i++)
        n += field_count(f->sub[i], fl);
    return n;
}

static long map_count(const struct map *m, enum flavor fl)
{
    long n = 0;

    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].val)
            n += field_count(m->slots[i].val, fl);
    return n;
}

/* MappingLookup#checkObjectDepthLimit: an object's depth is the number of
 * dots in its full path plus 2 (the root being 1), so a dotted name adds
 * depth as objects do, and arrays add none. */
static long object_depth(const char *path, size_t n)
{
    long dots = 0;

    for (size_t i = 0; i < n; i++)
        dots += path[i] == '.';
    return dots + 2;
}

static json_t *depth_exceeded(long limit, const char *path, size_t n)
{
    return errf("illegal_argument_exception", "Limit of mapping depth [%ld] has been exceeded "
                "due to object field [%.*s]", limit, (int)n, path);
}

/* es8 DocumentParserContext#addDynamicMapper for f, new at the path
 * [0..plen): an object deeper than the limit is refused, then what f counts
 * is added to what the fields new in this document counted so far, which
 * must fit what the mapping leaves (MappingLookup#checkFieldLimit, "while
 * adding new fields [n]") unless ignore_dynamic_beyond_limit leaves f
 * unmapped (its value is then not read: DynamicFieldsBuilder
 * #createDynamicField, DocumentParser#parseObjectDynamic).  Either error is
 * wrapped as the document parser wraps any (#wrapInDocumentParsingException).
 * 0: map it, 1: leave the value unmapped, -1: refused.  os2 checks nothing
 * here. */
int add_dynamic(struct chk *c, size_t plen, const struct field *f, struct loc at)
{
    long size;

    if (c->fl != FL_ES8)
        return 0;
    if (f->type == FT_OBJECT && c->depth_limit > 0 &&
        object_depth(scr.path.ptr, plen) > c->depth_limit)
        return doc_exception(c, at, depth_exceeded(c->depth_limit, scr.path.ptr, plen));
    size = field_count(f, c->fl);
    if (c->existing < 0)
        c->existing = map_count(&c->ix->fields, c->fl);
    if (c->fields_limit - c->existing < c->added + size) {
        if (c->ix->lim.ignore_beyond)
            return 1;
        return doc_exception(c, at, errf("illegal_argument_exception", "Limit of total fields "
                                         "[%ld] has been exceeded while adding new fields [%ld]",
                                         c->fields_limit, c->added + size));
    }
    c->added += size;
    return 0;
}

/* os2: an object or array one level deeper than the document allows
 * (ParseContext.InternalParseContext: an OpenSearchParseException that
 * DocumentParser#wrapInMapperParsingException wraps). */
static int too_deep(struct chk *c, bool array)
{
    return doc_exception(c, loc_at(c, c->p),
                         errf("parse_exception", "The depth of the %sfield has exceeded the "
                              "allowed limit of [%ld]. This limit can be set by changing the "
                              "[index.mapping.depth.limit] index level setting.",
                              array ? "nested array " : "", c->depth_limit));
}

/* The members of an object that is parsed into the mapping.  os2
 * DocumentParser#innerParseObject counts it first (the root is 1) and
 * refuses one deeper than the limit; objects left unread (disabled,
 * dynamic false) are not counted. */
int mapped_object(struct chk *c, size_t base)
{
    int rc;

    c->objdepth++;
    if (c->fl == FL_OS2 && c->depth_limit > 0 && c->objdepth > c->depth_limit)
        rc = too_deep(c, false);
    else
        rc = object(c, base, false);
    c->objdepth--;
    return rc;
}

/* The array at c->p, read by read(c, arg).  os2 DocumentParser#parseArray
 * counts every array it enters, whatever the objects around it (an array in
 * an object in an array is at depth 2), and refuses one deeper than the
 * limit. */
int counted_array(struct chk *c, int (*read)(struct chk *, void *), void *arg)
{
    int rc;

    c->arrdepth++;
    if (c->fl == FL_OS2 && c->depth_limit > 0 && c->arrdepth > c->depth_limit)
        rc = too_deep(c, true);
    else
        rc = read(c, arg);
    c->arrdepth--;
    return rc;
}

static int skip_unmapped_array(struct chk *c, void *arg)
{
    return array(c, skip_unmapped_each, NULL);
}

/* A value that maps nothing (dynamic false, an array of a disabled object):
 * read, not checked, but os2 DocumentParser#parseNonDynamicArray still hands
 * the arrays in it to #parseArray, which counts them (the objects in it are
 * skipped whole). */
int skip_unmapped(struct chk *c)
{
    if (c->fl != FL_OS2 || *c->p != '[')
        return skip_value(c);
    return counted_array(c, skip_unmapped_array, NULL);
}

int skip_unmapped_each(struct chk *c, void *arg)
{
    return skip_unmapped(c);
}

static int cmp_slotp(const void *a, const void *b)
{
    const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int d = memcmp(x->key, y->key, n);

    return d ? d : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The object fields of the mapping that fields (and add, when not NULL)
 * make, deeper than limit: the one MappingLookup#checkObjectDepthLimit meets
 * first as it iterates its objects (os2: a java.util.HashMap, modelled with
 * the paths put in sorted order; es8: Map#copyOf, whose order changes from
 * one JVM to the next: the same one is named). */
static json_t *deepest_first(const struct map *fields, const struct map *add, long limit)
{
    const struct map *maps[2] = { fields, add };
    const struct slot **v = NULL;
    struct entry *en = NULL;
    size_t n = 0, cap = 0, deep = 0;
    json_t *e = NULL;

    for (int m = 0; m < 2; m++)
        cap += maps[m] ? maps[m]->len : 0;
    if (!cap || !(v = malloc(cap * sizeof(*v))))
        return NULL;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; maps[m] && i < maps[m]->cap; i++) {
            const struct slot *sl = &maps[m]->slots[i];
            const struct field *f = sl->val;
            if (sl->key && f && f->type == FT_OBJECT && (m == 0 || !map_get(fields, sl->key,
                                                                             sl->klen))) {
                v[n++] = sl;
                deep += object_depth(sl->key, sl->klen) > limit;
            }
        }
    if (deep && (en = calloc(n, sizeof(*en)))) {
        qsort(v, n, sizeof(*v), cmp_slotp);
        for (size_t i = 0; i < n; i++)
            en[i] = (struct entry){ .k = v[i]->key, .kl = v[i]->klen, .ins = i,
                                    .h = java_hash(v[i]->key, v[i]->klen) };
        hashmap_order(en, n);
        for (size_t i = 0; !e && i < n; i++)
            if (object_depth(en[i].k, en[i].kl) > limit)
                e = depth_exceeded(limit, en[i].k, en[i].kl);
    }
    free(en);
    free(v);
    return e;
}

/* MappingLookup#checkLimits, with the limits lim, on the mapping fields
 * (and add) make: the total fields, then the depth (the nested and name
 * length limits are not modelled).  auto_update: add holds a document's new
 * fields, which es8 with ignore_dynamic_beyond_limit fits to what is left
 * (MapperService#getMaxFieldsToAddDuringMerge) instead of failing.  NULL, or
 * the IllegalArgumentException, which neither engine wraps. */
json_t *limits_exceeded(const struct limits *lim, const struct map *fields,
                        const struct map *add, bool auto_update, enum flavor fl)
{
    long total = map_count(fields, fl) + (add ? map_count(add, fl) : 0);
    long depth = depth_limit(lim);

    if (total > lim->fields && !(auto_update && fl == FL_ES8 && lim->ignore_beyond))
        return errf("illegal_argument_exception", "Limit of total fields [%ld] has been exceeded",
                    lim->fields);
    return depth > 0 ? deepest_first(fields, add, depth) : NULL;
}
