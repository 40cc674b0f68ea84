/*
 * tcache.c: thread caches, the slow side (see tcache.h): setting a
 * thread's cache up, getting pages from its arena and giving them back,
 * frees by other threads, thread exit, trimming, the registry of live
 * caches, and fork. Cache structures come from OS pages mapped here and
 * are reused, never from the heap itself.
 */
#include "tcache.h"

#include <pthread.h>
#include <string.h>

#include "msg.h"
#include "options.h"

enum { TC_NONE, TC_SETUP, TC_LIVE, TC_GONE };

struct page tc_nopage;
/* The cache of threads that have none (read-only: the fast paths only
 * read it, and decline its pages) */
const struct tcache tc_empty = {.cur = {[0 ... NCLASSES - 1] = &tc_nopage}, .arena = &ma_arenas[0]};
#define TC_EMPTY ((struct tcache *)&tc_empty)
__thread struct tcache *tc_current __attribute__((tls_model("initial-exec"))) = TC_EMPTY;
static __thread unsigned char tc_state __attribute__((tls_model("initial-exec")));

/* Pages of the queue looked at for free objects before a new page is
 * taken: the slow path stays O(1) however many pages a class has. */
#define QUEUE_SCAN 8

static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER; /* the registry */
static struct tcache *tc_live;                              /* live caches, linked by next/prev */
static struct tcache *tc_spare; /* caches of exited threads, for reuse */
static char *slab_next, *slab_end;
/* The first cache (the main thread's, mostly): on the page of the small
 * globals, which is resident anyway, rather than on a slab page. */
static struct tcache tc_first;
static int tc_first_taken;
static pthread_key_t exit_key;

/* Statistics (relaxed atomics): the counters of retired caches and of
 * frees by threads without a cache. */
static uint64_t gone_allocs, gone_frees, gone_alloc_bytes, gone_free_bytes;

static void tc_exit(void *arg);

size_t tc_limit = CLASS_MAX + 1;

void tc_limit_update(void) {
    size_t t = opt_get(OPT_CHECK) || load_relaxed(&ma_tracing) ? 0 : mmap_threshold();
    store_relaxed(&tc_limit, t < CLASS_MAX + 1 ? t : CLASS_MAX + 1);
}

/* foreign_max[k] (tcache.h): FOREIGN_BYTES of objects of class k,
 * between 4 and 64. A thread that frees what others allocate and
 * allocates little (a pipeline's consumer) gives them back in batches,
 * and holds about half the bound of each class meanwhile. */
#define FOREIGN_BYTES ((size_t)16 << 10)
uint8_t foreign_max[NCLASSES];

void tc_init(void) {
    for (unsigned k = 0; k < NCLASSES; k++) {
        size_t n = class_size[k] ? FOREIGN_BYTES / class_size[k] : 64;
        foreign_max[k] = (uint8_t)(n < 4 ? 4 : n > 64 ? 64 : n);
    }
    tc_limit_update();
    pthread_key_create(&exit_key, tc_exit);
}

/* ---- arenas ---- */

/* t took its arena's lock ARENA_WINDOW times: if it waited for it a
 * quarter of them or more, it moves. Its pages stay: a page goes back to
 * the arena of its region. */
static void tc_window(struct tcache *t) {
    if (t->contended * 4 >= t->locks) t->arena = arena_move(t->arena);
    t->locks = t->contended = 0;
}

struct arena *tc_arena(void) {
    struct tcache *t = tc_current;
    if (unlikely(t->locks >= ARENA_WINDOW)) tc_window(t);
    return t->arena;
}

void tc_arena_lock(struct arena *a) {
    int waited = arena_lock(a);
    struct tcache *t = tc_current;
    if (tc_state == TC_LIVE && t->arena == a) { /* (else t may be the const tc_empty) */
        t->locks++;
        t->contended += (unsigned)waited;
    }
}

/* ---- pages ---- */

/* Give idle page g back to the heap of its region. */
static void page_give_back(struct page *g) {
    struct arena *a = arena_of(region_of(g));
    tc_arena_lock(a);
    page_release(g);
    arena_unlock(a);
}

/* One of t's idle pages of another class whose pages are as long as k's
 * (at the head of its queue, where tc_page_idle put it), made a page of
 * class k; NULL if none. Not while a check mode is or was on: debug.c
 * trusts the header a checked block left in an object (ST_GONE) only
 * where objects keep their places. */
static struct page *idle_take(struct tcache *t, unsigned k) {
    if (!t->idle_kept || opt_get(OPT_CHECK) || load_relaxed(&ma_check_gap)) return NULL;
    for (unsigned j = 1; j < NCLASSES; j++) {
        struct page *g = t->queue[j];
        if (j == k || !g || g->used || load_relaxed(&g->thread_free)) continue;
        ring_del(&t->queue[j], g);
        if (!page_reclass(g, k)) {
            ring_push_head(&t->queue[j], g);
            continue;
        }
        t->idle_kept--;
        return g;
    }
    return NULL;
}

/* A page of class k with a free object for t: an orphan of t's arena
 * (adopted), else one of t's idle pages of another class, else a new
 * one. NULL if out of memory. */
static struct page *page_new(struct tcache *t, unsigned k) {
    if (t->locks >= ARENA_WINDOW) tc_window(t);
    struct arena *a = t->arena;
    tc_arena_lock(a);
    struct page *g = orphan_adopt(&a->orphans, k, t, &t->queue[k]);
    if (!g) g = idle_take(t, k);
    if (!g) g = page_carve(&a->heap, t, k);
    arena_unlock(a);
    return g;
}

/* A foreign object of class k for t, or NULL; counted as a call served. */
static void *foreign_pop(struct tcache *t, unsigned k) {
    struct tblock *b = foreign_take(t, k);
    if (b) store_relaxed(&t->armed[k], t->armed[k] + 1);
    return b;
}

/*
 * The current page of class k has no free object left:
 *  0. take a foreign object (tc_push_remote);
 *  1. take its remote frees;
 *  2. else the queue, oldest page first (up to QUEUE_SCAN pages): a page
 *     with freed objects becomes current (they are resident already);
 *  3. else the never-used room of the current page, or of a queued page;
 *  4. else another page (page_new: an orphan, an idle page of another
 *     class, or carved).
 * The old current page joins the queue's tail.
 */
#define SAMPLE_OFF_PERIOD 65536

int tc_rearm(struct tcache *t, unsigned k) {
    uint64_t left = t->left[k];
    if (left > 1) return 0;
    int fresh = t->armed[k] == 1; /* a new cache's (tc_new), not a countdown run out */
    size_t n = opt_get(OPT_SAMPLE);
    uint64_t period = SAMPLE_OFF_PERIOD;
    if (n) {
        /* uniform in [1, 2n]: about one in n, and no program's pattern
         * of allocations keeps the samples off some of its blocks */
        uint64_t x = t->rng ? t->rng : (os_cookie_value ^ (uintptr_t)t) | 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t->rng = x;
        period = n == 1 ? 1 : 1 + x % (2 * (uint64_t)n);
    }
    /* calls served (armed - left) stay as they are */
    store_relaxed(&t->armed[k], t->armed[k] - left + period);
    store_relaxed(&t->left[k], period);
    return n != 0 && (n == 1 || !fresh);
}

void tc_rearm_all(void) {
    struct tcache *t = tc_self();
    if (!t) return;
    for (unsigned k = 0; k < NCLASSES; k++) {
        store_relaxed(&t->armed[k], t->armed[k] - t->left[k] + 1);
        store_relaxed(&t->left[k], 1);
    }
}

void *tc_alloc_slow(struct tcache *t, unsigned k) {
    if (t->left[k] <= 1) {
        /* the countdown, not the page, may have stopped the pop */
        tc_rearm(t, k);
        void *p = tc_pop_any(t, k);
        if (p) return p;
    }
    void *f = foreign_pop(t, k);
    if (f) return f;
    struct page *old = t->cur[k], *g, *roomy = NULL;
    if (old != &tc_nopage && page_collect(old)) return tc_pop_any(t, k);
    struct page *first = t->queue[k];
    for (unsigned i = 0; i < QUEUE_SCAN && (g = t->queue[k]) != NULL; i++) {
        if (i && g == first) break; /* round the whole ring */
        /* (a page with free objects keeps its remote frees until its
         * list runs dry: collecting them now would walk them) */
        if (g->free || page_collect(g)) {
            if (g->used == 0 && t->idle_kept) t->idle_kept--; /* an idle one, kept */
            ring_del(&t->queue[k], g);
            goto found;
        }
        if (!roomy && page_bump(g) < g->end) roomy = g;
        t->queue[k] = g->next; /* g becomes the tail: nothing is relinked */
    }
    if (old != &tc_nopage && page_extend(old)) return tc_pop_any(t, k);
    if (roomy) {
        g = roomy;
        ring_del(&t->queue[k], g);
        page_extend(g);
        goto found;
    }
    g = page_new(t, k);
    if (!g) return NULL;
    if (old != &tc_nopage) page_grow(g); /* old filled: so will g, likely */
    if (!g->free) page_extend(g);        /* touched out of the lock */
found:
    if (old != &tc_nopage) ring_add(&t->queue[k], old);
    t->cur[k] = g;
    return tc_pop_any(t, k);
}

/* Page g of t, not its class's current page, has no object in use: it
 * goes to the head of the queue, to be used next, unless an idle page is
 * there already, or g spans several windows (its objects are large: what
 * they touched is worth more than a page's set-up); then it goes back to
 * the heap. */
void tc_page_idle(struct tcache *t, struct page *g) {
    unsigned k = g->k;
    if (g == t->cur[k]) {
        /* a current page of large objects: a thread keeps one such page
         * idle; the one it kept before goes back if still idle */
        if (g->nwin == 1) return;
        struct page *before = t->idle_big;
        unsigned bk = t->idle_big_k;
        t->idle_big = g;
        t->idle_big_k = k;
        if (before && before != g && t->cur[bk] == before && before->used == 0) {
            t->cur[bk] = &tc_nopage;
            page_give_back(before);
        }
        return;
    }
    ring_del(&t->queue[k], g);
    if (g->nwin > 1 || t->idle_kept >= IDLE_PAGES) {
        page_give_back(g);
        return;
    }
    t->idle_kept++;
    ring_push_head(&t->queue[k], g);
}

/* ---- frees by other threads ---- */

/* Count a free of an object of class k by t (NULL: a thread without a cache). */
static void count_free(struct tcache *t, unsigned k) {
    if (t) {
        TC_COUNT(t->frees[k]);
    } else {
        add_relaxed(&gone_frees, 1);
        add_relaxed(&gone_free_bytes, class_size[k]);
    }
}

/* Push the n objects first .. last of page g (linked by next, keys
 * set) onto its list of remote frees at once (g has an owner). g may be
 * gone once they are pushed. */
static void push_chain(struct page *g, struct tblock *first, struct tblock *last, uint32_t n) {
    uintptr_t top = load_relaxed(&g->thread_free);
    do {
        last->next = tf_top(top);
    } while (!cas_release(&g->thread_free, &top,
                          (uintptr_t)first | (uintptr_t)(tf_count(top) + n) << TF_SHIFT));
}

/* Push b onto g's list of remote frees (g has an owner, not t). */
static void push_remote(struct tcache *t, struct page *g, struct tblock *b) {
    unsigned k = g->k; /* g may be gone once b is pushed */
    b->key = obj_key(b);
    push_chain(g, b, b, 1);
    count_free(t, k);
}

/* An object of another thread's page (or an orphan's) goes back to it,
 * counted already: the orphan's way, or push_chain. */
static void give_back_foreign(struct page *g, struct tblock *first, struct tblock *last,
                              uint32_t n) {
    while (!load_relaxed(&g->owner)) { /* (tc_free_remote's way, uncounted) */
        struct arena *a = arena_of(region_of(g));
        struct tblock *next = first == last ? NULL : first->next;
        tc_arena_lock(a);
        int done = orphan_free(&a->orphans, g, first);
        arena_unlock(a);
        if (!done) break;
        if (!next) return;
        first = next;
        n--;
    }
    push_chain(g, first, last, n);
}

/* Every foreign object of t's class k goes back to its page: a
 * compare-and-swap per run of objects of one page (a producer's blocks
 * come in such runs). */
void foreign_flush(struct tcache *t, unsigned k) {
    struct tblock *b = t->foreign[k];
    t->foreign[k] = NULL;
    t->nforeign[k] = 0;
    while (b) {
        struct page *g = page_of(region_of(b), b);
        struct tblock *first = b, *last = b;
        uint32_t n = 1;
        for (b = b->next; b && page_of(region_of(b), b) == g; b = b->next) {
            last = b;
            n++;
        }
        give_back_foreign(g, first, last, n);
    }
}

void tc_free_remote(struct tcache *t, struct page *g, void *p) {
    struct tblock *b = p;
    if (!load_relaxed(&g->owner)) {
        /* an orphan: under its arena's lock, so that it goes back with
         * its last object (unless a thread adopted it meanwhile) */
        struct arena *a = arena_of(region_of(g));
        unsigned k = g->k; /* g may be gone after the free */
        tc_arena_lock(a);
        int done = orphan_free(&a->orphans, g, b);
        arena_unlock(a);
        if (done) {
            count_free(t, k);
            return;
        }
    }
    push_remote(t, g, b);
}

/* ---- giving pages up ---- */

/* Page g leaves its thread: an orphan of its arena from now on. */
static void page_abandon(struct page *g) {
    struct arena *a = arena_of(region_of(g));
    tc_arena_lock(a);
    orphan_add(&a->orphans, g);
    arena_unlock(a);
}

/* Give back every page of t: to their arenas as orphans (thread exit,
 * MEMALLOC_TCACHE=0, fork). */
static void tc_abandon(struct tcache *t) {
    t->idle_big = NULL;
    t->idle_kept = 0;
    for (unsigned k = 0; k < NCLASSES; k++) foreign_flush(t, k);
    for (unsigned k = 0; k < NCLASSES; k++) {
        struct page *g = t->cur[k];
        t->cur[k] = &tc_nopage;
        if (g != &tc_nopage) page_abandon(g);
        while ((g = t->queue[k]) != NULL) {
            ring_del(&t->queue[k], g);
            page_abandon(g);
        }
    }
}

/* The idle pages of t go back to the heap, current ones included. */
static void trim_cache(struct tcache *t) {
    t->idle_big = NULL;
    t->idle_kept = 0; /* (every idle page goes below) */
    for (unsigned k = 0; k < NCLASSES; k++) {
        foreign_flush(t, k);
        struct page *g = t->cur[k];
        if (g != &tc_nopage) {
            page_collect(g);
            if (g->used == 0) {
                t->cur[k] = &tc_nopage;
                page_give_back(g);
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
                page_give_back(g);
            } else {
                t->queue[k] = g->next;
            }
        }
    }
}

void tc_trim(void) {
    struct tcache *t = tc_self();
    if (t) trim_cache(t);
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        tc_arena_lock(a);
        orphans_trim(&a->orphans);
        arena_unlock(a);
    }
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
    for (unsigned k = 0; k < NCLASSES; k++) {
        t->cur[k] = &tc_nopage;
        t->left[k] = t->armed[k] = 1; /* the first pop arms the countdown */
    }
    return t;
}

struct tcache *tc_get(void) {
    if (tc_state == TC_LIVE) return tc_current;
    if (tc_state != TC_NONE || !opt_get(OPT_TCACHE)) return NULL;
    tc_state = TC_SETUP; /* calls made from here on go around the cache */
    struct arena *a = arena_attach();
    pthread_mutex_lock(&tc_lock);
    struct tcache *t = tc_new();
    if (t) {
        t->arena = a;
        t->next = tc_live;
        if (tc_live) tc_live->prev = t;
        tc_live = t;
    }
    pthread_mutex_unlock(&tc_lock);
    if (!t) {
        arena_detach(a);
        tc_state = TC_NONE; /* try again later */
        return NULL;
    }
    /* pthread_setspecific may allocate (calloc): TC_SETUP sends that
     * allocation to the heap directly */
    pthread_setspecific(exit_key, t);
    tc_current = t;
    tc_state = TC_LIVE;
    return t;
}

struct tcache *tc_self(void) {
    return tc_state == TC_LIVE ? tc_current : NULL;
}

/* The counters of cache t, summed over its classes. */
struct tc_count {
    uint64_t allocs, frees, alloc_bytes, free_bytes;
};
static struct tc_count count_cache(const struct tcache *t) {
    struct tc_count c = {0, 0, 0, 0};
    for (unsigned k = 0; k < NCLASSES; k++) {
        uint64_t a = load_relaxed(&t->armed[k]) - load_relaxed(&t->left[k]);
        uint64_t f = load_relaxed(&t->frees[k]);
        c.allocs += a;
        c.frees += f;
        c.alloc_bytes += a * class_size[k];
        c.free_bytes += f * class_size[k];
    }
    return c;
}

/* Fold t's counters into the retired ones and take it out of the
 * registry, for reuse (tc_lock held). */
static void retire_locked(struct tcache *t) {
    struct tc_count c = count_cache(t);
    add_relaxed(&gone_allocs, c.allocs);
    add_relaxed(&gone_frees, c.frees);
    add_relaxed(&gone_alloc_bytes, c.alloc_bytes);
    add_relaxed(&gone_free_bytes, c.free_bytes);
    if (t->prev)
        t->prev->next = t->next;
    else
        tc_live = t->next;
    if (t->next) t->next->prev = t->prev;
    t->next = tc_spare;
    tc_spare = t;
}

/* Give t's pages up, then retire it. */
static void retire(struct tcache *t) {
    tc_abandon(t);
    arena_detach(t->arena);
    pthread_mutex_lock(&tc_lock);
    retire_locked(t);
    pthread_mutex_unlock(&tc_lock);
}

/* Thread exit (a pthread key destructor). Allocations the thread makes
 * afterwards (later destructors) go to the heap directly. */
static void tc_exit(void *arg) {
    tc_current = TC_EMPTY;
    tc_state = TC_GONE;
    retire(arg);
}

void tc_disable_self(void) {
    if (tc_state != TC_LIVE) return;
    struct tcache *t = tc_current;
    tc_current = TC_EMPTY;
    tc_state = TC_NONE;
    pthread_setspecific(exit_key, NULL);
    retire(t);
}

void tc_sum(struct tc_sums *s) {
    uint64_t al = load_relaxed(&gone_allocs), fr = load_relaxed(&gone_frees);
    uint64_t ab = load_relaxed(&gone_alloc_bytes), fb = load_relaxed(&gone_free_bytes);
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
}

void tc_registry_lock(void) {
    pthread_mutex_lock(&tc_lock);
}

void tc_registry_unlock(void) {
    pthread_mutex_unlock(&tc_lock);
}

void tc_fork_child(void) {
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    tc_lock = fresh;
    struct tcache *self = tc_self();
    for (struct tcache *t = tc_live, *next; t; t = next) {
        next = t->next;
        if (t == self) continue;
        /* its thread may have been between two stores of a push or a pop:
         * its free lists are whole (a head is one store), but used may be
         * off by one */
        for (unsigned k = 0; k < NCLASSES; k++) {
            struct page *g = t->cur[k];
            if (g != &tc_nopage) page_recount(g);
            for (g = t->queue[k]; g; g = g->next == t->queue[k] ? NULL : g->next) page_recount(g);
        }
        retire(t);
    }
}
