/*
 * trace.c: MEMALLOC_TRACE (see trace.h; the file: docs/trace-format.md).
 *
 * Each thread has a state of its own, mapped: its record buffer, its call
 * sites (calls and bytes per return address, an open-addressed table), its
 * histogram of request sizes, its allocation count (seq) and its sampling
 * countdown. The owner updates its counters with plain relaxed stores; the
 * thread that writes a SITES or SIZES record adds every thread's up under
 * trace_mutex, which also guards the registry of states, the tables of
 * exited threads (and of the sites a thread's table had no room for), and
 * the scratch buffer in which the large records (INFO, MAPS, SITES) are
 * built and written with one write(2).
 *
 * A buffer has a lock of its own, taken by its owner around each record
 * and by the exit, which writes out every thread's buffer: the owner's
 * counting, the common case, takes no lock.
 *
 * The sampled blocks live are a set of addresses (with the thread and seq
 * of their allocation, for the temporary flag, and their stack), in shards
 * with a lock each; a free that misses the fast path looks there, unless
 * its shard is empty.
 */
#define _GNU_SOURCE
#include "trace.h"

#include <pthread.h>
#include <string.h>

#include "api.h"
#include "arena.h"
#include "chunk.h"
#include "counters.h"
#include "large.h"
#include "msg.h"
#include "options.h"
#include "os.h"
#include "page.h"
#include "region.h"
#include "stack.h"
#include "stats.h"
#include "tcache.h"

enum {
    R_INFO = 1,
    R_MAPS,
    R_STACK,
    R_ALLOC,
    R_FREE,
    R_HEAP,
    R_CLASSES,
    R_REGIONS,
    R_SITES,
    R_SIZES,
    R_END,
    R_EVENTS,
    R_AGGREGATES,
    R_ARENAS
};

#define BUF_BYTES     ((size_t)64 << 10)
#define THREAD_SITES  2048u             /* per thread; a power of two */
#define GLOBAL_CELLS  ((size_t)1 << 16) /* a shared table's slots (struct table) */
#define NSIZES        49
#define TRACE_DEPTH   32
#define LIGHT_WALKS   64 /* stack_capture_light's, per thread */
#define SCRATCH_BYTES ((size_t)16 << 20)
#define TICK          256u /* a thread looks at the clock every TICK allocations */
#define RING          256u /* a thread's samples whose ALLOC waits (a power of two, <= 4096) */
#define THREAD_AGGS   512u /* a thread's stacks of samples folded into AGGREGATES; a power of two */
#define NLIFETIMES    65   /* bucket 0: 0 ns; b: [2^(b-1), 2^b) ns */
/* HEAP records every HEAP_EVERY_MS at most, and SITES, SIZES and MAPS every
 * SUM_EVERY_MS, or a thousandth and a tenth of the time since the start
 * if that is longer: a long run's trace grows with the log of its length
 * rather than with it, and its timeline keeps about a thousand points. */
#define HEAP_EVERY_MS    10
#define SUM_EVERY_MS     1000
#define CLASSES_EVERY_MS 10   /* CLASSES and REGIONS, with the HEAP of a new peak, at most */
#define FLUSH_EVERY_MS   1000 /* a thread's buffer is written out at least this often */

struct site {
    uint64_t ra, calls, bytes;
};

struct sizes {
    uint64_t calls[NSIZES], bytes[NSIZES];
};

/* An off-grid sample whose ALLOC is not written yet (pend_put): the block
 * (NULL: a free slot; taken by one thread only, pend_take) and what the
 * ALLOC would say, with the HEAP records written before it (epoch). */
struct pend {
    void *p;
    uint64_t t, size, seq, epoch;
    uint32_t stack, reserved;
};

/* The samples of one stack (key: its id + 1; 0: a free slot) that were
 * freed before any HEAP record was written in their life, and were not
 * written one by one (aggregate): counted, with their weights, and those
 * of them that were temporaries, with their calls (weight / size). */
struct agg {
    uint64_t key, samples, weight, temps, temp_calls;
};

struct tstate {
    struct tstate *next; /* the registry (live or spare) */
    int lock;            /* the buffer's */
    int tid;
    size_t len;    /* bytes in buf */
    uint64_t seq;  /* allocations so far */
    uint64_t left; /* bytes to allocate before the next sample */
    uint64_t rng;  /* the countdown's jitter */
    uint64_t flush_ms;
    unsigned nsites;
    struct site *last; /* the site of the thread's last allocation */
    uint64_t walks;    /* stacks taken */
    /* the EVENTS record open at the buffer's end: its offset + 1 (0: none),
     * and the last event's time, address and seq (the next one's deltas) */
    size_t ev_at;
    uint64_t ev_t, ev_addr, ev_seq;
    struct sizes sizes;
    struct site sites[THREAD_SITES];
    struct agg aggs[THREAD_AGGS];
    uint64_t lifetimes[NLIFETIMES]; /* of the aggregated samples */
    uint32_t ring_head;             /* the next slot of ring */
    unsigned naggs;
    /* (state_reset keeps the ring: other threads read it; it is empty when
     * a state is reused, after its thread's exit) */
    struct pend ring[RING];
    char buf[BUF_BYTES];
};
_Static_assert(RING <= 4096, "a ring slot fits in a state's page offset");

struct sample {
    uint64_t addr, seq; /* seq: its thread's allocations before it */
    int tid;
    uint32_t stack;
    uint32_t gen;     /* gen16() when it was made: a fork's child writes no FREE of its parent's */
    uint64_t pending; /* where its ALLOC waits (as struct offgrid's), or 0 */
};

enum { T_OFF, T_ON, T_DONE }; /* T_DONE: failed, or ended at exit */
static int trace_state;
static int offgrid_made;     /* once an off-grid block was handed out (sample_block) */
static uint64_t offgrid_key; /* set at start, from the process's cookie: offgrid_magic */
static pthread_mutex_t trace_mutex = PTHREAD_MUTEX_INITIALIZER;
static int trace_fd = -1;
static char trace_path[4096]; /* MEMALLOC_TRACE: the first process's file */
static uint64_t start_ns, start_ms, interval;
static uint64_t maps_hash; /* of the last MAPS written: one that did not change is not */
static struct tstate *live, *spare;
/* A shared table, under trace_mutex: up to four counters per key (0: a
 * free slot), GLOBAL_CELLS slots of open addressing, with the list of the
 * slots in use, so that it is read and emptied in the time of its keys,
 * not of its size. The sites' cells hold calls and bytes; the aggregated
 * samples' a struct agg's counters. */
struct cell {
    uint64_t key, v[4];
};
struct table {
    struct cell *t;
    uint32_t *used; /* count of them */
    size_t count;
};
/* retired: the sites of exited threads, and those a thread's table had no
 * room for; merged: every thread's added up, for SITES */
static struct table retired, merged;
/* HEAP records written so far (a sample that lived across one is written
 * one by one: it may be live at the peak) */
static uint64_t heap_epoch;
/* aggregated samples: of exited threads and of full thread tables; every
 * thread's added up, for AGGREGATES; their lifetimes (exited threads') */
static struct table aggs_retired, aggs_merged;
static uint64_t lifetimes_retired[NLIFETIMES];
static struct sizes retired_sizes;
static char *scratch;
static uint64_t *stacks_written; /* a bit per stack id */
static uint64_t next_heap_ms, next_sum_ms, next_classes_ms;
static size_t peak_mark; /* a new peak of bytes out of the engine, once above */
static pthread_key_t exit_key;
static int atfork_done;

/* The thread's state (mine), and the same while the thread is not inside
 * the trace's own code (me; NULL inside, so that an allocation the trace
 * causes takes enter_slow, which serves it untraced). in_trace: inside
 * code that runs without a state (starting, a thread's exit, the exit). */
static __thread struct tstate *me __attribute__((tls_model("initial-exec")));
static __thread struct tstate *mine __attribute__((tls_model("initial-exec")));
static __thread int in_trace __attribute__((tls_model("initial-exec")));

static uint64_t hash64(uint64_t v) {
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    v *= 0xc4ceb9fe1a85ec53ull;
    v ^= v >> 33;
    return v;
}

/* ---- records ---- */

struct rec_hdr {
    uint16_t type, reserved;
    uint32_t len;
};

/* The trace's short locks (a buffer's, a shard's): a word, 0 or 1. A
 * waiter tries a few times, then yields: the holder may be a thread that
 * waits for a CPU (more threads than cores). */
static void spin_lock(int *l) {
    for (unsigned n = 0;; n++) {
        int expected = 0;
        if (load_relaxed(l) == 0 && cas_acquire_strong(l, &expected, 1)) return;
        if (n >= 16) os_yield();
    }
}
static void spin_unlock(int *l) {
    store_release(l, 0);
}

static void buf_lock(struct tstate *s) {
    spin_lock(&s->lock);
}
static void buf_unlock(struct tstate *s) {
    spin_unlock(&s->lock);
}

static void flush_locked(struct tstate *s) {
    if (s->len) os_write(load_relaxed(&trace_fd), s->buf, s->len);
    s->len = 0;
    s->ev_at = 0;
}

/* A record into s's buffer (written out when it is full), or straight to
 * the file when there is no s. */
static void put(struct tstate *s, unsigned type, const void *a, size_t alen, const void *b,
                size_t blen) {
    struct rec_hdr h = {(uint16_t)type, 0, (uint32_t)(alen + blen)};
    size_t total = sizeof h + alen + blen;
    if (!s) {
        char tmp[sizeof h + 2048];
        if (total > sizeof tmp) return;
        memcpy(tmp, &h, sizeof h);
        memcpy(tmp + sizeof h, a, alen);
        if (blen) memcpy(tmp + sizeof h + alen, b, blen);
        os_write(load_relaxed(&trace_fd), tmp, total);
        return;
    }
    buf_lock(s);
    if (s->len + total > BUF_BYTES) flush_locked(s);
    s->ev_at = 0; /* the events that follow start a record of their own */
    memcpy(s->buf + s->len, &h, sizeof h);
    memcpy(s->buf + s->len + sizeof h, a, alen);
    if (blen) memcpy(s->buf + s->len + sizeof h + alen, b, blen);
    s->len += total;
    buf_unlock(s);
}

/* Sampled allocations and frees, packed: an EVENTS record per run of
 * them in a thread's buffer, each event a kind byte then varints of its
 * differences from the previous event (docs/trace-format.md): about 12
 * bytes an event where ALLOC and FREE records take 56 and 40. */
enum { EV_ALLOC = 0, EV_FREE = 1, EV_TEMPORARY = 2, EV_SIGNED = 4 };

static uint64_t zigzag(uint64_t d) {
    return (d << 1) ^ (uint64_t)((int64_t)d >> 63);
}

static size_t varint(uint8_t *o, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        o[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    o[n++] = (uint8_t)v;
    return n;
}

static void put_event(struct tstate *s, unsigned kind, uint64_t t, uint64_t addr, uint64_t size,
                      uint32_t stack, uint64_t seq) {
    enum { EVENT_MAX = 1 + 5 * 10, OPEN = sizeof(struct rec_hdr) + 16 };
    buf_lock(s);
    if (s->ev_at && s->len + EVENT_MAX > BUF_BYTES) flush_locked(s);
    if (!s->ev_at) {
        if (s->len + OPEN + EVENT_MAX > BUF_BYTES) flush_locked(s);
        struct rec_hdr h = {R_EVENTS, 0, 16};
        uint32_t who[2] = {(uint32_t)s->tid, 0};
        memcpy(s->buf + s->len, &h, sizeof h);
        memcpy(s->buf + s->len + sizeof h, &t, 8);
        memcpy(s->buf + s->len + sizeof h + 8, who, 8);
        s->ev_at = s->len + 1;
        s->len += OPEN;
        s->ev_t = t;
        s->ev_addr = 0;
        s->ev_seq = 0;
    }
    uint8_t *o = (uint8_t *)s->buf + s->len;
    size_t n = 0;
    /* an ALLOC written late (EV_SIGNED) may be earlier than the event
     * before it, in time and in order */
    uint64_t dt = t - s->ev_t, dseq = seq - s->ev_seq;
    if (kind & EV_SIGNED) {
        dt = zigzag(dt);
        dseq = zigzag(dseq);
    }
    o[n++] = (uint8_t)kind;
    n += varint(o + n, dt);
    n += varint(o + n, zigzag(addr - s->ev_addr));
    if ((kind & 1) == EV_ALLOC) {
        n += varint(o + n, size);
        n += varint(o + n, stack);
    }
    n += varint(o + n, dseq);
    s->len += n;
    char *rec = s->buf + s->ev_at - 1;
    uint32_t len, count;
    memcpy(&len, rec + 4, 4);
    memcpy(&count, rec + sizeof(struct rec_hdr) + 12, 4);
    len += (uint32_t)n;
    count++;
    memcpy(rec + 4, &len, 4);
    memcpy(rec + sizeof(struct rec_hdr) + 12, &count, 4);
    s->ev_t = t;
    s->ev_addr = addr;
    s->ev_seq = seq;
    buf_unlock(s);
}

/* The record of type built in scratch after its header (len bytes),
 * written whole. trace_mutex held. */
static void put_scratch(unsigned type, size_t len) {
    struct rec_hdr h = {(uint16_t)type, 0, (uint32_t)len};
    memcpy(scratch, &h, sizeof h);
    os_write(load_relaxed(&trace_fd), scratch, sizeof h + len);
}

static uint64_t now_rel(void) {
    return os_now_ns() - start_ns;
}

/* INFO: who the process is. trace_mutex held. */
static void put_info(void) {
    char *p = scratch + sizeof(struct rec_hdr);
    uint32_t head[4] = {2, (uint32_t)os_getpid(), (uint32_t)os_getppid(), (uint32_t)os_page_size()};
    uint64_t times[3] = {interval, os_real_ns(), start_ns};
    memcpy(p, head, sizeof head);
    memcpy(p + sizeof head, times, sizeof times);
    char *strings = p + sizeof head + sizeof times + 4;
    size_t room = SCRATCH_BYTES / 2;
    long n = os_readlink("/proc/self/exe", strings, room - 1);
    n = n > 0 ? n : 0;
    strings[n++] = '\0';
    uint32_t count = 1;
    long args = os_read_file("/proc/self/cmdline", strings + n, room - (size_t)n - 1);
    if (args > 0) {
        if (strings[n + args - 1] != '\0') strings[n + args++] = '\0';
        for (long i = 0; i < args; i++) count += strings[n + i] == '\0';
        n += args;
    }
    memcpy(p + sizeof head + sizeof times, &count, 4);
    put_scratch(R_INFO, sizeof head + sizeof times + 4 + (size_t)n);
}

/* MAPS: the lines of /proc/self/maps that name a file. trace_mutex held. */
static void put_maps(void) {
    char *p = scratch + sizeof(struct rec_hdr);
    uint64_t t = now_rel();
    memcpy(p, &t, 8);
    char *text = p + 8;
    long n = os_read_file("/proc/self/maps", text, SCRATCH_BYTES / 2);
    if (n <= 0) return;
    size_t kept = 0;
    for (long i = 0; i < n;) {
        long end = i;
        while (end < n && text[end] != '\n') end++;
        int named = 0;
        for (long j = i; j < end; j++)
            if (text[j] == '/') {
                named = 1;
                break;
            }
        if (named) {
            memmove(text + kept, text + i, (size_t)(end - i));
            kept += (size_t)(end - i);
            text[kept++] = '\n';
        }
        i = end + 1;
    }
    uint64_t h = 0xcbf29ce484222325ull ^ kept;
    for (size_t i = 0; i < kept; i++) h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    if (h == maps_hash) return;
    maps_hash = h;
    put_scratch(R_MAPS, 8 + kept);
}

/* CLASSES: every size class's pages, objects and objects in use, summed
 * over the arenas (sum). */
static void put_classes(struct tstate *s, uint64_t t, const struct stats_class *sum) {
    struct {
        uint32_t size, page_bytes;
        uint64_t pages, objects, used;
    } c[NCLASSES];
    unsigned count = 0;
    for (unsigned k = 1; k < NCLASSES; k++) {
        c[count].size = class_size[k];
        c[count].page_bytes =
            sum[k].pages ? (uint32_t)(sum[k].objects * class_size[k] / sum[k].pages) : 0;
        c[count].pages = sum[k].pages;
        c[count].objects = sum[k].objects;
        c[count].used = sum[k].used;
        count++;
    }
    uint64_t head[2] = {t, count};
    put(s, R_CLASSES, head, sizeof head, c, count * sizeof c[0]);
}

/* REGIONS: each region of the heaps, and each mapped block, as granules
 * of GRANULE bytes: the share of each in use (a page's share in use is
 * its objects in use), free and resident, and free and purged; bytes
 * never reached or above a region's fresh mark count in none. Built in
 * scratch (trace_mutex held), each arena's under its lock. */
#define GRANULES 512u
#define GRANULE  (REGION_SIZE / GRANULES)
enum { G_USED, G_FREE, G_PURGED };
static uint32_t granules[GRANULES][3];
static size_t regions_len; /* bytes of the record built in scratch */
static uint32_t regions_count;

static void spread(uintptr_t base, uintptr_t from, uintptr_t to, int kind) {
    while (from < to) {
        size_t g = (from - base) / GRANULE;
        uintptr_t end = base + (g + 1) * GRANULE;
        if (end > to) end = to;
        if (g < GRANULES) granules[g][kind] += (uint32_t)(end - from);
        from = end;
    }
}

/* The granules of [base, base + n * GRANULE) into the record. */
static void region_out(uintptr_t base, uint32_t n) {
    size_t need = 16 + (size_t)n * 3;
    need = (need + 7) & ~(size_t)7;
    if (sizeof(struct rec_hdr) + regions_len + need > SCRATCH_BYTES) return;
    char *p = scratch + sizeof(struct rec_hdr) + regions_len;
    uint64_t b = base;
    uint32_t head[2] = {n, 0};
    memcpy(p, &b, 8);
    memcpy(p + 8, head, 8);
    for (uint32_t g = 0; g < n; g++)
        for (int k = 0; k < 3; k++) {
            uint64_t v = g < GRANULES  ? (uint64_t)granules[g][k] * 255 / GRANULE
                         : k == G_USED ? 255
                                       : 0;
            p[16 + g * 3 + k] = (char)(v > 255 ? 255 : v);
        }
    memset(p + 16 + (size_t)n * 3, 0, need - 16 - (size_t)n * 3);
    regions_len += need;
    regions_count++;
}

static void region_walk(const struct region *r) {
    memset(granules, 0, sizeof granules);
    uintptr_t base = (uintptr_t)r, fresh = (uintptr_t)r->fresh, open = (uintptr_t)r->open;
    spread(base, base, base + REGION_HDR, G_USED);
    for (const struct chunk *c = region_first(r); c < region_fence(r); c = chunk_next(c)) {
        size_t size = chunk_size(c);
        uintptr_t a = (uintptr_t)c, end = a + size;
        if (size < MIN_CHUNK || end > (uintptr_t)region_fence(r)) break; /* (never: a sane heap) */
        if (cinuse(c)) {
            const struct page *g = page_of(r, chunk_payload(c));
            size_t used = size;
            if (g && (uintptr_t)g >= a && (uintptr_t)g < end && g->tag == obj_key(g)) {
                used = (size_t)load_relaxed(&g->used) * g->size + PAGE_HDR;
                if (used > size) used = size;
            }
            spread(base, a, a + used, G_USED);
            spread(base, a + used, end, G_FREE);
            continue;
        }
        uintptr_t lim = end < open ? end : open;
        if (lim > fresh) lim = fresh > a ? fresh : a;
        spread(base, a, lim, head_get(c) & PURGED ? G_PURGED : G_FREE);
    }
    region_out(base, GRANULES);
}

static void mapped_out(const struct chunk *c, void *ctx) {
    (void)ctx;
    size_t n = (chunk_size(c) + GRANULE - 1) / GRANULE;
    memset(granules, 0, sizeof granules);
    spread((uintptr_t)c, (uintptr_t)c, (uintptr_t)c + chunk_size(c), G_USED);
    region_out((uintptr_t)c, (uint32_t)(n < 65536 ? n : 65536));
}

static void put_regions(uint64_t t) {
    regions_len = 16;
    regions_count = 0;
    for (unsigned i = 0, n = arenas_count(); i < n; i++) {
        struct arena *a = &ma_arenas[i];
        arena_lock(a);
        for (const struct region *r = a->heap.regions; r; r = r->next) region_walk(r);
        arena_unlock(a);
    }
    large_lock();
    large_foreach(mapped_out, NULL);
    large_unlock();
    char *p = scratch + sizeof(struct rec_hdr);
    uint32_t head[2] = {regions_count, (uint32_t)GRANULE};
    memcpy(p, &t, 8);
    memcpy(p + 8, head, 8);
    put_scratch(R_REGIONS, regions_len);
}

/* HEAP: the heap's own figures now, and CLASSES and REGIONS with them if
 * classes; trace_mutex held. Heap mapped counts the accessible part of each region (the rest is
 * address space only), with the mapped blocks and the cached mappings. */
/* The arenas in an ARENAS record (more: the first ones): put()'s bound
 * for a record written without a state. */
#define ARENAS_MAX 63

static void put_heap_locked(struct tstate *s, int classes) {
    struct memalloc_stats st;
    stats_get(&st, NULL);
    static struct stats_heap h;              /* trace_mutex (a few KiB: not on the stack) */
    static struct stats_class sum[NCLASSES]; /* trace_mutex */
    static uint64_t arenas[ARENAS_MAX][4];   /* trace_mutex: ARENAS's */
    size_t open = 0, unopened = 0;
    unsigned narenas = 0;
    memset(sum, 0, sizeof sum);
    for (unsigned i = 0; stats_heap(i, &h); i++) {
        open += h.open;
        unopened += h.mapped - h.open;
        if (i < ARENAS_MAX) {
            uint64_t objects = 0;
            for (unsigned k = 1; k < NCLASSES; k++)
                objects += (uint64_t)(h.cls[k].objects - h.cls[k].used) * class_size[k];
            size_t closed = h.mapped - h.open; /* the free top past the open mark */
            arenas[i][0] = h.open;
            arenas[i][1] = h.free_bytes > closed ? h.free_bytes - closed : 0;
            arenas[i][2] = objects;
            arenas[i][3] = h.caches;
            narenas = i + 1;
        }
        for (unsigned k = 0; classes && k < NCLASSES; k++) {
            sum[k].pages += h.cls[k].pages;
            sum[k].objects += h.cls[k].objects;
            sum[k].used += h.cls[k].used;
        }
    }
    __atomic_add_fetch(&heap_epoch, 1, __ATOMIC_SEQ_CST); /* before its time (aggregate) */
    uint64_t t = now_rel();
    size_t heap_free = st.heap_free > unopened ? st.heap_free - unopened : 0;
    uint64_t r[11] = {
        t,
        st.in_use,
        os_rss_bytes(),
        open + st.mmapped_bytes + st.mmap_cached_bytes,
        heap_free + st.thread_cached + st.arena_cached + st.mmap_cached_bytes,
        st.mmapped_bytes,
        st.thread_cached + st.arena_cached,
        os_purged_bytes(),
        st.allocs,
        st.frees,
        st.peak_in_use,
    };
    put(s, R_HEAP, r, sizeof r, NULL, 0);
    uint64_t head[2] = {t, narenas};
    put(s, R_ARENAS, head, sizeof head, arenas, narenas * sizeof *arenas);
    if (classes) {
        put_classes(s, t, sum);
        put_regions(t);
    }
}

static void put_heap(struct tstate *s, int classes) {
    pthread_mutex_lock(&trace_mutex);
    put_heap_locked(s, classes);
    pthread_mutex_unlock(&trace_mutex);
}

/* ---- call sites and sizes ---- */

#define TABLE_MAX (GLOBAL_CELLS * 3 / 4)

static int table_map(struct table *tb) {
    tb->t = os_map(GLOBAL_CELLS * sizeof *tb->t);
    tb->used = os_map(TABLE_MAX * sizeof *tb->used);
    tb->count = 0;
    return tb->t && tb->used;
}

static void table_clear(struct table *tb) {
    for (size_t i = 0; i < tb->count; i++) tb->t[tb->used[i]].key = 0;
    tb->count = 0;
}

/* v's counters added at key (not 0); 0 if the table is full. */
static int table_add(struct table *tb, uint64_t key, const uint64_t v[4]) {
    size_t mask = GLOBAL_CELLS - 1;
    for (size_t i = hash64(key) & mask;; i = (i + 1) & mask) {
        struct cell *e = &tb->t[i];
        if (e->key == 0) {
            if (tb->count >= TABLE_MAX) return 0;
            tb->used[tb->count++] = (uint32_t)i;
            *e = (struct cell){key, {0, 0, 0, 0}}; /* (table_clear left the old counts) */
        }
        if (e->key == key) {
            for (int k = 0; k < 4; k++) e->v[k] += v[k];
            return 1;
        }
    }
}

static int table_add_site(struct table *tb, uint64_t ra, uint64_t calls, uint64_t bytes) {
    return table_add(tb, ra, (const uint64_t[4]){calls, bytes, 0, 0});
}

static inline __attribute__((always_inline)) void count(struct tstate *s, void *where, size_t n) {
    uint64_t ra = (uintptr_t)where | !where; /* 0 marks a free slot */
    s->seq++;
    unsigned b = n ? 64 - (unsigned)__builtin_clzll(n) : 0;
    if (b >= NSIZES) b = NSIZES - 1;
    store_relaxed(&s->sizes.calls[b], s->sizes.calls[b] + 1);
    store_relaxed(&s->sizes.bytes[b], s->sizes.bytes[b] + n);
    struct site *e = s->last;
    if (likely(e->ra == ra)) {
        store_relaxed(&e->calls, e->calls + 1);
        store_relaxed(&e->bytes, e->bytes + n);
        return;
    }
    unsigned mask = THREAD_SITES - 1;
    for (unsigned i = (unsigned)((ra * 0x9e3779b97f4a7c15ull) >> 40) & mask;; i = (i + 1) & mask) {
        e = &s->sites[i];
        if (e->ra == ra) {
            s->last = e;
            store_relaxed(&e->calls, e->calls + 1);
            store_relaxed(&e->bytes, e->bytes + n);
            return;
        }
        if (e->ra == 0) {
            if (s->nsites >= THREAD_SITES * 3 / 4) break;
            s->nsites++;
            s->last = e;
            store_relaxed(&e->calls, 1);
            store_relaxed(&e->bytes, (uint64_t)n);
            store_release(&e->ra, ra);
            return;
        }
    }
    pthread_mutex_lock(&trace_mutex); /* no room: the global table */
    table_add_site(&retired, ra, 1, n);
    pthread_mutex_unlock(&trace_mutex);
}

/* ---- aggregated samples ---- */

/* e's counters into tb (a shared table), at e's key. trace_mutex held. */
static void agg_merge(struct table *tb, const struct agg *e) {
    table_add(tb, e->key, (const uint64_t[4]){e->samples, e->weight, e->temps, e->temp_calls});
}

static unsigned lifetime_bucket(uint64_t ns) {
    return ns ? 64 - (unsigned)__builtin_clzll(ns) : 0;
}

static uint64_t weight_of(uint64_t size) {
    return interval <= 1 || size >= interval ? size : interval;
}

/* A sample of stack, of size bytes, freed life ns after its allocation
 * (temporary: the next allocation of its thread had not come yet), folded
 * into s's table (the owner's plain adds, as count's). */
static void aggregate(struct tstate *s, uint32_t stack, uint64_t size, uint64_t life,
                      int temporary) {
    uint64_t w = weight_of(size), calls = temporary ? w / (size ? size : 1) : 0;
    unsigned b = lifetime_bucket(life);
    store_relaxed(&s->lifetimes[b], s->lifetimes[b] + 1);
    struct agg one = {(uint64_t)stack + 1, 1, w, (uint64_t) !!temporary, calls};
    unsigned mask = THREAD_AGGS - 1;
    for (unsigned i = (unsigned)hash64(one.key) & mask;; i = (i + 1) & mask) {
        struct agg *e = &s->aggs[i];
        uint64_t key = load_relaxed(&e->key);
        if (key == one.key) {
            store_relaxed(&e->samples, e->samples + 1);
            store_relaxed(&e->weight, e->weight + w);
            store_relaxed(&e->temps, e->temps + one.temps);
            store_relaxed(&e->temp_calls, e->temp_calls + calls);
            return;
        }
        if (key == 0) {
            if (s->naggs >= THREAD_AGGS * 3 / 4) break;
            s->naggs++;
            store_relaxed(&e->samples, one.samples);
            store_relaxed(&e->weight, one.weight);
            store_relaxed(&e->temps, one.temps);
            store_relaxed(&e->temp_calls, one.temp_calls);
            store_release(&e->key, one.key);
            return;
        }
    }
    pthread_mutex_lock(&trace_mutex); /* no room: the shared table */
    agg_merge(&aggs_retired, &one);
    pthread_mutex_unlock(&trace_mutex);
}

/* s's table and lifetimes into the shared ones (s's thread exits).
 * trace_mutex held. */
static void aggs_retire(struct tstate *s) {
    for (unsigned i = 0; i < THREAD_AGGS; i++)
        if (s->aggs[i].key) agg_merge(&aggs_retired, &s->aggs[i]);
    for (unsigned b = 0; b < NLIFETIMES; b++) lifetimes_retired[b] += s->lifetimes[b];
}

/* AGGREGATES: every thread's aggregated samples, added up, in scratch.
 * trace_mutex held. */
static void put_aggregates(uint64_t t) {
    uint64_t life[NLIFETIMES];
    memcpy(life, lifetimes_retired, sizeof life);
    table_clear(&aggs_merged);
    for (size_t i = 0; i < aggs_retired.count; i++) {
        const struct cell *e = &aggs_retired.t[aggs_retired.used[i]];
        table_add(&aggs_merged, e->key, e->v);
    }
    for (struct tstate *s = live; s; s = s->next) {
        for (unsigned i = 0; i < THREAD_AGGS; i++) {
            const struct agg *e = &s->aggs[i];
            uint64_t key = load_acquire(&e->key);
            if (!key) continue;
            struct agg x = {key, load_relaxed(&e->samples), load_relaxed(&e->weight),
                            load_relaxed(&e->temps), load_relaxed(&e->temp_calls)};
            agg_merge(&aggs_merged, &x);
        }
        for (unsigned b = 0; b < NLIFETIMES; b++) life[b] += load_relaxed(&s->lifetimes[b]);
    }
    if (!aggs_merged.count) return;
    char *p = scratch + sizeof(struct rec_hdr);
    uint32_t hdr[2] = {(uint32_t)aggs_merged.count, NLIFETIMES};
    memcpy(p, &t, 8);
    memcpy(p + 8, hdr, 8);
    memcpy(p + 16, life, sizeof life);
    size_t off = 16 + sizeof life;
    for (size_t i = 0; i < aggs_merged.count; i++) {
        const struct cell *e = &aggs_merged.t[aggs_merged.used[i]];
        uint32_t id[2] = {(uint32_t)(e->key - 1), 0};
        memcpy(p + off, id, sizeof id);
        memcpy(p + off + sizeof id, e->v, sizeof e->v);
        off += sizeof id + sizeof e->v;
    }
    put_scratch(R_AGGREGATES, off);
}

/* SITES, SIZES, AGGREGATES (every thread's, added up) and MAPS.
 * trace_mutex held. */
static void put_summary_locked(void) {
    table_clear(&merged);
    for (size_t i = 0; i < retired.count; i++) {
        const struct cell *e = &retired.t[retired.used[i]];
        table_add(&merged, e->key, e->v);
    }
    struct sizes sz = retired_sizes;
    for (struct tstate *s = live; s; s = s->next) {
        for (unsigned i = 0; i < THREAD_SITES; i++) {
            uint64_t ra = load_acquire(&s->sites[i].ra);
            if (ra)
                table_add_site(&merged, ra, load_relaxed(&s->sites[i].calls),
                               load_relaxed(&s->sites[i].bytes));
        }
        for (unsigned b = 0; b < NSIZES; b++) {
            sz.calls[b] += load_relaxed(&s->sizes.calls[b]);
            sz.bytes[b] += load_relaxed(&s->sizes.bytes[b]);
        }
    }
    char *p = scratch + sizeof(struct rec_hdr);
    uint64_t t = now_rel();
    uint32_t n = 0;
    size_t off = 16;
    for (size_t i = 0; i < merged.count; i++) {
        const struct cell *e = &merged.t[merged.used[i]];
        uint64_t site[3] = {e->key, e->v[0], e->v[1]}; /* ra, calls, bytes */
        memcpy(p + off, site, sizeof site);
        off += sizeof site;
        n++;
    }
    uint32_t hdr[2] = {n, 0};
    memcpy(p, &t, 8);
    memcpy(p + 8, hdr, 8);
    put_scratch(R_SITES, off);
    hdr[0] = NSIZES;
    memcpy(p + 8, hdr, 8);
    for (unsigned b = 0; b < NSIZES; b++) {
        memcpy(p + 16 + b * 16, &sz.calls[b], 8);
        memcpy(p + 24 + b * 16, &sz.bytes[b], 8);
    }
    put_scratch(R_SIZES, 16 + NSIZES * 16);
    put_aggregates(t);
    put_maps();
}

static void put_summary(void) {
    pthread_mutex_lock(&trace_mutex);
    put_summary_locked();
    pthread_mutex_unlock(&trace_mutex);
}

/* ---- the set of sampled blocks live ---- */

/* Shards by address, each an open-addressed table under its own lock, so
 * that threads that sample every allocation do not queue on one lock. */
#define SHARDS 64
static struct shard {
    _Alignas(64) int lock; /* spin_lock's; a cache line each */
    struct sample *t;
    size_t cap, count; /* cap: a power of two, or 0 */
} shards[SHARDS];
static uint32_t set_gen; /* forks so far: changed only in a child, alone */

static uint32_t gen16(void) {
    return set_gen & 0xffff; /* as an off-grid header keeps it */
}

static struct shard *shard_of(uint64_t addr) {
    /* by the hash's high bits (the slot takes its low ones): aligned
     * blocks share their low address bits */
    return &shards[hash64(addr) >> 58];
}

static size_t slot_of(const struct shard *h, uint64_t addr) {
    return hash64(addr) & (h->cap - 1);
}

static int set_grow(struct shard *h) {
    size_t cap = h->cap ? h->cap * 2 : (size_t)1 << 10;
    struct sample *t = os_map(cap * sizeof *t);
    if (!t) return 0;
    struct sample *old = h->t;
    size_t old_cap = h->cap;
    h->t = t;
    h->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].addr) continue;
        size_t j = slot_of(h, old[i].addr);
        while (t[j].addr) j = (j + 1) & (cap - 1);
        t[j] = old[i];
    }
    if (old) os_unmap(old, old_cap * sizeof *old);
    return 1;
}

/* The slot of addr in h, or of the empty slot where it would go. h->lock
 * held, h->cap > 0. */
static size_t set_slot(const struct shard *h, uint64_t addr) {
    size_t i = slot_of(h, addr);
    while (h->t[i].addr && h->t[i].addr != addr) i = (i + 1) & (h->cap - 1);
    return i;
}

/* e into the set (its gen set here); 0 if its shard is full and could not
 * grow. A table is grown at half full, so that a failed growth leaves
 * room for as many again, and an entry just taken out can always go back. */
static int set_insert(struct sample e) {
    struct shard *h = shard_of(e.addr);
    int ok = 1;
    e.gen = gen16();
    spin_lock(&h->lock);
    if ((h->count + 1) * 2 > h->cap && !set_grow(h)) ok = h->count + 1 < h->cap;
    if (ok) {
        size_t i = set_slot(h, e.addr);
        if (!h->t[i].addr) store_relaxed(&h->count, h->count + 1);
        h->t[i] = e;
    }
    spin_unlock(&h->lock);
    return ok;
}

/* p's entry into *out; 1 if p is in the set. take: and out of it. */
static int set_lookup(const void *p, struct sample *out, int take) {
    uint64_t addr = (uintptr_t)p;
    struct shard *h = shard_of(addr);
    if (!load_relaxed(&h->count)) return 0;
    int found = 0;
    spin_lock(&h->lock);
    if (h->cap) {
        struct sample *t = h->t;
        size_t mask = h->cap - 1, i = set_slot(h, addr);
        if (t[i].addr) {
            found = 1;
            *out = t[i];
        }
        if (found && take) {
            store_relaxed(&h->count, h->count - 1);
            /* backward shift: the entries after i that could sit at i move up */
            for (size_t j = (i + 1) & mask; t[j].addr; j = (j + 1) & mask) {
                size_t home = slot_of(h, t[j].addr);
                if (((j - home) & mask) >= ((j - i) & mask)) {
                    t[i] = t[j];
                    i = j;
                }
            }
            t[i].addr = 0;
        }
    }
    spin_unlock(&h->lock);
    return found;
}

/* Around fork: the set is the child's too (its off-grid blocks are freed
 * through it), so no shard may be half-changed in the child. */
static void set_lock_all(void) {
    for (unsigned i = 0; i < SHARDS; i++) spin_lock(&shards[i].lock);
}
static void set_unlock_all(void) {
    for (unsigned i = SHARDS; i-- > 0;) spin_unlock(&shards[i].lock);
}
static void set_fork_child(void) {
    for (unsigned i = 0; i < SHARDS; i++) shards[i].lock = 0;
    set_gen++;
}

/* ---- thread states ---- */

static uint64_t next_countdown(struct tstate *s) {
    uint64_t x = s->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->rng = x;
    return interval <= 1 ? 1 : interval / 2 + x % interval;
}

static void state_reset(struct tstate *s) {
    memset(s, 0, offsetof(struct tstate, ring));
    s->tid = os_gettid();
    s->rng = hash64(os_cookie_value ^ (uint64_t)s->tid) | 1;
    s->left = next_countdown(s);
    s->flush_ms = os_now_ms() + FLUSH_EVERY_MS;
    s->last = &s->sites[0];
}

static void pend_flush(struct tstate *s, int all);

static void thread_exit(void *arg) {
    struct tstate *s = arg;
    in_trace = 1;
    pthread_mutex_lock(&trace_mutex);
    pend_flush(s, 1);
    aggs_retire(s);
    buf_lock(s);
    flush_locked(s);
    buf_unlock(s);
    for (unsigned i = 0; i < THREAD_SITES; i++)
        if (s->sites[i].ra)
            table_add_site(&retired, s->sites[i].ra, s->sites[i].calls, s->sites[i].bytes);
    for (unsigned b = 0; b < NSIZES; b++) {
        retired_sizes.calls[b] += s->sizes.calls[b];
        retired_sizes.bytes[b] += s->sizes.bytes[b];
    }
    struct tstate **link = &live;
    while (*link && *link != s) link = &(*link)->next;
    if (*link) *link = s->next;
    s->next = spare;
    spare = s;
    me = mine = NULL;
    pthread_mutex_unlock(&trace_mutex);
    in_trace = 0;
}

static struct tstate *state_new(void) {
    pthread_mutex_lock(&trace_mutex);
    struct tstate *s = spare;
    if (s)
        spare = s->next;
    else
        s = os_map(align_up(sizeof *s, os_page_size()));
    if (s) {
        state_reset(s);
        s->next = live;
        live = s;
    }
    pthread_mutex_unlock(&trace_mutex);
    if (s) {
        mine = s;
        pthread_setspecific(exit_key, s);
    }
    return s;
}

/* ---- starting ---- */

static void warn(const char *what, const char *path) {
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: MEMALLOC_TRACE: ");
    msg_str(&m, what);
    msg_str(&m, path);
    msg_str(&m, "; the program runs untraced");
    msg_emit(&m);
}

/* path.PID into out (cap bytes); 0 if it does not fit. */
static int pid_path(char *out, size_t cap) {
    struct msg m = {.len = 0};
    msg_str(&m, trace_path);
    msg_str(&m, ".");
    msg_dec(&m, (uint64_t)os_getpid());
    if (m.len + 1 > cap) return 0;
    memcpy(out, m.buf, m.len);
    out[m.len] = '\0';
    return 1;
}

static void fork_child(void);
static void plain_limit_update(void);

/* The trace file at path, opened for this process: created if it does
 * not exist (*fresh set); kept, to be written on, if it is this process's
 * own from before an exec (its INFO names this PID); else -1, or, with
 * truncate, emptied for this process. */
static int open_own(const char *path, int truncate, int *fresh) {
    *fresh = 1;
    int fd = os_open_log(path, OS_LOG_NEW);
    if (fd >= 0) return fd;
    char head[16 + 8];
    uint32_t pid;
    if (os_read_file(path, head, sizeof head) == (long)sizeof head &&
        memcmp(head, "MEMTRC01", 8) == 0) {
        memcpy(&pid, head + 16 + 4, 4);
        if (pid == (uint32_t)os_getpid()) {
            *fresh = 0;
            return os_open_log(path, OS_LOG_APPEND);
        }
    }
    return truncate ? os_open_log(path, OS_LOG_TRUNCATE) : -1;
}

/* Open the file and write its start: magic, INFO, MAPS, HEAP. first: the
 * process that MEMALLOC_TRACE started in (FILE, else FILE.PID), not a
 * child after fork (FILE.PID). trace_mutex held. */
static int open_file(int first) {
    char alt[sizeof trace_path + 24];
    int fresh = 1;
    int fd = first ? open_own(trace_path, 0, &fresh) : -1;
    if (fd < 0 && pid_path(alt, sizeof alt)) fd = open_own(alt, 1, &fresh);
    if (fd < 0) {
        warn("cannot create ", trace_path);
        return 0;
    }
    store_relaxed(&trace_fd, fd);
    start_ns = os_now_ns();
    start_ms = os_now_ms();
    maps_hash = 0;
    if (fresh) os_write(fd, "MEMTRC01", 8);
    put_info();
    put_maps();
    put_heap_locked(NULL, 0);
    return 1;
}

static int start_locked(void) {
    const char *name = os_getenv("MEMALLOC_TRACE");
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= sizeof trace_path - 24) {
        warn("file name too long: ", name ? name : "");
        return 0;
    }
    memcpy(trace_path, name, len + 1);
    interval = opt_get(OPT_TRACE_SAMPLE);
    offgrid_key = hash64(os_cookie_value ^ 0x6f666667726964ull);
    scratch = os_map(SCRATCH_BYTES);
    int tables = table_map(&retired) && table_map(&merged) && table_map(&aggs_retired) &&
                 table_map(&aggs_merged);
    stacks_written = os_map(STACK_ID_LIMIT / 8);
    if (!scratch || !tables || !stacks_written) {
        warn("out of memory for ", trace_path);
        return 0;
    }
    if (!open_file(1)) return 0;
    plain_limit_update();
    pthread_key_create(&exit_key, thread_exit);
    if (!atfork_done)
        pthread_atfork(set_lock_all, set_unlock_all, fork_child); /* may allocate: in_trace */
    atfork_done = 1;
    return 1;
}

/* The trace failed to start (or a fork's child failed to open its file):
 * the fast paths again, unless off-grid blocks may be live (a fork's
 * parent made some), which only the trace's hooks can free. */
static void stop_tracing(void) {
    if (load_relaxed(&offgrid_made)) return;
    store_relaxed(&ma_tracing, 0);
    tc_limit_update();
}

static __attribute__((noinline, cold)) int start(void) {
    pthread_mutex_lock(&trace_mutex);
    int st = load_relaxed(&trace_state);
    if (st == T_OFF) {
        in_trace = 1;
        st = start_locked() ? T_ON : T_DONE;
        if (st == T_DONE) stop_tracing();
        store_release(&trace_state, st);
        in_trace = 0;
    }
    pthread_mutex_unlock(&trace_mutex);
    return st == T_ON;
}

static __attribute__((noinline)) struct tstate *enter_slow(void) {
    if (in_trace || mine) return NULL; /* inside the trace, or after its end */
    if (load_acquire(&trace_state) != T_ON && !start()) return NULL;
    return state_new();
}

/* The calling thread's state, as the thread enters the trace's code
 * (leave(s) when it is done); NULL when this call is not to be traced:
 * the trace's own (libunwind's allocations while this thread walks its
 * stack, say), or no trace. */
static inline struct tstate *enter(void) {
    struct tstate *s = me;
    if (likely(s != NULL)) {
        me = NULL;
        return s;
    }
    return enter_slow();
}
static inline void leave(struct tstate *s) {
    me = s;
}

/* In a child after fork: a trace of its own, FILE.PID, from nothing (the
 * parent's records and tables stay the parent's; its sampled blocks stay
 * in the set, which frees the off-grid ones, but their FREEs are not
 * written). */
static void fork_child(void) {
    set_fork_child();
    if (load_relaxed(&trace_state) != T_ON) return;
    pthread_mutex_init(&trace_mutex, NULL);
    os_close(trace_fd);
    live = spare = NULL;
    if (mine) {
        state_reset(mine);
        memset(mine->ring, 0, sizeof mine->ring); /* the parent's samples: alone here */
        mine->len = 0;
        live = mine;
    }
    table_clear(&retired);
    table_clear(&aggs_retired);
    memset(lifetimes_retired, 0, sizeof lifetimes_retired);
    memset(&retired_sizes, 0, sizeof retired_sizes);
    os_unmap(stacks_written, STACK_ID_LIMIT / 8);
    stacks_written = os_map(STACK_ID_LIMIT / 8);
    next_heap_ms = next_sum_ms = next_classes_ms = 0;
    peak_mark = 0;
    if (!stacks_written || !open_file(0)) {
        store_relaxed(&trace_state, T_DONE);
        stop_tracing();
    }
}

/* ---- the hooks ---- */

/* An allocation as the engine makes it untraced: a pop from the thread's
 * page below plain_limit (what tc_limit would be untraced), else the
 * slow path. */
static size_t plain_limit;

static void plain_limit_update(void) {
    size_t t = mmap_threshold();
    t = t < CLASS_MAX + 1 ? t : CLASS_MAX + 1;
    /* stored only when it changes: every thread reads it on every call */
    if (load_relaxed(&plain_limit) != t) store_relaxed(&plain_limit, t);
}

static inline void *plain(size_t n, size_t align, int zero) {
    if (zero) {
        void *p = n < load_relaxed(&plain_limit) ? tc_pop(tc_current, class_of(n)) : NULL;
        return p ? memset(p, 0, n) : ma_calloc(n, 1);
    }
    if (align > ALIGNMENT) {
        void *p = n < load_relaxed(&plain_limit) ? ma_aligned_object(align, n) : NULL;
        return p ? p : ma_aligned(align, n);
    }
    if (likely(n < load_relaxed(&plain_limit))) {
        void *p = tc_pop(tc_current, class_of(n));
        if (likely(p != NULL)) return p;
    }
    return ma_malloc_slow(n);
}

/* ---- samples whose ALLOC waits ----
 *
 * With sampling (not MEMALLOC_TRACE_SAMPLE=1), a sample's ALLOC is not
 * written at once: it waits in a ring of its thread's. A sample
 * freed before any HEAP record was written in its life (most of them:
 * temporaries, buffers of a loop) cannot be live at the peak nor leak, so
 * it is only counted (aggregate): the trace then grows with what outlives
 * a HEAP record, not with the allocations. A sample that lived across one
 * has its ALLOC written when it is freed; one the ring has no more room
 * for, once a second if a HEAP record came in its life, and at its
 * thread's exit and at exit, when it is still live. The block's header
 * (a chunk's: its entry in the set) names its slot; whoever empties a slot (compare-and-swap of its
 * block) is the only one to write its ALLOC or count it. */

/* e's fields, as the slot's holder of p reads them (other threads may
 * read them too, and at exit the owner may be writing them anew). */
static struct pend pend_read(const struct pend *e, void *p) {
    return (struct pend){p,
                         load_relaxed(&e->t),
                         load_relaxed(&e->size),
                         load_relaxed(&e->seq),
                         load_relaxed(&e->epoch),
                         load_relaxed(&e->stack),
                         0};
}

static void put_late_alloc(struct tstate *s, const struct pend *w) {
    put_event(s, EV_ALLOC | EV_SIGNED, w->t, (uintptr_t)w->p, w->size, w->stack, w->seq);
}

/* The slot of s's ring that now holds p (of size bytes, at t, seq, with
 * stack); the ALLOC of the sample it held is written. Owner only. */
static uint32_t pend_put(struct tstate *s, void *p, uint64_t t, uint64_t size, uint64_t seq,
                         uint32_t stack) {
    uint32_t i = s->ring_head++ & (RING - 1);
    struct pend *e = &s->ring[i];
    void *old = exchange_acquire(&e->p, NULL);
    if (old) {
        struct pend w = pend_read(e, old);
        put_late_alloc(s, &w);
    }
    store_relaxed(&e->t, t);
    store_relaxed(&e->size, size);
    store_relaxed(&e->seq, seq);
    store_relaxed(&e->epoch, __atomic_load_n(&heap_epoch, __ATOMIC_SEQ_CST));
    store_relaxed(&e->stack, stack);
    store_release(&e->p, p);
    return i;
}

/* Empty the slot that pending names (a header's: state | slot) if it
 * still holds p: 1, and its fields in *out (read before the exchange,
 * which proves them p's). 0 if p's ALLOC was written. Any thread. */
static int pend_take(uint64_t pending, void *p, struct pend *out) {
    if (!pending) return 0;
    struct tstate *o = (struct tstate *)(uintptr_t)(pending & ~(uint64_t)4095);
    struct pend *e = &o->ring[pending & 4095];
    if (load_acquire(&e->p) != p) return 0;
    *out = pend_read(e, p);
    void *expected = p;
    return cas_acquire_strong(&e->p, &expected, NULL);
}

/* Write the ALLOCs waiting in s's ring: all of them, or (!all) those
 * that a HEAP record came after (their ALLOC will be written anyway:
 * now, a program killed later still has them). */
static void pend_flush(struct tstate *s, int all) {
    uint64_t epoch = __atomic_load_n(&heap_epoch, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < RING; i++) {
        struct pend *e = &s->ring[i];
        if (!load_relaxed(&e->p) || (!all && load_relaxed(&e->epoch) == epoch)) continue;
        void *old = exchange_acquire(&e->p, NULL);
        if (old) {
            struct pend w = pend_read(e, old);
            put_late_alloc(s, &w);
        }
    }
}

/* Every TICK allocations of a thread: its buffer out if it waited a
 * second; HEAP every HEAP_EVERY_MS of the whole process (or longer,
 * above), and at each new peak (1/16 above the last), with the summary
 * records at a peak and every SUM_EVERY_MS (or longer). */
static __attribute__((noinline)) void tick(struct tstate *s) {
    if (load_relaxed(&trace_state) != T_ON) return;
    uint64_t ms = os_now_ms();
    plain_limit_update(); /* the dynamic mmap threshold may have risen */
    if (ms >= s->flush_ms) {
        s->flush_ms = ms + FLUSH_EVERY_MS;
        pend_flush(s, 0);
        buf_lock(s);
        flush_locked(s);
        buf_unlock(s);
    }
    size_t in = load_relaxed(&ma_counters.in_use), mark = load_relaxed(&peak_mark);
    uint64_t due = load_relaxed(&next_heap_ms), sum = load_relaxed(&next_sum_ms);
    uint64_t age = ms - start_ms;
    uint64_t heap_every = age / 1000 > HEAP_EVERY_MS ? age / 1000 : HEAP_EVERY_MS;
    uint64_t sum_every = age / 10 > SUM_EVERY_MS ? age / 10 : SUM_EVERY_MS;
    if (in > mark && cas_relaxed(&peak_mark, &mark, in + in / 16)) {
        store_relaxed(&next_heap_ms, ms + heap_every);
        uint64_t cl = load_relaxed(&next_classes_ms);
        put_heap(s, ms >= cl && cas_relaxed(&next_classes_ms, &cl, ms + CLASSES_EVERY_MS));
        put_summary();
    } else if (ms >= due && cas_relaxed(&next_heap_ms, &due, ms + heap_every)) {
        put_heap(s, 0);
    }
    if (ms >= sum && cas_relaxed(&next_sum_ms, &sum, ms + sum_every)) put_summary();
}

/* A block that is not an object of a page: its free reaches trace_freed. */
static void *unpaged(size_t n, size_t align, int zero) {
    /* above the pages' sizes the engine's own choice is never an object
     * (and asks for huge pages, zeroes only what is dirty...) */
    if (n >= load_relaxed(&plain_limit)) return plain(n, align, zero);
    size_t usable;
    void *p = ma_alloc_unpaged(n, align > ALIGNMENT ? align : ALIGNMENT, &usable);
    if (p && zero) memset(p, 0, n);
    return p;
}

/* An off-grid block: a sample in an object of a page, after a header
 * that says what the set says of a chunk's sample. The block is off its
 * page's grid, so the free fast path declines it and every call that
 * hands it back comes to the trace, which finds the header before it.
 * (An object of 16 or 32 bytes is never one: its OFFGRID would be on the
 * grid.) Such a sample costs what the engine's own objects cost, and any
 * thread frees it without a lock. */
struct offgrid {
    uint64_t magic;   /* offgrid_magic(block): a header (its free clears it) */
    uint64_t pending; /* its allocating thread's state | the ring slot its ALLOC waits in, or 0 */
    uint64_t seq_gen; /* seq (48 bits), gen16() << 48 */
    int tid;
    uint32_t stack;
};
#define SEQ_MASK (((uint64_t)1 << 48) - 1)
#define OFFGRID  sizeof(struct offgrid)
_Static_assert(OFFGRID % ALIGNMENT == 0 && OFFGRID == 32, "off-grid blocks stay aligned");

/* Odd: a free object's first word, a pointer, is never one. */
static uint64_t offgrid_magic(const void *p) {
    return hash64(offgrid_key ^ (uintptr_t)p) | 1;
}

/* p's header if p is an off-grid block, else NULL; any p. */
static struct offgrid *offgrid_of(const void *p) {
    if (!load_relaxed(&offgrid_made) || ((uintptr_t)p & (ALIGNMENT - 1)) || (uintptr_t)p < OFFGRID)
        return NULL;
    struct offgrid *h = (struct offgrid *)((char *)p - OFFGRID);
    return ma_object_at(h) && h->magic == offgrid_magic(p) ? h : NULL;
}

static size_t offgrid_usable(const void *p) {
    return ma_object_at((const char *)p - OFFGRID) - OFFGRID;
}
static void offgrid_free(void *p) {
    struct offgrid *h = (struct offgrid *)((char *)p - OFFGRID);
    h->magic = 0; /* a second free of p is no off-grid block's */
    ma_free_object(h);
}

/* The block of a sample of n bytes: off-grid if an object can hold it,
 * else unpaged. *off: which. */
static void *sample_block(size_t n, size_t align, int zero, int *off) {
    *off = 0;
    if (n && align <= ALIGNMENT && n <= CLASS_MAX - OFFGRID && n < load_relaxed(&plain_limit)) {
        size_t usable;
        char *b = ma_alloc_object(n + OFFGRID > 48 ? n + OFFGRID : 48, &usable);
        if (b) {
            if (!load_relaxed(&offgrid_made)) store_relaxed(&offgrid_made, 1);
            *off = 1;
            if (zero) memset(b + OFFGRID, 0, n);
            return b + OFFGRID;
        }
    }
    return unpaged(n, align, zero);
}

static int sample_due(struct tstate *s, size_t n) {
    return n >= s->left || interval == 1;
}

/* The id of a sample's stack: given, or taken now, with its STACK record
 * if it is new. */
static uint32_t sample_stack(struct tstate *s, void *ra, uint32_t given) {
    if (given) return given;
    /* a thread's first walks by libgcc's unwinder, the later ones by
     * libunwind (stack.h: its cache is worth it for a thread that samples
     * much) */
    uint32_t id = ++s->walks <= LIGHT_WALKS ? stack_capture_light(ra, TRACE_DEPTH)
                                            : stack_capture(ra, TRACE_DEPTH);
    if (id && id < STACK_ID_LIMIT) {
        uint64_t bit = (uint64_t)1 << (id & 63);
        /* read first: threads that sample the same stacks share the word */
        if (!(load_relaxed(&stacks_written[id >> 6]) & bit) &&
            !(or_relaxed(&stacks_written[id >> 6], bit) & bit)) {
            void *const *f;
            uint32_t head[2] = {id, stack_frames(id, &f)};
            put(s, R_STACK, head, sizeof head, f, head[1] * sizeof(void *));
        }
    }
    return id;
}

/* p, of n bytes (off: off-grid), was sampled: its header or its entry in
 * the set, and its ALLOC with its stack (given, or taken now) while the
 * trace is on. seq: the thread's allocations before this one. An
 * off-grid block always is (its header is the record); a chunk's sample
 * is not followed if the set had no room. */
static void record_alloc(struct tstate *s, void *p, size_t n, void *ra, uint32_t stack,
                         uint64_t seq, int off) {
    int on = load_relaxed(&trace_state) == T_ON;
    uint32_t id = on ? sample_stack(s, ra, stack) : 0;
    /* with every allocation sampled, every ALLOC is written at once */
    uint64_t pending =
        on && interval > 1 ? (uintptr_t)s | pend_put(s, p, now_rel(), n, seq, id) : 0;
    if (off) {
        struct offgrid *h = (struct offgrid *)((char *)p - OFFGRID);
        *h = (struct offgrid){offgrid_magic(p), pending, (seq & SEQ_MASK) | (uint64_t)gen16() << 48,
                              s->tid, id};
    } else if (!on || !set_insert((struct sample){(uintptr_t)p, seq, s->tid, id, 0, pending})) {
        struct pend w;
        pend_take(pending, p, &w); /* not followed: its ALLOC is not written either */
        return;
    }
    if (on && !pending) put_event(s, EV_ALLOC, now_rel(), (uintptr_t)p, n, id, seq);
}

/* The free of sampled block p (e: its entry, taken out of the set, or
 * its header's) by s (NULL: untraced) at seq (the thread's allocations
 * so far), if this process made it and the trace is on: its ALLOC if that
 * waited, then its FREE; or only its count if its ALLOC waited and no
 * HEAP record came in its life (aggregate). Its slot is emptied
 * whatever s and the trace's state. */
static void put_free(struct tstate *s, void *p, const struct sample *e, uint64_t seq) {
    struct pend w = {0};
    int waited = pend_take(e->pending, p, &w);
    if (!s || e->gen != gen16() || load_acquire(&trace_state) != T_ON) return;
    int temporary = e->tid == s->tid && e->seq + 1 == seq;
    uint64_t now = now_rel();
    if (waited && w.epoch == __atomic_load_n(&heap_epoch, __ATOMIC_SEQ_CST)) {
        aggregate(s, w.stack, w.size, now > w.t ? now - w.t : 0, temporary);
        return;
    }
    if (waited) put_late_alloc(s, &w);
    put_event(s, EV_FREE | (temporary ? EV_TEMPORARY : 0), now, (uintptr_t)p, 0, 0, seq);
}

/* p's sample, if it is one: 2 if off-grid (its header into *e), 1 if a
 * chunk's (its entry, taken out of the set), else 0. */
static int sample_of(void *p, struct sample *e) {
    const struct offgrid *h = offgrid_of(p);
    if (h) {
        *e = (struct sample){(uintptr_t)p, h->seq_gen & SEQ_MASK,        h->tid,
                             h->stack,     (uint32_t)(h->seq_gen >> 48), h->pending};
        return 2;
    }
    return set_lookup(p, e, 1);
}

/* The allocation the countdown picked: a sample block, recorded, and the
 * countdown rearmed; then the tick it may be due for. */
static __attribute__((noinline)) void *sampled_alloc(struct tstate *s, size_t n, size_t align,
                                                     int zero, void *ra) {
    int off;
    void *p = sample_block(n, align, zero, &off);
    s->left = next_countdown(s);
    if (p) {
        record_alloc(s, p, n, ra, 0, s->seq - 1, off);
        tick(s); /* a large block may make a peak, however few the calls */
    }
    return p;
}

static inline __attribute__((always_inline)) void *alloc_counted(struct tstate *s, size_t n,
                                                                 size_t align, int zero, void *ra) {
    count(s, ra, n);
    if (unlikely(sample_due(s, n))) return sampled_alloc(s, n, align, zero, ra);
    s->left -= n;
    void *p = plain(n, align, zero);
    if (unlikely((s->seq & (TICK - 1)) == 0)) tick(s);
    return p;
}

static __attribute__((noinline)) void *trace_malloc_slow(size_t n, void *ra) {
    struct tstate *s = enter();
    if (unlikely(!s)) return plain(n, 0, 0);
    void *p = alloc_counted(s, n, 0, 0, ra);
    leave(s);
    return p;
}

/* malloc's and calloc's common case, with no call: the thread's last
 * call site again, no sample and no tick due, and an object on the
 * thread's page, counted after the pop; NULL for anything else (the slow
 * path). (A signal handler's malloc in the middle of it may lose a count:
 * the counters are the owner's plain adds.) */
static inline __attribute__((always_inline)) void *fast_pop(size_t n, void *ra) {
    struct tstate *s = me;
    /* (a site's ra is never 0: count() keeps ra 0 as 1, in the slow path) */
    if (likely(s != NULL) && likely(s->last->ra == (uintptr_t)ra) && likely(n < s->left) &&
        likely(((s->seq + 1) & (TICK - 1)) != 0) && likely(n < load_relaxed(&plain_limit))) {
        void *p = tc_pop(tc_current, class_of(n));
        if (likely(p != NULL)) {
            /* n > 0 (class 0, malloc(0)'s, has no pages: zero.h) and n <= CLASS_MAX */
            if (n == 0) __builtin_unreachable();
            unsigned b = 64 - (unsigned)__builtin_clzll(n);
            struct site *e = s->last;
            s->seq++;
            s->left -= n;
            store_relaxed(&s->sizes.calls[b], s->sizes.calls[b] + 1);
            store_relaxed(&s->sizes.bytes[b], s->sizes.bytes[b] + n);
            store_relaxed(&e->calls, e->calls + 1);
            store_relaxed(&e->bytes, e->bytes + n);
            return p;
        }
    }
    return NULL;
}

void *trace_malloc(size_t n, void *ra) {
    void *p = fast_pop(n, ra);
    return likely(p != NULL) ? p : trace_malloc_slow(n, ra);
}

void *trace_alloc(size_t n, size_t align, int zero, void *ra) {
    struct tstate *s = enter();
    if (!s) return plain(n, align, zero);
    void *p = alloc_counted(s, n, align, zero, ra);
    leave(s);
    return p;
}

void *trace_calloc(size_t n, size_t size, void *ra) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return ma_calloc(n, size); /* ENOMEM */
    void *p = fast_pop(total, ra);
    return likely(p != NULL) ? memset(p, 0, total) : trace_alloc(total, 0, 1, ra);
}

/* realloc of off-grid block p (e: its sample) to n > 0 bytes: p itself
 * where the engine would keep an object in place, else a new block with
 * p's bytes (a sample block when s, else the engine's), and p freed;
 * recorded as the same sample (a FREE, then an ALLOC with its stack) when
 * s. NULL if there is no memory: p as it was. */
static void *offgrid_realloc(struct tstate *s, void *p, size_t n, const struct sample *e, void *ra,
                             uint64_t seq) {
    size_t usable = offgrid_usable(p);
    int off = 1;
    void *q = p;
    if (!s || n > usable || n < usable / 2) { /* untraced: off the grid for good */
        q = s ? sample_block(n, 0, 0, &off) : plain(n, 0, 0);
        if (!q) return NULL;
        memcpy(q, p, n < usable ? n : usable);
    }
    put_free(s, p, e, seq); /* (its slot emptied, untraced too) */
    if (s) record_alloc(s, q, n, ra, e->stack, seq, off);
    if (q != p) offgrid_free(p);
    return q;
}

/* q, just allocated by realloc for a sample (a FREE, then an ALLOC, or a
 * block the countdown picked): a sample block with its bytes if q is an
 * object of a page, and recorded; q as it is if no block can be had. */
static void *realloc_sampled(struct tstate *s, void *q, size_t n, void *ra, uint32_t stack,
                             uint64_t seq, const char *who) {
    int off = 0;
    void *r = q;
    if (ma_object_at(q)) {
        r = sample_block(n, 0, 0, &off);
        if (!r) return q;
        memcpy(r, q, n);
        ma_free(q, who);
    }
    record_alloc(s, r, n, ra, stack, seq, off);
    return r;
}

/* realloc: the calls and bytes asked count at its site; the countdown
 * runs by the bytes the block grows (a builder grown a byte at a time is
 * not sampled at every step). A sampled block stays sampled (a FREE, then
 * an ALLOC with its stack: no walk); a block not sampled is sampled when
 * the countdown says. An off-grid block is the trace's to move or free,
 * whether the trace is still on or not. */
void *trace_realloc(void *p, size_t n, const char *who, void *ra) {
    if (!p) return trace_alloc(n, 0, 0, ra);
    struct sample e;
    int sampled = sample_of(p, &e), off = sampled == 2;
    struct tstate *s = enter();
    if (n == 0) {
        if (sampled) put_free(s, p, &e, s ? s->seq : 0);
        if (off)
            offgrid_free(p);
        else
            ma_realloc(p, 0, who);
        if (s) leave(s);
        return NULL;
    }
    if (!s) {
        /* the trace's own call (never a sample), or after the trace's end */
        return off ? offgrid_realloc(NULL, p, n, &e, ra, 0) : ma_realloc(p, n, who);
    }
    uint64_t seq = s->seq;
    count(s, ra, n);
    void *q;
    if (off) {
        q = offgrid_realloc(s, p, n, &e, ra, seq);
    } else {
        size_t old;
        q = ma_realloc_from(p, n, who, &old);
        if (!q) {
            if (sampled) set_insert(e); /* p is as it was */
        } else if (sampled) {
            put_free(s, p, &e, seq);
            q = realloc_sampled(s, q, n, ra, e.stack, seq, who);
        } else if (n > old && n - old >= s->left) {
            s->left = next_countdown(s);
            q = realloc_sampled(s, q, n, ra, 0, seq, who);
        } else if (n > old) {
            s->left -= n - old;
        }
    }
    if ((s->seq & (TICK - 1)) == 0) tick(s);
    leave(s);
    return q;
}

int trace_freed(void *p) {
    struct sample e;
    int sampled = sample_of(p, &e);
    if (!sampled) return 0;
    struct tstate *s = enter();
    put_free(s, p, &e, s ? s->seq : 0);
    if (s) leave(s);
    if (sampled != 2) return 0;
    offgrid_free(p);
    return 1;
}

size_t trace_usable(const void *p) {
    return offgrid_of(p) ? offgrid_usable(p) : 0;
}

void trace_exit(void) {
    if (load_acquire(&trace_state) != T_ON || in_trace) return;
    in_trace = 1;
    me = NULL; /* from now on this thread's allocations are untraced */
    put_heap(mine, 1);
    pthread_mutex_lock(&trace_mutex);
    for (struct tstate *s = live; s; s = s->next) pend_flush(s, 1);
    put_summary_locked();
    for (struct tstate *s = live; s; s = s->next) {
        buf_lock(s);
        flush_locked(s);
        buf_unlock(s);
    }
    struct memalloc_stats st;
    stats_get(&st, NULL);
    uint64_t end[6] = {now_rel(),      st.allocs,           st.frees,
                       st.peak_in_use, os_peak_rss_bytes(), st.in_use};
    put(NULL, R_END, end, sizeof end, NULL, 0);
    store_release(&trace_state, T_DONE);
    pthread_mutex_unlock(&trace_mutex);
    in_trace = 0;
}
