/* ddbclient — blocking DynamoDB calls for tests (curl easy + the project's
 * SigV4), against DynamoDB Local at $DDB2ES_TEST_DDB_ENDPOINT. */
#ifndef DDB2ES_TEST_DDBCLIENT_H
#define DDB2ES_TEST_DDBCLIENT_H

#include <jansson.h>
#include <stdbool.h>

/* The DynamoDB Local endpoint, or NULL when the suite runs without it (the
 * test then skips itself with a reason). */
const char *ddbc_endpoint(void);
/* Calls OPERATION with body (a JSON text); returns the parsed reply (caller
 * decrefs) and the HTTP status in *status (may be NULL), NULL without reply. */
json_t *ddbc_call(const char *op, const char *body, long *status);
/* Like ddbc_call with a json_t body (stolen); asserts a 2xx reply. */
json_t *ddbc_callj(const char *op, json_t *body);
/* A unique table name with the given prefix (per process and call). */
void ddbc_table_name(char *out, size_t outlen, const char *prefix);
/* Creates a table with a stream of view type view ("NEW_AND_OLD_IMAGES"...);
 * range_key/range_type may be NULL (hash-only).  Types are "S", "N" or "B". */
void ddbc_create_table(const char *name, const char *hash_key, const char *hash_type,
                       const char *range_key, const char *range_type, const char *view);
void ddbc_put(const char *table, const char *item_json);
void ddbc_delete(const char *table, const char *key_json);
/* Every item of the table (Scan, all pages), as an array (caller decrefs). */
json_t *ddbc_scan_all(const char *table);

#endif
