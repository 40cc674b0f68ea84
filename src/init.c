/*
 * init.c: lazy initialisation, the bootstrap buffer, lock_world, and the
 * fork handlers (see init.h).
 */
#define _GNU_SOURCE
#include "init.h"

#include <errno.h>
#include <pthread.h>

#include "arena.h"
#include "chunk.h"
#include "guard.h"
#include "large.h"
#include "options.h"
#include "os.h"
#include "page.h"
#include "purger.h"
#include "quarantine.h"
#include "sizeclass.h"
#include "stack.h"
#include "tcache.h"

int ma_init_state;
static int stats_fd = 2;

/*
 * Requests that the initialising thread makes while initialisation runs
 * are served from this buffer. Each block has a 16-byte header holding
 * its size. Only the initialising thread comes here (others wait): no
 * atomics needed.
 */
MA_LARGE_BSS _Alignas(64) char ma_boot_buf[BOOT_SIZE];
static size_t boot_used;

void *boot_alloc(size_t n, size_t align) {
    if (align < ALIGNMENT) align = ALIGNMENT;
    size_t start =
        align_up((uintptr_t)ma_boot_buf + boot_used + CHUNK_HDR, align) - (uintptr_t)ma_boot_buf;
    if (n > BOOT_SIZE || start > BOOT_SIZE - n) {
        errno = ENOMEM;
        return NULL;
    }
    boot_used = align_up(start + n, ALIGNMENT);
    *(size_t *)(ma_boot_buf + start - CHUNK_HDR) = n;
    return ma_boot_buf + start;
}

size_t boot_size(const void *p) {
    return *(const size_t *)((const char *)p - CHUNK_HDR);
}

int init_stats_fd(void) {
    return stats_fd;
}

void lock_world(void) {
    quarantine_lock();
    guard_lock();
    stack_lock();
    tc_registry_lock();
    arenas_lock_all();
    large_lock();
}

void unlock_world(void) {
    large_unlock();
    arenas_unlock_all();
    tc_registry_unlock();
    stack_unlock();
    guard_unlock();
    quarantine_unlock();
}

/*
 * Fork. A child gets one thread; it must find every structure whole, so
 * the parent holds every lock across the fork, unless it has had a
 * single thread only: then no other thread can be inside the heap, and
 * the caller may be a signal handler that interrupted this very thread
 * inside it (holding a lock it would wait for forever), so nothing is
 * taken, as glibc's own fork does. The locks are taken after stdio's list
 * lock, the order glibc's fork takes its own malloc locks in: a thread
 * may hold a stream's lock and wait for ours (getline's realloc) while
 * another holds the list lock and waits for that stream (fflush(NULL));
 * fork takes the list lock again after these handlers (it is recursive),
 * and in the child resets it itself.
 */
static int fork_locked; /* the prepare handler took the locks */

static void fork_prepare(void) {
    fork_locked = !os_single_threaded();
    if (!fork_locked) return;
    os_stdio_lock();
    lock_world();
}

static void fork_parent(void) {
    if (!fork_locked) return;
    unlock_world();
    os_stdio_unlock();
}

/* In the child: the locks anew (glibc has reset stdio's), and the pages
 * of the threads it does not have become orphans. */
static void fork_child(void) {
    purger_fork_child();
    if (!fork_locked) return;
    large_fork_child();
    arenas_fork_child();
    tc_fork_child();
    stack_fork_child();
    guard_fork_child();
    quarantine_fork_child();
}

/* The thread that initialises, named by the address of its tc_current
 * (a thread-local variable: each thread's is at an address of its own). */
static struct tcache **init_owner;

/*
 * Initialise, or wait for another thread to. Re-entry by the initialising
 * thread itself (the only one that can find its own name in init_owner)
 * returns 0.
 */
__attribute__((noinline, cold)) int init_slow(void) {
    int expected = INIT_NONE;
    if (!cas_acquire_strong(&ma_init_state, &expected, INIT_RUNNING)) {
        if (expected == INIT_DONE) return 1;
        if (load_relaxed(&init_owner) == &tc_current) return 0;
        while (load_acquire(&ma_init_state) != INIT_DONE) os_yield();
        return 1;
    }
    store_relaxed(&init_owner, &tc_current);
    os_init();
    options_init();
    if (opt_get(OPT_STATS)) {
        int fd = os_dup_fd(2);
        if (fd >= 0) stats_fd = fd;
    }
    classes_init();
    pages_init();
    arenas_init(os_ncpu());
    tc_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child); /* may allocate: the buffer */
    store_relaxed(&init_owner, NULL);
    store_release(&ma_init_state, INIT_DONE);
    return 1;
}
