/*
 * stats.c: figures about the heap (memalloc_get_stats, mallinfo's, each
 * arena's for malloc_info), the one-line summary (malloc_stats,
 * MEMALLOC_STATS=1 at exit) and the table (MEMALLOC_STATS=table); see
 * stats.h. Lines are built in stack buffers and written with write(2).
 */
#include "stats.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "counters.h"
#include "init.h"
#include "large.h"
#include "msg.h"
#include "options.h"
#include "os.h"
#include "page.h"
#include "tcache.h"

/* Per arena: the highest mapped bytes that a gathering of the figures
 * (stats_get, stats_heap) has read (relaxed). The heap keeps no high mark
 * of its regions, so this is a lower bound of its peak: malloc_info's
 * "system max" and the table's "peak seen". */
static size_t seen_mapped[MAX_ARENAS];

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
        raise_relaxed(&seen_mapped[i], a->heap.nregions * REGION_SIZE);
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

/* ---- one arena's heap (malloc_info, the table) ---- */

/* The pages of region r into h's classes. A page's first window names it
 * (r->win: the offset of its header, which lies in that window); the
 * windows and the pages' geometry change under the arena's lock, held
 * here, but for page_reclass of an idle page by its owner (tcache.c):
 * its fields are read relaxed and an inconsistent page counts nothing. */
static void count_pages(const struct region *r, struct stats_heap *h) {
    for (size_t i = 0; i < REGION_WINDOWS; i++) {
        uint32_t off = load_relaxed(&r->win[i]);
        if (!off || (off >> WINDOW_SHIFT) != i) continue;
        const struct page *g = (const struct page *)(const void *)((const char *)r + off);
        unsigned k = load_relaxed(&g->k);
        const char *start = load_relaxed(&g->start), *end = load_relaxed(&g->end);
        if (k >= NCLASSES || end < start) continue;
        size_t size = class_size[k], objects = (size_t)(end - start) / size;
        size_t used = load_relaxed(&g->used);
        size_t remote = tf_count(load_relaxed(&g->thread_free)); /* freed, not collected yet */
        used = used > remote ? used - remote : 0;
        h->cls[k].pages++;
        h->cls[k].objects += objects;
        h->cls[k].used += used < objects ? used : objects;
        i += load_relaxed(&g->nwin) ? load_relaxed(&g->nwin) - 1u : 0u;
    }
}

int stats_heap(unsigned i, struct stats_heap *out) {
    if (i >= arenas_count()) return 0;
    memset(out, 0, sizeof *out);
    struct arena *a = &ma_arenas[i];
    arena_lock(a);
    for (const struct region *r = a->heap.regions; r; r = r->next) {
        size_t open = (size_t)(load_relaxed(&r->open) - (const char *)r);
        /* and the fencepost's OS page, open too */
        out->open += open < REGION_SIZE ? open + os_page_size() : REGION_SIZE;
        count_pages(r, out);
    }
    out->regions = a->heap.nregions;
    out->mapped = out->regions * REGION_SIZE;
    for (unsigned b = 0; b < NBINS; b++) {
        const struct freelink *bin = &a->heap.bins.list[b];
        struct stats_bin *sb = &out->bins[b];
        for (const struct freelink *l = bin->next; l != bin; l = l->next) {
            size_t size = chunk_size(link_chunk(l));
            if (!sb->count || size < sb->min) sb->min = size;
            if (size > sb->max) sb->max = size;
            sb->count++;
            sb->bytes += size;
        }
        out->free_chunks += sb->count;
        out->free_bytes += sb->bytes;
    }
    arena_unlock(a);
    out->caches = load_relaxed(&a->caches);
    raise_relaxed(&seen_mapped[i], out->mapped);
    out->peak_mapped = load_relaxed(&seen_mapped[i]);
    return 1;
}

/* ---- the table (MEMALLOC_STATS=table) ---- */

/* Pad m with spaces to column col. */
static void pad_to(struct msg *m, size_t col) {
    while (m->len < col && m->len < sizeof m->buf - 1) m->buf[m->len++] = ' ';
}

/* v right-aligned in width columns. */
static void dec_right(struct msg *m, uint64_t v, size_t width) {
    struct msg t = {.len = 0};
    msg_dec(&t, v);
    if (t.len < width) pad_to(m, m->len + width - t.len);
    t.buf[t.len] = '\0';
    msg_str(m, t.buf);
}

/* "1.5 MiB (1572864)": bytes in the largest binary unit they reach, to a
 * tenth (rounded down), and exactly; "512 B" below a KiB. */
static void bytes_str(struct msg *m, uint64_t v) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        msg_dec(m, v);
        msg_str(m, " B");
        return;
    }
    unsigned u = 0;
    uint64_t unit = 1024;
    while (u + 1 < sizeof units / sizeof *units && v >= unit * 1024) {
        unit *= 1024;
        u++;
    }
    msg_dec(m, v / unit);
    msg_str(m, ".");
    msg_dec(m, v % unit * 10 / unit);
    msg_str(m, " ");
    msg_str(m, units[u]);
    msg_str(m, " (");
    msg_dec(m, v);
    msg_str(m, ")");
}

#define LABEL_COL 2
#define VALUE_COL 26

/* "  label .... " up to the value's column. */
static void row(struct msg *m, const char *label) {
    pad_to(m, LABEL_COL);
    msg_str(m, label);
    pad_to(m, VALUE_COL);
}

static void row_bytes(int fd, const char *label, uint64_t v) {
    struct msg m = {.len = 0};
    row(&m, label);
    bytes_str(&m, v);
    msg_write(&m, fd);
}

static void row_count(int fd, const char *label, uint64_t v) {
    struct msg m = {.len = 0};
    row(&m, label);
    msg_dec(&m, v);
    msg_write(&m, fd);
}

/* Resident bytes now (/proc/self/statm's second field, in pages), or 0
 * if it cannot be read; read with open and read, nothing allocated. */
static size_t rss_now(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *p = buf;
    while (*p && *p != ' ') p++;
    size_t pages = 0;
    for (p++; *p >= '0' && *p <= '9'; p++) pages = pages * 10 + (size_t)(*p - '0');
    return pages * os_page_size();
}

/* The highest resident bytes of the process (getrusage), or 0. */
static size_t rss_peak(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0) return 0;
    return (size_t)ru.ru_maxrss * 1024;
}

void stats_print_table(int fd) {
    struct memalloc_stats s;
    stats_get(&s, NULL);
    /* every arena's pages and caches: one heap's figures at a time */
    struct stats_class cls[NCLASSES];
    memset(cls, 0, sizeof cls);
    size_t caches = 0, open = 0, peak_mapped = 0;
    struct stats_heap h;
    for (unsigned i = 0; stats_heap(i, &h); i++) {
        for (unsigned k = 0; k < NCLASSES; k++) {
            cls[k].pages += h.cls[k].pages;
            cls[k].objects += h.cls[k].objects;
            cls[k].used += h.cls[k].used;
        }
        caches += h.caches;
        open += h.open;
        peak_mapped += h.peak_mapped;
    }

    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: heap statistics");
    msg_write(&m, fd);
    row_count(fd, "allocations", s.allocs);
    row_count(fd, "frees", s.frees);
    row_bytes(fd, "in use", s.in_use);
    row_bytes(fd, "in use + cached, peak", s.peak_in_use);
    row(&m, "heap mapped");
    bytes_str(&m, s.heap_mapped);
    msg_str(&m, ", ");
    msg_dec(&m, s.regions);
    msg_str(&m, s.regions == 1 ? " region, " : " regions, ");
    msg_dec(&m, s.arenas);
    msg_str(&m, s.arenas == 1 ? " arena" : " arenas");
    msg_write(&m, fd);
    row_bytes(fd, "heap mapped, peak seen", peak_mapped);
    row_bytes(fd, "heap accessible", open);
    row_bytes(fd, "heap in use", s.heap_in_use);
    row(&m, "free in heap chunks");
    bytes_str(&m, s.heap_free);
    msg_str(&m, " in ");
    msg_dec(&m, s.heap_free_blocks);
    msg_str(&m, s.heap_free_blocks == 1 ? " chunk" : " chunks");
    msg_write(&m, fd);
    row_bytes(fd, "  of which at the tops", s.top_free);
    row_bytes(fd, "free in thread caches", s.thread_cached);
    row_bytes(fd, "free in orphan pages", s.arena_cached);
    row_count(fd, "thread caches", caches);
    row(&m, "mmapped blocks");
    msg_dec(&m, s.mmapped_blocks);
    msg_str(&m, ", ");
    bytes_str(&m, s.mmapped_bytes);
    msg_write(&m, fd);
    row(&m, "mmapped blocks, peak");
    msg_dec(&m, s.peak_mmapped_blocks);
    msg_str(&m, ", ");
    bytes_str(&m, s.peak_mmapped_bytes);
    msg_write(&m, fd);
    row_count(fd, "mmapped over the run", s.total_mmapped_blocks);
    row(&m, "mappings cached");
    msg_dec(&m, s.mmap_cached_blocks);
    msg_str(&m, ", ");
    bytes_str(&m, s.mmap_cached_bytes);
    msg_write(&m, fd);
    size_t rss = rss_now(), rss_max = rss_peak();
    if (rss_max < rss) rss_max = rss; /* the kernel updates its high mark lazily */
    if (rss) row_bytes(fd, "rss", rss);
    if (rss_max) row_bytes(fd, "rss, peak", rss_max);

    /* the classes that have pages now */
    msg_str(&m, "memalloc: size classes");
    msg_write(&m, fd);
    msg_str(&m, "   class    size   pages   objects      used   used%  free");
    msg_write(&m, fd);
    for (unsigned k = 0; k < NCLASSES; k++) {
        const struct stats_class *c = &cls[k];
        if (!c->pages) continue;
        dec_right(&m, k, 8);
        dec_right(&m, class_size[k], 8);
        dec_right(&m, c->pages, 8);
        dec_right(&m, c->objects, 10);
        dec_right(&m, c->used, 10);
        /* percent to a tenth, rounded down */
        uint64_t tenths = c->objects ? (uint64_t)c->used * 1000 / c->objects : 0;
        dec_right(&m, tenths / 10, 5);
        msg_str(&m, ".");
        msg_dec(&m, tenths % 10);
        msg_str(&m, "%  ");
        bytes_str(&m, (uint64_t)(c->objects - c->used) * class_size[k]);
        msg_write(&m, fd);
    }
}

void stats_exit_report(void) {
    if (!ready()) return;
    size_t how = opt_get(OPT_STATS);
    if (how == STATS_TABLE)
        stats_print_table(init_stats_fd());
    else if (how)
        memalloc_print_stats(init_stats_fd());
}
