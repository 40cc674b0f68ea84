#!/usr/bin/env bats
# The C++ allocation operators of preload/cxx.c. The programs of tests/cxx
# are built here, at run time (cxx_build): operators.cc shows what a
# program sees of new and delete (alignment, nothrow, std::bad_alloc, the
# new-handler), with an output that does not depend on the allocator, so
# that it is compared with the run on libstdc++'s operators and glibc's
# malloc; mismatch.cc releases a block with the wrong function, which the
# check modes report; maps.c and dlopen_host.c + plugin.cc are C programs,
# the second loading C++ code with dlopen.
# shellcheck disable=SC2154 # status, output, lines: set by bats' run

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
    BIN=$BATS_FILE_TMPDIR/bin
    mkdir -p "$BIN"
}

# cxx_build NAME: build tests/cxx/NAME.cc (g++) or NAME.c (gcc) once for
# this file, into $BIN/NAME (plugin: $BIN/plugin.so, a shared object).
cxx_build() {
    local name=$1 src=$MA_ROOT/tests/cxx out tmp
    local -a cmd
    case $name in
    plugin) out=$BIN/plugin.so ;;
    *) out=$BIN/$name ;;
    esac
    [[ -e $out ]] && return 0
    if [[ -f $src/$name.cc ]]; then
        cmd=(g++ -O0 -g -fsized-deallocation -std=c++17 -Wall -Wextra)
        [[ $name == plugin ]] && cmd+=(-shared -fPIC)
        src=$src/$name.cc
    else
        cmd=(gcc -O0 -g -std=gnu11 -Wall -Wextra)
        src=$src/$name.c
    fi
    tmp=$out.tmp.$$
    "${cmd[@]}" -o "$tmp" "$src" -ldl 2>"$T/build.$name.err" ||
        fail "cannot build $src:" "$(cat "$T/build.$name.err")" || return
    mv "$tmp" "$out"
}

# assert_lines NAME MODE REGEX COUNT: COUNT lines of NAME's stdout in MODE
# match REGEX (grep -E).
assert_lines() {
    local n
    n=$(grep -cE "$3" "$MA_OUT/$1.$2.out") || true
    ((n == $4)) || fail "$1 ($2): $n line(s) match '$3', expected $4:" "$(cat "$MA_OUT/$1.$2.out")"
}

@test "c++: every operator new and delete a program imports binds to libmemalloc, libstdc++'s too" {
    is_standin && skip "stand-in library: memalloc's operators not expected"
    cxx_build operators
    local sym syms n=0 line
    # The operators the program calls (nm: its undefined dynamic symbols).
    syms=$(nm -D --undefined-only "$BIN/operators" | awk '{print $NF}' | sed 's/@.*//' |
        grep -E '^_Z(nw|na|dl|da)') || true
    [[ $(wc -w <<<"$syms") -ge 12 ]] || fail "operators imports few operators:" "$syms"
    # LD_BIND_NOW: every symbol is bound at start-up, not only those called.
    LD_DEBUG=bindings LD_BIND_NOW=1 LD_PRELOAD=$MEMALLOC_LIB "$BIN/operators" usable \
        >"$T/usable.out" 2>"$T/bindings"
    for sym in $syms; do
        line=$(grep -F "binding file $BIN/operators [0] to " "$T/bindings" |
            grep -F "symbol \`$sym'") ||
            fail "no binding of $sym from operators" "$(grep -F "$sym" "$T/bindings")"
        [[ $line == *" to $MEMALLOC_LIB [0]: "* ]] ||
            fail "operators: $sym does not bind to $MEMALLOC_LIB:" "$line"
        n=$((n + 1))
    done
    # libstdc++'s own calls of the plain operators (std::string, vector, ...).
    for sym in _Znwm _ZdlPv _Znam _ZdaPv; do
        line=$(grep -E "binding file [^ ]*/libstdc\+\+\.so[^ ]* \[0\] to .*symbol \`$sym'" "$T/bindings") ||
            fail "no binding of $sym from libstdc++" "$(grep -F "$sym" "$T/bindings" | head)"
        [[ $line == *" to $MEMALLOC_LIB [0]: "* ]] ||
            fail "libstdc++: $sym does not bind to $MEMALLOC_LIB:" "$line"
    done
    ((n >= 12))
}

@test "c++: new char[100] has a usable size of at least 100 and is freed with delete[]" {
    cxx_build operators
    compare_run usable "$BIN/operators" usable
    [[ $(ma_rc usable pre) == 0 ]] || fail "operators usable failed"
    assert_lines usable pre '^new char\[100\]: malloc_usable_size >= 100 for 8 of 8$' 1
    assert_lines usable pre '^operator new\(100\): malloc_usable_size >= 100 for 8 of 8$' 1
    assert_lines usable pre '^intact: 8 of 8; deleted$' 1
}

@test "c++: aligned new (alignas 64, 256, 4096, align_val_t up to 4096) returns aligned blocks" {
    cxx_build operators
    compare_run aligned "$BIN/operators" aligned
    [[ $(ma_rc aligned pre) == 0 ]] || fail "operators aligned failed"
    assert_lines aligned pre ': 20 of 20 aligned$' 6
    assert_lines aligned pre '^vector<A256>: data aligned$' 1
}

@test "c++: nothrow new of an impossible size returns nullptr" {
    cxx_build operators
    compare_run nothrow "$BIN/operators" nothrow
    [[ $(ma_rc nothrow pre) == 0 ]] || fail "a nothrow new of an impossible size returned a block"
    assert_lines nothrow pre ': nullptr$' 5
    assert_lines nothrow pre '^new \(nothrow\) char\[10\]: a block$' 1
}

@test "c++: new of an impossible size throws std::bad_alloc" {
    cxx_build operators
    compare_run throw "$BIN/operators" throw
    [[ $(ma_rc throw pre) == 0 ]] || fail "operators throw failed"
    assert_lines throw pre ': caught std::bad_alloc$' 5
}

@test "c++: the new-handler is called until it uninstalls itself, then new throws or returns nullptr" {
    cxx_build operators
    # Each form: the handler frees the reserve (call 1), new tries again and
    # fails, the handler uninstalls itself (call 2), new fails for good.
    compare_run handler "$BIN/operators" handler
    [[ $(ma_rc handler pre) == 0 ]] || fail "operators handler failed"
    assert_lines handler pre '^  new-handler called 2 time\(s\); reserve freed; handler uninstalled$' 5
    assert_lines handler pre ': caught std::bad_alloc$' 3
    assert_lines handler pre ': nullptr, no exception$' 2
}

@test "c++: a new that fails until the new-handler frees memory then succeeds" {
    cxx_build operators
    compare_run handler_frees "$BIN/operators" handler-frees
    [[ $(ma_rc handler_frees pre) == 0 ]] || fail "operators handler-frees could not set up"
    assert_lines handler_frees pre \
        '^new char\[256 MiB - 4 KiB\]: a block after 1 new-handler call\(s\); reserve freed$' 1
}

@test "c++: a C program under the preload does not load libstdc++" {
    is_standin && skip "stand-in library: memalloc's dependencies not expected"
    cxx_build maps
    # The library does not need it.
    if readelf -dW "$MEMALLOC_LIB" | grep NEEDED | grep -q 'libstdc++'; then
        fail "$MEMALLOC_LIB needs libstdc++:" "$(readelf -dW "$MEMALLOC_LIB" | grep NEEDED)"
    fi
    ma_exec base maps "$BIN/maps"
    ma_exec pre maps "$BIN/maps"
    [[ $(ma_rc maps base) == 0 && $(ma_rc maps pre) == 0 ]] || fail "maps failed"
    grep -qx 'libstdc++: not mapped' "$MA_OUT/maps.base.out" || fail "libstdc++ is mapped in maps"
    grep -qx 'libstdc++: not mapped' "$MA_OUT/maps.pre.out" ||
        fail "libstdc++ is mapped in a C program under the preload"
    grep -qx 'libmemalloc: mapped' "$MA_OUT/maps.pre.out" || fail "libmemalloc is not mapped"
    # In a check mode with deep stacks too (the library then opens libunwind).
    env LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_CHECK=1 MEMALLOC_CHECK_STACK=8 "$BIN/maps" >"$T/check.out"
    grep -qx 'libstdc++: not mapped' "$T/check.out" ||
        fail "libstdc++ is mapped in a C program under MEMALLOC_CHECK=1 MEMALLOC_CHECK_STACK=8"
    # The loader's account: no libstdc++ looked for or initialised.
    LD_DEBUG=libs LD_PRELOAD=$MEMALLOC_LIB "$BIN/maps" >/dev/null 2>"$T/libs"
    grep -q "calling init: $MEMALLOC_LIB" "$T/libs" || fail "LD_DEBUG=libs shows no libmemalloc:" "$(cat "$T/libs")"
    if grep -q 'libstdc++' "$T/libs"; then fail "the loader loads libstdc++:" "$(grep 'libstdc++' "$T/libs")"; fi
    # The test sees libstdc++ where it is.
    env LD_PRELOAD="$MEMALLOC_LIB:libstdc++.so.6" "$BIN/maps" | grep -qx 'libstdc++: mapped' ||
        fail "maps does not see a preloaded libstdc++"
}

@test "c++: a failed new in C++ code that a C program loads with dlopen stops with memalloc's message (README: limits)" {
    # python loading a C++ extension module is such a program: libstdc++
    # comes in after memalloc, whose weak references to
    # std::get_new_handler and std::__throw_bad_alloc (preload/cxx.c) were
    # resolved, to nothing, when it was loaded (finding them later would
    # take dlsym, which the library does not call). A failed new then
    # prints "memalloc: operator new: out of memory, and no C++ library to
    # throw std::bad_alloc" and aborts, where libstdc++'s operators call
    # the new-handler and throw std::bad_alloc. Without the library the
    # plugin catches std::bad_alloc: the program does exercise the case.
    cxx_build dlopen_host
    cxx_build plugin
    ma_exec base plugin "$BIN/dlopen_host" "$BIN/plugin.so"
    [[ $(ma_rc plugin base) == 0 ]] || fail "dlopen_host failed without the library"
    assert_lines plugin base '^plugin: new char\[huge\]: caught std::bad_alloc$' 1
    is_standin && return 0
    ma_exec pre plugin "$BIN/dlopen_host" "$BIN/plugin.so"
    [[ $(ma_rc plugin pre) == 134 ]] || fail "dlopen_host: status $(ma_rc plugin pre), expected 134"
    grep -qx "memalloc: operator new: out of memory, and no C++ library to throw std::bad_alloc" \
        "$MA_OUT/plugin.pre.err" || fail "no memalloc message:" "$(cat "$MA_OUT/plugin.pre.err")"
}

# mismatch_case MODE ALLOC RELEASE FIRST [NOTE] [SITE]: mismatch ALLOC
# RELEASE under MODE (check1, check2) must abort (134) before "went
# through", stderr's first line being FIRST with @ADDR@ replaced by the
# block's address, the current stack naming SITE (default release_site),
# NOTE (if not empty) a line of the report, and "allocated by:" naming
# alloc_site.
mismatch_case() {
    local mode=$1 alloc=$2 release=$3 first=$4 note=${5:-} site=${6:-release_site}
    local name=mm_${mode}_${alloc//[^a-z]/_}_${release//[^a-z0-9]/_} addr expected
    ma_exec "$mode" "$name" "$BIN/mismatch" "$alloc" "$release"
    local out=$MA_OUT/$name.$mode.out err=$MA_OUT/$name.$mode.err
    local -a e
    mapfile -t e <"$err"
    addr=$(sed -n 's/^block=//p' "$out")
    [[ $addr =~ ^0x[0-9a-f]+$ ]] || fail "$name: no block address in stdout:" "$(cat "$out")" || return
    expected=${first//@ADDR@/$addr}
    [[ ${e[0]:-} == "$expected" ]] ||
        fail "$name: first line of stderr:" "  expected: $expected" "  got:      ${e[0]:-}" \
            "$(cat "$err")" || return
    [[ $(ma_rc "$name" "$mode") == 134 ]] ||
        fail "$name: exit status $(ma_rc "$name" "$mode"), expected 134" || return
    if grep -q 'went through' "$out"; then fail "$name: the program went on after the report" || return; fi
    [[ ${e[1]:-} =~ ^\ \ \ \ \#0\ 0x[0-9a-f]+\ in\ $site\ \( ]] ||
        fail "$name: the stack of the call does not name $site:" "$(cat "$err")" || return
    if [[ -n $note ]] && ! grep -qxF "$note" "$err"; then
        fail "$name: no line '$note':" "$(cat "$err")" || return
    fi
    grep -A 1 -x 'allocated by:' "$err" | grep -qE '^    #0 0x[0-9a-f]+ in alloc_site \(' ||
        fail "$name: 'allocated by:' does not name alloc_site:" "$(cat "$err")" || return
    grep -qE '^SUMMARY: memalloc: ' "$err" || fail "$name: no SUMMARY line:" "$(cat "$err")"
}

@test "c++ check modes: a block released by the wrong function is an alloc-dealloc-mismatch" {
    is_standin && skip "stand-in library: memalloc's reports not expected"
    cxx_build mismatch
    local mode
    for mode in check1 check2; do
        mismatch_case "$mode" 'new[]' delete \
            'memalloc: ERROR: alloc-dealloc-mismatch (operator new [] vs operator delete) on address @ADDR@ in operator delete()'
        mismatch_case "$mode" new free \
            'memalloc: ERROR: alloc-dealloc-mismatch (operator new vs free) on address @ADDR@ in free()'
        mismatch_case "$mode" malloc delete \
            'memalloc: ERROR: alloc-dealloc-mismatch (malloc vs operator delete) on address @ADDR@ in operator delete()'
        mismatch_case "$mode" 'new[]' free \
            'memalloc: ERROR: alloc-dealloc-mismatch (operator new [] vs free) on address @ADDR@ in free()'
        mismatch_case "$mode" new 'delete[]' \
            'memalloc: ERROR: alloc-dealloc-mismatch (operator new vs operator delete []) on address @ADDR@ in operator delete[]()'
        mismatch_case "$mode" malloc 'delete[]' \
            'memalloc: ERROR: alloc-dealloc-mismatch (malloc vs operator delete []) on address @ADDR@ in operator delete[]()'
        # a sized delete of the right size, but the wrong operator
        mismatch_case "$mode" 'new[]' delete/100 \
            'memalloc: ERROR: alloc-dealloc-mismatch (operator new [] vs operator delete) on address @ADDR@ in operator delete()'
    done
}

@test "c++ check modes: a sized delete whose size is not the block's is a new-delete-type-mismatch" {
    is_standin && skip "stand-in library: memalloc's reports not expected"
    cxx_build mismatch
    local mode
    for mode in check1 check2; do
        mismatch_case "$mode" new delete/99 \
            'memalloc: ERROR: new-delete-type-mismatch on address @ADDR@ in operator delete()' \
            'object of 100 bytes deleted with size 99'
        mismatch_case "$mode" 'new[]' 'delete[]/7' \
            'memalloc: ERROR: new-delete-type-mismatch on address @ADDR@ in operator delete[]()' \
            'object of 100 bytes deleted with size 7'
        # delete of a Derived through a Base * without a virtual destructor
        mismatch_case "$mode" derived - \
            'memalloc: ERROR: new-delete-type-mismatch on address @ADDR@ in operator delete()' \
            'object of 96 bytes deleted with size 8' release_base
    done
}

@test "c++ check modes: blocks released as they were allocated run clean under MEMALLOC_CHECK=1 and 2" {
    cxx_build mismatch
    cxx_build operators
    local pair a r name w mode
    # each allocation with its release (sized ones of the right size)
    for pair in malloc:free new:delete new:delete/100 'new[]:delete[]' 'new[]:delete[]/100'; do
        a=${pair%%:*} r=${pair#*:}
        name=pair_${a//[^a-z]/_}_${r//[^a-z0-9]/_}
        for mode in check1 check2; do
            # (stdout has the block's address: nothing to compare with)
            ma_exec "$mode" "$name" "$BIN/mismatch" "$a" "$r"
            [[ $(ma_rc "$name" "$mode") == 0 && ! -s $MA_OUT/$name.$mode.err ]] ||
                fail "mismatch $a $r under $mode: status $(ma_rc "$name" "$mode")" \
                    "$(cat "$MA_OUT/$name.$mode.err")"
            grep -qx 'went through' "$MA_OUT/$name.$mode.out" ||
                fail "mismatch $a $r did not go through under $mode"
        done
    done
    # What the other tests show, in the check modes: the same output.
    for w in usable aligned nothrow throw handler workload; do
        check_run "ops_$w" "check1 check2" "$BIN/operators" "$w"
        [[ $(ma_rc "ops_$w" base) == 0 ]] || fail "operators $w failed without the library"
    done
    grep -q '^workload checksum: [0-9]' "$MA_OUT/ops_workload.check2.out"
}
