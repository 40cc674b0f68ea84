/*
 * msg.h: messages and fatal errors. A line is built in a stack buffer and
 * written with one write(2); nothing allocates. A fatal error names the
 * entry point the program called ("free", "realloc", ...) and the
 * pointer, then aborts.
 */
#ifndef MEMALLOC_MSG_H
#define MEMALLOC_MSG_H

#include <stddef.h>
#include <stdint.h>

struct msg {
    char buf[512];
    size_t len;
};

void msg_str(struct msg *m, const char *s);
void msg_dec(struct msg *m, uint64_t v);
void msg_hex(struct msg *m, uintptr_t v); /* "0x" and lowercase hex, like %p */
/* Append a newline and write the line to fd. */
void msg_write(struct msg *m, int fd);
/* The same, to stderr. */
void msg_emit(struct msg *m);

/* "memalloc: <who>(): <what> 0x<ptr>" on stderr, then SIGABRT. */
_Noreturn void ma_fatal(const char *who, const char *what, const void *ptr);
/* What a second release is called: "double free of" for free and memfree,
 * "pointer already freed" for the others (realloc, malloc_usable_size). */
const char *freed_twice_what(const char *who);
/* "memalloc: assertion failed: file:line: cond" on stderr, then SIGABRT
 * (ma_assert, util.h). */
_Noreturn void ma_assert_fail(const char *file, int line, const char *cond);

#endif
