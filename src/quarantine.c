/*
 * quarantine.c: rings of freed blocks, one per thread (see quarantine.h).
 *
 * A thread pushes onto and takes from its own ring without a lock; the
 * bytes held by all rings are one relaxed counter, which the caller's
 * limit bounds. A ring adds its own changes to that counter only once
 * they reach PUBLISH bytes either way (an atomic addition per push and
 * per take would cost more than the rest of the ring's work), and judges
 * the limit by the counter plus what it has not added yet. A ring is
 * mapped at a thread's first push and never unmapped; its pages are
 * touched only as far as it fills. When its thread exits (a pthread key's
 * destructor) the ring is orphaned with its blocks: the next thread that
 * needs a ring adopts it, blocks and all, so that FIFO order and the bound
 * hold across threads that come and go, and a push that finds the
 * quarantine over its limit takes from orphaned rings too. The registry
 * (all rings, under one lock) is for adoption, the drain at exit, and the
 * search of a report.
 */
#include "quarantine.h"

#include <pthread.h>

#include "os.h"
#include "util.h"

#define RING_SLOTS ((size_t)1 << 13) /* a power of two: 192 KiB of entries */
#define PUBLISH    ((ptrdiff_t)64 << 10)

struct ring {
    struct ring *next; /* the registry */
    int owned;         /* a live thread's (else orphaned: the registry's lock guards it) */
    size_t head, count, held;
    ptrdiff_t unpublished; /* of held's changes, not in total yet */
    struct quarantined e[RING_SLOTS];
};

static struct ring *rings;
static size_t total;        /* bytes held by all rings (relaxed atomic adds) */
static size_t orphan_bytes; /* of which in orphaned rings (written under q_mutex) */
static pthread_mutex_t q_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t exit_key;
static int key_made;

static __thread struct ring *mine __attribute__((tls_model("initial-exec")));
static __thread int gone __attribute__((tls_model("initial-exec"))); /* its thread exits */

/* The rings' bytes with r's own changes (r may be NULL). (Each other
 * ring's part of the total is off its bytes by less than PUBLISH either
 * way: the sum may even be below zero, and is read signed.) */
static inline size_t total_with(const struct ring *r) {
    ptrdiff_t t = (ptrdiff_t)(load_relaxed(&total) + (size_t)(r ? r->unpublished : 0));
    return t > 0 ? (size_t)t : 0;
}

static inline void publish(struct ring *r) {
    add_relaxed(&total, (size_t)r->unpublished);
    r->unpublished = 0;
}

/* held changed by delta bytes (held itself already changed). */
static inline void held_changed(struct ring *r, ptrdiff_t delta) {
    r->unpublished += delta;
    if (unlikely(r->unpublished >= PUBLISH || r->unpublished <= -PUBLISH)) publish(r);
}

static void leave(void *arg) {
    struct ring *r = arg;
    publish(r);
    pthread_mutex_lock(&q_mutex);
    r->owned = 0;
    store_relaxed(&orphan_bytes, orphan_bytes + r->held);
    pthread_mutex_unlock(&q_mutex);
    mine = NULL;
    gone = 1; /* later frees of this thread (other destructors) skip quarantine */
}

/* The calling thread's ring: an orphaned one (the fullest), or a new one. */
static struct ring *join(void) {
    if (gone) return NULL;
    struct ring *r = NULL;
    pthread_mutex_lock(&q_mutex);
    if (!key_made && pthread_key_create(&exit_key, leave) == 0) key_made = 1;
    for (struct ring *q = rings; q; q = q->next)
        if (!q->owned && (!r || q->count > r->count)) r = q;
    if (r) {
        store_relaxed(&orphan_bytes, orphan_bytes - r->held);
    } else if ((r = os_map(sizeof *r)) != NULL) {
        r->next = rings;
        rings = r;
    }
    if (r) r->owned = 1;
    pthread_mutex_unlock(&q_mutex);
    /* outside the lock: a key past glibc's first block allocates */
    if (r && key_made) pthread_setspecific(exit_key, r);
    mine = r;
    return r;
}

static inline __attribute__((always_inline)) void take_oldest(struct ring *r,
                                                              struct quarantined *out) {
    *out = r->e[r->head];
    store_relaxed(&r->head, (r->head + 1) & (RING_SLOTS - 1));
    store_relaxed(&r->count, r->count - 1);
    r->held -= out->bytes;
    held_changed(r, -(ptrdiff_t)out->bytes);
}

/* Take from r while the quarantine is over limit or r is full, keeping
 * r's newest keep blocks. */
static unsigned evict_ring(struct ring *r, size_t limit, size_t keep, struct quarantined *out,
                           unsigned max) {
    unsigned n = 0;
    while (n < max && r->count > keep && (total_with(r) > limit || r->count == RING_SLOTS))
        take_oldest(r, &out[n++]);
    return n;
}

/* Take from orphaned rings while the quarantine is over limit. */
static unsigned evict_orphans(size_t limit, struct quarantined *out, unsigned max) {
    unsigned n = 0;
    pthread_mutex_lock(&q_mutex);
    for (struct ring *r = rings; r && n < max; r = r->next) {
        if (r->owned) continue;
        size_t before = r->held;
        n += evict_ring(r, limit, 0, out + n, max - n);
        publish(r);
        store_relaxed(&orphan_bytes, orphan_bytes - (before - r->held));
    }
    pthread_mutex_unlock(&q_mutex);
    return n;
}

unsigned quarantine_evict(size_t limit, struct quarantined *out, unsigned max) {
    unsigned n = 0;
    struct ring *r = mine;
    if (load_relaxed(&orphan_bytes) && total_with(r) > limit) n = evict_orphans(limit, out, max);
    if (r) n += evict_ring(r, limit, 1, out + n, max - n);
    return n;
}

int quarantine_push(void *p, size_t bytes, uint32_t free_id, size_t limit, struct quarantined *out,
                    unsigned max) {
    struct ring *r = mine;
    if (unlikely(!r) && (r = join()) == NULL) return -1;
    unsigned n = 0;
    if (r->count == RING_SLOTS) take_oldest(r, &out[n++]);
    struct quarantined *e = &r->e[(r->head + r->count) & (RING_SLOTS - 1)];
    store_relaxed(&e->p, p);
    e->bytes = bytes;
    store_relaxed(&e->free_id, free_id);
    store_relaxed(&r->count, r->count + 1);
    r->held += bytes;
    held_changed(r, (ptrdiff_t)bytes);
    /* the orphans' blocks first: they are older */
    if (total_with(r) > limit && load_relaxed(&orphan_bytes) && n < max)
        n += evict_orphans(limit, out + n, max - n);
    while (total_with(r) > limit && r->count > 1 && n < max) take_oldest(r, &out[n++]);
    return (int)n;
}

unsigned quarantine_drain(struct quarantined *out, unsigned max) {
    unsigned n = 0;
    pthread_mutex_lock(&q_mutex);
    for (struct ring *r = rings; r && n < max; r = r->next) {
        if (r->owned && r != mine) continue; /* a live thread's: it may push meanwhile */
        size_t before = r->held;
        n += evict_ring(r, 0, 0, out + n, max - n);
        publish(r);
        if (!r->owned) store_relaxed(&orphan_bytes, orphan_bytes - (before - r->held));
    }
    pthread_mutex_unlock(&q_mutex);
    return n;
}

uint32_t quarantine_free_stack(const void *p) {
    uint32_t id = 0;
    pthread_mutex_lock(&q_mutex);
    /* other threads' rings move meanwhile: a report's best effort */
    for (struct ring *r = rings; r && !id; r = r->next) {
        size_t head = load_relaxed(&r->head), count = load_relaxed(&r->count);
        for (size_t i = count; i-- > 0;) {
            const struct quarantined *e = &r->e[(head + i) & (RING_SLOTS - 1)];
            if (load_relaxed(&e->p) == p) {
                id = load_relaxed(&e->free_id);
                break;
            }
        }
    }
    pthread_mutex_unlock(&q_mutex);
    return id;
}

int quarantine_newest(struct quarantined *q) {
    struct ring *r = mine;
    if (!r || !r->count) return 0;
    *q = r->e[(r->head + r->count - 1) & (RING_SLOTS - 1)];
    return 1;
}

size_t quarantine_bytes(void) {
    return load_relaxed(&total);
}

void quarantine_lock(void) {
    pthread_mutex_lock(&q_mutex);
}
void quarantine_unlock(void) {
    pthread_mutex_unlock(&q_mutex);
}
/* The rings of the threads fork did not copy are orphans in the child. */
void quarantine_fork_child(void) {
    pthread_mutex_init(&q_mutex, NULL);
    size_t o = 0;
    for (struct ring *r = rings; r; r = r->next) {
        if (r != mine && r->owned) publish(r); /* its thread's changes, as fork copied them */
        if (r != mine) r->owned = 0;
        if (!r->owned) o += r->held;
    }
    store_relaxed(&orphan_bytes, o);
}
