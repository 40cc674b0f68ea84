/*
 * contract_libc.c: glibc 2.36's contract for the libc allocation names.
 *
 * Linked with memalloc's shim, so malloc, free and the rest in this process
 * are memalloc's; built against plain glibc it must pass too (that is how
 * the expectations here were checked). Everything tested is behaviour a
 * program may rely on with glibc: zero-size requests, ENOMEM for requests
 * above PTRDIFF_MAX and for overflowing products, the alignment rules, usable
 * sizes, errno preservation, mallopt/mallinfo/malloc_stats, zeroed calloc
 * memory, content preservation by realloc, and malloc after fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* Hide a constant from the compiler (no folding, no -Walloc-size warnings). */
static size_t opaque(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

/* The same for a pointer: gcc cannot tell a failed realloc kept the block. */
static void *hide(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static size_t rnd_below(size_t n) {
    return n ? (size_t)(rnd() % n) : 0;
}

static int set_mmap_threshold(size_t bytes) {
    return mallopt(M_MMAP_THRESHOLD, (int)bytes);
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}
/* 1 if the n pointers are pairwise distinct (sorts them). */
static int all_distinct(void **v, size_t n) {
    qsort(v, n, sizeof *v, cmp_ptr);
    for (size_t i = 1; i < n; i++)
        if (v[i] == v[i - 1]) return 0;
    return 1;
}

/* ---- size 0 and NULL ---- */

#define NZERO 64
TEST(test_zero_size_requests) {
    void *v[4 * NZERO];
    size_t n = 0;
    for (int i = 0; i < NZERO; i++) {
        v[n++] = malloc(opaque(0));
        v[n++] = calloc(opaque(0), opaque(16));
        v[n++] = calloc(opaque(16), opaque(0));
        v[n++] = realloc(NULL, opaque(0));
    }
    size_t nulls = 0, misaligned = 0;
    for (size_t i = 0; i < n; i++) {
        nulls += v[i] == NULL;
        misaligned += !aligned(v[i], 16);
    }
    CHECKF(nulls == 0, "%zu of %zu zero-size requests returned NULL", nulls, n);
    CHECK(misaligned == 0);
    void *sorted[4 * NZERO];
    memcpy(sorted, v, sizeof v);
    CHECK(all_distinct(sorted, n));
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(NULL); /* no-op */
}

TEST(test_realloc_to_zero_frees) {
    CHECK(set_mmap_threshold(128 * KiB) == 1);
    /* A mapped block: realloc(p, 0) must unmap it. */
    struct mallinfo2 m0 = mallinfo2();
    char *p = malloc(opaque(4 * MiB));
    REQUIRE(p != NULL);
    p[0] = 1;
    struct mallinfo2 m1 = mallinfo2();
    CHECK(m1.hblks == m0.hblks + 1);
    CHECK(realloc(p, opaque(0)) == NULL);
    struct mallinfo2 m2 = mallinfo2();
    CHECK(m2.hblks == m0.hblks);
    CHECK(m2.hblkhd == m0.hblkhd);

    /* Heap blocks: the bytes in use drop back. */
    enum { N = 1000, SZ = 1000 };
    static void *v[N];
    struct mallinfo2 a = mallinfo2();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(opaque(SZ));
        REQUIRE(v[i] != NULL);
        memset(v[i], 0x11, SZ);
    }
    struct mallinfo2 b = mallinfo2();
    CHECKF(b.uordblks >= a.uordblks + (size_t)N * SZ, "uordblks %zu -> %zu", a.uordblks,
           b.uordblks);
    for (int i = 0; i < N; i++) CHECK(realloc(v[i], opaque(0)) == NULL);
    struct mallinfo2 c = mallinfo2();
    CHECKF(c.uordblks + (size_t)N * SZ * 9 / 10 <= b.uordblks, "uordblks %zu -> %zu -> %zu",
           a.uordblks, b.uordblks, c.uordblks);
}

TEST(test_realloc_null_is_malloc) {
    static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4096, 70000, 300 * KiB, 3 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        errno = 0;
        char *p = realloc(NULL, opaque(n));
        CHECKF(p != NULL, "realloc(NULL, %zu)", n);
        if (!p) continue;
        CHECK(errno == 0);
        CHECK(aligned(p, 16));
        CHECK(malloc_usable_size(p) >= n);
        fill(p, n, (unsigned)i);
        CHECK(first_bad(p, n, (unsigned)i) == n);
        free(p);
    }
}

/* ---- impossible requests: NULL with ENOMEM everywhere ---- */

static const size_t huge_sizes[] = {
    SIZE_MAX,
    SIZE_MAX - 8,
    SIZE_MAX - 4096,
    (size_t)PTRDIFF_MAX + 1,
    (size_t)PTRDIFF_MAX,
    (size_t)PTRDIFF_MAX - 8,
    (size_t)PTRDIFF_MAX - 4096,
    (size_t)PTRDIFF_MAX / 2 + 4096,
};
#define NHUGE (sizeof huge_sizes / sizeof *huge_sizes)

#define CHECK_NOMEM(call, sz)                                                                      \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *r_ = (call);                                                                         \
        int e_ = errno;                                                                            \
        CHECKF(r_ == NULL && e_ == ENOMEM, "%s with size %#zx: %p, errno %d", #call, (size_t)(sz), \
               r_, e_);                                                                            \
        if (r_) free(r_);                                                                          \
    } while (0)

/* For realloc and reallocarray of a live block var (len bytes filled with seed): should the
 * call wrongly succeed (or act as realloc(var, 0)), var is gone; replace it so that the test
 * can go on. */
#define CHECK_NOMEM_KEEP(var, call, sz, len, seed)                                                 \
    do {                                                                                           \
        errno = 0;                                                                                 \
        void *r_ = (call);                                                                         \
        int e_ = errno;                                                                            \
        CHECKF(r_ == NULL && e_ == ENOMEM, "%s with size %#zx: %p, errno %d", #call, (size_t)(sz), \
               r_, e_);                                                                            \
        if (r_ || e_ != ENOMEM) {                                                                  \
            free(r_); /* NULL if it was freed */                                                   \
            var = malloc(len);                                                                     \
            if (!var) abort();                                                                     \
            fill(var, len, seed);                                                                  \
        }                                                                                          \
    } while (0)

TEST(test_huge_requests_fail_with_enomem) {
    enum { OLD = 200 };
    char *old = malloc(opaque(OLD));
    REQUIRE(old != NULL);
    fill(old, OLD, 7);
    size_t old_usable = malloc_usable_size(old);
    char *big = malloc(opaque(2 * MiB)); /* a mapped block must survive too */
    REQUIRE(big != NULL);
    fill(big, 2 * MiB, 9);
    long page = sysconf(_SC_PAGESIZE);

    for (size_t i = 0; i < NHUGE; i++) {
        size_t s = opaque(huge_sizes[i]);
        CHECK_NOMEM(malloc(s), s);
        CHECK_NOMEM(calloc(1, s), s);
        CHECK_NOMEM(calloc(s, 1), s);
        CHECK_NOMEM(realloc(NULL, s), s);
        CHECK_NOMEM_KEEP(old, realloc(hide(old), s), s, OLD, 7);
        CHECK_NOMEM_KEEP(big, realloc(hide(big), s), s, 2 * MiB, 9);
        CHECK_NOMEM(reallocarray(NULL, 1, s), s);
        CHECK_NOMEM_KEEP(old, reallocarray(hide(old), s, 1), s, OLD, 7);
        CHECK_NOMEM_KEEP(big, reallocarray(hide(big), 1, s), s, 2 * MiB, 9);
        CHECK_NOMEM(aligned_alloc(16, s), s);
        CHECK_NOMEM(aligned_alloc(64, s), s);
        CHECK_NOMEM(aligned_alloc(4096, s), s);
        CHECK_NOMEM(memalign(8, s), s);
        CHECK_NOMEM(memalign(64, s), s);
        CHECK_NOMEM(memalign(MiB, s), s);
        CHECK_NOMEM(valloc(s), s);
        CHECK_NOMEM(pvalloc(s), s);
        static const size_t aligns[] = {8, 16, 64, 4096, 1 << 20};
        for (size_t k = 0; k < sizeof aligns / sizeof *aligns; k++) {
            void *sentinel = (void *)(uintptr_t)0x5e47;
            void *mp = sentinel;
            int rc = posix_memalign(&mp, aligns[k], s);
            CHECKF(rc == ENOMEM, "posix_memalign(%zu, %#zx) returned %d", aligns[k], s, rc);
            CHECK(mp == sentinel);
            if (rc == 0) free(mp);
        }
        /* the old blocks are intact */
        CHECK(malloc_usable_size(old) == old_usable);
        CHECK(first_bad(old, OLD, 7) == OLD);
    }
    CHECK(first_bad(big, 2 * MiB, 9) == 2 * MiB);

    /* alignments that cannot be honoured in the address space */
    size_t top = opaque(SIZE_MAX / 2 + 1);
    CHECK_NOMEM(memalign(top, 1), top);
    CHECK_NOMEM(aligned_alloc(top, 1), top);
    void *mp = &mp;
    CHECK(posix_memalign(&mp, top, 1) == ENOMEM);
    CHECK(mp == &mp);
    /* pvalloc's rounding to whole pages must not wrap around */
    size_t wrap = opaque(SIZE_MAX - (size_t)page + 2);
    CHECK_NOMEM(pvalloc(wrap), wrap);

    /* the blocks still work */
    char *grown = realloc(old, opaque(5000));
    REQUIRE(grown != NULL);
    CHECK(first_bad(grown, OLD, 7) == OLD);
    free(grown);
    free(big);
}

TEST(test_overflowing_products_fail_with_enomem) {
    static const size_t pairs[][2] = {
        {SIZE_MAX / 2 + 2, 2},
        {2, SIZE_MAX / 2 + 2},
        {(size_t)1 << 33, (size_t)1 << 33},
        {SIZE_MAX, SIZE_MAX},
        {SIZE_MAX, 2},
        {(size_t)1 << 32, (size_t)1 << 32},
        {(size_t)PTRDIFF_MAX / 2 + 1, 2}, /* exactly PTRDIFF_MAX + 1: no wrap, too big */
        {65537, (size_t)1 << 48},
        {3, SIZE_MAX / 3 + 1},
    };
    enum { OLD = 300 };
    char *old = malloc(opaque(OLD));
    REQUIRE(old != NULL);
    fill(old, OLD, 3);
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        size_t n = opaque(pairs[i][0]), sz = opaque(pairs[i][1]);
        CHECK_NOMEM(calloc(n, sz), i);
        CHECK_NOMEM(reallocarray(NULL, n, sz), i);
        CHECK_NOMEM_KEEP(old, reallocarray(hide(old), n, sz), i, OLD, 3);
        CHECK(first_bad(old, OLD, 3) == OLD);
    }
    /* a product that fits works, and keeps the contents */
    errno = 0;
    char *p = reallocarray(old, opaque(10), opaque(100));
    CHECK(errno == 0);
    REQUIRE(p != NULL);
    CHECK(malloc_usable_size(p) >= 1000);
    CHECK(first_bad(p, OLD, 3) == OLD);
    free(p);
}

/* ---- alignment rules ---- */

TEST(test_posix_memalign_einval) {
    static const size_t bad[] = {0, 1, 2, 3, 4, 5, 12, 24, 48, 96, 4095, 4097, MiB + 8, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        for (size_t s = 0; s <= 100; s += 100) {
            void *sentinel = (void *)(uintptr_t)0xdead0;
            void *p = sentinel;
            int rc = posix_memalign(&p, opaque(bad[i]), s);
            CHECKF(rc == EINVAL, "posix_memalign(%zu, %zu) returned %d", bad[i], s, rc);
            CHECK(p == sentinel);
            if (rc == 0) free(p);
        }
    }
}

TEST(test_posix_memalign_ok) {
    for (size_t a = 8; a <= 16 * MiB; a <<= 1) {
        size_t sizes[] = {0, 1, 24, 100, 1000, 5000, a - 8, a, a + 100};
        void *v[sizeof sizes / sizeof *sizes];
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            void *sentinel = (void *)(uintptr_t)0xbeef0;
            void *p = sentinel;
            int saved = errno = 4321;
            int rc = posix_memalign(&p, a, n);
            CHECKF(rc == 0, "posix_memalign(%zu, %zu) returned %d", a, n, rc);
            CHECK(errno == saved);
            v[i] = rc == 0 ? p : NULL;
            if (rc) continue;
            CHECKF(p != sentinel && aligned(p, a) && aligned(p, 16), "align %zu: %p", a, p);
            CHECK(malloc_usable_size(p) >= n);
            fill(p, n, (unsigned)(a + i));
        }
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            if (!v[i]) continue;
            CHECKF(first_bad(v[i], sizes[i], (unsigned)(a + i)) == sizes[i], "align %zu size %zu",
                   a, sizes[i]);
            free(v[i]);
        }
    }
}

TEST(test_memalign_and_aligned_alloc_any_power_of_two) {
    for (size_t a = 1; a <= 4 * MiB; a <<= 1) {
        size_t sizes[] = {0, 1, 7, 100, 3000, a, a + 1};
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            size_t want = a < 16 ? 16 : a;
            errno = 0;
            char *p = memalign(opaque(a), n);
            char *q = aligned_alloc(opaque(a), n);
            CHECK(errno == 0);
            CHECKF(p && aligned(p, want), "memalign(%zu, %zu) = %p", a, n, (void *)p);
            CHECKF(q && aligned(q, want), "aligned_alloc(%zu, %zu) = %p", a, n, (void *)q);
            if (p) {
                CHECK(malloc_usable_size(p) >= n);
                fill(p, n, 1);
            }
            if (q) {
                CHECK(malloc_usable_size(q) >= n);
                fill(q, n, 2);
            }
            if (p) CHECK(first_bad(p, n, 1) == n);
            if (q) CHECK(first_bad(q, n, 2) == n);
            free(p);
            free(q);
        }
    }
    /* glibc 2.36 rounds an alignment that is not a power of two up */
    for (size_t a = 3; a <= 5000; a = a * 3 + 1) {
        errno = 0;
        char *p = memalign(opaque(a), 100), *q = aligned_alloc(opaque(a), 100);
        size_t want = 16;
        while (want < a) want <<= 1;
        CHECKF(p && aligned(p, want), "memalign(%zu, 100) = %p", a, (void *)p);
        CHECKF(q && aligned(q, want), "aligned_alloc(%zu, 100) = %p", a, (void *)q);
        CHECK(errno == 0);
        free(p);
        free(q);
    }
}

TEST(test_valloc_pvalloc) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 20000, 200000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        errno = 0;
        char *p = valloc(opaque(n));
        CHECKF(p && aligned(p, page), "valloc(%zu) = %p", n, (void *)p);
        if (p) {
            CHECK(malloc_usable_size(p) >= n);
            fill(p, n, 5);
            CHECK(first_bad(p, n, 5) == n);
        }
        char *q = pvalloc(opaque(n));
        CHECKF(q && aligned(q, page), "pvalloc(%zu) = %p", n, (void *)q);
        if (q && n) {
            size_t whole = (n + page - 1) / page * page;
            size_t u = malloc_usable_size(q);
            CHECKF(u >= whole, "pvalloc(%zu): usable %zu", n, u);
            if (u < whole) whole = n; /* do not write past the block */
            fill(q, whole, 6);
            CHECK(first_bad(q, whole, 6) == whole);
        }
        CHECK(errno == 0);
        free(p);
        free(q);
    }
    char *one = pvalloc(opaque(1));
    REQUIRE(one != NULL);
    CHECK(malloc_usable_size(one) >= page);
    memset(one, 0x77, page <= malloc_usable_size(one) ? page : 1);
    free(one);
}

/* Every pointer from every entry point, many sizes: 16-byte aligned. */
static size_t random_size(void) {
    unsigned r = (unsigned)rnd_below(100);
    if (r < 70) return rnd_below(1025);
    if (r < 95) return rnd_below(256 * KiB + 1);
    return rnd_below(4 * MiB + 1);
}

TEST(test_every_entry_point_16_aligned) {
    enum { SLOTS = 32, ITERS = 4000 };
    void *slot[SLOTS] = {0};
    size_t bad = 0, nulls = 0;
    for (int it = 0; it < ITERS; it++) {
        size_t n = random_size();
        int k = (int)rnd_below(SLOTS);
        void *p = NULL;
        switch (rnd_below(10)) {
        case 0:
            p = malloc(n);
            break;
        case 1:
            p = calloc(1, n);
            break;
        case 2:
            p = calloc(n / 8 + 1, 8);
            break;
        case 3: /* realloc moves or resizes the slot's block */
            p = slot[k] ? realloc(slot[k], n + 1) : realloc(NULL, n);
            if (slot[k] && p) slot[k] = NULL; /* consumed */
            break;
        case 4:
            p = reallocarray(NULL, n, 1);
            break;
        case 5:
            p = memalign((size_t)1 << rnd_below(5), n); /* 1..16 */
            break;
        case 6:
            p = aligned_alloc((size_t)1 << rnd_below(5), n);
            break;
        case 7: {
            void *q = NULL;
            if (posix_memalign(&q, 8, n) == 0) p = q;
            break;
        }
        case 8:
            p = valloc(n);
            break;
        default:
            p = pvalloc(n);
            break;
        }
        if (!p) {
            nulls++;
            continue;
        }
        bad += !aligned(p, 16);
        if (n) {
            ((char *)p)[0] = 1;
            ((char *)p)[n - 1] = 2;
        }
        free(slot[k]);
        slot[k] = p;
    }
    CHECKF(nulls == 0, "%zu allocations failed", nulls);
    CHECKF(bad == 0, "%zu pointers not 16-byte aligned", bad);
    for (int k = 0; k < SLOTS; k++) free(slot[k]);
}

/* ---- malloc_usable_size and realloc ---- */

TEST(test_usable_size) {
    CHECK(malloc_usable_size(NULL) == 0);
    static const size_t sizes[] = {0,      1,      8,      15,      16,      24,
                                   25,     100,    1000,   4000,    8000,    65535,
                                   131071, 131072, 200000, 1 << 20, 3 << 20, 4 << 20};
    enum { N = sizeof sizes / sizeof *sizes };
    char *v[N];
    size_t u[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = malloc(opaque(sizes[i]));
        CHECK(v[i] != NULL);
        u[i] = malloc_usable_size(v[i]);
        CHECKF(u[i] >= sizes[i], "malloc(%zu): usable %zu", sizes[i], u[i]);
        fill(v[i], u[i], (unsigned)i); /* the whole usable size is ours */
    }
    /* other traffic in between must not change anyone's usable size */
    for (int r = 0; r < 200; r++) free(malloc(random_size()));
    for (size_t i = 0; i < N; i++) {
        CHECK(malloc_usable_size(v[i]) == u[i]);
        CHECK(malloc_usable_size(v[i]) == u[i]);
        CHECKF(first_bad(v[i], u[i], (unsigned)i) == u[i], "size %zu", sizes[i]);
    }
    /* realloc, bigger and smaller, keeps min(old usable, new size) bytes */
    for (size_t i = 0; i < N; i++) {
        size_t targets[] = {sizes[i] * 2 + 100, sizes[i] / 2 + 1, 1, 5 * MiB, 70000, 33};
        char *p = v[i];
        size_t used = u[i];
        unsigned seed = (unsigned)i;
        for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) {
            size_t n = targets[t];
            char *q = realloc(p, opaque(n));
            CHECKF(q != NULL, "realloc(%zu -> %zu)", used, n);
            if (!q) break;
            size_t keep = used < n ? used : n;
            CHECKF(first_bad(q, keep, seed) == keep, "realloc of usable %zu to %zu", used, n);
            size_t nu = malloc_usable_size(q);
            CHECK(nu >= n);
            seed += 13;
            fill(q, nu, seed);
            p = q;
            used = nu;
        }
        free(p);
    }
}

TEST(test_realloc_growth_preserves_content) {
    CHECK(set_mmap_threshold(128 * KiB) == 1);
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 1;
        char *p = malloc(opaque(n));
        REQUIRE(p != NULL);
        fill(p, n, 11);
        void *blockers[32] = {0};
        int nb = 0;
        for (; n < 8 * MiB; n *= 2) { /* 1 -> 8 MiB */
            char *q = realloc(p, n * 2);
            CHECKF(q != NULL, "realloc(%zu -> %zu)", n, n * 2);
            if (!q) break;
            CHECKF(first_bad(q, n, 11) == n, "grow %zu -> %zu", n, n * 2);
            fill(q, n * 2, 11); /* same pattern: extend it */
            p = q;
            /* on the second pass, pin the block so that it must move */
            if (pass && nb < 32) blockers[nb++] = malloc(n < 64 * KiB ? n : 64);
        }
        for (; n > 1; n /= 2) { /* and back */
            char *q = realloc(p, n / 2);
            CHECKF(q != NULL, "realloc(%zu -> %zu)", n, n / 2);
            if (!q) break;
            CHECKF(first_bad(q, n / 2, 11) == n / 2, "shrink %zu -> %zu", n, n / 2);
            p = q;
        }
        free(p);
        for (int i = 0; i < nb; i++) free(blockers[i]);
    }
}

/* ---- errno ---- */

#define ERRNO_KEPT(what)                                                                           \
    CHECKF(errno == 12345, "errno %d after %s", errno, what);                                      \
    errno = 12345

TEST(test_success_keeps_errno) {
    errno = 12345;
    void *s = malloc(opaque(100));
    ERRNO_KEPT("malloc small");
    void *l = malloc(opaque(MiB));
    ERRNO_KEPT("malloc 1 MiB");
    void *h = malloc(opaque(64 * MiB));
    ERRNO_KEPT("malloc 64 MiB");
    REQUIRE(s && l && h);
    free(s);
    ERRNO_KEPT("free small");
    free(l);
    ERRNO_KEPT("free 1 MiB");
    free(h);
    ERRNO_KEPT("free 64 MiB");
    free(NULL);
    ERRNO_KEPT("free NULL");
    void *c = calloc(opaque(10), opaque(10));
    ERRNO_KEPT("calloc small");
    void *cl = calloc(opaque(1), opaque(2 * MiB));
    ERRNO_KEPT("calloc 2 MiB");
    c = realloc(c, opaque(10000));
    ERRNO_KEPT("realloc grow");
    c = realloc(c, opaque(50));
    ERRNO_KEPT("realloc shrink");
    cl = realloc(cl, opaque(6 * MiB));
    ERRNO_KEPT("realloc mapped grow");
    cl = realloc(cl, opaque(300 * KiB));
    ERRNO_KEPT("realloc mapped shrink");
    c = reallocarray(c, opaque(20), opaque(20));
    ERRNO_KEPT("reallocarray");
    REQUIRE(c && cl);
    void *pm = NULL;
    CHECK(posix_memalign(&pm, 256, 1000) == 0);
    ERRNO_KEPT("posix_memalign");
    void *pm2 = NULL;
    CHECK(posix_memalign(&pm2, 2 * MiB, 1000) == 0);
    ERRNO_KEPT("posix_memalign 2 MiB alignment");
    void *ma = memalign(opaque(64), opaque(100));
    ERRNO_KEPT("memalign");
    void *aa = aligned_alloc(opaque(128), opaque(100));
    ERRNO_KEPT("aligned_alloc");
    void *va = valloc(opaque(100));
    ERRNO_KEPT("valloc");
    void *pv = pvalloc(opaque(100));
    ERRNO_KEPT("pvalloc");
    (void)malloc_usable_size(c);
    ERRNO_KEPT("malloc_usable_size");
    void *z = realloc(NULL, opaque(0));
    ERRNO_KEPT("realloc(NULL, 0)");
    free(c);
    free(cl);
    free(pm);
    free(pm2);
    free(ma);
    free(aa);
    free(va);
    free(pv);
    free(z);
    ERRNO_KEPT("the frees");
    struct mallinfo2 mi = mallinfo2();
    (void)mi;
    ERRNO_KEPT("mallinfo2");
    malloc_trim(0);
    ERRNO_KEPT("malloc_trim(0)");
}

/* ---- mallopt, mallinfo, malloc_stats ---- */

TEST(test_mallopt) {
    CHECK(mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, 256 * 1024) == 1);
    CHECK(mallopt(M_ARENA_MAX, 2) == 1);
    CHECK(mallopt(M_ARENA_TEST, 8) == 1);
    CHECK(mallopt(M_TOP_PAD, 0) == 1);
    CHECK(mallopt(M_MMAP_MAX, 65536) == 1);
    CHECK(mallopt(M_PERTURB, 0) == 1);
    CHECK(mallopt(M_MXFAST, 64) == 1);
    CHECK(mallopt(M_MXFAST, 1000) == 0); /* above glibc's limit */
    /* 256 KiB is the threshold now: 200 KiB comes from the heap */
    struct mallinfo2 a = mallinfo2();
    void *p = malloc(opaque(200 * KiB));
    struct mallinfo2 b = mallinfo2();
    CHECK(p != NULL);
    CHECK(b.hblks == a.hblks);
    CHECK(b.uordblks >= a.uordblks + 200 * KiB);
    void *q = malloc(opaque(300 * KiB));
    struct mallinfo2 c = mallinfo2();
    CHECK(q != NULL);
    CHECK(c.hblks == b.hblks + 1);
    free(p);
    free(q);
    /* glibc 2.36 answers 1 to anything else, even an unknown parameter or a
     * threshold beyond what it would use */
    CHECK(mallopt(12345, 1) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 1);
    CHECK(mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1);
    CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1);
}

TEST(test_mallinfo) {
    CHECK(set_mmap_threshold(128 * KiB) == 1);
    enum { N = 1000, SZ = 100 };
    static void *v[N];
    struct mallinfo2 a = mallinfo2();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(opaque(SZ));
        REQUIRE(v[i] != NULL);
    }
    struct mallinfo2 b = mallinfo2();
    CHECKF(b.uordblks >= a.uordblks + (size_t)N * SZ, "uordblks %zu -> %zu", a.uordblks,
           b.uordblks);
    CHECK(b.uordblks <= b.arena);
    CHECK(b.fordblks <= b.arena);
    CHECK(b.arena >= (size_t)N * SZ);
    for (int i = 0; i < N; i++) free(v[i]);
    struct mallinfo2 c = mallinfo2();
    /* all back but the pages the thread keeps for reuse: its class's
     * current page and at most one idle page (64 KiB each); a trim gives
     * the idle ones back */
    CHECKF(c.uordblks <= a.uordblks + 2 * 64 * KiB + 64, "uordblks %zu -> %zu -> %zu", a.uordblks,
           b.uordblks, c.uordblks);
    malloc_trim(0);
    struct mallinfo2 trimmed = mallinfo2();
    CHECKF(trimmed.uordblks <= a.uordblks, "uordblks %zu -> %zu -> %zu -> %zu (trimmed)",
           a.uordblks, b.uordblks, c.uordblks, trimmed.uordblks);
    c = trimmed;

    /* a 4 MiB block has a mapping of its own */
    char *big = malloc(opaque(4 * MiB));
    REQUIRE(big != NULL);
    big[0] = big[4 * MiB - 1] = 1;
    struct mallinfo2 d = mallinfo2();
    CHECK(d.hblks == c.hblks + 1);
    CHECKF(d.hblkhd >= c.hblkhd + 4 * MiB, "hblkhd %zu -> %zu", c.hblkhd, d.hblkhd);
    /* mallinfo: the same numbers in ints */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
    struct mallinfo2 now = mallinfo2();
    CHECK(old.hblks == (int)now.hblks);
    CHECK(old.hblkhd == (int)now.hblkhd);
    CHECK(old.arena == (int)now.arena);
    CHECK(old.uordblks == (int)now.uordblks);
    CHECK(old.fordblks == (int)now.fordblks);
    CHECK(old.ordblks == (int)now.ordblks);
    CHECK(old.hblks >= 1 && old.hblkhd >= (int)(4 * MiB));
    free(big);
    struct mallinfo2 e = mallinfo2();
    CHECK(e.hblks == c.hblks);
    CHECK(e.hblkhd == c.hblkhd);
}

/* uordblks is what glibc says it is: the bytes the program holds in
 * allocated blocks. One malloc(32) raises it by at least 32 and by far less
 * than a page of size-class objects (64 KiB); a hundred more by about 100
 * times that. Blocks of that size are taken first until none is left free
 * (glibc counts the blocks in its per-thread cache as in use), so that the
 * ones measured come from free memory. */
TEST(test_mallinfo_counts_bytes_held) {
    enum { DRAIN = 64, MORE = 100 };
    static void *drain[DRAIN], *more[MORE];
    for (int i = 0; i < DRAIN; i++) {
        drain[i] = malloc(opaque(32));
        REQUIRE(drain[i] != NULL);
    }
    struct mallinfo2 a = mallinfo2();
    void *p = malloc(opaque(32));
    struct mallinfo2 b = mallinfo2();
    REQUIRE(p != NULL);
    CHECKF(b.uordblks >= a.uordblks + 32 && b.uordblks < a.uordblks + 1024,
           "one malloc(32): uordblks %zu -> %zu (%+lld)", a.uordblks, b.uordblks,
           (long long)(b.uordblks - a.uordblks));
    for (int i = 0; i < MORE; i++) {
        more[i] = malloc(opaque(32));
        REQUIRE(more[i] != NULL);
    }
    struct mallinfo2 c = mallinfo2();
    CHECKF(c.uordblks >= b.uordblks + MORE * 32 && c.uordblks < b.uordblks + MORE * 64,
           "%d more malloc(32): uordblks %zu -> %zu (%+lld)", MORE, b.uordblks, c.uordblks,
           (long long)(c.uordblks - b.uordblks));
    for (int i = 0; i < MORE; i++) free(more[i]);
    for (int i = 0; i < DRAIN; i++) free(drain[i]);
    free(p);
}

TEST(test_malloc_stats_writes_to_stderr) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(stderr);
    int saved = dup(2);
    REQUIRE(saved >= 0);
    REQUIRE(dup2(fds[1], 2) == 2);
    malloc_stats();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[65536];
    ssize_t total = 0, r;
    while ((r = read(fds[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0) total += r;
    close(fds[0]);
    CHECKF(total > 0, "malloc_stats wrote %zd bytes", total);
}

/* ---- calloc zeroes recycled memory ---- */

TEST(test_calloc_zeroes_recycled_memory) {
    static const size_t sizes[] = {1,    16,    24,     100,       1000, 4000,
                                   5000, 60000, 131072, 200 * KiB, MiB,  8 * MiB};
    static const size_t thresholds[] = {128 * KiB, 32 * MiB};
    for (size_t t = 0; t < 2; t++) {
        CHECK(set_mmap_threshold(thresholds[t]) == 1);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            int rounds = n >= MiB ? 4 : 20;
            for (int r = 0; r < rounds; r++) {
                char *p = malloc(opaque(n));
                REQUIRE(p != NULL);
                memset(p, 0xAB, malloc_usable_size(p));
                free(p);
                char *q = (r & 1) ? calloc(opaque(n), 1) : calloc(1, opaque(n));
                REQUIRE(q != NULL);
                size_t bad = first_nonzero(q, n);
                CHECKF(bad == n, "calloc(%zu) round %d (threshold %zu): byte %zu is %#x", n, r,
                       thresholds[t], bad, bad < n ? (unsigned char)q[bad] : 0);
                memset(q, 0xCD, n);
                free(q);
            }
            /* several dirty blocks freed, then several callocs */
            enum { K = 12 };
            char *v[K];
            int k = n >= MiB ? 3 : K;
            for (int j = 0; j < k; j++) {
                v[j] = malloc(opaque(n + (size_t)j * 16));
                REQUIRE(v[j] != NULL);
                memset(v[j], 0xAB, n + (size_t)j * 16);
            }
            for (int j = 0; j < k; j++) free(v[j]);
            for (int j = 0; j < k; j++) {
                v[j] = calloc(opaque((n + 7) / 8), 8);
                REQUIRE(v[j] != NULL);
                CHECKF(first_nonzero(v[j], (n + 7) / 8 * 8) == (n + 7) / 8 * 8,
                       "calloc(%zu, 8) after frees", (n + 7) / 8);
            }
            for (int j = 0; j < k; j++) free(v[j]);
        }
    }
    CHECK(set_mmap_threshold(128 * KiB) == 1);
}

/* ---- fork ---- */

static int child_work(void) {
    static const size_t sizes[] = {0, 1, 100, 5000, 100000, MiB, 8 * MiB};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        char *p = malloc(n);
        if (!p) return 10 + (int)i;
        fill(p, n, 3);
        char *q = realloc(p, n * 2 + 10);
        if (!q) return 30 + (int)i;
        if (first_bad(q, n, 3) != n) return 50 + (int)i;
        char *z = calloc(1, n + 1);
        if (!z || first_nonzero(z, n + 1) != n + 1) return 70 + (int)i;
        free(q);
        free(z);
    }
    return 0;
}

TEST(test_malloc_after_fork) {
    /* the parent holds blocks of every kind across the fork */
    void *held[3] = {malloc(opaque(50)), malloc(opaque(50000)), malloc(opaque(2 * MiB))};
    for (int round = 0; round < 5; round++) {
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            alarm(10); /* a deadlock dies by SIGALRM */
            for (int i = 0; i < 3; i++) free(held[i]);
            _exit(child_work());
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        int good = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        CHECKF(good, "child: exited %d status %d, signal %d", WIFEXITED(status),
               WEXITSTATUS(status), WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        if (!good) break;
    }
    CHECK(child_work() == 0); /* and the parent goes on */
    for (int i = 0; i < 3; i++) free(held[i]);
}

int main(void) {
    RUN(test_zero_size_requests);
    RUN(test_realloc_to_zero_frees);
    RUN(test_realloc_null_is_malloc);
    RUN(test_huge_requests_fail_with_enomem);
    RUN(test_overflowing_products_fail_with_enomem);
    RUN(test_posix_memalign_einval);
    RUN(test_posix_memalign_ok);
    RUN(test_memalign_and_aligned_alloc_any_power_of_two);
    RUN(test_valloc_pvalloc);
    RUN(test_every_entry_point_16_aligned);
    RUN(test_usable_size);
    RUN(test_realloc_growth_preserves_content);
    RUN(test_success_keeps_errno);
    RUN(test_mallopt);
    RUN(test_mallinfo);
    RUN(test_mallinfo_counts_bytes_held);
    RUN(test_malloc_stats_writes_to_stderr);
    RUN(test_calloc_zeroes_recycled_memory);
    RUN(test_malloc_after_fork);
    return harness_finish();
}
