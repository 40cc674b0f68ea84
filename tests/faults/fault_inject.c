/*
 * fault_inject.c: the allocator when the system refuses memory (a build
 * with -DMEMALLOC_FAULT_INJECT=ON: src/os.h's os_fault_after).
 *
 * One test per mode: the default, check level 1 and check level 2
 * (memalloc_set_option(MEMALLOC_OPT_CHECK, ...)). Each runs a seeded
 * random workload of malloc, calloc, realloc (realloc(NULL, n) and
 * realloc(p, 0) too), posix_memalign, aligned_alloc and free through the
 * libc names (the shim is linked in), of sizes from 0 to 4 MiB on a table
 * of live blocks, with the mmap threshold left to the default for a third
 * of it, then at 256 KiB, then at 1 MiB, and sizes just under it that a
 * realloc takes across it; then, in the default mode, three 24 MiB heap
 * chunks: the heap's regions (a second one), mapped blocks grown with
 * mremap and their cache, purges of freed spans and of region tops, and
 * in the check modes the stack depot, the quarantine and level 2's guard
 * slots. The workload runs in a forked child, so that each run starts
 * from the same (uninitialised) heap:
 *  1. once without faults, to count the platform calls it makes (C);
 *  2. then with the Nth of them refused, for N = 1 .. C; where C is above
 *     EVERY_N_UP_TO (level 2 makes a call or two per block), for every N
 *     up to that, then about MORE_RUNS more spread evenly up to C (the
 *     time: a run takes 0.1 to 0.3 s, most of it page faults).
 * In every run:
 *  - a call that returns NULL (posix_memalign: ENOMEM) must have set
 *    errno to ENOMEM, and a failed realloc must leave its block as it was;
 *    a call that succeeds, and free, must leave errno as it was (README);
 *  - every block holds a pattern (the first and last 64 bytes and one
 *    byte every 32 KiB: filling every byte of MiB-sized blocks would fault
 *    in every page), verified before it is resized or freed; calloc's
 *    sampled bytes must be zero, alignments and usable sizes as asked;
 *  - at the end everything is freed (in the check modes the quarantine is
 *    emptied, as at exit), memalloc_trim(0) gives the memory back, then
 *    memalloc_check() must return 0, memalloc_get_stats' in_use (the
 *    usable bytes of the blocks out of the engine, exact with one thread)
 *    must be what it was before the workload, and the address space the
 *    process has mapped (VmSize) what it is at the end of the run without
 *    faults: no block and no mapping leaked.
 * The child exits 0; anything else (a failed expectation, a crash, an
 * abort, a hang: a child is killed after CHILD_SECONDS) fails the test
 * with a line naming the mode, N, the call refused, the operation during
 * which it was refused and the one that was running at the end.
 *
 * The clock is the tests' own (os_clock_set), moved 2 ms per operation:
 * purge passes and the mapping cache's ageing happen at the same points
 * of every run.
 *
 * FAULT_SEED=<n> runs another sequence. To look at one run under gdb,
 * FAULT_N=<N> HARNESS_ONLY=<test> runs that N only, in the process itself
 * (no fork; the address space is not compared), e.g. with a breakpoint in
 * src/os.c's fault_here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "debug.h"
#include "guard.h"
#include "harness.h"
#include "memalloc.h"
#include "os.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define NSLOTS 32 /* live blocks at most */
/* Operations per run, per mode: the check modes fill and verify every
 * byte of a block, and level 2 makes system calls for every block. */
static const uint64_t mode_ops[3] = {300, 250, 150};
#define EDGE          64         /* pattern bytes at each end of a block */
#define STRIDE        (32 * KiB) /* and one byte per STRIDE between */
#define EVERY_N_UP_TO 64         /* every N up to this, */
#define MORE_RUNS     40         /* then about this many more, evenly spread */
#define CHILD_SECONDS 30
#define SENTINEL      EDOM      /* errno before each call */
#define UNKNOWN       INT64_MIN /* vm_want of the run without faults, and in-process */

/* ---- what a child reports (a shared mapping, no allocation) ---- */

enum op_kind {
    OP_NONE,
    OP_MALLOC,
    OP_CALLOC,
    OP_REALLOC,
    OP_MEMALIGN,
    OP_ALIGNED,
    OP_FREE,
    OP_END
};
static const char *const op_names[] = {
    "-", "malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc", "free", "the end"};

struct op {
    uint64_t index; /* operation number (nops: after the random ones) */
    int kind;
    size_t size, old_size, align;
};

struct report {
    uint64_t calls;       /* the platform calls counted during the workload */
    int64_t vm_grew;      /* the address space it left mapped (bytes) */
    int64_t vm_want;      /* what it must be: vm_grew of the run without faults */
    uint64_t mapped;      /* mapped blocks made (total_mmapped_blocks) */
    uint64_t mapped_want; /* in the run without faults */
    struct op now;        /* the operation running */
    struct op hit;        /* the operation running when the call was refused */
    char refused[32];
    char why[400]; /* the first expectation that failed */
};
static struct report *shared;

static __attribute__((format(printf, 1, 2))) void child_fail(const char *fmt, ...);

/* ---- the workload ---- */

static uint64_t run_seed = 0x9e3779b97f4a7c15ull; /* FAULT_SEED: another sequence */
static uint64_t rng;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static size_t below(size_t n) {
    return n ? (size_t)(rnd() % n) : 0;
}

struct slot {
    unsigned char *p; /* NULL: empty */
    size_t n;
    unsigned seed;
};
static struct slot slots[NSLOTS];
static uint64_t clock_ms;

static int check_level; /* the run's */
static uint64_t nops;   /* its random operations */

/* The mmap threshold: the default (raised by the frees of mapped blocks)
 * for the first third of the operations, then 256 KiB, then 1 MiB; the
 * test's own figure (the default's dynamic value is the engine's). */
static size_t threshold;
static void set_threshold(size_t t) {
    threshold = t;
    memalloc_set_option(MEMALLOC_OPT_MMAP_THRESHOLD, t);
}

/* Sizes from 0 to 4 MiB (1 MiB in the check modes, which fill and verify
 * every byte), most of them small; some just under the mmap threshold,
 * which a realloc a little larger takes across it. */
static size_t random_size(void) {
    size_t r = below(100);
    if (r < 48) return below(513);
    if (r < 68) return 512 + below(16 * KiB);
    if (r < 82) return 16 * KiB + below(240 * KiB);
    if (r < 88) return threshold * 4 / 5 + below(threshold / 12);
    if (r < 96 || check_level) return 256 * KiB + below(768 * KiB);
    return MiB + below(3 * MiB);
}

/* The sampled bytes of an n-byte block: i, then the next one. */
static size_t sample_next(size_t i, size_t n) {
    size_t j = i + 1;
    if (j < EDGE || j + EDGE >= n) return j;
    size_t s = (j + STRIDE - 1) / STRIDE * STRIDE;
    return s < n - EDGE ? s : n - EDGE;
}

static void fill_block(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i = sample_next(i, n)) p[i] = pat(i, seed);
}

/* Verify the first `upto` bytes of the pattern of an n-byte block. */
static int block_ok(const unsigned char *p, size_t n, unsigned seed, size_t upto) {
    for (size_t i = 0; i < n && i < upto; i = sample_next(i, n))
        if (p[i] != pat(i, seed)) {
            child_fail("block %p of %zu bytes: byte %zu is %#x, not %#x", (const void *)p, n, i,
                       p[i], pat(i, seed));
            return 0;
        }
    return 1;
}

static int zero_ok(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i = sample_next(i, n))
        if (p[i]) {
            child_fail("calloc block %p of %zu bytes: byte %zu is %#x", (const void *)p, n, i,
                       p[i]);
            return 0;
        }
    return 1;
}

/* A block the call returned: aligned, as large as asked. Level 2 puts a
 * block against its guard page, aligned to what its size needs (the
 * largest power of two that divides it, up to 16), unless asked for more. */
static int new_ok(const unsigned char *p, size_t n, size_t align) {
    if (check_level == 2 && align == 16 && n) align = n & -n & 15 ? n & -n : 16;
    if (!aligned(p, align)) {
        child_fail("%p is not aligned to %zu", (const void *)p, align);
        return 0;
    }
    if (malloc_usable_size((void *)p) < n) {
        child_fail("%p: usable size %zu < %zu", (const void *)p, malloc_usable_size((void *)p), n);
        return 0;
    }
    return 1;
}

/* errno after a call: ENOMEM if it failed, untouched if it succeeded. */
static int errno_ok(int failed, int e) {
    if (failed ? e == ENOMEM : e == SENTINEL) return 1;
    child_fail("errno %d after a %s call (want %d)", e, failed ? "failed" : "successful",
               failed ? ENOMEM : SENTINEL);
    return 0;
}

static void begin(uint64_t index, int kind, size_t size, size_t old_size, size_t align) {
    shared->now = (struct op){index, kind, size, old_size, align};
}

/* After each call: note the operation during which the call was refused. */
static void after(void) {
    const char *r = os_fault_refused();
    if (r && !shared->refused[0]) {
        snprintf(shared->refused, sizeof shared->refused, "%s", r);
        shared->hit = shared->now;
    }
}

/* One operation on slot s; 0 if an expectation failed. */
static int step(uint64_t index, struct slot *s) {
    int e;
    os_clock_set(clock_ms += 2);
    if (!s->p) {
        size_t n = random_size(), align = 16;
        unsigned seed = (unsigned)rnd();
        unsigned char *p = NULL;
        static const int kinds[] = {OP_MALLOC, OP_MALLOC,   OP_MALLOC,   OP_MALLOC,  OP_CALLOC,
                                    OP_CALLOC, OP_MEMALIGN, OP_MEMALIGN, OP_ALIGNED, OP_ALIGNED};
        int kind = kinds[below(10)], rc = 0;
        if (kind == OP_MEMALIGN || kind == OP_ALIGNED) {
            align = below(8) ? (size_t)1 << (4 + below(9)) : (size_t)1 << (16 + below(6));
            if (n < 64 * KiB && align > 4 * KiB) n += 256 * KiB; /* big alignments, big blocks */
        }
        begin(index, kind, n, 0, align);
        errno = SENTINEL;
        switch (kind) {
        case OP_MALLOC:
            p = below(8) ? malloc(n) : realloc(NULL, n);
            break;
        case OP_CALLOC:
            p = calloc(1 + (n & 7), n / (1 + (n & 7)));
            n = (1 + (n & 7)) * (n / (1 + (n & 7)));
            break;
        case OP_MEMALIGN:
            rc = posix_memalign((void **)&p, align, n);
            break;
        default:
            p = aligned_alloc(align, n);
            break;
        }
        e = errno;
        after();
        if (kind == OP_MEMALIGN) {
            if (rc != 0 && rc != ENOMEM) {
                child_fail("posix_memalign returned %d", rc);
                return 0;
            }
            if (rc && p) {
                child_fail("posix_memalign failed and set its pointer");
                return 0;
            }
            if (!errno_ok(0, e)) return 0; /* it returns its error, errno kept */
            if (rc) return 1;
        } else {
            if (!errno_ok(p == NULL, e)) return 0;
            if (!p) return 1;
        }
        if (!new_ok(p, n, align)) return 0;
        if (kind == OP_CALLOC && !zero_ok(p, n)) return 0;
        fill_block(p, n, seed);
        *s = (struct slot){p, n, seed};
        return 1;
    }
    if (!block_ok(s->p, s->n, s->seed, s->n)) return 0;
    size_t r = below(100);
    if (r < 40) {
        begin(index, OP_FREE, 0, s->n, 16);
        errno = SENTINEL;
        if (r < 2) {
            void *q = realloc(s->p, 0); /* frees, returns NULL (glibc 2.36) */
            if (q) {
                child_fail("realloc(p, 0) returned %p", q);
                return 0;
            }
        } else {
            free(s->p);
        }
        e = errno;
        after();
        s->p = NULL;
        return errno_ok(0, e);
    }
    size_t n;
    if (r < 65)
        n = random_size();
    else if (r < 85)
        n = s->n + s->n / 8 + below(4 * KiB); /* a little larger: in place, or mremap */
    else
        n = s->n / 2 + below(s->n / 2 + 1);
    if (n == 0) n = 1;
    unsigned seed = (unsigned)rnd(); /* drawn either way: the same sequence follows */
    begin(index, OP_REALLOC, n, s->n, 16);
    errno = SENTINEL;
    unsigned char *q = realloc(s->p, n);
    e = errno;
    after();
    if (!errno_ok(q == NULL, e)) return 0;
    if (!q) return block_ok(s->p, s->n, s->seed, s->n); /* intact */
    if (!new_ok(q, n, 16) || !block_ok(q, s->n, s->seed, n)) return 0;
    s->seed = seed;
    fill_block(q, n, s->seed);
    s->p = q;
    s->n = n;
    return 1;
}

/* The bytes of address space the process has mapped (VmSize), read with
 * no allocation; 0 if unknown. */
static uint64_t vm_size(void) {
    char buf[64];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t len = read(fd, buf, sizeof buf);
    close(fd);
    uint64_t pages = 0;
    for (ssize_t i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; i++)
        pages = pages * 10 + (uint64_t)(buf[i] - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Three 24 MiB blocks with the mmap threshold at its highest (32 MiB):
 * heap chunks, so that the heap needs a second region (regions are 64
 * MiB). In the default mode only: the check modes would fill and verify
 * every byte of them. */
static int regions(void) {
    unsigned char *big[3];
    size_t n = 24 * MiB;
    set_threshold(32 * MiB);
    for (int i = 0; i < 3; i++) {
        os_clock_set(clock_ms += 2);
        begin(nops, OP_MALLOC, n, 0, 16);
        errno = SENTINEL;
        big[i] = malloc(n);
        int e = errno;
        after();
        if (!errno_ok(big[i] == NULL, e)) return 0;
        if (big[i] && !new_ok(big[i], n, 16)) return 0;
        if (big[i]) fill_block(big[i], n, (unsigned)i);
    }
    for (int i = 0; i < 3; i++) {
        if (!big[i]) continue;
        if (!block_ok(big[i], n, (unsigned)i, n)) return 0;
        begin(nops, OP_FREE, 0, n, 16);
        errno = SENTINEL;
        free(big[i]);
        int e = errno;
        after();
        if (!errno_ok(0, e)) return 0;
    }
    return 1;
}

/* The workload in this process, with the nth platform call refused (0:
 * none); 0 if an expectation failed. */
static int workload(int level, uint64_t n) {
    int64_t vm0 = (int64_t)vm_size();
    check_level = level;
    /* no background purge: its platform calls would come at times of
     * their own (the count of calls must be the same in every run), and
     * its thread's TLS vector, from malloc, would stay in use */
    if (memalloc_set_option(MEMALLOC_OPT_BACKGROUND, 0) != 0) {
        child_fail("memalloc_set_option(MEMALLOC_OPT_BACKGROUND, 0) failed");
        return 0;
    }
    if (level && memalloc_set_option(MEMALLOC_OPT_CHECK, (size_t)level) != 0) {
        child_fail("memalloc_set_option(MEMALLOC_OPT_CHECK, %d) failed", level);
        return 0;
    }
    struct memalloc_stats before, end;
    memalloc_get_stats(&before);
    rng = run_seed;
    memset(slots, 0, sizeof slots);
    uint64_t calls0 = os_fault_calls();
    os_fault_after(n);
    threshold = memalloc_get_option(MEMALLOC_OPT_MMAP_THRESHOLD);
    nops = mode_ops[level];
    for (uint64_t i = 0; i < nops; i++) {
        if (i == nops / 3) set_threshold(256 * KiB);
        if (i == nops * 2 / 3) set_threshold(MiB);
        if (!step(i, &slots[below(NSLOTS)])) return 0;
    }
    if (level == 0 && !regions()) return 0;
    begin(nops, OP_END, 0, 0, 0);
    for (int i = 0; i < NSLOTS; i++) {
        struct slot *s = &slots[i];
        if (!s->p) continue;
        if (!block_ok(s->p, s->n, s->seed, s->n)) return 0;
        errno = SENTINEL;
        free(s->p);
        int e = errno;
        after();
        s->p = NULL;
        if (!errno_ok(0, e)) return 0;
    }
    dbg_exit(); /* the quarantine's blocks back to the heap, as at exit */
    after();
    /* then memory back to the system (empty regions unmapped: the checker
     * reads every byte above a region's fresh mark, and a fault per page
     * in a region that was purged costs more than the workload) */
    memalloc_trim(0);
    after();
    int v = memalloc_check();
    after();
    if (v != 0) {
        child_fail("memalloc_check() found %d violation(s) after the workload", v);
        return 0;
    }
    memalloc_get_stats(&end);
    if (end.in_use != before.in_use) {
        child_fail("in_use %zu bytes after the workload, %zu before: %zd bytes leaked", end.in_use,
                   before.in_use, (ssize_t)(end.in_use - before.in_use));
        return 0;
    }
    shared->calls = os_fault_calls() - calls0;
    shared->vm_grew = (int64_t)vm_size() - vm0;
    shared->mapped = end.total_mmapped_blocks;
    int64_t want = shared->vm_want;
    /* The registry of mapped blocks is mapped at the first one (1024
     * slots) and kept: a level-2 run makes none without faults (the guard
     * slots take every block), but may once a refused call sends a block
     * to the heap, or a mapping of its own. */
    if (shared->mapped_want == 0 && shared->mapped > 0) want += 1024 * sizeof(void *);
    /* A refused call of level 2's set-up (its stretch of address space and
     * the map of it: 12 bytes a page) is not tried again for a while: the
     * run may end without them, and level 1 served its blocks. */
    int64_t guard_setup =
        (int64_t)(GUARD_POOL_BYTES + GUARD_POOL_BYTES / (size_t)sysconf(_SC_PAGESIZE) * 12);
    if (level == 2 && shared->vm_grew == want - guard_setup) want = shared->vm_grew;
    if (shared->vm_want != UNKNOWN && shared->vm_grew != want) {
        child_fail("%" PRId64 " bytes of address space more mapped at the end than without faults: "
                   "a mapping leaked",
                   shared->vm_grew - want);
        return 0;
    }
    return 1;
}

static __attribute__((format(printf, 1, 2))) void child_fail(const char *fmt, ...) {
    if (shared->why[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(shared->why, sizeof shared->why, fmt, ap);
    va_end(ap);
}

/* ---- the parent ---- */

static const char *const mode_names[] = {"default", "check level 1", "check level 2"};

static void describe(const struct op *o, char *buf, size_t cap) {
    if (o->kind == OP_NONE)
        snprintf(buf, cap, "before the first operation");
    else if (o->kind == OP_END)
        snprintf(buf, cap, "the final frees and checks");
    else if (o->kind == OP_FREE)
        snprintf(buf, cap, "op %" PRIu64 ": free of a %zu-byte block", o->index, o->old_size);
    else if (o->kind == OP_REALLOC)
        snprintf(buf, cap, "op %" PRIu64 ": realloc of a %zu-byte block to %zu", o->index,
                 o->old_size, o->size);
    else
        snprintf(buf, cap, "op %" PRIu64 ": %s(%zu bytes, align %zu)", o->index, op_names[o->kind],
                 o->size, o->align);
}

/* Run the workload in a child with the nth call refused; 1 if it passed.
 * what: on failure, the explanation. */
static int run_child(int mode, uint64_t n, const struct report *ref, char *what, size_t cap) {
    memset(shared, 0, sizeof *shared);
    shared->vm_want = ref ? ref->vm_grew : UNKNOWN;
    shared->mapped_want = ref ? ref->mapped : 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(what, cap, "fork: %s", strerror(errno));
        return 0;
    }
    if (pid == 0) {
        alarm(CHILD_SECONDS);
        _exit(workload(mode, n) ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(what, cap, "waitpid: %s", strerror(errno));
            return 0;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
    char end[64], hit[160] = "", now[160];
    if (WIFSIGNALED(status))
        snprintf(end, sizeof end, "killed by signal %d (%s)", WTERMSIG(status),
                 WTERMSIG(status) == SIGALRM ? "a hang" : sigabbrev_np(WTERMSIG(status)));
    else
        snprintf(end, sizeof end, "exit status %d", WEXITSTATUS(status));
    describe(&shared->now, now, sizeof now);
    if (shared->refused[0]) describe(&shared->hit, hit, sizeof hit);
    snprintf(what, cap, "%s, N=%" PRIu64 ": %s%s%s%s; refused: %s%s%s; last: %s", mode_names[mode],
             n, end, shared->why[0] ? " (" : "", shared->why, shared->why[0] ? ")" : "",
             shared->refused[0] ? shared->refused : "nothing", shared->refused[0] ? " during " : "",
             hit, now);
    return 0;
}

/* The N after n: every one up to EVERY_N_UP_TO, then every stride-th,
 * and the last one, calls. */
static uint64_t next_n(uint64_t n, uint64_t stride, uint64_t calls) {
    if (n < EVERY_N_UP_TO || n == calls) return n + 1;
    return n + stride < calls ? n + stride : calls;
}

static void sweep(int mode) {
    const char *one = getenv("FAULT_N");
    if (one && *one) { /* one run, in this process (for gdb) */
        uint64_t n = strtoull(one, NULL, 10);
        shared->vm_want = UNKNOWN;
        int ok = workload(mode, n);
        char hit[160] = "";
        if (shared->refused[0]) describe(&shared->hit, hit, sizeof hit);
        CHECKF(ok, "%s, N=%" PRIu64 ": %s; refused: %s %s", mode_names[mode], n, shared->why,
               shared->refused[0] ? shared->refused : "nothing", hit);
        return;
    }
    char what[1024];
    int ok = run_child(mode, 0, NULL, what, sizeof what);
    CHECKF(ok, "without faults: %s", what);
    if (!ok) return;
    struct report ref = *shared;
    uint64_t calls = ref.calls;
    REQUIRE(calls > 0);
    unsigned runs = 0, failed = 0, refusals = 0;
    /* which calls were refused over the runs */
    struct {
        char name[32];
        unsigned count;
    } seen[8];
    unsigned nseen = 0;
    double t0 = harness_now();
    uint64_t stride =
        calls > EVERY_N_UP_TO ? (calls - EVERY_N_UP_TO + MORE_RUNS - 1) / MORE_RUNS : 1;
    for (uint64_t n = 1; n <= calls; n = next_n(n, stride, calls)) {
        runs++;
        ok = run_child(mode, n, &ref, what, sizeof what);
        if (!ok) failed++;
        CHECKF(ok, "%s", what);
        if (!shared->refused[0]) continue;
        refusals++;
        unsigned i = 0;
        while (i < nseen && strcmp(seen[i].name, shared->refused) != 0) i++;
        if (i == nseen && nseen < 8) {
            snprintf(seen[nseen].name, sizeof seen[nseen].name, "%s", shared->refused);
            seen[nseen++].count = 0;
        }
        if (i < nseen) seen[i].count++;
    }
    char hist[256] = "";
    for (unsigned i = 0, len = 0; i < nseen && len < sizeof hist; i++)
        len += (unsigned)snprintf(hist + len, sizeof hist - len, "%s%s %u", i ? ", " : "",
                                  seen[i].name, seen[i].count);
    fprintf(stderr,
            "    %s: %" PRIu64 " platform calls without faults; %u runs (%u refused a call: %s), "
            "%u failed, %.1f s\n",
            mode_names[mode], calls, runs, refusals, hist, failed, harness_now() - t0);
}

TEST(faults_default) {
    sweep(0);
}
TEST(faults_check1) {
    sweep(1);
}
TEST(faults_check2) {
    sweep(2);
}

int main(void) {
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    const char *s = getenv("FAULT_SEED");
    if (s && *s) run_seed = strtoull(s, NULL, 0) | 1; /* xorshift: never 0 */
    clock_ms = (uint64_t)1 << 20;
    os_clock_set(clock_ms); /* before the first block: every timestamp on this clock */
    RUN(faults_default);
    RUN(faults_check1);
    RUN(faults_check2);
    return harness_finish();
}
