/* lastimages — the end of a benchmark run checked: the index the sink holds
 * equals the last images of the input, key by key.
 *
 *   lastimages expect -c CONF --table NAME --key HASH[,RANGE] FILE... > EXPECTED
 *   lastimages compare EXPECTED INDEX
 *
 * expect reads stream records as `ddb2es replay --format stream` does (a
 * record a line, a GetRecords reply or a Lambda event; plain or gzip; a
 * record's shard from its "shardId" or the value's) and writes, for every
 * document the input makes, its final state in the format of the search
 * double's GET /_double/digests (searchd --discard):
 *   {"index":"i","id":"d","version":7,"sha256":"<hex>"}   the last record's image
 *   {"index":"i","id":"d","version":9,"deleted":true}     the last record a REMOVE
 * A document's last record is its last in the input's order: the file's for
 * records without a shard, along its shard for the others.  Its version is
 * the one the design gives it (daemon/docver.h), counted along the record's
 * shard when the input names one (`run`: the stand-in's dump of its
 * shards), else along the document's own records (`replay --file` of a
 * file without shards); counted here with docver_next alone, not with the
 * daemon's bookkeeping around it (shard.c, replay_versions.c), so that a
 * slip there shows.  Its document is the table's transform
 * (indexer/transform.h, with the [table] rules of CONF): the SHA-256 is
 * taken of the very bytes ddb2es sends as the source.  So a pass proves
 * every key present with its last image, every removed key a tombstone, and
 * every version the one its last record is given; what is not under test is
 * the transform itself (its own suite).  A record the transform refuses is
 * dead-lettered by the daemon and leaves its document as it was; a record
 * without a new image (KEYS_ONLY streams) would make the daemon read the
 * table, which the input does not tell: expect fails on it (exit 65).
 *
 * compare reads the two files (any order) and prints
 *   index = last images: ok (N docs, M deleted)
 * or, exit 1, what differs, with a few ids of each kind.  The canary the
 * target probe writes and deletes (TARGET_CANARY_ID) may be in the index as
 * a tombstone; it is not counted.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "config/config.h"
#include "daemon/clients.h"
#include "daemon/docver.h"
#include "daemon/encstats.h"
#include "indexer/source.h"
#include "indexer/target.h"
#include "indexer/transform.h"

#define EXAMPLES 5           /* ids shown for each kind of difference */
#define DOC_MAX (16u << 20)  /* one document, as the daemon bounds it (shard.c, replay.c) */

/* ---- documents by index and id ----------------------------------------- */

/* One document: what the input makes of it (expect), or what one of the
 * two files says (compare). */
struct ent {
    char *key;           /* index, NUL, id (the id may hold NUL) */
    size_t klen, ilen;   /* key bytes; the index's (without its NUL) */
    uint64_t hash;
    struct docver ver;   /* expect: the version state of its own records */
    uint64_t version;
    bool deleted, known; /* known: a record made it (expect), the index lists it (compare) */
    bool matched;        /* compare: the other file lists it too */
    unsigned char sha[32];
};

struct table {
    struct ent **slots;
    size_t cap, len;
};

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

static void oom(void)
{
    fprintf(stderr, "lastimages: out of memory\n");
    exit(70);
}

static struct ent **slot(const struct table *t, const char *key, size_t klen, uint64_t h)
{
    size_t i = h & (t->cap - 1);

    while (t->slots[i] && !(t->slots[i]->hash == h && t->slots[i]->klen == klen &&
                            memcmp(t->slots[i]->key, key, klen) == 0))
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

/* The entry of (index, id), made when absent. */
static struct ent *ent_of(struct table *t, const char *index, size_t ilen, const char *id,
                          size_t idlen)
{
    size_t klen = ilen + 1 + idlen;
    char *key = malloc(klen);
    uint64_t h;
    struct ent **s, *e;

    if (!key)
        oom();
    memcpy(key, index, ilen);
    key[ilen] = '\0';
    memcpy(key + ilen + 1, id, idlen);
    h = fnv(key, klen);
    if ((t->len + 1) * 4 > t->cap * 3) {
        struct table n = { calloc(t->cap ? 2 * t->cap : 1024, sizeof(*n.slots)),
                           t->cap ? 2 * t->cap : 1024, t->len };

        if (!n.slots)
            oom();
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i])
                *slot(&n, t->slots[i]->key, t->slots[i]->klen, t->slots[i]->hash) = t->slots[i];
        free(t->slots);
        *t = n;
    }
    s = slot(t, key, klen, h);
    if (*s) {
        free(key);
        return *s;
    }
    if (!(e = calloc(1, sizeof(*e))))
        oom();
    e->key = key;
    e->klen = klen;
    e->ilen = ilen;
    e->hash = h;
    t->len++;
    return *s = e;
}

static const char *ent_id(const struct ent *e, size_t *len)
{
    *len = e->klen - e->ilen - 1;
    return e->key + e->ilen + 1;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct ent *x = *(const struct ent *const *)a, *y = *(const struct ent *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);

    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) {
            free(t->slots[i]->key);
            free(t->slots[i]);
        }
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ---- expect --------------------------------------------------------------- */

/* The version state along one shard the input names (a child starts where
 * its parent stands when the parent came first, as the daemon carries it). */
struct lineage {
    struct lineage *next;
    struct docver ver;
    char id[];
};

struct expect {
    struct transform_cfg tf;
    struct table docs;
    struct lineage *shards;
    struct doc d;
    struct buf err;
    EVP_MD *sha256;
    const char *file;
    unsigned long records, skipped, refused, need_item, not_newer;
};

static struct docver *shard_ver(struct expect *x, const char *shard, const char *parent)
{
    struct lineage *l;

    for (l = x->shards; l; l = l->next)
        if (strcmp(l->id, shard) == 0)
            return &l->ver;
    if (!(l = calloc(1, sizeof(*l) + strlen(shard) + 1)))
        oom();
    strcpy(l->id, shard);
    for (struct lineage *p = x->shards; parent && p; p = p->next)
        if (strcmp(p->id, parent) == 0)
            l->ver = p->ver;
    l->next = x->shards;
    x->shards = l;
    return &l->ver;
}

/* One record, in the input's order (a source_record_cb). */
static void take_record(void *arg, json_t *rec, unsigned long line, const char *shard,
                        const char *parent)
{
    struct expect *x = arg;
    enum transform_result tr;
    struct docver fresh = { 0, 0 }, *st;
    struct ent *e = NULL;
    uint64_t v;

    x->records++;
    buf_reset(&x->err);
    x->d.id_len = 0; /* a record refused before its key has none */
    x->d.created = 0;
    tr = transform_record(&x->tf, rec, &x->d, &x->err);
    if (x->d.id_len)
        e = ent_of(&x->docs, x->d.index, strlen(x->d.index), x->d.id, x->d.id_len);
    /* Every record counts in its second, sent or not, as in the daemon. */
    st = shard ? shard_ver(x, shard, parent) : e ? &e->ver : &fresh;
    v = docver_next(st, x->d.created);
    switch (tr) {
    case TR_DOC:
        if (!e)
            break;
        if (e->known && v <= e->version && x->not_newer++ < EXAMPLES)
            fprintf(stderr, "lastimages: %s:%lu: version %" PRIu64 " is not above the %" PRIu64
                    " of an earlier record of its document: the engine keeps the earlier one\n",
                    x->file, line, v, e->version);
        e->known = true;
        e->version = v;
        e->deleted = x->d.op == DOC_DELETE;
        if (!e->deleted && !EVP_Digest(x->d.source.ptr, x->d.source.len, e->sha, NULL,
                                       x->sha256, NULL))
            oom();
        break;
    case TR_SKIP:
        x->skipped++;
        break;
    case TR_NEED_ITEM:
        if (x->need_item++ < EXAMPLES)
            fprintf(stderr, "lastimages: %s:%lu: no new image: the daemon would read the item "
                    "from the table, which the input does not tell\n", x->file, line);
        break;
    case TR_ERROR:
    default:
        x->refused++; /* dead-lettered: its document stays as it was */
        break;
    }
}

static int read_input(struct expect *x, const char *path)
{
    struct source_files f;
    char *line, why[768];
    size_t len;
    int rc;

    source_files_init(&f);
    x->file = path;
    rc = source_files_resolve(&f, path, false, 1);
    while (rc >= 0 && (rc = source_next_line(&f, &line, &len)) > 0) {
        json_error_t jerr;
        json_t *v = len ? jsonx_loadb(line, len, 0, &jerr) : NULL;

        if (!len)
            continue;
        if (!v) {
            fprintf(stderr, "lastimages: %s:%lu: not JSON: %s\n", path, f.lineno, jerr.text);
            rc = -EBADMSG;
            break;
        }
        if (source_stream_value(v, f.lineno, take_record, x, why, sizeof(why)) < 0) {
            fprintf(stderr, "lastimages: %s:%lu: %s\n", path, f.lineno, why);
            rc = -EBADMSG;
        }
        json_decref(v);
    }
    if (rc < 0 && f.why[0])
        fprintf(stderr, "lastimages: %s: %s\n", path, f.why);
    else if (rc < 0 && rc != -EBADMSG)
        fprintf(stderr, "lastimages: %s: %s\n", path, strerror(-rc));
    source_files_close(&f);
    return rc;
}

static void put_hex(struct buf *b, const unsigned char *p, size_t n)
{
    static const char hexd[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        buf_putc(b, hexd[p[i] >> 4]);
        buf_putc(b, hexd[p[i] & 15]);
    }
}

/* The documents, sorted by index and id, as GET /_double/digests lists them. */
static int write_expected(struct table *t)
{
    struct ent **v = malloc((t->len + 1) * sizeof(*v));
    struct buf b;
    size_t n = 0;

    if (!v)
        oom();
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i] && t->slots[i]->known)
            v[n++] = t->slots[i];
    qsort(v, n, sizeof(*v), cmp_ent);
    buf_init(&b, BUF_NOMAX);
    for (size_t i = 0; i < n; i++) {
        size_t idlen;
        const char *id = ent_id(v[i], &idlen);

        buf_puts(&b, "{\"index\":");
        jsonx_put_string(&b, v[i]->key, v[i]->ilen);
        buf_puts(&b, ",\"id\":");
        jsonx_put_string(&b, id, idlen);
        buf_printf(&b, ",\"version\":%" PRIu64, v[i]->version);
        if (v[i]->deleted) {
            buf_puts(&b, ",\"deleted\":true}\n");
        } else {
            buf_puts(&b, ",\"sha256\":\"");
            put_hex(&b, v[i]->sha, sizeof(v[i]->sha));
            buf_puts(&b, "\"}\n");
        }
        if (b.len >= (1u << 20) || i + 1 == n) {
            if (!b.ptr || fwrite(b.ptr, 1, b.len, stdout) != b.len)
                break;
            buf_reset(&b);
        }
    }
    buf_close(&b);
    free(v);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -EIO;
}

static int usage(void)
{
    fprintf(stderr, "usage: lastimages expect -c CONF --table NAME --key HASH[,RANGE] FILE...\n"
                    "       lastimages compare EXPECTED INDEX\n");
    return 64;
}

static int expect_main(int argc, char **argv)
{
    static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
                                          { "table", required_argument, NULL, 't' },
                                          { "key", required_argument, NULL, 'k' },
                                          { NULL, 0, NULL, 0 } };
    const char *conf = NULL, *table = NULL, *keys = NULL;
    struct config cfg;
    const struct config_table *t;
    struct expect x = { 0 };
    unsigned char *hmac = NULL;
    char err[512], *hash = NULL, *range = NULL;
    int o, rc = 0;

    while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': conf = optarg; break;
        case 't': table = optarg; break;
        case 'k': keys = optarg; break;
        default:  return usage();
        }
    }
    if (!conf || !table || !keys || optind >= argc)
        return usage();
    if (config_load(conf, &cfg, err, sizeof(err)) != 0 ||
        config_read_secrets(&cfg, table, err, sizeof(err)) != 0) {
        fprintf(stderr, "lastimages: %s\n", err);
        config_free(&cfg);
        return 78;
    }
    if (!(t = config_table_find(&cfg, table)) ||
        clients_transform_cfg(t, &x.tf, &hmac, err, sizeof(err)) != 0) {
        fprintf(stderr, "lastimages: [table %s]: %s\n", table, t ? err : "not in the configuration");
        config_free(&cfg);
        return 78;
    }
    /* The key schema, as `replay --key` takes it (the stand-in's
     * DescribeTable gives `run` the same). */
    hash = strdup(keys);
    if (!hash)
        oom();
    if ((range = strchr(hash, ',')))
        *range++ = '\0';
    x.tf.hash_key = hash;
    x.tf.range_key = range && *range ? range : NULL;
    buf_init(&x.d.source, DOC_MAX);
    buf_init(&x.d.keys, DOC_MAX);
    buf_init(&x.err, 4096);
    if (!(x.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)))
        oom();
    for (int i = optind; i < argc && rc == 0; i++)
        rc = read_input(&x, argv[i]) < 0 ? 65 : 0;
    if (rc == 0 && x.need_item) {
        fprintf(stderr, "lastimages: %lu records without a new image: cannot say what the "
                "index holds\n", x.need_item);
        rc = 65;
    }
    if (rc == 0 && write_expected(&x.docs) < 0) {
        fprintf(stderr, "lastimages: cannot write the expected state\n");
        rc = 74;
    }
    if (rc == 0)
        fprintf(stderr, "lastimages: %lu records, %zu documents; %lu skipped (TTL kept), %lu "
                "refused by the transform, %lu not newer than the record before\n",
                x.records, x.docs.len, x.skipped, x.refused, x.not_newer);
    while (x.shards) {
        struct lineage *l = x.shards;

        x.shards = l->next;
        free(l);
    }
    table_free(&x.docs);
    buf_close(&x.d.source);
    buf_close(&x.d.keys);
    buf_close(&x.err);
    EVP_MD_free(x.sha256);
    free(hash);
    clients_tf_key_free(hmac, x.tf.hmac_key_len);
    encstats_free_all();
    config_free(&cfg);
    return rc;
}

/* ---- compare ------------------------------------------------------------ */

enum diff { D_MISSING, D_EXTRA, D_VERSION, D_SOURCE, D_NOT_DELETED, D_DELETED, D_N };

static const char *const diff_name[D_N] = {
    [D_MISSING] = "missing from the index",
    [D_EXTRA] = "in the index, not in the input",
    [D_VERSION] = "with another version",
    [D_SOURCE] = "with another source",
    [D_NOT_DELETED] = "removed in the input, live in the index",
    [D_DELETED] = "live in the input, deleted in the index",
};

struct compare {
    struct table exp, idx; /* the input's documents; the index's */
    unsigned long n[D_N];
    unsigned long docs, deleted, canary;
};

static void differs(struct compare *c, enum diff d, const struct ent *e, const char *how)
{
    size_t idlen;
    const char *id = ent_id(e, &idlen);

    if (c->n[d]++ < EXAMPLES)
        printf("  %s: %.*s/%.*s%s%s\n", diff_name[d], (int)e->ilen, e->key, (int)idlen, id,
               how ? ": " : "", how ? how : "");
}

/* One line of either file into e (made in t); 0 or -EBADMSG. */
static int read_state(struct table *t, const char *line, size_t len, struct ent **out)
{
    json_error_t jerr;
    json_t *v = jsonx_loadb(line, len, 0, &jerr);
    json_t *index = json_object_get(v, "index"), *id = json_object_get(v, "id");
    json_t *ver = json_object_get(v, "version"), *sha = json_object_get(v, "sha256");
    struct ent *e;
    int rc = -EBADMSG;

    if (!json_is_string(index) || !json_is_string(id) || !json_is_integer(ver))
        goto out;
    e = ent_of(t, json_string_value(index), json_string_length(index), json_string_value(id),
               json_string_length(id));
    e->version = (uint64_t)json_integer_value(ver);
    e->deleted = json_is_true(json_object_get(v, "deleted"));
    if (!e->deleted) {
        const char *h = json_string_value(sha);

        if (!h || json_string_length(sha) != 64)
            goto out;
        for (size_t i = 0; i < 32; i++)
            if (sscanf(h + 2 * i, "%2hhx", &e->sha[i]) != 1)
                goto out;
    }
    e->known = true;
    *out = e;
    rc = 0;
out:
    json_decref(v);
    return rc;
}

/* Calls each(c, e) for each line of path read into t. */
static int read_states(struct compare *c, struct table *t, const char *path,
                       void (*each)(struct compare *c, struct ent *e))
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    ssize_t len;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "lastimages: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    while ((len = getline(&line, &cap, f)) > 0) {
        struct ent *e;

        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        if (read_state(t, line, (size_t)len, &e) < 0) {
            fprintf(stderr, "lastimages: %s:%lu: not a document's state\n", path, lineno);
            rc = -EBADMSG;
            break;
        }
        if (each)
            each(c, e);
    }
    free(line);
    fclose(f);
    return rc;
}

/* One document of the index against the input's. */
static void check_one(struct compare *c, struct ent *got)
{
    size_t idlen;
    const char *id = ent_id(got, &idlen);
    struct ent *want = ent_of(&c->exp, got->key, got->ilen, id, idlen);
    char how[96];

    if (!want->known) {
        want->matched = true; /* not reported again as missing */
        if (got->deleted && idlen == strlen(TARGET_CANARY_ID) &&
            memcmp(id, TARGET_CANARY_ID, idlen) == 0)
            c->canary++;
        else
            differs(c, D_EXTRA, got, got->deleted ? "a tombstone" : NULL);
        return;
    }
    want->matched = true;
    if (want->deleted != got->deleted) {
        differs(c, want->deleted ? D_NOT_DELETED : D_DELETED, got, NULL);
        return;
    }
    if (want->version != got->version) {
        snprintf(how, sizeof(how), "%" PRIu64 ", the input's last record %" PRIu64, got->version,
                 want->version);
        differs(c, D_VERSION, got, how);
        return;
    }
    if (!want->deleted && memcmp(want->sha, got->sha, sizeof(want->sha)) != 0) {
        differs(c, D_SOURCE, got, "not the last image's document");
        return;
    }
    if (want->deleted)
        c->deleted++;
    else
        c->docs++;
}

static int compare_main(int argc, char **argv)
{
    struct compare c = { 0 };
    unsigned long bad = 0;
    int rc;

    if (argc != 3)
        return usage();
    printf("index = last images: checking %s against %s\n", argv[2], argv[1]);
    if ((rc = read_states(&c, &c.exp, argv[1], NULL)) < 0 ||
        (rc = read_states(&c, &c.idx, argv[2], check_one)) < 0) {
        table_free(&c.exp);
        table_free(&c.idx);
        return 65;
    }
    for (size_t i = 0; i < c.exp.cap; i++) {
        struct ent *e = c.exp.slots[i];

        if (e && e->known && !e->matched)
            differs(&c, D_MISSING, e, e->deleted ? "its tombstone" : NULL);
    }
    for (int d = 0; d < D_N; d++)
        bad += c.n[d];
    if (!bad) {
        printf("index = last images: ok (%lu docs, %lu deleted)\n", c.docs, c.deleted);
    } else {
        printf("index = last images: FAILED:");
        for (int d = 0; d < D_N; d++)
            if (c.n[d])
                printf(" %lu %s;", c.n[d], diff_name[d]);
        printf(" (%lu docs and %lu deleted as expected)\n", c.docs, c.deleted);
    }
    table_free(&c.exp);
    table_free(&c.idx);
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "expect") == 0)
        return expect_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "compare") == 0)
        return compare_main(argc - 1, argv + 1);
    return usage();
}
