/*
 * large.c: large blocks. Four slots hold blocks of 256 KiB-64 MiB
 * (log-uniform); each operation frees a random slot and refills it, writing
 * every 4096th byte of the new block, so each allocation costs its pages.
 *
 *   large [ops]      (default 80)
 */
#include "bench.h"

#define SLOTS 4
#define MIN   (256 * 1024)
#define MAX   (64 * 1024 * 1024)

static void fill(unsigned char *p, size_t n, unsigned char tag) {
    for (size_t i = 0; i < n; i += 4096) p[i] = tag;
    p[n - 1] = tag;
}

static uint64_t check(const unsigned char *p, size_t n, unsigned char tag) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 64 * 4096) sum += p[i];
    if (p[0] != tag || p[n - 1] != tag || sum != tag * ((n - 1) / (64 * 4096) + 1)) {
        fprintf(stderr, "large: block of %zu bytes lost its contents\n", n);
        exit(2);
    }
    return sum + n;
}

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 80);
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    rng_t r = rng_seed(4);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long i = 0; i < ops; i++) {
        unsigned k = (unsigned)rng_below(&r, SLOTS);
        unsigned char tag = (unsigned char)(i | 1);
        if (slot[k]) {
            sum += check(slot[k], size[k], slot[k][0]);
            free(slot[k]);
        }
        size[k] = rng_logsize(&r, MIN, MAX);
        slot[k] = need(malloc(size[k]), "malloc", size[k]);
        fill(slot[k], size[k], tag);
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        if (slot[k]) sum += check(slot[k], size[k], slot[k][0]);
        free(slot[k]);
    }
    double t1 = now_seconds();

    report("large", t1 - t0, ops, sum);
    return 0;
}
