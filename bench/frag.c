/*
 * frag.c: fragmentation. Blocks of 8 B-64 KiB (log-uniform: most are small,
 * most bytes are in large ones) in two populations: 4000 long-lived slots
 * replaced rarely and 500 short-lived slots replaced all the time, so the
 * short ones keep punching holes between the long ones. Every 1/8 of the run
 * a random half of the long-lived blocks is freed and reallocated with new
 * sizes (a phase change). Peak RSS is the figure to watch.
 *
 *   frag [ops]       (default 3,000,000)
 */
#include "bench.h"

#define LONG  4000
#define SHORT 500
#define BIG   (64 * 1024)

struct blk {
    void *p;
    size_t n;
};

static uint64_t replace(struct blk *b, rng_t *r) {
    uint64_t sum = 0;
    if (b->p) {
        sum = check_ends(b->p, b->n, b->n);
        free(b->p);
    }
    b->n = rng_logsize(r, 8, BIG);
    b->p = need(malloc(b->n), "malloc", b->n);
    touch_ends(b->p, b->n, b->n);
    return sum;
}

int main(int argc, char **argv) {
    unsigned long ops = arg_count(argc, argv, 1, 3000000);
    static struct blk lng[LONG], shrt[SHORT];
    rng_t r = rng_seed(2);
    uint64_t sum = 0, done = 0;

    double t0 = now_seconds();
    for (unsigned k = 0; k < LONG; k++) {
        sum += replace(&lng[k], &r);
        done++;
    }
    for (unsigned long i = 0; i < ops; i++) {
        if (i % (ops / 8 + 1) == ops / 8) { /* phase change */
            for (unsigned k = 0; k < LONG; k++) {
                if (rng_next(&r) & 1) continue;
                sum += replace(&lng[k], &r);
                done++;
            }
        }
        if (rng_below(&r, 32) == 0)
            sum += replace(&lng[rng_below(&r, LONG)], &r);
        else
            sum += replace(&shrt[rng_below(&r, SHORT)], &r);
        done++;
    }
    for (unsigned k = 0; k < LONG; k++) sum += check_ends(lng[k].p, lng[k].n, lng[k].n);
    for (unsigned k = 0; k < SHORT; k++) sum += check_ends(shrt[k].p, shrt[k].n, shrt[k].n);
    for (unsigned k = 0; k < LONG; k++) free(lng[k].p);
    for (unsigned k = 0; k < SHORT; k++) free(shrt[k].p);
    double t1 = now_seconds();

    report("frag", t1 - t0, done, sum);
    return 0;
}
