/*
 * stats.h: figures about the whole heap, gathered from every layer:
 * memalloc_get_stats and memalloc_print_stats (memalloc.h), the figures
 * of mallinfo and malloc_info, the summary and the table at exit. Read
 * while other threads run: each figure is exact under its own lock, not
 * all at one instant.
 */
#ifndef MEMALLOC_STATS_H
#define MEMALLOC_STATS_H

#include <stddef.h>

#include "bins.h"
#include "memalloc.h"
#include "sizeclass.h"

/* memalloc_get_stats, and the usable bytes of the mapped blocks in use
 * (part of s->in_use). */
void stats_get(struct memalloc_stats *s, size_t *mapped_in_use);

/* The pages of one size class: how many, the objects they hold, and those
 * in use (objects other threads keep in their caches for reuse count as in
 * use; pages that threads own are read without their owners' lock, so a
 * figure may lag a page's latest malloc or free). */
struct stats_class {
    size_t pages, objects, used;
};
/* The free chunks of one bin: how many, their bytes, the smallest and the
 * largest. */
struct stats_bin {
    size_t count, bytes, min, max;
};
/* One arena's heap, gathered under its lock. */
struct stats_heap {
    size_t regions;     /* regions mapped */
    size_t mapped;      /* their bytes (address space) */
    size_t peak_mapped; /* the highest mapped that the statistics have seen */
    size_t open;        /* bytes of them accessible (region.h's open mark) */
    size_t caches;      /* live thread caches that take their pages here */
    struct stats_class cls[NCLASSES];
    struct stats_bin bins[NBINS];
    size_t free_chunks, free_bytes; /* the bins' sums */
};
/* Arena i's figures into *out; 0 (out untouched) if there is no arena i. */
int stats_heap(unsigned i, struct stats_heap *out);

/* The summary line or the table (MEMALLOC_STATS=1 or table), if asked
 * for, on the stderr the process started with (at exit). */
void stats_exit_report(void);
/* The table (MEMALLOC_STATS=table) on fd. */
void stats_print_table(int fd);

#endif
