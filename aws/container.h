/* container — the ECS / EKS Pod Identity credentials endpoint (AWS-AUTH §7).
 *
 * AWS_CONTAINER_CREDENTIALS_RELATIVE_URI gives http://169.254.170.2<uri>
 * and wins; else AWS_CONTAINER_CREDENTIALS_FULL_URI, which over plain http
 * must name a loopback host, 169.254.170.2, 169.254.170.23 or fd00:ec2::23
 * (checked here, before any socket exists).  The Authorization value comes
 * from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (re-read at every fetch), else
 * AWS_CONTAINER_AUTHORIZATION_TOKEN.  Never through a proxy; 3 attempts,
 * no retry on 4xx.
 */
#ifndef DDB2ES_CONTAINER_H
#define DDB2ES_CONTAINER_H

#include <stddef.h>
#include <uv.h>

#include "aws/credsrc.h"
#include "aws/profile.h"

struct http;
struct container_call;

struct container_cfg {
    char url[1024];
    const char *url_var;          /* which variable gave the URL */
    char token_file[1024];        /* "" = none */
    bool have_token;              /* AWS_CONTAINER_AUTHORIZATION_TOKEN was set */
    char token[4096];             /* its value (a secret) */
};

/* 0 when configured (*out filled); -ENOKEY when neither URI variable is
 * set; -EINVAL with why[] for a URL that may not be used. */
int container_resolve(profile_getenv_fn *env, struct container_cfg *out, char *why, size_t whylen);
/* Whether plain http may go to host (pure, for tests). */
bool container_host_allowed(const char *host);

typedef void container_cb(int err, struct aws_cred *cred, const char *why, void *arg);
/* Reads the token file, then fetches.  NULL with why[] when the token cannot
 * be read or is malformed (cb not run). */
struct container_call *container_fetch(uv_loop_t *loop, struct http *h,
                                       const struct container_cfg *cfg, container_cb *cb,
                                       void *arg, char *why, size_t whylen);
void container_cancel(struct container_call *c); /* cb runs with -ECANCELED first */

#endif
