/*
 * thread_cache.c: thread caches and arenas under threads (built for
 * ThreadSanitizer too):
 *   1. a thread's cache goes back to the engine when the thread exits, and
 *      its counts are kept;
 *   2. blocks freed by another thread join that thread's cache and go home
 *      to their own arena, in batches; nothing is lost;
 *   3. threads are spread over the arenas (one per CPU, at most 8);
 *   4. fork while another thread's cache holds blocks: the child gets them
 *      back, and its heap checks clean.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "heap.h"
#include "memalloc.h"

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
    producer_arena = region_of(handed[0])->arena;
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
    for (int i = 0; i < XN; i++) CHECK(region_of(handed[i])->arena == producer_arena);
    REQUIRE(pthread_create(&c, NULL, consume, NULL) == 0);
    pthread_join(c, NULL);
    struct memalloc_stats s1 = stats();
    CHECK(s1.in_use == s0.in_use && s1.thread_cached == s0.thread_cached);
    CHECK(memalloc_check() == 0);
}

/* ---- 3. arenas ---- */
static pthread_barrier_t both;
static void *first_block_arena(void *arg) {
    (void)arg;
    pthread_barrier_wait(&both);
    char *p = memalloc(100);
    struct arena *a = region_of(p)->arena;
    pthread_barrier_wait(&both); /* hold p until both have one */
    memfree(p);
    return a;
}

TEST(test_threads_spread_over_arenas) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct memalloc_stats s = stats();
    CHECKF(s.arenas >= 1 && s.arenas <= 8 && s.arenas <= (size_t)(ncpu > 0 ? ncpu : 1),
           "arenas=%zu ncpu=%ld", s.arenas, ncpu);
    pthread_barrier_init(&both, NULL, 2);
    pthread_t t1, t2;
    void *a1, *a2;
    REQUIRE(pthread_create(&t1, NULL, first_block_arena, NULL) == 0);
    REQUIRE(pthread_create(&t2, NULL, first_block_arena, NULL) == 0);
    pthread_join(t1, &a1);
    pthread_join(t2, &a2);
    pthread_barrier_destroy(&both);
    if (s.arenas >= 2) CHECK(a1 != a2); /* consecutive threads, different arenas */
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

int main(void) {
    memfree(memalloc(1)); /* the main thread sets its cache up first */
    RUN(test_exit_flushes_the_cache);
    RUN(test_cross_thread_frees_go_home);
    RUN(test_threads_spread_over_arenas);
    RUN(test_fork_returns_other_caches);
    return harness_finish();
}
