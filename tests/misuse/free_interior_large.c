/* free() of p + 4096, a pointer into the middle of a live mmapped block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *p = malloc(1 << 20);
    memset(p, 0, 1 << 20);
    void *bad = p + 4096;
    printf("0x%lx\n", (unsigned long)bad);
    fflush(stdout);
    free(bad);
    printf("survived\n");
    return 0;
}
