// plugin.so: C++ code that a C program loads with dlopen (dlopen_host.c),
// as python loads a C++ extension module: libstdc++ comes into the
// process only then, after memalloc was loaded and relocated. A failed
// new there must do what it does anywhere: call the new-handler, then
// throw std::bad_alloc, which the plugin catches
// (tests/integration/cxx.bats).
#include <cstdint>
#include <cstdio>
#include <new>

static volatile size_t huge_size = SIZE_MAX / 2;
static int calls;

static void handler() {
    calls++;
    std::set_new_handler(nullptr);
}

extern "C" int plugin_run(void) {
    try {
        char *p = new char[huge_size];
        delete[] p;
        printf("plugin: new char[huge]: a block, no exception\n");
    } catch (const std::bad_alloc &e) {
        printf("plugin: new char[huge]: caught %s\n", e.what());
    }
    std::set_new_handler(handler);
    try {
        void *p = ::operator new(huge_size);
        ::operator delete(p);
        printf("plugin: operator new(huge) with a new-handler: a block, no exception\n");
    } catch (const std::bad_alloc &e) {
        printf("plugin: operator new(huge) with a new-handler: caught %s after %d call(s)\n",
               e.what(), calls);
    }
    char *q = new char[100];
    delete[] q;
    printf("plugin: new char[100] and delete[]: done\n");
    return 0;
}
