/*
 * heap.h: arenas, regions and bins: the free-list engine's data.
 *
 * An arena owns a list of regions and the bins of their free chunks, under
 * one mutex. A region is a REGION_SIZE mapping aligned to REGION_SIZE, so a
 * pointer's region is found by masking, after one lookup in region_map says
 * the mapping is ours:
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
 * Bins: 64 exact bins for chunk sizes below 1024 (index = size / 16), then
 * eight bins per power of two up to the region size. bitmap bit i is set iff
 * bins[i] is non-empty, so the next fitting bin is found with ctz.
 */
#ifndef MEMALLOC_HEAP_H
#define MEMALLOC_HEAP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

#define REGION_SHIFT 26
#define REGION_SIZE  ((size_t)1 << REGION_SHIFT) /* 64 MiB */
#define REGION_HDR   4160                        /* struct region, rounded up to a cache line */
/* Pages of size classes (tcache.h) are made of whole windows. */
#define PAGE_SHIFT     16
#define PAGE_WINDOW    ((size_t)1 << PAGE_SHIFT) /* 64 KiB */
#define REGION_WINDOWS (REGION_SIZE >> PAGE_SHIFT)
#define NSMALLBINS     64
#define NBINS          192
#define BITMAP_WORDS   (NBINS / 64)
#define ADDRESS_BITS   47

struct arena;
struct spage;

/* The size classes (tcache.h's TC_CLASSES): an arena keeps a ring of
 * orphaned pages per class. */
#define ARENA_CLASSES 45

struct region {
    struct region *next, *prev; /* the arena's list */
    struct arena *arena;
    char *fresh; /* every byte in [fresh, end - 16) is zero: never dirtied, or purged */
    /* per window: 0, or the offset from the region of the header of the
     * page that covers it (tcache.h); written under the arena lock, read
     * by free() without it */
    uint32_t win[REGION_WINDOWS];
};
_Static_assert(sizeof(struct region) <= REGION_HDR, "region header larger than REGION_HDR");

struct arena {
    pthread_mutex_t lock;
    uint64_t bitmap[BITMAP_WORDS];
    struct freelink bins[NBINS]; /* circular lists; the sentinel is the bin itself */
    struct region *regions;
    struct region *spare; /* an empty region kept to avoid map/unmap churn */
    size_t nregions;
    size_t heap_in_use;  /* sum of the sizes of in-use chunks */
    size_t span_dirty;   /* bytes freed into large free chunks since they were purged */
    uint64_t purge_due;  /* os_now_ms() time of the next purge pass; 0: none due */
    struct region *gone; /* regions the emptying left empty: unmap after unlocking */
    /* pages of exited threads, a ring per size class (tcache.c), and the
     * bytes the idle ones among them have touched */
    struct spage *orphans[ARENA_CLASSES];
    size_t orphan_kept;
} __attribute__((aligned(4096))); /* each on pages of its own: only those in use are resident */

/* For the definitions of the large zero-initialised arrays (the region
 * map, the arenas, the bootstrap buffer): the linker places .lbss after
 * .bss, so the small globals that every call touches share a page or two,
 * and of these arrays only the pages in use are resident (the region map:
 * the page of the words for our regions; the arenas: a page for each one
 * set up): 2 fewer resident pages in a small program.
 * (Clang before 17 would make .lbss a section of file data: 350 KiB of
 * zeros in the library; it keeps them in .bss.) */
#if defined(__clang__) && __clang_major__ < 17
#define MA_LARGE_BSS
#else
#define MA_LARGE_BSS __attribute__((section(".lbss")))
#endif

/* Arenas: threads are spread over up to ma_arenas_max of them (one per
 * CPU, at most MAX_ARENAS), so that threads taking and giving back pages
 * and chunks do not wait on one lock. A chunk goes back to the arena of
 * its region. Arena 0 is set up at initialisation, the others when a
 * thread first needs one (arena_setup_next): ma_narenas counts those set
 * up, and only grows (under the cache registry's lock; read it with
 * arenas_count() elsewhere). */
#define MAX_ARENAS 8
extern struct arena ma_arenas[MAX_ARENAS];
extern unsigned ma_narenas, ma_arenas_max;
static inline unsigned arenas_count(void) {
    return __atomic_load_n(&ma_narenas, __ATOMIC_ACQUIRE);
}
/* Set up the next arena and return it, or NULL if all are (tc_lock held). */
struct arena *arena_setup_next(void);
/* Lock or unlock every arena, in index order (fork, checker, statistics). */
void arenas_lock_all(void);
void arenas_unlock_all(void);

/* ---- bins.c ---- */
unsigned bin_index(size_t size);
void bins_init(struct arena *a);
void bin_insert(struct arena *a, struct chunk *c);
void bin_unlink(struct arena *a, struct chunk *c);
/* Unlink and return a free chunk of size >= nb, or NULL. */
struct chunk *bin_take(struct arena *a, size_t nb);

/* ---- region.c ---- */
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
#define REGION_CAPACITY (REGION_SIZE - REGION_HDR - CHUNK_HDR)
/* One bit per REGION_SIZE of address space: set where a region of ours is
 * (region.c says why bits). Holds for addresses below 2^ADDRESS_BITS. */
#define REGION_MAP_WORDS ((size_t)1 << (ADDRESS_BITS - REGION_SHIFT - 6))
extern uint64_t ma_region_map[REGION_MAP_WORDS];
static inline int region_mapped(uintptr_t a, int order) {
    size_t slot = a >> REGION_SHIFT;
    return (int)(__atomic_load_n(&ma_region_map[slot >> 6], order) >> (slot & 63)) & 1;
}
/* The region holding p, or NULL if p is not in one of ours. Lock-free. */
static inline struct region *region_lookup_fast(const void *p) {
    if ((uintptr_t)p >> ADDRESS_BITS) return NULL;
    if (!region_mapped((uintptr_t)p, __ATOMIC_ACQUIRE)) return NULL;
    return region_of(p);
}
struct region *region_lookup(const void *p);
/* Map a new region into a; returns its single free chunk (not binned). */
struct chunk *region_create(struct arena *a);
/* Take r out of a and out of the map; the caller unmaps it (unlocked). */
void region_detach(struct arena *a, struct region *r);
void region_unmap(struct region *r);
/* Note that bytes below end may now be dirty. */
static inline void region_touch(struct region *r, const void *end) {
    char *e = (char *)align_up((uintptr_t)end, os_page_size());
    if (e > region_end(r)) e = region_end(r);
    if (e > r->fresh) r->fresh = e;
}
/* Purge the pages of region r's top chunk c above keep bytes. */
int region_purge_top(struct region *r, struct chunk *c, size_t keep);
int region_is_empty(const struct region *r);

/* ---- heap.c (all under a->lock) ---- */
/* Allocate a chunk of size nb; *zero_len is the number of payload bytes
 * that may be dirty (calloc must clear them; the rest is fresh zero). */
void *heap_alloc(struct arena *a, size_t nb, size_t *zero_len);
/* Allocate a chunk of size nb whose byte at offset off (CHUNK_HDR: the
 * payload; 0: the chunk itself) is a multiple of align; its payload. */
void *heap_alloc_aligned(struct arena *a, size_t nb, size_t align, size_t off);
/* Free in-use chunk c; returns a region the caller must unmap, or NULL. */
struct region *heap_free(struct arena *a, struct chunk *c);
/* Resize in-use chunk c to nb in place (growing, up to want >= nb if the
 * room is there); 1 on success, 0 if it must move. */
int heap_resize(struct arena *a, struct chunk *c, size_t nb, size_t want);
/* Run the purge pass that free scheduled, if its time has come. */
void heap_purge_if_due(struct arena *a);
/* A purge pass of arena a is due after the purge delay, if none is yet
 * (lock held); at once if the delay is 0. */
void heap_purge_soon(struct arena *a);
/* tcache.c: give back the memory of a's idle orphans that have been idle
 * for delay ms or more (lock held); 1 if a younger one was left. */
int tc_orphans_purge(struct arena *a, uint64_t now, uint64_t delay);
/* The same for every arena, from a call that holds no arena lock (large
 * blocks, which take none): an arena whose lock is busy is left to its
 * holder. */
void heap_purge_due_arenas(void);
/* Purge every free page; detach empty regions onto *unmap (linked by next). */
int heap_trim(struct arena *a, size_t pad, struct region **unmap);

#endif
