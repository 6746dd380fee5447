/* Fuzz target: the SigV4 canonicaliser (sigv4_sign) and the Authorization
 * parser (sigv4_parse_authorization).
 *
 * The input is lines: method, path, query, then "name: value" headers up to
 * an empty line, then the body.  Signing must be deterministic, sign "host"
 * whenever it succeeds, and give an Authorization value that parses back to
 * the same signature.  The first line is also parsed as a received
 * Authorization header. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"
#include "tests/fuzz/fuzz.h"
#include "tests/support/sigv4check.h"

#define MAX_HEADERS 16

/* An HTTP field name (RFC 9110 token): the only names the daemon sends. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s) && !isalnum((unsigned char)*s))
            return false;
    return true;
}

static char *next_line(char **p, char *end)
{
    char *s = *p, *nl;

    if (s >= end)
        return NULL;
    nl = memchr(s, '\n', (size_t)(end - s));
    if (!nl)
        nl = end;
    *nl = '\0';
    *p = nl + 1;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sigv4_key key = { "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL };
    struct sigv4_header hdr[MAX_HEADERS];
    struct sigv4_input in = { .region = "us-east-1", .service = "es", .now = 1440938160 };
    struct sigv4_output a = { 0 }, b = { 0 };
    struct sigv4_authz az;
    char *copy, *p, *end, *line;
    size_t n = 0;
    bool tokens = true;
    int ra, rb;

    if (size < 1)
        return 0;
    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    p = copy;
    end = copy + size - 1;
    in.method = next_line(&p, end);
    in.path = next_line(&p, end);
    in.query = next_line(&p, end);
    if (!in.method || !in.path)
        goto out;
    (void)sigv4_parse_authorization(in.method, &az);
    while (n < MAX_HEADERS && (line = next_line(&p, end)) != NULL && *line) {
        char *colon = strchr(line, ':');

        if (!colon)
            continue;
        *colon = '\0';
        tokens &= is_token(line);
        hdr[n++] = (struct sigv4_header){ line, colon + 1 };
    }
    in.headers = hdr;
    in.nheaders = n;
    in.body = p < end ? p : "";
    in.body_len = p < end ? (size_t)(end - p) : 0;
    in.normalize_path = data[0] & 1;
    in.sign_body = data[0] & 2;
    if (data[0] & 4)
        key.session_token = "session-token";
    if (data[0] & 8)
        in.service = "dynamodb";
    ra = sigv4_sign(&in, &key, &a);
    rb = sigv4_sign(&in, &key, &b);
    if (ra != rb)
        abort();
    if (ra == 0) {
        if (strcmp(a.signature, b.signature) != 0 || strcmp(a.authorization, b.authorization) != 0)
            abort();
        if (strstr(a.signed_headers, "host") == NULL)
            abort();
        /* Parsed back when it fits the parser's fields (1 KiB of names). */
        if (tokens && strlen(a.signed_headers) < sizeof(az.signed_headers) &&
            (sigv4_parse_authorization(a.authorization, &az) != 0 ||
             strcmp(az.signature, a.signature) != 0))
            abort();
    }
    sigv4_output_close(&a);
    sigv4_output_close(&b);
out:
    free(copy);
    return 0;
}
