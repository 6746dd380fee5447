/* bulk — the NDJSON body of a _bulk request, one action at a time, and the
 * small JSON text emitter shared with the transform.
 *
 * Each action is an action line and, for an index, the document line; every
 * line ends with "\n", including the last one of a body.  Pure: no I/O.
 */
#ifndef DDB2ES_BULK_H
#define DDB2ES_BULK_H

#include <stddef.h>

#include "base/buf.h"
#include "indexer/doc.h"

#define BULK_VERSION_TYPE "external_gte"

/* Appends d as NDJSON:
 *   {"index":{"_index":"posts","_id":"k1|7","version":42,"version_type":"external_gte"}}\n{...}\n
 *   {"delete":{"_index":"posts","_id":"k1|7","version":43,"version_type":"external_gte"}}\n
 * version and version_type are left out when d->version is 0; version_type
 * NULL means BULK_VERSION_TYPE; d->version_gte sends external_gte instead.
 * On any failure out is left as it was.
 * Returns 0, -EINVAL (no index, an index action without a source, a source
 * holding a newline), -ERANGE (version above 2^63-1), -E2BIG or -ENOMEM. */
int bulk_append(struct buf *out, const struct doc *d, const char *version_type);

/* The filter_path query value for POST /_bulk: it keeps "status" on every
 * item so that items still map to actions by position. */
const char *bulk_filter_path(void);

/* jsonx_put_string (aws/jsonx.h): s[0..len) as a JSON string with its
 * quotes; valid UTF-8 is copied, control characters and lone surrogates
 * (WTF-8) escaped.  Returns 0, -E2BIG or -ENOMEM (out left as it was). */
int bulk_json_string(struct buf *out, const char *s, size_t len);

#endif
