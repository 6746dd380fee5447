/* jcache — jansson's allocator in the daemon: malloc, and a cache of the
 * small blocks a freed tree gives back, handed out again to the next tree.
 *
 * A record's tree is some hundreds of small blocks, built and freed within
 * one loop turn; between two records the daemon allocates documents, batch
 * bodies and replies.  glibc keeps only 7 freed blocks per size in its
 * thread cache, so most of the next tree's blocks went through
 * _int_malloc's bins: a quarter of replay's CPU (bench/RESULTS.md).  Here
 * the freed blocks wait in per-size lists (at most JCACHE_MAX_BYTES in all
 * per thread) and the next tree takes them back first.
 *
 * The blocks are plain malloc blocks, sorted by malloc_usable_size: a block
 * jansson hands back to the caller (json_dumps) may be freed with free(),
 * and a block malloc made elsewhere may enter the cache.  Lists are per
 * thread.  Pure. */
#ifndef DDB2ES_JCACHE_H
#define DDB2ES_JCACHE_H

#include <stddef.h>

#define JCACHE_MAX_BLOCK 504          /* larger blocks go straight to malloc/free */
#define JCACHE_MAX_BYTES (512 * 1024) /* cached in all, per thread */

void *jcache_malloc(size_t n);
void jcache_free(void *p);
/* What the calling thread's cache holds: blocks and their bytes. */
void jcache_held(size_t *blocks, size_t *bytes);
/* Gives the calling thread's cached blocks back to malloc. */
void jcache_drain(void);
/* json_set_alloc_funcs(jcache_malloc, jcache_free), before any jansson
 * value exists.  Not under AddressSanitizer, so that it still sees every
 * use of a freed jansson value. */
void jcache_install(void);

#endif
