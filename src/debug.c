/*
 * debug.c: the check modes (see debug.h): checked blocks, their canaries
 * and fills, the quarantine's policy, and the reports.
 *
 * A checked block p of n bytes, asked with alignment a (at least 16):
 *
 *   level 1:  base [canary] [header 16] p [n bytes] [canary ...] base+usable
 *             (p = base + a; base a chunk or a mapped block of the engine)
 *   level 2:  slot [.........] [header 16] p [n bytes] [canary < a] | guard page
 *             or, under:  guard | p [n bytes] [canary ...] [header 16] slot end
 *
 * The header holds the size (48 bits), the kind (debug.h), the state (in
 * use or freed), log2 of the alignment, and the allocation stack's id,
 * under a 32-bit check word keyed with a random secret and p: a header an
 * underflow wrote over, or an address that is not a block, fails it. The
 * check word is the header's last four bytes, so the first bytes an
 * underflow reaches. Canary bytes depend on their address and the secret
 * and are never zero (a stray string terminator is caught).
 *
 * New blocks are junk-filled (0xa5 in every byte, calloc's zeroed), so
 * that no data of a freed block shows through and a read of memory never
 * written is recognisable. Freed blocks of level 1 are filled with 0x5a.
 */
#define _GNU_SOURCE
#include "debug.h"

#include <errno.h>
#include <string.h>

#include "api.h"
#include "chunk.h"
#include "counters.h"
#include "guard.h"
#include "init.h"
#include "msg.h"
#include "os.h"
#include "quarantine.h"
#include "stack.h"

#define ALLOC_FILL 0xa5
#define FREE_FILL  0x5a
#define TAIL_MIN   16 /* canary bytes after a level-1 block, at least */
#define HDR        16

enum { ST_LIVE = 0xa, ST_FREED = 0x5 };

struct hdr {
    uint64_t meta; /* size | kind << 48 | state << 52 | log2 align << 56 | slot << 62 */
    uint32_t alloc_id;
    uint32_t check;
};

#define SIZE_BITS     48
#define META_SIZE(m)  ((m) & (((uint64_t)1 << SIZE_BITS) - 1))
#define META_KIND(m)  ((unsigned)((m) >> 48) & 15)
#define META_STATE(m) ((unsigned)((m) >> 52) & 15)
#define META_ALIGN(m) ((unsigned)((m) >> 56) & 63)
#define STATE_MASK    ((uint64_t)15 << 52)
#define ACCOUNTED     ((uint64_t)1 << 63) /* counted in its stack's bytes not freed */

static uint64_t key; /* the secret of check words and canaries */
static int faults_caught;

static uint64_t secret(void) {
    uint64_t k = load_relaxed(&key);
    if (likely(k)) return k;
    k = os_cookie_value * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    /* every byte non-zero, so every canary byte is */
    for (int i = 0; i < 64; i += 8)
        if (((k >> i) & 0xff) == 0) k |= (uint64_t)0x3c << i;
    store_relaxed(&key, k);
    return k;
}

static uint32_t check_word(const void *p, uint64_t meta, uint32_t alloc_id) {
    uint64_t h = ((uint64_t)(uintptr_t)p ^ secret()) * 0xff51afd7ed558ccdull;
    h ^= (meta & ~STATE_MASK) + 0x9e3779b97f4a7c15ull + (h >> 29);
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= alloc_id + (h >> 32);
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32);
}

static inline uint8_t canary_at(uintptr_t a) {
    return (uint8_t)(secret() >> ((a & 7) * 8));
}

/* The canary bytes of [a, a+8) as one word (an unaligned load or store of
 * it: the secret rotated, little-endian, by a's offset in its word). */
static inline uint64_t canary_word(uintptr_t a) {
    unsigned s = (unsigned)(a & 7) * 8;
    uint64_t k = secret();
    return s ? k >> s | k << (64 - s) : k;
}

/* Word stores, the last one overlapping: a canary is 16 bytes or more in
 * level 1, and any length in level 2. */
static void canary_fill(char *from, char *to) {
    if (to - from < 8) {
        for (; from < to; from++) *from = (char)canary_at((uintptr_t)from);
        return;
    }
    uint64_t w = canary_word((uintptr_t)from), last = canary_word((uintptr_t)(to - 8));
    for (; from + 8 <= to; from += 8) memcpy(from, &w, 8);
    memcpy(to - 8, &last, 8);
}

static const char *first_bad_canary(const char *from, const char *to) {
    for (; from < to; from++)
        if ((uint8_t)*from != canary_at((uintptr_t)from)) return from;
    return NULL;
}

/* The first byte of [from, to) that is not its canary, or NULL. */
static const char *canary_damaged(const char *from, const char *to) {
    if (to - from < 8) return first_bad_canary(from, to);
    uint64_t w = canary_word((uintptr_t)from), last = canary_word((uintptr_t)(to - 8)), v;
    for (; from + 8 <= to; from += 8) {
        memcpy(&v, from, 8);
        if (v != w) return first_bad_canary(from, from + 8);
    }
    memcpy(&v, to - 8, 8);
    return v != last ? first_bad_canary(to - 8, to) : NULL;
}

/* The first byte of [from, to) that is not the free fill, or NULL: 32
 * bytes at a time, then a word, then bytes. */
static const char *fill_damaged(const char *from, const char *to) {
    const uint64_t f = 0x0101010101010101ull * FREE_FILL;
    uint64_t a, b, c, d;
    for (; from + 32 <= to; from += 32) {
        memcpy(&a, from, 8);
        memcpy(&b, from + 8, 8);
        memcpy(&c, from + 16, 8);
        memcpy(&d, from + 24, 8);
        if (((a ^ f) | (b ^ f) | (c ^ f) | (d ^ f)) != 0) break;
    }
    for (; from + 8 <= to; from += 8) {
        memcpy(&a, from, 8);
        if (a != f) break;
    }
    for (; from < to; from++)
        if ((uint8_t)*from != FREE_FILL) return from;
    return NULL;
}

/* ---- where a block's parts are ---- */

/* A checked block as found from the address the program has. */
struct blk {
    char *given; /* the address the program handed back */
    char *p;
    struct hdr *h;
    char *base;   /* the engine's block, or the slot */
    char *end;    /* the end of the canary after the block */
    size_t n;     /* the program's bytes */
    size_t under; /* level 2, under layout */
    char *slot;   /* level 2: the slot, else NULL */
    size_t slot_size;
    int open;          /* the slot is accessible (level 2) */
    uint32_t alloc_id; /* the header's, once trusted; 0: unknown */
};

static int under_layout(void) {
    return opt_get(OPT_CHECK_UNDER) != 0;
}

/* Fill b's derived fields from its header (trusted: the check word
 * passed); usable: the engine block's usable size, or 0 to ask the
 * engine. */
static void blk_layout(struct blk *b, size_t usable) {
    uint64_t m = b->h->meta;
    b->n = META_SIZE(m);
    b->alloc_id = b->h->alloc_id;
    if (b->slot) {
        b->base = b->slot;
        b->end = b->under ? (char *)b->h : b->slot + b->slot_size;
    } else {
        size_t a = (size_t)1 << META_ALIGN(m);
        b->base = b->p - a;
        b->end = b->base + (usable ? usable : ma_unpaged_usable(b->base, 0));
    }
}

/* Where the header of the block p of level-2 slot [slot, slot+size) is. */
static struct hdr *slot_hdr(char *slot, size_t size, const char *p, int under) {
    return under ? (struct hdr *)(void *)(slot + size - HDR)
                 : (struct hdr *)(void *)align_down((uintptr_t)p - HDR, 8);
}

static int hdr_valid(const struct hdr *h, const void *p) {
    uint64_t m = h->meta;
    unsigned st = META_STATE(m), kind = META_KIND(m);
    return (st == ST_LIVE || st == ST_FREED) && kind >= DBG_MALLOC && kind <= DBG_NEW_ARRAY &&
           h->check == check_word(p, m, h->alloc_id);
}

/* The block of level-2 slot [slot, slot+size), open or peeked at: its
 * address, with its header in *hp, or NULL if no valid header is there.
 * Under layout: the block is the slot's start, its header at the end;
 * else the block is the highest address whose header (just before it) is
 * valid: above it are its bytes and canary only. */
static char *slot_block(char *slot, size_t size, struct hdr **hp) {
    struct hdr *h = (struct hdr *)(void *)(slot + size - HDR);
    if (hdr_valid(h, slot)) {
        *hp = h;
        return slot;
    }
    for (char *q = slot + size; q >= slot + HDR; q--) {
        h = slot_hdr(slot, size, q, 0);
        if (hdr_valid(h, q)) {
            *hp = h;
            return q;
        }
    }
    return NULL;
}

enum found {
    FOUND,      /* a checked block: b filled */
    DAMAGED,    /* p - 16 starts a block of the engine that holds p, but its header fails */
    CLOSED,     /* p is in a level-2 slot that is freed (inaccessible) */
    INSIDE,     /* p is in an open level-2 slot, but not its block's address (b: the block) */
    NOT_CHECKED /* anything else: a block allocated while no check mode was on, or not a block */
};

static enum found find_block(const void *pv, struct blk *b) {
    char *p = (char *)pv;
    memset(b, 0, sizeof *b);
    b->p = b->given = p;
    if (guard_owns(p)) {
        size_t size;
        int open;
        char *slot = guard_slot_of(p, &size, &open);
        if (!slot || p < slot || p > slot + size) return NOT_CHECKED;
        b->slot = slot;
        b->slot_size = size;
        b->open = open;
        if (!open) return CLOSED;
        b->under = p == slot && under_layout();
        struct hdr *h = slot_hdr(slot, size, p, b->under);
        if ((char *)h >= slot && hdr_valid(h, p)) {
            b->h = h;
            blk_layout(b, 0);
            return FOUND;
        }
        /* not the block's address: which block is in the slot? */
        char *q = slot_block(slot, size, &h);
        if (!q) {
            b->h = (char *)h >= slot ? h : NULL;
            return b->h ? DAMAGED : NOT_CHECKED;
        }
        b->p = q;
        b->h = h;
        b->under = q == slot && (char *)h == slot + size - HDR;
        blk_layout(b, 0);
        return INSIDE;
    }
    if ((uintptr_t)p & (ALIGNMENT - 1)) return NOT_CHECKED;
    for (unsigned k = 4; k <= 30; k++) {
        size_t a = (size_t)1 << k;
        if ((uintptr_t)p < a) break;
        /* the engine block's own header, not its successor's: an overflow
         * of this block may have broken that one */
        size_t u = ma_unpaged_usable(p - a, 0);
        if (u < a) continue;
        b->h = (struct hdr *)(void *)(p - HDR);
        if (hdr_valid(b->h, p) && META_ALIGN(b->h->meta) == k) {
            blk_layout(b, u);
            return FOUND;
        }
        if (k == 4) return DAMAGED;
    }
    b->h = NULL;
    return NOT_CHECKED;
}

/* ---- reports ---- */

struct report {
    const char *bug;     /* "heap-buffer-overflow", ... */
    const void *addr;    /* the address the first line names */
    const char *who;     /* the call that found it, or NULL for a fault */
    const char *extra;   /* "(operator new [] vs operator delete)", or NULL */
    int is_write;        /* for a fault */
    uint32_t now_id;     /* the stack of the call, or of the fault */
    const struct blk *b; /* the block, or NULL */
    const char *where;   /* "after", "before", "inside" the block, or NULL */
    size_t distance;
    uint32_t free_id;
    const char *note; /* a last line, or NULL */
};

static void line(int fd, struct msg *m) {
    msg_write(m, fd);
    m->len = 0;
}

static __attribute__((cold, noinline)) void report_write(const struct report *r) {
    int fd = 2;
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: ERROR: ");
    msg_str(&m, r->bug);
    if (r->extra) {
        msg_str(&m, " ");
        msg_str(&m, r->extra);
    }
    msg_str(&m, " on address ");
    msg_hex(&m, (uintptr_t)r->addr);
    if (r->who) {
        msg_str(&m, " in ");
        msg_str(&m, r->who);
        msg_str(&m, "()");
    } else {
        msg_str(&m, r->is_write ? " (a write)" : " (a read)");
    }
    line(fd, &m);
    stack_print(fd, r->now_id);
    if (r->b && r->where) {
        msg_hex(&m, (uintptr_t)r->addr);
        msg_str(&m, " is ");
        msg_dec(&m, r->distance);
        msg_str(&m, " byte(s) ");
        msg_str(&m, r->where);
        msg_str(&m, " the ");
        msg_dec(&m, r->b->n);
        msg_str(&m, "-byte block [");
        msg_hex(&m, (uintptr_t)r->b->p);
        msg_str(&m, ",");
        msg_hex(&m, (uintptr_t)r->b->p + r->b->n);
        msg_str(&m, ")");
        line(fd, &m);
    }
    if (r->note) {
        msg_str(&m, r->note);
        line(fd, &m);
    }
    if (r->free_id) {
        msg_str(&m, "freed by:");
        line(fd, &m);
        stack_print(fd, r->free_id);
    }
    if (r->b && r->b->alloc_id) {
        msg_str(&m, r->free_id ? "previously allocated by:" : "allocated by:");
        line(fd, &m);
        stack_print(fd, r->b->alloc_id);
    }
    msg_str(&m, "SUMMARY: memalloc: ");
    msg_str(&m, r->bug);
    if (r->who) {
        msg_str(&m, " in ");
        msg_str(&m, r->who);
        msg_str(&m, "()");
    }
    line(fd, &m);
}

static __attribute__((noreturn, cold)) void report(const struct report *r) {
    report_write(r);
    os_abort();
}

static unsigned depth(void) {
    return (unsigned)opt_get(OPT_CHECK_STACK);
}

/* Report if b's canaries are damaged (the header is valid). */
static void verify_canaries(const struct blk *b, const char *who, void *ra) {
    const char *bad = canary_damaged(b->p + b->n, b->end);
    struct report r = {.who = who, .b = b};
    if (bad) {
        r.bug = "heap-buffer-overflow";
        r.addr = bad;
        r.where = "after";
        r.distance = (size_t)(bad - (b->p + b->n));
    } else if (!b->slot && META_ALIGN(b->h->meta) > 4 &&
               (bad = canary_damaged(b->base, (char *)b->h)) != NULL) {
        r.bug = "heap-buffer-underflow";
        r.addr = bad;
        r.where = "before";
        r.distance = (size_t)(b->p - bad);
    } else {
        return;
    }
    r.now_id = stack_capture(ra, depth());
    report(&r);
}

/* The report for a header that fails its check: an underflow wrote over
 * it (the first damaged byte is the lowest one found different from
 * what a header of the same fields would hold), or p is not a block. */
static __attribute__((noreturn, cold)) void damaged(struct blk *b, const char *who, void *ra) {
    struct report r = {.who = who, .addr = b->p, .now_id = stack_capture(ra, depth())};
    const struct hdr *h = b->h;
    uint64_t m = h->meta;
    unsigned kind = META_KIND(m), st = META_STATE(m);
    if (kind >= DBG_MALLOC && kind <= DBG_NEW_ARRAY && (st == ST_LIVE || st == ST_FREED)) {
        struct hdr want = *h;
        want.check = check_word(b->p, m, h->alloc_id);
        const unsigned char *have = (const unsigned char *)h, *w = (const unsigned char *)&want;
        size_t i = 0;
        while (i < HDR && have[i] == w[i]) i++;
        r.bug = "heap-buffer-underflow";
        r.addr = (const char *)h + i;
        r.where = "before";
        r.distance = (size_t)(b->p - (const char *)r.addr);
        b->n = META_SIZE(m);
        if (i >= 12) b->alloc_id = h->alloc_id; /* only the check word was written over */
        r.b = b;
        r.note = "(the block's header was overwritten)";
    } else {
        r.bug = "heap-buffer-underflow";
        r.addr = h;
        r.note = "(the 16 bytes before the block were overwritten, its header: an underflow, "
                 "or the address handed back is not a block)";
    }
    report(&r);
}

static __attribute__((noreturn, cold)) void bad_free(const void *p, const char *who, void *ra,
                                                     const char *note) {
    struct report r = {.bug = "bad-free", .addr = p, .who = who, .note = note};
    r.now_id = stack_capture(ra, depth());
    report(&r);
}

static __attribute__((noreturn, cold)) void double_free(struct blk *b, const char *who, void *ra) {
    struct report r = {.bug = "double-free", .addr = b->p, .who = who, .b = b};
    r.now_id = stack_capture(ra, depth());
    r.free_id = quarantine_free_stack(b->p);
    if (b->slot && !b->open) {
        /* the slot is inaccessible: its header read with the slot open */
        guard_peek(b->slot, 1);
        b->under = b->p == b->slot && under_layout();
        b->h = slot_hdr(b->slot, b->slot_size, b->p, b->under);
        if (hdr_valid(b->h, b->p)) {
            b->n = META_SIZE(b->h->meta);
            b->alloc_id = b->h->alloc_id;
        } else {
            b->h = NULL;
        }
        guard_peek(b->slot, 0);
    }
    if (b->h) {
        r.where = "inside";
        r.distance = 0;
    }
    if (!r.free_id) r.note = "(the block left quarantine since it was freed)";
    report(&r);
}

/* An address handed back that lies in a level-2 slot but is not its
 * block's (b: the block; b->p was the address handed back). */
static __attribute__((noreturn, cold)) void inside_block(struct blk *b, const char *who, void *ra) {
    const char *a = b->given;
    struct report r = {.bug = "bad-free", .addr = a, .who = who, .b = b};
    r.where = a < b->p ? "before" : "inside";
    r.distance = a < b->p ? (size_t)(b->p - a) : (size_t)(a - b->p);
    r.note = "(not the start of a block)";
    r.now_id = stack_capture(ra, depth());
    report(&r);
}

/*
 * p, handed back to who, is no block in use of any kind. If it lies in a
 * chunk of the heap (where level 1's blocks are), look back up to 1 MiB
 * for the checked block it may be inside; if there is none, and p is
 * where a block would start, the likeliest cause is an underflow that
 * overwrote both the block's header and the heap's before it.
 */
static __attribute__((noreturn, cold)) void not_a_block(void *pv, const char *who, void *ra) {
    char *p = pv;
    struct region *r = region_lookup(p);
    /* the heap's word on the chunk a checked block at p would have */
    const char *what = (uintptr_t)p & (ALIGNMENT - 1) ? NULL : ma_blame(p - HDR, who);
    if (what && what == freed_twice_what(who)) {
        struct report rep = {.bug = "double-free", .addr = p, .who = who};
        rep.note = "(a block freed before, which has left quarantine since)";
        rep.now_id = stack_capture(ra, depth());
        report(&rep);
    }
    if (r && !page_of(r, p)) {
        char *first = (char *)region_first(r) + HDR;
        for (char *q = (char *)align_down((uintptr_t)p, ALIGNMENT);
             q >= first && q + ((size_t)1 << 20) > p; q -= ALIGNMENT) {
            struct hdr *h = (struct hdr *)(void *)(q - HDR);
            if (q == p || !hdr_valid(h, q) || META_SIZE(h->meta) + TAIL_MIN < (size_t)(p - q))
                continue;
            struct blk b;
            memset(&b, 0, sizeof b);
            b.p = q;
            b.given = p;
            b.h = h;
            blk_layout(&b, 0);
            inside_block(&b, who, ra);
        }
        if (what && what != freed_twice_what(who) && strcmp(what, "invalid pointer") != 0) {
            struct report rep = {.bug = "heap-buffer-underflow", .addr = p - HDR, .who = who};
            rep.note = "(the 32 bytes before the address, a block's header and the heap's, were "
                       "overwritten: an underflow, or the address handed back is not a block)";
            rep.now_id = stack_capture(ra, depth());
            report(&rep);
        }
    }
    bad_free(p, who, ra,
             "(not the start of a block in use: never allocated, inside a block, or freed "
             "already)");
}

static const char *kind_name(unsigned k) {
    return k == DBG_NEW ? "operator new" : k == DBG_NEW_ARRAY ? "operator new []" : "malloc";
}
static const char *release_name(unsigned k) {
    return k == DBG_NEW ? "operator delete" : k == DBG_NEW_ARRAY ? "operator delete []" : "free";
}

/* ---- the quarantine's policy ---- */

static size_t quarantine_limit(void) {
    size_t q = opt_get(OPT_QUARANTINE);
    if (opt_fixed(OPT_QUARANTINE)) return q;
    size_t l = load_relaxed(&ma_counters.in_use) / 16;
    if (l < ((size_t)1 << 20)) l = (size_t)1 << 20;
    if (l > ((size_t)256 << 20)) l = (size_t)256 << 20;
    return l;
}

/* A block leaves quarantine (or never enters it): verify its fill, unless
 * its slot is closed, and release it. bytes: what the quarantine counted
 * (the engine block's usable size, or the slot's). */
static void release(void *pv, size_t bytes, uint32_t free_id, const char *who, void *ra) {
    char *p = pv;
    struct blk b;
    memset(&b, 0, sizeof b);
    b.p = p;
    if (guard_owns(p)) {
        b.slot = guard_slot_of(p, &b.slot_size, &b.open);
        if (!b.slot) return;
        if (!b.open) {
            guard_release(b.slot);
            return;
        }
        b.under = p == b.slot && under_layout();
        b.h = slot_hdr(b.slot, b.slot_size, p, b.under);
    } else {
        b.h = (struct hdr *)(void *)(p - HDR);
    }
    blk_layout(&b, bytes);
    const char *bad = fill_damaged(p, p + b.n);
    if (bad) {
        struct report r = {.bug = "heap-use-after-free", .addr = bad, .who = who, .b = &b};
        r.where = "inside";
        r.distance = (size_t)(bad - p);
        r.free_id = free_id;
        r.note = "(written after it was freed; found as the block left quarantine)";
        r.now_id = stack_capture(ra, depth());
        report(&r);
    }
    verify_canaries(&b, who, ra);
    if (b.slot)
        guard_release(b.slot);
    else
        ma_free_slow(b.base, "free");
}

static void evict(const char *who, void *ra) {
    struct quarantined out[16];
    size_t limit = quarantine_limit();
    unsigned n;
    while ((n = quarantine_evict(limit, out, 16)) > 0)
        for (unsigned i = 0; i < n; i++) release(out[i].p, out[i].bytes, out[i].free_id, who, ra);
}

/*
 * Level 2 closes a freed block's slot (a use after free then faults at
 * once) within a budget of system calls: closing and later reopening a
 * slot costs two mprotect calls and a page fault, from a microsecond on
 * bare metal to tens of microseconds in a virtual machine (57 us on the
 * one docs/benchmarks.md describes), which a program that frees millions
 * of blocks cannot afford. Beyond 16 closes per 16 ms (1,000 a second), a
 * freed block is filled and verified as in level 1 instead; a program that
 * frees at a human pace, as a misuse reproducer does, gets every block
 * closed.
 */
#define CLOSE_WINDOW_MS 16
#define CLOSE_BUDGET    16
static int close_allowed(void) {
    static uint64_t window;
    static unsigned used;
    uint64_t w = os_now_ms() / CLOSE_WINDOW_MS;
    if (load_relaxed(&window) != w) {
        store_relaxed(&window, w);
        store_relaxed(&used, 0);
    }
    return add_relaxed(&used, 1) <= CLOSE_BUDGET;
}

/* ---- level 2: faults ---- */

/* The slot whose block a fault at a belongs to. A guard page lies between
 * two slots' pages: a fault in its lower half is an overflow of the block
 * below, one in its upper half an underflow of the block above. A fault
 * past the slots carved so far is an overflow of the last one. */
static char *fault_slot(char *a, size_t *size, int *open) {
    size_t ps = os_page_size();
    char *slot = guard_slot_of(a, size, open);
    if (slot && a >= slot && a < slot + *size) return slot; /* a data page */
    size_t bsize, asize;
    int bopen, aopen;
    char *below = NULL, *above = NULL;
    for (char *q = a - ps; guard_owns(q) && !below && q + 64 * ps > a; q -= ps) {
        below = guard_slot_of(q, &bsize, &bopen);
        if (below && !(q >= below && q < below + bsize)) below = NULL;
    }
    above = guard_slot_of(a + ps, &asize, &aopen);
    if (above && !(a + ps >= above && a + ps < above + asize)) above = NULL;
    if (!below && !above && !slot) {
        /* past the slots carved so far */
        below = guard_last_slot(&bsize, &bopen);
        if (below && a < below + bsize) below = NULL;
    }
    int lower = (uintptr_t)a % ps < ps / 2;
    if (below && (lower || !above)) {
        *size = bsize;
        *open = bopen;
        return below;
    }
    if (above) {
        *size = asize;
        *open = aopen;
    }
    return above;
}

static int on_fault(void *addr, int is_write, void *pc) {
    static int reporting;
    size_t size;
    int open;
    char *a = addr;
    if (!guard_owns(a)) return 0;
    char *slot = fault_slot(a, &size, &open);
    if (!slot || __atomic_exchange_n(&reporting, 1, __ATOMIC_ACQ_REL)) return 0;
    struct report r = {.addr = addr, .is_write = is_write};
    struct blk b;
    memset(&b, 0, sizeof b);
    b.slot = slot;
    b.slot_size = size;
    if (!open) guard_peek(slot, 1);
    struct hdr *h = NULL;
    char *p = slot_block(slot, size, &h);
    if (p) {
        b.p = p;
        b.h = h;
        b.under = p == slot && (char *)h == slot + size - HDR;
        blk_layout(&b, 0);
        r.b = &b;
    }
    if (!open) guard_peek(slot, 0);
    if (a >= slot && a < slot + size) {
        if (open) return 0; /* not a fault of ours */
        r.bug = "heap-use-after-free";
        r.free_id = p ? quarantine_free_stack(p) : 0;
        if (p) {
            r.where = a >= p ? "inside" : "before";
            r.distance = a >= p ? (size_t)(a - p) : (size_t)(p - a);
        }
    } else if (a >= slot + size) {
        r.bug = "heap-buffer-overflow";
        if (p) {
            r.where = "after";
            r.distance = (size_t)(a - (p + b.n));
        }
    } else {
        r.bug = "heap-buffer-underflow";
        if (p) {
            r.where = "before";
            r.distance = (size_t)(p - a);
        }
    }
    r.now_id = stack_capture(pc, depth());
    report_write(&r);
    return 1;
}

/* ---- the entry points' work ---- */

static void *plain_alloc(size_t n, size_t align, int zero) {
    void *p = align > ALIGNMENT ? ma_aligned(align, n) : ma_malloc_slow(n);
    if (p && zero) memset(p, 0, n);
    return p;
}

static int log2_of(size_t a) {
    return 63 - __builtin_clzll(a);
}

void *dbg_alloc(size_t n, size_t align, enum dbg_kind kind, int zero, void *ra) {
    if (!ready()) return plain_alloc(n, align, zero);
    unsigned level = (unsigned)opt_get(OPT_CHECK);
    if (stack_busy() || level == 0) return plain_alloc(n, align, zero);
    size_t a = align < ALIGNMENT ? ALIGNMENT : align;
    if (n > MAX_REQUEST - 2 * a - TAIL_MIN) {
        errno = ENOMEM;
        return NULL;
    }
    uint32_t id = stack_capture(ra, depth());
    char *p = NULL, *end = NULL, *base = NULL;
    struct hdr *h = NULL;
    uint64_t slot_flag = 0;
    if (level >= 2) {
        size_t ps = os_page_size(), size;
        int under = under_layout();
        /* the block ends at the guard page, or as near as its alignment
         * lets it: an object of n bytes needs no more than the largest
         * power of two that divides n, but C code that sizes a struct as
         * offsetof(member) + length expects at least 8 (CPython does) */
        size_t na = align > ALIGNMENT ? a : (size_t)1 << __builtin_ctzll(n | ALIGNMENT);
        if (na < 8) na = 8;
        char *slot = guard_alloc(n + HDR + (a > ps ? 2 * a : a), under, &size);
        if (slot) {
            if (!load_relaxed(&faults_caught)) {
                store_relaxed(&faults_caught, 1);
                os_catch_faults(on_fault);
            }
            if (under) {
                p = a > ps ? (char *)align_up((uintptr_t)slot, a) : slot;
                h = (struct hdr *)(void *)(slot + size - HDR);
                end = (char *)h;
            } else {
                p = (char *)align_down((uintptr_t)(slot + size - n), na);
                h = slot_hdr(slot, size, p, 0);
                end = slot + size;
            }
            base = slot;
            slot_flag = (uint64_t)1 << 62;
        }
    }
    if (!p) {
        size_t usable;
        base = ma_alloc_unpaged(a + n + TAIL_MIN, a, &usable);
        if (!base) return NULL;
        p = base + a;
        h = (struct hdr *)(void *)(p - HDR);
        end = base + usable;
        if (a > ALIGNMENT) canary_fill(base, (char *)h);
    }
    /* the leak report's accounting costs two atomic additions per call:
     * only when it is asked for */
    int leaks = opt_get(OPT_CHECK_LEAKS) != 0;
    uint64_t meta = (uint64_t)n | (uint64_t)kind << 48 | (uint64_t)ST_LIVE << 52 |
                    (uint64_t)log2_of(a) << 56 | slot_flag | (leaks ? ACCOUNTED : 0);
    h->meta = meta;
    h->alloc_id = id;
    h->check = check_word(p, meta, id);
    memset(p, zero ? 0 : ALLOC_FILL, n);
    canary_fill(p + n, end);
    if (leaks) stack_account(id, (int64_t)n, 1);
    return p;
}

void *dbg_calloc(size_t n, size_t size, void *ra) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return dbg_alloc(total, ALIGNMENT, DBG_MALLOC, 1, ra);
}

/* The checks of a block handed back to who, as a release of kind (0:
 * any) and, for a sized delete, of size bytes. */
static void check_release(struct blk *b, enum found f, unsigned kind, size_t size, const char *who,
                          void *ra) {
    if (f == DAMAGED) damaged(b, who, ra);
    if (f == INSIDE) inside_block(b, who, ra);
    if (f == CLOSED || META_STATE(b->h->meta) == ST_FREED) double_free(b, who, ra);
    unsigned k = META_KIND(b->h->meta);
    if (kind && k != kind) {
        struct report r = {.bug = "alloc-dealloc-mismatch", .addr = b->p, .who = who, .b = b};
        char extra[96];
        struct msg m = {.len = 0};
        msg_str(&m, "(");
        msg_str(&m, kind_name(k));
        msg_str(&m, " vs ");
        msg_str(&m, release_name(kind));
        msg_str(&m, ")");
        size_t len = m.len < sizeof extra - 1 ? m.len : sizeof extra - 1;
        memcpy(extra, m.buf, len);
        extra[len] = '\0';
        r.extra = extra;
        r.where = "inside";
        r.now_id = stack_capture(ra, depth());
        report(&r);
    }
    if (size && size != b->n) {
        struct report r = {.bug = "new-delete-type-mismatch", .addr = b->p, .who = who, .b = b};
        char note[128];
        struct msg m = {.len = 0};
        msg_str(&m, "object of ");
        msg_dec(&m, b->n);
        msg_str(&m, " bytes deleted with size ");
        msg_dec(&m, size);
        size_t len = m.len < sizeof note - 1 ? m.len : sizeof note - 1;
        memcpy(note, m.buf, len);
        note[len] = '\0';
        r.note = note;
        r.where = "inside";
        r.now_id = stack_capture(ra, depth());
        report(&r);
    }
    verify_canaries(b, who, ra);
}

/* Free checked block b (verified) into quarantine. */
static void retire(struct blk *b, const char *who, void *ra) {
    uint64_t m = b->h->meta;
    uint64_t freed = (m & ~STATE_MASK) | (uint64_t)ST_FREED << 52;
    if (!__atomic_compare_exchange_n(&b->h->meta, &m, freed, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        double_free(b, who, ra); /* another thread freed it first */
    if (m & ACCOUNTED) stack_account(b->h->alloc_id, -(int64_t)b->n, -1);
    uint32_t free_id = stack_capture(ra, depth());
    size_t bytes;
    if (b->slot) {
        bytes = b->slot_size;
        if (!close_allowed() || guard_close(b->slot) != 0) memset(b->p, FREE_FILL, b->n);
    } else {
        bytes = (size_t)(b->end - b->base);
        memset(b->p, FREE_FILL, b->n);
    }
    size_t limit = quarantine_limit();
    struct quarantined out[16];
    int n = opt_get(OPT_CHECK) == 0 || (opt_get(OPT_QUARANTINE) == 0 && opt_fixed(OPT_QUARANTINE))
                ? -1
                : quarantine_push(b->p, bytes, free_id, limit, out, 16);
    if (n < 0) {
        release(b->p, bytes, free_id, who, ra);
        return;
    }
    for (int i = 0; i < n; i++) release(out[i].p, out[i].bytes, out[i].free_id, who, ra);
    if (n == 16) evict(who, ra);
}

void dbg_free(void *p, enum dbg_kind kind, size_t size, const char *who, void *ra) {
    if (!p || is_boot(p)) return;
    struct blk b;
    enum found f = find_block(p, &b);
    if (f == NOT_CHECKED) {
        if (ma_block_usable(p) == 0) not_a_block(p, who, ra);
        struct blk inner;
        if (find_block((char *)p + HDR, &inner) == FOUND)
            bad_free(p, who, ra, "(16 bytes before a block: not its start)");
        ma_free_slow(p, who); /* a block from before the check mode */
        return;
    }
    check_release(&b, f, kind, size, who, ra);
    retire(&b, who, ra);
}

void *dbg_realloc(void *p, size_t n, const char *who, void *ra) {
    if (!p) return dbg_alloc(n, ALIGNMENT, DBG_MALLOC, 0, ra);
    if (n == 0) {
        dbg_free(p, DBG_MALLOC, 0, who, ra);
        return NULL;
    }
    struct blk b;
    enum found f = find_block(p, &b);
    size_t old;
    if (f == NOT_CHECKED) {
        if (is_boot(p))
            old = boot_size(p);
        else if ((old = ma_block_usable(p)) == 0)
            return ma_realloc(p, n, who); /* the engine's diagnosis */
    } else {
        check_release(&b, f, DBG_MALLOC, 0, who, ra);
        old = b.n;
    }
    if (n > MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    /* always moves: a stale pointer to the old block finds it in quarantine */
    void *q = dbg_alloc(n, ALIGNMENT, DBG_MALLOC, 0, ra);
    if (!q) return NULL;
    memcpy(q, p, old < n ? old : n);
    if (f == NOT_CHECKED) {
        if (!is_boot(p)) ma_free_slow(p, who);
    } else {
        retire(&b, who, ra);
    }
    return q;
}

size_t dbg_usable_size(const void *p, const char *who, void *ra) {
    if (!p) return 0;
    if (is_boot(p)) return boot_size(p);
    struct blk b;
    enum found f = find_block(p, &b);
    if (f == NOT_CHECKED) return ma_usable_size(p, who);
    check_release(&b, f, 0, 0, who, ra);
    return b.n;
}

/* ---- verification of everything, and exit ---- */

const char *dbg_block_damaged(void *q, size_t usable, const void **pp) {
    /* the header is at q + a - 16 for an alignment a the block holds */
    for (unsigned k = 4; k <= 30 && ((size_t)1 << k) < usable; k++) {
        char *p = (char *)q + ((size_t)1 << k);
        const struct hdr *h = (const struct hdr *)(void *)(p - HDR);
        if (!hdr_valid(h, p) || META_ALIGN(h->meta) != k) continue;
        size_t n = META_SIZE(h->meta);
        if (n > usable - ((size_t)1 << k)) return NULL;
        *pp = p;
        const char *bad = canary_damaged(p + n, (char *)q + usable);
        if (!bad && k > 4) bad = canary_damaged(q, (const char *)h);
        if (!bad && META_STATE(h->meta) == ST_FREED) bad = fill_damaged(p, p + n);
        return bad;
    }
    return NULL;
}

void dbg_report_damaged(const void *p, const char *who) {
    struct blk b;
    void *ra = __builtin_return_address(0);
    enum found f = find_block(p, &b);
    if (f == DAMAGED) damaged(&b, who, ra);
    if (f == FOUND && META_STATE(b.h->meta) == ST_FREED) {
        const char *bad = fill_damaged(b.p, b.p + b.n);
        if (bad) {
            struct report r = {.bug = "heap-use-after-free", .addr = bad, .who = who, .b = &b};
            r.where = "inside";
            r.distance = (size_t)(bad - b.p);
            r.free_id = quarantine_free_stack(b.p);
            r.note = "(written after it was freed)";
            r.now_id = stack_capture(ra, depth());
            report(&r);
        }
    }
    if (f == FOUND) verify_canaries(&b, who, ra);
    bad_free(p, who, ra, "(a damaged block that could not be described)");
}

void dbg_exit(void) {
    if (!dbg_on()) return;
    struct quarantined out[16];
    unsigned n;
    while ((n = quarantine_drain(out, 16)) > 0)
        for (unsigned i = 0; i < n; i++)
            release(out[i].p, out[i].bytes, out[i].free_id, "exit", __builtin_return_address(0));
    if (opt_get(OPT_CHECK_LEAKS)) stack_report_leaks(2, 20);
}
