/* Naming return addresses from MAPS text and ELF symbol tables.
 *
 * An address A in a mapping [start, end) of FILE at file offset OFF is at
 * offset A - start + OFF of the file; the PT_LOAD segment holding that
 * offset turns it into the ELF virtual address (for a PIE or a shared
 * object as for a fixed-address executable). The symbols are the
 * functions of .symtab if the file has one, else of the separate debug
 * file named by its build id (/usr/lib/debug/.build-id/), else of .dynsym.
 * A return address is looked up one byte before it: a call that is the
 * last instruction of a function returns past its end. */
#define _GNU_SOURCE
#include "symbols.h"
#include "xalloc.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct sym {
    uint64_t value, size;
    const char *name; /* in the module's mapped string table */
    int rank;         /* among symbols at one address, the higher is shown */
};

struct segment {
    uint64_t offset, vaddr, filesz;
};

struct module {
    char *path;
    const char *base; /* the file's name, in path */
    int loaded;
    struct segment *segs;
    size_t nsegs;
    struct sym *syms;
    size_t nsyms;
    void *map[2]; /* the file, and its debug file */
    size_t maplen[2];
};

struct mapping {
    uint64_t start, end, offset;
    size_t module;
    size_t order; /* the MAPS record's place: a later one wins */
};

struct named {
    uint64_t ra; /* the key; 0 marks an empty slot (address 0 is not cached) */
    char *name, *func;
};

struct symbols {
    struct mapping *maps;
    size_t nmaps;
    struct module *mods;
    size_t nmods;
    struct named *cache;
    size_t ncache, capcache;
};

/* ---- ELF ---- */

static int sym_cmp(const void *a, const void *b) {
    const struct sym *x = a, *y = b;
    if (x->value != y->value) return x->value < y->value ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

static int rank_of(const Elf64_Sym *s, const char *name) {
    int bind = ELF64_ST_BIND(s->st_info);
    int r = bind == STB_GLOBAL ? 3000 : bind == STB_WEAK ? 2000 : 1000;
    if (name[0] != '_') r += 500;
    size_t n = strlen(name);
    r -= n < 400 ? (int)n : 400;
    return r;
}

/* The ELF header of a mapped file, if it is a 64-bit little-endian ELF
 * whose section and program headers lie inside it. */
static const Elf64_Ehdr *elf_header(const unsigned char *m, size_t len) {
    if (len < sizeof(Elf64_Ehdr) || memcmp(m, ELFMAG, SELFMAG) != 0) return NULL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
    if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB) return NULL;
    if (eh->e_phoff > len || (len - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) return NULL;
    if (eh->e_shoff > len || (len - eh->e_shoff) / sizeof(Elf64_Shdr) < eh->e_shnum) return NULL;
    return eh;
}

static void *map_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    void *m = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) m = NULL;
        *len = (size_t)st.st_size;
    }
    close(fd);
    return m;
}

/* Adds the functions of the section of type TYPE (SHT_SYMTAB, SHT_DYNSYM)
 * of the mapped ELF; returns how many. */
static size_t add_symbols(struct module *mod, const unsigned char *m, size_t len, uint32_t type) {
    const Elf64_Ehdr *eh = elf_header(m, len);
    if (!eh) return 0;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(m + eh->e_shoff);
    size_t added = 0;
    for (size_t i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != type || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *str = &sh[sh[i].sh_link];
        if (sh[i].sh_offset > len || len - sh[i].sh_offset < sh[i].sh_size) continue;
        if (str->sh_offset > len || len - str->sh_offset < str->sh_size || str->sh_size == 0)
            continue;
        const char *strtab = (const char *)m + str->sh_offset;
        if (strtab[str->sh_size - 1] != 0) continue;
        size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
        const Elf64_Sym *s = (const Elf64_Sym *)(m + sh[i].sh_offset);
        mod->syms = xrealloc(mod->syms, (mod->nsyms + n) * sizeof *mod->syms);
        for (size_t j = 0; j < n; j++) {
            int kind = ELF64_ST_TYPE(s[j].st_info);
            if (kind != STT_FUNC && kind != STT_GNU_IFUNC) continue;
            if (s[j].st_shndx == SHN_UNDEF || s[j].st_value == 0 || s[j].st_size == 0) continue;
            if (s[j].st_name >= str->sh_size) continue;
            const char *name = strtab + s[j].st_name;
            if (!*name) continue;
            mod->syms[mod->nsyms++] =
                (struct sym){s[j].st_value, s[j].st_size, name, rank_of(&s[j], name)};
            added++;
        }
    }
    return added;
}

/* The path of the debug file named by the build id note, in BUF. */
static int debug_path(const unsigned char *m, size_t len, char *buf, size_t buflen) {
    const Elf64_Ehdr *eh = elf_header(m, len);
    if (!eh) return -1;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(m + eh->e_phoff);
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_offset > len ||
            len - ph[i].p_offset < ph[i].p_filesz)
            continue;
        const unsigned char *p = m + ph[i].p_offset, *end = p + ph[i].p_filesz;
        while (end - p >= (long)sizeof(Elf64_Nhdr)) {
            Elf64_Nhdr nh;
            memcpy(&nh, p, sizeof nh);
            size_t namesz = (nh.n_namesz + 3) & ~3u, descsz = (nh.n_descsz + 3) & ~3u;
            const unsigned char *name = p + sizeof nh, *desc = name + namesz;
            if ((size_t)(end - name) < namesz || (size_t)(end - desc) < nh.n_descsz) break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh.n_descsz >= 2 && nh.n_descsz <= 64) {
                int n = snprintf(buf, buflen, "/usr/lib/debug/.build-id/%02x/", desc[0]);
                for (size_t k = 1; k < nh.n_descsz && n > 0 && (size_t)n + 3 < buflen; k++)
                    n += snprintf(buf + n, buflen - (size_t)n, "%02x", desc[k]);
                if (n > 0 && (size_t)n + 7 < buflen) {
                    memcpy(buf + n, ".debug", 7);
                    return 0;
                }
                return -1;
            }
            if ((size_t)(end - desc) < descsz) break;
            p = desc + descsz;
        }
    }
    return -1;
}

static void module_load(struct module *mod) {
    mod->loaded = 1;
    size_t len = 0;
    unsigned char *m = map_file(mod->path, &len);
    if (!m) return;
    const Elf64_Ehdr *eh = elf_header(m, len);
    if (!eh) {
        munmap(m, len);
        return;
    }
    mod->map[0] = m;
    mod->maplen[0] = len;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(m + eh->e_phoff);
    mod->segs = xmalloc(eh->e_phnum * sizeof *mod->segs);
    for (size_t i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD)
            mod->segs[mod->nsegs++] =
                (struct segment){ph[i].p_offset, ph[i].p_vaddr, ph[i].p_filesz};
    if (!add_symbols(mod, m, len, SHT_SYMTAB)) {
        char dbg[256];
        size_t dlen = 0;
        unsigned char *d = debug_path(m, len, dbg, sizeof dbg) == 0 ? map_file(dbg, &dlen) : NULL;
        if (d && add_symbols(mod, d, dlen, SHT_SYMTAB)) {
            mod->map[1] = d;
            mod->maplen[1] = dlen;
        } else {
            if (d) munmap(d, dlen);
            add_symbols(mod, m, len, SHT_DYNSYM);
        }
    }
    if (mod->nsyms) qsort(mod->syms, mod->nsyms, sizeof *mod->syms, sym_cmp);
    /* One symbol per address: the best ranked (sorted last among equals). */
    size_t k = 0;
    for (size_t i = 0; i < mod->nsyms; i++) {
        if (k && mod->syms[k - 1].value == mod->syms[i].value) k--;
        mod->syms[k++] = mod->syms[i];
    }
    mod->nsyms = k;
}

/* ---- mappings ---- */

static size_t module_of(struct symbols *s, const char *path) {
    for (size_t i = 0; i < s->nmods; i++)
        if (strcmp(s->mods[i].path, path) == 0) return i;
    s->mods = xrealloc(s->mods, (s->nmods + 1) * sizeof *s->mods);
    struct module *m = &s->mods[s->nmods];
    memset(m, 0, sizeof *m);
    m->path = xstrdup(path);
    const char *slash = strrchr(m->path, '/');
    m->base = slash ? slash + 1 : m->path;
    return s->nmods++;
}

static int mapping_cmp(const void *a, const void *b) {
    const struct mapping *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return (x->order < y->order) - (x->order > y->order); /* the later record first */
}

/* One line of /proc/PID/maps: "start-end perms offset dev inode   path". */
static void parse_line(struct symbols *s, const char *line, const char *eol, size_t order,
                       size_t *cap) {
    char buf[4096];
    size_t n = (size_t)(eol - line);
    if (n >= sizeof buf) return;
    memcpy(buf, line, n);
    buf[n] = 0;
    char *p = buf, *q;
    unsigned long long start = strtoull(p, &q, 16);
    if (q == p || *q != '-') return;
    p = q + 1;
    unsigned long long end = strtoull(p, &q, 16);
    if (q == p || *q != ' ') return;
    p = q + 1;
    while (*p && *p != ' ') p++; /* perms */
    unsigned long long off = strtoull(p, &q, 16);
    if (q == p) return;
    p = q;
    for (int field = 0; field < 2; field++) { /* dev, inode */
        while (*p == ' ') p++;
        while (*p && *p != ' ') p++;
    }
    while (*p == ' ') p++;
    if (*p != '/' || end <= start) return; /* [vdso], [heap], anonymous: no file */
    size_t plen = strlen(p);
    const char *del = " (deleted)";
    if (plen > strlen(del) && strcmp(p + plen - strlen(del), del) == 0) p[plen - strlen(del)] = 0;
    if (s->nmaps == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        s->maps = xrealloc(s->maps, *cap * sizeof *s->maps);
    }
    s->maps[s->nmaps++] = (struct mapping){start, end, off, module_of(s, p), order};
}

struct symbols *symbols_new(const struct trace *t) {
    struct symbols *s = xmalloc(sizeof *s);
    size_t cap = 0;
    for (size_t i = 0; i < t->nmaps; i++) {
        const char *p = t->maps[i].text;
        while (*p) {
            const char *eol = strchr(p, '\n');
            if (!eol) eol = p + strlen(p);
            parse_line(s, p, eol, i, &cap);
            p = *eol ? eol + 1 : eol;
        }
    }
    if (s->nmaps) qsort(s->maps, s->nmaps, sizeof *s->maps, mapping_cmp);
    /* No overlaps: a mapping that starts inside one kept before it is cut
     * to what lies past it (the later record came first among equal
     * starts). */
    size_t k = 0;
    for (size_t i = 0; i < s->nmaps; i++) {
        struct mapping m = s->maps[i];
        if (k && m.start < s->maps[k - 1].end) {
            if (m.end <= s->maps[k - 1].end) continue;
            m.offset += s->maps[k - 1].end - m.start;
            m.start = s->maps[k - 1].end;
        }
        s->maps[k++] = m;
    }
    s->nmaps = k;
    return s;
}

static const struct mapping *find_mapping(const struct symbols *s, uint64_t a) {
    size_t lo = 0, hi = s->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->maps[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return NULL;
    const struct mapping *m = &s->maps[lo - 1];
    return a < m->end ? m : NULL;
}

static const struct sym *find_sym(const struct module *mod, uint64_t vaddr) {
    size_t lo = 0, hi = mod->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (mod->syms[mid].value <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0) return NULL;
    const struct sym *sy = &mod->syms[lo - 1];
    return vaddr - sy->value < sy->size ? sy : NULL;
}

static void resolve(struct symbols *s, struct named *e) {
    uint64_t ra = e->ra;
    char buf[1024];
    const struct mapping *m = find_mapping(s, ra - 1);
    if (!m) {
        snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)ra);
        e->name = xstrdup(buf);
        e->func = xstrdup(buf);
        return;
    }
    struct module *mod = &s->mods[m->module];
    if (!mod->loaded) module_load(mod);
    uint64_t fileoff = ra - m->start + m->offset, addr = fileoff;
    for (size_t i = 0; i < mod->nsegs; i++) {
        const struct segment *g = &mod->segs[i];
        if (fileoff - 1 >= g->offset && fileoff - 1 - g->offset < g->filesz) {
            addr = fileoff - g->offset + g->vaddr;
            break;
        }
    }
    const struct sym *sy = find_sym(mod, addr - 1);
    if (sy) {
        snprintf(buf, sizeof buf, "%s+0x%llx (%s)", sy->name,
                 (unsigned long long)(addr - sy->value), mod->base);
        e->name = xstrdup(buf);
        snprintf(buf, sizeof buf, "%s (%s)", sy->name, mod->base);
        e->func = xstrdup(buf);
    } else {
        snprintf(buf, sizeof buf, "%s+0x%llx", mod->base, (unsigned long long)addr);
        e->name = xstrdup(buf);
        e->func = xstrdup(buf);
    }
}

static struct named *lookup(struct symbols *s, uint64_t ra) {
    if (2 * (s->ncache + 1) > s->capcache) {
        struct named *old = s->cache;
        size_t oldcap = s->capcache;
        s->capcache = oldcap ? 2 * oldcap : 4096;
        s->cache = xmalloc(s->capcache * sizeof *s->cache);
        for (size_t i = 0; i < oldcap; i++) {
            if (!old[i].ra) continue;
            size_t j = hash64(old[i].ra) & (s->capcache - 1);
            while (s->cache[j].ra) j = (j + 1) & (s->capcache - 1);
            s->cache[j] = old[i];
        }
        free(old);
    }
    size_t j = hash64(ra) & (s->capcache - 1);
    while (s->cache[j].ra && s->cache[j].ra != ra) j = (j + 1) & (s->capcache - 1);
    if (!s->cache[j].ra) {
        s->cache[j].ra = ra;
        resolve(s, &s->cache[j]);
        s->ncache++;
    }
    return &s->cache[j];
}

const char *symbols_name(struct symbols *s, uint64_t ra) {
    if (!ra) return "0x0";
    return lookup(s, ra)->name;
}

const char *symbols_func(struct symbols *s, uint64_t ra) {
    if (!ra) return "0x0";
    return lookup(s, ra)->func;
}

void symbols_free(struct symbols *s) {
    if (!s) return;
    for (size_t i = 0; i < s->capcache; i++) {
        free(s->cache[i].name);
        free(s->cache[i].func);
    }
    free(s->cache);
    for (size_t i = 0; i < s->nmods; i++) {
        struct module *m = &s->mods[i];
        for (int k = 0; k < 2; k++)
            if (m->map[k]) munmap(m->map[k], m->maplen[k]);
        free(m->segs);
        free(m->syms);
        free(m->path);
    }
    free(s->mods);
    free(s->maps);
    free(s);
}
