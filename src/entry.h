/*
 * entry.h: the entry points as the libc names (preload/shim.c, cxx.c)
 * and the public API (entry.c) call them. malloc, free, operator new and
 * delete are inline: the engine's fast paths (api.h), whose misses come
 * to the slow paths in entry.c; those hand the call to the check layer
 * (debug.h) when a check mode is on, or, with MEMALLOC_SAMPLE, for the
 * allocation a countdown picked (tcache.h) and for any address of a guard
 * slot; else to the trace (trace.h) while MEMALLOC_TRACE is on. A check
 * mode costs the fast paths nothing: it sets tc_limit to 0, so that malloc
 * misses, and the free fast path declines a checked block (its address is
 * off its page's grid, and its object looks free). The trace sets tc_limit
 * to 0 too, and leaves free's fast path to the blocks it does not sample.
 *
 * ra is the return address of the program's call (the first frame of a
 * check mode's stacks); who names the function the program called. The
 * inline entry points pass none, so that their fast paths stay as they
 * were: their slow paths are reached by a tail call (the fast paths have
 * no stack frame), and take the program's return address as their own
 * (ENTRY_RA). shim.c and cxx.c are built optimised in every build type
 * so that this holds (the check modes' tests name the caller's function).
 */
#define ENTRY_RA() __builtin_return_address(0)
#ifndef MEMALLOC_ENTRY_H
#define MEMALLOC_ENTRY_H

#include <stddef.h>

#include "api.h"
#include "debug.h"
#include "guard.h"
#include "trace.h"

void *entry_malloc_slow(size_t n);
/* malloc's fast path missed on t's current page of class k (n below
 * tc_limit): t's foreign objects of the class, else entry_malloc_slow. */
void *entry_malloc_miss(size_t n, struct tcache *t, size_t k);
void entry_free_slow(void *p, const char *who);

static inline void *entry_calloc(size_t n, size_t size, void *ra) {
    if (unlikely(opt_get(OPT_CHECK))) return dbg_calloc(n, size, ra);
    if (unlikely(load_relaxed(&ma_tracing))) return trace_calloc(n, size, ra);
    return ma_calloc(n, size);
}
static inline void *entry_realloc(void *p, size_t n, const char *who, void *ra) {
    if (unlikely(dbg_on() || guard_owns(p))) return dbg_realloc(p, n, who, ra);
    if (unlikely(load_relaxed(&ma_tracing))) return trace_realloc(p, n, who, ra);
    return ma_realloc(p, n, who);
}
/* align: a power of two (callers check). */
void *entry_aligned_slow(size_t align, size_t n, void *ra);
static inline void *entry_aligned(size_t align, size_t n, void *ra) {
    void *p = ma_aligned_fast(align, n);
    return likely(p != NULL) ? p : entry_aligned_slow(align, n, ra);
}
static inline size_t entry_usable_size(const void *p, const char *who, void *ra) {
    if (unlikely(dbg_on() || guard_owns(p))) return dbg_usable_size(p, who, ra);
    if (unlikely(load_relaxed(&ma_tracing))) {
        size_t u = trace_usable(p);
        if (u) return u;
    }
    return ma_usable_size(p, who);
}

/* ma_malloc_fast, whose miss on the page hands its thread and class on:
 * a thread that frees other threads' blocks (a server's) allocates them
 * again (tcache.h, tc_pop_foreign) with no more than a call. */
static inline void *entry_malloc(size_t n) {
    if (likely(n < load_relaxed(&tc_limit))) {
        struct tcache *t = tc_current;
        size_t k = class_of(n);
        void *p = tc_pop(t, k);
        return likely(p != NULL) ? p : entry_malloc_miss(n, t, k);
    }
    return entry_malloc_slow(n);
}

static inline void entry_free(void *p, const char *who) {
    if (unlikely(!ma_free_fast(p, who))) entry_free_slow(p, who);
}

/* operator new and new[] (kind) when the fast path missed: a block
 * aligned to align (a power of two the program asked for, or 0 for the
 * default), or NULL (the caller runs the new-handler). */
void *entry_new(size_t n, enum dbg_kind kind, size_t align, void *ra);

/* operator delete and delete[] (kind); size: a sized delete's, or 0. */
void entry_delete_slow(void *p, enum dbg_kind kind, size_t size);
static inline void entry_delete(void *p, enum dbg_kind kind, size_t size) {
    if (unlikely(!ma_free_fast(p, kind == DBG_NEW ? "operator delete" : "operator delete[]")))
        entry_delete_slow(p, kind, size);
}

#endif
