/* awsloop — a test's libuv loop with the project's own AWS client on it
 * (HTTP, credentials from the environment, DynamoDB) against one endpoint:
 * DynamoDB Local or a fake server. */
#ifndef DDB2ES_TEST_AWSLOOP_H
#define DDB2ES_TEST_AWSLOOP_H

#include <uv.h>

#include "aws/ddb.h"

struct awsloop {
    uv_loop_t loop;
    struct http *http;
    struct creds *creds;
    struct aws *aws;
    char endpoint[256];
};

/* Sets AWS_ACCESS_KEY_ID/SECRET (test keys DynamoDB Local takes) and opens
 * everything on a new loop; asserts on failure. */
void awsloop_open(struct awsloop *a, const char *endpoint);
/* The aws_opts the loop's client was made with (for lease_conn). */
struct aws_opts awsloop_opts(const struct awsloop *a);
/* Frees the AWS client and credentials, closes HTTP, runs the loop until
 * nothing is left and asserts that it closes. */
void awsloop_close(struct awsloop *a);

#endif
