/* creds — AWS credentials for signing, found the way the AWS SDKs find them
 * (see README "Credentials", AWS-AUTH §2).  The default chain, first
 * configured provider decides:
 *   1. environment keys (AWS_ACCESS_KEY_ID, ...), unless a profile was given
 *      in the configuration ([aws] profile, creds_opts.profile);
 *   2. web identity from the environment (AWS_WEB_IDENTITY_TOKEN_FILE +
 *      AWS_ROLE_ARN: STS AssumeRoleWithWebIdentity), same exception;
 *   3. the shared config and credentials files, profile [aws] profile, else
 *      AWS_PROFILE, else default: role_arn (+ source_profile chains or
 *      credential_source) via STS AssumeRole, web_identity_token_file,
 *      credential_process, static keys;
 *   4. the container endpoint (ECS, EKS Pod Identity);
 *   5. EC2 IMDS (unless AWS_EC2_METADATA_DISABLED=true).
 * A provider that is configured but fails is an error naming it; the chain
 * does not move on.  Network providers need loop and http; without them
 * (creds_new(NULL, NULL, ...)) only 1 and the files' static keys are used.
 *
 * Renewal: keys with an expiry are refreshed in the background once less
 * than 15 minutes (at most 3/4 of their lifetime) remain, while the current
 * key is still handed out; callers wait only when less than 5 minutes (at
 * most 1/4 of the lifetime) remain or the key was invalidated.  A failed
 * background refresh keeps the key and retries after a random wait of up
 * to 1 s, 2 s, 4 s, ... 60 s (full jitter, base/backoff.h), logging a
 * warning.
 *
 * creds_get() hands out the current key.  When a usable cached key exists
 * (or a provider answers at once, like the environment) the callback runs
 * before creds_get returns; otherwise it runs from the loop once a provider
 * has answered, with the key or an error (creds_error() says why).  A key
 * passed to a callback is valid only during the callback (copy what you
 * keep).  Secrets are never logged.
 */
#ifndef DDB2ES_CREDS_H
#define DDB2ES_CREDS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "aws/sigv4.h"

struct http;
struct creds;

typedef void creds_cb(const struct sigv4_key *key, int err, void *arg);

struct creds_opts {
    const char *profile;        /* [aws] profile, or NULL for AWS_PROFILE / default */
    time_t (*now)(void);        /* clock, for tests; NULL = time() */
    const char *region;         /* region of the STS endpoint; NULL = AWS_REGION,
                                 * AWS_DEFAULT_REGION, then the profile's region */
    bool use_fips, use_dualstack; /* STS endpoint variants (the environment's
                                   * AWS_USE_*_ENDPOINT and the profile's keys too) */
    long retry_base_ms;         /* first wait's cap after a failed background refresh;
                                 * 0 = 1000 */
};

/* NULL on allocation failure.  The chain is resolved lazily, at the first
 * creds_get(). */
struct creds *creds_new(uv_loop_t *loop, struct http *h, const struct creds_opts *opts);
/* Callbacks still waiting for a provider run with -ECANCELED first. */
void creds_free(struct creds *c);
/* 0 when the callback has run or will run; negative errno (callback not run):
 * -ENOKEY when no provider is configured, -EINVAL when one is configured but
 * broken (e.g. a key id without its secret); creds_error() says why. */
int creds_get(struct creds *c, creds_cb *cb, void *arg);
/* Why the last resolution failed, naming the provider and the variable or
 * file at fault (never a secret); "" when it did not fail. */
const char *creds_error(const struct creds *c);
/* The key was refused (an expired-token 403): callers wait for one new
 * fetch, which starts now unless one is in flight already. */
void creds_invalidate(struct creds *c);
/* Which provider gave the current key ("environment", "web identity",
 * "profile NAME: assume role", "container", "IMDS", ...); "" before any. */
const char *creds_source(const struct creds *c);
/* When the current key expires (0: never, or no key yet). */
time_t creds_expiration(const struct creds *c);

/* Renewals: fetches after the first key was had (a temporary key renewed,
 * or fetched again after it was refused), by outcome.  A fetch cancelled by
 * creds_free counts as neither. */
struct creds_renewals {
    uint64_t ok, failed;
};
struct creds_renewals creds_renewals(const struct creds *c); /* zeros for NULL */

#endif
