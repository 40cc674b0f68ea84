/*
 * test_engine.c: the free-list engine's mechanisms, seen from inside:
 * splitting, coalescing, in-place resize, the mmap path and mremap, fresh
 * pages for zeroing allocation (mincore), huge-page advice, purging and
 * unmapping, alignment, the heap checker catching corruption, the bootstrap
 * buffer, and fatal misuse reports. Links the engine directly; includes
 * its private headers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "arena.h"
#include "heap.h"
#include "large.h"
#include "os.h"
#include "memalloc.h"

/* ---- the bootstrap buffer: a call made while the heap initialises ---- */
static void *boot_ptr;
static size_t boot_usable;
/* Initialisation registers its fork handlers here; this one re-enters. */
int pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void)) {
    (void)prepare, (void)parent, (void)child;
    boot_ptr = memalloc(100);
    if (boot_ptr) memset(boot_ptr, 0x5a, 100);
    boot_usable = memalloc_usable_size(boot_ptr);
    return 0;
}

TEST(test_bootstrap) {
    void *first = memalloc(10); /* initialises the heap; pthread_atfork above runs */
    CHECK(first != NULL);
    CHECK(boot_ptr != NULL);
    CHECK(((uintptr_t)boot_ptr & 15) == 0);
    CHECK(boot_usable == 100);
    CHECK(region_lookup(boot_ptr) == NULL); /* not from a region: the static buffer */
    CHECK(region_lookup(first) != NULL);
    char *moved = memresize(boot_ptr, 300);
    CHECK(moved && moved != boot_ptr && region_lookup(moved));
    int same = 1;
    for (int i = 0; i < 100; i++) same &= moved[i] == 0x5a;
    CHECK(same);
    memfree(boot_ptr); /* a no-op for the static buffer */
    memfree(moved);
    memfree(first);
    CHECK(memalloc_check() == 0);
}

static size_t chunk_of(void *p) {
    return chunk_size(payload_chunk(p));
}

TEST(test_split_and_coalesce) {
    char *a = memalloc(100), *b = memalloc(100), *c = memalloc(100), *guard = memalloc(100);
    CHECK(chunk_of(a) == 112 && memalloc_usable_size(a) == 104);
    CHECK(b == a + 112 && c == b + 112); /* split from one free chunk, in order */
    struct memalloc_stats s0, s1;
    memfree(a);
    memfree(c);
    memalloc_get_stats(&s0);
    memfree(b); /* merges with both neighbours at once */
    memalloc_get_stats(&s1);
    CHECK(s1.heap_free_blocks == s0.heap_free_blocks - 1);
    CHECK(!cinuse(payload_chunk(a)) && chunk_of(a) == 336);
    CHECK(memalloc_check() == 0);
    char *abc = memalloc(336 - 8); /* exactly the merged chunk */
    CHECK(abc == a);
    memfree(abc);
    memfree(guard);
    CHECK(memalloc_check() == 0);
}

TEST(test_resize_in_place) {
    char *p = memalloc(100), *q = memalloc(100), *guard = memalloc(16);
    memset(p, 7, 100);
    memfree(q);
    CHECK(memresize(p, 200) == p); /* grows into the free successor */
    CHECK(memalloc_usable_size(p) >= 200 && p[99] == 7);
    CHECK(memresize(p, 40) == p); /* shrinks, splitting off the tail */
    CHECK(chunk_of(p) == 48);
    CHECK(memalloc_check() == 0);
    char *r = memalloc(100); /* the tail is reused */
    CHECK(r == p + 48);
    /* relocation when the neighbour is taken: contents follow */
    char *moved = memresize(p, 5000);
    CHECK(moved != p && moved[0] == 7 && moved[39] == 7);
    memfree(r);
    memfree(guard);
    /* growth at the top of a region: in place, into the free top */
    char *top = memalloc(1000);
    REQUIRE(top != NULL);
    CHECK(chunk_next(payload_chunk(top)) == region_fence(region_of(top)) ||
          !cinuse(chunk_next(payload_chunk(top))));
    fill(top, 1000, 9);
    char *grown = memresize(top, 100000);
    CHECK(grown == top);
    REQUIRE(grown != NULL);
    CHECK(memalloc_usable_size(grown) >= 100000 && first_bad(grown, 1000, 9) == 1000);
    memfree(grown);
    memfree(moved);
    CHECK(memalloc_check() == 0);
}

TEST(test_large_blocks) {
    struct memalloc_stats s0, s1;
    memalloc_get_stats(&s0);
    char *p = memalloc(8 << 20); /* at least the mmap threshold, 4 MiB */
    memalloc_get_stats(&s1);
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks + 1);
    CHECK(region_lookup(p) == NULL && memalloc_usable_size(p) >= (8 << 20));
    for (size_t i = 0; i < (1 << 20); i += 4096) p[i] = (char)i;
    char *q = memresize(p, 64 << 20); /* mremap */
    CHECK(q != NULL);
    int same = 1;
    for (size_t i = 0; i < (1 << 20); i += 4096) same &= q[i] == (char)i;
    CHECK(same);
    memalloc_get_stats(&s1);
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks + 1);
    char *r = memresize(q, 1000); /* below the threshold: moves into the heap */
    CHECK(r && region_lookup(r) && r[0] == 0);
    memalloc_get_stats(&s1);
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks);
    memfree(r);
    /* the threshold can move */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 1 << 20) == 0);
    p = memalloc(512 << 10);
    CHECK(region_lookup(p) != NULL);
    memfree(p);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    p = memalloc(512 << 10);
    CHECK(region_lookup(p) == NULL);
    int e = errno = 4242;
    memfree(p); /* munmap keeps errno */
    CHECK(errno == e);
    CHECK(memalloc_check() == 0);
}

/* Whether the mapping holding p is advised MADV_HUGEPAGE ("hg" among the
 * VmFlags of its entry in /proc/self/smaps); -1 if that cannot be read. */
static int advised_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, hg = -1;
    while (fgets(line, sizeof line, f)) {
        uintptr_t lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            hg = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return hg;
}

TEST(test_huge_page_advice) {
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        SKIP("no transparent huge pages in this kernel");
    (void)memalloc_trim(0); /* no cached mapping from earlier tests */
    char *m = memalloc(8 << 20), *z = defalloc(1, 8 << 20), *small = memalloc(2 << 20),
         *reserve = memalloc((size_t)300 << 20);
    CHECK(m && z && small && reserve);
    CHECK(advised_huge(m) == 1);              /* malloc of 4 MiB and more */
    CHECK(advised_huge(z) == 0);              /* calloc: often used sparsely */
    CHECK(advised_huge(small) == 0);          /* below the threshold */
    CHECK(advised_huge(reserve) == 1);        /* a reservation too (docs/design.md) */
    char *grown = memresize(small, 16 << 20); /* mremap past the threshold */
    CHECK(grown && advised_huge(grown) == 1);
    memfree(m), memfree(z), memfree(grown), memfree(reserve);
    (void)memalloc_trim(0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 0) == 0); /* never */
    m = memalloc(8 << 20);
    CHECK(m && advised_huge(m) == 0);
    memfree(m);
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 4 << 20) == 0);
    (void)memalloc_trim(0);
    /* heap blocks too (below the mmap threshold): the whole huge pages
     * inside a malloc'd one, not a calloc'd one's, nor a small one's */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 32 << 20) == 0);
    const uintptr_t huge = 2 << 20;
    char *h = memalloc(8 << 20), *hz = defalloc(1, 8 << 20), *hs = memalloc(64 << 10);
    REQUIRE(h && hz && hs && region_lookup(h) && region_lookup(hz) && region_lookup(hs));
    CHECK(advised_huge((char *)align_up((uintptr_t)h, huge)) == 1);
    CHECK(advised_huge((char *)align_up((uintptr_t)hz, huge)) == 0);
    CHECK(advised_huge(hs) == 0);
    memfree(h), memfree(hz), memfree(hs);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    (void)memalloc_trim(0);
    CHECK(memalloc_check() == 0);
}

TEST(test_fresh_pages) {
    /* mmapped: never touched by defalloc */
    char *big = defalloc(1, 100 << 20);
    CHECK(big && resident_pages(big, 100 << 20) <= 1);
    CHECK(big[12345678] == 0);
    memfree(big);
    /* from a region's untouched (here: just purged) top: only the dirty
     * head of the block is cleared */
    CHECK(memalloc_trim(0) == 1);
    char *mid = defalloc(1, 120 << 10);
    CHECK(mid && region_lookup(mid));
    CHECK(resident_pages(mid, 120 << 10) <= 2);
    int zero = 1;
    for (size_t i = 0; i < (120 << 10); i += 512) zero &= mid[i] == 0;
    CHECK(zero);
    memfree(mid);
    /* recycled blocks are cleared */
    for (size_t n = 16; n <= (100 << 10); n *= 3) {
        char *d = memalloc(n);
        memset(d, 0xab, n);
        memfree(d);
        char *z = defalloc(n, 1);
        int ok = 1;
        for (size_t i = 0; i < n; i++) ok &= z[i] == 0;
        CHECK(ok);
        memfree(z);
    }
    CHECK(defalloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
    CHECK(memalloc_check() == 0);
}

/* The engine's clock, moved by the tests alone (os_clock_set): what
 * depends on time happens at the times the test says, however long the
 * machine takes. main() stops the clock at its start. */
static uint64_t clock_ms;
static void advance(uint64_t ms) {
    clock_ms += ms;
    os_clock_set(clock_ms);
}

/* A call that takes the arena's lock: it runs a purge pass that is due
 * (the tests run without thread caches, MEMALLOC_TCACHE=0). */
static void kick(void) {
    memfree(memalloc(4000));
}

/* Two epochs, each ended by a pass: the working set forgets what the
 * program held before (its slack aside). */
static void forget(void) {
    for (int i = 0; i < 2; i++) {
        advance(WS_EPOCH_MS + 1);
        kick();
    }
}

/* With a purge delay of 0 (as ctest sets it) everything free goes back at
 * once; with a delay, free memory stays resident while the program held
 * it within the last two epochs, and goes back when they are past. */
TEST(test_purge_and_unmap) {
    enum { N = 2000 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = memalloc(2000);
        memset(blocks[i], 1, 2000);
    }
    char *lo = blocks[0], *hi = blocks[N - 1] + 2000;
    CHECK(resident_pages(lo, (size_t)(hi - lo)) >= (size_t)(hi - lo) / 4096 - 2);
    for (int i = N - 1; i >= 0; i--) memfree(blocks[i]);
    /* the freed top is given back, but for half the trim threshold */
    CHECK(resident_pages(lo, (size_t)(hi - lo)) <= (128 << 10) / 4096 + 4);
    CHECK(memalloc_check() == 0);

    /* a large span freed between live blocks: its pages go back too */
    enum { S = 1600 };
    static char *span[S];
    char *left = memalloc(100);
    for (int i = 0; i < S; i++) {
        span[i] = memalloc(4000);
        memset(span[i], 2, 4000);
    }
    char *right = memalloc(100);
    size_t span_len = (size_t)(span[S - 1] - span[0]);
    CHECK(resident_pages(span[0], span_len) >= span_len / 4096 - 2);
    for (int i = 0; i < S; i++) memfree(span[i]);
    CHECK(!cinuse(payload_chunk(span[0])) && chunk_of(span[0]) > span_len); /* one chunk */
    CHECK(resident_pages(span[0], span_len) < span_len / 4096 / 2);
    CHECK(memalloc_check() == 0);
    memfree(left);
    memfree(right);

    /* three regions' worth, freed: empty regions are unmapped, one spare
     * kept; with a delay, once the working set forgets them */
    enum { M = 1800 };
    static char *b[M];
    struct memalloc_stats s;
    for (int delay = 0; delay <= 10; delay += 10) {
        CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, (size_t)delay) == 0);
        CHECK(memalloc_trim(0) == 1 || delay == 0); /* no slack learnt, nothing held */
        for (int i = 0; i < M; i++) b[i] = memalloc(100 << 10);
        memalloc_get_stats(&s);
        CHECK(s.regions >= 3);
        for (int i = 0; i < M; i++) memfree(b[i]);
        kick();
        memalloc_get_stats(&s);
        CHECKF(delay ? s.regions >= 3 : s.regions <= 2, "delay %d: %zu regions", delay,
               (size_t)s.regions);
        forget();
        memalloc_get_stats(&s);
        CHECKF(s.regions <= 2, "delay %d: %zu regions", delay, (size_t)s.regions);
        CHECK(memalloc_check() == 0);
    }
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
    CHECK(memalloc_trim(0) == 1);
    memalloc_get_stats(&s);
    CHECK(s.regions == 0 && s.heap_in_use == 0);
    char *again = memalloc(10);
    CHECK(again != NULL && memalloc_check() == 0);
    memfree(again);
}

/* A span of SPAN 4000-byte blocks between two live blocks, touched: freed,
 * it is one free chunk of about SPAN * 4 KiB. */
enum { SPAN = 300 }; /* 1.2 MB: a big span (1 MiB or more), which the working set keeps */
static char *make_span(char **v) {
    memalloc(100); /* left and right neighbours, kept (the right one is the
                    * next block of the row: the span is not a region's top) */
    for (int i = 0; i < SPAN; i++) memset(v[i] = memalloc(4000), 3, 4000);
    memalloc(4000);
    return v[0];
}
static void free_span(char **v) {
    for (int i = 0; i < SPAN; i++) memfree(v[i]);
}

/* Blocks of a span whose pages (the first and the last) are resident. */
static int resident_blocks(char **v) {
    int n = 0;
    for (int i = 0; i < SPAN; i++)
        n += resident_pages(v[i], 1) + resident_pages(v[i] + 3999, 1) == 2;
    return n;
}

/* The working set: a span freed stays resident while the program held
 * it within the last two epochs; then it goes. A span purged and then
 * faulted in again within two epochs teaches the heap slack: the next
 * one stays past the window, until epochs without such regret halve the
 * slack below it. */
TEST(test_purge_follows_the_working_set) {
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    memalloc_trim(0); /* no slack, no peak from the tests before */
    static char *va[SPAN];
    make_span(va);
    free_span(va);
    advance(WS_EPOCH_MS / 2);
    kick();
    CHECK(resident_blocks(va) == SPAN);
    advance(WS_EPOCH_MS);
    kick();
    CHECK(resident_blocks(va) == SPAN); /* the epoch before held it */
    forget();
    CHECK(resident_blocks(va) < SPAN / 10);
    /* faulted in again right after the purge: regret (a block that only
     * the purged span fits best: the mmap threshold above its size) */
    enum { W = SPAN * 4000 - 8192 };
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 8 << 20) == 0);
    char *w = memalloc(W);
    REQUIRE(w != NULL);
    CHECK(payload_chunk(w) == payload_chunk(va[0]));
    memset(w, 4, W);
    memfree(w);
    struct heap *h = region_of(w)->heap;
    advance(WS_EPOCH_MS + 1);
    kick(); /* an epoch ended since: what was purged and faulted in again is
             * slack (halved by an epoch without regret, if two ended) */
    CHECKF(h->slack >= W / 2 - 8192, "slack %zu", h->slack);
    CHECK(resident_pages(w, W) >= W / 4096 - 2);
    advance(WS_EPOCH_MS + 1);
    kick(); /* the peak is forgotten, the slack halved again: below w */
    CHECK(resident_pages(w, W) < 8);
    advance(6 * WS_EPOCH_MS);
    memfree(memalloc(64 << 10)); /* a large free: the epoch rolls */
    /* (the 64 KiB this block faulted in aside: regret of its own) */
    CHECKF(h->slack < W / 4, "slack %zu after six epochs without regret", h->slack);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

/* Calls for mapped blocks take no arena lock, but run a pass that is due:
 * a program that frees heap blocks and then only allocates and frees
 * large ones gets the freed memory purged all the same. */
TEST(test_purge_from_large_calls) {
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    memalloc_trim(0);
    static char *v[SPAN];
    make_span(v);
    free_span(v); /* makes a pass due */
    advance(WS_EPOCH_MS + 1);
    kick(); /* a pass: the epoch before held it */
    CHECK(resident_blocks(v) == SPAN);
    advance(WS_EPOCH_MS + 1);
    CHECK(resident_blocks(v) == SPAN); /* the next pass is due: no call has run it yet */
    char *big = memalloc(1 << 20);
    REQUIRE(big && !region_lookup(big));
    CHECK(resident_blocks(v) < SPAN / 10);
    memfree(big);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

/* A small span (under 1 MiB: a hole between blocks) follows the same
 * rule: it stays while the program held its bytes within the last two
 * epochs (a program that frees and allocates mid-sized buffers would
 * otherwise fault them in again after every delay), and goes when the
 * working set forgets them. */
TEST(test_small_spans_follow_the_working_set) {
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    memalloc_trim(0);
    enum { SMALL = 50 };
    static char *vs[SMALL];
    memalloc(100);
    for (int i = 0; i < SMALL; i++) memset(vs[i] = memalloc(4000), 3, 4000);
    memalloc(100);
    for (int i = 0; i < SMALL; i++) memfree(vs[i]);
    advance(50);
    kick();
    CHECK(resident_pages(vs[0], SMALL * 4000) >= SMALL * 4000 / 4096 - 2);
    forget();
    CHECK(resident_pages(vs[0], SMALL * 4000) < 8);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

/* Regret counts within the epoch: memory purged and faulted in again
 * keeps, from the next pass on, as much of the other dirt resident. Here
 * a program frees one buffer (half a span, B) and takes a bigger one that
 * only the purged span A holds, at the same in_use: the peak covers
 * nothing, the regret covers B. */
TEST(test_regret_counts_at_once) {
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 8 << 20) == 0);
    memalloc_trim(0);
    static char *va[SPAN], *vb[SPAN];
    make_span(va);
    memalloc(100);
    for (int i = 0; i < SPAN / 2; i++) memset(vb[i] = memalloc(4000), 3, 4000);
    memalloc(4000);
    free_span(va);
    forget();
    REQUIRE(resident_blocks(va) < SPAN / 10);
    for (int i = 0; i < SPAN / 2; i++) memfree(vb[i]);
    enum { W = SPAN * 4000 - 8192 };
    char *w = memalloc(W);
    REQUIRE(w != NULL && payload_chunk(w) == payload_chunk(va[0]));
    memset(w, 4, W);
    advance(20); /* past the purge delay, within the epoch */
    kick();
    int kept = 0;
    for (int i = 0; i < SPAN / 2; i++) kept += resident_pages(vb[i], 1) == 1;
    CHECKF(kept >= SPAN / 2 - 2, "%d of %d blocks of B resident", kept, SPAN / 2);
    memfree(w);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

/* Memory the heap faulted in within the epoch is its working set too: a
 * program that frees a buffer and takes a bigger one that does not fit
 * the hole (so the heap grows, at about the same in_use) reuses the hole
 * soon; purged, it would fault in again. It goes when the epochs pass. */
TEST(test_memory_faulted_in_stays_for_the_epoch) {
    enum { HOLE = 800000 }; /* a span under 1 MiB, on the purge delay */
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 8 << 20) == 0);
    memalloc_trim(0);
    /* blocks of HOLE bytes until one lies between two others (the heap's
     * free chunks from the tests before serve the first ones) */
    enum { NB = 16 };
    static char *b[NB];
    char *hole = NULL;
    for (int i = 0; i < NB && !hole; i++) {
        REQUIRE((b[i] = memalloc(HOLE)) != NULL);
        memset(b[i], 3, HOLE);
        if (i >= 2 && chunk_next(payload_chunk(b[i - 2])) == payload_chunk(b[i - 1]) &&
            chunk_next(payload_chunk(b[i - 1])) == payload_chunk(b[i]))
            hole = b[i - 1];
    }
    REQUIRE(hole != NULL);
    forget(); /* what the blocks faulted in is an epoch past */
    memfree(hole);
    enum { W = HOLE + 80000 };
    char *w = memalloc(W); /* too big for the hole: memory the heap faults in */
    REQUIRE(w != NULL && (w + W <= hole || w >= hole + HOLE));
    memset(w, 4, W);
    advance(20); /* past the purge delay, within the epoch */
    kick();
    size_t res = resident_pages(hole, HOLE);
    CHECKF(res >= HOLE / 4096 - 2, "%zu OS pages of the hole resident", res);
    forget();
    res = resident_pages(hole, HOLE);
    CHECKF(res < 8, "%zu OS pages of the hole resident after two epochs", res);
    memfree(w);
    for (int i = 0; i < NB; i++)
        if (b[i] && b[i] != hole) memfree(b[i]);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

TEST(test_alignment) {
    for (size_t a = 1; a <= ((size_t)32 << 20); a <<= 1) {
        size_t sizes[] = {0, 1, 100, 5000, 200000};
        for (int k = 0; k < 5; k++) {
            char *p = memalloc_aligned(a, sizes[k]);
            CHECK(p && ((uintptr_t)p % (a < 16 ? 16 : a)) == 0);
            if (!p) continue;
            memset(p, 3, sizes[k]);
            CHECK(memalloc_usable_size(p) >= sizes[k]);
            memfree(p);
        }
    }
    CHECK(memalloc_aligned(24, 10) == NULL && errno == EINVAL);
    CHECK(memalloc_check() == 0);
}

/* memalloc_check() of a heap broken on purpose: its reports are expected. */
static int check_quietly(void) {
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    int v = memalloc_check();
    dup2(saved, 2);
    close(saved);
    close(null);
    return v;
}

TEST(test_checker_sees_corruption) {
    char *a = memalloc(40), *b = memalloc(40), *c = memalloc(40), *d = memalloc(40);
    CHECK(memalloc_check() == 0);
    struct chunk *cb = payload_chunk(b);
    size_t saved = cb->head;
    memset(a, 0xee, 48); /* overflow a by 8 bytes: into b's head */
    CHECK(check_quietly() > 0);
    cb->head = saved;
    CHECK(memalloc_check() == 0);
    memfree(c);
    struct freelink *l = chunk_link(payload_chunk(c));
    struct freelink *next = l->next;
    l->next = l; /* a broken free-list link */
    CHECK(check_quietly() > 0);
    l->next = next;
    size_t foot = payload_chunk(d)->prev_foot;
    payload_chunk(d)->prev_foot = 16; /* a wrong footer */
    CHECK(check_quietly() > 0);
    payload_chunk(d)->prev_foot = foot;
    CHECK(memalloc_check() == 0);
    memfree(a);
    memfree(b);
    memfree(d);
    CHECK(memalloc_check() == 0);
}

/* Run fn in a child; expect SIGABRT and a stderr line starting with want. */
static void expect_abort(void (*fn)(void *), void *arg, const char *want) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    char buf[256] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(n > 0 && strncmp(buf, want, strlen(want)) == 0);
    if (n <= 0 || strncmp(buf, want, strlen(want)) != 0) fprintf(stderr, "  got: %s\n", buf);
}

static void free_twice(void *p) {
    memfree(p);
    memfree(p);
}
static void free_it(void *p) {
    memfree(p);
}
static void resize_it(void *p) {
    memresize(p, 10);
}

TEST(test_misuse_reports) {
    char line[128];
    char *p = memalloc(64);
    snprintf(line, sizeof line, "memalloc: memfree(): double free of %p\n", (void *)p);
    expect_abort(free_twice, p, line);
    char *big = memalloc(1 << 20);
    snprintf(line, sizeof line, "memalloc: memfree(): double free of %p\n", (void *)big);
    expect_abort(free_twice, big, line);
    snprintf(line, sizeof line, "memalloc: memfree(): invalid pointer %p\n", (void *)(p + 16));
    expect_abort(free_it, p + 16, line);
    snprintf(line, sizeof line, "memalloc: memfree(): invalid pointer %p\n", (void *)(p + 1));
    expect_abort(free_it, p + 1, line);
    char on_stack[32];
    snprintf(line, sizeof line, "memalloc: memfree(): invalid pointer %p\n", (void *)on_stack);
    expect_abort(free_it, on_stack, line);
    memfree(p);
    snprintf(line, sizeof line, "memalloc: memresize(): pointer already freed %p\n", (void *)p);
    expect_abort(resize_it, p, line);
    memfree(big);
}

static void write_at(void *p) {
    *(volatile char *)p = 1;
}

/* A region is open (accessible) only as far as its heap has carved, by
 * steps of a MiB: a write past the mark faults, a free there is an
 * invalid pointer (its would-be header is not read), and carving past the
 * mark opens more. */
TEST(test_region_open_mark) {
    enum { N = 64, SIZE = 100 << 10 }; /* (below the mmap threshold) */
    char *v[N];
    v[0] = memalloc(SIZE);
    REQUIRE(v[0] && region_lookup(v[0]));
    struct region *r = region_of(v[0]);
    char *open = r->open;
    CHECK(open >= v[0] + SIZE && open < region_end(r) && (uintptr_t)open % (1 << 20) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        write_at(open);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    char line[128];
    snprintf(line, sizeof line, "memalloc: memfree(): invalid pointer %p\n", (void *)(open + 64));
    expect_abort(free_it, open + 64, line);
    /* more blocks than the first step holds: the mark rises past them all */
    int past = 0;
    for (int i = 1; i < N; i++) {
        v[i] = memalloc(SIZE);
        REQUIRE(v[i] != NULL);
        if (region_of(v[i]) != r) continue;
        memset(v[i], 0x11, SIZE);
        CHECK(v[i] + SIZE <= r->open);
        past |= v[i] + SIZE > open;
    }
    CHECK(past && r->open > open);
    CHECK(memalloc_check() == 0);
    for (int i = 0; i < N; i++) memfree(v[i]);
    CHECK(memalloc_check() == 0);
}

/* A free chunk that ends at the fencepost of a region that is open whole
 * is carved whole: there is nothing left to open (it once failed with
 * ENOMEM: the heap asked to open past the region's end). In a child: the
 * heap is a private one, whose region no arena knows. */
TEST(test_carve_at_the_fencepost) {
    pid_t pid = fork();
    if (pid == 0) {
        static struct heap h; /* zeroed, as an arena's */
        heap_init(&h);
        size_t rest = 1024;
        char *a = heap_alloc(&h, REGION_CAPACITY - rest, NULL);
        if (!a) _exit(2);
        struct region *r = region_of(a);
        if (r->open != region_end(r)) _exit(3);
        char *b = heap_alloc(&h, rest, NULL); /* exactly the rest, next to the fencepost */
        if (!b) _exit(4);
        _exit(region_of(b) == r && chunk_next(payload_chunk(b)) == region_fence(r) ? 0 : 5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
}

int main(void) {
    clock_ms = os_now_ms(); /* from here on, the clock moves when a test says */
    os_clock_set(clock_ms);
    RUN(test_bootstrap);
    RUN(test_split_and_coalesce);
    RUN(test_resize_in_place);
    RUN(test_large_blocks);
    RUN(test_fresh_pages);
    RUN(test_huge_page_advice);
    RUN(test_purge_and_unmap);
    RUN(test_purge_follows_the_working_set);
    RUN(test_purge_from_large_calls);
    RUN(test_small_spans_follow_the_working_set);
    RUN(test_regret_counts_at_once);
    RUN(test_memory_faulted_in_stays_for_the_epoch);
    RUN(test_alignment);
    RUN(test_checker_sees_corruption);
    RUN(test_misuse_reports);
    RUN(test_region_open_mark);
    RUN(test_carve_at_the_fencepost);
    return harness_finish();
}
