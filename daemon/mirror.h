/* mirror — the daemon's half of `ddb2es rebuild`: a request file in the
 * state directory turns the sink's mirror on for a table's index, and the
 * daemon says it has in an acknowledgement file.
 *
 *   STATE_DIR/rebuild-<table>.json      the request, written (atomically)
 *                                       by the rebuild:
 *     {"version":1,"table":"T","index":"<the table's index>",
 *      "mirror":"<the new index>","id":"<the request's id>"}
 *   STATE_DIR/rebuild-<table>.ack.json  the acknowledgement, written by the
 *                                       daemon once its sink mirrors:
 *     {"version":1,"table":"T","mirror":"<the new index>","id":"<the id>",
 *      "pid":N}
 *
 * The daemon looks at the request files every MIRROR_POLL_MS (a stat each;
 * the file is read when it changed).  A request removed turns the mirror
 * off and the acknowledgement is removed.  A request that names another
 * index than the table's (the configuration changed), or that cannot be
 * read, is refused with an error line and not acknowledged.  Nothing
 * blocks the loop but a stat and a read of a small file: acknowledgements
 * are written on the thread pool.
 */
#ifndef DDB2ES_MIRROR_H
#define DDB2ES_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

struct app;
struct mirror_watch;

#define MIRROR_POLL_MS 250
#define MIRROR_FORMAT 1

/* The request and acknowledgement files of table in state_dir (malloc'd),
 * or NULL when out of memory. */
char *mirror_request_path(const char *state_dir, const char *table);
char *mirror_ack_path(const char *state_dir, const char *table);

struct mirror_request {
    char table[256], index[256], mirror[256], id[64];
};

/* Reads a request (or an acknowledgement: its index is left "") from text.
 * 0, or -EINVAL with the reason in why. */
int mirror_parse(const char *text, size_t len, bool ack, struct mirror_request *out, char *why,
                 size_t cap);

/* Looks at every table's request now (the mirror is on before this
 * returns when one asks for it), then every MIRROR_POLL_MS.  app->sink and
 * app->cfg must be set.  NULL when out of memory. */
struct mirror_watch *mirror_watch_start(struct app *app);
/* Stops looking and closes its handles; the acknowledgements are removed
 * (a stopped daemon mirrors nothing).  Run the loop before
 * mirror_watch_free.  NULL is a no-op. */
void mirror_watch_stop(struct mirror_watch *w);
void mirror_watch_free(struct mirror_watch *w);

#endif
