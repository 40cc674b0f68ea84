/* The report's allocation helpers: a failed allocation ends the command
 * with "memalloc report: out of memory" (status 1). And a 64-bit mixer
 * for its hash tables. */
#ifndef MEMALLOC_CLI_XALLOC_H
#define MEMALLOC_CLI_XALLOC_H

#include <stddef.h>
#include <stdint.h>

/* n zeroed bytes (calloc) */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

static inline uint64_t hash64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

#endif
