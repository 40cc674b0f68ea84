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
static uint64_t *slot_map;  /* per page: (first page + 1) << 32 | data pages;
                               on the first page, OPEN_BIT while open */
static uint32_t *slot_next; /* per slot's first page: the next free slot's (+1) */
static uint32_t free_head[FREE_LISTS];
static size_t pool_pages;         /* pages of the stretch (page size known at the first call) */
static size_t carved;             /* pages carved so far */
static size_t open_slots, budget; /* accessible slots (each a mapping); the most allowed */
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

static size_t take_free(size_t np) {
    uint32_t *headp = &free_head[np < FREE_LISTS ? np : 0];
    uint32_t prev = 0;
    for (uint32_t s1 = *headp; s1; prev = s1, s1 = slot_next[s1 - 1]) {
        size_t s = s1 - 1;
        if (SLOT_PAGES(slot_map[s]) != np) continue; /* the one list of large slots */
        if (prev)
            slot_next[prev - 1] = slot_next[s];
        else
            *headp = slot_next[s];
        return s1;
    }
    return 0;
}

/* Slot s (first page), of np pages, onto its free list (the lock held). */
static void put_free(size_t s, size_t np) {
    slot_next[s] = free_head[np < FREE_LISTS ? np : 0];
    free_head[np < FREE_LISTS ? np : 0] = (uint32_t)(s + 1);
}

void *guard_alloc(size_t bytes, int under, size_t *size) {
    size_t ps = os_page_size();
    size_t np = (bytes + ps - 1) / ps;
    if (np == 0) np = 1;
    char *data = NULL;
    pthread_mutex_lock(&g_mutex);
    if (!guard_pool) {
        /* a failed set-up (no address space: a limit, a tool) is not
         * tried again at every call: the caller serves level 1 meanwhile */
        if (setup_wait) {
            setup_wait--;
            goto out;
        }
        if (setup(under) != 0) {
            setup_wait = 4096;
            goto out;
        }
    }
    if (np >= pool_pages) goto out;
    size_t s1 = take_free(np);
    if (!s1) {
        if (open_slots >= budget) goto out;
        if (carved + np + 1 > pool_pages || carved + 1 > UINT32_MAX) goto out;
        size_t s = carved;
        for (size_t i = 0; i <= np; i++)
            store_relaxed(&slot_map[s + i], (uint64_t)(s + 1) << 32 | np);
        store_relaxed(&carved, carved + np + 1);
        s1 = s + 1;
    }
    data = guard_pool + data_page(s1 - 1) * ps;
    int closed = !(slot_map[s1 - 1] & OPEN_BIT);
    if (closed) {
        if (open_slots >= budget) {
            put_free(s1 - 1, np);
            data = NULL;
            goto out;
        }
        open_slots++; /* counted now; opened below, out of the lock */
    }
    pthread_mutex_unlock(&g_mutex);
    if (closed) {
        if (os_protect(data, np * ps, 1) != 0) {
            /* back on its list, inaccessible as it was */
            pthread_mutex_lock(&g_mutex);
            open_slots--;
            put_free(s1 - 1, np);
            pthread_mutex_unlock(&g_mutex);
            return NULL;
        }
        pthread_mutex_lock(&g_mutex);
        store_relaxed(&slot_map[s1 - 1], slot_map[s1 - 1] | OPEN_BIT);
        pthread_mutex_unlock(&g_mutex);
    }
    *size = np * ps;
    add_relaxed(&ma_counters.allocs, 1); /* a call served (not in_use: no arena's) */
    return data;
out:
    pthread_mutex_unlock(&g_mutex);
    return data;
}

/* The first page index of the slot whose data start at data. */
static size_t slot_index(const void *data) {
    size_t page = (size_t)((const char *)data - guard_pool) / os_page_size();
    return (size_t)(load_relaxed(&slot_map[page]) >> 32) - 1;
}

int guard_close(void *data) {
    size_t s = slot_index(data), np = SLOT_PAGES(load_relaxed(&slot_map[s]));
    if (os_protect(data, np * os_page_size(), 0) != 0) return -1;
    pthread_mutex_lock(&g_mutex);
    store_relaxed(&slot_map[s], slot_map[s] & ~OPEN_BIT);
    open_slots--;
    pthread_mutex_unlock(&g_mutex);
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
    pthread_mutex_lock(&g_mutex);
    put_free(s, np);
    pthread_mutex_unlock(&g_mutex);
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
