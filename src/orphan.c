/*
 * orphan.c: the pages of exited threads, kept by their arena (see
 * orphan.h).
 */
#include "orphan.h"

/* Orphan g has no object in use: kept within the budget, at the head of
 * its ring (the next thread to need a page of its class adopts the most
 * recently idle first, so the ones no thread needs sink to the tail and
 * age there), else given back. A purge pass becomes due: the idle
 * orphans it finds older than the purge delay give their memory back. */
static void orphan_idle(struct orphans *o, struct page *g) {
    size_t touched = (size_t)(page_reach(g) - page_base(g));
    struct page **ring = &o->ring[g->k];
    ma_assert(g->used == 0 && g->owner == NULL && g->kept == 0);
    ring_del(ring, g);
    if (o->kept + touched > ORPHAN_KEEP) {
        page_release(g);
        return;
    }
    ring_push_head(ring, g);
    g->kept = (uint32_t)touched;
    g->idle = (uint32_t)os_now_ms();
    o->kept += touched;
    if (page_reach(g) > g->start) heap_purge_soon(region_of(g)->heap);
}

/* Take g off its ring, and out of the budget if it counted there. */
static void orphan_take(struct orphans *o, struct page *g) {
    ring_del(&o->ring[g->k], g);
    ma_assert(o->kept >= g->kept);
    o->kept -= g->kept;
    g->kept = 0;
}

void orphan_add(struct orphans *o, struct page *g) {
    store_relaxed(&g->owner, NULL);
    page_collect(g); /* after the owner is gone: later remote frees lock */
    ring_add(&o->ring[g->k], g);
    if (g->used == 0) orphan_idle(o, g);
}

struct page *orphan_adopt(struct orphans *o, unsigned k, struct tcache *t, struct page **full) {
    struct page *g;
    while ((g = o->ring[k]) != NULL) {
        orphan_take(o, g);
        store_relaxed(&g->owner, t);
        page_collect(g);
        if (g->free || page_bump(g) < g->end) return g;
        ring_add(full, g);
    }
    return NULL;
}

int orphan_free(struct orphans *o, struct page *g, struct tblock *b) {
    if (load_relaxed(&g->owner)) return 0;
    page_collect(g);
    b->next = g->free;
    b->key = obj_key(b);
    g->free = b;
    ma_assert(g->used > 0);
    if (--g->used == 0) orphan_idle(o, g);
    return 1;
}

int orphans_purge(struct orphans *o, uint64_t now, uint64_t delay) {
    int left = 0;
    size_t pg = os_page_size();
    for (unsigned k = 0; k < NCLASSES; k++) {
        struct page *ring = o->ring[k], *g = ring;
        if (!g) continue;
        do {
            /* idle, with objects beyond its header's OS page handed out */
            char *from = (char *)align_up((uintptr_t)g + PAGE_HDR, pg);
            char *to = (char *)align_up((uintptr_t)page_reach(g), pg);
            if (g->kept && page_reach(g) > g->start && to > from) {
                if ((uint32_t)now - g->idle < delay) {
                    left = 1;
                } else if (os_purge(from, (size_t)(to - from)) == 0) {
                    /* every object is free: the page starts afresh (it
                     * still counts what it touched against the budget,
                     * which so bounds the idle orphans' address space) */
                    g->free = NULL;
                    store_relaxed(&g->handed, 0);
                    g->grows = 0;
                }
            }
            g = g->next;
        } while (g != ring);
    }
    return left;
}

void orphans_trim(struct orphans *o) {
    for (unsigned k = 0; k < NCLASSES; k++) {
        struct page *keep = NULL, *g;
        while ((g = o->ring[k]) != NULL) {
            orphan_take(o, g);
            page_collect(g);
            if (g->used == 0)
                page_release(g);
            else
                ring_add(&keep, g);
        }
        o->ring[k] = keep;
    }
}

size_t orphans_free_bytes(const struct orphans *o) {
    size_t bytes = 0;
    for (unsigned k = 0; k < NCLASSES; k++) {
        const struct page *ring = o->ring[k], *g = ring;
        if (!g) continue;
        do {
            size_t in_use = g->used, remote = tf_count(load_acquire(&g->thread_free));
            in_use -= remote < in_use ? remote : in_use; /* what other threads freed since */
            bytes += usable_size(page_chunk(g)) - in_use * g->size;
            g = g->next;
        } while (g != ring);
    }
    return bytes;
}
