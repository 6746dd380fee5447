#include "aws/endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* From botocore's data/partitions.json: every partition supports FIPS and
 * dual-stack there. */
struct partition {
    const char *name, *dns, *dualstack, *global;
};

static const struct partition partitions[] = {
    { "aws", "amazonaws.com", "api.aws", "aws-global" },
    { "aws-cn", "amazonaws.com.cn", "api.amazonwebservices.com.cn", "aws-cn-global" },
    { "aws-us-gov", "amazonaws.com", "api.aws", "aws-us-gov-global" },
    { "aws-iso", "c2s.ic.gov", "api.aws.ic.gov", "aws-iso-global" },
    { "aws-iso-b", "sc2s.sgov.gov", "api.aws.scloud", "aws-iso-b-global" },
    { "aws-iso-e", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk", "aws-iso-e-global" },
    { "aws-iso-f", "csp.hci.ic.gov", "api.aws.hci.ic.gov", "aws-iso-f-global" },
    { "aws-eusc", "amazonaws.eu", "api.amazonwebservices.eu", NULL },
};

/* The partitions' regionRegex values, e.g. aws-us-gov is ^us\-gov\-\w+\-\d+$:
 * a fixed head, then one word part, then one number part. */
static const struct {
    const char *head; /* with its trailing '-' */
    size_t partition;
} heads[] = {
    { "us-gov-", 2 },  { "us-iso-", 3 }, { "us-isob-", 4 }, { "eu-isoe-", 5 }, { "us-isof-", 6 },
    { "eusc-de-", 7 }, { "cn-", 1 },     { "us-", 0 },      { "eu-", 0 },      { "ap-", 0 },
    { "sa-", 0 },      { "ca-", 0 },     { "me-", 0 },      { "af-", 0 },      { "il-", 0 },
    { "mx-", 0 },
};

static bool word_dash_digits(const char *s)
{
    const char *dash = strchr(s, '-');

    if (!dash || dash == s || !dash[1])
        return false;
    for (const char *p = s; p < dash; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9'))
            return false;
    for (const char *p = dash + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static const struct partition *partition_of(const char *region)
{
    for (size_t i = 0; i < sizeof partitions / sizeof partitions[0]; i++)
        if (partitions[i].global && strcmp(region, partitions[i].global) == 0)
            return &partitions[i];
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        size_t n = strlen(heads[i].head);

        if (strncmp(region, heads[i].head, n) == 0 && word_dash_digits(region + n))
            return &partitions[heads[i].partition];
    }
    return &partitions[0];
}

const char *endpoint_partition(const char *region)
{
    return partition_of(region ? region : "")->name;
}

/* A region goes into a host name: letters, digits and inner hyphens only. */
static bool region_ok(const char *r)
{
    size_t n = strlen(r);

    if (n == 0 || n > 63 || r[0] == '-' || r[n - 1] == '-')
        return false;
    for (; *r; r++)
        if (!(*r >= 'a' && *r <= 'z') && !(*r >= 'A' && *r <= 'Z') && !(*r >= '0' && *r <= '9') &&
            *r != '-')
            return false;
    return true;
}

static int fail(struct endpoint_out *out, const char *why)
{
    out->url[0] = '\0';
    out->source = NULL;
    out->error = why;
    return -EINVAL;
}

static int custom(const struct endpoint_in *in, const char *url, const char *source,
                  struct endpoint_out *out)
{
    size_t n = strlen(url), scheme;

    if (in->use_fips)
        return fail(out, "Invalid Configuration: FIPS and custom endpoint are not supported");
    if (in->use_dualstack)
        return fail(out, "Invalid Configuration: Dualstack and custom endpoint are not supported");
    if (strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else
        return fail(out, "custom endpoint must be an http:// or https:// URL");
    while (n > scheme && url[n - 1] == '/')
        n--;
    if (n == scheme || strchr("/?#:@", url[scheme]))
        return fail(out, "custom endpoint has no host");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
            return fail(out, "custom endpoint contains spaces or control characters");
    if (n >= sizeof out->url)
        return fail(out, "custom endpoint is too long");
    memcpy(out->url, url, n);
    out->url[n] = '\0';
    out->source = source;
    out->error = NULL;
    return 0;
}

static const char *env(const struct endpoint_in *in, const char *name)
{
    const char *v = in->getenv ? in->getenv(name) : NULL;

    return v && *v ? v : NULL;
}

static int regional(const struct endpoint_in *in, struct endpoint_out *out)
{
    const struct partition *p;
    const char *r = in->region, *host;
    bool gov;
    int n;

    if (!r || !*r)
        return fail(out, "Invalid Configuration: Missing Region");
    if (!region_ok(r))
        return fail(out, "malformed region (letters, digits and '-' only)");
    p = partition_of(r);
    gov = strcmp(p->name, "aws-us-gov") == 0;
    if (in->svc == AWS_STS) {
        if (p->global && strcmp(r, p->global) == 0 && !in->use_fips && !in->use_dualstack) {
            snprintf(out->url, sizeof out->url, "https://sts.%s", p->dns);
            goto ok;
        }
        host = in->use_fips ? "sts-fips" : "sts";
    } else if (in->svc == AWS_DYNAMODB) {
        if (strcmp(r, "local") == 0) {
            if (in->use_fips || in->use_dualstack)
                return fail(out, "Invalid Configuration: FIPS and local endpoint are not supported");
            snprintf(out->url, sizeof out->url, "http://localhost:8000");
            goto ok;
        }
        /* GovCloud's regular DynamoDB host is FIPS already. */
        host = in->use_fips && (in->use_dualstack || !gov) ? "dynamodb-fips" : "dynamodb";
    } else {
        bool hyphen = strcmp(p->name, "aws") == 0 || strcmp(p->name, "aws-cn") == 0 || gov;

        if (in->use_dualstack && hyphen)
            host = in->use_fips ? "streams-dynamodb-fips" : "streams-dynamodb";
        else if (in->use_fips && !(gov && !in->use_dualstack))
            host = "streams.dynamodb-fips";
        else
            host = "streams.dynamodb";
    }
    n = snprintf(out->url, sizeof out->url, "https://%s.%s.%s", host, r,
                 in->use_dualstack ? p->dualstack : p->dns);
    if (n < 0 || (size_t)n >= sizeof out->url)
        return fail(out, "endpoint too long");
ok:
    out->source = "regional";
    out->error = NULL;
    return 0;
}

int endpoint_resolve(const struct endpoint_in *in, struct endpoint_out *out)
{
    const char *svc_var = in->svc == AWS_STREAMS ? "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"
                          : in->svc == AWS_STS   ? "AWS_ENDPOINT_URL_STS"
                                                 : "AWS_ENDPOINT_URL_DYNAMODB";
    const char *ignore = env(in, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), *v;

    if (in->override && *in->override)
        return custom(in, in->override, "config", out);
    if (!ignore || strcasecmp(ignore, "true") != 0) {
        if ((v = env(in, svc_var)))
            return custom(in, v, svc_var, out);
        if ((v = env(in, "AWS_ENDPOINT_URL")))
            return custom(in, v, "AWS_ENDPOINT_URL", out);
        if (in->profile_override && *in->profile_override)
            return custom(in, in->profile_override, "profile", out);
    }
    return regional(in, out);
}

const char *endpoint_signing_region(enum aws_service svc, const char *region)
{
    const struct partition *p;

    if (!region || svc != AWS_STS)
        return region;
    p = partition_of(region);
    if (p->global && strcmp(region, p->global) == 0)
        return strcmp(p->name, "aws") == 0 ? "us-east-1"
               : strcmp(p->name, "aws-cn") == 0 ? "cn-north-1"
               : strcmp(p->name, "aws-us-gov") == 0 ? "us-gov-west-1"
                                                     : region;
    return region;
}
