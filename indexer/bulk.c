#include "indexer/bulk.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int bulk_json_string(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t mark = out->len, run = 0;
    int rc = buf_reserve(out, len + 2);

    if (rc == 0)
        rc = buf_putc(out, '"');
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = { '\\', 0 };
        size_t elen = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"':  esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
            break;
        }
        rc = buf_append(out, s + run, i - run);
        if (rc == 0)
            rc = buf_append(out, esc, elen);
        run = i + 1;
    }
    if (rc == 0)
        rc = buf_append(out, s + run, len - run);
    if (rc == 0)
        rc = buf_putc(out, '"');
    if (rc < 0)
        buf_truncate(out, mark);
    return rc;
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
        rc = buf_printf(out, ",\"version\":%" PRIu64 ",\"version_type\":", d->version);
        if (rc == 0) {
            const char *vt = version_type ? version_type : BULK_VERSION_TYPE;

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
