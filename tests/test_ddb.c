/* Tests of aws/ddb.c (classification, retries, signing of the calls),
 * aws/endpoint.c (the endpoint table) and aws/creds.c (the environment). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <zlib.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/endpoint.h"
#include "base/backoff.h"
#include "base/http.h"
#include "aws/sigv4.h"
#include "tests/support/fakehttp.h"
#include "tests/support/sigv4check.h"

static void close_all(void);

/* ------------------------------------------------------------------------ */
/* ddb_classify                                                             */
/* ------------------------------------------------------------------------ */

struct classify_case {
    long status;
    int err;
    const char *body;
    enum ddb_class want;
    const char *type;
};

#define DDBT(t) "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" t "\",\"message\":\"m\"}"
#define CORAL(t) "{\"__type\":\"com.amazon.coral.validate#" t "\",\"message\":\"m\"}"

static const struct classify_case classify_cases[] = {
    /* DDBLOCAL.md, wire values of DynamoDB Local 1.25.1 */
    { 400, 0, CORAL("ValidationException"), DDB_FATAL, "ValidationException" },
    { 400, 0, DDBT("ResourceNotFoundException"), DDB_NOT_FOUND, "ResourceNotFoundException" },
    { 400, 0, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ExpiredIteratorException\"}",
      DDB_EXPIRED_ITER, "ExpiredIteratorException" },
    { 400, 0, DDBT("TrimmedDataAccessException"), DDB_TRIMMED, "TrimmedDataAccessException" },
    { 500, 0, DDBT("InternalFailure"), DDB_RETRY, "InternalFailure" },
    { 400, 0, DDBT("UnrecognizedClientException"), DDB_AUTH, "UnrecognizedClientException" },
    /* AWS-AUTH §12.1: throttling codes */
    { 400, 0, DDBT("Throttling"), DDB_THROTTLED, "Throttling" },
    { 400, 0, DDBT("ThrottlingException"), DDB_THROTTLED, "ThrottlingException" },
    { 400, 0, DDBT("ThrottledException"), DDB_THROTTLED, "ThrottledException" },
    { 400, 0, DDBT("RequestThrottledException"), DDB_THROTTLED, "RequestThrottledException" },
    { 429, 0, DDBT("TooManyRequestsException"), DDB_THROTTLED, "TooManyRequestsException" },
    { 400, 0, DDBT("ProvisionedThroughputExceededException"), DDB_THROTTLED,
      "ProvisionedThroughputExceededException" },
    { 400, 0, DDBT("TransactionInProgressException"), DDB_THROTTLED,
      "TransactionInProgressException" },
    { 400, 0, DDBT("RequestLimitExceeded"), DDB_THROTTLED, "RequestLimitExceeded" },
    { 400, 0, DDBT("BandwidthLimitExceeded"), DDB_THROTTLED, "BandwidthLimitExceeded" },
    /* Also Streams' "Limit above 1000": the type cannot tell them apart. */
    { 400, 0, DDBT("LimitExceededException"), DDB_THROTTLED, "LimitExceededException" },
    { 400, 0, DDBT("RequestThrottled"), DDB_THROTTLED, "RequestThrottled" },
    { 503, 0, DDBT("SlowDown"), DDB_THROTTLED, "SlowDown" },
    { 400, 0, DDBT("PriorRequestNotComplete"), DDB_THROTTLED, "PriorRequestNotComplete" },
    { 400, 0, DDBT("EC2ThrottledException"), DDB_THROTTLED, "EC2ThrottledException" },
    /* transient */
    { 400, 0, DDBT("RequestTimeout"), DDB_RETRY, "RequestTimeout" },
    { 400, 0, DDBT("RequestTimeoutException"), DDB_RETRY, "RequestTimeoutException" },
    { 500, 0, DDBT("InternalServerError"), DDB_RETRY, "InternalServerError" },
    { 409, 0, DDBT("ReplicatedWriteConflictException"), DDB_RETRY,
      "ReplicatedWriteConflictException" },
    { 500, 0, NULL, DDB_RETRY, "" },
    { 502, 0, "<html>Bad Gateway</html>", DDB_RETRY, "" },
    { 503, 0, "", DDB_RETRY, "" },
    { 504, 0, NULL, DDB_RETRY, "" },
    { 0, -ECONNREFUSED, NULL, DDB_RETRY, "" },
    { 0, -ECONNRESET, NULL, DDB_RETRY, "" },
    { 0, -ETIMEDOUT, NULL, DDB_RETRY, "" },
    { 0, -EPROTO, NULL, DDB_RETRY, "" },
    { 0, -ECANCELED, NULL, DDB_FATAL, "" },
    { 0, -E2BIG, NULL, DDB_FATAL, "" },
    { 429, 0, NULL, DDB_THROTTLED, "" },
    /* credentials (AWS-AUTH §9) */
    { 400, 0, DDBT("ExpiredTokenException"), DDB_AUTH, "ExpiredTokenException" },
    { 403, 0, "{\"__type\":\"InvalidClientTokenId\"}", DDB_AUTH, "InvalidClientTokenId" },
    { 400, 0,
      "{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\",\"message\":"
      "\"Signature expired: 20150830T123600Z is now earlier than 20150830T124100Z\"}",
      DDB_AUTH, "InvalidSignatureException" },
    { 400, 0,
      "{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\",\"message\":"
      "\"The request signature we calculated does not match the signature you provided.\"}",
      DDB_FATAL, "InvalidSignatureException" },
    /* everything else is final */
    { 400, 0, "{\"__type\":\"com.amazon.coral.service#AccessDeniedException\",\"Message\":\"no\"}",
      DDB_FATAL, "AccessDeniedException" },
    { 400, 0, DDBT("ConditionalCheckFailedException"), DDB_FATAL,
      "ConditionalCheckFailedException" },
    { 400, 0, "{\"__type\":\"ValidationException:http://internal.amazon.com/coral/validate/\"}",
      DDB_FATAL, "ValidationException" },
    { 403, 0, "<html>Forbidden</html>", DDB_FATAL, "" },
    { 404, 0, NULL, DDB_FATAL, "" },
    /* success needs a JSON object */
    { 200, 0, "{}", DDB_OK, "" },
    { 200, 0, "{\"Records\":[]}", DDB_OK, "" },
    { 200, 0, "<html>captive portal</html>", DDB_RETRY, "" },
    { 200, 0, "", DDB_RETRY, "" },
    { 200, 0, "{\"Records\":[", DDB_RETRY, "" },
};

Test(ddb, classify_table)
{
    for (size_t i = 0; i < sizeof classify_cases / sizeof classify_cases[0]; i++) {
        const struct classify_case *k = &classify_cases[i];
        char type[64] = "junk";
        enum ddb_class got = ddb_classify(k->status, k->err, k->body, k->body ? strlen(k->body) : 0,
                                          type, sizeof type);

        cr_expect_eq(got, k->want, "case %zu (%ld %s): got %s, want %s", i, k->status,
                     k->body ? k->body : "-", ddb_class_name(got), ddb_class_name(k->want));
        cr_expect_str_eq(type, k->type, "case %zu: type \"%s\"", i, type);
    }
    close_all();
}

Test(ddb, classify_bounds_the_type_copy)
{
    char type[8];

    cr_assert_eq(ddb_classify(400, 0, DDBT("ExpiredIteratorException"),
                              strlen(DDBT("ExpiredIteratorException")), type, sizeof type),
                 DDB_EXPIRED_ITER);
    cr_assert_str_eq(type, "Expired");
    cr_assert_eq(ddb_classify(400, 0, DDBT("LimitExceededException"), 0, NULL, 0), DDB_FATAL,
                 "len 0 means no body");
    close_all();
}

/* ------------------------------------------------------------------------ */
/* endpoints                                                                */
/* ------------------------------------------------------------------------ */

struct endpoint_case {
    enum aws_service svc;
    const char *region;
    bool fips, dualstack;
    const char *override;
    const char *want; /* URL, or NULL for an error */
};

#define S AWS_STREAMS
#define D AWS_DYNAMODB
/* botocore tests/functional/endpoint-rules/{dynamodbstreams,dynamodb}/endpoint-tests-1.json */
static const struct endpoint_case endpoint_cases[] = {
    { S, "us-east-1", true, true, NULL, "https://streams-dynamodb-fips.us-east-1.api.aws" },
    { S, "us-east-1", true, false, NULL, "https://streams.dynamodb-fips.us-east-1.amazonaws.com" },
    { S, "us-east-1", false, true, NULL, "https://streams-dynamodb.us-east-1.api.aws" },
    { S, "us-east-1", false, false, NULL, "https://streams.dynamodb.us-east-1.amazonaws.com" },
    { S, "cn-northwest-1", true, true, NULL,
      "https://streams-dynamodb-fips.cn-northwest-1.api.amazonwebservices.com.cn" },
    { S, "cn-northwest-1", true, false, NULL,
      "https://streams.dynamodb-fips.cn-northwest-1.amazonaws.com.cn" },
    { S, "cn-northwest-1", false, true, NULL,
      "https://streams-dynamodb.cn-northwest-1.api.amazonwebservices.com.cn" },
    { S, "cn-northwest-1", false, false, NULL,
      "https://streams.dynamodb.cn-northwest-1.amazonaws.com.cn" },
    { S, "eusc-de-east-1", true, false, NULL,
      "https://streams.dynamodb-fips.eusc-de-east-1.amazonaws.eu" },
    { S, "eusc-de-east-1", false, false, NULL, "https://streams.dynamodb.eusc-de-east-1.amazonaws.eu" },
    { S, "us-iso-east-1", true, false, NULL, "https://streams.dynamodb-fips.us-iso-east-1.c2s.ic.gov" },
    { S, "us-iso-east-1", false, false, NULL, "https://streams.dynamodb.us-iso-east-1.c2s.ic.gov" },
    { S, "us-isob-east-1", true, false, NULL,
      "https://streams.dynamodb-fips.us-isob-east-1.sc2s.sgov.gov" },
    { S, "us-isob-east-1", false, false, NULL, "https://streams.dynamodb.us-isob-east-1.sc2s.sgov.gov" },
    { S, "eu-isoe-west-1", true, false, NULL,
      "https://streams.dynamodb-fips.eu-isoe-west-1.cloud.adc-e.uk" },
    { S, "eu-isoe-west-1", false, false, NULL, "https://streams.dynamodb.eu-isoe-west-1.cloud.adc-e.uk" },
    { S, "us-isof-south-1", true, false, NULL,
      "https://streams.dynamodb-fips.us-isof-south-1.csp.hci.ic.gov" },
    { S, "us-isof-south-1", false, false, NULL,
      "https://streams.dynamodb.us-isof-south-1.csp.hci.ic.gov" },
    { S, "us-gov-west-1", true, true, NULL, "https://streams-dynamodb-fips.us-gov-west-1.api.aws" },
    /* GovCloud's regular host is FIPS already */
    { S, "us-gov-west-1", true, false, NULL, "https://streams.dynamodb.us-gov-west-1.amazonaws.com" },
    { S, "us-gov-west-1", false, true, NULL, "https://streams-dynamodb.us-gov-west-1.api.aws" },
    { S, "us-gov-west-1", false, false, NULL, "https://streams.dynamodb.us-gov-west-1.amazonaws.com" },
    /* dual-stack outside aws, aws-cn and aws-us-gov keeps the dot */
    { S, "us-iso-east-1", false, true, NULL, "https://streams.dynamodb.us-iso-east-1.api.aws.ic.gov" },
    { S, NULL, false, false, "https://example.com", "https://example.com" },
    { S, "us-east-1", true, false, "https://example.com", NULL },
    { S, "us-east-1", false, true, "https://example.com", NULL },
    { S, NULL, false, false, NULL, NULL },
    { S, "", false, false, NULL, NULL },

    { D, "us-east-1", false, false, NULL, "https://dynamodb.us-east-1.amazonaws.com" },
    { D, "us-east-1", true, false, NULL, "https://dynamodb-fips.us-east-1.amazonaws.com" },
    { D, "us-east-1", true, true, NULL, "https://dynamodb-fips.us-east-1.api.aws" },
    { D, "us-east-1", false, true, NULL, "https://dynamodb.us-east-1.api.aws" },
    { D, "ca-central-1", true, false, NULL, "https://dynamodb-fips.ca-central-1.amazonaws.com" },
    { D, "eu-west-3", false, false, NULL, "https://dynamodb.eu-west-3.amazonaws.com" },
    { D, "cn-north-1", false, false, NULL, "https://dynamodb.cn-north-1.amazonaws.com.cn" },
    { D, "cn-north-1", true, true, NULL,
      "https://dynamodb-fips.cn-north-1.api.amazonwebservices.com.cn" },
    { D, "cn-north-1", true, false, NULL, "https://dynamodb-fips.cn-north-1.amazonaws.com.cn" },
    { D, "cn-north-1", false, true, NULL, "https://dynamodb.cn-north-1.api.amazonwebservices.com.cn" },
    { D, "us-gov-east-1", false, false, NULL, "https://dynamodb.us-gov-east-1.amazonaws.com" },
    { D, "us-gov-east-1", true, false, NULL, "https://dynamodb.us-gov-east-1.amazonaws.com" },
    { D, "us-gov-west-1", true, false, NULL, "https://dynamodb.us-gov-west-1.amazonaws.com" },
    { D, "us-gov-east-1", true, true, NULL, "https://dynamodb-fips.us-gov-east-1.api.aws" },
    { D, "us-gov-east-1", false, true, NULL, "https://dynamodb.us-gov-east-1.api.aws" },
    { D, "us-iso-west-1", false, false, NULL, "https://dynamodb.us-iso-west-1.c2s.ic.gov" },
    { D, "us-iso-east-1", true, false, NULL, "https://dynamodb-fips.us-iso-east-1.c2s.ic.gov" },
    { D, "us-isob-east-1", true, false, NULL, "https://dynamodb-fips.us-isob-east-1.sc2s.sgov.gov" },
    { D, "local", false, false, NULL, "http://localhost:8000" },
    { D, "local", true, false, NULL, NULL },
    { D, "us-east-1", false, false, "https://example.com", "https://example.com" },
    { D, NULL, false, false, "https://example.com", "https://example.com" },
    { D, "us-east-1", true, false, "https://example.com", NULL },
    { D, "us-east-1", false, true, "https://example.com", NULL },
    { D, NULL, false, false, NULL, NULL },
    /* ours: the override's trailing '/' goes, bad input is refused */
    { D, "us-east-1", false, false, "http://127.0.0.1:8000/", "http://127.0.0.1:8000" },
    { D, "us-east-1", false, false, "127.0.0.1:8000", NULL },
    { D, "us-east-1", false, false, "http:///x", NULL },
    { D, "us-east-1", false, false, "http://a b", NULL },
    { D, "us-east-1.evil.com/x", false, false, NULL, NULL },
    { S, "us_east_1", false, false, NULL, NULL },
};
#undef S
#undef D

Test(endpoint, table)
{
    for (size_t i = 0; i < sizeof endpoint_cases / sizeof endpoint_cases[0]; i++) {
        const struct endpoint_case *k = &endpoint_cases[i];
        struct endpoint_in in = { .svc = k->svc, .region = k->region, .override = k->override,
                                  .use_fips = k->fips, .use_dualstack = k->dualstack };
        struct endpoint_out out;
        int rc = endpoint_resolve(&in, &out);

        if (k->want) {
            cr_expect_eq(rc, 0, "case %zu (%s): %s", i, k->region ? k->region : "-",
                         rc ? out.error : "");
            if (rc == 0)
                cr_expect_str_eq(out.url, k->want, "case %zu", i);
        } else {
            cr_expect_eq(rc, -EINVAL, "case %zu (%s) should fail, got %s", i,
                         k->region ? k->region : "-", rc == 0 ? out.url : "?");
            cr_expect(rc != -EINVAL || (out.error && *out.error), "case %zu: no reason", i);
        }
    }
}

Test(endpoint, errors_say_why)
{
    struct endpoint_in in = { .svc = AWS_STREAMS, .override = "https://example.com", .use_fips = true };
    struct endpoint_out out;

    cr_assert_eq(endpoint_resolve(&in, &out), -EINVAL);
    cr_assert_str_eq(out.error, "Invalid Configuration: FIPS and custom endpoint are not supported");
    in = (struct endpoint_in){ .svc = AWS_STREAMS };
    cr_assert_eq(endpoint_resolve(&in, &out), -EINVAL);
    cr_assert_str_eq(out.error, "Invalid Configuration: Missing Region");
}

/* A fake environment for the lookups. */
static const char *const *fake_env;

static char *env_lookup(const char *name)
{
    for (size_t i = 0; fake_env && fake_env[i]; i += 2)
        if (strcmp(fake_env[i], name) == 0)
            return (char *)fake_env[i + 1];
    return NULL;
}

static void resolve_env(enum aws_service svc, const char *override, struct endpoint_out *out,
                        int want_rc)
{
    struct endpoint_in in = {
        .svc = svc, .region = "eu-west-1", .override = override, .getenv = env_lookup };

    cr_assert_eq(endpoint_resolve(&in, out), want_rc, "%s", want_rc == 0 && out->error ? out->error : "");
}

Test(endpoint, environment_precedence)
{
    static const char *const both[] = { "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "http://127.0.0.1:1/",
                                        "AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2",
                                        "AWS_ENDPOINT_URL", "http://127.0.0.1:3", NULL };
    static const char *const global[] = { "AWS_ENDPOINT_URL", "http://127.0.0.1:3", NULL };
    static const char *const ignored[] = { "AWS_ENDPOINT_URL", "http://127.0.0.1:3",
                                           "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE", NULL };
    static const char *const empty[] = { "AWS_ENDPOINT_URL_DYNAMODB_STREAMS", "",
                                         "AWS_ENDPOINT_URL", "http://127.0.0.1:3", NULL };
    struct endpoint_out out;

    fake_env = both;
    resolve_env(AWS_STREAMS, NULL, &out, 0);
    cr_assert_str_eq(out.url, "http://127.0.0.1:1");
    cr_assert_str_eq(out.source, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS");
    resolve_env(AWS_DYNAMODB, NULL, &out, 0);
    cr_assert_str_eq(out.url, "http://127.0.0.1:2");
    cr_assert_str_eq(out.source, "AWS_ENDPOINT_URL_DYNAMODB");
    resolve_env(AWS_STREAMS, "http://10.0.0.1:8000", &out, 0); /* [aws] endpoint wins */
    cr_assert_str_eq(out.url, "http://10.0.0.1:8000");
    cr_assert_str_eq(out.source, "config");

    fake_env = global;
    resolve_env(AWS_STREAMS, NULL, &out, 0);
    cr_assert_str_eq(out.url, "http://127.0.0.1:3");
    resolve_env(AWS_DYNAMODB, NULL, &out, 0);
    cr_assert_str_eq(out.source, "AWS_ENDPOINT_URL");

    fake_env = empty;
    resolve_env(AWS_STREAMS, NULL, &out, 0);
    cr_assert_str_eq(out.source, "AWS_ENDPOINT_URL", "an empty variable counts as unset");

    fake_env = ignored;
    resolve_env(AWS_STREAMS, NULL, &out, 0);
    cr_assert_str_eq(out.url, "https://streams.dynamodb.eu-west-1.amazonaws.com");
    cr_assert_str_eq(out.source, "regional");
}

Test(endpoint, environment_endpoint_with_fips_is_an_error)
{
    static const char *const env[] = { "AWS_ENDPOINT_URL", "http://127.0.0.1:3", NULL };
    struct endpoint_in in = { .svc = AWS_STREAMS, .region = "us-east-1", .use_fips = true,
                              .getenv = env_lookup };
    struct endpoint_out out;

    fake_env = env;
    cr_assert_eq(endpoint_resolve(&in, &out), -EINVAL);
}

Test(endpoint, partitions)
{
    cr_assert_str_eq(endpoint_partition("us-east-1"), "aws");
    cr_assert_str_eq(endpoint_partition("cn-north-1"), "aws-cn");
    cr_assert_str_eq(endpoint_partition("us-gov-west-1"), "aws-us-gov");
    cr_assert_str_eq(endpoint_partition("us-isob-east-1"), "aws-iso-b");
    cr_assert_str_eq(endpoint_partition("eusc-de-east-1"), "aws-eusc");
    cr_assert_str_eq(endpoint_partition("aws-cn-global"), "aws-cn");
    cr_assert_str_eq(endpoint_partition("mars-north-9"), "aws", "unknown names fall back to aws");
}

/* ------------------------------------------------------------------------ */
/* a credentials callback for the tests below                               */
/* ------------------------------------------------------------------------ */

struct got_key {
    int calls, err;
    char id[64], secret[64], token[64];
};

static void on_key(const struct sigv4_key *key, int err, void *arg)
{
    struct got_key *g = arg;

    g->calls++;
    g->err = err;
    if (key) {
        snprintf(g->id, sizeof g->id, "%s", key->access_key_id);
        snprintf(g->secret, sizeof g->secret, "%s", key->secret_access_key);
        snprintf(g->token, sizeof g->token, "%s", key->session_token ? key->session_token : "");
    }
}

/* The creds suite itself is in test_creds.c. */

/* ------------------------------------------------------------------------ */
/* ddb_call against the fake server                                         */
/* ------------------------------------------------------------------------ */

static uv_loop_t loop;
static struct fakehttp *fake;
static struct http *http;
static struct creds *creds;
static struct aws *aws;
static int rng_calls;
static double rng_value = 0.02;

static double test_rng(void)
{
    rng_calls++;
    return rng_value;
}

static time_t test_clock(void)
{
    return 1795329420; /* 2026-11-22T06:37:00Z */
}

/* Replies kept past their callback, released by close_all. */
static json_t *kept[8];
static size_t nkept;

struct result {
    bool done;
    int calls;
    enum ddb_class cls;
    int err, attempts, throttled;
    long status, waited_ms;
    char type[64], message[256];
    json_t *json;
};

static void on_done(const struct ddb_reply *rep, void *arg)
{
    struct result *r = arg;

    r->calls++;
    r->done = true;
    r->cls = rep->cls;
    r->err = rep->err;
    r->status = rep->status;
    r->attempts = rep->attempts;
    r->throttled = rep->throttled;
    r->waited_ms = rep->waited_ms;
    snprintf(r->type, sizeof r->type, "%s", rep->type);
    snprintf(r->message, sizeof r->message, "%s", rep->message);
    if (rep->json && nkept < sizeof kept / sizeof kept[0])
        r->json = kept[nkept++] = json_incref(rep->json); /* released by close_all */
}

static void run_until(struct result *r)
{
    while (!r->done && uv_run(&loop, UV_RUN_ONCE))
        ;
    cr_assert(r->done, "the loop ran dry before the callback");
}

/* Runs the loop until the fake has seen n requests: for replies that never
 * come (FAKE_HANG), where UV_RUN_ONCE would block. */
static void pump_until_nreq(size_t n)
{
    for (int i = 0; i < 500 && fake_nreq(fake) < n; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        fake_wait_nreq(fake, n, 10);
    }
    cr_assert_geq(fake_nreq(fake), n);
}

static void setup_loop(void)
{
    struct aws_opts o = { .region = "eu-west-1" };

    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
    unsetenv("AWS_SESSION_TOKEN");
    cr_assert_eq(uv_loop_init(&loop), 0);
    fake = fake_start();
    http = http_new(&loop, NULL);
    cr_assert_not_null(http);
    creds = creds_new(&loop, http, NULL);
    cr_assert_not_null(creds);
    o.endpoint_dynamodb = o.endpoint_streams = fake_url(fake);
    aws = aws_new(&loop, http, creds, &o);
    cr_assert_not_null(aws);
    backoff_set_rng(test_rng);
    aws_set_clock(aws, test_clock);
}

static void on_http_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Frees everything; the loop must then hold nothing. */
static void close_all(void)
{
    bool closed = false;

    while (nkept)
        json_decref(kept[--nkept]);
    aws_free(aws);
    aws = NULL;
    creds_free(creds);
    creds = NULL;
    http_close(http, on_http_closed, &closed);
    http = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&loop), 0, "handles left open on the loop");
}

static void teardown_loop(void)
{
    backoff_set_rng(NULL);
    if (fake)
        fake_stop(fake);
    fake = NULL;
}

TestSuite(ddb, .init = setup_loop, .fini = teardown_loop, .timeout = 20);

#define ERR(t) "{\"__type\":\"com.amazonaws.dynamodb.v20120810#" t "\",\"message\":\"Rate exceeded\"}"

static void start(enum aws_service svc, const char *op, struct result *r,
                  const struct ddb_call_opts *opts)
{
    json_t *body = json_pack("{s:s, s:i}", "ShardIterator", "it-1", "Limit", 1000);

    cr_assert_not_null(ddb_call(aws, svc, op, body, on_done, r, opts));
}

Test(ddb, throttled_then_5xx_then_success)
{
    struct result r = { 0 };
    uint64_t t0 = uv_now(&loop);

    fake_reply(fake, 400, ERR("ThrottlingException"));
    fake_reply(fake, 500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}");
    fake_reply(fake, 200, "{\"Records\":[],\"NextShardIterator\":\"it-2\"}");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    cr_assert_eq(r.calls, 0, "the callback never runs inside ddb_call");
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK, "%s %s", ddb_class_name(r.cls), r.message);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(r.throttled, 1, "the throttled attempt is reported (metrics count it)");
    cr_assert_eq(fake_nreq(fake), 3);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "NextShardIterator")), "it-2");
    /* throttling: 0.02 x 1 s; then transient, retry 2: 0.02 x 50 ms */
    cr_assert_eq(rng_calls, 2);
    cr_assert_eq(r.waited_ms, 20 + 1);
    uv_update_time(&loop);
    cr_assert_geq(uv_now(&loop) - t0, 20);
    cr_assert_eq(aws_retry_quota(aws), 500 - 5 - 14 + 14, "the last retry's cost is refunded");
    close_all();
}

Test(ddb, limit_exceeded_gives_up_after_four_attempts)
{
    struct result r = { 0 };

    for (int i = 0; i < 5; i++)
        fake_reply(fake, 400, ERR("LimitExceededException"));
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_THROTTLED);
    cr_assert_str_eq(r.type, "LimitExceededException");
    cr_assert_str_eq(r.message, "Rate exceeded");
    cr_assert_eq(r.status, 400);
    cr_assert_eq(r.attempts, 4);
    cr_assert_eq(fake_nreq(fake), 4);
    cr_assert_eq(r.waited_ms, 20 + 40 + 80, "1 s base doubling, scaled by the RNG");
    cr_assert_eq(aws_retry_quota(aws), 500 - 3 * 5);
    close_all();
}

Test(ddb, max_attempts_per_call)
{
    struct result r = { 0 };
    struct ddb_call_opts o = { .max_attempts = 1 };

    fake_reply(fake, 500, NULL);
    start(AWS_STREAMS, "GetRecords", &r, &o);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_RETRY);
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.status, 500);
    close_all();
}

Test(ddb, validation_error_is_not_retried)
{
    struct result r = { 0 };

    fake_reply(fake, 400, "{\"__type\":\"com.amazon.coral.validate#ValidationException\","
                          "\"message\":\"Invalid ShardIterator\"}");
    fake_reply(fake, 200, "{}");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_FATAL);
    cr_assert_str_eq(r.type, "ValidationException");
    cr_assert_str_eq(r.message, "Invalid ShardIterator");
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(fake_nreq(fake), 1);
    cr_assert_null(r.json);
    close_all();
}

Test(ddb, expired_iterator_is_not_retried)
{
    struct result r = { 0 };

    fake_reply(fake, 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ExpiredIteratorException\"}");
    fake_reply(fake, 200, "{}");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_EXPIRED_ITER);
    cr_assert_str_eq(r.message, "");
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(fake_nreq(fake), 1);
    close_all();
}

Test(ddb, retry_after_header_is_honoured)
{
    struct result r = { 0 };
    struct fake_reply slow = { .status = 503, .headers = "x-amz-retry-after: 150\r\n",
                               .body = "{\"__type\":\"ServiceUnavailable\"}" };
    uint64_t t0 = uv_now(&loop);

    fake_reply_ex(fake, &slow);
    fake_reply(fake, 200, "{}");
    start(AWS_DYNAMODB, "DescribeTable", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK);
    cr_assert_eq(r.attempts, 2);
    cr_assert_eq(r.waited_ms, 150, "max(backoff 0.5 ms, min(150 ms, backoff + 5 s))");
    uv_update_time(&loop);
    cr_assert_geq(uv_now(&loop) - t0, 150);
    close_all();
}

static void always_throttle(const struct fake_req *req, struct fake_reply *out, void *arg)
{
    out->status = 400;
    out->body = ERR("ProvisionedThroughputExceededException");
}

Test(ddb, retry_quota_runs_dry)
{
    struct result r = { 0 }, r2 = { 0 };
    struct ddb_call_opts many = { .max_attempts = 1000 };

    rng_value = 0; /* no waiting */
    fake_set_handler(fake, always_throttle, NULL);
    start(AWS_DYNAMODB, "PutItem", &r, &many);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_THROTTLED);
    cr_assert_eq(r.attempts, 1 + 500 / 5, "500 tokens pay for 100 throttling retries");
    cr_assert_eq(aws_retry_quota(aws), 0);

    /* Dry: the next failure comes back at once. */
    start(AWS_DYNAMODB, "PutItem", &r2, NULL);
    run_until(&r2);
    cr_assert_eq(r2.cls, DDB_THROTTLED);
    cr_assert_eq(r2.attempts, 1);
    close_all();
}

Test(ddb, quota_refills_on_success)
{
    struct result r = { 0 }, r2 = { 0 };

    aws_set_retry_quota(aws, 20);
    fake_reply(fake, 500, NULL);
    fake_reply(fake, 500, NULL);
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_RETRY);
    cr_assert_eq(r.attempts, 2, "20 tokens pay for one 14-token retry");
    cr_assert_eq(aws_retry_quota(aws), 6);

    fake_reply(fake, 200, "{}");
    start(AWS_STREAMS, "GetRecords", &r2, NULL);
    run_until(&r2);
    cr_assert_eq(r2.cls, DDB_OK);
    cr_assert_eq(aws_retry_quota(aws), 7, "a first-attempt success returns one token");
    close_all();
}

static void auth_field(size_t i, struct sigv4_authz *az)
{
    const struct fake_req *q = fake_req(fake, i);
    const char *v;

    cr_assert_not_null(q);
    v = fake_req_header(fake, q, "Authorization");
    cr_assert_not_null(v);
    cr_assert_eq(sigv4_parse_authorization(v, az), 0, "%s", v);
}

Test(ddb, expired_token_renews_credentials_and_retries_once)
{
    struct result r = { 0 };
    struct got_key g = { 0 };
    struct sigv4_authz az;

    setenv("AWS_ACCESS_KEY_ID", "AKIDOLD", 1);
    cr_assert_eq(creds_get(creds, on_key, &g), 0); /* cached now */
    setenv("AWS_ACCESS_KEY_ID", "AKIDNEW", 1);
    fake_reply(fake, 400, "{\"__type\":\"com.amazon.coral.service#ExpiredTokenException\","
                          "\"message\":\"The security token included in the request is expired\"}");
    fake_reply(fake, 200, "{}");
    start(AWS_DYNAMODB, "DescribeTable", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK);
    cr_assert_eq(r.attempts, 2);
    cr_assert_eq(r.waited_ms, 0, "immediately");
    auth_field(0, &az);
    cr_assert_str_eq(az.access_key_id, "AKIDOLD");
    auth_field(1, &az);
    cr_assert_str_eq(az.access_key_id, "AKIDNEW", "the retry is signed with the renewed key");
    close_all();
}

Test(ddb, auth_error_twice_is_returned)
{
    struct result r = { 0 };

    for (int i = 0; i < 3; i++)
        fake_reply(fake, 400, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
                              "UnrecognizedClientException\",\"message\":\"The Access Key ID "
                              "or security token is invalid.\"}");
    start(AWS_DYNAMODB, "DescribeTable", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_AUTH);
    cr_assert_eq(r.attempts, 2, "one retry with fresh credentials, no more");
    cr_assert_eq(fake_nreq(fake), 2);
    close_all();
}

Test(ddb, missing_credentials)
{
    struct result r = { 0 };

    unsetenv("AWS_ACCESS_KEY_ID");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_AUTH);
    cr_assert_eq(r.err, -ENOKEY);
    cr_assert(strncmp(r.message, "no AWS credentials found (tried: environment, ", 46) == 0, "%s",
              r.message);
    cr_assert_eq(fake_nreq(fake), 0);
    close_all();
}

Test(ddb, request_is_signed_json_1_0)
{
    struct result r = { 0 }, r2 = { 0 };
    const struct fake_req *q;
    struct sigv4_authz az;

    fake_reply(fake, 200, "{}");
    fake_reply(fake, 200, "{}");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    start(AWS_DYNAMODB, "DescribeTable", &r2, NULL);
    run_until(&r2);
    cr_assert_eq(r2.cls, DDB_OK);

    q = fake_req(fake, 0);
    cr_assert_str_eq(q->method, "POST");
    cr_assert_str_eq(q->path, "/");
    cr_assert_str_eq(fake_req_header(fake, q, "X-Amz-Target"), "DynamoDBStreams_20120810.GetRecords");
    cr_assert_str_eq(fake_req_header(fake, q, "Content-Type"), "application/x-amz-json-1.0");
    cr_assert_str_eq(fake_req_header(fake, q, "X-Amz-Date"), "20261122T063700Z");
    cr_assert_str_eq(q->body, "{\"ShardIterator\":\"it-1\",\"Limit\":1000}");
    auth_field(0, &az);
    cr_assert_str_eq(az.access_key_id, "AKIDEXAMPLE");
    cr_assert_str_eq(az.date, "20261122");
    cr_assert_str_eq(az.region, "eu-west-1");
    cr_assert_str_eq(az.service, "dynamodb", "Streams signs as dynamodb too");
    cr_assert(strstr(az.signed_headers, "x-amz-target"), "%s", az.signed_headers);

    q = fake_req(fake, 1);
    cr_assert_str_eq(fake_req_header(fake, q, "X-Amz-Target"), "DynamoDB_20120810.DescribeTable");
    auth_field(1, &az);
    cr_assert_str_eq(az.service, "dynamodb");
    close_all();
}

Test(ddb, dropped_connection_is_retried)
{
    struct result r = { 0 };
    struct fake_reply drop = { .action = FAKE_DROP };

    fake_reply_ex(fake, &drop);
    fake_reply(fake, 200, "{}");
    start(AWS_STREAMS, "GetRecords", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK);
    cr_assert_eq(r.attempts, 2);
    close_all();
}

Test(ddb, non_json_success_and_bad_crc_are_retried)
{
    struct result r = { 0 };
    char hdr[64];
    struct fake_reply bad_crc = { .status = 200, .headers = "x-amz-crc32: 12345\r\n", .body = "{}" };
    struct fake_reply good_crc = { .status = 200, .headers = hdr, .body = "{\"a\":1}" };

    snprintf(hdr, sizeof hdr, "x-amz-crc32: %lu\r\n", crc32(0L, (const Bytef *)"{\"a\":1}", 7));
    fake_reply(fake, 200, "<html>proxy</html>");
    fake_reply_ex(fake, &bad_crc);
    fake_reply_ex(fake, &good_crc);
    start(AWS_DYNAMODB, "GetItem", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK);
    cr_assert_eq(r.attempts, 3);
    cr_assert_eq(json_integer_value(json_object_get(r.json, "a")), 1);
    close_all();
}

/* A 2xx whose body matches its x-amz-crc32 is exactly what the service sent
 * (the SDKs check the CRC for this: AWS-AUTH §12): when it cannot be read,
 * sending the call again gets the same bytes.  It comes back at once as
 * DDB_BAD_REPLY with what was wrong, and spends none of the retry quota that
 * every other call of the process shares. */
Test(ddb, an_unreadable_reply_the_service_sent_is_not_retried_and_spends_no_quota)
{
    static const char body[] = "{\"Responses\":{\"t\":[{\"k\":{\"S\":\"a\\u0000\"}}]";
    struct result r = { 0 };
    char hdr[64];
    struct fake_reply bad = { .status = 200, .headers = hdr, .body = body };

    snprintf(hdr, sizeof hdr, "x-amz-crc32: %lu\r\n",
             crc32(0L, (const Bytef *)body, (uInt)strlen(body)));
    for (int i = 0; i < 4; i++)
        fake_reply_ex(fake, &bad);
    start(AWS_DYNAMODB, "BatchGetItem", &r, NULL);
    run_until(&r);
    cr_assert_eq(r.cls, DDB_BAD_REPLY, "%s", ddb_class_name(r.cls));
    cr_assert_eq(r.attempts, 1, "not sent again");
    cr_assert_eq(fake_nreq(fake), 1);
    cr_assert_eq(aws_retry_quota(aws), 500, "no token spent");
    cr_assert_not_null(strstr(r.message, "not JSON"), "says what is wrong: %s", r.message);
    cr_assert_not_null(strstr(r.message, "byte"), "and where: %s", r.message);
    close_all();
}

Test(ddb, cancel_runs_the_callback_before_returning)
{
    struct result r = { 0 };
    struct fake_reply hang = { .action = FAKE_HANG };
    struct ddb_call *c;

    fake_reply_ex(fake, &hang);
    c = ddb_call(aws, AWS_STREAMS, "GetRecords", json_object(), on_done, &r, NULL);
    cr_assert_not_null(c);
    pump_until_nreq(1);
    ddb_cancel(c);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.cls, DDB_FATAL);
    cr_assert_eq(r.err, -ECANCELED);
    close_all();
    cr_assert_eq(r.calls, 1);
}

Test(ddb, aws_free_cancels_calls_in_flight)
{
    struct result r[3] = { { 0 } };
    struct fake_reply hang = { .action = FAKE_HANG };
    struct fake_reply later = { .status = 500, .headers = "x-amz-retry-after: 5000\r\n" };

    fake_reply_ex(fake, &hang);
    fake_reply_ex(fake, &later);
    start(AWS_STREAMS, "GetRecords", &r[0], NULL); /* in flight */
    pump_until_nreq(1);
    start(AWS_STREAMS, "GetRecords", &r[1], NULL); /* waits 5 s in backoff */
    for (int i = 0; i < 500 && aws_retry_quota(aws) == 500; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        fake_wait_nreq(fake, 3, 10);
    }
    cr_assert_eq(aws_retry_quota(aws), 500 - 14);
    start(AWS_STREAMS, "GetRecords", &r[2], NULL); /* not started yet */
    close_all();
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1, "call %d", i);
        cr_assert_eq(r[i].err, -ECANCELED, "call %d", i);
    }
}

Test(ddb, bad_arguments)
{
    struct result r = { 0 };
    char want[128];

    cr_assert_null(ddb_call(aws, AWS_STREAMS, "", json_object(), on_done, &r, NULL));
    cr_assert_null(ddb_call(aws, (enum aws_service)7, "GetRecords", json_object(), on_done, &r,
                            NULL));
    cr_assert_null(ddb_call(aws, AWS_STREAMS, "GetRecords", json_object(), NULL, &r, NULL));
    snprintf(want, sizeof want, "%s/", fake_url(fake));
    cr_assert_str_eq(aws_endpoint(aws, AWS_STREAMS), want);
    cr_assert_str_eq(aws_region(aws), "eu-west-1");
    close_all();
    cr_assert_eq(r.calls, 0);
}

/* ------------------------------------------------------------------------ */
/* against DynamoDB Local (DDB2ES_TEST_DDB_ENDPOINT=http://127.0.0.1:PORT)  */
/* ------------------------------------------------------------------------ */

static json_t *call_sync(enum aws_service svc, const char *op, json_t *body)
{
    struct result r = { 0 };

    cr_assert_not_null(ddb_call(aws, svc, op, body, on_done, &r, NULL));
    run_until(&r);
    cr_assert_eq(r.cls, DDB_OK, "%s: %s %s: %s", op, ddb_class_name(r.cls), r.type, r.message);
    json_incref(r.json);
    while (nkept) /* the caller owns its reference */
        json_decref(kept[--nkept]);
    return r.json;
}

static const char *jpath(json_t *root, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(root, a), b));
}

Test(ddb, dynamodb_local_stream_roundtrip, .timeout = 60)
{
    const char *ep = getenv("DDB2ES_TEST_DDB_ENDPOINT");
    struct aws_opts o = { .region = "us-east-1" };
    char table[64];
    json_t *rep, *shards, *img, *recs = NULL;
    char *arn, *shard, *iter;

    if (!ep || !*ep) {
        close_all();
        cr_skip_test("DDB2ES_TEST_DDB_ENDPOINT is not set (start DynamoDB Local and point it there)");
    }
    aws_free(aws);
    setenv("AWS_ACCESS_KEY_ID", "local", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "local", 1);
    creds_invalidate(creds);
    o.endpoint_dynamodb = o.endpoint_streams = ep;
    aws = aws_new(&loop, http, creds, &o);
    cr_assert_not_null(aws);
    snprintf(table, sizeof table, "ddbtest%ld%d", (long)time(NULL), (int)getpid());

    rep = call_sync(AWS_DYNAMODB, "CreateTable",
                    json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:s}], s:s, s:{s:b, s:s}}",
                              "TableName", table, "KeySchema", "AttributeName", "pk", "KeyType",
                              "HASH", "AttributeDefinitions", "AttributeName", "pk",
                              "AttributeType", "S", "BillingMode", "PAY_PER_REQUEST",
                              "StreamSpecification", "StreamEnabled", 1, "StreamViewType",
                              "NEW_AND_OLD_IMAGES"));
    json_decref(rep);
    rep = call_sync(AWS_DYNAMODB, "PutItem",
                    json_pack("{s:s, s:{s:{s:s}, s:{s:s}}}", "TableName", table, "Item", "pk", "S",
                              "k1", "v", "S", "hello"));
    json_decref(rep);

    rep = call_sync(AWS_DYNAMODB, "DescribeTable", json_pack("{s:s}", "TableName", table));
    cr_assert_not_null(jpath(rep, "Table", "LatestStreamArn"));
    arn = strdup(jpath(rep, "Table", "LatestStreamArn"));
    json_decref(rep);

    rep = call_sync(AWS_STREAMS, "DescribeStream", json_pack("{s:s}", "StreamArn", arn));
    shards = json_object_get(json_object_get(rep, "StreamDescription"), "Shards");
    cr_assert_geq(json_array_size(shards), 1);
    shard = strdup(json_string_value(json_object_get(json_array_get(shards, 0), "ShardId")));
    json_decref(rep);

    rep = call_sync(AWS_STREAMS, "GetShardIterator",
                    json_pack("{s:s, s:s, s:s}", "StreamArn", arn, "ShardId", shard,
                              "ShardIteratorType", "TRIM_HORIZON"));
    iter = strdup(json_string_value(json_object_get(rep, "ShardIterator")));
    json_decref(rep);

    for (int i = 0; i < 10 && json_array_size(recs) == 0; i++) {
        json_decref(recs);
        rep = call_sync(AWS_STREAMS, "GetRecords", json_pack("{s:s}", "ShardIterator", iter));
        recs = json_incref(json_object_get(rep, "Records"));
        free(iter);
        iter = json_string_value(json_object_get(rep, "NextShardIterator"))
                   ? strdup(json_string_value(json_object_get(rep, "NextShardIterator")))
                   : NULL;
        json_decref(rep);
        cr_assert_not_null(iter);
    }
    cr_assert_eq(json_array_size(recs), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(recs, 0), "eventName")),
                     "INSERT");
    img = json_object_get(json_object_get(json_array_get(recs, 0), "dynamodb"), "NewImage");
    cr_assert_not_null(jpath(img, "v", "S"), "no NewImage.v in the record");
    cr_assert_str_eq(jpath(img, "v", "S"), "hello");
    cr_assert_str_eq(jpath(img, "pk", "S"), "k1");
    json_decref(recs);

    json_decref(call_sync(AWS_DYNAMODB, "DeleteTable", json_pack("{s:s}", "TableName", table)));
    free(arn);
    free(shard);
    free(iter);
    close_all();
}
