/*
 * options.h: the tunables, one table (options.c). Each has a MEMALLOC_*
 * environment variable read once at initialisation, a default and a range.
 * Values are read with relaxed atomics: mallopt may change them at any time.
 */
#ifndef MEMALLOC_OPTIONS_H
#define MEMALLOC_OPTIONS_H

#include <stddef.h>

enum ma_opt {
    OPT_MMAP_THRESHOLD, /* requests >= this many bytes get their own mapping */
    OPT_TRIM_THRESHOLD, /* dirty bytes at a region's top before it is purged */
    OPT_STATS,          /* print the summary at exit */
    OPT_TCACHE,         /* 1: threads keep caches of small blocks */
    OPT_COUNT
};

extern size_t ma_options[OPT_COUNT];

static inline size_t opt_get(enum ma_opt o) {
    return __atomic_load_n(&ma_options[o], __ATOMIC_RELAXED);
}

/* Read every MEMALLOC_* variable; a bad value is reported and ignored. */
void options_init(void);
/* Set an option; 0, or EINVAL if value is out of its range. */
int options_set(enum ma_opt o, size_t value);
/* Largest mmap threshold: half a heap region, as glibc's 32 MiB. */
#define MMAP_THRESHOLD_MAX ((size_t)32 << 20)
/* Largest trim threshold: "never purge a top". */
#define TRIM_THRESHOLD_MAX ((size_t)1 << 46)

#endif
