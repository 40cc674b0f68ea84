/*
 * debug.h: the check modes (debug.c), MEMALLOC_CHECK=1 and 2. The entry
 * points (entry.h) hand a call here when a check mode is on; the engine
 * below knows nothing of them.
 *
 * A checked block carries a 16-byte header just before the program's
 * bytes (its size, how it was allocated, its state and the stack that
 * allocated it, under a keyed check word) and canary bytes from its end
 * to the end of the memory under it. Level 1 takes that memory from the
 * engine: an object of a page of the calling thread (whose first bytes
 * make the free fast path decline it: every free of an address in it
 * reaches this file), else a chunk or a mapped block; level 2 from a
 * guard slot (guard.h), so that the block ends at an inaccessible page.
 * A freed block waits in quarantine (quarantine.h): level 1 fills it with
 * a pattern and verifies the pattern when it leaves; level 2 makes its
 * slot inaccessible, so that a use after free faults at once.
 */
#ifndef MEMALLOC_DEBUG_H
#define MEMALLOC_DEBUG_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

/* How a block was allocated, and how a call releases one. */
enum dbg_kind {
    DBG_MALLOC = 1,    /* malloc, calloc, realloc, memalign, ... and free */
    DBG_NEW = 2,       /* operator new and delete */
    DBG_NEW_ARRAY = 3, /* operator new[] and delete[] */
};

/* 1 while a check mode is on, or checked blocks may still be out (a
 * program that turned its check mode off frees them here too). */
static inline int dbg_on(void) {
    return load_relaxed(&ma_check_ever);
}

/* The entry points' work in a check mode. ra: the return address of the
 * program's call (the first frame of the stacks recorded); who: the name
 * of the function the program called, for reports. align: the alignment
 * the program asked for (memalign, aligned new), a power of two, or 0 for
 * malloc's (16, but in level 2 what the block's size needs, 8 at least).
 * size: the size a sized delete gave, or 0. */
void *dbg_alloc(size_t n, size_t align, enum dbg_kind kind, int zero, void *ra);
void *dbg_calloc(size_t n, size_t size, void *ra);
/* MEMALLOC_SAMPLE's block, with no check mode on (align: 16 for malloc's,
 * which a program in production may rely on): a block of level 2 (a
 * guard slot: its overflow faults; freed, it waits in quarantine with its
 * slot closed), or NULL if no slot is to be had (the caller allocates as
 * usual). Its free, realloc and malloc_usable_size come here (the entry
 * points send every address of a guard slot). */
void *dbg_sample(size_t n, size_t align, enum dbg_kind kind, void *ra);
void dbg_free(void *p, enum dbg_kind kind, size_t size, const char *who, void *ra);
void *dbg_realloc(void *p, size_t n, const char *who, void *ra);
size_t dbg_usable_size(const void *p, const char *who, void *ra);

/* For the heap checker (check.c), which walks the engine's blocks with
 * every lock held: if the block of the engine at q (usable bytes) holds a
 * checked block, in use or in quarantine, the first byte of its canaries
 * or free fill that is damaged, else NULL; *p: the checked block. Takes
 * no lock and reports nothing. */
const char *dbg_block_damaged(void *q, size_t usable, const void **p);
/* The same for an object of a page at q, of size bytes (in use, free or
 * never handed out). */
const char *dbg_object_damaged(void *q, size_t size, const void **p);
/* The full report for checked block p found damaged, as found by who;
 * aborts. */
_Noreturn void dbg_report_damaged(const void *p, const char *who);
/* At exit: the blocks in quarantine verified and released, then the leak
 * report (MEMALLOC_CHECK_LEAKS). */
void dbg_exit(void);

#endif
