/*
 * larson.c: a server-like pattern after Larson and Krishnan. Threads share a
 * table of 2000 slots per thread; each operation allocates a block of 24-1024
 * bytes, swaps it into a random slot and frees the block it took out, which
 * another thread allocated most of the time. Every block carries a tag in
 * its first word and its size in the second; the checksum adds the tags of
 * the blocks freed, which are all the blocks allocated, whatever the order.
 *
 *   larson [threads] [ops per thread]     (default 2 and 4,000,000)
 */
#include <pthread.h>

#include "bench.h"

#define SLOTS_PER_THREAD 2000

struct block {
    uint64_t tag;
    size_t n;
};

static void **table;
static size_t nslots;
static unsigned long ops_per_thread;

struct worker {
    pthread_t tid;
    unsigned id;
    uint64_t sum;
};

static struct block *make(rng_t *r) {
    size_t n = rng_range(r, 24, 1024);
    struct block *b = need(malloc(n), "malloc", n);
    b->tag = rng_next(r) >> 16;
    b->n = n;
    ((unsigned char *)b)[n - 1] = (unsigned char)b->tag;
    return b;
}

static uint64_t retire(struct block *b) {
    if (((unsigned char *)b)[b->n - 1] != (unsigned char)b->tag) {
        fprintf(stderr, "larson: block %p lost its contents\n", (void *)b);
        exit(2);
    }
    uint64_t tag = b->tag;
    free(b);
    return tag;
}

static void *work(void *arg) {
    struct worker *w = arg;
    rng_t r = rng_seed(200 + w->id);
    uint64_t sum = 0;
    for (unsigned long i = 0; i < ops_per_thread; i++) {
        size_t k = (size_t)rng_below(&r, nslots);
        struct block *b = make(&r);
        sum += retire(__atomic_exchange_n(&table[k], b, __ATOMIC_ACQ_REL));
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    unsigned long nthreads = arg_count(argc, argv, 1, 2);
    ops_per_thread = arg_count(argc, argv, 2, 4000000);
    nslots = nthreads * SLOTS_PER_THREAD;
    table = need(malloc(nslots * sizeof *table), "malloc", nslots * sizeof *table);
    struct worker *w = need(calloc(nthreads, sizeof *w), "calloc", nthreads * sizeof *w);
    rng_t r = rng_seed(5);
    uint64_t sum = 0;
    for (size_t k = 0; k < nslots; k++) table[k] = make(&r);

    double t0 = now_seconds();
    for (unsigned long i = 0; i < nthreads; i++) {
        w[i].id = (unsigned)i;
        if (pthread_create(&w[i].tid, NULL, work, &w[i])) {
            fprintf(stderr, "larson: pthread_create failed\n");
            return 2;
        }
    }
    for (unsigned long i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        sum += w[i].sum;
    }
    double t1 = now_seconds();

    for (size_t k = 0; k < nslots; k++) sum += retire(table[k]);
    free(table);
    free(w);
    report("larson", t1 - t0, nthreads * ops_per_thread, sum);
    return 0;
}
