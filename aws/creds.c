#include "aws/creds.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "daemon/log.h"

/* A key as a provider hands it over: heap strings, cleansed when dropped. */
struct stored_key {
    char *access_key_id, *secret_access_key, *session_token;
    time_t expires; /* 0 = does not expire */
};

struct creds {
    uv_loop_t *loop;
    struct http *http;
    char *profile;
    time_t (*now)(void);
    struct stored_key key;
    bool have_key;
    const char *source; /* provider name of the current key */
    char error[256];
};

/* A provider of the default chain.  load() returns
 *   0        with *k filled: this provider decides;
 *   -ENOKEY  when it is not configured here: try the next one;
 *   other    negative errno when configured but broken: the chain stops
 *            (botocore's rule, AWS-AUTH §1), with why[] filled.
 * Network providers (web identity, container, IMDS) will answer later from
 * the loop; they will return -EINPROGRESS and complete through the waiters
 * that creds_get queues, keeping this interface. */
struct provider {
    const char *name;
    int (*load)(struct creds *c, struct stored_key *k, char *why, size_t whylen);
};

static char *dup_env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? strdup(v) : NULL;
}

static int env_load(struct creds *c, struct stored_key *k, char *why, size_t whylen)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");

    if (!id || !*id)
        return -ENOKEY;
    if (!secret || !*secret) {
        snprintf(why, whylen,
                 "environment: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is %s",
                 secret ? "empty" : "not set");
        return -EINVAL;
    }
    k->access_key_id = strdup(id);
    k->secret_access_key = strdup(secret);
    /* AWS_SESSION_TOKEN wins; botocore still reads the legacy name. */
    k->session_token = dup_env("AWS_SESSION_TOKEN");
    if (!k->session_token)
        k->session_token = dup_env("AWS_SECURITY_TOKEN");
    k->expires = 0;
    if (!k->access_key_id || !k->secret_access_key)
        return -ENOMEM;
    return 0;
}

static const struct provider chain[] = {
    { "environment", env_load },
};

#define NPROVIDERS (sizeof chain / sizeof chain[0])

static void free_secret(char **p)
{
    if (*p) {
        OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

static void key_drop(struct stored_key *k)
{
    free_secret(&k->access_key_id);
    free_secret(&k->secret_access_key);
    free_secret(&k->session_token);
    k->expires = 0;
}

struct creds *creds_new(uv_loop_t *loop, struct http *h, const struct creds_opts *opts)
{
    struct creds *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->loop = loop;
    c->http = h;
    c->now = opts && opts->now ? opts->now : NULL;
    if (opts && opts->profile && !(c->profile = strdup(opts->profile))) {
        free(c);
        return NULL;
    }
    return c;
}

void creds_free(struct creds *c)
{
    if (!c)
        return;
    key_drop(&c->key);
    free(c->profile);
    OPENSSL_cleanse(c, sizeof *c);
    free(c);
}

/* Walks the chain; the first configured provider decides. */
static int resolve(struct creds *c)
{
    char why[sizeof c->error] = "";
    size_t off;

    for (size_t i = 0; i < NPROVIDERS; i++) {
        struct stored_key k = { 0 };
        int rc = chain[i].load(c, &k, why, sizeof why);

        if (rc == -ENOKEY) {
            key_drop(&k);
            continue;
        }
        if (rc < 0) {
            key_drop(&k);
            if (rc == -ENOMEM)
                snprintf(why, sizeof why, "%s: out of memory", chain[i].name);
            snprintf(c->error, sizeof c->error, "%s", why);
            return rc;
        }
        key_drop(&c->key);
        c->key = k;
        c->have_key = true;
        if (c->source != chain[i].name) /* once, not at every renewal */
            log_info("credentials: using the %s provider", chain[i].name);
        c->source = chain[i].name;
        c->error[0] = '\0';
        return 0;
    }
    off = (size_t)snprintf(c->error, sizeof c->error, "no AWS credentials found (tried: ");
    for (size_t i = 0; i < NPROVIDERS && off < sizeof c->error; i++)
        off += (size_t)snprintf(c->error + off, sizeof c->error - off, "%s%s", i ? ", " : "",
                                chain[i].name);
    if (off < sizeof c->error)
        snprintf(c->error + off, sizeof c->error - off, ")");
    return -ENOKEY;
}

int creds_get(struct creds *c, creds_cb *cb, void *arg)
{
    struct sigv4_key view;
    time_t now;
    int rc;

    if (!c || !cb)
        return -EINVAL;
    now = c->now ? c->now() : time(NULL);
    /* Temporary keys are renewed 5 minutes before they expire (AWS-AUTH §9). */
    if (c->have_key && c->key.expires && now >= c->key.expires - 300)
        creds_invalidate(c);
    if (!c->have_key && (rc = resolve(c)) < 0)
        return rc;
    view.access_key_id = c->key.access_key_id;
    view.secret_access_key = c->key.secret_access_key;
    view.session_token = c->key.session_token;
    cb(&view, 0, arg);
    return 0;
}

void creds_invalidate(struct creds *c)
{
    if (!c)
        return;
    key_drop(&c->key);
    c->have_key = false;
}

const char *creds_source(const struct creds *c)
{
    return c && c->source ? c->source : "";
}

const char *creds_error(const struct creds *c)
{
    return c ? c->error : "";
}
