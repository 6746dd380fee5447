/* config — loading (the file, then the environment, then the rules), the
 * origin of each value, freeing, printing, and refusals in the loader's shape. */
#include "config/config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/secret.h"
#include "config/config_int.h"

/* The origins, kept in the loaded configuration (envp may be gone by then). */
struct where {
    int line;
    char *env; /* the variable's name, owned; NULL when not from the environment */
};

struct config_where {
    struct where global[NGLOBAL];
    struct where (*table)[NTABLE]; /* parallel to cfg->tables */
};

/* ---- errors ---- */

/* One error line into err: where (file:line, or the variable), then the
 * section and key for a file, then the reason. */
void config_vformat(char *err, size_t errlen, const char *path, struct origin at,
                    const char *sect, const char *key, const char *fmt, va_list ap)
{
    size_t pos = 0;

    if (!err || errlen == 0)
        return;
    err[0] = '\0';
    if (at.env) {
        config_appendf(err, errlen, &pos, "%.*s: ", at.envlen, at.env);
    } else {
        if (path && at.line)
            config_appendf(err, errlen, &pos, "%s:%d: ", path, at.line);
        else if (path)
            config_appendf(err, errlen, &pos, "%s: ", path);
        if (sect && key)
            config_appendf(err, errlen, &pos, "[%s] %s: ", sect, key);
        else if (sect)
            config_appendf(err, errlen, &pos, "[%s]: ", sect);
        else if (key)
            config_appendf(err, errlen, &pos, "%s: ", key);
    }
    if (pos < errlen)
        vsnprintf(err + pos, errlen - pos, fmt, ap);
}

static void vfail(struct loader *L, struct origin at, const char *sect, const char *key,
                  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static void vfail(struct loader *L, struct origin at, const char *sect, const char *key,
                  const char *fmt, va_list ap)
{
    if (L->rc)
        return; /* the first error is the one reported */
    L->rc = CONFIG_EX_CONFIG;
    config_vformat(L->err, L->errlen, L->path, at, sect, key, fmt, ap);
}

void config_fail(struct loader *L, struct origin at, const char *sect, const char *key,
                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfail(L, at, sect, key, fmt, ap);
    va_end(ap);
}

void config_oom(struct loader *L)
{
    if (L->rc)
        return;
    L->rc = CONFIG_EX_OSERR;
    if (L->err && L->errlen)
        snprintf(L->err, L->errlen, "%s%sout of memory", L->path ? L->path : "",
                 L->path ? ": " : "");
}

/* Section label for messages: "sink" or "table posts". */
static const char *label(struct loader *L, const struct option *o, size_t tab, char *buf,
                         size_t len)
{
    if (strcmp(o->section, "table") != 0)
        return o->section;
    snprintf(buf, len, "table %s", L->cfg->tables[tab].name);
    return buf;
}

/* Sets option o (of the table tab when it is a table option) from src. */
void config_apply(struct loader *L, const struct option *o, size_t tab, const char *v,
                  struct origin src)
{
    bool is_table = strcmp(o->section, "table") == 0;
    void *base = is_table ? (void *)&L->cfg->tables[tab] : (void *)L->cfg;
    struct origin *orig = is_table ? &L->tinfo[tab].orig[o - config_table_opts]
                                   : &L->orig[o - config_global_opts];
    char why[200], lab[300];
    int rc;

    if (src.line && orig->line) {
        config_fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key,
                    "duplicate key (first set on line %d)", orig->line);
        return;
    }
    why[0] = '\0';
    rc = config_opt_set(o, base, v, why, sizeof(why));
    if (rc == -ENOMEM)
        config_oom(L);
    else if (rc < 0 && *v)
        config_fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key, "%s, got \"%.100s\"", why,
                    v);
    else if (rc < 0)
        config_fail(L, src, label(L, o, tab, lab, sizeof(lab)), o->key, "%s", why);
    else
        *orig = src;
}

/* ---- tables ---- */

static void apply_defaults(struct loader *L, const struct option *opts, size_t n, void *base)
{
    char why[200];

    for (size_t i = 0; i < n && !L->rc; i++) {
        if (!opts[i].def)
            continue;
        int rc = config_opt_set(&opts[i], base, opts[i].def, why, sizeof(why));
        assert(rc != -EINVAL); /* the table's own defaults are valid */
        if (rc < 0)
            config_oom(L);
    }
}

ssize_t config_table_lookup(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ntables; i++)
        if (strcmp(cfg->tables[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends a table with its defaults; returns its index or -1 (out of memory). */
ssize_t config_table_add(struct loader *L, const char *name, int line)
{
    struct config *cfg = L->cfg;
    struct config_table *t;
    struct table_info *ti;
    size_t n = cfg->ntables;

    t = realloc(cfg->tables, (n + 1) * sizeof(*t));
    if (t)
        cfg->tables = t;
    ti = t ? realloc(L->tinfo, (n + 1) * sizeof(*ti)) : NULL;
    if (ti)
        L->tinfo = ti;
    if (!t || !ti) {
        config_oom(L);
        return -1;
    }
    memset(&t[n], 0, sizeof(t[n]));
    memset(&ti[n], 0, sizeof(ti[n]));
    ti[n].line = line;
    if (!(t[n].name = strdup(name))) {
        config_oom(L);
        return -1;
    }
    cfg->ntables++;
    apply_defaults(L, config_table_opts, NTABLE, &t[n]);
    return L->rc ? -1 : (ssize_t)n;
}

/* ---- what stays after the load ---- */

static void keep_origin(struct loader *L, struct where *w, struct origin o)
{
    w->line = o.line;
    if (o.env && !(w->env = strndup(o.env, (size_t)o.envlen)))
        config_oom(L);
}

/* Keeps every value's origin in the configuration, for config_refuse. */
static void keep_where(struct loader *L)
{
    struct config *c = L->cfg;
    struct config_where *w = calloc(1, sizeof(*w));

    if (w && c->ntables && !(w->table = calloc(c->ntables, sizeof(*w->table)))) {
        free(w);
        w = NULL;
    }
    if (!w) {
        config_oom(L);
        return;
    }
    c->where = w;
    for (size_t i = 0; i < NGLOBAL; i++)
        keep_origin(L, &w->global[i], L->orig[i]);
    for (size_t t = 0; t < c->ntables; t++)
        for (size_t i = 0; i < NTABLE; i++)
            keep_origin(L, &w->table[t][i], L->tinfo[t].orig[i]);
}

static void where_free(struct config *cfg)
{
    struct config_where *w = cfg->where;

    if (!w)
        return;
    for (size_t i = 0; i < NGLOBAL; i++)
        free(w->global[i].env);
    for (size_t t = 0; w->table && t < cfg->ntables; t++)
        for (size_t i = 0; i < NTABLE; i++)
            free(w->table[t][i].env);
    free(w->table);
    free(w);
    cfg->where = NULL;
}

/* ---- public ---- */

int config_load_env(const char *path, const char *const *envp, struct config *out, char *err,
                    size_t errlen)
{
    struct loader L = { .cfg = out, .path = path, .err = err, .errlen = errlen,
                        .sec = SEC_NONE };

    memset(out, 0, sizeof(*out));
    if (err && errlen)
        err[0] = '\0';
    apply_defaults(&L, config_global_opts, NGLOBAL, out);
    if (path && !L.rc && !(out->path = strdup(path)))
        config_oom(&L);
    if (path && !L.rc)
        config_ini_load(&L);
    if (!L.rc)
        config_env_load(&L, envp);
    if (!L.rc)
        config_finish(&L);
    if (!L.rc)
        keep_where(&L);
    if (L.f)
        fclose(L.f);
    free(L.raw);
    free(L.tinfo);
    if (L.rc)
        config_free(out);
    return L.rc;
}

int config_load(const char *path, struct config *out, char *err, size_t errlen)
{
    return config_load_env(path, (const char *const *)environ, out, err, errlen);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    where_free(cfg);
    secret_free(&cfg->sink.password);
    secret_free(&cfg->sink.api_key);
    for (size_t i = 0; i < NGLOBAL; i++)
        config_opt_clear(&config_global_opts[i], cfg);
    for (size_t t = 0; t < cfg->ntables; t++) {
        for (size_t i = 0; i < NTABLE; i++)
            config_opt_clear(&config_table_opts[i], &cfg->tables[t]);
        free(cfg->tables[t].name);
        secret_free(&cfg->tables[t].hmac_key);
        free(cfg->tables[t].index_template_body);
    }
    free(cfg->tables);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

size_t config_table_count(const struct config *cfg)
{
    return cfg->ntables;
}

const struct config_table *config_table_at(const struct config *cfg, size_t i)
{
    return i < cfg->ntables ? &cfg->tables[i] : NULL;
}

const struct config_table *config_table_find(const struct config *cfg, const char *name)
{
    ssize_t i = config_table_lookup(cfg, name);
    return i >= 0 ? &cfg->tables[i] : NULL;
}

static void dump_value(const struct option *o, const void *base, FILE *f)
{
    const void *field = (const char *)base + o->off;
    char buf[64];

    fprintf(f, "%s =", o->key);
    switch (o->type) {
    case T_STRING:
        if (*(char *const *)field)
            fprintf(f, " %s", *(char *const *)field);
        break;
    case T_LIST: {
        const struct config_list *l = field;
        for (size_t i = 0; i < l->count; i++)
            fprintf(f, "%s%s", i ? "," : " ", l->items[i]);
        break;
    }
    case T_BOOL:
        fprintf(f, " %s", *(const bool *)field ? "true" : "false");
        break;
    case T_ENUM:
        fprintf(f, " %s", o->names[*(const int *)field]);
        break;
    case T_CHAR:
        fprintf(f, " %c", *(const char *)field);
        break;
    case T_INT:
        fprintf(f, " %d", *(const int *)field);
        break;
    case T_SIZE:
        config_fmt_size(*(const size_t *)field, buf, sizeof(buf));
        fprintf(f, " %s", buf);
        break;
    case T_DURATION:
        config_fmt_duration(*(const int64_t *)field, buf, sizeof(buf));
        fprintf(f, " %s", buf);
        break;
    }
    fputc('\n', f);
}

void config_dump(const struct config *cfg, FILE *f)
{
    for (size_t s = 0; s < NSECTIONS; s++) {
        /* [leases] turns coordinated mode on: written only when it is. */
        if (strcmp(config_sections[s], "leases") == 0 && !cfg->leases.enabled)
            continue;
        fprintf(f, "%s[%s]\n", s ? "\n" : "", config_sections[s]);
        for (size_t i = 0; i < NGLOBAL; i++)
            if (strcmp(config_global_opts[i].section, config_sections[s]) == 0)
                dump_value(&config_global_opts[i], cfg, f);
    }
    for (size_t t = 0; t < cfg->ntables; t++) {
        fprintf(f, "\n[table %s]\n", cfg->tables[t].name);
        for (size_t i = 0; i < NTABLE; i++)
            dump_value(&config_table_opts[i], &cfg->tables[t], f);
    }
}

static const char *const type_name[] = { [T_STRING] = "string", [T_BOOL] = "bool",
    [T_INT] = "integer", [T_SIZE] = "size", [T_DURATION] = "duration", [T_ENUM] = "enum",
    [T_LIST] = "list", [T_CHAR] = "character" };

static void describe(const struct option *o, FILE *f)
{
    char lo[32], hi[32];

    fprintf(f, "# %s: %s", o->key, type_name[o->type]);
    if (o->type == T_ENUM) {
        for (int i = 0; o->names[i]; i++)
            fprintf(f, "%s%s", i ? "|" : " ", o->names[i]);
    }
    if (o->type == T_INT || o->type == T_SIZE || o->type == T_DURATION) {
        config_fmt_bound(o, o->min, lo, sizeof(lo));
        config_fmt_bound(o, o->max, hi, sizeof(hi));
        fprintf(f, " %s..%s", lo, hi);
    }
    if (o->def)
        fprintf(f, ", default %s", o->def);
    fprintf(f, "\n#   %s\n", o->help);
}

void config_describe(FILE *f)
{
    for (size_t s = 0; s < NSECTIONS; s++) {
        fprintf(f, "%s# [%s]\n", s ? "#\n" : "", config_sections[s]);
        for (size_t i = 0; i < NGLOBAL; i++)
            if (strcmp(config_global_opts[i].section, config_sections[s]) == 0)
                describe(&config_global_opts[i], f);
    }
    fprintf(f, "#\n# [table NAME]\n");
    for (size_t i = 0; i < NTABLE; i++)
        describe(&config_table_opts[i], f);
}

int config_refuse(const struct config *cfg, const struct config_table *t, const char *section,
                  const char *key, char *err, size_t errlen, const char *fmt, ...)
{
    const struct option *o = t ? config_find_opt(config_table_opts, NTABLE, "table", key)
                               : config_find_opt(config_global_opts, NGLOBAL, section, key);
    const struct where *w = NULL;
    struct origin at = { 0 };
    char lab[300];
    va_list ap;

    assert(o);
    assert(!t || (t >= cfg->tables && t < cfg->tables + cfg->ntables));
    if (t) {
        snprintf(lab, sizeof(lab), "table %s", t->name);
        section = lab;
    }
    if (o && cfg->where)
        w = t ? &cfg->where->table[t - cfg->tables][o - config_table_opts]
              : &cfg->where->global[o - config_global_opts];
    if (w)
        at = (struct origin){ .line = w->line, .env = w->env,
                              .envlen = w->env ? (int)strlen(w->env) : 0 };
    va_start(ap, fmt);
    config_vformat(err, errlen, cfg->path, at, section, key, fmt, ap);
    va_end(ap);
    return CONFIG_EX_CONFIG;
}
