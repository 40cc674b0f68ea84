#!/usr/bin/env bats
# MEMALLOC_SAMPLE=N, with no check mode: about one malloc or new in N is a
# block of level 2, 16-aligned (a guard page after it; freed, its slot
# closed while in quarantine). At N=1 every one is, so a misuse program's block is sampled
# and its misuse faults with the full report; at N=10 real programs must
# run as they do without the library (same status, stdout and stderr) and
# memalloc must print nothing (check_run, helpers.bash), while enough of
# their blocks are sampled that a wrong size, alignment or free of a
# sampled block would show.
# shellcheck disable=SC2030,SC2031 # each test runs in a subshell of its own

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
    CM_C=$MEMALLOC_BUILD/misuse/check_misuse
    [[ -x $CM_C ]] || fail "misuse program $CM_C not built (cmake --build $MEMALLOC_BUILD)"
}

# sampled_misuse KIND SIZE STATUS BUG OFFSET: check_misuse KIND SIZE under
# MEMALLOC_SAMPLE=1 exits with STATUS and reports BUG at the block's
# address + OFFSET, as a write fault.
sampled_misuse() {
    local kind=$1 size=$2 want_rc=$3 bug=$4 off=$5 rc=0 p first
    (
        unset MEMALLOC_CHECK MEMALLOC_CHECK_UNDER
        export LD_PRELOAD=$MEMALLOC_LIB MEMALLOC_SAMPLE=1
        timeout -k 5 "$MA_TIMEOUT" "$CM_C" "$kind" "$size" </dev/null >"$T/cm.out" 2>"$T/cm.err"
    ) 2>/dev/null || rc=$?
    [[ $rc == "$want_rc" ]] || fail "$kind $size: exit status $rc, expected $want_rc" "$(cat "$T/cm.err")"
    p=$(sed -n 's/^block=\(0x[0-9a-f]*\) size=.*/\1/p' "$T/cm.out")
    [[ -n $p ]] || fail "$kind $size: no block address printed" "$(cat "$T/cm.out")"
    first=$(head -n 1 "$T/cm.err")
    [[ $first == "memalloc: ERROR: $bug on address $(printf '0x%x' $((p + off))) (a write)" ]] ||
        fail "$kind $size: first line '$first'" "$(cat "$T/cm.err")"
    grep -q '^went through' "$T/cm.out" && fail "$kind $size: the misuse went through"
    grep -Eq '^(previously )?allocated by:' "$T/cm.err" ||
        fail "$kind $size: no allocation stack" "$(cat "$T/cm.err")"
}

@test "sample: MEMALLOC_SAMPLE=1 puts a guard page after every block: an overflow faults" {
    is_standin && skip "stand-in library: memalloc's reports not expected"
    # (a sampled block is 16-aligned, as malloc's are: it ends at the
    # guard page when its size is a multiple of 16)
    sampled_misuse overflow-1 32 139 heap-buffer-overflow 32
    sampled_misuse overflow-1 4000 139 heap-buffer-overflow 4000
}

@test "sample: a sampled block's slot is closed once freed: a write after free faults" {
    is_standin && skip "stand-in library: memalloc's reports not expected"
    sampled_misuse uaf-write 24 139 heap-use-after-free 0
    sampled_misuse uaf-write 3000 139 heap-use-after-free 0
}

@test "sample: without MEMALLOC_SAMPLE the same overflow goes unseen (the test above is the sampling's)" {
    is_standin && skip "stand-in library"
    local rc=0
    LD_PRELOAD=$MEMALLOC_LIB "$CM_C" overflow-1 24 >"$T/cm.out" 2>"$T/cm.err" || rc=$?
    [[ $rc == 0 ]] && grep -q '^went through' "$T/cm.out" ||
        fail "default mode: exit status $rc" "$(cat "$T/cm.err")"
}

@test "sample: sort, python3 (PYTHONMALLOC=malloc), perl and gcc under MEMALLOC_SAMPLE=10" {
    awk 'BEGIN { s = 7; for (i = 0; i < 100000; i++) { s = (s * 1103515245 + 12345) % 2147483648
        printf "%d,k%d\n", s % 100000, s % 977 } }' >"$T/in.txt"
    check_run sort sample sort -t, -k2,2 -k1,1n "$T/in.txt"
    [[ $(wc -l <"$MA_OUT/sort.sample.out") == 100000 ]]
    cat >"$T/script.py" <<'EOF'
import collections, json
d = collections.defaultdict(list)
for i in range(60000):
    d["k%d" % (i % 997)].append(("v" * (i % 40), i))
s = json.dumps({k: len(v) for k, v in d.items()}, sort_keys=True)
print(len(s), sum(len(v) for v in d.values()), sorted(d)[:3])
EOF
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 check_run python sample /usr/bin/python3 -s "$T/script.py"
    grep -q '^[0-9]* 60000 ' "$MA_OUT/python.sample.out"
    check_run perl sample /usr/bin/perl -e \
        'my %h; $h{"k" . ($_ % 1000)} .= "x" x ($_ % 30) for 1 .. 100000; print scalar(keys %h), " ", length(join "", values %h), "\n"'
    printf 'int f(int x) { return x * 3; }\nint main(void) { return f(2) - 6; }\n' >"$T/t.c"
    mkdir "$T/o.base" "$T/o.sample"
    check_run gcc sample gcc -O2 -c "$T/t.c" -o "$T/o.@MODE@/t.o"
    cmp "$T/o.base/t.o" "$T/o.sample/t.o" || fail "gcc's object differs under MEMALLOC_SAMPLE=10"
}
