/* ddbctl — a tiny DynamoDB JSON API client for the demo and the tests.
 *
 *   ddbctl ENDPOINT OPERATION [JSON]      e.g.
 *   ddbctl http://127.0.0.1:8000 PutItem '{"TableName":"posts","Item":{...}}'
 *
 * Signs with SigV4 (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
 * region from AWS_REGION, default us-east-1), prints the response body, and
 * exits 0 on HTTP 2xx, 1 otherwise.  Operations of DynamoDB Streams
 * (DescribeStream, GetShardIterator, GetRecords, ListStreams) get the
 * Streams target prefix.  Blocking, for tools and tests only. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/buf.h"
#include "aws/sigv4.h"

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
    static const char *const streams_ops[] = { "DescribeStream", "GetShardIterator", "GetRecords",
                                               "ListStreams" };
    const char *endpoint, *op, *body;
    const char *prefix = "DynamoDB_20120810";
    char target[128], host[256], hdr[4][1024];
    struct sigv4_key key;
    struct sigv4_output out;
    struct curl_slist *hl = NULL;
    struct buf resp;
    const char *h, *e;
    long status = 0;
    CURL *c;
    int rc;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: ddbctl ENDPOINT OPERATION [JSON]\n");
        return 64;
    }
    endpoint = argv[1];
    op = argv[2];
    body = argc == 4 ? argv[3] : "{}";
    for (size_t i = 0; i < sizeof(streams_ops) / sizeof(*streams_ops); i++)
        if (strcmp(op, streams_ops[i]) == 0)
            prefix = "DynamoDBStreams_20120810";
    snprintf(target, sizeof(target), "%s.%s", prefix, op);
    h = strstr(endpoint, "://");
    h = h ? h + 3 : endpoint;
    e = h + strcspn(h, "/");
    snprintf(host, sizeof(host), "%.*s", (int)(e - h), h);

    key.access_key_id = env_or("AWS_ACCESS_KEY_ID", "local");
    key.secret_access_key = env_or("AWS_SECRET_ACCESS_KEY", "local");
    key.session_token = getenv("AWS_SESSION_TOKEN");
    {
        struct sigv4_header hs[] = { { "host", host },
                                     { "content-type", "application/x-amz-json-1.0" },
                                     { "x-amz-target", target } };
        struct sigv4_input in = { .method = "POST", .path = "/", .headers = hs, .nheaders = 3,
                                  .body = body, .body_len = strlen(body),
                                  .region = env_or("AWS_REGION", "us-east-1"),
                                  .service = "dynamodb", .now = time(NULL),
                                  .normalize_path = true };

        memset(&out, 0, sizeof(out));
        if (sigv4_sign(&in, &key, &out) != 0) {
            fprintf(stderr, "ddbctl: cannot sign the request\n");
            return 70;
        }
    }
    snprintf(hdr[0], sizeof(hdr[0]), "X-Amz-Target: %s", target);
    snprintf(hdr[1], sizeof(hdr[1]), "X-Amz-Date: %s", out.amz_date);
    snprintf(hdr[2], sizeof(hdr[2]), "Authorization: %s", out.authorization);
    hl = curl_slist_append(hl, "Content-Type: application/x-amz-json-1.0");
    for (int i = 0; i < 3; i++)
        hl = curl_slist_append(hl, hdr[i]);
    if (out.add_token) {
        snprintf(hdr[3], sizeof(hdr[3]), "X-Amz-Security-Token: %s", key.session_token);
        hl = curl_slist_append(hl, hdr[3]);
    }
    hl = curl_slist_append(hl, "Expect:");
    buf_init(&resp, 256u << 20);
    c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, endpoint);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    rc = curl_easy_perform(c) == CURLE_OK ? 0 : 1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc)
        fprintf(stderr, "ddbctl: %s: no answer\n", endpoint);
    else
        printf("%s\n", resp.ptr ? resp.ptr : "");
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    buf_close(&resp);
    sigv4_output_close(&out);
    return rc || status < 200 || status > 299;
}
