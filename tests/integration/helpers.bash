# Shared helpers for the memalloc integration tests (bats >= 1.5).
#
# Environment:
#   MEMALLOC_BUILD    build directory (default: $BATS_TEST_DIRNAME/../../build)
#   MEMALLOC_LIB      library to preload (default: $MEMALLOC_BUILD/libmemalloc.so)
#   MEMALLOC_TIMEOUT  seconds allowed to one command (default: 120)
#   MEMALLOC_STANDIN  1: MEMALLOC_LIB is another allocator (e.g. jemalloc), used
#                     to check the suite itself: the memalloc-only assertions
#                     (summary lines, misuse messages) are skipped.
#
# Each command runs three ways, through ma_exec: "base" (no preload), "pre"
# (LD_PRELOAD=$MEMALLOC_LIB) and "stats" (the same plus MEMALLOC_STATS=1).
# Two more modes run it under a check mode: "check1" and "check2" (the
# preload plus MEMALLOC_CHECK=1 or 2, and no leak report).
# Its stdout, stderr and exit status land in $MA_OUT/NAME.MODE.{out,err,rc}.
# "@MODE@" in an argument is replaced by the mode, so that each run can write
# its files in a place of its own. MA_STDIN names a file for its stdin.

bats_require_minimum_version 1.5.0

export LC_ALL=C TZ=UTC
unset LD_PRELOAD MEMALLOC_STATS
ulimit -c 0

MA_STATS_RE='^memalloc: allocs=[1-9][0-9]* '

# Resolve the paths; fail (not skip) when the library is missing.
memalloc_setup() {
    local root
    root=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
    MEMALLOC_BUILD=$(realpath -m "${MEMALLOC_BUILD:-$root/build}")
    MEMALLOC_LIB=$(realpath -m -s "${MEMALLOC_LIB:-$MEMALLOC_BUILD/libmemalloc.so}")
    MA_TIMEOUT=${MEMALLOC_TIMEOUT:-120}
    # shellcheck disable=SC2034 # used by the tests
    MA_ROOT=$root
    export MEMALLOC_BUILD MEMALLOC_LIB
    if [[ ! -f $MEMALLOC_LIB ]]; then
        echo "memalloc library not found: $MEMALLOC_LIB" >&2
        echo "build it first: cmake -S $root -B $MEMALLOC_BUILD && cmake --build $MEMALLOC_BUILD" >&2
        echo "(or point MEMALLOC_LIB at it)" >&2
        return 1
    fi
    # The file the dynamic loader maps (build/libmemalloc.so is a symlink).
    MEMALLOC_LIB_REAL=$(readlink -f "$MEMALLOC_LIB")
    MA_OUT=$BATS_TEST_TMPDIR/out
    mkdir -p "$MA_OUT"
}

is_standin() { [[ ${MEMALLOC_STANDIN:-0} == 1 ]]; }

fail() {
    printf '%s\n' "$@" >&2
    return 1
}

# ma_exec MODE NAME CMD...: run CMD (stdin from /dev/null) in MODE.
ma_exec() {
    local mode=$1 name=$2 rc=0
    shift 2
    set -- "${@//@MODE@/$mode}"
    local -a envs=(-u LD_PRELOAD -u MEMALLOC_STATS)
    case $mode in
    base) ;;
    pre) envs+=("LD_PRELOAD=$MEMALLOC_LIB") ;;
    stats) envs+=("LD_PRELOAD=$MEMALLOC_LIB" MEMALLOC_STATS=1) ;;
    check1 | check2)
        envs+=(-u MEMALLOC_CHECK_LEAKS "LD_PRELOAD=$MEMALLOC_LIB" "MEMALLOC_CHECK=${mode#check}")
        ;;
    sample) envs+=("LD_PRELOAD=$MEMALLOC_LIB" "MEMALLOC_SAMPLE=${MA_SAMPLE:-10}") ;;
    *) fail "ma_exec: bad mode $mode" || return ;;
    esac
    timeout -k 10 "$MA_TIMEOUT" env "${envs[@]}" "$@" \
        <"${MA_STDIN:-/dev/null}" >"$MA_OUT/$name.$mode.out" 2>"$MA_OUT/$name.$mode.err" || rc=$?
    echo "$rc" >"$MA_OUT/$name.$mode.rc"
    if ((rc == 124)); then
        fail "$mode run of '$*' timed out after ${MA_TIMEOUT}s"
        return
    fi
    return 0
}

ma_rc() { cat "$MA_OUT/$1.$2.rc"; }

# Show the head of a file in a failure message.
show() {
    echo "--- $1 (first 20 lines) ---" >&2
    head -n 20 "$1" >&2
}

# assert_same_files NAME A B WHAT: A and B must be identical.
assert_same_files() {
    if ! cmp -s "$2" "$3"; then
        echo "$1: $4 differs with the preload (< without, > with):" >&2
        diff "$2" "$3" | head -n 20 >&2
        return 1
    fi
}

# compare_run NAME CMD...: run CMD without and with the library; the exit
# status, stdout and stderr must be the same (memalloc is silent unless
# MEMALLOC_STATS is set). Then prove memalloc served it (assert_served).
compare_run() {
    local name=$1
    shift
    ma_exec base "$name" "$@" || return
    ma_exec pre "$name" "$@" || return
    compare_outputs "$name" pre || return
    assert_served "$name" "$@"
}

# compare_outputs NAME MODE: MODE's status/stdout/stderr against base's.
compare_outputs() {
    local name=$1 mode=$2 base rc
    base=$(ma_rc "$name" base)
    rc=$(ma_rc "$name" "$mode")
    if [[ $base != "$rc" ]]; then
        echo "$name: exit status $base without the library, $rc with it" >&2
        show "$MA_OUT/$name.$mode.err"
        return 1
    fi
    assert_same_files "$name" "$MA_OUT/$name.base.out" "$MA_OUT/$name.$mode.out" stdout || return
    if [[ $mode == pre ]]; then
        assert_same_files "$name" "$MA_OUT/$name.base.err" "$MA_OUT/$name.$mode.err" stderr
    fi
}

# compare_check NAME MODE...: CMD has run in mode base and in each check
# MODE (check1, check2): the same exit status, stdout and stderr as base,
# and no line of memalloc's (no report: the programs are correct).
compare_check() {
    local name=$1 mode
    shift
    for mode in "$@"; do
        if grep -q 'memalloc:' "$MA_OUT/$name.$mode.err"; then
            echo "$name: memalloc reported under $mode:" >&2
            grep -m 1 -A 30 'memalloc:' "$MA_OUT/$name.$mode.err" >&2
            return 1
        fi
        compare_outputs "$name" "$mode" || return
        assert_same_files "$name" "$MA_OUT/$name.base.err" "$MA_OUT/$name.$mode.err" \
            "stderr (under $mode)" || return
    done
}

# check_run NAME MODES CMD...: run CMD without the library, then in each
# check mode of the list MODES ("check1 check2", or one of them), and
# compare (compare_check).
check_run() {
    local name=$1 mode
    local -a modes
    read -ra modes <<<"$2"
    shift 2
    ((${#modes[@]} > 0)) || fail "check_run $name: no mode" || return
    ma_exec base "$name" "$@" || return
    for mode in "${modes[@]}"; do
        [[ $mode == check[12] || $mode == sample ]] || fail "check_run $name: bad mode $mode" || return
        ma_exec "$mode" "$name" "$@" || return
    done
    compare_check "$name" "${modes[@]}"
}

# assert_stats_line FILE: FILE holds memalloc's summary with allocs > 0.
assert_stats_line() {
    is_standin && return 0
    if ! grep -Eq "$MA_STATS_RE" "$1"; then
        echo "no 'memalloc: allocs=N' summary line (N > 0) in $1: memalloc did not serve the run" >&2
        show "$1"
        return 1
    fi
}

# assert_served NAME CMD...: run CMD once more with MEMALLOC_STATS=1; it must
# behave as before (status and stdout) and print the summary line.
assert_served() {
    local name=$1
    shift
    ma_exec stats "$name" "$@" || return
    if [[ -f $MA_OUT/$name.base.rc ]]; then
        compare_outputs "$name" stats || return
    fi
    assert_stats_line "$MA_OUT/$name.stats.err"
}

# assert_mapped CMD...: the library is mapped in a process started with the
# preload (CMD reads /proc/self/maps, e.g. "cat").
assert_mapped() {
    local n
    n=$(env LD_PRELOAD="$MEMALLOC_LIB" "$@" /proc/self/maps | grep -cF "$MEMALLOC_LIB_REAL") || true
    if ((n < 1)); then
        fail "$MEMALLOC_LIB_REAL is not mapped in '$*' run with LD_PRELOAD=$MEMALLOC_LIB"
        return
    fi
}

# make_tree DIR: a deterministic tree of directories, text and binary files,
# symlinks and an empty file, with fixed modification times.
make_tree() {
    local dir=$1 d f
    mkdir -p "$dir"
    for d in 0 1 2 3 4 5 6 7; do
        mkdir -p "$dir/d$d/sub$((d % 3))/deep"
        for f in 0 1 2 3 4 5 6 7 8 9 10 11; do
            awk -v d="$d" -v f="$f" 'BEGIN {
                n = (d * 13 + f * 7) % 40 * 37 + 1
                for (i = 0; i < n; i++) printf "line %d of file %d/%d: %08x\n", i, d, f, (i * 2654435761 + d * f) % 4294967296
            }' >"$dir/d$d/file$f.txt"
        done
        head -c $((d * 40000 + 123)) /usr/bin/perl >"$dir/d$d/sub$((d % 3))/blob.bin"
        printf 'deep %s\n' "$d" >"$dir/d$d/sub$((d % 3))/deep/leaf"
    done
    : >"$dir/empty"
    ln -s d1/file1.txt "$dir/link"
    find "$dir" -exec touch -h -d '2024-01-02 03:04:05' {} +
}

# make_sort_input FILE: 200,000 deterministic lines "number,key,index" (about 3.6 MB).
make_sort_input() {
    awk 'BEGIN {
        s = 12345
        for (i = 0; i < 200000; i++) {
            s = (s * 1103515245 + 12345) % 2147483648
            printf "%d,k%d,%d\n", s % 100000, s % 7919, i
        }
    }' >"$1"
    [[ $(wc -l <"$1") == 200000 ]]
}
