/* streams_page_scan: a GetRecords reply split into its records' texts
 * (see aws/streams.h). */
#include "aws/streams.h"

#include "base/jsonskip.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    s->p = jsonskip_ws(s->p, s->end);
}

/* At the opening quote: moves past the closing one. */
static bool skip_string(struct scan *s)
{
    const char *q = jsonskip_string(s->p, s->end);

    if (!q)
        return false;
    s->p = q;
    return true;
}

/* One value of any kind; its text is [start, s->p) afterwards. */
static bool skip_value(struct scan *s, const char **start)
{
    const char *q;

    skip_ws(s);
    *start = s->p;
    q = jsonskip_value(s->p, s->end);
    if (!q || q == s->p)
        return false;
    s->p = q;
    return true;
}

static bool take(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static int add_span(struct streams_page *pg, size_t off, size_t len)
{
    if (pg->n == pg->cap) {
        size_t ncap = pg->cap ? 2 * pg->cap : 256;
        struct streams_span *v = realloc(pg->span, ncap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        pg->span = v;
        pg->cap = ncap;
    }
    pg->span[pg->n++] = (struct streams_span){ off, len };
    return 0;
}

static int scan_records(struct scan *s, const char *base, struct streams_page *pg)
{
    const char *v;
    int rc;

    pg->bad_off = (size_t)(s->p - base);
    if (!take(s, '['))
        return -EPROTO;
    pg->bad_off = (size_t)(s->p - base);
    if (take(s, ']'))
        return 0;
    do {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '{' || !skip_value(s, &v))
            return -EPROTO;
        rc = add_span(pg, (size_t)(v - base), (size_t)(s->p - v));
        if (rc < 0)
            return rc;
        pg->bad_off = (size_t)(s->p - base);
    } while (take(s, ','));
    return take(s, ']') ? 0 : -EPROTO;
}

static int scan_iterator(struct scan *s, struct streams_page *pg)
{
    const char *v;
    json_t *j;

    if (!skip_value(s, &v))
        return -EPROTO;
    j = json_loadb(v, (size_t)(s->p - v), JSON_DECODE_ANY, NULL);
    free(pg->next_iter);
    pg->next_iter = NULL;
    if (json_is_string(j) && !(pg->next_iter = strdup(json_string_value(j)))) {
        json_decref(j);
        return -ENOMEM;
    }
    if (!json_is_string(j) && !json_is_null(j)) {
        json_decref(j);
        return -EPROTO;
    }
    json_decref(j);
    return 0;
}

int streams_page_scan(const char *body, size_t len, struct streams_page *pg)
{
    struct scan s = { body, body + len };
    bool records = false;
    int rc = 0;

    pg->n = 0;
    pg->bad_off = 0;
    free(pg->next_iter);
    pg->next_iter = NULL;
    if (!body || !take(&s, '{'))
        return -EPROTO;
    if (!take(&s, '}')) {
        do {
            const char *k;
            size_t klen = 0;

            skip_ws(&s);
            k = s.p;
            if (s.p >= s.end || *s.p != '"' || !skip_string(&s))
                rc = -EPROTO;
            else
                klen = (size_t)(s.p - k);
            if (rc == 0 && !take(&s, ':'))
                rc = -EPROTO;
            if (rc == 0 && klen == 9 && memcmp(k, "\"Records\"", 9) == 0 && !records) {
                records = true;
                rc = scan_records(&s, body, pg);
                if (rc == -EPROTO)
                    return rc; /* the records before the break are kept */
            } else if (rc == 0 && klen == 19 && memcmp(k, "\"NextShardIterator\"", 19) == 0) {
                rc = scan_iterator(&s, pg);
            } else if (rc == 0) {
                const char *v;

                rc = skip_value(&s, &v) ? 0 : -EPROTO;
            }
        } while (rc == 0 && take(&s, ','));
        if (rc == 0 && !take(&s, '}'))
            rc = -EPROTO;
    }
    skip_ws(&s);
    if (rc == 0 && s.p != s.end)
        rc = -EPROTO;
    if (rc < 0) {
        /* Broken outside the records: nothing can be trusted. */
        pg->n = 0;
        pg->bad_off = 0;
        free(pg->next_iter);
        pg->next_iter = NULL;
    }
    return rc;
}

void streams_page_free(struct streams_page *pg)
{
    free(pg->span);
    free(pg->next_iter);
    memset(pg, 0, sizeof(*pg));
}
