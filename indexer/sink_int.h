/* sink_int.h — what the parts of the sink share; included by indexer/sink*.c only.
 *
 *   sink.c          the public API: dead letters, stats, close, setup
 *   sink_batch.c    submitting (the action written into the open batch), items,
 *                   batches and their states, the queues, backoff
 *   sink_tomb.c     tombstones: deletes that finished, and the actions they stop
 *   sink_outcome.c  per-item outcomes, write blocks, replies, retries and dead letters
 *   sink_request.c  the bulk request: gzip, auth (basic, API key, SigV4), sending
 *   sink_ping.c     one request outside the batches (sink_call), the ping
 *   sink_mirror.c   the mirror: an index's actions sent to a second index too
 */
#ifndef DDB2ES_SINK_INT_H
#define DDB2ES_SINK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/fpmap.h"
#include "base/http.h"
#include "base/list.h"
#include "indexer/doc.h"
#include "indexer/sink.h"

struct dlq;
struct pair;

#define MAX_BLOCKS 64               /* indexes whose block is tracked at once */

/* One action.  Its text (the action line, then the source line for an
 * index) is written once, straight into the body of the batch that holds it
 * (off, len): the body is sent as it is, without assembling a copy.  The
 * item keeps what the dead-letter file and the logs need, and the _id in
 * id[] (so a queued action costs its text plus ~200 bytes). */
struct item {
    struct sink *s;
    void *owner;
    uint64_t ticket;
    size_t off, len;       /* the action's text in its batch's body */
    size_t src_off;        /* where the source line starts, from off */
    size_t bytes;          /* len plus the bytes of the items in sup */
    struct item *sup;      /* earlier actions on the same _id this one replaced */
    struct item *next;     /* link in a sup chain */
    struct item *hnext;    /* link in the open batch's hash bucket */
    size_t slot;           /* position in the open batch */
    unsigned attempts;     /* per-item retries so far */
    bool reshaped;         /* sent again with its conflicting values moved (sink_conflicts.c) */
    uint32_t hash;         /* of _index and _id */
    struct sink_item_failure *dlq_series; /* while its dead-letter entry is written: where it
                                             counts once durable (table and reason) */
    struct pair *pair;     /* a mirrored action: its two copies report once, together */
    bool is_mirror;        /* the copy for the mirror's index */
    enum doc_op op;
    const char *index, *table, *shard; /* borrowed, as in struct doc */
    uint64_t version, send_by;
    int64_t created;
    char seq[sizeof(((struct doc *)0)->seq)];
    size_t id_len, keys_len;
    char *keys;            /* in id[]'s allocation, after the id: keys_len bytes and a NUL */
    char id[];             /* id_len bytes and a NUL */
};

/* A batch's state says which list of the sink holds it (sink_batch_set_state
 * moves it): none, ready, delayed or inflight. */
enum bstate {
    B_OPEN,      /* being filled (the open batch, or one built from another's items): no list */
    B_READY,     /* closed, waiting for a request slot: s->ready */
    B_DELAYED,   /* waiting for its due time (a retry): s->delayed */
    B_SIGNING,   /* compressing, then signing: cancelable until sent; s->inflight */
    B_INFLIGHT,  /* its request is out: s->inflight */
    B_CANCELED,  /* was B_SIGNING when the deadline passed: its items were reported; s->inflight */
    B_HELD,      /* taken off its list by the code at hand (answered, sent, checked): no list */
    B_NSTATES
};

struct batch {
    struct sink *s;
    uint64_t id;           /* for the logs: the sink's batches in the order they were made */
    enum bstate state;     /* written by sink_batch_set_state only */
    struct item **items;   /* in stream order; NULL holes while open (superseded) */
    size_t n, cap, nlive;
    size_t bytes;          /* body bytes: sum of the live items' len */
    size_t bytes_all;      /* with the superseded items, for the memory cap */
    struct buf body;       /* the NDJSON: the items' text, in place; holes (superseded,
                              expired) are squeezed out before it is sent */
    uint64_t due;          /* B_DELAYED: uv_now() when it may go */
    unsigned attempt;      /* request-level failures of this batch */
    struct http_req *req;  /* B_INFLIGHT */
    uint64_t sent_ns;      /* uv_hrtime() when the request went out */
    uv_work_t work;        /* B_SIGNING with gzip: compressing in the thread pool */
    struct buf gz;         /* the body compressed, while it is sent */
    int work_rc;
    struct list link;      /* in the list of its state (sink_batch_set_state) */
};

/* A list of batches and its length (list_init'ed by blist_init). */
struct blist {
    struct list l;
    size_t n;
};

static inline void blist_init(struct blist *l)
{
    list_init(&l->l);
    l->n = 0;
}

/* The first (last) batch of l, NULL when it is empty. */
static inline struct batch *blist_first(const struct blist *l)
{
    return list_empty(&l->l) ? NULL : container_of(l->l.next, struct batch, link);
}

static inline struct batch *blist_last(const struct blist *l)
{
    return list_empty(&l->l) ? NULL : container_of(l->l.prev, struct batch, link);
}

/* The batch after (before) b in l, NULL at the end. */
static inline struct batch *blist_next(const struct blist *l, const struct batch *b)
{
    return b->link.next == &l->l ? NULL : container_of(b->link.next, struct batch, link);
}

static inline struct batch *blist_prev(const struct blist *l, const struct batch *b)
{
    return b->link.prev == &l->l ? NULL : container_of(b->link.prev, struct batch, link);
}

/* The engine refuses writes to an index (or, index NULL, to the cluster). */
struct block {
    const char *index;     /* borrowed, as the items' */
    char reason[200];      /* the first refusal: "type: reason" */
    uint64_t since;        /* uv_now() */
    uint64_t since_ns;     /* uv_hrtime(): replies to requests sent before do not end it */
    uint64_t refused;      /* items refused during the episode */
};

/* A delete that finished: no action at or below version goes out for this
 * (index, _id) until expires.  The value of its entry in s->tombs, a map
 * keyed by "index NUL id" (base/fpmap.h: 48 bytes an entry, the key kept as
 * its keyed 128-bit SipHash). */
struct tomb {
    uint64_t version, expires;
};

/* The two copies of a mirrored action: the owner hears once, when both
 * finished (sink_mirror.c). */
struct pair {
    void *owner;
    uint64_t ticket;
    unsigned pending;              /* copies not reported yet */
    enum sink_outcome live, mirror;
};

/* sink_mirror_set: actions for live also go to `to`.  Kept until sink_free
 * once made (items, blocks and dead letters borrow the names). */
struct mirror {
    struct list link;              /* in the sink's mirrors */
    char *live, *to;
    bool on;
};

/* Mirrored actions per table (ddb2es_mirror_actions_total). */
struct mirror_count {
    const char *table;             /* borrowed, as the documents' */
    uint64_t n;
};

/* A request outside the batches (sink_call, sink_ping). */
struct call {
    struct sink *s;
    sink_reply_cb *cb;              /* sink_call's */
    void (*ping)(void *arg, int rc); /* or sink_ping's */
    void *arg;
    struct http_req *req;
    bool signing, canceled;
    struct list link;               /* in the sink's calls */
};

struct sink {
    uv_loop_t *loop;
    struct http *http;
    struct creds *creds;
    struct sink_opts o;
    char *url;             /* base, without a trailing '/' */
    char *bulk_url, *ping_url;
    const char *ping_method; /* GET /, or HEAD /<ping_index> on OpenSearch Serverless */
    char *authz;           /* "Basic ..." or "ApiKey ...": a secret, never logged */
    char *service, *region, *version_type; /* copies behind o's pointers */
    sink_done_cb *done;
    sink_resume_cb *resume;
    void *arg;
    struct dlq *dlq;
    uv_timer_t flush_timer, retry_timer, deadline_timer, tomb_timer;
    int nhandles;          /* timers not yet closed */
    struct batch *open;
    struct item **buckets;
    size_t nbuckets;       /* a power of two */
    struct blist ready, delayed, inflight; /* inflight holds B_SIGNING, B_INFLIGHT, B_CANCELED */
    uint64_t nbatches;     /* batches made so far: the next one's id */
    struct list calls;     /* struct call: sink_call and sink_ping requests, in flight or signing */
    bool held;             /* sink_hold: no bulk request goes out */
    void (*unreachable)(void *arg); /* sink_on_unreachable */
    void *unreachable_arg;
    uint64_t gate_until;
    unsigned fail_streak;
    size_t ndlq;           /* items waiting for the dead-letter file */
    size_t bytes_total, bytes_inflight;
    size_t ndocs;
    bool full;
    uint64_t busy_at;      /* uv_now() when it last stopped being busy (or was made) */
    int depth;             /* > 0 while processing a reply: no finishing under our feet */
    bool closing, deadline_passed, finishing;
    void (*closed)(void *arg);
    void *closed_arg;
    struct block blocks[MAX_BLOCKS]; /* oldest first */
    size_t nblocks;
    struct fpmap tombs;    /* struct tomb, oldest first (sink_tomb.c) */
    struct sink_stats st;
    struct sink_item_failure *failures; /* st.item_failures */
    struct sink_item_failure *dlq_reasons; /* st.dlq_reasons: SINK_MAX_FAILURE_SERIES, fixed */
    struct list mirrors;   /* struct mirror, on and off */
    size_t nmirrors_on;
    struct mirror_count *mcounts;
    size_t nmcounts;
    struct sink_conflicts *conflicts;   /* per index, sink_set_conflicts */
    struct sink_item_failure *type_conflicts; /* st.type_conflicts */
};

/* sink_batch.c: items and batches */
struct item *sink_item_new(struct sink *s, const struct doc *d, void *owner, uint64_t ticket);
void sink_item_free(struct item *it);
/* The item's document as the dead-letter file describes it (no source). */
void sink_item_doc(const struct item *it, struct doc *d);
struct batch *sink_batch_new(struct sink *s);
/* b must be on no list (B_OPEN or B_HELD). */
void sink_batch_free(struct batch *b);
int sink_batch_take(struct batch *b, struct item *it, const struct batch *from);
void sink_batch_squeeze(struct batch *b);
/* Takes the item in slot i out of b's actions (expired, or covered by a
 * tombstone: it is not sent) and returns it; its text goes at the next
 * squeeze. */
struct item *sink_batch_drop_item(struct batch *b, size_t i);
/* After items were dropped (dropped): squeezes b, and frees it when nothing
 * is left to send (false). */
bool sink_batch_squeeze_or_free(struct batch *b, bool dropped);
/* The only writer of b->state: moves b to the list of its new state (at the
 * head when front), logs the change at debug level. */
void sink_batch_set_state(struct batch *b, enum bstate to, bool front);
/* A caller's own list of B_HELD batches. */
void sink_held_push(struct blist *l, struct batch *b);
void sink_held_remove(struct blist *l, struct batch *b);
void sink_close_open(struct sink *s);
/* sink_batch.c: backoff and the queues */
uint64_t sink_retry_delay_ms(const struct sink *s, unsigned n);
void sink_delay_batch(struct sink *s, struct batch *b, uint64_t ms);
void sink_retry_whole(struct sink *s, struct batch *b);
void sink_dispatch(struct sink *s);
/* sink_batch.c: the open batch */
void sink_count_in(struct sink *s, struct item *it, size_t len);
struct batch *sink_open_batch(struct sink *s);
/* Adds the n items (1, or a mirrored action's 2) whose texts were just
 * written, in order, at the end of the open batch's body: into one batch. */
int sink_add_open(struct sink *s, struct item **its, size_t n);

/* sink_tomb.c */
void sink_tomb_add(struct sink *s, const struct item *it);
bool sink_drop_tombstoned(struct sink *s, struct batch *b);
void sink_drop_tombstoned_waiting(struct sink *s);

/* sink_outcome.c */
bool sink_busy(const struct sink *s);
void sink_inflight_out(struct sink *s, struct batch *b);
void sink_maybe_full(struct sink *s);
void sink_maybe_resume(struct sink *s);
void sink_finish(struct sink *s, struct item *it, enum sink_outcome outcome);
void sink_cancel_batch(struct sink *s, struct batch *b);
void sink_to_dlq(struct sink *s, struct item *it, const char *doc, size_t doc_len, int status,
                 const char *type, const char *reason);
void sink_on_bulk_done(struct http_req *req, int err, void *arg);

/* sink_request.c */
int sink_add_auth(struct sink *s, struct http_req *req);
void sink_send_batch(struct sink *s, struct batch *b);
char *sink_url_join(const char *base, const char *path, const char *query);
/* base, "/" and the name percent-encoded but for the unreserved bytes. */
char *sink_url_segment(const char *base, const char *name);
char *sink_make_authz(const struct sink_opts *o);

/* sink.c */
void sink_maybe_finish(struct sink *s);

/* sink_mirror.c */
/* One more mirrored action of table. */
void sink_mirror_note(struct sink *s, const char *table);
/* A copy of a mirrored action finished with *outcome: false while the
 * other copy has not (nothing is reported yet); true with *outcome the
 * action's (the live copy's, unless the mirror's did not finish) and the
 * pair freed when it was the last. */
bool sink_pair_report(struct item *it, enum sink_outcome *outcome);
void sink_mirrors_free(struct sink *s);

/* sink_conflicts.c: type conflicts (sink_set_conflicts) */
struct bulkresp_item;
/* d (an index action) shaped with what is known of its index's types:
 * d->source replaced when a value moves.  0, or -ENOMEM (d unchanged). */
int sink_conflicts_shape(struct sink *s, struct doc *d);
/* it, refused in b's reply with ri: true when it is a mapping conflict the
 * sink takes over (the item waits for its index's mapping, then goes
 * again, reshaped); false: the caller dead-letters it. */
bool sink_conflicts_refused(struct sink *s, const struct batch *b, struct item *it,
                            const struct bulkresp_item *ri);
void sink_conflicts_free(struct sink *s);

#endif
