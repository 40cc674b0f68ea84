/* The memalloc command: memalloc run, memalloc report. */
#include "report.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return report_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: memalloc report TRACE [-o FILE.html]\n");
    return 2;
}
