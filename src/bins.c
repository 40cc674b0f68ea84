/*
 * bins.c: segregated free lists (bins) and their bitmap (see bins.h).
 */
#include "bins.h"

unsigned bin_index(size_t size) {
    if (size < NSMALLBINS * 16) return (unsigned)(size >> 4);
    unsigned e = 63u - (unsigned)__builtin_clzll(size); /* 2^e <= size: e >= 10 */
    unsigned sub = (unsigned)(size >> (e - 3)) & 7u;
    unsigned i = NSMALLBINS + (e - 10) * 8 + sub;
    return i < NBINS ? i : NBINS - 1;
}

void bins_init(struct bins *b) {
    for (unsigned i = 0; i < NBINS; i++) b->list[i].next = b->list[i].prev = &b->list[i];
    for (unsigned w = 0; w < BITMAP_WORDS; w++) b->bitmap[w] = 0;
}

void bin_insert(struct bins *b, struct chunk *c) {
    ma_assert(!cinuse(c) && chunk_size(c) >= MIN_CHUNK && ((uintptr_t)c & 15) == 0);
    unsigned i = bin_index(chunk_size(c));
    struct freelink *bin = &b->list[i], *l = chunk_link(c);
    l->next = bin->next;
    l->prev = bin;
    bin->next->prev = l;
    bin->next = l;
    b->bitmap[i / 64] |= (uint64_t)1 << (i % 64);
}

void bin_unlink(struct bins *b, struct chunk *c) {
    struct freelink *l = chunk_link(c);
    ma_assert(!cinuse(c) && l->next->prev == l && l->prev->next == l);
    l->prev->next = l->next;
    l->next->prev = l->prev;
    if (l->next == l->prev) { /* the list may now be empty */
        unsigned i = bin_index(chunk_size(c));
        if (b->list[i].next == &b->list[i]) b->bitmap[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
}

/* The first non-empty bin at index >= i, or NBINS. */
static unsigned next_bin(const struct bins *b, unsigned i) {
    for (unsigned w = i / 64; w < BITMAP_WORDS; w++) {
        uint64_t bits = b->bitmap[w];
        if (w == i / 64) bits &= ~(uint64_t)0 << (i % 64);
        if (bits) return w * 64 + (unsigned)__builtin_ctzll(bits);
    }
    return NBINS;
}

/* Chunks of a large bin looked at for a fit before moving up a bin: the
 * bin search stays O(1) however many chunks a bin holds. */
#define BIN_SCAN 4

/*
 * Find a chunk for nb bytes:
 *  1. small: the exact bin holds only chunks of size nb; take its first.
 *  2. large: the best fit among the first BIN_SCAN chunks of nb's own bin
 *     (its chunks may be smaller than nb; a bin spans 1/8 of a power of 2).
 *  3. otherwise the first non-empty higher bin: all its chunks are > nb.
 */
struct chunk *bin_take(struct bins *b, size_t nb) {
    unsigned i = bin_index(nb);
    struct freelink *bin = &b->list[i];
    struct chunk *best = NULL;
    if (bin->next != bin) {
        if (i < NSMALLBINS) {
            best = link_chunk(bin->next);
        } else {
            unsigned seen = 0;
            for (struct freelink *l = bin->next; l != bin && seen++ < BIN_SCAN; l = l->next) {
                struct chunk *c = link_chunk(l);
                size_t s = chunk_size(c);
                if (s >= nb && (!best || s < chunk_size(best))) {
                    best = c;
                    if (s == nb) break;
                }
            }
        }
    }
    if (!best) {
        unsigned j = next_bin(b, i + 1);
        if (j == NBINS) return NULL;
        best = link_chunk(b->list[j].next);
    }
    bin_unlink(b, best);
    return best;
}
