/* config values — parsing, checking and formatting one value, setting one key. */
#include "config/config_int.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- text helpers ---- */

void config_appendf(char *dst, size_t len, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!dst || *pos >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(dst + *pos, len - *pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        *pos = *pos + (size_t)n < len ? *pos + (size_t)n : len;
}

char *config_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

/* Case-insensitive edit distance; long words never count as close. */
size_t config_levenshtein(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65], i, j;

    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (j = 0; j <= lb; j++)
        row[j] = j;
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

bool config_close_enough(const char *word, size_t d)
{
    return d <= 2 || d * 3 <= strlen(word);
}

void config_fmt_size(uint64_t v, char *out, size_t len)
{
    if (v && v % (uint64_t)GIB == 0)
        snprintf(out, len, "%" PRIu64 "g", v / (uint64_t)GIB);
    else if (v && v % (uint64_t)MIB == 0)
        snprintf(out, len, "%" PRIu64 "m", v / (uint64_t)MIB);
    else if (v && v % (uint64_t)KIB == 0)
        snprintf(out, len, "%" PRIu64 "k", v / (uint64_t)KIB);
    else
        snprintf(out, len, "%" PRIu64, v);
}

void config_fmt_duration(int64_t ms, char *out, size_t len)
{
    if (ms && ms % HOUR == 0)
        snprintf(out, len, "%" PRId64 "h", ms / HOUR);
    else if (ms && ms % MINUTE == 0)
        snprintf(out, len, "%" PRId64 "m", ms / MINUTE);
    else if (ms % SEC == 0)
        snprintf(out, len, "%" PRId64 "s", ms / SEC);
    else
        snprintf(out, len, "%" PRId64 "ms", ms);
}

void config_fmt_bound(const struct option *o, int64_t v, char *out, size_t len)
{
    if (o->type == T_SIZE)
        config_fmt_size((uint64_t)v, out, len);
    else if (o->type == T_DURATION)
        config_fmt_duration(v, out, len);
    else
        snprintf(out, len, "%" PRId64, v);
}

/* ---- value parsers ---- */

/* Decimal digits only, at least one; *end is left on the first other byte,
 * also when the number overflows (-ERANGE). */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    int rc = 0;

    if (!isdigit((unsigned char)*p))
        return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            rc = -ERANGE; /* keep scanning: the caller still checks what follows */
        else
            v = v * 10 + d;
    }
    *out = v;
    *end = p;
    return rc;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
    const char *p;
    uint64_t v, mul = 1;
    int rc = parse_digits(s, &v, &p);

    if (rc == -EINVAL)
        return rc;
    switch (*p) {
    case 'k': case 'K': mul = (uint64_t)KIB; p++; break;
    case 'm': case 'M': mul = (uint64_t)MIB; p++; break;
    case 'g': case 'G': mul = (uint64_t)GIB; p++; break;
    default: break;
    }
    if (*p)
        return -EINVAL;
    if (rc)
        return rc;
    if (v > UINT64_MAX / mul)
        return -ERANGE;
    *bytes = v * mul;
    return 0;
}

int config_parse_duration(const char *s, int64_t *ms)
{
    const char *p;
    uint64_t v, mul;
    int rc = parse_digits(s, &v, &p);

    if (rc == -EINVAL)
        return rc;
    if (strcmp(p, "ms") == 0)
        mul = 1;
    else if (strcmp(p, "s") == 0 || *p == '\0')
        mul = (uint64_t)SEC;
    else if (strcmp(p, "m") == 0)
        mul = (uint64_t)MINUTE;
    else if (strcmp(p, "h") == 0)
        mul = (uint64_t)HOUR;
    else
        return -EINVAL;
    if (rc)
        return rc;
    if (v > (uint64_t)INT64_MAX / mul)
        return -ERANGE;
    *ms = (int64_t)(v * mul);
    return 0;
}

int config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, 0;
    }
    return -EINVAL;
}

static int parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    const char *p;
    uint64_t v;
    int rc = parse_digits(s + neg, &v, &p);

    if (rc == -EINVAL || *p)
        return -EINVAL;
    if (rc || v > (uint64_t)INT64_MAX)
        return -ERANGE;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* ---- checks on string values (called only for non-empty values) ---- */

int config_check_url(const char *v, char *why, size_t len)
{
    const char *host;

    if (strncmp(v, "http://", 7) == 0)
        host = v + 7;
    else if (strncmp(v, "https://", 8) == 0)
        host = v + 8;
    else
        return snprintf(why, len, "must start with http:// or https://"), -EINVAL;
    if (*host == '\0' || *host == '/' || *host == ':')
        return snprintf(why, len, "has no host"), -EINVAL;
    for (const char *p = v; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return snprintf(why, len, "must not contain blanks"), -EINVAL;
    return 0;
}

int config_check_region(const char *v, char *why, size_t len)
{
    size_t n = strlen(v);

    for (const char *p = v; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
            goto bad;
    if (n < 3 || n > 64 || v[0] == '-' || v[n - 1] == '-')
        goto bad;
    return 0;
bad:
    snprintf(why, len, "is not a region name like us-east-1");
    return -EINVAL;
}

int config_check_listen(const char *v, char *why, size_t len)
{
    const char *colon = strrchr(v, ':');
    int64_t port;

    if (!colon || colon == v || parse_int(colon + 1, &port) || port < 1 || port > 65535) {
        snprintf(why, len, "must be HOST:PORT (port 1..65535; [::1]:PORT for IPv6)");
        return -EINVAL;
    }
    if (v[0] == '[' && colon[-1] != ']') {
        snprintf(why, len, "must be HOST:PORT (port 1..65535; [::1]:PORT for IPv6)");
        return -EINVAL;
    }
    return 0;
}

int config_check_service(const char *v, char *why, size_t len)
{
    if (strcmp(v, "es") == 0 || strcmp(v, "aoss") == 0)
        return 0;
    snprintf(why, len, "must be es or aoss");
    return -EINVAL;
}

/* OpenSearch and Elasticsearch index name rules. */
int config_check_index(const char *v, char *why, size_t len)
{
    if (strlen(v) > 255)
        return snprintf(why, len, "must be at most 255 bytes"), -EINVAL;
    if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
        return snprintf(why, len, "can't be . or .."), -EINVAL;
    if (v[0] == '_' || v[0] == '-' || v[0] == '+')
        return snprintf(why, len, "can't start with _, - or +"), -EINVAL;
    for (const char *p = v; *p; p++) {
        if (isupper((unsigned char)*p))
            return snprintf(why, len, "must be lowercase"), -EINVAL;
        if (strchr("\\/*?\"<>| ,#:", *p) || iscntrl((unsigned char)*p))
            return snprintf(why, len, "can't contain \\ / * ? \" < > | space , # or :"), -EINVAL;
    }
    return 0;
}

int config_check_table_name(const char *v, char *why, size_t len)
{
    if (config_valid_table_name(v))
        return 0;
    snprintf(why, len, "is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)");
    return -EINVAL;
}

/* The side object's name: one top-level field the engines take (no dot,
 * no blank, not a metadata field's name: those begin with '_' and are
 * refused whatever follows only when known, so "_id"-like names are out). */
int config_check_field_name(const char *v, char *why, size_t len)
{
    static const char *const meta[] = { "_id", "_index", "_routing", "_source", "_ignored",
                                        "_version", "_seq_no", "_field_names", "_doc_count",
                                        "_size", "_tier", "_feature", NULL };

    if (!*v || strlen(v) > 255)
        return snprintf(why, len, "must be 1 to 255 bytes"), -EINVAL;
    for (const char *p = v; *p; p++)
        if (*p == '.' || isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return snprintf(why, len, "must be one field name: no dot, blank or control "
                                      "character"), -EINVAL;
    for (size_t i = 0; meta[i]; i++)
        if (strcmp(v, meta[i]) == 0)
            return snprintf(why, len, "is a metadata field of the engines"), -EINVAL;
    return 0;
}

/* A worker id goes into lease items and log lines: printable, no blanks. */
int config_check_worker_id(const char *v, char *why, size_t len)
{
    if (strlen(v) > 256)
        return snprintf(why, len, "must be at most 256 bytes"), -EINVAL;
    for (const char *p = v; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return snprintf(why, len, "must not contain blanks or control characters"), -EINVAL;
    return 0;
}

bool config_valid_table_name(const char *s)
{
    size_t n = strlen(s);

    if (n < 3 || n > 255)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

/* ---- lists ---- */

static void list_clear(struct config_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

bool config_list_has(const struct config_list *l, const char *item)
{
    for (size_t i = 0; l && i < l->count; i++)
        if (strcmp(l->items[i], item) == 0)
            return true;
    return false;
}

/* Splits "a, b,c" into *out; empty items are an error. */
static int list_parse(const char *v, check_fn *check, struct config_list *out, char *why,
                      size_t len)
{
    struct config_list l = { 0 };
    char *copy = strdup(v), *p = copy;
    int rc = copy ? 0 : -ENOMEM;

    while (rc == 0 && *v) {
        char *comma = strchr(p, ',');
        char *item, **items;

        if (comma)
            *comma = '\0';
        item = config_trim(p);
        if (*item == '\0') {
            snprintf(why, len, "has an empty item");
            rc = -EINVAL;
        } else if (check && check(item, why, len) < 0) {
            rc = -EINVAL;
        } else if (!(items = realloc(l.items, (l.count + 1) * sizeof(*items)))) {
            rc = -ENOMEM;
        } else {
            l.items = items;
            if (!(l.items[l.count] = strdup(item)))
                rc = -ENOMEM;
            else
                l.count++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    if (rc) {
        list_clear(&l);
        return rc;
    }
    list_clear(out);
    *out = l;
    return 0;
}

/* ---- setting one option ---- */

/* Parses v into the field of o inside base.  Returns 0, -EINVAL with the
 * reason in why (without the value), or -ENOMEM. */
int config_opt_set(const struct option *o, void *base, const char *v, char *why, size_t len)
{
    void *field = (char *)base + o->off;
    int64_t n = 0;
    uint64_t u = 0;
    char lo[32], hi[32];
    int rc;

    if (*v == '\0' && o->type != T_STRING && o->type != T_LIST)
        return snprintf(why, len, "needs a value"), -EINVAL;
    switch (o->type) {
    case T_STRING: {
        char *copy = NULL;
        if (*v && o->check && o->check(v, why, len) < 0)
            return -EINVAL;
        if (*v && !(copy = strdup(v)))
            return -ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case T_LIST:
        return list_parse(v, o->check, field, why, len);
    case T_BOOL:
        if (config_parse_bool(v, field) < 0)
            return snprintf(why, len, "must be true or false (yes/no, on/off, 1/0)"), -EINVAL;
        return 0;
    case T_ENUM:
        for (int i = 0; o->names[i]; i++) {
            if (strcasecmp(v, o->names[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        {
            size_t pos = 0;
            config_appendf(why, len, &pos, "must be one of ");
            for (int i = 0; o->names[i]; i++)
                config_appendf(why, len, &pos, "%s%s", i ? "|" : "", o->names[i]);
        }
        return -EINVAL;
    case T_CHAR:
        if (strlen(v) != 1 || !ispunct((unsigned char)v[0]))
            return snprintf(why, len, "must be one punctuation character"), -EINVAL;
        *(char *)field = v[0];
        return 0;
    case T_INT:
        rc = parse_int(v, &n);
        if (rc == -EINVAL)
            return snprintf(why, len, "must be an integer"), -EINVAL;
        break;
    case T_SIZE:
        rc = config_parse_size(v, &u);
        if (rc == -EINVAL)
            return snprintf(why, len, "must be a size like 512k, 5m or 1g"), -EINVAL;
        n = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        break;
    case T_DURATION:
        rc = config_parse_duration(v, &n);
        if (rc == -EINVAL)
            return snprintf(why, len, "must be a duration like 500ms, 5s, 2m or 1h"), -EINVAL;
        break;
    default:
        assert(0);
        return -EINVAL;
    }
    if (rc == -ERANGE || n < o->min || n > o->max) {
        config_fmt_bound(o, o->min, lo, sizeof(lo));
        config_fmt_bound(o, o->max, hi, sizeof(hi));
        snprintf(why, len, "must be %s..%s", lo, hi);
        return -EINVAL;
    }
    if (o->type == T_INT)
        *(int *)field = (int)n;
    else if (o->type == T_SIZE)
        *(size_t *)field = (size_t)n;
    else
        *(int64_t *)field = n;
    return 0;
}

void config_opt_clear(const struct option *o, void *base)
{
    void *field = (char *)base + o->off;

    if (o->type == T_STRING) {
        free(*(char **)field);
        *(char **)field = NULL;
    } else if (o->type == T_LIST) {
        list_clear(field);
    }
}
