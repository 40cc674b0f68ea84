/* Reading a trace: docs/trace-format.md is the contract. The file is
 * read whole; each record's fields are copied out (the payload has no
 * alignment), then each array is sorted by time and ALLOCs are matched
 * with FREEs per address in time order (addresses are reused): one pass
 * over both arrays with a hash table of addresses. */
#define _GNU_SOURCE
#include "trace_read.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'M', 'E', 'M', 'T', 'R', 'C', '0', '1'};

/* Appends one zeroed element to a growing array; returns it. */
#define PUSH(arr, n, cap)                                                                          \
    ((n) == (cap)                                                                                  \
         ? ((cap) = (cap) ? 2 * (cap) : 64, (arr) = xrealloc((arr), (cap) * sizeof *(arr)))        \
         : 0,                                                                                      \
     memset(&(arr)[(n)], 0, sizeof *(arr)), &(arr)[(n)++])

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) {
    return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void seterr(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- stacks by id ---- */

static uint32_t hash32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static void stack_index_put(struct trace *t, uint32_t id, uint32_t idx);

static void stack_index_grow(struct trace *t) {
    uint32_t *ids = t->stack_ids, *idx = t->stack_idx;
    size_t cap = t->stack_cap;
    t->stack_cap = cap ? 2 * cap : 1024;
    t->stack_ids = xcalloc(t->stack_cap, sizeof *t->stack_ids);
    t->stack_idx = xcalloc(t->stack_cap, sizeof *t->stack_idx);
    for (size_t i = 0; i < cap; i++)
        if (ids[i]) stack_index_put(t, ids[i], idx[i]);
    free(ids);
    free(idx);
}

static void stack_index_put(struct trace *t, uint32_t id, uint32_t idx) {
    size_t mask = t->stack_cap - 1;
    for (size_t i = hash32(id) & mask;; i = (i + 1) & mask) {
        if (!t->stack_ids[i]) {
            t->stack_ids[i] = id;
            t->stack_idx[i] = idx;
            return;
        }
    }
}

const struct tr_stack *trace_stack(const struct trace *t, uint32_t id) {
    if (!id || !t->stack_cap) return NULL;
    size_t mask = t->stack_cap - 1;
    for (size_t i = hash32(id) & mask; t->stack_ids[i]; i = (i + 1) & mask)
        if (t->stack_ids[i] == id) return &t->stacks[t->stack_idx[i]];
    return NULL;
}

/* ---- matching ALLOCs and FREEs ---- */

/* Per address: the ALLOC live there and a FREE that found none. Address
 * 0 marks an empty slot (a record of address 0 is matched with none). */
struct slot {
    uint64_t addr;
    uint32_t live, pending;
};

struct slots {
    struct slot *v;
    size_t cap, n;
};

/* The slot of ADDR (≠ 0), made if new; the table grows at half full, so
 * that its size follows the distinct addresses, not the records. */
static struct slot *slot_of(struct slots *h, uint64_t addr) {
    if (2 * (h->n + 1) > h->cap) {
        struct slot *old = h->v;
        size_t oldcap = h->cap;
        h->cap = oldcap ? 2 * oldcap : 4096;
        h->v = xcalloc(h->cap, sizeof *h->v);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].addr) continue;
            size_t k = hash64(old[i].addr) & (h->cap - 1);
            while (h->v[k].addr) k = (k + 1) & (h->cap - 1);
            h->v[k] = old[i];
        }
        free(old);
    }
    size_t i = hash64(addr) & (h->cap - 1);
    while (h->v[i].addr && h->v[i].addr != addr) i = (i + 1) & (h->cap - 1);
    if (!h->v[i].addr) {
        h->v[i] = (struct slot){addr, TR_NOT_FREED, TR_NOT_FREED};
        h->n++;
    }
    return &h->v[i];
}

/* Both arrays are in time order; walked together, a FREE ends the ALLOC
 * live at its address (at one time, the FREE comes first: it ends the
 * block allocated before). A FREE that finds no live ALLOC (its block was
 * allocated before the trace, or its ALLOC has the same time) waits: an
 * ALLOC of that address at the same time takes it; else it is an orphan. */
static void match(struct trace *t) {
    struct slots h = {0};
    size_t a = 0, f = 0;
    while (a < t->nallocs || f < t->nfrees) {
        if (f < t->nfrees && (a == t->nallocs || t->frees[f].t <= t->allocs[a].t)) {
            struct tr_free *fr = &t->frees[f];
            fr->alloc = TR_NOT_FREED;
            if (!fr->addr) {
                t->orphan_frees++;
                f++;
                continue;
            }
            struct slot *s = slot_of(&h, fr->addr);
            if (s->live != TR_NOT_FREED) {
                fr->alloc = s->live;
                t->allocs[s->live].free = (uint32_t)f;
                s->live = TR_NOT_FREED;
            } else {
                if (s->pending != TR_NOT_FREED) t->orphan_frees++;
                s->pending = (uint32_t)f;
            }
            f++;
        } else {
            struct tr_alloc *al = &t->allocs[a];
            al->free = TR_NOT_FREED;
            if (!al->addr) {
                a++;
                continue;
            }
            struct slot *s = slot_of(&h, al->addr);
            if (s->pending != TR_NOT_FREED && t->frees[s->pending].t == al->t) {
                al->free = s->pending;
                t->frees[s->pending].alloc = (uint32_t)a;
                s->pending = TR_NOT_FREED;
            } else {
                if (s->pending != TR_NOT_FREED) t->orphan_frees++;
                s->pending = TR_NOT_FREED;
                s->live = (uint32_t)a; /* a live one before is never freed (unsampled free) */
            }
            a++;
        }
    }
    for (size_t i = 0; i < h.cap; i++)
        if (h.v[i].addr && h.v[i].pending != TR_NOT_FREED) t->orphan_frees++;
    free(h.v);
}

/* ---- sorting by time (stable: the file's order breaks ties) ---- */

struct order {
    uint64_t t;
    size_t idx;
};

static int order_cmp(const void *a, const void *b) {
    const struct order *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Sorts N elements of SIZE bytes at BASE by their u64 time at offset 0. */
static void sort_by_time(void *base, size_t n, size_t size) {
    unsigned char *b = base;
    int sorted = 1;
    for (size_t i = 1; i < n && sorted; i++) {
        uint64_t p, q;
        memcpy(&p, b + (i - 1) * size, 8);
        memcpy(&q, b + i * size, 8);
        sorted = p <= q;
    }
    if (sorted) return;
    struct order *o = xcalloc(n, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        memcpy(&o[i].t, b + i * size, 8);
        o[i].idx = i;
    }
    qsort(o, n, sizeof *o, order_cmp);
    unsigned char *copy = xcalloc(n, size);
    for (size_t i = 0; i < n; i++) memcpy(copy + i * size, b + o[i].idx * size, size);
    memcpy(b, copy, n * size);
    free(copy);
    free(o);
}

/* ---- records ---- */

/* Each parser returns 0, or -1 when the payload is too short for its
 * fields (the record is then skipped as malformed). */

static int parse_info(struct trace *t, const unsigned char *p, size_t len) {
    if (len < 44) return -1;
    struct tr_info *in = &t->info;
    in->version = rd32(p);
    in->pid = rd32(p + 4);
    in->ppid = rd32(p + 8);
    in->page_size = rd32(p + 12);
    in->sample_bytes = rd64(p + 16);
    in->start_real = rd64(p + 24);
    in->start_mono = rd64(p + 32);
    uint32_t n = rd32(p + 40);
    size_t off = 44;
    in->strings = xcalloc(n < 4096 ? n : 4096, sizeof *in->strings);
    in->nstrings = 0;
    for (uint32_t i = 0; i < n && i < 4096 && off < len; i++) {
        const unsigned char *s = p + off;
        const unsigned char *z = memchr(s, 0, len - off);
        size_t sl = z ? (size_t)(z - s) : len - off; /* an unterminated last string: to the end */
        in->strings[i] = xcalloc(sl + 1, 1);
        memcpy(in->strings[i], s, sl);
        in->nstrings++;
        off += sl + 1;
    }
    in->present = 1;
    return 0;
}

static int parse_maps(struct trace *t, const unsigned char *p, size_t len, size_t *cap) {
    if (len < 8) return -1;
    struct tr_maps *m = PUSH(t->maps, t->nmaps, *cap);
    m->t = rd64(p);
    const unsigned char *z = memchr(p + 8, 0, len - 8);
    size_t n = z ? (size_t)(z - (p + 8)) : len - 8;
    m->text = xcalloc(n + 1, 1);
    memcpy(m->text, p + 8, n);
    return 0;
}

static int parse_stack(struct trace *t, const unsigned char *p, size_t len, size_t *cap) {
    if (len < 8) return -1;
    uint32_t id = rd32(p), depth = rd32(p + 4);
    if ((len - 8) / 8 < depth) return -1;
    if (id == 0) return -1;
    if (trace_stack(t, id)) {
        t->dup_stacks++;
        return 0;
    }
    struct tr_stack *s = PUSH(t->stacks, t->nstacks, *cap);
    s->id = id;
    s->depth = depth;
    s->frames = xcalloc(depth, sizeof *s->frames);
    for (uint32_t i = 0; i < depth; i++) s->frames[i] = rd64(p + 8 + 8 * (size_t)i);
    if (2 * (t->nstacks + 1) > t->stack_cap) stack_index_grow(t);
    stack_index_put(t, id, (uint32_t)(t->nstacks - 1));
    return 0;
}

static int parse_classes(struct trace *t, const unsigned char *p, size_t len, size_t *cap) {
    if (len < 16) return -1;
    uint32_t n = rd32(p + 8);
    if ((len - 16) / 32 < n) return -1;
    struct tr_classes *c = PUSH(t->classes, t->nclasses, *cap);
    c->t = rd64(p);
    c->count = n;
    c->v = xcalloc(n, sizeof *c->v);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *q = p + 16 + 32 * (size_t)i;
        c->v[i] = (struct tr_class){rd32(q), rd32(q + 4), rd64(q + 8), rd64(q + 16), rd64(q + 24)};
    }
    return 0;
}

static int parse_arenas(struct trace *t, const unsigned char *p, size_t len, size_t *cap) {
    if (len < 16) return -1;
    uint32_t n = rd32(p + 8);
    if ((len - 16) / 32 < n) return -1;
    struct tr_arenas *a = PUSH(t->arenas, t->narenas, *cap);
    a->t = rd64(p);
    a->count = n;
    a->v = xcalloc(n ? n : 1, sizeof *a->v);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *q = p + 16 + 32 * (size_t)i;
        a->v[i] = (struct tr_arena){rd64(q), rd64(q + 8), rd64(q + 16), rd64(q + 24)};
    }
    return 0;
}

static int parse_regions(struct trace *t, const unsigned char *p, size_t len, size_t *cap) {
    if (len < 16) return -1;
    uint32_t n = rd32(p + 8);
    if ((len - 16) / 16 < n) return -1;
    struct tr_region *v = xcalloc(n, sizeof *v);
    size_t off = 16;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 16) goto bad;
        v[i].base = rd64(p + off);
        v[i].ngranules = rd32(p + off + 8);
        off += 16;
        size_t gb = 3 * (size_t)v[i].ngranules;
        if (len - off < gb) goto bad;
        v[i].g = xcalloc(gb, 1);
        memcpy(v[i].g, p + off, gb);
        off += gb;
        off += (8 - gb % 8) % 8;
        if (off > len) off = len; /* the last region's padding may be left off */
    }
    struct tr_regions *r = PUSH(t->regions, t->nregions, *cap);
    r->t = rd64(p);
    r->count = n;
    r->granule = rd32(p + 12);
    r->v = v;
    return 0;
bad:
    for (uint32_t i = 0; i < n; i++) free(v[i].g);
    free(v);
    return -1;
}

static void free_sites(struct tr_sites *s) {
    free(s->v);
}

/* SITES and SIZES are cumulative: the latest one (by time, then by place
 * in the file) is kept. */
static int parse_sites(struct trace *t, const unsigned char *p, size_t len) {
    if (len < 16) return -1;
    uint64_t tm = rd64(p);
    uint32_t n = rd32(p + 8);
    if ((len - 16) / 24 < n) return -1;
    if (t->sites.present && tm < t->sites.t) return 0;
    free_sites(&t->sites);
    t->sites.present = 1;
    t->sites.t = tm;
    t->sites.count = n;
    t->sites.v = xcalloc(n, sizeof *t->sites.v);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *q = p + 16 + 24 * (size_t)i;
        t->sites.v[i] = (struct tr_site){rd64(q), rd64(q + 8), rd64(q + 16)};
    }
    return 0;
}

static int parse_sizes(struct trace *t, const unsigned char *p, size_t len) {
    if (len < 16) return -1;
    uint64_t tm = rd64(p);
    uint32_t n = rd32(p + 8);
    if ((len - 16) / 16 < n) return -1;
    if (t->sizes.present && tm < t->sizes.t) return 0;
    free(t->sizes.v);
    t->sizes.present = 1;
    t->sizes.t = tm;
    t->sizes.count = n;
    t->sizes.v = xcalloc(n, sizeof *t->sizes.v);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *q = p + 16 + 16 * (size_t)i;
        t->sizes.v[i] = (struct tr_bucket){rd64(q), rd64(q + 8)};
    }
    return 0;
}

/* AGGREGATES: cumulative, as SITES. */
static int parse_aggregates(struct trace *t, const unsigned char *p, size_t len) {
    if (len < 16) return -1;
    uint64_t tm = rd64(p);
    uint32_t n = rd32(p + 8), nlife = rd32(p + 12);
    if (nlife > 1024 || (len - 16) / 8 < nlife || (len - 16 - 8 * (size_t)nlife) / 40 < n)
        return -1;
    if (t->aggregates.present && tm < t->aggregates.t) return 0;
    free(t->aggregates.v);
    struct tr_aggregates *a = &t->aggregates;
    memset(a, 0, sizeof *a);
    a->present = 1;
    a->t = tm;
    for (uint32_t b = 0; b < nlife; b++)
        a->lifetimes[b < TR_LIFETIMES ? b : TR_LIFETIMES - 1] += rd64(p + 16 + 8 * (size_t)b);
    a->count = n;
    a->v = xcalloc(n ? n : 1, sizeof *a->v);
    const unsigned char *q = p + 16 + 8 * (size_t)nlife;
    for (uint32_t i = 0; i < n; i++, q += 40)
        a->v[i] = (struct tr_agg){rd32(q), rd64(q + 8), rd64(q + 16), rd64(q + 24), rd64(q + 32)};
    return 0;
}

static void forget(struct trace *t);

/* The process exec'd: the program so far joins the list of earlier ones,
 * and its records are forgotten. */
static void exec_program(struct trace *t) {
    size_t n = 1;
    for (uint32_t i = 1; i < t->info.nstrings; i++) n += strlen(t->info.strings[i]) + 1;
    char *prog = xcalloc(n, 1);
    for (uint32_t i = 1; i < t->info.nstrings; i++) {
        if (i > 1) strcat(prog, " ");
        strcat(prog, t->info.strings[i]);
    }
    t->programs = xrealloc(t->programs, (t->nprograms + 1) * sizeof *t->programs);
    t->programs[t->nprograms++] = prog;
    forget(t);
}

/* A varint at *q (below end) into *v; 0 if it runs past end. */
static int rdvar(const unsigned char **q, const unsigned char *end, uint64_t *v) {
    uint64_t x = 0;
    for (unsigned shift = 0; *q < end && shift < 64; shift += 7) {
        unsigned char b = *(*q)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* EVENTS: sampled allocations and frees of one thread, packed (each a kind
 * byte, then varints of its differences from the event before); the
 * weight of an allocation follows from its size and the interval. */
static int parse_events(struct trace *t, const unsigned char *p, uint32_t rlen, size_t *cap_allocs,
                        size_t *cap_frees) {
    if (rlen < 16) return -1;
    const unsigned char *q = p + 16, *end = p + rlen;
    uint64_t tm = rd64(p), addr = 0, seq = 0, interval = t->info.sample_bytes;
    uint32_t tid = rd32(p + 8), count = rd32(p + 12);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t dt, za, size = 0, stack = 0, dseq;
        if (q >= end) return -1;
        unsigned kind = *q++;
        if (!rdvar(&q, end, &dt) || !rdvar(&q, end, &za)) return -1;
        if (!(kind & 1) && (!rdvar(&q, end, &size) || !rdvar(&q, end, &stack))) return -1;
        if (!rdvar(&q, end, &dseq)) return -1;
        if (kind & 4) { /* signed: an ALLOC written late, earlier than the event before */
            dt = (uint64_t)((int64_t)(dt >> 1) ^ -(int64_t)(dt & 1));
            dseq = (uint64_t)((int64_t)(dseq >> 1) ^ -(int64_t)(dseq & 1));
        }
        tm += dt;
        addr += (uint64_t)((int64_t)(za >> 1) ^ -(int64_t)(za & 1));
        seq += dseq;
        if (tm > t->last_t) t->last_t = tm;
        if (!(kind & 1)) {
            uint64_t weight = interval <= 1 || size >= interval ? size : interval;
            *PUSH(t->allocs, t->nallocs, *cap_allocs) =
                (struct tr_alloc){tm, addr, size, weight, (uint32_t)stack, tid, seq, TR_NOT_FREED};
        } else {
            *PUSH(t->frees, t->nfrees, *cap_frees) =
                (struct tr_free){tm, addr, tid, (kind >> 1) & 1, seq, TR_NOT_FREED};
        }
    }
    return q == end ? 0 : -1;
}

int trace_parse(const unsigned char *buf, size_t len, struct trace *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (len == 0) {
        seterr(err, errlen, "not a memalloc trace (the file is empty)");
        return -1;
    }
    if (len < sizeof MAGIC || memcmp(buf, MAGIC, sizeof MAGIC) != 0) {
        seterr(err, errlen, "not a memalloc trace (it does not start with MEMTRC01)");
        return -1;
    }
    size_t cap_maps = 0, cap_stacks = 0, cap_allocs = 0, cap_frees = 0, cap_heaps = 0,
           cap_classes = 0, cap_regions = 0, cap_arenas = 0;
    size_t off = sizeof MAGIC;
    while (off < len) {
        if (len - off < 8) {
            t->cut_short = 1;
            break;
        }
        uint16_t type = rd16(buf + off);
        uint32_t rlen = rd32(buf + off + 4);
        if (len - off - 8 < rlen) {
            t->cut_short = 1;
            break;
        }
        const unsigned char *p = buf + off + 8;
        off += 8 + (size_t)rlen;
        t->records++;
        int rc = 0;
        uint64_t tm = 0;
        int has_t = rlen >= 8 && type >= TR_MAPS && type != TR_STACK;
        if (has_t) tm = rd64(p);
        switch (type) {
        case TR_INFO:
            if (t->info.present && rlen >= 44) { /* an exec: a new program from here */
                exec_program(t);
                cap_maps = cap_stacks = cap_allocs = cap_frees = cap_heaps = cap_classes =
                    cap_regions = cap_arenas = 0;
            }
            rc = parse_info(t, p, rlen);
            break;
        case TR_MAPS:
            rc = parse_maps(t, p, rlen, &cap_maps);
            break;
        case TR_STACK:
            rc = parse_stack(t, p, rlen, &cap_stacks);
            break;
        case TR_ALLOC:
            if (rlen < 48) {
                rc = -1;
                break;
            }
            *PUSH(t->allocs, t->nallocs, cap_allocs) =
                (struct tr_alloc){rd64(p),      rd64(p + 8),  rd64(p + 16), rd64(p + 24),
                                  rd32(p + 32), rd32(p + 36), rd64(p + 40), TR_NOT_FREED};
            break;
        case TR_FREE:
            if (rlen < 32) {
                rc = -1;
                break;
            }
            *PUSH(t->frees, t->nfrees, cap_frees) = (struct tr_free){
                rd64(p), rd64(p + 8), rd32(p + 16), rd32(p + 20), rd64(p + 24), TR_NOT_FREED};
            break;
        case TR_EVENTS:
            rc = parse_events(t, p, rlen, &cap_allocs, &cap_frees);
            has_t = 0; /* (parse_events keeps the latest time) */
            break;
        case TR_HEAP: {
            if (rlen < 88) {
                rc = -1;
                break;
            }
            struct tr_heap *h = PUSH(t->heaps, t->nheaps, cap_heaps);
            uint64_t *f = &h->t;
            for (int i = 0; i < 11; i++) f[i] = rd64(p + 8 * i);
            break;
        }
        case TR_CLASSES:
            rc = parse_classes(t, p, rlen, &cap_classes);
            break;
        case TR_REGIONS:
            rc = parse_regions(t, p, rlen, &cap_regions);
            break;
        case TR_SITES:
            rc = parse_sites(t, p, rlen);
            break;
        case TR_SIZES:
            rc = parse_sizes(t, p, rlen);
            break;
        case TR_AGGREGATES:
            rc = parse_aggregates(t, p, rlen);
            break;
        case TR_ARENAS:
            rc = parse_arenas(t, p, rlen, &cap_arenas);
            break;
        case TR_END:
            if (rlen < 48) {
                rc = -1;
                break;
            }
            t->end = (struct tr_end){
                1, rd64(p), rd64(p + 8), rd64(p + 16), rd64(p + 24), rd64(p + 32), rd64(p + 40)};
            break;
        default:
            t->unknown++;
            has_t = 0;
        }
        if (rc) {
            t->malformed++;
            continue;
        }
        if (has_t && tm > t->last_t) t->last_t = tm;
    }
    t->truncated = t->cut_short || !t->end.present;
    sort_by_time(t->allocs, t->nallocs, sizeof *t->allocs);
    sort_by_time(t->frees, t->nfrees, sizeof *t->frees);
    sort_by_time(t->heaps, t->nheaps, sizeof *t->heaps);
    sort_by_time(t->classes, t->nclasses, sizeof *t->classes);
    sort_by_time(t->regions, t->nregions, sizeof *t->regions);
    sort_by_time(t->arenas, t->narenas, sizeof *t->arenas);
    sort_by_time(t->maps, t->nmaps, sizeof *t->maps);
    match(t);
    return 0;
}

int trace_read(const char *path, struct trace *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(err, errlen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        seterr(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "not a file");
        close(fd);
        return -1;
    }
    size_t len = (size_t)st.st_size;
    if (len == 0) {
        close(fd);
        return trace_parse(NULL, 0, t, err, errlen);
    }
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        seterr(err, errlen, "cannot map it: %s", strerror(errno));
        return -1;
    }
    madvise(m, len, MADV_SEQUENTIAL);
    int rc = trace_parse(m, len, t, err, errlen);
    munmap(m, len);
    return rc;
}

/* Frees the records read so far, for a new INFO (an exec): all but the
 * list of earlier programs and the count of records. */
static void forget(struct trace *t) {
    for (uint32_t i = 0; i < t->info.nstrings; i++) free(t->info.strings[i]);
    free(t->info.strings);
    for (size_t i = 0; i < t->nmaps; i++) free(t->maps[i].text);
    free(t->maps);
    for (size_t i = 0; i < t->nstacks; i++) free(t->stacks[i].frames);
    free(t->stacks);
    free(t->allocs);
    free(t->frees);
    free(t->heaps);
    for (size_t i = 0; i < t->nclasses; i++) free(t->classes[i].v);
    free(t->classes);
    for (size_t i = 0; i < t->nregions; i++) {
        for (uint32_t j = 0; j < t->regions[i].count; j++) free(t->regions[i].v[j].g);
        free(t->regions[i].v);
    }
    free(t->regions);
    for (size_t i = 0; i < t->narenas; i++) free(t->arenas[i].v);
    free(t->arenas);
    free(t->sites.v);
    free(t->sizes.v);
    free(t->aggregates.v);
    free(t->stack_ids);
    free(t->stack_idx);
    char **programs = t->programs;
    size_t nprograms = t->nprograms, records = t->records;
    memset(t, 0, sizeof *t);
    t->programs = programs;
    t->nprograms = nprograms;
    t->records = records;
}

void trace_free(struct trace *t) {
    for (size_t i = 0; i < t->nprograms; i++) free(t->programs[i]);
    free(t->programs);
    t->programs = NULL;
    t->nprograms = 0;
    forget(t);
}
