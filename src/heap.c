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
#define BIG_SPAN_DELAY 100
#define BIG_SPAN_YOUNG ((size_t)64 << 20)

/*
 * The working set. A pass purges only the dirty free memory (spans,
 * tops, empty regions) above keep, the largest of:
 *  - the heap's highest in_use over the last one to two epochs of
 *    WS_EPOCH_MS, less in_use now: what the program held moments ago and
 *    is likely to ask for again;
 *  - what the heap faulted in (carved from purged or never-touched
 *    memory) in this epoch: a heap that grows at about the same in_use
 *    (blocks of varied sizes, freed and taken again, leave holes that
 *    best fit fills later) needs that much more than it holds; purged,
 *    the holes fault in again at once;
 *  - the slack, learnt from the program: memory purged and then faulted
 *    in again (carved from purged or never-touched memory) within the
 *    same two epochs is added to it (at once: ws_keep), up to the peak of
 *    in_use of those epochs; each epoch without such regret halves it.
 * (The epochs roll at the passes and at large frees: a peak is that of
 * the time since the last roll, however long ago it began.)
 * So a program that frees and allocates large blocks in turn (buffers
 * replaced, a server's requests, the holes between its blocks) keeps its
 * steady state resident, where purging it costs a page fault per OS page
 * each time; and a program whose phase ended (it allocates no more) gets
 * its memory back within a few epochs: the peak is two epochs past, and
 * the slack halves every epoch. Beyond keep, the purge delays hold.
 */
#define WS_MARGIN ((size_t)64 << 10)

/* Start a new epoch if the current one is over (or the clock went back). */
static void ws_roll(struct heap *h, uint64_t now) {
    if (now >= h->epoch && now - h->epoch < WS_EPOCH_MS) return;
    int next = now >= h->epoch && now - h->epoch < 2 * WS_EPOCH_MS;
    size_t purged = h->purged_now + h->purged_before;
    size_t regret = h->faulted < purged ? h->faulted : purged;
    size_t cap = h->peak_now > h->peak_before ? h->peak_now : h->peak_before;
    if (regret)
        h->slack = h->slack + regret < cap ? h->slack + regret : cap;
    else if (now < h->epoch || now - h->epoch >= 64 * WS_EPOCH_MS)
        h->slack = 0;
    else
        h->slack >>= (now - h->epoch) / WS_EPOCH_MS; /* halved for each epoch past */
    h->peak_before = h->peak_now; /* (held at some time since the last roll, maybe just now) */
    h->purged_before = next ? h->purged_now : 0;
    h->peak_now = h->in_use;
    h->purged_now = h->faulted = 0;
    h->epoch = now;
}
/* in_use is, or was just now, at level. */
static void ws_note(struct heap *h, size_t level) {
    if (level > h->peak_now) h->peak_now = level;
}
/* The dirty free bytes a pass at time now leaves resident. The regret of
 * the epoch so far counts at once (the roll adds it to the slack for
 * good): a program that faults purged memory in again learns within a
 * few passes, not an epoch later. */
static size_t ws_keep(struct heap *h, uint64_t now) {
    ws_roll(h, now);
    size_t peak = h->peak_now > h->peak_before ? h->peak_now : h->peak_before;
    size_t keep = peak > h->in_use ? peak - h->in_use : 0;
    size_t purged = h->purged_now + h->purged_before;
    size_t slack = h->slack + (h->faulted < purged ? h->faulted : purged);
    if (slack > peak) slack = peak > h->slack ? peak : h->slack;
    size_t grew = h->faulted < peak ? h->faulted : peak;
    if (keep < grew) keep = grew;
    return keep > slack ? keep : slack;
}

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
    struct region *r = region_of(c);
    const char *fresh = r->fresh;
    if (head_get(c) & PURGED) {
        h->faulted += nb;
    } else if (is_span(c, size)) { /* a purged span that pieces merged into since */
        size_t dirt = span_dirt_bytes(c, size);
        if (nb > dirt) h->faulted += nb - dirt;
    }
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
        region_touch(r, (char *)rest + MIN_CHUNK);
    } else {
        nb = size;
        set_head(c, size, CINUSE | pflag);
        head_or(chunk_next(c), PINUSE);
        region_touch(r, (char *)c + size + HEAP_EXTRA);
    }
    if (r->fresh > fresh) h->faulted += (size_t)(r->fresh - fresh);
    h->in_use += nb;
    ws_note(h, h->in_use);
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

/* Open c's region for a carve of nb bytes at c (and the rest's header
 * after them); else put c back: NULL. */
static struct chunk *open_for(struct heap *h, struct chunk *c, size_t nb) {
    if (region_open(region_of(c), (char *)c + nb + MIN_CHUNK + HEAP_EXTRA)) return c;
    bin_insert(&h->bins, c);
    return NULL;
}

void *heap_alloc(struct heap *h, size_t nb, size_t *zero_len) {
    struct chunk *c = find_chunk(h, nb);
    if (!c || !open_for(h, c, nb)) return NULL;
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

void *heap_alloc_aligned_fresh(struct heap *h, size_t nb, size_t align, size_t off,
                               char **untouched) {
    struct chunk *c = bin_take(&h->bins, nb);
    if (c && aligned_gap(c, align, off) + nb > chunk_size(c)) {
        bin_insert(&h->bins, c);
        c = NULL;
    }
    if (!c) c = find_chunk(h, nb + align + MIN_CHUNK);
    if (!c || !open_for(h, c, aligned_gap(c, align, off) + nb)) return NULL;
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
    char *fresh = region_of(c)->fresh;
    carve(h, c, nb);
    char *end = (char *)chunk_next(c);
    *untouched = fresh < (char *)c ? (char *)c : fresh < end ? fresh : end;
    return chunk_payload(c);
}

void *heap_alloc_aligned(struct heap *h, size_t nb, size_t align, size_t off) {
    char *untouched;
    return heap_alloc_aligned_fresh(h, nb, align, off, &untouched);
}

const char *heap_blame(const struct region *r, const struct chunk *c, const char *who) {
    const char *fence = (const char *)region_fence(r);
    if ((const char *)c < (const char *)region_first(r) || (const char *)c >= fence ||
        !region_readable(r, c))
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

/* Purge the spans whose oldest dirt has been free for the purge delay
 * (those purged already and not merged since are skipped), and younger
 * ones beyond SPAN_YOUNG_MAX, only while *excess (dirty bytes above the
 * working set) lasts; of BIG_SPAN or more of dirt, after BIG_SPAN_DELAY
 * delays or beyond BIG_SPAN_YOUNG. 1 if a younger one was left for later.
 * A stamp in the future cannot be a real one: such a chunk is purged. */
static int purge_spans(struct heap *h, uint64_t now, uint64_t delay, size_t *excess) {
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
            if (*excess == 0) continue; /* the working set's */
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
            if (purge_inside(c)) {
                *excess -= dirt < *excess ? dirt : *excess;
                h->purged_now += dirt;
            }
        }
    }
    h->span_dirty = 0;
    return left;
}

/* The dirty bytes of region r's top chunk, if it has one (*top: it). */
static size_t top_dirt(const struct region *r, struct chunk **top) {
    struct chunk *fence = region_fence(r);
    *top = NULL;
    if (pinuse(fence)) return 0;
    *top = chunk_at(fence, 0 - fence->prev_foot);
    return r->fresh > (char *)*top ? (size_t)(r->fresh - (char *)*top) : 0;
}

/* The dirty free bytes of h: its tops' and its spans'. */
static size_t heap_dirt(const struct heap *h) {
    size_t dirt = 0;
    struct chunk *top;
    for (const struct region *r = h->regions; r; r = r->next) dirt += top_dirt(r, &top);
    for (unsigned i = bin_index(PURGE_SPAN); i < NBINS; i++) {
        const struct freelink *bin = &h->bins.list[i];
        for (const struct freelink *l = bin->next; l != bin; l = l->next) {
            const struct chunk *c = link_chunk(l);
            size_t size = chunk_size(c);
            if (is_span(c, size) && !(head_get(c) & PURGED)) dirt += span_dirt_bytes(c, size);
        }
    }
    return dirt;
}

/* Drop the empty regions but the spare (one becomes the spare if it is
 * not empty) whose dirt *excess covers, or that have none; 1 if one is
 * kept dirty. */
static int drop_empty(struct heap *h, size_t *excess) {
    int kept = 0;
    if (h->spare && !region_is_empty(h->spare)) h->spare = NULL;
    for (struct region *r = h->regions, *next; r; r = next) {
        next = r->next;
        if (!region_is_empty(r)) continue;
        if (!h->spare) {
            h->spare = r;
            continue;
        }
        if (r == h->spare) continue;
        struct chunk *top;
        size_t dirt = top_dirt(r, &top);
        if (dirt > *excess) {
            kept = 1;
            continue;
        }
        *excess -= dirt;
        h->purged_now += dirt;
        bin_unlink(&h->bins, top);
        drop_region(h, r);
    }
    return kept;
}

/* Purge region r's top chunk, if it has one, down to half the trim
 * threshold, when more than the threshold of it is dirty: always if the
 * program set the threshold (mallopt's M_TRIM_THRESHOLD or
 * MEMALLOC_TRIM_THRESHOLD: it asked for glibc's trimming), else only while
 * *excess (dirt above the working set) lasts. */
static void purge_top(struct heap *h, struct region *r, size_t *excess) {
    struct chunk *c;
    size_t dirt = top_dirt(r, &c), trim = trim_threshold();
    if (!c || dirt <= trim + MIN_CHUNK) return;
    if (*excess == 0 && !opt_fixed(OPT_TRIM_THRESHOLD)) return;
    if (!region_purge_top(r, c, trim / 2)) return;
    size_t gone = dirt - trim / 2;
    *excess -= gone < *excess ? gone : *excess;
    h->purged_now += gone;
}

uint64_t heap_purge(struct heap *h, uint64_t now, uint64_t delay) {
    size_t keep = delay ? ws_keep(h, now) : 0, dirt = heap_dirt(h);
    if (keep) keep += keep / 8 + WS_MARGIN; /* no purge for a few stray pages */
    size_t excess = dirt > keep ? dirt - keep : 0;
    for (struct region *r = h->regions; r; r = r->next) purge_top(h, r, &excess);
    int kept = drop_empty(h, &excess);
    int young = purge_spans(h, now, delay, &excess);
    /* young spans: after a delay; memory kept for the working set: when
     * the epoch ends, and keep may shrink */
    if (young) return now + delay;
    if (kept || (dirt && dirt <= keep)) return h->epoch + WS_EPOCH_MS;
    return 0;
}

/* Due now, or after the purge delay: a pass then serves all the dirt
 * gathered meanwhile, and what is reused before it is not purged and
 * faulted in again. */
void heap_purge_soon(struct heap *h) {
    uint64_t delay = opt_get(OPT_PURGE_DELAY);
    if (delay == 0) {
        heap_purge_at(h, 1); /* (a time long past) */
    } else {
        uint64_t at = os_now_ms() + delay;
        if (h->purge_due == 0 || h->purge_due > at) heap_purge_at(h, at);
    }
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
 *  4. bin the chunk; an empty region becomes the spare, or, if an empty
 *     one is kept already, makes a pass due (which drops it if it is
 *     above the working set);
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
    if (size >= PURGE_SPAN) { /* (small frees leave the working set's epochs alone) */
        ws_roll(h, os_now_ms());
        ws_note(h, h->in_use);
    }
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

    if (size == REGION_CAPACITY) { /* the region is empty: a pass decides (drop_empty) */
        if (h->spare && h->spare != r && region_is_empty(h->spare))
            heap_purge_soon(h);
        else
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
        if (!region_open(region_of(c), (char *)c + size + chunk_size(next) + HEAP_EXTRA)) return 0;
        bin_unlink(&h->bins, next);
        h->in_use += chunk_size(next);
        ws_note(h, h->in_use);
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
    /* what the program held, and what it taught, count no more */
    h->peak_now = h->peak_before = h->in_use;
    h->slack = h->purged_now = h->purged_before = h->faulted = 0;
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
