/*
 * options.h: the tunables, one table (options.c). Each has a MEMALLOC_*
 * environment variable read once at initialisation, a default and a range.
 * Values are read with relaxed atomics: mallopt may change them at any time.
 */
#ifndef MEMALLOC_OPTIONS_H
#define MEMALLOC_OPTIONS_H

#include <stddef.h>

#include "util.h"

enum ma_opt {
    OPT_MMAP_THRESHOLD, /* requests >= this many bytes get their own mapping */
    OPT_TRIM_THRESHOLD, /* dirty bytes at a region's top before it is purged */
    OPT_STATS,          /* at exit: 1 (STATS_SUMMARY) the summary line, 2 (STATS_TABLE) the table */
    OPT_TCACHE,         /* 1: threads keep caches of small blocks */
    OPT_PURGE_DELAY,    /* ms from a free that makes a purge due to the purge */
    OPT_HUGEPAGE,       /* malloc'd blocks of at least this many bytes ask for huge pages */
    OPT_CHECK,          /* check mode: 0 none, 1 canaries and quarantine, 2 guard pages */
    OPT_CHECK_STACK,    /* frames recorded per allocation and free in check modes */
    OPT_CHECK_UNDER,    /* level 2: the guard page before each block, not after */
    OPT_QUARANTINE,     /* bytes of freed blocks held back in check modes; 0: auto */
    OPT_CHECK_LEAKS,    /* check modes: list the blocks not freed at exit */
    OPT_SAMPLE,         /* about one allocation in this many behind a guard page; 0: none */
    OPT_BACKGROUND,     /* 1: a thread runs the purge passes of a large heap that went idle */
    OPT_TRACE_SAMPLE,   /* MEMALLOC_TRACE: one allocation sampled per this many bytes */
    OPT_COUNT
};

extern MA_HIDDEN size_t ma_options[OPT_COUNT];
extern MA_HIDDEN unsigned ma_options_fixed; /* bit o: option o was set (environment or call) */
extern MA_HIDDEN size_t ma_dyn_mmap;
/* 1 once a check mode was set (MEMALLOC_CHECK or a call): checked blocks
 * may be out from then on, even after the mode is set back to 0. */
extern MA_HIDDEN int ma_check_gap;  /* a check mode was turned off after one was on */
extern MA_HIDDEN int ma_check_ever; /* a check mode was on at some time */
/* 1 while MEMALLOC_TRACE names a file and no check mode is on: every
 * allocation then takes the slow path, where the trace counts it
 * (trace.h); 0 again if the trace cannot be written. */
extern MA_HIDDEN int ma_tracing;

static inline size_t opt_get(enum ma_opt o) {
    return load_relaxed(&ma_options[o]);
}
static inline int opt_fixed(enum ma_opt o) {
    return (load_relaxed(&ma_options_fixed) >> o) & 1;
}

/*
 * The mmap threshold: requests of at least mmap_threshold() bytes get a
 * mapping of their own. Unless a program (or the environment) set it,
 * it is dynamic, as glibc's: freeing a mapped block of up to 32 MiB
 * raises it to that block's size, and the trim threshold to twice that,
 * so that a program that allocates and frees such blocks over and over
 * gets them from the heap, whose pages are reused, instead of a new
 * mapping whose pages fault in every time. It starts at 4 MiB, not at
 * glibc's 128 KiB: a program's first buffers of 128 KiB to 4 MiB come
 * from the heap too, rather than each being faulted in and unmapped until
 * the frees have raised the threshold.
 *
 * mmap_threshold_grow() is where a block that realloc grows, and must
 * move, moves to a mapping instead, which grows by mremap without a copy
 * (in the heap every move copies it and leaves a hole of its old size):
 * from glibc's 128 KiB (MMAP_GROW_MIN) or the raised threshold, unless
 * the threshold was set.
 */
#define MMAP_GROW_MIN ((size_t)128 << 10)
static inline size_t mmap_threshold(void) {
    size_t t = opt_get(OPT_MMAP_THRESHOLD);
    if (opt_fixed(OPT_MMAP_THRESHOLD)) return t;
    size_t d = load_relaxed(&ma_dyn_mmap);
    return d > t ? d : t;
}
static inline size_t mmap_threshold_grow(void) {
    if (opt_fixed(OPT_MMAP_THRESHOLD)) return opt_get(OPT_MMAP_THRESHOLD);
    size_t d = load_relaxed(&ma_dyn_mmap);
    return d > MMAP_GROW_MIN ? d : MMAP_GROW_MIN;
}
static inline size_t trim_threshold(void) {
    size_t t = opt_get(OPT_TRIM_THRESHOLD);
    if (opt_fixed(OPT_TRIM_THRESHOLD) || opt_fixed(OPT_MMAP_THRESHOLD)) return t;
    size_t d = 2 * load_relaxed(&ma_dyn_mmap);
    return d > t ? d : t;
}
/* A mapped block of size bytes was freed: raise the dynamic thresholds. */
void options_raise_mmap_threshold(size_t size);

/* OPT_STATS' values; MEMALLOC_STATS=table is STATS_TABLE. */
#define STATS_SUMMARY 1
#define STATS_TABLE   2

/* Read every MEMALLOC_* variable; a bad value is reported and ignored. */
void options_init(void);
/* Set an option; 0, or EINVAL if value is out of its range. */
int options_set(enum ma_opt o, size_t value);
/* Largest mmap threshold: half a heap region, as glibc's 32 MiB. */
#define MMAP_THRESHOLD_MAX ((size_t)32 << 20)
/* Largest trim threshold: "never purge a top". */
#define TRIM_THRESHOLD_MAX ((size_t)1 << 46)
/* Most frames a check mode records for one call (MEMALLOC_CHECK_STACK). */
#define STACK_DEPTH_MAX 64

#endif
