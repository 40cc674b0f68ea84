/*
 * region.h: heap regions and the region map. A region is a REGION_SIZE
 * mapping aligned to REGION_SIZE, so the region of any pointer is found
 * by masking once the region map (one bit per REGION_SIZE of address
 * space) says the mapping is ours:
 *
 *   region --> +----------------------+
 *              | struct region        |  REGION_HDR bytes
 *   first ---> +----------------------+
 *              | chunks, tiling ...   |
 *              |                      |
 *   end - 16-> +----------------------+
 *              | fencepost: size 0,   |  stops coalescing and walks
 *              | CINUSE               |
 *   end ------>+----------------------+
 *
 * A region is cut into windows of WINDOW_SIZE bytes; its header keeps one
 * word per window for the size-class pages (page.h), which start on
 * window boundaries.
 *
 * Only the part a heap has used is open (readable and writable): from the
 * region to its open mark, and the last OS page (the fencepost). The rest
 * is inaccessible until carving reaches it (region_open), so a block's
 * overflow that runs past everything the program ever had faults at once,
 * as one past the top of glibc's heap does. The mark rises by steps of a
 * MiB and half of what is open, so a heap's growth costs a system call per
 * step, not per carve, and never falls. A region mapped while a check mode
 * is on is open whole: level 1 reports an overflow at free, with the
 * block and the offset, rather than die at the write with no message. This file maps and unmaps
 * regions, keeps the map and each region's fresh mark, and purges a region's top; which regions a
 * heap has is the heap's (heap.c).
 */
#ifndef MEMALLOC_REGION_H
#define MEMALLOC_REGION_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

#define REGION_SHIFT    26
#define REGION_SIZE     ((size_t)1 << REGION_SHIFT) /* 64 MiB */
#define REGION_HDR      4160                        /* struct region, rounded up to a cache line */
#define WINDOW_SHIFT    16
#define WINDOW_SIZE     ((size_t)1 << WINDOW_SHIFT) /* 64 KiB */
#define REGION_WINDOWS  (REGION_SIZE >> WINDOW_SHIFT)
#define ADDRESS_BITS    47
#define REGION_CAPACITY (REGION_SIZE - REGION_HDR - CHUNK_HDR)

struct heap;

struct region {
    struct region *next, *prev; /* its heap's list */
    struct heap *heap;          /* the heap it belongs to (which says the lock) */
    char *fresh; /* every byte in [fresh, end - 16) is zero: never dirtied, or purged */
    char *open;  /* [open, end - OS page) is inaccessible; region_end if none is
                  * (written under the heap's lock, read by free() without it) */
    /* per window: 0, or the offset from the region of the header of the
     * page that covers it (page.h); written under the region's lock, read
     * by free() without it */
    uint32_t win[REGION_WINDOWS];
};
_Static_assert(sizeof(struct region) <= REGION_HDR, "region header larger than REGION_HDR");

static inline struct region *region_of(const void *p) {
    return (struct region *)((uintptr_t)p & ~(uintptr_t)(REGION_SIZE - 1));
}
static inline struct chunk *region_first(const struct region *r) {
    return (struct chunk *)((char *)r + REGION_HDR);
}
static inline char *region_end(const struct region *r) {
    return (char *)r + REGION_SIZE;
}
static inline struct chunk *region_fence(const struct region *r) {
    return (struct chunk *)(region_end(r) - CHUNK_HDR);
}

/* One bit per REGION_SIZE of address space: set where a region of ours
 * is. Bits, not bytes: the map is 256 KiB of .bss, touched only where
 * regions are, and with a .bss of 2 MiB or more the kernel would place
 * the library on a huge-page boundary (docs/design.md). Holds for
 * addresses below 2^ADDRESS_BITS. */
#define REGION_MAP_WORDS ((size_t)1 << (ADDRESS_BITS - REGION_SHIFT - 6))
extern MA_HIDDEN uint64_t ma_region_map[REGION_MAP_WORDS];

/* Is address a inside a region of ours? The relaxed form is for a
 * caller that reads nothing of the region but what a lock or a later
 * acquire orders (the free fast path: a pointer that is ours was handed
 * out after its region was mapped). */
static inline int region_mapped(uintptr_t a, int order) {
    if ((a >> REGION_SHIFT) >= REGION_MAP_WORDS * 64) return 0;
    size_t slot = a >> REGION_SHIFT;
    return (int)(__atomic_load_n(&ma_region_map[slot >> 6], order) >> (slot & 63)) & 1;
}
/* The region holding p, or NULL if p is not in one of ours. Lock-free. */
static inline struct region *region_lookup(const void *p) {
    return region_mapped((uintptr_t)p, __ATOMIC_ACQUIRE) ? region_of(p) : NULL;
}

/* Map a new region for heap h, its chunks one free chunk (returned,
 * unbinned), and put it in the map. NULL if out of memory. */
struct chunk *region_new(struct heap *h);
/* Take r out of the map (before its heap drops it, under its lock). */
void region_forget(struct region *r);
/* Unmap the regions of a list linked by next (after unlocking). */
void region_unmap_list(struct region *r);
/* Does r hold one free chunk and nothing else? */
int region_is_empty(const struct region *r);

/* Open region r up to end at least (region_open's steps); 1, or 0 if the
 * system refused (out of memory). */
int region_open(struct region *r, const void *end);
/* May the header of a chunk at c (in region r) be read? */
static inline int region_readable(const struct region *r, const void *c) {
    /* (relaxed: the mark only rises, and a block handed to another thread
     * was carved after the rise that opened it) */
    return (const char *)c < (const char *)load_relaxed(&r->open) ||
           (const char *)c >= region_end(r) - os_page_size();
}

/* Note that bytes below end may now be dirty (region_open opened them). */
static inline void region_touch(struct region *r, const void *end) {
    char *e = (char *)align_up((uintptr_t)end, os_page_size());
    if (e > region_end(r)) e = region_end(r);
    if (e > r->fresh) r->fresh = e;
}
/* Purge the OS pages of region r's top chunk c (free, followed by the
 * fencepost) past its header and links and keep more bytes; 1 if any. */
int region_purge_top(struct region *r, struct chunk *c, size_t keep);

#endif
