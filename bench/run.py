#!/usr/bin/env python3
"""bench/run.py: benchmark memalloc against glibc and the peer allocators.

Owns the benchmark procedure and its report; touches nothing of the engine.

1. Build the C workloads (bench/*.c) with gcc -O2 -pthread into a build
   directory, and generate the inputs of the real programs (a file of lines
   for sort, a C file for gcc) in a temporary directory.
2. For each workload, run every allocator once per round, in an order rotated
   each round: glibc without a preload, then jemalloc, tcmalloc, mimalloc and
   memalloc through LD_PRELOAD on the same binary. Time is the program's own
   figure for the C workloads and the wall time of the process for the real
   programs; peak RSS is ru_maxrss from wait4() on that child (done by the
   small bench/launch.c, which forks the program: see why there). A run that
   crashes, exits non-zero, times out, or prints another checksum or output
   than glibc's counts as FAILED; so does a run whose stderr carries ld.so's
   warning that it could not preload the library (it then runs the program
   on glibc), and a memalloc run that does not prove memalloc served it: each
   runs with MEMALLOC_STATS=1 and must end with memalloc's summary line
   `memalloc: allocs=N ...`, N > 0, on its stderr (see preload_error).
3. Count the instructions of a malloc+free pair under callgrind (when valgrind
   is installed, or with --callgrind).
4. Write the report (markdown) and its chart (SVG, drawn here).

Standard library only. Exit status 1 if a memalloc run failed (on a
workload or in the fast-path count), else 0 (a failing peer is reported, not
fatal). A failed run is never timed: the report marks it FAILED, and every
geometric mean names the workloads it leaves out.

    python3 bench/run.py [--rounds N] [--only w1,w2] [--memalloc PATH]
                         [--out docs/benchmarks.md] [--callgrind|--no-callgrind]
"""
import argparse
import collections
import concurrent.futures
import datetime
import hashlib
import math
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
CFLAGS = ["-std=gnu11", "-O2", "-pthread", "-Wall", "-Wextra"]

# Peers: name, shared object, Debian package.
PEERS = [
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
]
PEER_NAMES = [p[0] for p in PEERS]

# Workloads in report order: name, kind, what it does.
WORKLOADS = [
    ("churn", "c", "1 thread; 1000 live slots, each op frees a random one and allocates 8-512 B "
     "(20M ops)"),
    ("frag", "c", "1 thread; 8 B-64 KiB log-uniform, 4000 long-lived and 500 short-lived slots, "
     "half the long-lived replaced 8 times (3M ops)"),
    ("realloc", "c", "1 thread; 32 live buffers: string builders grown by a realloc per 1-64 B "
     "append to 1-256 KiB, vectors grown 1.5x to 64 KiB-8 MiB (2000 buffers)"),
    ("large", "c", "1 thread; 4 slots of 256 KiB-64 MiB, every 4096th byte written (80 ops)"),
    ("bigbuf", "c", "1 thread; 20 buffers of 5-25 MiB; each op frees a random one and allocates "
     "a new one, zeroed with memset and written (new char[n]() in C++) (400 ops)"),
    ("midbuf", "c", "1 thread; 32 buffers of 64 KiB-1 MiB; each op frees a random one and "
     "allocates a new one, written a byte per 4 KiB (100k ops)"),
    ("prodcons", "c", "2 producer/consumer pairs; 24-1024 B blocks passed in batches of 256 "
     "through a mutex-protected queue, freed by the consumer (3M blocks per pair)"),
    ("larson", "c", "{threads} threads swap 24-1024 B blocks into random slots of a shared "
     "table and free what they take out (4M ops per thread)"),
    ("mtloop", "c", "{threads} threads, each replacing random blocks of its own working set of "
     "1024 blocks of 2 B-32 KiB (mostly small), glibc's bench-malloc-thread shape "
     "(40M steps per thread)"),
    ("simple", "c", "1 thread; batches of 100 blocks of one size (16 B-4 KiB, six sizes) "
     "allocated then freed in order, glibc's bench-malloc-simple shape (12M blocks)"),
    ("threads", "c", "2000 short-lived threads in waves of 2-4; each allocates 400 blocks of "
     "16 B-2 KiB and frees them in random order, 4 times"),
    ("phase", "c", "1 thread; builds 100k blocks of 16 B-4 KiB and 16 buffers of 64 KiB-4 MiB "
     "(about 150 MiB), frees them all, works small (1000 slots of 8-512 B) for 3 s, sleeps 1 s; "
     "its time is the build and the free"),
    ("calloc_align", "c", "1 thread; 1000 live slots; calloc of 16 B-16 KiB and posix_memalign "
     "with alignment 16-4096 and 8 B-64 KiB (2M ops)"),
    ("sort", "real", "`LC_ALL=C sort` of a generated file of {sort_lines} lines ({sort_mib} MiB)"),
    ("python", "real", "`PYTHONMALLOC=malloc python3 bench/pywork.py`: dicts, lists, strings, "
     "sorting"),
    ("gcc", "real", "`gcc -O2 -c` of a generated, self-contained C file of {gcc_funcs} "
     "functions"),
]
WORKLOAD_NAMES = [w[0] for w in WORKLOADS]
C_WORKLOADS = [w[0] for w in WORKLOADS if w[1] == "c"]
THREADED = ("larson", "mtloop")  # their first argument: --threads

SORT_LINES = 1200000
GCC_FUNCS = 60

REPORT_RE = re.compile(r"seconds=([0-9.]+) ops=(\d+) ops_per_s=\S+ checksum=([0-9a-f]+)")
AFTER_RE = re.compile(r"\b(rss_work|rss_idle)_kib=(\d+)")
AFTER_KEYS = ("rss_work", "rss_idle")

# ld.so's warning when it cannot load a library named in LD_PRELOAD (missing
# file, wrong architecture, not a shared object...): it prints this on the
# program's stderr and runs the program without the library.
PRELOAD_FAILED = "from LD_PRELOAD cannot be preloaded"

# memalloc's exit summary, printed by every process it served when
# MEMALLOC_STATS=1 (at exit(), to a copy of the stderr the process started
# with). The counters run whatever the option says; the option only adds a
# dup() at start-up and this line at exit, after a C workload has stopped its
# clock.
MEMALLOC_PROOF_ENV = {"MEMALLOC_STATS": "1"}
SUMMARY_RE = re.compile(r"^memalloc: allocs=(\d+) ", re.M)

# Failures of a peer that are the peer's own known bugs: allocator, a piece of
# the failure message, the explanation printed in the notes.
KNOWN_ISSUES = [
    ("mimalloc", "posix_memalign(",
     "mimalloc 2.0.9 (Debian 12's libmimalloc2.0) returns misaligned blocks for some aligned "
     "requests whose size is a multiple of an alignment of 256-1024 bytes, e.g. "
     "`posix_memalign(&p, 256, 512)`: microsoft/mimalloc#700, fixed after 2.0.9. The workload "
     "checks every alignment, so these runs stop with exit status 2."),
]

COLORS = {"jemalloc": "#4e79a7", "tcmalloc": "#59a14f", "mimalloc": "#f28e2b",
          "memalloc": "#e15759", "glibc": "#999999"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rel(path):
    """path relative to the repository when inside it, for display."""
    path = Path(os.path.abspath(path))
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def sh(argv):
    """Output of a command, stripped; '' when it cannot run."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- allocators

def find_library(soname):
    dirs = []
    multiarch = sh(["gcc", "-print-multiarch"])
    if multiarch:
        dirs.append("/usr/lib/" + multiarch)
    dirs += ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
             "/usr/local/lib"]
    for d in dirs:
        p = Path(d) / soname
        if p.exists():
            return p
    return None


def allocators(memalloc):
    """[(name, preload path or None)], and notes on peers that were skipped."""
    found, notes = [("glibc", None)], []
    for name, soname, package in PEERS:
        path = find_library(soname)
        if path:
            found.append((name, path))
        else:
            notes.append(f"{name} skipped: {soname} not found (Debian package `{package}`).")
    found.append(("memalloc", memalloc))
    return found, notes


def proof_env(alloc):
    """What a run of alloc adds to its environment so that it can prove which
    allocator served it (only memalloc can)."""
    return dict(MEMALLOC_PROOF_ENV) if alloc == "memalloc" else {}


def preload_error(alloc, stderr):
    """Why a run cannot count as alloc's, or None. Any run whose stderr has
    ld.so's warning ran without its preload. A memalloc run must also carry
    positive proof: memalloc's summary line from each process that printed
    one, at least one, each with allocs > 0 (a process memalloc was loaded
    into but whose malloc calls went elsewhere would count none). The launcher
    runs without the preload (bench/launch.c sets LD_PRELOAD in its child
    only), so every summary line is the program's or its children's."""
    for line in stderr.splitlines():
        if PRELOAD_FAILED in line:
            return f"not preloaded, ran on glibc: {line.strip()[:200]}"
    if alloc != "memalloc":
        return None
    counts = [int(n) for n in SUMMARY_RE.findall(stderr)]
    if not counts:
        return ("no proof that memalloc served the run: no `memalloc: allocs=` summary line "
                "on stderr (run with MEMALLOC_STATS=1)")
    if min(counts) == 0:
        return ("no proof that memalloc served the run: a summary line says allocs=0 "
                f"(allocs={','.join(map(str, counts))})")
    return None


def run_env(preload, extra=None):
    """The environment of a run: the caller's, without anything that tunes an
    allocator, with LC_ALL=C and the preload."""
    env = {k: v for k, v in os.environ.items()
           if not (k == "LD_PRELOAD" or k == "GLIBC_TUNABLES" or k == "MALLOC_CONF"
                   or k == "PYTHONMALLOC"
                   or k.startswith(("MALLOC_", "MEMALLOC_", "MIMALLOC_", "TCMALLOC_", "JE_")))}
    env["LC_ALL"] = "C"
    if preload:
        env["LD_PRELOAD"] = str(preload)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- running

def spawn(launcher, argv, preload, env, files, timeout):
    """Run argv through bench/launch.c, which forks it (with LD_PRELOAD=preload
    when given) and waits for it; stdout and stderr go to files["stdout"] and
    files["stderr"]. Returns (wait status of the program, or None if it timed
    out or could not be run; wall seconds; ru_maxrss of the program in KiB;
    its minor page faults, ru_minflt)."""
    result = files["result"]
    if result.exists():
        result.unlink()
    cmd = [str(launcher), str(result)] + (["-p", str(preload)] if preload else []) + argv
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(files["stdout"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
         0o644),
        (os.POSIX_SPAWN_OPEN, 2, str(files["stderr"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
         0o644),
    ]
    timed_out = threading.Event()
    t0 = time.perf_counter()
    pid = os.posix_spawn(cmd[0], cmd, env, file_actions=actions, setpgroup=0)

    def kill():  # the launcher and the program share a new process group
        timed_out.set()
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(timeout, kill)
    timer.start()
    _, status, _ = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    timer.cancel()
    if timed_out.is_set() or status != 0 or not result.exists():
        return None, wall, 0, 0
    m = re.match(r"status=(-?\d+) maxrss_kib=(\d+) seconds=([0-9.]+) minflt=(\d+)",
                 result.read_text())
    if not m:
        return None, wall, 0, 0
    return int(m.group(1)), float(m.group(3)), int(m.group(2)), int(m.group(4))


def describe_status(status, timeout, wall):
    if status is None:
        return (f"timed out after {timeout:g} s" if wall >= timeout
                else "could not be run (see bench/launch.c)")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"killed by {name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def read_text(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def last_line(text):
    """The last line of a run's stderr that is not memalloc's summary: the
    program's own last word, for the reason of a failure."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not SUMMARY_RE.match(ln)]
    return lines[-1][:200] if lines else ""


def file_digest(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Suite:
    """The inputs and binaries of the workloads, and how to run each."""

    def __init__(self, bindir, tmp, threads, timeout):
        self.bindir, self.tmp, self.threads, self.timeout = bindir, tmp, threads, timeout
        self.python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) \
            else sys.executable
        self.sort_input = tmp / "lines.txt"
        self.gcc_input = tmp / "gen.c"

    def prepare(self, names):
        if "sort" in names:
            log(f"generating {SORT_LINES} lines for sort")
            write_sort_input(self.sort_input, SORT_LINES)
        if "gcc" in names:
            self.gcc_input.write_text(gen_c_source(GCC_FUNCS))

    def run(self, name, alloc, preload):
        """One run of workload name on allocator alloc: dict(ok, seconds,
        rss_kib, check, error). ok only with the proof of preload_error."""
        out, err = self.tmp / "stdout", self.tmp / "stderr"
        extra, product = {}, None
        if name in C_WORKLOADS:
            argv = [str(self.bindir / name)]
            if name in THREADED:
                argv.append(str(self.threads))
        elif name == "sort":
            product = self.tmp / "sorted.txt"
            argv = ["sort", "-o", str(product), str(self.sort_input)]
        elif name == "python":
            argv = [self.python, str(BENCH / "pywork.py")]
            extra = {"PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0",
                     "PYTHONDONTWRITEBYTECODE": "1"}
        elif name == "gcc":
            product = self.tmp / "gen.o"
            argv = ["gcc", "-O2", "-c", str(self.gcc_input), "-o", str(product)]
        else:
            raise ValueError(name)
        if product and product.exists():
            product.unlink()

        files = {"stdout": out, "stderr": err, "result": self.tmp / "result"}
        extra.update(proof_env(alloc))
        status, wall, rss, minflt = spawn(self.bindir / "launch", argv, preload,
                                          run_env(None, extra), files, self.timeout)
        res = {"ok": False, "seconds": wall, "rss_kib": rss, "minflt": minflt, "check": None,
               "error": None}
        stderr = read_text(err)
        if status != 0 and PRELOAD_FAILED not in stderr:  # else the cause is the preload
            why = last_line(stderr)
            res["error"] = describe_status(status, self.timeout, wall) + (f": {why}" if why else "")
            return res
        res["error"] = preload_error(alloc, stderr)
        if res["error"]:
            return res
        text = out.read_text(errors="replace")
        if name in C_WORKLOADS:
            m = REPORT_RE.search(text)
            if not m:
                res["error"] = "no report line on stdout"
                return res
            res["seconds"] = float(m.group(1))
            res["check"] = m.group(3)
            for key, kib in AFTER_RE.findall(text):  # phase: its resident set afterwards
                res[key] = int(kib)
        elif product:
            if not product.exists():
                res["error"] = f"no output file {product.name}"
                return res
            res["check"] = file_digest(product)
        else:
            res["check"] = hashlib.sha1(text.encode()).hexdigest()
        res["ok"] = True
        return res


def write_sort_input(path, lines):
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(5000)]
    with open(path, "w") as f:
        for _ in range(lines):
            f.write("%s %08x %s %d\n" % (words[rng.randrange(5000)], rng.getrandbits(32),
                                         words[rng.randrange(5000)], rng.randrange(100000)))


def gen_c_source(nfuncs, seed=11):
    """A self-contained C file: nfuncs functions with loops, switches and
    structs, and one exported function that calls them all."""
    rng = random.Random(seed)
    out = ["/* generated by bench/run.py for the gcc workload */", "typedef unsigned long u64;",
           ""]
    for i in range(nfuncs):
        nf = rng.randint(2, 6)
        out.append("struct s%d { %s };" % (i, " ".join("long f%d;" % k for k in range(nf))))
        out.append("static const char *names%d[] = { %s };" % (
            i, ", ".join('"n%d_%d"' % (i, k) for k in range(rng.randint(2, 6)))))
        out.append("__attribute__((noinline)) static u64 fn%d(struct s%d *s, const int *v, int n) {"
                   % (i, i))
        out.append("    u64 acc = %du;" % rng.randint(1, 1 << 30))
        out.append("    for (int i = 0; i < n; i++) {")
        out.append("        switch ((v[i] + (int)acc) & 7) {")
        for c in range(8):
            k = rng.randrange(nf)
            op = rng.choice(["acc += (u64)v[i] * %du;" % rng.randint(1, 1000),
                             "acc ^= acc << %d;" % rng.randint(1, 31),
                             "acc = acc * 31 + s->f%d;" % k,
                             "s->f%d += v[i] %% %d + 1;" % (k, rng.randint(2, 50))])
            out.append("        case %d: %s break;" % (c, op))
        out.append("        }")
        out.append("        if (acc > %du) acc = (acc >> 3) + names%d[i %% 2][0];"
                   % (rng.randint(1, 1 << 31), i))
        out.append("    }")
        for k in range(nf):
            out.append("    acc += (u64)s->f%d * %du;" % (k, rng.randint(1, 1000)))
        out.append("    return acc + (u64)n;")
        out.append("}")
        out.append("")
    out.append("u64 run_all(const int *v, int n) {")
    out.append("    u64 acc = 0;")
    for i in range(nfuncs):
        out.append("    { struct s%d s = {0}; acc += fn%d(&s, v, n); }" % (i, i))
    out.append("    return acc;")
    out.append("}")
    return "\n".join(out) + "\n"


def build_workloads(bindir):
    bindir.mkdir(parents=True, exist_ok=True)
    for src in sorted(BENCH.glob("*.c")):
        exe = bindir / src.stem
        cmd = ["gcc", *CFLAGS, "-o", str(exe), str(src)]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            sys.exit(f"run.py: cannot build {rel(src)}:\n{r.stderr}")
        if r.stderr.strip():
            log(r.stderr.strip())


# ---------------------------------------------------------------- callgrind

def callgrind_ir(exe, variant, n, preload, tmp, name):
    """(instructions executed by `fastpath variant n`, None) or (None, error).
    The same proof of preload as a timed run (preload_error); the summary
    memalloc prints at exit costs the same in both counts, so it cancels."""
    outfile = tmp / f"callgrind.{name}.{variant}.{n}"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}", str(exe), variant,
            str(n)]
    r = subprocess.run(argv, env=run_env(preload, proof_env(name)), capture_output=True, text=True,
                       check=False)
    try:
        if r.returncode != 0 and PRELOAD_FAILED not in r.stderr:
            return None, f"exit status {r.returncode}: {last_line(r.stderr)}"
        why = preload_error(name, r.stderr)
        if why:
            return None, why
        m = re.search(r"^(?:summary|totals):\s*(\d+)", outfile.read_text(), re.M)
        return (int(m.group(1)), None) if m else (None, "no totals in callgrind output")
    finally:
        if outfile.exists():
            outfile.unlink()


def fastpath_counts(allocs, bindir, tmp, n):
    """{alloc: {variant: instructions per pair or error string}}."""
    exe = bindir / "fastpath"
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for name, preload in allocs:
            for variant in ("pair", "mixed"):
                for k in (1, 2):
                    jobs[(name, variant, k)] = pool.submit(callgrind_ir, exe, variant, k * n,
                                                           preload, tmp, name)
    result = {}
    for name, _ in allocs:
        result[name] = {}
        for variant in ("pair", "mixed"):
            (ir1, e1), (ir2, e2) = jobs[(name, variant, 1)].result(), jobs[(name, variant, 2)].result()
            result[name][variant] = (ir2 - ir1) / n if e1 is None and e2 is None else (e1 or e2)
    return result


# ---------------------------------------------------------------- statistics

# A ratio below is a float, or, where there is none, the reason as a str
# ("memalloc FAILED", "glibc FAILED", ...): no workload leaves a table or a
# mean without its reason being printed.

def geomean(xs):
    """Geometric mean of positive numbers; None for none."""
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def mean_of(values):
    """{workload: ratio or reason} -> (geometric mean of the ratios, [(workload,
    reason)] of those it leaves out)."""
    xs = [v for v in values.values() if isinstance(v, float) and v > 0]
    out = [(wl, v if isinstance(v, str) else f"ratio {v}") for wl, v in values.items()
           if not (isinstance(v, float) and v > 0)]
    return geomean(xs), out


def divide(x, y):
    return x / y if y > 0 else f"glibc's figure is {y}"


def summarise(runs):
    """Per allocator: dict(ok, time, rss, faults, error) from its runs."""
    failed = [r for r in runs if not r["ok"]]
    if failed:
        errors = list(dict.fromkeys(r["error"] for r in failed))  # each distinct reason once
        why = errors[0] + (f" (and {plural(len(errors) - 1, 'other message')})"
                           if len(errors) > 1 else "")
        return {"ok": False, "error": f"{len(failed)}/{len(runs)} runs failed: {why}"}
    s = {"ok": True, "time": statistics.median(r["seconds"] for r in runs),
         "rss": statistics.median(r["rss_kib"] for r in runs) / 1024.0,
         "faults": statistics.median(r["minflt"] for r in runs),
         "tmin": min(r["seconds"] for r in runs), "tmax": max(r["seconds"] for r in runs)}
    for key in AFTER_KEYS:
        if all(key in r for r in runs):
            s[key] = statistics.median(r[key] for r in runs) / 1024.0
    return s


def mark_mismatches(runs_by_alloc):
    """Fail the runs whose checksum or output differs from glibc's (or, if
    glibc failed, from the first successful run's)."""
    ref = None
    for name in ["glibc"] + [a for a in runs_by_alloc if a != "glibc"]:
        for r in runs_by_alloc.get(name, []):
            if r["ok"]:
                ref, ref_name = r["check"], name
                break
        if ref:
            break
    for runs in runs_by_alloc.values():
        for r in runs:
            if r["ok"] and r["check"] != ref:
                r["ok"] = False
                r["error"] = f"output differs from {ref_name}'s ({r['check'][:12]} vs {ref[:12]})"


def no_peer(installed):
    return "every peer FAILED" if installed else "no peer installed"


def ratios(stats, names, key):
    """{workload: {alloc: value / glibc's}} and {workload: (memalloc / best
    peer, best peer name)}; a reason instead of a ratio where an allocator
    failed. A peer that failed on a workload is no candidate for its best."""
    vs_glibc, vs_peer = {}, {}
    installed = [p for p in PEER_NAMES if p in names]
    for wl, per in stats.items():
        base = per["glibc"]
        vs_glibc[wl] = {a: (f"{a} FAILED" if not per[a]["ok"] else "glibc FAILED"
                            if not base["ok"] else divide(per[a][key], base[key])) for a in names}
        peers = [(per[p][key], p) for p in installed if per[p]["ok"] and per[p][key] > 0]
        if not per["memalloc"]["ok"]:
            vs_peer[wl] = ("memalloc FAILED", None)
        elif not peers:
            vs_peer[wl] = (no_peer(installed), None)
        else:
            vs_peer[wl] = (per["memalloc"][key] / min(peers)[0], min(peers)[1])
    return vs_glibc, vs_peer


def paired(runs, names, key):
    """Like ratios(), but round by round: {workload: {alloc: median over the
    rounds of its value / glibc's in the same round}} and {workload:
    (median over the rounds of memalloc's / the best peer's in that round,
    the peer best in most rounds)}. The runs of one round are adjacent in
    time, so a slow or fast phase of the machine moves them together. Every
    round must count: an allocator that failed in any round has its reason
    instead of a ratio, as in ratios(), and so has the best-peer ratio when
    memalloc failed in any round or no peer succeeded in one."""
    vs_glibc, vs_peer = {}, {}
    installed = [p for p in PEER_NAMES if p in names]
    for wl, per in runs.items():
        base = per["glibc"]
        vs_glibc[wl] = {}
        for a in names:
            if not all(r["ok"] for r in per[a]):
                vs_glibc[wl][a] = f"{a} FAILED"
            elif not all(b["ok"] and b[key] > 0 for b in base):
                vs_glibc[wl][a] = "glibc FAILED"
            else:
                vs_glibc[wl][a] = statistics.median(r[key] / b[key] for r, b in zip(per[a], base))
        xs, best = [], collections.Counter()
        for i, m in enumerate(per["memalloc"]):
            peers = [(per[p][i][key], p) for p in installed
                     if per[p][i]["ok"] and per[p][i][key] > 0]
            if m["ok"] and peers:
                xs.append(m[key] / min(peers)[0])
                best[min(peers)[1]] += 1
        if not all(m["ok"] for m in per["memalloc"]):
            vs_peer[wl] = ("memalloc FAILED", None)
        elif len(xs) < len(per["memalloc"]):
            vs_peer[wl] = (no_peer(installed) + (" in a round" if installed else ""), None)
        else:
            vs_peer[wl] = (statistics.median(xs), best.most_common(1)[0][0])
    return vs_glibc, vs_peer


def paired_table(names, vs_glibc, vs_peer):
    shown = [a for a in names if a != "glibc"]
    lines = ["| workload | " + " | ".join(shown) + " | memalloc ÷ best peer |",
             "|" + "---|" * (len(shown) + 2)]
    for wl in vs_glibc:
        lines.append(f"| {wl} | " + " | ".join(fmt_cell(vs_glibc[wl][a], a) for a in shown)
                     + f" | {fmt_peer_cell(*vs_peer[wl])} |")
    gm = [fmt_geomean({wl: vs_glibc[wl][a] for wl in vs_glibc}) for a in shown]
    gm.append(fmt_geomean({wl: vs_peer[wl][0] for wl in vs_peer}))
    lines.append("| **geometric mean** | " + " | ".join(gm) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- report

def plural(n, word):
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_time(s):
    return f"{s:.3f}" if s < 10 else f"{s:.2f}"


def fmt_mib(m):
    return f"{m:.2f}" if m < 10 else f"{m:.1f}" if m < 100 else f"{m:.0f}"


def fmt_kfaults(n):
    return f"{n / 1000:.1f}" if n < 100000 else f"{n / 1000:.0f}"


def fmt_mean(g):
    """A geometric mean of ratios: three decimals, since the targets compare it with 1."""
    return f"{g:.3f}×" if g else fmt_ratio(g)


def fmt_ratio(r):
    return "–" if r is None else (f"{r:.2f}×" if r < 10 else f"{r:.1f}×")


def fmt_cell(r, alloc):
    """A ratio in alloc's column, or why there is none: **FAILED** when alloc
    itself failed, else the reason."""
    if isinstance(r, str):
        return "**FAILED**" if r == f"{alloc} FAILED" else r
    return fmt_ratio(r)


def fmt_peer_cell(r, who):
    return fmt_cell(r, "memalloc") + (f" ({who})" if who and not isinstance(r, str) else "")


def fmt_geomean(values):
    """A table's geometric-mean cell: the mean in bold, and next to it the
    workloads it leaves out and why."""
    g, out = mean_of(values)
    text = f"**{fmt_mean(g)}**"
    if out:
        text += " leaves out " + ", ".join(f"{wl} ({why})" for wl, why in out)
    return text


def table(stats, names, key, fmt, vs_glibc, vs_peer):
    head = "| workload | " + " | ".join(names) + " | memalloc ÷ best peer |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    for wl in stats:
        cells = []
        for a in names:
            s = stats[wl][a]
            if not s["ok"]:
                cells.append("**FAILED**")
            elif a == "glibc":
                cells.append(fmt(s[key]))
            else:
                cells.append(f"{fmt(s[key])} ({fmt_cell(vs_glibc[wl][a], a)})")
        cells.append(fmt_peer_cell(*vs_peer[wl]))
        lines.append(f"| {wl} | " + " | ".join(cells) + " |")
    gm = [fmt_geomean({wl: vs_glibc[wl][a] for wl in stats}) for a in names]
    gm.append(fmt_geomean({wl: vs_peer[wl][0] for wl in stats}))
    lines.append("| **geometric mean, ratio to glibc** | " + " | ".join(gm) + " |")
    return "\n".join(lines)


def svg_chart(vs_glibc, names, rounds):
    """Grouped horizontal bars: time ratio to glibc per workload and
    allocator, on a log2 axis with a line at 1. A missing ratio is its reason
    in words; a geomean bar names the workloads it leaves out."""
    shown = [a for a in names if a != "glibc"]
    rows = list(vs_glibc) + ["geomean"]
    data = {wl: vs_glibc[wl] for wl in vs_glibc}
    means = {a: mean_of({wl: vs_glibc[wl][a] for wl in vs_glibc}) for a in shown}
    data["geomean"] = {a: means[a][0] for a in shown}
    values = [v for wl in rows for a in shown for v in [data[wl].get(a)] if isinstance(v, float)]
    lo = max(-6, math.floor(math.log2(min(values + [0.5]))))
    hi = min(8, math.ceil(math.log2(max(values + [2.0]))))
    bar, gap, group_gap = 9, 1, 12
    group = len(shown) * (bar + gap) - gap + group_gap
    width, left, right, top = 900, 110, 70, 70
    plot_w = width - left - right
    height = top + len(rows) * group + 30

    def x(r):
        r = min(max(r, 2.0 ** lo), 2.0 ** hi)
        return left + (math.log2(r) - lo) / (hi - lo) * plot_w

    def esc(s):
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">Time relative to glibc '
           f'(median of {plural(rounds, "round")}; log scale; left of 1× is faster)</text>']
    lx = left
    for a in shown:
        out.append(f'<rect x="{lx}" y="30" width="12" height="12" fill="{COLORS.get(a, "#777")}"/>')
        out.append(f'<text x="{lx + 16}" y="40">{esc(a)}</text>')
        lx += 24 + 7 * len(a) + 20
    axis_y = top - 8
    for e in range(lo, hi + 1):
        gx = x(2.0 ** e)
        label = f"{2.0 ** e:g}×"
        out.append(f'<line x1="{gx:.1f}" y1="{axis_y}" x2="{gx:.1f}" y2="{height - 24}" '
                   f'stroke="{"#333" if e == 0 else "#ddd"}" stroke-width="{1.5 if e == 0 else 1}"/>')
        out.append(f'<text x="{gx:.1f}" y="{axis_y - 4}" text-anchor="middle" fill="#555">'
                   f'{label}</text>')
    out.append(f'<text x="{x(1.0):.1f}" y="{height - 10}" text-anchor="middle" fill="#333">'
               f'glibc = 1×</text>')
    for i, wl in enumerate(rows):
        gy = top + i * group
        mid = gy + (group - group_gap) / 2
        weight = ' font-weight="bold"' if wl == "geomean" else ""
        if wl == "geomean":
            out.append(f'<line x1="10" y1="{gy - group_gap / 2:.1f}" x2="{width - 10}" '
                       f'y2="{gy - group_gap / 2:.1f}" stroke="#999" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{left - 8}" y="{mid + 4:.1f}" text-anchor="end"{weight}>'
                   f'{esc(wl)}</text>')
        for j, a in enumerate(shown):
            y = gy + j * (bar + gap)
            r = data[wl].get(a)
            without = ""
            if wl == "geomean" and means[a][1]:
                without = " without " + ", ".join(w for w, _ in means[a][1])
            if not isinstance(r, float):
                why = (r if r == f"{a} FAILED" else f"{a}: {r}") if isinstance(r, str) \
                    else f"{a}: no mean,{without}"
                out.append(f'<text x="{x(1.0) + 4:.1f}" y="{y + bar - 1}" font-size="9" '
                           f'fill="{COLORS.get(a, "#777")}">{esc(why)}</text>')
                continue
            x0, x1 = sorted((x(1.0), x(r)))
            out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar}" '
                       f'fill="{COLORS.get(a, "#777")}"><title>{esc(wl)}, {esc(a)}: '
                       f'{fmt_ratio(r)}</title></rect>')
            tx, anchor = (x1 + 3, "start") if r >= 1 else (x0 - 3, "end")
            out.append(f'<text x="{tx:.1f}" y="{y + bar - 1}" font-size="9" text-anchor="{anchor}"'
                       f' fill="#333">{fmt_ratio(r)}</text>')
            if without:  # right of the bar and its figure, or of the line at 1
                wx = x1 + 40 if r >= 1 else x(1.0) + 4
                out.append(f'<text x="{wx:.1f}" y="{y + bar - 1}" font-size="9" fill="#c00">'
                           f'{esc(without.strip())}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def engine_state():
    """memalloc's commit, and whether the engine differs from it, read when the
    run starts (the library was built just before)."""
    commit = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]) or "unknown"
    dirty = sh(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "preload",
                "include", "CMakeLists.txt"])
    return commit + (" with uncommitted changes to the engine" if dirty else "")


def machine_rows(allocs, memalloc, suite, engine):
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kib = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    libc = os.confstr("CS_GNU_LIBC_VERSION") if "CS_GNU_LIBC_VERSION" in os.confstr_names \
        else "unknown"
    libc_pkg = sh(["dpkg-query", "-W", "-f", "${Version}", "libc6"])
    thp = []
    for knob in ("enabled", "defrag"):
        try:
            text = Path(f"/sys/kernel/mm/transparent_hugepage/{knob}").read_text()
            m = re.search(r"\[(\w[\w+]*)\]", text)
            thp.append(f"{knob} `{m.group(1) if m else text.strip()}`")
        except OSError:
            pass
    rows = [("CPU", f"{model}, {os.cpu_count()} CPUs online (nproc)"),
            ("Memory", mem),
            ("Kernel", os.uname().release),
            ("Transparent huge pages", ", ".join(thp) if thp else "not available"),
            ("C library", f"{libc} (libc6 {libc_pkg})" if libc_pkg else libc)]
    paths = dict(allocs)
    for name, soname, package in PEERS:
        if paths.get(name):
            ver = sh(["dpkg-query", "-W", "-f", "${Version}", package]) or "version unknown"
            rows.append((name, f"{package} {ver} (`{paths[name]}`)"))
        else:
            rows.append((name, f"not installed ({package}): skipped"))
    build_type = "unknown"
    cache = Path(memalloc).parent / "CMakeCache.txt"
    if cache.exists():
        m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache.read_text(), re.M)
        build_type = m.group(1) if m and m.group(1) else "none"
    rows.append(("memalloc", f"`{rel(memalloc)}`, CMAKE_BUILD_TYPE={build_type}, commit {engine}"))
    gcc = sh(["gcc", "--version"]).splitlines()
    rows.append(("Workloads built with", f"`gcc {' '.join(CFLAGS)}` ({gcc[0] if gcc else '?'})"))
    sort_v = sh(["sort", "--version"]).splitlines()
    py_v = sh([suite.python, "--version"])
    rows.append(("Real programs", f"{sort_v[0] if sort_v else 'sort'}; {py_v} (`{suite.python}`); "
                 f"{gcc[0] if gcc else 'gcc'}"))
    vg = sh(["valgrind", "--version"])
    rows.append(("valgrind", vg or "not installed"))
    return rows


def memalloc_failures(stats, fastpath):
    """What memalloc failed: the workloads, and the fast-path count (a str
    there is its reason; the whole count not being run is no failure). The
    report's warning and the exit status both come from this."""
    failed = [wl for wl in stats if not stats[wl]["memalloc"]["ok"]]
    if isinstance(fastpath, dict) and any(
            not isinstance(v, float) for v in fastpath.get("memalloc", {}).values()):
        failed.append("the fast-path count")
    return failed


def failure_notes(stats, names):
    """A note per allocator and workload that failed, with the known issue
    that explains it, if any, and what its failure leaves out."""
    notes = []
    for wl in stats:
        for a in names:
            s = stats[wl][a]
            if s["ok"]:
                continue
            if a == "memalloc":
                left = ("shown FAILED in every table, and named next to every geometric mean "
                        "that leaves it out")
            elif a == "glibc":
                left = "no ratio to glibc on it: every geometric mean names it as left out"
            else:
                left = (f"left out of {a}'s figures, where its geometric means name it, and no "
                        f"candidate for best peer on {wl}")
            notes.append(f"**{a} FAILED on {wl}** ({left}): {s['error']}")
            for who, needle, why in KNOWN_ISSUES:
                if who == a and needle in s["error"]:
                    notes.append(f"  - {why}")
    return notes


def write_report(path, ctx):
    stats, names, rounds = ctx["stats"], ctx["names"], ctx["rounds"]
    tg, tp = ratios(stats, names, "time")
    rg, rp = ratios(stats, names, "rss")
    fg, fpr = ratios(stats, names, "faults")
    svg_path = path.with_suffix(".svg")
    svg_path.write_text(svg_chart(tg, names, rounds))
    L = []
    L.append("# memalloc benchmarks\n")
    L.append(f"Generated by `bench/run.py` on {ctx['date']}; rerun it rather than editing this "
             f"file. memalloc against glibc's malloc and the peer allocators, each preloaded "
             f"(`LD_PRELOAD`) into the same binaries; glibc runs without a preload. Every workload "
             f"ran {plural(rounds, 'round')}, each round running every allocator once in an order "
             f"rotated from round to round; the figures are medians of the {plural(rounds, 'run')}."
             f" The whole run took {ctx['elapsed']}; the load average was {ctx['load']} at the "
             f"start and {os.getloadavg()[0]:.2f} at the end (other work on the machine makes the "
             f"figures noisier).\n")
    failed = memalloc_failures(stats, ctx["fastpath"])
    if failed:
        L.append(f"**memalloc FAILED on {', '.join(failed)}** (reasons under Notes): no figure "
                 f"below stands for memalloc there, and the runner exited with status 1.\n")
    L.append("## Machine\n")
    L.append("| | |\n|---|---|")
    L += [f"| {k} | {v} |" for k, v in ctx["machine"]]
    L.append("")
    L.append("## Reproduce\n")
    L.append("```sh\n./scripts/bench.sh      # apt-get installs the peers and tools, builds memalloc "
             "(Release) in build-release/, runs bench/run.py\n```\n")
    L.append("This report came from:\n")
    L.append(f"```sh\n{ctx['command']}\n```\n")
    L.append("`--rounds N`, `--only churn,sort`, `--memalloc PATH`, `--out FILE`, `--threads N` "
             "(larson, mtloop), `--callgrind`/`--no-callgrind`; `python3 bench/run.py --help` lists them "
             "all.\n")
    L.append("## Workloads\n")
    L.append("| workload | what it does |\n|---|---|")
    for wl in stats:
        L.append(f"| {wl} | {ctx['about'][wl]} |")
    L.append("")
    L.append("The C workloads (`bench/*.c`) call only malloc, free, calloc, realloc and "
             "posix_memalign, use a fixed-seed xorshift generator, write into every block they "
             "get, check it before freeing it, and print their own elapsed time "
             "(`CLOCK_MONOTONIC`) and a checksum; the runner fails a run whose checksum, or whose "
             "output for a real program, differs from glibc's. For the real programs the time is "
             "the wall time of the process. Peak RSS is `ru_maxrss` of the program from `wait4()`, "
             "taken by `bench/launch.c`, a small process that forks the program, so that the "
             "figure is the program's own and not the runner's (for gcc, the largest of the "
             "driver, cc1 and as).\n")
    L.append("A run counts for an allocator only if the preload took effect. ld.so, when it "
             "cannot preload a library, warns (`... from LD_PRELOAD cannot be preloaded ... "
             "ignored`) and runs the program on glibc: any run with that warning on its stderr is "
             "FAILED. Every memalloc run also runs with `MEMALLOC_STATS=1` and counts only with "
             "positive proof: memalloc's exit summary `memalloc: allocs=N ...` on its stderr, with "
             "N > 0 in every process that printed one. The option adds only a `dup()` at start-up "
             "and that line at exit, after a C workload has stopped its clock.\n")
    L.append("A FAILED run is never timed. A workload where an allocator failed in any round "
             "shows **FAILED** for it; a ratio that cannot be computed says why; a geometric mean "
             "that leaves workloads out names them next to the number.\n")
    L.append("## Time\n")
    L.append(f"![time relative to glibc]({svg_path.name})\n")
    L.append("Median seconds; in parentheses the ratio to glibc (below 1 is faster than glibc). "
             "The last column divides memalloc's time by the best of jemalloc, tcmalloc and "
             "mimalloc on that workload (named). The last row is the geometric mean of the ratios "
             "over the workloads, to three decimals (the targets compare it with 1 and with the "
             "peers').\n")
    L.append(table(stats, names, "time", fmt_time, tg, tp))
    L.append("")
    L.append("### Time, round by round\n")
    L.append("The same runs, paired: for each workload, the median over the rounds of an "
             "allocator's time divided by glibc's time in the same round (and of memalloc's "
             "divided by the fastest peer's in that round; named, the peer fastest in most "
             "rounds). The runs of a round follow one another, so when the machine has a slow "
             "or fast phase lasting several rounds (the real programs show them: every "
             "allocator's gcc runs fall into a fast and a slow group), it moves all of a "
             "round's runs together, where the ratio of two medians can take one from each "
             "group. A workload where the two tables disagree is within the machine's noise.\n")
    L.append(paired_table(names, *paired(ctx["runs"], names, "seconds")))
    L.append("")
    L.append("## Peak RSS\n")
    L.append("Median peak resident set in MiB; in parentheses the ratio to glibc. The last column "
             "divides memalloc's peak by the smallest peer peak.\n")
    L.append(table(stats, names, "rss", fmt_mib, rg, rp))
    L.append("")
    after = {wl: per for wl, per in stats.items()
             if all(not s["ok"] or all(k in s for k in AFTER_KEYS) for s in per.values())
             and any(s["ok"] and AFTER_KEYS[0] in s for s in per.values())}
    if after:
        L.append("## Resident set after the phase\n")
        L.append("For the workloads that report it (`phase`): the program's resident set "
                 "(`/proc/self/statm`, median, MiB) once its big phase has ended, at the end of "
                 "its small work and again after it slept. Memory the program no longer needs "
                 "shows here; in parentheses the ratio to glibc.\n")
        for key, what in zip(AFTER_KEYS, ("At the end of the small work", "After the sleep")):
            L.append(f"{what}:\n")
            L.append(table(after, names, key, fmt_mib, *ratios(after, names, key)))
            L.append("")
    L.append("## Minor page faults\n")
    L.append("Median minor page faults of the program (`ru_minflt` from `wait4()`), in thousands; "
             "in parentheses the ratio to glibc. Each is an OS page the kernel mapped in: memory "
             "given back to the OS and touched again shows here. The last column divides "
             "memalloc's by the smallest peer figure.\n")
    L.append(table(stats, names, "faults", fmt_kfaults, fg, fpr))
    L.append("")
    L.append("## Fast path: instructions per malloc+free\n")
    fp = ctx.get("fastpath")
    if isinstance(fp, dict):
        L.append(f"Instructions counted by `valgrind --tool=callgrind` in `bench/fastpath.c`, as "
                 f"(Ir(2N) − Ir(N)) / N with N = {ctx['fastpath_n']:,}, which cancels the start-up "
                 f"cost. `pair`: `p = malloc(32); free(p)` N times. `mixed`: 64 live blocks of "
                 f"16–512 B; each iteration frees one and allocates its replacement of another "
                 f"size. Both include the loop's own few instructions.\n")
        L.append("| allocator | pair: malloc(32) + free | mixed: 64 live blocks |\n|---|---|---|")
        for name in names:
            cells = []
            for variant in ("pair", "mixed"):
                v = fp.get(name, {}).get(variant)
                cells.append(f"{v:.0f}" if isinstance(v, float) else f"FAILED: {v}")
            L.append(f"| {name} | " + " | ".join(cells) + " |")
    else:
        L.append(f"Not measured: {fp}. Run `python3 bench/run.py --callgrind` with valgrind "
                 f"installed.")
    L.append("")
    notes = list(ctx["notes"]) + failure_notes(stats, names)
    if tp:
        slow = [(r, wl) for wl, (r, _) in tp.items() if isinstance(r, float)]
        if slow:
            r, wl = max(slow)
            notes.append(f"memalloc's largest time ratio to the best peer: {fmt_ratio(r)} on {wl}.")
    L.append("## Notes\n")
    L += [("- " + n) if not n.startswith("  - ") else n for n in notes] or ["- none"]
    L.append("")
    L.append("## Every run\n")
    L.append("<details><summary>time in seconds and peak RSS in MiB of each run, in round "
             "order</summary>\n")
    L.append("| workload | allocator | seconds | peak RSS (MiB) |\n|---|---|---|---|")
    for wl in stats:
        for a in names:
            runs = ctx["runs"][wl][a]
            secs = " ".join(fmt_time(r["seconds"]) if r["ok"] else "FAILED" for r in runs)
            rss = " ".join(fmt_mib(r["rss_kib"] / 1024) if r["ok"] else "FAILED" for r in runs)
            L.append(f"| {wl} | {a} | {secs} | {rss} |")
    L.append("\n</details>\n")
    path.write_text("\n".join(L))
    return tp


# ---------------------------------------------------------------- main

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="workloads: " + ", ".join(WORKLOAD_NAMES))
    ap.add_argument("--rounds", type=int, default=5, help="rounds per workload (default 5)")
    ap.add_argument("--only", default="", help="comma-separated workloads to run (default all)")
    ap.add_argument("--memalloc", default=str(ROOT / "build" / "libmemalloc.so"),
                    help="memalloc's shared library (default build/libmemalloc.so)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                    help="report to write; the chart goes next to it as .svg "
                         "(default docs/benchmarks.md)")
    ap.add_argument("--build-dir", default=str(ROOT / "build-bench" / "workloads"),
                    help="where to compile the workloads (default build-bench/workloads)")
    ap.add_argument("--threads", type=int, default=2,
                    help="threads of larson and mtloop (default 2)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds before a run is killed")
    cg = ap.add_mutually_exclusive_group()
    cg.add_argument("--callgrind", action="store_true", default=None,
                    help="count fast-path instructions (default: when valgrind is installed)")
    cg.add_argument("--no-callgrind", dest="callgrind", action="store_false")
    ap.add_argument("--callgrind-n", type=int, default=1000000, help="N of the fast-path count")
    args = ap.parse_args()
    args.only = [w for w in args.only.split(",") if w] or WORKLOAD_NAMES
    unknown = [w for w in args.only if w not in WORKLOAD_NAMES]
    if unknown:
        ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOAD_NAMES)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def command_line(args):
    cmd = ["python3", "bench/run.py", "--rounds", str(args.rounds)]
    if args.only != WORKLOAD_NAMES:
        cmd += ["--only", ",".join(args.only)]
    cmd += ["--memalloc", rel(args.memalloc), "--out", rel(args.out)]
    if args.threads != 2:
        cmd += ["--threads", str(args.threads)]
    if args.callgrind is True:
        cmd.append("--callgrind")
    elif args.callgrind is False:
        cmd.append("--no-callgrind")
    return shlex.join(cmd)


def main():
    args = parse_args()
    started = time.monotonic()
    load = os.getloadavg()[0]
    engine = engine_state()
    if load > 0.5:
        log(f"note: the load average is {load:.2f}; other work on the machine makes the "
            f"figures noisier")
    memalloc = Path(os.path.abspath(args.memalloc))
    if not memalloc.exists():
        sys.exit(f"run.py: {memalloc} not found; build it (cmake -S . -B build-release "
                 f"-DCMAKE_BUILD_TYPE=Release && cmake --build build-release) or pass --memalloc")
    have_valgrind = shutil.which("valgrind") is not None
    if args.callgrind and not have_valgrind:
        sys.exit("run.py: --callgrind needs valgrind (apt-get install valgrind)")
    do_callgrind = have_valgrind if args.callgrind is None else args.callgrind

    allocs, notes = allocators(memalloc)
    for n in notes:
        log(n)
    names = [a for a, _ in allocs]
    bindir = Path(args.build_dir).resolve()
    log(f"building the workloads in {rel(bindir)}")
    build_workloads(bindir)

    about = {}
    for name, _, text in WORKLOADS:
        about[name] = text.format(threads=args.threads, sort_lines=f"{SORT_LINES:,}",
                                  sort_mib="?", gcc_funcs=GCC_FUNCS)
    runs = {}
    with tempfile.TemporaryDirectory(prefix="memalloc-bench-") as tmpname:
        tmp = Path(tmpname)
        suite = Suite(bindir, tmp, args.threads, args.timeout)
        suite.prepare(args.only)
        if "sort" in args.only:
            mib = suite.sort_input.stat().st_size / 2**20
            about["sort"] = about["sort"].replace("? MiB", f"{mib:.0f} MiB")
        total, done = len(args.only) * args.rounds * len(allocs), 0
        for wl in args.only:
            runs[wl] = {a: [] for a in names}
            for rnd in range(args.rounds):
                k = rnd % len(allocs)
                for name, preload in allocs[k:] + allocs[:k]:
                    done += 1
                    r = suite.run(wl, name, preload)
                    runs[wl][name].append(r)
                    what = (f"{r['seconds']:.3f} s  {r['rss_kib'] / 1024:7.2f} MiB" if r["ok"]
                            else f"FAILED: {r['error']}")
                    log(f"[{done:3}/{total}] {wl:<12} round {rnd + 1}  {name:<9} {what}")
            mark_mismatches(runs[wl])

        if do_callgrind:
            log(f"counting fast-path instructions under callgrind (N = {args.callgrind_n:,})")
            fastpath = fastpath_counts(allocs, bindir, tmp, args.callgrind_n)
        elif not have_valgrind:
            fastpath = "valgrind is not installed"
        else:
            fastpath = "skipped (--no-callgrind)"
        machine = machine_rows(allocs, memalloc, suite, engine)

    stats = {wl: {a: summarise(runs[wl][a]) for a in names} for wl in args.only}
    secs = time.monotonic() - started
    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = {"stats": stats, "runs": runs, "names": names, "rounds": args.rounds, "notes": notes,
           "about": about, "machine": machine, "fastpath": fastpath,
           "fastpath_n": args.callgrind_n, "command": command_line(args),
           "load": f"{load:.2f}", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "elapsed": f"{int(secs // 60)} min {int(secs % 60)} s"}
    write_report(out, ctx)
    log(f"wrote {rel(out)} and {rel(out.with_suffix('.svg'))} in {ctx['elapsed']}")
    print(Path(out).read_text().split("## Time\n", 1)[1].split("## Notes", 1)[0])
    failed = memalloc_failures(stats, fastpath)
    if failed:
        log(f"memalloc FAILED on: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
