/*
 * threads.c: thread churn. Short-lived threads are created in waves of 2-4
 * and joined; each allocates a few hundred blocks of 16 B-2 KiB
 * (log-uniform), frees them in random order, and does it again, so every
 * thread pays for setting up and tearing down whatever per-thread state the
 * allocator keeps.
 *
 *   threads [threads] [blocks per thread]    (default 2000 and 400)
 */
#include <pthread.h>

#include "bench.h"

#define PASSES 4
#define MAXW   4

static unsigned long blocks;

struct worker {
    pthread_t tid;
    uint64_t seed, sum;
};

static void *work(void *arg) {
    struct worker *w = arg;
    rng_t r = rng_seed(w->seed);
    void **p = need(malloc(blocks * sizeof *p), "malloc", blocks * sizeof *p);
    size_t *n = need(malloc(blocks * sizeof *n), "malloc", blocks * sizeof *n);
    uint64_t sum = 0;
    for (unsigned pass = 0; pass < PASSES; pass++) {
        for (unsigned long i = 0; i < blocks; i++) {
            n[i] = rng_logsize(&r, 16, 2048);
            p[i] = need(malloc(n[i]), "malloc", n[i]);
            touch_ends(p[i], n[i], n[i]);
        }
        for (unsigned long i = blocks; i > 1; i--) { /* free in a random order */
            unsigned long j = (unsigned long)rng_below(&r, i);
            sum += check_ends(p[j], n[j], n[j]);
            free(p[j]);
            p[j] = p[i - 1];
            n[j] = n[i - 1];
        }
        sum += check_ends(p[0], n[0], n[0]);
        free(p[0]);
    }
    free(p);
    free(n);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    unsigned long total = arg_count(argc, argv, 1, 2000);
    blocks = arg_count(argc, argv, 2, 400);
    struct worker w[MAXW];
    rng_t r = rng_seed(6);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long made = 0; made < total;) {
        unsigned wave = (unsigned)rng_range(&r, 2, MAXW);
        if (wave > total - made) wave = (unsigned)(total - made);
        for (unsigned i = 0; i < wave; i++) {
            w[i].seed = 1000 + made + i;
            if (pthread_create(&w[i].tid, NULL, work, &w[i])) {
                fprintf(stderr, "threads: pthread_create failed\n");
                return 2;
            }
        }
        for (unsigned i = 0; i < wave; i++) {
            pthread_join(w[i].tid, NULL);
            sum += w[i].sum;
        }
        made += wave;
    }
    double t1 = now_seconds();

    report("threads", t1 - t0, total * blocks * PASSES, sum);
    return 0;
}
