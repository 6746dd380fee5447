/* schema_paths — what `ddb2es schema` learns from a table's items: every
 * attribute path with the DynamoDB types it held, the paths whose type
 * varies, the largest document as the engines count it, and an index
 * template under which every value seen can be indexed.
 *
 * Paths are the document's names, as transform writes them (renamed names
 * renamed, include/exclude applied, hmac attributes a hex string, so S):
 * the caller runs transform_item or transform_record with on_member =
 * schema_paths_member and member_arg the struct, between schema_paths_begin
 * and schema_paths_end.  A map member is "a.b"; a list's elements "a[]"
 * (their members "a[].b", a list in a list "a[][]"); a set is one path of
 * its set type.  A name holding a dot ("a.b") gives the path the engines
 * read it as: object a, field b.
 *
 * Counts are per item: "N": 3 means three items held a number there.
 * A path varies when it held more than one type other than NULL: a null
 * maps nothing in the index, so it conflicts with no type.
 *
 * Engine fields (index.mapping.total_fields.limit and depth.limit, as
 * MappingLookup counts them): the object and leaf fields a document maps;
 * arrays add no field and a list's elements share its field, so "a" and
 * "a[]" are one engine field; null and empty lists map nothing.  Depth: the
 * root is 1, each object one more ("a" an object: 2, a field inside it too);
 * OpenSearch also refuses arrays nested deeper than the limit, so a list in
 * a list in a list counts 3.
 *
 * The template (JSON: settings and mappings, for [table] index_template):
 *   - date_detection off: a string that looks like a date in the first
 *     item would make the field a date and refuse later plain strings;
 *   - dynamic templates for what JSON can tell apart: numbers (N, NS) as
 *     double with an "exact" keyword sub-field holding the number as sent
 *     (deploy/index-template.json: 38 digits kept); strings (S, SS) as text
 *     with a "keyword" sub-field (the engines' default, made explicit);
 *     booleans get the engines' default;
 *   - explicit properties where JSON cannot tell: a field holding only B
 *     or BS is "binary" (base64, not searchable, kept in _source);
 *   - a field whose engine kind varies gets a mapping that takes every
 *     value seen, in both Elasticsearch and OpenSearch: scalars only
 *     (strings, numbers, booleans, binary) a "keyword" (it takes each as
 *     its text: exact-match searchable; ignore_above 8191 keeps a long
 *     value within Lucene's 32766-byte term, left out of the index but kept
 *     in _source); any mix with an object (M, or a dotted name below it)
 *     {"type":"object","enabled":false}: kept in _source, not indexed, and
 *     the engines take any value there.  ("flattened" is Elasticsearch's,
 *     "flat_object" OpenSearch's: neither takes scalars and objects both.)
 *   - settings: depth.limit the largest depth seen plus 2, at least the
 *     engines' default 20; total_fields.limit twice the fields the
 *     template maps (multi-fields count), rounded up to 100, at least 1000.
 * A path whose DynamoDB type varies but whose engine kind does not (a list
 * of strings here, a string there) needs nothing explicit.
 *
 * Memory is bounded: at most max_paths paths and SCHEMA_PATHS_MAX_BYTES of
 * path text are tracked; past either, new paths are counted as untracked
 * and capped is set (the report says so).  One item's observations are
 * held until schema_paths_end (an item is at most 400 KB).
 *
 * Pure: jansson only.  Not thread-safe.
 */
#ifndef DDB2ES_SCHEMA_PATHS_H
#define DDB2ES_SCHEMA_PATHS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCHEMA_PATHS_MAX 10000              /* paths tracked by default */
#define SCHEMA_PATHS_MAX_BYTES (32u << 20)  /* their text */

struct schema_paths;

/* NULL on allocation failure.  max_paths 0: SCHEMA_PATHS_MAX. */
struct schema_paths *schema_paths_new(size_t max_paths);
void schema_paths_free(struct schema_paths *sp);

/* Starts an item: what on_member notes belongs to it. */
void schema_paths_begin(struct schema_paths *sp);
/* transform_cfg.on_member; arg is the struct schema_paths. */
void schema_paths_member(void *arg, const char *name, size_t len, int depth, json_t *av,
                         bool hmac);
/* Ends the item: keep (it became a document) counts what was noted, else
 * it is forgotten.  0, or -ENOMEM (the item is not counted). */
int schema_paths_end(struct schema_paths *sp, bool keep);

/* Items counted, and whether the cap on paths was hit. */
uint64_t schema_paths_items(const struct schema_paths *sp);
bool schema_paths_capped(const struct schema_paths *sp);

/* The report, a new object (NULL: out of memory):
 * {"items":n, "paths":[{"path":p,"types":{"S":n,...}}...] (by path),
 *  "varying":[p...], "max_depth":n, "max_fields":n, "fields":n (what the
 *  template maps), "paths_capped":bool, "untracked":n (values at paths
 *  not tracked), "template":{...}}.
 * A path that is not valid UTF-8 is shown with '?' for its bytes >= 0x80. */
json_t *schema_paths_report(const struct schema_paths *sp);

#endif
