/* config environment — DDB2ES_* variables over the file. */
#include "config/config_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- the environment ---- */

static struct origin at_env(const char *entry)
{
    const char *eq = strchr(entry, '=');
    return (struct origin){ .env = entry, .envlen = (int)(eq - entry) };
}

/* Table name as it appears in variable names: upper case, others '_'. */
static void env_name(const char *name, char *out, size_t len)
{
    size_t i = 0;

    for (; name[i] && i + 1 < len; i++)
        out[i] = isalnum((unsigned char)name[i]) ? (char)toupper((unsigned char)name[i]) : '_';
    out[i] = '\0';
}

static const struct option *find_opt_env(const struct option *opts, size_t n, const char *section,
                                         const char *key, size_t keylen)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].section, section) == 0 && strlen(opts[i].key) == keylen &&
            strncasecmp(opts[i].key, key, keylen) == 0)
            return &opts[i];
    return NULL;
}

static void env_unknown_key(struct loader *L, struct origin at, const char *section,
                            const char *prefix, const char *key, size_t keylen)
{
    char lower[65], hint[200] = "";
    const char *near;

    snprintf(lower, sizeof(lower), "%.*s", (int)(keylen < 64 ? keylen : 64), key);
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    near = config_closest_key(section, lower);
    if (near) {
        size_t pos = 0;
        config_appendf(hint, sizeof(hint), &pos, " (did you mean %s", prefix);
        for (const char *p = near; *p; p++)
            config_appendf(hint, sizeof(hint), &pos, "%c", toupper((unsigned char)*p));
        config_appendf(hint, sizeof(hint), &pos, "?)");
    }
    config_fail(L, at, NULL, NULL, "unknown key%s", hint);
}

static void env_tables(struct loader *L, const char *entry)
{
    struct origin at = at_env(entry);
    char *copy = strdup(strchr(entry, '=') + 1), *p = copy;

    if (!copy) {
        config_oom(L);
        return;
    }
    while (p && !L->rc) {
        char *comma = strchr(p, ','), *colon, *name, *index = NULL;
        ssize_t t;

        if (comma)
            *comma = '\0';
        if ((colon = strchr(p, ':'))) {
            *colon = '\0';
            index = config_trim(colon + 1);
        }
        name = config_trim(p);
        p = comma ? comma + 1 : NULL;
        if (*name == '\0' && !index)
            continue; /* "a,,b" and a trailing comma */
        if (!config_valid_table_name(name)) {
            config_fail(L, at, NULL, NULL,
                        "\"%s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)", name);
            break;
        }
        t = config_table_lookup(L->cfg, name);
        if (t < 0)
            t = config_table_add(L, name, 0);
        if (t >= 0 && index)
            config_apply(L, config_find_opt(config_table_opts, NTABLE, "table", "index"), (size_t)t,
                         index, at);
    }
    free(copy);
}

static void env_table_key(struct loader *L, const char *entry, const char *rest, size_t restlen)
{
    struct origin at = at_env(entry);
    ssize_t best = -1, prefix_only = -1;
    size_t best_len = 0;
    const struct option *best_opt = NULL;
    bool ambiguous = false;
    char en[300];

    for (size_t i = 0; i < L->cfg->ntables; i++) {
        size_t n;
        const struct option *o;

        env_name(L->cfg->tables[i].name, en, sizeof(en));
        n = strlen(en);
        if (n + 1 >= restlen || strncmp(rest, en, n) != 0 || rest[n] != '_')
            continue;
        o = find_opt_env(config_table_opts, NTABLE, "table", rest + n + 1, restlen - n - 1);
        if (!o) {
            prefix_only = (ssize_t)i;
            continue;
        }
        if (best >= 0 && n == best_len)
            ambiguous = true;
        if (best < 0 || n > best_len) {
            best = (ssize_t)i, best_len = n, best_opt = o;
            ambiguous = false;
        }
    }
    if (ambiguous) {
        config_fail(L, at, NULL, NULL, "more than one table has this name in the environment");
    } else if (best >= 0) {
        config_apply(L, best_opt, (size_t)best, strchr(entry, '=') + 1, at);
    } else if (prefix_only >= 0) {
        char prefix[320];
        env_name(L->cfg->tables[prefix_only].name, en, sizeof(en));
        snprintf(prefix, sizeof(prefix), "DDB2ES_TABLE_%s_", en);
        env_unknown_key(L, at, "table", prefix, rest + strlen(en) + 1,
                        restlen - strlen(en) - 1);
    } else {
        config_fail(L, at, NULL, NULL,
                    "no such table (declare it in DDB2ES_TABLES or in a [table NAME] section)");
    }
}

void config_env_load(struct loader *L, const char *const *envp)
{
    static const char pre[] = "DDB2ES_";

    for (size_t i = 0; envp && envp[i] && !L->rc; i++)
        if (strncmp(envp[i], "DDB2ES_TABLES=", 14) == 0)
            env_tables(L, envp[i]);
    for (size_t i = 0; envp && envp[i] && !L->rc; i++) {
        const char *e = envp[i], *eq = strchr(e, '='), *rest;
        size_t restlen;

        if (!eq || strncmp(e, pre, sizeof(pre) - 1) != 0)
            continue;
        rest = e + sizeof(pre) - 1;
        restlen = (size_t)(eq - rest);
        if (restlen > 6 && strncmp(rest, "TABLE_", 6) == 0) {
            env_table_key(L, e, rest + 6, restlen - 6);
            continue;
        }
        for (size_t s = 0; s < NSECTIONS; s++) {
            size_t sl = strlen(config_sections[s]);
            const struct option *o;
            char prefix[32];

            if (restlen <= sl + 1 || strncasecmp(rest, config_sections[s], sl) != 0 ||
                rest[sl] != '_')
                continue;
            o = find_opt_env(config_global_opts, NGLOBAL, config_sections[s], rest + sl + 1,
                             restlen - sl - 1);
            if (o) {
                config_apply(L, o, 0, eq + 1, at_env(e));
            } else {
                snprintf(prefix, sizeof(prefix), "DDB2ES_%.*s_", (int)sl, rest);
                env_unknown_key(L, at_env(e), config_sections[s], prefix, rest + sl + 1,
                                restlen - sl - 1);
            }
            break;
        }
    }
}
