/* free() of p + 1: not even aligned like a block of the allocator. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char *p = malloc(48);
    void *bad = p + 1;
    printf("0x%lx\n", (unsigned long)bad);
    fflush(stdout);
    free(bad);
    printf("survived\n");
    return 0;
}
