/*
 * os.c: the platform layer (see os.h). Linux and glibc: mmap, munmap,
 * mremap, madvise, write, sched_getaffinity, the clock, the auxiliary
 * vector, and two things of glibc's own (its single-thread flag, its
 * stdio list lock). Each call saves and restores errno so that the
 * allocator's callers never see it change.
 */
#define _GNU_SOURCE
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

extern char **environ;
/* glibc's: 1 while the process has had one thread only (since 2.32) */
extern char __libc_single_threaded __attribute__((weak));
/* glibc's stdio list lock (exported since 2.2.5; recursive) */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));

static size_t page_size = 4096;
uint64_t os_cookie_value;

void os_init(void) {
    int saved = errno;
    unsigned long ps = getauxval(AT_PAGESZ);
    if (ps >= 4096 && (ps & (ps - 1)) == 0) page_size = ps;
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    uint64_t c = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&os_cookie_value;
    if (rnd) {
        uint64_t r;
        memcpy(&r, rnd + 8, sizeof r); /* glibc uses the first 8 bytes for the stack guard */
        c ^= r;
    }
    os_cookie_value = c ? c : 1;
    errno = saved;
}

size_t os_page_size(void) {
    return page_size;
}

void *os_map(size_t size) {
    int saved = errno;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

/* Map size bytes at exactly hint if nothing is there, else NULL. */
static void *map_exactly(char *hint, size_t size) {
    int saved = errno;
    char *q = mmap(hint, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    errno = saved;
    if (q == hint) return q;
    if (q != MAP_FAILED) os_unmap(q, size); /* a kernel that ignored the flag */
    return NULL;
}

/*
 * An aligned mapping without reserving twice the size where possible
 * (address-space limits such as ulimit -v count reservations):
 *  1. map size bytes; often the result is aligned already;
 *  2. else ask for the aligned addresses just below and above it, without
 *     replacing anything there (MAP_FIXED_NOREPLACE);
 *  3. else map size + align and unmap the unaligned ends.
 */
void *os_map_aligned(size_t size, size_t align) {
    if (size + align < size) return NULL;
    char *p = os_map(size);
    if (!p) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) return p;
    os_unmap(p, size);
    /* mmap hands out addresses top-down: the aligned spot below p is
     * likely free, the one above it less so */
    char *below = (char *)((uintptr_t)p & ~(uintptr_t)(align - 1));
    char *q = map_exactly(below, size);
    if (!q) q = map_exactly(below + align, size);
    if (q) return q;
    p = os_map(size + align);
    if (!p) return NULL;
    char *start = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
    if (start > p) os_unmap(p, (size_t)(start - p));
    char *end = p + size + align;
    if (end > start + size) os_unmap(start + size, (size_t)(end - (start + size)));
    return start;
}

int os_unmap(void *p, size_t size) {
    int saved = errno;
    int rc = munmap(p, size) == 0 ? 0 : errno;
    errno = saved;
    return rc;
}

void *os_remap(void *p, size_t old_size, size_t new_size) {
    int saved = errno;
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

int os_purge(void *p, size_t size) {
    int saved = errno;
    int rc = madvise(p, size, MADV_DONTNEED) == 0 ? 0 : errno;
    errno = saved;
    return rc;
}

void os_advise_huge(void *p, size_t size) {
    int saved = errno;
    madvise(p, size, MADV_HUGEPAGE);
    errno = saved;
}

/* Through syscall(), which sits next to mmap in the C library, rather than
 * sched_getaffinity: the program faults in no other stretch of the C
 * library's code for it. */
unsigned os_ncpu(void) {
    int saved = errno;
    uint64_t mask[16] = {0};
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    errno = saved;
    unsigned n = 0;
    for (long i = 0; i < bytes / 8; i++) n += (unsigned)__builtin_popcountll(mask[i]);
    return n > 0 ? n : 1;
}

static uint64_t clock_fixed; /* os_clock_set's time; 0: the real clock */

uint64_t os_now_ms(void) {
    uint64_t fixed = load_relaxed(&clock_fixed);
    if (fixed) return fixed;
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) return 1;
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

void os_clock_set(uint64_t ms) {
    store_relaxed(&clock_fixed, ms);
}

/* A loop of its own rather than strlen and strncmp, as fcntl, sched_yield
 * and write go through syscall: the library imports as few functions as
 * it can, so that its dynamic symbols and relocations fit in one page
 * (docs/design.md). */
const char *os_getenv(const char *name) {
    char **env = environ;
    if (!env) return NULL;
    for (; *env; env++) {
        const char *e = *env, *n = name;
        while (*n && *e == *n) e++, n++;
        if (!*n && *e == '=') return e + 1;
    }
    return NULL;
}

void os_write(int fd, const char *buf, size_t len) {
    int saved = errno;
    while (len > 0) {
        long w = syscall(SYS_write, fd, buf, len); /* write() is a cancellation point */
        if (w < 0) {
            if (errno == EINTR) continue;
            break;
        }
        buf += w;
        len -= (size_t)w;
    }
    errno = saved;
}

int os_dup_fd(int fd) {
    int saved = errno;
    int copy = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 100);
    errno = saved;
    return copy;
}

void os_yield(void) {
    int saved = errno;
    syscall(SYS_sched_yield);
    errno = saved;
}

_Noreturn void os_abort(void) {
    abort();
}

int os_single_threaded(void) {
    return &__libc_single_threaded != NULL && __libc_single_threaded;
}

void os_stdio_lock(void) {
    if (_IO_list_lock) _IO_list_lock();
}

void os_stdio_unlock(void) {
    if (_IO_list_unlock) _IO_list_unlock();
}
