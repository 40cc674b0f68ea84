/*
 * check.c: the heap checker (memalloc_check). With every lock held
 * (lock_world), walks every arena's regions chunk by chunk and its bins,
 * every page of size classes, every mapped block, the calling thread's
 * cache and the orphaned pages, and verifies the invariants written in
 * chunk.h, bins.h, region.h, page.h and orphan.h, plus the counters.
 * Other threads' pages change without a lock: only their headers and
 * windows are checked, not their lists. Reports each violation on stderr
 * (the first 20) and returns how many. The top of the engine: it reads
 * every layer's structures and changes none.
 */
#include "check.h"

#include "arena.h"
#include "counters.h"
#include "debug.h"
#include "init.h"
#include "large.h"
#include "memalloc.h"
#include "msg.h"
#include "tcache.h"
#include "zero.h"

struct walk {
    int errors;
    size_t free_chunks;    /* seen walking the regions */
    size_t per_bin[NBINS]; /* free chunks seen walking the regions, per bin */
    size_t in_use_bytes;   /* chunk sizes of in-use heap chunks */
    size_t usable_bytes;   /* usable sizes of every live block */
    size_t large_bytes, large_blocks;
    size_t pages_seen, pages_walked; /* pages of ours or orphaned: in the regions, listed */
    const void *damaged;             /* the first checked block found damaged (check modes) */
    int quiet;                       /* count violations, print none */
};

/* Checked block p (a check mode's) is damaged at bad: count and report it. */
static void block_damaged_at(struct walk *w, const void *p, const char *bad) {
    if (!w->damaged) w->damaged = p;
    struct msg m = {.len = 0};
    if (w->errors++ >= 20 || w->quiet) return;
    msg_str(&m, "memalloc: check: checked block ");
    msg_hex(&m, (uintptr_t)p);
    msg_str(&m, " damaged at ");
    msg_hex(&m, (uintptr_t)bad);
    msg_str(&m, bad < (const char *)p ? " (before it)" : " (after it, or in it while freed)");
    msg_emit(&m);
}

/* A chunk or mapped block in use with payload q: if it holds a checked
 * block whose canaries or fill are damaged, report it. */
static void check_block(struct walk *w, void *q, size_t usable) {
    const void *p = NULL;
    const char *bad = dbg_block_damaged(q, usable, &p);
    if (bad) block_damaged_at(w, p, bad);
}

static void report(struct walk *w, const char *what, const void *where) {
    if (w->errors++ >= 20 || w->quiet) return;
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: check: ");
    msg_str(&m, what);
    msg_str(&m, " at ");
    msg_hex(&m, (uintptr_t)where);
    msg_emit(&m);
}

#define EXPECT(w, cond, what, where)                                                               \
    do {                                                                                           \
        if (!(cond)) report(w, what, where);                                                       \
    } while (0)

static int all_zero(const char *p, const char *end) {
    for (; p < end; p += sizeof(size_t))
        if (*(const size_t *)(const void *)p) return 0;
    return 1;
}

static void check_windows(struct region *r, struct walk *w);

/* Walk one region from its first chunk to the fencepost. */
static void check_region(struct heap *h, struct region *r, struct walk *w) {
    char *fence = (char *)region_fence(r);
    struct chunk *c = region_first(r);
    int prev_free = 0;
    EXPECT(w, r->heap == h, "region of another arena", r);
    EXPECT(w, region_lookup(r) == r && region_lookup(fence) == r, "region missing from the map", r);
    EXPECT(w, pinuse(c), "first chunk without PINUSE", c);
    while ((char *)c < fence) {
        size_t size = chunk_size(c);
        if (((uintptr_t)c & 15) || size < MIN_CHUNK || size > (size_t)(fence - (char *)c) ||
            !tag_ok(c)) {
            report(w, "broken chunk head", c);
            return; /* cannot walk further */
        }
        struct chunk *next = chunk_next(c);
        EXPECT(w, !is_mmapped(c), "MMAPPED flag inside a region", c);
        EXPECT(w, !cinuse(c) || !(head_get(c) & PURGED), "PURGED flag on an in-use chunk", c);
        EXPECT(w, cinuse(c) == pinuse(next), "CINUSE disagrees with the next PINUSE", c);
        EXPECT(w, pinuse(c) == !prev_free, "PINUSE disagrees with the previous chunk", c);
        if (cinuse(c)) {
            w->in_use_bytes += size;
            w->usable_bytes += usable_size(c);
            if (dbg_on() && !page_of(r, chunk_payload(c)))
                check_block(w, chunk_payload(c), usable_size(c));
            prev_free = 0;
        } else {
            EXPECT(w, !prev_free, "two free chunks side by side", c);
            EXPECT(w, next->prev_foot == size, "footer disagrees with the size", c);
            w->free_chunks++;
            w->per_bin[bin_index(size)]++;
            prev_free = 1;
        }
        c = next;
    }
    EXPECT(w, (char *)c == fence, "chunks do not tile the region", c);
    check_windows(r, w);
    EXPECT(w, chunk_size(c) == 0 && cinuse(c) && tag_ok(c), "broken fencepost", c);
    EXPECT(w, r->fresh >= (char *)region_first(r) && r->fresh <= region_end(r),
           "fresh mark out of range", r);
    EXPECT(w, r->open == region_end(r) || (r->open >= r->fresh && r->open < region_end(r)),
           "open mark out of range", r->open);
    /* (not at exit: it reads the whole untouched rest of the region) */
    if (r->fresh < fence && !w->quiet) {
        const char *upto = r->open < fence ? r->open : fence;
        EXPECT(w, all_zero(r->fresh, upto), "dirty bytes above the fresh mark", r->fresh);
    }
}

/*
 * Every listed chunk is a free chunk of a region, in the bin of its size,
 * with symmetric links (so listed at most once); with the per-bin counts of
 * the region walk equal to the list lengths, every free chunk is listed.
 */
static void check_bins(struct heap *h, struct walk *w) {
    size_t listed = 0;
    for (unsigned i = 0; i < NBINS; i++) {
        size_t len = 0;
        struct freelink *bin = &h->bins.list[i];
        int nonempty = bin->next != bin;
        int bit = (h->bins.bitmap[i / 64] >> (i % 64)) & 1;
        EXPECT(w, nonempty == bit, "bitmap bit disagrees with its bin", bin);
        for (struct freelink *l = bin->next; l != bin; l = l->next) {
            struct chunk *c = link_chunk(l);
            EXPECT(w, l->next->prev == l && l->prev->next == l, "asymmetric free-list links", c);
            EXPECT(w, region_lookup(c) != NULL, "free chunk outside every region", c);
            if (!region_lookup(c)) return;
            EXPECT(w, !cinuse(c) && tag_ok(c), "in-use or broken chunk on a free list", c);
            EXPECT(w, bin_index(chunk_size(c)) == i, "free chunk in the wrong bin", c);
            len++;
            if (++listed > w->free_chunks + 1) {
                report(w, "more chunks listed than free: a cycle?", c);
                return;
            }
        }
        EXPECT(w, len == w->per_bin[i], "free chunks missing from their bin's list", bin);
    }
    EXPECT(w, listed == w->free_chunks, "free lists and regions disagree on the free chunks", h);
}

static void check_large(const struct chunk *c, void *ctx) {
    struct walk *w = ctx;
    size_t page = os_page_size();
    EXPECT(w, tag_ok(c) && is_mmapped(c) && cinuse(c), "broken mapped chunk", c);
    EXPECT(w, ((uintptr_t)c - c->prev_foot) % page == 0, "mapped chunk lead off a page", c);
    EXPECT(w, (chunk_size(c) + c->prev_foot) % page == 0, "mapped length off a page", c);
    w->large_blocks++;
    if (dbg_on()) check_block(w, chunk_payload((struct chunk *)c), usable_size(c));
    w->large_bytes += chunk_size(c) + c->prev_foot;
    w->usable_bytes += usable_size(c);
}

/* Page g of class k, owned by owner: its lists too if the calling thread
 * owns it, or nobody does (an orphan: its arena's lock is held); and then
 * the checked blocks of its objects (another thread's may be half made). */
static void expect_page(struct walk *w, const struct page *g, unsigned k,
                        const struct tcache *owner) {
    int mine = !owner || owner == tc_self();
    const char *why = page_check(g, k, owner, mine);
    if (why) report(w, why, g);
    if (!mine || why || !dbg_on()) return;
    for (char *q = g->start; q < page_bump(g); q += g->size) {
        const void *p = NULL;
        const char *bad = dbg_object_damaged(q, g->size, &p);
        if (bad) block_damaged_at(w, p, bad);
    }
}

/* The pages of a region: every run of marked windows starts at a page
 * that passes page_check (which checks that each of its windows names
 * it); no window is marked that no page covers. */
static void check_windows(struct region *r, struct walk *w) {
    for (size_t i = 1; i < REGION_WINDOWS;) {
        uint32_t v = r->win[i];
        if (v == 0) {
            i++;
            continue;
        }
        const struct page *g = page_header((uintptr_t)r + (i << WINDOW_SHIFT));
        if (v != (uint32_t)((const char *)g - (const char *)r) || g->tag != obj_key(g) ||
            g->k >= NCLASSES || g->nwin == 0) {
            report(w, "window marked without a page", g);
            i++;
            continue;
        }
        const struct tcache *owner = load_relaxed(&g->owner);
        if (!owner || owner == tc_self()) {
            /* walked in full below, from the queues and orphan rings */
            w->pages_seen++;
        } else {
            expect_page(w, g, g->k, owner);
        }
        i += g->nwin;
    }
    EXPECT(w, r->win[0] == 0, "page in a region's first window", r);
}

/* The calling thread's cache: its pages, current and queued. */
static void check_cache(const struct tcache *t, struct walk *w) {
    for (unsigned k = 0; k < NCLASSES; k++) {
        /* its foreign objects: freed (their keys), of class k, counted */
        unsigned nf = 0;
        for (const struct tblock *b = t->foreign[k]; b && nf <= t->nforeign[k]; b = b->next, nf++) {
            const struct region *r = region_lookup(b);
            const struct page *g = r ? page_of(r, b) : NULL;
            EXPECT(w, g && g->k == k && page_holds(g, b), "foreign object not of its class", b);
            EXPECT(w, b->key == obj_key(b), "foreign object without its key", b);
            if (!g || g->k != k) break;
        }
        EXPECT(w, nf == t->nforeign[k], "foreign objects miscounted", t);
        const struct page *g = t->cur[k];
        if (g != &tc_nopage) {
            expect_page(w, g, k, t);
            EXPECT(w, !g->next, "current page also queued", g);
            w->pages_walked++;
        }
        const struct page *ring = t->queue[k];
        size_t n = 0;
        for (g = ring; g && (n == 0 || g != ring); g = g->next) {
            expect_page(w, g, k, t);
            EXPECT(w, g->next && g->next->prev == g, "broken page queue", g);
            w->pages_walked++;
            if (++n > 1u << 20) {
                report(w, "page queue without end: a cycle?", g);
                break;
            }
        }
    }
}

/* Arena a's orphaned pages (lock held). */
static void check_orphans(struct arena *a, struct walk *w) {
    size_t kept = 0;
    for (unsigned k = 0; k < NCLASSES; k++) {
        const struct page *ring = a->orphans.ring[k], *g;
        size_t n = 0;
        for (g = ring; g && (n == 0 || g != ring); g = g->next) {
            expect_page(w, g, k, NULL);
            EXPECT(w, arena_of(region_of(g)) == a, "orphaned page of another arena", g);
            EXPECT(w, g->next && g->next->prev == g, "broken orphan ring", g);
            EXPECT(w, (g->used == 0) == (g->kept != 0), "idle orphan not counted, or counted busy",
                   g);
            kept += g->kept;
            w->pages_walked++;
            if (++n > 1u << 20) {
                report(w, "orphan ring without end: a cycle?", g);
                break;
            }
        }
    }
    EXPECT(w, kept == a->orphans.kept && kept <= ORPHAN_KEEP,
           "idle orphans disagree with their budget", a);
}

/* The walk, printing what it finds unless quiet; the first damaged
 * checked block in *damaged. */
static int walk_all(const void **damaged, int quiet) {
    struct walk w = {.quiet = quiet};
    ready();
    lock_world(); /* (no arena is set up meanwhile) */
    for (unsigned i = ma_narenas; i < MAX_ARENAS; i++)
        EXPECT(&w, !ma_arenas[i].heap.regions && !ma_arenas[i].heap.nregions,
               "regions in an arena beyond the arena count", &ma_arenas[i]);
    for (unsigned i = 0; i < ma_narenas; i++) {
        struct arena *a = &ma_arenas[i];
        struct heap *h = &a->heap;
        size_t n = 0, before = w.in_use_bytes;
        w.free_chunks = 0;
        for (unsigned b = 0; b < NBINS; b++) w.per_bin[b] = 0;
        for (struct region *r = h->regions; r; r = r->next, n++) {
            EXPECT(&w, !r->next || r->next->prev == r, "asymmetric region links", r);
            check_region(h, r, &w);
        }
        EXPECT(&w, n == h->nregions, "region count disagrees with the list", a);
        check_bins(h, &w);
        check_orphans(a, &w);
        EXPECT(&w, w.in_use_bytes - before == h->in_use, "heap_in_use disagrees with the walk", a);
    }
    struct large_stats ls;
    large_foreach(check_large, &w);
    large_stats_locked(&ls);
    EXPECT(&w, ls.blocks == w.large_blocks && ls.bytes == w.large_bytes,
           "mapped block counters disagree with the registry", &w);
    EXPECT(&w, load_relaxed(&ma_counters.in_use) == w.usable_bytes,
           "in_use disagrees with the live and cached blocks", &w);
    if (os_single_threaded()) { /* (blocks of size 0 come and go without a lock) */
        const char *zw = zero_check();
        EXPECT(&w, zw == NULL, zw, &w);
    }
    struct tcache *t = tc_self();
    if (t) check_cache(t, &w);
    EXPECT(&w, w.pages_seen == w.pages_walked,
           "pages in the regions and on the queues and orphan rings disagree", &w);
    unlock_world();
    *damaged = w.damaged;
    return w.errors;
}

int memalloc_check(void) {
    const void *damaged;
    return walk_all(&damaged, 0);
}

void check_at_exit(void) {
    if (!dbg_on()) return;
    const void *damaged = NULL;
    /* the engine's own invariants are memalloc_check's business: at exit
     * other threads may still run, and only the blocks are reported */
    walk_all(&damaged, 1);
    /* the full report, with the block's stacks, outside the locks */
    if (damaged) dbg_report_damaged(damaged, "exit");
}
