#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Documents as the engines parse them
 *
 * One pass over the source text and no tree: the JSON is read as Jackson's
 * UTF8StreamJsonParser reads it, field names are checked as DocumentParser
 * checks them, and every value meets the index's dynamic mapping (the field
 * path -> type learned from the documents accepted so far) the way the
 * engine's field mapper takes it: coerced, or refused with the engine's
 * error.  Fields first seen in a document join the mapping only if the
 * document is accepted.  tests/tools/ENGINE-RULES.md has the rules, the
 * sources they come from and what could not be confirmed; the comments
 * below name the source file each piece follows.                           */

struct scratch scr;

#define NEST_MAX 1000 /* Jackson 2.15 StreamReadConstraints.DEFAULT_MAX_DEPTH */

const char *doc_error(const struct chk *c)
{
    return c->fl == FL_ES8 ? "document_parsing_exception" : "mapper_parsing_exception";
}

struct loc loc_at(const struct chk *c, const char *at)
{
    return (struct loc){ c->line, (int)(at - c->row) + 1 };
}

/* A JSON string value for text that may hold any byte: what JSON cannot
 * carry (bytes outside UTF-8, encoded surrogates) becomes U+FFFD. */
static json_t *jtext(const char *p, size_t n)
{
    struct buf b;
    json_t *j;

    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        size_t k = ch < 0x80 ? 1 : ch >= 0xC2 && ch <= 0xDF ? 2 : ch >= 0xE0 && ch <= 0xEF ? 3
                 : ch >= 0xF0 && ch <= 0xF4 ? 4 : 0;
        bool ok = k > 0 && i + k <= n;
        for (size_t j2 = 1; ok && j2 < k; j2++)
            ok = ((unsigned char)p[i + j2] & 0xC0) == 0x80;
        if (ok && k == 3) {
            unsigned cp = (ch & 0x0Fu) << 12 | ((unsigned char)p[i + 1] & 0x3Fu) << 6;
            ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        } else if (ok && k == 4) {
            unsigned cp = (ch & 0x07u) << 18 | ((unsigned char)p[i + 1] & 0x3Fu) << 12;
            ok = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        if (ok) {
            buf_append(&b, p + i, k);
            i += k;
        } else {
            buf_puts(&b, "\xEF\xBF\xBD");
            i++;
        }
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_close(&b);
    return j;
}

/* {"type":type,"reason":reason[,"caused_by":cause]}; takes cause. */
json_t *err_text(const char *type, const struct buf *reason, json_t *cause)
{
    json_t *e = json_object();

    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "reason", jtext(reason->ptr ? reason->ptr : "", reason->len));
    if (cause)
        json_object_set_new(e, "caused_by", cause);
    return e;
}
json_t *errf(const char *type, const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(type, &b, NULL);
    buf_close(&b);
    return e;
}

void refuse(struct chk *c, json_t *e)
{
    if (!c->err)
        c->err = e;
    else
        json_decref(e);
}

/* Jackson's description of a character in its messages (_getCharDesc). */
static void char_desc(char *out, size_t n, const char *p, const char *e)
{
    unsigned char ch = p < e ? (unsigned char)*p : 0;

    if (p >= e)
        snprintf(out, n, "end-of-input");
    else if (ch < 0x20 || ch == 0x7F)
        snprintf(out, n, "(CTRL-CHAR, code %u)", ch);
    else if (ch < 0x80)
        snprintf(out, n, "'%c' (code %u)", ch, ch);
    else
        snprintf(out, n, "(code %u)", ch);
}

/* A JSON error from Jackson.  es8: JsonXContentParser turns it into an
 * XContentParseException, which DocumentParser#wrapInDocumentParsingException
 * wraps ("failed to parse: ..."); os2: DocumentParser#wrapInMapperParsingException
 * wraps the Jackson exception itself.  Jackson's location suffix
 * ("\n at [Source: ...]") is left out: its text depends on the version. */
int bad_json(struct chk *c, const char *at, const char *fmt, ...)
{
    struct buf m, r;
    struct loc l = loc_at(c, at);
    va_list ap;

    if (c->err)
        return -1;
    buf_init(&m, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    if (c->fl == FL_ES8) {
        buf_printf(&r, "[%d:%d] failed to parse: [%d:%d] %s", l.line, l.col, l.line, l.col, m.ptr);
        json_t *cause = errf("x_content_parse_exception", "[%d:%d] %s", l.line, l.col, m.ptr);
        c->err = err_text(doc_error(c), &r, cause);
    } else {
        buf_puts(&r, "failed to parse");
        c->err = err_text(doc_error(c), &r, err_text("json_parse_exception", &m, NULL));
    }
    buf_close(&m);
    buf_close(&r);
    return -1;
}

static int bad_char(struct chk *c, const char *at, const char *what)
{
    char d[40];

    char_desc(d, sizeof(d), at, c->e);
    if (at >= c->e)
        return bad_json(c, at, "Unexpected end-of-input: %s", what);
    return bad_json(c, at, "Unexpected character (%s): %s", d, what);
}

/* The cause an engine gives for an error Jackson raised while a field mapper
 * read a value (es8: XContentParseException with the location; os2: the
 * Jackson exception itself). */
json_t *jackson_cause(const struct chk *c, const char *os_type, struct loc at,
                      const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&b, "[%d:%d] ", at.line, at.col);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(c->fl == FL_ES8 ? "x_content_parse_exception" : os_type, &b, NULL);
    buf_close(&b);
    return e;
}

/* bad_field_named for the field at scr.path[0..plen).  Takes cause. */
int bad_field(struct chk *c, size_t plen, const char *type, struct loc at,
              const char *preview, size_t pvlen, json_t *cause)
{
    return bad_field_named(c, scr.path.ptr, plen, type, at, preview, pvlen, cause);
}

/* A field name DocumentParser refuses (an IllegalArgumentException:
 * es8 DocumentParser#wrapInDocumentParsingException "failed to parse: ...",
 * os2 DocumentParser#wrapInMapperParsingException "failed to parse"). */
int bad_name(struct chk *c, struct loc at, const char *fmt, ...)
{
    struct buf m, r;
    va_list ap;

    buf_init(&m, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] failed to parse: ", at.line, at.col);
    else
        buf_puts(&r, "failed to parse");
    if (c->fl == FL_ES8)
        buf_append(&r, m.ptr, m.len);
    refuse(c, err_text(doc_error(c), &r, err_text("illegal_argument_exception", &m, NULL)));
    buf_close(&m);
    buf_close(&r);
    return -1;
}

/* ---- Jackson's tokens --------------------------------------------------- */

void skip_blank(struct chk *c)
{
    /* JSON whitespace; Jackson counts a line at '\n', '\r' and "\r\n" */
    while (c->p < c->e) {
        char ch = *c->p;
        if (ch == ' ' || ch == '\t') {
            c->p++;
        } else if (ch == '\n' || ch == '\r') {
            c->p += ch == '\r' && c->p + 1 < c->e && c->p[1] == '\n' ? 2 : 1;
            c->line++;
            c->row = c->p;
        } else {
            break;
        }
    }
}

static void put_utf8(struct buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) { /* lone surrogates too, as three bytes */
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

/* The code unit the 4 hex digits at p spell, or -1 when one is not a hex
 * digit. */
static long hex4(const char *p)
{
    long v = 0;

    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Reads the string at c->p (on its '"') as UTF8StreamJsonParser does
 * (jackson-core 2.x, _finishString2/_decodeEscaped/_decodeUtf8_*):
 * characters below 0x20 must be escaped; escapes are the JSON ones and
 * \uXXXX with any code unit, lone surrogates included; other bytes must
 * follow Jackson's UTF-8 table: a lead byte C0..F7 and continuation bytes
 * 80..BF (overlong forms and encoded surrogates pass, as in Jackson).
 * out, when not NULL, gets the decoded text (surrogate pairs joined). */
static int read_string(struct chk *c, struct buf *out, bool name)
{
    const char *p = c->p + 1, *e = c->e;
    const char *what = name ? "name" : "string value";
    char d[40];

    while (p < e) {
        const char *run = p;
        while (p < e && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\')
            p++;
        if (out && p > run)
            buf_append(out, run, (size_t)(p - run));
        if (p >= e)
            break;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            c->p = p + 1;
            return 0;
        }
        if (ch == '\\') {
            static const char plain[] = "\"\\/bfnrt", as[] = "\"\\/\b\f\n\r\t";
            const char *k;
            unsigned u;
            long lo;
            if (p + 1 >= e)
                break;
            if (p[1] != 'u') {
                if (!(k = memchr(plain, p[1], sizeof(plain) - 1))) {
                    char_desc(d, sizeof(d), p + 1, e);
                    return bad_json(c, p + 1, "Unrecognized character escape %s", d);
                }
                if (out)
                    buf_putc(out, as[k - plain]);
                p += 2;
                continue;
            }
            for (int i = 0; i < 4; i++)
                if (p + 2 + i >= e || hex_value(p[2 + i]) < 0) {
                    if (p + 2 + i >= e)
                        return bad_json(c, e, "Unexpected end-of-input in character escape "
                                              "sequence");
                    char_desc(d, sizeof(d), p + 2 + i, e);
                    return bad_json(c, p + 2 + i, "Unexpected character (%s): expected a "
                                                  "hex-digit for character escape sequence", d);
                }
            u = (unsigned)hex4(p + 2); /* four hex digits, checked above */
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                (lo = hex4(p + 2)) >= 0xDC00 && lo <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (unsigned)(lo - 0xDC00);
                p += 6;
            }
            if (out)
                put_utf8(out, u);
            continue;
        }
        if (ch < 0x20) {
            char_desc(d, sizeof(d), p, e);
            return bad_json(c, p, "Illegal unquoted character (%s): has to be escaped using "
                                  "backslash to be included in %s", d, what);
        }
        size_t n = (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4
                 : 0;
        if (n == 0)
            return bad_json(c, p, "Invalid UTF-8 start byte 0x%x", ch);
        for (size_t i = 1; i < n; i++) {
            if (p + i >= e)
                return bad_json(c, e, "Unexpected end-of-input in a string value");
            if (((unsigned char)p[i] & 0xC0) != 0x80)
                return bad_json(c, p + i, "Invalid UTF-8 middle byte 0x%x",
                                (unsigned char)p[i]);
        }
        if (out)
            buf_append(out, p, n);
        p += n;
    }
    return bad_json(c, e, "Unexpected end-of-input: was expecting closing quote for a %s", what);
}

/* Decodes a string already read by read_string (p, e: inside the quotes). */
void decode_string(const char *p, const char *e, struct buf *out)
{
    while (p < e) {
        if (*p != '\\') {
            const char *q = memchr(p, '\\', (size_t)(e - p));
            q = q ? q : e;
            buf_append(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (p[1] != 'u') {
            static const char plain[] = "\"\\/bfnrt", as[] = "\"\\/\b\f\n\r\t";
            buf_putc(out, as[(const char *)memchr(plain, p[1], sizeof(plain) - 1) - plain]);
            p += 2;
            continue;
        }
        unsigned u = (unsigned)hex4(p + 2); /* read_string checked the four digits */
        long lo;
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            (lo = hex4(p + 2)) >= 0xDC00 && lo <= 0xDFFF) {
            u = 0x10000 + ((u - 0xD800) << 10) + (unsigned)(lo - 0xDC00);
            p += 6;
        }
        put_utf8(out, u);
    }
}

/* Whether an integer literal fits a Java long (Jackson's NumberType INT or
 * LONG rather than BIG_INTEGER). */
static bool fits_long(const char *p, const char *e)
{
    static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
    bool neg = *p == '-';
    size_t n;

    p += neg;
    n = (size_t)(e - p);
    if (n != 19)
        return n < 19;
    return memcmp(p, neg ? min : max, 19) <= 0;
}

/* A number, true, false or null (ReaderBasedJsonParser/UTF8StreamJsonParser
 * _parsePosNumber, _parseNegNumber, _matchToken). */
int read_scalar(struct chk *c, struct val *v)
{
    const char *p = c->p, *s = p, *e = c->e;
    bool frac = false;

    v->at = loc_at(c, s);
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        if (*p == '-' && (++p >= e || *p < '0' || *p > '9'))
            return bad_char(c, p, "expected digit (0-9) to follow minus sign, for valid "
                                  "numeric value");
        if (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9')
            return bad_json(c, p + 1, "Invalid numeric value: Leading zeroes not allowed");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p < e && *p == '.') {
            frac = true;
            if (++p >= e || *p < '0' || *p > '9')
                return bad_char(c, p, "Decimal point not followed by a digit");
            while (p < e && *p >= '0' && *p <= '9')
                p++;
        }
        if (p < e && (*p == 'e' || *p == 'E')) {
            frac = true;
            if (++p < e && (*p == '+' || *p == '-'))
                p++;
            if (p >= e || *p < '0' || *p > '9')
                return bad_char(c, p, "Exponent indicator not followed by a digit");
            while (p < e && *p >= '0' && *p <= '9')
                p++;
        }
        v->kind = frac ? VK_FLOAT : fits_long(s, p) ? VK_INT : VK_BIGINT;
    } else {
        static const char *const lits[] = { "true", "false", "null" };
        static const enum vkind kinds[] = { VK_TRUE, VK_FALSE, VK_NULL };
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t n = strlen(lits[i]);
            if ((size_t)(e - s) >= n && memcmp(s, lits[i], n) == 0)
                break;
        }
        if (i == 3)
            return bad_char(c, s, "expected a valid value (JSON String, Number, Array, Object "
                                  "or token 'null', 'true' or 'false')");
        p = s + strlen(lits[i]);
        v->kind = kinds[i];
    }
    /* a token must end where a JSON delimiter can follow */
    if (p < e && (isalnum((unsigned char)*p) || *p == '_' || *p == '$' || *p == '.' ||
                  (unsigned char)*p >= 0x80)) {
        const char *q = p;
        while (q < e && (isalnum((unsigned char)*q) || *q == '_' || *q == '$' || *q == '.'))
            q++;
        return bad_json(c, s, "Unrecognized token '%.*s': was expecting (JSON String, Number, "
                              "Array, Object or token 'null', 'true' or 'false')",
                        (int)(q - s > 256 ? 256 : q - s), s);
    }
    v->p = s;
    v->e = p;
    c->p = p;
    return 0;
}

int read_string_val(struct chk *c, struct val *v)
{
    v->at = loc_at(c, c->p);
    v->kind = VK_STRING;
    v->p = c->p + 1;
    if (read_string(c, NULL, false) < 0)
        return -1;
    v->e = c->p - 1;
    return 0;
}

/* Jackson's duplicate detection (JsonParser.Feature.STRICT_DUPLICATE_DETECTION,
 * set by both engines' JsonXContent): a name twice in one object. */
static bool dup_key(unsigned long obj, size_t off, size_t len)
{
    uint64_t h = hash_bytes(scr.keys.ptr + off, len) ^ (obj * 0x9e3779b97f4a7c15ULL);
    size_t i;

    if ((scr.dupn + 1) * 2 > scr.dupcap) {
        size_t ncap = scr.dupcap ? scr.dupcap * 2 : 256;
        struct dupkey *n = calloc(ncap, sizeof(*n)), *old = scr.dup;
        if (!n)
            return false;
        for (size_t j = 0; j < scr.dupcap; j++) {
            if (old[j].gen != scr.gen)
                continue;
            for (i = old[j].hash & (ncap - 1); n[i].gen == scr.gen; i = (i + 1) & (ncap - 1))
                ;
            n[i] = old[j];
        }
        free(old);
        scr.dup = n;
        scr.dupcap = ncap;
    }
    for (i = h & (scr.dupcap - 1); scr.dup[i].gen == scr.gen; i = (i + 1) & (scr.dupcap - 1)) {
        const struct dupkey *d = &scr.dup[i];
        if (d->hash == h && d->obj == obj && d->len == len &&
            memcmp(scr.keys.ptr + d->off, scr.keys.ptr + off, len) == 0)
            return true;
    }
    scr.dup[i] = (struct dupkey){ scr.gen, obj, h, off, len };
    scr.dupn++;
    return false;
}

/* The members of the object at c->p: each key read and checked, then
 * member() for it (raw: JSON only, as when a value is read for a preview). */

int object(struct chk *c, size_t base, bool raw)
{
    unsigned long obj = ++c->obj;

    if (++c->nest > NEST_MAX)
        return bad_json(c, c->p, "Document nesting depth (%d) exceeds the maximum allowed "
                                 "(%d, from `StreamReadConstraints.getMaxNestingDepth()`)",
                        c->nest, NEST_MAX);
    c->p++;
    skip_blank(c);
    if (c->p < c->e && *c->p == '}') {
        c->p++;
        c->nest--;
        return 0;
    }
    for (;;) {
        struct loc kat;
        size_t koff = scr.keys.len;
        if (c->p >= c->e || *c->p != '"')
            return bad_char(c, c->p, "was expecting double-quote to start field name");
        kat = loc_at(c, c->p);
        if (read_string(c, &scr.keys, true) < 0)
            return -1;
        if (dup_key(obj, koff, scr.keys.len - koff))
            return bad_json(c, c->p, "Duplicate field '%.*s'", (int)(scr.keys.len - koff),
                            scr.keys.ptr + koff);
        skip_blank(c);
        if (c->p >= c->e || *c->p != ':')
            return bad_char(c, c->p, "was expecting a colon to separate field name and value");
        c->p++;
        skip_blank(c);
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
        if ((raw ? skip_value(c) : member(c, base, kat, koff, scr.keys.len - koff)) < 0)
            return -1;
        skip_blank(c);
        if (c->p < c->e && *c->p == ',') {
            c->p++;
            skip_blank(c);
            continue;
        }
        if (c->p < c->e && *c->p == '}') {
            c->p++;
            c->nest--;
            return 0;
        }
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected close marker for "
                                     "Object");
        return bad_char(c, c->p, "was expecting comma to separate Object entries");
    }
}

/* Calls each(c, arg) for every element of the array at c->p. */
int array(struct chk *c, int (*each)(struct chk *, void *), void *arg)
{
    if (++c->nest > NEST_MAX)
        return bad_json(c, c->p, "Document nesting depth (%d) exceeds the maximum allowed "
                                 "(%d, from `StreamReadConstraints.getMaxNestingDepth()`)",
                        c->nest, NEST_MAX);
    c->p++;
    skip_blank(c);
    if (c->p < c->e && *c->p == ']') {
        c->p++;
        c->nest--;
        return 0;
    }
    for (;;) {
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
        if (each(c, arg) < 0)
            return -1;
        skip_blank(c);
        if (c->p < c->e && *c->p == ',') {
            c->p++;
            skip_blank(c);
            continue;
        }
        if (c->p < c->e && *c->p == ']') {
            c->p++;
            c->nest--;
            return 0;
        }
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected close marker for "
                                     "Array");
        return bad_char(c, c->p, "was expecting comma to separate Array entries");
    }
}

static int skip_each(struct chk *c, void *arg)
{
    return skip_value(c);
}

/* Reads one value checking only the JSON. */
int skip_value(struct chk *c)
{
    struct val v;

    if (c->p >= c->e)
        return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
    if (*c->p == '{')
        return object(c, 0, true);
    if (*c->p == '[')
        return array(c, skip_each, NULL);
    if (*c->p == '"')
        return read_string_val(c, &v);
    return read_scalar(c, &v);
}

/* ---- values as Java prints them (the previews in the engines' errors) --- */

/* Double.toString (JDK 19+: the shortest decimal that reads back). */
void java_double(double d, struct buf *out)
{
    char t[40], digits[24];
    int prec, exp10, nd = 0;

    if (isnan(d)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(d)) {
        buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        buf_puts(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof(t), "%.*e", prec - 1, d);
        if (strtod(t, NULL) == d)
            break;
    }
    const char *q = t;
    if (*q == '-') {
        buf_putc(out, '-');
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    double a = fabs(d);
    if (a >= 1e-3 && a < 1e7) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                buf_putc(out, i < nd ? digits[i] : '0');
            buf_putc(out, '.');
            if (nd > exp10 + 1)
                buf_append(out, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            else
                buf_putc(out, '0');
        } else {
            buf_puts(out, "0.");
            for (int i = 0; i < -exp10 - 1; i++)
                buf_putc(out, '0');
            buf_append(out, digits, (size_t)nd);
        }
    } else {
        buf_putc(out, digits[0]);
        buf_putc(out, '.');
        if (nd > 1)
            buf_append(out, digits + 1, (size_t)(nd - 1));
        else
            buf_putc(out, '0');
        buf_printf(out, "E%d", exp10);
    }
}

/* A number as Jackson's numberValue() gives it and Java prints it: an
 * Integer, Long or BigInteger in plain digits, else a Double. */
static void java_number(const char *p, const char *e, bool frac, struct buf *out)
{
    if (frac) {
        char *t = strndup(p, (size_t)(e - p));
        java_double(t ? strtod(t, NULL) : 0, out);
        free(t);
        return;
    }
    if (*p == '-' && e - p == 2 && p[1] == '0')
        p++; /* -0 is the integer 0 */
    buf_append(out, p, (size_t)(e - p));
}

/* String#hashCode of a decoded (Jackson-decoded UTF-8) text. */
uint32_t java_hash(const char *p, size_t n)
{
    uint32_t h = 0;

    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        unsigned cp;
        size_t k = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        if (i + k > n)
            k = n - i;
        cp = k == 1 ? ch : k == 2 ? (ch & 0x1Fu) : k == 3 ? (ch & 0x0Fu) : (ch & 0x07u);
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | ((unsigned char)p[i + j] & 0x3Fu);
        i += k;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xD800 + (cp >> 10));
            h = 31 * h + (0xDC00 + (cp & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
    }
    return h;
}

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->ins < y->ins ? -1 : x->ins > y->ins;
}

/* The order java.util.HashMap (as AbstractXContentParser#readValue builds it)
 * iterates its entries: by bucket of the spread hash at the final table size
 * (16, doubled past 3/4 full, and while a bucket would hold a ninth entry
 * before the table reaches 64), then in insertion order.  Buckets turned into
 * trees (64 slots and more) are taken in insertion order too. */
void hashmap_order(struct entry *v, size_t n)
{
    uint32_t cap = 16, thr = 12;

    for (size_t i = 0; i < n; i++) {
        uint32_t h = v[i].h ^ (v[i].h >> 16);
        v[i].h = h;
        if (n <= 2000 && cap < 64) {
            size_t same = 0;
            for (size_t j = 0; j < i; j++)
                same += (v[j].h & (cap - 1)) == (h & (cap - 1));
            if (same >= 8) {
                cap *= 2;
                thr = cap / 4 * 3;
            }
        }
        if (i + 1 > thr) {
            cap *= 2;
            thr = cap / 4 * 3;
        }
    }
    for (size_t i = 0; i < n; i++)
        v[i].slot = v[i].h & (cap - 1);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_entry);
}

static const char *render_blank(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Renders the (valid) JSON value at p as Object#toString prints what
 * AbstractXContentParser#readValue makes of it: maps "{k=v, ...}", lists
 * "[a, b]", strings as they are.  Returns the end of the value. */
const char *render(const char *p, const char *e, struct buf *out)
{
    p = render_blank(p, e);
    if (p >= e)
        return p;
    if (*p == '"') {
        const char *q = p + 1;
        while (*q != '"')
            q += *q == '\\' ? 2 : 1;
        decode_string(p + 1, q, out);
        return q + 1;
    }
    if (*p == '[') {
        bool first = true;
        buf_putc(out, '[');
        p = render_blank(p + 1, e);
        while (p < e && *p != ']') {
            if (!first)
                buf_puts(out, ", ");
            first = false;
            p = render_blank(render(p, e, out), e);
            if (p < e && *p == ',')
                p++;
        }
        buf_putc(out, ']');
        return p + 1;
    }
    if (*p == '{') {
        struct entry *v = NULL;
        size_t n = 0, cap = 0;
        p = render_blank(p + 1, e);
        while (p < e && *p != '}') {
            struct buf k, val;
            const char *q = p + 1;
            while (*q != '"')
                q += *q == '\\' ? 2 : 1;
            buf_init(&k, BUF_NOMAX);
            buf_init(&val, BUF_NOMAX);
            decode_string(p + 1, q, &k);
            p = render_blank(q + 1, e) + 1; /* the ':' */
            p = render_blank(render(p, e, &val), e);
            if (p < e && *p == ',')
                p = render_blank(p + 1, e);
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct entry *nv = realloc(v, cap * sizeof(*v));
                if (!nv) {
                    buf_close(&k);
                    buf_close(&val);
                    break;
                }
                v = nv;
            }
            v[n].kl = k.len;
            v[n].vl = val.len;
            v[n].k = buf_take(&k);
            v[n].v = buf_take(&val);
            v[n].h = java_hash(v[n].k, v[n].kl);
            v[n].ins = n;
            n++;
        }
        hashmap_order(v, n);
        buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_puts(out, ", ");
            buf_append(out, v[i].k, v[i].kl);
            buf_putc(out, '=');
            buf_append(out, v[i].v, v[i].vl);
            free(v[i].k);
            free(v[i].v);
        }
        free(v);
        buf_putc(out, '}');
        return p + 1;
    }
    const char *q = p;
    bool frac = false;
    while (q < e && !strchr(",]} \t\n\r", *q)) {
        frac |= *q == '.' || *q == 'e' || *q == 'E';
        q++;
    }
    if (*p == 't' || *p == 'f' || *p == 'n')
        buf_append(out, p, (size_t)(q - p));
    else
        java_number(p, q, frac, out);
    return q;
}

void scalar_text(const struct val *v, struct buf *out)
{
    switch (v->kind) {
    case VK_STRING: decode_string(v->p, v->e, out); break;
    case VK_INT:
    case VK_BIGINT: java_number(v->p, v->e, false, out); break;
    case VK_FLOAT: java_number(v->p, v->e, true, out); break;
    case VK_TRUE: buf_puts(out, "true"); break;
    case VK_FALSE: buf_puts(out, "false"); break;
    case VK_NULL: buf_puts(out, "null"); break;
    }
}

const char *token_name(enum vkind k)
{
    switch (k) {
    case VK_STRING: return "VALUE_STRING";
    case VK_INT:
    case VK_BIGINT: return "VALUE_NUMBER_INT";
    case VK_FLOAT: return "VALUE_NUMBER_FLOAT";
    case VK_TRUE: return "VALUE_TRUE";
    case VK_FALSE: return "VALUE_FALSE";
    case VK_NULL: return "VALUE_NULL";
    }
    return "?";
}
