/* sigv4_int — the parts of aws/sigv4.c that the verification half
 * (tests/support/sigv4check.c: presigning, Authorization parsing, checking a
 * received request) builds on.  Not for the daemon's other modules. */
#ifndef DDB2ES_SIGV4_INT_H
#define DDB2ES_SIGV4_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "aws/sigv4.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* Ceiling for the canonical request and friends: far above any real request
 * line plus headers, low enough that hostile input cannot balloon memory. */
#define SIGV4_TEXT_MAX (1024 * 1024)

struct hdr {
    char *name;  /* lowercase */
    char *value; /* trimmed, whitespace runs folded */
    size_t idx;  /* input order, keeps duplicates in the order given */
};

struct qparam {
    char *key; /* canonical (re-encoded) */
    char *val;
};

/* Everything one signing computes; shared by sign and presign. */
struct req {
    struct hdr *hdrs;
    size_t nhdrs;
    struct qparam *params;
    size_t nparams;
    char date[17];
    char scope[256];
    struct buf payload_hash;
};

/* The buffer's text as a heap C string (NULL when out of memory). */
char *sigv4_take(struct buf *b);
/* Appends s[0..n) percent-encoded: unreserved characters and those in keep stay. */
int sigv4_uri_encode(struct buf *b, const char *s, size_t n, const char *keep);
bool sigv4_nonempty(const char *s);

/* Canonical headers, query, date, scope and payload hash of one request;
 * presign leaves out the headers sign adds and the payload-hash header. */
int sigv4_req_init(struct req *r, const struct sigv4_input *in, const struct sigv4_key *key,
                   bool presign, struct sigv4_output *out);
void sigv4_req_close(struct req *r);
/* Adds one query parameter from raw (unencoded) text; sort with sigv4_cmp_param. */
int sigv4_add_param_raw(struct req *r, const char *key, const char *val);
int sigv4_cmp_param(const void *a, const void *b);
/* "host;x-amz-date" */
int sigv4_signed_header_list(const struct req *r, struct buf *b);
/* Fills canonical_request, string_to_sign, signed_headers and signature. */
int sigv4_finish(const struct req *r, const struct sigv4_input *in, const struct sigv4_key *key,
                 struct sigv4_output *out);

#endif
