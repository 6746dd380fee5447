/* searchd_ctl — runs the search double (tests/tools/searchd/) for tests.
 *
 * searchd_start() execs `$DDB2ES_SEARCHD` (default `${BUILD:-build}/tools/searchd`)
 * with --listen 127.0.0.1:0 --port-file <tmp> plus the given options, waits
 * until the port file appears and returns a handle; failures abort the
 * current criterion test.  The child gets SIGTERM if the test process dies.
 * searchd_stop() sends SIGTERM, reaps the child and returns its exit status.
 *
 * The request helpers are blocking (curl easy) and share one connection
 * per handle (keep-alive), so they are for test code only.
 */
#ifndef DDB2ES_SEARCHD_CTL_H
#define DDB2ES_SEARCHD_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

struct searchd;

struct searchd_resp {
    long status;        /* 0 when the transport failed */
    int curl_code;      /* CURLcode of the transfer */
    char *body;         /* NUL-terminated, decoded if the reply was gzipped */
    size_t len;
    char *headers;      /* raw header block of the final reply */
};

/* Options end with NULL: searchd_start("--auth", "basic", "--user", "u", NULL). */
struct searchd *searchd_start(const char *opt, ...);
struct searchd *searchd_startv(const char *const *opts);
/* Returns the exit status (0 on a clean stop), or -1 if it did not exit
 * normally.  NULL is a no-op returning 0. */
int searchd_stop(struct searchd *sd);
int searchd_port(const struct searchd *sd);
pid_t searchd_pid(const struct searchd *sd);
const char *searchd_url(const struct searchd *sd); /* "http://127.0.0.1:PORT" */

/* One request.  headers: NULL-terminated "Name: value" strings, or NULL.
 * body may be NULL.  Returns 0 when a reply came (whatever its status), or
 * -EIO (out->curl_code says why).  Release out with searchd_resp_close. */
int searchd_request(struct searchd *sd, const char *method, const char *path,
                    const char *const *headers, const void *body, size_t len,
                    struct searchd_resp *out);
void searchd_resp_close(struct searchd_resp *r);
/* Value of a reply header (case-insensitive), malloc'd; NULL if absent. */
char *searchd_resp_header(const struct searchd_resp *r, const char *name);

/* JSON conveniences: the parsed reply body (NULL if not JSON or the
 * transport failed); *status gets the HTTP status when non-NULL. */
json_t *searchd_json(struct searchd *sd, const char *method, const char *path,
                     const char *body, long *status);
/* POST path (e.g. "/_bulk") with Content-Type: application/x-ndjson. */
json_t *searchd_bulk(struct searchd *sd, const char *path, const char *ndjson, long *status);
json_t *searchd_dump(struct searchd *sd);  /* GET /_double/dump */
json_t *searchd_stats(struct searchd *sd); /* GET /_double/stats */
/* GET /_double/requests: [{"method","path","query","status"}], oldest first. */
json_t *searchd_requests(struct searchd *sd);
/* POST a JSON text to /_double/faults, /_double/config, /_double/reset;
 * each returns the HTTP status (200 when accepted). */
long searchd_faults(struct searchd *sd, const char *rules_json);
long searchd_config(struct searchd *sd, const char *settings_json);
long searchd_reset(struct searchd *sd);

#endif
