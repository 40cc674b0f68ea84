/*
 * large.h: blocks with a mapping of their own ("mmapped chunks"): requests
 * at or above the mmap threshold, and aligned requests that large. A
 * registry (an open-addressing hash set of payload addresses) knows every
 * live one, so a free of a pointer that is not ours is caught without
 * reading memory at it. Registry and counters are under large_lock; system
 * calls are made outside it.
 */
#ifndef MEMALLOC_LARGE_H
#define MEMALLOC_LARGE_H

#include <pthread.h>
#include <stddef.h>

#include "chunk.h"

extern pthread_mutex_t large_lock;

struct large_stats {
    size_t blocks, bytes, peak_blocks, peak_bytes;
    uint64_t total_blocks;
    size_t in_use; /* usable bytes */
};

/* Map a block of n bytes whose payload is aligned to align (>= 16); if
 * zero, it must read as zero (then fresh pages are mapped). */
void *large_alloc(size_t n, size_t align, int zero);
/* Unmap every cached freed mapping; 1 if there was any. */
int large_cache_release(void);
/* Bytes (and *count mappings) in the cache of freed mappings (lock held). */
size_t large_cache_bytes(unsigned *count);
/* Usable size of live mmapped block p; aborts, naming who, if p is not one. */
size_t large_usable(const void *p, const char *who);
/* Free p; aborts with who's name if p is not a live mmapped block. */
void large_free(void *p, const char *who);
/* Resize in place or by mremap; NULL if the caller must move it. */
void *large_resize(void *p, size_t n);
/* Walk every registered block (large_lock held by the caller). */
void large_foreach(void (*fn)(const struct chunk *c, void *ctx), void *ctx);
void large_get_stats(struct large_stats *out); /* large_lock held by the caller */
/* Was p freed recently (large_lock held by the caller)? */
int large_recently_freed(const void *p);

#endif
