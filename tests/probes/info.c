/*
 * info.c: the figures of malloc_info(3) and malloc_stats(3) around a known
 * pattern of allocations. Runs under LD_PRELOAD=libmemalloc.so (the
 * integration tests, tests/integration/stats.bats, parse what it writes)
 * and against glibc alike: it uses only the libc names.
 *
 *   info COMMAND [ARGS] [COMMAND [ARGS]]...
 *
 *   hold N SIZE      malloc N blocks of SIZE bytes, write each, keep them
 *   threads T N SIZE T threads at once each malloc N blocks of SIZE bytes
 *                    and write them, then exit when all have; the blocks are held (their
 *                    pages stay in the arenas the threads took them from)
 *   free-held        free every block held so far
 *   info PATH        malloc_info(0, f) on f = fopen(PATH, "w"):
 *                    "info PATH: RC"
 *   memstream PATH   malloc_info(0, f) on an open_memstream, whose text is
 *                    then written to PATH: "memstream PATH: RC"
 *   option N         malloc_info(N, stdout) with errno 0 before:
 *                    "option N: rc=RC errno=ERRNO"
 *   stats            malloc_stats() (it prints on stderr)
 *   exit             exit(0) at once, the blocks held still in use
 *
 * Sizes take a k or m suffix (powers of 1024). A command that cannot do
 * its work prints "error: ..." and the program exits 3.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void die(const char *what, const char *arg) {
    printf("error: %s %s\n", what, arg ? arg : "");
    fflush(stdout);
    exit(3);
}

static size_t parse_size(const char *s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) die("not a size:", s);
    if (*end == 'k') {
        v <<= 10;
        end++;
    } else if (*end == 'm') {
        v <<= 20;
        end++;
    }
    if (*end) die("not a size:", s);
    return (size_t)v;
}

/* Hide a pointer from the compiler: a block written and freed is not dead. */
static void *hide(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

static void **held;
static size_t nheld, capheld;

static void hold(size_t n, size_t size) {
    if (nheld + n > capheld) {
        size_t cap = (nheld + n) * 2;
        void **v = realloc(held, cap * sizeof *v);
        if (!v) die("out of memory holding", "blocks");
        held = v;
        capheld = cap;
    }
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(size);
        if (!p) die("allocation failed", NULL);
        memset(p, (int)i, size);
        held[nheld++] = hide(p);
    }
}

struct job {
    void **slots;
    size_t n, size;
    pthread_barrier_t *all; /* every thread holds its blocks before any exits */
};

static void *thread_hold(void *arg) {
    struct job *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        char *p = malloc(j->size);
        if (!p) return NULL;
        memset(p, (int)i, j->size);
        j->slots[i] = hide(p);
    }
    pthread_barrier_wait(j->all);
    return j;
}

/* T threads at once (so that they spread over the arenas), each filling a
 * slice of held. */
static void threads_hold(size_t t, size_t n, size_t size) {
    if (nheld + t * n > capheld) {
        size_t cap = nheld + t * n;
        void **v = realloc(held, cap * sizeof *v);
        if (!v) die("out of memory holding", "blocks");
        held = v;
        capheld = cap;
    }
    pthread_t tid[64];
    struct job jobs[64];
    pthread_barrier_t all;
    if (t < 1 || t > 64) die("1 to 64 threads", NULL);
    pthread_barrier_init(&all, NULL, (unsigned)t);
    for (size_t k = 0; k < t; k++) {
        jobs[k] = (struct job){held + nheld + k * n, n, size, &all};
        if (pthread_create(&tid[k], NULL, thread_hold, &jobs[k]) != 0)
            die("pthread_create failed", NULL);
    }
    for (size_t k = 0; k < t; k++) {
        void *r;
        if (pthread_join(tid[k], &r) != 0 || !r) die("a thread failed", NULL);
    }
    pthread_barrier_destroy(&all);
    nheld += t * n;
}

static void free_held(void) {
    for (size_t i = 0; i < nheld; i++) free(held[i]);
    nheld = 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        const char *cmd = argv[i];
        const char *arg = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(cmd, "hold") == 0) {
            const char *size = i + 2 < argc ? argv[i + 2] : NULL;
            if (!arg || !size) die("hold needs N and SIZE", NULL);
            hold(parse_size(arg), parse_size(size));
            i += 2;
        } else if (strcmp(cmd, "threads") == 0) {
            if (i + 3 >= argc) die("threads needs T, N and SIZE", NULL);
            threads_hold(parse_size(argv[i + 1]), parse_size(argv[i + 2]), parse_size(argv[i + 3]));
            i += 3;
        } else if (strcmp(cmd, "free-held") == 0) {
            free_held();
        } else if (strcmp(cmd, "info") == 0) {
            if (!arg) die("info needs a path", NULL);
            FILE *f = fopen(arg, "w");
            if (!f) die("cannot write", arg);
            int rc = malloc_info(0, f);
            if (fclose(f) != 0) die("cannot write", arg);
            printf("info %s: %d\n", arg, rc);
            i++;
        } else if (strcmp(cmd, "memstream") == 0) {
            if (!arg) die("memstream needs a path", NULL);
            char *text = NULL;
            size_t len = 0;
            FILE *m = open_memstream(&text, &len);
            if (!m) die("open_memstream failed", NULL);
            int rc = malloc_info(0, m);
            if (fclose(m) != 0) die("open_memstream failed", NULL);
            FILE *f = fopen(arg, "w");
            if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) die("cannot write", arg);
            free(text);
            printf("memstream %s: %d\n", arg, rc);
            i++;
        } else if (strcmp(cmd, "option") == 0) {
            if (!arg) die("option needs a number", NULL);
            errno = 0;
            int rc = malloc_info(atoi(arg), stdout);
            int e = errno;
            printf("option %s: rc=%d errno=%d\n", arg, rc, e);
            i++;
        } else if (strcmp(cmd, "exit") == 0) {
            exit(0);
        } else if (strcmp(cmd, "stats") == 0) {
            fflush(stdout);
            malloc_stats();
        } else {
            die("unknown command", cmd);
        }
    }
    free_held();
    free(held);
    return 0;
}
