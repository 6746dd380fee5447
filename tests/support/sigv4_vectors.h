/* sigv4_vectors — test helpers for the SigV4 vectors in testdata/sigv4/:
 * locating them, reading files, parsing the suites' raw `.req` requests.
 * Test code only. */
#ifndef DDB2ES_TESTS_SIGV4_VECTORS_H
#define DDB2ES_TESTS_SIGV4_VECTORS_H

#include <stddef.h>

#include "aws/sigv4.h"

/* A raw HTTP request as the suites write it.  Every string points into one
 * owned copy of the text; a folded (multi-line) header value keeps its raw
 * line breaks, for the signer to fold. */
struct sigv4vec_req {
    char *text;
    const char *method;
    const char *path;
    const char *query; /* NULL when the target has no '?' */
    struct sigv4_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
};

/* Parses `len` bytes of a `.req`/`request.txt`: request line (the target is
 * everything between the first space and the last " HTTP/", so raw spaces
 * survive), `Name:value` lines with obsolete folding, a blank line, the body.
 * Returns 0 or -EINVAL/-ENOMEM. */
int sigv4vec_parse_req(const char *text, size_t len, struct sigv4vec_req *out);
void sigv4vec_req_close(struct sigv4vec_req *r);

/* "<shared>/testdata/sigv4" where <shared> is $DDB2ES_SHARED or "../shared". */
const char *sigv4vec_dir(void);

/* The whole file, NUL-terminated (len may be NULL); NULL when unreadable. */
char *sigv4vec_read(const char *path, size_t *len);
/* sigv4vec_read of the printf-formatted path. */
char *sigv4vec_readf(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One test case: its name relative to the suite folder ("normalize-path/
 * get-space") and the absolute folder holding its files. */
struct sigv4vec_case {
    char *name;
    char *dir;
};

/* Cases under `root`, sorted by name: every sub-folder that holds a file
 * named `marker` (a marker starting with '.' is a suffix to the folder's own
 * name: ".req" finds get-vanilla/get-vanilla.req), looking `depth` levels
 * deep at most (1 or 2).  Returns the count, -errno on error;
 * free with sigv4vec_cases_free. */
int sigv4vec_cases(const char *root, const char *marker, int depth, struct sigv4vec_case **out);
void sigv4vec_cases_free(struct sigv4vec_case *cases, int n);

#endif
