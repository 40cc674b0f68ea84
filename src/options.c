/*
 * options.c: the table of tunables and the parsing of MEMALLOC_* variables.
 * Sizes accept a decimal number with an optional k, m or g suffix (powers
 * of 1024). Nothing here allocates: the environment is read from environ.
 */
#include "options.h"

#include <errno.h>

#include "msg.h"
#include "os.h"

struct option_def {
    const char *env;
    size_t def, min, max;
};

/* What each does: options.h and README.md. */
static const struct option_def defs[OPT_COUNT] = {
    [OPT_MMAP_THRESHOLD] = {"MEMALLOC_MMAP_THRESHOLD", (size_t)4 << 20, 0, MMAP_THRESHOLD_MAX},
    [OPT_TRIM_THRESHOLD] = {"MEMALLOC_TRIM_THRESHOLD", 128 * 1024, 0, TRIM_THRESHOLD_MAX},
    [OPT_STATS] = {"MEMALLOC_STATS", 0, 0, STATS_TABLE},
    [OPT_TCACHE] = {"MEMALLOC_TCACHE", 1, 0, 1},
    [OPT_PURGE_DELAY] = {"MEMALLOC_PURGE_DELAY", 10, 0, 1000000},
    [OPT_HUGEPAGE] = {"MEMALLOC_HUGEPAGE_THRESHOLD", (size_t)4 << 20, 0, TRIM_THRESHOLD_MAX},
    [OPT_CHECK] = {"MEMALLOC_CHECK", 0, 0, 2},
    [OPT_CHECK_STACK] = {"MEMALLOC_CHECK_STACK", 1, 1, STACK_DEPTH_MAX},
    [OPT_CHECK_UNDER] = {"MEMALLOC_CHECK_UNDER", 0, 0, 1},
    [OPT_QUARANTINE] = {"MEMALLOC_CHECK_QUARANTINE", 0, 0, (size_t)1 << 40},
    [OPT_CHECK_LEAKS] = {"MEMALLOC_CHECK_LEAKS", 0, 0, 1},
    [OPT_SAMPLE] = {"MEMALLOC_SAMPLE", 0, 0, (size_t)1 << 30},
    [OPT_BACKGROUND] = {"MEMALLOC_BACKGROUND", 1, 0, 1},
    [OPT_TRACE_SAMPLE] = {"MEMALLOC_TRACE_SAMPLE", (size_t)512 << 10, 1, (size_t)1 << 40},
};

unsigned ma_options_fixed;
size_t ma_dyn_mmap;
int ma_check_ever;
int ma_check_gap;
int ma_tracing;

void options_raise_mmap_threshold(size_t size) {
    if (size > MMAP_THRESHOLD_MAX || opt_fixed(OPT_MMAP_THRESHOLD)) return;
    raise_relaxed(&ma_dyn_mmap, size);
}

size_t ma_options[OPT_COUNT] = {
    [OPT_MMAP_THRESHOLD] = (size_t)4 << 20,
    [OPT_TRIM_THRESHOLD] = 128 * 1024,
    [OPT_STATS] = 0,
    [OPT_TCACHE] = 1,
    [OPT_PURGE_DELAY] = 10,
    [OPT_HUGEPAGE] = (size_t)4 << 20,
    [OPT_CHECK_STACK] = 1,
    [OPT_BACKGROUND] = 1,
    [OPT_TRACE_SAMPLE] = (size_t)512 << 10,
};

/* Parse "123", "64k", "2M", "1g"; 0 on success, -1 if not a valid size. */
static int parse_size(const char *s, size_t *out) {
    size_t v = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        size_t d = (size_t)(*s - '0');
        if (v > (SIZE_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    unsigned shift = 0;
    switch (*s) {
    case 'k':
    case 'K':
        shift = 10;
        s++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        s++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        s++;
        break;
    default:
        break;
    }
    if (*s == 'b' || *s == 'B') s++;
    if (*s != '\0') return -1;
    if (shift && v > (SIZE_MAX >> shift)) return -1;
    *out = v << shift;
    return 0;
}

/* Values options take by name besides numbers. */
static const struct {
    enum ma_opt opt;
    const char *word;
    size_t value;
} words[] = {{OPT_STATS, "table", STATS_TABLE}};

/* The word option o takes, or NULL. */
static const char *word_of(enum ma_opt o, size_t *value) {
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        if (words[i].opt != o) continue;
        *value = words[i].value;
        return words[i].word;
    }
    return NULL;
}

/* Is s the word w (any case)? */
static int opt_word_is(const char *s, const char *w) {
    for (; *w; s++, w++)
        if ((*s | 0x20) != *w) return 0;
    return *s == '\0';
}

/* "memalloc: ignoring VAR=value: why[ word] (range min..max), using def" */
static void warn_bad(const struct option_def *d, const char *value, const char *why,
                     const char *word) {
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: ignoring ");
    msg_str(&m, d->env);
    msg_str(&m, "=");
    msg_str(&m, value);
    msg_str(&m, ": ");
    msg_str(&m, why);
    if (word) {
        msg_str(&m, " ");
        msg_str(&m, word);
    }
    msg_str(&m, " (range ");
    msg_dec(&m, d->min);
    msg_str(&m, "..");
    msg_dec(&m, d->max);
    msg_str(&m, "), using ");
    msg_dec(&m, d->def);
    msg_emit(&m);
}

void options_init(void) {
    for (int i = 0; i < OPT_COUNT; i++) {
        const struct option_def *d = &defs[i];
        const char *s = os_getenv(d->env);
        if (!s || !*s) continue;
        size_t v, named = 0;
        const char *word = word_of((enum ma_opt)i, &named);
        if (word && opt_word_is(s, word))
            options_set((enum ma_opt)i, named);
        else if (parse_size(s, &v) != 0)
            warn_bad(d, s, word ? "neither a number nor the word" : "not a size", word);
        else if (v < d->min || v > d->max)
            warn_bad(d, s, "out of range", NULL);
        else
            options_set((enum ma_opt)i, v);
    }
    const char *trace = os_getenv("MEMALLOC_TRACE");
    if (trace && *trace) {
        if (opt_get(OPT_CHECK)) {
            struct msg m = {.len = 0};
            msg_str(&m, "memalloc: MEMALLOC_TRACE is ignored while MEMALLOC_CHECK is on");
            msg_emit(&m);
        } else {
            store_relaxed(&ma_tracing, 1);
        }
    }
}

int options_set(enum ma_opt o, size_t value) {
    if ((unsigned)o >= OPT_COUNT) return EINVAL;
    if (value < defs[o].min || value > defs[o].max) return EINVAL;
    store_relaxed(&ma_options[o], value);
    or_relaxed(&ma_options_fixed, 1u << o);
    if (o == OPT_CHECK && value) store_relaxed(&ma_check_ever, 1);
    if (o == OPT_CHECK && !value && load_relaxed(&ma_check_ever)) store_relaxed(&ma_check_gap, 1);
    return 0;
}
