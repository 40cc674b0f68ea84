/*
 * init.h: initialisation, the bootstrap buffer, and the locks taken all at
 * once. Every entry point initialises lazily (ready()): the first call
 * reads the page size and the cookie, the MEMALLOC_* variables, sets up
 * the size classes, arena 0, the thread-exit hook and the fork handlers.
 * A call that the initialising thread makes while that runs (registering
 * the fork handlers may allocate) is served from a static bootstrap
 * buffer; other threads wait for initialisation to end.
 */
#ifndef MEMALLOC_INIT_H
#define MEMALLOC_INIT_H

#include <stddef.h>

#include "util.h"

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
extern MA_HIDDEN int ma_init_state;

/* 1 once the heap is ready: initialise it now if no call has yet; 0 for
 * a call made by the initialising thread itself while initialisation runs
 * (the caller serves it from the bootstrap buffer). */
int init_slow(void);
static inline int ready(void) {
    if (likely(load_acquire(&ma_init_state) == INIT_DONE)) return 1;
    return init_slow();
}

/* The bootstrap buffer: bump allocation, never reused. */
#define BOOT_SIZE ((size_t)64 << 10)
extern MA_HIDDEN char ma_boot_buf[BOOT_SIZE];
void *boot_alloc(size_t n, size_t align);
static inline int is_boot(const void *p) {
    return (const char *)p >= ma_boot_buf && (const char *)p < ma_boot_buf + BOOT_SIZE;
}
size_t boot_size(const void *p);

/* Where the exit summary goes: a copy of the stderr the process started
 * with (programs close fd 2 in atexit handlers, which run before the
 * library's destructor). */
int init_stats_fd(void);

/* Take every lock of the heap, in the one order (the check modes'
 * quarantine, guard slots and stack depot, the registry of thread caches,
 * the arenas, the mapped blocks): the checker, and fork. */
void lock_world(void);
void unlock_world(void);

#endif
