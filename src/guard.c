/*
 * guard.c: level 2's slots (see guard.h).
 *
 * The stretch is reserved inaccessible. A slot is a run of OS pages
 * carved from its bottom once, and then kept for good: its data pages
 * and its guard page. slot_map holds, for each OS page of the stretch
 * carved so far, the index of the first page of the slot it belongs to
 * (plus one) and the slot's data pages; freed slots wait on a list per
 * number of pages (an exact fit: a freed slot is reused only for the
 * same size, so that the map never changes once written).
 *
 * The lists of slots up to FREE_LISTS-1 pages are lock-free stacks (a
 * slot's index and a tag bumped at every change, in one word, so that a
 * slot taken and given back meanwhile fails the swap), and the count of
 * open slots an atomic: threads that allocate and free blocks of one
 * size (a pipeline's producer and consumer) meet on no lock. The lock
 * guards the set-up, the carving of new slots and the one list of
 * larger slots. A slot on no list belongs to one thread at a time (its
 * block's, then the quarantine's): that thread alone changes its open
 * mark.
 */
#include "guard.h"

#include <pthread.h>

#include "counters.h"
#include "os.h"

#define POOL_PAGES_MAX (GUARD_POOL_BYTES / 4096)
#define OPEN_BIT       ((uint64_t)1 << 31)
#define SLOT_PAGES(v)  ((size_t)((uint32_t)(v) & ~(uint32_t)OPEN_BIT))
#define FREE_LISTS     4096 /* lists for slots of 1 .. FREE_LISTS-1 pages; larger: one list */

char *guard_pool;
static uint64_t *slot_map;            /* per page: (first page + 1) << 32 | data pages;
                                         on the first page, OPEN_BIT while open */
static uint32_t *slot_next;           /* per slot's first page: the next free slot's (+1) */
static uint64_t free_top[FREE_LISTS]; /* tag << 32 | first free slot (+1); [0]: larger */
static size_t pool_pages;             /* pages of the stretch (page size known at the first call) */
static size_t carved;                 /* pages carved so far */
static size_t open_slots, budget;     /* accessible slots (each a mapping); the most allowed */
static int layout_under;
static unsigned setup_wait; /* calls to let go by before the set-up is tried again */
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;

static int setup(int under) {
    size_t ps = os_page_size();
    pool_pages = GUARD_POOL_BYTES / ps;
    uint64_t *map = os_map(pool_pages * sizeof *slot_map);
    uint32_t *next = os_map(pool_pages * sizeof *slot_next);
    char *pool = os_reserve(GUARD_POOL_BYTES);
    if (!map || !next || !pool) {
        /* nothing kept: the next call tries again from nothing */
        if (map) os_unmap(map, pool_pages * sizeof *slot_map);
        if (next) os_unmap(next, pool_pages * sizeof *slot_next);
        if (pool) os_unmap(pool, GUARD_POOL_BYTES);
        return -1;
    }
    slot_map = map;
    slot_next = next;
    /* each accessible slot is one mapping, or two where it splits one */
    budget = os_max_mappings() / 4;
    layout_under = under;
    store_release(&guard_pool, pool);
    return 0;
}

/* The page index of the data pages of the slot starting at page s. */
static size_t data_page(size_t s) {
    return layout_under ? s + 1 : s;
}

#define TOP_TAG ((uint64_t)1 << 32)

/* A free slot of np pages (its first page + 1), or 0. */
static size_t take_free(size_t np) {
    if (np < FREE_LISTS) {
        uint64_t top = load_acquire(&free_top[np]);
        for (;;) {
            uint32_t s1 = (uint32_t)top;
            if (!s1) return 0;
            uint64_t next =
                (top & ~(uint64_t)UINT32_MAX) + TOP_TAG + load_relaxed(&slot_next[s1 - 1]);
            if (cas_acquire_strong(&free_top[np], &top, next)) return s1;
        }
    }
    /* the one list of larger slots: the first of the size, under the lock */
    uint32_t prev = 0;
    for (uint32_t s1 = (uint32_t)free_top[0]; s1; prev = s1, s1 = slot_next[s1 - 1]) {
        size_t s = s1 - 1;
        if (SLOT_PAGES(slot_map[s]) != np) continue;
        if (prev)
            slot_next[prev - 1] = slot_next[s];
        else
            free_top[0] = slot_next[s];
        return s1;
    }
    return 0;
}

/* Slot s (first page), of np pages, onto its free list (the lock held
 * for the list of larger slots). */
static void put_free(size_t s, size_t np) {
    if (np >= FREE_LISTS) {
        slot_next[s] = (uint32_t)free_top[0];
        free_top[0] = s + 1;
        return;
    }
    uint64_t top = load_relaxed(&free_top[np]);
    do {
        store_relaxed(&slot_next[s], (uint32_t)top);
    } while (!cas_release(&free_top[np], &top,
                          (top & ~(uint64_t)UINT32_MAX) + TOP_TAG + (uint64_t)(s + 1)));
}

/* Slot s of np pages back on its free list. */
static void guard_release_slot(size_t s, size_t np) {
    if (np < FREE_LISTS) {
        put_free(s, np);
        return;
    }
    pthread_mutex_lock(&g_mutex);
    put_free(s, np);
    pthread_mutex_unlock(&g_mutex);
}

void *guard_alloc(size_t bytes, int under, size_t *size) {
    size_t ps = os_page_size();
    size_t np = (bytes + ps - 1) / ps;
    if (np == 0) np = 1;
    if (!load_acquire(&guard_pool)) {
        pthread_mutex_lock(&g_mutex);
        /* a failed set-up (no address space: a limit, a tool) is not
         * tried again at every call: the caller serves level 1 meanwhile */
        int ready = guard_pool != NULL;
        if (!ready && setup_wait)
            setup_wait--;
        else if (!ready && setup(under) != 0)
            setup_wait = 4096;
        else
            ready = 1;
        pthread_mutex_unlock(&g_mutex);
        if (!ready) return NULL;
    }
    if (np >= pool_pages) return NULL;
    size_t s1 = 0;
    if (np < FREE_LISTS) s1 = take_free(np);
    if (!s1) {
        pthread_mutex_lock(&g_mutex);
        if (np >= FREE_LISTS) s1 = take_free(np);
        if (!s1 && load_relaxed(&open_slots) < budget && carved + np + 1 <= pool_pages &&
            carved + 1 <= UINT32_MAX) {
            size_t s = carved;
            for (size_t i = 0; i <= np; i++)
                store_relaxed(&slot_map[s + i], (uint64_t)(s + 1) << 32 | np);
            store_relaxed(&carved, carved + np + 1);
            s1 = s + 1;
        }
        pthread_mutex_unlock(&g_mutex);
        if (!s1) return NULL;
    }
    char *data = guard_pool + data_page(s1 - 1) * ps;
    uint64_t first = load_relaxed(&slot_map[s1 - 1]);
    if (!(first & OPEN_BIT)) {
        /* counted before it is opened: the budget holds whatever races */
        if (add_relaxed(&open_slots, 1) > budget || os_protect(data, np * ps, 1) != 0) {
            sub_relaxed(&open_slots, 1);
            guard_release_slot(s1 - 1, np); /* back on its list, inaccessible as it was */
            return NULL;
        }
        store_relaxed(&slot_map[s1 - 1], first | OPEN_BIT);
    }
    *size = np * ps;
    add_relaxed(&ma_counters.allocs, 1); /* a call served (not in_use: no arena's) */
    return data;
}

/* The first page index of the slot whose data start at data. */
static size_t slot_index(const void *data) {
    size_t page = (size_t)((const char *)data - guard_pool) / os_page_size();
    return (size_t)(load_relaxed(&slot_map[page]) >> 32) - 1;
}

int guard_close(void *data) {
    size_t s = slot_index(data);
    uint64_t first = load_relaxed(&slot_map[s]);
    if (os_protect(data, SLOT_PAGES(first) * os_page_size(), 0) != 0) return -1;
    store_relaxed(&slot_map[s], first & ~OPEN_BIT);
    sub_relaxed(&open_slots, 1);
    return 0;
}

void guard_peek(void *data, int access) {
    size_t np = SLOT_PAGES(slot_map[slot_index(data)]);
    os_protect(data, np * os_page_size(), access);
}

void guard_release(void *data) {
    size_t s = slot_index(data), np = SLOT_PAGES(load_relaxed(&slot_map[s]));
    /* a slot of 1 MiB or more gives its pages back to the system now
     * (before it is on a list: it is still the caller's), a cost its
     * block's own writes dwarf; a smaller one's stay (its next block
     * writes them again: purging each slot of 64 KiB as it was freed made
     * a program of such blocks spend most of its time in the kernel); an
     * open slot stays open, so that its next block costs no system call */
    if (np * os_page_size() >= ((size_t)1 << 20)) os_purge(data, np * os_page_size());
    guard_release_slot(s, np);
    add_relaxed(&ma_counters.frees, 1);
}

char *guard_slot_of(const void *a, size_t *size, int *open) {
    if (!guard_owns(a)) return NULL;
    size_t ps = os_page_size();
    size_t page = (size_t)((const char *)a - guard_pool) / ps;
    if (page >= load_relaxed(&carved)) return NULL;
    uint64_t v = load_relaxed(&slot_map[page]);
    if (!v) return NULL;
    size_t s = (size_t)(v >> 32) - 1;
    uint64_t first = load_relaxed(&slot_map[s]);
    *size = SLOT_PAGES(first) * ps;
    *open = (first & OPEN_BIT) != 0;
    return guard_pool + data_page(s) * ps;
}

char *guard_last_slot(size_t *size, int *open) {
    size_t c = load_relaxed(&carved);
    if (!c) return NULL;
    return guard_slot_of(guard_pool + (c - 1) * os_page_size(), size, open);
}

void guard_lock(void) {
    pthread_mutex_lock(&g_mutex);
}
void guard_unlock(void) {
    pthread_mutex_unlock(&g_mutex);
}
void guard_fork_child(void) {
    pthread_mutex_init(&g_mutex, NULL);
}
