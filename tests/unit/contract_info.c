/*
 * contract_info.c: malloc_info(3) (engine + shim linked in): options other
 * than 0 answer EINVAL as glibc 2.36's does, writing nothing; and while
 * other threads allocate and free, every answer is whole and its figures
 * add up (each <heap>'s free bytes within its system bytes, the totals
 * the sums of the heaps'). The XML's shape against glibc's, and figures
 * that move with a known pattern: tests/integration/stats.bats.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>

#include "harness.h"

TEST(test_malloc_info_options_einval) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    REQUIRE(m != NULL);
    errno = 1234;
    int rc = malloc_info(1, m);
    CHECKF(rc == EINVAL, "malloc_info(1) returned %d", rc);
    CHECKF(errno == 1234, "errno %d", errno);
    rc = malloc_info(-1, m);
    CHECKF(rc == EINVAL, "malloc_info(-1) returned %d", rc);
    REQUIRE(fclose(m) == 0);
    CHECKF(len == 0, "%zu bytes written", len);
    free(text);
}

/* Figures of one <heap> or of the totals. */
struct figures {
    size_t fast, rest, current, max, aspace, mprotect;
};

static size_t attr(const char *line, const char *name) {
    const char *p = strstr(line, name);
    return p ? strtoull(p + strlen(name), NULL, 10) : (size_t)-1;
}

/* Check one answer; 0 if it is whole and adds up. */
static int check_answer(const char *text) {
    int bad = 0;
    CHECKF(strncmp(text, "<malloc version=\"1\">\n", 21) == 0, "starts: %.40s", text);
    size_t n = strlen(text);
    CHECKF(n >= 10 && strcmp(text + n - 10, "</malloc>\n") == 0, "ends: %s", text + n - 20);
    struct figures heap = {0}, sum = {0}, total = {0};
    int in_heap = 0, heaps = 0;
    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        struct figures *f = in_heap ? &heap : &total;
        if (strncmp(line, "<heap nr=", 9) == 0) {
            CHECK(!in_heap);
            CHECKF(attr(line, "nr=\"") == (size_t)heaps, "heap nr: %.20s", line);
            memset(&heap, 0, sizeof heap);
            in_heap = 1;
        } else if (strncmp(line, "</heap>", 7) == 0) {
            CHECK(in_heap);
            if (heap.fast + heap.rest > heap.current || heap.current > heap.max ||
                heap.mprotect > heap.aspace)
                bad++;
            sum.fast += heap.fast;
            sum.rest += heap.rest;
            sum.current += heap.current;
            sum.max += heap.max;
            sum.aspace += heap.aspace;
            sum.mprotect += heap.mprotect;
            in_heap = 0;
            heaps++;
        } else if (strncmp(line, "<total type=\"fast\"", 18) == 0) {
            f->fast = attr(line, "size=\"");
        } else if (strncmp(line, "<total type=\"rest\"", 18) == 0) {
            f->rest = attr(line, "size=\"");
        } else if (strncmp(line, "<system type=\"current\"", 22) == 0) {
            f->current = attr(line, "size=\"");
        } else if (strncmp(line, "<system type=\"max\"", 18) == 0) {
            f->max = attr(line, "size=\"");
        } else if (strncmp(line, "<aspace type=\"total\"", 20) == 0) {
            f->aspace = attr(line, "size=\"");
        } else if (strncmp(line, "<aspace type=\"mprotect\"", 23) == 0) {
            f->mprotect = attr(line, "size=\"");
        }
        if (!strchr(line, '\n')) break;
    }
    CHECK(!in_heap);
    CHECKF(heaps >= 1, "%d heaps", heaps);
    CHECKF(bad == 0, "%d heaps whose figures do not add up", bad);
    CHECKF(memcmp(&sum, &total, sizeof sum) == 0,
           "totals fast %zu rest %zu current %zu max %zu aspace %zu mprotect %zu; heaps' sums "
           "%zu %zu %zu %zu %zu %zu",
           total.fast, total.rest, total.current, total.max, total.aspace, total.mprotect, sum.fast,
           sum.rest, sum.current, sum.max, sum.aspace, sum.mprotect);
    return bad || heaps < 1 || memcmp(&sum, &total, sizeof sum) != 0;
}

#define THREADS 4
#define SLOTS   512
static int stop;
static unsigned long ops; /* the threads' calls so far */

static void *churn(void *arg) {
    void *slot[SLOTS] = {0};
    uint64_t r = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t i = r % SLOTS, size = 16 + (r >> 20) % 4000;
        if (r % 97 == 0) size = 200 << 10; /* now and then a mapped block */
        free(slot[i]);
        slot[i] = malloc(size);
        if (slot[i]) memset(slot[i], 1, size < 64 ? size : 64);
        __atomic_fetch_add(&ops, 1, __ATOMIC_RELAXED);
    }
    for (size_t i = 0; i < SLOTS; i++) free(slot[i]);
    return NULL;
}

TEST(test_malloc_info_while_threads_allocate) {
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, churn, (void *)(i + 1)) == 0);
    /* the threads are under way, their caches and arenas set up */
    while (__atomic_load_n(&ops, __ATOMIC_RELAXED) < 20000) sched_yield();
    int failed = 0;
    for (int round = 0; round < 2000 && !failed; round++) {
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        REQUIRE(m != NULL);
        CHECK(malloc_info(0, m) == 0);
        REQUIRE(fclose(m) == 0);
        failed = check_answer(text);
        free(text);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECKF(__atomic_load_n(&ops, __ATOMIC_RELAXED) > 20000, "the threads made %lu calls", ops);
}

int main(void) {
    RUN(test_malloc_info_options_einval);
    RUN(test_malloc_info_while_threads_allocate);
    return harness_finish();
}
