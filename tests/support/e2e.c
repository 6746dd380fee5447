#include "tests/support/e2e.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/buf.h"
#include "aws/jsonx.h"
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

static void key_text(json_t *v, struct buf *out)
{
    const char *s;
    struct buf tmp;

    if ((s = json_string_value(json_object_get(v, "S"))) ||
        (s = json_string_value(json_object_get(v, "B")))) {
        buf_puts(out, s);
        return;
    }
    s = json_string_value(json_object_get(v, "N"));
    cr_assert_not_null(s, "key value is not S, N or B");
    buf_init(&tmp, 0);
    cr_assert_eq(ddbnum_canonical(s, strlen(s), &tmp), 0);
    buf_puts(out, tmp.ptr);
    buf_close(&tmp);
}

static void escape_into(struct buf *out, const char *s, char sep)
{
    for (; *s; s++) {
        if (*s == sep || *s == '\\')
            buf_putc(out, '\\');
        buf_putc(out, *s);
    }
}

void e2e_doc_id(json_t *item, const char *hash, const char *range, char sep, char *out,
                size_t outlen)
{
    struct buf raw, id;

    buf_init(&raw, 0);
    buf_init(&id, 0);
    key_text(json_object_get(item, hash), &raw);
    escape_into(&id, raw.ptr, sep);
    if (range) {
        buf_reset(&raw);
        key_text(json_object_get(item, range), &raw);
        buf_putc(&id, sep);
        escape_into(&id, raw.ptr, sep);
    }
    snprintf(out, outlen, "%s", id.ptr);
    buf_close(&raw);
    buf_close(&id);
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

static bool match_map(json_t *m, json_t *actual, const char *path, char *why, size_t whylen)
{
    const char *k;
    json_t *v;
    char sub[512];

    if (!json_is_object(actual)) {
        snprintf(why, whylen, "%s: expected an object", path);
        return false;
    }
    json_object_foreach(m, k, v)
    {
        if (strncmp(k, "aws:rep:", 8) == 0)
            continue;
        snprintf(sub, sizeof(sub), "%s.%s", path, k);
        if (!match(v, json_object_get(actual, k), sub, why, whylen))
            return false;
    }
    json_object_foreach(actual, k, v) if (!json_object_get(m, k))
    {
        snprintf(why, whylen, "%s.%s: not in the item", path, k);
        return false;
    }
    return true;
}

static bool match_set(json_t *set, const char *type, json_t *actual, const char *path, char *why,
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
            strcmp(type, "NS") == 0 ? num_equal(json_string_value(e), a) : json_equal(e, a);
        if (!found) {
            snprintf(why, whylen, "%s: set element %s missing", path, json_string_value(e));
            return false;
        }
    }
    return true;
}

static bool match(json_t *typed, json_t *actual, const char *path, char *why, size_t whylen)
{
    const char *t;
    json_t *v;

    if (!actual) {
        snprintf(why, whylen, "%s: missing in the document", path);
        return false;
    }
    json_object_foreach(typed, t, v)
    {
        bool ok = true;

        if (strcmp(t, "S") == 0 || strcmp(t, "B") == 0)
            ok = json_equal(v, actual);
        else if (strcmp(t, "N") == 0)
            ok = num_equal(json_string_value(v), actual);
        else if (strcmp(t, "BOOL") == 0)
            ok = json_is_boolean(actual) && json_is_true(v) == json_is_true(actual);
        else if (strcmp(t, "NULL") == 0)
            ok = json_is_null(actual);
        else if (strcmp(t, "M") == 0)
            return match_map(v, actual, path, why, whylen);
        else if (strcmp(t, "L") == 0) {
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
        } else if (strcmp(t, "SS") == 0 || strcmp(t, "NS") == 0 || strcmp(t, "BS") == 0)
            return match_set(v, t, actual, path, why, whylen);
        if (!ok) {
            char *a = json_dumps(actual, JSON_ENCODE_ANY | JSON_COMPACT);

            snprintf(why, whylen, "%s: %s value differs (document has %.200s)", path, t, a);
            free(a);
            return false;
        }
        return true;
    }
    snprintf(why, whylen, "%s: empty type", path);
    return false;
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

        if (!ok)
            break;
        e2e_doc_id(item, t->hash, t->range, '|', docid, sizeof(docid));
        d = json_object_get(docs, docid);
        if (!d || json_is_true(json_object_get(d, "deleted"))) {
            snprintf(why, whylen, "no document %.300s", docid);
            ok = false;
        } else {
            char path[600];

            snprintf(path, sizeof(path), "%.500s", docid);
            ok = match_map(item, json_object_get(d, "source"), path, why, whylen);
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
