/*
 * guard.h: level 2's slots (guard.c). A slot is a run of whole OS pages
 * of its own for one block, next to a guard page that is never
 * accessible, so that an access past the block's end (or, in the "under"
 * layout, before its start) faults at the instruction that makes it. The
 * slots live in one stretch of address space reserved at the first
 * allocation; a freed slot is made inaccessible as a whole and reused for
 * a block of the same number of pages, so that after a program's first
 * allocations a slot costs no system call, unless it was closed
 * (guard_close: made inaccessible while its freed block waits in
 * quarantine), which costs one mprotect then and one when it is reused.
 *
 * Each accessible slot is a mapping of its own to the kernel, whose count
 * per process is bounded (vm.max_map_count): guard_alloc fails, and the
 * caller falls back to a block with canaries, once half of that bound is
 * in use.
 */
#ifndef MEMALLOC_GUARD_H
#define MEMALLOC_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

extern MA_HIDDEN char *guard_pool; /* NULL until the first slot */
#define GUARD_POOL_BYTES ((size_t)1 << 36)

/* Whether a lies in the slots' stretch (a slot's pages, or a guard). */
static inline int guard_owns(const void *a) {
    char *base = load_acquire(&guard_pool);
    return base && (const char *)a >= base && (const char *)a < base + GUARD_POOL_BYTES;
}

/*
 * The first byte of an accessible slot of at least bytes bytes (a
 * multiple of the OS page size: *size), its guard page after it, or
 * before it if under (under is fixed by the first call). NULL if the
 * stretch is full, the mapping budget spent, or the system says no.
 */
void *guard_alloc(size_t bytes, int under, size_t *size);
/* Make the slot starting at data inaccessible (a freed block waiting in
 * quarantine): 0, or -1 if the system refused (the slot stays open). */
int guard_close(void *data);
/* Give the slot starting at data back for reuse, as it is (closed or open). */
void guard_release(void *data);
/* The slot whose pages or guard hold a: its first byte and size, and
 * whether it is open (handed out and not freed); NULL if a is in no slot
 * carved so far. */
char *guard_slot_of(const void *a, size_t *size, int *open);
/* The slot carved last (the highest), as guard_slot_of; NULL if none. */
char *guard_last_slot(size_t *size, int *open);
/* For a report: make a closed slot readable (access 1), or not again. */
void guard_peek(void *data, int access);

void guard_lock(void);
void guard_unlock(void);
void guard_fork_child(void);

#endif
