#include "base/jsonx.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---------------------------------------------------------------- */

enum u8_fault { U8_STRAY, U8_BAD_BYTE, U8_TRUNCATED, U8_OVERLONG, U8_SURROGATE, U8_ABOVE_MAX };

static const char *const u8_fault_text[] = {
    [U8_STRAY] = "a continuation byte where a character starts",
    [U8_BAD_BYTE] = "a byte that never appears in UTF-8",
    [U8_TRUNCATED] = "an incomplete sequence",
    [U8_OVERLONG] = "an overlong form",
    [U8_SURROGATE] = "a surrogate (U+D800..U+DFFF) encoded as UTF-8",
    [U8_ABOVE_MAX] = "a code point above U+10FFFF",
};

/* The length of the strict UTF-8 sequence starting at s[0] (>= 0x80) with
 * n bytes available, or 0 with *fault set. */
static size_t utf8_seq(const unsigned char *s, size_t n, enum u8_fault *fault)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF; /* the range of the second byte */
    size_t need;

    if (c < 0xC0) {
        *fault = U8_STRAY;
        return 0;
    }
    if (c < 0xC2) { /* C0, C1: two bytes for what fits in one */
        *fault = U8_OVERLONG;
        return 0;
    }
    if (c < 0xE0) {
        need = 2;
    } else if (c < 0xF0) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* E0 80..9F: overlong */
        else if (c == 0xED)
            hi = 0x9F; /* ED A0..BF: surrogates */
    } else if (c < 0xF5) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* F0 80..8F: overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* F4 90..BF: above U+10FFFF */
    } else {
        *fault = c < 0xF8 ? U8_ABOVE_MAX : U8_BAD_BYTE;
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n || s[i] < 0x80 || s[i] > 0xBF) {
            *fault = U8_TRUNCATED;
            return 0;
        }
    }
    if (s[1] < lo) {
        *fault = U8_OVERLONG;
        return 0;
    }
    if (s[1] > hi) {
        *fault = c == 0xED ? U8_SURROGATE : U8_ABOVE_MAX;
        return 0;
    }
    return need;
}

bool jsonx_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    enum u8_fault f;

    while (p < end) {
        size_t n;

        if (*p < 0x80) {
            p++;
            continue;
        }
        if (!(n = utf8_seq(p, (size_t)(end - p), &f)))
            return false;
        p += n;
    }
    return true;
}

/* UTF-8 of a code point up to U+10FFFF; a surrogate code unit gets the
 * 3-byte (WTF-8) form.  Returns the length. */
static size_t utf8_put(uint32_t cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- the parser ----------------------------------------------------------- */

struct parser {
    const char *text, *p, *end;
    size_t flags;
    size_t depth;      /* counted as jansson does: every value, scalars too */
    struct buf stack;  /* decoded strings and number tokens, last in first out */
    json_error_t *err;
    bool failed;
};

/* A decoded string: in the input (it held no escape) or on the stack at off. */
struct str {
    bool on_stack;
    size_t off, len;
};

static const char *str_ptr(const struct parser *ps, const struct str *s)
{
    return s->on_stack ? ps->stack.ptr + s->off : ps->text + s->off;
}

static void err_init(json_error_t *err, const char *source)
{
    if (!err)
        return;
    memset(err, 0, sizeof(*err));
    err->line = err->column = -1;
    snprintf(err->source, sizeof(err->source), "%s", source);
}

/* The error's text and code, jansson's way (the code in the last byte). */
__attribute__((format(printf, 6, 0)))
static void err_set(json_error_t *err, int line, int column, size_t pos,
                    enum json_error_code code, const char *fmt, va_list ap)
{
    err->line = line;
    err->column = column;
    err->position = pos > INT32_MAX ? INT32_MAX : (int)pos;
    vsnprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, fmt, ap);
    err->text[JSON_ERROR_TEXT_LENGTH - 2] = '\0';
    err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)code;
}

/* Records the first error, at the byte at (or at the end of the input):
 * line and column of that byte (the column counts characters, from 1) and
 * the bytes read through it, as jansson reports them. */
__attribute__((format(printf, 4, 5)))
static void fail(struct parser *ps, const char *at, enum json_error_code code, const char *fmt, ...)
{
    int line = 1, column = 0;
    va_list ap;

    if (ps->failed)
        return;
    ps->failed = true;
    if (!ps->err)
        return;
    for (const char *q = ps->text; q < at; q++) {
        if (*q == '\n') {
            line++;
            column = 0;
        } else if ((*q & 0xC0) != 0x80) {
            column++;
        }
    }
    if (at < ps->end)
        column++;
    va_start(ap, fmt);
    err_set(ps->err, line, column, (size_t)(at - ps->text) + (at < ps->end), code, fmt, ap);
    va_end(ap);
}

/* " near 'tok'" for a syntax error at at, or " near end of file"; "" when
 * the byte there is not printable ASCII. */
static const char *near(const struct parser *ps, const char *at, char *out, size_t outlen)
{
    size_t n = 0;

    if (at >= ps->end)
        return " near end of file";
    if (*at <= 0x20 || *at >= 0x7F)
        return "";
    while (at + n < ps->end && n < 20 &&
           ((at[n] >= 'a' && at[n] <= 'z') || (at[n] >= 'A' && at[n] <= 'Z') ||
            (at[n] >= '0' && at[n] <= '9') || at[n] == '+' || at[n] == '-' || at[n] == '.'))
        n++;
    snprintf(out, outlen, " near '%.*s'", (int)(n ? n : 1), at);
    return out;
}

static void syntax(struct parser *ps, const char *what)
{
    char ctx[40];

    fail(ps, ps->p, ps->p < ps->end ? json_error_invalid_syntax : json_error_premature_end_of_input,
         "%s%s", what, near(ps, ps->p, ctx, sizeof(ctx)));
}

static void oom(struct parser *ps)
{
    fail(ps, ps->p, json_error_out_of_memory, "out of memory");
}

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        char c = s[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The escape at p ('\\', at least 2 bytes before end) as UTF-8 in o (a lone
 * surrogate in its WTF-8 form); returns its length and sets *next past it,
 * or returns 0 for an invalid escape. */
static size_t escape_at(const char *p, const char *end, unsigned char o[4], const char **next)
{
    uint32_t cu, lo;

    *next = p + 2;
    switch (p[1]) {
    case '"': o[0] = '"'; return 1;
    case '\\': o[0] = '\\'; return 1;
    case '/': o[0] = '/'; return 1;
    case 'b': o[0] = '\b'; return 1;
    case 'f': o[0] = '\f'; return 1;
    case 'n': o[0] = '\n'; return 1;
    case 'r': o[0] = '\r'; return 1;
    case 't': o[0] = '\t'; return 1;
    case 'u':
        if (end - p < 6 || hex4(p + 2, &cu) < 0)
            return 0;
        *next = p + 6;
        if (cu >= 0xD800 && cu <= 0xDBFF && end - p >= 12 && p[6] == '\\' && p[7] == 'u' &&
            hex4(p + 8, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            *next = p + 12;
            return utf8_put(0x10000 + ((cu - 0xD800) << 10) + (lo - 0xDC00), o);
        }
        return utf8_put(cu, o);
    default:
        return 0;
    }
}

/* The escape at p ('\\') onto the stack; returns the byte after it, or NULL. */
static const char *unescape(struct parser *ps, const char *p)
{
    unsigned char o[4];
    const char *next;
    size_t n;

    if (ps->end - p < 2) {
        fail(ps, ps->end, json_error_premature_end_of_input, "premature end of input in a string");
        return NULL;
    }
    if (!(n = escape_at(p, ps->end, o, &next))) {
        if (p[1] == 'u')
            fail(ps, p, json_error_invalid_syntax, "invalid escape '%.*s'",
                 (int)(ps->end - p < 6 ? ps->end - p : 6), p);
        else
            fail(ps, p, json_error_invalid_syntax, "invalid escape '\\%c'",
                 p[1] > 0x20 && p[1] < 0x7F ? p[1] : '?');
        return NULL;
    }
    if (buf_append(&ps->stack, o, n) < 0) {
        oom(ps);
        return NULL;
    }
    return next;
}

int jsonx_string_decode(const char *p, const char *end, struct buf *out)
{
    int rc = 0;

    if (p >= end || *p != '"')
        return -EINVAL;
    for (p++; rc == 0 && p < end && *p != '"';) {
        const char *run = p;
        unsigned char o[4];
        size_t n;

        while (p < end && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            rc = buf_append(out, run, (size_t)(p - run));
        if (rc || p >= end || *p == '"')
            break;
        if (end - p < 2 || !(n = escape_at(p, end, o, &p)))
            return -EINVAL;
        rc = buf_append(out, o, n);
    }
    if (rc == 0 && (p >= end || *p != '"'))
        return -EINVAL;
    return rc;
}

/* The string whose opening quote is at ps->p; ps->p moves past its end.
 * A string with no escape stays where it is in the input; one with escapes
 * is decoded onto the stack (the caller truncates the stack back). */
static int scan_string(struct parser *ps, struct str *out)
{
    const char *start = ps->p + 1, *p = start, *run = start;
    size_t mark = ps->stack.len;
    bool on_stack = false;

    for (;;) {
        unsigned char c;

        if (p >= ps->end) {
            fail(ps, ps->end, json_error_premature_end_of_input,
                 "premature end of input in a string");
            return -1;
        }
        c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20) {
            if (c == '\n')
                fail(ps, p, json_error_invalid_syntax, "unexpected newline in a string");
            else
                fail(ps, p, json_error_invalid_syntax, "control character 0x%02x in a string", c);
            return -1;
        }
        if (c >= 0x80) {
            enum u8_fault f;
            size_t n = utf8_seq((const unsigned char *)p, (size_t)(ps->end - p), &f);

            if (!n) {
                fail(ps, p, json_error_invalid_utf8, "invalid UTF-8 (%s) at byte 0x%02x",
                     u8_fault_text[f], c);
                return -1;
            }
            p += n;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (buf_append(&ps->stack, run, (size_t)(p - run)) < 0) {
            oom(ps);
            return -1;
        }
        on_stack = true;
        if (!(p = unescape(ps, p)))
            return -1;
        run = p;
    }
    if (on_stack && buf_append(&ps->stack, run, (size_t)(p - run)) < 0) {
        oom(ps);
        return -1;
    }
    out->on_stack = on_stack;
    out->off = on_stack ? mark : (size_t)(start - ps->text);
    out->len = on_stack ? ps->stack.len - mark : (size_t)(p - start);
    ps->p = p + 1;
    return 0;
}

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/* A number token as jansson makes it: an integer token (no fraction, no
 * exponent) is a json_integer, refused past json_int_t (unless
 * JSONX_DECODE_INT_AS_REAL); anything else a json_real, refused when it
 * overflows a double. */
static json_t *parse_number(struct parser *ps)
{
    const char *s = ps->p, *p = s, *end = ps->end;
    bool integer = true;
    size_t mark = ps->stack.len;
    json_t *v = NULL;
    char *tok, *stop;

    if (*p == '-')
        p++;
    if (!is_digit(p, end)) {
        syntax(ps, "invalid token");
        return NULL;
    }
    if (*p == '0')
        p++;
    else
        while (is_digit(p, end))
            p++;
    if (p < end && *p == '.') {
        integer = false;
        if (!is_digit(++p, end)) {
            syntax(ps, "invalid token");
            return NULL;
        }
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end)) {
            syntax(ps, "invalid token");
            return NULL;
        }
        while (is_digit(p, end))
            p++;
    }
    /* strtoll and strtod want a terminated copy. */
    if (buf_append(&ps->stack, s, (size_t)(p - s)) < 0 || buf_putc(&ps->stack, '\0') < 0) {
        oom(ps);
        return NULL;
    }
    tok = ps->stack.ptr + mark;
    errno = 0;
    if (integer && !(ps->flags & JSONX_DECODE_INT_AS_REAL)) {
        json_int_t i = strtoll(tok, &stop, 10);

        if (errno == ERANGE)
            fail(ps, s, json_error_numeric_overflow, "too big %sinteger", i < 0 ? "negative " : "");
        else if (!(v = json_integer(i)))
            oom(ps);
    } else {
        const char *point = localeconv()->decimal_point;
        double d;
        char *dot;

        /* The locale's decimal point, whatever it is, so that "1.5" reads
         * as 1.5 in any locale. */
        if (point[0] && point[0] != '.' && (dot = strchr(tok, '.')))
            *dot = point[0];
        d = strtod(tok, &stop);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
            fail(ps, s, json_error_numeric_overflow, "real number overflow");
        else if (!(v = json_real(d)))
            oom(ps);
    }
    buf_truncate(&ps->stack, mark);
    ps->p = p;
    return v;
}

static json_t *parse_value(struct parser *ps);

/* Steps over c when it comes next. */
static bool take(struct parser *ps, char c)
{
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

/* c (new, or NULL when out of memory) for the object or array whose
 * bracket is at ps->p: the bracket and the white space after it are
 * stepped over. */
static json_t *open_container(struct parser *ps, json_t *c)
{
    if (!c) {
        oom(ps);
        return NULL;
    }
    ps->p++;
    skip_ws(ps);
    return c;
}

/* After a member or an element: 1 when a ',' follows (stepped over, with
 * the white space after it), 0 when close does (stepped over), -1 after a
 * syntax error (what was expected). */
static int next_item(struct parser *ps, char close, const char *expected)
{
    skip_ws(ps);
    if (take(ps, ',')) {
        skip_ws(ps);
        return 1;
    }
    if (take(ps, close))
        return 0;
    syntax(ps, expected);
    return -1;
}

static json_t *parse_object(struct parser *ps)
{
    json_t *obj = open_container(ps, json_object());

    if (!obj || take(ps, '}'))
        return obj;
    for (;;) {
        size_t mark = ps->stack.len;
        struct str key;
        json_t *v;
        int rc;

        if (ps->p >= ps->end || *ps->p != '"') {
            syntax(ps, "string or '}' expected");
            break;
        }
        if (scan_string(ps, &key) < 0)
            break;
        if ((ps->flags & JSONX_REJECT_DUPLICATES) &&
            json_object_getn(obj, str_ptr(ps, &key), key.len)) {
            fail(ps, ps->p - 1, json_error_duplicate_key, "duplicate object key");
            break;
        }
        skip_ws(ps);
        if (!take(ps, ':')) {
            syntax(ps, "':' expected");
            break;
        }
        skip_ws(ps);
        if (!(v = parse_value(ps)))
            break;
        /* The stack may have moved while the value was read: the key's
         * pointer is taken only now.  setn_new_nocheck frees v on failure. */
        if (json_object_setn_new_nocheck(obj, str_ptr(ps, &key), key.len, v) < 0) {
            oom(ps);
            break;
        }
        buf_truncate(&ps->stack, mark);
        rc = next_item(ps, '}', "',' or '}' expected");
        if (rc == 0)
            return obj;
        if (rc < 0)
            break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(struct parser *ps)
{
    json_t *arr = open_container(ps, json_array());

    if (!arr || take(ps, ']'))
        return arr;
    for (;;) {
        json_t *v = parse_value(ps);
        int rc;

        if (!v)
            break;
        if (json_array_append_new(arr, v) < 0) {
            oom(ps);
            break;
        }
        rc = next_item(ps, ']', "',' or ']' expected");
        if (rc == 0)
            return arr;
        if (rc < 0)
            break;
    }
    json_decref(arr);
    return NULL;
}

static bool literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

/* The value at ps->p (white space already skipped). */
static json_t *parse_value(struct parser *ps)
{
    json_t *v = NULL;

    if (++ps->depth > JSON_PARSER_MAX_DEPTH) {
        fail(ps, ps->p, json_error_stack_overflow, "maximum parsing depth reached");
        return NULL;
    }
    if (ps->p >= ps->end) {
        syntax(ps, "premature end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{':
        v = parse_object(ps);
        break;
    case '[':
        v = parse_array(ps);
        break;
    case '"': {
        size_t mark = ps->stack.len;
        struct str s;

        if (scan_string(ps, &s) == 0 && !(v = json_stringn_nocheck(str_ptr(ps, &s), s.len)))
            oom(ps);
        buf_truncate(&ps->stack, mark);
        break;
    }
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        v = parse_number(ps);
        break;
    default:
        if (literal(ps, "true", 4))
            v = json_true();
        else if (literal(ps, "false", 5))
            v = json_false();
        else if (literal(ps, "null", 4))
            v = json_null();
        else
            syntax(ps, "invalid token");
        break;
    }
    if (v)
        ps->depth--;
    return v;
}

static json_t *parse(const char *text, size_t len, size_t flags, json_error_t *err)
{
    struct parser ps = { .text = text, .p = text, .end = text + len, .flags = flags, .err = err };
    json_t *v = NULL;

    err_init(err, "<buffer>");
    buf_init(&ps.stack, BUF_NOMAX);
    skip_ws(&ps);
    if (!(flags & JSONX_DECODE_ANY) && (ps.p >= ps.end || (*ps.p != '[' && *ps.p != '{')))
        syntax(&ps, "'[' or '{' expected");
    else
        v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p < ps.end) {
            syntax(&ps, "end of file expected");
            json_decref(v);
            v = NULL;
        }
    }
    buf_close(&ps.stack);
    if (v && err)
        err->position = len > INT32_MAX ? INT32_MAX : (int)len;
    return v;
}

json_t *jsonx_loadb(const char *text, size_t len, size_t flags, json_error_t *err)
{
    size_t jflags = JSON_ALLOW_NUL | (flags & (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                                               JSON_DECODE_INT_AS_REAL));
    json_t *v;

    if (!text) {
        err_init(err, "<buffer>");
        if (err) {
            snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "wrong arguments");
            err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_invalid_argument;
        }
        return NULL;
    }
    /* jansson first: it takes nearly everything, and the record path depends
     * on its speed.  What it refuses gets a second, wider reading.  A raw NUL
     * byte is never JSON, but jansson 2.14 skips one that directly follows a
     * number or a literal ("[1\0]" reads as [1]): such text goes to our
     * parser, which refuses it. */
    if (!(flags & JSONX_OWN_PARSER) && !memchr(text, '\0', len) &&
        (v = json_loadb(text, len, jflags, err)))
        return v;
    return parse(text, len, flags, err);
}

json_t *jsonx_load_file(const char *path, size_t flags, json_error_t *err)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    json_t *v = NULL;
    size_t n;

    buf_init(&b, BUF_NOMAX);
    if (!f) {
        int e = errno;

        err_init(err, path);
        if (err) {
            snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "unable to open %s: %s", path,
                     strerror(e));
            err->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_cannot_open_file;
        }
        return NULL;
    }
    do {
        if (buf_reserve(&b, 64 * 1024) < 0) {
            err_init(err, path);
            if (err)
                snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "out of memory");
            goto out;
        }
        n = fread(b.ptr + b.len, 1, 64 * 1024, f);
        b.len += n;
    } while (n > 0);
    if (ferror(f)) {
        err_init(err, path);
        if (err)
            snprintf(err->text, JSON_ERROR_TEXT_LENGTH - 1, "unable to read %s", path);
        goto out;
    }
    v = jsonx_loadb(b.ptr, b.len, flags, err);
    if (err) {
        size_t plen = strlen(path);

        /* As jansson shortens a long source: its end, after "...". */
        if (plen < sizeof(err->source))
            memcpy(err->source, path, plen + 1);
        else
            snprintf(err->source, sizeof(err->source), "...%s",
                     path + plen - (sizeof(err->source) - 4));
    }
out:
    fclose(f);
    buf_close(&b);
    return v;
}

/* ---- writing -------------------------------------------------------------- */

int jsonx_put_string(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t mark = out->len, run = 0, i = 0;
    int rc = buf_reserve(out, len + 2);

    if (rc == 0)
        rc = buf_putc(out, '"');
    while (rc == 0 && i < len) {
        unsigned char c = u[i];
        char esc[6] = { '\\', 0 };
        size_t elen = 2, skip = 1;

        if (c == 0xED && i + 2 < len && u[i + 1] >= 0xA0 && u[i + 1] <= 0xBF &&
            (u[i + 2] & 0xC0) == 0x80) {
            /* A lone surrogate (WTF-8): ED A0..BF 80..BF is U+D800..U+DFFF. */
            unsigned cu = 0xD000u | (u[i + 1] & 0x3Fu) << 6 | (u[i + 2] & 0x3Fu);

            esc[1] = 'u';
            esc[2] = hex[cu >> 12];
            esc[3] = hex[cu >> 8 & 15];
            esc[4] = hex[cu >> 4 & 15];
            esc[5] = hex[cu & 15];
            elen = 6;
            skip = 3;
        } else if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        } else {
            switch (c) {
            case '"':  esc[1] = '"'; break;
            case '\\': esc[1] = '\\'; break;
            case '\b': esc[1] = 'b'; break;
            case '\f': esc[1] = 'f'; break;
            case '\n': esc[1] = 'n'; break;
            case '\r': esc[1] = 'r'; break;
            case '\t': esc[1] = 't'; break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
                break;
            }
        }
        rc = buf_append(out, s + run, i - run);
        if (rc == 0)
            rc = buf_append(out, esc, elen);
        i += skip;
        run = i;
    }
    if (rc == 0)
        rc = buf_append(out, s + run, len - run);
    if (rc == 0)
        rc = buf_putc(out, '"');
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

/* A real as jansson writes it: "%.17g" with '.' as the decimal point, ".0"
 * added when the text would read back as an integer, and the exponent
 * without '+' or leading zeros. */
static int put_real(struct buf *out, double d)
{
    const char *point = localeconv()->decimal_point;
    char t[64], *e, *dot;
    int n = snprintf(t, sizeof(t), "%.17g", d);
    int rc;

    if (n < 0 || (size_t)n >= sizeof(t))
        return -EINVAL;
    if (point[0] && point[0] != '.' && (dot = strchr(t, point[0])))
        *dot = '.';
    if (!(e = strchr(t, 'e')))
        return buf_printf(out, "%s%s", t, strchr(t, '.') ? "" : ".0");
    rc = buf_append(out, t, (size_t)(e - t) + 1);
    e++;
    if (rc == 0 && *e == '-')
        rc = buf_putc(out, '-');
    if (*e == '-' || *e == '+')
        e++;
    while (e[0] == '0' && e[1])
        e++;
    return rc ? rc : buf_puts(out, e);
}

static int dump(struct buf *out, const json_t *v, int depth)
{
    size_t i, klen;
    const char *k;
    json_t *m;
    bool first = true;
    int rc = 0;

    if (!v)
        return -EINVAL;
    if (depth > JSON_PARSER_MAX_DEPTH)
        return -ELOOP;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        rc = buf_putc(out, '{');
        /* json_object_keylen_foreach takes no const object; nothing is changed. */
        json_object_keylen_foreach((json_t *)v, k, klen, m) {
            if (!first)
                rc = buf_putc(out, ',');
            first = false;
            if (rc == 0)
                rc = jsonx_put_string(out, k, klen);
            if (rc == 0)
                rc = buf_putc(out, ':');
            if (rc == 0)
                rc = dump(out, m, depth + 1);
            if (rc < 0)
                break;
        }
        return rc ? rc : buf_putc(out, '}');
    case JSON_ARRAY:
        rc = buf_putc(out, '[');
        for (i = 0; rc == 0 && i < json_array_size(v); i++) {
            if (i)
                rc = buf_putc(out, ',');
            if (rc == 0)
                rc = dump(out, json_array_get(v, i), depth + 1);
        }
        return rc ? rc : buf_putc(out, ']');
    case JSON_STRING:
        return jsonx_put_string(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return put_real(out, json_real_value(v));
    case JSON_TRUE:
        return buf_puts(out, "true");
    case JSON_FALSE:
        return buf_puts(out, "false");
    case JSON_NULL:
        return buf_puts(out, "null");
    }
    return -EINVAL;
}

int jsonx_dump(struct buf *out, const json_t *v)
{
    size_t mark = out->len;
    int rc = dump(out, v, 1);

    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

char *jsonx_dumps(const json_t *v, size_t *len)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    if (jsonx_dump(&b, v) < 0) {
        buf_close(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return buf_take(&b);
}

/* ---- comparing ------------------------------------------------------------ */

bool jsonx_equal(const json_t *a, const json_t *b)
{
    size_t i, klen;
    const char *k;
    json_t *m;

    if (!a || !b || json_typeof(a) != json_typeof(b))
        return false;
    if (a == b)
        return true;
    switch (json_typeof(a)) {
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return false;
        json_object_keylen_foreach((json_t *)a, k, klen, m) {
            if (!jsonx_equal(m, json_object_getn(b, k, klen)))
                return false;
        }
        return true;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (i = 0; i < json_array_size(a); i++)
            if (!jsonx_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL:
        return json_real_value(a) == json_real_value(b);
    default: /* true, false, null */
        return true;
    }
}
