/*
 * fork_in_signal: fork() from a signal handler that interrupted malloc() or
 * free() in a single-threaded process must work. The process keeps a pool
 * of blocks and loops on malloc/free of random sizes up to 70 KiB (so both
 * size-class objects and, above 64 KiB, boundary-tag chunks, which take an
 * arena lock, are involved), while a helper child sends it SIGUSR1 over and
 * over; the handler forks, the grandchild _exits at once, the handler waits
 * for it and tells the helper, which sends the next signal after a short
 * random pause. glibc's fork() takes no malloc lock when the process has one
 * thread, and programs rely on that (a handler that forks and execs, say).
 * An allocator whose pthread_atfork prepare handler takes its locks anyway
 * locks, in the thread that already holds it inside free(), a lock it will
 * never get: the process hangs. The program counts the signals that arrived
 * while a malloc/free call was in progress and fails, rather than pass
 * without having tested anything, if too few did; a watchdog (SIGALRM each
 * second) reports a deadlock when no call and no fork has completed for
 * STALL_SECONDS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOTS         64
#define SMALL_MAX     (64 * 1024) /* memalloc's largest size class */
#define LARGE_MAX     (70 * 1024)
#define NEED_CALLS    500  /* malloc/free calls interrupted by a fork, in all */
#define NEED_LARGE    100  /* of them on blocks larger than SMALL_MAX */
#define TRY_SECONDS   40   /* not enough of them by then: fail */
#define STALL_SECONDS 10   /* no progress for this long: deadlock */
#define GAP_MAX_US    1000 /* the helper's pause between signals: 0 to this */
#define SEQ_MASK      0x3fffffff

enum { OUTSIDE, IN_SMALL, IN_LARGE };

/* Written by the loop, read by the handlers (same thread). */
static volatile sig_atomic_t where = OUTSIDE;
static volatile sig_atomic_t call_seq; /* one more for each malloc/free call */
/* Written by the SIGUSR1 handler, read by the loop and the watchdog. */
static volatile sig_atomic_t hit_small, hit_large, hit_outside, bad_forks, forks_done;
/* the handler's end of the pipe to the helper */
static int ack_fd = -1;

static void on_usr1(int sig) {
    (void)sig;
    int saved = errno;
    int w = where;
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
        bad_forks++;
    } else {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) bad_forks++;
    }
    if (w == IN_LARGE)
        hit_large++;
    else if (w == IN_SMALL)
        hit_small++;
    else
        hit_outside++;
    forks_done = (forks_done + 1) & SEQ_MASK;
    char c = 0;
    while (write(ack_fd, &c, 1) < 0 && errno == EINTR) continue;
    errno = saved;
}

/* Async-signal-safe output of a message and a number. */
static void put_str(const char *s) {
    ssize_t r = write(2, s, strlen(s));
    (void)r;
}
static void put_num(long v) {
    char buf[24];
    int i = (int)sizeof buf;
    unsigned long u = v < 0 ? 0 : (unsigned long)v;
    do buf[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    ssize_t r = write(2, buf + i, sizeof buf - (size_t)i);
    (void)r;
}

/* The watchdog: every second, is the loop or the handler getting anywhere? */
static void on_alarm(int sig) {
    (void)sig;
    static int last_calls = -1, last_forks = -1, stalled;
    int saved = errno;
    if (call_seq == last_calls && forks_done == last_forks) {
        if (++stalled >= STALL_SECONDS) {
            put_str(
                "fork_in_signal: FAIL: deadlock: no malloc/free call and no fork completed in ");
            put_num(STALL_SECONDS);
            put_str(" s; stuck with the signal handler's fork() called inside ");
            put_str(where == IN_LARGE   ? "a malloc/free of a block > 64 KiB"
                    : where == IN_SMALL ? "a malloc/free of a block <= 64 KiB"
                                        : "neither malloc nor free");
            put_str("; forks completed inside malloc/free before: ");
            put_num(hit_small + hit_large);
            put_str("\n");
            _exit(3);
        }
    } else {
        stalled = 0;
    }
    last_calls = call_seq;
    last_forks = forks_done;
    alarm(1);
    errno = saved;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long rng_state = 0x9e3779b97f4a7c15ul;
static unsigned long rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A quarter of the requests above SMALL_MAX, the rest spread evenly over the
 * powers of two up to it. */
static size_t pick_size(void) {
    unsigned long r = rnd();
    if (r % 4 == 0) return SMALL_MAX + 1 + (r >> 8) % (LARGE_MAX - SMALL_MAX);
    unsigned bits = (unsigned)((r >> 2) % 17); /* 1 B .. 64 KiB */
    return ((size_t)1 << bits) + (size_t)((r >> 8) % ((size_t)1 << bits)) / 2 + 1;
}

/* The helper: sends SIGUSR1 to target, waits until the handler has done its
 * fork, pauses, and again, until killed (or the target is gone). */
static pid_t start_sender(pid_t target, int ack_read) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    signal(SIGUSR1, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != target) _exit(0);
    unsigned long seed = (unsigned long)getpid() * 2654435761ul;
    for (;;) {
        char c;
        if (kill(target, SIGUSR1) != 0) _exit(0);
        if (read(ack_read, &c, 1) != 1) _exit(0);
        seed = seed * 6364136223846793005ul + 1442695040888963407ul;
        struct timespec gap = {0, (long)((seed >> 33) % GAP_MAX_US) * 1000};
        nanosleep(&gap, NULL);
    }
}

int main(void) {
    int ack[2];
    if (pipe(ack) != 0) {
        perror("fork_in_signal: FAIL: pipe");
        return 1;
    }
    ack_fd = ack[1];

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    /* a signal the helper sent just before it was killed may run the
     * handler once more: its acknowledgement then finds no reader */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    static char *blocks[SLOTS];
    static size_t sizes[SLOTS];
    double start = now();
    pid_t sender = start_sender(getpid(), ack[0]);
    if (sender < 0) {
        perror("fork_in_signal: FAIL: fork of the sender");
        return 1;
    }
    close(ack[0]);
    alarm(1);

    unsigned long calls = 0;
    while (hit_small + hit_large < NEED_CALLS || hit_large < NEED_LARGE) {
        if ((calls & 255) == 0 && now() - start > TRY_SECONDS) {
            kill(sender, SIGKILL);
            fprintf(stderr,
                    "fork_in_signal: FAIL: only %d forks from a signal handler that interrupted "
                    "malloc/free (%d on blocks > 64 KiB) in %d s, need %d (%d): nothing was "
                    "tested (%d signals arrived elsewhere)\n",
                    (int)(hit_small + hit_large), (int)hit_large, TRY_SECONDS, NEED_CALLS,
                    NEED_LARGE, (int)hit_outside);
            return 1;
        }
        unsigned i = (unsigned)(rnd() % SLOTS);
        calls++;
        if (blocks[i]) {
            where = sizes[i] > SMALL_MAX ? IN_LARGE : IN_SMALL;
            atomic_signal_fence(memory_order_seq_cst);
            free(blocks[i]);
            atomic_signal_fence(memory_order_seq_cst);
            where = OUTSIDE;
            blocks[i] = NULL;
        } else {
            size_t n = pick_size();
            where = n > SMALL_MAX ? IN_LARGE : IN_SMALL;
            atomic_signal_fence(memory_order_seq_cst);
            char *p = malloc(n);
            atomic_signal_fence(memory_order_seq_cst);
            where = OUTSIDE;
            if (!p) {
                kill(sender, SIGKILL);
                fprintf(stderr, "fork_in_signal: FAIL: malloc(%zu) failed\n", n);
                return 1;
            }
            p[0] = p[n - 1] = (char)i;
            blocks[i] = p;
            sizes[i] = n;
        }
        call_seq = (call_seq + 1) & SEQ_MASK;
    }
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL); /* no more forks from here on */
    kill(sender, SIGKILL);
    while (waitpid(sender, NULL, 0) < 0 && errno == EINTR) continue;
    alarm(0);

    for (unsigned i = 0; i < SLOTS; i++) {
        if (blocks[i] && (blocks[i][0] != (char)i || blocks[i][sizes[i] - 1] != (char)i)) {
            fprintf(stderr, "fork_in_signal: FAIL: block %u lost its contents\n", i);
            return 1;
        }
        free(blocks[i]);
    }
    if (bad_forks) {
        fprintf(stderr, "fork_in_signal: FAIL: %d forks failed or their child did not exit 0\n",
                (int)bad_forks);
        return 1;
    }
    printf("fork_in_signal: ok: %d forks from a handler that interrupted malloc/free (%d on "
           "blocks > 64 KiB), %d elsewhere, %lu calls, %.1f s\n",
           (int)(hit_small + hit_large), (int)hit_large, (int)hit_outside, calls, now() - start);
    return 0;
}
