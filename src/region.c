/*
 * region.c: heap regions: mapping, the region map, the fresh-page mark and
 * purging of a region's top. Knows the chunk layout only to write a
 * region's first chunk and its fencepost.
 */
#include "heap.h"

/* One bit per REGION_SIZE of address space: set if a region of ours starts
 * there. 256 KiB of zero-filled .bss, touched only where regions live.
 * Bits, not bytes: with a .bss of 2 MiB or more the kernel places the
 * library on a huge-page boundary, and the C library mapped next to it at
 * the same offset every run, one where the program faults in all of libc's
 * text (90 to 130 KiB more resident on average, in two measurements). */
MA_LARGE_BSS uint64_t ma_region_map[REGION_MAP_WORDS];

static void map_set(const void *r, int on) {
    size_t slot = (uintptr_t)r >> REGION_SHIFT;
    uint64_t bit = (uint64_t)1 << (slot & 63);
    if (on)
        __atomic_fetch_or(&ma_region_map[slot >> 6], bit, __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(&ma_region_map[slot >> 6], ~bit, __ATOMIC_RELEASE);
}

struct region *region_lookup(const void *p) {
    return region_lookup_fast(p);
}

struct chunk *region_create(struct arena *a) {
    struct region *r = os_map_aligned(REGION_SIZE, REGION_SIZE);
    if (!r) return NULL;
    if ((uintptr_t)r >> ADDRESS_BITS) { /* outside what the map covers */
        os_unmap(r, REGION_SIZE);
        return NULL;
    }
    r->arena = a;
    r->prev = NULL;
    r->next = a->regions;
    if (a->regions) a->regions->prev = r;
    a->regions = r;
    a->nregions++;

    struct chunk *c = region_first(r), *fence = region_fence(r);
    set_head(c, REGION_CAPACITY, PINUSE);
    set_foot(c, REGION_CAPACITY);
    set_head(fence, 0, CINUSE);
    r->fresh = (char *)r; /* region_touch below raises it past the first chunk */
    region_touch(r, (char *)c + MIN_CHUNK);
    map_set(r, 1);
    return c;
}

void region_detach(struct arena *a, struct region *r) {
    map_set(r, 0);
    if (r->prev)
        r->prev->next = r->next;
    else
        a->regions = r->next;
    if (r->next) r->next->prev = r->prev;
    if (a->spare == r) a->spare = NULL;
    a->nregions--;
}

void region_unmap(struct region *r) {
    os_unmap(r, REGION_SIZE);
}

int region_is_empty(const struct region *r) {
    const struct chunk *c = region_first(r);
    return !cinuse(c) && chunk_size(c) == REGION_CAPACITY;
}

/*
 * Purge the top chunk c (free, followed by the fencepost):
 *  1. keep the chunk's header and links and `keep` more bytes resident;
 *  2. madvise the rest up to the region's end, fencepost page included;
 *  3. rewrite the fencepost (and c's footer in it), lower the fresh mark.
 */
int region_purge_top(struct region *r, struct chunk *c, size_t keep) {
    char *from = (char *)align_up((uintptr_t)c + MIN_CHUNK + keep, os_page_size());
    if (from >= r->fresh || from >= region_end(r)) return 0;
    if (os_purge(from, (size_t)(region_end(r) - from)) != 0) return 0;
    struct chunk *fence = region_fence(r);
    set_head(fence, 0, CINUSE);
    fence->prev_foot = chunk_size(c);
    r->fresh = from;
    return 1;
}
