#!/usr/bin/env bats
# The library itself: it loads, it is mapped, and MEMALLOC_STATS works.

load helpers

setup() {
    memalloc_setup
}

@test "library: preloads without a loader error" {
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" /bin/echo hello
    [[ $status -eq 0 ]] || fail "echo exited $status under the preload: $stderr"
    [[ $output == hello ]] || fail "unexpected stdout: $output"
    [[ -z $stderr ]] || fail "stderr not empty under the preload: $stderr"
}

# What the library exports: glibc 2.36's allocation names (README), the C++
# allocation operators (their Itanium ABI names: new, new[], delete and
# delete[] with their sized, aligned and nothrow forms), and the engine's
# own API (include/memalloc.h).
MA_LIBC_NAMES=(malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign
    valloc pvalloc malloc_usable_size mallopt mallinfo mallinfo2 malloc_trim malloc_stats
    malloc_info)
MA_CXX_NAMES=(_Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t
    _ZnamSt11align_val_t _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t
    _ZdlPv _ZdaPv _ZdlPvm _ZdaPvm _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t _ZdlPvSt11align_val_t
    _ZdaPvSt11align_val_t _ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t
    _ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t)
MA_API_NAMES=(memalloc defalloc memfree memresize memdup memoryset memalloc_aligned
    memalloc_usable_size memalloc_trim memalloc_check memalloc_get_stats memalloc_print_stats
    memalloc_set_option memalloc_get_option)

@test "library: exports the libc allocation names and the engine's API, and nothing else" {
    local sym missing=() extra=() defined
    run nm -D --defined-only "$MEMALLOC_LIB_REAL"
    [[ $status -eq 0 ]] || fail "nm failed: $output"
    # "ADDRESS TYPE NAME[@VERSION]": the functions, without their versions
    defined=$(awk 'NF == 3 { sub(/@.*/, "", $3); print $2, $3 }' <<<"$output")
    local -a expected=("${MA_LIBC_NAMES[@]}")
    is_standin || expected+=("${MA_CXX_NAMES[@]}" "${MA_API_NAMES[@]}")
    for sym in "${expected[@]}"; do
        grep -Eq "^[TWi] $sym\$" <<<"$defined" || missing+=("$sym")
    done
    ((${#missing[@]} == 0)) || fail "not exported by $MEMALLOC_LIB_REAL: ${missing[*]}"
    is_standin && return 0
    # Nothing else: an internal symbol that leaks out is caught here.
    while read -r _ sym; do
        [[ " ${expected[*]} " == *" $sym "* ]] || extra+=("$sym")
    done <<<"$defined"
    ((${#extra[@]} == 0)) || fail "exported by $MEMALLOC_LIB_REAL but not expected: ${extra[*]}"
}

@test "library: mapped into a preloaded process (/proc/self/maps)" {
    assert_mapped cat
    # And the same through grep reading its own maps.
    run env LD_PRELOAD="$MEMALLOC_LIB" grep -cF "$MEMALLOC_LIB_REAL" /proc/self/maps
    [[ $status -eq 0 && $output -ge 1 ]] || fail "grep found no mapping of the library: $output"
    # Not mapped without the preload.
    run grep -cF "$MEMALLOC_LIB_REAL" /proc/self/maps
    [[ $output == 0 ]] || fail "library mapped without LD_PRELOAD?"
}

@test "library: mapped and serving the same run (maps and summary line)" {
    is_standin && skip "stand-in library"
    # perl: it keeps stderr open until the library's destructor has run.
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 LIB="$MEMALLOC_LIB_REAL" \
        /usr/bin/perl -ne '$n++ if index($_, $ENV{LIB}) >= 0; END { print $n + 0, "\n" }' \
        /proc/self/maps
    [[ $status -eq 0 && $output -ge 1 ]] || fail "library not mapped: $output"
    grep -Eq "$MA_STATS_RE" <<<"$stderr" || fail "no summary line: $stderr"
}

@test "library: LD_PRELOAD=lib env MEMALLOC_STATS=1 true prints the summary" {
    is_standin && skip "stand-in library"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" /usr/bin/env MEMALLOC_STATS=1 true
    [[ $status -eq 0 ]] || fail "exit status $status: $stderr"
    [[ -z $output ]] || fail "unexpected stdout: $output"
    # true may allocate nothing: any count will do, but the line must be there.
    grep -Eq '^memalloc: allocs=[0-9]+ ' <<<"$stderr" ||
        fail "no 'memalloc: allocs=' line on stderr:" "$stderr"
}

@test "library: summary line names its fields, one line per process" {
    is_standin && skip "stand-in library"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 \
        /usr/bin/perl -e 'my @a = map { "x" x $_ } 1 .. 1000; print scalar(@a), "\n"'
    [[ $status -eq 0 && $output == 1000 ]] || fail "perl: status $status, output $output"
    local lines
    lines=$(grep -c '^memalloc: ' <<<"$stderr") || true
    [[ $lines == 1 ]] || fail "expected 1 memalloc line, got $lines:" "$stderr"
    grep -Eq '^memalloc: allocs=[1-9][0-9]* frees=[0-9]+ .*peak_in_use=[1-9][0-9]*' <<<"$stderr" ||
        fail "summary line lacks allocs/frees/peak_in_use:" "$stderr"
}

@test "library: summary printed even when the program closes stderr at exit" {
    # coreutils (ls, sort, cp, env, ...) close stdout and stderr in an atexit
    # handler, before the library's destructor runs.
    is_standin && skip "stand-in library"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 ls -d /
    [[ $status -eq 0 && $output == / ]] || fail "ls: status $status, output $output"
    grep -Eq "$MA_STATS_RE" <<<"$stderr" || fail "no summary line from ls:" "$stderr"
}

@test "library: MEMALLOC_STATS unset or 0 prints nothing" {
    local v
    for v in unset 0; do
        if [[ $v == unset ]]; then
            run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" /usr/bin/perl -e 'print "ok\n"'
        else
            run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=0 \
                /usr/bin/perl -e 'print "ok\n"'
        fi
        [[ $status -eq 0 && $output == ok ]] || fail "perl ($v): status $status, output $output"
        [[ -z $stderr ]] || fail "MEMALLOC_STATS $v: stderr not empty:" "$stderr"
    done
}

@test "library: MEMALLOC_STATS=1 prints the summary at exit(), not at _exit()" {
    is_standin && skip "stand-in library"
    local probe=$MEMALLOC_BUILD/probes/probe
    [[ -x $probe ]] || fail "probe not built: $probe"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 "$probe" hold 100 exit
    [[ $status -eq 0 && $output == bye ]] || fail "exit(): status $status, output $output" "$stderr"
    [[ $stderr =~ ^memalloc:\ allocs=[1-9][0-9]*\ [^$'\n']*$ ]] ||
        fail "exit(): not one summary line on stderr:" "$stderr"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 "$probe" hold 100 _exit
    [[ $status -eq 0 && $output == bye ]] || fail "_exit(): status $status, output $output" "$stderr"
    [[ -z $stderr ]] || fail "_exit(): stderr not empty:" "$stderr"
}

@test "library: malloc_stats() prints the one summary line, with memalloc_get_stats' figures" {
    is_standin && skip "stand-in library"
    local probe=$MEMALLOC_BUILD/probes/probe
    [[ -x $probe ]] || fail "probe not built: $probe"
    # A small block and a mapped one; then memalloc_get_stats and at once
    # malloc_stats: the probe prints the first's figures under the names
    # README's summary line uses, in its order.
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" "$probe" hold 100 hold 8m \
        stats-vs-malloc_stats
    [[ $status -eq 0 ]] || fail "probe: status $status" "$output" "$stderr"
    [[ $output =~ ^stats:\ (allocs=([0-9]+)\ .*mmapped_blocks=([0-9]+)\ .*)$ ]] ||
        fail "probe: unexpected output" "$output"
    local figures=${BASH_REMATCH[1]} allocs=${BASH_REMATCH[2]} mapped=${BASH_REMATCH[3]}
    ((allocs >= 2 && mapped >= 1)) || fail "figures do not count the two blocks: $figures"
    [[ $stderr == "memalloc: $figures" ]] ||
        fail "malloc_stats() printed another line than memalloc_get_stats' figures" \
            "expected: memalloc: $figures" "stderr: $stderr"
}

@test "library: MEMALLOC_STATS=1 goes to stderr only" {
    is_standin && skip "stand-in library"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=1 \
        /usr/bin/perl -e 'print "ok\n"'
    [[ $status -eq 0 ]] || fail "perl exited $status"
    [[ $output == ok ]] || fail "stdout polluted: $output"
    grep -Eq "$MA_STATS_RE" <<<"$stderr" || fail "no summary on stderr: $stderr"
}

@test "library: works under a 120 MB address-space limit (ulimit -v)" {
    # Regions are 64 MiB aligned mappings; getting one must not need twice
    # that much address space.
    compare_run ulimit_v bash -c 'ulimit -v 120000 && ls -la / >/dev/null && sort -n <<<"3
1
2" && /usr/bin/python3 -c "print(sum(range(10**6)))"'
    [[ $(cat "$MA_OUT/ulimit_v.pre.out") == $'1\n2\n3\n499999500000' ]] || fail "unexpected output"
}

@test "library: an invalid MEMALLOC_MMAP_THRESHOLD is reported and ignored" {
    is_standin && skip "stand-in library"
    run --separate-stderr env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_MMAP_THRESHOLD=lots \
        /usr/bin/perl -e 'print "ok\n"'
    [[ $status -eq 0 && $output == ok ]] || fail "perl: status $status, output $output"
    [[ $stderr == "memalloc: ignoring MEMALLOC_MMAP_THRESHOLD=lots: not a size (range 0..33554432), using 4194304" ]] ||
        fail "unexpected stderr:" "$stderr"
}

@test "library: cmake --install, then a program linked with -lmemalloc uses the engine API" {
    is_standin && skip "stand-in library"
    local prefix=$BATS_TEST_TMPDIR/prefix
    run cmake --install "$MEMALLOC_BUILD" --prefix "$prefix"
    [[ $status -eq 0 ]] || fail "cmake --install failed:" "$output"
    [[ -f $prefix/include/memalloc.h ]] || fail "header not installed"
    local lib
    lib=$(dirname "$(find "$prefix" -name 'libmemalloc.so' | head -n 1)")
    [[ -n $lib && -f $lib/libmemalloc.so ]] || fail "library not installed"
    cat >"$BATS_TEST_TMPDIR/use.c" <<'C'
#include <memalloc.h>
#include <stdio.h>
#include <string.h>
int main(void) {
    char *p = memalloc(100);
    memoryset(p, 'x', 99);
    p[99] = 0;
    char *q = memdup(p, 100);
    q = memresize(q, 5000);
    int ok = q && strlen(q) == 99 && memalloc_usable_size(q) >= 5000 && memalloc_check() == 0;
    memfree(p);
    memfree(q);
    printf("%s\n", ok ? "engine ok" : "engine broken");
    return !ok;
}
C
    run gcc -Wall -Wextra -Werror -I"$prefix/include" "$BATS_TEST_TMPDIR/use.c" \
        -L"$lib" -Wl,-rpath,"$lib" -lmemalloc -o "$BATS_TEST_TMPDIR/use"
    [[ $status -eq 0 ]] || fail "compiling against the installed header failed:" "$output"
    run "$BATS_TEST_TMPDIR/use"
    [[ $status -eq 0 && $output == "engine ok" ]] || fail "status $status: $output"
}
