/* target — what the search engine behind [sink] url is, and whether each
 * configured index can mirror a DynamoDB table there (README "The target
 * probe").
 *
 * target_probe() asks, through the sink's auth (sink_call), in this order:
 *   1. GET /: the flavour and the version.  Not on OpenSearch Serverless
 *      (SigV4 service aoss), which has no GET /.
 *   2. per index name, GET /_resolve/index/<name>: an index, an alias (then
 *      GET /_alias/<name> for its write index), a data stream, or nothing;
 *   3. nothing there, with create and a template: PUT /<name> with it;
 *   4. with canary, when the index exists, was just made, or create is set
 *      (the canary's write then makes it, as the first bulk would): one bulk
 *      request that indexes the canary document TARGET_CANARY_ID at version
 *      V+2, indexes it again at V+1, which the engine must refuse (409),
 *      and deletes it at V+3.  V counts microseconds since 1970 and never
 *      repeats in a process, so probes that overlap (a check beside a
 *      running daemon) do not fail each other.
 * A target cannot mirror a table when an index name is a data stream or an
 * alias without a write index, when the engine refuses client document ids
 * (OpenSearch Serverless time series and vector search collections),
 * ignores or refuses external versions, or refuses to create the index from
 * its template.
 *
 * The parsers are pure (no loop, no I/O) for the tests.
 */
#ifndef DDB2ES_TARGET_H
#define DDB2ES_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink;

/* The canary's _id.  No item has it: in a key text a backslash is only ever
 * followed by the separator (punctuation) or another backslash, and hashed
 * ids start with \h or \H (README "Documents", _id). */
#define TARGET_CANARY_ID "\\ddb2es-probe"

enum target_flavour {
    TF_UNKNOWN,            /* GET / did not say (or was not asked) */
    TF_ELASTICSEARCH,
    TF_OPENSEARCH,
    TF_ELASTIC_SERVERLESS, /* Elastic Cloud Serverless: build_flavor "serverless" */
    TF_AOSS,               /* Amazon OpenSearch Serverless: the SigV4 service aoss */
};

struct target_root {
    enum target_flavour flavour;
    char version[32];      /* version.number, "" when unknown */
    long status;           /* GET /'s HTTP status; 0 when not asked */
    bool source_param;     /* knows include_source_on_error (Elasticsearch 8.18+, serverless) */
};

enum target_kind {
    TK_UNKNOWN,            /* not asked, or the engine could not say */
    TK_ABSENT,
    TK_INDEX,
    TK_ALIAS,
    TK_DATA_STREAM,
};

enum target_verdict {
    TARGET_OK,
    TARGET_UNREACHABLE,    /* no answer, 408, 429, 5xx: ask again later (69 for check) */
    TARGET_DENIED,         /* 401 or 403 (77) */
    TARGET_CANNOT_MIRROR,  /* why says why and what to do (78) */
};

enum target_versions {
    TV_UNTESTED,           /* no canary: [sink] probe = false, or the index is missing */
    TV_OK,                 /* the older write was refused with 409 */
    TV_NO_ID,              /* client ids refused */
    TV_IGNORED,            /* the older write was accepted */
    TV_REFUSED,            /* an external version was refused */
};

/* One configured index name (several tables may share it). */
struct target_index {
    char *name, *table;        /* the first table naming it */
    char *template_path;       /* [table] index_template, or NULL */
    char *template_body;       /* its content, or NULL */
    enum target_kind kind;
    char write_index[256];     /* TK_ALIAS: its write index */
    bool created;              /* made from the template by this probe */
    enum target_versions versions;
    uint64_t canary_version;   /* V+2 of the canary, when one was written */
    bool canary_left;          /* its delete failed: the canary may still be there */
    enum target_verdict verdict;
    char why[700];             /* the verdict's reason (not OK), or a note */
};

struct target {
    struct target_root root;
    struct target_index *ix;
    size_t nix;
    enum target_verdict verdict; /* the worst of the indexes' and GET /'s */
    char why[600];               /* GET /'s failure, when it failed */
};

/* Adds an index name (once: a name already there is kept with its first
 * table).  Strings are copied.  0 or -ENOMEM. */
int target_add_index(struct target *t, const char *name, const char *table,
                     const char *template_path, const char *template_body);
/* Forgets what a probe found, keeping the names. */
void target_reset(struct target *t);
void target_free(struct target *t);

struct target_probe_opts {
    bool aoss;             /* the SigV4 service is aoss: no GET / */
    bool canary;           /* [sink] probe */
    bool create;           /* `run`: make a missing index (template, or the canary's write) */
};

/* Probes the engine behind s into t (target_reset first); done(t, arg)
 * runs once when it is over, possibly inside this call (a closing sink
 * sends nothing: TARGET_UNREACHABLE).  t and arg must live until then.
 * 0, or -ENOMEM (done is not called). */
int target_probe(struct sink *s, struct target *t, const struct target_probe_opts *o,
                 void (*done)(struct target *t, void *arg), void *arg);

/* ---- pure parts ---- */

/* GET /'s reply (status 0: not asked) into *out. */
void target_parse_root(long status, const char *body, size_t len, struct target_root *out);
/* What GET /_resolve/index/<name> says name is (a 404 is TK_ABSENT). */
enum target_kind target_parse_resolve(const char *name, long status, const char *body,
                                      size_t len);
/* GET /_alias/<name>'s reply: the write index into out (0), -ENOENT when
 * there is none (*nindexes: how many indices the alias has), -EPROTO when
 * unreadable. */
int target_parse_alias(const char *name, const char *body, size_t len, char *out, size_t cap,
                       size_t *nindexes);

/* The canary's bulk body for index at version v (v+2, v+1, then delete at
 * v+3); malloc'd, NULL when out of memory. */
char *target_canary_body(const char *index, uint64_t v, size_t *len);

enum target_canary {
    CANARY_OK,             /* the older write got 409 */
    CANARY_NO_ID,
    CANARY_DATA_STREAM,
    CANARY_IGNORED,
    CANARY_REFUSED,        /* why holds the engine's reason */
    CANARY_RETRY,          /* 408, 429, 5xx: not an answer about versions */
    CANARY_DENIED,
};
/* The bulk reply to the canary; *left is set when its delete did not finish. */
enum target_canary target_parse_canary(long status, const char *body, size_t len, bool *left,
                                       char *why, size_t cap);

/* A template's text: a JSON object of "settings", "mappings" and
 * "aliases", each an object.  0, or -EINVAL with the reason in why. */
int target_template_check(const char *text, size_t len, char *why, size_t cap);

/* "OpenSearch 2.11.0", "Elasticsearch 8.18.0", "Elastic Cloud Serverless",
 * "OpenSearch Serverless", "an engine that does not say what it is". */
const char *target_flavour_name(const struct target_root *r, char *buf, size_t cap);

#endif
