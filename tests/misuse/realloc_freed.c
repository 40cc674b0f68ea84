/* realloc() of a small block that was already freed. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *before = malloc(32);
    void *p = malloc(32);
    void *after = malloc(32);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    void *q = realloc(p, 64);
    printf("survived %p\n", q);
    free(after);
    free(before);
    return 0;
}
