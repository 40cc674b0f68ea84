#!/usr/bin/env bats
# MEMALLOC_TRACE=FILE (docs/trace-format.md): the trace written while a
# program runs, read back by trace_check.py (a reader of the tests' own,
# independent of memalloc report's) and by memalloc report. The program
# of most tests is probes/traced, whose call sites are known: 1000
# temporary blocks of 100 B, 10 buffers of 1 MiB, 5 leaked blocks of
# 4 KiB, and a buffer grown by realloc 64 times.
# shellcheck disable=SC2030,SC2031 # each test runs in a subshell of its own

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
    TRACED=$MEMALLOC_BUILD/probes/traced
    CHECK="python3 $BATS_TEST_DIRNAME/trace_check.py"
    MEMALLOC_CMD=$MEMALLOC_BUILD/cli/memalloc
    [[ -x $TRACED ]] || fail "probe $TRACED not built (cmake --build $MEMALLOC_BUILD)"
}

# traced_run FILE [VAR=VALUE...] -- CMD...: CMD under the library with
# MEMALLOC_TRACE=FILE and MEMALLOC_STATS=1; its stdout, stderr and status
# in $T/run.{out,err,rc}.
traced_run() {
    local file=$1 rc=0
    shift
    local -a vars=()
    while [[ $1 != -- ]]; do
        vars+=("$1")
        shift
    done
    shift
    timeout -k 5 "$MA_TIMEOUT" env -u MEMALLOC_CHECK "LD_PRELOAD=$MEMALLOC_LIB" MEMALLOC_STATS=1 \
        "MEMALLOC_TRACE=$file" "${vars[@]}" "$@" </dev/null >"$T/run.out" 2>"$T/run.err" || rc=$?
    echo "$rc" >"$T/run.rc"
}

# has FILE LINE: trace_check's report FILE has the line LINE.
has() {
    grep -qxF -- "$2" "$1" || fail "no line '$2' in the trace's facts:" "$(head -n 40 "$1")"
}

@test "trace: every allocation's site and size counted, every one sampled (SAMPLE=1)" {
    traced_run "$T/t" MEMALLOC_TRACE_SAMPLE=1 -- "$TRACED"
    [[ $(cat "$T/run.rc") == 0 ]] || fail "status $(cat "$T/run.rc")" "$(cat "$T/run.err")"
    [[ $(cat "$T/run.out") == done ]]
    $CHECK "$T/t" >"$T/facts"
    has "$T/facts" "info=1 end=1 cut=0"
    has "$T/facts" "site 1000 100000"
    has "$T/facts" "site 10 10485760"
    has "$T/facts" "site 5 20480"
    has "$T/facts" "site 64 2129920" # realloc: the bytes asked, 1 KiB to 64 KiB
    has "$T/facts" "sampled 100 allocs=1000 frees=1000 temporary=1000 live=0"
    has "$T/facts" "sampled 1048576 allocs=10 frees=10 temporary=1 live=0"
    has "$T/facts" "sampled 65536 allocs=1 frees=1 temporary=1 live=0"
    has "$T/facts" "stack_first_frame_is_site=1"
    grep -Eq '^sampled 4096 allocs=[0-9]+ frees=[0-9]+ temporary=[0-9]+ live=([5-9]|[1-9][0-9]+)$' \
        "$T/facts" || fail "the 5 leaked blocks are not live at the end" "$(cat "$T/facts")"
    # the site and size totals agree, and END's counts are the summary's
    local sites sizes allocs
    sites=$(sed -n 's/^sites_calls=\([0-9]*\) .*/\1/p' "$T/facts")
    sizes=$(sed -n 's/^sizes_calls=\([0-9]*\) .*/\1/p' "$T/facts")
    [[ $sites == "$sizes" && $sites -ge 1079 ]] || fail "sites $sites, sizes $sizes"
    allocs=$(sed -n 's/^memalloc: allocs=\([0-9]*\) .*/\1/p' "$T/run.err")
    grep -q "^end_allocs=$allocs end_frees=" "$T/facts" ||
        fail "END does not match the summary ($allocs)" "$(cat "$T/facts")" "$(cat "$T/run.err")"
    grep -q "^exe=$TRACED\$\|exe=$(readlink -f "$TRACED") " "$T/facts" ||
        grep -q "exe=$(readlink -f "$TRACED") args=$TRACED$" "$T/facts" ||
        fail "INFO does not name the program" "$(grep exe= "$T/facts")"
}

@test "trace: default sampling keeps the totals exact and samples by bytes" {
    traced_run "$T/t" -- "$TRACED"
    $CHECK "$T/t" >"$T/facts"
    has "$T/facts" "info=1 end=1 cut=0"
    has "$T/facts" "site 1000 100000"
    has "$T/facts" "site 10 10485760"
    # a block of 1 MiB is above the interval (512 KiB): always sampled;
    # 100 KB of 100-byte blocks come before any countdown can run out
    has "$T/facts" "sampled 1048576 allocs=10 frees=10 temporary=1 live=0"
    ! grep -q '^sampled 100 ' "$T/facts" || fail "100-byte blocks were sampled"
    grep -Eq '^heap=[1-9][0-9]* classes=[1-9][0-9]* regions=[1-9]' "$T/facts" ||
        fail "no HEAP, CLASSES or REGIONS" "$(tail -n 3 "$T/facts")"
    # an ARENAS record with each HEAP record
    local heaps
    heaps=$(sed -n 's/^heap=\([0-9]*\) .*/\1/p' "$T/facts")
    has "$T/facts" "arenas=$heaps arenas_per_record=1"
}

@test "trace: samples freed before the heap was next sampled are counted, not listed" {
    # one sample per ~1000 bytes: about 100 of the 100-byte temporaries,
    # each freed at once (AGGREGATES, with their lifetimes; the odd one
    # that a HEAP record came in the life of is listed); the 5 leaked
    # blocks of 4 KiB wait in the thread's ring until exit, then are listed
    traced_run "$T/t" MEMALLOC_TRACE_SAMPLE=1000 -- "$TRACED"
    $CHECK "$T/t" >"$T/facts"
    has "$T/facts" "info=1 end=1 cut=0"
    has "$T/facts" "site 1000 100000"
    local n temp listed
    n=$(sed -n 's/^aggregated 1000 samples=\([0-9]*\) .*/\1/p' "$T/facts")
    temp=$(sed -n 's/^aggregated 1000 .* temporary=\([0-9]*\)$/\1/p' "$T/facts")
    listed=$(sed -n 's/^sampled 100 allocs=\([0-9]*\) .*/\1/p' "$T/facts")
    ((n >= 50 && n <= 200 && temp == n && ${listed:-0} <= 10)) ||
        fail "aggregated $n (temporary $temp), listed ${listed:-0}" "$(grep -E '^(aggregated|sampled)' "$T/facts")"
    grep -Eq '^aggregated_lifetimes=[1-9]' "$T/facts" || fail "no lifetimes" "$(tail -n 4 "$T/facts")"
    grep -Eq '^sampled 4096 allocs=([5-9]|1[0-9]) frees=0 temporary=0 live=([5-9]|1[0-9])$' \
        "$T/facts" || fail "the leaks were not listed" "$(grep '^sampled' "$T/facts")"
    # the report counts them: its temporary allocations are about the 1000
    "$MEMALLOC_CMD" report "$T/t" -o "$T/r.html" 2>"$T/report.err" || fail "$(cat "$T/report.err")"
    grep -q 'only counted' "$T/r.html" || fail "the report does not say so"
    local temps
    temps=$(sed -n 's/.*Temporary allocations<\/th><td>about \([0-9]*\) .*/\1/p' "$T/r.html")
    ((temps >= 500 && temps <= 2000)) || fail "the report's temporaries: '$temps'"
}

@test "trace: threads' sites are added up, each thread's samples name it" {
    traced_run "$T/t" MEMALLOC_TRACE_SAMPLE=1 -- "$TRACED" threads 4
    [[ $(cat "$T/run.out") == done ]]
    $CHECK "$T/t" >"$T/facts"
    has "$T/facts" "site 4000 400000"
    has "$T/facts" "site 40 41943040"
    has "$T/facts" "sampled 100 allocs=4000 frees=4000 temporary=4000 live=0"
    grep -Eq '^threads=([4-9]|[1-9][0-9])$' "$T/facts" || fail "$(grep threads= "$T/facts")"
}

@test "trace: a child after fork writes FILE.PID, its own allocations only" {
    traced_run "$T/t" MEMALLOC_TRACE_SAMPLE=1 -- "$TRACED" fork
    local child parent
    child=$(sed -n 's/^child \([0-9]*\)$/\1/p' "$T/run.out")
    [[ -n $child && -f $T/t.$child ]] || fail "no child trace" "$(ls "$T")"
    $CHECK "$T/t" >"$T/parent"
    $CHECK "$T/t.$child" >"$T/child"
    parent=$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' "$T/parent")
    has "$T/child" "info=1 end=1 cut=0"
    grep -q "^pid=$child ppid=$parent " "$T/child" || fail "$(grep pid= "$T/child")"
    has "$T/child" "site 5 20480"
    ! grep -q '^site 1000 ' "$T/child" || fail "the parent's sites are in the child's trace"
    has "$T/parent" "site 1000 100000"
}

@test "trace: a program killed by a signal leaves a readable trace, without END" {
    traced_run "$T/t" -- "$TRACED" killed
    [[ $(cat "$T/run.rc") == 137 ]] || fail "status $(cat "$T/run.rc")"
    $CHECK "$T/t" >"$T/facts"
    grep -q '^info=1 end=0 ' "$T/facts" || fail "$(head -n 1 "$T/facts")"
    # the sites were written out while it ran (every second)
    grep -Eq '^site [1-9][0-9]{3,} [0-9]+$' "$T/facts" || fail "no site of the loop" "$(cat "$T/facts")"
    "$MEMALLOC_CMD" report "$T/t" -o "$T/t.html" >"$T/report.out" 2>&1 ||
        fail "memalloc report failed" "$(cat "$T/report.out")"
    grep -qi 'did not end normally' "$T/t.html" || fail "the report does not say it was cut"
}

@test "trace: a process that execs keeps its file; the last program's records come last" {
    traced_run "$T/t" MEMALLOC_TRACE_SAMPLE=1 -- "$TRACED" exec "$TRACED"
    [[ $(cat "$T/run.out") == done ]]
    [[ ! -e $T/t.$(sed -n 's/^pid=\([0-9]*\) .*/\1/p' <($CHECK "$T/t")) ]] || fail "a second file"
    $CHECK "$T/t" >"$T/facts"
    has "$T/facts" "info=2 end=1 cut=0"
    has "$T/facts" "site 1000 100000" # the second program's alone
    has "$T/facts" "sampled 100 allocs=1000 frees=1000 temporary=1000 live=0"
}

@test "trace: FILE taken by another process: this one writes FILE.PID" {
    traced_run "$T/t" -- "$TRACED"
    traced_run "$T/t" -- "$TRACED"
    local n
    n=$(find "$T" -maxdepth 1 -name 't.[0-9]*' | wc -l)
    [[ $n == 1 ]] || fail "$n files FILE.PID" "$(ls "$T")"
    $CHECK "$(find "$T" -maxdepth 1 -name 't.[0-9]*')" >"$T/facts"
    has "$T/facts" "info=1 end=1 cut=0"
}

@test "trace: a file that cannot be created: said once, the program runs untraced" {
    traced_run "$T/no/such/dir/t" -- "$TRACED"
    [[ $(cat "$T/run.rc") == 0 && $(cat "$T/run.out") == done ]]
    [[ $(grep -c 'MEMALLOC_TRACE' "$T/run.err") == 1 ]] || fail "$(cat "$T/run.err")"
    grep -qF "memalloc: MEMALLOC_TRACE: cannot create $T/no/such/dir/t; the program runs untraced" \
        "$T/run.err" || fail "$(cat "$T/run.err")"
}

@test "trace: ignored, and said so, under a check mode" {
    traced_run "$T/t" MEMALLOC_CHECK=1 -- "$TRACED"
    [[ $(cat "$T/run.out") == done ]]
    grep -qF 'memalloc: MEMALLOC_TRACE is ignored while MEMALLOC_CHECK is on' "$T/run.err" ||
        fail "$(cat "$T/run.err")"
    [[ ! -e $T/t ]]
}

@test "trace: real programs run as untraced, and their traces are whole" {
    local name
    printf '%s\n' c b a d >"$T/in"
    for name in sort python; do
        local -a cmd=(sort "$T/in")
        [[ $name == python ]] && cmd=(env PYTHONMALLOC=malloc python3 -c 'print(sorted(str(i) for i in range(20000))[-1])')
        timeout 60 "${cmd[@]}" >"$T/$name.base" 2>&1
        traced_run "$T/$name.t" -- "${cmd[@]}"
        cmp -s "$T/$name.base" "$T/run.out" || fail "$name: output differs" "$(diff "$T/$name.base" "$T/run.out")"
        $CHECK "$T/$name.t" >"$T/$name.facts"
        # (python3 may be a launcher that execs the interpreter: more INFOs)
        grep -Eq '^info=[1-9][0-9]* end=1 cut=0$' "$T/$name.facts" || fail "$(head -n 1 "$T/$name.facts")"
        has "$T/$name.facts" "stack_first_frame_is_site=1"
        grep -q '^sites_calls=[1-9]' "$T/$name.facts" || fail "$name: no sites"
    done
}

@test "trace: gcc's processes through memalloc run: each report's totals are MEMALLOC_STATS's" {
    printf 'static int f(int n) { int t = 0; for (int i = 0; i < n; i++) t += i * i; return t; }\nint g(void) { return f(100); }\n' >"$T/g.c"
    local rc=0 f pairs_stats pairs_trace calls
    # (a small interval: the driver and the assembler allocate little)
    timeout -k 5 "$MA_TIMEOUT" "$MEMALLOC_CMD" run --stats --trace "$T/gcc.t" --sample 1024 -- \
        gcc -O2 -c "$T/g.c" -o "$T/g.o" >"$T/run.out" 2>"$T/run.err" || rc=$?
    [[ $rc == 0 && -s $T/g.o ]] || fail "gcc: status $rc" "$(cat "$T/run.err")"
    pairs_stats=$(sed -n 's/^memalloc: allocs=\([0-9]*\) frees=\([0-9]*\) .*/\1 \2/p' "$T/run.err" | sort)
    [[ $(wc -l <<<"$pairs_stats") -ge 2 ]] || fail "fewer than 2 processes' summaries" "$(cat "$T/run.err")"
    pairs_trace=$(for f in "$T"/gcc.t*; do
        [[ $f == *.html ]] && continue
        $CHECK "$f" | sed -n 's/^end_allocs=\([0-9]*\) end_frees=\([0-9]*\) .*/\1 \2/p'
    done | sort)
    [[ $pairs_stats == "$pairs_trace" ]] || fail "summaries:" "$pairs_stats" "traces' END:" "$pairs_trace"
    for f in "$T"/gcc.t*; do
        [[ $f == *.html ]] && continue
        "$MEMALLOC_CMD" report "$f" -o "$f.html" >/dev/null 2>"$T/report.err" ||
            fail "report of $f failed" "$(cat "$T/report.err")"
        calls=$($CHECK "$f" | sed -n 's/^end_allocs=\([0-9]*\) end_frees=\([0-9]*\) .*/\1 allocations, \2 frees/p')
        grep -qF "$calls" "$f.html" || fail "$f.html does not say '$calls'"
        for s in summary timeline sites-peak sites-calls sites-temporary sites-leaks flamegraph sizes \
            lifetimes classes regions; do
            grep -q "<section id=\"$s\"" "$f.html" || fail "$f.html: no section $s"
        done
        ! grep -q 'not recorded in this trace' "$f.html" || fail "$f.html: a section not recorded"
    done
}
