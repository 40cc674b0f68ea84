/* free() of p + 16, an aligned pointer into the middle of a live small block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *guard = malloc(64);
    char *p = malloc(64);
    char *after = malloc(64);
    memset(p, 0, 64);
    void *bad = p + 16;
    printf("0x%lx\n", (unsigned long)bad);
    fflush(stdout);
    free(bad);
    printf("survived\n");
    free(after);
    free(guard);
    return 0;
}
