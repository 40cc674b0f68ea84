/* realloc() of a 1 MiB block (a mapping of its own) that was already freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    void *q = realloc(p, 2 << 20);
    printf("survived %p\n", q);
    return 0;
}
