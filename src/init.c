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
#include "large.h"
#include "options.h"
#include "os.h"
#include "page.h"
#include "sizeclass.h"
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
    tc_registry_lock();
    arenas_lock_all();
    large_lock();
}

void unlock_world(void) {
    large_unlock();
    arenas_unlock_all();
    tc_registry_unlock();
}

/* Fork: the parent holds every lock across the fork, so that the child
 * finds every structure whole; the child sets them up anew, and the pages
 * of the threads it does not have become orphans. */
static void fork_prepare(void) {
    lock_world();
}

static void fork_parent(void) {
    unlock_world();
}

static void fork_child(void) {
    large_fork_child();
    arenas_fork_child();
    tc_fork_child();
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
