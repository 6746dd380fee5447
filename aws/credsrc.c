#include "aws/credsrc.h"

#include "base/rfc3339.h"
#include "base/secret.h"
#include "base/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

void aws_cred_clear(struct aws_cred *c)
{
    if (!c)
        return;
    secret_free(&c->access_key_id);
    secret_free(&c->secret_access_key);
    secret_free(&c->session_token);
    secret_free(&c->account_id);
    c->expires = 0;
}

void aws_cred_move(struct aws_cred *dst, struct aws_cred *src)
{
    aws_cred_clear(dst);
    *dst = *src;
    memset(src, 0, sizeof *src);
}

int aws_cred_set(struct aws_cred *c, const char *id, const char *secret, const char *token)
{
    aws_cred_clear(c);
    c->access_key_id = strdup(id);
    c->secret_access_key = strdup(secret);
    if (token && *token)
        c->session_token = strdup(token);
    if (!c->access_key_id || !c->secret_access_key || (token && *token && !c->session_token)) {
        aws_cred_clear(c);
        return -ENOMEM;
    }
    return 0;
}

static const char *field(json_t *root, const char *name)
{
    const char *v = json_string_value(json_object_get(root, name));

    return v && *v ? v : NULL;
}

int aws_cred_from_json(const char *body, size_t len, const char *token_key, bool need_token,
                       bool need_expiry, struct aws_cred *out, char *why, size_t whylen)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id, *secret, *token, *exp, *account;
    time_t expires = 0;
    json_t *version;
    int rc = -EINVAL;

    aws_cred_clear(out);
    if (!json_is_object(root)) {
        snprintf(why, whylen, "the reply is not a JSON object");
        goto out;
    }
    version = json_object_get(root, "Version");
    if (version && json_integer_value(version) != 1) {
        snprintf(why, whylen, "unsupported Version (only 1 is known)");
        goto out;
    }
    id = field(root, "AccessKeyId");
    secret = field(root, "SecretAccessKey");
    token = field(root, token_key);
    exp = field(root, "Expiration");
    account = field(root, "AccountId");
    if (!id || !secret) {
        const char *code = field(root, "Code"), *msg = field(root, "Message");

        snprintf(why, whylen, "the reply has no %s%s%s%s%s", !id ? "AccessKeyId" : "SecretAccessKey",
                 code ? " (Code " : "", code ? code : "", code && msg ? ": " : "",
                 code ? (msg ? msg : "") : "");
        if (code)
            snprintf(why + strlen(why), whylen - strlen(why), ")");
        goto out;
    }
    if (need_token && !token) {
        snprintf(why, whylen, "the reply has no %s", token_key);
        goto out;
    }
    if (exp ? rfc3339_parse(exp, &expires) < 0 : need_expiry) {
        snprintf(why, whylen, exp ? "Expiration is not an RFC 3339 time" : "the reply has no Expiration");
        goto out;
    }
    rc = aws_cred_set(out, id, secret, token);
    if (rc == 0 && account && !(out->account_id = strdup(account)))
        rc = -ENOMEM;
    out->expires = expires;
    if (rc < 0)
        snprintf(why, whylen, "out of memory");
out:
    if (rc < 0)
        aws_cred_clear(out);
    json_decref(root);
    return rc;
}
