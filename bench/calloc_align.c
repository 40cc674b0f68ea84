/*
 * calloc_align.c: the calloc and posix_memalign paths. A window of 1000 live
 * slots; each operation frees a random slot and refills it, half the time
 * with calloc of 16 B-16 KiB in total (log-uniform; the first, middle and
 * last bytes must be zero), half the time with posix_memalign, alignment 16
 * to 4096 and size 8 B-64 KiB (log-uniform; the alignment is checked).
 *
 *   calloc_align [ops]     (default 2,000,000)
 */
#include <stdint.h>

#include "bench.h"

#define SLOTS 1000

static void *zeroed(rng_t *r, size_t *n) {
    size_t total = rng_logsize(r, 16, 16 * 1024);
    size_t elem = (size_t)1 << rng_below(r, 5); /* 1, 2, 4, 8 or 16 bytes */
    size_t count = (total + elem - 1) / elem;
    unsigned char *p = need(calloc(count, elem), "calloc", count * elem);
    *n = count * elem;
    if (p[0] | p[*n / 2] | p[*n - 1]) {
        fprintf(stderr, "calloc_align: calloc(%zu, %zu) returned memory that is not zero\n", count,
                elem);
        exit(2);
    }
    return p;
}

static void *aligned(rng_t *r, size_t *n) {
    size_t align = (size_t)16 << rng_below(r, 9); /* 16 ... 4096 */
    void *p = NULL;
    *n = rng_logsize(r, 8, 64 * 1024);
    int err = posix_memalign(&p, align, *n);
    if (err || !p || (uintptr_t)p % align) {
        fprintf(stderr, "calloc_align: posix_memalign(%zu, %zu) failed or misaligned: %p\n", align,
                *n, p);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 2000000);
    static void *slot[SLOTS];
    static size_t size[SLOTS];
    rng_t r = rng_seed(7);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long i = 0; i < ops; i++) {
        unsigned k = (unsigned)rng_below(&r, SLOTS);
        if (slot[k]) {
            sum += check_ends(slot[k], size[k], size[k]);
            free(slot[k]);
        }
        slot[k] = rng_next(&r) & 1 ? zeroed(&r, &size[k]) : aligned(&r, &size[k]);
        touch_ends(slot[k], size[k], size[k]);
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        if (slot[k]) sum += check_ends(slot[k], size[k], size[k]);
        free(slot[k]);
    }
    double t1 = now_seconds();

    report("calloc_align", t1 - t0, ops, sum);
    return 0;
}
