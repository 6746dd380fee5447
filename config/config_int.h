/* The configuration's insides, shared by the files of config/ only: the key
 * table's shape, the loader's state, and what each file gives the others. */
#ifndef DDB2ES_CONFIG_INT_H
#define DDB2ES_CONFIG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base/util.h"
#include "config/config.h"

#define KIB ((int64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SEC ((int64_t)1000)
#define MINUTE (60 * SEC)
#define HOUR (60 * MINUTE)

enum opt_type { T_STRING, T_BOOL, T_INT, T_SIZE, T_DURATION, T_ENUM, T_LIST, T_CHAR };

typedef int check_fn(const char *value, char *why, size_t len);

struct option {
    const char *section;      /* "daemon", "aws", "sink", "leases"; "table" in table_opts */
    const char *key;
    enum opt_type type;
    const char *def;          /* default, written as in the file; NULL = unset or derived */
    int64_t min, max;         /* T_INT, T_SIZE (bytes), T_DURATION (ms) */
    size_t off;               /* in struct config, or struct config_table */
    const char *const *names; /* T_ENUM: names[i] is value i; NULL-terminated */
    check_fn *check;          /* T_STRING value or each T_LIST item, when non-empty */
    const char *help;
};

/* keys.c: the table (the counts are checked there against the rows). */
#define NGLOBAL 42 /* rows of config_global_opts */
#define NTABLE 12  /* rows of config_table_opts */
#define NSECTIONS 4
extern const struct option config_global_opts[];
extern const struct option config_table_opts[];
extern const char *const config_sections[]; /* "daemon", "aws", "sink", "leases" */
extern const char *const config_auth_names[];
const struct option *config_find_opt(const struct option *opts, size_t n, const char *section,
                                     const char *key);
const char *config_closest_key(const char *section, const char *key);

enum { SEC_NONE = -2, SEC_TABLE = -1 }; /* else an index into config_sections */

/* Where a value came from: a file line, an environment variable, or neither
 * (a default). */
struct origin {
    int line;
    const char *env; /* "NAME=VALUE" entry of envp; envlen bytes are the name */
    int envlen;
};

struct table_info {
    int line; /* of its [table NAME] header, 0 when declared by DDB2ES_TABLES */
    struct origin orig[NTABLE];
};

struct loader {
    struct config *cfg;
    const char *path;
    char *err;
    size_t errlen;
    int rc;

    FILE *f;
    int lineno;
    char *raw;
    size_t rawcap;
    char *cur; /* the current line, comments and blanks stripped, inside raw */

    int sec; /* SEC_NONE, SEC_TABLE or a global section */
    size_t tab;
    int sec_line[NSECTIONS];
    struct origin orig[NGLOBAL];
    struct table_info *tinfo; /* parallel to cfg->tables */
};

static inline struct origin at_line(int line)
{
    return (struct origin){ .line = line };
}

/* parse.c: text helpers, value parsers and checks, setting one key. */
void config_appendf(char *dst, size_t len, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
char *config_trim(char *s);
size_t config_levenshtein(const char *a, const char *b);
bool config_close_enough(const char *word, size_t d);
void config_fmt_size(uint64_t v, char *out, size_t len);
void config_fmt_duration(int64_t ms, char *out, size_t len);
void config_fmt_bound(const struct option *o, int64_t v, char *out, size_t len);
check_fn config_check_url, config_check_region, config_check_listen, config_check_service,
    config_check_index, config_check_table_name, config_check_worker_id,
    config_check_field_name;
bool config_valid_table_name(const char *s);
int config_opt_set(const struct option *o, void *base, const char *v, char *why, size_t len);
void config_opt_clear(const struct option *o, void *base);

/* config.c: errors, setting a key from a source, the tables. */
void config_vformat(char *err, size_t errlen, const char *path, struct origin at,
                    const char *sect, const char *key, const char *fmt, va_list ap)
    __attribute__((format(printf, 7, 0)));
void config_fail(struct loader *L, struct origin at, const char *sect, const char *key,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void config_oom(struct loader *L);
void config_apply(struct loader *L, const struct option *o, size_t tab, const char *v,
                  struct origin src);
ssize_t config_table_lookup(const struct config *cfg, const char *name);
ssize_t config_table_add(struct loader *L, const char *name, int line);

/* ini.c, env.c, rules.c: the steps of a load, in this order. */
void config_ini_load(struct loader *L);
void config_env_load(struct loader *L, const char *const *envp);
void config_finish(struct loader *L);

#endif
