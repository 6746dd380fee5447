/* ddb2es — keep a search index equal to a DynamoDB table by following its stream.
 * The command line: which command, which configuration, and the exit code. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "base/http.h"
#include "base/jcache.h"
#include "daemon/clients.h"
#include "daemon/rebuild.h"
#include "daemon/replay.h"
#include "daemon/run.h"
#include "daemon/schema.h"
#include "daemon/status.h"
#include "daemon/verify.h"
#include "base/version.h"

#define DEFAULT_CONFIG "/etc/ddb2es/ddb2es.conf"

static const char usage[] =
    "usage: ddb2es COMMAND [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  run      follow every configured table's stream and index it (until SIGTERM)\n"
    "  check    validate the configuration, print the effective settings, then find the\n"
    "           credentials, reach every stream and probe the search engine: what it is,\n"
    "           what each index is, whether external versions hold (exit 78 for a target\n"
    "           that cannot mirror; --offline: only the configuration)\n"
    "  status   every shard's checkpoint, state and age (and live facts from a running\n"
    "           daemon's metrics endpoint); --json for scripts\n"
    "  replay   backfill one table's index, beside a running daemon if need be\n"
    "           (ddb2es replay --help)\n"
    "  verify   hold one table against its index: missing, stale and extra documents;\n"
    "           --repair fixes them (ddb2es verify --help)\n"
    "  rebuild  build a new index beside the live one, fill and verify it, move the\n"
    "           alias to it (ddb2es rebuild --help)\n"
    "  schema   every attribute path of one table with its DynamoDB types, the paths whose\n"
    "           type varies, and a suggested index template (ddb2es schema --help)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration file (default: $DDB2ES_CONFIG, then " DEFAULT_CONFIG ")\n"
    "      --dry-run       run, replay: write the bulk bodies to stdout instead of posting them\n"
    "      --json          status: print JSON\n"
    "      --write-checkpoints\n"
    "                      status, with [leases]: write the lease table's positions into\n"
    "                      STATE_DIR/checkpoints.json (every worker stopped), to go back to\n"
    "                      one process\n"
    "      --offline       check: the configuration only, no network\n"
    "  -h, --help          this text;  ddb2es --version: the version\n"
    "\n"
    "Every setting can also come from the environment: DDB2ES_<SECTION>_<KEY>,\n"
    "DDB2ES_TABLES=table[:index],...  See the README.\n";

static const char replay_usage[] =
    "usage: ddb2es replay [-c FILE] --table T --scan [--segments N] [--rate R] [options]\n"
    "       ddb2es replay [-c FILE] --table T --file PATH [--format export|stream|dlq] [options]\n"
    "\n"
    "Backfills the index of [table T] with the daemon's document rules, sink, retries and\n"
    "dead-letter file.  Safe beside `ddb2es run` on the same index: backfilled documents carry\n"
    "versions that lose to every stream event from the moment they were read.\n"
    "\n"
    "sources:\n"
    "  --scan                 a parallel Scan of the table; progress is saved in\n"
    "                         STATE_DIR/replay-T.json: run again to continue after a stop\n"
    "  --segments N           Scan segments, 1..1024 (default 4, or the saved run's)\n"
    "  --only-segments A[-B]  scan only segments A..B (0-based) of the N: run one process a\n"
    "                         range, on as many hosts as you like; each range has its own\n"
    "                         progress file STATE_DIR/replay-T.segments-A-B.json\n"
    "  --rate R               at most R items read per second over all segments (default: no cap;\n"
    "                         lowered by itself while DynamoDB throttles)\n"
    "  --consistent-read      strongly consistent Scan pages\n"
    "  --restart              forget the saved Scan progress and start over\n"
    "  --file PATH            a file (plain or .gz), or a directory: a DynamoDB export\n"
    "                         (manifest-files.json, data/) or any directory of data files\n"
    "  --format F             export (default): DYNAMODB_JSON lines {\"Item\":{...}};\n"
    "                         stream: stream records, one a line, or Lambda event files\n"
    "                         {\"Records\":[...]};  dlq: a dead-letter file of ddb2es\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      configuration file (as for run)\n"
    "      --index NAME       write to this index instead of the table's\n"
    "      --key HASH[,RANGE] the key schema, instead of asking DescribeTable (files only)\n"
    "      --read-time TIME   export: the export's time (ISO 8601 or epoch seconds) when there\n"
    "                         is no manifest-summary.json beside the data\n"
    "      --margin DUR       clock-skew margin of backfill versions (default 5s)\n"
    "      --max-age DUR      a scanned image waiting longer than this is read again before it\n"
    "                         is sent (default 30s; keep it under the index's gc_deletes, 60s)\n"
    "      --give-up-after DUR  exit 69 once the search engine failed every request this long\n"
    "                         (default 5m)\n"
    "      --dlq-out PATH     --format dlq: entries that fail again (default\n"
    "                         STATE_DIR/dlq-replay-<time>.ndjson)\n"
    "      --progress-every DUR  progress log period when stderr is not a terminal (default 10s)\n"
    "      --dry-run          write the bulk bodies to stdout instead of posting them\n"
    "\n"
    "exit: 0 done; 64 usage; 65 malformed input (FILE:LINE; what came before it is indexed);\n"
    "66 no such file; 69 search engine or DynamoDB unavailable; 73 another replay of T runs;\n"
    "75 interrupted (run again to continue); 77 permission; 78 configuration.\n";

static const char verify_usage[] =
    "usage: ddb2es verify [-c FILE] --table T [--index NAME] [--segments N] [--rate R]\n"
    "                     [--repair] [--json] [options]\n"
    "\n"
    "Holds [table T] against its index, beside a running daemon: a parallel Scan of the table\n"
    "with each page's documents fetched from the index (_mget), then the index's ids (a\n"
    "scroll) held against the table.  Documents are compared as JSON (members in any order,\n"
    "numbers by exact value).  A difference is read again after --settle before it is\n"
    "reported, so what the live daemon is about to write is not reported.\n"
    "  missing  an item without its document\n"
    "  stale    a document that is not the item's current image\n"
    "  extra    a document without an item\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      configuration file (as for run)\n"
    "      --table T          the [table] to verify (required)\n"
    "      --index NAME       hold the table against this index or alias instead of its own\n"
    "      --segments N       Scan segments, 1..1024 (default 4)\n"
    "      --rate R           at most R items read per second over all segments (default: no\n"
    "                         cap; lowered by itself while DynamoDB throttles)\n"
    "      --settle DUR       how long a difference waits before it is read again (default 5s)\n"
    "      --repair           send the items' current documents for the missing and stale ones,\n"
    "                         delete the extra ones; the live daemon's newer writes still win\n"
    "      --margin DUR       clock-skew margin of the repairs' backfill versions (default 5s)\n"
    "      --json             the report as one JSON document on stdout: every differing _id\n"
    "      --progress-every DUR  progress log period when stderr is not a terminal (default 10s)\n"
    "\n"
    "exit: 0 the index equals the table (or every difference was repaired); 1 differences\n"
    "remain; 64 usage; 69 search engine or DynamoDB unavailable; 75 interrupted;\n"
    "77 permission; 78 configuration.\n";
static const char rebuild_usage[] =
    "usage: ddb2es rebuild [-c FILE] --table T [--template FILE] [--drop-old] [options]\n"
    "\n"
    "Builds a new index <index>-<UTC time> beside the table's index, has the running daemon\n"
    "(same configuration and state directory) write every action to both, fills the new one\n"
    "with a Scan, verifies and repairs it, then moves the name to it in one POST /_aliases.\n"
    "Reads through the name never find nothing.  Interrupted, it continues where it stopped\n"
    "(STATE_DIR/rebuild-T.progress.json).\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      configuration file (as for run)\n"
    "      --table T          the [table] to rebuild (required)\n"
    "      --template FILE    the new index's body (settings, mappings; default [table]\n"
    "                         index_template, else the engine's defaults)\n"
    "      --drop-old         delete the old index(es) once the alias moved; required when\n"
    "                         the table's index is a concrete index (the alias replaces it in\n"
    "                         the same call)\n"
    "      --segments N       Scan segments of the backfill and the verification (default 4)\n"
    "      --rate R           at most R items read per second (default: no cap)\n"
    "      --margin DUR       the backfill's version margin (replay --margin; default 5s)\n"
    "      --ack-timeout DUR  how long to wait for the daemon to mirror (default 30s)\n"
    "\n"
    "exit: 0 the alias points at the new index; 1 differences remain after repair (run again);\n"
    "64 usage; 69 the engine, DynamoDB or the daemon did not answer; 73 another rebuild of T\n"
    "runs; 75 interrupted (run again to continue); 77 permission; 78 configuration (a concrete\n"
    "index without --drop-old, [leases]).\n";
static const char schema_usage[] =
    "usage: ddb2es schema [-c FILE] --table T --scan [--segments N] [--rate R] [--json]\n"
    "       ddb2es schema [-c FILE] --table T --file PATH [--format export|stream] [--key H[,R]]\n"
    "                     [--json]\n"
    "\n"
    "Reads table T (a parallel Scan) or a DynamoDB export or stream-record file, through\n"
    "[table T]'s document rules, and prints every attribute path of the documents (a.b for a\n"
    "map member, a[] for list elements) with the DynamoDB types it held in how many items,\n"
    "the paths whose type varies (NULL aside), the largest document's depth and field count\n"
    "as the engines count them, and an index template under which every value seen is\n"
    "indexed, for [table] index_template.  At most 10000 paths are tracked.\n"
    "\n"
    "  --scan, --segments N, --rate R, --file PATH, --format F, --key H[,R]: as for replay\n"
    "  --json    the report as one JSON document\n"
    "\n"
    "exit: 0 done; 64 usage; 65 malformed input (FILE:LINE); 66 no such file; 69 DynamoDB\n"
    "unavailable; 75 interrupted; 77 permission; 78 configuration.\n";

struct cli {
    const char *cmd;
    const char *config;
    bool config_given;
    bool dry_run;
    bool json;
    bool offline;
    bool write_checkpoints;
    bool replay_flags;      /* a replay-only option was given */
    bool other_flags;       /* one replay takes that rebuild does not */
    struct replay_opts ro;
    struct verify_opts vo;
    bool repair;
    int64_t settle_ms;
    bool settle_given;
    struct rebuild_opts rb;
    bool rebuild_flags;     /* a rebuild-only option was given */
    struct schema_opts so;
    bool scan;
    const char *format;
};

/* The configuration file: -c, else $DDB2ES_CONFIG, else the default path —
 * which may be absent when the environment declares the tables (a sidecar). */
static const char *config_path(struct cli *c)
{
    const char *env = getenv("DDB2ES_CONFIG");

    if (c->config)
        return c->config;
    if (env && *env)
        return env;
    if (access(DEFAULT_CONFIG, F_OK) != 0 && getenv("DDB2ES_TABLES"))
        return NULL;
    return DEFAULT_CONFIG;
}

static int duration_opt(const char *cmd, const char *name, const char *v, int64_t *out)
{
    if (config_parse_duration(v, out) < 0 || *out < 0) {
        fprintf(stderr, "ddb2es %s: %s: not a duration: \"%s\" (e.g. 30s, 5m)\n", cmd, name, v);
        return 64;
    }
    return -1;
}

/* --only-segments A or A-B: -1 when taken, else 64. */
static int only_segments_opt(struct replay_opts *r, const char *v)
{
    char *end;
    long a, b;

    a = strtol(v, &end, 10);
    b = a;
    if (end != v && *end == '-')
        b = strtol(end + 1, &end, 10);
    if (end == v || *end || *v == '-' || a < 0 || b < a || b > 1023) {
        fprintf(stderr, "ddb2es replay: --only-segments must be A or A-B with 0 <= A <= B < "
                        "--segments, got \"%s\"\n", v);
        return 64;
    }
    r->only = true;
    r->only_first = (int)a;
    r->only_last = (int)b;
    return -1;
}

/* One replay option; -1 when taken, else the exit code. */
static int replay_option(struct cli *c, int o, const char *v)
{
    struct replay_opts *r = &c->ro;
    char *end;

    switch (o) {
    case 1: r->table = v; break;
    case 2: c->scan = true; break;
    case 3:
        r->segments = (int)strtol(v, &end, 10);
        if (*end || r->segments < 1 || r->segments > 1024) {
            fprintf(stderr, "ddb2es %s: --segments must be 1..1024, got \"%s\"\n", c->cmd, v);
            return 64;
        }
        break;
    case 4:
        r->rate = strtod(v, &end);
        if (*end || !(r->rate > 0)) {
            fprintf(stderr, "ddb2es %s: --rate must be a positive number of items per "
                            "second, got \"%s\"\n", c->cmd, v);
            return 64;
        }
        break;
    case 5: r->file = v; break;
    case 6: c->format = v; break;
    case 7: r->restart = true; break;
    case 8: r->consistent = true; break;
    case 9: r->index = v; break;
    case 10: r->keys = v; break;
    case 11:
        if (replay_parse_time(v, &r->read_time) < 0) {
            fprintf(stderr, "ddb2es replay: --read-time: expected 2024-05-01T12:00:00Z or epoch "
                            "seconds, got \"%s\"\n", v);
            return 64;
        }
        break;
    case 12: {
        int64_t ms;
        int rc = duration_opt(c->cmd, "--margin", v, &ms);

        r->margin_s = (ms + 999) / 1000;
        return rc;
    }
    case 13: return duration_opt(c->cmd, "--max-age", v, &r->max_age_ms);
    case 14: return duration_opt(c->cmd, "--give-up-after", v, &r->give_up_ms);
    case 15: r->dlq_out = v; break;
    case 16: return duration_opt(c->cmd, "--progress-every", v, &r->progress_ms);
    case 17: return only_segments_opt(r, v);
    case 18: c->repair = true; break;
    case 19: c->settle_given = true; return duration_opt(c->cmd, "--settle", v, &c->settle_ms);
    default: return 64;
    }
    return -1;
}

/* A sidecar or a job spec sets the Scan's partition in its environment:
 * DDB2ES_REPLAY_SEGMENTS and DDB2ES_REPLAY_ONLY_SEGMENTS, when the flags are
 * not given.  -1, or the exit code. */
static int scan_env(struct cli *c)
{
    const char *n = getenv("DDB2ES_REPLAY_SEGMENTS");
    const char *only = getenv("DDB2ES_REPLAY_ONLY_SEGMENTS");
    int rc;

    if (!c->ro.segments && n && *n && (rc = replay_option(c, 3, n)) >= 0)
        return rc;
    if (!c->ro.only && only && *only && (rc = replay_option(c, 17, only)) >= 0)
        return rc;
    return -1;
}

/* Replay's flags together; the defaults. */
static int replay_check(struct cli *c)
{
    struct replay_opts *r = &c->ro;
    int rc;

    if (c->json || c->offline) {
        fprintf(stderr, "ddb2es replay: --json and --offline do not apply\n");
        return 64;
    }
    if (!r->table) {
        fprintf(stderr, "ddb2es replay: --table is required\n%s", replay_usage);
        return 64;
    }
    if (c->scan == !!r->file) {
        fprintf(stderr, "ddb2es replay: give either --scan or --file PATH\n");
        return 64;
    }
    if (c->scan && c->format) {
        fprintf(stderr, "ddb2es replay: --format applies to --file only\n");
        return 64;
    }
    if (r->file && (r->segments || r->only || r->rate > 0 || r->restart || r->consistent)) {
        fprintf(stderr, "ddb2es replay: --segments, --only-segments, --rate, --restart and "
                        "--consistent-read apply to --scan only\n");
        return 64;
    }
    if (c->scan && (rc = scan_env(c)) >= 0)
        return rc;
    if (r->only && !r->segments) {
        fprintf(stderr, "ddb2es replay: --only-segments needs --segments N (the Scan's "
                        "TotalSegments, the same in every process)\n");
        return 64;
    }
    if (r->only && r->only_last >= r->segments) {
        fprintf(stderr, "ddb2es replay: --only-segments %d-%d: segments are numbered 0..%d\n",
                r->only_first, r->only_last, r->segments - 1);
        return 64;
    }
    if (c->scan && r->keys) {
        fprintf(stderr, "ddb2es replay: --key applies to --file only\n");
        return 64;
    }
    if (c->scan)
        r->format = REPLAY_SCAN;
    else if (!c->format || strcmp(c->format, "export") == 0)
        r->format = REPLAY_EXPORT;
    else if (strcmp(c->format, "stream") == 0)
        r->format = REPLAY_STREAM;
    else if (strcmp(c->format, "dlq") == 0)
        r->format = REPLAY_DLQ;
    else {
        fprintf(stderr, "ddb2es replay: --format must be export, stream or dlq, got \"%s\"\n",
                c->format);
        return 64;
    }
    if (r->dlq_out && r->format != REPLAY_DLQ) {
        fprintf(stderr, "ddb2es replay: --dlq-out applies to --format dlq only\n");
        return 64;
    }
    r->dry_run = c->dry_run;
    if (!r->margin_s)
        r->margin_s = 5;
    if (!r->max_age_ms)
        r->max_age_ms = 30000;
    if (!r->give_up_ms)
        r->give_up_ms = 300000;
    if (!r->progress_ms)
        r->progress_ms = 10000;
    return -1;
}

/* Verify's flags (parsed into replay's fields, which they share); the
 * defaults.  -1, or the exit code. */
static int verify_check(struct cli *c)
{
    const struct replay_opts *r = &c->ro;
    struct verify_opts *o = &c->vo;

    if (c->dry_run || c->offline || c->write_checkpoints || c->scan || r->file || c->format ||
        r->restart || r->consistent || r->keys || r->read_time || r->max_age_ms ||
        r->give_up_ms || r->dlq_out || r->only || c->rebuild_flags) {
        fprintf(stderr, "ddb2es verify: only --table, --index, --segments, --rate, --settle, "
                        "--repair, --margin, --json and --progress-every apply\n");
        return 64;
    }
    if (!r->table) {
        fprintf(stderr, "ddb2es verify: --table is required\n%s", verify_usage);
        return 64;
    }
    o->table = r->table;
    o->index = r->index;
    o->segments = r->segments;
    o->rate = r->rate;
    o->repair = c->repair;
    o->json = c->json;
    o->settle_ms = !c->settle_given ? 5000 : c->settle_ms ? c->settle_ms : 1;
    o->progress_ms = r->progress_ms ? r->progress_ms : 10000;
    o->margin_s = r->margin_s ? r->margin_s : 5;
    return -1;
}

/* Rebuild's flags together. */
static int rebuild_check(struct cli *c)
{
    if (c->other_flags || c->dry_run || c->json || c->offline || c->write_checkpoints) {
        fprintf(stderr, "ddb2es rebuild: of replay's options only --table, --segments, --rate "
                        "and --margin apply\n%s", rebuild_usage);
        return 64;
    }
    if (!c->ro.table) {
        fprintf(stderr, "ddb2es rebuild: --table is required\n%s", rebuild_usage);
        return 64;
    }
    c->rb.table = c->ro.table;
    c->rb.segments = c->ro.segments;
    c->rb.rate = c->ro.rate;
    c->rb.margin_s = c->ro.margin_s;
    return -1;
}

/* schema takes replay's --table, --scan, --segments, --rate, --file,
 * --format and --key, and --json. */
static int schema_check(struct cli *c)
{
    const struct replay_opts *r = &c->ro;

    if (c->dry_run || c->offline || c->write_checkpoints || r->only || r->restart ||
        r->consistent || r->index || r->read_time || r->margin_s || r->max_age_ms ||
        r->give_up_ms || r->dlq_out || r->progress_ms || c->repair || c->settle_given ||
        c->rebuild_flags) {
        fprintf(stderr, "ddb2es schema: only --table, --scan, --segments, --rate, --file, "
                        "--format, --key and --json apply\n");
        return 64;
    }
    if (!r->table || c->scan == !!r->file) {
        fprintf(stderr, "ddb2es schema: --table and either --scan or --file PATH are "
                        "required\n%s", schema_usage);
        return 64;
    }
    if ((c->scan && (c->format || r->keys)) || (r->file && (r->segments || r->rate > 0))) {
        fprintf(stderr, "ddb2es schema: --format and --key apply to --file, --segments and "
                        "--rate to --scan\n");
        return 64;
    }
    if (c->format && strcmp(c->format, "export") != 0 && strcmp(c->format, "stream") != 0) {
        fprintf(stderr, "ddb2es schema: --format must be export or stream, got \"%s\"\n",
                c->format);
        return 64;
    }
    c->so = (struct schema_opts){ .table = r->table, .file = r->file, .keys = r->keys,
                                  .stream = c->format && strcmp(c->format, "stream") == 0,
                                  .segments = r->segments, .rate = r->rate, .json = c->json };
    return -1;
}

static int parse(int argc, char **argv, struct cli *c)
{
    static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                          { "dry-run", no_argument, NULL, 'n' },
                                          { "json", no_argument, NULL, 'j' },
                                          { "offline", no_argument, NULL, 'o' },
                                          { "write-checkpoints", no_argument, NULL, 'W' },
                                          { "help", no_argument, NULL, 'h' },
                                          { "version", no_argument, NULL, 'V' },
                                          { "table", required_argument, NULL, 1 },
                                          { "scan", no_argument, NULL, 2 },
                                          { "segments", required_argument, NULL, 3 },
                                          { "rate", required_argument, NULL, 4 },
                                          { "file", required_argument, NULL, 5 },
                                          { "format", required_argument, NULL, 6 },
                                          { "restart", no_argument, NULL, 7 },
                                          { "consistent-read", no_argument, NULL, 8 },
                                          { "index", required_argument, NULL, 9 },
                                          { "key", required_argument, NULL, 10 },
                                          { "read-time", required_argument, NULL, 11 },
                                          { "margin", required_argument, NULL, 12 },
                                          { "max-age", required_argument, NULL, 13 },
                                          { "give-up-after", required_argument, NULL, 14 },
                                          { "dlq-out", required_argument, NULL, 15 },
                                          { "progress-every", required_argument, NULL, 16 },
                                          { "only-segments", required_argument, NULL, 17 },
                                          { "repair", no_argument, NULL, 18 },
                                          { "settle", required_argument, NULL, 19 },
                                          { "template", required_argument, NULL, 20 },
                                          { "drop-old", no_argument, NULL, 21 },
                                          { "ack-timeout", required_argument, NULL, 22 },
                                          { NULL, 0, NULL, 0 } };
    int o;

    if (argc < 2) {
        fputs(usage, stderr);
        return 64;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        char line[512];

        http_libcurl_line(line, sizeof(line));
        printf("ddb2es %s\n%s\n", DDB2ES_VERSION, line);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    c->cmd = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            c->config = optarg;
            break;
        case 'n':
            c->dry_run = true;
            break;
        case 'j':
            c->json = true;
            break;
        case 'o':
            c->offline = true;
            break;
        case 'W':
            c->write_checkpoints = true;
            break;
        case 'h':
            fputs(strcmp(c->cmd, "replay") == 0    ? replay_usage
                  : strcmp(c->cmd, "verify") == 0  ? verify_usage
                  : strcmp(c->cmd, "rebuild") == 0 ? rebuild_usage
                  : strcmp(c->cmd, "schema") == 0  ? schema_usage
                                                   : usage,
                  stdout);
            return 0;
        case 'V':
            printf("ddb2es %s\n", DDB2ES_VERSION);
            return 0;
        default:
            if (o >= 1 && o <= 19) {
                int rc = replay_option(c, o, optarg);

                if (rc >= 0)
                    return rc;
                c->replay_flags = true;
                /* --table, --segments, --rate and --margin serve rebuild too. */
                if (o != 1 && o != 3 && o != 4 && o != 12)
                    c->other_flags = true;
                break;
            }
            if (o >= 20 && o <= 22) {
                c->rebuild_flags = true;
                if (o == 20)
                    c->rb.template_path = optarg;
                else if (o == 21)
                    c->rb.drop_old = true;
                else if (config_parse_duration(optarg, &c->rb.ack_timeout_ms) < 0 ||
                         c->rb.ack_timeout_ms <= 0)
                    return (fprintf(stderr, "ddb2es rebuild: --ack-timeout: not a duration: "
                                            "\"%s\" (e.g. 30s)\n", optarg), 64);
                break;
            }
            fputs(usage, stderr);
            return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ddb2es %s: unexpected argument \"%s\"\n", c->cmd, argv[optind]);
        return 64;
    }
    if (strcmp(c->cmd, "schema") == 0)
        return schema_check(c);
    if (strcmp(c->cmd, "verify") == 0)
        return verify_check(c);
    if (strcmp(c->cmd, "rebuild") == 0)
        return rebuild_check(c);
    if (c->rebuild_flags) {
        fprintf(stderr, "ddb2es %s: --template, --drop-old and --ack-timeout apply to rebuild "
                        "only\n", c->cmd);
        return 64;
    }
    if (c->replay_flags && strcmp(c->cmd, "replay") != 0) {
        fprintf(stderr, "ddb2es %s: --table, --scan, --file... apply to replay only\n", c->cmd);
        return 64;
    }
    if (strcmp(c->cmd, "replay") == 0) {
        if (c->repair || c->settle_given) {
            fprintf(stderr, "ddb2es replay: --repair and --settle apply to verify only\n");
            return 64;
        }
        return replay_check(c);
    }
    if (c->dry_run && strcmp(c->cmd, "run") != 0) {
        fprintf(stderr, "ddb2es %s: --dry-run applies to run and replay only\n", c->cmd);
        return 64;
    }
    if (c->offline && strcmp(c->cmd, "check") != 0) {
        fprintf(stderr, "ddb2es %s: --offline applies to check only\n", c->cmd);
        return 64;
    }
    if (c->write_checkpoints && strcmp(c->cmd, "status") != 0) {
        fprintf(stderr, "ddb2es %s: --write-checkpoints applies to status only\n", c->cmd);
        return 64;
    }
    if (c->json && strcmp(c->cmd, "status") != 0) {
        fprintf(stderr, "ddb2es %s: --json applies to status only\n", c->cmd);
        return 64;
    }
    return -1;
}

static int cmd_check(const struct config *cfg, bool offline)
{
    printf("# configuration is valid: %zu table(s)\n", cfg->ntables);
    config_dump(cfg, stdout);
    if (offline)
        return 0;
    fflush(stdout);
    return run_check(cfg);
}

int main(int argc, char **argv)
{
    struct cli cli = { 0 };
    struct config cfg;
    char err[1024];
    int rc;

    /* Buffers of 64 KB and more (GetRecords replies, bulk bodies) are mapped
     * and unmapped, never left in the heap.  glibc's default moves that
     * threshold up after the first large free; from then on each large free
     * consolidates the small chunks a freed jansson tree leaves (15 % of the
     * CPU in `perf` on a catch-up) and the heap keeps its peak size.  The
     * fast bins stay on: without them every small chunk of a jansson tree
     * goes through the sorted bins (a third of replay's CPU in `perf`, see
     * bench/RESULTS.md), and with the threshold fixed no large free
     * consolidates them. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    /* Each jansson tree takes the blocks the last one gave back (base/jcache.h). */
    jcache_install();
    rc = parse(argc, argv, &cli);
    if (rc >= 0)
        return rc;
    if (strcmp(cli.cmd, "run") != 0 && strcmp(cli.cmd, "check") != 0 &&
        strcmp(cli.cmd, "status") != 0 && strcmp(cli.cmd, "replay") != 0 &&
        strcmp(cli.cmd, "verify") != 0 && strcmp(cli.cmd, "rebuild") != 0 &&
        strcmp(cli.cmd, "schema") != 0) {
        fprintf(stderr, "ddb2es: unknown command \"%s\"\n%s", cli.cmd, usage);
        return 64;
    }
    memset(&cfg, 0, sizeof(cfg));
    rc = config_load(config_path(&cli), &cfg, err, sizeof(err));
    /* What `run` would refuse before it sets anything up, `check` refuses too,
     * with the same line: the files the configuration names (secrets, CA) and
     * the transport rules.  `run` checks again: a file may change between. */
    if (rc == 0 && strcmp(cli.cmd, "status") != 0)
        rc = clients_preflight(&cfg, cli.ro.table, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        config_free(&cfg);
        return rc;
    }
    if (strcmp(cli.cmd, "check") == 0)
        rc = cmd_check(&cfg, cli.offline);
    else if (strcmp(cli.cmd, "status") == 0 && cli.write_checkpoints && !cfg.leases.enabled)
        rc = (fprintf(stderr, "ddb2es status: --write-checkpoints writes the lease table's "
                              "positions: the configuration has no [leases]\n"),
              64);
    else if (strcmp(cli.cmd, "status") == 0 && cli.write_checkpoints)
        rc = status_write_checkpoints(&cfg, stdout);
    else if (strcmp(cli.cmd, "status") == 0)
        rc = status_run(&cfg, cli.json, 2000, stdout);
    else if (strcmp(cli.cmd, "replay") == 0)
        rc = replay_run(&cfg, &cli.ro);
    else if (strcmp(cli.cmd, "verify") == 0)
        rc = verify_run(&cfg, &cli.vo);
    else if (strcmp(cli.cmd, "rebuild") == 0)
        rc = rebuild_run(&cfg, &cli.rb);
    else if (strcmp(cli.cmd, "schema") == 0)
        rc = schema_run(&cfg, &cli.so);
    else
        rc = run_daemon(&cfg, cli.dry_run);
    config_free(&cfg);
    return rc;
}
