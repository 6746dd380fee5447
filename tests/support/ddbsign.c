#include "tests/support/ddbsign.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "aws/sigv4.h"

bool ddbsign_is_streams_op(const char *op)
{
    static const char *const ops[] = { "DescribeStream", "GetShardIterator", "GetRecords",
                                       "ListStreams" };

    for (size_t i = 0; i < sizeof(ops) / sizeof(*ops); i++)
        if (strcmp(op, ops[i]) == 0)
            return true;
    return false;
}

struct curl_slist *ddbsign_headers(const char *endpoint, const char *op, const char *body,
                                   const char *akid, const char *secret, const char *token,
                                   const char *region)
{
    char target[128], host[256], line[2048];
    const char *h = strstr(endpoint, "://");
    struct sigv4_key key = { akid, secret, token && *token ? token : NULL };
    struct sigv4_output out;
    struct curl_slist *hl = NULL;

    snprintf(target, sizeof(target), "%s.%s",
             ddbsign_is_streams_op(op) ? "DynamoDBStreams_20120810" : "DynamoDB_20120810", op);
    h = h ? h + 3 : endpoint;
    snprintf(host, sizeof(host), "%.*s", (int)strcspn(h, "/"), h);
    {
        struct sigv4_header hs[] = { { "host", host },
                                     { "content-type", "application/x-amz-json-1.0" },
                                     { "x-amz-target", target } };
        struct sigv4_input in = { .method = "POST", .path = "/", .headers = hs, .nheaders = 3,
                                  .body = body, .body_len = strlen(body), .region = region,
                                  .service = "dynamodb", .now = time(NULL),
                                  .normalize_path = true };

        memset(&out, 0, sizeof(out));
        if (sigv4_sign(&in, &key, &out) != 0) {
            sigv4_output_close(&out);
            return NULL;
        }
    }
    hl = curl_slist_append(hl, "Content-Type: application/x-amz-json-1.0");
    snprintf(line, sizeof(line), "X-Amz-Target: %s", target);
    hl = curl_slist_append(hl, line);
    snprintf(line, sizeof(line), "X-Amz-Date: %s", out.amz_date);
    hl = curl_slist_append(hl, line);
    if (out.add_token) {
        snprintf(line, sizeof(line), "X-Amz-Security-Token: %s", key.session_token);
        hl = curl_slist_append(hl, line);
    }
    snprintf(line, sizeof(line), "Authorization: %s", out.authorization);
    hl = curl_slist_append(hl, line);
    hl = curl_slist_append(hl, "Expect:");
    sigv4_output_close(&out);
    return hl;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

long ddbsign_post(CURL *c, const char *endpoint, const char *op, const char *body,
                  const char *akid, const char *secret, const char *token, const char *region,
                  long timeout_s, struct buf *out)
{
    struct curl_slist *hl = ddbsign_headers(endpoint, op, body, akid, secret, token, region);
    long status = 0;

    if (!hl)
        return 0;
    buf_reset(out);
    curl_easy_setopt(c, CURLOPT_URL, endpoint);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    return status;
}
