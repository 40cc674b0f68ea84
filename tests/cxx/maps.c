/* maps: a C program (no C++ library of its own) that allocates and frees,
 * then says which of libstdc++ and libmemalloc its address space maps
 * (/proc/self/maps): under the preload, memalloc must not bring
 * libstdc++ in (tests/integration/cxx.bats). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    char line[4096];
    int cxx = 0, mem = 0;
    for (int i = 0; i < 1000; i++) free(malloc((size_t)i * 40));
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return 3;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "libstdc++")) cxx = 1;
        if (strstr(line, "libmemalloc")) mem = 1;
    }
    fclose(f);
    printf("libstdc++: %s\n", cxx ? "mapped" : "not mapped");
    printf("libmemalloc: %s\n", mem ? "mapped" : "not mapped");
    return 0;
}
