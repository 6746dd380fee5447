/* The checkpoint store: file format, atomic saves, the lock, pruning, the
 * external-version function, and the store interface with a second
 * backend. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/ack.h"
#include "daemon/ckpt.h"
#include "daemon/ckpt_store.h"
#include "daemon/statedir.h"
#include "tests/support/ckptrules.h"

#define ARN "arn:aws:dynamodb:us-east-1:123456789012:table/posts/stream/2024-05-01T00:00:00.000"
#define ARN2 "arn:aws:dynamodb:us-east-1:123456789012:table/users/stream/2024-05-01T00:00:00.000"
#define SH_A "shardId-00000001714521600000-aaaaaaaa"
#define SH_B "shardId-00000001714536000000-bbbbbbbb"
#define SH_C "shardId-00000001714550400000-cccccccc"
#define T0 ((time_t)1714521600) /* 2024-05-01T00:00:00Z */

static char dir[64];
static char path[128];
static char tmppath[160];

static void setup(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/ddb2es-ckpt-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/checkpoints.json", dir);
    snprintf(tmppath, sizeof(tmppath), "%s.tmp", path);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void teardown(void)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(ckpt, .init = setup, .fini = teardown, .timeout = 10);

static char *slurp(const char *p, size_t *len)
{
    FILE *f = fopen(p, "rb");
    char *s = NULL;
    long n;

    cr_assert_not_null(f, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return s;
}

static void spit(const char *p, const char *text)
{
    FILE *f = fopen(p, "wb");

    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *p)
{
    struct stat st;

    return stat(p, &st) == 0;
}

/* A store with two streams: a finished parent, its child half-way, and one
 * shard of another table with nothing read yet. */
static struct ckpt *sample(void)
{
    struct ckpt *ck = ckpt_new(dir);
    struct ckpt_shard *a, *b, *c;

    cr_assert_not_null(ck);
    a = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    b = ckpt_shard_add(ck, "posts", ARN, SH_B, SH_A, T0);
    c = ckpt_shard_add(ck, "users", ARN2, SH_C, NULL, T0 + 5);
    cr_assert(a && b && c);
    cr_assert_eq(ckpt_shard_advance(ck, a, "000000000000000000041",
                                    &(struct docver){ 1714521601, 3 }, T0 + 10),
                 0);
    ckpt_shard_finish(ck, a, T0 + 11);
    cr_assert_eq(ckpt_shard_advance(ck, b, "1234567890123456789012345678901234567890",
                                    &(struct docver){ 1714521700, 1048575 }, T0 + 12),
                 0);
    return ck;
}

/* ---- round trip and file ---------------------------------------------- */

Test(ckpt, round_trip_keeps_every_field)
{
    struct ckpt *ck = sample(), *ld;
    struct ckpt_shard *a, *b, *c;
    char err[512];
    struct stat st;

    cr_assert(ckpt_dirty(ck));
    cr_assert_eq(ckpt_save_sync(ck), 0);
    cr_assert_not(ckpt_dirty(ck));
    cr_assert_not(exists(tmppath), "no temporary file left behind");
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", st.st_mode & 07777);

    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_not(ckpt_dirty(ld));
    cr_assert_eq(ckpt_count(ld), 3);
    a = ckpt_shard_get(ld, ARN, SH_A);
    b = ckpt_shard_get(ld, ARN, SH_B);
    c = ckpt_shard_get(ld, ARN2, SH_C);
    cr_assert(a && b && c);
    cr_assert_null(ckpt_shard_get(ld, ARN2, SH_A), "shards are per stream");
    cr_assert_str_eq(a->seq, "000000000000000000041");
    cr_assert_eq(a->ver.second, 1714521601);
    cr_assert_eq(a->ver.ordinal, 3);
    cr_assert(a->done);
    cr_assert_null(a->parent);
    cr_assert_eq(a->updated, T0 + 11);
    cr_assert_str_eq(a->table, "posts");
    cr_assert_str_eq(b->seq, "1234567890123456789012345678901234567890");
    cr_assert_eq(b->ver.ordinal, DOCVER_ORDINAL_MAX);
    cr_assert_str_eq(b->parent, SH_A);
    cr_assert_not(b->done);
    cr_assert_str_eq(c->seq, "", "no checkpoint yet");
    cr_assert_str_eq(c->table, "users");
    cr_assert_str_eq(c->arn, ARN2);
    cr_assert_eq(c->updated, T0 + 5);

    /* Saving the loaded store gives the same bytes. */
    size_t n1, n2;
    char *t1 = slurp(path, &n1), *t2;

    cr_assert_eq(ckpt_save_sync(ld), 0);
    t2 = slurp(path, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_str_eq(t1, t2);
    cr_assert_not_null(strstr(t1, "\"version\":1"));
    cr_assert_not_null(strstr(t1, "\"updated\":\"2024-05-01T00:00:11Z\""));
    free(t1);
    free(t2);
    ckpt_free(ck);
    ckpt_free(ld);
    ckpt_free(NULL);
}

Test(ckpt, missing_file_is_an_empty_store)
{
    struct ckpt *ck = ckpt_new(dir);
    char err[256];

    cr_assert_eq(ckpt_load(ck, err, sizeof(err)), 0);
    cr_assert_eq(ckpt_count(ck), 0);
    cr_assert_null(ckpt_shard_get(ck, ARN, SH_A));
    cr_assert_str_eq(ckpt_path(ck), path);
    ckpt_free(ck);
}

static const struct {
    const char *name, *text, *says;
} corrupt[] = {
    { "empty", "", "line" },
    { "not JSON", "checkpoints, version 1\n", "line 1" },
    { "truncated", "{\"version\":1,\"streams\":{\"" ARN "\":{\"table\":\"posts\",\"sha", "line" },
    { "trailing garbage", "{\"version\":1,\"streams\":{}}\n}", "end of file expected" },
    { "array", "[1]", "not a JSON object" },
    { "wrong version", "{\"version\":3,\"streams\":{}}", "version 3 is not supported" },
    { "version as text", "{\"version\":\"1\",\"streams\":{}}", "version: missing" },
    { "no streams", "{\"version\":1}", "streams: missing" },
    { "unknown root key", "{\"version\":1,\"streams\":{},\"x\":0}", "unknown key \"x\"" },
    { "duplicate key", "{\"version\":1,\"version\":1,\"streams\":{}}", "duplicate" },
    { "no table", "{\"version\":1,\"streams\":{\"" ARN "\":{\"shards\":{}}}}", ".table" },
#define SHARD(body)                                                                                \
    "{\"version\":1,\"streams\":{\"" ARN "\":{\"table\":\"posts\",\"shards\":{\"" SH_A              \
    "\":" body "}}}}"
#define OK_REST "\"parent\":null,\"done\":false,\"updated\":\"2024-05-01T00:00:00Z\""
    { "short seq", SHARD("{\"seq\":\"12345\",\"ver_s\":1,\"ver_n\":0," OK_REST "}"),
      "seq: not a sequence number" },
    { "41-digit seq",
      SHARD("{\"seq\":\"12345678901234567890123456789012345678901\",\"ver_s\":1,\"ver_n\":0," OK_REST
            "}"),
      "seq: not a sequence number" },
    { "seq as number", SHARD("{\"seq\":12345,\"ver_s\":1,\"ver_n\":0," OK_REST "}"),
      "seq: missing" },
    { "ver_s as text",
      SHARD("{\"seq\":\"123456789012345678901\",\"ver_s\":\"1\",\"ver_n\":0," OK_REST "}"),
      "ver_s" },
    { "ver_n too big",
      SHARD("{\"seq\":\"123456789012345678901\",\"ver_s\":1,\"ver_n\":1048576," OK_REST "}"),
      "ver_n" },
    { "negative ver_s", SHARD("{\"seq\":null,\"ver_s\":-1,\"ver_n\":0," OK_REST "}"), "ver_s" },
    { "done as number",
      SHARD("{\"seq\":null,\"ver_s\":1,\"ver_n\":0,\"parent\":null,\"done\":0,"
            "\"updated\":\"2024-05-01T00:00:00Z\"}"),
      "done" },
    { "bad time",
      SHARD("{\"seq\":null,\"ver_s\":1,\"ver_n\":0,\"parent\":null,\"done\":false,"
            "\"updated\":\"2024-02-30T00:00:00Z\"}"),
      "updated" },
    { "missing key", SHARD("{\"seq\":null,\"ver_s\":1,\"ver_n\":0,\"done\":false}"), "parent" },
    { "unknown shard key", SHARD("{\"seq\":null,\"ver_s\":1,\"ver_n\":0,\"lease\":1," OK_REST "}"),
      "unknown key \"lease\"" },
    { "shard not object", SHARD("[]"), "not an object" },
    { "skip_before in version 1",
      SHARD("{\"seq\":null,\"ver_s\":1,\"ver_n\":0,\"skip_before\":5," OK_REST "}"),
      "unknown key \"skip_before\"" },
};

Test(ckpt, corrupt_files_fail_with_the_path_and_the_reason)
{
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(*corrupt); i++) {
        struct ckpt *ck = ckpt_new(dir);
        char err[512];

        spit(path, corrupt[i].text);
        cr_assert_eq(ckpt_load(ck, err, sizeof(err)), -EBADMSG, "%s: loaded", corrupt[i].name);
        cr_assert_eq(strncmp(err, path, strlen(path)), 0, "%s: message %s", corrupt[i].name, err);
        cr_assert_not_null(strstr(err, corrupt[i].says), "%s: message \"%s\" lacks \"%s\"",
                           corrupt[i].name, err, corrupt[i].says);
        cr_assert_eq(ckpt_count(ck), 0, "%s: nothing half-loaded", corrupt[i].name);
        ckpt_free(ck);
    }
}

Test(ckpt, a_valid_hand_written_file_loads)
{
    struct ckpt *ck = ckpt_new(dir);
    char err[512];

    spit(path, SHARD("{\"seq\":\"123456789012345678901\",\"ver_s\":5,\"ver_n\":2," OK_REST "}"));
    cr_assert_eq(ckpt_load(ck, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(ckpt_shard_get(ck, ARN, SH_A)->seq, "123456789012345678901");
    ckpt_free(ck);
}

Test(ckpt, truncating_a_real_file_anywhere_is_detected)
{
    struct ckpt *ck = sample();
    size_t n;
    char *full, err[512];

    cr_assert_eq(ckpt_save_sync(ck), 0);
    ckpt_free(ck);
    full = slurp(path, &n);
    /* Every cut short of the closing brace (the final newline is optional). */
    for (size_t cut = 0; cut + 1 < n; cut += 7) {
        FILE *f = fopen(path, "wb");

        fwrite(full, 1, cut, f);
        fclose(f);
        ck = ckpt_new(dir);
        cr_assert_eq(ckpt_load(ck, err, sizeof(err)), -EBADMSG, "cut at %zu loaded", cut);
        ckpt_free(ck);
    }
    free(full);
}

/* ---- atomicity -------------------------------------------------------- */

/* A full disk, simulated: files cannot grow past max bytes (the soft limit
 * only, so that it can be lifted again without privileges). */
static struct rlimit saved_fsize;

static void limit_file_size(rlim_t max)
{
    struct rlimit rl;

    signal(SIGXFSZ, SIG_IGN); /* writes past the limit fail with EFBIG instead */
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    rl = saved_fsize;
    rl.rlim_cur = max;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void unlimit_file_size(void)
{
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
}

Test(ckpt, a_failed_write_keeps_the_old_file)
{
    struct ckpt *ck = ckpt_new(dir), *ld;
    struct ckpt_shard *sh;
    char *before, *after, err[512];

    sh = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    before = slurp(path, NULL);

    /* A disk that fills up half-way through the new file. */
    for (int i = 0; i < 50; i++) {
        char id[64];

        snprintf(id, sizeof(id), "shardId-00000001714521600000-%08d", i);
        ckpt_shard_add(ck, "posts", ARN, id, SH_A, T0);
    }
    ckpt_shard_advance(ck, sh, "000000000000000000099", &(struct docver){ 9, 9 }, T0);
    limit_file_size(strlen(before) + 100);
    cr_assert_eq(ckpt_save_sync(ck), -EFBIG);
    unlimit_file_size();
    cr_assert(ckpt_dirty(ck), "still dirty: the next periodic save retries");
    cr_assert_not(exists(tmppath), "the partial temporary file is removed");
    after = slurp(path, NULL);
    cr_assert_str_eq(after, before, "the previous checkpoint is intact");
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_count(ld), 1);

    /* Room again: the retry succeeds. */
    cr_assert_eq(ckpt_save_sync(ck), 0);
    cr_assert_not(ckpt_dirty(ck));
    free(before);
    free(after);
    ckpt_free(ld);
    ckpt_free(ck);
}

Test(ckpt, a_failed_rename_leaves_no_temporary_file)
{
    struct ckpt *ck = sample();

    cr_assert_eq(mkdir(path, 0700), 0); /* checkpoints.json is a directory */
    cr_assert_lt(ckpt_save_sync(ck), 0);
    cr_assert_not(exists(tmppath));
    cr_assert(ckpt_dirty(ck));
    ckpt_free(ck);
}

Test(ckpt, a_leftover_temporary_file_does_not_matter)
{
    struct ckpt *ck = sample();
    struct stat st;

    spit(tmppath, "garbage from a crash");
    chmod(tmppath, 0644);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    cr_assert_not(exists(tmppath));
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    ckpt_free(ck);
}

/* ---- asynchronous saves ----------------------------------------------- */

struct saved {
    int calls;
    int status[8];
    bool busy[8]; /* ckpt_busy() seen inside the callback */
};

static void on_saved(struct ckpt *ck, int status, void *arg)
{
    struct saved *s = arg;

    cr_assert_lt(s->calls, 8);
    s->status[s->calls] = status;
    s->busy[s->calls] = ckpt_busy(ck);
    s->calls++;
}

Test(ckpt, async_save_writes_off_the_loop)
{
    struct ckpt *ck = sample(), *ld;
    struct saved s = { 0 };
    uv_loop_t loop;
    char err[512];

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(ckpt_save_async(ck, &loop, on_saved, &s), 0);
    cr_assert(ckpt_busy(ck));
    cr_assert_not(ckpt_dirty(ck), "the content was taken at the call");
    cr_assert_eq(ckpt_save_sync(ck), -EBUSY);
    cr_assert_eq(s.calls, 0, "the callback never runs inside the call");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.status[0], 0);
    cr_assert_not(ckpt_busy(ck));
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_count(ld), 3);
    ckpt_free(ld);
    ckpt_free(ck);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(ckpt, requests_during_a_write_coalesce_into_one_more_write)
{
    struct ckpt *ck = sample(), *ld;
    struct ckpt_shard *c = ckpt_shard_get(ck, ARN2, SH_C);
    struct saved s = { 0 };
    uv_loop_t loop;
    char err[512];

    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(ckpt_save_async(ck, &loop, on_saved, &s), 0);
    ckpt_shard_advance(ck, c, "000000000000000000500", &(struct docver){ 50, 0 }, T0);
    cr_assert_eq(ckpt_save_async(ck, &loop, on_saved, &s), 0);
    ckpt_shard_advance(ck, c, "000000000000000000600", &(struct docver){ 60, 0 }, T0);
    cr_assert_eq(ckpt_save_async(ck, &loop, on_saved, &s), 0);
    cr_assert(ckpt_dirty(ck), "the last change is not taken yet");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(s.calls, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(s.status[i], 0);
    cr_assert(s.busy[0], "the second write had started when the first reported");
    cr_assert_not(s.busy[1], "requests 2 and 3 shared one write");
    cr_assert_not(s.busy[2]);
    cr_assert_not(ckpt_dirty(ck));
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(ckpt_shard_get(ld, ARN2, SH_C)->seq, "000000000000000000600",
                     "the coalesced write carries the latest state");
    ckpt_free(ld);
    ckpt_free(ck);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(ckpt, async_failure_is_reported_and_keeps_the_old_file)
{
    struct ckpt *ck = ckpt_new(dir);
    struct saved s = { 0 };
    uv_loop_t loop;
    char *before, *after;

    ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    before = slurp(path, NULL);
    for (int i = 0; i < 50; i++) {
        char id[64];

        snprintf(id, sizeof(id), "shardId-00000001714521600000-%08d", i);
        ckpt_shard_add(ck, "posts", ARN, id, NULL, T0);
    }
    cr_assert_eq(uv_loop_init(&loop), 0);
    limit_file_size(strlen(before) + 100);
    cr_assert_eq(ckpt_save_async(ck, &loop, on_saved, &s), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    unlimit_file_size();
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.status[0], -EFBIG);
    cr_assert(ckpt_dirty(ck));
    cr_assert_not(exists(tmppath));
    after = slurp(path, NULL);
    cr_assert_str_eq(after, before);
    free(before);
    free(after);
    ckpt_free(ck);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ---- lock ------------------------------------------------------------- */

Test(ckpt, the_lock_refuses_a_second_holder)
{
    char sd[128], lock[160];
    struct stat st;
    int fd1 = -1, fd2 = -1;

    snprintf(sd, sizeof(sd), "%s/var/lib/ddb2es", dir);
    snprintf(lock, sizeof(lock), "%s/lock", sd);
    cr_assert_eq(statedir_lock(sd, &fd1), 0);
    cr_assert_eq(stat(sd, &st), 0, "the state directory is created");
    cr_assert_eq(st.st_mode & 07777, 0700);
    cr_assert_eq(stat(lock, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    /* A second open file description conflicts as another process would. */
    cr_assert_eq(statedir_lock(sd, &fd2), -EWOULDBLOCK);
    cr_assert_eq(fd2, -1, "untouched on failure");

    pid_t pid = fork();

    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = -1;

        _exit(statedir_lock(sd, &fd) == -EWOULDBLOCK ? 0 : 1);
    }
    int wst;

    cr_assert_eq(waitpid(pid, &wst, 0), pid);
    cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "another process is refused too");

    statedir_unlock(fd1);
    cr_assert_eq(statedir_lock(sd, &fd2), 0, "free again after unlock");
    statedir_unlock(fd2);
    statedir_unlock(-1);
}

Test(ckpt, the_lock_needs_a_directory)
{
    char file[128];
    int fd = -1;

    snprintf(file, sizeof(file), "%s/plain", dir);
    spit(file, "x");
    cr_assert_eq(statedir_lock(file, &fd), -ENOTDIR);
}

/* ---- pruning and lookups ---------------------------------------------- */

Test(ckpt, prune_drops_only_shards_done_for_a_day)
{
    struct ckpt *ck = ckpt_new(dir);
    time_t now = T0 + 100000;
    struct ckpt_shard *old_done, *new_done, *old_open, *other;

    old_done = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    new_done = ckpt_shard_add(ck, "posts", ARN, SH_B, SH_A, T0);
    old_open = ckpt_shard_add(ck, "posts", ARN, SH_C, SH_B, T0);
    other = ckpt_shard_add(ck, "users", ARN2, SH_A, NULL, T0);
    ckpt_shard_finish(ck, old_done, now - CKPT_PRUNE_AGE - 1);
    ckpt_shard_finish(ck, new_done, now - CKPT_PRUNE_AGE);
    ckpt_shard_finish(ck, other, now - CKPT_PRUNE_AGE - 3600);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    cr_assert_not(ckpt_dirty(ck));

    cr_assert_eq(ckpt_prune(ck, now), 2);
    cr_assert(ckpt_dirty(ck));
    cr_assert_eq(ckpt_count(ck), 2);
    cr_assert_null(ckpt_shard_get(ck, ARN, SH_A));
    cr_assert_null(ckpt_shard_get(ck, ARN2, SH_A));
    cr_assert_eq(ckpt_shard_get(ck, ARN, SH_B), new_done, "kept pointers stay valid");
    cr_assert_eq(ckpt_shard_get(ck, ARN, SH_C), old_open, "open shards are never pruned");
    cr_assert_eq(ckpt_prune(ck, now), 0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    char *text = slurp(path, NULL);

    cr_assert_null(strstr(text, ARN2), "a stream left without shards goes too");
    free(text);
    ckpt_free(ck);
}

/* A done shard that its stream still lists is not pruned, however old: it
 * would be taken for a new shard at the next listing and read again. */
Test(ckpt, prune_keeps_a_done_shard_still_listed)
{
    struct ckpt *ck = ckpt_new(dir);
    time_t now = T0 + 100000;
    struct ckpt_shard *listed, *gone;

    listed = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    gone = ckpt_shard_add(ck, "posts", ARN, SH_B, NULL, T0);
    ckpt_shard_finish(ck, listed, now - CKPT_PRUNE_AGE - 10);
    ckpt_shard_finish(ck, gone, now - CKPT_PRUNE_AGE - 10);
    ckpt_shard_seen(listed, now - 60);
    ckpt_shard_seen(gone, now - 2 * 3600);
    cr_assert_eq(ckpt_prune(ck, now), 1);
    cr_assert_eq(ckpt_shard_get(ck, ARN, SH_A), listed, "listed a minute ago: kept");
    cr_assert_null(ckpt_shard_get(ck, ARN, SH_B), "not listed for two hours: pruned");
    ckpt_free(ck);
}

/* A shard that started at LATEST and has no checkpoint yet keeps the second
 * it started at (format version 2); once it has a checkpoint the file is
 * version 1 again. */
Test(ckpt, skip_before_round_trips_in_format_2)
{
    struct ckpt *ck = ckpt_new(dir), *ld = ckpt_new(dir);
    struct ckpt_shard *a = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    char err[512], *text;

    ckpt_shard_skip_before(ck, a, 1714521000);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    text = slurp(path, NULL);
    cr_assert_not_null(strstr(text, "\"version\":2"), "%s", text);
    cr_assert_not_null(strstr(text, "\"skip_before\":1714521000"), "%s", text);
    free(text);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_shard_get(ld, ARN, SH_A)->skip_before, 1714521000);
    ckpt_shard_skip_before(ck, a, 0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    text = slurp(path, NULL);
    cr_assert_not_null(strstr(text, "\"version\":1"), "%s", text);
    cr_assert_null(strstr(text, "skip_before"));
    free(text);
    ckpt_free(ck);
    ckpt_free(ld);
}

/* The highest version state a table's shards used, over all its streams:
 * the floor of a stream that replaces another. */
Test(ckpt, the_table_floor_is_the_highest_version_of_any_stream)
{
    struct ckpt *ck = ckpt_new(dir);
    struct ckpt_shard *a = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    struct ckpt_shard *c = ckpt_shard_add(ck, "posts", ARN2, SH_C, NULL, T0);
    struct ckpt_shard *u = ckpt_shard_add(ck, "users", ARN "-users", SH_B, NULL, T0);
    struct docver v;

    cr_assert_not(ckpt_table_known(ck, "orders"));
    cr_assert(ckpt_table_known(ck, "posts"));
    ckpt_shard_advance(ck, a, "000000000000000000041", &(struct docver){ 1000, 7 }, T0);
    ckpt_shard_advance(ck, u, "000000000000000000042", &(struct docver){ 5000, 1 }, T0);
    v = ckpt_table_max_version(ck, "posts");
    cr_assert(v.second == 1000 && v.ordinal == 7, "other tables do not count");
    ckpt_shard_raise_version(ck, c, &v);
    cr_assert(c->ver.second == 1000 && c->ver.ordinal == 7);
    ckpt_shard_raise_version(ck, c, &(struct docver){ 999, 9 });
    cr_assert(c->ver.second == 1000 && c->ver.ordinal == 7, "never lowered");
    cr_assert_eq(docver_next(&c->ver, 1000), (1000ull << 20) | 8,
                 "the next record of that second counts on from the floor");
    ckpt_free(ck);
}

static int count_visit(const struct ckpt_shard *sh, void *arg)
{
    (*(size_t *)arg)++;
    return 0;
}

static int stop_visit(const struct ckpt_shard *sh, void *arg)
{
    return strcmp(sh->id, arg) == 0 ? 42 : 0;
}

Test(ckpt, thousands_of_shards_are_found_again)
{
    struct ckpt *ck = ckpt_new(dir), *ld;
    char id[64], err[512];
    size_t n = 0;

    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "shardId-%020d-%08x", i, (unsigned)i * 2654435761u);
        cr_assert_not_null(ckpt_shard_add(ck, "posts", i % 2 ? ARN : ARN2, id, NULL, T0));
    }
    cr_assert_eq(ckpt_count(ck), 5000);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    for (int i = 0; i < 5000; i++) {
        struct ckpt_shard *sh;

        snprintf(id, sizeof(id), "shardId-%020d-%08x", i, (unsigned)i * 2654435761u);
        sh = ckpt_shard_get(ld, i % 2 ? ARN : ARN2, id);
        cr_assert_not_null(sh, "%s lost", id);
        cr_assert_str_eq(sh->id, id);
        cr_assert_null(ckpt_shard_get(ld, i % 2 ? ARN2 : ARN, id));
    }
    cr_assert_eq(ckpt_foreach(ld, count_visit, &n), 0);
    cr_assert_eq(n, 5000);
    cr_assert_eq(ckpt_foreach(ld, stop_visit, id), 42, "the visitor can stop early");
    ckpt_free(ld);
    ckpt_free(ck);
}

Test(ckpt, a_checkpoint_never_goes_back)
{
    struct ckpt *ck = ckpt_new(dir);
    struct ckpt_shard *sh = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    struct docver v = { 1, 1 };

    cr_assert_eq(ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0), sh, "add finds an existing");
    cr_assert_null(ckpt_shard_add(ck, "posts", ARN, "", NULL, T0));
    cr_assert_eq(ckpt_shard_advance(ck, sh, "0000000000000000000000000100", &v, T0), 0);
    cr_assert_eq(ckpt_shard_advance(ck, sh, "000000000000000000099", &v, T0), -EINVAL);
    cr_assert_eq(ckpt_shard_advance(ck, sh, "99", &v, T0), -EINVAL);
    cr_assert_eq(ckpt_shard_advance(ck, sh, "000000000000000000100", &v, T0), 0, "equal is fine");
    cr_assert_eq(ckpt_shard_advance(ck, sh, "000000000000000000101", &v, T0 + 9), 0);
    cr_assert_str_eq(sh->seq, "000000000000000000101");
    cr_assert_eq(sh->updated, T0 + 9);
    ckpt_free(ck);
}

/* ---- versions ---------------------------------------------------------- */

#define V(s, n) (((uint64_t)(s) << 20) | (n))

Test(ckpt, version_counts_records_within_a_second)
{
    struct docver st = { 0, 0 };

    cr_assert_eq(docver_next(&st, 1000), V(1000, 0));
    cr_assert_eq(docver_next(&st, 1000), V(1000, 1));
    cr_assert_eq(docver_next(&st, 1000), V(1000, 2));
    cr_assert_eq(docver_next(&st, 1001), V(1001, 0));
    cr_assert_eq(docver_next(&st, 999), V(1001, 1), "an older second never goes back");
    cr_assert_eq(st.second, 1001);
    cr_assert_eq(st.ordinal, 1);
}

Test(ckpt, version_equal_inputs_give_equal_outputs)
{
    struct docver a = { 1714521600, 17 }, b = a;

    for (int i = 0; i < 100; i++) {
        int64_t created = 1714521600 + (i * 7919) % 13 - 3;

        cr_assert_eq(docver_next(&a, created), docver_next(&b, created));
    }
    /* Field by field: the struct's padding is never written. */
    cr_assert(a.second == b.second && a.ordinal == b.ordinal);
}

Test(ckpt, version_overflow_borrows_the_next_second)
{
    struct docver st = { 500, DOCVER_ORDINAL_MAX - 1 };
    uint64_t v1 = docver_next(&st, 500), v2, v3, v4;

    cr_assert_eq(v1, V(500, DOCVER_ORDINAL_MAX));
    v2 = docver_next(&st, 500);
    cr_assert_eq(v2, V(501, 0));
    v3 = docver_next(&st, 500);
    v4 = docver_next(&st, 501);
    cr_assert(v1 < v2 && v2 < v3 && v3 < v4, "strictly increasing through the overflow");
    cr_assert_eq(docver_next(&st, 502), V(502, 0));
    /* Absurd clocks are clamped; versions stay below 2^63. */
    st = (struct docver){ 0, 0 };
    cr_assert_lt(docver_next(&st, INT64_MAX), UINT64_C(1) << 63);
    st = (struct docver){ 0, 0 };
    cr_assert_eq(docver_next(&st, -5), V(0, 1));
}

/* A backfill row read at second s (DESIGN invariant 2: (s - margin) << 20)
 * loses to every stream record of s or later, and wins over those before. */
Test(ckpt, version_of_a_backfill_row_lies_just_below_its_second)
{
    struct docver st = { 0, 0 };

    cr_assert_lt(docver_below(1000), docver_next(&st, 1000));
    cr_assert_eq(docver_below(1000), V(999, DOCVER_ORDINAL_MAX));
    cr_assert_eq(docver_below(-7), V(0, DOCVER_ORDINAL_MAX), "clamped to second 1");
    cr_assert_lt(docver_below(INT64_MAX), UINT64_C(1) << 63);
}

/* The child continues the parent's count: a write in the parent's last second
 * and one in the child's first (the same second) are ordered, which a
 * per-shard counter restarting at zero would get wrong. */
Test(ckpt, version_is_monotonic_across_a_lineage_handover)
{
    struct ckpt *ck = ckpt_new(dir), *ld;
    struct ckpt_shard *parent, *child, *orphan;
    struct docver st, cst;
    uint64_t last_parent, first_child;
    char err[512];

    parent = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    child = ckpt_shard_add(ck, "posts", ARN, SH_B, SH_A, T0);
    orphan = ckpt_shard_add(ck, "posts", ARN, SH_C, "shardId-00000001700000000000-gone0000", T0);
    st = ckpt_shard_resume_version(ck, parent);
    docver_next(&st, 2000);
    docver_next(&st, 2000);
    last_parent = docver_next(&st, 2000);
    ckpt_shard_advance(ck, parent, "000000000000000000041", &st, T0);
    ckpt_shard_finish(ck, parent, T0);

    cr_assert_eq(ckpt_save_sync(ck), 0);
    cst = ckpt_shard_resume_version(ck, child);
    cr_assert(ckpt_dirty(ck), "the inherited state is stored in the child");
    first_child = docver_next(&cst, 2000);
    cr_assert_gt(first_child, last_parent);
    cr_assert_eq(first_child, V(2000, 3));
    cr_assert_gt(docver_next(&cst, 1999), first_child, "clock skew across shards");

    st = ckpt_shard_resume_version(ck, orphan);
    cr_assert_eq(st.second, 0, "unknown parent: the shard's own state");

    /* The inheritance survives a restart even after the parent is pruned. */
    cr_assert_eq(ckpt_save_sync(ck), 0);
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(ckpt_prune(ld, T0 + CKPT_PRUNE_AGE + 1), 1);
    cst = ckpt_shard_resume_version(ld, ckpt_shard_get(ld, ARN, SH_B));
    cr_assert_eq(docver_next(&cst, 2000), V(2000, 3));
    ckpt_free(ld);
    ckpt_free(ck);
}

/* A run issues versions, crashes with records in flight, and restarts from
 * its checkpoint: the records re-read after the checkpoint get exactly the
 * versions they had before. */
Test(ckpt, a_restart_from_the_checkpoint_reproduces_the_versions)
{
    enum { N = 40 };
    static const int64_t created[N] = { 10, 10, 10, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 13,
                                        13, 13, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 16, 16,
                                        16, 17, 17, 17, 17, 17, 18, 18, 18, 18, 18, 18 };
    char seqs[N][SEQNUM_MAX + 1], err[512];
    uint64_t first_run[N];
    int64_t tickets[N];
    struct ckpt *ck = ckpt_new(dir), *ld;
    struct ckpt_shard *sh = ckpt_shard_add(ck, "posts", ARN, SH_A, NULL, T0);
    struct ack *t = ack_new();
    struct docver st = ckpt_shard_resume_version(ck, sh), v;
    const char *s;

    for (int i = 0; i < N; i++) {
        snprintf(seqs[i], sizeof(seqs[i]), "%021d", 1000 + 2 * i);
        first_run[i] = docver_next(&st, created[i]);
        tickets[i] = ack_push(t, seqs[i], &st);
        cr_assert_eq(tickets[i], i);
    }
    /* Records 0..24 finish, 26 and 30 too; 25 is still in flight at the crash. */
    for (int i = 24; i >= 0; i--)
        ack_done(t, tickets[i]);
    ack_done(t, tickets[26]);
    ack_done(t, tickets[30]);
    s = ack_checkpoint(t, &v);
    cr_assert_str_eq(s, seqs[24]);
    cr_assert_eq(ckpt_shard_advance(ck, sh, s, &v, T0), 0);
    cr_assert_eq(ckpt_save_sync(ck), 0);
    ack_free(t);
    ckpt_free(ck);

    /* Restart: resume after the checkpoint and re-read records 25.. */
    ld = ckpt_new(dir);
    cr_assert_eq(ckpt_load(ld, err, sizeof(err)), 0, "%s", err);
    sh = ckpt_shard_get(ld, ARN, SH_A);
    cr_assert_str_eq(sh->seq, seqs[24]);
    st = ckpt_shard_resume_version(ld, sh);
    for (int i = 25; i < N; i++)
        cr_assert_eq(docver_next(&st, created[i]), first_run[i], "record %d", i);
    ckpt_free(ld);
}

/* ---- another backend behind the same calls ----------------------------- */

/* The smallest backend daemon/ckpt_store.h allows, kept in memory: entries
 * in insertion order, found by a linear search; a save copies every entry
 * into `durable`, which outlives the store as a lease table outlives the
 * process that wrote it, and an asynchronous save reports on the next loop
 * turn.  It does what ckpt_store.h asks of a backend and nothing more, so
 * the rules the test sees (no going back, inheritance, the table's highest
 * version) can only come from the ckpt_* functions. */
#define MEM_MAX 8

struct mem_entry {
    struct ckpt_shard sh; /* its strings point into the arrays below */
    char id[80], parent[80], arn[160], table[32];
};

struct mem_durable {
    struct mem_entry e[MEM_MAX];
    size_t n;
    int saves;
};

struct mem_store {
    struct ckpt base;
    struct mem_durable *durable;
    struct mem_entry *e[MEM_MAX];
    size_t n;
    int changed, busy;
    bool dirty;
};

struct mem_job {
    uv_timer_t timer;
    struct mem_store *st;
    ckpt_saved_cb *cb;
    void *arg;
};

static struct mem_store *mem_of(const struct ckpt *ck)
{
    return (struct mem_store *)ck;
}

static void mem_copy(struct mem_entry *to, const struct mem_entry *from)
{
    *to = *from;
    to->sh.id = to->id;
    to->sh.parent = from->sh.parent ? to->parent : NULL;
    to->sh.arn = to->arn;
    to->sh.table = to->table;
}

static void mem_save(struct mem_store *st)
{
    for (size_t i = 0; i < st->n; i++)
        mem_copy(&st->durable->e[i], st->e[i]);
    st->durable->n = st->n;
    st->durable->saves++;
    st->dirty = false;
}

static void mem_free(struct ckpt *ck)
{
    struct mem_store *st = mem_of(ck);

    for (size_t i = 0; i < st->n; i++)
        free(st->e[i]);
    free(st);
}

static const char *mem_path(const struct ckpt *ck)
{
    return "memory";
}

static int mem_load(struct ckpt *ck, char *err, size_t errlen)
{
    struct mem_store *st = mem_of(ck);

    if (st->n)
        return -EBUSY;
    for (size_t i = 0; i < st->durable->n; i++) {
        st->e[i] = malloc(sizeof(*st->e[i]));
        cr_assert_not_null(st->e[i]);
        mem_copy(st->e[i], &st->durable->e[i]);
    }
    st->n = st->durable->n;
    st->dirty = false;
    return 0;
}

static struct ckpt_shard *mem_get(struct ckpt *ck, const char *arn, const char *id)
{
    struct mem_store *st = mem_of(ck);

    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->e[i]->arn, arn) == 0 && strcmp(st->e[i]->id, id) == 0)
            return &st->e[i]->sh;
    return NULL;
}

static struct ckpt_shard *mem_add(struct ckpt *ck, const char *table, const char *arn,
                                  const char *id, const char *parent, time_t now)
{
    struct mem_store *st = mem_of(ck);
    struct mem_entry *e = calloc(1, sizeof(*e));

    cr_assert(e && st->n < MEM_MAX && *table && *arn && *id && (!parent || *parent),
              "the interface checks the arguments before add");
    cr_assert_null(mem_get(ck, arn, id), "add is called only for an unknown entry");
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->parent, sizeof(e->parent), "%s", parent ? parent : "");
    snprintf(e->arn, sizeof(e->arn), "%s", arn);
    snprintf(e->table, sizeof(e->table), "%s", table);
    e->sh.id = e->id;
    e->sh.parent = parent ? e->parent : NULL;
    e->sh.arn = e->arn;
    e->sh.table = e->table;
    e->sh.updated = now;
    st->e[st->n++] = e;
    st->dirty = true;
    return &e->sh;
}

static void mem_changed(struct ckpt *ck, struct ckpt_shard *sh)
{
    mem_of(ck)->changed++;
    mem_of(ck)->dirty = true;
}

static int mem_foreach(const struct ckpt *ck, int (*fn)(const struct ckpt_shard *sh, void *arg),
                       void *arg)
{
    struct mem_store *st = mem_of(ck);
    int rc;

    for (size_t i = 0; i < st->n; i++)
        if ((rc = fn(&st->e[i]->sh, arg)) != 0)
            return rc;
    return 0;
}

static size_t mem_count(const struct ckpt *ck)
{
    return mem_of(ck)->n;
}

static size_t mem_prune(struct ckpt *ck, time_t now)
{
    struct mem_store *st = mem_of(ck);
    size_t n = 0, dropped = 0;

    for (size_t i = 0; i < st->n; i++) {
        if (ckpt_shard_prunable(&st->e[i]->sh, now)) {
            free(st->e[i]);
            dropped++;
        } else {
            st->e[n++] = st->e[i];
        }
    }
    st->n = n;
    st->dirty |= dropped > 0;
    return dropped;
}

static bool mem_dirty(const struct ckpt *ck)
{
    return mem_of(ck)->dirty;
}

static bool mem_busy(const struct ckpt *ck)
{
    return mem_of(ck)->busy > 0;
}

static void mem_job_closed(uv_handle_t *h)
{
    free(h->data);
}

static void mem_job_done(uv_timer_t *t)
{
    struct mem_job *job = t->data;

    job->st->busy--;
    if (job->cb)
        job->cb(&job->st->base, 0, job->arg);
    uv_close((uv_handle_t *)t, mem_job_closed);
}

/* The state is durable at once; only the report waits for the loop. */
static int mem_save_async(struct ckpt *ck, uv_loop_t *loop, ckpt_saved_cb *cb, void *arg)
{
    struct mem_job *job = calloc(1, sizeof(*job));

    if (!job)
        return -ENOMEM;
    *job = (struct mem_job){ .st = mem_of(ck), .cb = cb, .arg = arg };
    job->timer.data = job;
    uv_timer_init(loop, &job->timer);
    uv_timer_start(&job->timer, mem_job_done, 0, 0);
    mem_save(job->st);
    job->st->busy++;
    return 0;
}

static int mem_save_sync(struct ckpt *ck)
{
    if (mem_busy(ck))
        return -EBUSY;
    mem_save(mem_of(ck));
    return 0;
}

static const struct ckpt_store_ops mem_ops = {
    .free = mem_free,
    .path = mem_path,
    .load = mem_load,
    .get = mem_get,
    .add = mem_add,
    .changed = mem_changed,
    .foreach = mem_foreach,
    .count = mem_count,
    .prune = mem_prune,
    .dirty = mem_dirty,
    .busy = mem_busy,
    .save_async = mem_save_async,
    .save_sync = mem_save_sync,
};

static struct ckpt *mem_new(struct mem_durable *durable)
{
    struct mem_store *st = calloc(1, sizeof(*st));

    cr_assert_not_null(st);
    st->base.ops = &mem_ops;
    st->durable = durable;
    return &st->base;
}

static struct ckpt *mem_make(void *ctx)
{
    return mem_new(ctx);
}

static int mem_changes(struct ckpt *ck, void *ctx)
{
    return mem_of(ck)->changed;
}

Test(ckpt, another_backend_gets_the_same_rules_through_the_public_calls)
{
    struct mem_durable durable = { 0 };
    uv_loop_t loop;

    cr_assert_eq(uv_loop_init(&loop), 0);
    ckpt_rules_check(&(struct ckpt_backend){ .make = mem_make, .changes = mem_changes,
                                             .path = "memory", .loop = &loop, .ctx = &durable });
    cr_assert_eq(durable.n, 2, "the pruned entry is gone from the durable state");
    cr_assert_eq(durable.saves, 2);
    cr_assert_eq(uv_loop_close(&loop), 0);
}
