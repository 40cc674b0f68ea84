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
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
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

#ifdef MEMALLOC_FAULT_INJECT
/* Fault injection (os.h; a test build only): each call that maps, remaps,
 * purges, reserves or protects memory counts itself, and the one that
 * os_fault_after chose fails as its system call would. */
static uint64_t fault_calls, fault_at; /* calls counted; the one to refuse (0: none) */
static const char *fault_refused;      /* the name of the call refused */

/* Count a call of what; 1 if it is the one to refuse. */
static int fault_here(const char *what) {
    if (add_relaxed(&fault_calls, 1) != load_relaxed(&fault_at)) return 0;
    store_relaxed(&fault_refused, what);
    return 1;
}

void os_fault_after(uint64_t n) {
    store_relaxed(&fault_refused, NULL);
    store_relaxed(&fault_at, n ? load_relaxed(&fault_calls) + n : 0);
}

uint64_t os_fault_calls(void) {
    return load_relaxed(&fault_calls);
}

const char *os_fault_refused(void) {
    return load_relaxed(&fault_refused);
}

#define FAULT(what, failure)                                                                       \
    do {                                                                                           \
        if (fault_here(what)) return failure;                                                      \
    } while (0)
#else
#define FAULT(what, failure) ((void)0)
#endif

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
    FAULT("os_map", NULL);
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
    FAULT("os_remap", NULL);
    int saved = errno;
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    return q == MAP_FAILED ? NULL : q;
}

void *os_reserve(size_t size) {
    FAULT("os_reserve", NULL);
    int saved = errno;
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    errno = saved;
    return p == MAP_FAILED ? NULL : p;
}

int os_protect(void *p, size_t size, int access) {
    FAULT("os_protect", ENOMEM);
    int saved = errno;
    int rc = mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0 ? 0 : errno;
    errno = saved;
    return rc;
}

void *os_map_file(const char *path, size_t *size) {
    FAULT("os_map_file", NULL);
    int saved = errno;
    void *p = NULL;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (syscall(SYS_fstat, fd, &st) == 0 && st.st_size > 0) {
            p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED)
                p = NULL;
            else
                *size = (size_t)st.st_size;
        }
        syscall(SYS_close, fd);
    }
    errno = saved;
    return p;
}

long os_readlink(const char *path, char *buf, size_t cap) {
    int saved = errno;
    long n = syscall(SYS_readlinkat, AT_FDCWD, path, buf, cap);
    errno = saved;
    return n;
}

size_t os_max_mappings(void) {
    int saved = errno;
    size_t n = 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        char buf[32];
        long r = syscall(SYS_read, fd, buf, sizeof buf);
        for (long i = 0; i < r && buf[i] >= '0' && buf[i] <= '9'; i++)
            n = n * 10 + (size_t)(buf[i] - '0');
        syscall(SYS_close, fd);
    }
    errno = saved;
    return n ? n : 65530;
}

/* ---- faults ---- */

static os_fault_fn fault_fn;
static struct sigaction fault_old[2]; /* SIGSEGV, SIGBUS: what was there before */

static void on_fault(int sig, siginfo_t *info, void *uctx) {
    int is_write = 0;
    void *pc = NULL;
#if defined(__x86_64__)
    /* the page-fault error code: bit 1 is set for a write */
    const ucontext_t *uc = uctx;
    is_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    pc = (void *)uc->uc_mcontext.gregs[REG_RIP];
#endif
    if (fault_fn && fault_fn(info->si_addr, is_write, pc)) {
        /* die by this signal: the default action, when the faulting
         * instruction runs again on return */
        signal(sig, SIG_DFL);
        return;
    }
    struct sigaction *old = &fault_old[sig == SIGBUS];
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
}

void os_catch_faults(os_fault_fn fn) {
    int saved = errno;
    fault_fn = fn;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &fault_old[0]);
    sigaction(SIGBUS, &sa, &fault_old[1]);
    errno = saved;
}

static uint64_t purged_bytes; /* given back by os_purge so far */

int os_purge(void *p, size_t size) {
    FAULT("os_purge", ENOMEM);
    int saved = errno;
    int rc = madvise(p, size, MADV_DONTNEED) == 0 ? 0 : errno;
    errno = saved;
    if (rc == 0) add_relaxed(&purged_bytes, size);
    return rc;
}

uint64_t os_purged_bytes(void) {
    return load_relaxed(&purged_bytes);
}

void os_advise_huge(void *p, size_t size) {
    int saved = errno;
    madvise(p, size, MADV_HUGEPAGE);
    errno = saved;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
static int no_populate; /* the kernel does not know MADV_POPULATE_WRITE */

void os_populate(void *p, size_t size) {
    if (load_relaxed(&no_populate)) return;
    int saved = errno;
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0 && errno == EINVAL)
        store_relaxed(&no_populate, 1);
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

int os_cpu_avx2(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0; /* the kernel saves the SSE and AVX state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b & bit_AVX2) != 0;
#else
    return 0;
#endif
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

int os_clock_fixed(void) {
    return load_relaxed(&clock_fixed) != 0;
}

void os_sleep_ms(unsigned ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    int saved = errno;
    nanosleep(&ts, NULL);
    errno = saved;
}

/* A loop of its own rather than strlen and strncmp, as fcntl, sched_yield
 * and write go through syscall: the library imports as few functions as
 * it can, so that its dynamic symbols and relocations stay small
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

int os_open_log(const char *path, int how) {
    int saved = errno;
    int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
    flags |= how == OS_LOG_NEW ? O_EXCL : how == OS_LOG_TRUNCATE ? O_TRUNC : 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, flags, 0644);
    if (fd >= 0) {
        int high = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 100);
        if (high >= 0) {
            syscall(SYS_close, fd);
            fd = high;
        }
    }
    errno = saved;
    return fd;
}

long os_read_file(const char *path, char *buf, size_t cap) {
    int saved = errno;
    long got = -1;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        got = 0;
        while ((size_t)got < cap) {
            long r = syscall(SYS_read, fd, buf + got, cap - (size_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += r;
        }
        syscall(SYS_close, fd);
    }
    errno = saved;
    return got;
}

void os_close(int fd) {
    int saved = errno;
    syscall(SYS_close, fd);
    errno = saved;
}

size_t os_rss_bytes(void) {
    char buf[128];
    long n = os_read_file("/proc/self/statm", buf, sizeof buf - 1);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *c = buf;
    while (*c && *c != ' ') c++; /* the first field is the size; the second the resident set */
    size_t pages = 0;
    for (c++; *c >= '0' && *c <= '9'; c++) pages = pages * 10 + (size_t)(*c - '0');
    return pages * page_size;
}

size_t os_peak_rss_bytes(void) {
    int saved = errno;
    struct rusage ru;
    size_t peak = syscall(SYS_getrusage, RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss << 10 : 0;
    errno = saved;
    return peak;
}

int os_gettid(void) {
    return (int)syscall(SYS_gettid);
}
int os_getpid(void) {
    return (int)syscall(SYS_getpid);
}
int os_getppid(void) {
    return (int)syscall(SYS_getppid);
}

uint64_t os_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t os_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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
