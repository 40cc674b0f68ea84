/* What a report shows, computed from a trace (trace_read.h): the peak,
 * and per call site the sampled bytes live at the peak, leaked and
 * temporary, with the exact calls of the last SITES record. */
#ifndef MEMALLOC_CLI_ANALYSIS_H
#define MEMALLOC_CLI_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "trace_read.h"

#define AN_NONE SIZE_MAX

/* A call site: the first frame of the sampled stacks (the program's call
 * into the allocator), or a SITES record's return address. 0: no stack. */
struct an_site {
    uint64_t ra;
    uint64_t peak_bytes, peak_samples; /* sampled, live at the peak (weights) */
    uint64_t leak_bytes, leak_samples; /* sampled, never freed (weights) */
    uint64_t temp_samples;             /* sampled, freed with the temporary flag */
    double temp_calls;                 /* estimated temporary calls (weight / size) */
    uint64_t sampled_bytes, samples;   /* every sample (weights) */
    uint64_t calls, bytes;             /* exact: the last SITES record */
};

struct analysis {
    size_t peak_heap;       /* index in heaps of the peak (highest in_use), or AN_NONE */
    uint64_t peak_t;        /* the peak's time (from samples when there is no HEAP record) */
    uint64_t peak_in_use;   /* HEAP's in_use at the peak (or the sampled live bytes) */
    uint64_t peak_rss;      /* END's peak_rss, else the highest HEAP rss */
    uint64_t run_time;      /* END's t, else the latest time in the trace */
    uint64_t allocs, frees; /* END's, else the last HEAP's */
    int have_calls;
    uint64_t in_use_at_end; /* END's in_use */
    struct an_site *sites;  /* by ra */
    size_t nsites;
    uint64_t peak_live; /* sum of the sites' peak_bytes */
    uint64_t leak_bytes, leak_samples;
    uint64_t temp_samples;
    double temp_calls;
    uint64_t samples;       /* every sample: those written one by one and those only counted */
    uint64_t lifetimes[65]; /* freed samples: bucket 0: 0 ns; b: [2^(b-1), 2^b) ns */
    size_t classes_at_peak; /* index in classes nearest the peak, or AN_NONE */
    size_t regions_at_peak; /* index in regions nearest the peak, or AN_NONE */
    size_t arenas_at_peak;  /* index in arenas nearest the peak, or AN_NONE */
};

void analyze(const struct trace *t, struct analysis *a);

/* The site of that return address, or NULL. */
const struct an_site *an_site_of(const struct analysis *a, uint64_t ra);

/* The first frame of an ALLOC's stack (0 when it has none). */
uint64_t an_alloc_site(const struct trace *t, const struct tr_alloc *al);

/* Whether the sampled allocation was live at the peak. */
int an_live_at_peak(const struct trace *t, const struct analysis *a, const struct tr_alloc *al);

void analysis_free(struct analysis *a);

#endif
