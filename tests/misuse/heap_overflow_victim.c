/* A heap overflow: 8 bytes written past the end of a block's usable size
 * land on the next block's header; free() of that next block, the one
 * whose header was overwritten, must be reported as heap corruption near
 * it (not as a pointer that was never handed out).
 *
 * Under memalloc, only boundary-tag chunks have headers: the blocks are
 * 80 KiB (above the 64 KiB of the largest size class, below the 128 KiB
 * mmap threshold). The program checks that b follows a (a's usable size
 * + 8, as with glibc's chunks), else it says so on stderr and exits 3
 * without any misuse. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (80 * 1024)

int main(void) {
    char *a = malloc(SIZE);
    char *b = malloc(SIZE);
    char *guard = malloc(SIZE);
    size_t usable = malloc_usable_size(a);
    if (b != a + usable + 8) {
        fprintf(stderr, "layout: b is not right after a\n");
        return 3;
    }
    printf("0x%lx\n", (unsigned long)b);
    fflush(stdout);
    memset(a, 0xaa, usable + 8); /* 8 bytes too many: b's header */
    free(b);
    printf("survived\n");
    free(a);
    free(guard);
    return 0;
}
