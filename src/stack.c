/*
 * stack.c: call stacks, their depot, and how they are printed (see
 * stack.h).
 *
 * The depot is one mapping, reserved once and used as it fills: a table
 * of buckets (the id of the first record of each chain), then the records
 * themselves, never freed. Lookups take no lock (a record is published
 * with a release store of its id and never changes after, but for its
 * counters); inserts take the depot's lock.
 *
 * libunwind is not linked: its library defines the whole _Unwind_* ABI,
 * which would then be in every process's global scope and could take
 * over the exception handling of C++ code the program loads later. When
 * MEMALLOC_CHECK asks for a check mode and MEMALLOC_CHECK_STACK for more
 * than one frame, the library's constructor opens it with RTLD_LOCAL
 * (outside any allocation: dlopen allocates) and takes unw_backtrace.
 */
#define _GNU_SOURCE
#include "stack.h"

#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>

#include "msg.h"
#include "options.h"
#include "os.h"

#define DEPOT_BYTES   ((size_t)1 << 30)
#define DEPOT_BUCKETS ((size_t)1 << 18)
#define RECORDS_START (DEPOT_BUCKETS * sizeof(uint32_t))

struct record {
    uint32_t next; /* the next record of the bucket's chain; 0: none */
    uint32_t hash;
    uint32_t depth;
    uint32_t pad;
    int64_t bytes, blocks; /* allocated here and not freed (relaxed atomics) */
    void *frames[];
};

static char *depot;       /* the buckets, then the records; NULL until the first stack */
static size_t depot_used; /* offset of the first byte after the records */
static pthread_mutex_t depot_mutex = PTHREAD_MUTEX_INITIALIZER;

static __thread int busy __attribute__((tls_model("initial-exec")));

typedef int (*unw_backtrace_fn)(void **, int);
static unw_backtrace_fn unwind;
/* glibc's backtrace (libgcc's unwinder), for stack_capture_light: set up
 * with libunwind when a trace asks for stacks */
static unw_backtrace_fn unwind_light;

/* Is libunwind wanted: a check mode with MEMALLOC_CHECK_STACK above 1, or
 * a trace (MEMALLOC_TRACE, whose sampled allocations have whole stacks)? */
static int unwinder_wanted(void) {
    const char *check = os_getenv("MEMALLOC_CHECK"), *depth = os_getenv("MEMALLOC_CHECK_STACK");
    const char *trace = os_getenv("MEMALLOC_TRACE");
    if (check && *check && *check != '0')
        return depth && depth[0] >= '0' && depth[0] <= '9' &&
               !(depth[0] <= '1' && depth[1] == '\0');
    return trace && *trace;
}

__attribute__((constructor)) static void stack_open_unwinder(void) {
    if (!unwinder_wanted()) return;
    busy = 1; /* the loader's blocks: served plainly, not the program's leaks */
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (h) unwind = (unw_backtrace_fn)dlsym(h, "unw_backtrace");
    const char *trace = os_getenv("MEMALLOC_TRACE");
    if (trace && *trace) {
        void *frames[4];
        backtrace(frames, 4); /* its first call loads libgcc's unwinder: now, not in a malloc */
        unwind_light = backtrace;
    }
    busy = 0;
    if (!unwind) {
        struct msg m = {.len = 0};
        msg_str(&m, "memalloc: libunwind.so.8 not found (Debian: libunwind8); "
                    "recording one frame per call");
        msg_emit(&m);
    }
}

static struct record *record_of(uint32_t id) {
    return (struct record *)(void *)(depot + (size_t)id * 8);
}

static uint32_t hash_frames(void *const *f, unsigned n) {
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)f[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (uint32_t)h;
}

static int same(const struct record *r, uint32_t hash, void *const *f, unsigned n) {
    if (r->hash != hash || r->depth != n) return 0;
    for (unsigned i = 0; i < n; i++)
        if (r->frames[i] != f[i]) return 0;
    return 1;
}

static uint32_t find(uint32_t head, uint32_t hash, void *const *f, unsigned n) {
    for (uint32_t id = head; id; id = record_of(id)->next)
        if (same(record_of(id), hash, f, n)) return id;
    return 0;
}

static uint32_t intern(void *const *f, unsigned n) {
    uint32_t hash = hash_frames(f, n);
    char *d = load_acquire(&depot);
    uint32_t *bucket = d ? (uint32_t *)(void *)d + (hash & (DEPOT_BUCKETS - 1)) : NULL;
    if (bucket) {
        uint32_t id = find(load_acquire(bucket), hash, f, n);
        if (id) return id;
    }
    pthread_mutex_lock(&depot_mutex);
    uint32_t id = 0;
    if (!depot) {
        char *m = os_map(DEPOT_BYTES);
        if (m) {
            depot_used = RECORDS_START;
            store_release(&depot, m);
        }
    }
    if (depot) {
        bucket = (uint32_t *)(void *)depot + (hash & (DEPOT_BUCKETS - 1));
        id = find(*bucket, hash, f, n);
        size_t size = sizeof(struct record) + n * sizeof(void *);
        if (!id && depot_used + size <= DEPOT_BYTES) {
            struct record *r = (struct record *)(void *)(depot + depot_used);
            id = (uint32_t)(depot_used / 8);
            depot_used += size;
            r->next = *bucket;
            r->hash = hash;
            r->depth = n;
            for (unsigned i = 0; i < n; i++) r->frames[i] = f[i];
            store_release(bucket, id);
        }
    }
    pthread_mutex_unlock(&depot_mutex);
    return id;
}

__thread struct stack_recent stack_recent[STACK_RECENT] __attribute__((tls_model("initial-exec")));

static uint32_t one_frame(void *ra) {
    struct stack_recent *e = stack_recent_of(ra);
    if (likely(e->ra == ra && e->id)) return e->id;
    uint32_t id = intern(&ra, 1);
    e->ra = ra;
    e->id = id;
    return id;
}

static __attribute__((noinline)) uint32_t unwound(void *ra, unsigned depth, unw_backtrace_fn fn) {
    void *f[STACK_DEPTH_MAX + 16];
    unsigned n = 1;
    f[0] = ra;
    busy = 1;
    int got = fn(f, (int)(depth + 16));
    busy = 0;
    int i = 0;
    while (i < got && f[i] != ra) i++;
    if (i < got) {
        n = (unsigned)(got - i) < depth ? (unsigned)(got - i) : depth;
        for (unsigned j = 0; j < n; j++) f[j] = f[i + j];
    } else {
        f[0] = ra;
    }
    return intern(f, n);
}

uint32_t stack_capture(void *ra, unsigned depth) {
    unw_backtrace_fn fn = unwind;
    if (depth <= 1 || !fn || busy) return one_frame(ra);
    return unwound(ra, depth, fn);
}

uint32_t stack_capture_light(void *ra, unsigned depth) {
    unw_backtrace_fn fn = unwind_light ? unwind_light : unwind;
    if (depth <= 1 || !fn || busy) return one_frame(ra);
    return unwound(ra, depth, fn);
}

unsigned stack_frames(uint32_t id, void *const **frames) {
    if (!id || !load_acquire(&depot)) return 0;
    const struct record *r = record_of(id);
    *frames = r->frames;
    return r->depth;
}

int stack_busy(void) {
    return busy;
}

void stack_account(uint32_t id, int64_t bytes, int64_t count) {
    if (!id) return;
    struct record *r = record_of(id);
    add_relaxed(&r->bytes, bytes);
    add_relaxed(&r->blocks, count);
}

/* ---- printing ---- */

/* The name of the function of the module mapped at path that holds
 * address off (a link-time address: the run-time one minus the load
 * bias), from its symbol table, else its dynamic symbols; into out. */
static int elf_function(const char *path, uintptr_t off, char *out, size_t cap) {
    size_t size = 0;
    const unsigned char *f = os_map_file(path, &size);
    if (!f) return 0;
    int found = 0;
    const ElfW(Ehdr) *eh = (const void *)f;
    if (size < sizeof *eh || eh->e_ident[EI_MAG0] != ELFMAG0 || eh->e_ident[EI_MAG1] != ELFMAG1 ||
        eh->e_ident[EI_MAG2] != ELFMAG2 || eh->e_ident[EI_MAG3] != ELFMAG3 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff > size || eh->e_shnum > (size - eh->e_shoff) / sizeof(ElfW(Shdr)))
        goto out;
    const ElfW(Shdr) *sh = (const void *)(f + eh->e_shoff);
    for (int pass = 0; pass < 2 && !found; pass++) {
        unsigned type = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
        for (unsigned i = 0; i < eh->e_shnum && !found; i++) {
            if (sh[i].sh_type != type || sh[i].sh_link >= eh->e_shnum) continue;
            const ElfW(Shdr) *st = &sh[sh[i].sh_link];
            if (sh[i].sh_offset > size || sh[i].sh_size > size - sh[i].sh_offset ||
                st->sh_offset > size || st->sh_size > size - st->sh_offset)
                continue;
            const ElfW(Sym) *sym = (const void *)(f + sh[i].sh_offset);
            size_t count = sh[i].sh_size / sizeof *sym;
            for (size_t k = 0; k < count; k++) {
                if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || sym[k].st_value == 0) continue;
                if (off < sym[k].st_value || off - sym[k].st_value >= sym[k].st_size) continue;
                if (sym[k].st_name >= st->sh_size) continue;
                const char *name = (const char *)f + st->sh_offset + sym[k].st_name;
                size_t j = 0;
                while (j + 1 < cap && sym[k].st_name + j < st->sh_size && name[j]) {
                    out[j] = name[j];
                    j++;
                }
                out[j] = '\0';
                found = j > 0;
                break;
            }
        }
    }
out:
    os_unmap((void *)f, size);
    return found;
}

/* The path of the main program (dladdr gives its argv[0]). */
static const char *self_path(void) {
    static char path[512];
    if (!path[0]) {
        long n = os_readlink("/proc/self/exe", path, sizeof path - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    return path;
}

static void print_frame(int fd, unsigned i, void *pc) {
    struct msg m = {.len = 0};
    msg_str(&m, "    #");
    msg_dec(&m, i);
    msg_str(&m, " ");
    msg_hex(&m, (uintptr_t)pc);
    Dl_info info;
    struct link_map *lm = NULL;
    if (dladdr1(pc, &info, (void **)&lm, RTLD_DL_LINKMAP) && lm) {
        const char *path = lm->l_name && lm->l_name[0] ? lm->l_name : self_path();
        char name[160];
        /* a return address: the call is the byte before it (a call
         * that ends a function returns one past its last byte) */
        uintptr_t off = (uintptr_t)pc - lm->l_addr - 1;
        if (elf_function(path, off, name, sizeof name)) {
            msg_str(&m, " in ");
            msg_str(&m, name);
        }
        msg_str(&m, " (");
        msg_str(&m, path);
        msg_str(&m, "+");
        msg_hex(&m, (uintptr_t)pc - (uintptr_t)info.dli_fbase);
        msg_str(&m, ")");
    }
    msg_write(&m, fd);
}

void stack_print(int fd, uint32_t id) {
    if (!id || !load_acquire(&depot)) {
        struct msg m = {.len = 0};
        msg_str(&m, "    (no stack recorded)");
        msg_write(&m, fd);
        return;
    }
    const struct record *r = record_of(id);
    for (unsigned i = 0; i < r->depth; i++) print_frame(fd, i, r->frames[i]);
}

size_t stack_report_leaks(int fd, unsigned max) {
    enum { TOP = 32 };
    uint32_t top[TOP];
    unsigned ntop = 0;
    if (max > TOP) max = TOP;
    uint64_t bytes = 0, blocks = 0, stacks = 0;
    char *d = load_acquire(&depot);
    if (!d) return 0;
    pthread_mutex_lock(&depot_mutex);
    for (size_t off = RECORDS_START; off < depot_used;) {
        const struct record *r = (const void *)(d + off);
        uint32_t id = (uint32_t)(off / 8);
        off += sizeof *r + r->depth * sizeof(void *);
        int64_t b = load_relaxed(&r->bytes), c = load_relaxed(&r->blocks);
        if (c <= 0) continue;
        bytes += (uint64_t)b;
        blocks += (uint64_t)c;
        stacks++;
        /* keep the max largest, in order */
        unsigned pos = ntop;
        while (pos > 0 && load_relaxed(&record_of(top[pos - 1])->bytes) < b) pos--;
        if (pos >= max) continue;
        if (ntop < max) ntop++;
        for (unsigned j = ntop - 1; j > pos; j--) top[j] = top[j - 1];
        top[pos] = id;
    }
    pthread_mutex_unlock(&depot_mutex);
    if (!blocks) return 0;
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: LEAKS: ");
    msg_dec(&m, bytes);
    msg_str(&m, " byte(s) in ");
    msg_dec(&m, blocks);
    msg_str(&m, " block(s) not freed at exit, from ");
    msg_dec(&m, stacks);
    msg_str(&m, " call stack(s)");
    if (stacks > ntop) {
        msg_str(&m, "; the ");
        msg_dec(&m, ntop);
        msg_str(&m, " largest:");
    }
    msg_write(&m, fd);
    for (unsigned i = 0; i < ntop; i++) {
        const struct record *r = record_of(top[i]);
        m.len = 0;
        msg_str(&m, "\nLeak of ");
        msg_dec(&m, (uint64_t)load_relaxed(&r->bytes));
        msg_str(&m, " byte(s) in ");
        msg_dec(&m, (uint64_t)load_relaxed(&r->blocks));
        msg_str(&m, " block(s) allocated from:");
        msg_write(&m, fd);
        stack_print(fd, top[i]);
    }
    m.len = 0;
    msg_str(&m, "\nSUMMARY: memalloc: ");
    msg_dec(&m, bytes);
    msg_str(&m, " byte(s) leaked in ");
    msg_dec(&m, blocks);
    msg_str(&m, " allocation(s).");
    msg_write(&m, fd);
    return bytes;
}

void stack_lock(void) {
    pthread_mutex_lock(&depot_mutex);
}
void stack_unlock(void) {
    pthread_mutex_unlock(&depot_mutex);
}
void stack_fork_child(void) {
    pthread_mutex_init(&depot_mutex, NULL);
}
