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

/* Blocks a list holds at most: 64 KiB worth, between 4 and 128 blocks. */
#define CACHE_BYTES (64u << 10)
#define CAP_MIN     4u
#define CAP_MAX     128u
#define FILL_FIRST  4u /* the first refill of a list; each next one doubles */

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

/* A zeroed cache structure: a spare one, or carved from a mapped slab. */
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
            t->room[k] = (uint16_t)capacity(k);
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

void *tc_refill(struct tcache *t, unsigned k) {
    size_t cs = tc_class_size[k];
    struct chunk *out[HEAP_RUN_MAX];
    struct arena *a = t->arena;
    pthread_mutex_lock(&a->lock);
    size_t got = heap_alloc_run(a, cs, t->fill[k], out);
    if (got) stats_move_out(usable_size(out[0]) + (got - 1) * (cs - HEAP_EXTRA));
    pthread_mutex_unlock(&a->lock);
    if (!got) return NULL;
    size_t fill = (size_t)t->fill[k] * 2, most = capacity(k) / 2;
    if (most > HEAP_RUN_MAX) most = HEAP_RUN_MAX;
    t->fill[k] = (uint8_t)(fill < most ? fill : most > FILL_FIRST ? most : FILL_FIRST);
    /* the list is empty (that is why we are here): room is the capacity */
    for (size_t i = got - 1; i >= 1; i--) {
        struct tblock *b = chunk_payload(out[i]);
        b->next = t->head[k];
        b->key = tc_key(b);
        t->head[k] = b;
    }
    TC_SET(t->room[k], (uint16_t)(t->room[k] - (got - 1)));
    TC_SET(t->allocs, t->allocs + 1);
    return chunk_payload(out[0]);
}

/*
 * Give n cached chunks back to the engine, each to the arena of its region,
 * taking each lock once per run of chunks from the same arena. Each chunk
 * is checked as free() would (its head may have been overwritten while it
 * sat in a cache). Regions left empty are unmapped after unlocking.
 */
static void give_back(struct chunk **v, size_t n) {
    struct arena *held = NULL;
    struct region *gone = NULL;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        struct chunk *c = v[i];
        struct arena *a = region_of(c)->arena;
        if (a != held) {
            if (held) {
                stats_move_in(bytes);
                pthread_mutex_unlock(&held->lock);
            }
            bytes = 0;
            pthread_mutex_lock(&a->lock);
            held = a;
        }
        ((struct tblock *)chunk_payload(c))->key = 0;
        if (!tag_ok(c) || !cinuse(c) || !pinuse(chunk_next(c))) {
            pthread_mutex_unlock(&a->lock);
            ma_fatal("free", "heap corruption near", chunk_payload(c));
        }
        bytes += usable_size(c);
        struct region *r = heap_free(a, c);
        if (r) {
            r->next = gone;
            gone = r;
        }
    }
    if (held) {
        stats_move_in(bytes);
        pthread_mutex_unlock(&held->lock);
    }
    while (gone) {
        struct region *next = gone->next;
        region_unmap(gone);
        gone = next;
    }
}

/* Cut list k after its first keep blocks and give the rest back. */
static void trim_list(struct tcache *t, unsigned k, size_t keep) {
    struct tblock **link = &t->head[k];
    for (size_t i = 0; i < keep && *link; i++) link = &(*link)->next;
    struct tblock *b = *link;
    *link = NULL;
    struct chunk *batch[HEAP_RUN_MAX];
    size_t n = 0, total = 0;
    while (b) {
        struct tblock *next = b->next;
        batch[n++] = payload_chunk(b);
        total++;
        if (n == HEAP_RUN_MAX) {
            give_back(batch, n);
            n = 0;
        }
        b = next;
    }
    give_back(batch, n);
    TC_SET(t->room[k], (uint16_t)(t->room[k] + total));
}

void tc_flush_push(struct tcache *t, unsigned k, void *p) {
    trim_list(t, k, capacity(k) / 2);
    if (!tc_push(t, p)) ma_fatal("free", "thread cache refused", p); /* cannot happen */
}

void tc_flush_all(struct tcache *t) {
    for (unsigned k = 2; k < TC_CLASSES; k++)
        if (t->head[k]) trim_list(t, k, 0);
}

void tc_corrupt(const struct tblock *b) {
    ma_fatal("malloc", "heap corruption (a freed block was written to) near", b);
}

int tc_holds(const struct tcache *t, const void *p) {
    for (unsigned k = 2; k < TC_CLASSES; k++)
        for (const struct tblock *b = t->head[k]; b; b = b->next)
            if (b == p) return 1;
    return 0;
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
        bytes += (tc_capacity[k] - room) * (tc_class_size[k] - HEAP_EXTRA);
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
