/*
 * bins.h: segregated free lists of chunks ("bins") and their bitmap.
 * Owns the map from chunk size to bin and the list links inside free
 * chunks; knows nothing of regions, neighbours or locks (the caller holds
 * the lock that guards the bins).
 *
 * 64 exact bins for chunk sizes below 1024 (index = size / 16), then eight
 * bins per power of two up to the region size. Bit i of the bitmap is set
 * iff bins i is non-empty, so the next fitting bin is found with ctz.
 */
#ifndef MEMALLOC_BINS_H
#define MEMALLOC_BINS_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

#define NSMALLBINS   64
#define NBINS        192
#define BITMAP_WORDS (NBINS / 64)

struct bins {
    uint64_t bitmap[BITMAP_WORDS];
    struct freelink list[NBINS]; /* circular; the sentinel is the list head itself */
};

unsigned bin_index(size_t size);
void bins_init(struct bins *b);
/* Put free chunk c on its bin. */
void bin_insert(struct bins *b, struct chunk *c);
/* Take free chunk c off its bin. */
void bin_unlink(struct bins *b, struct chunk *c);
/* Unlink and return a free chunk of size >= nb, or NULL. */
struct chunk *bin_take(struct bins *b, size_t nb);

#endif
