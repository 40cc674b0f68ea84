/*
 * stack.h: call stacks for the check modes' reports, interned in a depot
 * (stack.c). A stack is named by a 32-bit id (0: none), so that a block
 * carries its allocation stack in four bytes however deep it is. Each
 * stack also counts the bytes and blocks allocated there and not freed
 * yet: the leak report at exit is a walk of the depot.
 *
 * Depth 1 is the return address of the entry point the program called,
 * which costs nothing to take. Deeper stacks come from libunwind, which
 * reads the call-frame information of each module (Debian's binaries have
 * no frame pointers): a walk of tens of nanoseconds per frame. An
 * allocation that libunwind makes while this thread walks its stack is
 * served without a stack (stack_busy), so that nothing recurses.
 */
#ifndef MEMALLOC_STACK_H
#define MEMALLOC_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * The stack of the current call, depth frames at most, interned: its
 * first frame is ra, the return address of the program's call into the
 * library (frames inside the library are left out). 0 if the depot is
 * full or out of memory.
 */
uint32_t stack_capture(void *ra, unsigned depth);
/* One-frame stacks, by far the most common, are looked up first in the
 * thread's last ids by return address, direct-mapped (a stack's id never
 * changes once interned): stack_capture_fast finds them there without a
 * call. */
#define STACK_RECENT 16
struct stack_recent {
    void *ra;
    uint32_t id;
};
extern MA_HIDDEN __thread struct stack_recent stack_recent[STACK_RECENT]
    __attribute__((tls_model("initial-exec")));
static inline struct stack_recent *stack_recent_of(const void *ra) {
    return &stack_recent[((uintptr_t)ra >> 2 ^ (uintptr_t)ra >> 7) & (STACK_RECENT - 1)];
}
static inline uint32_t stack_capture_fast(void *ra, unsigned depth) {
    const struct stack_recent *e = stack_recent_of(ra);
    if (likely(depth <= 1 && e->ra == ra && e->id)) return e->id;
    return stack_capture(ra, depth);
}
/* The same, by libgcc's unwinder (glibc's backtrace) when a trace is on:
 * slower per frame than libunwind, but without libunwind's cache of each
 * thread's frames, which it maps and fills for every thread it walks: for
 * a thread that makes few samples, that costs more than the walks. */
uint32_t stack_capture_light(void *ra, unsigned depth);
/* The frames of stack id (never changed once interned): their number,
 * and *frames pointing at them; 0 for id 0. */
unsigned stack_frames(uint32_t id, void *const **frames);
/* Ids are below this (the depot's bytes / 8). */
#define STACK_ID_LIMIT ((uint32_t)1 << 27)
/* 1 while this thread is inside stack_capture. */
int stack_busy(void);

/* A block of bytes allocated at stack id (count 1), or freed (-1). */
void stack_account(uint32_t id, int64_t bytes, int64_t count);

/* Write the frames of stack id to fd, one per line:
 * "    #N 0xADDR in FUNC (/path/module+0xOFFSET)" (" in FUNC" when the
 * module's symbols name it). Nothing allocates. */
void stack_print(int fd, uint32_t id);

/* The leak report: stacks with bytes not freed, largest first (the
 * first max of them), then the totals. Returns the number of bytes not
 * freed. */
size_t stack_report_leaks(int fd, unsigned max);

/* The depot's lock, for fork (init.c's lock_world). */
void stack_lock(void);
void stack_unlock(void);
void stack_fork_child(void);

#endif
