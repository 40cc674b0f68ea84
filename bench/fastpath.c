/*
 * fastpath.c: the loop that bench/run.py counts instructions of under
 * callgrind. Not timed: run.py runs it with n and 2n iterations and divides
 * the difference by n, which cancels the start-up cost.
 *
 *   fastpath pair  [n]   n times: p = malloc(32); free(p)
 *   fastpath mixed [n]   64 live blocks of mixed sizes (16-512 bytes); each
 *                        iteration frees one and allocates its replacement
 *
 * Each iteration adds a handful of loop instructions to the one malloc and
 * the one free it measures. An empty asm keeps the compiler from removing
 * the pair.
 */
#include <string.h>

#include "bench.h"

#define LIVE 64

static const size_t sizes[LIVE] = {16,  32, 48,  24,  64,  128, 16, 96,  256, 32,  40, 512, 16,
                                   80,  32, 192, 48,  24,  64,  16, 320, 32,  112, 56, 16,  384,
                                   32,  64, 24,  144, 16,  48,  32, 256, 72,  16,  40, 96,  24,
                                   448, 32, 64,  16,  160, 48,  32, 208, 16,  88,  64, 32,  24,
                                   496, 16, 56,  128, 32,  16,  64, 40,  24,  240, 32, 16};

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "pair") && strcmp(argv[1], "mixed"))) {
        fprintf(stderr, "usage: fastpath pair|mixed [n]\n");
        return 2;
    }
    unsigned long n = arg_count(argc, argv, 2, 1000000);
    uint64_t sum = 0;

    if (!strcmp(argv[1], "pair")) {
        for (unsigned long i = 0; i < n; i++) {
            void *p = malloc(32);
            __asm__ volatile("" : : "r"(p) : "memory");
            free(p);
        }
    } else {
        void *live[LIVE];
        for (unsigned k = 0; k < LIVE; k++) live[k] = need(malloc(sizes[k]), "malloc", sizes[k]);
        for (unsigned long i = 0; i < n; i++) {
            unsigned k = (unsigned)i % LIVE;
            free(live[k]);
            live[k] = malloc(sizes[(k + i / LIVE) % LIVE]);
            __asm__ volatile("" : : "r"(live[k]) : "memory");
        }
        for (unsigned k = 0; k < LIVE; k++) {
            sum += live[k] != NULL;
            free(live[k]);
        }
    }
    printf("fastpath %s: n=%lu checksum=%llu\n", argv[1], n, (unsigned long long)sum);
    return 0;
}
