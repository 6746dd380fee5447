/* transform — DynamoDB stream records and items become bulk actions.
 *
 * DynamoDB JSON is written as plain JSON straight into doc->source by a small
 * emitter (jansson cannot hold 38-digit numbers): S -> string, N -> the same
 * number as a JSON token (ddbnum_json), B -> its base64 text (checked),
 * BOOL -> bool, NULL -> null, M -> object, L -> array, SS/NS/BS -> arrays.
 * Top-level attributes named "aws:rep:*" (legacy global tables) are dropped.
 * Nesting deeper than TRANSFORM_MAX_DEPTH levels is an error, never a crash.
 *
 * Attribute filters, applied to top-level attributes of the source only and
 * in this order (names compared exactly):
 *   include  if not empty, only these attributes are kept (key attributes
 *            are not added back: the key always reaches the engine in _id);
 *   exclude  these are dropped;
 *   hmac     the value becomes the lowercase hex HMAC-SHA256(hmac_key, text)
 *            where text is: S the string's bytes, N its canonical spelling
 *            (ddbnum_canonical), B the decoded bytes, any other type its
 *            canonical JSON (numbers canonical, object members and set
 *            elements sorted by bytes, no spaces).  A key attribute named
 *            in hmac is hashed in _id too, so its value never leaves the
 *            process; exclude does not remove it from _id.
 *
 * _id: the hash key value, then the range key value, in canonical text
 * (S as is, N canonical, B as its base64 text), joined by id_sep.  Inside a
 * value, id_sep and '\' are escaped as "\<sep>" and "\\", so two different
 * keys never share an id.  An id over DOC_ID_MAX bytes becomes the lowercase
 * hex SHA-256 of that escaped id (64 bytes, deterministic).
 *
 * Pure (jansson and OpenSSL only).  The json_t arguments are borrowed.
 */
#ifndef DDB2ES_TRANSFORM_H
#define DDB2ES_TRANSFORM_H

#include <jansson.h>
#include <stddef.h>

#include "aws/buf.h"
#include "indexer/doc.h"

#define TRANSFORM_MAX_DEPTH 64 /* nested M/L levels; DynamoDB allows 32 */

enum transform_ttl { TRANSFORM_TTL_DELETE, TRANSFORM_TTL_KEEP };

struct transform_cfg {
    const char *index;               /* required; the doc borrows it */
    char id_sep;                     /* e.g. '|'; neither '\\' nor '\0' */
    enum transform_ttl on_ttl_delete;
    const char *const *include;      /* attribute names; NULL when n_include is 0 */
    size_t n_include;
    const char *const *exclude;
    size_t n_exclude;
    const char *const *hmac;
    size_t n_hmac;
    const unsigned char *hmac_key;   /* the secret: never logged */
    size_t hmac_key_len;
    const char *hash_key;            /* from DescribeTable KeySchema; required */
    const char *range_key;           /* NULL for a hash-only table */
};

enum transform_result {
    TR_DOC,       /* out is a complete action */
    TR_SKIP,      /* nothing to send (a TTL delete with on_ttl_delete = keep) */
    TR_NEED_ITEM, /* no new image in the record (KEYS_ONLY / OLD_IMAGE stream):
                     read the item by its key, then transform_item() it */
    TR_ERROR,     /* malformed input: err says what and where */
};

/* A GetRecords record (eventName INSERT|MODIFY|REMOVE, dynamodb.{Keys,
 * NewImage, SequenceNumber, ApproximateCreationDateTime, StreamViewType},
 * userIdentity) -> out.  INSERT/MODIFY index NewImage; REMOVE deletes,
 * unless it is a TTL expiry (userIdentity type "Service" and principalId
 * "dynamodb.amazonaws.com", member names in any case) and on_ttl_delete is
 * keep (TR_SKIP).  Sets op, index, id, seq, created and, for TR_DOC
 * indexes, source; leaves version alone.  out->source must have been
 * buf_init'ed: it is reset (memory kept) and its max bounds the document.
 * err (may be NULL) receives one line naming the record and attribute. */
enum transform_result transform_record(const struct transform_cfg *cfg, json_t *record,
                                       struct doc *out, struct buf *err);

/* A plain item (a NewImage, a Scan or BatchGetItem item, an export Item)
 * -> an index action: sets op, index, id and source; leaves seq, created and
 * version alone.  Returns TR_DOC or TR_ERROR. */
enum transform_result transform_item(const struct transform_cfg *cfg, json_t *item,
                                     struct doc *out, struct buf *err);

/* Key attributes (a record's Keys, or any item holding them) -> a delete
 * action: sets op, index and id, empties source; leaves seq, created and
 * version alone.  Returns TR_DOC or TR_ERROR. */
enum transform_result transform_keys(const struct transform_cfg *cfg, json_t *keys,
                                     struct doc *out, struct buf *err);

const char *transform_result_name(enum transform_result r);

#endif
