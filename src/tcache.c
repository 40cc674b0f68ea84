/*
 * tcache.c: thread caches, the slow side (see tcache.h): the class table,
 * setting a thread's cache up, refilling and flushing lists in batches,
 * the registry of live caches, thread exit and fork. Cache structures come
 * from pages mapped here and are reused, never from the heap itself.
 */
#include "tcache.h"

#include <pthread.h>
#include <string.h>

#include "error.h"
#include "options.h"
#include "stats.h"

enum { TC_NONE, TC_SETUP, TC_LIVE, TC_GONE };

static struct tcache tc_empty = {.arena = &ma_arenas[0]};
__thread struct tcache *tc_current __attribute__((tls_model("initial-exec"))) = &tc_empty;
static __thread unsigned char tc_state __attribute__((tls_model("initial-exec")));

uint32_t tc_class_size[TC_CLASSES];
uint16_t tc_capacity[TC_CLASSES];

/* Blocks a list holds at most: 8 KiB worth, between 2 and 64 blocks; an
 * arena's stash up to twice as many (TC_STASH_CAP, TC_STASH_BYTES). Larger caches buy little
 * speed on the benchmarks and cost resident memory (bench/, docs). */
#define CACHE_BYTES (8u << 10)
#define CAP_MIN     2u
#define CAP_MAX     64u
#define FILL_FIRST  4u /* the first refill of a list; each next one doubles */
/* A list that overflows (twice) doubles its capacity, up to CAP_MAX blocks, while
 * the thread's lists have grown by less than TC_BUDGET bytes in all: a
 * thread that frees and allocates many blocks of a class keeps more of
 * them, without every thread paying for it. */
#define TC_BUDGET ((size_t)256 << 10)

static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER; /* the registry */
static struct tcache *tc_live;                              /* live caches, linked by next/prev */
static struct tcache *tc_spare; /* caches of exited threads, for reuse */
static char *slab_next, *slab_end;
static unsigned arena_turn;
static pthread_key_t exit_key;

static void tc_exit(void *arg);

void tc_init(void) {
    for (unsigned k = 0; k < TC_CLASSES; k++) {
        size_t size;
        if (k <= 64) {
            size = (size_t)k * 16;
        } else {
            unsigned e = 10 + (k - 65) / 8, j = (k - 65) % 8 + 1;
            size = ((size_t)1 << e) + ((size_t)j << (e - 3));
        }
        unsigned cap = size ? CACHE_BYTES / (unsigned)size : 0;
        if (cap < CAP_MIN) cap = CAP_MIN;
        if (cap > CAP_MAX) cap = CAP_MAX;
        tc_class_size[k] = k < 2 ? 0 : (uint32_t)size;
        tc_capacity[k] = k < 2 ? 0 : (uint16_t)cap;
    }
    pthread_key_create(&exit_key, tc_exit);
}

static size_t capacity(unsigned k) {
    return tc_capacity[k];
}

/* A zeroed cache structure: a spare one, or carved from a mapped slab
 * (tc_lock held). The slab is mapped under the lock: once per fifty or so
 * caches, and only threads setting up or retiring a cache wait for it. */
static struct tcache *tc_new(void) {
    struct tcache *t = tc_spare;
    if (t) {
        tc_spare = t->next;
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
    return t;
}

struct tcache *tc_get(void) {
    if (tc_state == TC_LIVE) return tc_current;
    if (tc_state != TC_NONE || !opt_get(OPT_TCACHE)) return NULL;
    tc_state = TC_SETUP; /* calls made from here on go around the cache */
    pthread_mutex_lock(&tc_lock);
    struct tcache *t = tc_new();
    if (t) {
        for (unsigned k = 2; k < TC_CLASSES; k++) {
            t->room[k] = t->cap[k] = (uint16_t)capacity(k);
            t->fill[k] = FILL_FIRST;
        }
        t->arena = &ma_arenas[arena_turn++ % ma_narenas];
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

struct arena *tc_arena(void) {
    return tc_current->arena;
}

struct stash tc_stashes[MAX_ARENAS];

static struct stash *stash_of(const struct arena *a) {
    return &tc_stashes[a - ma_arenas];
}

/* Check cached chunk c as free() would (its head may have been
 * overwritten while it sat in a cache); abort if it is broken. Lock held. */
static void check_cached(struct arena *a, struct chunk *c) {
    if (!tag_ok(c) || !cinuse(c) || !pinuse(chunk_next(c))) {
        pthread_mutex_unlock(&a->lock);
        ma_fatal("free", "heap corruption near", chunk_payload(c));
    }
}

/* Free cached chunk c into the heap of a (lock held); its usable size. */
static size_t free_cached(struct arena *a, struct chunk *c) {
    ((struct tblock *)chunk_payload(c))->key = 0;
    size_t usable = usable_size(c);
    struct region *r = heap_free(a, c);
    if (r) {
        r->next = a->gone;
        a->gone = r;
    }
    return usable;
}

/* A cached chunk comes back to arena a (lock held): onto the stash of its
 * class while that has room (it stays in use and keeps its key), else into
 * the heap. Returns the usable bytes that went into the heap. */
static size_t take_back(struct arena *a, struct chunk *c) {
    check_cached(a, c);
    size_t size = chunk_size(c);
    unsigned k = tc_class(size);
    struct stash *st = stash_of(a);
    if (st->n[k] < TC_STASH_CAP(k) && st->bytes + size - HEAP_EXTRA <= TC_STASH_BYTES) {
        struct tblock *b = chunk_payload(c);
        b->next = st->head[k];
        st->head[k] = b;
        st->n[k]++;
        st->bytes += size - HEAP_EXTRA;
        return 0;
    }
    return free_cached(a, c);
}

/* Empty a's stashes into its heap (lock held). */
static void stash_release(struct arena *a) {
    struct stash *st = stash_of(a);
    size_t bytes = 0;
    for (unsigned k = 2; k < TC_CLASSES; k++) {
        for (struct tblock *b = st->head[k], *next; b; b = next) {
            next = b->next;
            bytes += free_cached(a, payload_chunk(b));
        }
        st->head[k] = NULL;
        st->n[k] = 0;
    }
    st->bytes = 0;
    stats_move_in(bytes);
}

/* Take up to want blocks of class k from a's stash (lock held), as a
 * NULL-terminated list, or NULL if the stash is empty. */
static struct tblock *stash_take(struct arena *a, unsigned k, size_t want) {
    struct stash *st = stash_of(a);
    struct tblock *first = st->head[k];
    if (!first) return NULL;
    struct tblock *last = first;
    size_t n = 1;
    while (n < want && last->next) {
        last = last->next;
        n++;
    }
    st->head[k] = last->next;
    last->next = NULL;
    st->n[k] = (uint16_t)(st->n[k] - n);
    st->bytes -= n * (tc_class_size[k] - HEAP_EXTRA);
    return first;
}

/* Blocks from a stash (keys set) become list k of t, but the first, which
 * is handed out. The list was empty and they are at most room + 1. */
static void *refill_from_stash(struct tcache *t, unsigned k, struct tblock *b) {
    size_t n = 0;
    for (struct tblock *x = b->next; x; x = x->next) n++;
    t->head[k] = b->next;
    TC_SET(t->room[k], (uint16_t)(t->room[k] - n));
    TC_SET(t->allocs, t->allocs + 1);
    b->key = 0;
    return b;
}

void *tc_refill(struct tcache *t, unsigned k) {
    size_t cs = tc_class_size[k];
    struct chunk *out[HEAP_RUN_MAX];
    struct arena *a = t->arena;
    size_t want = t->fill[k] <= t->room[k] + 1u ? t->fill[k] : t->room[k] + 1u;
    arena_lock(a);
    struct tblock *b = stash_take(a, k, want);
    if (b) {
        arena_unlock(a);
        return refill_from_stash(t, k, b);
    }
    size_t got = heap_alloc_run(a, cs, want, out);
    if (got) stats_move_out(usable_size(out[0]) + (got - 1) * (cs - HEAP_EXTRA));
    arena_unlock(a);
    if (!got) return NULL;
    /* runs double, up to half the list's capacity (at least FILL_FIRST) */
    size_t fill = (size_t)t->fill[k] * 2, most = t->cap[k] / 2u;
    if (most < FILL_FIRST) most = FILL_FIRST;
    if (most > HEAP_RUN_MAX) most = HEAP_RUN_MAX;
    t->fill[k] = (uint8_t)(fill < most ? fill : most);
    /* the list was empty (that is why we are here), and want <= room + 1 */
    for (size_t i = got - 1; i >= 1; i--) {
        struct tblock *x = chunk_payload(out[i]);
        x->next = t->head[k];
        x->key = tc_key(x);
        t->head[k] = x;
    }
    TC_SET(t->room[k], (uint16_t)(t->room[k] - (got - 1)));
    TC_SET(t->allocs, t->allocs + 1);
    return chunk_payload(out[0]);
}

/* Free the chains other threads pushed onto a's remote stack. */
static void drain_remote(struct arena *a) {
    struct tblock *b = __atomic_exchange_n((struct tblock **)&a->remote, NULL, __ATOMIC_ACQUIRE);
    size_t bytes = 0;
    while (b) {
        struct tblock *next = b->next;
        bytes += take_back(a, payload_chunk(b));
        b = next;
    }
    if (bytes) stats_move_in(bytes);
}

void arena_lock(struct arena *a) {
    pthread_mutex_lock(&a->lock);
    if (__atomic_load_n(&a->remote, __ATOMIC_RELAXED)) drain_remote(a);
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

/* Give n chunks of arena a back: under its lock if it is free now; else,
 * rather than wait, push them as one chain onto its remote stack (their
 * keys stay set, so a double free meanwhile is still seen). */
static void give_back_to(struct arena *a, struct chunk **v, size_t n) {
    if (pthread_mutex_trylock(&a->lock) == 0) {
        if (__atomic_load_n(&a->remote, __ATOMIC_RELAXED)) drain_remote(a);
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++) bytes += take_back(a, v[i]);
        if (bytes) stats_move_in(bytes);
        arena_unlock(a);
        return;
    }
    for (size_t i = 0; i + 1 < n; i++)
        ((struct tblock *)chunk_payload(v[i]))->next = chunk_payload(v[i + 1]);
    struct tblock *first = chunk_payload(v[0]), *last = chunk_payload(v[n - 1]);
    struct tblock *top = __atomic_load_n((struct tblock **)&a->remote, __ATOMIC_RELAXED);
    do {
        last->next = top;
    } while (!__atomic_compare_exchange_n((struct tblock **)&a->remote, &top, first, 1,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Give n cached chunks back to the engine, each to the arena of its
 * region, a run of chunks of the same arena at a time. */
static void give_back(struct chunk **v, size_t n) {
    size_t start = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && region_of(v[i])->arena == region_of(v[start])->arena) continue;
        give_back_to(region_of(v[start])->arena, v + start, i - start);
        start = i;
    }
}

/* Give the first n blocks of list k back (all of them if n is larger).
 * The newest go: they are the ones still in the processor's caches, and
 * the list's head is where they are, so nothing is walked twice. */
static void drop_head(struct tcache *t, unsigned k, size_t n) {
    struct chunk *batch[HEAP_RUN_MAX];
    size_t got = 0, total = 0;
    struct tblock *b = t->head[k];
    while (b && total < n) {
        struct tblock *next = b->next;
        batch[got++] = payload_chunk(b);
        total++;
        if (got == HEAP_RUN_MAX) {
            give_back(batch, got);
            got = 0;
        }
        b = next;
    }
    t->head[k] = b;
    give_back(batch, got);
    TC_SET(t->room[k], (uint16_t)(t->room[k] + total));
}

void tc_flush_push(struct tcache *t, unsigned k, void *p) {
    size_t cap = t->cap[k], grow = cap * (tc_class_size[k] - HEAP_EXTRA);
    /* every second overflow: one may follow a refill that filled the list */
    if ((t->overflows[k] ^= 1) == 0 && cap * 2 <= CAP_MAX && t->cap_bytes + grow <= TC_BUDGET) {
        t->cap_bytes += grow;
        TC_SET(t->cap[k], (uint16_t)(cap * 2));
        TC_SET(t->room[k], (uint16_t)(t->room[k] + cap));
    } else {
        drop_head(t, k, (cap + 1) / 2);
    }
    if (!tc_push(t, p)) ma_fatal("free", "thread cache refused", p); /* cannot happen */
}

void tc_release_stashes(void) {
    for (unsigned i = 0; i < ma_narenas; i++) {
        struct arena *a = &ma_arenas[i];
        arena_lock(a);
        stash_release(a);
        arena_unlock(a);
    }
}

size_t tc_stash_bytes(const struct arena *a) {
    return stash_of(a)->bytes;
}

/* Every list goes back, in batches that mix the classes: a lock per
 * HEAP_RUN_MAX blocks of an arena, not one per class (thread exit). */
void tc_flush_all(struct tcache *t) {
    struct chunk *batch[HEAP_RUN_MAX];
    size_t got = 0;
    for (unsigned k = 2; k < TC_CLASSES; k++) {
        for (struct tblock *b = t->head[k], *next; b; b = next) {
            next = b->next;
            batch[got++] = payload_chunk(b);
            if (got == HEAP_RUN_MAX) {
                give_back(batch, got);
                got = 0;
            }
        }
        t->head[k] = NULL;
        TC_SET(t->room[k], t->cap[k]);
    }
    if (got) give_back(batch, got);
}

void *tc_pop_aligned(struct tcache *t, unsigned k, size_t align) {
    struct tblock **link = &t->head[k];
    for (unsigned i = 0; i < 4 && *link; i++, link = &(*link)->next) {
        struct tblock *b = *link;
        if ((uintptr_t)b & (align - 1)) continue;
        if (b->key != tc_key(b)) tc_corrupt(b);
        *link = b->next;
        b->key = 0;
        TC_SET(t->room[k], (uint16_t)(t->room[k] + 1));
        TC_SET(t->allocs, t->allocs + 1);
        return b;
    }
    return NULL;
}

void tc_corrupt(const struct tblock *b) {
    ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
}

/* Fold t's counters into the process-wide ones and retire it (tc_lock held). */
static void retire(struct tcache *t) {
    stats_fold(t->allocs, t->frees);
    if (t->prev)
        t->prev->next = t->next;
    else
        tc_live = t->next;
    if (t->next) t->next->prev = t->prev;
    t->next = tc_spare;
    tc_spare = t;
}

/* Thread exit (a pthread key destructor): flush, then retire the cache.
 * Allocations the thread makes afterwards (later destructors) go to the
 * engine directly. */
static void tc_exit(void *arg) {
    struct tcache *t = arg;
    tc_current = &tc_empty;
    tc_state = TC_GONE;
    tc_flush_all(t);
    pthread_mutex_lock(&tc_lock);
    retire(t);
    pthread_mutex_unlock(&tc_lock);
}

void tc_disable_self(void) {
    if (tc_state != TC_LIVE) return;
    struct tcache *t = tc_current;
    tc_current = &tc_empty;
    tc_state = TC_NONE;
    pthread_setspecific(exit_key, NULL);
    tc_flush_all(t);
    pthread_mutex_lock(&tc_lock);
    retire(t);
    pthread_mutex_unlock(&tc_lock);
}

size_t tc_cached_bytes(const struct tcache *t) {
    size_t bytes = 0;
    for (unsigned k = 2; k < TC_CLASSES; k++) {
        size_t room = __atomic_load_n(&t->room[k], __ATOMIC_RELAXED);
        size_t cap = __atomic_load_n(&t->cap[k], __ATOMIC_RELAXED);
        bytes += (cap - room) * (tc_class_size[k] - HEAP_EXTRA);
    }
    return bytes;
}

void tc_sum(uint64_t *allocs, uint64_t *frees, size_t *cached) {
    uint64_t al = 0, fr = 0;
    size_t ca = 0;
    pthread_mutex_lock(&tc_lock);
    for (struct tcache *t = tc_live; t; t = t->next) {
        al += __atomic_load_n(&t->allocs, __ATOMIC_RELAXED);
        fr += __atomic_load_n(&t->frees, __ATOMIC_RELAXED);
        ca += tc_cached_bytes(t);
    }
    pthread_mutex_unlock(&tc_lock);
    *allocs = al;
    *frees = fr;
    *cached = ca;
}

void tc_fork_prepare(void) {
    pthread_mutex_lock(&tc_lock);
}
void tc_fork_parent(void) {
    pthread_mutex_unlock(&tc_lock);
}

/* In the child only this thread exists: the other threads' caches are
 * flushed (their lists are whole: a push or pop is never half visible to
 * a list walk) and retired, so no block is lost. */
void tc_fork_child(void) {
    pthread_mutex_init(&tc_lock, NULL);
    struct tcache *self = tc_state == TC_LIVE ? tc_current : NULL;
    for (struct tcache *t = tc_live, *next; t; t = next) {
        next = t->next;
        if (t == self) continue;
        tc_flush_all(t);
        retire(t);
    }
}
