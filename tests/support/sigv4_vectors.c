#include "tests/support/sigv4_vectors.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *sigv4vec_dir(void)
{
    static char path[4096];
    const char *shared = getenv("DDB2ES_SHARED");

    snprintf(path, sizeof(path), "%s/testdata/sigv4", shared && *shared ? shared : "../shared");
    return path;
}

char *sigv4vec_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)n + 1)) != NULL) {
        if (fread(p, 1, (size_t)n, f) != (size_t)n) {
            free(p);
            p = NULL;
        } else {
            p[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    fclose(f);
    return p;
}

char *sigv4vec_readf(size_t *len, const char *fmt, ...)
{
    char path[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;
    return sigv4vec_read(path, len);
}

void sigv4vec_req_close(struct sigv4vec_req *r)
{
    free(r->text);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

/* End of the line starting at p (the '\n' or the end of text). */
static char *line_end(char *p, char *end)
{
    char *nl = memchr(p, '\n', (size_t)(end - p));

    return nl ? nl : end;
}

int sigv4vec_parse_req(const char *text, size_t len, struct sigv4vec_req *out)
{
    char *end, *p, *eol, *sp, *http = NULL, *q;
    size_t cap = 0;

    memset(out, 0, sizeof(*out));
    if (!(out->text = malloc(len + 1)))
        return -ENOMEM;
    memcpy(out->text, text, len);
    out->text[len] = '\0';
    end = out->text + len;

    /* request line */
    p = out->text;
    eol = line_end(p, end);
    sp = memchr(p, ' ', (size_t)(eol - p));
    for (char *s = sp; s && s < eol; s = memchr(s + 1, ' ', (size_t)(eol - s - 1)))
        if ((size_t)(eol - s) > 6 && memcmp(s, " HTTP/", 6) == 0)
            http = s;
    if (!sp || !http || http <= sp) {
        sigv4vec_req_close(out);
        return -EINVAL;
    }
    *sp = '\0';
    *http = '\0';
    out->method = p;
    out->path = sp + 1;
    if ((q = strchr(sp + 1, '?')) != NULL) {
        *q = '\0';
        out->query = q + 1;
    }
    p = eol < end ? eol + 1 : end;

    /* headers, up to a blank line or the end */
    while (p < end && *p != '\n') {
        char *colon, *vend;

        eol = line_end(p, end);
        colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon) {
            sigv4vec_req_close(out);
            return -EINVAL;
        }
        vend = eol;
        while (vend < end && vend + 1 < end && (vend[1] == ' ' || vend[1] == '\t'))
            vend = line_end(vend + 1, end); /* obsolete folding: the value goes on */
        if (out->nheaders == cap) {
            struct sigv4_header *h;

            cap = cap ? 2 * cap : 8;
            if (!(h = realloc(out->headers, cap * sizeof(*h)))) {
                sigv4vec_req_close(out);
                return -ENOMEM;
            }
            out->headers = h;
        }
        *colon = '\0';
        out->headers[out->nheaders].name = p;
        out->headers[out->nheaders].value = colon + 1;
        out->nheaders++;
        p = vend < end ? vend + 1 : end;
        *vend = '\0';
    }
    if (p < end)
        p++; /* the blank line */
    out->body = p;
    out->body_len = (size_t)(end - p);
    return 0;
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const struct sigv4vec_case *)a)->name, ((const struct sigv4vec_case *)b)->name);
}

void sigv4vec_cases_free(struct sigv4vec_case *cases, int n)
{
    for (int i = 0; cases && i < n; i++) {
        free(cases[i].name);
        free(cases[i].dir);
    }
    free(cases);
}

static bool has_marker(const char *dir, const char *base, const char *marker)
{
    char path[4096];
    struct stat st;
    int n = marker[0] == '.' ? snprintf(path, sizeof(path), "%s/%s%s", dir, base, marker)
                             : snprintf(path, sizeof(path), "%s/%s", dir, marker);

    return n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int walk(const char *root, const char *rel, const char *marker, int depth,
                struct sigv4vec_case **cases, int *n)
{
    char dir[4096];
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if ((size_t)snprintf(dir, sizeof(dir), "%s%s%s", root, *rel ? "/" : "", rel) >= sizeof(dir))
        return -ENAMETOOLONG;
    if (!(d = opendir(dir)))
        return -errno;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char sub[4096], name[4096];
        struct stat st;

        if (e->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= sizeof(sub) ||
            (size_t)snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "", e->d_name) >=
                sizeof(name))
            continue;
        if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (has_marker(sub, e->d_name, marker)) {
            struct sigv4vec_case *c = realloc(*cases, (size_t)(*n + 1) * sizeof(*c));

            if (!c) {
                rc = -ENOMEM;
                break;
            }
            *cases = c;
            c[*n].name = strdup(name);
            c[*n].dir = strdup(sub);
            (*n)++;
            if (!c[*n - 1].name || !c[*n - 1].dir)
                rc = -ENOMEM;
        } else if (depth > 1) {
            rc = walk(root, name, marker, depth - 1, cases, n);
        }
    }
    closedir(d);
    return rc;
}

int sigv4vec_cases(const char *root, const char *marker, int depth, struct sigv4vec_case **out)
{
    struct sigv4vec_case *cases = NULL;
    int n = 0, rc = walk(root, "", marker, depth, &cases, &n);

    if (rc < 0) {
        sigv4vec_cases_free(cases, n);
        *out = NULL;
        return rc;
    }
    qsort(cases, (size_t)n, sizeof(*cases), cmp_case);
    *out = cases;
    return n;
}
