/*
 * launch.c: run one program and report its own peak RSS, for bench/run.py.
 *
 *   launch RESULT [-p LIBRARY] PROGRAM [ARGS...]
 *
 * Forks; the child sets LD_PRELOAD=LIBRARY (when -p is given) and execs
 * PROGRAM; the parent waits for it with wait4() and writes one line to RESULT:
 *   status=<wait status> maxrss_kib=<ru_maxrss of the child> seconds=<wall time>
 * and exits 0 (1 if it could not fork or write RESULT).
 *
 * Why run.py does not wait4() for the program itself: exec() records the
 * peak RSS of the memory it replaces into the process's ru_maxrss, and a
 * process that Python spawns replaces Python's (vfork shares it), so every
 * figure would be at least Python's ~20 MiB. This process is small, and the
 * child it forks starts from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int first = 2;
    const char *preload = NULL;
    if (argc > 3 && !strcmp(argv[2], "-p")) {
        preload = argv[3];
        first = 4;
    }
    if (argc <= first) {
        fprintf(stderr, "usage: launch RESULT [-p LIBRARY] PROGRAM [ARGS...]\n");
        return 1;
    }

    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("launch: fork");
        return 1;
    }
    if (pid == 0) {
        if (preload) setenv("LD_PRELOAD", preload, 1);
        execvp(argv[first], argv + first);
        fprintf(stderr, "launch: cannot run %s: ", argv[first]);
        perror(NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("launch: wait4");
        return 1;
    }
    double t1 = now();

    FILE *f = fopen(argv[1], "w");
    if (!f ||
        fprintf(f, "status=%d maxrss_kib=%ld seconds=%.6f minflt=%ld\n", status, ru.ru_maxrss,
                t1 - t0, ru.ru_minflt) < 0 ||
        fclose(f)) {
        perror("launch: cannot write the result");
        return 1;
    }
    return 0;
}
