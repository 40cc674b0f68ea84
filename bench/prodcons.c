/*
 * prodcons.c: blocks allocated in one thread and freed in another. Each of
 * `pairs` producer/consumer pairs shares a queue (mutex and condition
 * variables) of batches: the producer allocates a batch array and 256
 * blocks of 24-1024 bytes, writes each block's sequence number in its first
 * word and a tag in its last byte, and queues the batch; the consumer checks
 * and frees the blocks and the batch array.
 *
 *   prodcons [blocks per pair] [pairs]    (default 3,000,000 and 2)
 */
#include <pthread.h>

#include "bench.h"

#define BATCH 256
#define DEPTH 8

struct item {
    uint64_t seq;
    size_t n;
};

struct pair {
    pthread_mutex_t lock;
    pthread_cond_t not_full, not_empty;
    void **queue[DEPTH];
    unsigned head, count;
    unsigned long blocks;
    unsigned id;
    uint64_t sum;
    pthread_t producer, consumer;
};

static void *produce(void *arg) {
    struct pair *q = arg;
    rng_t r = rng_seed(100 + q->id);
    uint64_t seq = (uint64_t)q->id << 40;
    for (unsigned long done = 0; done < q->blocks; done += BATCH) {
        void **batch = need(malloc(BATCH * sizeof *batch), "malloc", BATCH * sizeof *batch);
        for (unsigned i = 0; i < BATCH; i++) {
            size_t n = rng_range(&r, 24, 1024);
            struct item *it = need(malloc(n), "malloc", n);
            it->seq = seq++;
            it->n = n;
            ((unsigned char *)it)[n - 1] = (unsigned char)it->seq;
            batch[i] = it;
        }
        pthread_mutex_lock(&q->lock);
        while (q->count == DEPTH) pthread_cond_wait(&q->not_full, &q->lock);
        q->queue[(q->head + q->count++) % DEPTH] = batch;
        pthread_cond_signal(&q->not_empty);
        pthread_mutex_unlock(&q->lock);
    }
    return NULL;
}

static void *consume(void *arg) {
    struct pair *q = arg;
    uint64_t sum = 0;
    for (unsigned long done = 0; done < q->blocks; done += BATCH) {
        pthread_mutex_lock(&q->lock);
        while (q->count == 0) pthread_cond_wait(&q->not_empty, &q->lock);
        void **batch = q->queue[q->head];
        q->head = (q->head + 1) % DEPTH;
        q->count--;
        pthread_cond_signal(&q->not_full);
        pthread_mutex_unlock(&q->lock);
        for (unsigned i = 0; i < BATCH; i++) {
            struct item *it = batch[i];
            if (((unsigned char *)it)[it->n - 1] != (unsigned char)it->seq) {
                fprintf(stderr, "prodcons: block %p lost its contents\n", (void *)it);
                exit(2);
            }
            sum += it->seq + it->n;
            free(it);
        }
        free(batch);
    }
    q->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    unsigned long blocks = arg_count(argc, argv, 1, 3000000);
    unsigned long npairs = arg_count(argc, argv, 2, 2);
    blocks = (blocks + BATCH - 1) / BATCH * BATCH;
    struct pair *pairs = need(calloc(npairs, sizeof *pairs), "calloc", npairs * sizeof *pairs);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long i = 0; i < npairs; i++) {
        struct pair *q = &pairs[i];
        pthread_mutex_init(&q->lock, NULL);
        pthread_cond_init(&q->not_full, NULL);
        pthread_cond_init(&q->not_empty, NULL);
        q->blocks = blocks;
        q->id = (unsigned)i;
        if (pthread_create(&q->consumer, NULL, consume, q) ||
            pthread_create(&q->producer, NULL, produce, q)) {
            fprintf(stderr, "prodcons: pthread_create failed\n");
            return 2;
        }
    }
    for (unsigned long i = 0; i < npairs; i++) {
        pthread_join(pairs[i].producer, NULL);
        pthread_join(pairs[i].consumer, NULL);
        sum += pairs[i].sum;
    }
    double t1 = now_seconds();

    free(pairs);
    report("prodcons", t1 - t0, blocks * npairs, sum);
    return 0;
}
