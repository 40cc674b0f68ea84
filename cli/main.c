/* The memalloc command: `memalloc run` starts a program on libmemalloc.so
 * (LD_PRELOAD and the MEMALLOC_* options in its environment), `memalloc
 * report` turns a trace into a page (cli/report.c). An ordinary program:
 * it runs on the system's allocator, not on memalloc. */
#define _GNU_SOURCE /* vasprintf, strchrnul, pipe2 */
#include "report.h"

#include <ctype.h>
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef MEMALLOC_VERSION
#define MEMALLOC_VERSION "unknown"
#endif
/* The library's directory relative to the command's as installed
 * (CMAKE_INSTALL_BINDIR to CMAKE_INSTALL_LIBDIR, from cli/CMakeLists.txt). */
#ifndef MEMALLOC_BIN_TO_LIB
#define MEMALLOC_BIN_TO_LIB "../lib"
#endif
#define LIB_NAME "libmemalloc.so"
/* In a build tree the command is build/cli/memalloc and the library
 * build/libmemalloc.so. */
#define BUILD_TO_LIB ".."

/* memalloc run's own exit statuses, beside the program's: those of env(1)
 * and timeout(1) for a command that failed, cannot be run or was not
 * found; 2 for bad arguments. */
enum {
    EXIT_USAGE = 2,
    EXIT_FAILED = 125,
    EXIT_CANNOT_RUN = 126,
    EXIT_NOT_FOUND = 127,
};

/* The kernel runs a script through at most 5 levels of #! (a script
 * whose interpreter is a script, and so on); a sixth fails with ELOOP. */
#define MAX_INTERP_DEPTH 5

/* ------------------------------------------------------------------ */
/* Help */

#define HELP_RUN_SYNOPSIS                                                                          \
    "    memalloc run [--stats[=table]] [--check=1|2] [--trace FILE [--sample BYTES]]\n"           \
    "                 [--] PROGRAM [ARG...]\n"

#define HELP_RUN_BODY                                                                              \
    "    Runs PROGRAM with its ARGs on libmemalloc.so: puts the library first in\n"                \
    "    LD_PRELOAD (entries already there are kept after it) and sets the MEMALLOC_*\n"           \
    "    variables the options ask for. PROGRAM's child processes inherit both.\n"                 \
    "    PROGRAM is looked up in PATH as a shell does. The options end at PROGRAM\n"               \
    "    (or at --): everything after it is PROGRAM's own.\n"                                      \
    "\n"                                                                                           \
    "    First it checks that the dynamic loader will preload the library into\n"                  \
    "    PROGRAM; if not, it says why and exits with status 126 without running it:\n"             \
    "    PROGRAM is statically linked (no loader, nothing is preloaded); it is setuid\n"           \
    "    or setgid to another user or group than ours, or has file capabilities (the\n"            \
    "    loader then runs in secure mode, which ignores an LD_PRELOAD with a '/'); it\n"           \
    "    is built for another word size or machine than the library. A #! script is\n"             \
    "    checked through its interpreter (and through NAME in '#!/usr/bin/env NAME'),\n"           \
    "    through as many levels of scripts as the kernel follows (5).\n"                           \
    "\n"                                                                                           \
    "    --stats        when the program exits, print memalloc's summary line on\n"                \
    "                   stderr (\"memalloc: allocs=... frees=... in_use=...\")\n"                  \
    "    --stats=table  the summary as a table\n"                                                  \
    "    --check=1      check mode 1: canaries after each block, junk-filled new\n"                \
    "                   blocks, freed blocks filled and held in quarantine; a heap\n"              \
    "                   bug stops the program with a report of it (SIGABRT)\n"                     \
    "    --check=2      check mode 2: mode 1 plus a guard page after each block and\n"             \
    "                   freed blocks made inaccessible while in quarantine, so that\n"             \
    "                   an overflow or a use after free faults where it happens\n"                 \
    "                   (SIGSEGV)\n"                                                               \
    "    --trace FILE   record a trace of the heap in FILE: FILE is removed first;\n"              \
    "                   a child process of the program writes FILE.PID. When the\n"                \
    "                   program ends, memalloc run says on stderr where the trace\n"               \
    "                   is and how to see it (memalloc report FILE).\n"                            \
    "    --sample BYTES with --trace: record an allocation with its stack about\n"                 \
    "                   once per BYTES bytes allocated (default 512k; 1: every\n"                  \
    "                   allocation); a k, m or g suffix multiplies by 1024, 1024^2,\n"             \
    "                   1024^3\n"                                                                  \
    "    -h, --help     this help\n"                                                               \
    "    --check N, --trace=FILE and --sample=BYTES are accepted too.\n"                           \
    "\n"                                                                                           \
    "    Without --trace, memalloc run becomes PROGRAM (exec): same process id, its\n"             \
    "    own signals and status. With --trace it starts PROGRAM, waits for it, then\n"             \
    "    exits with its status, or dies of the signal PROGRAM died of (without a\n"                \
    "    core file of its own), so that a shell sees the same status. Meanwhile it\n"              \
    "    passes on SIGHUP, SIGTERM, SIGUSR1 and SIGUSR2, and SIGINT and SIGQUIT\n"                 \
    "    when a process sent them (the terminal sends its own to PROGRAM too).\n"

#define HELP_REPORT_SYNOPSIS "    memalloc report TRACE [-o FILE.html]\n"

#define HELP_REPORT_BODY                                                                           \
    "    Reads TRACE, written by a program run with memalloc run --trace (or with\n"               \
    "    MEMALLOC_TRACE=FILE), and writes one self-contained HTML page of what the\n"              \
    "    heap did; -o FILE.html names the page.\n"

#define HELP_ENVIRONMENT                                                                           \
    "ENVIRONMENT\n"                                                                                \
    "    Set by memalloc run for PROGRAM:\n"                                                       \
    "    LD_PRELOAD             the library's absolute path, then the entries it had\n"            \
    "    MEMALLOC_STATS         1 (--stats) or table (--stats=table)\n"                            \
    "    MEMALLOC_CHECK         1 or 2 (--check)\n"                                                \
    "    MEMALLOC_TRACE         FILE's absolute path (--trace)\n"                                  \
    "    MEMALLOC_TRACE_SAMPLE  BYTES, in bytes (--sample)\n"                                      \
    "    Other MEMALLOC_* variables of the environment (the README's \"Environment\n"              \
    "    variables\") reach PROGRAM unchanged, as do those of the options not given.\n"            \
    "\n"                                                                                           \
    "    Read by memalloc run:\n"                                                                  \
    "    MEMALLOC_LIB           the library to preload, instead of the one next to\n"              \
    "                           memalloc (see FILES)\n"                                            \
    "    PATH                   where PROGRAM is looked up\n"

#define HELP_EXIT_STATUS                                                                           \
    "EXIT STATUS\n"                                                                                \
    "    memalloc run: PROGRAM's status, or PROGRAM's death by a signal; or\n"                     \
    "      2    bad arguments\n"                                                                   \
    "      125  memalloc run itself failed (library not found, FILE not removable)\n"              \
    "      126  PROGRAM was found but not run: not executable, or cannot be preloaded\n"           \
    "      127  PROGRAM (or its #! interpreter) was not found\n"                                   \
    "    memalloc --help, --version: 0; other bad arguments: 2.\n"

#define HELP_FILES                                                                                 \
    "FILES\n"                                                                                      \
    "    The library is found from memalloc's own path (/proc/self/exe): as\n"                     \
    "    installed, DIR/memalloc runs DIR/" MEMALLOC_BIN_TO_LIB "/" LIB_NAME ";\n"                 \
    "    in a build tree, build/cli/memalloc runs build/" LIB_NAME ".\n"

#define HELP_EXAMPLES                                                                              \
    "EXAMPLES\n"                                                                                   \
    "    memalloc run --stats sort big.txt\n"                                                      \
    "    memalloc run --check=1 ./prog --its-own-option\n"                                         \
    "    memalloc run --trace py.trace -- python3 script.py\n"                                     \
    "    memalloc report py.trace -o py.html\n"                                                    \
    "    LD_PRELOAD=libfoo.so memalloc run ./prog    (both are preloaded, memalloc first)\n"

static const char help_main[] =
    "NAME\n"
    "    memalloc - run programs on the memalloc heap, and see their heap traces\n"
    "\n"
    "SYNOPSIS\n" HELP_RUN_SYNOPSIS HELP_REPORT_SYNOPSIS "    memalloc help [COMMAND]\n"
    "    memalloc COMMAND --help\n"
    "    memalloc --help | --version\n"
    "\n"
    "DESCRIPTION\n"
    "    memalloc is a drop-in C heap: LD_PRELOAD=libmemalloc.so makes a dynamically\n"
    "    linked program's malloc, free, new, delete and their kin memalloc's. This\n"
    "    command does that for you.\n"
    "\n"
    "memalloc run\n" HELP_RUN_BODY "\n"
    "memalloc report\n" HELP_REPORT_BODY "\n" HELP_ENVIRONMENT "\n" HELP_FILES "\n" HELP_EXIT_STATUS
    "\n" HELP_EXAMPLES;

static const char help_run[] = "NAME\n"
                               "    memalloc run - run a program on the memalloc heap\n"
                               "\n"
                               "SYNOPSIS\n" HELP_RUN_SYNOPSIS "\n"
                               "DESCRIPTION\n" HELP_RUN_BODY "\n" HELP_ENVIRONMENT "\n" HELP_FILES
                               "\n" HELP_EXIT_STATUS "\n" HELP_EXAMPLES;

static const char help_report[] = "NAME\n"
                                  "    memalloc report - an HTML page from a heap trace\n"
                                  "\n"
                                  "SYNOPSIS\n" HELP_REPORT_SYNOPSIS "\n"
                                  "DESCRIPTION\n" HELP_REPORT_BODY;

static const char help_help[] = "NAME\n"
                                "    memalloc help - the help of memalloc or of one command\n"
                                "\n"
                                "SYNOPSIS\n"
                                "    memalloc help [run|report|help]\n";

/* A one-line error about the arguments; returns the status for it. */
static int usage_error(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(const char *who, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", who);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; see memalloc --help\n");
    return EXIT_USAGE;
}

/* An error of memalloc run's, on one line. */
static void run_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void run_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "memalloc run: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int help_main_cmd(int argc, char **argv) {
    if (argc < 2) {
        fputs(help_main, stdout);
        return 0;
    }
    if (argc > 2) return usage_error("memalloc help", "one COMMAND at most, not '%s'", argv[2]);
    if (strcmp(argv[1], "run") == 0)
        fputs(help_run, stdout);
    else if (strcmp(argv[1], "report") == 0)
        fputs(help_report, stdout);
    else if (strcmp(argv[1], "help") == 0)
        fputs(help_help, stdout);
    else
        return usage_error("memalloc help", "unknown command '%s'", argv[1]);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Paths */

/* A string made with printf's format, or NULL when out of memory. */
static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *str_printf(const char *fmt, ...) {
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* PATH's absolute form: its directory resolved (realpath), its last
 * component kept as it is. The file need not exist (a trace FILE), and a
 * symbolic link stays one: LD_PRELOAD names libmemalloc.so, not the
 * versioned file the install rule points it at. NULL with errno set when
 * the directory cannot be resolved. */
static char *absolute_path(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    const char *base = slash ? slash + 1 : path;
    if (!dir) return NULL;
    char *real = realpath(dir, NULL);
    int saved = errno;
    free(dir);
    if (!real) {
        errno = saved;
        return NULL;
    }
    char *abs = str_printf("%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", base);
    free(real);
    return abs;
}

/* The directory of this program's file, from /proc/self/exe. */
static char *own_dir(void) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash) return NULL;
    *slash = '\0';
    return strdup(buf[0] ? buf : "/");
}

static bool is_regular_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The library to preload, as an absolute path: $MEMALLOC_LIB, else the
 * library next to this program as installed, else as built. NULL after
 * saying why on stderr. */
static char *find_library(void) {
    const char *env = getenv("MEMALLOC_LIB");
    if (env && env[0]) {
        if (!is_regular_file(env)) {
            run_error("MEMALLOC_LIB=%s: %s", env,
                      access(env, F_OK) == 0 ? "not a regular file" : strerror(errno));
            return NULL;
        }
        char *abs = absolute_path(env);
        if (!abs) run_error("MEMALLOC_LIB=%s: %s", env, strerror(errno));
        return abs;
    }
    char *dir = own_dir();
    if (!dir) {
        run_error("cannot find my own path in /proc/self/exe (%s); set MEMALLOC_LIB to the "
                  "path of " LIB_NAME,
                  strerror(errno));
        return NULL;
    }
    const char *rel[] = {MEMALLOC_BIN_TO_LIB[0] ? MEMALLOC_BIN_TO_LIB : ".", BUILD_TO_LIB};
    char *tried[2] = {NULL, NULL};
    char *found = NULL;
    for (int i = 0; i < 2 && !found; i++) {
        tried[i] = str_printf("%s/%s/" LIB_NAME, dir, rel[i]);
        if (tried[i] && is_regular_file(tried[i])) found = absolute_path(tried[i]);
    }
    if (!found)
        run_error(LIB_NAME " not found: not at %s nor at %s; set MEMALLOC_LIB to its path",
                  tried[0] ? tried[0] : "?", tried[1] ? tried[1] : "?");
    free(tried[0]);
    free(tried[1]);
    free(dir);
    return found;
}

/* The file that PATH names for execv, found the way execvp and shells do:
 * NAME with a '/' as it is, else the first executable regular file NAME
 * in the directories of $PATH. NULL after saying why, *status the exit
 * status (127 not found, 126 found but not executable). */
static char *find_program(const char *name, int *status) {
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) != 0) {
            *status = errno == ENOENT || errno == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
            run_error("%s: %s", name, strerror(errno));
            return NULL;
        }
        if (S_ISDIR(st.st_mode) || access(name, X_OK) != 0) {
            *status = EXIT_CANNOT_RUN;
            run_error("%s: %s", name, S_ISDIR(st.st_mode) ? "Is a directory" : strerror(errno));
            return NULL;
        }
        char *copy = strdup(name);
        if (!copy) {
            *status = EXIT_FAILED;
            run_error("out of memory");
        }
        return copy;
    }
    const char *path = getenv("PATH");
    if (!path) path = "/bin:/usr/bin"; /* execvp's default */
    bool denied = false;
    if (name[0]) {
        for (const char *p = path;; p++) {
            const char *end = strchrnul(p, ':');
            int len = (int)(end - p);
            char *file = len ? str_printf("%.*s/%s", len, p, name) : str_printf("./%s", name);
            if (!file) {
                *status = EXIT_FAILED;
                run_error("out of memory");
                return NULL;
            }
            if (stat(file, &st) == 0) {
                if (S_ISREG(st.st_mode) && access(file, X_OK) == 0) return file;
                denied = true;
            }
            free(file);
            if (!*end) break;
            p = end;
        }
    }
    if (denied) {
        *status = EXIT_CANNOT_RUN;
        run_error("%s: %s", name, strerror(EACCES));
    } else {
        *status = EXIT_NOT_FOUND;
        run_error("%s: command not found", name);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* ELF files: what the loader will do with them */

struct elf_info {
    unsigned char class; /* ELFCLASS32 or ELFCLASS64 */
    unsigned char data;  /* ELFDATA2LSB or ELFDATA2MSB */
    uint16_t type;       /* ET_EXEC, ET_DYN, ... */
    uint16_t machine;    /* EM_X86_64, ... */
    bool interp;         /* a PT_INTERP program header: dynamically linked */
};

static uint16_t get16(const unsigned char *p, unsigned char data) {
    return data == ELFDATA2MSB ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t get32(const unsigned char *p, unsigned char data) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[data == ELFDATA2MSB ? 3 - i : i] << (8 * i);
    return v;
}

static uint64_t get64(const unsigned char *p, unsigned char data) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[data == ELFDATA2MSB ? 7 - i : i] << (8 * i);
    return v;
}

/* Reads the ELF header and program headers of the open file FD (whose
 * first N bytes are HEAD, which start with ELFMAG). Returns NULL, or what
 * is wrong with the file. The fields are read at their offsets in
 * Elf32_Ehdr/Elf64_Ehdr and Elf32_Phdr/Elf64_Phdr, in the file's byte
 * order. */
static const char *read_elf(int fd, const unsigned char *head, size_t n, struct elf_info *out) {
    if (n < EI_NIDENT) return "a truncated ELF file";
    out->class = head[EI_CLASS];
    out->data = head[EI_DATA];
    if ((out->class != ELFCLASS32 && out->class != ELFCLASS64) ||
        (out->data != ELFDATA2LSB && out->data != ELFDATA2MSB))
        return "an ELF file of an unknown class or byte order";
    bool is64 = out->class == ELFCLASS64;
    size_t ehsize = is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
    if (n < ehsize) return "a truncated ELF file";
    unsigned char d = out->data;
    uint64_t phoff, shoff;
    unsigned phentsize, phnum;
    if (is64) {
        out->type = get16(head + offsetof(Elf64_Ehdr, e_type), d);
        out->machine = get16(head + offsetof(Elf64_Ehdr, e_machine), d);
        phoff = get64(head + offsetof(Elf64_Ehdr, e_phoff), d);
        shoff = get64(head + offsetof(Elf64_Ehdr, e_shoff), d);
        phentsize = get16(head + offsetof(Elf64_Ehdr, e_phentsize), d);
        phnum = get16(head + offsetof(Elf64_Ehdr, e_phnum), d);
    } else {
        out->type = get16(head + offsetof(Elf32_Ehdr, e_type), d);
        out->machine = get16(head + offsetof(Elf32_Ehdr, e_machine), d);
        phoff = get32(head + offsetof(Elf32_Ehdr, e_phoff), d);
        shoff = get32(head + offsetof(Elf32_Ehdr, e_shoff), d);
        phentsize = get16(head + offsetof(Elf32_Ehdr, e_phentsize), d);
        phnum = get16(head + offsetof(Elf32_Ehdr, e_phnum), d);
    }
    out->interp = false;
    if (out->type != ET_EXEC && out->type != ET_DYN)
        return NULL; /* not a program: the caller says so */
    if (phnum == PN_XNUM) {
        /* More program headers than e_phnum holds: the count is in the
         * first section header's sh_info. */
        unsigned char sh[sizeof(Elf64_Shdr)];
        size_t shsize = is64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
        if (pread(fd, sh, shsize, (off_t)shoff) != (ssize_t)shsize) return "a truncated ELF file";
        phnum =
            get32(sh + (is64 ? offsetof(Elf64_Shdr, sh_info) : offsetof(Elf32_Shdr, sh_info)), d);
    }
    size_t phsize = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
    if (phnum == 0) return NULL;
    if (phentsize < phsize || phnum > 1u << 20) return "an ELF file with malformed program headers";
    unsigned char *ph = malloc((size_t)phnum * phentsize);
    if (!ph) return "too large an ELF file to read";
    ssize_t got = pread(fd, ph, (size_t)phnum * phentsize, (off_t)phoff);
    if (got != (ssize_t)((size_t)phnum * phentsize)) {
        free(ph);
        return "a truncated ELF file";
    }
    for (unsigned i = 0; i < phnum; i++) {
        const unsigned char *p = ph + (size_t)i * phentsize;
        if (get32(p + (is64 ? offsetof(Elf64_Phdr, p_type) : offsetof(Elf32_Phdr, p_type)), d) ==
            PT_INTERP)
            out->interp = true;
    }
    free(ph);
    return NULL;
}

/* The library's class, byte order and machine, which a program's must
 * match for the loader to preload it. false after saying why. */
static bool read_library(const char *lib, struct elf_info *out) {
    unsigned char head[sizeof(Elf64_Ehdr)];
    int fd = open(lib, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        run_error("%s: %s", lib, strerror(errno));
        return false;
    }
    ssize_t n = pread(fd, head, sizeof head, 0);
    const char *bad = "not an ELF file";
    if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
        bad = read_elf(fd, head, (size_t)n, out);
    close(fd);
    if (!bad && out->type != ET_DYN) bad = "not a shared library";
    if (bad) {
        run_error("%s is %s: it cannot be preloaded", lib, bad);
        return false;
    }
    return true;
}

static const char *user_name(uid_t uid, char *buf, size_t size) {
    struct passwd *pw = getpwuid(uid);
    if (pw) return pw->pw_name;
    snprintf(buf, size, "%u", (unsigned)uid);
    return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t size) {
    struct group *gr = getgrgid(gid);
    if (gr) return gr->gr_name;
    snprintf(buf, size, "%u", (unsigned)gid);
    return buf;
}

/* Whether the loader runs PATH (an ELF program with status ST) in secure
 * mode (AT_SECURE), where it ignores LD_PRELOAD entries with a '/'. The
 * kernel sets AT_SECURE when the exec leaves the effective user or group
 * id different from the real one (a set-user-ID or set-group-ID file
 * applies its owner or group, unless the file system is mounted nosuid or
 * the process has no_new_privs), or when a process whose real user is not
 * root gains file capabilities. false, or true after saying why, naming the
 * program WHAT. */
static bool secure_mode(const char *path, const struct stat *st, const char *what) {
    struct statvfs vfs;
    bool nosuid = statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);
    bool nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
    bool applies = !nosuid && !nnp;
    uid_t euid = geteuid();
    gid_t egid = getegid();
    bool setuid = applies && (st->st_mode & S_ISUID) && st->st_uid != euid;
    bool setgid =
        applies && (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && st->st_gid != egid;
    uid_t new_euid = setuid ? st->st_uid : euid;
    gid_t new_egid = setgid ? st->st_gid : egid;
    char buf[32];
    const char *why = "the loader runs it in secure mode, which ignores LD_PRELOAD with a path";
    if (setuid && new_euid != getuid()) {
        run_error("%s is setuid to user %s: %s", what, user_name(st->st_uid, buf, sizeof buf), why);
        return true;
    }
    if (setgid && new_egid != getgid()) {
        run_error("%s is setgid to group %s: %s", what, group_name(st->st_gid, buf, sizeof buf),
                  why);
        return true;
    }
    if (new_euid != getuid() || new_egid != getgid()) {
        run_error("memalloc runs with a real user or group id other than its effective one, "
                  "and so would %s: %s",
                  what, why);
        return true;
    }
    if (applies && getuid() != 0 && getxattr(path, "security.capability", NULL, 0) > 0) {
        run_error("%s has file capabilities: %s", what, why);
        return true;
    }
    return false;
}

/* Checks that the loader will preload LIB into the program PATH (or, for
 * a #! script, into its interpreter, DEPTH levels down), naming it WHAT in
 * messages. Returns 0, or an exit status after saying why not. A program
 * that cannot be read (mode --x) is run unchecked, with a warning. */
static int check_program(const char *path, const char *what, const struct elf_info *lib,
                         const char *lib_path, int depth);

/* Checks the interpreter INTERP of the script WHAT (its argument ARG, or
 * NULL): the program the kernel runs, and for /usr/bin/env the program
 * env runs. */
static int check_interpreter(const char *what, const char *interp, const char *arg,
                             const struct elf_info *lib, const char *lib_path, int depth) {
    char *iwhat = str_printf("%s's interpreter %s", what, interp);
    if (!iwhat) {
        run_error("out of memory");
        return EXIT_FAILED;
    }
    int status = 0;
    struct stat st;
    if (depth >= MAX_INTERP_DEPTH) {
        run_error("%s: too many levels of #! interpreters", what);
        status = EXIT_CANNOT_RUN;
    } else if (stat(interp, &st) != 0) {
        run_error("%s: bad interpreter %s: %s", what, interp, strerror(errno));
        status = errno == ENOENT || errno == ENOTDIR ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
    } else if (!S_ISREG(st.st_mode) || access(interp, X_OK) != 0) {
        run_error("%s: bad interpreter %s: %s", what, interp,
                  S_ISREG(st.st_mode) ? strerror(errno) : "not a regular file");
        status = EXIT_CANNOT_RUN;
    } else {
        status = check_program(interp, iwhat, lib, lib_path, depth + 1);
    }
    /* `#!/usr/bin/env NAME`: env runs NAME from PATH, which must be
     * preloadable too (env's options, as in `env -S`, are left alone). */
    const char *base = strrchr(interp, '/');
    base = base ? base + 1 : interp;
    if (status == 0 && strcmp(base, "env") == 0 && arg && arg[0] && arg[0] != '-' &&
        !strpbrk(arg, " \t=")) {
        int found_status;
        char *prog = find_program(arg, &found_status);
        if (!prog) {
            status = found_status;
        } else {
            char *ewhat = str_printf("%s's interpreter %s (from env)", what, prog);
            status = ewhat ? check_program(prog, ewhat, lib, lib_path, depth + 1) : EXIT_FAILED;
            free(ewhat);
            free(prog);
        }
    }
    free(iwhat);
    return status;
}

static const char *bits(unsigned char class) {
    return class == ELFCLASS64 ? "64-bit" : "32-bit";
}

static int check_program(const char *path, const char *what, const struct elf_info *lib,
                         const char *lib_path, int depth) {
    /* The kernel reads the first 256 bytes (BINPRM_BUF_SIZE): the ELF
     * header, or the #! line. */
    unsigned char head[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr,
                "memalloc run: warning: cannot read %s (%s) to check that the library can be "
                "preloaded into it; running it anyway\n",
                what, strerror(errno));
        return 0;
    }
    struct stat st;
    ssize_t n = pread(fd, head, sizeof head - 1, 0);
    if (n < 0 || fstat(fd, &st) != 0) {
        run_error("%s: %s", what, strerror(errno));
        close(fd);
        return EXIT_CANNOT_RUN;
    }
    head[n] = '\0';

    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        close(fd);
        /* The kernel's parse: the interpreter is the first word after
         * "#!", the rest of the line (trimmed) its one argument. */
        char *line = (char *)head + 2;
        line[strcspn(line, "\n")] = '\0';
        while (*line == ' ' || *line == '\t') line++;
        char *interp = line;
        line += strcspn(line, " \t");
        char *arg = NULL;
        if (*line) {
            *line++ = '\0';
            while (*line == ' ' || *line == '\t') line++;
            char *end = line + strlen(line);
            while (end > line && (end[-1] == ' ' || end[-1] == '\t')) *--end = '\0';
            arg = *line ? line : NULL;
        }
        if (!*interp) {
            run_error("%s: its #! line names no interpreter", what);
            return EXIT_CANNOT_RUN;
        }
        return check_interpreter(what, interp, arg, lib, lib_path, depth);
    }
    if (n < SELFMAG || memcmp(head, ELFMAG, SELFMAG) != 0) {
        /* Neither ELF nor #!: execve fails with ENOEXEC, and then (as
         * execvp and shells do) /bin/sh runs the file. */
        close(fd);
        return check_interpreter(what, "/bin/sh", NULL, lib, lib_path, depth);
    }

    struct elf_info elf;
    const char *bad = read_elf(fd, head, (size_t)n, &elf);
    close(fd);
    if (bad) {
        run_error("%s is %s", what, bad);
        return EXIT_CANNOT_RUN;
    }
    if (elf.type != ET_EXEC && elf.type != ET_DYN) {
        run_error("%s is an ELF file but not a program (ELF type %u)", what, elf.type);
        return EXIT_CANNOT_RUN;
    }
    if (!elf.interp) {
        run_error("%s is statically linked: LD_PRELOAD cannot replace its allocator", what);
        return EXIT_CANNOT_RUN;
    }
    if (elf.class != lib->class) {
        run_error("%s is a %s program and %s a %s library: the loader cannot preload it", what,
                  bits(elf.class), lib_path, bits(lib->class));
        return EXIT_CANNOT_RUN;
    }
    if (elf.data != lib->data || elf.machine != lib->machine) {
        run_error("%s is built for another machine (ELF machine %u) than %s (ELF machine %u): "
                  "the loader cannot preload it",
                  what, elf.machine, lib_path, lib->machine);
        return EXIT_CANNOT_RUN;
    }
    if (secure_mode(path, &st, what)) return EXIT_CANNOT_RUN;
    return 0;
}

/* ------------------------------------------------------------------ */
/* memalloc run */

struct run_options {
    const char *stats;  /* MEMALLOC_STATS, or NULL */
    const char *check;  /* MEMALLOC_CHECK, or NULL */
    const char *trace;  /* FILE as given, or NULL */
    const char *sample; /* --sample's argument as given, or NULL */
    unsigned long long sample_bytes;
};

/* BYTES: a positive decimal number, optionally followed by k, m or g
 * (either case, optionally then b or B), as the library's sizes are. */
static bool parse_bytes(const char *s, unsigned long long *out) {
    if (!isdigit((unsigned char)s[0])) return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return false;
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift) {
        end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (*end || v == 0 || v > (ULLONG_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

/* An option's value: "--opt=VALUE" gives VALUE, "--opt VALUE" the next
 * argument (*i moves past it); NULL when there is none. */
static const char *option_value(int argc, char **argv, int *i, const char *name) {
    size_t len = strlen(name);
    if (argv[*i][len] == '=') return argv[*i] + len + 1;
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}

static bool is_option(const char *arg, const char *name) {
    size_t len = strlen(name);
    return strncmp(arg, name, len) == 0 && (arg[len] == '\0' || arg[len] == '=');
}

/* Parses memalloc run's options; returns the index of PROGRAM in argv, or
 * -status (help printed: 0, or a usage error: 2). */
static int parse_run(int argc, char **argv, struct run_options *o) {
    const char *who = "memalloc run";
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0') break; /* PROGRAM ("-" too is a file name) */
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(help_run, stdout);
            return 0;
        }
        if (is_option(a, "--stats")) {
            if (a[7] == '\0')
                o->stats = "1";
            else if (strcmp(a + 8, "table") == 0 || strcmp(a + 8, "1") == 0)
                o->stats = a + 8;
            else
                return -usage_error(who, "--stats takes =table or nothing, not '%s'", a + 8);
        } else if (is_option(a, "--check")) {
            const char *v = option_value(argc, argv, &i, "--check");
            if (!v) return -usage_error(who, "--check needs a level, 1 or 2");
            if (strcmp(v, "1") != 0 && strcmp(v, "2") != 0)
                return -usage_error(who, "--check takes 1 or 2, not '%s'", v);
            o->check = v;
        } else if (is_option(a, "--trace")) {
            const char *v = option_value(argc, argv, &i, "--trace");
            if (!v || !v[0]) return -usage_error(who, "--trace needs a FILE");
            o->trace = v;
        } else if (is_option(a, "--sample")) {
            const char *v = option_value(argc, argv, &i, "--sample");
            if (!v) return -usage_error(who, "--sample needs BYTES");
            if (!parse_bytes(v, &o->sample_bytes))
                return -usage_error(
                    who, "--sample takes a positive number of bytes (k, m, g allowed), not '%s'",
                    v);
            o->sample = v;
        } else {
            return -usage_error(who, "unknown option '%s'", a);
        }
    }
    if (i >= argc) return -usage_error(who, "no PROGRAM to run");
    if (o->sample && !o->trace)
        return -usage_error(who, "--sample is the trace's sampling interval: it needs --trace");
    return i;
}

/* LD_PRELOAD with LIB first; the loader splits the list at spaces and
 * colons. */
static int set_preload(const char *lib) {
    if (strpbrk(lib, " :")) {
        run_error("the library's path '%s' has a space or a colon, which LD_PRELOAD cannot "
                  "carry; set MEMALLOC_LIB to a path without them",
                  lib);
        return EXIT_FAILED;
    }
    const char *old = getenv("LD_PRELOAD");
    char *value = old && old[0] ? str_printf("%s:%s", lib, old) : strdup(lib);
    if (!value || setenv("LD_PRELOAD", value, 1) != 0) {
        run_error("cannot set LD_PRELOAD: %s", strerror(errno));
        free(value);
        return EXIT_FAILED;
    }
    free(value);
    return 0;
}

/* Sets NAME=VALUE; false after saying why. */
static bool set_var(const char *name, const char *value) {
    if (setenv(name, value, 1) == 0) return true;
    run_error("cannot set %s: %s", name, strerror(errno));
    return false;
}

/* FILE quoted for a shell command line, if it needs quoting. */
static char *shell_quote(const char *s) {
    if (s[0] && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                          "_-./,:+=@%") == strlen(s))
        return strdup(s);
    size_t len = 2;
    for (const char *p = s; *p; p++) len += *p == '\'' ? 4 : 1;
    char *q = malloc(len + 1), *w = q;
    if (!q) return NULL;
    *w++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(w, "'\\''", 4);
            w += 4;
        } else {
            *w++ = *p;
        }
    }
    *w++ = '\'';
    *w = '\0';
    return q;
}

/* How many FILE.PID files (the traces of the program's child processes)
 * were written since START. */
static int count_child_traces(const char *abs_trace, time_t start) {
    const char *slash = strrchr(abs_trace, '/');
    char *dir = strndup(abs_trace, slash == abs_trace ? 1 : (size_t)(slash - abs_trace));
    const char *base = slash + 1;
    size_t blen = strlen(base);
    int count = 0;
    DIR *d = dir ? opendir(dir) : NULL;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *name = e->d_name;
            if (strncmp(name, base, blen) != 0 || name[blen] != '.' || !name[blen + 1] ||
                strspn(name + blen + 1, "0123456789") != strlen(name + blen + 1))
                continue;
            struct stat st;
            if (fstatat(dirfd(d), name, &st, 0) == 0 && st.st_mtime >= start) count++;
        }
        closedir(d);
    }
    free(dir);
    return count;
}

/* After the program: where its trace is, and how to see it. */
static void tell_trace(const char *given, const char *abs_trace, time_t start) {
    char *q = shell_quote(given);
    int children = count_child_traces(abs_trace, start);
    if (access(abs_trace, F_OK) == 0) {
        fprintf(stderr, "memalloc run: the trace is in %s", q ? q : given);
        if (children)
            fprintf(stderr, " (and %d more, %s.PID, of child processes)", children, q ? q : given);
        fprintf(stderr, "; see it with: memalloc report %s\n", q ? q : given);
    } else {
        fprintf(stderr, "memalloc run: the program wrote no trace to %s", q ? q : given);
        if (children)
            fprintf(stderr, " (but %d of child processes, %s.PID)", children, q ? q : given);
        fputc('\n', stderr);
    }
    free(q);
}

/* The signals passed on to the program while memalloc run waits for it. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static volatile sig_atomic_t child;

/* Passes a signal on to the program. SIGINT and SIGQUIT from the terminal
 * (si_code SI_KERNEL) went to its whole foreground process group, the
 * program included: only those a process sent (kill) are passed on. */
static void forward(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    if ((sig == SIGINT || sig == SIGQUIT) && si && si->si_code == SI_KERNEL) return;
    if (child > 0) kill(child, sig);
}

/* Ends as the program did: its exit status, or its death by a signal
 * (with the default action, and no core file of our own). */
static int pass_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        struct rlimit none = {0, 0};
        setrlimit(RLIMIT_CORE, &none);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig; /* a signal whose default action is not to end */
    }
    return EXIT_FAILED;
}

/* execv PATH, or when the file is neither ELF nor #! (ENOEXEC), /bin/sh
 * PATH as execvp does. Returns only on failure, after saying why. */
static int exec_program(const char *path, char **argv) {
    execv(path, argv);
    if (errno == ENOEXEC) {
        int argc = 0;
        while (argv[argc]) argc++;
        char **sh = calloc((size_t)argc + 2, sizeof *sh);
        if (sh) {
            sh[0] = (char *)"/bin/sh";
            sh[1] = (char *)path;
            for (int i = 1; i < argc; i++) sh[i + 1] = argv[i];
            execv("/bin/sh", sh);
        }
    }
    int err = errno;
    run_error("cannot run %s: %s", path, strerror(err));
    return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

/* Runs PATH with --trace: starts it, waits, tells where the trace is. */
static int run_traced(const char *path, char **argv, const char *given, const char *abs_trace) {
    struct sigaction old[NFORWARDED], sa;
    sigset_t block, saved_mask;
    sigemptyset(&block);
    for (size_t i = 0; i < NFORWARDED; i++) sigaddset(&block, forwarded[i]);
    /* Blocked until the program's PID is known, so that none is lost. */
    sigprocmask(SIG_BLOCK, &block, &saved_mask);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NFORWARDED; i++) {
        sigaction(forwarded[i], NULL, &old[i]);
        /* An ignored signal (a background job's SIGINT) stays ignored, for
         * us and for the program, which inherits that across exec. */
        if (old[i].sa_handler != SIG_IGN) sigaction(forwarded[i], &sa, NULL);
    }
    /* The child writes its exit status to this pipe if it cannot exec
     * the program; exec closes the pipe otherwise. */
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        run_error("cannot make a pipe: %s", strerror(errno));
        return EXIT_FAILED;
    }
    time_t start = time(NULL);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        run_error("cannot fork: %s", strerror(errno));
        return EXIT_FAILED;
    }
    if (pid == 0) {
        close(fds[0]);
        for (size_t i = 0; i < NFORWARDED; i++) sigaction(forwarded[i], &old[i], NULL);
        sigprocmask(SIG_SETMASK, &saved_mask, NULL);
        unsigned char failed = (unsigned char)exec_program(path, argv);
        if (write(fds[1], &failed, 1) != 1) failed = EXIT_FAILED;
        _exit(failed);
    }
    child = pid;
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    close(fds[1]);
    unsigned char exec_failed = 0;
    ssize_t got;
    while ((got = read(fds[0], &exec_failed, 1)) < 0 && errno == EINTR) {
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            run_error("cannot wait for %s: %s", path, strerror(errno));
            return EXIT_FAILED;
        }
    }
    child = 0;
    for (size_t i = 0; i < NFORWARDED; i++) sigaction(forwarded[i], &old[i], NULL);
    /* When the exec failed, the child said why: no trace to tell of. */
    if (got == 1) return exec_failed;
    tell_trace(given, abs_trace, start);
    return pass_status(status);
}

static int run_main(int argc, char **argv) {
    struct run_options o = {0};
    int first = parse_run(argc, argv, &o);
    if (first <= 0) return -first;

    int status;
    char *path = find_program(argv[first], &status);
    if (!path) return status;
    char *lib = find_library();
    if (!lib) return EXIT_FAILED;
    struct elf_info lib_elf;
    if (!read_library(lib, &lib_elf)) return EXIT_FAILED;
    status = check_program(path, argv[first], &lib_elf, lib, 0);
    if (status) return status;

    char *abs_trace = NULL;
    if (o.trace) {
        abs_trace = absolute_path(o.trace);
        if (!abs_trace) {
            run_error("--trace %s: its directory: %s", o.trace, strerror(errno));
            return EXIT_FAILED;
        }
        const char *base = strrchr(abs_trace, '/') + 1;
        if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
            return usage_error("memalloc run", "--trace names a directory, not a FILE: '%s'",
                               o.trace);
        /* The library creates FILE only if it does not exist (O_EXCL), else
         * writes FILE.PID: FILE is removed so that this run's first
         * process writes FILE. */
        if (unlink(abs_trace) != 0 && errno != ENOENT) {
            run_error("cannot remove %s for the new trace: %s", o.trace, strerror(errno));
            return EXIT_FAILED;
        }
    }

    status = set_preload(lib);
    if (status) return status;
    if ((o.stats && !set_var("MEMALLOC_STATS", o.stats)) ||
        (o.check && !set_var("MEMALLOC_CHECK", o.check)) ||
        (abs_trace && !set_var("MEMALLOC_TRACE", abs_trace)))
        return EXIT_FAILED;
    if (o.sample) {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", o.sample_bytes);
        if (!set_var("MEMALLOC_TRACE_SAMPLE", buf)) return EXIT_FAILED;
    }

    /* Without --trace nothing is left to do once the program ends: exec
     * it, so that it keeps our process id and its signals and exit status
     * are its own. With --trace, fork and wait, to say where the trace is. */
    if (!abs_trace) return exec_program(path, argv + first);
    return run_traced(path, argv + first, o.trace, abs_trace);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("memalloc", "no command given (run, report or help)");
    const char *cmd = argv[1];
    if (strcmp(cmd, "report") == 0) {
        if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            fputs(help_report, stdout); /* the whole help, as memalloc help report */
            return 0;
        }
        return report_main(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "run") == 0) return run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0) return help_main_cmd(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        if (argc > 2)
            return usage_error("memalloc", "--help takes no argument (memalloc help COMMAND)");
        fputs(help_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        if (argc > 2) return usage_error("memalloc", "--version takes no argument");
        printf("memalloc %s\n", MEMALLOC_VERSION);
        return 0;
    }
    if (cmd[0] == '-') return usage_error("memalloc", "unknown option '%s'", cmd);
    return usage_error("memalloc", "unknown command '%s'", cmd);
}
