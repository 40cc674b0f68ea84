/*
 * stats.c: figures about the heap (memalloc_get_stats, mallinfo) and the
 * one-line summary (malloc_stats, MEMALLOC_STATS=1 at exit).
 */
#include "stats.h"

#include "error.h"
#include "heap.h"
#include "large.h"
#include "memalloc.h"
#include "tcache.h"

void memalloc_get_stats(struct memalloc_stats *out) {
    struct large_stats ls;
    struct memalloc_stats s = {0};
    struct tc_sums ts;
    unsigned mcached;

    size_t orphan_free = 0;
    tc_sum(&ts);
    pthread_mutex_lock(&large_lock);
    large_get_stats(&ls);
    s.mmap_cached_bytes = large_cache_bytes(&mcached);
    s.mmap_cached_blocks = mcached;
    s.allocs = __atomic_load_n(&ma_counters.allocs, __ATOMIC_RELAXED) + ts.allocs;
    s.frees = __atomic_load_n(&ma_counters.frees, __ATOMIC_RELAXED) + ts.frees;
    size_t out_of_engine = __atomic_load_n(&ma_counters.in_use, __ATOMIC_RELAXED);
    s.peak_in_use = __atomic_load_n(&ma_counters.peak, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&large_lock);

    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        pthread_mutex_lock(&a->lock);
        for (unsigned b = 0; b < NBINS; b++) { /* (an arena counted is set up) */
            for (struct freelink *l = a->bins[b].next; l != &a->bins[b]; l = l->next) {
                s.heap_free += chunk_size(link_chunk(l));
                s.heap_free_blocks++;
            }
        }
        for (struct region *r = a->regions; r; r = r->next) {
            struct chunk *fence = region_fence(r);
            if (!pinuse(fence)) s.top_free += fence->prev_foot;
        }
        s.regions += a->nregions;
        s.heap_mapped += a->nregions * REGION_SIZE;
        s.heap_in_use += a->heap_in_use;
        orphan_free += tc_orphan_free(a);
        pthread_mutex_unlock(&a->lock);
    }
    /* out of the engine: chunks in use, and whole pages; in the pages,
     * ts.live bytes are the program's, the rest is free */
    size_t chunks = out_of_engine > ts.pages ? out_of_engine - ts.pages : 0;
    size_t page_free = ts.pages > ts.live ? ts.pages - ts.live : 0;
    s.in_use = chunks + ts.live;
    s.arena_cached = orphan_free < page_free ? orphan_free : page_free;
    s.thread_cached = page_free - s.arena_cached;
    s.arenas = arenas_count();
    s.mmapped_blocks = ls.blocks;
    s.mmapped_bytes = ls.bytes;
    s.peak_mmapped_blocks = ls.peak_blocks;
    s.peak_mmapped_bytes = ls.peak_bytes;
    s.total_mmapped_blocks = ls.total_blocks;
    *out = s;
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
    m.buf[m.len++] = '\n';
    os_write(fd, m.buf, m.len);
}
