/*
 * simple.c: the single-thread loop of glibc's benchtests
 * (bench-malloc-simple), in our own code: for each of six sizes from 16 B
 * to 4 KiB, batches of 100 blocks are allocated and then freed, in
 * allocation order, over and over; every block's first and last bytes
 * are written and checked. The shape of a program that builds and drops
 * small structures in batches (a parser's nodes, a request's buffers).
 *
 * glibc's heap gives its top back to the kernel (brk) after each batch of
 * the largest size and takes it again: a system call and page faults per
 * batch, as a program of this shape pays on it.
 *
 *   simple [rounds]     (default 20000 batches per size)
 */
#include "bench.h"

#define BATCH 100

int main(int argc, char **argv) {
    unsigned long rounds = arg_count(argc, argv, 1, 20000);
    static const size_t sizes[] = {16, 64, 256, 512, 1024, 4096};
    void *p[BATCH];
    uint64_t sum = 0, ops = 0;

    double t0 = now_seconds();
    for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        for (unsigned long r = 0; r < rounds; r++) {
            for (unsigned i = 0; i < BATCH; i++) {
                p[i] = need(malloc(n), "malloc", n);
                touch_ends(p[i], n, r + i);
            }
            for (unsigned i = 0; i < BATCH; i++) {
                sum += check_ends(p[i], n, r + i);
                free(p[i]);
            }
            ops += BATCH;
        }
    }
    double t1 = now_seconds();

    report("simple", t1 - t0, ops, sum);
    return 0;
}
