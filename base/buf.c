#include "base/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : BUF_NOMAX;
}

void buf_close(struct buf *b)
{
    size_t max = b->max;

    free(b->ptr);
    buf_init(b, max);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

void buf_truncate(struct buf *b, size_t len)
{
    if (len < b->len) {
        b->len = len;
        b->ptr[len] = '\0';
    }
}

int buf_reserve(struct buf *b, size_t extra)
{
    size_t need, ncap;
    char *p;

    if (extra > b->max || b->len > b->max - extra)
        return -E2BIG;
    need = b->len + extra + 1; /* + NUL */
    if (need <= b->cap)
        return 0;
    /* A first reservation gets what it asks for (at least 256 bytes): a
     * buffer sized up front (a bulk action, a reply of known length) holds
     * no slack.  Growth after that doubles. */
    ncap = b->cap ? b->cap : need > 256 ? need : 256;
    while (ncap < need)
        ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    p = realloc(b->ptr, ncap);
    if (!p)
        return -ENOMEM;
    b->ptr = p;
    b->cap = ncap;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);

    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n, rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *buf_take(struct buf *b)
{
    char *p;

    if (!b->ptr && buf_reserve(b, 0) < 0)
        return NULL;
    p = b->ptr;
    buf_init(b, b->max);
    return p;
}
