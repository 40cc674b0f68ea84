/*
 * purger.h: the background purge. A program that frees much of a large
 * heap and then makes no call (a server between bursts, a tool waiting
 * for input) would keep that memory resident: the purge passes run at the
 * arenas' locks and at the calls for mapped blocks. Once a program's peak
 * in use has reached PURGER_START, a thread of the library's own, started
 * from a slow path with no lock held (not in a check mode), runs the
 * passes the program left waiting and ages the cache of freed mappings.
 * MEMALLOC_BACKGROUND=0 (or the option set to 0 before it starts) keeps
 * it from starting; set to 0 later, it stops working.
 */
#ifndef MEMALLOC_PURGER_H
#define MEMALLOC_PURGER_H

#include <stddef.h>

#include "util.h"

#define PURGER_START ((size_t)64 << 20)

/* 0: not started (it may be); else started, or never to be. */
extern MA_HIDDEN int purger_state;

void purger_start(void);

/* From a slow path that holds no lock: start the thread if the program
 * has become large enough. A load and a compare once it has. */
static inline void purger_poke(void) {
    if (likely(load_relaxed(&purger_state) != 0)) return;
    purger_start();
}

/* fork's child: the thread is the parent's; the child may start its own. */
void purger_fork_child(void);

#endif
