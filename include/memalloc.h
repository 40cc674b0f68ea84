/*
 * memalloc: a free-list heap for Linux.
 *
 * The engine's own API. The libc names (malloc, free, ...) live in
 * libmemalloc.so's preload shim and are thin wrappers over these.
 * Every pointer returned is 16-byte aligned. Functions that fail return
 * NULL (or an error number) and set errno to ENOMEM or EINVAL; on success
 * errno is left as it was.
 */
#ifndef MEMALLOC_H
#define MEMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MEMALLOC_API __attribute__((visibility("default")))
#else
#define MEMALLOC_API
#endif

/* Allocate size bytes (size 0 gives a unique minimum block). */
MEMALLOC_API void *memalloc(size_t size);
/* Allocate n * elem_size zeroed bytes; NULL with ENOMEM on overflow. */
MEMALLOC_API void *defalloc(size_t n, size_t elem_size);
/* Release a block; NULL is ignored; a foreign or freed pointer aborts. */
MEMALLOC_API void memfree(void *ptr);
/* Resize in place when possible, else move. NULL ptr acts as memalloc;
 * new_size 0 frees ptr and returns NULL. On failure ptr is untouched. */
MEMALLOC_API void *memresize(void *ptr, size_t new_size);
/* Copy size bytes of src into a new block. */
MEMALLOC_API void *memdup(const void *src, size_t size);
/* Fill size bytes with (unsigned char)c, a word at a time; returns ptr. */
MEMALLOC_API void *memoryset(void *ptr, int c, size_t size);

/* Allocate size bytes aligned to alignment (any power of two); NULL with
 * EINVAL if alignment is not a power of two, ENOMEM if too large. */
MEMALLOC_API void *memalloc_aligned(size_t alignment, size_t size);
/* Bytes usable at ptr (>= the request, fixed for the block's life); 0 for NULL. */
MEMALLOC_API size_t memalloc_usable_size(const void *ptr);
/* Give free memory back to the OS, keeping pad bytes at each heap top.
 * Returns 1 if anything was released. */
MEMALLOC_API int memalloc_trim(size_t pad);

/* Walk every region, bin and large block and verify every invariant.
 * Returns the number of violations (0: heap is sound); each is reported
 * on stderr. */
MEMALLOC_API int memalloc_check(void);

struct memalloc_stats {
    uint64_t allocs;         /* successful allocations (all entry points) */
    uint64_t frees;          /* blocks released */
    size_t in_use;           /* bytes in live blocks (usable sizes) */
    size_t peak_in_use;      /* highest in_use + thread_cached + arena_cached seen */
    size_t heap_mapped;      /* bytes of heap regions mapped */
    size_t heap_free;        /* bytes in free blocks of the regions */
    size_t heap_free_blocks; /* number of free blocks */
    size_t heap_in_use;      /* bytes of in-use blocks in the regions */
    size_t top_free;         /* free bytes at the tops of the regions */
    size_t regions;          /* heap regions mapped now */
    size_t mmapped_blocks;   /* large blocks with their own mapping, now */
    size_t mmapped_bytes;    /* bytes in those mappings */
    size_t peak_mmapped_blocks;
    size_t peak_mmapped_bytes;
    uint64_t total_mmapped_blocks; /* large blocks mapped over the run */
    size_t thread_cached;          /* free bytes in the size-class pages threads own */
    size_t arena_cached;           /* free bytes in pages of exited threads, for adoption */
    size_t mmap_cached_blocks;     /* freed mappings kept for reuse */
    size_t mmap_cached_bytes;
    size_t arenas; /* arenas in use (threads are spread over them) */
};
MEMALLOC_API void memalloc_get_stats(struct memalloc_stats *out);
/* Write a short summary to fd (malloc_stats and MEMALLOC_STATS use it). */
MEMALLOC_API void memalloc_print_stats(int fd);

/* Tunables (also read from the environment, see README). */
enum memalloc_option {
    MEMALLOC_OPT_MMAP_THRESHOLD = 1,     /* bytes: requests >= this get their own mapping */
    MEMALLOC_OPT_TRIM_THRESHOLD = 2,     /* bytes of free heap top kept before purging */
    MEMALLOC_OPT_STATS = 3,              /* 1: print the summary at exit; 2: the table */
    MEMALLOC_OPT_TCACHE = 4,             /* 1: thread-owned size-class pages (default);
                                            0: none. Setting 0 gives the calling thread's
                                            pages up; other threads keep theirs until they
                                            exit */
    MEMALLOC_OPT_PURGE_DELAY = 5,        /* ms before freed pages go back to the OS (0: at once) */
    MEMALLOC_OPT_HUGEPAGE_THRESHOLD = 6, /* bytes: fresh mapped blocks (malloc, realloc) of
                                            at least this ask for transparent huge pages;
                                            0: never */
    MEMALLOC_OPT_CHECK = 7,              /* check mode: 0 off, 1 canaries and quarantine,
                                            2 guard pages (README: check modes) */
    MEMALLOC_OPT_CHECK_STACK = 8,        /* frames recorded per allocation and free (1..64) */
    MEMALLOC_OPT_CHECK_QUARANTINE = 9,   /* bytes of freed blocks held back; 0: none */
    MEMALLOC_OPT_CHECK_LEAKS = 10,       /* 1: list the blocks not freed at exit */
    MEMALLOC_OPT_SAMPLE = 11,            /* about one malloc or new in this many gets a
                                            guard page, with no check mode (0: none) */
    MEMALLOC_OPT_BACKGROUND = 12,        /* 1 (default): a thread gives back the memory of a
                                            large heap that went idle; 0: none */
};
/* Set a tunable; returns 0, or EINVAL for an unknown option or bad value,
 * or EBUSY for MEMALLOC_OPT_CHECK on while MEMALLOC_TRACE is on. */
MEMALLOC_API int memalloc_set_option(enum memalloc_option opt, size_t value);
MEMALLOC_API size_t memalloc_get_option(enum memalloc_option opt);

#ifdef __cplusplus
}
#endif
#endif /* MEMALLOC_H */
