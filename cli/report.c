/* memalloc report: one self-contained HTML page from a trace. The charts
 * are inline SVG drawn here; the page's little script sorts the tables
 * and shows the flame graph's frame under the pointer. Nothing is loaded
 * from elsewhere. */
#define _GNU_SOURCE
#include "report.h"

#include "analysis.h"
#include "symbols.h"
#include "trace_read.h"
#include "xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOP_ROWS 50

/* ---- text ---- */

/* Writes S with &, <, >, " and ' escaped. */
static void esc(FILE *o, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", o);
            break;
        case '<':
            fputs("&lt;", o);
            break;
        case '>':
            fputs("&gt;", o);
            break;
        case '"':
            fputs("&quot;", o);
            break;
        case '\'':
            fputs("&#39;", o);
            break;
        default:
            fputc(*s, o);
        }
    }
}

/* Bytes in binary units: "512 B", "1.50 KiB", "12.3 MiB". */
static const char *fmt_bytes(char *buf, size_t len, double v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f B", v);
    else
        snprintf(buf, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* A duration in ns: "350 ns", "1.20 µs", "15.0 ms", "2.50 s". */
static const char *fmt_time(char *buf, size_t len, double ns) {
    static const char *const units[] = {"ns", "µs", "ms", "s"};
    int u = 0;
    while (ns >= 1000 && u < 3) {
        ns /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f ns", ns);
    else
        snprintf(buf, len, ns < 10 ? "%.2f %s" : ns < 100 ? "%.1f %s" : "%.0f %s", ns, units[u]);
    return buf;
}

/* A power of two, short: "0", "512", "4K", "2M". */
static const char *fmt_pow2(char *buf, size_t len, int b, const char *const *units) {
    if (b < 0) return snprintf(buf, len, "0"), buf;
    int u = b / 10;
    snprintf(buf, len, "%llu%s", 1ull << (b % 10), units[u]);
    return buf;
}

static const char *fmt_count(char *buf, size_t len, double v) {
    if (v >= 1e9)
        snprintf(buf, len, "%.2f G", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.2f M", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1f k", v / 1e3);
    else
        snprintf(buf, len, "%.0f", v);
    return buf;
}

/* ---- the report's state ---- */

struct report {
    FILE *o;
    const struct trace *t;
    const struct analysis *a;
    struct symbols *sy;
    uint32_t *site_stack; /* per analysis site: a sampled stack's id there (0: none) */
    struct relative *rel; /* the other traces of the run, by pid */
    size_t nrel;
};

static const char *site_name(struct report *r, uint64_t ra) {
    return ra ? symbols_name(r->sy, ra) : "(no stack)";
}

/* The site's cell: its name, and one sampled stack there as a tooltip. */
static void site_cell(struct report *r, size_t site) {
    FILE *o = r->o;
    const struct an_site *s = &r->a->sites[site];
    fputs("<td class=\"site\"", o);
    const struct tr_stack *st = trace_stack(r->t, r->site_stack[site]);
    if (st) {
        fputs(" title=\"", o);
        for (uint32_t k = 0; k < st->depth && k < 64; k++) {
            if (k) fputs("&#10;", o);
            esc(o, symbols_name(r->sy, st->frames[k]));
        }
        fputs("\"", o);
    }
    fputs(">", o);
    esc(o, site_name(r, s->ra));
    fputs("</td>", o);
}

static void td_bytes(FILE *o, double v) {
    char b[64];
    fprintf(o, "<td data-v=\"%.0f\">%s</td>", v, fmt_bytes(b, sizeof b, v));
}

static void td_count(FILE *o, double v) {
    char b[64];
    fprintf(o, "<td data-v=\"%.2f\">%s</td>", v, fmt_count(b, sizeof b, v));
}

static void not_recorded(FILE *o, const char *what) {
    fprintf(o, "<p class=\"none\">%s: not recorded in this trace.</p>\n", what);
}

static void table_head(FILE *o, const char *id, const char *const *cols, int ncols);

/* ---- the other processes of the run ----
 *
 * A run writes FILE for its first process and FILE.PID for the others
 * (docs/trace-format.md): a child after fork, a program started by a
 * shell. Their INFO records name them. */

struct relative {
    char *path;
    uint32_t pid, ppid;
    char *program; /* its arguments, joined */
};

static int relative_cmp(const void *x, const void *y) {
    const struct relative *a = x, *b = y;
    return (a->pid > b->pid) - (a->pid < b->pid);
}

/* The INFO of a trace, from its first 64 KiB; 0 if it has one. */
static int read_info(const char *path, struct trace *t) {
    static unsigned char head[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    char err[256];
    if (trace_parse(head, n, t, err, sizeof err) != 0) return -1;
    if (!t->info.present) {
        trace_free(t);
        return -1;
    }
    return 0;
}

static void find_relatives(struct report *r, const char *in) {
    const char *slash = strrchr(in, '/');
    const char *base = slash ? slash + 1 : in;
    size_t dlen = slash ? (size_t)(slash - in) + 1 : 0, blen = strlen(base);
    char *dir = xcalloc(dlen + 2, 1);
    memcpy(dir, in, dlen);
    if (!dlen) dir[0] = '.';
    DIR *d = opendir(dir);
    size_t cap = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, blen) != 0 || nm[blen] != '.' || !nm[blen + 1]) continue;
        if (strspn(nm + blen + 1, "0123456789") != strlen(nm + blen + 1)) continue;
        size_t plen = dlen + strlen(nm) + 1;
        char *path = xcalloc(plen, 1);
        snprintf(path, plen, "%.*s%s", (int)dlen, in, nm);
        struct trace t;
        if (read_info(path, &t) != 0) {
            free(path);
            continue;
        }
        if (r->nrel == cap) {
            cap = cap ? 2 * cap : 16;
            r->rel = realloc(r->rel, cap * sizeof *r->rel);
            if (!r->rel) abort();
        }
        size_t plen2 = 1;
        for (uint32_t i = 1; i < t.info.nstrings; i++) plen2 += strlen(t.info.strings[i]) + 1;
        char *prog = xcalloc(plen2, 1);
        for (uint32_t i = 1; i < t.info.nstrings; i++) {
            if (i > 1) strcat(prog, " ");
            strcat(prog, t.info.strings[i]);
        }
        r->rel[r->nrel++] = (struct relative){path, t.info.pid, t.info.ppid, prog};
        trace_free(&t);
    }
    if (d) closedir(d);
    free(dir);
    if (r->nrel) qsort(r->rel, r->nrel, sizeof *r->rel, relative_cmp);
}

static void free_relatives(struct report *r) {
    for (size_t i = 0; i < r->nrel; i++) {
        free(r->rel[i].path);
        free(r->rel[i].program);
    }
    free(r->rel);
}

#define REL_ROWS 100

static void relatives(struct report *r) {
    FILE *o = r->o;
    if (!r->nrel) return;
    fprintf(o,
            "<details id=\"processes\"><summary>The other processes of this run (%zu)</summary>\n"
            "<p>Each has a trace of its own: <code>memalloc report FILE</code> for its "
            "page.</p>\n",
            r->nrel);
    static const char *const cols[] = {"Trace", "PID", "Parent", "Program"};
    table_head(o, "table-processes", cols, 4);
    for (size_t i = 0; i < r->nrel && i < REL_ROWS; i++) {
        const struct relative *rl = &r->rel[i];
        const char *slash = strrchr(rl->path, '/');
        fputs("<tr><td class=\"site\">", o);
        esc(o, slash ? slash + 1 : rl->path);
        fprintf(o, "</td><td data-v=\"%u\">%u</td><td data-v=\"%u\">%u</td><td class=\"site\">",
                rl->pid, rl->pid, rl->ppid, rl->ppid);
        esc(o, rl->program);
        fputs("</td></tr>\n", o);
    }
    fputs("</tbody></table>\n", o);
    if (r->nrel > REL_ROWS)
        fprintf(o, "<p class=\"dim\">The first %d of %zu.</p>\n", REL_ROWS, r->nrel);
    fputs("</details>\n", o);
}

/* ---- summary ---- */

static void summary(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    const struct analysis *a = r->a;
    char b1[64], b2[64];
    fputs("<section id=\"summary\"><h2>Summary</h2>\n", o);
    if (t->truncated) {
        fputs("<p id=\"not-ended\" class=\"warn\">The program did not end normally (killed or "
              "crashed): the trace has no END record",
              o);
        if (t->cut_short) fputs(" and its last record is cut short", o);
        fputs(". The figures stop at its last flush.</p>\n", o);
    }
    fputs("<table class=\"kv\">\n<tr><th>Program</th><td id=\"program\">", o);
    if (t->info.present && t->info.nstrings > 1) {
        for (uint32_t i = 1; i < t->info.nstrings; i++) {
            if (i > 1) fputc(' ', o);
            esc(o, t->info.strings[i]);
        }
        if (t->info.nstrings > 0 && t->info.strings[0][0]) {
            fputs(" <span class=\"dim\">(", o);
            esc(o, t->info.strings[0]);
            fputs(")</span>", o);
        }
    } else {
        fputs("unknown (no INFO record)", o);
    }
    fputs("</td></tr>\n", o);
    if (t->nprograms) {
        fputs("<tr><th>Earlier programs</th><td id=\"earlier-programs\">The process ran ", o);
        for (size_t i = 0; i < t->nprograms; i++) {
            fputs(i ? ", then <code>" : "<code>", o);
            esc(o, t->programs[i]);
            fputs("</code>", o);
        }
        fputs(", each replaced by the next one (exec). This report is on the last.</td></tr>\n", o);
    }
    if (t->info.present) {
        time_t sec = (time_t)(t->info.start_real / 1000000000u);
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&sec, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        fprintf(o, "<tr><th>Process</th><td>pid %u (parent %u), started %s</td></tr>\n",
                t->info.pid, t->info.ppid, when);
    }
    fprintf(o, "<tr><th>Run time</th><td>%s%s</td></tr>\n",
            fmt_time(b1, sizeof b1, (double)a->run_time),
            t->end.present ? "" : " (up to the last record)");
    if (a->have_calls)
        fprintf(o, "<tr><th>Calls</th><td>%" PRIu64 " allocations, %" PRIu64 " frees</td></tr>\n",
                a->allocs, a->frees);
    else
        fputs("<tr><th>Calls</th><td>not recorded in this trace</td></tr>\n", o);
    if (a->peak_heap != AN_NONE)
        fprintf(o,
                "<tr><th>Peak in use</th><td id=\"peak\" data-v=\"%" PRIu64
                "\">%s at %s</td></tr>\n",
                a->peak_in_use, fmt_bytes(b1, sizeof b1, (double)a->peak_in_use),
                fmt_time(b2, sizeof b2, (double)a->peak_t));
    else if (a->peak_t != UINT64_MAX)
        fprintf(o,
                "<tr><th>Peak in use</th><td id=\"peak\" data-v=\"%" PRIu64
                "\">%s at %s (estimate from samples: no HEAP record)</td></tr>\n",
                a->peak_in_use, fmt_bytes(b1, sizeof b1, (double)a->peak_in_use),
                fmt_time(b2, sizeof b2, (double)a->peak_t));
    else
        fputs("<tr><th>Peak in use</th><td id=\"peak\">not recorded in this trace</td></tr>\n", o);
    if (a->peak_rss)
        fprintf(o, "<tr><th>Peak RSS</th><td>%s</td></tr>\n",
                fmt_bytes(b1, sizeof b1, (double)a->peak_rss));
    else
        fputs("<tr><th>Peak RSS</th><td>not recorded in this trace</td></tr>\n", o);
    fputs("<tr><th>Leaked at exit</th><td id=\"leaked\">", o);
    if (t->end.present)
        fprintf(o, "%s still in use at exit (exact); ",
                fmt_bytes(b1, sizeof b1, (double)t->end.in_use));
    fprintf(o, "%s in %" PRIu64 " sampled allocations never freed (estimate)</td></tr>\n",
            fmt_bytes(b2, sizeof b2, (double)a->leak_bytes), a->leak_samples);
    fprintf(o,
            "<tr><th>Temporary allocations</th><td>about %s (estimate from %" PRIu64
            " samples freed before their thread allocated again)",
            fmt_count(b1, sizeof b1, a->temp_calls), a->temp_samples);
    if (a->have_calls && a->allocs)
        fprintf(o, ", %.1f%% of the calls", 100.0 * a->temp_calls / (double)a->allocs);
    fputs("</td></tr>\n", o);
    if (t->info.present)
        fprintf(o,
                "<tr><th>Sampling interval</th><td>one allocation per %s allocated (%" PRIu64
                " samples, %zu of them recorded one by one, the others freed before the heap "
                "was next sampled and only counted; %zu stacks)</td></tr>\n",
                fmt_bytes(b1, sizeof b1, (double)t->info.sample_bytes), a->samples, t->nallocs,
                t->nstacks);
    fputs("</table>\n", o);
    if (t->unknown || t->malformed || t->orphan_frees || t->dup_stacks)
        fprintf(o,
                "<p class=\"dim\">Records skipped: %zu of unknown types, %zu too short for their "
                "fields; %zu FREE records with no sampled ALLOC, %zu repeated STACK ids.</p>\n",
                t->unknown, t->malformed, t->orphan_frees, t->dup_stacks);
    relatives(r);
    fputs("</section>\n", o);
}

/* ---- timeline ---- */

#define TL_W 1000
#define TL_H 300
#define TL_L 80
#define TL_B 40
#define TL_T 30

static void timeline(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    char b[64];
    fputs("<section id=\"timeline\"><h2>Memory over time</h2>\n", o);
    if (!t->nheaps) {
        not_recorded(o, "The heap's samples (HEAP records)");
        fputs("</section>\n", o);
        return;
    }
    fputs("<p>What the program holds (<b>in use</b>) against what it costs: the <b>resident "
          "set</b> and the heap's <b>mapped</b> memory; <b>free inside the heap</b> is the "
          "difference the allocator keeps.</p>\n",
          o);
    uint64_t tmax = r->a->run_time, ymax = 1;
    for (size_t i = 0; i < t->nheaps; i++) {
        const struct tr_heap *h = &t->heaps[i];
        if (h->t > tmax) tmax = h->t;
        uint64_t m = h->rss > h->heap_mapped ? h->rss : h->heap_mapped;
        if (h->in_use > m) m = h->in_use;
        if (m > ymax) ymax = m;
    }
    if (!tmax) tmax = 1;
    int W = TL_L + TL_W + 20, H = TL_T + TL_H + TL_B;
    fprintf(o,
            "<svg id=\"timeline-chart\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 "
            "%d %d\" role=\"img\">\n",
            W, H, W, H);
    /* axes and grid */
    for (int i = 0; i <= 5; i++) {
        double y = TL_T + TL_H - TL_H * i / 5.0;
        fprintf(o, "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/>", TL_L,
                TL_L + TL_W, y, y);
        fprintf(o, "<text class=\"yl\" x=\"%d\" y=\"%.1f\">%s</text>\n", TL_L - 6, y + 4,
                fmt_bytes(b, sizeof b, (double)ymax * i / 5));
        double x = TL_L + TL_W * i / 5.0;
        fprintf(o, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>", x, x,
                TL_T + TL_H, TL_T + TL_H + 5);
        fprintf(o, "<text class=\"xl\" x=\"%.1f\" y=\"%d\">%s</text>\n", x, TL_T + TL_H + 18,
                fmt_time(b, sizeof b, (double)tmax * i / 5));
    }
    fprintf(o, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", TL_L, TL_L + TL_W,
            TL_T + TL_H, TL_T + TL_H);
    fprintf(o, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>", TL_L, TL_L, TL_T,
            TL_T + TL_H);
    fprintf(o, "<text class=\"xl\" x=\"%d\" y=\"%d\">time since start</text>\n", TL_L + TL_W / 2,
            TL_T + TL_H + 34);
    /* the series: per pixel column, the highest value */
    static const struct {
        const char *name, *cls;
        size_t off;
    } series[] = {
        {"resident set (RSS)", "s-rss", offsetof(struct tr_heap, rss)},
        {"heap mapped", "s-mapped", offsetof(struct tr_heap, heap_mapped)},
        {"in use", "s-inuse", offsetof(struct tr_heap, in_use)},
        {"free inside the heap", "s-free", offsetof(struct tr_heap, heap_free)},
    };
    uint64_t *col = xcalloc(TL_W + 1, sizeof *col);
    char *has = xcalloc(TL_W + 1, 1);
    for (size_t s = 0; s < sizeof series / sizeof *series; s++) {
        memset(col, 0, (TL_W + 1) * sizeof *col);
        memset(has, 0, TL_W + 1);
        for (size_t i = 0; i < t->nheaps; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&t->heaps[i] + series[s].off, sizeof v);
            size_t x = (size_t)((double)t->heaps[i].t / (double)tmax * TL_W);
            if (x > TL_W) x = TL_W;
            if (!has[x] || v > col[x]) col[x] = v;
            has[x] = 1;
        }
        fprintf(o, "<polyline class=\"%s\" points=\"", series[s].cls);
        for (size_t x = 0; x <= TL_W; x++)
            if (has[x])
                fprintf(o, "%zu,%.1f ", TL_L + x,
                        TL_T + TL_H - (double)col[x] / (double)ymax * TL_H);
        fputs("\"/>\n", o);
    }
    free(col);
    free(has);
    if (r->a->peak_heap != AN_NONE) {
        double x = TL_L + (double)r->a->peak_t / (double)tmax * TL_W;
        fprintf(o, "<line class=\"peak\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\"/>", x, x, TL_T,
                TL_T + TL_H);
        fprintf(o, "<text class=\"pl\" x=\"%.1f\" y=\"%d\">peak %s</text>\n", x + 4, TL_T + 12,
                fmt_bytes(b, sizeof b, (double)r->a->peak_in_use));
    }
    /* legend */
    for (size_t s = 0; s < sizeof series / sizeof *series; s++) {
        int x = TL_L + 10 + (int)s * 200;
        fprintf(o,
                "<rect class=\"%s-key\" x=\"%d\" y=\"6\" width=\"14\" height=\"10\"/>"
                "<text x=\"%d\" y=\"15\">%s</text>\n",
                series[s].cls, x, x + 18, series[s].name);
    }
    fputs("</svg>\n", o);
    if (r->a->peak_heap != AN_NONE) {
        const struct tr_heap *h = &t->heaps[r->a->peak_heap];
        char b2[64], b3[64], b4[64];
        fprintf(
            o,
            "<p id=\"fragmentation\">At the peak: %s in use, %s resident, %s mapped by the heap, "
            "of which %s free. <b>Fragmentation %.1f%%</b> (free inside the heap / heap "
            "mapped, at the peak).</p>\n",
            fmt_bytes(b, sizeof b, (double)h->in_use), fmt_bytes(b2, sizeof b2, (double)h->rss),
            fmt_bytes(b3, sizeof b3, (double)h->heap_mapped),
            fmt_bytes(b4, sizeof b4, (double)h->heap_free),
            h->heap_mapped ? 100.0 * (double)h->heap_free / (double)h->heap_mapped : 0.0);
    }
    fputs("</section>\n", o);
}

/* ---- the call sites' tables ---- */

static const struct analysis *sort_an;
static int sort_key;
static double site_key(const struct an_site *s) {
    switch (sort_key) {
    case 0:
        return (double)s->peak_bytes;
    case 1:
        return (double)s->calls;
    case 2:
        return s->temp_calls;
    default:
        return (double)s->leak_bytes;
    }
}
static int site_idx_cmp(const void *x, const void *y) {
    double a = site_key(&sort_an->sites[*(const size_t *)x]);
    double b = site_key(&sort_an->sites[*(const size_t *)y]);
    return (a < b) - (a > b);
}

/* The sites with a non-zero KEY, the largest first; returns how many. */
static size_t top_sites(const struct analysis *a, int key, size_t *idx) {
    size_t n = 0;
    sort_an = a;
    sort_key = key;
    for (size_t i = 0; i < a->nsites; i++)
        if (site_key(&a->sites[i]) > 0) idx[n++] = i;
    qsort(idx, n, sizeof *idx, site_idx_cmp);
    return n;
}

static void table_head(FILE *o, const char *id, const char *const *cols, int ncols) {
    fprintf(o, "<table id=\"%s\" class=\"sortable\"><thead><tr>", id);
    for (int i = 0; i < ncols; i++) fprintf(o, "<th>%s</th>", cols[i]);
    fputs("</tr></thead><tbody>\n", o);
}

static void more_rows(FILE *o, size_t n) {
    if (n > TOP_ROWS) fprintf(o, "<p class=\"dim\">The top %d of %zu sites.</p>\n", TOP_ROWS, n);
}

static void site_tables(struct report *r) {
    FILE *o = r->o;
    const struct analysis *a = r->a;
    const struct trace *t = r->t;
    size_t *idx = xcalloc(a->nsites, sizeof *idx);
    size_t n;

    fputs("<section id=\"sites-peak\"><h2>Top call sites by memory at the peak</h2>\n", o);
    n = top_sites(a, 0, idx);
    if (!a->samples || a->peak_t == UINT64_MAX) {
        not_recorded(o, "Sampled allocations (ALLOC records) live at the peak");
    } else {
        fputs("<p>Sampled allocations live at the time of the peak, weighted (each sample stands "
              "for the bytes of its sampling interval), by the program's call into the "
              "allocator. Hover a site for a whole stack.</p>\n",
              o);
        static const char *const cols[] = {"Call site", "Bytes live at the peak (estimate)",
                                           "Samples", "Share (estimate)"};
        table_head(o, "table-peak", cols, 4);
        for (size_t i = 0; i < n && i < TOP_ROWS; i++) {
            const struct an_site *s = &a->sites[idx[i]];
            fputs("<tr>", o);
            site_cell(r, idx[i]);
            td_bytes(o, (double)s->peak_bytes);
            td_count(o, (double)s->peak_samples);
            fprintf(o, "<td data-v=\"%.3f\">%.1f%%</td></tr>\n",
                    100.0 * (double)s->peak_bytes / (double)(a->peak_live ? a->peak_live : 1),
                    100.0 * (double)s->peak_bytes / (double)(a->peak_live ? a->peak_live : 1));
        }
        fputs("</tbody></table>\n", o);
        more_rows(o, n);
    }
    fputs("</section>\n", o);

    fputs("<section id=\"sites-calls\"><h2>Top call sites by number of calls</h2>\n", o);
    n = top_sites(a, 1, idx);
    if (!t->sites.present) {
        not_recorded(o, "The calls per site (SITES records)");
    } else {
        fputs("<p>Exact counts, kept by the library for every call site.</p>\n", o);
        static const char *const cols[] = {"Call site", "Calls (exact)", "Bytes asked (exact)",
                                           "Average size (exact)"};
        table_head(o, "table-calls", cols, 4);
        for (size_t i = 0; i < n && i < TOP_ROWS; i++) {
            const struct an_site *s = &a->sites[idx[i]];
            fputs("<tr>", o);
            site_cell(r, idx[i]);
            td_count(o, (double)s->calls);
            td_bytes(o, (double)s->bytes);
            td_bytes(o, s->calls ? (double)s->bytes / (double)s->calls : 0);
            fputs("</tr>\n", o);
        }
        fputs("</tbody></table>\n", o);
        more_rows(o, n);
    }
    fputs("</section>\n", o);

    fputs("<section id=\"sites-temporary\"><h2>Top call sites by temporary allocations</h2>\n", o);
    n = top_sites(a, 2, idx);
    if (!t->nfrees) {
        not_recorded(o, "Frees of sampled allocations (FREE records)");
    } else {
        fputs("<p>A temporary allocation is freed before its thread allocates again. Estimated "
              "from the samples (each stands for its interval's bytes divided by its size).</p>\n",
              o);
        static const char *const cols[] = {"Call site", "Temporary calls (estimate)",
                                           "Temporary samples", "Share of calls (estimate)"};
        table_head(o, "table-temporary", cols, 4);
        for (size_t i = 0; i < n && i < TOP_ROWS; i++) {
            const struct an_site *s = &a->sites[idx[i]];
            fputs("<tr>", o);
            site_cell(r, idx[i]);
            td_count(o, s->temp_calls);
            td_count(o, (double)s->temp_samples);
            if (s->calls) {
                double share = 100.0 * s->temp_calls / (double)s->calls;
                fprintf(o, "<td data-v=\"%.3f\">%.1f%%</td>", share, share);
            } else {
                fputs("<td data-v=\"-1\">?</td>", o);
            }
            fputs("</tr>\n", o);
        }
        fputs("</tbody></table>\n", o);
        if (!n) fputs("<p>No temporary allocation among the samples.</p>\n", o);
        more_rows(o, n);
    }
    fputs("</section>\n", o);

    fputs("<section id=\"sites-leaks\"><h2>Leaks: call sites of memory never freed</h2>\n", o);
    n = top_sites(a, 3, idx);
    if (!a->samples) {
        not_recorded(o, "Sampled allocations (ALLOC records)");
    } else {
        fprintf(o, "<p>Sampled allocations not freed by the end of the trace%s, weighted.</p>\n",
                t->truncated ? " (the program did not end normally: some may have been freed "
                               "later)"
                             : "");
        static const char *const cols[] = {"Call site", "Bytes leaked (estimate)", "Samples"};
        table_head(o, "table-leaks", cols, 3);
        for (size_t i = 0; i < n && i < TOP_ROWS; i++) {
            const struct an_site *s = &a->sites[idx[i]];
            fputs("<tr>", o);
            site_cell(r, idx[i]);
            td_bytes(o, (double)s->leak_bytes);
            td_count(o, (double)s->leak_samples);
            fputs("</tr>\n", o);
        }
        fputs("</tbody></table>\n", o);
        if (!n) fputs("<p>No sampled allocation was left unfreed.</p>\n", o);
        more_rows(o, n);
    }
    fputs("</section>\n", o);
    free(idx);
}

/* ---- flame graph ---- */

struct fnode {
    uint32_t parent, label, first, next;
    uint64_t bytes;
};

struct flame {
    struct fnode *n;
    size_t nn, capn;
    const char **labels; /* interned: one pointer per distinct text */
    size_t nlabels, caplabels;
    uint32_t *lhash; /* label text -> index + 1 */
    size_t lcap;
    uint32_t *chash; /* (parent, label) -> node index + 1 */
    size_t ccap;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint32_t intern(struct flame *f, const char *s) {
    if (2 * (f->nlabels + 1) > f->lcap) {
        free(f->lhash);
        f->lcap = f->lcap ? 2 * f->lcap : 1024;
        f->lhash = xcalloc(f->lcap, sizeof *f->lhash);
        for (size_t i = 0; i < f->nlabels; i++) {
            size_t j = hash_str(f->labels[i]) & (f->lcap - 1);
            while (f->lhash[j]) j = (j + 1) & (f->lcap - 1);
            f->lhash[j] = (uint32_t)i + 1;
        }
    }
    size_t j = hash_str(s) & (f->lcap - 1);
    while (f->lhash[j]) {
        if (strcmp(f->labels[f->lhash[j] - 1], s) == 0) return f->lhash[j] - 1;
        j = (j + 1) & (f->lcap - 1);
    }
    if (f->nlabels == f->caplabels) {
        f->caplabels = f->caplabels ? 2 * f->caplabels : 1024;
        f->labels = realloc(f->labels, f->caplabels * sizeof *f->labels);
        if (!f->labels) abort();
    }
    f->labels[f->nlabels] = s;
    f->lhash[j] = (uint32_t)++f->nlabels;
    return (uint32_t)f->nlabels - 1;
}

static uint64_t child_hash(uint32_t parent, uint32_t label) {
    return mix((uint64_t)parent << 32 | label);
}

static uint32_t child(struct flame *f, uint32_t parent, uint32_t label) {
    if (2 * (f->nn + 1) > f->ccap) {
        free(f->chash);
        f->ccap = f->ccap ? 2 * f->ccap : 4096;
        f->chash = xcalloc(f->ccap, sizeof *f->chash);
        for (size_t i = 1; i < f->nn; i++) {
            size_t j = child_hash(f->n[i].parent, f->n[i].label) & (f->ccap - 1);
            while (f->chash[j]) j = (j + 1) & (f->ccap - 1);
            f->chash[j] = (uint32_t)i + 1;
        }
    }
    size_t j = child_hash(parent, label) & (f->ccap - 1);
    while (f->chash[j]) {
        const struct fnode *c = &f->n[f->chash[j] - 1];
        if (c->parent == parent && c->label == label) return f->chash[j] - 1;
        j = (j + 1) & (f->ccap - 1);
    }
    if (f->nn == f->capn) {
        f->capn = 2 * f->capn;
        f->n = realloc(f->n, f->capn * sizeof *f->n);
        if (!f->n) abort();
    }
    uint32_t id = (uint32_t)f->nn++;
    f->n[id] = (struct fnode){parent, label, 0, f->n[parent].first, 0};
    f->n[parent].first = id;
    f->chash[j] = id + 1;
    return id;
}

#define FL_W     1200
#define FL_ROW   18
#define FL_DEPTH 64

static const struct flame *sort_flame;
static int node_cmp(const void *x, const void *y) {
    uint64_t a = sort_flame->n[*(const uint32_t *)x].bytes,
             b = sort_flame->n[*(const uint32_t *)y].bytes;
    return (a < b) - (a > b);
}

static void flame_draw(struct report *r, struct flame *f, uint32_t id, double x, int depth,
                       double scale, int *maxdepth) {
    FILE *o = r->o;
    const struct fnode *nd = &f->n[id];
    double w = (double)nd->bytes * scale;
    if (w < 0.5) return;
    char b[64];
    const char *label = id ? f->labels[nd->label] : "all live memory at the peak";
    if (depth > *maxdepth) *maxdepth = depth;
    fmt_bytes(b, sizeof b, (double)nd->bytes);
    fprintf(o, "<g data-b=\"%s\"><title>", b);
    esc(o, label);
    fprintf(o,
            " — %s</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
            "style=\"fill:hsl(%u,70%%,%d%%)\"/>",
            b, x, depth * FL_ROW, w, FL_ROW - 1, id ? (unsigned)(hash_str(label) % 50) : 0u,
            id ? 60 + (int)(hash_str(label) >> 8) % 15 : 80);
    if (w > 40) {
        size_t maxc = (size_t)((w - 6) / 7);
        size_t len = strlen(label);
        char tbuf[512];
        if (len > maxc) {
            len = maxc > 2 ? maxc - 2 : 0;
            if (len > sizeof tbuf - 4) len = sizeof tbuf - 4;
            memcpy(tbuf, label, len);
            memcpy(tbuf + len, "..", 3);
        } else {
            snprintf(tbuf, sizeof tbuf, "%s", label);
        }
        fprintf(o, "<text x=\"%.2f\" y=\"%d\">", x + 3, depth * FL_ROW + 13);
        esc(o, tbuf);
        fputs("</text>", o);
    }
    fputs("</g>\n", o);
    if (depth + 1 >= FL_DEPTH) return;
    size_t nc = 0;
    for (uint32_t c = nd->first; c; c = f->n[c].next) nc++;
    if (!nc) return;
    uint32_t *kids = xcalloc(nc, sizeof *kids);
    nc = 0;
    for (uint32_t c = nd->first; c; c = f->n[c].next) kids[nc++] = c;
    sort_flame = f;
    qsort(kids, nc, sizeof *kids, node_cmp);
    double cx = x;
    for (size_t i = 0; i < nc; i++) {
        flame_draw(r, f, kids[i], cx, depth + 1, scale, maxdepth);
        cx += (double)f->n[kids[i]].bytes * scale;
    }
    free(kids);
}

static void flamegraph(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    fputs("<section id=\"flamegraph\"><h2>Memory live at the peak, by stack</h2>\n", o);
    if (!r->a->peak_live) {
        not_recorded(o, "Sampled allocations live at the peak");
        fputs("</section>\n", o);
        return;
    }
    fputs("<p>An icicle graph of the sampled allocations live at the peak (estimates): the "
          "outermost frame at the top, the call into the allocator at the bottom; a frame's "
          "width is its bytes. Hover a frame.</p>\n",
          o);
    struct flame f = {0};
    f.capn = 1024;
    f.n = xcalloc(f.capn, sizeof *f.n);
    f.nn = 1; /* node 0: the root */
    /* the live bytes of each stack, then each stack's frames once */
    uint64_t *by_stack = xcalloc(t->nstacks + 1, sizeof *by_stack), none = 0;
    for (size_t i = 0; i < t->nallocs; i++) {
        const struct tr_alloc *al = &t->allocs[i];
        if (!an_live_at_peak(t, r->a, al)) continue;
        const struct tr_stack *st = trace_stack(t, al->stack);
        if (st)
            by_stack[st - t->stacks] += al->weight;
        else
            none += al->weight;
    }
    f.n[0].bytes = none;
    if (none) f.n[child(&f, 0, intern(&f, "(no stack)"))].bytes += none;
    for (size_t i = 0; i < t->nstacks; i++) {
        if (!by_stack[i]) continue;
        const struct tr_stack *st = &t->stacks[i];
        uint32_t node = 0;
        f.n[0].bytes += by_stack[i];
        for (uint32_t k = st->depth; k-- > 0;) {
            node = child(&f, node, intern(&f, symbols_func(r->sy, st->frames[k])));
            f.n[node].bytes += by_stack[i];
        }
    }
    free(by_stack);
    fputs("<p id=\"flame-detail\" class=\"detail\">&nbsp;</p>\n", o);
    /* drawn into a group first: the height is known after */
    fprintf(o,
            "<svg id=\"flame-chart\" class=\"chart flame\" width=\"%d\" viewBox=\"0 0 %d "
            "%d\" height=\"%d\">\n",
            FL_W, FL_W, FL_DEPTH * FL_ROW, FL_DEPTH * FL_ROW);
    int maxdepth = 0;
    flame_draw(r, &f, 0, 0, 0, (double)FL_W / (double)f.n[0].bytes, &maxdepth);
    fputs("</svg>\n", o);
    fprintf(o,
            "<script>(function(){var s=document.getElementById('flame-chart');"
            "s.setAttribute('height',%d);s.setAttribute('viewBox','0 0 %d %d');})();</script>\n",
            (maxdepth + 1) * FL_ROW, FL_W, (maxdepth + 1) * FL_ROW);
    free(f.n);
    free(f.labels);
    free(f.lhash);
    free(f.chash);
    fputs("</section>\n", o);
}

/* ---- histograms ---- */

#define HI_W 1000
#define HI_H 180

/* Bars of VALUES[lo..hi], labelled LABELS[i]; FMT formats a value. */
static void hist_svg(FILE *o, const char *id, const char *title, const double *values,
                     char (*labels)[16], int lo, int hi,
                     const char *(*fmt)(char *, size_t, double)) {
    char b[64];
    double max = 0;
    for (int i = lo; i <= hi; i++)
        if (values[i] > max) max = values[i];
    if (max <= 0) max = 1;
    int n = hi - lo + 1, L = 70, T = 20, B = 36;
    double bw = (double)HI_W / n;
    fprintf(o,
            "<svg id=\"%s\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "role=\"img\"><text x=\"%d\" y=\"14\" class=\"ct\">%s</text>\n",
            id, L + HI_W + 10, T + HI_H + B, L + HI_W + 10, T + HI_H + B, L, title);
    for (int i = 0; i <= 4; i++) {
        double y = T + HI_H - HI_H * i / 4.0;
        fprintf(o,
                "<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\"/><text "
                "class=\"yl\" x=\"%d\" y=\"%.1f\">%s</text>\n",
                L, L + HI_W, y, y, L - 6, y + 4, fmt(b, sizeof b, max * i / 4));
    }
    int every = n > 40 ? 4 : n > 20 ? 2 : 1;
    for (int i = lo; i <= hi; i++) {
        double h = values[i] / max * HI_H, x = L + (i - lo) * bw;
        fprintf(o,
                "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\">"
                "<title>%s: %s</title></rect>",
                x + 1, T + HI_H - h, bw > 3 ? bw - 2 : bw, h, labels[i],
                fmt(b, sizeof b, values[i]));
        if ((i - lo) % every == 0)
            fprintf(o, "<text class=\"xl\" x=\"%.1f\" y=\"%d\">%s</text>", x + bw / 2,
                    T + HI_H + 14, labels[i]);
        fputc('\n', o);
    }
    fprintf(o, "<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/></svg>\n", L,
            L + HI_W, T + HI_H, T + HI_H);
}

static const char *fmt_bytes_v(char *b, size_t n, double v) {
    return fmt_bytes(b, n, v);
}
static const char *fmt_count_v(char *b, size_t n, double v) {
    return fmt_count(b, n, v);
}

static void histograms(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    static const char *const size_units[] = {"", "K", "M", "G", "T", "P", "E"};
    static const char *const time_units[] = {"ns", "µs", "ms", "s", "ks", "Ms", "Gs"};
    char labels[65][16];
    double v1[65], v2[65];

    fputs("<section id=\"sizes\"><h2>Request sizes</h2>\n", o);
    if (!t->sizes.present || !t->sizes.count) {
        not_recorded(o, "The histogram of request sizes (SIZES records)");
    } else {
        int lo = -1, hi = -1, n = t->sizes.count < 65 ? (int)t->sizes.count : 65;
        for (int i = 0; i < n; i++) {
            v1[i] = (double)t->sizes.v[i].calls;
            v2[i] = (double)t->sizes.v[i].bytes;
            fmt_pow2(labels[i], sizeof labels[i], i - 1, size_units);
            if (v1[i] > 0) {
                if (lo < 0) lo = i;
                hi = i;
            }
        }
        fputs("<p>Exact: every call, by the size asked, in powers of two (a bar labelled N "
              "holds sizes from N up to twice N; 0: requests of 0 bytes).</p>\n",
              o);
        if (lo < 0) {
            fputs("<p>No request.</p>\n", o);
        } else {
            hist_svg(o, "sizes-calls", "calls per size (exact)", v1, labels, lo, hi, fmt_count_v);
            hist_svg(o, "sizes-bytes", "bytes asked per size (exact)", v2, labels, lo, hi,
                     fmt_bytes_v);
        }
    }
    fputs("</section>\n", o);

    fputs("<section id=\"lifetimes\"><h2>Lifetimes</h2>\n", o);
    int lo = -1, hi = -1;
    for (int i = 0; i < 65; i++) {
        v1[i] = (double)r->a->lifetimes[i];
        fmt_pow2(labels[i], sizeof labels[i], i - 1, time_units);
        if (v1[i] > 0) {
            if (lo < 0) lo = i;
            hi = i;
        }
    }
    if (lo < 0) {
        not_recorded(o, "Sampled allocations freed (ALLOC and FREE records)");
    } else {
        fputs("<p>From allocation to free, of the sampled allocations that were freed "
              "(estimate: samples), in powers of two of time.</p>\n",
              o);
        hist_svg(o, "lifetimes-chart", "sampled allocations per lifetime", v1, labels, lo, hi,
                 fmt_count_v);
    }
    fputs("</section>\n", o);
}

/* ---- the allocator's view ---- */

static void classes(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    char b[64];
    fputs("<section id=\"classes\"><h2>Size classes at the peak</h2>\n", o);
    if (r->a->classes_at_peak == AN_NONE) {
        not_recorded(o, "The size classes (CLASSES records)");
        fputs("</section>\n", o);
        return;
    }
    const struct tr_classes *c = &t->classes[r->a->classes_at_peak];
    fprintf(o,
            "<p>The pages of each size class, as recorded at %s (the record nearest the "
            "peak); occupancy is the share of their slots the program holds.</p>\n",
            fmt_time(b, sizeof b, (double)c->t));
    static const char *const cols[] = {"Size",  "Page", "Pages",      "Memory",
                                       "Slots", "Used", "Free bytes", "Occupancy"};
    table_head(o, "table-classes", cols, 8);
    for (uint32_t i = 0; i < c->count; i++) {
        const struct tr_class *k = &c->v[i];
        if (!k->pages && !k->objects) continue;
        fputs("<tr>", o);
        td_bytes(o, k->size);
        td_bytes(o, k->page_bytes);
        td_count(o, (double)k->pages);
        td_bytes(o, (double)k->pages * k->page_bytes);
        td_count(o, (double)k->objects);
        td_count(o, (double)k->used);
        td_bytes(o, (double)(k->objects > k->used ? k->objects - k->used : 0) * k->size);
        double occ = k->objects ? 100.0 * (double)k->used / (double)k->objects : 0;
        fprintf(o,
                "<td data-v=\"%.3f\"><span class=\"occ\" style=\"width:%.0fpx\"></span> "
                "%.1f%%</td></tr>\n",
                occ, occ * 0.6, occ);
    }
    fputs("</tbody></table>\n</section>\n", o);
}

static void arenas(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    char b[64];
    fputs("<section id=\"arenas\"><h2>Arenas at the peak</h2>\n", o);
    if (r->a->arenas_at_peak == AN_NONE) {
        not_recorded(o, "Each arena's figures (ARENAS records)");
        fputs("</section>\n", o);
        return;
    }
    const struct tr_arenas *g = &t->arenas[r->a->arenas_at_peak];
    fprintf(o,
            "<p>Each arena's heap, as recorded at %s (the record nearest the peak): what of "
            "its regions is open, and the free memory inside it, in free chunks and in free "
            "slots of its size classes' pages; threads: the thread caches that take their "
            "pages from it.</p>\n",
            fmt_time(b, sizeof b, (double)g->t));
    static const char *const cols[] = {"Arena",         "Heap mapped", "Free in chunks",
                                       "Free in pages", "Free",        "Threads"};
    table_head(o, "table-arenas", cols, 6);
    for (uint32_t i = 0; i < g->count; i++) {
        const struct tr_arena *x = &g->v[i];
        fputs("<tr>", o);
        td_count(o, (double)i);
        td_bytes(o, (double)x->mapped);
        td_bytes(o, (double)x->free_chunks);
        td_bytes(o, (double)x->free_objects);
        td_bytes(o, (double)(x->free_chunks + x->free_objects));
        td_count(o, (double)x->threads);
        fputs("</tr>\n", o);
    }
    fputs("</tbody></table>\n</section>\n", o);
}

#define RG_W    1000
#define RG_ROW  16
#define RG_ROWS 300

static void regions(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    char b[64], b2[64];
    fputs("<section id=\"regions\"><h2>The heap's regions at the peak</h2>\n", o);
    if (r->a->regions_at_peak == AN_NONE) {
        not_recorded(o, "The map of the heap's regions (REGIONS records)");
        fputs("</section>\n", o);
        return;
    }
    const struct tr_regions *g = &t->regions[r->a->regions_at_peak];
    fprintf(o,
            "<p>Each region of the heap (a mapped block is one region) as a strip of its "
            "granules of %s, as recorded at %s: <span class=\"k-used\">in use</span>, "
            "<span class=\"k-free\">free and resident</span>, <span class=\"k-purged\">free "
            "and given back to the system</span>, <span class=\"k-none\">not yet reached"
            "</span>. Every strip has the same length, whatever its region's size.</p>\n",
            fmt_bytes(b, sizeof b, g->granule), fmt_time(b2, sizeof b2, (double)g->t));
    uint32_t rows = g->count < RG_ROWS ? g->count : RG_ROWS;
    int L = 200;
    fprintf(o,
            "<svg id=\"regions-chart\" class=\"chart\" width=\"%d\" height=\"%u\" viewBox=\"0 0 %d "
            "%u\">\n",
            L + RG_W + 10, rows * RG_ROW + 4, L + RG_W + 10, rows * RG_ROW + 4);
    for (uint32_t i = 0; i < rows; i++) {
        const struct tr_region *rg = &g->v[i];
        int y = (int)i * RG_ROW;
        fprintf(o, "<text class=\"rl\" x=\"%d\" y=\"%d\">0x%" PRIx64 " %s</text>", L - 6, y + 12,
                rg->base, fmt_bytes(b, sizeof b, (double)rg->ngranules * g->granule));
        uint32_t bins = rg->ngranules < RG_W ? rg->ngranules : RG_W;
        double bw = (double)RG_W / (bins ? bins : 1);
        unsigned prev = UINT32_MAX;
        double start = 0;
        for (uint32_t k = 0; k <= bins; k++) {
            unsigned rgb = UINT32_MAX;
            if (k < bins) {
                uint64_t g0 = (uint64_t)k * rg->ngranules / bins,
                         g1 = (uint64_t)(k + 1) * rg->ngranules / bins;
                double u = 0, fr = 0, p = 0;
                for (uint64_t j = g0; j < g1; j++) {
                    u += rg->g[3 * j];
                    fr += rg->g[3 * j + 1];
                    p += rg->g[3 * j + 2];
                }
                double nn = (double)(g1 - g0) * 255;
                u /= nn;
                fr /= nn;
                p /= nn;
                double rest = 1 - u - fr - p;
                if (rest < 0) rest = 0;
                /* in use #2f6fd0, free #f0a030, purged #9bd39b, not reached #e6e6e6 */
                double R = u * 0x2f + fr * 0xf0 + p * 0x9b + rest * 0xe6;
                double G = u * 0x6f + fr * 0xa0 + p * 0xd3 + rest * 0xe6;
                double B = u * 0xd0 + fr * 0x30 + p * 0x9b + rest * 0xe6;
                rgb = ((unsigned)R & 0xf8) << 16 | ((unsigned)G & 0xf8) << 8 | ((unsigned)B & 0xf8);
            }
            if (rgb != prev) {
                if (prev != UINT32_MAX)
                    fprintf(o,
                            "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                            "fill=\"#%06x\"/>",
                            L + start, y + 1, k * bw - start, RG_ROW - 3, prev);
                prev = rgb;
                start = k * bw;
            }
        }
        fputc('\n', o);
    }
    fputs("</svg>\n", o);
    if (g->count > rows)
        fprintf(o, "<p class=\"dim\">The first %u of %u regions.</p>\n", rows, g->count);
    if (r->a->peak_heap != AN_NONE) {
        const struct tr_heap *h = &t->heaps[r->a->peak_heap];
        fprintf(o,
                "<p>Fragmentation at the peak: <b id=\"fragmentation-value\">%.1f%%</b> (free "
                "inside the heap / heap mapped: %s of %s).</p>\n",
                h->heap_mapped ? 100.0 * (double)h->heap_free / (double)h->heap_mapped : 0.0,
                fmt_bytes(b, sizeof b, (double)h->heap_free),
                fmt_bytes(b2, sizeof b2, (double)h->heap_mapped));
    }
    fputs("</section>\n", o);
}

/* ---- the page ---- */

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:20px "
    "40px;color:#222;max-width:1300px}\n"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}\n"
    ".warn{background:#fde2e1;border:1px solid #d33;padding:6px 10px;font-weight:bold}\n"
    ".dim{color:#777}.none{color:#777;font-style:italic}\n"
    "table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 10px;text-align:right;"
    "border-bottom:1px solid #eee}\n"
    "table.kv th{text-align:left}table.kv td{text-align:left}\n"
    "td.site{text-align:left;font-family:monospace;max-width:700px;overflow-wrap:anywhere}\n"
    "table.sortable th{cursor:pointer;background:#f3f3f3;user-select:none}\n"
    "table.sortable th.asc::after{content:' \\25B2'}table.sortable "
    "th.desc::after{content:' \\25BC'}\n"
    "svg.chart{display:block;font:11px sans-serif;margin:8px 0}\n"
    ".grid{stroke:#eee}.axis{stroke:#444}.yl{text-anchor:end}.xl{text-anchor:middle}"
    ".rl{text-anchor:end;font-family:monospace}.ct{font-weight:bold}\n"
    "polyline{fill:none;stroke-width:1.5}.s-rss{stroke:#d62728}.s-mapped{stroke:#2ca02c}"
    ".s-inuse{stroke:#1f5fbf;stroke-width:2}.s-free{stroke:#ff9f1c}\n"
    ".s-rss-key{fill:#d62728}.s-mapped-key{fill:#2ca02c}.s-inuse-key{fill:#1f5fbf}"
    ".s-free-key{fill:#ff9f1c}\n"
    ".peak{stroke:#000;stroke-dasharray:4 3}.pl{font-weight:bold}\n"
    ".bar{fill:#4a7fd0}.bar:hover{fill:#1f3f80}\n"
    ".flame text{font:11px monospace;pointer-events:none}.flame g:hover rect{stroke:#000}\n"
    ".detail{font-family:monospace;min-height:1.4em}\n"
    "details{margin:8px 0}summary{cursor:pointer;font-weight:bold}\n"
    ".occ{display:inline-block;height:9px;background:#4a7fd0}\n"
    ".k-used,.k-free,.k-purged,.k-none{padding:0 4px}.k-used{background:#2f6fd0;color:#fff}"
    ".k-free{background:#f0a030}.k-purged{background:#9bd39b}.k-none{background:#e6e6e6}\n";

/* Sorts a table by the column clicked (numbers by data-v), and shows the
 * flame graph's frame under the pointer; marks the body data-ready="1"
 * once done (data-errors counts the script errors, from window.onerror).
 * With #selftest in the address it also sorts each table by its second
 * column both ways and checks the order (data-selftest="pass"), for
 * tests/integration/report.bats, which loads the page in a browser. */
static const char SCRIPT[] =
    "(function(){\n"
    "function key(td){var v=td.getAttribute('data-v');return v===null?td.textContent:"
    "parseFloat(v);}\n"
    "document.querySelectorAll('table.sortable').forEach(function(t){\n"
    " var ths=t.tHead.rows[0].cells;\n"
    " Array.prototype.forEach.call(ths,function(th,col){th.addEventListener('click',function(){\n"
    "  var desc=!th.classList.contains('desc');\n"
    "  Array.prototype.forEach.call(ths,function(h){h.classList.remove('asc','desc');});\n"
    "  th.classList.add(desc?'desc':'asc');\n"
    "  var rows=Array.prototype.slice.call(t.tBodies[0].rows);\n"
    "  rows.sort(function(a,b){var x=key(a.cells[col]),y=key(b.cells[col]);"
    "var c=x<y?-1:x>y?1:0;return desc?-c:c;});\n"
    "  rows.forEach(function(r){t.tBodies[0].appendChild(r);});\n"
    " });});\n"
    "});\n"
    "var fl=document.getElementById('flame-chart'),fd=document.getElementById('flame-detail');\n"
    "if(fl&&fd){fl.addEventListener('mouseover',function(e){var g=e.target.closest('g');"
    "if(g){fd.textContent=g.querySelector('title').textContent;}});}\n"
    "if(location.hash==='#selftest'){var bad=[];\n"
    " document.querySelectorAll('table.sortable').forEach(function(t){\n"
    "  var th=t.tHead.rows[0].cells[1];if(!th||t.tBodies[0].rows.length<2)return;\n"
    "  function col(){return Array.prototype.map.call(t.tBodies[0].rows,function(r){"
    "return key(r.cells[1]);});}\n"
    "  th.click();var v=col();for(var i=1;i<v.length;i++)if(v[i-1]<v[i])bad.push(t.id+' desc');\n"
    "  th.click();v=col();for(i=1;i<v.length;i++)if(v[i-1]>v[i])bad.push(t.id+' asc');\n"
    " });\n"
    " document.body.setAttribute('data-selftest',bad.length?'fail: '+bad.join(', '):'pass');}\n"
    "document.body.setAttribute('data-ready','1');\n"
    "})();\n";

static void page(struct report *r) {
    FILE *o = r->o;
    const struct trace *t = r->t;
    const char *prog = t->info.present && t->info.nstrings > 1   ? t->info.strings[1]
                       : t->info.present && t->info.nstrings > 0 ? t->info.strings[0]
                                                                 : "unknown program";
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>memalloc "
          "report: ",
          o);
    esc(o, prog);
    fprintf(o,
            "</title>\n<style>\n%s</style>\n</head>\n<body data-ready=\"0\" data-errors=\"0\">\n",
            STYLE);
    fputs("<script>window.onerror=function(m){var b=document.body;b.setAttribute('data-errors',"
          "String(+b.getAttribute('data-errors')+1));b.setAttribute('data-error',String(m));};"
          "</script>\n",
          o);
    fputs("<h1>memalloc report: ", o);
    esc(o, prog);
    fputs("</h1>\n", o);
    summary(r);
    timeline(r);
    site_tables(r);
    flamegraph(r);
    histograms(r);
    classes(r);
    arenas(r);
    regions(r);
    fprintf(o, "<script>\n%s</script>\n</body></html>\n", SCRIPT);
}

static const char USAGE[] =
    "usage: memalloc report TRACE [-o FILE.html]\n"
    "  writes one self-contained HTML page of the heap trace TRACE (memalloc run\n"
    "  --trace, or MEMALLOC_TRACE): TRACE.html beside it, or FILE.html (-o - :\n"
    "  standard output)\n";

/* A usage error: the usage on stderr, status 2. */
static int usage(void) {
    fputs(USAGE, stderr);
    return 2;
}

int report_main(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            if (++i >= argc) return usage();
            out = argv[i];
        } else if (strncmp(argv[i], "--output=", 9) == 0) {
            out = argv[i] + 9;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "memalloc report: unknown option %s\n", argv[i]);
            return usage();
        } else if (!in) {
            in = argv[i];
        } else {
            return usage();
        }
    }
    if (!in) return usage();

    struct trace t;
    char err[256];
    if (trace_read(in, &t, err, sizeof err) != 0) {
        fprintf(stderr, "memalloc report: %s: %s\n", in, err);
        return 1;
    }
    char *def = NULL;
    if (!out) {
        size_t n = strlen(in) + 6;
        def = xcalloc(n, 1);
        snprintf(def, n, "%s.html", in);
        out = def;
    }
    int to_stdout = strcmp(out, "-") == 0;
    FILE *o = to_stdout ? stdout : fopen(out, "w");
    if (!o) {
        fprintf(stderr, "memalloc report: %s: %s\n", out, strerror(errno));
        trace_free(&t);
        free(def);
        return 1;
    }
    static char obuf[1 << 16];
    setvbuf(o, obuf, _IOFBF, sizeof obuf);
    struct analysis a;
    analyze(&t, &a);
    struct report r = {o, &t, &a, symbols_new(&t), NULL, NULL, 0};
    find_relatives(&r, in);
    r.site_stack = xcalloc(a.nsites, sizeof *r.site_stack);
    for (size_t i = 0; i < t.nstacks; i++) {
        const struct tr_stack *st = &t.stacks[i];
        const struct an_site *s = an_site_of(&a, st->depth ? st->frames[0] : 0);
        size_t k = (size_t)(s - a.sites);
        if (!r.site_stack[k]) r.site_stack[k] = st->id;
    }
    page(&r);
    int bad = ferror(o);
    if (to_stdout)
        bad |= fflush(o) != 0;
    else
        bad |= fclose(o) != 0;
    int rc = 0;
    if (bad) {
        fprintf(stderr, "memalloc report: %s: cannot write it\n",
                to_stdout ? "standard output" : out);
        rc = 1;
    } else {
        FILE *s = to_stdout ? stderr : stdout;
        char b1[64], b2[64], b3[64];
        fprintf(s, "memalloc report: %s\n", to_stdout ? "written to standard output" : out);
        if (a.peak_t != UINT64_MAX)
            fprintf(s, "  peak in use %s at %s; peak RSS %s\n",
                    fmt_bytes(b1, sizeof b1, (double)a.peak_in_use),
                    fmt_time(b2, sizeof b2, (double)a.peak_t),
                    fmt_bytes(b3, sizeof b3, (double)a.peak_rss));
        if (t.nprograms)
            fprintf(s,
                    "  the process ran %zu program%s before this one (exec); the report is on "
                    "the last\n",
                    t.nprograms, t.nprograms == 1 ? "" : "s");
        if (t.end.present)
            fprintf(s, "  leaked at exit %s (exact); %s sampled, never freed (estimate)\n",
                    fmt_bytes(b1, sizeof b1, (double)t.end.in_use),
                    fmt_bytes(b2, sizeof b2, (double)a.leak_bytes));
        else
            fprintf(s,
                    "  the program did not end normally (killed or crashed); %s sampled, "
                    "not freed by the end of the trace (estimate)\n",
                    fmt_bytes(b2, sizeof b2, (double)a.leak_bytes));
        if (r.nrel)
            fprintf(s, "  %zu other process%s of this run, each with its trace (%s.PID)\n", r.nrel,
                    r.nrel == 1 ? "" : "es", in);
    }
    free(r.site_stack);
    free_relatives(&r);
    symbols_free(r.sy);
    analysis_free(&a);
    trace_free(&t);
    free(def);
    return rc;
}
