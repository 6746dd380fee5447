/* ddb2es verify: the comparison of documents as JSON (unit), then against
 * DynamoDB Local and the search double: documents removed and altered
 * behind a running daemon's back are reported exactly and repaired while a
 * live workload writes other keys; extra documents are reported and
 * deleted; numbers compare by value, 38 digits exactly. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/jsonx.h"
#include "daemon/verify_int.h"
#include "tests/support/ddbclient.h"
#include "tests/support/e2e.h"
#include "tests/support/proc.h"
#include "tests/support/searchd_ctl.h"
#include "tests/support/workload.h"

/* ---- the comparison (pure) ---------------------------------------------- */

static bool same(const char *a, const char *b)
{
    return verify_json_same(a, strlen(a), b, strlen(b));
}

static char *canon(const char *a)
{
    static char out[1024];
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    cr_assert_eq(verify_canon(a, strlen(a), &b), 0, "%s", a);
    snprintf(out, sizeof(out), "%.*s", (int)b.len, b.ptr);
    buf_close(&b);
    return out;
}

Test(verify_pure, members_in_any_order_are_the_same_document)
{
    cr_assert(same("{\"a\":1,\"b\":{\"x\":[1,2],\"y\":null}}",
                   " { \"b\" : {\"y\":null, \"x\":[1, 2]}, \"a\":1 } "));
    cr_assert_not(same("{\"a\":1,\"b\":[1,2]}", "{\"a\":1,\"b\":[2,1]}"), "arrays keep order");
    cr_assert_not(same("{\"a\":1}", "{\"a\":1,\"b\":1}"));
    cr_assert_not(same("{\"a\":true}", "{\"a\":\"true\"}"));
    cr_assert_not(same("{\"a\":null}", "{}"));
}

Test(verify_pure, numbers_compare_by_value)
{
    cr_assert(same("[1.0]", "[1]"));
    cr_assert(same("[1]", "[1e0]"));
    cr_assert(same("[1]", "[10E-1]"));
    cr_assert(same("[100]", "[1e2]"));
    cr_assert(same("[0.5]", "[5.000e-1]"));
    cr_assert(same("[-0]", "[0.0e7]"), "zero has one value");
    cr_assert(same("[1E+125]", "[1" "00000000000000000000000000000000000000000000000000"
                   "000000000000000000000000000000000000000000000000000000000000000000000000000]"));
    cr_assert_not(same("[1]", "[-1]"));
    cr_assert_not(same("[1.5]", "[15]"));
    cr_assert_str_eq(canon("{\"b\":1.50,\"a\":-0.0020}"), "{\"a\":-2e-3,\"b\":15e-1}");
}

Test(verify_pure, thirty_eight_digits_compare_exactly)
{
    /* Equal as doubles (2^-52 apart is far coarser), not as numbers. */
    cr_assert_not(same("{\"n\":12345678901234567890123456789012345678}",
                       "{\"n\":12345678901234567890123456789012345679}"));
    cr_assert_not(same("{\"n\":0.12345678901234567890123456789012345678}",
                       "{\"n\":0.12345678901234567890123456789012345677}"));
    cr_assert(same("{\"n\":12345678901234567890123456789012345678}",
                   "{\"n\":1.2345678901234567890123456789012345678E+37}"));
    cr_assert(same("{\"n\":9.9999999999999999999999999999999999999E+125}",
                   "{\"n\":99999999999999999999999999999999999999e88}"));
}

Test(verify_pure, strings_compare_decoded)
{
    cr_assert(same("[\"A\\u00e9\"]", "[\"\\u0041\xc3\xa9\"]"));
    cr_assert(same("[\"\\/\"]", "[\"/\"]"));
    cr_assert(same("{\"a\\u0000b\":\"x\\u0000\"}", "{\"a\\u0000b\":\"x\\u0000\"}"));
    cr_assert_not(same("{\"a\\u0000b\":1}", "{\"a\":1}"), "a name holding NUL is whole");
    cr_assert(same("[\"\\ud83d\\ude00\"]", "[\"\xf0\x9f\x98\x80\"]"), "a pair is one code point");
    cr_assert_not(same("[\"\\ud800\"]", "[\"\\udc00\"]"), "lone surrogates stay apart");
    cr_assert_not(same("[\"a\"]", "[\"b\"]"));
}

Test(verify_pure, text_that_is_not_json_is_equal_only_to_itself)
{
    struct buf b;

    buf_init(&b, BUF_NOMAX);
    cr_assert_eq(verify_canon("{\"a\":}", 6, &b), -EINVAL);
    cr_assert_eq(verify_canon("[1] x", 5, &b), -EINVAL);
    cr_assert_eq(verify_canon("[1e9999999999999999999]", 23, &b), -ERANGE);
    cr_assert_eq(b.len, 0u);
    buf_close(&b);
    cr_assert(same("{\"a\":}", "{\"a\":}"));
    cr_assert_not(same("{\"a\":}", "{\"a\": }"));
}

struct got_list {
    size_t n;
    char ids[4][16];
    bool found[4];
    int64_t version[4];
    char src[4][128];
};

static int collect(void *arg, const struct verify_got *g)
{
    struct got_list *l = arg;

    cr_assert_lt(l->n, 4u);
    cr_assert_lt(g->id_len, sizeof(l->ids[0]));
    memcpy(l->ids[l->n], g->id, g->id_len + 1);
    l->found[l->n] = g->found;
    l->version[l->n] = g->version;
    snprintf(l->src[l->n], sizeof(l->src[0]), "%.*s", (int)g->src_len, g->src ? g->src : "");
    l->n++;
    return 0;
}

Test(verify_pure, mget_reply_keeps_the_source_text)
{
    /* The shape of MultiGetResponse (Elasticsearch reference, Multi get API). */
    static const char reply[] =
        "{\"docs\":[{\"_index\":\"p\",\"_id\":\"a\\u0000|1\",\"_version\":1099511627775,"
        "\"_seq_no\":3,\"_primary_term\":1,\"found\":true,\"_source\":{\"n\":"
        "12345678901234567890123456789012345678,\"s\":\"}\"}},"
        "{\"_index\":\"p\",\"_id\":\"b\",\"found\":false}]}";
    struct got_list l = { 0 };

    cr_assert_eq(verify_parse_mget(reply, sizeof(reply) - 1, collect, &l), 0);
    cr_assert_eq(l.n, 2u);
    cr_assert_eq(memcmp(l.ids[0], "a\0|1", 5), 0, "the id is decoded, NUL and all");
    cr_assert(l.found[0]);
    cr_assert_eq(l.version[0], 1099511627775);
    cr_assert_str_eq(l.src[0], "{\"n\":12345678901234567890123456789012345678,\"s\":\"}\"}");
    cr_assert_str_eq(l.ids[1], "b");
    cr_assert_not(l.found[1]);
    cr_assert_eq(verify_parse_mget("{\"hits\":[]}", 11, collect, &l), -EPROTO);
    cr_assert_eq(verify_parse_mget("{\"docs\":[{\"_id\":", 16, collect, &l), -EPROTO);
}

Test(verify_pure, the_scanned_set_holds_every_id_added)
{
    struct verify_idset s = { 0 };
    char id[32];

    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "k%d", i);
        cr_assert_eq(verify_idset_add(&s, verify_hash(id, strlen(id))), 0);
    }
    cr_assert_eq(s.len, 5000u);
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "k%d", i);
        cr_assert(verify_idset_has(&s, verify_hash(id, strlen(id))), "%s", id);
    }
    cr_assert_not(verify_idset_has(&s, verify_hash("k5000", 5)));
    cr_assert_leq(s.cap * sizeof(uint64_t), 5000 * 8 * 4u, "at most 4x the hashes' size");
    verify_idset_free(&s);
}

Test(verify_pure, member_lookup_decodes_names)
{
    static const char doc[] = "{\"a\\u0000\":1,\"pk\":\"x\\\"y\",\"n\":-1.5e3}";
    size_t len = 0;
    const char *v = verify_member(doc, sizeof(doc) - 1, "pk", 2, &len);

    cr_assert_not_null(v);
    cr_assert_eq(len, 6u);
    cr_assert_eq(memcmp(v, "\"x\\\"y\"", 6), 0);
    cr_assert_not_null(verify_member(doc, sizeof(doc) - 1, "a\0", 2, &len));
    cr_assert_null(verify_member(doc, sizeof(doc) - 1, "a", 1, &len));
}

/* ---- against DynamoDB Local and the search double ------------------------------ */

static const char *const test_env[] = { "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
                                        NULL };

TestSuite(verify, .timeout = 240);

static void need_ddb(void)
{
    if (!ddbc_endpoint())
        cr_skip_test("DynamoDB Local is not running (run the suite through tests/run.sh)");
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s);
}

static void new_table(char *name, size_t len, const char *prefix, struct e2e_table *t,
                      const char *hash, const char *ht, const char *range, const char *rt)
{
    ddbc_table_name(name, len, prefix);
    lower(name);
    memset(t, 0, sizeof(*t));
    t->name = t->index = name;
    t->hash = hash;
    t->range = range;
    ddbc_create_table(name, hash, ht, range, rt, "NEW_AND_OLD_IMAGES");
}

/* Runs `ddb2es verify -c conf ARGS...` to its end: its exit code; its
 * stdout in *out (caller frees) when out is not NULL. */
static int verify_cmd(const char *conf, const char *const *args, char **out, struct proc *p)
{
    static char bin[512];
    const char *argv[32] = { proc_path("ddb2es", bin, sizeof(bin)), "verify", "-c", conf };
    size_t n = 4;
    int rc;

    for (; *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    proc_start(p, argv, test_env);
    rc = proc_wait(p, 120000);
    if (rc == -1) {
        proc_kill(p, SIGKILL);
        proc_wait(p, 5000);
    }
    if (out)
        *out = proc_slurp(p->out_path);
    return rc;
}

static void dump_log(const char *what, const struct proc *p)
{
    char *log = proc_slurp(p->err_path);
    size_t n = strlen(log);

    cr_log_warn("%s log%s:\n%s", what, n > 20000 ? " (its end)" : "",
                n > 20000 ? log + n - 20000 : log);
    free(log);
}

/* The report's list (an array of ids) as a sorted, '\n'-joined text. */
static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_text(json_t *report, const char *name)
{
    json_t *a = json_object_get(report, name), *x;
    size_t n = json_array_size(a), i;
    char **v = calloc(n + 1, sizeof(*v));
    struct buf b;

    cr_assert(json_is_array(a), "the report has \"%s\"", name);
    json_array_foreach(a, i, x) v[i] = (char *)json_string_value(x);
    qsort(v, n, sizeof(*v), cmp_strp);
    buf_init(&b, BUF_NOMAX);
    buf_puts(&b, "");
    for (i = 0; i < n; i++)
        buf_printf(&b, "%s\n", v[i]);
    free(v);
    return buf_take(&b);
}

static json_t *parse_report(const char *out)
{
    json_t *r = json_loads(out, 0, NULL);

    cr_assert(json_is_object(r), "one JSON document on stdout: %s", out);
    return r;
}

static void sorted_ids(char ids[][600], size_t n, struct buf *b)
{
    char **v = calloc(n + 1, sizeof(*v));

    for (size_t i = 0; i < n; i++)
        v[i] = ids[i];
    qsort(v, n, sizeof(*v), cmp_strp);
    buf_puts(b, "");
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s\n", v[i]);
    free(v);
}

/* The raw source text of one document of the double (via _mget). */
struct one_src {
    struct buf src;
    bool found;
};

static int take_src(void *arg, const struct verify_got *g)
{
    struct one_src *o = arg;

    o->found = g->found;
    if (g->src)
        buf_append(&o->src, g->src, g->src_len);
    return 0;
}

static void source_of(struct searchd *sd, const char *index, const char *id, size_t id_len,
                      struct one_src *o)
{
    static const char *const hdr[] = { "Content-Type: application/json", NULL };
    struct searchd_resp r;
    char path[300];
    struct buf body;

    buf_init(&body, BUF_NOMAX);
    buf_puts(&body, "{\"ids\":[");
    jsonx_put_string(&body, id, id_len);
    buf_puts(&body, "]}");
    snprintf(path, sizeof(path), "/%s/_mget", index);
    cr_assert_eq(searchd_request(sd, "POST", path, hdr, body.ptr, body.len, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    buf_init(&o->src, BUF_NOMAX);
    cr_assert_eq(verify_parse_mget(r.body, r.len, take_src, o), 0);
    searchd_resp_close(&r);
    buf_close(&body);
}

/* One bulk action line for id (internal versioning, as a user's curl). */
static void action(struct buf *b, const char *op, const char *index, const char *id, size_t len)
{
    buf_printf(b, "{\"%s\":{\"_index\":\"%s\",\"_id\":", op, index);
    jsonx_put_string(b, id, len);
    buf_puts(b, "}}\n");
}

static void bulk_ok(struct searchd *sd, struct buf *b)
{
    long status = 0;
    json_t *r = searchd_bulk(sd, "/_bulk", b->ptr, &status);

    cr_assert_eq(status, 200);
    cr_assert(json_is_false(json_object_get(r, "errors")), "the double took every action");
    json_decref(r);
}

struct writer {
    struct wl w;
    atomic_bool stop;
    unsigned writes;
};

static void *write_loop(void *arg)
{
    struct writer *x = arg;

    while (!atomic_load(&x->stop)) {
        x->writes += wl_step(&x->w);
        usleep(20000);
    }
    return NULL;
}

#define NKEYS 400
#define LIVE_KEYS 200 /* the workload writes keys 0..199; keys 200..399 are tampered */

Test(verify, tampered_documents_are_reported_exactly_and_repaired_beside_a_live_workload)
{
    char name[128], dir[256], why[1024];
    char missing[20][600], stale[20][600];
    size_t nm = 0, ns = 0;
    struct e2e_table t;
    struct writer x;
    struct wl w;
    struct searchd *sd;
    struct proc daemon, p;
    struct buf tamper, want;
    pthread_t th;
    const char *conf;
    json_t *rep;
    char *out, *got;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "verify", &t, "pk", "S", "sk", "N");
    wl_init(&w, 71, name, "pk", "S", "sk", "N", NKEYS);
    wl_fill(&w, 0, NKEYS);
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index); /* DynamoDB numbers: doubles */
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    e2e_start(&daemon, conf);
    if (!e2e_wait_equal(sd, &t, 60000, why, sizeof(why)))
        dump_log("daemon", &daemon);
    cr_assert(e2e_wait_equal(sd, &t, 1000, why, sizeof(why)), "the daemon indexed: %s", why);

    memset(&x, 0, sizeof(x));
    wl_init(&x.w, 72, name, "pk", "S", "sk", "N", LIVE_KEYS);
    pthread_create(&th, NULL, write_loop, &x);

    /* Behind the daemon's back: 5 % of the 400 documents removed (20), 5 %
     * altered (20), among the keys the workload leaves alone. */
    buf_init(&tamper, BUF_NOMAX);
    for (unsigned k = LIVE_KEYS; k < NKEYS && (nm < 20 || ns < 20); k += 3) {
        json_t *key = wl_key(&w, k);
        char id[600];
        size_t len = e2e_doc_id(key, "pk", "sk", '|', id, sizeof(id));

        json_decref(key);
        if (strlen(id) != len)
            continue; /* an id holding NUL: the report's ids are compared as C strings here */
        if (nm < 20 && (nm <= ns || ns == 20)) {
            action(&tamper, "delete", name, id, len);
            snprintf(missing[nm++], sizeof(missing[0]), "%s", id);
        } else {
            struct one_src o;

            source_of(sd, name, id, len, &o);
            cr_assert(o.found && o.src.len > 2 && o.src.ptr[0] == '{');
            action(&tamper, "index", name, id, len);
            buf_puts(&tamper, "{\"tampered\":1,");
            buf_append(&tamper, o.src.ptr + 1, o.src.len - 1);
            buf_putc(&tamper, '\n');
            buf_close(&o.src);
            snprintf(stale[ns++], sizeof(stale[0]), "%s", id);
        }
    }
    cr_assert(nm == 20 && ns == 20, "20 removed and 20 altered (%zu, %zu)", nm, ns);
    bulk_ok(sd, &tamper);
    buf_close(&tamper);

    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--json", NULL }, &out, &p);
    if (rc != 1)
        dump_log("verify", &p);
    cr_assert_eq(rc, 1, "differences: exit 1");
    rep = parse_report(out);
    buf_init(&want, BUF_NOMAX);
    sorted_ids(missing, nm, &want);
    got = list_text(rep, "missing");
    cr_assert_str_eq(got, want.ptr, "exactly the removed documents are missing:\n%s\nwant\n%s",
                     got, want.ptr);
    free(got);
    buf_reset(&want);
    sorted_ids(stale, ns, &want);
    got = list_text(rep, "stale");
    cr_assert_str_eq(got, want.ptr, "exactly the altered documents are stale:\n%s\nwant\n%s", got,
                     want.ptr);
    free(got);
    got = list_text(rep, "extra");
    cr_assert_str_eq(got, "", "nothing extra");
    free(got);
    cr_assert_eq(json_integer_value(json_object_get(rep, "items")) >= NKEYS - LIVE_KEYS, true);
    json_decref(rep);
    free(out);

    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--repair", "--json", NULL }, &out,
                    &p);
    if (rc != 0)
        dump_log("verify --repair", &p);
    cr_assert_eq(rc, 0, "every difference repaired: exit 0 (%s)", out);
    rep = parse_report(out);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rep, "repaired"), "missing")),
                 (json_int_t)nm);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(rep, "repaired"), "stale")),
                 (json_int_t)ns);
    json_decref(rep);
    free(out);

    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--json", NULL }, &out, &p);
    if (rc != 0)
        dump_log("verify after the repair", &p);
    cr_assert_eq(rc, 0, "equal after the repair: %s", out);
    rep = parse_report(out);
    for (const char *const *k = (const char *const[]){ "missing", "stale", "extra", NULL }; *k;
         k++) {
        got = list_text(rep, *k);
        cr_assert_str_eq(got, "", "%s is empty", *k);
        free(got);
    }
    json_decref(rep);
    free(out);

    atomic_store(&x.stop, true);
    pthread_join(th, NULL);
    cr_assert_gt(x.writes, 20, "the workload wrote meanwhile (%u)", x.writes);
    cr_assert(e2e_wait_equal(sd, &t, 60000, why, sizeof(why)), "the index equals the table: %s",
              why);
    cr_assert_eq(e2e_stop(&daemon, 15000), 0);
    buf_close(&want);
    searchd_stop(sd);
}

Test(verify, extra_documents_are_deleted_and_a_stale_one_above_every_backfill_version_overwritten)
{
    char name[128], dir[256];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    struct buf b;
    const char *conf;
    json_t *rep;
    char *out, *got;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "vextra", &t, "id", "S", NULL, NULL);
    ddbc_put(name, "{\"id\":{\"S\":\"a\"},\"v\":{\"N\":\"1\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"b\"},\"v\":{\"N\":\"2\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"c\"},\"v\":{\"N\":\"3\"}}"); /* its document is missing */
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    buf_init(&b, BUF_NOMAX);
    /* a as the daemon writes it; b altered at a version above every
     * backfill version (the daemon's own, an hour ahead): only external_gte
     * at that version overwrites it; two documents of no item. */
    buf_printf(&b, "{\"index\":{\"_index\":\"%s\",\"_id\":\"a\"}}\n{\"id\":\"a\",\"v\":1}\n"
                   "{\"index\":{\"_index\":\"%s\",\"_id\":\"b\",\"version\":%lld,"
                   "\"version_type\":\"external\"}}\n{\"v\":20,\"id\":\"b\"}\n"
                   "{\"index\":{\"_index\":\"%s\",\"_id\":\"ghost\"}}\n{\"id\":\"ghost\"}\n"
                   "{\"index\":{\"_index\":\"%s\",\"_id\":\"g\\\\|h\"}}\n{\"x\":1}\n",
               name, name, (long long)(((int64_t)time(NULL) + 3600) << 20 | 5), name, name);
    bulk_ok(sd, &b);
    buf_close(&b);

    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--json", "--settle", "200ms", NULL },
                    &out, &p);
    if (rc != 1 || !*out)
        dump_log("verify", &p);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    rep = parse_report(out);
    got = list_text(rep, "extra");
    cr_assert_str_eq(got, "g\\|h\nghost\n", "the documents of no item are extra");
    free(got);
    got = list_text(rep, "missing");
    cr_assert_str_eq(got, "c\n");
    free(got);
    got = list_text(rep, "stale");
    cr_assert_str_eq(got, "b\n");
    free(got);
    cr_assert_eq(json_integer_value(json_object_get(rep, "documents")), 4);
    json_decref(rep);
    free(out);

    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--repair", "--settle", "200ms",
                                            NULL }, &out, &p);
    if (rc != 0)
        dump_log("verify --repair", &p);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "extra    2 (2 repaired)"), "the text report: %s", out);
    cr_assert_not_null(strstr(out, "missing  1 (1 repaired)"), "the text report: %s", out);
    cr_assert_not_null(strstr(out, "stale    1 (1 repaired)"), "the text report: %s", out);
    free(out);
    {
        long status = 0;
        json_t *r = searchd_json(sd, "GET", "/_count", NULL, &status);

        cr_assert_eq(json_integer_value(json_object_get(r, "count")), 3,
                     "the extras are gone, the missing one is there");
        json_decref(r);
    }
    cr_assert_eq(verify_cmd(conf, (const char *[]){ "--table", name, "--settle", "200ms", NULL },
                            NULL, &p), 0);
    searchd_stop(sd);
}

Test(verify, numbers_compare_by_value_and_38_digits_exactly)
{
    char name[128], dir[256];
    struct e2e_table t;
    struct searchd *sd;
    struct proc p;
    struct buf b;
    const char *conf;
    json_t *rep;
    char *out, *got;
    int rc;

    need_ddb();
    new_table(name, sizeof(name), "vnum", &t, "id", "S", NULL, NULL);
    ddbc_put(name, "{\"id\":{\"S\":\"n1\"},\"v\":{\"N\":\"1.5\"},\"w\":{\"N\":\"100\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"n2\"},\"v\":{\"N\":\"12345678901234567890123456789012345678\"}}");
    ddbc_put(name, "{\"id\":{\"S\":\"n3\"},\"v\":{\"N\":\"12345678901234567890123456789012345678\"}}");
    sd = searchd_start(NULL);
    e2e_create_index(sd, t.index);
    conf = e2e_config(searchd_url(sd), &t, 1, NULL, dir, sizeof(dir));
    buf_init(&b, BUF_NOMAX);
    /* Spelled otherwise, members in another order: the same values. */
    buf_printf(&b, "{\"index\":{\"_index\":\"%s\",\"_id\":\"n1\"}}\n"
                   "{\"w\":1e2,\"v\":1.50,\"id\":\"n1\"}\n"
                   "{\"index\":{\"_index\":\"%s\",\"_id\":\"n2\"}}\n"
                   "{\"id\":\"n2\",\"v\":1.2345678901234567890123456789012345678E+37}\n"
                   /* The last of 38 digits differs: as doubles the two are one. */
                   "{\"index\":{\"_index\":\"%s\",\"_id\":\"n3\"}}\n"
                   "{\"id\":\"n3\",\"v\":12345678901234567890123456789012345679}\n",
               name, name, name);
    bulk_ok(sd, &b);
    buf_close(&b);
    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--json", "--settle", "200ms", NULL },
                    &out, &p);
    if (rc != 1)
        dump_log("verify", &p);
    cr_assert_eq(rc, 1, "exit %d: %s", rc, out);
    rep = parse_report(out);
    got = list_text(rep, "stale");
    cr_assert_str_eq(got, "n3\n", "only the 38-digit number that differs is stale");
    free(got);
    got = list_text(rep, "missing");
    cr_assert_str_eq(got, "");
    free(got);
    json_decref(rep);
    free(out);
    /* An index that is not there is no index to hold the table against. */
    rc = verify_cmd(conf, (const char *[]){ "--table", name, "--index", "nosuch", NULL }, NULL, &p);
    cr_assert_eq(rc, 69);
    out = proc_slurp(p.err_path);
    cr_assert_not_null(strstr(out, "the index nosuch does not exist"), "%s", out);
    free(out);
    searchd_stop(sd);
}

Test(verify, command_line)
{
    struct proc p;
    char bin[512];
    const char *exe = proc_path("ddb2es", bin, sizeof(bin));
    char *out;

    cr_assert_eq(proc_run((const char *[]){ exe, "verify", "--help", NULL }, NULL, 10000, &p), 0);
    out = proc_slurp(p.out_path);
    cr_assert_not_null(strstr(out, "--repair"));
    free(out);
    cr_assert_eq(proc_run((const char *[]){ exe, "verify", "--scan", "--table", "x", NULL }, NULL,
                          10000, &p), 64, "replay's flags are refused");
    cr_assert_eq(proc_run((const char *[]){ exe, "verify", NULL }, NULL, 10000, &p), 64,
                 "--table is required");
    cr_assert_eq(proc_run((const char *[]){ exe, "replay", "--scan", "--table", "x", "--repair",
                                            NULL }, NULL, 10000, &p), 64);
}
