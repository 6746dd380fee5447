#include "tests/support/e2e.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/jsonx.h"
#include "indexer/ddbnum.h"
#include "tests/support/ddbclient.h"
#include "tests/support/searchd_ctl.h"

const char *e2e_metrics_listen;

const char *e2e_config(const char *sink_url, const struct e2e_table *tables, size_t n,
                       const char *extra_sections, char *dir_out, size_t dirlen)
{
    return e2e_config_ex(ddbc_endpoint(), sink_url, tables, n, NULL, extra_sections, dir_out,
                         dirlen);
}

const char *e2e_config_ex(const char *aws_endpoint, const char *sink_url,
                          const struct e2e_table *tables, size_t n, const char *daemon_extra,
                          const char *extra_sections, char *dir_out, size_t dirlen)
{
    static char path[512];
    const char *tmp = getenv("TMPDIR");
    char metrics[128] = "";
    FILE *f;

    snprintf(dir_out, dirlen, "%s/e2e-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir_out));
    snprintf(path, sizeof(path), "%s/ddb2es.conf", dir_out);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    /* The metrics endpoint is off unless asked for, so tests running in
     * parallel do not fight over the default port. */
    if (!daemon_extra || !strstr(daemon_extra, "metrics_listen"))
        snprintf(metrics, sizeof(metrics), "metrics_listen = %s\n",
                 e2e_metrics_listen ? e2e_metrics_listen : "");
    fprintf(f,
            "[daemon]\nstate_dir = %s/state\nlog_level = debug\ncheckpoint_interval = 200ms\n"
            "shutdown_timeout = 10s\n%s%s\n"
            "[aws]\nregion = us-east-1\nendpoint = %s\n\n"
            "[sink]\nurl = %s\nauth = none\nflush_interval = 100ms\ndlq_path = %s/dlq.ndjson\n",
            dir_out, metrics, daemon_extra ? daemon_extra : "", aws_endpoint, sink_url, dir_out);
    if (extra_sections)
        fprintf(f, "%s\n", extra_sections);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "\n[table %s]\nindex = %s\n%s\n", tables[i].name, tables[i].index,
                tables[i].extra ? tables[i].extra : "");
    fclose(f);
    return path;
}

void e2e_start_env(struct proc *p, const char *conf, const char *const env[])
{
    static char bin[512];
    const char *argv[] = { proc_path("ddb2es", bin, sizeof(bin)), "run", "-c", conf, NULL };

    proc_start(p, argv, env);
}

void e2e_start(struct proc *p, const char *conf)
{
    const char *env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", NULL };

    e2e_start_env(p, conf, env);
}

int e2e_stop(struct proc *p, long ms)
{
    int rc;

    proc_kill(p, SIGTERM);
    rc = proc_wait(p, ms);
    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    return rc;
}

char *e2e_quote_numbers(const char *text, size_t len)
{
    struct buf out, num;
    size_t i = 0;

    buf_init(&out, 0);
    buf_init(&num, 0);
    while (i < len) {
        char c = text[i];

        if (c == '"') { /* copy a string as is */
            size_t j = i + 1;

            while (j < len && text[j] != '"')
                j += text[j] == '\\' ? 2 : 1;
            buf_append(&out, text + i, j + 1 - i);
            i = j + 1;
        } else if (c == '-' || isdigit((unsigned char)c)) {
            size_t j = i + 1;

            while (j < len && (isdigit((unsigned char)text[j]) || strchr("+-.eE", text[j])))
                j++;
            buf_reset(&num);
            if (ddbnum_canonical(text + i, j - i, &num) != 0)
                buf_printf(&num, "BAD:%.*s", (int)(j - i), text + i);
            buf_printf(&out, "\"#N:%s\"", num.ptr);
            i = j;
        } else {
            buf_putc(&out, c);
            i++;
        }
    }
    buf_close(&num);
    return buf_take(&out);
}

const char e2e_numbers_as_double[] =
    "{\"settings\":{\"index.mapping.depth.limit\":32,"
    "\"index.mapping.total_fields.limit\":20000},"
    "\"mappings\":{\"dynamic_templates\":["
    "{\"ddb_integers\":{\"match_mapping_type\":\"long\",\"mapping\":{\"type\":\"double\"}}},"
    "{\"ddb_numbers\":{\"match_mapping_type\":\"double\",\"mapping\":{\"type\":\"double\"}}}"
    "]}}";

void e2e_create_index(struct searchd *sd, const char *index)
{
    static const char *const hdr[] = { "Content-Type: application/json", NULL };
    struct searchd_resp r;
    char path[300];

    snprintf(path, sizeof(path), "/%s", index);
    cr_assert_eq(searchd_request(sd, "PUT", path, hdr, e2e_numbers_as_double,
                                 strlen(e2e_numbers_as_double), &r),
                 0);
    cr_assert_eq(r.status, 200, "PUT %s: %ld %.*s", path, r.status, (int)r.len, r.body);
    searchd_resp_close(&r);
}

json_t *e2e_dump(struct searchd *sd)
{
    struct searchd_resp r;
    json_t *j = NULL;

    if (searchd_request(sd, "GET", "/_double/dump", NULL, NULL, 0, &r) == 0 && r.status == 200) {
        char *q = e2e_quote_numbers(r.body, r.len);
        json_error_t e;

        j = jsonx_loadb(q, strlen(q), 0, &e);
        if (!j)
            cr_log_error("dump unparsable: %s", e.text);
        free(q);
    }
    searchd_resp_close(&r);
    return j;
}

/* ---- an item's document, by README "Documents", written here apart from
 * indexer/transform.c so that the tests hold the daemon to the contract ---- */

/* The single type descriptor of an attribute value ("" when there is none). */
static const char *type_of(json_t *av, size_t *tlen, json_t **val)
{
    void *it = json_is_object(av) && json_object_size(av) == 1 ? json_object_iter(av) : NULL;

    *tlen = it ? json_object_iter_key_len(it) : 0;
    *val = it ? json_object_iter_value(it) : NULL;
    return it ? json_object_iter_key(it) : "";
}

static bool type_eq(const char *t, size_t tlen, const char *want)
{
    return tlen == strlen(want) && memcmp(t, want, tlen) == 0;
}

static void key_text(json_t *av, struct buf *out)
{
    size_t tlen;
    json_t *v;
    const char *t = type_of(av, &tlen, &v);

    cr_assert(json_is_string(v) &&
                  (type_eq(t, tlen, "S") || type_eq(t, tlen, "N") || type_eq(t, tlen, "B")),
              "key value is not S, N or B");
    if (type_eq(t, tlen, "N"))
        cr_assert_eq(ddbnum_canonical(json_string_value(v), json_string_length(v), out), 0);
    else
        buf_append(out, json_string_value(v), json_string_length(v));
}

static void escape_into(struct buf *out, const char *s, size_t len, char sep)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == sep || s[i] == '\\')
            buf_putc(out, '\\');
        buf_putc(out, s[i]);
    }
}

/* The code point of the UTF-8 sequence at s and its length in *n; -1 (and
 * *n = 1) for a byte that starts none: RFC 3629, so no surrogate. */
static long code_point(const unsigned char *s, size_t len, size_t *n)
{
    static const long least[] = { 0, 0, 0x80, 0x800, 0x10000 };
    unsigned c = s[0];
    size_t k = c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 0;
    long cp = k == 1 ? (long)c : k == 2 ? c & 0x1f : k == 3 ? c & 0x0f : c & 0x07;

    *n = 1;
    if (k == 0 || k > len)
        return -1;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < least[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *n = k;
    return cp;
}

size_t e2e_doc_id(json_t *item, const char *hash, const char *range, char sep, char *out,
                  size_t outlen)
{
    struct buf raw, id;
    size_t len, n;
    bool utf8 = true;

    buf_init(&raw, 0);
    buf_init(&id, 0);
    key_text(json_object_get(item, hash), &raw);
    escape_into(&id, raw.ptr, raw.len, sep);
    if (range) {
        buf_reset(&raw);
        key_text(json_object_get(item, range), &raw);
        buf_putc(&id, sep);
        escape_into(&id, raw.ptr, raw.len, sep);
    }
    for (size_t i = 0; i < id.len && utf8; i += n)
        utf8 = code_point((const unsigned char *)id.ptr + i, id.len - i, &n) >= 0;
    /* id function version 2: over 512 bytes, or not UTF-8 -> "\h" + SHA-256 hex */
    if (id.len > 512 || !utf8) {
        unsigned char md[SHA256_DIGEST_LENGTH];

        SHA256((const unsigned char *)(id.ptr ? id.ptr : ""), id.len, md);
        buf_reset(&id);
        buf_printf(&id, "\\%c", sep == 'h' ? 'H' : 'h');
        for (size_t i = 0; i < sizeof(md); i++)
            buf_printf(&id, "%02x", md[i]);
    }
    len = id.len;
    cr_assert_lt(len, outlen);
    memcpy(out, id.ptr ? id.ptr : "", len);
    out[len] = '\0';
    buf_close(&raw);
    buf_close(&id);
    return len;
}

/* Java's Character.isWhitespace. */
static bool java_whitespace(long cp)
{
    return (cp >= 0x9 && cp <= 0xd) || (cp >= 0x1c && cp <= 0x20) || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a && cp != 0x2007) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x205f || cp == 0x3000;
}

/* A name Elasticsearch 8 / OpenSearch 2 refuse (README "Documents"). */
static bool refused_name(const char *name, size_t len, bool top)
{
    static const char *const meta[] = {
        "_id", "_index", "_routing", "_source", "_ignored", "_version", "_seq_no",
        "_nested_path", "_field_names", "_data_stream_timestamp", "_doc_count", "_feature",
        "_tsid", "_ts_routing_hash", "_index_mode", "_ignored_source", "_tier",
        "_inference_fields", "_size",
    };
    const unsigned char *s = (const unsigned char *)name;
    size_t seg = 0, n;

    while (seg <= len) {
        const char *dot = memchr(name + seg, '.', len - seg);
        size_t end = dot ? (size_t)(dot - name) : len;
        bool blank = true;

        for (size_t i = seg; i < end && blank; i += n)
            blank = java_whitespace(code_point(s + i, end - i, &n));
        if (blank)
            return true;
        for (size_t i = 0; top && seg == 0 && i < sizeof(meta) / sizeof(meta[0]); i++)
            if (type_eq(name, end, meta[i]))
                return true;
        seg = end + 1;
    }
    return false;
}

/* "%" + the name with '%', '.' and whitespace percent-encoded. */
static void renamed(const char *name, size_t len, struct buf *out)
{
    const unsigned char *s = (const unsigned char *)name;
    size_t n;

    buf_putc(out, '%');
    for (size_t i = 0; i < len; i += n) {
        long cp = code_point(s + i, len - i, &n);

        if (cp == '%' || cp == '.' || java_whitespace(cp))
            for (size_t k = 0; k < n; k++)
                buf_printf(out, "%%%02X", s[i + k]);
        else
            buf_append(out, name + i, n);
    }
}

struct refused {
    const char *name;
    size_t len;
    json_t *v;
};

static int refused_cmp(const void *a, const void *b)
{
    const struct refused *x = a, *y = b;
    int r = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

    return r ? r : (x->len > y->len) - (x->len < y->len);
}

/* The members of a DynamoDB map (or item) under the names their document
 * has: refused names renamed, a taken new name given one more "%" in front,
 * refused names taken in byte order after the others.  Caller decrefs. */
static json_t *as_written(json_t *m, bool top)
{
    json_t *out = json_object(), *v;
    struct refused *ref = calloc(json_object_size(m) + 1, sizeof(*ref));
    struct buf name;
    size_t klen, n = 0;
    const char *k;

    cr_assert_not_null(ref);
    json_object_keylen_foreach(m, k, klen, v) {
        if (top && klen >= 8 && memcmp(k, "aws:rep:", 8) == 0)
            continue;
        if (refused_name(k, klen, top))
            ref[n++] = (struct refused){ k, klen, v };
        else
            json_object_setn_nocheck(out, k, klen, v);
    }
    qsort(ref, n, sizeof(*ref), refused_cmp);
    buf_init(&name, 0);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&name);
        renamed(ref[i].name, ref[i].len, &name);
        while (json_object_getn(out, name.ptr, name.len)) {
            buf_putc(&name, '%');
            memmove(name.ptr + 1, name.ptr, name.len - 1);
            name.ptr[0] = '%';
        }
        json_object_setn_nocheck(out, name.ptr, name.len, ref[i].v);
    }
    buf_close(&name);
    free(ref);
    return out;
}

static bool num_equal(const char *ddb, json_t *actual)
{
    struct buf c;
    char want[200];
    bool ok;

    buf_init(&c, 0);
    ok = ddbnum_canonical(ddb, strlen(ddb), &c) == 0;
    snprintf(want, sizeof(want), "#N:%s", ok ? c.ptr : "?");
    buf_close(&c);
    return ok && json_is_string(actual) && strcmp(json_string_value(actual), want) == 0;
}

static bool match(json_t *typed, json_t *actual, const char *path, char *why, size_t whylen);

static bool match_object(json_t *m, bool top, json_t *actual, const char *path, char *why,
                         size_t whylen)
{
    json_t *want, *v;
    const char *k;
    size_t klen;
    char sub[512];
    bool ok = true;

    if (!json_is_object(actual)) {
        snprintf(why, whylen, "%s: expected an object", path);
        return false;
    }
    want = as_written(m, top);
    json_object_keylen_foreach(want, k, klen, v) {
        snprintf(sub, sizeof(sub), "%s.%s", path, k);
        if (ok && !match(v, json_object_getn(actual, k, klen), sub, why, whylen))
            ok = false;
    }
    json_object_keylen_foreach(actual, k, klen, v) {
        if (ok && !json_object_getn(want, k, klen)) {
            snprintf(why, whylen, "%s.%s: not in the item", path, k);
            ok = false;
        }
    }
    json_decref(want);
    return ok;
}

static bool match_map(json_t *m, json_t *actual, const char *path, char *why, size_t whylen)
{
    return match_object(m, false, actual, path, why, whylen);
}

static bool match_set(json_t *set, bool numbers, json_t *actual, const char *path, char *why,
                      size_t whylen)
{
    size_t i, j;
    json_t *e, *a;

    if (!json_is_array(actual) || json_array_size(actual) != json_array_size(set)) {
        snprintf(why, whylen, "%s: set size differs", path);
        return false;
    }
    json_array_foreach(set, i, e)
    {
        bool found = false;

        json_array_foreach(actual, j, a) found |=
            numbers ? num_equal(json_string_value(e), a) : json_equal(e, a);
        if (!found) {
            snprintf(why, whylen, "%s: set element %s missing", path, json_string_value(e));
            return false;
        }
    }
    return true;
}

static bool match(json_t *typed, json_t *actual, const char *path, char *why, size_t whylen)
{
    size_t tlen;
    json_t *v;
    const char *t = type_of(typed, &tlen, &v);
    bool ok = true;

    if (!actual) {
        snprintf(why, whylen, "%s: missing in the document", path);
        return false;
    }
    if (!v) {
        snprintf(why, whylen, "%s: not one type descriptor", path);
        return false;
    }
    if (type_eq(t, tlen, "S") || type_eq(t, tlen, "B"))
        ok = json_equal(v, actual);
    else if (type_eq(t, tlen, "N"))
        ok = num_equal(json_string_value(v), actual);
    else if (type_eq(t, tlen, "BOOL"))
        ok = json_is_boolean(actual) && json_is_true(v) == json_is_true(actual);
    else if (type_eq(t, tlen, "NULL"))
        ok = json_is_null(actual);
    else if (type_eq(t, tlen, "M"))
        return match_map(v, actual, path, why, whylen);
    else if (type_eq(t, tlen, "L")) {
        size_t i;
        json_t *e;
        char sub[512];

        if (!json_is_array(actual) || json_array_size(actual) != json_array_size(v)) {
            snprintf(why, whylen, "%s: list length differs", path);
            return false;
        }
        json_array_foreach(v, i, e)
        {
            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (!match(e, json_array_get(actual, i), sub, why, whylen))
                return false;
        }
    } else if (type_eq(t, tlen, "SS") || type_eq(t, tlen, "NS") || type_eq(t, tlen, "BS")) {
        return match_set(v, t[0] == 'N', actual, path, why, whylen);
    } else {
        snprintf(why, whylen, "%s: unknown type %s", path, t);
        return false;
    }
    if (!ok) {
        char *a = json_dumps(actual, JSON_ENCODE_ANY | JSON_COMPACT);

        snprintf(why, whylen, "%s: %s value differs (document has %.200s)", path, t, a);
        free(a);
        return false;
    }
    return true;
}

bool e2e_index_equals_table(struct searchd *sd, const struct e2e_table *t, char *why,
                            size_t whylen)
{
    json_t *items = ddbc_scan_all(t->name), *dump = e2e_dump(sd), *docs, *item, *d;
    size_t i, live = 0;
    const char *id;
    bool ok = true;

    docs = json_object_get(dump, t->index);
    json_object_foreach(docs, id, d) live += !json_is_true(json_object_get(d, "deleted"));
    if (live != json_array_size(items)) {
        snprintf(why, whylen, "index %s has %zu live documents, table %s has %zu items", t->index,
                 live, t->name, json_array_size(items));
        ok = false;
    }
    json_array_foreach(items, i, item)
    {
        char docid[4096];
        size_t idlen;

        if (!ok)
            break;
        idlen = e2e_doc_id(item, t->hash, t->range, '|', docid, sizeof(docid));
        d = json_object_getn(docs, docid, idlen);
        if (!d || json_is_true(json_object_get(d, "deleted"))) {
            snprintf(why, whylen, "no document %.300s", docid);
            ok = false;
        } else {
            char path[600];

            snprintf(path, sizeof(path), "%.500s", docid);
            ok = match_object(item, true, json_object_get(d, "source"), path, why, whylen);
        }
    }
    json_decref(items);
    json_decref(dump);
    return ok;
}

bool e2e_wait_equal(struct searchd *sd, const struct e2e_table *t, long ms, char *why,
                    size_t whylen)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    for (;;) {
        if (e2e_index_equals_table(sd, t, why, whylen))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &b);
        if ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 > ms)
            return false;
        usleep(200000);
    }
}
