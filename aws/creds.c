#include "aws/creds.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "aws/container.h"
#include "aws/credproc.h"
#include "aws/credsrc.h"
#include "aws/endpoint.h"
#include "aws/imds.h"
#include "aws/profile.h"
#include "aws/sts.h"
#include "base/backoff.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "base/secret.h"

#define ADVISORY_S (15 * 60) /* background refresh below this */
#define MANDATORY_S (5 * 60) /* callers wait below this */
#define MAX_RETRY_MS 60000L
#define MAX_NODES (PLAN_MAX + 2)
#define MAX_TOKEN_FILE (64 * 1024)

enum node_kind { N_ENV, N_STATIC, N_WEBID, N_ASSUME, N_PROCESS, N_CONTAINER, N_IMDS };

/* One source of a key.  A chain of roles is a list of ASSUME nodes, each
 * signing its STS call with its source's key. */
struct node {
    enum node_kind kind;
    char label[160];          /* for messages and creds_source() */
    struct node *source;      /* ASSUME: where the signing key comes from */
    struct node *parent;      /* the node this one is the source of */
    struct aws_cred cache;
    bool have;
    unsigned round;           /* the refresh that fetched cache */
    char *id, *secret, *token;                 /* STATIC */
    char *role_arn, *session_name, *external_id, *token_file; /* WEBID, ASSUME */
    long duration;
    char *command;                              /* PROCESS */
    struct container_cfg container;             /* CONTAINER */
};

struct waiter {
    struct waiter *next;
    creds_cb *cb;
    void *arg;
};

struct creds {
    uv_loop_t *loop;
    struct http *http;
    char *profile;           /* explicit ([aws] profile), or NULL */
    char *region;
    bool use_fips, use_dualstack;
    long retry_base_ms;
    time_t (*now)(void);

    bool planned;
    struct node nodes[MAX_NODES];
    size_t nnodes;
    struct node *top;
    char tried[160];         /* providers not configured, for the final message */
    char sts_url[512], sts_region[64];
    struct imds *imds;

    bool refreshing, invalid, closing;
    unsigned round;          /* counts refreshes */
    time_t fetched_at;       /* when the current key came */
    struct waiter *waiters, **wtail;
    /* the one operation in flight */
    struct node *op_node;
    struct sts_call *sts;
    struct credproc *proc;
    struct container_call *cont;
    bool imds_busy;

    uv_timer_t retry_timer;  /* backoff after a failed background refresh */
    bool timer_init, retry_pending;
    unsigned renew_fails;    /* background refreshes failed in a row */
    bool had_key;            /* a refresh succeeded once: later ones are renewals */
    struct creds_renewals renewals;
    const char *source;
    char source_buf[200];
    char error[768];
    bool env_expiry_warned;
};

static time_t now_of(const struct creds *c)
{
    return c->now ? c->now() : time(NULL);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

static bool env_true(const char *name)
{
    const char *v = env(name);

    return v && strcasecmp(v, "true") == 0;
}

static void node_clear(struct node *n)
{
    aws_cred_clear(&n->cache);
    secret_free(&n->id);
    secret_free(&n->secret);
    secret_free(&n->token);
    free(n->role_arn);
    free(n->session_name);
    free(n->external_id);
    free(n->token_file);
    free(n->command);
    OPENSSL_cleanse(&n->container, sizeof n->container);
    memset(n, 0, sizeof *n);
}

static void set_error(struct creds *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct creds *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}

/* ---- planning: which provider decides ------------------------------------ */

static struct node *node_add(struct creds *c, enum node_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct node *node_add(struct creds *c, enum node_kind kind, const char *fmt, ...)
{
    struct node *n;
    va_list ap;

    if (c->nnodes == MAX_NODES)
        return NULL;
    n = &c->nodes[c->nnodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    va_start(ap, fmt);
    vsnprintf(n->label, sizeof n->label, fmt, ap);
    va_end(ap);
    return n;
}

static bool dup_into(char **dst, const char *src)
{
    if (!src)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

static void tried(struct creds *c, const char *name)
{
    size_t off = strlen(c->tried);

    snprintf(c->tried + off, sizeof c->tried - off, "%s%s", off ? ", " : "", name);
}

/* The STS endpoint for this chain (AWS-AUTH §5). */
static int plan_sts(struct creds *c, const struct profile_set *set, const struct profile *p,
                    const char *label)
{
    const char *region = c->region, *pv;
    struct endpoint_in in = { .svc = AWS_STS, .getenv = getenv };
    struct endpoint_out out;

    if (c->sts_url[0])
        return 0;
    if (!region)
        region = env("AWS_REGION");
    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region && (pv = profile_get(p, "region")) && *pv)
        region = pv;
    in.region = region;
    in.use_fips = c->use_fips || env_true("AWS_USE_FIPS_ENDPOINT") ||
                  ((pv = profile_get(p, "use_fips_endpoint")) && strcasecmp(pv, "true") == 0);
    in.use_dualstack =
        c->use_dualstack || env_true("AWS_USE_DUALSTACK_ENDPOINT") ||
        ((pv = profile_get(p, "use_dualstack_endpoint")) && strcasecmp(pv, "true") == 0);
    in.profile_override = p ? profile_endpoint(set, p, "sts") : NULL;
    if (endpoint_resolve(&in, &out) < 0) {
        set_error(c, "%s: STS endpoint: %s%s", label, out.error,
                  region ? "" : " (set [aws] region, AWS_REGION or the profile's region)");
        return -EINVAL;
    }
    snprintf(c->sts_url, sizeof c->sts_url, "%s", out.url);
    snprintf(c->sts_region, sizeof c->sts_region, "%s", endpoint_signing_region(AWS_STS, region));
    log_debug("credentials: STS endpoint %s (%s), signing region %s", out.url, out.source,
              c->sts_region);
    return 0;
}

static int plan_env_keys(struct creds *c, const char *label, struct node **out)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");

    if (!id || !*id)
        return -ENOKEY;
    if (!secret || !*secret) {
        set_error(c, "%s: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is %s", label,
                  secret ? "empty" : "not set");
        return -EINVAL;
    }
    *out = node_add(c, N_ENV, "%s", label);
    return *out ? 0 : -ENOMEM;
}

static int plan_imds_node(struct creds *c, const struct profile *p, const char *label,
                          bool required, struct node **out)
{
    struct imds_cfg cfg;
    char why[300];

    if (imds_resolve(getenv, p, &cfg, why, sizeof why) < 0) {
        set_error(c, "%s: %s", label, why);
        return -EINVAL;
    }
    if (cfg.disabled) {
        if (required) {
            set_error(c, "%s: AWS_EC2_METADATA_DISABLED=true", label);
            return -EINVAL;
        }
        tried(c, "IMDS (disabled)");
        return -ENOKEY;
    }
    if (!c->loop || !c->http)
        return -ENOKEY;
    if (!c->imds && !(c->imds = imds_new(c->loop, c->http, &cfg, c->now)))
        return -ENOMEM;
    *out = node_add(c, N_IMDS, "%s", label);
    return *out ? 0 : -ENOMEM;
}

static int plan_container_node(struct creds *c, const char *label, bool required,
                               struct node **out)
{
    struct container_cfg cfg;
    char why[400];
    int rc = container_resolve(getenv, &cfg, why, sizeof why);

    if (rc == -ENOKEY && required) {
        set_error(c, "%s: neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI is set",
                  label);
        return -EINVAL;
    }
    if (rc == -ENOKEY || (rc == 0 && (!c->loop || !c->http))) {
        OPENSSL_cleanse(&cfg, sizeof cfg);
        return -ENOKEY;
    }
    if (rc < 0) {
        set_error(c, "%s", why);
        return rc;
    }
    *out = node_add(c, N_CONTAINER, "%s", label);
    if (*out)
        (*out)->container = cfg;
    OPENSSL_cleanse(&cfg, sizeof cfg);
    return *out ? 0 : -ENOMEM;
}

static bool network(const struct creds *c, const char *label, struct creds *err_to)
{
    if (c->loop && c->http)
        return true;
    set_error(err_to, "%s: needs the event loop and HTTP client", label);
    return false;
}

/* Nodes for a profile's plan; the last one gives the key. */
static int plan_profile(struct creds *c, const struct profile_set *set, const struct plan *pl,
                        struct node **out)
{
    struct node *prev = NULL;
    const struct profile *sel = profile_find(set, pl->steps[pl->n - 1].profile);
    int rc;

    for (size_t i = 0; i < pl->n; i++) {
        const struct plan_step *s = &pl->steps[i];
        struct node *n = NULL;
        char label[120];

        snprintf(label, sizeof label, "profile %s: %s", s->profile, plan_kind_name(s->kind));
        switch (s->kind) {
        case PLAN_STATIC:
            n = node_add(c, N_STATIC, "%s", label);
            if (n && (!dup_into(&n->id, s->access_key_id) ||
                      !dup_into(&n->secret, s->secret_access_key) ||
                      !dup_into(&n->token, s->session_token)))
                return -ENOMEM;
            break;
        case PLAN_SOURCE:
            snprintf(label, sizeof label, "profile %s: credential_source %s", s->profile,
                     s->source);
            if (strcmp(s->source, "Environment") == 0) {
                rc = plan_env_keys(c, label, &n);
                if (rc == -ENOKEY)
                    set_error(c, "%s: AWS_ACCESS_KEY_ID is not set", label);
            } else if (strcmp(s->source, "EcsContainer") == 0) {
                rc = network(c, label, c) ? plan_container_node(c, label, true, &n) : -EINVAL;
            } else {
                rc = network(c, label, c) ? plan_imds_node(c, sel, label, true, &n) : -EINVAL;
            }
            if (rc < 0)
                return rc == -ENOKEY ? -EINVAL : rc;
            break;
        case PLAN_WEBID:
        case PLAN_ASSUME:
            if (!network(c, label, c))
                return -EINVAL;
            if ((rc = plan_sts(c, set, sel, label)) < 0)
                return rc;
            n = node_add(c, s->kind == PLAN_WEBID ? N_WEBID : N_ASSUME, "%s %s", label,
                         s->role_arn);
            if (n && (!dup_into(&n->role_arn, s->role_arn) ||
                      !dup_into(&n->session_name, s->session_name) ||
                      !dup_into(&n->external_id, s->external_id) ||
                      !dup_into(&n->token_file, s->token_file)))
                return -ENOMEM;
            if (n)
                n->duration = s->duration_seconds;
            break;
        case PLAN_PROCESS:
            if (!network(c, label, c))
                return -EINVAL;
            n = node_add(c, N_PROCESS, "%s", label);
            if (n && !dup_into(&n->command, s->command))
                return -ENOMEM;
            break;
        }
        if (!n)
            return -ENOMEM;
        if (n->kind == N_ASSUME) {
            n->source = prev;
            prev->parent = n;
        }
        prev = n;
    }
    *out = prev;
    return 0;
}

static int plan_webid_env(struct creds *c, const struct profile *p, struct node **out)
{
    const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *arn = env("AWS_ROLE_ARN"), *name = env("AWS_ROLE_SESSION_NAME");
    const char *label = "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)";
    struct node *n;
    int rc;

    if (!file)
        return -ENOKEY;
    if (!arn)
        arn = profile_get(p, "role_arn");
    if (!name)
        name = profile_get(p, "role_session_name");
    if (!arn || !*arn) {
        set_error(c, "%s: AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not", label);
        return -EINVAL;
    }
    if (!c->loop || !c->http)
        return -ENOKEY;
    if ((rc = plan_sts(c, NULL, p, label)) < 0)
        return rc;
    n = node_add(c, N_WEBID, "web identity %s", arn);
    if (!n || !dup_into(&n->role_arn, arn) || !dup_into(&n->token_file, file) ||
        !dup_into(&n->session_name, name && *name ? name : NULL))
        return -ENOMEM;
    *out = n;
    return 0;
}

static void unplan(struct creds *c)
{
    for (size_t i = 0; i < c->nnodes; i++)
        node_clear(&c->nodes[i]);
    c->nnodes = 0;
    c->top = NULL;
    c->tried[0] = '\0';
    c->sts_url[0] = '\0';
    imds_free(c->imds);
    c->imds = NULL;
}

/* Walks the chain; the first configured provider decides.  0, -ENOKEY
 * (nothing configured) or another negative errno (configured but broken);
 * c->error says why. */
static int plan(struct creds *c)
{
    struct profile_set set = { 0 };
    const char *selected = profile_selected(c->profile, getenv);
    const struct profile *sel;
    struct plan pl;
    char why[512];
    struct node *top = NULL;
    int rc;

    unplan(c);
    c->error[0] = '\0';
    if (!c->profile) {
        rc = plan_env_keys(c, "environment", &top);
        if (rc != -ENOKEY)
            goto out;
        tried(c, "environment");
    }
    rc = profile_load(&set, getenv, why, sizeof why);
    if (rc < 0) {
        set_error(c, "shared config files: %s", rc == -ENOMEM ? "out of memory" : why);
        goto out;
    }
    sel = profile_find(&set, selected);
    if (!c->profile) {
        rc = plan_webid_env(c, sel, &top);
        if (rc != -ENOKEY)
            goto out;
        tried(c, "web identity");
    }
    rc = profile_plan(&set, selected, &pl, why, sizeof why);
    if (rc == 0) {
        rc = plan_profile(c, &set, &pl, &top);
        goto out;
    }
    if (rc == -ENOENT && (c->profile || strcmp(selected, "default") != 0)) {
        set_error(c, "%s (selected by %s)", why, c->profile ? "[aws] profile" : "AWS_PROFILE");
        rc = -EINVAL;
        goto out;
    }
    if (rc != -ENOENT && rc != -ENOKEY) {
        set_error(c, "%s", why);
        goto out;
    }
    snprintf(why, sizeof why, "profile %s", selected);
    tried(c, why);
    rc = plan_container_node(c, "container endpoint", false, &top);
    if (rc != -ENOKEY)
        goto out;
    if (c->loop && c->http)
        tried(c, "container");
    rc = plan_imds_node(c, sel, "IMDS", false, &top);
    if (rc == -ENOKEY)
        set_error(c, "no AWS credentials found (tried: %s)", c->tried);
out:
    profile_set_free(&set);
    if (rc == -ENOMEM)
        set_error(c, "credentials: out of memory");
    if (rc < 0) {
        unplan(c);
        return rc;
    }
    c->top = top;
    c->planned = true;
    return 0;
}

/* ---- fetching ---------------------------------------------------------------- */

static void refresh_done(struct creds *c, int err, const char *why);
static void fetch(struct creds *c, struct node *n);

/* Whether an inner node's key can sign its parent's STS call. */
static bool fresh(const struct creds *c, const struct node *n)
{
    if (!n->have)
        return false;
    if (n->round == c->round)
        return true; /* fetched by this very refresh */
    if (n->kind == N_ENV || n->kind == N_STATIC)
        return false; /* cheap to read again, and may have changed */
    return !n->cache.expires || n->cache.expires - now_of(c) > ADVISORY_S;
}

static void node_done(struct creds *c, struct node *n, int err, struct aws_cred *cred,
                      const char *why)
{
    if (err) {
        if (n->parent) {
            char more[sizeof c->error];

            snprintf(more, sizeof more, "source of %s: %s: %s", n->parent->label, n->label, why);
            node_done(c, n->parent, err, NULL, more);
            return;
        }
        refresh_done(c, err, why);
        return;
    }
    aws_cred_move(&n->cache, cred);
    n->have = true;
    n->round = c->round;
    if (n->parent)
        fetch(c, n->parent);
    else
        refresh_done(c, 0, "");
}

/* The one operation in flight (STS, a credential process, the container
 * endpoint or IMDS) answered, or could not start: nothing is in flight any
 * more, and its node takes the outcome. */
static void on_answer(int err, struct aws_cred *cred, const char *why, void *arg)
{
    struct creds *c = arg;
    struct node *n = c->op_node;

    c->sts = NULL;
    c->proc = NULL;
    c->cont = NULL;
    c->imds_busy = false;
    c->op_node = NULL;
    node_done(c, n, err, cred, why);
}

static int read_token_file(const char *path, char **out, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    size_t len = 0;
    int e = 0;

    if (fd < 0) {
        e = errno;
        goto fail;
    }
    if (!(buf = malloc(MAX_TOKEN_FILE + 1))) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, MAX_TOKEN_FILE - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == MAX_TOKEN_FILE) {
            e = EFBIG;
            break;
        }
    }
    close(fd);
    if (e)
        goto fail;
    buf[len] = '\0';
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    if (!len) {
        snprintf(why, whylen, "the token file %s is empty", path);
        free(buf);
        return -EINVAL;
    }
    *out = buf;
    return 0;
fail:
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
    snprintf(why, whylen, "cannot read the token file %s: %s", path, strerror(e));
    return -e;
}

static void start_sts(struct creds *c, struct node *n)
{
    char session[96], why[400], *token = NULL;
    struct sigv4_key key;
    struct sts_params p = { .url = c->sts_url, .region = c->sts_region, .role_arn = n->role_arn,
                            .external_id = n->external_id, .duration_seconds = n->duration,
                            .now = c->now };
    int rc;

    if (n->session_name)
        p.session_name = n->session_name;
    else {
        snprintf(session, sizeof session, "ddb2es-%lld", (long long)now_of(c));
        p.session_name = session;
    }
    if (n->kind == N_WEBID) {
        /* Read at every call: EKS rotates the projected token. */
        if ((rc = read_token_file(n->token_file, &token, why, sizeof why)) < 0) {
            node_done(c, n, rc, NULL, why);
            return;
        }
        p.web_identity_token = token;
    } else {
        key = (struct sigv4_key){ n->source->cache.access_key_id,
                                  n->source->cache.secret_access_key,
                                  n->source->cache.session_token };
        p.key = &key;
    }
    c->op_node = n;
    c->sts = sts_call_start(c->loop, c->http, &p, on_answer, c);
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    if (!c->sts)
        on_answer(-ENOMEM, NULL, "out of memory", c);
}

static void fetch_env(struct creds *c, struct node *n)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = env("AWS_SESSION_TOKEN"), *exp;
    struct aws_cred k = { 0 };
    time_t t;

    if (!id || !*id || !secret || !*secret) {
        node_done(c, n, -ENOKEY, NULL,
                  !id || !*id ? "AWS_ACCESS_KEY_ID is no longer set"
                              : "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
        return;
    }
    /* AWS_SESSION_TOKEN wins; botocore still reads the legacy name. */
    if (!token)
        token = env("AWS_SECURITY_TOKEN");
    if (aws_cred_set(&k, id, secret, token) < 0) {
        node_done(c, n, -ENOMEM, NULL, "out of memory");
        return;
    }
    exp = env("AWS_CREDENTIAL_EXPIRATION");
    if (exp && rfc3339_parse(exp, &t) == 0 && t - now_of(c) < ADVISORY_S &&
        !c->env_expiry_warned) {
        c->env_expiry_warned = true;
        log_warn("credentials: AWS_CREDENTIAL_EXPIRATION says the environment's keys expire in "
                 "%lld s; the environment cannot renew them",
                 (long long)(t - now_of(c)));
    }
    node_done(c, n, 0, &k, "");
}

static void fetch(struct creds *c, struct node *n)
{
    struct aws_cred k = { 0 };
    char why[512];
    int rc;

    switch (n->kind) {
    case N_ENV:
        fetch_env(c, n);
        return;
    case N_STATIC:
        if (aws_cred_set(&k, n->id, n->secret, n->token) < 0)
            node_done(c, n, -ENOMEM, NULL, "out of memory");
        else
            node_done(c, n, 0, &k, "");
        return;
    case N_ASSUME:
        if (!fresh(c, n->source)) {
            fetch(c, n->source); /* comes back here through node_done */
            return;
        }
        start_sts(c, n);
        return;
    case N_WEBID:
        start_sts(c, n);
        return;
    case N_PROCESS:
        c->op_node = n;
        c->proc = credproc_run(c->loop, n->command, 0, on_answer, c, why, sizeof why);
        if (!c->proc)
            on_answer(-EIO, NULL, why, c);
        return;
    case N_CONTAINER:
        c->op_node = n;
        c->cont = container_fetch(c->loop, c->http, &n->container, on_answer, c, why,
                                  sizeof why);
        if (!c->cont)
            on_answer(-EINVAL, NULL, why, c);
        return;
    case N_IMDS:
        c->op_node = n;
        c->imds_busy = true;
        rc = imds_get_credentials(c->imds, on_answer, c);
        if (rc < 0)
            on_answer(rc, NULL, "IMDS: cannot start the request", c);
        return;
    }
}

static void on_retry_timer(uv_timer_t *t);

static void start_refresh(struct creds *c)
{
    c->refreshing = true;
    c->round++;
    c->retry_pending = false;
    if (c->timer_init)
        uv_timer_stop(&c->retry_timer);
    fetch(c, c->top);
}

static void on_retry_timer(uv_timer_t *t)
{
    struct creds *c = t->data;

    c->retry_pending = false;
    if (!c->refreshing && !c->closing)
        start_refresh(c);
}

static void key_view(const struct creds *c, struct sigv4_key *k)
{
    k->access_key_id = c->top->cache.access_key_id;
    k->secret_access_key = c->top->cache.secret_access_key;
    k->session_token = c->top->cache.session_token;
}

/* The windows for a key that lived `life` seconds: at most 15 and 5
 * minutes, and at most 3/4 and 1/4 of its life for short-lived keys. */
static void windows(const struct creds *c, time_t *advisory, time_t *mandatory)
{
    time_t life = c->top->cache.expires - c->fetched_at;

    if (life < 0)
        life = 0;
    *advisory = life * 3 / 4 < ADVISORY_S ? life * 3 / 4 : ADVISORY_S;
    *mandatory = life / 4 < MANDATORY_S ? life / 4 : MANDATORY_S;
}

static void run_waiters(struct creds *c, int err)
{
    struct waiter *w = c->waiters;
    struct sigv4_key k;

    c->waiters = NULL;
    c->wtail = &c->waiters;
    while (w) {
        struct waiter *next = w->next;

        if (err == 0) {
            key_view(c, &k);
            w->cb(&k, 0, w->arg);
        } else {
            w->cb(NULL, err, w->arg);
        }
        free(w);
        w = next;
    }
}

static void refresh_done(struct creds *c, int err, const char *why)
{
    time_t now = now_of(c), left, adv, mand;
    const char *label = c->top ? c->top->label : "credentials";

    c->refreshing = false;
    if (err == 0) {
        if (c->had_key)
            c->renewals.ok++;
        c->had_key = true;
        c->fetched_at = now;
        c->invalid = false;
        c->renew_fails = 0;
        c->error[0] = '\0';
        if (!c->source || strcmp(c->source_buf, label) != 0) {
            snprintf(c->source_buf, sizeof c->source_buf, "%s", label);
            log_info("credentials: using %s", c->source_buf);
        }
        c->source = c->source_buf;
        if (c->top->cache.expires)
            log_debug("credentials from %s valid for %lld s", label,
                      (long long)(c->top->cache.expires - now));
        run_waiters(c, 0);
        return;
    }
    if (c->closing || err == -ECANCELED) {
        set_error(c, "%s", "cancelled");
        run_waiters(c, -ECANCELED);
        return;
    }
    if (c->had_key)
        c->renewals.failed++;
    if (c->top && c->top->kind == N_IMDS && !c->top->have)
        set_error(c, "no AWS credentials found (tried: %s%sIMDS: %s)", c->tried,
                  c->tried[0] ? ", " : "", why);
    else if (strncmp(why, label, strlen(label)) == 0)
        set_error(c, "%s", why);
    else
        set_error(c, "%s: %s", label, why);
    left = c->top->have && c->top->cache.expires ? c->top->cache.expires - now : 0;
    if (c->top->have && !c->invalid && left > 0) {
        windows(c, &adv, &mand);
        if (left > mand && c->timer_init) {
            long wait = backoff_ms(c->retry_base_ms > 0 ? c->retry_base_ms : 1000, MAX_RETRY_MS,
                                   c->renew_fails++);

            log_warn("credentials: renewal failed (%s); the current key is valid %lld s more, "
                     "retrying in %ld ms",
                     c->error, (long long)left, wait);
            c->retry_pending = true;
            uv_timer_start(&c->retry_timer, on_retry_timer, (uint64_t)wait, 0);
            run_waiters(c, err);
            return;
        }
    }
    log_error("credentials: %s", c->error);
    run_waiters(c, err);
}

/* ---- the interface ------------------------------------------------------------ */

struct creds *creds_new(uv_loop_t *loop, struct http *h, const struct creds_opts *opts)
{
    struct creds *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->loop = loop;
    c->http = h;
    c->wtail = &c->waiters;
    if (opts) {
        c->now = opts->now;
        c->use_fips = opts->use_fips;
        c->use_dualstack = opts->use_dualstack;
        c->retry_base_ms = opts->retry_base_ms;
        if ((opts->profile && *opts->profile && !(c->profile = strdup(opts->profile))) ||
            (opts->region && *opts->region && !(c->region = strdup(opts->region)))) {
            free(c->profile);
            free(c);
            return NULL;
        }
    }
    if (loop) {
        if (uv_timer_init(loop, &c->retry_timer) < 0) {
            free(c->profile);
            free(c->region);
            free(c);
            return NULL;
        }
        c->retry_timer.data = c;
        uv_unref((uv_handle_t *)&c->retry_timer);
        c->timer_init = true;
    }
    return c;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void creds_free(struct creds *c)
{
    if (!c)
        return;
    c->closing = true;
    if (c->sts)
        sts_call_cancel(c->sts);
    if (c->proc)
        credproc_cancel(c->proc);
    if (c->cont)
        container_cancel(c->cont);
    if (c->imds_busy)
        imds_cancel(c->imds);
    if (c->waiters)
        run_waiters(c, -ECANCELED);
    unplan(c);
    free(c->profile);
    free(c->region);
    if (c->timer_init) {
        uv_timer_stop(&c->retry_timer);
        uv_close((uv_handle_t *)&c->retry_timer, on_timer_closed);
        return;
    }
    free(c);
}

int creds_get(struct creds *c, creds_cb *cb, void *arg)
{
    struct waiter *w;
    time_t now, left, adv, mand;
    struct sigv4_key k;
    int rc;

    if (!c || !cb)
        return -EINVAL;
    if (c->closing)
        return -ECANCELED;
    if (!c->planned && (rc = plan(c)) < 0)
        return rc;
    now = now_of(c);
    if (c->top->have && !c->invalid) {
        if (!c->top->cache.expires) {
            key_view(c, &k);
            cb(&k, 0, arg);
            return 0;
        }
        left = c->top->cache.expires - now;
        windows(c, &adv, &mand);
        if (left > mand) {
            if (left <= adv && !c->refreshing && !c->retry_pending) {
                log_debug("credentials from %s expire in %lld s: renewing in the background",
                          c->top->label, (long long)left);
                start_refresh(c); /* may finish at once and replace the key */
            }
            key_view(c, &k);
            cb(&k, 0, arg);
            return 0;
        }
    }
    if (!(w = calloc(1, sizeof *w)))
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    *c->wtail = w;
    c->wtail = &w->next;
    if (!c->refreshing)
        start_refresh(c);
    return 0;
}

void creds_invalidate(struct creds *c)
{
    if (!c || !c->planned)
        return;
    c->invalid = true;
    /* Inner keys of a role chain are refetched too: one of them may be the
     * culprit (a revoked session of a source role). */
    if (!c->refreshing)
        for (size_t i = 0; i < c->nnodes; i++)
            c->nodes[i].have = c->nodes[i].have && &c->nodes[i] == c->top;
}

const char *creds_source(const struct creds *c)
{
    return c && c->source ? c->source : "";
}

const char *creds_error(const struct creds *c)
{
    return c ? c->error : "";
}

time_t creds_expiration(const struct creds *c)
{
    return c && c->top && c->top->have ? c->top->cache.expires : 0;
}

struct creds_renewals creds_renewals(const struct creds *c)
{
    return c ? c->renewals : (struct creds_renewals){ 0 };
}
