/*
 * midbuf.c: mid-sized buffers replaced at random, as a server's request
 * and response buffers, a compressor's blocks or a parser's token arrays
 * are. Thirty-two slots hold buffers of 64 KiB-1 MiB (uniform: above
 * every size class, below the mmap threshold's ceiling); each operation
 * frees a random slot and refills it with a new buffer, of which the
 * program writes a byte per OS page and the last byte. The working set
 * is steady at about 17 MiB: an allocator that purges the holes between
 * the buffers faults them in again at once.
 *
 *   midbuf [ops]      (default 100000)
 */
#include "bench.h"

#define SLOTS 32
#define MIN   ((size_t)64 << 10)
#define MAX   ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n, unsigned char tag) {
    for (size_t i = 0; i < n; i += 4096) p[i] = tag;
    p[n - 1] = tag;
}

static uint64_t check(const unsigned char *p, size_t n, unsigned char tag) {
    if (p[0] != tag || p[n - 1] != tag || p[(n - 1) / 4096 * 4096] != tag) {
        fprintf(stderr, "midbuf: block of %zu bytes lost its contents\n", n);
        exit(2);
    }
    return n + tag;
}

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 100000);
    unsigned char *slot[SLOTS] = {0};
    size_t size[SLOTS] = {0};
    rng_t r = rng_seed(6);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned k = 0; k < SLOTS; k++) {
        size[k] = rng_range(&r, MIN, MAX);
        slot[k] = need(malloc(size[k]), "malloc", size[k]);
        fill(slot[k], size[k], (unsigned char)(k | 1));
    }
    for (unsigned long i = 0; i < ops; i++) {
        unsigned k = (unsigned)rng_below(&r, SLOTS);
        sum += check(slot[k], size[k], slot[k][0]);
        free(slot[k]);
        size[k] = rng_range(&r, MIN, MAX);
        slot[k] = need(malloc(size[k]), "malloc", size[k]);
        fill(slot[k], size[k], (unsigned char)(i | 1));
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        sum += check(slot[k], size[k], slot[k][0]);
        free(slot[k]);
    }
    double t1 = now_seconds();

    report("midbuf", t1 - t0, ops, sum);
    return 0;
}
