/* e2e — end-to-end helpers: run ddb2es against DynamoDB Local and the search
 * double, and check that an index equals a table. */
#ifndef DDB2ES_TEST_E2E_H
#define DDB2ES_TEST_E2E_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "tests/support/proc.h"

struct searchd;

struct e2e_table {
    const char *name, *index;
    const char *hash, *range; /* key attribute names; range NULL for hash-only */
    const char *extra;        /* more lines for its [table] section, or NULL */
};

/* [daemon] metrics_listen for the next e2e_config (NULL or "": off, so
 * tests running in parallel do not fight over the default port). */
extern const char *e2e_metrics_listen;

/* Writes a config file for ddb2es in a new state dir under $TMPDIR and returns
 * its path (static buffer) — the state dir is <dir>/state, the DLQ <dir>/dlq.ndjson. */
const char *e2e_config(const char *sink_url, const struct e2e_table *tables, size_t n,
                       const char *extra_sections, char *dir_out, size_t dirlen);
/* The same, with [aws] endpoint = aws_endpoint and extra [daemon] lines. */
const char *e2e_config_ex(const char *aws_endpoint, const char *sink_url,
                          const struct e2e_table *tables, size_t n, const char *daemon_extra,
                          const char *extra_sections, char *dir_out, size_t dirlen);
/* Starts `ddb2es run -c conf` with the test credentials and region. */
void e2e_start(struct proc *p, const char *conf);
/* The same with these environment variables ("NAME=VALUE", NULL-ended)
 * instead of the test credentials. */
void e2e_start_env(struct proc *p, const char *conf, const char *const env[]);
/* SIGTERM, then waits; returns the exit code (-1 on timeout, then SIGKILLs). */
int e2e_stop(struct proc *p, long ms);

/* JSON text with every number token replaced by the string "#N:<canonical
 * spelling>", so jansson can hold 38-digit numbers.  Caller frees. */
char *e2e_quote_numbers(const char *text, size_t len);
/* The double's dump, numbers quoted as above (caller decrefs). */
json_t *e2e_dump(struct searchd *sd);
/* The document _id ddb2es must give this item (id function version 2 of
 * README "Documents", written apart from the daemon's): its bytes (they may
 * hold NUL) and a NUL in out; returns their number. */
size_t e2e_doc_id(json_t *item, const char *hash, const char *range, char sep, char *out,
                  size_t outlen);
/* The index body README recommends for DynamoDB items (as
 * deploy/index-mappings.json, date detection aside): every number a double
 * (a DynamoDB number goes to 38 digits and ±1E+125, beyond what a
 * dynamically mapped long holds, so without it the engine refuses such
 * documents; _source keeps the exact text), and room for DynamoDB's 32
 * levels of maps.  The random workloads' many distinct names need more than
 * the engines' 1000 fields, so the test indexes allow 20000. */
extern const char e2e_numbers_as_double[];
/* Creates index in the double with that body (asserts it was created). */
void e2e_create_index(struct searchd *sd, const char *index);
/* True when the index holds exactly the table's items, each converted per
 * SPEC (numbers compared by value, names the engines refuse renamed by the
 * rule of README "Documents"); else false with the first difference in why. */
bool e2e_index_equals_table(struct searchd *sd, const struct e2e_table *t, char *why,
                            size_t whylen);
/* Polls e2e_index_equals_table until true or ms pass. */
bool e2e_wait_equal(struct searchd *sd, const struct e2e_table *t, long ms, char *why,
                    size_t whylen);

#endif
