/* Fuzz target: the dead-letter file, both ways.
 *
 * The input is a line of a dead-letter file, and also the text of a
 * document being dead-lettered:
 * - dlq_parse reads the line or fails with -EBADMSG (or -ENOMEM), and a
 *   document it returns lies inside the line;
 * - dlq_one_value agrees with jansson wherever jansson can judge (no \u
 *   escape, which jansson refuses for lone surrogates and the engines take;
 *   no NUL byte, where jansson stops reading as if the text ended; no
 *   number beyond a double's range);
 * - the line dlq_format writes with the input as the document is one JSON
 *   object, and dlq_parse gives the document back: the bytes themselves
 *   (without the whitespace around) when they are one JSON value, else a
 *   JSON string holding them. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/dlq.h"
#include "tests/fuzz/fuzz.h"

static bool jansson_can_judge(const char *text, size_t len, json_error_t *jerr, bool *valid)
{
    json_t *v;

    if (memmem(text, len, "\\u", 2) || memchr(text, 0, len)) /* jansson ends at a NUL */
        return false;
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, jerr);
    *valid = v != NULL;
    json_decref(v);
    return v || !strstr(jerr->text, "overflow");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data, *doc;
    size_t len;
    json_t *meta;
    json_error_t jerr;
    char err[256];
    bool one = dlq_one_value(text, size), valid;
    struct doc d;
    struct buf out;
    int rc;

    rc = dlq_parse(text, size, &meta, &doc, &len, err, sizeof(err));
    if (rc == 0) {
        if (!json_is_object(meta) || (doc && (doc < text || doc + len > text + size)))
            abort();
        json_decref(meta);
    } else if (rc != -EBADMSG && rc != -ENOMEM) {
        abort();
    }

    if (jansson_can_judge(text, size, &jerr, &valid) && valid != one) {
        fprintf(stderr, "dlq_one_value says %d, jansson %d (%s)\n", one, valid, jerr.text);
        abort();
    }

    if (size == 0)
        return 0;
    memset(&d, 0, sizeof(d));
    d.op = DOC_INDEX;
    d.index = "posts";
    d.table = "posts";
    memcpy(d.id, "k", 1);
    d.id_len = 1;
    buf_init(&d.keys, 0);
    buf_init(&out, BUF_NOMAX);
    if (dlq_format(&out, &d, 400, "mapper_parsing_exception", "x", text, size, 0) != 0) {
        buf_close(&out);
        return 0; /* out of memory */
    }
    if (!one) { /* a string: jansson reads the whole line */
        json_t *line = json_loadb(out.ptr, out.len, JSON_ALLOW_NUL, &jerr);

        if (!json_is_string(json_object_get(line, "document"))) {
            fprintf(stderr, "not a JSON line with a string document: %s\n", jerr.text);
            abort();
        }
        json_decref(line);
    }
    rc = dlq_parse(out.ptr, out.len, &meta, &doc, &len, err, sizeof(err));
    if (rc == -ENOMEM) {
        buf_close(&out);
        return 0;
    }
    /* The value comes back without the whitespace around it. */
    const char *v = text, *vend = text + size;

    while (v < vend && strchr(" \t\n\r", *v))
        v++;
    while (vend > v && strchr(" \t\n\r", vend[-1]))
        vend--;
    bool null = vend - v == 4 && memcmp(v, "null", 4) == 0; /* reads back as no document */

    if (rc != 0 || (!doc && !null) ||
        (doc && (one ? len != (size_t)(vend - v) || memcmp(doc, v, len) != 0 : *doc != '"'))) {
        fprintf(stderr, "the document does not read back (%d: %s)\n", rc, err);
        abort();
    }
    json_decref(meta);
    buf_close(&out);
    return 0;
}
