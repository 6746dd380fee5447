/* app — what one ddb2es process shares between its parts: the loop, the
 * configuration, the AWS and sink clients, the checkpoint store, the readers
 * and the counters the metrics endpoint shows.  One per process. */
#ifndef DDB2ES_APP_H
#define DDB2ES_APP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

struct config;
struct http;
struct creds;
struct aws;
struct sink;
struct ckpt;
struct reader;
struct reader_timing;
struct shard_timing;
struct slots;
struct lease;

struct app {
    uv_loop_t *loop;
    const struct config *cfg;
    struct http *http;       /* AWS calls: TLS always verified against the system CAs */
    struct http *sink_http;  /* the search engine: [sink] tls_verify and ca_file */
    struct creds *creds;
    struct aws *aws;
    struct sink *sink;
    struct ckpt *ckpt;
    struct lease *lease;     /* [leases]: the coordinator (the store is on its table); else NULL */
    struct reader **readers; /* one per configured table */
    size_t nreaders;
    bool stopping;
    bool dry_run;
    struct slots *slots;     /* GetRecords read slots over all shards (slots.h) */
    time_t (*now)(void);     /* wall clock; replaceable in tests */
    /* The readers' and shards' waits (reader.h, shard.h); NULL: the
     * daemon's own.  Tests shorten them. */
    const struct reader_timing *reader_timing;
    const struct shard_timing *shard_timing;
    /* Process-wide counters (per-table ones live in each reader). */
    uint64_t checkpoint_writes, checkpoint_failures;
};

#endif
