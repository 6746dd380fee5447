/* Fuzz target: a stream record (any JSON) -> a bulk action
 * (transform_record), and its NewImage as an item (transform_item).
 *
 * The first byte picks the table's shape and the filters; the rest is the
 * record.  Beyond "no crash, no leak, no undefined behaviour" it checks what
 * the emitter promises: an index action's source is one JSON object, and an
 * id is never empty nor longer than DOC_ID_MAX. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/transform.h"
#include "tests/fuzz/fuzz.h"

static const char *const names[] = { "pk", "s", "n38" };

static void check_doc(const struct doc *d, enum transform_result tr)
{
    json_t *src;

    if (tr != TR_DOC)
        return;
    if (d->id_len == 0 || d->id_len > DOC_ID_MAX)
        abort();
    if (d->op != DOC_INDEX)
        return;
    /* 38-digit numbers: read them as reals, only the shape matters here. */
    src = json_loadb(d->source.ptr, d->source.len, JSON_DECODE_INT_AS_REAL, NULL);
    if (!json_is_object(src))
        abort();
    json_decref(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[] = "fuzz-hmac-key";
    struct transform_cfg cfg = { .index = "posts", .id_sep = '|', .hash_key = "id" };
    struct doc d;
    struct buf err;
    json_t *rec, *image, *keys;
    unsigned flags;

    if (size < 1)
        return 0;
    flags = data[0];
    rec = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
    if (!rec)
        return 0;
    if (flags & 1) { /* the tables of tests/data/records */
        cfg.hash_key = "pk";
        cfg.range_key = "sk";
    }
    if (flags & 2)
        cfg.on_ttl_delete = TRANSFORM_TTL_KEEP;
    if (flags & 4) {
        cfg.include = names;
        cfg.n_include = 2;
    }
    if (flags & 8) {
        cfg.exclude = names + 1;
        cfg.n_exclude = 1;
    }
    if (flags & 16) {
        cfg.hmac = names + ((flags & 32) ? 0 : 2);
        cfg.n_hmac = 1;
        cfg.hmac_key = key;
        cfg.hmac_key_len = sizeof(key) - 1;
    }
    if (flags & 64)
        cfg.id_sep = '#';
    memset(&d, 0, sizeof(d));
    buf_init(&d.source, (flags & 128) ? 256 : 400 * 1024);
    buf_init(&err, 1024);
    check_doc(&d, transform_record(&cfg, rec, &d, &err));
    /* The daemon passes these only when present. */
    image = json_object_get(json_object_get(rec, "dynamodb"), "NewImage");
    keys = json_object_get(json_object_get(rec, "dynamodb"), "Keys");
    buf_reset(&err);
    if (image)
        check_doc(&d, transform_item(&cfg, image, &d, &err));
    buf_reset(&err);
    if (keys)
        check_doc(&d, transform_keys(&cfg, keys, &d, &err));
    buf_close(&d.source);
    buf_close(&err);
    json_decref(rec);
    return 0;
}
