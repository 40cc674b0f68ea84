/*
 * arena.c: the arenas (see arena.h): storage and set-up, the choice of an
 * arena for a thread cache, the lock, and the purge pass.
 */
#define _GNU_SOURCE
#include "arena.h"

#include <string.h>

#include "options.h"

/* Zero (.lbss, no page until touched); set up by arena_setup. */
MA_LARGE_BSS struct arena ma_arenas[MAX_ARENAS];
unsigned ma_narenas;
static unsigned narenas_max = 1;
/* Guards setting arenas up and the counts of caches; taken before any
 * arena's lock (arenas_lock_all), never while one is held. */
static pthread_mutex_t arenas_mutex = PTHREAD_MUTEX_INITIALIZER;

/* Adaptive: a waiter spins a little before it sleeps (locks are held briefly). */
static void lock_init(struct arena *a) {
    static const pthread_mutex_t adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
    memcpy(&a->lock, &adaptive, sizeof adaptive);
}

/* Set up the next arena and return it, or NULL if all are (arenas_mutex
 * held, or at initialisation). */
static struct arena *setup_next(void) {
    unsigned n = ma_narenas;
    if (n >= narenas_max) return NULL;
    struct arena *a = &ma_arenas[n];
    lock_init(a);
    heap_init(&a->heap);
    store_release(&ma_narenas, n + 1);
    return a;
}

void arenas_init(unsigned ncpu) {
    narenas_max = ncpu < MAX_ARENAS ? ncpu : MAX_ARENAS;
    setup_next();
}

/* The purge pass: every region top and every large span of the heap, and
 * the idle orphans, free for the purge delay; the next pass is due a
 * delay later if it left younger ones. */
static void purge_pass(struct arena *a, uint64_t now) {
    uint64_t delay = opt_get(OPT_PURGE_DELAY);
    uint64_t next = heap_purge(&a->heap, now, delay);
    if (orphans_purge(&a->orphans, now, delay) && (!next || next > now + delay)) next = now + delay;
    heap_purge_at(&a->heap, next);
}

/* Run the pass if it is due (lock held). */
static void purge_if_due(struct arena *a) {
    uint64_t due = load_relaxed(&a->heap.purge_due);
    if (!due) return;
    uint64_t now = os_now_ms();
    if (now >= due) purge_pass(a, now);
}

/* A pass that is due runs before the holder's work, so that memory goes
 * back before that work touches more, and after it (arena_unlock: what
 * a free made due at once, with a purge delay of 0). */
int arena_lock(struct arena *a) {
    int waited = pthread_mutex_trylock(&a->lock) != 0;
    if (waited) pthread_mutex_lock(&a->lock);
    purge_if_due(a);
    return waited;
}

void arena_unlock(struct arena *a) {
    purge_if_due(a);
    struct region *gone = a->heap.gone;
    a->heap.gone = NULL;
    pthread_mutex_unlock(&a->lock);
    region_unmap_list(gone);
}

void arenas_purge_late(uint64_t late) {
    uint64_t now = 0;
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        uint64_t due = load_relaxed(&a->heap.purge_due);
        if (!due) continue;
        if (!now) now = os_now_ms();
        if (now < due + late || pthread_mutex_trylock(&a->lock) != 0) continue;
        arena_unlock(a); /* runs the pass */
    }
}

void arenas_purge_due(void) {
    arenas_purge_late(0);
}

uint64_t arenas_next_due(void) {
    uint64_t next = 0;
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        uint64_t due = load_relaxed(&ma_arenas[i].heap.purge_due);
        if (due && (!next || due < next)) next = due;
    }
    return next;
}

/* The arena with the fewest live caches, the first of those; or, if that
 * one has share or more, the next one, set up now where the CPUs allow
 * (arenas_mutex held). Not a turn: threads that come and go one after
 * another then use the same arena, and adopt the pages their
 * predecessors left there. */
static struct arena *least_used(unsigned share) {
    unsigned best = 0;
    for (unsigned i = 1; i < ma_narenas; i++)
        if (ma_arenas[i].caches < ma_arenas[best].caches) best = i;
    struct arena *a = ma_arenas[best].caches >= share ? setup_next() : NULL;
    return a ? a : &ma_arenas[best];
}

struct arena *arena_attach(void) {
    pthread_mutex_lock(&arenas_mutex);
    struct arena *a = least_used(ARENA_SHARE);
    a->caches++;
    pthread_mutex_unlock(&arenas_mutex);
    return a;
}

void arena_detach(struct arena *a) {
    pthread_mutex_lock(&arenas_mutex);
    ma_assert(a->caches > 0);
    a->caches--;
    pthread_mutex_unlock(&arenas_mutex);
}

struct arena *arena_move(struct arena *a) {
    pthread_mutex_lock(&arenas_mutex);
    a->caches--;
    a = least_used(1);
    a->caches++;
    pthread_mutex_unlock(&arenas_mutex);
    return a;
}

/* Only the arenas set up: the others are never touched (no page of them
 * is resident). */
void arenas_lock_all(void) {
    pthread_mutex_lock(&arenas_mutex);
    for (unsigned i = 0; i < ma_narenas; i++) pthread_mutex_lock(&ma_arenas[i].lock);
}

void arenas_unlock_all(void) {
    for (unsigned i = ma_narenas; i-- > 0;) arena_unlock(&ma_arenas[i]);
    pthread_mutex_unlock(&arenas_mutex);
}

void arenas_fork_child(void) {
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    arenas_mutex = fresh;
    for (unsigned i = 0; i < ma_narenas; i++) lock_init(&ma_arenas[i]);
}
