/* config rules — defaults that depend on other keys, rules across keys, and
 * transport security (the sink host -> region rule among them). */
#include "config/config_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/url.h"

/* ---- defaults that depend on other keys, and rules across keys ---- */

static struct origin gorig(struct loader *L, const char *section, const char *key)
{
    const struct option *o = config_find_opt(config_global_opts, NGLOBAL, section, key);

    return L->orig[o - config_global_opts];
}

static struct origin torig(struct loader *L, size_t t, const char *key)
{
    const struct option *o = config_find_opt(config_table_opts, NTABLE, "table", key);

    return L->tinfo[t].orig[o - config_table_opts];
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

/* [leases]: on when its section header or any of its keys was given (the
 * file or DDB2ES_LEASES_*); then the table must be named, and the worker
 * id defaults to hostname:pid. */
static void finish_leases(struct loader *L)
{
    struct config *c = L->cfg;
    size_t sec = 0;
    char host[256];

    while (strcmp(config_sections[sec], "leases") != 0)
        sec++;
    c->leases.enabled = L->sec_line[sec] != 0;
    for (size_t i = 0; i < NGLOBAL; i++)
        if (strcmp(config_global_opts[i].section, "leases") == 0 &&
            (L->orig[i].line || L->orig[i].env))
            c->leases.enabled = true;
    if (!c->leases.enabled)
        return;
    if (!c->leases.table) {
        config_fail(L, gorig(L, "leases", "table"), "leases", "table", "must not be empty");
        return;
    }
    if (c->leases.worker_id)
        return;
    if (gethostname(host, sizeof(host)) != 0 || !host[0])
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    if (asprintf(&c->leases.worker_id, "%.200s:%ld", host, (long)getpid()) < 0) {
        c->leases.worker_id = NULL;
        config_oom(L);
    }
}

void config_finish(struct loader *L)
{
    struct config *c = L->cfg;
    char host[256], buf[64], why[200];
    bool https;

    if (!c->sink.url) {
        config_fail(L, at_line(0), "sink", "url",
                    "required (set it in the file or as DDB2ES_SINK_URL)");
        return;
    }
    if (c->ntables == 0) {
        config_fail(L, at_line(0), NULL, NULL,
                    "no table configured (add a [table NAME] section or set DDB2ES_TABLES)");
        return;
    }
    if (url_host(c->sink.url, host, sizeof(host), &https) < 0)
        host[0] = '\0'; /* not http(s): refused when the value was read */
    if (!c->sink.sigv4_service &&
        !(c->sink.sigv4_service =
              strdup(ends_with(host, ".aoss.amazonaws.com") ? "aoss" : "es"))) {
        config_oom(L);
        return;
    }
    if (!c->daemon.state_dir) {
        config_fail(L, gorig(L, "daemon", "state_dir"), "daemon", "state_dir", "must not be empty");
        return;
    }
    if (!c->sink.dlq_path && asprintf(&c->sink.dlq_path, "%s%sdlq.ndjson", c->daemon.state_dir,
                                      ends_with(c->daemon.state_dir, "/") ? "" : "/") < 0) {
        c->sink.dlq_path = NULL;
        config_oom(L);
        return;
    }
    switch (c->sink.auth) {
    case CONFIG_AUTH_BASIC:
        if (!c->sink.username || !c->sink.password_file)
            config_fail(L, gorig(L, "sink", "auth"), "sink", "auth",
                        "basic needs username and password_file");
        break;
    case CONFIG_AUTH_APIKEY:
        if (!c->sink.api_key_file)
            config_fail(L, gorig(L, "sink", "auth"), "sink", "auth", "apikey needs api_key_file");
        break;
    default:
        break;
    }
    if (c->aws.endpoint && (c->aws.use_fips_endpoint || c->aws.use_dualstack_endpoint)) {
        const char *k = c->aws.use_fips_endpoint ? "use_fips_endpoint" : "use_dualstack_endpoint";
        config_fail(L, gorig(L, "aws", k), "aws", k, "can't be used with endpoint");
    }
    if (c->aws.region && c->aws.allowed_regions.count &&
        !config_list_has(&c->aws.allowed_regions, c->aws.region))
        config_fail(L, gorig(L, "aws", "region"), "aws", "region",
                    "\"%s\" is not in allowed_regions", c->aws.region);
    if (c->daemon.max_queue_bytes < c->sink.bulk_max_bytes) {
        config_fmt_size(c->sink.bulk_max_bytes, buf, sizeof(buf));
        config_fail(L, gorig(L, "daemon", "max_queue_bytes"), "daemon", "max_queue_bytes",
                    "must be at least [sink] bulk_max_bytes (%s)", buf);
    }
    for (size_t i = 0; i < c->ntables && !L->rc; i++) {
        struct config_table *t = &c->tables[i];
        char lab[300];

        snprintf(lab, sizeof(lab), "table %s", t->name);
        if (!t->index) {
            if (!(t->index = strdup(t->name))) {
                config_oom(L);
                break;
            }
            for (char *p = t->index; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            if (config_check_index(t->index, why, sizeof(why)) < 0)
                config_fail(L, at_line(L->tinfo[i].line), lab, "index",
                            "the default \"%s\" %s: set index", t->index, why);
        }
        if (t->include.count && t->exclude.count) {
            struct origin a = torig(L, i, "include"), b = torig(L, i, "exclude");
            bool excl_last = b.env || (!a.env && b.line > a.line);
            config_fail(L, excl_last ? b : a, lab, excl_last ? "exclude" : "include",
                        "include and exclude can't both be set");
        }
        if (t->hmac.count && !t->hmac_key_file)
            config_fail(L, torig(L, i, "hmac"), lab, "hmac", "needs hmac_key_file");
    }
    if (!L->rc)
        finish_leases(L);
}

/* ---- transport security ---- */

bool config_sink_region(const char *url, char *out, size_t len)
{
    static const char *const suffixes[] = { ".es.amazonaws.com", ".aoss.amazonaws.com",
                                            ".es.amazonaws.com.cn", ".aoss.amazonaws.com.cn" };
    char host[256];
    bool https;

    if (url_host(url, host, sizeof(host), &https) < 0)
        return false;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t h = strlen(host), n = strlen(suffixes[i]);
        const char *dot;

        if (h <= n || strcasecmp(host + h - n, suffixes[i]) != 0)
            continue;
        host[h - n] = '\0';
        dot = strrchr(host, '.');
        if (!dot || !dot[1] || strlen(dot + 1) >= len)
            return false;
        snprintf(out, len, "%s", dot + 1);
        return true;
    }
    return false;
}

/* [sink] ca_file as curl will load it: its OpenSSL backend hands the file to
 * X509_load_cert_crl_file, which reads it with PEM_X509_INFO_read_bio and
 * fails on a block it cannot parse or when nothing is found. */
static int check_ca_file(const struct config *cfg, char *err, size_t errlen)
{
    const char *path = cfg->sink.ca_file;
    STACK_OF(X509_INFO) *infos = NULL;
    struct stat st;
    FILE *f = NULL;
    BIO *bio = NULL;
    int certs = 0;

    if (stat(path, &st) != 0 || (S_ISREG(st.st_mode) && !(f = fopen(path, "re"))))
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen, "cannot read \"%s\": %s",
                             path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "cannot read \"%s\": not a regular file", path);
    if ((bio = BIO_new_fp(f, BIO_NOCLOSE)))
        infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
    for (int i = 0; i < sk_X509_INFO_num(infos); i++)
        certs += sk_X509_INFO_value(infos, i)->x509 != NULL;
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    fclose(f);
    ERR_clear_error();
    if (!bio) {
        snprintf(err, errlen, "out of memory");
        return CONFIG_EX_OSERR;
    }
    if (!infos)
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "\"%s\" holds a PEM block that cannot be parsed", path);
    if (certs == 0)
        return config_refuse(cfg, NULL, "sink", "ca_file", err, errlen,
                             "\"%s\" holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                             path);
    return 0;
}

int config_check_transport(const struct config *cfg, char *err, size_t errlen)
{
    char host[256], region[64];
    bool https;
    int rc;

    if (cfg->sink.auth != CONFIG_AUTH_NONE && cfg->sink.url &&
        !url_safe_for_secrets(cfg->sink.url)) {
        if (url_host(cfg->sink.url, host, sizeof(host), &https) < 0)
            snprintf(host, sizeof(host), "?");
        return config_refuse(cfg, NULL, "sink", "url", err, errlen,
                             "auth = %s would send credentials unencrypted to %s over http://; "
                             "use https:// (plain http is allowed to loopback hosts only)",
                             config_auth_names[cfg->sink.auth], host);
    }
    if (cfg->aws.endpoint && !url_safe_for_secrets(cfg->aws.endpoint)) {
        if (url_host(cfg->aws.endpoint, host, sizeof(host), &https) < 0)
            snprintf(host, sizeof(host), "?");
        return config_refuse(cfg, NULL, "aws", "endpoint", err, errlen,
                             "signed AWS requests would go unencrypted to %s over http://; "
                             "use https:// (plain http is allowed to loopback hosts only)",
                             host);
    }
    if (cfg->sink.ca_file && (rc = check_ca_file(cfg, err, errlen)) != 0)
        return rc;
    if (cfg->aws.allowed_regions.count && cfg->sink.url &&
        config_sink_region(cfg->sink.url, region, sizeof(region)) &&
        !config_list_has(&cfg->aws.allowed_regions, region))
        return config_refuse(cfg, NULL, "sink", "url", err, errlen,
                             "the domain's region \"%s\" is not in [aws] allowed_regions",
                             region);
    return 0;
}
