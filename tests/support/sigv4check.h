/* sigv4check — the verification half of AWS Signature Version 4, for the
 * tests, the search double and the Streams stand-in: presigned URLs,
 * Authorization header parsing, and checking a received request the way AWS
 * does.  Built on aws/sigv4.c's canonicaliser (aws/sigv4_int.h); not part of
 * the daemon. */
#ifndef DDB2ES_SIGV4CHECK_H
#define DDB2ES_SIGV4CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "aws/sigv4.h"

/* Presigned URL form (query-string auth): fills out->query with the full,
 * canonical-ordered query string including X-Amz-Signature.  expires_s is
 * X-Amz-Expires.  The key's token is included unless omit_token. */
int sigv4_presign(const struct sigv4_input *in, const struct sigv4_key *key, long expires_s,
                  bool omit_token, char **query_out, struct sigv4_output *out);

/* Parses "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/service/aws4_request,
 * SignedHeaders=a;b, Signature=hex" into its parts (copied into the caller's
 * arrays).  Returns 0 or -EINVAL. */
struct sigv4_authz {
    char access_key_id[129];
    char date[9];
    char region[64];
    char service[64];
    char signed_headers[1024];
    char signature[65];
};
int sigv4_parse_authorization(const char *value, struct sigv4_authz *out);

/* Checks a received request the way AWS does: the Authorization header
 * parses, its key id, region and service are the expected ones, X-Amz-Date
 * is within 15 minutes of now and matches the credential scope, the session
 * token (if the key has one) was sent and signed, x-amz-content-sha256 (when
 * sent, or when required) is the body's hash or UNSIGNED-PAYLOAD, and the
 * signature recomputed over exactly the signed headers matches.  header(ctx,
 * lowercase-name) returns a received header's value or NULL.  Returns 0, or
 * -EACCES with AWS's wording of the reason in msg. */
struct sigv4_check {
    const char *method, *path, *query;
    const char *(*header)(void *ctx, const char *lname);
    void *ctx;
    const void *body;
    size_t body_len;
    const char *region, *service;
    const struct sigv4_key *key;
    bool require_content_sha256; /* aoss */
    time_t now;
};
int sigv4_verify(const struct sigv4_check *in, char *msg, size_t msglen);

#endif
