/*
 * realloc.c: realloc growth. 32 buffers are live at a time, picked at random
 * so that neighbours keep getting in the way of growth in place:
 *   - string builders (7 in 8): grown by one realloc per append of 1-64
 *     bytes, to a final length of 1 KiB-256 KiB (log-uniform);
 *   - vectors (1 in 8): capacity grown by 1.5x from 16 bytes, to a final
 *     size of 64 KiB-8 MiB (log-uniform).
 * A finished buffer is checked, freed and replaced, until `buffers` are done.
 * Appended bytes are written (builders) or touched once per 4 KiB (vectors);
 * the first byte and the last written byte are checked after every move.
 *
 *   realloc [buffers]   (default 2000)
 */
#include <string.h>

#include "bench.h"

#define LIVE 32

struct buf {
    unsigned char *p;
    size_t len, target;
    int vector;
    unsigned char tag;
};

static void start(struct buf *b, rng_t *r, unsigned long id) {
    b->vector = rng_below(r, 8) == 0;
    b->target =
        b->vector ? rng_logsize(r, 64 * 1024, 8 * 1024 * 1024) : rng_logsize(r, 1024, 256 * 1024);
    b->tag = (unsigned char)(id * 7 + 1);
    b->len = 16;
    b->p = need(malloc(b->len), "malloc", b->len);
    memset(b->p, b->tag, b->len);
}

/* One realloc; returns the bytes checked (for the checksum). */
static uint64_t grow(struct buf *b, rng_t *r) {
    size_t old = b->len;
    size_t n = b->vector ? old + old / 2 : old + rng_range(r, 1, 64);
    if (n > b->target) n = b->target;
    b->p = need(realloc(b->p, n), "realloc", n);
    if (b->vector) {
        for (size_t i = old; i < n; i += 4096) b->p[i] = b->tag;
        b->p[n - 1] = b->tag;
    } else {
        memset(b->p + old, b->tag, n - old);
    }
    if (b->p[0] != b->tag || b->p[old - 1] != b->tag) {
        fprintf(stderr, "realloc: buffer of %zu bytes lost its contents when grown\n", old);
        exit(2);
    }
    b->len = n;
    return b->p[0] + (uint64_t)n;
}

int main(int argc, char **argv) {
    unsigned long buffers = arg_count(argc, argv, 1, 2000);
    struct buf live[LIVE];
    rng_t r = rng_seed(3);
    uint64_t sum = 0, ops = 0;
    unsigned long started = 0, finished = 0;

    double t0 = now_seconds();
    for (unsigned k = 0; k < LIVE; k++) start(&live[k], &r, started++);
    while (finished < buffers) {
        struct buf *b = &live[rng_below(&r, LIVE)];
        if (!b->p) continue;
        sum += grow(b, &r);
        ops++;
        if (b->len < b->target) continue;
        sum += b->p[b->len - 1];
        free(b->p);
        b->p = NULL;
        finished++;
        if (started < buffers) start(b, &r, started++);
    }
    double t1 = now_seconds();

    report("realloc", t1 - t0, ops, sum);
    return 0;
}
