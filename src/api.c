/*
 * api.c: the entry points' slow paths. Owns lazy initialisation, the
 * bootstrap buffer, the arenas, the request checks (size limits, overflow,
 * errno), the validation of every pointer handed back to us, locking, and
 * fork handling. The work itself is tcache.c's (size-class pages), heap.c's
 * (regions) or large.c's (own mappings).
 */
#define _GNU_SOURCE
#include "api.h"

#include <errno.h>
#include <string.h>

#include "error.h"
#include "heap.h"
#include "large.h"
#include "memalloc.h"
#include "options.h"
#include "stats.h"

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Zero (.lbss, no page until touched); set up by arena_setup. */
MA_LARGE_BSS struct arena ma_arenas[MAX_ARENAS];
unsigned ma_narenas, ma_arenas_max = 1;
struct counters ma_counters;

/* Only the arenas set up: the others are never touched (no page of them
 * is resident). The callers hold tc_lock, so that no arena is set up
 * meanwhile (fork, the checker). */
void arenas_lock_all(void) {
    for (unsigned i = 0; i < ma_narenas; i++) pthread_mutex_lock(&ma_arenas[i].lock);
}
void arenas_unlock_all(void) {
    for (unsigned i = ma_narenas; i-- > 0;) pthread_mutex_unlock(&ma_arenas[i].lock);
}

/* ---- initialisation and the bootstrap buffer ---- */

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
static int init_state;
/* Where the exit summary goes: a copy of the stderr the process started
 * with, since many programs close fd 2 in an atexit handler, which runs
 * before our destructor. */
static int stats_fd = 2;

/*
 * Requests that the initialising thread makes while initialisation runs
 * (pthread_atfork may call malloc, say) are served from this buffer, bump
 * allocated, never reused. Each block has a 16-byte header holding its size.
 */
#define BOOT_SIZE ((size_t)64 << 10)
static MA_LARGE_BSS _Alignas(64) char boot_buf[BOOT_SIZE];
static size_t boot_used;

static int is_boot(const void *p) {
    return (const char *)p >= boot_buf && (const char *)p < boot_buf + BOOT_SIZE;
}

/* Only the initialising thread comes here (others wait): no atomics needed. */
static void *boot_alloc(size_t n, size_t align) {
    if (align < ALIGNMENT) align = ALIGNMENT;
    size_t start =
        align_up((uintptr_t)boot_buf + boot_used + CHUNK_HDR, align) - (uintptr_t)boot_buf;
    if (n > BOOT_SIZE || start > BOOT_SIZE - n) {
        errno = ENOMEM;
        return NULL;
    }
    boot_used = align_up(start + n, ALIGNMENT);
    *(size_t *)(boot_buf + start - CHUNK_HDR) = n;
    return boot_buf + start;
}

static size_t boot_size(const void *p) {
    return *(const size_t *)((const char *)p - CHUNK_HDR);
}

/* Fork: every lock is taken (registry, arenas, mmapped blocks, in that
 * order) so that the child starts with consistent structures. */
static void fork_prepare(void) {
    tc_fork_prepare();
    arenas_lock_all();
    pthread_mutex_lock(&large_lock);
}
static void fork_parent(void) {
    pthread_mutex_unlock(&large_lock);
    arenas_unlock_all();
    tc_fork_parent();
}
/* Adaptive: a waiter spins a little before it sleeps (locks are held briefly). */
static void arena_lock_init(struct arena *a) {
    static const pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
    memcpy(&a->lock, &adaptive, sizeof adaptive);
}

static void arena_setup(struct arena *a) {
    arena_lock_init(a);
    bins_init(a);
}

struct arena *arena_setup_next(void) {
    unsigned n = ma_narenas;
    if (n >= ma_arenas_max) return NULL;
    arena_setup(&ma_arenas[n]);
    __atomic_store_n(&ma_narenas, n + 1, __ATOMIC_RELEASE);
    return &ma_arenas[n];
}

static void fork_child(void) {
    pthread_mutex_init(&large_lock, NULL);
    for (unsigned i = 0; i < ma_narenas; i++) arena_lock_init(&ma_arenas[i]);
    tc_fork_child();
}

/*
 * 1 when the heap is ready; 0 for a call made by the initialising thread
 * itself while initialisation runs (re-entry: the bootstrap buffer serves
 * it). Other threads wait for initialisation to finish: it is short and
 * makes no call that could wait for them.
 */
static pthread_t init_owner;

static __attribute__((noinline, cold)) int init_slow(void) {
    int expected = INIT_NONE;
    if (!__atomic_compare_exchange_n(&init_state, &expected, INIT_RUNNING, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_ACQUIRE)) {
        if (expected == INIT_DONE) return 1;
        /* only the owner can see its own id here: others read another value */
        pthread_t owner;
        __atomic_load(&init_owner, &owner, __ATOMIC_RELAXED);
        if (pthread_equal(owner, pthread_self())) return 0;
        while (__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) != INIT_DONE) os_yield();
        return 1;
    }
    pthread_t self = pthread_self();
    __atomic_store(&init_owner, &self, __ATOMIC_RELAXED);
    os_init();
    options_init();
    if (opt_get(OPT_STATS)) {
        int fd = os_dup_fd(2);
        if (fd >= 0) stats_fd = fd;
    }
    unsigned n = os_ncpu();
    ma_arenas_max = n < MAX_ARENAS ? n : MAX_ARENAS;
    arena_setup(&ma_arenas[0]);
    __atomic_store_n(&ma_narenas, 1, __ATOMIC_RELEASE);
    tc_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child); /* may call malloc: boot buffer */
    __atomic_store_n(&init_state, INIT_DONE, __ATOMIC_RELEASE);
    return 1;
}

static inline int ready(void) {
    if (likely(__atomic_load_n(&init_state, __ATOMIC_ACQUIRE) == INIT_DONE)) return 1;
    return init_slow();
}

void ma_init(void) {
    ready();
}

static void *fail_nomem(void) {
    errno = ENOMEM;
    return NULL;
}

/* ---- validation ---- */

/*
 * c claims to be an in-use chunk of region r. Abort, naming who, unless:
 *  1. it lies between the region's first chunk and its fencepost;
 *  2. its tag matches its address and size, and it fits in the region;
 *  3. it is in use (else it was freed);
 *  4. its successor agrees that it is in use.
 * No lock is needed: only the block's owner changes these facts.
 */
static void validate(struct region *r, struct chunk *c, const char *who) {
    const char *what = "invalid pointer";
    char *fence = (char *)region_fence(r);
    size_t h = head_get(c), size = h & SIZE_MASK;
    if ((char *)c < (char *)region_first(r) || (char *)c >= fence) goto bad;
    if (!head_tag_ok(c, h) || size < MIN_CHUNK || size > (size_t)(fence - (char *)c) ||
        (h & MMAPPED))
        goto bad;
    if (!(h & CINUSE)) {
        what = freed_twice_what(who);
        goto bad;
    }
    if (pinuse(chunk_next(c))) return;
    what = "heap corruption near";
bad:
    ma_fatal(who, what, chunk_payload(c));
}

/* ---- entry points ---- */

/* A chunk from the calling thread's arena, without the pages. */
static void *heap_malloc(size_t n, size_t *zero_len) {
    struct arena *a = tc_arena();
    arena_lock(a);
    void *p = heap_alloc(a, request_size(n), zero_len);
    if (p) stats_on_alloc(usable_size(payload_chunk(p)));
    arena_unlock(a);
    return p;
}

/* An object of class k from this thread's pages (its cache is set up now
 * if need be), or NULL if the thread has no cache. */
static void *cache_malloc(unsigned k, int *failed) {
    struct tcache *t = tc_get();
    if (!t) return NULL;
    void *p = tc_pop(t, k);
    if (!p) p = tc_alloc_slow(t, k);
    *failed = p == NULL;
    return p;
}

void *ma_malloc_slow(size_t n) {
    if (unlikely(!ready())) return boot_alloc(n, ALIGNMENT);
    if (unlikely(n > MAX_REQUEST)) return fail_nomem();
    if (n >= mmap_threshold()) {
        void *p = large_alloc(n, ALIGNMENT, 0);
        return p ? p : fail_nomem();
    }
    int failed = 0;
    void *p = n <= TC_MAX_REQUEST ? cache_malloc(tc_class(n), &failed) : NULL;
    if (!p && !failed) p = heap_malloc(n, NULL);
    return p ? p : fail_nomem();
}

void *ma_calloc(size_t n, size_t size) {
    size_t total;
    if (unlikely(__builtin_mul_overflow(n, size, &total) || total > MAX_REQUEST))
        return fail_nomem();
    if (likely(total <= TC_MAX_REQUEST)) {
        void *p = tc_pop(tc_current, tc_class(total));
        if (likely(p != NULL)) return memset(p, 0, total);
    }
    if (unlikely(!ready())) return boot_alloc(total, ALIGNMENT); /* .bss: zero */
    if (total >= mmap_threshold()) {
        void *p = large_alloc(total, ALIGNMENT, 1);
        return p ? p : fail_nomem();
    }
    int failed = 0;
    void *p = total <= TC_MAX_REQUEST ? cache_malloc(tc_class(total), &failed) : NULL;
    if (p) return memset(p, 0, total);
    if (failed) return fail_nomem();
    size_t dirty = 0;
    p = heap_malloc(total, &dirty);
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
    unsigned k = tc_aligned_class(n, align);
    if (k < TC_CLASSES) {
        /* a class whose objects are aligned to align: its pages serve it */
        int failed = 0;
        p = tc_pop(tc_current, k);
        if (!p) p = cache_malloc(k, &failed);
        if (p || failed) return p ? p : fail_nomem();
    }
    if (nb + align + MIN_CHUNK >= mmap_threshold()) {
        p = large_alloc(n, align, 0);
    } else {
        struct arena *a = tc_arena();
        arena_lock(a);
        p = heap_alloc_aligned(a, nb, align, CHUNK_HDR);
        if (p) stats_on_alloc(usable_size(payload_chunk(p)));
        arena_unlock(a);
    }
    return p ? p : fail_nomem();
}

/*
 * free, when the fast path declined:
 *  1. NULL and bootstrap blocks: nothing to do;
 *  2. not in a region: an mmapped block (or not ours: large.c says which);
 *  3. an object of a page: validate it (grid, double free); push it onto
 *     the page's own list if this thread owns the page, else onto the
 *     page's list of remote frees;
 *  4. else a chunk: validate it fully and free it into its arena.
 */
void ma_free_slow(void *p, const char *who) {
    if (!p || unlikely(is_boot(p))) return;
    if (unlikely((uintptr_t)p & (ALIGNMENT - 1))) ma_fatal(who, "invalid pointer", p);
    struct region *r = region_lookup(p);
    if (!r) {
        large_free(p, who);
        return;
    }
    struct spage *g = page_of(r, p);
    if (g) {
        tc_validate(g, p, who);
        /* set up: a thread that only frees then frees without this path */
        struct tcache *t = tc_get();
        if (t && __atomic_load_n(&g->owner, __ATOMIC_RELAXED) == t) {
            tc_push_own(t, g, p);
        } else {
            tc_free_remote(t, g, p);
        }
        return;
    }
    struct chunk *c = payload_chunk(p);
    validate(r, c, who);
    struct arena *a = r->arena;
    arena_lock(a);
    stats_on_free(usable_size(c));
    struct region *gone = heap_free(a, c);
    arena_unlock(a);
    if (gone) region_unmap(gone);
}

void ma_free_foreign(struct tcache *t, struct tcache *owner, struct spage *g, void *p,
                     const char *who) {
    if (!tc_push_remote(t, owner, g, p)) ma_free_slow(p, who);
}

size_t ma_usable_size(const void *p, const char *who) {
    if (!p) return 0;
    if (is_boot(p)) return boot_size(p);
    if ((uintptr_t)p & (ALIGNMENT - 1)) ma_fatal(who, "invalid pointer", p);
    struct region *r = region_lookup(p);
    if (!r) return large_usable(p, who);
    struct spage *g = page_of(r, p);
    if (g) {
        tc_validate(g, p, who);
        return g->size;
    }
    struct chunk *c = payload_chunk(p);
    validate(r, c, who);
    return usable_size(c);
}

/*
 * realloc:
 *  1. NULL: malloc; size 0: free and return NULL; a bootstrap block: copy out;
 *  2. an object of a page: kept while it fits and at least half of it
 *     is used, else moved;
 *     a chunk: kept if it fits without waste to split off; else resized
 *     in place (shrink, or grow into a free successor) if it can be;
 *  3. own mapping: keep it, or mremap it;
 *  4. else allocate, copy the old usable bytes, free. Growing to
 *     REALLOC_CHUNK or more: a chunk of the engine, not an object (a block
 *     that grew once is likely to grow again, and a chunk can grow in
 *     place); else at least a quarter more than the old size, if that is
 *     not much more than asked. On failure the old block is untouched.
 */
/* A block that realloc grows to this size or more leaves the pages. */
#define REALLOC_CHUNK 1024

void *ma_realloc(void *p, size_t n, const char *who) {
    if (!p) return ma_malloc(n);
    if (n == 0) {
        ma_free(p, who);
        return NULL;
    }
    size_t old;
    if (unlikely(is_boot(p))) {
        old = boot_size(p);
    } else {
        if (unlikely((uintptr_t)p & (ALIGNMENT - 1))) ma_fatal(who, "invalid pointer", p);
        if (unlikely(n > MAX_REQUEST)) return fail_nomem();
        struct region *r = region_lookup(p);
        struct spage *g = r ? page_of(r, p) : NULL;
        if (g) {
            tc_validate(g, p, who);
            old = g->size;
            if (n <= old && n >= old / 2) return p;
        } else if (r) {
            struct chunk *c = payload_chunk(p);
            validate(r, c, who);
            size_t nb = request_size(n), size = chunk_size(c);
            old = usable_size(c);
            /* fits, with less than a minimum chunk or a quarter to spare */
            if (nb <= size && (size - nb < MIN_CHUNK || size - nb <= size / 4)) return p;
            struct arena *a = r->arena;
            arena_lock(a);
            size_t want = nb > size && size + size / 4 > nb ? request_size(size + size / 4) : nb;
            int in_place = heap_resize(a, c, nb, want);
            if (in_place) stats_on_resize(old, usable_size(c));
            arena_unlock(a);
            if (in_place) return p;
        } else {
            old = large_usable(p, who);
            void *q = large_resize(p, n);
            if (q) return q;
        }
    }
    /* growing: a quarter more than asked, so that a block grown a little
     * at a time is copied a logarithmic number of times */
    size_t want = n;
    if (n > old && n - old < old / 4 && n + old / 4 <= MAX_REQUEST) want = old + old / 4;
    void *q = NULL;
    /* growing to REALLOC_CHUNK or more (and below the mmap threshold): a
     * chunk of the engine, which can grow in place next time, where an
     * object of a page must move to a larger class */
    if (n > old && want >= REALLOC_CHUNK && want <= TC_MAX_REQUEST && want < mmap_threshold())
        q = heap_malloc(want, NULL);
    if (!q && want != n) q = ma_malloc(want);
    if (!q) q = ma_malloc(n);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    ma_free(p, who);
    return q;
}

/* Trim: the calling thread's idle pages go back first (other threads'
 * pages are theirs), and idle orphaned pages; then every arena gives its
 * free memory back, and the cache of freed mappings is emptied. */
int ma_trim(size_t pad) {
    if (!ready()) return 0;
    tc_trim(tc_self());
    struct region *unmap = NULL;
    int released = large_cache_release();
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        arena_lock(a);
        released |= heap_trim(a, pad, &unmap);
        arena_unlock(a);
    }
    while (unmap) {
        struct region *next = unmap->next;
        region_unmap(unmap);
        unmap = next;
    }
    return released;
}

void ma_exit_report(void) {
    if (ready() && opt_get(OPT_STATS)) memalloc_print_stats(stats_fd);
}

/* ---- the public API (memalloc.h) ---- */

void *memalloc(size_t size) {
    return ma_malloc(size);
}

void *defalloc(size_t n, size_t elem_size) {
    return ma_calloc(n, elem_size);
}
void memfree(void *ptr) {
    ma_free(ptr, "memfree");
}
void *memresize(void *ptr, size_t new_size) {
    return ma_realloc(ptr, new_size, "memresize");
}
size_t memalloc_usable_size(const void *ptr) {
    return ma_usable_size(ptr, "memalloc_usable_size");
}
int memalloc_trim(size_t pad) {
    return ma_trim(pad);
}

void *memalloc_aligned(size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return ma_aligned(alignment, size);
}

static int opt_of(enum memalloc_option o, enum ma_opt *out) {
    switch (o) {
    case MEMALLOC_OPT_MMAP_THRESHOLD:
        *out = OPT_MMAP_THRESHOLD;
        return 0;
    case MEMALLOC_OPT_TRIM_THRESHOLD:
        *out = OPT_TRIM_THRESHOLD;
        return 0;
    case MEMALLOC_OPT_STATS:
        *out = OPT_STATS;
        return 0;
    case MEMALLOC_OPT_TCACHE:
        *out = OPT_TCACHE;
        return 0;
    case MEMALLOC_OPT_PURGE_DELAY:
        *out = OPT_PURGE_DELAY;
        return 0;
    case MEMALLOC_OPT_HUGEPAGE_THRESHOLD:
        *out = OPT_HUGEPAGE;
        return 0;
    }
    return EINVAL;
}

int memalloc_set_option(enum memalloc_option opt, size_t value) {
    enum ma_opt o;
    ready();
    if (opt_of(opt, &o) != 0) return EINVAL;
    int rc = options_set(o, value);
    if (rc == 0 && o == OPT_TCACHE && value == 0) tc_disable_self();
    return rc;
}

size_t memalloc_get_option(enum memalloc_option opt) {
    enum ma_opt o;
    ready();
    return opt_of(opt, &o) == 0 ? opt_get(o) : 0;
}
