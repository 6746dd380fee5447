#include "aws/credsrc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

static void free_secret(char **p)
{
    if (*p) {
        OPENSSL_cleanse(*p, strlen(*p));
        free(*p);
        *p = NULL;
    }
}

void aws_cred_clear(struct aws_cred *c)
{
    if (!c)
        return;
    free_secret(&c->access_key_id);
    free_secret(&c->secret_access_key);
    free_secret(&c->session_token);
    free_secret(&c->account_id);
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

static bool digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int aws_time_parse(const char *s, time_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h, mi, sec, zh = 0, zm = 0, sign = 0;
    time_t t;

    if (!s || strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return -EINVAL;
    s += 19;
    if (*s == '.') {
        if (!isdigit((unsigned char)*++s))
            return -EINVAL;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'Z' || *s == 'z')
        s++;
    else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        if (!digits(s + 1, 2, &zh) || s[3] != ':' || !digits(s + 4, 2, &zm))
            return -EINVAL;
        s += 6;
    } else
        return -EINVAL;
    if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || zh > 23 ||
        zm > 59)
        return -EINVAL;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -EINVAL;
    *out = t - sign * (zh * 3600 + zm * 60);
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
    if (exp ? aws_time_parse(exp, &expires) < 0 : need_expiry) {
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

int aws_url_host(const char *url, char *host, size_t len, bool *https)
{
    const char *h, *end, *at;
    size_t n;

    if (strncasecmp(url, "https://", 8) == 0)
        h = url + 8, *https = true;
    else if (strncasecmp(url, "http://", 7) == 0)
        h = url + 7, *https = false;
    else
        return -EINVAL;
    end = h + strcspn(h, "/?#");
    at = memchr(h, '@', (size_t)(end - h));
    if (at)
        h = at + 1;
    if (*h == '[') {
        const char *close = memchr(h, ']', (size_t)(end - h));

        if (!close)
            return -EINVAL;
        h++;
        n = (size_t)(close - h);
    } else {
        const char *colon = memchr(h, ':', (size_t)(end - h));

        n = (size_t)((colon ? colon : end) - h);
    }
    if (n == 0 || n >= len)
        return -EINVAL;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

bool aws_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (strcasecmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

bool aws_url_safe_for_secrets(const char *url)
{
    char host[256];
    bool https;

    if (aws_url_host(url, host, sizeof host, &https) < 0)
        return false;
    return https || aws_host_is_loopback(host);
}
