#!/usr/bin/env bats
# The real programs of coreutils.bats, interpreters.bats and tools.bats
# under the check modes: with MEMALLOC_CHECK=1 (canaries, quarantine, junk
# fill, realloc always moves) and, for a subset, MEMALLOC_CHECK=2 (guard
# pages), each must exit as it does without the library, print the same
# stdout and stderr, and memalloc must print nothing: these programs are
# correct, so any "memalloc:" line is a false report (check_run,
# helpers.bash). The interpreters' and tools' scripts are taken from
# their own test files (sibling_script), so that both files run the same
# workloads.
#
# Level 2 gives every live block a mapping of its own (one or two pages
# and a guard page) and changes the protection of its slot at every
# allocation and free (two mprotect calls a block), up to vm.max_map_count
# / 4 live blocks. Its cost grows with the number of allocations, so only
# the programs that allocate little, or in few blocks, run there. Measured
# on the 2-core test machine, idle (a busy one takes two or three times
# as long), one run of each:
#                                       level 1   level 2
#   coreutils (each command)            0.1-0.8 s 0.1-2.3 s
#   git script (about 200 processes)    3.5-6 s   7.8 s
#   python3 script                      5.2 s     7.7 s (*)
#   perl script                         1.1 s     5.7 s
#   sqlite3 script on a file            1.4 s     7.6 s
#   sqlite3 script in memory            0.8 s     11 s
#   bash script                         1.3 s     23 s
#   gcc on src/*.c                      7.3 s     71 s
# (*) with the alignment of level 2 fixed (see the python test). So level
# 2 runs coreutils, git (many short processes: fork, exec and exit under
# the guard slots), python, perl and sqlite3 on a file; bash, gcc and
# sqlite3 in memory run at level 1 only. The file takes about 80 s on the
# idle machine.
# shellcheck disable=SC2030,SC2031 # each test runs in a subshell of its own

load helpers

CHECK_ALL="check1 check2"

setup_file() {
    # One fixed tree for the whole file; nothing writes in it afterwards.
    make_tree "$BATS_FILE_TMPDIR/fixed/tree"
}

setup() {
    memalloc_setup
    TREE=$BATS_FILE_TMPDIR/fixed/tree
    T=$BATS_TEST_TMPDIR
}

# sibling_script FILE NAME DEST: copy to DEST the here-document that
# FILE (a bats file of this directory) writes to "$T/NAME".
sibling_script() {
    local src=$BATS_TEST_DIRNAME/$1
    awk -v start="cat >\"\$T/$2\" <<'EOF'" '
        $0 ~ /^EOF$/ && on { on = 0; found = 1; exit }
        on { print }
        { line = $0; sub(/^[ \t]+/, "", line) }
        line == start { on = 1 }
        END { exit found ? 0 : 1 }' "$src" >"$3" ||
        fail "no here-document for \$T/$2 in $src"
    [[ -s $3 ]] || fail "the here-document for \$T/$2 in $src is empty"
}

@test "check modes: the check1 and check2 runs have the check mode on" {
    # What every test below relies on: a double free is reported in both
    # modes (without a check mode memalloc's message is another one).
    is_standin && skip "stand-in library: memalloc's reports not expected"
    local prog=$MEMALLOC_BUILD/misuse/double_free_small mode addr first
    [[ -x $prog ]] || fail "misuse program $prog not built (cmake --build $MEMALLOC_BUILD)"
    for mode in check1 check2; do
        ma_exec "$mode" dfree "$prog"
        [[ $(ma_rc dfree "$mode") == 134 ]] ||
            fail "$mode: exit status $(ma_rc dfree "$mode"), expected 134" "$(cat "$MA_OUT/dfree.$mode.err")"
        addr=$(head -n 1 "$MA_OUT/dfree.$mode.out")
        first=$(head -n 1 "$MA_OUT/dfree.$mode.err")
        [[ $first == "memalloc: ERROR: double-free on address $addr in free()" ]] ||
            fail "$mode: not the check mode's report:" "$(cat "$MA_OUT/dfree.$mode.err")"
    done
    # check_run fails on such a report.
    run check_run dfree2 check1 "$prog"
    [[ $status != 0 && $output == *"memalloc reported under check1"* ]] ||
        fail "check_run passed a run with a report:" "$output"
}

@test "check modes: ls -la of a fixed tree and of /usr/include" {
    check_run ls_tree "$CHECK_ALL" ls -la --time-style=full-iso "$TREE" "$TREE/d1" "$TREE/d2/sub2"
    check_run ls_tree_recursive "$CHECK_ALL" ls -laR --time-style=full-iso "$TREE"
    check_run ls_include "$CHECK_ALL" ls -la /usr/include
    [[ $(wc -l <"$MA_OUT/ls_tree_recursive.check2.out") -gt 150 ]]
}

@test "check modes: sort of 200k generated lines (keys, numeric, unique, external merge, threads)" {
    make_sort_input "$T/in.txt"
    check_run sort_keys "$CHECK_ALL" sort -t, -k2,2 -k1,1n "$T/in.txt"
    check_run sort_num_unique "$CHECK_ALL" sort -n -u -t, -k1,1 "$T/in.txt"
    check_run sort_merge "$CHECK_ALL" sort -S 512K --parallel=2 -T "$T" -r "$T/in.txt"
    [[ $(wc -l <"$MA_OUT/sort_keys.check2.out") == 200000 ]]
    if cmp -s "$T/in.txt" "$MA_OUT/sort_keys.check1.out"; then fail "sort left its input as it was"; fi
}

@test "check modes: cp -r of a tree, then diff -r" {
    check_run cp "$CHECK_ALL" cp -r "$TREE" "$T/copy.@MODE@"
    local mode
    for mode in base check1 check2; do
        [[ -f $T/copy.$mode/d7/sub1/deep/leaf ]] || fail "cp ($mode) copied nothing"
        check_run "diff_$mode" "$CHECK_ALL" diff -r "$TREE" "$T/copy.$mode"
        [[ $(ma_rc "diff_$mode" base) == 0 ]] || fail "copy made in mode $mode differs"
    done
    echo changed >>"$T/copy.check1/d3/file3.txt"
    check_run diff_changed "$CHECK_ALL" diff -r "$TREE" "$T/copy.check1"
    [[ $(ma_rc diff_changed check2) == 1 ]] || fail "diff -r missed a change"
}

@test "check modes: tar create, list and extract" {
    check_run tar_create "$CHECK_ALL" tar -C "$TREE" -cf "$T/@MODE@.tar" .
    cmp "$T/base.tar" "$T/check1.tar" || fail "archives differ under MEMALLOC_CHECK=1"
    cmp "$T/base.tar" "$T/check2.tar" || fail "archives differ under MEMALLOC_CHECK=2"
    check_run tar_list "$CHECK_ALL" tar -tvf "$T/base.tar"
    [[ $(wc -l <"$MA_OUT/tar_list.check2.out") -gt 100 ]]
    mkdir "$T/x.base" "$T/x.check1" "$T/x.check2"
    check_run tar_extract "$CHECK_ALL" tar -C "$T/x.@MODE@" -xf "$T/base.tar"
    diff -r "$TREE" "$T/x.check1" || fail "extracted tree differs (check1)"
    diff -r "$TREE" "$T/x.check2" || fail "extracted tree differs (check2)"
}

@test "check modes: grep -r over /usr/include" {
    check_run grep_structs "$CHECK_ALL" grep -rn -E 'struct [a-z_]+ \{' /usr/include
    check_run grep_count "$CHECK_ALL" grep -rc -i define /usr/include
    check_run grep_files "$CHECK_ALL" grep -rlw -F -e size_t -e ssize_t /usr/include
    [[ $(wc -l <"$MA_OUT/grep_structs.check2.out") -gt 1000 ]]
}

@test "check modes: find /usr/include -name '*.h' | sort, du" {
    check_run find_sort "$CHECK_ALL" bash -c "find /usr/include -name '*.h' | sort"
    check_run find_printf "$CHECK_ALL" find /usr/include -type f -printf '%s %P\n'
    check_run du_all "$CHECK_ALL" du -a --apparent-size -b "$TREE"
    check_run du_include "$CHECK_ALL" du -s /usr/include
    [[ $(wc -l <"$MA_OUT/find_sort.check2.out") -gt 1000 ]]
    [[ $(wc -l <"$MA_OUT/du_all.check2.out") -gt 100 ]]
}

@test "check modes: bash script of interpreters.bats (MEMALLOC_CHECK=1)" {
    sibling_script interpreters.bats script.bash "$T/script.bash"
    check_run bash_script check1 bash "$T/script.bash"
    grep -q '^words: 6000 distinct: ' "$MA_OUT/bash_script.check1.out"
    grep -q '^parts: 2000 2000$' "$MA_OUT/bash_script.check1.out"
}

@test "check modes: perl script of interpreters.bats" {
    sibling_script interpreters.bats script.pl "$T/script.pl"
    check_run perl_script "$CHECK_ALL" /usr/bin/perl "$T/script.pl"
    grep -q '^keys: [0-9]' "$MA_OUT/perl_script.check2.out"
    grep -q '^checksum: [0-9]' "$MA_OUT/perl_script.check2.out"
}

@test "check modes: python3 script of interpreters.bats, PYTHONMALLOC=malloc (MEMALLOC_CHECK=1)" {
    sibling_script interpreters.bats script.py "$T/script.py"
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
    check_run python_script check1 /usr/bin/python3 -s "$T/script.py"
    grep -q '^keys: [0-9]' "$MA_OUT/python_script.check1.out"
    grep -q '^threads: \[' "$MA_OUT/python_script.check1.out"
}

@test "check modes: python3 script of interpreters.bats, PYTHONMALLOC=malloc (MEMALLOC_CHECK=2)" {
    # Level 2 ends each block at its guard page, as near as its alignment
    # lets it. CPython allocates a bytes object as one block of
    # offsetof(PyBytesObject, ob_sval) + len + 1 = 33 + len bytes, and
    # refuses a code object whose bytecode (ob_sval, 2-byte code units) is
    # not 2-aligned: with blocks aligned only to what their size needs, an
    # odd-sized block was at an odd address and python3 stopped at start-up
    # ("Fatal Python error: error reading frozen getpath.py"); level 2
    # aligns every block to 8 at least.
    sibling_script interpreters.bats script.py "$T/script.py"
    export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
    check_run python_script check2 /usr/bin/python3 -s "$T/script.py"
    grep -q '^keys: [0-9]' "$MA_OUT/python_script.check2.out"
    grep -q '^threads: \[' "$MA_OUT/python_script.check2.out"
}

@test "check modes: git script of tools.bats (init, commits, log, gc, fsck)" {
    sibling_script tools.bats git.sh "$T/git.sh"
    check_run git "$CHECK_ALL" bash "$T/git.sh" "$T/repo.@MODE@"
    [[ $(ma_rc git base) == 0 ]] || fail "git script failed without the library" "$(cat "$MA_OUT/git.base.err")"
    [[ $(grep -c '^[0-9a-f]\{40\} change number' "$MA_OUT/git.check2.out") == 40 ]]
    grep -q '^in-pack: [1-9]' "$MA_OUT/git.check1.out"
}

@test "check modes: gcc compiles the engine sources with -O2 (MEMALLOC_CHECK=1)" {
    local src f mode count
    local -a files=()
    # A copy: both runs compile the same sources, even if the tree changes.
    mkdir "$T/tree"
    cp -r "$MA_ROOT/src" "$MA_ROOT/include" "$T/tree/"
    for src in "$T"/tree/src/*.c; do files+=("$src"); done
    ((${#files[@]} > 0)) || fail "no sources in $MA_ROOT/src"
    mkdir "$T/obj.base" "$T/obj.check1"
    check_run gcc check1 env -C "$T/obj.@MODE@" gcc -O2 -g0 -c -I "$T/tree/include" \
        -I "$T/tree/src" "${files[@]}"
    [[ $(ma_rc gcc base) == 0 ]] || fail "gcc fails without the preload" "$(cat "$MA_OUT/gcc.base.err")"
    for mode in base check1; do
        count=$(find "$T/obj.$mode" -type f -name '*.o' -size +0 | wc -l)
        ((count == ${#files[@]})) ||
            fail "gcc ($mode) left $count object files for ${#files[@]} sources" \
                "$(ls -l "$T/obj.$mode")"
    done
    for src in "${files[@]}"; do
        f=$(basename "${src%.c}").o
        cmp "$T/obj.base/$f" "$T/obj.check1/$f" || fail "$f differs under MEMALLOC_CHECK=1"
    done
}

@test "check modes: sqlite3 script of tools.bats, on a file (both levels) and in memory (level 1)" {
    sibling_script tools.bats script.sql "$T/script.sql"
    MA_STDIN=$T/script.sql check_run sqlite "$CHECK_ALL" sqlite3 -batch "$T/@MODE@.db"
    [[ $(ma_rc sqlite check2) == 0 ]] || fail "sqlite3 failed" "$(cat "$MA_OUT/sqlite.check2.err")"
    head -n 1 "$MA_OUT/sqlite.check2.out" | grep -q '^50000|'
    tail -n 1 "$MA_OUT/sqlite.check2.out" | grep -qx ok
    MA_STDIN=$T/script.sql check_run sqlite_mem check1 sqlite3 -batch :memory:
}
