/*
 * mtloop.c: the multi-thread loop of glibc's benchtests
 * (bench-malloc-thread), in our own code: each thread keeps a working set
 * of 1024 blocks of 2 B-32 KiB (more small ones than large: the size is
 * 32 KiB divided by a uniform number) and replaces a random one at each
 * step, writing its first and last bytes. No block crosses threads: the
 * figure is how the allocator scales with threads that share nothing.
 *
 *   mtloop [threads] [steps per thread]     (default 2 and 40,000,000)
 */
#include <pthread.h>

#include "bench.h"

#define WORKING_SET 1024
#define MAX_SIZE    32768

static unsigned long steps;

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t sum;
};

/* 32 KiB over a uniform 1 .. 16384: 2 B to 32 KiB, half of them 2-4 B
 * (touch_ends needs two bytes) */
static size_t pick(rng_t *r) {
    return MAX_SIZE / (size_t)(1 + rng_below(r, MAX_SIZE / 2));
}

static void *work(void *arg) {
    struct worker *w = arg;
    rng_t r = rng_seed(300 + w->id);
    void *p[WORKING_SET] = {0};
    size_t n[WORKING_SET] = {0};
    uint64_t sum = 0;
    for (unsigned long i = 0; i < steps; i++) {
        unsigned k = (unsigned)rng_below(&r, WORKING_SET);
        if (p[k]) {
            sum += check_ends(p[k], n[k], n[k]);
            free(p[k]);
        }
        n[k] = pick(&r);
        p[k] = need(malloc(n[k]), "malloc", n[k]);
        touch_ends(p[k], n[k], n[k]);
    }
    for (unsigned k = 0; k < WORKING_SET; k++) {
        if (!p[k]) continue;
        sum += check_ends(p[k], n[k], n[k]);
        free(p[k]);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    unsigned long nthreads = arg_count(argc, argv, 1, 2);
    steps = arg_count(argc, argv, 2, 40000000);
    struct worker *w = need(calloc(nthreads, sizeof *w), "calloc", nthreads * sizeof *w);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long i = 0; i < nthreads; i++) {
        w[i].id = (unsigned)i;
        if (pthread_create(&w[i].tid, NULL, work, &w[i]) != 0) {
            fprintf(stderr, "mtloop: pthread_create failed\n");
            return 1;
        }
    }
    for (unsigned long i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        sum += w[i].sum;
    }
    double t1 = now_seconds();

    report("mtloop", t1 - t0, nthreads * steps, sum);
    free(w);
    return 0;
}
