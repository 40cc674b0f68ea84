/*
 * thread_cache.c: thread caches and arenas under threads (built for
 * ThreadSanitizer too):
 *   1. a thread's pages go back to the engine when the thread exits, and
 *      its counts are kept;
 *   2. objects freed by another thread go home to their page, in their own
 *      arena, after their thread exited; nothing is lost;
 *   3. threads running at once share an arena up to ARENA_SHARE caches,
 *      then spread over more (one per CPU, at most 8), each set up when a
 *      thread first needs it (until then none of its memory is resident);
 *      threads one after another use the same one;
 *   4. fork while another thread's pages hold objects: the child gets them
 *      back, and its heap checks clean;
 *   5. objects freed by another thread while their owner runs serve the
 *      owner's next allocations, with no new page;
 *   6. the idle pages of an exited thread wait in its arena, within a
 *      budget, and the next thread adopts them instead of taking new ones;
 *      a trim gives them back;
 *   7. the pages of an exited thread whose objects another thread frees
 *      go back to the heap with their last object, without a trim;
 *   8. an idle page of an exited thread that no thread adopts within the
 *      purge delay gives its memory back, and the next thread still
 *      adopts it.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "arena.h"
#include "memalloc.h"
#include "os.h"
#include "tcache.h"

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

static void *churn(void *arg) {
    (void)arg;
    enum { N = 2000 };
    static __thread char *v[N];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            v[i] = memalloc((size_t)(16 + (i * 37) % 3000));
            memset(v[i], i, 16);
        }
        for (int i = 0; i < N; i++) memfree(v[i]);
    }
    return (void *)(uintptr_t)(stats().thread_cached > 0);
}

TEST(test_exit_flushes_the_cache) {
    struct memalloc_stats s0 = stats();
    pthread_t t;
    void *had_cache = NULL;
    REQUIRE(pthread_create(&t, NULL, churn, NULL) == 0);
    pthread_join(t, &had_cache);
    struct memalloc_stats s1 = stats();
    CHECK(had_cache != NULL);                    /* it did cache blocks */
    CHECK(s1.thread_cached == s0.thread_cached); /* and gave them all back */
    CHECK(s1.in_use == s0.in_use);
    CHECK(s1.allocs >= s0.allocs + 6000 && s1.frees >= s0.frees + 6000); /* counts kept */
    CHECK(memalloc_check() == 0);
}

/* ---- 2. frees from another thread ---- */
enum { XN = 20000 };
static char *handed[XN];
static struct arena *producer_arena;

static void *produce(void *arg) {
    (void)arg;
    for (int i = 0; i < XN; i++) {
        handed[i] = memalloc((size_t)(8 + (i * 13) % 700));
        memset(handed[i], 0x6b, 8);
    }
    producer_arena = arena_of(region_of(handed[0]));
    return NULL;
}
static void *consume(void *arg) {
    (void)arg;
    for (int i = 0; i < XN; i++) memfree(handed[i]);
    return NULL;
}

TEST(test_cross_thread_frees_go_home) {
    struct memalloc_stats s0 = stats();
    pthread_t p, c;
    REQUIRE(pthread_create(&p, NULL, produce, NULL) == 0);
    pthread_join(p, NULL);
    for (int i = 0; i < XN; i++) CHECK(arena_of(region_of(handed[i])) == producer_arena);
    REQUIRE(pthread_create(&c, NULL, consume, NULL) == 0);
    pthread_join(c, NULL);
    struct memalloc_stats s1 = stats();
    CHECK(s1.in_use == s0.in_use && s1.thread_cached == s0.thread_cached);
    CHECK(memalloc_check() == 0);
}

/* ---- 3. arenas ---- */
static pthread_barrier_t both; /* the threads of at_once */
static void *first_block_arena(void *arg) {
    (void)arg;
    pthread_barrier_wait(&both);
    char *p = memalloc(100);
    struct arena *a = arena_of(region_of(p));
    pthread_barrier_wait(&both); /* hold p until both have one */
    memfree(p);
    return a;
}

/* The arenas of the first blocks of n threads that hold them at once. */
static void at_once(int n, void **arena) {
    pthread_t t[ARENA_SHARE + 1];
    pthread_barrier_init(&both, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) REQUIRE(pthread_create(&t[i], NULL, first_block_arena, NULL) == 0);
    for (int i = 0; i < n; i++) pthread_join(t[i], &arena[i]);
    pthread_barrier_destroy(&both);
}

/* A thread in arena 0 (with the main thread) allocates a chunk while the
 * main thread holds the arena's lock, CONTEND_ROUNDS times; the arena of
 * its last chunk. Round i: the main thread takes the lock and says go; the
 * thread says ready and waits for the lock; the main thread lets it go and
 * waits until the thread says done before it takes the lock again. */
enum { CONTEND_ROUNDS = 2 * ARENA_WINDOW };
static int round_go, round_ready, round_done = -1;
static void *contend(void *arg) {
    (void)arg;
    memfree(memalloc(16)); /* its cache: in arena 0, with the main thread's */
    __atomic_store_n(&round_done, 0, __ATOMIC_RELEASE);
    struct arena *a = NULL;
    for (int i = 1; i <= CONTEND_ROUNDS; i++) {
        while (__atomic_load_n(&round_go, __ATOMIC_ACQUIRE) != i) sched_yield();
        __atomic_store_n(&round_ready, i, __ATOMIC_RELEASE);
        char *p = memalloc(100 << 10); /* a chunk: the arena's lock */
        if (p && region_lookup(p)) a = arena_of(region_of(p));
        memfree(p);
        __atomic_store_n(&round_done, i, __ATOMIC_RELEASE);
    }
    return a;
}

/* Until the thread of round i waits for m, held by the caller, or has
 * done its round without it (it moved to another arena): glibc's mutexes
 * mark a lock that a thread sleeps for (its lock word is 2), and the
 * thread sleeps only after arena_lock's trylock failed. */
static void wait_for_waiter(pthread_mutex_t *m, int i) {
    while (__atomic_load_n(&m->__data.__lock, __ATOMIC_ACQUIRE) < 2 &&
           __atomic_load_n(&round_done, __ATOMIC_ACQUIRE) != i)
        sched_yield();
}

/* The arena of a thread's first block, with no other thread about. */
static void *first_block_arena_alone(void *arg) {
    (void)arg;
    char *p = memalloc(16);
    struct arena *a = arena_of(region_of(p));
    memfree(p);
    return a;
}

/* Resident pages of the arenas after the first, when main() began: a
 * single thread uses arena 0 only, and the others are not set up yet (the
 * checker reads them, which maps the zero page: hence before any test). */
static size_t idle_arena_pages = (size_t)-1;

TEST(test_threads_spread_over_arenas) {
    cpu_set_t set; /* the CPUs this process may use, as memalloc counts them */
    long ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    size_t most = ncpu < 1 ? 1 : ncpu > MAX_ARENAS ? MAX_ARENAS : (size_t)ncpu;
    struct memalloc_stats s = stats();
    CHECKF(s.arenas >= 1 && s.arenas <= most, "arenas=%zu ncpu=%ld", s.arenas, ncpu);
    /* an arena not set up had no resident page (each has pages of its own) */
    CHECK(sizeof(struct arena) % 4096 == 0);
    CHECKF(idle_arena_pages == 0, "%zu pages", idle_arena_pages);
    /* two threads at once, and the main thread: at most ARENA_SHARE
     * caches, which one arena serves */
    memfree(memalloc(16)); /* the main thread's cache, in arena 0 */
    void *at[ARENA_SHARE + 1];
    at_once(2, at);
    CHECK(s.arenas == 1); /* (no other thread has run yet) */
    CHECK(at[0] == &ma_arenas[0] && at[1] == &ma_arenas[0] && stats().arenas == 1);
    /* a thread that keeps finding arena 0's lock taken moves: to arena 1,
     * set up for it, where the CPUs allow */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 1 << 20) == 0);
    pthread_t tc;
    void *moved;
    REQUIRE(pthread_create(&tc, NULL, contend, NULL) == 0);
    for (int i = 1; i <= CONTEND_ROUNDS; i++) {
        while (__atomic_load_n(&round_done, __ATOMIC_ACQUIRE) != i - 1) sched_yield();
        pthread_mutex_lock(&ma_arenas[0].lock);
        __atomic_store_n(&round_go, i, __ATOMIC_RELEASE);
        while (__atomic_load_n(&round_ready, __ATOMIC_ACQUIRE) != i) sched_yield();
        wait_for_waiter(&ma_arenas[0].lock, i); /* the thread found the lock taken */
        pthread_mutex_unlock(&ma_arenas[0].lock);
    }
    pthread_join(tc, &moved);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 << 10) == 0);
    CHECK(moved == &ma_arenas[most >= 2 ? 1 : 0]);
    CHECK(stats().arenas == (most >= 2 ? 2 : 1));
    /* ARENA_SHARE + 1 at once: more caches than an arena serves, spread
     * over two arenas where the CPUs allow (never fewer than before) */
    at_once(ARENA_SHARE + 1, at);
    int spread = 0;
    for (int i = 1; i <= ARENA_SHARE; i++) spread |= at[i] != at[0];
    if (most >= 2) CHECK(spread);
    size_t want = most < 2 ? most : 2;
    CHECK(stats().arenas == (s.arenas > want ? s.arenas : want));
    pthread_t t1, t2;
    void *a1, *a2;
    /* threads one after another: the same arena (the least used), where
     * each finds the pages the one before left */
    REQUIRE(pthread_create(&t1, NULL, first_block_arena_alone, NULL) == 0);
    pthread_join(t1, &a1);
    REQUIRE(pthread_create(&t2, NULL, first_block_arena_alone, NULL) == 0);
    pthread_join(t2, &a2);
    CHECK(a1 == a2);
    CHECK(memalloc_check() == 0);
}

/* ---- 4. fork ---- */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *cache_and_wait(void *arg) {
    (void)arg;
    char *v[300];
    for (int i = 0; i < 300; i++) v[i] = memalloc(64);
    for (int i = 0; i < 300; i++) memfree(v[i]);
    pthread_mutex_lock(&gate);
    stage = 1;
    pthread_cond_broadcast(&gate_cv);
    while (stage != 2) pthread_cond_wait(&gate_cv, &gate);
    pthread_mutex_unlock(&gate);
    return NULL;
}

TEST(test_fork_returns_other_caches) {
    pthread_t t;
    size_t own = stats().thread_cached;
    REQUIRE(pthread_create(&t, NULL, cache_and_wait, NULL) == 0);
    pthread_mutex_lock(&gate);
    while (stage != 1) pthread_cond_wait(&gate_cv, &gate);
    pthread_mutex_unlock(&gate);
    CHECK(stats().thread_cached > own); /* the other thread holds blocks */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        int bad = memalloc_check() != 0;
        bad |= stats().thread_cached != own; /* the other thread's blocks came back */
        char *p = memalloc(64);
        memfree(p);
        bad |= memalloc_check() != 0;
        _exit(bad);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pthread_mutex_lock(&gate);
    stage = 2;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate);
    pthread_join(t, NULL);
    CHECK(memalloc_check() == 0);
}

/* ---- 5. remote frees, owner alive ---- */
enum { RN = 3000 };
static char *owned[RN];
static pthread_barrier_t steps;

static void *own_then_reuse(void *arg) {
    (void)arg;
    for (int i = 0; i < RN; i++) owned[i] = memalloc(64);
    struct memalloc_stats s0 = stats();
    pthread_barrier_wait(&steps); /* handed over */
    pthread_barrier_wait(&steps); /* all freed by the other thread */
    int ok = memalloc_check() == 0;
    /* they come back from the same pages, and no new page is taken; the
     * pages' never-used room comes first (the current page's) */
    struct page *pages[8];
    int npages = 0, same = 0, reused = 0;
    for (int i = 0; i < RN; i++) {
        struct page *g = page_of(region_of(owned[i]), owned[i]);
        int known = 0;
        for (int j = 0; j < npages; j++) known |= pages[j] == g;
        if (!known && npages < 8) pages[npages++] = g;
    }
    char *again[RN];
    for (int i = 0; i < RN; i++) again[i] = memalloc(64);
    for (int i = 0; i < RN; i++) {
        struct page *g = page_of(region_of(again[i]), again[i]);
        for (int j = 0; j < npages; j++) same += pages[j] == g;
        for (int j = 0; j < RN; j++)
            if (again[i] == owned[j]) {
                reused++;
                break;
            }
    }
    if (same != RN || reused < RN / 2 || stats().heap_in_use != s0.heap_in_use)
        fprintf(stderr, "%d of %d on the same %d pages, %d reused, heap_in_use %zu -> %zu\n", same,
                RN, npages, reused, s0.heap_in_use, stats().heap_in_use);
    ok &= npages <= 4 && same == RN && reused >= RN / 2 && stats().heap_in_use == s0.heap_in_use;
    for (int i = 0; i < RN; i++) memfree(again[i]);
    ok &= memalloc_check() == 0;
    return (void *)(uintptr_t)ok;
}

static void *free_theirs(void *arg) {
    (void)arg;
    pthread_barrier_wait(&steps);
    for (int i = 0; i < RN; i++) memfree(owned[i]);
    pthread_barrier_wait(&steps);
    return NULL;
}

TEST(test_remote_frees_serve_the_owner) {
    pthread_barrier_init(&steps, NULL, 2);
    pthread_t o, f;
    void *ok = NULL;
    REQUIRE(pthread_create(&o, NULL, own_then_reuse, NULL) == 0);
    REQUIRE(pthread_create(&f, NULL, free_theirs, NULL) == 0);
    pthread_join(f, NULL);
    pthread_join(o, &ok);
    pthread_barrier_destroy(&steps);
    CHECK(ok != NULL);
    CHECK(memalloc_check() == 0);
}

/* ---- 5b. foreign objects: a thread reuses what it freed for others ---- */
enum { FN = 200 };
static char *theirs[FN];

static pthread_barrier_t handover;

static void *allocate_theirs(void *arg) {
    (void)arg;
    for (int i = 0; i < FN; i++) theirs[i] = memalloc(64);
    pthread_barrier_wait(&handover); /* handed over */
    pthread_barrier_wait(&handover); /* the other thread is done: alive till then */
    return NULL;
}

static int is_theirs(const char *p) {
    for (int i = 0; i < FN; i++)
        if (p == theirs[i]) return 1;
    return 0;
}

static void *reuse_theirs(void *arg) {
    (void)arg;
    pthread_barrier_wait(&handover);
    int ok = 1;
    struct tcache *t = tc_get();
    unsigned k = page_of(region_of(theirs[0]), theirs[0])->k;
    struct page *home = page_of(region_of(theirs[0]), theirs[0]);
    /* freed here, kept here: no push onto the owner's page */
    for (int i = 0; i < 32; i++) memfree(theirs[i]);
    ok &= t->nforeign[k] == 32 && tf_count(load_relaxed(&home->thread_free)) == 0;
    ok &= memalloc_check() == 0; /* (walks this thread's foreign objects) */
    /* the next allocations of the class take them, newest first */
    for (int i = 31; i >= 0; i--) {
        char *p = memalloc(64);
        ok &= p == theirs[i];
    }
    ok &= t->nforeign[k] == 0;
    /* a double free of one kept is reported */
    memfree(theirs[0]);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 2);
        memfree(theirs[0]);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ok &= WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    /* past the bound, all go home: their pages' remote frees */
    for (int i = 1; i < FN; i++) memfree(theirs[i]);
    ok &= t->nforeign[k] < 64;
    ok &= tf_count(load_relaxed(&home->thread_free)) > 0;
    ok &= memalloc_check() == 0;
    char *p = memalloc(64);
    ok &= p != NULL && (is_theirs(p) || t->nforeign[k] == 0);
    memfree(p);
    if (!ok) fprintf(stderr, "reuse_theirs: failed (nforeign %u)\n", t->nforeign[k]);
    pthread_barrier_wait(&handover);
    return (void *)(uintptr_t)ok;
}

TEST(test_foreign_frees_serve_the_freeing_thread) {
    pthread_t a, b;
    void *ok = NULL;
    pthread_barrier_init(&handover, NULL, 2);
    /* (the owner stays alive: its pages keep an owner, not orphans) */
    REQUIRE(pthread_create(&a, NULL, allocate_theirs, NULL) == 0);
    REQUIRE(pthread_create(&b, NULL, reuse_theirs, NULL) == 0);
    pthread_join(b, &ok);
    pthread_join(a, NULL);
    pthread_barrier_destroy(&handover);
    CHECK(ok != NULL);
    CHECK(memalloc_check() == 0);
}

/* ---- 6. idle orphans ---- */
static void *touch_classes(void *arg) {
    (void)arg;
    static const size_t size[8] = {100, 300, 600, 1000, 1500, 2500, 3500, 5000}; /* 8 classes */
    char *v[8];
    for (int i = 0; i < 8; i++) v[i] = memalloc(size[i]);
    for (int i = 0; i < 8; i++) memfree(v[i]);
    return NULL;
}

static void touch_classes_in_a_thread(void) {
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, touch_classes, NULL) == 0);
    pthread_join(t, NULL);
}

TEST(test_idle_pages_wait_for_the_next_thread) {
    trim_all();
    struct memalloc_stats s0 = stats();
    CHECK(s0.arena_cached == 0);
    touch_classes_in_a_thread();
    struct memalloc_stats s1 = stats();
    /* eight idle pages of 64 KiB, kept whole by the arena */
    CHECKF(s1.arena_cached >= 8 * 60000 && s1.heap_in_use >= s0.heap_in_use + 8 * 64 * 1024,
           "arena_cached %zu, heap_in_use %zu -> %zu", s1.arena_cached, s0.heap_in_use,
           s1.heap_in_use);
    CHECK(memalloc_check() == 0);
    /* the next thread (on the same arena) adopts them: no new page */
    touch_classes_in_a_thread();
    struct memalloc_stats s2 = stats();
    CHECKF(s2.heap_in_use == s1.heap_in_use && s2.arena_cached == s1.arena_cached,
           "heap_in_use %zu -> %zu, arena_cached %zu -> %zu", s1.heap_in_use, s2.heap_in_use,
           s1.arena_cached, s2.arena_cached);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_trim(0) == 1);
    CHECK(stats().arena_cached == 0 && stats().heap_in_use <= s0.heap_in_use);
    CHECK(memalloc_check() == 0);
}

/* ---- 7. objects outliving their thread ---- */
enum { ON = 20000 };
static char *outlive[ON];
static void *allocate_and_exit(void *arg) {
    (void)arg;
    for (int i = 0; i < ON; i++) outlive[i] = memalloc(200);
    return NULL;
}

TEST(test_orphans_go_back_with_their_last_object) {
    trim_all();
    struct memalloc_stats s0 = stats();
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, allocate_and_exit, NULL) == 0);
    pthread_join(t, NULL);
    struct memalloc_stats s1 = stats();
    /* 20000 objects of 208 bytes: 64 pages or so, orphans now */
    CHECKF(s1.heap_in_use >= s0.heap_in_use + (size_t)ON * 208, "heap_in_use %zu -> %zu",
           s0.heap_in_use, s1.heap_in_use);
    for (int i = 0; i < ON; i++) memfree(outlive[i]);
    CHECK(memalloc_check() == 0);
    /* back, but what the arena keeps of idle orphans (1 MiB touched) */
    struct memalloc_stats s2 = stats();
    CHECKF(s2.heap_in_use <= s0.heap_in_use + ORPHAN_KEEP + 64 * 1024 && s2.in_use == s0.in_use &&
               s2.arena_cached <= ORPHAN_KEEP + 64 * 1024,
           "heap_in_use %zu -> %zu -> %zu, arena_cached %zu", s0.heap_in_use, s1.heap_in_use,
           s2.heap_in_use, s2.arena_cached);
    CHECK(memalloc_trim(0) == 1);
    CHECK(stats().heap_in_use <= s0.heap_in_use);
    CHECK(memalloc_check() == 0);
}

/* ---- 8. idle orphans age ---- */
/* The engine's clock, moved by the tests alone (os_clock_set); main()
 * stops it at its start. */
static uint64_t clock_ms;

enum { AGE_N = 200, AGE_SIZE = 1000, AGE_DELAY = 500 };
static char *aged[AGE_N];
static int aged_broken; /* objects that did not keep what was written */
static void *allocate_free_exit(void *arg) {
    (void)arg;
    for (int i = 0; i < AGE_N; i++)
        if ((aged[i] = memalloc(AGE_SIZE)) != NULL) memset(aged[i], 0x5a, AGE_SIZE);
    for (int i = 0; i < AGE_N; i++) {
        for (int b = 0; aged[i] && b < AGE_SIZE; b++)
            if (aged[i][b] != 0x5a) {
                aged_broken++;
                break;
            }
        memfree(aged[i]);
    }
    return NULL;
}
/* The pages of aged[] (single-window ones): all, or those that are pages
 * still (the thread gave some back to the heap as they fell idle). */
static size_t aged_pages(struct page **g, size_t max, int all) {
    size_t n = 0;
    for (int i = 0; i < AGE_N; i++) {
        struct page *p = page_header((uintptr_t)aged[i] & ~(uintptr_t)(WINDOW_SIZE - 1));
        size_t j = 0;
        while (j < n && g[j] != p) j++;
        if (j < n || n == max || (p->tag == 0 && !all)) continue;
        g[n++] = p;
    }
    return n;
}
/* The OS pages of pages g[0..n) past each header's own that are resident. */
static size_t resident_past_headers(struct page *const *g, size_t n) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), r = 0;
    for (size_t i = 0; i < n; i++) {
        char *from = (char *)(((uintptr_t)g[i] + PAGE_HDR + pg - 1) & ~(pg - 1));
        r += resident_pages(from, (size_t)(page_base(g[i]) + WINDOW_SIZE - from));
    }
    return r;
}

TEST(test_idle_orphans_give_their_memory_back) {
    trim_all();
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, AGE_DELAY) == 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, allocate_free_exit, NULL) == 0);
    pthread_join(t, NULL);
    REQUIRE(aged[0] && aged[AGE_N - 1]);
    struct page *g[16];
    size_t n = aged_pages(g, 16, 0), resident = resident_past_headers(g, n);
    /* idle orphans now, their objects resident (the purge delay has not passed) */
    CHECK(n >= 2);
    for (size_t i = 0; i < n; i++) CHECK(g[i]->owner == NULL && g[i]->used == 0 && g[i]->kept);
    CHECKF(resident >= n, "%zu resident", resident);
    clock_ms += AGE_DELAY + 100;
    os_clock_set(clock_ms);
    memfree(memalloc(1 << 20)); /* a mapped block: the due purge passes run */
    /* the same pages, orphans still (not given back), their objects purged */
    resident = resident_past_headers(g, n);
    CHECKF(resident == 0, "%zu OS pages still resident", resident);
    for (size_t i = 0; i < n; i++)
        CHECK(g[i]->tag != 0 && g[i]->owner == NULL && g[i]->handed == 0 && g[i]->free == NULL &&
              g[i]->kept != 0);
    CHECK(memalloc_check() == 0);
    /* the next thread adopts them all the same, and finds its objects whole */
    REQUIRE(pthread_create(&t, NULL, allocate_free_exit, NULL) == 0);
    pthread_join(t, NULL);
    CHECK(aged_broken == 0);
    struct page *again[16];
    size_t m = aged_pages(again, 16, 1);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < m && again[j] != g[i]) j++;
        CHECKF(j < m, "page %p not adopted", (void *)g[i]);
    }
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_PURGE_DELAY, 10) == 0);
    trim_all();
}

int main(void) {
    clock_ms = os_now_ms();
    os_clock_set(clock_ms);
    memfree(memalloc(1)); /* the main thread sets its cache up first */
    idle_arena_pages = resident_pages(&ma_arenas[1], sizeof ma_arenas - sizeof ma_arenas[0]);
    RUN(test_threads_spread_over_arenas); /* first: no other thread has run */
    RUN(test_exit_flushes_the_cache);
    RUN(test_cross_thread_frees_go_home);
    RUN(test_fork_returns_other_caches);
    RUN(test_remote_frees_serve_the_owner);
    RUN(test_foreign_frees_serve_the_freeing_thread);
    RUN(test_idle_pages_wait_for_the_next_thread);
    RUN(test_orphans_go_back_with_their_last_object);
    RUN(test_idle_orphans_give_their_memory_back);
    return harness_finish();
}
