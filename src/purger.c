/*
 * purger.c: the background purge (see purger.h).
 *
 * The thread sleeps until the earliest pass that is due in any arena has
 * been due for LATE_MS, or the next freed mapping's age runs out (at
 * least TICK_MIN_MS, at most TICK_MAX_MS), and then runs what is late: a
 * pass in each arena whose lock is free (arenas_purge_late) and the
 * ageing of the cache of freed mappings. A program at work runs its
 * passes itself, at its arenas' locks, within LATE_MS, so the thread
 * takes no lock from it (running every due pass itself, it made a
 * program that freed a large structure wait on its arena's lock).
 *
 * It takes no memory from the heap and calls nothing that does. It is
 * created with every signal blocked (a signal sent to the process goes
 * to one of the program's threads), a small stack, and detached; it
 * lives until the process exits. While a test holds the clock
 * (os_clock_set) it does nothing: the test runs the passes itself, at the
 * times it sets.
 */
#include "purger.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "arena.h"
#include "counters.h"
#include "large.h"
#include "options.h"
#include "os.h"

#define LATE_MS     100
#define TICK_MIN_MS 10
#define TICK_MAX_MS 1000
#define STACK_BYTES ((size_t)128 << 10)

enum { IDLE = 0, STARTING, RUNNING, REFUSED };
int purger_state;

static void *purger_main(void *arg) {
    (void)arg;
    for (;;) {
        uint64_t next = 0;
        if (opt_get(OPT_BACKGROUND) && !os_clock_fixed()) {
            arenas_purge_late(LATE_MS);
            uint64_t cache = large_cache_expire();
            next = arenas_next_due();
            if (next) next += LATE_MS;
            if (cache && (!next || cache < next)) next = cache;
        }
        uint64_t now = os_now_ms(), wait = TICK_MAX_MS;
        if (next) wait = next <= now ? TICK_MIN_MS : next - now;
        if (wait < TICK_MIN_MS) wait = TICK_MIN_MS;
        if (wait > TICK_MAX_MS) wait = TICK_MAX_MS;
        os_sleep_ms((unsigned)wait);
    }
    return NULL;
}

void purger_start(void) {
    /* not in a check mode: glibc's pthread_create takes the thread's
     * TLS vector from malloc, which the leak report would list */
    if (load_relaxed(&ma_counters.peak) < PURGER_START || opt_get(OPT_CHECK)) return;
    int expected = IDLE;
    if (!__atomic_compare_exchange_n(&purger_state, &expected, STARTING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return;
    if (!opt_get(OPT_BACKGROUND)) {
        store_relaxed(&purger_state, REFUSED);
        return;
    }
    int saved = errno; /* free keeps errno */
    pthread_attr_t attr;
    sigset_t all, old;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, STACK_BYTES);
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_t tid;
        ok = pthread_create(&tid, &attr, purger_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    /* a refusal (no memory for a stack, a limit on threads) is for good:
     * the passes still run at the locks, as without the thread */
    store_relaxed(&purger_state, ok ? RUNNING : REFUSED);
    errno = saved;
}

void purger_fork_child(void) {
    store_relaxed(&purger_state, IDLE);
}
