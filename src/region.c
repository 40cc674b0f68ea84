/*
 * region.c: heap regions: mapping and unmapping, the region map, the
 * fresh mark, and purging a region's top (see region.h). Knows the chunk
 * layout only to write a region's first chunk and its fencepost.
 */
#include "region.h"

#include "options.h"

MA_LARGE_BSS uint64_t ma_region_map[REGION_MAP_WORDS];

static void map_set(const void *r, int on) {
    size_t slot = (uintptr_t)r >> REGION_SHIFT;
    uint64_t bit = (uint64_t)1 << (slot & 63);
    if (on)
        or_release(&ma_region_map[slot >> 6], bit);
    else
        and_release(&ma_region_map[slot >> 6], ~bit);
}

#define OPEN_STEP ((size_t)1 << 20)

struct chunk *region_new(struct heap *h) {
    struct region *r = os_map_aligned(REGION_SIZE, REGION_SIZE);
    if (!r) return NULL;
    if ((uintptr_t)r >> ADDRESS_BITS) { /* outside what the map covers */
        os_unmap(r, REGION_SIZE);
        return NULL;
    }
    /* close all but the first step and the last page (not in a check
     * mode: region.h); if the system refuses, the region stays open: only
     * the catch is lost */
    char *last = region_end(r) - os_page_size();
    r->open = (char *)r + OPEN_STEP;
    if (opt_get(OPT_CHECK) || os_protect(r->open, (size_t)(last - r->open), 0) != 0)
        r->open = region_end(r);
    r->heap = h;
    r->next = r->prev = NULL;
    struct chunk *c = region_first(r), *fence = region_fence(r);
    set_head(c, REGION_CAPACITY, PINUSE);
    set_foot(c, REGION_CAPACITY);
    set_head(fence, 0, CINUSE);
    r->fresh = (char *)r; /* region_touch raises it past the first chunk */
    region_touch(r, (char *)c + MIN_CHUNK);
    map_set(r, 1);
    return c;
}

int region_open(struct region *r, const void *end) {
    if ((const char *)end <= r->open) return 1;
    char *last = region_end(r) - os_page_size();
    /* open whole already: a carve that ends in the fencepost's page asks
     * for more than the region has, and there is nothing left to open */
    if (r->open >= last) return 1;
    size_t step = (size_t)(r->open - (char *)r) / 2;
    char *to = (char *)align_up((uintptr_t)end, OPEN_STEP);
    if (to < r->open + step) to = (char *)align_up((uintptr_t)(r->open + step), OPEN_STEP);
    if (to >= last) to = last;
    if (os_protect(r->open, (size_t)(to - r->open), 1) != 0) return 0;
    store_relaxed(&r->open, to == last ? region_end(r) : to);
    return 1;
}

void region_forget(struct region *r) {
    map_set(r, 0);
}

void region_unmap_list(struct region *r) {
    while (r) {
        struct region *next = r->next;
        os_unmap(r, REGION_SIZE);
        r = next;
    }
}

int region_is_empty(const struct region *r) {
    const struct chunk *c = region_first(r);
    return !cinuse(c) && chunk_size(c) == REGION_CAPACITY;
}

/*
 * Purge the top chunk c:
 *  1. keep the chunk's header and links and `keep` more bytes resident;
 *  2. madvise the rest up to the region's end, fencepost page included;
 *  3. rewrite the fencepost (and c's footer in it), lower the fresh mark.
 */
int region_purge_top(struct region *r, struct chunk *c, size_t keep) {
    ma_assert(!cinuse(c) && chunk_next(c) == region_fence(r));
    char *from = (char *)align_up((uintptr_t)c + MIN_CHUNK + keep, os_page_size());
    if (from >= r->fresh || from >= region_end(r)) return 0;
    if (os_purge(from, (size_t)(region_end(r) - from)) != 0) return 0;
    struct chunk *fence = region_fence(r);
    set_head(fence, 0, CINUSE);
    fence->prev_foot = chunk_size(c);
    r->fresh = from;
    return 1;
}
