/* promql — just enough of PromQL for tests that hold the expressions of
 * deploy/ (the Grafana dashboard, the alerting rules) against a live
 * /metrics: which series an expression reads and which label names it
 * relies on for each.  The lexical rules are those of the Prometheus query
 * language documentation (prometheus.io/docs/prometheus/latest/querying/
 * basics/ and operators/): names [a-zA-Z_:][a-zA-Z0-9_:]*, strings in "",
 * '' or ``, # comments to the end of the line, matchers = != =~ !~.
 *
 * A name followed by "(" is a function or an aggregation (it must be one
 * PromQL knows); a keyword (by, without, on, ignoring, group_left,
 * group_right, bool, and, or, unless, offset, inf, nan) is not a series;
 * any other name is a series, with the label names of its matchers.  The
 * label names of an aggregation's by (...) or without (...) are relied on
 * by every series inside its argument; those of on (...), ignoring (...)
 * and group_left/right (...) by every series of the expression (stricter
 * than PromQL, which needs them on the two sides only).  Grafana's
 * variables ($name, ${name}, ${name:format}, [[name]]) may stand where a
 * label value, a range or a number would; their names are collected.
 *
 * Refused, with a message: unbalanced brackets, an unterminated string, an
 * unknown function, a selector without a metric name ({__name__=...}), a
 * by/without/on/ignoring not followed by a label list.
 */
#ifndef DDB2ES_TEST_PROMQL_H
#define DDB2ES_TEST_PROMQL_H

#include <stddef.h>

#define PROMQL_MAX_LABELS 16

struct promql_ref {
    char name[128];                            /* as written, e.g. ddb2es_bulk_seconds_bucket */
    char labels[PROMQL_MAX_LABELS][64];        /* relied on: matchers, by (...), on (...) */
    size_t nlabels;
};

struct promql_refs {
    struct promql_ref *refs; /* in the order of the text */
    size_t nrefs;
    char vars[16][64];       /* Grafana variables used, without $ or braces */
    size_t nvars;
};

/* 0, or -1 with err holding "at byte N: what is wrong".  out is always
 * usable by promql_free afterwards. */
int promql_scan(const char *expr, struct promql_refs *out, char *err, size_t errlen);
void promql_free(struct promql_refs *r);

#endif
