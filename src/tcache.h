/*
 * tcache.h: thread caches. A thread owns pages of the size classes it
 * uses (page.h) and allocates from them and frees into them without a
 * lock; this file owns the caches: the fast paths (inline here), getting
 * pages from its arena and giving them back, frees by other threads,
 * thread exit (its pages become orphans of their arenas), the registry of
 * live caches, and what fork leaves of them in the child.
 *
 *  - malloc pops the free list of the thread's current page of the class;
 *  - free by the owner pushes onto the page's free list; free by any other
 *    thread keeps the object for that thread's next allocations of the
 *    class (tc_push_remote), or sends it home in a batch onto the page's
 *    thread_free, which the owner takes whole when its free list runs dry;
 *  - a page none of whose objects is in use goes back to the heap unless
 *    it is its class's current page, or one of the IDLE_PAGES idle pages
 *    a thread keeps (of current pages several windows long, one idle);
 *  - a thread that exits gives its pages to their arenas as orphans
 *    (orphan.h), where the next thread needing a page of that class
 *    adopts them.
 *
 * A thread starts on tc_empty, whose current pages are all tc_nopage (an
 * empty page that no one owns), so the fast paths need no "is this thread
 * set up?" test: they fail over to the slow paths, which set it up.
 */
#ifndef MEMALLOC_TCACHE_H
#define MEMALLOC_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "page.h"
#include "sizeclass.h"

struct tcache {
    /* per class: pops left before the slow path's turn (tc_rearm: the
     * sampling of MEMALLOC_SAMPLE), pops armed in all (calls served:
     * armed - left, so that one count serves both), and frees served; read
     * by other threads (statistics), with relaxed atomics. (left first:
     * malloc's fast path reads and writes it at t + 8k, with no address to
     * compute.) */
    uint64_t left[NCLASSES];
    struct page *cur[NCLASSES];   /* never NULL: tc_nopage when none */
    struct page *queue[NCLASSES]; /* the other pages of class k: a ring */
    uint64_t armed[NCLASSES], frees[NCLASSES];
    /* per class: objects of other threads' pages this thread freed, kept
     * for its own next allocations (tc_push_remote), and how many */
    struct tblock *foreign[NCLASSES];
    unsigned nforeign[NCLASSES];
    uint64_t rng;               /* the sampling intervals' random state */
    struct page *idle_big;      /* a current page of class idle_big_k, */
    unsigned idle_big_k;        /* several windows long, idle when noted */
    unsigned idle_kept;         /* idle single-window pages on the queues (IDLE_PAGES) */
    struct arena *arena;        /* where pages and chunks come from */
    unsigned locks, contended;  /* takes of arena's lock, and those that waited */
    struct tcache *next, *prev; /* the registry of live caches */
};

extern __thread struct tcache *tc_current __attribute__((tls_model("initial-exec")));
/* The cache of a thread that has none: its tc_current until tc_get sets
 * one up (so a tc_current other than it is a live cache, and the library
 * is initialised), and again once the thread's exit began. */
extern MA_HIDDEN const struct tcache tc_empty;
/* An empty page that no one owns: every fast path declines it. (Not
 * const: in .bss it takes no room in the library's read-only pages.) */
extern MA_HIDDEN struct page tc_nopage;

/* A thread that found its arena's lock taken in a quarter or more of
 * ARENA_WINDOW takes of it moves (arena_move): threads that contend do
 * not stay crowded by ARENA_SHARE. */
#define ARENA_WINDOW 64

/* Requests below tc_limit are served by the thread caches: all those of
 * a size class, or, below an mmap threshold set lower than the largest
 * class, those below it (requests at or over the threshold get a mapping
 * of their own). In a check mode it is 0: every malloc takes the slow path,
 * where the check layer is. tc_limit_update sets it again after the
 * threshold or the check mode was set. */
extern MA_HIDDEN size_t tc_limit;
void tc_limit_update(void);

/* Count one more in a counter that only its thread writes but others
 * read (relaxed loads). On x86-64 one instruction that adds in memory:
 * others see its one aligned store whole, and the fast path saves the
 * address, load and store the compiler makes of a relaxed store. */
#if defined(__x86_64__)
#define TC_COUNT(field) __asm__("incq %0" : "+m"(field))
#else
#define TC_COUNT(field) store_relaxed(&(field), (field) + 1)
#endif

/* The first object of g's free list, taken off it, or NULL. */
static inline struct tblock *free_list_pop(struct page *g) {
    struct tblock *b = g->free;
    if (unlikely(b == NULL)) return NULL;
    if (unlikely(b->key != (g->cookie ^ (uintptr_t)b))) page_freed_written(b);
    g->free = b->next;
    g->used++;
    b->key = 0;
    return b;
}

/* The first of t's foreign objects of class k (tc_push_remote), taken
 * off its list, or NULL. */
static inline struct tblock *foreign_take(struct tcache *t, size_t k) {
    struct tblock *b = t->foreign[k];
    if (b == NULL) return NULL;
    if (unlikely(b->key != obj_key(b))) page_freed_written(b);
    t->foreign[k] = b->next;
    t->nforeign[k]--;
    b->key = 0;
    return b;
}

/* Pop an object of class k, or NULL: the current page has none, or the
 * class's countdown ran out (the slow path's turn: tc_rearm). Budget:
 * about a dozen instructions. */
static inline void *tc_pop(struct tcache *t, size_t k) {
    uint64_t left = t->left[k] - 1; /* a new cache's are 1 (tc_new) */
    if (unlikely(left == 0)) return NULL;
    struct tblock *b = free_list_pop(t->cur[k]);
    if (likely(b != NULL)) store_relaxed(&t->left[k], left);
    return b;
}

/* The foreign objects t keeps of class k at most (tc_push_remote), and
 * what sends them all home past it. */
extern MA_HIDDEN uint8_t foreign_max[NCLASSES];
void foreign_flush(struct tcache *t, unsigned k);

/* tc_pop's second chance, when malloc's missed (entry_malloc_miss): one of t's
 * foreign objects of class k, counted as the pop it stands for, or NULL
 * (none, or the countdown ran out). A thread that frees other threads'
 * objects, as a server's do, allocates them again here, at a tenth of the
 * rest of the slow path's cost, while the pop keeps its dozen
 * instructions. */
static inline void *tc_pop_foreign(struct tcache *t, size_t k) {
    uint64_t left = t->left[k] - 1;
    if (unlikely(left == 0)) return NULL;
    struct tblock *b = foreign_take(t, k);
    if (b != NULL) store_relaxed(&t->left[k], left);
    return b;
}

/* Arm class k's countdown of t again once it ran out (left <= 1): about
 * MEMALLOC_SAMPLE pops to the next turn, at random, or 65,536 pops with no
 * sampling, so that a sampling set later starts within that. 1 if this
 * allocation is the one sampled (with MEMALLOC_SAMPLE=1, every one). */
int tc_rearm(struct tcache *t, unsigned k);

/* tc_pop for the slow paths, whatever the countdown says: a countdown
 * that ran out is armed again (tc_rearm), and a pop it still refuses
 * (MEMALLOC_SAMPLE=1) counts in armed instead (calls served stay
 * armed - left). */
static inline void *tc_pop_any(struct tcache *t, unsigned k) {
    if (unlikely(t->left[k] <= 1)) tc_rearm(t, k);
    if (likely(t->left[k] > 1)) return tc_pop(t, k);
    struct tblock *b = free_list_pop(t->cur[k]);
    if (b) store_relaxed(&t->armed[k], t->armed[k] + 1);
    return b;
}

/* The calling thread's countdowns run out now (MEMALLOC_SAMPLE was set). */
void tc_rearm_all(void);

/* The idle single-window pages a thread keeps on its queues, whatever
 * their classes: a program that allocates and frees batches of a class
 * (a parser's nodes, a batch of 4 KiB buffers) finds its pages again
 * instead of giving them back to the heap and carving them anew on every
 * batch; at most 1 MiB per thread. */
#define IDLE_PAGES 16

/* Page g of t has no object in use, and is not its class's current page
 * or spans several windows (tc_push_own): keep it at the head of its
 * class's queue (up to IDLE_PAGES), or give it back. */
void tc_page_idle(struct tcache *t, struct page *g);

/* Free b, an object in use of page g, which t owns: onto g's free list. */
static inline void tc_push_own(struct tcache *t, struct page *g, struct tblock *b) {
    uintptr_t key = g->cookie ^ (uintptr_t)b; /* before the store to b: it might alias */
    b->next = g->free;
    b->key = key;
    g->free = b;
    size_t k = g->k;
    TC_COUNT(t->frees[k]);
    if (unlikely(--g->used == 0) && (g != t->cur[k] || g->nwin > 1)) tc_page_idle(t, g);
}

/* Free b, an object in use of page g owned by another thread (owner),
 * from t (the caller's tc_current): onto t's foreign objects of g's class,
 * which t's next allocations of the class take before its pages' (a
 * server's threads free each other's blocks: no atomic operation on the
 * owner's page, whose header line would bounce between the threads);
 * past FOREIGN_BYTES of them (4 to 64), all go back to their pages, a
 * compare-and-swap per run of one page's objects. 0 if the slow path
 * must do it: g is an orphan (owner NULL), or the calling thread has no
 * cache. */
static inline int tc_push_remote(struct tcache *t, struct tcache *owner, struct page *g,
                                 struct tblock *b) {
    if (!owner || t == &tc_empty) return 0;
    unsigned k = g->k;
    b->key = obj_key(b);
    b->next = t->foreign[k];
    t->foreign[k] = b;
    TC_COUNT(t->frees[k]);
    if (unlikely(++t->nforeign[k] > foreign_max[k])) foreign_flush(t, k);
    return 1;
}

/* ---- tcache.c: the slow side ---- */

/* Set up the registry and the thread-exit hook. */
void tc_init(void);
/* The calling thread's cache, set up on first use; NULL while the thread
 * cannot have one (during its own set-up, or after its exit began, or with
 * MEMALLOC_TCACHE=0). */
struct tcache *tc_get(void);
/* The calling thread's cache if it has one, without setting one up. */
struct tcache *tc_self(void);
/* The arena the calling thread allocates chunks from. */
struct arena *tc_arena(void);
/* Take arena a's lock for the calling thread: a take of its own arena
 * (and a wait for it) counts towards moving it (arena_move). */
void tc_arena_lock(struct arena *a);
/* An object of class k for t, when the current page's free list is empty;
 * NULL if out of memory. */
void *tc_alloc_slow(struct tcache *t, unsigned k);
/* Free p, an object of page g (validated), from a thread that does not own
 * g, or from t == NULL (a thread without a cache). */
void tc_free_remote(struct tcache *t, struct page *g, void *p);
/* Trim: the calling thread's idle pages (if it has a cache) and every
 * idle orphan go back to the heap. */
void tc_trim(void);
/* Give the calling thread's cache back and retire it (MEMALLOC_TCACHE=0). */
void tc_disable_self(void);
/* Statistics: calls served by the caches, and bytes of objects in use. */
struct tc_sums {
    uint64_t allocs, frees;
    size_t live;
};
void tc_sum(struct tc_sums *s);
/* The registry's lock: while it is held no cache comes or goes (fork,
 * the checker). */
void tc_registry_lock(void);
void tc_registry_unlock(void);
/* In a child of fork (every lock held by lock_world, and re-made): the
 * caches of the threads fork did not copy give their pages up as orphans
 * and retire, so that no object is lost. */
void tc_fork_child(void);

#endif
