/* ckpt_file_load — reading checkpoints.json into the file store, strictly
 * (the format: ckpt_file_int.h). */
#include "daemon/ckpt_file_int.h"
#include "base/rfc3339.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAX (256u << 20) /* a checkpoint file larger than this is not ours */
#define ID_MAX 1024           /* ARNs are <= 1024 bytes, shard ids <= 65 */

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

static int load_shard(struct ckpt_file *ck, const char *table, const char *arn, const char *id,
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
                 json_integer_value(skip) > DOCVER_SECOND_MAX))
        return FAIL("skip_before: not an integer in 0..%lld", (long long)DOCVER_SECOND_MAX);
    if (!seq || !(json_is_null(seq) || json_is_string(seq)))
        return FAIL("seq: missing or not a string or null");
    if (json_is_string(seq) && !seqnum_valid(json_string_value(seq)))
        return FAIL("seq: not a sequence number (21-40 digits)");
    if (!json_is_integer(vs) || json_integer_value(vs) < 0 ||
        json_integer_value(vs) > DOCVER_SECOND_MAX)
        return FAIL("ver_s: missing or not an integer in 0..%lld", (long long)DOCVER_SECOND_MAX);
    if (!json_is_integer(vn) || json_integer_value(vn) < 0 ||
        json_integer_value(vn) > (json_int_t)DOCVER_ORDINAL_MAX)
        return FAIL("ver_n: missing or not an integer in 0..%u", (unsigned)DOCVER_ORDINAL_MAX);
    if (!par || !(json_is_null(par) || json_is_string(par)))
        return FAIL("parent: missing or not a string or null");
    if (json_is_string(par) &&
        (!*json_string_value(par) || strlen(json_string_value(par)) > ID_MAX))
        return FAIL("parent: bad shard id");
    if (!json_is_boolean(done))
        return FAIL("done: missing or not a boolean");
    if (!json_is_string(upd) || parse_time(json_string_value(upd), &updated) < 0)
        return FAIL("updated: missing or not a time like 2024-05-01T12:00:00Z");
    sh = ckpt_shard_add(&ck->base, table, arn, id, json_string_value(par), updated);
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

static int load_root(struct ckpt_file *ck, json_t *root, char *err, size_t errlen)
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

int ckpt_file_load(struct ckpt *base, char *err, size_t errlen)
{
    struct ckpt_file *ck = ckpt_file_of(base);
    json_error_t jerr;
    json_t *root;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (errlen)
        err[0] = '\0';
    if (ck->count || ck->streams.n)
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
        ckpt_file_clear(ck);
    ck->dirty = false;
    return rc;
}
