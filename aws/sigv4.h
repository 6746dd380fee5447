/* sigv4 — AWS Signature Version 4 on OpenSSL.  Pure: no I/O, no clock.
 *
 * sigv4_sign() computes the canonical request, the string to sign and the
 * Authorization value for one HTTP request.  The verification half
 * (presigned URLs, Authorization parsing, checking a received request) is
 * test support: tests/support/sigv4check.h.
 *
 * Header policy (botocore's): every header passed in is signed except
 * `expect`, `user-agent` and `x-amzn-trace-id`; `host` must be among them.
 * If no `x-amz-date` header is given, one made from `now` is signed and
 * returned in out->amz_date for the caller to send.  If the key has a session
 * token and no `x-amz-security-token` header is given, it is signed and must
 * be sent too.  The payload hash is the value of an `x-amz-content-sha256`
 * header when one is given (e.g. "UNSIGNED-PAYLOAD"), else hex(SHA-256(body));
 * with sign_body, an `x-amz-content-sha256: <hash>` header is added, signed,
 * and must be sent.
 */
#ifndef DDB2ES_SIGV4_H
#define DDB2ES_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct sigv4_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when none */
};

struct sigv4_header {
    const char *name;  /* any case */
    const char *value; /* raw; trimmed and inner spaces folded when canonicalised */
};

struct sigv4_input {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* as sent on the wire (already percent-encoded), "/" if empty */
    const char *query;   /* as sent, without '?'; NULL or "" when none */
    const struct sigv4_header *headers;
    size_t nheaders;
    const void *body;
    size_t body_len;
    const char *region;  /* "us-east-1" */
    const char *service; /* "dynamodb", "es", "aoss", "sts" */
    time_t now;          /* used only when no x-amz-date header is given */
    bool normalize_path; /* remove dot segments and '//' (true for every service but s3) */
    bool sign_body;      /* add and sign x-amz-content-sha256 */
};

struct sigv4_output {
    char amz_date[17];     /* "20150830T123600Z" */
    char payload_hash[65]; /* hex, or the literal given in x-amz-content-sha256 (truncated) */
    char signature[65];    /* hex */
    char *authorization;   /* "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." */
    char *canonical_request; /* for tests; never log it */
    char *string_to_sign;
    char *signed_headers;    /* "host;x-amz-date" */
    bool add_date, add_token, add_content_sha256; /* headers the caller must now send */
};

/* Returns 0, -EINVAL for unusable input (no host header, bad date), -ENOMEM. */
int sigv4_sign(const struct sigv4_input *in, const struct sigv4_key *key, struct sigv4_output *out);
void sigv4_output_close(struct sigv4_output *out);

/* hex(SHA-256(data)) into out[65]. */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);
/* hex(HMAC-SHA256(key, data)) into out[65]. */
void sigv4_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                           char out[65]);

#endif
