/*
 * zero.c: blocks of size 0 (zero.h). The stretch is reserved inaccessible
 * and never opened; the bitmap has one bit per 16-byte address, set while
 * the address is handed out. New blocks are taken round the bitmap from a
 * moving cursor, so an address freed is not handed out again until the
 * cursor comes back to it: a stale pointer to a block of size 0 is not
 * soon the pointer of another.
 */
#include "zero.h"

#include "os.h"

MA_HIDDEN uintptr_t zero_base;

#define ZERO_WORDS (ZERO_SLOTS / 64)
static MA_LARGE_BSS uint64_t zero_bits[ZERO_WORDS];
static size_t zero_cursor; /* relaxed: a hint where to look first */
static size_t zero_live_n; /* blocks handed out (relaxed) */

/* The stretch, reserved now if it is not yet; 0 on failure (tried again
 * at the next call). */
static uintptr_t zero_stretch(void) {
    uintptr_t base = load_acquire(&zero_base);
    if (likely(base)) return base;
    void *r = os_reserve(ZERO_SLOTS * 16);
    if (!r) return 0;
    uintptr_t expected = 0;
    if (!cas_acquire_strong(&zero_base, &expected, (uintptr_t)r)) {
        os_unmap(r, ZERO_SLOTS * 16); /* another thread reserved it first */
        return expected;
    }
    return (uintptr_t)r;
}

void *zero_alloc(void) {
    uintptr_t base = zero_stretch();
    if (!base) return NULL;
    if (add_relaxed(&zero_live_n, 1) > ZERO_SLOTS) {
        sub_relaxed(&zero_live_n, 1);
        return NULL; /* every address is handed out */
    }
    /* a bit is free somewhere: the count reserved it */
    size_t i = load_relaxed(&zero_cursor) % ZERO_WORDS;
    for (;;) {
        uint64_t w = load_relaxed(&zero_bits[i]);
        while (~w) {
            uint64_t bit = (uint64_t)1 << __builtin_ctzll(~w);
            w = or_relaxed(&zero_bits[i], bit);
            if (!(w & bit)) {
                store_relaxed(&zero_cursor, i);
                return (void *)(base + (i * 64 + (size_t)__builtin_ctzll(bit)) * 16);
            }
        }
        i = (i + 1) % ZERO_WORDS;
    }
}

int zero_free(void *p) {
    size_t slot = ((uintptr_t)p - load_relaxed(&zero_base)) / 16;
    uint64_t bit = (uint64_t)1 << (slot % 64);
    if (!(and_release(&zero_bits[slot / 64], ~bit) & bit)) return 0;
    sub_relaxed(&zero_live_n, 1);
    return 1;
}

int zero_live(const void *p) {
    size_t slot = ((uintptr_t)p - load_relaxed(&zero_base)) / 16;
    return (load_relaxed(&zero_bits[slot / 64]) >> (slot % 64)) & 1;
}

const char *zero_check(void) {
    size_t n = 0;
    if (load_relaxed(&zero_base))
        for (size_t i = 0; i < ZERO_WORDS; i++) n += (size_t)__builtin_popcountll(zero_bits[i]);
    return n == load_relaxed(&zero_live_n) ? NULL : "blocks of size 0 miscounted";
}
