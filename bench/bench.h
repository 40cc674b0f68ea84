/*
 * bench.h: what every workload in bench/ shares: a fixed-seed xorshift PRNG,
 * a monotonic clock, light touching of blocks, and the one report line that
 * bench/run.py reads. Header-only; workloads call nothing from the heap but
 * the standard malloc family, so one binary serves every allocator through
 * LD_PRELOAD.
 *
 * Report line (stdout, one line, last thing printed):
 *   <name>: seconds=<s> ops=<n> ops_per_s=<n/s> checksum=<16 hex digits>
 * The checksum depends only on the seed and the arguments, never on the
 * allocator, the addresses or the thread schedule: run.py compares it across
 * allocators.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* xorshift64 (Marsaglia 13/7/17): deterministic, a few instructions, never 0. */
typedef struct {
    uint64_t s;
} rng_t;

static inline rng_t rng_seed(uint64_t seed) {
    rng_t r = {seed * 0x9E3779B97F4A7C15ull | 1};
    return r;
}

static inline uint64_t rng_next(rng_t *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->s = x;
}

/* Uniform in [0, n), n > 0 (the modulo bias is irrelevant here). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) {
    return rng_next(r) % n;
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi) {
    return lo + (size_t)rng_below(r, hi - lo + 1);
}

/* Log-uniform in [lo, hi], lo >= 1: each power of two is equally likely, so
 * small sizes dominate the count and large ones the bytes. */
static inline size_t rng_logsize(rng_t *r, size_t lo, size_t hi) {
    unsigned elo = 63u - (unsigned)__builtin_clzll(lo);
    unsigned ehi = 63u - (unsigned)__builtin_clzll(hi);
    unsigned e = elo + (unsigned)rng_below(r, ehi - elo + 1);
    size_t base = (size_t)1 << e;
    size_t n = base + (size_t)rng_below(r, base);
    return n < lo ? lo : n > hi ? hi : n;
}

static inline double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Write a tag into the first and the last byte of a block of n >= 1 bytes. */
static inline void touch_ends(void *p, size_t n, uint64_t tag) {
    unsigned char *b = p;
    b[0] = (unsigned char)tag;
    b[n - 1] = (unsigned char)(tag >> 8);
}

/* Read back what touch_ends wrote, as a value to add to a checksum; exits
 * with a message if the block lost its contents. */
static inline uint64_t check_ends(const void *p, size_t n, uint64_t tag) {
    const unsigned char *b = p;
    if (b[0] != (unsigned char)tag || b[n - 1] != (unsigned char)(tag >> 8)) {
        fprintf(stderr, "bench: block %p of %zu bytes lost its contents\n", p, n);
        exit(2);
    }
    return (uint64_t)b[0] + ((uint64_t)b[n - 1] << 8);
}

/* Die with a message when the allocator fails. */
static inline void *need(void *p, const char *what, size_t n) {
    if (!p) {
        fprintf(stderr, "bench: %s(%zu) failed\n", what, n);
        exit(2);
    }
    return p;
}

/* argv[i] as a positive count, or dflt when absent. */
static inline unsigned long arg_count(int argc, char **argv, int i, unsigned long dflt) {
    if (argc <= i) return dflt;
    char *end;
    unsigned long v = strtoul(argv[i], &end, 10);
    if (*end || v == 0) {
        fprintf(stderr, "bench: argument %d must be a positive integer, not '%s'\n", i, argv[i]);
        exit(2);
    }
    return v;
}

/* Buffers replaced at random (bigbuf, midbuf): nslots (at most 64)
 * buffers of lo..hi bytes (uniform), each filled when allocated; each of
 * ops operations checks and frees a random one and allocates its
 * replacement. fill writes a buffer with a tag, check verifies it (exiting
 * if it lost its contents) and returns a value for the checksum. Returns
 * the checksum; *seconds is the time the loop took. */
typedef void (*fill_fn)(unsigned char *p, size_t n, unsigned char tag);
typedef uint64_t (*check_fn)(const unsigned char *p, size_t n, unsigned char tag);
static inline uint64_t replace_at_random(unsigned nslots, size_t lo, size_t hi, unsigned long ops,
                                         uint64_t seed, fill_fn fill, check_fn check,
                                         double *seconds) {
    unsigned char *slot[64] = {0};
    size_t size[64] = {0};
    rng_t r = rng_seed(seed);
    uint64_t sum = 0;
    if (nslots > 64) nslots = 64;

    double t0 = now_seconds();
    for (unsigned k = 0; k < nslots; k++) {
        size[k] = rng_range(&r, lo, hi);
        slot[k] = need(malloc(size[k]), "malloc", size[k]);
        fill(slot[k], size[k], (unsigned char)(k | 1));
    }
    for (unsigned long i = 0; i < ops; i++) {
        unsigned k = (unsigned)rng_below(&r, nslots);
        sum += check(slot[k], size[k], slot[k][0]);
        free(slot[k]);
        size[k] = rng_range(&r, lo, hi);
        slot[k] = need(malloc(size[k]), "malloc", size[k]);
        fill(slot[k], size[k], (unsigned char)(i | 1));
    }
    for (unsigned k = 0; k < nslots; k++) {
        sum += check(slot[k], size[k], slot[k][0]);
        free(slot[k]);
    }
    *seconds = now_seconds() - t0;
    return sum;
}

static inline void report(const char *name, double seconds, uint64_t ops, uint64_t checksum) {
    printf("%s: seconds=%.6f ops=%llu ops_per_s=%.0f checksum=%016llx\n", name, seconds,
           (unsigned long long)ops, seconds > 0 ? (double)ops / seconds : 0.0,
           (unsigned long long)checksum);
    fflush(stdout);
}

#endif
