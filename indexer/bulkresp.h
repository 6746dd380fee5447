/* bulkresp — what a _bulk reply means, request by request and item by item.
 *
 * One pass over the common reply, a jansson parse for the others.  Items
 * map to actions by position, so the request must have used
 * bulk_filter_path() (or none): a reply whose items count differs from the
 * actions sent is a protocol error.  Pure.
 */
#ifndef DDB2ES_BULKRESP_H
#define DDB2ES_BULKRESP_H

#include <stdbool.h>
#include <stddef.h>

enum br_item {
    BR_OK,       /* 200, 201 (any 2xx) */
    BR_OK_GONE,  /* delete answered 404: the document is already absent */
    BR_OK_STALE, /* 409 version conflict: under external versioning a newer
                    version is stored, so this action is finished */
    BR_RETRY,    /* 429, 5xx: send again later */
    BR_BLOCKED,  /* the engine refuses writes: a cluster_block_exception below 500
                    (403 index.blocks.write / read_only; 429 the flood-stage
                    read_only_allow_delete block), or any other 401/403 (a
                    permission): send again later, never dead-letter */
    BR_DLQ,      /* any other status (400 mapper_parsing_exception...): permanent */
};

enum br_request {
    BR_REQ_ITEMS, /* 2xx with one item per action: look at items[] */
    BR_REQ_SPLIT, /* 413: the body is too large, split the batch */
    BR_REQ_RETRY, /* no answer (status 0), 408, 429, 5xx */
    BR_REQ_AUTH,  /* 401, 403: renew credentials or re-sign, then retry */
    BR_REQ_FATAL, /* any other status: the request itself is wrong */
    BR_REQ_PROTO, /* 2xx but unparsable, no items[], or items count != actions */
};

struct bulkresp_item {
    enum br_item cls;
    int status; /* HTTP status of the item, 0 when absent */
    char *type;   /* error.type, or NULL (set for BR_RETRY, BR_BLOCKED and BR_DLQ) */
    char *reason; /* error.reason, then "; caused by TYPE: REASON" for each
                   * error.caused_by (at most BULKRESP_REASON_MAX bytes), or NULL */
};

#define BULKRESP_REASON_MAX 1024

struct bulkresp {
    enum br_request req;
    long status;                 /* the request's HTTP status */
    size_t n;                    /* items[] length: the actions count for BR_REQ_ITEMS, else 0 */
    struct bulkresp_item *items;
    size_t n_ok, n_gone, n_stale, n_retry, n_blocked, n_dlq;
    char error[256]; /* request level: "type: reason" or what was wrong; "" if none */
    bool blocked;    /* request level: a cluster_block_exception below 500 */
};

/* Classifies a reply to a bulk of n_actions actions.  status is the HTTP
 * status (0 when no reply came); body may be NULL when len is 0.  out must
 * be zeroed or bulkresp_clear()'ed; it is filled in every case.
 * Returns 0, or -ENOMEM (out then holds BR_REQ_RETRY and nothing else). */
int bulkresp_parse(long status, const char *body, size_t len, size_t n_actions,
                   struct bulkresp *out);

/* The same, always through a jansson tree.  bulkresp_parse reads the
 * common reply (every action done: 2xx, or 404 for a delete, and no error
 * objects) in one pass without one, and gives every other to this; the
 * tests hold the two equal. */
int bulkresp_parse_tree(long status, const char *body, size_t len, size_t n_actions,
                        struct bulkresp *out);

/* Frees the items and zeroes out. */
void bulkresp_clear(struct bulkresp *out);

/* An engine's error reply as one line in out (cap bytes): "type: reason"
 * from {"error":{"type","reason"}}, the text of {"error":"text"} or of an
 * AWS {"message"}, else the first printable bytes of the body. */
void bulkresp_error_text(const char *body, size_t len, char *out, size_t cap);

const char *bulkresp_item_name(enum br_item c);
const char *bulkresp_request_name(enum br_request r);

#endif
