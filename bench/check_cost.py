#!/usr/bin/env python3
"""bench/check_cost.py: what memalloc's check modes cost, against glibc.

Runs bench/'s workloads (the same binaries and inputs as bench/run.py) under
these configurations, one run of each per round, in an order rotated each
round, and prints a markdown table of median time and peak RSS per workload
with their ratios to plain glibc's:

  glibc            no preload
  glibc-check3     glibc's libc_malloc_debug.so with MALLOC_CHECK_=3
  memalloc         memalloc's default mode
  check1           MEMALLOC_CHECK=1 (default stack depth: 1 frame)
  check1-stack16   MEMALLOC_CHECK=1 MEMALLOC_CHECK_STACK=16 (libunwind)
  check2           MEMALLOC_CHECK=2
  valgrind         valgrind --tool=memcheck (with --valgrind; slow)

A memalloc run must prove that memalloc served it, as in run.py (its
summary line, MEMALLOC_STATS=1). Measurements only: nothing here asserts a
figure.

    python3 bench/check_cost.py [--rounds N] [--only w1,w2] [--memalloc PATH]
                                [--configs a,b,...] [--valgrind]
"""
import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: workloads, launcher, proof of preload)

DEBUG_LIB = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"

CONFIGS = {
    "glibc": (None, {}),
    "glibc-check3": ("debug", {"MALLOC_CHECK_": "3"}),
    "memalloc": ("memalloc", {}),
    "check1": ("memalloc", {"MEMALLOC_CHECK": "1"}),
    "check1-stack16": ("memalloc", {"MEMALLOC_CHECK": "1", "MEMALLOC_CHECK_STACK": "16"}),
    "check2": ("memalloc", {"MEMALLOC_CHECK": "2"}),
    "valgrind": ("valgrind", {}),
}


def one_run(suite, wl, config, memalloc):
    kind, env = CONFIGS[config]
    saved = dict(R.MEMALLOC_PROOF_ENV)
    try:
        if kind == "memalloc":
            R.MEMALLOC_PROOF_ENV.update(env)
            return suite.run(wl, "memalloc", memalloc)
        if kind == "debug":  # glibc's debugging malloc, preloaded
            return _run_plain(suite, wl, DEBUG_LIB, env)
        if kind == "valgrind":
            return _run_plain(suite, wl, None, {}, wrapper=["valgrind", "-q",
                                                            "--error-exitcode=99"])
        return suite.run(wl, "glibc", None)
    finally:
        R.MEMALLOC_PROOF_ENV.clear()
        R.MEMALLOC_PROOF_ENV.update(saved)


def _run_plain(suite, wl, preload, env, wrapper=None):
    """A run that is not memalloc's and needs its own environment or a
    wrapper command (run.py's Suite knows neither)."""
    if wl not in R.C_WORKLOADS:
        return {"ok": False, "error": "C workloads only"}
    out, err = suite.tmp / "stdout", suite.tmp / "stderr"
    argv = [str(suite.bindir / wl)]
    if wl == "larson":
        argv.append(str(suite.threads))
    argv = (wrapper or []) + argv
    files = {"stdout": out, "stderr": err, "result": suite.tmp / "result"}
    full_env = R.run_env(None, env)
    status, wall, rss, _ = R.spawn(suite.bindir / "launch", argv, preload, full_env, files,
                                   suite.timeout)
    if status != 0:
        return {"ok": False, "error": R.describe_status(status, suite.timeout, wall)}
    m = R.REPORT_RE.search(out.read_text(errors="replace"))
    if not m:
        return {"ok": False, "error": "no report line"}
    return {"ok": True, "seconds": float(m.group(1)), "rss_kib": rss, "check": m.group(3)}


def run_rounds(args, workloads, configs, one_run, memalloc, prefix, extra=lambda r: ""):
    """Every workload args.rounds times, each configuration once a round, in
    an order rotated from round to round: the results by workload and
    configuration (one_run(suite, wl, config, memalloc) each; extra(r) adds
    to a run's log line)."""
    bindir = Path(args.build_dir).resolve()
    R.build_workloads(bindir)
    res = {wl: {c: [] for c in configs} for wl in workloads}
    with tempfile.TemporaryDirectory(prefix=prefix) as tmpname:
        suite = R.Suite(bindir, Path(tmpname), 2, args.timeout)
        suite.prepare(workloads)
        for wl in workloads:
            for rnd in range(args.rounds):
                k = rnd % len(configs)
                for c in configs[k:] + configs[:k]:
                    r = one_run(suite, wl, c, memalloc)
                    res[wl][c].append(r)
                    R.log(f"{wl} {c} round {rnd + 1}: "
                          + (f"{r['seconds']:.3f} s, {r['rss_kib'] / 1024:.1f} MiB{extra(r)}"
                             if r["ok"] else f"FAILED {r.get('error')}"))
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default=",".join(R.C_WORKLOADS))
    ap.add_argument("--memalloc", default=str(R.ROOT / "build" / "libmemalloc.so"))
    ap.add_argument("--configs", default="glibc,glibc-check3,memalloc,check1,check1-stack16,check2")
    ap.add_argument("--valgrind", action="store_true", help="add valgrind's memcheck")
    ap.add_argument("--build-dir", default=str(R.ROOT / "build-bench" / "workloads"))
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    if args.valgrind:
        configs.append("valgrind")
    if "glibc-check3" in configs and not os.path.exists(DEBUG_LIB):
        configs.remove("glibc-check3")
    workloads = [w for w in args.only.split(",") if w]
    memalloc = Path(os.path.abspath(args.memalloc))
    res = run_rounds(args, workloads, configs, one_run, memalloc, "memalloc-check-cost-")
    print(f"\n{args.rounds} rounds; median time (s) and peak RSS (MiB); in brackets the ratio "
          f"to glibc's median\n")
    print("| workload | " + " | ".join(configs) + " |")
    print("|---|" + "---|" * len(configs))
    ratios = {c: [] for c in configs}
    rss_ratios = {c: [] for c in configs}
    for wl in workloads:
        base = [r for r in res[wl]["glibc"] if r["ok"]] if "glibc" in configs else []
        bt = statistics.median(r["seconds"] for r in base) if base else None
        br = statistics.median(r["rss_kib"] for r in base) if base else None
        cells = []
        for c in configs:
            ok = [r for r in res[wl][c] if r["ok"]]
            if len(ok) < len(res[wl][c]):
                cells.append("FAILED: " + str(next(r for r in res[wl][c] if not r["ok"])["error"]))
                continue
            t = statistics.median(r["seconds"] for r in ok)
            m = statistics.median(r["rss_kib"] for r in ok)
            cell = f"{t:.2f} s, {m / 1024:.1f} MiB"
            if bt:
                cell += f" ({t / bt:.2f}x, {m / br:.2f}x)"
                ratios[c].append(t / bt)
                rss_ratios[c].append(m / br)
            cells.append(cell)
        print(f"| {wl} | " + " | ".join(cells) + " |")
    print("| geomean vs glibc | " + " | ".join(
        f"{R.geomean(ratios[c]):.2f}x time, {R.geomean(rss_ratios[c]):.2f}x RSS"
        if ratios[c] else "-" for c in configs) + " |")


if __name__ == "__main__":
    main()
