/* conflicts — the known types of an index, the engines' conflict errors
 * read back, and the shaping rule (conflicts.h).  The document is walked as
 * text (jsonskip), never parsed into numbers: a 38-digit N stays as it is. */
#include "indexer/conflicts.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/jsonskip.h"
#include "base/jsonx.h"

struct known {
    char *path;
    size_t plen;
    char *type;
    bool mapped;  /* from GET _mapping (replaced at the next), else from an error */
};

struct conflicts {
    struct known *v; /* sorted by path bytes, then length */
    size_t n, cap;
};

struct conflicts *conflicts_new(void)
{
    return calloc(1, sizeof(struct conflicts));
}

static void known_clear(struct known *k)
{
    free(k->path);
    free(k->type);
}

void conflicts_free(struct conflicts *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        known_clear(&c->v[i]);
    free(c->v);
    free(c);
}

size_t conflicts_count(const struct conflicts *c)
{
    return c ? c->n : 0;
}

static int cmp_path(const char *a, size_t an, const char *b, size_t bn)
{
    int r = memcmp(a, b, an < bn ? an : bn);

    return r ? r : (an > bn) - (an < bn);
}

/* The slot of path, or where it would go (*found false). */
static size_t find(const struct conflicts *c, const char *path, size_t plen, bool *found)
{
    size_t lo = 0, hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = cmp_path(c->v[mid].path, c->v[mid].plen, path, plen);

        if (r == 0) {
            *found = true;
            return mid;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

const char *conflicts_type(const struct conflicts *c, const char *path, size_t plen)
{
    bool found;
    size_t i;

    if (!c || !c->n)
        return NULL;
    i = find(c, path, plen, &found);
    return found ? c->v[i].type : NULL;
}

static int learn(struct conflicts *c, const char *path, size_t plen, const char *type, bool mapped)
{
    bool found;
    size_t i = find(c, path, plen, &found);
    char *t = strdup(type), *p;

    if (!t)
        return -ENOMEM;
    if (found) {
        free(c->v[i].type);
        c->v[i].type = t;
        c->v[i].mapped = mapped;
        return 0;
    }
    if (c->n == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 16;
        struct known *nv = realloc(c->v, ncap * sizeof(*nv));

        if (!nv) {
            free(t);
            return -ENOMEM;
        }
        c->v = nv;
        c->cap = ncap;
    }
    if (!(p = malloc(plen + 1))) {
        free(t);
        return -ENOMEM;
    }
    memcpy(p, path, plen);
    p[plen] = '\0';
    memmove(&c->v[i + 1], &c->v[i], (c->n - i) * sizeof(*c->v));
    c->v[i] = (struct known){ .path = p, .plen = plen, .type = t, .mapped = mapped };
    c->n++;
    return 0;
}

int conflicts_learn(struct conflicts *c, const char *path, size_t plen, const char *type)
{
    return learn(c, path, plen, type, false);
}

/* The fields of a "properties" object under prefix (a path, pl bytes). */
static int learn_props(struct conflicts *c, json_t *props, struct buf *prefix, int depth)
{
    const char *k;
    size_t kl;
    json_t *f;
    int rc = 0;

    if (depth > 64) /* deeper than any engine maps (index.mapping.depth.limit is 20) */
        return 0;
    json_object_keylen_foreach(props, k, kl, f) {
        size_t mark = prefix->len;
        json_t *sub = json_object_get(f, "properties");
        const char *type = json_string_value(json_object_get(f, "type"));

        if (!json_is_object(f))
            continue;
        if ((mark && buf_putc(prefix, '.') < 0) || buf_append(prefix, k, kl) < 0)
            return -ENOMEM;
        if (!type && json_is_object(sub))
            type = "object";
        if (type)
            rc = learn(c, prefix->ptr, prefix->len, type, true);
        if (rc == 0 && json_is_object(sub))
            rc = learn_props(c, sub, prefix, depth + 1);
        buf_truncate(prefix, mark);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int conflicts_learn_mapping(struct conflicts *c, const char *body, size_t len)
{
    json_t *root = jsonx_loadb(body, len, 0, NULL), *m, *props;
    void *first = json_is_object(root) ? json_object_iter(root) : NULL;
    size_t j = 0;
    struct buf prefix;
    int rc;

    m = json_object_get(first ? json_object_iter_value(first) : NULL, "mappings");
    props = json_object_get(m, "properties");
    if (!json_is_object(m) || (props && !json_is_object(props))) {
        json_decref(root);
        return -EINVAL;
    }
    /* What the last mapping said goes; what errors said stays. */
    for (size_t i = 0; i < c->n; i++) {
        if (c->v[i].mapped)
            known_clear(&c->v[i]);
        else
            c->v[j++] = c->v[i];
    }
    c->n = j;
    buf_init(&prefix, BUF_NOMAX);
    rc = props ? learn_props(c, props, &prefix, 0) : 0;
    buf_close(&prefix);
    json_decref(root);
    return rc;
}

/* ---- which values a type takes ---- */

enum tclass { TC_OTHER, TC_NUM, TC_BOOL, TC_STR, TC_OBJ, TC_DATE };

static enum tclass type_class(const char *t)
{
    static const char *const num[] = { "long", "integer", "short", "byte", "unsigned_long",
                                       "double", "float", "half_float", "scaled_float", NULL };
    static const char *const str[] = { "keyword", "text", "match_only_text", "wildcard",
                                       "search_as_you_type", NULL };

    for (size_t i = 0; num[i]; i++)
        if (strcmp(t, num[i]) == 0)
            return TC_NUM;
    for (size_t i = 0; str[i]; i++)
        if (strcmp(t, str[i]) == 0)
            return TC_STR;
    if (strcmp(t, "boolean") == 0)
        return TC_BOOL;
    if (strcmp(t, "object") == 0 || strcmp(t, "nested") == 0)
        return TC_OBJ;
    if (strcmp(t, "date") == 0 || strcmp(t, "date_nanos") == 0)
        return TC_DATE;
    return TC_OTHER;
}

/* A number's text s (NUL-terminated, from the document or a numeric
 * string) in the range of the numeric type t.  Integer texts are compared
 * exactly for the integer types; others read as a double, cut toward zero
 * for the integer types (the engines' coercion, on by default). */
static bool number_fits(const char *t, const char *s)
{
    bool integral = s[strspn(s, "+-0123456789")] == '\0';
    char *end;
    double d, c;

    if (!*s || s[strspn(s, "+-.0123456789eE")] != '\0')
        return false; /* no hex, no inf, no nan, no blanks */
    if (integral && strcmp(t, "unsigned_long") == 0) {
        errno = 0;
        (void)strtoull(s, &end, 10);
        return *end == '\0' && errno == 0 && !strchr(s, '-');
    }
    if (integral && (strcmp(t, "long") == 0 || strcmp(t, "integer") == 0 ||
                     strcmp(t, "short") == 0 || strcmp(t, "byte") == 0)) {
        long long v;

        errno = 0;
        v = strtoll(s, &end, 10);
        if (*end || errno)
            return false;
        if (strcmp(t, "integer") == 0)
            return v >= INT32_MIN && v <= INT32_MAX;
        if (strcmp(t, "short") == 0)
            return v >= INT16_MIN && v <= INT16_MAX;
        if (strcmp(t, "byte") == 0)
            return v >= INT8_MIN && v <= INT8_MAX;
        return true;
    }
    d = strtod(s, &end);
    if (*end || !isfinite(d))
        return false;
    c = trunc(d); /* what an integer type keeps */
    if (strcmp(t, "long") == 0)
        return c >= -9223372036854775808.0 && c < 9223372036854775808.0;
    if (strcmp(t, "integer") == 0)
        return c >= INT32_MIN && c <= INT32_MAX;
    if (strcmp(t, "short") == 0)
        return c >= INT16_MIN && c <= INT16_MAX;
    if (strcmp(t, "byte") == 0)
        return c >= INT8_MIN && c <= INT8_MAX;
    if (strcmp(t, "unsigned_long") == 0)
        return c >= 0 && c < 18446744073709551616.0;
    if (strcmp(t, "float") == 0)
        return fabs(d) <= FLT_MAX;
    if (strcmp(t, "half_float") == 0)
        return fabs(d) <= 65504.0;
    return true; /* double, scaled_float: finite */
}

static bool text_fits(const char *t, const char *s, size_t n)
{
    char small[128], *copy = n < sizeof(small) ? small : malloc(n + 1);
    bool ok;

    if (!copy)
        return false;
    memcpy(copy, s, n);
    copy[n] = '\0';
    ok = number_fits(t, copy);
    if (copy != small)
        free(copy);
    return ok;
}

bool conflicts_takes(const char *type, const char *v, size_t len)
{
    const char *end = v + len;
    char k = len ? v[0] : 'n';

    if (k == 'n')
        return true; /* null: no value, in every type */
    if (k == '[') {
        const char *p = jsonskip_ws(v + 1, end);

        while (p < end && *p != ']') {
            const char *e = jsonskip_value(p, end);

            if (!e || !conflicts_takes(type, p, (size_t)(e - p)))
                return false;
            p = jsonskip_ws(e, end);
            if (p < end && *p == ',')
                p = jsonskip_ws(p + 1, end);
        }
        return true;
    }
    switch (type_class(type)) {
    case TC_NUM:
        if (k == '"') {
            if (len == 2)
                return true; /* "": no value */
            return !memchr(v, '\\', len) && text_fits(type, v + 1, len - 2);
        }
        return k != '{' && k != 't' && k != 'f' && text_fits(type, v, len);
    case TC_BOOL:
        return k == 't' || k == 'f' ||
               (len == 2 && k == '"') ||
               (len == 6 && memcmp(v, "\"true\"", 6) == 0) ||
               (len == 7 && memcmp(v, "\"false\"", 7) == 0);
    case TC_STR:
        return k != '{';
    case TC_OBJ:
        return k == '{';
    case TC_DATE:
        return k != '{' && k != 't' && k != 'f'; /* a string: the engine decides */
    case TC_OTHER:
    default:
        return true;
    }
}

/* ---- the engines' conflict errors ---- */

/* Past Elasticsearch 8's "[line:col] " (DocumentParsingException). */
static const char *skip_location(const char *r)
{
    const char *p = r;

    if (*p++ != '[')
        return r;
    p += strspn(p, "0123456789");
    if (*p++ != ':')
        return r;
    p += strspn(p, "0123456789");
    if (*p++ != ']' || *p++ != ' ')
        return r;
    return p;
}

/* The text between after (where r starts with it) and the first until
 * after it: copied into out; the position past until, or NULL. */
static const char *between(const char *r, const char *after, const char *until, char *out,
                           size_t outsz)
{
    size_t al = strlen(after);
    const char *e;

    if (strncmp(r, after, al) != 0 || !(e = strstr(r + al, until)))
        return NULL;
    if (out && outsz)
        snprintf(out, outsz, "%.*s", (int)(e - (r + al)), r + al);
    return e + strlen(until);
}

bool conflicts_parse_error(const char *etype, const char *reason, char *path, size_t pathsz,
                           char *type, size_t typesz)
{
    const char *r, *p;

    if (!etype || !reason ||
        (strcmp(etype, "mapper_parsing_exception") != 0 &&
         strcmp(etype, "document_parsing_exception") != 0 &&
         strcmp(etype, "illegal_argument_exception") != 0))
        return false;
    r = skip_location(reason);
    if (typesz)
        type[0] = '\0';
    /* FieldMapper#parse */
    if ((p = between(r, "failed to parse field [", "] of type [", path, pathsz)))
        return between(p - strlen("["), "[", "]", type, typesz) != NULL;
    /* DocumentParser#parseObjectOrNested */
    if (between(r, "object mapping for [", "] tried to parse field [", path, pathsz)) {
        snprintf(type, typesz, "object");
        return true;
    }
    /* OpenSearch DocumentParser#getDynamicParentMapper */
    if ((p = between(r, "Could not dynamically add mapping for field [",
                     "]. Existing mapping for [", NULL, 0))) {
        p -= strlen("[");
        if (!(p = between(p, "[", "] must be of type object but found [", path, pathsz)))
            return false;
        return between(p - strlen("["), "[", "]", type, typesz) != NULL;
    }
    /* two values of a new field in one document: the mapping update's merge */
    if ((p = between(r, "mapper [", "] cannot be changed from type [", path, pathsz)))
        return between(p - strlen("["), "[", "]", type, typesz) != NULL;
    if (between(r, "can't merge a non object mapping [", "] with an object mapping", path,
                 pathsz))
        return true;
    return false;
}

/* ---- shaping ---- */

struct shaper {
    const struct conflicts *known;
    const char *force;
    size_t flen;
    const char *field;
    size_t fieldlen;
    const char *end;
    struct buf path;    /* the path of the member at hand */
    struct buf kept;    /* entries of the document's own side object, comma-separated */
    struct buf moved;   /* entries of the values moved now */
    size_t nmoved;
    int rc;
};

static const char *tag_of(char k)
{
    switch (k) {
    case '"': return "S";
    case '{': return "M";
    case '[': return "L";
    case 't': case 'f': return "BOOL";
    case 'n': return "NULL";
    default:  return "N";
    }
}

/* One entry for the value v[0..n) at the current path. */
static void entry(struct shaper *sh, struct buf *to, const char *path, size_t plen,
                  const char *v, size_t n)
{
    int rc = 0;

    if (to->len)
        rc = buf_putc(to, ',');
    if (rc == 0)
        rc = buf_puts(to, "{\"path\":");
    if (rc == 0)
        rc = jsonx_put_string(to, path, plen);
    if (rc == 0)
        rc = buf_printf(to, ",\"type\":\"%s\",\"value\":", tag_of(n ? v[0] : 'n'));
    if (rc == 0)
        rc = n && v[0] == '"' ? buf_append(to, v, n) : jsonx_put_string(to, v, n);
    if (rc == 0)
        rc = buf_putc(to, '}');
    if (rc < 0 && sh->rc == 0)
        sh->rc = rc;
}

/* Whether the member at the current path, whose own name is the last nlen
 * bytes of the path, with value v[0..n), leaves the document. */
static bool moves(const struct shaper *sh, size_t nlen, const char *v, size_t n)
{
    const char *p = sh->path.ptr;
    size_t plen = sh->path.len;
    const char *t;

    if (sh->force && plen >= sh->flen && memcmp(p, sh->force, sh->flen) == 0 &&
        (plen == sh->flen || p[sh->flen] == '.'))
        return true;
    if ((t = conflicts_type(sh->known, p, plen)) && !conflicts_takes(t, v, n))
        return true;
    /* A dotted name ("a.b") under a known field that is not an object. */
    for (size_t i = plen - nlen; i < plen; i++)
        if (p[i] == '.' && (t = conflicts_type(sh->known, p, i)) &&
            type_class(t) != TC_OBJ && type_class(t) != TC_OTHER)
            return true;
    return false;
}

static const char *walk_value(struct shaper *sh, const char *p, struct buf *out, int depth);

static int put(struct shaper *sh, struct buf *out, const char *p, size_t n)
{
    int rc = buf_append(out, p, n);

    if (rc < 0 && sh->rc == 0)
        sh->rc = rc;
    return rc;
}

/* p at '{': the object shaped into out; past its '}', or NULL. */
static const char *walk_object(struct shaper *sh, const char *p, struct buf *out, bool top,
                               int depth)
{
    const char *end = sh->end;
    bool first = true;

    put(sh, out, "{", 1);
    p = jsonskip_ws(p + 1, end);
    while (p < end && *p != '}') {
        const char *kq, *ke, *v, *ve;
        size_t mark = sh->path.len, nlen;
        json_t *name;

        if (*p != '"' || !(ke = jsonskip_string(kq = p, end)))
            return NULL;
        name = jsonx_loadb(kq, (size_t)(ke - kq), JSONX_DECODE_ANY, NULL);
        if (!json_is_string(name)) {
            json_decref(name);
            return NULL;
        }
        nlen = json_string_length(name);
        if ((mark && buf_putc(&sh->path, '.') < 0) ||
            buf_append(&sh->path, json_string_value(name), nlen) < 0)
            sh->rc = -ENOMEM;
        json_decref(name);
        p = jsonskip_ws(ke, end);
        if (p >= end || *p != ':')
            return NULL;
        v = jsonskip_ws(p + 1, end);
        if (v >= end || !(ve = jsonskip_value(v, end)))
            return NULL;
        if (top && sh->path.len == sh->fieldlen &&
            memcmp(sh->path.ptr, sh->field, sh->fieldlen) == 0) {
            if (*v == '[') { /* a side object already: its entries stay first */
                const char *q = jsonskip_ws(v + 1, end);

                while (q < ve && *q != ']') {
                    const char *qe = jsonskip_value(q, end);

                    if (!qe)
                        return NULL;
                    if (sh->kept.len)
                        put(sh, &sh->kept, ",", 1);
                    put(sh, &sh->kept, q, (size_t)(qe - q));
                    q = jsonskip_ws(qe, end);
                    if (q < end && *q == ',')
                        q = jsonskip_ws(q + 1, end);
                }
            } else {
                entry(sh, &sh->moved, sh->path.ptr, sh->path.len, v, (size_t)(ve - v));
                sh->nmoved++;
            }
        } else if (moves(sh, nlen, v, (size_t)(ve - v))) {
            entry(sh, &sh->moved, sh->path.ptr, sh->path.len, v, (size_t)(ve - v));
            sh->nmoved++;
        } else {
            if (!first)
                put(sh, out, ",", 1);
            put(sh, out, kq, (size_t)(ke - kq));
            put(sh, out, ":", 1);
            if (!walk_value(sh, v, out, depth + 1))
                return NULL;
            first = false;
        }
        buf_truncate(&sh->path, mark);
        p = jsonskip_ws(ve, end);
        if (p < end && *p == ',')
            p = jsonskip_ws(p + 1, end);
        else if (p < end && *p != '}')
            return NULL;
    }
    if (p >= end)
        return NULL;
    if (top && (sh->kept.len || sh->moved.len)) {
        if (!first)
            put(sh, out, ",", 1);
        if (jsonx_put_string(out, sh->field, sh->fieldlen) < 0 && sh->rc == 0)
            sh->rc = -ENOMEM;
        put(sh, out, ":[", 2);
        if (sh->kept.len)
            put(sh, out, sh->kept.ptr, sh->kept.len);
        if (sh->kept.len && sh->moved.len)
            put(sh, out, ",", 1);
        if (sh->moved.len)
            put(sh, out, sh->moved.ptr, sh->moved.len);
        put(sh, out, "]", 1);
    }
    put(sh, out, "}", 1);
    return p + 1;
}

/* p at '[': its elements shaped (objects in it share the array's path). */
static const char *walk_array(struct shaper *sh, const char *p, struct buf *out, int depth)
{
    const char *end = sh->end;
    bool first = true;

    put(sh, out, "[", 1);
    p = jsonskip_ws(p + 1, end);
    while (p < end && *p != ']') {
        if (!first)
            put(sh, out, ",", 1);
        if (!(p = walk_value(sh, p, out, depth + 1)))
            return NULL;
        first = false;
        p = jsonskip_ws(p, end);
        if (p < end && *p == ',')
            p = jsonskip_ws(p + 1, end);
        else if (p < end && *p != ']')
            return NULL;
    }
    if (p >= end)
        return NULL;
    put(sh, out, "]", 1);
    return p + 1;
}

static const char *walk_value(struct shaper *sh, const char *p, struct buf *out, int depth)
{
    const char *e;

    if (depth > 1000) /* far past what transform writes (TRANSFORM_MAX_DEPTH) */
        return NULL;
    if (*p == '{')
        return walk_object(sh, p, out, false, depth);
    if (*p == '[')
        return walk_array(sh, p, out, depth);
    if (!(e = jsonskip_value(p, sh->end)) || e == p)
        return NULL;
    put(sh, out, p, (size_t)(e - p));
    return e;
}

int conflicts_shape(const struct conflicts *known, const char *force, const char *field,
                    const char *doc, size_t len, struct buf *out, size_t *moved)
{
    struct shaper sh = { .known = known, .force = force, .flen = force ? strlen(force) : 0,
                         .field = field ? field : CONFLICTS_FIELD, .end = doc + len };
    const char *p = jsonskip_ws(doc, doc + len), *e;
    struct buf tmp;
    int rc;

    *moved = 0;
    sh.fieldlen = strlen(sh.field);
    if (p >= sh.end || *p != '{')
        return -EINVAL;
    buf_init(&sh.path, BUF_NOMAX);
    buf_init(&sh.kept, BUF_NOMAX);
    buf_init(&sh.moved, BUF_NOMAX);
    buf_init(&tmp, BUF_NOMAX);
    e = walk_object(&sh, p, &tmp, true, 0);
    rc = sh.rc ? sh.rc : !e || jsonskip_ws(e, sh.end) != sh.end ? -EINVAL : 0;
    if (rc == 0 && sh.nmoved && buf_append(out, tmp.ptr, tmp.len) < 0)
        rc = -E2BIG;
    if (rc == 0)
        *moved = sh.nmoved;
    buf_close(&sh.path);
    buf_close(&sh.kept);
    buf_close(&sh.moved);
    buf_close(&tmp);
    return rc;
}
