#!/usr/bin/env bats
# Regression programs after glibc's own malloc tests (tests/glibc, built into
# $MEMALLOC_BUILD/glibc): fork from a signal handler, fork beside stdio, and
# mallinfo across threads. Each program must pass without the preload (so the
# program itself is sound) and with it; then once more with MEMALLOC_STATS=1,
# which must print memalloc's summary (the library really served the run).
# The programs take a few seconds; the fork programs have watchdogs of their
# own (they report a deadlock after 5-10 s without progress), and a run still
# going after 60 s is killed and reported as the deadlock it is.

load helpers

setup() {
    memalloc_setup
    # shellcheck disable=SC2034 # read by ma_exec (helpers.bash)
    MA_TIMEOUT=60
}

mode_name() {
    case $1 in
    base) echo "without the preload" ;;
    pre) echo "with LD_PRELOAD=$MEMALLOC_LIB" ;;
    stats) echo "with LD_PRELOAD=$MEMALLOC_LIB and MEMALLOC_STATS=1" ;;
    esac
}

# glibc_fail FILE MESSAGE...: print the messages, then FILE's head; fail.
glibc_fail() {
    local file=$1
    shift
    printf '%s\n' "$@" >&2
    show "$file"
    return 1
}

# glibc_run PROG HANG: run build/glibc/PROG without the library, with it, and
# with it and MEMALLOC_STATS=1; each run must exit 0 and print "PROG: ok".
# HANG names the deadlock that a run that times out is taken for (the
# programs name it themselves when their own watchdog fires).
glibc_run() {
    local name=$1 hang=$2 prog=$MEMALLOC_BUILD/glibc/$1 mode rc err out
    [[ -x $prog ]] || fail "program $prog not built (cmake --build $MEMALLOC_BUILD)" || return
    for mode in base pre stats; do
        err=$MA_OUT/$name.$mode.err
        out=$MA_OUT/$name.$mode.out
        if ! ma_exec "$mode" "$name" "$prog"; then
            glibc_fail "$err" "$name hung $(mode_name "$mode"): deadlock: $hang"
            return
        fi
        rc=$(ma_rc "$name" "$mode")
        if [[ $rc != 0 ]] && grep -q deadlock "$err"; then
            glibc_fail "$err" "$name deadlocked $(mode_name "$mode") (exit status $rc): $hang"
            return
        elif [[ $rc != 0 ]]; then
            glibc_fail "$err" "$name failed $(mode_name "$mode"): exit status $rc"
            return
        fi
        if ! grep -q "^$name: ok" "$out"; then
            glibc_fail "$out" "$name exited 0 $(mode_name "$mode") without its '$name: ok' line"
            return
        fi
        # Other allocators need not follow glibc here (jemalloc and tcmalloc
        # deadlock in both fork programs; neither they nor mimalloc serve
        # mallinfo2).
        if [[ $mode == base ]] && is_standin; then
            skip "stand-in library: glibc's behaviour not expected of it"
        fi
    done
    assert_stats_line "$MA_OUT/$name.stats.err"
}

@test "glibc: fork() in a signal handler that interrupted malloc/free, one thread" {
    glibc_run fork_in_signal \
        "fork() from a signal handler, in the thread that is inside malloc/free (the allocator's pthread_atfork handler takes a lock that thread already holds)"
}

@test "glibc: fork() beside getline() and fflush(NULL) in other threads (glibc bug 19431)" {
    glibc_run fork_with_stdio \
        "fork() takes stdio's list lock after the allocator's atfork handler took the arena locks, while getline's realloc holds a FILE lock and fflush(NULL) holds the list lock (glibc bug 19431)"
}

@test "glibc: mallinfo uordblks after malloc(32) and after 20,000 threads that came and went" {
    glibc_run thread_exit_mallinfo \
        "creating and joining threads one at a time, or mallinfo"
}
