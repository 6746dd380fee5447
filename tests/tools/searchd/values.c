#include "searchd_int.h"

/* ---- the mapping ---------------------------------------------------------- */

/* Character#isWhitespace (what String#isBlank and the engines' hasText test). */
static bool java_space(unsigned cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x2006) || (cp >= 0x2008 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x205F || cp == 0x3000;
}

bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        size_t k = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        unsigned cp = k == 1 ? ch : k == 2 ? (ch & 0x1Fu) : k == 3 ? (ch & 0x0Fu) : (ch & 0x07u);
        if (i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | ((unsigned char)p[i + j] & 0x3Fu);
        if (!java_space(cp))
            return false;
        i += k;
    }
    return true;
}

/* The field at a path: mapped, or new in this document (*pending). */
struct field *lookup(const struct chk *c, const char *path, size_t n, bool *pending)
{
    struct field *f = map_get(&c->ix->fields, path, n);

    *pending = false;
    if (f)
        return f;
    f = map_get(&scr.pending, path, n);
    *pending = f != NULL;
    return f;
}

/* A field new in this document; the mapping takes it if the document is
 * accepted.  Takes f. */
void learn(const char *path, size_t n, struct field *f)
{
    if (map_get(&scr.pending, path, n) || !map_put(&scr.pending, path, n, f))
        field_free(f);
}

/* Two fields of one path new in the same document: each value made its own
 * dynamic mapper and merging them fails when the mapping update is built
 * (DocumentParser#createDynamicUpdate, FieldMapper/ObjectMapper#merge).  The
 * document is refused after it has been read whole. */
void clash(struct chk *c, size_t plen, enum ftype was, enum ftype now)
{
    struct buf r;

    if (c->late || was == now)
        return;
    buf_init(&r, BUF_NOMAX);
    if (now == FT_OBJECT) {
        buf_puts(&r, "can't merge a non object mapping [");
        buf_append(&r, scr.path.ptr, plen);
        buf_puts(&r, "] with an object mapping");
    } else {
        buf_puts(&r, "mapper [");
        buf_append(&r, scr.path.ptr, plen);
        buf_printf(&r, "] cannot be changed from type [%s] to [%s]", ftype_name[now],
                   was == FT_OBJECT ? "ObjectMapper" : ftype_name[was]);
    }
    c->late = err_text("illegal_argument_exception", &r, NULL);
    buf_close(&r);
}

static int two_digits(const char *p, int lo, int hi)
{
    int v;

    if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
        return -1;
    v = (p[0] - '0') * 10 + (p[1] - '0');
    return v >= lo && v <= hi ? v : -1;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* yyyy-MM[-dd[THH[:mm[:ss[.S{1,9}]]][Z|+HH[:mm]|+HHmm]]], the forms of
 * strict_date_optional_time this double knows, or yyyy/MM/dd[ HH:mm:ss][ +HHmm]
 * (the second default dynamic date format).  Used both to detect a date
 * field and to accept a value into one; a string the engine would also read
 * as a date but this grammar does not is refused (stricter). */
static bool date_text(const char *p, size_t n)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    const char *e = p + n;
    int y = 0, m, d, i;

    if (n < 7)
        return false;
    for (i = 0; i < 4; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        y = y * 10 + (p[i] - '0');
    }
    if (p[4] == '/') {
        if (n < 10 || (m = two_digits(p + 5, 1, 12)) < 0 || p[7] != '/' ||
            (d = two_digits(p + 8, 1, 31)) < 0 || d > mdays[m - 1] + (m == 2 && leap(y)))
            return false;
        p += 10;
        if (e - p >= 9 && *p == ' ' && p[3] == ':' && p[6] == ':') {
            if (two_digits(p + 1, 0, 23) < 0 || two_digits(p + 4, 0, 59) < 0 ||
                two_digits(p + 7, 0, 59) < 0)
                return false;
            p += 9;
        }
        if (e - p == 6 && *p == ' ' && (p[1] == '+' || p[1] == '-'))
            return two_digits(p + 2, 0, 18) >= 0 && two_digits(p + 4, 0, 59) >= 0;
        return p == e;
    }
    if (p[4] != '-' || (m = two_digits(p + 5, 1, 12)) < 0)
        return false;
    p += 7;
    if (p == e)
        return true;
    if (e - p < 3 || *p != '-' || (d = two_digits(p + 1, 1, 31)) < 0 ||
        d > mdays[m - 1] + (m == 2 && leap(y)))
        return false;
    p += 3;
    if (p == e)
        return true;
    if (e - p < 3 || *p != 'T' || two_digits(p + 1, 0, 23) < 0)
        return false;
    p += 3;
    if (e - p >= 3 && *p == ':') {
        if (two_digits(p + 1, 0, 59) < 0)
            return false;
        p += 3;
        if (e - p >= 3 && *p == ':') {
            if (two_digits(p + 1, 0, 59) < 0)
                return false;
            p += 3;
            if (p < e && (*p == '.' || *p == ',')) {
                const char *f = ++p;
                while (p < e && *p >= '0' && *p <= '9')
                    p++;
                if (p == f || p - f > 9)
                    return false;
            }
        }
    }
    if (p == e)
        return true;
    if (*p == 'Z')
        return p + 1 == e;
    if (*p != '+' && *p != '-')
        return false;
    if (e - p < 3 || two_digits(p + 1, 0, 18) < 0)
        return false;
    p += 3;
    if (p == e)
        return true;
    if (*p == ':')
        p++;
    return e - p == 2 && two_digits(p, 0, 59) >= 0;
}
const char *const xft_name[XFT_N] = { "object", "string", "long", "double", "boolean",
                                      "date", "binary" };
/* XContentFieldType#defaultMappingType: what {dynamic_type} stands for. */
const char *const xft_mapping[XFT_N] = { "object", "text", "long", "float", "boolean",
                                         "date", "binary" };

static int java_parse_fp(const char *s, size_t n, bool single, double *out);

/* Long#parseLong: an optional sign and ASCII digits within the long range. */
static bool java_parse_long(const char *p, size_t n)
{
    size_t i = p && n && (*p == '-' || *p == '+');

    if (i == n)
        return false;
    for (size_t j = i; j < n; j++)
        if (p[j] < '0' || p[j] > '9')
            return false;
    if (n - i != 19)
        return n - i < 19;
    return memcmp(p + i, *p == '-' ? "9223372036854775808" : "9223372036854775807", 19) <= 0;
}

enum xft value_xft(const struct chk *c, const struct val *v)
{
    const struct mapping *m = &c->ix->mapping;
    bool num_long, num_double;
    double d;

    switch (v->kind) {
    case VK_INT:
    case VK_BIGINT: return XFT_LONG;
    case VK_FLOAT: return XFT_DOUBLE;
    case VK_TRUE:
    case VK_FALSE: return XFT_BOOLEAN;
    default: break;
    }
    /* a string: dates start with a digit (or an escape), numbers need detection on */
    if (!m->numeric_detection &&
        !(m->date_detection && v->e - v->p >= 7 && ((*v->p >= '0' && *v->p <= '9') ||
                                                    *v->p == '\\')))
        return XFT_STRING;
    buf_reset(&scr.text);
    decode_string(v->p, v->e, &scr.text);
    num_long = java_parse_long(scr.text.ptr, scr.text.len);
    num_double = num_long || java_parse_fp(scr.text.ptr, scr.text.len, false, &d) >= -2;
    if (m->numeric_detection && (num_long || num_double))
        return num_long ? XFT_LONG : XFT_DOUBLE;
    if (!num_double && m->date_detection && date_text(scr.text.ptr, scr.text.len))
        return XFT_DATE;
    return XFT_STRING;
}

/* AbstractXContentParser#toLong with coercion on (NumberFieldMapper's
 * default): Long.parseLong, else a BigDecimal truncated toward zero that
 * must fit a long.  0: taken; -1: not a number; -2: out of range.  Only
 * ASCII digits are read (Java also reads other Unicode digits: stricter). */
static int java_to_long(const char *s, size_t n)
{
    const char *p = s, *e = s + n;
    char digits[64], ip[24];
    size_t nd = 0, nfrac = 0, total = 0, nip = 0;
    bool neg = false, point = false, nonzero = false;
    long exp10 = 0, shift, keep;

    if (p < e && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    for (; p < e && ((*p >= '0' && *p <= '9') || (*p == '.' && !point)); p++) {
        if (*p == '.') {
            point = true;
            continue;
        }
        total++;
        nfrac += point;
        if (*p != '0')
            nonzero = true;
        if (nonzero && nd < sizeof(digits))
            digits[nd] = *p; /* significant digits (leading zeros dropped) */
        nd += nonzero;
    }
    if (total == 0)
        return -1;
    if (p < e && (*p == 'e' || *p == 'E')) {
        bool eneg = false;
        const char *ed;
        if (++p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        for (ed = p; p < e && *p >= '0' && *p <= '9'; p++)
            if (exp10 < 100000000)
                exp10 = exp10 * 10 + (*p - '0');
        if (p == ed)
            return -1;
        exp10 = eneg ? -exp10 : exp10;
    }
    if (p != e)
        return -1;
    /* value = digits x 10^shift; the integer part keeps nd + shift digits */
    shift = exp10 - (long)nfrac;
    keep = (long)nd + shift;
    if (!nonzero || keep <= 0)
        return 0;
    if (keep > 19)
        return -2;
    for (long i = 0; i < keep; i++) /* keep <= 19 < sizeof(digits) */
        ip[nip++] = i < (long)nd ? digits[i] : '0';
    ip[nip] = '\0';
    if (nip == 19 && strcmp(ip, neg ? "9223372036854775808" : "9223372036854775807") > 0)
        return -2;
    return 0;
}

/* Double#parseDouble (Float#parseFloat when single): surrounding blanks
 * (chars <= ' ') trimmed, an optional sign, NaN, Infinity, or digits with a
 * point and an exponent and an f/F/d/D suffix.  *out gets the value.
 * 0: finite; -1: infinite; -2: NaN; -3: blank ("empty String"); -4: not a
 * number.  Hexadecimal forms are refused (Java reads them: stricter). */
static int java_parse_fp(const char *s, size_t n, bool single, double *out)
{
    const char *p = s, *e = s + n, *d0;
    char small[64], *t = small, *end;
    bool digits = false;
    int rc;

    *out = 0;
    while (p < e && (unsigned char)*p <= ' ')
        p++;
    while (e > p && (unsigned char)e[-1] <= ' ')
        e--;
    if (p == e)
        return -3;
    d0 = p + (*p == '+' || *p == '-');
    if ((size_t)(e - d0) == 3 && memcmp(d0, "NaN", 3) == 0) {
        *out = NAN;
        return -2;
    }
    if ((size_t)(e - d0) == 8 && memcmp(d0, "Infinity", 8) == 0) {
        *out = *p == '-' ? -INFINITY : INFINITY;
        return -1;
    }
    if (e > d0 && strchr("fFdD", e[-1]))
        e--;
    for (const char *q = d0; q < e; q++) {
        if (*q >= '0' && *q <= '9')
            digits = true;
        else if (!(*q == '.' || *q == 'e' || *q == 'E' ||
                   ((*q == '+' || *q == '-') && q > d0 && (q[-1] == 'e' || q[-1] == 'E'))))
            return -4;
    }
    if (!digits)
        return -4;
    if ((size_t)(e - p) >= sizeof(small) && !(t = malloc((size_t)(e - p) + 1)))
        return -4;
    memcpy(t, p, (size_t)(e - p));
    t[e - p] = '\0';
    *out = single ? (double)strtof(t, &end) : strtod(t, &end);
    rc = *end || end == t ? -4 : isinf(*out) ? -1 : 0;
    if (t != small)
        free(t);
    return rc;
}

json_t *for_input_string(const char *type, const struct buf *s)
{
    struct buf m;
    json_t *e;

    buf_init(&m, BUF_NOMAX);
    buf_puts(&m, "For input string: \"");
    buf_append(&m, s->ptr, s->len);
    buf_putc(&m, '"');
    e = err_text(type, &m, NULL);
    buf_close(&m);
    return e;
}

/* NumberFieldMapper INTEGER, SHORT and BYTE#parse: XContentParser#intValue
 * (numbers: Jackson getIntValue, its range error; strings: Double#parseDouble,
 * truncated, "Value [..] is out of range for an integer"), #shortValue
 * (Jackson getShortValue; strings likewise) and BYTE's own check of the int. */
static json_t *int_cause(const struct chk *c, enum ftype t, const struct val *v, const char *num,
                         const struct buf *s)
{
    static const char *const what[] = { [FT_INTEGER] = "an integer", [FT_SHORT] = "a short",
                                        [FT_BYTE] = "an integer" };
    long lo = t == FT_SHORT ? SHRT_MIN : INT_MIN, hi = t == FT_SHORT ? SHRT_MAX : INT_MAX;
    int tl = (int)(v->e - v->p);
    double d;
    long iv;
    int rc;

    if (v->kind == VK_INT || v->kind == VK_BIGINT || v->kind == VK_FLOAT) {
        d = v->kind == VK_INT ? (double)strtoll(num, NULL, 10) : strtod(num, NULL);
        if (v->kind == VK_BIGINT || d < (double)INT_MIN || d > (double)INT_MAX)
            return jackson_cause(c, "input_coercion_exception", v->at, "Numeric value (%.*s) "
                                 "out of range of int (-2147483648 - 2147483647)", tl, v->p);
        iv = (long)d;
        if (t == FT_SHORT && (iv < SHRT_MIN || iv > SHRT_MAX))
            return jackson_cause(c, "input_coercion_exception", v->at, "Numeric value (%.*s) "
                                 "out of range of Java short", tl, v->p);
    } else if (v->kind == VK_STRING) {
        if (s->len == 0) /* NumberFieldMapper#parseCreateField: coerce and "" -> null */
            return NULL;
        rc = java_parse_fp(s->ptr, s->len, false, &d);
        if (rc == -3)
            return errf("number_format_exception", "empty String");
        if (rc == -4)
            return for_input_string("number_format_exception", s);
        if (d < (double)lo || d > (double)hi) {
            struct buf m;
            json_t *e;
            buf_init(&m, BUF_NOMAX);
            buf_puts(&m, "Value [");
            buf_append(&m, s->ptr, s->len);
            buf_printf(&m, "] is out of range for %s", what[t]);
            e = err_text("illegal_argument_exception", &m, NULL);
            buf_close(&m);
            return e;
        }
        iv = isnan(d) ? 0 : (long)d;
    } else {
        return jackson_cause(c, "json_parse_exception", v->at, "Current token (%s) not numeric, "
                             "can not use numeric value accessors", token_name(v->kind));
    }
    if (t == FT_BYTE && (iv < SCHAR_MIN || iv > SCHAR_MAX))
        return errf("illegal_argument_exception", "Value [%ld] is out of range for a byte", iv);
    return NULL;
}

/* NumberFieldMapper FLOAT and DOUBLE#parse: Jackson's value (numbers) or
 * Float#parseFloat / Double#parseDouble (strings), then #validateParsed
 * refuses what is not finite. */
static json_t *fp_cause(const struct chk *c, enum ftype t, const struct val *v, const char *num,
                        const struct buf *s)
{
    const char *tn = ftype_name[t];
    bool single = t == FT_FLOAT;
    double d;
    int rc;

    if (v->kind == VK_INT || v->kind == VK_BIGINT || v->kind == VK_FLOAT) {
        d = single ? (double)strtof(num, NULL) : strtod(num, NULL);
        rc = isinf(d) ? -1 : 0;
    } else if (v->kind == VK_STRING) {
        if (s->len == 0)
            return NULL;
        rc = java_parse_fp(s->ptr, s->len, single, &d);
        if (rc == -3)
            return errf("number_format_exception", "empty String");
        if (rc == -4)
            return for_input_string("number_format_exception", s);
    } else {
        return jackson_cause(c, "json_parse_exception", v->at, "Current token (%s) not numeric, "
                             "can not use numeric value accessors", token_name(v->kind));
    }
    if (rc == -1)
        return errf("illegal_argument_exception", "[%s] supports only finite values, but got [%s]",
                    tn, d < 0 ? "-Infinity" : "Infinity");
    if (rc == -2)
        return errf("illegal_argument_exception", "[%s] supports only finite values, but got "
                    "[NaN]", tn);
    return NULL;
}

/* epoch_millis (EpochTime#MILLIS_FORMATTER): an optional '-', up to 19
 * digits within the long range, an optional point and up to 6 digits. */
static bool epoch_millis(const char *p, size_t n)
{
    const char *e = p + n, *d0 = p + (n && *p == '-'), *q = d0;

    while (q < e && *q >= '0' && *q <= '9')
        q++;
    if (q == d0 || !java_parse_long(p, (size_t)(q - p)))
        return false;
    if (q < e && *q == '.') {
        const char *f = ++q;
        while (q < e && *q >= '0' && *q <= '9')
            q++;
        if (q - f > 6)
            return false;
    }
    return q == e;
}

/* Lucene's limit on one term (IndexWriter.MAX_TERM_LENGTH): a keyword value
 * over 32766 UTF-8 bytes fails when the parsed document is indexed
 * (IndexingChain, "immense term"), unless ignore_above leaves it out (it
 * counts UTF-16 units, as String#length). */
static void immense_term(struct chk *c, const char *name, size_t nlen, const struct field *fd,
                         const struct buf *s)
{
    struct buf r;
    size_t units = 0;

    if (s->len <= 32766 || c->index_err)
        return;
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->ptr[i];
        units += (ch & 0xC0) != 0x80;
        units += (ch & 0xF8) == 0xF0; /* a supplementary character is two units */
    }
    if (fd->ignore_above >= 0 && units > (size_t)fd->ignore_above)
        return;
    buf_init(&r, BUF_NOMAX);
    buf_puts(&r, "Document contains at least one immense term in field=\"");
    buf_append(&r, name, nlen);
    buf_puts(&r, "\" (whose UTF8 encoding is longer than the max length 32766), all of which "
                 "were skipped.  Please correct the analyzer to not produce such terms.  The "
                 "prefix of the first immense term is: '[");
    for (int i = 0; i < 30; i++)
        buf_printf(&r, "%s%d", i ? ", " : "", (int)(signed char)s->ptr[i]);
    buf_printf(&r, "]...', original message: bytes can be at most 32766 in length; got %zu",
               s->len);
    c->index_err = err_text("illegal_argument_exception", &r,
                            errf("max_bytes_length_exceeded_exception", "bytes can be at most "
                                 "32766 in length; got %zu", s->len));
    buf_close(&r);
}

/* FieldMapper#parse (es8: #rethrowAsDocumentParsingException) for a field
 * named name[0..nlen): a field mapper refused a value.  Takes cause. */
int bad_field_named(struct chk *c, const char *name, size_t nlen, const char *type,
                    struct loc at, const char *preview, size_t pvlen, json_t *cause)
{
    struct buf r;

    buf_init(&r, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] ", at.line, at.col);
    buf_puts(&r, "failed to parse field [");
    buf_append(&r, name, nlen);
    buf_printf(&r, "] of type [%s] in document with id '%s'. Preview of field's value: '", type,
               c->id);
    buf_append(&r, preview, pvlen);
    buf_putc(&r, '\'');
    refuse(c, err_text(doc_error(c), &r, cause));
    buf_close(&r);
    return -1;
}

/* A scalar into the field fd named name[0..nlen), as its field mapper parses
 * it (NumberFieldMapper, TextFieldMapper, KeywordFieldMapper,
 * BooleanFieldMapper, DateFieldMapper#parseCreateField, with
 * AbstractXContentParser's coercions).  A field with ignore_malformed leaves
 * a bad value out (the document is taken). */
static int check_scalar(struct chk *c, const char *name, size_t nlen, const struct field *fd,
                        const struct val *v)
{
    struct buf s = scr.text; /* scratch, given back below */
    json_t *cause = NULL;
    const char *tok = token_name(v->kind);
    size_t tl = (size_t)(v->e - v->p);
    char small[80], *num = small;
    enum ftype t = fd->type;
    int rc;

    if (v->kind == VK_NULL || t == FT_TEXT || (t == FT_LONG && v->kind == VK_INT))
        return 0;
    buf_reset(&s);
    if (v->kind == VK_STRING)
        decode_string(v->p, v->e, &s);
    /* a number's text, NUL-terminated */
    if (v->kind == VK_INT || v->kind == VK_BIGINT || v->kind == VK_FLOAT) {
        if (tl >= sizeof(small) && !(num = malloc(tl + 1)))
            num = small, tl = 0;
        memcpy(num, v->p, tl);
        num[tl] = '\0';
    }
    switch (t) {
    case FT_LONG:
        if (v->kind == VK_INT)
            break;
        if (v->kind == VK_BIGINT || v->kind == VK_FLOAT) {
            double d = strtod(num, NULL);
            /* Jackson convertNumberToLong: [MIN_LONG_D, MAX_LONG_D] */
            if (v->kind == VK_BIGINT || d < -9223372036854775808.0 ||
                d > 9223372036854775807.0)
                cause = jackson_cause(c, "input_coercion_exception", v->at,
                                      "Numeric value (%.*s) out of range of long "
                                      "(-9223372036854775808 - 9223372036854775807)",
                                      (int)tl, v->p);
        } else if (v->kind == VK_STRING) {
            if (s.len == 0) /* NumberFieldMapper#value: coerce and "" -> null */
                break;
            if ((rc = java_to_long(s.ptr, s.len)) == -1) {
                cause = for_input_string("illegal_argument_exception", &s);
            } else if (rc == -2) {
                struct buf m;
                buf_init(&m, BUF_NOMAX);
                buf_puts(&m, "Value [");
                buf_append(&m, s.ptr, s.len);
                buf_puts(&m, "] is out of range for a long");
                cause = err_text("illegal_argument_exception", &m, NULL);
                buf_close(&m);
            }
        } else {
            cause = jackson_cause(c, "json_parse_exception", v->at, "Current token (%s) not "
                                  "numeric, can not use numeric value accessors", tok);
        }
        break;
    case FT_INTEGER:
    case FT_SHORT:
    case FT_BYTE:
        cause = int_cause(c, t, v, num, &s);
        break;
    case FT_FLOAT:
    case FT_DOUBLE:
        cause = fp_cause(c, t, v, num, &s);
        break;
    case FT_KEYWORD:
        /* XContentParser#textOrNull takes every scalar; only Lucene's term
         * limit can refuse one, after parsing */
        if (v->kind == VK_STRING)
            immense_term(c, name, nlen, fd, &s);
        break;
    case FT_BOOLEAN:
        if (v->kind == VK_TRUE || v->kind == VK_FALSE)
            break;
        if (v->kind == VK_STRING) {
            /* Booleans#parseBoolean(char[], ...): "" is the default (false) */
            if (s.len == 0 || (s.len == 4 && memcmp(s.ptr, "true", 4) == 0) ||
                (s.len == 5 && memcmp(s.ptr, "false", 5) == 0))
                break;
            struct buf m;
            buf_init(&m, BUF_NOMAX);
            buf_puts(&m, "Failed to parse value [");
            buf_append(&m, s.ptr, s.len);
            buf_puts(&m, "] as only [true] or [false] are allowed.");
            cause = err_text("illegal_argument_exception", &m, NULL);
            buf_close(&m);
        } else {
            cause = jackson_cause(c, "json_parse_exception", v->at, "Current token (%s) not "
                                  "of boolean type", tok);
        }
        break;
    case FT_DATE:
        /* DateFieldMapper: XContentParser#textOrNull (a number's text as
         * written), parsed with the field's format, by default
         * strict_date_optional_time||epoch_millis (JavaDateFormatter#parse) */
        if (v->kind != VK_STRING)
            buf_append(&s, v->p, tl);
        if (s.len == 0) {
            cause = errf("illegal_argument_exception", "cannot parse empty %s",
                         c->fl == FL_ES8 ? "datetime" : "date");
        } else if (!date_text(s.ptr, s.len) && !epoch_millis(s.ptr, s.len)) {
            struct buf m;
            buf_init(&m, BUF_NOMAX);
            buf_puts(&m, "failed to parse date field [");
            buf_append(&m, s.ptr, s.len);
            buf_puts(&m, "] with format [strict_date_optional_time||epoch_millis]");
            cause = err_text("illegal_argument_exception", &m, NULL);
            buf_close(&m);
        }
        break;
    default:
        break;
    }
    if (cause && fd->ignore_malformed) {
        json_decref(cause);
        cause = NULL;
    }
    if (cause) {
        buf_reset(&s);
        scalar_text(v, &s);
        bad_field_named(c, name, nlen, ftype_name[t], v->at, s.ptr, s.len, cause);
    }
    scr.text = s;
    if (num != small)
        free(num);
    return cause ? -1 : 0;
}

/* A scalar into a mapped field and its multi-fields (FieldMapper#parse:
 * the field, then each of its "fields" with the same value). */
int check_value(struct chk *c, const struct fld *f, const struct field *fd,
                const struct val *v)
{
    if (check_scalar(c, scr.path.ptr, f->plen, fd, v) < 0)
        return -1;
    for (size_t i = 0; i < fd->nsub; i++)
        if (check_scalar(c, fd->sub[i]->name, strlen(fd->sub[i]->name), fd->sub[i], v) < 0)
            return -1;
    return 0;
}

/* An object where a field mapper expects a value: the mapper fails on the
 * START_OBJECT token and FieldMapper#parse previews the object it then reads
 * (the location is where that read ends, at the closing brace). */
int object_into_field(struct chk *c, size_t plen, enum ftype t, const char *open,
                      const char *pre, const char *post)
{
    struct loc at = loc_at(c, open), close;
    struct buf pv;
    json_t *cause;

    if (skip_value(c) < 0)
        return -1;
    close = loc_at(c, c->p - 1);
    buf_init(&pv, BUF_NOMAX);
    buf_puts(&pv, pre);
    render(open, c->p, &pv);
    buf_puts(&pv, post);
    switch (t) {
    case FT_LONG:
    case FT_INTEGER:
    case FT_SHORT:
    case FT_BYTE:
    case FT_FLOAT:
    case FT_DOUBLE:
        cause = c->fl == FL_ES8
              ? errf("illegal_argument_exception", "Cannot parse object as number")
              : jackson_cause(c, "json_parse_exception", at, "Current token (START_OBJECT) not "
                              "numeric, can not use numeric value accessors");
        break;
    case FT_BOOLEAN:
        cause = jackson_cause(c, "json_parse_exception", at, "Current token (START_OBJECT) not "
                              "of boolean type");
        break;
    default: /* text, keyword, date: JsonXContentParser#text */
        cause = errf("illegal_state_exception", "Can't get text on a START_OBJECT at %d:%d",
                     at.line, at.col);
        break;
    }
    bad_field(c, plen, ftype_name[t], close, pv.ptr, pv.len, cause);
    buf_close(&pv);
    return -1;
}
