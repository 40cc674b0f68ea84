/* trace_gen OUT [--no-end] [--exec-before] [--pid PID PPID]: writes the
 * synthetic trace (trace_gen.h) to OUT, of process PID (default 4242,
 * parent 4241), for the integration tests. */
#include "trace_gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    int flags = 0;
    uint32_t pid = 4242, ppid = 4241;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--no-end") == 0) {
            flags |= GEN_NO_END;
        } else if (strcmp(argv[i], "--exec-before") == 0) {
            flags |= GEN_EXEC_BEFORE;
        } else if (strcmp(argv[i], "--pid") == 0 && i + 2 < argc) {
            pid = (uint32_t)strtoul(argv[i + 1], NULL, 10);
            ppid = (uint32_t)strtoul(argv[i + 2], NULL, 10);
            i += 2;
        } else {
            argc = 0;
        }
    }
    if (argc < 2) {
        fprintf(stderr, "usage: trace_gen OUT [--no-end] [--exec-before] [--pid PID PPID]\n");
        return 2;
    }
    struct gen_trace g;
    if (gen_write(argv[1], flags, pid, ppid, &g) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("bytes=%zu allocs=%zu frees=%zu peak_in_use=%" PRIu64 "\n", g.bytes, g.nallocs, g.nfrees,
           g.heaps[g.peak].in_use);
    gen_free_trace(&g);
    return 0;
}
