/* A write to a freed small block (its first 16 bytes), then a malloc() of
 * the same size: under memalloc the freed 48-byte object is the first on
 * its page's free list, so that malloc() pops it and finds the key it kept
 * there overwritten; the message names the freed block. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char *p = malloc(48);
    printf("0x%lx\n", (unsigned long)p); /* stdout's buffer is allocated here */
    fflush(stdout);
    free(p);
    memset(p, 0x55, 16);
    char *q = malloc(48);
    printf("survived %p\n", (void *)q);
    return 0;
}
