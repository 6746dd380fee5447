/* config — option table, INI glue (libinih), environment overrides, checks. */
#include "config/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/secret.h"
#include "base/url.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SEC ((int64_t)1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)
#define SECRET_MAX (64 * 1024)

/* Enum fields are written through an int pointer by the table code. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_auth) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_compression) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_start) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_ttl) == sizeof(int), "enum size");

enum opt_type { T_STRING, T_BOOL, T_INT, T_SIZE, T_DURATION, T_ENUM, T_LIST, T_CHAR };
static const char *const type_name[] = { [T_STRING] = "string", [T_BOOL] = "bool",
    [T_INT] = "integer", [T_SIZE] = "size", [T_DURATION] = "duration", [T_ENUM] = "enum",
    [T_LIST] = "list", [T_CHAR] = "character" };

typedef int check_fn(const char *value, char *why, size_t len);

struct option {
    const char *section;      /* "daemon", "aws", "sink"; "table" in table_opts */
    const char *key;
    enum opt_type type;
    const char *def;          /* default, written as in the file; NULL = unset or derived */
    int64_t min, max;         /* T_INT, T_SIZE (bytes), T_DURATION (ms) */
    size_t off;               /* in struct config, or struct config_table */
    const char *const *names; /* T_ENUM: names[i] is value i; NULL-terminated */
    check_fn *check;          /* T_STRING value or each T_LIST item, when non-empty */
    const char *help;
};

static check_fn check_url, check_region, check_listen, check_service, check_index;

static const char *const level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const format_names[] = { "text", "json", NULL };
static const char *const auth_names[] = { "sigv4", "basic", "apikey", "none", NULL };
static const char *const comp_names[] = { "none", "gzip", NULL };
static const char *const start_names[] = { "trim_horizon", "latest", NULL };
static const char *const ttl_names[] = { "delete", "keep", NULL };

#define G(field) offsetof(struct config, field)
#define TB(field) offsetof(struct config_table, field)

static const struct option global_opts[] = {
    { "daemon", "state_dir", T_STRING, "/var/lib/ddb2es", 0, 0, G(daemon.state_dir), NULL, NULL,
      "directory of checkpoints.json (and of the dead-letter file by default)" },
    { "daemon", "log_level", T_ENUM, "info", 0, 0, G(daemon.log_level), level_names, NULL,
      "least severe level logged" },
    { "daemon", "log_format", T_ENUM, "text", 0, 0, G(daemon.log_format), format_names, NULL,
      "text (journald-friendly) or one JSON object a line" },
    { "daemon", "metrics_listen", T_STRING, "127.0.0.1:9108", 0, 0, G(daemon.metrics_listen),
      NULL, check_listen, "HOST:PORT serving /metrics and /healthz; empty = off" },
    { "daemon", "shutdown_timeout", T_DURATION, "20s", 1 * SEC, HOUR, G(daemon.shutdown_timeout_ms),
      NULL, NULL, "how long a stop may take to finish in-flight bulks and checkpoint" },
    { "daemon", "checkpoint_interval", T_DURATION, "5s", 0, 10 * MINUTE,
      G(daemon.checkpoint_interval_ms), NULL, NULL,
      "debounce of checkpoint writes (0 = write at every advance)" },
    { "daemon", "max_queue_bytes", T_SIZE, "16m", 1 * MIB, 16 * GIB, G(daemon.max_queue_bytes),
      NULL, NULL, "memory cap for documents between the readers and the sink" },
    { "daemon", "idle_poll_interval", T_DURATION, "2s", 100, MINUTE,
      G(daemon.idle_poll_interval_ms), NULL, NULL,
      "longest wait between GetRecords calls on an idle shard (each call is billed)" },
    { "daemon", "read_concurrency", T_INT, "8", 1, 1024, G(daemon.read_concurrency), NULL, NULL,
      "GetRecords requests in flight over all shards (each reply can add up to 1 MB)" },
    { "daemon", "shard_read_ahead", T_INT, "20000", 1000, 10000000, G(daemon.shard_read_ahead),
      NULL, NULL,
      "records a shard reads past its checkpoint before it waits (a record not finished holds "
      "the checkpoint; ~64 bytes each)" },
    { "daemon", "shard_list_interval", T_DURATION, "60s", 1 * SEC, HOUR,
      G(daemon.shard_list_interval_ms), NULL, NULL,
      "how often each stream's shards are listed again (DescribeStream)" },
    { "daemon", "stream_check_interval", T_DURATION, "5m", 1 * SEC, 24 * HOUR,
      G(daemon.stream_check_interval_ms), NULL, NULL,
      "how often each table's latest stream ARN is checked (DescribeTable)" },

    { "aws", "region", T_STRING, NULL, 0, 0, G(aws.region), NULL, check_region,
      "default: AWS_REGION, AWS_DEFAULT_REGION, the profile, then IMDS" },
    { "aws", "profile", T_STRING, NULL, 0, 0, G(aws.profile), NULL, NULL,
      "shared config profile; default: AWS_PROFILE, then \"default\"" },
    { "aws", "endpoint", T_STRING, NULL, 0, 0, G(aws.endpoint), NULL, check_url,
      "http(s) URL overriding DynamoDB and DynamoDB Streams (VPC endpoint, DynamoDB Local)" },
    { "aws", "allowed_regions", T_LIST, NULL, 0, 0, G(aws.allowed_regions), NULL, check_region,
      "comma list: refuse to start if a table or the sink is in another region" },
    { "aws", "use_fips_endpoint", T_BOOL, "false", 0, 0, G(aws.use_fips_endpoint), NULL, NULL,
      "use the FIPS endpoints (not with endpoint)" },
    { "aws", "use_dualstack_endpoint", T_BOOL, "false", 0, 0, G(aws.use_dualstack_endpoint), NULL,
      NULL, "use the dual-stack (IPv6) endpoints (not with endpoint)" },

    { "sink", "url", T_STRING, NULL, 0, 0, G(sink.url), NULL, check_url,
      "required: http(s) URL of the OpenSearch/Elasticsearch cluster" },
    { "sink", "auth", T_ENUM, "sigv4", 0, 0, G(sink.auth), auth_names, NULL,
      "how requests are authenticated" },
    { "sink", "sigv4_service", T_STRING, NULL, 0, 0, G(sink.sigv4_service), NULL, check_service,
      "es (OpenSearch Service) or aoss (Serverless); default: aoss for *.aoss.amazonaws.com" },
    { "sink", "username", T_STRING, NULL, 0, 0, G(sink.username), NULL, NULL,
      "basic auth user" },
    { "sink", "password_file", T_STRING, NULL, 0, 0, G(sink.password_file), NULL, NULL,
      "basic auth password file; a bare name is looked up in $CREDENTIALS_DIRECTORY" },
    { "sink", "api_key_file", T_STRING, NULL, 0, 0, G(sink.api_key_file), NULL, NULL,
      "Elasticsearch API key file (sent as ApiKey); bare name as for password_file" },
    { "sink", "ca_file", T_STRING, NULL, 0, 0, G(sink.ca_file), NULL, NULL,
      "extra CA bundle (PEM) trusted for the sink" },
    { "sink", "tls_verify", T_BOOL, "true", 0, 0, G(sink.tls_verify), NULL, NULL,
      "verify the sink's certificate; false is logged as a warning" },
    { "sink", "bulk_max_actions", T_INT, "1000", 1, 100000, G(sink.bulk_max_actions), NULL, NULL,
      "actions per bulk request" },
    { "sink", "bulk_max_bytes", T_SIZE, "5m", 1 * KIB, 100 * MIB, G(sink.bulk_max_bytes), NULL,
      NULL, "bytes per bulk request body" },
    { "sink", "flush_interval", T_DURATION, "1s", 10, 10 * MINUTE, G(sink.flush_interval_ms), NULL,
      NULL, "longest wait before a partial bulk is sent" },
    { "sink", "concurrency", T_INT, "2", 1, 64, G(sink.concurrency), NULL, NULL,
      "bulk requests in flight" },
    { "sink", "compression", T_ENUM, "none", 0, 0, G(sink.compression), comp_names, NULL,
      "request body compression" },
    { "sink", "dlq_path", T_STRING, NULL, 0, 0, G(sink.dlq_path), NULL, NULL,
      "dead-letter file; default: STATE_DIR/dlq.ndjson" },
    { "sink", "request_timeout", T_DURATION, "60s", 1 * SEC, 10 * MINUTE,
      G(sink.request_timeout_ms), NULL, NULL, "a bulk request taking longer is retried" },
    { "sink", "tombstone_ttl", T_DURATION, "10m", 1 * SEC, 24 * HOUR, G(sink.tombstone_ttl_ms),
      NULL, NULL,
      "how long a finished delete is remembered: no older action on its _id is sent meanwhile" },
    { "sink", "tombstone_max", T_INT, "32768", 1, 10000000, G(sink.tombstone_max), NULL, NULL,
      "deletes remembered at most (the oldest are forgotten first)" },
    { "sink", "max_retry_backoff", T_DURATION, "30s", 100, 10 * MINUTE,
      G(sink.max_retry_backoff_ms), NULL, NULL, "cap of the exponential backoff between retries" },
};

static const struct option table_opts[] = {
    { "table", "index", T_STRING, NULL, 0, 0, TB(index), NULL, check_index,
      "target index; default: the table name, lowercased" },
    { "table", "start", T_ENUM, "trim_horizon", 0, 0, TB(start), start_names, NULL,
      "where to begin when no checkpoint exists" },
    { "table", "id_separator", T_CHAR, "|", 0, 0, TB(id_separator), NULL, NULL,
      "joins the key values into the document _id" },
    { "table", "on_ttl_delete", T_ENUM, "delete", 0, 0, TB(on_ttl_delete), ttl_names, NULL,
      "what a REMOVE made by TTL expiry does to the document" },
    { "table", "include", T_LIST, NULL, 0, 0, TB(include), NULL, NULL,
      "comma list: only these attributes are indexed (not with exclude)" },
    { "table", "exclude", T_LIST, NULL, 0, 0, TB(exclude), NULL, NULL,
      "comma list: these attributes are never indexed (not with include)" },
    { "table", "hmac", T_LIST, NULL, 0, 0, TB(hmac), NULL, NULL,
      "comma list: values replaced by hex HMAC-SHA256 keyed by hmac_key_file" },
    { "table", "hmac_key_file", T_STRING, NULL, 0, 0, TB(hmac_key_file), NULL, NULL,
      "HMAC key file, required with hmac; bare name as for password_file" },
};

#define NGLOBAL ARRAY_LEN(global_opts)
#define NTABLE ARRAY_LEN(table_opts)

static const char *const global_sections[] = { "daemon", "aws", "sink" };
#define NSECTIONS ARRAY_LEN(global_sections)
enum { SEC_NONE = -2, SEC_TABLE = -1 }; /* else an index into global_sections */

/* Where a value came from: a file line, an environment variable, or neither
 * (a default). */
struct origin {
    int line;
    const char *env; /* "NAME=VALUE" entry of envp; envlen bytes are the name */
    int envlen;
};

struct table_info {
    int line; /* of its [table NAME] header, 0 when declared by DDB2ES_TABLES */
    struct origin orig[NTABLE];
};

/* The origins, kept in the loaded configuration (envp may be gone by then). */
struct where {
    int line;
    char *env; /* the variable's name, owned; NULL when not from the environment */
};

struct config_where {
    struct where global[NGLOBAL];
    struct where (*table)[NTABLE]; /* parallel to cfg->tables */
};

struct loader {
    struct config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int rc;

    FILE *f;
    int lineno;
    char *raw;
    size_t rawcap;
    char *cur; /* the current line, comments and blanks stripped, inside raw */

    int sec; /* SEC_NONE, SEC_TABLE or a global section */
    size_t tab;
    int sec_line[NSECTIONS];
    struct origin orig[NGLOBAL];
    struct table_info *tinfo; /* parallel to cfg->tables */
};

/* ---- text helpers ---- */

static void appendf(char *dst, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void appendf(char *dst, size_t len, size_t *pos, const char *fmt, ...)
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

static char *trim(char *s)
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
static size_t levenshtein(const char *a, const char *b)
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

static bool close_enough(const char *word, size_t d)
{
    return d <= 2 || d * 3 <= strlen(word);
}

static void fmt_size(uint64_t v, char *out, size_t len)
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

static void fmt_duration(int64_t ms, char *out, size_t len)
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

static void fmt_bound(const struct option *o, int64_t v, char *out, size_t len)
{
    if (o->type == T_SIZE)
        fmt_size((uint64_t)v, out, len);
    else if (o->type == T_DURATION)
        fmt_duration(v, out, len);
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

    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
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

static int check_url(const char *v, char *why, size_t len)
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

static int check_region(const char *v, char *why, size_t len)
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

static int check_listen(const char *v, char *why, size_t len)
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

static int check_service(const char *v, char *why, size_t len)
{
    if (strcmp(v, "es") == 0 || strcmp(v, "aoss") == 0)
        return 0;
    snprintf(why, len, "must be es or aoss");
    return -EINVAL;
}

/* OpenSearch and Elasticsearch index name rules. */
static int check_index(const char *v, char *why, size_t len)
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

static bool valid_table_name(const char *s)
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
        item = trim(p);
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
static int opt_set(const struct option *o, void *base, const char *v, char *why, size_t len)
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
            appendf(why, len, &pos, "must be one of ");
            for (int i = 0; o->names[i]; i++)
                appendf(why, len, &pos, "%s%s", i ? "|" : "", o->names[i]);
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
        fmt_bound(o, o->min, lo, sizeof(lo));
        fmt_bound(o, o->max, hi, sizeof(hi));
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

static void opt_clear(const struct option *o, void *base)
{
    void *field = (char *)base + o->off;

    if (o->type == T_STRING) {
        free(*(char **)field);
        *(char **)field = NULL;
    } else if (o->type == T_LIST) {
        list_clear(field);
    }
}

/* ---- errors ---- */

/* One error line into err: where (file:line, or the variable), then the
 * section and key for a file, then the reason. */
static void vformat(char *err, size_t errlen, const char *path, struct origin at,
                    const char *sect, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
static void vformat(char *err, size_t errlen, const char *path, struct origin at,
                    const char *sect, const char *key, const char *fmt, va_list ap)
{
    size_t pos = 0;

    if (!err || errlen == 0)
        return;
    err[0] = '\0';
    if (at.env) {
        appendf(err, errlen, &pos, "%.*s: ", at.envlen, at.env);
    } else {
        if (path && at.line)
            appendf(err, errlen, &pos, "%s:%d: ", path, at.line);
        else if (path)
            appendf(err, errlen, &pos, "%s: ", path);
        if (sect && key)
            appendf(err, errlen, &pos, "[%s] %s: ", sect, key);
        else if (sect)
            appendf(err, errlen, &pos, "[%s]: ", sect);
        else if (key)
            appendf(err, errlen, &pos, "%s: ", key);
    }
    if (pos < errlen)
        vsnprintf(err + pos, errlen - pos, fmt, ap);
}

static void vfail(struct loader *L, struct origin at, const char *sect, const char *key,
                  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void vfail(struct loader *L, struct origin at, const char *sect, const char *key,
                  const char *fmt, va_list ap)
{
    if (L->rc)
        return; /* the first error is the one reported */
    L->rc = CONFIG_EX_CONFIG;
    vformat(L->err, L->errlen, L->path, at, sect, key, fmt, ap);
}

static void fail(struct loader *L, struct origin at, const char *sect, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(struct loader *L, struct origin at, const char *sect, const char *key,
                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(L, at, sect, key, fmt, ap);
    va_end(ap);
}

static void oom(struct loader *L)
{
    if (L->rc)
        return;
    L->rc = CONFIG_EX_OSERR;
    if (L->err && L->errlen)
        snprintf(L->err, L->errlen, "%s%sout of memory", L->path ? L->path : "",
                 L->path ? ": " : "");
}

static struct origin at_line(int line)
{
    return (struct origin){ .line = line };
}

/* Section label for messages: "sink" or "table posts". */
static const char *label(struct loader *L, const struct option *o, size_t tab, char *buf,
                         size_t len)
{
    if (strcmp(o->section, "table") != 0)
        return o->section;
    snprintf(buf, len, "table %s", L->cfg->tables[tab].name);
    return buf;
}

/* Sets option o (of the table tab when it is a table option) from src. */
static void apply(struct loader *L, const struct option *o, size_t tab, const char *v,
                  struct origin src)
{
    bool is_table = strcmp(o->section, "table") == 0;
    void *base = is_table ? (void *)&L->cfg->tables[tab] : (void *)L->cfg;
    struct origin *orig = is_table ? &L->tinfo[tab].orig[o - table_opts] : &L->orig[o - global_opts];
    char why[200], lab[300];
    int rc;

    if (src.line && orig->line) {
        fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key,
             "duplicate key (first set on line %d)", orig->line);
        return;
    }
    why[0] = '\0';
    rc = opt_set(o, base, v, why, sizeof(why));
    if (rc == -ENOMEM)
        oom(L);
    else if (rc < 0 && *v)
        fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key, "%s, got \"%.100s\"", why, v);
    else if (rc < 0)
        fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key, "%s", why);
    else
        *orig = src;
}

/* ---- tables ---- */

static void apply_defaults(struct loader *L, const struct option *opts, size_t n, void *base)
{
    char why[200];

    for (size_t i = 0; i < n && !L->rc; i++) {
        if (!opts[i].def)
            continue;
        int rc = opt_set(&opts[i], base, opts[i].def, why, sizeof(why));
        assert(rc != -EINVAL); /* the table's own defaults are valid */
        if (rc < 0)
            oom(L);
    }
}

static ssize_t table_lookup(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (strcmp(cfg->tables[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends a table with its defaults; returns its index or -1 (out of memory). */
static ssize_t table_add(struct loader *L, const char *name, int line)
{
    struct config *cfg = L->cfg;
    struct config_table *t;
    struct table_info *ti;
    size_t n = cfg->ntables;

    t = realloc(cfg->tables, (n + 1) * sizeof(*t));
    if (t)
        cfg->tables = t;
    ti = t ? realloc(L->tinfo, (n + 1) * sizeof(*ti)) : NULL;
    if (ti)
        L->tinfo = ti;
    if (!t || !ti) {
        oom(L);
        return -1;
    }
    memset(&t[n], 0, sizeof(t[n]));
    memset(&ti[n], 0, sizeof(ti[n]));
    ti[n].line = line;
    if (!(t[n].name = strdup(name))) {
        oom(L);
        return -1;
    }
    cfg->ntables++;
    apply_defaults(L, table_opts, NTABLE, &t[n]);
    return L->rc ? -1 : (ssize_t)n;
}

/* ---- the file ---- */

static const struct option *find_opt(const struct option *opts, size_t n, const char *section,
                                     const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0 && strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

/* The key of section closest to key (which is unknown there), or NULL. */
static const char *closest_key(const char *section, const char *key)
{
    const struct option *opts = strcmp(section, "table") == 0 ? table_opts : global_opts;
    size_t n = strcmp(section, "table") == 0 ? NTABLE : NGLOBAL, best = SIZE_MAX;
    const char *found = NULL;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(opts[i].section, section) != 0)
            continue;
        size_t d = levenshtein(key, opts[i].key);
        if (d < best) {
            best = d;
            found = opts[i].key;
        }
    }
    return found && close_enough(key, best) ? found : NULL;
}

/* " (did you mean ...?)" for an unknown key of section, or "". */
static void key_hint(const char *section, const char *key, char *out, size_t len)
{
    const char *near = closest_key(section, key);

    out[0] = '\0';
    if (near) {
        snprintf(out, len, " (did you mean %s?)", near);
        return;
    }
    for (size_t i = 0; i < NGLOBAL; i++) {
        if (strcmp(global_opts[i].key, key) == 0) {
            snprintf(out, len, " (it belongs in [%s])", global_opts[i].section);
            return;
        }
    }
    if (find_opt(table_opts, NTABLE, "table", key))
        snprintf(out, len, " (it belongs in a [table NAME] section)");
}

static void on_section(struct loader *L, char *s)
{
    char *end = strchr(s, ']'), *name, hint[80] = "";
    struct origin at = at_line(L->lineno);

    if (!end) {
        fail(L, at, NULL, NULL, "%s: missing ] in section header", s);
        return;
    }
    if (end[1] != '\0') {
        fail(L, at, NULL, NULL, "unexpected text after ]: \"%.60s\"", trim(end + 1));
        return;
    }
    *end = '\0';
    name = trim(s + 1);
    for (size_t i = 0; i < NSECTIONS; i++) {
        if (strcmp(name, global_sections[i]) != 0)
            continue;
        if (L->sec_line[i]) {
            fail(L, at, name, NULL, "duplicate section (first on line %d)", L->sec_line[i]);
            return;
        }
        L->sec_line[i] = L->lineno;
        L->sec = (int)i;
        return;
    }
    if (strncmp(name, "table", 5) == 0 && (name[5] == '\0' || name[5] == ' ' || name[5] == '\t')) {
        char *tname = trim(name + 5);
        ssize_t t;

        if (*tname == '\0') {
            fail(L, at, "table", NULL, "missing table name: write [table NAME]");
            return;
        }
        if (!valid_table_name(tname)) {
            fail(L, at, name, NULL,
                 "\"%s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)", tname);
            return;
        }
        t = table_lookup(L->cfg, tname);
        if (t >= 0) {
            fail(L, at, name, NULL, "duplicate section (first on line %d)", L->tinfo[t].line);
            return;
        }
        t = table_add(L, tname, L->lineno);
        L->sec = SEC_TABLE;
        L->tab = (size_t)t;
        return;
    }
    /* Unknown: compare its first word with the known ones. */
    {
        size_t wlen = strcspn(name, " \t"), best = SIZE_MAX;
        const char *near = NULL;
        char word[65];

        snprintf(word, sizeof(word), "%.*s", (int)(wlen < 64 ? wlen : 64), name);
        for (size_t i = 0; i < NSECTIONS; i++) {
            size_t d = levenshtein(word, global_sections[i]);
            if (d < best)
                best = d, near = global_sections[i];
        }
        if (levenshtein(word, "table") < best) {
            best = levenshtein(word, "table");
            near = "table";
        }
        if (near && close_enough(word, best)) {
            if (strcmp(near, "table") == 0)
                snprintf(hint, sizeof(hint), " (did you mean [table %.40s]?)",
                         name[wlen] ? trim(name + wlen) : "NAME");
            else
                snprintf(hint, sizeof(hint), " (did you mean [%s]?)", near);
        } else {
            snprintf(hint, sizeof(hint), " (known: [daemon], [aws], [sink], [table NAME])");
        }
        fail(L, at, name, NULL, "unknown section%s", hint);
    }
}

/* libinih line source: counts lines, strips the comments libinih does not
 * know (" #"), drops leading blanks so no line is taken as a continuation,
 * handles section headers itself (duplicates, table names) and passes long
 * lines on as a short stand-in (the handler reads the full line from L->cur). */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *L = stream;
    ssize_t n;
    char *s;
    const char *give;

    if (L->rc)
        return NULL;
    errno = 0;
    n = getline(&L->raw, &L->rawcap, L->f);
    if (n < 0) {
        if (ferror(L->f))
            fail(L, at_line(0), NULL, NULL, "cannot read: %s", strerror(errno ? errno : EIO));
        return NULL;
    }
    L->lineno++;
    s = L->raw;
    if (memchr(s, '\0', (size_t)n)) {
        fail(L, at_line(L->lineno), NULL, NULL, "NUL byte in line");
        return NULL;
    }
    if (L->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    s = trim(s);
    if (*s == '#' || *s == ';')
        *s = '\0';
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    s = trim(s);
    L->cur = s;
    if (*s == '[') {
        on_section(L, s);
        if (L->rc)
            return NULL;
        give = "[s]";
    } else if (*s && !strpbrk(s, "=:")) {
        fail(L, at_line(L->lineno), NULL, NULL,
             "expected \"key = value\" or \"[section]\", got \"%.60s\"", s);
        return NULL;
    } else {
        give = strlen(s) + 2 <= (size_t)num ? s : "k=v";
    }
    snprintf(str, (size_t)num, "%s\n", give);
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct loader *L = user;
    char *sep, *key, *val, hint[80];
    const struct option *o;
    struct origin at = at_line(L->lineno);

    (void)section, (void)name, (void)value; /* taken from the full line instead */
    if (L->rc)
        return 0;
    sep = strpbrk(L->cur, "=:");
    assert(sep);
    *sep = '\0';
    key = trim(L->cur);
    val = trim(sep + 1);
    if (L->sec == SEC_NONE) {
        key_hint("", key, hint, sizeof(hint));
        fail(L, at, NULL, *key ? key : "\"\"", "key outside any section%s", hint);
        return 0;
    }
    if (L->sec == SEC_TABLE) {
        o = find_opt(table_opts, NTABLE, "table", key);
        if (!o) {
            char lab[300];
            key_hint("table", key, hint, sizeof(hint));
            snprintf(lab, sizeof(lab), "table %s", L->cfg->tables[L->tab].name);
            fail(L, at, lab, *key ? key : "\"\"", "unknown key%s", hint);
            return 0;
        }
        apply(L, o, L->tab, val, at);
    } else {
        const char *sect = global_sections[L->sec];
        o = find_opt(global_opts, NGLOBAL, sect, key);
        if (!o) {
            key_hint(sect, key, hint, sizeof(hint));
            fail(L, at, sect, *key ? key : "\"\"", "unknown key%s", hint);
            return 0;
        }
        apply(L, o, 0, val, at);
    }
    return L->rc == 0;
}

static void load_file(struct loader *L)
{
    struct stat st;
    int rc;

    L->f = fopen(L->path, "re");
    if (!L->f) {
        fail(L, at_line(0), NULL, NULL, "cannot open: %s", strerror(errno));
        return;
    }
    if (fstat(fileno(L->f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fail(L, at_line(0), NULL, NULL, "cannot read: %s", strerror(EISDIR));
        return;
    }
    L->sec = SEC_NONE;
    rc = ini_parse_stream(read_line, L, on_pair, L);
    if (rc > 0 && !L->rc) /* a syntax error the reader did not foresee */
        fail(L, at_line(rc), NULL, NULL, "syntax error");
    else if (rc < 0 && !L->rc)
        oom(L);
}

/* ---- the environment ---- */

static struct origin at_env(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return (struct origin){ .env = entry, .envlen = (int)(eq - entry) };
}

/* Table name as it appears in variable names: upper case, others '_'. */
static void env_name(const char *name, char *out, size_t len)
{
    size_t i = 0;

    for (; name[i] && i + 1 < len; i++)
        out[i] = isalnum((unsigned char)name[i]) ? (char)toupper((unsigned char)name[i]) : '_';
    out[i] = '\0';
}

static const struct option *find_opt_env(const struct option *opts, size_t n, const char *section,
                                         const char *key, size_t keylen)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0 && strlen(opts[i].key) == keylen &&
            strncasecmp(opts[i].key, key, keylen) == 0)
            return &opts[i];
    return NULL;
}

static void env_unknown_key(struct loader *L, struct origin at, const char *section,
                            const char *prefix, const char *key, size_t keylen)
{
    char lower[65], hint[200] = "";
    const char *near;

    snprintf(lower, sizeof(lower), "%.*s", (int)(keylen < 64 ? keylen : 64), key);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    near = closest_key(section, lower);
    if (near) {
        size_t pos = 0;
        appendf(hint, sizeof(hint), &pos, " (did you mean %s", prefix);
        for (const char *p = near; *p; p++)
            appendf(hint, sizeof(hint), &pos, "%c", toupper((unsigned char)*p));
        appendf(hint, sizeof(hint), &pos, "?)");
    }
    fail(L, at, NULL, NULL, "unknown key%s", hint);
}

static void env_tables(struct loader *L, const char *entry)
{
    struct origin at = at_env(entry);
    char *copy = strdup(strchr(entry, '=') + 1), *p = copy;

    if (!copy) {
        oom(L);
        return;
    }
    while (p && !L->rc) {
        char *comma = strchr(p, ','), *colon, *name, *index = NULL;
        ssize_t t;

        if (comma)
            *comma = '\0';
        if ((colon = strchr(p, ':'))) {
            *colon = '\0';
            index = trim(colon + 1);
        }
        name = trim(p);
        p = comma ? comma + 1 : NULL;
        if (*name == '\0' && !index)
            continue; /* "a,,b" and a trailing comma */
        if (!valid_table_name(name)) {
            fail(L, at, NULL, NULL,
                 "\"%s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)", name);
            break;
        }
        t = table_lookup(L->cfg, name);
        if (t < 0)
            t = table_add(L, name, 0);
        if (t >= 0 && index)
            apply(L, find_opt(table_opts, NTABLE, "table", "index"), (size_t)t, index, at);
    }
    free(copy);
}

static void env_table_key(struct loader *L, const char *entry, const char *rest, size_t restlen)
{
    struct origin at = at_env(entry);
    ssize_t best = -1, prefix_only = -1;
    size_t best_len = 0;
    const struct option *best_opt = NULL;
    bool ambiguous = false;
    char en[300];

    for (size_t i = 0; i < L->cfg->ntables; i++) {
        size_t n;
        const struct option *o;

        env_name(L->cfg->tables[i].name, en, sizeof(en));
        n = strlen(en);
        if (n + 1 >= restlen || strncmp(rest, en, n) != 0 || rest[n] != '_')
            continue;
        o = find_opt_env(table_opts, NTABLE, "table", rest + n + 1, restlen - n - 1);
        if (!o) {
            prefix_only = (ssize_t)i;
            continue;
        }
        if (best >= 0 && n == best_len)
            ambiguous = true;
        if (best < 0 || n > best_len) {
            best = (ssize_t)i, best_len = n, best_opt = o;
            ambiguous = false;
        }
    }
    if (ambiguous) {
        fail(L, at, NULL, NULL, "more than one table has this name in the environment");
    } else if (best >= 0) {
        apply(L, best_opt, (size_t)best, strchr(entry, '=') + 1, at);
    } else if (prefix_only >= 0) {
        char prefix[320];
        env_name(L->cfg->tables[prefix_only].name, en, sizeof(en));
        snprintf(prefix, sizeof(prefix), "DDB2ES_TABLE_%s_", en);
        env_unknown_key(L, at, "table", prefix, rest + strlen(en) + 1,
                        restlen - strlen(en) - 1);
    } else {
        fail(L, at, NULL, NULL,
             "no such table (declare it in DDB2ES_TABLES or in a [table NAME] section)");
    }
}

static void load_env(struct loader *L, const char *const *envp)
{
    static const char pre[] = "DDB2ES_";

    for (size_t i = 0; envp && envp[i] && !L->rc; i++)
        if (strncmp(envp[i], "DDB2ES_TABLES=", 14) == 0)
            env_tables(L, envp[i]);
    for (size_t i = 0; envp && envp[i] && !L->rc; i++) {
        const char *e = envp[i], *eq = strchr(e, '='), *rest;
        size_t restlen;

        if (!eq || strncmp(e, pre, sizeof(pre) - 1) != 0)
            continue;
        rest = e + sizeof(pre) - 1;
        restlen = (size_t)(eq - rest);
        if (restlen > 6 && strncmp(rest, "TABLE_", 6) == 0) {
            env_table_key(L, e, rest + 6, restlen - 6);
            continue;
        }
        for (size_t s = 0; s < NSECTIONS; s++) {
            size_t sl = strlen(global_sections[s]);
            const struct option *o;
            char prefix[32];

            if (restlen <= sl + 1 || strncasecmp(rest, global_sections[s], sl) != 0 ||
                rest[sl] != '_')
                continue;
            o = find_opt_env(global_opts, NGLOBAL, global_sections[s], rest + sl + 1,
                             restlen - sl - 1);
            if (o) {
                apply(L, o, 0, eq + 1, at_env(e));
            } else {
                snprintf(prefix, sizeof(prefix), "DDB2ES_%.*s_", (int)sl, rest);
                env_unknown_key(L, at_env(e), global_sections[s], prefix, rest + sl + 1,
                                restlen - sl - 1);
            }
            break;
        }
    }
}

/* ---- defaults that depend on other keys, and rules across keys ---- */

static struct origin gorig(struct loader *L, const char *section, const char *key)
{
    return L->orig[find_opt(global_opts, NGLOBAL, section, key) - global_opts];
}

static struct origin torig(struct loader *L, size_t t, const char *key)
{
    return L->tinfo[t].orig[find_opt(table_opts, NTABLE, "table", key) - table_opts];
}

static char *host_of(const char *url, char *out, size_t len)
{
    const char *h = strstr(url, "://");
    size_t n;

    h = h ? h + 3 : url;
    if (strchr(h, '@') && strchr(h, '@') < h + strcspn(h, "/"))
        h = strchr(h, '@') + 1;
    n = strcspn(h, ":/?#");
    snprintf(out, len, "%.*s", (int)n, h);
    return out;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static void finish(struct loader *L)
{
    struct config *c = L->cfg;
    char host[256], buf[64], why[200];

    if (!c->sink.url) {
        fail(L, at_line(0), "sink", "url",
             "required (set it in the file or as DDB2ES_SINK_URL)");
        return;
    }
    if (c->ntables == 0) {
        fail(L, at_line(0), NULL, NULL,
             "no table configured (add a [table NAME] section or set DDB2ES_TABLES)");
        return;
    }
    if (!c->sink.sigv4_service &&
        !(c->sink.sigv4_service =
              strdup(ends_with(host_of(c->sink.url, host, sizeof(host)), ".aoss.amazonaws.com")
                         ? "aoss"
                         : "es"))) {
        oom(L);
        return;
    }
    if (!c->daemon.state_dir) {
        fail(L, gorig(L, "daemon", "state_dir"), "daemon", "state_dir", "must not be empty");
        return;
    }
    if (!c->sink.dlq_path && asprintf(&c->sink.dlq_path, "%s%sdlq.ndjson", c->daemon.state_dir,
                                      ends_with(c->daemon.state_dir, "/") ? "" : "/") < 0) {
        c->sink.dlq_path = NULL;
        oom(L);
        return;
    }
    switch (c->sink.auth) {
    case CONFIG_AUTH_BASIC:
        if (!c->sink.username || !c->sink.password_file)
            fail(L, gorig(L, "sink", "auth"), "sink", "auth",
                 "basic needs username and password_file");
        break;
    case CONFIG_AUTH_APIKEY:
        if (!c->sink.api_key_file)
            fail(L, gorig(L, "sink", "auth"), "sink", "auth", "apikey needs api_key_file");
        break;
    default:
        break;
    }
    if (c->aws.endpoint && (c->aws.use_fips_endpoint || c->aws.use_dualstack_endpoint)) {
        const char *k = c->aws.use_fips_endpoint ? "use_fips_endpoint" : "use_dualstack_endpoint";
        fail(L, gorig(L, "aws", k), "aws", k, "can't be used with endpoint");
    }
    if (c->aws.region && c->aws.allowed_regions.count &&
        !config_list_has(&c->aws.allowed_regions, c->aws.region))
        fail(L, gorig(L, "aws", "region"), "aws", "region",
             "\"%s\" is not in allowed_regions", c->aws.region);
    if (c->daemon.max_queue_bytes < c->sink.bulk_max_bytes) {
        fmt_size(c->sink.bulk_max_bytes, buf, sizeof(buf));
        fail(L, gorig(L, "daemon", "max_queue_bytes"), "daemon", "max_queue_bytes",
             "must be at least [sink] bulk_max_bytes (%s)", buf);
    }
    for (size_t i = 0; i < c->ntables && !L->rc; i++) {
        struct config_table *t = &c->tables[i];
        char lab[300];

        snprintf(lab, sizeof(lab), "table %s", t->name);
        if (!t->index) {
            if (!(t->index = strdup(t->name))) {
                oom(L);
                break;
            }
            for (char *p = t->index; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            if (check_index(t->index, why, sizeof(why)) < 0)
                fail(L, at_line(L->tinfo[i].line), lab, "index",
                     "the default \"%s\" %s: set index", t->index, why);
        }
        if (t->include.count && t->exclude.count) {
            struct origin a = torig(L, i, "include"), b = torig(L, i, "exclude");
            bool excl_last = b.env || (!a.env && b.line > a.line);
            fail(L, excl_last ? b : a, lab, excl_last ? "exclude" : "include",
                 "include and exclude can't both be set");
        }
        if (t->hmac.count && !t->hmac_key_file)
            fail(L, torig(L, i, "hmac"), lab, "hmac", "needs hmac_key_file");
    }
}

/* ---- what stays after the load ---- */

static void keep_origin(struct loader *L, struct where *w, struct origin o)
{
    w->line = o.line;
    if (o.env && !(w->env = strndup(o.env, (size_t)o.envlen)))
        oom(L);
}

/* Keeps every value's origin in the configuration, for config_refuse. */
static void keep_where(struct loader *L)
{
    struct config *c = L->cfg;
    struct config_where *w = calloc(1, sizeof(*w));

    if (w && c->ntables && !(w->table = calloc(c->ntables, sizeof(*w->table)))) {
        free(w);
        w = NULL;
    }
    if (!w) {
        oom(L);
        return;
    }
    c->where = w;
    for (size_t i = 0; i < NGLOBAL; i++)
        keep_origin(L, &w->global[i], L->orig[i]);
    for (size_t t = 0; t < c->ntables; t++)
        for (size_t i = 0; i < NTABLE; i++)
            keep_origin(L, &w->table[t][i], L->tinfo[t].orig[i]);
}

static void where_free(struct config *cfg)
{
    struct config_where *w = cfg->where;

    if (!w)
        return;
    for (size_t i = 0; i < NGLOBAL; i++)
        free(w->global[i].env);
    for (size_t t = 0; w->table && t < cfg->ntables; t++)
        for (size_t i = 0; i < NTABLE; i++)
            free(w->table[t][i].env);
    free(w->table);
    free(w);
    cfg->where = NULL;
}

/* ---- public ---- */

int config_load_env(const char *path, const char *const *envp, struct config *out, char *err,
                    size_t errlen)
{
    struct loader L = { .cfg = out, .path = path, .err = err, .errlen = errlen,
                        .sec = SEC_NONE };

    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';
    apply_defaults(&L, global_opts, NGLOBAL, out);
    if (path && !L.rc && !(out->path = strdup(path)))
        oom(&L);
    if (path && !L.rc)
        load_file(&L);
    if (!L.rc)
        load_env(&L, envp);
    if (!L.rc)
        finish(&L);
    if (!L.rc)
        keep_where(&L);
    if (L.f)
        fclose(L.f);
    free(L.raw);
    free(L.tinfo);
    if (L.rc)
        config_free(out);
    return L.rc;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
    return config_load_env(path, (const char *const *)environ, out, err, errlen);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    where_free(cfg);
    secret_free(&cfg->sink.password);
    secret_free(&cfg->sink.api_key);
    for (size_t i = 0; i < NGLOBAL; i++)
        opt_clear(&global_opts[i], cfg);
    for (size_t t = 0; t < cfg->ntables; t++) {
        for (size_t i = 0; i < NTABLE; i++)
            opt_clear(&table_opts[i], &cfg->tables[t]);
        free(cfg->tables[t].name);
        secret_free(&cfg->tables[t].hmac_key);
    }
    free(cfg->tables);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

size_t config_table_count(const struct config *cfg)
{
    return cfg->ntables;
}

const struct config_table *config_table_at(const struct config *cfg, size_t i)
{
    return i < cfg->ntables ? &cfg->tables[i] : NULL;
}

const struct config_table *config_table_find(const struct config *cfg, const char *name)
{
    ssize_t i = table_lookup(cfg, name);
    return i >= 0 ? &cfg->tables[i] : NULL;
}

static void dump_value(const struct option *o, const void *base, FILE *f)
{
    const void *field = (const char *)base + o->off;
    char buf[64];

    fprintf(f, "%s =", o->key);
    switch (o->type) {
    case T_STRING:
        if (*(char *const *)field)
            fprintf(f, " %s", *(char *const *)field);
        break;
    case T_LIST: {
        const struct config_list *l = field;
        for (size_t i = 0; i < l->count; i++)
            fprintf(f, "%s%s", i ? "," : " ", l->items[i]);
        break;
    }
    case T_BOOL:
        fprintf(f, " %s", *(const bool *)field ? "true" : "false");
        break;
    case T_ENUM:
        fprintf(f, " %s", o->names[*(const int *)field]);
        break;
    case T_CHAR:
        fprintf(f, " %c", *(const char *)field);
        break;
    case T_INT:
        fprintf(f, " %d", *(const int *)field);
        break;
    case T_SIZE:
        fmt_size(*(const size_t *)field, buf, sizeof(buf));
        fprintf(f, " %s", buf);
        break;
    case T_DURATION:
        fmt_duration(*(const int64_t *)field, buf, sizeof(buf));
        fprintf(f, " %s", buf);
        break;
    }
    fputc('\n', f);
}

void config_dump(const struct config *cfg, FILE *f)
{
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s[%s]\n", s ? "\n" : "", global_sections[s]);
        for (size_t i = 0; i < NGLOBAL; i++)
            if (strcmp(global_opts[i].section, global_sections[s]) == 0)
                dump_value(&global_opts[i], cfg, f);
    }
    for (size_t t = 0; t < cfg->ntables; t++) {
        fprintf(f, "\n[table %s]\n", cfg->tables[t].name);
        for (size_t i = 0; i < NTABLE; i++)
            dump_value(&table_opts[i], &cfg->tables[t], f);
    }
}

static void describe(const struct option *o, FILE *f)
{
    char lo[32], hi[32];

    fprintf(f, "# %s: %s", o->key, type_name[o->type]);
    if (o->type == T_ENUM) {
        for (int i = 0; o->names[i]; i++)
            fprintf(f, "%s%s", i ? "|" : " ", o->names[i]);
    }
    if (o->type == T_INT || o->type == T_SIZE || o->type == T_DURATION) {
        fmt_bound(o, o->min, lo, sizeof(lo));
        fmt_bound(o, o->max, hi, sizeof(hi));
        fprintf(f, " %s..%s", lo, hi);
    }
    if (o->def)
        fprintf(f, ", default %s", o->def);
    fprintf(f, "\n#   %s\n", o->help);
}

void config_describe(FILE *f)
{
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s# [%s]\n", s ? "#\n" : "", global_sections[s]);
        for (size_t i = 0; i < NGLOBAL; i++)
            if (strcmp(global_opts[i].section, global_sections[s]) == 0)
                describe(&global_opts[i], f);
    }
    fprintf(f, "#\n# [table NAME]\n");
    for (size_t i = 0; i < NTABLE; i++)
        describe(&table_opts[i], f);
}

int config_refuse(const struct config *cfg, const struct config_table *t, const char *section,
                  const char *key, char *err, size_t errlen, const char *fmt, ...)
{
    const struct option *o = t ? find_opt(table_opts, NTABLE, "table", key)
                               : find_opt(global_opts, NGLOBAL, section, key);
    const struct where *w = NULL;
    struct origin at = { 0 };
    char lab[300];
    va_list ap;

    assert(o);
    assert(!t || (t >= cfg->tables && t < cfg->tables + cfg->ntables));
    if (t) {
        snprintf(lab, sizeof(lab), "table %s", t->name);
        section = lab;
    }
    if (o && cfg->where)
        w = t ? &cfg->where->table[t - cfg->tables][o - table_opts]
              : &cfg->where->global[o - global_opts];
    if (w)
        at = (struct origin){ .line = w->line, .env = w->env,
                              .envlen = w->env ? (int)strlen(w->env) : 0 };
    va_start(ap, fmt);
    vformat(err, errlen, cfg->path, at, section, key, fmt, ap);
    va_end(ap);
    return CONFIG_EX_CONFIG;
}

int config_read_secret(const char *path, char **out, char *err, size_t errlen)
{
    const char *dir = getenv("CREDENTIALS_DIRECTORY");
    char *full = NULL, *data = NULL, where[PATH_MAX + 100] = "", cwd[PATH_MAX];
    size_t len = 0;
    int fd = -1, rc = 0;
    struct stat st;

    *out = NULL;
    if (!path || !*path) {
        snprintf(err, errlen, "no path given");
        return -EINVAL;
    }
    /* Say where a relative path was looked for: the reader of the message
     * does not know the service's directory or its credentials. */
    if (!strchr(path, '/') && dir && *dir) {
        if (asprintf(&full, "%s/%s", dir, path) < 0) {
            full = NULL;
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        snprintf(where, sizeof(where), " ($CREDENTIALS_DIRECTORY/%s)", path);
        path = full;
    } else if (path[0] != '/') {
        snprintf(where, sizeof(where), " (relative to the working directory %s%s)",
                 getcwd(cwd, sizeof(cwd)) ? cwd : "?",
                 strchr(path, '/') ? "" : "; $CREDENTIALS_DIRECTORY is not set");
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (!(data = malloc(SECRET_MAX + 1))) {
        rc = -ENOMEM;
    } else {
        for (;;) {
            ssize_t n = read(fd, data + len, SECRET_MAX + 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = -errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
            if (len > SECRET_MAX) {
                rc = -EFBIG;
                break;
            }
        }
    }
    if (rc == -EFBIG) {
        snprintf(err, errlen, "\"%s\"%s is larger than 64 KiB", path, where);
        goto out;
    }
    if (rc) {
        snprintf(err, errlen, "cannot read \"%s\"%s: %s", path, where, strerror(-rc));
        goto out;
    }
    if (len && data[len - 1] == '\n')
        len--;
    if (len && data[len - 1] == '\r')
        len--;
    data[len] = '\0';
    if (len == 0 || memchr(data, '\0', len)) {
        rc = -EINVAL;
        snprintf(err, errlen, "\"%s\"%s %s", path, where, len ? "holds a NUL byte" : "is empty");
        goto out;
    }
    *out = data;
    data = NULL;
out:
    if (data) {
        explicit_bzero(data, SECRET_MAX + 1);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    free(full);
    return rc;
}

/* Reads the secret named by key into *out (replacing what was there). */
static int read_secret_of(struct config *cfg, const struct config_table *t, const char *section,
                          const char *key, const char *path, char **out, char *err,
                          size_t errlen)
{
    char why[PATH_MAX + 400];
    int rc;

    secret_free(out);
    *out = NULL;
    rc = config_read_secret(path, out, why, sizeof(why));
    if (rc == -ENOMEM) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_EX_OSERR;
    }
    return rc < 0 ? config_refuse(cfg, t, section, key, err, errlen, "%s", why) : 0;
}

int config_read_secrets(struct config *cfg, const char *only_table, char *err, size_t errlen)
{
    int rc = 0;

    if (cfg->sink.auth == CONFIG_AUTH_BASIC)
        rc = read_secret_of(cfg, NULL, "sink", "password_file", cfg->sink.password_file,
                            &cfg->sink.password, err, errlen);
    if (rc == 0 && cfg->sink.auth == CONFIG_AUTH_APIKEY)
        rc = read_secret_of(cfg, NULL, "sink", "api_key_file", cfg->sink.api_key_file,
                            &cfg->sink.api_key, err, errlen);
    for (size_t i = 0; rc == 0 && i < cfg->ntables; i++) {
        struct config_table *t = &cfg->tables[i];

        if (t->hmac.count && (!only_table || strcmp(only_table, t->name) == 0))
            rc = read_secret_of(cfg, t, NULL, "hmac_key_file", t->hmac_key_file, &t->hmac_key,
                                err, errlen);
    }
    return rc;
}

/* ---- transport security ---- */

bool config_sink_region(const char *url, char *out, size_t len)
{
    static const char *const suffixes[] = { ".es.amazonaws.com", ".aoss.amazonaws.com",
                                            ".es.amazonaws.com.cn", ".aoss.amazonaws.com.cn" };
    char host[256];
    bool https;

    if (url_host(url, host, sizeof(host), &https) < 0)
        return false;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t h = strlen(host), n = strlen(suffixes[i]);
        const char *dot;

        if (h <= n || strcasecmp(host + h - n, suffixes[i]) != 0)
            continue;
        host[h - n] = '\0';
        dot = strrchr(host, '.');
        if (!dot || !dot[1] || strlen(dot + 1) >= len)
            return false;
        snprintf(out, len, "%s", dot + 1);
        return true;
    }
    return false;
}

/* [sink] ca_file as curl will load it: its OpenSSL backend hands the file to
 * X509_load_cert_crl_file, which reads it with PEM_X509_INFO_read_bio and
 * fails on a block it cannot parse or when nothing is found. */
static int check_ca_file(const struct config *cfg, char *err, size_t errlen)
{
    const char *path = cfg->sink.ca_file;
    STACK_OF(X509_INFO) *infos = NULL;
    struct stat st;
    FILE *f = NULL;
    BIO *bio = NULL;
    int certs = 0;

    if (stat(path, &st) != 0 || (S_ISREG(st.st_mode) && !(f = fopen(path, "re"))))
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen, "cannot read \"%s\": %s",
                             path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "cannot read \"%s\": not a regular file", path);
    if ((bio = BIO_new_fp(f, BIO_NOCLOSE)))
        infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (int i = 0; i < sk_X509_INFO_num(infos); i++)
        certs += sk_X509_INFO_value(infos, i)->x509 != NULL;
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    fclose(f);
    ERR_clear_error();
    if (!bio) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_EX_OSERR;
    }
    if (!infos)
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "\"%s\" holds a PEM block that cannot be parsed", path);
    if (certs == 0)
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "\"%s\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                             path);
    return 0;
}

int config_check_transport(const struct config *cfg, char *err, size_t errlen)
{
    char host[256], region[64];
    bool https;
    int rc;

    if (cfg->sink.auth != CONFIG_AUTH_NONE && cfg->sink.url &&
        !url_safe_for_secrets(cfg->sink.url)) {
        if (url_host(cfg->sink.url, host, sizeof(host), &https) < 0)
            snprintf(host, sizeof(host), "?");
        return config_refuse(cfg, NULL, "sink", "url", err, errlen,
                             "auth = %s would send credentials unencrypted to %s over http://; "
                             "use https:// (plain http is allowed to loopback hosts only)",
                             auth_names[cfg->sink.auth], host);
    }
    if (cfg->aws.endpoint && !url_safe_for_secrets(cfg->aws.endpoint)) {
        if (url_host(cfg->aws.endpoint, host, sizeof(host), &https) < 0)
            snprintf(host, sizeof(host), "?");
        return config_refuse(cfg, NULL, "aws", "endpoint", err, errlen,
                             "signed AWS requests would go unencrypted to %s over http://; "
                             "use https:// (plain http is allowed to loopback hosts only)",
                             host);
    }
    if (cfg->sink.ca_file && (rc = check_ca_file(cfg, err, errlen)) != 0)
        return rc;
    if (cfg->aws.allowed_regions.count && cfg->sink.url &&
        config_sink_region(cfg->sink.url, region, sizeof(region)) &&
        !config_list_has(&cfg->aws.allowed_regions, region))
        return config_refuse(cfg, NULL, "sink", "url", err, errlen,
                             "the domain's region \"%s\" is not in [aws] allowed_regions",
                             region);
    return 0;
}
