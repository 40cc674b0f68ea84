/*
 * os.h: the platform layer, the lowest of the engine. The only code that
 * maps, unmaps, remaps or purges memory, reads the environment or the
 * auxiliary vector, writes messages, aborts, or touches the C library's
 * own state (its thread count, stdio's list lock). Every function keeps
 * errno as it found it and reports failure through its return value.
 * Nothing here allocates, and nothing here calls the rest of the engine.
 */
#ifndef MEMALLOC_OS_H
#define MEMALLOC_OS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Page size of the system (read once; valid before os_init too: 4096 until then). */
size_t os_page_size(void);
/* Read the page size and the random cookie from the auxiliary vector. */
void os_init(void);
/* 64 random bits from the kernel's AT_RANDOM bytes (constant per process
 * once os_init has run). A variable, for the fast paths' inline checks. */
extern MA_HIDDEN uint64_t os_cookie_value;

/* Map size bytes of fresh, zeroed, read-write memory. NULL on failure. */
void *os_map(size_t size);
/* As os_map, but the result is aligned to align (a power of two >= page). */
void *os_map_aligned(size_t size, size_t align);
/* Unmap [p, p+size); 0 or an error number. */
int os_unmap(void *p, size_t size);
/* Resize a mapping, moving it if needed. NULL on failure (mapping intact). */
void *os_remap(void *p, size_t old_size, size_t new_size);
/* Give the pages of [p, p+size) back; they read as zero afterwards. 0 or errno. */
int os_purge(void *p, size_t size);
/* Bytes given back by os_purge so far (the process's). */
uint64_t os_purged_bytes(void);
/* Ask for transparent huge pages for [p, p+size) (a hint: where the system
 * does not honour it, nothing changes). */
void os_advise_huge(void *p, size_t size);
/* Fault in [p, p+size) (whole OS pages of a read-write mapping) for
 * writing, in one system call rather than a fault per OS page (a hint:
 * where the system cannot, the pages fault in when first written). */
void os_populate(void *p, size_t size);

/* Reserve size bytes of address space, inaccessible until os_protect
 * opens parts of it. NULL on failure. */
void *os_reserve(size_t size);
/* Make [p, p+size) (whole OS pages) read-write (access 1) or
 * inaccessible (access 0). 0 or an error number. */
int os_protect(void *p, size_t size, int access);
/* Map the file at path read-only; its size in *size. NULL on failure. */
void *os_map_file(const char *path, size_t *size);
/* readlink(2) into buf (not terminated); the length, or -1. */
long os_readlink(const char *path, char *buf, size_t cap);
/* The most mappings the kernel allows the process (vm.max_map_count). */
size_t os_max_mappings(void);

/* A handler for faults (SIGSEGV, SIGBUS): installed for both, on the
 * thread's alternate stack when it has one; it is told the address, the
 * access, and the faulting instruction. It returns 1 if it reported
 * the fault (the process then dies by the signal, the default action),
 * 0 if the fault is not its business (the handler that was installed
 * before runs, or the default action). */
typedef int (*os_fault_fn)(void *addr, int is_write, void *pc);
void os_catch_faults(os_fault_fn fn);

/* Number of CPUs this process may run on (at least 1). */
unsigned os_ncpu(void);
/* 1 if the processor runs AVX2 instructions and the kernel saves their
 * registers (x86-64; elsewhere 0). */
int os_cpu_avx2(void);
/* A monotonic clock in milliseconds (coarse: a few ms of resolution),
 * never 0. */
uint64_t os_now_ms(void);
/* Tests: from now on os_now_ms returns ms (a clock the test moves
 * itself, so that what depends on delays is deterministic); 0: the real
 * clock again. */
void os_clock_set(uint64_t ms);
/* Is the clock a test's (os_clock_set)? */
int os_clock_fixed(void);
/* Sleep ms milliseconds (less if a signal comes). */
void os_sleep_ms(unsigned ms);

#ifdef MEMALLOC_FAULT_INJECT
/* Fault injection, in a test build only (cmake -DMEMALLOC_FAULT_INJECT=ON;
 * tests/faults). The calls that map, remap, purge, reserve or protect
 * memory count themselves: os_map (os_map_aligned through the os_map
 * calls it makes), os_remap, os_purge, os_reserve, os_protect and
 * os_map_file; not os_advise_huge nor os_populate, hints whose refusal
 * changes nothing, nor os_unmap. The nth counted call from now fails as its system call
 * would (NULL, or ENOMEM; errno kept), once; n == 0: none fails.
 * os_fault_calls: the calls counted so far; os_fault_refused: the name of
 * the call refused since os_fault_after, or NULL. */
void os_fault_after(uint64_t n);
uint64_t os_fault_calls(void);
const char *os_fault_refused(void);
#endif

/* Value of environment variable name, from environ, or NULL. */
const char *os_getenv(const char *name);
/* Write all of buf to fd, retrying on EINTR; errors are ignored. */
void os_write(int fd, const char *buf, size_t len);
/* Open path for writing at its end, close-on-exec and numbered 100 or
 * above where it can be (out of the way of programs that reuse low
 * numbers): created only if it does not exist (OS_LOG_NEW), created or
 * truncated (OS_LOG_TRUNCATE), or created or kept (OS_LOG_APPEND). The fd,
 * or -1. */
enum { OS_LOG_NEW, OS_LOG_TRUNCATE, OS_LOG_APPEND };
int os_open_log(const char *path, int how);
/* Read up to cap bytes of the file at path into buf; the bytes read, or
 * -1 if it cannot be opened. */
long os_read_file(const char *path, char *buf, size_t cap);
void os_close(int fd);
/* The process's resident set now (/proc/self/statm) and at its highest
 * (getrusage), in bytes; 0 where unknown. */
size_t os_rss_bytes(void);
size_t os_peak_rss_bytes(void);
int os_gettid(void);
int os_getpid(void);
int os_getppid(void);
/* Nanoseconds: a monotonic clock (exact, unlike os_now_ms), and the time
 * since the epoch. */
uint64_t os_now_ns(void);
uint64_t os_real_ns(void);
/* A close-on-exec copy of fd numbered 100 or above, or -1. */
int os_dup_fd(int fd);
/* Raise SIGABRT; never returns. */
_Noreturn void os_abort(void);
/* Let other threads run (a wait for another thread's initialisation). */
void os_yield(void);

/* Whether the process has had one thread only so far (the C library's
 * __libc_single_threaded, which its fork reads too). */
int os_single_threaded(void);
/* Take and release the C library's lock of its list of streams (stdio),
 * the lock its fork takes after the fork handlers ran; nothing where the
 * C library has none. */
void os_stdio_lock(void);
void os_stdio_unlock(void);

#endif
