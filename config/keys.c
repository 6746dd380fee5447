/* config keys — the table of every key: section, type, default, bounds, help. */
#include "config/config_int.h"

#include <stdint.h>
#include <string.h>

/* Enum fields are written through an int pointer by the table code. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_auth) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_compression) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_start) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_ttl) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_encrypted) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_type_conflicts) == sizeof(int), "enum size");

static const char *const level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const format_names[] = { "text", "json", NULL };
const char *const config_auth_names[] = { "sigv4", "basic", "apikey", "none", NULL };
static const char *const comp_names[] = { "none", "gzip", NULL };
static const char *const start_names[] = { "trim_horizon", "latest", NULL };
static const char *const ttl_names[] = { "delete", "keep", NULL };
static const char *const encrypted_names[] = { "plaintext", "as_is", NULL };
static const char *const conflicts_names[] = { "side", "dlq", NULL };

#define G(field) offsetof(struct config, field)
#define TB(field) offsetof(struct config_table, field)

const struct option config_global_opts[] = {
    { "daemon", "state_dir", T_STRING, "/var/lib/ddb2es", 0, 0, G(daemon.state_dir), NULL, NULL,
      "directory of checkpoints.json (and of the dead-letter file by default)" },
    { "daemon", "log_level", T_ENUM, "info", 0, 0, G(daemon.log_level), level_names, NULL,
      "least severe level logged" },
    { "daemon", "log_format", T_ENUM, "text", 0, 0, G(daemon.log_format), format_names, NULL,
      "text (journald-friendly) or one JSON object a line" },
    { "daemon", "metrics_listen", T_STRING, "127.0.0.1:9108", 0, 0, G(daemon.metrics_listen),
      NULL, config_check_listen, "HOST:PORT serving /metrics and /healthz; empty = off" },
    { "daemon", "shutdown_timeout", T_DURATION, "20s", 1 * SEC, HOUR, G(daemon.shutdown_timeout_ms),
      NULL, NULL, "how long a stop may take to config_finish in-flight bulks and checkpoint" },
    { "daemon", "checkpoint_interval", T_DURATION, "5s", 0, 10 * MINUTE,
      G(daemon.checkpoint_interval_ms), NULL, NULL,
      "debounce of checkpoint writes (0 = write at every advance)" },
    { "daemon", "max_queue_bytes", T_SIZE, "16m", 1 * MIB, 16 * GIB, G(daemon.max_queue_bytes),
      NULL, NULL, "memory cap for documents between the readers and the sink" },
    { "daemon", "idle_poll_interval", T_DURATION, "2s", 100, MINUTE,
      G(daemon.idle_poll_interval_ms), NULL, NULL,
      "longest wait between GetRecords calls on an idle shard (each call is billed)" },
    { "daemon", "read_concurrency", T_INT, "8", 1, 1024, G(daemon.read_concurrency), NULL, NULL,
      "GetRecords requests in flight over all shards (each reply can add up to 1 MB)" },
    { "daemon", "shard_read_ahead", T_INT, "20000", 1000, 10000000, G(daemon.shard_read_ahead),
      NULL, NULL,
      "records a shard reads past its checkpoint before it waits (a record not finished holds "
      "the checkpoint; ~64 bytes each)" },
    { "daemon", "shard_list_interval", T_DURATION, "60s", 1 * SEC, HOUR,
      G(daemon.shard_list_interval_ms), NULL, NULL,
      "how often each stream's shards are listed again (DescribeStream)" },
    { "daemon", "stream_check_interval", T_DURATION, "5m", 1 * SEC, 24 * HOUR,
      G(daemon.stream_check_interval_ms), NULL, NULL,
      "how often each table's latest stream ARN is checked (DescribeTable)" },
    { "daemon", "stream_settle", T_DURATION, "10s", 1 * SEC, HOUR, G(daemon.stream_settle_ms),
      NULL, NULL,
      "how long a disabled stream's listings must show it complete before it counts as such" },

    { "aws", "region", T_STRING, NULL, 0, 0, G(aws.region), NULL, config_check_region,
      "default: AWS_REGION, AWS_DEFAULT_REGION, the profile, then IMDS" },
    { "aws", "profile", T_STRING, NULL, 0, 0, G(aws.profile), NULL, NULL,
      "shared config profile; default: AWS_PROFILE, then \"default\"" },
    { "aws", "endpoint", T_STRING, NULL, 0, 0, G(aws.endpoint), NULL, config_check_url,
      "http(s) URL overriding DynamoDB and DynamoDB Streams (VPC endpoint, DynamoDB Local)" },
    { "aws", "allowed_regions", T_LIST, NULL, 0, 0, G(aws.allowed_regions), NULL,
      config_check_region,
      "comma list: refuse to start if a table or the sink is in another region" },
    { "aws", "use_fips_endpoint", T_BOOL, "false", 0, 0, G(aws.use_fips_endpoint), NULL, NULL,
      "use the FIPS endpoints (not with endpoint)" },
    { "aws", "use_dualstack_endpoint", T_BOOL, "false", 0, 0, G(aws.use_dualstack_endpoint), NULL,
      NULL, "use the dual-stack (IPv6) endpoints (not with endpoint)" },

    { "sink", "url", T_STRING, NULL, 0, 0, G(sink.url), NULL, config_check_url,
      "required: http(s) URL of the OpenSearch/Elasticsearch cluster" },
    { "sink", "auth", T_ENUM, "sigv4", 0, 0, G(sink.auth), config_auth_names, NULL,
      "how requests are authenticated" },
    { "sink", "sigv4_service", T_STRING, NULL, 0, 0, G(sink.sigv4_service), NULL,
      config_check_service,
      "es (OpenSearch Service) or aoss (Serverless); default: aoss for *.aoss.amazonaws.com" },
    { "sink", "username", T_STRING, NULL, 0, 0, G(sink.username), NULL, NULL,
      "basic auth user" },
    { "sink", "password_file", T_STRING, NULL, 0, 0, G(sink.password_file), NULL, NULL,
      "basic auth password file; a bare name is looked up in $CREDENTIALS_DIRECTORY" },
    { "sink", "api_key_file", T_STRING, NULL, 0, 0, G(sink.api_key_file), NULL, NULL,
      "Elasticsearch API key file (sent as ApiKey); bare name as for password_file" },
    { "sink", "ca_file", T_STRING, NULL, 0, 0, G(sink.ca_file), NULL, NULL,
      "extra CA bundle (PEM) trusted for the sink" },
    { "sink", "tls_verify", T_BOOL, "true", 0, 0, G(sink.tls_verify), NULL, NULL,
      "verify the sink's certificate; false is logged as a warning" },
    { "sink", "bulk_max_actions", T_INT, "1000", 1, 100000, G(sink.bulk_max_actions), NULL, NULL,
      "actions per bulk request" },
    { "sink", "bulk_max_bytes", T_SIZE, "5m", 1 * KIB, 100 * MIB, G(sink.bulk_max_bytes), NULL,
      NULL, "bytes per bulk request body" },
    { "sink", "flush_interval", T_DURATION, "1s", 10, 10 * MINUTE, G(sink.flush_interval_ms), NULL,
      NULL, "longest wait before a partial bulk is sent" },
    { "sink", "concurrency", T_INT, "2", 1, 64, G(sink.concurrency), NULL, NULL,
      "bulk requests in flight" },
    { "sink", "compression", T_ENUM, "none", 0, 0, G(sink.compression), comp_names, NULL,
      "request body compression" },
    { "sink", "dlq_path", T_STRING, NULL, 0, 0, G(sink.dlq_path), NULL, NULL,
      "dead-letter file; default: STATE_DIR/dlq.ndjson" },
    { "sink", "request_timeout", T_DURATION, "60s", 1 * SEC, 10 * MINUTE,
      G(sink.request_timeout_ms), NULL, NULL, "a bulk request taking longer is retried" },
    { "sink", "tombstone_ttl", T_DURATION, "10m", 1 * SEC, 24 * HOUR, G(sink.tombstone_ttl_ms),
      NULL, NULL,
      "how long a finished delete is remembered: no older action on its _id is sent meanwhile" },
    { "sink", "tombstone_max", T_INT, "32768", 1, 10000000, G(sink.tombstone_max), NULL, NULL,
      "deletes remembered at most (the oldest are forgotten first)" },
    { "sink", "max_retry_backoff", T_DURATION, "30s", 100, 10 * MINUTE,
      G(sink.max_retry_backoff_ms), NULL, NULL, "cap of the exponential backoff between retries" },
    { "sink", "probe", T_BOOL, "true", 0, 0, G(sink.probe), NULL, NULL,
      "prove external versions work with a canary document (\\ddb2es-probe, written then "
      "deleted) in each index, at check and at start" },

    { "leases", "table", T_STRING, "ddb2es-leases", 0, 0, G(leases.table), NULL,
      config_check_table_name,
      "DynamoDB table of the leases and checkpoints shared by the workers of this configuration" },
    { "leases", "create_table", T_BOOL, "true", 0, 0, G(leases.create_table), NULL, NULL,
      "create the lease table (on-demand billing) when missing; false: refuse to start" },
    { "leases", "worker_id", T_STRING, NULL, 0, 0, G(leases.worker_id), NULL,
      config_check_worker_id,
      "this worker's name in the lease table, unique among running workers; default hostname:pid" },
    { "leases", "lease_duration", T_DURATION, "10s", 2 * SEC, 5 * MINUTE,
      G(leases.lease_duration_ms), NULL, NULL,
      "a lease not renewed for this long may be taken by another worker (renewed every third of it)" },
};

const struct option config_table_opts[] = {
    { "table", "index", T_STRING, NULL, 0, 0, TB(index), NULL, config_check_index,
      "target index; default: the table name, lowercased" },
    { "table", "start", T_ENUM, "trim_horizon", 0, 0, TB(start), start_names, NULL,
      "where to begin when no checkpoint exists" },
    { "table", "id_separator", T_CHAR, "|", 0, 0, TB(id_separator), NULL, NULL,
      "joins the key values into the document _id" },
    { "table", "on_ttl_delete", T_ENUM, "delete", 0, 0, TB(on_ttl_delete), ttl_names, NULL,
      "what a REMOVE made by TTL expiry does to the document" },
    { "table", "include", T_LIST, NULL, 0, 0, TB(include), NULL, NULL,
      "comma list: only these attributes are indexed (not with exclude)" },
    { "table", "exclude", T_LIST, NULL, 0, 0, TB(exclude), NULL, NULL,
      "comma list: these attributes are never indexed (not with include)" },
    { "table", "hmac", T_LIST, NULL, 0, 0, TB(hmac), NULL, NULL,
      "comma list: values replaced by hex HMAC-SHA256 keyed by hmac_key_file" },
    { "table", "hmac_key_file", T_STRING, NULL, 0, 0, TB(hmac_key_file), NULL, NULL,
      "HMAC key file, required with hmac; bare name as for password_file" },
    { "table", "encrypted_items", T_ENUM, "plaintext", 0, 0, TB(encrypted_items),
      encrypted_names, NULL,
      "items written by client-side encryption: plaintext (their plaintext attributes and "
      "beacons only) or as_is (every attribute, ciphertext as base64)" },
    { "table", "index_template", T_STRING, NULL, 0, 0, TB(index_template), NULL, NULL,
      "JSON file (settings, mappings, aliases) the index is created from when it does not exist" },
    { "table", "type_conflicts", T_ENUM, "side", 0, 0, TB(type_conflicts), conflicts_names, NULL,
      "a value the index's mapping refuses (another type): side (moved to conflicts_field, the "
      "document indexed) or dlq (the document dead-lettered)" },
    { "table", "conflicts_field", T_STRING, "_ddb_conflicts", 0, 0, TB(conflicts_field), NULL,
      config_check_field_name, "top-level field holding the values moved by type_conflicts = side" },
};

_Static_assert(ARRAY_SIZE(config_global_opts) == NGLOBAL, "NGLOBAL in config_int.h");
_Static_assert(ARRAY_SIZE(config_table_opts) == NTABLE, "NTABLE in config_int.h");

const char *const config_sections[] = { "daemon", "aws", "sink", "leases" };
_Static_assert(ARRAY_SIZE(config_sections) == NSECTIONS, "NSECTIONS in config_int.h");

/* ---- lookups ---- */

const struct option *config_find_opt(const struct option *opts, size_t n, const char *section,
                                     const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0 && strcmp(opts[i].key, key) == 0)
            return &opts[i];
    return NULL;
}

/* The key of section closest to key (which is unknown there), or NULL. */
const char *config_closest_key(const char *section, const char *key)
{
    const struct option *opts =
        strcmp(section, "table") == 0 ? config_table_opts : config_global_opts;
    size_t n = strcmp(section, "table") == 0 ? NTABLE : NGLOBAL, best = SIZE_MAX;
    const char *found = NULL;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(opts[i].section, section) != 0)
            continue;
        size_t d = config_levenshtein(key, opts[i].key);
        if (d < best) {
            best = d;
            found = opts[i].key;
        }
    }
    return found && config_close_enough(key, best) ? found : NULL;
}

