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
    double seconds;
    uint64_t sum = replace_at_random(SLOTS, MIN, MAX, ops, 6, fill, check, &seconds);
    report("midbuf", seconds, ops, sum);
    return 0;
}
