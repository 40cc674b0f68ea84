/*
 * string.c: memoryset (a word-wide memset) and memdup.
 */
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "memalloc.h"

/*
 * memoryset:
 *  1. bytes up to the first 8-byte boundary one at a time;
 *  2. whole words of the byte repeated (c * 0x0101010101010101), unrolled;
 *  3. the tail one byte at a time.
 */
typedef uint64_t __attribute__((may_alias)) word;

void *memoryset(void *ptr, int c, size_t size) {
    unsigned char *p = ptr, b = (unsigned char)c;
    while (size && ((uintptr_t)p & 7)) {
        *p++ = b;
        size--;
    }
    uint64_t w = b * 0x0101010101010101ull;
    for (; size >= 32; size -= 32, p += 32) {
        word *q = (word *)(void *)p;
        q[0] = w;
        q[1] = w;
        q[2] = w;
        q[3] = w;
    }
    for (; size >= 8; size -= 8, p += 8) *(word *)(void *)p = w;
    while (size--) *p++ = b;
    return ptr;
}

void *memdup(const void *src, size_t size) {
    void *p = ma_malloc(size);
    if (p && size) memcpy(p, src, size);
    return p;
}
