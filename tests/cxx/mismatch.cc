// mismatch ALLOC RELEASE: allocate a 100-byte block with ALLOC (malloc,
// new, new[]) in alloc_site, print its address ("block=0x..."), release
// it with RELEASE (free, delete, delete[], or a sized form: "delete/N",
// "delete[]/N", ::operator delete(p, N) and ::operator delete[](p, N)) in
// release_site, then print "went through". ALLOC "derived" allocates a
// Derived (96 bytes) and deletes it through a Base * whose destructor is
// not virtual: the sized delete says 8 bytes (RELEASE is ignored).
// Built with -O0 -g -fsized-deallocation: alloc_site and release_site are
// extern "C" and not inlined, so that a report's stacks name them. Exit
// status 2: bad arguments.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

struct Obj {
    char bytes[100];
};
struct Base {
    long a;
};
struct Derived : Base {
    long more[11];
};

extern "C" {

__attribute__((noinline)) void *alloc_site(const char *how) {
    if (!strcmp(how, "malloc")) return malloc(100);
    if (!strcmp(how, "new")) return new Obj;
    if (!strcmp(how, "new[]")) return new char[100];
    if (!strcmp(how, "derived")) return static_cast<Base *>(new Derived);
    return nullptr;
}

__attribute__((noinline)) int release_site(void *p, const char *how) {
    size_t size = 0;
    const char *slash = strchr(how, '/');
    if (slash) size = strtoul(slash + 1, nullptr, 10);
    size_t len = slash ? static_cast<size_t>(slash - how) : strlen(how);
    if (len == 4 && !strncmp(how, "free", 4) && !slash) {
        free(p);
    } else if (len == 6 && !strncmp(how, "delete", 6)) {
        if (slash)
            ::operator delete(p, size);
        else
            ::operator delete(p);
    } else if (len == 8 && !strncmp(how, "delete[]", 8)) {
        if (slash)
            ::operator delete[](p, size);
        else
            ::operator delete[](p);
    } else {
        return -1;
    }
    return 0;
}

// delete of a Base *: the sized delete of sizeof(Base), whatever the object.
__attribute__((noinline)) void release_base(Base *b) {
    delete b;
}
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mismatch malloc|new|new[]|derived free|delete|delete[][/N]\n");
        return 2;
    }
    void *p = alloc_site(argv[1]);
    if (!p) return 2;
    printf("block=%p\n", p);
    fflush(stdout);
    if (!strcmp(argv[1], "derived")) {
        release_base(static_cast<Base *>(p));
    } else if (release_site(p, argv[2]) != 0) {
        fprintf(stderr, "mismatch: unknown release %s\n", argv[2]);
        return 2;
    }
    printf("went through\n");
    return 0;
}
