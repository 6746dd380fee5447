/* transform_int — what transform.c (records as jansson trees) and
 * transform_text.c (records read as text) share: the rules for names, the
 * id and the keys of a document.  Not for use outside the two. */
#ifndef DDB2ES_TRANSFORM_INT_H
#define DDB2ES_TRANSFORM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "indexer/doc.h"
#include "indexer/transform.h"

#define TF_ID_BUILD_MAX 16384 /* escaped key text; DynamoDB keys are <= 2048 + 1024 bytes */

/* A key attribute's value: its type ('S', 'N' or 'B') and its text. */
struct tf_scalar {
    char t;
    const char *s;
    size_t len;
};

/* The length of the UTF-8 sequence at s (len > 0), its code point in *cp;
 * 0 when s does not start with one (a stray byte, a truncated or overlong
 * form, a surrogate, above U+10FFFF). */
size_t tf_utf8_char(const char *s, size_t len, uint32_t *cp);
bool tf_utf8_valid(const char *s, size_t len);

/* A name of the list, compared whole (it may hold NUL). */
bool tf_in_list(const char *const *list, size_t n, const char *name, size_t len);

/* A name given with its length, 0 meaning strlen (struct transform_cfg). */
size_t tf_name_len(const char *name, size_t len);

/* Whether the engines refuse the name (top: an item's own attribute, where
 * the metadata fields are refused too); such names are renamed
 * (transform.h). */
bool tf_name_refused(const char *name, size_t len, bool top);

/* The configuration transform_record and the others need; false when the
 * index, the hash key or a usable id separator is missing. */
bool tf_cfg_usable(const struct transform_cfg *cfg);

/* An empty action of this kind (seq, created and version are the
 * caller's). */
void tf_doc_begin(struct doc *out, const struct transform_cfg *cfg, enum doc_op op);

/* Steps 1 and 2 of the id function for a key value that is not hmac'd:
 * its text (an N canonical, a B as sent once it is valid base64) with the
 * separator and '\\' escaped, appended to idb.  -EINVAL: an invalid N or
 * B; else 0 or what the buffer returned. */
int tf_key_part(const struct tf_scalar *k, char sep, struct buf *idb);

/* The document's id from the key text idb (step 4: hashed when it is longer
 * than DOC_ID_MAX or not UTF-8). */
void tf_id_set(struct doc *out, const struct buf *idb, char sep);

/* doc->keys from the key values (range->t is 0 for a hash-only table):
 * {"pk":{"S":"a"},"sk":{"N":"42"}}, left empty when it does not fit.
 * 0, or -ENOMEM. */
int tf_put_keys(struct buf *out, const struct transform_cfg *cfg, const struct tf_scalar *hash,
                const struct tf_scalar *range);

#endif
