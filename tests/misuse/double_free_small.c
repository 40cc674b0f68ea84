/* Second free() of a small block whose neighbours stay in use. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *before = malloc(32);
    void *p = malloc(32);
    void *after = malloc(32);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    free(p);
    printf("survived\n");
    free(after);
    free(before);
    return 0;
}
