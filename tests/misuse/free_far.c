/* free() of an aligned address far from every mapping of the heap. It is
 * almost surely unmapped: the allocator must not read memory there. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    void *keep = malloc(100); /* the heap is initialised */
    void *bad = (void *)0x7ff000000000UL;
    printf("0x%lx\n", (unsigned long)bad);
    fflush(stdout);
    free(bad);
    printf("survived\n");
    free(keep);
    return 0;
}
