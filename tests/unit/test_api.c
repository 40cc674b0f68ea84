/*
 * test_api.c: the engine's own API, as include/memalloc.h specifies it:
 * memalloc, defalloc, memfree, memresize, memdup, memoryset,
 * memalloc_aligned, memalloc_usable_size, memalloc_trim, the statistics,
 * the options and memalloc_check. Seen from outside only (public header).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "memalloc.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define DEFAULT_MMAP_THRESHOLD ((size_t)4 << 20)

static size_t opaque(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

static struct memalloc_stats stats(void) {
    struct memalloc_stats s;
    memset(&s, 0xff, sizeof s);
    memalloc_get_stats(&s);
    return s;
}

static const size_t sizes[] = {0,      1,      2,      15,     16,    17,          24,
                               31,     32,     100,    255,    256,   1000,        1024,
                               4095,   4096,   4097,   10000,  65535, 65536,       100000,
                               131071, 131072, 131073, 200000, MiB,   3 * MiB + 5, 8 * MiB};
#define NSIZES (sizeof sizes / sizeof *sizes)

TEST(test_memalloc) {
    CHECK(memalloc_check() == 0);
    char *v[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        errno = 777;
        v[i] = memalloc(opaque(sizes[i]));
        CHECKF(v[i] != NULL, "memalloc(%zu)", sizes[i]);
        CHECK(errno == 777); /* success leaves errno alone */
        if (!v[i]) continue;
        CHECKF(aligned(v[i], 16), "memalloc(%zu) = %p", sizes[i], (void *)v[i]);
        CHECKF(memalloc_usable_size(v[i]) >= sizes[i], "memalloc(%zu): usable %zu", sizes[i],
               memalloc_usable_size(v[i]));
        fill(v[i], sizes[i], (unsigned)i);
    }
    CHECK(memalloc_check() == 0);
    for (size_t i = 0; i < NSIZES; i++)
        if (v[i]) CHECKF(first_bad(v[i], sizes[i], (unsigned)i) == sizes[i], "size %zu", sizes[i]);
    errno = 777;
    for (size_t i = 0; i < NSIZES; i++) memfree(v[i]);
    memfree(NULL);
    CHECK(errno == 777);
    CHECK(memalloc_check() == 0);

    /* size 0: distinct, usable minimum blocks */
    enum { Z = 64 };
    void *z[Z];
    for (int i = 0; i < Z; i++) {
        z[i] = memalloc(opaque(0));
        CHECK(z[i] != NULL && aligned(z[i], 16));
    }
    int distinct = 1;
    for (int i = 0; i < Z; i++)
        for (int j = 0; j < i; j++) distinct &= z[i] != z[j];
    CHECK(distinct);
    for (int i = 0; i < Z; i++) memfree(z[i]);

    /* impossible sizes */
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1,
                                  (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 8};
    for (size_t i = 0; i < sizeof huge / sizeof *huge; i++) {
        errno = 0;
        void *p = memalloc(opaque(huge[i]));
        CHECKF(p == NULL && errno == ENOMEM, "memalloc(%#zx) = %p errno %d", huge[i], p, errno);
    }
}

TEST(test_defalloc) {
    /* zeroed, also when the memory was used and dirtied before */
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        for (int r = 0; r < 3; r++) {
            char *d = memalloc(opaque(n));
            REQUIRE(d != NULL);
            memset(d, 0xAB, memalloc_usable_size(d));
            memfree(d);
            errno = 777;
            char *p = r == 1 && n % 8 == 0 ? defalloc(n / 8, 8) : defalloc(1, opaque(n));
            CHECK(errno == 777);
            CHECKF(p != NULL, "defalloc %zu", n);
            if (!p) continue;
            CHECK(aligned(p, 16));
            CHECK(memalloc_usable_size(p) >= n);
            CHECKF(first_nonzero(p, n) == n, "defalloc(%zu) round %d not zero", n, r);
            memfree(p);
        }
    }
    /* zero elements or zero size: distinct minimum blocks */
    void *a = defalloc(opaque(0), 8), *b = defalloc(8, opaque(0)), *c = defalloc(0, 0);
    CHECK(a && b && c && a != b && b != c && a != c);
    memfree(a);
    memfree(b);
    memfree(c);
    /* n * size overflows, or is too big */
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 2, 2},
        {2, SIZE_MAX / 2 + 2},
        {(size_t)1 << 33, (size_t)1 << 33},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2},
        {1, SIZE_MAX},
        {SIZE_MAX, 1},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        errno = 0;
        void *p = defalloc(opaque(pairs[i][0]), opaque(pairs[i][1]));
        CHECKF(p == NULL && errno == ENOMEM, "defalloc(%#zx, %#zx) = %p errno %d", pairs[i][0],
               pairs[i][1], p, errno);
    }
    CHECK(memalloc_check() == 0);
}

TEST(test_memresize) {
    /* NULL: acts as memalloc */
    for (size_t i = 0; i < NSIZES; i++) {
        errno = 777;
        char *p = memresize(NULL, opaque(sizes[i]));
        CHECKF(p != NULL, "memresize(NULL, %zu)", sizes[i]);
        CHECK(errno == 777);
        if (!p) continue;
        CHECK(aligned(p, 16) && memalloc_usable_size(p) >= sizes[i]);
        fill(p, sizes[i], 1);
        CHECK(first_bad(p, sizes[i], 1) == sizes[i]);
        memfree(p);
    }
    /* size 0: frees and returns NULL */
    static const size_t some[] = {1, 100, 5000, 100000, 2 * MiB};
    for (size_t i = 0; i < sizeof some / sizeof *some; i++) {
        char *p = memalloc(opaque(some[i]));
        REQUIRE(p != NULL);
        struct memalloc_stats s0 = stats();
        CHECK(memresize(p, opaque(0)) == NULL);
        struct memalloc_stats s1 = stats();
        CHECKF(s1.frees == s0.frees + 1, "memresize(%zu-byte block, 0) did not free it", some[i]);
        CHECK(s1.in_use < s0.in_use);
    }
    /* growing and shrinking keep the prefix */
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes[i];
        size_t targets[] = {n + 1, n * 2 + 16, n / 2, 300 * KiB, 40, 2 * MiB + 7, n};
        char *p = memalloc(opaque(n));
        REQUIRE(p != NULL);
        fill(p, n, 9);
        size_t cur = n;
        for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
            size_t m = targets[t];
            errno = 777;
            char *q = memresize(p, opaque(m));
            if (m == 0) {
                CHECK(q == NULL);
                p = memalloc(0);
                REQUIRE(p != NULL);
                cur = 0;
                continue;
            }
            CHECK(errno == 777);
            CHECKF(q != NULL, "memresize(%zu -> %zu)", cur, m);
            if (!q) break;
            size_t keep = cur < m ? cur : m;
            CHECKF(first_bad(q, keep, 9) == keep, "memresize(%zu -> %zu) lost the contents", cur,
                   m);
            CHECK(aligned(q, 16) && memalloc_usable_size(q) >= m);
            fill(q, m, 9);
            p = q;
            cur = m;
        }
        memfree(p);
    }
    CHECK(memalloc_check() == 0);
    /* failure leaves the block as it was */
    static const size_t olds[] = {100, 50000, MiB};
    static const size_t huge[] = {SIZE_MAX, (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX - 8,
                                  (size_t)1 << 62};
    for (size_t i = 0; i < sizeof olds / sizeof *olds; i++) {
        char *p = memalloc(opaque(olds[i]));
        REQUIRE(p != NULL);
        fill(p, olds[i], 4);
        size_t u = memalloc_usable_size(p);
        for (size_t k = 0; k < sizeof huge / sizeof *huge; k++) {
            errno = 0;
            void *q = memresize(p, opaque(huge[k]));
            CHECKF(q == NULL && errno == ENOMEM, "memresize(%zu-byte, %#zx) = %p errno %d", olds[i],
                   huge[k], q, errno);
            if (q) p = q; /* keep the test going if it "succeeded" */
        }
        CHECK(memalloc_usable_size(p) == u);
        CHECK(first_bad(p, olds[i], 4) == olds[i]);
        memfree(p);
    }
    CHECK(memalloc_check() == 0);
}

TEST(test_memdup) {
    static unsigned char src[3 * MiB];
    fill(src, sizeof src, 21);
    static const size_t n[] = {1, 7, 16, 100, 4096, 99999, 200000, 3 * MiB};
    for (size_t i = 0; i < sizeof n / sizeof *n; i++) {
        errno = 777;
        unsigned char *d = memdup(src, opaque(n[i]));
        CHECK(errno == 777);
        CHECKF(d != NULL, "memdup(%zu)", n[i]);
        if (!d) continue;
        CHECK(d != src && aligned(d, 16) && memalloc_usable_size(d) >= n[i]);
        CHECKF(memcmp(d, src, n[i]) == 0, "memdup(%zu) copy differs", n[i]);
        /* a copy of a copy, from the heap itself */
        unsigned char *e = memdup(d, n[i]);
        CHECK(e != NULL && e != d);
        if (e) CHECK(memcmp(e, src, n[i]) == 0);
        memset(d, 0, n[i]); /* independent blocks */
        if (e) CHECK(first_bad(e, n[i], 21) == n[i]);
        memfree(d);
        memfree(e);
    }
    CHECK(first_bad(src, sizeof src, 21) == sizeof src); /* the source is untouched */
    void *z = memdup(src, 0);
    memfree(z); /* any result is fine, it must be freeable */
    errno = 0;
    void *bad = memdup(src, opaque(SIZE_MAX));
    CHECK(bad == NULL && errno == ENOMEM);
    CHECK(memalloc_check() == 0);
}

TEST(test_memoryset) {
    static const int values[] = {0, 1, 0x7f, 0x80, 0xff, -1, 0x5a, 0x1ab, -128, 0x100};
    enum { PRE = 24, MAXLEN = 200, POST = 40 };
    unsigned char *buf = memalloc(PRE + 16 + MAXLEN + POST);
    REQUIRE(buf != NULL);
    size_t wrong = 0;
    for (size_t v = 0; v < sizeof values / sizeof *values; v++) {
        int c = values[v];
        unsigned char want = (unsigned char)c;
        unsigned char guard = (unsigned char)~want;
        for (size_t start = 0; start < 16; start++) {
            for (size_t len = 0; len <= MAXLEN; len++) {
                size_t total = PRE + 16 + MAXLEN + POST;
                for (size_t i = 0; i < total; i++) buf[i] = (unsigned char)(guard ^ (i & 1));
                unsigned char *p = buf + PRE + start;
                void *r = memoryset(p, c, len);
                int ok = r == p;
                for (size_t i = 0; i < total; i++) {
                    unsigned char expect = (unsigned char)(guard ^ (i & 1));
                    if (i >= PRE + start && i < PRE + start + len) expect = want;
                    ok &= buf[i] == expect;
                }
                if (!ok) {
                    wrong++;
                    CHECKF(ok, "memoryset(base+%zu, %#x, %zu) wrong", start, (unsigned)c, len);
                }
            }
        }
    }
    CHECK(wrong == 0);
    memfree(buf);

    /* long runs, at odd offsets, in a mapped block */
    size_t big = 2 * MiB + 64;
    unsigned char *m = memalloc(big);
    REQUIRE(m != NULL);
    static const size_t offs[] = {0, 1, 3, 7, 8, 9, 15};
    static const size_t lens[] = {255, 1000, 4096, 4099, 65537, MiB + 3};
    for (size_t o = 0; o < sizeof offs / sizeof *offs; o++) {
        for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
            memset(m, 0x11, big);
            CHECK(memoryset(m + 16 + offs[o], 0xEE, lens[l]) == m + 16 + offs[o]);
            size_t s = 16 + offs[o], e = s + lens[l], bad = big;
            for (size_t i = 0; i < big && bad == big; i++)
                if (m[i] != ((i >= s && i < e) ? 0xEE : 0x11)) bad = i;
            CHECKF(bad == big, "memoryset(+%zu, 0xEE, %zu): byte %zu wrong", s, lens[l], bad);
        }
    }
    memfree(m);
    CHECK(memalloc_check() == 0);
}

TEST(test_memalloc_aligned) {
    for (size_t a = 1; a <= 16 * MiB; a <<= 1) {
        size_t want = a < 16 ? 16 : a;
        size_t ns[] = {0, 1, 100, 4000, a, a + 16};
        void *v[sizeof ns / sizeof *ns];
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            errno = 777;
            char *p = memalloc_aligned(opaque(a), opaque(ns[i]));
            v[i] = p;
            CHECK(errno == 777);
            CHECKF(p && aligned(p, want), "memalloc_aligned(%zu, %zu) = %p", a, ns[i], (void *)p);
            if (!p) continue;
            CHECK(memalloc_usable_size(p) >= ns[i]);
            fill(p, ns[i], (unsigned)(a + i));
        }
        CHECK(memalloc_check() == 0);
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
            if (!v[i]) continue;
            CHECK(first_bad(v[i], ns[i], (unsigned)(a + i)) == ns[i]);
            /* aligned blocks resize like any other */
            if (i == 2) {
                char *q = memresize(v[i], 5000);
                CHECK(q != NULL);
                if (q) {
                    CHECK(first_bad(q, ns[i], (unsigned)(a + i)) == ns[i]);
                    v[i] = q;
                }
            }
            memfree(v[i]);
        }
    }
    /* not a power of two */
    static const size_t bad[] = {0, 3, 5, 6, 12, 24, 48, 100, 4095, MiB + 16, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errno = 0;
        void *p = memalloc_aligned(opaque(bad[i]), 64);
        CHECKF(p == NULL && errno == EINVAL, "memalloc_aligned(%zu, 64) = %p errno %d", bad[i], p,
               errno);
    }
    /* too large: the size, or an alignment no address can have */
    static const size_t big[][2] = {
        {64, SIZE_MAX},
        {4096, (size_t)PTRDIFF_MAX + 1},
        {16, (size_t)PTRDIFF_MAX},
        {MiB, SIZE_MAX - MiB},
        {(size_t)1 << 63, 1},
        {(size_t)1 << 62, 1},
        {(size_t)1 << 62, (size_t)1 << 62},
    };
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        errno = 0;
        void *p = memalloc_aligned(opaque(big[i][0]), opaque(big[i][1]));
        CHECKF(p == NULL && errno == ENOMEM, "memalloc_aligned(%#zx, %#zx) = %p errno %d",
               big[i][0], big[i][1], p, errno);
    }
    CHECK(memalloc_check() == 0);
}

TEST(test_usable_size) {
    CHECK(memalloc_usable_size(NULL) == 0);
    char *v[NSIZES];
    size_t u[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        v[i] = memalloc(opaque(sizes[i]));
        REQUIRE(v[i] != NULL);
        u[i] = memalloc_usable_size(v[i]);
        CHECK(u[i] >= sizes[i]);
        fill(v[i], u[i], (unsigned)i); /* every usable byte is ours */
    }
    CHECK(memalloc_check() == 0);
    /* churn around the blocks */
    for (int r = 0; r < 500; r++) {
        void *t = memalloc((size_t)(r * 37 % 3000));
        void *t2 = memalloc((size_t)r * 1000);
        memfree(t);
        memfree(t2);
    }
    for (size_t i = 0; i < NSIZES; i++) {
        CHECKF(memalloc_usable_size(v[i]) == u[i], "usable size of a %zu-byte block changed",
               sizes[i]);
        CHECKF(first_bad(v[i], u[i], (unsigned)i) == u[i], "size %zu", sizes[i]);
        memfree(v[i]);
    }
    CHECK(memalloc_check() == 0);
}

TEST(test_trim) {
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == DEFAULT_MMAP_THRESHOLD);
    /* free 64 KiB holes between live blocks: whole free pages inside the heap */
    enum { N = 64 };
    char *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = memalloc(64 * KiB);
        REQUIRE(v[i] != NULL);
        memset(v[i], 0x5c, 64 * KiB);
    }
    for (int i = 0; i < N; i += 2) memfree(v[i]);
    errno = 777;
    int r = memalloc_trim(0);
    CHECK(errno == 777);
    CHECKF(r == 1, "memalloc_trim(0) with %d free 64 KiB blocks returned %d", N / 2, r);
    /* at once again: nothing is left to give back */
    r = memalloc_trim(0);
    CHECKF(r == 0, "memalloc_trim(0) right after a trim returned %d", r);
    CHECK(memalloc_check() == 0);
    /* the live blocks are intact, and the released memory is usable again */
    for (int i = 1; i < N; i += 2) {
        size_t bad = 64 * KiB;
        for (size_t k = 0; k < 64 * KiB && bad == 64 * KiB; k++)
            if ((unsigned char)v[i][k] != 0x5c) bad = k;
        CHECKF(bad == 64 * KiB, "block %d damaged at %zu by trim", i, bad);
    }
    for (int i = 0; i < N; i += 2) {
        v[i] = defalloc(1, 64 * KiB);
        REQUIRE(v[i] != NULL);
        CHECK(first_nonzero(v[i], 64 * KiB) == 64 * KiB);
    }
    /* the blocks written and freed are dirty free memory: a trim that
     * keeps 1 MiB at each heap top still gives some back; a second, none */
    for (int i = 0; i < N; i++) memfree(v[i]);
    r = memalloc_trim(opaque(1 * MiB));
    CHECKF(r == 1, "memalloc_trim(1 MiB) after freeing %d written 64 KiB blocks returned %d", N, r);
    r = memalloc_trim(opaque(1 * MiB));
    CHECKF(r == 0, "memalloc_trim(1 MiB) right after a trim returned %d", r);
    CHECK(memalloc_check() == 0);
}

TEST(test_stats) {
    struct memalloc_stats s0 = stats();
    CHECK(s0.peak_in_use >= s0.in_use);
    CHECK(s0.peak_mmapped_blocks >= s0.mmapped_blocks);
    CHECK(s0.peak_mmapped_bytes >= s0.mmapped_bytes);
    CHECK(s0.allocs >= s0.frees);

    /* ten small blocks */
    enum { N = 10 };
    void *v[N];
    size_t req = 0, usable = 0;
    for (int i = 0; i < N; i++) {
        size_t n = 100 + (size_t)i * 50;
        v[i] = memalloc(n);
        REQUIRE(v[i] != NULL);
        req += n;
        usable += memalloc_usable_size(v[i]);
    }
    struct memalloc_stats s1 = stats();
    CHECKF(s1.allocs == s0.allocs + N, "allocs %llu -> %llu", (unsigned long long)s0.allocs,
           (unsigned long long)s1.allocs);
    CHECK(s1.frees == s0.frees);
    CHECKF(s1.in_use >= s0.in_use + req, "in_use %zu -> %zu for %zu bytes", s0.in_use, s1.in_use,
           req);
    CHECKF(s1.in_use == s0.in_use + usable, "in_use %zu -> %zu, usable sizes %zu", s0.in_use,
           s1.in_use, usable);
    CHECK(s1.peak_in_use >= s1.in_use);
    CHECK(s1.heap_in_use >= s0.heap_in_use + req);
    CHECK(s1.regions >= 1);
    CHECK(s1.heap_mapped >= s1.heap_in_use);
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks);
    for (int i = 0; i < N; i++) memfree(v[i]);
    struct memalloc_stats s2 = stats();
    CHECK(s2.frees == s0.frees + N);
    CHECK(s2.allocs == s1.allocs);
    CHECK(s2.in_use == s0.in_use);
    CHECK(s2.peak_in_use >= s1.in_use);

    /* 40 MiB: above the threshold, even as freed blocks raise it (to 32 MiB
     * at most): a mapping of its own */
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == DEFAULT_MMAP_THRESHOLD);
    char *big = memalloc(40 * MiB);
    REQUIRE(big != NULL);
    struct memalloc_stats s3 = stats();
    CHECK(s3.mmapped_blocks == s2.mmapped_blocks + 1);
    CHECK(s3.mmapped_bytes >= s2.mmapped_bytes + 40 * MiB);
    CHECK(s3.total_mmapped_blocks == s2.total_mmapped_blocks + 1);
    CHECK(s3.peak_mmapped_blocks >= s3.mmapped_blocks);
    CHECK(s3.peak_mmapped_bytes >= s3.mmapped_bytes);
    CHECK(s3.in_use >= s2.in_use + 40 * MiB);
    CHECK(s3.allocs == s2.allocs + 1);
    memfree(big);
    struct memalloc_stats s4 = stats();
    CHECK(s4.mmapped_blocks == s2.mmapped_blocks);
    CHECK(s4.mmapped_bytes == s2.mmapped_bytes);
    CHECK(s4.total_mmapped_blocks == s3.total_mmapped_blocks);
    CHECK(s4.in_use == s2.in_use);
    CHECK(s4.frees == s2.frees + 1);

    /* defalloc and memalloc_aligned count as allocations too */
    void *d = defalloc(10, 10), *a = memalloc_aligned(256, 100);
    REQUIRE(d && a);
    struct memalloc_stats s5 = stats();
    CHECK(s5.allocs == s4.allocs + 2);
    memfree(d);
    memfree(a);
    CHECK(stats().frees == s5.frees + 2);
    CHECK(memalloc_check() == 0);
}

TEST(test_options) {
    if (!getenv("MEMALLOC_MMAP_THRESHOLD"))
        CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == DEFAULT_MMAP_THRESHOLD);
    if (!getenv("MEMALLOC_TRIM_THRESHOLD"))
        CHECK(memalloc_get_option(MEMALLOC_OPT_TRIM_THRESHOLD) == 128 * KiB);
    if (!getenv("MEMALLOC_STATS")) CHECK(memalloc_get_option(MEMALLOC_OPT_STATS) == 0);

    /* a 1 MiB threshold: 512 KiB comes from the heap */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, MiB) == 0);
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == MiB);
    struct memalloc_stats s0 = stats();
    char *p = memalloc(512 * KiB);
    REQUIRE(p != NULL);
    memset(p, 1, 512 * KiB);
    struct memalloc_stats s1 = stats();
    CHECK(s1.mmapped_blocks == s0.mmapped_blocks);
    CHECK(s1.total_mmapped_blocks == s0.total_mmapped_blocks);
    CHECK(s1.heap_in_use >= s0.heap_in_use + 512 * KiB);
    char *q = memalloc(MiB); /* at the threshold: mapped */
    REQUIRE(q != NULL);
    CHECK(stats().mmapped_blocks == s0.mmapped_blocks + 1);
    memfree(p);
    memfree(q);
    CHECK(memalloc_check() == 0);

    /* at glibc's 128 KiB: 512 KiB is mapped again */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 * KiB) == 0);
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == 128 * KiB);
    struct memalloc_stats s2 = stats();
    p = memalloc(512 * KiB);
    REQUIRE(p != NULL);
    CHECK(stats().mmapped_blocks == s2.mmapped_blocks + 1);
    memfree(p);
    CHECK(stats().mmapped_blocks == s2.mmapped_blocks);

    /* unknown options and bad values: EINVAL, nothing changes */
    CHECK(memalloc_set_option((enum memalloc_option)0, 1) == EINVAL);
    CHECK(memalloc_set_option((enum memalloc_option)99, 1) == EINVAL);
    CHECK(memalloc_set_option((enum memalloc_option) - 1, 1) == EINVAL);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 64 * MiB) == EINVAL);
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, SIZE_MAX) == EINVAL);
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == 128 * KiB);
    CHECK(memalloc_set_option(MEMALLOC_OPT_STATS, SIZE_MAX) == EINVAL);
    CHECK(memalloc_get_option(MEMALLOC_OPT_STATS) == 0);
    /* the other options take values */
    CHECK(memalloc_set_option(MEMALLOC_OPT_TRIM_THRESHOLD, 256 * KiB) == 0);
    CHECK(memalloc_get_option(MEMALLOC_OPT_TRIM_THRESHOLD) == 256 * KiB);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TRIM_THRESHOLD, 128 * KiB) == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_STATS, 1) == 0);
    CHECK(memalloc_get_option(MEMALLOC_OPT_STATS) == 1);
    CHECK(memalloc_set_option(MEMALLOC_OPT_STATS, 0) == 0);
    CHECK(memalloc_get_option(MEMALLOC_OPT_STATS) == 0);
}

/* The summary line: its fields named and in order, with the figures that
 * memalloc_get_stats gives at the same moment. */
TEST(test_print_stats) {
    char *small = memalloc(100), *big = memalloc(2 * MiB);
    REQUIRE(small && big);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    struct memalloc_stats s = stats(); /* nothing allocates from here to the print */
    memalloc_print_stats(fds[1]);
    close(fds[1]);
    char buf[4096];
    ssize_t total = 0, r;
    while ((r = read(fds[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0) total += r;
    close(fds[0]);
    buf[total > 0 ? total : 0] = 0;
    char want[1024];
    snprintf(want, sizeof want,
             "memalloc: allocs=%llu frees=%llu in_use=%zu peak_in_use=%zu regions=%zu "
             "heap_in_use=%zu heap_free=%zu mmapped_blocks=%zu peak_mmapped_blocks=%zu "
             "total_mmapped_blocks=%llu thread_cached=%zu arena_cached=%zu arenas=%zu\n",
             (unsigned long long)s.allocs, (unsigned long long)s.frees, s.in_use, s.peak_in_use,
             s.regions, s.heap_in_use, s.heap_free, s.mmapped_blocks, s.peak_mmapped_blocks,
             (unsigned long long)s.total_mmapped_blocks, s.thread_cached, s.arena_cached, s.arenas);
    CHECKF(strcmp(buf, want) == 0, "memalloc_print_stats wrote:\n%s    expected:\n%s", buf, want);
    /* the figures count what this test holds */
    CHECK(s.allocs >= s.frees + 2);
    CHECK(s.in_use >= 2 * MiB + 100);
    CHECK(s.mmapped_blocks >= 1 && s.regions >= 1 && s.arenas >= 1);
    memfree(small);
    memfree(big);
}

int main(void) {
    RUN(test_memalloc);
    RUN(test_defalloc);
    RUN(test_memresize);
    RUN(test_memdup);
    RUN(test_memoryset);
    RUN(test_memalloc_aligned);
    RUN(test_usable_size);
    RUN(test_trim);
    RUN(test_stats);
    RUN(test_options);
    RUN(test_print_stats);
    CHECK(memalloc_check() == 0);
    return harness_finish();
}
