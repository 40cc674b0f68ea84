/*
 * stats.h: figures about the whole heap, gathered from every layer:
 * memalloc_get_stats and memalloc_print_stats (memalloc.h), the figures
 * of mallinfo, and the summary at exit. Read while other threads run:
 * each figure is exact under its own lock, not all at one instant.
 */
#ifndef MEMALLOC_STATS_H
#define MEMALLOC_STATS_H

#include <stddef.h>

#include "memalloc.h"

/* memalloc_get_stats, and the usable bytes of the mapped blocks in use
 * (part of s->in_use). */
void stats_get(struct memalloc_stats *s, size_t *mapped_in_use);
/* Print the summary if MEMALLOC_STATS asked for it (at exit). */
void stats_exit_report(void);

#endif
