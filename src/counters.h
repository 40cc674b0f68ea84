/*
 * counters.h: the process-wide counters of blocks out of the engine
 * (counters.c holds them; relaxed atomics).
 *
 * in_use counts the usable bytes of every block out of the engine: in use
 * by the program, or a size-class page (whose free objects wait in it).
 * It changes only under the lock of the arena (or of the mapped blocks)
 * concerned, so it is exact when read with every lock held, as the
 * checker does; peak is its high mark. allocs and frees count the calls
 * served without a thread cache; each cache counts its own.
 */
#ifndef MEMALLOC_COUNTERS_H
#define MEMALLOC_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct counters {
    uint64_t allocs, frees;
    size_t in_use, peak; /* usable bytes of blocks out of the engine */
};
extern MA_HIDDEN struct counters ma_counters;

/* A block of usable bytes handed out by a call, or freed by one. */
static inline void counters_alloc(size_t usable) {
    add_relaxed(&ma_counters.allocs, 1);
    raise_relaxed(&ma_counters.peak, add_relaxed(&ma_counters.in_use, usable));
}
static inline void counters_free(size_t usable) {
    add_relaxed(&ma_counters.frees, 1);
    sub_relaxed(&ma_counters.in_use, usable);
}
/* A block that leaves or rejoins the engine without a call of the program
 * (a size-class page). */
static inline void counters_out(size_t usable) {
    raise_relaxed(&ma_counters.peak, add_relaxed(&ma_counters.in_use, usable));
}
static inline void counters_in(size_t usable) {
    sub_relaxed(&ma_counters.in_use, usable);
}
/* A block resized from old to new usable bytes. */
static inline void counters_resize(size_t old_usable, size_t new_usable) {
    if (new_usable >= old_usable)
        counters_out(new_usable - old_usable);
    else
        counters_in(old_usable - new_usable);
}

#endif
