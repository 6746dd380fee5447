/* sigv4 — AWS Signature Version 4 (see sigv4.h).  Pure: no I/O, no clock.
 *
 * Beyond the header's policy: an `authorization` header passed in (a server
 * re-signing what it received) is never signed; inputs whose canonical text
 * would pass 1 MiB are -EINVAL. */
#include "aws/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/buf.h"
#include "base/hex.h"
#include "aws/sigv4_int.h"

/* Headers botocore never signs: proxies and curl may change or drop them.
 * `authorization` is left out too: it carries the signature itself. */
static const char *const unsigned_headers[] = { "expect", "user-agent", "x-amzn-trace-id",
                                                "authorization" };

/* The buffer's text as a heap C string, "" when nothing was written
 * (buf_take alone would hand back an unterminated block then). */
char *sigv4_take(struct buf *b)
{
    return buf_append(b, "", 0) == 0 ? buf_take(b) : NULL;
}

/* --- hashing ------------------------------------------------------------ */

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int sha256(const void *data, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 0;

    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return -ENOMEM;
    return 0;
}

static int hmac(const void *key, size_t keylen, const void *data, size_t len,
                unsigned char md[32])
{
    unsigned int mdlen = 0;

    if (keylen > INT_MAX)
        return -EINVAL;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) || mdlen != 32)
        return -ENOMEM;
    return 0;
}

void sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];

    if (sha256(data, len, md) < 0) {
        out[0] = '\0';
        return;
    }
    to_hex(md, sizeof(md), out);
}

void sigv4_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                           char out[65])
{
    unsigned char md[32];

    if (hmac(key, keylen, data, len, md) < 0) {
        out[0] = '\0';
        return;
    }
    to_hex(md, sizeof(md), out);
}

/* --- encoding ----------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Percent-encodes every byte of s[0..n) except the unreserved set and the
 * bytes in `keep`, upper-case hex as AWS wants. */
int sigv4_uri_encode(struct buf *b, const char *s, size_t n, const char *keep)
{
    static const char digits[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (unreserved(c) || (c && strchr(keep, c))) {
            rc = buf_putc(b, (char)c);
        } else {
            char esc[3] = { '%', digits[c >> 4], digits[c & 0xf] };
            rc = buf_append(b, esc, 3);
        }
    }
    return rc;
}

/* Decodes %XX escapes of s[0..n) (malformed ones stay literal; '+' stays '+'),
 * then re-encodes the result: one canonical spelling per query component. */
static int canonical_component(const char *s, size_t n, char **out)
{
    struct buf raw, enc;
    int rc = 0;

    buf_init(&raw, SIGV4_TEXT_MAX);
    buf_init(&enc, SIGV4_TEXT_MAX);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int hi, lo;

        if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            rc = buf_putc(&raw, (char)(hi << 4 | lo));
            i += 2;
        } else {
            rc = buf_putc(&raw, s[i]);
        }
    }
    if (rc == 0)
        rc = sigv4_uri_encode(&enc, raw.ptr ? raw.ptr : "", raw.len, "");
    if (rc == 0 && !(*out = sigv4_take(&enc)))
        rc = -ENOMEM;
    buf_close(&raw);
    buf_close(&enc);
    return rc;
}

/* --- canonical URI ------------------------------------------------------ */

/* Removes "." and ".." segments and empty segments ("//"), keeping a
 * trailing slash, as botocore does for every service but S3. */
static int normalize_path(const char *path, struct buf *out)
{
    size_t len = strlen(path), nseg = 0, cap = 1;
    struct { const char *p; size_t n; } *seg;
    int rc = 0;

    for (size_t i = 0; i < len; i++)
        cap += path[i] == '/';
    seg = calloc(cap, sizeof(*seg));
    if (!seg)
        return -ENOMEM;
    for (const char *p = path, *end = path + len; p <= end;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = (size_t)((slash ? slash : end) - p);

        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (nseg)
                nseg--;
        } else if (n && !(n == 1 && p[0] == '.')) {
            seg[nseg].p = p;
            seg[nseg++].n = n;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    for (size_t i = 0; rc == 0 && i < nseg; i++) {
        rc = buf_putc(out, '/');
        if (rc == 0)
            rc = buf_append(out, seg[i].p, seg[i].n);
    }
    if (rc == 0 && (nseg == 0 || (len && path[len - 1] == '/')))
        rc = buf_putc(out, '/');
    free(seg);
    return rc;
}

/* Non-S3 services encode the wire path once more ('%' becomes "%25");
 * S3 (no normalisation) keeps existing escapes and encodes only raw bytes. */
static int canonical_uri(const struct sigv4_input *in, struct buf *creq)
{
    const char *path = in->path && in->path[0] ? in->path : "/";
    struct buf norm;
    int rc;

    if (!in->normalize_path)
        return sigv4_uri_encode(creq, path, strlen(path), "/%");
    buf_init(&norm, SIGV4_TEXT_MAX);
    rc = normalize_path(path, &norm);
    if (rc == 0)
        rc = sigv4_uri_encode(creq, norm.ptr, norm.len, "/");
    buf_close(&norm);
    return rc;
}

/* --- query -------------------------------------------------------------- */

static int add_param(struct req *r, char *key, char *val)
{
    struct qparam *p = realloc(r->params, (r->nparams + 1) * sizeof(*p));

    if (!p) {
        free(key);
        free(val);
        return -ENOMEM;
    }
    r->params = p;
    p[r->nparams].key = key;
    p[r->nparams++].val = val;
    return 0;
}

/* Adds one parameter from raw (unencoded) text. */
int sigv4_add_param_raw(struct req *r, const char *key, const char *val)
{
    struct buf k, v;
    int rc;

    buf_init(&k, SIGV4_TEXT_MAX);
    buf_init(&v, SIGV4_TEXT_MAX);
    rc = sigv4_uri_encode(&k, key, strlen(key), "");
    if (rc == 0)
        rc = sigv4_uri_encode(&v, val, strlen(val), "");
    if (rc == 0) {
        char *ks = sigv4_take(&k), *vs = sigv4_take(&v);

        rc = ks && vs ? add_param(r, ks, vs) : -ENOMEM;
        if (!ks || !vs) {
            free(ks);
            free(vs);
        }
    }
    buf_close(&k);
    buf_close(&v);
    return rc;
}

static int parse_query(const char *q, struct req *r)
{
    int rc = 0;

    while (rc == 0 && q && *q) {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t klen = eq ? (size_t)(eq - q) : n;
        char *key = NULL, *val = NULL;

        if (n) {
            rc = canonical_component(q, klen, &key);
            if (rc == 0)
                rc = eq ? canonical_component(eq + 1, n - klen - 1, &val)
                        : canonical_component("", 0, &val);
            if (rc == 0)
                rc = add_param(r, key, val);
            else
                free(key);
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return rc;
}

int sigv4_cmp_param(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c ? c : strcmp(x->val, y->val);
}

/* --- headers ------------------------------------------------------------ */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims, and folds every whitespace run (obsolete line folding included)
 * into one space. */
static char *canonical_value(const char *v)
{
    size_t len = strlen(v), o = 0;
    char *out = malloc(len + 1);
    bool pending = false;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (is_ws(v[i])) {
            pending = o > 0;
            continue;
        }
        if (pending)
            out[o++] = ' ';
        pending = false;
        out[o++] = v[i];
    }
    out[o] = '\0';
    return out;
}

static int add_header(struct req *r, const char *name, const char *value)
{
    struct hdr *h;
    char *n = strdup(name), *v = canonical_value(value);

    if (!n || !v || !(h = realloc(r->hdrs, (r->nhdrs + 1) * sizeof(*h)))) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    for (char *p = n; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    r->hdrs = h;
    h[r->nhdrs].name = n;
    h[r->nhdrs].value = v;
    h[r->nhdrs].idx = r->nhdrs;
    r->nhdrs++;
    return 0;
}

static int cmp_hdr(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static const char *find_header(const struct sigv4_input *in, const char *name)
{
    for (size_t i = 0; i < in->nheaders; i++)
        if (in->headers[i].name && strcasecmp(in->headers[i].name, name) == 0)
            return in->headers[i].value ? in->headers[i].value : "";
    return NULL;
}

static bool signable(const char *name)
{
    for (size_t i = 0; i < sizeof(unsigned_headers) / sizeof(unsigned_headers[0]); i++)
        if (strcasecmp(name, unsigned_headers[i]) == 0)
            return false;
    return true;
}

/* --- the signature ------------------------------------------------------ */

void sigv4_req_close(struct req *r)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    for (size_t i = 0; i < r->nparams; i++) {
        free(r->params[i].key);
        free(r->params[i].val);
    }
    free(r->hdrs);
    free(r->params);
    buf_close(&r->payload_hash);
    memset(r, 0, sizeof(*r));
}

static bool valid_amz_date(const char *d)
{
    if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)d[i]))
            return false;
    return true;
}

bool sigv4_nonempty(const char *s)
{
    return s && *s;
}

/* Validates the input, fixes the date and scope, collects the signed
 * headers and the query.  `presign` keeps date and token out of the headers
 * (they travel in the query). */
int sigv4_req_init(struct req *r, const struct sigv4_input *in, const struct sigv4_key *key,
                   bool presign, struct sigv4_output *out)
{
    const char *date_hdr, *hash_hdr, *host = NULL;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    buf_init(&r->payload_hash, SIGV4_TEXT_MAX);
    if (!in || !key || !sigv4_nonempty(in->method) || !sigv4_nonempty(in->region) ||
        !sigv4_nonempty(in->service) || !sigv4_nonempty(key->access_key_id) ||
        !sigv4_nonempty(key->secret_access_key) || (in->nheaders && !in->headers) ||
        (in->body_len && !in->body) || strchr(in->region, '/') || strchr(in->service, '/'))
        return -EINVAL;
    for (size_t i = 0; i < in->nheaders; i++)
        if (!sigv4_nonempty(in->headers[i].name))
            return -EINVAL;
    if (!(host = find_header(in, "host")) || !*host)
        return -EINVAL;

    date_hdr = find_header(in, "x-amz-date");
    if (date_hdr) {
        char *d = canonical_value(date_hdr);

        if (!d)
            return -ENOMEM;
        rc = valid_amz_date(d) ? 0 : -EINVAL;
        if (rc == 0)
            memcpy(r->date, d, sizeof(r->date));
        free(d);
        if (rc < 0)
            return rc;
    } else {
        struct tm tm;

        if (!gmtime_r(&in->now, &tm) ||
            strftime(r->date, sizeof(r->date), "%Y%m%dT%H%M%SZ", &tm) != 16)
            return -EINVAL;
    }
    if (snprintf(r->scope, sizeof(r->scope), "%.8s/%s/%s/aws4_request", r->date, in->region,
                 in->service) >= (int)sizeof(r->scope))
        return -EINVAL;

    hash_hdr = find_header(in, "x-amz-content-sha256");
    if (hash_hdr) {
        char *v = canonical_value(hash_hdr);

        rc = v ? buf_puts(&r->payload_hash, v) : -ENOMEM;
        free(v);
    } else {
        char hex[65];

        sigv4_sha256_hex(in->body_len ? in->body : "", in->body_len, hex);
        rc = hex[0] ? buf_puts(&r->payload_hash, hex) : -ENOMEM;
    }

    for (size_t i = 0; rc == 0 && i < in->nheaders; i++)
        if (signable(in->headers[i].name))
            rc = add_header(r, in->headers[i].name,
                            in->headers[i].value ? in->headers[i].value : "");
    if (rc == 0 && !presign && !date_hdr) {
        rc = add_header(r, "x-amz-date", r->date);
        out->add_date = true;
    }
    if (rc == 0 && !presign && sigv4_nonempty(key->session_token) &&
        !find_header(in, "x-amz-security-token")) {
        rc = add_header(r, "x-amz-security-token", key->session_token);
        out->add_token = true;
    }
    if (rc == 0 && !presign && in->sign_body && !hash_hdr) {
        rc = add_header(r, "x-amz-content-sha256", r->payload_hash.ptr);
        out->add_content_sha256 = true;
    }
    if (rc == 0)
        qsort(r->hdrs, r->nhdrs, sizeof(*r->hdrs), cmp_hdr);
    if (rc == 0)
        rc = parse_query(in->query, r);
    if (rc == 0 && r->nparams)
        qsort(r->params, r->nparams, sizeof(*r->params), sigv4_cmp_param);
    if (rc == 0) {
        memcpy(out->amz_date, r->date, sizeof(out->amz_date));
        snprintf(out->payload_hash, sizeof(out->payload_hash), "%s", r->payload_hash.ptr);
    }
    return rc < 0 ? (rc == -E2BIG ? -EINVAL : rc) : 0;
}

int sigv4_signed_header_list(const struct req *r, struct buf *b)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < r->nhdrs; i++) {
        if (i && strcmp(r->hdrs[i].name, r->hdrs[i - 1].name) == 0)
            continue;
        if (i)
            rc = buf_putc(b, ';');
        if (rc == 0)
            rc = buf_puts(b, r->hdrs[i].name);
    }
    return rc;
}

/* Canonical request: method, URI, query, headers, blank, signed headers,
 * payload hash; no trailing newline. */
static int canonical_request(const struct req *r, const struct sigv4_input *in,
                             const char *signed_headers, struct buf *b)
{
    int rc = buf_printf(b, "%s\n", in->method);

    if (rc == 0)
        rc = canonical_uri(in, b);
    if (rc == 0)
        rc = buf_putc(b, '\n');
    for (size_t i = 0; rc == 0 && i < r->nparams; i++)
        rc = buf_printf(b, "%s%s=%s", i ? "&" : "", r->params[i].key, r->params[i].val);
    if (rc == 0)
        rc = buf_putc(b, '\n');
    for (size_t i = 0; rc == 0 && i < r->nhdrs; i++) {
        bool first = i == 0 || strcmp(r->hdrs[i].name, r->hdrs[i - 1].name) != 0;
        bool last = i + 1 == r->nhdrs || strcmp(r->hdrs[i].name, r->hdrs[i + 1].name) != 0;

        if (first)
            rc = buf_printf(b, "%s:", r->hdrs[i].name);
        if (rc == 0)
            rc = buf_printf(b, "%s%s", r->hdrs[i].value, last ? "\n" : ",");
    }
    if (rc == 0)
        rc = buf_printf(b, "\n%s\n%s", signed_headers, r->payload_hash.ptr);
    return rc;
}

/* Derives the signing key and signs the string to sign.  Derived keys are
 * wiped before return. */
static int compute_signature(const struct req *r, const struct sigv4_input *in,
                             const struct sigv4_key *key, const char *sts, char out[65])
{
    size_t slen = strlen(key->secret_access_key);
    char *k0 = malloc(slen + 5);
    unsigned char k[32], sig[32];
    int rc;

    if (!k0)
        return -ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, key->secret_access_key, slen + 1);
    rc = hmac(k0, slen + 4, r->date, 8, k);
    if (rc == 0)
        rc = hmac(k, sizeof(k), in->region, strlen(in->region), k);
    if (rc == 0)
        rc = hmac(k, sizeof(k), in->service, strlen(in->service), k);
    if (rc == 0)
        rc = hmac(k, sizeof(k), "aws4_request", 12, k);
    if (rc == 0)
        rc = hmac(k, sizeof(k), sts, strlen(sts), sig);
    if (rc == 0)
        to_hex(sig, sizeof(sig), out);
    OPENSSL_cleanse(k0, slen + 4);
    OPENSSL_cleanse(k, sizeof(k));
    free(k0);
    return rc;
}

/* Fills canonical_request, string_to_sign, signed_headers and signature. */
int sigv4_finish(const struct req *r, const struct sigv4_input *in, const struct sigv4_key *key,
                 struct sigv4_output *out)
{
    struct buf sh, creq, sts;
    unsigned char md[32];
    char hex[65];
    int rc;

    buf_init(&sh, SIGV4_TEXT_MAX);
    buf_init(&creq, SIGV4_TEXT_MAX);
    buf_init(&sts, SIGV4_TEXT_MAX);
    rc = sigv4_signed_header_list(r, &sh);
    if (rc == 0)
        rc = buf_append(&sh, "", 0); /* a C string even when empty */
    if (rc == 0)
        rc = canonical_request(r, in, sh.ptr, &creq);
    if (rc == 0)
        rc = sha256(creq.ptr, creq.len, md);
    if (rc == 0) {
        to_hex(md, sizeof(md), hex);
        rc = buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s\n%s", r->date, r->scope, hex);
    }
    if (rc == 0)
        rc = compute_signature(r, in, key, sts.ptr, out->signature);
    if (rc == 0) {
        out->signed_headers = sigv4_take(&sh);
        out->canonical_request = sigv4_take(&creq);
        out->string_to_sign = sigv4_take(&sts);
        if (!out->signed_headers || !out->canonical_request || !out->string_to_sign)
            rc = -ENOMEM;
    }
    buf_close(&sh);
    buf_close(&creq);
    buf_close(&sts);
    return rc == -E2BIG ? -EINVAL : rc;
}

void sigv4_output_close(struct sigv4_output *out)
{
    if (!out)
        return;
    free(out->authorization);
    free(out->canonical_request);
    free(out->string_to_sign);
    free(out->signed_headers);
    memset(out, 0, sizeof(*out));
}

int sigv4_sign(const struct sigv4_input *in, const struct sigv4_key *key, struct sigv4_output *out)
{
    struct req r;
    struct buf authz;
    int rc;

    memset(out, 0, sizeof(*out));
    buf_init(&authz, SIGV4_TEXT_MAX);
    rc = sigv4_req_init(&r, in, key, false, out);
    if (rc == 0)
        rc = sigv4_finish(&r, in, key, out);
    if (rc == 0)
        rc = buf_printf(&authz, SIGV4_ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                        key->access_key_id, r.scope, out->signed_headers, out->signature);
    if (rc == 0 && !(out->authorization = sigv4_take(&authz)))
        rc = -ENOMEM;
    buf_close(&authz);
    sigv4_req_close(&r);
    if (rc < 0)
        sigv4_output_close(out);
    return rc == -E2BIG ? -EINVAL : rc;
}
