/* sigv4: every vector of testdata/sigv4 (the classic AWS suite, the newer
 * aws-c-auth suite with its presigned variants, our extras), then the parts
 * the vectors do not reach: Authorization parsing, verification by
 * re-signing, and the header policy. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "aws/sigv4.h"
#include "tests/support/sigv4_vectors.h"
#include "tests/support/sigv4check.h"

TestSuite(sigv4, .timeout = 20);

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME ((time_t)1440938160) /* 2015-08-30T12:36:00Z */

/* Failures of one case are collected here so a loop over all cases names
 * every case that failed, not only the first. */
struct failures {
    struct buf names;
    int count;
};

static void fail(struct failures *f, const char *name, const char *what)
{
    cr_log_error("%s: %s", name, what);
    buf_printf(&f->names, "%s%s (%s)", f->count ? ", " : "", name, what);
    f->count++;
}

/* Compares byte for byte; on a mismatch logs both texts. */
static bool same(struct failures *f, const char *name, const char *what, const char *got,
                 const char *want)
{
    if (got && want && strcmp(got, want) == 0)
        return true;
    cr_log_error("%s: %s differs\n--- got\n%s\n--- want\n%s", name, what, got ? got : "(null)",
                 want ? want : "(null)");
    fail(f, name, what);
    return false;
}

static time_t parse_time(const char *s)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, strchr(s, '-') ? "%Y-%m-%dT%H:%M:%SZ" : "%Y%m%dT%H%M%SZ", &tm);
    cr_assert(end && *end == '\0', "bad timestamp %s", s);
    return timegm(&tm);
}

/* The value of the "name:" line in a canonical request, malloc'd, or NULL. */
static char *creq_header(const char *creq, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = creq; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ':')
            return strndup(p + n + 1, strcspn(p + n + 1, "\n"));
    return NULL;
}

/* --- the classic suite ------------------------------------------------- */

static void classic_case(const struct sigv4vec_case *c, struct failures *f)
{
    const char *base = strrchr(c->dir, '/') + 1;
    size_t reqlen = 0;
    char *req = sigv4vec_readf(&reqlen, "%s/%s.req", c->dir, base);
    char *creq = sigv4vec_readf(NULL, "%s/%s.creq", c->dir, base);
    char *sts = sigv4vec_readf(NULL, "%s/%s.sts", c->dir, base);
    char *authz = sigv4vec_readf(NULL, "%s/%s.authz", c->dir, base);
    char *token = creq ? creq_header(creq, "x-amz-security-token") : NULL;
    struct sigv4vec_req r;
    struct sigv4_output out;
    struct sigv4_authz parsed;
    int rc;

    if (!req || !creq || !sts || !authz || sigv4vec_parse_req(req, reqlen, &r) != 0) {
        fail(f, c->name, "unreadable vector");
        goto out;
    }
    /* The suite leaves the token out of the .req; a signer adds it. */
    struct sigv4_key key = { AKID, SECRET, token };
    struct sigv4_input in = {
        .method = r.method, .path = r.path, .query = r.query, .headers = r.headers,
        .nheaders = r.nheaders, .body = r.body, .body_len = r.body_len, .region = "us-east-1",
        .service = "service", .now = SUITE_TIME, .normalize_path = true,
    };
    rc = sigv4_sign(&in, &key, &out);
    if (rc != 0) {
        fail(f, c->name, "sigv4_sign failed");
    } else {
        same(f, c->name, "canonical request", out.canonical_request, creq);
        same(f, c->name, "string to sign", out.string_to_sign, sts);
        same(f, c->name, "authorization", out.authorization, authz);
        if (out.add_date)
            fail(f, c->name, "x-amz-date was given but reported as added");
        if (out.add_token != (token != NULL && !strstr(req, "\nX-Amz-Security-Token:")))
            fail(f, c->name, "add_token");
        if (sigv4_parse_authorization(authz, &parsed) != 0 ||
            strcmp(parsed.signature, out.signature) != 0 ||
            strcmp(parsed.signed_headers, out.signed_headers) != 0)
            fail(f, c->name, "parsed .authz disagrees with the output");
    }
    sigv4_output_close(&out);
    sigv4vec_req_close(&r);
out:
    free(req);
    free(creq);
    free(sts);
    free(authz);
    free(token);
}

Test(sigv4, classic_suite_all_34_cases)
{
    char root[4096];
    struct sigv4vec_case *cases;
    struct failures f = { .count = 0 };
    int n;

    buf_init(&f.names, 0);
    buf_append(&f.names, "", 0);
    snprintf(root, sizeof(root), "%s/aws-sig-v4-test-suite", sigv4vec_dir());
    n = sigv4vec_cases(root, ".req", 2, &cases);
    cr_assert_eq(n, 34, "found %d classic cases in %s, want 34", n, root);
    for (int i = 0; i < n; i++)
        classic_case(&cases[i], &f);
    sigv4vec_cases_free(cases, n);
    cr_expect_eq(f.count, 0, "%d failures: %s", f.count, f.names.ptr);
    buf_close(&f.names);
}

/* --- the aws-c-auth suite (header and query variants) ------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The X-Amz-* parameters of a query string, sorted and '&'-joined
 * (malloc'd): the order a presigned URL lists them in does not matter. */
static char *amz_params(const char *q, size_t n)
{
    char *copy = strndup(q, n), *save = NULL, *list[64];
    size_t k = 0;
    struct buf b;

    buf_init(&b, 0);
    for (char *t = strtok_r(copy, "&", &save); t && k < 64; t = strtok_r(NULL, "&", &save))
        if (strncmp(t, "X-Amz-", 6) == 0)
            list[k++] = t;
    qsort(list, k, sizeof(list[0]), cmp_str);
    for (size_t i = 0; i < k; i++)
        buf_printf(&b, "%s%s", i ? "&" : "", list[i]);
    free(copy);
    buf_append(&b, "", 0); /* "" rather than an unterminated block when empty */
    return buf_take(&b);
}

struct context {
    json_t *root;
    const char *akid, *secret, *token, *region, *service;
    time_t now;
    long expires;
    bool normalize, sign_body, omit_token;
};

static int load_context(const char *dir, struct context *ctx)
{
    char path[4096];
    json_error_t jerr;
    json_t *cred;

    snprintf(path, sizeof(path), "%s/context.json", dir);
    memset(ctx, 0, sizeof(*ctx));
    if (!(ctx->root = json_load_file(path, 0, &jerr)))
        return -EINVAL;
    cred = json_object_get(ctx->root, "credentials");
    ctx->akid = json_string_value(json_object_get(cred, "access_key_id"));
    ctx->secret = json_string_value(json_object_get(cred, "secret_access_key"));
    ctx->token = json_string_value(json_object_get(cred, "token"));
    ctx->region = json_string_value(json_object_get(ctx->root, "region"));
    ctx->service = json_string_value(json_object_get(ctx->root, "service"));
    ctx->expires = (long)json_integer_value(json_object_get(ctx->root, "expiration_in_seconds"));
    ctx->normalize = json_is_true(json_object_get(ctx->root, "normalize"));
    ctx->sign_body = json_is_true(json_object_get(ctx->root, "sign_body"));
    ctx->omit_token = json_is_true(json_object_get(ctx->root, "omit_session_token"));
    if (!ctx->akid || !ctx->secret || !ctx->region || !ctx->service ||
        !json_string_value(json_object_get(ctx->root, "timestamp")) || ctx->expires <= 0)
        return -EINVAL;
    ctx->now = parse_time(json_string_value(json_object_get(ctx->root, "timestamp")));
    return 0;
}

static void header_variant(const struct sigv4vec_case *c, const struct context *ctx,
                           const struct sigv4_input *in, struct failures *f)
{
    char *creq = sigv4vec_readf(NULL, "%s/header-canonical-request.txt", c->dir);
    char *sts = sigv4vec_readf(NULL, "%s/header-string-to-sign.txt", c->dir);
    char *sig = sigv4vec_readf(NULL, "%s/header-signature.txt", c->dir);
    char *sreq = sigv4vec_readf(NULL, "%s/header-signed-request.txt", c->dir);
    /* omit_session_token: the token is sent but added after signing */
    struct sigv4_key key = { ctx->akid, ctx->secret, ctx->omit_token ? NULL : ctx->token };
    struct sigv4_output out;
    char line[2048];

    if (!creq || !sts || !sig || !sreq) {
        fail(f, c->name, "unreadable header-* files");
    } else if (sigv4_sign(in, &key, &out) != 0) {
        fail(f, c->name, "sigv4_sign failed");
    } else {
        same(f, c->name, "header canonical request", out.canonical_request, creq);
        same(f, c->name, "header string to sign", out.string_to_sign, sts);
        same(f, c->name, "header signature", out.signature, sig);
        snprintf(line, sizeof(line), "\nAuthorization:%s\n", out.authorization);
        if (!strstr(sreq, line))
            fail(f, c->name, "Authorization not in header-signed-request.txt");
        if (!out.add_date || out.add_token != (key.session_token != NULL) ||
            out.add_content_sha256 != ctx->sign_body)
            fail(f, c->name, "add_date/add_token/add_content_sha256");
        sigv4_output_close(&out);
    }
    free(creq);
    free(sts);
    free(sig);
    free(sreq);
}

static void query_variant(const struct sigv4vec_case *c, const struct context *ctx,
                          const struct sigv4_input *in, struct failures *f)
{
    char *creq = sigv4vec_readf(NULL, "%s/query-canonical-request.txt", c->dir);
    char *sts = sigv4vec_readf(NULL, "%s/query-string-to-sign.txt", c->dir);
    char *sig = sigv4vec_readf(NULL, "%s/query-signature.txt", c->dir);
    char *sreq = sigv4vec_readf(NULL, "%s/query-signed-request.txt", c->dir);
    struct sigv4_key key = { ctx->akid, ctx->secret, ctx->token };
    struct sigv4_output out;
    char *query = NULL;

    if (!creq || !sts || !sig || !sreq) {
        fail(f, c->name, "unreadable query-* files");
    } else if (sigv4_presign(in, &key, ctx->expires, ctx->omit_token, &query, &out) != 0) {
        fail(f, c->name, "sigv4_presign failed");
    } else {
        const char *q = strchr(sreq, '?'), *qend = q ? strstr(q, " HTTP/") : NULL;
        char *want = q && qend ? amz_params(q + 1, (size_t)(qend - q - 1)) : NULL;
        char *got = amz_params(query, strlen(query));

        same(f, c->name, "query canonical request", out.canonical_request, creq);
        same(f, c->name, "query string to sign", out.string_to_sign, sts);
        same(f, c->name, "query signature", out.signature, sig);
        same(f, c->name, "presigned X-Amz-* parameters", got, want);
        free(want);
        free(got);
        free(query);
        sigv4_output_close(&out);
    }
    free(creq);
    free(sts);
    free(sig);
    free(sreq);
}

static void signing_case(const struct sigv4vec_case *c, struct failures *f)
{
    size_t reqlen = 0;
    char *req = sigv4vec_readf(&reqlen, "%s/request.txt", c->dir);
    struct sigv4vec_req r;
    struct context ctx;

    if (!req || sigv4vec_parse_req(req, reqlen, &r) != 0) {
        fail(f, c->name, "unreadable request.txt");
        free(req);
        return;
    }
    if (load_context(c->dir, &ctx) != 0) {
        fail(f, c->name, "unusable context.json");
    } else {
        struct sigv4_input in = {
            .method = r.method, .path = r.path, .query = r.query, .headers = r.headers,
            .nheaders = r.nheaders, .body = r.body, .body_len = r.body_len,
            .region = ctx.region, .service = ctx.service, .now = ctx.now,
            .normalize_path = ctx.normalize, .sign_body = ctx.sign_body,
        };
        header_variant(c, &ctx, &in, f);
        query_variant(c, &ctx, &in, f);
    }
    json_decref(ctx.root);
    sigv4vec_req_close(&r);
    free(req);
}

Test(sigv4, signing_suite_all_38_cases_header_and_query)
{
    char root[4096];
    struct sigv4vec_case *cases;
    struct failures f = { .count = 0 };
    int n;

    buf_init(&f.names, 0);
    buf_append(&f.names, "", 0);
    snprintf(root, sizeof(root), "%s/aws-signing-test-suite/v4", sigv4vec_dir());
    n = sigv4vec_cases(root, "context.json", 1, &cases);
    cr_assert_eq(n, 38, "found %d cases in %s, want 38", n, root);
    for (int i = 0; i < n; i++)
        signing_case(&cases[i], &f);
    sigv4vec_cases_free(cases, n);
    cr_expect_eq(f.count, 0, "%d failures: %s", f.count, f.names.ptr);
    buf_close(&f.names);
}

/* --- extra vectors (botocore-made, JSON authoritative) ----------------- */

static bool has_pair(json_t *pairs, const char *name)
{
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        const char *n = json_string_value(json_array_get(json_array_get(pairs, i), 0));

        if (n && strcasecmp(n, name) == 0)
            return true;
    }
    return false;
}

static void extra_case(const struct sigv4vec_case *c, struct failures *f)
{
    const char *base = strrchr(c->dir, '/') + 1;
    char path[4096];
    json_error_t jerr;
    json_t *root, *input, *expected, *hdrs, *cred;
    struct sigv4_header h[32];
    struct sigv4_output out;
    const char *url, *body, *p;
    char *path_s = NULL, *query_s = NULL;
    size_t nh;

    snprintf(path, sizeof(path), "%s/%s.json", c->dir, base);
    if (!(root = json_load_file(path, 0, &jerr))) {
        fail(f, c->name, "unparsable json");
        return;
    }
    input = json_object_get(root, "input");
    expected = json_object_get(root, "expected");
    hdrs = json_object_get(input, "headers");
    cred = json_object_get(input, "credentials");
    url = json_string_value(json_object_get(input, "url"));
    body = json_string_value(json_object_get(input, "body"));
    nh = json_array_size(hdrs);
    if (!url || !body || !strstr(url, "://") || nh == 0 || nh > 32) {
        fail(f, c->name, "unusable input");
        json_decref(root);
        return;
    }
    for (size_t i = 0; i < nh; i++) {
        h[i].name = json_string_value(json_array_get(json_array_get(hdrs, i), 0));
        h[i].value = json_string_value(json_array_get(json_array_get(hdrs, i), 1));
    }
    /* https://host/path?query */
    p = strchr(strstr(url, "://") + 3, '/');
    path_s = strndup(p ? p : "/", p ? strcspn(p, "?") : 1);
    if (p && strchr(p, '?'))
        query_s = strdup(strchr(p, '?') + 1);

    struct sigv4_key key = {
        json_string_value(json_object_get(cred, "access_key_id")),
        json_string_value(json_object_get(cred, "secret_access_key")),
        json_string_value(json_object_get(cred, "session_token")), /* null → NULL */
    };
    struct sigv4_input in = {
        .method = json_string_value(json_object_get(input, "method")),
        .path = path_s, .query = query_s, .headers = h, .nheaders = nh,
        .body = body, .body_len = strlen(body),
        .region = json_string_value(json_object_get(input, "region")),
        .service = json_string_value(json_object_get(input, "service")),
        .now = parse_time(json_string_value(json_object_get(input, "timestamp"))),
        .normalize_path = true,
    };
    if (sigv4_sign(&in, &key, &out) != 0) {
        fail(f, c->name, "sigv4_sign failed");
    } else {
        json_t *sent = json_object_get(expected, "signed_request_headers");
        char *creq = sigv4vec_readf(NULL, "%s/%s.creq", c->dir, base);
        char *authz = sigv4vec_readf(NULL, "%s/%s.authz", c->dir, base);

        same(f, c->name, "canonical request", out.canonical_request,
             json_string_value(json_object_get(expected, "canonical_request")));
        same(f, c->name, "string to sign", out.string_to_sign,
             json_string_value(json_object_get(expected, "string_to_sign")));
        same(f, c->name, "signature", out.signature,
             json_string_value(json_object_get(expected, "signature")));
        same(f, c->name, "signed headers", out.signed_headers,
             json_string_value(json_object_get(expected, "signed_headers")));
        same(f, c->name, "authorization", out.authorization,
             json_string_value(json_object_get(expected, "authorization")));
        /* the classic-layout copy says the same */
        same(f, c->name, ".creq", out.canonical_request, creq);
        same(f, c->name, ".authz", out.authorization, authz);
        /* what the signer asks the caller to send is what botocore sent */
        if (out.add_date != (has_pair(sent, "X-Amz-Date") && !has_pair(hdrs, "X-Amz-Date")))
            fail(f, c->name, "add_date");
        if (out.add_token !=
            (has_pair(sent, "X-Amz-Security-Token") && !has_pair(hdrs, "X-Amz-Security-Token")))
            fail(f, c->name, "add_token");
        if (out.add_content_sha256)
            fail(f, c->name, "add_content_sha256 without sign_body");
        free(creq);
        free(authz);
        sigv4_output_close(&out);
    }
    free(path_s);
    free(query_s);
    json_decref(root);
}

Test(sigv4, extra_vectors_all_10)
{
    char root[4096];
    struct sigv4vec_case *cases;
    struct failures f = { .count = 0 };
    int n;

    buf_init(&f.names, 0);
    buf_append(&f.names, "", 0);
    snprintf(root, sizeof(root), "%s/extra", sigv4vec_dir());
    n = sigv4vec_cases(root, ".json", 1, &cases);
    cr_assert_eq(n, 10, "found %d extra vectors in %s, want 10", n, root);
    for (int i = 0; i < n; i++)
        extra_case(&cases[i], &f);
    sigv4vec_cases_free(cases, n);
    cr_expect_eq(f.count, 0, "%d failures: %s", f.count, f.names.ptr);
    buf_close(&f.names);
}

/* --- Authorization parsing --------------------------------------------- */

#define GOOD_AUTHZ                                                                            \
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "      \
    "SignedHeaders=host;x-amz-date, "                                                         \
    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"

Test(sigv4, parse_authorization_splits_a_good_value)
{
    struct sigv4_authz a;

    cr_assert_eq(sigv4_parse_authorization(GOOD_AUTHZ, &a), 0);
    cr_expect_str_eq(a.access_key_id, "AKIDEXAMPLE");
    cr_expect_str_eq(a.date, "20150830");
    cr_expect_str_eq(a.region, "us-east-1");
    cr_expect_str_eq(a.service, "service");
    cr_expect_str_eq(a.signed_headers, "host;x-amz-date");
    cr_expect_str_eq(a.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");

    /* no spaces after the commas, parts in another order: still one header */
    cr_assert_eq(sigv4_parse_authorization(
                     "AWS4-HMAC-SHA256 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31,"
                     "SignedHeaders=host,Credential=AKIDEXAMPLE/20240229/eu-west-1/dynamodb/aws4_request",
                     &a),
                 0);
    cr_expect_str_eq(a.service, "dynamodb");
    cr_expect_str_eq(a.signed_headers, "host");
}

Test(sigv4, parse_authorization_rejects_malformed_values)
{
    static const char *const bad[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 ",
        "Basic dXNlcjpwYXNz",
        "AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        /* missing parts */
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host",
        "AWS4-HMAC-SHA256 SignedHeaders=host, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        /* credential scope */
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service, SignedHeaders=host, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015083/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request/x, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        /* signature not 64 hex digits */
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf3",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbfzz",
        /* empty, repeated, unknown parts, trailing comma */
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, SignedHeaders=host, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Foo=bar, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31,",
        "AWS4-HMAC-SHA256 Credential AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    };
    struct sigv4_authz a;
    char big[1400];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(sigv4_parse_authorization(bad[i], &a), -EINVAL, "accepted: \"%s\"", bad[i]);
    cr_expect_eq(sigv4_parse_authorization(NULL, &a), -EINVAL);

    /* SignedHeaders longer than the caller's array */
    snprintf(big, sizeof(big),
             "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
             "SignedHeaders=%01050d, "
             "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
             0);
    cr_expect_eq(sigv4_parse_authorization(big, &a), -EINVAL);
}

/* --- hashing helpers ---------------------------------------------------- */

Test(sigv4, sha256_and_hmac_hex_match_published_values)
{
    char hex[65];

    sigv4_sha256_hex("", 0, hex);
    cr_expect_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sigv4_sha256_hex("abc", 3, hex);
    cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* RFC 4231, test case 2 */
    sigv4_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, hex);
    cr_expect_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/* --- verification by re-signing ---------------------------------------- */

static const char bulk_body[] = "{\"index\":{\"_id\":\"1\"}}\n{\"a\":1}\n";

/* What a server receives: the client's headers plus those the signer added. */
struct received {
    struct sigv4_header h[16];
    size_t n;
};

static void receive(struct received *r, const struct sigv4_header *sent, size_t nsent,
                    const struct sigv4_output *out, const struct sigv4_key *key)
{
    memcpy(r->h, sent, nsent * sizeof(*sent));
    r->n = nsent;
    if (out->add_date)
        r->h[r->n++] = (struct sigv4_header){ "X-Amz-Date", out->amz_date };
    if (out->add_token)
        r->h[r->n++] = (struct sigv4_header){ "X-Amz-Security-Token", key->session_token };
    if (out->add_content_sha256)
        r->h[r->n++] = (struct sigv4_header){ "X-Amz-Content-SHA256", out->payload_hash };
    r->h[r->n++] = (struct sigv4_header){ "Authorization", out->authorization };
}

Test(sigv4, verify_by_resigning_the_received_request)
{
    const struct sigv4_key key = { AKID, SECRET, "session-token-value" };
    const struct sigv4_header sent[] = {
        { "Host", "127.0.0.1:9200" },
        { "Content-Type", "application/x-ndjson" },
        { "User-Agent", "ddb2es/0.1" },
    };
    struct sigv4_input in = {
        .method = "POST", .path = "/_bulk", .headers = sent, .nheaders = 3,
        .body = bulk_body, .body_len = sizeof(bulk_body) - 1, .region = "eu-west-1",
        .service = "es", .now = SUITE_TIME, .normalize_path = true, .sign_body = true,
    };
    struct sigv4_output client, server;
    struct sigv4_authz authz;
    struct received rx;
    struct sigv4_header tampered[16];

    cr_assert_eq(sigv4_sign(&in, &key, &client), 0);
    cr_assert(client.add_date && client.add_token && client.add_content_sha256);
    receive(&rx, sent, 3, &client, &key);

    /* the server: its own clock is an hour later; the date comes from the header */
    cr_assert_eq(sigv4_parse_authorization(client.authorization, &authz), 0);
    in.headers = rx.h;
    in.nheaders = rx.n;
    in.now = SUITE_TIME + 3600;
    in.sign_body = false;
    cr_assert_eq(sigv4_sign(&in, &key, &server), 0);
    cr_expect_str_eq(server.signature, authz.signature);
    cr_expect_str_eq(server.signed_headers, authz.signed_headers);
    cr_expect_str_eq(server.authorization, client.authorization);
    cr_expect(!server.add_date && !server.add_token && !server.add_content_sha256,
              "a received request needs nothing added");
    sigv4_output_close(&server);

    /* a tampered body: the body hash header no longer matches, and when the
     * server hashes the body itself the signature differs */
    in.body = "{\"index\":{\"_id\":\"2\"}}\n{\"a\":1}\n";
    memcpy(tampered, rx.h, rx.n * sizeof(rx.h[0]));
    for (size_t i = 0; i < rx.n; i++)
        if (strcasecmp(tampered[i].name, "x-amz-content-sha256") == 0)
            tampered[i].value = "UNSIGNED-PAYLOAD";
    in.headers = tampered;
    cr_assert_eq(sigv4_sign(&in, &key, &server), 0);
    cr_expect_str_neq(server.signature, authz.signature, "a different payload hash must not verify");
    sigv4_output_close(&server);
    in.headers = rx.h;
    in.sign_body = false;
    {
        struct sigv4_header nohash[16];
        size_t k = 0;
        char hash[65];

        for (size_t i = 0; i < rx.n; i++)
            if (strcasecmp(rx.h[i].name, "x-amz-content-sha256") != 0)
                nohash[k++] = rx.h[i];
        /* without the hash header the server hashes what it got */
        in.headers = nohash;
        in.nheaders = k;
        cr_assert_eq(sigv4_sign(&in, &key, &server), 0);
        sigv4_sha256_hex(in.body, in.body_len, hash);
        cr_expect_str_eq(server.payload_hash, hash);
        cr_expect_str_neq(server.signature, authz.signature, "a tampered body must not verify");
        sigv4_output_close(&server);
        in.headers = rx.h;
        in.nheaders = rx.n;
    }
    in.body = bulk_body;

    /* a tampered signed header */
    memcpy(tampered, rx.h, rx.n * sizeof(rx.h[0]));
    tampered[1].value = "application/json";
    in.headers = tampered;
    cr_assert_eq(sigv4_sign(&in, &key, &server), 0);
    cr_expect_str_neq(server.signature, authz.signature, "a tampered header must not verify");
    sigv4_output_close(&server);

    /* an unsigned header may change on the way (proxies rewrite User-Agent) */
    memcpy(tampered, rx.h, rx.n * sizeof(rx.h[0]));
    tampered[2].value = "curl/7.88.1";
    cr_assert_eq(sigv4_sign(&in, &key, &server), 0);
    cr_expect_str_eq(server.signature, authz.signature);
    sigv4_output_close(&server);

    /* the wrong secret does not verify */
    const struct sigv4_key wrong = { AKID, "not-the-secret", "session-token-value" };
    in.headers = rx.h;
    cr_assert_eq(sigv4_sign(&in, &wrong, &server), 0);
    cr_expect_str_neq(server.signature, authz.signature);
    sigv4_output_close(&server);
    sigv4_output_close(&client);
}

/* --- header policy ------------------------------------------------------ */

Test(sigv4, unsigned_headers_are_left_out)
{
    const struct sigv4_key key = { AKID, SECRET, NULL };
    const struct sigv4_header h[] = {
        { "Host", "streams.dynamodb.us-east-1.amazonaws.com" },
        { "User-Agent", "ddb2es/0.1" },
        { "Expect", "100-continue" },
        { "X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793" },
        { "X-Amz-Target", "DynamoDBStreams_20120810.GetRecords" },
    };
    struct sigv4_input in = {
        .method = "POST", .path = "/", .headers = h, .nheaders = 5, .body = "{}", .body_len = 2,
        .region = "us-east-1", .service = "dynamodb", .now = SUITE_TIME, .normalize_path = true,
    };
    struct sigv4_output out;

    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_expect_str_eq(out.signed_headers, "host;x-amz-date;x-amz-target");
    cr_expect_null(strstr(out.canonical_request, "user-agent"));
    cr_expect_null(strstr(out.canonical_request, "expect"));
    cr_expect_null(strstr(out.canonical_request, "trace"));
    cr_expect(out.add_date);
    cr_expect(!out.add_token, "no token in the key, none to send");
    cr_expect(!out.add_content_sha256);
    cr_expect_str_eq(out.amz_date, "20150830T123600Z");
    sigv4_output_close(&out);
}

Test(sigv4, session_token_is_added_and_signed)
{
    const struct sigv4_key key = { AKID, SECRET, "FwoGZXIvYXdzEJr//token+/=" };
    struct sigv4_header h[] = {
        { "host", "sts.us-east-1.amazonaws.com" },
        { "X-Amz-Security-Token", "FwoGZXIvYXdzEJr//token+/=" },
    };
    struct sigv4_input in = {
        .method = "GET", .path = "/", .headers = h, .nheaders = 1, .region = "us-east-1",
        .service = "sts", .now = SUITE_TIME, .normalize_path = true,
    };
    struct sigv4_output out, again;

    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_expect(out.add_token);
    cr_expect_str_eq(out.signed_headers, "host;x-amz-date;x-amz-security-token");
    cr_expect_not_null(strstr(out.canonical_request,
                              "\nx-amz-security-token:FwoGZXIvYXdzEJr//token+/=\n"));
    /* given by the caller: signed as given, nothing more to send */
    in.nheaders = 2;
    cr_assert_eq(sigv4_sign(&in, &key, &again), 0);
    cr_expect(!again.add_token);
    cr_expect_str_eq(again.signature, out.signature);
    sigv4_output_close(&again);
    /* an empty token is no token */
    const struct sigv4_key empty = { AKID, SECRET, "" };
    in.nheaders = 1;
    cr_assert_eq(sigv4_sign(&in, &empty, &again), 0);
    cr_expect(!again.add_token);
    cr_expect_str_eq(again.signed_headers, "host;x-amz-date");
    sigv4_output_close(&again);
    sigv4_output_close(&out);
}

Test(sigv4, payload_hash_from_header_or_body)
{
    const struct sigv4_key key = { AKID, SECRET, NULL };
    struct sigv4_header h[] = {
        { "Host", "abcdefghij0123456789.us-west-2.aoss.amazonaws.com" },
        { "x-AMZ-content-SHA256", "UNSIGNED-PAYLOAD" },
    };
    struct sigv4_input in = {
        .method = "POST", .path = "/_bulk", .headers = h, .nheaders = 2, .body = bulk_body,
        .body_len = sizeof(bulk_body) - 1, .region = "us-west-2", .service = "aoss",
        .now = SUITE_TIME, .normalize_path = true, .sign_body = true,
    };
    struct sigv4_output out;
    char hash[65];
    size_t len;

    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    len = strlen(out.canonical_request);
    cr_expect_str_eq(out.canonical_request + len - strlen("\nUNSIGNED-PAYLOAD"), "\nUNSIGNED-PAYLOAD");
    cr_expect_str_eq(out.payload_hash, "UNSIGNED-PAYLOAD");
    cr_expect(!out.add_content_sha256, "the caller already sends it");
    sigv4_output_close(&out);

    in.nheaders = 1;
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    sigv4_sha256_hex(bulk_body, sizeof(bulk_body) - 1, hash);
    cr_expect_str_eq(out.payload_hash, hash);
    cr_expect(out.add_content_sha256);
    cr_expect_str_eq(out.signed_headers, "host;x-amz-content-sha256;x-amz-date");
    sigv4_output_close(&out);
}

Test(sigv4, unusable_input_is_einval)
{
    const struct sigv4_key key = { AKID, SECRET, NULL };
    struct sigv4_header h[] = { { "Content-Type", "application/json" },
                                { "Host", "example.amazonaws.com" },
                                { "X-Amz-Date", "2015-08-30T12:36:00Z" } };
    struct sigv4_input in = {
        .method = "GET", .path = "/", .headers = h, .nheaders = 1, .region = "us-east-1",
        .service = "service", .now = SUITE_TIME, .normalize_path = true,
    };
    struct sigv4_output out;
    char *q = NULL;

    cr_expect_eq(sigv4_sign(&in, &key, &out), -EINVAL, "no host header");
    cr_expect_null(out.authorization);
    cr_expect_eq(sigv4_presign(&in, &key, 60, false, &q, &out), -EINVAL);
    cr_expect_null(q);
    in.nheaders = 3;
    cr_expect_eq(sigv4_sign(&in, &key, &out), -EINVAL, "x-amz-date not in basic format");
    in.nheaders = 2;
    const struct sigv4_key nosecret = { AKID, "", NULL };
    cr_expect_eq(sigv4_sign(&in, &nosecret, &out), -EINVAL);
    in.region = NULL;
    cr_expect_eq(sigv4_sign(&in, &key, &out), -EINVAL);
    in.region = "us-east-1";
    cr_expect_eq(sigv4_presign(&in, &key, 0, false, &q, &out), -EINVAL, "no expiry");
    cr_expect_eq(sigv4_sign(&in, &key, &out), 0);
    sigv4_output_close(&out);
    sigv4_output_close(&out); /* twice is harmless */
}

Test(sigv4, path_encoding_with_and_without_normalisation)
{
    const struct sigv4_key key = { AKID, SECRET, NULL };
    struct sigv4_header h[] = { { "Host", "example.amazonaws.com" } };
    struct sigv4_input in = {
        .method = "GET", .path = "/a%20b//./c/../d/", .query = "b=2&a=%2a&a=&c", .headers = h,
        .nheaders = 1, .region = "us-east-1", .service = "s3", .now = SUITE_TIME,
    };
    struct sigv4_output out;

    /* S3 style: the wire path as it is, escapes kept */
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_expect_eq(strncmp(out.canonical_request, "GET\n/a%20b//./c/../d/\na=&a=%2A&b=2&c=\n", 38), 0,
                 "%s", out.canonical_request);
    sigv4_output_close(&out);
    /* everyone else: normalised, then encoded a second time */
    in.normalize_path = true;
    in.service = "es";
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_expect_eq(strncmp(out.canonical_request, "GET\n/a%2520b/d/\n", 16), 0, "%s",
                 out.canonical_request);
    sigv4_output_close(&out);
    /* an empty path is "/" */
    in.path = "";
    in.query = NULL;
    cr_assert_eq(sigv4_sign(&in, &key, &out), 0);
    cr_expect_eq(strncmp(out.canonical_request, "GET\n/\n\n", 7), 0);
    sigv4_output_close(&out);
}

Test(sigv4, presign_appends_an_omitted_token_after_the_signature)
{
    const struct sigv4_key key = { AKID, SECRET, "tok/en+=" };
    struct sigv4_header h[] = { { "Host", "example.amazonaws.com" } };
    struct sigv4_input in = {
        .method = "GET", .path = "/", .query = "Z=1", .headers = h, .nheaders = 1,
        .region = "us-east-1", .service = "service", .now = SUITE_TIME, .normalize_path = true,
    };
    struct sigv4_output out;
    char *q = NULL, want[512];

    cr_assert_eq(sigv4_presign(&in, &key, 900, true, &q, &out), 0);
    cr_expect_null(strstr(out.canonical_request, "Security-Token"));
    snprintf(want, sizeof(want), "&X-Amz-Signature=%s&X-Amz-Security-Token=tok%%2Fen%%2B%%3D",
             out.signature);
    cr_expect_str_eq(q + strlen(q) - strlen(want), want);
    cr_expect_eq(strncmp(q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&", 33), 0, "%s", q);
    cr_expect_not_null(strstr(q, "&X-Amz-Expires=900&"));
    cr_expect_not_null(strstr(q, "&Z=1&"), "the request's own parameters stay: %s", q);
    cr_expect(!out.add_date && !out.add_token);
    free(q);
    sigv4_output_close(&out);

    cr_assert_eq(sigv4_presign(&in, &key, 900, false, &q, &out), 0);
    cr_expect_not_null(strstr(out.canonical_request, "&X-Amz-Security-Token=tok%2Fen%2B%3D&"));
    snprintf(want, sizeof(want), "&X-Amz-Signature=%s", out.signature);
    cr_expect_str_eq(q + strlen(q) - strlen(want), want);
    free(q);
    sigv4_output_close(&out);
}
