/* Fuzz target: a DynamoDB Streams answer as the daemon reads it.
 *
 * The first two bytes are the HTTP status (200 when below 100); the rest is
 * the body.  ddb_classify() decides what the answer means (the error code
 * after the last '#'); a 2xx body is then read by every reader of
 * aws/streams.h the daemon uses (daemon/shard.c, daemon/reader.c): the page
 * split by streams_page_scan() and each record parsed alone with
 * jsonx_loadb() (NUL in keys, lone surrogates) and streams_record_parse(),
 * sequence numbers validated and compared as big integers, versions issued
 * along the page, every record through transform_record() and its keys
 * through transform_key_text(); the same body read as a GetShardIterator,
 * DescribeStream, ListStreams, DescribeTable and BatchGetItem reply.  The
 * walk itself lives in loop code there; this follows it call for call. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "aws/ddb.h"
#include "base/jsonx.h"
#include "aws/streams.h"
#include "daemon/docver.h"
#include "daemon/seqnum.h"
#include "indexer/transform.h"
#include "tests/fuzz/fuzz.h"

static void read_record(json_t *rec, struct transform_cfg *cfg, struct docver *ver,
                        char *last, uint64_t *prev, struct doc *d, struct buf *err)
{
    struct streams_record sr;
    const char *seq;
    struct buf kt;
    uint64_t v;

    streams_record_parse(rec, &sr);
    seq = sr.seq;
    if (!seqnum_valid(seq))
        return;
    if (last[0] && seqnum_cmp(seq, last) <= 0)
        return;
    memcpy(last, seq, strlen(seq) + 1);
    buf_reset(err);
    transform_record(cfg, rec, d, err);
    buf_init(&kt, 1 << 16);
    (void)transform_key_text(cfg, sr.keys, &kt, err);
    buf_close(&kt);
    v = docver_next(ver, d->created);
    if (v <= *prev) /* versions only grow along a lineage */
        abort();
    *prev = v;
}

/* GetRecords as daemon/shard.c reads it: split, then one record at a time. */
static void read_page(const char *body, size_t len)
{
    struct transform_cfg cfg = { .index = "posts", .id_sep = '|', .hash_key = "pk",
                                 .range_key = "sk" };
    struct docver ver = { 0, 0 };
    struct streams_page pg = { 0 };
    char last[SEQNUM_MAX + 1] = "";
    uint64_t prev = 0;
    struct doc d;
    struct buf err;

    if (streams_page_scan(body, len, &pg) == -ENOMEM || pg.bad_off > len)
        abort();
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 400 * 1024);
    buf_init(&d.keys, 64 * 1024);
    buf_init(&err, 1024);
    for (size_t i = 0; i < pg.n; i++) {
        json_t *rec;

        if (pg.span[i].off + pg.span[i].len > len)
            abort();
        rec = jsonx_loadb(body + pg.span[i].off, pg.span[i].len, 0, NULL);
        if (rec)
            read_record(rec, &cfg, &ver, last, &prev, &d, &err);
        json_decref(rec);
    }
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
    streams_page_free(&pg);
}

static void read_records(json_t *records)
{
    struct transform_cfg cfg = { .index = "posts", .id_sep = '|', .hash_key = "pk",
                                 .range_key = "sk" };
    struct docver ver = { 0, 0 };
    char last[SEQNUM_MAX + 1] = "";
    uint64_t prev = 0;
    struct doc d;
    struct buf err;
    json_t *rec;
    size_t i;

    memset(&d, 0, sizeof(d));
    buf_init(&d.source, 400 * 1024);
    buf_init(&d.keys, 64 * 1024);
    buf_init(&err, 1024);
    json_array_foreach(records, i, rec)
        read_record(rec, &cfg, &ver, last, &prev, &d, &err);
    buf_close(&d.source);
    buf_close(&d.keys);
    buf_close(&err);
}

/* DescribeStream as daemon/reader.c reads it. */
static void read_listing(const json_t *root)
{
    struct streams_description desc;
    struct streams_shard sh;

    streams_description_parse(root, &desc);
    if (desc.nshards != json_array_size(desc.shards) || (desc.disabled && !desc.status))
        abort();
    for (size_t i = 0; i < desc.nshards; i++) {
        if (!streams_description_shard(&desc, i, &sh)) {
            if (sh.id)
                abort();
            continue;
        }
        if (seqnum_valid(sh.start_seq) && seqnum_valid(sh.end_seq))
            (void)seqnum_cmp(sh.start_seq, sh.end_seq);
    }
}

/* ListStreams, DescribeTable, BatchGetItem and GetShardIterator as the
 * daemon reads them. */
static void read_others(const json_t *root)
{
    struct streams_list list;
    struct streams_table table;
    struct streams_batch_get got;

    streams_list_parse(root, &list);
    for (size_t i = 0; i < list.n; i++)
        (void)streams_list_arn(&list, i);
    streams_table_parse(root, &table);
    if ((table.hash_key && strnlen(table.hash_key, table.hash_key_len) > table.hash_key_len) ||
        (!table.hash_key && table.hash_key_len) || (!table.range_key && table.range_key_len))
        abort();
    streams_batch_get_parse(root, "posts", &got);
    if ((got.items && !json_is_array(got.items)) ||
        (got.unprocessed && !json_is_array(got.unprocessed)))
        abort();
    (void)streams_iterator_parse(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char type[128];
    enum ddb_class cls;
    long status;
    json_t *root;

    if (size < 2)
        return 0;
    status = (long)(data[0] << 8 | data[1]) % 600;
    if (status < 100)
        status = 200;
    data += 2;
    size -= 2;
    cls = ddb_classify(status, 0, (const char *)data, size, type, sizeof(type));
    if (strnlen(type, sizeof(type)) == sizeof(type) || strchr(type, '#'))
        abort();
    if (cls != DDB_OK && cls != DDB_RETRY)
        return 0;
    read_page((const char *)data, size);
    if (cls != DDB_OK)
        return 0;
    root = jsonx_loadb((const char *)data, size, 0, NULL);
    read_records(json_object_get(root, "Records"));
    read_listing(root);
    read_others(root);
    json_decref(root);
    return 0;
}
