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
    char *p = memalloc(1 << 20);
    memalloc_get_stats(&s1);
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks + 1);
    CHECK(region_lookup(p) == NULL && memalloc_usable_size(p) >= (1 << 20));
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

    /* three regions' worth, freed: empty regions are unmapped, one spare kept */
    enum { M = 1800 };
    static char *b[M];
    for (int i = 0; i < M; i++) b[i] = memalloc(100 << 10);
    struct memalloc_stats s;
    memalloc_get_stats(&s);
    CHECK(s.regions >= 3);
    for (int i = 0; i < M; i++) memfree(b[i]);
    memalloc_get_stats(&s);
    CHECK(s.regions <= 2);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_trim(0) == 1);
    memalloc_get_stats(&s);
    CHECK(s.regions == 0 && s.heap_in_use == 0);
    char *again = memalloc(10);
    CHECK(again != NULL && memalloc_check() == 0);
    memfree(again);
}

/* A span of SPAN 4000-byte blocks between two live blocks, touched: freed,
 * it is one free chunk of about SPAN * 4 KiB. */
enum { SPAN = 100 }; /* 400 KB: less than the young budget (512 KiB) */
static char *make_span(char **v) {
    memalloc(100); /* left and right neighbours, kept */
    for (int i = 0; i < SPAN; i++) memset(v[i] = memalloc(4000), 3, 4000);
    memalloc(100);
    return v[0];
}
static void free_span(char **v) {
    for (int i = 0; i < SPAN; i++) memfree(v[i]);
}

/* The engine's clock, moved by the tests alone (os_clock_set): what
 * depends on the purge delay happens at the times the test says, however
 * long the machine takes. main() stops the clock at its start. */
static uint64_t clock_ms;
static void advance(uint64_t ms) {
    clock_ms += ms;
    os_clock_set(clock_ms);
}

/* Blocks of a span whose pages (the first and the last) are resident. */
static int resident_blocks(char **v) {
    int n = 0;
    for (int i = 0; i < SPAN; i++)
        n += resident_pages(v[i], 1) + resident_pages(v[i] + 3999, 1) == 2;
    return n;
}

/* A call that takes the arena's lock: it runs a purge pass that is due
 * (the tests run without thread caches, MEMALLOC_TCACHE=0). */
static void kick(void) {
    memfree(memalloc(4000));
}

/* A purge pass gives back only the spans free for the purge delay: a span
 * freed shortly before the pass stays resident until the next one; and
 * such young spans are kept up to 512 KiB per arena. */
TEST(test_purge_waits_for_the_delay) {
    enum { DELAY = 300 };
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, DELAY) == 0);
    static char *va[SPAN], *vb[SPAN];
    make_span(va);
    make_span(vb);
    free_span(va); /* makes a pass due at +300 */
    advance(150);
    free_span(vb);
    CHECK(resident_blocks(va) == SPAN && resident_blocks(vb) == SPAN);
    advance(200);
    kick(); /* the pass at +350: va is 350 ms old, vb 200 */
    CHECK(resident_blocks(va) < SPAN / 10);
    CHECK(resident_blocks(vb) == SPAN);
    advance(DELAY);
    kick(); /* the next pass, due a delay after the last one */
    CHECK(resident_blocks(vb) < SPAN / 10);
    CHECK(memalloc_check() == 0);

    /* young spans are kept up to 512 KiB per arena: of five of 200 KB
     * freed just before a pass, two stay resident (in the heap: the mmap
     * threshold is raised; live blocks between them keep them apart, and
     * the last one keeps them from being the region's top) */
    enum { MID = 200 << 10, NMID = 5 };
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 8 << 20) == 0);
    char *mid[NMID], *sep[NMID + 1];
    for (int i = 0; i < NMID; i++) {
        sep[i] = memalloc(100 << 10);
        mid[i] = memalloc(MID);
        REQUIRE(mid[i] && sep[i] && region_lookup(mid[i]));
        memset(mid[i], 1, MID);
    }
    sep[NMID] = memalloc(100 << 10);
    memfree(mid[0]); /* makes a pass due in DELAY ms */
    advance(DELAY - 100);
    for (int i = 1; i < NMID; i++) memfree(mid[i]);
    advance(150);
    kick(); /* runs the pass that the first free made due */
    CHECK(resident_pages(mid[0], MID) < 8);
    size_t kept = 0;
    for (int i = 1; i < NMID; i++) kept += resident_pages(mid[i], MID);
    CHECKF(kept >= MID / 4096 - 8 && kept <= (512 << 10) / 4096 + 8,
           "%zu pages of 4 x %d KiB young kept", kept, MID >> 10);
    for (int i = 0; i <= NMID; i++) memfree(sep[i]);
    CHECK(memalloc_check() == 0);

    /* spans of 1 MiB or more (a large block's) stay ten delays */
    enum { SHORT = 50, BIG = 1200 << 10 };
    advance(DELAY + 50); /* no pass left due from above */
    kick();
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, SHORT) == 0);
    char *kicks[3]; /* frees that take the lock (a due pass runs), apart from big */
    for (int i = 0; i < 3; i++) kicks[i] = memalloc(4000);
    /* big: one of six blocks in a row whose neighbours are two of them, so
     * that freed it is a span of its own (not merged, not the top) */
    enum { ROW = 6 };
    char *row[ROW], *big = NULL;
    for (int i = 0; i < ROW; i++) REQUIRE((row[i] = memalloc(BIG)) && region_lookup(row[i]));
    for (int i = 1; i + 1 < ROW && !big; i++)
        if (chunk_next(payload_chunk(row[i - 1])) == payload_chunk(row[i]) &&
            chunk_next(payload_chunk(row[i])) == payload_chunk(row[i + 1]))
            big = row[i];
    REQUIRE(big != NULL);
    memset(big, 1, BIG);
    memfree(big);
    advance(3 * SHORT);
    memfree(kicks[0]); /* a pass three delays on: big stays */
    CHECK(resident_pages(big, BIG) >= BIG / 4096 - 8);
    advance(8 * SHORT);
    memfree(kicks[1]); /* another, eleven delays on: big goes */
    CHECK(resident_pages(big, BIG) < 8);
    memfree(kicks[2]);
    for (int i = 0; i < ROW; i++)
        if (row[i] != big) memfree(row[i]);

    /* a span that keeps growing by merges is still purged ten delays after
     * its oldest dirt, not ten after its latest merge: big, then a piece
     * after it freed every 40 ms (each merges into the span) */
    enum { PIECE = 64 << 10, NPIECE = 16 };
    char *line[NPIECE + 3];
    big = NULL;
    for (int tries = 0; tries < 4 && !big; tries++) {
        REQUIRE((line[0] = memalloc(PIECE)) && (line[1] = memalloc(BIG)));
        for (int i = 2; i < NPIECE + 3; i++) REQUIRE((line[i] = memalloc(PIECE)));
        int adjacent = 1;
        for (int i = 0; i + 1 < NPIECE + 3; i++)
            adjacent &= chunk_next(payload_chunk(line[i])) == payload_chunk(line[i + 1]);
        if (adjacent)
            big = line[1];
        else /* (kept live: the next try must not take the same chunks) */
            REQUIRE(tries < 3);
    }
    REQUIRE(big != NULL);
    memset(big, 1, BIG);
    for (int i = 2; i < NPIECE + 2; i++) memset(line[i], 1, PIECE);
    memfree(big);
    for (int i = 2; i < NPIECE + 2; i++) {
        advance(40);
        memfree(line[i]); /* merges; runs the passes that come due */
    }
    /* 640 ms after big's free, 40 after the last merge */
    CHECKF(resident_pages(big, BIG) < 8, "big span: %zu pages resident", resident_pages(big, BIG));
    /* a piece merging into the purged span is dirt of its own size: it
     * goes after one delay, not ten as the span's size would have it */
    memset(line[0], 1, PIECE);
    memfree(line[0]);
    advance(3 * SHORT);
    kick(); /* a pass */
    CHECKF(resident_pages(line[0], PIECE) < 4, "piece: %zu pages resident",
           resident_pages(line[0], PIECE));
    memfree(line[NPIECE + 2]);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 0) == 0);
}

/* Calls for mapped blocks take no arena lock, but run a pass that is due:
 * a program that frees heap blocks and then only allocates and frees
 * large ones gets the freed memory purged all the same. */
TEST(test_purge_from_large_calls) {
    enum { DELAY = 100 };
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, DELAY) == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    static char *v[SPAN], *w[SPAN];
    make_span(v);
    make_span(w);
    free_span(v); /* makes a pass due */
    advance(DELAY + 50);
    CHECK(resident_blocks(v) == SPAN); /* no call has run it yet */
    char *big = memalloc(1 << 20);
    REQUIRE(big && !region_lookup(big));
    CHECK(resident_blocks(v) < SPAN / 10);
    free_span(w);
    advance(DELAY + 50);
    CHECK(resident_blocks(w) == SPAN);
    memfree(big);
    CHECK(resident_blocks(w) < SPAN / 10);
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
    RUN(test_purge_waits_for_the_delay);
    RUN(test_purge_from_large_calls);
    RUN(test_alignment);
    RUN(test_checker_sees_corruption);
    RUN(test_misuse_reports);
    return harness_finish();
}
