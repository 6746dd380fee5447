#include "searchd_int.h"

/* ------------------------------------------------------------------------ */
/* Authentication                                                           */

static void b64_encode(const char *in, size_t n, char *out, size_t outcap)
{
    if (outcap < 4 * ((n + 2) / 3) + 1) {
        out[0] = '\0';
        return;
    }
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
}

static bool const_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static void reply_401(struct conn *c, const struct request *r, const char *reason)
{
    static const char www[] = "Basic realm=\"security\" charset=\"UTF-8\"";
    json_t *e = json_pack("{s:s, s:s, s:{s:[s, s]}}", "type", "security_exception", "reason",
                          reason, "header", "WWW-Authenticate", www, "ApiKey");

    srv.st.auth_failures++;
    reply_json(c, 401, es_error_body(401, e),
               "WWW-Authenticate: Basic realm=\"security\" charset=\"UTF-8\"\r\n"
               "WWW-Authenticate: ApiKey\r\n");
}

static void reply_403_aws(struct conn *c, const char *message)
{
    srv.st.auth_failures++;
    reply_json(c, 403, json_pack("{s:s}", "message", message), "x-amzn-ErrorType: "
               "InvalidSignatureException\r\n");
}

static bool check_basic(struct conn *c, const struct request *r)
{
    const char *a = req_header(r, "authorization");
    char reason[400], expect[1024], plain[600];

    if (!a || strncasecmp(a, "Basic ", 6) != 0) {
        snprintf(reason, sizeof(reason), "missing authentication credentials for REST request [%.200s]",
                 r->path);
        reply_401(c, r, reason);
        return false;
    }
    snprintf(plain, sizeof(plain), "%s:%s", srv.set.user ? srv.set.user : "",
             srv.set.password ? srv.set.password : "");
    b64_encode(plain, strlen(plain), expect, sizeof(expect));
    OPENSSL_cleanse(plain, sizeof(plain));
    a += 6;
    while (*a == ' ')
        a++;
    bool ok = const_eq(a, expect);
    OPENSSL_cleanse(expect, sizeof(expect));
    if (!ok) {
        /* name the user the client sent, as ES does (never the password) */
        unsigned char dec[600] = { 0 };
        size_t al = strlen(a);
        int n = al < 780 ? EVP_DecodeBlock(dec, (const unsigned char *)a, (int)al) : -1;
        char *colon = n > 0 ? strchr((char *)dec, ':') : NULL;
        if (colon)
            *colon = '\0';
        snprintf(reason, sizeof(reason), "unable to authenticate user [%.100s] for REST request [%.200s]",
                 colon ? (char *)dec : "", r->path);
        OPENSSL_cleanse(dec, sizeof(dec));
        reply_401(c, r, reason);
    }
    return ok;
}

static bool check_apikey(struct conn *c, const struct request *r)
{
    const char *a = req_header(r, "authorization");
    const char *k = srv.set.api_key ? srv.set.api_key : "";
    char reason[400], expect[1024];

    if (!a || strncasecmp(a, "ApiKey ", 7) != 0) {
        snprintf(reason, sizeof(reason), "missing authentication credentials for REST request [%.200s]",
                 r->path);
        reply_401(c, r, reason);
        return false;
    }
    if (strchr(k, ':'))
        b64_encode(k, strlen(k), expect, sizeof(expect));
    else
        snprintf(expect, sizeof(expect), "%s", k);
    a += 7;
    while (*a == ' ')
        a++;
    bool ok = *k && const_eq(a, expect);
    OPENSSL_cleanse(expect, sizeof(expect));
    if (!ok) {
        snprintf(reason, sizeof(reason), "unable to authenticate with provided credentials and "
                 "anonymous access is not allowed for this request");
        reply_401(c, r, reason);
    }
    return ok;
}

const char sig_mismatch[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details.";

static const char *received_header(void *ctx, const char *name)
{
    return req_header(ctx, name);
}

static bool check_sigv4(struct conn *c, struct request *r)
{
    const struct settings *s = &srv.set;
    struct sigv4_key key = { .access_key_id = s->access_key ? s->access_key : "",
                             .secret_access_key = s->secret_key ? s->secret_key : "",
                             .session_token = s->session_token };
    char msg[512];

    if (sigv4_verify(&(struct sigv4_check){ .method = r->method, .path = r->path,
                                            .query = r->query, .header = received_header,
                                            .ctx = r, .body = r->body, .body_len = r->body_len,
                                            .region = s->region ? s->region : "",
                                            .service = s->service ? s->service : "es",
                                            .key = &key,
                                            .require_content_sha256 =
                                                s->service && strcmp(s->service, "aoss") == 0,
                                            .now = time(NULL) },
                     msg, sizeof(msg)) == 0)
        return true;
    reply_403_aws(c, msg);
    return false;
}

bool check_auth(struct conn *c, struct request *r)
{
    switch (srv.set.auth) {
    case AUTH_NONE: return true;
    case AUTH_BASIC: return check_basic(c, r);
    case AUTH_APIKEY: return check_apikey(c, r);
    case AUTH_SIGV4: return check_sigv4(c, r);
    }
    return false;
}

int parse_auth(const char *s, enum auth_mode *out)
{
    static const char *const names[] = { "none", "basic", "apikey", "sigv4" };

    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (enum auth_mode)i;
            return 0;
        }
    return -EINVAL;
}
