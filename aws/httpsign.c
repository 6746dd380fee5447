#include "aws/httpsign.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The signing headers httpsign_sigv4 added itself, kept in the request's
 * marks: a new signing replaces them; what the caller set stays. */
enum { SIG_DATE = 1, SIG_TOKEN = 2, SIG_SHA256 = 4 };

int httpsign_sigv4(struct http_req *r, const struct sigv4_key *key, const char *region,
                  const char *service, time_t now, bool sign_body)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *path = NULL, *query = NULL, *scheme = NULL;
    char *host_port = NULL;
    struct sigv4_header *sh = NULL;
    struct sigv4_output out;
    struct sigv4_input in;
    size_t n = 0, nhdrs, body_len;
    const char *body = http_req_payload(r, &body_len);
    int rc = -EINVAL;

    memset(&out, 0, sizeof(out));
    if (!u)
        return -ENOMEM;
    /* What the last signing added goes; what the caller set stays. */
    http_req_header_remove(r, "Authorization");
    if (http_req_marks(r) & SIG_DATE)
        http_req_header_remove(r, "X-Amz-Date");
    if (http_req_marks(r) & SIG_TOKEN)
        http_req_header_remove(r, "X-Amz-Security-Token");
    if (http_req_marks(r) & SIG_SHA256)
        http_req_header_remove(r, "X-Amz-Content-Sha256");
    http_req_set_marks(r, 0);

    if (curl_url_set(u, CURLUPART_URL, http_req_url(r), 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK)
        goto out;
    curl_url_get(u, CURLUPART_PORT, &port, 0); /* absent when the URL has none */
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    if (port && !((strcasecmp(scheme, "http") == 0 && strcmp(port, "80") == 0)
                  || (strcasecmp(scheme, "https") == 0 && strcmp(port, "443") == 0))) {
        if (asprintf(&host_port, "%s:%s", host, port) < 0) {
            host_port = NULL;
            rc = -ENOMEM;
            goto out;
        }
    }

    nhdrs = http_req_nheaders(r);
    sh = calloc(nhdrs + 1, sizeof(*sh));
    if (!sh) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nhdrs; i++, n++)
        http_req_header_at(r, i, &sh[n].name, &sh[n].value);
    if (!http_req_has_header(r, "Host")) /* curl sends the same */
        sh[n++] = (struct sigv4_header){ "host", host_port ? host_port : host };

    in = (struct sigv4_input){
        .method = http_req_method(r),
        .path = path,
        .query = query,
        .headers = sh,
        .nheaders = n,
        .body = body,
        .body_len = body_len,
        .region = region,
        .service = service,
        .now = now,
        .normalize_path = strcmp(service, "s3") != 0,
        .sign_body = sign_body,
    };
    rc = sigv4_sign(&in, key, &out);
    if (rc < 0)
        goto out;
    if ((rc = http_req_header(r, "Authorization", out.authorization)) < 0)
        goto out;
    if (out.add_date) {
        if ((rc = http_req_header(r, "X-Amz-Date", out.amz_date)) < 0)
            goto out;
        http_req_set_marks(r, http_req_marks(r) | SIG_DATE);
    }
    if (out.add_token) {
        if ((rc = http_req_header(r, "X-Amz-Security-Token", key->session_token)) < 0)
            goto out;
        http_req_set_marks(r, http_req_marks(r) | SIG_TOKEN);
    }
    if (out.add_content_sha256) {
        if ((rc = http_req_header(r, "X-Amz-Content-Sha256", out.payload_hash)) < 0)
            goto out;
        http_req_set_marks(r, http_req_marks(r) | SIG_SHA256);
    }
out:
    if (rc < 0)
        http_req_header_remove(r, "Authorization"); /* never send a stale signature */
    sigv4_output_close(&out);
    free(sh);
    free(host_port);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return rc;
}
