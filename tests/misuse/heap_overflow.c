/* A heap overflow: 8 bytes written past the end of a block's usable size
 * land on the next block's header. free() of the overflowed block (no
 * argument) finds that its neighbour's header no longer says it is in
 * use; free() of that next block ("next") finds its own header broken.
 * Either is heap corruption near the block freed.
 *
 * Under memalloc, only boundary-tag chunks have headers: the blocks are
 * 80 KiB (above the 64 KiB of the largest size class, below the 4 MiB
 * mmap threshold). The program checks that b follows a (a's usable size
 * + 8, as with glibc's chunks), else it says so on stderr and exits 3
 * without any misuse. The bytes written are 0xaa: the low bit of the
 * header, "the previous block is in use", is clear. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (80 * 1024)

int main(int argc, char **argv) {
    int next = argc > 1 && strcmp(argv[1], "next") == 0;
    char *a = malloc(SIZE);
    char *b = malloc(SIZE);
    char *guard = malloc(SIZE);
    size_t usable = malloc_usable_size(a);
    if (b != a + usable + 8) {
        fprintf(stderr, "layout: b is not right after a\n");
        return 3;
    }
    char *victim = next ? b : a;
    printf("0x%lx\n", (unsigned long)victim);
    fflush(stdout);
    memset(a, 0xaa, usable + 8); /* 8 bytes too many: b's header */
    free(victim);
    printf("survived\n");
    free(guard);
    return 0;
}
