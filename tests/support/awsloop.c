#include "tests/support/awsloop.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "aws/creds.h"
#include "base/http.h"

void awsloop_open(struct awsloop *a, const char *endpoint)
{
    struct aws_opts o;

    setenv("AWS_ACCESS_KEY_ID", "test", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "test", 1);
    snprintf(a->endpoint, sizeof(a->endpoint), "%s", endpoint);
    cr_assert_eq(uv_loop_init(&a->loop), 0);
    a->http = http_new(&a->loop, NULL);
    cr_assert_not_null(a->http);
    a->creds = creds_new(&a->loop, a->http, NULL);
    cr_assert_not_null(a->creds);
    o = awsloop_opts(a);
    a->aws = aws_new(&a->loop, a->http, a->creds, &o);
    cr_assert_not_null(a->aws);
}

struct aws_opts awsloop_opts(const struct awsloop *a)
{
    return (struct aws_opts){ .region = "us-east-1", .endpoint_dynamodb = a->endpoint,
                              .endpoint_streams = a->endpoint };
}

void awsloop_close(struct awsloop *a)
{
    aws_free(a->aws);
    a->aws = NULL;
    creds_free(a->creds);
    a->creds = NULL;
    http_close(a->http, NULL, NULL);
    a->http = NULL;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&a->loop), 0, "nothing left open on the loop");
}
