/*
 * test_random.c: a long randomised run checked by the heap checker.
 *
 * At least a million operations (memalloc, defalloc, memalloc_aligned,
 * memresize, memdup, memfree) from a seeded xorshift generator on a table
 * of 4096 slots. Every live block holds a pattern derived from its slot and
 * generation (an 8-byte stamp, then bytes that depend on the offset), which
 * is verified before the block is resized or freed and at every checkpoint;
 * memresize must keep the prefix, defalloc must give zeros, the usable size
 * must cover the request and stay fixed, and the bytes past the request up
 * to the usable size are scribbled on. Every 20,000 operations the whole
 * table is verified, memalloc_check() must return 0 and the statistics must
 * agree with the table. The mmap threshold moves between 64 KiB and 1 MiB
 * during the run. At the end everything is freed: no violations, nothing in
 * use, no mapped blocks left.
 *
 *   test_random [seed [ops]]     (or MEMALLOC_TEST_SEED, MEMALLOC_TEST_OPS)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "memalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define NSLOTS          4096
#define CHECK_EVERY     20000
#define THRESHOLD_EVERY 100000
#define DEFAULT_OPS     1000000
#define DEFAULT_SEED    0x2545f4914f6cdd1dull
#define STAMP           8 /* bytes of slot/generation stamp at the start of a block */

static uint64_t rng;
static uint64_t rnd(void) { /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}
static size_t below(size_t n) {
    return n ? (size_t)(rnd() % n) : 0;
}

struct slot {
    unsigned char *p; /* NULL: empty */
    size_t size;      /* requested */
    size_t usable;    /* memalloc_usable_size at allocation */
    size_t align;     /* alignment asked for (16 for the plain calls) */
    uint32_t gen;     /* allocation number of this slot */
    unsigned char seed;
};
static struct slot slots[NSLOTS];
static size_t nlive, live_usable;

/* ref[i] = i mod 256: the pattern for seed s at offset i is ref[(s + i) & 255]. */
static unsigned char ref[4096 + 256];
static const unsigned char zeros[4096];
static unsigned char dup_src[64 * 1024 + 1];
#define DUP_SEED 0x5a

static size_t min_sz(size_t a, size_t b) {
    return a < b ? a : b;
}

static void stamp_of(size_t idx, const struct slot *s, unsigned char out[STAMP]) {
    uint64_t v = ((uint64_t)idx << 40) ^ ((uint64_t)s->gen << 8) ^ 0xa5a5000000000000ull ^ s->seed;
    memcpy(out, &v, STAMP);
}

/* Pattern bytes [from, to) with seed (offsets are absolute in the block). */
static void pattern_fill(unsigned char *p, size_t from, size_t to, unsigned seed) {
    for (size_t i = from; i < to;) {
        size_t k = min_sz(4096, to - i);
        memcpy(p + i, ref + ((seed + i) & 255), k);
        i += k;
    }
}
/* First offset in [from, to) that breaks the pattern, or to. */
static size_t pattern_check(const unsigned char *p, size_t from, size_t to, unsigned seed) {
    for (size_t i = from; i < to;) {
        size_t k = min_sz(4096, to - i);
        if (memcmp(p + i, ref + ((seed + i) & 255), k) != 0)
            for (size_t j = i;; j++)
                if (p[j] != (unsigned char)(seed + j)) return j;
        i += k;
    }
    return to;
}
static size_t zero_check(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = min_sz(sizeof zeros, n - i);
        if (memcmp(p + i, zeros, k) != 0)
            for (size_t j = i;; j++)
                if (p[j]) return j;
        i += k;
    }
    return n;
}

/* Write slot idx's contents over [from, to). */
static void put(size_t idx, size_t from, size_t to) {
    struct slot *s = &slots[idx];
    unsigned char st[STAMP];
    stamp_of(idx, s, st);
    size_t i = from;
    for (; i < to && i < STAMP; i++) s->p[i] = st[i];
    pattern_fill(s->p, i, to, s->seed);
}
/* First wrong offset of slot idx's contents in [0, n), or n. */
static size_t bad_at(size_t idx, const unsigned char *p, size_t n) {
    const struct slot *s = &slots[idx];
    unsigned char st[STAMP];
    stamp_of(idx, s, st);
    size_t i = 0;
    for (; i < n && i < STAMP; i++)
        if (p[i] != st[i]) return i;
    return pattern_check(p, i, n, s->seed);
}

static unsigned long ops_done;

static void verify(size_t idx, const char *when) {
    struct slot *s = &slots[idx];
    size_t bad = bad_at(idx, s->p, s->size);
    CHECKF(bad == s->size, "op %lu: slot %zu (%p, size %zu, gen %u) corrupt at offset %zu (%s)",
           ops_done, idx, (void *)s->p, s->size, s->gen, bad, when);
}

/* A new block in slot idx: check it, scribble on the slack, record it. */
static void adopt(size_t idx, unsigned char *p, size_t size, size_t align) {
    struct slot *s = &slots[idx];
    size_t want = align < 16 ? 16 : align;
    size_t usable = memalloc_usable_size(p);
    CHECKF(((uintptr_t)p & (want - 1)) == 0, "op %lu: %p not %zu-aligned", ops_done, (void *)p,
           want);
    CHECKF(usable >= size, "op %lu: usable %zu < size %zu", ops_done, usable, size);
    s->p = p;
    s->size = size;
    s->usable = usable;
    s->align = align;
    if (usable > size) memset(p + size, 0xEE, usable - size);
    nlive++;
    live_usable += usable;
}
static void drop(size_t idx) {
    nlive--;
    live_usable -= slots[idx].usable;
    slots[idx].p = NULL;
}

static size_t pick_size(void) {
    size_t r = below(100000);
    if (r < 93000) return below(513);          /* small */
    if (r < 99700) return below(64 * KiB + 1); /* medium */
    if (r < 99998) return below(4 * MiB + 1);  /* large */
    return 16 * MiB - below(64 * KiB);         /* rarely: 16 MiB */
}
static size_t pick_align(void) {
    if (below(200) == 0) return MiB;
    return (size_t)16 << below(13); /* 16 .. 64 KiB */
}

static struct {
    unsigned long alloc, defalloc, aligned, resize_null, dup, free, resize, resize0, verify, trim;
} count;

static void op_empty(size_t idx) {
    struct slot *s = &slots[idx];
    size_t size = pick_size(), align = 16;
    unsigned char *p = NULL;
    unsigned kind = (unsigned)below(100);
    int zeroed = 0, duped = 0;
    if (kind < 45) {
        p = memalloc(size);
        count.alloc++;
    } else if (kind < 65) {
        size_t elem = (size_t)1 << below(5), n = (size + elem - 1) / elem;
        size = n * elem;
        p = defalloc(n, elem);
        zeroed = 1;
        count.defalloc++;
    } else if (kind < 77) {
        align = pick_align();
        p = memalloc_aligned(align, size);
        count.aligned++;
    } else if (kind < 90) {
        p = memresize(NULL, size);
        count.resize_null++;
    } else {
        size = min_sz(size, sizeof dup_src);
        p = memdup(dup_src, size);
        duped = 1;
        count.dup++;
    }
    CHECKF(p != NULL, "op %lu: allocation of %zu (kind %u, align %zu) failed, errno %d", ops_done,
           size, kind, align, errno);
    if (!p) return;
    if (zeroed) {
        size_t bad = zero_check(p, size);
        CHECKF(bad == size, "op %lu: defalloc(%zu) byte %zu is %#x", ops_done, size, bad,
               bad < size ? p[bad] : 0);
    }
    if (duped) {
        size_t bad = pattern_check(p, 0, size, DUP_SEED);
        CHECKF(bad == size, "op %lu: memdup(%zu) wrong at %zu", ops_done, size, bad);
    }
    adopt(idx, p, size, align);
    s->gen++;
    s->seed = (unsigned char)rnd();
    put(idx, 0, size);
}

static void op_live(size_t idx) {
    struct slot *s = &slots[idx];
    unsigned kind = (unsigned)below(100);
    verify(idx, "before use");
    size_t u = memalloc_usable_size(s->p);
    CHECKF(u == s->usable, "op %lu: slot %zu usable size changed %zu -> %zu", ops_done, idx,
           s->usable, u);
    if (kind < 45) {
        memfree(s->p);
        drop(idx);
        count.free++;
    } else if (kind < 90) {
        size_t n = below(50) == 0 ? 0 : pick_size();
        if (below(4) == 0 && s->size) n = s->size / 2 + below(s->size + 1); /* near the old size */
        size_t old = s->size;
        unsigned char *q = memresize(s->p, n);
        if (n == 0) {
            CHECKF(q == NULL, "op %lu: memresize(p, 0) returned %p", ops_done, (void *)q);
            drop(idx);
            count.resize0++;
            return;
        }
        CHECKF(q != NULL, "op %lu: memresize(%zu -> %zu) failed, errno %d", ops_done, old, n,
               errno);
        if (!q) return; /* the old block is still there */
        count.resize++;
        size_t keep = min_sz(old, n);
        size_t bad = bad_at(idx, q, keep);
        CHECKF(bad == keep, "op %lu: memresize(%zu -> %zu) lost the prefix at %zu", ops_done, old,
               n, bad);
        drop(idx);
        adopt(idx, q, n, 16);
        if (n > old) put(idx, old, n);
    } else {
        count.verify++;
    }
}

static void verify_all(const char *when) {
    for (size_t i = 0; i < NSLOTS; i++)
        if (slots[i].p) verify(i, when);
}

static uint64_t base_net;

static void checkpoint(const char *when) {
    verify_all(when);
    int v = memalloc_check();
    CHECKF(v == 0, "op %lu: memalloc_check() found %d violations (%s)", ops_done, v, when);
    struct memalloc_stats st;
    memalloc_get_stats(&st);
    uint64_t net = st.allocs - st.frees - base_net;
    CHECKF(net == nlive, "op %lu: allocs - frees = %" PRIu64 ", live blocks %zu", ops_done, net,
           nlive);
    CHECKF(st.in_use == live_usable, "op %lu: in_use %zu, live usable bytes %zu", ops_done,
           st.in_use, live_usable);
    CHECK(st.peak_in_use >= st.in_use);
}

TEST(test_random_operations) {
    unsigned long ops = DEFAULT_OPS;
    const char *e = getenv("MEMALLOC_TEST_OPS");
    if (e && *e) ops = strtoul(e, NULL, 0);
    struct memalloc_stats st;
    memalloc_get_stats(&st);
    base_net = st.allocs - st.frees;
    CHECK(st.in_use == 0);
    size_t thresholds[] = {64 * KiB, MiB};
    int tsel = 0;
    for (ops_done = 0; ops_done < ops; ops_done++) {
        size_t idx = below(NSLOTS);
        if (slots[idx].p)
            op_live(idx);
        else
            op_empty(idx);
        if (ops_done % CHECK_EVERY == CHECK_EVERY - 1) checkpoint("checkpoint");
        if (ops_done % THRESHOLD_EVERY == THRESHOLD_EVERY / 2) {
            size_t t = thresholds[tsel ^= 1];
            CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, t) == 0);
            CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == t);
        }
        if (ops_done % 150000 == 149999) {
            /* 1 if it gave anything back (the cached mappings at least, if
             * any); then nothing is left: a second trim gives 0 */
            size_t pad = below(2) ? 0 : below(MiB);
            memalloc_get_stats(&st);
            int r = memalloc_trim(pad);
            if (st.mmap_cached_blocks)
                CHECKF(r == 1, "op %lu: memalloc_trim(%zu) = %d with %zu cached mappings", ops_done,
                       pad, r, st.mmap_cached_blocks);
            r = memalloc_trim(pad);
            CHECKF(r == 0, "op %lu: memalloc_trim(%zu) right after a trim = %d", ops_done, pad, r);
            count.trim++;
            checkpoint("after memalloc_trim");
        }
    }
    checkpoint("end of the run");
    fprintf(stderr,
            "ops %lu: memalloc %lu defalloc %lu aligned %lu memresize(NULL) %lu memdup %lu "
            "memfree %lu memresize %lu memresize(0) %lu verify %lu trim %lu; live %zu\n",
            ops_done, count.alloc, count.defalloc, count.aligned, count.resize_null, count.dup,
            count.free, count.resize, count.resize0, count.verify, count.trim, nlive);

    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 131072) == 0);
    for (size_t i = 0; i < NSLOTS; i++) {
        if (!slots[i].p) continue;
        verify(i, "final free");
        memfree(slots[i].p);
        drop(i);
    }
    CHECK(nlive == 0 && live_usable == 0);
    CHECK(memalloc_check() == 0);
    memalloc_get_stats(&st);
    CHECKF(st.in_use == 0, "in_use %zu after freeing everything", st.in_use);
    CHECKF(st.mmapped_blocks == 0, "mmapped_blocks %zu after freeing everything",
           st.mmapped_blocks);
    CHECKF(st.mmapped_bytes == 0, "mmapped_bytes %zu after freeing everything", st.mmapped_bytes);
    CHECK(st.allocs - st.frees == base_net);
    CHECK(st.total_mmapped_blocks > 0); /* the large path was exercised */
    /* everything was written and freed: a trim gives memory back, and a
     * second one finds nothing more */
    int r = memalloc_trim(0);
    CHECKF(r == 1, "memalloc_trim(0) after freeing every block = %d", r);
    r = memalloc_trim(0);
    CHECKF(r == 0, "memalloc_trim(0) right after a trim = %d", r);
    CHECK(memalloc_check() == 0);
}

int main(int argc, char **argv) {
    uint64_t seed = DEFAULT_SEED;
    const char *s = argc > 1 ? argv[1] : getenv("MEMALLOC_TEST_SEED");
    if (s && *s) seed = strtoull(s, NULL, 0);
    if (argc > 2) setenv("MEMALLOC_TEST_OPS", argv[2], 1);
    rng = seed ? seed : DEFAULT_SEED;
    fprintf(stderr, "test_random: seed %#" PRIx64 " (rerun: test_random %#" PRIx64 ")\n", seed,
            seed);
    for (size_t i = 0; i < sizeof ref; i++) ref[i] = (unsigned char)i;
    pattern_fill(dup_src, 0, sizeof dup_src, DUP_SEED);
    RUN(test_random_operations);
    return harness_finish();
}
