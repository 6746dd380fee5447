#include "tests/support/promparse.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct label {
    char name[128];
    char value[1024];
};

static int fail(char *err, size_t len, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t len, int line, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(err, len, "line %d: ", line);

    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < len)
        vsnprintf(err + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static bool name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool name_char(char c, bool colon)
{
    return name_start(c, colon) || (c >= '0' && c <= '9');
}

/* Length of a valid name at p (0 if none). */
static size_t name_len(const char *p, bool colon)
{
    size_t n = 0;

    if (!name_start(p[0], colon))
        return 0;
    while (name_char(p[n], colon))
        n++;
    return n;
}

static bool parse_value(const char *s, double *out)
{
    char *end;

    if (strcmp(s, "NaN") == 0)
        return *out = NAN, true;
    if (strcmp(s, "+Inf") == 0)
        return *out = INFINITY, true;
    if (strcmp(s, "-Inf") == 0)
        return *out = -INFINITY, true;
    if (!*s || strchr("+-.0123456789", *s) == NULL)
        return false;
    *out = strtod(s, &end);
    return *end == '\0' && end != s;
}

static struct prom_family *family_get(struct prom *p, const char *name)
{
    for (size_t i = 0; i < p->nfamilies; i++)
        if (strcmp(p->families[i].name, name) == 0)
            return &p->families[i];
    return NULL;
}

static struct prom_family *family_add(struct prom *p, const char *name)
{
    struct prom_family *f = realloc(p->families, (p->nfamilies + 1) * sizeof(*f));

    if (!f)
        abort();
    p->families = f;
    f = &p->families[p->nfamilies++];
    memset(f, 0, sizeof(*f));
    f->name = strdup(name);
    return f;
}

const struct prom_family *prom_family(const struct prom *p, const char *name)
{
    return family_get((struct prom *)p, name);
}

const struct prom_sample *prom_find(const struct prom *p, const char *name, const char *labels)
{
    for (size_t i = 0; i < p->nsamples; i++)
        if (strcmp(p->samples[i].name, name) == 0 && strcmp(p->samples[i].labels, labels) == 0)
            return &p->samples[i];
    return NULL;
}

size_t prom_count(const struct prom *p, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < p->nsamples; i++)
        n += strcmp(p->samples[i].name, name) == 0;
    return n;
}

void prom_free(struct prom *p)
{
    for (size_t i = 0; i < p->nfamilies; i++) {
        free(p->families[i].name);
        free(p->families[i].type);
        free(p->families[i].help);
    }
    for (size_t i = 0; i < p->nsamples; i++) {
        free(p->samples[i].name);
        free(p->samples[i].family);
        free(p->samples[i].labels);
    }
    free(p->families);
    free(p->samples);
    memset(p, 0, sizeof(*p));
}

/* "# HELP name text" or "# TYPE name type"; other comments are ignored. */
static int comment(struct prom *p, const char *line, int ln, char *err, size_t errlen)
{
    bool help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
    const char *name = line + 7, *rest;
    char fname[256];
    size_t n;
    struct prom_family *f;

    if (!help && !type)
        return 0;
    n = name_len(name, true);
    if (n == 0 || n >= sizeof(fname) || (name[n] != ' ' && !(help && name[n] == '\0')))
        return fail(err, errlen, ln, "bad metric name in %s", help ? "HELP" : "TYPE");
    memcpy(fname, name, n);
    fname[n] = '\0';
    rest = name[n] ? name + n + 1 : "";
    f = family_get(p, fname);
    if (f && (help ? f->help != NULL : f->type != NULL))
        return fail(err, errlen, ln, "second %s for %s", help ? "HELP" : "TYPE", fname);
    for (size_t i = 0; i < p->nsamples; i++)
        if (strcmp(p->samples[i].family, fname) == 0)
            return fail(err, errlen, ln, "%s of %s after its samples", help ? "HELP" : "TYPE",
                        fname);
    if (!f)
        f = family_add(p, fname);
    if (help) {
        for (const char *c = rest; *c; c++)
            if (*c == '\\' && c[1] != '\\' && c[1] != 'n')
                return fail(err, errlen, ln, "bad escape in HELP of %s", fname);
            else if (*c == '\\')
                c++;
        f->help = strdup(rest);
    } else {
        if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
            strcmp(rest, "summary") && strcmp(rest, "untyped"))
            return fail(err, errlen, ln, "unknown type \"%s\" for %s", rest, fname);
        f->type = strdup(rest);
    }
    return 0;
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* Parses "{a="x",b="y"}" at *pp; canonical text into canon, le into le. */
static int parse_labels(const char **pp, char *canon, size_t canonlen, char *le, size_t lelen,
                        int ln, char *err, size_t errlen)
{
    struct label ls[32];
    size_t nl = 0, used = 0;
    const char *p = *pp + 1;

    le[0] = '\0';
    while (*p != '}') {
        size_t n = name_len(p, false);
        size_t vn = 0;

        if (nl == sizeof(ls) / sizeof(ls[0]))
            return fail(err, errlen, ln, "too many labels");
        if (n == 0 || n >= sizeof(ls[0].name))
            return fail(err, errlen, ln, "bad label name");
        memcpy(ls[nl].name, p, n);
        ls[nl].name[n] = '\0';
        if (strncmp(ls[nl].name, "__", 2) == 0)
            return fail(err, errlen, ln, "reserved label name %s", ls[nl].name);
        p += n;
        if (p[0] != '=' || p[1] != '"')
            return fail(err, errlen, ln, "label %s: expected =\"", ls[nl].name);
        p += 2;
        while (*p != '"') {
            if (*p == '\0' || *p == '\n')
                return fail(err, errlen, ln, "unterminated label value");
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return fail(err, errlen, ln, "bad escape \\%c in a label value", p[1]);
                if (vn + 2 >= sizeof(ls[0].value))
                    return fail(err, errlen, ln, "label value too long");
                ls[nl].value[vn++] = *p++;
            }
            if (vn + 1 >= sizeof(ls[0].value))
                return fail(err, errlen, ln, "label value too long");
            ls[nl].value[vn++] = *p++;
        }
        ls[nl].value[vn] = '\0';
        p++;
        for (size_t i = 0; i < nl; i++)
            if (strcmp(ls[i].name, ls[nl].name) == 0)
                return fail(err, errlen, ln, "label %s twice", ls[nl].name);
        nl++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            return fail(err, errlen, ln, "expected , or } after a label");
    }
    *pp = p + 1;
    qsort(ls, nl, sizeof(ls[0]), cmp_label);
    canon[0] = '\0';
    for (size_t i = 0; i < nl; i++) {
        if (strcmp(ls[i].name, "le") == 0) {
            snprintf(le, lelen, "%s", ls[i].value);
            continue; /* kept apart: histogram series are grouped without it */
        }
        used += (size_t)snprintf(canon + used, canonlen - used, "%s%s=\"%s\"", used ? "," : "",
                                 ls[i].name, ls[i].value);
        if (used >= canonlen)
            return fail(err, errlen, ln, "labels too long");
    }
    return 0;
}

/* The family a sample name belongs to, given the declared families. */
static struct prom_family *family_of(struct prom *p, const char *name)
{
    static const char *const suffix[] = { "_bucket", "_sum", "_count" };
    struct prom_family *f = family_get(p, name);
    char base[256];

    if (f && strcmp(f->type ? f->type : "", "histogram") != 0)
        return f;
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(name), sl = strlen(suffix[i]);

        if (n > sl && strcmp(name + n - sl, suffix[i]) == 0 && n - sl < sizeof(base)) {
            memcpy(base, name, n - sl);
            base[n - sl] = '\0';
            f = family_get(p, base);
            if (f && f->type && (strcmp(f->type, "histogram") == 0 ||
                                 (strcmp(f->type, "summary") == 0 && i > 0)))
                return f;
        }
    }
    return NULL;
}

static int check_histograms(struct prom *p, char *err, size_t errlen)
{
    for (size_t f = 0; f < p->nfamilies; f++) {
        const struct prom_family *fam = &p->families[f];
        char bname[300], cname[300], sname[300];

        if (!fam->type || strcmp(fam->type, "histogram") != 0)
            continue;
        snprintf(bname, sizeof(bname), "%s_bucket", fam->name);
        snprintf(cname, sizeof(cname), "%s_count", fam->name);
        snprintf(sname, sizeof(sname), "%s_sum", fam->name);
        for (size_t i = 0; i < p->nsamples; i++) {
            const struct prom_sample *c = &p->samples[i];
            const struct prom_sample *inf = NULL, *sum;
            double last_le = -INFINITY, last_v = -1;

            if (strcmp(c->name, cname) != 0)
                continue;
            for (size_t j = 0; j < p->nsamples; j++) {
                const struct prom_sample *b = &p->samples[j];
                const char *le = b->labels + strlen(b->labels) + 1; /* stored after labels */
                double lev;

                if (strcmp(b->name, bname) != 0 || strcmp(b->labels, c->labels) != 0)
                    continue;
                if (!parse_value(le, &lev))
                    return fail(err, errlen, 0, "%s{%s}: bad le \"%s\"", bname, b->labels, le);
                if (inf)
                    return fail(err, errlen, 0, "%s{%s}: bucket after +Inf", bname, b->labels);
                if (!(lev > last_le))
                    return fail(err, errlen, 0, "%s{%s}: le %s not increasing", bname, b->labels,
                                le);
                if (b->value < last_v)
                    return fail(err, errlen, 0, "%s{%s}: le %s count %g below the previous %g "
                                                "(not cumulative)",
                                bname, b->labels, le, b->value, last_v);
                last_le = lev;
                last_v = b->value;
                if (isinf(lev))
                    inf = b;
            }
            if (!inf)
                return fail(err, errlen, 0, "%s{%s}: no le=\"+Inf\" bucket", bname, c->labels);
            if (inf->value != c->value)
                return fail(err, errlen, 0, "%s{%s} = %g but the +Inf bucket is %g", cname,
                            c->labels, c->value, inf->value);
            sum = prom_find(p, sname, c->labels);
            if (!sum)
                return fail(err, errlen, 0, "%s{%s}: no _sum", fam->name, c->labels);
        }
        for (size_t i = 0; i < p->nsamples; i++)
            if (strcmp(p->samples[i].name, bname) == 0 &&
                !prom_find(p, cname, p->samples[i].labels))
                return fail(err, errlen, 0, "%s{%s}: buckets without _count", fam->name,
                            p->samples[i].labels);
    }
    return 0;
}

static int sample(struct prom *p, const char *line, int ln, char **current, char *err,
                  size_t errlen)
{
    size_t n = name_len(line, true);
    char name[256], canon[4096], le[64], *value;
    const char *q = line + n;
    struct prom_family *f;
    struct prom_sample *s;
    double v;

    if (n == 0 || n >= sizeof(name))
        return fail(err, errlen, ln, "bad metric name");
    memcpy(name, line, n);
    name[n] = '\0';
    canon[0] = le[0] = '\0';
    if (*q == '{' && parse_labels(&q, canon, sizeof(canon), le, sizeof(le), ln, err, errlen) < 0)
        return -1;
    if (*q != ' ')
        return fail(err, errlen, ln, "%s: expected a space before the value", name);
    value = strdup(q + 1);
    if (strchr(value, ' '))
        *strchr(value, ' ') = '\0'; /* a timestamp may follow */
    if (!parse_value(value, &v)) {
        fail(err, errlen, ln, "%s: bad value \"%s\"", name, value);
        free(value);
        return -1;
    }
    free(value);
    f = family_of(p, name);
    if (!f || !f->type)
        return fail(err, errlen, ln, "%s: sample without a TYPE", name);
    if (*current && strcmp(*current, f->name) != 0) {
        for (size_t i = 0; i < p->nsamples; i++)
            if (strcmp(p->samples[i].family, f->name) == 0)
                return fail(err, errlen, ln, "%s: family %s resumed after another one", name,
                            f->name);
    }
    free(*current);
    *current = strdup(f->name);
    if (strcmp(f->type, "histogram") == 0 && strcmp(name + strlen(f->name), "_bucket") == 0 &&
        !le[0])
        return fail(err, errlen, ln, "%s: bucket without le", name);
    if (le[0] && strcmp(name + strlen(f->name), "_bucket") != 0)
        return fail(err, errlen, ln, "%s: le on a sample that is not a bucket", name);
    if (strcmp(f->type, "counter") == 0 && !(v >= 0))
        return fail(err, errlen, ln, "%s: counter value %g", name, v);
    for (size_t i = 0; i < p->nsamples; i++) {
        const struct prom_sample *o = &p->samples[i];

        if (strcmp(o->name, name) == 0 && strcmp(o->labels, canon) == 0 &&
            strcmp(o->labels + strlen(o->labels) + 1, le) == 0)
            return fail(err, errlen, ln, "duplicate series %s{%s%s%s}", name, canon,
                        le[0] ? " le=" : "", le);
    }
    s = realloc(p->samples, (p->nsamples + 1) * sizeof(*s));
    if (!s)
        abort();
    p->samples = s;
    s = &p->samples[p->nsamples++];
    s->name = strdup(name);
    s->family = strdup(f->name);
    /* labels, then a NUL, then le (the parser's private tail) */
    s->labels = malloc(strlen(canon) + strlen(le) + 2);
    strcpy(s->labels, canon);
    strcpy(s->labels + strlen(canon) + 1, le);
    s->value = v;
    return 0;
}

int prom_parse(const char *text, struct prom *out, char *err, size_t errlen)
{
    char *current = NULL;
    int ln = 0, rc = 0;

    memset(out, 0, sizeof(*out));
    if (!*text)
        return fail(err, errlen, 0, "empty");
    while (rc == 0 && *text) {
        const char *nl = strchr(text, '\n');
        char *line;

        ln++;
        if (!nl)
            return free(current), fail(err, errlen, ln, "last line without a newline");
        line = strndup(text, (size_t)(nl - text));
        if (!line[0])
            rc = fail(err, errlen, ln, "blank line");
        else if (line[0] == '#')
            rc = comment(out, line, ln, err, errlen);
        else
            rc = sample(out, line, ln, &current, err, errlen);
        free(line);
        text = nl + 1;
    }
    free(current);
    if (rc == 0)
        rc = check_histograms(out, err, errlen);
    return rc;
}
