/*
 * bigbuf.c: big buffers, fully written and replaced at random, as a
 * program that keeps a working set of large I/O or image buffers does.
 * Twenty slots hold buffers of 5-25 MiB (uniform); each operation frees a
 * random slot and refills it with a new buffer, zeroed (what C++'s
 * new char[n]() does: operator new, then a memset of every byte), then
 * written a byte per 64 bytes. The program's working set is steady at
 * about 300 MiB: an allocator that gives freed buffers back to the kernel
 * and faults them in again moments later pays for every page twice.
 *
 *   bigbuf [ops]      (default 400)
 */
#include <string.h>

#include "bench.h"

#define SLOTS 20
#define MIN   ((size_t)5 << 20)
#define MAX   ((size_t)25 << 20)

static void fill(unsigned char *p, size_t n, unsigned char tag) {
    __asm__ volatile("" : "+r"(p)); /* a malloc and a memset, not folded into calloc */
    memset(p, 0, n);
    for (size_t i = 0; i < n; i += 64) p[i] = tag;
    p[n - 1] = tag;
}

static uint64_t check(const unsigned char *p, size_t n, unsigned char tag) {
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 64 * 4096) sum += p[i];
    if (p[0] != tag || p[n - 1] != tag || sum != tag * ((n - 1) / (64 * 4096) + 1)) {
        fprintf(stderr, "bigbuf: block of %zu bytes lost its contents\n", n);
        exit(2);
    }
    return sum + n;
}

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 400);
    double seconds;
    uint64_t sum = replace_at_random(SLOTS, MIN, MAX, ops, 5, fill, check, &seconds);
    report("bigbuf", seconds, ops, sum);
    return 0;
}
