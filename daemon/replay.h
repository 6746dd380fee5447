/* replay — `ddb2es replay`: backfill one table's index from a parallel Scan
 * of the table, a DynamoDB export, a file of stream records or a dead-letter
 * file, with the daemon's document rules, sink, retries and dead-letter
 * handling, safely beside a running `ddb2es run` (see README "Backfills").
 *
 * Versions (DESIGN invariant 2): a scanned item gets
 * ((read_second - margin) << 20) - 1, which loses to every stream event of
 * that second or later; an export line the same with the export's time; a
 * stream record the daemon's version (creation second << 20 | ordinal).  A
 * scanned image is never sent later than max_age after it was read (the
 * engine keeps a delete's tombstone for 60 s only): older ones are read
 * again, or dropped when the item is gone.
 *
 * Stream records: the daemon counts the ordinal along one shard's lineage
 * (daemon/ack.h), and neither a Streams record nor a Lambda event names its
 * shard (eventSourceARN is the stream's).  A record's shard is its own
 * "shardId" member, else that of the {"Records":[...]} document around it,
 * else DDBStreamBatchInfo.shardId of a Lambda on-failure record holding the
 * event in "payload" (an S3 destination's); "parentShardId" beside it names
 * the parent.  With a shard, ordinals are counted along it (from the
 * parent's state when the parent is named and came first), the daemon's
 * when the file holds the shard's records from where the daemon began; a
 * record at or below the shard's last sequence number is a repeat, skipped.
 * Without one, along the item's own records in the file: a subset of its
 * lineage, so never above the daemon's ordinal (an older record never wins
 * over the daemon's newer image), in file order per item (the last IV_MAX
 * items are remembered).  Every record counts, sent or not, as in the
 * daemon.  Limits: a shard the daemon began reading mid-second, or a child
 * read before (or without) its parent, can differ within that second.
 *
 * Dead-letter entries are not sent as they were: each entry's item is read
 * again (consistent BatchGetItem, as the expired Scan images are) and sent
 * as a scanned one, or deleted at that version when it is gone.  The item's
 * key is the entry's "keys" (dlq.h); for input that never became a document
 * the record's dynamodb.Keys or the item's key attributes; else the _id read
 * back with DescribeTable's key types and checked by making the _id again.
 * An entry whose key cannot be had (a hmac'd key attribute, --key without
 * types, an _id of another form) is counted, logged and not replayed; a key
 * read back from an _id that may be a digest (64 hex) whose item is missing
 * sends nothing.
 */
#ifndef DDB2ES_REPLAY_H
#define DDB2ES_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

struct config;

enum replay_format { REPLAY_SCAN, REPLAY_EXPORT, REPLAY_STREAM, REPLAY_DLQ };

struct replay_opts {
    const char *table;         /* required: a configured [table] */
    enum replay_format format; /* REPLAY_SCAN for --scan, else --file PATH */
    const char *file;
    const char *index;         /* instead of the table's index, or NULL */
    const char *keys;          /* "hash[,range]": the key schema without DescribeTable, or NULL */
    int segments;              /* Scan segments, 1..1024 (0: 4, or the saved run's) */
    bool only;                 /* --only-segments A-B: this process scans segments */
    int only_first, only_last; /*   only_first..only_last (0-based) of `segments` */
    double rate;               /* items per second, 0 = no cap */
    bool consistent;           /* ConsistentRead on Scan */
    bool restart;              /* forget the saved Scan progress */
    bool dry_run;              /* bulk bodies to stdout, nothing posted, no progress saved */
    int64_t margin_s;          /* clock-skew margin of backfill versions (default 5) */
    int64_t max_age_ms;        /* longest a scanned image may wait before it is sent (30000) */
    int64_t give_up_ms;        /* the engine failing every request this long: exit 69 (300000) */
    int64_t read_time;         /* export: its time (epoch s) when there is no manifest; 0 = none */
    const char *dlq_out;       /* --format dlq: where entries that fail again go */
    int64_t progress_ms;       /* progress log period when stderr is not a terminal (10000) */
    const char *progress_name; /* the Scan's progress file and lock are STATE_DIR/<name>.json
                                  and .lock instead of replay-<table>...: a rebuild's
                                  backfill, apart from the user's own replays; NULL: those */
};

/* Runs the replay to its end (or SIGINT/SIGTERM) and returns the exit code:
 * 0 everything finished; 65 malformed input (one line "FILE:LINE: what"; what
 * was read before it has finished); 69 the engine or DynamoDB unavailable
 * for give_up_ms; 66 an input file missing; 73 the table's replay is locked by another replay; 74 I/O;
 * 75 interrupted (the Scan continues where it stopped on the next run);
 * 77 permission; 78 configuration. */
int replay_run(const struct config *cfg, const struct replay_opts *o);

/* Parses "2024-05-01T12:00:00Z" (fraction and offset allowed, "Z" or
 * "+HH:MM") or epoch seconds into *out.  0 or -EINVAL. */
int replay_parse_time(const char *s, int64_t *out);

#endif
