#!/usr/bin/env bats
# Everyday tools under the preload: the output must be byte for byte what
# they print without it, and memalloc must have served each of them.

load helpers

setup_file() {
    # One fixed tree for the whole file; nothing writes in it afterwards.
    make_tree "$BATS_FILE_TMPDIR/fixed/tree"
}

setup() {
    memalloc_setup
    TREE=$BATS_FILE_TMPDIR/fixed/tree
    T=$BATS_TEST_TMPDIR
}

@test "ls -la of a fixed tree and of /usr/include" {
    compare_run ls_tree ls -la --time-style=full-iso "$TREE" "$TREE/d1" "$TREE/d2/sub2"
    compare_run ls_tree_recursive ls -laR --time-style=full-iso "$TREE"
    compare_run ls_include ls -la /usr/include
    [[ $(wc -l <"$MA_OUT/ls_tree_recursive.base.out") -gt 150 ]]
}

@test "sort of 200k generated lines (keys, numeric, unique, external merge, threads)" {
    make_sort_input "$T/in.txt"
    compare_run sort_keys sort -t, -k2,2 -k1,1n "$T/in.txt"
    compare_run sort_num_unique sort -n -u -t, -k1,1 "$T/in.txt"
    # A small buffer forces temporary files and merges; two threads.
    compare_run sort_merge sort -S 512K --parallel=2 -T "$T" -r "$T/in.txt"
    [[ $(wc -l <"$MA_OUT/sort_keys.pre.out") == 200000 ]]
    if cmp -s "$T/in.txt" "$MA_OUT/sort_keys.pre.out"; then fail "sort left its input as it was"; fi
}

@test "cp -r of a tree, then diff -r" {
    compare_run cp cp -r "$TREE" "$T/copy.@MODE@"
    local mode
    for mode in base pre stats; do
        [[ -f $T/copy.$mode/d7/sub1/deep/leaf ]] || fail "cp ($mode) copied nothing"
        compare_run "diff_$mode" diff -r "$TREE" "$T/copy.$mode"
        [[ $(ma_rc "diff_$mode" pre) == 0 ]] || fail "copy made in mode $mode differs"
    done
    # diff must see a difference, too.
    echo changed >>"$T/copy.pre/d3/file3.txt"
    compare_run diff_changed diff -r "$TREE" "$T/copy.pre"
    [[ $(ma_rc diff_changed pre) == 1 ]] || fail "diff -r missed a change"
}

@test "tar create, list and extract" {
    compare_run tar_create tar -C "$TREE" -cf "$T/@MODE@.tar" .
    cmp "$T/base.tar" "$T/pre.tar" || fail "archives differ with the preload"
    cmp "$T/base.tar" "$T/stats.tar" || fail "archives differ with MEMALLOC_STATS=1"
    compare_run tar_list tar -tvf "$T/pre.tar"
    [[ $(wc -l <"$MA_OUT/tar_list.pre.out") -gt 100 ]]
    mkdir "$T/x.base" "$T/x.pre" "$T/x.stats"
    compare_run tar_extract tar -C "$T/x.@MODE@" -xf "$T/base.tar"
    diff -r "$TREE" "$T/x.pre" || fail "extracted tree differs"
    diff -r "$TREE" "$T/x.stats" || fail "extracted tree differs"
    # The extracted tree lists the same, modes and times included.
    # ".." is left out: it is not part of the tree.
    (cd "$TREE" && ls -laR --time-style=full-iso .) | grep -v ' \.\.$' >"$T/tree.ls"
    (cd "$T/x.pre" && ls -laR --time-style=full-iso .) | grep -v ' \.\.$' >"$T/xpre.ls"
    diff "$T/tree.ls" "$T/xpre.ls" || fail "extracted tree lists differently"
}

@test "grep -r over /usr/include" {
    compare_run grep_structs grep -rn -E 'struct [a-z_]+ \{' /usr/include
    compare_run grep_count grep -rc -i define /usr/include
    compare_run grep_files grep -rlw -F -e size_t -e ssize_t /usr/include
    [[ $(wc -l <"$MA_OUT/grep_structs.pre.out") -gt 1000 ]]
}

@test "find /usr/include -name '*.h' | sort" {
    compare_run find_sort bash -c "find /usr/include -name '*.h' | sort"
    compare_run find_printf find /usr/include -type f -printf '%s %P\n'
    [[ $(wc -l <"$MA_OUT/find_sort.pre.out") -gt 1000 ]]
}

@test "du on a fixed tree and /usr/include" {
    compare_run du_tree du -s "$TREE"
    compare_run du_all du -a --apparent-size -b "$TREE"
    compare_run du_include du -s /usr/include
    [[ $(wc -l <"$MA_OUT/du_all.pre.out") -gt 100 ]]
}
