#!/usr/bin/env bash
# Count the heap misuses an allocator catches: run every case (kind, size)
# of the misuse programs tests/misuse/check_misuse.c and check_misuse_cxx.cc
# under one configuration, print one line per case and the totals.
#
#   bench/misuse_count.sh CONFIG     (build the programs first: cmake --build build)
#
# CONFIG:
#   glibc               the system allocator
#   glibc-check3        glibc with MALLOC_CHECK_=3 and its debugging library
#                       preloaded (libc_malloc_debug.so.0, where it exists)
#   valgrind            valgrind -q --error-exitcode=99 (memcheck) on glibc
#   memalloc            LD_PRELOAD=libmemalloc.so, default mode
#   memalloc-check1     ... MEMALLOC_CHECK=1
#   memalloc-check2     ... MEMALLOC_CHECK=2
#   memalloc-check2-under  ... MEMALLOC_CHECK=2 MEMALLOC_CHECK_UNDER=1
#
# A case is caught when the program stops (a signal, an abort, any exit
# status but 0) before it prints "went through", which it prints right
# after the misuse if it still runs; for the kinds whose misuse is a
# request (impossible sizes, a freed block's secret seen again), when the
# allocator refused it (the program prints "went through" only when it did
# not). Under valgrind an error reported (exit status 99) counts as caught
# too. A case that went through but whose process then died (memalloc's
# check at exit, e.g. a write after free found when the quarantine is
# verified) is listed as "went through (reported later ...)" and counted
# apart: it is not caught at the misuse.
#
# "no message" after a signal: the process died with nothing on stderr
# (a bare fault: caught by accident, e.g. a write to memory unmapped at
# free, not reported).
#
# Environment: MEMALLOC_BUILD (default: build), MEMALLOC_LIB (default:
# $MEMALLOC_BUILD/libmemalloc.so), MISUSE_SIZES (default: 24 3000
# 1048600), MISUSE_TIMEOUT (seconds per case; default 30, 300 under
# valgrind). Other variables pass through to the programs (e.g.
# MEMALLOC_CHECK_QUARANTINE=16m). Exit status 0 once every case ran, 1 on
# a setup problem.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "$0" | sed '/^$/q' >&2
    exit 1
}
[[ $# -eq 1 ]] || usage
config=$1
build=${MEMALLOC_BUILD:-build}
lib=$(realpath -m "${MEMALLOC_LIB:-$build/libmemalloc.so}")
sizes=${MISUSE_SIZES:-24 3000 1048600}
timeout_s=${MISUSE_TIMEOUT:-30}
debug_lib=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0

runner=(env -u LD_PRELOAD -u MEMALLOC_CHECK -u MEMALLOC_CHECK_UNDER -u MALLOC_CHECK_
    -u MALLOC_PERTURB_ -u MEMALLOC_STATS)
case $config in
glibc) ;;
glibc-check3)
    [[ -f $debug_lib ]] || {
        echo "misuse_count: $debug_lib not found" >&2
        exit 1
    }
    runner+=(MALLOC_CHECK_=3 "LD_PRELOAD=$debug_lib")
    ;;
valgrind)
    command -v valgrind >/dev/null || {
        echo "misuse_count: valgrind not installed" >&2
        exit 1
    }
    runner+=(valgrind -q --error-exitcode=99)
    timeout_s=${MISUSE_TIMEOUT:-300}
    ;;
memalloc) runner+=("LD_PRELOAD=$lib") ;;
memalloc-check1) runner+=("LD_PRELOAD=$lib" MEMALLOC_CHECK=1) ;;
memalloc-check2) runner+=("LD_PRELOAD=$lib" MEMALLOC_CHECK=2) ;;
memalloc-check2-under) runner+=("LD_PRELOAD=$lib" MEMALLOC_CHECK=2 MEMALLOC_CHECK_UNDER=1) ;;
*) usage ;;
esac

progs=()
for p in check_misuse check_misuse_cxx; do
    if [[ -x $build/misuse/$p ]]; then
        progs+=("$build/misuse/$p")
    elif [[ $p == check_misuse ]]; then
        echo "misuse_count: $build/misuse/$p not built (cmake --build $build)" >&2
        exit 1
    else
        echo "misuse_count: $build/misuse/$p not built (no C++ compiler?): its kinds are left out" >&2
    fi
done

if [[ $config == memalloc* ]]; then
    [[ -f $lib ]] || {
        echo "misuse_count: $lib not found" >&2
        exit 1
    }
    # proof that the library serves the programs: its summary line
    proof=$(env LD_PRELOAD="$lib" MEMALLOC_STATS=1 "${progs[0]}" secret-visible 24 2>&1 >/dev/null)
    if ! grep -Eq '^memalloc: allocs=[1-9]' <<<"$proof"; then
        echo "misuse_count: $lib does not serve ${progs[0]}:" >&2
        echo "$proof" >&2
        exit 1
    fi
fi

ulimit -c 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# How a process ended, from its exit status.
ending() {
    local rc=$1
    if ((rc == 124 || rc == 137)); then
        echo "timed out"
    elif ((rc > 128)); then
        local sig
        sig=$(kill -l $((rc - 128)) 2>/dev/null) || sig=$((rc - 128))
        echo "SIG$sig"
    else
        echo "exit $rc"
    fi
}

total=0 caught=0 late=0 failed=0
for prog in "${progs[@]}"; do
    while read -r kind sized; do
        case_sizes=0
        [[ $sized == sized ]] && case_sizes=$sizes
        for size in $case_sizes; do
            rc=0
            # (in a subshell, whose stderr takes the shell's notice of a signal)
            (
                timeout -k 5 "$timeout_s" "${runner[@]}" "$prog" "$kind" "$size" \
                    </dev/null >"$tmp/out" 2>"$tmp/err"
                exit $?
            ) 2>/dev/null || rc=$?
            total=$((total + 1))
            how=$(ending "$rc")
            if ((rc == 2 || rc == 3)); then
                verdict="FAILED to set up ($how): $(head -n 1 "$tmp/err")"
                failed=$((failed + 1))
            elif ((rc == 124 || rc == 137)); then
                verdict="FAILED ($how)"
                failed=$((failed + 1))
            elif ! grep -qx 'went through' "$tmp/out"; then
                if ((rc == 0)); then
                    verdict="caught (refused)"
                elif [[ -s $tmp/err ]]; then
                    verdict="caught ($how)"
                else
                    verdict="caught ($how, no message)"
                fi
                caught=$((caught + 1))
            elif [[ $config == valgrind ]] && ((rc == 99)); then
                verdict="caught (valgrind error)"
                caught=$((caught + 1))
            elif ((rc != 0)); then
                verdict="went through (reported later: $how)"
                late=$((late + 1))
            else
                verdict="went through"
            fi
            printf '%-26s %-8s %s\n' "$kind" "$size" "$verdict"
        done
    done < <("$prog" --list)
done
echo "total: $caught caught of $total in $config ($late more reported later, $failed failed to run)"
