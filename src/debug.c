/*
 * debug.c: the check modes (see debug.h): checked blocks, their canaries
 * and fills, the quarantine's policy, and the reports.
 *
 * A checked block p of n bytes, asked with alignment a (at least 16):
 *
 *   level 1:  obj [key 8] [canary 8] [header 16] p [n bytes] [canary ...] obj+size
 *             (an object of a page: alignment 16, n up to CLASS_MAX - 48)
 *         or  base [canary] [header 16] p [n bytes] [canary ...] base+usable
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
 * An object's key is what a free object of its page holds there (page.h):
 * the engine's free fast path takes the object for a free one and
 * declines it, so that a free of any address in it comes here; a checked
 * block is never freed by the engine without this file's checks.
 *
 * New blocks are junk-filled (0xa5 in every byte, calloc's zeroed), so
 * that no data of a freed block shows through and a read of memory never
 * written is recognisable. Freed blocks of level 1 are filled with 0x5a;
 * an object whose last checked block left quarantine with that fill
 * verified is handed out with it as its junk (a pass over the block
 * saved: still_filled).
 */
#define _GNU_SOURCE
#include "debug.h"

#include <errno.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "api.h"
#include "chunk.h"
#include "counters.h"
#include "guard.h"
#include "init.h"
#include "msg.h"
#include "os.h"
#include "page.h"
#include "quarantine.h"
#include "stack.h"
#include "zero.h"

#define ALLOC_FILL 0xa5
#define FREE_FILL  0x5a
#define TAIL_MIN   16 /* canary bytes after a level-1 block, at least */
#define HDR        16

/* in use; in quarantine; an object given back to its page (the header
 * stays until the object is handed out again: a later free is a double
 * free) */
enum { ST_LIVE = 0xa, ST_FREED = 0x5, ST_GONE = 0x3 };

struct hdr {
    uint64_t meta; /* size | OBJECT | kind << 48 | state << 52 | log2 align << 56 | SLOT */
    uint32_t alloc_id;
    uint32_t check;
};

#define SIZE_BITS     47
#define META_SIZE(m)  ((m) & (((uint64_t)1 << SIZE_BITS) - 1))
#define META_KIND(m)  ((unsigned)((m) >> 48) & 15)
#define META_STATE(m) ((unsigned)((m) >> 52) & 15)
#define META_ALIGN(m) ((unsigned)((m) >> 56) & 63)
#define STATE_MASK    ((uint64_t)15 << 52)
#define ACCOUNTED     ((uint64_t)1 << 63) /* counted in its stack's bytes not freed */
#define SLOT          ((uint64_t)1 << 62) /* in a level-2 slot */
#define OBJECT        ((uint64_t)1 << 47) /* in an object of a page */
#define OBJ_LEAD      32                  /* an object's bytes before p */

static uint64_t key; /* the secret of check words and canaries */
static int faults_caught;

static __attribute__((noinline)) uint64_t secret_slow(void) {
    uint64_t k = os_cookie_value * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    /* every byte non-zero, so every canary byte is */
    for (int i = 0; i < 64; i += 8)
        if (((k >> i) & 0xff) == 0) k |= (uint64_t)0x3c << i;
    store_relaxed(&key, k);
    return k;
}

static inline uint64_t secret(void) {
    uint64_t k = load_relaxed(&key);
    return likely(k) ? k : secret_slow();
}

static inline uint32_t check_word(const void *p, uint64_t meta, uint32_t alloc_id) {
    uint64_t h = ((uint64_t)(uintptr_t)p ^ secret()) * 0xff51afd7ed558ccdull;
    h ^= (meta & ~STATE_MASK) + 0x9e3779b97f4a7c15ull + (h >> 29);
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= alloc_id + (h >> 32);
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 32);
}

static inline uint64_t rotr(uint64_t w, unsigned s) {
    return s ? w >> s | w << (64 - s) : w;
}

/* The canary bytes of [a, a+8) as one word (an unaligned load or store of
 * it): the secret rotated, little-endian, by a's offset in its word, so
 * that the canary byte at any address is the same whatever word covers it. */
static inline uint64_t canary_word(uintptr_t a) {
    return rotr(secret(), (unsigned)(a & 7) * 8);
}

/* Two words at once: the compiler's vectors (SSE2 on x86-64), loaded and
 * stored unaligned through memcpy. */
typedef uint64_t v2 __attribute__((vector_size(16)));

/* Fill [from, to) with a pattern whose first 8 bytes are the word w and
 * which repeats every 8 bytes. */
static inline void pattern_fill(char *from, char *to, uint64_t w) {
    size_t len = (size_t)(to - from);
    if (len < 16) {
        for (size_t i = 0; i < len; i++) from[i] = (char)(w >> ((i & 7) * 8));
        return;
    }
    v2 ww = {w, w};
    char *q = from;
    for (; q + 16 <= to; q += 16) memcpy(q, &ww, 16);
    /* the last 16 bytes, overlapping: the pattern as it stands there */
    uint64_t t = rotr(w, (unsigned)((to - 16 - from) & 7) * 8);
    v2 tt = {t, t};
    memcpy(to - 16, &tt, 16);
}

#if defined(__x86_64__)
/*
 * pattern_broken over 64 bytes or more with AVX2 (a 32-byte register per
 * load): 64 bytes per test, then the rest in at most two overlapping
 * 32-byte loads. NULL if [from, to) is whole, else where the bytewise
 * search for the first broken byte starts. Run only where the processor
 * has AVX2 (wide).
 */
__attribute__((target("avx2"))) static const char *pattern_broken_wide(const char *from,
                                                                       const char *to, uint64_t w) {
    __m256i ww = _mm256_set1_epi64x((long long)w), x;
    const char *q = from;
    for (; q + 64 <= to; q += 64) {
        x = _mm256_or_si256(_mm256_xor_si256(_mm256_loadu_si256((const void *)q), ww),
                            _mm256_xor_si256(_mm256_loadu_si256((const void *)(q + 32)), ww));
        if (!_mm256_testz_si256(x, x)) return q;
    }
    if (q == to) return NULL;
    if (to - q > 32) {
        x = _mm256_xor_si256(_mm256_loadu_si256((const void *)q), ww);
        if (!_mm256_testz_si256(x, x)) return q;
    }
    __m256i tt = _mm256_set1_epi64x((long long)rotr(w, (unsigned)((to - 32 - from) & 7) * 8));
    x = _mm256_xor_si256(_mm256_loadu_si256((const void *)(to - 32)), tt);
    return _mm256_testz_si256(x, x) ? NULL : to - 32;
}

static int wide = -1; /* AVX2: pattern_broken_wide (-1: not asked yet) */
#endif

/* The first byte of [from, to) that breaks the pattern of pattern_fill,
 * or NULL: with AVX2 from 64 bytes on; else under 64 bytes a word at a
 * time, then the last word overlapping; else 64 bytes at a time, then
 * 16, then the last 16 overlapping. */
static const char *pattern_broken(const char *from, const char *to, uint64_t w) {
    const char *q = from;
#if defined(__x86_64__)
    if (to - from >= 64) {
        int v = load_relaxed(&wide);
        if (unlikely(v < 0)) store_relaxed(&wide, v = os_cpu_avx2());
        if (v) {
            if ((q = pattern_broken_wide(from, to, w)) == NULL) return NULL;
            goto bytes;
        }
    }
#endif
    if (to - from < 64 && to - from >= 8) { /* a canary, mostly: word by word */
        uint64_t a;
        for (; q + 8 <= to; q += 8) {
            memcpy(&a, q, 8);
            if (a != w) goto bytes;
        }
        if (q == to) return NULL;
        memcpy(&a, to - 8, 8);
        if (a == rotr(w, (unsigned)((to - 8 - from) & 7) * 8)) return NULL;
        goto bytes;
    }
    if (to - from >= 16) {
        v2 ww = {w, w}, a, b, c, d, x;
        for (; q + 64 <= to; q += 64) {
            memcpy(&a, q, 16);
            memcpy(&b, q + 16, 16);
            memcpy(&c, q + 32, 16);
            memcpy(&d, q + 48, 16);
            x = (a ^ ww) | (b ^ ww) | (c ^ ww) | (d ^ ww);
            if (x[0] | x[1]) goto bytes;
        }
        for (; q + 16 <= to; q += 16) {
            memcpy(&a, q, 16);
            x = a ^ ww;
            if (x[0] | x[1]) goto bytes;
        }
        if (q == to) return NULL;
        uint64_t t = rotr(w, (unsigned)((to - 16 - from) & 7) * 8);
        v2 tt = {t, t};
        memcpy(&a, to - 16, 16);
        x = a ^ tt;
        if (!(x[0] | x[1])) return NULL;
    }
bytes:
    for (; q < to; q++)
        if ((uint8_t)*q != (uint8_t)(w >> (((uintptr_t)(q - from) & 7) * 8))) return q;
    return NULL;
}

static inline void canary_fill(char *from, char *to) {
    pattern_fill(from, to, canary_word((uintptr_t)from));
}

/* The first byte of [from, to) that is not its canary, or NULL. */
static const char *canary_damaged(const char *from, const char *to) {
    return pattern_broken(from, to, canary_word((uintptr_t)from));
}

/* The first byte of [from, to) that is not the free fill, or NULL. */
static const char *fill_damaged(const char *from, const char *to) {
    return pattern_broken(from, to, 0x0101010101010101ull * FREE_FILL);
}

/*
 * The junk fill of a new block and the free fill of a freed one cover at
 * most its first FILL_MAX bytes (and a freed block's last OS page): a
 * program that allocates a large buffer and touches little of it (sort
 * sizes its buffer from the memory installed) would otherwise have all of
 * it made resident (2.1 GB instead of 108 MB). A freed block's pages
 * between are purged instead (the system's zeros: nothing of the block
 * shows through), and are not verified when it leaves quarantine.
 */
#define FILL_MAX ((size_t)1 << 20)

/* Where the fill of a freed block [p, end) stops, and where it starts
 * again (equal if it covers everything). */
static inline void fill_spans(char *p, char *end, char **lo, char **hi) {
    *lo = *hi = end;
    if (likely((size_t)(end - p) <= FILL_MAX)) return;
    size_t ps = os_page_size();
    if ((size_t)(end - p) <= FILL_MAX + 2 * ps) return;
    *lo = (char *)align_up((uintptr_t)(p + FILL_MAX), ps);
    *hi = (char *)align_down((uintptr_t)end, ps);
}

static inline void free_fill(char *p, char *end) {
    char *lo, *hi;
    fill_spans(p, end, &lo, &hi);
    memset(p, FREE_FILL, (size_t)(lo - p));
    if (hi > lo) {
        os_purge(lo, (size_t)(hi - lo));
        memset(hi, FREE_FILL, (size_t)(end - hi));
    }
}

/* The first byte of freed block [p, end) that is not its fill, or NULL. */
static const char *free_fill_damaged(char *p, char *end) {
    char *lo, *hi;
    fill_spans(p, end, &lo, &hi);
    const char *bad = fill_damaged(p, lo);
    return bad || hi == lo ? bad : fill_damaged(hi, end);
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
    } else if (m & OBJECT) {
        b->base = b->p - OBJ_LEAD;
        b->end = b->base + (usable ? usable : ma_object_at(b->base));
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
    return (st == ST_LIVE || st == ST_FREED || st == ST_GONE) && kind >= DBG_MALLOC &&
           kind <= DBG_NEW_ARRAY && h->check == check_word(p, m, h->alloc_id);
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
    size_t osize = (uintptr_t)p > OBJ_LEAD ? ma_object_at(p - OBJ_LEAD) : 0;
    /* (an object under 48 bytes holds no checked block: p may be the next
     * object of its page, a block allocated with no check mode on) */
    if (osize >= OBJ_LEAD + TAIL_MIN) {
        /* where a checked object's block starts: its header, or what an
         * underflow left of it */
        b->h = (struct hdr *)(void *)(p - HDR);
        if (!hdr_valid(b->h, p) || !(b->h->meta & OBJECT)) return DAMAGED;
        blk_layout(b, osize);
        return FOUND;
    }
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

/* The first damaged byte before the header of a block whose header is
 * valid (meta), from base: a chunk's canary up to its alignment; an
 * object's canary and key. */
static inline const char *lead_damaged(const char *base, const struct hdr *h, uint64_t meta) {
    if (meta & SLOT) return NULL;
    if (meta & OBJECT) {
        uint64_t lead[2] = {obj_key(base), canary_word((uintptr_t)base)};
        if (memcmp(base, lead, 16) == 0) return NULL;
        const char *want = (const char *)lead;
        for (unsigned i = 0;; i++)
            if (base[i] != want[i]) return base + i;
    }
    return META_ALIGN(meta) > 4 ? canary_damaged(base, (const char *)h) : NULL;
}

/* Report if b's canaries are damaged (the header is valid; a freed
 * block's fill covers its canary after it: fill_damaged's business). */
static void verify_canaries(const struct blk *b, const char *who, void *ra) {
    const char *bad =
        META_STATE(b->h->meta) == ST_FREED ? NULL : canary_damaged(b->p + b->n, b->end);
    if (likely(!bad) && likely(!lead_damaged(b->base, b->h, b->h->meta))) return;
    struct report r = {.who = who, .b = b};
    if (bad) {
        r.bug = "heap-buffer-overflow";
        r.addr = bad;
        r.where = "after";
        r.distance = (size_t)(bad - (b->p + b->n));
    } else if ((bad = lead_damaged(b->base, b->h, b->h->meta)) != NULL) {
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
    if (kind >= DBG_MALLOC && kind <= DBG_NEW_ARRAY &&
        (st == ST_LIVE || st == ST_FREED || st == ST_GONE)) {
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
    if (r && !page_of(r, p) && region_readable(r, p)) { /* (no block lies past open) */
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

/* The report of a freed block whose fill is damaged at bad (b: laid out). */
static __attribute__((noreturn, cold)) void fill_report(struct blk *b, const char *bad,
                                                        uint32_t free_id, const char *who, void *ra,
                                                        const char *note) {
    struct report r = {.addr = bad, .who = who, .b = b, .free_id = free_id, .note = note};
    if (bad < b->p + b->n) {
        r.bug = "heap-use-after-free";
        r.where = "inside";
        r.distance = (size_t)(bad - b->p);
    } else {
        r.bug = "heap-buffer-overflow";
        r.where = "after";
        r.distance = (size_t)(bad - (b->p + b->n));
    }
    r.now_id = stack_capture(ra, depth());
    report(&r);
}

/* A block leaves quarantine (or never enters it): verify its fill (from
 * the block to the end of its memory: retire filled its canary too),
 * unless its slot is closed, and release it. bytes: what the quarantine
 * counted (the engine block's usable size, or the slot's). */
static void release(void *pv, size_t bytes, uint32_t free_id, const char *who, void *ra) {
    char *p = pv;
    struct blk b;
    if (likely(!guard_owns(p))) {
        struct hdr *h = (struct hdr *)(void *)(p - HDR);
        uint64_t m = h->meta;
        char *base = p - ((m & OBJECT) ? OBJ_LEAD : (size_t)1 << META_ALIGN(m));
        const char *bad = free_fill_damaged(p, base + bytes);
        if (unlikely(bad != NULL)) {
            memset(&b, 0, sizeof b);
            b.p = p;
            b.h = h;
            blk_layout(&b, bytes);
            fill_report(&b, bad, free_id, who, ra,
                        "(written after it was freed; found as the block left quarantine)");
        }
        if (m & OBJECT) {
            /* a free of p from now on is a double free, until the object
             * is handed out again (the check word does not cover the state) */
            h->meta = (m & ~STATE_MASK) | (uint64_t)ST_GONE << 52;
            ma_free_object(base);
        } else {
            ma_free_slow(base, "free");
        }
        return;
    }
    memset(&b, 0, sizeof b);
    b.p = p;
    b.slot = guard_slot_of(p, &b.slot_size, &b.open);
    if (!b.slot) return;
    if (b.open) {
        b.under = p == b.slot && under_layout();
        b.h = slot_hdr(b.slot, b.slot_size, p, b.under);
        blk_layout(&b, bytes);
        const char *bad = free_fill_damaged(p, b.end);
        if (bad)
            fill_report(&b, bad, free_id, who, ra,
                        "(written after it was freed; found as the block left quarantine)");
    }
    guard_release(b.slot);
}

/*
 * At each allocation, the first 16 bytes of the block the thread freed
 * last (a use after free most often writes a freed structure's first
 * fields, and soon): a write there is reported then, with the stacks,
 * rather than when the block leaves quarantine. Blocks of closed slots
 * fault by themselves.
 */
static void newest_check(const char *who, void *ra) {
    struct quarantined q;
    if (!quarantine_newest(&q) || guard_owns(q.p)) return;
    const char *p = q.p;
    uint64_t w[2], f = 0x0101010101010101ull * FREE_FILL;
    memcpy(w, p, 16);
    if (likely((w[0] ^ f) == 0 && (w[1] ^ f) == 0)) return;
    struct blk b;
    memset(&b, 0, sizeof b);
    b.p = q.p;
    b.h = (struct hdr *)(void *)(b.p - HDR);
    blk_layout(&b, q.bytes);
    fill_report(&b, fill_damaged(p, p + 16), q.free_id, who, ra,
                "(written after it was freed; found at the thread's next allocation)");
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
/* MEMALLOC_SAMPLE with no check mode, in production: 125 a second, at
 * most 0.7% of the time on that VM */
#define CLOSE_BUDGET_SAMPLE 2
static int close_allowed(void) {
    static uint64_t window;
    static unsigned used;
    uint64_t w = os_now_ms() / CLOSE_WINDOW_MS;
    if (load_relaxed(&window) != w) {
        store_relaxed(&window, w);
        store_relaxed(&used, 0);
    }
    return add_relaxed(&used, 1) <= (opt_get(OPT_CHECK) ? CLOSE_BUDGET : CLOSE_BUDGET_SAMPLE);
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
    char *p = align > ALIGNMENT ? ma_aligned(align, n) : ma_malloc_slow(n);
    if (p && zero) memset(p, 0, n);
    /* an object may still hold the header of a checked block given back
     * (ST_GONE): clear it, or the next checked block there would take
     * this block's data for the free fill (alloc_block) */
    if (p && ready() && ma_block_usable(p) >= OBJ_LEAD)
        ((struct hdr *)(void *)(p + OBJ_LEAD - HDR))->meta = 0;
    return p;
}

/* Does the object about to hold a checked block at p still
 * hold the free fill, verified when a checked block there left
 * quarantine (release: ST_GONE)? Not if a check mode was ever turned off:
 * objects handed out meanwhile may hold program data under such a
 * header. */
static int still_filled(char *p) {
    const struct hdr *h = (const struct hdr *)(const void *)(p - HDR);
    return !load_relaxed(&ma_check_gap) && META_STATE(h->meta) == ST_GONE && (h->meta & OBJECT) &&
           hdr_valid(h, p);
}

static int log2_of(size_t a) {
    return 63 - __builtin_clzll(a);
}

/* dbg_alloc, for a caller that writes the block's first `written` bytes
 * at once (realloc's copy): those are not junk-filled. sample: a block of
 * level 2 or none (NULL), whatever the check mode (dbg_sample). */
static void *alloc_block(size_t n, size_t align, enum dbg_kind kind, int zero, size_t written,
                         int sample, void *ra) {
    if (!ready()) return sample ? NULL : plain_alloc(n, align, zero);
    unsigned level = sample ? 2 : (unsigned)opt_get(OPT_CHECK);
    if (stack_busy() || level == 0) return sample ? NULL : plain_alloc(n, align, zero);
    size_t a = align < ALIGNMENT ? ALIGNMENT : align;
    if (n > MAX_REQUEST - 2 * a - TAIL_MIN) {
        errno = ENOMEM;
        return NULL;
    }
    newest_check(kind == DBG_NEW         ? "operator new"
                 : kind == DBG_NEW_ARRAY ? "operator new[]"
                 : zero                  ? "calloc"
                 : written               ? "realloc"
                                         : "malloc",
                 ra);
    uint32_t id = stack_capture_fast(ra, depth());
    char *p = NULL, *end = NULL, *base = NULL;
    struct hdr *h = NULL;
    uint64_t mem_flag = 0; /* SLOT, OBJECT or neither */
    int filled = 0;        /* [p, end) holds the free fill (still_filled) */
    if (level >= 2) {
        size_t ps = os_page_size(), size;
        int under = under_layout();
        /* the block ends at the guard page, or as near as its alignment
         * lets it: an object of n bytes needs no more than the largest
         * power of two that divides n, but C code that sizes a struct as
         * offsetof(member) + length expects at least 8 (CPython does) */
        size_t na = (size_t)1 << __builtin_ctzll(n | ALIGNMENT);
        if (na < 8) na = 8;
        if (align > na) na = align; /* what the program asked for */
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
            mem_flag = SLOT;
        }
        if (!p && sample) return NULL;
    }
    if (!p && a == ALIGNMENT && n <= CLASS_MAX - OBJ_LEAD - TAIL_MIN) {
        size_t usable;
        base = ma_alloc_object(n + OBJ_LEAD + TAIL_MIN, &usable);
        if (base) {
            p = base + OBJ_LEAD;
            h = (struct hdr *)(void *)(p - HDR);
            end = base + usable;
            filled = still_filled(p);
            uint64_t lead[2] = {obj_key(base), canary_word((uintptr_t)base)};
            memcpy(base, lead, 16);
            mem_flag = OBJECT;
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
                    (uint64_t)log2_of(a) << 56 | mem_flag | (leaks ? ACCOUNTED : 0);
    h->meta = meta;
    h->alloc_id = id;
    h->check = check_word(p, meta, id);
    if (zero)
        memset(p, 0, n);
    else if (!filled && written < (n < FILL_MAX ? n : FILL_MAX))
        memset(p + written, ALLOC_FILL, (n < FILL_MAX ? n : FILL_MAX) - written);
    canary_fill(p + n, end);
    if (leaks) stack_account(id, (int64_t)n, 1);
    return p;
}

void *dbg_alloc(size_t n, size_t align, enum dbg_kind kind, int zero, void *ra) {
    return alloc_block(n, align, kind, zero, 0, 0, ra);
}

void *dbg_sample(size_t n, size_t align, enum dbg_kind kind, void *ra) {
    int e = errno;
    void *p = alloc_block(n, align, kind, 0, 0, 1, ra);
    errno = e; /* a sample that could not be had is no failure */
    return p;
}

void *dbg_calloc(size_t n, size_t size, void *ra) {
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return dbg_alloc(total, 0, DBG_MALLOC, 1, ra);
}

/* The checks of a block handed back to who, as a release of kind (0:
 * any) and, for a sized delete, of size bytes. */
static void check_release(struct blk *b, enum found f, unsigned kind, size_t size, const char *who,
                          void *ra) {
    if (f == DAMAGED) damaged(b, who, ra);
    if (f == INSIDE) inside_block(b, who, ra);
    if (f == CLOSED || META_STATE(b->h->meta) != ST_LIVE) double_free(b, who, ra);
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

/* Freed block p (bytes of memory, as the quarantine counts them) into
 * quarantine, and the blocks that it pushes out released; or released at
 * once if there is no quarantine. */
static void hold(char *p, size_t bytes, uint32_t free_id, const char *who, void *ra) {
    struct quarantined out[16];
    int n = (opt_get(OPT_CHECK) == 0 && opt_get(OPT_SAMPLE) == 0) ||
                    (opt_get(OPT_QUARANTINE) == 0 && opt_fixed(OPT_QUARANTINE))
                ? -1
                : quarantine_push(p, bytes, free_id, quarantine_limit(), out, 16);
    if (n < 0) {
        release(p, bytes, free_id, who, ra);
        return;
    }
    for (int i = 0; i < n; i++) release(out[i].p, out[i].bytes, out[i].free_id, who, ra);
    if (n == 16) evict(who, ra);
}

/* Mark the block of header h (n bytes, in use when read) freed, with one
 * compare-and-swap, and take it out of its stack's bytes not freed; 0 if
 * another thread freed it first. */
static int mark_freed(struct hdr *h, size_t n) {
    uint64_t m = h->meta;
    uint64_t freed = (m & ~STATE_MASK) | (uint64_t)ST_FREED << 52;
    if (!__atomic_compare_exchange_n(&h->meta, &m, freed, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return 0;
    if (m & ACCOUNTED) stack_account(h->alloc_id, -(int64_t)n, -1);
    return 1;
}

/* Free checked block b (verified) into quarantine. */
static void retire(struct blk *b, const char *who, void *ra) {
    if (!mark_freed(b->h, b->n)) double_free(b, who, ra); /* another thread freed it first */
    uint32_t free_id = stack_capture_fast(ra, depth());
    size_t bytes;
    /* the fill runs over the canary after the block too: a write past
     * its end while it is freed is found as the block leaves */
    if (b->slot) {
        bytes = b->slot_size;
        if (!close_allowed() || guard_close(b->slot) != 0) free_fill(b->p, b->end);
    } else {
        bytes = (size_t)(b->end - b->base);
        free_fill(b->p, b->end);
    }
    hold(b->p, bytes, free_id, who, ra);
}

/* free's common case, without the general path's bookkeeping: a checked
 * object in use, released as the call says (kind, size), its header and
 * canaries whole. 0 if it is anything else (every error included): the
 * general path looks again and says what. */
static int object_free_fast(void *pv, unsigned kind, size_t size, const char *who, void *ra) {
    char *p = pv, *base = p - OBJ_LEAD;
    if (((uintptr_t)p & (ALIGNMENT - 1)) || (uintptr_t)p <= OBJ_LEAD) return 0;
    size_t osize = ma_object_at(base);
    if (osize < OBJ_LEAD + TAIL_MIN) return 0;
    struct hdr *h = (struct hdr *)(void *)(p - HDR);
    uint64_t m = h->meta;
    size_t n = META_SIZE(m);
    if (!(m & OBJECT) || META_STATE(m) != ST_LIVE || (kind && META_KIND(m) != kind) ||
        (size && size != n) || n > osize - OBJ_LEAD || h->check != check_word(p, m, h->alloc_id))
        return 0;
    char *end = base + osize;
    if (lead_damaged(base, h, m) || canary_damaged(p + n, end)) return 0;
    if (!mark_freed(h, n)) return 0; /* the general path reports the double free */
    free_fill(p, end);
    hold(p, osize, stack_capture_fast(ra, depth()), who, ra);
    return 1;
}

void dbg_free(void *p, enum dbg_kind kind, size_t size, const char *who, void *ra) {
    if (!p || is_boot(p)) return;
    if (zero_owns(p)) { /* a block of size 0 from before the check mode */
        ma_free_slow(p, who);
        return;
    }
    if (likely(object_free_fast(p, kind, size, who, ra))) return;
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
    if (!p) return dbg_alloc(n, 0, DBG_MALLOC, 0, ra);
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
    void *q = alloc_block(n, 0, DBG_MALLOC, 0, old < n ? old : n, 0, ra);
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

/* The first damaged byte of checked block p (header h, valid) whose
 * memory is [base, end), or NULL. Blocks given back (ST_GONE) are the
 * engine's. */
static const char *block_damaged(const char *base, const char *end, const char *p,
                                 const struct hdr *h) {
    uint64_t m = h->meta;
    size_t n = META_SIZE(m);
    if (META_STATE(m) == ST_GONE || n > (size_t)(end - p)) return NULL;
    const char *bad = lead_damaged(base, h, m);
    if (bad) return bad;
    return META_STATE(m) == ST_FREED ? free_fill_damaged((char *)p, (char *)end)
                                     : canary_damaged(p + n, end);
}

const char *dbg_object_damaged(void *q, size_t size, const void **pp) {
    char *p = (char *)q + OBJ_LEAD;
    const struct hdr *h = (const struct hdr *)(void *)(p - HDR);
    if (size < OBJ_LEAD + TAIL_MIN || !hdr_valid(h, p) || !(h->meta & OBJECT)) return NULL;
    *pp = p;
    return block_damaged(q, (char *)q + size, p, h);
}

const char *dbg_block_damaged(void *q, size_t usable, const void **pp) {
    /* the header is at q + a - 16 for an alignment a the block holds */
    for (unsigned k = 4; k <= 30 && ((size_t)1 << k) < usable; k++) {
        char *p = (char *)q + ((size_t)1 << k);
        const struct hdr *h = (const struct hdr *)(void *)(p - HDR);
        if (!hdr_valid(h, p) || META_ALIGN(h->meta) != k || (h->meta & (OBJECT | SLOT))) continue;
        *pp = p;
        return block_damaged(q, (char *)q + usable, p, h);
    }
    return NULL;
}

void dbg_report_damaged(const void *p, const char *who) {
    struct blk b;
    void *ra = __builtin_return_address(0);
    enum found f = find_block(p, &b);
    if (f == DAMAGED) damaged(&b, who, ra);
    if (f == FOUND && META_STATE(b.h->meta) == ST_FREED) {
        const char *bad = free_fill_damaged(b.p, b.end);
        if (bad)
            fill_report(&b, bad, quarantine_free_stack(b.p), who, ra,
                        "(written after it was freed)");
    }
    if (f == FOUND) verify_canaries(&b, who, ra);
    bad_free(p, who, ra, "(a damaged block that could not be described)");
}

void dbg_exit(void) {
    if (!dbg_on() && !opt_get(OPT_SAMPLE)) return;
    struct quarantined out[16];
    unsigned n;
    while ((n = quarantine_drain(out, 16)) > 0)
        for (unsigned i = 0; i < n; i++)
            release(out[i].p, out[i].bytes, out[i].free_id, "exit", __builtin_return_address(0));
    if (opt_get(OPT_CHECK_LEAKS)) stack_report_leaks(2, 20);
}
