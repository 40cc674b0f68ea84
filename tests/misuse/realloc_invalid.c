/* realloc() of a 16-byte aligned stack address. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    _Alignas(16) char buf[64] = {0};
    void *p = buf + 16;
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    void *q = realloc(p, 128);
    printf("survived %p\n", q);
    return 0;
}
