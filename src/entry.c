/*
 * entry.c: the entry points' slow paths (see entry.h), and the public API
 * (memalloc.h).
 */
#define _GNU_SOURCE
#include "entry.h"

#include <errno.h>

#include "init.h"
#include "memalloc.h"

#define RA __builtin_return_address(0)

/* MEMALLOC_SAMPLE (its callers test that it is set): is the allocation
 * of n bytes that missed the fast path the one its class's countdown ran
 * out for (tcache.h), and is it to be sampled? */
static int sample_due(size_t n) {
    if (n == 0 || n >= load_relaxed(&tc_limit)) return 0;
    struct tcache *t = tc_get(); /* set up now: a thread's first block is sampled too */
    unsigned k = class_of(n);
    return t && load_relaxed(&t->left[k]) <= 1 && tc_rearm(t, k);
}

/* malloc's slow path reads the check mode after initialisation (ready),
 * which reads MEMALLOC_CHECK: a program's first block is checked too. (A
 * first block from calloc, realloc or memalign is not: blocks that were
 * allocated while no check mode was on are freed as they were.) The trace
 * comes first, as every traced malloc comes here: it is set only by
 * initialisation, and never with a check mode (options.c, ma_set_option). */
void *entry_malloc_slow(size_t n) {
    if (unlikely(load_relaxed(&ma_tracing))) return trace_malloc(n, ENTRY_RA());
    ready();
    if (unlikely(opt_get(OPT_CHECK))) return dbg_alloc(n, 0, DBG_MALLOC, 0, ENTRY_RA());
    if (unlikely(opt_get(OPT_SAMPLE)) && sample_due(n)) {
        void *p = dbg_sample(n, ALIGNMENT, DBG_MALLOC, ENTRY_RA());
        if (p) return p;
    }
    return ma_malloc_slow(n);
}

/* memalign's: the check mode and the trace come first, as for malloc
 * (their tc_limit of 0 made the fast path miss). */
void *entry_aligned_slow(size_t align, size_t n, void *ra) {
    if (unlikely(opt_get(OPT_CHECK))) return dbg_alloc(n, align, DBG_MALLOC, 0, ra);
    if (unlikely(load_relaxed(&ma_tracing))) return trace_alloc(n, align, 0, ra);
    return ma_aligned(align, n);
}

void *entry_malloc_miss(size_t n, struct tcache *t, size_t k) {
    void *p = tc_pop_foreign(t, k);
    return p ? p : entry_malloc_slow(n);
}

void entry_free_slow(void *p, const char *who) {
    if (unlikely(dbg_on() || guard_owns(p))) {
        dbg_free(p, DBG_MALLOC, 0, who, ENTRY_RA());
        return;
    }
    if (unlikely(load_relaxed(&ma_tracing)) && trace_freed(p)) return;
    ma_free_slow(p, who);
}

void *entry_new(size_t n, enum dbg_kind kind, size_t align, void *ra) {
    ready();
    if (unlikely(opt_get(OPT_CHECK))) return dbg_alloc(n, align, kind, 0, ra);
    if (unlikely(load_relaxed(&ma_tracing))) return trace_alloc(n, align, 0, ra);
    if (unlikely(opt_get(OPT_SAMPLE)) && align == 0 && sample_due(n)) {
        void *p = dbg_sample(n, ALIGNMENT, kind, ra);
        if (p) return p;
    }
    return align > ALIGNMENT ? ma_aligned(align, n) : ma_malloc_slow(n);
}

void entry_delete_slow(void *p, enum dbg_kind kind, size_t size) {
    const char *who = kind == DBG_NEW ? "operator delete" : "operator delete[]";
    if (unlikely(dbg_on() || guard_owns(p))) {
        dbg_free(p, kind, size, who, ENTRY_RA());
        return;
    }
    if (unlikely(load_relaxed(&ma_tracing)) && trace_freed(p)) return;
    ma_free_slow(p, who);
}

/* ---- the public API (memalloc.h) ---- */

void *memalloc(size_t size) {
    return entry_malloc(size);
}
void *defalloc(size_t n, size_t elem_size) {
    return entry_calloc(n, elem_size, RA);
}
void memfree(void *ptr) {
    entry_free(ptr, "memfree");
}
void *memresize(void *ptr, size_t new_size) {
    return entry_realloc(ptr, new_size, "memresize", RA);
}
size_t memalloc_usable_size(const void *ptr) {
    return entry_usable_size(ptr, "memalloc_usable_size", RA);
}
int memalloc_trim(size_t pad) {
    return ma_trim(pad);
}

void *memalloc_aligned(size_t alignment, size_t size) {
    if (alignment == 0 || (alignment & (alignment - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return entry_aligned(alignment, size, RA);
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
    case MEMALLOC_OPT_CHECK:
        *out = OPT_CHECK;
        return 0;
    case MEMALLOC_OPT_CHECK_STACK:
        *out = OPT_CHECK_STACK;
        return 0;
    case MEMALLOC_OPT_CHECK_QUARANTINE:
        *out = OPT_QUARANTINE;
        return 0;
    case MEMALLOC_OPT_CHECK_LEAKS:
        *out = OPT_CHECK_LEAKS;
        return 0;
    case MEMALLOC_OPT_SAMPLE:
        *out = OPT_SAMPLE;
        return 0;
    case MEMALLOC_OPT_BACKGROUND:
        *out = OPT_BACKGROUND;
        return 0;
    }
    return EINVAL;
}

int memalloc_set_option(enum memalloc_option opt, size_t value) {
    enum ma_opt o;
    if (opt_of(opt, &o) != 0) return EINVAL;
    return ma_set_option(o, value);
}

size_t memalloc_get_option(enum memalloc_option opt) {
    enum ma_opt o;
    ready();
    return opt_of(opt, &o) == 0 ? opt_get(o) : 0;
}
