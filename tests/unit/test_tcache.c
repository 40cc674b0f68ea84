/*
 * test_tcache.c: the size classes and their pages, and the cache of freed
 * mappings, seen from one thread: the class table and the objects' grid
 * and alignment, reuse from a page, pages taken and given back (and kept:
 * the current one and idle ones, which serve other classes too), double
 * frees, interior pointers and writes to freed objects caught, the checker
 * walking the pages and the window map, statistics that tell free bytes
 * in pages from bytes in use, turning the cache off, the dynamic mmap
 * threshold, freed large mappings reused, then given back (by age and by
 * trim), and huge pages asked for large malloc'd mappings. Links the
 * engine directly; includes its private headers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "arena.h"
#include "large.h"
#include "memalloc.h"
#include "os.h"
#include "tcache.h"

/* The engine's clock, moved by the tests alone (os_clock_set); main()
 * stops it at its start. */
static uint64_t clock_ms;
static void advance(uint64_t ms) {
    clock_ms += ms;
    os_clock_set(clock_ms);
}

/* Give back all the memory there is to give back: a second trim then
 * finds none. */
static void trim_all(void) {
    (void)memalloc_trim(0);
    CHECK(memalloc_trim(0) == 0);
}

static struct memalloc_stats stats(void) {
    struct memalloc_stats s;
    memalloc_get_stats(&s);
    return s;
}

/* Run fn in a child; return its stderr's first line in buf and its signal. */
static int in_child(void (*fn)(void), char *buf, size_t len) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST(test_classes) {
    memalloc(1); /* initialise */
    /* every request up to the largest class maps to the smallest class
     * that holds it; class sizes grow by 16 bytes to 128, then by at
     * most a quarter */
    unsigned prev = 0;
    for (size_t n = 0; n <= CLASS_MAX; n++) {
        unsigned k = class_of(n);
        if (!CHECK_(k < NCLASSES && class_size[k] >= n && (k <= 1 || class_size[k - 1] < n) &&
                        k >= prev,
                    "class of a request"))
            return;
        prev = k;
    }
    CHECK(class_size[0] == 16 && class_size[1] == 16 && class_size[8] == 128 &&
          class_size[9] == 160 && class_size[20] == 1024 && class_size[21] == 1280);
    CHECK(class_size[NCLASSES - 1] == CLASS_MAX);
    for (unsigned k = 2; k < NCLASSES; k++) {
        CHECK(class_size[k] > class_size[k - 1]);
        CHECK(class_size[k] - class_size[k - 1] <= (k <= 8 ? 16 : class_size[k - 1] / 4));
        CHECK(class_size[k] % 16 == 0 && class_size[k] == class_size[class_of(class_size[k])]);
    }
    /* the usable size is the class's; objects have no header, and sit on
     * the grid of their class: aligned to the largest power of two that
     * divides the size (up to 4 KiB) */
    for (size_t n = 1; n < 70000; n = n * 5 / 4 + 1) {
        char *p = memalloc(n);
        size_t u = memalloc_usable_size(p);
        CHECK(u >= n);
        if (n <= CLASS_MAX) {
            CHECK(u == class_size[class_of(n)]);
            size_t pf = u & (~u + 1);
            CHECK(((uintptr_t)p & ((pf < 4096 ? pf : 4096) - 1)) == 0);
            struct page *g = page_of(region_of(p), p);
            CHECK(g != NULL && g->size == u && page_holds(g, p));
        }
        memset(p, 0x5c, u);
        memfree(p);
    }
    /* an aligned request takes the first class aligned enough */
    CHECK(class_aligned(300, 256) == class_of(512));
    CHECK(class_aligned(5000, 4096) == class_of(8192));
    CHECK(class_aligned(100, 8192) == NCLASSES);
    CHECK(class_aligned(CLASS_MAX + 1, 64) == NCLASSES);
    for (size_t align = 32; align <= 4096; align *= 2) {
        for (size_t n = 0; n <= CLASS_MAX; n += 7) {
            unsigned k = class_aligned(n, align), want = class_of(n);
            while (want < NCLASSES && class_size[want] % align) want++;
            if (!CHECK_(k == want, "aligned class")) break;
        }
    }
    CHECK(memalloc_check() == 0);
}

/* page_holds tells the grid with one multiply (tcache.h): for every class,
 * at every byte offset from below the page to past its largest span, it
 * agrees with the plain test, with the factor the pages really carry. */
TEST(test_grid_test_is_exact) {
    for (unsigned k = 1; k < NCLASSES; k++) {
        char *p = memalloc(class_size[k]);
        struct page *real = page_of(region_of(p), p);
        if (!CHECK_(real != NULL && real->k == k, "page of the class")) return;
        struct page g = *real;
        uint32_t size = g.size;
        int64_t span = (int64_t)(PAGE_MIN_OBJS + 1) * size + (int64_t)WINDOW_SIZE, off;
        g.handed = (uint32_t)(span / size * size);
        g.start = (char *)((uintptr_t)1 << 40); /* never dereferenced */
        for (off = -(int64_t)(2 * WINDOW_SIZE); off < span + (int64_t)size; off++) {
            int want = off >= 0 && off < (int64_t)g.handed && off % size == 0;
            if (page_holds(&g, g.start + off) != want) break;
        }
        memfree(p);
        CHECKF(off == span + (int64_t)size, "class %u (size %u): wrong at offset %lld", k, size,
               (long long)off);
    }
}

TEST(test_reuse_from_the_page) {
    struct memalloc_stats s0 = stats();
    char *p = memalloc(200);
    memfree(p);
    struct memalloc_stats s1 = stats();
    CHECK(s1.thread_cached >= 224); /* the object waits in its page */
    CHECK(s1.in_use == s0.in_use);
    CHECK(s1.frees == s0.frees + 1 && s1.allocs == s0.allocs + 1);
    char *q = memalloc(193); /* same class (224): the same object comes back */
    CHECK(q == p);
    CHECK(stats().in_use == s0.in_use + memalloc_usable_size(q));
    /* an object of another class is not mixed in */
    char *r = memalloc(1000);
    CHECK(r != p && memalloc_usable_size(r) == 1024);
    memfree(q);
    memfree(r);
    CHECK(memalloc_check() == 0);
    /* aligned requests come from the pages too, and go back to them */
    char *a = memalloc_aligned(256, 300);
    CHECK(a && ((uintptr_t)a & 255) == 0 && page_of(region_of(a), a) != NULL);
    memfree(a);
    char *b = memalloc_aligned(256, 300);
    CHECK(b == a);
    memfree(b);
    char *c = memalloc_aligned(4096, 300);
    CHECK(c && ((uintptr_t)c & 4095) == 0 && memalloc_usable_size(c) == 4096);
    memfree(c);
    CHECK(memalloc_check() == 0);
}

/* The pages of class k that t owns: its current page and its queue. */
static size_t pages_of(const struct tcache *t, unsigned k) {
    size_t n = t->cur[k] != &tc_nopage;
    const struct page *g = t->queue[k];
    if (g) do {
            n++;
            g = g->next;
        } while (g != t->queue[k]);
    return n;
}

TEST(test_pages_come_and_go) {
    enum { N = 10000 };
    static char *v[N];
    unsigned k = class_of(40);
    struct tcache *t = tc_self();
    REQUIRE(t != NULL);
    trim_all();
    size_t heap0 = stats().heap_in_use;
    for (int i = 0; i < N; i++) REQUIRE((v[i] = memalloc(40)) != NULL);
    /* 10000 objects of 48 bytes: eight pages of 64 KiB, all ours */
    size_t pages = pages_of(t, k);
    CHECKF(pages == 8, "%zu pages", pages);
    for (int i = 0; i < N; i++) {
        struct page *g = page_of(region_of(v[i]), v[i]);
        if (!CHECK_(g && g->owner == t && g->k == k && ((uintptr_t)page_base(g) & 0xffff) == 0 &&
                        (char *)g - page_base(g) >= 64 &&
                        (char *)g - page_base(g) <= (ptrdiff_t)page_color_offset(PAGE_COLORS - 1),
                    "an object's page"))
            break;
    }
    CHECK(stats().heap_in_use >= heap0 + 8 * 64 * 1024);
    CHECK(memalloc_check() == 0);
    /* freed: the pages that empty stay, idle, up to IDLE_PAGES of them
     * (here all eight: the current one and seven idle) */
    for (int i = 0; i < N; i++) memfree(v[i]);
    pages = pages_of(t, k);
    CHECKF(pages == 8 && t->idle_kept == 7, "%zu pages, %u idle", pages, t->idle_kept);
    /* allocated again: the idle ones serve first, no new page */
    for (int i = 0; i < N; i++) REQUIRE((v[i] = memalloc(40)) != NULL);
    CHECKF(pages_of(t, k) == 8 && t->idle_kept == 0, "%zu pages, %u idle", pages_of(t, k),
           t->idle_kept);
    for (int i = 0; i < N; i++) memfree(v[i]);
    /* past the budget, those that empty go back */
    static char *w[3 * N];
    unsigned k2 = class_of(1000);
    for (int i = 0; i < 3 * N; i++) REQUIRE((w[i] = memalloc(1000)) != NULL);
    for (int i = 0; i < 3 * N; i++) memfree(w[i]);
    CHECKF(t->idle_kept == IDLE_PAGES, "%u idle", t->idle_kept);
    CHECKF(pages_of(t, k) + pages_of(t, k2) <= 2 + IDLE_PAGES, "%zu + %zu pages", pages_of(t, k),
           pages_of(t, k2));
    CHECK(stats().heap_in_use <= heap0 + (2 + IDLE_PAGES) * 64 * 1024 + 64);
    CHECK(memalloc_check() == 0);
    /* and trim gives those back too */
    CHECK(memalloc_trim(0) == 1);
    CHECK(pages_of(t, k) == 0 && stats().heap_in_use <= heap0);
    CHECK(memalloc_check() == 0);
    /* pages of the biggest classes span several windows */
    char *big = memalloc(CLASS_MAX);
    struct page *g = page_of(region_of(big), big);
    CHECK(g != NULL && g->nwin > 1 && (size_t)(g->end - g->start) / g->size >= PAGE_MIN_OBJS);
    CHECK(page_of(region_of(big), big + CLASS_MAX - 1) == g);
    memfree(big);
    CHECK(memalloc_check() == 0);
}

/* A program that frees a batch of one size and then allocates a batch of
 * another gets the second from the pages the first left idle: no page is
 * carved, and the memory they touched serves again. */
TEST(test_idle_pages_serve_other_classes) {
    enum { N = 10000, M = 1500 };
    static char *v[N], *w[M];
    static struct page *idle[IDLE_PAGES];
    unsigned k = class_of(40), k2 = class_of(200);
    struct tcache *t = tc_self();
    REQUIRE(t != NULL);
    trim_all();
    for (int i = 0; i < N; i++) REQUIRE((v[i] = memalloc(40)) != NULL);
    for (int i = 0; i < N; i++) memfree(v[i]);
    /* seven idle pages of class k, besides its current one */
    unsigned nidle = 0;
    for (struct page *g = t->queue[k]; g && nidle < IDLE_PAGES; g = g->next) {
        idle[nidle++] = g;
        if (g->next == t->queue[k]) break;
    }
    REQUIRE(nidle == 7 && t->idle_kept == 7);
    size_t heap0 = stats().heap_in_use;
    /* 1500 objects of 224 bytes: six pages, all of them idle ones */
    for (int i = 0; i < M; i++) REQUIRE((w[i] = memalloc(200)) != NULL);
    CHECKF(stats().heap_in_use == heap0, "heap in use %zu, was %zu", stats().heap_in_use, heap0);
    CHECKF(pages_of(t, k2) == 6 && pages_of(t, k) == 2 && t->idle_kept == 1,
           "%zu pages of class %u, %zu of class %u, %u idle", pages_of(t, k2), k2, pages_of(t, k),
           k, t->idle_kept);
    for (int i = 0; i < M; i++) {
        struct page *g = page_of(region_of(w[i]), w[i]);
        int was_idle = 0;
        for (unsigned j = 0; j < nidle; j++) was_idle |= g == idle[j];
        if (!(g && g->k == k2 && g->size == class_size[k2] && was_idle && page_holds(g, w[i]))) {
            CHECKF(0, "object %d (%p): not of an idle page made one of class %u", i, (void *)w[i],
                   k2);
            break;
        }
    }
    for (int i = 0; i < M; i++) memoryset(w[i], i, 200);
    CHECK(memalloc_check() == 0);
    for (int i = 0; i < M; i++) {
        REQUIRE(w[i][0] == (char)i && w[i][199] == (char)i);
        memfree(w[i]);
    }
    CHECK(memalloc_check() == 0);
    trim_all();
}

/* Resident system pages of [p, p + len) (whole pages), or -1. */
static long resident(const void *p, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char vec[64];
    if (len / page > sizeof vec || mincore((void *)p, len, vec) != 0) return -1;
    long n = 0;
    for (size_t i = 0; i < len / page; i++) n += vec[i] & 1;
    return n;
}

static int thp_always(void) {
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
    }
    return strstr(buf, "[always]") != NULL;
}

TEST(test_light_page_touches_one_system_page) {
    /* a page holding one object has touched only its first system page:
     * chunk head, page header and object share it, and the next chunk's
     * head is in the next window */
    if (thp_always()) SKIP("transparent huge pages are 'always' here");
    trim_all(); /* idle pages back, free spans purged */
    char *p = memalloc(3000);
    REQUIRE(p != NULL);
    struct page *g = page_of(region_of(p), p);
    REQUIRE(g != NULL && g->nwin == 1);
    size_t sys = (size_t)sysconf(_SC_PAGESIZE);
    CHECK((char *)page_chunk(g) == page_base(g) && cinuse(page_chunk(g)));
    CHECK(p + 3000 <= page_base(g) + sys);
    long n = resident(page_base(g) + sys, WINDOW_SIZE - sys);
    CHECKF(n == 0, "%ld system pages of the window past the first resident", n);
    memfree(p);
    CHECK(memalloc_check() == 0);
}

/* A class that grows (its page before filled) on memory never used
 * faults its next page in a step ahead of the objects handed out, a
 * step as large as what the page handed out, in one system call: the
 * OS pages ahead are resident before the program writes them; no more
 * than that. */
TEST(test_growing_page_faults_ahead) {
    enum { N = 200 };
    static char *v[N];
    if (thp_always()) SKIP("transparent huge pages are 'always' here");
    trim_all();
    size_t sys = (size_t)sysconf(_SC_PAGESIZE);
    /* objects of 1000 bytes (class 1024): a page holds about 60 */
    struct page *first = NULL, *second = NULL;
    int i = 0;
    for (; i < N; i++) {
        REQUIRE((v[i] = memalloc(1000)) != NULL);
        struct page *g = page_of(region_of(v[i]), v[i]);
        if (!first) first = g;
        if (g != first) {
            second = g;
            break;
        }
    }
    REQUIRE(first && second && i < N);
    /* the first page of the class: one OS page at a time */
    CHECK(!first->grows);
    CHECK(second->grows);
    /* the second, as it fills: OS pages past those its objects handed out
     * lie on resident, never more than twice what it handed out */
    long ahead = 0;
    for (;;) {
        size_t handed = (size_t)(page_bump(second) - page_base(second));
        long r = resident(page_base(second), WINDOW_SIZE);
        long on = (long)((handed + sys - 1) / sys); /* OS pages the objects lie on */
        if (r - on > ahead) ahead = r - on;
        if (!(r >= on && (size_t)r * sys <= 2 * handed + 2 * sys)) {
            CHECKF(0, "%ld OS pages resident, %zu bytes handed out", r, handed);
            break;
        }
        if (++i == N) break;
        REQUIRE((v[i] = memalloc(1000)) != NULL);
        if (page_of(region_of(v[i]), v[i]) != second) break;
    }
    CHECKF(ahead >= 2, "at most %ld OS pages resident ahead", ahead);
    CHECK(resident(page_base(second), WINDOW_SIZE) == (long)(WINDOW_SIZE / sys));
    for (int j = 0; j <= i && j < N; j++) memfree(v[j]);
    CHECK(memalloc_check() == 0);
    trim_all();
}

TEST(test_realloc_growth_leaves_the_pages) {
    /* an object grown past 1 KiB moves to a chunk of the engine, which
     * can grow in place from then on; smaller growth stays in the pages */
    char *p = memalloc(600);
    REQUIRE(p != NULL && page_of(region_of(p), p) != NULL);
    for (int i = 0; i < 600; i++) p[i] = (char)i;
    char *q = memresize(p, 900);
    REQUIRE(q != NULL && page_of(region_of(q), q) != NULL);
    q = memresize(q, 1500);
    REQUIRE(q != NULL);
    CHECK(region_lookup(q) && page_of(region_of(q), q) == NULL && memalloc_usable_size(q) >= 1500);
    int same = 1;
    for (int i = 0; i < 600; i++) same &= q[i] == (char)i;
    CHECK(same);
    char *r = memresize(q, 1700);
    CHECK(r != NULL && page_of(region_of(r), r) == NULL);
    memfree(r);
    /* a small growth that moves takes a quarter more than the old size:
     * a block grown a little at a time is copied a logarithmic number of
     * times */
    char *s = memalloc(2000); /* an object of 2048 */
    REQUIRE(s != NULL && memalloc_usable_size(s) == 2048);
    s = memresize(s, 2100);
    CHECK(s != NULL && page_of(region_of(s), s) == NULL && memalloc_usable_size(s) >= 2560);
    memfree(s);
    CHECK(memalloc_check() == 0);
}

static char *victim;
static void free_twice(void) {
    memfree(victim);
    memfree(victim);
}
static void realloc_cached(void) {
    memfree(victim);
    memresize(victim, 10);
}
static void size_cached(void) {
    memfree(victim);
    memalloc_usable_size(victim);
}
static void write_then_malloc(void) {
    memfree(victim);
    memset(victim, 0x41, 16); /* use after free: the cache's links */
    memalloc(100);
}

static void free_it(void) {
    memfree(victim);
}
static void free_interior(void) {
    memfree(victim + 16);
}
static void free_unused(void) {
    struct page *g = page_of(region_of(victim), victim);
    memfree(g->end - g->size); /* on the grid, never handed out */
}

TEST(test_misuse_of_cached_blocks) {
    char line[512], want[128];
    victim = memalloc(100);
    CHECK(in_child(free_twice, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memfree(): double free of %p", (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(realloc_cached, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memresize(): pointer already freed %p", (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(size_cached, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memalloc_usable_size(): pointer already freed %p",
             (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(write_then_malloc, line, sizeof line) == SIGABRT);
    CHECKF(strstr(line, "heap corruption (a freed block was written to)") != NULL, "got: %s", line);
    memfree(victim);
    victim = memalloc(5000); /* alone in its class's page */
    REQUIRE(victim != NULL);
    CHECK(in_child(free_interior, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memfree(): invalid pointer %p", (void *)(victim + 16));
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(free_unused, line, sizeof line) == SIGABRT);
    CHECKF(strstr(line, "memfree(): invalid pointer") != NULL, "got: %s", line);
    /* a double free of an object whose page went back to the heap and was
     * purged meanwhile: the address lies inside a free chunk now */
    memfree(victim);
    CHECK(memalloc_trim(0) == 1);
    CHECK(page_of(region_of(victim), victim) == NULL);
    CHECK(in_child(free_it, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memfree(): double free of %p", (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(memalloc_check() == 0);
}

TEST(test_checker_walks_the_pages) {
    char *p = memalloc(64), *q = memalloc(64);
    memfree(p);
    CHECK(memalloc_check() == 0);
    struct tblock *b = (struct tblock *)p;
    uintptr_t key = b->key;
    b->key ^= 1; /* as a stray write would */
    CHECK(memalloc_check() >= 1);
    b->key = key;
    CHECK(memalloc_check() == 0);
    struct page *g = page_of(region_of(p), p);
    REQUIRE(g != NULL);
    g->used++; /* a count that lost track */
    CHECK(memalloc_check() >= 1);
    g->used--;
    struct region *r = region_of(g);
    size_t w = ((uintptr_t)g >> WINDOW_SHIFT) & (REGION_WINDOWS - 1);
    r->win[w] += 64; /* a window map that lost track */
    CHECK(memalloc_check() >= 1);
    r->win[w] -= 64;
    g->size += 16; /* a header overwritten */
    CHECK(memalloc_check() >= 1);
    g->size -= 16;
    struct chunk *c = page_chunk(g);
    size_t head = c->head;
    c->head &= ~CINUSE; /* a page must stay an in-use chunk */
    CHECK(memalloc_check() >= 1);
    c->head = head;
    CHECK(memalloc_check() == 0);
    CHECK(memalloc(64) == p);
    memfree(p);
    memfree(q);
}

TEST(test_cache_off) {
    char *p = memalloc(300);
    memfree(p);
    CHECK(stats().thread_cached > 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 0) == 0);
    CHECK(stats().thread_cached == 0);
    struct memalloc_stats s0 = stats();
    p = memalloc(300);
    memfree(p);
    struct memalloc_stats s1 = stats();
    CHECK(s1.thread_cached == 0 && s1.in_use == s0.in_use && s1.frees == s0.frees + 1);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 2) == EINVAL);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 1) == 0);
    p = memalloc(300);
    memfree(p);
    CHECK(stats().thread_cached > 0);
    CHECK(memalloc_check() == 0);
}

/* Must run before anything sets the mmap threshold (which fixes it). */
TEST(test_dynamic_mmap_threshold) {
    size_t mib = (size_t)1 << 20;
    trim_all();
    char *p = memalloc(mib);
    CHECK(region_lookup(p) != NULL); /* 1 MiB < 4 MiB: the heap */
    memfree(p);
    p = memalloc(8 * mib);
    CHECK(region_lookup(p) == NULL); /* 8 MiB >= 4 MiB: a mapping */
    memset(p, 1, 8 * mib);
    memfree(p);
    /* freeing it raised the threshold: its mapping could serve no request
     * whole any more, so it was unmapped, not cached (resident) */
    CHECK(stats().mmap_cached_blocks == 0);
    /* the same size now comes from the heap */
    char *q = memalloc(8 * mib);
    CHECK(region_lookup(q) != NULL);
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == 4 * mib); /* the option stays */
    memset(q, 3, 8 * mib);
    memfree(q);
    /* but never above 32 MiB; a mapping above the threshold is cached */
    p = memalloc(40 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    q = memalloc(40 * mib);
    CHECK(region_lookup(q) == NULL && q == p);
    memfree(q);
    CHECK(memalloc_check() == 0);
    /* setting the threshold turns the dynamic one off */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 * 1024) == 0);
    p = memalloc(mib);
    CHECK(region_lookup(p) == NULL);
    memfree(p);
    CHECK(memalloc_check() == 0);
}

TEST(test_mapping_cache) {
    size_t mib = (size_t)1 << 20;
    trim_all();
    CHECK(stats().mmap_cached_blocks == 0);
    char *p = memalloc(8 * mib);
    memset(p, 1, 8 * mib);
    memfree(p);
    struct memalloc_stats s = stats();
    CHECK(s.mmap_cached_blocks == 1 && s.mmap_cached_bytes >= 8 * mib);
    CHECK(s.mmapped_blocks == 0 || s.mmapped_bytes < s.mmap_cached_bytes);
    /* a slightly smaller request takes the same mapping, pages and all */
    char *q = memalloc(7 * mib);
    CHECK(q == p && memalloc_usable_size(q) >= 7 * mib);
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(q);
    /* a larger one grows it (mremap keeps the pages) */
    q = memalloc(12 * mib);
    CHECK(q != NULL && stats().mmap_cached_blocks == 0);
    memset(q, 2, 12 * mib);
    /* calloc never gets a dirty mapping */
    memfree(q);
    char *z = defalloc(1, 12 * mib);
    int zero = 1;
    for (size_t i = 0; i < 12 * mib; i += 4096) zero &= z[i] == 0;
    CHECK(zero);
    CHECK(stats().mmap_cached_blocks == 1);
    memfree(z);
    CHECK(memalloc_check() == 0);
    /* trim empties the cache */
    CHECK(memalloc_trim(0) == 1);
    CHECK(stats().mmap_cached_blocks == 0 && stats().mmap_cached_bytes == 0);
    /* at most 128 MiB are kept: a 200 MiB block is unmapped at once */
    p = memalloc(200 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 0);
    /* an entry unused for a second leaves at the next large call */
    p = memalloc(2 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    advance(1200);
    q = memalloc(64 * mib); /* the stale 2 MiB entry leaves first: a fresh mapping */
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(q);
    p = memalloc(300 * 1024); /* the head of the 64 MiB mapping; its tail stays cached */
    s = stats();
    CHECK(p == q && s.mmap_cached_blocks == 1);
    CHECK(s.mmap_cached_bytes >= 63 * mib && s.mmap_cached_bytes < 64 * mib);
    char *tail = memalloc(20 * mib); /* the tail serves the next request, in place */
    CHECK(tail > p && tail < q + 64 * mib);
    memfree(tail);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 3);
    advance(1200);
    p = memalloc(300 * 1024); /* evicts everything older than a second first */
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    CHECK(memalloc_check() == 0);
}

/* The VmFlags line of the mapping holding p, from /proc/self/smaps. */
static int vm_flags(const void *p, char *out, size_t len) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, len, "%s", line + 8);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static int advised_huge(const void *p) {
    char flags[256];
    if (vm_flags(p, flags, sizeof flags) != 0) return -1;
    return strstr(flags, " hg") != NULL;
}

TEST(test_hugepage_advice) {
    size_t mib = (size_t)1 << 20;
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        SKIP("no transparent huge pages in this kernel");
    CHECK(memalloc_get_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD) == 4 * mib);
    trim_all();
    /* a fresh malloc'd mapping of 4 MiB or more asks for huge pages */
    char *p = memalloc(8 * mib);
    CHECK(region_lookup(p) == NULL);
    CHECK(advised_huge(p) == 1);
    /* a smaller one, and a zeroed one (often used sparsely), do not */
    char *q = memalloc(2 * mib);
    CHECK(advised_huge(q) == 0);
    char *z = defalloc(1, 8 * mib);
    CHECK(advised_huge(z) == 0);
    /* a mapping grown past the threshold by realloc asks then */
    q = memresize(q, 6 * mib);
    REQUIRE(q != NULL);
    CHECK(advised_huge(q) == 1);
    memfree(p);
    memfree(q);
    memfree(z);
    CHECK(memalloc_trim(0) == 1);
    /* 0 turns it off */
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 0) == 0);
    p = memalloc(8 * mib);
    CHECK(advised_huge(p) == 0);
    memfree(p);
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 4 * mib) == 0);
    CHECK(memalloc_trim(0) == 1);
    CHECK(memalloc_check() == 0);
}

/* Blocks of size 0 (zero.h): unique, 16-aligned, no usable byte, any
 * access faults, a second free is a double free; resized, they move. */
static char *zero_victim;
static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (char *const *)a, y = (uintptr_t) * (char *const *)b;
    return x < y ? -1 : x > y;
}
static void zero_write(void) {
    *(volatile char *)zero_victim = 1;
}
static void zero_read(void) {
    (void)*(volatile char *)zero_victim;
}
static void zero_free_twice(void) {
    memfree(zero_victim);
    memfree(zero_victim);
}
static void zero_resize_freed(void) {
    memfree(zero_victim);
    memresize(zero_victim, 10);
}

TEST(test_zero_size_blocks) {
    enum { N = 3000 };
    static char *v[N];
    char line[512], want[128];
    for (int i = 0; i < N; i++) {
        v[i] = i % 2 ? memalloc(0) : defalloc(0, 0);
        if (!CHECK_(v[i] != NULL && ((uintptr_t)v[i] & 15) == 0, "a 16-aligned block")) return;
        CHECK(memalloc_usable_size(v[i]) == 0);
    }
    for (int i = 1; i < N; i++) CHECK(v[i] != v[i - 1]);
    CHECK(memalloc_check() == 0);
    /* freed and allocated again: still unique among the live ones */
    for (int i = 0; i < N; i += 2) memfree(v[i]);
    for (int i = 0; i < N; i += 2) v[i] = memalloc(0);
    qsort(v, N, sizeof v[0], cmp_ptr);
    for (int i = 1; i < N; i++) CHECK(v[i] != v[i - 1]);
    CHECK(memalloc_check() == 0);
    zero_victim = v[N / 2];
    CHECK(in_child(zero_write, line, sizeof line) == SIGSEGV);
    CHECK(in_child(zero_read, line, sizeof line) == SIGSEGV);
    CHECK(in_child(zero_free_twice, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memfree(): double free of %p", (void *)zero_victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(zero_resize_freed, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memresize(): pointer already freed %p",
             (void *)zero_victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    /* resized up: a real block; the block of size 0 is freed */
    char *p = memresize(v[0], 100);
    REQUIRE(p != NULL);
    CHECK(memalloc_usable_size(p) >= 100);
    memoryset(p, 7, 100);
    memfree(p);
    for (int i = 1; i < N; i++) memfree(v[i]);
    CHECK(memalloc_check() == 0);
}

int main(void) {
    clock_ms = os_now_ms();
    os_clock_set(clock_ms);
    RUN(test_classes);
    RUN(test_grid_test_is_exact);
    RUN(test_reuse_from_the_page);
    RUN(test_pages_come_and_go);
    RUN(test_idle_pages_serve_other_classes);
    RUN(test_light_page_touches_one_system_page);
    RUN(test_growing_page_faults_ahead);
    RUN(test_realloc_growth_leaves_the_pages);
    RUN(test_misuse_of_cached_blocks);
    RUN(test_zero_size_blocks);
    RUN(test_checker_walks_the_pages);
    RUN(test_cache_off);
    RUN(test_dynamic_mmap_threshold);
    RUN(test_mapping_cache);
    RUN(test_hugepage_advice);
    return harness_finish();
}
