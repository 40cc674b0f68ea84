/* dlopen_host PLUGIN: a C program (no C++ library of its own) that loads
 * PLUGIN (plugin.cc) with dlopen, RTLD_LOCAL as python loads an extension
 * module, and runs its plugin_run (tests/integration/cxx.bats). Exit
 * status 3: the plugin could not be loaded. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen_host: %s\n", dlerror());
        return 3;
    }
    int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
    if (!run) {
        fprintf(stderr, "dlopen_host: %s\n", dlerror());
        return 3;
    }
    int rc = run();
    fflush(stdout);
    return rc;
}
