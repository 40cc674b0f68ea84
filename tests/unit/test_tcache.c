/*
 * test_tcache.c: the thread cache and the size classes, and the cache of
 * freed mappings, seen from one thread: reuse from the cache, the class
 * table, full lists flushing half, double frees and writes to cached
 * blocks caught, the checker walking the cache, statistics that tell
 * cached bytes from bytes in use, turning the cache off, the dynamic mmap
 * threshold, freed large mappings reused, then given back (by age and
 * by trim), and huge pages asked for large malloc'd mappings. Links the engine
 * directly; includes its private headers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "heap.h"
#include "large.h"
#include "memalloc.h"
#include "tcache.h"

static struct memalloc_stats stats(void) {
    struct memalloc_stats s;
    memalloc_get_stats(&s);
    return s;
}

/* Run fn in a child; return its stderr's first line in buf and its signal. */
static int in_child(void (*fn)(void), char *buf, size_t len) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        fn();
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST(test_classes) {
    memalloc(1); /* initialise */
    /* every request up to the largest cached one maps to the smallest
     * class that holds it; class sizes grow, by at most 1/8 above 1 KiB */
    unsigned prev = 0;
    for (size_t n = 0; n <= TC_MAX_REQUEST; n++) {
        size_t nb = n + 8 < 32 ? 32 : (n + 8 + 15) & ~(size_t)15;
        unsigned k = tc_class(nb);
        if (!CHECK_(k >= 2 && k < TC_CLASSES && tc_class_size[k] >= nb &&
                        tc_class_size[k - 1] < nb && k >= prev,
                    "class of a request"))
            return;
        prev = k;
    }
    CHECK(tc_class_size[2] == 32 && tc_class_size[64] == 1024 && tc_class_size[65] == 1152);
    CHECK(tc_class_size[TC_CLASSES - 1] == TC_MAX_CHUNK);
    for (unsigned k = 65; k < TC_CLASSES; k++) {
        CHECK(tc_class_size[k] > tc_class_size[k - 1]);
        CHECK(tc_class_size[k] - tc_class_size[k - 1] <= tc_class_size[k - 1] / 8);
        CHECK(tc_class_size[k] % 16 == 0 &&
              tc_class_size[k] == tc_class_size[tc_class(tc_class_size[k])]);
    }
    /* the usable size is the class's, and stays put */
    for (size_t n = 1; n < 40000; n = n * 5 / 4 + 1) {
        char *p = memalloc(n);
        size_t u = memalloc_usable_size(p);
        CHECK(u >= n);
        if (n <= TC_MAX_REQUEST) CHECK(u == tc_class_size[tc_class(u + 8)] - 8);
        memset(p, 0x5c, u);
        memfree(p);
    }
    CHECK(memalloc_check() == 0);
}

TEST(test_reuse_from_cache) {
    struct memalloc_stats s0 = stats();
    char *p = memalloc(200);
    memfree(p);
    struct memalloc_stats s1 = stats();
    CHECK(s1.thread_cached >= 208 - 8); /* the block waits in the cache */
    CHECK(s1.in_use == s0.in_use);
    CHECK(s1.frees == s0.frees + 1 && s1.allocs == s0.allocs + 1);
    char *q = memalloc(190); /* same class: the same block comes back */
    CHECK(q == p);
    CHECK(stats().in_use == s0.in_use + memalloc_usable_size(q));
    /* a block of a cached class but of another size is not mixed in */
    char *r = memalloc(1000);
    CHECK(r != p && memalloc_usable_size(r) >= 1000);
    memfree(q);
    memfree(r);
    CHECK(memalloc_check() == 0);
    /* an aligned block, once freed, serves the next aligned request of its
     * class from the cache when its address has the alignment */
    char *a = memalloc_aligned(256, 300);
    CHECK(a && ((uintptr_t)a & 255) == 0);
    memfree(a);
    struct memalloc_stats s2 = stats();
    char *b = memalloc_aligned(256, 300);
    CHECK(b == a && stats().thread_cached < s2.thread_cached);
    memfree(b);
    char *c = memalloc_aligned(4096, 300); /* not aligned enough: another block */
    CHECK(c && ((uintptr_t)c & 4095) == 0);
    if (((uintptr_t)a & 4095) != 0) CHECK(c != a);
    memfree(c);
    CHECK(memalloc_check() == 0);
}

TEST(test_full_list_flushes_half) {
    enum { N = 1000 };
    static char *v[N];
    unsigned k = tc_class(48);
    size_t cap = tc_capacity[k];
    CHECK(cap >= 4 && cap < N);
    for (int i = 0; i < N; i++) v[i] = memalloc(40);
    for (int i = 0; i < N; i++) memfree(v[i]);
    /* the list never holds more than its capacity: the rest went back */
    struct tcache *t = tc_self();
    REQUIRE(t != NULL);
    size_t listed = cap - t->room[k];
    CHECKF(listed >= cap / 2 && listed <= cap, "listed %zu of %zu", listed, cap);
    CHECK(stats().thread_cached >= listed * 40);
    /* the arena keeps up to two lists' worth for the next refill, whole */
    struct memalloc_stats st = stats();
    CHECK(tc_stashes[0].n[k] == 2 * cap && st.arena_cached >= 2 * cap * 40);
    CHECK(memalloc_check() == 0);
    /* a stashed block whose key is overwritten is caught by the checker */
    struct tblock *s0 = tc_stashes[0].head[k];
    REQUIRE(s0 != NULL);
    s0->key ^= 2;
    CHECK(memalloc_check() >= 1);
    s0->key ^= 2;
    CHECK(memalloc_check() == 0);
    /* empty the list, then the next refill takes stashed blocks */
    for (size_t i = 0; i < cap; i++) v[i] = memalloc(40);
    char *next = memalloc(40);
    CHECK(stats().arena_cached < st.arena_cached);
    memfree(next);
    for (size_t i = 0; i < cap; i++) memfree(v[i]);
    CHECK(memalloc_check() == 0);
    /* and freed blocks that went back to the engine merged again */
    CHECK(memalloc_trim(0) >= 0);
    CHECK(stats().thread_cached == 0 && stats().arena_cached == 0);
    CHECK(memalloc_check() == 0);
}

TEST(test_stashes_keep_a_bounded_amount) {
    CHECK(memalloc_trim(0) >= 0);
    CHECK(stats().arena_cached == 0);
    /* 32 classes of 512 B - 1 KiB, 100 blocks each: every stash would take
     * two lists' worth (16 KiB), 512 KiB in all; the arena keeps 256 KiB */
    enum { CLASSES = 32, N = 100 };
    static char *v[CLASSES][N];
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < N; i++) REQUIRE((v[c][i] = memalloc(512 + 16 * (size_t)c)) != NULL);
    for (int c = 0; c < CLASSES; c++)
        for (int i = 0; i < N; i++) memfree(v[c][i]);
    size_t kept = stats().arena_cached;
    CHECKF(kept <= TC_STASH_BYTES && kept + 1024 > TC_STASH_BYTES, "arena_cached %zu", kept);
    CHECK(tc_stashes[0].bytes == kept);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_trim(0) >= 0);
    CHECK(stats().arena_cached == 0);
}

TEST(test_lists_grow_while_they_overflow) {
    enum { N = 40 };
    char *v[N];
    unsigned k = tc_class(20 * 1024 + 16);
    struct tcache *t = tc_self();
    REQUIRE(t != NULL);
    size_t base = tc_capacity[k];
    CHECK(base == 2 && t->cap[k] == base);
    for (int i = 0; i < N; i++) v[i] = memalloc(20 * 1024);
    for (int i = 0; i < N; i++) memfree(v[i]);
    /* the list doubled while it overflowed: 2, 4, 8 ... within the budget */
    CHECKF(t->cap[k] > base && t->cap[k] <= 64, "cap %u, grown by %zu bytes, size %u",
           (unsigned)t->cap[k], t->cap_bytes, tc_class_size[k]);
    CHECK(t->cap_bytes <= (size_t)256 << 10);
    CHECK(t->cap[k] - t->room[k] >= t->cap[k] / 2); /* and holds blocks */
    CHECK(memalloc_check() == 0);
    /* the same sizes come back from the list: no lock, the same blocks */
    char *again = memalloc(20 * 1024);
    int found = 0;
    for (int i = 0; i < N; i++) found |= again == v[i];
    CHECK(found);
    memfree(again);
    CHECK(memalloc_check() == 0);
}

static char *victim;
static void free_twice(void) {
    memfree(victim);
    memfree(victim);
}
static void realloc_cached(void) {
    memfree(victim);
    memresize(victim, 10);
}
static void size_cached(void) {
    memfree(victim);
    memalloc_usable_size(victim);
}
static void write_then_malloc(void) {
    memfree(victim);
    memset(victim, 0x41, 16); /* use after free: the cache's links */
    memalloc(100);
}

TEST(test_misuse_of_cached_blocks) {
    char line[512], want[128];
    victim = memalloc(100);
    CHECK(in_child(free_twice, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memfree(): double free of %p", (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(realloc_cached, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memresize(): pointer already freed %p", (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(size_cached, line, sizeof line) == SIGABRT);
    snprintf(want, sizeof want, "memalloc: memalloc_usable_size(): pointer already freed %p",
             (void *)victim);
    CHECKF(strcmp(line, want) == 0, "got: %s", line);
    CHECK(in_child(write_then_malloc, line, sizeof line) == SIGABRT);
    CHECKF(strstr(line, "heap corruption (a freed block was written to)") != NULL, "got: %s", line);
    memfree(victim);
    CHECK(memalloc_check() == 0);
}

TEST(test_checker_walks_the_cache) {
    char *p = memalloc(64);
    memfree(p);
    CHECK(memalloc_check() == 0);
    struct tblock *b = (struct tblock *)p;
    uintptr_t key = b->key;
    b->key ^= 1; /* as a stray write would */
    CHECK(memalloc_check() >= 1);
    b->key = key;
    struct chunk *c = payload_chunk(p);
    size_t head = c->head;
    c->head &= ~CINUSE; /* a cached block must stay an in-use chunk */
    CHECK(memalloc_check() >= 1);
    c->head = head;
    CHECK(memalloc_check() == 0);
    struct tcache *t = tc_self(); /* growth accounting that lost track */
    REQUIRE(t != NULL);
    t->cap_bytes += 16;
    CHECK(memalloc_check() >= 1);
    t->cap_bytes -= 16;
    CHECK(memalloc_check() == 0);
    CHECK(memalloc(64) == p);
    memfree(p);
}

TEST(test_cache_off) {
    char *p = memalloc(300);
    memfree(p);
    CHECK(stats().thread_cached > 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 0) == 0);
    CHECK(stats().thread_cached == 0);
    struct memalloc_stats s0 = stats();
    p = memalloc(300);
    memfree(p);
    struct memalloc_stats s1 = stats();
    CHECK(s1.thread_cached == 0 && s1.in_use == s0.in_use && s1.frees == s0.frees + 1);
    CHECK(memalloc_check() == 0);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 2) == EINVAL);
    CHECK(memalloc_set_option(MEMALLOC_OPT_TCACHE, 1) == 0);
    p = memalloc(300);
    memfree(p);
    CHECK(stats().thread_cached > 0);
    CHECK(memalloc_check() == 0);
}

/* Must run before anything sets the mmap threshold (which fixes it). */
TEST(test_dynamic_mmap_threshold) {
    size_t mib = (size_t)1 << 20;
    CHECK(memalloc_trim(0) >= 0);
    char *p = memalloc(mib);
    CHECK(region_lookup(p) == NULL); /* 1 MiB >= 128 KiB: a mapping */
    memset(p, 1, mib);
    memfree(p);
    /* freeing it raised the threshold: its mapping could serve no request
     * whole any more, so it was unmapped, not cached (resident) */
    CHECK(stats().mmap_cached_blocks == 0);
    /* the same size now comes from the heap */
    char *q = memalloc(mib);
    CHECK(region_lookup(q) != NULL);
    CHECK(memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD) == 128 * 1024); /* the option stays */
    memset(q, 3, mib);
    memfree(q);
    /* but never above 32 MiB; a mapping above the threshold is cached */
    p = memalloc(40 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    q = memalloc(40 * mib);
    CHECK(region_lookup(q) == NULL && q == p);
    memfree(q);
    CHECK(memalloc_check() == 0);
    /* setting the threshold turns the dynamic one off */
    CHECK(memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, 128 * 1024) == 0);
    p = memalloc(mib);
    CHECK(region_lookup(p) == NULL);
    memfree(p);
    CHECK(memalloc_check() == 0);
}

TEST(test_mapping_cache) {
    size_t mib = (size_t)1 << 20;
    CHECK(memalloc_trim(0) >= 0);
    CHECK(stats().mmap_cached_blocks == 0);
    char *p = memalloc(8 * mib);
    memset(p, 1, 8 * mib);
    memfree(p);
    struct memalloc_stats s = stats();
    CHECK(s.mmap_cached_blocks == 1 && s.mmap_cached_bytes >= 8 * mib);
    CHECK(s.mmapped_blocks == 0 || s.mmapped_bytes < s.mmap_cached_bytes);
    /* a slightly smaller request takes the same mapping, pages and all */
    char *q = memalloc(7 * mib);
    CHECK(q == p && memalloc_usable_size(q) >= 7 * mib);
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(q);
    /* a larger one grows it (mremap keeps the pages) */
    q = memalloc(12 * mib);
    CHECK(q != NULL && stats().mmap_cached_blocks == 0);
    memset(q, 2, 12 * mib);
    /* calloc never gets a dirty mapping */
    memfree(q);
    char *z = defalloc(1, 12 * mib);
    int zero = 1;
    for (size_t i = 0; i < 12 * mib; i += 4096) zero &= z[i] == 0;
    CHECK(zero);
    CHECK(stats().mmap_cached_blocks == 1);
    memfree(z);
    CHECK(memalloc_check() == 0);
    /* trim empties the cache */
    CHECK(memalloc_trim(0) == 1);
    CHECK(stats().mmap_cached_blocks == 0 && stats().mmap_cached_bytes == 0);
    /* at most 128 MiB are kept: a 200 MiB block is unmapped at once */
    p = memalloc(200 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 0);
    /* an entry unused for a second leaves at the next large call */
    p = memalloc(2 * mib);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    usleep(1200 * 1000);
    q = memalloc(64 * mib); /* the stale 2 MiB entry leaves first: a fresh mapping */
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(q);
    p = memalloc(300 * 1024); /* the head of the 64 MiB mapping; its tail stays cached */
    s = stats();
    CHECK(p == q && s.mmap_cached_blocks == 1);
    CHECK(s.mmap_cached_bytes >= 63 * mib && s.mmap_cached_bytes < 64 * mib);
    char *tail = memalloc(20 * mib); /* the tail serves the next request, in place */
    CHECK(tail > p && tail < q + 64 * mib);
    memfree(tail);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 3);
    usleep(1200 * 1000);
    p = memalloc(300 * 1024); /* evicts everything older than a second first */
    CHECK(stats().mmap_cached_blocks == 0);
    memfree(p);
    CHECK(stats().mmap_cached_blocks == 1);
    CHECK(memalloc_check() == 0);
}

/* The VmFlags line of the mapping holding p, from /proc/self/smaps. */
static int vm_flags(const void *p, char *out, size_t len) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, len, "%s", line + 8);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static int advised_huge(const void *p) {
    char flags[256];
    if (vm_flags(p, flags, sizeof flags) != 0) return -1;
    return strstr(flags, " hg") != NULL;
}

TEST(test_hugepage_advice) {
    size_t mib = (size_t)1 << 20;
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0) {
        printf("    (no transparent huge pages on this kernel: skipped)\n");
        return;
    }
    CHECK(memalloc_get_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD) == 4 * mib);
    CHECK(memalloc_trim(0) >= 0);
    /* a fresh malloc'd mapping of 4 MiB or more asks for huge pages */
    char *p = memalloc(8 * mib);
    CHECK(region_lookup(p) == NULL);
    CHECK(advised_huge(p) == 1);
    /* a smaller one, and a zeroed one (often used sparsely), do not */
    char *q = memalloc(2 * mib);
    CHECK(advised_huge(q) == 0);
    char *z = defalloc(1, 8 * mib);
    CHECK(advised_huge(z) == 0);
    /* a mapping grown past the threshold by realloc asks then */
    q = memresize(q, 6 * mib);
    REQUIRE(q != NULL);
    CHECK(advised_huge(q) == 1);
    memfree(p);
    memfree(q);
    memfree(z);
    CHECK(memalloc_trim(0) >= 0);
    /* 0 turns it off */
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 0) == 0);
    p = memalloc(8 * mib);
    CHECK(advised_huge(p) == 0);
    memfree(p);
    CHECK(memalloc_set_option(MEMALLOC_OPT_HUGEPAGE_THRESHOLD, 4 * mib) == 0);
    CHECK(memalloc_trim(0) >= 0);
    CHECK(memalloc_check() == 0);
}

int main(void) {
    RUN(test_classes);
    RUN(test_reuse_from_cache);
    RUN(test_full_list_flushes_half);
    RUN(test_lists_grow_while_they_overflow);
    RUN(test_stashes_keep_a_bounded_amount);
    RUN(test_misuse_of_cached_blocks);
    RUN(test_checker_walks_the_cache);
    RUN(test_cache_off);
    RUN(test_dynamic_mmap_threshold);
    RUN(test_mapping_cache);
    RUN(test_hugepage_advice);
    return harness_finish();
}
