#!/usr/bin/env bats
# The tunables README promises, observed from inside a process: the probe
# (tests/probes/probe.c, built in $MEMALLOC_BUILD/probes) runs commands
# under the preload and prints what it sees (mallinfo2's mapped blocks,
# resident pages, /proc/self/smaps, memalloc_get_stats and
# memalloc_get_option through dlsym). Each probe run is a fresh process,
# so the environment variables are read anew.
# shellcheck disable=SC2154 # stderr is set by bats' run --separate-stderr

load helpers

setup() {
    memalloc_setup
    PROBE=$MEMALLOC_BUILD/probes/probe
    [[ -x $PROBE ]] || fail "probe not built: $PROBE (cmake --build $MEMALLOC_BUILD)"
    is_standin && skip "stand-in library: memalloc's tunables not expected"
    return 0
}

# probe [VAR=VALUE]... COMMAND...: run the probe under the preload with
# those variables (and no other MEMALLOC_* tunable); it must exit 0.
# $output and $stderr hold what it printed.
probe() {
    probe_with "LD_PRELOAD=$MEMALLOC_LIB" "$@"
}

# glibc_probe [VAR=VALUE]... COMMAND...: the same without the preload.
glibc_probe() {
    probe_with "" "$@"
}

probe_with() {
    local preload=$1
    local -a envs=()
    shift
    [[ -n $preload ]] && envs+=("$preload")
    while [[ $# -gt 0 && $1 == *=* ]]; do
        envs+=("$1")
        shift
    done
    run --separate-stderr env -u LD_PRELOAD -u MEMALLOC_MMAP_THRESHOLD \
        -u MEMALLOC_TRIM_THRESHOLD -u MEMALLOC_PURGE_DELAY -u MEMALLOC_TCACHE \
        -u MEMALLOC_HUGEPAGE_THRESHOLD -u MEMALLOC_STATS -u MEMALLOC_BACKGROUND "${envs[@]}" \
        "$PROBE" "$@"
    [[ $status -eq 0 ]] || fail "probe ${envs[*]} $*: exit status $status" "$output" "$stderr"
}

# expect WHAT LINE...: the probe's stdout is exactly these lines.
expect() {
    local what=$1 want
    shift
    want=$(printf '%s\n' "$@")
    [[ $output == "$want" ]] || fail "$what: unexpected probe output" "expected:" "$want" \
        "got:" "$output"
}

# expect_silent WHAT: nothing on stderr.
expect_silent() {
    [[ -z $stderr ]] || fail "$1: unexpected stderr:" "$stderr"
}

# resident_of SIZE: the KiB the probe found resident after "touch-free SIZE".
resident_of() {
    sed -n "s/^resident $1: \([0-9][0-9]*\)\$/\1/p" <<<"$output"
}

@test "MEMALLOC_MMAP_THRESHOLD: sizes with k, m or g, in either case, and an optional b" {
    local v
    # 100k is above the largest size class (64 KiB): never from a page.
    for v in 65536 64k 64K 64kb 64KB 64kB 64Kb; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" option mmap mapped 60000 mapped 100k
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "option mmap: 65536" "mapped 60000: no" \
            "mapped 100k: yes"
        expect_silent "MEMALLOC_MMAP_THRESHOLD=$v"
    done
    for v in 1048576 1024k 1m 1M 1mb 1MB; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" option mmap mapped 1000k mapped 1m
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "option mmap: 1048576" "mapped 1000k: no" \
            "mapped 1m: yes"
        expect_silent "MEMALLOC_MMAP_THRESHOLD=$v"
    done
    # Any g value but 0 is out of range; 0g is a size.
    for v in 0g 0G 0gb; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" option mmap mapped 16
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "option mmap: 0" "mapped 16: yes"
        expect_silent "MEMALLOC_MMAP_THRESHOLD=$v"
    done
}

@test "MEMALLOC_MMAP_THRESHOLD: 0 to 32m; beyond, or not a size, it is reported and ignored" {
    # 0: every request has a mapping of its own, the smallest too.
    probe MEMALLOC_MMAP_THRESHOLD=0 option mmap mapped 16 mapped 100
    expect "MEMALLOC_MMAP_THRESHOLD=0" "option mmap: 0" "mapped 16: yes" "mapped 100: yes"
    expect_silent "MEMALLOC_MMAP_THRESHOLD=0"
    # 32m, the largest: requests of 32 MiB are mapped, below that not.
    local v
    for v in 32m 33554432 32768k; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" option mmap mapped 31m mapped 32m
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "option mmap: 33554432" "mapped 31m: no" \
            "mapped 32m: yes"
        expect_silent "MEMALLOC_MMAP_THRESHOLD=$v"
    done
    # Out of range or not a size: one line on stderr, the default (4m) used.
    for v in 33554433 33m 1g 64kib 1.5m -1 12q; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" option mmap mapped 3m mapped 4m
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "option mmap: 4194304" "mapped 3m: no" \
            "mapped 4m: yes"
        local why="not a size"
        [[ $v =~ ^[0-9]+[kmgKMG]?$ ]] && why="out of range"
        [[ $stderr == "memalloc: ignoring MEMALLOC_MMAP_THRESHOLD=$v: $why (range 0..33554432), using 4194304" ]] ||
            fail "MEMALLOC_MMAP_THRESHOLD=$v: unexpected stderr:" "$stderr"
    done
}

@test "MEMALLOC_MMAP_THRESHOLD below the largest size class: every request at or over it is mapped" {
    # 36000 and 40000 are of one size class (40960 bytes), 60000 and 64k of
    # another: the smaller request of each comes first and leaves its
    # class's page with free objects, which must not serve the larger one.
    probe MEMALLOC_MMAP_THRESHOLD=40000 mapped 36000 mapped 40000 mapped 40960 mapped 36000
    expect "MEMALLOC_MMAP_THRESHOLD=40000" "mapped 36000: no" "mapped 40000: yes" \
        "mapped 40960: yes" "mapped 36000: no"
    probe MEMALLOC_MMAP_THRESHOLD=64k mapped 60000 mapped 64k mapped 65535
    expect "MEMALLOC_MMAP_THRESHOLD=64k" "mapped 60000: no" "mapped 64k: yes" "mapped 65535: no"
    # the same when mallopt sets it after the pages were in use
    probe mapped 3000 mapped 4000 mallopt mmap 4k mapped 4000 mapped 4096 mapped 3000
    expect "M_MMAP_THRESHOLD 4k" "mapped 3000: no" "mapped 4000: no" "mallopt mmap 4k: 1" \
        "mapped 4000: no" "mapped 4096: yes" "mapped 3000: no"
}

@test "MEMALLOC_MMAP_THRESHOLD: setting it turns the dynamic threshold off" {
    # By default, freeing a mapped 8 MiB block raises the threshold to its
    # size: the next 8 MiB block comes from the heap.
    probe mapped 8m mapped 8m
    expect "default" "mapped 8m: yes" "mapped 8m: no"
    # Set, even to the default value, the threshold stays where it is.
    local v
    for v in 4m 4194304 512k; do
        probe MEMALLOC_MMAP_THRESHOLD="$v" mapped 8m mapped 8m mapped 8m
        expect "MEMALLOC_MMAP_THRESHOLD=$v" "mapped 8m: yes" "mapped 8m: yes" "mapped 8m: yes"
    done
    # A value that was ignored set nothing: the threshold is dynamic.
    probe MEMALLOC_MMAP_THRESHOLD=64m mapped 8m mapped 8m
    expect "MEMALLOC_MMAP_THRESHOLD=64m (ignored)" "mapped 8m: yes" "mapped 8m: no"
}

@test "MEMALLOC_MMAP_THRESHOLD: a block realloc must move takes a mapping from 128 KiB, or from the raised threshold" {
    # Unset: new blocks below 4 MiB come from the heap, but a block that
    # realloc grows past 128 KiB and cannot grow where it is moves to a
    # mapping (which grows by mremap from then on, without a copy).
    probe mapped 1m grown 100k grown 1m grown 3m
    expect "default" "mapped 1m: no" "grown 100k: no" "grown 1m: yes" "grown 3m: yes"
    # Freeing a mapped block of 2 MiB raises the threshold of both to 2 MiB.
    probe grown 2m grown 1m grown 3m
    expect "default, raised" "grown 2m: yes" "grown 1m: no" "grown 3m: yes"
    # Set, it is the one threshold of both.
    probe MEMALLOC_MMAP_THRESHOLD=2m grown 1m grown 2m
    expect "MEMALLOC_MMAP_THRESHOLD=2m" "grown 1m: no" "grown 2m: yes"
}

@test "mallopt(M_MMAP_THRESHOLD): takes effect, turns the dynamic threshold off, used up to 32 MiB" {
    probe mallopt mmap 1m mapped 1000k mapped 1m mapped 1m
    expect "M_MMAP_THRESHOLD 1m" "mallopt mmap 1m: 1" "mapped 1000k: no" "mapped 1m: yes" \
        "mapped 1m: yes"
    # 64 MiB: accepted (1, as glibc 2.36 answers), but the threshold used is
    # 32 MiB: a 33 MiB block still has a mapping of its own; 31 MiB does not.
    probe mallopt mmap 64m mapped 33m mapped 31m
    expect "M_MMAP_THRESHOLD 64m" "mallopt mmap 64m: 1" "mapped 33m: yes" "mapped 31m: no"
    # (glibc uses its 64 MiB and serves the 33 MiB block from its heap: the
    # cap is memalloc's, a heap region being 64 MiB.)
}

@test "MEMALLOC_TRIM_THRESHOLD: the dirty bytes a freed heap top keeps resident" {
    # A 2 MiB heap block (mmap threshold 32m), written and freed: it joins
    # its region's top. Purge delay 0: what is due goes back at once.
    local -a env=(MEMALLOC_MMAP_THRESHOLD=32m MEMALLOC_PURGE_DELAY=0)
    local kib
    probe "${env[@]}" option trim touch-free 2m
    kib=$(resident_of 2m)
    [[ $output == "option trim: 131072"* && -n $kib ]] || fail "default: unexpected output" "$output"
    ((kib <= 128)) || fail "default (128k): $kib KiB of the freed top still resident"
    probe "${env[@]}" MEMALLOC_TRIM_THRESHOLD=1m option trim touch-free 2m
    kib=$(resident_of 2m)
    [[ $output == "option trim: 1048576"* && -n $kib ]] || fail "1m: unexpected output" "$output"
    ((kib > 128 && kib <= 1024)) || fail "MEMALLOC_TRIM_THRESHOLD=1m: $kib KiB resident"
    probe "${env[@]}" MEMALLOC_TRIM_THRESHOLD=4M option trim touch-free 2m
    kib=$(resident_of 2m)
    [[ $output == "option trim: 4194304"* && -n $kib ]] || fail "4M: unexpected output" "$output"
    ((kib >= 2048)) || fail "MEMALLOC_TRIM_THRESHOLD=4M: only $kib KiB of 2048 kept"
    probe "${env[@]}" MEMALLOC_TRIM_THRESHOLD=0 option trim touch-free 2m
    kib=$(resident_of 2m)
    [[ $output == "option trim: 0"* && -n $kib ]] || fail "0: unexpected output" "$output"
    ((kib <= 8)) || fail "MEMALLOC_TRIM_THRESHOLD=0: $kib KiB resident"
    expect_silent "MEMALLOC_TRIM_THRESHOLD=0"
    probe "${env[@]}" MEMALLOC_TRIM_THRESHOLD=lots option trim
    expect "MEMALLOC_TRIM_THRESHOLD=lots" "option trim: 131072"
    [[ $stderr == "memalloc: ignoring MEMALLOC_TRIM_THRESHOLD=lots: not a size (range 0..70368744177664), using 131072" ]] ||
        fail "MEMALLOC_TRIM_THRESHOLD=lots: unexpected stderr:" "$stderr"
}

@test "mallopt(M_TRIM_THRESHOLD): the dirty bytes a freed heap top keeps, as with glibc" {
    local kib mode
    for mode in memalloc glibc; do
        local run=probe
        [[ $mode == glibc ]] && run=glibc_probe
        $run MEMALLOC_PURGE_DELAY=0 mallopt mmap 32m mallopt trim 4m touch-free 2m
        kib=$(resident_of 2m)
        [[ -n $kib ]] || fail "$mode: unexpected output" "$output"
        ((kib >= 2048)) || fail "$mode, M_TRIM_THRESHOLD 4m: only $kib KiB of 2048 kept"
        $run MEMALLOC_PURGE_DELAY=0 mallopt mmap 32m mallopt trim 1m touch-free 2m
        kib=$(resident_of 2m)
        [[ -n $kib ]] || fail "$mode: unexpected output" "$output"
        ((kib <= 1024)) || fail "$mode, M_TRIM_THRESHOLD 1m: $kib KiB resident"
    done
}

@test "MEMALLOC_HUGEPAGE_THRESHOLD: fresh malloc'd mappings of at least it ask for huge pages" {
    [[ -d /sys/kernel/mm/transparent_hugepage ]] ||
        skip "no transparent huge pages in this kernel (/sys/kernel/mm/transparent_hugepage)"
    # One block per process: each is a fresh mapping ("hg": MADV_HUGEPAGE).
    probe option hugepage
    expect "default" "option hugepage: 4194304"
    probe hugepage 3m
    expect "default, 3 MiB" "hugepage 3m: no"
    probe hugepage 4m
    expect "default, 4 MiB" "hugepage 4m: yes"
    probe hugepage 40m
    expect "default, 40 MiB" "hugepage 40m: yes"
    probe calloc-hugepage 8m
    expect "default, calloc 8 MiB" "calloc-hugepage 8m: no"
    probe MEMALLOC_HUGEPAGE_THRESHOLD=0 hugepage 8m
    expect "MEMALLOC_HUGEPAGE_THRESHOLD=0" "hugepage 8m: no"
    probe MEMALLOC_MMAP_THRESHOLD=1m MEMALLOC_HUGEPAGE_THRESHOLD=1m hugepage 2m
    expect "MEMALLOC_HUGEPAGE_THRESHOLD=1m" "hugepage 2m: yes"
    probe MEMALLOC_HUGEPAGE_THRESHOLD=8m hugepage 6m
    expect "MEMALLOC_HUGEPAGE_THRESHOLD=8m" "hugepage 6m: no"
}

@test "MEMALLOC_TCACHE=0: no thread-owned pages" {
    # With the caches, a freed 32-byte block stays in its thread's page
    # (thread_cached > 0), and a 40-byte request (another class) gets
    # another block. Without, the block goes back to the heap's free lists
    # at once, and the 40-byte request, the same chunk size, gets it back.
    probe option tcache tcache
    [[ ${lines[0]:-} == "option tcache: 1" && ${lines[2]:-} == "reused: no" ]] ||
        fail "default: unexpected output" "$output"
    [[ ${lines[1]:-} =~ ^thread_cached:\ [1-9][0-9]*$ ]] ||
        fail "default: no thread-cached bytes after a free" "$output"
    probe MEMALLOC_TCACHE=0 option tcache tcache
    expect "MEMALLOC_TCACHE=0" "option tcache: 0" "thread_cached: 0" "reused: yes"
    expect_silent "MEMALLOC_TCACHE=0"
}

@test "malloc_trim: 1 when memory was given back, 0 when there was none" {
    # A 100 KiB heap block written and freed: a dirty top below the trim
    # threshold, which nothing gives back but malloc_trim. Then nothing is
    # left to give back.
    probe trim touch-free 100k trim trim
    [[ ${#lines[@]} == 4 && ${lines[0]} == "malloc_trim: "[01] ]] ||
        fail "unexpected output" "$output"
    [[ ${lines[1]} =~ ^resident\ 100k:\ ([0-9]+)$ ]] || fail "unexpected output" "$output"
    ((BASH_REMATCH[1] >= 100)) || fail "the freed block was given back before malloc_trim" "$output"
    [[ ${lines[2]} == "malloc_trim: 1" ]] || fail "malloc_trim after a free: not 1" "$output"
    [[ ${lines[3]} == "malloc_trim: 0" ]] || fail "malloc_trim with nothing to give: not 0" "$output"
}

# rss_at N: the KiB of the probe's Nth "rss:" line.
rss_at() {
    grep '^rss: ' <<<"$output" | sed -n "$1s/^rss: //p"
}

@test "MEMALLOC_BACKGROUND: a large heap that went idle gives its memory back" {
    # 400,000 blocks of 256 bytes (about 100 MiB) written, freed, and then
    # no call at all: the background thread purges what the working set
    # no longer needs
    probe threads build-free 400000 256 rss threads sleep 4000 rss threads
    [[ $(sed -n 1p <<<"$output") == "threads: 1" ]] || fail "a thread before any need" "$output"
    [[ $(grep -c '^threads: 2$' <<<"$output") -eq 2 ]] || fail "no background thread" "$output"
    [[ $(rss_at 1) -gt 80000 && $(rss_at 2) -lt 30000 ]] ||
        fail "the idle heap kept its memory" "$output"
    expect_silent "background"
    # off: no thread, and the memory stays until the next call
    probe MEMALLOC_BACKGROUND=0 option background build-free 400000 256 sleep 4000 rss threads
    [[ $(sed -n 1p <<<"$output") == "option background: 0" ]] || fail "option" "$output"
    [[ $(rss_at 1) -gt 80000 ]] || fail "memory given back without the thread" "$output"
    [[ $(sed -n '$p' <<<"$output") == "threads: 1" ]] || fail "a thread though off" "$output"
    # a small program never gets the thread
    probe option background build-free 1000 256 threads
    expect "small program" "option background: 1" "threads: 1"
}
