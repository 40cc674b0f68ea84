/*
 * page.h: the pages of size classes. A page is one in-use chunk of the
 * heap that starts on a window boundary (region.h) and spans a whole
 * number of windows; it holds objects of one size class, without
 * headers, on a grid. This file owns the page layout, carving a page from
 * a heap and giving it back, the free lists of objects and the list of
 * other threads' frees, validating an object handed back, and the rings
 * that link pages. Who owns a page (a thread cache, or an arena as an
 * orphan) is said by its owner field; locking is the caller's.
 *
 *  base -> +-------------------------------+  window-aligned
 *          | the chunk's head              |  line 0
 *          | (colour: 0 to 31 lines)       |
 *  page -> +-------------------------------+
 *          | owner, grid, bump, free list, |  line 0: all that malloc and
 *          |   cookie, used count, class   |    free touch (one line)
 *          | ring links, tag, end          |  line 1: slow paths only
 *          | thread_free: remote frees     |  line 2 (atomic push/exchange)
 *  start-> +-------------------------------+  base + a multiple of the class's
 *          | object 0 | object 1 | ...     |    power-of-two factor, up to 4 KiB
 *  bump -> | never handed out yet ...      |
 *  end  -> +-------------------------------+  at most base + the windows:
 *                                               the next chunk's head
 *
 * An object of a class whose size is a multiple of 2^j (j <= 12) is thus
 * aligned to 2^j: posix_memalign is served from the pages as well. A
 * lightly used page touches one OS page of memory: its chunk's head, its
 * header and its first objects share it, and the next chunk's head is on
 * the first OS page of the next window (often the next page's own).
 *
 * Each region keeps 32 bits per window (region->win): 0 if no page covers
 * it, else the offset of that page's header from the region; free() finds
 * the page of any pointer with a mask and one load, without a lock.
 *
 * A free object keeps, in its first 16 bytes:
 *    key   os_cookie_value ^ its address; 0 once handed out. A free of an
 *          object whose key is set is a double free; a pop that finds the
 *          key changed means the program wrote to freed memory. It comes
 *          first: a stale pointer most often writes the first word, and
 *          the pop then catches it before it follows next;
 *    next  the next free object, or NULL.
 *
 * Invariants (checked by page_check): start <= bump <= end, bump - start a
 * multiple of size; every object on the free list and on thread_free is
 * on the grid below bump with its key set; objects handed out (bump -
 * start) / size = used + on the free list (+ what thread_free holds,
 * counted in used until collected); each window of the page names it.
 */
#ifndef MEMALLOC_PAGE_H
#define MEMALLOC_PAGE_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "heap.h"
#include "region.h"
#include "sizeclass.h"

#define PAGE_HDR      192 /* three cache lines */
#define PAGE_MIN_OBJS 8   /* a page holds at least this many objects */

struct tblock {
    uintptr_t key; /* first: the word a write through a stale pointer most often hits */
    struct tblock *next;
};

struct tcache;

struct page {
    /* line 0: what every free reads, the owner's and other threads'
     * alike; written only on slow paths, so that it stays shared in every
     * core's cache while the owner allocates and frees (line 1) */
    struct tcache *owner; /* relaxed atomic; NULL while orphaned */
    char *start;          /* object 0 */
    uint64_t grid;        /* ceil(2^40 / size) << 24: page_holds' grid test */
    uintptr_t cookie;     /* os_cookie_value, at hand for the keys */
    uint32_t handed;      /* bytes from start handed out at some time: the bump */
    uint32_t size;        /* object size */
    uint16_t k;           /* class */
    uint8_t nwin;         /* windows the page spans */
    /* line 1: what the owner's malloc and free write; the slow paths' */
    _Alignas(64) struct tblock *free; /* the owner's free list */
    uint32_t used;                    /* handed out, less what came back (thread_free not yet) */
    uint32_t fresh;    /* page_grow: from start, the first OS page it has not faulted in */
    struct page *next; /* a ring: a cache's queue of class k, or an arena's */
    struct page *prev; /* orphans of class k; both NULL while on no ring */
    uintptr_t tag;     /* os_cookie_value ^ address: a sane header */
    char *end;         /* past the last object */
    uint32_t kept;     /* an idle orphan: the bytes it counts against its arena's budget */
    uint32_t idle;     /* an idle orphan: os_now_ms() when it became idle (low 32 bits) */
    uint8_t grows;     /* page_grow: page_extend faults in OS pages ahead, in steps */
    /* line 2: other threads' frees: a stack of objects and how many it
     * holds, in one word (tf_top, tf_count), so that the owner takes it
     * whole without walking it */
    _Alignas(64) uintptr_t thread_free;
};
_Static_assert(sizeof(struct page) <= PAGE_HDR, "page header larger than PAGE_HDR");

/* thread_free: the top of the stack below bit TF_SHIFT (user addresses
 * are below 2^47), the count above (a page holds fewer than 2^16 objects). */
#define TF_SHIFT 48
static inline struct tblock *tf_top(uintptr_t v) {
    return (struct tblock *)(v & (((uintptr_t)1 << TF_SHIFT) - 1));
}
static inline uint32_t tf_count(uintptr_t v) {
    return (uint32_t)(v >> TF_SHIFT);
}

static inline uintptr_t obj_key(const void *b) {
    return os_cookie_value ^ (uintptr_t)b;
}

/* A page's header is not right after its chunk's head but "coloured": at
 * one of PAGE_COLORS cache-line offsets that follow from the page's
 * address, so that the headers of many pages (all 64 KiB apart) do not
 * compete for the same set of the processor's cache. Line 0 of the page
 * is its chunk's head (and the previous chunk's last bytes). */
#define PAGE_COLORS 32
static inline size_t page_color_offset(unsigned color) {
    return 64 + (size_t)color * 64;
}
/* Where the header of a page whose first window is base goes. */
static inline struct page *page_header(uintptr_t base) {
    return (struct page *)(base +
                           page_color_offset((unsigned)(base >> WINDOW_SHIFT) & (PAGE_COLORS - 1)));
}
/* The first byte of page g: its chunk, on a window boundary. */
static inline char *page_base(const struct page *g) {
    return (char *)align_down((uintptr_t)g, WINDOW_SIZE);
}
static inline struct chunk *page_chunk(const struct page *g) {
    return (struct chunk *)(void *)page_base(g);
}

/* The page whose windows cover p, in region r (p in r), or NULL. */
static inline struct page *page_of(const struct region *r, const void *p) {
    uint32_t v = load_relaxed(&r->win[((uintptr_t)p >> WINDOW_SHIFT) & (REGION_WINDOWS - 1)]);
    return v ? (struct page *)(void *)((char *)r + v) : NULL;
}

/* The first byte of g never handed out (relaxed: other threads' frees
 * read it while the owner extends the page). */
static inline char *page_bump(const struct page *g) {
    return g->start + load_relaxed(&g->handed);
}

/* The end of what g may have made resident past its header: its bump,
 * or, for a page that grows (page_grow), the OS pages faulted in ahead
 * of it. */
static inline char *page_reach(const struct page *g) {
    char *bump = page_bump(g), *ahead = g->start + g->fresh;
    return g->grows && ahead > bump ? ahead : bump;
}

/*
 * Is p an object of page g handed out at some time (on the grid, below the
 * bump)? Says nothing of whether it is in use now. The offset from start
 * is unsigned, so a p below start fails the first test. The second is
 * "off is a multiple of size" in one multiply: with div = ceil(2^40 / size)
 * and off < 2^20 (a page is at most 9 windows), off * div mod 2^40 is
 * below div exactly when it is; grid holds div << 24, so the product
 * wraps at 2^64 instead and the mask costs nothing.
 */
static inline int page_holds(const struct page *g, const void *p) {
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)g->start);
    return off < load_relaxed(&g->handed) && off * g->grid < g->grid;
}

/*
 * The page of p if p is an object of a page, handed out and not free now;
 * else NULL, and the caller's slow path validates p fully (it may be a
 * chunk, a mapped block, or not ours). The region map's test rules out an
 * address of 2^ADDRESS_BITS or more and one outside every region of
 * ours; a pointer off the 16-byte grid fails page_holds (sizes are
 * multiples of 16). Budget: about a dozen instructions.
 */
static inline struct page *page_of_object(const void *p) {
    if (!region_mapped((uintptr_t)p, __ATOMIC_RELAXED)) return NULL;
    struct page *g = page_of(region_of(p), p);
    if (!g || !page_holds(g, p)) return NULL;
    if (((const struct tblock *)p)->key == (g->cookie ^ (uintptr_t)p)) return NULL; /* free */
    return g;
}

/* ---- rings: doubly linked, circular lists of pages; *ring is the head ---- */

/* Add g (on no ring) at the tail. */
static inline void ring_add(struct page **ring, struct page *g) {
    ma_assert(g->next == NULL && g->prev == NULL);
    struct page *h = *ring;
    if (!h) {
        g->next = g->prev = g;
        *ring = g;
    } else {
        g->next = h;
        g->prev = h->prev;
        h->prev->next = g;
        h->prev = g;
    }
}
/* Add g (on no ring) at the head. */
static inline void ring_push_head(struct page **ring, struct page *g) {
    ring_add(ring, g);
    *ring = g;
}
/* Take g off the ring. */
static inline void ring_del(struct page **ring, struct page *g) {
    ma_assert(*ring != NULL && g->next->prev == g && g->prev->next == g);
    if (g->next == g) {
        *ring = NULL;
    } else {
        g->prev->next = g->next;
        g->next->prev = g->prev;
        if (*ring == g) *ring = g->next;
    }
    g->next = g->prev = NULL;
}

/* ---- page.c ---- */

/* Compute each class's page geometry (after classes_init). */
void pages_init(void);
/* A new page of class k for owner, carved from heap h (its lock held);
 * NULL if out of memory. Its free list is empty and its bump at start. */
struct page *page_carve(struct heap *h, struct tcache *owner, unsigned k);
/* Turn idle page g (no object in use, on no ring) into a page of class k
 * with the same bytes, its free list empty and its bump at start; 0 (g
 * unchanged) if k's pages are of another length. Its memory stays
 * resident, its windows and chunk as they are: a program that frees a
 * batch of one size and allocates a batch of another reuses the OS pages
 * the first touched. */
int page_reclass(struct page *g, unsigned k);
/* Give idle page g (no object in use, on no ring) back to the heap of
 * its region (that heap's lock held). */
void page_release(struct page *g);
/* Take in the objects other threads freed into g (by its owner, or under
 * its arena's lock for an orphan); 1 if there were any. */
int page_collect(struct page *g);
/* Grow g's free list from its never-used room, up to the next OS page
 * boundary (at least one object); 0 if it has no room. (page_grow: the
 * OS pages ahead are faulted in first.) */
int page_extend(struct page *g);
/* g, a new page (nothing handed out yet) of a class whose page before it
 * filled, is likely to fill too: from now on, page_extend faults in the OS pages of g that
 * were never resident a step ahead of the objects it hands out, a step
 * as large as what g has handed out (so at most as much again is made
 * resident for nothing), in one system call each rather than a fault per
 * OS page. Only for a page of one window (objects of at most a few KiB,
 * which programs write whole) carved from memory never used: a heap that
 * grows. */
void page_grow(struct page *g);
/* Validate p as an object of page g in use; abort, naming who, if not. */
void page_validate(const struct page *g, const void *p, const char *who);
/* Stop the program: the key of free object b was overwritten (a write to
 * freed memory), found when malloc took b. */
__attribute__((noreturn, cold)) void page_freed_written(const struct tblock *b);
/* A page of a thread that fork did not copy may be one off in used:
 * count it again from its free list. */
void page_recount(struct page *g);
/* Usable bytes of the chunks of every page (statistics). */
size_t pages_total_bytes(void);
/* The checker's view of page g of class k owned by owner: NULL if fine,
 * else what is wrong. Its lists are walked only if walk_lists. */
const char *page_check(const struct page *g, unsigned k, const struct tcache *owner,
                       int walk_lists);

#endif
