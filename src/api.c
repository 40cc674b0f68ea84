/*
 * api.c: the entry points' slow paths (see api.h): the request checks
 * (size limits, overflow, errno), the one classifier of pointers handed
 * back, and the choice between the thread's pages, a chunk of its arena's
 * heap and a mapped block; then the engine's public API (memalloc.h). The
 * work itself is the lower layers'.
 */
#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <string.h>

#include "counters.h"
#include "init.h"
#include "large.h"
#include "msg.h"
#include "options.h"
#include "purger.h"
#include "zero.h"

void ma_init(void) {
    ready();
}

static void *fail_nomem(void) {
    errno = ENOMEM;
    return NULL;
}

/* ---- what a pointer handed back is ---- */

enum ptr_kind {
    PTR_NULL,
    PTR_BOOT,   /* a block of the bootstrap buffer */
    PTR_ZERO,   /* a block of size 0 handed out (zero.h) */
    PTR_OBJECT, /* an object in use of page g */
    PTR_CHUNK,  /* an in-use chunk c of region r */
    PTR_MAPPED, /* in no region: a mapped block, or not ours (the mapped
                   blocks' registry says which, under its lock) */
};
struct ptr {
    enum ptr_kind kind;
    struct region *r;
    struct page *g;
    struct chunk *c;
};

/* Stop the program: c, handed back to who, is not an in-use chunk of
 * region r. The heap says what it is, under its arena's lock (taken for
 * good: the program stops). */
static __attribute__((noreturn, cold, noinline)) void
chunk_invalid(struct region *r, struct chunk *c, const char *who) {
    arena_lock(arena_of(r));
    ma_fatal(who, heap_blame(r, c, who), chunk_payload(c));
}

/*
 * Classify p, handed back to who ("free", "realloc", ...), validated as
 * far as its kind allows without a lock; abort, naming who, if it cannot
 * be a block in use:
 *  1. NULL; a block of the bootstrap buffer;
 *  2. not 16-aligned: invalid; a block of size 0: handed out, or freed
 *     twice (or never a block);
 *  3. outside every region: a mapped block, or not ours;
 *  4. in a window of a page: an object, on the page's grid and not free;
 *  5. else a chunk: its header lies in the region, carries its tag, says
 *     in use, and its successor agrees (heap_chunk_ok; if not, the heap
 *     says what it is: freed, overwritten, or not a block).
 */
static inline __attribute__((always_inline)) struct ptr classify(const void *p, const char *who) {
    struct ptr q = {PTR_NULL, NULL, NULL, NULL};
    if (!p) return q;
    if (unlikely(is_boot(p))) {
        q.kind = PTR_BOOT;
        return q;
    }
    if (unlikely((uintptr_t)p & (ALIGNMENT - 1))) ma_fatal(who, "invalid pointer", p);
    if (unlikely(zero_owns(p))) {
        if (!zero_live(p)) ma_fatal(who, freed_twice_what(who), p);
        q.kind = PTR_ZERO;
        return q;
    }
    q.r = region_lookup(p);
    if (!q.r) {
        q.kind = PTR_MAPPED;
        return q;
    }
    q.g = page_of(q.r, p);
    if (q.g) {
        page_validate(q.g, p, who);
        q.kind = PTR_OBJECT;
        return q;
    }
    q.c = payload_chunk(p);
    if (unlikely(!heap_chunk_ok(q.r, q.c))) chunk_invalid(q.r, q.c, who);
    q.kind = PTR_CHUNK;
    return q;
}

/* ---- the three places a block comes from ---- */

/* An object of class k from this thread's pages (its cache is set up now
 * if need be), or NULL if the thread has no cache; *failed if out of memory. */
static void *object_malloc(unsigned k, int *failed) {
    struct tcache *t = tc_get();
    if (!t) return NULL;
    void *p = tc_pop_any(t, k);
    if (!p) {
        p = tc_alloc_slow(t, k);
        purger_poke();
    }
    *failed = p == NULL;
    return p;
}

/* The huge page of x86-64 and of arm64 with 4 KiB pages (a PMD's span). */
#define HUGE_PAGE ((size_t)2 << 20)

/* A heap block of n bytes at p that the program is about to write, of
 * the huge-page threshold or more: ask for transparent huge pages for the
 * whole huge pages inside it, as for a mapped block (large.c), so that
 * filling it costs a fault per 2 MiB, not per 4 KiB. (The advice stays
 * on those pages for whatever uses them later: bigger blocks, mostly.) */
static void advise_huge(void *p, size_t n) {
    size_t t = opt_get(OPT_HUGEPAGE);
    if (!t || n < t) return;
    uintptr_t from = align_up((uintptr_t)p, HUGE_PAGE);
    uintptr_t to = align_down((uintptr_t)p + n, HUGE_PAGE);
    if (to > from) os_advise_huge((void *)from, to - from);
}

/* A chunk from the calling thread's arena, without the pages; calloc's
 * (zero_len) gets no huge-page advice: zeroed blocks are often used
 * sparsely. */
static void *chunk_malloc(size_t n, size_t *zero_len) {
    struct arena *a = tc_arena();
    tc_arena_lock(a);
    void *p = heap_alloc(&a->heap, request_size(n), zero_len);
    if (p) counters_alloc(usable_size(payload_chunk(p)));
    arena_unlock(a);
    if (p && !zero_len) advise_huge(p, n);
    return p;
}

/* A mapped block. Calls for mapped blocks take no arena lock: they run
 * the purge passes that are due (before the new pages fault in). */
static void *mapped_malloc(size_t n, size_t align, int zero) {
    arenas_purge_due();
    void *p = large_alloc(n, align, zero);
    return p ? p : fail_nomem();
}

/* A block of size 0 (zero.h), or NULL if there is none to be had: the
 * caller then allocates a byte. */
static void *zero_malloc(void) {
    void *p = zero_alloc();
    if (p) counters_alloc(0);
    return p;
}

void *ma_malloc_slow(size_t n) {
    if (likely(n != 0 && n < load_relaxed(&tc_limit))) {
        /* the current page ran dry, or the countdown ran out: the thread's
         * foreign objects, then its other pages; a thread with a cache is
         * past initialisation, and n below the mmap threshold, so none of
         * the tests below applies */
        unsigned k = class_of(n);
        struct tcache *t = tc_current;
        void *p = tc_pop_foreign(t, k);
        if (p) return p;
        if (likely(t != &tc_empty)) {
            p = tc_alloc_slow(t, k);
            purger_poke();
            return p ? p : fail_nomem();
        }
    }
    if (unlikely(!ready())) return boot_alloc(n, ALIGNMENT);
    if (unlikely(n == 0)) {
        void *z = zero_malloc();
        if (z) return z;
        n = 1;
    }
    if (unlikely(n > MAX_REQUEST)) return fail_nomem();
    if (n >= mmap_threshold()) return mapped_malloc(n, ALIGNMENT, 0);
    int failed = 0;
    void *p = n <= CLASS_MAX ? object_malloc(class_of(n), &failed) : NULL;
    if (!p && !failed) p = chunk_malloc(n, NULL);
    return p ? p : fail_nomem();
}

void *ma_calloc(size_t n, size_t size) {
    size_t total;
    if (unlikely(__builtin_mul_overflow(n, size, &total) || total > MAX_REQUEST))
        return fail_nomem();
    if (likely(total < load_relaxed(&tc_limit))) {
        void *p = tc_pop(tc_current, class_of(total));
        if (likely(p != NULL)) return memset(p, 0, total);
    }
    if (unlikely(!ready())) return boot_alloc(total, ALIGNMENT); /* .bss: zero */
    if (unlikely(total == 0)) return ma_malloc_slow(0);
    if (total >= mmap_threshold()) return mapped_malloc(total, ALIGNMENT, 1);
    int failed = 0;
    void *p = total <= CLASS_MAX ? object_malloc(class_of(total), &failed) : NULL;
    if (p) return memset(p, 0, total);
    if (failed) return fail_nomem();
    size_t dirty = 0;
    p = chunk_malloc(total, &dirty);
    if (!p) return fail_nomem();
    memset(p, 0, dirty);
    return p;
}

void *ma_aligned(size_t align, size_t n) {
    if (unlikely(!ready())) return boot_alloc(n, align);
    if (align <= ALIGNMENT) return ma_malloc(n);
    if (n > MAX_REQUEST || align > MAX_REQUEST - n) return fail_nomem();
    size_t nb = request_size(n);
    void *p;
    unsigned k = n < load_relaxed(&tc_limit) ? class_aligned(n, align) : NCLASSES;
    if (k < NCLASSES) {
        /* a class whose objects are aligned to align: its pages serve it */
        int failed = 0;
        p = tc_pop(tc_current, k);
        if (!p) p = object_malloc(k, &failed);
        if (p || failed) return p ? p : fail_nomem();
    }
    if (nb + align + MIN_CHUNK >= mmap_threshold()) return mapped_malloc(n, align, 0);
    struct arena *a = tc_arena();
    tc_arena_lock(a);
    p = heap_alloc_aligned(&a->heap, nb, align, CHUNK_HDR);
    if (p) counters_alloc(usable_size(payload_chunk(p)));
    arena_unlock(a);
    return p ? p : fail_nomem();
}

void *ma_alloc_unpaged(size_t n, size_t align, size_t *usable) {
    if (unlikely(!ready())) return boot_alloc(n, align);
    if (n > MAX_REQUEST || align > MAX_REQUEST - n) return fail_nomem();
    size_t nb = request_size(n);
    void *p;
    if (nb + (align > ALIGNMENT ? align + MIN_CHUNK : 0) >= mmap_threshold()) {
        p = mapped_malloc(n, align, 0);
        if (p) *usable = large_find(p);
        return p;
    }
    struct arena *a = tc_arena();
    tc_arena_lock(a);
    p = align > ALIGNMENT ? heap_alloc_aligned(&a->heap, nb, align, CHUNK_HDR)
                          : heap_alloc(&a->heap, nb, NULL);
    if (p) {
        *usable = usable_size(payload_chunk(p));
        counters_alloc(*usable);
    }
    arena_unlock(a);
    return p ? p : fail_nomem();
}

void *ma_aligned_object(size_t align, size_t n) {
    if (unlikely(!ready()) || n > CLASS_MAX || n >= mmap_threshold()) return NULL;
    unsigned k = class_aligned(n, align);
    if (k >= NCLASSES) return NULL;
    int failed = 0;
    void *p = tc_pop(tc_current, k);
    return p ? p : object_malloc(k, &failed);
}

static void object_free(struct page *g, void *p);

void *ma_alloc_object(size_t n, size_t *usable) {
    if (unlikely(!ready()) || n > CLASS_MAX || n >= mmap_threshold()) return NULL;
    unsigned k = class_of(n ? n : 1); /* (class 0 has no pages: zero.h) */
    /* the thread's current page first, as malloc's fast path takes it
     * (a thread without a cache has the empty one: NULL) */
    void *p = tc_pop(tc_current, k);
    if (unlikely(!p)) {
        int failed = 0;
        p = object_malloc(k, &failed);
    }
    if (p) *usable = class_size[k];
    return p;
}

size_t ma_object_at(const void *p) {
    if (!p || ((uintptr_t)p & (ALIGNMENT - 1))) return 0;
    struct region *r = region_lookup(p);
    struct page *g = r ? page_of(r, p) : NULL;
    return g && page_holds(g, p) ? g->size : 0;
}

void ma_free_object(void *p) {
    struct page *g = page_of(region_of(p), p);
    ((struct tblock *)p)->key = 0; /* it may look free: the pushes below set it */
    struct tcache *t = tc_current; /* as free's fast path: a page's owner is a live cache */
    if (likely(load_relaxed(&g->owner) == t))
        tc_push_own(t, g, p);
    else
        object_free(g, p);
}

size_t ma_unpaged_usable(const void *p, int strict) {
    if (!p || ((uintptr_t)p & (ALIGNMENT - 1)) || is_boot(p)) return 0;
    struct region *r = region_lookup(p);
    if (!r) return large_find(p);
    if (page_of(r, p)) return 0;
    struct chunk *c = payload_chunk(p);
    return (strict ? heap_chunk_ok(r, c) : heap_chunk_head_ok(r, c)) ? usable_size(c) : 0;
}

const char *ma_blame(const void *p, const char *who) {
    struct region *r = region_lookup(p);
    if (!r || page_of(r, p)) return NULL;
    struct arena *a = arena_of(r);
    arena_lock(a);
    const char *what = heap_blame(r, payload_chunk(p), who);
    arena_unlock(a);
    return what;
}

size_t ma_block_usable(const void *p) {
    if (!p || ((uintptr_t)p & (ALIGNMENT - 1)) || is_boot(p)) return 0;
    struct region *r = region_lookup(p);
    if (r && page_of(r, p)) {
        struct page *g = page_of_object(p);
        return g ? g->size : 0;
    }
    return ma_unpaged_usable(p, 1);
}

/* ---- free ---- */

/* Free object p of page g: onto the page's own list if this thread owns
 * the page, else onto its list of remote frees. A thread's first free
 * sets its cache up, so that a thread that only frees (a consumer) frees
 * without this path from then on. */
static void object_free(struct page *g, void *p) {
    struct tcache *t = tc_get();
    if (t && load_relaxed(&g->owner) == t)
        tc_push_own(t, g, p);
    else
        tc_free_remote(t, g, p);
}

/* Free in-use chunk c of region r into its arena. */
static void chunk_free(struct region *r, struct chunk *c) {
    struct arena *a = arena_of(r);
    tc_arena_lock(a);
    counters_free(usable_size(c));
    heap_free(&a->heap, c);
    arena_unlock(a);
    purger_poke();
}

void ma_free_slow(void *p, const char *who) {
    struct ptr q = classify(p, who);
    switch (q.kind) {
    case PTR_NULL:
    case PTR_BOOT: /* never reused */
        return;
    case PTR_ZERO:
        if (!zero_free(p)) ma_fatal(who, freed_twice_what(who), p); /* a racing free */
        counters_free(0);
        return;
    case PTR_OBJECT:
        object_free(q.g, p);
        return;
    case PTR_CHUNK:
        chunk_free(q.r, q.c);
        return;
    case PTR_MAPPED:
        large_free(p, who);
        arenas_purge_due();
        purger_poke();
        return;
    }
}

void ma_free_foreign(struct tcache *t, struct tcache *owner, struct page *g, void *p,
                     const char *who) {
    if (!tc_push_remote(t, owner, g, p)) ma_free_slow(p, who);
}

size_t ma_usable_size(const void *p, const char *who) {
    struct ptr q = classify(p, who);
    switch (q.kind) {
    case PTR_NULL:
    case PTR_ZERO:
        return 0;
    case PTR_BOOT:
        return boot_size(p);
    case PTR_OBJECT:
        return q.g->size;
    case PTR_CHUNK:
        return usable_size(q.c);
    case PTR_MAPPED:
        break;
    }
    return large_usable(p, who);
}

/* ---- realloc ---- */

/* A block that realloc grows to this size or more leaves the pages. */
#define REALLOC_CHUNK 1024

/* Resize chunk c of region r in place if it fits with little to spare or
 * can shrink or grow where it is; 1 if done. */
static int chunk_resize(struct region *r, struct chunk *c, size_t n) {
    size_t nb = request_size(n), size = chunk_size(c);
    /* fits, with less than a minimum chunk or a quarter to spare */
    if (nb <= size && (size - nb < MIN_CHUNK || size - nb <= size / 4)) return 1;
    struct arena *a = arena_of(r);
    size_t old = usable_size(c);
    tc_arena_lock(a);
    size_t want = nb > size && size + size / 4 > nb ? request_size(size + size / 4) : nb;
    int in_place = heap_resize(&a->heap, c, nb, want);
    if (in_place) counters_resize(old, usable_size(c));
    arena_unlock(a);
    return in_place;
}

/*
 * realloc:
 *  1. NULL: malloc; size 0: free and return NULL; too large: ENOMEM;
 *  2. an object of a page: kept while it fits and at least half of it
 *     is used, else moved;
 *     a chunk: kept if it fits without waste to split off; else resized
 *     in place (shrink, or grow into a free successor) if it can be;
 *     a mapped block: kept, or mremapped;
 *     a block of the bootstrap buffer: copied out;
 *  3. else allocate, copy the old usable bytes, free. Growing to
 *     REALLOC_CHUNK or more: a chunk of the heap, not an object (a block
 *     that grew once is likely to grow again, and a chunk can grow in
 *     place); else at least a quarter more than the old size, if that is
 *     not much more than asked. On failure the old block is untouched.
 */
static inline __attribute__((always_inline)) void *realloc_from(void *p, size_t n, const char *who,
                                                                size_t *from) {
    *from = 0;
    if (!p) return ma_malloc(n);
    if (n == 0) {
        ma_free(p, who);
        return NULL;
    }
    if (unlikely(n > MAX_REQUEST) && !is_boot(p)) {
        /* too large, whatever p is: checked as far as its address only */
        if ((uintptr_t)p & (ALIGNMENT - 1)) ma_fatal(who, "invalid pointer", p);
        return fail_nomem();
    }
    struct ptr q = classify(p, who);
    size_t old = 0;
    switch (q.kind) {
    case PTR_NULL:
    case PTR_ZERO:
        break;
    case PTR_BOOT:
        old = *from = boot_size(p);
        break;
    case PTR_OBJECT:
        old = *from = q.g->size;
        if (n <= old && n >= old / 2) return p;
        break;
    case PTR_CHUNK:
        old = *from = usable_size(q.c);
        if (chunk_resize(q.r, q.c, n)) return p;
        break;
    case PTR_MAPPED: {
        old = *from = large_usable(p, who);
        void *moved = large_resize(p, n);
        if (moved) return moved;
        break;
    }
    }
    /* growing: a quarter more than asked, so that a block grown a little
     * at a time is copied a logarithmic number of times */
    size_t want = n;
    if (n > old && n - old < old / 4 && n + old / 4 <= MAX_REQUEST) want = old + old / 4;
    void *moved = NULL;
    int saved = errno; /* a first try that fails sets it; a later one may succeed */
    /* growing to REALLOC_CHUNK or more (and below the mmap threshold): a
     * chunk of the heap, which can grow in place next time, where an
     * object of a page must move to a larger class */
    if (n > old && want >= REALLOC_CHUNK && want <= CLASS_MAX && want < mmap_threshold())
        moved = chunk_malloc(want, NULL);
    /* growing past the growth threshold: a mapping, which grows by mremap
     * next time (options.h) */
    else if (n > old && want >= mmap_threshold_grow())
        moved = mapped_malloc(want, ALIGNMENT, 0);
    if (!moved && want != n) moved = ma_malloc(want);
    if (!moved) moved = ma_malloc(n);
    if (!moved) return NULL;
    errno = saved;
    memcpy(moved, p, old < n ? old : n);
    ma_free(p, who);
    return moved;
}

void *ma_realloc(void *p, size_t n, const char *who) {
    size_t from;
    return realloc_from(p, n, who, &from);
}

void *ma_realloc_from(void *p, size_t n, const char *who, size_t *from) {
    return realloc_from(p, n, who, from);
}

/* Trim: the calling thread's idle pages go back first (other threads'
 * pages are theirs), and idle orphans; then every arena gives its free
 * memory back, and the cache of freed mappings is emptied. */
int ma_trim(size_t pad) {
    if (!ready()) return 0;
    tc_trim();
    int released = large_cache_release();
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        tc_arena_lock(a);
        released |= heap_trim(&a->heap, pad);
        arena_unlock(a);
    }
    return released;
}

int ma_set_option(enum ma_opt o, size_t value) {
    ready();
    /* a trace's sampled blocks are not checked blocks: the check layer
     * would take them for invalid pointers */
    if (o == OPT_CHECK && value && load_relaxed(&ma_tracing)) return EBUSY;
    int rc = options_set(o, value);
    if (rc != 0) return rc;
    if (o == OPT_MMAP_THRESHOLD || o == OPT_CHECK) tc_limit_update();
    if (o == OPT_TCACHE && value == 0) tc_disable_self();
    if (o == OPT_SAMPLE) tc_rearm_all();
    return 0;
}
