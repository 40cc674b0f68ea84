/*
 * tcache.h: per-thread caches of small blocks, and the malloc and free fast
 * paths over them. Owns the size classes and the cached-block layout; the
 * engine (heap.c) never sees a cache, only in-use chunks coming and going.
 *
 * A cached block is, for the engine, an in-use chunk (CINUSE) that belongs
 * to a thread instead of the program. Per size class a thread keeps a
 * singly linked list of them: malloc pops, free pushes, with no lock and no
 * atomic read-modify-write. Lists are refilled from the engine and flushed
 * back to it in batches, under the lock of each block's own arena, so a
 * block freed by another thread simply joins that thread's cache and goes
 * home with its next flush.
 *
 * Size classes are chunk sizes: every multiple of 16 from 32 to 1024
 * (class k = size / 16), then eight classes per power of two up to 64 KiB:
 *   class 64 + 8 * (e - 10) + j, 1 <= j <= 8:  size 2^e + j * 2^(e - 3).
 * A list holds only chunks of exactly its class size.
 *
 *   cached block --> +----------------+
 *    (the payload)   | next           |  next block of the list, or NULL
 *                    | key            |  os_cookie_value ^ its address while
 *                    | ...            |  cached, 0 once handed out: a free of
 *                    +----------------+  a block whose key is set is a double free
 *
 * Invariants (memalloc_check, for the calling thread's cache): every listed
 * block is an in-use chunk of a region, with a valid tag, of its list's
 * class size, with its key set; count(k) + room[k] == cap[k].
 *
 * A thread starts on tc_empty, whose lists are empty and which has no room,
 * so the fast paths need no "is this thread set up?" test: they fail over
 * to the slow paths, which set the thread's own cache up.
 */
#ifndef MEMALLOC_TCACHE_H
#define MEMALLOC_TCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "heap.h"

#define TC_CLASSES     113
#define TC_MAX_CHUNK   ((size_t)65536)
#define TC_MAX_REQUEST (TC_MAX_CHUNK - HEAP_EXTRA)

struct tblock {
    struct tblock *next;
    uintptr_t key;
};

struct tcache {
    struct tblock *head[TC_CLASSES];
    /* room and the counts are read by other threads (statistics), with
     * relaxed atomics; the bytes a cache holds follow from its rooms */
    uint16_t room[TC_CLASSES];     /* pushes left before the list is full */
    uint64_t allocs, frees;        /* served by this cache */
    uint8_t fill[TC_CLASSES];      /* blocks to take at the next refill (grows) */
    uint16_t cap[TC_CLASSES];      /* blocks list k may hold: grows while it overflows */
    size_t cap_bytes;              /* bytes the caps grew by, in all: at most TC_BUDGET */
    uint8_t overflows[TC_CLASSES]; /* odd after an overflow that did not grow the list */
    struct arena *arena;           /* where refills come from */
    struct tcache *next, *prev;    /* the registry of live caches */
};

extern __thread struct tcache *tc_current __attribute__((tls_model("initial-exec")));
extern uint32_t tc_class_size[TC_CLASSES];
extern uint16_t tc_capacity[TC_CLASSES]; /* a list's capacity to start with */

/* Class of chunk size nb, 32 <= nb <= TC_MAX_CHUNK: the smallest class
 * whose size is >= nb. */
static inline unsigned tc_class(size_t nb) {
    if (nb <= 1024) return (unsigned)(nb >> 4);
    unsigned e = 63u - (unsigned)__builtin_clzll(nb - 1); /* 2^e < nb <= 2^(e+1) */
    unsigned j = (unsigned)((nb - 1) >> (e - 3)) & 7u;
    return 64u + (e - 10u) * 8u + j + 1u;
}

static inline uintptr_t tc_key(const void *b) {
    return os_cookie_value ^ (uintptr_t)b;
}

/* Relaxed store of a field that only its thread writes but others read. */
#define TC_SET(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)

/* A cached block's key was overwritten (the program wrote to freed memory). */
__attribute__((noreturn, cold)) void tc_corrupt(const struct tblock *b);

/* Pop a block of class k, or NULL. Budget: about a dozen instructions
 * (malloc() as a whole, class lookup included: about 35, callgrind). */
static inline void *tc_pop(struct tcache *t, unsigned k) {
    struct tblock *b = t->head[k];
    if (__builtin_expect(b == NULL, 0)) return NULL;
    if (__builtin_expect(b->key != tc_key(b), 0)) tc_corrupt(b);
    t->head[k] = b->next;
    b->key = 0;
    TC_SET(t->room[k], (uint16_t)(t->room[k] + 1));
    TC_SET(t->allocs, t->allocs + 1);
    return b;
}

/*
 * Push p if it is an in-use heap chunk of a cached class and its list has
 * room; 0 sends the caller to the slow path, which validates p fully.
 * Checks: 16-aligned, inside one of our regions, a head with CINUSE and
 * not MMAPPED and the right tag, no cache key (else it is cached already:
 * a double free). Budget: about 60 instructions for free() as a whole
 * (callgrind), a quarter of them the tag.
 */
static inline int tc_push(struct tcache *t, void *p) {
    uintptr_t a = (uintptr_t)p;
    if ((a & (ALIGNMENT - 1)) | (a >> ADDRESS_BITS)) return 0;
    if (!__atomic_load_n(&ma_region_map[a >> REGION_SHIFT], __ATOMIC_RELAXED)) return 0;
    struct chunk *c = payload_chunk(p);
    size_t h = head_get(c);
    if ((h & (CINUSE | MMAPPED)) != CINUSE || !head_tag_ok(c, h)) return 0;
    struct tblock *b = p;
    if (b->key == tc_key(b)) return 0;
    size_t size = h & SIZE_MASK;
    unsigned k;
    if (size <= 1024) {
        k = (unsigned)(size >> 4); /* every size is a class here */
    } else {
        if (size > TC_MAX_CHUNK) return 0;
        k = tc_class(size);
        if (tc_class_size[k] != size) return 0;
    }
    unsigned room = t->room[k];
    if (room == 0) return 0;
    b->next = t->head[k];
    b->key = tc_key(b);
    t->head[k] = b;
    TC_SET(t->room[k], (uint16_t)(room - 1));
    TC_SET(t->frees, t->frees + 1);
    return 1;
}

/*
 * Each arena keeps, per class, a stash of cached blocks given back to it:
 * at most TC_STASH_CAP(k), still in use for the heap and with their keys
 * set, so that the next refill of any thread takes them whole, without a
 * merge and a split. Under the arena's lock. Invariant (memalloc_check):
 * every stashed block is an in-use chunk of its arena, of its class's size,
 * with its key; n[k] is the length of list k; bytes their usable sum.
 */
struct stash {
    struct tblock *head[TC_CLASSES];
    uint16_t n[TC_CLASSES];
    size_t bytes;
};
extern struct stash tc_stashes[MAX_ARENAS];
/* A stash holds up to two lists' worth (base capacity) of its class, and
 * an arena's stashes up to TC_STASH_BYTES in all: they take what two
 * threads' full lists give back, so blocks that flow from a freeing
 * thread to an allocating one skip the merge and split (bench: prodcons,
 * threads), while what sits there unused stays bounded. */
#define TC_STASH_CAP(k) (2u * tc_capacity[k])
#define TC_STASH_BYTES  ((size_t)256 << 10)

/* ---- tcache.c: the slow side ---- */

/* Take an arena's lock, then free the blocks other threads left on its
 * remote stack; unlock, then unmap the regions that freeing emptied. */
void arena_lock(struct arena *a);
void arena_unlock(struct arena *a);

/* Set up the class table, the registry and the thread-exit hook. */
void tc_init(void);
/* The calling thread's cache, set up on first use; NULL while the thread
 * cannot have one (during its own set-up, or after its exit began). */
struct tcache *tc_get(void);
/* The calling thread's cache if it has one, without setting one up. */
struct tcache *tc_self(void);
/* The arena the calling thread allocates from. */
struct arena *tc_arena(void);
/* Refill class k of t and pop a block from it; NULL if out of memory. */
void *tc_refill(struct tcache *t, unsigned k);
/* p failed tc_push only because its list is full: push it anyway and send
 * the newest half of the list back to the engine. */
void tc_flush_push(struct tcache *t, unsigned k, void *p);
/* Usable bytes on arena a's stashes (lock held). */
size_t tc_stash_bytes(const struct arena *a);
/* Empty every arena's stashes into the heap (trim). */
void tc_release_stashes(void);
/* Send every block of t back to the engine (thread exit, trim). */
void tc_flush_all(struct tcache *t);
/* A block of class k aligned to align from the first few of list k, or
 * NULL (posix_memalign: blocks freed after an aligned allocation come back
 * to the list and often serve the next aligned request of their class). */
void *tc_pop_aligned(struct tcache *t, unsigned k, size_t align);
/* Give the calling thread's cache back and retire it (MEMALLOC_TCACHE=0). */
void tc_disable_self(void);
/* Bytes t holds: sum over k of (cap[k] - room[k]) * usable size. */
size_t tc_cached_bytes(const struct tcache *t);
/* Sum the counters of every live cache (statistics). */
void tc_sum(uint64_t *allocs, uint64_t *frees, size_t *cached);
/* Fork: the registry lock around fork; the child keeps only its thread's
 * cache and gives the others' blocks back to the engine. */
void tc_fork_prepare(void);
void tc_fork_parent(void);
void tc_fork_child(void);

#endif
