/* searchd — an Elasticsearch/OpenSearch double for integration tests and
 * benchmarks.  One thread, one libuv loop, its own small HTTP/1.1 parser
 * (keep-alive, Content-Length and chunked bodies, Expect: 100-continue).
 *
 * It answers the Bulk API the way a real node does (versions, tombstones,
 * per-item errors, filter_path, gzip, size cap), a few read endpoints, four
 * kinds of authentication, and a control API under /_double/ (never behind
 * auth) for fault injection and inspection.  `searchd --help` lists options.
 *
 * Bulk semantics, as in ES 7+/OpenSearch 2 (one shard, no replicas):
 * - Request-level 400s: a body not ending in '\n'; a malformed or unknown
 *   action line; a version outside the long range; and BulkRequest.validate()
 *   failures, all reported together as action_request_validation_exception
 *   ("Validation Failed: 1: ...;"): update with a non-internal version type,
 *   create with one, a negative external version (unset prints as [-3], like
 *   ES), an explicit version with internal versioning, a missing index or id.
 * - Item-level: 409 version_conflict_engine_exception with ES's reason texts;
 *   delete of a missing doc is 404 result "not_found" and not an error; its
 *   version (and every delete's) is kept as a tombstone for gc_deletes;
 *   400 for a document the engine refuses: its JSON as Jackson reads it,
 *   field names (metadata fields, empty names and dotted parts), values
 *   against the index's mapping, with the texts of --flavor os2
 *   (OpenSearch 2, the default) or es8 (Elasticsearch 8);
 *   tests/tools/ENGINE-RULES.md has the rules and their sources.  Also the
 *   poison field and the index's mapping limits (index.mapping.depth.limit,
 *   index.mapping.total_fields.limit: os2 counts the document's objects and
 *   arrays as it parses them and checks the mapping its new fields make,
 *   es8 checks each new field as it comes).  The source is parsed before
 *   versions are compared, as in the shard; a keyword value over Lucene's
 *   32766-byte term limit fails after them.
 * - The mapping: PUT /<index> with {"mappings": ...} sets explicit fields
 *   (object, text, keyword, long, integer, short, byte, double, float,
 *   boolean, date; multi-fields; ignore_malformed, ignore_above, enabled),
 *   "dynamic" (true, false, strict; per object, inherited),
 *   "dynamic_templates", date_detection and numeric_detection, and refuses
 *   bad bodies as the engines do ("Failed to parse mapping ...").  A valid
 *   mapping the double does not model (other types, copy_to, date formats,
 *   runtime fields, ...) is refused with search_double_unsupported_exception.
 *   Fields new in accepted documents join it (dynamic templates first, then
 *   the engine's defaults); GET /<index>/_mapping shows it; it goes with the
 *   index.  Of the settings (at creation, PUT /<index>/_settings, shown by
 *   GET /<index>/_settings) the mapping limits are read; aliases are not
 *   modelled.
 * - A body needs Content-Type application/json or application/x-ndjson
 *   (charset and vnd.elasticsearch+ variants too), else 406 as in ES.
 * - filter_path (comma-separated, '*' and '**'; no '-' exclusions) applies
 *   to bulk and single-document write replies; objects and array entries
 *   left empty disappear, as in ES.
 *
 * Other decisions:
 * - The body cap (--max-body, like http.max_content_length) is checked on the
 *   bytes received and again on the decompressed body: a self-managed node
 *   decompresses before it aggregates, a managed front end counts the wire.
 *   Passing both checks passes either.  The 413 uses the ES error shape.
 * - ApiKey auth accepts `Authorization: ApiKey <base64(id:key)>`; --api-key
 *   takes either that encoded form or the raw "id:key".
 * - SigV4: the signature is recomputed over exactly the signed headers with
 *   the received X-Amz-Date; the payload hash is over the body as received
 *   (compressed, de-chunked).  403 bodies use AWS's {"message": ...} texts.
 * - Documents are kept as raw source text, never re-encoded, so numbers of
 *   any size survive.  --discard keeps versions (for correct 409s) but no
 *   sources.
 * - Fault rules (POST /_double/faults, a rule or a list) are queued; each
 *   non-control request that passed auth takes one use of the first rule
 *   whose "match" (any|bulk|search|doc|count, default any) fits it.  A rule
 *   has "count" (default 1, -1 = forever) and one of: "status" (whole-request
 *   error in ES's shape, optional "body"), "item_status" for the bulk items
 *   chosen by "items" (all|odd|even|N first; zero-based odd positions)
 *   and/or "ids" (a list of _id: only items with one of them; with "items"
 *   both must hold), the other items being executed normally (item_status
 *   403 is a write block: cluster_block_exception "index [i] blocked by:
 *   [FORBIDDEN/8/index write (api)];"), "action" (reset: half the reply then
 *   RST; drop: close without reply), or just "delay_ms" (which also delays a
 *   status, item_status or reset reply).  A rule with "ids" is used up by
 *   the request that takes it whether or not that holds one of its ids:
 *   give it "match": "bulk" and a count.  {"down_ms": N} takes effect at
 *   once: every connection is closed and new ones are reset for N ms.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "aws/sigv4.h"
#include "base/log.h"

#define HEAD_MAX (64 * 1024)
#define MAX_HDRS 100
#define READ_CHUNK (64 * 1024)
#define MAX_PATHS 32
#define FSTATES_MAX 64
#define PREVIEW_MAX 40
#define VERSION_UNSET (-3) /* ES's Versions.MATCH_ANY, printed in its messages */

/* ------------------------------------------------------------------------ */
/* Settings (changeable at runtime through /_double/config)                 */

enum auth_mode { AUTH_NONE, AUTH_BASIC, AUTH_APIKEY, AUTH_SIGV4 };

/* Whose rules and error texts: OpenSearch 2.x (the default) or Elasticsearch 8.x. */
enum flavor { FL_OS2, FL_ES8 };

struct settings {
    enum auth_mode auth;
    char *user, *password, *api_key;
    char *access_key, *secret_key, *session_token, *region, *service;
    char *poison_field;
    size_t max_body;
    uint64_t gc_deletes_ms;
    int depth_limit;
    enum flavor flavor;
    bool discard;
};

/* ------------------------------------------------------------------------ */
/* A string-keyed hash map (open addressing, linear probing).               */

struct slot {
    char *key;
    size_t klen;
    uint64_t hash;
    void *val;
};

struct map {
    struct slot *slots;
    size_t cap, len;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static struct slot *map_slot(const struct map *m, const char *key, size_t klen, uint64_t h)
{
    size_t i = h & (m->cap - 1);

    for (;;) {
        struct slot *s = &m->slots[i];
        if (!s->key || (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0))
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static void *map_get(const struct map *m, const char *key, size_t klen)
{
    struct slot *s;

    if (!m->cap)
        return NULL;
    s = map_slot(m, key, klen, hash_bytes(key, klen));
    return s->key ? s->val : NULL;
}

static int map_grow(struct map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct slot *old = m->slots, *ns = calloc(ncap, sizeof(*ns));
    size_t ocap = m->cap;

    if (!ns)
        return -ENOMEM;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key)
            *map_slot(m, old[i].key, old[i].klen, old[i].hash) = old[i];
    free(old);
    return 0;
}

/* Inserts key (copied) with val; the key must be absent.  Returns the stored
 * key copy (NUL-terminated, stable until map_clear) or NULL. */
static char *map_put(struct map *m, const char *key, size_t klen, void *val)
{
    uint64_t h = hash_bytes(key, klen);
    struct slot *s;

    if ((m->len + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return NULL;
    s = map_slot(m, key, klen, h);
    s->key = malloc(klen + 1);
    if (!s->key)
        return NULL;
    memcpy(s->key, key, klen);
    s->key[klen] = '\0';
    s->klen = klen;
    s->hash = h;
    s->val = val;
    m->len++;
    return s->key;
}

static void map_clear(struct map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) {
            if (free_val)
                free_val(m->slots[i].val);
            free(m->slots[i].key);
        }
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------ */
/* Storage                                                                  */

struct doc {
    const char *id; /* the map's key */
    size_t id_len;
    int64_t version, seq_no;
    uint64_t deleted_ms;
    bool deleted;
    char *source; /* raw JSON text, NULL in discard mode */
    size_t source_len;
};

/* The field types the double models (a field's path: its names joined by '.'). */
enum ftype {
    FT_NONE, FT_OBJECT, FT_LONG, FT_INTEGER, FT_SHORT, FT_BYTE, FT_DOUBLE, FT_FLOAT, FT_TEXT,
    FT_KEYWORD, FT_BOOLEAN, FT_DATE, FT_N
};
static const char *const ftype_name[FT_N] = {
    [FT_NONE] = "", [FT_OBJECT] = "object", [FT_LONG] = "long", [FT_INTEGER] = "integer",
    [FT_SHORT] = "short", [FT_BYTE] = "byte", [FT_DOUBLE] = "double", [FT_FLOAT] = "float",
    [FT_TEXT] = "text", [FT_KEYWORD] = "keyword", [FT_BOOLEAN] = "boolean", [FT_DATE] = "date",
};

/* An object's "dynamic": unset (inherited from its parent; the root's
 * default is true), true, false or strict. */
enum dyn { DYN_UNSET, DYN_TRUE, DYN_FALSE, DYN_STRICT };
static const char *const dyn_name[] = { "", "true", "false", "strict" };

/* One mapped field: explicit (PUT /<index>), made by a dynamic template, or
 * learned from a document's value. */
struct field {
    enum ftype type;
    enum dyn dynamic;       /* objects */
    bool disabled;          /* objects with "enabled": false: content not parsed */
    bool ignore_malformed;  /* numbers and dates: a bad value is left out, not refused */
    long ignore_above;      /* keyword: longer values are not indexed; < 0: none */
    char *name;             /* a multi-field's full name ("t.raw"), else NULL */
    struct field **sub;     /* multi-fields ("fields"), parsing the same values */
    size_t nsub;
    int hidden;             /* text: the _index_prefix and _index_phrase fields it makes */
    json_t *def;            /* what GET /_mapping prints (no "properties"), NULL when dynamic */
};

/* A dynamic template (RootObjectMapper "dynamic_templates"). */
struct tmpl {
    char *name;
    json_t *match, *unmatch, *path_match, *path_unmatch; /* arrays of patterns, or NULL */
    unsigned types;         /* the value kinds (1 << enum xft) it matches */
    json_t *mapping;        /* "mapping", owned */
    json_t *shown;          /* as GET /_mapping prints it, owned */
};

/* The root object's settings (RootObjectMapper). */
struct mapping {
    enum dyn dynamic;
    bool date_detection, numeric_detection;
    bool date_detection_set, numeric_detection_set;
    struct tmpl *tmpl;
    size_t ntmpl;
    json_t *meta;           /* "_meta", shown as given */
};

/* The index settings the double reads (IndexSettings, MapperService): set
 * at creation or by PUT /<index>/_settings, all dynamic. */
struct limits {
    long depth;          /* index.mapping.depth.limit; < 0: not set (--depth-limit) */
    long fields;         /* index.mapping.total_fields.limit */
    bool ignore_beyond;  /* es8 index.mapping.total_fields.ignore_dynamic_beyond_limit */
};

struct index {
    const char *name; /* the map's key */
    struct map docs;
    struct map fields; /* path -> struct field *: explicit and learned from accepted documents */
    struct mapping mapping;
    struct limits lim;
    json_t *settings;  /* as given, normalised: "index.x.y" -> string (GET /<index>/_settings) */
    int64_t seq_no;
    char uuid[23];
    bool exists;
};

enum doc_state { DS_ABSENT, DS_DELETED, DS_PRESENT };

enum route {
    RT_ROOT, RT_BULK, RT_INDEX_BULK, RT_DOC, RT_SEARCH, RT_COUNT, RT_INDEX, RT_REFRESH, RT_MAPPING,
    RT_SETTINGS, RT_OTHER,
    RT_N
};
static const char *const route_name[RT_N] = {
    [RT_ROOT] = "/", [RT_BULK] = "/_bulk", [RT_INDEX_BULK] = "/{index}/_bulk",
    [RT_DOC] = "/{index}/_doc/{id}", [RT_SEARCH] = "/{index}/_search",
    [RT_COUNT] = "/{index}/_count", [RT_INDEX] = "/{index}", [RT_REFRESH] = "/{index}/_refresh",
    [RT_MAPPING] = "/{index}/_mapping", [RT_SETTINGS] = "/{index}/_settings",
    [RT_OTHER] = "other",
};

enum op_type { OP_INDEX, OP_CREATE, OP_DELETE, OP_UPDATE, OP_N };
static const char *const op_name[OP_N] = { "index", "create", "delete", "update" };

/* One bulk item's outcome; index and id are borrowed from the op. */
struct item_res {
    enum op_type op;
    const char *index, *id;
    int status;
    int64_t version, seq_no;
    const char *result; /* NULL when error is set */
    json_t *error;      /* owned */
};

struct stats {
    uint64_t requests[RT_N][600];
    uint64_t bulk_requests, actions[OP_N], items[600];
    uint64_t bytes_received, body_bytes, auth_failures, connections, faults_applied;
};

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */

enum fault_match { FM_ANY, FM_BULK, FM_SEARCH, FM_DOC, FM_COUNT };
enum fault_kind { FK_STATUS, FK_ITEMS, FK_DELAY, FK_RESET, FK_DROP };
enum item_sel { IS_ALL, IS_ODD, IS_EVEN, IS_FIRST };

struct fault {
    enum fault_match match;
    enum fault_kind kind;
    long count; /* remaining; < 0 = unlimited */
    int status, item_status;
    enum item_sel items;
    long nitems;
    long delay_ms;
    char *body; /* custom reply body for FK_STATUS, or NULL */
    json_t *ids; /* FK_ITEMS: only items with one of these _id (strings), or NULL */
};

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

struct hoff {
    uint32_t name, value;
};

struct head {
    uint32_t method, target;
    int minor;
    struct hoff hdr[MAX_HDRS];
    size_t nhdr;
    bool chunked, expect, has_cl, conn_close, conn_keep;
    size_t cl;
};

enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

struct wreq {
    uv_write_t req;
    struct conn *c;
    char *head, *body;
};

struct pending {
    char *head, *body;
    size_t head_len, body_len;
    bool active;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    int handles; /* open handles; freed when 0 */
    struct conn *prev, *next;
    struct buf in;
    size_t head_len; /* 0 until the head is complete */
    struct head h;
    enum chunk_state ch;
    size_t raw_pos, dec_end, chunk_left;
    size_t skip_left;  /* oversized body being read and dropped */
    bool busy;         /* a reply is delayed; parse nothing meanwhile */
    bool closing;
    bool close_after;  /* close once the reply is written */
    bool reset_after;  /* reset once the reply is written */
    bool gzip_ok;      /* Accept-Encoding: gzip */
    bool is_head;      /* HEAD: no body */
    int last_status;   /* of the reply queued last, for the stats */
    int nwrites;       /* writes in flight */
    bool replied;      /* the final reply to the current request is queued */
    long delay_ms;
    struct pending pend;
};

/* A parsed request, pointing into the connection's input buffer. */
struct hdr {
    const char *name, *value;
};

struct request {
    const char *method;
    char *path;        /* raw, as on the wire */
    const char *query; /* raw, without '?', "" if none */
    struct hdr hdrs[MAX_HDRS];
    size_t nhdr;
    const char *body; /* as received (de-chunked) */
    size_t body_len;
    const char *data; /* decoded (gunzipped) */
    size_t data_len;
    char *segs[8]; /* percent-decoded path segments */
    size_t nseg;
    enum route route;
};

/* ------------------------------------------------------------------------ */
/* The server                                                               */

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    struct settings set;
    struct map indices;
    struct stats st;
    struct fault *faults;
    size_t nfaults;
    struct conn *conns;
    uint64_t down_until_ms;
    uint64_t id_counter;
    bool stopping;
} srv;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* n bytes (they may hold NUL) and a NUL. */
static char *strndup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void set_str(char **dst, const char *s)
{
    char *n = (s && *s) ? strdup(s) : NULL;

    if (*dst)
        OPENSSL_cleanse(*dst, strlen(*dst));
    free(*dst);
    *dst = n;
}

static void make_uuid(char out[23])
{
    static const char al[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = uv_hrtime() ^ (srv.id_counter++ * 0x9e3779b97f4a7c15ULL);

    for (int i = 0; i < 22; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = al[x & 63];
    }
    out[22] = '\0';
}

static void doc_free(void *p)
{
    struct doc *d = p;

    if (d)
        free(d->source);
    free(d);
}

static void field_free(void *p)
{
    struct field *f = p;

    if (!f)
        return;
    for (size_t i = 0; i < f->nsub; i++)
        field_free(f->sub[i]);
    free(f->sub);
    free(f->name);
    json_decref(f->def);
    free(f);
}

static void mapping_clear(struct mapping *m)
{
    for (size_t i = 0; i < m->ntmpl; i++) {
        struct tmpl *t = &m->tmpl[i];
        free(t->name);
        json_decref(t->match);
        json_decref(t->unmatch);
        json_decref(t->path_match);
        json_decref(t->path_unmatch);
        json_decref(t->mapping);
        json_decref(t->shown);
    }
    free(m->tmpl);
    json_decref(m->meta);
    memset(m, 0, sizeof(*m));
    m->date_detection = true;
}

/* MapperService INDEX_MAPPING_TOTAL_FIELDS_LIMIT_SETTING's default */
#define TOTAL_FIELDS_DEFAULT 1000

static void limits_reset(struct index *ix)
{
    ix->lim = (struct limits){ .depth = -1, .fields = TOTAL_FIELDS_DEFAULT };
    json_decref(ix->settings);
    ix->settings = NULL;
}

static void index_free(void *p)
{
    struct index *ix = p;

    if (ix) {
        map_clear(&ix->docs, doc_free);
        map_clear(&ix->fields, field_free);
        mapping_clear(&ix->mapping);
        json_decref(ix->settings);
    }
    free(ix);
}

static struct index *index_get(const char *name)
{
    struct index *ix = map_get(&srv.indices, name, strlen(name));

    return ix && ix->exists ? ix : NULL;
}

static struct index *index_create(const char *name)
{
    struct index *ix = map_get(&srv.indices, name, strlen(name));

    if (!ix) {
        ix = calloc(1, sizeof(*ix));
        if (!ix || !(ix->name = map_put(&srv.indices, name, strlen(name), ix))) {
            free(ix);
            return NULL;
        }
    }
    if (!ix->exists) {
        ix->exists = true;
        ix->seq_no = 0;
        make_uuid(ix->uuid);
        mapping_clear(&ix->mapping);
        limits_reset(ix);
    }
    return ix;
}

static void index_drop(struct index *ix)
{
    map_clear(&ix->docs, doc_free);
    map_clear(&ix->fields, field_free);
    mapping_clear(&ix->mapping);
    limits_reset(ix);
    ix->exists = false;
}

/* The mapping depth limit: the index's own setting, else --depth-limit
 * (0: none). */
static long depth_limit(const struct limits *lim)
{
    return lim->depth >= 0 ? lim->depth : srv.set.depth_limit;
}

static enum doc_state doc_state(const struct doc *d, uint64_t now)
{
    if (!d)
        return DS_ABSENT;
    if (!d->deleted)
        return DS_PRESENT;
    return now - d->deleted_ms <= srv.set.gc_deletes_ms ? DS_DELETED : DS_ABSENT;
}

/* ------------------------------------------------------------------------ */
/* Small helpers: JSON text, error bodies                                   */

static int put_json_str(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_putc(b, '"');

    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = { '\\', (char)ch };
            rc = buf_append(b, e, 2);
        } else if (ch < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
            rc = buf_append(b, e, 6);
        } else {
            rc = buf_putc(b, (char)ch);
        }
    }
    return rc ? rc : buf_putc(b, '"');
}

static int dump_cb(const char *p, size_t n, void *arg)
{
    return buf_append(arg, p, n) ? -1 : 0;
}

static json_t *err_obj(const char *type, const char *reason)
{
    return json_pack("{s:s, s:s}", "type", type, "reason", reason);
}

/* {"error":{"root_cause":[cause],...cause},"status":N}; takes cause. */
static json_t *es_error_body(int status, json_t *cause)
{
    json_t *top = json_deep_copy(cause);
    json_t *root_cause = json_copy(cause);

    json_object_del(root_cause, "caused_by");
    json_object_set_new(top, "root_cause", json_pack("[o]", root_cause));
    /* root_cause goes first, as ES prints it */
    json_t *ordered = json_object();
    json_object_set(ordered, "root_cause", json_object_get(top, "root_cause"));
    const char *k;
    json_t *v;
    json_object_foreach(cause, k, v) json_object_set(ordered, k, v);
    json_decref(top);
    json_decref(cause);
    return json_pack("{s:o, s:i}", "error", ordered, "status", status);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 413: return "Request Entity Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static int parse_duration_ms(const char *s, uint64_t *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    if (*end == '\0' || strcmp(end, "s") == 0)
        v *= 1000;
    else if (strcmp(end, "ms") == 0)
        ;
    else if (strcmp(end, "m") == 0)
        v *= 60000;
    else
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    else if (*end == 'g' || *end == 'G')
        v <<= 30, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -EINVAL;
    *out = (size_t)v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* filter_path: comma-separated dotted paths with '*' and '**' wildcards.
 * Objects and arrays left empty disappear, as in ES.                      */

struct fpath {
    char *segs[16];
    size_t nseg;
};

struct fstate {
    unsigned short path, pos;
};

static bool glob_match(const char *pat, const char *s)
{
    if (*pat == '\0')
        return *s == '\0';
    if (*pat == '*') {
        for (;; s++) {
            if (glob_match(pat + 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    return *pat == *s && glob_match(pat + 1, s + 1);
}

static size_t fpath_parse(char *spec, struct fpath *paths, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    for (char *p = strtok_r(spec, ",", &save); p && n < max; p = strtok_r(NULL, ",", &save)) {
        char *s2 = NULL;
        while (*p == ' ')
            p++;
        if (*p == '\0' || *p == '-') /* exclusions are not supported */
            continue;
        paths[n].nseg = 0;
        for (char *q = strtok_r(p, ".", &s2); q && paths[n].nseg < 16; q = strtok_r(NULL, ".", &s2))
            paths[n].segs[paths[n].nseg++] = q;
        if (paths[n].nseg)
            n++;
    }
    return n;
}

/* The states after descending into member key; *all when some path ends
 * there (keep the whole value).  Returns the number of live states. */
static size_t fstep(const struct fpath *paths, const struct fstate *st, size_t n, const char *key,
                    struct fstate *next, bool *all)
{
    size_t nn = 0;

    *all = false;
    for (size_t i = 0; i < n && nn + 2 <= FSTATES_MAX; i++) {
        const struct fpath *fp = &paths[st[i].path];
        const char *seg = fp->segs[st[i].pos];
        if (strcmp(seg, "**") == 0) {
            next[nn++] = st[i]; /* one level more */
            if (st[i].pos + 1u < fp->nseg && glob_match(fp->segs[st[i].pos + 1], key))
                next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 2) };
            else if (st[i].pos + 1u == fp->nseg)
                next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 1) };
        } else if (glob_match(seg, key)) {
            next[nn++] = (struct fstate){ st[i].path, (unsigned short)(st[i].pos + 1) };
        }
    }
    for (size_t i = 0; i < nn; i++)
        if (next[i].pos == paths[next[i].path].nseg)
            *all = true;
    return nn;
}

static json_t *filter_node(json_t *v, const struct fpath *paths, const struct fstate *st, size_t n)
{
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            json_t *f = filter_node(e, paths, st, n);
            if (f)
                json_array_append_new(out, f);
        }
        if (json_array_size(out))
            return out;
        json_decref(out);
        return NULL;
    }
    if (!json_is_object(v))
        return NULL;
    json_t *out = json_object();
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        struct fstate next[FSTATES_MAX];
        bool all;
        size_t nn = fstep(paths, st, n, k, next, &all);
        json_t *f = all ? json_incref(e) : nn ? filter_node(e, paths, next, nn) : NULL;
        if (f)
            json_object_set_new(out, k, f);
    }
    if (json_object_size(out))
        return out;
    json_decref(out);
    return NULL;
}

/* Returns a new reference: the filtered document, or {} when nothing is left. */
static json_t *filter_apply(json_t *root, const char *spec)
{
    struct fpath paths[MAX_PATHS];
    struct fstate st[MAX_PATHS];
    char *copy = strdup(spec);
    size_t n = copy ? fpath_parse(copy, paths, MAX_PATHS) : 0;
    json_t *out;

    if (!n) {
        free(copy);
        return json_incref(root);
    }
    for (size_t i = 0; i < n; i++)
        st[i] = (struct fstate){ (unsigned short)i, 0 };
    out = filter_node(root, paths, st, n);
    free(copy);
    return out ? out : json_object();
}

/* Writing JSON text directly while applying a filter: each member is
 * written only if the filter keeps it, and an object or array that ends up
 * empty is rolled back, so the output equals filter_apply() of the full
 * document without building it.  A set with all=true keeps everything. */
struct fset {
    struct fstate st[FSTATES_MAX];
    size_t n;
    bool all;
};

struct emitter {
    struct buf *b;
    const struct fpath *paths;
};

/* 0: skip the member, 1: write it whole, 2: descend with *child. */
static int em_child(const struct emitter *em, const struct fset *in, const char *key,
                    struct fset *child)
{
    if (in->all) {
        child->all = true;
        child->n = 0;
        return 1;
    }
    child->n = fstep(em->paths, in->st, in->n, key, child->st, &child->all);
    return child->all ? 1 : child->n ? 2 : 0;
}

static void em_sep(struct buf *b)
{
    char last = b->len ? b->ptr[b->len - 1] : '{';

    if (last != '{' && last != '[')
        buf_putc(b, ',');
}

static void em_key(struct buf *b, const char *key)
{
    em_sep(b);
    buf_putc(b, '"');
    buf_puts(b, key); /* keys here are fixed identifiers */
    buf_puts(b, "\":");
}

static void em_int(const struct emitter *em, const struct fset *s, const char *key, int64_t v)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        buf_printf(em->b, "%" PRId64, v);
    }
}

static void em_raw(const struct emitter *em, const struct fset *s, const char *key,
                   const char *text)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        buf_puts(em->b, text);
    }
}

static void em_str(const struct emitter *em, const struct fset *s, const char *key,
                   const char *v)
{
    struct fset c;

    if (em_child(em, s, key, &c) == 1) {
        em_key(em->b, key);
        put_json_str(em->b, v, strlen(v));
    }
}

static void em_json(const struct emitter *em, const struct fset *s, const char *key, json_t *v)
{
    struct fset c;
    int k = em_child(em, s, key, &c);
    json_t *f = k == 1 ? json_incref(v) : k == 2 ? filter_node(v, em->paths, c.st, c.n) : NULL;

    if (f) {
        em_key(em->b, key);
        json_dump_callback(f, dump_cb, em->b, JSON_COMPACT);
        json_decref(f);
    }
}

/* Opens a container member (key NULL: an array element); false to skip. */
static bool em_open(const struct emitter *em, const struct fset *s, const char *key, char open,
                    struct fset *child, size_t *mark)
{
    *mark = em->b->len;
    if (key) {
        if (!em_child(em, s, key, child))
            return false;
        em_key(em->b, key);
    } else {
        *child = *s;
        em_sep(em->b);
    }
    buf_putc(em->b, open);
    return true;
}

static void em_close(const struct emitter *em, const struct fset *child, size_t mark, char close)
{
    char last = em->b->ptr[em->b->len - 1];

    if (!child->all && (last == '{' || last == '['))
        buf_truncate(em->b, mark); /* nothing kept inside: drop it, as ES does */
    else
        buf_putc(em->b, close);
}

static void em_item(const struct emitter *em, const struct fset *s, const struct item_res *it)
{
    struct fset el, op, sh;
    size_t m_el, m_op, m_sh;

    if (!em_open(em, s, NULL, '{', &el, &m_el))
        return;
    if (em_open(em, &el, op_name[it->op], '{', &op, &m_op)) {
        em_str(em, &op, "_index", it->index);
        em_str(em, &op, "_id", it->id);
        if (it->error) {
            em_int(em, &op, "status", it->status);
            em_json(em, &op, "error", it->error);
        } else {
            em_int(em, &op, "_version", it->version);
            em_str(em, &op, "result", it->result);
            if (em_open(em, &op, "_shards", '{', &sh, &m_sh)) {
                em_int(em, &sh, "total", 2);
                em_int(em, &sh, "successful", 1);
                em_int(em, &sh, "failed", 0);
                em_close(em, &sh, m_sh, '}');
            }
            em_int(em, &op, "_seq_no", it->seq_no);
            em_int(em, &op, "_primary_term", 1);
            em_int(em, &op, "status", it->status);
        }
        em_close(em, &op, m_op, '}');
    }
    em_close(em, &el, m_el, '}');
}

/* The whole bulk reply, filtered by spec (NULL or "" = everything). */
static void em_bulk_reply(struct buf *b, const char *spec, int64_t took, bool errors,
                          const struct item_res *items, size_t n)
{
    struct fpath paths[MAX_PATHS];
    char *copy = spec && *spec ? strdup(spec) : NULL;
    struct emitter em = { b, paths };
    struct fset root = { .all = true }, arr;
    size_t np = copy ? fpath_parse(copy, paths, MAX_PATHS) : 0, m;

    if (np) {
        root.all = false;
        root.n = np;
        for (size_t i = 0; i < np; i++)
            root.st[i] = (struct fstate){ (unsigned short)i, 0 };
    }
    buf_putc(b, '{');
    em_int(&em, &root, "took", took);
    em_raw(&em, &root, "errors", errors ? "true" : "false");
    if (em_open(&em, &root, "items", '[', &arr, &m)) {
        for (size_t i = 0; i < n; i++)
            em_item(&em, &arr, &items[i]);
        em_close(&em, &arr, m, ']');
    }
    buf_putc(b, '}');
    free(copy);
}

/* ------------------------------------------------------------------------ */
/* Query strings                                                            */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes of s into a new string ('+' as space when form). */
static char *pct_decode(const char *s, size_t n, bool form)
{
    char *out = malloc(n + 1), *o = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (form && s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* The decoded value of query parameter name, or NULL; caller frees. */
static char *query_param(const char *q, const char *name)
{
    size_t nl = strlen(name);

    while (q && *q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        const char *ke = eq ? eq : end;
        if ((size_t)(ke - q) == nl && memcmp(q, name, nl) == 0)
            return eq ? pct_decode(eq + 1, (size_t)(end - eq - 1), true) : strdup("");
        q = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */

static void conn_close(struct conn *c);
static void conn_drive(struct conn *c);

static const char *req_header(const struct request *r, const char *name)
{
    for (size_t i = 0; i < r->nhdr; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

static void on_reset_timer(uv_timer_t *t)
{
    struct conn *c = t->data;

    c->reset_after = true;
    conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = w->c;

    free(w->head);
    free(w->body);
    free(w);
    c->nwrites--;
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    if (c->nwrites > 0 || c->busy || !c->replied)
        return; /* act after the reply's last write (not after a 100 Continue) */
    if (c->reset_after) { /* let the client read the partial reply, then RST */
        uv_timer_start(&c->timer, on_reset_timer, 50, 0);
        return;
    }
    if (c->close_after) {
        conn_close(c);
        return;
    }
}

static int write_now(struct conn *c, char *head, size_t head_len, char *body, size_t body_len)
{
    struct wreq *w = calloc(1, sizeof(*w));
    uv_buf_t bufs[2];
    unsigned nb = 1;
    int rc;

    if (!w) {
        free(head);
        free(body);
        return -ENOMEM;
    }
    w->c = c;
    w->head = head;
    w->body = body;
    bufs[0] = uv_buf_init(head, (unsigned)head_len);
    if (body && body_len)
        bufs[nb++] = uv_buf_init(body, (unsigned)body_len);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, nb, on_write);
    if (rc == 0)
        c->nwrites++;
    if (rc < 0) {
        free(head);
        free(body);
        free(w);
        conn_close(c);
    }
    return rc;
}

static void on_delay(uv_timer_t *t)
{
    struct conn *c = t->data;
    struct pending p = c->pend;

    memset(&c->pend, 0, sizeof(c->pend));
    c->busy = false;
    if (p.active && write_now(c, p.head, p.head_len, p.body, p.body_len) < 0)
        return;
    conn_drive(c);
}

static char *gzip_bytes(const char *p, size_t n, size_t *out_len)
{
    z_stream z;
    char *out = NULL;
    uLong bound;

    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    bound = deflateBound(&z, (uLong)n) + 32;
    out = malloc(bound);
    if (out) {
        z.next_in = (Bytef *)(uintptr_t)p;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)out;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            free(out);
            out = NULL;
        } else {
            *out_len = z.total_out;
        }
    }
    deflateEnd(&z);
    return out;
}

/* Sends a reply; takes body (malloc'd or NULL).  extra: "Name: v\r\n" lines. */
static void reply(struct conn *c, int status, const char *ctype, const char *extra, char *body,
                  size_t len)
{
    struct buf h;
    bool gz = false;
    size_t send_len;

    c->last_status = status;
    c->replied = true;
    if (c->gzip_ok && body && len > 0) {
        size_t zl = 0;
        char *z = gzip_bytes(body, len, &zl);
        if (z) {
            free(body);
            body = z;
            len = zl;
            gz = true;
        }
    }
    buf_init(&h, BUF_NOMAX);
    buf_printf(&h, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (ctype)
        buf_printf(&h, "content-type: %s\r\n", ctype);
    if (gz)
        buf_puts(&h, "content-encoding: gzip\r\n");
    buf_printf(&h, "content-length: %zu\r\n", len);
    if (extra)
        buf_puts(&h, extra);
    if (c->close_after)
        buf_puts(&h, "connection: close\r\n");
    buf_puts(&h, "\r\n");
    if (!h.ptr) {
        free(body);
        conn_close(c);
        return;
    }
    send_len = c->is_head ? 0 : len;
    if (c->reset_after)
        send_len = len / 2; /* the headers promise more than will come */
    if (c->delay_ms > 0) {
        c->pend = (struct pending){ .head = h.ptr, .head_len = h.len, .body = body,
                                    .body_len = send_len, .active = true };
        c->busy = true;
        uv_timer_start(&c->timer, on_delay, (uint64_t)c->delay_ms, 0);
        c->delay_ms = 0;
        return;
    }
    write_now(c, h.ptr, h.len, body, send_len);
}

static void reply_json(struct conn *c, int status, json_t *body, const char *extra)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    if (json_dump_callback(body, dump_cb, &b, JSON_COMPACT) < 0 || !b.ptr) {
        buf_close(&b);
        json_decref(body);
        conn_close(c);
        return;
    }
    json_decref(body);
    reply(c, status, "application/json; charset=UTF-8", extra, b.ptr, b.len);
}

/* Same, applying the request's filter_path. */
static void reply_json_filtered(struct conn *c, const struct request *r, int status, json_t *body)
{
    char *fp = query_param(r->query, "filter_path");

    if (fp && *fp) {
        json_t *f = filter_apply(body, fp);
        json_decref(body);
        body = f;
    }
    free(fp);
    reply_json(c, status, body, NULL);
}

static void reply_error(struct conn *c, int status, const char *type, const char *reason)
{
    reply_json(c, status, es_error_body(status, err_obj(type, reason)), NULL);
}

/* ------------------------------------------------------------------------ */
/* Document operations                                                      */

enum vtype { VT_INTERNAL, VT_EXTERNAL, VT_EXTERNAL_GTE };
static const char *const vtype_upper[] = { "INTERNAL", "EXTERNAL", "EXTERNAL_GTE" };

struct op {
    enum op_type type;
    char *index;
    char *id;        /* with a NUL after id_len bytes; it may hold more */
    size_t id_len;
    int64_t version; /* VERSION_UNSET when absent */
    enum vtype vt;
    int64_t if_seq_no, if_primary_term; /* -2 when absent */
    const char *src; /* index/create: the document; update: the update body */
    size_t src_len;
};

static void op_clear(struct op *o)
{
    free(o->index);
    free(o->id);
    memset(o, 0, sizeof(*o));
}

static void next_auto_id(char out[21])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t a = (uint64_t)time(NULL), b = srv.id_counter++;

    for (int i = 0; i < 8; i++, a >>= 6)
        out[7 - i] = al[a & 63];
    for (int i = 0; i < 12; i++, b >>= 6)
        out[19 - i] = al[b & 63];
    out[20] = '\0';
}

static json_t *conflict_error(const struct index *ix, const char *id, const char *reason_tail)
{
    char reason[512];

    snprintf(reason, sizeof(reason), "[%s]: version conflict, %s", id, reason_tail);
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "version_conflict_engine_exception",
                     "reason", reason, "index_uuid", ix->uuid, "shard", "0", "index", ix->name);
}

static bool valid_index_name(const char *n, char *why, size_t wlen)
{
    if (!*n || *n == '_' || *n == '-' || *n == '+') {
        snprintf(why, wlen, "Invalid index name [%s], must not start with '_', '-', or '+'", n);
        return false;
    }
    for (const char *p = n; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            snprintf(why, wlen, "Invalid index name [%s], must be lowercase", n);
            return false;
        }
        if (strchr("\\/*?\"<>| ,#:", *p)) {
            snprintf(why, wlen,
                     "Invalid index name [%s], must not contain the following characters "
                     "[ , \", *, \\, <, |, ,, >, /, ?]", n);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Documents as the engines parse them
 *
 * One pass over the source text and no tree: the JSON is read as Jackson's
 * UTF8StreamJsonParser reads it, field names are checked as DocumentParser
 * checks them, and every value meets the index's dynamic mapping (the field
 * path -> type learned from the documents accepted so far) the way the
 * engine's field mapper takes it: coerced, or refused with the engine's
 * error.  Fields first seen in a document join the mapping only if the
 * document is accepted.  tests/tools/ENGINE-RULES.md has the rules, the
 * sources they come from and what could not be confirmed; the comments
 * below name the source file each piece follows.                           */

enum vkind { VK_STRING, VK_INT, VK_BIGINT, VK_FLOAT, VK_TRUE, VK_FALSE, VK_NULL };

struct loc {
    int line, col; /* Jackson's token location: 1-based, the column in bytes */
};

/* One scalar as Jackson tokenizes it. */
struct val {
    enum vkind kind;
    const char *p, *e; /* the token; a string without its quotes */
    struct loc at;
};

struct meta;

/* The field a value goes to. */
struct fld {
    size_t plen;              /* its full path is scr.path[0..plen) */
    size_t base;              /* the path of the object whose key names it */
    size_t noff, nlen;        /* the name the engine's messages give it, in scr.keys */
    const struct meta *meta;  /* a metadata field at the root, or NULL */
    int nvals;                /* values seen (arrays of _doc_count) */
};

struct chk {
    const char *p, *e, *row;  /* position, end, start of the current line */
    int line;
    enum flavor fl;
    struct index *ix;
    const char *id;
    int nest;                 /* open objects and arrays (Jackson's nesting limit) */
    long depth_limit;         /* index.mapping.depth.limit (0: none) */
    long fields_limit;        /* index.mapping.total_fields.limit */
    long objdepth, arrdepth;  /* os2: objects and arrays being parsed into the mapping */
    long existing;            /* es8: what the mapping's fields count, < 0 until needed */
    long added;               /* es8: what the fields new in this document count */
    unsigned long obj;        /* serial of the object being read (duplicate keys) */
    const char *poison, *poison_at, *poison_end;
    json_t *err;              /* the first refusal */
    json_t *late;             /* a clash between fields new in this document */
    json_t *index_err;        /* a value Lucene refuses when the parsed document is indexed */
};

/* Scratch space kept between documents so that a document costs no
 * allocation once the buffers have grown. */
struct dupkey {
    uint64_t gen;
    unsigned long obj;
    uint64_t hash;
    size_t off, len;
};

static struct {
    struct buf path;          /* the current field path: decoded names joined by '.' */
    struct buf keys;          /* this document's decoded keys, back to back */
    struct buf text;          /* one decoded string value */
    struct dupkey *dup;       /* (object, key) pairs seen in this document */
    size_t dupcap, dupn;
    uint64_t gen;
    struct map pending;       /* fields new in this document: path -> struct field * */
} scr;

#define NEST_MAX 1000 /* Jackson 2.15 StreamReadConstraints.DEFAULT_MAX_DEPTH */

static int value(struct chk *c, struct fld *f);
static int skip_value(struct chk *c);
static const char *render(const char *p, const char *e, struct buf *out);

static const char *doc_error(const struct chk *c)
{
    return c->fl == FL_ES8 ? "document_parsing_exception" : "mapper_parsing_exception";
}

static struct loc loc_at(const struct chk *c, const char *at)
{
    return (struct loc){ c->line, (int)(at - c->row) + 1 };
}

/* A JSON string value for text that may hold any byte: what JSON cannot
 * carry (bytes outside UTF-8, encoded surrogates) becomes U+FFFD. */
static json_t *jtext(const char *p, size_t n)
{
    struct buf b;
    json_t *j;

    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        size_t k = ch < 0x80 ? 1 : ch >= 0xC2 && ch <= 0xDF ? 2 : ch >= 0xE0 && ch <= 0xEF ? 3
                 : ch >= 0xF0 && ch <= 0xF4 ? 4 : 0;
        bool ok = k > 0 && i + k <= n;
        for (size_t j2 = 1; ok && j2 < k; j2++)
            ok = ((unsigned char)p[i + j2] & 0xC0) == 0x80;
        if (ok && k == 3) {
            unsigned cp = (ch & 0x0Fu) << 12 | ((unsigned char)p[i + 1] & 0x3Fu) << 6;
            ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        } else if (ok && k == 4) {
            unsigned cp = (ch & 0x07u) << 18 | ((unsigned char)p[i + 1] & 0x3Fu) << 12;
            ok = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        if (ok) {
            buf_append(&b, p + i, k);
            i += k;
        } else {
            buf_puts(&b, "\xEF\xBF\xBD");
            i++;
        }
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_close(&b);
    return j;
}

/* {"type":type,"reason":reason[,"caused_by":cause]}; takes cause. */
static json_t *err_text(const char *type, const struct buf *reason, json_t *cause)
{
    json_t *e = json_object();

    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "reason", jtext(reason->ptr ? reason->ptr : "", reason->len));
    if (cause)
        json_object_set_new(e, "caused_by", cause);
    return e;
}

static json_t *errf(const char *type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *errf(const char *type, const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(type, &b, NULL);
    buf_close(&b);
    return e;
}

static void refuse(struct chk *c, json_t *e)
{
    if (!c->err)
        c->err = e;
    else
        json_decref(e);
}

/* Jackson's description of a character in its messages (_getCharDesc). */
static void char_desc(char *out, size_t n, const char *p, const char *e)
{
    unsigned char ch = p < e ? (unsigned char)*p : 0;

    if (p >= e)
        snprintf(out, n, "end-of-input");
    else if (ch < 0x20 || ch == 0x7F)
        snprintf(out, n, "(CTRL-CHAR, code %u)", ch);
    else if (ch < 0x80)
        snprintf(out, n, "'%c' (code %u)", ch, ch);
    else
        snprintf(out, n, "(code %u)", ch);
}

/* A JSON error from Jackson.  es8: JsonXContentParser turns it into an
 * XContentParseException, which DocumentParser#wrapInDocumentParsingException
 * wraps ("failed to parse: ..."); os2: DocumentParser#wrapInMapperParsingException
 * wraps the Jackson exception itself.  Jackson's location suffix
 * ("\n at [Source: ...]") is left out: its text depends on the version. */
static int bad_json(struct chk *c, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_json(struct chk *c, const char *at, const char *fmt, ...)
{
    struct buf m, r;
    struct loc l = loc_at(c, at);
    va_list ap;

    if (c->err)
        return -1;
    buf_init(&m, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    if (c->fl == FL_ES8) {
        buf_printf(&r, "[%d:%d] failed to parse: [%d:%d] %s", l.line, l.col, l.line, l.col, m.ptr);
        json_t *cause = errf("x_content_parse_exception", "[%d:%d] %s", l.line, l.col, m.ptr);
        c->err = err_text(doc_error(c), &r, cause);
    } else {
        buf_puts(&r, "failed to parse");
        c->err = err_text(doc_error(c), &r, err_text("json_parse_exception", &m, NULL));
    }
    buf_close(&m);
    buf_close(&r);
    return -1;
}

static int bad_char(struct chk *c, const char *at, const char *what)
{
    char d[40];

    char_desc(d, sizeof(d), at, c->e);
    if (at >= c->e)
        return bad_json(c, at, "Unexpected end-of-input: %s", what);
    return bad_json(c, at, "Unexpected character (%s): %s", d, what);
}

/* The cause an engine gives for an error Jackson raised while a field mapper
 * read a value (es8: XContentParseException with the location; os2: the
 * Jackson exception itself). */
static json_t *jackson_cause(const struct chk *c, const char *os_type, struct loc at,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static json_t *jackson_cause(const struct chk *c, const char *os_type, struct loc at,
                             const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&b, "[%d:%d] ", at.line, at.col);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(c->fl == FL_ES8 ? "x_content_parse_exception" : os_type, &b, NULL);
    buf_close(&b);
    return e;
}

static int bad_field_named(struct chk *c, const char *name, size_t nlen, const char *type,
                           struct loc at, const char *preview, size_t pvlen, json_t *cause);

/* bad_field_named for the field at scr.path[0..plen).  Takes cause. */
static int bad_field(struct chk *c, size_t plen, const char *type, struct loc at,
                     const char *preview, size_t pvlen, json_t *cause)
{
    return bad_field_named(c, scr.path.ptr, plen, type, at, preview, pvlen, cause);
}

/* A field name DocumentParser refuses (an IllegalArgumentException:
 * es8 DocumentParser#wrapInDocumentParsingException "failed to parse: ...",
 * os2 DocumentParser#wrapInMapperParsingException "failed to parse"). */
static int bad_name(struct chk *c, struct loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_name(struct chk *c, struct loc at, const char *fmt, ...)
{
    struct buf m, r;
    va_list ap;

    buf_init(&m, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    va_start(ap, fmt);
    buf_vprintf(&m, fmt, ap);
    va_end(ap);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] failed to parse: ", at.line, at.col);
    else
        buf_puts(&r, "failed to parse");
    if (c->fl == FL_ES8)
        buf_append(&r, m.ptr, m.len);
    refuse(c, err_text(doc_error(c), &r, err_text("illegal_argument_exception", &m, NULL)));
    buf_close(&m);
    buf_close(&r);
    return -1;
}

/* ---- Jackson's tokens --------------------------------------------------- */

static void skip_blank(struct chk *c)
{
    /* JSON whitespace; Jackson counts a line at '\n', '\r' and "\r\n" */
    while (c->p < c->e) {
        char ch = *c->p;
        if (ch == ' ' || ch == '\t') {
            c->p++;
        } else if (ch == '\n' || ch == '\r') {
            c->p += ch == '\r' && c->p + 1 < c->e && c->p[1] == '\n' ? 2 : 1;
            c->line++;
            c->row = c->p;
        } else {
            break;
        }
    }
}

static void put_utf8(struct buf *b, unsigned cp)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) { /* lone surrogates too, as three bytes */
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(b, u, n);
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

/* Reads the string at c->p (on its '"') as UTF8StreamJsonParser does
 * (jackson-core 2.x, _finishString2/_decodeEscaped/_decodeUtf8_*):
 * characters below 0x20 must be escaped; escapes are the JSON ones and
 * \uXXXX with any code unit, lone surrogates included; other bytes must
 * follow Jackson's UTF-8 table: a lead byte C0..F7 and continuation bytes
 * 80..BF (overlong forms and encoded surrogates pass, as in Jackson).
 * out, when not NULL, gets the decoded text (surrogate pairs joined). */
static int read_string(struct chk *c, struct buf *out, bool name)
{
    const char *p = c->p + 1, *e = c->e;
    const char *what = name ? "name" : "string value";
    char d[40];

    while (p < e) {
        const char *run = p;
        while (p < e && (unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80 && *p != '"' &&
               *p != '\\')
            p++;
        if (out && p > run)
            buf_append(out, run, (size_t)(p - run));
        if (p >= e)
            break;
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            c->p = p + 1;
            return 0;
        }
        if (ch == '\\') {
            static const char plain[] = "\"\\/bfnrt", as[] = "\"\\/\b\f\n\r\t";
            const char *k;
            unsigned u, lo;
            if (p + 1 >= e)
                break;
            if (p[1] != 'u') {
                if (!(k = memchr(plain, p[1], sizeof(plain) - 1))) {
                    char_desc(d, sizeof(d), p + 1, e);
                    return bad_json(c, p + 1, "Unrecognized character escape %s", d);
                }
                if (out)
                    buf_putc(out, as[k - plain]);
                p += 2;
                continue;
            }
            for (int i = 0; i < 4; i++)
                if (p + 2 + i >= e || hexval(p[2 + i]) < 0) {
                    if (p + 2 + i >= e)
                        return bad_json(c, e, "Unexpected end-of-input in character escape "
                                              "sequence");
                    char_desc(d, sizeof(d), p + 2 + i, e);
                    return bad_json(c, p + 2 + i, "Unexpected character (%s): expected a "
                                                  "hex-digit for character escape sequence", d);
                }
            hex4(p + 2, &u);
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
                hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (out)
                put_utf8(out, u);
            continue;
        }
        if (ch < 0x20) {
            char_desc(d, sizeof(d), p, e);
            return bad_json(c, p, "Illegal unquoted character (%s): has to be escaped using "
                                  "backslash to be included in %s", d, what);
        }
        size_t n = (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : (ch & 0xF8) == 0xF0 ? 4
                 : 0;
        if (n == 0)
            return bad_json(c, p, "Invalid UTF-8 start byte 0x%x", ch);
        for (size_t i = 1; i < n; i++) {
            if (p + i >= e)
                return bad_json(c, e, "Unexpected end-of-input in a string value");
            if (((unsigned char)p[i] & 0xC0) != 0x80)
                return bad_json(c, p + i, "Invalid UTF-8 middle byte 0x%x",
                                (unsigned char)p[i]);
        }
        if (out)
            buf_append(out, p, n);
        p += n;
    }
    return bad_json(c, e, "Unexpected end-of-input: was expecting closing quote for a %s", what);
}

/* Decodes a string already read by read_string (p, e: inside the quotes). */
static void decode_string(const char *p, const char *e, struct buf *out)
{
    while (p < e) {
        if (*p != '\\') {
            const char *q = memchr(p, '\\', (size_t)(e - p));
            q = q ? q : e;
            buf_append(out, p, (size_t)(q - p));
            p = q;
            continue;
        }
        if (p[1] != 'u') {
            static const char plain[] = "\"\\/bfnrt", as[] = "\"\\/\b\f\n\r\t";
            buf_putc(out, as[(const char *)memchr(plain, p[1], sizeof(plain) - 1) - plain]);
            p += 2;
            continue;
        }
        unsigned u, lo;
        hex4(p + 2, &u);
        p += 6;
        if (u >= 0xD800 && u <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
            hex4(p + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        put_utf8(out, u);
    }
}

/* Whether an integer literal fits a Java long (Jackson's NumberType INT or
 * LONG rather than BIG_INTEGER). */
static bool fits_long(const char *p, const char *e)
{
    static const char max[] = "9223372036854775807", min[] = "9223372036854775808";
    bool neg = *p == '-';
    size_t n;

    p += neg;
    n = (size_t)(e - p);
    if (n != 19)
        return n < 19;
    return memcmp(p, neg ? min : max, 19) <= 0;
}

/* A number, true, false or null (ReaderBasedJsonParser/UTF8StreamJsonParser
 * _parsePosNumber, _parseNegNumber, _matchToken). */
static int read_scalar(struct chk *c, struct val *v)
{
    const char *p = c->p, *s = p, *e = c->e;
    bool frac = false;

    v->at = loc_at(c, s);
    if (*p == '-' || (*p >= '0' && *p <= '9')) {
        if (*p == '-' && (++p >= e || *p < '0' || *p > '9'))
            return bad_char(c, p, "expected digit (0-9) to follow minus sign, for valid "
                                  "numeric value");
        if (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9')
            return bad_json(c, p + 1, "Invalid numeric value: Leading zeroes not allowed");
        while (p < e && *p >= '0' && *p <= '9')
            p++;
        if (p < e && *p == '.') {
            frac = true;
            if (++p >= e || *p < '0' || *p > '9')
                return bad_char(c, p, "Decimal point not followed by a digit");
            while (p < e && *p >= '0' && *p <= '9')
                p++;
        }
        if (p < e && (*p == 'e' || *p == 'E')) {
            frac = true;
            if (++p < e && (*p == '+' || *p == '-'))
                p++;
            if (p >= e || *p < '0' || *p > '9')
                return bad_char(c, p, "Exponent indicator not followed by a digit");
            while (p < e && *p >= '0' && *p <= '9')
                p++;
        }
        v->kind = frac ? VK_FLOAT : fits_long(s, p) ? VK_INT : VK_BIGINT;
    } else {
        static const char *const lits[] = { "true", "false", "null" };
        static const enum vkind kinds[] = { VK_TRUE, VK_FALSE, VK_NULL };
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t n = strlen(lits[i]);
            if ((size_t)(e - s) >= n && memcmp(s, lits[i], n) == 0)
                break;
        }
        if (i == 3)
            return bad_char(c, s, "expected a valid value (JSON String, Number, Array, Object "
                                  "or token 'null', 'true' or 'false')");
        p = s + strlen(lits[i]);
        v->kind = kinds[i];
    }
    /* a token must end where a JSON delimiter can follow */
    if (p < e && (isalnum((unsigned char)*p) || *p == '_' || *p == '$' || *p == '.' ||
                  (unsigned char)*p >= 0x80)) {
        const char *q = p;
        while (q < e && (isalnum((unsigned char)*q) || *q == '_' || *q == '$' || *q == '.'))
            q++;
        return bad_json(c, s, "Unrecognized token '%.*s': was expecting (JSON String, Number, "
                              "Array, Object or token 'null', 'true' or 'false')",
                        (int)(q - s > 256 ? 256 : q - s), s);
    }
    v->p = s;
    v->e = p;
    c->p = p;
    return 0;
}

static int read_string_val(struct chk *c, struct val *v)
{
    v->at = loc_at(c, c->p);
    v->kind = VK_STRING;
    v->p = c->p + 1;
    if (read_string(c, NULL, false) < 0)
        return -1;
    v->e = c->p - 1;
    return 0;
}

/* Jackson's duplicate detection (JsonParser.Feature.STRICT_DUPLICATE_DETECTION,
 * set by both engines' JsonXContent): a name twice in one object. */
static bool dup_key(unsigned long obj, size_t off, size_t len)
{
    uint64_t h = hash_bytes(scr.keys.ptr + off, len) ^ (obj * 0x9e3779b97f4a7c15ULL);
    size_t i;

    if ((scr.dupn + 1) * 2 > scr.dupcap) {
        size_t ncap = scr.dupcap ? scr.dupcap * 2 : 256;
        struct dupkey *n = calloc(ncap, sizeof(*n)), *old = scr.dup;
        if (!n)
            return false;
        for (size_t j = 0; j < scr.dupcap; j++) {
            if (old[j].gen != scr.gen)
                continue;
            for (i = old[j].hash & (ncap - 1); n[i].gen == scr.gen; i = (i + 1) & (ncap - 1))
                ;
            n[i] = old[j];
        }
        free(old);
        scr.dup = n;
        scr.dupcap = ncap;
    }
    for (i = h & (scr.dupcap - 1); scr.dup[i].gen == scr.gen; i = (i + 1) & (scr.dupcap - 1)) {
        const struct dupkey *d = &scr.dup[i];
        if (d->hash == h && d->obj == obj && d->len == len &&
            memcmp(scr.keys.ptr + d->off, scr.keys.ptr + off, len) == 0)
            return true;
    }
    scr.dup[i] = (struct dupkey){ scr.gen, obj, h, off, len };
    scr.dupn++;
    return false;
}

/* The members of the object at c->p: each key read and checked, then
 * member() for it (raw: JSON only, as when a value is read for a preview). */
static int member(struct chk *c, size_t base, struct loc kat, size_t koff, size_t klen);

static int object(struct chk *c, size_t base, bool raw)
{
    unsigned long obj = ++c->obj;

    if (++c->nest > NEST_MAX)
        return bad_json(c, c->p, "Document nesting depth (%d) exceeds the maximum allowed "
                                 "(%d, from `StreamReadConstraints.getMaxNestingDepth()`)",
                        c->nest, NEST_MAX);
    c->p++;
    skip_blank(c);
    if (c->p < c->e && *c->p == '}') {
        c->p++;
        c->nest--;
        return 0;
    }
    for (;;) {
        struct loc kat;
        size_t koff = scr.keys.len;
        if (c->p >= c->e || *c->p != '"')
            return bad_char(c, c->p, "was expecting double-quote to start field name");
        kat = loc_at(c, c->p);
        if (read_string(c, &scr.keys, true) < 0)
            return -1;
        if (dup_key(obj, koff, scr.keys.len - koff))
            return bad_json(c, c->p, "Duplicate field '%.*s'", (int)(scr.keys.len - koff),
                            scr.keys.ptr + koff);
        skip_blank(c);
        if (c->p >= c->e || *c->p != ':')
            return bad_char(c, c->p, "was expecting a colon to separate field name and value");
        c->p++;
        skip_blank(c);
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
        if ((raw ? skip_value(c) : member(c, base, kat, koff, scr.keys.len - koff)) < 0)
            return -1;
        skip_blank(c);
        if (c->p < c->e && *c->p == ',') {
            c->p++;
            skip_blank(c);
            continue;
        }
        if (c->p < c->e && *c->p == '}') {
            c->p++;
            c->nest--;
            return 0;
        }
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected close marker for "
                                     "Object");
        return bad_char(c, c->p, "was expecting comma to separate Object entries");
    }
}

/* Calls each(c, arg) for every element of the array at c->p. */
static int array(struct chk *c, int (*each)(struct chk *, void *), void *arg)
{
    if (++c->nest > NEST_MAX)
        return bad_json(c, c->p, "Document nesting depth (%d) exceeds the maximum allowed "
                                 "(%d, from `StreamReadConstraints.getMaxNestingDepth()`)",
                        c->nest, NEST_MAX);
    c->p++;
    skip_blank(c);
    if (c->p < c->e && *c->p == ']') {
        c->p++;
        c->nest--;
        return 0;
    }
    for (;;) {
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
        if (each(c, arg) < 0)
            return -1;
        skip_blank(c);
        if (c->p < c->e && *c->p == ',') {
            c->p++;
            skip_blank(c);
            continue;
        }
        if (c->p < c->e && *c->p == ']') {
            c->p++;
            c->nest--;
            return 0;
        }
        if (c->p >= c->e)
            return bad_json(c, c->p, "Unexpected end-of-input: expected close marker for "
                                     "Array");
        return bad_char(c, c->p, "was expecting comma to separate Array entries");
    }
}

static int skip_each(struct chk *c, void *arg)
{
    return skip_value(c);
}

/* Reads one value checking only the JSON. */
static int skip_value(struct chk *c)
{
    struct val v;

    if (c->p >= c->e)
        return bad_json(c, c->p, "Unexpected end-of-input: expected a value");
    if (*c->p == '{')
        return object(c, 0, true);
    if (*c->p == '[')
        return array(c, skip_each, NULL);
    if (*c->p == '"')
        return read_string_val(c, &v);
    return read_scalar(c, &v);
}

/* ---- values as Java prints them (the previews in the engines' errors) --- */

/* Double.toString (JDK 19+: the shortest decimal that reads back). */
static void java_double(double d, struct buf *out)
{
    char t[40], digits[24];
    int prec, exp10, nd = 0;

    if (isnan(d)) {
        buf_puts(out, "NaN");
        return;
    }
    if (isinf(d)) {
        buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
        return;
    }
    if (d == 0) {
        buf_puts(out, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    for (prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof(t), "%.*e", prec - 1, d);
        if (strtod(t, NULL) == d)
            break;
    }
    const char *q = t;
    if (*q == '-') {
        buf_putc(out, '-');
        q++;
    }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9')
            digits[nd++] = *q;
    exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    double a = fabs(d);
    if (a >= 1e-3 && a < 1e7) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                buf_putc(out, i < nd ? digits[i] : '0');
            buf_putc(out, '.');
            if (nd > exp10 + 1)
                buf_append(out, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            else
                buf_putc(out, '0');
        } else {
            buf_puts(out, "0.");
            for (int i = 0; i < -exp10 - 1; i++)
                buf_putc(out, '0');
            buf_append(out, digits, (size_t)nd);
        }
    } else {
        buf_putc(out, digits[0]);
        buf_putc(out, '.');
        if (nd > 1)
            buf_append(out, digits + 1, (size_t)(nd - 1));
        else
            buf_putc(out, '0');
        buf_printf(out, "E%d", exp10);
    }
}

/* A number as Jackson's numberValue() gives it and Java prints it: an
 * Integer, Long or BigInteger in plain digits, else a Double. */
static void java_number(const char *p, const char *e, bool frac, struct buf *out)
{
    if (frac) {
        char *t = strndup(p, (size_t)(e - p));
        java_double(t ? strtod(t, NULL) : 0, out);
        free(t);
        return;
    }
    if (*p == '-' && e - p == 2 && p[1] == '0')
        p++; /* -0 is the integer 0 */
    buf_append(out, p, (size_t)(e - p));
}

/* String#hashCode of a decoded (Jackson-decoded UTF-8) text. */
static uint32_t java_hash(const char *p, size_t n)
{
    uint32_t h = 0;

    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)p[i];
        unsigned cp;
        size_t k = ch < 0x80 ? 1 : (ch & 0xE0) == 0xC0 ? 2 : (ch & 0xF0) == 0xE0 ? 3 : 4;
        if (i + k > n)
            k = n - i;
        cp = k == 1 ? ch : k == 2 ? (ch & 0x1Fu) : k == 3 ? (ch & 0x0Fu) : (ch & 0x07u);
        for (size_t j = 1; j < k; j++)
            cp = cp << 6 | ((unsigned char)p[i + j] & 0x3Fu);
        i += k;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = 31 * h + (0xD800 + (cp >> 10));
            h = 31 * h + (0xDC00 + (cp & 0x3FF));
        } else {
            h = 31 * h + cp;
        }
    }
    return h;
}

struct entry {
    char *k, *v;
    size_t kl, vl, ins;
    uint32_t h, slot;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;

    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return x->ins < y->ins ? -1 : x->ins > y->ins;
}

/* The order java.util.HashMap (as AbstractXContentParser#readValue builds it)
 * iterates its entries: by bucket of the spread hash at the final table size
 * (16, doubled past 3/4 full, and while a bucket would hold a ninth entry
 * before the table reaches 64), then in insertion order.  Buckets turned into
 * trees (64 slots and more) are taken in insertion order too. */
static void hashmap_order(struct entry *v, size_t n)
{
    uint32_t cap = 16, thr = 12;

    for (size_t i = 0; i < n; i++) {
        uint32_t h = v[i].h ^ (v[i].h >> 16);
        v[i].h = h;
        if (n <= 2000 && cap < 64) {
            size_t same = 0;
            for (size_t j = 0; j < i; j++)
                same += (v[j].h & (cap - 1)) == (h & (cap - 1));
            if (same >= 8) {
                cap *= 2;
                thr = cap / 4 * 3;
            }
        }
        if (i + 1 > thr) {
            cap *= 2;
            thr = cap / 4 * 3;
        }
    }
    for (size_t i = 0; i < n; i++)
        v[i].slot = v[i].h & (cap - 1);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_entry);
}

static const char *render_blank(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Renders the (valid) JSON value at p as Object#toString prints what
 * AbstractXContentParser#readValue makes of it: maps "{k=v, ...}", lists
 * "[a, b]", strings as they are.  Returns the end of the value. */
static const char *render(const char *p, const char *e, struct buf *out)
{
    p = render_blank(p, e);
    if (p >= e)
        return p;
    if (*p == '"') {
        const char *q = p + 1;
        while (*q != '"')
            q += *q == '\\' ? 2 : 1;
        decode_string(p + 1, q, out);
        return q + 1;
    }
    if (*p == '[') {
        bool first = true;
        buf_putc(out, '[');
        p = render_blank(p + 1, e);
        while (p < e && *p != ']') {
            if (!first)
                buf_puts(out, ", ");
            first = false;
            p = render_blank(render(p, e, out), e);
            if (p < e && *p == ',')
                p++;
        }
        buf_putc(out, ']');
        return p + 1;
    }
    if (*p == '{') {
        struct entry *v = NULL;
        size_t n = 0, cap = 0;
        p = render_blank(p + 1, e);
        while (p < e && *p != '}') {
            struct buf k, val;
            const char *q = p + 1;
            while (*q != '"')
                q += *q == '\\' ? 2 : 1;
            buf_init(&k, BUF_NOMAX);
            buf_init(&val, BUF_NOMAX);
            decode_string(p + 1, q, &k);
            p = render_blank(q + 1, e) + 1; /* the ':' */
            p = render_blank(render(p, e, &val), e);
            if (p < e && *p == ',')
                p = render_blank(p + 1, e);
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                struct entry *nv = realloc(v, cap * sizeof(*v));
                if (!nv) {
                    buf_close(&k);
                    buf_close(&val);
                    break;
                }
                v = nv;
            }
            v[n].kl = k.len;
            v[n].vl = val.len;
            v[n].k = buf_take(&k);
            v[n].v = buf_take(&val);
            v[n].h = java_hash(v[n].k, v[n].kl);
            v[n].ins = n;
            n++;
        }
        hashmap_order(v, n);
        buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_puts(out, ", ");
            buf_append(out, v[i].k, v[i].kl);
            buf_putc(out, '=');
            buf_append(out, v[i].v, v[i].vl);
            free(v[i].k);
            free(v[i].v);
        }
        free(v);
        buf_putc(out, '}');
        return p + 1;
    }
    const char *q = p;
    bool frac = false;
    while (q < e && !strchr(",]} \t\n\r", *q)) {
        frac |= *q == '.' || *q == 'e' || *q == 'E';
        q++;
    }
    if (*p == 't' || *p == 'f' || *p == 'n')
        buf_append(out, p, (size_t)(q - p));
    else
        java_number(p, q, frac, out);
    return q;
}

static void scalar_text(const struct val *v, struct buf *out)
{
    switch (v->kind) {
    case VK_STRING: decode_string(v->p, v->e, out); break;
    case VK_INT:
    case VK_BIGINT: java_number(v->p, v->e, false, out); break;
    case VK_FLOAT: java_number(v->p, v->e, true, out); break;
    case VK_TRUE: buf_puts(out, "true"); break;
    case VK_FALSE: buf_puts(out, "false"); break;
    case VK_NULL: buf_puts(out, "null"); break;
    }
}

static const char *token_name(enum vkind k)
{
    switch (k) {
    case VK_STRING: return "VALUE_STRING";
    case VK_INT:
    case VK_BIGINT: return "VALUE_NUMBER_INT";
    case VK_FLOAT: return "VALUE_NUMBER_FLOAT";
    case VK_TRUE: return "VALUE_TRUE";
    case VK_FALSE: return "VALUE_FALSE";
    case VK_NULL: return "VALUE_NULL";
    }
    return "?";
}

/* ---- the mapping ---------------------------------------------------------- */

/* Character#isWhitespace (what String#isBlank and the engines' hasText test). */
static bool java_space(unsigned cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x2006) || (cp >= 0x2008 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x205F || cp == 0x3000;
}

static bool blank(const char *p, size_t n)
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
static struct field *lookup(const struct chk *c, const char *path, size_t n, bool *pending)
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
static void learn(const char *path, size_t n, struct field *f)
{
    if (map_get(&scr.pending, path, n) || !map_put(&scr.pending, path, n, f))
        field_free(f);
}

/* Two fields of one path new in the same document: each value made its own
 * dynamic mapper and merging them fails when the mapping update is built
 * (DocumentParser#createDynamicUpdate, FieldMapper/ObjectMapper#merge).  The
 * document is refused after it has been read whole. */
static void clash(struct chk *c, size_t plen, enum ftype was, enum ftype now)
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

/* What a new value is to the dynamic mapping: DynamicTemplate.XContentFieldType,
 * as DocumentParser#createBuilderFromDynamicValue (es8 DynamicFieldsBuilder
 * #createDynamicFieldFromValue) decides it: a JSON integer (Jackson INT, LONG
 * and BIG_INTEGER) is long, a number with a fraction or exponent double,
 * true/false boolean, an object object; a string is long or double when
 * numeric_detection is on and it parses as one, else date when
 * date_detection is on and it reads as a date (never a string that parses
 * as a number), else string. */
enum xft { XFT_OBJECT, XFT_STRING, XFT_LONG, XFT_DOUBLE, XFT_BOOLEAN, XFT_DATE, XFT_BINARY, XFT_N };
static const char *const xft_name[XFT_N] = { "object", "string", "long", "double", "boolean",
                                             "date", "binary" };
/* XContentFieldType#defaultMappingType: what {dynamic_type} stands for. */
static const char *const xft_mapping[XFT_N] = { "object", "text", "long", "float", "boolean",
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

static enum xft value_xft(const struct chk *c, const struct val *v)
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

static json_t *for_input_string(const char *type, const struct buf *s)
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
static int bad_field_named(struct chk *c, const char *name, size_t nlen, const char *type,
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
static int check_value(struct chk *c, const struct fld *f, const struct field *fd,
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
static int object_into_field(struct chk *c, size_t plen, enum ftype t, const char *open,
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

/* ---- metadata fields ------------------------------------------------------ */

/* The metadata fields each engine registers, by name and field type name.
 * es8: IndicesModule#initBuiltInMetadataMappers (8.x) plus the default
 * distribution's plugins: mapper-extras (_feature), x-pack core (_tier),
 * inference (_inference_fields).  os2: IndicesModule (2.x) plus mapper-extras
 * (_feature) and mapper-size (_size, prepackaged on Amazon OpenSearch
 * Service).  Only a top-level name is one (os2 looks up the field's full
 * path, es8 asks the root context only). */
struct meta {
    const char *name, *type;
    bool es8, os2;
};

static const struct meta metas[] = {
    { "_id", "_id", true, true },
    { "_index", "_index", true, true },
    { "_routing", "_routing", true, true },
    { "_source", "_source", true, true },
    { "_ignored", "_ignored", true, true },
    { "_version", "_version", true, true },
    { "_seq_no", "_seq_no", true, true },
    { "_nested_path", "_nested_path", true, true },
    { "_field_names", "_field_names", true, true },
    { "_data_stream_timestamp", "_data_stream_timestamp", true, true },
    { "_doc_count", "_doc_count", true, true },
    { "_feature", "_feature", true, true },
    { "_tsid", "_tsid", true, false },
    { "_ts_routing_hash", "_ts_routing_hash", true, false },
    { "_index_mode", "_index_mode", true, false },
    { "_ignored_source", "_ignored_source", true, false },
    { "_tier", "_tier", true, false },
    { "_inference_fields", "_inference_fields", true, false },
    { "_size", "integer", false, true },
};

static const struct meta *meta_field(enum flavor fl, const char *k, size_t n)
{
    if (n < 2 || *k != '_')
        return NULL;
    for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++)
        if ((fl == FL_ES8 ? metas[i].es8 : metas[i].os2) && strlen(metas[i].name) == n &&
            memcmp(metas[i].name, k, n) == 0)
            return &metas[i];
    return NULL;
}

/* MetadataFieldMapper#parseCreateField refuses every value, wrapped by
 * FieldMapper#parse; DocCountFieldMapper takes one positive integer (es8
 * intValue(false), os2 longValue(false); other numbers refused, stricter). */
static int meta_value(struct chk *c, struct fld *f, const struct val *v, const char *open,
                      const char *pre, const char *post)
{
    const struct meta *m = f->meta;
    struct loc at = open ? loc_at(c, open) : v->at, end = at;
    struct buf pv, r;
    json_t *cause = NULL;

    buf_init(&pv, BUF_NOMAX);
    buf_init(&r, BUF_NOMAX);
    if (open) {
        if (skip_value(c) < 0)
            goto out;
        end = loc_at(c, c->p - 1);
        buf_puts(&pv, pre);
        render(open, c->p, &pv);
        buf_puts(&pv, post);
    } else {
        scalar_text(v, &pv);
    }
    if (strcmp(m->name, "_doc_count") == 0) {
        if (++f->nvals > 1) {
            cause = errf("illegal_argument_exception", "Arrays are not allowed for field "
                         "[_doc_count].");
        } else if (open || v->kind != VK_INT) {
            cause = errf("parsing_exception", "Failed to parse object: expecting token of type "
                         "[VALUE_NUMBER] but found [%s]",
                         open ? "START_OBJECT" : token_name(v->kind));
        } else {
            long long n = strtoll(pv.ptr, NULL, 10);
            if (c->fl == FL_ES8 && n > INT_MAX)
                cause = jackson_cause(c, "input_coercion_exception", v->at, "Numeric value (%s) "
                                      "out of range of int (-2147483648 - 2147483647)", pv.ptr);
            else if (n <= 0 && c->fl == FL_ES8)
                cause = errf("illegal_argument_exception", "Field [_doc_count] must be a "
                             "positive integer. Value [%lld] is not allowed.", n);
            else if (n <= 0)
                cause = errf("illegal_argument_exception", "Field [_doc_count] must be a "
                             "positive integer.");
        }
    } else {
        if (c->fl == FL_ES8)
            buf_printf(&r, "[%d:%d] ", at.line, at.col);
        buf_printf(&r, "Field [%s] is a metadata field and cannot be added inside a document. "
                       "Use the index API request parameters.", m->name);
        cause = err_text(doc_error(c), &r, NULL);
    }
    if (cause)
        bad_field(c, f->plen, m->type, end, pv.ptr, pv.len, cause);
out:
    buf_close(&pv);
    buf_close(&r);
    return c->err ? -1 : 0;
}

/* ---- new fields: dynamic, strict, dynamic templates ----------------------- */

static json_t *define(enum flavor fl, struct map *into, const char *path, size_t plen,
                      const char *key, size_t klen, json_t *def, bool lenient,
                      struct field **out);
static bool known_type(enum flavor fl, const char *type);

/* The length of the parent's path (the root's is 0). */
static size_t parent_len(const char *path, size_t n)
{
    const char *dot = memrchr(path, '.', n);

    return dot ? (size_t)(dot - path) : 0;
}

/* Regex#simpleMatch: '*' matches any run of characters (compared byte by
 * byte, which for UTF-8 texts is the same as by char). */
static bool simple_match(const char *p, size_t pn, const char *s, size_t sn)
{
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;

    while (j < sn) {
        if (i < pn && p[i] == '*') {
            star = i++;
            mark = j;
        } else if (i < pn && p[i] == s[j]) {
            i++;
            j++;
        } else if (star != (size_t)-1) {
            i = star + 1;
            j = ++mark;
        } else {
            return false;
        }
    }
    while (i < pn && p[i] == '*')
        i++;
    return i == pn;
}

static bool any_match(const json_t *pats, const char *s, size_t n)
{
    size_t i;
    json_t *p;

    json_array_foreach(pats, i, p)
        if (simple_match(json_string_value(p), json_string_length(p), s, n))
            return true;
    return false;
}

/* DynamicTemplate#match: path_match and path_unmatch against the full path,
 * match and unmatch against the field's own name, then the value's kind. */
static bool tmpl_match(const struct tmpl *t, const char *path, size_t plen, const char *leaf,
                       size_t llen, enum xft k)
{
    if (t->path_match && !any_match(t->path_match, path, plen))
        return false;
    if (t->match && !any_match(t->match, leaf, llen))
        return false;
    if (t->path_unmatch && any_match(t->path_unmatch, path, plen))
        return false;
    if (t->unmatch && any_match(t->unmatch, leaf, llen))
        return false;
    return (t->types >> k) & 1u;
}

/* s with {name}, {dynamic_type} and {dynamicType} replaced (DynamicTemplate
 * #mappingForName). */
static json_t *subst_str(const char *s, size_t n, const char *name, size_t nl, const char *dt)
{
    struct buf b;
    json_t *j;

    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n;) {
        if (n - i >= 6 && memcmp(s + i, "{name}", 6) == 0) {
            buf_append(&b, name, nl);
            i += 6;
        } else if (n - i >= 14 && memcmp(s + i, "{dynamic_type}", 14) == 0) {
            buf_puts(&b, dt);
            i += 14;
        } else if (n - i >= 13 && memcmp(s + i, "{dynamicType}", 13) == 0) {
            buf_puts(&b, dt);
            i += 13;
        } else {
            buf_putc(&b, s[i++]);
        }
    }
    j = json_stringn(b.ptr ? b.ptr : "", b.len);
    buf_close(&b);
    return j;
}

static json_t *subst(const json_t *v, const char *name, size_t nl, const char *dt)
{
    json_t *out;

    if (json_is_string(v))
        return subst_str(json_string_value(v), json_string_length(v), name, nl, dt);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        out = json_array();
        json_array_foreach(v, i, e)
            json_array_append_new(out, subst(e, name, nl, dt));
        return out;
    }
    if (json_is_object(v)) {
        const char *k;
        size_t kl;
        json_t *e;
        out = json_object();
        json_object_keylen_foreach((json_t *)v, k, kl, e) {
            json_t *nk = subst_str(k, kl, name, nl, dt);
            json_object_setn_new(out, json_string_value(nk), json_string_length(nk),
                                 subst(e, name, nl, dt));
            json_decref(nk);
        }
        return out;
    }
    return json_deep_copy(v);
}

/* An error while a document is parsed that is not the parser's own: os2
 * DocumentParser#wrapInMapperParsingException keeps a MapperParsingException
 * and wraps others in "failed to parse"; es8 #wrapInDocumentParsingException
 * wraps everything, with the location.  Takes e. */
static int doc_exception(struct chk *c, struct loc at, json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *reason = json_string_value(json_object_get(e, "reason"));

    if (c->fl == FL_ES8) {
        json_t *w = errf(doc_error(c), "[%d:%d] failed to parse: %s", at.line, at.col,
                         reason ? reason : "");
        json_object_set_new(w, "caused_by", e);
        refuse(c, w);
    } else if (type && strcmp(type, "mapper_parsing_exception") == 0) {
        refuse(c, e);
    } else {
        json_t *w = errf(doc_error(c), "failed to parse");
        json_object_set_new(w, "caused_by", e);
        refuse(c, w);
    }
    return -1;
}

/* The field a dynamic template makes for a value of kind k at the path
 * [0..plen) whose last name is leaf (RootObjectMapper#findTemplateBuilder):
 * the template's mapping for that name, its type with {dynamic_type}
 * replaced, or the kind's default type when it has none.  Its properties,
 * for an object, join into (unless NULL).  NULL when the mapping cannot be
 * built: the document is refused. */
static struct field *from_template(struct chk *c, const struct tmpl *t, size_t plen,
                                   const char *leaf, size_t llen, enum xft k, struct loc at,
                                   struct map *into)
{
    const char *dt = xft_mapping[k];
    json_t *m = subst(t->mapping, leaf, llen, dt), *tn = json_object_get(t->mapping, "type");
    json_t *type, *err = NULL;
    struct field *f = NULL;

    /* DynamicTemplate#mappingType: the type as given (any JSON as Java prints
     * it), its placeholders replaced; a derived "text" with index
     * not_analyzed or no is a keyword */
    if (tn) {
        struct buf b;
        char *txt = json_dumps(tn, JSON_ENCODE_ANY | JSON_COMPACT);
        buf_init(&b, BUF_NOMAX);
        if (txt)
            render(txt, txt + strlen(txt), &b);
        free(txt);
        type = subst_str(b.ptr ? b.ptr : "", b.len, leaf, llen, dt);
        buf_close(&b);
    } else {
        type = json_string(dt);
    }
    if (strcmp(json_string_value(type), "text") == 0 &&
        !(json_is_string(tn) && strcmp(json_string_value(tn), "text") == 0)) {
        const char *ix = json_string_value(json_object_get(t->mapping, "index"));
        if (ix && (strcmp(ix, "not_analyzed") == 0 || strcmp(ix, "no") == 0)) {
            json_decref(type);
            type = json_string("keyword");
        }
    }
    json_object_set(m, "type", type);
    if (!known_type(c->fl, json_string_value(type)))
        err = errf("mapper_parsing_exception", "failed to find type parsed [%s] for [%.*s]",
                   json_string_value(type), (int)llen, leaf);
    else
        err = define(c->fl, into, scr.path.ptr, plen, leaf, llen, m, true, &f);
    json_decref(type);
    json_decref(m);
    if (err) {
        field_free(f);
        doc_exception(c, at, err);
        return NULL;
    }
    return f;
}

/* The field a new value of kind k makes at the path [0..plen): the first
 * dynamic template that matches it, else the engine's default for the kind
 * (DocumentParser#createBuilderFromDynamicValue: long, float, boolean, date,
 * text with a keyword sub-field, object).  probe: only to see whether it can
 * be built (nothing joins the mapping).  NULL when refused. */
static struct field *make_field(struct chk *c, size_t plen, enum xft k, struct loc at, bool probe)
{
    static const enum ftype defaults[XFT_N] = {
        [XFT_OBJECT] = FT_OBJECT, [XFT_STRING] = FT_TEXT, [XFT_LONG] = FT_LONG,
        [XFT_DOUBLE] = FT_FLOAT, [XFT_BOOLEAN] = FT_BOOLEAN, [XFT_DATE] = FT_DATE,
        [XFT_BINARY] = FT_TEXT,
    };
    const struct mapping *m = &c->ix->mapping;
    size_t p = parent_len(scr.path.ptr, plen), l0 = p ? p + 1 : 0;
    const char *leaf = scr.path.ptr + l0;
    struct field *f;

    for (size_t i = 0; i < m->ntmpl; i++)
        if (tmpl_match(&m->tmpl[i], scr.path.ptr, plen, leaf, plen - l0, k))
            return from_template(c, &m->tmpl[i], plen, leaf, plen - l0, k, at,
                                 probe ? NULL : &scr.pending);
    if (!(f = calloc(1, sizeof(*f)))) {
        refuse(c, err_obj("exception", "out of memory"));
        return NULL;
    }
    f->type = defaults[k];
    f->ignore_above = -1;
    return f;
}

/* The "dynamic" that decides for a new field under the object at the path
 * [0..plen) (os2 DocumentParser#dynamicOrDefault, es8 DocumentParserContext
 * #dynamic): the object's own, else the nearest parent's that is set, else
 * the root's (true by default).  os2 looks parents up in the mapping as it
 * was before the document: a parent new in it counts as true. */
static enum dyn dynamic_for(const struct chk *c, size_t plen)
{
    const struct mapping *m = &c->ix->mapping;
    bool pending, first = true;

    for (size_t n = plen; n > 0; n = parent_len(scr.path.ptr, n), first = false) {
        const struct field *fd = lookup(c, scr.path.ptr, n, &pending);
        if (!fd || (pending && !first && c->fl == FL_OS2))
            return DYN_TRUE;
        if (fd->dynamic != DYN_UNSET)
            return fd->dynamic;
    }
    return m->dynamic != DYN_UNSET ? m->dynamic : DYN_TRUE;
}

/* StrictDynamicMappingException: "within" the object at [0..within), the
 * root being [_doc] (RootObjectMapper's name). */
static int strict(struct chk *c, struct loc at, size_t within, const char *name, size_t nlen)
{
    struct buf r;

    buf_init(&r, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] ", at.line, at.col);
    buf_puts(&r, "mapping set to strict, dynamic introduction of [");
    buf_append(&r, name, nlen);
    buf_puts(&r, "] within [");
    if (within)
        buf_append(&r, scr.path.ptr, within);
    else
        buf_puts(&r, "_doc");
    buf_puts(&r, "] is not allowed");
    refuse(c, err_text("strict_dynamic_mapping_exception", &r, NULL));
    buf_close(&r);
    return -1;
}

/* Whether the field f, new in this document, may be mapped
 * (DocumentParser#parseObject, #parseArray, #parseDynamicValue; es8
 * #ensureNotStrict): 0 yes, 1 no (dynamic false: the value is kept in the
 * source, neither mapped nor checked), -1 refused (strict).  os2 names the
 * object being parsed for an object under a dotted key. */
static int may_map(struct chk *c, const struct fld *f, struct loc at, bool object)
{
    size_t p = parent_len(scr.path.ptr, f->plen), l0 = p ? p + 1 : 0;
    enum dyn d = dynamic_for(c, p);

    if (d == DYN_STRICT)
        return strict(c, at, c->fl == FL_OS2 && object ? f->base : p, scr.path.ptr + l0,
                      f->plen - l0);
    return d == DYN_FALSE;
}

/* null for a field not mapped maps nothing, but strict refuses it: os2
 * DocumentParser#parseNullValue asks only the object being parsed (its own
 * setting, not inherited) and names the key as written; es8 asks as for
 * any value. */
static int null_for_new_field(struct chk *c, const struct fld *f, struct loc at)
{
    bool pending;
    enum dyn d;

    if (c->fl == FL_ES8)
        return may_map(c, f, at, false) < 0 ? -1 : 0;
    if (f->base == 0) {
        d = c->ix->mapping.dynamic;
    } else {
        const struct field *o = lookup(c, scr.path.ptr, f->base, &pending);
        d = o ? o->dynamic : DYN_UNSET;
    }
    return d == DYN_STRICT ? strict(c, at, f->base, scr.keys.ptr + f->noff, f->nlen) : 0;
}

/* ---- the mapping limits ----------------------------------------------------
 * index.mapping.total_fields.limit and index.mapping.depth.limit, per index
 * (MapperService INDEX_MAPPING_*_LIMIT_SETTING).  Both engines check the
 * mapping a document's new fields would make (TransportShardBulkAction: the
 * preflight MapperService#merge, DocumentMapper#validate, MappingLookup
 * #checkLimits).  es8 also checks each new field as the document is parsed
 * (DocumentParserContext#addDynamicMapper); os2 counts the objects and
 * arrays of the document itself as it parses them (ParseContext
 * #checkFieldDepthLimit, #checkFieldArrayDepthLimit).                      */

/* What a mapper counts towards the total fields limit: itself and its
 * multi-fields (es8 Mapper#getTotalFieldsCount); a dynamic string brings its
 * keyword sub-field.  os2 counts what MappingLookup#fromMapping collects
 * through FieldMapper#iterator, which for text adds the _index_prefix and
 * _index_phrase fields (TextFieldMapper#iterator); es8 does not count them.
 * Metadata fields never count. */
static long field_count(const struct field *f, enum flavor fl)
{
    long n = 1 + (f->type == FT_TEXT && !f->def && !f->name) + (fl == FL_OS2 ? f->hidden : 0);

    for (size_t i = 0; i < f->nsub; i++)
        n += field_count(f->sub[i], fl);
    return n;
}

static long map_count(const struct map *m, enum flavor fl)
{
    long n = 0;

    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].val)
            n += field_count(m->slots[i].val, fl);
    return n;
}

/* MappingLookup#checkObjectDepthLimit: an object's depth is the number of
 * dots in its full path plus 2 (the root being 1), so a dotted name adds
 * depth as objects do, and arrays add none. */
static long object_depth(const char *path, size_t n)
{
    long dots = 0;

    for (size_t i = 0; i < n; i++)
        dots += path[i] == '.';
    return dots + 2;
}

static json_t *depth_exceeded(long limit, const char *path, size_t n)
{
    return errf("illegal_argument_exception", "Limit of mapping depth [%ld] has been exceeded "
                "due to object field [%.*s]", limit, (int)n, path);
}

/* es8 DocumentParserContext#addDynamicMapper for f, new at the path
 * [0..plen): an object deeper than the limit is refused, then what f counts
 * is added to what the fields new in this document counted so far, which
 * must fit what the mapping leaves (MappingLookup#checkFieldLimit, "while
 * adding new fields [n]") unless ignore_dynamic_beyond_limit leaves f
 * unmapped (its value is then not read: DynamicFieldsBuilder
 * #createDynamicField, DocumentParser#parseObjectDynamic).  Either error is
 * wrapped as the document parser wraps any (#wrapInDocumentParsingException).
 * 0: map it, 1: leave the value unmapped, -1: refused.  os2 checks nothing
 * here. */
static int add_dynamic(struct chk *c, size_t plen, const struct field *f, struct loc at)
{
    long size;

    if (c->fl != FL_ES8)
        return 0;
    if (f->type == FT_OBJECT && c->depth_limit > 0 &&
        object_depth(scr.path.ptr, plen) > c->depth_limit)
        return doc_exception(c, at, depth_exceeded(c->depth_limit, scr.path.ptr, plen));
    size = field_count(f, c->fl);
    if (c->existing < 0)
        c->existing = map_count(&c->ix->fields, c->fl);
    if (c->fields_limit - c->existing < c->added + size) {
        if (c->ix->lim.ignore_beyond)
            return 1;
        return doc_exception(c, at, errf("illegal_argument_exception", "Limit of total fields "
                                         "[%ld] has been exceeded while adding new fields [%ld]",
                                         c->fields_limit, c->added + size));
    }
    c->added += size;
    return 0;
}

/* os2: an object or array one level deeper than the document allows
 * (ParseContext.InternalParseContext: an OpenSearchParseException that
 * DocumentParser#wrapInMapperParsingException wraps). */
static int too_deep(struct chk *c, bool array)
{
    return doc_exception(c, loc_at(c, c->p),
                         errf("parse_exception", "The depth of the %sfield has exceeded the "
                              "allowed limit of [%ld]. This limit can be set by changing the "
                              "[index.mapping.depth.limit] index level setting.",
                              array ? "nested array " : "", c->depth_limit));
}

/* The members of an object that is parsed into the mapping.  os2
 * DocumentParser#innerParseObject counts it first (the root is 1) and
 * refuses one deeper than the limit; objects left unread (disabled,
 * dynamic false) are not counted. */
static int mapped_object(struct chk *c, size_t base)
{
    int rc;

    c->objdepth++;
    if (c->fl == FL_OS2 && c->depth_limit > 0 && c->objdepth > c->depth_limit)
        rc = too_deep(c, false);
    else
        rc = object(c, base, false);
    c->objdepth--;
    return rc;
}

/* The array at c->p, read by read(c, arg).  os2 DocumentParser#parseArray
 * counts every array it enters, whatever the objects around it (an array in
 * an object in an array is at depth 2), and refuses one deeper than the
 * limit. */
static int counted_array(struct chk *c, int (*read)(struct chk *, void *), void *arg)
{
    int rc;

    c->arrdepth++;
    if (c->fl == FL_OS2 && c->depth_limit > 0 && c->arrdepth > c->depth_limit)
        rc = too_deep(c, true);
    else
        rc = read(c, arg);
    c->arrdepth--;
    return rc;
}

static int skip_unmapped_each(struct chk *c, void *arg);

static int skip_unmapped_array(struct chk *c, void *arg)
{
    return array(c, skip_unmapped_each, NULL);
}

/* A value that maps nothing (dynamic false, an array of a disabled object):
 * read, not checked, but os2 DocumentParser#parseNonDynamicArray still hands
 * the arrays in it to #parseArray, which counts them (the objects in it are
 * skipped whole). */
static int skip_unmapped(struct chk *c)
{
    if (c->fl != FL_OS2 || *c->p != '[')
        return skip_value(c);
    return counted_array(c, skip_unmapped_array, NULL);
}

static int skip_unmapped_each(struct chk *c, void *arg)
{
    return skip_unmapped(c);
}

static int cmp_slotp(const void *a, const void *b)
{
    const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int d = memcmp(x->key, y->key, n);

    return d ? d : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The object fields of the mapping that fields (and add, when not NULL)
 * make, deeper than limit: the one MappingLookup#checkObjectDepthLimit meets
 * first as it iterates its objects (os2: a java.util.HashMap, modelled with
 * the paths put in sorted order; es8: Map#copyOf, whose order changes from
 * one JVM to the next: the same one is named). */
static json_t *deepest_first(const struct map *fields, const struct map *add, long limit)
{
    const struct map *maps[2] = { fields, add };
    const struct slot **v = NULL;
    struct entry *en = NULL;
    size_t n = 0, cap = 0, deep = 0;
    json_t *e = NULL;

    for (int m = 0; m < 2; m++)
        cap += maps[m] ? maps[m]->len : 0;
    if (!cap || !(v = malloc(cap * sizeof(*v))))
        return NULL;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; maps[m] && i < maps[m]->cap; i++) {
            const struct slot *sl = &maps[m]->slots[i];
            const struct field *f = sl->val;
            if (sl->key && f && f->type == FT_OBJECT && (m == 0 || !map_get(fields, sl->key,
                                                                             sl->klen))) {
                v[n++] = sl;
                deep += object_depth(sl->key, sl->klen) > limit;
            }
        }
    if (deep && (en = calloc(n, sizeof(*en)))) {
        qsort(v, n, sizeof(*v), cmp_slotp);
        for (size_t i = 0; i < n; i++)
            en[i] = (struct entry){ .k = v[i]->key, .kl = v[i]->klen, .ins = i,
                                    .h = java_hash(v[i]->key, v[i]->klen) };
        hashmap_order(en, n);
        for (size_t i = 0; !e && i < n; i++)
            if (object_depth(en[i].k, en[i].kl) > limit)
                e = depth_exceeded(limit, en[i].k, en[i].kl);
    }
    free(en);
    free(v);
    return e;
}

/* MappingLookup#checkLimits, with the limits lim, on the mapping fields
 * (and add) make: the total fields, then the depth (the nested and name
 * length limits are not modelled).  auto_update: add holds a document's new
 * fields, which es8 with ignore_dynamic_beyond_limit fits to what is left
 * (MapperService#getMaxFieldsToAddDuringMerge) instead of failing.  NULL, or
 * the IllegalArgumentException, which neither engine wraps. */
static json_t *limits_exceeded(const struct limits *lim, const struct map *fields,
                               const struct map *add, bool auto_update, enum flavor fl)
{
    long total = map_count(fields, fl) + (add ? map_count(add, fl) : 0);
    long depth = depth_limit(lim);

    if (total > lim->fields && !(auto_update && fl == FL_ES8 && lim->ignore_beyond))
        return errf("illegal_argument_exception", "Limit of total fields [%ld] has been exceeded",
                    lim->fields);
    return depth > 0 ? deepest_first(fields, add, depth) : NULL;
}

/* ---- field names and values ----------------------------------------------- */

static int value_each(struct chk *c, void *arg)
{
    return value(c, arg);
}

/* A concrete value for an object field (DocumentParser#parseObjectOrNested). */
static int concrete_into_object(struct chk *c, const struct fld *f, struct loc at)
{
    struct buf r;

    buf_init(&r, BUF_NOMAX);
    if (c->fl == FL_ES8)
        buf_printf(&r, "[%d:%d] ", at.line, at.col);
    buf_puts(&r, "object mapping for [");
    buf_append(&r, scr.path.ptr, f->plen);
    buf_puts(&r, "] tried to parse field [");
    buf_append(&r, scr.keys.ptr + f->noff, f->nlen);
    buf_puts(&r, "] as object, but found a concrete value");
    refuse(c, err_text(doc_error(c), &r, NULL));
    buf_close(&r);
    return -1;
}

/* An array of field f (counted_array counts it). */
static int array_of(struct chk *c, void *arg)
{
    struct fld *f = arg;
    bool pending;
    struct field *fd = f->meta ? NULL : lookup(c, scr.path.ptr, f->plen, &pending), *nf;
    int rc;

    if (!f->meta && !fd) {
        /* DocumentParser#parseArray: dynamic is asked for the array, then
         * a template for an object is looked up (and built) for it */
        struct loc at = loc_at(c, c->p);
        if ((rc = may_map(c, f, at, false)) != 0)
            return rc < 0 ? -1 : array(c, skip_unmapped_each, NULL);
        if (!(nf = make_field(c, f->plen, XFT_OBJECT, at, true)))
            return -1;
        field_free(nf);
    } else if (fd && fd->type == FT_OBJECT && fd->disabled) {
        return array(c, skip_unmapped_each, NULL);
    }
    return array(c, value_each, f);
}

/* One value for field f (arrays: each element, at any depth, goes to f).
 * A field not yet mapped is mapped by this document's first value for it
 * (a dynamic template's field or the default one); every later value of it
 * in the same document makes its own, and two of different types cannot be
 * merged (clash).  An object with "enabled": false takes anything unread. */
static int value(struct chk *c, struct fld *f)
{
    struct val v;
    bool pending = false;
    struct field *fd = NULL, *nf;
    int rc;

    if (!f->meta)
        fd = lookup(c, scr.path.ptr, f->plen, &pending);
    if (*c->p == '[')
        return counted_array(c, array_of, f);
    if (*c->p == '{') {
        const char *open = c->p;
        if (f->meta)
            return meta_value(c, f, NULL, open, "", "");
        if (!fd) {
            if ((rc = may_map(c, f, loc_at(c, open), true)) != 0)
                return rc < 0 ? -1 : skip_value(c);
            if (!(nf = make_field(c, f->plen, XFT_OBJECT, loc_at(c, open), false)))
                return -1;
            if ((rc = add_dynamic(c, f->plen, nf, loc_at(c, open))) != 0) {
                field_free(nf);
                return rc < 0 ? -1 : skip_value(c);
            }
            learn(scr.path.ptr, f->plen, nf);
            if (!(fd = lookup(c, scr.path.ptr, f->plen, &pending)))
                return -1;
            if (fd->type != FT_OBJECT)
                return object_into_field(c, f->plen, fd->type, open, "", "");
        } else if (fd->type != FT_OBJECT && !pending) {
            return object_into_field(c, f->plen, fd->type, open, "", "");
        } else if (fd->type != FT_OBJECT) {
            clash(c, f->plen, fd->type, FT_OBJECT);
        }
        if (fd->type == FT_OBJECT && fd->disabled)
            return skip_value(c);
        return mapped_object(c, f->plen);
    }
    if ((*c->p == '"' ? read_string_val(c, &v) : read_scalar(c, &v)) < 0)
        return -1;
    if (f->meta)
        return meta_value(c, f, &v, NULL, NULL, NULL);
    if (!fd && v.kind == VK_NULL)
        return null_for_new_field(c, f, v.at);
    if (v.kind == VK_NULL) /* null never maps and fits every field */
        return 0;
    if (!fd) {
        if ((rc = may_map(c, f, v.at, false)) != 0)
            return rc < 0 ? -1 : 0;
        if (!(nf = make_field(c, f->plen, value_xft(c, &v), v.at, false)))
            return -1;
        if ((rc = add_dynamic(c, f->plen, nf, v.at)) != 0) {
            field_free(nf);
            return rc < 0 ? -1 : 0;
        }
        learn(scr.path.ptr, f->plen, nf);
        if (!(fd = lookup(c, scr.path.ptr, f->plen, &pending)))
            return -1;
    } else if (pending) {
        /* another value of a field new in this document: its own mapper */
        enum ftype nt;
        if (!(nf = make_field(c, f->plen, value_xft(c, &v), v.at, true)))
            return -1;
        nt = nf->type;
        field_free(nf);
        if (nt != fd->type) {
            clash(c, f->plen, fd->type, nt);
            return 0;
        }
    }
    if (fd->type == FT_OBJECT)
        return fd->disabled ? 0 : concrete_into_object(c, f, v.at);
    return check_value(c, f, fd, &v);
}

/* The name rules (es8: DotExpandingXContentParser.WrappingParser#expandDots
 * and DocumentParser#innerParseObject; os2: DocumentParser#splitAndValidatePath).
 * Trailing dots are dropped as Java's String#split drops trailing empty
 * strings: "a." is the field a.  Returns the length without them. */
static int check_name(struct chk *c, struct loc at, const char *k, size_t n, size_t base,
                      size_t *used)
{
    size_t end = n, s;
    bool dots = memchr(k, '.', n) != NULL;

    *used = n;
    if (!dots) {
        if (n == 0)
            return bad_name(c, at, "field name cannot be an empty string");
        if (c->fl == FL_ES8 && blank(k, n)) {
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_printf(&r, "[%d:%d] Field name cannot contain only whitespace: [", at.line,
                       at.col);
            if (base) {
                buf_append(&r, scr.path.ptr, base);
                buf_putc(&r, '.');
            }
            buf_append(&r, k, n);
            buf_putc(&r, ']');
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            return -1;
        }
        return 0;
    }
    while (end > 0 && k[end - 1] == '.')
        end--;
    if (end == 0)
        return bad_name(c, at, c->fl == FL_ES8 ? "field name cannot contain only dots"
                                               : "field name cannot contain only the "
                                                 "character [.]");
    for (s = 0; s <= end;) {
        const char *q = memchr(k + s, '.', end - s);
        size_t e2 = q ? (size_t)(q - k) : end, len = e2 - s;
        if (len == 0 || blank(k + s, len)) {
            /* es8 swaps the two texts (WrappingParser#throwOnBlankOrEmptyPart) */
            bool ws = (len != 0) == (c->fl == FL_OS2);
            if (c->fl == FL_ES8)
                return ws ? bad_name(c, at, "field name cannot contain only whitespace: ['%.*s']",
                                     (int)n, k)
                          : bad_name(c, at, "field name starting or ending with a [.] makes "
                                            "object resolution ambiguous: [%.*s]", (int)n, k);
            return ws ? bad_name(c, at, "object field cannot contain only whitespace: ['%.*s']",
                                 (int)n, k)
                      : bad_name(c, at, "object field starting or ending with a [.] makes object "
                                        "resolution ambiguous: [%.*s]", (int)n, k);
        }
        s = e2 + 1;
    }
    *used = end;
    return 0;
}

static void path_push(size_t base, const char *seg, size_t n)
{
    buf_truncate(&scr.path, base);
    if (base)
        buf_putc(&scr.path, '.');
    buf_append(&scr.path, seg, n);
}

/* One member of the object whose path is scr.path[0..base). */
static int member(struct chk *c, size_t base, struct loc kat, size_t koff, size_t klen)
{
    /* k stays valid until the value is read (reading it may grow scr.keys) */
    const char *k = scr.keys.ptr + koff;
    size_t used, s = 0;
    struct fld f = { 0 };
    int rc = 0;

    if (check_name(c, kat, k, klen, base, &used) < 0)
        return -1;
    if (base == 0 && c->poison && !c->poison_at && strlen(c->poison) == klen &&
        memcmp(c->poison, k, klen) == 0)
        c->poison_at = c->p;
    if (base == 0) {
        const char *dot = memchr(k, '.', used);
        size_t first = dot ? (size_t)(dot - k) : used;
        /* os2 asks for the whole (dotted) name, es8 for the first part */
        f.meta = meta_field(c->fl, k, c->fl == FL_ES8 ? first : klen);
        if (!f.meta && c->fl == FL_OS2 && dot && meta_field(c->fl, k, first)) {
            /* DocumentParser#getDynamicParentMapper: a metadata mapper is in the way */
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_puts(&r, "Could not dynamically add mapping for field [");
            buf_append(&r, k, used);
            buf_puts(&r, "]. Existing mapping for [");
            buf_append(&r, k, first);
            buf_printf(&r, "] must be of type object but found [%s].",
                       meta_field(c->fl, k, first)->type);
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            return -1;
        }
        if (f.meta && dot) { /* es8: "_id.x" gives the _id mapper an object {x=...} */
            struct buf pre, post;
            buf_init(&pre, BUF_NOMAX);
            buf_init(&post, BUF_NOMAX);
            for (const char *q = dot; q; q = memchr(q + 1, '.', (size_t)(k + used - q - 1))) {
                const char *nx = memchr(q + 1, '.', (size_t)(k + used - q - 1));
                buf_putc(&pre, '{');
                buf_append(&pre, q + 1, (size_t)((nx ? nx : k + used) - q - 1));
                buf_putc(&pre, '=');
                buf_putc(&post, '}');
                if (!nx)
                    break;
            }
            path_push(0, k, first);
            f.plen = first;
            rc = meta_value(c, &f, NULL, c->p, pre.ptr, post.ptr);
            buf_close(&pre);
            buf_close(&post);
            buf_truncate(&scr.path, 0);
            return rc < 0 || c->err ? -1 : 0;
        }
    }
    /* the parts before the last are objects (DocumentParser
     * #getDynamicParentMapper; es8 expands the dots into objects) */
    for (;;) {
        const char *q = memchr(k + s, '.', used - s);
        size_t e2 = q ? (size_t)(q - k) : used, prev = scr.path.len;
        path_push(scr.path.len, k + s, e2 - s);
        if (!q)
            break;
        bool pending, fresh = false;
        struct field *fd = lookup(c, scr.path.ptr, scr.path.len, &pending);
        if (!fd) {
            struct loc at = loc_at(c, c->p);
            enum dyn d = dynamic_for(c, prev);
            struct field *nf;
            if (d == DYN_STRICT) {
                rc = strict(c, at, prev, k + s, e2 - s);
                break;
            }
            if (d == DYN_FALSE) { /* no parent for it: the value maps nothing */
                rc = skip_unmapped(c) < 0 ? -1 : 1;
                break;
            }
            if (!(nf = make_field(c, scr.path.len, XFT_OBJECT, at, false))) {
                rc = -1;
                break;
            }
            if ((rc = add_dynamic(c, scr.path.len, nf, at)) != 0) {
                field_free(nf);
                rc = rc < 0 || skip_value(c) < 0 ? -1 : 1;
                break;
            }
            learn(scr.path.ptr, scr.path.len, nf);
            if (!(fd = lookup(c, scr.path.ptr, scr.path.len, &pending))) {
                rc = -1;
                break;
            }
            fresh = true;
        }
        enum ftype t = fd->type;
        if (t == FT_OBJECT && fd->disabled) { /* DocumentParser#containsDisabledObjectMapper */
            rc = skip_value(c) < 0 ? -1 : 1;
            break;
        } else if (t != FT_OBJECT && pending && !fresh) {
            clash(c, scr.path.len, t, FT_OBJECT);
        } else if (t != FT_OBJECT && c->fl == FL_OS2 && !fresh) {
            struct buf r;
            buf_init(&r, BUF_NOMAX);
            buf_puts(&r, "Could not dynamically add mapping for field [");
            buf_append(&r, k, used);
            buf_puts(&r, "]. Existing mapping for [");
            buf_append(&r, scr.path.ptr, scr.path.len);
            buf_printf(&r, "] must be of type object but found [%s].", ftype_name[t]);
            refuse(c, err_text(doc_error(c), &r, NULL));
            buf_close(&r);
            rc = -1;
            break;
        } else if (t != FT_OBJECT) {
            /* es8 (and a template that made the part a value field): the dots
             * expand to an object the field mapper gets */
            struct buf pre, post;
            buf_init(&pre, BUF_NOMAX);
            buf_init(&post, BUF_NOMAX);
            for (const char *r = q; r; r = memchr(r + 1, '.', (size_t)(k + used - r - 1))) {
                const char *nx = memchr(r + 1, '.', (size_t)(k + used - r - 1));
                buf_putc(&pre, '{');
                buf_append(&pre, r + 1, (size_t)((nx ? nx : k + used) - r - 1));
                buf_putc(&pre, '=');
                buf_putc(&post, '}');
                if (!nx)
                    break;
            }
            object_into_field(c, scr.path.len, t, c->p, pre.ptr, post.ptr);
            buf_close(&pre);
            buf_close(&post);
            rc = -1;
            break;
        }
        s = e2 + 1;
    }
    if (rc == 0) {
        const char *last = memrchr(k, '.', used);
        f.plen = scr.path.len;
        f.base = base;
        /* the name in "tried to parse field [..]": es8 the last part, os2 the key */
        f.noff = c->fl == FL_ES8 && last ? koff + (size_t)(last + 1 - k) : koff;
        f.nlen = c->fl == FL_ES8 && last ? (size_t)(k + used - last - 1) : klen;
        rc = value(c, &f);
    }
    buf_truncate(&scr.path, base);
    return rc < 0 ? -1 : 0;
}

/* Checks the source of an index/create (or the result of an update) against
 * the engine's rules and ix's mapping, as DocumentParser#parseDocument does.
 * NULL when the document is parsed: the fields it brings join the mapping
 * then (before any version check, as in the engines), and *index_err gets
 * what Lucene would refuse when indexing it (reported after the version
 * check), or NULL.  Else the error. */
static json_t *check_source(struct index *ix, const char *src, size_t len, const char *id,
                            json_t **index_err)
{
    struct chk c = { .p = src, .e = src + len, .row = src, .line = 1,
                     .fl = srv.set.flavor, .ix = ix, .id = id,
                     .poison = srv.set.poison_field, .depth_limit = depth_limit(&ix->lim),
                     .fields_limit = ix->lim.fields, .existing = -1 };
    char reason[512];
    json_t *err;

    if (scr.path.max == 0) { /* never NULL, even when empty */
        buf_init(&scr.path, BUF_NOMAX);
        buf_init(&scr.keys, BUF_NOMAX);
        buf_init(&scr.text, BUF_NOMAX);
        if (buf_reserve(&scr.path, 256) < 0 || buf_reserve(&scr.keys, 4096) < 0 ||
            buf_reserve(&scr.text, 256) < 0)
            return err_obj("exception", "out of memory");
    }
    *index_err = NULL;
    buf_reset(&scr.path);
    buf_reset(&scr.keys);
    scr.gen++;
    scr.dupn = 0;
    map_clear(&scr.pending, field_free);
    /* DocumentParser#parseDocument, #validateStart */
    if (len == 0)
        return errf(doc_error(&c), "%sfailed to parse, document is empty",
                    c.fl == FL_ES8 ? "[0:0] " : "");
    skip_blank(&c);
    if (c.p >= c.e || *c.p != '{')
        return errf(doc_error(&c), "Malformed content, must start with an object");
    if (mapped_object(&c, 0) == 0) {
        skip_blank(&c);
        if (c.p < c.e && !c.err) /* DocumentParser#validateEnd */
            bad_json(&c, c.p, "Unexpected character after the document: Malformed content, "
                              "found extra data after parsing");
    }
    if (c.err) {
        json_decref(c.late);
        json_decref(c.index_err);
        return c.err;
    }
    if (c.poison_at) {
        char preview[PREVIEW_MAX + 1];
        const char *v = c.poison_at;
        struct chk pc = c;
        size_t n;
        json_decref(c.late);
        json_decref(c.index_err);
        pc.p = v;
        pc.err = NULL;
        skip_value(&pc);
        n = (size_t)(pc.p - v);
        if (n && *v == '"') {
            v++;
            n = n >= 2 ? n - 2 : 0;
        }
        if (n > PREVIEW_MAX)
            n = PREVIEW_MAX;
        memcpy(preview, v, n);
        preview[n] = '\0';
        snprintf(reason, sizeof(reason),
                 "failed to parse field [%s] of type [long] in document with id '%s'. "
                 "Preview of field's value: '%s'", c.poison, id, preview);
        err = err_obj("mapper_parsing_exception", reason);
        snprintf(reason, sizeof(reason), "For input string: \"%s\"", preview);
        json_object_set_new(err, "caused_by", err_obj("illegal_argument_exception", reason));
        return err;
    }
    if (c.late) {
        json_decref(c.index_err);
        return c.late;
    }
    /* the mapping update the new fields make must fit the index's limits */
    if (scr.pending.len &&
        (err = limits_exceeded(&ix->lim, &ix->fields, &scr.pending, true, c.fl))) {
        json_decref(c.index_err);
        return err;
    }
    for (size_t i = 0; i < scr.pending.cap; i++) {
        struct slot *sl = &scr.pending.slots[i];
        if (sl->key && sl->val && !map_get(&ix->fields, sl->key, sl->klen) &&
            map_put(&ix->fields, sl->key, sl->klen, sl->val))
            sl->val = NULL; /* the mapping has it now */
    }
    *index_err = c.index_err;
    return NULL;
}

static int item_ok(struct item_res *res, int64_t version, const char *result, int64_t seq_no,
                   int status)
{
    res->version = version;
    res->result = result;
    res->seq_no = seq_no;
    res->status = status;
    return 0;
}

static int item_fail(struct item_res *res, int status, json_t *err)
{
    res->status = status;
    res->error = err;
    return 0;
}

/* The item as ES prints it (the object under the op name). */
static json_t *item_to_json(const struct item_res *res, bool with_status)
{
    json_t *o;

    if (res->error) {
        o = json_pack("{s:s, s:s, s:i, s:O}", "_index", res->index, "_id", res->id, "status",
                      res->status, "error", res->error);
        return o;
    }
    o = json_pack("{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i}, s:I, s:i}", "_index", res->index,
                  "_id", res->id, "_version", (json_int_t)res->version, "result", res->result,
                  "_shards", "total", 2, "successful", 1, "failed", 0, "_seq_no",
                  (json_int_t)res->seq_no, "_primary_term", 1);
    if (with_status)
        json_object_set_new(o, "status", json_integer(res->status));
    return o;
}

static int store_doc(struct index *ix, struct doc **dp, const char *id, size_t id_len,
                     const char *src, size_t len)
{
    struct doc *d = *dp;
    char *copy = NULL;

    if (!srv.set.discard && src) {
        copy = malloc(len + 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, src, len);
        copy[len] = '\0';
    }
    if (!d) {
        d = calloc(1, sizeof(*d));
        if (!d || !(d->id = map_put(&ix->docs, id, id_len, d))) {
            free(d);
            free(copy);
            return -ENOMEM;
        }
        d->id_len = id_len;
        *dp = d;
    }
    free(d->source);
    d->source = copy;
    d->source_len = copy ? len : 0;
    return 0;
}

/* Versioning check for index/create/delete.  Returns NULL when the write may
 * proceed, with *newv set; else the conflict error. */
static json_t *version_check(const struct op *o, struct index *ix, const struct doc *d,
                             enum doc_state ds, int64_t *newv)
{
    char tail[256];
    int64_t cur = ds == DS_ABSENT ? 0 : d->version;

    if (o->if_seq_no != -2) {
        int64_t cs = ds == DS_PRESENT ? d->seq_no : -2;
        if (cs != o->if_seq_no || o->if_primary_term != 1) {
            if (ds == DS_PRESENT)
                snprintf(tail, sizeof(tail),
                         "required seqNo [%" PRId64 "], primary term [%" PRId64
                         "]. current document has seqNo [%" PRId64 "] and primary term [1]",
                         o->if_seq_no, o->if_primary_term, cs);
            else
                snprintf(tail, sizeof(tail),
                         "required seqNo [%" PRId64 "], primary term [%" PRId64
                         "]. but no document was found", o->if_seq_no, o->if_primary_term);
            return conflict_error(ix, o->id, tail);
        }
    }
    if (o->type == OP_CREATE && ds == DS_PRESENT) {
        snprintf(tail, sizeof(tail), "document already exists (current version [%" PRId64 "])",
                 cur);
        return conflict_error(ix, o->id, tail);
    }
    switch (o->vt) {
    case VT_INTERNAL:
        *newv = cur + 1;
        return NULL;
    case VT_EXTERNAL:
        if (ds != DS_ABSENT && o->version <= cur) {
            snprintf(tail, sizeof(tail),
                     "current version [%" PRId64 "] is higher or equal to the one provided [%" PRId64
                     "]", cur, o->version);
            return conflict_error(ix, o->id, tail);
        }
        break;
    case VT_EXTERNAL_GTE:
        if (ds != DS_ABSENT && o->version < cur) {
            snprintf(tail, sizeof(tail),
                     "current version [%" PRId64 "] is higher than the one provided [%" PRId64 "]",
                     cur, o->version);
            return conflict_error(ix, o->id, tail);
        }
        break;
    }
    *newv = o->version;
    return NULL;
}

/* Merges the "doc" of an update into the stored source (top-level keys,
 * recursively for objects, as ES does). */
static void merge_into(json_t *dst, json_t *src)
{
    const char *k;
    json_t *v;

    json_object_foreach(src, k, v) {
        json_t *cur = json_object_get(dst, k);
        if (json_is_object(cur) && json_is_object(v))
            merge_into(cur, v);
        else
            json_object_set(dst, k, v);
    }
}

/* Executes one action, filling res (whose op, index and id the caller set).
 * Returns 0. */
static int op_execute(struct op *o, struct item_res *res)
{
    char why[600];
    struct index *ix;
    struct doc *d;
    enum doc_state ds;
    uint64_t now = now_ms();
    json_t *err = NULL;
    int64_t newv = 0;

    if (!valid_index_name(o->index, why, sizeof(why))) {
        err = json_pack("{s:s, s:s, s:s, s:s}", "type", "invalid_index_name_exception", "reason",
                        why, "index_uuid", "_na_", "index", o->index);
        return item_fail(res, 400, err);
    }
    ix = index_get(o->index);
    if (!ix && !(ix = index_create(o->index))) {
        return item_fail(res, 500, err_obj("exception", "out of memory"));
    }
    d = map_get(&ix->docs, o->id, o->id_len);
    ds = doc_state(d, now);

    if (o->type == OP_UPDATE) {
        json_error_t jerr;
        json_t *body = json_loadb(o->src, o->src_len, 0, &jerr);
        json_t *doc = json_object_get(body, "doc"), *upsert = json_object_get(body, "upsert");
        json_t *result_doc = NULL;
        const char *result;
        bool as_upsert = json_is_true(json_object_get(body, "doc_as_upsert"));

        if (!json_is_object(body) || json_object_get(body, "script")) {
            err = err_obj(body ? "illegal_argument_exception" : "x_content_parse_exception",
                          body ? "scripted updates are not supported by the search double"
                               : jerr.text);
            json_decref(body);
            return item_fail(res, 400, err);
        }
        if (ds == DS_PRESENT) {
            json_t *cur = d->source ? json_loadb(d->source, d->source_len, 0, &jerr)
                                    : json_object();
            if (!cur)
                cur = json_object();
            json_t *before = json_deep_copy(cur);
            if (json_is_object(doc))
                merge_into(cur, doc);
            if (json_equal(before, cur)) {
                json_decref(before);
                json_decref(cur);
                json_decref(body);
                return item_ok(res, d->version, "noop", d->seq_no, 200);
            }
            json_decref(before);
            result_doc = cur;
            result = "updated";
        } else if (as_upsert && json_is_object(doc)) {
            result_doc = json_incref(doc);
            result = "created";
        } else if (json_is_object(upsert)) {
            result_doc = json_incref(upsert);
            result = "created";
        } else {
            json_decref(body);
            snprintf(why, sizeof(why), "[%s]: document missing", o->id);
            err = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "document_missing_exception",
                            "reason", why, "index_uuid", ix->uuid, "shard", "0", "index",
                            ix->name);
            return item_fail(res, 404, err);
        }
        json_decref(body);
        char *text = json_dumps(result_doc, JSON_COMPACT);
        json_t *ierr = NULL;
        json_decref(result_doc);
        if (!text || (err = check_source(ix, text, strlen(text), o->id, &ierr)) != NULL ||
            ierr) {
            free(text);
            return item_fail(res, 400, err ? err : ierr ? ierr : err_obj("exception", "oom"));
        }
        newv = ds == DS_PRESENT ? d->version + 1 : (ds == DS_DELETED ? d->version + 1 : 1);
        if (store_doc(ix, &d, o->id, o->id_len, text, strlen(text)) < 0) {
            free(text);
            return item_fail(res, 500, err_obj("exception", "out of memory"));
        }
        free(text);
        d->version = newv;
        d->deleted = false;
        d->seq_no = ix->seq_no++;
        return item_ok(res, newv, result, d->seq_no, ds == DS_PRESENT ? 200 : 201);
    }

    /* The shard parses the source (and updates the mapping) before the
     * engine checks versions (IndexShard#applyIndexOperation: prepareIndex,
     * then Engine#index), so a bad document is a 400 even when its version
     * would conflict, and a conflicting one still maps its new fields. */
    json_t *ierr = NULL;
    if (o->type != OP_DELETE && (err = check_source(ix, o->src, o->src_len, o->id, &ierr)))
        return item_fail(res, 400, err);
    if ((err = version_check(o, ix, d, ds, &newv)) != NULL) {
        json_decref(ierr);
        return item_fail(res, 409, err);
    }
    /* Lucene refuses a term when the engine indexes the parsed document
     * (InternalEngine#index: after the version check; the mapping keeps
     * the document's new fields) */
    if (ierr)
        return item_fail(res, 400, ierr);
    if (o->type == OP_DELETE) {
        bool found = ds == DS_PRESENT;
        if (!d && store_doc(ix, &d, o->id, o->id_len, NULL, 0) < 0) {
            return item_fail(res, 500, err_obj("exception", "out of memory"));
        }
        free(d->source);
        d->source = NULL;
        d->source_len = 0;
        d->version = newv;
        d->deleted = true;
        d->deleted_ms = now;
        d->seq_no = ix->seq_no++;
        return item_ok(res, newv, found ? "deleted" : "not_found", d->seq_no, found ? 200 : 404);
    }
    if (store_doc(ix, &d, o->id, o->id_len, o->src, o->src_len) < 0) {
        return item_fail(res, 500, err_obj("exception", "out of memory"));
    }
    d->version = newv;
    d->deleted = false;
    d->seq_no = ix->seq_no++;
    return item_ok(res, newv, ds == DS_PRESENT ? "updated" : "created", d->seq_no,
                   ds == DS_PRESENT ? 200 : 201);
}

/* ------------------------------------------------------------------------ */
/* Explicit mappings: the body of PUT /<index>
 *
 * {"settings": ..., "mappings": {...}} as the engines' mapping parsers read
 * it (DocumentMapperParser, RootObjectMapper.TypeParser, ObjectMapper
 * .TypeParser#parseProperties, ParametrizedFieldMapper.Builder#parse,
 * TypeParsers#parseMultiField, DynamicTemplate#parse), with their error
 * texts.  Field types the double models: object, text, keyword, long,
 * integer, short, byte, double, float, boolean, date.  A valid mapping the
 * double cannot model (other types, copy_to, coerce false, date formats,
 * runtime fields, ...) is refused with the type below, never silently taken.
 * Of the settings only the mapping limits are read (index settings, below). */

#define UNMODELLED "search_double_unsupported_exception"

/* The field types each engine registers (core and the plugins of a default
 * distribution / Amazon OpenSearch Service) beyond those modelled. */
static const char *const other_types_both[] = {
    "nested", "half_float", "scaled_float", "unsigned_long", "date_nanos", "binary", "ip",
    "geo_point", "geo_shape", "completion", "search_as_you_type", "token_count", "rank_feature",
    "rank_features", "alias", "join", "percolator", "integer_range", "long_range", "float_range",
    "double_range", "date_range", "ip_range", "constant_keyword", "wildcard", "match_only_text",
    "murmur3", "icu_collation_keyword", "annotated_text", NULL
};
static const char *const other_types_os2[] = { "flat_object", "knn_vector", "xy_point",
                                               "xy_shape", "derived", "star_tree", NULL };
static const char *const other_types_es8[] = {
    "flattened", "dense_vector", "sparse_vector", "semantic_text", "aggregate_metric_double",
    "histogram", "version", "point", "shape", "counted_keyword", "passthrough", NULL
};

static bool in_list(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

static enum ftype modelled_type(const char *type)
{
    for (int t = FT_OBJECT; t < FT_N; t++)
        if (strcmp(ftype_name[t], type) == 0)
            return (enum ftype)t;
    return FT_NONE;
}

static bool known_type(enum flavor fl, const char *type)
{
    return modelled_type(type) != FT_NONE || in_list(other_types_both, type) ||
           in_list(fl == FL_ES8 ? other_types_es8 : other_types_os2, type);
}

static json_t *unmodelled(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *unmodelled(const char *fmt, ...)
{
    struct buf b;
    va_list ap;
    json_t *e;

    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "the search double does not model ");
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    e = err_text(UNMODELLED, &b, NULL);
    buf_close(&b);
    return e;
}

/* A mapping value as Java prints it (Object#toString of what the parser made
 * of it: strings as they are, maps {k=v}, lists [a, b]). */
static void java_str(const json_t *v, struct buf *out)
{
    char *t;

    if (json_is_string(v)) {
        buf_append(out, json_string_value(v), json_string_length(v));
        return;
    }
    if (!(t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)))
        return;
    render(t, t + strlen(t), out);
    free(t);
}

/* XContentMapValues#nodeBooleanValue(node, name): a JSON boolean or the
 * strings true and false (Booleans#parseBoolean). */
static json_t *node_bool(const json_t *v, const char *name, bool *out)
{
    struct buf s, r;
    json_t *e;

    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return NULL;
    }
    buf_init(&s, BUF_NOMAX);
    java_str(v, &s);
    if (s.len == 4 && memcmp(s.ptr, "true", 4) == 0)
        *out = true;
    else if (s.len == 5 && memcmp(s.ptr, "false", 5) == 0)
        *out = false;
    else
        goto bad;
    buf_close(&s);
    return NULL;
bad:
    buf_init(&r, BUF_NOMAX);
    buf_puts(&r, "Failed to parse value [");
    buf_append(&r, s.ptr, s.len);
    buf_puts(&r, "] as only [true] or [false] are allowed.");
    e = err_text("illegal_argument_exception", &r, NULL);
    if (name) {
        json_t *w = errf("illegal_argument_exception", "Could not convert [%s] to boolean", name);
        json_object_set_new(w, "caused_by", e);
        e = w;
    }
    buf_close(&r);
    buf_close(&s);
    return e;
}

/* DocumentMapperParser#checkNoRemainingFields: "<what> has unsupported
 * parameters:  [k : v] [k : v]" for the keys of obj not in taken. */
static json_t *remaining(const char *what, const json_t *obj, const char *const *taken)
{
    struct buf r;
    const char *k;
    json_t *v, *e = NULL;
    bool left = false;

    buf_init(&r, BUF_NOMAX);
    buf_puts(&r, what);
    buf_puts(&r, " has unsupported parameters: ");
    json_object_foreach((json_t *)obj, k, v) {
        if (in_list(taken, k))
            continue;
        buf_printf(&r, " [%s : ", k);
        java_str(v, &r);
        buf_putc(&r, ']');
        left = true;
    }
    if (left)
        e = err_text("mapper_parsing_exception", &r, NULL);
    buf_close(&r);
    return e;
}

/* "dynamic" (ObjectMapper.TypeParser#parseObjectOrDocumentTypeProperties):
 * strict in any case, else a boolean. */
static json_t *parse_dyn(enum flavor fl, const json_t *v, enum dyn *out)
{
    struct buf s;
    bool b;
    json_t *e = NULL;

    buf_init(&s, BUF_NOMAX);
    java_str(v, &s);
    if (s.ptr && strcasecmp(s.ptr, "strict") == 0)
        *out = DYN_STRICT;
    else if (s.ptr && (fl == FL_ES8 ? strcasecmp(s.ptr, "runtime") == 0
                                    : (strcasecmp(s.ptr, "strict_allow_templates") == 0 ||
                                       strcasecmp(s.ptr, "false_allow_templates") == 0)))
        e = unmodelled("\"dynamic\": \"%s\"", s.ptr);
    else if (!(e = node_bool(v, "dynamic.dynamic", &b)))
        *out = b ? DYN_TRUE : DYN_FALSE;
    buf_close(&s);
    return e;
}

/* The parameters each modelled field type declares (ParametrizedFieldMapper
 * Builder#getParameters of NumberFieldMapper, KeywordFieldMapper,
 * TextFieldMapper, BooleanFieldMapper, DateFieldMapper), os2 and es8
 * together; os2 also takes boost and the parameters every field once
 * parsed (Builder#isDeprecatedParameter). */
static const char *const params_number[] = { "index", "doc_values", "store", "ignore_malformed",
                                             "coerce", "null_value", "meta", NULL };
static const char *const params_keyword[] = {
    "index", "doc_values", "store", "null_value", "ignore_above", "index_options",
    "eager_global_ordinals", "norms", "similarity", "normalizer", "split_queries_on_whitespace",
    "meta", NULL
};
static const char *const params_text[] = {
    "index", "store", "index_options", "norms", "term_vector", "analyzer", "search_analyzer",
    "search_quote_analyzer", "position_increment_gap", "similarity", "fielddata",
    "fielddata_frequency_filter", "eager_global_ordinals", "index_phrases", "index_prefixes",
    "meta", NULL
};
static const char *const params_boolean[] = { "index", "doc_values", "store", "null_value",
                                              "meta", NULL };
static const char *const params_date[] = { "index", "doc_values", "store", "format", "locale",
                                           "null_value", "ignore_malformed", "meta", NULL };
static const char *const params_os2_any[] = { "store", "meta", "boost", "index", "doc_values",
                                              "index_options", "similarity", NULL };
static const char *const params_es8_scripts[] = { "script", "on_script_error", NULL };
static const char *const params_es8_ts[] = { "time_series_dimension", "time_series_metric",
                                             NULL };

static const char *const *params_of(enum ftype t)
{
    switch (t) {
    case FT_KEYWORD: return params_keyword;
    case FT_TEXT: return params_text;
    case FT_BOOLEAN: return params_boolean;
    case FT_DATE: return params_date;
    default: return params_number;
    }
}

static json_t *define_props(enum flavor fl, struct map *into, const char *path, size_t plen,
                            const json_t *props);

/* An object's definition (ObjectMapper.TypeParser#parse).  lenient: keys it
 * does not know are ignored, as when a dynamic template's mapping makes it
 * (RootObjectMapper#findTemplateBuilder checks nothing left). */
static json_t *define_object(enum flavor fl, struct map *into, const char *path, size_t plen,
                             const char *key, size_t klen, json_t *def, bool lenient,
                             struct field *f)
{
    /* os2 still takes include_in_all (deprecated) */
    static const char *const taken[] = { "include_in_all", "type", "properties", "dynamic",
                                         "enabled", NULL };
    json_t *v, *e;
    char what[300];

    if ((v = json_object_get(def, "dynamic")) && (e = parse_dyn(fl, v, &f->dynamic)))
        return e;
    if ((v = json_object_get(def, "enabled"))) {
        bool on;
        if ((e = node_bool(v, "enabled.enabled", &on)))
            return e;
        f->disabled = !on;
    }
    if (fl == FL_ES8 && json_object_get(def, "subobjects"))
        return unmodelled("\"subobjects\" (field [%.*s])", (int)klen, key);
    if ((v = json_object_get(def, "properties")) && (e = define_props(fl, into, path, plen, v)))
        return e;
    if (lenient)
        return NULL;
    snprintf(what, sizeof(what), "Mapping definition for [%.*s]", (int)klen, key);
    return remaining(what, def, fl == FL_ES8 ? taken + 1 : taken);
}

/* A field's definition (ParametrizedFieldMapper.Builder#parse; multi: one
 * of another field's "fields", TypeParsers#parseMultiField). */
static json_t *define_leaf(enum flavor fl, const char *path, size_t plen, const char *key,
                           size_t klen, const char *type, json_t *def, bool multi,
                           struct field *f)
{
    const char *const *params = params_of(f->type);
    const char *k;
    json_t *v, *e;

    json_object_foreach(def, k, v) {
        if (strcmp(k, "type") == 0)
            continue;
        if (strcmp(k, "fields") == 0) {
            size_t n = 0;
            const char *mk;
            json_t *mv;
            if (json_is_array(v) && json_array_size(v) == 0)
                continue;
            if (!json_is_object(v)) {
                struct buf b;
                buf_init(&b, BUF_NOMAX);
                java_str(v, &b);
                e = errf("mapper_parsing_exception", "expected map for property [fields] on "
                         "field [%s] or [fields] but got a class java.lang.%s",
                         b.ptr ? b.ptr : "", json_is_string(v) ? "String" : json_is_integer(v)
                         ? "Integer" : json_is_boolean(v) ? "Boolean" : "Object");
                buf_close(&b);
                return e;
            }
            if (multi)
                return unmodelled("multi-fields inside multi-fields (field [%.*s])", (int)klen,
                                  key);
            if (!(f->sub = calloc(json_object_size(v), sizeof(*f->sub))))
                return err_obj("exception", "out of memory");
            json_object_foreach(v, mk, mv) {
                struct buf full;
                json_t *t;
                const char *ts;
                if (strchr(mk, '.'))
                    return errf("mapper_parsing_exception", "Field name [%s] which is a multi "
                                "field of [%.*s] cannot contain '.'", mk, (int)klen, key);
                if (!json_is_object(mv))
                    return errf("mapper_parsing_exception", "illegal field [%s], only fields "
                                "can be specified inside fields", mk);
                if (!(t = json_object_get(mv, "type")))
                    return errf("mapper_parsing_exception", "no type specified for property "
                                "[%s]", mk);
                ts = json_string_value(t);
                if (ts && (strcmp(ts, "object") == 0 || strcmp(ts, "nested") == 0))
                    return errf("mapper_parsing_exception", "Type [%s] cannot be used in multi "
                                "field", ts);
                if (!ts || !known_type(fl, ts)) {
                    struct buf b;
                    buf_init(&b, BUF_NOMAX);
                    java_str(t, &b);
                    e = errf("mapper_parsing_exception", "no handler for type [%s] declared on "
                             "field [%s]", b.ptr ? b.ptr : "", mk);
                    buf_close(&b);
                    return e;
                }
                if (modelled_type(ts) == FT_NONE)
                    return unmodelled("type [%s] (field [%.*s.%s])", ts, (int)klen, key, mk);
                if (!(f->sub[n] = calloc(1, sizeof(**f->sub))))
                    return err_obj("exception", "out of memory");
                f->nsub = ++n;
                f->sub[n - 1]->type = modelled_type(ts);
                f->sub[n - 1]->ignore_above = -1;
                buf_init(&full, BUF_NOMAX);
                buf_append(&full, path, plen);
                buf_putc(&full, '.');
                buf_puts(&full, mk);
                f->sub[n - 1]->name = buf_take(&full);
                if ((e = define_leaf(fl, f->sub[n - 1]->name, strlen(f->sub[n - 1]->name), mk,
                                     strlen(mk), ts, mv, true, f->sub[n - 1])))
                    return e;
            }
            continue;
        }
        if (strcmp(k, "copy_to") == 0)
            return unmodelled("copy_to (field [%.*s])", (int)klen, key);
        if (fl == FL_ES8 && strcmp(k, "boost") == 0)
            return errf("mapper_parsing_exception", "Unknown parameter [boost] on mapper [%.*s]",
                        (int)klen, key);
        if (!in_list(params, k) && !(fl == FL_OS2 && in_list(params_os2_any, k)) &&
            !(fl == FL_ES8 && f->type != FT_TEXT && in_list(params_es8_scripts, k)) &&
            !(fl == FL_ES8 && in_list(params_es8_ts, k)) &&
            !(fl == FL_OS2 && f->type == FT_DATE && strcmp(k, "print_format") == 0))
            return errf("mapper_parsing_exception", "unknown parameter [%s] on mapper [%.*s] of "
                        "type [%s]", k, (int)klen, key, type);
        if (json_is_null(v) && strcmp(k, "null_value") != 0)
            return errf("mapper_parsing_exception", "[%s] on mapper [%.*s] of type [%s] must not "
                        "have a [null] value", k, (int)klen, key, type);
        if (in_list(params_es8_scripts, k))
            return unmodelled("runtime scripts (field [%.*s])", (int)klen, key);
        if (strcmp(k, "ignore_malformed") == 0 && (e = node_bool(v, NULL, &f->ignore_malformed)))
            return e;
        /* TextFieldMapper: each makes a hidden field (counted by os2) */
        if (f->type == FT_TEXT && ((strcmp(k, "index_prefixes") == 0 && json_is_object(v)) ||
                                   (strcmp(k, "index_phrases") == 0 &&
                                    (json_is_true(v) || (json_is_string(v) &&
                                                         strcmp(json_string_value(v),
                                                                "true") == 0)))))
            f->hidden++;
        if (strcmp(k, "coerce") == 0) {
            bool on;
            if ((e = node_bool(v, NULL, &on)))
                return e;
            if (!on)
                return unmodelled("\"coerce\": false (field [%.*s])", (int)klen, key);
        }
        if (strcmp(k, "ignore_above") == 0) {
            struct buf b;
            char *end;
            if (json_is_integer(v)) {
                f->ignore_above = (long)json_integer_value(v);
                continue;
            }
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            errno = 0;
            f->ignore_above = b.ptr ? strtol(b.ptr, &end, 10) : 0;
            if (!b.ptr || !*b.ptr || *end || errno || f->ignore_above > INT_MAX ||
                f->ignore_above < INT_MIN) {
                e = for_input_string("number_format_exception", &b);
                buf_close(&b);
                return e;
            }
            buf_close(&b);
        }
        if (strcmp(k, "format") == 0 &&
            !(json_is_string(v) && strcmp(json_string_value(v),
                                          "strict_date_optional_time||epoch_millis") == 0))
            return unmodelled("date formats other than strict_date_optional_time||epoch_millis "
                              "(field [%.*s])", (int)klen, key);
    }
    return NULL;
}

/* A key with a value (Map#get of a JSON null is null too). */
static bool present(const json_t *v)
{
    return v && !json_is_null(v);
}

/* Parses the definition of the field at the path [0..plen), whose name as
 * written in its parent's properties is key[0..klen), into *out (owned by
 * the caller even on failure).  An object's properties join into (a scratch
 * map when into is NULL: checked, then dropped); lenient: see
 * define_object.  NULL, or the exception the engine throws. */
static json_t *define(enum flavor fl, struct map *into, const char *path, size_t plen,
                      const char *key, size_t klen, json_t *def, bool lenient,
                      struct field **out)
{
    json_t *tn = json_object_get(def, "type"), *e;
    struct field *f = calloc(1, sizeof(*f));
    const char *type;
    struct buf tb;

    *out = f;
    if (!f)
        return err_obj("exception", "out of memory");
    f->ignore_above = -1;
    buf_init(&tb, BUF_NOMAX);
    if (tn) {
        java_str(tn, &tb);
        type = tb.ptr ? tb.ptr : "";
    } else if (present(json_object_get(def, "properties")) ||
               (json_object_size(def) == 1 && present(json_object_get(def, "enabled")))) {
        type = "object";
    } else {
        buf_close(&tb);
        return errf("mapper_parsing_exception", "No type specified for field [%.*s]", (int)klen,
                    key);
    }
    f->type = modelled_type(type);
    if (f->type == FT_OBJECT) {
        struct map scratch = { 0 };
        e = define_object(fl, into ? into : &scratch, path, plen, key, klen, def, lenient, f);
        map_clear(&scratch, field_free);
    } else if (f->type != FT_NONE) {
        e = define_leaf(fl, path, plen, key, klen, type, def, false, f);
        if (!e)
            f->def = json_deep_copy(def);
    } else if (known_type(fl, type)) {
        e = unmodelled("type [%s] (field [%.*s])", type, (int)klen, key);
    } else {
        e = errf("mapper_parsing_exception", "No handler for type [%s] declared on field [%.*s]",
                 type, (int)klen, key);
    }
    buf_close(&tb);
    return e;
}

/* Puts f at the path into the map, merging with what is there
 * (ObjectMapper.Builder#build: a name twice merges; two objects merge,
 * an object and a field or two field types cannot).  Takes f. */
static json_t *put_field(struct map *into, const char *path, size_t plen, struct field *f)
{
    struct field *old = map_get(into, path, plen);
    json_t *e = NULL;

    if (!old) {
        if (!map_put(into, path, plen, f)) {
            field_free(f);
            return err_obj("exception", "out of memory");
        }
        return NULL;
    }
    if ((old->type == FT_OBJECT) != (f->type == FT_OBJECT))
        e = errf("illegal_argument_exception", "can't merge a non object mapping [%.*s] with an "
                 "object mapping", (int)plen, path);
    else if (old->type != f->type)
        e = errf("illegal_argument_exception", "mapper [%.*s] cannot be changed from type [%s] to "
                 "[%s]", (int)plen, path, ftype_name[old->type], ftype_name[f->type]);
    else if (f->type == FT_OBJECT) {
        if (f->dynamic != DYN_UNSET)
            old->dynamic = f->dynamic;
        old->disabled = f->disabled;
    }
    field_free(f);
    return e;
}

/* ObjectMapper.TypeParser#parseProperties: each property of the object at
 * the path [0..plen); a dotted name is the path of objects it names. */
static json_t *define_props(enum flavor fl, struct map *into, const char *path, size_t plen,
                            const json_t *props)
{
    const char *key;
    size_t klen;
    json_t *def, *e = NULL;
    struct buf full;

    if (json_is_array(props) && json_array_size(props) == 0)
        return NULL;
    if (!json_is_object(props))
        return errf("parse_exception", "properties must be a map type");
    buf_init(&full, BUF_NOMAX);
    json_object_keylen_foreach((json_t *)props, key, klen, def) {
        size_t end = klen, s = 0, leaf;
        struct field *f;
        if (json_is_array(def) && json_array_size(def) == 0)
            continue;
        if (!json_is_object(def)) {
            e = errf("mapper_parsing_exception", "Expected map for property [fields] on field "
                     "[%.*s] but got a class java.lang.String", (int)klen, key);
            break;
        }
        /* String#split("\\.") drops trailing empty parts */
        while (end > 0 && key[end - 1] == '.')
            end--;
        if (end == 0 && klen > 0) {
            e = errf("mapper_parsing_exception", "Invalid field name %.*s", (int)klen, key);
            break;
        }
        buf_reset(&full);
        buf_append(&full, path, plen);
        for (;;) {
            const char *q = memchr(key + s, '.', end - s);
            size_t e2 = q ? (size_t)(q - key) : end;
            if (e2 == s) {
                e = errf("illegal_argument_exception", "name cannot be empty string");
                break;
            }
            if (full.len)
                buf_putc(&full, '.');
            buf_append(&full, key + s, e2 - s);
            if (!q)
                break;
            /* an intermediate object (ObjectMapper.Builder) */
            struct field *o = calloc(1, sizeof(*o));
            if (!o) {
                e = err_obj("exception", "out of memory");
                break;
            }
            o->type = FT_OBJECT;
            o->ignore_above = -1;
            if ((e = put_field(into, full.ptr, full.len, o)))
                break;
            s = e2 + 1;
        }
        if (e)
            break;
        leaf = s;
        e = define(fl, into, full.ptr, full.len, key + leaf, end - leaf, def, false, &f);
        if (e) {
            field_free(f);
            break;
        }
        if ((e = put_field(into, full.ptr, full.len, f)))
            break;
    }
    buf_close(&full);
    return e;
}

/* The patterns of a template's match, unmatch, path_match or path_unmatch:
 * os2 takes the value's text (DynamicTemplate#parse: toString), es8 a string
 * or a list of strings. */
static json_t *tmpl_patterns(enum flavor fl, const char *prop, const json_t *v, json_t **out)
{
    struct buf b;

    *out = json_array();
    if (fl == FL_ES8 && json_is_array(v)) {
        size_t i;
        json_t *p;
        json_array_foreach(v, i, p) {
            if (!json_is_string(p)) {
                json_t *e;
                buf_init(&b, BUF_NOMAX);
                java_str(v, &b);
                e = errf("mapper_parsing_exception", "[%s] values must either be a string or "
                         "list of strings, but was [%s]", prop, b.ptr ? b.ptr : "");
                buf_close(&b);
                return e;
            }
            json_array_append(*out, p);
        }
        return NULL;
    }
    buf_init(&b, BUF_NOMAX);
    java_str(v, &b);
    json_array_append_new(*out, json_stringn(b.ptr ? b.ptr : "", b.len));
    buf_close(&b);
    return NULL;
}

static json_t *xft_of(const char *s, enum xft *out)
{
    for (int k = 0; k < XFT_N; k++)
        if (strcmp(xft_name[k], s) == 0) {
            *out = (enum xft)k;
            return NULL;
        }
    return errf("illegal_argument_exception", "No field type matched on [%s], possible values "
                "are [object, string, long, double, boolean, date, binary]", s);
}

static bool mentions(const json_t *v, const char *what)
{
    const char *k;
    size_t i;
    json_t *e;

    if (json_is_string(v))
        return strstr(json_string_value(v), what) != NULL;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
            if (mentions(e, what))
                return true;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, e)
            if (strstr(k, what) || mentions(e, what))
                return true;
    }
    return false;
}

/* A JSON object with the keys of o in String order (TreeMap). */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static json_t *sorted(const json_t *o)
{
    size_t n = json_object_size(o), i = 0;
    const char **keys = calloc(n + 1, sizeof(*keys));
    const char *k;
    json_t *v, *out = json_object();

    json_object_foreach((json_t *)o, k, v)
        if (keys)
            keys[i++] = k;
    if (keys)
        qsort(keys, i, sizeof(*keys), cmp_cstr);
    for (size_t j = 0; keys && j < i; j++)
        json_object_set(out, keys[j], json_object_get(o, keys[j]));
    free(keys);
    return out;
}

/* One dynamic template, {"name": {...}} (DynamicTemplate#parse, and es8's
 * RootObjectMapper#validateDynamicTemplate: its mapping must build for one
 * of the kinds it matches; os2 only warns, and a field it cannot build
 * refuses the document). */
static json_t *parse_tmpl(enum flavor fl, const char *name, const json_t *conf, struct tmpl *t)
{
    const char *k;
    json_t *v, *e = NULL, *mmt = NULL, *ummt = NULL;
    bool have_match = false;

    t->name = strdup(name);
    json_object_foreach((json_t *)conf, k, v) {
        json_t **dst = strcmp(k, "match") == 0 ? &t->match
                     : strcmp(k, "unmatch") == 0 ? &t->unmatch
                     : strcmp(k, "path_match") == 0 ? &t->path_match
                     : strcmp(k, "path_unmatch") == 0 ? &t->path_unmatch : NULL;
        if (dst) {
            json_decref(*dst);
            if ((e = tmpl_patterns(fl, k, v, dst)))
                return e;
            have_match |= dst == &t->match || dst == &t->path_match;
        } else if (strcmp(k, "match_mapping_type") == 0) {
            mmt = v;
        } else if (strcmp(k, "unmatch_mapping_type") == 0 && fl == FL_ES8) {
            ummt = v;
        } else if (strcmp(k, "match_pattern") == 0) {
            struct buf b;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            if (b.ptr && strcmp(b.ptr, "regex") == 0)
                e = unmodelled("regex match_pattern (dynamic template [%s])", name);
            else if (!b.ptr || (strcmp(b.ptr, "simple") != 0 &&
                                !(fl == FL_ES8 && strcmp(b.ptr, "default") == 0)))
                e = errf("illegal_argument_exception", "No matching pattern matched on [%s]",
                         b.ptr ? b.ptr : "");
            buf_close(&b);
            if (e)
                return e;
        } else if (strcmp(k, "mapping") == 0) {
            if (!json_is_object(v))
                return errf("mapper_parsing_exception", "template must have mapping set");
            json_decref(t->mapping);
            t->mapping = json_deep_copy(v);
        } else if (strcmp(k, "runtime") == 0 && fl == FL_ES8) {
            return unmodelled("runtime fields (dynamic template [%s])", name);
        } else {
            return errf("illegal_argument_exception", "Illegal dynamic template parameter: [%s]",
                        k);
        }
    }
    if (fl == FL_OS2 && !have_match && !mmt) {
        struct buf b;
        char *txt = json_dumps(conf, JSON_COMPACT);
        buf_init(&b, BUF_NOMAX);
        if (txt)
            render(txt, txt + strlen(txt), &b);
        free(txt);
        e = errf("mapper_parsing_exception", "template must have match, path_match or "
                 "match_mapping_type set %s", b.ptr ? b.ptr : "");
        buf_close(&b);
        return e;
    }
    if (!t->mapping)
        return fl == FL_ES8 ? errf("mapper_parsing_exception", "template [%s] must have either "
                                   "mapping or runtime set", name)
                            : errf("mapper_parsing_exception", "template must have mapping set");
    /* the kinds it matches */
    if (fl == FL_ES8) {
        json_t *list = json_is_array(mmt) ? json_incref(mmt) : mmt ? json_pack("[O]", mmt) : NULL;
        bool wild = (!list && (have_match || ummt)) ||
                    (json_array_size(list) == 1 &&
                     json_is_string(json_array_get(list, 0)) &&
                     strcmp(json_string_value(json_array_get(list, 0)), "*") == 0);
        size_t i;
        enum xft x = XFT_OBJECT;
        if (wild)
            t->types = (1u << XFT_N) - 1;
        json_array_foreach(list, i, v) {
            struct buf b;
            if (wild)
                break;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            e = xft_of(b.ptr ? b.ptr : "", &x);
            buf_close(&b);
            if (e) {
                json_decref(list);
                return e;
            }
            t->types |= 1u << x;
        }
        json_decref(list);
        list = json_is_array(ummt) ? json_incref(ummt) : ummt ? json_pack("[O]", ummt) : NULL;
        json_array_foreach(list, i, v) {
            struct buf b;
            buf_init(&b, BUF_NOMAX);
            java_str(v, &b);
            e = xft_of(b.ptr ? b.ptr : "", &x);
            buf_close(&b);
            if (e) {
                json_decref(list);
                return e;
            }
            t->types &= ~(1u << x);
        }
        json_decref(list);
    } else if (mmt) {
        struct buf b;
        enum xft x = XFT_OBJECT;
        buf_init(&b, BUF_NOMAX);
        java_str(mmt, &b);
        if (b.ptr && strcmp(b.ptr, "*") == 0)
            t->types = (1u << XFT_N) - 1;
        else if (!(e = xft_of(b.ptr ? b.ptr : "", &x)))
            t->types = 1u << x;
        buf_close(&b);
        if (e)
            return e;
    } else {
        t->types = (1u << XFT_N) - 1;
    }
    /* as DynamicTemplate#toXContent prints it */
    t->shown = json_object();
    if (t->match)
        json_object_set(t->shown, "match", fl == FL_ES8 ? json_object_get(conf, "match")
                                                        : json_array_get(t->match, 0));
    if (t->path_match)
        json_object_set(t->shown, "path_match", fl == FL_ES8 ? json_object_get(conf, "path_match")
                                                             : json_array_get(t->path_match, 0));
    if (t->unmatch)
        json_object_set(t->shown, "unmatch", fl == FL_ES8 ? json_object_get(conf, "unmatch")
                                                          : json_array_get(t->unmatch, 0));
    if (t->path_unmatch)
        json_object_set(t->shown, "path_unmatch",
                        fl == FL_ES8 ? json_object_get(conf, "path_unmatch")
                                     : json_array_get(t->path_unmatch, 0));
    if (fl == FL_ES8 && mmt)
        json_object_set(t->shown, "match_mapping_type", mmt);
    else if (fl == FL_OS2 && t->types != (1u << XFT_N) - 1)
        json_object_set(t->shown, "match_mapping_type", mmt);
    else if (fl == FL_OS2 && !t->match && !t->path_match)
        json_object_set_new(t->shown, "match_mapping_type", json_string("*"));
    if (ummt)
        json_object_set(t->shown, "unmatch_mapping_type", ummt);
    json_object_set_new(t->shown, "mapping", sorted(t->mapping));
    /* es8: the mapping must build for one of its kinds (unless it names the
     * field: {name} cannot be known before) */
    if (fl == FL_ES8 && !mentions(t->mapping, "{name}")) {
        struct buf kinds;
        json_t *last = NULL;
        bool ok = false;
        char tname[300];
        snprintf(tname, sizeof(tname), "__dynamic__%s", name);
        buf_init(&kinds, BUF_NOMAX);
        for (int x = 0; x < XFT_N; x++) {
            if (!((t->types >> x) & 1u))
                continue;
            buf_printf(&kinds, "%s%s", kinds.len ? ", " : "", xft_name[x]);
            if (ok)
                continue;
            json_t *m = subst(t->mapping, tname, strlen(tname), xft_mapping[x]);
            json_t *tn = json_object_get(m, "type");
            struct field *f = NULL;
            json_decref(last);
            last = NULL;
            json_object_set_new(m, "type", json_string(json_is_string(tn) ? json_string_value(tn)
                                                       : tn ? "" : xft_mapping[x]));
            const char *ts = json_string_value(json_object_get(m, "type"));
            if (!known_type(fl, ts))
                last = errf("illegal_argument_exception", "No mapper found for type [%s]", ts);
            else
                last = define(fl, NULL, tname, strlen(tname), tname, strlen(tname), m, false,
                              &f);
            field_free(f);
            json_decref(m);
            ok = last == NULL;
            if (last && strcmp(json_string_value(json_object_get(last, "type")), UNMODELLED) == 0) {
                buf_close(&kinds);
                return last;
            }
        }
        if (!ok) {
            char *txt = json_dumps(t->shown, JSON_COMPACT);
            e = errf("illegal_argument_exception", "dynamic template [%s] has invalid content "
                     "[%s], attempted to validate it with the following match_mapping_type: "
                     "[%s]", name, txt ? txt : "", kinds.ptr ? kinds.ptr : "");
            free(txt);
            if (last)
                json_object_set_new(e, "caused_by", last);
            buf_close(&kinds);
            return e;
        }
        buf_close(&kinds);
    }
    return NULL;
}

/* The "mappings" of a create-index body (DocumentMapperParser#parse and
 * RootObjectMapper.TypeParser#parse): into m and the fields map. */
static json_t *parse_mappings(enum flavor fl, json_t *mappings, struct mapping *m,
                              struct map *fields)
{
    /* os2 still takes include_in_all (deprecated) */
    static const char *const taken[] = {
        "include_in_all", "properties", "dynamic", "dynamic_templates", "date_detection",
        "numeric_detection", "_meta", "enabled", NULL
    };
    static const char *const meta_fields[] = {
        "_source", "_routing", "_field_names", "_size", "_data_stream_timestamp", "_doc_count",
        "_id", "_index", "_ignored", "_seq_no", "_version", "_nested_path", "runtime",
        "subobjects", "dynamic_date_formats", "date_formats", "derived", "composite",
        "dynamic_properties", "disable_objects", NULL
    };
    json_t *v, *e;
    const char *k;

    if (json_object_size(mappings) == 1 && json_is_object(json_object_get(mappings, "_doc")))
        mappings = json_object_get(mappings, "_doc"); /* a typed mapping: the type is _doc */
    json_object_foreach(mappings, k, v)
        if (in_list(meta_fields, k))
            return unmodelled("[%s] in a mapping", k);
    if ((v = json_object_get(mappings, "dynamic")) && (e = parse_dyn(fl, v, &m->dynamic)))
        return e;
    if ((v = json_object_get(mappings, "_meta"))) {
        if (!json_is_object(v))
            return unmodelled("a [_meta] that is not an object");
        m->meta = json_incref(v);
    }
    if ((v = json_object_get(mappings, "enabled"))) {
        bool on;
        if ((e = node_bool(v, "enabled.enabled", &on)))
            return e;
        if (!on)
            return unmodelled("a disabled root object");
    }
    if ((v = json_object_get(mappings, "date_detection"))) {
        if ((e = node_bool(v, "date_detection", &m->date_detection)))
            return e;
        m->date_detection_set = true;
    }
    if ((v = json_object_get(mappings, "numeric_detection"))) {
        if ((e = node_bool(v, "numeric_detection", &m->numeric_detection)))
            return e;
        m->numeric_detection_set = true;
    }
    if ((v = json_object_get(mappings, "dynamic_templates"))) {
        size_t i;
        json_t *one;
        if (!json_is_array(v))
            return errf("mapper_parsing_exception", "Dynamic template syntax error. An array of "
                        "named objects is expected.");
        if (!(m->tmpl = calloc(json_array_size(v) + 1, sizeof(*m->tmpl))))
            return err_obj("exception", "out of memory");
        json_array_foreach(v, i, one) {
            void *it = json_object_iter(one);
            if (!json_is_object(one) || json_object_size(one) != 1)
                return errf("mapper_parsing_exception", "A dynamic template must be defined with "
                            "a name");
            if (!json_is_object(json_object_iter_value(it)))
                return errf("mapper_parsing_exception", "template must have mapping set");
            m->ntmpl++;
            if ((e = parse_tmpl(fl, json_object_iter_key(it), json_object_iter_value(it),
                                &m->tmpl[i])))
                return e;
        }
    }
    if ((v = json_object_get(mappings, "properties")) && (e = define_props(fl, fields, "", 0, v)))
        return e;
    return remaining("Root mapping definition", mappings, fl == FL_ES8 ? taken + 1 : taken);
}

/* Answers a mapping the engine refuses as MapperService#merge does
 * ("Failed to parse mapping [_doc]: ..." / es8 "Failed to parse mapping: ..."),
 * the root cause being the deepest engine exception of the chain
 * (ElasticsearchException#guessRootCauses).  Takes e. */
static void reply_mapping_error(struct conn *c, json_t *e)
{
    static const char *const not_engine[] = { "illegal_argument_exception",
                                              "illegal_state_exception",
                                              "number_format_exception", NULL };
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *reason = json_string_value(json_object_get(e, "reason"));
    json_t *outer, *rc, *body;

    if (type && strcmp(type, UNMODELLED) == 0) {
        reply_json(c, 400, es_error_body(400, e), NULL);
        return;
    }
    outer = srv.set.flavor == FL_ES8
          ? errf("mapper_parsing_exception", "Failed to parse mapping: %s", reason ? reason : "")
          : errf("mapper_parsing_exception", "Failed to parse mapping [_doc]: %s",
                 reason ? reason : "");
    json_object_set_new(outer, "caused_by", e);
    rc = outer;
    for (json_t *n = json_object_get(rc, "caused_by"); n; n = json_object_get(rc, "caused_by")) {
        const char *nt = json_string_value(json_object_get(n, "type"));
        if (!nt || in_list(not_engine, nt))
            break;
        rc = n;
    }
    rc = json_copy(rc);
    json_object_del(rc, "caused_by");
    body = json_object();
    json_object_set_new(body, "root_cause", json_pack("[o]", rc));
    json_object_update(body, outer);
    json_decref(outer);
    reply_json(c, 400, json_pack("{s:o, s:i}", "error", body, "status", 400), NULL);
}

/* ------------------------------------------------------------------------ */
/* Bulk                                                                     */

/* Whole-request failure while reading the body. */
struct bulk_fail {
    int status;
    char type[64];
    char reason[512];
};

static int bad_line(struct bulk_fail *f, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_line(struct bulk_fail *f, const char *type, const char *fmt, ...)
{
    va_list ap;

    f->status = 400;
    snprintf(f->type, sizeof(f->type), "%s", type);
    va_start(ap, fmt);
    vsnprintf(f->reason, sizeof(f->reason), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Reads a version that may come as a number or a numeric string. */
static int json_to_long(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        errno = 0;
        long long x = strtoll(json_string_value(v), &end, 10);
        if (errno || *end || end == json_string_value(v))
            return -ERANGE;
        *out = x;
        return 0;
    }
    return -EINVAL;
}

static int parse_vtype(const char *s, enum vtype *out)
{
    if (strcmp(s, "internal") == 0)
        *out = VT_INTERNAL;
    else if (strcmp(s, "external") == 0 || strcmp(s, "external_gt") == 0)
        *out = VT_EXTERNAL;
    else if (strcmp(s, "external_gte") == 0)
        *out = VT_EXTERNAL_GTE;
    else
        return -EINVAL;
    return 0;
}

/* Parses one action line into o.  lineno counts from 1, as ES reports it. */
static int parse_action(const char *line, size_t len, size_t lineno, const char *def_index,
                        struct op *o, struct bulk_fail *f)
{
    json_error_t jerr;
    /* Jackson takes any \u escape in names and values, \u0000 and lone
     * surrogates included (ENGINE-RULES.md section 4): so does this. */
    json_t *root = jsonx_loadb(line, len, 0, &jerr), *meta;
    const char *opname, *k;
    json_t *v;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    o->version = VERSION_UNSET;
    o->if_seq_no = o->if_primary_term = -2;
    if (!root) {
        if (strstr(jerr.text, "too big"))
            return bad_line(f, "illegal_argument_exception",
                            "Numeric value out of range of long (-9223372036854775808 - "
                            "9223372036854775807) in action/metadata line [%zu]", lineno);
        return bad_line(f, "x_content_parse_exception", "[%zu:%d] %s", lineno, jerr.column,
                        jerr.text);
    }
    if (!json_is_object(root) || json_object_size(root) != 1) {
        json_decref(root);
        return bad_line(f, "illegal_argument_exception",
                        "Malformed action/metadata line [%zu], expected START_OBJECT or "
                        "END_OBJECT but found [%s]", lineno,
                        json_is_object(root) ? "FIELD_NAME" : "VALUE");
    }
    opname = json_object_iter_key(json_object_iter(root));
    meta = json_object_iter_value(json_object_iter(root));
    for (o->type = 0; o->type < OP_N; o->type++)
        if (strcmp(opname, op_name[o->type]) == 0)
            break;
    if (o->type == OP_N) {
        rc = bad_line(f, "illegal_argument_exception",
                      "Malformed action/metadata line [%zu], expected field [create], [delete], "
                      "[index] or [update] but found [%s]", lineno, opname);
        goto out;
    }
    if (!json_is_object(meta)) {
        rc = bad_line(f, "illegal_argument_exception",
                      "Malformed action/metadata line [%zu], expected START_OBJECT but found "
                      "[VALUE]", lineno);
        goto out;
    }
    json_object_foreach(meta, k, v) {
        if (strcmp(k, "_index") == 0 && json_is_string(v)) {
            o->index = strdup(json_string_value(v));
        } else if (strcmp(k, "_id") == 0 && (json_is_string(v) || json_is_integer(v))) {
            /* An _id may hold NUL: kept with its length. */
            o->id = json_is_string(v) ? strndup_n(json_string_value(v), json_string_length(v))
                                      : NULL;
            o->id_len = json_is_string(v) ? json_string_length(v) : 0;
            if (json_is_integer(v) && asprintf(&o->id, "%" JSON_INTEGER_FORMAT,
                                               json_integer_value(v)) < 0)
                o->id = NULL;
            if (json_is_integer(v) && o->id)
                o->id_len = strlen(o->id);
        } else if (strcmp(k, "version") == 0) {
            if (json_to_long(v, &o->version) < 0)
                rc = bad_line(f, "illegal_argument_exception",
                              "Numeric value out of range of long in action/metadata line [%zu]",
                              lineno);
        } else if (strcmp(k, "version_type") == 0 && json_is_string(v)) {
            if (strcmp(json_string_value(v), "force") == 0)
                rc = bad_line(f, "illegal_argument_exception",
                              "version type [force] may no longer be used");
            else if (parse_vtype(json_string_value(v), &o->vt) < 0)
                rc = bad_line(f, "illegal_argument_exception", "No version type match [%s]",
                              json_string_value(v));
        } else if (strcmp(k, "if_seq_no") == 0) {
            if (json_to_long(v, &o->if_seq_no) < 0)
                rc = bad_line(f, "illegal_argument_exception", "bad if_seq_no");
        } else if (strcmp(k, "if_primary_term") == 0) {
            if (json_to_long(v, &o->if_primary_term) < 0)
                rc = bad_line(f, "illegal_argument_exception", "bad if_primary_term");
        } else if (strcmp(k, "routing") == 0 || strcmp(k, "pipeline") == 0 ||
                   strcmp(k, "require_alias") == 0 || strcmp(k, "retry_on_conflict") == 0 ||
                   strcmp(k, "_source") == 0 || strcmp(k, "dynamic_templates") == 0) {
            /* accepted; single shard, no pipelines */
        } else {
            rc = bad_line(f, "illegal_argument_exception",
                          "Action/metadata line [%zu] contains an unknown parameter [%s]", lineno,
                          k);
        }
        if (rc)
            break;
    }
    if (!rc && !o->index && def_index)
        o->index = strdup(def_index);
out:
    json_decref(root);
    return rc;
}

/* ES's request validation (BulkRequest.validate): every message, numbered. */
static void validate_op(const struct op *o, struct buf *v, int *n)
{
    const char *msgs[4];
    size_t nm = 0;
    char ill[200];

    if (!o->index)
        msgs[nm++] = "index is missing";
    if ((o->type == OP_DELETE || o->type == OP_UPDATE) && !o->id)
        msgs[nm++] = "id is missing";
    if (o->type == OP_UPDATE && o->vt != VT_INTERNAL) {
        snprintf(ill, sizeof(ill), "version type [%s] is not supported by the update API",
                 vtype_upper[o->vt]);
        msgs[nm++] = ill;
    } else if (o->type == OP_CREATE && o->vt != VT_INTERNAL) {
        msgs[nm++] = "create operations only support internal versioning. use index instead";
    } else if (o->vt == VT_INTERNAL && o->version != VERSION_UNSET) {
        msgs[nm++] = "internal versioning can not be used for optimistic concurrency control. "
                     "Please use `if_seq_no` and `if_primary_term` instead";
    } else if (o->vt != VT_INTERNAL && o->version < 0) {
        snprintf(ill, sizeof(ill), "illegal version value [%" PRId64 "] for version type [%s]",
                 o->version, vtype_upper[o->vt]);
        msgs[nm++] = ill;
    }
    for (size_t i = 0; i < nm; i++)
        buf_printf(v, "%d: %s;", ++*n, msgs[i]);
    /* DocWriteRequest#validateDocIdLength names the whole id; BulkRequest
     * #validate makes it a failure of the whole request */
    if (o->id && o->id_len > 512)
        buf_printf(v, "%d: id [%s] is too long, must be no longer than 512 bytes but was: %zu;",
                   ++*n, o->id, o->id_len);
}

/* Which items a per-item fault hits: chosen by position ("items") and, when
 * the rule lists ids, by _id too. */
static bool fault_hits_item(const struct fault *ft, size_t i, const char *id)
{
    bool pos = false;
    size_t k;
    json_t *v;

    switch (ft->items) {
    case IS_ALL: pos = true; break;
    case IS_ODD: pos = i % 2 == 1; break;
    case IS_EVEN: pos = i % 2 == 0; break;
    case IS_FIRST: pos = (long)i < ft->nitems; break;
    }
    if (!pos || !ft->ids)
        return pos;
    json_array_foreach(ft->ids, k, v)
        if (json_string_length(v) == strlen(id) && strcmp(json_string_value(v), id) == 0)
            return true;
    return false;
}

static json_t *injected_item_error(int status, const char *index)
{
    char reason[512];

    switch (status) {
    case 403:
        /* A write block (index.blocks.write: IndexMetadata.INDEX_WRITE_BLOCK,
         * FORBIDDEN/8), as the bulk action reports it for each item of the
         * blocked index (ClusterBlockException's message). */
        snprintf(reason, sizeof(reason), "index [%s] blocked by: [FORBIDDEN/8/index write (api)];",
                 index ? index : "");
        return err_obj("cluster_block_exception", reason);
    case 429:
        return err_obj("es_rejected_execution_exception",
                       "rejected execution of coordinating operation [coordinating_and_primary_"
                       "bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
                       "max_coordinating_and_primary_bytes=0]");
    case 503:
        return err_obj("unavailable_shards_exception",
                       "[0] primary shard is not active Timeout: [1m]");
    case 400:
        return err_obj("mapper_parsing_exception", "failed to parse (injected)");
    case 500:
        return err_obj("exception", "injected failure");
    default:
        return err_obj("exception", "injected failure");
    }
}

static void handle_bulk(struct conn *c, struct request *r, const char *def_index,
                        const struct fault *item_fault)
{
    const char *p = r->data, *e = r->data + r->data_len;
    struct op *ops = NULL;
    size_t nops = 0, cap = 0, lineno = 0;
    struct bulk_fail f = { 0 };
    struct buf verr;
    int nverr = 0;
    uint64_t t0 = uv_hrtime();
    struct item_res *res = NULL;
    struct buf out;
    char *fp = NULL;
    bool errors = false;

    srv.st.bulk_requests++;
    buf_init(&verr, BUF_NOMAX);
    buf_init(&out, BUF_NOMAX);
    if (r->data_len == 0) {
        reply_error(c, 400, "parse_exception", "request body is required");
        goto out;
    }
    if (e[-1] != '\n') {
        reply_error(c, 400, "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]");
        goto out;
    }
    while (p < e) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t len = (size_t)(nl - p);
        lineno++;
        if (len && p[len - 1] == '\r')
            len--;
        if (len == 0) { /* blank lines between actions are skipped, as ES does */
            p = nl + 1;
            continue;
        }
        if (nops == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct op *n = realloc(ops, ncap * sizeof(*ops));
            if (!n) {
                reply_error(c, 500, "exception", "out of memory");
                goto out;
            }
            ops = n;
            cap = ncap;
        }
        struct op *o = &ops[nops];
        if (parse_action(p, len, lineno, def_index, o, &f) < 0) {
            op_clear(o);
            reply_error(c, f.status, f.type, f.reason);
            goto out;
        }
        nops++;
        p = nl + 1;
        if (o->type != OP_DELETE) {
            if (p >= e) {
                reply_error(c, 400, "illegal_argument_exception",
                            "The bulk request must be terminated by a newline [\\n]");
                goto out;
            }
            nl = memchr(p, '\n', (size_t)(e - p));
            len = (size_t)(nl - p);
            lineno++;
            if (len && p[len - 1] == '\r')
                len--;
            o->src = p;
            o->src_len = len;
            p = nl + 1;
        }
        validate_op(o, &verr, &nverr);
    }
    if (nops == 0)
        buf_printf(&verr, "%d: no requests added;", ++nverr);
    if (nverr) {
        char *msg = NULL;
        if (asprintf(&msg, "Validation Failed: %s", verr.ptr) < 0)
            msg = NULL;
        reply_error(c, 400, "action_request_validation_exception", msg ? msg : "Validation Failed");
        free(msg);
        goto out;
    }

    res = calloc(nops, sizeof(*res));
    if (!res) {
        reply_error(c, 500, "exception", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nops; i++) {
        struct op *o = &ops[i];
        char idbuf[21];

        if (!o->id) {
            next_auto_id(idbuf);
            o->id = strdup(idbuf);
            o->id_len = o->id ? strlen(o->id) : 0;
        }
        res[i].op = o->type;
        res[i].index = o->index;
        res[i].id = o->id ? o->id : "";
        srv.st.actions[o->type]++;
        if (item_fault && fault_hits_item(item_fault, i, res[i].id))
            item_fail(&res[i], item_fault->item_status,
                      injected_item_error(item_fault->item_status, o->index));
        else
            op_execute(o, &res[i]);
        if (res[i].status >= 100 && res[i].status < 600)
            srv.st.items[res[i].status]++;
        if (res[i].error)
            errors = true;
    }
    fp = query_param(r->query, "filter_path");
    buf_init(&out, BUF_NOMAX);
    buf_reserve(&out, nops * (fp ? 48 : 200) + 64);
    em_bulk_reply(&out, fp, (int64_t)((uv_hrtime() - t0) / 1000000), errors, res, nops);
    if (!out.ptr) {
        reply_error(c, 500, "exception", "out of memory");
        goto out;
    }
    {
        size_t len = out.len;
        reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&out), len);
    }
out:
    for (size_t i = 0; res && i < nops; i++)
        json_decref(res[i].error);
    free(res);
    free(fp);
    buf_close(&out);
    for (size_t i = 0; i < nops; i++)
        op_clear(&ops[i]);
    free(ops);
    buf_close(&verr);
}

/* ------------------------------------------------------------------------ */
/* Read endpoints                                                           */

static void reply_index_missing(struct conn *c, const char *name)
{
    char reason[300];

    snprintf(reason, sizeof(reason), "no such index [%s]", name);
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "index_not_found_exception",
                          "reason", reason, "resource.type", "index_or_alias", "resource.id",
                          name, "index_uuid", "_na_", "index", name);
    reply_json(c, 404, es_error_body(404, e), NULL);
}

static int cmp_docp(const void *a, const void *b)
{
    const struct doc *x = *(const struct doc *const *)a, *y = *(const struct doc *const *)b;
    size_t n = x->id_len < y->id_len ? x->id_len : y->id_len;
    int c = memcmp(x->id, y->id, n);

    return c ? c : (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The documents of ix sorted by id; live only, or with live tombstones. */
static struct doc **sorted_docs(struct index *ix, bool tombstones, size_t *n)
{
    struct doc **v = malloc((ix->docs.len + 1) * sizeof(*v));
    uint64_t now = now_ms();

    *n = 0;
    if (!v)
        return NULL;
    for (size_t i = 0; i < ix->docs.cap; i++) {
        struct doc *d = ix->docs.slots[i].key ? ix->docs.slots[i].val : NULL;
        enum doc_state ds = doc_state(d, now);
        if (ds == DS_PRESENT || (tombstones && ds == DS_DELETED))
            v[(*n)++] = d;
    }
    qsort(v, *n, sizeof(*v), cmp_docp);
    return v;
}

/* Names of existing indices matching an expression (name, "*", "_all",
 * comma lists, globs), sorted.  Returns the count, -ENOENT naming the first
 * missing concrete index in *missing. */
static int resolve_indices(const char *expr, struct index **out, size_t max, const char **missing)
{
    char *copy = strdup(expr ? expr : "_all"), *save = NULL;
    const char *names[256];
    size_t n = 0;
    int rc = 0;

    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        bool wild = strcmp(t, "_all") == 0 || strchr(t, '*');
        bool any = false;
        for (size_t i = 0; i < srv.indices.cap && n < 256; i++) {
            struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;
            if (!ix || !ix->exists)
                continue;
            if (strcmp(t, "_all") == 0 || (wild ? glob_match(t, ix->name) : strcmp(t, ix->name) == 0)) {
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                    dup |= names[j] == ix->name;
                if (!dup)
                    names[n++] = ix->name;
                any = true;
            }
        }
        if (!any && !wild) {
            static char miss[256];
            snprintf(miss, sizeof(miss), "%s", t);
            *missing = miss;
            rc = -ENOENT;
        }
    }
    free(copy);
    if (rc)
        return rc;
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = index_get(names[i]);
    return (int)(n < max ? n : max);
}

static void handle_get_doc(struct conn *c, const char *index, const char *id)
{
    struct index *ix = index_get(index);
    struct doc *d;
    struct buf b;

    if (!ix) {
        reply_index_missing(c, index);
        return;
    }
    d = map_get(&ix->docs, id, strlen(id));
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "{\"_index\":");
    put_json_str(&b, ix->name, strlen(ix->name));
    buf_puts(&b, ",\"_id\":");
    put_json_str(&b, id, strlen(id));
    if (doc_state(d, now_ms()) != DS_PRESENT) {
        buf_puts(&b, ",\"found\":false}");
        reply(c, 404, "application/json; charset=UTF-8", NULL, buf_take(&b), strlen(b.ptr ? b.ptr : ""));
        return;
    }
    buf_printf(&b, ",\"_version\":%" PRId64 ",\"_seq_no\":%" PRId64
                   ",\"_primary_term\":1,\"found\":true,\"_source\":",
               d->version, d->seq_no);
    if (d->source)
        buf_append(&b, d->source, d->source_len);
    else
        buf_puts(&b, "{}");
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

static void handle_search(struct conn *c, struct request *r, const char *expr, bool count)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    long size = 10, from = 0;
    char *qs = query_param(r->query, "size"), *qf = query_param(r->query, "from");
    json_t *body = NULL;
    struct buf b;
    size_t total = 0;

    if (qs)
        size = strtol(qs, NULL, 10);
    if (qf)
        from = strtol(qf, NULL, 10);
    free(qs);
    free(qf);
    if (n < 0) {
        reply_index_missing(c, missing);
        return;
    }
    if (r->data_len) {
        json_error_t jerr;
        body = json_loadb(r->data, r->data_len, 0, &jerr);
        if (!body) {
            reply_error(c, 400, "parse_exception", jerr.text);
            return;
        }
        json_t *q = json_object_get(body, "query");
        if (q && !json_object_get(q, "match_all")) {
            json_decref(body);
            reply_error(c, 400, "parsing_exception",
                               "only match_all queries are supported by the search double");
            return;
        }
        if (json_is_integer(json_object_get(body, "size")))
            size = (long)json_integer_value(json_object_get(body, "size"));
        if (json_is_integer(json_object_get(body, "from")))
            from = (long)json_integer_value(json_object_get(body, "from"));
        json_decref(body);
    }
    buf_init(&b, BUF_NOMAX);
    if (count) {
        for (int i = 0; i < n; i++) {
            size_t k;
            free(sorted_docs(ixs[i], false, &k));
            total += k;
        }
        buf_printf(&b, "{\"count\":%zu,\"_shards\":{\"total\":%d,\"successful\":%d,\"skipped\":0,"
                       "\"failed\":0}}", total, n, n);
        size_t len = b.len;
        reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
        return;
    }
    struct buf hits;
    long emitted = 0, seen = 0;
    buf_init(&hits, BUF_NOMAX);
    for (int i = 0; i < n; i++) {
        size_t k;
        struct doc **v = sorted_docs(ixs[i], false, &k);
        total += k;
        for (size_t j = 0; v && j < k; j++, seen++) {
            if (seen < from || emitted >= size)
                continue;
            buf_puts(&hits, emitted ? ",{\"_index\":" : "{\"_index\":");
            put_json_str(&hits, ixs[i]->name, strlen(ixs[i]->name));
            buf_puts(&hits, ",\"_id\":");
            put_json_str(&hits, v[j]->id, v[j]->id_len);
            buf_puts(&hits, ",\"_score\":1.0,\"_source\":");
            if (v[j]->source)
                buf_append(&hits, v[j]->source, v[j]->source_len);
            else
                buf_puts(&hits, "{}");
            buf_putc(&hits, '}');
            emitted++;
        }
        free(v);
    }
    buf_printf(&b, "{\"took\":1,\"timed_out\":false,\"_shards\":{\"total\":%d,\"successful\":%d,"
                   "\"skipped\":0,\"failed\":0},\"hits\":{\"total\":{\"value\":%zu,\"relation\":"
                   "\"eq\"},\"max_score\":%s,\"hits\":[",
               n, n, total, total ? "1.0" : "null");
    if (hits.len)
        buf_append(&b, hits.ptr, hits.len);
    buf_puts(&b, "]}}");
    buf_close(&hits);
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* PUT/POST/DELETE of a single document: the bulk executor, outside a bulk. */
static void handle_write_doc(struct conn *c, struct request *r, enum op_type type,
                             const char *index, const char *id)
{
    struct op o = { .type = type, .version = VERSION_UNSET, .if_seq_no = -2,
                    .if_primary_term = -2 };
    char *v = query_param(r->query, "version"), *vt = query_param(r->query, "version_type");
    char *ot = query_param(r->query, "op_type");
    struct buf verr;
    int nverr = 0;
    struct item_res res = { 0 };
    char idbuf[21];

    buf_init(&verr, BUF_NOMAX);
    o.index = strdup(index);
    if (id) {
        o.id = strdup(id);
        o.id_len = o.id ? strlen(o.id) : 0;
    } else {
        next_auto_id(idbuf);
        o.id = strdup(idbuf);
        o.id_len = o.id ? strlen(o.id) : 0;
    }
    if (ot && strcmp(ot, "create") == 0 && type == OP_INDEX)
        o.type = OP_CREATE;
    if (v) {
        char *end;
        errno = 0;
        o.version = strtoll(v, &end, 10);
        if (errno || *end) {
            reply_error(c, 400, "illegal_argument_exception", "failed to parse version");
            goto out;
        }
    }
    if (vt && parse_vtype(vt, &o.vt) < 0) {
        reply_error(c, 400, "illegal_argument_exception", "No version type match");
        goto out;
    }
    o.src = r->data;
    o.src_len = r->data_len;
    validate_op(&o, &verr, &nverr);
    if (nverr) {
        char *msg = NULL;
        if (asprintf(&msg, "Validation Failed: %s", verr.ptr) < 0)
            msg = NULL;
        reply_error(c, 400, "action_request_validation_exception", msg ? msg : "Validation Failed");
        free(msg);
        goto out;
    }
    res.op = o.type;
    res.index = o.index;
    res.id = o.id;
    op_execute(&o, &res);
    if (res.error) {
        reply_json(c, res.status, es_error_body(res.status, json_incref(res.error)), NULL);
    } else {
        reply_json_filtered(c, r, res.status, item_to_json(&res, false));
    }
out:
    json_decref(res.error);
    free(v);
    free(vt);
    free(ot);
    op_clear(&o);
    buf_close(&verr);
}

/* Orders paths so that an object's fields follow it: names compare byte by
 * byte with the separating '.' below every other byte. */
static int cmp_path(const void *a, const void *b)
{
    const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;

    for (size_t i = 0; i < n; i++) {
        int cx = x->key[i] == '.' ? -1 : (unsigned char)x->key[i];
        int cy = y->key[i] == '.' ? -1 : (unsigned char)y->key[i];
        if (cx != cy)
            return cx < cy ? -1 : 1;
    }
    return (x->klen > y->klen) - (x->klen < y->klen);
}

static void put_json(struct buf *b, const json_t *v)
{
    json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The index's mapping as GET /<index>/_mapping prints it (ObjectMapper and
 * RootObjectMapper#toXContent: dynamic, _meta, dynamic_templates,
 * date_detection, numeric_detection, then "properties", fields sorted by
 * name).  An explicit field prints its definition as given; a dynamic
 * string is text with a keyword sub-field (DocumentParser
 * #createBuilderFromDynamicValue); an object prints "type" only when it
 * has no properties. */
static void mapping_json(const struct index *ix, struct buf *b)
{
    const struct mapping *m = &ix->mapping;
    const struct slot **v = malloc((ix->fields.len + 1) * sizeof(*v));
    size_t n = 0, depth = 0;

    for (size_t i = 0; v && i < ix->fields.cap; i++)
        if (ix->fields.slots[i].key)
            v[n++] = &ix->fields.slots[i];
    if (n)
        qsort(v, n, sizeof(*v), cmp_path);
    buf_putc(b, '{');
    if (m->dynamic != DYN_UNSET)
        buf_printf(b, "\"dynamic\":\"%s\",", dyn_name[m->dynamic]);
    if (m->meta) {
        buf_puts(b, "\"_meta\":");
        put_json(b, m->meta);
        buf_putc(b, ',');
    }
    if (m->ntmpl) {
        buf_puts(b, "\"dynamic_templates\":[");
        for (size_t i = 0; i < m->ntmpl; i++) {
            buf_puts(b, i ? ",{" : "{");
            put_json_str(b, m->tmpl[i].name, strlen(m->tmpl[i].name));
            buf_putc(b, ':');
            put_json(b, m->tmpl[i].shown);
            buf_putc(b, '}');
        }
        buf_puts(b, "],");
    }
    if (m->date_detection_set)
        buf_printf(b, "\"date_detection\":%s,", m->date_detection ? "true" : "false");
    if (m->numeric_detection_set)
        buf_printf(b, "\"numeric_detection\":%s,", m->numeric_detection ? "true" : "false");
    if (n)
        buf_puts(b, "\"properties\":{");
    for (size_t i = 0; v && i < n; i++) {
        const char *k = v[i]->key, *name = k;
        const struct field *f = v[i]->val;
        size_t d = 0;
        for (const char *q = k; q < k + v[i]->klen; q++)
            if (*q == '.') {
                d++;
                name = q + 1;
            }
        for (; depth > d; depth--)
            buf_puts(b, "}}");
        if (b->ptr[b->len - 1] != '{')
            buf_putc(b, ',');
        put_json_str(b, name, (size_t)(k + v[i]->klen - name));
        buf_putc(b, ':');
        bool children = f->type == FT_OBJECT && i + 1 < n && v[i + 1]->klen > v[i]->klen &&
                        memcmp(v[i + 1]->key, k, v[i]->klen) == 0 &&
                        v[i + 1]->key[v[i]->klen] == '.';
        if (f->type == FT_OBJECT) {
            buf_puts(b, children ? "{" : "{\"type\":\"object\"");
            if (f->dynamic != DYN_UNSET)
                buf_printf(b, "%s\"dynamic\":\"%s\"", children ? "" : ",",
                           dyn_name[f->dynamic]);
            if (f->disabled)
                buf_printf(b, "%s\"enabled\":false",
                           children && f->dynamic == DYN_UNSET ? "" : ",");
            if (children) {
                buf_puts(b, b->ptr[b->len - 1] == '{' ? "\"properties\":{"
                                                      : ",\"properties\":{");
                depth++;
            } else {
                buf_putc(b, '}');
            }
        } else if (f->def) {
            put_json(b, f->def);
        } else if (f->type == FT_TEXT) {
            buf_puts(b, "{\"type\":\"text\",\"fields\":{\"keyword\":{\"type\":\"keyword\","
                        "\"ignore_above\":256}}}");
        } else {
            buf_printf(b, "{\"type\":\"%s\"}", ftype_name[f->type]);
        }
    }
    for (; depth > 0; depth--)
        buf_puts(b, "}}");
    if (n)
        buf_putc(b, '}');
    if (b->ptr[b->len - 1] == ',')
        buf_truncate(b, b->len - 1);
    buf_putc(b, '}');
    free(v);
}

/* GET /<index>/_mapping, GET /_mapping. */
static void handle_mapping(struct conn *c, const char *expr)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    struct buf b;

    if (n < 0) {
        reply_index_missing(c, missing);
        return;
    }
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    for (int i = 0; i < n; i++) {
        if (i)
            buf_putc(&b, ',');
        put_json_str(&b, ixs[i]->name, strlen(ixs[i]->name));
        buf_puts(&b, ":{\"mappings\":");
        mapping_json(ixs[i], &b);
        buf_putc(&b, '}');
    }
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

static void handle_root(struct conn *c)
{
    if (srv.set.flavor == FL_ES8) {
        reply_json(c, 200, json_pack(
            "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name", "searchd",
            "cluster_name", "ddb2es-double", "cluster_uuid", "searchd-double-uuid-000000",
            "version", "number", "8.15.0", "build_flavor", "default", "build_type", "tar",
            "build_hash", "searchd", "build_snapshot", false, "lucene_version", "9.11.1",
            "minimum_wire_compatibility_version", "7.17.0",
            "minimum_index_compatibility_version", "7.0.0", "tagline",
            "You Know, for Search"), NULL);
        return;
    }
    json_t *b = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:s}, s:s}", "name",
        "searchd", "cluster_name", "ddb2es-double", "cluster_uuid", "searchd-double-uuid-000000",
        "version", "distribution", "opensearch", "number", "2.11.0", "build_type", "tar",
        "build_hash", "searchd", "build_date", "2023-10-13T02:55:55.511945994Z",
        "build_snapshot", false, "lucene_version", "9.7.0",
        "minimum_wire_compatibility_version", "7.10.0", "minimum_index_compatibility_version",
        "7.0.0", "tagline", "The OpenSearch Project: https://opensearch.org/");
    reply_json(c, 200, b, NULL);
}

/* ---- index settings ---------------------------------------------------------
 * The "settings" of PUT /<index> and the body of PUT /<index>/_settings as
 * Settings.Builder#loadFromMap reads them: objects flatten to dotted keys,
 * values become text (numbers as Java prints what Jackson read), a null
 * value unsets the key, and a key without the "index." prefix gets it
 * (Settings.Builder#normalizePrefix, MetadataCreateIndexService,
 * MetadataUpdateSettingsService).  The double reads the mapping limits and
 * keeps the other settings unread (GET shows them).                         */

/* Adds v under the key in *key to flat (key -> string, list or null). */
static json_t *flatten_settings(const json_t *v, struct buf *key, json_t *flat)
{
    size_t mark = key->len;
    const char *k;
    json_t *e = NULL, *out;

    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, out) {
            buf_truncate(key, mark);
            if (mark)
                buf_putc(key, '.');
            buf_puts(key, k);
            if ((e = flatten_settings(out, key, flat)))
                break;
        }
        buf_truncate(key, mark);
        return e;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *el;
        out = json_array();
        json_array_foreach(v, i, el) {
            struct buf t;
            if (json_is_object(el) || json_is_array(el)) {
                json_decref(out);
                return unmodelled("objects or lists inside a list setting ([%s])", key->ptr);
            }
            buf_init(&t, BUF_NOMAX);
            java_str(el, &t);
            json_array_append_new(out, json_stringn(t.ptr ? t.ptr : "", t.len));
            buf_close(&t);
        }
    } else if (json_is_null(v)) {
        out = json_null();
    } else {
        struct buf t;
        buf_init(&t, BUF_NOMAX);
        if (json_is_real(v))
            java_double(json_real_value(v), &t);
        else
            java_str(v, &t);
        out = json_stringn(t.ptr ? t.ptr : "", t.len);
        buf_close(&t);
    }
    {
        struct buf full;
        buf_init(&full, BUF_NOMAX);
        if (strncmp(key->ptr ? key->ptr : "", "index.", 6) != 0)
            buf_puts(&full, "index.");
        buf_append(&full, key->ptr, key->len);
        if (json_object_get(flat, full.ptr ? full.ptr : ""))
            e = unmodelled("a setting given twice ([%s])", full.ptr ? full.ptr : "");
        else
            json_object_set(flat, full.ptr ? full.ptr : "", out);
        buf_close(&full);
    }
    json_decref(out);
    return e;
}

/* Long#parseLong (ASCII digits): 0, or -1 when it throws. */
static int parse_java_long(const char *s, long *out)
{
    bool neg = *s == '-';
    unsigned long long v = 0, max = neg ? (unsigned long long)LONG_MAX + 1 : LONG_MAX;
    const char *p = s + (*s == '-' || *s == '+');

    if (!*p)
        return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (max - (unsigned)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    *out = neg ? (v == (unsigned long long)LONG_MAX + 1 ? LONG_MIN : -(long)v) : (long)v;
    return 0;
}

/* Setting#longSetting with a minimum: Setting#get turns the parser's
 * NumberFormatException into "Failed to parse value [..] for setting [..]"
 * and #parseLong refuses a value below the minimum. */
static json_t *long_setting(const char *key, const json_t *v, long min, long *out)
{
    const char *s = json_string_value(v);
    json_t *e;

    if (!s)
        return unmodelled("a list for setting [%s]", key);
    if (parse_java_long(s, out) < 0) {
        e = errf("illegal_argument_exception", "Failed to parse value [%s] for setting [%s]", s,
                 key);
        json_object_set_new(e, "caused_by", errf("number_format_exception",
                                                 "For input string: \"%s\"", s));
        return e;
    }
    if (*out < min)
        return errf("illegal_argument_exception", "Failed to parse value [%s] for setting [%s] "
                    "must be >= %ld", s, key, min);
    return NULL;
}

/* Applies the settings in flat (normalised, null: back to the default) to
 * lim, as IndexScopedSettings#validate checks them (keys in sorted order):
 * index.mapping.depth.limit (>= 1), index.mapping.total_fields.limit (>= 0)
 * and, in Elasticsearch 8.13+, index.mapping.total_fields
 * .ignore_dynamic_beyond_limit (Booleans#parseBoolean), a setting
 * OpenSearch 2 does not have (AbstractScopedSettings#validate: "unknown
 * setting"; the "did you mean [..]?" it gives instead when a known key is
 * at least 70% alike is assumed not to apply: index.mapping.total_fields
 * .limit is 59% alike).  Other keys are not checked.  NULL, or the
 * IllegalArgumentException. */
static json_t *apply_settings(const json_t *flat, enum flavor fl, struct limits *lim)
{
    static const char depth[] = "index.mapping.depth.limit";
    static const char total[] = "index.mapping.total_fields.limit";
    static const char ignore[] = "index.mapping.total_fields.ignore_dynamic_beyond_limit";
    json_t *v, *e = NULL;

    if ((v = json_object_get(flat, depth))) {
        if (json_is_null(v))
            lim->depth = -1;
        else if ((e = long_setting(depth, v, 1, &lim->depth)))
            return e;
    }
    if ((v = json_object_get(flat, ignore))) {
        const char *s = json_string_value(v);
        if (fl == FL_OS2 && !json_is_null(v))
            return errf("illegal_argument_exception", "unknown setting [%s] please check that "
                        "any required plugins are installed, or check the breaking changes "
                        "documentation for removed settings", ignore);
        if (json_is_null(v))
            lim->ignore_beyond = false;
        else if (!s)
            return unmodelled("a list for setting [%s]", ignore);
        else if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
            lim->ignore_beyond = s[0] == 't';
        else
            return errf("illegal_argument_exception", "Failed to parse value [%s] as only [true] "
                        "or [false] are allowed.", s);
    }
    if ((v = json_object_get(flat, total))) {
        if (json_is_null(v))
            lim->fields = TOTAL_FIELDS_DEFAULT;
        else if ((e = long_setting(total, v, 0, &lim->fields)))
            return e;
    }
    return NULL;
}

/* flat_settings=true: settings keys as they are, not nested. */
static bool flat_settings(const struct request *r)
{
    char *v = query_param(r->query, "flat_settings");
    bool on = v && (!*v || strcmp(v, "true") == 0);

    free(v);
    return on;
}

/* Merges flat into the index's settings (a null removes the key). */
static void keep_settings(struct index *ix, const json_t *flat)
{
    const char *k;
    json_t *v;

    if (!ix->settings)
        ix->settings = json_object();
    json_object_foreach((json_t *)flat, k, v) {
        if (json_is_null(v))
            json_object_del(ix->settings, k);
        else
            json_object_set(ix->settings, k, v);
    }
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The index's settings as GET /<index>/_settings prints them
 * (Settings#toXContent): the keys the double always shows, then what was
 * given, nested at the dots unless flat (flat_settings=true), all values
 * text. */
static json_t *settings_json(const struct index *ix, bool flat)
{
    json_t *all = json_pack("{s:s, s:s}", "index.number_of_replicas", "1",
                            "index.number_of_shards", "1");
    json_t *out = json_object(), *v;
    const char **keys;
    const char *k;
    size_t n = 0;

    json_object_update(all, ix->settings);
    json_object_set_new(all, "index.provided_name", json_string(ix->name));
    json_object_set_new(all, "index.uuid", json_string(ix->uuid));
    if (!(keys = malloc(json_object_size(all) * sizeof(*keys)))) {
        json_decref(all);
        return out;
    }
    json_object_foreach(all, k, v)
        keys[n++] = k;
    qsort(keys, n, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < n; i++) {
        json_t *node = out;
        char *path = strdup(keys[i]), *save = NULL, *seg, *next;
        v = json_object_get(all, keys[i]);
        if (flat || !path) {
            json_object_set(out, keys[i], v);
            free(path);
            continue;
        }
        for (seg = strtok_r(path, ".", &save); seg; seg = next) {
            json_t *child;
            if (!(next = strtok_r(NULL, ".", &save))) {
                if (!json_object_get(node, seg))
                    json_object_set(node, seg, v);
                break;
            }
            child = json_object_get(node, seg);
            if (!child) {
                child = json_object();
                json_object_set_new(node, seg, child);
            }
            if (!json_is_object(child))
                break; /* "a" and "a.b" both set: the shorter one shows */
            node = child;
        }
        free(path);
    }
    free(keys);
    json_decref(all);
    return out;
}

/* The body of PUT /<index> (CreateIndexRequest#source): "settings" (an
 * object; flat gets them, lim the limits read from them), "mappings",
 * "aliases" (none modelled); any other key is refused.  Settings are checked
 * before the mapping is parsed (MetadataCreateIndexService validates the
 * index settings, then merges the mapping).  NULL, or the error
 * (*mapping_err: a mapping's, to be wrapped as MapperService does). */
static json_t *create_body(const struct request *r, struct mapping *m, struct map *fields,
                           json_t *flat, struct limits *lim, bool *mapping_err)
{
    json_error_t jerr;
    json_t *j, *v, *e = NULL;
    const char *k;

    *mapping_err = false;
    if (r->data_len == 0)
        return NULL;
    /* XContentHelper#convertToMap; Jackson refuses a name twice */
    j = json_loadb(r->data, r->data_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        e = errf("parse_exception", "Failed to parse content to map");
        json_object_set_new(e, "caused_by", errf("json_parse_exception", "%s",
                                                 j ? "expected an object" : jerr.text));
        json_decref(j);
        return e;
    }
    json_object_foreach(j, k, v) {
        if (strcmp(k, "settings") == 0) {
            if (!json_is_object(v))
                e = errf("parse_exception", "key [settings] must be an object");
        } else if (strcmp(k, "aliases") == 0) {
            if (json_object_size(v) || json_array_size(v))
                e = unmodelled("aliases");
        } else if (strcmp(k, "mappings") == 0) {
            if (!json_is_object(v))
                e = unmodelled("\"mappings\" that are not an object");
        } else {
            e = errf("parse_exception", "unknown key [%s] for create index", k);
        }
        if (e)
            break;
    }
    if (!e && (v = json_object_get(j, "settings"))) {
        struct buf key;
        buf_init(&key, BUF_NOMAX);
        e = buf_reserve(&key, 64) < 0 ? err_obj("exception", "out of memory")
                                      : flatten_settings(v, &key, flat);
        buf_close(&key);
        if (!e)
            e = apply_settings(flat, srv.set.flavor, lim);
    }
    if (!e && (v = json_object_get(j, "mappings")))
        *mapping_err = (e = parse_mappings(srv.set.flavor, v, m, fields)) != NULL;
    json_decref(j);
    return e;
}

static void handle_index(struct conn *c, struct request *r, const char *name)
{
    struct index *ix = index_get(name);
    char why[400];

    if (strcmp(r->method, "HEAD") == 0) {
        reply(c, ix ? 200 : 404, "application/json; charset=UTF-8", NULL, NULL, 0);
        return;
    }
    if (strcmp(r->method, "PUT") == 0) {
        if (ix) {
            snprintf(why, sizeof(why), "index [%s/%s] already exists", ix->name, ix->uuid);
            json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "type",
                                  "resource_already_exists_exception", "reason", why,
                                  "index_uuid", ix->uuid, "index", ix->name);
            reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        if (!valid_index_name(name, why, sizeof(why))) {
            json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "type", "invalid_index_name_exception",
                                  "reason", why, "index_uuid", "_na_", "index", name);
            reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        struct mapping m = { .date_detection = true };
        struct map fields = { 0 };
        struct limits lim = { .depth = -1, .fields = TOTAL_FIELDS_DEFAULT };
        json_t *flat = json_object();
        bool mapping_err;
        json_t *e = create_body(r, &m, &fields, flat, &lim, &mapping_err);
        /* DocumentMapper#validate: the explicit mapping within the limits */
        if (!e && !(e = limits_exceeded(&lim, &fields, NULL, false, srv.set.flavor)))
            ix = index_create(name);
        if (e || !ix) {
            mapping_clear(&m);
            map_clear(&fields, field_free);
            json_decref(flat);
            if (!e)
                reply_error(c, 500, "exception", "out of memory");
            else if (mapping_err)
                reply_mapping_error(c, e);
            else
                reply_json(c, 400, es_error_body(400, e), NULL);
            return;
        }
        mapping_clear(&ix->mapping);
        map_clear(&ix->fields, field_free);
        ix->mapping = m;
        ix->fields = fields;
        ix->lim = lim;
        keep_settings(ix, flat);
        json_decref(flat);
        reply_json(c, 200, json_pack("{s:b, s:b, s:s}", "acknowledged", true,
                                            "shards_acknowledged", true, "index", name), NULL);
        return;
    }
    if (!ix) {
        reply_index_missing(c, name);
        return;
    }
    if (strcmp(r->method, "DELETE") == 0) {
        index_drop(ix);
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    /* GET */
    struct buf b;
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    put_json_str(&b, ix->name, strlen(ix->name));
    buf_puts(&b, ":{\"aliases\":{},\"mappings\":");
    mapping_json(ix, &b);
    buf_puts(&b, ",\"settings\":");
    json_t *st = settings_json(ix, flat_settings(r));
    put_json(&b, st);
    json_decref(st);
    buf_puts(&b, "}}");
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

/* GET /<index>/_settings, GET /_settings: {"<index>":{"settings":{...}}}. */
static void handle_get_settings(struct conn *c, const struct request *r, const char *expr)
{
    struct index *ixs[256];
    const char *missing = NULL;
    int n = resolve_indices(expr, ixs, 256, &missing);
    json_t *out;

    if (n < 0) {
        reply_index_missing(c, missing);
        return;
    }
    out = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(out, ixs[i]->name, json_pack("{s:o}", "settings",
                                                         settings_json(ixs[i],
                                                                       flat_settings(r))));
    reply_json(c, 200, out, NULL);
}

/* PUT /<index>/_settings (UpdateSettingsRequest#fromXContent: the body, or
 * its "settings" object when it has one; MetadataUpdateSettingsService
 * normalises the keys and validates them; every setting the double reads is
 * dynamic).  A null value puts a setting back to its default. */
static void handle_put_settings(struct conn *c, const struct request *r, const char *name)
{
    struct index *ix = index_get(name);
    json_error_t jerr;
    json_t *j, *body, *flat = NULL, *e = NULL;
    struct limits lim;
    struct buf key;

    if (!ix) {
        reply_index_missing(c, name);
        return;
    }
    if (r->data_len == 0) { /* RestRequest#requiredContent */
        reply_error(c, 400, "parse_exception", "request body is required");
        return;
    }
    /* a body that is not a JSON object: the double's own text */
    j = json_loadb(r->data, r->data_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(c, 400, "parse_exception", j ? "request body must be an object" : jerr.text);
        return;
    }
    body = json_is_object(json_object_get(j, "settings")) ? json_object_get(j, "settings") : j;
    flat = json_object();
    buf_init(&key, BUF_NOMAX);
    e = buf_reserve(&key, 64) < 0 ? err_obj("exception", "out of memory")
                                  : flatten_settings(body, &key, flat);
    buf_close(&key);
    if (!e && json_object_size(flat) == 0)
        e = err_obj("action_request_validation_exception",
                    "Validation Failed: 1: no settings to update;");
    lim = ix->lim;
    if (!e && !(e = apply_settings(flat, srv.set.flavor, &lim))) {
        ix->lim = lim;
        keep_settings(ix, flat);
    }
    json_decref(flat);
    json_decref(j);
    if (e)
        reply_json(c, 400, es_error_body(400, e), NULL);
    else
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
}

/* ------------------------------------------------------------------------ */
/* Authentication                                                           */

static void b64_encode(const char *in, size_t n, char *out, size_t outcap)
{
    if (outcap < 4 * ((n + 2) / 3) + 1) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static bool const_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static void reply_401(struct conn *c, const struct request *r, const char *reason)
{
    static const char www[] = "Basic realm=\"security\" charset=\"UTF-8\"";
    json_t *e = json_pack("{s:s, s:s, s:{s:[s, s]}}", "type", "security_exception", "reason",
                          reason, "header", "WWW-Authenticate", www, "ApiKey");

    srv.st.auth_failures++;
    reply_json(c, 401, es_error_body(401, e),
               "WWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\n"
               "WWW-Authenticate: ApiKey\r\n");
}

static void reply_403_aws(struct conn *c, const char *message)
{
    srv.st.auth_failures++;
    reply_json(c, 403, json_pack("{s:s}", "message", message), "x-amzn-ErrorType: "
               "InvalidSignatureException\r\n");
}

static bool check_basic(struct conn *c, const struct request *r)
{
    const char *a = req_header(r, "authorization");
    char reason[400], expect[1024], plain[600];

    if (!a || strncasecmp(a, "Basic ", 6) != 0) {
        snprintf(reason, sizeof(reason), "missing authentication credentials for REST request [%.200s]",
                 r->path);
        reply_401(c, r, reason);
        return false;
    }
    snprintf(plain, sizeof(plain), "%s:%s", srv.set.user ? srv.set.user : "",
             srv.set.password ? srv.set.password : "");
    b64_encode(plain, strlen(plain), expect, sizeof(expect));
    OPENSSL_cleanse(plain, sizeof(plain));
    a += 6;
    while (*a == ' ')
        a++;
    bool ok = const_eq(a, expect);
    OPENSSL_cleanse(expect, sizeof(expect));
    if (!ok) {
        /* name the user the client sent, as ES does (never the password) */
        unsigned char dec[600] = { 0 };
        size_t al = strlen(a);
        int n = al < 780 ? EVP_DecodeBlock(dec, (const unsigned char *)a, (int)al) : -1;
        char *colon = n > 0 ? strchr((char *)dec, ':') : NULL;
        if (colon)
            *colon = '\0';
        snprintf(reason, sizeof(reason), "unable to authenticate user [%.100s] for REST request [%.200s]",
                 colon ? (char *)dec : "", r->path);
        OPENSSL_cleanse(dec, sizeof(dec));
        reply_401(c, r, reason);
    }
    return ok;
}

static bool check_apikey(struct conn *c, const struct request *r)
{
    const char *a = req_header(r, "authorization");
    const char *k = srv.set.api_key ? srv.set.api_key : "";
    char reason[400], expect[1024];

    if (!a || strncasecmp(a, "ApiKey ", 7) != 0) {
        snprintf(reason, sizeof(reason), "missing authentication credentials for REST request [%.200s]",
                 r->path);
        reply_401(c, r, reason);
        return false;
    }
    if (strchr(k, ':'))
        b64_encode(k, strlen(k), expect, sizeof(expect));
    else
        snprintf(expect, sizeof(expect), "%s", k);
    a += 7;
    while (*a == ' ')
        a++;
    bool ok = *k && const_eq(a, expect);
    OPENSSL_cleanse(expect, sizeof(expect));
    if (!ok) {
        snprintf(reason, sizeof(reason), "unable to authenticate with provided credentials and "
                 "anonymous access is not allowed for this request");
        reply_401(c, r, reason);
    }
    return ok;
}

static const char sig_mismatch[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

static const char *received_header(void *ctx, const char *name)
{
    return req_header(ctx, name);
}

static bool check_sigv4(struct conn *c, struct request *r)
{
    const struct settings *s = &srv.set;
    struct sigv4_key key = { .access_key_id = s->access_key ? s->access_key : "",
                             .secret_access_key = s->secret_key ? s->secret_key : "",
                             .session_token = s->session_token };
    char msg[512];

    if (sigv4_verify(&(struct sigv4_check){ .method = r->method, .path = r->path,
                                            .query = r->query, .header = received_header,
                                            .ctx = r, .body = r->body, .body_len = r->body_len,
                                            .region = s->region ? s->region : "",
                                            .service = s->service ? s->service : "es",
                                            .key = &key,
                                            .require_content_sha256 =
                                                s->service && strcmp(s->service, "aoss") == 0,
                                            .now = time(NULL) },
                     msg, sizeof(msg)) == 0)
        return true;
    reply_403_aws(c, msg);
    return false;
}

static bool check_auth(struct conn *c, struct request *r)
{
    switch (srv.set.auth) {
    case AUTH_NONE: return true;
    case AUTH_BASIC: return check_basic(c, r);
    case AUTH_APIKEY: return check_apikey(c, r);
    case AUTH_SIGV4: return check_sigv4(c, r);
    }
    return false;
}

static int parse_auth(const char *s, enum auth_mode *out)
{
    static const char *const names[] = { "none", "basic", "apikey", "sigv4" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum auth_mode)i;
            return 0;
        }
    return -EINVAL;
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */

static void faults_clear(void)
{
    for (size_t i = 0; i < srv.nfaults; i++) {
        free(srv.faults[i].body);
        json_decref(srv.faults[i].ids);
    }
    free(srv.faults);
    srv.faults = NULL;
    srv.nfaults = 0;
}

static void conns_close_all(struct conn *except);

/* Parses one rule; a "down_ms" rule takes effect at once and is not queued. */
static int fault_parse(json_t *j, struct fault *f, char *why, size_t wlen)
{
    const char *m = json_string_value(json_object_get(j, "match"));
    const char *act = json_string_value(json_object_get(j, "action"));
    json_t *items = json_object_get(j, "items"), *cnt = json_object_get(j, "count"), *ids;

    memset(f, 0, sizeof(*f));
    if (!json_is_object(j)) {
        snprintf(why, wlen, "a rule must be an object");
        return -EINVAL;
    }
    if (!m || strcmp(m, "any") == 0 || strcmp(m, "*") == 0)
        f->match = FM_ANY;
    else if (strcmp(m, "bulk") == 0)
        f->match = FM_BULK;
    else if (strcmp(m, "search") == 0)
        f->match = FM_SEARCH;
    else if (strcmp(m, "doc") == 0)
        f->match = FM_DOC;
    else if (strcmp(m, "count") == 0)
        f->match = FM_COUNT;
    else {
        snprintf(why, wlen, "unknown match [%s]: any, bulk, search, doc, count", m);
        return -EINVAL;
    }
    f->count = json_is_integer(cnt) ? (long)json_integer_value(cnt) : 1;
    f->delay_ms = (long)json_integer_value(json_object_get(j, "delay_ms"));
    if (act && strcmp(act, "reset") == 0) {
        f->kind = FK_RESET;
    } else if (act && strcmp(act, "drop") == 0) {
        f->kind = FK_DROP;
    } else if (act) {
        snprintf(why, wlen, "unknown action [%s]: reset, drop", act);
        return -EINVAL;
    } else if (json_is_integer(json_object_get(j, "item_status"))) {
        f->kind = FK_ITEMS;
        f->item_status = (int)json_integer_value(json_object_get(j, "item_status"));
        if (!items || (json_is_string(items) && strcmp(json_string_value(items), "all") == 0))
            f->items = IS_ALL;
        else if (json_is_string(items) && strcmp(json_string_value(items), "odd") == 0)
            f->items = IS_ODD;
        else if (json_is_string(items) && strcmp(json_string_value(items), "even") == 0)
            f->items = IS_EVEN;
        else if (json_is_integer(items)) {
            f->items = IS_FIRST;
            f->nitems = (long)json_integer_value(items);
        } else {
            snprintf(why, wlen, "items must be \"all\", \"odd\", \"even\" or a number");
            return -EINVAL;
        }
        if (f->item_status < 100 || f->item_status > 599) {
            snprintf(why, wlen, "bad item_status");
            return -EINVAL;
        }
        if ((ids = json_object_get(j, "ids"))) {
            size_t i;
            json_t *v;
            bool strings = json_is_array(ids);
            json_array_foreach(ids, i, v)
                strings = strings && json_is_string(v);
            if (!strings) {
                snprintf(why, wlen, "ids must be a list of document ids");
                return -EINVAL;
            }
            f->ids = json_incref(ids);
        }
    } else if (json_object_get(j, "ids")) {
        snprintf(why, wlen, "ids needs item_status");
        return -EINVAL;
    } else if (json_is_integer(json_object_get(j, "status"))) {
        f->kind = FK_STATUS;
        f->status = (int)json_integer_value(json_object_get(j, "status"));
        if (f->status < 100 || f->status > 599) {
            snprintf(why, wlen, "bad status");
            return -EINVAL;
        }
        f->body = xstrdup(json_string_value(json_object_get(j, "body")));
    } else if (f->delay_ms > 0) {
        f->kind = FK_DELAY;
    } else {
        snprintf(why, wlen, "a rule needs status, item_status, delay_ms, action or down_ms");
        return -EINVAL;
    }
    return 0;
}

static bool fault_applies(const struct fault *f, enum route rt)
{
    switch (f->match) {
    case FM_ANY: return true;
    case FM_BULK: return rt == RT_BULK || rt == RT_INDEX_BULK;
    case FM_SEARCH: return rt == RT_SEARCH;
    case FM_DOC: return rt == RT_DOC;
    case FM_COUNT: return rt == RT_COUNT;
    }
    return false;
}

/* Takes one use of the first rule matching the route; the copy is the
 * caller's (body pointer borrowed until the next faults change). */
static bool fault_take(enum route rt, struct fault *out)
{
    for (size_t i = 0; i < srv.nfaults; i++) {
        struct fault *f = &srv.faults[i];
        if (f->count == 0 || !fault_applies(f, rt))
            continue;
        *out = *f;
        if (f->count > 0)
            f->count--;
        srv.st.faults_applied++;
        return true;
    }
    return false;
}

static void reply_injected(struct conn *c, const struct fault *f)
{
    json_t *e;

    if (f->body) {
        reply(c, f->status, "application/json; charset=UTF-8", NULL, strdup(f->body),
                     strlen(f->body));
        return;
    }
    switch (f->status) {
    case 429:
        e = err_obj("es_rejected_execution_exception",
                    "rejected execution of coordinating operation [coordinating_and_primary_bytes="
                    "0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_"
                    "coordinating_and_primary_bytes=0]");
        break;
    case 503:
        e = err_obj("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];");
        break;
    case 413:
        e = err_obj("content_too_long_exception", "request body is too large (injected)");
        break;
    case 401:
        e = err_obj("security_exception", "missing authentication credentials (injected)");
        break;
    case 403:
        reply_json(c, 403, json_pack("{s:s}", "message", sig_mismatch), NULL);
        return;
    default:
        e = err_obj("exception", "injected failure");
        break;
    }
    reply_json(c, f->status, es_error_body(f->status, e), NULL);
}

/* ------------------------------------------------------------------------ */
/* The control API: /_double/...                                            */

static void handle_dump(struct conn *c)
{
    const char *names[1024];
    size_t n = 0;
    struct buf b;

    for (size_t i = 0; i < srv.indices.cap && n < 1024; i++) {
        struct index *ix = srv.indices.slots[i].key ? srv.indices.slots[i].val : NULL;
        if (ix && ix->exists)
            names[n++] = ix->name;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    buf_init(&b, BUF_NOMAX);
    buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++) {
        struct index *ix = index_get(names[i]);
        size_t k;
        struct doc **v = sorted_docs(ix, true, &k);
        if (i)
            buf_putc(&b, ',');
        put_json_str(&b, ix->name, strlen(ix->name));
        buf_puts(&b, ":{");
        for (size_t j = 0; v && j < k; j++) {
            if (j)
                buf_putc(&b, ',');
            put_json_str(&b, v[j]->id, v[j]->id_len);
            buf_printf(&b, ":{\"version\":%" PRId64 ",\"deleted\":%s,\"source\":", v[j]->version,
                       v[j]->deleted ? "true" : "false");
            if (v[j]->source)
                buf_append(&b, v[j]->source, v[j]->source_len);
            else
                buf_puts(&b, "null");
            buf_putc(&b, '}');
        }
        buf_putc(&b, '}');
        free(v);
    }
    buf_putc(&b, '}');
    size_t len = b.len;
    reply(c, 200, "application/json; charset=UTF-8", NULL, buf_take(&b), len);
}

static void handle_stats(struct conn *c)
{
    json_t *req = json_object(), *items = json_object(), *acts = json_object();
    char k[16];

    for (int r = 0; r < RT_N; r++) {
        json_t *by = NULL;
        for (int s = 0; s < 600; s++) {
            if (!srv.st.requests[r][s])
                continue;
            if (!by)
                by = json_object();
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(by, k, json_integer((json_int_t)srv.st.requests[r][s]));
        }
        if (by)
            json_object_set_new(req, route_name[r], by);
    }
    for (int s = 0; s < 600; s++)
        if (srv.st.items[s]) {
            snprintf(k, sizeof(k), "%d", s);
            json_object_set_new(items, k, json_integer((json_int_t)srv.st.items[s]));
        }
    for (int o = 0; o < OP_N; o++)
        json_object_set_new(acts, op_name[o], json_integer((json_int_t)srv.st.actions[o]));
    json_t *b = json_pack("{s:o, s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "requests", req,
                          "bulk_requests", (json_int_t)srv.st.bulk_requests, "actions", acts,
                          "items", items, "bytes_received", (json_int_t)srv.st.bytes_received,
                          "body_bytes", (json_int_t)srv.st.body_bytes, "auth_failures",
                          (json_int_t)srv.st.auth_failures, "connections",
                          (json_int_t)srv.st.connections, "faults_applied",
                          (json_int_t)srv.st.faults_applied, "faults_pending",
                          (json_int_t)srv.nfaults);
    reply_json(c, 200, b, NULL);
}

static void handle_faults(struct conn *c, struct request *r)
{
    json_error_t jerr;
    json_t *j;
    char why[200];
    size_t added = 0;

    if (strcmp(r->method, "DELETE") == 0) {
        faults_clear();
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    if (strcmp(r->method, "GET") == 0) {
        json_t *list = json_array();
        for (size_t i = 0; i < srv.nfaults; i++) {
            json_t *one = json_pack("{s:i, s:I, s:i, s:i}", "kind", (int)srv.faults[i].kind,
                                    "count", (json_int_t)srv.faults[i].count, "status",
                                    srv.faults[i].status, "item_status",
                                    srv.faults[i].item_status);
            if (srv.faults[i].ids)
                json_object_set(one, "ids", srv.faults[i].ids);
            json_array_append_new(list, one);
        }
        reply_json(c, 200, list, NULL);
        return;
    }
    j = json_loadb(r->data, r->data_len, 0, &jerr);
    if (!j) {
        reply_error(c, 400, "parse_exception", jerr.text);
        return;
    }
    if (json_is_object(j))
        j = json_pack("[o]", j);
    if (!json_is_array(j)) {
        json_decref(j);
        reply_error(c, 400, "illegal_argument_exception", "expected a list of rules");
        return;
    }
    size_t i;
    json_t *rule;
    uint64_t down = 0;
    json_array_foreach(j, i, rule) {
        json_t *dm = json_object_get(rule, "down_ms");
        struct fault f;
        if (json_is_integer(dm)) {
            down = (uint64_t)json_integer_value(dm);
            continue;
        }
        if (fault_parse(rule, &f, why, sizeof(why)) < 0) {
            free(f.body);
            json_decref(f.ids);
            json_decref(j);
            reply_error(c, 400, "illegal_argument_exception", why);
            return;
        }
        struct fault *n = realloc(srv.faults, (srv.nfaults + 1) * sizeof(*n));
        if (!n) {
            free(f.body);
            json_decref(f.ids);
            json_decref(j);
            reply_error(c, 500, "exception", "out of memory");
            return;
        }
        srv.faults = n;
        srv.faults[srv.nfaults++] = f;
        added++;
    }
    json_decref(j);
    if (down) {
        srv.down_until_ms = now_ms() + down;
        c->close_after = true;
        conns_close_all(c);
    }
    reply_json(c, 200, json_pack("{s:b, s:I}", "acknowledged", true, "rules", (json_int_t)added),
               NULL);
}

static int parse_flavor(const char *s, enum flavor *out)
{
    if (strcmp(s, "os2") == 0)
        *out = FL_OS2;
    else if (strcmp(s, "es8") == 0)
        *out = FL_ES8;
    else
        return -EINVAL;
    return 0;
}

static void handle_config(struct conn *c, struct request *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->data, r->data_len, 0, &jerr), *v;
    struct settings *s = &srv.set;
    const char *k;

    if (!json_is_object(j)) {
        json_decref(j);
        reply_error(c, 400, "parse_exception", j ? "expected an object" : jerr.text);
        return;
    }
    json_object_foreach(j, k, v) {
        const char *sv = json_string_value(v);
        char **dst = NULL;
        if (strcmp(k, "auth") == 0) {
            if (!sv || parse_auth(sv, &s->auth) < 0)
                goto bad;
        } else if (strcmp(k, "user") == 0) dst = &s->user;
        else if (strcmp(k, "password") == 0) dst = &s->password;
        else if (strcmp(k, "api_key") == 0) dst = &s->api_key;
        else if (strcmp(k, "access_key") == 0) dst = &s->access_key;
        else if (strcmp(k, "secret_key") == 0) dst = &s->secret_key;
        else if (strcmp(k, "session_token") == 0) dst = &s->session_token;
        else if (strcmp(k, "region") == 0) dst = &s->region;
        else if (strcmp(k, "service") == 0) dst = &s->service;
        else if (strcmp(k, "poison_field") == 0) dst = &s->poison_field;
        else if (strcmp(k, "max_body") == 0) {
            if (json_is_integer(v) && json_integer_value(v) > 0)
                s->max_body = (size_t)json_integer_value(v);
            else if (!sv || parse_size(sv, &s->max_body) < 0)
                goto bad;
        } else if (strcmp(k, "gc_deletes") == 0) {
            if (json_is_number(v) && json_number_value(v) >= 0)
                s->gc_deletes_ms = (uint64_t)(json_number_value(v) * 1000);
            else if (!sv || parse_duration_ms(sv, &s->gc_deletes_ms) < 0)
                goto bad;
        } else if (strcmp(k, "depth_limit") == 0) {
            if (!json_is_integer(v))
                goto bad;
            s->depth_limit = (int)json_integer_value(v);
        } else if (strcmp(k, "discard") == 0) {
            s->discard = json_is_true(v);
        } else if (strcmp(k, "flavor") == 0) {
            if (!sv || parse_flavor(sv, &s->flavor) < 0)
                goto bad;
        } else {
            goto bad;
        }
        if (dst) {
            if (!json_is_null(v) && !sv)
                goto bad;
            set_str(dst, sv);
        }
        continue;
bad:
        {
            char why[200];
            snprintf(why, sizeof(why), "bad or unknown setting [%s]", k);
            json_decref(j);
            reply_error(c, 400, "illegal_argument_exception", why);
            return;
        }
    }
    json_decref(j);
    reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
}

static void handle_control(struct conn *c, struct request *r)
{
    const char *p = r->path + strlen("/_double/");

    if (strcmp(p, "faults") == 0) {
        handle_faults(c, r);
        return;
    }
    if (strcmp(p, "config") == 0 && strcmp(r->method, "POST") == 0) {
        handle_config(c, r);
        return;
    }
    if (strcmp(p, "reset") == 0 && strcmp(r->method, "POST") == 0) {
        map_clear(&srv.indices, index_free);
        faults_clear();
        memset(&srv.st, 0, sizeof(srv.st));
        srv.down_until_ms = 0;
        reply_json(c, 200, json_pack("{s:b}", "acknowledged", true), NULL);
        return;
    }
    if (strcmp(p, "dump") == 0) {
        handle_dump(c);
        return;
    }
    if (strcmp(p, "stats") == 0) {
        handle_stats(c);
        return;
    }
    reply_error(c, 404, "resource_not_found_exception", "unknown control endpoint");
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */

static void free_segs(struct request *r)
{
    for (size_t i = 0; i < r->nseg; i++)
        free(r->segs[i]);
    r->nseg = 0;
}

static int split_path(struct request *r)
{
    const char *p = r->path;

    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        if (r->nseg == 8)
            return -E2BIG;
        if (!(r->segs[r->nseg] = pct_decode(s, (size_t)(p - s), false)))
            return -ENOMEM;
        r->nseg++;
    }
    return 0;
}

static bool is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static enum route classify(const struct request *r)
{
    char *const *s = r->segs;

    switch (r->nseg) {
    case 0: return RT_ROOT;
    case 1:
        if (is(s[0], "_bulk")) return RT_BULK;
        if (is(s[0], "_search")) return RT_SEARCH;
        if (is(s[0], "_count")) return RT_COUNT;
        if (is(s[0], "_refresh")) return RT_REFRESH;
        if (is(s[0], "_mapping")) return RT_MAPPING;
        if (is(s[0], "_settings")) return RT_SETTINGS;
        return s[0][0] == '_' ? RT_OTHER : RT_INDEX;
    case 2:
        if (is(s[1], "_bulk")) return RT_INDEX_BULK;
        if (is(s[1], "_search")) return RT_SEARCH;
        if (is(s[1], "_count")) return RT_COUNT;
        if (is(s[1], "_refresh")) return RT_REFRESH;
        if (is(s[1], "_mapping")) return RT_MAPPING;
        if (is(s[1], "_settings")) return RT_SETTINGS;
        if (is(s[1], "_doc")) return RT_DOC; /* POST /{index}/_doc: auto id */
        return RT_OTHER;
    case 3:
        if (is(s[1], "_doc") || is(s[1], "_create")) return RT_DOC;
        return RT_OTHER;
    default: return RT_OTHER;
    }
}

static void reply_no_handler(struct conn *c, const struct request *r)
{
    char msg[600];

    snprintf(msg, sizeof(msg), "no handler found for uri [%s] and method [%s]", r->path,
             r->method);
    reply_json(c, 400, json_pack("{s:s}", "error", msg), NULL);
}

static void route_request(struct conn *c, struct request *r, const struct fault *ifault)
{
    const char *m = r->method;
    char *const *s = r->segs;
    bool get = is(m, "GET") || is(m, "HEAD"), post = is(m, "POST") || is(m, "PUT");

    switch (r->route) {
    case RT_ROOT:
        if (get) {
            handle_root(c);
            return;
        }
        break;
    case RT_BULK:
        if (post) {
            handle_bulk(c, r, NULL, ifault);
            return;
        }
        break;
    case RT_INDEX_BULK:
        if (post) {
            handle_bulk(c, r, s[0], ifault);
            return;
        }
        break;
    case RT_SEARCH:
        if (get || is(m, "POST")) {
            handle_search(c, r, r->nseg == 2 ? s[0] : NULL, false);
            return;
        }
        break;
    case RT_COUNT:
        if (get || is(m, "POST")) {
            handle_search(c, r, r->nseg == 2 ? s[0] : NULL, true);
            return;
        }
        break;
    case RT_MAPPING:
        if (get) {
            handle_mapping(c, r->nseg == 2 ? s[0] : NULL);
            return;
        }
        break;
    case RT_SETTINGS:
        if (get) {
            handle_get_settings(c, r, r->nseg == 2 ? s[0] : NULL);
            return;
        }
        if (is(m, "PUT") && r->nseg == 2) {
            handle_put_settings(c, r, s[0]);
            return;
        }
        break;
    case RT_REFRESH:
        if (get || is(m, "POST")) {
            reply_json(c, 200, json_pack("{s:{s:i, s:i, s:i}}", "_shards", "total", 1,
                                                "successful", 1, "failed", 0), NULL);
            return;
        }
        break;
    case RT_INDEX:
        if (get || is(m, "PUT") || is(m, "DELETE")) {
            handle_index(c, r, s[0]);
            return;
        }
        break;
    case RT_DOC:
        if (r->nseg == 2 && is(m, "POST")) {
            handle_write_doc(c, r, OP_INDEX, s[0], NULL);
            return;
        }
        if (r->nseg != 3) break;
        if (is(s[1], "_create") && post) {
            handle_write_doc(c, r, OP_CREATE, s[0], s[2]);
            return;
        }
        if (!is(s[1], "_doc")) break;
        if (get) {
            handle_get_doc(c, s[0], s[2]);
            return;
        }
        if (post) {
            handle_write_doc(c, r, OP_INDEX, s[0], s[2]);
            return;
        }
        if (is(m, "DELETE")) {
            handle_write_doc(c, r, OP_DELETE, s[0], s[2]);
            return;
        }
        break;
    default:
        break;
    }
    reply_no_handler(c, r);
}

/* ------------------------------------------------------------------------ */
/* HTTP: request heads, bodies, dispatch                                    */

static int parse_head(char *base, size_t len, struct head *h)
{
    char *p = base, *e = base + len, *eol;

    memset(h, 0, sizeof(*h));
    eol = memchr(p, '\r', (size_t)(e - p));
    if (!eol || eol + 1 >= e || eol[1] != '\n')
        return -EINVAL;
    *eol = '\0';
    char *sp1 = strchr(p, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 - p > 15 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return -EINVAL;
    *sp1 = *sp2 = '\0';
    h->method = 0;
    h->target = (uint32_t)(sp1 + 1 - base);
    h->minor = sp2[8] == '0' ? 0 : 1;
    p = eol + 2;
    while (p < e) {
        eol = memchr(p, '\r', (size_t)(e - p));
        if (!eol || eol + 1 >= e || eol[1] != '\n')
            return -EINVAL;
        if (eol == p)
            break; /* the empty line */
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (!colon || colon == p || *p == ' ' || *p == '\t' || h->nhdr == MAX_HDRS)
            return -EINVAL;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        for (char *t = eol - 1; t >= v && (*t == ' ' || *t == '\t'); t--)
            *t = '\0';
        h->hdr[h->nhdr++] = (struct hoff){ (uint32_t)(p - base), (uint32_t)(v - base) };
        if (strcasecmp(p, "content-length") == 0) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || end == v || *end || (h->has_cl && h->cl != n))
                return -EINVAL;
            h->cl = (size_t)n;
            h->has_cl = true;
        } else if (strcasecmp(p, "transfer-encoding") == 0) {
            if (strcasecmp(v, "chunked") != 0)
                return -EINVAL;
            h->chunked = true;
        } else if (strcasecmp(p, "expect") == 0) {
            h->expect = strcasecmp(v, "100-continue") == 0;
        } else if (strcasecmp(p, "connection") == 0) {
            h->conn_close = strcasestr(v, "close") != NULL;
            h->conn_keep = strcasestr(v, "keep-alive") != NULL;
        }
        p = eol + 2;
    }
    if (h->chunked && h->has_cl)
        return -EINVAL;
    return 0;
}

/* Gunzips into out (bounded by the body cap). */
static int inflate_body(const char *p, size_t n, struct buf *out)
{
    z_stream z;
    int zr = Z_OK, rc = 0;

    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    while (zr != Z_STREAM_END) {
        if ((rc = buf_reserve(out, 64 * 1024)) < 0)
            break;
        z.next_out = (Bytef *)out->ptr + out->len;
        z.avail_out = (uInt)(out->cap - out->len - 1);
        size_t before = z.avail_out;
        zr = inflate(&z, Z_NO_FLUSH);
        out->len += before - z.avail_out;
        out->ptr[out->len] = '\0';
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK || (z.avail_in == 0 && z.avail_out != 0)) {
            rc = -EBADMSG;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

static void reply_too_large(struct conn *c, size_t got)
{
    char reason[200];

    snprintf(reason, sizeof(reason),
             "request body is too large: [%zu] bytes, the limit is [%zu] (http.max_content_length)",
             got, srv.set.max_body);
    reply_error(c, 413, "content_too_long_exception", reason);
}

static bool content_type_ok(const char *ct)
{
    static const char *const ok[] = { "application/json", "application/x-ndjson",
                                      "application/vnd.elasticsearch+json",
                                      "application/vnd.elasticsearch+x-ndjson" };
    size_t n;

    if (!ct)
        return false;
    n = strcspn(ct, "; \t");
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strlen(ok[i]) == n && strncasecmp(ct, ok[i], n) == 0)
            return true;
    return false;
}

/* Handles one complete request whose head and body are in c->in. */
static void dispatch(struct conn *c, const char *body, size_t body_len)
{
    struct request r;
    struct buf inflated;
    struct fault f;
    bool has_fault = false;
    char *base = c->in.ptr;
    const char *ce, *ae;

    memset(&r, 0, sizeof(r));
    buf_init(&inflated, srv.set.max_body);
    c->last_status = 0;
    r.method = base + c->h.method;
    r.path = base + c->h.target;
    for (size_t i = 0; i < c->h.nhdr; i++)
        r.hdrs[i] = (struct hdr){ base + c->h.hdr[i].name, base + c->h.hdr[i].value };
    r.nhdr = c->h.nhdr;
    char *q = strchr(r.path, '?');
    if (q)
        *q = '\0';
    r.query = q ? q + 1 : "";
    r.body = r.data = body;
    r.body_len = r.data_len = body_len;
    c->is_head = is(r.method, "HEAD");
    ae = req_header(&r, "accept-encoding");
    c->gzip_ok = ae && strcasestr(ae, "gzip");

    if (strncmp(r.path, "/_double/", 9) == 0) {
        c->gzip_ok = false;
        handle_control(c, &r);
        goto out;
    }
    srv.st.body_bytes += body_len;
    if (split_path(&r) < 0) {
        r.route = RT_OTHER;
        reply_no_handler(c, &r);
        goto count;
    }
    r.route = classify(&r);
    ce = req_header(&r, "content-encoding");
    if (ce && body_len && (strcasecmp(ce, "gzip") == 0 || strcasecmp(ce, "deflate") == 0)) {
        int rc = inflate_body(body, body_len, &inflated);
        if (rc == -E2BIG) {
            reply_too_large(c, srv.set.max_body + 1);
            goto count;
        }
        if (rc < 0) {
            reply_error(c, 400, "illegal_argument_exception", "failed to decompress the body");
            goto count;
        }
        r.data = inflated.ptr;
        r.data_len = inflated.len;
    }
    if (!check_auth(c, &r))
        goto count;
    if (r.data_len && !content_type_ok(req_header(&r, "content-type"))) {
        char msg[300];
        const char *ct = req_header(&r, "content-type");
        if (ct)
            snprintf(msg, sizeof(msg), "Content-Type header [%.200s] is not supported", ct);
        else
            snprintf(msg, sizeof(msg), "Content-Type header is missing");
        reply_json(c, 406, json_pack("{s:s, s:i}", "error", msg, "status", 406), NULL);
        goto count;
    }
    has_fault = fault_take(r.route, &f);
    if (has_fault) {
        c->delay_ms = f.delay_ms;
        switch (f.kind) {
        case FK_DROP:
            c->delay_ms = 0;
            conn_close(c);
            goto count;
        case FK_STATUS:
            reply_injected(c, &f);
            goto count;
        case FK_RESET:
            c->reset_after = true;
            break;
        case FK_DELAY:
        case FK_ITEMS:
            break;
        }
    }
    route_request(c, &r, has_fault && f.kind == FK_ITEMS ? &f : NULL);
count:
    if (c->last_status >= 100 && c->last_status < 600)
        srv.st.requests[r.route][c->last_status]++;
out:
    free_segs(&r);
    buf_close(&inflated);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;

    if (--c->handles > 0)
        return;
    free(c->pend.head);
    free(c->pend.body);
    buf_close(&c->in);
    free(c);
}

/* Closes both handles (a reset when reset_after); safe to call twice.  The
 * memory goes in the last close callback, after libuv cancels writes. */
static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev)
        c->prev->next = c->next;
    else if (srv.conns == c)
        srv.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (!c->reset_after || uv_tcp_close_reset(&c->tcp, on_handle_closed) < 0)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void conns_close_all(struct conn *except)
{
    struct conn *n;

    for (struct conn *c = srv.conns; c; c = n) {
        n = c->next;
        if (c != except)
            conn_close(c);
    }
}

static void consume(struct conn *c, size_t n)
{
    if (n < c->in.len)
        memmove(c->in.ptr, c->in.ptr + n, c->in.len - n);
    buf_truncate(&c->in, c->in.len - n);
    if (c->in.len == 0 && c->in.cap > 4 * READ_CHUNK)
        buf_close(&c->in); /* don't keep a large body's buffer per idle connection */
}

/* De-chunks in place.  1: complete, 0: need more, -EINVAL, -E2BIG. */
static int dechunk(struct conn *c)
{
    for (;;) {
        char *p = c->in.ptr + c->raw_pos;
        size_t avail = c->in.len - c->raw_pos;
        char *eol;

        switch (c->ch) {
        case CH_SIZE: {
            size_t size = 0;
            int digits = 0;
            if (!(eol = memmem(p, avail, "\r\n", 2)))
                return avail > 1024 ? -EINVAL : 0;
            for (char *q = p; q < eol && hexval(*q) >= 0; q++, digits++) {
                if (size > (SIZE_MAX >> 4))
                    return -E2BIG;
                size = size * 16 + (size_t)hexval(*q);
            }
            if (!digits)
                return -EINVAL;
            c->raw_pos += (size_t)(eol - p) + 2;
            if (size == 0) {
                c->ch = CH_TRAILER;
                break;
            }
            if (size > srv.set.max_body || c->dec_end - c->head_len > srv.set.max_body - size)
                return -E2BIG;
            c->chunk_left = size;
            c->ch = CH_DATA;
            break;
        }
        case CH_DATA: {
            size_t n = avail < c->chunk_left ? avail : c->chunk_left;
            if (n == 0)
                return 0;
            if (c->dec_end != c->raw_pos)
                memmove(c->in.ptr + c->dec_end, p, n);
            c->dec_end += n;
            c->raw_pos += n;
            c->chunk_left -= n;
            if (c->chunk_left)
                return 0;
            c->ch = CH_DATA_CRLF;
            break;
        }
        case CH_DATA_CRLF:
            if (avail < 2)
                return 0;
            if (p[0] != '\r' || p[1] != '\n')
                return -EINVAL;
            c->raw_pos += 2;
            c->ch = CH_SIZE;
            break;
        case CH_TRAILER:
            if (!(eol = memmem(p, avail, "\r\n", 2)))
                return avail > HEAD_MAX ? -EINVAL : 0;
            c->raw_pos += (size_t)(eol - p) + 2;
            if (eol == p)
                return 1;
            break;
        }
    }
}

static void bad_request(struct conn *c, const char *why)
{
    c->close_after = true;
    reply_error(c, 400, "illegal_argument_exception", why);
    uv_read_stop((uv_stream_t *)&c->tcp);
}

static void send_continue(struct conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *h = strdup(cont);

    if (h)
        write_now(c, h, sizeof(cont) - 1, NULL, 0);
}

/* Parses and answers whatever complete requests the buffer holds. */
static void conn_drive(struct conn *c)
{
    while (!c->busy && !c->closing) {
        const char *body;
        size_t blen, end;

        if (c->skip_left) {
            size_t n = c->in.len < c->skip_left ? c->in.len : c->skip_left;
            consume(c, n);
            c->skip_left -= n;
            if (c->skip_left)
                return;
            reply_too_large(c, c->h.cl);
            srv.st.requests[RT_OTHER][413]++;
            continue;
        }
        if (!c->head_len) {
            char *hend;
            while (c->in.len >= 2 && c->in.ptr[0] == '\r' && c->in.ptr[1] == '\n')
                consume(c, 2);
            if (!c->in.len || !(hend = memmem(c->in.ptr, c->in.len, "\r\n\r\n", 4))) {
                if (c->in.len > HEAD_MAX)
                    bad_request(c, "the request head is too long");
                return;
            }
            c->last_status = 0;
            c->replied = false;
            if (parse_head(c->in.ptr, (size_t)(hend - c->in.ptr) + 4, &c->h) < 0) {
                bad_request(c, "malformed request head");
                return;
            }
            c->head_len = (size_t)(hend - c->in.ptr) + 4;
            c->close_after = c->h.conn_close || (c->h.minor == 0 && !c->h.conn_keep);
            if (c->h.has_cl && c->h.cl > srv.set.max_body) {
                if (c->h.expect) { /* the body will not come: answer and close */
                    c->close_after = true;
                    reply_too_large(c, c->h.cl);
                    uv_read_stop((uv_stream_t *)&c->tcp);
                    return;
                }
                consume(c, c->head_len);
                c->head_len = 0;
                c->skip_left = c->h.cl;
                continue;
            }
            if (c->h.expect && (c->h.chunked || c->h.cl > 0))
                send_continue(c);
            if (c->h.has_cl)
                buf_reserve(&c->in, c->h.cl); /* one allocation for the body */
            c->ch = CH_SIZE;
            c->raw_pos = c->dec_end = c->head_len;
        }
        if (c->h.chunked) {
            int rc = dechunk(c);
            if (rc == 0)
                return;
            if (rc == -E2BIG) {
                c->close_after = true;
                reply_too_large(c, c->dec_end - c->head_len + c->chunk_left);
                uv_read_stop((uv_stream_t *)&c->tcp);
                return;
            }
            if (rc < 0) {
                bad_request(c, "malformed chunked body");
                return;
            }
            body = c->in.ptr + c->head_len;
            blen = c->dec_end - c->head_len;
            end = c->raw_pos;
        } else {
            blen = c->h.has_cl ? c->h.cl : 0;
            if (c->in.len - c->head_len < blen)
                return;
            body = c->in.ptr + c->head_len;
            end = c->head_len + blen;
        }
        dispatch(c, body, blen);
        if (c->closing)
            return;
        consume(c, end);
        c->head_len = 0;
        if (c->close_after) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            return;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    struct conn *c = h->data;

    if (buf_reserve(&c->in, READ_CHUNK) < 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init(c->in.ptr + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;

    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->in.len += (size_t)nread;
    c->in.ptr[c->in.len] = '\0';
    srv.st.bytes_received += (uint64_t)nread;
    conn_drive(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct conn *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    buf_init(&c->in, BUF_NOMAX);
    uv_tcp_init(srv.loop, &c->tcp);
    uv_timer_init(srv.loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv.conns;
    if (srv.conns)
        srv.conns->prev = c;
    srv.conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    srv.st.connections++;
    if (now_ms() < srv.down_until_ms) { /* "down": reset at once */
        c->reset_after = true;
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */

static void on_signal(uv_signal_t *s, int signum)
{
    if (srv.stopping)
        return;
    srv.stopping = true;
    log_info("searchd: signal %d, stopping", signum);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    conns_close_all(NULL);
    uv_close((uv_handle_t *)&srv.sigterm, NULL);
    uv_close((uv_handle_t *)&srv.sigint, NULL);
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs(
        "usage: searchd [options]\n"
        "  --listen HOST:PORT      address to bind (default 127.0.0.1:0)\n"
        "  --port-file FILE        write the bound port there once listening (atomically)\n"
        "  --discard               keep versions but no document sources (benchmark sink)\n"
        "  --max-body BYTES        body cap, checked on the wire and decompressed (100m)\n"
        "  --gc-deletes SECONDS    how long delete tombstones keep their version (60)\n"
        "  --poison-field NAME     documents with this top-level field fail with 400\n"
        "  --depth-limit N         index.mapping.depth.limit of indexes created without\n"
        "                          it; 0 = no depth checks (20)\n"
        "  --flavor os2|es8        whose document rules and error texts (os2: OpenSearch 2)\n"
        "  --auth MODE             none|basic|apikey|sigv4 (none)\n"
        "  --user U --password P   basic auth credentials\n"
        "  --api-key K             ApiKey: base64(id:key) as sent, or the raw id:key\n"
        "  --access-key AKID --secret-key S [--session-token T]\n"
        "  --region R --service es|aoss   sigv4 (service default es)\n"
        "  --verbose               debug logging\n"
        "PUT /<index> takes {\"mappings\": ...} (explicit fields, dynamic, dynamic_templates);\n"
          "GET /<index>/_mapping shows them and the fields learned from accepted documents.\n"
        "Index settings read: index.mapping.depth.limit, index.mapping.total_fields.limit\n"
        "(and, es8, .ignore_dynamic_beyond_limit); GET/PUT /<index>/_settings.\n"
        "Control API (no auth): POST /_double/faults, POST /_double/config,\n"
        "POST /_double/reset, GET /_double/dump, GET /_double/stats.\n",
        f);
}

static void settings_free(struct settings *s)
{
    char **strs[] = { &s->user, &s->password, &s->api_key, &s->access_key, &s->secret_key,
                      &s->session_token, &s->region, &s->service, &s->poison_field };

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        set_str(strs[i], NULL);
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_PORTFILE, O_DISCARD, O_MAXBODY, O_GC, O_POISON, O_DEPTH, O_AUTH,
           O_USER, O_PASSWORD, O_APIKEY, O_AK, O_SK, O_TOKEN, O_REGION, O_SERVICE, O_VERBOSE,
           O_HELP, O_FLAVOR };
    static const struct option opts[] = {
        { "listen", required_argument, NULL, O_LISTEN },
        { "port-file", required_argument, NULL, O_PORTFILE },
        { "discard", no_argument, NULL, O_DISCARD },
        { "max-body", required_argument, NULL, O_MAXBODY },
        { "gc-deletes", required_argument, NULL, O_GC },
        { "poison-field", required_argument, NULL, O_POISON },
        { "depth-limit", required_argument, NULL, O_DEPTH },
        { "flavor", required_argument, NULL, O_FLAVOR },
        { "auth", required_argument, NULL, O_AUTH },
        { "user", required_argument, NULL, O_USER },
        { "password", required_argument, NULL, O_PASSWORD },
        { "api-key", required_argument, NULL, O_APIKEY },
        { "access-key", required_argument, NULL, O_AK },
        { "secret-key", required_argument, NULL, O_SK },
        { "session-token", required_argument, NULL, O_TOKEN },
        { "region", required_argument, NULL, O_REGION },
        { "service", required_argument, NULL, O_SERVICE },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct settings *s = &srv.set;
    const char *listen_on = "127.0.0.1:0", *port_file = NULL;
    char host[256];
    int opt, port, rc;
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);

    s->max_body = 100u << 20;
    s->gc_deletes_ms = 60000;
    s->depth_limit = 20;
    log_setup(LOG_LVL_INFO, LOG_FMT_TEXT);
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN: listen_on = optarg; break;
        case O_PORTFILE: port_file = optarg; break;
        case O_DISCARD: s->discard = true; break;
        case O_MAXBODY:
            if (parse_size(optarg, &s->max_body) < 0 || s->max_body == 0) {
                fprintf(stderr, "searchd: --max-body: bad size \"%s\"\n", optarg);
                return 64;
            }
            break;
        case O_GC:
            if (parse_duration_ms(optarg, &s->gc_deletes_ms) < 0) {
                fprintf(stderr, "searchd: --gc-deletes: bad duration \"%s\"\n", optarg);
                return 64;
            }
            break;
        case O_POISON: set_str(&s->poison_field, optarg); break;
        case O_DEPTH: s->depth_limit = atoi(optarg); break;
        case O_FLAVOR:
            if (parse_flavor(optarg, &s->flavor) < 0) {
                fprintf(stderr, "searchd: --flavor: os2 or es8\n");
                return 64;
            }
            break;
        case O_AUTH:
            if (parse_auth(optarg, &s->auth) < 0) {
                fprintf(stderr, "searchd: --auth: none, basic, apikey or sigv4\n");
                return 64;
            }
            break;
        case O_USER: set_str(&s->user, optarg); break;
        case O_PASSWORD: set_str(&s->password, optarg); break;
        case O_APIKEY: set_str(&s->api_key, optarg); break;
        case O_AK: set_str(&s->access_key, optarg); break;
        case O_SK: set_str(&s->secret_key, optarg); break;
        case O_TOKEN: set_str(&s->session_token, optarg); break;
        case O_REGION: set_str(&s->region, optarg); break;
        case O_SERVICE: set_str(&s->service, optarg); break;
        case O_VERBOSE: log_setup(LOG_LVL_DEBUG, LOG_FMT_TEXT); break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 64;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 64;
    }
    if (!s->service)
        set_str(&s->service, "es");
    if (s->auth == AUTH_SIGV4 && (!s->access_key || !s->secret_key || !s->region)) {
        fprintf(stderr, "searchd: --auth sigv4 needs --access-key, --secret-key and --region\n");
        return 64;
    }
    const char *colon = strrchr(listen_on, ':');
    if (!colon || (size_t)(colon - listen_on) >= sizeof(host)) {
        fprintf(stderr, "searchd: --listen: HOST:PORT\n");
        return 64;
    }
    memcpy(host, listen_on, (size_t)(colon - listen_on));
    host[colon - listen_on] = '\0';
    port = atoi(colon + 1);

    signal(SIGPIPE, SIG_IGN);
    /* bodies and replies of a few MiB come and go all the time: keep them
     * on the heap instead of fresh (page-faulting) mmaps */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    srv.loop = uv_default_loop();
    uv_tcp_init(srv.loop, &srv.listener);
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    const struct sockaddr *sa;
    if (uv_ip4_addr(host, port, &a4) == 0)
        sa = (const struct sockaddr *)&a4;
    else if (uv_ip6_addr(host, port, &a6) == 0)
        sa = (const struct sockaddr *)&a6;
    else {
        fprintf(stderr, "searchd: --listen: bad address \"%s\"\n", host);
        return 64;
    }
    if ((rc = uv_tcp_bind(&srv.listener, sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&srv.listener, 1024, on_connection)) < 0) {
        fprintf(stderr, "searchd: cannot listen on %s: %s\n", listen_on, uv_strerror(rc));
        return 69;
    }
    uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &sslen);
    port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    if (port_file && (rc = write_port_file(port_file, port)) < 0) {
        fprintf(stderr, "searchd: cannot write %s: %s\n", port_file, strerror(-rc));
        return 73;
    }
    log_info("searchd: listening on %s:%d (auth %s%s)", host, port,
             s->auth == AUTH_NONE ? "none" : s->auth == AUTH_BASIC ? "basic"
             : s->auth == AUTH_APIKEY ? "apikey" : "sigv4", s->discard ? ", discard" : "");
    uv_run(srv.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(srv.loop);
    map_clear(&srv.indices, index_free);
    map_clear(&scr.pending, field_free);
    faults_clear();
    settings_free(s);
    log_flush();
    return rc == 0 ? 0 : 70;
}
