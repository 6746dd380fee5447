#include "searchd_int.h"

/* ---- the queries _search and _count take --------------------------------- */

/* Enough of the Query DSL to find a document by a value:
 *   match_all  every document;
 *   term       {"f": v} or {"f": {"value": v}}: a value of field f equals v
 *              exactly (Elasticsearch "Term query", OpenSearch "Term-level
 *              queries: term"); a string equals a number or boolean whose
 *              text it is (the field's type coerces the query value);
 *   match      {"f": "text"} or {"f": {"query": "text"}}: one of the
 *              text's tokens is one of the field's (operator "or", the
 *              default: Elasticsearch "Match query", OpenSearch "Full-text
 *              queries: match"); tokens as the standard analyzer makes
 *              them, approximated: runs of letters and digits (bytes past
 *              ASCII count as letters), lower-cased;
 *   bool       must and filter (all), should (one, when there is neither
 *              must nor filter), must_not (none): "Boolean query".
 * A field is a path of names joined by '.', as the mapping names it: the
 * values under it in the source, arrays flattened, a dotted key standing
 * for its objects.  "f.keyword" (the keyword sub-field dynamic strings
 * get) reads the values of f when the source has no such path.  Scores
 * are not modelled (every hit scores 1.0). */

/* The values at path[0..n) under v, appended to out (arrays flattened). */
static void collect(const json_t *v, const char *path, size_t n, json_t *out)
{
    const char *k;
    size_t kl, i;
    json_t *e;

    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
            collect(e, path, n, out);
        return;
    }
    if (n == 0) {
        json_array_append(out, (json_t *)v);
        return;
    }
    if (!json_is_object(v))
        return;
    json_object_keylen_foreach((json_t *)v, k, kl, e) {
        if (kl == n && memcmp(k, path, n) == 0)
            collect(e, path + n, 0, out);
        else if (kl < n && memcmp(k, path, kl) == 0 && path[kl] == '.')
            collect(e, path + kl + 1, n - kl - 1, out);
    }
}

static json_t *values_at(const json_t *src, const char *field)
{
    json_t *out = json_array();
    size_t n = strlen(field);

    collect(src, field, n, out);
    if (!json_array_size(out) && n > 8 && strcmp(field + n - 8, ".keyword") == 0)
        collect(src, field, n - 8, out);
    return out;
}

/* A scalar's text: a string's own, a number's or boolean's JSON. */
static char *text_of(const json_t *v)
{
    if (json_is_string(v))
        return strndup(json_string_value(v), json_string_length(v));
    if (json_is_number(v) || json_is_boolean(v))
        return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    return NULL;
}

static bool term_equal(const json_t *a, const json_t *q)
{
    char *x, *y;
    bool eq;

    if (json_is_number(a) && json_is_number(q))
        return json_number_value(a) == json_number_value(q);
    x = text_of(a);
    y = text_of(q);
    eq = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* The next token of s from *pos (lower-cased into tok), false at the end. */
static bool next_token(const char *s, size_t *pos, struct buf *tok)
{
    size_t i = *pos;

    buf_reset(tok);
    while (s[i] && !isalnum((unsigned char)s[i]) && !((unsigned char)s[i] & 0x80))
        i++;
    while (s[i] && (isalnum((unsigned char)s[i]) || ((unsigned char)s[i] & 0x80)))
        buf_putc(tok, (char)tolower((unsigned char)s[i++]));
    *pos = i;
    return tok->len > 0;
}

static bool has_token(const char *s, const char *want, size_t wn)
{
    struct buf tok;
    size_t pos = 0;
    bool found = false;

    buf_init(&tok, BUF_NOMAX);
    while (!found && next_token(s, &pos, &tok))
        found = tok.len == wn && memcmp(tok.ptr, want, wn) == 0;
    buf_close(&tok);
    return found;
}

static bool match_text(const json_t *vals, const char *query)
{
    struct buf tok;
    size_t pos = 0, i;
    bool found = false;
    json_t *v;

    buf_init(&tok, BUF_NOMAX);
    while (!found && next_token(query, &pos, &tok))
        json_array_foreach(vals, i, v) {
            char *t = text_of(v);
            found = t && has_token(t, tok.ptr, tok.len);
            free(t);
            if (found)
                break;
        }
    buf_close(&tok);
    return found;
}

/* The one field of a leaf query and its parameter (the object's "key"
 * member when given as an object). */
static const char *leaf(const json_t *q, const char *key, json_t **val)
{
    void *it = json_is_object(q) && json_object_size(q) == 1 ? json_object_iter((json_t *)q)
                                                              : NULL;
    json_t *v = it ? json_object_iter_value(it) : NULL;

    if (json_is_object(v))
        v = json_object_get(v, key);
    *val = v;
    return it && v ? json_object_iter_key(it) : NULL;
}

static int all_of(const json_t *qs, const json_t *src, bool want, bool any, char *why,
                  size_t whylen)
{
    size_t i, n = json_is_array(qs) ? json_array_size(qs) : 1;

    for (i = 0; i < n; i++) {
        const json_t *q = json_is_array(qs) ? json_array_get(qs, i) : qs;
        int m = query_match(q, src, why, whylen);

        if (m < 0)
            return m;
        if (any && m)
            return 1;
        if (!any && (m == 1) != want)
            return 0;
    }
    return !any;
}

/* 1 when src (a document's source) matches q, 0 when not, -1 when q is
 * not one the double knows (why says which). */
int query_match(const json_t *q, const json_t *src, char *why, size_t whylen)
{
    void *it = json_is_object(q) && json_object_size(q) == 1 ? json_object_iter((json_t *)q)
                                                              : NULL;
    const char *kind = it ? json_object_iter_key(it) : "";
    json_t *body = it ? json_object_iter_value(it) : NULL, *val, *vals;
    const char *field;
    size_t i;
    json_t *v;
    int m = 0;

    if (strcmp(kind, "match_all") == 0)
        return 1;
    if (strcmp(kind, "term") == 0 || strcmp(kind, "match") == 0) {
        bool term = kind[0] == 't';

        if (!(field = leaf(body, term ? "value" : "query", &val)) ||
            (!term && !json_is_string(val))) {
            snprintf(why, whylen, "[%s] query malformed", kind);
            return -1;
        }
        vals = values_at(src, field);
        if (term) {
            json_array_foreach(vals, i, v)
                if ((m = term_equal(v, val)))
                    break;
        } else {
            m = match_text(vals, json_string_value(val));
        }
        json_decref(vals);
        return m;
    }
    if (strcmp(kind, "bool") == 0 && json_is_object(body)) {
        json_t *must = json_object_get(body, "must"), *filter = json_object_get(body, "filter");
        json_t *should = json_object_get(body, "should");
        json_t *must_not = json_object_get(body, "must_not");

        if (must && (m = all_of(must, src, true, false, why, whylen)) != 1)
            return m;
        if (filter && (m = all_of(filter, src, true, false, why, whylen)) != 1)
            return m;
        if (must_not && (m = all_of(must_not, src, false, false, why, whylen)) != 1)
            return m;
        if (should && !must && !filter)
            return all_of(should, src, true, true, why, whylen);
        return 1;
    }
    snprintf(why, whylen, "query [%s] is not supported by the search double "
                          "(match_all, term, match, bool)", kind);
    return -1;
}
