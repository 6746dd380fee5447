/* sigv4check — see sigv4check.h.
 *
 * sigv4_presign ignores sign_body (the payload hash travels in no header
 * there) and leaves out->authorization NULL. */
#include "tests/support/sigv4check.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/buf.h"
#include "base/hex.h"
#include "aws/sigv4_int.h"

static int join_query(const struct req *r, struct buf *b)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < r->nparams; i++)
        rc = buf_printf(b, "%s%s=%s", i ? "&" : "", r->params[i].key, r->params[i].val);
    return rc;
}

int sigv4_presign(const struct sigv4_input *in, const struct sigv4_key *key, long expires_s,
                  bool omit_token, char **query_out, struct sigv4_output *out)
{
    struct req r;
    struct buf q, sh, cred;
    char expires[24];
    int rc;

    memset(out, 0, sizeof(*out));
    *query_out = NULL;
    buf_init(&q, SIGV4_TEXT_MAX);
    buf_init(&sh, SIGV4_TEXT_MAX);
    buf_init(&cred, SIGV4_TEXT_MAX);
    rc = sigv4_req_init(&r, in, key, true, out);
    if (rc == 0 && expires_s <= 0)
        rc = -EINVAL;
    if (rc == 0)
        rc = sigv4_signed_header_list(&r, &sh);
    if (rc == 0)
        rc = buf_printf(&cred, "%s/%s", key->access_key_id, r.scope);
    snprintf(expires, sizeof(expires), "%ld", expires_s);
    if (rc == 0)
        rc = sigv4_add_param_raw(&r, "X-Amz-Algorithm", SIGV4_ALGORITHM);
    if (rc == 0)
        rc = sigv4_add_param_raw(&r, "X-Amz-Credential", cred.ptr);
    if (rc == 0)
        rc = sigv4_add_param_raw(&r, "X-Amz-Date", r.date);
    if (rc == 0)
        rc = sigv4_add_param_raw(&r, "X-Amz-Expires", expires);
    if (rc == 0)
        rc = sigv4_add_param_raw(&r, "X-Amz-SignedHeaders", sh.ptr ? sh.ptr : "");
    if (rc == 0 && sigv4_nonempty(key->session_token) && !omit_token)
        rc = sigv4_add_param_raw(&r, "X-Amz-Security-Token", key->session_token);
    if (rc == 0) {
        qsort(r.params, r.nparams, sizeof(*r.params), sigv4_cmp_param);
        rc = sigv4_finish(&r, in, key, out);
    }
    if (rc == 0)
        rc = join_query(&r, &q);
    if (rc == 0)
        rc = buf_printf(&q, "&X-Amz-Signature=%s", out->signature);
    if (rc == 0 && sigv4_nonempty(key->session_token) && omit_token) {
        rc = buf_puts(&q, "&X-Amz-Security-Token=");
        if (rc == 0)
            rc = sigv4_uri_encode(&q, key->session_token, strlen(key->session_token), "");
    }
    if (rc == 0 && !(*query_out = sigv4_take(&q)))
        rc = -ENOMEM;
    buf_close(&q);
    buf_close(&sh);
    buf_close(&cred);
    sigv4_req_close(&r);
    if (rc < 0)
        sigv4_output_close(out);
    return rc == -E2BIG ? -EINVAL : rc;
}

/* --- Authorization header parsing --------------------------------------- */

/* Copies s[0..n) into dst[cap] if it fits and is non-empty. */
static int copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n >= cap)
        return -EINVAL;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int parse_credential(const char *s, size_t n, struct sigv4_authz *out)
{
    /* AKID/date/region/service/aws4_request; the key id has no '/' */
    const char *end = s + n, *part[5];
    size_t len[5];
    int k = 0;

    for (const char *p = s; k < 5; k++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));

        part[k] = p;
        len[k] = (size_t)((slash ? slash : end) - p);
        if (!slash) {
            k++;
            break;
        }
        p = slash + 1;
        if (k == 4)
            return -EINVAL; /* a sixth part */
    }
    if (k != 5 || len[4] != 12 || memcmp(part[4], "aws4_request", 12) != 0 || len[1] != 8)
        return -EINVAL;
    for (size_t i = 0; i < 8; i++)
        if (!isdigit((unsigned char)part[1][i]))
            return -EINVAL;
    if (copy_part(out->access_key_id, sizeof(out->access_key_id), part[0], len[0]) < 0 ||
        copy_part(out->date, sizeof(out->date), part[1], len[1]) < 0 ||
        copy_part(out->region, sizeof(out->region), part[2], len[2]) < 0 ||
        copy_part(out->service, sizeof(out->service), part[3], len[3]) < 0)
        return -EINVAL;
    return 0;
}

int sigv4_parse_authorization(const char *value, struct sigv4_authz *out)
{
    static const size_t alen = sizeof(SIGV4_ALGORITHM) - 1;
    bool have_cred = false, have_sh = false, have_sig = false;
    struct sigv4_authz tmp;
    const char *p;

    memset(&tmp, 0, sizeof(tmp));
    if (!value || !out || strncmp(value, SIGV4_ALGORITHM, alen) != 0 || value[alen] != ' ')
        return -EINVAL;
    p = value + alen;
    while (*p) {
        size_t n;
        const char *eq;

        while (*p == ' ')
            p++;
        n = strcspn(p, ",");
        while (n && p[n - 1] == ' ')
            n--;
        eq = memchr(p, '=', n);
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
        const char *v = eq + 1;

        if (klen == 10 && memcmp(p, "Credential", 10) == 0 && !have_cred) {
            if (parse_credential(v, vlen, &tmp) < 0)
                return -EINVAL;
            have_cred = true;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0 && !have_sh) {
            if (copy_part(tmp.signed_headers, sizeof(tmp.signed_headers), v, vlen) < 0)
                return -EINVAL;
            have_sh = true;
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0 && !have_sig) {
            if (vlen != 64 || copy_part(tmp.signature, sizeof(tmp.signature), v, vlen) < 0)
                return -EINVAL;
            for (size_t i = 0; i < 64; i++)
                if (hex_value(v[i]) < 0)
                    return -EINVAL;
            have_sig = true;
        } else {
            return -EINVAL; /* unknown or repeated part */
        }
        p += strcspn(p, ",");
        if (*p == ',') {
            p++;
            if (!*p)
                return -EINVAL;
        }
    }
    if (!have_cred || !have_sh || !have_sig)
        return -EINVAL;
    *out = tmp;
    return 0;
}

/* ---- verification (the search double and the Streams stand-in) ---------- */

static int parse_amz_date(const char *s, time_t *out)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (!s || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return -EINVAL;
    if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return -EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return 0;
}

static void fmt_amz_date(time_t t, char out[17])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

static int deny(char *msg, size_t len, const char *text)
{
    snprintf(msg, len, "%s", text);
    return -EACCES;
}

#define VERIFY_MAX_HEADERS 100

int sigv4_verify(const struct sigv4_check *in, char *msg, size_t msglen)
{
    static const char mismatch[] =
        "The request signature we calculated does not match the signature you provided. Check "
        "your AWS Secret Access Key and signing method. Consult the service documentation for "
        "details.";
    const char *a = in->header(in->ctx, "authorization");
    const char *date = in->header(in->ctx, "x-amz-date");
    const char *token = in->header(in->ctx, "x-amz-security-token");
    const char *csha = in->header(in->ctx, "x-amz-content-sha256");
    const char *want_token = in->key->session_token && *in->key->session_token
                                 ? in->key->session_token
                                 : NULL;
    struct sigv4_header hs[VERIFY_MAX_HEADERS];
    struct sigv4_authz az;
    struct sigv4_output out;
    char names[sizeof(az.signed_headers)], *save = NULL, hash[65];
    bool have_host = false, token_signed = false, ok = false;
    size_t nh = 0;
    time_t t;

    if (!a)
        return deny(msg, msglen, "Missing Authentication Token");
    if (sigv4_parse_authorization(a, &az) < 0)
        return deny(msg, msglen,
                    "Authorization header requires 'Credential' parameter. Authorization header "
                    "requires 'Signature' parameter. Authorization header requires "
                    "'SignedHeaders' parameter.");
    if (strcmp(az.access_key_id, in->key->access_key_id) != 0)
        return deny(msg, msglen, "The security token included in the request is invalid.");
    if (strcmp(az.region, in->region) != 0)
        return deny(msg, msglen, "Credential should be scoped to a valid region. ");
    if (strcmp(az.service, in->service) != 0) {
        snprintf(msg, msglen, "Credential should be scoped to correct service: '%s'. ",
                 in->service);
        return -EACCES;
    }
    if (parse_amz_date(date, &t) < 0)
        return deny(msg, msglen, "Authorization header requires existence of either a "
                                 "'X-Amz-Date' or a 'Date' header.");
    if (t < in->now - 15 * 60 || t > in->now + 15 * 60) {
        char nowb[17], lim[17];

        fmt_amz_date(in->now, nowb);
        fmt_amz_date(t < in->now ? in->now - 15 * 60 : in->now + 15 * 60, lim);
        snprintf(msg, msglen,
                 t < in->now ? "Signature expired: %s is now earlier than %s (%s - 15 min.)"
                             : "Signature not yet current: %s is still later than %s (%s + 15 "
                               "min.)",
                 date, lim, nowb);
        return -EACCES;
    }
    if (strncmp(date, az.date, 8) != 0) {
        snprintf(msg, msglen,
                 "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                 "date from HTTP: '%s' != '%.8s', from '%s'.",
                 az.date, date, date);
        return -EACCES;
    }
    if ((want_token && (!token || !same_secret(token, want_token))) || (!want_token && token))
        return deny(msg, msglen, "The security token included in the request is invalid.");
    if (in->require_content_sha256 && !csha)
        return deny(msg, msglen, "Missing required header for this request: x-amz-content-sha256");
    if (csha && strcmp(csha, "UNSIGNED-PAYLOAD") != 0) {
        sigv4_sha256_hex(in->body, in->body_len, hash);
        if (strcmp(csha, hash) != 0)
            return deny(msg, msglen, "The provided 'x-amz-content-sha256' header does not match "
                                     "what was computed.");
    }
    /* Exactly the signed headers, with the values received. */
    snprintf(names, sizeof(names), "%s", az.signed_headers);
    for (char *n = strtok_r(names, ";", &save); n; n = strtok_r(NULL, ";", &save)) {
        const char *v = in->header(in->ctx, n);

        if (!v || nh == VERIFY_MAX_HEADERS)
            return deny(msg, msglen, mismatch);
        have_host |= strcmp(n, "host") == 0;
        token_signed |= strcmp(n, "x-amz-security-token") == 0;
        hs[nh++] = (struct sigv4_header){ n, v };
    }
    if (!have_host || (want_token && !token_signed))
        return deny(msg, msglen, mismatch);
    memset(&out, 0, sizeof(out));
    if (sigv4_sign(&(struct sigv4_input){ .method = in->method, .path = in->path,
                                          .query = in->query, .headers = hs, .nheaders = nh,
                                          .body = in->body, .body_len = in->body_len,
                                          .region = az.region, .service = az.service,
                                          .now = in->now, .normalize_path = true },
                   &(struct sigv4_key){ .access_key_id = in->key->access_key_id,
                                        .secret_access_key = in->key->secret_access_key },
                   &out) == 0)
        ok = strlen(out.signature) == strlen(az.signature) &&
             CRYPTO_memcmp(out.signature, az.signature, strlen(az.signature)) == 0;
    sigv4_output_close(&out);
    return ok ? 0 : deny(msg, msglen, mismatch);
}
