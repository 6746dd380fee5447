/* httpsign — signs a request of base/http with AWS Signature Version 4
 * (aws/sigv4.h does the arithmetic; this reads the request's method, URL,
 * headers and body and adds the signing headers). */
#ifndef DDB2ES_HTTPSIGN_H
#define DDB2ES_HTTPSIGN_H

#include <stdbool.h>
#include <time.h>

#include "aws/sigv4.h"
#include "base/http.h"

/* Signs with SigV4 for region/service using key and now, adding X-Amz-Date,
 * X-Amz-Security-Token and (sign_body) X-Amz-Content-Sha256 as needed.  The
 * Host header is derived from the URL.  Call again to re-sign (e.g. on retry):
 * the previous Authorization and X-Amz-* signing headers are replaced.  0 or
 * a negative errno. */
int httpsign_sigv4(struct http_req *r, const struct sigv4_key *key, const char *region,
                   const char *service, time_t now, bool sign_body);

#endif
