/* config: the INI file, environment overrides, checks and secrets. */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


#include "config/config.h"
#include "tests/support/testcert.h"

#define EXAMPLE "config/ddb2es.conf.example"

static char dir[64];
static char err[1024];
static struct config cfg;

static void setup(void)
{
    strcpy(dir, "/tmp/ddb2es-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    config_free(&cfg);
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown, .timeout = 10);

/* Writes text to DIR/name and returns the path (static storage, one per name slot). */
static const char *put(const char *name, const char *text)
{
    static char paths[4][128];
    static int slot;
    char *p = paths[slot++ % 4];
    FILE *f;

    snprintf(p, 128, "%s/%s", dir, name);
    f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return p;
}

static const char *const no_env[] = { NULL };

static int load(const char *path, const char *const *envp)
{
    config_free(&cfg);
    return config_load_env(path, envp, &cfg, err, sizeof(err));
}

/* Loads text as a file and expects it to fail with "PATH:<rest>". */
static void expect_error(const char *text, const char *rest)
{
    const char *path = put("bad.conf", text);
    char want[512];

    cr_assert_eq(load(path, no_env), 78, "loaded without error: %s", text);
    snprintf(want, sizeof(want), "%s:%s", path, rest);
    cr_assert_str_eq(err, want);
    cr_assert_eq(cfg.ntables, 0, "a failed load leaves the config empty");
}

#define MIN_SINK "[sink]\nurl = http://127.0.0.1:9200\n"
#define MIN_CONF MIN_SINK "[table posts]\n"

Test(config, example_loads_with_documented_defaults)
{
    cr_assert_eq(load(EXAMPLE, no_env), 0, "%s", err);
    cr_assert_str_eq(cfg.path, EXAMPLE);
    cr_assert_str_eq(cfg.daemon.state_dir, "/var/lib/ddb2es");
    cr_assert_eq(cfg.daemon.log_level, LOG_LVL_INFO);
    cr_assert_eq(cfg.daemon.log_format, LOG_FMT_TEXT);
    cr_assert_str_eq(cfg.daemon.metrics_listen, "127.0.0.1:9108");
    cr_assert_eq(cfg.daemon.shutdown_timeout_ms, 20000);
    cr_assert_eq(cfg.daemon.checkpoint_interval_ms, 5000);
    cr_assert_eq(cfg.daemon.max_queue_bytes, 16u << 20);
    cr_assert_eq(cfg.daemon.stream_settle_ms, 10000);
    cr_assert_null(cfg.aws.region);
    cr_assert_null(cfg.aws.profile);
    cr_assert_null(cfg.aws.endpoint);
    cr_assert_eq(cfg.aws.allowed_regions.count, 0);
    cr_assert(!cfg.aws.use_fips_endpoint && !cfg.aws.use_dualstack_endpoint);
    cr_assert_str_eq(cfg.sink.url, "https://search-mydomain.us-east-1.es.amazonaws.com");
    cr_assert_eq(cfg.sink.auth, CONFIG_AUTH_SIGV4);
    cr_assert_str_eq(cfg.sink.sigv4_service, "es");
    cr_assert_null(cfg.sink.username);
    cr_assert_null(cfg.sink.password_file);
    cr_assert_null(cfg.sink.api_key_file);
    cr_assert_null(cfg.sink.ca_file);
    cr_assert(cfg.sink.tls_verify);
    cr_assert_eq(cfg.sink.bulk_max_actions, 1000);
    cr_assert_eq(cfg.sink.bulk_max_bytes, 5u << 20);
    cr_assert_eq(cfg.sink.flush_interval_ms, 1000);
    cr_assert_eq(cfg.sink.concurrency, 2);
    cr_assert_eq(cfg.sink.compression, CONFIG_COMP_NONE);
    cr_assert_str_eq(cfg.sink.dlq_path, "/var/lib/ddb2es/dlq.ndjson");
    cr_assert_eq(cfg.sink.request_timeout_ms, 60000);
    cr_assert_eq(cfg.sink.max_retry_backoff_ms, 30000);
    cr_assert_eq(config_table_count(&cfg), 1);
    const struct config_table *t = config_table_at(&cfg, 0);
    cr_assert_str_eq(t->name, "posts");
    cr_assert_str_eq(t->index, "posts");
    cr_assert_eq(t->start, CONFIG_START_TRIM_HORIZON);
    cr_assert_eq(t->id_separator, '|');
    cr_assert_eq(t->on_ttl_delete, CONFIG_TTL_DELETE);
    cr_assert_eq(t->include.count + t->exclude.count + t->hmac.count, 0);
    cr_assert_null(t->hmac_key_file);
    cr_assert_null(config_table_at(&cfg, 1));
    cr_assert_eq(config_table_find(&cfg, "posts"), t);
    cr_assert_null(config_table_find(&cfg, "users"));
}

Test(config, example_documents_every_key)
{
    char *text = NULL, *desc = NULL, *line, *save;
    size_t tlen = 0, dlen = 0;
    FILE *f = fopen(EXAMPLE, "r"), *d = open_memstream(&desc, &dlen);
    int keys = 0;

    cr_assert_not_null(f);
    cr_assert_gt(getdelim(&text, &tlen, '\0', f), 0);
    fclose(f);
    config_describe(d);
    fclose(d);
    for (line = strtok_r(desc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[64], want[80];
        if (sscanf(line, "# %63[a-z0-9_]: ", key) != 1 || strncmp(line, "#   ", 4) == 0)
            continue;
        snprintf(want, sizeof(want), "\n%s =", key);
        if (!strstr(text, want)) /* [leases] is commented out: it turns a mode on */
            snprintf(want, sizeof(want), "\n# %s =", key);
        cr_expect_not_null(strstr(text, want), "the example lacks %s", key);
        keys++;
    }
    cr_assert_eq(keys, 54, "keys described: %d", keys);
    free(text);
    free(desc);
}

Test(config, defaults_when_keys_are_absent)
{
    cr_assert_eq(load(put("a.conf", "[daemon]\nstate_dir = /srv/x/\n" MIN_SINK
                                    "[table My.Posts-2]\n"), no_env), 0, "%s", err);
    cr_assert_str_eq(cfg.tables[0].index, "my.posts-2", "index = table name lowercased");
    cr_assert_str_eq(cfg.sink.dlq_path, "/srv/x/dlq.ndjson");
    cr_assert_eq(cfg.sink.concurrency, 2);
    cr_assert_str_eq(cfg.daemon.metrics_listen, "127.0.0.1:9108");
}

Test(config, sigv4_service_follows_the_url)
{
    cr_assert_eq(load(put("a.conf", "[sink]\nurl = https://abc123.us-east-1.aoss.amazonaws.com\n"
                                    "[table posts]\n"), no_env), 0, "%s", err);
    cr_assert_str_eq(cfg.sink.sigv4_service, "aoss");
    cr_assert_eq(load(put("b.conf", "[sink]\nurl = https://abc.us-east-1.aoss.amazonaws.com\n"
                                    "sigv4_service = es\n[table posts]\n"), no_env), 0, "%s", err);
    cr_assert_str_eq(cfg.sink.sigv4_service, "es");
}

Test(config, full_file_is_typed)
{
    const char *text =
        "\xEF\xBB\xBF# leading BOM and comment\n"
        "[daemon]\n"
        "  log_level = debug   # indented, inline comment\n"
        "log_format=json ; other comment\n"
        "metrics_listen =\n"
        "shutdown_timeout = 90\n"
        "checkpoint_interval = 250ms\n"
        "max_queue_bytes = 1g\n"
        "[aws]\n"
        "region = eu-west-1\n"
        "allowed_regions = eu-west-1 , eu-central-1\n"
        "profile = prod\n"
        "[sink]\n"
        "url = https://es.example.com:9243/prefix\n"
        "auth = basic\n"
        "username = a#b;c\n"
        "password_file = /run/secrets/pw\n"
        "tls_verify = off\n"
        "bulk_max_actions = 500\n"
        "bulk_max_bytes = 512k\n"
        "flush_interval = 2m\n"
        "compression = gzip\n"
        "max_retry_backoff = 5m\n"
        "[table Orders]\n"
        "index = orders-v2\n"
        "start = latest\n"
        "id_separator = /\n"
        "on_ttl_delete = keep\n"
        "exclude = secret, internal\n"
        "hmac = email\n"
        "hmac_key_file = hmac.key\n";

    cr_assert_eq(load(put("a.conf", text), no_env), 0, "%s", err);
    cr_assert_eq(cfg.daemon.log_level, LOG_LVL_DEBUG);
    cr_assert_eq(cfg.daemon.log_format, LOG_FMT_JSON);
    cr_assert_null(cfg.daemon.metrics_listen, "empty = off");
    cr_assert_eq(cfg.daemon.shutdown_timeout_ms, 90000, "plain number = seconds");
    cr_assert_eq(cfg.daemon.checkpoint_interval_ms, 250);
    cr_assert_eq(cfg.daemon.max_queue_bytes, (size_t)1 << 30);
    cr_assert_str_eq(cfg.aws.region, "eu-west-1");
    cr_assert_eq(cfg.aws.allowed_regions.count, 2);
    cr_assert_str_eq(cfg.aws.allowed_regions.items[1], "eu-central-1");
    cr_assert(config_list_has(&cfg.aws.allowed_regions, "eu-west-1"));
    cr_assert_str_eq(cfg.aws.profile, "prod");
    cr_assert_str_eq(cfg.sink.url, "https://es.example.com:9243/prefix");
    cr_assert_eq(cfg.sink.auth, CONFIG_AUTH_BASIC);
    cr_assert_str_eq(cfg.sink.username, "a#b;c", "# and ; not after a blank are kept");
    cr_assert_not(cfg.sink.tls_verify);
    cr_assert_eq(cfg.sink.bulk_max_actions, 500);
    cr_assert_eq(cfg.sink.bulk_max_bytes, 512 * 1024);
    cr_assert_eq(cfg.sink.flush_interval_ms, 120000);
    cr_assert_eq(cfg.sink.compression, CONFIG_COMP_GZIP);
    cr_assert_eq(cfg.sink.max_retry_backoff_ms, 300000);
    const struct config_table *t = config_table_find(&cfg, "Orders");
    cr_assert_not_null(t);
    cr_assert_str_eq(t->index, "orders-v2");
    cr_assert_eq(t->start, CONFIG_START_LATEST);
    cr_assert_eq(t->id_separator, '/');
    cr_assert_eq(t->on_ttl_delete, CONFIG_TTL_KEEP);
    cr_assert_eq(t->exclude.count, 2);
    cr_assert_str_eq(t->exclude.items[0], "secret");
    cr_assert_str_eq(t->exclude.items[1], "internal");
    cr_assert_str_eq(t->hmac.items[0], "email");
    cr_assert_str_eq(t->hmac_key_file, "hmac.key");
}

Test(config, long_lines_are_read_whole)
{
    char text[4096], list[2048] = "";
    size_t pos = 0;

    for (int i = 0; i < 200; i++)
        pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%sattr%d", i ? "," : "", i);
    snprintf(text, sizeof(text), MIN_SINK "[table posts]\ninclude = %s\nstart = latest\n", list);
    cr_assert_eq(load(put("a.conf", text), no_env), 0, "%s", err);
    cr_assert_eq(cfg.tables[0].include.count, 200);
    cr_assert_str_eq(cfg.tables[0].include.items[199], "attr199");
    cr_assert_eq(cfg.tables[0].start, CONFIG_START_LATEST);

    snprintf(text, sizeof(text), MIN_SINK "[table posts]\nincldue = %s\n", list);
    expect_error(text, "4: [table posts] incldue: unknown key (did you mean include?)");
}

/* ---- errors in the file ---- */

Test(config, unknown_key_names_the_closest)
{
    expect_error("[daemon]\n\n# comment\n[sink]\nurl = http://x\nbulk_max_byte = 5m\n",
                 "6: [sink] bulk_max_byte: unknown key (did you mean bulk_max_bytes?)");
    expect_error(MIN_CONF "inclde = a\n",
                 "4: [table posts] inclde: unknown key (did you mean include?)");
    expect_error(MIN_SINK "region = us-east-1\n",
                 "3: [sink] region: unknown key (it belongs in [aws])");
    expect_error("[sink]\nzzzzzzzz = 1\n", "2: [sink] zzzzzzzz: unknown key");
    expect_error("url = http://x\n", "1: url: key outside any section (it belongs in [sink])");
}

Test(config, unknown_section)
{
    expect_error("[daemon]\n[sinks]\n", "2: [sinks]: unknown section (did you mean [sink]?)");
    expect_error("[tables posts]\n",
                 "1: [tables posts]: unknown section (did you mean [table posts]?)");
    expect_error("[frobnicate]\n",
                 "1: [frobnicate]: unknown section (known: [daemon], [aws], [sink], [leases], "
                 "[table NAME])");
    expect_error("[table]\n", "1: [table]: missing table name: write [table NAME]");
    expect_error("[table a b]\n",
                 "1: [table a b]: \"a b\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)");
}

/* README "Client-side encrypted tables": plaintext unless said otherwise,
 * from the file or the environment, and nothing else is taken. */
Test(config, encrypted_items_is_plaintext_unless_set)
{
    const char *const env[] = { "DDB2ES_TABLE_USERS_ENCRYPTED_ITEMS=as_is", NULL };

    cr_assert_eq(load(put("a.conf", MIN_SINK "[table posts]\n[table users]\n"
                                             "[table orders]\nencrypted_items = as_is\n"),
                      env),
                 0, "%s", err);
    cr_assert_eq(config_table_find(&cfg, "posts")->encrypted_items, CONFIG_ENCRYPTED_PLAINTEXT);
    cr_assert_eq(config_table_find(&cfg, "users")->encrypted_items, CONFIG_ENCRYPTED_AS_IS);
    cr_assert_eq(config_table_find(&cfg, "orders")->encrypted_items, CONFIG_ENCRYPTED_AS_IS);
    expect_error(MIN_CONF "encrypted_items = decrypt\n",
                 "4: [table posts] encrypted_items: must be one of plaintext|as_is, got "
                 "\"decrypt\"");
}

Test(config, syntax_errors)
{
    expect_error(MIN_SINK "just words\n",
                 "3: expected \"key = value\" or \"[section]\", got \"just words\"");
    expect_error("[sink\n", "1: [sink: missing ] in section header");
    expect_error("[sink] x\n", "1: unexpected text after ]: \"x\"");
}

Test(config, bad_values)
{
    expect_error(MIN_SINK "concurrency = many\n",
                 "3: [sink] concurrency: must be an integer, got \"many\"");
    expect_error(MIN_SINK "tls_verify = maybe\n",
                 "3: [sink] tls_verify: must be true or false (yes/no, on/off, 1/0), got \"maybe\"");
    expect_error(MIN_SINK "auth = kerberos\n",
                 "3: [sink] auth: must be one of sigv4|basic|apikey|none, got \"kerberos\"");
    expect_error(MIN_CONF "start = earliest\n",
                 "4: [table posts] start: must be one of trim_horizon|latest, got \"earliest\"");
    expect_error(MIN_SINK "flush_interval = 1d\n",
                 "3: [sink] flush_interval: must be a duration like 500ms, 5s, 2m or 1h, got \"1d\"");
    expect_error(MIN_SINK "bulk_max_bytes = 5 m\n",
                 "3: [sink] bulk_max_bytes: must be a size like 512k, 5m or 1g, got \"5 m\"");
    expect_error(MIN_SINK "concurrency =\n", "3: [sink] concurrency: needs a value");
    expect_error(MIN_CONF "id_separator = ab\n",
                 "4: [table posts] id_separator: must be one punctuation character, got \"ab\"");
    expect_error("[sink]\nurl = ftp://x\n",
                 "2: [sink] url: must start with http:// or https://, got \"ftp://x\"");
    expect_error(MIN_SINK "[daemon]\nmetrics_listen = 9108\n",
                 "4: [daemon] metrics_listen: must be HOST:PORT (port 1..65535; [::1]:PORT for "
                 "IPv6), got \"9108\"");
    expect_error("[aws]\nallowed_regions = us-east-1,,eu-west-1\n",
                 "2: [aws] allowed_regions: has an empty item, got \"us-east-1,,eu-west-1\"");
    expect_error("[aws]\nregion = US_EAST\n",
                 "2: [aws] region: is not a region name like us-east-1, got \"US_EAST\"");
}

Test(config, out_of_bounds)
{
    expect_error(MIN_SINK "bulk_max_bytes = 10\n",
                 "3: [sink] bulk_max_bytes: must be 1k..100m, got \"10\"");
    expect_error(MIN_SINK "bulk_max_bytes = 101m\n",
                 "3: [sink] bulk_max_bytes: must be 1k..100m, got \"101m\"");
    expect_error(MIN_SINK "bulk_max_bytes = 99999999999999999999999g\n",
                 "3: [sink] bulk_max_bytes: must be 1k..100m, got \"99999999999999999999999g\"");
    expect_error(MIN_SINK "concurrency = -1\n", "3: [sink] concurrency: must be 1..64, got \"-1\"");
    expect_error(MIN_SINK "request_timeout = 500ms\n",
                 "3: [sink] request_timeout: must be 1s..10m, got \"500ms\"");
    expect_error("[daemon]\nshutdown_timeout = 2h\n",
                 "2: [daemon] shutdown_timeout: must be 1s..1h, got \"2h\"");
}

Test(config, duplicates)
{
    expect_error("[sink]\nurl = http://a\n\n\nurl = http://b\n",
                 "5: [sink] url: duplicate key (first set on line 2)");
    expect_error(MIN_CONF "[table users]\n[table posts]\n",
                 "5: [table posts]: duplicate section (first on line 3)");
    expect_error(MIN_CONF "[sink]\n", "4: [sink]: duplicate section (first on line 1)");
    expect_error(MIN_CONF "index = a\nindex = b\n",
                 "5: [table posts] index: duplicate key (first set on line 4)");
}

Test(config, missing_and_unreadable_file)
{
    char want[256], path[128];

    snprintf(path, sizeof(path), "%s/nope.conf", dir);
    cr_assert_eq(load(path, no_env), 78);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    cr_assert_str_eq(err, want);

    cr_assert_eq(load(dir, no_env), 78, "a directory is not a config file");
    snprintf(want, sizeof(want), "%s: cannot read: %s", dir, strerror(EISDIR));
    cr_assert_str_eq(err, want);
}

Test(config, unreadable_by_permissions)
{
    if (geteuid() == 0)
        cr_skip_test("running as root: mode 000 does not stop root from reading");
    const char *path = put("secret.conf", MIN_CONF);
    char want[256];

    cr_assert_eq(chmod(path, 0), 0);
    cr_assert_eq(load(path, no_env), 78);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(EACCES));
    cr_assert_str_eq(err, want);
}

Test(config, required_url_and_tables)
{
    const char *path = put("a.conf", "[table posts]\n");
    char want[256];

    cr_assert_eq(load(path, no_env), 78);
    snprintf(want, sizeof(want), "%s: [sink] url: required (set it in the file or as "
                                 "DDB2ES_SINK_URL)", path);
    cr_assert_str_eq(err, want);

    path = put("b.conf", MIN_SINK);
    cr_assert_eq(load(path, no_env), 78);
    snprintf(want, sizeof(want), "%s: no table configured (add a [table NAME] section or set "
                                 "DDB2ES_TABLES)", path);
    cr_assert_str_eq(err, want);

    cr_assert_eq(load(NULL, no_env), 78);
    cr_assert_str_eq(err, "[sink] url: required (set it in the file or as DDB2ES_SINK_URL)");
}

Test(config, rules_across_keys)
{
    expect_error("[sink]\nurl = http://x\nauth = basic\nusername = u\n[table posts]\n",
                 "3: [sink] auth: basic needs username and password_file");
    expect_error("[sink]\nurl = http://x\nauth = apikey\n[table posts]\n",
                 "3: [sink] auth: apikey needs api_key_file");
    expect_error(MIN_CONF "hmac = email\n", "4: [table posts] hmac: needs hmac_key_file");
    expect_error(MIN_CONF "include = a\nexclude = b\n",
                 "5: [table posts] exclude: include and exclude can't both be set");
    expect_error(MIN_CONF "index = Posts\n",
                 "4: [table posts] index: must be lowercase, got \"Posts\"");
    expect_error(MIN_CONF "index = a,b\n",
                 "4: [table posts] index: can't contain \\ / * ? \" < > | space , # or :, got \"a,b\"");
    expect_error(MIN_CONF "index = -x\n",
                 "4: [table posts] index: can't start with _, - or +, got \"-x\"");
    expect_error(MIN_SINK "[table _posts]\n",
                 "3: [table _posts] index: the default \"_posts\" can't start with _, - or +: set index");
    expect_error(MIN_CONF "[aws]\nendpoint = http://127.0.0.1:8000\nuse_fips_endpoint = yes\n",
                 "6: [aws] use_fips_endpoint: can't be used with endpoint");
    expect_error(MIN_CONF "[aws]\nregion = us-east-1\nallowed_regions = eu-west-1\n",
                 "5: [aws] region: \"us-east-1\" is not in allowed_regions");
    expect_error("[daemon]\nmax_queue_bytes = 2m\n[sink]\nurl = http://x\nbulk_max_bytes = 3m\n"
                 "[table posts]\n",
                 "2: [daemon] max_queue_bytes: must be at least [sink] bulk_max_bytes (3m)");
}

/* ---- the environment ---- */

Test(config, environment_wins_over_the_file)
{
    const char *path = put("a.conf", "[sink]\nurl = http://file:9200\nconcurrency = 4\n"
                                     "[table posts]\nindex = from-file\n[table my-table.v2]\n");
    const char *const env[] = { "HOME=/root", "DDB2ES_SINK_URL=https://env:443",
                          "DDB2ES_SINK_BULK_MAX_BYTES=2m", "DDB2ES_TABLE_POSTS_INDEX=from-env",
                          "DDB2ES_TABLE_MY_TABLE_V2_ON_TTL_DELETE=keep", "DDB2ES_AWS_REGION=us-west-2",
                          "DDB2ES_DAEMON_METRICS_LISTEN=", "DDB2ES_CONFIG=/ignored",
                          "DDB2ES_TABLE_POSTS_ID_SEPARATOR=#", NULL };

    cr_assert_eq(load(path, env), 0, "%s", err);
    cr_assert_str_eq(cfg.sink.url, "https://env:443");
    cr_assert_eq(cfg.sink.concurrency, 4, "the file still counts where env is silent");
    cr_assert_eq(cfg.sink.bulk_max_bytes, 2u << 20);
    cr_assert_str_eq(cfg.aws.region, "us-west-2");
    cr_assert_null(cfg.daemon.metrics_listen, "an empty variable means none");
    cr_assert_str_eq(config_table_find(&cfg, "posts")->index, "from-env");
    cr_assert_eq(config_table_find(&cfg, "posts")->id_separator, '#');
    cr_assert_eq(config_table_find(&cfg, "my-table.v2")->on_ttl_delete, CONFIG_TTL_KEEP);
}

Test(config, tables_from_the_environment_alone)
{
    const char *const env[] = { "DDB2ES_TABLES=posts, users:users-v2,", "DDB2ES_SINK_URL=http://127.0.0.1:9200",
                          "DDB2ES_DAEMON_STATE_DIR=/tmp/st", "DDB2ES_TABLE_USERS_START=latest", NULL };

    cr_assert_eq(load(NULL, env), 0, "%s", err);
    cr_assert_null(cfg.path);
    cr_assert_eq(config_table_count(&cfg), 2);
    cr_assert_str_eq(cfg.tables[0].name, "posts");
    cr_assert_str_eq(cfg.tables[0].index, "posts");
    cr_assert_str_eq(cfg.tables[1].name, "users");
    cr_assert_str_eq(cfg.tables[1].index, "users-v2");
    cr_assert_eq(cfg.tables[1].start, CONFIG_START_LATEST);
    cr_assert_str_eq(cfg.sink.dlq_path, "/tmp/st/dlq.ndjson");
    cr_assert_eq(cfg.sink.bulk_max_actions, 1000);
}

Test(config, ddb2es_tables_adds_to_the_file)
{
    const char *path = put("a.conf", MIN_SINK "[table posts]\nindex = p1\n");
    const char *const env[] = { "DDB2ES_TABLES=posts:p2,users", NULL };

    cr_assert_eq(load(path, env), 0, "%s", err);
    cr_assert_eq(cfg.ntables, 2);
    cr_assert_str_eq(cfg.tables[0].index, "p2");
    cr_assert_str_eq(cfg.tables[1].name, "users");
}

Test(config, table_names_sharing_a_prefix)
{
    const char *const env[] = { "DDB2ES_TABLES=abc,abc_start", "DDB2ES_SINK_URL=http://x",
                          "DDB2ES_TABLE_ABC_START_START=latest", "DDB2ES_TABLE_ABC_INDEX=i1", NULL };

    cr_assert_eq(load(NULL, env), 0, "%s", err);
    cr_assert_eq(cfg.tables[0].start, CONFIG_START_TRIM_HORIZON);
    cr_assert_str_eq(cfg.tables[0].index, "i1");
    cr_assert_eq(cfg.tables[1].start, CONFIG_START_LATEST);
}

static void expect_env_error(const char *const *env, const char *want)
{
    cr_assert_eq(load(NULL, env), 78, "loaded without error");
    cr_assert_str_eq(err, want);
}

Test(config, environment_errors_name_the_variable)
{
    const char *const e1[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                         "DDB2ES_SINK_CONCURRENCY=0", NULL };
    expect_env_error(e1, "DDB2ES_SINK_CONCURRENCY: must be 1..64, got \"0\"");

    const char *const e2[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_BULK_MAX_BYTE=1m", NULL };
    expect_env_error(e2, "DDB2ES_SINK_BULK_MAX_BYTE: unknown key (did you mean "
                         "DDB2ES_SINK_BULK_MAX_BYTES?)");

    const char *const e3[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                         "DDB2ES_TABLE_USERS_INDEX=u", NULL };
    expect_env_error(e3, "DDB2ES_TABLE_USERS_INDEX: no such table (declare it in DDB2ES_TABLES "
                         "or in a [table NAME] section)");

    const char *const e4[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                         "DDB2ES_TABLE_POSTS_INDX=u", NULL };
    expect_env_error(e4, "DDB2ES_TABLE_POSTS_INDX: unknown key (did you mean "
                         "DDB2ES_TABLE_POSTS_INDEX?)");

    const char *const e5[] = { "DDB2ES_TABLES=posts,bad name", NULL };
    expect_env_error(e5, "DDB2ES_TABLES: \"bad name\" is not a DynamoDB table name "
                         "(3-255 of A-Z a-z 0-9 _ - .)");

    const char *const e6[] = { "DDB2ES_TABLES=posts:Posts", NULL };
    expect_env_error(e6, "DDB2ES_TABLES: must be lowercase, got \"Posts\"");

    const char *const e7[] = { "DDB2ES_TABLES=my-t,my.t", "DDB2ES_SINK_URL=http://x",
                         "DDB2ES_TABLE_MY_T_START=latest", NULL };
    expect_env_error(e7, "DDB2ES_TABLE_MY_T_START: more than one table has this name in the "
                         "environment");

    const char *const e8[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                         "DDB2ES_SINK_AUTH=basic", NULL };
    expect_env_error(e8, "DDB2ES_SINK_AUTH: basic needs username and password_file");
}

Test(config, file_errors_stand_when_the_environment_sets_the_key)
{
    const char *path = put("a.conf", MIN_SINK "concurrency = 0\n[table posts]\n");
    const char *const env[] = { "DDB2ES_SINK_CONCURRENCY=3", NULL };

    cr_assert_eq(load(path, env), 78);
    cr_assert_not_null(strstr(err, ":3: [sink] concurrency: must be 1..64"), "%s", err);
}

/* ---- values ---- */

Test(config, sizes)
{
    uint64_t v = 0;

    cr_assert_eq(config_parse_size("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(config_parse_size("123", &v), 0);
    cr_assert_eq(v, 123);
    cr_assert_eq(config_parse_size("2k", &v), 0);
    cr_assert_eq(v, 2048);
    cr_assert_eq(config_parse_size("2K", &v), 0);
    cr_assert_eq(v, 2048);
    cr_assert_eq(config_parse_size("5m", &v), 0);
    cr_assert_eq(v, 5u << 20);
    cr_assert_eq(config_parse_size("3G", &v), 0);
    cr_assert_eq(v, 3ull << 30);
    cr_assert_eq(config_parse_size("18446744073709551615", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(config_parse_size("18446744073709551616", &v), -ERANGE);
    cr_assert_eq(config_parse_size("17179869184g", &v), -ERANGE);
    static const char *const garbage[] = { "", "k", "-1", "+1", "1.5m", "5mb", "5 m", " 5", "5t",
                                           "0x10", "1e3" };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++)
        cr_expect_eq(config_parse_size(garbage[i], &v), -EINVAL, "accepted \"%s\"", garbage[i]);
}

Test(config, durations)
{
    int64_t ms = 0;

    cr_assert_eq(config_parse_duration("250ms", &ms), 0);
    cr_assert_eq(ms, 250);
    cr_assert_eq(config_parse_duration("7", &ms), 0);
    cr_assert_eq(ms, 7000);
    cr_assert_eq(config_parse_duration("7s", &ms), 0);
    cr_assert_eq(ms, 7000);
    cr_assert_eq(config_parse_duration("3m", &ms), 0);
    cr_assert_eq(ms, 180000);
    cr_assert_eq(config_parse_duration("2h", &ms), 0);
    cr_assert_eq(ms, 7200000);
    cr_assert_eq(config_parse_duration("0", &ms), 0);
    cr_assert_eq(ms, 0);
    cr_assert_eq(config_parse_duration("9223372036854775807ms", &ms), 0);
    cr_assert_eq(ms, INT64_MAX);
    cr_assert_eq(config_parse_duration("9223372036854775808ms", &ms), -ERANGE);
    cr_assert_eq(config_parse_duration("9223372036854776s", &ms), -ERANGE);
    cr_assert_eq(config_parse_duration("99999999999999999999999h", &ms), -ERANGE);
    static const char *const garbage[] = { "", "s", "-1s", "1.5s", "1d", "1 s", "1S", "5min",
                                           "1sec", "ms" };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(*garbage); i++)
        cr_expect_eq(config_parse_duration(garbage[i], &ms), -EINVAL, "accepted \"%s\"",
                     garbage[i]);
}

Test(config, booleans)
{
    static const char *const t[] = { "true", "yes", "on", "1", "TRUE", "Yes" };
    static const char *const f[] = { "false", "no", "off", "0", "OFF" };
    bool b;

    for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
        b = false;
        cr_expect(config_parse_bool(t[i], &b) == 0 && b, "%s", t[i]);
    }
    for (size_t i = 0; i < sizeof(f) / sizeof(*f); i++) {
        b = true;
        cr_expect(config_parse_bool(f[i], &b) == 0 && !b, "%s", f[i]);
    }
    cr_assert_eq(config_parse_bool("2", &b), -EINVAL);
    cr_assert_eq(config_parse_bool("", &b), -EINVAL);
    cr_assert_eq(config_parse_bool("y", &b), -EINVAL);
}

/* ---- dump ---- */

Test(config, dump_reloads_to_the_same_configuration)
{
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    FILE *f;
    char path[128];

    cr_assert_eq(load(put("a.conf", "[aws]\nallowed_regions = us-east-1,eu-west-1\n[sink]\n"
                                    "url = http://x:9200\nauth = basic\nusername = u\n"
                                    "password_file = pw\nbulk_max_bytes = 1536k\n"
                                    "flush_interval = 1500ms\n[table posts]\nhmac = a,b\n"
                                    "hmac_key_file = k\n[table users]\nexclude = x\n"),
                      no_env), 0, "%s", err);
    f = open_memstream(&a, &alen);
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_not_null(strstr(a, "\nbulk_max_bytes = 1536k\n"), "%s", a);
    cr_assert_not_null(strstr(a, "\nflush_interval = 1500ms\n"), "%s", a);
    cr_assert_not_null(strstr(a, "\npassword_file = pw\n"), "%s", a);
    cr_assert_not_null(strstr(a, "\nallowed_regions = us-east-1,eu-west-1\n"), "%s", a);
    cr_assert_not_null(strstr(a, "\n[table users]\nindex = users\n"), "%s", a);

    snprintf(path, sizeof(path), "%s", put("dump.conf", a));
    cr_assert_eq(load(path, no_env), 0, "%s", err);
    f = open_memstream(&b, &blen);
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
}

/* ---- secrets ---- */

Test(config, secret_file_is_read_without_trailing_newline)
{
    char *s = NULL;

    cr_assert_eq(config_read_secret(put("pw", "hunter2\n"), &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s, "hunter2");
    free(s);
    cr_assert_eq(config_read_secret(put("pw2", "a b\r\n"), &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s, "a b");
    free(s);
    cr_assert_eq(config_read_secret(put("pw3", "x\n\n"), &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s, "x\n", "only one newline is stripped");
    free(s);
}

Test(config, secret_from_credentials_directory)
{
    char *s = NULL, want[512], cwd[256];

    put("api.key", "k3y\n");
    cr_assert_eq(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
    cr_assert_eq(config_read_secret("api.key", &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(s, "k3y");
    free(s);
    s = NULL;
    cr_assert_eq(config_read_secret("missing.key", &s, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want),
             "cannot read \"%s/missing.key\" ($CREDENTIALS_DIRECTORY/missing.key): %s", dir,
             strerror(ENOENT));
    cr_assert_str_eq(err, want, "the message says where a bare name was looked up");
    cr_assert_null(s);
    cr_assert_eq(unsetenv("CREDENTIALS_DIRECTORY"), 0);
    cr_assert_eq(config_read_secret("api.key", &s, err, sizeof(err)), -ENOENT,
                 "without CREDENTIALS_DIRECTORY a bare name is relative to the cwd");
    cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want),
             "cannot read \"api.key\" (relative to the working directory %s; "
             "$CREDENTIALS_DIRECTORY is not set): %s",
             cwd, strerror(ENOENT));
    cr_assert_str_eq(err, want);
}

Test(config, secret_errors_never_show_the_content)
{
    char *s = NULL, big[70000], want[512];
    const char *p;

    p = put("empty", "\n");
    cr_assert_eq(config_read_secret(p, &s, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "\"%s\" is empty", p);
    cr_assert_str_eq(err, want);

    memset(big, 'S', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    p = put("big", big);
    cr_assert_eq(config_read_secret(p, &s, err, sizeof(err)), -EFBIG);
    cr_assert_null(strstr(err, "SSSS"), "%s", err);
    snprintf(want, sizeof(want), "\"%s\" is larger than 64 KiB", p);
    cr_assert_str_eq(err, want);
    cr_assert_null(s);

    cr_assert_eq(config_read_secret(dir, &s, err, sizeof(err)), -EISDIR);
    snprintf(want, sizeof(want), "cannot read \"%s\": %s", dir, strerror(EISDIR));
    cr_assert_str_eq(err, want);
}

/* ---- refusals after the load: where the value was set ---- */

/* config_refuse on a loaded configuration, into a static line. */
static const char *refused(const struct config_table *t, const char *section, const char *key)
{
    static char line[512];

    cr_assert_eq(config_refuse(&cfg, t, section, key, line, sizeof(line), "why %d", 42), 78);
    return line;
}

Test(config, refusal_names_the_line_or_the_variable_that_set_the_key)
{
    const char *path = put("a.conf", MIN_SINK "auth = basic\nusername = u\npassword_file = pw\n"
                                              "[table posts]\nhmac = email\nhmac_key_file = k\n"
                                              "[table users]\n");
    const char *const env[] = { "DDB2ES_TABLE_USERS_HMAC_KEY_FILE=k2",
                                "DDB2ES_SINK_CA_FILE=/ca.pem", NULL };
    char want[512];

    cr_assert_eq(load(path, env), 0, "%s", err);
    snprintf(want, sizeof(want), "%s:5: [sink] password_file: why 42", path);
    cr_assert_str_eq(refused(NULL, "sink", "password_file"), want);
    snprintf(want, sizeof(want), "%s:8: [table posts] hmac_key_file: why 42", path);
    cr_assert_str_eq(refused(config_table_find(&cfg, "posts"), NULL, "hmac_key_file"), want);
    cr_assert_str_eq(refused(config_table_find(&cfg, "users"), NULL, "hmac_key_file"),
                     "DDB2ES_TABLE_USERS_HMAC_KEY_FILE: why 42",
                     "a value from the environment names the variable, as the loader does");
    cr_assert_str_eq(refused(NULL, "sink", "ca_file"), "DDB2ES_SINK_CA_FILE: why 42");
    snprintf(want, sizeof(want), "%s: [aws] region: why 42", path);
    cr_assert_str_eq(refused(NULL, "aws", "region"), want, "a key not set: the file alone");

    cr_assert_eq(load(NULL, (const char *const[]){ "DDB2ES_TABLES=posts",
                                                   "DDB2ES_SINK_URL=http://x", NULL }),
                 0, "%s", err);
    cr_assert_str_eq(refused(NULL, "sink", "url"), "DDB2ES_SINK_URL: why 42");
    cr_assert_str_eq(refused(NULL, "sink", "auth"), "[sink] auth: why 42",
                     "a default without a file: the key alone");
}

Test(config, secrets_are_read_and_refused_with_their_key)
{
    const char *pw = put("pw", "hunter2\n"), *key = put("k", "hmac-k3y\n");
    char text[512], want[512];
    const char *path;

    snprintf(text, sizeof(text), MIN_SINK "auth = basic\nusername = u\npassword_file = %s\n"
                                          "[table posts]\nhmac = email\nhmac_key_file = %s\n"
                                          "[table users]\nhmac = email\nhmac_key_file = %s/no\n",
             pw, key, dir);
    path = put("a.conf", text);
    cr_assert_eq(load(path, no_env), 0, "%s", err);
    cr_assert_eq(config_read_secrets(&cfg, "posts", err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.sink.password, "hunter2");
    cr_assert_str_eq(config_table_find(&cfg, "posts")->hmac_key, "hmac-k3y");
    cr_assert_null(config_table_find(&cfg, "users")->hmac_key, "only the table asked for");

    cr_assert_eq(config_read_secrets(&cfg, NULL, err, sizeof(err)), 78);
    snprintf(want, sizeof(want), "%s:11: [table users] hmac_key_file: cannot read \"%s/no\": %s",
             path, dir, strerror(ENOENT));
    cr_assert_str_eq(err, want);

    cr_assert_eq(load(path, (const char *const[]){ "DDB2ES_SINK_PASSWORD_FILE=", NULL }), 78,
                 "an empty variable unsets the key");
    cr_assert_eq(load(path, (const char *const[]){ "DDB2ES_SINK_AUTH=apikey",
                                                   "DDB2ES_SINK_API_KEY_FILE=/nonexistent/key",
                                                   NULL }),
                 0, "%s", err);
    cr_assert_eq(config_read_secrets(&cfg, NULL, err, sizeof(err)), 78);
    snprintf(want, sizeof(want), "DDB2ES_SINK_API_KEY_FILE: cannot read \"/nonexistent/key\": %s",
             strerror(ENOENT));
    cr_assert_str_eq(err, want);
    cr_assert_null(cfg.sink.password, "password_file is not read unless auth = basic");
}

/* ---- transport ---- */

static int transport(const char *text, const char *const *envp)
{
    cr_assert_eq(load(put("t.conf", text), envp), 0, "%s", err);
    return config_check_transport(&cfg, err, sizeof(err));
}

Test(config, transport_refusals_name_the_line)
{
    char want[512];
    const char *path = put("t.conf", "");

    cr_assert_eq(transport("[sink]\nurl = http://10.1.2.3:9200\nauth = basic\nusername = u\n"
                           "password_file = pw\n[table posts]\n", no_env), 78);
    snprintf(want, sizeof(want), "%s:2: [sink] url: auth = basic would send credentials "
                                 "unencrypted to 10.1.2.3 over http://; use https:// (plain "
                                 "http is allowed to loopback hosts only)", path);
    cr_assert_str_eq(err, want);

    cr_assert_eq(transport("[aws]\nendpoint = http://ddb.example.com:8000\n" MIN_SINK
                           "auth = none\n[table posts]\n", no_env), 78);
    snprintf(want, sizeof(want), "%s:2: [aws] endpoint: signed AWS requests would go "
                                 "unencrypted to ddb.example.com over http://; use https:// "
                                 "(plain http is allowed to loopback hosts only)", path);
    cr_assert_str_eq(err, want);

    cr_assert_eq(transport("[aws]\nallowed_regions = us-east-1\n[sink]\n"
                           "url = https://x.eu-west-1.aoss.amazonaws.com\n[table posts]\n",
                           no_env), 78);
    snprintf(want, sizeof(want), "%s:4: [sink] url: the domain's region \"eu-west-1\" is not "
                                 "in [aws] allowed_regions", path);
    cr_assert_str_eq(err, want);

    cr_assert_eq(transport(MIN_SINK "auth = none\n[table posts]\n",
                           (const char *const[]){ "DDB2ES_SINK_AUTH=sigv4",
                                                  "DDB2ES_SINK_URL=http://[fd00::1]:9200",
                                                  NULL }), 78);
    cr_assert_str_eq(err, "DDB2ES_SINK_URL: auth = sigv4 would send credentials unencrypted "
                          "to fd00::1 over http://; use https:// (plain http is allowed to "
                          "loopback hosts only)");
    cr_assert_eq(transport(MIN_SINK "auth = basic\nusername = u\npassword_file = pw\n"
                           "[table posts]\n", no_env), 0, "loopback over http is fine: %s", err);
}

/* A self-signed certificate, made here rather than kept as a file. */
static void write_certificate(const char *path)
{
    EVP_PKEY *key;
    X509 *x = testcert_new("EC", NULL, &key);

    testcert_write(path, x);
    X509_free(x);
    EVP_PKEY_free(key);
}

Test(config, ca_file_must_hold_pem_certificates)
{
    char text[512], want[512], ca[256];

    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(text, sizeof(text), "[sink]\nurl = https://127.0.0.1:9\nca_file = %s\n"
                                 "[table posts]\n", ca);
    cr_assert_eq(transport(text, no_env), 78);
    snprintf(want, sizeof(want), "%s/t.conf:3: [sink] ca_file: cannot read \"%s\": %s", dir, ca,
             strerror(ENOENT));
    cr_assert_str_eq(err, want);

    put("ca.pem", "\x30\x82\x01\x0a binary DER, not PEM\n");
    cr_assert_eq(transport(text, no_env), 78);
    snprintf(want, sizeof(want), "%s/t.conf:3: [sink] ca_file: \"%s\" holds no PEM certificate "
                                 "(-----BEGIN CERTIFICATE-----)", dir, ca);
    cr_assert_str_eq(err, want);

    put("ca.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
    cr_assert_eq(transport(text, no_env), 78);
    snprintf(want, sizeof(want), "%s/t.conf:3: [sink] ca_file: \"%s\" holds a PEM block that "
                                 "cannot be parsed", dir, ca);
    cr_assert_str_eq(err, want);

    write_certificate(ca);
    cr_assert_eq(transport(text, no_env), 0, "%s", err);

    snprintf(text, sizeof(text), "[sink]\nurl = https://127.0.0.1:9\nca_file = %s\n"
                                 "[table posts]\n", dir);
    cr_assert_eq(transport(text, no_env), 78);
    snprintf(want, sizeof(want), "%s/t.conf:3: [sink] ca_file: cannot read \"%s\": not a regular "
                                 "file", dir, dir);
    cr_assert_str_eq(err, want);
}

/* ---- [leases] ---- */

Test(config, leases_absent_is_one_process)
{
    cr_assert_eq(load(put("a.conf", MIN_CONF), no_env), 0, "%s", err);
    cr_assert_not(cfg.leases.enabled);
    cr_assert_null(cfg.leases.worker_id, "no worker id is made up for one process");
}

Test(config, leases_section_alone_takes_the_defaults)
{
    char want[300], host[256];

    cr_assert_eq(load(put("a.conf", MIN_CONF "[leases]\n"), no_env), 0, "%s", err);
    cr_assert(cfg.leases.enabled);
    cr_assert_str_eq(cfg.leases.table, "ddb2es-leases");
    cr_assert(cfg.leases.create_table);
    cr_assert_eq(cfg.leases.lease_duration_ms, 10000);
    cr_assert_eq(gethostname(host, sizeof(host)), 0);
    snprintf(want, sizeof(want), "%s:%ld", host, (long)getpid());
    cr_assert_str_eq(cfg.leases.worker_id, want, "default hostname:pid");
}

Test(config, leases_keys_are_typed)
{
    cr_assert_eq(load(put("a.conf", MIN_CONF "[leases]\ntable = my.leases-1\ncreate_table = no\n"
                                             "worker_id = pod-7\nlease_duration = 1500ms\n"),
                      no_env),
                 78, "1.5 s is below the bound");
    cr_assert_str_eq(strchr(err, ':'), ":8: [leases] lease_duration: must be 2s..5m, got \"1500ms\"");
    cr_assert_eq(load(put("b.conf", MIN_CONF "[leases]\ntable = my.leases-1\ncreate_table = no\n"
                                             "worker_id = pod-7\nlease_duration = 30s\n"),
                      no_env),
                 0, "%s", err);
    cr_assert_str_eq(cfg.leases.table, "my.leases-1");
    cr_assert_not(cfg.leases.create_table);
    cr_assert_str_eq(cfg.leases.worker_id, "pod-7");
    cr_assert_eq(cfg.leases.lease_duration_ms, 30000);
}

Test(config, leases_refusals_name_the_key)
{
    expect_error(MIN_CONF "[leases]\ntable = ab\n",
                 "5: [leases] table: is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .), "
                 "got \"ab\"");
    expect_error(MIN_CONF "[leases]\ntable =\n", "5: [leases] table: must not be empty");
    expect_error(MIN_CONF "[leases]\nworker_id = a b\n",
                 "5: [leases] worker_id: must not contain blanks or control characters, got "
                 "\"a b\"");
    expect_error(MIN_CONF "[leases]\nlease_duration = 6m\n",
                 "5: [leases] lease_duration: must be 2s..5m, got \"6m\"");
    expect_error(MIN_CONF "[leases]\nlease_duraton = 6s\n",
                 "5: [leases] lease_duraton: unknown key (did you mean lease_duration?)");
    expect_error(MIN_CONF "[leases]\n[leases]\n", "5: [leases]: duplicate section (first on line 4)");
    expect_error(MIN_CONF "[lease]\n", "4: [lease]: unknown section (did you mean [leases]?)");
}

Test(config, leases_from_the_environment)
{
    const char *const env[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                                "DDB2ES_LEASES_WORKER_ID=w2", NULL };
    const char *const env2[] = { "DDB2ES_LEASES_LEASE_DURATION=20s",
                                 "DDB2ES_LEASES_CREATE_TABLE=false", NULL };
    const char *const bad[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                                "DDB2ES_LEASES_TABLE=x", NULL };
    const char *const typo[] = { "DDB2ES_TABLES=posts", "DDB2ES_SINK_URL=http://x",
                                 "DDB2ES_LEASES_WORKERID=w", NULL };

    cr_assert_eq(load(NULL, env), 0, "%s", err);
    cr_assert(cfg.leases.enabled, "any DDB2ES_LEASES_* variable turns the mode on");
    cr_assert_str_eq(cfg.leases.worker_id, "w2");
    cr_assert_str_eq(cfg.leases.table, "ddb2es-leases");
    cr_assert_eq(load(put("a.conf", MIN_CONF "[leases]\nlease_duration = 5s\n"), env2), 0, "%s",
                 err);
    cr_assert_eq(cfg.leases.lease_duration_ms, 20000, "the environment wins over the file");
    cr_assert_not(cfg.leases.create_table);
    expect_env_error(bad, "DDB2ES_LEASES_TABLE: is not a DynamoDB table name (3-255 of A-Z a-z "
                          "0-9 _ - .), got \"x\"");
    expect_env_error(typo, "DDB2ES_LEASES_WORKERID: unknown key (did you mean "
                           "DDB2ES_LEASES_WORKER_ID?)");
}

Test(config, leases_are_dumped_only_when_on)
{
    char *a = NULL;
    size_t alen = 0;
    FILE *f;

    cr_assert_eq(load(put("a.conf", MIN_CONF), no_env), 0, "%s", err);
    f = open_memstream(&a, &alen);
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_null(strstr(a, "[leases]"), "a dump read back must not turn the mode on: %s", a);
    free(a);
    a = NULL;
    cr_assert_eq(load(put("b.conf", MIN_CONF "[leases]\nworker_id = w1\n"), no_env), 0, "%s", err);
    f = open_memstream(&a, &alen);
    config_dump(&cfg, f);
    fclose(f);
    cr_assert_not_null(strstr(a, "\n[leases]\ntable = ddb2es-leases\ncreate_table = true\n"
                                 "worker_id = w1\nlease_duration = 10s\n"),
                       "%s", a);
    cr_assert_eq(load(put("c.conf", a), no_env), 0, "%s", err);
    cr_assert(cfg.leases.enabled);
    free(a);
}
