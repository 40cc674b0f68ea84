/*
 * harness.h: a tiny header-only test harness for the unit tests.
 *
 *   TEST(name) { CHECK(x == 1); REQUIRE(p != NULL); ... }
 *   int main(void) { RUN(name); ...; return harness_finish(); }
 *
 * CHECK(cond) counts a failure and prints "file:line: CHECK failed: cond" on
 * stderr; the test goes on. CHECKF(cond, fmt, ...) also prints the values
 * given. REQUIRE(cond) is CHECK that returns from the current (void)
 * function when it fails. SKIP(fmt, ...) marks the current test skipped,
 * with a reason, and returns from it: only for what the machine lacks (no
 * transparent huge pages, one CPU), never for what the tests' dependencies
 * should provide. A test passes when none of its checks failed and it did
 * not skip; a test with failed checks fails even if it skipped afterwards.
 * harness_finish() prints "N passed, N failed, N skipped" (tests) alone on
 * a line of stdout and returns 1 if any test failed or any check failed
 * (checks made outside every test count as one failed test, "main"), else
 * 0. The counters are atomic, so checks may run in several threads at
 * once; after fork() a child should report through its exit status
 * instead.
 *
 * Results for scripts/test.sh: when HARNESS_RESULTS names a file, each test
 * appends a line "run<TAB>SUITE<TAB>TEST" as it starts and
 * "pass|fail|skip<TAB>SUITE<TAB>TEST<TAB>REASON" when it ends (O_APPEND, one
 * write(2) per line, so the programs that ctest runs in parallel may share
 * the file). SUITE is $HARNESS_TEST (tests/CMakeLists.txt sets it to the
 * ctest name, since one program may run as several ctest tests) or the
 * program's name. A "run" line with no end line means the program died in
 * that test; test.sh counts it as failed, and also combines these lines
 * with ctest's verdict on the program (a crash or a timeout outside any
 * test is a failure too).
 *
 * The harness itself never allocates (stderr is unbuffered; stdout's
 * buffer is allocated once by stdio at its first use).
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

extern char *program_invocation_short_name; /* glibc's (errno.h with _GNU_SOURCE) */

/* Failed checks are all counted; only the first HARNESS_MAX_REPORTS print. */
#define HARNESS_MAX_REPORTS 100

static unsigned long harness_checks, harness_check_failures;
static unsigned harness_tests_passed, harness_tests_failed, harness_tests_skipped;
/* Failed checks counted against a test (the rest were made outside every test). */
static unsigned long harness_failures_in_tests;
/* The current test skipped (SKIP), and why. */
static int harness_skipped;
static char harness_skip_reason[256];
/* HARNESS_RESULTS was set but could not be written: the program fails. */
static int harness_record_failed;

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

/* Mark the current test skipped, with a printf-style reason, and return
 * from the enclosing void function. */
#define SKIP(...)                                                                                  \
    do {                                                                                           \
        harness_skip(__VA_ARGS__);                                                                 \
        return;                                                                                    \
    } while (0)

#define TEST(name) static void name(void)
#define RUN(name)  harness_run(#name, name)

static inline __attribute__((format(printf, 1, 2))) void harness_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(harness_skip_reason, sizeof harness_skip_reason, fmt, ap);
    va_end(ap);
    harness_skipped = 1;
}

/* Append "status<TAB>suite<TAB>test<TAB>reason" to $HARNESS_RESULTS, if set
 * (tabs and newlines in the reason become spaces). */
static inline void harness_record(const char *status, const char *test, const char *reason) {
    const char *file = getenv("HARNESS_RESULTS");
    if (!file || !*file) return;
    const char *suite = getenv("HARNESS_TEST");
    if (!suite || !*suite) suite = program_invocation_short_name;
    char line[512];
    int n = snprintf(line, sizeof line, "%s\t%s\t%s\t", status, suite, test);
    if (n < 0 || (size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    for (const char *r = reason; r && *r && (size_t)n < sizeof line - 2; r++)
        line[n++] = *r == '\t' || *r == '\n' ? ' ' : *r;
    line[n++] = '\n';
    int saved = errno;
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != (ssize_t)n) {
        fprintf(stderr, "harness: cannot append to HARNESS_RESULTS=%s\n", file);
        harness_record_failed = 1;
    }
    if (fd >= 0) close(fd);
    errno = saved;
}

static inline double harness_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void harness_run(const char *name, void (*fn)(void)) {
    const char *only = getenv("HARNESS_ONLY"); /* e.g. "test_a,test_b": run just those */
    if (only && *only && !strstr(only, name)) return;
    unsigned long before = __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED);
    harness_skipped = 0;
    harness_skip_reason[0] = 0;
    harness_record("run", name, "");
    fprintf(stderr, "[ RUN  ] %s\n", name);
    double t0 = harness_now();
    fn();
    double secs = harness_now() - t0;
    unsigned long failed = __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED) - before;
    harness_failures_in_tests += failed;
    if (failed) {
        char why[64];
        snprintf(why, sizeof why, "%lu failed check%s", failed, failed == 1 ? "" : "s");
        harness_tests_failed++;
        fprintf(stderr, "[ FAIL ] %s: %s (%.2f s)\n", name, why, secs);
        harness_record("fail", name, why);
    } else if (harness_skipped) {
        harness_tests_skipped++;
        fprintf(stderr, "[ SKIP ] %s: %s\n", name, harness_skip_reason);
        harness_record("skip", name, harness_skip_reason);
    } else {
        harness_tests_passed++;
        fprintf(stderr, "[   OK ] %s (%.2f s)\n", name, secs);
        harness_record("pass", name, "");
    }
}

/* Prints the summary; returns the process exit status. Checks that failed
 * outside every test (in main, say) count as one failed test, "main". */
static inline int harness_finish(void) {
    unsigned long all = __atomic_load_n(&harness_check_failures, __ATOMIC_RELAXED);
    if (all > harness_failures_in_tests) {
        char why[80];
        snprintf(why, sizeof why, "%lu failed check%s outside the tests",
                 all - harness_failures_in_tests, all - harness_failures_in_tests == 1 ? "" : "s");
        harness_tests_failed++;
        fprintf(stderr, "[ FAIL ] main: %s\n", why);
        harness_record("fail", "main", why);
    }
    fprintf(stderr, "%lu checks, %lu failed\n", harness_checks, all);
    fflush(stderr);
    printf("%u passed, %u failed, %u skipped\n", harness_tests_passed, harness_tests_failed,
           harness_tests_skipped);
    fflush(stdout);
    return harness_tests_failed || all || harness_record_failed ? 1 : 0;
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
