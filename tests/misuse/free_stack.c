/* free() of a 16-byte aligned buffer on the stack: never from the heap. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    _Alignas(16) char buf[64] = {0};
    void *p = buf + 16;
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    printf("survived\n");
    return 0;
}
