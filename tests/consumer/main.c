/*
 * A program built against an installed memalloc, through pkg-config or
 * find_package(memalloc) (tests/integration/package.bats). It calls the
 * engine's API and prints what shows that memalloc served it: the file of
 * the library that holds memalloc() and malloc(), and the engine's own
 * counters. Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <memalloc.h>
#include <stdio.h>
#include <string.h>

enum { NBLOCKS = 64 };

/* The file of the shared object that defines addr ("?" if none). */
static const char *object_of(const void *addr) {
    Dl_info info;
    return addr && dladdr(addr, &info) && info.dli_fname ? info.dli_fname : "?";
}

int main(void) {
    struct memalloc_stats before, after;
    char *blocks[NBLOCKS];
    int bad = 0;

    memalloc_get_stats(&before);
    for (int i = 0; i < NBLOCKS; i++) {
        size_t n = 16 + (size_t)i * 40;
        blocks[i] = memalloc(n);
        if (!blocks[i]) return 1;
        memoryset(blocks[i], 'a' + i % 26, n);
    }
    for (int i = 0; i < NBLOCKS; i += 2) {
        char *p = memresize(blocks[i], 5000);
        if (!p) return 1;
        blocks[i] = p;
    }
    char *copy = memdup(blocks[1], 56);
    bad |= !copy || memcmp(copy, blocks[1], 56) != 0;
    for (int i = 0; i < NBLOCKS; i++) {
        size_t n = 16 + (size_t)i * 40;
        bad |= blocks[i][0] != 'a' + i % 26 || blocks[i][n - 1] != 'a' + i % 26;
        bad |= memalloc_usable_size(blocks[i]) < (i % 2 ? n : 5000);
        memfree(blocks[i]);
    }
    memfree(copy);
    memalloc_get_stats(&after);
    int violations = memalloc_check();

    /* Printed after the counters were read: stdio allocates too. */
    printf("memalloc: %s\n", object_of((const void *)memalloc));
    printf("malloc: %s\n", object_of(dlsym(RTLD_DEFAULT, "malloc")));
    unsigned long long allocs = after.allocs - before.allocs, frees = after.frees - before.frees;
    printf("engine: %llu allocations, %llu frees, %d violations\n", allocs, frees, violations);
    bad |= allocs < NBLOCKS + 1 || frees < NBLOCKS + 1 || violations != 0;
    printf("consumer: %s\n", bad ? "FAILED" : "ok");
    return bad;
}
