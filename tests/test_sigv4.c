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

#include "aws/buf.h"
#include "aws/sigv4.h"
#include "tests/support/sigv4_vectors.h"

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
    snprintf(root, sizeof(root), "%s/extra", sigv4vec_dir());
    n = sigv4vec_cases(root, ".json", 1, &cases);
    cr_assert_eq(n, 10, "found %d extra vectors in %s, want 10", n, root);
    for (int i = 0; i < n; i++)
        extra_case(&cases[i], &f);
    sigv4vec_cases_free(cases, n);
    cr_expect_eq(f.count, 0, "%d failures: %s", f.count, f.names.ptr);
    buf_close(&f.names);
}
