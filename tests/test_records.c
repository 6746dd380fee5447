/* streams_page_scan: a GetRecords reply split into its records' texts. */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "aws/streams.h"

TestSuite(records, .timeout = 10);

static char *span_text(const char *body, const struct streams_page *p, size_t i)
{
    return strndup(body + p->span[i].off, p->span[i].len);
}

Test(records, spans_and_iterator)
{
    /* Brackets, braces, commas and escaped quotes inside strings, nested
     * lists, members in any order and unknown members skipped. */
    const char *body =
        " { \"Other\" : [1, {\"x\": \"]}\"}], \"NextShardIterator\": \"it\\/1\",\n"
        "\"Records\":[ {\"a\":\"x,]}\\\"{\",\"b\":[[{}],[]]} ,{\"c\":1.5e3} ] } ";
    struct streams_page p = { 0 };
    char *t;

    cr_assert_eq(streams_page_scan(body, strlen(body), &p), 0);
    cr_assert_eq(p.n, 2);
    t = span_text(body, &p, 0);
    cr_assert_str_eq(t, "{\"a\":\"x,]}\\\"{\",\"b\":[[{}],[]]}");
    free(t);
    t = span_text(body, &p, 1);
    cr_assert_str_eq(t, "{\"c\":1.5e3}");
    free(t);
    cr_assert_str_eq(p.next_iter, "it/1"); /* decoded */
    streams_page_free(&p);
}

Test(records, empty_page_and_closed_shard)
{
    struct streams_page p = { 0 };

    cr_assert_eq(streams_page_scan("{\"Records\":[],\"NextShardIterator\":\"n\"}", 38, &p), 0);
    cr_assert_eq(p.n, 0);
    cr_assert_str_eq(p.next_iter, "n");
    /* A shard read to its end: no iterator, or a null one. */
    cr_assert_eq(streams_page_scan("{\"Records\":[{}]}", 16, &p), 0);
    cr_assert_eq(p.n, 1);
    cr_assert_null(p.next_iter);
    cr_assert_eq(streams_page_scan("{\"Records\":[],\"NextShardIterator\":null}", 39, &p), 0);
    cr_assert_null(p.next_iter);
    streams_page_free(&p);
}

Test(records, each_span_parses_as_the_record)
{
    json_t *recs = json_array(), *reply;
    struct streams_page p = { 0 };
    char *body;

    for (int i = 0; i < 600; i++) /* past the first span allocation */
        json_array_append_new(recs, json_pack("{s:i, s:{s:{s:s}}}", "i", i, "dynamodb", "Keys",
                                              "S", "k\"]"));
    reply = json_pack("{s:o, s:s}", "Records", recs, "NextShardIterator", "x");
    body = json_dumps(reply, 0);
    json_decref(reply);
    cr_assert_eq(streams_page_scan(body, strlen(body), &p), 0);
    cr_assert_eq(p.n, 600);
    for (size_t i = 0; i < p.n; i++) {
        json_t *r = json_loadb(body + p.span[i].off, p.span[i].len, 0, NULL);

        cr_assert_not_null(r);
        cr_assert_eq(json_integer_value(json_object_get(r, "i")), (json_int_t)i);
        json_decref(r);
    }
    free(body);
    streams_page_free(&p);
}

Test(records, malformed_replies_are_refused)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"Records\":{}}",
        "{\"Records\":[1]}",
        "{\"Records\":[{\"a\":\"unterminated}]}",
        "{\"Records\":[{}]",
        "{\"Records\":[{}] } trailing",
        "{\"Records\":[{}],\"NextShardIterator\":5}",
    };
    struct streams_page p = { 0 };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(streams_page_scan(bad[i], strlen(bad[i]), &p), -EPROTO, "accepted: %s", bad[i]);
        cr_assert_eq(p.n, 0);
        cr_assert_null(p.next_iter);
    }
    streams_page_free(&p);
}

/* A page broken inside its Records array keeps the records that were whole
 * before the break, and says where the broken part starts, so the reader
 * can take those and handle the rest as one unreadable record. */
Test(records, a_page_broken_in_the_middle_keeps_the_whole_records_before_it)
{
    static const char body[] = "{\"Records\":[{\"a\":1},{\"b\":\"x\"}},{\"c\":3}],"
                               "\"NextShardIterator\":\"n\"}";
    struct streams_page p = { 0 };

    cr_assert_eq(streams_page_scan(body, strlen(body), &p), -EPROTO);
    cr_assert_eq(p.n, 2, "the two whole records are kept");
    cr_assert_eq(p.span[1].len, strlen("{\"b\":\"x\"}"));
    cr_assert_eq(p.bad_off, (size_t)(strstr(body, "}},{") - body) + 1,
                 "the broken part starts right after the last whole record (%zu)", p.bad_off);
    cr_assert_null(p.next_iter, "the iterator after the break is not trusted");
    /* Broken outside the records: nothing is kept. */
    cr_assert_eq(streams_page_scan("{\"Records\":[{}] } trailing", 26, &p), -EPROTO);
    cr_assert_eq(p.n, 0);
    streams_page_free(&p);
}
