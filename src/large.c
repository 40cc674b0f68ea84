/*
 * large.c: mapped blocks, their registry, and the cache of freed mappings
 * (see large.h).
 *
 * Layout: the mapping starts at base; the chunk header sits lead bytes in,
 * right before the (aligned) payload, and the chunk runs to the mapping's
 * end: prev_foot = lead, size = mapping length - lead.
 */
#include "large.h"

#include <pthread.h>

#include "counters.h"
#include "msg.h"
#include "options.h"

static pthread_mutex_t large_mutex = PTHREAD_MUTEX_INITIALIZER;

static uintptr_t *table; /* keys: payload addresses; 0 = empty slot */
static size_t table_cap; /* a power of two, or 0 */
static size_t table_count;
static struct large_stats st;

#define RECENT 64 /* payloads unmapped lately, to tell double frees apart */
/* (in .lbss: only programs that free mapped blocks touch its page, and the
 * small globals' page keeps room for the first thread cache) */
static MA_LARGE_BSS uintptr_t recent[RECENT];
static unsigned recent_pos;

/*
 * Freed mappings are kept a while, resident, so that a program that frees
 * and allocates large blocks over and over does not pay a mapping and a
 * page fault per page each time:
 *  1. free: the mapping joins the cache (newest last); the oldest entries
 *     leave it while it holds more than MCACHE_SLOTS - 1 mappings or
 *     MCACHE_BYTES bytes; a mapping larger than that is unmapped at once;
 *  2. allocation (16-byte alignment): the smallest cached mapping that is
 *     large enough, used whole if it is at most a quarter too long, else
 *     split: its tail stays in the cache as a mapping of its own (or is
 *     unmapped, if smaller than MCACHE_MIN_PIECE); if none is large
 *     enough, the largest one, grown with mremap (its pages move, resident);
 *  3. an entry unused for MCACHE_AGE_MS leaves at the next large call, and
 *     malloc_trim empties the cache: memory no longer used goes back.
 * System calls are made after the lock is released.
 */
#define MCACHE_SLOTS     16
#define MCACHE_BYTES     ((size_t)128 << 20)
#define MCACHE_AGE_MS    1000
#define MCACHE_MIN_PIECE ((size_t)128 << 10)
struct mcache_entry {
    char *base;
    size_t len;
    uint64_t when;
};
static struct mcache_entry mcache[MCACHE_SLOTS];
static unsigned mcache_count;
static size_t mcache_bytes;

static void mcache_remove(unsigned i) {
    mcache_bytes -= mcache[i].len;
    for (unsigned j = i + 1; j < mcache_count; j++) {
        mcache[j - 1] = mcache[j];
        /* (not a call to memmove: the library imports as few functions
         * as it can, os.c says why) */
        __asm__ volatile("" ::: "memory");
    }
    mcache_count--;
}

/* Move the entries that must leave (too many, too large, too old) into
 * out; returns how many. Lock held. */
static unsigned mcache_evict(uint64_t now, struct mcache_entry *out) {
    unsigned n = 0;
    while (mcache_count && (mcache_count > MCACHE_SLOTS - 1 || mcache_bytes > MCACHE_BYTES ||
                            mcache[0].when + MCACHE_AGE_MS < now)) {
        out[n++] = mcache[0];
        mcache_remove(0);
    }
    return n;
}

static void unmap_all(const struct mcache_entry *v, unsigned n) {
    for (unsigned i = 0; i < n; i++) os_unmap(v[i].base, v[i].len);
}

/* Take the cached mapping that serves need bytes best, or none (.base NULL). */
static struct mcache_entry mcache_take(size_t need) {
    struct mcache_entry e = {0};
    int best = -1;
    for (unsigned i = 0; i < mcache_count; i++) {
        size_t len = mcache[i].len;
        if (best < 0) {
            best = (int)i;
            continue;
        }
        size_t bl = mcache[best].len;
        if (len >= need ? bl < need || len < bl : bl < need && len > bl) best = (int)i;
    }
    if (best >= 0) {
        e = mcache[best];
        mcache_remove((unsigned)best);
    }
    return e;
}

uint64_t large_cache_expire(void) {
    struct mcache_entry old[MCACHE_SLOTS + 1];
    uint64_t now = os_now_ms(), next = 0;
    pthread_mutex_lock(&large_mutex);
    unsigned n = mcache_evict(now, old);
    if (mcache_count) next = mcache[0].when + MCACHE_AGE_MS + 1;
    pthread_mutex_unlock(&large_mutex);
    unmap_all(old, n);
    return next;
}

int large_cache_release(void) {
    struct mcache_entry out[MCACHE_SLOTS];
    pthread_mutex_lock(&large_mutex);
    unsigned n = mcache_count;
    for (unsigned i = 0; i < n; i++) out[i] = mcache[i];
    mcache_count = 0;
    mcache_bytes = 0;
    pthread_mutex_unlock(&large_mutex);
    unmap_all(out, n);
    return n > 0;
}

/* Ask for transparent huge pages for a new or grown mapping of a block
 * the program will write (malloc, realloc; not calloc, whose zeroed blocks
 * are often used sparsely): a fault then maps 2 MiB, not 4 KiB. (Big
 * reservations too: docs/design.md weighs GNU sort's 2.1 GiB buffer.) */
static char *advise(char *base, size_t len) {
    size_t t = opt_get(OPT_HUGEPAGE);
    if (base && t && len >= t) os_advise_huge(base, len);
    return base;
}

/* A mapping of at least *len bytes (*len is set to its length): a cached
 * one, split or grown if need be, or a fresh one. */
static char *map_block(size_t *lenp) {
    size_t len = *lenp;
    struct mcache_entry old[MCACHE_SLOTS + 1];
    uint64_t now = os_now_ms();
    pthread_mutex_lock(&large_mutex);
    unsigned n = mcache_evict(now, old);
    struct mcache_entry e = mcache_count ? mcache_take(len) : (struct mcache_entry){0};
    if (e.base && e.len > len + len / 4) {
        /* split: the tail stays cached, resident, if it is worth keeping */
        struct mcache_entry tail = {e.base + len, e.len - len, e.when};
        e.len = len;
        if (tail.len >= MCACHE_MIN_PIECE) {
            mcache[mcache_count++] = tail;
            mcache_bytes += tail.len;
        } else {
            old[n++] = tail;
        }
    }
    pthread_mutex_unlock(&large_mutex);
    unmap_all(old, n);
    if (e.base) {
        if (e.len >= len) {
            *lenp = e.len;
            return e.base;
        }
        char *b = os_remap(e.base, e.len, len);
        if (b) return advise(b, len);
        os_unmap(e.base, e.len);
    }
    return advise(os_map(len), len);
}

/* Keep a freed mapping for reuse, or unmap it. */
static void unmap_block(char *base, size_t len) {
    struct mcache_entry old[MCACHE_SLOTS];
    unsigned n = 0;
    if (len > MCACHE_BYTES) {
        os_unmap(base, len);
        return;
    }
    uint64_t now = os_now_ms();
    pthread_mutex_lock(&large_mutex);
    mcache[mcache_count++] = (struct mcache_entry){base, len, now};
    mcache_bytes += len;
    n = mcache_evict(now, old);
    pthread_mutex_unlock(&large_mutex);
    unmap_all(old, n);
}

static size_t slot_of(uintptr_t key, size_t cap) {
    return (size_t)(((key >> 4) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static int table_grow(void) {
    size_t cap = table_cap ? table_cap * 2 : 1024;
    uintptr_t *t = os_map(cap * sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < table_cap; i++) {
        if (!table[i]) continue;
        size_t j = slot_of(table[i], cap);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = table[i];
    }
    if (table) os_unmap(table, table_cap * sizeof *table);
    table = t;
    table_cap = cap;
    return 0;
}

static long table_find(uintptr_t key) {
    if (!table_cap) return -1;
    for (size_t i = slot_of(key, table_cap);; i = (i + 1) & (table_cap - 1)) {
        if (table[i] == key) return (long)i;
        if (!table[i]) return -1;
    }
}

static int table_insert(uintptr_t key) {
    if ((table_count + 1) * 2 > table_cap && table_grow() != 0) return -1;
    size_t i = slot_of(key, table_cap);
    while (table[i]) i = (i + 1) & (table_cap - 1);
    table[i] = key;
    table_count++;
    for (unsigned k = 0; k < RECENT; k++)
        if (recent[k] == key) recent[k] = 0;
    return 0;
}

/* Remove slot i, shifting later members of its probe run back. */
static void table_remove(size_t i) {
    size_t mask = table_cap - 1;
    table[i] = 0;
    table_count--;
    for (size_t j = (i + 1) & mask; table[j]; j = (j + 1) & mask) {
        size_t home = slot_of(table[j], table_cap);
        /* move table[j] into the hole at i if i lies on its probe path */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            table[i] = table[j];
            table[j] = 0;
            i = j;
        }
    }
}

/* Count c's mapping in (sign > 0) or out of the registry's figures. */
static void account_map(const struct chunk *c, int sign) {
    size_t bytes = chunk_size(c) + c->prev_foot;
    if (sign > 0) {
        st.blocks++;
        st.bytes += bytes;
        st.in_use += usable_size(c);
        if (st.blocks > st.peak_blocks) st.peak_blocks = st.blocks;
        if (st.bytes > st.peak_bytes) st.peak_bytes = st.bytes;
    } else {
        st.blocks--;
        st.bytes -= bytes;
        st.in_use -= usable_size(c);
    }
}

void *large_alloc(size_t n, size_t align, int zero) {
    size_t page = os_page_size();
    if (n > MAX_REQUEST || align > MAX_REQUEST - n) return NULL;
    size_t len = align_up(n + CHUNK_HDR + (align > ALIGNMENT ? align : 0), page);
    /* zeroed or aligned blocks take fresh pages: already zero, and no
     * cached mapping has the alignment */
    char *base = align > ALIGNMENT || zero ? os_map(len) : map_block(&len);
    if (!base) return NULL;
    char *payload = base + CHUNK_HDR;
    if (align > ALIGNMENT) {
        /* Keep only the pages from the header to the payload's end. */
        payload = (char *)align_up((uintptr_t)payload, align);
        char *start = (char *)align_down((uintptr_t)payload - CHUNK_HDR, page);
        char *end = (char *)align_up((uintptr_t)payload + n, page);
        if (start > base) os_unmap(base, (size_t)(start - base));
        if (base + len > end) os_unmap(end, (size_t)(base + len - end));
        base = start;
        len = (size_t)(end - start);
    }
    struct chunk *c = payload_chunk(payload);
    c->prev_foot = (size_t)((char *)c - base);
    set_head(c, len - c->prev_foot, CINUSE | MMAPPED);

    pthread_mutex_lock(&large_mutex);
    int rc = table_insert((uintptr_t)payload);
    if (rc == 0) {
        account_map(c, +1);
        st.total_blocks++;
        counters_alloc(usable_size(c));
    }
    pthread_mutex_unlock(&large_mutex);
    if (rc != 0) {
        unmap_block(base, len);
        return NULL;
    }
    return payload;
}

/* Was p freed recently (lock held)? */
static int recently_freed(const void *p) {
    for (unsigned k = 0; k < RECENT; k++)
        if (recent[k] == (uintptr_t)p) return 1;
    return 0;
}

/* Abort, naming who, because p is not a live block: freed, or never ours.
 * Called with the lock held; releases it. */
static _Noreturn void not_live(const void *p, const char *who) {
    int twice = recently_freed(p);
    pthread_mutex_unlock(&large_mutex);
    ma_fatal(who, twice ? freed_twice_what(who) : "invalid pointer", p);
}

size_t large_find(const void *p) {
    pthread_mutex_lock(&large_mutex);
    size_t n = table_find((uintptr_t)p) < 0 ? 0 : usable_size(payload_chunk(p));
    pthread_mutex_unlock(&large_mutex);
    return n;
}

size_t large_usable(const void *p, const char *who) {
    pthread_mutex_lock(&large_mutex);
    if (table_find((uintptr_t)p) < 0) not_live(p, who);
    size_t n = usable_size(payload_chunk(p));
    pthread_mutex_unlock(&large_mutex);
    return n;
}

/* Take p out of the registry; on failure abort, naming who. Lock held. */
static struct chunk *unregister(void *p, const char *who) {
    long i = table_find((uintptr_t)p);
    if (i < 0) not_live(p, who);
    struct chunk *c = payload_chunk(p);
    if (!tag_ok(c) || !is_mmapped(c) || !cinuse(c)) {
        pthread_mutex_unlock(&large_mutex);
        ma_fatal(who, "heap corruption near", p);
    }
    table_remove((size_t)i);
    account_map(c, -1);
    return c;
}

void large_free(void *p, const char *who) {
    pthread_mutex_lock(&large_mutex);
    struct chunk *c = unregister(p, who);
    counters_free(usable_size(c));
    recent[recent_pos++ % RECENT] = (uintptr_t)p;
    pthread_mutex_unlock(&large_mutex);
    options_raise_mmap_threshold(chunk_size(c));
    char *base = (char *)c - c->prev_foot;
    size_t len = chunk_size(c) + c->prev_foot;
    /* A mapping no larger than the mmap threshold (which this free may
     * just have raised to its size) could serve no new block whole: those
     * come from the heap now (and a block that realloc grows takes a
     * mapping of its own size). Unmap it rather than keep it. */
    if (chunk_size(c) <= mmap_threshold())
        os_unmap(base, len);
    else
        unmap_block(base, len);
}

/*
 * Resize a mapped block to n bytes:
 *  1. if the new length fits the mapping and uses at least half of it, keep it;
 *  2. below the threshold of growth (mmap_threshold_grow), let the caller
 *     move it into the heap;
 *  3. else mremap the whole mapping (it may move; the lead stays the same).
 *     Growing, take half as much again (at most 64 MiB more): a block grown
 *     a little at a time then needs a system call per half its size, not
 *     per page. Pages never written cost no memory.
 */
void *large_resize(void *p, size_t n) {
    struct chunk *c = payload_chunk(p);
    size_t lead = c->prev_foot, len = chunk_size(c) + lead;
    size_t need = align_up(n + CHUNK_HDR + lead, os_page_size());
    if (need <= len && need >= len / 2) return p;
    if (n < mmap_threshold_grow()) return NULL;
    if (need > len) {
        size_t extra = len / 2 < ((size_t)64 << 20) ? len / 2 : (size_t)64 << 20;
        if (need < len + extra && len + extra <= MAX_REQUEST)
            need = align_up(len + extra, os_page_size());
    }

    pthread_mutex_lock(&large_mutex);
    c = unregister(p, "realloc");
    /* out of the counters too while it is out of the registry, so that
     * memalloc_check sees them agree at any moment */
    counters_resize(usable_size(c), 0);
    pthread_mutex_unlock(&large_mutex);
    char *base = os_remap((char *)c - lead, len, need);
    int moved = base != NULL;
    if (!base) base = (char *)c - lead;
    c = chunk_at(base, lead);
    if (moved) {
        advise(base, need);
        set_head(c, need - lead, CINUSE | MMAPPED);
    }
    pthread_mutex_lock(&large_mutex);
    int rc = table_insert((uintptr_t)chunk_payload(c));
    account_map(c, +1);
    counters_resize(0, usable_size(c));
    pthread_mutex_unlock(&large_mutex);
    if (rc != 0) ma_fatal("realloc", "out of memory for the block registry of", p);
    return moved ? chunk_payload(c) : NULL;
}

void large_foreach(void (*fn)(const struct chunk *c, void *ctx), void *ctx) {
    for (size_t i = 0; i < table_cap; i++)
        if (table[i]) fn(payload_chunk((void *)table[i]), ctx);
}

void large_stats_locked(struct large_stats *out) {
    *out = st;
    out->cached_blocks = mcache_count;
    out->cached_bytes = mcache_bytes;
}

void large_stats(struct large_stats *out) {
    pthread_mutex_lock(&large_mutex);
    large_stats_locked(out);
    pthread_mutex_unlock(&large_mutex);
}

void large_lock(void) {
    pthread_mutex_lock(&large_mutex);
}

void large_unlock(void) {
    pthread_mutex_unlock(&large_mutex);
}

void large_fork_child(void) {
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    large_mutex = fresh;
}
