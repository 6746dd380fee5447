#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"

TestSuite(buf, .timeout = 5);

Test(buf, append_keeps_text_nul_terminated)
{
    struct buf b;

    buf_init(&b, 0);
    cr_assert_eq(buf_puts(&b, "abc"), 0);
    cr_assert_eq(buf_printf(&b, "-%d-", 42), 0);
    cr_assert_eq(buf_putc(&b, 'z'), 0);
    cr_assert_str_eq(b.ptr, "abc-42-z");
    cr_assert_eq(b.len, 8);
    buf_truncate(&b, 3);
    cr_assert_str_eq(b.ptr, "abc");
    buf_reset(&b);
    cr_assert_str_eq(b.ptr, "");
    buf_close(&b);
    cr_assert_null(b.ptr);
}

Test(buf, ceiling_refuses_and_leaves_content)
{
    struct buf b;

    buf_init(&b, 8);
    cr_assert_eq(buf_puts(&b, "12345678"), 0);
    cr_assert_eq(buf_putc(&b, '9'), -E2BIG);
    cr_assert_eq(buf_printf(&b, "%s", "x"), -E2BIG);
    cr_assert_str_eq(b.ptr, "12345678");
    cr_assert_eq(b.len, 8);
    buf_close(&b);
}

Test(buf, grows_past_many_doublings)
{
    struct buf b;
    char chunk[1000];

    memset(chunk, 'q', sizeof(chunk));
    buf_init(&b, 0);
    for (int i = 0; i < 5000; i++)
        cr_assert_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
    cr_assert_eq(b.len, 5000000);
    cr_assert_eq(b.ptr[4999999], 'q');
    cr_assert_eq(b.ptr[5000000], '\0');
    buf_close(&b);
}

Test(buf, take_hands_over_memory)
{
    struct buf b;
    char *p;

    buf_init(&b, 100);
    p = buf_take(&b); /* empty buffer still gives a string */
    cr_assert_str_eq(p, "");
    free(p);
    buf_puts(&b, "hello");
    p = buf_take(&b);
    cr_assert_str_eq(p, "hello");
    cr_assert_null(b.ptr);
    cr_assert_eq(b.max, 100);
    free(p);
}
