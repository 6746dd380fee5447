/* ddbsign — headers for one signed DynamoDB / DynamoDB Streams JSON request,
 * for the blocking clients of the tests, tools and benchmarks (curl easy).
 * No criterion here: tools link it too. */
#ifndef DDB2ES_TEST_DDBSIGN_H
#define DDB2ES_TEST_DDBSIGN_H

#include <curl/curl.h>
#include <stdbool.h>

/* "DynamoDBStreams_20120810" for the Streams operations, else
 * "DynamoDB_20120810". */
bool ddbsign_is_streams_op(const char *op);
/* Content-Type, X-Amz-Target, X-Amz-Date, X-Amz-Security-Token (when token)
 * and Authorization for POSTing body to endpoint, plus an empty Expect.
 * NULL if it cannot be signed.  Free with curl_slist_free_all. */
struct curl_slist *ddbsign_headers(const char *endpoint, const char *op, const char *body,
                                   const char *akid, const char *secret, const char *token,
                                   const char *region);

/* Posts one signed request on the easy handle c (reused: keep-alive) and
 * collects the reply in out (reset first).  Returns the HTTP status, 0 when
 * no reply came (or it could not be signed). */
struct buf;
long ddbsign_post(CURL *c, const char *endpoint, const char *op, const char *body,
                  const char *akid, const char *secret, const char *token, const char *region,
                  long timeout_s, struct buf *out);

#endif
