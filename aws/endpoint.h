/* endpoint — where DynamoDB, DynamoDB Streams and STS calls go.  Pure: no I/O.
 *
 * Order, first hit wins (AWS-AUTH §11):
 *   1. the daemon's own override ([aws] endpoint), for both services;
 *   2. AWS_ENDPOINT_URL_DYNAMODB_STREAMS (Streams), AWS_ENDPOINT_URL_DYNAMODB
 *      (DynamoDB) or AWS_ENDPOINT_URL_STS (STS), then AWS_ENDPOINT_URL, then
 *      the profile's `services` section or endpoint_url (profile_override),
 *      unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true;
 *   3. the regional host of the region's partition, with the FIPS and
 *      dual-stack variants of the services' endpoint rule sets (STS:
 *      sts[-fips].<region>.<dns or dual-stack dns>; the legacy global
 *      region names "aws-global" and friends give https://sts.<dns>, signed
 *      for us-east-1 — see endpoint_signing_region).
 * A custom endpoint (1 or 2) with FIPS or dual-stack is an error, as in the
 * SDKs; so is a missing region when no custom endpoint is given.  The
 * signing name and region do not depend on the endpoint.
 */
#ifndef DDB2ES_ENDPOINT_H
#define DDB2ES_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

enum aws_service { AWS_DYNAMODB, AWS_STREAMS, AWS_STS };

struct endpoint_in {
    enum aws_service svc;
    const char *region;   /* "us-east-1"; NULL or "" = none */
    const char *override; /* full URL, or NULL/"" */
    const char *profile_override; /* from the shared config profile, or NULL */
    bool use_fips, use_dualstack;
    /* Environment lookup (getenv, or a table in tests); NULL = no environment. */
    char *(*getenv)(const char *name);
};

struct endpoint_out {
    char url[512];       /* "https://streams.dynamodb.us-east-1.amazonaws.com", no trailing '/' */
    const char *source;  /* "config", "AWS_ENDPOINT_URL_DYNAMODB", ..., or "regional" */
    const char *error;   /* static text when resolution failed */
};

/* Returns 0 with out->url and out->source set, or -EINVAL with out->error set
 * (bad combination, missing or malformed region, malformed URL). */
int endpoint_resolve(const struct endpoint_in *in, struct endpoint_out *out);

/* The partition a region belongs to ("aws", "aws-cn", "aws-us-gov", ...);
 * unknown names fall back to "aws", as the SDKs do. */
const char *endpoint_partition(const char *region);
/* The region a call to the regional endpoint of svc in region is signed
 * for: region itself, except STS's global names ("aws-global" → us-east-1). */
const char *endpoint_signing_region(enum aws_service svc, const char *region);

#endif
