#include "aws/region.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/imds.h"
#include "aws/profile.h"

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

static bool flag(const char *var, const struct profile *p, const char *key)
{
    const char *v = env(var);

    if (!v)
        v = profile_get(p, key);
    return v && strcasecmp(v, "true") == 0;
}

static int dup_opt(char **dst, const char *src)
{
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -ENOMEM;
}

int aws_settings_load(struct aws_settings *out, const char *configured_region, const char *profile,
                      bool cfg_fips, bool cfg_dualstack, char *why, size_t whylen)
{
    struct profile_set set = { 0 };
    const struct profile *p;
    const char *r = NULL, *src = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    rc = profile_load(&set, getenv, why, whylen);
    if (rc < 0)
        return rc;
    p = profile_find(&set, profile_selected(profile, getenv));
    if (configured_region && *configured_region)
        r = configured_region, src = "[aws] region";
    else if ((r = env("AWS_REGION")))
        src = "AWS_REGION";
    else if ((r = env("AWS_DEFAULT_REGION")))
        src = "AWS_DEFAULT_REGION";
    else if ((r = profile_get(p, "region")) && *r)
        src = "profile";
    else
        r = NULL;
    if (r) {
        snprintf(out->region, sizeof out->region, "%s", r);
        out->region_source = src;
    }
    out->use_fips = cfg_fips || flag("AWS_USE_FIPS_ENDPOINT", p, "use_fips_endpoint");
    out->use_dualstack =
        cfg_dualstack || flag("AWS_USE_DUALSTACK_ENDPOINT", p, "use_dualstack_endpoint");
    if (p)
        rc = dup_opt(&out->endpoint_dynamodb, profile_endpoint(&set, p, "dynamodb")) ||
                     dup_opt(&out->endpoint_streams, profile_endpoint(&set, p, "dynamodb_streams"))
                 ? -ENOMEM
                 : 0;
    profile_set_free(&set);
    if (rc < 0) {
        aws_settings_close(out);
        snprintf(why, whylen, "out of memory");
    }
    return rc;
}

void aws_settings_close(struct aws_settings *s)
{
    if (!s)
        return;
    free(s->endpoint_dynamodb);
    free(s->endpoint_streams);
    s->endpoint_dynamodb = s->endpoint_streams = NULL;
}

struct region_req {
    struct imds *imds;
    aws_region_cb *cb;
    void *arg;
};


static void on_text(int err, const char *text, const char *why, void *arg)
{
    struct region_req *r = arg;

    r->cb(err, err ? NULL : text, why, r->arg);
    /* The operation is over: imds touches nothing of its own after this. */
    imds_free(r->imds);
    free(r);
}

int aws_region_from_imds(uv_loop_t *loop, struct http *h, const char *profile, aws_region_cb *cb,
                         void *arg)
{
    struct profile_set set = { 0 };
    struct imds_cfg cfg;
    struct region_req *r;
    char why[300];
    int rc;

    if (profile_load(&set, getenv, why, sizeof why) < 0)
        return -EIO;
    rc = imds_resolve(getenv, profile_find(&set, profile_selected(profile, getenv)), &cfg, why,
                      sizeof why);
    profile_set_free(&set);
    if (rc < 0)
        return rc;
    if (cfg.disabled)
        return -ENOENT;
    if (!(r = calloc(1, sizeof *r)))
        return -ENOMEM;
    r->cb = cb;
    r->arg = arg;
    r->imds = imds_new(loop, h, &cfg, NULL);
    rc = r->imds ? imds_get(r->imds, "/latest/meta-data/placement/region", on_text, r) : -ENOMEM;
    if (rc < 0) {
        imds_free(r->imds);
        free(r);
        return rc;
    }
    return 0;
}
