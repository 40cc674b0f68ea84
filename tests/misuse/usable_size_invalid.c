/* malloc_usable_size() of a 16-byte aligned stack address. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    _Alignas(16) char buf[64] = {0};
    void *p = buf + 16;
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    size_t n = malloc_usable_size(p);
    printf("survived %zu\n", n);
    return 0;
}
