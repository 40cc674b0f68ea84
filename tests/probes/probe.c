/*
 * probe.c: run a list of commands against the allocator in this process
 * and print what each observes, one line each, on stdout. Meant to run
 * under LD_PRELOAD=libmemalloc.so (the integration tests, bats, compare the
 * lines with what README promises); it runs against glibc too, where the
 * commands that need memalloc's own API print "memalloc: absent" and the
 * probe exits 2. The engine's functions are looked up with dlsym: the
 * program is not linked with memalloc (memalloc.h gives only the types).
 *
 *   probe COMMAND [ARGS] [COMMAND [ARGS]]...
 *
 *   mapped SIZE           malloc(SIZE): "mapped SIZE: yes" if mallinfo2().hblks
 *                         grew (a mapping of its own), else "... no"; then free
 *   calloc-mapped SIZE    the same with calloc(1, SIZE)
 *   grown SIZE            p = malloc(SIZE / 2), q = malloc(SIZE / 2), then
 *                         realloc(p, SIZE), which cannot grow p where it is
 *                         if q is its neighbour: "grown SIZE: yes"
 *                         if mallinfo2().hblks grew at the realloc, else
 *                         "... no"; then both freed
 *   hold SIZE             malloc(SIZE), kept to the end
 *   mallopt NAME VALUE    mallopt(M_<NAME>, VALUE), NAME one of mmap, trim:
 *                         "mallopt NAME VALUE: RC"
 *   option NAME           memalloc_get_option: "option NAME: VALUE", NAME one of
 *                         mmap, trim, stats, tcache, purge, hugepage, background
 *   touch-free SIZE       malloc(SIZE), write every byte, free; then
 *                         "resident SIZE: KIB" (KiB of [p, p + SIZE) resident)
 *   hugepage SIZE         malloc(SIZE): "hugepage SIZE: yes" if its mapping has
 *                         "hg" in its VmFlags (/proc/self/smaps, MADV_HUGEPAGE)
 *   calloc-hugepage SIZE  the same with calloc(1, SIZE)
 *   tcache                p = malloc(32), free(p): "thread_cached: N" (from
 *                         memalloc_get_stats); then q = malloc(40) (a different
 *                         class, the same chunk size): "reused: yes" if q == p
 *   trim                  "malloc_trim: RC" (malloc_trim(0))
 *   stats-vs-malloc_stats memalloc_get_stats, then at once malloc_stats() (its
 *                         line goes to stderr); then the figures read first, as
 *                         "stats: allocs=N frees=N ..." in malloc_stats' order
 *   build-free N SIZE     malloc N blocks of SIZE, write each, then free them all
 *   rss                   "rss: KIB" (VmRSS, /proc/self/status)
 *   threads               "threads: N" (the process's threads, /proc/self/status)
 *   exit | _exit          print "bye" (write(2)) and leave by exit(0) or _exit(0)
 *   sleep MS              sleep MS milliseconds
 *
 * Sizes take a k, m or g suffix (powers of 1024). A command that cannot do
 * its work prints "error: ..." and the probe exits 3.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "memalloc.h"

static void (*get_stats)(struct memalloc_stats *);
static size_t (*get_option)(enum memalloc_option);

static _Noreturn void die(const char *what, const char *arg) {
    printf("error: %s %s\n", what, arg ? arg : "");
    fflush(stdout);
    exit(3);
}

static _Noreturn void absent(void) {
    printf("memalloc: absent\n");
    fflush(stdout);
    exit(2);
}

static size_t parse_size(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) die("not a size:", s);
    switch (*end) {
    case 'k':
        v <<= 10;
        end++;
        break;
    case 'm':
        v <<= 20;
        end++;
        break;
    case 'g':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end) die("not a size:", s);
    return (size_t)v;
}

/* Hide a pointer from the compiler: a block written and freed is not dead. */
static void *hide(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static int grew_mapped(size_t hblks_before) {
    return mallinfo2().hblks > hblks_before;
}

/* KiB of [p, p + n) resident; pages that are not mapped any more count as
 * not resident (glibc gives trimmed heap tops back with sbrk). */
static size_t resident_kib(const void *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), count = 0;
    uintptr_t a = (uintptr_t)p & ~(page - 1), end = (uintptr_t)p + n;
    for (; a < end; a += page) {
        unsigned char v = 0;
        if (mincore((void *)a, page, &v) == 0)
            count += v & 1;
        else if (errno != ENOMEM)
            die("mincore failed", strerror(errno));
    }
    return count * page / 1024;
}

/* 1 if the mapping holding p has "hg" among its VmFlags. */
static int has_hg(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) die("cannot read", "/proc/self/smaps");
    char line[512];
    int inside = 0, hg = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char c;
        if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            hg = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    if (hg < 0) die("no mapping found in /proc/self/smaps for", "the block");
    return hg;
}

static int option_of(const char *name, enum memalloc_option *o) {
    static const struct {
        const char *name;
        enum memalloc_option opt;
    } names[] = {
        {"mmap", MEMALLOC_OPT_MMAP_THRESHOLD},   {"trim", MEMALLOC_OPT_TRIM_THRESHOLD},
        {"stats", MEMALLOC_OPT_STATS},           {"tcache", MEMALLOC_OPT_TCACHE},
        {"purge", MEMALLOC_OPT_PURGE_DELAY},     {"hugepage", MEMALLOC_OPT_HUGEPAGE_THRESHOLD},
        {"background", MEMALLOC_OPT_BACKGROUND},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *o = names[i].opt;
            return 0;
        }
    }
    return -1;
}

/* The value of the line of /proc/self/FILE that starts with key, or -1. */
static long proc_value(const char *file, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read", path);
    long v = -1;
    size_t klen = strlen(key);
    while (v < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) v = strtol(line + klen, NULL, 10);
    fclose(f);
    return v;
}

static void say_bye(void) {
    static const char bye[] = "bye\n";
    fflush(stdout);
    if (write(1, bye, sizeof bye - 1) < 0) exit(3);
}

int main(int argc, char **argv) {
    get_stats = (void (*)(struct memalloc_stats *))dlsym(RTLD_DEFAULT, "memalloc_get_stats");
    get_option = (size_t(*)(enum memalloc_option))dlsym(RTLD_DEFAULT, "memalloc_get_option");
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *cmd = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG                                                                                   \
    do {                                                                                           \
        if (!arg) die("missing argument to", cmd);                                                 \
        i++;                                                                                       \
    } while (0)
        if (strcmp(cmd, "mapped") == 0 || strcmp(cmd, "calloc-mapped") == 0) {
            NEED_ARG;
            size_t n = parse_size(arg), before = mallinfo2().hblks;
            char *p = cmd[0] == 'c' ? calloc(1, n) : malloc(n);
            if (!p) die("allocation failed:", arg);
            int mapped = grew_mapped(before);
            free(hide(p));
            printf("%s %s: %s\n", cmd, arg, mapped ? "yes" : "no");
        } else if (strcmp(cmd, "grown") == 0) {
            NEED_ARG;
            size_t n = parse_size(arg);
            char *p = malloc(n / 2), *q = malloc(n / 2);
            if (!p || !q) die("allocation failed:", arg);
            memset(p, 1, n / 2);
            size_t before = mallinfo2().hblks;
            char *r = realloc(p, n);
            if (!r) die("realloc failed:", arg);
            int mapped = grew_mapped(before);
            if (r[0] != 1 || r[n / 2 - 1] != 1) die("realloc lost the bytes of", arg);
            free(hide(r));
            free(hide(q));
            printf("%s %s: %s\n", cmd, arg, mapped ? "yes" : "no");
        } else if (strcmp(cmd, "hold") == 0) {
            NEED_ARG;
            if (!hide(malloc(parse_size(arg)))) die("allocation failed:", arg);
        } else if (strcmp(cmd, "mallopt") == 0) {
            NEED_ARG;
            const char *value = i + 1 < argc ? argv[++i] : NULL;
            if (!value) die("missing value to mallopt", arg);
            int param = strcmp(arg, "mmap") == 0   ? M_MMAP_THRESHOLD
                        : strcmp(arg, "trim") == 0 ? M_TRIM_THRESHOLD
                                                   : (die("unknown mallopt parameter", arg), 0);
            int rc = mallopt(param, (int)parse_size(value));
            printf("mallopt %s %s: %d\n", arg, value, rc);
        } else if (strcmp(cmd, "option") == 0) {
            NEED_ARG;
            enum memalloc_option o;
            if (option_of(arg, &o) != 0) die("unknown option", arg);
            if (!get_option) absent();
            printf("option %s: %zu\n", arg, get_option(o));
        } else if (strcmp(cmd, "touch-free") == 0) {
            NEED_ARG;
            size_t n = parse_size(arg);
            char *p = malloc(n);
            if (!p) die("allocation failed:", arg);
            memset(p, 0x5a, n);
            free(hide(p));
            printf("resident %s: %zu\n", arg, resident_kib(p, n));
        } else if (strcmp(cmd, "hugepage") == 0 || strcmp(cmd, "calloc-hugepage") == 0) {
            NEED_ARG;
            size_t n = parse_size(arg);
            char *p = cmd[0] == 'c' ? calloc(1, n) : malloc(n);
            if (!p) die("allocation failed:", arg);
            printf("%s %s: %s\n", cmd, arg, has_hg(p) ? "yes" : "no");
            free(hide(p));
        } else if (strcmp(cmd, "tcache") == 0) {
            if (!get_stats) absent();
            char *p = malloc(32);
            if (!p) die("allocation failed:", "32");
            free(hide(p));
            struct memalloc_stats s;
            get_stats(&s);
            char *q = malloc(40);
            if (!q) die("allocation failed:", "40");
            printf("thread_cached: %zu\nreused: %s\n", s.thread_cached, q == p ? "yes" : "no");
            free(q);
        } else if (strcmp(cmd, "trim") == 0) {
            printf("malloc_trim: %d\n", malloc_trim(0));
        } else if (strcmp(cmd, "stats-vs-malloc_stats") == 0) {
            if (!get_stats) absent();
            struct memalloc_stats s;
            fflush(stderr);
            get_stats(&s);
            malloc_stats();
            printf("stats: allocs=%llu frees=%llu in_use=%zu peak_in_use=%zu regions=%zu "
                   "heap_in_use=%zu heap_free=%zu mmapped_blocks=%zu peak_mmapped_blocks=%zu "
                   "total_mmapped_blocks=%llu thread_cached=%zu arena_cached=%zu arenas=%zu\n",
                   (unsigned long long)s.allocs, (unsigned long long)s.frees, s.in_use,
                   s.peak_in_use, s.regions, s.heap_in_use, s.heap_free, s.mmapped_blocks,
                   s.peak_mmapped_blocks, (unsigned long long)s.total_mmapped_blocks,
                   s.thread_cached, s.arena_cached, s.arenas);
        } else if (strcmp(cmd, "build-free") == 0) {
            NEED_ARG;
            size_t n = parse_size(arg);
            const char *size_arg = i + 1 < argc ? argv[i + 1] : NULL;
            if (!size_arg) die("missing argument to", cmd);
            i++;
            size_t size = parse_size(size_arg);
            void **v = malloc(n * sizeof *v);
            if (!v) die("out of memory:", arg);
            for (size_t k = 0; k < n; k++) {
                if (!(v[k] = malloc(size))) die("out of memory:", size_arg);
                memset(v[k], (int)k, size);
            }
            for (size_t k = 0; k < n; k++) free(hide(v[k]));
            free(v);
        } else if (strcmp(cmd, "rss") == 0) {
            long kib = proc_value("status", "VmRSS:");
            if (kib < 0) die("no VmRSS in", "/proc/self/status");
            printf("rss: %ld\n", kib);
        } else if (strcmp(cmd, "threads") == 0) {
            long n = proc_value("status", "Threads:");
            if (n < 0) die("no Threads in", "/proc/self/status");
            printf("threads: %ld\n", n);
        } else if (strcmp(cmd, "exit") == 0) {
            say_bye();
            exit(0);
        } else if (strcmp(cmd, "_exit") == 0) {
            say_bye();
            _exit(0);
        } else if (strcmp(cmd, "sleep") == 0) {
            NEED_ARG;
            struct timespec ts = {0, (long)parse_size(arg) * 1000000L};
            while (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            nanosleep(&ts, NULL);
        } else {
            die("unknown command", cmd);
        }
#undef NEED_ARG
    }
    return 0;
}
