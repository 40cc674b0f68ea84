/* A synthetic trace (docs/trace-format.md) written by a writer of its own:
 * every record type, the records of three threads interleaved in flush
 * order (a FREE before its ALLOC, a STACK after the first ALLOC naming
 * it), addresses reused, stacks of real return addresses (this program's
 * functions and libc's, with this process's /proc/self/maps), an unknown
 * record type and records longer than their known fields. The generator
 * keeps what it wrote, and what a report must compute from it. */
#ifndef TRACE_GEN_H
#define TRACE_GEN_H

#include <stddef.h>
#include <stdint.h>

#define GEN_THREADS   3
#define GEN_STACKS    5
#define GEN_MAX_DEPTH 4
#define GEN_SAMPLE    4096
#define GEN_BUCKETS   49

struct gen_alloc {
    uint64_t t, addr, size, weight;
    uint32_t stack, tid;
    uint64_t seq;
    int64_t free; /* index in frees, or -1 */
};

struct gen_free {
    uint64_t t, addr;
    uint32_t tid, flags;
    uint64_t seq;
    int64_t alloc; /* index in allocs */
};

struct gen_heap {
    uint64_t t, in_use, rss, heap_mapped, heap_free, mmapped, cached, purged, allocs, frees,
        peak_in_use;
};

struct gen_trace {
    /* what was written, each array in time order */
    struct gen_alloc *allocs;
    size_t nallocs;
    struct gen_free *frees;
    size_t nfrees;
    struct gen_heap *heaps;
    size_t nheaps;
    uint32_t depth[GEN_STACKS + 1]; /* stacks 1..GEN_STACKS */
    uint64_t frames[GEN_STACKS + 1][GEN_MAX_DEPTH];
    uint64_t classes_t[16], regions_t[16];
    size_t nclasses, nregions;
    uint64_t sites_calls[GEN_STACKS + 1],
        sites_bytes[GEN_STACKS + 1]; /* the last SITES, by stack */
    uint64_t sizes_calls[GEN_BUCKETS], sizes_bytes[GEN_BUCKETS];
    uint64_t end_t, end_allocs, end_frees, end_peak_rss, end_in_use;
    const char *strings[4];
    int nstrings;
    /* what a report computes */
    size_t peak;                        /* index in heaps of the peak */
    uint64_t peak_live[GEN_STACKS + 1]; /* weight of samples live at the peak, by stack */
    uint64_t leaked[GEN_STACKS + 1];    /* weight never freed, by stack */
    uint64_t temporary[GEN_STACKS + 1]; /* temporary frees, by stack */
    uint64_t lifetimes[64];             /* freed samples by log2 bucket of ns */
    size_t free_before_alloc;           /* FREEs written before their ALLOC */
    size_t stack_after_alloc;           /* STACKs written after an ALLOC naming them */
    /* where the file's records end, for truncated copies */
    size_t bytes;
};

#define GEN_NO_END      1 /* no END record: the program did not end normally */
#define GEN_EXEC_BEFORE 2 /* first, the records of a program the process ran before an exec */

/* Writes the trace of process PID (parent PPID) to PATH, with FLAGS
 * (GEN_*); fills *G with what the last program's records hold. Returns 0,
 * or -1 with errno set. */
int gen_write(const char *path, int flags, uint32_t pid, uint32_t ppid, struct gen_trace *g);

/* The earlier program's arguments (GEN_EXEC_BEFORE), joined by spaces. */
extern const char gen_exec_before_args[];

void gen_free_trace(struct gen_trace *g);

/* The functions whose addresses the stacks hold, for checking names. */
extern const char *const gen_frame_funcs[GEN_STACKS + 1][GEN_MAX_DEPTH];
extern const unsigned gen_frame_offsets[GEN_STACKS + 1][GEN_MAX_DEPTH];

#endif
