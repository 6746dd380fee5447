/* clients — what `run`, `check` and `replay` set up the same way: the
 * region, the two HTTP clients (AWS calls always verify TLS; the search
 * engine follows [sink] tls_verify / ca_file), the credentials, the DynamoDB
 * client and the sink; and a table's document rules (transform_cfg). */
#ifndef DDB2ES_CLIENTS_H
#define DDB2ES_CLIENTS_H

#include <stddef.h>

#include "aws/region.h"
#include "indexer/sink.h"
#include "indexer/transform.h"

struct app;
struct config;
struct config_table;

struct clients {
    char region[64];
    struct aws_settings aws_settings;
    unsigned open_http;       /* clients_take_down: HTTP clients still closing */
    void (*closed)(void *arg);
    void *closed_arg;
};

/* What `check`, `run` and `replay` refuse before they set anything up, with
 * no network, in the order `run` always made these checks: credentials
 * over plain http, ca_file and the search domain's region
 * (config_check_transport); the secret files, read into cfg for
 * clients_open and clients_transform_cfg (config_read_secrets; those of
 * table only_table alone when not NULL); each table's index_template, read
 * into its index_template_body and checked to be an index body (a JSON
 * object of settings, mappings and aliases; 1 MiB at most); the shared AWS
 * config files; and,
 * when the region is known without IMDS, [aws] allowed_regions.  Returns 0,
 * or the exit code (78; 71 out of memory) with one line in err, in the shape
 * of config_refuse when a key is at fault. */
int clients_preflight(struct config *cfg, const char *only_table, char *err, size_t errlen);

/* Sets app->http, app->sink_http, app->creds, app->aws and app->sink (with
 * done/resume/arg as the sink's callbacks, app->dry_run, and dlq_path
 * instead of [sink] dlq_path when not NULL); app->loop and app->cfg must be
 * set, and clients_preflight must have passed on app->cfg.  The loop may
 * run while IMDS is asked for the region.  Returns 0, or the exit code after
 * one line on stderr (78 configuration, 70 internal).
 * Whatever was set up stays in app for the caller to take down; then
 * clients_close(c). */
int clients_open(struct clients *c, struct app *app, const char *dlq_path, sink_done_cb *done,
                 sink_resume_cb *resume, void *arg);
/* Frees app->aws and app->creds and closes app->http and app->sink_http
 * (their requests end with -ECANCELED); closed(arg) runs, on the loop, once
 * both are closed.  The sink must be closed before. */
void clients_take_down(struct clients *c, struct app *app, void (*closed)(void *arg), void *arg);
/* Takes down at once what clients_open set up in app, on a loop that runs
 * nothing else of the caller's: the sink closed without a deadline (not
 * freed), app->aws and app->creds freed, both HTTP clients closed, every
 * handle left on the loop closed, the loop run to its end.  For a start
 * that failed, or a command that ran its own loop to the end. */
void clients_take_down_now(struct app *app);
/* Frees the settings and forgets every table's encstats.  Zeroed c is fine. */
void clients_close(struct clients *c);

/* The document rules of a [table] section: index, separator, TTL deletes,
 * include/exclude/hmac (borrowed from t), encrypted_items (with plaintext,
 * the table's encstats hook: its counters and log line), and a copy of the
 * HMAC key that clients_preflight read from hmac_key_file into *key (wipe
 * and free it with clients_tf_key_free).  The key schema (hash_key,
 * range_key) is left NULL: it comes from DescribeTable.
 * 0, or -errno with the reason in err (never the secret). */
int clients_transform_cfg(const struct config_table *t, struct transform_cfg *tf,
                          unsigned char **key, char *err, size_t errlen);
void clients_tf_key_free(unsigned char *key, size_t len);

#endif
