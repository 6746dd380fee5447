#include "indexer/schema_paths.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "base/util.h"
#include "indexer/transform.h"

#define LEVELS (TRANSFORM_MAX_DEPTH + 3) /* member depths transform gives, and one more */

enum stype { ST_S, ST_N, ST_B, ST_BOOL, ST_NULL, ST_M, ST_L, ST_SS, ST_NS, ST_BS, ST_N_TYPES };

static const char *const type_name[ST_N_TYPES] = {
    [ST_S] = "S", [ST_N] = "N", [ST_B] = "B", [ST_BOOL] = "BOOL", [ST_NULL] = "NULL",
    [ST_M] = "M", [ST_L] = "L", [ST_SS] = "SS", [ST_NS] = "NS", [ST_BS] = "BS",
};

/* What a value is to the engine. */
enum kind { K_STR = 1, K_NUM = 2, K_BIN = 4, K_BOOL = 8, K_OBJ = 16 };

static const unsigned type_kind[ST_N_TYPES] = {
    [ST_S] = K_STR, [ST_N] = K_NUM, [ST_B] = K_BIN, [ST_BOOL] = K_BOOL, [ST_NULL] = 0,
    [ST_M] = K_OBJ, [ST_L] = 0, [ST_SS] = K_STR, [ST_NS] = K_NUM, [ST_BS] = K_BIN,
};

/* One value of the item being read: its path and engine field (offsets in
 * the item's text), its type, the lists around it. */
struct obs {
    size_t poff, plen, eoff, elen;
    enum stype type;
    int arrays;
};

/* A tracked path. */
struct entry {
    char *path, *eng;
    size_t plen, elen;
    uint64_t n[ST_N_TYPES];
    uint64_t item;  /* the last item counted, and the types it had here */
    unsigned mask;
};

/* A member's level: where its path and engine field end in path/eng. */
struct level {
    bool set;
    size_t plen, elen;
    int arrays;
};

struct schema_paths {
    size_t max_paths, bytes;
    json_t *index;          /* path -> entry number */
    struct entry *e;
    size_t n, cap;
    bool capped;
    uint64_t items, untracked;
    int max_depth;
    size_t max_fields;
    /* the item being read */
    struct level lv[LEVELS];
    struct buf path, eng, text;
    struct obs *obs;
    size_t nobs, capobs;
    json_t *fields;         /* its engine fields (a set) */
    bool oom;
};

struct schema_paths *schema_paths_new(size_t max_paths)
{
    struct schema_paths *sp = calloc(1, sizeof(*sp));

    if (!sp)
        return NULL;
    sp->max_paths = max_paths ? max_paths : SCHEMA_PATHS_MAX;
    sp->index = json_object();
    sp->fields = json_object();
    buf_init(&sp->path, BUF_NOMAX);
    buf_init(&sp->eng, BUF_NOMAX);
    buf_init(&sp->text, BUF_NOMAX);
    if (!sp->index || !sp->fields) {
        schema_paths_free(sp);
        return NULL;
    }
    return sp;
}

void schema_paths_free(struct schema_paths *sp)
{
    if (!sp)
        return;
    for (size_t i = 0; i < sp->n; i++) {
        free(sp->e[i].path);
        free(sp->e[i].eng);
    }
    free(sp->e);
    free(sp->obs);
    json_decref(sp->index);
    json_decref(sp->fields);
    buf_close(&sp->path);
    buf_close(&sp->eng);
    buf_close(&sp->text);
    free(sp);
}

void schema_paths_begin(struct schema_paths *sp)
{
    memset(sp->lv, 0, sizeof(sp->lv));
    buf_reset(&sp->path);
    buf_reset(&sp->eng);
    buf_reset(&sp->text);
    sp->nobs = 0;
    sp->oom = false;
}

/* The type of an attribute value (one member, a known descriptor), or -1. */
static int type_of(json_t *av, json_t **val)
{
    const char *k;
    size_t klen;
    json_t *v;

    if (!json_is_object(av) || json_object_size(av) != 1)
        return -1;
    json_object_keylen_foreach(av, k, klen, v) {
        for (int t = 0; t < ST_N_TYPES; t++)
            if (strlen(type_name[t]) == klen && memcmp(type_name[t], k, klen) == 0) {
                *val = v;
                return t;
            }
    }
    return -1;
}

/* Notes a value of type t at path[0..plen), eng[0..elen). */
static void note(struct schema_paths *sp, enum stype t, size_t plen, size_t elen, int arrays)
{
    struct obs *o;

    if (sp->nobs == sp->capobs) {
        size_t cap = sp->capobs ? 2 * sp->capobs : 64;
        struct obs *n = realloc(sp->obs, cap * sizeof(*n));

        if (!n) {
            sp->oom = true;
            return;
        }
        sp->obs = n;
        sp->capobs = cap;
    }
    o = &sp->obs[sp->nobs];
    *o = (struct obs){ .poff = sp->text.len, .plen = plen, .type = t, .arrays = arrays };
    if (buf_append(&sp->text, sp->path.ptr, plen) < 0) {
        sp->oom = true;
        return;
    }
    o->eoff = sp->text.len;
    o->elen = elen;
    if (buf_append(&sp->text, sp->eng.ptr, elen) < 0) {
        sp->oom = true;
        return;
    }
    sp->nobs++;
}

/* A value and, for a list, its elements ("[]" on the path, the same engine
 * field): a map's members come through on_member. */
static void note_value(struct schema_paths *sp, json_t *av, size_t plen, size_t elen, int arrays,
                       int depth)
{
    json_t *v = NULL, *e;
    int t = type_of(av, &v);
    size_t i;

    if (t < 0) /* transform refuses the item */
        return;
    note(sp, (enum stype)t, plen, elen, arrays);
    if (t != ST_L || !json_is_array(v) || depth > TRANSFORM_MAX_DEPTH)
        return;
    buf_truncate(&sp->path, plen);
    if (buf_append(&sp->path, "[]", 2) < 0) {
        sp->oom = true;
        return;
    }
    json_array_foreach(v, i, e) {
        note_value(sp, e, plen + 2, elen, arrays + 1, depth + 1);
    }
}

void schema_paths_member(void *arg, const char *name, size_t len, int depth, json_t *av,
                         bool hmac)
{
    struct schema_paths *sp = arg;
    int p = depth - 1, arrays = 0;
    size_t plen = 0, elen = 0;
    bool ok = true;

    if (depth < 0 || depth >= LEVELS - 1)
        return;
    /* Levels between the nearest member above and this one are lists. */
    while (p >= 0 && !sp->lv[p].set)
        p--;
    if (p >= 0) {
        plen = sp->lv[p].plen;
        elen = sp->lv[p].elen;
        arrays = sp->lv[p].arrays;
    }
    buf_truncate(&sp->path, plen);
    buf_truncate(&sp->eng, elen);
    for (int gap = p + 1; gap < depth; gap++, arrays++)
        ok = ok && buf_append(&sp->path, "[]", 2) == 0;
    if (sp->path.len)
        ok = ok && buf_putc(&sp->path, '.') == 0;
    if (sp->eng.len)
        ok = ok && buf_putc(&sp->eng, '.') == 0;
    ok = ok && buf_append(&sp->path, name, len) == 0 && buf_append(&sp->eng, name, len) == 0;
    if (!ok) {
        sp->oom = true;
        return;
    }
    sp->lv[depth] = (struct level){ .set = true, .plen = sp->path.len, .elen = sp->eng.len,
                                    .arrays = arrays };
    for (int d = depth + 1; d < LEVELS; d++)
        sp->lv[d].set = false;
    if (hmac) /* written as the hex HMAC of the value */
        note(sp, ST_S, sp->path.len, sp->eng.len, arrays);
    else
        note_value(sp, av, sp->path.len, sp->eng.len, arrays, depth);
}

/* The entry of a path, a new one if there is room; NULL when not tracked. */
static struct entry *entry_of(struct schema_paths *sp, const struct obs *o)
{
    const char *p = sp->text.ptr + o->poff;
    json_t *ix = json_object_getn(sp->index, p, o->plen);
    struct entry *e;

    if (ix)
        return &sp->e[json_integer_value(ix)];
    if (sp->n >= sp->max_paths || sp->bytes + o->plen + o->elen > SCHEMA_PATHS_MAX_BYTES) {
        sp->capped = true;
        return NULL;
    }
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 64;
        struct entry *n = realloc(sp->e, cap * sizeof(*n));

        if (!n)
            return NULL;
        sp->e = n;
        sp->cap = cap;
    }
    e = &sp->e[sp->n];
    memset(e, 0, sizeof(*e));
    e->path = malloc(o->plen + 1);
    e->eng = malloc(o->elen + 1);
    if (!e->path || !e->eng ||
        json_object_setn_new_nocheck(sp->index, p, o->plen, json_integer((json_int_t)sp->n)) < 0) {
        free(e->path);
        free(e->eng);
        return NULL;
    }
    memcpy(e->path, p, o->plen);
    e->path[o->plen] = '\0';
    memcpy(e->eng, sp->text.ptr + o->eoff, o->elen);
    e->eng[o->elen] = '\0';
    e->plen = o->plen;
    e->elen = o->elen;
    sp->bytes += o->plen + o->elen;
    sp->n++;
    return e;
}

/* Adds an engine field of the item and the objects a dotted name makes
 * above it; its depth as the engines count it. */
static int doc_field(struct schema_paths *sp, const char *eng, size_t elen, bool object)
{
    int depth = 1 + object;

    for (size_t i = 0; i < elen; i++)
        if (eng[i] == '.') {
            depth++;
            if (json_object_setn_new_nocheck(sp->fields, eng, i, json_true()) < 0)
                return -1;
        }
    if (json_object_setn_new_nocheck(sp->fields, eng, elen, json_true()) < 0)
        return -1;
    return depth;
}

int schema_paths_end(struct schema_paths *sp, bool keep)
{
    int depth = 1;

    if (!keep)
        return 0;
    if (sp->oom)
        return -ENOMEM;
    sp->items++;
    json_object_clear(sp->fields);
    for (size_t i = 0; i < sp->nobs; i++) {
        const struct obs *o = &sp->obs[i];
        struct entry *e = entry_of(sp, o);
        int d;

        if (!e) {
            if (!sp->capped)
                return -ENOMEM;
            sp->untracked++;
        } else if (e->item != sp->items || !(e->mask & (1u << o->type))) {
            if (e->item != sp->items) {
                e->item = sp->items;
                e->mask = 0;
            }
            e->mask |= 1u << o->type;
            e->n[o->type]++;
        }
        if (o->arrays > depth)
            depth = o->arrays;
        if (!type_kind[o->type])
            continue;
        d = doc_field(sp, sp->text.ptr + o->eoff, o->elen, o->type == ST_M);
        if (d < 0)
            return -ENOMEM;
        if (d > depth)
            depth = d;
    }
    if (depth > sp->max_depth)
        sp->max_depth = depth;
    if (json_object_size(sp->fields) > sp->max_fields)
        sp->max_fields = json_object_size(sp->fields);
    return 0;
}

uint64_t schema_paths_items(const struct schema_paths *sp)
{
    return sp->items;
}

bool schema_paths_capped(const struct schema_paths *sp)
{
    return sp->capped;
}

/* ---- the report --------------------------------------------------------- */

static json_t *str_of(const char *s, size_t len)
{
    json_t *j;
    char *c;

    if (jsonx_utf8_valid(s, len))
        return json_stringn(s, len);
    if (!(c = malloc(len + 1)))
        return NULL;
    for (size_t i = 0; i < len; i++)
        c[i] = (unsigned char)s[i] >= 0x80 ? '?' : s[i];
    j = json_stringn(c, len);
    free(c);
    return j;
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);

    return r ? r : (al > bl) - (al < bl);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = *(const struct entry *const *)a, *y = *(const struct entry *const *)b;

    return bytes_cmp(x->path, x->plen, y->path, y->plen);
}

static bool varies(const struct entry *e)
{
    int n = 0;

    for (int t = 0; t < ST_N_TYPES; t++)
        n += t != ST_NULL && e->n[t] > 0;
    return n > 1;
}

/* An engine field and the kinds of value it took. */
struct field {
    const char *name;
    size_t len;
    unsigned kinds;
};

static int field_cmp(const void *a, const void *b)
{
    const struct field *x = a, *y = b;

    return bytes_cmp(x->name, x->len, y->name, y->len);
}

/* The engine fields of the tracked paths, sorted (a parent before its
 * fields); the objects a dotted path makes above it are fields too. */
static struct field *engine_fields(const struct schema_paths *sp, size_t *nout)
{
    json_t *ix = json_object();
    struct field *f = NULL;
    size_t n = 0, cap = 0;
    bool ok = ix != NULL;

    for (size_t i = 0; ok && i < sp->n; i++) {
        const struct entry *e = &sp->e[i];
        unsigned kinds = 0;

        for (int t = 0; t < ST_N_TYPES; t++)
            if (e->n[t])
                kinds |= type_kind[t];
        if (!kinds)
            continue;
        /* The field itself, then each object above it. */
        for (size_t end = e->elen + 1; ok && end-- > 0;) {
            json_t *at;

            if (end != e->elen && e->eng[end] != '.')
                continue;
            at = json_object_getn(ix, e->eng, end);
            if (!at) {
                if (n == cap) {
                    struct field *nf = realloc(f, (cap = cap ? 2 * cap : 64) * sizeof(*nf));

                    if (!(ok = nf != NULL))
                        break;
                    f = nf;
                }
                f[n] = (struct field){ .name = e->eng, .len = end };
                ok = json_object_setn_new_nocheck(ix, e->eng, end, json_integer((json_int_t)n)) == 0;
                at = json_object_getn(ix, e->eng, end);
                n++;
            }
            if (ok)
                f[json_integer_value(at)].kinds |= end == e->elen ? kinds : K_OBJ;
        }
    }
    json_decref(ix);
    if (!ok) {
        free(f);
        return NULL;
    }
    if (n)
        qsort(f, n, sizeof(*f), field_cmp);
    *nout = n;
    return f;
}

static unsigned popcount(unsigned v)
{
    unsigned n = 0;

    for (; v; v &= v - 1)
        n++;
    return n;
}

/* The "properties" object for field name[0..len) in props, made with the
 * objects above it. */
static json_t *property_at(json_t *props, const char *name, size_t len)
{
    const char *seg = name, *end = name + len;

    for (;;) {
        const char *dot = memchr(seg, '.', (size_t)(end - seg));
        size_t sl = (size_t)((dot ? dot : end) - seg);
        json_t *def = json_object_getn(props, seg, sl);

        if (!def) {
            def = json_object();
            if (!def || json_object_setn_new_nocheck(props, seg, sl, def) < 0)
                return NULL;
        }
        if (!dot)
            return def;
        props = json_object_get(def, "properties");
        if (!props) {
            props = json_object();
            if (!props || json_object_set_new(def, "properties", props) < 0)
                return NULL;
        }
        seg = dot + 1;
    }
}

/* A JSON number of kind json_kind (long or double) becomes a double with
 * the number's text as an exact keyword (deploy/index-template.json). */
static json_t *number_template(const char *name, const char *json_kind)
{
    return json_pack("{s:{s:s,s:{s:s,s:{s:{s:s}}}}}", name, "match_mapping_type", json_kind,
                     "mapping", "type", "double", "fields", "exact", "type", "keyword");
}

/* Whether an object above name[0..len) (at a '.') is in closed. */
static bool under_closed(json_t *closed, const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (name[i] == '.' && json_object_getn(closed, name, i))
            return true;
    return false;
}

/* The template, and the engine fields it maps into *nfields. */
static json_t *make_template(const struct schema_paths *sp, size_t *nfields)
{
    size_t n = 0, count = 0;
    struct field *f = engine_fields(sp, &n);
    json_t *closed = json_object(); /* fields mapped whole: nothing below them is mapped */
    json_t *props = json_object(), *t = NULL;
    long fields_limit;
    int depth_limit;
    bool ok = props && closed && (f || n == 0);

    for (size_t i = 0; ok && i < n; i++) {
        unsigned k = f[i].kinds;
        json_t *def = NULL;

        if (under_closed(closed, f[i].name, f[i].len))
            continue;
        if (popcount(k) > 1 && (k & K_OBJ))
            def = json_pack("{s:s,s:b}", "type", "object", "enabled", 0);
        else if (popcount(k) > 1)
            def = json_pack("{s:s,s:i}", "type", "keyword", "ignore_above", 8191);
        else if (k == K_BIN)
            def = json_pack("{s:s}", "type", "binary");
        if (def) {
            json_t *at = property_at(props, f[i].name, f[i].len);

            ok = at && json_object_update(at, def) == 0;
            json_decref(def);
            ok = ok && json_object_setn_new_nocheck(closed, f[i].name, f[i].len, json_true()) == 0;
            count++;
        } else {
            count += (k & (K_STR | K_NUM)) ? 2 : 1; /* text + keyword, double + exact */
        }
    }
    free(f);
    json_decref(closed);
    *nfields = count;
    depth_limit = sp->max_depth + 2 > 20 ? sp->max_depth + 2 : 20;
    fields_limit = (long)((2 * count + 99) / 100 * 100);
    if (fields_limit < 1000)
        fields_limit = 1000;
    if (ok)
        t = json_pack("{s:{s:i,s:I},s:{s:b,s:[o,o,{s:{s:s,s:{s:s,s:{s:{s:s,s:i}}}}}]}}",
                      "settings", "index.mapping.depth.limit", depth_limit,
                      "index.mapping.total_fields.limit", (json_int_t)fields_limit, "mappings",
                      "date_detection", 0, "dynamic_templates", number_template("ddb_integers", "long"),
                      number_template("ddb_numbers", "double"), "ddb_strings", "match_mapping_type",
                      "string", "mapping", "type", "text", "fields", "keyword", "type", "keyword",
                      "ignore_above", 256);
    if (t && json_object_size(props))
        ok = json_object_set(json_object_get(t, "mappings"), "properties", props) == 0;
    json_decref(props);
    if (!ok) {
        json_decref(t);
        return NULL;
    }
    return t;
}

json_t *schema_paths_report(const struct schema_paths *sp)
{
    const struct entry **sorted = calloc(sp->n + 1, sizeof(*sorted));
    json_t *r = NULL, *paths = json_array(), *varying = json_array(), *tmpl = NULL;
    size_t nfields = 0;
    bool ok = sorted && paths && varying;

    for (size_t i = 0; ok && i < sp->n; i++)
        sorted[i] = &sp->e[i];
    if (ok && sp->n)
        qsort(sorted, sp->n, sizeof(*sorted), entry_cmp);
    for (size_t i = 0; ok && i < sp->n; i++) {
        const struct entry *e = sorted[i];
        json_t *types = json_object();

        for (int t = 0; types && t < ST_N_TYPES; t++)
            if (e->n[t])
                json_object_set_new(types, type_name[t], json_integer((json_int_t)e->n[t]));
        ok = types && json_array_append_new(paths, json_pack("{s:o,s:o}", "path",
                                                             str_of(e->path, e->plen), "types",
                                                             types)) == 0;
        if (ok && varies(e))
            ok = json_array_append_new(varying, str_of(e->path, e->plen)) == 0;
    }
    if (ok)
        tmpl = make_template(sp, &nfields);
    if (ok && tmpl)
        r = json_pack("{s:I,s:O,s:O,s:i,s:I,s:I,s:b,s:I,s:o}", "items", (json_int_t)sp->items,
                      "paths", paths, "varying", varying, "max_depth", sp->max_depth,
                      "max_fields", (json_int_t)sp->max_fields, "fields", (json_int_t)nfields,
                      "paths_capped", sp->capped, "untracked", (json_int_t)sp->untracked,
                      "template", tmpl);
    else
        json_decref(tmpl);
    json_decref(paths);
    json_decref(varying);
    free(sorted);
    return r;
}
