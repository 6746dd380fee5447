/* doc — one bulk action: what a stream record, a scanned or exported item, or
 * a dead-letter entry becomes on its way to the search engine. */
#ifndef DDB2ES_DOC_H
#define DDB2ES_DOC_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"

#define DOC_ID_MAX 512 /* the engine's _id limit in bytes; longer ids are hashed (transform.h) */

enum doc_op { DOC_INDEX, DOC_DELETE };

struct doc {
    enum doc_op op;
    const char *index;          /* borrowed (from the configuration) */
    char id[DOC_ID_MAX + 1];    /* raw bytes (UTF-8 text, may hold NUL), JSON-escaped when
                                   written; id_len counts them, a NUL follows */
    size_t id_len;
    uint64_t version;           /* external version; 0 = send without a version */
    bool version_gte;           /* send it as external_gte whatever the sink's version_type:
                                   an equal version replaces the document (verify --repair) */
    struct buf source;          /* DOC_INDEX: the document, one JSON object, no newline */
    struct buf keys;            /* the key attributes as DynamoDB JSON, for the dead-letter
                                   file: {"pk":{"S":"a"},"sk":{"N":"42"}} (hash key first, N
                                   in its canonical spelling), or EMPTY: when a key attribute
                                   is hmac'd (its plaintext never leaves the process), when
                                   the keys are unknown (a malformed record) or do not fit
                                   its max.  Whoever makes a doc buf_init's it like source
                                   and buf_close's it; a zeroed, never buf_init'ed one holds
                                   nothing and stays empty. */
    char seq[41];               /* stream sequence number, "" for other sources */
    int64_t created;            /* ApproximateCreationDateTime in seconds, 0 if unknown */
    const char *table;          /* borrowed: the DynamoDB table, for logs and the DLQ */
    const char *shard;          /* borrowed: the stream shard id, or NULL */
    uint64_t send_by;           /* uv_now() ms after which the sink must not (re)send it, and
                                   reports SINK_EXPIRED instead; 0 = no limit (see sink.h) */
};

#endif
