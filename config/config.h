/* config — the INI configuration file and its environment overrides.
 *
 * One table describes every key (section, type, default, bounds, help); the
 * file is read with libinih, then every `DDB2ES_<SECTION>_<KEY>` variable
 * overrides it, then cross-key rules are checked.  The result is a plain
 * struct with typed fields: durations in milliseconds, sizes in bytes,
 * unset strings NULL.  No logging and no uv/curl; the only I/O is reading the
 * file (and, on request, the secret files and the CA file).  Where each value
 * was set is kept, so that a value refused later (an unreadable secret file)
 * is reported like an error of the file (config_refuse).
 *
 * File syntax: `[daemon]`, `[aws]`, `[sink]` and one `[table NAME]` per
 * DynamoDB table; `key = value` lines.  A line whose first non-blank
 * character is `#` or `;` is a comment, and so is everything from a `#` or
 * `;` that follows a space or tab: a value can therefore not contain " #" or
 * " ;" (set such a value from the environment).  Leading and trailing blanks
 * are dropped; values have no quoting and no continuation lines.  An empty
 * string or list value means "none"; an empty value for any other type is an
 * error.  A key or a section given twice is an error.
 *
 * Environment: `DDB2ES_<SECTION>_<KEY>` (e.g. DDB2ES_SINK_URL) wins over the
 * file.  `DDB2ES_TABLES=posts,users:users-v2` declares tables (NAME or
 * NAME:INDEX, comma separated) in addition to those of the file; for a table
 * that is also in the file, a given INDEX wins over the file's.  Per-table
 * keys are `DDB2ES_TABLE_<NAME>_<KEY>` where NAME is the table name upper
 * cased with every character other than A-Z and 0-9 (i.e. `.` and `-`)
 * written as `_`: table `my-table.v2` → DDB2ES_TABLE_MY_TABLE_V2_INDEX.  If
 * two tables map to the same NAME, such a variable is an error.  An empty
 * variable means the same as an empty value in the file.  Other DDB2ES_*
 * variables (DDB2ES_CONFIG, ...) are not configuration keys and are ignored.
 */
#ifndef DDB2ES_CONFIG_H
#define DDB2ES_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/log.h"

#define CONFIG_EX_CONFIG 78 /* sysexits EX_CONFIG: every configuration error */
#define CONFIG_EX_OSERR 71  /* sysexits EX_OSERR: out of memory while loading */

enum config_auth { CONFIG_AUTH_SIGV4, CONFIG_AUTH_BASIC, CONFIG_AUTH_APIKEY, CONFIG_AUTH_NONE };
enum config_compression { CONFIG_COMP_NONE, CONFIG_COMP_GZIP };
enum config_start { CONFIG_START_TRIM_HORIZON, CONFIG_START_LATEST };
enum config_ttl { CONFIG_TTL_DELETE, CONFIG_TTL_KEEP };
enum config_encrypted { CONFIG_ENCRYPTED_PLAINTEXT, CONFIG_ENCRYPTED_AS_IS };
enum config_type_conflicts { CONFIG_CONFLICTS_SIDE, CONFIG_CONFLICTS_DLQ };

/* A comma list, items trimmed and never empty; count 0 = not set. */
struct config_list {
    size_t count;
    char **items;
};

struct config_table {
    char *name;                  /* DynamoDB table name, as written */
    char *index;                 /* default: name lowercased */
    enum config_start start;     /* where to begin when no checkpoint exists */
    char id_separator;           /* joins key values into _id; default '|' */
    enum config_ttl on_ttl_delete;
    struct config_list include;  /* only these attributes (never with exclude) */
    struct config_list exclude;  /* never these attributes */
    struct config_list hmac;     /* attributes replaced by HMAC-SHA256 hex */
    char *hmac_key_file;         /* required when hmac is set; see config_read_secret */
    char *hmac_key;              /* its content once config_read_secrets ran; never printed */
    enum config_encrypted encrypted_items; /* client-side encrypted items: plaintext only */
    char *index_template;        /* JSON file the index is created from when it is missing */
    char *index_template_body;   /* its content once clients_preflight read it */
    enum config_type_conflicts type_conflicts; /* a mapping conflict: side object or DLQ */
    char *conflicts_field;       /* the side object's name (indexer/conflicts.h) */
};

struct config_where;

struct config {
    char *path; /* the file loaded, NULL when configured from the environment only */
    struct {
        char *state_dir;
        enum log_level log_level;
        enum log_format log_format;
        char *metrics_listen;           /* HOST:PORT; NULL = no metrics endpoint */
        int64_t shutdown_timeout_ms;
        int64_t checkpoint_interval_ms; /* debounce of checkpoint writes */
        size_t max_queue_bytes;         /* memory cap between readers and the sink */
        int64_t idle_poll_interval_ms;  /* longest wait between reads of an idle shard */
        int read_concurrency;           /* GetRecords in flight over all shards */
        int shard_read_ahead;           /* records read past a shard's checkpoint, at most */
        int64_t shard_list_interval_ms; /* DescribeStream again */
        int64_t stream_check_interval_ms; /* DescribeTable again (new stream ARN) */
        int64_t stream_settle_ms;       /* a disabled stream listed complete this long is */
    } daemon;
    struct {
        char *region;   /* NULL: AWS_REGION / AWS_DEFAULT_REGION / profile / IMDS */
        char *profile;  /* NULL: AWS_PROFILE / default */
        char *endpoint; /* DynamoDB and Streams endpoint override, http(s) URL */
        struct config_list allowed_regions;
        bool use_fips_endpoint;
        bool use_dualstack_endpoint;
    } aws;
    struct {
        char *url;              /* http:// or https://, always set after a load */
        enum config_auth auth;
        char *sigv4_service;    /* "es" or "aoss" (default: aoss for *.aoss.amazonaws.com) */
        char *username;
        char *password_file;    /* secrets are file paths, see config_read_secret */
        char *api_key_file;
        char *password;         /* the files' contents once config_read_secrets ran */
        char *api_key;
        char *ca_file;
        bool tls_verify;
        int bulk_max_actions;
        size_t bulk_max_bytes;
        int64_t flush_interval_ms;
        int concurrency;
        enum config_compression compression;
        char *dlq_path;         /* default: STATE_DIR/dlq.ndjson, always set after a load */
        int64_t request_timeout_ms;
        int64_t max_retry_backoff_ms;
        int64_t tombstone_ttl_ms;
        int tombstone_max;
        bool probe;             /* the canary document of the target probe */
    } sink;
    struct {
        bool enabled;            /* a [leases] section or a DDB2ES_LEASES_* variable: several
                                  * processes share the shards (daemon/lease.h) */
        char *table;             /* the DynamoDB lease table; set when enabled */
        bool create_table;       /* create it (PAY_PER_REQUEST) when missing */
        char *worker_id;         /* unique among running workers; default hostname:pid */
        int64_t lease_duration_ms; /* a lease not renewed for this long may be taken */
    } leases;
    struct config_table *tables; /* in the order declared: file, then DDB2ES_TABLES */
    size_t ntables;
    struct config_where *where;  /* where each value was set, for config_refuse */
};

/* Loads `path` (NULL: no file) then the environment `envp` (NULL-terminated
 * "NAME=VALUE" strings, e.g. `environ`; NULL: none) into *out, applies the
 * defaults and checks everything.  Returns 0, CONFIG_EX_CONFIG (78) with one
 * line in err such as
 *   ddb2es.conf:12: [sink] bulk_max_bytes: must be 1k..100m, got "10"
 *   DDB2ES_SINK_CONCURRENCY: must be 1..64, got "0"
 * or CONFIG_EX_OSERR when out of memory.  On failure *out is left empty;
 * config_free() is harmless either way. */
int config_load_env(const char *path, const char *const *envp, struct config *out, char *err,
                    size_t errlen);
/* config_load_env() with the process environment. */
int config_load(const char *path, struct config *out, char *err, size_t errlen);
/* Frees everything *cfg owns (wiping the secrets) and zeroes it.  NULL is a
 * no-op. */
void config_free(struct config *cfg);

size_t config_table_count(const struct config *cfg);
const struct config_table *config_table_at(const struct config *cfg, size_t i); /* NULL past end */
const struct config_table *config_table_find(const struct config *cfg, const char *name);
bool config_list_has(const struct config_list *l, const char *item);

/* Prints the effective configuration as a loadable INI file (secrets appear
 * only as the paths they are read from).  A value that holds " #" or " ;"
 * (possible only from the environment) does not read back the same. */
void config_dump(const struct config *cfg, FILE *f);
/* Prints every key with its type, default, bounds and help, as comments. */
void config_describe(FILE *f);

/* A refusal of the value of one key, in the shape of the loader's errors:
 *   ddb2es.conf:12: [sink] password_file: cannot read "/etc/ddb2es/pw": ...
 *   DDB2ES_SINK_PASSWORD_FILE: cannot read "/etc/ddb2es/pw": ...
 *   ddb2es.conf: [aws] region: ...        (a default, or a key not set)
 * i.e. where the value was set (the file and line, or the environment
 * variable), then, for a file, the section and key; fmt gives the reason.
 * section is "daemon", "aws", "sink" or "leases"; for a key of a [table] section it
 * is ignored and t names the table (t is an element of cfg->tables).
 * Writes one line into err and returns CONFIG_EX_CONFIG. */
int config_refuse(const struct config *cfg, const struct config_table *t, const char *section,
                  const char *key, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Reads a secret file into *out (NUL-terminated, one trailing "\n" or "\r\n"
 * stripped; free with free()).  A bare name (no '/') is looked up in
 * $CREDENTIALS_DIRECTORY (systemd LoadCredential=) when that is set; other
 * paths are used as given.  Returns 0, -errno from open/read, -EFBIG past
 * 64 KiB or -EINVAL for an empty secret or one holding a NUL byte; err then
 * says why, naming the path it opened and where it looked for a relative
 * one (never the content), e.g.
 *   cannot read "/run/credentials/x/pw" ($CREDENTIALS_DIRECTORY/pw): No such file or directory */
int config_read_secret(const char *path, char **out, char *err, size_t errlen);

/* Reads the secret files the configuration uses, as config_read_secret
 * does: password_file with auth = basic, api_key_file with auth = apikey,
 * and hmac_key_file of each table that sets hmac (of the table named
 * only_table alone when that is not NULL) into cfg->sink.password,
 * cfg->sink.api_key and the tables' hmac_key; config_free wipes them.
 * Returns 0, CONFIG_EX_CONFIG with one line in err from config_refuse
 * naming the key, or CONFIG_EX_OSERR. */
int config_read_secrets(struct config *cfg, const char *only_table, char *err, size_t errlen);

/* Transport security, checked before the daemon starts (AWS-AUTH; README
 * "Credentials"): credentials of any kind never travel over plain http://
 * to a host that is not loopback ([sink] url unless auth = none, [aws]
 * endpoint always); [sink] ca_file is a readable regular file holding PEM
 * certificates (read with OpenSSL's parser, the one curl loads it with);
 * the sink's region, read from a *.REGION.es.amazonaws.com or
 * *.REGION.aoss.amazonaws.com host, is in [aws] allowed_regions when that
 * is set.  Reads ca_file, nothing else.  Returns 0, or CONFIG_EX_CONFIG
 * with one line in err from config_refuse, e.g.
 *   ddb2es.conf:7: [sink] url: auth = basic would send credentials ... */
int config_check_transport(const struct config *cfg, char *err, size_t errlen);
/* The region of an Amazon OpenSearch host name (search-x.eu-west-1.es.amazonaws.com,
 * x.us-east-1.aoss.amazonaws.com) in url, into out[len]; false when the
 * host has neither form. */
bool config_sink_region(const char *url, char *out, size_t len);

/* Value parsers shared with the command line.  Return 0, -EINVAL for text
 * that is not a value of the type, -ERANGE on overflow. */
int config_parse_size(const char *s, uint64_t *bytes);   /* 123, 512k, 5m, 1g (1024-based) */
int config_parse_duration(const char *s, int64_t *ms);   /* 250ms, 5s, 2m, 1h; plain = seconds */
int config_parse_bool(const char *s, bool *out);         /* true/false yes/no on/off 1/0 */

#endif
