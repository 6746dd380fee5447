/* Fuzz target: the configuration loader (config_load_env), and the refusals
 * made after it from the origins it keeps (config_refuse, and
 * config_check_transport when no ca_file would be read).
 *
 * The input is an INI file; whatever follows a line "--env--" is taken as
 * environment entries (NAME=VALUE, one a line), so the DDB2ES_* overrides
 * are fuzzed too.  A failure, and every refusal, must be one line. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ENV 32

static void one_line(const char *line)
{
    if (line[0] == '\0' || strchr(line, '\n'))
        abort();
}

/* Refusals of keys set in the file, the environment or not at all. */
static void refusals(const struct config *cfg)
{
    static const char *const keys[][2] = { { "sink", "url" },
                                           { "sink", "password_file" },
                                           { "aws", "allowed_regions" },
                                           { "daemon", "metrics_listen" } };
    char err[1024];

    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (config_refuse(cfg, NULL, keys[i][0], keys[i][1], err, sizeof(err), "%s", "no") !=
            CONFIG_EX_CONFIG)
            abort();
        one_line(err);
    }
    for (size_t t = 0; t < config_table_count(cfg); t++) {
        config_refuse(cfg, config_table_at(cfg, t), NULL, "hmac_key_file", err, sizeof(err),
                      "%s", "no");
        one_line(err);
    }
    if (!cfg->sink.ca_file && config_check_transport(cfg, err, sizeof(err)) != 0)
        one_line(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char mark[] = "\n--env--\n";
    const char *envp[MAX_ENV + 1];
    char path[300], err[1024];
    struct config cfg;
    char *env = NULL, *copy;
    size_t file_len = size, n = 0;
    int rc;

    copy = malloc(size + 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    if (size >= sizeof(mark) - 1) {
        char *m = memmem(copy, size, mark, sizeof(mark) - 1);

        if (m) {
            file_len = (size_t)(m - copy) + 1;
            env = m + sizeof(mark) - 1;
        }
    }
    for (char *line = env, *next; line && *line && n < MAX_ENV; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strchr(line, '='))
            envp[n++] = line;
    }
    envp[n] = NULL;
    snprintf(path, sizeof(path), "%s/ddb2es.conf", fuzz_tmpdir());
    fuzz_write_file(path, data, file_len);
    rc = config_load_env(path, envp, &cfg, err, sizeof(err));
    if (rc != 0)
        one_line(err);
    else
        refusals(&cfg);
    config_free(&cfg);
    free(copy);
    return 0;
}
