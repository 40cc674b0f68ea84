/*
 * harness.h: a tiny header-only test harness for the unit tests.
 *
 *   TEST(name) { CHECK(x == 1); REQUIRE(p != NULL); ... }
 *   int main(void) { RUN(name); ...; return harness_finish(); }
 *
 * CHECK(cond) counts a failure and prints "file:line: CHECK failed: cond" on
 * stderr; the test goes on. CHECKF(cond, fmt, ...) also prints the values
 * given. REQUIRE(cond) is CHECK that returns from the current (void)
 * function when it fails. A test passes when none of its checks failed;
 * harness_finish() prints "N passed, N failed" (tests) alone on a line and
 * returns 1 if any failed, else 0. The counters are atomic, so checks may
 * run in several threads at once; after fork() a child should report
 * through its exit status instead.
 *
 * The harness itself never allocates (stderr is unbuffered; stdout's
 * buffer is allocated once by stdio at its first use).
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Failed checks are all counted; only the first HARNESS_MAX_REPORTS print. */
#define HARNESS_MAX_REPORTS 100

static unsigned long harness_checks, harness_check_failures;
static unsigned harness_tests_passed, harness_tests_failed;

static inline int harness_fail(const char *file, int line, const char *expr) {
    unsigned long n = __atomic_add_fetch(&harness_check_failures, 1, __ATOMIC_RELAXED);
    if (n <= HARNESS_MAX_REPORTS) {
        fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, expr);
        if (n == HARNESS_MAX_REPORTS)
            fprintf(stderr, "(further failed checks are counted, not printed)\n");
    }
    return 0;
}

/* Evaluates to 1 if cond held, else 0 (after reporting). */
#define CHECK_(cond, expr)                                                                         \
    (__atomic_add_fetch(&harness_checks, 1, __ATOMIC_RELAXED),                                     \
     (cond) ? 1 : harness_fail(__FILE__, __LINE__, expr))

#define CHECK(cond) ((void)CHECK_(cond, #cond))

/* CHECK with a printf-style explanation printed on failure. */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!CHECK_(cond, #cond) &&                                                                \
            __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED) <= HARNESS_MAX_REPORTS) {   \
            fprintf(stderr, "    ");                                                               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

/* CHECK that returns from the enclosing void function on failure. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!CHECK_(cond, #cond)) return;                                                          \
    } while (0)

#define TEST(name) static void name(void)
#define RUN(name)  harness_run(#name, name)

static inline double harness_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void harness_run(const char *name, void (*fn)(void)) {
    const char *only = getenv("HARNESS_ONLY"); /* e.g. "test_a,test_b": run just those */
    if (only && *only && !strstr(only, name)) return;
    unsigned long before = __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED);
    fprintf(stderr, "[ RUN  ] %s\n", name);
    double t0 = harness_now();
    fn();
    double secs = harness_now() - t0;
    unsigned long failed = __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED) - before;
    if (failed == 0) {
        harness_tests_passed++;
        fprintf(stderr, "[   OK ] %s (%.2f s)\n", name, secs);
    } else {
        harness_tests_failed++;
        fprintf(stderr, "[ FAIL ] %s: %lu failed check%s (%.2f s)\n", name, failed,
                failed == 1 ? "" : "s", secs);
    }
}

/* Prints the summary; returns the process exit status. */
static inline int harness_finish(void) {
    fprintf(stderr, "%lu checks, %lu failed\n", harness_checks, harness_check_failures);
    fflush(stderr);
    printf("%u passed, %u failed\n", harness_tests_passed, harness_tests_failed);
    fflush(stdout);
    return harness_tests_failed || harness_check_failures ? 1 : 0;
}

/* ---- test data: a byte pattern that depends on offset and seed ---- */

static inline int aligned(const void *p, size_t a) {
    return ((uintptr_t)p & (a - 1)) == 0;
}
static inline unsigned char pat(size_t i, unsigned seed) {
    return (unsigned char)(seed + i + (i >> 8) * 31u);
}
static inline void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = pat(i, seed);
}
/* Index of the first byte that differs from the pattern, or n. */
static inline size_t first_bad(const void *p, size_t n, unsigned seed) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pat(i, seed)) return i;
    return n;
}
/* Index of the first non-zero byte, or n. */
static inline size_t first_nonzero(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return i;
    return n;
}

/* Resident system pages of [p, p + len), by mincore; (size_t)-1 if it fails. */
static inline size_t resident_pages(const void *p, size_t len) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)p & ~(page - 1),
              end = ((uintptr_t)p + len + page - 1) & ~(page - 1);
    unsigned char vec[4096];
    size_t n = 0;
    for (uintptr_t a = start; a < end; a += 4096 * page) {
        size_t span = end - a < 4096 * page ? end - a : 4096 * page;
        if (mincore((void *)a, span, vec) != 0) return (size_t)-1;
        for (size_t i = 0; i < span / page; i++) n += vec[i] & 1;
    }
    return n;
}

#endif /* HARNESS_H */
