#include "searchd_int.h"

static int value(struct chk *c, struct fld *f);

/* ---- field names and values ----------------------------------------------- */

static int value_each(struct chk *c, void *arg)
{
    return value(c, arg);
}

/* A concrete value for an object field (DocumentParser#parseObjectOrNested). */
static int concrete_into_object(struct chk *c, const struct fld *f, struct loc at)
{
    struct buf r;

    buf_init(&r, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] ", at.line, at.col);
    buf_puts(&r, "object mapping for [");
    buf_append(&r, scr.path.ptr, f->plen);
    buf_puts(&r, "] tried to parse field [");
    buf_append(&r, scr.keys.ptr + f->noff, f->nlen);
    buf_puts(&r, "] as object, but found a concrete value");
    refuse(c, err_text(doc_error(c), &r, NULL));
    buf_close(&r);
    return -1;
}

/* An array of field f (counted_array counts it). */
static int array_of(struct chk *c, void *arg)
{
    struct fld *f = arg;
    bool pending;
    struct field *fd = f->meta ? NULL : lookup(c, scr.path.ptr, f->plen, &pending), *nf;
    int rc;

    if (!f->meta && !fd) {
        /* DocumentParser#parseArray: dynamic is asked for the array, then
         * a template for an object is looked up (and built) for it */
        struct loc at = loc_at(c, c->p);
        if ((rc = may_map(c, f, at, false)) != 0)
            return rc < 0 ? -1 : array(c, skip_unmapped_each, NULL);
        if (!(nf = make_field(c, f->plen, XFT_OBJECT, at, true)))
            return -1;
        field_free(nf);
    } else if (fd && fd->type == FT_OBJECT && fd->disabled) {
        return array(c, skip_unmapped_each, NULL);
    }
    return array(c, value_each, f);
}

/* One value for field f (arrays: each element, at any depth, goes to f).
 * A field not yet mapped is mapped by this document's first value for it
 * (a dynamic template's field or the default one); every later value of it
 * in the same document makes its own, and two of different types cannot be
 * merged (clash).  An object with "enabled": false takes anything unread. */
static int value(struct chk *c, struct fld *f)
{
    struct val v;
    bool pending = false;
    struct field *fd = NULL, *nf;
    int rc;

    if (!f->meta)
        fd = lookup(c, scr.path.ptr, f->plen, &pending);
    if (*c->p == '[')
        return counted_array(c, array_of, f);
    if (*c->p == '{') {
        const char *open = c->p;
        if (f->meta)
            return meta_value(c, f, NULL, open, "", "");
        if (!fd) {
            if ((rc = may_map(c, f, loc_at(c, open), true)) != 0)
                return rc < 0 ? -1 : skip_value(c);
            if (!(nf = make_field(c, f->plen, XFT_OBJECT, loc_at(c, open), false)))
                return -1;
            if ((rc = add_dynamic(c, f->plen, nf, loc_at(c, open))) != 0) {
                field_free(nf);
                return rc < 0 ? -1 : skip_value(c);
            }
            learn(scr.path.ptr, f->plen, nf);
            if (!(fd = lookup(c, scr.path.ptr, f->plen, &pending)))
                return -1;
            if (fd->type != FT_OBJECT)
                return object_into_field(c, f->plen, fd->type, open, "", "");
        } else if (fd->type != FT_OBJECT && !pending) {
            return object_into_field(c, f->plen, fd->type, open, "", "");
        } else if (fd->type != FT_OBJECT) {
            clash(c, f->plen, fd->type, FT_OBJECT);
        }
        if (fd->type == FT_OBJECT && fd->disabled)
            return skip_value(c);
        return mapped_object(c, f->plen);
    }
    if ((*c->p == '"' ? read_string_val(c, &v) : read_scalar(c, &v)) < 0)
        return -1;
    if (f->meta)
        return meta_value(c, f, &v, NULL, NULL, NULL);
    if (!fd && v.kind == VK_NULL)
        return null_for_new_field(c, f, v.at);
    if (v.kind == VK_NULL) /* null never maps and fits every field */
        return 0;
    if (!fd) {
        if ((rc = may_map(c, f, v.at, false)) != 0)
            return rc < 0 ? -1 : 0;
        if (!(nf = make_field(c, f->plen, value_xft(c, &v), v.at, false)))
            return -1;
        if ((rc = add_dynamic(c, f->plen, nf, v.at)) != 0) {
            field_free(nf);
            return rc < 0 ? -1 : 0;
        }
        learn(scr.path.ptr, f->plen, nf);
        if (!(fd = lookup(c, scr.path.ptr, f->plen, &pending)))
            return -1;
    } else if (pending) {
        /* another value of a field new in this document: its own mapper */
        enum ftype nt;
        if (!(nf = make_field(c, f->plen, value_xft(c, &v), v.at, true)))
            return -1;
        nt = nf->type;
        field_free(nf);
        if (nt != fd->type) {
            clash(c, f->plen, fd->type, nt);
            return 0;
        }
    }
    if (fd->type == FT_OBJECT)
        return fd->disabled ? 0 : concrete_into_object(c, f, v.at);
    return check_value(c, f, fd, &v);
}

/* The name rules (es8: DotExpandingXContentParser.WrappingParser#expandDots
 * and DocumentParser#innerParseObject; os2: DocumentParser#splitAndValidatePath).
 * Trailing dots are dropped as Java's String#split drops trailing empty
 * strings: "a." is the field a.  Returns the length without them. */
static int check_name(struct chk *c, struct loc at, const char *k, size_t n, size_t base,
                      size_t *used)
{
    size_t end = n, s;
    bool dots = memchr(k, '.', n) != NULL;

    *used = n;
    if (!dots) {
        if (n == 0)
            return bad_name(c, at, "field name cannot be an empty string");
        if (c->fl == FL_ES8 && blank(k, n)) {
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_printf(&r, "[%d:%d] Field name cannot contain only whitespace: [", at.line,
                       at.col);
            if (base) {
                buf_append(&r, scr.path.ptr, base);
                buf_putc(&r, '.');
            }
            buf_append(&r, k, n);
            buf_putc(&r, ']');
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            return -1;
        }
        return 0;
    }
    while (end > 0 && k[end - 1] == '.')
        end--;
    if (end == 0)
        return bad_name(c, at, c->fl == FL_ES8 ? "field name cannot contain only dots"
                                               : "field name cannot contain only the "
                                                 "character [.]");
    for (s = 0; s <= end;) {
        const char *q = memchr(k + s, '.', end - s);
        size_t e2 = q ? (size_t)(q - k) : end, len = e2 - s;
        if (len == 0 || blank(k + s, len)) {
            /* es8 swaps the two texts (WrappingParser#throwOnBlankOrEmptyPart) */
            bool ws = (len != 0) == (c->fl == FL_OS2);
            if (c->fl == FL_ES8)
                return ws ? bad_name(c, at, "field name cannot contain only whitespace: ['%.*s']",
                                     (int)n, k)
                          : bad_name(c, at, "field name starting or ending with a [.] makes "
                                            "object resolution ambiguous: [%.*s]", (int)n, k);
            return ws ? bad_name(c, at, "object field cannot contain only whitespace: ['%.*s']",
                                 (int)n, k)
                      : bad_name(c, at, "object field starting or ending with a [.] makes object "
                                        "resolution ambiguous: [%.*s]", (int)n, k);
        }
        s = e2 + 1;
    }
    *used = end;
    return 0;
}

static void path_push(size_t base, const char *seg, size_t n)
{
    buf_truncate(&scr.path, base);
    if (base)
        buf_putc(&scr.path, '.');
    buf_append(&scr.path, seg, n);
}

/* One member of the object whose path is scr.path[0..base). */
int member(struct chk *c, size_t base, struct loc kat, size_t koff, size_t klen)
{
    /* k stays valid until the value is read (reading it may grow scr.keys) */
    const char *k = scr.keys.ptr + koff;
    size_t used, s = 0;
    struct fld f = { 0 };
    int rc = 0;

    if (check_name(c, kat, k, klen, base, &used) < 0)
        return -1;
    if (base == 0 && c->poison && !c->poison_at && strlen(c->poison) == klen &&
        memcmp(c->poison, k, klen) == 0)
        c->poison_at = c->p;
    if (base == 0) {
        const char *dot = memchr(k, '.', used);
        size_t first = dot ? (size_t)(dot - k) : used;
        /* os2 asks for the whole (dotted) name, es8 for the first part */
        f.meta = meta_field(c->fl, k, c->fl == FL_ES8 ? first : klen);
        if (!f.meta && c->fl == FL_OS2 && dot && meta_field(c->fl, k, first)) {
            /* DocumentParser#getDynamicParentMapper: a metadata mapper is in the way */
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_puts(&r, "Could not dynamically add mapping for field [");
            buf_append(&r, k, used);
            buf_puts(&r, "]. Existing mapping for [");
            buf_append(&r, k, first);
            buf_printf(&r, "] must be of type object but found [%s].",
                       meta_field(c->fl, k, first)->type);
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            return -1;
        }
        if (f.meta && dot) { /* es8: "_id.x" gives the _id mapper an object {x=...} */
            struct buf pre, post;
            buf_init(&pre, BUF_NOMAX);
            buf_init(&post, BUF_NOMAX);
            for (const char *q = dot; q; q = memchr(q + 1, '.', (size_t)(k + used - q - 1))) {
                const char *nx = memchr(q + 1, '.', (size_t)(k + used - q - 1));
                buf_putc(&pre, '{');
                buf_append(&pre, q + 1, (size_t)((nx ? nx : k + used) - q - 1));
                buf_putc(&pre, '=');
                buf_putc(&post, '}');
                if (!nx)
                    break;
            }
            path_push(0, k, first);
            f.plen = first;
            rc = meta_value(c, &f, NULL, c->p, pre.ptr, post.ptr);
            buf_close(&pre);
            buf_close(&post);
            buf_truncate(&scr.path, 0);
            return rc < 0 || c->err ? -1 : 0;
        }
    }
    /* the parts before the last are objects (DocumentParser
     * #getDynamicParentMapper; es8 expands the dots into objects) */
    for (;;) {
        const char *q = memchr(k + s, '.', used - s);
        size_t e2 = q ? (size_t)(q - k) : used, prev = scr.path.len;
        path_push(scr.path.len, k + s, e2 - s);
        if (!q)
            break;
        bool pending, fresh = false;
        struct field *fd = lookup(c, scr.path.ptr, scr.path.len, &pending);
        if (!fd) {
            struct loc at = loc_at(c, c->p);
            enum dyn d = dynamic_for(c, prev);
            struct field *nf;
            if (d == DYN_STRICT) {
                rc = strict(c, at, prev, k + s, e2 - s);
                break;
            }
            if (d == DYN_FALSE) { /* no parent for it: the value maps nothing */
                rc = skip_unmapped(c) < 0 ? -1 : 1;
                break;
            }
            if (!(nf = make_field(c, scr.path.len, XFT_OBJECT, at, false))) {
                rc = -1;
                break;
            }
            if ((rc = add_dynamic(c, scr.path.len, nf, at)) != 0) {
                field_free(nf);
                rc = rc < 0 || skip_value(c) < 0 ? -1 : 1;
                break;
            }
            learn(scr.path.ptr, scr.path.len, nf);
            if (!(fd = lookup(c, scr.path.ptr, scr.path.len, &pending))) {
                rc = -1;
                break;
            }
            fresh = true;
        }
        enum ftype t = fd->type;
        if (t == FT_OBJECT && fd->disabled) { /* DocumentParser#containsDisabledObjectMapper */
            rc = skip_value(c) < 0 ? -1 : 1;
            break;
        } else if (t != FT_OBJECT && pending && !fresh) {
            clash(c, scr.path.len, t, FT_OBJECT);
        } else if (t != FT_OBJECT && c->fl == FL_OS2 && !fresh) {
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_puts(&r, "Could not dynamically add mapping for field [");
            buf_append(&r, k, used);
            buf_puts(&r, "]. Existing mapping for [");
            buf_append(&r, scr.path.ptr, scr.path.len);
            buf_printf(&r, "] must be of type object but found [%s].", ftype_name[t]);
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            rc = -1;
            break;
        } else if (t != FT_OBJECT) {
            /* es8 (and a template that made the part a value field): the dots
             * expand to an object the field mapper gets */
            struct buf pre, post;
            buf_init(&pre, BUF_NOMAX);
            buf_init(&post, BUF_NOMAX);
            for (const char *r = q; r; r = memchr(r + 1, '.', (size_t)(k + used - r - 1))) {
                const char *nx = memchr(r + 1, '.', (size_t)(k + used - r - 1));
                buf_putc(&pre, '{');
                buf_append(&pre, r + 1, (size_t)((nx ? nx : k + used) - r - 1));
                buf_putc(&pre, '=');
                buf_putc(&post, '}');
                if (!nx)
                    break;
            }
            object_into_field(c, scr.path.len, t, c->p, pre.ptr, post.ptr);
            buf_close(&pre);
            buf_close(&post);
            rc = -1;
            break;
        }
        s = e2 + 1;
    }
    if (rc == 0) {
        const char *last = memrchr(k, '.', used);
        f.plen = scr.path.len;
        f.base = base;
        /* the name in "tried to parse field [..]": es8 the last part, os2 the key */
        f.noff = c->fl == FL_ES8 && last ? koff + (size_t)(last + 1 - k) : koff;
        f.nlen = c->fl == FL_ES8 && last ? (size_t)(k + used - last - 1) : klen;
        rc = value(c, &f);
    }
    buf_truncate(&scr.path, base);
    return rc < 0 ? -1 : 0;
}

/* Checks the source of an index/create (or the result of an update) against
 * the engine's rules and ix's mapping, as DocumentParser#parseDocument does.
 * NULL when the document is parsed: the fields it brings join the mapping
 * then (before any version check, as in the engines), and *index_err gets
 * what Lucene would refuse when indexing it (reported after the version
 * check), or NULL.  Else the error. */
json_t *check_source(struct index *ix, const char *src, size_t len, const char *id,
                     json_t **index_err)
{
    struct chk c = { .p = src, .e = src + len, .row = src, .line = 1,
                     .fl = srv.set.flavor, .ix = ix, .id = id,
                     .poison = srv.set.poison_field, .depth_limit = depth_limit(&ix->lim),
                     .fields_limit = ix->lim.fields, .existing = -1 };
    json_t *err;

    if (scr.path.max == 0) { /* never NULL, even when empty */
        buf_init(&scr.path, BUF_NOMAX);
        buf_init(&scr.keys, BUF_NOMAX);
        buf_init(&scr.text, BUF_NOMAX);
        if (buf_reserve(&scr.path, 256) < 0 || buf_reserve(&scr.keys, 4096) < 0 ||
            buf_reserve(&scr.text, 256) < 0)
            return err_obj("exception", "out of memory");
    }
    *index_err = NULL;
    buf_reset(&scr.path);
    buf_reset(&scr.keys);
    scr.gen++;
    scr.dupn = 0;
    map_clear(&scr.pending, field_free);
    /* DocumentParser#parseDocument, #validateStart */
    if (len == 0)
        return errf(doc_error(&c), "%sfailed to parse, document is empty",
                    c.fl == FL_ES8 ? "[0:0] " : "");
    skip_blank(&c);
    if (c.p >= c.e || *c.p != '{')
        return errf(doc_error(&c), "Malformed content, must start with an object");
    if (mapped_object(&c, 0) == 0) {
        skip_blank(&c);
        if (c.p < c.e && !c.err) /* DocumentParser#validateEnd */
            bad_json(&c, c.p, "Unexpected character after the document: Malformed content, "
                              "found extra data after parsing");
    }
    if (c.err) {
        json_decref(c.late);
        json_decref(c.index_err);
        return c.err;
    }
    if (c.poison_at) {
        char preview[PREVIEW_MAX + 1];
        const char *v = c.poison_at;
        struct chk pc = c;
        size_t n;
        json_decref(c.late);
        json_decref(c.index_err);
        pc.p = v;
        pc.err = NULL;
        skip_value(&pc);
        n = (size_t)(pc.p - v);
        if (n && *v == '"') {
            v++;
            n = n >= 2 ? n - 2 : 0;
        }
        if (n > PREVIEW_MAX)
            n = PREVIEW_MAX;
        memcpy(preview, v, n);
        preview[n] = '\0';
        /* Refused as Lucene refuses a keyword term over 32766 bytes
         * (values.c immense_term, ENGINE-RULES.md section 3): a permanent
         * error that no change of the document's shape fixes, so the
         * poison document is always dead-lettered. */
        {
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_printf(&r, "Document contains at least one immense term in field=\"%s\" (whose "
                           "UTF8 encoding is longer than the max length 32766), all of which "
                           "were skipped.  Please correct the analyzer to not produce such "
                           "terms.  The prefix of the first immense term is: '[", c.poison);
            for (size_t i = 0; i < n && i < 30; i++)
                buf_printf(&r, "%s%d", i ? ", " : "", (int)(signed char)preview[i]);
            buf_puts(&r, "]...', original message: bytes can be at most 32766 in length; got "
                         "32767");
            err = err_text("illegal_argument_exception", &r,
                           errf("max_bytes_length_exceeded_exception",
                                "bytes can be at most 32766 in length; got 32767"));
            buf_close(&r);
        }
        return err;
    }
    if (c.late) {
        json_decref(c.index_err);
        return c.late;
    }
    /* the mapping update the new fields make must fit the index's limits */
    if (scr.pending.len &&
        (err = limits_exceeded(&ix->lim, &ix->fields, &scr.pending, true, c.fl))) {
        json_decref(c.index_err);
        return err;
    }
    for (size_t i = 0; i < scr.pending.cap; i++) {
        struct slot *sl = &scr.pending.slots[i];
        if (sl->key && sl->val && !map_get(&ix->fields, sl->key, sl->klen) &&
            map_put(&ix->fields, sl->key, sl->klen, sl->val))
            sl->val = NULL; /* the mapping has it now */
    }
    *index_err = c.index_err;
    return NULL;
}
