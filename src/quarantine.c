/*
 * quarantine.c: a ring of freed blocks under one lock (see quarantine.h).
 * The ring is mapped at the first push and never unmapped; its pages are
 * touched only as far as it fills.
 */
#include "quarantine.h"

#include <pthread.h>

#include "os.h"
#include "util.h"

#define RING_SLOTS ((size_t)1 << 20) /* a power of two */

static struct quarantined *ring;
static size_t head, count; /* the oldest entry; the number held */
static size_t held;        /* bytes */
static pthread_mutex_t q_mutex = PTHREAD_MUTEX_INITIALIZER;

/* keep: how many of the newest blocks stay whatever the limit */
static unsigned evict_locked(size_t limit, size_t keep, struct quarantined *out, unsigned max) {
    unsigned n = 0;
    while (n < max && count > keep && (held > limit || count == RING_SLOTS)) {
        out[n] = ring[head];
        store_relaxed(&held, held - out[n].bytes);
        head = (head + 1) & (RING_SLOTS - 1);
        count--;
        n++;
    }
    return n;
}

int quarantine_push(void *p, size_t bytes, uint32_t free_id, size_t limit, struct quarantined *out,
                    unsigned max) {
    pthread_mutex_lock(&q_mutex);
    if (!ring) ring = os_map(RING_SLOTS * sizeof *ring);
    int rc = -1;
    if (ring && count < RING_SLOTS) {
        struct quarantined *e = &ring[(head + count) & (RING_SLOTS - 1)];
        e->p = p;
        e->bytes = bytes;
        e->free_id = free_id;
        count++;
        store_relaxed(&held, held + bytes);
        rc = (int)evict_locked(limit, 1, out, max);
    }
    pthread_mutex_unlock(&q_mutex);
    return rc;
}

unsigned quarantine_evict(size_t limit, struct quarantined *out, unsigned max) {
    pthread_mutex_lock(&q_mutex);
    unsigned n = evict_locked(limit, 1, out, max);
    pthread_mutex_unlock(&q_mutex);
    return n;
}

unsigned quarantine_drain(struct quarantined *out, unsigned max) {
    pthread_mutex_lock(&q_mutex);
    unsigned n = evict_locked(0, 0, out, max);
    pthread_mutex_unlock(&q_mutex);
    return n;
}

uint32_t quarantine_free_stack(const void *p) {
    uint32_t id = 0;
    pthread_mutex_lock(&q_mutex);
    for (size_t i = count; i-- > 0;) {
        const struct quarantined *e = &ring[(head + i) & (RING_SLOTS - 1)];
        if (e->p == p) {
            id = e->free_id;
            break;
        }
    }
    pthread_mutex_unlock(&q_mutex);
    return id;
}

size_t quarantine_bytes(void) {
    return load_relaxed(&held);
}

void quarantine_lock(void) {
    pthread_mutex_lock(&q_mutex);
}
void quarantine_unlock(void) {
    pthread_mutex_unlock(&q_mutex);
}
void quarantine_fork_child(void) {
    pthread_mutex_init(&q_mutex, NULL);
}
