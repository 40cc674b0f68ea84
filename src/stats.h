/*
 * stats.h: the process-wide counters (relaxed atomics).
 *
 * in_use counts the usable bytes of every block out of the engine: in use
 * by the program, or waiting in a thread cache. It changes only under the
 * lock of the arena (or of the mmapped blocks) concerned, so it is exact
 * when read with every lock held, as memalloc_check does; peak is its high
 * mark. allocs and frees count the calls served without a thread cache;
 * each cache counts its own, and folds them in here when its thread exits.
 */
#ifndef MEMALLOC_STATS_H
#define MEMALLOC_STATS_H

#include <stddef.h>
#include <stdint.h>

struct counters {
    uint64_t allocs, frees;
    size_t in_use, peak; /* usable bytes of live blocks */
};
extern struct counters ma_counters;

static inline void stats_bump_peak(size_t now) {
    size_t peak = __atomic_load_n(&ma_counters.peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&ma_counters.peak, &peak, now, 1,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}
static inline void stats_on_alloc(size_t usable) {
    __atomic_add_fetch(&ma_counters.allocs, 1, __ATOMIC_RELAXED);
    stats_bump_peak(__atomic_add_fetch(&ma_counters.in_use, usable, __ATOMIC_RELAXED));
}
static inline void stats_on_free(size_t usable) {
    __atomic_add_fetch(&ma_counters.frees, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&ma_counters.in_use, usable, __ATOMIC_RELAXED);
}
/* Blocks moving between the engine and a thread cache (not calls). */
static inline void stats_move_out(size_t usable) {
    stats_bump_peak(__atomic_add_fetch(&ma_counters.in_use, usable, __ATOMIC_RELAXED));
}
static inline void stats_move_in(size_t usable) {
    __atomic_sub_fetch(&ma_counters.in_use, usable, __ATOMIC_RELAXED);
}
static inline void stats_fold(uint64_t allocs, uint64_t frees) {
    __atomic_add_fetch(&ma_counters.allocs, allocs, __ATOMIC_RELAXED);
    __atomic_add_fetch(&ma_counters.frees, frees, __ATOMIC_RELAXED);
}
static inline void stats_on_resize(size_t old_usable, size_t new_usable) {
    if (new_usable >= old_usable)
        stats_bump_peak(
            __atomic_add_fetch(&ma_counters.in_use, new_usable - old_usable, __ATOMIC_RELAXED));
    else
        __atomic_sub_fetch(&ma_counters.in_use, old_usable - new_usable, __ATOMIC_RELAXED);
}

#endif
