/*
 * heap.h: the chunk engine over one heap: the regions of an arena and the
 * bins of their free chunks. Carves (splits), frees (coalesces), resizes
 * in place, carves aligned chunks (the pages of size classes), purges
 * and trims. Every function but heap_chunk_ok runs with the lock that
 * guards the heap held (the arena's: arena.c); none takes a lock or calls
 * above this layer. A purge that falls due is only scheduled here
 * (purge_due); the arena runs the pass at its next lock or unlock.
 */
#ifndef MEMALLOC_HEAP_H
#define MEMALLOC_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include "bins.h"
#include "chunk.h"
#include "region.h"

/* The working set's epoch (heap.c): free memory that the program held
 * within the last one to two epochs stays resident. */
#define WS_EPOCH_MS 1000

struct heap {
    struct bins bins;
    struct region *regions; /* linked by next/prev */
    struct region *spare;   /* an empty region kept to avoid map/unmap churn */
    struct region *gone;    /* regions left empty: the lock holder unmaps them after unlocking */
    size_t nregions;
    size_t in_use;      /* sum of the sizes of in-use chunks */
    size_t span_dirty;  /* bytes freed into large free chunks since the last pass */
    uint64_t purge_due; /* os_now_ms() time a purge pass is due at; 0: none (relaxed) */
    /* the working set (heap.c, WS_EPOCH_MS): the highest in_use of the
     * current epoch (from epoch, os_now_ms()) and of the one before; the
     * bytes purged in both, those faulted in (carved from purged or fresh
     * memory) in this one, and the slack they taught */
    size_t peak_now, peak_before;
    size_t purged_now, purged_before, faulted, slack;
    uint64_t epoch;
};

void heap_init(struct heap *h);

/* Allocate a chunk of size nb; *zero_len (if zero_len) is the number of
 * payload bytes that may be dirty (calloc must clear them; the rest is
 * fresh zero). Its payload, or NULL. */
void *heap_alloc(struct heap *h, size_t nb, size_t *zero_len);
/* Allocate a chunk of size nb whose byte at offset off (CHUNK_HDR: the
 * payload; 0: the chunk itself) is a multiple of align; its payload. */
void *heap_alloc_aligned(struct heap *h, size_t nb, size_t align, size_t off);
/* As heap_alloc_aligned; *untouched is where the chunk's bytes never
 * touched begin (its region's fresh mark before the carve, within the
 * chunk): from there to the chunk's end no OS page is resident. */
void *heap_alloc_aligned_fresh(struct heap *h, size_t nb, size_t align, size_t off,
                               char **untouched);
/* Free in-use chunk c of h. A region it empties stays, binned, until a
 * purge pass finds it above the working set (then onto h->gone). */
void heap_free(struct heap *h, struct chunk *c);
/* Resize in-use chunk c to nb in place (growing, up to want >= nb if the
 * room is there); 1 on success, 0 if it must move. */
int heap_resize(struct heap *h, struct chunk *c, size_t nb, size_t want);

/*
 * Is c, handed back by the program, an in-use chunk of region r?
 *  1. it lies between the region's first chunk and its fencepost, where
 *     the region is open (region_readable);
 *  2. its tag matches its address and size, and it fits in the region;
 *  3. it is in use (else it was freed);
 *  4. its successor agrees that it is in use.
 * No lock needed: only the block's owner changes what this reads.
 */
static inline int heap_chunk_ok(const struct region *r, const struct chunk *c) {
    const char *fence = (const char *)region_fence(r);
    if (unlikely((const char *)c < (const char *)region_first(r) || (const char *)c >= fence ||
                 !region_readable(r, c)))
        return 0;
    size_t head = head_get(c), size = head & SIZE_MASK;
    return likely(head_tag_ok(c, head) && size >= MIN_CHUNK &&
                  size <= (size_t)(fence - (const char *)c) &&
                  (head & (MMAPPED | CINUSE)) == CINUSE && pinuse(chunk_next(c)));
}
/* Steps 1 to 3 of heap_chunk_ok: c's own header only (the check modes:
 * an overflow of c's block may have broken its successor's header). */
static inline int heap_chunk_head_ok(const struct region *r, const struct chunk *c) {
    const char *fence = (const char *)region_fence(r);
    if ((const char *)c < (const char *)region_first(r) || (const char *)c >= fence ||
        !region_readable(r, c))
        return 0;
    size_t head = head_get(c), size = head & SIZE_MASK;
    return head_tag_ok(c, head) && size >= MIN_CHUNK && size <= (size_t)(fence - (const char *)c) &&
           (head & (MMAPPED | CINUSE)) == CINUSE;
}
/*
 * What c is, handed back to who while not an in-use chunk of region r
 * (heap_chunk_ok failed), for the message that stops the program: "double
 * free of" (or "pointer already freed") if it was a block that is free
 * now, even merged into a neighbour and purged since; "heap corruption
 * near" if its header, or its successor's, was overwritten; else "invalid
 * pointer". Walks the region's chunks up to c: the heap's lock held.
 */
const char *heap_blame(const struct region *r, const struct chunk *c, const char *who);

/* A purge pass is due after the purge delay, unless one is due sooner;
 * at once if the delay is 0. */
void heap_purge_soon(struct heap *h);
/* The pass over h at time now: every region top with more dirt than the
 * trim threshold; then, of the dirty free memory above what the working
 * set may need again (heap.c), the empty regions but one, and the large
 * spans free for the delay. The time the next pass is due at (0: none). */
uint64_t heap_purge(struct heap *h, uint64_t now, uint64_t delay);
/* The next pass is due at time at (0: none). */
static inline void heap_purge_at(struct heap *h, uint64_t at) {
    store_relaxed(&h->purge_due, at);
}

/* Purge every free OS page; empty regions go onto h->gone. 1 if any
 * memory was given back (or is about to be: regions on h->gone). */
int heap_trim(struct heap *h, size_t pad);

/* Free chunks of h: their bytes, their number, and the bytes of the
 * free chunks at the regions' tops. */
struct heap_free_stats {
    size_t bytes, chunks, top_bytes;
};
void heap_free_stats(const struct heap *h, struct heap_free_stats *out);

#endif
