/*
 * cxx.c: the C++ allocation operators (new, new[], delete, delete[], and
 * their sized, aligned and nothrow forms), under their Itanium ABI names,
 * so that a C++ program's blocks come from the engine through the same
 * entry points as malloc's, and a check mode knows which operator
 * allocated each block: a block from new[] released by delete or by free,
 * or a sized delete whose size is not the block's, is reported.
 *
 * In default mode new is malloc's fast path and delete is free's. A
 * failed new does what libstdc++'s does: it calls the new-handler while
 * there is one and tries again, else throws std::bad_alloc (the nothrow
 * forms return NULL instead). The two libstdc++ functions this needs are
 * weak references: a C program, which has no libstdc++, does not load it
 * because of this file (and has no caller of these operators). One
 * difference remains: a new-handler that throws from a nothrow new
 * propagates its exception, where libstdc++'s nothrow new returns NULL.
 *
 * Built with unwind tables: an exception thrown here (or by the
 * new-handler) unwinds through these frames.
 */
#define _GNU_SOURCE
#include <stddef.h>

#include "entry.h"
#include "msg.h"
#include "os.h"

#define EXPORT __attribute__((visibility("default")))

/* The operators' prototypes (C++ declares them in <new>). */
void *_Znwm(size_t n);
void *_Znam(size_t n);
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt);
void *_ZnamRKSt9nothrow_t(size_t n, const void *nt);
void *_ZnwmSt11align_val_t(size_t n, size_t align);
void *_ZnamSt11align_val_t(size_t n, size_t align);
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt);
void _ZdlPv(void *p);
void _ZdaPv(void *p);
void _ZdlPvm(void *p, size_t size);
void _ZdaPvm(void *p, size_t size);
void _ZdlPvRKSt9nothrow_t(void *p, const void *nt);
void _ZdaPvRKSt9nothrow_t(void *p, const void *nt);
void _ZdlPvSt11align_val_t(void *p, size_t align);
void _ZdaPvSt11align_val_t(void *p, size_t align);
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt);

typedef void (*new_handler)(void);
extern new_handler _ZSt15get_new_handlerv(void) __attribute__((weak)); /* std::get_new_handler */
extern void _ZSt17__throw_bad_allocv(void)
    __attribute__((weak, noreturn)); /* std::__throw_bad_alloc */

/* new failed: the new-handler's turn; 0 if there is none (nothrow: return
 * NULL), else 1 to try again. Throws std::bad_alloc for the throwing forms. */
static __attribute__((cold, noinline)) int out_of_memory(int nothrow) {
    new_handler h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (h) {
        h();
        return 1;
    }
    if (nothrow) return 0;
    if (_ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: operator new: out of memory, and no C++ library to throw "
                "std::bad_alloc");
    msg_emit(&m);
    os_abort();
}

/* The new operators when the fast path missed, reached by a tail call
 * (ENTRY_RA is the program's return address): the block, or the
 * new-handler's turn, again and again. */
static __attribute__((noinline)) void *new_slow(size_t n, enum dbg_kind kind, size_t align,
                                                int nothrow) {
    void *ra = ENTRY_RA();
    if (align & (align - 1)) { /* not a power of two: no such block */
        if (!nothrow) out_of_memory(0);
        return NULL;
    }
    for (;;) {
        void *p = entry_new(n, kind, align, ra);
        if (p) return p;
        if (!out_of_memory(nothrow)) return NULL;
    }
}

/* new(size_t) */
EXPORT void *_Znwm(size_t n) {
    void *p = ma_malloc_fast(n);
    return likely(p != NULL) ? p : new_slow(n, DBG_NEW, 0, 0);
}
/* new[](size_t) */
EXPORT void *_Znam(size_t n) {
    void *p = ma_malloc_fast(n);
    return likely(p != NULL) ? p : new_slow(n, DBG_NEW_ARRAY, 0, 0);
}
/* new(size_t, nothrow_t const&) */
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) {
    (void)nt;
    void *p = ma_malloc_fast(n);
    return likely(p != NULL) ? p : new_slow(n, DBG_NEW, 0, 1);
}
/* new[](size_t, nothrow_t const&) */
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) {
    (void)nt;
    void *p = ma_malloc_fast(n);
    return likely(p != NULL) ? p : new_slow(n, DBG_NEW_ARRAY, 0, 1);
}
/* new(size_t, align_val_t) */
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t align) {
    return new_slow(n, DBG_NEW, align, 0);
}
/* new[](size_t, align_val_t) */
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t align) {
    return new_slow(n, DBG_NEW_ARRAY, align, 0);
}
/* new(size_t, align_val_t, nothrow_t const&) */
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt) {
    (void)nt;
    return new_slow(n, DBG_NEW, align, 1);
}
/* new[](size_t, align_val_t, nothrow_t const&) */
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t align, const void *nt) {
    (void)nt;
    return new_slow(n, DBG_NEW_ARRAY, align, 1);
}

/* delete(void*) */
EXPORT void _ZdlPv(void *p) {
    entry_delete(p, DBG_NEW, 0);
}
/* delete[](void*) */
EXPORT void _ZdaPv(void *p) {
    entry_delete(p, DBG_NEW_ARRAY, 0);
}
/* delete(void*, size_t) */
EXPORT void _ZdlPvm(void *p, size_t size) {
    entry_delete(p, DBG_NEW, size);
}
/* delete[](void*, size_t) */
EXPORT void _ZdaPvm(void *p, size_t size) {
    entry_delete(p, DBG_NEW_ARRAY, size);
}
/* delete(void*, nothrow_t const&) */
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) {
    (void)nt;
    entry_delete(p, DBG_NEW, 0);
}
/* delete[](void*, nothrow_t const&) */
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) {
    (void)nt;
    entry_delete(p, DBG_NEW_ARRAY, 0);
}
/* delete(void*, align_val_t) */
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align) {
    (void)align;
    entry_delete(p, DBG_NEW, 0);
}
/* delete[](void*, align_val_t) */
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align) {
    (void)align;
    entry_delete(p, DBG_NEW_ARRAY, 0);
}
/* delete(void*, size_t, align_val_t) */
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align) {
    (void)align;
    entry_delete(p, DBG_NEW, size);
}
/* delete[](void*, size_t, align_val_t) */
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) {
    (void)align;
    entry_delete(p, DBG_NEW_ARRAY, size);
}
/* delete(void*, align_val_t, nothrow_t const&) */
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt) {
    (void)align;
    (void)nt;
    entry_delete(p, DBG_NEW, 0);
}
/* delete[](void*, align_val_t, nothrow_t const&) */
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt) {
    (void)align;
    (void)nt;
    entry_delete(p, DBG_NEW_ARRAY, 0);
}
