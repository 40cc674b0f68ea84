#!/usr/bin/env bash
# Quick start: install the tools, build libmemalloc.so, and run a real
# program on it with MEMALLOC_STATS=1, whose summary line shows that
# memalloc served the program.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
echo
echo "== du -sh /usr, allocating from $(pwd)/build/libmemalloc.so:"
MEMALLOC_STATS=1 LD_PRELOAD="$(pwd)/build/libmemalloc.so" du -sh /usr
