/* searchd's private header: the types its files share and what each file
 * offers the others (main.c has the double's overview).
 *
 *   main.c      options, signals, the loop
 *   http.c      request heads, bodies, connections
 *   route.c     which handler a request goes to
 *   reply.c     JSON and error bodies, filter_path, query strings, replies
 *   auth.c      basic, ApiKey and SigV4 checks
 *   faults.c    fault rules (POST /_double/faults)
 *   control.c   the control API under /_double/
 *   store.c     the hash map; indices, documents, versions, tombstones
 *   bulk.c      the Bulk API
 *   read.c      one document (GET, PUT, DELETE), _search, _mapping, /
 *   settings.c  index settings; PUT, GET and DELETE /<index>
 *   mapping.c   explicit mappings (the body of PUT /<index>)
 *   jackson.c   documents read as Jackson reads them, values printed as Java does
 *   values.c    field values against the mapping
 *   dynamic.c   metadata fields; new fields (dynamic, dynamic templates)
 *   limits.c    the mapping limits (depth, total fields)
 *   source.c    field names and values: the walk over one document's source
 *   offering.c  what each flavour answers differently: GET /, _cluster, body
 *               caps, document ids, settings, query parameters
 *   aliases.c   aliases, data streams, GET /_resolve/index, write targets
 *   scroll.c    _mget; scroll (a point-in-time view) and clearing it
 *   query.c     the queries _search and _count take (match_all, term, match, bool)
 */
#ifndef SEARCHD_INT_H
#define SEARCHD_INT_H

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
#include "base/hex.h"
#include "base/jsonx.h"
#include "aws/sigv4.h"
#include "base/log.h"
#include "tests/support/sigv4check.h"

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

/* Which deployment of that engine (--flavor; offering.c): self-managed (or
 * a managed domain, which answers alike), an Amazon OpenSearch Serverless
 * search or time series collection, or an Elastic Cloud Serverless project. */
enum offering { OF_SELF, OF_AOSS_SEARCH, OF_AOSS_TIMESERIES, OF_ELASTIC_SERVERLESS };

struct settings {
    enum auth_mode auth;
    char *user, *password, *api_key;
    char *access_key, *secret_key, *session_token, *region, *service;
    char *poison_field;
    size_t max_body;
    uint64_t gc_deletes_ms;
    int depth_limit;
    enum flavor flavor;
    enum offering offering;
    char *engine_version;   /* GET /'s version.number; NULL: the flavour's own */
    bool max_body_set;      /* --max-body given: the flavour's cap does not apply */
    bool no_external_versions; /* version and version_type are dropped (a fault) */
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
    unsigned char sha256[32]; /* discard mode: SHA-256 of the source as received */
};

/* The field types the double models (a field's path: its names joined by '.'). */
enum ftype {
    FT_NONE, FT_OBJECT, FT_LONG, FT_INTEGER, FT_SHORT, FT_BYTE, FT_DOUBLE, FT_FLOAT, FT_TEXT,
    FT_KEYWORD, FT_BOOLEAN, FT_DATE, FT_N
};

/* An object's "dynamic": unset (inherited from its parent; the root's
 * default is true), true, false or strict. */
enum dyn { DYN_UNSET, DYN_TRUE, DYN_FALSE, DYN_STRICT };

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
    RT_SETTINGS, RT_RESOLVE, RT_ALIAS, RT_ALIASES, RT_DATA_STREAM, RT_CLUSTER, RT_OTHER,
    RT_MGET, RT_SCROLL, RT_N
};

/* One index an alias points at; is_write: -1 unset, 0 false, 1 true. */
struct alias_link {
    char *index;
    int is_write;
};

struct alias {
    const char *name; /* the map's key */
    struct alias_link *links;
    size_t n;
};

/* A data stream and its one backing index (no rollover modelled). */
struct dstream {
    const char *name; /* the map's key */
    char *backing;    /* ".ds-<name>-000001" */
};

/* A request as it arrived (GET /_double/requests). */
struct reqlog {
    char *method, *path, *query;
    int status;
};

enum op_type { OP_INDEX, OP_CREATE, OP_DELETE, OP_UPDATE, OP_N };

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

struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    struct settings set;
    struct map indices;
    struct map aliases;  /* name -> struct alias * (aliases.c) */
    struct map streams;  /* name -> struct dstream * (aliases.c) */
    struct reqlog *log;  /* the requests seen, oldest first (GET /_double/requests) */
    size_t nlog, caplog;
    struct stats st;
    struct fault *faults;
    size_t nfaults;
    struct conn *conns;
    uint64_t down_until_ms;
    uint64_t id_counter;
    EVP_MD *sha256;      /* fetched once, at the first document kept as a digest */
    bool stopping;
};

/* MapperService INDEX_MAPPING_TOTAL_FIELDS_LIMIT_SETTING's default */
#define TOTAL_FIELDS_DEFAULT 1000

/* ------------------------------------------------------------------------ */
/* Document operations                                                      */

enum vtype { VT_INTERNAL, VT_EXTERNAL, VT_EXTERNAL_GTE };

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
    bool auto_id;    /* the id was made here, not sent by the client */
};

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

struct scratch {
    struct buf path;          /* the current field path: decoded names joined by '.' */
    struct buf keys;          /* this document's decoded keys, back to back */
    struct buf text;          /* one decoded string value */
    struct dupkey *dup;       /* (object, key) pairs seen in this document */
    size_t dupcap, dupn;
    uint64_t gen;
    struct map pending;       /* fields new in this document: path -> struct field * */
};

struct entry {
    char *k, *v;
    size_t kl, vl, ins;
    uint32_t h, slot;
};

/* What a new value is to the dynamic mapping: DynamicTemplate.XContentFieldType,
 * as DocumentParser#createBuilderFromDynamicValue (es8 DynamicFieldsBuilder
 * #createDynamicFieldFromValue) decides it: a JSON integer (Jackson INT, LONG
 * and BIG_INTEGER) is long, a number with a fraction or exponent double,
 * true/false boolean, an object object; a string is long or double when
 * numeric_detection is on and it parses as one, else date when
 * date_detection is on and it reads as a date (never a string that parses
 * as a number), else string. */
enum xft { XFT_OBJECT, XFT_STRING, XFT_LONG, XFT_DOUBLE, XFT_BOOLEAN, XFT_DATE, XFT_BINARY, XFT_N };

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
/* ---- http.c -------------------------------------------------------------- */
void conn_close(struct conn *c);
void conns_close_all(struct conn *except);
void conn_drive(struct conn *c);
void on_connection(uv_stream_t *l, int status);

/* ---- route.c ------------------------------------------------------------- */
void free_segs(struct request *r);
int split_path(struct request *r);
bool is(const char *a, const char *b);
enum route classify(const struct request *r);
void reply_no_handler(struct conn *c, const struct request *r);
void route_request(struct conn *c, struct request *r, const struct fault *ifault);

/* ---- reply.c ------------------------------------------------------------- */
int put_json_str(struct buf *b, const char *s, size_t n);
int dump_cb(const char *p, size_t n, void *arg);
json_t *err_obj(const char *type, const char *reason);
json_t *es_error_body(int status, json_t *cause);
int parse_duration_ms(const char *s, uint64_t *out);
int parse_size(const char *s, size_t *out);
bool glob_match(const char *pat, const char *s);
void em_bulk_reply(struct buf *b, const char *spec, int64_t took, bool errors,
                   const struct item_res *items, size_t n);
char *pct_decode(const char *s, size_t n, bool form);
char *query_param(const char *q, const char *name);
const char *req_header(const struct request *r, const char *name);
int write_now(struct conn *c, char *head, size_t head_len, char *body, size_t body_len);
void reply(struct conn *c, int status, const char *ctype, const char *extra, char *body,
           size_t len);
void reply_json(struct conn *c, int status, json_t *body, const char *extra);
void reply_json_filtered(struct conn *c, const struct request *r, int status, json_t *body);
void reply_error(struct conn *c, int status, const char *type, const char *reason);
/* query.c: 1 when src matches q, 0 when not, -1 when q is not modelled (why). */
int query_match(const json_t *q, const json_t *src, char *why, size_t whylen);

/* ---- auth.c -------------------------------------------------------------- */
extern const char sig_mismatch[];
bool check_auth(struct conn *c, struct request *r);
int parse_auth(const char *s, enum auth_mode *out);

/* ---- faults.c ------------------------------------------------------------ */
void faults_clear(void);
int fault_parse(json_t *j, struct fault *f, char *why, size_t wlen);
bool fault_take(enum route rt, struct fault *out);
void reply_injected(struct conn *c, const struct fault *f);

/* ---- control.c ----------------------------------------------------------- */
void handle_control(struct conn *c, struct request *r);
void reqlog_add(const struct request *r, int status);
void reqlog_trim(size_t n);
void reqlog_clear(void);

/* ---- store.c ------------------------------------------------------------- */
uint64_t hash_bytes(const char *p, size_t n);
void *map_get(const struct map *m, const char *key, size_t klen);
char *map_put(struct map *m, const char *key, size_t klen, void *val);
void map_clear(struct map *m, void (*free_val)(void *));
extern const char *const ftype_name[FT_N];
extern const char *const dyn_name[];
extern const char *const route_name[RT_N];
extern const char *const op_name[OP_N];
extern struct server srv;
uint64_t now_ms(void);
char *strndup_n(const char *s, size_t n);
char *xstrdup(const char *s);
void set_str(char **dst, const char *s);
void field_free(void *p);
void mapping_clear(struct mapping *m);
void index_free(void *p);
struct index *index_get(const char *name);
struct index *index_create(const char *name);
void index_drop(struct index *ix);
long depth_limit(const struct limits *lim);
enum doc_state doc_state(const struct doc *d, uint64_t now);
extern const char *const vtype_upper[];
void op_clear(struct op *o);
void next_auto_id(char out[21]);
int source_sha256(const char *src, size_t len, unsigned char md[32]);
bool valid_index_name(const char *n, char *why, size_t wlen);
int item_fail(struct item_res *res, int status, json_t *err);
json_t *item_to_json(const struct item_res *res, bool with_status);
int op_execute(struct op *o, struct item_res *res);

/* ---- bulk.c -------------------------------------------------------------- */
int parse_vtype(const char *s, enum vtype *out);
void validate_op(const struct op *o, struct buf *v, int *n);
void handle_bulk(struct conn *c, struct request *r, const char *def_index,
                 const struct fault *item_fault);

/* ---- jackson.c ----------------------------------------------------------- */
extern struct scratch scr;
const char *doc_error(const struct chk *c);
struct loc loc_at(const struct chk *c, const char *at);
json_t *err_text(const char *type, const struct buf *reason, json_t *cause);
json_t *errf(const char *type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void refuse(struct chk *c, json_t *e);
int bad_json(struct chk *c, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
json_t *jackson_cause(const struct chk *c, const char *os_type, struct loc at,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int bad_field(struct chk *c, size_t plen, const char *type, struct loc at,
              const char *preview, size_t pvlen, json_t *cause);
int bad_name(struct chk *c, struct loc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void skip_blank(struct chk *c);
void decode_string(const char *p, const char *e, struct buf *out);
int read_scalar(struct chk *c, struct val *v);
int read_string_val(struct chk *c, struct val *v);
int object(struct chk *c, size_t base, bool raw);
int array(struct chk *c, int (*each)(struct chk *, void *), void *arg);
int skip_value(struct chk *c);
void java_double(double d, struct buf *out);
uint32_t java_hash(const char *p, size_t n);
void hashmap_order(struct entry *v, size_t n);
const char *render(const char *p, const char *e, struct buf *out);
void scalar_text(const struct val *v, struct buf *out);
const char *token_name(enum vkind k);

/* ---- values.c ------------------------------------------------------------ */
bool blank(const char *p, size_t n);
struct field *lookup(const struct chk *c, const char *path, size_t n, bool *pending);
void learn(const char *path, size_t n, struct field *f);
void clash(struct chk *c, size_t plen, enum ftype was, enum ftype now);
extern const char *const xft_name[XFT_N];
extern const char *const xft_mapping[XFT_N];
enum xft value_xft(const struct chk *c, const struct val *v);
json_t *for_input_string(const char *type, const struct buf *s);
int bad_field_named(struct chk *c, const char *name, size_t nlen, const char *type,
                    struct loc at, const char *preview, size_t pvlen, json_t *cause);
int check_value(struct chk *c, const struct fld *f, const struct field *fd,
                const struct val *v);
int object_into_field(struct chk *c, size_t plen, enum ftype t, const char *open,
                      const char *pre, const char *post);

/* ---- dynamic.c ----------------------------------------------------------- */
const struct meta *meta_field(enum flavor fl, const char *k, size_t n);
int meta_value(struct chk *c, struct fld *f, const struct val *v, const char *open,
               const char *pre, const char *post);
json_t *subst(const json_t *v, const char *name, size_t nl, const char *dt);
int doc_exception(struct chk *c, struct loc at, json_t *e);
struct field *make_field(struct chk *c, size_t plen, enum xft k, struct loc at, bool probe);
enum dyn dynamic_for(const struct chk *c, size_t plen);
int strict(struct chk *c, struct loc at, size_t within, const char *name, size_t nlen);
int may_map(struct chk *c, const struct fld *f, struct loc at, bool object);
int null_for_new_field(struct chk *c, const struct fld *f, struct loc at);

/* ---- limits.c ------------------------------------------------------------ */
int add_dynamic(struct chk *c, size_t plen, const struct field *f, struct loc at);
int mapped_object(struct chk *c, size_t base);
int counted_array(struct chk *c, int (*read)(struct chk *, void *), void *arg);
int skip_unmapped(struct chk *c);
int skip_unmapped_each(struct chk *c, void *arg);
json_t *limits_exceeded(const struct limits *lim, const struct map *fields,
                        const struct map *add, bool auto_update, enum flavor fl);

/* ---- source.c ------------------------------------------------------------ */
int member(struct chk *c, size_t base, struct loc kat, size_t koff, size_t klen);
json_t *check_source(struct index *ix, const char *src, size_t len, const char *id,
                     json_t **index_err);

/* ---- mapping.c ----------------------------------------------------------- */
bool known_type(enum flavor fl, const char *type);
json_t *unmodelled(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void java_str(const json_t *v, struct buf *out);
json_t *define(enum flavor fl, struct map *into, const char *path, size_t plen,
               const char *key, size_t klen, json_t *def, bool lenient,
               struct field **out);
json_t *parse_mappings(enum flavor fl, json_t *mappings, struct mapping *m,
                       struct map *fields);
void reply_mapping_error(struct conn *c, json_t *e);

/* ---- settings.c ---------------------------------------------------------- */
void handle_index(struct conn *c, struct request *r, const char *name);
void handle_get_settings(struct conn *c, const struct request *r, const char *expr);
void handle_put_settings(struct conn *c, const struct request *r, const char *name);

/* ---- read.c -------------------------------------------------------------- */
void reply_index_missing(struct conn *c, const char *name);
int cmp_str(const void *a, const void *b);
int cmp_docp(const void *a, const void *b);
struct doc **sorted_docs(struct index *ix, bool tombstones, size_t *n);
int resolve_indices(const char *expr, struct index **out, size_t max, const char **missing);
void handle_get_doc(struct conn *c, const char *index, const char *id);
void handle_search(struct conn *c, struct request *r, const char *expr, bool count);
void handle_write_doc(struct conn *c, struct request *r, enum op_type type,
                      const char *index, const char *id);
void put_json(struct buf *b, const json_t *v);
void mapping_json(const struct index *ix, struct buf *b);
void handle_mapping(struct conn *c, const char *expr);

/* ---- offering.c ---------------------------------------------------------- */
int parse_flavor(const char *s, enum flavor *fl, enum offering *of);
const char *engine_version(void);
bool version_at_least(const char *v, int major, int minor);
size_t flavour_max_body(void);
void handle_root(struct conn *c);
void handle_cluster(struct conn *c, const struct request *r);
bool query_refused(struct conn *c, const struct request *r);
json_t *id_refused(const struct op *o);
json_t *settings_refused(const json_t *flat);

/* ---- scroll.c ------------------------------------------------------------ */
/* What a search's hits show: "version", "_source" (true or false), sort ["_doc"]. */
struct hitopts {
    bool version, source, sort_doc;
};
int hitopts_parse(json_t *body, struct hitopts *ho, char *why, size_t wlen);
void put_hit(struct buf *b, const char *index, const char *id, size_t id_len, int64_t version,
             const char *source, size_t source_len, const struct hitopts *ho, size_t docno);
void scroll_start(struct conn *c, struct index **ixs, int n, long size, const char *keep,
                  const struct hitopts *ho);
size_t scrolls_open(void);
void handle_scroll_next(struct conn *c, struct request *r);
void handle_scroll_clear(struct conn *c, struct request *r);
void handle_mget(struct conn *c, struct request *r, const char *def_index);

/* ---- aliases.c ----------------------------------------------------------- */
struct alias *alias_get(const char *name);
struct dstream *stream_get(const char *name);
void alias_free(void *p);
void stream_free(void *p);
void aliases_drop_index(const char *index);
json_t *aliases_of(const char *index);
json_t *aliases_add(const char *index, const json_t *aliases, bool check_only);
json_t *write_target(struct op *o, struct item_res *res);
void handle_resolve(struct conn *c, const char *expr);
void handle_get_alias(struct conn *c, const char *name);
void handle_aliases(struct conn *c, const struct request *r);
void handle_data_stream(struct conn *c, const struct request *r, const char *name);

#endif
