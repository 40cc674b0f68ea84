#!/usr/bin/env bash
# Regenerates the pictures of docs/how-a-heap-works.md (docs/img/*.png):
# runs a few real programs under `memalloc run --trace`, turns each trace
# into a report with `memalloc report`, and takes a screenshot of chosen
# sections of the report with headless Chromium.
#
#   scripts/doc-pictures.sh [BUILD_DIR]      (default: build/)
#
# Needs: a build (build/libmemalloc.so, build/cli/memalloc), python3, gcc,
# and Debian's chromium. For maintainers only: the tests do not run it.
# The figures differ a little from run to run (timing, the machine).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
memalloc=$build/cli/memalloc
out=$here/docs/img
[ -x "$memalloc" ] || { echo "doc-pictures: no $memalloc (build first)" >&2; exit 1; }
[ -e "$build/libmemalloc.so" ] || { echo "doc-pictures: no $build/libmemalloc.so" >&2; exit 1; }
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "doc-pictures: chromium not found (apt-get install chromium)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# shot REPORT SECTION PNG WIDTH HEIGHT: a copy of REPORT that shows only
# SECTION (no title), captured at WIDTH x HEIGHT pixels.
shot() {
    local report=$1 section=$2 png=$3 width=$4 height=$5
    local page=$work/$(basename "$png" .png).html
    python3 - "$report" "$section" "$page" <<'PY'
import sys
report, section, page = sys.argv[1:]
html = open(report, encoding="utf-8").read()
css = ("<style>section:not(#%s){display:none!important}"
       "body>h1{display:none!important}</style></head>" % section)
if "</head>" not in html:
    sys.exit("doc-pictures: no </head> in " + report)
open(page, "w", encoding="utf-8").write(html.replace("</head>", css, 1))
PY
    "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$work/chromium" --window-size="$width,$height" \
        --screenshot="$png" "file://$page" >/dev/null 2>&1
    [ -s "$png" ] || { echo "doc-pictures: no screenshot $png" >&2; exit 1; }
    echo "  $png ($(stat -c %s "$png") bytes)"
}

# 1. python3 in phases: builds a big dict and list (about 100 MiB), frees
# them, and idles for 3 s, three times. PYTHONMALLOC=malloc makes every
# object a malloc block. While idle it keeps allocating a little, so that
# the trace gets its samples of the heap (taken on allocation).
cat > "$work/phases.py" <<'PY'
import time

def idle(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        junk = [str(i) for i in range(200)]
        time.sleep(0.002)

for phase in range(3):
    d = {i: str(i) * 8 for i in range(400000)}
    l = [bytes(200) for _ in range(100000)]
    idle(0.5)
    del d, l
    idle(3.0)
PY
# The interpreter itself, not a wrapper script (pyenv's shim would be a
# shell that execs it, and the report would be on the shell's processes).
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
echo "python3 in phases"
(cd "$work" && PYTHONMALLOC=malloc "$memalloc" run --trace "$work/py.trace" -- \
    "$python" "$work/phases.py")
"$memalloc" report "$work/py.trace" -o "$work/py.html"
# one phase only, for the size classes at the peak. The report shows the
# classes recorded nearest the peak; they are recorded with a new peak (at
# most every 100 ms), so after building, the program pauses and then
# allocates a tenth more, which makes a record once everything is built.
cat > "$work/phase1.py" <<'PY'
import time
d = {i: str(i) * 8 for i in range(400000)}
l = [bytes(200) for _ in range(100000)]
time.sleep(0.3)
l += [bytes(200) for _ in range(40000)]
time.sleep(0.3)
PY
echo "python3, one phase"
(cd "$work" && PYTHONMALLOC=malloc "$memalloc" run --trace "$work/py1.trace" -- \
    "$python" "$work/phase1.py")
"$memalloc" report "$work/py1.trace" -o "$work/py1.html"
# the same with a purge delay of 0: nothing kept
echo "python3 in phases, MEMALLOC_PURGE_DELAY=0"
(cd "$work" && MEMALLOC_PURGE_DELAY=0 PYTHONMALLOC=malloc "$memalloc" run \
    --trace "$work/py0.trace" -- "$python" "$work/phases.py")
"$memalloc" report "$work/py0.trace" -o "$work/py0.html"

# 2. gcc -O2 -c on a generated C file of 300 functions.
echo "gcc"
python3 -c '
with open("'"$work"'/gen.c", "w") as f:
    for i in range(300):
        f.write("int f%d(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) s += a[i] * %d + (a[i] >> %d); return s; }\n" % (i, i, i % 7))
'
"$memalloc" run --trace "$work/gcc.trace" -- gcc -O2 -c -o "$work/gen.o" "$work/gen.c"
# gcc runs cc1 as a child process: its trace is gcc.trace.PID
cc1=$(ls -S "$work"/gcc.trace.* | sed -n 1p)
"$memalloc" report "$cc1" -o "$work/gcc.html"

echo "pictures in $out"
shot "$work/py.html" timeline "$out/python-phases-timeline.png" 1200 560
shot "$work/py0.html" timeline "$out/python-phases-nodelay-timeline.png" 1200 560
shot "$work/gcc.html" timeline "$out/gcc-timeline.png" 1200 560
shot "$work/gcc.html" classes "$out/gcc-classes.png" 900 1260
shot "$work/py1.html" classes "$out/python-classes.png" 900 600
