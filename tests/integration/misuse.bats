#!/usr/bin/env bats
# Heap misuse: each program in build/misuse prints the address it is about to
# misuse, then misuses it. Under memalloc it must die of SIGABRT (134) after
# one exact line on stderr.
# shellcheck disable=SC2154,SC2030,SC2031 # stderr, output: set by bats' run

load helpers

setup() {
    memalloc_setup
}

# check_misuse PROG WHAT [glibc]: under the preload PROG must abort with
# "memalloc: WHAT <address>" as the only line on stderr. With "glibc", the
# program must not exit 0 without the preload either (glibc catches it or
# crashes), which shows the program really misuses the heap. MISUSE_ENV
# holds VAR=VALUE words for the preloaded run's environment, MISUSE_ARGS
# the program's arguments (both runs).
check_misuse() {
    local prog=$MEMALLOC_BUILD/misuse/$1 what=$2 addr expected
    [[ -x $prog ]] || fail "misuse program $prog not built (cmake --build $MEMALLOC_BUILD)"

    if [[ ${3:-} == glibc ]]; then
        # shellcheck disable=SC2086 # MISUSE_ARGS is a list of words
        run --separate-stderr "$prog" ${MISUSE_ARGS:-}
        [[ $status -ne 0 ]] || fail "$1 exits 0 without the preload: it misuses nothing?"
        [[ $status -ne 3 ]] || fail "$1 did not set up its misuse with glibc:" "$stderr"
    fi

    is_standin && skip "stand-in library: memalloc's messages not expected"
    # shellcheck disable=SC2086 # MISUSE_ENV and MISUSE_ARGS are lists of words
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" ${MISUSE_ENV:-} "$prog" ${MISUSE_ARGS:-}
    addr=${lines[0]:-}
    [[ $addr =~ ^0x[0-9a-f]+$ ]] || fail "$1: first stdout line is not an address: '$addr'" \
        "stderr: $stderr"
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
    # 80 KiB blocks: boundary-tag chunks, which merge (smaller blocks are
    # objects of pages, which do not); the program checks they are
    # neighbours. With the purge delay at its maximum, the merged free
    # chunk's pages (p's old header among them) cannot be given back to
    # the OS between the frees, however slowly the program runs: the old
    # header stays as the first free left it, and the second free must be
    # named a double free, nothing else.
    MISUSE_ENV="MEMALLOC_PURGE_DELAY=1000000" check_misuse double_free_merged \
        "free(): double free of" glibc
}

@test "misuse: double free of a block merged with its neighbours and purged since" {
    # The same with the purge delay at 0: the merged chunk's OS pages, p's
    # old header among them, go back to the OS at the first free of p and
    # read as zero; the second free finds p inside a free chunk.
    MISUSE_ENV="MEMALLOC_PURGE_DELAY=0" check_misuse double_free_merged "free(): double free of"
}

@test "misuse: heap overflow into the next block's header, then free() of the block" {
    # 80 KiB blocks: boundary-tag chunks, the only blocks with headers.
    check_misuse heap_overflow "free(): heap corruption near" glibc
}

@test "misuse: heap overflow into the next block's header, then free() of that next block" {
    MISUSE_ARGS=next check_misuse heap_overflow "free(): heap corruption near" glibc
}

@test "misuse: write to a freed small block, then malloc() of its size" {
    # glibc hands the block out again without noticing: no glibc check.
    check_misuse write_after_free "malloc(): heap corruption (a freed block was written to) near"
}

@test "misuse: realloc() of a stack address" {
    check_misuse realloc_invalid "realloc(): invalid pointer" glibc
}

@test "misuse: realloc() of a freed small block" {
    check_misuse realloc_freed "realloc(): pointer already freed" glibc
}

@test "misuse: realloc() of a freed large (mmapped) block" {
    check_misuse realloc_freed_large "realloc(): pointer already freed" glibc
}

@test "misuse: malloc_usable_size() of a stack address" {
    # glibc reads a garbage header and carries on: no glibc check.
    check_misuse usable_size_invalid "malloc_usable_size(): invalid pointer"
}

# check_backtrace PROG: gdb's backtrace ($frames) from PROG's abort under
# memalloc. Frames are memalloc's when gdb places them in the library's
# sources (src/ or preload/) or in the library file; main must be named,
# in PROG's source file. Required: the frames are numbered #0 to the last
# without a gap, and the last is main; memalloc's frames are all named,
# one is on the fatal path (ma_fatal, os_abort: a name with fatal, abort,
# die, panic, crash or error, so that the engine may rename its functions)
# and one on the free path (a name with free or validate);
# below the first of memalloc's frames every frame is memalloc's or main.
# The frames above memalloc's are libc's (abort, raise...): they may be
# unnamed ("?? () from .../libc.so.6" where libc's debug symbols are not
# installed).
check_backtrace() {
    local prog=$1
    awk -v prog="$prog" '
        function bad(msg) { print msg > "/dev/stderr"; failed = 1 }
        /^#[0-9]+ / {
            n = substr($1, 2) + 0
            if (n != count) bad("frame #" n " where #" count " was due: a frame is missing")
            count++
            ours = $0 ~ / at [^ ]*\/(src|preload)\/[A-Za-z0-9_]+\.c:[0-9]+$/ ||
                   $0 ~ / from [^ ]*libmemalloc\.so[.0-9]*$/
            is_main = $0 ~ (" main \\(\\) at [^ ]*/" prog "\\.c:[0-9]+$")
            unknown = $0 ~ /\?\? \(/
            if (ours) {
                seen_ours = 1
                if (unknown) bad("an unnamed memalloc frame: " $0)
                if ($0 ~ /(fatal|abort|die|panic|crash|error)[A-Za-z0-9_]* \(/) fatal = 1
                if ($0 ~ /(free|validate)[A-Za-z0-9_]* \(/) freepath = 1
            } else if (seen_ours && !is_main) {
                bad("a frame below memalloc'"'"'s that is neither memalloc'"'"'s nor main: " $0)
            }
            last_main = is_main
        }
        END {
            if (count == 0) bad("no backtrace")
            if (!seen_ours) bad("no memalloc frame (src/, preload/ or libmemalloc.so)")
            if (!fatal) bad("no memalloc frame on the fatal path (ma_fatal, os_abort...)")
            if (!freepath) bad("no memalloc frame on the free path (a name with free or validate)")
            if (!last_main) bad("the last frame is not main, named in " prog ".c")
            exit failed
        }' <<<"$frames"
}

# gdb_backtrace PROG [GDB-COMMAND...]: run PROG under gdb with the preload
# (the commands first), until it stops; $frames gets the backtrace.
gdb_backtrace() {
    local prog=$MEMALLOC_BUILD/misuse/$1
    shift
    local -a cmds=()
    local c
    for c in "$@"; do cmds+=(-ex "$c"); done
    run gdb -q -batch -nx "${cmds[@]}" -ex "set startup-with-shell off" \
        -ex "set environment LD_PRELOAD=$MEMALLOC_LIB" -ex run -ex bt "$prog"
    [[ $output == *"SIGABRT"* ]] || fail "the program did not stop on SIGABRT:" "$output"
    frames=$(grep -E '^#[0-9]+ ' <<<"$output") || fail "no backtrace:" "$output"
}

@test "misuse: gdb's backtrace from memalloc's abort goes through its frames to main" {
    # The library carries its call-frame information in .debug_frame, not in
    # a loaded .eh_frame: a debugger must still unwind through it.
    local prog=double_free_small frames
    [[ -x $MEMALLOC_BUILD/misuse/$prog ]] || fail "misuse program $prog not built"
    command -v gdb >/dev/null || fail "gdb not installed (scripts/install-deps.sh installs it)"
    is_standin && skip "stand-in library: memalloc's frames not expected"
    gdb_backtrace "$prog"
    check_backtrace "$prog" || fail "backtrace:" "$frames"
    # As on a machine without libc's debug symbols (no libc6-dbg): libc's
    # frames are unnamed there, memalloc's and main must still be.
    gdb_backtrace "$prog" "set debug-file-directory /nonexistent"
    check_backtrace "$prog" || fail "backtrace without libc's debug symbols:" "$frames"
}

# run_kind KIND SIZE [glibc]: check_misuse (the check modes' program) KIND
# SIZE, preloaded (or on glibc): status, output, stderr; block: the
# address it printed.
run_kind() {
    local prog=$MEMALLOC_BUILD/misuse/check_misuse
    [[ -x $prog ]] || fail "misuse program $prog not built (cmake --build $MEMALLOC_BUILD)"
    if [[ ${3:-} == glibc ]]; then
        run --separate-stderr "$prog" "$1" "$2"
    else
        run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" "$prog" "$1" "$2"
    fi
    block=""
    [[ ${lines[0]:-} =~ ^block=(0x[0-9a-f]+)\ size= ]] && block=${BASH_REMATCH[1]}
    [[ -n $block ]] || fail "$1 $2: no block= line on stdout:" "$output" "$stderr"
}

@test "misuse: a block of 0 bytes faults at a read or a write, before and after free" {
    local kind
    for kind in zero-write zero-read zero-write-after-free zero-read-after-free; do
        # glibc's block of 0 bytes has 24 usable ones: the access goes through
        run_kind "$kind" 0 glibc
        [[ $status -eq 0 && $output == *"went through"* ]] ||
            fail "$kind: not through on glibc (status $status):" "$output"
        is_standin && continue
        run_kind "$kind" 0
        [[ $status -eq 139 ]] || fail "$kind: exit status $status, expected 139 (SIGSEGV)" \
            "$output" "$stderr"
        [[ $output != *"went through"* ]] || fail "$kind: went through"
    done
}

@test "misuse: a write of a MiB past a small or medium block faults where the heap's used part ends" {
    # the rest of a region is inaccessible until carving reaches it, as
    # glibc's heap ends at its top (glibc faults here too)
    is_standin && skip "memalloc's own layout"
    local kind size
    for kind in overflow-1m overflow-memset-1m; do
        for size in 24 3000; do
            run_kind "$kind" "$size"
            [[ $status -eq 139 ]] || fail "$kind $size: exit status $status, expected 139 (SIGSEGV)" \
                "$output" "$stderr"
            [[ $output != *"went through"* ]] || fail "$kind $size: went through"
        done
    done
}

@test "misuse: a write to the first byte of a freed small block, then malloc() of its size" {
    # the key a free object keeps is its first word: the pop finds it
    # changed before it follows the next link (glibc hands the block out)
    local size
    for size in 24 3000; do
        run_kind uaf-write-then-malloc "$size" glibc
        [[ $status -eq 0 ]] || fail "glibc: exit status $status" "$stderr"
        is_standin && continue
        run_kind uaf-write-then-malloc "$size"
        [[ $stderr == "memalloc: malloc(): heap corruption (a freed block was written to) near $block" ]] ||
            fail "$size: stderr is not the expected line:" "$stderr"
        [[ $status -eq 134 ]] || fail "$size: exit status $status, expected 134 (SIGABRT)"
        [[ $output != *"went through"* ]] || fail "$size: went through"
    done
}
