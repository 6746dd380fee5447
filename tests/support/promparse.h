/* promparse — a strict parser of the Prometheus text exposition format
 * 0.0.4, for tests of the metrics endpoint.  Stricter than Prometheus
 * itself where our output has no reason to be loose:
 *   - every line ends with "\n"; no blank lines;
 *   - "# HELP" and "# TYPE" at most once per family, both before its first
 *     sample; every sample belongs to a family with a TYPE;
 *   - a family's samples are contiguous (no going back to a family);
 *   - metric and label names valid, label values quoted with only \\, \"
 *     and \n escapes, no label name twice, no "__" label names;
 *   - values are numbers (or NaN, +Inf, -Inf); counters are not negative;
 *   - no series (name + label set) twice;
 *   - histograms: per label set, _bucket lines with strictly increasing le,
 *     cumulative (non-decreasing) counts, ending with le="+Inf", plus _sum
 *     and _count, and _count equals the +Inf bucket.
 */
#ifndef DDB2ES_TEST_PROMPARSE_H
#define DDB2ES_TEST_PROMPARSE_H

#include <stdbool.h>
#include <stddef.h>

struct prom_sample {
    char *name;    /* as written, e.g. ddb2es_bulk_seconds_bucket */
    char *family;  /* e.g. ddb2es_bulk_seconds */
    char *labels;  /* canonical: sorted by name, k="v" joined by ',' ("" for none) */
    double value;
};

struct prom_family {
    char *name, *type, *help;
};

struct prom {
    struct prom_family *families;
    size_t nfamilies;
    struct prom_sample *samples;
    size_t nsamples;
};

/* 0, or -1 with err holding "line N: what is wrong".  out is always
 * usable by prom_free afterwards. */
int prom_parse(const char *text, struct prom *out, char *err, size_t errlen);
void prom_free(struct prom *p);

const struct prom_family *prom_family(const struct prom *p, const char *name);
/* The sample with this name and canonical label set, or NULL. */
const struct prom_sample *prom_find(const struct prom *p, const char *name, const char *labels);
/* How many samples have this name. */
size_t prom_count(const struct prom *p, const char *name);

#endif
