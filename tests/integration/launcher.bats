#!/usr/bin/env bats
# The memalloc command's launcher, `memalloc run` (cli/main.c): real
# programs give the same output and status with it as without, and run on
# the library (the summary line, LD_PRELOAD, /proc/self/maps); statuses
# and deaths by signal pass through; programs the loader would not
# preload (static, setuid, a script of such an interpreter, another word
# size) are refused without being run; bad arguments exit 2 with one line;
# the help, --version, --trace's environment and file, and the lookup of
# the library from the build tree and from an installed tree.
# shellcheck disable=SC2154 # status, output, stderr, lines: set by bats' run
# shellcheck disable=SC2016 # $VAR in single quotes: the program's shell expands it

load helpers

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
    MA_CMD=$MEMALLOC_BUILD/cli/memalloc
    [[ -x $MA_CMD ]] || fail "memalloc command $MA_CMD not built (cmake --build $MEMALLOC_BUILD)"
}

# compare_launch NAME CMD...: CMD run directly and with `memalloc run`
# must give the same status, stdout and stderr; then with `memalloc run
# --stats`, the same status and stdout, and the summary line on stderr.
compare_launch() {
    local name=$1 rc
    shift
    ma_exec base "$name" "$@" || return
    ma_exec base "$name.run" "$MA_CMD" run -- "$@" || return
    rc=$(ma_rc "$name.run" base)
    [[ $(ma_rc "$name" base) == "$rc" ]] ||
        fail "$name: exit status $(ma_rc "$name" base) directly, $rc with memalloc run" || return
    assert_same_files "$name" "$MA_OUT/$name.base.out" "$MA_OUT/$name.run.base.out" stdout || return
    assert_same_files "$name" "$MA_OUT/$name.base.err" "$MA_OUT/$name.run.base.err" stderr || return
    ma_exec base "$name.stats" "$MA_CMD" run --stats "$@" || return
    rc=$(ma_rc "$name.stats" base)
    [[ $(ma_rc "$name" base) == "$rc" ]] ||
        fail "$name: exit status $(ma_rc "$name" base) directly, $rc with memalloc run --stats" ||
        return
    assert_same_files "$name" "$MA_OUT/$name.base.out" "$MA_OUT/$name.stats.base.out" stdout ||
        return
    assert_stats_line "$MA_OUT/$name.stats.base.err"
}

# static_program FILE: a statically linked program that prints "ran".
static_program() {
    printf '#include <stdio.h>\nint main(void) { puts("ran"); return 0; }\n' >"$T/ran.c"
    cc -static -o "$1" "$T/ran.c" || fail "cc -static failed (is libc.a installed?)"
}

# assert_refused WHAT-REGEX CMD...: `memalloc run CMD` exits 126 with one
# line on stderr matching WHAT-REGEX, and CMD did not run (no stdout).
assert_refused() {
    local re=$1
    shift
    run --separate-stderr "$MA_CMD" run "$@"
    [[ $status -eq 126 ]] || fail "memalloc run $*: status $status, expected 126" "$stderr" || return
    [[ -z $output ]] || fail "memalloc run $*: the program ran: $output" || return
    [[ ${#stderr_lines[@]} -eq 1 && $stderr =~ $re ]] ||
        fail "memalloc run $*: stderr is not one line matching '$re':" "$stderr"
}

@test "run: sort, ls and python3 behave as without it, on the library" {
    make_sort_input "$T/in.txt"
    compare_launch sort sort -t, -k2,2 -k1n "$T/in.txt"
    make_tree "$T/tree"
    compare_launch ls ls -lR --time-style=+%s "$T/tree"
    compare_launch py python3 -c 'import json, sys
d = {str(i): [i] * (i % 50) for i in range(20000)}
print(len(json.dumps(d)))
sys.exit(3)'
    [[ $(ma_rc py base) == 3 ]] || fail "python3 exited $(ma_rc py base), expected 3"
}

@test "run: LD_PRELOAD in the program names the library, which is mapped" {
    run --separate-stderr "$MA_CMD" run -- sh -c 'echo "$LD_PRELOAD"'
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    [[ $output == /* ]] || fail "LD_PRELOAD is not an absolute path: '$output'"
    [[ $(readlink -f "$output") == "$MEMALLOC_LIB_REAL" ]] ||
        fail "LD_PRELOAD='$output', not the library $MEMALLOC_LIB_REAL"
    run --separate-stderr "$MA_CMD" run cat /proc/self/maps
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    grep -qF "$MEMALLOC_LIB_REAL" <<<"$output" || fail "$MEMALLOC_LIB_REAL is not mapped in cat"
    # Without it, nothing is preloaded: the check above can fail.
    run env -u LD_PRELOAD cat /proc/self/maps
    if grep -qF "$MEMALLOC_LIB_REAL" <<<"$output"; then
        fail "$MEMALLOC_LIB_REAL is mapped in cat without memalloc run"
    fi
}

@test "run: an LD_PRELOAD already set is kept, after the library" {
    printf '#include <stdio.h>\n__attribute__((constructor)) static void hello(void) { fputs("other: loaded\\n", stderr); }\n' >"$T/other.c"
    cc -shared -fPIC -o "$T/libother.so" "$T/other.c"
    run --separate-stderr env LD_PRELOAD="$T/libother.so" "$MA_CMD" run --stats printenv LD_PRELOAD
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    [[ $output == *":$T/libother.so" && $(readlink -f "${output%%:*}") == "$MEMALLOC_LIB_REAL" ]] ||
        fail "LD_PRELOAD='$output', expected the library then $T/libother.so"
    [[ ${stderr_lines[0]} == "other: loaded" ]] || fail "the other library did not load:" "$stderr"
    assert_stats_line <(printf '%s\n' "$stderr")
}

@test "run: each option sets its variable; variables not asked for pass through" {
    local c want
    local -a args
    for c in "--stats|MEMALLOC_STATS|1" "--stats=table|MEMALLOC_STATS|table" \
        "--check=1|MEMALLOC_CHECK|1" "--check=2|MEMALLOC_CHECK|2" "--check 1|MEMALLOC_CHECK|1" \
        "--trace=$T/t --sample=1|MEMALLOC_TRACE_SAMPLE|1" \
        "--trace $T/t --sample 2m|MEMALLOC_TRACE_SAMPLE|2097152" \
        "--trace $T/t --sample 3KB|MEMALLOC_TRACE_SAMPLE|3072"; do
        read -ra args <<<"${c%%|*}"
        want=${c#*|}
        run --separate-stderr env -u MEMALLOC_STATS -u MEMALLOC_CHECK "$MA_CMD" run "${args[@]}" \
            sh -c 'echo "$0=$(printenv "$0")"' "${want%%|*}"
        [[ $status -eq 0 && $output == "${want%%|*}=${want#*|}" ]] ||
            fail "run ${args[*]}: status $status, '$output', expected ${want/|/=}" "$stderr" || return
    done
    # Not asked for: the environment's value, untouched.
    run --separate-stderr env MEMALLOC_CHECK=1 MEMALLOC_TRACE_SAMPLE=77 "$MA_CMD" run --stats \
        sh -c 'echo "$MEMALLOC_CHECK $MEMALLOC_TRACE_SAMPLE"'
    [[ $status -eq 0 && $output == "1 77" ]] || fail "passed through: '$output'" "$stderr"
}

@test "run: options after PROGRAM are PROGRAM's" {
    run --separate-stderr "$MA_CMD" run sh -c 'printf "%s|" "$@"' sh --stats --check=3 --help -- x
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    [[ $output == "--stats|--check=3|--help|--|x|" ]] || fail "arguments: '$output'"
    [[ -z $stderr ]] || fail "memalloc run took an option after PROGRAM:" "$stderr"
    # "--" ends the options: a PROGRAM whose name starts with "-".
    ln -s /bin/echo "$T/-echo"
    cd "$T"
    run --separate-stderr env PATH="$T:$PATH" "$MA_CMD" run -- -echo hi
    [[ $status -eq 0 && $output == hi ]] || fail "run -- -echo: status $status, '$output'" "$stderr"
}

@test "run: exit statuses and deaths by signal pass through, with and without --trace" {
    local trace
    for trace in "" "--trace=$T/t"; do
        run "$MA_CMD" run ${trace:+"$trace"} sh -c 'exit 7'
        [[ $status -eq 7 ]] || fail "run ${trace} exit 7: status $status" "$output"
        run "$MA_CMD" run ${trace:+"$trace"} sh -c 'kill -SEGV $$'
        [[ $status -eq 139 ]] || fail "run ${trace} kill -SEGV: status $status, expected 139" "$output"
        # Dies of the signal, not exit(139): the parent's wait says so.
        run python3 -c 'import subprocess, sys; print(subprocess.run(sys.argv[1:]).returncode)' \
            "$MA_CMD" run ${trace:+"$trace"} sh -c 'kill -TERM $$'
        [[ ${lines[-1]} == -15 ]] || fail "run ${trace} kill -TERM: not a death by SIGTERM:" "$output"
    done
    # The shell's word: bash's $? after the launcher died of SIGSEGV.
    run bash -c '"$0" run --trace="$1" sh -c "kill -SEGV \$\$" 2>/dev/null; echo "rc=$?"' "$MA_CMD" "$T/t"
    [[ ${lines[-1]} == rc=139 ]] || fail "bash saw: $output"
}

@test "run --trace: SIGTERM to the launcher reaches the program" {
    "$MA_CMD" run --trace "$T/t" sh -c 'trap "echo got TERM; exit 5" TERM; echo ready; for i in $(seq 100); do sleep 0.1; done' \
        >"$T/term.out" 2>"$T/term.err" &
    local pid=$! i rc=0
    for ((i = 0; i < 100; i++)); do
        grep -q ready "$T/term.out" && break
        sleep 0.1
    done
    grep -q ready "$T/term.out" || fail "the program did not start:" "$(cat "$T/term.err")"
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    # Without the signal, the program would end by itself after 10 s with 0.
    [[ $rc -eq 5 ]] || fail "status $rc, expected 5 (the program's trap)" "$(cat "$T/term.out" "$T/term.err")"
    grep -q "got TERM" "$T/term.out"
}

@test "run --check=1: a misuse program aborts with memalloc's report" {
    local prog=$MEMALLOC_BUILD/misuse/double_free_small
    [[ -x $prog ]] || fail "misuse program $prog not built (cmake --build $MEMALLOC_BUILD)"
    is_standin && skip "stand-in library: memalloc's messages not expected"
    run --separate-stderr "$MA_CMD" run --check=1 "$prog"
    [[ $status -eq 134 ]] || fail "status $status, expected 134 (SIGABRT)" "$stderr"
    [[ ${lines[0]} =~ ^0x[0-9a-f]+$ ]] || fail "no address on stdout: $output"
    [[ ${stderr_lines[0]} == "memalloc: ERROR: double-free on address ${lines[0]} in free()" ]] ||
        fail "not check mode 1's report:" "$stderr"
    grep -q '^SUMMARY: memalloc: double-free in free()$' <<<"$stderr"
    # Without --check: the default mode's one line, so --check made the difference.
    run --separate-stderr "$MA_CMD" run "$prog"
    [[ $status -eq 134 && $stderr == "memalloc: free(): double free of ${lines[0]}" ]] ||
        fail "default mode: status $status" "$stderr"
}

@test "run: a statically linked program is refused, not run" {
    static_program "$T/static"
    run "$T/static"
    [[ $output == ran ]] || fail "the static program does not run by itself: $output"
    assert_refused "^memalloc run: $T/static is statically linked: LD_PRELOAD cannot replace its allocator\$" \
        "$T/static"
}

@test "run: a script whose interpreter is static is refused, directly or through env" {
    static_program "$T/static"
    printf '#!%s\n' "$T/static" >"$T/script"
    printf '#! /usr/bin/env  %s \n' "$T/static" >"$T/envscript"
    printf '#!%s\n' "$T/script" >"$T/nested"
    chmod +x "$T/script" "$T/envscript" "$T/nested"
    run "$T/script"
    [[ $output == ran ]] || fail "the script does not run by itself: $output"
    assert_refused "^memalloc run: $T/script's interpreter $T/static is statically linked" "$T/script"
    assert_refused "^memalloc run: $T/envscript's interpreter $T/static \\(from env\\) is statically linked" \
        "$T/envscript"
    assert_refused "^memalloc run: .*'s interpreter $T/static is statically linked" "$T/nested"
    # Scripts of scripts: the check goes as deep as the kernel does (5
    # levels), and then says so; it runs what the kernel runs.
    printf '#!%s\n' "$T/nested" >"$T/n2"
    printf '#!%s\n' "$T/n2" >"$T/n3"
    printf '#!%s\n' "$T/n3" >"$T/n4"
    printf '#!%s\n' "$T/n4" >"$T/n5"
    chmod +x "$T/n2" "$T/n3" "$T/n4" "$T/n5"
    assert_refused "^memalloc run: .*'s interpreter $T/static is statically linked" "$T/n4"
    assert_refused "^memalloc run: .*: too many levels of #! interpreters\$" "$T/n5"
    local i
    printf '#!/bin/echo\n' >"$T/e1"
    for i in 2 3 4 5 6; do printf '#!%s\n' "$T/e$((i - 1))" >"$T/e$i"; done
    chmod +x "$T"/e[1-6]
    run "$T/e5"
    [[ $status -eq 0 ]] || fail "the kernel does not run 5 levels of scripts: $status $output"
    run "$T/e6"
    [[ $status -ne 0 ]] || fail "the kernel runs 6 levels of scripts"
    run --separate-stderr "$MA_CMD" run "$T/e5"
    [[ $status -eq 0 && $output == "$T/e1 $T/e2 $T/e3 $T/e4 $T/e5" ]] ||
        fail "memalloc run of 5 levels: status $status, '$output'" "$stderr"
    assert_refused "^memalloc run: .*: too many levels of #! interpreters\$" "$T/e6"
    # A file with neither #! nor ELF's magic is run by /bin/sh, as
    # execvp and shells do, on the library.
    printf 'echo "$LD_PRELOAD"\n' >"$T/plain"
    chmod +x "$T/plain"
    run --separate-stderr "$MA_CMD" run "$T/plain"
    [[ $status -eq 0 && $(readlink -f "$output") == "$MEMALLOC_LIB_REAL" ]] ||
        fail "file without #!: status $status, '$output'" "$stderr"
    # A script of a dynamically linked interpreter runs on the library.
    printf '#!/bin/sh\necho "$LD_PRELOAD"\n' >"$T/ok"
    chmod +x "$T/ok"
    run --separate-stderr "$MA_CMD" run "$T/ok"
    [[ $status -eq 0 && $(readlink -f "$output") == "$MEMALLOC_LIB_REAL" ]] ||
        fail "script of /bin/sh: status $status, '$output'" "$stderr"
}

@test "run: 32-bit ELF programs are read: static refused, dynamic refused for the 64-bit library" {
    # Hand-made ELF32 headers (i386): one program header, PT_INTERP or PT_LOAD.
    local type
    for type in 3 1; do
        python3 - "$T/elf32.$type" "$type" <<'EOF'
import struct, sys
ph_type = int(sys.argv[2])
ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)  # ELFCLASS32, little-endian
ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0x8048000, 52, 0, 0, 52, 32, 1, 40, 0, 0)
phdr = struct.pack("<IIIIIIII", ph_type, 84, 0, 0, 20, 20, 4, 1)
with open(sys.argv[1], "wb") as f:
    f.write(ehdr + phdr + b"/lib/ld-linux.so.2\0\0")
EOF
        chmod +x "$T/elf32.$type"
    done
    assert_refused "statically linked" "$T/elf32.1"
    assert_refused "^memalloc run: $T/elf32.3 is a 32-bit program and .* a 64-bit library: the loader cannot preload it\$" \
        "$T/elf32.3"
}

@test "run: a setuid or setgid program of another user or group is refused" {
    [[ $(id -u) == 0 ]] || skip "not root: cannot give a program to another user (chown)"
    local bin=$T/suid
    mkdir -p "$bin"
    chmod 755 "$T" "$bin"
    cp /usr/bin/id "$bin/id-u"
    cp /usr/bin/id "$bin/id-g"
    chown nobody "$bin/id-u"
    chmod u+s "$bin/id-u"
    chgrp nogroup "$bin/id-g"
    chmod g+s "$bin/id-g"
    # The bits take effect here (not a nosuid mount): so the loader's
    # secure mode would ignore LD_PRELOAD.
    run "$bin/id-u" -u
    [[ $output == "$(id -u nobody)" ]] || skip "setuid has no effect in $bin (nosuid mount?): $output"
    assert_refused "^memalloc run: $bin/id-u is setuid to user nobody: the loader runs it in secure mode" \
        "$bin/id-u" -u
    assert_refused "^memalloc run: $bin/id-g is setgid to group nogroup: the loader runs it in secure mode" \
        "$bin/id-g" -g
    # Setuid to ourselves (root) changes no id: it runs, on the library.
    cp /usr/bin/id "$bin/id-root"
    chmod u+s "$bin/id-root"
    run --separate-stderr "$MA_CMD" run --stats "$bin/id-root" -u
    [[ $status -eq 0 && $output == 0 ]] || fail "setuid root: status $status, '$output'" "$stderr"
    assert_stats_line <(printf '%s\n' "$stderr")
}

@test "run: not found is 127, not executable 126, as in shells" {
    run -127 --separate-stderr "$MA_CMD" run no-such-program-memalloc
    [[ $status -eq 127 && $stderr == "memalloc run: no-such-program-memalloc: command not found" ]] ||
        fail "status $status" "$stderr"
    run -127 --separate-stderr "$MA_CMD" run "$T/nothing"
    [[ $status -eq 127 && $stderr == "memalloc run: $T/nothing: No such file or directory" ]] ||
        fail "status $status" "$stderr"
    printf 'echo ran\n' >"$T/noexec"
    run --separate-stderr "$MA_CMD" run "$T/noexec"
    [[ $status -eq 126 && $stderr == "memalloc run: $T/noexec: Permission denied" && -z $output ]] ||
        fail "status $status" "$stderr"
    run --separate-stderr "$MA_CMD" run "$T"
    [[ $status -eq 126 && $stderr == "memalloc run: $T: Is a directory" ]] || fail "status $status" "$stderr"
    printf '#!%s/no-interpreter\n' "$T" >"$T/badinterp"
    chmod +x "$T/badinterp"
    run -127 --separate-stderr "$MA_CMD" run "$T/badinterp"
    [[ $status -eq 127 && $stderr == *"bad interpreter $T/no-interpreter"* ]] ||
        fail "status $status" "$stderr"
    # Found in PATH, past a directory where the name is not executable.
    mkdir -p "$T/p1" "$T/p2"
    printf 'echo wrong\n' >"$T/p1/hello"
    printf '#!/bin/sh\necho right\n' >"$T/p2/hello"
    chmod +x "$T/p2/hello"
    run --separate-stderr env PATH="$T/p1:$T/p2:/usr/bin:/bin" "$MA_CMD" run hello
    [[ $status -eq 0 && $output == right ]] || fail "PATH lookup: status $status, '$output'" "$stderr"
}

@test "run: bad arguments exit 2 with one line naming the problem" {
    local -a cases=(
        "unknown option '--bogus'|run --bogus ls"
        "unknown option '-x'|run -x ls"
        "unknown command 'frob'|frob"
        "unknown option '--frob'|--frob"
        "no command given|"
        "no PROGRAM to run|run"
        "no PROGRAM to run|run --stats"
        "no PROGRAM to run|run --"
        "--check takes 1 or 2, not '3'|run --check=3 ls"
        "--check takes 1 or 2, not '0'|run --check 0 ls"
        "--check needs a level|run --check"
        "--stats takes =table or nothing, not 'tab'|run --stats=tab ls"
        "--trace needs a FILE|run --trace"
        "--trace needs a FILE|run --trace= ls"
        "--sample takes a positive number of bytes .*'0'|run --trace t --sample 0 ls"
        "--sample takes a positive number of bytes .*'abc'|run --trace t --sample abc ls"
        "--sample takes a positive number of bytes .*'-5'|run --trace t --sample=-5 ls"
        "--sample takes a positive number of bytes .*'4q'|run --trace t --sample 4q ls"
        "--sample needs BYTES|run --trace t --sample"
        "--sample .* needs --trace|run --sample 4k ls"
        "unknown command 'frob'|help frob"
    )
    local c re args
    cd "$T"
    for c in "${cases[@]}"; do
        re=${c%%|*}
        read -ra args <<<"${c#*|}"
        run --separate-stderr "$MA_CMD" "${args[@]}"
        [[ $status -eq 2 ]] || fail "memalloc ${args[*]}: status $status, expected 2" "$stderr" || return
        [[ -z $output ]] || fail "memalloc ${args[*]}: stdout: $output" || return
        [[ ${#stderr_lines[@]} -eq 1 && $stderr =~ ^memalloc( run| help)?:\ .*$re.*\;\ see\ memalloc\ --help$ ]] ||
            fail "memalloc ${args[*]}: stderr is not one line with '$re' and 'see memalloc --help':" \
                "$stderr" || return
    done
    [[ ! -e $T/t ]] || fail "a refused run created its trace file"
}

@test "help: --help, -h, help and COMMAND --help tell every option, variable and status" {
    local h
    run --separate-stderr "$MA_CMD" --help
    [[ $status -eq 0 && -z $stderr ]] || fail "--help: status $status" "$stderr"
    h=$output
    for want in NAME SYNOPSIS DESCRIPTION ENVIRONMENT FILES 'EXIT STATUS' EXAMPLES \
        'memalloc run [--stats[=table]] [--check=1|2] [--trace FILE [--sample BYTES]]' \
        'memalloc report TRACE [-o FILE.html]' 'memalloc help [COMMAND]' '--version' \
        '--stats ' '--stats=table' '--check=1' '--check=2' '--trace FILE' '--sample BYTES' \
        '-h, --help' LD_PRELOAD MEMALLOC_STATS MEMALLOC_CHECK 'MEMALLOC_TRACE ' \
        MEMALLOC_TRACE_SAMPLE MEMALLOC_LIB 125 126 127 'statically linked' setuid \
        'memalloc report'; do
        [[ $h == *"$want"* ]] || fail "--help does not mention '$want'" || return
    done
    run "$MA_CMD" -h
    [[ $status -eq 0 && $output == "$h" ]] || fail "-h differs from --help"
    run "$MA_CMD" help
    [[ $status -eq 0 && $output == "$h" ]] || fail "help differs from --help"
    run --separate-stderr "$MA_CMD" run --help
    [[ $status -eq 0 && $output == *"memalloc run - "* && $output == *"--sample BYTES"* &&
        $output == *"EXIT STATUS"* && $output != *"memalloc report - "* ]] ||
        fail "run --help: status $status" "$output"
    local run_help=$output
    run "$MA_CMD" help run
    [[ $status -eq 0 && $output == "$run_help" ]] || fail "help run differs from run --help"
    run "$MA_CMD" run -h --bogus
    [[ $status -eq 0 && $output == "$run_help" ]] || fail "run -h: status $status"
    run "$MA_CMD" help report
    [[ $status -eq 0 && $output == *"memalloc report TRACE [-o FILE.html]"* ]] ||
        fail "help report: status $status" "$output"
}

@test "--version prints the project's version" {
    local version
    version=$(sed -n 's/^project(memalloc VERSION \([0-9.]*\).*/\1/p' "$MA_ROOT/CMakeLists.txt")
    [[ -n $version ]] || fail "no version in $MA_ROOT/CMakeLists.txt"
    run --separate-stderr "$MA_CMD" --version
    [[ $status -eq 0 && $output == "memalloc $version" && -z $stderr ]] ||
        fail "--version: status $status, '$output'" "$stderr"
}

@test "run --trace: an absolute MEMALLOC_TRACE, FILE removed first, where the trace is told" {
    mkdir -p "$T/sub"
    cd "$T"
    # The program prints what it was given; it does not look at FILE,
    # which the library may have created by then.
    echo stale >"$T/sub/trace.out"
    run --separate-stderr "$MA_CMD" run --trace sub/trace.out --sample 4k -- \
        sh -c 'echo "$MEMALLOC_TRACE"; echo "$MEMALLOC_TRACE_SAMPLE"'
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    [[ ${lines[0]} == "$T/sub/trace.out" ]] || fail "MEMALLOC_TRACE='${lines[0]}', not $T/sub/trace.out"
    [[ ${lines[1]} == 4096 ]] || fail "MEMALLOC_TRACE_SAMPLE='${lines[1]}', not 4096"
    ! grep -qs stale "$T/sub/trace.out" || fail "the old sub/trace.out was not removed"
    if [[ -e $T/sub/trace.out ]]; then
        [[ ${stderr_lines[-1]} == "memalloc run: the trace is in sub/trace.out; see it with: memalloc report sub/trace.out" ]]
    else
        [[ ${stderr_lines[-1]} == "memalloc run: the program wrote no trace to sub/trace.out" ]]
    fi || fail "last line of stderr:" "$stderr"
    # A program that writes FILE and FILE.PID (as a child process would):
    # memalloc run names FILE, counts the others, and quotes for the shell.
    mkdir -p "$T/a b"
    run --separate-stderr "$MA_CMD" run --trace "a b/t" -- \
        sh -c 'echo x >"$MEMALLOC_TRACE"; echo y >"$MEMALLOC_TRACE.12345"; exit 4'
    [[ $status -eq 4 ]] || fail "status $status" "$stderr"
    [[ ${stderr_lines[-1]} == "memalloc run: the trace is in 'a b/t' (and 1 more, 'a b/t'.PID, of child processes); see it with: memalloc report 'a b/t'" ]] ||
        fail "last line of stderr:" "$stderr"
    # FILE in a directory that does not exist: nothing runs.
    run --separate-stderr "$MA_CMD" run --trace "$T/none/t" -- sh -c 'echo ran'
    [[ $status -eq 125 && -z $output && $stderr == *"$T/none/t"* ]] || fail "status $status" "$stderr"
    # FILE that cannot be removed (a directory): nothing runs.
    mkdir -p "$T/dir"
    run --separate-stderr "$MA_CMD" run --trace "$T/dir" -- sh -c 'echo ran'
    [[ $status -eq 125 && -z $output && $stderr == "memalloc run: cannot remove $T/dir for the new trace: "* ]] ||
        fail "status $status" "$stderr"
}

@test "run: the library is found next to the command, in the build and installed trees" {
    # The build tree: build/cli/memalloc runs build/libmemalloc.so.
    run --separate-stderr env -u MEMALLOC_LIB "$MA_CMD" run cat /proc/self/maps
    [[ $status -eq 0 ]] || fail "status $status" "$stderr"
    grep -qF "$(readlink -f "$MEMALLOC_BUILD/libmemalloc.so")" <<<"$output" ||
        fail "build tree: $MEMALLOC_BUILD/libmemalloc.so is not mapped"
    # An installed tree: PREFIX/bin/memalloc runs PREFIX/lib.../libmemalloc.so.
    cmake --install "$MEMALLOC_BUILD" --prefix "$T/inst" >"$T/install.log" ||
        fail "cmake --install failed" "$(cat "$T/install.log")"
    local lib
    lib=$(find "$T/inst" -name libmemalloc.so)
    [[ -n $lib ]] || fail "no libmemalloc.so installed under $T/inst"
    [[ -f $T/inst/share/man/man1/memalloc.1 ]] || fail "the man page is not installed"
    run --separate-stderr env -u MEMALLOC_LIB "$T/inst/bin/memalloc" run --stats cat /proc/self/maps
    [[ $status -eq 0 ]] || fail "installed: status $status" "$stderr"
    grep -qF "$(readlink -f "$lib")" <<<"$output" || fail "installed: $lib is not mapped"
    ! grep -qF "$MEMALLOC_BUILD/" <<<"$output" || fail "installed: the build tree's library is mapped"
    is_standin || assert_stats_line <(printf '%s\n' "$stderr")
    # MEMALLOC_LIB overrides the lookup.
    run --separate-stderr env MEMALLOC_LIB="$lib" "$MA_CMD" run -- sh -c 'echo "$LD_PRELOAD"'
    [[ $status -eq 0 && $(readlink -f "$output") == "$(readlink -f "$lib")" ]] ||
        fail "MEMALLOC_LIB: status $status, LD_PRELOAD='$output'" "$stderr"
    # The command without a library next to it: a clear error, nothing run.
    mkdir -p "$T/lone/bin"
    cp "$MA_CMD" "$T/lone/bin/memalloc"
    run --separate-stderr env -u MEMALLOC_LIB "$T/lone/bin/memalloc" run sh -c 'echo ran'
    [[ $status -eq 125 && -z $output ]] || fail "no library: status $status, '$output'" "$stderr"
    [[ $stderr == "memalloc run: libmemalloc.so not found: not at $(readlink -f "$T")/lone/bin/"*"; set MEMALLOC_LIB to its path" ]] ||
        fail "no library: stderr:" "$stderr"
    run --separate-stderr env MEMALLOC_LIB="$T/nolib.so" "$MA_CMD" run sh -c 'echo ran'
    [[ $status -eq 125 && -z $output && $stderr == "memalloc run: MEMALLOC_LIB=$T/nolib.so: No such file or directory" ]] ||
        fail "MEMALLOC_LIB missing: status $status" "$stderr"
    run --separate-stderr env MEMALLOC_LIB=/etc/passwd "$MA_CMD" run sh -c 'echo ran'
    [[ $status -eq 125 && -z $output && $stderr == "memalloc run: /etc/passwd is not an ELF file: it cannot be preloaded" ]] ||
        fail "MEMALLOC_LIB not a library: status $status" "$stderr"
}
