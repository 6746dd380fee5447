/* probe — what `ddb2es check` does once the configuration is valid: find the
 * AWS credentials, DescribeTable and DescribeStream every configured table,
 * and ping the search engine, printing one line for each.  done(arg, code)
 * runs once everything answered: 0 when all is well, 77 for credentials or
 * permissions, 69 when something could not be reached or is missing. */
#ifndef DDB2ES_PROBE_H
#define DDB2ES_PROBE_H

struct app;

/* 0, or -ENOMEM (done not called). */
int probe_run(struct app *app, void (*done)(void *arg, int exit_code), void *arg);

#endif
