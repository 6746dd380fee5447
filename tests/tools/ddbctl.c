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

#include "base/buf.h"
#include "tests/support/ddbsign.h"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && *v ? v : dflt;
}

int main(int argc, char **argv)
{
    const char *endpoint, *body;
    struct buf resp;
    long status;
    CURL *c;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: ddbctl ENDPOINT OPERATION [JSON]\n");
        return 64;
    }
    endpoint = argv[1];
    body = argc == 4 ? argv[3] : "{}";
    buf_init(&resp, 256u << 20);
    c = curl_easy_init();
    status = ddbsign_post(c, endpoint, argv[2], body, env_or("AWS_ACCESS_KEY_ID", "local"),
                          env_or("AWS_SECRET_ACCESS_KEY", "local"), getenv("AWS_SESSION_TOKEN"),
                          env_or("AWS_REGION", "us-east-1"), 60, &resp);
    if (!status)
        fprintf(stderr, "ddbctl: %s: no answer\n", endpoint);
    else
        printf("%s\n", resp.ptr ? resp.ptr : "");
    curl_easy_cleanup(c);
    buf_close(&resp);
    return status < 200 || status > 299;
}
