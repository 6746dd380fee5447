/* creds — AWS credentials for signing, found the way the AWS SDKs find them
 * (see README "Credentials"): environment keys first; further providers of
 * the default chain plug in behind the same interface.
 *
 * creds_get() hands out the current key.  When a valid cached key exists the
 * callback runs before creds_get returns; otherwise it runs from the loop once
 * a provider has answered.  A key passed to a callback is valid only during
 * the callback (copy what you keep).  Secrets are never logged.
 */
#ifndef DDB2ES_CREDS_H
#define DDB2ES_CREDS_H

#include <time.h>
#include <uv.h>

#include "aws/sigv4.h"

struct http;
struct creds;

typedef void creds_cb(const struct sigv4_key *key, int err, void *arg);

struct creds_opts {
    const char *profile;        /* [aws] profile, or NULL for AWS_PROFILE / default */
    time_t (*now)(void);        /* clock, for tests; NULL = time() */
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
/* Drop the cached key (after an expired-token 403); the next get fetches anew. */
void creds_invalidate(struct creds *c);
/* Which provider gave the current key ("environment", ...), for `ddb2es check`. */
const char *creds_source(const struct creds *c);

#endif
