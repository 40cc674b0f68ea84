/*
 * contract_check.c: the check modes (MEMALLOC_CHECK=1 and 2), switched on
 * with memalloc_set_option, through the libc names (the shim is linked
 * in): what a correct program sees (sizes, alignment, fills, realloc
 * moving, calloc zeroed, blocks from before the mode freed as they were,
 * memalloc_check clean) and what misuse gets (the report's first line and
 * the signal), each misuse in a child process.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "memalloc.h"

static size_t opaque(size_t x) {
    __asm__ volatile("" : "+r"(x));
    return x;
}

static void set_check(size_t level) {
    REQUIRE(memalloc_set_option(MEMALLOC_OPT_CHECK, level) == 0);
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char c) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != c) return 0;
    return 1;
}

/* Run fn(arg) in a child with stderr to a pipe: its signal (0 if it
 * exited) and the first line it wrote, in line. */
static int in_child(void (*fn)(void *), void *arg, char *line, size_t cap) {
    int fds[2];
    line[0] = '\0';
    if (!CHECK_(pipe(fds) == 0, "pipe")) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (!CHECK_(pid >= 0, "fork")) return -1;
    if (pid == 0) {
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fds[0], line + len, cap - 1 - len)) > 0) len += (size_t)r;
    line[len] = '\0';
    char *nl = strchr(line, '\n');
    if (nl) *nl = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* The report's first line for bug on address a in who (or a fault). */
static void expect_report(void (*fn)(void *), void *arg, int sig, const char *bug, const void *a,
                          const char *who) {
    char line[4096], want[256];
    if (who)
        snprintf(want, sizeof want, "memalloc: ERROR: %s on address %p in %s()", bug, a, who);
    else
        snprintf(want, sizeof want, "memalloc: ERROR: %s on address %p (a write)", bug, a);
    int got = in_child(fn, arg, line, sizeof line);
    CHECKF(got == sig, "signal %d, expected %d", got, sig);
    CHECKF(strcmp(line, want) == 0, "got \"%s\", expected \"%s\"", line, want);
}

/* A block that left quarantine with its fill verified leaves its object
 * holding the free fill (0x5a): the next checked block there is handed
 * out with it as its junk. Once a check mode was turned off, an object
 * may hold a default-mode block's data under such a block's old header:
 * new blocks are junk-filled (0xa5) again. (First: the switch is for
 * good.) */
TEST(test_level1_reuse_keeps_the_free_fill) {
    set_check(1);
    unsigned char *p = malloc(opaque(200));
    REQUIRE(p != NULL);
    memset(p, 0x77, 200);
    free(p);
    for (int i = 0; i < 65536; i++) free(malloc(128)); /* p leaves quarantine */
    unsigned char *q = malloc(opaque(200));
    REQUIRE(q == p); /* the object, back at the head of its page's list */
    CHECK(all_bytes(q, 200, 0x5a));
    free(q);
    for (int i = 0; i < 65536; i++) free(malloc(128));
    set_check(0);
    unsigned char *r = malloc(opaque(248)); /* the same object, unchecked */
    REQUIRE(r == p - 32);
    memset(r + 32, 0x66, 200); /* program data; the old header (r+16) stays */
    free(r);
    set_check(1);
    unsigned char *s = malloc(opaque(200));
    REQUIRE(s == p);
    CHECK(all_bytes(s, 200, 0xa5));
    free(s);
    set_check(0);
}

TEST(test_level1_correct_use) {
    set_check(1);
    unsigned char *p = malloc(opaque(24));
    REQUIRE(p != NULL);
    CHECK(((uintptr_t)p & 15) == 0);
    CHECK(malloc_usable_size(p) == 24); /* exactly: the rest is canary */
    CHECK(all_bytes(p, 24, 0xa5));      /* junk, not a freed block's data */
    memset(p, 1, 24);
    unsigned char *q = realloc(p, 24); /* realloc always moves */
    CHECK(q != p && all_bytes(q, 24, 1));
    unsigned char *z = calloc(10, 10);
    CHECK(z != NULL && all_bytes(z, 100, 0));
    void *a = NULL;
    CHECK(posix_memalign(&a, 4096, 100) == 0 && ((uintptr_t)a & 4095) == 0);
    CHECK(malloc_usable_size(a) == 100);
    void *zero = malloc(0);
    CHECK(zero != NULL && malloc_usable_size(zero) == 0);
    errno = 0;
    CHECK(malloc(opaque(SIZE_MAX)) == NULL && errno == ENOMEM);
    CHECK(memalloc_check() == 0);
    free(q);
    free(z);
    free(a);
    free(zero);
    CHECK(memalloc_check() == 0);
    set_check(0);
}

static size_t resident_kib(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* A large block is junk-filled over its first MiB only, and a freed one
 * filled there and purged beyond (a program that allocates a large buffer
 * and touches little of it keeps its memory): a 64 MiB block adds a few
 * MiB to the resident set, not 64; a write after free in its first MiB
 * is still found. */
TEST(test_level1_large_blocks) {
    set_check(1);
    size_t n = (size_t)64 << 20, before = resident_kib();
    unsigned char *p = malloc(n);
    REQUIRE(p != NULL);
    CHECK(p[0] == 0xa5 && p[(1 << 20) - 1] == 0xa5);
    size_t grown = resident_kib() - before;
    CHECKF(grown < 8 * 1024, "resident set grew by %zu KiB", grown);
    p[n / 2] = 1; /* the program's */
    free(p);
    CHECK(memalloc_check() == 0);
    set_check(0);
}

TEST(test_blocks_across_mode_changes) {
    void *plain = malloc(40);
    set_check(1);
    void *checked = malloc(40);
    CHECK(malloc_usable_size(plain) >= 40);
    CHECK(malloc_usable_size(checked) == 40);
    free(plain); /* allocated before: freed as it was */
    set_check(0);
    /* a block of size 0 (an address of an inaccessible stretch by
     * default) across a change of mode, both ways */
    void *zero = malloc(0);
    set_check(1);
    CHECK(malloc_usable_size(zero) == 0);
    free(zero);
    zero = malloc(0);
    set_check(0);
    CHECK(malloc_usable_size(zero) == 0);
    free(zero);
    CHECK(malloc_usable_size(checked) == 40);
    free(checked); /* a checked block, after the mode went off */
    CHECK(memalloc_check() == 0);
}

static void *victim;
static size_t victim_n;

/* One byte at a changed: a fixed byte would equal a canary's (random per
 * process) one time in 255, and the write would go unseen. */
static void change_byte(char *a) {
    *(volatile char *)a ^= 0x5a;
}
static void overflow1(void *arg) {
    (void)arg;
    change_byte((char *)victim + victim_n);
    free(victim);
}
/* The byte past a block that ends at a guard page: a write (a read
 * first would be the fault reported) */
static void overflow1_guard(void *arg) {
    (void)arg;
    ((volatile char *)victim)[victim_n] = 'x';
    free(victim);
}
static void underflow1(void *arg) {
    (void)arg;
    change_byte((char *)victim - 1);
    free(victim);
}
static void double_free(void *arg) {
    (void)arg;
    free(victim);
    for (int i = 0; i < 1000; i++) free(malloc((size_t)i)); /* many frees between */
    free(victim);
}
static void bad_free(void *arg) {
    (void)arg;
    free((char *)victim + 16);
}
/* A write after free, found by memalloc_check (which reports and counts
 * it), then at exit (which reports in full and aborts). */
static void write_after_free_checked(void *arg) {
    (void)arg;
    free(victim);
    ((char *)victim)[5] = 1;
    exit(memalloc_check() == 1 ? 0 : 9);
}
/* The same, found as the block leaves quarantine: 8 MiB of small frees
 * push it out (the quarantine holds 1 MiB here). The write is past the
 * block's first 16 bytes, which the next allocation looks at. */
static void write_after_free_evicted(void *arg) {
    (void)arg;
    free(victim);
    ((char *)victim)[20] = 1;
    for (int i = 0; i < 65536; i++) free(malloc(128));
}
/* A write to the first bytes of the block the thread freed last: found
 * by its next allocation. */
static void write_after_free_next_malloc(void *arg) {
    (void)arg;
    free(victim);
    ((char *)victim)[5] = 1;
    free(malloc(128));
}

/* A second free after the block left quarantine (its object is back on
 * its page's free list: the filler's blocks are of another class). */
static void double_free_gone(void *arg) {
    (void)arg;
    free(victim);
    for (int i = 0; i < 65536; i++) free(malloc(128));
    free(victim);
}
/* A write past the end of a freed block, into what was its canary: the
 * fill covers it, found as the block leaves quarantine. */
static void write_past_freed(void *arg) {
    (void)arg;
    free(victim);
    ((char *)victim)[victim_n + 2] = 1;
    for (int i = 0; i < 65536; i++) free(malloc(128));
}
/* A block freed by a thread that then exits stays in quarantine (its
 * ring is orphaned): a write after free into it is found as the main
 * thread's frees push it out. */
static void *free_and_exit(void *arg) {
    free(arg);
    return NULL;
}
static void write_after_thread_free(void *arg) {
    (void)arg;
    pthread_t t;
    if (pthread_create(&t, NULL, free_and_exit, victim) != 0 || pthread_join(t, NULL) != 0) exit(3);
    ((char *)victim)[7] = 1;
    for (int i = 0; i < 65536; i++) free(malloc(128));
    exit(8); /* not found */
}

/*
 * A damaged byte is found at its own address, in blocks of every
 * length the fill's and the canary's scans treat apart (under 16, under
 * 64, and longer, where 64-byte strides, a last stride that overlaps and,
 * with AVX2, 32-byte registers meet): bytes of a freed block and of its
 * canary, then of a live block's canary after it, damaged in turn
 * (probed), named by memalloc_check's line. In a child whose stderr is a
 * pipe that it reads back itself; exits 1 at the first miss (written to
 * the parent's stderr, saved as fd 9).
 */
static int damaged_at(int rd, const void *block, const void *at) {
    char line[512], want[128];
    ssize_t r = read(rd, line, sizeof line - 1);
    line[r > 0 ? r : 0] = '\0';
    snprintf(want, sizeof want, "memalloc: check: checked block %p damaged at %p", block, at);
    if (strncmp(line, want, strlen(want)) == 0) return 1;
    dprintf(9, "block %p byte %p: got \"%.200s\"\n", block, at, line);
    return 0;
}
/* Which bytes of a stretch of len are damaged in turn: each report
 * names the block's stack, which costs a look into the module's symbols,
 * so not all: the ends, each side of every 8-byte word boundary in the
 * first 72 bytes, and each side of every 32-byte one. */
static int probed(size_t i, size_t len) {
    return i < 2 || i + 2 >= len || (i < 72 && (i % 8 == 0 || i % 8 == 7)) || i % 32 == 0 ||
           i % 32 == 31;
}
static const size_t scan_sizes[] = {1,   7,   8,   9,   15,  16,  17,  31,   32,  33,
                                    47,  48,  49,  63,  64,  65,  95,  96,   97,  127,
                                    128, 129, 200, 255, 256, 300, 513, 1000, 4000};
#define SCANS (sizeof scan_sizes / sizeof scan_sizes[0])
static size_t scan_tail[SCANS]; /* the canary's length after each block */
static void scan_bytes(void *arg) {
    int *fds = arg;
    for (size_t s = 0; s < SCANS; s++) {
        size_t n = scan_sizes[s], len = n + scan_tail[s];
        unsigned char *p = malloc(opaque(n));
        unsigned char *q = malloc(opaque(n)); /* live: its canary */
        if (!p || !q) exit(2);
        free(p);
        for (size_t i = 0; i < len; i++) { /* the block and its canary */
            if (!probed(i, len)) continue;
            p[i] ^= 0x10;
            int found = memalloc_check() == 1 && damaged_at(fds[0], p, p + i);
            p[i] ^= 0x10;
            if (!found) exit(1);
        }
        for (size_t i = n; i < len; i++) {
            if (!probed(i - n, len - n)) continue;
            q[i] ^= 0x10;
            int found = memalloc_check() == 1 && damaged_at(fds[0], q, q + i);
            q[i] ^= 0x10;
            if (!found) exit(1);
        }
        free(q);
    }
    exit(memalloc_check() == 0 ? 0 : 3);
}
static void scan_child(void *arg) {
    (void)arg;
    int fds[2];
    if (pipe(fds) != 0 || dup2(2, 9) != 9 || dup2(fds[1], 2) != 2) exit(4);
    scan_bytes(fds);
}

TEST(test_level1_damaged_bytes) {
    /* a block of n bytes is an object of the class of n + 48 (debug.c:
     * 32 bytes before it, at least 16 of canary after), the canary the
     * rest of the object */
    for (size_t s = 0; s < SCANS; s++) {
        size_t n = scan_sizes[s];
        void *o = malloc(opaque(n + 48));
        REQUIRE(o != NULL);
        scan_tail[s] = malloc_usable_size(o) - 32 - n;
        CHECKF(scan_tail[s] >= 16, "%zu bytes: a canary of %zu", n, scan_tail[s]);
        free(o);
    }
    set_check(1);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) scan_child(NULL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}

TEST(test_level1_reports) {
    set_check(1);
    victim_n = 24;
    victim = malloc(victim_n);
    expect_report(overflow1, NULL, SIGABRT, "heap-buffer-overflow", (char *)victim + 24, "free");
    expect_report(underflow1, NULL, SIGABRT, "heap-buffer-underflow", (char *)victim - 1, "free");
    expect_report(double_free, NULL, SIGABRT, "double-free", victim, "free");
    expect_report(bad_free, NULL, SIGABRT, "bad-free", (char *)victim + 16, "free");
    char line[4096], want[128];
    int sig = in_child(write_after_free_checked, NULL, line, sizeof line);
    CHECKF(sig == SIGABRT, "signal %d", sig);
    snprintf(want, sizeof want, "memalloc: check: checked block %p damaged at %p", victim,
             (char *)victim + 5);
    CHECKF(strncmp(line, want, strlen(want)) == 0, "got \"%s\", expected \"%s...\"", line, want);
    expect_report(write_after_free_evicted, NULL, SIGABRT, "heap-use-after-free",
                  (char *)victim + 20, "free");
    expect_report(write_after_free_next_malloc, NULL, SIGABRT, "heap-use-after-free",
                  (char *)victim + 5, "malloc");
    expect_report(double_free_gone, NULL, SIGABRT, "double-free", victim, "free");
    expect_report(write_past_freed, NULL, SIGABRT, "heap-buffer-overflow",
                  (char *)victim + victim_n + 2, "free");
    expect_report(write_after_thread_free, NULL, SIGABRT, "heap-use-after-free", (char *)victim + 7,
                  "free");
    free(victim);
    set_check(0);
}

TEST(test_level2) {
    set_check(2);
    /* the block ends at the guard page: aligned to what its size needs,
     * 8 at least */
    char *p = malloc(24);
    REQUIRE(p != NULL);
    CHECK(((uintptr_t)(p + 24) & 4095) == 0);
    CHECK(((uintptr_t)p & 7) == 0);
    char *odd = malloc(13); /* 8-aligned: 3 bytes of canary up to the guard */
    CHECK(((uintptr_t)odd & 7) == 0 && ((uintptr_t)(odd + 16) & 4095) == 0);
    void *a = NULL, *a16 = NULL;
    CHECK(posix_memalign(&a, 64, 100) == 0 && ((uintptr_t)a & 63) == 0);
    /* an alignment asked for is given, even the default one (bench/'s
     * calloc_align found posix_memalign(16, 29237) 8-aligned) */
    CHECK(posix_memalign(&a16, 16, 29237) == 0 && ((uintptr_t)a16 & 15) == 0);
    free(a16);
    memset(p, 2, 24);
    char *q = realloc(p, 104);
    CHECK(q != p && all_bytes((unsigned char *)q, 24, 2));
    victim = q;
    victim_n = 104;
    expect_report(overflow1_guard, NULL, SIGSEGV, "heap-buffer-overflow", q + 104, NULL);
    /* an odd size: the byte after it is a canary, found by free() */
    victim = odd;
    victim_n = 13;
    expect_report(overflow1, NULL, SIGABRT, "heap-buffer-overflow", odd + 13, "free");
    CHECK(memalloc_check() == 0);
    free(q);
    free(odd);
    free(a);
    set_check(0);
}

static void write_after_free(void *arg) {
    (void)arg;
    /* a freed sampled block is closed within a budget a window of 16 ms
     * (debug.c), which what came before in this process may have used */
    usleep(40000);
    free(victim);
    ((char *)victim)[3] = 1;
}

/* MEMALLOC_SAMPLE with no check mode: at 1, every malloc is a block of
 * level 2, 16-aligned as malloc's are (a block of a multiple of 16 bytes
 * ends at a guard page: its size exactly usable), whose
 * overflow and use after free fault; the program's blocks behave as
 * usual (contents kept across realloc, usable sizes, frees, the checker
 * clean); at 0 again, blocks are the engine's and the sampled ones still
 * free. */
TEST(test_sample) {
    REQUIRE(memalloc_set_option(MEMALLOC_OPT_SAMPLE, 1) == 0);
    char *p = malloc(32), *odd = malloc(24);
    REQUIRE(p != NULL && odd != NULL);
    CHECK(((uintptr_t)(p + 32) & 4095) == 0);
    CHECK(malloc_usable_size(p) == 32);
    CHECK(((uintptr_t)odd & 15) == 0 && malloc_usable_size(odd) == 24);
    victim = p;
    victim_n = 32;
    expect_report(overflow1_guard, NULL, SIGSEGV, "heap-buffer-overflow", p + 32, NULL);
    free(odd);
    expect_report(write_after_free, NULL, SIGSEGV, "heap-use-after-free", p + 3, NULL);
    enum { N = 300 };
    static char *b[N];
    static size_t bn[N];
    uint64_t x = 7;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            size_t n = 1 + (size_t)(x >> 33) % 3000;
            if (b[i]) {
                char *q = realloc(b[i], n);
                REQUIRE(q != NULL);
                CHECK(all_bytes((unsigned char *)q, n < bn[i] ? n : bn[i], (unsigned char)i));
                b[i] = q;
            } else {
                b[i] = malloc(n);
                REQUIRE(b[i] != NULL);
            }
            memset(b[i], i, n);
            bn[i] = n;
            CHECK(malloc_usable_size(b[i]) >= n);
        }
        if (round == 1) REQUIRE(memalloc_set_option(MEMALLOC_OPT_SAMPLE, 0) == 0);
    }
    char *plain = malloc(24);
    CHECK(((uintptr_t)(plain + 24) & 4095) != 0 || malloc_usable_size(plain) > 24);
    CHECK(memalloc_check() == 0);
    for (int i = 0; i < N; i++) free(b[i]);
    free(plain);
    free(p);
    CHECK(memalloc_check() == 0);
}

int main(void) {
    RUN(test_level1_damaged_bytes); /* first: memalloc_check's walks are short */
    RUN(test_level1_reuse_keeps_the_free_fill);
    RUN(test_level1_correct_use);
    RUN(test_level1_large_blocks);
    RUN(test_blocks_across_mode_changes);
    RUN(test_level1_reports);
    RUN(test_level2);
    RUN(test_sample);
    return harness_finish();
}
