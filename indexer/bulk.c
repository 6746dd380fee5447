#include "indexer/bulk.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base/jsonx.h"

int bulk_json_string(struct buf *out, const char *s, size_t len)
{
    return jsonx_put_string(out, s, len);
}

int bulk_append(struct buf *out, const struct doc *d, const char *version_type)
{
    size_t mark = out->len, want;
    int rc;

    if (!d->index || !*d->index || d->id_len == 0 || d->id_len > DOC_ID_MAX)
        return -EINVAL;
    if (d->op == DOC_INDEX && (d->source.len == 0 || memchr(d->source.ptr, '\n', d->source.len)))
        return -EINVAL;
    if (d->version > INT64_MAX)
        return -ERANGE;
    /* The whole action at once (the fixed text, a 20-digit version and the
     * version type take < 128 bytes): one allocation unless escapes grow it. */
    want = 128 + strlen(d->index) + d->id_len + (version_type ? strlen(version_type) : 0) +
           (d->op == DOC_INDEX ? d->source.len + 1 : 0);
    rc = buf_reserve(out, want < out->max - out->len ? want : out->max - out->len);
    if (rc == 0)
        rc = buf_puts(out, d->op == DOC_INDEX ? "{\"index\":{\"_index\":" : "{\"delete\":{\"_index\":");
    if (rc == 0)
        rc = bulk_json_string(out, d->index, strlen(d->index));
    if (rc == 0)
        rc = buf_puts(out, ",\"_id\":");
    if (rc == 0)
        rc = bulk_json_string(out, d->id, d->id_len);
    if (rc == 0 && d->version) {
        char num[24], *p = num + sizeof(num);
        uint64_t v = d->version;

        do /* the digits, without printf's cost for each action */
            *--p = (char)('0' + v % 10);
        while (v /= 10);
        rc = buf_puts(out, ",\"version\":");
        if (rc == 0)
            rc = buf_append(out, p, (size_t)(num + sizeof(num) - p));
        if (rc == 0)
            rc = buf_puts(out, ",\"version_type\":");
        if (rc == 0) {
            const char *vt = d->version_gte    ? "external_gte"
                             : version_type ? version_type
                                            : BULK_VERSION_TYPE;

            rc = bulk_json_string(out, vt, strlen(vt));
        }
    }
    if (rc == 0)
        rc = buf_puts(out, "}}\n");
    if (rc == 0 && d->op == DOC_INDEX) {
        rc = buf_append(out, d->source.ptr, d->source.len);
        if (rc == 0)
            rc = buf_putc(out, '\n');
    }
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
}

const char *bulk_filter_path(void)
{
    return "errors,items.*.status,items.*.error";
}
