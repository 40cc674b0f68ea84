/* The report's figures: see analysis.h. */
#include "analysis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bucket64(uint64_t v) {
    return v ? 64 - __builtin_clzll(v) : 0;
}

uint64_t an_alloc_site(const struct trace *t, const struct tr_alloc *al) {
    const struct tr_stack *s = trace_stack(t, al->stack);
    return s && s->depth ? s->frames[0] : 0;
}

int an_live_at_peak(const struct trace *t, const struct analysis *a, const struct tr_alloc *al) {
    if (a->peak_t == UINT64_MAX || al->t > a->peak_t) return 0;
    return al->free == TR_NOT_FREED || t->frees[al->free].t > a->peak_t;
}

static int site_cmp(const void *x, const void *y) {
    const struct an_site *a = x, *b = y;
    return (a->ra > b->ra) - (a->ra < b->ra);
}

const struct an_site *an_site_of(const struct analysis *a, uint64_t ra) {
    size_t lo = 0, hi = a->nsites;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->sites[mid].ra < ra)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->nsites && a->sites[lo].ra == ra ? &a->sites[lo] : NULL;
}

/* The index of the record nearest time T in an array sorted by time
 * (each element's time its first u64). */
static size_t nearest(const void *base, size_t n, size_t size, uint64_t t) {
    if (!n) return AN_NONE;
    const unsigned char *b = base;
    size_t best = 0;
    uint64_t bestd = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t ti;
        memcpy(&ti, b + i * size, 8);
        uint64_t d = ti > t ? ti - t : t - ti;
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    return best;
}

struct live_ev {
    uint64_t t;
    int64_t delta;
};

static int live_ev_cmp(const void *x, const void *y) {
    const struct live_ev *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return (a->delta > b->delta) - (a->delta < b->delta); /* frees first at one time */
}

/* Without HEAP records: the time the sampled live bytes were highest. */
static void peak_from_samples(const struct trace *t, struct analysis *a) {
    size_t n = 0;
    struct live_ev *ev = calloc(2 * t->nallocs + 1, sizeof *ev);
    if (!ev) abort();
    for (size_t i = 0; i < t->nallocs; i++) {
        const struct tr_alloc *al = &t->allocs[i];
        ev[n++] = (struct live_ev){al->t, (int64_t)al->weight};
        if (al->free != TR_NOT_FREED)
            ev[n++] = (struct live_ev){t->frees[al->free].t, -(int64_t)al->weight};
    }
    qsort(ev, n, sizeof *ev, live_ev_cmp);
    int64_t cur = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        cur += ev[i].delta;
        if (cur > best) {
            best = cur;
            a->peak_t = ev[i].t;
        }
    }
    a->peak_in_use = best > 0 ? (uint64_t)best : 0;
    free(ev);
}

void analyze(const struct trace *t, struct analysis *a) {
    memset(a, 0, sizeof *a);
    a->peak_heap = AN_NONE;
    a->peak_t = UINT64_MAX;
    for (size_t i = 0; i < t->nheaps; i++) {
        if (a->peak_heap == AN_NONE || t->heaps[i].in_use > t->heaps[a->peak_heap].in_use)
            a->peak_heap = i;
        if (t->heaps[i].rss > a->peak_rss) a->peak_rss = t->heaps[i].rss;
    }
    if (a->peak_heap != AN_NONE) {
        a->peak_t = t->heaps[a->peak_heap].t;
        a->peak_in_use = t->heaps[a->peak_heap].in_use;
        a->allocs = t->heaps[t->nheaps - 1].allocs;
        a->frees = t->heaps[t->nheaps - 1].frees;
        a->have_calls = 1;
    } else if (t->nallocs) {
        peak_from_samples(t, a);
    }
    a->run_time = t->last_t;
    if (t->end.present) {
        a->run_time = t->end.t;
        a->allocs = t->end.allocs;
        a->frees = t->end.frees;
        a->have_calls = 1;
        if (t->end.peak_rss > a->peak_rss) a->peak_rss = t->end.peak_rss;
        a->in_use_at_end = t->end.in_use;
    }

    /* the sites: every stack's first frame, SITES's, and 0 (no stack) */
    size_t cap = t->nstacks + t->sites.count + 1;
    a->sites = calloc(cap, sizeof *a->sites);
    if (!a->sites) abort();
    a->sites[a->nsites++].ra = 0;
    for (size_t i = 0; i < t->nstacks; i++)
        a->sites[a->nsites++].ra = t->stacks[i].depth ? t->stacks[i].frames[0] : 0;
    for (uint32_t i = 0; i < t->sites.count; i++) a->sites[a->nsites++].ra = t->sites.v[i].ra;
    qsort(a->sites, a->nsites, sizeof *a->sites, site_cmp);
    size_t k = 0;
    for (size_t i = 0; i < a->nsites; i++)
        if (!k || a->sites[k - 1].ra != a->sites[i].ra) a->sites[k++] = a->sites[i];
    a->nsites = k;
    for (uint32_t i = 0; i < t->sites.count; i++) {
        struct an_site *s = (struct an_site *)an_site_of(a, t->sites.v[i].ra);
        s->calls += t->sites.v[i].calls;
        s->bytes += t->sites.v[i].bytes;
    }
    /* each stack's site, by the stack's index */
    size_t *site_of_stack = calloc(t->nstacks + 1, sizeof *site_of_stack);
    if (!site_of_stack) abort();
    for (size_t i = 0; i < t->nstacks; i++)
        site_of_stack[i] =
            (size_t)(an_site_of(a, t->stacks[i].depth ? t->stacks[i].frames[0] : 0) - a->sites);
    size_t no_stack = (size_t)(an_site_of(a, 0) - a->sites);
    for (size_t i = 0; i < t->nallocs; i++) {
        const struct tr_alloc *al = &t->allocs[i];
        const struct tr_stack *st = trace_stack(t, al->stack);
        struct an_site *s = &a->sites[st ? site_of_stack[st - t->stacks] : no_stack];
        s->samples++;
        s->sampled_bytes += al->weight;
        if (an_live_at_peak(t, a, al)) {
            s->peak_bytes += al->weight;
            s->peak_samples++;
            a->peak_live += al->weight;
        }
        if (al->free == TR_NOT_FREED) {
            s->leak_bytes += al->weight;
            s->leak_samples++;
            a->leak_bytes += al->weight;
            a->leak_samples++;
            continue;
        }
        const struct tr_free *fr = &t->frees[al->free];
        if (fr->flags & TR_FREE_TEMPORARY) {
            double calls = (double)al->weight / (double)(al->size ? al->size : 1);
            s->temp_samples++;
            s->temp_calls += calls;
            a->temp_samples++;
            a->temp_calls += calls;
        }
        a->lifetimes[bucket64(fr->t >= al->t ? fr->t - al->t : 0)]++;
    }
    /* the samples that were only counted (AGGREGATES): never live at a
     * HEAP record, so neither at the peak nor leaked */
    const struct tr_aggregates *ag = &t->aggregates;
    for (uint32_t i = 0; i < ag->count; i++) {
        const struct tr_agg *g = &ag->v[i];
        const struct tr_stack *st = trace_stack(t, g->stack);
        struct an_site *s = &a->sites[st ? site_of_stack[st - t->stacks] : no_stack];
        s->samples += g->samples;
        s->sampled_bytes += g->weight;
        s->temp_samples += g->temps;
        s->temp_calls += (double)g->temp_calls;
        a->temp_samples += g->temps;
        a->temp_calls += (double)g->temp_calls;
        a->samples += g->samples;
    }
    for (unsigned b = 0; b < TR_LIFETIMES && b < sizeof a->lifetimes / sizeof *a->lifetimes; b++)
        a->lifetimes[b] += ag->lifetimes[b];
    a->samples += t->nallocs;
    free(site_of_stack);
    uint64_t tp = a->peak_t == UINT64_MAX ? a->run_time : a->peak_t;
    a->classes_at_peak = nearest(t->classes, t->nclasses, sizeof *t->classes, tp);
    a->regions_at_peak = nearest(t->regions, t->nregions, sizeof *t->regions, tp);
    a->arenas_at_peak = nearest(t->arenas, t->narenas, sizeof *t->arenas, tp);
}

void analysis_free(struct analysis *a) {
    free(a->sites);
    memset(a, 0, sizeof *a);
}
