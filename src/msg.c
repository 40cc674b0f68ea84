/*
 * msg.c: building and writing messages (see msg.h), and the report of a
 * failed ma_assert (util.h).
 */
#include "msg.h"

#include "os.h"
#include "util.h"

void msg_str(struct msg *m, const char *s) {
    while (*s && m->len < sizeof m->buf - 1) m->buf[m->len++] = *s++;
}

void msg_dec(struct msg *m, uint64_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && m->len < sizeof m->buf - 1) m->buf[m->len++] = tmp[--n];
}

void msg_hex(struct msg *m, uintptr_t v) {
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    msg_str(m, "0x");
    while (n > 0 && m->len < sizeof m->buf - 1) m->buf[m->len++] = tmp[--n];
}

void msg_write(struct msg *m, int fd) {
    m->buf[m->len++] = '\n';
    os_write(fd, m->buf, m->len);
    m->len = 0;
}

void msg_emit(struct msg *m) {
    msg_write(m, 2);
}

void ma_fatal(const char *who, const char *what, const void *ptr) {
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: ");
    msg_str(&m, who);
    msg_str(&m, "(): ");
    msg_str(&m, what);
    msg_str(&m, " ");
    msg_hex(&m, (uintptr_t)ptr);
    msg_emit(&m);
    os_abort();
}

const char *freed_twice_what(const char *who) {
    int is_free = (who[0] == 'f' && who[1] == 'r') || (who[0] == 'm' && who[3] == 'f');
    return is_free ? "double free of" : "pointer already freed";
}

void ma_assert_fail(const char *file, int line, const char *cond) {
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: assertion failed: ");
    msg_str(&m, file);
    msg_str(&m, ":");
    msg_dec(&m, (uint64_t)line);
    msg_str(&m, ": ");
    msg_str(&m, cond);
    msg_emit(&m);
    os_abort();
}
