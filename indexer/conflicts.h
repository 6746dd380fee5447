/* conflicts — values whose type the index's mapping cannot take, moved to a
 * side object instead of refusing the whole document.
 *
 * DynamoDB has no schema; an index has a mapping, fixed per field path by
 * the first value it saw.  When a later value of another type comes (a
 * number where a string was, a map where a string was...), the engine
 * refuses the document with a 400.  With [table] type_conflicts = side the
 * sink keeps, per index, the types it knows (struct conflicts: from the
 * engine's error and from GET <index>/_mapping) and shapes each document
 * before it is sent: every value the known type of its path cannot take
 * leaves its place and becomes one entry of the side object, an array at
 * the top level of the document (default name "_ddb_conflicts"):
 *
 *   {"_ddb_conflicts":[{"path":"a.b","type":"S","value":"text"}, ...]}
 *
 *   path   the value's field path: its names from the top joined by '.'
 *          (the engine's own path, so a top-level name "a.b" and a map a
 *          holding b are both "a.b");
 *   type   the value's DynamoDB type as its JSON shows it: S (a string,
 *          also a B's base64 text), N, BOOL, NULL, M (an object), L (an
 *          array, also SS, NS and BS);
 *   value  an S: the string itself; any other: its JSON text as the
 *          document holds it (numbers to the digit).
 * The three fields are always strings, so the side object never conflicts
 * itself (the engine maps them as text with a keyword sub-field, or as
 * whatever the index template says).
 *
 * The rule (conflicts_shape), deterministic for one document and one set
 * of known types:
 *   - the members are walked in document order, into objects and into the
 *     objects inside arrays (an array's elements share its path);
 *   - a member whose path has a known type and whose value that type
 *     cannot take (conflicts_takes; for an array: any of its elements) is
 *     moved whole, with its path, in the order met; so is the member whose
 *     path is force (the path the engine just named);
 *   - a top-level member named like the side object is read as the side
 *     object: the entries of an array are kept first (so shaping a shaped
 *     document moves nothing twice), any other value is moved like a
 *     conflict.
 * A type the module does not model (date strings, ip, geo_point...) takes
 * every value: only the engine's refusal (force) moves one.
 *
 * Pure: jansson and the base buffers only. */
#ifndef DDB2ES_CONFLICTS_H
#define DDB2ES_CONFLICTS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define CONFLICTS_FIELD "_ddb_conflicts" /* the side object's default name */

/* The known field types of one index: path -> the mapping's type name
 * ("long", "text", "object"...). */
struct conflicts;

struct conflicts *conflicts_new(void);
void conflicts_free(struct conflicts *c);

/* Sets path's type (path: plen bytes, may hold NUL; type a NUL-terminated
 * name).  0 or -ENOMEM. */
int conflicts_learn(struct conflicts *c, const char *path, size_t plen, const char *type);

/* Replaces what c knows from a mapping with the reply of GET
 * <index>/_mapping (body[0..len): {"<index>":{"mappings":{"properties":
 * {...}}}}, the first index's): every field's path and type, an object
 * ("properties" without "type") as "object"; multi-fields are not paths
 * of the document and are skipped.  Types learned with conflicts_learn for
 * paths the mapping does not hold are kept.  0, -EINVAL (not such a
 * reply: c unchanged) or -ENOMEM. */
int conflicts_learn_mapping(struct conflicts *c, const char *body, size_t len);

/* path's known type, NULL when unknown. */
const char *conflicts_type(const struct conflicts *c, const char *path, size_t plen);
size_t conflicts_count(const struct conflicts *c);

/* Whether a field of the mapping type type takes the JSON value v[0..len)
 * as the engines coerce values (numbers in range and numeric strings for
 * the numeric types, true/false/"true"/"false"/"" for boolean, any scalar
 * for the string types, objects for object and nested, null always, an
 * array when each element is taken).  Types not modelled take everything. */
bool conflicts_takes(const char *type, const char *v, size_t len);

/* Reads the field path (and its mapped type, when the text gives it) out
 * of a per-item error of the bulk API that is a mapping conflict:
 *   failed to parse field [P] of type [T] in document with id '...'
 *   object mapping for [P] tried to parse field [K] as object, but found a
 *     concrete value                                       (T = "object")
 *   Could not dynamically add mapping for field [Q.x]. Existing mapping for
 *     [P] must be of type object but found [T].
 *   mapper [P] cannot be changed from type [T] to [U]
 *   can't merge a non object mapping [P] with an object mapping  (T = "")
 * with or without Elasticsearch 8's "[line:col] " prefix, under the error
 * types mapper_parsing_exception (OpenSearch, Elasticsearch 7),
 * document_parsing_exception (Elasticsearch 8) and, for the last two
 * (two values of one new field in one document), illegal_argument_exception.
 * Any other error (an immense term, a depth or total-fields limit, a
 * strict mapping...) is not one.  path gets a NUL-terminated copy (cut at
 * pathsz), type too.  True when it is a conflict. */
bool conflicts_parse_error(const char *etype, const char *reason, char *path, size_t pathsz,
                           char *type, size_t typesz);

/* Shapes the document doc[0..len) (one JSON object) by the rule above:
 * known may be NULL (nothing known), force NULL (nothing forced), field
 * the side object's name (NULL: CONFLICTS_FIELD).  When a value moves, out
 * gets the whole new document (appended) and *moved the number of values
 * moved; when none does, out is left as it was and *moved is 0 (the
 * document goes as it is).  0, -EINVAL (doc is not a JSON object it can
 * walk) or -ENOMEM / -E2BIG (out's). */
int conflicts_shape(const struct conflicts *known, const char *force, const char *field,
                    const char *doc, size_t len, struct buf *out, size_t *moved);

#endif
