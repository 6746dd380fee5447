/* ceiling — the limit of a jansson record path: only the work that cannot
 * be avoided.  For each stream record of a corpus (one JSON object a line,
 * see corpus.c): json_loadb the record, then write the bulk action line and,
 * for an index, the plain-JSON document straight from the parsed tree with
 * the project's own string emitter (jsonx_put_string, as the daemon's
 * documents are escaped), each N copied as its token (exact, as ddb2es
 * keeps it), into one buffer written out in large blocks.  No HTTP, no
 * checkpoint, no ids beyond the key text: what ddb2es does on top of this is
 * its own cost.
 *
 *   ceiling [--one-pass] CORPUS [OUT [MAX]]
 *
 * --one-pass: the limit of the record path ddb2es takes now, which reads
 * each record once without a tree (transform_record_text): each record
 * through that reader, then its action and document written with
 * bulk_append, as the sink writes them.  Again no HTTP and no checkpoint.
 *
 * It runs on the daemon's allocator for jansson (base/jcache.h) unless
 * CEILING_MALLOC is set, so that the daemon is not measured against a
 * ceiling with a slower heap.
 *
 * OUT defaults to /dev/null; with MAX, only the first MAX records are
 * written (to make bulk bodies for load tests).  Prints one line:
 *   records N seconds S cpu C records_per_s R records_per_cpu_s P
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/jcache.h"
#include "base/jsonx.h"
#include "indexer/bulk.h"
#include "indexer/transform.h"

static void put_str(struct buf *b, const char *s, size_t n)
{
    if (jsonx_put_string(b, s, n) < 0) {
        fprintf(stderr, "ceiling: out of memory\n");
        exit(70);
    }
}

static void put_value(struct buf *b, json_t *av);

/* SS, NS, BS: an array of strings, or of number tokens for NS. */
static void put_set(struct buf *b, json_t *v, bool num)
{
    json_t *e;
    size_t i;

    buf_putc(b, '[');
    json_array_foreach(v, i, e) {
        if (i)
            buf_putc(b, ',');
        if (num)
            buf_append(b, json_string_value(e), json_string_length(e));
        else
            put_str(b, json_string_value(e), json_string_length(e));
    }
    buf_putc(b, ']');
}

static void put_map(struct buf *b, json_t *m)
{
    const char *k;
    json_t *v;
    bool first = true;

    buf_putc(b, '{');
    json_object_foreach(m, k, v) {
        if (!first)
            buf_putc(b, ',');
        first = false;
        put_str(b, k, strlen(k));
        buf_putc(b, ':');
        put_value(b, v);
    }
    buf_putc(b, '}');
}

/* One attribute value {"T": value} -> plain JSON. */
static void put_value(struct buf *b, json_t *av)
{
    void *it = json_object_iter(av);
    const char *t;
    json_t *v;

    if (!it) {
        buf_puts(b, "null");
        return;
    }
    t = json_object_iter_key(it);
    v = json_object_iter_value(it);
    switch (t[0]) {
    case 'S':
        if (t[1] == 'S')
            put_set(b, v, false);
        else
            put_str(b, json_string_value(v), json_string_length(v));
        return;
    case 'B':
        if (t[1] == 'S')
            put_set(b, v, false);
        else if (t[1] == 'O')
            buf_puts(b, json_is_true(v) ? "true" : "false");
        else
            put_str(b, json_string_value(v), json_string_length(v));
        return;
    case 'N':
        if (t[1] == 'S')
            put_set(b, v, true);
        else if (t[1] == 'U')
            buf_puts(b, "null");
        else
            buf_append(b, json_string_value(v), json_string_length(v));
        return;
    case 'M':
        put_map(b, v);
        return;
    case 'L': {
        json_t *e;
        size_t i;

        buf_putc(b, '[');
        json_array_foreach(v, i, e) {
            if (i)
                buf_putc(b, ',');
            put_value(b, e);
        }
        buf_putc(b, ']');
        return;
    }
    default:
        buf_puts(b, "null");
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The buffer written out once it holds 1 MB (or all of it: last), then
 * emptied; closed after the last. */
static void put_block(struct buf *b, FILE *out, bool last)
{
    if (!last && b->len < (1u << 20))
        return;
    fwrite(b->ptr, 1, b->len, out);
    if (last)
        buf_close(b);
    else
        buf_reset(b);
}

/* The one-pass reader's limit: its document and bulk_append's action. */
static size_t one_pass(FILE *in, FILE *out, size_t max)
{
    static const struct transform_cfg cfg = {
        .index = "posts", .id_sep = '|', .hash_key = "author", .range_key = "ts",
    };
    struct transform_text_extra x;
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    struct buf b;
    struct doc d;

    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 0);
    buf_init(&d.keys, 0);
    buf_init(&b, BUF_NOMAX);
    while (n < max && (len = getline(&line, &cap, in)) > 0) {
        if (!transform_record_text(&cfg, line, (size_t)len, &d, &x)) {
            fprintf(stderr, "ceiling: line %zu: not a record the one-pass reader takes\n", n + 1);
            exit(65);
        }
        d.version = ((uint64_t)d.created << 20) + n;
        if (bulk_append(&b, &d, "external_gte") < 0) {
            fprintf(stderr, "ceiling: line %zu: no action\n", n + 1);
            exit(70);
        }
        n++;
        put_block(&b, out, false);
    }
    put_block(&b, out, true);
    buf_close(&d.source);
    buf_close(&d.keys);
    free(line);
    return n;
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    char *line = NULL, id[256];
    size_t cap = 0, n = 0, max;
    ssize_t len;
    double t0 = now_s(), t, cpu;
    bool onepass = argc > 1 && strcmp(argv[1], "--one-pass") == 0;

    if (onepass)
        argc--, argv++;
    max = argc > 3 ? strtoul(argv[3], NULL, 10) : SIZE_MAX;

    if (!getenv("CEILING_MALLOC"))
        jcache_install();
    struct rusage ru;
    struct buf b;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: ceiling [--one-pass] CORPUS [OUT [MAX]]\n");
        return 64;
    }
    in = fopen(argv[1], "r");
    out = fopen(argc > 2 ? argv[2] : "/dev/null", "w");
    if (!in || !out) {
        perror("ceiling: open");
        return 66;
    }
    buf_init(&b, BUF_NOMAX);
    if (onepass)
        n = one_pass(in, out, max);
    while (!onepass && n < max && (len = getline(&line, &cap, in)) > 0) {
        json_error_t jerr;
        json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
        json_t *dyn = json_object_get(rec, "dynamodb");
        json_t *keys = json_object_get(dyn, "Keys");
        json_t *author = json_object_get(json_object_get(keys, "author"), "S");
        json_t *ts = json_object_get(json_object_get(keys, "ts"), "N");
        const char *ev = json_string_value(json_object_get(rec, "eventName"));
        bool del;
        int idn;

        if (!rec || !ev || !json_is_string(author) || !json_is_string(ts)) {
            fprintf(stderr, "ceiling: line %zu: %s\n", n + 1, rec ? "not a stream record"
                                                                 : jerr.text);
            return 65;
        }
        del = strcmp(ev, "REMOVE") == 0;
        idn = snprintf(id, sizeof(id), "%s|%s", json_string_value(author), json_string_value(ts));
        buf_puts(&b, del ? "{\"delete\":{\"_index\":\"posts\",\"_id\":"
                         : "{\"index\":{\"_index\":\"posts\",\"_id\":");
        put_str(&b, id, idn < (int)sizeof(id) ? (size_t)idn : sizeof(id) - 1);
        buf_printf(&b, ",\"version\":%" PRIu64 ",\"version_type\":\"external_gte\"}}\n",
                   ((uint64_t)json_number_value(json_object_get(dyn,
                                                                "ApproximateCreationDateTime"))
                    << 20) + n);
        if (!del) {
            put_map(&b, json_object_get(dyn, "NewImage"));
            buf_putc(&b, '\n');
        }
        json_decref(rec);
        n++;
        put_block(&b, out, false);
    }
    put_block(&b, out, true);
    free(line);
    fclose(in);
    if (fclose(out) != 0) {
        perror("ceiling: write");
        return 74;
    }
    t = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru);
    cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("records %zu seconds %.3f cpu %.3f records_per_s %.0f records_per_cpu_s %.0f\n", n, t,
           cpu, (double)n / t, (double)n / cpu);
    return 0;
}
