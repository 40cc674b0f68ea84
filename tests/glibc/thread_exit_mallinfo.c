/*
 * thread_exit_mallinfo: mallinfo's uordblks ("bytes in use") must count what
 * the program holds, so that threads that come and go do not look like a
 * leak. First, one malloc(32) must raise mallinfo2().uordblks by at least 32
 * bytes and by far less than a 64 KiB page (an allocator that counts whole
 * pages of small objects as in use reports 0 or 64 KiB). Then the program
 * records uordblks (from mallinfo2 and from the older mallinfo), creates and
 * joins 20,000 threads one at a time, each of which mallocs and frees a
 * small block and returns another small block that the main thread frees,
 * and reads uordblks again. The program holds nothing more than before, so
 * uordblks must not have grown by more than 16 KiB: glibc's own test of
 * this allows one byte per thread; glibc itself grows by about 4 KB here
 * (an arena for the threads is set up, and glibc counts the blocks its
 * main-thread cache keeps as in use), and a count of the bytes the program
 * holds grows by at most the few hundred bytes that libc keeps for its
 * cached thread stack. Both checks are made and reported.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS      20000
#define SMALL_GROWTH 4096  /* what one malloc(32) adds is less than this */
#define LEAK_BOUND   16384 /* what the threads may leave behind, at most */

/* Blocks go through here so that the compiler cannot drop a malloc/free pair. */
static void *volatile sink;

static size_t uord2(void) {
    return mallinfo2().uordblks;
}

/* mallinfo() is deprecated (its fields are int) but still used, and served. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static long uord1(void) {
    return mallinfo().uordblks;
}
#pragma GCC diagnostic pop

static void *worker(void *arg) {
    size_t n = (size_t)(unsigned long)arg;
    char *p = malloc(n);
    if (!p) return NULL;
    memset(p, 0x5a, n);
    sink = p;
    free(p);
    char *q = malloc(n + 8);
    if (q) memset(q, 0xa5, n + 8);
    return q;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
    double start = now();
    /* one small allocation: the heap (and this thread's cache) is set up */
    char *first = malloc(16);
    if (!first) return 1;
    sink = first;

    size_t before = uord2();
    char *p32 = malloc(32);
    size_t after = uord2();
    if (!p32) return 1;
    memset(p32, 1, 32);
    sink = p32;
    int failed = 0;
    if (after < before + 32 || after - before >= SMALL_GROWTH) {
        fprintf(stderr,
                "thread_exit_mallinfo: FAIL: malloc(32) changed mallinfo2().uordblks from %zu to "
                "%zu (%+lld bytes); expected +32 to +%d\n",
                before, after, (long long)after - (long long)before, SMALL_GROWTH - 1);
        failed = 1;
    }
    free(p32);

    size_t base2 = uord2();
    long base1 = uord1();
    for (int i = 0; i < THREADS; i++) {
        pthread_t t;
        void *ret = NULL;
        int err = pthread_create(&t, NULL, worker, (void *)(unsigned long)(8 + i % 56));
        if (err) {
            fprintf(stderr, "thread_exit_mallinfo: FAIL: pthread_create #%d: %s\n", i,
                    strerror(err));
            return 1;
        }
        err = pthread_join(t, &ret);
        if (err || !ret) {
            fprintf(stderr, "thread_exit_mallinfo: FAIL: thread #%d: %s\n", i,
                    err ? strerror(err) : "its malloc failed");
            return 1;
        }
        free(ret);
    }
    size_t end2 = uord2();
    long end1 = uord1();
    free(first);

    long long grew2 = (long long)end2 - (long long)base2, grew1 = (long long)end1 - base1;
    if (grew2 > LEAK_BOUND || grew1 > LEAK_BOUND) {
        fprintf(stderr,
                "thread_exit_mallinfo: FAIL: after %d threads that came and went, uordblks grew "
                "by %lld bytes (mallinfo2: %zu -> %zu) and %lld (mallinfo: %ld -> %ld); the "
                "program holds nothing more, at most %d expected\n",
                THREADS, grew2, base2, end2, grew1, base1, end1, LEAK_BOUND);
        failed = 1;
    }
    if (failed) return 1;
    printf("thread_exit_mallinfo: ok: malloc(32) %+lld bytes; after %d threads uordblks %+lld "
           "(mallinfo %+lld), %.1f s\n",
           (long long)after - (long long)before, THREADS, grew2, grew1, now() - start);
    return 0;
}
