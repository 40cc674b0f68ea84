#!/usr/bin/env bash
# Run every test of memalloc:
#   1. plain build (-Werror, gcc): unit, contract and thread tests (ctest),
#      then real programs, misuse programs and stress-ng under LD_PRELOAD (bats);
#   2. UndefinedBehaviorSanitizer build: every non-thread test (ctest);
#   3. ThreadSanitizer build: the thread tests (ctest);
#   4. clang build with -Werror (warnings are errors), and its ctest.
# Build trees go to build/, build-ubsan/, build-tsan/ and build-clang/.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
step() { printf '\n==== %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
passed=0
count() { # add the tests that the output in $log says passed
    local n
    n=$(sed -n 's/.* tests passed, 0 tests failed out of \([0-9]*\)$/\1/p' "$log")
    n=${n:-$(grep -c '^ok ' "$log" || true)}
    passed=$((passed + n))
}
run_ctest() { # dir, ctest args...
    local dir=$1
    shift
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" | tee "$log"
    count
}

configure_and_build() { # dir, extra cmake args...
    local dir=$1
    shift
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMALLOC_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
}

step "gcc build"
configure_and_build build
step "unit, contract and thread tests (ctest)"
run_ctest build
step "real programs under LD_PRELOAD (bats)"
MEMALLOC_LIB="$(pwd)/build/libmemalloc.so" MEMALLOC_BUILD="$(pwd)/build" \
    bats --tap tests/integration | tee "$log"
count

step "UndefinedBehaviorSanitizer build: unit and contract tests"
configure_and_build build-ubsan -DMEMALLOC_SANITIZE=undefined
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_ctest build-ubsan -LE thread

step "ThreadSanitizer build: thread tests"
configure_and_build build-tsan -DMEMALLOC_SANITIZE=thread
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    run_ctest build-tsan -L thread

step "clang build (-Wall -Wextra -Werror) and its tests"
CC=clang configure_and_build build-clang
run_ctest build-clang

step "summary"
echo "all: $passed passed, 0 failed"
