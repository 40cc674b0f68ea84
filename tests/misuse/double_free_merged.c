/* Second free() of a block that merged with both its free neighbours in
 * between: the allocator must still refuse it.
 *
 * Under memalloc, blocks up to 64 KiB are objects of size-class pages,
 * which never merge; blocks above 64 KiB and below the mmap threshold
 * (4 MiB, and nothing here raises it) are boundary-tag chunks of the
 * heap, which do. So the blocks are 80 KiB: freeing before, after, then p
 * merges the three into one free chunk, inside which p's old header lies;
 * the second free of p must still be reported as a double free (glibc's
 * chunks of that size merge too). The program checks that the blocks are
 * neighbours (the next block starts at usable size + 8, as with glibc's
 * chunks), else it says so on stderr and exits 3 without any misuse. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE (80 * 1024)

static int next_to(char *a, char *b) {
    return b == a + malloc_usable_size(a) + 8;
}

int main(void) {
    char *guard = malloc(SIZE);
    char *before = malloc(SIZE);
    char *p = malloc(SIZE);
    char *after = malloc(SIZE);
    char *end = malloc(SIZE);
    if (!next_to(guard, before) || !next_to(before, p) || !next_to(p, after) ||
        !next_to(after, end)) {
        fprintf(stderr, "layout: the 80 KiB blocks are not neighbours\n");
        return 3;
    }
    memset(p, 1, SIZE);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(before);
    free(after);
    free(p); /* merges with both */
    free(p);
    printf("survived\n");
    free(end);
    free(guard);
    return 0;
}
