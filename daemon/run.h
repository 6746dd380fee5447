/* run — `ddb2es run`: follow every configured table's stream and index it
 * until SIGTERM/SIGINT.  Returns the process exit code (sysexits.h): 0 after
 * a clean stop, 65 corrupt checkpoint file, 73 state directory locked or not
 * creatable, 74 checkpoint not writable at stop, 78 configuration. */
#ifndef DDB2ES_RUN_H
#define DDB2ES_RUN_H

#include <stdbool.h>

struct config;

int run_daemon(const struct config *cfg, bool dry_run);
/* `ddb2es check` beyond the configuration: finds the credentials, reaches
 * every table's stream and the search engine, prints what it found.
 * 0 when everything answered, 77 credentials or permissions, 69 something
 * unreachable or missing, 65 a corrupt checkpoint file, 78 configuration. */
int run_check(const struct config *cfg);

#endif
