/* trace_gen OUT [--no-end]: writes the synthetic trace (trace_gen.h) to
 * OUT, for the integration tests; prints what a report of it must show. */
#include "trace_gen.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: trace_gen OUT [--no-end]\n");
        return 2;
    }
    struct gen_trace g;
    if (gen_write(argv[1], argc > 2 && strcmp(argv[2], "--no-end") == 0, &g) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("bytes=%zu allocs=%zu frees=%zu peak_in_use=%" PRIu64 "\n", g.bytes, g.nallocs, g.nfrees,
           g.heaps[g.peak].in_use);
    gen_free_trace(&g);
    return 0;
}
