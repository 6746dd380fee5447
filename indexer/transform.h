/* transform — DynamoDB stream records and items become bulk actions.
 *
 * DynamoDB JSON is written as plain JSON straight into doc->source by a small
 * emitter (jansson cannot hold 38-digit numbers): S -> string, N -> the same
 * number as a JSON token (ddbnum_json), B -> its base64 text (checked),
 * BOOL -> bool, NULL -> null, M -> object, L -> array, SS/NS/BS -> arrays.
 * Top-level attributes named "aws:rep:*" (legacy global tables) are dropped.
 * Nesting deeper than TRANSFORM_MAX_DEPTH levels is an error, never a crash.
 *
 * Every name and string is taken with its length: U+0000 (which DynamoDB
 * accepts in names, values and keys) is written as \u0000 like any control
 * character, and a type descriptor is compared whole ("S\u0000x" is an
 * unknown type, not S).  A lone UTF-16 surrogate, which DynamoDB also accepts
 * and which a loader holds as its 3-byte WTF-8 form (ED A0 80..ED BF BF), is
 * written as the escape \udXXX, so the text sent stays valid UTF-8.
 *
 * Names the engines refuse.  Elasticsearch 8 and OpenSearch 2 reject a
 * document, at parse time, for
 *   - at the top level only, a name that is a metadata field, or whose first
 *     dot-separated segment is one ("_id", "_source.x"; the table is in
 *     transform.c);
 *   - at any depth, an empty name, or one with an empty or whitespace-only
 *     dot-separated segment ("", ".a", "a.", "a..b", " ", "a. .b";
 *     whitespace is Java's Character.isWhitespace).
 * Such a name N is renamed, never dead-lettered: it becomes "%" followed by N
 * with every '%', '.' and whitespace character written as the upper-case %XX
 * of its UTF-8 bytes ("_id" -> "%_id", "a..b" -> "%a%2E%2Eb", " " -> "%%20",
 * "" -> "%").  When that name is already taken in the same object (by a name
 * kept as it is, or by a name renamed before), one more "%" goes in front
 * until it is free.  The refused names of one object are renamed in the byte
 * order of their original names, after the kept names are placed, so the
 * document does not depend on the order of the members (a stream image and a
 * Scan of one item list them differently).  Every name the engines accept is
 * kept ("a.b" stays: the engine reads it as object a, field b).  This applies
 * to top-level attributes and to map keys at every depth; the names inside an
 * hmac attribute are not written, hence not renamed.  Each rename is
 * reported through cfg->on_rename.
 *
 * Attribute filters, applied to top-level attributes of the source only and
 * in this order (original names, compared exactly):
 *   include  if not empty, only these attributes are kept (key attributes
 *            are not added back: the key always reaches the engine in _id);
 *   exclude  these are dropped;
 *   hmac     the value becomes the lowercase hex HMAC-SHA256(hmac_key, text)
 *            where text is: S the string's bytes, N its canonical spelling
 *            (ddbnum_canonical), B the decoded bytes, any other type its
 *            canonical JSON (numbers canonical, object members and set
 *            elements sorted by bytes, no spaces, names not renamed).  A key
 *            attribute named in hmac is hashed in _id too, so its value never
 *            leaves the process; exclude does not remove it from _id.
 *
 * _id, id function version 2 (TRANSFORM_ID_VERSION):
 *   1. each key value as text: S its bytes, N its canonical spelling
 *      (ddbnum_canonical: "1E+2" and "100" give "100"), B its base64 text as
 *      received, an hmac key attribute the hex HMAC of its value (as above);
 *   2. inside each text, id_sep and '\' are escaped as "\<sep>" and "\\";
 *   3. the hash key's text, then, for a hash+range table, id_sep and the range
 *      key's text: the key text (transform_key_text);
 *   4. a key text of at most DOC_ID_MAX bytes that is valid UTF-8 is the _id;
 *      any other (longer, or holding a WTF-8 lone surrogate, which the engines
 *      would store as U+FFFD and so merge two keys) is hashed: the _id is
 *      "\h" and the 64 lowercase hex digits of the SHA-256 of the key text
 *      ("\H" when id_sep is 'h').  In a key text a '\' is always followed by
 *      id_sep or '\', so no key text has this form: a hashed id never equals
 *      the id of another key.
 * Version 1 hashed only texts over DOC_ID_MAX bytes and wrote the bare 64 hex
 * digits, which the key text "<those digits>" also gives.  Ids of version 2
 * differ from version 1 only for hashed ids: a document of such a key indexed
 * by version 1 keeps its old _id until the index is rebuilt.
 *
 * Client-side encrypted items (encitem.h), before the filters: with
 * encrypted = TRANSFORM_ENCRYPTED_PLAINTEXT (the default), the attributes
 * encitem leaves out (ciphertext, whatever may be, the encryption's own
 * headers) are not written, and each item written by client-side encryption
 * is reported through cfg->on_encrypted; with TRANSFORM_ENCRYPTED_AS_IS
 * such items are written like any other.
 *
 * Pure (jansson and OpenSSL only).  The json_t arguments are borrowed; they
 * may hold names with NUL (json_object_setn_nocheck) and WTF-8 strings.
 */
#ifndef DDB2ES_TRANSFORM_H
#define DDB2ES_TRANSFORM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "indexer/doc.h"
#include "indexer/encitem.h"

#define TRANSFORM_MAX_DEPTH 64 /* nested M/L levels; DynamoDB allows 32 */
#define TRANSFORM_ID_VERSION 2 /* the id function above */

enum transform_ttl { TRANSFORM_TTL_DELETE, TRANSFORM_TTL_KEEP };
enum transform_encrypted { TRANSFORM_ENCRYPTED_PLAINTEXT, TRANSFORM_ENCRYPTED_AS_IS };

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
    size_t hash_key_len;             /* their lengths (a name may hold NUL); */
    size_t range_key_len;            /* 0 means strlen */
    /* Optional: called once for each name renamed (see above) with the
     * original name and the depth of the object holding it (0: a top-level
     * attribute, 1: a key of a map that is an attribute's value, and one
     * more for each M or L around it).  It may be called for a document the
     * transform then refuses for another reason. */
    void (*on_rename)(void *arg, const char *name, size_t len, int depth);
    void *rename_arg;
    enum transform_encrypted encrypted;
    /* Optional: called once for each item written by client-side
     * encryption (e->kind is not ENCITEM_NONE), with what was left out of
     * it and what names the record ("record <seq>" or "item"); like
     * on_rename, it may be called for a document refused later. */
    void (*on_encrypted)(void *arg, const struct encitem *e, const char *what);
    void *encrypted_arg;
    /* Optional: called for each member written (a top-level attribute, or
     * a map key at any depth), before its value, with the name written
     * (after any rename), the depth as for on_rename, its value (DynamoDB
     * JSON, borrowed for the call) and whether it is written as its HMAC;
     * never for what is inside an hmac attribute.  Like on_rename, it may
     * be called for a document refused later. */
    void (*on_member)(void *arg, const char *name, size_t len, int depth, json_t *av,
                      bool hmac);
    void *member_arg;
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
 * keep (TR_SKIP).  Sets op, index, id, keys, seq, created and, for TR_DOC
 * indexes, source; leaves version alone.  out->source and out->keys must
 * have been buf_init'ed: they are reset (memory kept) and source's max bounds
 * the document.  keys is filled as soon as the id is known, so a record
 * refused later for its image still has it (see doc.h).  err (may be NULL)
 * receives one line naming the record and attribute. */
enum transform_result transform_record(const struct transform_cfg *cfg, json_t *record,
                                       struct doc *out, struct buf *err);

/* What transform_record_text reads of a record besides the document: its
 * "shardId" and "parentShardId" strings ("" when absent or not strings), as
 * source_stream_value takes them from a record of a file. */
struct transform_text_extra {
    char shard[128];
    char parent[128];
};

/* The record whose JSON text is text -> out, in one pass without a tree:
 * true when the record is plain enough to be sure of, and out is then what
 * jsonx_loadb and transform_record would have made of it with TR_DOC (op,
 * index, id, keys, seq, created, source; version left alone).  False for
 * everything else, out's content then undefined: the caller reads the text
 * with jsonx_loadb and calls transform_record, which decides it (an error,
 * TR_SKIP, TR_NEED_ITEM, a renamed name, an hmac'd or encrypted attribute,
 * a duplicate name, a Lambda event; see transform_text.c).  Never false
 * for a record both would take unless it holds one of those. */
bool transform_record_text(const struct transform_cfg *cfg, const char *text, size_t len,
                           struct doc *out, struct transform_text_extra *x);

/* A plain item (a NewImage, a Scan or BatchGetItem item, an export Item)
 * -> an index action: sets op, index, id, keys and source; leaves seq,
 * created and version alone.  Returns TR_DOC or TR_ERROR. */
enum transform_result transform_item(const struct transform_cfg *cfg, json_t *item,
                                     struct doc *out, struct buf *err);

/* Key attributes (a record's Keys, or any item holding them) -> a delete
 * action: sets op, index, id and keys, empties source; leaves seq, created
 * and version alone.  Returns TR_DOC or TR_ERROR. */
enum transform_result transform_keys(const struct transform_cfg *cfg, json_t *keys,
                                     struct doc *out, struct buf *err);

/* Appends the key text of keys (step 3 of the id function: escaped, before
 * any hashing) to out.  Two spellings of one key ({"N":"1E+2"} and
 * {"N":"100"}) give the same text, two different keys different texts: to
 * match BatchGetItem replies to the keys asked for, or to ask for a key once.
 * Returns 0, or -EINVAL (err says why), -E2BIG or -ENOMEM; on failure out is
 * left as it was. */
int transform_key_text(const struct transform_cfg *cfg, json_t *keys, struct buf *out,
                       struct buf *err);

/* Renamed names for the logs and a counter: an on_rename hook
 * (transform_renames_note, with rename_arg the struct) that counts every
 * rename and reports each distinct name once through say, for the first
 * TRANSFORM_RENAMES_LISTED distinct names; then one line says that further
 * names are not listed, and they are only counted.  Memory stays bounded
 * (names are remembered by their length, a hash and their first
 * TRANSFORM_RENAMES_PREFIX bytes).  Not thread-safe. */
#define TRANSFORM_RENAMES_LISTED 256
#define TRANSFORM_RENAMES_PREFIX 64

struct transform_renames_seen;

struct transform_renames {
    uint64_t count;                      /* renames noted, repeats included */
    size_t listed;                       /* distinct names reported */
    bool full;                           /* the "not listed" line was said */
    struct transform_renames_seen *seen; /* TRANSFORM_RENAMES_LISTED slots */
    /* One line, without a newline, quoting the name safely (the caller's
     * logger adds the context, such as the table). */
    void (*say)(void *arg, const char *line);
    void *say_arg;
};

void transform_renames_init(struct transform_renames *r, void (*say)(void *arg, const char *line),
                            void *say_arg);
void transform_renames_close(struct transform_renames *r);
/* The on_rename hook; arg is a struct transform_renames. */
void transform_renames_note(void *arg, const char *name, size_t len, int depth);

const char *transform_result_name(enum transform_result r);

#endif
