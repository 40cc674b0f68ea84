/*
 * tcache.c: thread caches, the slow side (see tcache.h): the class table,
 * setting a thread's cache up, getting pages from the engine and giving
 * them back, taking in other threads' frees, orphaning pages at thread exit
 * and adopting them, the registry of live caches, and fork. Cache
 * structures come from pages mapped here and are reused, never from the
 * heap itself.
 */
#include "tcache.h"

#include <pthread.h>
#include <string.h>

#include "error.h"
#include "options.h"
#include "stats.h"

enum { TC_NONE, TC_SETUP, TC_LIVE, TC_GONE };

struct spage tc_nopage;
/* The cache of threads that have none (read-only: the fast paths only
 * read it, and decline its pages) */
static const struct tcache tc_empty = {.cur = {[0 ... TC_CLASSES - 1] = &tc_nopage},
                                       .arena = &ma_arenas[0]};
#define TC_EMPTY ((struct tcache *)&tc_empty)
__thread struct tcache *tc_current __attribute__((tls_model("initial-exec"))) = TC_EMPTY;
static __thread unsigned char tc_state __attribute__((tls_model("initial-exec")));

uint32_t tc_class_size[TC_CLASSES];
/* tc_class() of every n <= 1024, by (n + 15) / 16 */
/* clang-format off */
const uint8_t tc_small_class[65] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8,          /* 16-byte steps to 128 */
    [9 ... 10] = 9,   [11 ... 12] = 10, /* 160, 192 */
    [13 ... 14] = 11, [15 ... 16] = 12, /* 224, 256 */
    [17 ... 20] = 13, [21 ... 24] = 14, /* 320, 384 */
    [25 ... 28] = 15, [29 ... 32] = 16, /* 448, 512 */
    [33 ... 40] = 17, [41 ... 48] = 18, /* 640, 768 */
    [49 ... 56] = 19, [57 ... 64] = 20, /* 896, 1024 */
};
/* clang-format on */
static uint32_t page_bytes[TC_CLASSES]; /* whole windows */
static uint32_t page_align[TC_CLASSES]; /* objects are aligned to this (from the base) */
/* aligned_next[j][k]: the first class >= k whose objects are aligned to
 * 2^(j + 5) (32 B to 4 KiB), or TC_CLASSES */
static uint8_t aligned_next[8][TC_CLASSES];

/* Pages of the queue looked at for free objects before a new page is
 * taken: the slow path stays O(1) however many pages a class has. */
#define QUEUE_SCAN 8
/* A page's free list grows, when it runs dry and the page has never-used
 * room, by the objects that start before the next system page boundary
 * (at least one): memory is touched one system page at a time. */

static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER; /* the registry */
static struct tcache *tc_live;                              /* live caches, linked by next/prev */
static struct tcache *tc_spare; /* caches of exited threads, for reuse */
static char *slab_next, *slab_end;
/* The first cache (the main thread's, mostly): on the page of the small
 * globals, which is resident anyway, rather than on a slab page. */
static struct tcache tc_first;
static int tc_first_taken;
static unsigned arena_caches[MAX_ARENAS]; /* live caches per arena (tc_lock) */
static pthread_key_t exit_key;

/* Statistics (relaxed atomics): usable bytes of every page's chunk; the
 * counters of retired caches and of frees by threads without a cache. */
static size_t page_total;
static uint64_t gone_allocs, gone_frees, gone_alloc_bytes, gone_free_bytes;

static void tc_exit(void *arg);

void tc_init(void) {
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        size_t size;
        if (k <= 8) {
            size = k ? (size_t)k * 16 : 16;
        } else {
            unsigned e = 7 + (k - 9) / 4, j = (k - 9) % 4 + 1;
            size = ((size_t)1 << e) + ((size_t)j << (e - 2));
        }
        size_t pf = size & (~size + 1); /* the largest power of two dividing size */
        size_t align = pf < 4096 ? pf : 4096, bytes = PAGE_WINDOW;
        /* object 0 comes after the header at its last colour, at worst */
        size_t first = align_up(page_color_offset(PAGE_COLORS - 1) + PAGE_HDR, align);
        while ((bytes - first) / size < PAGE_MIN_OBJS) bytes += PAGE_WINDOW;
        tc_class_size[k] = (uint32_t)size;
        page_bytes[k] = (uint32_t)bytes;
        page_align[k] = (uint32_t)align;
    }
    for (unsigned j = 0; j < 8; j++) {
        unsigned next = TC_CLASSES;
        for (unsigned k = TC_CLASSES; k-- > 0;) {
            if (tc_class_size[k] % (32u << j) == 0) next = k;
            aligned_next[j][k] = (uint8_t)next;
        }
    }
    pthread_key_create(&exit_key, tc_exit);
}

unsigned tc_aligned_class(size_t n, size_t align) {
    if (n > TC_MAX_REQUEST || align > 4096) return TC_CLASSES;
    if (align <= ALIGNMENT) return tc_class(n);
    unsigned j = (unsigned)__builtin_ctzll(align) - 5;
    return aligned_next[j][tc_class(n)];
}

/* ---- rings: the queues of a cache and the orphan lists ---- */

static void ring_add(struct spage **ring, struct spage *g) {
    struct spage *h = *ring;
    if (!h) {
        g->next = g->prev = g;
        *ring = g;
    } else { /* at the tail */
        g->next = h;
        g->prev = h->prev;
        h->prev->next = g;
        h->prev = g;
    }
}

static void ring_push_head(struct spage **ring, struct spage *g) {
    ring_add(ring, g);
    *ring = g;
}

static void ring_del(struct spage **ring, struct spage *g) {
    if (g->next == g) {
        *ring = NULL;
    } else {
        g->prev->next = g->next;
        g->next->prev = g->prev;
        if (*ring == g) *ring = g->next;
    }
    g->next = g->prev = NULL; /* on no ring */
}

/* ---- pages ---- */

static uint32_t page_offset(const struct region *r, const struct spage *g) {
    return (uint32_t)((const char *)g - (const char *)r);
}

static size_t page_index(const struct spage *g) {
    return ((uintptr_t)g >> PAGE_SHIFT) & (REGION_WINDOWS - 1);
}

/* Take in the objects other threads freed into g (by its owner, or under
 * its arena's lock for an orphan). 1 if there were any. */
static int page_collect(struct spage *g) {
    if (!__atomic_load_n(&g->thread_free, __ATOMIC_RELAXED)) return 0;
    struct tblock *b = __atomic_exchange_n(&g->thread_free, NULL, __ATOMIC_ACQUIRE);
    struct tblock *last = b;
    uint32_t n = 1;
    while (last->next && n <= g->used) {
        last = last->next;
        n++;
    }
    if (n > g->used)
        ma_fatal("malloc", "heap corruption (a freed block was written to) near", last);
    last->next = g->free;
    g->free = b;
    g->used -= n;
    return 1;
}

/* Grow g's free list from its never-used room; 0 if it has none. */
static int page_extend(struct spage *g) {
    char *bump = page_bump(g);
    if (bump >= g->end) return 0;
    size_t size = g->size, left = (size_t)(g->end - bump) / size;
    char *edge = (char *)align_up((uintptr_t)bump + 1, os_page_size());
    size_t n = (size_t)(edge - bump + size - 1) / size;
    if (n > left) n = left;
    struct tblock *head = g->free;
    for (size_t i = n; i-- > 0;) { /* handed out in address order */
        struct tblock *b = (struct tblock *)(void *)(bump + i * size);
        b->next = head;
        b->key = tc_key(b);
        head = b;
    }
    /* bump first: a fork that catches us between the two stores leaves
     * objects that look handed out (tc_fork_child recounts), never free
     * objects above bump */
    __atomic_store_n(&g->handed, (uint32_t)(bump + n * size - g->start), __ATOMIC_RELAXED);
    g->free = head;
    return 1;
}

/* The object grid of a page of class k whose header is g: from the first
 * aligned offset past the header to the last whole object. */
static char *grid_start(const struct spage *g, unsigned k) {
    char *base = page_base(g);
    return base + align_up((uintptr_t)((const char *)g - base) + PAGE_HDR, page_align[k]);
}
static char *grid_end(const struct spage *g, unsigned k, const char *start) {
    const char *limit = page_base(g) + page_bytes[k];
    return (char *)start + (size_t)(limit - start) / tc_class_size[k] * tc_class_size[k];
}

/* page_holds' grid factor for objects of size bytes. Its test is exact
 * for offsets off with (off + size) * size < 2^40; a page of a class spans
 * at most (PAGE_MIN_OBJS + 1) objects and a window. */
_Static_assert(((uint64_t)(PAGE_MIN_OBJS + 2) * TC_MAX_REQUEST + PAGE_WINDOW) * TC_MAX_REQUEST <
                   ((uint64_t)1 << 40),
               "page_holds' grid test needs smaller pages");
static uint64_t grid_factor(uint32_t size) {
    return ((((uint64_t)1 << 40) + size - 1) / size) << 24;
}

/* A new page of class k for t, carved from arena a (lock held). */
static struct spage *page_carve(struct arena *a, struct tcache *t, unsigned k) {
    char *p = heap_alloc_aligned(a, page_bytes[k], PAGE_WINDOW, 0);
    if (!p) return NULL;
    char *base = (char *)payload_chunk(p);
    struct spage *g = page_header((uintptr_t)base);
    memset(g, 0, sizeof *g);
    g->start = grid_start(g, k);
    g->size = tc_class_size[k];
    g->end = grid_end(g, k, g->start);
    g->grid = grid_factor(g->size);
    g->cookie = os_cookie_value;
    g->k = (uint16_t)k;
    g->nwin = (uint8_t)(page_bytes[k] >> PAGE_SHIFT);
    g->tag = tc_key(g);
    __atomic_store_n(&g->owner, t, __ATOMIC_RELAXED);
    struct region *r = region_of(p);
    for (size_t i = 0; i < g->nwin; i++)
        __atomic_store_n(&r->win[page_index(g) + i], page_offset(r, g), __ATOMIC_RELAXED);
    size_t usable = usable_size(payload_chunk(p));
    stats_move_out(usable);
    __atomic_add_fetch(&page_total, usable, __ATOMIC_RELAXED);
    return g;
}

/* Give idle page g (no object in use, on no ring) back to its arena (lock held). */
static void page_release_locked(struct arena *a, struct spage *g) {
    struct chunk *c = page_chunk(g);
    if (g->tag != tc_key(g) || !tag_ok(c) || !cinuse(c) || !pinuse(chunk_next(c))) {
        pthread_mutex_unlock(&a->lock);
        ma_fatal("free", "heap corruption near", g);
    }
    struct region *r = region_of(g);
    for (size_t i = 0; i < g->nwin; i++)
        __atomic_store_n(&r->win[page_index(g) + i], 0, __ATOMIC_RELAXED);
    g->tag = 0;
    size_t usable = usable_size(c);
    stats_move_in(usable);
    __atomic_sub_fetch(&page_total, usable, __ATOMIC_RELAXED);
    struct region *gone = heap_free(a, c);
    if (gone) {
        gone->next = a->gone;
        a->gone = gone;
    }
}

static void page_release(struct spage *g) {
    struct arena *a = region_of(g)->arena;
    arena_lock(a);
    page_release_locked(a, g);
    arena_unlock(a);
}

static void tc_window(struct tcache *t);

/* A page of class k with a free object for t: an orphan of t's arena
 * (adopted), else a new one. NULL if out of memory. */
static struct spage *page_new(struct tcache *t, unsigned k) {
    if (t->locks >= ARENA_WINDOW) tc_window(t);
    struct arena *a = t->arena;
    struct spage **ring = &a->orphans[k];
    arena_lock(a);
    struct spage *g;
    while ((g = *ring) != NULL) {
        ring_del(ring, g);
        a->orphan_kept -= g->kept;
        g->kept = 0;
        __atomic_store_n(&g->owner, t, __ATOMIC_RELAXED);
        page_collect(g);
        if (g->free || page_bump(g) < g->end) break; /* extended after the unlock */
        ring_add(&t->queue[k], g);                   /* full: ours now, for later */
    }
    if (!g) g = page_carve(a, t, k);
    arena_unlock(a);
    return g;
}

/*
 * The current page of class k has no free object left:
 *  1. take its remote frees;
 *  2. else the queue, oldest page first (up to QUEUE_SCAN pages): a page
 *     with freed objects becomes current (they are resident already);
 *  3. else the never-used room of the current page, or of a queued page;
 *  4. else a new page (an orphan, or carved).
 * The old current page joins the queue's tail.
 */
void *tc_alloc_slow(struct tcache *t, unsigned k) {
    struct spage *old = t->cur[k], *g, *roomy = NULL;
    if (old != &tc_nopage && page_collect(old)) return tc_pop(t, k);
    struct spage *first = t->queue[k];
    for (unsigned i = 0; i < QUEUE_SCAN && (g = t->queue[k]) != NULL; i++) {
        if (i && g == first) break; /* round the whole ring */
        page_collect(g);
        if (g->free) {
            ring_del(&t->queue[k], g);
            goto found;
        }
        if (!roomy && page_bump(g) < g->end) roomy = g;
        t->queue[k] = g->next; /* g becomes the tail: nothing is relinked */
    }
    if (old != &tc_nopage && page_extend(old)) return tc_pop(t, k);
    if (roomy) {
        g = roomy;
        ring_del(&t->queue[k], g);
        page_extend(g);
        goto found;
    }
    g = page_new(t, k);
    if (!g) return NULL;
    if (!g->free) page_extend(g); /* touched out of the lock */
found:
    if (old != &tc_nopage) ring_add(&t->queue[k], old);
    t->cur[k] = g;
    return tc_pop(t, k);
}

/* Page g of t, not its class's current page, has no object in use: it
 * goes to the head of the queue, to be used next, unless an idle page is
 * there already, or g spans several windows (its objects are large: what
 * they touched is worth more than a page's set-up); then it goes back to
 * the engine. */
void tc_page_idle(struct tcache *t, struct spage *g) {
    unsigned k = g->k;
    if (g == t->cur[k]) {
        /* a current page of large objects: a thread keeps one such page
         * idle; the one it kept before goes back if still idle */
        if (g->nwin == 1) return;
        struct spage *before = t->idle_big;
        unsigned bk = t->idle_big_k;
        t->idle_big = g;
        t->idle_big_k = k;
        if (before && before != g && t->cur[bk] == before && before->used == 0) {
            t->cur[bk] = &tc_nopage;
            page_release(before);
        }
        return;
    }
    ring_del(&t->queue[k], g);
    struct spage *h = t->queue[k];
    if ((h && h->used == 0) || g->nwin > 1) {
        page_release(g);
        return;
    }
    ring_push_head(&t->queue[k], g);
}

void tc_validate(const struct spage *g, const void *p, const char *who) {
    const struct tblock *b = p;
    if (g->tag != tc_key(g)) ma_fatal(who, "heap corruption near", p);
    if (!page_holds(g, p)) ma_fatal(who, "invalid pointer", p);
    if (b->key == tc_key(b)) ma_fatal(who, freed_twice_what(who), p);
}

/* Count a free of an object of class k by t (NULL: a thread without a cache). */
static void count_free(struct tcache *t, unsigned k) {
    if (t) {
        TC_SET(t->frees[k], t->frees[k] + 1);
    } else {
        __atomic_add_fetch(&gone_frees, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&gone_free_bytes, tc_class_size[k], __ATOMIC_RELAXED);
    }
}

/* An orphan g with no object in use (lock held): kept within the arena's
 * budget for idle orphans, at the head of its ring (the next thread to
 * need a page of its class adopts the most recently idle first, so the
 * ones no thread needs sink to the tail and age there), else given back.
 * A purge pass of the arena is due: the idle orphans it finds older than
 * the purge delay give their memory back (tc_orphans_purge). */
static void orphan_idle(struct arena *a, struct spage *g) {
    size_t touched = (size_t)(page_bump(g) - page_base(g));
    struct spage **ring = &a->orphans[g->k];
    ring_del(ring, g);
    if (a->orphan_kept + touched > TC_ORPHAN_KEEP) {
        page_release_locked(a, g);
        return;
    }
    ring_push_head(ring, g);
    g->kept = (uint32_t)touched;
    g->idle = (uint32_t)os_now_ms();
    a->orphan_kept += touched;
    if (page_bump(g) > g->start) heap_purge_soon(a);
}

int tc_orphans_purge(struct arena *a, uint64_t now, uint64_t delay) {
    int left = 0;
    size_t pg = os_page_size();
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        struct spage *ring = a->orphans[k], *g = ring;
        if (!g) continue;
        do {
            /* idle, with objects beyond its header's OS page handed out */
            char *from = (char *)align_up((uintptr_t)g + PAGE_HDR, pg);
            char *to = (char *)align_up((uintptr_t)page_bump(g), pg);
            if (g->kept && page_bump(g) > g->start && to > from) {
                if ((uint32_t)now - g->idle < delay) {
                    left = 1;
                } else if (os_purge(from, (size_t)(to - from)) == 0) {
                    /* every object is free: the page starts afresh (it
                     * still counts what it touched against the budget,
                     * which so bounds the idle orphans' address space) */
                    g->free = NULL;
                    __atomic_store_n(&g->handed, 0, __ATOMIC_RELAXED);
                }
            }
            g = g->next;
        } while (g != ring);
    }
    return left;
}

/* Free p into orphan g, under its arena's lock, so that a page whose
 * objects all come back goes back too. 0 if g was adopted meanwhile. */
static int free_to_orphan(struct tcache *t, struct spage *g, struct tblock *b) {
    struct arena *a = region_of(g)->arena;
    arena_lock(a);
    if (__atomic_load_n(&g->owner, __ATOMIC_RELAXED)) {
        arena_unlock(a);
        return 0;
    }
    unsigned k = g->k;
    page_collect(g);
    b->next = g->free;
    b->key = tc_key(b);
    g->free = b;
    if (--g->used == 0) orphan_idle(a, g);
    arena_unlock(a);
    count_free(t, k);
    return 1;
}

/* Push b onto g's list of remote frees (g has an owner, not t). */
static void push_remote(struct tcache *t, struct spage *g, struct tblock *b) {
    unsigned k = g->k; /* g may be gone once b is pushed */
    b->key = tc_key(b);
    struct tblock *top = __atomic_load_n(&g->thread_free, __ATOMIC_RELAXED);
    do {
        b->next = top;
    } while (!__atomic_compare_exchange_n(&g->thread_free, &top, b, 1, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
    count_free(t, k);
}

int tc_push_remote(struct tcache *t, struct tcache *owner, struct spage *g, struct tblock *b) {
    if (!owner || t == &tc_empty) return 0;
    push_remote(t, g, b);
    return 1;
}

void tc_free_remote(struct tcache *t, struct spage *g, void *p) {
    struct tblock *b = p;
    if (!__atomic_load_n(&g->owner, __ATOMIC_RELAXED) && free_to_orphan(t, g, b)) return;
    push_remote(t, g, b);
}

/* Page g leaves t (exit, fork, MEMALLOC_TCACHE=0): onto its arena's
 * orphan ring of its class if it has objects in use, or if it is idle and
 * the arena's budget for idle orphans has room for what it touched; else
 * back to the engine. From now on, frees into it take the arena's lock
 * (free_to_orphan), so it goes back once its last object does. */
static void page_abandon(struct spage *g) {
    struct arena *a = region_of(g)->arena;
    arena_lock(a);
    __atomic_store_n(&g->owner, NULL, __ATOMIC_RELAXED);
    page_collect(g); /* after the owner is gone: later remote frees lock */
    ring_add(&a->orphans[g->k], g);
    if (g->used == 0) orphan_idle(a, g);
    arena_unlock(a);
}

void tc_abandon(struct tcache *t) {
    t->idle_big = NULL;
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        struct spage *g = t->cur[k];
        t->cur[k] = &tc_nopage;
        if (g != &tc_nopage) page_abandon(g);
        while ((g = t->queue[k]) != NULL) {
            ring_del(&t->queue[k], g);
            page_abandon(g);
        }
    }
}

void tc_trim(struct tcache *t) {
    if (t) {
        t->idle_big = NULL;
        for (unsigned k = 0; k < TC_CLASSES; k++) {
            struct spage *g = t->cur[k];
            if (g != &tc_nopage) {
                page_collect(g);
                if (g->used == 0) {
                    t->cur[k] = &tc_nopage;
                    page_release(g);
                }
            }
            /* once round the queue: idle pages go, the head moves past the rest */
            size_t n = 0;
            for (g = t->queue[k]; g && (n == 0 || g != t->queue[k]); n++) g = g->next;
            for (; n > 0; n--) {
                g = t->queue[k];
                page_collect(g);
                if (g->used == 0) {
                    ring_del(&t->queue[k], g);
                    page_release(g);
                } else {
                    t->queue[k] = g->next;
                }
            }
        }
    }
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        arena_lock(a);
        for (unsigned k = 0; k < TC_CLASSES; k++) {
            struct spage **ring = &a->orphans[k], *keep = NULL, *g;
            while ((g = *ring) != NULL) {
                ring_del(ring, g);
                a->orphan_kept -= g->kept;
                g->kept = 0;
                page_collect(g);
                if (g->used == 0)
                    page_release_locked(a, g);
                else
                    ring_add(&keep, g);
            }
            *ring = keep;
        }
        arena_unlock(a);
    }
}

/* ---- checker ---- */

const char *tc_check_page(const struct spage *g, unsigned k, const struct tcache *owner) {
    if (g->tag != tc_key(g)) return "page header overwritten";
    if (g != page_header((uintptr_t)page_base(g))) return "page header off its colour";
    const struct chunk *c = page_chunk(g);
    if (!tag_ok(c) || !cinuse(c) || chunk_size(c) < page_bytes[k])
        return "page is not an in-use chunk of its size";
    if (g->k != k || g->size != tc_class_size[k]) return "page of the wrong class";
    if (g->start != grid_start(g, k) || g->end != grid_end(g, k, g->start) ||
        g->grid != grid_factor(g->size))
        return "page grid broken";
    if (g->cookie != os_cookie_value) return "page cookie overwritten";
    const char *bump = page_bump(g);
    if (bump < g->start || bump > g->end || (size_t)(bump - g->start) % g->size)
        return "page bump out of the grid";
    if (g->nwin != page_bytes[k] >> PAGE_SHIFT) return "page window count wrong";
    const struct region *r = region_of(g);
    for (size_t i = 0; i < g->nwin; i++)
        if (r->win[page_index(g) + i] != page_offset(r, g)) return "page windows not marked";
    if (__atomic_load_n(&g->owner, __ATOMIC_RELAXED) != owner) return "page of another owner";
    if (owner && owner != tc_self()) return NULL; /* its lists are another thread's */
    size_t handed = (size_t)(bump - g->start) / g->size, nf = 0, nt = 0;
    for (const struct tblock *b = g->free; b; b = b->next) {
        if (!page_holds(g, b)) return "free object off the page's grid";
        if (b->key != tc_key(b)) return "free object without its key";
        if (++nf > handed) return "free list longer than the page: a cycle?";
    }
    for (const struct tblock *b = __atomic_load_n(&g->thread_free, __ATOMIC_ACQUIRE); b;
         b = b->next) {
        if (!page_holds(g, b)) return "remote-freed object off the page's grid";
        if (b->key != tc_key(b)) return "remote-freed object without its key";
        if (++nt > handed) return "remote-free list longer than the page: a cycle?";
    }
    if (g->used + nf != handed) return "page used count disagrees with its free list";
    if (nt > g->used) return "more remote frees than objects in use";
    return NULL;
}

/* ---- caches: set-up, registry, exit ---- */

/* A cache structure: a spare one, tc_first, or carved from a mapped slab
 * (tc_lock held). The slab is mapped under the lock: once per dozen or so
 * caches, and only threads setting up or retiring a cache wait for it. */
static struct tcache *tc_new(void) {
    struct tcache *t = tc_spare;
    if (t) {
        tc_spare = t->next;
    } else if (!tc_first_taken) {
        tc_first_taken = 1;
        t = &tc_first;
    } else {
        size_t sz = align_up(sizeof *t, 64);
        if (slab_end - slab_next < (ptrdiff_t)sz) {
            size_t len = (size_t)64 << 10;
            char *s = os_map(len);
            if (!s) return NULL;
            slab_next = s;
            slab_end = s + len;
        }
        t = (struct tcache *)(void *)slab_next;
        slab_next += sz;
    }
    memset(t, 0, sizeof *t);
    for (unsigned k = 0; k < TC_CLASSES; k++) t->cur[k] = &tc_nopage;
    return t;
}

/* The arena with the fewest live caches, the first of those; or, if that
 * one has share or more, the next one, set up now where the CPUs allow
 * (tc_lock held). A new cache takes least_used(ARENA_SHARE). Not a turn:
 * threads that come and go one after another then use the same arena,
 * and adopt the pages their predecessors left there. */
static struct arena *least_used(unsigned share) {
    unsigned best = 0;
    for (unsigned i = 1; i < ma_narenas; i++)
        if (arena_caches[i] < arena_caches[best]) best = i;
    struct arena *a = arena_caches[best] >= share ? arena_setup_next() : NULL;
    return a ? a : &ma_arenas[best];
}

struct tcache *tc_get(void) {
    if (tc_state == TC_LIVE) return tc_current;
    if (tc_state != TC_NONE || !opt_get(OPT_TCACHE)) return NULL;
    tc_state = TC_SETUP; /* calls made from here on go around the cache */
    pthread_mutex_lock(&tc_lock);
    struct tcache *t = tc_new();
    if (t) {
        t->arena = least_used(ARENA_SHARE);
        arena_caches[t->arena - ma_arenas]++;
        t->next = tc_live;
        if (tc_live) tc_live->prev = t;
        tc_live = t;
    }
    pthread_mutex_unlock(&tc_lock);
    if (!t) {
        tc_state = TC_NONE; /* try again later */
        return NULL;
    }
    /* pthread_setspecific may allocate (calloc): TC_SETUP sends that
     * allocation to the engine directly */
    pthread_setspecific(exit_key, t);
    tc_current = t;
    tc_state = TC_LIVE;
    return t;
}

struct tcache *tc_self(void) {
    return tc_state == TC_LIVE ? tc_current : NULL;
}

/* t took its arena's lock ARENA_WINDOW times: if it waited for it a
 * quarter of them or more, it moves to the arena with the fewest live
 * caches, or to a new one if every arena has some (no lock held). Its
 * pages stay: a page goes back to the arena of its region. */
static void tc_window(struct tcache *t) {
    if (t->contended * 4 >= t->locks) {
        pthread_mutex_lock(&tc_lock);
        arena_caches[t->arena - ma_arenas]--;
        t->arena = least_used(1);
        arena_caches[t->arena - ma_arenas]++;
        pthread_mutex_unlock(&tc_lock);
    }
    t->locks = t->contended = 0;
}

struct arena *tc_arena(void) {
    struct tcache *t = tc_current;
    if (__builtin_expect(t->locks >= ARENA_WINDOW, 0)) tc_window(t);
    return t->arena;
}

void arena_lock(struct arena *a) {
    int waited = pthread_mutex_trylock(&a->lock) != 0;
    if (waited) pthread_mutex_lock(&a->lock);
    struct tcache *t = tc_current;
    if (tc_state == TC_LIVE && t->arena == a) { /* (else t may be the const tc_empty) */
        t->locks++;
        t->contended += (unsigned)waited;
    }
}

void arena_unlock(struct arena *a) {
    struct region *gone = a->gone;
    a->gone = NULL;
    pthread_mutex_unlock(&a->lock);
    while (gone) {
        struct region *next = gone->next;
        region_unmap(gone);
        gone = next;
    }
}

void tc_corrupt(const struct tblock *b) {
    ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
}

/* The counters of cache t, summed over its classes. */
struct tc_count {
    uint64_t allocs, frees, alloc_bytes, free_bytes;
};
static struct tc_count count_cache(const struct tcache *t) {
    struct tc_count c = {0, 0, 0, 0};
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        uint64_t a = __atomic_load_n(&t->allocs[k], __ATOMIC_RELAXED);
        uint64_t f = __atomic_load_n(&t->frees[k], __ATOMIC_RELAXED);
        c.allocs += a;
        c.frees += f;
        c.alloc_bytes += a * tc_class_size[k];
        c.free_bytes += f * tc_class_size[k];
    }
    return c;
}

/* Fold t's counters into the retired ones and retire it (tc_lock held). */
static void retire(struct tcache *t) {
    arena_caches[t->arena - ma_arenas]--;
    struct tc_count c = count_cache(t);
    __atomic_add_fetch(&gone_allocs, c.allocs, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gone_frees, c.frees, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gone_alloc_bytes, c.alloc_bytes, __ATOMIC_RELAXED);
    __atomic_add_fetch(&gone_free_bytes, c.free_bytes, __ATOMIC_RELAXED);
    if (t->prev)
        t->prev->next = t->next;
    else
        tc_live = t->next;
    if (t->next) t->next->prev = t->prev;
    t->next = tc_spare;
    tc_spare = t;
}

/* Thread exit (a pthread key destructor): give the pages up, then retire
 * the cache. Allocations the thread makes afterwards (later destructors)
 * go to the engine directly. */
static void tc_exit(void *arg) {
    struct tcache *t = arg;
    tc_current = TC_EMPTY;
    tc_state = TC_GONE;
    tc_abandon(t);
    pthread_mutex_lock(&tc_lock);
    retire(t);
    pthread_mutex_unlock(&tc_lock);
}

void tc_disable_self(void) {
    if (tc_state != TC_LIVE) return;
    struct tcache *t = tc_current;
    tc_current = TC_EMPTY;
    tc_state = TC_NONE;
    pthread_setspecific(exit_key, NULL);
    tc_abandon(t);
    pthread_mutex_lock(&tc_lock);
    retire(t);
    pthread_mutex_unlock(&tc_lock);
}

void tc_sum(struct tc_sums *s) {
    uint64_t al = __atomic_load_n(&gone_allocs, __ATOMIC_RELAXED);
    uint64_t fr = __atomic_load_n(&gone_frees, __ATOMIC_RELAXED);
    uint64_t ab = __atomic_load_n(&gone_alloc_bytes, __ATOMIC_RELAXED);
    uint64_t fb = __atomic_load_n(&gone_free_bytes, __ATOMIC_RELAXED);
    pthread_mutex_lock(&tc_lock);
    for (struct tcache *t = tc_live; t; t = t->next) {
        struct tc_count c = count_cache(t);
        al += c.allocs;
        fr += c.frees;
        ab += c.alloc_bytes;
        fb += c.free_bytes;
    }
    pthread_mutex_unlock(&tc_lock);
    s->allocs = al;
    s->frees = fr;
    s->live = ab > fb ? (size_t)(ab - fb) : 0; /* read while others run: may lag */
    s->pages = __atomic_load_n(&page_total, __ATOMIC_RELAXED);
}

size_t tc_orphan_free(const struct arena *a) {
    size_t bytes = 0;
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        const struct spage *ring = a->orphans[k], *g = ring;
        if (!g) continue;
        do {
            size_t in_use = g->used; /* less what other threads freed since */
            for (const struct tblock *b = __atomic_load_n(&g->thread_free, __ATOMIC_ACQUIRE);
                 b && in_use; b = b->next)
                in_use--;
            bytes += usable_size(page_chunk(g)) - in_use * g->size;
            g = g->next;
        } while (g != ring);
    }
    return bytes;
}

void tc_registry_lock(void) {
    pthread_mutex_lock(&tc_lock);
}
void tc_registry_unlock(void) {
    pthread_mutex_unlock(&tc_lock);
}
void tc_fork_prepare(void) {
    tc_registry_lock();
}
void tc_fork_parent(void) {
    tc_registry_unlock();
}

/* A page of a thread that fork did not copy: that thread may have been
 * between two stores of a push or a pop. Its free list is whole (the head
 * is one store), but used may be off by one: count it again. */
static void page_recount(struct spage *g) {
    size_t handed = (size_t)(page_bump(g) - g->start) / g->size, nf = 0;
    for (const struct tblock *b = g->free; b && nf < handed; b = b->next) nf++;
    g->used = (uint32_t)(handed - nf);
}

/* In the child only this thread exists: the other threads' pages become
 * orphans (recounted first) and their caches are retired, so no object is
 * lost. */
void tc_fork_child(void) {
    pthread_mutex_init(&tc_lock, NULL);
    struct tcache *self = tc_state == TC_LIVE ? tc_current : NULL;
    for (struct tcache *t = tc_live, *next; t; t = next) {
        next = t->next;
        if (t == self) continue;
        for (unsigned k = 0; k < TC_CLASSES; k++) {
            struct spage *g = t->cur[k];
            if (g != &tc_nopage) page_recount(g);
            for (g = t->queue[k]; g; g = g->next == t->queue[k] ? NULL : g->next) page_recount(g);
        }
        tc_abandon(t);
        retire(t);
    }
}
