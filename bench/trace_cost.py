#!/usr/bin/env python3
"""bench/trace_cost.py: what MEMALLOC_TRACE costs, against the same runs
untraced and against heaptrack.

Runs bench/'s C workloads (the same binaries as bench/run.py) under these
configurations, one run of each per round, in an order rotated each round,
and prints a markdown table of median time, peak RSS and trace size per
workload, with the time's ratio to memalloc's untraced median:

  memalloc         memalloc, untraced
  trace            MEMALLOC_TRACE (default sampling: one allocation per 512 KiB)
  trace-all        MEMALLOC_TRACE with MEMALLOC_TRACE_SAMPLE=1: every
                   allocation with its stack
  glibc            no preload
  heaptrack        heaptrack (Debian's package) over glibc: every allocation
                   with its stack; its trace is compressed

A memalloc run must prove that memalloc served it, as in run.py (its
summary line, MEMALLOC_STATS=1). Measurements only: nothing here asserts a
figure.

    python3 bench/trace_cost.py [--rounds N] [--only w1,w2] [--memalloc PATH]
                                [--configs a,b,...]
"""
import argparse
import glob
import os
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: workloads, launcher, proof of preload)
from check_cost import _run_plain, run_rounds  # noqa: E402  (a wrapped run; the rounds)

CONFIGS = {
    "memalloc": ("memalloc", {}),
    "trace": ("memalloc", {"MEMALLOC_TRACE": "@"}),
    "trace-all": ("memalloc", {"MEMALLOC_TRACE": "@", "MEMALLOC_TRACE_SAMPLE": "1"}),
    "glibc": (None, {}),
    "heaptrack": ("heaptrack", {}),
}


def trace_bytes(path):
    """The bytes of a run's trace files (FILE, FILE.PID, heaptrack's FILE.zst)."""
    return sum(os.path.getsize(f) for f in glob.glob(str(path) + "*"))


def one_run(suite, wl, config, memalloc):
    kind, env = CONFIGS[config]
    trace = suite.tmp / "trace"
    for f in glob.glob(str(trace) + "*"):
        os.unlink(f)
    env = {k: (str(trace) if v == "@" else v) for k, v in env.items()}
    saved = dict(R.MEMALLOC_PROOF_ENV)
    try:
        if kind == "memalloc":
            R.MEMALLOC_PROOF_ENV.update(env)
            r = suite.run(wl, "memalloc", memalloc)
        elif kind == "heaptrack":
            r = _run_plain(suite, wl, None, {}, wrapper=["heaptrack", "-o", str(trace)])
        else:
            r = suite.run(wl, "glibc", None)
    finally:
        R.MEMALLOC_PROOF_ENV.clear()
        R.MEMALLOC_PROOF_ENV.update(saved)
    r["trace"] = trace_bytes(trace)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(R.C_WORKLOADS))
    ap.add_argument("--memalloc", default=str(R.ROOT / "build" / "libmemalloc.so"))
    ap.add_argument("--configs", default="memalloc,trace,trace-all,glibc,heaptrack")
    ap.add_argument("--build-dir", default=str(R.ROOT / "build-bench" / "workloads"))
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    if "heaptrack" in configs and not shutil.which("heaptrack"):
        configs.remove("heaptrack")
    workloads = [w for w in args.only.split(",") if w]
    memalloc = Path(os.path.abspath(args.memalloc))
    res = run_rounds(args, workloads, configs, one_run, memalloc, "memalloc-trace-cost-",
                     lambda r: f", trace {r['trace'] / 1e6:.2f} MB")
    print(f"\n{args.rounds} rounds; median time (s), peak RSS (MiB) and trace size (MB); in "
          f"brackets the time's ratio to memalloc's untraced median\n")
    print("| workload | " + " | ".join(configs) + " |")
    print("|---|" + "---|" * len(configs))
    ratios = {c: [] for c in configs}
    for wl in workloads:
        base = [r for r in res[wl]["memalloc"] if r["ok"]] if "memalloc" in configs else []
        bt = statistics.median(r["seconds"] for r in base) if base else None
        cells = []
        for c in configs:
            ok = [r for r in res[wl][c] if r["ok"]]
            if len(ok) < len(res[wl][c]):
                cells.append("FAILED: " + str(next(r for r in res[wl][c] if not r["ok"])["error"]))
                continue
            t = statistics.median(r["seconds"] for r in ok)
            m = statistics.median(r["rss_kib"] for r in ok)
            size = statistics.median(r["trace"] for r in ok)
            cell = f"{t:.2f} s, {m / 1024:.1f} MiB"
            if size:
                cell += f", {size / 1e6:.2f} MB"
            if bt:
                cell += f" ({t / bt:.2f}x)"
                ratios[c].append(t / bt)
            cells.append(cell)
        print(f"| {wl} | " + " | ".join(cells) + " |")
    print("| geomean vs memalloc | " + " | ".join(
        f"{R.geomean(ratios[c]):.2f}x" if ratios[c] else "-" for c in configs) + " |")


if __name__ == "__main__":
    main()
