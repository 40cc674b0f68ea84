/*
 * error.c: building and writing messages (see error.h).
 */
#include "error.h"

#include "os.h"

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

void msg_emit(struct msg *m) {
    m->buf[m->len++] = '\n';
    os_write(2, m->buf, m->len);
    m->len = 0;
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

void ma_warn(const char *text) {
    struct msg m = {.len = 0};
    msg_str(&m, "memalloc: ");
    msg_str(&m, text);
    msg_emit(&m);
}

const char *freed_twice_what(const char *who) {
    int is_free = (who[0] == 'f' && who[1] == 'r') || (who[0] == 'm' && who[3] == 'f');
    return is_free ? "double free of" : "pointer already freed";
}
