#!/usr/bin/env bats
# malloc_info(3), malloc_stats(3) and MEMALLOC_STATS=table, observed from
# inside a process: tests/probes/info.c (built in $MEMALLOC_BUILD/probes)
# allocates a known pattern and writes malloc_info's XML to files, which
# check_info (python3's xml.etree) parses and checks: glibc's shape, and
# figures that add up. The same probe runs without the preload to compare
# with glibc's own answers.
# shellcheck disable=SC2154 # stderr is set by bats' run --separate-stderr

load helpers

setup() {
    memalloc_setup
    INFO=$MEMALLOC_BUILD/probes/info
    PROBE=$MEMALLOC_BUILD/probes/probe
    [[ -x $INFO && -x $PROBE ]] || fail "probes not built in $MEMALLOC_BUILD/probes"
    is_standin && skip "stand-in library: memalloc's figures not expected"
    T=$BATS_TEST_TMPDIR
    return 0
}

# info [VAR=VALUE]... COMMAND...: the info probe under the preload (no other
# MEMALLOC_* variable); it must exit 0.
info() {
    info_with "LD_PRELOAD=$MEMALLOC_LIB" "$@"
}

# glibc_info COMMAND...: the same without the preload.
glibc_info() {
    info_with "" "$@"
}

info_with() {
    local -a envs=()
    [[ -n $1 ]] && envs+=("$1")
    shift
    while [[ $# -gt 0 && $1 == *=* ]]; do
        envs+=("$1")
        shift
    done
    run --separate-stderr env -u LD_PRELOAD -u MEMALLOC_STATS -u MEMALLOC_CHECK \
        -u MEMALLOC_TCACHE -u MEMALLOC_MMAP_THRESHOLD "${envs[@]}" "$INFO" "$@"
    [[ $status -eq 0 ]] || fail "info ${envs[*]} $*: exit status $status" "$output" "$stderr"
}

# check_info FILE [memalloc|glibc]: FILE is malloc_info's XML, well formed,
# in glibc's shape. For memalloc (the default) its figures must add up:
#  - per heap, the <size> lines whose from is odd (size classes: from the
#    next smaller class + 1) sum to "fast", the others (free chunks, sizes
#    multiples of 16) to "rest"; a class line's total is count * to, a bin
#    line's lies between count * from and count * to;
#  - fast + rest <= system current <= system max; mprotect <= aspace total;
#  - the totals are the sums of the heaps'.
# Prints what the tests compare: "skeleton ..." (the elements outside
# <sizes>, in order, with their attribute names and types), then
# "NAME VALUE" lines: fast_count, fast_size, rest_count, rest_size,
# mmap_count, mmap_size, current, heaps, and "free TO COUNT" per class.
check_info() {
    python3 - "$1" "${2:-memalloc}" <<'PY'
import sys
import xml.etree.ElementTree as ET

path, who = sys.argv[1], sys.argv[2]
def fail(msg):
    sys.exit(f"{path}: {msg}")

try:
    root = ET.parse(path).getroot()
except ET.ParseError as e:
    fail(f"not well formed: {e}")
if root.tag != "malloc" or root.get("version") != "1":
    fail(f"root is <{root.tag} {root.attrib}>, not <malloc version=\"1\">")

def num(e, a):
    v = e.get(a)
    if v is None or not v.isdigit():
        fail(f"<{e.tag} {e.attrib}>: {a} is not a number")
    return int(v)

def desc(e):
    """The tag and its attributes' names, with the value of type."""
    return e.tag + "".join(f" {k}={v}" if k == "type" else f" {k}" for k, v in sorted(e.attrib.items()))

TAIL = ["total type=fast", "total type=rest", "system type=current", "system type=max",
        "aspace type=total", "aspace type=mprotect"]
skeleton = []
heaps = [e for e in root if e.tag == "heap"]
sums = dict(fast_count=0, fast_size=0, rest_count=0, rest_size=0, current=0, max=0, aspace=0, mprotect=0)
free = {}
for nr, h in enumerate(heaps):
    if h.get("nr") != str(nr):
        fail(f"heap {nr} has nr={h.get('nr')}")
    kids = list(h)
    if not kids or kids[0].tag != "sizes":
        fail(f"heap {nr}: no <sizes> first")
    skeleton.append("heap nr")
    skeleton += ["sizes"] + [desc(k) for k in kids[1:]]
    skeleton.append("/heap")
    if who != "memalloc":
        continue
    got = [f"{k.tag} type={k.get('type')}" for k in kids[1:]]
    if got != TAIL:
        fail(f"heap {nr}: elements {got}, expected {TAIL}")
    fig = {f"{k.tag}.{k.get('type')}": k for k in kids[1:]}
    fast = [0, 0]
    rest = [0, 0]
    for s in kids[0]:
        if s.tag != "size":
            fail(f"heap {nr}: <{s.tag}> inside <sizes>")
        lo, hi, total, count = (num(s, a) for a in ("from", "to", "total", "count"))
        if count == 0 or lo > hi:
            fail(f"heap {nr}: bad line {s.attrib}")
        if lo % 2:
            if total != count * hi:
                fail(f"heap {nr}: class line {s.attrib}: total != count * to")
            fast[0] += count
            fast[1] += total
            free[hi] = free.get(hi, 0) + count
        else:
            if not count * lo <= total <= count * hi:
                fail(f"heap {nr}: bin line {s.attrib}: total outside count * [from, to]")
            rest[0] += count
            rest[1] += total
    tf, tr = fig["total.fast"], fig["total.rest"]
    if [num(tf, "count"), num(tf, "size")] != fast:
        fail(f"heap {nr}: fast total {tf.attrib}, its lines sum to {fast}")
    if [num(tr, "count"), num(tr, "size")] != rest:
        fail(f"heap {nr}: rest total {tr.attrib}, its lines sum to {rest}")
    cur, mx = num(fig["system.current"], "size"), num(fig["system.max"], "size")
    asp, mpr = num(fig["aspace.total"], "size"), num(fig["aspace.mprotect"], "size")
    if not fast[1] + rest[1] <= cur <= mx:
        fail(f"heap {nr}: free {fast[1]} + {rest[1]}, system current {cur}, max {mx}")
    if not 0 < mpr <= asp:
        fail(f"heap {nr}: aspace mprotect {mpr}, total {asp}")
    for k, v in zip(("fast_count", "fast_size", "rest_count", "rest_size", "current", "max",
                     "aspace", "mprotect"), (*fast, *rest, cur, mx, asp, mpr)):
        sums[k] += v

rest_kids = [e for e in root if e.tag != "heap"]
skeleton += [desc(e) for e in rest_kids]
if who == "memalloc":
    got = [f"{e.tag} type={e.get('type')}" for e in rest_kids]
    want = TAIL[:2] + ["total type=mmap"] + TAIL[2:]
    if got != want:
        fail(f"totals: elements {got}, expected {want}")
    if not heaps:
        fail("no <heap>")
    fig = {f"{e.tag}.{e.get('type')}": e for e in rest_kids}
    totals = dict(fast_count=num(fig["total.fast"], "count"), fast_size=num(fig["total.fast"], "size"),
                  rest_count=num(fig["total.rest"], "count"), rest_size=num(fig["total.rest"], "size"),
                  current=num(fig["system.current"], "size"), max=num(fig["system.max"], "size"),
                  aspace=num(fig["aspace.total"], "size"), mprotect=num(fig["aspace.mprotect"], "size"))
    if totals != sums:
        fail(f"totals {totals} are not the heaps' sums {sums}")
    print("skeleton", " | ".join(skeleton))
    for k in ("fast_count", "fast_size", "rest_count", "rest_size", "current"):
        print(k, totals[k])
    print("mmap_count", num(fig["total.mmap"], "count"))
    print("mmap_size", num(fig["total.mmap"], "size"))
    print("heaps", len(heaps))
    for to in sorted(free):
        print("free", to, free[to])
else:
    print("skeleton", " | ".join(skeleton))
PY
}

# figure NAME TEXT: the value of line "NAME VALUE" of check_info's output.
figure() {
    awk -v n="$1" '$1 == n { print $2; found = 1 } END { exit !found }' <<<"$2" ||
        fail "no figure $1 in:" "$2"
}

# class_free TO TEXT: free objects of the class of size TO (0 if no line).
class_free() {
    awk -v to="$1" '$1 == "free" && $2 == to { n = $3 } END { print n + 0 }' <<<"$2"
}

@test "malloc_info: well-formed XML in glibc's shape, to a file and to open_memstream" {
    info hold 1000 100 hold 1 8m info "$T/file.xml" memstream "$T/mem.xml"
    [[ $output == "info $T/file.xml: 0"$'\n'"memstream $T/mem.xml: 0" ]] ||
        fail "unexpected probe output:" "$output"
    [[ -z $stderr ]] || fail "unexpected stderr:" "$stderr"
    local f fig
    for f in file mem; do
        fig=$(check_info "$T/$f.xml") || fail "$f.xml:" "$fig" "$(head -n 40 "$T/$f.xml")"
        (($(figure mmap_count "$fig") == 1)) || fail "$f.xml: not one mapped block:" "$fig"
        (($(figure mmap_size "$fig") >= 8388608)) || fail "$f.xml: mapped bytes < 8 MiB:" "$fig"
        (($(figure current "$fig") >= 1000 * 112)) || fail "$f.xml: heap smaller than held:" "$fig"
    done
    # glibc's own answer to the same program has the same elements outside
    # <sizes> (one heap: glibc's main arena)
    glibc_info hold 1000 100 hold 1 8m info "$T/glibc.xml"
    local ours theirs
    ours=$(check_info "$T/file.xml" | grep '^skeleton ')
    theirs=$(check_info "$T/glibc.xml" glibc) || fail "glibc's XML:" "$theirs"
    [[ $ours == "$theirs" ]] || fail "not glibc's shape:" "memalloc: $ours" "glibc:    $theirs"
}

@test "malloc_info: figures move with the program's frees" {
    # 1000 blocks of 100 bytes: class 112 (from 97 to 112); one 8 MiB block
    # with a mapping of its own (the mmap threshold starts at 4 MiB). After the frees the class has 1000 more
    # free objects, and the mapping is gone.
    info hold 1000 100 hold 1 8m info "$T/before.xml" free-held info "$T/after.xml"
    local before after
    before=$(check_info "$T/before.xml") || fail "before.xml:" "$before"
    after=$(check_info "$T/after.xml") || fail "after.xml:" "$after"
    grep -q 'from="97" to="112"' "$T/after.xml" || fail "no line of class 112:" "$(cat "$T/after.xml")"
    local b a
    b=$(class_free 112 "$before")
    a=$(class_free 112 "$after")
    ((a >= b + 1000)) || fail "class 112: $b free objects before the frees, $a after"
    # (the other classes may lose a free object or two meanwhile: the
    # probe's stdout buffer is allocated by its first line, between the calls)
    (($(figure fast_count "$after") >= $(figure fast_count "$before") + 1000 - 2)) ||
        fail "fast count did not grow by about 1000:" "$before" "$after"
    (($(figure mmap_count "$before") == 1 && $(figure mmap_count "$after") == 0)) ||
        fail "mapped blocks: not 1 then 0:" "$before" "$after"
    (($(figure mmap_size "$after") == 0)) || fail "mapped bytes left after the free:" "$after"
}

@test "malloc_info: one <heap> per arena, each adding up, the totals their sums" {
    # 8 threads at once hold 500 blocks of 200 bytes each: with two CPUs or
    # more they spread over two arenas or more (three caches share one).
    info threads 8 500 200 info "$T/threads.xml" free-held info "$T/freed.xml"
    local fig f heaps
    for f in threads freed; do
        fig=$(check_info "$T/$f.xml") || fail "$f.xml:" "$fig" "$(head -n 60 "$T/$f.xml")"
        heaps=$(figure heaps "$fig")
        if (($(nproc) >= 2)); then
            ((heaps >= 2)) || fail "$f.xml: $heaps heap(s) for 8 threads on $(nproc) CPUs"
        fi
    done
    fig=$(check_info "$T/threads.xml")
    (($(figure current "$fig") >= heaps * 64 * 1048576)) || fail "regions smaller than 64 MiB:" "$fig"
}

@test "malloc_info: options other than 0 answer EINVAL as glibc does, writing nothing" {
    local o ours
    for o in 1 -1; do
        info option "$o"
        ours=$output
        [[ $ours == "option $o: rc=22 errno=0" ]] || fail "memalloc: unexpected:" "$ours"
        glibc_info option "$o"
        [[ $output == "$ours" ]] || fail "glibc: $output" "memalloc: $ours"
    done
}

# table_value LABEL: the value of the table's row LABEL in $stderr (the
# label at column 3, the value from column 27).
table_value() {
    awk -v l="  $1 " 'index($0, l) == 1 { print substr($0, 27); found = 1; exit }
        END { exit !found }' <<<"$stderr" || fail "no row '$1' in the table:" "$stderr"
}

@test "MEMALLOC_STATS=table: the table at exit, with the figures of the run" {
    # 1000 blocks of 100 bytes (class 112) and a mapped block of 8 MiB, in
    # use at exit.
    info MEMALLOC_STATS=table hold 1000 100 hold 1 8m exit
    [[ -z $output ]] || fail "stdout not empty:" "$output"
    [[ ${stderr%%$'\n'*} == "memalloc: heap statistics" ]] || fail "no table:" "$stderr"
    ! grep -q '^memalloc: allocs=' <<<"$stderr" || fail "the summary line too:" "$stderr"
    local v
    v=$(table_value allocations)
    [[ $v =~ ^[0-9]+$ ]] && ((v >= 1001)) || fail "allocations: '$v'"
    v=$(table_value "mmapped blocks")
    [[ $v =~ ^1,\ 8\.0\ MiB\ \(([0-9]+)\)$ ]] && ((BASH_REMATCH[1] >= 8388608)) ||
        fail "mmapped blocks: '$v'"
    v=$(table_value "in use")
    [[ $v =~ \(([0-9]+)\)$ ]] && ((BASH_REMATCH[1] >= 1000 * 112 + 8388608)) ||
        fail "in use: '$v'"
    v=$(table_value "heap mapped")
    [[ $v =~ ^64\.0\ MiB\ \(67108864\),\ 1\ region,\ 1\ arena$ ]] || fail "heap mapped: '$v'"
    # the size classes: class 112's row (class, size, pages, objects, used,
    # used%, free) counts the 1000 blocks
    grep -qx '   class    size   pages   objects      used   used%  free' <<<"$stderr" ||
        fail "no header of the classes:" "$stderr"
    local row
    row=$(awk '$2 == 112 && $1 ~ /^[0-9]+$/' <<<"$stderr")
    read -r -a f <<<"$row"
    ((${#f[@]} >= 7 && f[2] >= 1 && f[4] >= 1000 && f[3] >= f[4])) ||
        fail "class 112: '$row'" "$stderr"
    # every human-readable figure agrees with its exact one: "X.Y UNIT (N)"
    # is N in UNITs rounded down to a tenth; "N B" below a KiB
    python3 - "$stderr" <<'PY' || fail "units disagree with the exact figures:" "$stderr"
import re, sys
units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
n = 0
for m in re.finditer(r"(\d+)\.(\d) (KiB|MiB|GiB|TiB) \((\d+)\)", sys.argv[1]):
    whole, tenth, unit, exact = int(m[1]), int(m[2]), m[3], int(m[4])
    u = units[unit]
    if (whole, tenth) != (exact // u, exact % u * 10 // u) or (unit != "TiB" and exact >= u * 1024):
        sys.exit(f"{m[0]}: not {exact} in {unit}")
    n += 1
for m in re.finditer(r"(?<![\d.])(\d+) B\b", sys.argv[1]):
    if int(m[1]) >= 1024:
        sys.exit(f"{m[0]}: a KiB or more in bytes")
sys.exit(0 if n >= 5 else f"only {n} figures with units")
PY
}

@test "MEMALLOC_STATS=table: printed even when the program closes stderr at exit" {
    # ls closes stdout and stderr in an atexit handler, before the
    # library's destructor runs: the table goes to the stderr it started with
    run --separate-stderr env -u MEMALLOC_STATS LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=table \
        ls -d /
    [[ $status -eq 0 && $output == / ]] || fail "ls: status $status, output $output" "$stderr"
    [[ ${stderr%%$'\n'*} == "memalloc: heap statistics" ]] || fail "no table from ls:" "$stderr"
    grep -q '^memalloc: size classes$' <<<"$stderr" || fail "no size classes from ls:" "$stderr"
}

@test "MEMALLOC_STATS=table: the word in any case, and the option reads 2" {
    local v
    for v in table TABLE 2; do
        run --separate-stderr env -u MEMALLOC_STATS LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=$v \
            "$PROBE" option stats
        [[ $status -eq 0 && $output == "option stats: 2" ]] ||
            fail "MEMALLOC_STATS=$v: status $status, output $output" "$stderr"
        [[ ${stderr%%$'\n'*} == "memalloc: heap statistics" ]] ||
            fail "MEMALLOC_STATS=$v: no table at exit:" "$stderr"
    done
}

@test "MEMALLOC_STATS: a bad word is reported and ignored, as bad numbers are" {
    local v
    for v in tabel 3 table1; do
        run --separate-stderr env -u MEMALLOC_STATS LD_PRELOAD="$MEMALLOC_LIB" MEMALLOC_STATS=$v \
            "$PROBE" option stats
        [[ $status -eq 0 && $output == "option stats: 0" ]] ||
            fail "MEMALLOC_STATS=$v: status $status, output $output" "$stderr"
        local why="neither a number nor the word table"
        [[ $v == 3 ]] && why="out of range"
        [[ $stderr == "memalloc: ignoring MEMALLOC_STATS=$v: $why (range 0..2), using 0" ]] ||
            fail "MEMALLOC_STATS=$v: unexpected stderr:" "$stderr"
    done
}

@test "MEMALLOC_STATS=1: still the one summary line at exit, no table" {
    info MEMALLOC_STATS=1 hold 10 100 exit
    [[ $stderr =~ ^memalloc:\ allocs=[1-9][0-9]*\ [^$'\n']*$ ]] ||
        fail "not one summary line:" "$stderr"
}

@test "malloc_stats: the table on stderr under MEMALLOC_STATS=table, else the line" {
    info MEMALLOC_STATS=table hold 1000 100 stats exit
    # the call's table, then the one at exit
    local n
    n=$(grep -c '^memalloc: heap statistics$' <<<"$stderr") || true
    ((n == 2)) || fail "expected 2 tables (the call's and the exit's), got $n:" "$stderr"
    [[ -z $output ]] || fail "malloc_stats wrote on stdout:" "$output"
    info hold 10 100 stats
    [[ $stderr =~ ^memalloc:\ allocs=[1-9][0-9]*\ [^$'\n']*$ ]] ||
        fail "malloc_stats without the table: not one summary line:" "$stderr"
}
