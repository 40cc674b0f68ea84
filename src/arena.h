/*
 * arena.h: arenas. An arena is a heap (its regions and free chunks), the
 * orphaned pages of those regions, and the one lock that guards both.
 * Threads are spread over up to arenas_max() arenas (one per CPU, at most
 * MAX_ARENAS), so that threads taking and giving back pages and chunks do
 * not all wait on one lock; a block always goes back to the arena of its
 * region. This file owns the arenas' storage and set-up, the choice of an
 * arena for a thread cache, the lock (taking and releasing it run a purge
 * pass that is due; releasing it then unmaps the regions emptied
 * meanwhile), and the purge pass itself.
 */
#ifndef MEMALLOC_ARENA_H
#define MEMALLOC_ARENA_H

#include <pthread.h>
#include <stddef.h>

#include "heap.h"
#include "orphan.h"

#define MAX_ARENAS 8
/* Live thread caches an arena serves before another is set up (arenas
 * stay at most one per CPU). The caches take an arena's lock only on
 * their slow paths, so threads sharing it seldom wait, and they share its
 * free memory: what one thread's pages give back, another carves its next
 * pages from. */
#define ARENA_SHARE 3

struct arena {
    pthread_mutex_t lock;
    struct heap heap;
    struct orphans orphans;
    unsigned caches; /* live thread caches that take their pages here (arenas' own mutex) */
} __attribute__((aligned(4096))); /* each on pages of its own: only those in use are resident */

/* Zero until set up; arena 0 at initialisation, the others when a thread
 * cache first needs one. ma_narenas counts those set up and only grows
 * (read it with arenas_count()). */
extern MA_HIDDEN struct arena ma_arenas[MAX_ARENAS];
extern MA_HIDDEN unsigned ma_narenas;
static inline unsigned arenas_count(void) {
    return load_acquire(&ma_narenas);
}

/* The arena whose heap h is. */
static inline struct arena *arena_of_heap(struct heap *h) {
    return (struct arena *)(void *)((char *)h - offsetof(struct arena, heap));
}
/* The arena of a region (whose lock guards its chunks and pages). */
static inline struct arena *arena_of(const struct region *r) {
    return arena_of_heap(r->heap);
}

/* Set up arena 0; up to ncpu arenas in all. */
void arenas_init(unsigned ncpu);

/* Take a's lock, then run the purge pass if one is due; 1 if it had to
 * wait for the lock. */
int arena_lock(struct arena *a);
/* Run the purge pass if one is due, release the lock, then unmap the
 * regions that were emptied under it. */
void arena_unlock(struct arena *a);

/* The arena for a new thread cache: the one with the fewest live caches
 * (the first of those), unless that one has ARENA_SHARE already: then
 * the next, set up now, where the CPUs allow. Counts the cache in. */
struct arena *arena_attach(void);
/* A cache leaves arena a (its thread exited). */
void arena_detach(struct arena *a);
/* A cache of arena a that often waited for its lock moves: to the arena
 * with the fewest live caches, or to a new one where the CPUs allow. */
struct arena *arena_move(struct arena *a);

/* Every arena set up: lock all (no arena is set up meanwhile), unlock
 * all; in a child of fork, set the locks up anew. */
void arenas_lock_all(void);
void arenas_unlock_all(void);
void arenas_fork_child(void);
/* For calls that take no arena lock (mapped blocks): run the purge pass
 * that is due in every arena whose lock is free. */
void arenas_purge_due(void);
/* The same for the passes due late ms ago or earlier: those the arenas'
 * own locks did not run (the background purge). */
void arenas_purge_late(uint64_t late);
/* The earliest time a purge pass is due at in any arena (os_now_ms()
 * time); 0 if none is. */
uint64_t arenas_next_due(void);

#endif
