/*
 * tcache.h: thread caches made of size-class pages, and the malloc and free
 * fast paths over them. Owns the size classes and the page layout; the
 * engine (heap.c) sees a page only as one in-use chunk.
 *
 * Requests up to TC_MAX_REQUEST are rounded up to a size class and served
 * from a page of that class that the calling thread owns. A page is a chunk
 * of the engine that starts on a PAGE_WINDOW boundary and spans a whole
 * number of windows; its objects have no header and sit on a grid:
 *
 *  base -> +-------------------------------+  PAGE_WINDOW-aligned
 *          | the chunk's head              |  line 0
 *          | (colour: 0 to 31 lines)       |
 *  page -> +-------------------------------+
 *          | owner, grid, bump, free list, |  line 0: all that malloc and
 *          |   cookie, used count, class   |    free touch (one line)
 *          | queue links, tag, end         |  line 1: slow paths only
 *          | thread_free: remote frees     |  line 2 (atomic push/exchange)
 *  start-> +-------------------------------+  base + a multiple of the class's
 *          | object 0 | object 1 | ...     |    power-of-two factor, up to 4 KiB
 *  bump -> | never handed out yet ...      |
 *  end  -> +-------------------------------+  at most base + the windows:
 *                                               the next chunk's head
 *
 * so an object of a class whose size is a multiple of 2^j (j <= 12) is
 * aligned to 2^j: posix_memalign is served from the pages as well. A
 * lightly used page touches one system page of memory: its chunk's head,
 * its header and its first objects share it, and the next chunk's head is
 * on the first system page of the next window (often the next page's own).
 *
 * Each region keeps 32 bits per window (region->win): 0 if no page covers
 * it, else the offset of that page's header from the region; free() finds
 * the page of any pointer with a mask and one load, without a lock.
 *
 *  - malloc pops the free list of the thread's current page of the class;
 *  - free by the owner pushes onto the page's free list; free by any other
 *    thread pushes onto thread_free with one compare-and-swap, and the
 *    owner takes that list whole when its free list runs dry;
 *  - a page none of whose objects is in use goes back to the engine unless
 *    it is its class's current page (or the one idle page a class keeps;
 *    of current pages several windows long, a thread keeps one idle);
 *    a thread that exits hands its pages to the arena ("orphans": those in
 *    use, and idle ones within TC_ORPHAN_KEEP), where the next thread
 *    needing a page of that class adopts them; meanwhile frees into an
 *    orphan take the arena's lock, so that it goes back with its last
 *    object; an idle orphan that waits for the purge delay gives its
 *    objects' memory back (tc_orphans_purge) and starts afresh.
 *
 * A free object keeps, in its first 16 bytes:
 *    next  the next free object, or NULL;
 *    key   os_cookie_value ^ its address; 0 once handed out. A free of an
 *          object whose key is set is a double free; a pop that finds the
 *          key changed means the program wrote to freed memory.
 *
 * A thread starts on tc_empty, whose current pages are all tc_nopage (an
 * empty page that no one owns), so the fast paths need no "is this thread
 * set up?" test: they fail over to the slow paths, which set it up.
 */
#ifndef MEMALLOC_TCACHE_H
#define MEMALLOC_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "heap.h"

#define TC_CLASSES 45
_Static_assert(TC_CLASSES == ARENA_CLASSES, "an arena's orphan rings are one per class");
#define TC_MAX_REQUEST ((size_t)65536) /* the largest class */
#define PAGE_HDR       192             /* three cache lines */
#define PAGE_MIN_OBJS  8               /* a page holds at least this many objects */

struct tblock {
    struct tblock *next;
    uintptr_t key;
};

struct tcache;

struct spage {
    /* line 0: what the owner's malloc and free use; read by other threads' frees */
    struct tcache *owner; /* relaxed atomic; NULL while orphaned */
    char *start;          /* object 0 */
    uint64_t grid;        /* ceil(2^40 / size) << 24: page_holds' grid test */
    struct tblock *free;  /* the owner's free list */
    uintptr_t cookie;     /* os_cookie_value, at hand for the keys */
    uint32_t handed;      /* bytes from start handed out at some time: the bump */
    uint32_t size;        /* object size */
    uint32_t used;        /* handed out, less what came back (thread_free not yet) */
    uint16_t k;           /* class */
    uint8_t nwin;         /* windows the page spans */
    /* line 1: slow paths only */
    _Alignas(64) struct spage *next; /* the owner's queue of class k, or an orphan ring; */
    /* NULL while on no ring */
    struct spage *prev;
    uintptr_t tag; /* os_cookie_value ^ address: a sane header */
    char *end;     /* past the last object */
    uint32_t kept; /* an idle orphan: the bytes it counts against its arena's budget */
    uint32_t idle; /* an idle orphan: os_now_ms() when it became idle (low 32 bits) */
    /* line 2: other threads' frees */
    _Alignas(64) struct tblock *thread_free;
};
_Static_assert(sizeof(struct spage) <= PAGE_HDR, "page header larger than PAGE_HDR");

struct tcache {
    struct spage *cur[TC_CLASSES];   /* never NULL: tc_nopage when none */
    struct spage *queue[TC_CLASSES]; /* the other pages of class k: a ring */
    /* calls served by this cache, per class (so one add counts a call and
     * its bytes); read by other threads (statistics), with relaxed atomics */
    uint64_t allocs[TC_CLASSES], frees[TC_CLASSES];
    struct spage *idle_big;     /* a current page of class idle_big_k, */
    unsigned idle_big_k;        /* several windows long, idle when noted */
    struct arena *arena;        /* where pages come from */
    unsigned locks, contended;  /* arena_lock calls on arena, and those that waited */
    struct tcache *next, *prev; /* the registry of live caches */
};

extern __thread struct tcache *tc_current __attribute__((tls_model("initial-exec")));
/* An empty page that no one owns: every fast path declines it. (Not
 * const: in .bss it takes no room in the library's read-only pages.) */
extern struct spage tc_nopage;
extern uint32_t tc_class_size[TC_CLASSES];

/*
 * Class of a request of n <= TC_MAX_REQUEST bytes: the smallest class whose
 * size is >= n. Every multiple of 16 up to 128 is a class (class 0 is 16
 * bytes like class 1), then four per power of two:
 *   class 8 + 4 * (e - 7) + j, 1 <= j <= 4:  size 2^e + j * 2^(e - 2),
 * so a request wastes at most 1/5 of its object above 128 bytes. Fewer
 * classes than a finer scheme: a thread that uses a size class owns at
 * least one page of it, and few objects of many classes cost memory.
 * Up to 1 KiB the class comes from a table (tc_small_class, indexed by
 * n / 16 rounded up), above it from the leading zeros.
 */
extern const uint8_t tc_small_class[65];
static inline unsigned tc_class(size_t n) {
    if (n <= 1024) return tc_small_class[(n + 15) >> 4];
    unsigned e = 63u - (unsigned)__builtin_clzll(n - 1); /* 2^e < n <= 2^(e+1) */
    unsigned j = (unsigned)((n - 1) >> (e - 2)) & 3u;
    return 8u + (e - 7u) * 4u + j + 1u;
}

static inline uintptr_t tc_key(const void *b) {
    return os_cookie_value ^ (uintptr_t)b;
}

/* Relaxed store of a field that only its thread writes but others read. */
#define TC_SET(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)

/* A free object's key was overwritten (the program wrote to freed memory). */
__attribute__((noreturn, cold)) void tc_corrupt(const struct tblock *b);

/* A page's header is not right after its chunk's head but "coloured": at
 * one of PAGE_COLORS cache-line offsets that follow from the page's
 * address, so that the headers of many pages (all 64 KiB apart) do not
 * compete for the same set of the processor's cache. Line 0 of the page
 * is its chunk's head (and the previous chunk's last bytes). */
#define PAGE_COLORS 32
static inline size_t page_color_offset(unsigned color) {
    return 64 + (size_t)color * 64;
}
static inline uintptr_t page_color(uintptr_t base) {
    return page_color_offset((unsigned)(base >> PAGE_SHIFT) & (PAGE_COLORS - 1));
}

/* Where the header of a page whose first window is base goes. */
static inline struct spage *page_header(uintptr_t base) {
    return (struct spage *)(base + page_color(base));
}

/* The first byte of page g: its chunk, on a window boundary. */
static inline char *page_base(const struct spage *g) {
    return (char *)((uintptr_t)g & ~(uintptr_t)(PAGE_WINDOW - 1));
}
static inline struct chunk *page_chunk(const struct spage *g) {
    return (struct chunk *)(void *)page_base(g);
}

/* The window entry of address a in region r: 0 if no page covers a, else
 * the offset of that page's header from r. */
static inline uint32_t page_window(const struct region *r, uintptr_t a) {
    return __atomic_load_n(&r->win[(a >> PAGE_SHIFT) & (REGION_WINDOWS - 1)], __ATOMIC_RELAXED);
}

/* The page whose windows cover p, in region r (p in r), or NULL. */
static inline struct spage *page_of(const struct region *r, const void *p) {
    uint32_t v = page_window(r, (uintptr_t)p);
    return v ? (struct spage *)(void *)((char *)r + v) : NULL;
}

/* The first byte of g never handed out (relaxed: other threads' frees
 * read it while the owner extends the page). */
static inline char *page_bump(const struct spage *g) {
    return g->start + __atomic_load_n(&g->handed, __ATOMIC_RELAXED);
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
static inline int page_holds(const struct spage *g, const void *p) {
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)g->start);
    return off < __atomic_load_n(&g->handed, __ATOMIC_RELAXED) && off * g->grid < g->grid;
}

/* Pop an object of class k, or NULL. Budget: about a dozen instructions. */
static inline void *tc_pop(struct tcache *t, unsigned k) {
    struct spage *g = t->cur[k];
    struct tblock *b = g->free;
    if (__builtin_expect(b == NULL, 0)) return NULL;
    if (__builtin_expect(b->key != (g->cookie ^ (uintptr_t)b), 0)) tc_corrupt(b);
    g->free = b->next;
    g->used++;
    b->key = 0;
    TC_SET(t->allocs[k], t->allocs[k] + 1);
    return b;
}

/* Page g of t has no object in use, and is not its class's current page
 * or spans several windows (tc_push_own): keep it, or give it back. */
void tc_page_idle(struct tcache *t, struct spage *g);

/* Free b, an object in use of page g, owned by another thread (owner):
 * onto g's list of remote frees. 0 if the slow path must do it: g is an
 * orphan (owner NULL), or the calling thread has no cache. */
int tc_push_remote(struct tcache *t, struct tcache *owner, struct spage *g, struct tblock *b);

/*
 * The page of p if p is an object of a page handed out and not free now;
 * else NULL, and the caller's slow path validates p fully (it may be a
 * chunk, a mapping, or not ours). One test rules out both an address of
 * 2^ADDRESS_BITS or more and one outside every region of ours.
 * (A pointer off the 16-byte grid fails page_holds: sizes are multiples
 * of 16.)
 */
static inline struct spage *tc_object_page(const void *p) {
    if (((uintptr_t)p >> REGION_SHIFT) >= REGION_MAP_WORDS * 64) return NULL;
    if (!region_mapped((uintptr_t)p, __ATOMIC_RELAXED)) return NULL;
    struct spage *g = page_of(region_of(p), p);
    if (!g || !page_holds(g, p)) return NULL;
    if (((const struct tblock *)p)->key == (g->cookie ^ (uintptr_t)p))
        return NULL; /* free already */
    return g;
}

/* Free b, an object in use of page g, which t owns: onto g's free list. */
static inline void tc_push_own(struct tcache *t, struct spage *g, struct tblock *b) {
    uintptr_t key = g->cookie ^ (uintptr_t)b; /* before the store to b: it might alias */
    b->next = g->free;
    b->key = key;
    g->free = b;
    unsigned k = g->k;
    TC_SET(t->frees[k], t->frees[k] + 1);
    if (__builtin_expect(--g->used == 0, 0) && (g != t->cur[k] || g->nwin > 1)) tc_page_idle(t, g);
}

/* ---- tcache.c: the slow side ---- */

/* Take an arena's lock; unlock, then unmap the regions that freeing emptied. */
void arena_lock(struct arena *a);
void arena_unlock(struct arena *a);

/* Set up the class table, the registry and the thread-exit hook. */
void tc_init(void);
/* The calling thread's cache, set up on first use; NULL while the thread
 * cannot have one (during its own set-up, or after its exit began, or with
 * MEMALLOC_TCACHE=0). */
struct tcache *tc_get(void);
/* The calling thread's cache if it has one, without setting one up. */
struct tcache *tc_self(void);
/* The arena the calling thread allocates from. */
struct arena *tc_arena(void);
/* An object of class k for t, when the current page's free list is empty;
 * NULL if out of memory. */
void *tc_alloc_slow(struct tcache *t, unsigned k);
/* A class for an aligned request: the smallest class >= n whose objects
 * are aligned to align (<= 4096), or TC_CLASSES if there is none. */
unsigned tc_aligned_class(size_t n, size_t align);
/* Free p, an object of page g (validated), from a thread that does not own
 * g, or from t == NULL (a thread without a cache). */
void tc_free_remote(struct tcache *t, struct spage *g, void *p);
/* Validate p as an object of page g in use; abort, naming who, if not. */
void tc_validate(const struct spage *g, const void *p, const char *who);
/* Give back every page of t: idle ones to the engine, the rest to their
 * arenas as orphans (thread exit, MEMALLOC_TCACHE=0). */
void tc_abandon(struct tcache *t);
/* Trim: t's idle pages (t may be NULL) and every idle orphan go back. */
void tc_trim(struct tcache *t);
/* Give the calling thread's cache back and retire it (MEMALLOC_TCACHE=0). */
void tc_disable_self(void);
/* Statistics: calls served by the caches, bytes of objects in use, and
 * usable bytes of the pages' chunks in all. */
struct tc_sums {
    uint64_t allocs, frees;
    size_t live, pages;
};
void tc_sum(struct tc_sums *s);
/* Bytes of arena a's orphaned pages not in use (lock held). */
size_t tc_orphan_free(const struct arena *a);
/* Idle orphans: an arena keeps the pages of exited threads that have no
 * object in use while the bytes they have touched stay within this budget
 * (arena->orphan_kept, under its lock), for the next threads to adopt;
 * one that is purged meanwhile still counts them. */
#define TC_ORPHAN_KEEP ((size_t)1 << 20)
/* Live caches an arena serves before another is set up (arenas stay at
 * most one per CPU). The caches take an arena's lock only on their slow
 * paths, so threads sharing it seldom wait, and they share its free
 * memory: what one thread's pages give back, another carves its next
 * pages from. With an arena per cache instead, peak RSS was 8-10% higher
 * on larson and 4-5% on prodcons (threads trading blocks, and the main
 * thread), 2-6% lower on threads, for the same times (three sets of 41
 * alternating runs). */
#define ARENA_SHARE 3
/* A thread that found its arena's lock taken in a quarter or more of
 * ARENA_WINDOW calls to take it moves to the arena with the fewest live
 * caches, or to a new one where the CPUs allow: threads that contend do
 * not stay crowded by ARENA_SHARE. */
#define ARENA_WINDOW 64
/* The checker's view of one page: 0 if fine, else a reason. */
const char *tc_check_page(const struct spage *g, unsigned k, const struct tcache *owner);
/* The registry's lock (tc_lock): while it is held no cache comes or goes
 * and no arena is set up. Taken before any arena's lock. */
void tc_registry_lock(void);
void tc_registry_unlock(void);
/* Fork: the registry lock around fork; the child keeps only its thread's
 * cache and orphans the other threads' pages, so no object is lost. */
void tc_fork_prepare(void);
void tc_fork_parent(void);
void tc_fork_child(void);

#endif
