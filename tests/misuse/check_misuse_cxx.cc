// check_misuse_cxx KIND SIZE: one misuse of the C++ allocation operators
// on a block of SIZE bytes, as check_misuse.c does for the C functions
// (same output: "block=0x<address> size=<n>" before the misuse, "went
// through" right after it if the program still runs; "--list" lists the
// kinds, all sized). Built with -O0 -g: the sites are extern "C" functions
// that are not inlined, so that a report's stacks name them plainly
// (alloc_site_*, free_site_*). Exit status 2: bad arguments; 3: the
// misuse could not be set up.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unistd.h>

static void say(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (len > (int)sizeof buf - 1) len = (int)sizeof buf - 1;
    for (int off = 0; off < len;) {
        ssize_t w = write(1, buf + off, (size_t)(len - off));
        if (w <= 0) break;
        off += (int)w;
    }
}

extern "C" {

// new T of n bytes calls operator new(n): called so, for any n.
__attribute__((noinline)) char *alloc_site_new(size_t n) {
    return static_cast<char *>(::operator new(n));
}

__attribute__((noinline)) char *alloc_site_new_array(size_t n) {
    return new char[n];
}

__attribute__((noinline)) char *alloc_site_malloc(size_t n) {
    return static_cast<char *>(malloc(n));
}

// delete of a char *: g++ calls the sized operator delete(p, 1).
__attribute__((noinline)) void free_site_delete(char *p) {
    delete p;
}

__attribute__((noinline)) void free_site_delete_array(char *p) {
    delete[] p;
}

// delete of an object of size bytes through a pointer whose type says so.
__attribute__((noinline)) void free_site_delete_sized(char *p, size_t size) {
    ::operator delete(p, size);
}

__attribute__((noinline)) void free_site_free(char *p) {
    free(p);
}

__attribute__((noinline)) void write_byte(char *a) {
    *(volatile char *)a = 'x';
}
}

static const char *const kinds[] = {
    "new-array-delete",   // new char[n], delete p
    "new-delete-array",   // operator new(n), delete[] p
    "malloc-delete",      // malloc(n), delete p
    "new-free",           // operator new(n), free(p)
    "new-array-free",     // new char[n], free(p)
    "sized-delete-wrong", // operator new(n), operator delete(p, n / 2)
    "delete-twice",       // operator new(n), operator delete(p, n) twice
    "delete-array-uaf",   // new char[n], delete[] p, p[0] = 'x'
};

static void show(const char *p, size_t n) {
    say("block=0x%lx size=%zu\n", (unsigned long)p, n);
}

static int run(const char *kind, size_t n) {
    auto is = [kind](const char *s) { return strcmp(kind, s) == 0; };
    char *p;
    if (is("new-array-delete") || is("new-array-free") || is("delete-array-uaf"))
        p = alloc_site_new_array(n);
    else if (is("malloc-delete"))
        p = alloc_site_malloc(n);
    else
        p = alloc_site_new(n);
    if (!p) return 3;
    memset(p, 'b', n);
    show(p, n);
    if (is("new-array-delete") || is("malloc-delete")) {
        free_site_delete(p);
    } else if (is("new-delete-array")) {
        free_site_delete_array(p);
    } else if (is("new-free") || is("new-array-free")) {
        free_site_free(p);
    } else if (is("sized-delete-wrong")) {
        free_site_delete_sized(p, n / 2);
    } else if (is("delete-twice")) {
        free_site_delete_sized(p, n);
        free_site_delete_sized(p, n);
    } else if (is("delete-array-uaf")) {
        free_site_delete_array(p);
        write_byte(p);
    } else {
        return 2;
    }
    say("went through\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (const char *k : kinds) say("%s sized\n", k);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s KIND SIZE | --list\n", argv[0]);
        return 2;
    }
    char *end;
    size_t n = strtoull(argv[2], &end, 0);
    if (*end || argv[2][0] == '\0' || n < 24) {
        fprintf(stderr, "%s: bad size %s (24 or more)\n", argv[0], argv[2]);
        return 2;
    }
    for (const char *k : kinds)
        if (strcmp(k, argv[1]) == 0) {
            int rc = run(argv[1], n);
            if (rc == 2) fprintf(stderr, "%s: kind %s not handled\n", argv[0], argv[1]);
            return rc;
        }
    fprintf(stderr, "%s: unknown kind %s (--list lists them)\n", argv[0], argv[1]);
    return 2;
}
