/*
 * test_trace_write.c: the trace writer (src/trace.c, linked in with the
 * engine and the libc names, so that this program's malloc is memalloc's)
 * and memalloc report's reader (cli/trace_read.c) round trip: every
 * allocation and free this program makes with MEMALLOC_TRACE_SAMPLE=1 (ctest sets MEMALLOC_TRACE
 * and the sample) comes back from the file with its address, size, thread, order and temporary
 * flag; every ALLOC names a stack the file holds, whose first frame is the call site's; the sites
 * and sizes add up to the calls made; END matches the engine's statistics.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "harness.h"
#include "memalloc.h"
#include "trace.h"
#include "trace_read.h"

#define N 200

struct made {
    void *p;
    size_t size;
    int freed, temporary;
    uintptr_t site_lo; /* the function that allocated it */
};
static struct made made[4 * N + 64];
static unsigned nmade;

static void note(void *p, size_t size, uintptr_t site) {
    made[nmade++] = (struct made){p, size, 0, 0, site};
}
static void note_free(void *p, int temporary) {
    for (unsigned i = nmade; i-- > 0;)
        if (made[i].p == p && !made[i].freed) {
            made[i].freed = 1;
            made[i].temporary = temporary;
            return;
        }
}

static __attribute__((noinline)) void temporaries(void) {
    for (int i = 0; i < N; i++) {
        void *p = malloc(40);
        note(p, 40, (uintptr_t)temporaries);
        free(p);
        note_free(p, 1);
    }
}

static __attribute__((noinline)) void kept(void **out) {
    for (int i = 0; i < N; i++) {
        out[i] = calloc(3, 100); /* 300 bytes, zeroed */
        note(out[i], 300, (uintptr_t)kept);
    }
}

static __attribute__((noinline)) void *grown(void) {
    void *p = NULL;
    for (int i = 1; i <= 8; i++) {
        void *q = realloc(p, (size_t)i * 5000);
        if (p) note_free(p, 1); /* by the next realloc, no allocation between */
        note(q, (size_t)i * 5000, (uintptr_t)grown);
        p = q;
    }
    return p;
}

static __attribute__((noinline)) void *aligned_block(void) {
    void *p = aligned_alloc(4096, 10000);
    note(p, 10000, (uintptr_t)aligned_block);
    return p;
}

static struct trace tr;
static const char *path;

/* A sampled block that an object of a page holds is off its page's grid,
 * 32 bytes into the object (trace.c): the free fast path declines it. */
static int off_grid(const void *p) {
    return ma_object_at(p) == 0 && ma_object_at((const char *)p - 32) != 0;
}

static int filled(const unsigned char *p, size_t n, unsigned char c) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return 0;
    return 1;
}

static void *from_thread(void *arg) {
    (void)arg;
    return memset(malloc(200), 7, 200);
}

/* While the trace is on: what the program can do with an off-grid block
 * is what it can do with any block. Returns one kept for after the end. */
static void *offgrid_while_on(void) {
    unsigned char *p = malloc(100);
    CHECK(off_grid(p));
    CHECK(malloc_usable_size(p) >= 100);
    memset(p, 1, malloc_usable_size(p));
    unsigned char *q = realloc(p, 110); /* fits: in place */
    CHECK(q == p && filled(q, 100, 1));
    unsigned char *r = realloc(q, 5000); /* moved, still a sample */
    CHECK(r != q && off_grid(r) && filled(r, 100, 1));
    free(r);
    /* freed by a thread that did not allocate it */
    pthread_t t;
    void *other = NULL;
    pthread_create(&t, NULL, from_thread, NULL);
    pthread_join(t, &other);
    CHECK(off_grid(other) && filled(other, 200, 7));
    free(other);
    /* a check mode would take the samples for invalid pointers */
    CHECK(memalloc_set_option(MEMALLOC_OPT_CHECK, 1) == EBUSY);
    CHECK(memalloc_get_option(MEMALLOC_OPT_CHECK) == 0);
    /* a fork's child frees its parent's samples */
    unsigned char *shared = memset(malloc(300), 3, 300);
    pid_t pid = fork();
    if (pid == 0) {
        unsigned char *c = realloc(shared, 600);
        int ok = c && filled(c, 300, 3) && malloc_usable_size(c) >= 600;
        free(c);
        free(memset(malloc(64), 0, 64));
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    char child[4200];
    snprintf(child, sizeof child, "%s.%d", path, (int)pid);
    unlink(child);
    free(shared);
    return memset(malloc(700), 9, 700);
}

/* The call site in function fn: the lowest return address above fn's
 * start (each function here has one site). */
static const struct tr_site *site_near(uintptr_t fn) {
    const struct tr_site *best = NULL;
    for (uint32_t i = 0; i < tr.sites.count; i++)
        if (tr.sites.v[i].ra > fn && (!best || tr.sites.v[i].ra < best->ra)) best = &tr.sites.v[i];
    return best && best->ra < fn + 4096 ? best : NULL;
}

TEST(test_file_read_back) {
    char err[256];
    int rc = trace_read(path, &tr, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", path, err);
    if (rc != 0) return;
    CHECK(tr.info.present && tr.info.version == 2 && tr.info.pid == (uint32_t)getpid() &&
          tr.info.sample_bytes == 1);
    CHECK(tr.info.nstrings >= 2 && strstr(tr.info.strings[0], "test_trace_write") != NULL);
    CHECK(tr.end.present && !tr.cut_short && !tr.truncated && tr.malformed == 0);
    CHECK(tr.nheaps >= 2 && tr.nclasses >= 1 && tr.nmaps >= 1);
}

TEST(test_every_allocation_and_free) {
    /* the ALLOCs of this thread, in its order (seq), are the blocks made */
    uint32_t tid = (uint32_t)gettid();
    unsigned k = 0, mismatches = 0;
    uint64_t last_seq = 0;
    for (size_t i = 0; i < tr.nallocs && k < nmade; i++) {
        const struct tr_alloc *a = &tr.allocs[i];
        if (a->tid != tid || a->addr != (uintptr_t)made[k].p) continue; /* the harness's own */
        if (a->size != made[k].size || a->weight != made[k].size || (k && a->seq <= last_seq))
            mismatches++;
        last_seq = a->seq;
        const struct tr_stack *s = trace_stack(&tr, a->stack);
        const struct tr_site *site = site_near(made[k].site_lo);
        if (!s || s->depth < 1 || !site || s->frames[0] != site->ra) mismatches++;
        if (made[k].freed) {
            const struct tr_free *f = a->free != TR_NOT_FREED ? &tr.frees[a->free] : NULL;
            if (!f || f->addr != a->addr || f->tid != tid ||
                !!(f->flags & TR_FREE_TEMPORARY) != made[k].temporary)
                mismatches++;
        } else if (a->free != TR_NOT_FREED) {
            mismatches++;
        }
        k++;
    }
    CHECKF(k == nmade, "%u of %u blocks found in the trace", k, nmade);
    CHECKF(mismatches == 0, "%u mismatches", mismatches);
}

TEST(test_sites_and_sizes_add_up) {
    const struct tr_site *t = site_near((uintptr_t)temporaries);
    const struct tr_site *c = site_near((uintptr_t)kept);
    const struct tr_site *g = site_near((uintptr_t)grown);
    REQUIRE(t && c && g);
    CHECKF(t->calls == N && t->bytes == 40 * N, "%lu %lu", (unsigned long)t->calls,
           (unsigned long)t->bytes);
    CHECK(c->calls == N && c->bytes == 300 * N);
    CHECK(g->calls == 8 && g->bytes == 5000 * 36);
    uint64_t site_calls = 0, size_calls = 0;
    for (uint32_t i = 0; i < tr.sites.count; i++) site_calls += tr.sites.v[i].calls;
    for (uint32_t i = 0; i < tr.sizes.count; i++) size_calls += tr.sizes.v[i].calls;
    CHECK(tr.sizes.count == 49 && site_calls == size_calls && site_calls >= 2 * N + 9);
    /* 40 bytes: bucket 6, [32, 64) */
    CHECK(tr.sizes.v[6].calls >= N && tr.sizes.v[6].bytes >= 40 * N);
}

/* With sampling (ctest's second run: one sample per 1000 bytes), the
 * samples freed before the heap was next sampled come back counted in
 * AGGREGATES, the others one by one: together, the blocks sampled. */
#define AGG_BLOCKS 20000
static __attribute__((noinline)) void short_lived(void) {
    for (int i = 0; i < AGG_BLOCKS; i++) {
        char *p = malloc(100);
        p[0] = (char)i;
        free(p);
    }
}
static __attribute__((noinline)) void *long_lived(void) {
    return memset(malloc(50000), 1, 50000); /* sampled: over the interval */
}

static int aggregates_main(void) {
    short_lived();
    void *kept_block = long_lived();
    trace_exit();
    char err[256];
    int rc = trace_read(path, &tr, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", path, err);
    if (rc != 0) return harness_finish();
    CHECK(tr.end.present && !tr.cut_short && tr.malformed == 0 && tr.unknown == 0);
    CHECK(tr.info.sample_bytes == 1000);
    const struct tr_site *site = site_near((uintptr_t)short_lived);
    CHECK(site && site->calls == AGG_BLOCKS);
    if (!site) return harness_finish();
    /* the short-lived blocks' samples: counted, or listed (a HEAP record
     * came in their life), with their stacks' first frame at the site */
    uint64_t counted = 0, temps = 0, lives = 0, listed = 0, stackless = 0;
    for (uint32_t i = 0; i < tr.aggregates.count; i++) {
        const struct tr_agg *g = &tr.aggregates.v[i];
        const struct tr_stack *st = trace_stack(&tr, g->stack);
        if (!st || st->depth < 1) {
            stackless++;
            continue;
        }
        if (st->frames[0] != site->ra) continue;
        counted += g->samples;
        temps += g->temps;
        CHECK(g->weight == g->samples * 1000); /* 100 bytes: the interval's weight */
    }
    for (unsigned b = 0; b < TR_LIFETIMES; b++) lives += tr.aggregates.lifetimes[b];
    int long_found = 0;
    for (size_t i = 0; i < tr.nallocs; i++) {
        const struct tr_alloc *a = &tr.allocs[i];
        const struct tr_stack *st = trace_stack(&tr, a->stack);
        if (a->addr == (uintptr_t)kept_block && a->size == 50000) {
            long_found = a->free == TR_NOT_FREED; /* written at exit, live */
            continue;
        }
        if (st && st->depth && st->frames[0] == site->ra && a->size == 100) listed++;
    }
    /* 2 MB in 100-byte blocks, a sample per 500-1500 bytes */
    CHECKF(counted + listed >= 1300 && counted + listed <= 4000, "%lu counted, %lu listed",
           (unsigned long)counted, (unsigned long)listed);
    CHECKF(counted > 10 * listed, "%lu counted, %lu listed", (unsigned long)counted,
           (unsigned long)listed);
    CHECK(temps == counted && lives >= counted && stackless == 0);
    CHECK(long_found);
    trace_free(&tr);
    unlink(path);
    free(kept_block);
    return harness_finish();
}

int main(void) {
    path = getenv("MEMALLOC_TRACE");
    const char *sample = getenv("MEMALLOC_TRACE_SAMPLE");
    if (!path || !sample || (strcmp(sample, "1") && strcmp(sample, "1000"))) {
        fprintf(stderr, "run with MEMALLOC_TRACE=FILE MEMALLOC_TRACE_SAMPLE=1 or 1000 (ctest "
                        "does)\n");
        return 2;
    }
    /* the trace started before main: FILE, or FILE.PID if an earlier
     * run left FILE behind */
    static char own[4096];
    snprintf(own, sizeof own, "%s.%d", path, (int)getpid());
    if (access(own, F_OK) == 0) path = own;
    if (strcmp(sample, "1000") == 0) return aggregates_main();
    static void *keep[N];
    temporaries();
    kept(keep);
    void *big = grown();
    void *al = aligned_block();
    int zeroed = 1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 300; j++) zeroed &= ((unsigned char *)keep[i])[j] == 0;
    for (int i = 0; i < N; i++) {
        free(keep[i]);
        note_free(keep[i], 0);
    }
    CHECK(zeroed);
    CHECK(((uintptr_t)al & 4095) == 0);
    free(big);
    note_free(big, 0);
    free(al);
    note_free(al, 1);
    unsigned char *kept_on = offgrid_while_on();
    struct memalloc_stats st;
    memalloc_get_stats(&st);
    trace_exit();
    /* after the trace's end, the samples still live are the trace's to
     * resize and free */
    CHECK(off_grid(kept_on) && malloc_usable_size(kept_on) >= 700);
    unsigned char *moved = realloc(kept_on, 800);
    CHECK(moved && !off_grid(moved) && filled(moved, 700, 9));
    free(moved);
    RUN(test_file_read_back);
    CHECKF(tr.end.allocs == st.allocs, "END allocs %lu, stats %lu", (unsigned long)tr.end.allocs,
           (unsigned long)st.allocs);
    RUN(test_every_allocation_and_free);
    RUN(test_sites_and_sizes_add_up);
    trace_free(&tr);
    unlink(path);
    return harness_finish();
}
