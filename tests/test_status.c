/* status: the model read from checkpoints.json, the states decided from the
 * checkpoint alone, live facts parsed from the metrics text, the printed
 * forms, and the command itself while another process holds the lock. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ckpt.h"
#include "daemon/metrics.h"
#include "daemon/statedir.h"
#include "daemon/status.h"
#include "tests/support/proc.h"

TestSuite(status, .timeout = 20);

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/posts/stream/2024-01-01T00:00:00.000"
#define NOW 1700001000

static void make_dir(char *dir, size_t len)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, len, "%s/status-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

/* A lineage: root (finished) -> mid (not finished, has a child) -> leaf
 * (open, with a checkpoint), and fresh (open, nothing read). */
static void write_store(const char *dir)
{
    struct ckpt *ck = ckpt_new(dir);
    struct ckpt_shard *root, *mid, *leaf;
    struct docver v1 = { .second = NOW - 3600, .ordinal = 4 };
    struct docver v2 = { .second = NOW - 30, .ordinal = 0 };

    cr_assert_not_null(ck);
    root = ckpt_shard_add(ck, "posts", ARN, "shardId-root", NULL, NOW - 7200);
    mid = ckpt_shard_add(ck, "posts", ARN, "shardId-mid", "shardId-root", NOW - 7000);
    leaf = ckpt_shard_add(ck, "posts", ARN, "shardId-leaf", "shardId-mid", NOW - 100);
    cr_assert_not_null(ckpt_shard_add(ck, "users", ARN "x", "shardId-fresh", NULL, NOW - 5));
    cr_assert(root && mid && leaf);
    cr_assert_eq(ckpt_shard_advance(ck, root, "100000000000000000001", &v1, NOW - 3500), 0);
    ckpt_shard_finish(ck, root, NOW - 3400);
    cr_assert_eq(ckpt_shard_advance(ck, mid, "100000000000000000002", &v1, NOW - 3000), 0);
    cr_assert_eq(ckpt_shard_advance(ck, leaf, "100000000000000000003", &v2, NOW - 20), 0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    ckpt_free(ck);
}

static json_t *shard(json_t *model, const char *id)
{
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(model, "shards"), i, s)
        if (strcmp(json_string_value(json_object_get(s, "shard")), id) == 0)
            return s;
    cr_assert_fail("shard %s not in the model", id);
    return NULL;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

Test(status, states_and_ages_come_from_the_checkpoint)
{
    char dir[256], err[256];
    int code;
    json_t *m, *s;

    make_dir(dir, sizeof(dir));
    write_store(dir);
    m = status_collect(dir, NOW, err, sizeof(err), &code);
    cr_assert_not_null(m, "%s", err);
    cr_expect_eq(code, 0);
    cr_expect(json_is_true(json_object_get(m, "exists")));
    cr_expect_eq(json_array_size(json_object_get(m, "shards")), 4);

    s = shard(m, "shardId-root");
    cr_expect_str_eq(str(s, "state"), "finished");
    cr_expect_str_eq(str(s, "table"), "posts");
    cr_expect_str_eq(str(s, "stream"), ARN);
    cr_expect(json_is_null(json_object_get(s, "parent")));
    s = shard(m, "shardId-mid");
    cr_expect_str_eq(str(s, "state"), "closed", "not done, but its child exists");
    cr_expect_str_eq(str(s, "parent"), "shardId-root");
    cr_expect_eq(json_integer_value(json_object_get(s, "last_record_age_s")), 3600);
    s = shard(m, "shardId-leaf");
    cr_expect_str_eq(str(s, "state"), "open");
    cr_expect_str_eq(str(s, "checkpoint"), "100000000000000000003");
    cr_expect_eq(json_integer_value(json_object_get(s, "last_record_age_s")), 30);
    cr_expect_str_eq(str(s, "last_record"), "2023-11-14T22:29:30Z");
    cr_expect_eq(json_integer_value(json_object_get(s, "updated_age_s")), 20);
    s = shard(m, "shardId-fresh");
    cr_expect_str_eq(str(s, "state"), "open");
    cr_expect_str_eq(str(s, "table"), "users");
    cr_expect(json_is_null(json_object_get(s, "checkpoint")));
    cr_expect(json_is_null(json_object_get(s, "last_record_age_s")), "nothing read");
    cr_expect(json_is_null(json_object_get(m, "live")));
    json_decref(m);
}

static char *print(const json_t *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    status_print_text(m, f);
    fclose(f);
    return text;
}

Test(status, text_shows_one_line_per_shard)
{
    char dir[256], err[256];
    int code;
    json_t *m;
    char *t;

    make_dir(dir, sizeof(dir));
    write_store(dir);
    m = status_collect(dir, NOW, err, sizeof(err), &code);
    cr_assert_not_null(m);
    t = print(m);
    cr_expect(strstr(t, "(4 shards)") != NULL, "%s", t);
    cr_expect(strstr(t, "TABLE") && strstr(t, "STATE") && strstr(t, "CHECKPOINT"), "%s", t);
    cr_expect(strstr(t, "shardId-mid    closed    60m00s ago") != NULL, "%s", t);
    cr_expect(strstr(t, "shardId-leaf   open      30s ago      20s ago       "
                        "100000000000000000003") != NULL,
              "%s", t);
    cr_expect(strstr(t, "shardId-root   finished") != NULL, "%s", t);
    cr_expect(strstr(t, "no metrics endpoint configured") != NULL, "%s", t);
    free(t);
    json_decref(m);
}

Test(status, a_missing_file_is_an_empty_status)
{
    char dir[256], err[256];
    int code = -1;
    json_t *m;
    char *t;

    make_dir(dir, sizeof(dir));
    m = status_collect(dir, NOW, err, sizeof(err), &code);
    cr_assert_not_null(m, "%s", err);
    cr_expect_eq(code, 0);
    cr_expect(json_is_false(json_object_get(m, "exists")));
    cr_expect_eq(json_array_size(json_object_get(m, "shards")), 0);
    t = print(m);
    cr_expect(strstr(t, "not written yet") != NULL, "%s", t);
    free(t);
    json_decref(m);
}

Test(status, a_corrupt_file_is_reported_with_65)
{
    char dir[256], path[300], err[256];
    int code = 0;
    FILE *f;

    make_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/checkpoints.json", dir);
    f = fopen(path, "w");
    fputs("{\"version\": 1, \"streams\": {", f);
    fclose(f);
    cr_expect_null(status_collect(dir, NOW, err, sizeof(err), &code));
    cr_expect_eq(code, 65);
    cr_expect(strstr(err, path) != NULL, "%s", err);
}

Test(status, live_facts_from_the_metrics_text)
{
    struct metrics_table t[1] = { { .name = "posts" } };
    struct metrics_view v = { .now = NOW, .tables = t, .ntables = 1, .ready = true };
    char dir[256], err[256];
    struct buf text;
    json_t *m, *pt;
    int code;
    char *out;

    t[0].st.records_read = 17;
    t[0].st.docs_indexed = 15;
    t[0].st.docs_deleted = 2;
    t[0].st.newest_created = NOW - 4;
    t[0].st.shards_open = 1;
    t[0].st.shards_done = 2;
    buf_init(&text, BUF_NOMAX);
    cr_assert_eq(metrics_render(&v, &text), 0);
    make_dir(dir, sizeof(dir));
    m = status_collect(dir, NOW, err, sizeof(err), &code);
    status_add_live(m, "127.0.0.1:9108", text.ptr, 200,
                    "ready: following 1 table, 1 shard, lag 4s\n");
    pt = json_object_get(json_object_get(json_object_get(m, "live"), "tables"), "posts");
    cr_assert_not_null(pt);
    cr_expect_eq(json_integer_value(json_object_get(pt, "records_read")), 17);
    cr_expect_eq(json_integer_value(json_object_get(pt, "docs_indexed")), 15);
    cr_expect_eq(json_integer_value(json_object_get(pt, "iterator_age_s")), 4);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(pt, "shards"), "done")), 2);
    cr_expect(json_is_true(json_object_get(json_object_get(m, "live"), "ready")));
    out = print(m);
    cr_expect(strstr(out, "live (127.0.0.1:9108): ready: following 1 table, 1 shard, lag 4s") !=
                  NULL,
              "%s", out);
    cr_expect(strstr(out, "posts: records read 17, indexed 15, deleted 2") != NULL, "%s", out);
    cr_expect(strstr(out, "iterator age 4s") != NULL, "%s", out);
    free(out);
    status_add_live_error(m, "127.0.0.1:9108", "Connection refused");
    out = print(m);
    cr_expect(strstr(out, "not answering (Connection refused)") != NULL, "%s", out);
    free(out);
    json_decref(m);
    buf_close(&text);
}

/* The command, while this process holds the state directory's lock as a
 * running daemon would. */
Test(status, command_works_while_the_lock_is_held)
{
    char dir[256], conf[300], bin[512];
    const char *argv_text[] = { proc_path("ddb2es", bin, sizeof(bin)), "status", "-c", conf, NULL };
    const char *argv_json[] = { bin, "status", "-c", conf, "--json", NULL };
    struct proc p;
    json_error_t jerr;
    json_t *j;
    char *out;
    FILE *f;
    int fd;

    make_dir(dir, sizeof(dir));
    write_store(dir);
    cr_assert_eq(statedir_lock(dir, &fd), 0);
    snprintf(conf, sizeof(conf), "%s/ddb2es.conf", dir);
    f = fopen(conf, "w");
    fprintf(f, "[daemon]\nstate_dir = %s\nmetrics_listen = 127.0.0.1:1\n[sink]\nurl = "
               "http://127.0.0.1:1\nauth = none\n[table posts]\n",
            dir);
    fclose(f);
    cr_assert_eq(proc_run(argv_text, NULL, 10000, &p), 0);
    out = proc_slurp(p.out_path);
    cr_expect(strstr(out, "shardId-leaf") && strstr(out, "closed") && strstr(out, "finished"),
              "%s", out);
    cr_expect(strstr(out, "live: 127.0.0.1:1 not answering") != NULL, "%s", out);
    free(out);

    cr_assert_eq(proc_run(argv_json, NULL, 10000, &p), 0);
    out = proc_slurp(p.out_path);
    j = json_loads(out, 0, &jerr);
    cr_assert_not_null(j, "--json prints JSON: %s\n%s", jerr.text, out);
    cr_expect_eq(json_array_size(json_object_get(j, "shards")), 4);
    cr_expect(json_is_false(json_object_get(json_object_get(j, "live"), "answering")));
    json_decref(j);
    free(out);
    statedir_unlock(fd);
}
