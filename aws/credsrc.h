/* credsrc — what the credential providers share: the key they hand over,
 * the JSON document three of them speak, RFC 3339 times and the rule for
 * which hosts may see credentials over plain http.  Pure: no I/O.
 */
#ifndef DDB2ES_CREDSRC_H
#define DDB2ES_CREDSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* A key as a provider hands it over: heap strings, cleansed when cleared. */
struct aws_cred {
    char *access_key_id, *secret_access_key, *session_token, *account_id;
    time_t expires; /* 0 = does not expire */
};

/* Cleanses and frees every string; the struct is zeroed.  NULL-safe. */
void aws_cred_clear(struct aws_cred *c);
/* Moves src into dst (dst cleared first); src is left empty. */
void aws_cred_move(struct aws_cred *dst, struct aws_cred *src);
/* Copies the strings (token may be NULL or "").  0 or -ENOMEM. */
int aws_cred_set(struct aws_cred *c, const char *id, const char *secret, const char *token);


/* The JSON credentials document of the container endpoint, IMDS and
 * credential_process: AccessKeyId, SecretAccessKey, the token under
 * token_key ("Token" or "SessionToken"), Expiration (RFC 3339), AccountId.
 * need_token / need_expiry make those fields required.  0, or -EINVAL with
 * why[] naming what is missing or malformed (never a value), or -ENOMEM. */
int aws_cred_from_json(const char *body, size_t len, const char *token_key, bool need_token,
                       bool need_expiry, struct aws_cred *out, char *why, size_t whylen);


#endif
