#include "daemon/ckpt.h"
#include "base/rfc3339.h"
#include "base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define FILE_MAX (256u << 20) /* a checkpoint file larger than this is not ours */
#define ID_MAX 1024           /* ARNs are <= 1024 bytes, shard ids <= 65 */


struct stream {
    char *arn, *table;
    struct ckpt_shard **shards; /* insertion order */
    size_t n, cap;
};

struct waiter {
    ckpt_saved_cb *cb;
    void *arg;
};

struct save_job {
    uv_work_t work;
    struct ckpt *ck;
    char *data; /* the serialised store, owned */
    size_t len;
    int status; /* set by the pool thread */
    struct waiter *w;
    size_t nw;
};

struct ckpt {
    char *dir, *path, *tmp;
    struct stream **streams;
    size_t nstreams, capstreams;
    struct ckpt_shard **tab; /* open addressing on (arn, id); power-of-two size */
    size_t tabcap, count;
    bool dirty;
    struct save_job *job; /* the write in flight */
    struct uv_loop_s *loop;
    struct waiter *pend; /* requests coalesced into the next write */
    size_t npend, cappend;
    bool pending;
};

/* ---- versions ----------------------------------------------------------- */

uint64_t ckpt_next_version(struct ckpt_version *st, int64_t created)
{
    if (created < 0)
        created = 0;
    if (created > CKPT_SECOND_MAX)
        created = CKPT_SECOND_MAX;
    if (created > st->second) {
        st->second = created;
        st->ordinal = 0;
    } else if (st->ordinal < CKPT_ORDINAL_MAX) {
        st->ordinal++;
    } else if (st->second < CKPT_SECOND_MAX) {
        st->second++; /* borrow the next second, see ckpt.h */
        st->ordinal = 0;
    } /* else: saturated at the bound; unreachable for real clocks */
    return ((uint64_t)st->second << CKPT_ORDINAL_BITS) | st->ordinal;
}

#define SEEN_KEEP (60 * 60) /* a done shard listed this recently is not pruned */

static int ver_cmp(const struct ckpt_version *a, const struct ckpt_version *b)
{
    if (a->second != b->second)
        return a->second < b->second ? -1 : 1;
    return (a->ordinal > b->ordinal) - (a->ordinal < b->ordinal);
}

/* ---- store -------------------------------------------------------------- */

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);

    if (s) {
        memcpy(s, a, la);
        s[la] = '/';
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

struct ckpt *ckpt_new(const char *state_dir)
{
    struct ckpt *ck = calloc(1, sizeof(*ck));

    if (!ck)
        return NULL;
    ck->dir = strdup(state_dir);
    ck->path = join(state_dir, CKPT_FILE);
    ck->tmp = join(state_dir, CKPT_FILE ".tmp");
    if (!ck->dir || !ck->path || !ck->tmp) {
        ckpt_free(ck);
        return NULL;
    }
    return ck;
}

static void clear(struct ckpt *ck)
{
    for (size_t i = 0; i < ck->nstreams; i++) {
        struct stream *st = ck->streams[i];

        for (size_t j = 0; j < st->n; j++)
            free(st->shards[j]);
        free(st->shards);
        free(st->arn);
        free(st->table);
        free(st);
    }
    free(ck->streams);
    free(ck->tab);
    ck->streams = NULL;
    ck->tab = NULL;
    ck->nstreams = ck->capstreams = ck->tabcap = ck->count = 0;
}

void ckpt_free(struct ckpt *ck)
{
    if (!ck)
        return;
    clear(ck);
    free(ck->pend);
    free(ck->dir);
    free(ck->path);
    free(ck->tmp);
    free(ck);
}

const char *ckpt_path(const struct ckpt *ck)
{
    return ck->path;
}

bool ckpt_dirty(const struct ckpt *ck)
{
    return ck->dirty;
}

bool ckpt_busy(const struct ckpt *ck)
{
    return ck->job != NULL;
}

size_t ckpt_count(const struct ckpt *ck)
{
    return ck->count;
}

static uint64_t key_hash(const char *arn, const char *id)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a */

    for (; *arn; arn++)
        h = (h ^ (unsigned char)*arn) * 1099511628211u;
    h = (h ^ 0xff) * 1099511628211u; /* separator: no ARN or id holds 0xff */
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return h;
}

/* The slot holding (arn, id), or the empty slot where it would go. */
static size_t tab_slot(const struct ckpt *ck, const char *arn, const char *id)
{
    size_t mask = ck->tabcap - 1, i = key_hash(arn, id) & mask;

    while (ck->tab[i] && (strcmp(ck->tab[i]->id, id) != 0 || strcmp(ck->tab[i]->arn, arn) != 0))
        i = (i + 1) & mask;
    return i;
}

/* Rebuilds the table with room for want entries at load <= 1/2. */
static int tab_rebuild(struct ckpt *ck, size_t want)
{
    size_t cap = 16;
    struct ckpt_shard **old = ck->tab;

    while (cap < want * 2)
        cap *= 2;
    ck->tab = calloc(cap, sizeof(*ck->tab));
    if (!ck->tab) {
        ck->tab = old;
        return -ENOMEM;
    }
    ck->tabcap = cap;
    free(old);
    for (size_t i = 0; i < ck->nstreams; i++)
        for (size_t j = 0; j < ck->streams[i]->n; j++) {
            struct ckpt_shard *sh = ck->streams[i]->shards[j];

            ck->tab[tab_slot(ck, sh->arn, sh->id)] = sh;
        }
    return 0;
}

struct ckpt_shard *ckpt_shard_get(struct ckpt *ck, const char *arn, const char *shard_id)
{
    if (!ck->tabcap)
        return NULL;
    return ck->tab[tab_slot(ck, arn, shard_id)];
}

static struct stream *stream_get(struct ckpt *ck, const char *arn, const char *table)
{
    struct stream *st;

    for (size_t i = 0; i < ck->nstreams; i++)
        if (strcmp(ck->streams[i]->arn, arn) == 0)
            return ck->streams[i];
    if (ck->nstreams == ck->capstreams) {
        size_t cap = ck->capstreams ? ck->capstreams * 2 : 4;
        struct stream **p = realloc(ck->streams, cap * sizeof(*p));

        if (!p)
            return NULL;
        ck->streams = p;
        ck->capstreams = cap;
    }
    st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->arn = strdup(arn);
    st->table = strdup(table);
    if (!st->arn || !st->table) {
        free(st->arn);
        free(st->table);
        free(st);
        return NULL;
    }
    ck->streams[ck->nstreams++] = st;
    return st;
}

struct ckpt_shard *ckpt_shard_add(struct ckpt *ck, const char *table, const char *arn,
                                  const char *shard_id, const char *parent, time_t now)
{
    struct ckpt_shard *sh;
    struct stream *st;
    size_t lid, lpar = parent ? strlen(parent) : 0;
    char *p;

    if (!*table || !*arn || !*shard_id || (parent && !*parent))
        return NULL;
    if ((sh = ckpt_shard_get(ck, arn, shard_id)))
        return sh;
    if ((ck->count + 1) * 2 > ck->tabcap && tab_rebuild(ck, ck->count + 1) < 0)
        return NULL;
    if (!(st = stream_get(ck, arn, table)))
        return NULL;
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4;
        struct ckpt_shard **a = realloc(st->shards, cap * sizeof(*a));

        if (!a)
            return NULL;
        st->shards = a;
        st->cap = cap;
    }
    /* One allocation: the struct, then the id, then the parent id. */
    lid = strlen(shard_id);
    sh = calloc(1, sizeof(*sh) + lid + 1 + (parent ? lpar + 1 : 0));
    if (!sh)
        return NULL;
    p = (char *)(sh + 1);
    memcpy(p, shard_id, lid + 1);
    sh->id = p;
    if (parent) {
        memcpy(p + lid + 1, parent, lpar + 1);
        sh->parent = p + lid + 1;
    }
    sh->arn = st->arn;
    sh->table = st->table;
    sh->updated = now;
    st->shards[st->n++] = sh;
    ck->tab[tab_slot(ck, arn, shard_id)] = sh;
    ck->count++;
    ck->dirty = true;
    return sh;
}

int ckpt_shard_advance(struct ckpt *ck, struct ckpt_shard *sh, const char *seq,
                       const struct ckpt_version *ver, time_t now)
{
    if (!seqnum_valid(seq) || (sh->seq[0] && seqnum_cmp(seq, sh->seq) < 0))
        return -EINVAL;
    strcpy(sh->seq, seq); /* fits: seqnum_valid bounds it */
    sh->ver = *ver;
    sh->updated = now;
    ck->dirty = true;
    return 0;
}

void ckpt_shard_finish(struct ckpt *ck, struct ckpt_shard *sh, time_t now)
{
    sh->done = true;
    sh->updated = now;
    ck->dirty = true;
}

struct ckpt_version ckpt_shard_resume_version(struct ckpt *ck, struct ckpt_shard *sh)
{
    struct ckpt_shard *par;

    if (sh->seq[0] || !sh->parent || !(par = ckpt_shard_get(ck, sh->arn, sh->parent)))
        return sh->ver;
    if (ver_cmp(&par->ver, &sh->ver) > 0) {
        sh->ver = par->ver;
        ck->dirty = true;
    }
    return sh->ver;
}

void ckpt_shard_seen(struct ckpt_shard *sh, time_t now)
{
    sh->seen = now;
}

void ckpt_shard_skip_before(struct ckpt *ck, struct ckpt_shard *sh, int64_t second)
{
    if (sh->skip_before != second) {
        sh->skip_before = second;
        ck->dirty = true;
    }
}

bool ckpt_table_known(const struct ckpt *ck, const char *table)
{
    for (size_t i = 0; i < ck->nstreams; i++)
        if (strcmp(ck->streams[i]->table, table) == 0 && ck->streams[i]->n)
            return true;
    return false;
}

struct ckpt_version ckpt_table_max_version(const struct ckpt *ck, const char *table)
{
    struct ckpt_version max = { 0, 0 };

    for (size_t i = 0; i < ck->nstreams; i++) {
        const struct stream *st = ck->streams[i];

        if (strcmp(st->table, table) != 0)
            continue;
        for (size_t j = 0; j < st->n; j++)
            if (ver_cmp(&st->shards[j]->ver, &max) > 0)
                max = st->shards[j]->ver;
    }
    return max;
}

void ckpt_shard_raise_version(struct ckpt *ck, struct ckpt_shard *sh,
                              const struct ckpt_version *ver)
{
    if (ver_cmp(ver, &sh->ver) > 0) {
        sh->ver = *ver;
        ck->dirty = true;
    }
}

int ckpt_foreach(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                 void *arg)
{
    int rc;

    for (size_t i = 0; i < ck->nstreams; i++)
        for (size_t j = 0; j < ck->streams[i]->n; j++)
            if ((rc = fn(ck->streams[i]->shards[j], arg)) != 0)
                return rc;
    return 0;
}

size_t ckpt_prune(struct ckpt *ck, time_t now)
{
    size_t dropped = 0, ns = 0;

    for (size_t i = 0; i < ck->nstreams; i++) {
        struct stream *st = ck->streams[i];
        size_t n = 0;

        for (size_t j = 0; j < st->n; j++) {
            struct ckpt_shard *sh = st->shards[j];

            if (sh->done && now - sh->updated > CKPT_PRUNE_AGE &&
                !(sh->seen && now - sh->seen < SEEN_KEEP)) {
                free(sh);
                dropped++;
            } else {
                st->shards[n++] = sh;
            }
        }
        st->n = n;
        if (n) {
            ck->streams[ns++] = st;
        } else {
            free(st->shards);
            free(st->arn);
            free(st->table);
            free(st);
        }
    }
    ck->nstreams = ns;
    ck->count -= dropped;
    if (dropped) {
        ck->dirty = true;
        /* Removal from open addressing: rebuild in place (same size, cannot
         * fail for lack of memory if we reuse the array). */
        memset(ck->tab, 0, ck->tabcap * sizeof(*ck->tab));
        for (size_t i = 0; i < ck->nstreams; i++)
            for (size_t j = 0; j < ck->streams[i]->n; j++) {
                struct ckpt_shard *sh = ck->streams[i]->shards[j];

                ck->tab[tab_slot(ck, sh->arn, sh->id)] = sh;
            }
    }
    return dropped;
}

/* ---- load ---------------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errlen) {
        n = snprintf(err, errlen, "%s: ", path);
        if (n >= 0 && (size_t)n < errlen) {
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EBADMSG;
}

static int shard_fail(char *err, size_t errlen, const char *path, const char *arn,
                      const char *id, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int shard_fail(char *err, size_t errlen, const char *path, const char *arn,
                      const char *id, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (errlen) {
        n = snprintf(err, errlen, "%s: streams[\"%s\"].shards[\"%s\"]: ", path, arn, id);
        if (n >= 0 && (size_t)n < errlen) {
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EBADMSG;
}

/* Strict RFC 3339 in UTC as rfc3339_format writes it: the text must come
 * back identical from the parsed value. */
static int parse_time(const char *s, time_t *out)
{
    char again[RFC3339_LEN + 1];
    time_t t;

    if (rfc3339_parse(s, &t) < 0)
        return -1;
    rfc3339_format(t, again);
    if (strcmp(again, s) != 0)
        return -1;
    *out = t;
    return 0;
}

static const char *const shard_keys[] = { "seq",  "ver_s",   "ver_n",      "parent",
                                          "done", "updated", "skip_before" };

static int load_shard(struct ckpt *ck, const char *table, const char *arn, const char *id,
                      json_t *o, int format, char *err, size_t errlen)
{
    const char *path = ck->path, *key;
    json_t *seq, *vs, *vn, *par, *done, *upd, *skip, *v;
    struct ckpt_shard *sh;
    time_t updated;

#define FAIL(...) shard_fail(err, errlen, path, arn, id, __VA_ARGS__)
    if (!json_is_object(o))
        return FAIL("not an object");
    if (strlen(id) > ID_MAX || !*id)
        return FAIL("bad shard id");
    json_object_foreach(o, key, v)
    {
        size_t i = 0;

        while (i < sizeof(shard_keys) / sizeof(*shard_keys) && strcmp(shard_keys[i], key) != 0)
            i++;
        if (i == sizeof(shard_keys) / sizeof(*shard_keys) ||
            (format < 2 && strcmp(key, "skip_before") == 0))
            return FAIL("unknown key \"%s\"", key);
    }
    seq = json_object_get(o, "seq");
    vs = json_object_get(o, "ver_s");
    vn = json_object_get(o, "ver_n");
    par = json_object_get(o, "parent");
    done = json_object_get(o, "done");
    upd = json_object_get(o, "updated");
    skip = json_object_get(o, "skip_before");
    if (skip && (!json_is_integer(skip) || json_integer_value(skip) < 0 ||
                 json_integer_value(skip) > CKPT_SECOND_MAX))
        return FAIL("skip_before: not an integer in 0..%lld", (long long)CKPT_SECOND_MAX);
    if (!seq || !(json_is_null(seq) || json_is_string(seq)))
        return FAIL("seq: missing or not a string or null");
    if (json_is_string(seq) && !seqnum_valid(json_string_value(seq)))
        return FAIL("seq: not a sequence number (21-40 digits)");
    if (!json_is_integer(vs) || json_integer_value(vs) < 0 ||
        json_integer_value(vs) > CKPT_SECOND_MAX)
        return FAIL("ver_s: missing or not an integer in 0..%lld", (long long)CKPT_SECOND_MAX);
    if (!json_is_integer(vn) || json_integer_value(vn) < 0 ||
        json_integer_value(vn) > (json_int_t)CKPT_ORDINAL_MAX)
        return FAIL("ver_n: missing or not an integer in 0..%u", (unsigned)CKPT_ORDINAL_MAX);
    if (!par || !(json_is_null(par) || json_is_string(par)))
        return FAIL("parent: missing or not a string or null");
    if (json_is_string(par) &&
        (!*json_string_value(par) || strlen(json_string_value(par)) > ID_MAX))
        return FAIL("parent: bad shard id");
    if (!json_is_boolean(done))
        return FAIL("done: missing or not a boolean");
    if (!json_is_string(upd) || parse_time(json_string_value(upd), &updated) < 0)
        return FAIL("updated: missing or not a time like 2024-05-01T12:00:00Z");
    sh = ckpt_shard_add(ck, table, arn, id, json_string_value(par), updated);
    if (!sh)
        return -ENOMEM;
    if (json_is_string(seq))
        strcpy(sh->seq, json_string_value(seq));
    sh->ver.second = json_integer_value(vs);
    sh->ver.ordinal = (uint32_t)json_integer_value(vn);
    sh->done = json_is_true(done);
    sh->skip_before = skip ? (int64_t)json_integer_value(skip) : 0;
    return 0;
#undef FAIL
}

static int load_root(struct ckpt *ck, json_t *root, char *err, size_t errlen)
{
    const char *path = ck->path, *key, *arn, *id;
    json_t *ver, *streams, *so, *v;
    int rc;

    if (!json_is_object(root))
        return fail(err, errlen, path, "not a JSON object");
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "version") != 0 && strcmp(key, "streams") != 0)
            return fail(err, errlen, path, "unknown key \"%s\"", key);
    }
    ver = json_object_get(root, "version");
    if (!json_is_integer(ver))
        return fail(err, errlen, path, "version: missing or not an integer");
    if (json_integer_value(ver) < 1 || json_integer_value(ver) > CKPT_FORMAT_VERSION_MAX)
        return fail(err, errlen, path, "version %lld is not supported (this ddb2es reads 1 to %d)",
                    (long long)json_integer_value(ver), CKPT_FORMAT_VERSION_MAX);
    streams = json_object_get(root, "streams");
    if (!json_is_object(streams))
        return fail(err, errlen, path, "streams: missing or not an object");
    json_object_foreach(streams, arn, so)
    {
        json_t *table, *shards, *sho;

        if (!json_is_object(so))
            return fail(err, errlen, path, "streams[\"%s\"]: not an object", arn);
        if (!*arn || strlen(arn) > ID_MAX)
            return fail(err, errlen, path, "streams: bad stream ARN \"%.64s\"", arn);
        json_object_foreach(so, key, v)
        {
            if (strcmp(key, "table") != 0 && strcmp(key, "shards") != 0)
                return fail(err, errlen, path, "streams[\"%s\"]: unknown key \"%s\"", arn, key);
        }
        table = json_object_get(so, "table");
        shards = json_object_get(so, "shards");
        if (!json_is_string(table) || !*json_string_value(table))
            return fail(err, errlen, path, "streams[\"%s\"].table: missing or not a name", arn);
        if (!json_is_object(shards))
            return fail(err, errlen, path, "streams[\"%s\"].shards: missing or not an object",
                        arn);
        json_object_foreach(shards, id, sho)
        {
            rc = load_shard(ck, json_string_value(table), arn, id, sho,
                            (int)json_integer_value(ver), err, errlen);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Reads the whole file; *data is NUL-terminated.  -ENOENT when missing. */
static int read_all(const char *path, char **data, size_t *len)
{
    struct stat stb;
    size_t n = 0;
    char *p = NULL;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &stb) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(stb.st_mode)) {
        rc = -EINVAL;
        goto out;
    }
    if ((uintmax_t)stb.st_size > FILE_MAX) {
        rc = -EFBIG;
        goto out;
    }
    p = malloc((size_t)stb.st_size + 1);
    if (!p) {
        rc = -ENOMEM;
        goto out;
    }
    while (n < (size_t)stb.st_size) {
        ssize_t r = read(fd, p + n, (size_t)stb.st_size - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break; /* shrank under us: parse what is there */
        n += (size_t)r;
    }
    p[n] = '\0';
    *data = p;
    *len = n;
    p = NULL;
out:
    free(p);
    close(fd);
    return rc;
}

int ckpt_load(struct ckpt *ck, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (errlen)
        err[0] = '\0';
    if (ck->count || ck->nstreams)
        return -EBUSY;
    rc = read_all(ck->path, &data, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc == -EINVAL || rc == -EFBIG)
        return fail(err, errlen, ck->path, "%s",
                    rc == -EINVAL ? "not a regular file" : "too large to be a checkpoint file");
    if (rc < 0) {
        if (errlen)
            snprintf(err, errlen, "%s: %s", ck->path, strerror(-rc));
        return rc;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    free(data);
    if (!root)
        return fail(err, errlen, ck->path, "line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    rc = load_root(ck, root, err, errlen);
    json_decref(root);
    if (rc == -ENOMEM && errlen)
        snprintf(err, errlen, "%s: out of memory", ck->path);
    if (rc < 0)
        clear(ck);
    ck->dirty = false;
    return rc;
}

/* ---- save ---------------------------------------------------------------- */

/* The store as JSON text (malloc'ed, newline-terminated), or NULL. */
static char *serialise(const struct ckpt *ck, size_t *len)
{
    json_t *root = json_object(), *streams = json_object();
    char *text = NULL, *out = NULL;
    int format = CKPT_FORMAT_VERSION, bad;

    for (size_t i = 0; i < ck->nstreams; i++)
        for (size_t j = 0; j < ck->streams[i]->n; j++)
            if (ck->streams[i]->shards[j]->skip_before)
                format = 2;
    bad = !root || !streams || json_object_set_new(root, "version", json_integer(format)) < 0;

    if (root && streams && json_object_set(root, "streams", streams) < 0)
        bad = 1;
    for (size_t i = 0; !bad && i < ck->nstreams; i++) {
        const struct stream *st = ck->streams[i];
        json_t *so = json_object(), *shards = json_object();

        bad = !so || !shards || json_object_set_new(so, "table", json_string(st->table)) < 0 ||
              json_object_set(so, "shards", shards) < 0 ||
              json_object_set(streams, st->arn, so) < 0;
        for (size_t j = 0; !bad && j < st->n; j++) {
            const struct ckpt_shard *sh = st->shards[j];
            char when[21];

            rfc3339_format(sh->updated, when);
            bad = json_object_set_new(shards, sh->id,
                                      json_pack("{s:o,s:I,s:I,s:o,s:b,s:s}", "seq",
                                                sh->seq[0] ? json_string(sh->seq) : json_null(),
                                                "ver_s", (json_int_t)sh->ver.second, "ver_n",
                                                (json_int_t)sh->ver.ordinal, "parent",
                                                sh->parent ? json_string(sh->parent) : json_null(),
                                                "done", (int)sh->done, "updated", when)) < 0;
            if (!bad && sh->skip_before)
                bad = json_object_set_new(json_object_get(shards, sh->id), "skip_before",
                                          json_integer((json_int_t)sh->skip_before)) < 0;
        }
        json_decref(so);
        json_decref(shards);
    }
    if (!bad)
        text = json_dumps(root, JSON_INDENT(1) | JSON_COMPACT);
    if (text) {
        size_t n = strlen(text);

        out = realloc(text, n + 2);
        if (out) {
            out[n] = '\n';
            out[n + 1] = '\0';
            *len = n + 1;
        } else {
            free(text);
        }
    }
    json_decref(streams);
    json_decref(root);
    return out;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ckpt_write_atomic(const char *path, const char *tmp, const char *dir, const char *data,
                      size_t len)
{
    int fd, dfd, rc;

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    rc = fchmod(fd, 0600) < 0 ? -errno : 0; /* a leftover tmp may have had another mode */
    if (rc == 0)
        rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    if (fsync(dfd) < 0)
        rc = -errno;
    close(dfd);
    return rc;
}

/* Runs on a pool thread: touches only the store's path strings, which never
 * change. */
static int write_file(const struct ckpt *ck, const char *data, size_t len)
{
    return ckpt_write_atomic(ck->path, ck->tmp, ck->dir, data, len);
}

int ckpt_save_sync(struct ckpt *ck)
{
    size_t len = 0;
    char *data;
    int rc;

    if (ck->job)
        return -EBUSY;
    data = serialise(ck, &len);
    if (!data)
        return -ENOMEM;
    ck->dirty = false;
    rc = write_file(ck, data, len);
    free(data);
    if (rc < 0)
        ck->dirty = true;
    return rc;
}

static void work_cb(uv_work_t *req)
{
    struct save_job *job = container_of(req, struct save_job, work);

    job->status = write_file(job->ck, job->data, job->len);
}

static void after_work_cb(uv_work_t *req, int status);

/* Starts a write of the current state for the waiters w[0..nw), which the
 * job takes over on success only. */
static int start_job(struct ckpt *ck, struct uv_loop_s *loop, struct waiter *w, size_t nw)
{
    struct save_job *job = calloc(1, sizeof(*job));
    bool was = ck->dirty;
    int rc;

    if (!job)
        return -ENOMEM;
    job->ck = ck;
    job->data = serialise(ck, &job->len);
    if (!job->data) {
        free(job);
        return -ENOMEM;
    }
    ck->dirty = false;
    rc = uv_queue_work(loop, &job->work, work_cb, after_work_cb);
    if (rc < 0) {
        ck->dirty = was;
        free(job->data);
        free(job);
        return rc;
    }
    job->w = w;
    job->nw = nw;
    ck->job = job;
    return 0;
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct save_job *job = container_of(req, struct save_job, work);
    struct ckpt *ck = job->ck;
    int rc = status < 0 ? status : job->status;

    ck->job = NULL;
    if (rc < 0)
        ck->dirty = true;
    if (ck->pending) {
        struct waiter *w = ck->pend;
        size_t nw = ck->npend;
        int src;

        ck->pending = false;
        ck->pend = NULL;
        ck->npend = ck->cappend = 0;
        src = start_job(ck, ck->loop, w, nw);
        if (src < 0) {
            for (size_t i = 0; i < nw; i++)
                if (w[i].cb)
                    w[i].cb(ck, src, w[i].arg);
            free(w);
        }
    }
    /* Last: a callback may start another save. */
    for (size_t i = 0; i < job->nw; i++)
        if (job->w[i].cb)
            job->w[i].cb(ck, rc, job->w[i].arg);
    free(job->w);
    free(job->data);
    free(job);
}

int ckpt_save_async(struct ckpt *ck, struct uv_loop_s *loop, ckpt_saved_cb *cb, void *arg)
{
    struct waiter *w;
    int rc;

    if (ck->job) {
        if (ck->npend == ck->cappend) {
            size_t cap = ck->cappend ? ck->cappend * 2 : 2;

            w = realloc(ck->pend, cap * sizeof(*w));
            if (!w)
                return -ENOMEM;
            ck->pend = w;
            ck->cappend = cap;
        }
        ck->pend[ck->npend++] = (struct waiter){ cb, arg };
        ck->pending = true;
        ck->loop = loop;
        return 0;
    }
    w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct waiter){ cb, arg };
    rc = start_job(ck, loop, w, 1);
    if (rc < 0)
        free(w);
    return rc;
}

/* ---- lock ---------------------------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates; the result must be a directory. */
static int make_dirs(const char *dir)
{
    struct stat stb;
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return -ENOMEM;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;

        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            rc = -errno;
        *s = c;
        if (c == '\0')
            break;
    }
    if (rc == 0 && stat(dir, &stb) < 0)
        rc = -errno;
    else if (rc == 0 && !S_ISDIR(stb.st_mode))
        rc = -ENOTDIR;
    free(p);
    return rc;
}

int ckpt_lock(const char *state_dir, int *fd_out)
{
    return ckpt_lock_named(state_dir, CKPT_LOCK_FILE, fd_out);
}

int ckpt_lock_named(const char *state_dir, const char *name, int *fd_out)
{
    char *path = NULL, pid[32];
    int fd = -1, rc, n;

    rc = make_dirs(state_dir);
    if (rc < 0)
        return rc;
    path = join(state_dir, name);
    if (!path)
        return -ENOMEM;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    free(path);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
        close(fd);
        return rc;
    }
    /* For the operator only; the flock is what counts. */
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* ignored: a full disk must not stop the lock */
    }
    *fd_out = fd;
    return 0;
}

void ckpt_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}
