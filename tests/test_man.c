/* The man pages against the code they describe, so that neither can change
 * without the other:
 *  - man/ddb2es.8 names every option of the command line's option table
 *    (cmd/main.c, read at test time), and each command's subsection names
 *    the flags the binary's own `ddb2es CMD --help` gives that command, and
 *    no other;
 *  - man/ddb2es.conf.5 names every key of the configuration's key table
 *    (config/keys.c, linked in) in its section's subsection, with its type,
 *    its default and its bounds as the loader prints them, and no key the
 *    table lacks;
 *  - both render without warnings (groff, through man -l). */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_int.h"
#include "tests/support/proc.h"

TestSuite(man, .timeout = 30);

#define PAGE8 "man/ddb2es.8"
#define PAGE5 "man/ddb2es.conf.5"
#define MAX_NAMES 64

struct names {
    size_t n;
    char v[MAX_NAMES][48];
};

static void names_add(struct names *s, const char *p, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && strncmp(s->v[i], p, len) == 0)
            return;
    cr_assert_lt(s->n, MAX_NAMES);
    cr_assert_lt(len, sizeof(s->v[0]), "%.*s", (int)len, p);
    memcpy(s->v[s->n], p, len);
    s->v[s->n++][len] = '\0';
}

static bool names_has(const struct names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0)
            return true;
    return false;
}

static char *read_text(const char *path)
{
    char *text = proc_slurp(path);

    cr_assert(text[0] != '\0', "%s is missing or empty", path);
    return text;
}

/* What `ddb2es [cmd] --help` prints on stdout (caller frees). */
static char *help_of(const char *cmd)
{
    char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), cmd ? cmd : "--help",
                           cmd ? "--help" : NULL, NULL };
    struct proc p;

    cr_assert_eq(proc_run(argv, NULL, 10000, &p), 0, "ddb2es %s --help", cmd ? cmd : "");
    return read_text(p.out_path);
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* "Fl -name" in [from, to), as a whole word. */
static bool has_flag(const char *from, const char *to, const char *name)
{
    char want[64];
    size_t n = (size_t)snprintf(want, sizeof(want), "Fl -%s", name);

    for (const char *p = from; p && p < to && (p = strstr(p, want)) && p < to; p++)
        if (!is_name_char(p[n]))
            return true;
    return false;
}

/* Every "Fl -name" in [from, to) into out. */
static void flags_in(const char *from, const char *to, struct names *out)
{
    for (const char *p = from; (p = strstr(p, "Fl -")) && p < to; p++) {
        const char *q = p + 4;

        while (is_name_char(*q))
            q++;
        names_add(out, p + 4, (size_t)(q - p - 4));
    }
}

/* The subsection of page whose ".Ss" line starts with header (the header
 * matching whole: ".Ss run" is not ".Ss runx"); *to is where it ends. */
static const char *subsection(const char *page, const char *header, const char **to)
{
    char want[128];
    size_t n = (size_t)snprintf(want, sizeof(want), "\n.Ss %s", header);
    const char *p = page;

    while ((p = strstr(p, want)) && is_name_char(header[strlen(header) - 1]) &&
           is_name_char(p[n]))
        p++;
    if (!p)
        return NULL;
    p++;
    *to = p + strlen(p);
    for (const char *q = strchr(p, '\n'); q; q = strchr(q + 1, '\n'))
        if (strncmp(q, "\n.Ss ", 5) == 0 || strncmp(q, "\n.Sh ", 5) == 0) {
            *to = q;
            break;
        }
    return p;
}

/* The long options of the option table of cmd/main.c's parse(), and the
 * letters of its short option string. */
static void option_table(struct names *longs, struct names *shorts)
{
    char *src = read_text("cmd/main.c");
    const char *p = strstr(src, "static const struct option opts[] = {");
    const char *end = p ? strstr(p, "{ NULL, 0, NULL, 0 }") : NULL;
    const char *s = strstr(src, "getopt_long(argc, argv, \"");

    cr_assert(p && end && s, "the option table of cmd/main.c was not found");
    for (p = strstr(p, "{ \""); p && p < end; p = strstr(p + 1, "{ \"")) {
        const char *q = strchr(p + 3, '"');

        names_add(longs, p + 3, (size_t)(q - p - 3));
    }
    for (s += strlen("getopt_long(argc, argv, \""); *s != '"'; s++)
        if (isalnum((unsigned char)*s))
            names_add(shorts, s, 1);
    cr_assert_gt(longs->n, 10, "%zu long options", longs->n);
    free(src);
}

Test(man, every_option_of_the_option_table_is_in_ddb2es_8_and_no_other)
{
    struct names longs = { 0 }, shorts = { 0 }, named = { 0 };
    char *page = read_text(PAGE8);
    const char *end = page + strlen(page);

    option_table(&longs, &shorts);
    for (size_t i = 0; i < longs.n; i++)
        cr_expect(has_flag(page, end, longs.v[i]), "%s lacks --%s", PAGE8, longs.v[i]);
    for (size_t i = 0; i < shorts.n; i++) {
        char want[16];

        snprintf(want, sizeof(want), "Fl %s ", shorts.v[i]);
        cr_expect(strstr(page, want) != NULL, "%s lacks -%s", PAGE8, shorts.v[i]);
    }
    flags_in(page, end, &named);
    for (size_t i = 0; i < named.n; i++)
        cr_expect(names_has(&longs, named.v[i]), "%s names --%s, which cmd/main.c lacks", PAGE8,
                  named.v[i]);
    free(page);
}

/* The commands of the "commands:" block of the general help. */
static void commands_of(const char *general, struct names *out)
{
    const char *p = strstr(general, "\ncommands:\n");

    cr_assert_not_null(p, "the help has no commands: block");
    for (p = strchr(p + 1, '\n') + 1; *p != '\n' && *p; p = strchr(p, '\n') + 1) {
        const char *q = p + 2;

        if (strncmp(p, "  ", 2) == 0 && islower((unsigned char)*q)) {
            while (islower((unsigned char)*q))
                q++;
            names_add(out, p + 2, (size_t)(q - p - 2));
        }
    }
}

/* The options of the general help's "options:" block: those whose text
 * begins with command names ("run, replay: ...") go to those commands'
 * lists in per[] (parallel to cmds), the others to global. */
static void general_options(const char *general, const struct names *cmds, struct names *per,
                            struct names *global)
{
    const char *p = strstr(general, "\noptions:\n");

    cr_assert_not_null(p, "the help has no options: block");
    for (p = strchr(p + 1, '\n') + 1; *p != '\n' && *p; p = strchr(p, '\n') + 1) {
        const char *flag = strstr(p, "--"), *eol = strchr(p, '\n'), *d, *name;
        size_t len;
        bool any = false;

        if (p[strspn(p, " ")] != '-' || !flag || flag > eol)
            continue;
        name = flag + 2;
        for (d = name; is_name_char(*d); d++)
            ;
        len = (size_t)(d - name);
        d += strspn(d, " ");
        if (isupper((unsigned char)*d))          /* its argument: FILE */
            d += strcspn(d, " \n");
        d += strspn(d, " ");
        if (*d == '\n')                          /* the text is on the next line */
            d += 1 + strspn(d + 1, " ");
        /* "run, replay: ..." / "status, with [leases]: ..." */
        for (;;) {
            size_t w = strspn(d, "abcdefghijklmnopqrstuvwxyz");
            bool known = false;

            for (size_t c = 0; c < cmds->n && w; c++)
                if (strlen(cmds->v[c]) == w && strncmp(cmds->v[c], d, w) == 0 &&
                    (d[w] == ',' || d[w] == ':')) {
                    names_add(&per[c], name, len);
                    known = any = true;
                }
            if (!known)
                break;
            d += w + 1 + strspn(d + w + 1, " ");
        }
        if (!any)
            names_add(global, name, len);
    }
}

Test(man, each_command_s_subsection_names_its_flags_and_no_other)
{
    char *general = help_of(NULL), *page = read_text(PAGE8);
    struct names cmds = { 0 }, global = { 0 };
    struct names *per = calloc(MAX_NAMES, sizeof(*per));
    const char *synopsis = strstr(page, "\n.Sh SYNOPSIS\n");
    const char *desc = strstr(page, "\n.Sh DESCRIPTION\n");

    cr_assert(synopsis && desc);
    commands_of(general, &cmds);
    cr_assert_geq(cmds.n, 7, "%zu commands in ddb2es --help", cmds.n);
    general_options(general, &cmds, per, &global);
    for (size_t c = 0; c < cmds.n; c++) {
        const char *cmd = cmds.v[c], *to, *from = subsection(page, cmd, &to);
        char *own = help_of(cmd), want[64];
        struct names flags = per[c], named = { 0 };

        snprintf(want, sizeof(want), "\n.Cm %s\n", cmd);
        cr_expect(strstr(synopsis, want) && strstr(synopsis, want) < desc,
                  "the SYNOPSIS of %s lacks %s", PAGE8, cmd);
        if (!from) {
            cr_expect_fail("%s has no subsection \".Ss %s\"", PAGE8, cmd);
            free(own);
            continue;
        }
        /* A command with a help of its own: every flag it shows. */
        if (strcmp(own, general) != 0) {
            flags = (struct names){ 0 };
            for (const char *p = own; (p = strstr(p, "--")); p += 2) {
                const char *q = p + 2;

                while (is_name_char(*q))
                    q++;
                if (q > p + 2 && (p == own || !is_name_char(p[-1])))
                    names_add(&flags, p + 2, (size_t)(q - p - 2));
            }
        }
        for (size_t i = 0; i < flags.n; i++)
            if (!names_has(&global, flags.v[i]))
                cr_expect(has_flag(from, to, flags.v[i]), "%s: \".Ss %s\" lacks --%s", PAGE8,
                          cmd, flags.v[i]);
        flags_in(from, to, &named);
        for (size_t i = 0; i < named.n; i++)
            cr_expect(names_has(&flags, named.v[i]) || names_has(&global, named.v[i]),
                      "%s: \".Ss %s\" names --%s, which ddb2es %s --help does not", PAGE8, cmd,
                      named.v[i], cmd);
        free(own);
    }
    free(per);
    free(page);
    free(general);
}

/* ---- ddb2es.conf.5 ------------------------------------------------------ */

/* The item ".It Cm key ..." in [from, to): its .It line in *line (up to the
 * newline), its text up to the next item or the list's end in *end. */
static const char *item(const char *from, const char *to, const char *key, const char **end)
{
    char want[96];
    size_t n = (size_t)snprintf(want, sizeof(want), "\n.It Cm %s", key);

    for (const char *p = from; (p = strstr(p, want)) && p < to; p++) {
        const char *q;

        if (p[n] != ' ' && p[n] != '\n')
            continue;
        p++;
        *end = to;
        for (q = strchr(p, '\n'); q && q < to; q = strchr(q + 1, '\n'))
            if (strncmp(q, "\n.It ", 5) == 0 || strncmp(q, "\n.El", 4) == 0) {
                *end = q;
                break;
            }
        return p;
    }
    return NULL;
}

/* needle in [from, to) followed by the end of a sentence or a blank. */
static bool has_value(const char *from, const char *to, const char *needle)
{
    size_t n = strlen(needle);

    for (const char *p = from; (p = strstr(p, needle)) && p + n <= to; p++)
        if (strchr(".,; \n", p[n]))
            return true;
    return false;
}

static const char *type_word(enum opt_type t)
{
    switch (t) {
    case T_BOOL: return "boolean";
    case T_INT: return "integer";
    case T_SIZE: return "size";
    case T_DURATION: return "duration";
    case T_LIST: return "list";
    case T_CHAR: return "character";
    default: return NULL;
    }
}

static void expect_key(const char *page, const struct option *o)
{
    char header[64], want[256], lo[32], hi[32];
    const char *to, *from, *end, *it, *eol;
    size_t pos = 0;

    snprintf(header, sizeof(header), "[%s%s", o->section, strcmp(o->section, "table") ? "]" : " ");
    from = subsection(page, header, &to);
    if (!from) {
        cr_expect_fail("%s has no subsection \".Ss %s\" for %s", PAGE5, header, o->key);
        return;
    }
    it = item(from, to, o->key, &end);
    if (!it) {
        cr_expect_fail("%s: \".Ss %s\" lacks \".It Cm %s\"", PAGE5, header, o->key);
        return;
    }
    eol = strchr(it, '\n');
    /* The type: ".It Cm key No = Ar integer", or the values of an enum. */
    if (o->type == T_ENUM) {
        config_appendf(want, sizeof(want), &pos, ".It Cm %s No = Cm", o->key);
        for (size_t i = 0; o->names[i]; i++)
            config_appendf(want, sizeof(want), &pos, "%s %s", i ? " |" : "", o->names[i]);
    } else if (type_word(o->type)) {
        config_appendf(want, sizeof(want), &pos, ".It Cm %s No = Ar %s", o->key,
                       type_word(o->type));
    } else {
        config_appendf(want, sizeof(want), &pos, ".It Cm %s No = Ar ", o->key);
    }
    cr_expect(strncmp(it, want, strlen(want)) == 0 &&
                  (o->type == T_STRING || it + strlen(want) == eol),
              "%s: [%s] %s: the item line is \"%.*s\", expected \"%s\"", PAGE5, o->section,
              o->key, (int)(eol - it), it, want);
    snprintf(want, sizeof(want), "Default: %s", o->def ? o->def : "");
    cr_expect(o->def ? has_value(eol, end, want) : has_value(eol, end, "Default:"),
              "%s: [%s] %s: its text lacks \"%s\"", PAGE5, o->section, o->key, want);
    if (o->type == T_INT || o->type == T_SIZE || o->type == T_DURATION) {
        config_fmt_bound(o, o->min, lo, sizeof(lo));
        config_fmt_bound(o, o->max, hi, sizeof(hi));
        snprintf(want, sizeof(want), "Range: %s..%s", lo, hi);
        cr_expect(has_value(eol, end, want), "%s: [%s] %s: its text lacks \"%s\"", PAGE5,
                  o->section, o->key, want);
    }
}

/* Every ".It Cm key" of a key section is a key of that section. */
static void expect_no_other_key(const char *page, const char *header, const char *section)
{
    const char *to, *from = subsection(page, header, &to);
    const struct option *opts = strcmp(section, "table") ? config_global_opts : config_table_opts;
    size_t n = strcmp(section, "table") ? NGLOBAL : NTABLE;

    cr_assert_not_null(from, "%s has no subsection \".Ss %s\"", PAGE5, header);
    for (const char *p = from; (p = strstr(p, "\n.It Cm ")) && p < to; p++) {
        char key[64];
        size_t len = strcspn(p + 8, " \n");

        snprintf(key, sizeof(key), "%.*s", (int)len, p + 8);
        cr_expect_not_null(config_find_opt(opts, n, section, key),
                           "%s: \".Ss %s\" names %s, which config/keys.c lacks", PAGE5, header,
                           key);
    }
}

Test(man, every_key_of_the_key_table_is_in_ddb2es_conf_5_in_its_section)
{
    char *page = read_text(PAGE5), header[64];

    for (size_t i = 0; i < NGLOBAL; i++)
        expect_key(page, &config_global_opts[i]);
    for (size_t i = 0; i < NTABLE; i++)
        expect_key(page, &config_table_opts[i]);
    for (size_t i = 0; i < NSECTIONS; i++) {
        snprintf(header, sizeof(header), "[%s]", config_sections[i]);
        expect_no_other_key(page, header, config_sections[i]);
    }
    expect_no_other_key(page, "[table ", "table");
    free(page);
}

Test(man, the_pages_render_without_warnings)
{
    const char *pages[] = { PAGE8, PAGE5 };
    const char *env[] = { "LC_ALL=C.UTF-8", "MANWIDTH=80", NULL };

    if (access("/usr/bin/man", X_OK) != 0)
        cr_skip_test("man is not installed (apt-get install man-db)");
    for (size_t i = 0; i < 2; i++) {
        const char *argv[] = { "/usr/bin/man", "--warnings", "-l", pages[i], NULL };
        struct proc p;
        int rc = proc_run(argv, env, 20000, &p);
        char *out = proc_slurp(p.out_path), *err = proc_slurp(p.err_path);

        cr_expect_eq(rc, 0, "man -l %s: exit %d: %s", pages[i], rc, err);
        cr_expect_str_eq(err, "", "man --warnings -l %s", pages[i]);
        cr_expect(strstr(out, "NAME") != NULL, "%s renders: %s", pages[i], out);
        free(out);
        free(err);
    }
}
