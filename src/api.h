/*
 * api.h: the entry points, as the public API (memalloc.h) and the preload
 * shim call them: the same operations, with the name of the function the
 * program called, for error messages. malloc and free are inline here: a
 * pop from or a push to a page the thread owns, else the out-of-line slow
 * path. api.c holds the slow paths and the one classifier of pointers
 * handed back (classify).
 */
#ifndef MEMALLOC_API_H
#define MEMALLOC_API_H

#include <stddef.h>

#include "options.h"
#include "tcache.h"

/* Initialise the heap now if no call has yet. */
void ma_init(void);
void *ma_malloc_slow(size_t n);
void ma_free_slow(void *p, const char *who);
void *ma_calloc(size_t n, size_t size);
void *ma_realloc(void *p, size_t n, const char *who);
/* ma_realloc, and *from: p's usable size before (0 for NULL or a block of
 * size 0), as ma_realloc finds it anyway (the trace's countdown). */
void *ma_realloc_from(void *p, size_t n, const char *who, size_t *from);
/* align: a power of two (callers check); anything up to MAX_REQUEST. */
void *ma_aligned(size_t align, size_t n);
size_t ma_usable_size(const void *p, const char *who);
int ma_trim(size_t pad);
/*
 * For the check modes (debug.c): a block that is never an object of a
 * page, but a chunk or a mapped block, so that every call that hands an
 * address inside it back takes the slow paths; align a power of two.
 * *usable: its usable size. NULL (ENOMEM) on failure.
 */
void *ma_alloc_unpaged(size_t n, size_t align, size_t *usable);
/*
 * Also for the check modes: an object of a page of the class of n, from
 * the calling thread's cache whatever tc_limit says (ma_alloc_object);
 * NULL if there is none to be had (n over CLASS_MAX or the mmap
 * threshold, a thread without a cache, or out of memory: the caller takes
 * ma_alloc_unpaged's instead). *usable: the object's size. Its first 16
 * bytes may then look like a free object's (page.h): the free fast path
 * declines it, and ma_free_object frees it whatever they hold.
 */
void *ma_alloc_object(size_t n, size_t *usable);
/* The same for memalign and its kin (align a power of two above
 * ALIGNMENT): an object of a class whose objects are aligned to align;
 * NULL if there is none to be had (the caller takes ma_aligned's). For
 * the trace, which sets tc_limit to 0 but allocates as the engine would. */
void *ma_aligned_object(size_t align, size_t n);
/* The size of the object of a page that p is (on the page's grid and
 * handed out at some time, in use or not), else 0; any p. */
size_t ma_object_at(const void *p);
void ma_free_object(void *p);
/* The usable size of p if p is a chunk or a mapped block in use, else 0;
 * any p (nothing is read outside the heap's regions and the mapped
 * blocks' registry). strict: the chunk's successor must agree too (else
 * only the chunk's own header is verified: an overflow of the block may
 * have broken its successor's). */
size_t ma_unpaged_usable(const void *p, int strict);
/* What the heap says of payload address p, in one of its regions but not
 * a chunk in use (heap_blame: "double free of" and the like, "heap
 * corruption near", "invalid pointer"), for a call by who; NULL if p is
 * in no region. Takes the region's arena lock. */
const char *ma_blame(const void *p, const char *who);
/* The usable size of p if p is a block in use of any kind, else 0. */
size_t ma_block_usable(const void *p);
/* Set a tunable (options_set) and what follows from it; 0 or EINVAL. */
int ma_set_option(enum ma_opt o, size_t value);

/* malloc's fast path: an object from the thread's current page, or NULL
 * (the caller's slow path). Budget: the class, a load of the thread's
 * current page, and tc_pop. */
static inline void *ma_malloc_fast(size_t n) {
    if (likely(n < load_relaxed(&tc_limit))) return tc_pop(tc_current, class_of(n));
    return NULL;
}
static inline void *ma_malloc(size_t n) {
    void *p = ma_malloc_fast(n);
    return likely(p != NULL) ? p : ma_malloc_slow(n);
}

/* memalign's fast path (align a power of two): an object of a class whose
 * objects are aligned to align, from the thread's current page, or NULL
 * (the caller's slow path, ma_aligned). A program that asks for aligned
 * blocks all the time (SIMD buffers, cache-line-aligned structures) pays
 * malloc's price for them. */
static inline __attribute__((always_inline)) void *ma_aligned_fast(size_t align, size_t n) {
    if (likely(n < load_relaxed(&tc_limit))) {
        unsigned k = class_aligned(n, align);
        if (likely(k < NCLASSES)) return tc_pop(tc_current, k);
    }
    return NULL;
}

/* free of p, an object in use of page g owned by another thread (or by
 * none): tc_push_remote, else the slow path. */
void ma_free_foreign(struct tcache *t, struct tcache *owner, struct page *g, void *p,
                     const char *who);

/* free's fast path: 1 if p, an object of a page, is freed here; 0 if it
 * is none (the caller's slow path). Budget: page_of_object, the owner
 * test, and tc_push_own. Every call is a tail call in the callers: the
 * fast path needs no stack frame. */
static inline int ma_free_fast(void *p, const char *who) {
    struct tcache *t = tc_current;
    struct page *g = page_of_object(p);
    if (unlikely(g == NULL)) return 0;
    struct tcache *owner = load_relaxed(&g->owner);
    if (unlikely(owner != t))
        ma_free_foreign(t, owner, g, p, who);
    else
        tc_push_own(t, g, p);
    return 1;
}
static inline void ma_free(void *p, const char *who) {
    if (unlikely(!ma_free_fast(p, who))) ma_free_slow(p, who);
}

#endif
