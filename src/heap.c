/*
 * heap.c: the chunk engine over one heap (see heap.h): carving (split),
 * freeing (coalesce), in-place resize, aligned carving, purging and
 * trimming. The system calls made here, under the heap's lock, are
 * mapping a new region (rare) and purging free OS pages (a top, or the
 * large spans, after hysteresis): pages handed out meanwhile by another
 * thread must not be purged, so purging cannot wait for the unlock.
 * Unmapping is left to the lock holder, after unlocking (h->gone).
 */
#include "heap.h"

#include "msg.h"
#include "options.h"

/* Free chunks this large give their inner pages back once SPAN_DIRTY_MAX
 * bytes have been freed into such chunks, and once they have been free for
 * the purge delay: what is reused sooner is never purged and faulted in
 * again. */
#define PURGE_SPAN     ((size_t)32 << 10)
#define SPAN_DIRTY_MAX ((size_t)128 << 10)
#define SPAN_YOUNG_MAX ((size_t)512 << 10)
/* Free chunks of BIG_SPAN or more, mostly what large blocks left, stay
 * BIG_SPAN_DELAY purge delays, up to BIG_SPAN_YOUNG bytes per arena: a
 * program that frees and allocates large blocks in turn reuses them
 * resident, where purging costs a page fault per OS page each time
 * (the mapping cache keeps freed mappings for the same reason). */
#define BIG_SPAN       ((size_t)1 << 20)
#define BIG_SPAN_DELAY 10
#define BIG_SPAN_YOUNG ((size_t)64 << 20)

/* A free chunk of PURGE_SPAN or more that is not its region's top (a
 * span) keeps in its payload, past its links, its dirt: the bytes freed
 * into it since it was last purged (at most its size; none if it is
 * PURGED), and the os_now_ms() time the oldest of them was freed at. So
 * no freed byte stays dirty much longer than its purge delay, however
 * often the span grows by a merge. (The top is purged by its own rule;
 * and its bytes past the links may lie above the fresh mark, which must
 * stay zero.) */
static int is_span(const struct chunk *c, size_t size) {
    return size >= PURGE_SPAN && chunk_at(c, size) != region_fence(region_of(c));
}
static uint64_t *span_stamp(const struct chunk *c) {
    return (uint64_t *)(void *)((char *)c + MIN_CHUNK);
}
static uint64_t *span_dirt(const struct chunk *c) {
    return span_stamp(c) + 1;
}
/* The dirt of span c of size bytes, at most its size (the rest of a split
 * keeps the dirt of the whole). */
static size_t span_dirt_bytes(const struct chunk *c, size_t size) {
    return *span_dirt(c) < size ? (size_t)*span_dirt(c) : size;
}
/* Free chunk part of free span c takes on c's dirt (c is not PURGED). */
static void span_copy(struct chunk *part, const struct chunk *c) {
    *span_stamp(part) = *span_stamp(c);
    *span_dirt(part) = *span_dirt(c);
}

/*
 * Carve an in-use chunk of nb bytes from free, unbinned chunk c:
 *  1. if the rest can hold a minimum chunk, split it off as a free chunk,
 *     bin it (its next neighbour is in use: no coalescing needed);
 *  2. else hand out the whole chunk and tell the next chunk we are in use;
 *  3. raise the region's fresh mark past everything now written or usable.
 */
static void carve(struct heap *h, struct chunk *c, size_t nb) {
    size_t size = chunk_size(c);
    size_t pflag = head_get(c) & PINUSE;
    ma_assert(!cinuse(c) && nb >= MIN_CHUNK && nb % ALIGNMENT == 0 && size >= nb);
    if (size - nb >= MIN_CHUNK) {
        struct chunk *rest = chunk_at(c, nb);
        /* the rest was freed when c was, or purged with it (its inner
         * pages are some of c's) */
        size_t purged = head_get(c) & PURGED;
        if (!purged && is_span(rest, size - nb)) span_copy(rest, c);
        set_head(c, nb, CINUSE | pflag);
        set_head(rest, size - nb, PINUSE | purged);
        set_foot(rest, size - nb);
        bin_insert(&h->bins, rest);
        region_touch(region_of(c), (char *)rest + MIN_CHUNK);
    } else {
        nb = size;
        set_head(c, size, CINUSE | pflag);
        head_or(chunk_next(c), PINUSE);
        region_touch(region_of(c), (char *)c + size + HEAP_EXTRA);
    }
    h->in_use += nb;
}

void heap_init(struct heap *h) {
    bins_init(&h->bins);
}

/* A new region of h: linked into its list; its single free chunk, unbinned. */
static struct chunk *add_region(struct heap *h) {
    struct chunk *c = region_new(h);
    if (!c) return NULL;
    struct region *r = region_of(c);
    r->next = h->regions;
    if (h->regions) h->regions->prev = r;
    h->regions = r;
    h->nregions++;
    return c;
}

/* Take empty region r out of h, onto h->gone. */
static void drop_region(struct heap *h, struct region *r) {
    region_forget(r);
    if (r->prev)
        r->prev->next = r->next;
    else
        h->regions = r->next;
    if (r->next) r->next->prev = r->prev;
    if (h->spare == r) h->spare = NULL;
    h->nregions--;
    r->next = h->gone;
    h->gone = r;
}

/* A free chunk of at least nb bytes, unbinned: from the bins or a new region. */
static struct chunk *find_chunk(struct heap *h, size_t nb) {
    struct chunk *c = bin_take(&h->bins, nb);
    if (!c && nb <= REGION_CAPACITY) c = add_region(h);
    return c;
}

void *heap_alloc(struct heap *h, size_t nb, size_t *zero_len) {
    struct chunk *c = find_chunk(h, nb);
    if (!c) return NULL;
    char *fresh = region_of(c)->fresh;
    carve(h, c, nb);
    if (zero_len) {
        /* Bytes at or above fresh are zero already, but for the last word,
         * which is the next chunk's prev_foot and may hold an old footer. */
        char *p = chunk_payload(c), *end = p + usable_size(c);
        *(size_t *)(end - sizeof(size_t)) = 0;
        *zero_len = fresh >= end ? (size_t)(end - p) : fresh > p ? (size_t)(fresh - p) : 0;
    }
    return chunk_payload(c);
}

/*
 * Aligned carve (the byte at offset off from the chunk aligned):
 *  1. a chunk that fits nb may be aligned already, or have room for a gap
 *     of at least MIN_CHUNK before an aligned place (a page freed between
 *     two others, the top of a region the last page ended at): use it;
 *  2. else take a chunk big enough for nb plus align plus a minimum chunk,
 *     so that an aligned place exists with either no gap or a gap of at
 *     least MIN_CHUNK before it.
 * The gap becomes a free chunk of its own (its previous neighbour is in
 * use, so it does not coalesce); the rest is carved as usual.
 */
static size_t aligned_gap(const struct chunk *c, size_t align, size_t off) {
    uintptr_t p = (uintptr_t)c + off, q = align_up(p, align);
    while (q != p && q - p < MIN_CHUNK) q += align;
    return q - p;
}

void *heap_alloc_aligned(struct heap *h, size_t nb, size_t align, size_t off) {
    struct chunk *c = bin_take(&h->bins, nb);
    if (c && aligned_gap(c, align, off) + nb > chunk_size(c)) {
        bin_insert(&h->bins, c);
        c = NULL;
    }
    if (!c) c = find_chunk(h, nb + align + MIN_CHUNK);
    if (!c) return NULL;
    size_t lead = aligned_gap(c, align, off);
    if (lead) {
        size_t size = chunk_size(c);
        struct chunk *c2 = chunk_at(c, lead);
        size_t purged = head_get(c) & PURGED;
        if (!purged && is_span(c2, size - lead)) span_copy(c2, c);
        set_head(c, lead, (head_get(c) & PINUSE) | purged);
        set_foot(c, lead);
        bin_insert(&h->bins, c);
        set_head(c2, size - lead, purged);
        c = c2;
    }
    carve(h, c, nb);
    return chunk_payload(c);
}

const char *heap_blame(const struct region *r, const struct chunk *c, const char *who) {
    const char *fence = (const char *)region_fence(r);
    if ((const char *)c < (const char *)region_first(r) || (const char *)c >= fence)
        return "invalid pointer";
    size_t head = head_get(c), size = head & SIZE_MASK;
    if (head_tag_ok(c, head) && size >= MIN_CHUNK && size <= (size_t)(fence - (const char *)c) &&
        !(head & MMAPPED))
        return !(head & CINUSE) ? freed_twice_what(who) : "heap corruption near";
    /* c's head is not a chunk's: where does c lie? */
    const struct chunk *q = region_first(r);
    while (q < c) {
        size = chunk_size(q);
        if (!tag_ok(q) || size < MIN_CHUNK || size > (size_t)(fence - (const char *)q))
            return "invalid pointer"; /* a broken head before c: cannot tell */
        const struct chunk *next = chunk_at(q, size);
        if (next > c) return cinuse(q) ? "invalid pointer" : freed_twice_what(who);
        q = next;
    }
    return "heap corruption near"; /* c starts a chunk, whose head was overwritten */
}

/* A neighbour's header that free must trust is broken: the program wrote
 * over it. */
static _Noreturn void corrupt(const struct chunk *near) {
    ma_fatal("free", "heap corruption near", chunk_payload(near));
}

/* Purge the whole pages of free chunk c past its header and links; its
 * footer, in the next chunk, stays. Marks c PURGED (a merge writes a new
 * head without the mark; a split keeps it on both parts). 1 if anything
 * was purged. */
static int purge_inside(struct chunk *c) {
    if (head_get(c) & PURGED) return 0;
    size_t page = os_page_size();
    uintptr_t from = align_up((uintptr_t)c + MIN_CHUNK, page);
    uintptr_t to = align_down((uintptr_t)chunk_next(c), page);
    if (to <= from || os_purge((void *)from, to - from) != 0) return 0;
    head_or(c, PURGED);
    return 1;
}

/* Purge every span whose oldest dirt has been free for the purge delay
 * (BIG_SPAN_DELAY delays for BIG_SPAN or more of dirt; those purged
 * already and not merged since are skipped); 1 if a younger one was left
 * for later. A stamp in the future cannot be a real one: such a chunk is
 * purged. */
static int purge_spans(struct heap *h, uint64_t now, uint64_t delay) {
    int left = 0;
    size_t young = 0; /* bytes of young spans left: at most SPAN_YOUNG_MAX */
    size_t big = 0;   /* of those of BIG_SPAN or more: at most BIG_SPAN_YOUNG */
    for (unsigned i = bin_index(PURGE_SPAN); i < NBINS; i++) {
        struct freelink *bin = &h->bins.list[i];
        for (struct freelink *l = bin->next; l != bin; l = l->next) {
            struct chunk *c = link_chunk(l);
            size_t size = chunk_size(c);
            if (!is_span(c, size) || (head_get(c) & PURGED)) continue;
            uint64_t t = *span_stamp(c);
            size_t dirt = span_dirt_bytes(c, size);
            if (dirt >= BIG_SPAN) {
                if (t <= now && now - t < BIG_SPAN_DELAY * delay && big + dirt <= BIG_SPAN_YOUNG) {
                    big += dirt;
                    left = 1;
                    continue;
                }
            } else if (t <= now && now - t < delay && young + dirt <= SPAN_YOUNG_MAX) {
                young += dirt;
                left = 1;
                continue;
            }
            purge_inside(c);
        }
    }
    h->span_dirty = 0;
    return left;
}

/* Purge region r's top chunk, if it has one, down to half the trim
 * threshold, when more than the threshold of it is dirty. */
static void purge_top(struct region *r) {
    struct chunk *fence = region_fence(r);
    if (pinuse(fence)) return;
    struct chunk *c = chunk_at(fence, 0 - fence->prev_foot);
    size_t trim = trim_threshold();
    if (r->fresh > (char *)c && (size_t)(r->fresh - (char *)c) > trim + MIN_CHUNK)
        region_purge_top(r, c, trim / 2);
}

int heap_purge(struct heap *h, uint64_t now, uint64_t delay) {
    for (struct region *r = h->regions; r; r = r->next) purge_top(r);
    return purge_spans(h, now, delay);
}

/* Due now, or after the purge delay: a pass then serves all the dirt
 * gathered meanwhile, and what is reused before it is not purged and
 * faulted in again. */
void heap_purge_soon(struct heap *h) {
    uint64_t delay = opt_get(OPT_PURGE_DELAY);
    if (delay == 0)
        heap_purge_at(h, 1); /* (a time long past) */
    else if (h->purge_due == 0)
        heap_purge_at(h, os_now_ms() + delay);
}

/* Free chunk n merges into a chunk being freed: add its dirt (all of it if
 * it is not a span: a small chunk, or a top) and the time of its oldest. */
static void span_merged(const struct chunk *n, size_t *dirt, uint64_t *oldest) {
    size_t size = chunk_size(n);
    if (head_get(n) & PURGED) return;
    if (!is_span(n, size)) {
        *dirt += size;
        return;
    }
    *dirt += span_dirt_bytes(n, size);
    if (*span_stamp(n) < *oldest) *oldest = *span_stamp(n);
}

/*
 * Free in-use chunk c:
 *  1. merge with the previous chunk if it is free (its footer gives its size);
 *  2. merge with the next chunk if it is free (the fencepost never is);
 *  3. write head and footer, clear the next chunk's PINUSE;
 *  4. an empty region goes back to the OS if another empty one is kept
 *     already; else bin the chunk;
 *  5. a top chunk with more dirty bytes than the trim threshold is due to
 *     be purged down to half of it (hysteresis, so no purge on every free);
 *  6. if the chunk is elsewhere and PURGE_SPAN or larger, count the bytes
 *     that just became part of a large span (all of it if it just became
 *     large); once SPAN_DIRTY_MAX bytes are counted, a purge of every large
 *     free chunk is due: a pass per few MiB freed, never a system call per
 *     free. Due passes run after the purge delay (heap_purge_soon).
 */
void heap_free(struct heap *h, struct chunk *c) {
    size_t size = chunk_size(c);
    struct region *r = region_of(c);
    size_t largest = 0; /* the largest free neighbour merged */
    size_t dirt = size; /* of the span c becomes, and the time of its oldest */
    uint64_t oldest = UINT64_MAX;
    ma_assert(cinuse(c) && size >= MIN_CHUNK && h->in_use >= size);
    h->in_use -= size;
    head_clear(c, CINUSE); /* if c merges into its predecessor, its stale head says "freed" */
    if (!pinuse(c)) {
        struct chunk *prev = (struct chunk *)((char *)c - c->prev_foot);
        if (c->prev_foot > (size_t)((char *)c - (char *)region_first(r)) || !tag_ok(prev) ||
            cinuse(prev) || chunk_size(prev) != c->prev_foot)
            corrupt(c);
        bin_unlink(&h->bins, prev);
        span_merged(prev, &dirt, &oldest);
        size += chunk_size(prev);
        if (chunk_size(prev) > largest) largest = chunk_size(prev);
        c = prev;
    }
    struct chunk *next = chunk_at(c, size);
    if (!cinuse(next)) {
        if (!tag_ok(next)) corrupt(c);
        bin_unlink(&h->bins, next);
        span_merged(next, &dirt, &oldest);
        size += chunk_size(next);
        if (chunk_size(next) > largest) largest = chunk_size(next);
    }
    set_head(c, size, PINUSE);
    set_foot(c, size);
    next = chunk_at(c, size);
    head_clear(next, PINUSE);
    if (is_span(c, size)) {
        uint64_t now = os_now_ms();
        *span_stamp(c) = oldest < now ? oldest : now;
        *span_dirt(c) = dirt;
    }

    if (size == REGION_CAPACITY) { /* the region is empty */
        if (h->spare && h->spare != r && region_is_empty(h->spare)) {
            drop_region(h, r);
            return;
        }
        h->spare = r;
    }
    bin_insert(&h->bins, c);
    size_t trim = trim_threshold();
    if (next == region_fence(r)) {
        if (r->fresh > (char *)c && (size_t)(r->fresh - (char *)c) > trim + MIN_CHUNK)
            heap_purge_soon(h);
    } else if (size >= PURGE_SPAN) {
        h->span_dirty += largest < PURGE_SPAN ? size : size - largest;
        if (h->span_dirty >= SPAN_DIRTY_MAX) heap_purge_soon(h);
    }
}

/*
 * Resize in-use chunk c to nb in place (growing, to as much as want):
 *  1. growing: absorb the next chunk if it is free and big enough; keep up
 *     to want bytes of it;
 *  2. if the chunk now exceeds nb by a minimum chunk, split off the tail and
 *     free it (which coalesces it with a free successor).
 */
int heap_resize(struct heap *h, struct chunk *c, size_t nb, size_t want) {
    size_t size = chunk_size(c);
    if (nb > size) {
        struct chunk *next = chunk_at(c, size);
        if (cinuse(next) || size + chunk_size(next) < nb) return 0;
        bin_unlink(&h->bins, next);
        h->in_use += chunk_size(next);
        size += chunk_size(next);
        set_head(c, size, CINUSE | (head_get(c) & PINUSE));
        head_or(chunk_at(c, size), PINUSE);
        region_touch(region_of(c), (char *)c + size + HEAP_EXTRA);
        if (want > nb) nb = want < size ? want : size;
    }
    if (size - nb >= MIN_CHUNK) {
        struct chunk *rest = chunk_at(c, nb);
        set_head(c, nb, CINUSE | (head_get(c) & PINUSE));
        set_head(rest, size - nb, CINUSE | PINUSE);
        heap_free(h, rest); /* c stays in use: the region cannot empty */
    }
    return 1;
}

/*
 * Trim, walking the free lists (not the in-use chunks):
 *  1. a free chunk that fills its region: detach the region for unmapping;
 *  2. a region's top: purge it down to pad bytes;
 *  3. any other free chunk: purge its whole pages past header and links.
 */
int heap_trim(struct heap *h, size_t pad) {
    int released = 0;
    size_t page = os_page_size();
    for (unsigned i = bin_index(page + MIN_CHUNK); i < NBINS; i++) {
        struct freelink *bin = &h->bins.list[i];
        for (struct freelink *l = bin->next, *next; l != bin; l = next) {
            next = l->next;
            struct chunk *c = link_chunk(l);
            struct region *r = region_of(c);
            if (chunk_size(c) == REGION_CAPACITY) {
                bin_unlink(&h->bins, c);
                drop_region(h, r);
                released = 1;
            } else if (chunk_next(c) == region_fence(r)) {
                released |= region_purge_top(r, c, pad);
            } else {
                released |= purge_inside(c);
            }
        }
    }
    return released;
}

void heap_free_stats(const struct heap *h, struct heap_free_stats *out) {
    struct heap_free_stats s = {0, 0, 0};
    for (unsigned b = 0; b < NBINS; b++) {
        const struct freelink *bin = &h->bins.list[b];
        for (const struct freelink *l = bin->next; l != bin; l = l->next) {
            s.bytes += chunk_size(link_chunk(l));
            s.chunks++;
        }
    }
    for (const struct region *r = h->regions; r; r = r->next) {
        const struct chunk *fence = region_fence(r);
        if (!pinuse(fence)) s.top_bytes += fence->prev_foot;
    }
    *out = s;
}
