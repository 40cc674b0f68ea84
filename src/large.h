/*
 * large.h: mapped blocks, with a mapping of their own ("mapped chunks"):
 * requests at or above the mmap threshold, and aligned requests that
 * large. A registry (an open-addressing hash set of payload addresses)
 * knows every live one, so a free of a pointer that is not ours is caught
 * without reading memory at it; freed mappings are kept a while for
 * reuse. Registry, cache and counters are under this file's own lock;
 * system calls are made outside it. Independent of the heap: it shares
 * only the chunk header format (chunk.h).
 */
#ifndef MEMALLOC_LARGE_H
#define MEMALLOC_LARGE_H

#include <stddef.h>

#include "chunk.h"

struct large_stats {
    size_t blocks, bytes, peak_blocks, peak_bytes;
    uint64_t total_blocks;
    size_t in_use;                      /* usable bytes of the live blocks */
    size_t cached_blocks, cached_bytes; /* freed mappings kept for reuse */
};

/* Map a block of n bytes whose payload is aligned to align (>= 16); if
 * zero, it must read as zero (then fresh pages are mapped). */
void *large_alloc(size_t n, size_t align, int zero);
/* Unmap every cached freed mapping; 1 if there was any. */
int large_cache_release(void);
/* Unmap the cached freed mappings that have waited their time; the time
 * the next one will have (os_now_ms() time), 0 if none is cached. */
uint64_t large_cache_expire(void);
/* Usable size of live mapped block p; aborts, naming who, if p is not one. */
size_t large_usable(const void *p, const char *who);
/* The usable size of p if p is a mapped block in use, else 0. */
size_t large_find(const void *p);
/* Free p; aborts with who's name if p is not a live mapped block. */
void large_free(void *p, const char *who);
/* Resize in place or by mremap; NULL if the caller must move it. */
void *large_resize(void *p, size_t n);

/* The figures (takes the lock). */
void large_stats(struct large_stats *out);
/* The lock, for lock_world (fork, the checker); and in a child of fork,
 * set up anew. */
void large_lock(void);
void large_unlock(void);
void large_fork_child(void);
/* With the lock held: walk every registered block; the figures. */
void large_foreach(void (*fn)(const struct chunk *c, void *ctx), void *ctx);
void large_stats_locked(struct large_stats *out);

#endif
