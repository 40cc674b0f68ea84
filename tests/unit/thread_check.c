/*
 * thread_check.c: the check modes under threads (built for
 * ThreadSanitizer too). In each of level 1 and level 2, four threads
 * allocate blocks of random sizes (memalloc, defalloc, memalloc_aligned),
 * fill them with a pattern, and swap them through a shared table, so that
 * most blocks are resized and freed by another thread than the one that
 * allocated them; the quarantine, the guard slots and the stack depot are
 * shared. Every block is verified before it is freed; no report may stop
 * the process, and afterwards the heap checks clean (every checked
 * block's canaries and every freed one's fill) with nothing left in use.
 *
 * Only the engine's API allocates here (ThreadSanitizer replaces libc's
 * malloc).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "memalloc.h"

#define THREADS 4
#define SLOTS   256
#define OPS     20000

struct block {
    unsigned char *p;
    size_t n;
    unsigned char fill;
};

static struct block table[SLOTS];
static pthread_mutex_t table_lock[SLOTS];
static unsigned long bad_blocks;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int verify(const struct block *b) {
    for (size_t i = 0; i < b->n; i++)
        if (b->p[i] != b->fill) return 0;
    return 1;
}

static void *worker(void *arg) {
    uint64_t seed = 0x9e3779b97f4a7c15ull * (1 + (uintptr_t)arg);
    for (int op = 0; op < OPS; op++) {
        uint64_t r = next_rand(&seed);
        size_t n = (size_t)(r >> 40) % (r & 1 ? 200 : 5000);
        struct block nb = {NULL, n, (unsigned char)(r >> 8)};
        switch ((r >> 4) % 4) {
        case 0:
            nb.p = defalloc(1, n);
            break;
        case 1:
            nb.p = memalloc_aligned((size_t)64 << ((r >> 12) % 4), n);
            break;
        default:
            nb.p = memalloc(n);
            break;
        }
        if (!nb.p) {
            __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
            continue;
        }
        memset(nb.p, nb.fill, n);
        unsigned slot = (unsigned)(r >> 20) % SLOTS;
        pthread_mutex_lock(&table_lock[slot]);
        struct block old = table[slot];
        table[slot] = nb;
        pthread_mutex_unlock(&table_lock[slot]);
        if (!old.p) continue;
        if (!verify(&old)) __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
        if (r & 2) {
            /* resize, then free: realloc moves a checked block */
            size_t m = old.n / 2 + 1;
            unsigned char *q = memresize(old.p, m);
            if (!q || (old.n && q[0] != old.fill))
                __atomic_add_fetch(&bad_blocks, 1, __ATOMIC_RELAXED);
            memfree(q);
        } else {
            memfree(old.p);
        }
    }
    return NULL;
}

static void run_level(size_t level) {
    REQUIRE(memalloc_set_option(MEMALLOC_OPT_CHECK, level) == 0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(i + 10 * level)) == 0);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(__atomic_load_n(&bad_blocks, __ATOMIC_RELAXED) == 0);
    CHECK(memalloc_check() == 0);
    for (unsigned s = 0; s < SLOTS; s++) {
        if (table[s].p) CHECK(verify(&table[s]));
        memfree(table[s].p);
        table[s].p = NULL;
    }
    CHECK(memalloc_check() == 0);
    REQUIRE(memalloc_set_option(MEMALLOC_OPT_CHECK, 0) == 0);
}

TEST(test_level1_threads) {
    run_level(1);
}
TEST(test_level2_threads) {
    run_level(2);
}

int main(void) {
    for (unsigned s = 0; s < SLOTS; s++) pthread_mutex_init(&table_lock[s], NULL);
    RUN(test_level1_threads);
    RUN(test_level2_threads);
    return harness_finish();
}
