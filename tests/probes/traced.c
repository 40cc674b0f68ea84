/*
 * traced.c: a program whose allocations the trace tests know
 * (tests/integration/trace.bats, MEMALLOC_TRACE). Each call site is a
 * function of its own, so that its return address names it:
 *
 *   temporaries()  1000 x malloc(100), each freed at once (temporary)
 *   buffers()      10 x malloc(1 MiB), all held, then freed together
 *   leaks()        5 x malloc(4096), never freed
 *   grown()        a realloc'd buffer grown by 1 KiB 64 times, freed
 *
 *   traced [threads N | fork | killed | exec PROGRAM ARGS...]
 *
 * Without an argument: the four, once. threads N: the four in each of N
 * threads at once. fork: the four, then a child that runs leaks() and
 * exits; the parent prints "child PID" and waits. killed: the four, then
 * allocations for over a second (the trace is written out at least once
 * a second), then SIGKILL to itself. exec: the four, then exec PROGRAM.
 * Prints "done" (on stdout) when it ends normally.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The compiler must not merge, inline or drop the calls. */
static void *volatile sink;

static __attribute__((noinline)) void temporaries(void) {
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(100);
        p[0] = (char)i;
        sink = p;
        free(p);
    }
}

static __attribute__((noinline)) void buffers(void) {
    char *b[10];
    for (int i = 0; i < 10; i++) {
        b[i] = malloc(1 << 20);
        memset(b[i], i, 4096);
    }
    for (int i = 0; i < 10; i++) free(b[i]);
}

static __attribute__((noinline)) void leaks(void) {
    for (int i = 0; i < 5; i++) {
        char *p = malloc(4096);
        p[0] = 1;
        sink = p;
    }
}

static __attribute__((noinline)) void grown(void) {
    char *p = NULL;
    for (int i = 1; i <= 64; i++) {
        p = realloc(p, (size_t)i << 10);
        p[(i << 10) - 1] = 1;
    }
    free(p);
}

static void *all_four(void *arg) {
    (void)arg;
    temporaries();
    buffers();
    leaks();
    grown();
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "threads") == 0 && argc > 2) {
        int n = atoi(argv[2]);
        pthread_t t[64];
        if (n < 1 || n > 64) return 2;
        for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, all_four, NULL);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    } else {
        all_four(NULL);
    }
    if (strcmp(mode, "fork") == 0) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            leaks();
            exit(0);
        }
        printf("child %d\n", (int)pid);
        int status;
        waitpid(pid, &status, 0);
    } else if (strcmp(mode, "killed") == 0) {
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            temporaries();
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (now.tv_sec - start.tv_sec < 2);
        printf("killing myself\n");
        fflush(stdout);
        kill(getpid(), SIGKILL);
    } else if (strcmp(mode, "exec") == 0 && argc > 2) {
        fflush(stdout);
        execvp(argv[2], argv + 2);
        perror("exec");
        return 1;
    }
    printf("done\n");
    return 0;
}
