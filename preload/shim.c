/*
 * shim.c: the libc names, bound to the engine. The only file that defines
 * malloc, free and the rest; each is a thin wrapper that adds glibc 2.36's
 * contract where it differs from the engine's (argument checks, errno
 * codes, page rounding). Built into libmemalloc.so for LD_PRELOAD, and
 * linked into the contract tests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "entry.h"
#include "check.h"
#include "chunk.h"
#include "memalloc.h"
#include "options.h"
#include "stats.h"

#define EXPORT __attribute__((visibility("default")))

static int pow2(size_t a) {
    return a && !(a & (a - 1));
}

#define RA __builtin_return_address(0)

EXPORT void *malloc(size_t size) {
    return entry_malloc(size);
}
EXPORT void free(void *ptr) {
    entry_free(ptr, "free");
}
EXPORT void *calloc(size_t n, size_t size) {
    return entry_calloc(n, size, RA);
}
EXPORT void *realloc(void *ptr, size_t size) {
    return entry_realloc(ptr, size, "realloc", RA);
}

EXPORT void *reallocarray(void *ptr, size_t n, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return entry_realloc(ptr, total, "reallocarray", RA);
}

/* posix_memalign reports by its result and keeps errno, which only the
 * slow path can set: it is saved there, out of the fast path's way. */
static __attribute__((noinline)) int posix_memalign_slow(void **memptr, size_t alignment,
                                                         size_t size, void *ra) {
    int saved = errno;
    void *p = entry_aligned_slow(alignment, size, ra);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
    if (!pow2(alignment) || alignment % sizeof(void *)) return EINVAL;
    void *p = ma_aligned_fast(alignment, size);
    if (unlikely(p == NULL)) return posix_memalign_slow(memptr, alignment, size, RA);
    *memptr = p;
    return 0;
}

/* glibc 2.36 rounds an alignment that is not a power of two up to one,
 * in memalign and aligned_alloc alike. */
EXPORT void *memalign(size_t alignment, size_t size) {
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!pow2(alignment)) {
        size_t a = ALIGNMENT;
        while (a < alignment) a <<= 1;
        alignment = a;
    }
    return entry_aligned(alignment, size, RA);
}

EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    return memalign(alignment, size);
}

EXPORT void *valloc(size_t size) {
    return entry_aligned(os_page_size(), size, RA);
}

EXPORT void *pvalloc(size_t size) {
    size_t page = os_page_size();
    if (size > MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    return entry_aligned(page, size ? align_up(size, page) : page, RA);
}

EXPORT size_t malloc_usable_size(void *ptr) {
    return entry_usable_size(ptr, "malloc_usable_size", RA);
}
EXPORT int malloc_trim(size_t pad) {
    return ma_trim(pad);
}

/* glibc prints on stderr; here the summary line, or the table if
 * MEMALLOC_STATS=table. */
EXPORT void malloc_stats(void) {
    ma_init();
    if (opt_get(OPT_STATS) == STATS_TABLE)
        stats_print_table(2);
    else
        memalloc_print_stats(2);
}

/*
 * malloc_info(3) in glibc 2.36's XML shape, with memalloc's figures. Per
 * arena a <heap>: its <sizes> are the size classes that have free
 * objects in its pages (from the next smaller class's size + 1 to the
 * class's size: the requests the class serves; total = free objects *
 * size), then one line per non-empty bin of free chunks (their smallest
 * and largest sizes); "fast" totals the free objects, "rest" the free
 * chunks; system current is the bytes of its regions, max the highest
 * the statistics have seen (stats.c: the heap keeps no high mark);
 * aspace total the regions' bytes, mprotect those accessible. Then the
 * totals over the arenas, and "mmap" the blocks with a mapping of their
 * own. Each arena's figures are gathered under its lock and written after
 * it is released (the stream may allocate).
 */
struct info_sums {
    size_t fast_count, fast_bytes, rest_count, rest_bytes, current, max, aspace, open;
};

static void info_heap(FILE *fp, unsigned nr, const struct stats_heap *h, struct info_sums *t) {
    struct info_sums s = {.current = h->mapped,
                          .max = h->peak_mapped > h->mapped ? h->peak_mapped : h->mapped,
                          .aspace = h->mapped,
                          .open = h->open};
    fprintf(fp, "<heap nr=\"%u\">\n<sizes>\n", nr);
    for (unsigned k = 1; k < NCLASSES; k++) {
        const struct stats_class *c = &h->cls[k];
        size_t free_objs = c->objects - c->used, size = class_size[k];
        if (!free_objs) continue;
        fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                (size_t)(k > 1 ? class_size[k - 1] : 0) + 1, size, free_objs * size, free_objs);
        s.fast_count += free_objs;
        s.fast_bytes += free_objs * size;
    }
    for (unsigned b = 0; b < NBINS; b++) {
        const struct stats_bin *sb = &h->bins[b];
        if (!sb->count) continue;
        fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", sb->min,
                sb->max, sb->bytes, sb->count);
    }
    s.rest_count = h->free_chunks;
    s.rest_bytes = h->free_bytes;
    fprintf(fp,
            "</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n",
            s.fast_count, s.fast_bytes, s.rest_count, s.rest_bytes, s.current, s.max, s.aspace,
            s.open);
    t->fast_count += s.fast_count;
    t->fast_bytes += s.fast_bytes;
    t->rest_count += s.rest_count;
    t->rest_bytes += s.rest_bytes;
    t->current += s.current;
    t->max += s.max;
    t->aspace += s.aspace;
    t->open += s.open;
}

/* Options other than 0: EINVAL, returned as glibc 2.36 returns it (its
 * manual page says -1 and errno; its code returns the code, errno
 * untouched). */
EXPORT int malloc_info(int options, FILE *fp) {
    if (options != 0) return EINVAL;
    ma_init();
    struct stats_heap h;
    struct info_sums t = {0};
    fputs("<malloc version=\"1\">\n", fp);
    for (unsigned i = 0; stats_heap(i, &h); i++) info_heap(fp, i, &h, &t);
    struct memalloc_stats s;
    stats_get(&s, NULL);
    fprintf(fp,
            "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            t.fast_count, t.fast_bytes, t.rest_count, t.rest_bytes, s.mmapped_blocks,
            s.mmapped_bytes, t.current, t.max, t.aspace, t.open);
    return 0;
}

/* A mallopt value as a size: negative values, like glibc's casts, are huge;
 * the option's maximum applies. */
static int set_clamped(enum ma_opt o, int value, size_t max) {
    size_t v = (size_t)(long)value;
    return ma_set_option(o, v > max ? max : v) == 0;
}

/*
 * mallopt, as glibc 2.36 answers it: 1 for every parameter (unknown ones
 * included) but an M_MXFAST above 160. M_MMAP_THRESHOLD and
 * M_TRIM_THRESHOLD take effect (the threshold at most 32 MiB, half a
 * region); the others have no effect here: memalloc sets its arenas up
 * by the CPUs, and has no fastbins and no top pad.
 */
EXPORT int mallopt(int param, int value) {
    ma_init();
    switch (param) {
    case M_MMAP_THRESHOLD:
        return set_clamped(OPT_MMAP_THRESHOLD, value, MMAP_THRESHOLD_MAX);
    case M_TRIM_THRESHOLD:
        return set_clamped(OPT_TRIM_THRESHOLD, value, TRIM_THRESHOLD_MAX);
    case M_MXFAST:
        return value >= 0 && value <= 160;
    default:
        return 1;
    }
}

/*
 * mallinfo2's fields, in glibc's meaning:
 *   arena     bytes of the heap's regions (address space mapped for them)
 *   ordblks   free chunks in the regions
 *   hblks, hblkhd   mapped blocks, and their bytes
 *   uordblks  bytes the program holds, but in mapped blocks (usable sizes)
 *   fsmblks   free bytes in the pages of size classes, kept for reuse
 *   fordblks  free bytes: free chunks, and fsmblks
 *   keepcost  free bytes at the regions' tops
 * smblks and usmblks are 0, as glibc's are.
 */
static struct mallinfo2 info2(void) {
    struct memalloc_stats s;
    size_t mapped_in_use;
    stats_get(&s, &mapped_in_use);
    size_t cached = s.thread_cached + s.arena_cached;
    struct mallinfo2 mi = {
        .arena = s.heap_mapped,
        .ordblks = s.heap_free_blocks,
        .smblks = 0,
        .hblks = s.mmapped_blocks,
        .hblkhd = s.mmapped_bytes,
        .usmblks = 0,
        .fsmblks = cached,
        .uordblks = s.in_use > mapped_in_use ? s.in_use - mapped_in_use : 0,
        .fordblks = s.heap_free + cached,
        .keepcost = s.top_free,
    };
    return mi;
}

EXPORT struct mallinfo2 mallinfo2(void) {
    return info2();
}

EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m = info2();
    struct mallinfo mi = {
        .arena = (int)m.arena,
        .ordblks = (int)m.ordblks,
        .smblks = (int)m.smblks,
        .hblks = (int)m.hblks,
        .hblkhd = (int)m.hblkhd,
        .usmblks = (int)m.usmblks,
        .fsmblks = (int)m.fsmblks,
        .uordblks = (int)m.uordblks,
        .fordblks = (int)m.fordblks,
        .keepcost = (int)m.keepcost,
    };
    return mi;
}

/* At exit (destructors run on exit(), not _exit()): in a check mode, every
 * block verified, the quarantine verified and emptied, and the leak
 * report if asked; MEMALLOC_STATS=1: the summary. */
__attribute__((destructor)) static void memalloc_at_exit(void) {
    check_at_exit();
    dbg_exit();
    trace_exit();
    stats_exit_report();
}
