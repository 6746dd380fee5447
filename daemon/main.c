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
#include "daemon/run.h"
#include "daemon/status.h"
#include "daemon/version.h"

#define DEFAULT_CONFIG "/etc/ddb2es/ddb2es.conf"

static const char usage[] =
    "usage: ddb2es COMMAND [-c FILE] [options]\n"
    "\n"
    "commands:\n"
    "  run      follow every configured table's stream and index it (until SIGTERM)\n"
    "  check    validate the configuration, print the effective settings, then find the\n"
    "           credentials and reach every stream and the search engine (--offline: only\n"
    "           the configuration)\n"
    "  status   every shard's checkpoint, state and age (and live facts from a running\n"
    "           daemon's metrics endpoint); --json for scripts\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration file (default: $DDB2ES_CONFIG, then " DEFAULT_CONFIG ")\n"
    "      --dry-run       run: write the bulk bodies to stdout instead of posting them\n"
    "      --json          status: print JSON\n"
    "      --offline       check: the configuration only, no network\n"
    "  -h, --help          this text;  ddb2es --version: the version\n"
    "\n"
    "Every setting can also come from the environment: DDB2ES_<SECTION>_<KEY>,\n"
    "DDB2ES_TABLES=table[:index],...  See the README.\n";

struct cli {
    const char *cmd;
    const char *config;
    bool config_given;
    bool dry_run;
    bool json;
    bool offline;
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

static int parse(int argc, char **argv, struct cli *c)
{
    static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                          { "dry-run", no_argument, NULL, 'n' },
                                          { "json", no_argument, NULL, 'j' },
                                          { "offline", no_argument, NULL, 'o' },
                                          { "help", no_argument, NULL, 'h' },
                                          { "version", no_argument, NULL, 'V' },
                                          { NULL, 0, NULL, 0 } };
    int o;

    if (argc < 2) {
        fputs(usage, stderr);
        return 64;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("ddb2es %s\n", DDB2ES_VERSION);
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
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf("ddb2es %s\n", DDB2ES_VERSION);
            return 0;
        default:
            fputs(usage, stderr);
            return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ddb2es %s: unexpected argument \"%s\"\n", c->cmd, argv[optind]);
        return 64;
    }
    if (c->dry_run && strcmp(c->cmd, "run") != 0) {
        fprintf(stderr, "ddb2es %s: --dry-run applies to run only\n", c->cmd);
        return 64;
    }
    if (c->offline && strcmp(c->cmd, "check") != 0) {
        fprintf(stderr, "ddb2es %s: --offline applies to check only\n", c->cmd);
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
    char err[1024];
    int rc = config_check_transport(cfg, err, sizeof(err));

    if (rc != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        return rc;
    }
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
     * CPU in `perf` on a catch-up) and the heap keeps its peak size. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_MXFAST, 0);
    rc = parse(argc, argv, &cli);
    if (rc >= 0)
        return rc;
    if (strcmp(cli.cmd, "run") != 0 && strcmp(cli.cmd, "check") != 0 &&
        strcmp(cli.cmd, "status") != 0) {
        fprintf(stderr, "ddb2es: unknown command \"%s\"\n%s", cli.cmd, usage);
        return 64;
    }
    memset(&cfg, 0, sizeof(cfg));
    rc = config_load(config_path(&cli), &cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ddb2es: %s\n", err);
        config_free(&cfg);
        return rc;
    }
    if (strcmp(cli.cmd, "check") == 0)
        rc = cmd_check(&cfg, cli.offline);
    else if (strcmp(cli.cmd, "status") == 0)
        rc = status_run(&cfg, cli.json, 2000, stdout);
    else
        rc = run_daemon(&cfg, cli.dry_run);
    config_free(&cfg);
    return rc;
}
