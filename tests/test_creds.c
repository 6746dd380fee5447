/* Tests of the credential chain (aws/creds.c) and its providers: the shared
 * config files and the chain planner (aws/profile.c), STS (aws/sts.c), the
 * container endpoint (aws/container.c), IMDS (aws/imds.c) and
 * credential_process (aws/credproc.c).  Every fake listens on 127.0.0.1;
 * the 169.254.x.x defaults are checked as resolved URLs, never dialled. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/backoff.h"
#include "aws/container.h"
#include "aws/creds.h"
#include "aws/credsrc.h"
#include "aws/ddb.h"
#include "aws/endpoint.h"
#include "base/http.h"
#include "aws/imds.h"
#include "aws/profile.h"
#include "aws/region.h"
#include "aws/retry.h"
#include "aws/sigv4.h"
#include "aws/sts.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "base/url.h"
#include "base/util.h"
#include "tests/support/fakehttp.h"
#include "tests/support/loop.h"
#include "tests/support/proc.h"
#include "tests/support/sigv4check.h"

/* ---- shared helpers --------------------------------------------------------- */

static uv_loop_t loop;
static struct http *http;
static char dir[256];
static atomic_llong fake_now_v;

static time_t fake_now(void)
{
    return (time_t)atomic_load(&fake_now_v);
}

static double zero_rng(void)
{
    return 0.0;
}

static void clear_env(void)
{
    static const char *const vars[] = {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME", "AWS_PROFILE", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_V1_DISABLED",
        "AWS_METADATA_SERVICE_TIMEOUT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    };

    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/ddb2es-tests/aws-config", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/ddb2es-tests/aws-credentials", 1);
}

static void setup(void)
{
    clear_env();
    snprintf(dir, sizeof dir, "%s/creds-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);
    http = http_new(&loop, NULL);
    cr_assert_not_null(http);
    backoff_set_rng(zero_rng);
    atomic_store(&fake_now_v, 1700000000LL);
}

/* Closes the client and checks that nothing was left on the loop. */
static void close_all(void)
{
    http_close(http, NULL, NULL);
    http = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
}

static const char *put(const char *name, const char *text)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ % 8];
    FILE *f;

    snprintf(path, 512, "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *script(const char *name, const char *body)
{
    const char *path = put(name, body);

    chmod(path, 0700);
    return path;
}

struct got_key {
    int calls, err;
    char id[128], secret[128], token[256];
};

static void on_key(const struct sigv4_key *key, int err, void *arg)
{
    struct got_key *g = arg;

    g->calls++;
    g->err = err;
    g->id[0] = g->secret[0] = g->token[0] = '\0';
    if (key) {
        snprintf(g->id, sizeof g->id, "%s", key->access_key_id);
        snprintf(g->secret, sizeof g->secret, "%s", key->secret_access_key);
        snprintf(g->token, sizeof g->token, "%s", key->session_token ? key->session_token : "");
    }
}

struct want_calls {
    struct got_key *g;
    int n;
};

static bool has_calls(void *arg)
{
    struct want_calls *w = arg;

    return w->g->calls >= w->n;
}

/* creds_get, then the loop until the callback ran; returns creds_get's result. */
static int get_key(struct creds *c, struct got_key *g, long ms)
{
    struct want_calls w = { g, g->calls + 1 };
    int rc = creds_get(c, on_key, g);

    if (rc == 0)
        cr_assert(loop_run_until(&loop, has_calls, &w, ms), "the credentials callback did not run");
    return rc;
}

struct want_nreq {
    struct fakehttp *f;
    size_t n;
};

static bool has_nreq(void *arg)
{
    struct want_nreq *w = arg;

    return fake_nreq(w->f) >= w->n;
}

/* Header value from a recorded request's raw block (safe on any thread). */
static bool hdr(const struct fake_req *q, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);

    for (const char *p = q->headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);

        if (ll > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            size_t vl;

            while (*v == ' ' || *v == '\t')
                v++;
            vl = (size_t)(p + ll - v);
            if (vl >= len)
                vl = len - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        p = eol ? eol + 2 : NULL;
    }
    return false;
}

/* Whether q carries a valid SigV4 signature by key id/secret for service. */
static bool verify(const struct fake_req *q, const char *id, const char *secret,
                   const char *token, const char *service)
{
    struct sigv4_authz az;
    struct sigv4_header hs[32];
    char vals[32][512], names[1024], authz[2048], path[512], *query, *save = NULL;
    struct sigv4_key key = { id, secret, token };
    struct sigv4_output out;
    size_t n = 0;
    bool ok;

    if (!hdr(q, "Authorization", authz, sizeof authz) || sigv4_parse_authorization(authz, &az))
        return false;
    if (strcmp(az.access_key_id, id) != 0 || strcmp(az.service, service) != 0)
        return false;
    snprintf(names, sizeof names, "%s", az.signed_headers);
    for (char *nm = strtok_r(names, ";", &save); nm && n < 32; nm = strtok_r(NULL, ";", &save)) {
        if (!hdr(q, nm, vals[n], sizeof vals[n]))
            return false;
        hs[n] = (struct sigv4_header){ nm, vals[n] };
        n++;
    }
    snprintf(path, sizeof path, "%s", q->path);
    if ((query = strchr(path, '?')))
        *query++ = '\0';
    struct sigv4_input in = { .method = q->method, .path = path, .query = query, .headers = hs,
                              .nheaders = n, .body = q->body, .body_len = q->body_len,
                              .region = az.region, .service = service, .normalize_path = true };
    if (sigv4_sign(&in, &key, &out) != 0)
        return false;
    ok = strcmp(out.signature, az.signature) == 0;
    sigv4_output_close(&out);
    if (token && *token) {
        char t[512];

        ok = ok && hdr(q, "X-Amz-Security-Token", t, sizeof t) && strcmp(t, token) == 0;
    }
    return ok;
}

static void iso(time_t t, char *out, size_t len)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ========================================================================== */
/* profile: the files and the chain planner                                   */
/* ========================================================================== */

TestSuite(profile, .init = clear_env, .timeout = 10);

static const char config_text[] =
    "# comment\n"
    "; other comment\n"
    "[default]\n"
    "region = us-west-2\n"
    "[profile default]\n"
    "region = eu-west-1   # inline comment\n"
    "output=json;not a comment\n"
    "[profile dev]\n"
    "region = us-east-1\n"
    "role_arn = arn:aws:iam::123456789012:role/Dev\n"
    "source_profile = base\n"
    "services = local\n"
    "note = first\n"
    "  second line\n"
    "[services local]\n"
    "dynamodb_streams =\n"
    "  endpoint_url = http://127.0.0.1:8001\n"
    "sts =\n"
    "  endpoint_url = http://127.0.0.1:8002   ; comment\n"
    "[bare]\n"
    "region = nowhere\n"
    "[sso-session corp]\n"
    "sso_region = us-east-1\n";

static const char credentials_text[] = "[base]\n"
                                       "aws_access_key_id = AKIDBASE\n"
                                       "aws_secret_access_key = base-secret\n"
                                       "[dev]\n"
                                       "region = ap-south-1\n"
                                       "[profile ignored]\n"
                                       "aws_access_key_id = X\n";

Test(profile, parse_sections_comments_continuations_and_merge)
{
    struct profile_set set = { 0 };
    const struct profile *p;

    cr_assert_eq(profile_parse(&set, config_text, strlen(config_text), false, "config"), 0);
    cr_assert_eq(profile_parse(&set, credentials_text, strlen(credentials_text), true, "creds"), 0);
    p = profile_find(&set, "default");
    cr_assert_not_null(p);
    cr_assert_str_eq(profile_get(p, "region"), "eu-west-1", "[profile default] beats [default]");
    cr_assert_str_eq(profile_get(p, "output"), "json;not a comment",
                     "no whitespace before ';': part of the value");
    p = profile_find(&set, "dev");
    cr_assert_str_eq(profile_get(p, "region"), "ap-south-1", "the credentials file wins");
    cr_assert_str_eq(profile_get(p, "role_arn"), "arn:aws:iam::123456789012:role/Dev");
    cr_assert_str_eq(profile_get(p, "note"), "first\nsecond line");
    cr_assert_str_eq(profile_endpoint(&set, p, "dynamodb_streams"), "http://127.0.0.1:8001");
    cr_assert_str_eq(profile_endpoint(&set, p, "sts"), "http://127.0.0.1:8002");
    cr_assert_null(profile_endpoint(&set, p, "dynamodb"));
    cr_assert_null(profile_find(&set, "bare"), "a bare [name] in the config file is no profile");
    cr_assert_null(profile_find(&set, "ignored"), "\"profile \" is invalid in the credentials file");
    cr_assert_null(profile_find(&set, "corp"));
    cr_assert_str_eq(profile_get(profile_find(&set, "base"), "aws_access_key_id"), "AKIDBASE");
    profile_set_free(&set);
}

Test(profile, load_files_from_the_environment_and_selected_name)
{
    struct profile_set set = { 0 };
    char why[256] = "";
    char tmpl[256];

    snprintf(tmpl, sizeof tmpl, "%s/prof-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(tmpl));
    snprintf(dir, sizeof dir, "%s", tmpl);
    setenv("AWS_CONFIG_FILE", put("config", config_text), 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", put("credentials", credentials_text), 1);
    cr_assert_eq(profile_load(&set, getenv, why, sizeof why), 0, "%s", why);
    cr_assert_not_null(profile_find(&set, "base"));
    profile_set_free(&set);
    setenv("AWS_CONFIG_FILE", "/nonexistent/x", 1);
    cr_assert_eq(profile_load(&set, getenv, why, sizeof why), 0, "a missing file is no error");
    profile_set_free(&set);
    setenv("AWS_CONFIG_FILE", dir, 1);
    cr_assert_eq(profile_load(&set, getenv, why, sizeof why), -EIO);
    cr_assert(strstr(why, "AWS_CONFIG_FILE"), "%s", why);
    profile_set_free(&set);
    cr_assert_str_eq(profile_selected(NULL, getenv), "default");
    setenv("AWS_PROFILE", "dev", 1);
    cr_assert_str_eq(profile_selected(NULL, getenv), "dev");
    cr_assert_str_eq(profile_selected("ops", getenv), "ops", "the configured profile wins");
}

/* The assume-role cases of smithy-rs' assume-role-tests.json (AWS-AUTH §4.4),
 * written as INI text.  want: the steps, innermost first, as
 * "static:ID", "source:NAME", "webid:ARN", "process", "assume:ARN"; or an
 * error fragment. */
struct plan_case {
    const char *docs, *ini, *selected;
    const char *steps[4];
    const char *error;
};

static const struct plan_case plan_cases[] = {
    { "a role_arn backed by a static credential",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n"
      "[profile B]\naws_access_key_id = abc123\naws_secret_access_key = def456\n",
      "A", { "static:abc123", "assume:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "ignore explicit credentials when source profile is specified",
      "[profile A]\naws_access_key_id = abc123\naws_secret_access_key = def456\n"
      "role_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n"
      "[profile B]\naws_access_key_id = ghi890\naws_secret_access_key = jkl123\n",
      "A", { "static:ghi890", "assume:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "self referential profile",
      "[profile A]\naws_access_key_id = abc123\naws_secret_access_key = def456\n"
      "role_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = A\n",
      "A", { "static:abc123", "assume:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "credential_source",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\n"
      "credential_source = ec2instancemetadata\n",
      "A", { "source:Ec2InstanceMetadata", "assume:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "role_arn without source_profile",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\n", "A", { NULL },
      "profile must contain `source_profile`" },
    { "source profile and credential source both present",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\ncredential_source = "
      "Environment\nsource_profile = B\n[profile B]\naws_access_key_id = !23\n"
      "aws_secret_access_key = 456\n",
      "A", { NULL }, "profile contained both source_profile and credential_source" },
    { "partial credentials (missing secret)",
      "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]\n"
      "aws_access_key_id = abc123\n",
      "A", { NULL }, "profile B: aws_access_key_id is set but aws_secret_access_key is missing" },
    { "partial credentials (missing access key)",
      "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]\n"
      "aws_secret_access_key = abc123\n",
      "A", { NULL }, "profile B: aws_secret_access_key is set but aws_access_key_id is missing" },
    { "empty source profile", "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n[profile B]\n",
      "A", { NULL }, "profile B: no credentials" },
    { "missing source profile", "[profile A]\nrole_arn = arn:foo\nsource_profile = B\n", "A",
      { NULL }, "source_profile B is in neither" },
    { "missing root profile", "", "A", { NULL }, "profile A is in neither" },
    { "multiple chained assume role profiles",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n"
      "[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = C\n"
      "[profile C]\naws_access_key_id = mno456\naws_secret_access_key = pqr789\n",
      "A",
      { "static:mno456", "assume:arn:aws:iam::123456789:role/RoleB",
        "assume:arn:aws:iam::123456789:role/RoleA" },
      NULL },
    { "chained profiles with static credentials (ignore assume role when static present)",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\naws_access_key_id = bug\n"
      "aws_secret_access_key = bug\nsource_profile = B\n"
      "[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = C\n"
      "aws_access_key_id = profile_b_key\naws_secret_access_key = profile_b_secret\n"
      "[profile C]\naws_access_key_id = bug\naws_secret_access_key = bug\n",
      "A", { "static:profile_b_key", "assume:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "assume role profile infinite loop",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n"
      "[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = A\n",
      "A", { NULL }, "infinite loop" },
    { "infinite loop with static credentials",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\naws_access_key_id = bug\n"
      "aws_secret_access_key = bug\nsource_profile = B\n"
      "[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\nsource_profile = A\n",
      "A", { NULL }, "infinite loop" },
    { "web identity role",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\n"
      "web_identity_token_file = /var/token.jwt\n",
      "A", { "webid:arn:aws:iam::123456789:role/RoleA" }, NULL },
    { "web identity without role_arn", "[profile A]\nweb_identity_token_file = /var/token.jwt\n",
      "A", { NULL }, "`role_arn` was missing" },
    { "web identity token as source profile",
      "[profile A]\nrole_arn = arn:aws:iam::123456789:role/RoleA\nsource_profile = B\n"
      "[profile B]\nrole_arn = arn:aws:iam::123456789:role/RoleB\n"
      "web_identity_token_file = /var/token.jwt\nrole_session_name = some_session_name\n",
      "A",
      { "webid:arn:aws:iam::123456789:role/RoleB", "assume:arn:aws:iam::123456789:role/RoleA" },
      NULL },
    { "credential_process", "[profile A]\ncredential_process = /bin/echo hi\n", "A",
      { "process" }, NULL },
    { "role with a credential_process source",
      "[profile A]\nrole_arn = arn:r\nsource_profile = P\n[profile P]\n"
      "credential_process = /bin/true\n",
      "A", { "process", "assume:arn:r" }, NULL },
    { "mfa_serial is refused",
      "[profile A]\nrole_arn = arn:r\nsource_profile = B\nmfa_serial = arn:mfa\n"
      "[profile B]\naws_access_key_id = k\naws_secret_access_key = s\n",
      "A", { NULL }, "mfa_serial needs an MFA code" },
    { "unknown credential_source", "[profile A]\nrole_arn = arn:r\ncredential_source = Laptop\n",
      "A", { NULL }, "is not Environment, Ec2InstanceMetadata or EcsContainer" },
    { "sso is out of scope", "[profile A]\nsso_session = corp\nsso_account_id = 1\n", "A",
      { NULL }, "(SSO) profiles are not supported" },
    { "a profile with only a region holds no credentials", "[profile A]\nregion = eu-west-1\n",
      "A", { NULL }, "holds no credentials" },
};

static void step_text(const struct plan_step *s, char *out, size_t len)
{
    switch (s->kind) {
    case PLAN_STATIC: snprintf(out, len, "static:%s", s->access_key_id); break;
    case PLAN_SOURCE: snprintf(out, len, "source:%s", s->source); break;
    case PLAN_WEBID: snprintf(out, len, "webid:%s", s->role_arn); break;
    case PLAN_PROCESS: snprintf(out, len, "process"); break;
    case PLAN_ASSUME: snprintf(out, len, "assume:%s", s->role_arn); break;
    }
}

Test(profile, chain_planner_table)
{
    for (size_t i = 0; i < sizeof plan_cases / sizeof plan_cases[0]; i++) {
        const struct plan_case *k = &plan_cases[i];
        struct profile_set set = { 0 };
        struct plan pl;
        char why[512] = "";
        int rc;

        cr_assert_eq(profile_parse(&set, k->ini, strlen(k->ini), false, "t"), 0);
        rc = profile_plan(&set, k->selected, &pl, why, sizeof why);
        if (k->error) {
            cr_expect_lt(rc, 0, "%s: planned, want an error", k->docs);
            cr_expect(strstr(why, k->error), "%s: error \"%s\" lacks \"%s\"", k->docs, why,
                      k->error);
        } else {
            size_t n = 0;

            cr_expect_eq(rc, 0, "%s: %s", k->docs, why);
            while (n < 4 && k->steps[n])
                n++;
            cr_expect_eq(pl.n, rc == 0 ? n : 0, "%s: %zu steps", k->docs, pl.n);
            for (size_t s = 0; rc == 0 && s < n && s < pl.n; s++) {
                char got[256];

                step_text(&pl.steps[s], got, sizeof got);
                cr_expect_str_eq(got, k->steps[s], "%s: step %zu", k->docs, s);
            }
        }
        profile_set_free(&set);
    }
}

Test(profile, assume_role_options_reach_the_plan)
{
    static const char ini[] = "[profile A]\nrole_arn = arn:r\nsource_profile = B\n"
                              "external_id = ext-1\nrole_session_name = sess\n"
                              "duration_seconds = 1800\n"
                              "[profile B]\naws_access_key_id = k\naws_secret_access_key = s\n"
                              "aws_session_token = t\n";
    struct profile_set set = { 0 };
    struct plan pl;
    char why[256];

    cr_assert_eq(profile_parse(&set, ini, strlen(ini), false, "t"), 0);
    cr_assert_eq(profile_plan(&set, "A", &pl, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(pl.steps[0].session_token, "t");
    cr_assert_str_eq(pl.steps[1].external_id, "ext-1");
    cr_assert_str_eq(pl.steps[1].session_name, "sess");
    cr_assert_eq(pl.steps[1].duration_seconds, 1800);
    profile_set_free(&set);
}

/* ========================================================================== */
/* endpoints for STS                                                          */
/* ========================================================================== */

Test(profile, sts_endpoints)
{
    static const struct {
        const char *region;
        bool fips, dual;
        const char *url, *signing;
    } cases[] = {
        { "us-east-1", false, false, "https://sts.us-east-1.amazonaws.com", "us-east-1" },
        { "us-east-1", true, false, "https://sts-fips.us-east-1.amazonaws.com", "us-east-1" },
        { "us-east-1", false, true, "https://sts.us-east-1.api.aws", "us-east-1" },
        { "us-east-1", true, true, "https://sts-fips.us-east-1.api.aws", "us-east-1" },
        { "eu-west-1", false, false, "https://sts.eu-west-1.amazonaws.com", "eu-west-1" },
        { "cn-north-1", false, false, "https://sts.cn-north-1.amazonaws.com.cn", "cn-north-1" },
        { "aws-global", false, false, "https://sts.amazonaws.com", "us-east-1" },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct endpoint_in in = { .svc = AWS_STS, .region = cases[i].region,
                                  .use_fips = cases[i].fips, .use_dualstack = cases[i].dual };
        struct endpoint_out out;

        cr_assert_eq(endpoint_resolve(&in, &out), 0, "%s", out.error);
        cr_expect_str_eq(out.url, cases[i].url);
        cr_expect_str_eq(endpoint_signing_region(AWS_STS, cases[i].region), cases[i].signing);
    }
    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
    {
        struct endpoint_in in = { .svc = AWS_STS, .region = "us-east-1", .getenv = getenv,
                                  .profile_override = "http://127.0.0.1:3" };
        struct endpoint_out out;

        cr_assert_eq(endpoint_resolve(&in, &out), 0);
        cr_expect_str_eq(out.url, "http://127.0.0.1:1", "AWS_ENDPOINT_URL beats the profile");
        setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2", 1);
        cr_assert_eq(endpoint_resolve(&in, &out), 0);
        cr_expect_str_eq(out.url, "http://127.0.0.1:2", "the service's variable wins");
        unsetenv("AWS_ENDPOINT_URL_STS");
        unsetenv("AWS_ENDPOINT_URL");
        cr_assert_eq(endpoint_resolve(&in, &out), 0);
        cr_expect_str_eq(out.url, "http://127.0.0.1:3");
        cr_expect_str_eq(out.source, "profile");
    }
}

/* ========================================================================== */
/* credsrc: times, documents, the loopback rule                               */
/* ========================================================================== */

Test(profile, times_documents_and_hosts)
{
    struct aws_cred c = { 0 };
    char why[128];
    time_t t;

    cr_assert_eq(rfc3339_parse("2017-05-17T15:09:54Z", &t), 0);
    cr_assert_eq(t, 1495033794);
    cr_assert_eq(rfc3339_parse("2017-05-17T15:09:54.123Z", &t), 0);
    cr_assert_eq(t, 1495033794);
    cr_assert_eq(rfc3339_parse("2017-05-17T17:09:54+02:00", &t), 0);
    cr_assert_eq(t, 1495033794, "offsets are applied");
    cr_assert_eq(rfc3339_parse("2017-05-17 15:09", &t), -EINVAL);
    cr_assert_eq(rfc3339_parse("2017-05-17T15:09:54", &t), -EINVAL, "a zone is required");

    cr_assert_eq(aws_cred_from_json("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":\"no\"}",
                                    54, "Token", true, true, &c, why, sizeof why),
                 -EINVAL);
    cr_assert(strstr(why, "AssumeRoleUnauthorizedAccess"), "%s", why);

    cr_assert(url_safe_for_secrets("https://example.com/x"));
    cr_assert(url_safe_for_secrets("http://127.0.0.1:9200"));
    cr_assert(url_safe_for_secrets("http://127.1.2.3"));
    cr_assert(url_safe_for_secrets("http://localhost:8000/"));
    cr_assert(url_safe_for_secrets("http://[::1]:80/"));
    cr_assert(url_safe_for_secrets("http://user:pw@127.0.0.1/"));
    cr_assert(!url_safe_for_secrets("http://10.0.0.1:9200"));
    cr_assert(!url_safe_for_secrets("http://127.0.0.1.evil.com/"));
    cr_assert(!url_safe_for_secrets("http://localhost@10.0.0.1/"));
    cr_assert(!url_safe_for_secrets("ftp://127.0.0.1/"));
}

/* ========================================================================== */
/* sts                                                                        */
/* ========================================================================== */

TestSuite(sts, .init = setup, .timeout = 20);

Test(sts, form_parse_and_classify)
{
    struct sts_params p = { .role_arn = "arn:aws:iam::1:role/R", .session_name = "s n",
                            .external_id = "e&x", .duration_seconds = 900 };
    struct aws_cred c = { 0 };
    char code[64], why[256];
    char *form = sts_form(&p);
    static const char ok[] =
        "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId>"
        "<SecretAccessKey>s&amp;1</SecretAccessKey><SessionToken>t1</SessionToken>"
        "<Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult>"
        "</AssumeRoleResponse>";
    static const char err[] = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                              "<Message>not allowed</Message></Error></ErrorResponse>";

    cr_assert_str_eq(form, "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3A"
                           "role%2FR&RoleSessionName=s%20n&ExternalId=e%26x&DurationSeconds=900");
    free(form);
    cr_assert_eq(sts_parse(200, ok, strlen(ok), &c, code, sizeof code, why, sizeof why), 0, "%s",
                 why);
    cr_assert_str_eq(c.access_key_id, "ASIA1");
    cr_assert_str_eq(c.secret_access_key, "s&1");
    cr_assert_eq(c.expires, 1893456000);
    aws_cred_clear(&c);
    cr_assert_lt(sts_parse(403, err, strlen(err), &c, code, sizeof code, why, sizeof why), 0);
    cr_assert_str_eq(code, "AccessDenied");
    cr_assert(strstr(why, "not allowed"), "%s", why);
    cr_assert_eq(sts_classify(400, 0, "IDPCommunicationError"), RETRY_TRANSIENT);
    cr_assert_eq(sts_classify(400, 0, "Throttling"), RETRY_THROTTLED);
    cr_assert_eq(sts_classify(403, 0, "AccessDenied"), RETRY_FATAL);
    cr_assert_eq(sts_classify(503, 0, ""), RETRY_TRANSIENT);
    cr_assert_eq(sts_classify(0, -ECONNREFUSED, ""), RETRY_TRANSIENT);
    close_all();
}

/* A fake STS: checks each request and answers with numbered keys. */
struct fake_sts {
    pthread_mutex_t mu;
    int issued;
    int fail_idp;           /* answer IDPCommunicationError this many times first */
    bool deny;
    char bodies[8][2048];
    char signer[8][64];     /* key id that signed request i, "" when unsigned, "BAD" */
    char keys[8][3][64];    /* issued keys: id, secret, token */
    const char *verify_id[8], *verify_secret[8], *verify_token[8]; /* expected signer per request */
};

static void sts_handler(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    struct fake_sts *s = arg;
    static char body[4096];
    char authz[16], exp[32];
    int i;

    pthread_mutex_lock(&s->mu);
    i = s->issued++;
    if (i < 8) {
        snprintf(s->bodies[i], sizeof s->bodies[i], "%s", q->body);
        if (!hdr(q, "Authorization", authz, sizeof authz))
            s->signer[i][0] = '\0';
        else if (s->verify_id[i] && verify(q, s->verify_id[i], s->verify_secret[i],
                                           s->verify_token[i], "sts"))
            snprintf(s->signer[i], sizeof s->signer[i], "%s", s->verify_id[i]);
        else
            snprintf(s->signer[i], sizeof s->signer[i], "BAD");
        snprintf(s->keys[i][0], 64, "ASIASTS%d", i);
        snprintf(s->keys[i][1], 64, "sts-secret-%d", i);
        snprintf(s->keys[i][2], 64, "sts-token-%d", i);
    }
    if (s->fail_idp > 0) {
        s->fail_idp--;
        out->status = 400;
        out->body = "<ErrorResponse><Error><Code>IDPCommunicationError</Code><Message>idp down"
                    "</Message></Error></ErrorResponse>";
    } else if (s->deny) {
        out->status = 403;
        out->body = "<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized to "
                    "perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>";
    } else {
        iso(fake_now() + 3600, exp, sizeof exp);
        snprintf(body, sizeof body,
                 "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
                 "<AccessKeyId>ASIASTS%d</AccessKeyId><SecretAccessKey>sts-secret-%d"
                 "</SecretAccessKey><SessionToken>sts-token-%d</SessionToken>"
                 "<Expiration>%s</Expiration></Credentials></AssumeRoleResult>"
                 "</AssumeRoleResponse>",
                 i, i, i, exp);
        out->status = 200;
        out->body = body;
    }
    pthread_mutex_unlock(&s->mu);
}

static struct creds *new_creds(const char *profile)
{
    struct creds *c = creds_new(&loop, http,
                                &(struct creds_opts){ .profile = profile, .now = fake_now,
                                                      .region = "us-east-1",
                                                      .retry_base_ms = 50 });

    cr_assert_not_null(c);
    return c;
}

Test(sts, web_identity_from_the_environment_is_unsigned_and_rereads_the_token)
{
    struct fakehttp *f = fake_start();
    struct fake_sts s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct got_key g = { 0 };
    struct creds *c;

    fake_set_handler(f, sts_handler, &s);
    setenv("AWS_ENDPOINT_URL_STS", fake_url(f), 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", put("token", "jwt-one\n"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/Irsa", 1);
    setenv("AWS_ROLE_SESSION_NAME", "pod-1", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_str_eq(g.id, "ASIASTS0");
    cr_assert_str_eq(g.token, "sts-token-0");
    cr_assert_str_eq(s.signer[0], "", "AssumeRoleWithWebIdentity is not signed");
    cr_assert(strstr(s.bodies[0], "Action=AssumeRoleWithWebIdentity&"), "%s", s.bodies[0]);
    cr_assert(strstr(s.bodies[0], "&WebIdentityToken=jwt-one"), "%s", s.bodies[0]);
    cr_assert(strstr(s.bodies[0], "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2FIrsa"));
    cr_assert(strstr(s.bodies[0], "RoleSessionName=pod-1"));
    cr_assert(strstr(creds_source(c), "web identity"), "%s", creds_source(c));

    put("token", "jwt-two\n"); /* EKS rotates the projected token */
    creds_invalidate(c);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "ASIASTS1");
    cr_assert(strstr(s.bodies[1], "&WebIdentityToken=jwt-two"), "%s", s.bodies[1]);
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(sts, idp_communication_error_is_retried)
{
    struct fakehttp *f = fake_start();
    struct fake_sts s = { .mu = PTHREAD_MUTEX_INITIALIZER, .fail_idp = 2 };
    struct got_key g = { 0 };
    struct creds *c;

    fake_set_handler(f, sts_handler, &s);
    setenv("AWS_ENDPOINT_URL_STS", fake_url(f), 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", put("token", "jwt"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/R", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(fake_nreq(f), 3, "two IDPCommunicationError, then success");
    cr_assert(strstr(s.bodies[2], "RoleSessionName=ddb2es-"), "a default session name: %s",
              s.bodies[2]);
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(sts, access_denied_names_the_provider_and_code)
{
    struct fakehttp *f = fake_start();
    struct fake_sts s = { .mu = PTHREAD_MUTEX_INITIALIZER, .deny = true };
    struct got_key g = { 0 };
    struct creds *c;

    fake_set_handler(f, sts_handler, &s);
    setenv("AWS_ENDPOINT_URL_STS", fake_url(f), 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", put("token", "jwt"), 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/R", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert_eq(fake_nreq(f), 1, "AccessDenied is final");
    cr_assert(strstr(creds_error(c), "web identity"), "%s", creds_error(c));
    cr_assert(strstr(creds_error(c), "AccessDenied"), "%s", creds_error(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(sts, bad_token_file)
{
    struct fakehttp *f = fake_start();
    struct got_key g = { 0 };
    struct creds *c;

    setenv("AWS_ENDPOINT_URL_STS", fake_url(f), 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/R", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, -ENOENT);
    cr_assert(strstr(creds_error(c), "cannot read the token file /nonexistent/token"), "%s",
              creds_error(c));
    cr_assert_eq(fake_nreq(f), 0);
    unsetenv("AWS_ROLE_ARN");
    creds_free(c);
    c = new_creds(NULL);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL, "a token file without a role");
    cr_assert(strstr(creds_error(c), "AWS_ROLE_ARN is not"), "%s", creds_error(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(sts, role_chain_from_profiles_signs_each_hop_with_the_previous_key)
{
    struct fakehttp *f = fake_start();
    struct fake_sts s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct got_key g = { 0 };
    struct creds *c;
    char cfg[1024];

    /* hop 0 is signed by C's static key, hop 1 by the key hop 0 returned */
    s.verify_id[0] = "AKIDSTATICC";
    s.verify_secret[0] = "static-secret-c";
    s.verify_id[1] = "ASIASTS0";
    s.verify_secret[1] = "sts-secret-0";
    s.verify_token[1] = "sts-token-0";
    fake_set_handler(f, sts_handler, &s);
    snprintf(cfg, sizeof cfg,
             "[profile app]\nrole_arn = arn:aws:iam::1:role/App\nsource_profile = mid\n"
             "external_id = ext-42\nrole_session_name = app-session\nduration_seconds = 1800\n"
             "services = fakes\n"
             "[profile mid]\nrole_arn = arn:aws:iam::1:role/Mid\nsource_profile = base\n"
             "[services fakes]\nsts =\n  endpoint_url = %s\n",
             fake_url(f));
    setenv("AWS_CONFIG_FILE", put("config", cfg), 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE",
           put("credentials",
               "[base]\naws_access_key_id = AKIDSTATICC\naws_secret_access_key = static-secret-c\n"),
           1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1); /* the configured profile skips the environment */
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    c = new_creds("app");
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(fake_nreq(f), 2);
    cr_assert_str_eq(s.signer[0], "AKIDSTATICC", "hop 0 signed with the source profile's key");
    cr_assert_str_eq(s.signer[1], "ASIASTS0", "hop 1 signed with hop 0's key");
    cr_assert(strstr(s.bodies[0], "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2FMid"), "%s",
              s.bodies[0]);
    cr_assert(strstr(s.bodies[1], "RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2FApp"));
    cr_assert(strstr(s.bodies[1], "ExternalId=ext-42"), "%s", s.bodies[1]);
    cr_assert(strstr(s.bodies[1], "RoleSessionName=app-session"));
    cr_assert(strstr(s.bodies[1], "DurationSeconds=1800"));
    cr_assert_str_eq(g.id, "ASIASTS1", "the outermost role's key signs");
    cr_assert(strstr(creds_source(c), "profile app: assume role"), "%s", creds_source(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

/* ========================================================================== */
/* container endpoint                                                         */
/* ========================================================================== */

TestSuite(container, .init = setup, .timeout = 20);

struct fake_ct {
    pthread_mutex_t mu;
    int served;
    long life;          /* seconds of validity, by the fake clock */
    int fail_status;    /* answer this status ... */
    int fail_times;     /* ... this many times first (-1: always) */
    char authz[8][128];
    time_t issued_at[512]; /* by the fake clock */
};

static void ct_handler(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    struct fake_ct *s = arg;
    static char body[1024];
    char exp[32];
    int i;

    pthread_mutex_lock(&s->mu);
    i = s->served++;
    if (i < 512)
        s->issued_at[i] = fake_now();
    if (i < 8 && !hdr(q, "Authorization", s->authz[i], sizeof s->authz[i]))
        s->authz[i][0] = '\0';
    if (s->fail_times != 0) {
        if (s->fail_times > 0)
            s->fail_times--;
        out->status = s->fail_status;
        out->body = "{\"code\":\"oops\"}";
    } else {
        iso(fake_now() + (s->life ? s->life : 3600), exp, sizeof exp);
        snprintf(body, sizeof body,
                 "{\"AccessKeyId\":\"ASIACT%d\",\"SecretAccessKey\":\"ct-secret-%d\","
                 "\"Token\":\"ct-token-%d\",\"Expiration\":\"%s\",\"RoleArn\":\"arn:r\"}",
                 i, i, i, exp);
        out->status = 200;
        out->body = body;
    }
    pthread_mutex_unlock(&s->mu);
}

Test(container, full_uri_with_a_token_file_reread_at_each_fetch)
{
    struct fakehttp *f = fake_start();
    struct fake_ct s = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct got_key g = { 0 };
    char url[256];
    struct creds *c;

    fake_set_handler(f, ct_handler, &s);
    snprintf(url, sizeof url, "%s/v1/credentials", fake_url(f));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "from-variable", 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", put("ct-token", "from-file-1\n"), 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_str_eq(g.id, "ASIACT0");
    cr_assert_str_eq(g.token, "ct-token-0");
    cr_assert_str_eq(s.authz[0], "from-file-1", "the file beats the variable");
    cr_assert_str_eq(fake_req(f, 0)->path, "/v1/credentials");
    put("ct-token", "from-file-2\n");
    creds_invalidate(c);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(s.authz[1], "from-file-2", "the token file is read at every fetch");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    creds_free(c);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(s.authz[2], "from-variable");
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(container, server_errors_are_retried_but_not_403)
{
    struct fakehttp *f = fake_start();
    struct fake_ct s = { .mu = PTHREAD_MUTEX_INITIALIZER, .fail_status = 500, .fail_times = 2 };
    struct got_key g = { 0 };
    struct creds *c;

    fake_set_handler(f, ct_handler, &s);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(f), 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(fake_nreq(f), 3, "500, 500, then 200");
    creds_free(c);

    s.fail_status = 403;
    s.fail_times = -1;
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert_eq(fake_nreq(f), 4, "a 403 is not retried");
    cr_assert(strstr(creds_error(c), "container endpoint"), "%s", creds_error(c));
    cr_assert(strstr(creds_error(c), "HTTP 403"), "%s", creds_error(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(container, plain_http_to_another_host_is_refused_before_any_socket)
{
    struct got_key g = { 0 };
    struct creds *c;

    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds", 1);
    c = new_creds(NULL);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL, "refused while planning, nothing dialled");
    cr_assert_eq(g.calls, 0);
    cr_assert(strstr(creds_error(c), "10.1.2.3 is not allowed over plain http"), "%s",
              creds_error(c));
    creds_free(c);
    close_all();
}

Test(container, resolved_urls)
{
    struct container_cfg cfg;
    char why[256];

    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc", 1);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/x", 1);
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), 0);
    cr_assert_str_eq(cfg.url, "http://169.254.170.2/v2/credentials/abc", "the relative URI wins");
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example.com/x", 1);
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), 0, "https: any host");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.170.23/v1/credentials", 1);
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), 0, "EKS Pod Identity");
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://[fd00:ec2::23]/v1/credentials", 1);
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), 0);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://169.254.169.254/x", 1);
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), -EINVAL);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    cr_assert_eq(container_resolve(getenv, &cfg, why, sizeof why), -ENOKEY);
    close_all();
}

/* ========================================================================== */
/* imds                                                                       */
/* ========================================================================== */

TestSuite(imds, .init = setup, .timeout = 20);

Test(imds, endpoint_settings_table)
{
    /* smithy-rs imds-config/imds-tests.json, plus the switches */
    static const struct {
        const char *env_ep, *env_mode, *prof_ep, *prof_mode, *want, *error;
    } cases[] = {
        { NULL, NULL, NULL, NULL, "http://169.254.169.254", NULL },
        { "http://override:456", NULL, NULL, NULL, "http://override:456", NULL },
        { NULL, NULL, "http://override:456", NULL, "http://override:456", NULL },
        { "http://override:456", NULL, "http://wrong:456", NULL, "http://override:456", NULL },
        { NULL, "error", NULL, NULL, NULL, "`error` is not a valid endpoint mode" },
        { NULL, "IPv4", NULL, NULL, "http://169.254.169.254", NULL },
        { NULL, "IPv6", NULL, NULL, "http://[fd00:ec2::254]", NULL },
        { NULL, NULL, NULL, "IPv6", "http://[fd00:ec2::254]", NULL },
        { NULL, NULL, NULL, "IPv7", NULL, "`IPv7` is not a valid endpoint mode" },
        { NULL, NULL, "https://custom", "IPv6", "https://custom", NULL },
        { NULL, "IPv6", NULL, "IPv4", "http://[fd00:ec2::254]", NULL },
        { "not a uri", NULL, NULL, NULL, NULL, "invalid uri" },
        { "http://169.254.169.200", "IPv6", NULL, NULL, "http://169.254.169.200", NULL },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct profile_set set = { 0 };
        struct imds_cfg cfg;
        char ini[256], why[256] = "";
        int rc;

        snprintf(ini, sizeof ini, "[default]\n%s%s%s%s%s%s", cases[i].prof_ep ? "ec2_metadata_service_endpoint = " : "",
                 cases[i].prof_ep ? cases[i].prof_ep : "", cases[i].prof_ep ? "\n" : "",
                 cases[i].prof_mode ? "ec2_metadata_service_endpoint_mode = " : "",
                 cases[i].prof_mode ? cases[i].prof_mode : "", cases[i].prof_mode ? "\n" : "");
        profile_parse(&set, ini, strlen(ini), false, "t");
        if (cases[i].env_ep)
            setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", cases[i].env_ep, 1);
        else
            unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
        if (cases[i].env_mode)
            setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", cases[i].env_mode, 1);
        else
            unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        rc = imds_resolve(getenv, profile_find(&set, "default"), &cfg, why, sizeof why);
        if (cases[i].error) {
            cr_expect_eq(rc, -EINVAL, "case %zu", i);
            cr_expect(strstr(why, cases[i].error), "case %zu: %s", i, why);
        } else {
            cr_expect_eq(rc, 0, "case %zu: %s", i, why);
            cr_expect_str_eq(cfg.endpoint, cases[i].want, "case %zu", i);
        }
        profile_set_free(&set);
    }
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    {
        struct imds_cfg cfg;
        char why[128];

        cr_assert_eq(imds_resolve(getenv, NULL, &cfg, why, sizeof why), 0);
        cr_assert(cfg.disabled, "AWS_EC2_METADATA_DISABLED=true");
        cr_assert_eq(cfg.timeout_ms, 1000);
        cr_assert_eq(cfg.attempts, 1);
    }
    close_all();
}

/* A fake IMDS. */
enum imds_mode { IM_V2, IM_V1_ONLY, IM_HANG_PUT };

struct fake_imds {
    pthread_mutex_t mu;
    enum imds_mode mode;
    int put_status;       /* IM_V1_ONLY: the PUT's answer */
    bool extended;        /* serve the extended path (else 404 there) */
    int reject_after;     /* GETs with a token answer 401 after this many (0 = never) */
    const char *doc;      /* credentials document override */
    int tokens, gets, puts;
    bool put_had_ttl, put_had_expect, get_without_token;
};

static void imds_handler(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    struct fake_imds *s = arg;
    static char body[1024], tokbuf[32];
    char v[128], exp[32];
    bool has_token;

    pthread_mutex_lock(&s->mu);
    out->status = 404;
    out->body = "";
    if (strcmp(q->method, "PUT") == 0) {
        s->puts++;
        s->put_had_ttl = hdr(q, "x-aws-ec2-metadata-token-ttl-seconds", v, sizeof v) &&
                         strcmp(v, "21600") == 0;
        s->put_had_expect = hdr(q, "Expect", v, sizeof v);
        if (s->mode == IM_HANG_PUT) {
            out->action = FAKE_HANG;
        } else if (s->mode == IM_V1_ONLY) {
            out->status = s->put_status;
        } else if (!s->put_had_ttl || strcmp(q->path, "/latest/api/token") != 0) {
            out->status = 400;
        } else {
            snprintf(tokbuf, sizeof tokbuf, "tok-%d", ++s->tokens);
            out->status = 200;
            out->body = tokbuf;
        }
        goto done;
    }
    s->gets++;
    has_token = hdr(q, "x-aws-ec2-metadata-token", v, sizeof v);
    if (!has_token)
        s->get_without_token = true;
    if (s->mode == IM_V2 && (!has_token || strncmp(v, "tok-", 4) != 0 ||
                             atoi(v + 4) != s->tokens ||
                             (s->reject_after && s->gets > s->reject_after && s->tokens == 1))) {
        out->status = 401;
        goto done;
    }
    if (strstr(q->path, "-extended/") && !s->extended)
        goto done;
    if (strcmp(q->path, "/latest/meta-data/iam/security-credentials/") == 0 ||
        strcmp(q->path, "/latest/meta-data/iam/security-credentials-extended/") == 0) {
        out->status = 200;
        out->body = "ec2-role\n";
    } else if (strcmp(q->path, "/latest/meta-data/iam/security-credentials/ec2-role") == 0 ||
               strcmp(q->path, "/latest/meta-data/iam/security-credentials-extended/ec2-role") ==
                   0) {
        iso(fake_now() + 6 * 3600, exp, sizeof exp);
        snprintf(body, sizeof body,
                 "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\","
                 "\"SecretAccessKey\":\"imds-secret\",\"Token\":\"imds-token\","
                 "\"Expiration\":\"%s\"%s}",
                 exp, strstr(q->path, "-extended/") ? ",\"AccountId\":\"123456789012\"" : "");
        out->status = 200;
        out->body = s->doc ? s->doc : body;
    } else if (strcmp(q->path, "/latest/meta-data/placement/region") == 0) {
        out->status = 200;
        out->body = "eu-west-1";
    }
done:
    pthread_mutex_unlock(&s->mu);
}

static struct fakehttp *imds_fake(struct fake_imds *s)
{
    struct fakehttp *f = fake_start();

    fake_set_handler(f, imds_handler, s);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_url(f), 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    return f;
}

Test(imds, v2_token_role_and_credentials)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2 };
    struct fakehttp *f = imds_fake(&s);
    struct got_key g = { 0 };
    struct creds *c = new_creds(NULL);

    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_str_eq(g.id, "ASIAIMDS");
    cr_assert_str_eq(g.token, "imds-token");
    cr_assert_eq(s.puts, 1);
    cr_assert(s.put_had_ttl, "the PUT carries the TTL header");
    cr_assert(!s.put_had_expect, "no Expect: 100-continue on the PUT");
    cr_assert(!s.get_without_token);
    cr_assert_str_eq(fake_req(f, 1)->path, "/latest/meta-data/iam/security-credentials-extended/");
    cr_assert_str_eq(fake_req(f, 2)->path, "/latest/meta-data/iam/security-credentials/",
                     "a 404 on the extended path falls back to the legacy one");
    cr_assert_str_eq(fake_req(f, 3)->path, "/latest/meta-data/iam/security-credentials/ec2-role");
    cr_assert_str_eq(creds_source(c), "IMDS");
    cr_assert_eq(creds_expiration(c), fake_now() + 6 * 3600);
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(imds, extended_path_and_token_renewal_after_401)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2, .extended = true,
                           .reject_after = 2 };
    struct fakehttp *f = imds_fake(&s);
    struct got_key g = { 0 };
    struct creds *c = new_creds(NULL);

    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(s.gets, 2, "role and credentials from the extended path");
    creds_invalidate(c);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(s.tokens, 2, "a 401 fetched a new token, once");
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(imds, v1_fallback_on_403_404_405)
{
    static const int statuses[] = { 403, 404, 405 };

    for (size_t i = 0; i < 3; i++) {
        struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V1_ONLY,
                               .put_status = statuses[i] };
        struct fakehttp *f = imds_fake(&s);
        struct got_key g = { 0 };
        struct creds *c = new_creds(NULL);

        cr_assert_eq(get_key(c, &g, 5000), 0);
        cr_assert_eq(g.err, 0, "PUT %d: %s", statuses[i], creds_error(c));
        cr_assert_str_eq(g.id, "ASIAIMDS");
        cr_assert(s.get_without_token, "IMDSv1 GETs carry no token");
        creds_free(c);

        setenv("AWS_EC2_METADATA_V1_DISABLED", "true", 1);
        c = new_creds(NULL);
        cr_assert_eq(get_key(c, &g, 5000), 0);
        cr_assert_lt(g.err, 0, "PUT %d with v1 disabled", statuses[i]);
        cr_assert(strstr(creds_error(c), "IMDSv1 is disabled"), "%s", creds_error(c));
        unsetenv("AWS_EC2_METADATA_V1_DISABLED");
        creds_free(c);
        fake_stop(f);
    }
    close_all();
}

Test(imds, hop_limit_timeout_falls_back_to_v1_or_fails_with_the_hint)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_HANG_PUT };
    struct fakehttp *f = imds_fake(&s);
    struct got_key g = { 0 };
    struct creds *c = new_creds(NULL);
    uint64_t t0 = uv_hrtime();

    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert(s.get_without_token);
    cr_assert_lt((uv_hrtime() - t0) / 1000000, 3000, "the 1 s timeout, then v1");
    creds_free(c);

    setenv("AWS_EC2_METADATA_V1_DISABLED", "true", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, -ETIMEDOUT);
    cr_assert(strstr(creds_error(c), "set the instance metadata hop limit to 2"), "%s",
              creds_error(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(imds, role_not_trusted_means_no_credentials)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2,
                           .doc = "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"Message\":"
                                  "\"EC2 cannot assume the role\"}" };
    struct fakehttp *f = imds_fake(&s);
    struct got_key g = { 0 };
    struct creds *c = new_creds(NULL);

    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, -ENOKEY);
    cr_assert(strstr(creds_error(c), "no AWS credentials found (tried: environment"), "%s",
              creds_error(c));
    cr_assert(strstr(creds_error(c), "AssumeRoleUnauthorizedAccess"), "%s", creds_error(c));
    creds_free(c);
    close_all();
    fake_stop(f);
}

Test(imds, disabled_means_no_request_and_unreachable_fails_fast)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2 };
    struct fakehttp *f = imds_fake(&s);
    struct got_key g = { 0 };
    struct creds *c;
    char url[64];
    uint64_t t0;

    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    c = new_creds(NULL);
    cr_assert_eq(creds_get(c, on_key, &g), -ENOKEY);
    cr_assert(strstr(creds_error(c), "IMDS (disabled)"), "%s", creds_error(c));
    creds_free(c);
    cr_assert_eq(fake_nreq(f), 0);
    snprintf(url, sizeof url, "%s", fake_url(f));
    fake_stop(f); /* its port is closed now */

    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    c = new_creds(NULL);
    t0 = uv_hrtime();
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert_lt((uv_hrtime() - t0) / 1000000, 1500);
    cr_assert(strstr(creds_error(c),
                     "no AWS credentials found (tried: environment, web identity, profile "
                     "default, container, IMDS: "),
              "%s", creds_error(c));
    creds_free(c);
    close_all();
}

struct region_got {
    bool done;
    int err;
    char region[64];
};

static void on_region(int err, const char *region, const char *why, void *arg)
{
    struct region_got *r = arg;

    r->done = true;
    r->err = err;
    snprintf(r->region, sizeof r->region, "%s", region ? region : "");
}

static bool region_done(void *arg)
{
    return ((struct region_got *)arg)->done;
}

Test(imds, region_settings_and_placement_region)
{
    struct fake_imds s = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2 };
    struct fakehttp *f;
    struct aws_settings st;
    struct region_got r = { 0 };
    char why[128];

    setenv("AWS_CONFIG_FILE",
           put("config", "[default]\nregion = ap-south-1\nuse_fips_endpoint = true\n"
                         "[profile other]\nregion = sa-east-1\nservices = s\n"
                         "[services s]\ndynamodb_streams =\n  endpoint_url = http://127.0.0.1:7\n"),
           1);
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    setenv("AWS_REGION", "us-west-1", 1);
    cr_assert_eq(aws_settings_load(&st, "us-east-2", NULL, false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "us-east-2");
    aws_settings_close(&st);
    cr_assert_eq(aws_settings_load(&st, NULL, NULL, false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "us-west-1");
    aws_settings_close(&st);
    unsetenv("AWS_REGION");
    cr_assert_eq(aws_settings_load(&st, NULL, NULL, false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "eu-central-1");
    aws_settings_close(&st);
    unsetenv("AWS_DEFAULT_REGION");
    cr_assert_eq(aws_settings_load(&st, NULL, NULL, false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "ap-south-1");
    cr_assert(st.use_fips, "the profile's use_fips_endpoint");
    aws_settings_close(&st);
    cr_assert_eq(aws_settings_load(&st, NULL, "other", false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "sa-east-1");
    cr_assert(!st.use_fips);
    cr_assert_str_eq(st.endpoint_streams, "http://127.0.0.1:7");
    cr_assert_null(st.endpoint_dynamodb);
    aws_settings_close(&st);
    cr_assert_eq(aws_settings_load(&st, NULL, "nothing-here", false, false, why, sizeof why), 0);
    cr_assert_str_eq(st.region, "", "IMDS is the last resort");
    aws_settings_close(&st);

    cr_assert_eq(aws_region_from_imds(&loop, http, NULL, on_region, &r), -ENOENT,
                 "IMDS disabled");
    f = imds_fake(&s);
    cr_assert_eq(aws_region_from_imds(&loop, http, NULL, on_region, &r), 0);
    cr_assert(loop_run_until(&loop, region_done, &r, 5000));
    cr_assert_eq(r.err, 0);
    cr_assert_str_eq(r.region, "eu-west-1");
    close_all();
    fake_stop(f);
}

/* ========================================================================== */
/* creds: the chain, credential_process, renewal                              */
/* ========================================================================== */

TestSuite(creds, .init = setup, .timeout = 60);

Test(creds, environment_keys)
{
    struct creds *c = creds_new(NULL, NULL, NULL);
    struct got_key g = { 0 };

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_eq(g.calls, 1, "a cached or static key is handed out at once");
    cr_assert_eq(g.err, 0);
    cr_assert_str_eq(g.id, "AKIDEXAMPLE");
    cr_assert_str_eq(g.secret, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    cr_assert_str_eq(g.token, "");
    cr_assert_str_eq(creds_source(c), "environment");
    cr_assert_str_eq(creds_error(c), "");
    creds_free(c);
    close_all();
}

Test(creds, environment_session_token)
{
    struct creds *c = creds_new(NULL, NULL, NULL);
    struct got_key g = { 0 };

    setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_SECURITY_TOKEN", "legacy", 1);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_str_eq(g.token, "legacy", "the legacy name is read when it is the only one");
    setenv("AWS_SESSION_TOKEN", "tok", 1);
    creds_invalidate(c);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_str_eq(g.token, "tok", "AWS_SESSION_TOKEN wins");
    creds_free(c);
    close_all();
}

Test(creds, key_id_without_secret_is_a_hard_error)
{
    struct creds *c = creds_new(NULL, NULL, NULL);
    struct got_key g = { 0 };

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL);
    cr_assert_eq(g.calls, 0, "the callback does not run when creds_get fails");
    cr_assert(strstr(creds_error(c), "AWS_SECRET_ACCESS_KEY"), "%s", creds_error(c));
    setenv("AWS_SECRET_ACCESS_KEY", "", 1);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL);
    cr_assert(strstr(creds_error(c), "AWS_SECRET_ACCESS_KEY is empty"), "%s", creds_error(c));
    creds_free(c);
    close_all();
}

Test(creds, nothing_found)
{
    struct creds *c = creds_new(NULL, NULL, NULL);
    struct got_key g = { 0 };

    setenv("AWS_SECRET_ACCESS_KEY", "secret-alone", 1);
    cr_assert_eq(creds_get(c, on_key, &g), -ENOKEY);
    cr_assert_eq(g.calls, 0);
    cr_assert_str_eq(creds_error(c), "no AWS credentials found (tried: environment, web "
                                     "identity, profile default, IMDS (disabled))");
    cr_assert(!strstr(creds_error(c), "secret-alone"));
    creds_free(c);
    close_all();
}

Test(creds, invalidate_reads_again)
{
    struct creds *c = creds_new(NULL, NULL, NULL);
    struct got_key g = { 0 };

    setenv("AWS_ACCESS_KEY_ID", "AKIDONE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s1", 1);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    setenv("AWS_ACCESS_KEY_ID", "AKIDTWO", 1);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_str_eq(g.id, "AKIDONE", "the key is cached");
    creds_invalidate(c);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_str_eq(g.id, "AKIDTWO");
    creds_free(c);
    creds_free(NULL);
    close_all();
}

static void write_process(const char *name, const char *json, const char *marker)
{
    char body[2048];

    snprintf(body, sizeof body, "#!/bin/sh\n%s%s%s\ncat <<'EOF'\n%s\nEOF\n",
             marker ? "echo run >> " : "", marker ? marker : "", marker ? "" : "", json);
    script(name, body);
}

static const char *profile_with_process(const char *cmd)
{
    static char cfg[1024];

    snprintf(cfg, sizeof cfg, "[default]\ncredential_process = %s\n", cmd);
    return put("config", cfg);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;

    if (!f)
        return 0;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

Test(creds, chain_order_env_then_profile_then_container_then_imds)
{
    struct fake_ct ct = { .mu = PTHREAD_MUTEX_INITIALIZER };
    struct fake_imds im = { .mu = PTHREAD_MUTEX_INITIALIZER, .mode = IM_V2 };
    struct fakehttp *fct = fake_start(), *fim = imds_fake(&im);
    struct got_key g = { 0 };
    char marker[512], cmd[600];
    struct creds *c;

    fake_set_handler(fct, ct_handler, &ct);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(fct), 1);
    snprintf(marker, sizeof marker, "%s/ran", dir);
    write_process("proc.sh", "{\"Version\":1,\"AccessKeyId\":\"AKIDPROC\",\"SecretAccessKey\":\"p\"}",
                  marker);
    snprintf(cmd, sizeof cmd, "%s/proc.sh", dir);
    setenv("AWS_CONFIG_FILE", profile_with_process(cmd), 1);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    setenv("AWS_PROFILE", "default", 1); /* AWS_PROFILE does not disable the environment */

    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "AKIDENV", "1. environment");
    creds_free(c);
    cr_assert_eq(count_lines(marker), 0, "the profile's process did not run");

    c = new_creds("default"); /* [aws] profile: skip the environment */
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "AKIDPROC", "2. the profile (credential_process)");
    cr_assert_eq(count_lines(marker), 1);
    creds_free(c);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_PROFILE");

    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "AKIDPROC", "the profile beats the container");
    creds_free(c);
    cr_assert_eq(fake_nreq(fct), 0, "the container endpoint saw no request");

    setenv("AWS_CONFIG_FILE", "/nonexistent/x", 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "ASIACT0", "3. the container");
    creds_free(c);
    cr_assert_eq(fake_nreq(fim), 0, "IMDS saw no request");

    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "ASIAIMDS", "4. IMDS");
    creds_free(c);
    close_all();
    fake_stop(fct);
    fake_stop(fim);
}

Test(creds, missing_selected_profile_is_an_error)
{
    struct got_key g = { 0 };
    struct creds *c;

    setenv("AWS_CONFIG_FILE", put("config", "[profile a]\nregion = eu-west-1\n"), 1);
    c = new_creds("ops");
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL);
    cr_assert(strstr(creds_error(c), "profile ops is in neither"), "%s", creds_error(c));
    cr_assert(strstr(creds_error(c), "[aws] profile"), "%s", creds_error(c));
    creds_free(c);
    setenv("AWS_PROFILE", "ops", 1);
    c = new_creds(NULL);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL);
    cr_assert(strstr(creds_error(c), "AWS_PROFILE"), "%s", creds_error(c));
    creds_free(c);
    setenv("AWS_CONFIG_FILE",
           put("config", "[profile a]\nrole_arn = arn:r\nsource_profile = b\n"
                         "[profile b]\nrole_arn = arn:r2\nsource_profile = a\n"),
           1);
    setenv("AWS_PROFILE", "a", 1);
    c = new_creds(NULL);
    cr_assert_eq(creds_get(c, on_key, &g), -EINVAL);
    cr_assert(strstr(creds_error(c), "loop"), "%s", creds_error(c));
    creds_free(c);
    close_all();
}

Test(creds, credential_process_documents_and_errors)
{
    struct got_key g = { 0 };
    char cmd[600];
    struct creds *c;

    snprintf(cmd, sizeof cmd, "%s/p.sh", dir);
    setenv("AWS_CONFIG_FILE", profile_with_process(cmd), 1);

    write_process("p.sh", "{\"Version\":1,\"AccessKeyId\":\"AKIDP\",\"SecretAccessKey\":\"sp\","
                          "\"SessionToken\":\"tp\"}",
                  NULL);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_str_eq(g.id, "AKIDP");
    cr_assert_str_eq(g.token, "tp");
    cr_assert_str_eq(creds_source(c), "profile default: credential_process");
    cr_assert_eq(creds_expiration(c), 0, "no Expiration: never renewed");
    creds_free(c);

    write_process("p.sh", "{\"Version\":2,\"AccessKeyId\":\"AKIDP\",\"SecretAccessKey\":\"sp\"}",
                  NULL);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert(strstr(creds_error(c), "Version must be 1"), "%s", creds_error(c));
    creds_free(c);

    script("p.sh", "#!/bin/sh\necho 'token expired, run aws sso login' >&2\nexit 1\n");
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert(strstr(creds_error(c), "exited with status 1: token expired, run aws sso login"),
              "%s", creds_error(c));
    cr_assert(strstr(creds_error(c), "credential_process"), "%s", creds_error(c));
    creds_free(c);
    close_all();
}

Test(creds, credential_process_with_expiration_is_run_again_before_it_expires)
{
    struct got_key g = { 0 };
    char cmd[600], marker[512], json[256], exp[32];
    struct creds *c;

    snprintf(cmd, sizeof cmd, "%s/p.sh", dir);
    snprintf(marker, sizeof marker, "%s/runs", dir);
    setenv("AWS_CONFIG_FILE", profile_with_process(cmd), 1);
    iso(fake_now() + 60, exp, sizeof exp);
    snprintf(json, sizeof json, "{\"Version\":1,\"AccessKeyId\":\"AKIDP1\",\"SecretAccessKey\":"
                                "\"s\",\"Expiration\":\"%s\"}", exp);
    write_process("p.sh", json, marker);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "AKIDP1");
    iso(fake_now() + 120, exp, sizeof exp);
    snprintf(json, sizeof json, "{\"Version\":1,\"AccessKeyId\":\"AKIDP2\",\"SecretAccessKey\":"
                                "\"s\",\"Expiration\":\"%s\"}", exp);
    write_process("p.sh", json, marker);
    atomic_fetch_add(&fake_now_v, 50); /* 10 s left of 60: inside the last quarter */
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "AKIDP2", "the command ran again before the next signature");
    cr_assert_eq(count_lines(marker), 2);
    creds_free(c);
    close_all();
}


Test(creds, renewal_windows_background_refresh_failures_and_backoff)
{
    struct fake_ct s = { .mu = PTHREAD_MUTEX_INITIALIZER, .life = 20 * 60 };
    struct fakehttp *f = fake_start();
    struct got_key g = { 0 };
    struct want_nreq w = { f, 0 };
    struct creds *c;

    fake_set_handler(f, ct_handler, &s);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(f), 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "ASIACT0");
    cr_assert_eq(creds_renewals(c).ok + creds_renewals(c).failed, 0, "the first key is no renewal");
    atomic_fetch_add(&fake_now_v, 5 * 60); /* 15 min left: still quiet */
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_eq(fake_nreq(f), 1);

    atomic_fetch_add(&fake_now_v, 60); /* 14 min left: one background refresh */
    g.calls = 0;
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_eq(g.calls, 1, "handed out at once, without waiting");
    cr_assert_str_eq(g.id, "ASIACT0", "the current key meanwhile");
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    w.n = 2;
    cr_assert(loop_run_until(&loop, has_nreq, &w, 5000));
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_str_eq(g.id, "ASIACT1");
    cr_assert_eq(fake_nreq(f), 2, "exactly one refresh");
    cr_assert_eq(creds_renewals(c).ok, 1);
    cr_assert_eq(creds_renewals(c).failed, 0);

    /* The source fails: the key in hand (14 min left again) is kept. */
    atomic_fetch_add(&fake_now_v, 6 * 60);
    pthread_mutex_lock(&s.mu);
    s.fail_status = 500;
    s.fail_times = -1;
    pthread_mutex_unlock(&s.mu);
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_str_eq(g.id, "ASIACT1");
    w.n = 2 + 3 + 3; /* 3 attempts, then a retry after 50 ms: 3 more */
    cr_assert(loop_run_until(&loop, has_nreq, &w, 5000),
              "the failed refresh is retried (%zu requests)", fake_nreq(f));
    g.calls = 0;
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    cr_assert_eq(g.calls, 1);
    cr_assert_str_eq(g.id, "ASIACT1", "still the old key");
    cr_assert_geq(creds_renewals(c).failed, 1, "the failed background renewal is counted");
    cr_assert_eq(creds_renewals(c).ok, 1);

    /* 4 min left and the source still fails: callers get the error. */
    atomic_fetch_add(&fake_now_v, 10 * 60);
    cr_assert_eq(get_key(c, &g, 10000), 0);
    cr_assert_lt(g.err, 0);
    cr_assert(strstr(creds_error(c), "container endpoint"), "%s", creds_error(c));
    cr_assert(strstr(creds_error(c), "HTTP 500"), "%s", creds_error(c));

    pthread_mutex_lock(&s.mu);
    s.fail_times = 0;
    pthread_mutex_unlock(&s.mu);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    cr_assert_eq(g.err, 0, "%s", creds_error(c));
    cr_assert_eq(creds_renewals(c).ok, 2);
    cr_assert_geq(creds_renewals(c).failed, 2, "the failure callers saw too");
    creds_free(c);
    close_all();
    fake_stop(f);
}

/* 2^-12: exact in binary, so each draw below a cap is cap / 4096 whole. */
static double tiny_rng(void)
{
    return 1.0 / 4096;
}

/* A failed background renewal waits on the one backoff (base/backoff.h):
 * full jitter below a cap that doubles from retry_base_ms (50 ms here) up
 * to 60 s, drawn from the one random source.  With the draw pinned at
 * 1/4096 the 13 waits are 1+cap/4096 ms: 1 (seven times), 2, 4, 7, 13,
 * then 15 and 15, the cap held at 60 s (unbounded, 50 ms * 2^11 would give
 * 26).  The log line names each wait. */
Test(creds, failed_renewals_wait_with_full_jitter_below_a_capped_doubling)
{
    static const long want[] = { 1, 2, 4, 7, 13, 15 }; /* each new wait, in order */
    struct fake_ct s = { .mu = PTHREAD_MUTEX_INITIALIZER, .life = 20 * 60 };
    struct fakehttp *f = fake_start();
    struct got_key g = { 0 };
    struct want_nreq w = { f, 0 };
    long seen[32];
    size_t nseen = 0;
    char *log;
    const char *p;
    struct creds *c;
    bool done;

    fake_set_handler(f, ct_handler, &s);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(f), 1);
    c = new_creds(NULL);
    cr_assert_eq(get_key(c, &g, 5000), 0);
    atomic_fetch_add(&fake_now_v, 6 * 60); /* 14 min left: renewed in the background */
    pthread_mutex_lock(&s.mu);
    s.fail_status = 500;
    s.fail_times = -1;
    pthread_mutex_unlock(&s.mu);
    backoff_set_rng(tiny_rng);

    proc_stderr_capture();
    cr_assert_eq(creds_get(c, on_key, &g), 0);
    w.n = 1 + 3 * 14; /* the first fetch, then 14 rounds of 3 attempts: 13 waits between */
    done = loop_run_until(&loop, has_nreq, &w, 5000);
    creds_free(c);
    log_flush();
    log = proc_stderr_restore();
    cr_assert(done, "13 renewals retried within 5 s (%zu requests); log:\n%s", fake_nreq(f), log);

    for (p = log; (p = strstr(p, "retrying in ")); p++) {
        long ms = strtol(p + strlen("retrying in "), NULL, 10);

        if ((nseen == 0 || seen[nseen - 1] != ms) && nseen < ARRAY_SIZE(seen))
            seen[nseen++] = ms;
    }
    cr_assert_eq(nseen, ARRAY_SIZE(want), "%zu distinct waits; log:\n%s", nseen, log);
    for (size_t i = 0; i < nseen; i++)
        cr_assert_eq(seen[i], want[i], "wait %zu: %ld ms, not %ld; log:\n%s", i, seen[i], want[i],
                     log);
    free(log);
    close_all();
    fake_stop(f);
}

/* The 30-second run: a container source whose keys live 30 s, a fake
 * DynamoDB that accepts only a valid signature by a key that has not
 * expired, both by the injected clock; 5 minutes in 1 s steps. */
struct fake_ddb {
    struct fake_ct *ct;
    pthread_mutex_t mu;
    int ok, bad;
    char why[256];
};

static void ddb_handler(const struct fake_req *q, struct fake_reply *out, void *arg)
{
    struct fake_ddb *d = arg;
    char authz[1024], id[64], secret[64], token[64];
    struct sigv4_authz az;
    int n;
    bool good = false;

    pthread_mutex_lock(&d->mu);
    if (hdr(q, "Authorization", authz, sizeof authz) &&
        sigv4_parse_authorization(authz, &az) == 0 && sscanf(az.access_key_id, "ASIACT%d", &n) == 1) {
        /* key n was issued at the fake time it was fetched, for 30 s */
        snprintf(id, sizeof id, "ASIACT%d", n);
        snprintf(secret, sizeof secret, "ct-secret-%d", n);
        snprintf(token, sizeof token, "ct-token-%d", n);
        good = verify(q, id, secret, token, "dynamodb");
        if (!good)
            snprintf(d->why, sizeof d->why, "bad signature by %s", id);
        pthread_mutex_lock(&d->ct->mu);
        if (good && (n >= 512 || fake_now() >= d->ct->issued_at[n] + d->ct->life)) {
            good = false;
            snprintf(d->why, sizeof d->why, "%s has expired", id);
        }
        pthread_mutex_unlock(&d->ct->mu);
    } else {
        snprintf(d->why, sizeof d->why, "unknown key");
    }
    if (good) {
        d->ok++;
        out->status = 200;
        out->body = "{}";
    } else {
        d->bad++;
        out->status = 400;
        out->body = "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\"}";
    }
    pthread_mutex_unlock(&d->mu);
}

struct call_done {
    bool done;
    enum ddb_class cls;
};

static void on_ddb(const struct ddb_reply *rep, void *arg)
{
    struct call_done *d = arg;

    d->done = true;
    d->cls = rep->cls;
}

static bool call_finished(void *arg)
{
    return ((struct call_done *)arg)->done;
}

/* Which key the creds hand out now, and until when (fake clock). */
struct issued {
    int n;
    time_t until;
};

Test(creds, thirty_second_keys_for_five_minutes_never_fail_a_request)
{
    struct fake_ct s = { .mu = PTHREAD_MUTEX_INITIALIZER, .life = 30 };
    struct fake_ddb d = { .ct = &s, .mu = PTHREAD_MUTEX_INITIALIZER };
    struct fakehttp *fct = fake_start(), *fddb = fake_start();
    struct creds *c;
    struct aws *a;
    struct got_key g = { 0 };
    int expired_handouts = 0;

    fake_set_handler(fct, ct_handler, &s);
    fake_set_handler(fddb, ddb_handler, &d);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fake_url(fct), 1);
    c = new_creds(NULL);
    a = aws_new(&loop, http, c,
                &(struct aws_opts){ .region = "us-east-1", .endpoint_streams = fake_url(fddb),
                                    .endpoint_dynamodb = fake_url(fddb) });
    cr_assert_not_null(a);
    aws_set_clock(a, fake_now);
    for (int step = 0; step < 300; step++) {
        struct call_done done = { 0 };

        atomic_fetch_add(&fake_now_v, 1);
        cr_assert_not_null(ddb_call(a, AWS_STREAMS, "GetRecords", NULL, on_ddb, &done,
                                    &(struct ddb_call_opts){ .max_attempts = 1 }));
        cr_assert(loop_run_until(&loop, call_finished, &done, 5000));
        cr_assert_eq(done.cls, DDB_OK, "step %d: %s / %s", step, ddb_class_name(done.cls), d.why);
        /* every key handed out is still valid by the clock */
        cr_assert_eq(creds_get(c, on_key, &g), 0);
        if (g.calls && creds_expiration(c) <= fake_now())
            expired_handouts++;
    }
    cr_assert_eq(d.bad, 0, "%d requests refused: %s", d.bad, d.why);
    cr_assert_eq(d.ok, 300);
    cr_assert_eq(expired_handouts, 0);
    cr_assert_geq(fake_nreq(fct), 300 / 30, "the keys were renewed (%zu fetches)", fake_nreq(fct));
    cr_assert_leq(fake_nreq(fct), 300 / 7, "but not at every request (%zu fetches)",
                  fake_nreq(fct));
    aws_free(a);
    creds_free(c);
    close_all();
    fake_stop(fct);
    fake_stop(fddb);
}

static char *legacy_env(const char *name)
{
    if (strcmp(name, "AWS_PROFILE") == 0)
        return (char *)"app";
    if (strcmp(name, "AWS_DEFAULT_PROFILE") == 0)
        return (char *)"other";
    return NULL;
}

/* AWS-AUTH §4.1: AWS_PROFILE picks the profile; a different legacy
 * AWS_DEFAULT_PROFILE is reported, not silently used. */
Test(profile, aws_default_profile_is_reported_when_it_differs)
{
    char path[256], *log;
    FILE *f;

    snprintf(path, sizeof(path), "%s/legacy-%d.log", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    f = freopen(path, "w", stderr);
    cr_assert_not_null(f);
    cr_assert_str_eq(profile_selected(NULL, legacy_env), "app");
    fflush(stderr);
    f = fopen(path, "r");
    cr_assert_not_null(f);
    log = calloc(1, 4096);
    cr_assert_gt(fread(log, 1, 4095, f), 0);
    fclose(f);
    cr_expect(strstr(log, "AWS_DEFAULT_PROFILE=other is ignored") != NULL, "%s", log);
    free(log);
}
