/*
 * util.h: what every file of the engine may use: branch hints, alignment
 * arithmetic, the atomic operations by name, runtime assertions, and the
 * section attribute for large zeroed arrays. Header only; depends on
 * nothing of the engine but, in builds with assertions, ma_assert_fail
 * (msg.c).
 */
#ifndef MEMALLOC_UTIL_H
#define MEMALLOC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline uintptr_t align_up(uintptr_t v, size_t a) {
    return (v + a - 1) & ~(uintptr_t)(a - 1);
}
static inline uintptr_t align_down(uintptr_t v, size_t a) {
    return v & ~(uintptr_t)(a - 1);
}

/*
 * Atomics. Every word that one thread writes while another reads it
 * without a lock goes through these, so that the memory order of each
 * access is written where it happens:
 *  relaxed   counters, flags and links whose readers check them again
 *            under a lock or tolerate a stale value;
 *  acquire / release   a publication: the reader that sees the value sees
 *            everything the writer wrote before it (region map bits,
 *            remote-free lists, initialisation).
 * On x86-64 every load and store here is a plain move.
 */
#define load_relaxed(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p)        __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store_relaxed(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define store_release(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define add_relaxed(p, v)      __atomic_add_fetch((p), (v), __ATOMIC_RELAXED) /* the new value */
#define sub_relaxed(p, v)      __atomic_sub_fetch((p), (v), __ATOMIC_RELAXED)
#define or_relaxed(p, v)       __atomic_fetch_or((p), (v), __ATOMIC_RELAXED)
#define or_release(p, v)       __atomic_fetch_or((p), (v), __ATOMIC_RELEASE)
#define and_release(p, v)      __atomic_fetch_and((p), (v), __ATOMIC_RELEASE)
#define exchange_acquire(p, v) __atomic_exchange_n((p), (v), __ATOMIC_ACQUIRE)
/* *p = v if *p == *expected (release), else *expected = *p; 1 if stored.
 * May fail spuriously: use in a loop. */
#define cas_release(p, expected, v)                                                                \
    __atomic_compare_exchange_n((p), (expected), (v), 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED)
#define cas_relaxed(p, expected, v)                                                                \
    __atomic_compare_exchange_n((p), (expected), (v), 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
/* The same, acquire either way, and never failing spuriously. */
#define cas_acquire_strong(p, expected, v)                                                         \
    __atomic_compare_exchange_n((p), (expected), (v), 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)

/* Raise *p to v if it is below (a high-water mark; relaxed). */
static inline void raise_relaxed(size_t *p, size_t v) {
    size_t cur = load_relaxed(p);
    while (v > cur && !cas_relaxed(p, &cur, v)) {
    }
}

/*
 * ma_assert(cond): in a build with MEMALLOC_ASSERT (Debug builds and the
 * sanitizer builds of the tests), stop with "memalloc: assertion failed:
 * file:line: cond" when cond is false; otherwise cond is not evaluated.
 * For invariants that the engine establishes itself; what a program's
 * misuse can break is checked in every build and reported as misuse.
 */
#ifdef MEMALLOC_ASSERT
#include "msg.h" /* ma_assert_fail */
#define ma_assert(cond) ((cond) ? (void)0 : ma_assert_fail(__FILE__, __LINE__, #cond))
#else
#define ma_assert(cond) ((void)sizeof(!(cond)))
#endif

/* The engine's data, declared in one file and used in others (the libc
 * names' file included): hidden, like everything but the API, so that
 * code reaches it directly rather than through the global offset table
 * (one instruction, not three, in a fast path). */
#define MA_HIDDEN __attribute__((visibility("hidden")))

/* For the large zeroed arrays (the region map, the arenas, the bootstrap
 * buffer): the linker places .lbss after .bss, so the small globals that
 * every call touches share a page or two, and of these arrays only the
 * pages in use are resident. (Clang before 17 would make .lbss a section
 * of file data, hundreds of KiB of zeros in the library; it keeps them in
 * .bss.) */
#if defined(__clang__) && __clang_major__ < 17
#define MA_LARGE_BSS
#else
#define MA_LARGE_BSS __attribute__((section(".lbss")))
#endif

#endif
