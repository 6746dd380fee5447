#include "base/jcache.h"

#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

/* List c holds blocks of at least 24 + 16 c usable bytes (glibc's small
 * sizes are 24, 40, 56, ...: one list each; under an allocator whose
 * usable size is the size asked for, a block goes to the list below). */
#define NCLASS ((JCACHE_MAX_BLOCK - 24) / 16 + 1)

struct freed {
    struct freed *next;
};

static __thread struct freed *lists[NCLASS];
static __thread size_t held_bytes, held_blocks;

/* The list whose blocks all serve a request of n bytes. */
static int class_for_request(size_t n)
{
    return n <= 24 ? 0 : (int)((n - 24 + 15) / 16);
}

/* The list a freed block of usable size u goes to, -1 for none. */
static int class_for_block(size_t u)
{
    return u < 24 || u > JCACHE_MAX_BLOCK ? -1 : (int)((u - 24) / 16);
}

void *jcache_malloc(size_t n)
{
    int c = n <= JCACHE_MAX_BLOCK ? class_for_request(n) : -1;
    struct freed *f;

    if (c < 0 || !(f = lists[c]))
        return malloc(n);
    lists[c] = f->next;
    held_blocks--;
    held_bytes -= malloc_usable_size(f);
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
    c = class_for_block(u);
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
