/*
 * check.h: the heap checker (check.c). memalloc_check (memalloc.h) walks
 * every invariant of the engine and, in a check mode, verifies every
 * checked block's canaries and every freed one's fill.
 */
#ifndef MEMALLOC_CHECK_H
#define MEMALLOC_CHECK_H

/* At exit in a check mode: the same walk; the first damaged block found
 * is reported in full (its stacks) and the process aborts. */
void check_at_exit(void);

#endif
