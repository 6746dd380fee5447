#include "aws/profile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

#define MAX_FILE_BYTES (1 << 20)

/* ---- building the set ----------------------------------------------------- */

static void kv_free(struct profile_kv *kv)
{
    for (size_t i = 0; i < kv->nsub; i++)
        kv_free(&kv->sub[i]);
    free(kv->sub);
    free(kv->key);
    free(kv->value);
}

static void profile_free_one(struct profile *p)
{
    for (size_t i = 0; i < p->n; i++)
        kv_free(&p->kv[i]);
    free(p->kv);
    free(p->name);
}

void profile_set_free(struct profile_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->nprofiles; i++)
        profile_free_one(&set->profiles[i]);
    for (size_t i = 0; i < set->nservices; i++)
        profile_free_one(&set->services[i]);
    free(set->profiles);
    free(set->services);
    memset(set, 0, sizeof *set);
}

static struct profile *find_in(struct profile *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i].name, name) == 0)
            return &arr[i];
    return NULL;
}

/* The section named name in *arr, added when absent.  NULL when out of memory. */
static struct profile *section(struct profile **arr, size_t *n, const char *name)
{
    struct profile *p = find_in(*arr, *n, name), *grown;

    if (p)
        return p;
    grown = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!grown)
        return NULL;
    *arr = grown;
    p = &grown[*n];
    memset(p, 0, sizeof *p);
    if (!(p->name = strdup(name)))
        return NULL;
    (*n)++;
    return p;
}

static struct profile_kv *kv_find(struct profile_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return &kv[i];
    return NULL;
}

/* Sets key = value in (kv, n), replacing an earlier value (and its
 * sub-properties).  The entry, or NULL when out of memory. */
static struct profile_kv *kv_set(struct profile_kv **kv, size_t *n, const char *key,
                                 const char *value)
{
    struct profile_kv *e = kv_find(*kv, *n, key), *grown;
    char *v = strdup(value);

    if (!v)
        return NULL;
    if (e) {
        for (size_t i = 0; i < e->nsub; i++)
            kv_free(&e->sub[i]);
        free(e->sub);
        e->sub = NULL;
        e->nsub = 0;
        free(e->value);
        e->value = v;
        return e;
    }
    grown = realloc(*kv, (*n + 1) * sizeof **kv);
    if (!grown) {
        free(v);
        return NULL;
    }
    *kv = grown;
    e = &grown[*n];
    memset(e, 0, sizeof *e);
    e->value = v;
    if (!(e->key = strdup(key))) {
        free(v);
        return NULL;
    }
    (*n)++;
    return e;
}

/* Copies every key of src into dst (src's win). */
static int merge(struct profile *dst, const struct profile *src)
{
    for (size_t i = 0; i < src->n; i++) {
        struct profile_kv *e = kv_set(&dst->kv, &dst->n, src->kv[i].key, src->kv[i].value);

        if (!e)
            return -ENOMEM;
        for (size_t j = 0; j < src->kv[i].nsub; j++)
            if (!kv_set(&e->sub, &e->nsub, src->kv[i].sub[j].key, src->kv[i].sub[j].value))
                return -ENOMEM;
    }
    return 0;
}

/* ---- parsing ------------------------------------------------------------------ */

static char *trim(char *s)
{
    char *end;

    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

/* Cuts an inline comment: '#' or ';' after whitespace. */
static void cut_comment(char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == '#' || *p == ';') && p > s && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            break;
        }
}

/* "profile  name" → "name"; NULL when s does not start with word + blank. */
static const char *after_word(const char *s, const char *word)
{
    size_t n = strlen(word);

    if (strncmp(s, word, n) != 0 || (s[n] != ' ' && s[n] != '\t'))
        return NULL;
    s += n;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s ? s : NULL;
}

struct parser {
    struct profile_set tmp;     /* this file's sections */
    struct profile bare_default; /* config file [default], used unless [profile default] exists */
    bool profile_default_seen;
    struct profile *cur;        /* section being read, NULL = skipping */
    struct profile_kv *prop;    /* last property of cur */
    bool credentials;
    const char *origin;
};

static int on_section(struct parser *ps, char *line, size_t lineno)
{
    char *close = strchr(line, ']'), *name, *rest;
    const char *n;

    ps->cur = NULL;
    ps->prop = NULL;
    if (!close) {
        log_warn("%s:%zu: section header without ']', section ignored", ps->origin, lineno);
        return 0;
    }
    *close = '\0';
    rest = trim(close + 1);
    if (*rest && *rest != '#' && *rest != ';') {
        log_warn("%s:%zu: text after the section header, section ignored", ps->origin, lineno);
        return 0;
    }
    name = trim(line + 1);
    if (!*name) {
        log_warn("%s:%zu: empty section name, section ignored", ps->origin, lineno);
        return 0;
    }
    if (ps->credentials) {
        if (after_word(name, "profile")) {
            log_warn("%s:%zu: [%s]: the credentials file names profiles without \"profile \", "
                     "section ignored",
                     ps->origin, lineno, name);
            return 0;
        }
        ps->cur = section(&ps->tmp.profiles, &ps->tmp.nprofiles, name);
    } else if (strcmp(name, "default") == 0) {
        ps->cur = &ps->bare_default;
    } else if ((n = after_word(name, "profile"))) {
        if (strcmp(n, "default") == 0)
            ps->profile_default_seen = true;
        ps->cur = section(&ps->tmp.profiles, &ps->tmp.nprofiles, n);
    } else if ((n = after_word(name, "services"))) {
        ps->cur = section(&ps->tmp.services, &ps->tmp.nservices, n);
    } else if (after_word(name, "sso-session")) {
        return 0; /* IAM Identity Center: out of scope */
    } else {
        log_warn("%s:%zu: [%s] is not a profile in the config file (write [profile %s]), "
                 "section ignored",
                 ps->origin, lineno, name, name);
        return 0;
    }
    return ps->cur ? 0 : -ENOMEM;
}

static int on_property(struct parser *ps, char *line, size_t lineno, bool sub)
{
    char *eq = strchr(line, '='), *key, *value;

    if (!eq) {
        log_warn("%s:%zu: expected key = value, line ignored", ps->origin, lineno);
        return 0;
    }
    *eq = '\0';
    key = trim(line);
    value = eq + 1;
    cut_comment(value);
    value = trim(value);
    if (!*key) {
        log_warn("%s:%zu: property without a name, line ignored", ps->origin, lineno);
        return 0;
    }
    if (sub)
        return kv_set(&ps->prop->sub, &ps->prop->nsub, key, value) ? 0 : -ENOMEM;
    ps->prop = kv_set(&ps->cur->kv, &ps->cur->n, key, value);
    return ps->prop ? 0 : -ENOMEM;
}

static int on_continuation(struct parser *ps, char *text, size_t lineno)
{
    char *joined;

    if (!ps->prop) {
        log_warn("%s:%zu: indented line without a property before it, ignored", ps->origin,
                 lineno);
        return 0;
    }
    if (!ps->prop->value[0] || ps->prop->nsub)
        return on_property(ps, text, lineno, true);
    cut_comment(text);
    text = trim(text);
    if (asprintf(&joined, "%s\n%s", ps->prop->value, text) < 0)
        return -ENOMEM;
    free(ps->prop->value);
    ps->prop->value = joined;
    return 0;
}

static int parse_line(struct parser *ps, char *line, size_t lineno)
{
    char *t = trim(line);

    if (!*t || *t == '#' || *t == ';')
        return 0;
    if (line[0] == ' ' || line[0] == '\t') {
        if (!ps->cur)
            return 0;
        return on_continuation(ps, t, lineno);
    }
    if (*t == '[')
        return on_section(ps, t, lineno);
    if (!ps->cur) {
        if (!ps->tmp.nprofiles && !ps->bare_default.n)
            log_warn("%s:%zu: property outside any section, ignored", ps->origin, lineno);
        return 0;
    }
    return on_property(ps, t, lineno, false);
}

int profile_parse(struct profile_set *set, const char *text, size_t len, bool credentials_file,
                  const char *origin)
{
    struct parser ps = { .credentials = credentials_file, .origin = origin ? origin : "profile" };
    size_t lineno = 0;
    int rc = 0;

    ps.bare_default.name = NULL;
    for (size_t at = 0; at < len && rc == 0;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t n = (nl ? (size_t)(nl - text) : len) - at;
        char *line = strndup(text + at, n);

        if (!line)
            return -ENOMEM;
        lineno++;
        rc = parse_line(&ps, line, lineno);
        free(line);
        at += n + 1;
    }
    if (rc == 0 && ps.bare_default.n && !ps.profile_default_seen) {
        /* "profile default always supersedes default" */
        struct profile *d = section(&ps.tmp.profiles, &ps.tmp.nprofiles, "default");

        rc = d ? merge(d, &ps.bare_default) : -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < ps.tmp.nprofiles; i++) {
        struct profile *d = section(&set->profiles, &set->nprofiles, ps.tmp.profiles[i].name);

        rc = d ? merge(d, &ps.tmp.profiles[i]) : -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < ps.tmp.nservices; i++) {
        struct profile *d = section(&set->services, &set->nservices, ps.tmp.services[i].name);

        rc = d ? merge(d, &ps.tmp.services[i]) : -ENOMEM;
    }
    profile_free_one(&ps.bare_default);
    profile_set_free(&ps.tmp);
    return rc;
}

/* ---- files ---------------------------------------------------------------------- */

static const char *env_get(profile_getenv_fn *env, const char *name)
{
    const char *v = env ? env(name) : NULL;

    return v && *v ? v : NULL;
}

static char *expand_home(const char *path, profile_getenv_fn *env)
{
    const char *home;
    char *out;

    if (path[0] != '~' || (path[1] && path[1] != '/'))
        return strdup(path);
    home = env_get(env, "HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());

        home = pw ? pw->pw_dir : NULL;
    }
    if (!home)
        return NULL;
    return asprintf(&out, "%s%s", home, path + 1) < 0 ? NULL : out;
}

/* 0 and the text, -ENOENT when absent, or another -errno. */
static int read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    struct stat st;
    char *buf = NULL;
    size_t got = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES) {
        rc = S_ISDIR(st.st_mode) ? -EISDIR : -EFBIG;
        goto out;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
out:
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *text = buf;
    *len = got;
    return 0;
}

int profile_load(struct profile_set *set, profile_getenv_fn *env, char *why, size_t whylen)
{
    static const struct {
        const char *var, *def;
        bool credentials;
    } files[] = { { "AWS_CONFIG_FILE", "~/.aws/config", false },
                  { "AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", true } };

    for (size_t i = 0; i < 2; i++) {
        const char *given = env_get(env, files[i].var);
        char *path = expand_home(given ? given : files[i].def, env), *text = NULL;
        size_t len = 0;
        int rc;

        if (!path) {
            if (given)
                return -ENOMEM;
            continue; /* no home directory: no default files */
        }
        rc = read_file(path, &text, &len);
        if (rc == -ENOENT || rc == -ENOTDIR) {
            free(path);
            continue;
        }
        if (rc < 0) {
            snprintf(why, whylen, "%s%s%s: %s", given ? files[i].var : "", given ? " " : "", path,
                     strerror(-rc));
            free(path);
            return rc == -ENOMEM ? rc : -EIO;
        }
        rc = profile_parse(set, text, len, files[i].credentials, path);
        free(text);
        free(path);
        if (rc < 0)
            return rc;
    }
    return 0;
}

const struct profile *profile_find(const struct profile_set *set, const char *name)
{
    return set && name ? find_in(set->profiles, set->nprofiles, name) : NULL;
}

const char *profile_get(const struct profile *p, const char *key)
{
    const struct profile_kv *e = p ? kv_find(p->kv, p->n, key) : NULL;

    return e ? e->value : NULL;
}

const char *profile_endpoint(const struct profile_set *set, const struct profile *p,
                             const char *service_key)
{
    const char *svc = profile_get(p, "services"), *v;
    const struct profile *s = svc && *svc ? find_in(set->services, set->nservices, svc) : NULL;
    const struct profile_kv *e = s ? kv_find(s->kv, s->n, service_key) : NULL;
    const struct profile_kv *u = e ? kv_find(e->sub, e->nsub, "endpoint_url") : NULL;

    if (u && *u->value)
        return u->value;
    v = profile_get(p, "endpoint_url");
    return v && *v ? v : NULL;
}

const char *profile_selected(const char *explicit_name, profile_getenv_fn *env)
{
    const char *v = explicit_name && *explicit_name ? explicit_name : env_get(env, "AWS_PROFILE");
    const char *legacy = env_get(env, "AWS_DEFAULT_PROFILE");
    static bool warned;

    /* botocore still reads the legacy name (and prefers it); the other SDKs
     * and ddb2es read AWS_PROFILE only: say so when the two disagree. */
    if (legacy && *legacy && strcmp(legacy, v ? v : "default") != 0 && !warned) {
        warned = true;
        log_warn("AWS_DEFAULT_PROFILE=%s is ignored; the profile is \"%s\" (from %s)", legacy,
                 v ? v : "default",
                 explicit_name && *explicit_name ? "[aws] profile"
                 : v                             ? "AWS_PROFILE"
                                                 : "the default");
    }
    return v ? v : "default";
}

/* ---- the planner ------------------------------------------------------------------ */

const char *plan_kind_name(enum plan_kind k)
{
    static const char *const names[] = { [PLAN_STATIC] = "static keys",
                                         [PLAN_SOURCE] = "credential_source",
                                         [PLAN_WEBID] = "web identity",
                                         [PLAN_PROCESS] = "credential_process",
                                         [PLAN_ASSUME] = "assume role" };

    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static const char *val(const struct profile *p, const char *key)
{
    const char *v = profile_get(p, key);

    return v && *v ? v : NULL;
}

static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

static int static_keys(const struct profile *p, struct plan_step *s, char *why, size_t whylen)
{
    const char *id = val(p, "aws_access_key_id"), *secret = val(p, "aws_secret_access_key");

    if (!id && !secret)
        return fail(why, whylen, -EINVAL,
                    "profile %s: no credentials (expected aws_access_key_id and "
                    "aws_secret_access_key, role_arn, web_identity_token_file or "
                    "credential_process)",
                    p->name);
    if (!id || !secret)
        return fail(why, whylen, -EINVAL, "profile %s: %s is set but %s is missing", p->name,
                    id ? "aws_access_key_id" : "aws_secret_access_key",
                    id ? "aws_secret_access_key" : "aws_access_key_id");
    *s = (struct plan_step){ .kind = PLAN_STATIC, .profile = p->name, .access_key_id = id,
                             .secret_access_key = secret };
    s->session_token = val(p, "aws_session_token");
    if (!s->session_token)
        s->session_token = val(p, "aws_security_token");
    return 0;
}

static int named_source(const struct profile *p, const char *src, struct plan_step *s, char *why,
                        size_t whylen)
{
    static const char *const known[] = { "Environment", "Ec2InstanceMetadata", "EcsContainer" };

    for (size_t i = 0; i < 3; i++)
        if (strcasecmp(src, known[i]) == 0) {
            *s = (struct plan_step){ .kind = PLAN_SOURCE, .profile = p->name, .source = known[i] };
            return 0;
        }
    return fail(why, whylen, -EINVAL,
                "profile %s: credential_source \"%s\" is not Environment, Ec2InstanceMetadata or "
                "EcsContainer",
                p->name, src);
}

/* A profile that gives its key without another profile (smithy-rs base_provider). */
static int base_step(const struct profile *p, struct plan_step *s, char *why, size_t whylen)
{
    const char *v;

    if ((v = val(p, "credential_source")))
        return named_source(p, v, s, why, whylen);
    if ((v = val(p, "web_identity_token_file"))) {
        if (!val(p, "role_arn"))
            return fail(why, whylen, -EINVAL,
                        "profile %s: web_identity_token_file needs role_arn (`role_arn` was "
                        "missing)",
                        p->name);
        *s = (struct plan_step){ .kind = PLAN_WEBID, .profile = p->name, .token_file = v,
                                 .role_arn = val(p, "role_arn"),
                                 .session_name = val(p, "role_session_name") };
        return 0;
    }
    if ((v = val(p, "credential_process"))) {
        *s = (struct plan_step){ .kind = PLAN_PROCESS, .profile = p->name, .command = v };
        return 0;
    }
    return static_keys(p, s, why, whylen);
}

static bool has_any_credentials(const struct profile *p)
{
    static const char *const keys[] = { "aws_access_key_id", "aws_secret_access_key",
                                        "role_arn", "web_identity_token_file",
                                        "credential_process", "credential_source",
                                        "source_profile" };

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (val(p, keys[i]))
            return true;
    return false;
}

static int assume_step(const struct profile *p, struct plan_step *s, char *why, size_t whylen)
{
    const char *d = val(p, "duration_seconds");

    if (val(p, "mfa_serial"))
        return fail(why, whylen, -EINVAL,
                    "profile %s: mfa_serial needs an MFA code typed in at each renewal, which a "
                    "daemon cannot do; use a role without MFA, or credential_process",
                    p->name);
    *s = (struct plan_step){ .kind = PLAN_ASSUME, .profile = p->name,
                             .role_arn = val(p, "role_arn"),
                             .session_name = val(p, "role_session_name"),
                             .external_id = val(p, "external_id") };
    if (d) {
        char *end;
        long n = strtol(d, &end, 10);

        if (*end || n < 900 || n > 43200)
            return fail(why, whylen, -EINVAL,
                        "profile %s: duration_seconds must be 900..43200, got \"%s\"", p->name, d);
        s->duration_seconds = n;
    }
    return 0;
}

int profile_plan(const struct profile_set *set, const char *name, struct plan *out, char *why,
                 size_t whylen)
{
    const char *visited[PLAN_MAX];
    struct plan_step chain[PLAN_MAX], base;
    size_t nvisited = 0, nchain = 0;
    const char *from = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    for (;;) {
        const struct profile *p = profile_find(set, name);
        const char *role, *sp, *cs;

        if (!p) {
            if (!from)
                return fail(why, whylen, -ENOENT,
                            "profile %s is in neither the config nor the credentials file", name);
            return fail(why, whylen, -EINVAL,
                        "profile %s: source_profile %s is in neither the config nor the "
                        "credentials file",
                        from, name);
        }
        for (size_t i = 0; i < nvisited; i++)
            if (strcmp(visited[i], name) == 0)
                return fail(why, whylen, -EINVAL,
                            "profile %s: source_profile %s forms a loop (an infinite loop of "
                            "profiles)",
                            from, name);
        if (nvisited == PLAN_MAX - 1)
            return fail(why, whylen, -EINVAL, "profile %s: source_profile chain is too long", name);
        visited[nvisited++] = p->name;
        /* Past the first profile, a source profile's own keys win over its role. */
        if (from && val(p, "aws_access_key_id") && val(p, "aws_secret_access_key")) {
            rc = static_keys(p, &base, why, whylen);
            break;
        }
        if (!from && !has_any_credentials(p)) {
            if (val(p, "sso_session") || val(p, "sso_start_url"))
                return fail(why, whylen, -EINVAL,
                            "profile %s: IAM Identity Center (SSO) profiles are not supported; "
                            "use credential_process = aws configure export-credentials "
                            "--profile %s --format process",
                            p->name, p->name);
            return fail(why, whylen, -ENOKEY, "profile %s holds no credentials", p->name);
        }
        role = val(p, "role_arn");
        if (!role || val(p, "web_identity_token_file")) {
            rc = base_step(p, &base, why, whylen);
            break;
        }
        sp = val(p, "source_profile");
        cs = val(p, "credential_source");
        if (sp && cs)
            return fail(why, whylen, -EINVAL,
                        "profile %s: both source_profile and credential_source are set (profile "
                        "contained both source_profile and credential_source); keep one",
                        p->name);
        if (!sp && !cs)
            return fail(why, whylen, -EINVAL,
                        "profile %s: role_arn needs source_profile or credential_source (profile "
                        "must contain `source_profile` or `credential_source`)",
                        p->name);
        if ((rc = assume_step(p, &chain[nchain++], why, whylen)) < 0)
            return rc;
        if (cs) {
            rc = named_source(p, cs, &base, why, whylen);
            break;
        }
        if (strcmp(sp, p->name) == 0) { /* self reference: its own keys, then its role */
            rc = static_keys(p, &base, why, whylen);
            break;
        }
        from = p->name;
        name = sp;
    }
    if (rc < 0)
        return rc;
    out->steps[out->n++] = base;
    while (nchain)
        out->steps[out->n++] = chain[--nchain];
    return 0;
}
