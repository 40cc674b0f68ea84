/* Reading a trace (docs/trace-format.md) into memory: every record's
 * fields in arrays, each array ordered by time (records of different
 * threads come in the order of their flushes), and each sampled ALLOC
 * matched with its FREE. Of a process that exec'd, the records of its
 * last program (after the last INFO). */
#ifndef MEMALLOC_CLI_TRACE_READ_H
#define MEMALLOC_CLI_TRACE_READ_H

#include <stddef.h>
#include <stdint.h>

enum {
    TR_INFO = 1,
    TR_MAPS = 2,
    TR_STACK = 3,
    TR_ALLOC = 4,
    TR_FREE = 5,
    TR_HEAP = 6,
    TR_CLASSES = 7,
    TR_REGIONS = 8,
    TR_SITES = 9,
    TR_SIZES = 10,
    TR_END = 11,
    TR_EVENTS = 12,
    TR_AGGREGATES = 13,
    TR_ARENAS = 14,
};

/* No free matched: the block was still live when the trace ends. */
#define TR_NOT_FREED UINT32_MAX

struct tr_info {
    int present;
    uint32_t version, pid, ppid, page_size;
    uint64_t sample_bytes, start_real, start_mono;
    uint32_t nstrings;
    char **strings; /* the executable's path, then argv[0], argv[1]... */
};

struct tr_maps {
    uint64_t t;
    char *text; /* NUL-terminated */
};

struct tr_stack {
    uint32_t id, depth;
    uint64_t *frames; /* the program's call into the allocator first */
};

struct tr_alloc {
    uint64_t t, addr, size, weight;
    uint32_t stack, tid;
    uint64_t seq;
    uint32_t free; /* index in trace.frees, or TR_NOT_FREED */
};

struct tr_free {
    uint64_t t, addr;
    uint32_t tid, flags;
    uint64_t seq;
    uint32_t alloc; /* index in trace.allocs, or TR_NOT_FREED (no sampled ALLOC) */
};

#define TR_FREE_TEMPORARY 1u

struct tr_heap {
    uint64_t t, in_use, rss, heap_mapped, heap_free, mmapped, cached, purged, allocs, frees,
        peak_in_use;
};

struct tr_class {
    uint32_t size, page_bytes;
    uint64_t pages, objects, used;
};

struct tr_classes {
    uint64_t t;
    uint32_t count;
    struct tr_class *v;
};

/* ARENAS: each arena's heap, with each HEAP record. */
struct tr_arena {
    uint64_t mapped, free_chunks, free_objects, threads;
};

struct tr_arenas {
    uint64_t t;
    uint32_t count;
    struct tr_arena *v;
};

struct tr_region {
    uint64_t base;
    uint32_t ngranules;
    uint8_t *g; /* ngranules × {used, free, purged}, each out of 255 */
};

struct tr_regions {
    uint64_t t;
    uint32_t count, granule;
    struct tr_region *v;
};

struct tr_site {
    uint64_t ra, calls, bytes;
};

struct tr_sites {
    int present;
    uint64_t t;
    uint32_t count;
    struct tr_site *v;
};

struct tr_bucket {
    uint64_t calls, bytes;
};

struct tr_sizes {
    int present;
    uint64_t t;
    uint32_t count;
    struct tr_bucket *v;
};

/* AGGREGATES: samples that were only counted (freed before any HEAP
 * record came in their life), per stack; cumulative, the latest kept. */
#define TR_LIFETIMES 65 /* bucket 0: 0 ns; b: [2^(b-1), 2^b) ns */

struct tr_agg {
    uint32_t stack;
    uint64_t samples, weight, temps, temp_calls;
};

struct tr_aggregates {
    int present;
    uint64_t t;
    uint64_t lifetimes[TR_LIFETIMES];
    uint32_t count;
    struct tr_agg *v;
};

struct tr_end {
    int present;
    uint64_t t, allocs, frees, peak_in_use, peak_rss, in_use;
};

struct trace {
    struct tr_info info;
    struct tr_maps *maps;
    size_t nmaps;
    struct tr_stack *stacks; /* in the file's order; trace_stack() finds one by id */
    size_t nstacks;
    struct tr_alloc *allocs; /* by time */
    size_t nallocs;
    struct tr_free *frees; /* by time */
    size_t nfrees;
    struct tr_heap *heaps; /* by time */
    size_t nheaps;
    struct tr_classes *classes; /* by time */
    size_t nclasses;
    struct tr_arenas *arenas; /* by time */
    size_t narenas;
    struct tr_regions *regions; /* by time */
    size_t nregions;
    struct tr_sites sites;           /* the latest SITES record (the most complete) */
    struct tr_sizes sizes;           /* the latest SIZES record */
    struct tr_aggregates aggregates; /* the latest AGGREGATES record */
    struct tr_end end;
    /* The programs the process ran before the last one, which replaced
     * them by exec (each began with an INFO: the records kept are those
     * after the last INFO), oldest first: their arguments joined by
     * spaces. */
    char **programs;
    size_t nprograms;
    uint64_t last_t;     /* the latest time of any record */
    size_t records;      /* records read */
    size_t unknown;      /* records of a type this reader does not know (skipped) */
    size_t malformed;    /* records too short for their fields (skipped) */
    size_t dup_stacks;   /* STACK records whose id came before (the first one kept) */
    size_t orphan_frees; /* FREE records with no sampled ALLOC of their block */
    int cut_short;       /* the last record was cut short */
    int truncated;       /* cut short, or no END: the program did not end normally */
    /* id -> index in stacks (open addressing) */
    uint32_t *stack_ids;
    uint32_t *stack_idx;
    size_t stack_cap;
};

/* Reads the trace at PATH into *T. On failure returns -1 and puts one line
 * (the problem, without the file's name) in ERR. */
int trace_read(const char *path, struct trace *t, char *err, size_t errlen);

/* Reads a trace from memory (the whole file). */
int trace_parse(const unsigned char *buf, size_t len, struct trace *t, char *err, size_t errlen);

/* The stack of that id, or NULL. */
const struct tr_stack *trace_stack(const struct trace *t, uint32_t id);

void trace_free(struct trace *t);

#endif
