/* check_leaks: known leaks for MEMALLOC_CHECK_LEAKS=1
 * (tests/integration/check_misuse.bats): three blocks of 100 bytes from
 * leak_small, one of 5000 bytes from leak_big, and a block of 64 bytes
 * that is freed (not a leak). 5300 bytes in 4 blocks from 2 stacks. It
 * writes with write(2) only: stdio would leave its buffer on the heap,
 * and that would be a leak too. Built with -O0 -g: the leaking functions
 * are not inlined, so that the report's stacks can be checked for their
 * names. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *kept[4];

__attribute__((noinline)) static void *leak_small(void) {
    return malloc(100);
}

__attribute__((noinline)) static void *leak_big(void) {
    return malloc(5000);
}

__attribute__((noinline)) static void *not_leaked(void) {
    return malloc(64);
}

int main(void) {
    for (int i = 0; i < 3; i++) kept[i] = leak_small();
    kept[3] = leak_big();
    void *f = not_leaked();
    for (int i = 0; i < 4; i++) memset(kept[i], 1, i < 3 ? 100 : 5000);
    free(f);
    /* forgotten: the blocks are leaks, though still pointed to */
    for (int i = 0; i < 4; i++) kept[i] = NULL;
    static const char done[] = "done\n";
    if (write(1, done, sizeof done - 1) < 0) return 1;
    return 0;
}
