#include "base/jcache.h"

#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

/* glibc's usable sizes are 24, 40, 56, ... (16 k + 8): one list each. */
#define NCLASS ((JCACHE_MAX_BLOCK - 8) / 16 + 1)

struct freed {
    struct freed *next;
};

static __thread struct freed *lists[NCLASS];
static __thread size_t held_bytes, held_blocks;

/* The list of usable size u, or -1 when u is not one of glibc's small sizes. */
static int class_of_usable(size_t u)
{
    if (u < 24 || u > JCACHE_MAX_BLOCK || (u - 8) % 16 != 0)
        return -1;
    return (int)((u - 8) / 16) - 1;
}

/* The usable size malloc(n) gives: the smallest 16 k + 8 >= max(n, 24). */
static size_t usable_for(size_t n)
{
    if (n <= 24)
        return 24;
    return ((n - 8 + 15) & ~(size_t)15) + 8;
}

void *jcache_malloc(size_t n)
{
    size_t u = usable_for(n);
    int c = n <= JCACHE_MAX_BLOCK ? class_of_usable(u) : -1;
    struct freed *f;

    if (c < 0 || !(f = lists[c]))
        return malloc(n);
    lists[c] = f->next;
    held_blocks--;
    held_bytes -= u;
    return f;
}

void jcache_free(void *p)
{
    size_t u;
    int c;
    struct freed *f = p;

    if (!p)
        return;
    u = malloc_usable_size(p);
    c = class_of_usable(u);
    if (c < 0 || held_bytes + u > JCACHE_MAX_BYTES) {
        free(p);
        return;
    }
    f->next = lists[c];
    lists[c] = f;
    held_blocks++;
    held_bytes += u;
}

void jcache_held(size_t *blocks, size_t *bytes)
{
    *blocks = held_blocks;
    *bytes = held_bytes;
}

void jcache_drain(void)
{
    for (int c = 0; c < NCLASS; c++)
        while (lists[c]) {
            struct freed *f = lists[c];

            lists[c] = f->next;
            free(f);
        }
    held_blocks = held_bytes = 0;
}

#if defined(__SANITIZE_ADDRESS__)
#define JCACHE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define JCACHE_OFF 1
#endif
#endif

void jcache_install(void)
{
#ifndef JCACHE_OFF
    json_set_alloc_funcs(jcache_malloc, jcache_free);
#endif
}
