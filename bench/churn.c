/*
 * churn.c: single-thread churn of small blocks. A window of 1000 live slots;
 * each operation frees a random slot and refills it with a block of 8-512
 * bytes, so lifetimes are short and sizes random.
 *
 *   churn [ops]      (default 20,000,000)
 */
#include "bench.h"

#define SLOTS 1000

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 20000000);
    static void *slot[SLOTS];
    static size_t size[SLOTS];
    rng_t r = rng_seed(1);
    uint64_t sum = 0;

    double t0 = now_seconds();
    for (unsigned long i = 0; i < ops; i++) {
        uint64_t x = rng_next(&r);
        unsigned k = (unsigned)(x % SLOTS);
        if (slot[k]) {
            sum += check_ends(slot[k], size[k], size[k]);
            free(slot[k]);
        }
        size_t n = 8 + (size_t)((x >> 32) % 505);
        slot[k] = need(malloc(n), "malloc", n);
        size[k] = n;
        touch_ends(slot[k], n, n);
    }
    for (unsigned k = 0; k < SLOTS; k++) {
        if (slot[k]) sum += check_ends(slot[k], size[k], size[k]);
        free(slot[k]);
    }
    double t1 = now_seconds();

    report("churn", t1 - t0, ops, sum);
    return 0;
}
