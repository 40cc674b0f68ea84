/* Second free() of a 1 MiB block (its own mapping, unmapped by the first). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    free(p);
    printf("survived\n");
    return 0;
}
