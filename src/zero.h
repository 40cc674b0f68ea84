/*
 * zero.h: blocks of size 0. malloc(0) must return a pointer unique among
 * the live blocks, which the program may not read or write. Each such
 * block is an address, 16-aligned, in one stretch of address space that
 * stays inaccessible: any access to it faults at once, where a byte of a
 * real object would let a read or a write through. A bitmap (in .bss,
 * touched as it is used) says which addresses are handed out, so a second
 * free of one is caught. Lock-free: atomic bit operations.
 */
#ifndef MEMALLOC_ZERO_H
#define MEMALLOC_ZERO_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Addresses of the stretch (ZERO_SLOTS * 16 bytes, reserved at the first
 * zero_alloc): a new block of size 0 is one of them, unless all are
 * handed out. */
#define ZERO_SLOTS ((size_t)1 << 22)

extern MA_HIDDEN uintptr_t zero_base; /* 0 until reserved */

/* A block of size 0, or NULL if none is to be had (the stretch could not
 * be reserved, or every address is handed out): the caller allocates a
 * small block instead. */
void *zero_alloc(void);
/* Is p in the stretch? Any p. */
static inline int zero_owns(const void *p) {
    uintptr_t base = load_relaxed(&zero_base);
    return base && (uintptr_t)p - base < ZERO_SLOTS * 16;
}
/* Free p (zero_owns(p), 16-aligned): 1, or 0 if p is not handed out
 * (freed twice, or never allocated). */
int zero_free(void *p);
/* Is p (zero_owns(p)) handed out? */
int zero_live(const void *p);
/* The checker's walk (no call racing): NULL, or what is wrong (the
 * bitmap and the count of blocks handed out disagree). */
const char *zero_check(void);

#endif
