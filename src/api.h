/*
 * api.h: the engine's entry points as the preload shim needs them: the
 * same operations as memalloc.h, with the name of the libc function the
 * program called, for error messages. malloc and free are inline here: a
 * pop from or a push to a page the thread owns, else the out-of-line slow
 * path.
 */
#ifndef MEMALLOC_API_H
#define MEMALLOC_API_H

#include <stddef.h>

#include "tcache.h"

/* Initialise the heap now if no call has yet. */
void ma_init(void);
void *ma_malloc_slow(size_t n);
void ma_free_slow(void *p, const char *who);
void *ma_calloc(size_t n, size_t size);
void *ma_realloc(void *p, size_t n, const char *who);
/* align: a power of two (callers check); anything up to MAX_REQUEST. */
void *ma_aligned(size_t align, size_t n);
size_t ma_usable_size(const void *p, const char *who);
int ma_trim(size_t pad);
/* Print the summary if MEMALLOC_STATS asked for it (called at exit). */
void ma_exit_report(void);

static inline void *ma_malloc(size_t n) {
    if (__builtin_expect(n <= TC_MAX_REQUEST, 1)) {
        void *p = tc_pop(tc_current, tc_class(n));
        if (__builtin_expect(p != NULL, 1)) return p;
    }
    return ma_malloc_slow(n);
}

/* free of p, an object in use of page g owned by another thread (or by
 * none): tc_push_remote, else the slow path. */
void ma_free_foreign(struct tcache *t, struct tcache *owner, struct spage *g, void *p,
                     const char *who);

/* Every call below is a tail call: the fast path needs no stack frame. */
static inline void ma_free(void *p, const char *who) {
    struct tcache *t = tc_current;
    struct spage *g = tc_object_page(p);
    if (__builtin_expect(g == NULL, 0)) {
        ma_free_slow(p, who);
        return;
    }
    struct tcache *owner = __atomic_load_n(&g->owner, __ATOMIC_RELAXED);
    if (__builtin_expect(owner != t, 0)) {
        ma_free_foreign(t, owner, g, p, who);
        return;
    }
    tc_push_own(t, g, p);
}

#endif
