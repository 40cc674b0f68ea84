/* Naming return addresses: the trace's MAPS text says which file is
 * mapped where (and from which offset); the file's ELF symbol tables,
 * read from disk, name the function. */
#ifndef MEMALLOC_CLI_SYMBOLS_H
#define MEMALLOC_CLI_SYMBOLS_H

#include <stdint.h>

#include "trace_read.h"

struct symbols;

/* The mappings of every MAPS record of T (a later record's mapping wins
 * where two overlap). */
struct symbols *symbols_new(const struct trace *t);

/* "func+0xOFF (module)"; "module+0xOFF" (OFF the ELF virtual address, as
 * addr2line -e wants it) when no symbol covers the address; "0xADDR" when
 * no mapped file does. Owned by S, valid until symbols_free. */
const char *symbols_name(struct symbols *s, uint64_t ra);

/* The same without the offset into the function: "func (module)", for
 * grouping the frames of one function ("module+0xOFF" or "0xADDR" as
 * above when there is no symbol). */
const char *symbols_func(struct symbols *s, uint64_t ra);

void symbols_free(struct symbols *s);

#endif
