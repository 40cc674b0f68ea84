/* Placeholder until the report lands. */
#include "report.h"

#include <stdio.h>

int report_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "memalloc report: not implemented yet\n");
    return 2;
}
