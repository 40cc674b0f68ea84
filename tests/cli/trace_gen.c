/* The synthetic trace's writer: see trace_gen.h. */
#define _GNU_SOURCE
#include "trace_gen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the functions the stacks name (distinct bodies, so that none is
 * folded into another) ---- */

__attribute__((noinline)) int gen_site_a(int n);
__attribute__((noinline)) int gen_site_b(int n);
__attribute__((noinline)) int gen_site_c(int n);
__attribute__((noinline)) int gen_site_d(int n);
__attribute__((noinline)) int gen_caller_x(int n);
__attribute__((noinline)) int gen_caller_y(int n);
__attribute__((noinline)) int gen_root(int n);

#define GEN_BODY(k)                                                                                \
    volatile int x = n;                                                                            \
    for (int i = 0; i < n; i++) x = x * (k) + i;                                                   \
    return x + (k)

int gen_site_a(int n) {
    GEN_BODY(3);
}
int gen_site_b(int n) {
    GEN_BODY(5);
}
int gen_site_c(int n) {
    GEN_BODY(7);
}
int gen_site_d(int n) {
    GEN_BODY(11);
}
int gen_caller_x(int n) {
    GEN_BODY(13);
}
int gen_caller_y(int n) {
    GEN_BODY(17);
}
int gen_root(int n) {
    GEN_BODY(19);
}

/* Stack 5's first frame points into read-only data (no function there);
 * its second into libc (fprintf). */
static const char gen_rodata[64] = "data in no function, for a frame that no symbol names";

const char *const gen_frame_funcs[GEN_STACKS + 1][GEN_MAX_DEPTH] = {
    {0},
    {"gen_site_a", "gen_caller_x", "gen_root"},
    {"gen_site_b", "gen_caller_x", "gen_root"},
    {"gen_site_c", "gen_caller_y", "gen_root"},
    {"gen_site_d", "gen_caller_y", "gen_root"},
    {NULL, "fprintf", "gen_root"},
};
const unsigned gen_frame_offsets[GEN_STACKS + 1][GEN_MAX_DEPTH] = {
    {0}, {5, 7, 9}, {6, 11, 9}, {5, 3, 9}, {4, 6, 9}, {20, 3, 9},
};

static uint64_t frame_addr(int s, int k) {
    const void *f;
    switch (s * 10 + k) {
    case 10:
        f = (const void *)gen_site_a;
        break;
    case 20:
        f = (const void *)gen_site_b;
        break;
    case 30:
        f = (const void *)gen_site_c;
        break;
    case 40:
        f = (const void *)gen_site_d;
        break;
    case 11:
    case 21:
        f = (const void *)gen_caller_x;
        break;
    case 31:
    case 41:
        f = (const void *)gen_caller_y;
        break;
    case 50:
        f = gen_rodata;
        break;
    case 51:
        f = (const void *)fprintf;
        break;
    default:
        f = (const void *)gen_root;
    }
    return (uint64_t)(uintptr_t)f + gen_frame_offsets[s][k];
}

/* ---- the writer ---- */

struct buf {
    unsigned char *p;
    size_t n, cap;
    /* the ALLOC and FREE records in it: kind (0 alloc, 1 free), index, offset */
    struct mark {
        int kind;
        size_t idx, off;
    } * marks;
    size_t nmarks, capmarks;
};

static void need(struct buf *b, size_t n) {
    if (b->n + n <= b->cap) return;
    while (b->n + n > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
}
static void put(struct buf *b, const void *p, size_t n) {
    need(b, n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put8(struct buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void put16(struct buf *b, uint16_t v) {
    for (int i = 0; i < 2; i++) put8(b, (uint8_t)(v >> 8 * i));
}
static void put32(struct buf *b, uint32_t v) {
    for (int i = 0; i < 4; i++) put8(b, (uint8_t)(v >> 8 * i));
}
static void put64(struct buf *b, uint64_t v) {
    for (int i = 0; i < 8; i++) put8(b, (uint8_t)(v >> 8 * i));
}

/* Starts a record; returns where its length goes. */
static size_t rec_begin(struct buf *b, uint16_t type) {
    put16(b, type);
    put16(b, 0);
    size_t at = b->n;
    put32(b, 0);
    return at;
}
static void rec_end(struct buf *b, size_t at) {
    uint32_t len = (uint32_t)(b->n - at - 4);
    for (int i = 0; i < 4; i++) b->p[at + i] = (uint8_t)(len >> 8 * i);
}

static void mark(struct buf *b, int kind, size_t idx, size_t off) {
    if (b->nmarks == b->capmarks) {
        b->capmarks = b->capmarks ? 2 * b->capmarks : 64;
        b->marks = realloc(b->marks, b->capmarks * sizeof *b->marks);
        if (!b->marks) abort();
    }
    b->marks[b->nmarks++] = (struct mark){kind, idx, off};
}

struct gen_state {
    int fd;
    size_t filepos;
    size_t *alloc_pos, *free_pos;
    size_t cappos_a, cappos_f;
    uint64_t rng;
};

static int flush(struct gen_state *st, struct buf *b) {
    for (size_t i = 0; i < b->nmarks; i++) {
        size_t pos = st->filepos + b->marks[i].off;
        if (b->marks[i].kind == 0)
            st->alloc_pos[b->marks[i].idx] = pos;
        else
            st->free_pos[b->marks[i].idx] = pos;
    }
    b->nmarks = 0;
    if (b->n && write(st->fd, b->p, b->n) != (ssize_t)b->n) return -1;
    st->filepos += b->n;
    b->n = 0;
    return 0;
}

static uint32_t rnd(struct gen_state *st, uint32_t n) {
    st->rng = st->rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(st->rng >> 33) % n;
}

static int bucket64(uint64_t v) {
    return v ? 64 - __builtin_clzll(v) : 0;
}

#define POOL 48

const char gen_exec_before_args[] = "env synthetic --size=<big>";

/* A program that ran in the process before it exec'd the traced one: its
 * INFO, MAPS, a HEAP, a STACK, ALLOCs and FREEs, no END. A reader keeps
 * only the records after the last INFO. */
static void exec_before(struct buf *b, uint32_t pid, uint32_t ppid) {
    size_t at = rec_begin(b, 1);
    put32(b, 1);
    put32(b, pid);
    put32(b, ppid);
    put32(b, 4096);
    put64(b, 1);
    put64(b, 1764950399000000000ull);
    put64(b, 554000000000ull);
    put32(b, 4);
    const char *s[4] = {"/usr/bin/env", "env", "synthetic", "--size=<big>"};
    for (int i = 0; i < 4; i++) put(b, s[i], strlen(s[i]) + 1);
    rec_end(b, at);
    at = rec_begin(b, 2);
    put64(b, 5);
    const char *m = "00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/env\n";
    put(b, m, strlen(m));
    rec_end(b, at);
    at = rec_begin(b, 3);
    put32(b, 1); /* an id the traced program uses too, for another stack */
    put32(b, 1);
    put64(b, 0x400123);
    rec_end(b, at);
    for (int i = 0; i < 3; i++) {
        at = rec_begin(b, 4);
        const uint64_t f[4] = {100 + 10 * (uint64_t)i, 0x7f0000100000ull, 64, 64};
        for (int k = 0; k < 4; k++) put64(b, f[k]);
        put32(b, 1);
        put32(b, pid);
        put64(b, (uint64_t)i);
        rec_end(b, at);
        at = rec_begin(b, 5);
        put64(b, 105 + 10 * (uint64_t)i);
        put64(b, 0x7f0000100000ull);
        put32(b, pid);
        put32(b, 1);
        put64(b, (uint64_t)i + 1);
        rec_end(b, at);
    }
    at = rec_begin(b, 6);
    for (int k = 0; k < 11; k++) put64(b, k == 0 ? 200 : 999999999);
    rec_end(b, at);
    /* ARENAS and AGGREGATES of the earlier program too (forgotten at the
     * exec, as every other record) */
    for (int r = 0; r < 40; r++) { /* more than an array's first capacity */
        at = rec_begin(b, 14);
        put64(b, 200 + (uint64_t)r);
        put32(b, 1);
        put32(b, 0);
        for (int k = 0; k < 4; k++) put64(b, 999999999);
        rec_end(b, at);
    }
    at = rec_begin(b, 13);
    put64(b, 300);
    put32(b, 1);
    put32(b, 65);
    for (int k = 0; k < 65; k++) put64(b, 999999999);
    put32(b, 1);
    put32(b, 0);
    for (int k = 0; k < 4; k++) put64(b, 999999999);
    rec_end(b, at);
}

int gen_write(const char *path, int flags, uint32_t pid, uint32_t ppid, struct gen_trace *g) {
    memset(g, 0, sizeof *g);
    struct gen_state st = {.rng = 12345};
    st.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (st.fd < 0) return -1;
    size_t cap = 4096;
    g->allocs = calloc(cap, sizeof *g->allocs);
    g->frees = calloc(cap, sizeof *g->frees);
    g->heaps = calloc(cap, sizeof *g->heaps);
    st.alloc_pos = calloc(cap, sizeof *st.alloc_pos);
    st.free_pos = calloc(cap, sizeof *st.free_pos);
    if (!g->allocs || !g->frees || !g->heaps || !st.alloc_pos || !st.free_pos) abort();
    struct buf main = {0}, th[GEN_THREADS] = {{0}};
    const uint32_t tids[GEN_THREADS] = {4101, 4102, 4103};
    uint64_t tcount[GEN_THREADS] = {0};

    /* INFO, with 4 bytes past its strings (a later version's field) */
    g->strings[0] = "/usr/bin/synthetic";
    g->strings[1] = "synthetic";
    g->strings[2] = "--size=<big> & \"quoted\"";
    g->strings[3] = "'x'";
    g->nstrings = 4;
    put(&main, "MEMTRC01", 8);
    if (flags & GEN_EXEC_BEFORE) exec_before(&main, pid, ppid);
    size_t at = rec_begin(&main, 1);
    put32(&main, 1);
    put32(&main, pid);
    put32(&main, ppid);
    put32(&main, 4096);
    put64(&main, GEN_SAMPLE);
    put64(&main, 1764950400000000000ull); /* 2025-12-05 16:00:00 UTC */
    put64(&main, 555000000000ull);
    put32(&main, (uint32_t)g->nstrings);
    for (int i = 0; i < g->nstrings; i++) put(&main, g->strings[i], strlen(g->strings[i]) + 1);
    put32(&main, 0xdeadbeef);
    rec_end(&main, at);

    /* MAPS: this process's mappings of files */
    at = rec_begin(&main, 2);
    put64(&main, 0);
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[4096];
    while (fgets(line, sizeof line, f))
        if (strchr(line, '/')) put(&main, line, strlen(line));
    fclose(f);
    rec_end(&main, at);

    /* a record of a type no reader knows */
    at = rec_begin(&main, 77);
    put(&main, "unknown type!", 13);
    rec_end(&main, at);
    if (flush(&st, &main)) return -1;

    for (int s = 1; s <= GEN_STACKS; s++) {
        g->depth[s] = 3;
        for (int k = 0; k < 3; k++) g->frames[s][k] = frame_addr(s, k);
    }
    int stack_written[GEN_STACKS + 1] = {0};
    int64_t live[POOL];
    for (int i = 0; i < POOL; i++) live[i] = -1;
    uint64_t in_use = 0, peak = 0, peak_rss = 0, purged = 0;
    const uint64_t base = 1 << 20;
    const uint64_t sizes[8] = {24, 100, 1000, 4096, 10000, 70000, 0, 300000};

    for (int op = 0; op < 1200; op++) {
        uint64_t t = 1000 * (uint64_t)(op + 1);
        int ti = (int)rnd(&st, GEN_THREADS);
        struct buf *b = &th[ti];
        int nlive = 0;
        for (int i = 0; i < POOL; i++) nlive += live[i] >= 0;
        int do_free = op >= 1000 ? 1 : nlive == POOL || (nlive && rnd(&st, 100) < 42);
        if (op >= 1000 && !nlive) break;
        if (do_free) {
            int k;
            do k = (int)rnd(&st, POOL);
            while (live[k] < 0);
            if (op >= 1000 && rnd(&st, 3) == 0) { /* the end: a third stays live (leaks) */
                live[k] = -1;
                continue;
            }
            struct gen_alloc *a = &g->allocs[live[k]];
            struct gen_free *fr = &g->frees[g->nfrees];
            *fr = (struct gen_free){t, a->addr, tids[ti], 0, tcount[ti], live[k]};
            fr->flags = fr->tid == a->tid && fr->seq == a->seq + 1;
            a->free = (int64_t)g->nfrees;
            in_use -= a->size;
            live[k] = -1;
            at = rec_begin(b, 5);
            mark(b, 1, g->nfrees, b->n - 8);
            put64(b, fr->t);
            put64(b, fr->addr);
            put32(b, fr->tid);
            put32(b, fr->flags);
            put64(b, fr->seq);
            rec_end(b, at);
            g->nfrees++;
        } else {
            int k;
            do k = (int)rnd(&st, POOL);
            while (live[k] >= 0);
            tcount[ti] += rnd(&st, 3); /* allocations that were not sampled */
            uint32_t s = 1 + rnd(&st, GEN_STACKS);
            uint64_t size = sizes[rnd(&st, 8)];
            struct gen_alloc *a = &g->allocs[g->nallocs];
            *a = (struct gen_alloc){t,
                                    0x7f0000100000ull + (uint64_t)k * 0x10000,
                                    size,
                                    size >= GEN_SAMPLE ? size : GEN_SAMPLE,
                                    s,
                                    tids[ti],
                                    tcount[ti]++,
                                    -1};
            live[k] = (int64_t)g->nallocs;
            in_use += size;
            at = rec_begin(b, 4);
            mark(b, 0, g->nallocs, b->n - 8);
            put64(b, a->t);
            put64(b, a->addr);
            put64(b, a->size);
            put64(b, a->weight);
            put32(b, a->stack);
            put32(b, a->tid);
            put64(b, a->seq);
            if (g->nallocs % 7 == 3) put64(b, 0x1234); /* a later version's field */
            rec_end(b, at);
            g->sites_calls[s] += 3;
            g->sites_bytes[s] += 3 * size;
            g->sizes_calls[bucket64(size)] += 3;
            g->sizes_bytes[bucket64(size)] += 3 * size;
            g->nallocs++;
            if (!stack_written[s]) { /* after the first ALLOC that names it */
                stack_written[s] = 1;
                g->stack_after_alloc++;
                at = rec_begin(b, 3);
                put32(b, s);
                put32(b, g->depth[s]);
                for (uint32_t j = 0; j < g->depth[s]; j++) put64(b, g->frames[s][j]);
                rec_end(b, at);
            }
        }
        if (op % 10 == 0 || in_use > peak) {
            if (in_use > peak) peak = in_use;
            struct gen_heap *h = &g->heaps[g->nheaps];
            uint64_t rss = base + in_use + in_use / 2 + (uint64_t)(op % 7) * 4096;
            if (rss > peak_rss) peak_rss = rss;
            purged += 8192;
            uint64_t calls = 0;
            for (int i = 0; i < GEN_THREADS; i++) calls += tcount[i];
            *h = (struct gen_heap){t + 1, base + in_use, rss,        base * 2 + in_use,
                                   base,  in_use / 4,    base / 2,   purged,
                                   calls, g->nfrees * 2, base + peak};
            at = rec_begin(b, 6);
            for (uint64_t *p = &h->t; p <= &h->peak_in_use; p++) put64(b, *p);
            rec_end(b, at);
            /* ARENAS: two, splitting the heap's figures */
            at = rec_begin(b, 14);
            put64(b, h->t);
            put32(b, 2);
            put32(b, 0);
            for (int i = 0; i < 2; i++) {
                put64(b, h->heap_mapped / 2);
                put64(b, h->heap_free / 4);
                put64(b, h->heap_free / 4);
                put64(b, (uint64_t)i + 1);
            }
            rec_end(b, at);
            g->nheaps++;
        }
        if (op % 150 == 75) { /* CLASSES and REGIONS */
            g->classes_t[g->nclasses++] = t + 2;
            at = rec_begin(b, 7);
            put64(b, t + 2);
            put32(b, 4);
            put32(b, 0);
            for (uint32_t c = 0; c < 4; c++) {
                put32(b, 16 << c);
                put32(b, 65536);
                put64(b, 1 + c + (uint64_t)op / 100);
                put64(b, (1 + c + (uint64_t)op / 100) * (65536 >> (4 + c)));
                put64(b, (uint64_t)op / 10 + c);
            }
            rec_end(b, at);
            g->regions_t[g->nregions++] = t + 3;
            at = rec_begin(b, 8);
            put64(b, t + 3);
            put32(b, 3);
            put32(b, 65536);
            const uint32_t ng[3] = {5, 17, 64};
            for (int r = 0; r < 3; r++) {
                put64(b, 0x7f0000000000ull + (uint64_t)r * 0x10000000);
                put32(b, ng[r]);
                put32(b, 0);
                for (uint32_t j = 0; j < ng[r]; j++) {
                    uint8_t used = (uint8_t)((j * 37 + (uint32_t)op) % 256);
                    uint8_t free_ = (uint8_t)((255 - used) / 2);
                    put8(b, used);
                    put8(b, free_);
                    put8(b, (uint8_t)(j % 5 == 0 ? 255 - used - free_ : 0));
                }
                while (b->n % 8 != (at + 4) % 8) put8(b, 0);
            }
            rec_end(b, at);
        }
        if (op % 200 == 100 || op == 999) { /* SITES and SIZES */
            at = rec_begin(b, 9);
            put64(b, t + 4);
            put32(b, GEN_STACKS);
            put32(b, 0);
            for (int s = 1; s <= GEN_STACKS; s++) {
                put64(b, g->frames[s][0]);
                put64(b, g->sites_calls[s]);
                put64(b, g->sites_bytes[s]);
            }
            rec_end(b, at);
            at = rec_begin(b, 10);
            put64(b, t + 5);
            put32(b, GEN_BUCKETS);
            put32(b, 0);
            for (int k = 0; k < GEN_BUCKETS; k++) {
                put64(b, g->sizes_calls[k]);
                put64(b, g->sizes_bytes[k]);
            }
            rec_end(b, at);
        }
        if (rnd(&st, 5) == 0 && flush(&st, b)) return -1;
    }
    for (int i = GEN_THREADS - 1; i >= 0; i--)
        if (flush(&st, &th[i])) return -1;
    g->end_t = 2000000;
    g->end_allocs = tcount[0] + tcount[1] + tcount[2];
    g->end_frees = g->nfrees * 2;
    g->end_peak_rss = peak_rss;
    g->end_in_use = base + in_use;
    if (!(flags & GEN_NO_END)) {
        at = rec_begin(&main, 11);
        put64(&main, g->end_t);
        put64(&main, g->end_allocs);
        put64(&main, g->end_frees);
        put64(&main, base + peak);
        put64(&main, g->end_peak_rss);
        put64(&main, g->end_in_use);
        rec_end(&main, at);
        if (flush(&st, &main)) return -1;
    }
    g->bytes = st.filepos;
    close(st.fd);

    /* what a report computes */
    for (size_t i = 1; i < g->nheaps; i++)
        if (g->heaps[i].in_use > g->heaps[g->peak].in_use) g->peak = i;
    uint64_t tp = g->heaps[g->peak].t;
    for (size_t i = 0; i < g->nallocs; i++) {
        const struct gen_alloc *a = &g->allocs[i];
        const struct gen_free *fr = a->free >= 0 ? &g->frees[a->free] : NULL;
        if (a->t <= tp && (!fr || fr->t > tp)) g->peak_live[a->stack] += a->weight;
        if (!fr) g->leaked[a->stack] += a->weight;
        if (fr && (fr->flags & 1)) g->temporary[a->stack]++;
        if (fr) g->lifetimes[bucket64(fr->t - a->t)]++;
        if (fr && st.free_pos[a->free] < st.alloc_pos[i]) g->free_before_alloc++;
    }
    for (int i = 0; i < GEN_THREADS; i++) {
        free(th[i].p);
        free(th[i].marks);
    }
    free(main.p);
    free(main.marks);
    free(st.alloc_pos);
    free(st.free_pos);
    return 0;
}

void gen_free_trace(struct gen_trace *g) {
    free(g->allocs);
    free(g->frees);
    free(g->heaps);
    memset(g, 0, sizeof *g);
}
