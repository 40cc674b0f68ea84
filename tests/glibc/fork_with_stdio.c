/*
 * fork_with_stdio: fork() in a threaded process must not deadlock with
 * stdio (glibc bug 19431). Reader threads loop on getline() over a file of
 * one long line (80,000 bytes): getline holds the FILE's lock while it grows
 * its buffer with realloc, up to 120 KiB (a boundary-tag chunk under
 * memalloc, which takes an arena lock). A flusher thread loops on
 * fflush(NULL), which takes stdio's list lock and then each FILE's lock.
 * Forker threads loop on fork(), the child _exits at once. glibc's fork
 * takes stdio's list lock first and the malloc locks after it; an allocator
 * whose pthread_atfork prepare handler takes its arena locks runs before
 * that, and closes a cycle: forker (arena locks, wants the list lock) ->
 * flusher (list lock, wants the reader's FILE) -> reader (FILE lock, wants
 * an arena lock in realloc). Readers and flusher pause briefly between
 * calls, or the locks they retake at once would starve the others. The
 * threads run in rounds of half a second (four; more, up to twenty, while
 * too little was done, on a loaded machine); a round whose threads do not
 * all end within 5 s of being told to stop is reported as a deadlock. So
 * that the test cannot pass without having tested anything, it requires
 * enough forks made while a getline was in progress, getlines and flushes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_LEN      80000 /* getline's buffer doubles from 120 to 122880 */
#define READERS       2
#define FORKERS       2
#define ROUNDS        4  /* at least */
#define MAX_ROUNDS    20 /* more while too little was done (a loaded machine) */
#define ROUND_MS      500
#define READ_GAP_NS   (50 * 1000)
#define FLUSH_GAP_NS  (100 * 1000)
#define JOIN_SECONDS  5   /* a round's threads must all end within this */
#define ALARM_SECONDS 40  /* backstop: the whole program */
#define NEED_FORKS    100 /* forks made while a getline was in progress */
#define NEED_LINES    100
#define NEED_FLUSHES  100

static char path[4096];
static atomic_int stop;
static atomic_int in_getline; /* readers inside getline() now */
static atomic_ulong n_lines, n_flushes, n_forks, n_forks_overlap, n_bad;

struct reader {
    FILE *f;
};

static void *reader_main(void *arg) {
    struct reader *r = arg;
    /* a short pause between lines, else the flusher hardly ever gets the FILE's lock */
    struct timespec pause = {0, READ_GAP_NS};
    while (!atomic_load(&stop)) {
        char *line = NULL;
        size_t cap = 0;
        rewind(r->f);
        atomic_fetch_add(&in_getline, 1);
        ssize_t n = getline(&line, &cap, r->f);
        atomic_fetch_sub(&in_getline, 1);
        if (n != LINE_LEN + 1 || line[0] != 'a' || line[LINE_LEN - 1] != 'z' ||
            line[LINE_LEN] != '\n')
            atomic_fetch_add(&n_bad, 1);
        free(line);
        atomic_fetch_add(&n_lines, 1);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void *flusher_main(void *arg) {
    (void)arg;
    /* a short pause between calls, else the forkers hardly ever get the list lock */
    struct timespec pause = {0, FLUSH_GAP_NS};
    while (!atomic_load(&stop)) {
        fflush(NULL);
        atomic_fetch_add(&n_flushes, 1);
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void *forker_main(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        int overlap = atomic_load(&in_getline) > 0;
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0) {
            atomic_fetch_add(&n_bad, 1);
            continue;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) atomic_fetch_add(&n_bad, 1);
        atomic_fetch_add(&n_forks, 1);
        if (overlap || atomic_load(&in_getline) > 0) atomic_fetch_add(&n_forks_overlap, 1);
    }
    return NULL;
}

/* Reports go through write(2): stdio may be the thing that is stuck. */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = (int)sizeof buf - 1;
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "fork_with_stdio: FAIL: deadlock: the program did not end within "
                              "its alarm (fork beside getline and fflush)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int enough(void) {
    return atomic_load(&n_forks_overlap) >= NEED_FORKS && atomic_load(&n_lines) >= NEED_LINES &&
           atomic_load(&n_flushes) >= NEED_FLUSHES;
}

static int make_file(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fork_with_stdio.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    static char line[LINE_LEN + 1];
    for (size_t i = 0; i < LINE_LEN; i++) line[i] = (char)('a' + i % 26);
    line[LINE_LEN - 1] = 'z';
    line[LINE_LEN] = '\n';
    ssize_t w = write(fd, line, sizeof line);
    close(fd);
    return w == (ssize_t)sizeof line ? 0 : -1;
}

/* One round: start the threads, let them run, stop them. 0 when all ended. */
static int run_round(int round) {
    struct reader readers[READERS];
    pthread_t th[READERS + 1 + FORKERS];
    int nth = 0;
    for (int i = 0; i < READERS; i++) {
        readers[i].f = fopen(path, "r");
        if (!readers[i].f) {
            report("fork_with_stdio: FAIL: cannot open %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    atomic_store(&stop, 0);
    int err = 0;
    for (int i = 0; i < READERS && !err; i++)
        err = pthread_create(&th[nth++], NULL, reader_main, &readers[i]);
    if (!err) err = pthread_create(&th[nth++], NULL, flusher_main, NULL);
    for (int i = 0; i < FORKERS && !err; i++)
        err = pthread_create(&th[nth++], NULL, forker_main, NULL);
    if (err) {
        report("fork_with_stdio: FAIL: pthread_create: %s\n", strerror(err));
        _exit(1);
    }

    struct timespec pause = {ROUND_MS / 1000, (long)(ROUND_MS % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0 && errno == EINTR) continue;
    atomic_store(&stop, 1);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += JOIN_SECONDS;
    for (int i = 0; i < nth; i++) {
        err = pthread_timedjoin_np(th[i], NULL, &deadline);
        if (err) {
            int stuck = 1;
            for (int j = i + 1; j < nth; j++) stuck += pthread_tryjoin_np(th[j], NULL) != 0;
            report("fork_with_stdio: FAIL: deadlock: in round %d, %d of %d threads did not "
                   "end within %d s of being told to stop (fork beside getline and fflush; "
                   "so far %lu forks, %lu getlines, %lu fflushes)\n",
                   round + 1, stuck, nth, JOIN_SECONDS, atomic_load(&n_forks),
                   atomic_load(&n_lines), atomic_load(&n_flushes));
            _exit(2); /* exit() would flush stdio, which may be stuck */
        }
    }
    for (int i = 0; i < READERS; i++) fclose(readers[i].f);
    return 0;
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(ALARM_SECONDS);
    if (make_file() != 0) {
        report("fork_with_stdio: FAIL: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    double start = now();
    int rc = 0;
    int round = 0;
    while (rc == 0 && round < MAX_ROUNDS && (round < ROUNDS || !enough())) rc = run_round(round++);
    unlink(path);
    if (rc) return rc;
    alarm(0);

    unsigned long forks = atomic_load(&n_forks), overlap = atomic_load(&n_forks_overlap);
    unsigned long lines = atomic_load(&n_lines), flushes = atomic_load(&n_flushes);
    if (atomic_load(&n_bad)) {
        report("fork_with_stdio: FAIL: %lu bad lines, failed forks or children that did not "
               "exit 0\n",
               atomic_load(&n_bad));
        return 1;
    }
    if (!enough()) {
        report("fork_with_stdio: FAIL: too little done in %d rounds to test anything: %lu forks "
               "(%lu during a getline, need %d), %lu getlines (need %d), %lu fflushes (need %d)\n",
               round, forks, overlap, NEED_FORKS, lines, NEED_LINES, flushes, NEED_FLUSHES);
        return 1;
    }
    printf("fork_with_stdio: ok: %lu forks (%lu during a getline), %lu getlines, %lu fflushes, "
           "%d rounds, %.1f s\n",
           forks, overlap, lines, flushes, round, now() - start);
    return 0;
}
