/*
 * orphan.h: orphans, the pages of threads that exited (or gave their
 * pages up), kept by the arena of their region, a ring per size class,
 * for the next thread that needs a page of that class to adopt. A page
 * with objects in use waits for them (frees into an orphan come here,
 * under the arena's lock, so that it goes back with its last object);
 * idle ones are kept while the bytes they have touched stay within
 * ORPHAN_KEEP per arena, the rest go back to the heap. An idle orphan
 * that waits for the purge delay gives its objects' memory back and
 * starts afresh. Every function runs with the arena's lock held (the
 * lock of the heap the pages belong to).
 */
#ifndef MEMALLOC_ORPHAN_H
#define MEMALLOC_ORPHAN_H

#include <stddef.h>
#include <stdint.h>

#include "page.h"

#define ORPHAN_KEEP ((size_t)1 << 20)

struct orphans {
    struct page *ring[NCLASSES];
    size_t kept; /* bytes the idle ones count against ORPHAN_KEEP (sum of their kept) */
};

/* Page g leaves its owner (thread exit, fork, MEMALLOC_TCACHE=0): it
 * becomes an orphan, or goes back to the heap if it is idle and the
 * budget has no room for it. */
void orphan_add(struct orphans *o, struct page *g);
/* A page of class k for t, adopted: one with a free object or never-used
 * room, or NULL; orphans met without either become t's too, onto *full. */
struct page *orphan_adopt(struct orphans *o, unsigned k, struct tcache *t, struct page **full);
/* Free b, an object in use of g, into g if g is still an orphan; 0 if a
 * thread adopted g meanwhile (the caller frees b to its new owner). */
int orphan_free(struct orphans *o, struct page *g, struct tblock *b);
/* Give back the memory of the idle orphans idle for delay ms or more at
 * time now; 1 if a younger one was left for a later pass. */
int orphans_purge(struct orphans *o, uint64_t now, uint64_t delay);
/* Every idle orphan goes back to the heap (trim). */
void orphans_trim(struct orphans *o);
/* Bytes of the orphans' chunks not in use by the program (statistics). */
size_t orphans_free_bytes(const struct orphans *o);

#endif
