/* ceiling — the limit the record path can approach: for each stream record
 * of a corpus (one JSON object a line, see corpus.c), parse it with jansson,
 * turn its NewImage from DynamoDB JSON into a plain jansson tree, and write
 * the bulk lines (action, then the source for an index) with json_dumps.
 * Numbers go through long long / double, so 38-digit ones are not kept
 * exactly: this is a yardstick, not a converter.
 *
 *   ceiling CORPUS [OUT [MAX]]
 *
 * OUT defaults to /dev/null; with MAX, only the first MAX records are
 * written (to make bulk bodies for load tests).  Prints one line:
 *   records N seconds S cpu C records_per_s R records_per_cpu_s P
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jansson.h>

static json_t *plain(json_t *av);

static json_t *number(const char *s)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0)
        return json_integer(v);
    return json_real(strtod(s, NULL));
}

static json_t *array_of(json_t *v, char type)
{
    json_t *out = json_array(), *e;
    size_t i;

    json_array_foreach(v, i, e) {
        const char *s = json_string_value(e);

        json_array_append_new(out, type == 'N' && s ? number(s) : json_copy(e));
    }
    return out;
}

/* One attribute value {"T": value} -> plain JSON. */
static json_t *plain(json_t *av)
{
    const char *t, *k;
    json_t *v, *out, *m;
    void *it = json_object_iter(av);

    if (!it)
        return json_null();
    t = json_object_iter_key(it);
    v = json_object_iter_value(it);
    if (strcmp(t, "S") == 0 || strcmp(t, "B") == 0)
        return json_incref(v);
    if (strcmp(t, "N") == 0)
        return number(json_string_value(v) ? json_string_value(v) : "0");
    if (strcmp(t, "BOOL") == 0)
        return json_incref(v);
    if (strcmp(t, "NULL") == 0)
        return json_null();
    if (strcmp(t, "M") == 0) {
        out = json_object();
        json_object_foreach(v, k, m) json_object_set_new(out, k, plain(m));
        return out;
    }
    if (strcmp(t, "L") == 0) {
        size_t i;

        out = json_array();
        json_array_foreach(v, i, m) json_array_append_new(out, plain(m));
        return out;
    }
    return array_of(v, t[0]); /* SS, NS, BS */
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    char *line = NULL, id[256];
    size_t cap = 0, n = 0, max = argc > 3 ? strtoul(argv[3], NULL, 10) : SIZE_MAX;
    ssize_t len;
    double t0 = now_s(), t, cpu;
    struct rusage ru;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: ceiling CORPUS [OUT [MAX]]\n");
        return 64;
    }
    in = fopen(argv[1], "r");
    out = fopen(argc > 2 ? argv[2] : "/dev/null", "w");
    if (!in || !out) {
        perror("ceiling: open");
        return 66;
    }
    while (n < max && (len = getline(&line, &cap, in)) > 0) {
        json_error_t jerr;
        json_t *rec = json_loadb(line, (size_t)len, 0, &jerr);
        json_t *dyn = json_object_get(rec, "dynamodb");
        json_t *keys = json_object_get(dyn, "Keys");
        json_t *img = json_object_get(dyn, "NewImage");
        const char *ev = json_string_value(json_object_get(rec, "eventName"));
        json_t *action, *src;
        char *text;

        if (!rec || !ev) {
            fprintf(stderr, "ceiling: line %zu: %s\n", n + 1, jerr.text);
            return 65;
        }
        snprintf(id, sizeof(id), "%s|%s",
                 json_string_value(json_object_get(json_object_get(keys, "author"), "S")),
                 json_string_value(json_object_get(json_object_get(keys, "ts"), "N")));
        action = json_pack("{s:{s:s, s:s, s:I, s:s}}", strcmp(ev, "REMOVE") ? "index" : "delete",
                           "_index", "posts", "_id", id, "version",
                           (json_int_t)((json_integer_value(json_object_get(
                                             dyn, "ApproximateCreationDateTime")) << 20) + n),
                           "version_type", "external_gte");
        text = json_dumps(action, JSON_COMPACT);
        fputs(text, out);
        fputc('\n', out);
        free(text);
        json_decref(action);
        if (strcmp(ev, "REMOVE") != 0) {
            json_t *wrap = json_pack("{s:O}", "M", img);

            src = plain(wrap);
            json_decref(wrap);
            text = json_dumps(src, JSON_COMPACT);
            fputs(text, out);
            fputc('\n', out);
            free(text);
            json_decref(src);
        }
        json_decref(rec);
        n++;
    }
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
