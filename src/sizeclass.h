/*
 * sizeclass.h: the size classes. Requests up to CLASS_MAX bytes are
 * rounded up to one of NCLASSES sizes; the objects of a class live in
 * pages of that class (page.h). Every multiple of 16 up to 128 is a
 * class, then four per power of two:
 *   class 8 + 4 * (e - 7) + j, 1 <= j <= 4:  size 2^e + j * 2^(e - 2),
 * so a request wastes at most a fifth of its object above 128 bytes.
 * Fewer classes than a finer scheme: a thread that uses a size class owns
 * at least one page of it, and few objects of many classes cost memory.
 * Up to 1 KiB the class comes from a table, above it from the leading
 * zeros. Class 0 is malloc(0)'s: 16 bytes like class 1, but it has no
 * pages (a block of size 0 is an address of its own, zero.h), so that
 * malloc(0) misses the fast path at no cost to it. Knows nothing of
 * pages, threads or locks.
 */
#ifndef MEMALLOC_SIZECLASS_H
#define MEMALLOC_SIZECLASS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define NCLASSES  45
#define CLASS_MAX ((size_t)65536) /* the largest class */

extern MA_HIDDEN uint32_t class_size[NCLASSES];
/* class_of() of every n <= 1024, by (n + 15) / 16 */
extern MA_HIDDEN const uint8_t class_small[65];

/* The class of a request of n <= CLASS_MAX bytes: the smallest class whose
 * size is >= n. */
static inline unsigned class_of(size_t n) {
    if (n <= 1024) return class_small[(n + 15) >> 4];
    unsigned e = 63u - (unsigned)__builtin_clzll(n - 1); /* 2^e < n <= 2^(e+1) */
    unsigned j = (unsigned)((n - 1) >> (e - 2)) & 3u;
    return 8u + (e - 7u) * 4u + j + 1u;
}

/* aligned_next[j][k]: the first class >= k whose size is a multiple of
 * 2^(j + 5) (32 B to 4 KiB), or NCLASSES (classes_init) */
extern MA_HIDDEN uint8_t aligned_next[8][NCLASSES];

/* A class for an aligned request: the smallest class >= class_of(n) whose
 * size is a multiple of align (a power of two, 32 to 4096; objects of
 * such a class are aligned to it, page.h), or NCLASSES if there is none
 * or n > CLASS_MAX. Inline: memalign's fast path (api.h) takes it. */
static inline unsigned class_aligned(size_t n, size_t align) {
    if (n > CLASS_MAX || align > 4096) return NCLASSES;
    if (align <= 16) return class_of(n);
    unsigned j = (unsigned)__builtin_ctzll(align) - 5;
    return aligned_next[j][class_of(n)];
}

/* Fill the table of sizes (at initialisation). */
void classes_init(void);

#endif
