/* imds — the EC2 instance metadata service (AWS-AUTH §8): IMDSv2 token
 * (PUT with the TTL header, no Expect), role name, credentials; the
 * placement region.  Never through a proxy.
 *
 * Token PUT outcomes: 200 → v2; 403/404/405 → v1 unless v1 is disabled;
 * timeout → v1 (the hop-limit case, logged once with a hint) unless v1 is
 * disabled (then an error carrying the hint); 400 → error; 5xx → retried up
 * to the attempts, then v1; connection refused → error.  A 401 on a GET
 * drops the token and fetches a new one once.  The extended credentials
 * path is tried first; a 404 there switches to the legacy path for good.
 */
#ifndef DDB2ES_IMDS_H
#define DDB2ES_IMDS_H

#include <stdbool.h>
#include <time.h>
#include <uv.h>

#include "aws/credsrc.h"
#include "aws/profile.h"

struct http;
struct imds;

struct imds_cfg {
    char endpoint[256];       /* "http://169.254.169.254", no trailing '/' */
    const char *endpoint_source; /* which setting gave it */
    bool disabled;            /* AWS_EC2_METADATA_DISABLED=true */
    bool v1_disabled;
    long timeout_ms;          /* per request; default 1000 */
    int attempts;             /* default 1 */
    char instance_profile[256]; /* AWS_EC2_INSTANCE_PROFILE_NAME / ec2_instance_profile_name */
};

#define IMDS_HOP_HINT                                                                              \
    "IMDSv2 token request timed out: if running in a container on EC2, set the instance "        \
    "metadata hop limit to 2, or use ECS task roles / EKS Pod Identity"

/* Pure: the settings from the environment, then the profile (p may be
 * NULL), as [RS] imds-tests.json tabulates: an explicit endpoint beats the
 * mode, the environment beats the profile; an unknown mode is an error.
 * 0, or -EINVAL with why[]. */
int imds_resolve(profile_getenv_fn *env, const struct profile *p, struct imds_cfg *out, char *why,
                 size_t whylen);

/* now: clock for the static-stability rule (NULL = time()). */
struct imds *imds_new(uv_loop_t *loop, struct http *h, const struct imds_cfg *cfg,
                      time_t (*now)(void));
/* Cancels the operation in flight (its callback runs with -ECANCELED). */
void imds_free(struct imds *m);

typedef void imds_cred_cb(int err, struct aws_cred *cred, const char *why, void *arg);
typedef void imds_text_cb(int err, const char *text, const char *why, void *arg);

/* One operation at a time (-EBUSY otherwise); callbacks run from the loop.
 * Returns 0 or a negative errno (callback not run). */
int imds_get_credentials(struct imds *m, imds_cred_cb *cb, void *arg);
/* GET path (e.g. "/latest/meta-data/placement/region"); text is trimmed. */
int imds_get(struct imds *m, const char *path, imds_text_cb *cb, void *arg);
void imds_cancel(struct imds *m);

#endif
