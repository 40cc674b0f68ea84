#!/usr/bin/env bash
# Run every test of memalloc, every step even when one fails, then print a
# line per step and the totals, and exit non-zero if any test or build
# failed:
#   1. gcc build (-Werror): unit, contract and thread tests and the layering
#      check (ctest), then real programs, misuse programs, probes, glibc's
#      regressions and stress-ng under LD_PRELOAD (bats);
#   2. Debug build (-O0, the engine's runtime assertions, ma_assert): ctest;
#   3. UndefinedBehaviorSanitizer build, assertions on: every non-thread
#      test (ctest);
#   4. ThreadSanitizer build, assertions on: the thread tests (ctest);
#   5. clang build (-Werror), and its ctest.
#   6. fault-injection build (build-faults): tests/faults (ctest -L faults).
# Build trees go to build/, build-debug/, build-ubsan/, build-tsan/ and
# build-clang/.
#
# Tests are counted one by one: each test of a harness program (the
# programs of tests/unit write a line per test to $HARNESS_RESULTS, see
# tests/unit/harness.h), combined with ctest's verdict on the program (a
# program that crashes, times out or fails outside its tests counts a
# failure even if every test it finished passed; a program that writes no
# lines counts as one test); and each bats test (ok, ok # skip, not ok; a
# test that bats planned but never reported is a failure). A skip is what
# the machine cannot do (no transparent huge pages, one CPU); a missing
# tool that scripts/install-deps.sh installs is a failure.
#
# A step is one line at the end of this file: ctest_step for a build and
# its ctest, bats_step for the integration tests against a build.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
jobs=$(nproc)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -a step_names=() step_pass=() step_fail=() step_skip=() step_notes=() step_secs=()
step_start=$SECONDS # when the running step began
declare -A built=() # build directory -> 1 once it built in this run
failures=()         # "step: test: why", for the summary

banner() { printf '\n==== %s\n' "$*"; }

# record STEP PASSED FAILED SKIPPED [NOTE]: the step's results (and its
# duration, from step_start).
record() {
    step_secs+=($((SECONDS - step_start)))
    step_names+=("$1")
    step_pass+=("$2")
    step_fail+=("$3")
    step_skip+=("$4")
    step_notes+=("${5:-}")
}

# build DIR [cmake args...]: configure and build DIR; non-zero if either fails.
build() {
    local dir=$1
    shift
    if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMALLOC_WERROR=ON "$@" \
        >"$work/cmake.log" 2>&1; then
        cat "$work/cmake.log"
        return 1
    fi
    cmake --build "$dir" -j"$jobs"
}

# count_ctest LABEL JUNIT RESULTS: the tests of one ctest run, from its
# JUnit report (the verdict on each program) and the harness's result
# lines; prints "PASSED FAILED SKIPPED", and a line per failure in
# $work/failed.
count_ctest() {
    local label=$1 junit=$2 results=$3
    [[ -f $results ]] || : >"$results"
    # testcase lines: NAME STATUS (run, fail, notrun, disabled)
    sed -n 's/.*<testcase name="\([^"]*\)".* status="\([a-z]*\)".*/\1 \2/p' "$junit" >"$work/verdicts"
    awk -F'\t' -v label="$label" -v failed_out="$work/failed" '
        FNR == NR {                           # the harness lines
            key = $2 SUBSEP $3
            if ($1 == "run") { running[key] = 1; order[++nrun] = key; next }
            delete running[key]
            suites[$2] = 1
            if ($1 == "pass") pass[$2]++
            else if ($1 == "skip") skip[$2]++
            else { fail[$2]++; print label ": " $2 ": " $3 ": " $4 > failed_out }
            next
        }
        {                                     # the verdicts: NAME STATUS
            split($0, v, " ")
            name = v[1]; status = v[2]; seen[name] = 1
            for (i = 1; i <= nrun; i++) {     # a test started, never ended
                split(order[i], k, SUBSEP)
                if (k[1] == name && (order[i] in running)) {
                    delete running[order[i]]
                    suites[name] = 1
                    fail[name]++
                    print label ": " name ": " k[2] ": died in this test (" status ")" > failed_out
                }
            }
            if (name in suites) {
                if (status != "run" && !fail[name]) {
                    fail[name]++
                    print label ": " name ": the program failed (" status \
                        ") outside its tests: a crash, a timeout or a failed check in main" > failed_out
                }
                P += pass[name]; F += fail[name]; S += skip[name]
            } else if (status == "run") {
                P++
            } else {
                F++
                print label ": " name ": failed (" status ")" > failed_out
            }
        }
        END {
            for (s in suites)                 # lines of a suite ctest did not name
                if (!(s in seen)) {
                    P += pass[s]; F += fail[s]; S += skip[s]
                }
            for (i = 1; i <= nrun; i++)
                if (order[i] in running) {
                    split(order[i], k, SUBSEP)
                    if (!(k[1] in seen)) {
                        F++
                        print label ": " k[1] ": " k[2] ": died in this test" > failed_out
                    }
                }
            print P + 0, F + 0, S + 0
        }' "$results" "$work/verdicts"
}

# ctest_step LABEL DIR CMAKE_ARGS CTEST_ARGS [VAR=VALUE...]: build DIR with
# CMAKE_ARGS (words), then run its ctest with CTEST_ARGS (words); the
# variables are in the environment of both.
ctest_step() {
    local label=$1 dir=$2 cmake_args=$3 ctest_args=$4
    shift 4
    local -a vars=("$@") cargs targs
    read -ra cargs <<<"$cmake_args"
    read -ra targs <<<"$ctest_args"
    local results=$work/$dir.results junit=$work/$dir.junit.xml counts rc=0 p f s line
    step_start=$SECONDS
    banner "$label: build ($dir)"
    if ! (
        ((${#vars[@]} == 0)) || export "${vars[@]}"
        build "$dir" "${cargs[@]}"
    ); then
        record "$label: build" 0 1 0 "FAILED"
        failures+=("$label: the build of $dir failed")
        return
    fi
    record "$label: build" 0 0 0 "built"
    built[$dir]=1
    step_start=$SECONDS
    banner "$label: ctest ${ctest_args}"
    rm -f "$results" "$junit"
    env "${vars[@]}" HARNESS_RESULTS="$results" ctest --test-dir "$dir" --output-on-failure \
        -j"$jobs" --output-junit "$junit" "${targs[@]}" || rc=$?
    if [[ ! -s $junit ]]; then
        record "$label: ctest" 0 1 0 "ctest did not run (status $rc)"
        failures+=("$label: ctest did not run (status $rc)")
        return
    fi
    rm -f "$work/failed"
    counts=$(count_ctest "$label" "$junit" "$results")
    read -r p f s <<<"$counts"
    if [[ -f $work/failed ]]; then
        while IFS= read -r line; do failures+=("$line"); done <"$work/failed"
    fi
    if ((rc != 0 && f == 0)); then
        f=1
        failures+=("$label: ctest exited $rc with no failed test")
    fi
    record "$label: ctest" "$p" "$f" "$s"
}

# bats_step LABEL DIR: the integration tests (tests/integration, bats)
# against DIR's library and programs.
bats_step() {
    local label=$1 dir=$2 log=$work/bats.log rc=0 line
    step_start=$SECONDS
    banner "$label: real programs, misuse, probes under LD_PRELOAD (bats)"
    if [[ -z ${built[$dir]:-} ]]; then
        record "$label: bats" 0 1 0 "not run: $dir did not build"
        failures+=("$label: bats not run: $dir did not build")
        return
    fi
    if ! command -v bats >/dev/null; then
        record "$label: bats" 0 1 0 "bats not installed (scripts/install-deps.sh)"
        failures+=("$label: bats not installed (scripts/install-deps.sh installs it)")
        return
    fi
    MEMALLOC_LIB="$(pwd)/$dir/libmemalloc.so" MEMALLOC_BUILD="$(pwd)/$dir" \
        bats --tap tests/integration | tee "$log" || rc=${PIPESTATUS[0]}
    local planned p f s
    planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$log" | head -n 1)
    p=$(grep -Ec '^ok [0-9]+ ' "$log")
    s=$(grep -Ec '^ok [0-9]+ .* # skip( |$)' "$log")
    f=$(grep -Ec '^not ok [0-9]+ ' "$log")
    p=$((p - s))
    while IFS= read -r line; do failures+=("$label: bats: ${line#not ok }"); done \
        < <(grep -E '^not ok [0-9]+ ' "$log")
    if [[ -z $planned ]]; then
        f=$((f + 1))
        failures+=("$label: bats printed no plan (status $rc)")
    elif ((p + s + f < planned)); then
        failures+=("$label: bats: $((planned - p - s - f)) planned tests never reported")
        f=$((planned - p - s))
    fi
    if ((rc != 0 && f == 0)); then
        f=1
        failures+=("$label: bats exited $rc with no failed test")
    fi
    record "$label: bats" "$p" "$f" "$s"
}

summary() {
    local i tp=0 tf=0 ts=0
    banner "summary"
    for i in "${!step_names[@]}"; do
        if [[ ${step_names[$i]} == *": build" ]]; then # a build: built, or one failure
            printf '%-16s %-38s %4d s\n' "${step_names[$i]}" "${step_notes[$i]}" \
                "${step_secs[$i]}"
        else
            printf '%-16s %4d passed, %3d failed, %3d skipped  %4d s%s\n' "${step_names[$i]}" \
                "${step_pass[$i]}" "${step_fail[$i]}" "${step_skip[$i]}" "${step_secs[$i]}" \
                "${step_notes[$i]:+  (${step_notes[$i]})}"
        fi
        tp=$((tp + step_pass[i]))
        tf=$((tf + step_fail[i]))
        ts=$((ts + step_skip[i]))
    done
    if ((${#failures[@]})); then
        echo "failed:"
        printf '  %s\n' "${failures[@]}"
    fi
    echo "time: $SECONDS s"
    echo "all: $tp passed, $tf failed, $ts skipped"
    ((tf == 0))
}

ctest_step "gcc" build "" ""
bats_step "gcc" build
ctest_step "debug" build-debug "-DCMAKE_BUILD_TYPE=Debug" ""
ctest_step "ubsan" build-ubsan "-DMEMALLOC_SANITIZE=undefined -DMEMALLOC_ASSERT=ON" "-LE thread" \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest_step "tsan" build-tsan "-DMEMALLOC_SANITIZE=thread -DMEMALLOC_ASSERT=ON" "-L thread" \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
ctest_step "clang" build-clang "" "" CC=clang
ctest_step "faults" build-faults "-DMEMALLOC_FAULT_INJECT=ON" "-L faults"
summary
