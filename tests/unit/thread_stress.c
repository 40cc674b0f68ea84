/*
 * thread_stress.c: the engine under threads (built for ThreadSanitizer too).
 *
 *   0. the process's first allocations come from 8 threads at once (here,
 *      then in fresh processes: this program re-executed);
 *   1. memalloc_check in a tight loop while two threads resize mapped blocks
 *      (mremap); then 4 threads x 200k random memalloc/defalloc/
 *      memalloc_aligned/memresize/memfree with pattern checks, while a fifth
 *      thread runs memalloc_check;
 *   2. cross-thread frees: producers allocate, consumers verify, resize and
 *      free, through a mutex-protected queue;
 *   3. thread churn: 200 short-lived threads, some of whose blocks the main
 *      thread frees after they are gone;
 *   4. fork while two threads allocate: each child allocates, resizes, frees
 *      and checks the heap (a deadlock ends in SIGALRM, a failure);
 *   5. afterwards the heap checks clean and nothing is left in use.
 *
 * Only the engine's API allocates here (ThreadSanitizer replaces libc's
 * malloc). Blocks are filled and checked with memcpy/memcmp, which the
 * sanitizer checks by range.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "memalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static uint64_t base_seed = 0x9e3779b97f4a7c15ull;

struct rng {
    uint64_t s;
};
static uint64_t rnd(struct rng *r) { /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1dull;
}
static size_t below(struct rng *r, size_t n) {
    return n ? (size_t)(rnd(r) % n) : 0;
}
static struct rng rng_for(unsigned id) {
    struct rng r = {base_seed ^ ((uint64_t)(id + 1) * 0xd1b54a32d192ed03ull)};
    if (!r.s) r.s = 1;
    return r;
}

/* ---- patterns: byte i of a block with seed s is (s + i) mod 256 ---- */

static unsigned char ref[4096 + 256]; /* written once before any thread starts */
static const unsigned char zeros[4096];

static size_t min_sz(size_t a, size_t b) {
    return a < b ? a : b;
}
static void fill_span(unsigned char *p, size_t from, size_t to, unsigned seed) {
    for (size_t i = from; i < to;) {
        size_t k = min_sz(4096, to - i);
        memcpy(p + i, ref + ((seed + i) & 255), k);
        i += k;
    }
}
static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n;) {
        size_t k = min_sz(4096, n - i);
        if (memcmp(p + i, ref + ((seed + i) & 255), k) != 0) return 0;
        i += k;
    }
    return 1;
}
static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = min_sz(sizeof zeros, n - i);
        if (memcmp(p + i, zeros, k) != 0) return 0;
        i += k;
    }
    return 1;
}

static size_t pick_size(struct rng *r) {
    size_t x = below(r, 10000);
    if (x < 9200) return below(r, 513);
    if (x < 9950) return below(r, 16 * KiB + 1);
    if (x < 9995) return below(r, 256 * KiB + 1);
    return MiB + below(r, MiB);
}

struct block {
    unsigned char *p;
    size_t size;
    unsigned seed;
};

/* Allocate a block of some kind, check it, fill it. */
static int new_block(struct rng *r, struct block *b, size_t size) {
    unsigned kind = (unsigned)below(r, 10);
    unsigned char *p;
    size_t align = 16;
    if (kind < 6) {
        p = memalloc(size);
    } else if (kind < 8) {
        p = defalloc(1, size);
        if (p) CHECK(all_zero(p, size));
    } else {
        align = (size_t)32 << below(r, 8); /* 32 .. 4096 */
        p = memalloc_aligned(align, size);
    }
    CHECKF(p != NULL, "allocation of %zu failed (errno %d)", size, errno);
    if (!p) return 0;
    CHECK(((uintptr_t)p & (align - 1)) == 0);
    CHECK(memalloc_usable_size(p) >= size);
    b->p = p;
    b->size = size;
    b->seed = (unsigned)rnd(r);
    fill_span(p, 0, size, b->seed);
    return 1;
}

/* ---- 0. the first allocations of the process, from several threads at once ---- */

#define FIRST_THREADS 8
#define FIRST_SMALL   64

static pthread_barrier_t first_barrier;

static void *first_user(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned char *v[FIRST_SMALL + 1];
    size_t failed = 0;
    pthread_barrier_wait(&first_barrier);
    /* one of these initialises the heap while the others allocate */
    v[0] = memalloc(100 * KiB + id);
    for (int i = 1; i <= FIRST_SMALL; i++) v[i] = memalloc((size_t)(i * 16 + id));
    for (int i = 0; i <= FIRST_SMALL; i++) {
        if (!v[i]) {
            failed++;
            continue;
        }
        size_t n = i ? (size_t)(i * 16 + id) : 100 * KiB + id;
        fill_span(v[i], 0, n, id);
    }
    for (int i = 0; i <= FIRST_SMALL; i++) {
        size_t n = i ? (size_t)(i * 16 + id) : 100 * KiB + id;
        if (v[i]) CHECK(intact(v[i], n, id));
        memfree(v[i]);
    }
    CHECKF(failed == 0, "thread %u: %zu of the first %d allocations failed (errno %d)", id, failed,
           FIRST_SMALL + 1, errno);
    return NULL;
}

static void first_use(void) {
    pthread_t t[FIRST_THREADS];
    REQUIRE(pthread_barrier_init(&first_barrier, NULL, FIRST_THREADS) == 0);
    for (unsigned i = 0; i < FIRST_THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, first_user, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < FIRST_THREADS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&first_barrier);
    CHECK(memalloc_check() == 0);
}

#define FIRST_USE_ENV "THREAD_STRESS_FIRST_USE"
#if defined(__SANITIZE_THREAD__)
#define FIRST_USE_RUNS 10 /* each start of a ThreadSanitizer process costs ~0.5 s */
#else
#define FIRST_USE_RUNS 40
#endif

static char **saved_argv;

/* Runs first, while no thread has called the engine yet; then again in fresh
 * processes (this program re-executed), as the race is a matter of timing. */
TEST(test_concurrent_first_use) {
    first_use();
    for (int i = 0; i < FIRST_USE_RUNS; i++) {
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            setenv(FIRST_USE_ENV, "1", 1);
            execv("/proc/self/exe", saved_argv);
            _exit(127);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "fresh process %d: first use from %d threads failed (status %#x)", i, FIRST_THREADS,
               status);
    }
}

/* ---- 1. random operations in 4 threads, memalloc_check alongside ---- */

#define WORKERS    4
#define WORKER_OPS 200000
#define WSLOTS     512

static int workers_done;

static void *worker(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = rng_for(id);
    struct block *slot = defalloc(WSLOTS, sizeof *slot);
    CHECK(slot != NULL);
    if (!slot) return NULL;
    for (int op = 0; op < WORKER_OPS; op++) {
        struct block *b = &slot[below(&r, WSLOTS)];
        if (!b->p) {
            new_block(&r, b, pick_size(&r));
            continue;
        }
        if (!intact(b->p, b->size, b->seed)) {
            CHECKF(0, "thread %u op %d: block %p (size %zu) corrupt", id, op, (void *)b->p,
                   b->size);
            b->p = NULL; /* do not free a block we cannot trust */
            continue;
        }
        if (below(&r, 2)) {
            memfree(b->p);
            b->p = NULL;
        } else {
            size_t n = pick_size(&r);
            unsigned char *q = memresize(b->p, n);
            if (n == 0) {
                CHECK(q == NULL);
                b->p = NULL;
                continue;
            }
            CHECKF(q != NULL, "memresize(%zu -> %zu) failed", b->size, n);
            if (!q) continue;
            CHECKF(intact(q, min_sz(b->size, n), b->seed), "thread %u: memresize(%zu -> %zu)", id,
                   b->size, n);
            if (n > b->size) fill_span(q, b->size, n, b->seed);
            b->p = q;
            b->size = n;
        }
    }
    for (int i = 0; i < WSLOTS; i++) {
        if (!slot[i].p) continue;
        CHECK(intact(slot[i].p, slot[i].size, slot[i].seed));
        memfree(slot[i].p);
    }
    memfree(slot);
    return NULL;
}

static void *checker(void *arg) {
    unsigned long *runs = arg;
    while (!__atomic_load_n(&workers_done, __ATOMIC_ACQUIRE)) {
        double t0 = harness_now();
        int v = memalloc_check();
        double dt = harness_now() - t0;
        CHECKF(v == 0, "memalloc_check() = %d while threads allocate", v);
        (*runs)++;
        /* hold the heap at most a quarter of the time (a check is slow under TSan) */
        usleep(2000 + (useconds_t)(dt * 3e6));
    }
    return NULL;
}

TEST(test_threads_random_ops) {
    pthread_t t[WORKERS], c;
    unsigned long runs = 0;
    __atomic_store_n(&workers_done, 0, __ATOMIC_RELEASE);
    REQUIRE(pthread_create(&c, NULL, checker, &runs) == 0);
    for (unsigned i = 0; i < WORKERS; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    __atomic_store_n(&workers_done, 1, __ATOMIC_RELEASE);
    pthread_join(c, NULL);
    CHECK(runs > 0);
    CHECK(memalloc_check() == 0);
}

/* ---- 1b. memalloc_check while mapped blocks are resized (mremap) ---- */

static int resizers_done;

static void *large_resizer(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    unsigned char *p = memalloc(MiB);
    CHECK(p != NULL);
    if (!p) return NULL;
    fill_span(p, 0, MiB, id);
    double end = harness_now() + 0.5;
    unsigned long n = 0;
    while (harness_now() < end) {
        size_t to = n++ & 1 ? MiB : 4 * MiB; /* each step remaps */
        unsigned char *q = memresize(p, to);
        CHECK(q != NULL);
        if (!q) break;
        p = q;
    }
    CHECK(intact(p, MiB, id));
    memfree(p);
    return (void *)(uintptr_t)n;
}

static void *tight_checker(void *arg) {
    int *violations = arg;
    while (!__atomic_load_n(&resizers_done, __ATOMIC_ACQUIRE) && *violations == 0) {
        double t0 = harness_now();
        *violations += memalloc_check();
        /* let the resizers have the locks half of the time at least */
        usleep(100 + (useconds_t)((harness_now() - t0) * 1e6));
    }
    return NULL;
}

TEST(test_check_while_large_blocks_resize) {
    pthread_t t[2], c;
    int violations = 0;
    __atomic_store_n(&resizers_done, 0, __ATOMIC_RELEASE);
    REQUIRE(pthread_create(&c, NULL, tight_checker, &violations) == 0);
    for (unsigned i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, large_resizer, (void *)(uintptr_t)i) == 0);
    unsigned long resizes = 0;
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        resizes += (unsigned long)(uintptr_t)ret;
    }
    __atomic_store_n(&resizers_done, 1, __ATOMIC_RELEASE);
    pthread_join(c, NULL);
    CHECK(resizes > 0);
    CHECKF(violations == 0, "memalloc_check() reported %d violations during %lu mremap resizes",
           violations, resizes);
    CHECK(memalloc_check() == 0);
}

/* ---- 2. cross-thread frees through a queue ---- */

#define PRODUCERS     2
#define CONSUMERS     2
#define PER_PRODUCER  60000
#define QUEUE_ENTRIES 1024

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct block q[QUEUE_ENTRIES];
    size_t head, count;
} queue = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0};

static void push(struct block b) {
    pthread_mutex_lock(&queue.lock);
    while (queue.count == QUEUE_ENTRIES) pthread_cond_wait(&queue.not_full, &queue.lock);
    queue.q[(queue.head + queue.count++) % QUEUE_ENTRIES] = b;
    pthread_cond_signal(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
}
static struct block pop(void) {
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0) pthread_cond_wait(&queue.not_empty, &queue.lock);
    struct block b = queue.q[queue.head];
    queue.head = (queue.head + 1) % QUEUE_ENTRIES;
    queue.count--;
    pthread_cond_signal(&queue.not_full);
    pthread_mutex_unlock(&queue.lock);
    return b;
}

static void *producer(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = rng_for(100 + id);
    for (int i = 0; i < PER_PRODUCER; i++) {
        struct block b;
        if (new_block(&r, &b, pick_size(&r))) push(b);
        /* a little local traffic too, interleaved with the remote frees */
        if (i % 8 == 0) memfree(memalloc(below(&r, 2000)));
    }
    return NULL;
}

static unsigned long consumed[CONSUMERS];

static void *consumer(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = rng_for(200 + id);
    for (;;) {
        struct block b = pop();
        if (!b.p) break; /* the end */
        CHECKF(intact(b.p, b.size, b.seed), "consumer %u: block %p (size %zu) corrupt", id,
               (void *)b.p, b.size);
        if (below(&r, 4) == 0) { /* resize a block another thread allocated */
            size_t n = b.size + 1 + below(&r, 5000);
            unsigned char *q = memresize(b.p, n);
            CHECK(q != NULL);
            if (q) {
                CHECK(intact(q, b.size, b.seed));
                fill_span(q, b.size, n, b.seed);
                b.p = q;
                b.size = n;
            }
        }
        CHECK(memalloc_usable_size(b.p) >= b.size);
        memfree(b.p);
        consumed[id]++;
    }
    return NULL;
}

TEST(test_cross_thread_frees) {
    pthread_t p[PRODUCERS], c[CONSUMERS];
    for (unsigned i = 0; i < CONSUMERS; i++)
        REQUIRE(pthread_create(&c[i], NULL, consumer, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < PRODUCERS; i++)
        REQUIRE(pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) push((struct block){NULL, 0, 0});
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
    unsigned long total = 0;
    for (int i = 0; i < CONSUMERS; i++) total += consumed[i];
    CHECKF(total == (unsigned long)PRODUCERS * PER_PRODUCER, "%lu blocks consumed", total);
    CHECK(memalloc_check() == 0);
}

/* ---- 3. thread churn ---- */

#define CHURN_THREADS 200
#define CHURN_BATCH   4
#define CHURN_OPS     2000
#define HANDOFF       16

struct handoff {
    size_t n;
    struct block b[HANDOFF];
};

static void *churner(void *arg) {
    unsigned id = (unsigned)(uintptr_t)arg;
    struct rng r = rng_for(1000 + id);
    struct block local[64] = {{0}};
    for (int op = 0; op < CHURN_OPS; op++) {
        struct block *b = &local[below(&r, 64)];
        if (b->p) {
            CHECK(intact(b->p, b->size, b->seed));
            memfree(b->p);
            b->p = NULL;
        } else {
            new_block(&r, b, below(&r, 32) ? below(&r, 700) : below(&r, 200 * KiB));
        }
    }
    /* hand some blocks to the main thread, free the rest */
    struct handoff *h = memalloc(sizeof *h);
    CHECK(h != NULL);
    if (h) h->n = 0;
    for (int i = 0; i < 64; i++) {
        if (!local[i].p) continue;
        if (h && h->n < HANDOFF && (i & 1))
            h->b[h->n++] = local[i];
        else
            memfree(local[i].p);
    }
    return h;
}

TEST(test_thread_churn) {
    unsigned long handed = 0;
    for (unsigned base = 0; base < CHURN_THREADS; base += CHURN_BATCH) {
        pthread_t t[CHURN_BATCH];
        for (unsigned i = 0; i < CHURN_BATCH; i++)
            REQUIRE(pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)(base + i)) == 0);
        for (unsigned i = 0; i < CHURN_BATCH; i++) {
            void *ret = NULL;
            pthread_join(t[i], &ret);
            struct handoff *h = ret;
            CHECK(h != NULL);
            if (!h) continue;
            for (size_t k = 0; k < h->n; k++) {
                CHECKF(intact(h->b[k].p, h->b[k].size, h->b[k].seed),
                       "block handed over by thread %u is corrupt", base + i);
                memfree(h->b[k].p);
                handed++;
            }
            memfree(h);
        }
    }
    CHECK(handed > 0);
    CHECK(memalloc_check() == 0);
}

/* ---- 4. fork while threads allocate ---- */

#define FORKS 50

static int stop_spinners;

static void *spinner(void *arg) {
    struct rng r = rng_for(5000 + (unsigned)(uintptr_t)arg);
    struct block keep[8] = {{0}};
    unsigned long n = 0;
    while (!__atomic_load_n(&stop_spinners, __ATOMIC_ACQUIRE)) {
        struct block *b = &keep[below(&r, 8)];
        if (b->p) {
            CHECK(intact(b->p, b->size, b->seed));
            memfree(b->p);
            b->p = NULL;
        }
        size_t size = below(&r, 64) == 0 ? MiB : below(&r, 3000);
        if (below(&r, 4) == 0) {
            unsigned char *p = memalloc(size);
            CHECK(p != NULL);
            unsigned char *q = memresize(p, size + 100);
            CHECK(q != NULL);
            memfree(q ? q : p);
        } else {
            new_block(&r, b, size);
        }
        n++;
    }
    for (int i = 0; i < 8; i++) memfree(keep[i].p);
    return (void *)(uintptr_t)n;
}

/* The child's work: 0 on success, else which step failed. */
static int child_work(void) {
    static const size_t sizes[] = {0, 24, 1000, 50000, MiB, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        unsigned char *p = memalloc(n);
        if (!p) return 10 + (int)i;
        fill_span(p, 0, n, 7);
        unsigned char *q = memresize(p, 2 * n + 64);
        if (!q) return 20 + (int)i;
        if (!intact(q, n, 7)) return 30 + (int)i;
        unsigned char *z = defalloc(1, n + 1);
        if (!z || !all_zero(z, n + 1)) return 40 + (int)i;
        memfree(q);
        memfree(z);
    }
    if (memalloc_check() != 0) return 60;
    return 0;
}

TEST(test_fork_while_threads_allocate) {
    pthread_t t[2];
    __atomic_store_n(&stop_spinners, 0, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, spinner, (void *)(uintptr_t)i) == 0);
    int ok = 0;
    for (int i = 0; i < FORKS; i++) {
        usleep(1000); /* let the spinners get going */
        pid_t pid = fork();
        if (pid < 0) {
            CHECKF(pid >= 0, "fork failed: errno %d", errno);
            break;
        }
        if (pid == 0) {
            alarm(10); /* a deadlock in the child ends in SIGALRM */
            _exit(child_work());
        }
        int status = 0;
        pid_t w = waitpid(pid, &status, 0);
        CHECK(w == pid);
        int good = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        CHECKF(good, "fork %d: child %s %d", i, WIFSIGNALED(status) ? "killed by signal" : "exited",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        ok += good;
        if (!good) break; /* one is enough (and a deadlock costs 10 s each) */
    }
    __atomic_store_n(&stop_spinners, 1, __ATOMIC_RELEASE);
    unsigned long spins = 0;
    for (int i = 0; i < 2; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        spins += (unsigned long)(uintptr_t)ret;
    }
    CHECK(ok == FORKS);
    CHECK(spins > 0);
    CHECK(child_work() == 0); /* the parent's heap works too */
    CHECK(memalloc_check() == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    saved_argv = argv;
    if (getenv(FIRST_USE_ENV)) { /* a child of test_concurrent_first_use */
        first_use();
        return harness_check_failures ? 1 : 0;
    }
    const char *s = getenv("MEMALLOC_TEST_SEED");
    if (s && *s) base_seed = strtoull(s, NULL, 0);
    fprintf(stderr, "thread_stress: seed %#" PRIx64 " (MEMALLOC_TEST_SEED)\n", base_seed);
    for (size_t i = 0; i < sizeof ref; i++) ref[i] = (unsigned char)i;

    struct memalloc_stats s0;
    memalloc_get_stats(&s0);
    RUN(test_concurrent_first_use);            /* must be the first to allocate */
    RUN(test_check_while_large_blocks_resize); /* while the heap is small: fast checks */
    RUN(test_threads_random_ops);
    RUN(test_cross_thread_frees);
    RUN(test_thread_churn);
    RUN(test_fork_while_threads_allocate);

    /* 5. all joined: a sound heap, and nothing left */
    CHECK(memalloc_check() == 0);
    struct memalloc_stats s1;
    memalloc_get_stats(&s1);
    CHECKF(s1.in_use == s0.in_use, "in_use %zu at the start, %zu at the end", s0.in_use, s1.in_use);
    CHECKF(s1.allocs - s1.frees == s0.allocs - s0.frees, "allocs - frees %" PRIu64 " -> %" PRIu64,
           s0.allocs - s0.frees, s1.allocs - s1.frees);
    CHECKF(s1.mmapped_blocks == 0, "%zu mapped blocks left", s1.mmapped_blocks);
    return harness_finish();
}
