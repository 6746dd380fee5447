/* corpus — a deterministic stream of DynamoDB Streams records for the
 * benchmarks: a social app's posts, ~2 KB each, as GetRecords `Records[]`
 * elements, one JSON object a line (the `--format stream` input of
 * `ddb2es replay`, and what bench/streamsd serves).
 *
 *   corpus N [SEED] > FILE
 *
 * 60 % INSERT / 30 % MODIFY / 10 % REMOVE on a NEW_AND_OLD_IMAGES stream
 * (table "posts", hash key author S, range key ts N).  A post holds strings,
 * a 30-38 digit number, string sets, a nested map with a list of maps, a
 * binary attribute, booleans and a null.  MODIFY and REMOVE act on a live
 * post chosen at random; sequence numbers grow by one, 1,000 records per
 * second of ApproximateCreationDateTime, written as the Streams API writes
 * it (Java's Double.toString: 1.73227E9, the GetRecords example's form).
 * The same N and SEED always give the same bytes.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_TIME 1732270000 /* 2024-11-22 */
#define NAUTHORS 5000

/* Whole seconds as Java's Double.toString writes them at or above 10^7:
 * the digits with trailing zeros dropped (one kept after the point), then
 * E and the exponent: 1732270000 -> 1.73227E9. */
static void java_seconds(uint64_t v, char *out, size_t size)
{
    char d[24];
    int n = snprintf(d, sizeof(d), "%" PRIu64, v), k = n;

    while (k > 2 && d[k - 1] == '0')
        k--;
    snprintf(out, size, "%c.%.*sE%d", d[0], k - 1, d + 1, n - 1);
}

struct post {
    unsigned author;
    uint64_t ts;
    unsigned version;
};

static uint64_t rng_state;

static uint64_t rnd(void) /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static const char *const words[] = {
    "the", "coffee", "morning", "river", "light", "city", "walk", "after", "rain", "quiet",
    "garden", "train", "window", "music", "friends", "weekend", "mountain", "sunset", "bread",
    "market", "bicycle", "ocean", "book", "winter", "summer", "évènement", "naïve", "café",
    "über", "日本", "straße", "with", "and", "a", "of", "to", "in", "we", "finally", "new",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static const char *const tags[] = { "travel", "food", "photo", "art", "music", "sport",
                                    "tech", "nature", "family", "books", "film", "code" };
#define NTAGS (sizeof(tags) / sizeof(tags[0]))

static void text(unsigned nwords)
{
    for (unsigned i = 0; i < nwords; i++) {
        fputs(i ? " " : "", stdout);
        fputs(words[below(NWORDS)], stdout);
        if (below(12) == 0)
            fputs(below(2) ? ", \\\"quoted\\\"" : ".\\n", stdout);
    }
}

static void digits(unsigned n)
{
    putchar((char)('1' + below(9)));
    for (unsigned i = 1; i < n; i++)
        putchar((char)('0' + below(10)));
}

static void base64(unsigned bytes)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned n = (bytes + 2) / 3 * 4, pad = (3 - bytes % 3) % 3;

    for (unsigned i = 0; i < n - pad; i++)
        putchar(b64[below(64)]);
    for (unsigned i = 0; i < pad; i++)
        putchar('=');
}

static void keys(const struct post *p)
{
    printf("{\"author\":{\"S\":\"user-%05u\"},\"ts\":{\"N\":\"%" PRIu64 "\"}}", p->author, p->ts);
}

/* The whole item: the key, then ~1.6 KB of post. */
static void image(const struct post *p)
{
    unsigned ntags = 1 + below(4), nmedia = 1 + below(3), ncomments = below(3);

    printf("{\"author\":{\"S\":\"user-%05u\"},\"ts\":{\"N\":\"%" PRIu64 "\"},", p->author, p->ts);
    printf("\"post_id\":{\"S\":\"p-%016" PRIx64 "\"},\"title\":{\"S\":\"", rnd());
    text(3 + below(6));
    fputs("\"},\"body\":{\"S\":\"", stdout);
    text(12 + below(24));
    printf("\"},\"lang\":{\"S\":\"%s\"},\"likes\":{\"N\":\"%u\"},", below(3) ? "en" : "fr",
           below(100000));
    fputs("\"score\":{\"N\":\"", stdout);
    digits(30 + below(9));
    fputs("\"},\"rank\":{\"N\":\"0.", stdout);
    digits(5 + below(30));
    printf("\"},\"edits\":{\"N\":\"%u\"},\"tags\":{\"SS\":[", p->version);
    for (unsigned i = 0, t = below(NTAGS); i < ntags; i++)
        printf("%s\"%s\"", i ? "," : "", tags[(t + i) % NTAGS]);
    fputs("]},\"media\":{\"L\":[", stdout);
    for (unsigned i = 0; i < nmedia; i++) {
        printf("%s{\"M\":{\"url\":{\"S\":\"https://cdn.example.com/m/%016" PRIx64
               ".jpg\"},\"width\":{\"N\":\"%u\"},\"height\":{\"N\":\"%u\"},\"alt\":{\"S\":\"",
               i ? "," : "", rnd(), 320 + below(3000), 240 + below(2000));
        text(2 + below(5));
        fputs("\"}}}", stdout);
    }
    printf("]},\"profile\":{\"M\":{\"name\":{\"S\":\"User %u\"},\"handle\":{\"S\":\"@u%u\"},"
           "\"followers\":{\"N\":\"%u\"},\"verified\":{\"BOOL\":%s},\"bio\":{\"S\":\"",
           p->author, p->author, below(1000000), below(5) ? "false" : "true");
    text(6 + below(10));
    printf("\"},\"location\":{\"M\":{\"lat\":{\"N\":\"%d.%06u\"},\"lon\":{\"N\":\"%d.%06u\"},"
           "\"place\":{\"S\":\"",
           (int)below(180) - 90, below(1000000), (int)below(360) - 180, below(1000000));
    text(1 + below(3));
    fputs("\"}}}}},\"reactions\":{\"M\":{", stdout);
    printf("\"like\":{\"N\":\"%u\"},\"love\":{\"N\":\"%u\"},\"laugh\":{\"N\":\"%u\"}}},",
           below(5000), below(500), below(200));
    fputs("\"comments\":{\"L\":[", stdout);
    for (unsigned i = 0; i < ncomments; i++) {
        printf("%s{\"M\":{\"by\":{\"S\":\"user-%05u\"},\"at\":{\"N\":\"%" PRIu64
               "\"},\"text\":{\"S\":\"",
               i ? "," : "", below(NAUTHORS), p->ts + below(100000));
        text(4 + below(12));
        fputs("\"}}}", stdout);
    }
    fputs("]},\"thumb\":{\"B\":\"", stdout);
    base64(120 + below(120));
    printf("\"},\"mentions\":{\"SS\":[\"@u%u\",\"@u%u\"]},\"pinned\":{\"BOOL\":%s},"
           "\"deleted_at\":{\"NULL\":true}}",
           below(NAUTHORS), NAUTHORS + below(NAUTHORS), below(10) ? "false" : "true");
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    struct post *live;
    size_t nlive = 0;

    if (argc < 2 || argc > 3 || n == 0) {
        fprintf(stderr, "usage: corpus N [SEED] > FILE\n");
        return 64;
    }
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ULL + 1 : 20261122;
    live = calloc(n, sizeof(*live));
    if (!live)
        return 70;
    for (unsigned long i = 0; i < n; i++) {
        unsigned r = below(10);
        const char *ev = nlive == 0 || r < 6 ? "INSERT" : r < 9 ? "MODIFY" : "REMOVE";
        uint64_t created = BASE_TIME + i / 1000;
        size_t k = nlive ? below((unsigned)nlive) : 0;
        struct post old, *p;
        char when[32];

        if (ev[0] == 'I') {
            p = &live[nlive++];
            p->author = below(NAUTHORS);
            p->ts = created * 1000 + i % 1000;
            p->version = 0;
        } else {
            p = &live[k];
        }
        old = *p;
        java_seconds(created, when, sizeof(when));
        printf("{\"eventID\":\"%016" PRIx64 "%016" PRIx64 "\",\"eventName\":\"%s\","
               "\"eventVersion\":\"1.1\",\"eventSource\":\"aws:dynamodb\","
               "\"awsRegion\":\"us-east-1\",\"dynamodb\":{\"ApproximateCreationDateTime\":%s"
               ",\"Keys\":",
               rnd(), rnd(), ev, when);
        keys(p);
        if (ev[0] == 'M')
            p->version++;
        if (ev[0] != 'R') {
            fputs(",\"NewImage\":", stdout);
            image(p);
        }
        if (ev[0] != 'I') {
            fputs(",\"OldImage\":", stdout);
            image(&old);
        }
        printf(",\"SequenceNumber\":\"1%020lu\",\"SizeBytes\":%u,"
               "\"StreamViewType\":\"NEW_AND_OLD_IMAGES\"}}\n",
               i + 1, 1500 + below(1000));
        if (ev[0] == 'R')
            live[k] = live[--nlive];
    }
    free(live);
    return fflush(stdout) == 0 ? 0 : 74;
}
