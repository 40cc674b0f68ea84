#!/usr/bin/env bash
# Install what memalloc needs to build and to run every test, from Debian 12's
# packages. Needs root (uses sudo when not root).
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PACKAGES=(
    build-essential cmake clang        # compilers (gcc, clang), make, cmake
    bats stress-ng gdb                 # test runners; gdb: a backtrace through the library
    pkg-config                         # memalloc.pc, checked by tests/integration/package.bats
    libunwind8                         # the check modes' deep stacks (MEMALLOC_CHECK_STACK)
    python3 perl git sqlite3 tar grep findutils coreutils diffutils # real programs under test
    chromium                           # memalloc report's page, loaded headless (report.bats)
)
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
