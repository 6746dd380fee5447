#include "tests/support/promql.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum tok_kind { T_NAME, T_STR, T_NUM, T_VAR, T_RANGE, T_LPAR, T_RPAR, T_LBRACE, T_RBRACE,
                T_COMMA, T_OP };

struct tok {
    enum tok_kind kind;
    size_t at, len;  /* in the text */
    size_t match;    /* brackets: the index of the other one */
    bool used;       /* a label name, or a clause keyword: not a series */
};

/* by (...), without (...), on (...), ignoring (...), group_left/right (...) */
struct clause {
    size_t kw, close; /* the keyword's token, the list's ")" (kw when it has none) */
    bool grouping;    /* by or without: belongs to an aggregation */
    char labels[PROMQL_MAX_LABELS][64];
    size_t nlabels;
};

struct scan {
    const char *text;
    struct tok *toks;
    size_t ntoks;
    struct clause *clauses;
    size_t nclauses;
    struct promql_refs *out;
    char *err;
    size_t errlen;
};

/* The Prometheus 2.42 function list (promql/parser/functions.go), plus the
 * @ modifier's start() and end(). */
static const char *const functions[] = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "days_in_month", "day_of_month", "day_of_week", "day_of_year", "deg",
    "delta", "deriv", "end", "exp", "floor", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_sum", "holt_winters", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
    "present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
    "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "start", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
};

static const char *const aggregations[] = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile",
};

/* Keywords that are never a series (binary operators, modifiers, numbers). */
static const char *const keywords[] = {
    "and", "or", "unless", "atan2", "bool", "offset", "inf", "nan",
};

static bool in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && strncasecmp(list[i], s, len) == 0)
            return true;
    return false;
}

#define IN(list, s, len) in_list(list, sizeof(list) / sizeof(list[0]), s, len)

static int fail(struct scan *s, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct scan *s, size_t at, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(s->err, s->errlen, "at byte %zu: ", at);

    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < s->errlen)
        vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static bool name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

static bool tok_is(const struct scan *s, size_t i, const char *word)
{
    return i < s->ntoks && s->toks[i].kind == T_NAME && strlen(word) == s->toks[i].len &&
           strncasecmp(s->text + s->toks[i].at, word, s->toks[i].len) == 0;
}

static void add_var(struct scan *s, const char *name, size_t len)
{
    struct promql_refs *o = s->out;

    for (size_t i = 0; i < o->nvars; i++)
        if (strlen(o->vars[i]) == len && strncmp(o->vars[i], name, len) == 0)
            return;
    if (o->nvars < sizeof(o->vars) / sizeof(o->vars[0]) && len < sizeof(o->vars[0]))
        snprintf(o->vars[o->nvars++], sizeof(o->vars[0]), "%.*s", (int)len, name);
}

static void add_label(char (*labels)[64], size_t *n, const char *name, size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen(labels[i]) == len && strncmp(labels[i], name, len) == 0)
            return;
    if (*n < PROMQL_MAX_LABELS && len < 64)
        snprintf(labels[(*n)++], 64, "%.*s", (int)len, name);
}

/* A Grafana variable at p ("$"): its length, its name noted. */
static size_t grafana_var(struct scan *s, const char *p)
{
    const char *q = p + 1, *name;

    if (*q == '{') {
        name = ++q;
        while (name_char(*q))
            q++;
        if (q > name)
            add_var(s, name, (size_t)(q - name));
        while (*q && *q != '}')
            q++;
        return *q ? (size_t)(q + 1 - p) : 0;
    }
    name = q;
    while (name_char(*q))
        q++;
    if (q == name)
        return 0;
    add_var(s, name, (size_t)(q - name));
    return (size_t)(q - p);
}

static int push(struct scan *s, enum tok_kind kind, size_t at, size_t len)
{
    struct tok *t = realloc(s->toks, (s->ntoks + 1) * sizeof(*t));

    if (!t)
        return fail(s, at, "out of memory");
    s->toks = t;
    t[s->ntoks++] = (struct tok){ .kind = kind, .at = at, .len = len };
    return 0;
}

static int lex(struct scan *s)
{
    const char *text = s->text, *p = text;

    while (*p) {
        size_t at = (size_t)(p - text), len = 1;
        enum tok_kind kind;

        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (*p == '"' || *p == '\'' || *p == '`') {
            const char *q = p + 1;

            while (*q && *q != *p)
                q += (*q == '\\' && *p != '`' && q[1]) ? 2 : 1;
            if (!*q)
                return fail(s, at, "unterminated string");
            for (const char *v = p + 1; v < q; v++)
                if (*v == '$') /* "$table"; a regex's "a$" is no variable */
                    grafana_var(s, v);
            kind = T_STR;
            len = (size_t)(q + 1 - p);
        } else if (*p == '$') {
            if (!(len = grafana_var(s, p)))
                return fail(s, at, "a \"$\" that starts no variable");
            kind = T_VAR;
        } else if (p[0] == '[' && p[1] == '[') {
            const char *end = strstr(p, "]]");

            if (!end)
                return fail(s, at, "unterminated [[variable]]");
            add_var(s, p + 2, (size_t)(end - p - 2));
            kind = T_VAR;
            len = (size_t)(end + 2 - p);
        } else if (*p == '[') { /* a range or a subquery's [range:step] */
            const char *q = p + 1;

            while (*q && *q != ']') {
                size_t n = *q == '$' ? grafana_var(s, q) : 1;

                if (!n)
                    return fail(s, (size_t)(q - text), "a \"$\" that starts no variable");
                q += n;
            }
            if (!*q)
                return fail(s, at, "unterminated \"[\"");
            kind = T_RANGE;
            len = (size_t)(q + 1 - p);
        } else if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
            const char *q = p;

            while (isalnum((unsigned char)*q) || *q == '.' || *q == '_')
                q++;
            kind = T_NUM;
            len = (size_t)(q - p);
        } else if (name_start(*p)) {
            const char *q = p;

            while (name_char(*q))
                q++;
            kind = T_NAME;
            len = (size_t)(q - p);
        } else if (strchr("(){},", *p)) {
            kind = *p == '('   ? T_LPAR
                   : *p == ')' ? T_RPAR
                   : *p == '{' ? T_LBRACE
                   : *p == '}' ? T_RBRACE
                               : T_COMMA;
        } else if (strchr("=!<>~", *p)) {
            while (p[len] && strchr("=!<>~", p[len]))
                len++;
            kind = T_OP;
        } else if (strchr("+-*/%^@", *p)) {
            kind = T_OP;
        } else {
            return fail(s, at, "unexpected character '%c'", *p);
        }
        if (push(s, kind, at, len) < 0)
            return -1;
        p += len;
    }
    return 0;
}

/* Pairs each bracket with the other one. */
static int match_brackets(struct scan *s)
{
    size_t *stack = calloc(s->ntoks + 1, sizeof(*stack)), depth = 0;
    int rc = 0;

    if (!stack)
        return fail(s, 0, "out of memory");
    for (size_t i = 0; i < s->ntoks && rc == 0; i++) {
        struct tok *t = &s->toks[i];

        if (t->kind == T_LPAR || t->kind == T_LBRACE) {
            stack[depth++] = i;
        } else if (t->kind == T_RPAR || t->kind == T_RBRACE) {
            enum tok_kind want = t->kind == T_RPAR ? T_LPAR : T_LBRACE;

            if (!depth || s->toks[stack[depth - 1]].kind != want)
                rc = fail(s, t->at, "unbalanced '%c'", s->text[t->at]);
            else {
                t->match = stack[--depth];
                s->toks[t->match].match = i;
            }
        }
    }
    if (rc == 0 && depth)
        rc = fail(s, s->toks[stack[depth - 1]].at, "'%c' never closed",
                  s->text[s->toks[stack[depth - 1]].at]);
    free(stack);
    return rc;
}

/* The label list of the clause keyword at i, if any. */
static int clause(struct scan *s, size_t i)
{
    bool grouping = tok_is(s, i, "by") || tok_is(s, i, "without");
    bool needs_list = grouping || tok_is(s, i, "on") || tok_is(s, i, "ignoring");
    struct clause *c;

    if (!needs_list && !tok_is(s, i, "group_left") && !tok_is(s, i, "group_right"))
        return 0;
    s->toks[i].used = true;
    if (i + 1 >= s->ntoks || s->toks[i + 1].kind != T_LPAR) {
        if (needs_list)
            return fail(s, s->toks[i].at, "%.*s without a label list", (int)s->toks[i].len,
                        s->text + s->toks[i].at);
        return 0;
    }
    c = realloc(s->clauses, (s->nclauses + 1) * sizeof(*c));
    if (!c)
        return fail(s, s->toks[i].at, "out of memory");
    s->clauses = c;
    c = &c[s->nclauses++];
    memset(c, 0, sizeof(*c));
    c->kw = i;
    c->close = s->toks[i + 1].match;
    c->grouping = grouping;
    for (size_t j = i + 2; j < c->close; j++) {
        struct tok *t = &s->toks[j];

        if (t->kind == T_COMMA)
            continue;
        if (t->kind != T_NAME)
            return fail(s, t->at, "a label list holds label names only");
        t->used = true;
        add_label(c->labels, &c->nlabels, s->text + t->at, t->len);
    }
    return 0;
}

/* The clause whose keyword is token i, or NULL. */
static const struct clause *clause_at(const struct scan *s, size_t i)
{
    for (size_t k = 0; k < s->nclauses; k++)
        if (s->clauses[k].kw == i)
            return &s->clauses[k];
    return NULL;
}

/* The series named by token i, with the label names of its matchers. */
static int series(struct scan *s, size_t i, struct promql_ref *r)
{
    const struct tok *t = &s->toks[i];

    memset(r, 0, sizeof(*r));
    if (t->len >= sizeof(r->name))
        return fail(s, t->at, "metric name too long");
    memcpy(r->name, s->text + t->at, t->len);
    if (i + 1 >= s->ntoks || s->toks[i + 1].kind != T_LBRACE)
        return 0;
    for (size_t j = i + 2, end = s->toks[i + 1].match; j < end;) {
        struct tok *l = &s->toks[j];
        const struct tok *op, *v;
        const char *o;

        if (l->kind != T_NAME || j + 2 >= end)
            return fail(s, l->at, "a matcher is name, one of = != =~ !~, then a string");
        op = &s->toks[j + 1];
        v = &s->toks[j + 2];
        o = s->text + op->at;
        if (op->kind != T_OP ||
            !((op->len == 1 && *o == '=') ||
              (op->len == 2 && (!strncmp(o, "!=", 2) || !strncmp(o, "=~", 2) ||
                                !strncmp(o, "!~", 2)))) ||
            (v->kind != T_STR && v->kind != T_VAR))
            return fail(s, l->at, "a matcher is name, one of = != =~ !~, then a string");
        l->used = true;
        add_label(r->labels, &r->nlabels, s->text + l->at, l->len);
        j += 3;
        if (j < end) {
            if (s->toks[j].kind != T_COMMA)
                return fail(s, s->toks[j].at, "matchers are separated by commas");
            j++;
        }
    }
    return 0;
}

/* The labels of every by/without clause of an aggregation whose argument
 * holds token i, and of every on/ignoring/group clause. */
static void context_labels(const struct scan *s, size_t i, struct promql_ref *r)
{
    for (size_t k = 0; k < s->nclauses; k++) {
        const struct clause *c = &s->clauses[k];
        bool applies = !c->grouping;

        if (c->grouping) {
            /* by (...) (arg) after the aggregation's name, or (arg) by (...) */
            size_t open = c->close + 1, close;

            if (open < s->ntoks && s->toks[open].kind == T_LPAR) {
                close = s->toks[open].match;
                applies = i > open && i < close;
            }
            if (!applies && c->kw > 0 && s->toks[c->kw - 1].kind == T_RPAR) {
                close = c->kw - 1;
                open = s->toks[close].match;
                applies = i > open && i < close;
            }
        }
        for (size_t l = 0; applies && l < c->nlabels; l++)
            add_label(r->labels, &r->nlabels, c->labels[l], strlen(c->labels[l]));
    }
}

static int analyse(struct scan *s)
{
    for (size_t i = 0; i < s->ntoks; i++)
        if (s->toks[i].kind == T_NAME && clause(s, i) < 0)
            return -1;
    for (size_t i = 0; i < s->ntoks; i++) {
        const struct tok *t = &s->toks[i];
        const char *w = s->text + t->at;
        bool call = i + 1 < s->ntoks && s->toks[i + 1].kind == T_LPAR;
        struct promql_ref r, *more;

        if (t->kind == T_LBRACE && (i == 0 || s->toks[i - 1].kind != T_NAME))
            return fail(s, t->at, "a selector without a metric name");
        if (t->kind != T_NAME || t->used || IN(keywords, w, t->len))
            continue;
        if (IN(aggregations, w, t->len)) {
            const struct clause *c = clause_at(s, i + 1);

            if (!call && !(c && c->grouping))
                return fail(s, t->at, "%.*s without an argument", (int)t->len, w);
            continue;
        }
        if (call) {
            if (!IN(functions, w, t->len))
                return fail(s, t->at, "unknown function %.*s", (int)t->len, w);
            continue;
        }
        if (series(s, i, &r) < 0)
            return -1;
        context_labels(s, i, &r);
        more = realloc(s->out->refs, (s->out->nrefs + 1) * sizeof(*more));
        if (!more)
            return fail(s, t->at, "out of memory");
        s->out->refs = more;
        more[s->out->nrefs++] = r;
    }
    return 0;
}

int promql_scan(const char *expr, struct promql_refs *out, char *err, size_t errlen)
{
    struct scan s = { .text = expr, .out = out, .err = err, .errlen = errlen };
    int rc;

    memset(out, 0, sizeof(*out));
    if (errlen)
        err[0] = '\0';
    rc = lex(&s);
    if (rc == 0)
        rc = match_brackets(&s);
    if (rc == 0)
        rc = analyse(&s);
    free(s.toks);
    free(s.clauses);
    return rc;
}

void promql_free(struct promql_refs *r)
{
    free(r->refs);
    memset(r, 0, sizeof(*r));
}
