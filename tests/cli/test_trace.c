/* The trace reader, the symbols and the report's figures, on the
 * synthetic trace (trace_gen.h): every event and stack read back exactly,
 * a cut-short copy read up to its cut, the frames named after this
 * program's functions, the figures equal to those the generator knows. */
#define _GNU_SOURCE
#include "harness.h"
#include "trace_gen.h"

#include "analysis.h"
#include "symbols.h"
#include "trace_read.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>

static char path[4096], cut_path[4096 + 8];
static struct gen_trace g;

static int read_ok(const char *p, struct trace *t) {
    char err[256] = "";
    int rc = trace_read(p, t, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", p, err);
    return rc == 0;
}

TEST(test_events_round_trip) {
    struct trace t;
    REQUIRE(read_ok(path, &t));
    CHECK(t.info.present && t.info.version == 1 && t.info.pid == 4242 && t.info.ppid == 4241);
    CHECK(t.info.page_size == 4096 && t.info.sample_bytes == GEN_SAMPLE);
    CHECK(t.info.start_real == 1764950400000000000ull && t.info.start_mono == 555000000000ull);
    CHECKF(t.info.nstrings == (uint32_t)g.nstrings, "%u strings", t.info.nstrings);
    for (int i = 0; i < g.nstrings && i < (int)t.info.nstrings; i++)
        CHECKF(strcmp(t.info.strings[i], g.strings[i]) == 0, "string %d '%s'", i,
               t.info.strings[i]);
    CHECK(t.nmaps == 1 && strstr(t.maps[0].text, "/") != NULL);
    CHECK(t.unknown == 1 && t.malformed == 0 && t.dup_stacks == 0);
    CHECK(!t.cut_short && !t.truncated && t.end.present);
    CHECK(t.end.t == g.end_t && t.end.allocs == g.end_allocs && t.end.frees == g.end_frees);
    CHECK(t.end.peak_rss == g.end_peak_rss && t.end.in_use == g.end_in_use);
    CHECK(t.end.peak_in_use == g.heaps[g.peak].in_use);

    CHECKF(t.nallocs == g.nallocs, "%zu allocs, %zu written", t.nallocs, g.nallocs);
    for (size_t i = 0; i < t.nallocs && i < g.nallocs; i++) {
        const struct tr_alloc *a = &t.allocs[i];
        const struct gen_alloc *e = &g.allocs[i];
        CHECKF(a->t == e->t && a->addr == e->addr && a->size == e->size && a->weight == e->weight &&
                   a->stack == e->stack && a->tid == e->tid && a->seq == e->seq,
               "alloc %zu", i);
        CHECKF(e->free < 0 ? a->free == TR_NOT_FREED : a->free == (uint32_t)e->free,
               "alloc %zu matched with free %u, written %lld", i, a->free, (long long)e->free);
    }
    CHECKF(t.nfrees == g.nfrees, "%zu frees, %zu written", t.nfrees, g.nfrees);
    for (size_t i = 0; i < t.nfrees && i < g.nfrees; i++) {
        const struct tr_free *f = &t.frees[i];
        const struct gen_free *e = &g.frees[i];
        CHECKF(f->t == e->t && f->addr == e->addr && f->tid == e->tid && f->flags == e->flags &&
                   f->seq == e->seq && f->alloc == (uint32_t)e->alloc,
               "free %zu", i);
    }
    CHECK(t.orphan_frees == 0);
    /* the file's order was not the time order */
    CHECKF(g.free_before_alloc > 0, "no FREE written before its ALLOC");
    CHECK(g.stack_after_alloc == GEN_STACKS);

    CHECKF(t.nstacks == GEN_STACKS, "%zu stacks", t.nstacks);
    for (uint32_t s = 1; s <= GEN_STACKS; s++) {
        const struct tr_stack *st = trace_stack(&t, s);
        REQUIRE(st != NULL);
        CHECK(st->id == s && st->depth == g.depth[s]);
        for (uint32_t k = 0; k < st->depth && k < g.depth[s]; k++)
            CHECKF(st->frames[k] == g.frames[s][k], "stack %u frame %u", s, k);
    }
    CHECK(trace_stack(&t, GEN_STACKS + 1) == NULL && trace_stack(&t, 0) == NULL);

    CHECKF(t.nheaps == g.nheaps, "%zu heaps", t.nheaps);
    CHECKF(t.narenas == g.nheaps, "%zu arenas records", t.narenas);
    for (size_t i = 0; i < t.narenas && i < g.nheaps; i++)
        CHECKF(t.arenas[i].t == g.heaps[i].t && t.arenas[i].count == 2 &&
                   t.arenas[i].v[0].mapped == g.heaps[i].heap_mapped / 2 &&
                   t.arenas[i].v[1].free_objects == g.heaps[i].heap_free / 4 &&
                   t.arenas[i].v[1].threads == 2,
               "arenas %zu", i);
    for (size_t i = 0; i < t.nheaps && i < g.nheaps; i++)
        CHECKF(memcmp(&t.heaps[i], &g.heaps[i], sizeof g.heaps[i]) == 0, "heap %zu", i);
    CHECK(t.nclasses == g.nclasses && t.nregions == g.nregions);
    for (size_t i = 0; i < t.nclasses && i < g.nclasses; i++) {
        CHECK(t.classes[i].t == g.classes_t[i] && t.classes[i].count == 4);
        CHECK(t.classes[i].v[2].size == 64 && t.classes[i].v[2].page_bytes == 65536);
    }
    for (size_t i = 0; i < t.nregions && i < g.nregions; i++) {
        const struct tr_regions *r = &t.regions[i];
        CHECK(r->t == g.regions_t[i] && r->count == 3 && r->granule == 65536);
        if (r->count != 3) continue;
        CHECK(r->v[0].ngranules == 5 && r->v[1].ngranules == 17 && r->v[2].ngranules == 64);
        CHECK(r->v[2].base == 0x7f0000000000ull + 2 * 0x10000000ull);
        uint64_t op = r->t / 1000 - 1;
        for (uint32_t j = 0; j < r->v[1].ngranules; j++)
            CHECKF(r->v[1].g[3 * j] == (uint8_t)((j * 37 + op) % 256), "granule %u", j);
    }
    CHECK(t.sites.present && t.sites.count == GEN_STACKS);
    for (uint32_t i = 0; i < t.sites.count; i++) {
        CHECK(t.sites.v[i].ra == g.frames[i + 1][0]);
        CHECK(t.sites.v[i].calls == g.sites_calls[i + 1] &&
              t.sites.v[i].bytes == g.sites_bytes[i + 1]);
    }
    CHECK(t.sizes.present && t.sizes.count == GEN_BUCKETS);
    for (uint32_t k = 0; k < t.sizes.count; k++)
        CHECK(t.sizes.v[k].calls == g.sizes_calls[k] && t.sizes.v[k].bytes == g.sizes_bytes[k]);
    trace_free(&t);
}

/* A copy cut in the middle of a record: read up to the cut, the rest lost. */
TEST(test_cut_short) {
    struct stat st;
    REQUIRE(stat(path, &st) == 0 && (size_t)st.st_size == g.bytes);
    FILE *in = fopen(path, "rb");
    REQUIRE(in != NULL);
    unsigned char *all = malloc(g.bytes);
    REQUIRE(fread(all, 1, g.bytes, in) == g.bytes);
    fclose(in);
    /* the record that holds the middle byte: cut inside its header and
     * inside its payload (a cut at a record's end would not be short) */
    size_t off = 8, len = 0;
    for (;;) {
        uint32_t n;
        memcpy(&n, all + off + 4, 4);
        len = 8 + (size_t)n;
        if (off + len > g.bytes / 2) break;
        off += len;
    }
    size_t mid = len > 8 ? off + 8 + (len - 8) / 2 : off + 5;
    size_t cuts[] = {off + 3, mid, g.bytes - 1, g.bytes - 56};
    size_t prev_events = 0;
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        FILE *out = fopen(cut_path, "wb");
        REQUIRE(out != NULL);
        REQUIRE(fwrite(all, 1, cuts[c], out) == cuts[c]);
        fclose(out);
        struct trace t;
        if (!read_ok(cut_path, &t)) continue;
        CHECKF(t.truncated, "cut at %zu not flagged", cuts[c]);
        CHECK(!t.end.present);
        if (c < 3) CHECKF(t.cut_short, "cut at %zu", cuts[c]); /* the last cut is the END's */
        /* everything before the cut is there: every event read is one written */
        size_t ai = 0;
        for (size_t i = 0; i < t.nallocs; i++) {
            while (ai < g.nallocs && g.allocs[ai].t != t.allocs[i].t) ai++;
            CHECKF(ai < g.nallocs && g.allocs[ai].addr == t.allocs[i].addr, "cut alloc %zu", i);
        }
        if (c == 0) prev_events = t.nallocs + t.nfrees;
        if (c == 2) {
            CHECK(t.nallocs == g.nallocs && t.nfrees == g.nfrees);
            CHECK(t.nallocs + t.nfrees > prev_events);
        }
        trace_free(&t);
    }
    free(all);
}

/* A process that exec'd: the file holds its earlier program's records,
 * then the traced program's from its own INFO; only the latter are kept. */
TEST(test_exec_before) {
    char exec_path[4096 + 8];
    snprintf(exec_path, sizeof exec_path, "%s.exec", path);
    struct gen_trace g2;
    REQUIRE(gen_write(exec_path, GEN_EXEC_BEFORE, 4242, 4241, &g2) == 0);
    struct trace t;
    int ok = read_ok(exec_path, &t);
    unlink(exec_path);
    if (!ok) {
        gen_free_trace(&g2);
        return;
    }
    CHECK(t.nprograms == 1 && strcmp(t.programs[0], gen_exec_before_args) == 0);
    CHECK(t.info.present && t.info.nstrings == (uint32_t)g.nstrings &&
          strcmp(t.info.strings[1], g.strings[1]) == 0);
    CHECK(t.nmaps == 1 && !strstr(t.maps[0].text, "/usr/bin/env"));
    CHECKF(t.nallocs == g.nallocs && t.nfrees == g.nfrees && t.nheaps == g.nheaps,
           "%zu allocs, %zu frees, %zu heaps", t.nallocs, t.nfrees, t.nheaps);
    /* the earlier program's ARENAS and AGGREGATES forgotten too */
    CHECKF(t.narenas == g.nheaps && !t.aggregates.present, "%zu arenas records", t.narenas);
    for (size_t i = 0; i < t.nallocs && i < g.nallocs; i++)
        CHECKF(t.allocs[i].t == g.allocs[i].t && t.allocs[i].addr == g.allocs[i].addr &&
                   (g.allocs[i].free < 0 ? t.allocs[i].free == TR_NOT_FREED
                                         : t.allocs[i].free == (uint32_t)g.allocs[i].free),
               "alloc %zu", i);
    CHECK(t.orphan_frees == 0 && t.dup_stacks == 0 && t.nstacks == GEN_STACKS);
    const struct tr_stack *st = trace_stack(&t, 1);
    CHECK(st && st->depth == g.depth[1] && st->frames[0] == g.frames[1][0]);
    CHECK(!t.truncated && t.end.present);
    trace_free(&t);
    gen_free_trace(&g2);
}

TEST(test_errors) {
    struct trace t;
    char err[256];
    CHECK(trace_read("/nonexistent/trace", &t, err, sizeof err) == -1);
    CHECKF(strstr(err, "No such file") != NULL, "%s", err);
    CHECK(trace_read("/", &t, err, sizeof err) == -1);
    CHECKF(strstr(err, "not a file") != NULL, "%s", err);
    CHECK(trace_parse((const unsigned char *)"", 0, &t, err, sizeof err) == -1);
    CHECKF(strstr(err, "empty") != NULL, "%s", err);
    CHECK(trace_parse((const unsigned char *)"MEMTRC02xxxxxxxx", 16, &t, err, sizeof err) == -1);
    CHECKF(strstr(err, "not a memalloc trace") != NULL, "%s", err);
    REQUIRE(trace_parse((const unsigned char *)"MEMTRC01", 8, &t, err, sizeof err) == 0);
    CHECK(t.truncated && !t.cut_short && t.records == 0);
    trace_free(&t);
}

/* The load address of this program, for the expected virtual addresses. */
static uintptr_t main_base;
static int find_main(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (info->dlpi_name && !info->dlpi_name[0]) {
        main_base = info->dlpi_addr;
        return 1;
    }
    return 0;
}

TEST(test_symbols) {
    struct trace t;
    REQUIRE(read_ok(path, &t));
    struct symbols *sy = symbols_new(&t);
    const char *self = program_invocation_short_name;
    char want[8192];
    for (int s = 1; s <= 4; s++)
        for (int k = 0; k < 3; k++) {
            snprintf(want, sizeof want, "%s+0x%x (%s)", gen_frame_funcs[s][k],
                     gen_frame_offsets[s][k], self);
            const char *got = symbols_name(sy, g.frames[s][k]);
            CHECKF(strcmp(got, want) == 0, "stack %d frame %d: '%s', expected '%s'", s, k, got,
                   want);
            snprintf(want, sizeof want, "%s (%s)", gen_frame_funcs[s][k], self);
            CHECKF(strcmp(symbols_func(sy, g.frames[s][k]), want) == 0, "'%s'",
                   symbols_func(sy, g.frames[s][k]));
        }
    /* read-only data: the module and the ELF virtual address */
    dl_iterate_phdr(find_main, NULL);
    snprintf(want, sizeof want, "%s+0x%llx", self,
             (unsigned long long)(g.frames[5][0] - main_base));
    CHECKF(strcmp(symbols_name(sy, g.frames[5][0]), want) == 0, "'%s', expected '%s'",
           symbols_name(sy, g.frames[5][0]), want);
    /* a shared object's function: fprintf, in libc (or a sanitizer's runtime) */
    Dl_info di;
    REQUIRE(dladdr((void *)(uintptr_t)(g.frames[5][1] - 1), &di) != 0);
    char real[4096];
    REQUIRE(realpath(di.dli_fname, real) != NULL); /* the file mapped, as the maps name it */
    const char *libc = strrchr(real, '/');
    libc = libc ? libc + 1 : real;
    snprintf(want, sizeof want, "+0x%x (%s)", gen_frame_offsets[5][1], libc);
    const char *got = symbols_name(sy, g.frames[5][1]);
    CHECKF(strstr(got, want) != NULL && strstr(got, "printf") != NULL, "'%s', expected '*printf%s'",
           got, want);
    CHECK(strcmp(symbols_name(sy, 0x10), "0x10") == 0);
    symbols_free(sy);
    trace_free(&t);
}

TEST(test_figures) {
    struct trace t;
    REQUIRE(read_ok(path, &t));
    struct analysis a;
    analyze(&t, &a);
    CHECK(a.peak_heap == g.peak && a.peak_t == g.heaps[g.peak].t);
    CHECK(a.peak_in_use == g.heaps[g.peak].in_use && a.peak_rss == g.end_peak_rss);
    CHECK(a.allocs == g.end_allocs && a.frees == g.end_frees && a.run_time == g.end_t);
    uint64_t leak = 0, live = 0;
    for (int s = 1; s <= GEN_STACKS; s++) {
        const struct an_site *site = an_site_of(&a, g.frames[s][0]);
        REQUIRE(site != NULL);
        CHECKF(site->peak_bytes == g.peak_live[s], "stack %d: %llu live at the peak, expected %llu",
               s, (unsigned long long)site->peak_bytes, (unsigned long long)g.peak_live[s]);
        CHECKF(site->leak_bytes == g.leaked[s], "stack %d leaked %llu, expected %llu", s,
               (unsigned long long)site->leak_bytes, (unsigned long long)g.leaked[s]);
        CHECK(site->temp_samples == g.temporary[s]);
        CHECK(site->calls == g.sites_calls[s] && site->bytes == g.sites_bytes[s]);
        leak += g.leaked[s];
        live += g.peak_live[s];
    }
    CHECK(a.leak_bytes == leak && a.peak_live == live && leak > 0 && live > 0);
    for (int b = 0; b < 64; b++) CHECKF(a.lifetimes[b] == g.lifetimes[b], "lifetime bucket %d", b);
    CHECK(a.classes_at_peak != AN_NONE && a.regions_at_peak != AN_NONE);
    uint64_t tp = a.peak_t;
    for (size_t i = 0; i < t.nclasses; i++) {
        uint64_t d = t.classes[i].t > tp ? t.classes[i].t - tp : tp - t.classes[i].t;
        uint64_t best = t.classes[a.classes_at_peak].t;
        best = best > tp ? best - tp : tp - best;
        CHECK(best <= d);
    }
    analysis_free(&a);
    trace_free(&t);
}

int main(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/test_trace.%d", dir && *dir ? dir : "/tmp", (int)getpid());
    snprintf(cut_path, sizeof cut_path, "%s.cut", path);
    if (gen_write(path, 0, 4242, 4241, &g) != 0) {
        perror(path);
        return 1;
    }
    RUN(test_events_round_trip);
    RUN(test_cut_short);
    RUN(test_exec_before);
    RUN(test_errors);
    RUN(test_symbols);
    RUN(test_figures);
    unlink(path);
    unlink(cut_path);
    gen_free_trace(&g);
    return harness_finish();
}
