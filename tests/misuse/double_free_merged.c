/* Second free() of a small block that merged with its free neighbours in
 * between: the allocator must still refuse it. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *guard = malloc(32);
    void *before = malloc(200);
    void *p = malloc(200);
    void *after = malloc(200);
    void *end = malloc(32);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(before);
    free(after);
    free(p);
    free(p);
    printf("survived\n");
    free(end);
    free(guard);
    return 0;
}
