/* buf — a growable byte buffer with a ceiling.
 *
 * Every buffer in ddb2es (HTTP bodies, NDJSON bulks, documents) has a maximum
 * size; an append that would pass it fails with -E2BIG and leaves the buffer
 * as it was.  While cap > 0 the content is always NUL-terminated, so text can
 * be read as a C string.  Embedded: buf_init / buf_close.
 */
#ifndef DDB2ES_BUF_H
#define DDB2ES_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *ptr;
    size_t len, cap, max;
};

#define BUF_NOMAX ((size_t)-1)

void buf_init(struct buf *b, size_t max);
void buf_close(struct buf *b);                 /* frees; buf is re-initialised */
void buf_reset(struct buf *b);                 /* len = 0, memory kept */
int buf_reserve(struct buf *b, size_t extra);  /* room for extra more bytes */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);

/* buf_append of one byte, without a call while there is room (the writers
 * of documents put many single bytes). */
static inline int buf_putc(struct buf *b, char c)
{
    if (b->len < b->max && b->len + 2 <= b->cap) {
        b->ptr[b->len++] = c;
        b->ptr[b->len] = '\0';
        return 0;
    }
    return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Hands the memory to the caller (NUL-terminated, never NULL unless out of
 * memory) and re-initialises the buffer with the same max. */
char *buf_take(struct buf *b);
void buf_truncate(struct buf *b, size_t len);  /* len <= b->len */

#endif
