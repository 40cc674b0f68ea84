/*
 * quarantine.h: the check modes' quarantine (quarantine.c): blocks freed
 * by the program wait here, first in first out, before the engine can
 * reuse them, so that a stale pointer to a block hits a block nobody
 * uses (its fill or its protection tells on a write), and a second free
 * finds the block still marked freed. Each thread has a ring of its own,
 * taken without a lock (the ring of a thread that exited is adopted by the
 * next one that needs a ring); all rings together are bounded in bytes by
 * the caller's limit, and each in number by its size. The blocks
 * themselves are the caller's business: this file keeps their addresses.
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

/* Hold block p in the calling thread's ring, then take out the oldest
 * blocks as quarantine_evict does; their number, or -1 if the thread has
 * no ring (no memory for one, or the thread is exiting: p is not held,
 * and the caller frees it at once). max: at least 2. */
int quarantine_push(void *p, size_t bytes, uint32_t free_id, size_t limit, struct quarantined *out,
                    unsigned max);
/* Take the oldest blocks out while the blocks held exceed limit bytes,
 * at most max of them, into out; their number: first from the rings of
 * exited threads, then from the calling thread's, whose newest block
 * stays (a block larger than the limit waits until the next push). */
unsigned quarantine_evict(size_t limit, struct quarantined *out, unsigned max);
/* Take out every block of the calling thread's ring and of exited
 * threads' rings, oldest first, at most max, into out; their number (at
 * exit: the rings of threads still running are left alone). */
unsigned quarantine_drain(struct quarantined *out, unsigned max);
/* The stack that freed p, if p is held; else 0 (for a report: other
 * threads' rings are read as they change). */
uint32_t quarantine_free_stack(const void *p);
/* The block the calling thread put in quarantine last, if its ring holds
 * one: 1 and *q, else 0. */
int quarantine_newest(struct quarantined *q);
/* Bytes held now. */
size_t quarantine_bytes(void);

void quarantine_lock(void);
void quarantine_unlock(void);
void quarantine_fork_child(void);

#endif
