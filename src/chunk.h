/*
 * chunk.h: the block ("chunk") layout, shared by the chunk engine (heap.c,
 * bins.c, region.c), the mapped blocks (large.c), the pages (page.c) and
 * the checker. Header only: layout, flags, tags and size arithmetic.
 *
 * A chunk in a heap region. Addresses grow downwards; every chunk address is
 * a multiple of 16 and every chunk size a multiple of 16, at least 32:
 *
 *  chunk --> +-----------------------------------------------------------+
 *            | prev_foot: size of the previous chunk, valid only while    |
 *            |   that chunk is free (else: the last 8 bytes of its data)  |
 *            +-----------------------------------------------------------+
 *            | head: tag:16 | size:44 | PURGED | MMAPPED | CINUSE | PINUSE  |
 *  payload-> +-----------------------------------------------------------+  16-aligned
 *            | in use: the caller's bytes        | free: next link        |
 *            |                                   | free: prev link        |
 *            |   ...                             |   ...                  |
 *  next  --> +-----------------------------------------------------------+
 *            | prev_foot: in use: caller's bytes | free: our size (footer)|
 *            | head of the next chunk (PINUSE says whether we are in use) |
 *
 * usable size: heap chunk = size - 8 (it owns the next chunk's prev_foot);
 *              mapped chunk = size - 16 (payload to the end of the mapping).
 *
 * Invariants (checked by check.c):
 *   size % 16 == 0, size >= MIN_CHUNK; chunks tile each region exactly,
 *   from region_first() to the fencepost (a size-0, in-use head at the end);
 *   CINUSE(c) == PINUSE(next(c)); a free chunk's footer == its size;
 *   no two neighbours are both free; every free chunk is on the list of
 *   bin_index(size), whose bitmap bit is set iff the list is non-empty;
 *   tag == chunk_tag(c, size) for every chunk head (catches foreign and
 *   interior pointers and headers overwritten by the program).
 * Mapped chunk: prev_foot = offset of the chunk from the mapping start.
 *
 * Heads are read and written with relaxed atomics: the validation of a
 * pointer handed back (heap_chunk_ok) reads its chunk's head without a
 * lock while the engine, under a lock, may flip PINUSE in that same head
 * (its predecessor was carved or freed). Only lock holders write heads,
 * so a load then a store loses nothing; on x86-64 both are plain moves.
 */
#ifndef MEMALLOC_CHUNK_H
#define MEMALLOC_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"
#include "util.h"

#define PINUSE    ((size_t)1) /* previous chunk is in use (or there is none) */
#define CINUSE    ((size_t)2) /* this chunk is in use */
#define MMAPPED   ((size_t)4) /* this chunk has a mapping of its own */
#define PURGED    ((size_t)8) /* free chunk whose whole inner pages were purged since it formed */
#define FLAG_BITS ((size_t)15)
#define SIZE_MASK ((size_t)0x0000fffffffffff0ull)
#define TAG_SHIFT 48

#define ALIGNMENT  16
#define CHUNK_HDR  16 /* from chunk to payload */
#define MIN_CHUNK  32 /* header + two free-list links */
#define HEAP_EXTRA 8  /* request + 8, rounded to 16: the size of a heap chunk */
/* Largest request served at all: keeps every size computation below
 * PTRDIFF_MAX with room for headers and alignment. */
#define MAX_REQUEST ((size_t)PTRDIFF_MAX - ((size_t)1 << 24))

struct chunk {
    size_t prev_foot;
    size_t head;
};

/* Free chunks keep their list links in the first 16 bytes of the payload. */
struct freelink {
    struct freelink *next, *prev;
};

static inline size_t head_get(const struct chunk *c) {
    return load_relaxed(&c->head);
}
static inline void head_put(struct chunk *c, size_t head) {
    store_relaxed(&c->head, head);
}
/* Set or clear flag bits of a head (lock held: the only writer). */
static inline void head_or(struct chunk *c, size_t bits) {
    head_put(c, head_get(c) | bits);
}
static inline void head_clear(struct chunk *c, size_t bits) {
    head_put(c, head_get(c) & ~bits);
}

static inline size_t chunk_size(const struct chunk *c) {
    return head_get(c) & SIZE_MASK;
}
static inline int cinuse(const struct chunk *c) {
    return (head_get(c) & CINUSE) != 0;
}
static inline int pinuse(const struct chunk *c) {
    return (head_get(c) & PINUSE) != 0;
}
static inline int is_mmapped(const struct chunk *c) {
    return (head_get(c) & MMAPPED) != 0;
}

static inline void *chunk_payload(const struct chunk *c) {
    return (char *)c + CHUNK_HDR;
}
static inline struct chunk *payload_chunk(const void *p) {
    return (struct chunk *)((char *)p - CHUNK_HDR);
}
static inline struct chunk *chunk_at(const void *c, size_t off) {
    return (struct chunk *)((char *)c + off);
}
static inline struct chunk *chunk_next(const struct chunk *c) {
    return chunk_at(c, chunk_size(c));
}
static inline struct freelink *chunk_link(const struct chunk *c) {
    return (struct freelink *)chunk_payload(c);
}
static inline struct chunk *link_chunk(const struct freelink *l) {
    return (struct chunk *)((char *)l - CHUNK_HDR);
}

/* 16-bit check of a head: address, size and the per-process cookie. */
static inline size_t chunk_tag(const struct chunk *c, size_t size) {
    uint64_t h = ((uint64_t)(uintptr_t)c ^ ((uint64_t)size << 17) ^ os_cookie_value);
    h *= 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 48);
}
/* Does head (read once by the caller) carry the right tag for chunk c? */
static inline int head_tag_ok(const struct chunk *c, size_t head) {
    return (head >> TAG_SHIFT) == chunk_tag(c, head & SIZE_MASK);
}
static inline int tag_ok(const struct chunk *c) {
    return head_tag_ok(c, head_get(c));
}
/* Write a head: size, flags and the matching tag. */
static inline void set_head(struct chunk *c, size_t size, size_t flags) {
    head_put(c, (chunk_tag(c, size) << TAG_SHIFT) | size | flags);
}
/* Record a free chunk's size in the next chunk's prev_foot. */
static inline void set_foot(struct chunk *c, size_t size) {
    chunk_at(c, size)->prev_foot = size;
}

/* Chunk size for a request of n bytes (n <= MAX_REQUEST). */
static inline size_t request_size(size_t n) {
    size_t s = (n + HEAP_EXTRA + ALIGNMENT - 1) & ~(size_t)(ALIGNMENT - 1);
    return s < MIN_CHUNK ? MIN_CHUNK : s;
}
static inline size_t usable_size(const struct chunk *c) {
    return chunk_size(c) - (is_mmapped(c) ? CHUNK_HDR : HEAP_EXTRA);
}

#endif
