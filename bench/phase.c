/*
 * phase.c: a program whose big phase ends, as a compiler's unit, a
 * server's burst or a script's load step does. It builds a large
 * structure (blocks of 16 B-4 KiB, log-uniform, and a few buffers of
 * 64 KiB-4 MiB; about 150 MiB), frees all of it in random order, then
 * keeps working small (1,000 live slots of 8-512 B replaced at random)
 * for a fixed time, and then sleeps. What it measures is the memory it
 * costs afterwards: its resident set at the end of the small work and
 * after the sleep, which should be back near what the small work needs.
 *
 *   phase [blocks [work_ms [idle_ms]]]   (default 100000 blocks, 3000 ms, 1000 ms)
 *
 * Report line: bench.h's, with "rss_work_kib=N rss_idle_kib=N" appended;
 * seconds and ops are the build and the free (the small work runs for a
 * fixed time, so its count is left out of the checksum).
 */
#include <unistd.h>

#include "bench.h"

#define SLOTS 1000
#define BUFS  16

/* The resident set now, in KiB, from /proc/self/statm. */
static unsigned long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2) {
        fprintf(stderr, "phase: cannot read /proc/self/statm\n");
        exit(2);
    }
    fclose(f);
    return resident * (unsigned long)(sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
    unsigned long nblocks = arg_count(argc, argv, 1, 100000);
    unsigned long work_ms = arg_count(argc, argv, 2, 3000);
    unsigned long idle_ms = arg_count(argc, argv, 3, 1000);
    rng_t r = rng_seed(7);
    uint64_t sum = 0, ops = 0;
    void **blk = need(malloc(nblocks * sizeof *blk), "malloc", nblocks * sizeof *blk);
    size_t *len = need(malloc(nblocks * sizeof *len), "malloc", nblocks * sizeof *len);
    static void *buf[BUFS];
    static size_t buflen[BUFS];

    double t0 = now_seconds();
    /* the build: every 1/BUFS of the way, a buffer */
    for (unsigned long i = 0; i < nblocks; i++, ops++) {
        size_t n = rng_logsize(&r, 16, 4096);
        blk[i] = need(malloc(n), "malloc", n);
        len[i] = n;
        touch_ends(blk[i], n, n);
        unsigned b = (unsigned)(i * BUFS / nblocks);
        if (!buf[b]) {
            size_t m = rng_logsize(&r, (size_t)64 << 10, (size_t)4 << 20);
            buf[b] = need(malloc(m), "malloc", m);
            buflen[b] = m;
            for (size_t k = 0; k < m; k += 4096) ((char *)buf[b])[k] = (char)k;
            touch_ends(buf[b], m, b);
            ops++;
        }
    }
    /* the end of the phase: everything freed, in random order */
    for (unsigned long i = nblocks - 1; i > 0; i--) {
        unsigned long j = (unsigned long)rng_below(&r, i + 1);
        void *p = blk[i];
        size_t n = len[i];
        blk[i] = blk[j];
        len[i] = len[j];
        blk[j] = p;
        len[j] = n;
    }
    for (unsigned long i = 0; i < nblocks; i++, ops++) {
        sum += check_ends(blk[i], len[i], len[i]);
        free(blk[i]);
    }
    for (unsigned b = 0; b < BUFS; b++, ops++) {
        sum += check_ends(buf[b], buflen[b], b);
        free(buf[b]);
    }
    free(blk);
    free(len);
    double t1 = now_seconds();

    /* small work for work_ms */
    static void *slot[SLOTS];
    static size_t size[SLOTS];
    double until = t1 + (double)work_ms / 1000;
    for (unsigned long i = 0;; i++) {
        if ((i & 4095) == 0 && now_seconds() >= until) break;
        uint64_t x = rng_next(&r);
        unsigned k = (unsigned)(x % SLOTS);
        if (slot[k]) {
            check_ends(slot[k], size[k], size[k]);
            free(slot[k]);
        }
        size_t n = 8 + (size_t)((x >> 32) % 505);
        slot[k] = need(malloc(n), "malloc", n);
        size[k] = n;
        touch_ends(slot[k], n, n);
    }
    unsigned long rss_work = rss_kib();
    struct timespec idle = {(time_t)(idle_ms / 1000), (long)(idle_ms % 1000) * 1000000};
    nanosleep(&idle, NULL);
    unsigned long rss_idle = rss_kib();
    for (unsigned k = 0; k < SLOTS; k++) free(slot[k]);

    printf("phase: seconds=%.6f ops=%llu ops_per_s=%.0f checksum=%016llx rss_work_kib=%lu "
           "rss_idle_kib=%lu\n",
           t1 - t0, (unsigned long long)ops, t1 > t0 ? (double)ops / (t1 - t0) : 0.0,
           (unsigned long long)sum, rss_work, rss_idle);
    return 0;
}
