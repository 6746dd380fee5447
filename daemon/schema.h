/* schema — `ddb2es schema`: read a table (a parallel Scan, rate-capped like
 * `replay --scan`) or an export or stream-record file (as `replay --file`
 * reads them), run every item through the table's document rules, and print
 * every attribute path of the documents with the DynamoDB types it held,
 * the paths whose type varies, the largest document as the engines count
 * fields and depth, and a suggested index template under which every value
 * seen is indexed (indexer/schema_paths.h says how each choice is made).
 * Nothing is written anywhere: the report goes to stdout.
 */
#ifndef DDB2ES_SCHEMA_H
#define DDB2ES_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

struct config;

struct schema_opts {
    const char *table;  /* required: a configured [table] */
    const char *file;   /* --file PATH; NULL: --scan */
    bool stream;        /* --format stream (else export) */
    const char *keys;   /* "hash[,range]": the key schema without DescribeTable, or NULL */
    int segments;       /* Scan segments, 1..1024 (0: 4) */
    double rate;        /* items read per second over all segments, 0 = no cap */
    bool json;          /* the report as one JSON document */
    size_t max_paths;   /* paths tracked (0: SCHEMA_PATHS_MAX) */
};

/* Reads the table or the file to its end and prints the report on stdout.
 * Returns the exit code: 0 done (also when the cap on paths was hit: the
 * report and a line on stderr say so); 64 usage; 65 malformed input (one
 * line "FILE:LINE: what", no report); 66 no such file; 69 DynamoDB
 * unavailable; 70 internal; 74 I/O; 75 interrupted (no report); 77
 * permission; 78 configuration. */
int schema_run(const struct config *cfg, const struct schema_opts *o);

#endif
