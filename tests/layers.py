#!/usr/bin/env python3
"""The layering rule of docs/design.md, checked from the object files.

usage: layers.py DESIGN.md OBJECT.o...

The table under "## The layers" in DESIGN.md lists the source files in
order; a file may take functions and data only from files listed above it.
For every object file given, each symbol it leaves undefined (nm -u) and
another given object defines (nm --defined-only, global symbols) must come
from a file listed above its own. Every object must be listed, and every
listed .c file must be among the objects. Prints each breach; exit status 1
if there is any.
"""
import re
import subprocess
import sys
from pathlib import Path


def layer_order(design):
    """The .c files of the layers table, in order."""
    text = Path(design).read_text()
    start = text.index("## The layers")
    end = text.index("\n## ", start + 1)
    order = []
    for line in text[start:end].splitlines():
        if not line.startswith("|"):
            continue
        for name in re.findall(r"`((?:src|preload)/[A-Za-z0-9_]+\.c)`", line):
            if name not in order:
                order.append(name)
    return order


def source_of(obj):
    """src/heap.c for .../memalloc_engine.dir/src/heap.c.o."""
    m = re.search(r"\.dir/(.+)\.o$", obj)
    if not m:
        sys.exit(f"layers.py: cannot tell the source of {obj}")
    return m.group(1)


def nm(args, obj):
    out = subprocess.run(["nm", *args, obj], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    order = layer_order(sys.argv[1])
    rank = {name: i for i, name in enumerate(order)}
    # (CMake may pass a list of objects as one argument, joined by ';')
    paths = [o for arg in sys.argv[2:] for o in arg.split(";") if o]
    objects = {source_of(o): o for o in paths}
    breaches = []
    for src in objects:
        if src not in rank:
            breaches.append(f"{src}: not in the layers table of {sys.argv[1]}")
    for src in order:
        if src not in objects:
            breaches.append(f"{src}: in the layers table but not built")
    defined_by = {}
    for src, obj in objects.items():
        for sym in nm(["--defined-only", "-g"], obj):
            defined_by[sym] = src
    for src, obj in sorted(objects.items(), key=lambda kv: rank.get(kv[0], -1)):
        if src not in rank:
            continue
        up = {}
        for sym in nm(["-u"], obj):
            other = defined_by.get(sym)
            if other and other != src and rank.get(other, -1) >= rank[src]:
                up.setdefault(other, []).append(sym)
        for other, syms in sorted(up.items()):
            breaches.append(f"{src} calls up into {other}: {', '.join(sorted(syms))}")
    for b in breaches:
        print(b)
    print(f"layers: {len(objects)} files, {len(breaches)} breaches")
    return 1 if breaches else 0


if __name__ == "__main__":
    sys.exit(main())
