#!/usr/bin/env bash
# Benchmark memalloc against glibc, jemalloc, tcmalloc and mimalloc in one
# command: install the peers and the tools from Debian 12's packages (needs
# root; uses sudo when not root), build memalloc in Release mode in
# build-release/, then run bench/run.py, which writes docs/benchmarks.md and
# docs/benchmarks.svg. Arguments are passed to bench/run.py, e.g.
#   ./scripts/bench.sh --rounds 3 --only churn,larson
# Set BENCH_SKIP_INSTALL=1 to skip apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
    libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 # the peers, preloaded
    build-essential cmake                            # gcc, make, cmake
    valgrind                                         # callgrind: instructions per malloc+free
    python3 coreutils                                # the runner; sort is a real program
)
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
fi
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)"
exec python3 bench/run.py --memalloc build-release/libmemalloc.so --out docs/benchmarks.md "$@"
