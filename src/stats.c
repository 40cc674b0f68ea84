/*
 * stats.c: figures about the heap (memalloc_get_stats, mallinfo's) and the
 * one-line summary (malloc_stats, MEMALLOC_STATS=1 at exit); see stats.h.
 */
#include "stats.h"

#include "arena.h"
#include "counters.h"
#include "init.h"
#include "large.h"
#include "msg.h"
#include "options.h"
#include "page.h"
#include "tcache.h"

void stats_get(struct memalloc_stats *out, size_t *mapped_in_use) {
    struct memalloc_stats s = {0};
    struct tc_sums ts;
    struct large_stats ls;
    tc_sum(&ts);
    size_t pages = pages_total_bytes();
    large_stats(&ls);
    s.allocs = load_relaxed(&ma_counters.allocs) + ts.allocs;
    s.frees = load_relaxed(&ma_counters.frees) + ts.frees;
    size_t out_of_engine = load_relaxed(&ma_counters.in_use);
    s.peak_in_use = load_relaxed(&ma_counters.peak);

    size_t orphan_free = 0;
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        struct heap_free_stats hs;
        arena_lock(a);
        heap_free_stats(&a->heap, &hs);
        s.heap_free += hs.bytes;
        s.heap_free_blocks += hs.chunks;
        s.top_free += hs.top_bytes;
        s.regions += a->heap.nregions;
        s.heap_mapped += a->heap.nregions * REGION_SIZE;
        s.heap_in_use += a->heap.in_use;
        orphan_free += orphans_free_bytes(&a->orphans);
        arena_unlock(a);
    }
    /* out of the engine: chunks in use, mapped blocks, and whole pages;
     * of the pages, ts.live bytes are the program's, the rest is free */
    size_t chunks = out_of_engine > pages ? out_of_engine - pages : 0;
    size_t page_free = pages > ts.live ? pages - ts.live : 0;
    s.in_use = chunks + ts.live;
    s.arena_cached = orphan_free < page_free ? orphan_free : page_free;
    s.thread_cached = page_free - s.arena_cached;
    s.arenas = arenas_count();
    s.mmapped_blocks = ls.blocks;
    s.mmapped_bytes = ls.bytes;
    s.peak_mmapped_blocks = ls.peak_blocks;
    s.peak_mmapped_bytes = ls.peak_bytes;
    s.total_mmapped_blocks = ls.total_blocks;
    s.mmap_cached_blocks = ls.cached_blocks;
    s.mmap_cached_bytes = ls.cached_bytes;
    *out = s;
    if (mapped_in_use) *mapped_in_use = ls.in_use;
}

void memalloc_get_stats(struct memalloc_stats *out) {
    stats_get(out, NULL);
}

static void field(struct msg *m, const char *name, uint64_t v) {
    msg_str(m, " ");
    msg_str(m, name);
    msg_str(m, "=");
    msg_dec(m, v);
}

void memalloc_print_stats(int fd) {
    struct memalloc_stats s;
    memalloc_get_stats(&s);
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc:");
    field(&m, "allocs", s.allocs);
    field(&m, "frees", s.frees);
    field(&m, "in_use", s.in_use);
    field(&m, "peak_in_use", s.peak_in_use);
    field(&m, "regions", s.regions);
    field(&m, "heap_in_use", s.heap_in_use);
    field(&m, "heap_free", s.heap_free);
    field(&m, "mmapped_blocks", s.mmapped_blocks);
    field(&m, "peak_mmapped_blocks", s.peak_mmapped_blocks);
    field(&m, "total_mmapped_blocks", s.total_mmapped_blocks);
    field(&m, "thread_cached", s.thread_cached);
    field(&m, "arena_cached", s.arena_cached);
    field(&m, "arenas", s.arenas);
    msg_write(&m, fd);
}

void stats_exit_report(void) {
    if (ready() && opt_get(OPT_STATS)) memalloc_print_stats(init_stats_fd());
}
