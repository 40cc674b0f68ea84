/* check_misuse KIND SIZE: one misuse of the heap, of one kind, on a block
 * of SIZE bytes; for the check modes (tests/integration/check_misuse.bats)
 * and the count of what each allocator catches (bench/misuse_count.sh).
 * "check_misuse --list" prints the kinds, one a line: the name, then
 * "sized" (run with every size) or "unsized" (SIZE is ignored: pass 0).
 *
 * Before the misuse the program prints, on one line, what it is about to
 * misuse: "block=0x<address> size=<n>", then "bad=0x<address>" (the
 * address handed to free or realloc, when it is not the block) or
 * "other=0x<address>" (a second block), as the kind has them. Right after
 * the misuse, if it is still running, it prints "went through" and exits
 * 0. A kind whose misuse is a request (impossible sizes, the secret of a
 * freed block) prints "went through" only when the allocator let it
 * through. Output is written with write(2): no stdio buffer on the heap.
 *
 * Built with -O0 -g: the blocks are allocated in alloc_site, freed in
 * free_site and reallocated in realloc_site, which are not inlined, so
 * that a report's stacks can be checked for their names. Exit status 2:
 * bad arguments; 3: the misuse could not be set up. */
#define _GNU_SOURCE
#include <alloca.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

static _Alignas(16) char global_buf[256];
static char source[2 * MIB + 4096]; /* what the memcpy kinds copy */

static void say(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof buf - 1) len = (int)sizeof buf - 1;
    for (int off = 0; off < len;) {
        ssize_t w = write(1, buf + off, (size_t)(len - off));
        if (w <= 0) break;
        off += (int)w;
    }
}

static void went_through(void) {
    say("went through\n");
}

/* ---- the sites the reports must name ---- */

__attribute__((noinline)) static char *alloc_site(size_t n) {
    return malloc(n);
}

__attribute__((noinline)) static void free_site(void *p) {
    free(p);
}

__attribute__((noinline)) static char *realloc_site(void *p, size_t n) {
    return realloc(p, n);
}

/* ---- the accesses (not inlined: a fault's stack names them) ----
 *
 * What is written must change the bytes it lands on, or a check that
 * compares them with what they held sees nothing (as the byte written
 * repeats the byte there by chance, once in 256 runs for a byte of a
 * random canary). So the kinds write 0 (a stray string terminator): the
 * check modes' canaries are never 0 and their free fill is not; except
 * where one byte lands on the byte before a block (a check word of the
 * check modes' header, which may hold any value): there they write its
 * complement, read first without touching it (differing_byte). */

/* Write count bytes of value c upwards from from. */
__attribute__((noinline)) static void write_up(char *from, size_t count, char c) {
    volatile char *v = from;
    for (size_t i = 0; i < count; i++) v[i] = c;
}

/* Write count bytes of value c downwards from from: from, from - 1, ... */
__attribute__((noinline)) static void write_down(char *from, size_t count, char c) {
    volatile char *v = from;
    for (size_t i = 0; i < count; i++) *(v - i) = c;
}

/* A value that differs from the byte at a if the program may read it,
 * else 0. Read through a pipe: write(2) fails with EFAULT on an
 * inaccessible page (a guard page), where a load would fault. */
static char differing_byte(const char *a) {
    int fd[2];
    char c, v = 0;
    if (pipe(fd) != 0) return 0;
    if (write(fd[1], a, 1) == 1 && read(fd[0], &c, 1) == 1) v = (char)~c;
    close(fd[0]);
    close(fd[1]);
    return v;
}

__attribute__((noinline)) static int read_byte(const char *a) {
    return *(const volatile char *)a;
}

/* Many other allocations and frees: 200 blocks freed, fewer bytes than
 * the check modes' quarantine holds at its smallest (1 MiB; it counts a
 * page a block at level 2), so that the block freed before is still in
 * quarantine after them. */
__attribute__((noinline)) static void churn(void) {
    for (int i = 0; i < 100; i++) {
        void *x = malloc(16 + (size_t)(i * 37) % 2000);
        void *y = malloc(100);
        free(x);
        free(y);
    }
}

static char *new_block(size_t n) {
    char *p = alloc_site(n);
    if (!p) {
        say("setup: malloc(%zu) failed\n", n);
        exit(3);
    }
    memset(p, 'b', n);
    return p;
}

static void show(const char *p, size_t n) {
    say("block=0x%lx size=%zu\n", (unsigned long)p, n);
}

/* An impossible request: NULL with ENOMEM is right, anything else went
 * through. */
static void impossible(void *p, int err) {
    if (p)
        say("got 0x%lx\n", (unsigned long)p);
    else if (err != ENOMEM)
        say("NULL with errno %d, not ENOMEM\n", err);
    if (p || err != ENOMEM) went_through();
}

/* ---- the kinds ---- */

/* with_lib: 0 direct writes, 1 memset, 2 memcpy (of zeros) */
static void overflow(char *p, size_t n, size_t by, int with_lib) {
    if (with_lib == 1)
        memset(p, 0, n + by);
    else if (with_lib == 2)
        memcpy(p, source, n + by);
    else
        write_up(p + n, by, 0);
    free_site(p);
}

static void underflow(char *p, size_t by, int with_lib) {
    char c = by == 1 ? differing_byte(p - 1) : 0;
    if (with_lib == 1)
        memset(p - by, c, by);
    else if (with_lib == 2)
        memcpy(p - by, source, by);
    else
        write_down(p - 1, by, c);
    free_site(p);
}

struct kind {
    const char *name;
    int sized;
};

static const struct kind kinds[] = {
    /* contiguous writes past the end or before the start, then free */
    {"overflow-1", 1},
    {"overflow-32", 1},
    {"overflow-1m", 1},
    {"overflow-memset-1", 1},
    {"overflow-memcpy-32", 1},
    {"overflow-memset-1m", 1},
    {"underflow-1", 1},
    {"underflow-32", 1},
    {"underflow-1m", 1},
    {"underflow-memset-1", 1},
    {"underflow-memcpy-32", 1},
    {"underflow-memset-1m", 1},
    /* reads one byte out of bounds, then free */
    {"overread-1", 1},
    {"underread-1", 1},
    /* uses after free */
    {"uaf-write", 1},             /* free, write p[0] */
    {"uaf-write-then-malloc", 1}, /* free, write p[0], malloc of the size */
    {"uaf-malloc-then-write", 1}, /* free, malloc of the size, write p[0] */
    {"uaf-memset", 1},            /* free, memset(p, 0, n) */
    {"uaf-read", 1},              /* free, read p[0] */
    {"uaf-read-reuse", 1},        /* free, malloc of the size, read p[0] */
    /* malloc(0): its byte 0 is not the program's */
    {"zero-write", 0},
    {"zero-read", 0},
    {"zero-write-after-free", 0},
    {"zero-read-after-free", 0},
    /* double frees */
    {"double-free", 1},             /* free, free */
    {"double-free-delayed", 1},     /* free, 200 other mallocs and frees, free */
    {"double-free-interleaved", 1}, /* free a, free b, free a */
    {"double-free-reuse", 1},       /* free, malloc of the size, free */
    /* frees of what is not a block */
    {"free-stack", 0},
    {"free-alloca", 0},
    {"free-global", 0},
    {"free-far", 0},
    {"free-near", 1},      /* p - 16 */
    {"free-unaligned", 1}, /* p + 1 */
    {"free-interior", 1},  /* p + 16 */
    /* realloc */
    {"realloc-freed", 1},        /* free, realloc(p, 2n) */
    {"realloc-stale-shrink", 1}, /* q = realloc(p, n/2), write p[0] */
    {"realloc-stale-grow", 1},   /* q = realloc(p, 2n), write p[0] */
    {"usable-size-freed", 1},    /* free, malloc_usable_size(p) */
    /* a freed block's secret seen through the next malloc of its size */
    {"secret-visible", 1},
    /* impossible requests: NULL with ENOMEM */
    {"malloc-max", 0},      /* malloc(SIZE_MAX) */
    {"malloc-ptrdiff", 0},  /* malloc(PTRDIFF_MAX + 1) */
    {"calloc-overflow", 0}, /* calloc(2^33, 2^32) */
    {"realloc-max", 0},     /* realloc(p, SIZE_MAX) */
    {"memalign-huge", 0},   /* posix_memalign(&p, 64, PTRDIFF_MAX + 1) */
};

static int run(const char *kind, size_t n) {
    char *p;
#define IS(s) (strcmp(kind, s) == 0)
    /* out of bounds */
    if (strncmp(kind, "overflow-", 9) == 0 || strncmp(kind, "underflow-", 10) == 0 ||
        IS("overread-1") || IS("underread-1")) {
        p = new_block(n);
        show(p, n);
        if (IS("overflow-1"))
            overflow(p, n, 1, 0);
        else if (IS("overflow-32"))
            overflow(p, n, 32, 0);
        else if (IS("overflow-1m"))
            overflow(p, n, MIB, 0);
        else if (IS("overflow-memset-1"))
            overflow(p, n, 1, 1);
        else if (IS("overflow-memcpy-32"))
            overflow(p, n, 32, 2);
        else if (IS("overflow-memset-1m"))
            overflow(p, n, MIB, 1);
        else if (IS("underflow-1"))
            underflow(p, 1, 0);
        else if (IS("underflow-32"))
            underflow(p, 32, 0);
        else if (IS("underflow-1m"))
            underflow(p, MIB, 0);
        else if (IS("underflow-memset-1"))
            underflow(p, 1, 1);
        else if (IS("underflow-memcpy-32"))
            underflow(p, 32, 2);
        else if (IS("underflow-memset-1m"))
            underflow(p, MIB, 1);
        else if (IS("overread-1")) {
            read_byte(p + n);
            free_site(p);
        } else if (IS("underread-1")) {
            read_byte(p - 1);
            free_site(p);
        } else {
            return 2;
        }
        went_through();
        return 0;
    }
    /* uses after free */
    if (strncmp(kind, "uaf-", 4) == 0) {
        p = new_block(n);
        show(p, n);
        free_site(p);
        if (IS("uaf-write")) {
            write_up(p, 1, 0);
        } else if (IS("uaf-write-then-malloc")) {
            write_up(p, 1, 0);
            char *q = alloc_site(n);
            say("other=0x%lx\n", (unsigned long)q);
        } else if (IS("uaf-malloc-then-write")) {
            char *q = alloc_site(n);
            say("other=0x%lx\n", (unsigned long)q);
            write_up(p, 1, 0);
        } else if (IS("uaf-memset")) {
            memset(p, 0, n);
        } else if (IS("uaf-read")) {
            read_byte(p);
        } else if (IS("uaf-read-reuse")) {
            char *q = alloc_site(n);
            say("other=0x%lx\n", (unsigned long)q);
            read_byte(p);
        } else {
            return 2;
        }
        went_through();
        return 0;
    }
    /* malloc(0) */
    if (strncmp(kind, "zero-", 5) == 0) {
        p = alloc_site(0);
        if (!p) return 3;
        show(p, 0);
        if (IS("zero-write")) {
            write_up(p, 1, 0);
            free_site(p);
        } else if (IS("zero-read")) {
            read_byte(p);
            free_site(p);
        } else if (IS("zero-write-after-free")) {
            free_site(p);
            write_up(p, 1, 0);
        } else if (IS("zero-read-after-free")) {
            free_site(p);
            read_byte(p);
        } else {
            return 2;
        }
        went_through();
        return 0;
    }
    /* double frees */
    if (strncmp(kind, "double-free", 11) == 0) {
        p = new_block(n);
        if (IS("double-free")) {
            show(p, n);
            free_site(p);
            free_site(p);
        } else if (IS("double-free-delayed")) {
            show(p, n);
            free_site(p);
            churn();
            free_site(p);
        } else if (IS("double-free-interleaved")) {
            char *b = new_block(n);
            show(p, n);
            say("other=0x%lx\n", (unsigned long)b);
            free_site(p);
            free_site(b);
            free_site(p);
        } else if (IS("double-free-reuse")) {
            show(p, n);
            free_site(p);
            char *q = alloc_site(n);
            say("other=0x%lx\n", (unsigned long)q);
            free_site(p);
        } else {
            return 2;
        }
        went_through();
        return 0;
    }
    /* frees of what is not a block */
    if (strncmp(kind, "free-", 5) == 0) {
        _Alignas(16) char stack_buf[64];
        memset(stack_buf, 0, sizeof stack_buf);
        char *keep = new_block(100); /* the heap is set up */
        char *bad;
        p = NULL;
        if (IS("free-stack")) {
            bad = stack_buf + 16;
        } else if (IS("free-alloca")) {
            bad = alloca(64);
            memset(bad, 0, 64);
        } else if (IS("free-global")) {
            bad = global_buf + 32;
        } else if (IS("free-far")) {
            bad = (char *)0x7ff000000000UL; /* far from every mapping */
        } else {
            p = new_block(n);
            if (IS("free-near"))
                bad = p - 16;
            else if (IS("free-unaligned"))
                bad = p + 1;
            else if (IS("free-interior"))
                bad = p + 16;
            else
                return 2;
            show(p, n);
        }
        say("bad=0x%lx\n", (unsigned long)bad);
        free_site(bad);
        went_through();
        free(keep);
        return 0;
    }
    /* realloc and malloc_usable_size */
    if (strncmp(kind, "realloc-stale-", 14) == 0) {
        size_t to = IS("realloc-stale-shrink") ? n / 2 : 2 * n;
        p = new_block(n);
        show(p, n);
        char *q = realloc_site(p, to);
        if (!q) return 3;
        say("other=0x%lx %s\n", (unsigned long)q, q == p ? "same" : "moved");
        write_up(p, 1, 0); /* a stale copy of the old pointer */
        went_through();
        return 0;
    }
    if (IS("realloc-freed")) {
        p = new_block(n);
        show(p, n);
        free_site(p);
        char *q = realloc_site(p, 2 * n);
        say("other=0x%lx\n", (unsigned long)q);
        went_through();
        return 0;
    }
    if (IS("usable-size-freed")) {
        p = new_block(n);
        show(p, n);
        free_site(p);
        size_t u = malloc_usable_size(p);
        say("usable=%zu\n", u);
        went_through();
        return 0;
    }
    if (IS("secret-visible")) {
        p = alloc_site(n);
        if (!p) return 3;
        memset(p, 0x3c, n);
        show(p, n);
        free_site(p);
        char *q = alloc_site(n);
        if (!q) return 3;
        size_t seen = 0;
        for (size_t i = 0; i < n; i++) seen += q[i] == 0x3c;
        say("other=0x%lx secret bytes seen: %zu of %zu\n", (unsigned long)q, seen, n);
        if (seen >= 8) went_through(); /* a word of it, at least */
        return 0;
    }
    /* impossible requests */
    errno = 0;
    if (IS("malloc-max")) {
        void *r = malloc(SIZE_MAX);
        impossible(r, errno);
    } else if (IS("malloc-ptrdiff")) {
        void *r = malloc((size_t)PTRDIFF_MAX + 1);
        impossible(r, errno);
    } else if (IS("calloc-overflow")) {
        void *r = calloc((size_t)1 << 33, (size_t)1 << 32);
        impossible(r, errno);
    } else if (IS("realloc-max")) {
        p = new_block(64);
        errno = 0;
        void *r = realloc(p, SIZE_MAX);
        impossible(r, errno);
    } else if (IS("memalign-huge")) {
        void *r = NULL;
        int rc = posix_memalign(&r, 64, (size_t)PTRDIFF_MAX + 1);
        impossible(rc == 0 ? r : NULL, rc);
    } else {
        return 2;
    }
    return 0;
#undef IS
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            say("%s %s\n", kinds[i].name, kinds[i].sized ? "sized" : "unsized");
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s KIND SIZE | --list\n", argv[0]);
        return 2;
    }
    char *end;
    size_t n = strtoull(argv[2], &end, 0);
    if (*end || argv[2][0] == '\0') {
        fprintf(stderr, "%s: bad size %s\n", argv[0], argv[2]);
        return 2;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i].name, argv[1]) == 0) {
            if (kinds[i].sized && n < 24) {
                fprintf(stderr, "%s: %s needs a size of 24 or more\n", argv[0], argv[1]);
                return 2;
            }
            int rc = run(argv[1], n);
            if (rc == 2) fprintf(stderr, "%s: kind %s not handled\n", argv[0], argv[1]);
            return rc;
        }
    fprintf(stderr, "%s: unknown kind %s (--list lists them)\n", argv[0], argv[1]);
    return 2;
}
