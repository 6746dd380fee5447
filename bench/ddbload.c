/* ddbload — load generator and latency probe for the pipeline benchmarks.
 *
 *   ddbload ENDPOINT TABLE create
 *   ddbload ENDPOINT TABLE backlog N          write N items (BatchWriteItem, 25 a call)
 *   ddbload ENDPOINT TABLE steady RATE SECONDS SEARCH_URL INDEX
 *       write RATE items/s for SECONDS and report, for each, the time until
 *       the search endpoint's _count included it: p50, p99, max (ms).
 *
 * Items are ~1 KB posts (hash key author, range key ts).  Blocking; for
 * benchmarks only. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "tests/support/ddbsign.h"

static const char *endpoint, *table;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == 0 ? size * n : 0;
}

/* One signed DynamoDB call; returns the HTTP status, the body in out. */
static long call(CURL *c, const char *op, const char *body, struct buf *out)
{
    return ddbsign_post(c, endpoint, op, body, "bench", "bench", NULL, "us-east-1", 60, out);
}

static void item(struct buf *b, unsigned long i)
{
    buf_printf(b,
               "{\"author\":{\"S\":\"user%lu\"},\"ts\":{\"N\":\"%lu\"},"
               "\"text\":{\"S\":\"post number %lu: lorem ipsum dolor sit amet, consectetur "
               "adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna "
               "aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi "
               "ut aliquip ex ea commodo consequat.\"},"
               "\"likes\":{\"N\":\"%lu\"},\"score\":{\"N\":\"1234567890.12345678901234567890123456\"},"
               "\"tags\":{\"SS\":[\"a%lu\",\"b\",\"c\"]},"
               "\"meta\":{\"M\":{\"client\":{\"S\":\"ios\"},\"geo\":{\"L\":[{\"N\":\"52.52\"},"
               "{\"N\":\"13.405\"}]},\"flags\":{\"M\":{\"pinned\":{\"BOOL\":false},"
               "\"nsfw\":{\"NULL\":true}}}}},\"thumb\":{\"B\":\"iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB\"}}",
               i % 997, i, i, i % 1000, i % 7);
}

struct writer {
    unsigned long from, to;
    long failures;
};

static void *write_range(void *arg)
{
    struct writer *w = arg;
    CURL *c = curl_easy_init();
    struct buf body, out;

    buf_init(&body, 0);
    buf_init(&out, 0);
    for (unsigned long i = w->from; i < w->to;) {
        unsigned long end = i + 25 < w->to ? i + 25 : w->to;

        buf_reset(&body);
        buf_printf(&body, "{\"RequestItems\":{\"%s\":[", table);
        for (unsigned long j = i; j < end; j++) {
            buf_puts(&body, j > i ? ",{\"PutRequest\":{\"Item\":" : "{\"PutRequest\":{\"Item\":");
            item(&body, j);
            buf_puts(&body, "}}");
        }
        buf_puts(&body, "]}}");
        if (call(c, "BatchWriteItem", body.ptr, &out) != 200 ||
            !strstr(out.ptr, "\"UnprocessedItems\":{}")) {
            w->failures++;
            usleep(100000);
            continue; /* the same batch again */
        }
        i = end;
    }
    buf_close(&body);
    buf_close(&out);
    curl_easy_cleanup(c);
    return NULL;
}

static long search_count(CURL *c, const char *url)
{
    struct buf out;
    long n = -1;
    const char *p;

    buf_init(&out, 0);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (curl_easy_perform(c) == CURLE_OK && out.ptr && (p = strstr(out.ptr, "\"count\":")))
        n = strtol(p + 8, NULL, 10);
    buf_close(&out);
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct buf out;
    CURL *c;

    if (argc < 4) {
        fprintf(stderr, "usage: ddbload ENDPOINT TABLE create|backlog N|steady RATE SECONDS "
                        "SEARCH_URL INDEX\n");
        return 64;
    }
    endpoint = argv[1];
    table = argv[2];
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    buf_init(&out, 0);
    if (strcmp(argv[3], "create") == 0) {
        char body[1024];

        snprintf(body, sizeof(body),
                 "{\"TableName\":\"%s\",\"AttributeDefinitions\":[{\"AttributeName\":\"author\","
                 "\"AttributeType\":\"S\"},{\"AttributeName\":\"ts\",\"AttributeType\":\"N\"}],"
                 "\"KeySchema\":[{\"AttributeName\":\"author\",\"KeyType\":\"HASH\"},"
                 "{\"AttributeName\":\"ts\",\"KeyType\":\"RANGE\"}],\"BillingMode\":"
                 "\"PAY_PER_REQUEST\",\"StreamSpecification\":{\"StreamEnabled\":true,"
                 "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}",
                 table);
        return call(c, "CreateTable", body, &out) == 200 ? 0 : 1;
    }
    if (strcmp(argv[3], "backlog") == 0 && argc == 5) {
        unsigned long n = strtoul(argv[4], NULL, 10);
        struct writer w[4];
        pthread_t th[4];
        double t0 = now_s();
        long failures = 0;

        for (int i = 0; i < 4; i++) {
            w[i] = (struct writer){ .from = n * (unsigned long)i / 4,
                                    .to = n * (unsigned long)(i + 1) / 4 };
            pthread_create(&th[i], NULL, write_range, &w[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            failures += w[i].failures;
        }
        printf("wrote %lu items in %.1f s (%.0f items/s, %ld retried batches)\n", n, now_s() - t0,
               (double)n / (now_s() - t0), failures);
        return 0;
    }
    if (strcmp(argv[3], "steady") == 0 && argc == 8) {
        double rate = atof(argv[4]), secs = atof(argv[5]);
        unsigned long n = (unsigned long)(rate * secs);
        double *written = calloc(n, sizeof(double)), *lat = calloc(n, sizeof(double));
        char url[512];
        CURL *probe = curl_easy_init();
        struct buf body;
        unsigned long seen = 0;
        long base;
        double t0;

        snprintf(url, sizeof(url), "%s/%s/_count", argv[6], argv[7]);
        base = search_count(probe, url);
        if (base < 0)
            base = 0;
        buf_init(&body, 0);
        t0 = now_s();
        for (unsigned long i = 0; i < n; i++) {
            double due = t0 + (double)i / rate;
            long cnt;

            /* Between writes, watch the count: item i is searchable once the
             * count passes base + i. */
            do {
                cnt = search_count(probe, url);
                while (cnt >= 0 && (long)seen < cnt - base && seen < i)
                    lat[seen] = now_s() - written[seen], seen++;
                if (now_s() < due)
                    usleep(1000);
            } while (now_s() < due);
            buf_reset(&body);
            buf_printf(&body, "{\"TableName\":\"%s\",\"Item\":", table);
            item(&body, 10000000 + i);
            buf_putc(&body, '}');
            written[i] = now_s();
            call(c, "PutItem", body.ptr, &out);
        }
        while (seen < n && now_s() - written[n - 1] < 30) {
            long cnt = search_count(probe, url);

            while (cnt >= 0 && (long)seen < cnt - base && seen < n)
                lat[seen] = now_s() - written[seen], seen++;
            usleep(1000);
        }
        if (seen < n) {
            printf("only %lu of %lu items became searchable\n", seen, n);
            return 1;
        }
        qsort(lat, n, sizeof(double), cmp_double);
        printf("PutItem to searchable over %lu items at %.0f/s: p50 %.0f ms, p99 %.0f ms, max "
               "%.0f ms\n",
               n, rate, lat[n / 2] * 1000, lat[n * 99 / 100] * 1000, lat[n - 1] * 1000);
        return 0;
    }
    fprintf(stderr, "ddbload: bad arguments\n");
    return 64;
}
