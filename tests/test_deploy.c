/* deploy: the Grafana dashboard (deploy/grafana-dashboard.json) and the
 * Prometheus alerting rules (deploy/prometheus-rules.yaml) that ship with
 * the daemon.
 *
 *   - their shape: what Grafana's import and Prometheus's rule loader need,
 *     and what README "Dashboard and alerts" promises (a datasource input, a
 *     table variable, a severity and a README pointer on every alert);
 *   - the rules through promtool (Debian's, fetched by scripts/setup.sh):
 *     `check rules`, then `test rules` on the cases of
 *     tests/data/alert-scenarios.json;
 *   - every series an expression reads is on a live /metrics of `ddb2es
 *     run`, with the label names the expression relies on.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/httpget.h"
#include "tests/support/proc.h"
#include "tests/support/promparse.h"
#include "tests/support/promql.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/yamljson.h"

TestSuite(deploy, .timeout = 30);
TestSuite(deploy_e2e, .timeout = 90);

#define DASHBOARD "deploy/grafana-dashboard.json"
#define RULES "deploy/prometheus-rules.yaml"
#define SCENARIOS "tests/data/alert-scenarios.json"

/* Labels Prometheus attaches to every series it scrapes, and the series it
 * makes itself for each target (prometheus.io/docs/concepts/jobs_instances/:
 * "job", "instance", and up{job, instance}). */
static const char *const target_labels[] = { "job", "instance" };
static const char *const synthetic_series[] = { "up" };

/* ---- the expressions ----------------------------------------------------- */

struct exprs {
    char *what[128]; /* where it is, for messages */
    char *expr[128];
    size_t n;
};

static void exprs_add(struct exprs *e, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void exprs_add(struct exprs *e, const char *expr, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    cr_assert_lt(e->n, sizeof(e->expr) / sizeof(e->expr[0]), "too many expressions");
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    e->what[e->n] = strdup(what);
    e->expr[e->n++] = strdup(expr);
}

static void exprs_free(struct exprs *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->what[i]), free(e->expr[i]);
    e->n = 0;
}

static json_t *load_dashboard(void)
{
    json_error_t jerr;
    json_t *d = json_load_file(DASHBOARD, 0, &jerr);

    cr_assert_not_null(d, DASHBOARD ":%d: %s", jerr.line, jerr.text);
    return d;
}

static json_t *load_rules(void)
{
    char err[512];
    json_t *r = yamljson_load(RULES, err, sizeof(err));

    cr_assert_not_null(r, "%s", err);
    return r;
}

/* Every panel, rows' nested panels included, in order. */
static size_t panels_of(json_t *d, json_t **out, size_t max)
{
    size_t n = 0, i, j;
    json_t *p, *q;

    json_array_foreach(json_object_get(d, "panels"), i, p) {
        if (n < max)
            out[n++] = p;
        json_array_foreach(json_object_get(p, "panels"), j, q)
            if (n < max)
                out[n++] = q;
    }
    return n;
}

static json_t *variable(json_t *d, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(json_object_get(json_object_get(d, "templating"), "list"), i, v)
        if (json_is_string(json_object_get(v, "name")) &&
            strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return v;
    return NULL;
}

/* The table variable's query: label_values(METRIC, LABEL), as Grafana's
 * Prometheus data source spells it (grafana.com/docs/grafana/latest/
 * datasources/prometheus/template-variables/). */
static void table_query(json_t *d, char *metric, size_t mlen, char *label, size_t llen)
{
    json_t *q = json_object_get(variable(d, "table"), "query");
    const char *text = json_is_object(q) ? json_string_value(json_object_get(q, "query"))
                                         : json_string_value(q);
    char m[128], l[64];

    cr_assert_not_null(text, "the table variable has a query");
    cr_assert_eq(sscanf(text, "label_values(%127[a-zA-Z0-9_:], %63[a-zA-Z0-9_])", m, l), 2,
                 "the table variable's query is label_values(METRIC, LABEL): %s", text);
    snprintf(metric, mlen, "%s", m);
    snprintf(label, llen, "%s", l);
}

static void dashboard_exprs(json_t *d, struct exprs *e)
{
    json_t *panels[128], *t;
    size_t n = panels_of(d, panels, 128), i;

    for (size_t k = 0; k < n; k++)
        json_array_foreach(json_object_get(panels[k], "targets"), i, t)
            if (json_is_string(json_object_get(t, "expr")))
                exprs_add(e, json_string_value(json_object_get(t, "expr")),
                          "dashboard panel \"%s\" target %s",
                          json_string_value(json_object_get(panels[k], "title")),
                          json_string_value(json_object_get(t, "refId")));
}

static void rules_exprs(json_t *r, struct exprs *e)
{
    size_t i, j;
    json_t *g, *rule;

    json_array_foreach(json_object_get(r, "groups"), i, g)
        json_array_foreach(json_object_get(g, "rules"), j, rule)
            if (json_is_string(json_object_get(rule, "expr")))
                exprs_add(e, json_string_value(json_object_get(rule, "expr")), "alert %s",
                          json_string_value(json_object_get(rule, "alert")));
}

/* ---- held against a scrape ------------------------------------------------ */

static bool in_names(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return true;
    return false;
}

#define IN_NAMES(list, s) in_names(list, sizeof(list) / sizeof(list[0]), s)

/* Whether a sample's canonical label text (k="v",k2="v2") has this name. */
static bool has_label(const char *labels, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = labels; *p;) {
        const char *eq = strchr(p, '=');

        if (!eq)
            return false;
        if ((size_t)(eq - p) == n && strncmp(p, name, n) == 0)
            return true;
        for (p = eq + 2; *p && *p != '"'; p += (*p == '\\' && p[1]) ? 2 : 1)
            ;
        p += *p == '"';
        p += *p == ',';
    }
    return false;
}

/* Whether a sample carries this label.  promparse keeps le apart from the
 * other labels; it is on every bucket of a histogram (a bucket without one
 * is refused), and on nothing else. */
static bool sample_has(const struct prom *p, const struct prom_sample *s, const char *label)
{
    const struct prom_family *f = prom_family(p, s->family);
    size_t n = strlen(s->name);

    if (strcmp(label, "le") == 0)
        return f && strcmp(f->type, "histogram") == 0 && n > 7 &&
               strcmp(s->name + n - 7, "_bucket") == 0;
    return has_label(s->labels, label);
}

/* Whether one sample named r->name carries every label r relies on (the
 * target's own labels aside). */
static bool on_scrape(const struct prom *p, const struct promql_ref *r)
{
    if (IN_NAMES(synthetic_series, r->name)) {
        for (size_t l = 0; l < r->nlabels; l++)
            if (!IN_NAMES(target_labels, r->labels[l]))
                return false;
        return true;
    }
    for (size_t i = 0; i < p->nsamples; i++) {
        bool all = strcmp(p->samples[i].name, r->name) == 0;

        for (size_t l = 0; all && l < r->nlabels; l++)
            all = IN_NAMES(target_labels, r->labels[l]) ||
                  sample_has(p, &p->samples[i], r->labels[l]);
        if (all)
            return true;
    }
    return false;
}

/* Appends to problems, a line each, what expr reads that the scrape lacks;
 * names in later (NULL-ended) may be missing. */
static void check_expr(const struct prom *p, const char *what, const char *expr,
                       const char *const *later, struct buf *problems)
{
    struct promql_refs refs;
    char err[256];

    if (promql_scan(expr, &refs, err, sizeof(err)) < 0) {
        buf_printf(problems, "%s: %s in %s\n", what, err, expr);
        promql_free(&refs);
        return;
    }
    for (size_t i = 0; i < refs.nrefs; i++) {
        const struct promql_ref *r = &refs.refs[i];
        bool later_ok = false;

        for (size_t k = 0; later && later[k]; k++)
            later_ok = later_ok || strcmp(later[k], r->name) == 0;
        if (later_ok || on_scrape(p, r))
            continue;
        if (!prom_count(p, r->name) && !IN_NAMES(synthetic_series, r->name)) {
            buf_printf(problems, "%s: %s is not on /metrics\n", what, r->name);
            continue;
        }
        buf_printf(problems, "%s: no sample of %s has the labels", what, r->name);
        for (size_t l = 0; l < r->nlabels; l++)
            buf_printf(problems, " %s", r->labels[l]);
        buf_puts(problems, "\n");
    }
    promql_free(&refs);
}

/* ---- the checker itself --------------------------------------------------- */

Test(deploy, promql_scan_finds_series_and_the_labels_they_must_carry)
{
    struct promql_refs r;
    char err[256];

    cr_assert_eq(promql_scan("histogram_quantile(0.9, sum by (le) (rate(x_bucket{job=\"a\", "
                             "table=~\"$table\"}[$__rate_interval]))) > bool 2 # note\n"
                             "or on (instance) y offset 1h unless count(z) without (table)",
                             &r, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(r.nrefs, 3);
    cr_assert_str_eq(r.refs[0].name, "x_bucket");
    cr_assert_eq(r.refs[0].nlabels, 4, "job, table, le, instance");
    cr_assert_str_eq(r.refs[0].labels[0], "job");
    cr_assert_str_eq(r.refs[0].labels[1], "table");
    cr_assert_str_eq(r.refs[0].labels[2], "le");
    cr_assert_str_eq(r.refs[0].labels[3], "instance", "on (...) applies everywhere");
    cr_assert_str_eq(r.refs[1].name, "y");
    cr_assert_eq(r.refs[1].nlabels, 1, "by (le) is not y's");
    cr_assert_str_eq(r.refs[2].name, "z");
    cr_assert_eq(r.refs[2].nlabels, 2, "table (without), instance");
    cr_assert_eq(r.nvars, 2);
    cr_assert_str_eq(r.vars[0], "table");
    cr_assert_str_eq(r.vars[1], "__rate_interval");
    promql_free(&r);

    cr_assert_eq(promql_scan("sum(rate(a[5m])) by (table, type) / ignoring(reason) b", &r, err,
                             sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(r.nrefs, 2);
    cr_assert_eq(r.refs[0].nlabels, 3, "by after the argument, and ignoring");
    cr_assert_eq(r.refs[1].nlabels, 1, "only ignoring's reason");
    promql_free(&r);

    static const char *const bad[][2] = {
        { "rat(a[5m])", "unknown function rat" },
        { "sum(a", "never closed" },
        { "a{b=\"c}", "unterminated string" },
        { "{__name__=\"a\"}", "without a metric name" },
        { "sum by table (a)", "without a label list" },
        { "a{b}", "a matcher" },
        { "a ; b", "unexpected character" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(promql_scan(bad[i][0], &r, err, sizeof(err)), -1, "%s", bad[i][0]);
        cr_assert_not_null(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
        promql_free(&r);
    }
}

Test(deploy, check_expr_names_series_and_labels_a_scrape_lacks)
{
    static const char text[] = "# HELP m_total x\n# TYPE m_total counter\n"
                               "m_total{table=\"t\"} 1\n"
                               "# HELP g x\n# TYPE g gauge\ng 1\n"
                               "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n"
                               "h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n";
    static const char *const later[] = { "late_total", NULL };
    struct prom p;
    struct buf problems;
    char err[256];

    cr_assert_eq(prom_parse(text, &p, err, sizeof(err)), 0, "%s", err);
    buf_init(&problems, BUF_NOMAX);
    check_expr(&p, "ok", "sum by (job, table) (rate(m_total{table=~\"$table\"}[5m])) + "
                         "on (instance) group_left g + late_total + up{job=\"d\"} + "
                         "histogram_quantile(0.5, sum by (le) (rate(h_bucket[5m]))) + "
                         "h_sum / h_count",
               later, &problems);
    cr_assert_eq(problems.len, 0, "%.*s", (int)problems.len, problems.ptr ? problems.ptr : "");
    check_expr(&p, "renamed", "rate(m_totl[5m])", later, &problems);
    check_expr(&p, "label", "sum by (type) (m_total)", later, &problems);
    check_expr(&p, "unknown", "nope(m_total)", later, &problems);
    check_expr(&p, "le", "sum by (le) (h_count)", later, &problems);
    buf_putc(&problems, '\0');
    cr_assert_not_null(strstr(problems.ptr, "renamed: m_totl is not on /metrics\n"), "%s",
                       problems.ptr);
    cr_assert_not_null(strstr(problems.ptr, "label: no sample of m_total has the labels type\n"),
                       "%s", problems.ptr);
    cr_assert_not_null(strstr(problems.ptr, "unknown: at byte 0: unknown function nope"), "%s",
                       problems.ptr);
    cr_assert_not_null(strstr(problems.ptr, "le: no sample of h_count has the labels le\n"), "%s",
                       problems.ptr);
    buf_close(&problems);
    prom_free(&p);
}

/* A YAML text through yamljson_load; NULL with err when refused. */
static json_t *yaml_text(const char *text, char *err, size_t errlen)
{
    const char *tmp = getenv("TMPDIR");
    char path[PATH_MAX];
    FILE *f;
    json_t *v;

    snprintf(path, sizeof(path), "%s/yamljson-%d.yaml", tmp ? tmp : "/tmp", (int)getpid());
    cr_assert_not_null(f = fopen(path, "w"));
    fputs(text, f);
    fclose(f);
    v = yamljson_load(path, err, errlen);
    unlink(path);
    return v;
}

/* A second key or document would be read by one YAML reader and not by
 * another: the rules file must not rely on either. */
Test(deploy, yamljson_keeps_scalars_as_written_and_refuses_ambiguity)
{
    char err[512];
    json_t *v = yaml_text("a:\n  - for: 5m\n    n: 1\n    t: true\n    e: |\n      x >\n      1\n",
                          err, sizeof(err));

    cr_assert_not_null(v, "%s", err);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(v, "a"), 0),
                                                       "for")),
                     "5m");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(v, "a"), 0),
                                                       "t")),
                     "true", "no type guessing");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(v, "a"), 0),
                                                       "e")),
                     "x >\n1\n");
    json_decref(v);
    cr_assert_null(yaml_text("a: 1\nb: 2\na: 3\n", err, sizeof(err)));
    cr_assert_not_null(strstr(err, "key \"a\" twice"), "%s", err);
    cr_assert_null(yaml_text("a: 1\n---\nb: 2\n", err, sizeof(err)));
    cr_assert_not_null(strstr(err, "more than one document"), "%s", err);
    cr_assert_null(yaml_text("a: [1\n", err, sizeof(err)));
    cr_assert_not_null(strstr(err, "line "), "%s", err);
}

/* ---- the dashboard's shape -------------------------------------------------- */

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

static bool required(json_t *d, const char *type, const char *id)
{
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(d, "__requires"), i, r)
        if (strcmp(str(r, "type"), type) == 0 && strcmp(str(r, "id"), id) == 0)
            return true;
    return false;
}

/* What Grafana's import needs (grafana.com/docs/grafana/latest/dashboards/
 * share-dashboards-panels/#export-a-dashboard-as-json: __inputs for the data
 * source, __requires for the plugins) and what the README promises. */
Test(deploy, dashboard_imports_into_grafana)
{
    static const char *const panel_types[] = { "row", "timeseries", "stat", "heatmap" };
    /* Each topic of README "Dashboard and alerts" has a panel. */
    static const char *const shown[] = {
        "ddb2es_iterator_age_seconds", "ddb2es_records_read_total", "ddb2es_docs_indexed_total",
        "ddb2es_bulk_seconds_bucket", "ddb2es_bulk_item_failures_total", "ddb2es_dlq_total",
        "ddb2es_records_lost_events_total", "ddb2es_shards", "ddb2es_credential_renewals_total",
    };
    json_t *d = load_dashboard(), *panels[128], *in, *ds, *tv, *t;
    size_t n = panels_of(d, panels, 128), i;
    struct exprs e = { 0 };
    char metric[128], label[64];
    bool found = false;

    cr_assert(json_is_integer(json_object_get(d, "schemaVersion")));
    cr_assert(json_integer_value(json_object_get(d, "schemaVersion")) >= 36 &&
              json_integer_value(json_object_get(d, "schemaVersion")) <= 41);
    cr_assert(*str(d, "title") && *str(d, "uid") && strlen(str(d, "uid")) <= 40);
    cr_assert(json_is_null(json_object_get(d, "id")), "no id: Grafana gives one at import");
    json_array_foreach(json_object_get(d, "__inputs"), i, in)
        found = found || (strcmp(str(in, "name"), "DS_PROMETHEUS") == 0 &&
                          strcmp(str(in, "type"), "datasource") == 0 &&
                          strcmp(str(in, "pluginId"), "prometheus") == 0);
    cr_assert(found, "a DS_PROMETHEUS data source input");
    cr_assert(required(d, "datasource", "prometheus"));

    ds = variable(d, "datasource");
    cr_assert_not_null(ds, "a data source variable");
    cr_assert_str_eq(str(ds, "type"), "datasource");
    cr_assert_str_eq(str(ds, "query"), "prometheus");
    cr_assert_str_eq(str(json_object_get(ds, "current"), "value"), "${DS_PROMETHEUS}",
                     "the import's choice is the variable's default");
    tv = variable(d, "table");
    cr_assert_not_null(tv, "a table variable");
    cr_assert_str_eq(str(tv, "type"), "query");
    cr_assert_str_eq(str(json_object_get(tv, "datasource"), "uid"), "${datasource}");
    cr_assert(json_is_true(json_object_get(tv, "multi")) &&
              json_is_true(json_object_get(tv, "includeAll")));
    table_query(d, metric, sizeof(metric), label, sizeof(label));
    cr_assert_str_eq(label, "table");

    for (size_t k = 0; k < n; k++) {
        json_t *p = panels[k], *g = json_object_get(p, "gridPos");
        const char *type = str(p, "type");
        json_int_t x = json_integer_value(json_object_get(g, "x")),
                   y = json_integer_value(json_object_get(g, "y")),
                   w = json_integer_value(json_object_get(g, "w")),
                   h = json_integer_value(json_object_get(g, "h"));
        char refs[16] = "";

        cr_assert(*str(p, "title"), "panel %zu has a title", k);
        cr_assert(IN_NAMES(panel_types, type), "%s: type %s", str(p, "title"), type);
        cr_assert(strcmp(type, "row") == 0 || required(d, "panel", type),
                  "%s needs %s in __requires", str(p, "title"), type);
        cr_assert(json_is_integer(json_object_get(p, "id")), "%s: an id", str(p, "title"));
        cr_assert(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24, "%s: gridPos",
                  str(p, "title"));
        for (size_t o = 0; o < k; o++) {
            json_t *q = panels[o], *g2 = json_object_get(q, "gridPos");
            json_int_t x2 = json_integer_value(json_object_get(g2, "x")),
                       y2 = json_integer_value(json_object_get(g2, "y")),
                       w2 = json_integer_value(json_object_get(g2, "w")),
                       h2 = json_integer_value(json_object_get(g2, "h"));

            cr_assert_neq(json_integer_value(json_object_get(p, "id")),
                          json_integer_value(json_object_get(q, "id")), "%s: id taken",
                          str(p, "title"));
            cr_assert(x + w <= x2 || x2 + w2 <= x || y + h <= y2 || y2 + h2 <= y,
                      "%s overlaps %s", str(p, "title"), str(q, "title"));
        }
        if (strcmp(type, "row") == 0)
            continue;
        cr_assert_str_eq(str(json_object_get(p, "datasource"), "uid"), "${datasource}", "%s",
                         str(p, "title"));
        cr_assert_gt(json_array_size(json_object_get(p, "targets")), 0, "%s: targets",
                     str(p, "title"));
        json_array_foreach(json_object_get(p, "targets"), i, t) {
            const char *ref = str(t, "refId");

            cr_assert(*ref && strlen(ref) == 1 && !strchr(refs, *ref), "%s: refId %s",
                      str(p, "title"), ref);
            strncat(refs, ref, 1);
            cr_assert(*str(t, "expr"), "%s %s: an expr", str(p, "title"), ref);
            cr_assert_str_eq(str(json_object_get(t, "datasource"), "uid"), "${datasource}");
        }
    }

    dashboard_exprs(d, &e);
    for (size_t s = 0; s < sizeof(shown) / sizeof(shown[0]); s++) {
        bool used = false;

        for (size_t k = 0; k < e.n && !used; k++) {
            struct promql_refs r;
            char err[256];

            cr_assert_eq(promql_scan(e.expr[k], &r, err, sizeof(err)), 0, "%s: %s", e.what[k],
                         err);
            for (size_t j = 0; j < r.nrefs; j++)
                used = used || strcmp(r.refs[j].name, shown[s]) == 0;
            /* Grafana's own variables start with "__" ($__rate_interval...). */
            for (size_t j = 0; j < r.nvars; j++)
                cr_assert(strncmp(r.vars[j], "__", 2) == 0 || variable(d, r.vars[j]),
                          "%s uses $%s, which the dashboard does not define", e.what[k],
                          r.vars[j]);
            promql_free(&r);
        }
        cr_assert(used, "no panel shows %s", shown[s]);
    }
    exprs_free(&e);
    json_decref(d);
}

/* ---- the rules' shape ----------------------------------------------------- */

static bool only_keys(json_t *o, const char *const *allowed, size_t n, const char **bad)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v)
        if (!in_names(allowed, n, k))
            return (*bad = k), false;
    return true;
}

static bool matches(const char *re, const char *s)
{
    regex_t rx;
    bool ok;

    cr_assert_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

/* The rule file format of prometheus.io/docs/prometheus/latest/configuration/
 * alerting_rules/ and recording_rules/#rule_group, held tighter: alerts
 * only, each with for, a severity, a summary and a description that points
 * to the README; every {{ $labels.X }} of an annotation names a label its
 * expression keeps. */
Test(deploy, rules_have_what_an_operator_needs)
{
    static const char *const group_keys[] = { "name", "interval", "rules" };
    static const char *const rule_keys[] = { "alert", "expr", "for", "keep_firing_for",
                                             "labels", "annotations" };
    static const char *const severities[] = { "critical", "warning", "info" };
    json_t *r = load_rules(), *g, *rule;
    const char *bad = NULL, *key;
    char names[2048] = "|";
    size_t i, j;

    cr_assert(json_is_object(r) && json_object_size(r) == 1 &&
              json_is_array(json_object_get(r, "groups")) &&
              json_array_size(json_object_get(r, "groups")) > 0,
              "a mapping with groups only");
    json_array_foreach(json_object_get(r, "groups"), i, g) {
        cr_assert(only_keys(g, group_keys, 3, &bad), "group %zu: key %s", i, bad);
        cr_assert(*str(g, "name"), "group %zu: a name", i);
        cr_assert_gt(json_array_size(json_object_get(g, "rules")), 0, "%s: rules", str(g, "name"));
        json_array_foreach(json_object_get(g, "rules"), j, rule) {
            const char *alert = str(rule, "alert");
            json_t *ann = json_object_get(rule, "annotations"), *v;
            struct promql_refs refs;
            char err[256], needle[256];

            cr_assert(only_keys(rule, rule_keys, 6, &bad), "%s: key %s", alert, bad);
            cr_assert(matches("^[A-Za-z_][A-Za-z0-9_]*$", alert), "rule %zu: alert name \"%s\"",
                      j, alert);
            snprintf(needle, sizeof(needle), "|%s|", alert);
            cr_assert_null(strstr(names, needle), "%s twice", alert);
            strncat(names, needle + 1, sizeof(names) - strlen(names) - 1);
            cr_assert(matches("^([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?"
                              "([0-9]+ms)?$",
                              str(rule, "for")) &&
                          *str(rule, "for"),
                      "%s: for \"%s\" is a Prometheus duration", alert, str(rule, "for"));
            cr_assert(IN_NAMES(severities, str(json_object_get(rule, "labels"), "severity")),
                      "%s: labels.severity", alert);
            cr_assert(*str(ann, "summary") && *str(ann, "description"),
                      "%s: a summary and a description", alert);
            cr_assert_not_null(strstr(str(ann, "description"), "README"),
                               "%s: the description points to the README", alert);
            cr_assert_eq(promql_scan(str(rule, "expr"), &refs, err, sizeof(err)), 0, "%s: %s",
                         alert, err);
            json_object_foreach(ann, key, v) {
                for (const char *p = json_string_value(v); p && (p = strstr(p, "$labels."));) {
                    char label[64] = "";
                    bool kept = false;

                    p += strlen("$labels.");
                    sscanf(p, "%63[a-zA-Z0-9_]", label);
                    kept = IN_NAMES(target_labels, label);
                    for (size_t k = 0; k < refs.nrefs && !kept; k++)
                        for (size_t l = 0; l < refs.refs[k].nlabels; l++)
                            kept = kept || strcmp(refs.refs[k].labels[l], label) == 0;
                    cr_assert(kept, "%s: annotation %s uses $labels.%s, not in its expression",
                              alert, key, label);
                }
            }
            promql_free(&refs);
        }
    }
    json_decref(r);
}

/* ---- promtool --------------------------------------------------------------- */

static const char *promtool(void)
{
    const char *p = getenv("DDB2ES_PROMTOOL");

    if (!p)
        cr_skip_test("DDB2ES_PROMTOOL is not set (run the suite through tests/run.sh)");
    cr_assert_eq(access(p, X_OK), 0, "%s missing: run scripts/setup.sh", p);
    return p;
}

/* Runs promtool with these arguments; asserts exit code want, with its
 * output in the message. */
static void run_promtool(const char *const *args, size_t nargs, int want)
{
    const char *argv[8] = { promtool() };
    struct proc p;
    int rc;

    cr_assert_lt(nargs, 7);
    memcpy(argv + 1, args, nargs * sizeof(*args));
    rc = proc_run(argv, NULL, 20000, &p);
    if (rc != want) {
        char *out = proc_slurp(p.out_path), *err = proc_slurp(p.err_path);

        cr_assert_eq(rc, want, "promtool %s: exit %d\n%s%s", args[0], rc, out, err);
    }
}

Test(deploy, rules_pass_promtool_check)
{
    static const char *const args[] = { "check", "rules", RULES };

    run_promtool(args, 3, 0);
}

/* The cases of tests/data/alert-scenarios.json, each an alert's expression
 * at one moment over series written the way promtool's unit tests take
 * them (prometheus.io/docs/prometheus/latest/configuration/
 * unit_testing_rules/).  A case says which label sets the expression yields
 * then ("firing"); "for" is Prometheus's to apply and is not tested.  The
 * test file is made here: each expression copied from the rules as
 * (EXPR) * 0 + 1, so promtool compares label sets only. */
Test(deploy, rules_fire_in_the_documented_cases)
{
    json_t *rules = load_rules(), *sc, *out = json_object(), *tests = json_array(), *g, *c, *f;
    json_error_t jerr;
    struct exprs e = { 0 };
    char path[PATH_MAX], rules_path[PATH_MAX], untested[1024] = "";
    const char *tmp = getenv("TMPDIR");
    const char *args[] = { "test", "rules", path };
    size_t i, j, k;

    sc = json_load_file(SCENARIOS, 0, &jerr);
    cr_assert_not_null(sc, SCENARIOS ":%d: %s", jerr.line, jerr.text);
    rules_exprs(rules, &e);
    cr_assert_not_null(realpath(RULES, rules_path));
    json_array_foreach(json_object_get(sc, "tests"), i, g) {
        json_t *group = json_pack("{s:O, s:O, s:O, s:[]}", "name", json_object_get(g, "name"),
                                  "interval", json_object_get(g, "interval"), "input_series",
                                  json_object_get(g, "input_series"), "promql_expr_test");

        cr_assert_not_null(group, "%s: name, interval, input_series", SCENARIOS);
        json_array_foreach(json_object_get(g, "cases"), j, c) {
            const char *alert = str(c, "alert"), *expr = NULL;
            json_t *samples = json_array(), *tc;
            char wrapped[4096];

            for (k = 0; k < e.n; k++)
                if (strcmp(e.what[k] + strlen("alert "), alert) == 0)
                    expr = e.expr[k];
            cr_assert_not_null(expr, "%s: no alert %s in " RULES, SCENARIOS, alert);
            snprintf(wrapped, sizeof(wrapped), "(%s) * 0 + 1", expr);
            json_array_foreach(json_object_get(c, "firing"), k, f)
                json_array_append_new(samples, json_pack("{s:O, s:i}", "labels", f, "value", 1));
            tc = json_pack("{s:s, s:O, s:o}", "expr", wrapped, "eval_time",
                           json_object_get(c, "eval_time"), "exp_samples", samples);
            cr_assert_not_null(tc, "%s: %s: eval_time", SCENARIOS, alert);
            json_array_append_new(json_object_get(group, "promql_expr_test"), tc);
        }
        json_array_append_new(tests, group);
    }
    /* Every alert has a case where it fires. */
    for (k = 0; k < e.n; k++) {
        bool fires = false;

        json_array_foreach(json_object_get(sc, "tests"), i, g)
            json_array_foreach(json_object_get(g, "cases"), j, c)
                fires = fires || (strcmp(str(c, "alert"), e.what[k] + strlen("alert ")) == 0 &&
                                  json_array_size(json_object_get(c, "firing")) > 0);
        if (!fires)
            snprintf(untested + strlen(untested), sizeof(untested) - strlen(untested), " %s",
                     e.what[k] + strlen("alert "));
    }
    cr_assert_str_empty(untested, "no case of " SCENARIOS " fires:%s", untested);
    json_object_set_new(out, "rule_files", json_pack("[s]", rules_path));
    json_object_set_new(out, "evaluation_interval", json_string("1m"));
    json_object_set_new(out, "tests", tests);
    /* JSON is YAML: promtool reads it as it is. */
    snprintf(path, sizeof(path), "%s/alert-scenarios-%d.yaml", tmp ? tmp : "/tmp", (int)getpid());
    cr_assert_eq(json_dump_file(out, path, JSON_INDENT(1)), 0);
    run_promtool(args, 3, 0);
    unlink(path);
    json_decref(out);
    json_decref(sc);
    json_decref(rules);
    exprs_free(&e);
}

/* ---- against a live /metrics ---------------------------------------------- */

static long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool ready_within(int port, long ms)
{
    for (long deadline = mono_ms() + ms; mono_ms() < deadline; usleep(100 * 1000)) {
        long st = 0;

        free(httpget(port, "GET", "/readyz", &st));
        if (st == 200)
            return true;
    }
    return false;
}

/* Polls one sample of /metrics until it is at least want (30 s at most). */
static bool metric_reaches(int port, const char *name, const char *labels, double want)
{
    for (long deadline = mono_ms() + 30000; mono_ms() < deadline; usleep(100 * 1000))
        if (httpget_metric(port, name, labels) >= want)
            return true;
    return false;
}

static void scrape(int port, struct prom *p)
{
    long st = 0;
    char *text = httpget(port, "GET", "/metrics", &st), err[256];

    cr_assert_eq(st, 200);
    cr_assert_eq(prom_parse(text, p, err, sizeof(err)), 0, "%s", err);
    free(text);
}

/* Series that appear with their first event (daemon/metrics.c): the age with
 * the first record read, a (table, type) of item failures with the first
 * item the engine fails, a (table, reason) of dead letters with the first
 * dead letter.  Everything else is on /metrics from the start. */
static const char *const after_event[] = { "ddb2es_iterator_age_seconds",
                                           "ddb2es_bulk_item_failures_total", "ddb2es_dlq_total",
                                           NULL };

/* `ddb2es run` on one table: every expression is held against /metrics once
 * ready (series of after_event aside, and those must indeed be missing
 * then), then again after a put, a delete and a document the engine refuses
 * with a 400 (mapper_parsing_exception: an item failure and a dead letter),
 * when every series must be there with the labels its expression uses. */
Test(deploy_e2e, every_series_the_dashboard_and_the_rules_read_is_on_metrics)
{
    json_t *d, *rules;
    struct exprs e = { 0 };
    char name[128], dir[256], listen[64], metric[128], label[64], why[256], l[300];
    struct e2e_table t = { 0 };
    struct searchd *sd;
    struct proc p;
    struct prom at_start, later;
    struct buf problems;
    int port = httpget_free_port();

    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
    d = load_dashboard();
    rules = load_rules();
    dashboard_exprs(d, &e);
    rules_exprs(rules, &e);
    table_query(d, metric, sizeof(metric), label, sizeof(label));
    snprintf(why, sizeof(why), "%s{%s!=\"\"}", metric, label);
    exprs_add(&e, why, "dashboard variable table");
    cr_assert_gt(e.n, 20);

    ddbc_table_name(name, sizeof(name), "deploy");
    for (char *c = name; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    t.name = t.index = name;
    t.hash = "id";
    ddbc_create_table(name, "id", "S", NULL, NULL, "NEW_AND_OLD_IMAGES");
    sd = searchd_start(NULL);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    e2e_metrics_listen = listen;
    e2e_start(&p, e2e_config_ex(ddbc_endpoint(), searchd_url(sd), &t, 1,
                                "idle_poll_interval = 200ms\n", NULL, dir, sizeof(dir)));
    cr_assert(ready_within(port, 30000), "/readyz 200 within 30 s");

    buf_init(&problems, BUF_NOMAX);
    scrape(port, &at_start);
    for (size_t i = 0; i < e.n; i++)
        check_expr(&at_start, e.what[i], e.expr[i], after_event, &problems);
    for (size_t i = 0; after_event[i]; i++)
        cr_expect_eq(prom_count(&at_start, after_event[i]), 0,
                     "%s is on /metrics from the start now: take it out of after_event",
                     after_event[i]);
    buf_putc(&problems, '\0');
    cr_assert_str_empty(problems.ptr, "at the start:\n%s", problems.ptr);
    buf_reset(&problems);

    /* The next bulk item is refused (the double's injected 400 is a
     * mapper_parsing_exception, tests/tools/searchd/bulk.c): k0 is
     * dead-lettered.  Then k1 and k2 are indexed and k1 deleted, each step
     * waited for, so that no put and delete of one item meet in a batch. */
    cr_assert_eq(searchd_faults(sd, "{\"match\":\"bulk\",\"item_status\":400,\"items\":1}"), 200);
    ddbc_put(name, "{\"id\":{\"S\":\"k0\"},\"n\":{\"N\":\"0\"}}");
    snprintf(l, sizeof(l), "reason=\"mapper_parsing_exception\",table=\"%s\"", name);
    cr_assert(metric_reaches(port, "ddb2es_dlq_total", l, 1), "k0 dead-lettered");
    ddbc_put(name, "{\"id\":{\"S\":\"k1\"},\"n\":{\"N\":\"1\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"k2\"},\"n\":{\"N\":\"2\"}}");
    snprintf(l, sizeof(l), "table=\"%s\"", name);
    cr_assert(metric_reaches(port, "ddb2es_docs_indexed_total", l, 2), "k1 and k2 indexed");
    ddbc_delete(name, "{\"id\":{\"S\":\"k1\"}}");
    cr_assert(metric_reaches(port, "ddb2es_docs_deleted_total", l, 1), "k1 deleted");

    scrape(port, &later);
    for (size_t i = 0; i < e.n; i++)
        check_expr(&later, e.what[i], e.expr[i], NULL, &problems);
    buf_putc(&problems, '\0');
    cr_assert_str_empty(problems.ptr, "after the workload:\n%s", problems.ptr);

    buf_close(&problems);
    prom_free(&at_start);
    prom_free(&later);
    cr_assert_eq(e2e_stop(&p, 15000), 0);
    searchd_stop(sd);
    exprs_free(&e);
    json_decref(rules);
    json_decref(d);
}
