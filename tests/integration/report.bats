#!/usr/bin/env bats
# memalloc report: the synthetic trace of build/tests/cli/trace_gen (every
# record type, stacks of the generator's own functions) turned into one
# HTML page with every section; bad input; the page in a real browser
# (headless Chromium: scripts/install-deps.sh installs it; the test fails
# without it).
# shellcheck disable=SC2030,SC2031 # each test runs in a subshell of its own

load helpers

SECTIONS=(summary timeline sites-peak sites-calls sites-temporary sites-leaks flamegraph
    sizes lifetimes classes arenas regions)

setup() {
    memalloc_setup
    T=$BATS_TEST_TMPDIR
    MA=$MEMALLOC_BUILD/cli/memalloc
    GEN=$MEMALLOC_BUILD/tests/cli/trace_gen
    [[ -x $MA ]] || fail "memalloc command $MA not built (cmake --build $MEMALLOC_BUILD)"
    [[ -x $GEN ]] || fail "trace generator $GEN not built (cmake --build $MEMALLOC_BUILD)"
}

# report ARGS...: run memalloc report; status in $rc, stdout and stderr in
# $T/rep.out and $T/rep.err.
report() {
    rc=0
    timeout -k 5 "$MA_TIMEOUT" "$MA" report "$@" >"$T/rep.out" 2>"$T/rep.err" || rc=$?
}

# assert_sections FILE: every section's element is in the page.
assert_sections() {
    local id
    for id in "${SECTIONS[@]}"; do
        grep -q "<section id=\"$id\">" "$1" || fail "no section id=\"$id\" in $1"
    done
}

@test "report: the synthetic trace gives one page with every section, beside the trace" {
    local peak frag
    "$GEN" "$T/gen.trace" >"$T/gen.out"
    report "$T/gen.trace"
    [[ $rc == 0 ]] || fail "exit status $rc" "$(cat "$T/rep.err")"
    [[ -s $T/gen.trace.html ]] || fail "no $T/gen.trace.html"
    assert_sections "$T/gen.trace.html"
    # every section has its data: none says it was not recorded
    ! grep -q 'not recorded in this trace' "$T/gen.trace.html" ||
        fail "a section says not recorded:" "$(grep 'not recorded' "$T/gen.trace.html")"
    ! grep -q 'id="not-ended"' "$T/gen.trace.html" || fail "a complete trace reported as not ended"
    # the charts and tables have their content
    grep -q '<polyline class="s-inuse" points="[0-9]' "$T/gen.trace.html" || fail "no in-use line"
    for id in table-peak table-calls table-temporary table-leaks table-classes table-arenas; do
        grep -A2 "<table id=\"$id\"" "$T/gen.trace.html" | grep -q '<td' || fail "table $id is empty"
    done
    # the generator's heap at the peak: 1 MiB free, in use + 1 MiB mapped
    peak=$(sed -n 's/.*peak_in_use=\([0-9]*\).*/\1/p' "$T/gen.out")
    frag=$(awk -v p="$peak" 'BEGIN { printf "%.1f%%", 100 * 1048576 / (1048576 + p) }')
    grep -q "id=\"fragmentation\".*Fragmentation $frag" "$T/gen.trace.html" ||
        fail "no fragmentation $frag in the timeline's section"
    grep -q "<b id=\"fragmentation-value\">$frag</b>" "$T/gen.trace.html" ||
        fail "no fragmentation $frag in the regions' section"
    grep -q "<td id=\"peak\" data-v=\"$peak\">" "$T/gen.trace.html" || fail "no peak $peak in the summary"
    # the summary on stdout
    grep -q "^memalloc report: $T/gen.trace.html\$" "$T/rep.out" || fail "stdout: $(cat "$T/rep.out")"
    grep -q 'peak in use .* MiB' "$T/rep.out" || fail "no peak on stdout: $(cat "$T/rep.out")"
    grep -q 'leaked at exit' "$T/rep.out" || fail "no leak line on stdout: $(cat "$T/rep.out")"
}

@test "report: frames are named from the trace's maps and the generator's symbols" {
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/page.html"
    [[ $rc == 0 ]] || fail "exit status $rc" "$(cat "$T/rep.err")"
    local f
    for f in 'gen_site_a+0x5 (trace_gen)' 'gen_site_b+0x6 (trace_gen)' 'gen_caller_y (trace_gen)' \
        'gen_root (trace_gen)' '(libc.so.6)'; do
        grep -qF "$f" "$T/page.html" || fail "no frame '$f' in the page"
    done
}

@test "report: the program's arguments are escaped, the page loads nothing from elsewhere" {
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/page.html"
    [[ $rc == 0 ]] || fail "exit status $rc" "$(cat "$T/rep.err")"
    grep -qF 'synthetic --size=&lt;big&gt; &amp; &quot;quoted&quot; &#39;x&#39;' "$T/page.html" ||
        fail "arguments not escaped:" "$(grep -A1 'id="program"' "$T/page.html")"
    ! grep -qF '<big>' "$T/page.html" || fail "an argument's markup went into the page"
    ! grep -Eiq 'https?:|//[a-z0-9.-]+\.[a-z]|<link|src=|@import|url\(' "$T/page.html" ||
        fail "a reference to another resource:" "$(grep -Eio '.{30}(https?:|<link|src=|@import|url\().{30}' "$T/page.html")"
}

@test "report: -o FILE and -o - (the page on stdout, the summary on stderr); usage" {
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/other.html"
    [[ $rc == 0 && -s $T/other.html && ! -e $T/gen.trace.html ]] || fail "-o FILE: status $rc"
    grep -q "^memalloc report: $T/other.html\$" "$T/rep.out" || fail "stdout: $(cat "$T/rep.out")"
    report "$T/gen.trace" -o -
    [[ $rc == 0 ]] || fail "-o -: status $rc" "$(cat "$T/rep.err")"
    head -n 1 "$T/rep.out" | grep -q '^<!DOCTYPE html>' || fail "-o -: no page on stdout"
    tail -n 1 "$T/rep.out" | grep -q '</html>' || fail "-o -: the page on stdout is not whole"
    cmp -s "$T/rep.out" "$T/other.html" || fail "-o - and -o FILE differ"
    grep -q 'written to standard output' "$T/rep.err" || fail "-o -: stderr: $(cat "$T/rep.err")"
    report "$T/gen.trace" -o "$T/no/such/dir/x.html"
    [[ $rc == 1 ]] || fail "unwritable output: status $rc"
    grep -q "^memalloc report: $T/no/such/dir/x.html: No such file or directory\$" "$T/rep.err" ||
        fail "unwritable output: $(cat "$T/rep.err")"
    report
    [[ $rc == 2 ]] && grep -q '^usage: memalloc report' "$T/rep.err" || fail "no argument: status $rc"
    report "$T/gen.trace" --bogus
    [[ $rc == 2 ]] && grep -q '^memalloc report: unknown option --bogus' "$T/rep.err" ||
        fail "unknown option: status $rc: $(cat "$T/rep.err")"
    report --help
    [[ $rc == 0 && ! -s $T/rep.err ]] && grep -q '^    memalloc report TRACE \[-o FILE.html\]' "$T/rep.out" ||
        fail "--help: status $rc: $(cat "$T/rep.out" "$T/rep.err")"
}

@test "report: bad input is one line naming the file, status 1, and no page" {
    local f
    report "$T/missing.trace"
    [[ $rc == 1 ]] || fail "missing file: status $rc"
    [[ $(cat "$T/rep.err") == "memalloc report: $T/missing.trace: No such file or directory" ]] ||
        fail "missing file: $(cat "$T/rep.err")"
    mkdir "$T/dir.trace"
    report "$T/dir.trace"
    [[ $rc == 1 && $(cat "$T/rep.err") == "memalloc report: $T/dir.trace: not a file" ]] ||
        fail "directory: status $rc: $(cat "$T/rep.err")"
    : >"$T/empty.trace"
    report "$T/empty.trace"
    [[ $rc == 1 && $(cat "$T/rep.err") == "memalloc report: $T/empty.trace: not a memalloc trace (the file is empty)" ]] ||
        fail "empty file: status $rc: $(cat "$T/rep.err")"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$T/text.trace"
    printf 'MEMT' >"$T/short.trace"
    for f in text short; do
        report "$T/$f.trace"
        [[ $rc == 1 && $(cat "$T/rep.err") == "memalloc report: $T/$f.trace: not a memalloc trace (it does not start with MEMTRC01)" ]] ||
            fail "$f: status $rc: $(cat "$T/rep.err")"
    done
    for f in missing dir empty text short; do
        [[ ! -e $T/$f.trace.html ]] || fail "a page was written for $f"
    done
}

@test "report: a trace cut short, or without END, says the program did not end normally" {
    local size
    "$GEN" "$T/gen.trace" >/dev/null
    size=$(stat -c %s "$T/gen.trace")
    head -c $((size / 2 + 3)) "$T/gen.trace" >"$T/cut.trace"
    "$GEN" "$T/noend.trace" --no-end >/dev/null
    for f in cut noend; do
        report "$T/$f.trace"
        [[ $rc == 0 ]] || fail "$f: status $rc" "$(cat "$T/rep.err")"
        assert_sections "$T/$f.trace.html"
        grep -q '<p id="not-ended" class="warn">The program did not end normally (killed or crashed)' \
            "$T/$f.trace.html" || fail "$f: no note that the program did not end normally"
        grep -q 'did not end normally (killed or crashed)' "$T/rep.out" || fail "$f: stdout: $(cat "$T/rep.out")"
    done
    grep -q 'its last record is cut short' "$T/cut.trace.html" || fail "cut: the cut is not said"
    ! grep -q 'its last record is cut short' "$T/noend.trace.html" || fail "noend: said cut short"
}

@test "report: a process that exec'd: the last program's page, the earlier ones named" {
    "$GEN" "$T/exec.trace" --exec-before >/dev/null
    "$GEN" "$T/plain.trace" >/dev/null
    report "$T/exec.trace"
    [[ $rc == 0 ]] || fail "status $rc" "$(cat "$T/rep.err")"
    grep -q '<td id="earlier-programs">The process ran <code>env synthetic --size=&lt;big&gt;</code>, each replaced by the next one (exec)' \
        "$T/exec.trace.html" || fail "no earlier program:" "$(grep -o '<td id="earlier-programs">.*' "$T/exec.trace.html")"
    ! grep -q 'id="not-ended"' "$T/exec.trace.html" || fail "the last program ended: no warning expected"
    grep -q "the process ran 1 program before this one (exec); the report is on the last" "$T/rep.out" || fail "stdout: $(cat "$T/rep.out")"
    # the rest of the page is the last program's: as without the exec
    report "$T/plain.trace"
    diff <(grep -v 'earlier-programs' "$T/exec.trace.html") "$T/plain.trace.html" >"$T/diff" ||
        fail "the pages differ beyond the earlier programs:" "$(head -n 20 "$T/diff")"
}

@test "report: the other traces of the run (FILE.PID) are listed" {
    "$GEN" "$T/run.trace" --pid 500 1 >/dev/null
    "$GEN" "$T/run.trace.501" --pid 501 500 >/dev/null # a child
    "$GEN" "$T/run.trace.503" --pid 503 501 >/dev/null # a grandchild
    "$GEN" "$T/run.trace.x1" --pid 502 500 >/dev/null  # not a trace of the run: not FILE.PID
    report "$T/run.trace"
    [[ $rc == 0 ]] || fail "status $rc" "$(cat "$T/rep.err")"
    grep -q '2 other processes of this run' "$T/rep.out" || fail "stdout: $(cat "$T/rep.out")"
    sed -n '/<table id="table-processes"/,/<\/table>/p' "$T/run.trace.html" >"$T/procs"
    grep -q '<td class="site">run.trace.501</td><td data-v="501">501</td><td data-v="500">500</td>' "$T/procs" ||
        fail "run.trace.501 not listed:" "$(cat "$T/procs")"
    grep -q '<td class="site">run.trace.503</td><td data-v="503">503</td><td data-v="501">501</td>' "$T/procs" ||
        fail "run.trace.503 not listed:" "$(cat "$T/procs")"
    ! grep -q 'run.trace.x1' "$T/procs" || fail "run.trace.x1 listed"
    # a child's own page: a complete trace, with no other processes of its own
    report "$T/run.trace.501"
    [[ $rc == 0 ]] || fail "status $rc"
    ! grep -q 'id="not-ended"' "$T/run.trace.501.html" || fail "the child's trace is complete"
    ! grep -q 'table-processes' "$T/run.trace.501.html" || fail "the child lists processes"
}

@test "report: a trace with its header only: every section says not recorded" {
    printf 'MEMTRC01' >"$T/bare.trace"
    report "$T/bare.trace"
    [[ $rc == 0 ]] || fail "status $rc" "$(cat "$T/rep.err")"
    assert_sections "$T/bare.trace.html"
    local id
    for id in timeline sites-peak sites-calls sites-temporary sites-leaks flamegraph sizes \
        lifetimes classes arenas regions; do
        sed -n "/<section id=\"$id\">/,/<\/section>/p" "$T/bare.trace.html" |
            grep -q 'not recorded in this trace' || fail "section $id does not say not recorded"
    done
    grep -q 'id="not-ended"' "$T/bare.trace.html" || fail "no note that the program did not end"
}

# chromium_page URL NAME: load URL in headless Chromium; the DOM after the
# page's scripts in $T/NAME.dom, its log (console messages) in $T/NAME.log.
chromium_page() {
    local url=$1 name=$2 rc=0
    command -v chromium >/dev/null ||
        fail "chromium not found: install it (scripts/install-deps.sh installs Debian's chromium)" || return
    mkdir -p "$T/chromium-$name"
    HOME=$T/chromium-$name timeout -k 10 120 chromium --headless --no-sandbox --disable-gpu \
        --no-first-run --user-data-dir="$T/chromium-$name/profile" \
        --enable-logging=stderr --v=0 --virtual-time-budget=5000 \
        --dump-dom "$url" >"$T/$name.dom" 2>"$T/$name.log" </dev/null || rc=$?
    ((rc == 0)) || fail "chromium exited with $rc" "$(tail -n 20 "$T/$name.log")"
}

# svg_children DOM ID: how many elements the SVG of that id holds.
svg_children() {
    python3 - "$1" "$2" <<'PY'
import sys, html.parser
class P(html.parser.HTMLParser):
    def __init__(s):
        super().__init__(); s.depth = 0; s.n = 0
    def handle_starttag(s, tag, attrs):
        if s.depth:
            s.n += 1
            if tag == 'svg': s.depth += 1
        elif tag == 'svg' and dict(attrs).get('id') == sys.argv[2]:
            s.depth = 1
    def handle_startendtag(s, tag, attrs):
        if s.depth: s.n += 1
    def handle_endtag(s, tag):
        if s.depth and tag == 'svg': s.depth -= 1
p = P(); p.feed(open(sys.argv[1]).read()); print(p.n)
PY
}

@test "report: headless Chromium runs the page without an error, draws the charts, sorts the tables" {
    local id n
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/page.html"
    [[ $rc == 0 ]] || fail "status $rc" "$(cat "$T/rep.err")"
    chromium_page "file://$T/page.html#selftest" page
    grep -q '<body data-ready="1" data-errors="0" data-selftest="pass"' "$T/page.dom" ||
        fail "the page's script did not run through:" "$(grep -o '<body[^>]*>' "$T/page.dom")"
    ! grep -q 'CONSOLE' "$T/page.log" || fail "console messages:" "$(grep CONSOLE "$T/page.log")"
    for id in timeline-chart flame-chart sizes-calls sizes-bytes lifetimes-chart regions-chart; do
        n=$(svg_children "$T/page.dom" "$id")
        ((n >= 10)) || fail "svg $id has $n elements in the browser's DOM"
    done
    # the flame graph's height was set by the script to its rows
    grep -Eq '<svg id="flame-chart"[^>]*height="(18|36|54|72|90|108)"' "$T/page.dom" ||
        fail "flame graph height:" "$(grep -o '<svg id="flame-chart"[^>]*>' "$T/page.dom")"
}

@test "report: the browser check sees a script error (the check above can fail)" {
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/page.html"
    sed 's|</body>|<script>no_such_function();</script></body>|' "$T/page.html" >"$T/broken.html"
    chromium_page "file://$T/broken.html" broken
    grep -q '<body data-ready="1" data-errors="1"' "$T/broken.dom" ||
        fail "the error was not counted:" "$(grep -o '<body[^>]*>' "$T/broken.dom")"
    grep -q 'CONSOLE.*no_such_function' "$T/broken.log" || fail "no console message for the error"
}

@test "report: headless Chromium's screenshot of the page is a PNG of its size, not blank" {
    local rc=0 w h
    "$GEN" "$T/gen.trace" >/dev/null
    report "$T/gen.trace" -o "$T/page.html"
    command -v chromium >/dev/null || fail "chromium not found: scripts/install-deps.sh installs it"
    mkdir -p "$T/shot"
    HOME=$T/shot timeout -k 10 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir="$T/shot/profile" --hide-scrollbars --window-size=1280,4000 \
        --screenshot="$T/page.png" "file://$T/page.html" >"$T/shot.log" 2>&1 </dev/null || rc=$?
    ((rc == 0)) || fail "chromium exited with $rc" "$(tail -n 20 "$T/shot.log")"
    [[ -f $T/page.png ]] || fail "no screenshot"
    [[ $(head -c 8 "$T/page.png" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || fail "not a PNG"
    w=$(od -An -tu4 --endian=big -j 16 -N 4 "$T/page.png" | tr -d ' ')
    h=$(od -An -tu4 --endian=big -j 20 -N 4 "$T/page.png" | tr -d ' ')
    [[ $w == 1280 && $h == 4000 ]] || fail "screenshot ${w}x$h, expected 1280x4000"
    # a page of charts compresses far less than a blank one (a few KiB)
    (($(stat -c %s "$T/page.png") > 100000)) || fail "screenshot of $(stat -c %s "$T/page.png") bytes: blank?"
    cp "$T/page.png" "$MEMALLOC_BUILD/report-screenshot.png"
}
