/* sts — STS AssumeRole and AssumeRoleWithWebIdentity (AWS-AUTH §5, §6):
 * awsQuery form POSTs with XML replies, retried in standard mode (3
 * attempts; IDPCommunicationError, throttling, 5xx and network errors).
 *
 * AssumeRole is signed with the source key (service "sts", the endpoint's
 * region); AssumeRoleWithWebIdentity is sent unsigned.
 */
#ifndef DDB2ES_STS_H
#define DDB2ES_STS_H

#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "aws/credsrc.h"
#include "aws/retry.h"
#include "aws/sigv4.h"

struct http;
struct sts_call;

struct sts_params {
    const char *url;          /* endpoint, e.g. "https://sts.eu-west-1.amazonaws.com" */
    const char *region;       /* signing region */
    const char *role_arn;     /* required */
    const char *session_name; /* required */
    const char *external_id;  /* or NULL */
    long duration_seconds;    /* 0 = STS default */
    const char *web_identity_token; /* set: AssumeRoleWithWebIdentity */
    const struct sigv4_key *key;    /* AssumeRole: the source key (copied) */
    time_t (*now)(void);            /* signing clock; NULL = time() */
};

/* err 0: *cred is the new key (take it with aws_cred_move).  Else why[]
 * names the STS error code and message (never a secret). */
typedef void sts_done_cb(int err, struct aws_cred *cred, const char *why, void *arg);

/* Starts the call from the loop.  NULL when out of memory or the
 * parameters are unusable (done not run). */
struct sts_call *sts_call_start(uv_loop_t *loop, struct http *h, const struct sts_params *p,
                                sts_done_cb *done, void *arg);
/* done runs with -ECANCELED before return.  NULL is a no-op. */
void sts_call_cancel(struct sts_call *c);

/* Pure parts, for tests. */
/* The form body (malloc'd), NULL when out of memory. */
char *sts_form(const struct sts_params *p);
/* Reads an STS reply: 0 and *out from <Credentials>; else a negative errno
 * with code[] the <Code> of an error reply ("" when none) and why[]. */
int sts_parse(long status, const char *body, size_t len, struct aws_cred *out, char *code,
              size_t codelen, char *why, size_t whylen);
enum retry_verdict sts_classify(long status, int err, const char *code);
/* The text of the first <name>…</name> element, entities decoded, into
 * out[len]; 0, or -ENOENT. */
int sts_xml_text(const char *xml, size_t xlen, const char *name, char *out, size_t len);

#endif
