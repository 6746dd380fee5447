/* Fuzz target: the configuration loader (config_load_env).
 *
 * The input is an INI file; whatever follows a line "--env--" is taken as
 * environment entries (NAME=VALUE, one a line), so the DDB2ES_* overrides
 * are fuzzed too.  A failure must leave one line naming where. */
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ENV 32

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
    if (rc != 0 && (err[0] == '\0' || strchr(err, '\n')))
        abort();
    config_free(&cfg);
    free(copy);
    return 0;
}
