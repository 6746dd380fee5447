/* doc — one bulk action: what a stream record, a scanned or exported item, or
 * a dead-letter entry becomes on its way to the search engine. */
#ifndef DDB2ES_DOC_H
#define DDB2ES_DOC_H

#include <stdint.h>

#include "aws/buf.h"

#define DOC_ID_MAX 512 /* the engine's _id limit in bytes; longer ids become SHA-256 hex */

enum doc_op { DOC_INDEX, DOC_DELETE };

struct doc {
    enum doc_op op;
    const char *index;          /* borrowed (from the configuration) */
    char id[DOC_ID_MAX + 1];    /* raw bytes (UTF-8 text or base64), JSON-escaped when written */
    size_t id_len;
    uint64_t version;           /* external version; 0 = send without a version */
    struct buf source;          /* DOC_INDEX: the document, one JSON object, no newline */
    struct buf keys;            /* the key attributes as DynamoDB JSON ({"pk":{"S":"a"}}), one
                                   JSON object; empty when unknown or a key attribute is hmac'd */
    char seq[41];               /* stream sequence number, "" for other sources */
    int64_t created;            /* ApproximateCreationDateTime in seconds, 0 if unknown */
    const char *table;          /* borrowed: the DynamoDB table, for logs and the DLQ */
    const char *shard;          /* borrowed: the stream shard id, or NULL */
    uint64_t send_by;           /* uv_now() ms after which the sink must not (re)send it, and
                                   reports SINK_EXPIRED instead; 0 = no limit (see sink.h) */
};

#endif
