/* util — the few macros every module uses. */
#ifndef DDB2ES_UTIL_H
#define DDB2ES_UTIL_H

#include <stddef.h>

/* The struct that embeds member, from a pointer to that member [libuv]. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
