/*
 * quarantine.h: the check modes' quarantine (quarantine.c): blocks freed
 * by the program wait here, first in first out, before the engine can
 * reuse them, so that a stale pointer to a block hits a block nobody
 * uses (its fill or its protection tells on a write), and a second free
 * finds the block still marked freed. Bounded in bytes by the caller's
 * limit and in number by the ring's size. The blocks themselves are the
 * caller's business: this file keeps their addresses.
 */
#ifndef MEMALLOC_QUARANTINE_H
#define MEMALLOC_QUARANTINE_H

#include <stddef.h>
#include <stdint.h>

struct quarantined {
    void *p;          /* the block, as the program had it */
    size_t bytes;     /* what it holds of memory (counted against the limit) */
    uint32_t free_id; /* the stack that freed it (stack.h) */
    uint32_t pad;
};

/* Hold block p, then take out the oldest blocks as quarantine_evict
 * does, under one take of the lock; their number, or -1 if there is no
 * room for the ring (p is not held: the caller frees it at once). */
int quarantine_push(void *p, size_t bytes, uint32_t free_id, size_t limit, struct quarantined *out,
                    unsigned max);
/* Take the oldest blocks out while the blocks held exceed limit bytes or
 * the ring is full, at most max of them, into out; their number. The
 * newest block stays (a block larger than the limit waits until the next
 * push). */
unsigned quarantine_evict(size_t limit, struct quarantined *out, unsigned max);
/* Take out every block, oldest first, at most max, into out; their number. */
unsigned quarantine_drain(struct quarantined *out, unsigned max);
/* The stack that freed p, if p is held; else 0. */
uint32_t quarantine_free_stack(const void *p);
/* Bytes held now. */
size_t quarantine_bytes(void);

void quarantine_lock(void);
void quarantine_unlock(void);
void quarantine_fork_child(void);

#endif
