/* free() of a 16-byte aligned global array (in .bss). */
#include <stdio.h>
#include <stdlib.h>

static _Alignas(16) char global_buf[256];

int main(void) {
    void *p = global_buf + 32;
    printf("0x%lx\n", (unsigned long)p);
    fflush(stdout);
    free(p);
    printf("survived\n");
    return 0;
}
