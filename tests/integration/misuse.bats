#!/usr/bin/env bats
# Heap misuse: each program in build/misuse prints the address it is about to
# misuse, then misuses it. Under memalloc it must die of SIGABRT (134) after
# one exact line on stderr.
# shellcheck disable=SC2154 # stderr is set by bats' run --separate-stderr

load helpers

setup() {
    memalloc_setup
}

# check_misuse PROG WHAT [glibc]: under the preload PROG must abort with
# "memalloc: WHAT <address>" as the only line on stderr. With "glibc", the
# program must not exit 0 without the preload either (glibc catches it or
# crashes), which shows the program really misuses the heap.
check_misuse() {
    local prog=$MEMALLOC_BUILD/misuse/$1 what=$2 addr expected
    [[ -x $prog ]] || fail "misuse program $prog not built (cmake --build $MEMALLOC_BUILD)"

    if [[ ${3:-} == glibc ]]; then
        run --separate-stderr "$prog"
        [[ $status -ne 0 ]] || fail "$1 exits 0 without the preload: it misuses nothing?"
    fi

    is_standin && skip "stand-in library: memalloc's messages not expected"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" "$prog"
    addr=${lines[0]:-}
    [[ $addr =~ ^0x[0-9a-f]+$ ]] || fail "$1: first stdout line is not an address: '$addr'"
    expected="memalloc: $what $addr"
    if [[ $stderr != "$expected" ]]; then
        fail "$1: stderr is not the expected line" "expected: $expected" "stderr:" "$stderr"
        return
    fi
    [[ $status -eq 134 ]] || fail "$1: exit status $status, expected 134 (SIGABRT)" "$stderr"
    [[ $output != *survived* ]] || fail "$1: the program went on after the misuse"
}

@test "misuse: free() of a stack address" {
    check_misuse free_stack "free(): invalid pointer" glibc
}

@test "misuse: free() of a global" {
    check_misuse free_global "free(): invalid pointer" glibc
}

@test "misuse: free() of an interior pointer (p + 16) of a live small block" {
    check_misuse free_interior "free(): invalid pointer" glibc
}

@test "misuse: free() of an interior pointer (p + 4096) of a live mmapped block" {
    check_misuse free_interior_large "free(): invalid pointer" glibc
}

@test "misuse: free() of an unaligned pointer (p + 1)" {
    check_misuse free_unaligned "free(): invalid pointer" glibc
}

@test "misuse: free() of a far unmapped address" {
    check_misuse free_far "free(): invalid pointer" glibc
}

@test "misuse: double free of a small block" {
    check_misuse double_free_small "free(): double free of" glibc
}

@test "misuse: double free of a large (mmapped) block" {
    check_misuse double_free_large "free(): double free of" glibc
}

@test "misuse: double free of a block merged with its free neighbours" {
    # Any of memalloc's free() errors will do here, naming the pointer.
    local prog=$MEMALLOC_BUILD/misuse/double_free_merged addr
    [[ -x $prog ]] || fail "misuse program $prog not built"
    is_standin && skip "stand-in library: memalloc's messages not expected"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" "$prog"
    addr=${lines[0]:-}
    [[ $addr =~ ^0x[0-9a-f]+$ ]] || fail "first stdout line is not an address: '$addr'"
    [[ $stderr =~ ^memalloc:\ free\(\):\ [a-z\ ]+\ $addr$ ]] ||
        fail "stderr is not one 'memalloc: free(): ... $addr' line:" "$stderr"
    [[ $status -eq 134 ]] || fail "exit status $status, expected 134 (SIGABRT)"
}

@test "misuse: realloc() of a stack address" {
    check_misuse realloc_invalid "realloc(): invalid pointer" glibc
}

@test "misuse: realloc() of a freed small block" {
    check_misuse realloc_freed "realloc(): pointer already freed" glibc
}

@test "misuse: malloc_usable_size() of a stack address" {
    # glibc reads a garbage header and carries on: no glibc check.
    check_misuse usable_size_invalid "malloc_usable_size(): invalid pointer"
}

@test "misuse: gdb's backtrace from memalloc's abort goes through its frames to main" {
    # The library carries its call-frame information in .debug_frame, not in
    # a loaded .eh_frame: a debugger must still unwind through it.
    local prog=$MEMALLOC_BUILD/misuse/double_free_small
    [[ -x $prog ]] || fail "misuse program $prog not built"
    command -v gdb >/dev/null || fail "gdb not installed (scripts/install-deps.sh installs it)"
    is_standin && skip "stand-in library: memalloc's frames not expected"
    run gdb -q -batch -nx -ex "set startup-with-shell off" \
        -ex "set environment LD_PRELOAD=$MEMALLOC_LIB" -ex run -ex bt "$prog"
    [[ $output == *"SIGABRT"* ]] || fail "the program did not stop on SIGABRT:" "$output"
    local frames
    frames=$(grep -E '^#[0-9]+ ' <<<"$output") || fail "no backtrace:" "$output"
    grep -q ' ma_fatal ' <<<"$frames" || fail "no memalloc frame (ma_fatal) in the backtrace:" "$frames"
    grep -qE ' main \(\) at .*double_free_small\.c' <<<"$frames" ||
        fail "the backtrace does not reach main:" "$frames"
    ! grep -q '?? ()' <<<"$frames" || fail "an unknown frame in the backtrace:" "$frames"
}
