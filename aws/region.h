/* region — the region and endpoint settings the daemon works with
 * (AWS-AUTH §10, §11): [aws] region, AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's region, then IMDS placement/region; FIPS and dual-stack from the
 * configuration, AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT or the
 * profile; the profile's configured DynamoDB and Streams endpoints.
 */
#ifndef DDB2ES_REGION_H
#define DDB2ES_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct http;

struct aws_settings {
    char region[64];           /* "" until known */
    const char *region_source; /* "[aws] region", "AWS_REGION", ..., "IMDS" */
    bool use_fips, use_dualstack;
    char *endpoint_dynamodb;   /* the profile's services section / endpoint_url, or NULL */
    char *endpoint_streams;
};

/* Reads everything but IMDS.  configured_region and profile come from the
 * [aws] section (NULL = not set).  0 (region may still be ""), or -EIO /
 * -ENOMEM with why[] when a shared config file cannot be read. */
int aws_settings_load(struct aws_settings *out, const char *configured_region, const char *profile,
                      bool cfg_fips, bool cfg_dualstack, char *why, size_t whylen);
void aws_settings_close(struct aws_settings *s);

/* err 0: region found (source "IMDS"); else why says what failed. */
typedef void aws_region_cb(int err, const char *region, const char *why, void *arg);

/* The last step: asks IMDS for placement/region (unless
 * AWS_EC2_METADATA_DISABLED=true: then cb gets -ENOENT).  cb runs from the
 * loop.  0, or a negative errno (cb not run). */
int aws_region_from_imds(uv_loop_t *loop, struct http *h, const char *profile, aws_region_cb *cb,
                         void *arg);

#endif
