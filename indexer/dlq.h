/* dlq — the dead-letter file: one JSON object a line, appended, mode 0600.
 *
 * Lines are written through the libuv thread pool (uv_fs_write, then
 * uv_fs_fdatasync): nothing blocks the loop.  An entry's callback runs with 0
 * only once its line is on disk.  A failed open, write or sync is logged and
 * retried with backoff, forever; the entries wait.  The file is opened at the
 * first entry, so a run without dead letters creates no file.
 */
#ifndef DDB2ES_DLQ_H
#define DDB2ES_DLQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "base/buf.h"
#include "indexer/doc.h"

struct dlq;

/* err: 0 = durable, -ECANCELED = dlq_close came first (not written). */
typedef void dlq_done_cb(int err, void *arg);

/* NULL on allocation failure.  path is copied. */
struct dlq *dlq_new(uv_loop_t *loop, const char *path);
/* Queues one line (a trailing '\n' is added); takes line's memory (line is
 * left empty), also on failure.  Returns 0 (cb will run exactly once) or
 * -ESHUTDOWN after dlq_close, -ENOMEM (cb not run). */
int dlq_append(struct dlq *q, struct buf *line, dlq_done_cb *cb, void *arg);
/* Entries queued or in a retry wait: cb(-ECANCELED).  A write already in the
 * thread pool is let finish (its entries get 0 if it succeeded).  Then the
 * file and the timer are closed and closed(arg) runs.  Free afterwards. */
void dlq_close(struct dlq *q, void (*closed)(void *arg), void *arg);
void dlq_free(struct dlq *q);
/* Entries whose callback has not run yet. */
size_t dlq_pending(const struct dlq *q);

/* Whether text is one JSON value as jsonx_loadb reads it (RFC 8259 in
 * strict UTF-8, \u0000 and lone surrogate escapes taken as the engines
 * take them, integers of any length), with only whitespace around it. */
bool dlq_one_value(const char *text, size_t len);

/* Appends text as the JSON string of a dead letter's "document": as it is
 * when it is valid UTF-8, else "base64:" and its bytes in base64.  Returns
 * 0, -E2BIG or -ENOMEM. */
int dlq_put_text(struct buf *out, const char *text, size_t len);

/* Formats one dead-letter line (no newline):
 *   {"time":"2024-05-01T12:00:00.123Z","table":"t","shard":"s","seq":"123",
 *    "index":"i","id":"k","keys":{"pk":{"S":"k"}},"action":"index",
 *    "version":42,"status":400,"error":{"type":"..","reason":".."},
 *    "document":{...}}
 * keys is d->keys: the item's key attributes in DynamoDB JSON, embedded as
 * it is (`ddb2es replay --format dlq` reads the item again by it), or null
 * when d->keys is empty (a hmac'd key attribute, an input whose key could
 * not be read; files written before the member existed have none).
 * document is the JSON text of the source (embedded as JSON, not a string),
 * or NULL for a delete (written as null); bytes that are not one JSON value
 * are written as dlq_put_text does.  type/reason NULL → null; status
 * 0 (the engine never saw it) → null.  Absent
 * table, shard or seq are null.  now_ms is the wall clock in milliseconds.
 * Returns 0, -E2BIG or -ENOMEM (out left as it was on failure). */
int dlq_format(struct buf *out, const struct doc *d, int status, const char *type,
               const char *reason, const char *document, size_t document_len, int64_t now_ms);

/* Reads one dead-letter line back (`ddb2es replay --format dlq`).  *meta
 * gets the entry with "document" replaced by null (caller decrefs; "keys",
 * when present, is in it as an object); *doc and
 * *doc_len the document's JSON text as written, inside line (NULL for a
 * null document): its numbers are kept to the digit, which jansson could
 * not do.  0, -ENOMEM, or -EBADMSG with one line in err when the line is not
 * a JSON object with string members action, index and id. */
int dlq_parse(const char *line, size_t len, json_t **meta, const char **doc, size_t *doc_len,
              char *err, size_t errlen);

#endif
