/* verify_int — what the parts of `ddb2es verify` share (not included
 * outside daemon/verify*.c and its tests):
 *   verify.c          the driver: start, DescribeTable, the engine calls
 *                     (retried), the sink's callbacks, progress, the
 *                     report, stopping
 *   verify_scan.c     the Scan on the shared segment machine (aws/scan.c);
 *                     each page's documents fetched with _mget and compared
 *   verify_index.c    the index's ids (a scroll) held against the scanned ones
 *   verify_confirm.c  the candidates: read again after settle_ms, confirmed
 *                     or dropped, repaired through the sink, checked again
 *   verify_cmp.c      pure: JSON compared by value, the _mget reply, the set
 *                     of scanned ids
 */
#ifndef DDB2ES_VERIFY_INT_H
#define DDB2ES_VERIFY_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "aws/ddb.h"
#include "aws/scan.h"
#include "base/buf.h"
#include "base/list.h"
#include "daemon/app.h"
#include "daemon/clients.h"
#include "daemon/verify.h"
#include "indexer/doc.h"
#include "indexer/source.h"
#include "indexer/transform.h"

/* ---- verify_cmp.c (pure) ------------------------------------------------- */

/* Appends the canonical text of the JSON value p[0..len): object members
 * sorted by name, strings decoded and written again by jsonx_put_string,
 * numbers as their digits and exponent ("1.0", "1", "1e0" and "10e-1" all
 * give "1e0"), no whitespace.  Two values are equal as JSON (members in any
 * order, numbers by exact value) when their canonical texts are.  0, or
 * -EINVAL (not JSON), -ERANGE (an exponent past 18 digits), -ELOOP (nested
 * past 256), -ENOMEM; out is left as it was on failure. */
int verify_canon(const char *p, size_t len, struct buf *out);
/* Equal as JSON (above); two texts that are not both JSON are equal only
 * when they are the same bytes. */
bool verify_json_same(const char *a, size_t alen, const char *b, size_t blen);
/* The value of the top-level member name[0..nlen) of the JSON object
 * p[0..len) (names compared decoded): its text, *vlen its length; NULL when
 * there is none or p is not an object. */
const char *verify_member(const char *p, size_t len, const char *name, size_t nlen,
                          size_t *vlen);
/* A 64-bit hash of the bytes, never 0. */
uint64_t verify_hash(const void *p, size_t n);

/* One document of an _mget reply; src, error point into the reply. */
struct verify_got {
    char id[DOC_ID_MAX + 1];
    size_t id_len;
    bool found;
    int64_t version;
    const char *src;    /* _source, or NULL */
    size_t src_len;
    const char *error;  /* a per-document error object, or NULL */
    size_t error_len;
};
/* Returns 0 to go on, else that value stops the walk and is returned. */
typedef int verify_got_cb(void *arg, const struct verify_got *g);
/* Each document of an _mget reply ({"docs":[...]}), in order.  Nothing is
 * parsed into numbers: _source is handed over as text.  0, -EPROTO, or
 * what cb returned. */
int verify_parse_mget(const char *body, size_t len, verify_got_cb *cb, void *arg);

/* The ids the Scan made, as 64-bit hashes (verify_hash).  Two ids with one
 * hash (about 3e-4 odds over 1e8 ids) only hide an extra document whose id
 * collides with a scanned one: verify never reports a difference that is
 * not there because of it. */
struct verify_idset {
    uint64_t *slot;
    size_t cap, len;
};
int verify_idset_add(struct verify_idset *s, uint64_t h);
bool verify_idset_has(const struct verify_idset *s, uint64_t h);
void verify_idset_free(struct verify_idset *s);

/* ---- the run ---------------------------------------------------------------- */

#define VERIFY_RETRY_BASE_MS 200
#define VERIFY_RETRY_MAX_MS 20000
#define VERIFY_GIVE_UP_MS 300000    /* an engine or DynamoDB failing this long: 69 */
#define VERIFY_CAND_MAX 20000       /* candidates waiting: reading pauses above this */
#define VERIFY_ROUNDS 5             /* reads of an item that keeps changing */
#define VERIFY_EXAMPLES 10          /* ids printed per kind without --json */

enum vkind { VK_MISSING, VK_STALE, VK_EXTRA, VK_NKINDS };

enum cstage {
    CS_FIRST,     /* an id of the index alone: not read from the table yet */
    CS_SETTLE,    /* a difference: waits settle_ms, then read again */
    CS_REPAIRING, /* its repair is in the sink */
    CS_RECHECK,   /* repaired: read once more */
    CS_RETRY,     /* its repair lost to a version the engine holds (409): read and
                     repaired again after settle_ms */
};

/* A difference until it is confirmed or dropped. */
struct cand {
    struct list link;      /* in v->due (by due time) or v->repairing */
    uint64_t due;          /* uv_now() when it is read next */
    json_t *key;           /* the item's key (DynamoDB JSON, owned); NULL: not known yet */
    uint64_t item_hash;    /* the item's document at the last read; 0: no item */
    int64_t doc_version;   /* the document's _version at the last read; 0: none */
    enum vkind kind;       /* what the last read found */
    enum cstage stage;
    int rounds;            /* reads in which the item had changed, or repairs retried */
    bool conflicted;       /* its last repair came back 409 */
    size_t id_len;
    char id[];             /* id_len bytes and a NUL */
};

/* One candidate of a read again: what the index and the table hold now. */
struct vres {
    struct cand *c;
    bool found;            /* the document is there */
    int64_t version;       /* its _version */
    size_t off, len;       /* its canonical source in v->batch_canon */
    size_t raw_off, raw_len; /* its source as read, in v->batch_raw */
    bool asked;            /* its key went into the BatchGetItem */
};

/* A Scan page being checked: its items' documents, compared once _mget answers. */
struct vp_item {
    json_t *key;
    uint64_t hash;         /* of the canonical document */
    size_t off, len;       /* its canonical document in vpage.canon */
    size_t raw_off, raw_len; /* the document as made, in vpage.raw (type conflicts) */
    bool done;             /* the reply named it */
    size_t id_len;
    char id[DOC_ID_MAX + 1];
};

struct vpage {
    struct vp_item *it;
    size_t n;
    struct buf canon;
    struct buf raw;        /* the documents as made, for verify_shaped_same */
};

/* A segment of the Scan: the shared machine's part (aws/scan.h), and the
 * page it holds while the page's _mget is out. */
struct vseg {
    struct scan_seg ss;
    struct verify *v;
    struct vpage pg;
};

/* An engine request, retried on 429, 5xx and network errors. */
struct vcall;
typedef void vcall_cb(struct verify *v, void *arg, long status, const char *body, size_t len);

/* What one kind of difference found, for the report. */
struct vlist {
    uint64_t n;
    struct buf ids;         /* the ids as JSON strings, comma-separated */
    size_t examples_end;    /* ids.len after the first VERIFY_EXAMPLES */
};

struct verify {
    struct app app;
    struct clients clients;
    const struct verify_opts *o;
    const struct config_table *t;
    struct transform_cfg tf;
    unsigned char *hmac_key;
    struct source_keys keys;
    const char *index;            /* the index or alias held against the table */
    char *index_path;             /* "/<index>" percent-encoded */
    uv_signal_t sigint, sigterm;
    uv_timer_t tick;
    uint64_t start_ms, last_log_ms;
    bool tty, stopping, closing_done, sink_draining;
    int exit_code;
    char why[1024];
    /* the Scan */
    struct scan scan;
    struct vseg *segs;
    int nsegs;
    int64_t item_count;
    struct verify_idset scanned;
    /* the index's ids */
    bool scroll_started, scroll_done, scroll_waiting;
    char *scroll_id;
    /* engine calls waiting for a retry */
    struct list retry;
    uv_timer_t retry_timer;
    size_t calls;                 /* engine calls not finished */
    /* candidates */
    struct list first;            /* to read now (CS_FIRST, CS_RECHECK) */
    struct list due;              /* to read after settle_ms, by due time */
    struct list repairing;        /* in the sink */
    size_t ncand;
    uv_timer_t confirm_timer;
    bool confirming;              /* a read again is in flight */
    struct vres *batch;           /* the candidates of that read */
    size_t nbatch;
    struct buf batch_canon;       /* their documents, canonical */
    struct buf batch_raw;         /* and as read (type conflicts: verify_shaped_same) */
    struct ddb_call *bg_call;
    unsigned bg_failures;
    uint64_t bg_failing_since;
    /* counters */
    uint64_t items, documents, checked, dropped, changing, unconvertible, unchecked;
    struct vlist found[VK_NKINDS];
    uint64_t repaired[VK_NKINDS];
    struct vlist unrepaired;
    struct vlist kept_changing;
    struct doc d;
    struct buf err;
    struct transform_renames renames;
};

/* verify.c */
void verify_stop(struct verify *v, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void verify_maybe_complete(struct verify *v);
/* Sends method path with body (copied); cb runs once with the final answer
 * (status 0 and body NULL when stopping).  429, 5xx and no answer are
 * retried with backoff; 401/403 stop with 77, failing for
 * VERIFY_GIVE_UP_MS with 69.  0 or -ENOMEM. */
int verify_engine(struct verify *v, const char *method, const char *path, const char *body,
                  size_t len, vcall_cb *cb, void *arg);
/* Makes the item's document into v->d; TR_DOC or TR_ERROR (logged). */
enum transform_result verify_make_doc(struct verify *v, json_t *item);
/* Its canonical text into out and its hash; 0 or -errno. */
int verify_doc_canon(struct verify *v, struct buf *out, uint64_t *hash);
/* With [table] type_conflicts = side: whether the document as read
 * (act[0..alen)) is the one made (exp[0..elen)) once shaped as the sink
 * shapes it (indexer/conflicts.h): the values its side object lists moved
 * there, path after path in its order.  So a document the daemon reshaped
 * for a mapping conflict is not stale.  False when the table does not
 * shape, or the document holds no side object. */
bool verify_shaped_same(const struct verify *v, const char *exp, size_t elen, const char *act,
                        size_t alen);
void verify_note(struct verify *v, struct vlist *l, const char *id, size_t len);
bool verify_busy(const struct verify *v);
void verify_resume(struct verify *v);
/* The engine's answer says the index itself is not there, or another refusal. */
void verify_engine_refused(struct verify *v, const char *what, long status, const char *body,
                           size_t len);

/* verify_scan.c */
void verify_scan_init(struct verify *v);
void verify_scan_begin(struct verify *v);
void verify_scan_resume(struct verify *v);
void verify_scan_stop(struct verify *v);
bool verify_scan_done(const struct verify *v);
void verify_scan_free(struct verify *v);

/* verify_index.c */
void verify_index_begin(struct verify *v);
void verify_index_resume(struct verify *v);
void verify_index_stop(struct verify *v);

/* verify_confirm.c */
/* A difference found now: waits settle_ms (CS_SETTLE), or is read at once
 * (CS_FIRST, key may be NULL).  key is stolen, also on failure.  0 or
 * -ENOMEM. */
int verify_cand_add(struct verify *v, const char *id, size_t id_len, json_t *key,
                    enum cstage stage, enum vkind kind, uint64_t item_hash, int64_t doc_version);
void verify_confirm_kick(struct verify *v);
void verify_confirm_stop(struct verify *v);
void verify_confirm_free(struct verify *v);
void verify_repair_done(struct verify *v, struct cand *c, enum sink_outcome o);

#endif
