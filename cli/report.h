/* memalloc report: turn a trace (docs/trace-format.md) into one
 * self-contained HTML page. */
#ifndef MEMALLOC_CLI_REPORT_H
#define MEMALLOC_CLI_REPORT_H

/* `memalloc report TRACE [-o FILE.html]`; argv[0] is "report". Returns the
 * command's exit status. */
int report_main(int argc, char **argv);

#endif
