/*
 * page.c: pages of size classes (see page.h): their geometry per class,
 * carving one from a heap and giving it back, growing and refilling its
 * free list, validating an object handed back, and the checker's view of
 * a page. Takes no lock: the caller holds the one that guards what it
 * touches (the heap's for carving and giving back).
 */
#include "page.h"

#include <string.h>

#include "counters.h"
#include "msg.h"

static uint32_t page_len[NCLASSES];   /* whole windows */
static uint32_t page_align[NCLASSES]; /* objects are aligned to this (from the base) */
static size_t pages_bytes;            /* usable bytes of every page's chunk (relaxed) */

void pages_init(void) {
    for (unsigned k = 0; k < NCLASSES; k++) {
        size_t size = class_size[k];
        size_t pf = size & (~size + 1); /* the largest power of two dividing size */
        size_t align = pf < 4096 ? pf : 4096, bytes = WINDOW_SIZE;
        /* object 0 comes after the header at its last colour, at worst */
        size_t first = align_up(page_color_offset(PAGE_COLORS - 1) + PAGE_HDR, align);
        while ((bytes - first) / size < PAGE_MIN_OBJS) bytes += WINDOW_SIZE;
        page_len[k] = (uint32_t)bytes;
        page_align[k] = (uint32_t)align;
    }
}

size_t pages_total_bytes(void) {
    return load_relaxed(&pages_bytes);
}

static uint32_t page_offset(const struct region *r, const struct page *g) {
    return (uint32_t)((const char *)g - (const char *)r);
}

static size_t page_index(const struct page *g) {
    return ((uintptr_t)g >> WINDOW_SHIFT) & (REGION_WINDOWS - 1);
}

/* Mark the windows of g in its region with v (g's offset, or 0). */
static void mark_windows(const struct page *g, uint32_t v) {
    struct region *r = region_of(g);
    for (size_t i = 0; i < g->nwin; i++) store_relaxed(&r->win[page_index(g) + i], v);
}

/* The object grid of a page of class k whose header is g: from the first
 * aligned offset past the header to the last whole object. */
static char *grid_start(const struct page *g, unsigned k) {
    char *base = page_base(g);
    return base + align_up((uintptr_t)((const char *)g - base) + PAGE_HDR, page_align[k]);
}
static char *grid_end(const struct page *g, unsigned k, const char *start) {
    const char *limit = page_base(g) + page_len[k];
    return (char *)start + (size_t)(limit - start) / class_size[k] * class_size[k];
}

/* page_holds' grid factor for objects of size bytes. Its test is exact
 * for offsets off with (off + size) * size < 2^40; a page of a class spans
 * at most (PAGE_MIN_OBJS + 1) objects and a window. */
_Static_assert(((uint64_t)(PAGE_MIN_OBJS + 2) * CLASS_MAX + WINDOW_SIZE) * CLASS_MAX <
                   ((uint64_t)1 << 40),
               "page_holds' grid test needs smaller pages");
static uint64_t grid_factor(uint32_t size) {
    return ((((uint64_t)1 << 40) + size - 1) / size) << 24;
}

/*
 * Carve a page of class k:
 *  1. a chunk of the page's bytes whose head is on a window boundary;
 *  2. the header at the window's colour, the grid after it;
 *  3. its windows marked with the header's offset, last: from then on a
 *     free() of an address in it finds the page.
 */
struct page *page_carve(struct heap *h, struct tcache *owner, unsigned k) {
    char *untouched;
    char *p = heap_alloc_aligned_fresh(h, page_len[k], WINDOW_SIZE, 0, &untouched);
    if (!p) return NULL;
    char *base = (char *)payload_chunk(p);
    struct page *g = page_header((uintptr_t)base);
    memset(g, 0, sizeof *g);
    g->start = grid_start(g, k);
    g->size = class_size[k];
    g->end = grid_end(g, k, g->start);
    g->grid = grid_factor(g->size);
    g->cookie = os_cookie_value;
    g->k = (uint16_t)k;
    g->nwin = (uint8_t)(page_len[k] >> WINDOW_SHIFT);
    g->tag = obj_key(g);
    if (untouched < g->start) untouched = g->start;
    g->fresh = (uint32_t)(align_up((uintptr_t)untouched, os_page_size()) - (uintptr_t)g->start);
    ma_assert(g->start >= (char *)g + PAGE_HDR && g->end > g->start &&
              (size_t)(g->end - g->start) / g->size >= PAGE_MIN_OBJS);
    store_relaxed(&g->owner, owner);
    mark_windows(g, page_offset(region_of(g), g));
    size_t usable = usable_size(payload_chunk(p));
    counters_out(usable);
    add_relaxed(&pages_bytes, usable);
    return g;
}

int page_reclass(struct page *g, unsigned k) {
    ma_assert(g->used == 0 && g->next == NULL && !load_relaxed(&g->thread_free));
    if (page_len[k] != page_len[g->k]) return 0;
    g->free = NULL;
    store_relaxed(&g->handed, 0);
    g->start = grid_start(g, k);
    g->size = class_size[k];
    g->end = grid_end(g, k, g->start);
    g->grid = grid_factor(g->size);
    g->k = (uint16_t)k;
    g->fresh = (uint32_t)(g->end - g->start); /* (page_grow: nothing to do) */
    g->grows = 0;
    return 1;
}

void page_release(struct page *g) {
    struct chunk *c = page_chunk(g);
    if (g->tag != obj_key(g) || !tag_ok(c) || !cinuse(c) || !pinuse(chunk_next(c)))
        ma_fatal("free", "heap corruption near", g);
    ma_assert(g->used == 0 && g->next == NULL);
    mark_windows(g, 0);
    g->tag = 0;
    size_t usable = usable_size(c);
    counters_in(usable);
    sub_relaxed(&pages_bytes, usable);
    heap_free(region_of(g)->heap, c);
}

int page_collect(struct page *g) {
    if (!load_relaxed(&g->thread_free)) return 0;
    uintptr_t v = exchange_acquire(&g->thread_free, 0);
    struct tblock *b = tf_top(v);
    uint32_t n = tf_count(v);
    ma_assert(page_holds(g, b)); /* pushed by a free that validated it */
    if (n == 0 || n > g->used)
        ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
    if (g->free) { /* (rare: the owner collects when its list ran dry) */
        struct tblock *last = b;
        for (uint32_t i = 1; i < n; i++)
            if (!(last = last->next))
                ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
        last->next = g->free;
    }
    g->free = b;
    g->used -= n;
    return 1;
}

/* A page that grows is about to hand out objects up to to: fault in, from
 * its fresh mark, up to twice what it will have handed out. */
static void grow_step(struct page *g, const char *to) {
    char *from = g->start + g->fresh; /* (an OS page boundary) */
    if (to <= from) return;
    size_t page = os_page_size();
    uintptr_t want = align_up((uintptr_t)to + (size_t)(to - g->start), page);
    uintptr_t end = align_up((uintptr_t)g->end, page);
    if (want > end) want = end;
    g->fresh = (uint32_t)((char *)want - g->start);
    os_populate(from, want - (uintptr_t)from);
}

int page_extend(struct page *g) {
    char *bump = page_bump(g);
    if (bump >= g->end) return 0;
    size_t size = g->size, left = (size_t)(g->end - bump) / size;
    char *edge = (char *)align_up((uintptr_t)bump + 1, os_page_size());
    size_t n = (size_t)(edge - bump + size - 1) / size;
    if (n > left) n = left;
    if (g->grows) grow_step(g, bump + n * size);
    struct tblock *head = g->free;
    for (size_t i = n; i-- > 0;) { /* handed out in address order */
        struct tblock *b = (struct tblock *)(void *)(bump + i * size);
        b->next = head;
        b->key = obj_key(b);
        head = b;
    }
    /* bump first: a fork that catches us between the two stores leaves
     * objects that look handed out (page_recount counts them again),
     * never free objects above bump */
    store_relaxed(&g->handed, (uint32_t)(bump + n * size - g->start));
    g->free = head;
    ma_assert(page_bump(g) <= g->end);
    return 1;
}

void page_grow(struct page *g) {
    if (g->nwin == 1 && page_bump(g) == g->start && g->start + g->fresh < g->end) g->grows = 1;
}

void page_validate(const struct page *g, const void *p, const char *who) {
    const struct tblock *b = p;
    if (g->tag != obj_key(g)) ma_fatal(who, "heap corruption near", p);
    if (!page_holds(g, p)) ma_fatal(who, "invalid pointer", p);
    if (b->key == obj_key(b)) ma_fatal(who, freed_twice_what(who), p);
}

void page_freed_written(const struct tblock *b) {
    ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
}

void page_recount(struct page *g) {
    size_t handed = (size_t)(page_bump(g) - g->start) / g->size, nf = 0;
    for (const struct tblock *b = g->free; b && nf < handed; b = b->next) nf++;
    g->used = (uint32_t)(handed - nf);
}

const char *page_check(const struct page *g, unsigned k, const struct tcache *owner,
                       int walk_lists) {
    if (g->tag != obj_key(g)) return "page header overwritten";
    if (g != page_header((uintptr_t)page_base(g))) return "page header off its colour";
    const struct chunk *c = page_chunk(g);
    if (!tag_ok(c) || !cinuse(c) || chunk_size(c) < page_len[k])
        return "page is not an in-use chunk of its size";
    if (g->k != k || g->size != class_size[k]) return "page of the wrong class";
    if (g->start != grid_start(g, k) || g->end != grid_end(g, k, g->start) ||
        g->grid != grid_factor(g->size))
        return "page grid broken";
    if (g->cookie != os_cookie_value) return "page cookie overwritten";
    const char *bump = page_bump(g);
    if (bump < g->start || bump > g->end || (size_t)(bump - g->start) % g->size)
        return "page bump out of the grid";
    if (g->nwin != page_len[k] >> WINDOW_SHIFT) return "page window count wrong";
    if (g->grows && (g->nwin != 1 || (uintptr_t)(g->start + g->fresh) % os_page_size() ||
                     g->start + g->fresh > page_base(g) + WINDOW_SIZE))
        return "page faulted in ahead off its window";
    const struct region *r = region_of(g);
    for (size_t i = 0; i < g->nwin; i++)
        if (r->win[page_index(g) + i] != page_offset(r, g)) return "page windows not marked";
    if (load_relaxed(&g->owner) != owner) return "page of another owner";
    if (!walk_lists) return NULL;
    size_t handed = (size_t)(bump - g->start) / g->size, nf = 0, nt = 0;
    for (const struct tblock *b = g->free; b; b = b->next) {
        if (!page_holds(g, b)) return "free object off the page's grid";
        if (b->key != obj_key(b)) return "free object without its key";
        if (++nf > handed) return "free list longer than the page: a cycle?";
    }
    uintptr_t tf = load_acquire(&g->thread_free);
    for (const struct tblock *b = tf_top(tf); b; b = b->next) {
        if (!page_holds(g, b)) return "remote-freed object off the page's grid";
        if (b->key != obj_key(b)) return "remote-freed object without its key";
        if (++nt > handed) return "remote-free list longer than the page: a cycle?";
    }
    if (nt != tf_count(tf)) return "remote-free count disagrees with its list";
    if (g->used + nf != handed) return "page used count disagrees with its free list";
    if (nt > g->used) return "more remote frees than objects in use";
    return NULL;
}
