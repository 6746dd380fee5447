#include "tests/support/fsworld.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/e2e.h"
#include "tests/support/fakestreams.h"
#include "tests/support/httpget.h"
#include "tests/support/searchd_ctl.h"

void fsw_setup(struct fsworld *w, const char *const *searchd_opts)
{
    static unsigned n;
    static const char *const none[] = { NULL };

    memset(w, 0, sizeof(*w));
    snprintf(w->table, sizeof(w->table), "fs%d_%u", (int)getpid(), n++);
    w->fs = fs_start(w->table);
    w->sd = searchd_startv(searchd_opts ? searchd_opts : none);
}

void fsw_config(struct fsworld *w, const char *daemon_extra, const char *sink_extra)
{
    struct e2e_table t = { .name = w->table, .index = w->table, .hash = "id" };
    char daemon[1024];

    w->metrics_port = httpget_free_port();
    cr_assert_gt(w->metrics_port, 0);
    snprintf(daemon, sizeof(daemon), FSW_FAST "metrics_listen = 127.0.0.1:%d\n%s",
             w->metrics_port, daemon_extra ? daemon_extra : "");
    e2e_config_ex(fs_url(w->fs), searchd_url(w->sd), &t, 1, daemon, sink_extra, w->dir,
                  sizeof(w->dir));
}

void fsw_start(struct fsworld *w, const char *daemon_extra, const char *sink_extra)
{
    fsw_config(w, daemon_extra, sink_extra);
    fsw_restart(w);
}

void fsw_restart(struct fsworld *w)
{
    char conf[512];

    snprintf(conf, sizeof(conf), "%s/ddb2es.conf", w->dir);
    e2e_start(&w->p, conf);
}

void fsw_teardown(struct fsworld *w)
{
    int rc = e2e_stop(&w->p, 15000);

    if (rc != 0) {
        char *log = proc_slurp(w->p.err_path);

        cr_log_error("ddb2es log:\n%s", log);
        free(log);
    }
    cr_expect_eq(rc, 0, "clean stop");
    searchd_stop(w->sd);
    fs_stop(w->fs);
}

char *fsw_doc_v(struct fsworld *w, const char *id)
{
    json_t *dump = searchd_dump(w->sd);
    json_t *d = json_object_get(json_object_get(dump, w->table), id);
    char *v = NULL;

    if (d && !json_is_true(json_object_get(d, "deleted")))
        v = json_dumps(json_object_get(json_object_get(d, "source"), "v"), JSON_ENCODE_ANY);
    json_decref(dump);
    return v;
}

bool fsw_wait_v(struct fsworld *w, const char *id, const char *want, long ms)
{
    for (long t = 0; t <= ms; t += 50) {
        char *v = fsw_doc_v(w, id);
        bool ok = want ? v && strcmp(v, want) == 0 : v == NULL;

        free(v);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

bool fsw_log_has(struct fsworld *w, const char *text, long ms)
{
    return proc_wait_for_text(w->p.err_path, text, ms);
}

double fsw_metric(struct fsworld *w, const char *name, const char *labels)
{
    return httpget_metric(w->metrics_port, name, labels);
}

bool fsw_index_matches(struct fsworld *w, const int *shards, size_t n, char *why, size_t len)
{
    json_t *want = json_object(), *dump = searchd_dump(w->sd), *docs, *d;
    const char *id;
    bool ok = dump != NULL;

    if (!ok)
        snprintf(why, len, "no dump from the double");
    /* The last record of each id decides: its image, or gone. */
    for (size_t k = 0; ok && k < n; k++) {
        size_t nr = fs_records(w->fs, shards[k], NULL, 0);
        struct fs_rec *r = calloc(nr + 1, sizeof(*r));

        cr_assert_not_null(r);
        fs_records(w->fs, shards[k], r, nr);
        for (size_t i = 0; i < nr; i++)
            if (strcmp(r[i].event, "RAW") != 0) /* not a record: dead-lettered */
                json_object_set_new(want, r[i].id,
                                strcmp(r[i].event, "REMOVE") == 0 ? json_null()
                                                                  : json_string(r[i].v));
        free(r);
    }
    docs = json_object_get(dump, w->table);
    json_object_foreach(want, id, d)
    {
        json_t *doc = json_object_get(docs, id);
        bool gone = !doc || json_is_true(json_object_get(doc, "deleted"));
        char *v = doc && !gone ? json_dumps(json_object_get(json_object_get(doc, "source"), "v"),
                                            JSON_ENCODE_ANY)
                               : NULL;

        if (ok && json_is_null(d) && !gone) {
            snprintf(why, len, "%s: deleted in the table, indexed with v %s", id, v);
            ok = false;
        } else if (ok && json_is_string(d) && (gone || strcmp(v, json_string_value(d)) != 0)) {
            snprintf(why, len, "%s: v %s in the table, %s in the index", id,
                     json_string_value(d), gone ? "missing" : v);
            ok = false;
        }
        free(v);
    }
    json_object_foreach(docs, id, d)
    {
        /* a tombstone is no document (the probe's canary leaves one) */
        if (ok && !json_object_get(want, id) && !json_is_true(json_object_get(d, "deleted"))) {
            snprintf(why, len, "%s: in the index, never in the stream", id);
            ok = false;
        }
    }
    json_decref(want);
    json_decref(dump);
    return ok;
}

bool fsw_wait_matches(struct fsworld *w, const int *shards, size_t n, long ms, char *why,
                      size_t len)
{
    for (long t = 0; t <= ms; t += 200) {
        if (fsw_index_matches(w, shards, n, why, len))
            return true;
        usleep(200000);
    }
    return false;
}

long fsw_actions(struct fsworld *w)
{
    json_t *st = searchd_stats(w->sd), *v;
    const char *k;
    long n = 0;

    json_object_foreach(json_object_get(st, "actions"), k, v) n += (long)json_integer_value(v);
    json_decref(st);
    return n;
}

long fsw_bulk_requests(struct fsworld *w, int status)
{
    static const char *const routes[] = { "/_bulk", "/{index}/_bulk" };
    json_t *st = searchd_stats(w->sd), *by, *v;
    const char *k;
    long n = 0;

    for (size_t i = 0; i < 2; i++) {
        by = json_object_get(json_object_get(st, "requests"), routes[i]);
        json_object_foreach(by, k, v)
        {
            if (status == 0 || atoi(k) == status)
                n += (long)json_integer_value(v);
        }
    }
    json_decref(st);
    return n;
}

long fsw_peak_rss_kb(struct fsworld *w)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)w->p.pid);
    f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}
