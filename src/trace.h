/*
 * trace.h: MEMALLOC_TRACE=FILE, the trace that `memalloc report` reads
 * (its format: docs/trace-format.md).
 *
 * While a trace is on (ma_tracing, options.h) the thread caches' limit is
 * 0, so every allocation misses malloc's fast path and comes here from
 * the entry points: the trace counts it (per call site, per size) and
 * allocates it as the engine would. About one allocation per
 * MEMALLOC_TRACE_SAMPLE bytes is sampled: recorded with its whole stack,
 * and allocated off its page's grid (16 bytes into an object), or, when
 * no object holds it, as a chunk or a mapped block, never as an object of
 * a page, so that its free takes the slow path too and reaches
 * trace_freed. The free fast path is unchanged: unsampled frees cost
 * nothing. The entry points hand every pointer that misses their fast
 * paths to trace_freed, trace_realloc and trace_usable while ma_tracing is
 * set, which stays set as long as off-grid blocks may be live (after the
 * trace's end at exit, in a fork's child whose trace failed to open):
 * only the trace knows where their objects start.
 *
 * Nothing here allocates from the heap: each thread's records go to a
 * buffer of its own (mapped), written out whole with one write(2), and
 * the tables are mapped. An allocation that the trace's own work causes
 * (libunwind's, while it walks a stack) is served untraced.
 */
#ifndef MEMALLOC_TRACE_H
#define MEMALLOC_TRACE_H

#include <stddef.h>

/* malloc (trace_alloc's case of align 0, not zeroed). */
void *trace_malloc(size_t n, void *ra);
/* operator new, memalign and its kin (align: 0 or a power of
 * two), calloc's total (zero: the block is zeroed); ra: the return address
 * of the program's call. NULL (ENOMEM) on failure. */
void *trace_alloc(size_t n, size_t align, int zero, void *ra);
/* calloc: trace_alloc of n * size bytes, zeroed (ENOMEM on overflow). */
void *trace_calloc(size_t n, size_t size, void *ra);
/* realloc (ma_realloc's contract). */
void *trace_realloc(void *p, size_t n, const char *who, void *ra);
/* p is about to be freed by the program (a free that missed the fast
 * path): its FREE record if it was sampled; 1 if the trace freed it (an
 * off-grid block), 0 if the caller frees it as usual. */
int trace_freed(void *p);
/* malloc_usable_size of p if it is an off-grid block, else 0. */
size_t trace_usable(const void *p);
/* At exit: the last figures, every thread's records, and END. */
void trace_exit(void);

#endif
