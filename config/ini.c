/* config file — the INI file, read with libinih. */
#include "config/config_int.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

/* ---- the file ---- */

/* " (did you mean ...?)" for an unknown key of section, or "". */
static void key_hint(const char *section, const char *key, char *out, size_t len)
{
    const char *near = config_closest_key(section, key);

    out[0] = '\0';
    if (near) {
        snprintf(out, len, " (did you mean %s?)", near);
        return;
    }
    for (size_t i = 0; i < NGLOBAL; i++) {
        if (strcmp(config_global_opts[i].key, key) == 0) {
            snprintf(out, len, " (it belongs in [%s])", config_global_opts[i].section);
            return;
        }
    }
    if (config_find_opt(config_table_opts, NTABLE, "table", key))
        snprintf(out, len, " (it belongs in a [table NAME] section)");
}

static void on_section(struct loader *L, char *s)
{
    char *end = strchr(s, ']'), *name, hint[80] = "";
    struct origin at = at_line(L->lineno);

    if (!end) {
        config_fail(L, at, NULL, NULL, "%s: missing ] in section header", s);
        return;
    }
    if (end[1] != '\0') {
        config_fail(L, at, NULL, NULL, "unexpected text after ]: \"%.60s\"", config_trim(end + 1));
        return;
    }
    *end = '\0';
    name = config_trim(s + 1);
    for (size_t i = 0; i < NSECTIONS; i++) {
        if (strcmp(name, config_sections[i]) != 0)
            continue;
        if (L->sec_line[i]) {
            config_fail(L, at, name, NULL, "duplicate section (first on line %d)", L->sec_line[i]);
            return;
        }
        L->sec_line[i] = L->lineno;
        L->sec = (int)i;
        return;
    }
    if (strncmp(name, "table", 5) == 0 && (name[5] == '\0' || name[5] == ' ' || name[5] == '\t')) {
        char *tname = config_trim(name + 5);
        ssize_t t;

        if (*tname == '\0') {
            config_fail(L, at, "table", NULL, "missing table name: write [table NAME]");
            return;
        }
        if (!config_valid_table_name(tname)) {
            config_fail(L, at, name, NULL,
                        "\"%s\" is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)", tname);
            return;
        }
        t = config_table_lookup(L->cfg, tname);
        if (t >= 0) {
            config_fail(L, at, name, NULL, "duplicate section (first on line %d)",
                        L->tinfo[t].line);
            return;
        }
        t = config_table_add(L, tname, L->lineno);
        L->sec = SEC_TABLE;
        L->tab = (size_t)t;
        return;
    }
    /* Unknown: compare its first word with the known ones. */
    {
        size_t wlen = strcspn(name, " \t"), best = SIZE_MAX;
        const char *near = NULL;
        char word[65];

        snprintf(word, sizeof(word), "%.*s", (int)(wlen < 64 ? wlen : 64), name);
        for (size_t i = 0; i < NSECTIONS; i++) {
            size_t d = config_levenshtein(word, config_sections[i]);
            if (d < best)
                best = d, near = config_sections[i];
        }
        if (config_levenshtein(word, "table") < best) {
            best = config_levenshtein(word, "table");
            near = "table";
        }
        if (near && config_close_enough(word, best)) {
            if (strcmp(near, "table") == 0)
                snprintf(hint, sizeof(hint), " (did you mean [table %.40s]?)",
                         name[wlen] ? config_trim(name + wlen) : "NAME");
            else
                snprintf(hint, sizeof(hint), " (did you mean [%s]?)", near);
        } else {
            snprintf(hint, sizeof(hint), " (known: [daemon], [aws], [sink], [leases], [table NAME])");
        }
        config_fail(L, at, name, NULL, "unknown section%s", hint);
    }
}

/* libinih line source: counts lines, strips the comments libinih does not
 * know (" #"), drops leading blanks so no line is taken as a continuation,
 * handles section headers itself (duplicates, table names) and passes long
 * lines on as a short stand-in (the handler reads the full line from L->cur). */
static char *read_line(char *str, int num, void *stream)
{
    struct loader *L = stream;
    ssize_t n;
    char *s;
    const char *give;

    if (L->rc)
        return NULL;
    errno = 0;
    n = getline(&L->raw, &L->rawcap, L->f);
    if (n < 0) {
        if (ferror(L->f))
            config_fail(L, at_line(0), NULL, NULL, "cannot read: %s",
                        strerror(errno ? errno : EIO));
        return NULL;
    }
    L->lineno++;
    s = L->raw;
    if (memchr(s, '\0', (size_t)n)) {
        config_fail(L, at_line(L->lineno), NULL, NULL, "NUL byte in line");
        return NULL;
    }
    if (L->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    s = config_trim(s);
    if (*s == '#' || *s == ';')
        *s = '\0';
    for (char *p = s; *p; p++) {
        if ((*p == '#' || *p == ';') && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
    }
    s = config_trim(s);
    L->cur = s;
    if (*s == '[') {
        on_section(L, s);
        if (L->rc)
            return NULL;
        give = "[s]";
    } else if (*s && !strpbrk(s, "=:")) {
        config_fail(L, at_line(L->lineno), NULL, NULL,
                    "expected \"key = value\" or \"[section]\", got \"%.60s\"", s);
        return NULL;
    } else {
        give = strlen(s) + 2 <= (size_t)num ? s : "k=v";
    }
    snprintf(str, (size_t)num, "%s\n", give);
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct loader *L = user;
    char *sep, *key, *val, hint[80];
    const struct option *o;
    struct origin at = at_line(L->lineno);

    (void)section, (void)name, (void)value; /* taken from the full line instead */
    if (L->rc)
        return 0;
    sep = strpbrk(L->cur, "=:");
    assert(sep);
    *sep = '\0';
    key = config_trim(L->cur);
    val = config_trim(sep + 1);
    if (L->sec == SEC_NONE) {
        key_hint("", key, hint, sizeof(hint));
        config_fail(L, at, NULL, *key ? key : "\"\"", "key outside any section%s", hint);
        return 0;
    }
    if (L->sec == SEC_TABLE) {
        o = config_find_opt(config_table_opts, NTABLE, "table", key);
        if (!o) {
            char lab[300];
            key_hint("table", key, hint, sizeof(hint));
            snprintf(lab, sizeof(lab), "table %s", L->cfg->tables[L->tab].name);
            config_fail(L, at, lab, *key ? key : "\"\"", "unknown key%s", hint);
            return 0;
        }
        config_apply(L, o, L->tab, val, at);
    } else {
        const char *sect = config_sections[L->sec];
        o = config_find_opt(config_global_opts, NGLOBAL, sect, key);
        if (!o) {
            key_hint(sect, key, hint, sizeof(hint));
            config_fail(L, at, sect, *key ? key : "\"\"", "unknown key%s", hint);
            return 0;
        }
        config_apply(L, o, 0, val, at);
    }
    return L->rc == 0;
}

void config_ini_load(struct loader *L)
{
    struct stat st;
    int rc;

    L->f = fopen(L->path, "re");
    if (!L->f) {
        config_fail(L, at_line(0), NULL, NULL, "cannot open: %s", strerror(errno));
        return;
    }
    if (fstat(fileno(L->f), &st) == 0 && S_ISDIR(st.st_mode)) {
        config_fail(L, at_line(0), NULL, NULL, "cannot read: %s", strerror(EISDIR));
        return;
    }
    L->sec = SEC_NONE;
    rc = ini_parse_stream(read_line, L, on_pair, L);
    if (rc > 0 && !L->rc) /* a syntax error the reader did not foresee */
        config_fail(L, at_line(rc), NULL, NULL, "syntax error");
    else if (rc < 0 && !L->rc)
        config_oom(L);
}
